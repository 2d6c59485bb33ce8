"""The dashboard's actions on many tokens at once: export the filtered set, tick every match, check
and revoke the ticked rows. Each reads the matches on the server, once, in id order, and stops at
a stated limit; secrets leave masked; every check and revoke is audited as one from the CLI is."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.collection import Collection
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from ..core.clock import utcnow
from ..core.errors import sentence
from ..core.masking import iso
from ..tools import admin, datacenters
from ..tools.records import view
from ..tools.zoho import ZohoError
from . import data

EXPORT_LIMIT = 10_000
"""At most this many tokens in one export: more is refused (narrow the filter), never cut silently."""
SELECT_LIMIT = 1_000
""""Select all N matching" ticks at most this many tokens (a bulk check calls Zoho once for each)."""
EXPORT_COLUMNS = ("id", "user_name", "health", "health_reason", "data_center", "api_domain", "client_id",
                  "client_secret", "refresh_token", "access_token", "grant_token", "expires_at", "last_refreshed_at",
                  "refresh_failures", "last_refresh_failure_at", "last_check_at", "check_result", "created_at",
                  "updated_at", "redirect_url")


class TooMany(ValueError):
    """More tokens match than the action takes: one sentence saying so and what to do."""


def matching(tokens: Collection, query: admin.Query, limit: int, what: str,
             projection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The documents a filter matches now, in id order; more than ``limit`` raises ``TooMany``."""
    found = list(tokens.find(query.to_filter(utcnow()), projection).sort("_id", 1).limit(limit + 1))
    if len(found) > limit:
        raise TooMany(f"more than {limit:,} tokens match the filters, the most {what} takes: narrow the filters")
    return found


def matching_ids(connection: data.Connection, query: admin.Query, limit: int = SELECT_LIMIT) -> list[str]:
    """Every id the filters match (for "Select all N matching")."""
    found = connection.store.call("find the matching tokens", lambda: matching(
        connection.tokens, query, limit, "Select all", {"_id": True}))
    return [document["_id"] for document in found]


def export_csv(connection: data.Connection, query: admin.Query, limit: int = EXPORT_LIMIT) -> tuple[str, int]:
    """(CSV text, how many tokens) of every token the filters match, not just the page shown:
    secrets masked to their last four characters, dates in ISO 8601 UTC, the health and why."""
    now = utcnow()
    documents = connection.store.call("export the matching tokens", lambda: matching(
        connection.tokens, query, limit, "an export"))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for document in documents:
        shown = view(document, now)
        shown["data_center"] = datacenters.name(shown.get("api_domain"))
        writer.writerow({key: cell(value) for key, value in shown.items()})
    return out.getvalue(), len(documents)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""How a cell starts that a spreadsheet would run as a formula (a stored value is data, never code)."""


def cell(value: Any) -> Any:
    """A CSV cell: a date as ISO 8601 UTC, nothing as empty, and text a spreadsheet would take
    for a formula (a hand-made user name ``=HYPERLINK(...)``) behind a leading ``'``."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


@dataclass
class Outcome:
    """What a bulk action did, token by token (``results``: id → ``ok`` or why not)."""

    action: str
    results: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> list[str]:
        return [token_id for token_id, result in self.results.items() if result in ("ok", "revoked")]

    def summary(self) -> str:
        """One line: ``Checked 3 token(s): 2 ok, 1 not (INVALID_TOKEN: 1)``."""
        failed: dict[str, int] = {}
        for result in self.results.values():
            if result not in ("ok", "revoked"):
                failed[result] = failed.get(result, 0) + 1
        word = "ok" if self.action == "Checked" else "revoked"
        line = f"{self.action} {len(self.results)} token(s): {len(self.done)} {word}"
        if failed:
            line += f", {sum(failed.values())} not (" + "; ".join(f"{why}: {n}" for why, n in sorted(failed.items())) + ")"
        return line


def check_many(connection: data.Connection, ids: list[str], who: str, accounts_url: str | None) -> Outcome:
    """Ask Zoho about each ticked token, as "Check with Zoho" does for one (``data.check``: each
    check recorded on its token, in the audit log and in its history); one failing server stops
    only its token's check."""
    outcome = Outcome("Checked")
    for token_id in ids:
        try:
            outcome.results[token_id] = data.check(connection, token_id, who, accounts_url).result
        except (ZohoError, SDKException) as error:
            outcome.results[token_id] = f"not checked: {sentence(error)}"
    return outcome


def revoke_many(connection: data.Connection, ids: list[str], who: str, accounts_url: str | None) -> Outcome:
    """Revoke each ticked token at Zoho, then delete it (``data.revoke``: each audited before Zoho
    is called); a refusal leaves that token stored and goes on with the next."""
    outcome = Outcome("Revoked")
    for token_id in ids:
        try:
            data.revoke(connection, token_id, who, accounts_url)
            outcome.results[token_id] = "revoked"
        except (ZohoError, SDKException) as error:
            outcome.results[token_id] = sentence(error)
    return outcome
