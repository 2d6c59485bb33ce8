"""Everything the dashboard reads and writes, in one place, apart from the pages.

Queries run on the server with projections and the store's indexes (``mongo_store.tools.admin``); the
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

from ..core import events
from ..core.clock import utcnow
from ..core.errors import store_error
from ..core.indexes import ensure_indexes
from ..core.mapping import FAILED_AT_FIELD, FAILURES_FIELD, REFRESHED_FIELD, check_text
from ..core.store import MongoTokenStore
from ..tools import admin, cleanup, history, paging
from ..tools.records import view
from ..tools.zoho import AlreadyRevoked, Checked, ZohoError
from ..tools.zoho import check as check_at_zoho
from ..tools.zoho import revoke as revoke_at_zoho
from .settings import Settings, setting

ACTIVITY_BIN = timedelta(hours=6)
ACTIVITY_SPAN = timedelta(days=7)


@dataclass
class Connection:
    store: MongoTokenStore
    audit: Collection
    backend: str
    events: Collection = None  # type: ignore[assignment]
    """The token history (``events.py``); by default the store's."""
    api_url: str | None = None
    """``Settings.api_url``: where a check calls the CRM API instead of each token's api_domain."""

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = self.store.events if self.store.events is not None else \
                self.store.collection.database[self.store.settings.events_collection]

    @property
    def tokens(self) -> Collection:
        return self.store.collection


def connect(settings: Settings) -> Connection:
    """Open the store and check the server answers; fails with a clear SDKException, fast."""
    store = MongoTokenStore(settings.uri, database=settings.database, collection=settings.collection,
                            server_selection_timeout=min(3.0, settings.failover_wait),
                            failover_wait=settings.failover_wait, create_indexes=False,
                            events_collection=setting("ZOHO_EVENTS_COLLECTION", "events_collection"),
                            events_retention_days=setting("ZOHO_EVENTS_RETENTION_DAYS", "events_retention_days"))
    events_retention = store.settings.events_retention_days
    audit = store.collection.database[settings.audit_collection]
    with store.guard("connect to MongoDB"):
        info = store.client.server_info()
    if not settings.read_only:
        def prepare() -> None:
            ensure_indexes(store.collection, backfill_keys=False)  # a bounded call: the keys are `indexes`'s
            admin.keep_audit(audit, settings.audit_retention_days)
            events.keep_events(store.events, events_retention)

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


def token_page(connection: Connection, query: admin.Query, size: int = 50, *, go: str = "first",
               cursor: str | None = None, number: int = 1) -> tuple[list[dict[str, Any]], paging.Page]:
    """One keyset page (``paging.page``: first, next, previous or last at any depth) as a person
    sees it (``records.view``), and the page itself (count, number, cursors). A malformed cursor
    (an edited URL) raises ValueError with one sentence, before the database is asked."""
    now = utcnow()
    paging.finds(query, go=go, cursor=cursor, now=now)
    found = connection.store.call("list the tokens", lambda: paging.page(connection.tokens, query, size, go=go,
                                                                           cursor=cursor, number=number, now=now))
    return [view(document, now) for document in found.documents], found


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
                          lambda: admin.audited_check(connection.audit, who, {result.token_id: result.result},
                                                      connection.events, {result.token_id: result.user_name}))
    return result


def revoke(connection: Connection, token_id: str, who: str, accounts_url: str | None) -> str:
    """Revoke the refresh token at Zoho, then delete the token, audited before Zoho is called and
    with its outcome (``admin.audited_revoke``); returns the accounts server's host. A failure at
    Zoho raises ``zoho.ZohoError`` and deletes nothing."""
    token_id = check_text("id", token_id, required=True)
    store = connection.store
    host, _ = admin.audited_revoke(connection.tokens, connection.audit, token_id, who,
                                   lambda: revoke_at_zoho(store, token_id, accounts_url),
                                   (ZohoError, SDKException), store.guard, events=connection.events)
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
        event=lambda token_id, name, kind, detail: events.record_quietly(
            connection.events, [events.entry(token_id, name, kind, detail, who)], store.socket_timeout),
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
        return admin.audited_delete(connection.tokens, connection.audit, ids, who, action=action, scope=scope,
                                    events=connection.events)


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


# -- the token history and the audit search (events.py, history.py) ------------------------------

def token_history(connection: Connection, token_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The token's latest events, newest first (``{at, token_id, user_name, event, detail, who}``;
    never a secret), also after the token was deleted, until they expire."""
    token_id = check_text("id", token_id, required=True)
    if not 1 <= limit <= 10_000:
        raise ValueError("a history holds 1 to 10,000 events")
    return connection.store.call("read the token's history", lambda: events.for_token(connection.events, token_id, limit))


def event_activity(connection: Connection, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per 6 hours over the last 7 days, how many events of each kind (``events.activity``): the
    activity chart, counting every refresh rather than each token's latest."""
    when = now or utcnow()
    return connection.store.call("count the events", lambda: events.activity(connection.events, when))


def audit_search(connection: Connection, actor: str | None = None, token: str | None = None,
                 cursor: str | None = None, go: str = "first",
                 size: int = 50) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """One page of the audit log, newest first, by actor (a prefix of who, any case) and token (an
    id, or a user name prefix): (entries without ``_id``, next (older) cursor, previous (newer)
    cursor), as ``history.audit_page``. A malformed cursor or search raises ValueError (one sentence)."""
    history.check_request(actor, token, size, cursor, go)
    entries, older, newer = connection.store.call("search the audit log", lambda: history.audit_page(
        connection.audit, actor=actor, token=token, size=size, cursor=cursor, go=go))
    return [{key: value for key, value in entry.items() if key != "_id"} for entry in entries], older, newer
