"""The dashboard's reads of many tokens at once: export the filtered set and tick every match. Each
reads the matches on the server, once, in id order, and stops at a stated limit; secrets leave
masked. (Checking and revoking the ticked rows is the operator layer's: ``data.check_many``,
``data.revoke_many``.)"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from pymongo.collection import Collection

from ..core.clock import utcnow
from ..core.masking import iso, spreadsheet_safe
from ..tools import datacenters
from ..tools.queries import Query
from ..tools.records import view
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


def matching(tokens: Collection, query: Query, limit: int, what: str,
             projection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The documents a filter matches now, in id order; more than ``limit`` raises ``TooMany``."""
    found = list(tokens.find(query.to_filter(utcnow()), projection).sort("_id", 1).limit(limit + 1))
    if len(found) > limit:
        raise TooMany(f"more than {limit:,} tokens match the filters, the most {what} takes: narrow the filters")
    return found


def matching_ids(connection: data.Connection, query: Query, limit: int = SELECT_LIMIT) -> list[str]:
    """Every id the filters match (for "Select all N matching")."""
    found = connection.store.call("find the matching tokens", lambda: matching(
        connection.tokens, query, limit, "Select all", {"_id": True}))
    return [document["_id"] for document in found]


def export_csv(connection: data.Connection, query: Query, limit: int = EXPORT_LIMIT) -> tuple[str, int]:
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


def cell(value: Any) -> Any:
    """A CSV cell: a date as ISO 8601 UTC, nothing as empty, and text a spreadsheet would take
    for a formula (a hand-made user name ``=HYPERLINK(...)``) behind a leading ``'``."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return "" if value is None else value
