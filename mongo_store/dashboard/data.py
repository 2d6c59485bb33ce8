"""Everything the dashboard reads and writes, in one place, apart from the pages.

Queries run on the server with projections and the store's indexes (``mongo_store.admin``); the
dashboard never calls ``get_tokens()``. Records leave this module with their secrets masked, and
every deletion is written to the audit collection before it happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.collection import Collection
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from .. import admin, cleanup
from ..errors import store_error
from ..indexes import ensure_indexes
from ..lease import utcnow
from ..mapping import FAILED_AT_FIELD, FAILURES_FIELD, REFRESHED_FIELD, check_text
from ..records import view
from ..store import MongoTokenStore
from ..zoho import AlreadyRevoked, Checked, ZohoError
from ..zoho import check as check_at_zoho
from ..zoho import revoke as revoke_at_zoho
from .settings import Settings

ACTIVITY_BIN = timedelta(hours=6)
ACTIVITY_SPAN = timedelta(days=7)


@dataclass
class Connection:
    store: MongoTokenStore
    audit: Collection
    backend: str
    api_url: str | None = None
    """``Settings.api_url``: where a check calls the CRM API instead of each token's api_domain."""

    @property
    def tokens(self) -> Collection:
        return self.store.collection


def connect(settings: Settings) -> Connection:
    """Open the store and check the server answers; fails with a clear SDKException, fast."""
    store = MongoTokenStore(settings.uri, database=settings.database, collection=settings.collection,
                            server_selection_timeout=min(3.0, settings.failover_wait),
                            failover_wait=settings.failover_wait, create_indexes=False)
    audit = store.collection.database[settings.audit_collection]
    with store.guard("connect to MongoDB"):
        info = store.client.server_info()
    if not settings.read_only:
        def prepare() -> None:
            ensure_indexes(store.collection)
            admin.keep_audit(audit, settings.audit_retention_days)

        store.call("create the indexes", prepare)
    backend = "mongomock (in-memory, not MongoDB)" if info.get("sysInfo") == "Mock" else f"MongoDB {info['version']}"
    return Connection(store, audit, backend, api_url=settings.api_url)


def overview(connection: Connection, now: datetime | None = None) -> dict[str, Any]:
    """Counts by health, status and data center, and the refresh activity, all counted on the
    server; ``as_of`` is when."""
    now = now or utcnow()
    tokens = connection.tokens
    counts = connection.store.call("count the tokens", lambda: admin.stats(tokens, now, extra={
        "refresh-only": ({"refresh_token": {"$exists": True}, "access_token": {"$exists": False}},
                         "refresh_token_unique"),
        "grant-only": ({"grant_token": {"$exists": True}, "refresh_token": {"$exists": False},
                        "access_token": {"$exists": False}}, "grant_token"),
    }))
    counts["activity"] = connection.store.call("count the refreshes", lambda: activity(tokens, now))
    counts["as_of"] = now
    return counts


def activity(tokens: Collection, now: datetime) -> list[dict[str, Any]]:
    """Per 6 hours over the last 7 days: how many tokens were last refreshed then, and how many of
    the failing ones last failed to refresh then. (The store keeps each token's latest refresh and
    failure, not a history: a token refreshed every hour counts once, in its latest bin.)
    Each a range on a sparse index."""
    start = now.replace(hour=now.hour - now.hour % 6, minute=0, second=0, microsecond=0) + ACTIVITY_BIN - ACTIVITY_SPAN
    edges = [start + ACTIVITY_BIN * n for n in range(int(ACTIVITY_SPAN / ACTIVITY_BIN) + 1)]

    def buckets(where: dict[str, Any], field: str) -> dict[datetime, int]:
        rows = tokens.aggregate([
            {"$match": {**where, field: {"$gte": edges[0], "$lt": edges[-1]}}},
            {"$bucket": {"groupBy": f"${field}", "boundaries": edges, "output": {"n": {"$sum": 1}}}},
        ])
        return {row["_id"]: row["n"] for row in rows}

    refreshed = buckets({}, REFRESHED_FIELD)
    failed = buckets({FAILURES_FIELD: {"$exists": True}}, FAILED_AT_FIELD)  # the refresh_failures index
    return [{"from": edge, "refreshed": refreshed.get(edge, 0), "failed": failed.get(edge, 0)} for edge in edges[:-1]]


def domains(connection: Connection) -> list[str]:
    """The data centers in use, for the filter."""
    return connection.store.call("read the data centers", lambda: admin.stats_domains(connection.tokens))


def token_count(connection: Connection) -> int:
    """About how many tokens are stored (the collection's own count: no scan)."""
    return connection.store.call("count the tokens", connection.tokens.estimated_document_count)


def list_page(connection: Connection, query: admin.Query, number: int, size: int) -> tuple[list[dict[str, Any]], int]:
    """One page of tokens as a person sees them (``records.view``: masked, with health) and the
    number of matches."""
    now = utcnow()
    documents, total = connection.store.call("list the tokens",
                                             lambda: admin.page(connection.tokens, query, number, size, now))
    return [view(document, now) for document in documents], total


def inspect(connection: Connection, token_id: str) -> dict[str, Any] | None:
    """Every field of one token, secrets masked, with its health, refresh record and timestamps."""
    token_id = check_text("id", token_id, required=True)
    document = connection.store.call("read the token", lambda: connection.tokens.find_one({"_id": token_id}))
    return None if document is None else view(document)


def check(connection: Connection, token_id: str, who: str, accounts_url: str | None) -> Checked:
    """Ask Zoho whether the token works (``zoho.check``: bounded calls, the store's lease); the result is recorded on
    the token and in the audit log."""
    result = check_at_zoho(connection.store, token_id, accounts_url, connection.api_url)
    connection.store.call("record the check in the audit log",
                          lambda: admin.audited_check(connection.audit, who, {result.token_id: result.result}))
    return result


def revoke(connection: Connection, token_id: str, who: str, accounts_url: str | None) -> str:
    """Revoke the refresh token at Zoho, then delete the token, audited before Zoho is called and
    with its outcome (``admin.audited_revoke``); returns the accounts server's host. A failure at
    Zoho raises ``zoho.ZohoError`` and deletes nothing."""
    token_id = check_text("id", token_id, required=True)
    store = connection.store
    host, _ = admin.audited_revoke(connection.tokens, connection.audit, token_id, who,
                                   lambda: revoke_at_zoho(store, token_id, accounts_url),
                                   (ZohoError, SDKException), store.guard)
    return host


def cleanup_plan(connection: Connection, policy: cleanup.Policy) -> cleanup.Report:
    """What the lifecycle policy would do now (reads only)."""
    return connection.store.call("plan the cleanup", lambda: cleanup.plan(connection.tokens, policy))


def cleanup_run(connection: Connection, policy: cleanup.Policy, who: str, accounts_url: str | None) -> cleanup.Report:
    """Apply the lifecycle policy now, as ``zoho-mongo-store cleanup`` does: each token decided when it
    is acted on, each action audited."""
    store = connection.store
    steps = cleanup.Steps(
        revoke=lambda token_id: revoke_at_zoho(store, token_id, accounts_url), refused=(ZohoError, SDKException),
        already=AlreadyRevoked, database=lambda action, work: store.call(action, work),
        audit=lambda entry: store.call("record the cleanup in the audit log",
                                       lambda: connection.audit.insert_one({"at": utcnow(), "who": who, **entry})))
    return cleanup.run(connection.tokens, policy, steps)


def user_names(connection: Connection, ids: list[str]) -> dict[str, str | None]:
    """The user name of each of these tokens that is still stored (None: stored without one), so a
    confirmation names the people behind the ids."""
    ids = [check_text("id", token_id, required=True) for token_id in ids]
    found = connection.store.call("read the user names", lambda: list(
        connection.tokens.find({"_id": {"$in": ids}}, {"user_name": True})))
    return {document["_id"]: document.get("user_name") for document in found}


def matching_ids(connection: Connection, query: admin.Query, limit: int = admin.COUNT_CAP) -> list[str]:
    """The ids of the tokens a filter matches now, read once when a filtered "Delete all" is
    confirmed: the delete then hits exactly the tokens the operator was shown, not those that match
    by the time of the click. More than ``limit`` is refused (narrow the filter)."""
    where = query.to_filter(utcnow())
    ids = connection.store.call("find the matching tokens", lambda: [
        document["_id"] for document in connection.tokens.find(where, {"_id": True}).sort("_id").limit(limit + 1)])
    if len(ids) > limit:
        raise store_error(f"more than {limit:,} tokens match the filter: narrow it, or clear every filter to "
                          "delete the whole collection")
    return ids


def confirm_name(connection: Connection, environment: str | None) -> str:
    """What an operator types to delete everything a filter matches, or every token: the
    environment, database and collection, so the same words never work in production and staging."""
    target = f"{connection.tokens.database.name}.{connection.tokens.name}"
    return f"{environment}/{target}" if environment else target


def delete(connection: Connection, ids: list[str], who: str, action: str = "delete",
           scope: str | None = None) -> int:
    """Delete these tokens, recording who, when, which ids and user names first (``scope``: the
    filter they were chosen by)."""
    ids = [check_text("id", token_id, required=True) for token_id in ids]
    if not ids:
        raise store_error("no token selected")
    with connection.store.guard("delete the tokens"):
        return admin.audited_delete(connection.tokens, connection.audit, ids, who, action=action, scope=scope)


def delete_matching(connection: Connection, ids: list[str], who: str, typed_name: str, expected: str,
                    scope: str) -> int:
    """Delete the tokens a filter matched (``matching_ids``), only when the operator typed ``expected``."""
    if typed_name != expected:
        raise store_error("the typed name does not match; nothing deleted")
    return delete(connection, ids, who, action="delete-filtered", scope=scope)


def delete_all(connection: Connection, who: str, typed_name: str, expected: str) -> int:
    """Delete every token, only when the operator typed ``expected`` (``confirm_name``)."""
    if typed_name != expected:
        raise store_error("the typed name does not match; nothing deleted")
    with connection.store.guard("delete all tokens"):
        return admin.audited_delete(connection.tokens, connection.audit, None, who)


def audit_entries(connection: Connection, limit: int = 200) -> list[dict[str, Any]]:
    return connection.store.call("read the audit log", lambda: list(
        connection.audit.find({}, {"_id": False}).sort("at", DESCENDING).limit(limit)))
