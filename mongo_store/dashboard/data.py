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

from .. import admin
from ..errors import store_error
from ..indexes import ensure_indexes
from ..lease import utcnow
from ..mapping import check_text
from ..masking import masked
from ..records import document_to_record
from ..store import MongoTokenStore
from .settings import Settings

TIMELINE_BIN = timedelta(minutes=15)
TIMELINE_SPAN = (timedelta(hours=-6), timedelta(hours=2))


@dataclass
class Connection:
    store: MongoTokenStore
    audit: Collection
    backend: str

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
        store.call("create the indexes", lambda: (ensure_indexes(store.collection),
                                                  audit.create_index([("at", DESCENDING)], name="at")))
    backend = "mongomock (in-memory, not MongoDB)" if info.get("sysInfo") == "Mock" else f"MongoDB {info['version']}"
    return Connection(store, audit, backend)


def overview(connection: Connection, now: datetime | None = None) -> dict[str, Any]:
    """Counts by status and data center, and the expiry timeline: all counted on the server."""
    now = now or utcnow()
    tokens = connection.tokens
    counts = connection.store.call("count the tokens", lambda: admin.stats(tokens, now, extra={
        "refresh-only": ({"refresh_token": {"$exists": True}, "access_token": {"$exists": False}},
                         "refresh_token_unique"),
        "grant-only": ({"grant_token": {"$exists": True}, "refresh_token": {"$exists": False},
                        "access_token": {"$exists": False}}, "grant_token"),
    }))
    counts["timeline"] = connection.store.call("count the tokens", lambda: timeline(tokens, now))
    return counts


def timeline(tokens: Collection, now: datetime) -> list[dict[str, Any]]:
    """Tokens expiring per 15 minutes, from 6 hours ago to 2 hours ahead (a range on the index)."""
    start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) + TIMELINE_SPAN[0]
    edges = [start + TIMELINE_BIN * n for n in range(int((TIMELINE_SPAN[1] - TIMELINE_SPAN[0]) / TIMELINE_BIN) + 1)]
    rows = tokens.aggregate([
        {"$match": {"expiry_time": {"$gte": edges[0], "$lt": edges[-1]}}},
        {"$bucket": {"groupBy": "$expiry_time", "boundaries": edges, "output": {"tokens": {"$sum": 1}}}},
    ])
    found = {row["_id"]: row["tokens"] for row in rows}
    return [{"expires": edge, "tokens": found.get(edge, 0)} for edge in edges[:-1]]


def domains(connection: Connection) -> list[str]:
    """The data centers in use, for the filter."""
    return connection.store.call("read the data centers", lambda: admin.stats_domains(connection.tokens))


def token_count(connection: Connection) -> int:
    """About how many tokens are stored (the collection's own count: no scan)."""
    return connection.store.call("count the tokens", connection.tokens.estimated_document_count)


def list_page(connection: Connection, query: admin.Query, number: int, size: int) -> tuple[list[dict[str, Any]], int]:
    """One page of masked records and the number of matches."""
    documents, total = connection.store.call("list the tokens", lambda: admin.page(connection.tokens, query, number, size))
    return [masked(document_to_record(document)) for document in documents], total


def inspect(connection: Connection, token_id: str) -> dict[str, Any] | None:
    """Every field of one token, secrets masked, with its timestamps and status."""
    token_id = check_text("id", token_id, required=True)
    document = connection.store.call("read the token", lambda: connection.tokens.find_one({"_id": token_id}))
    if document is None:
        return None
    record = masked(document_to_record(document))
    for key in ("created_at", "updated_at"):
        if document.get(key) is not None:
            record[key] = document[key]
    if "malformed" not in record:
        record["status"] = admin.status_of(document.get("expiry_time"), document.get("access_token") is not None)
    return record


def delete(connection: Connection, ids: list[str], who: str) -> int:
    """Delete these tokens, recording who, when, which ids and user names first."""
    ids = [check_text("id", token_id, required=True) for token_id in ids]
    if not ids:
        raise store_error("no token selected")
    with connection.store.guard("delete the tokens"):
        return admin.audited_delete(connection.tokens, connection.audit, ids, who)


def delete_all(connection: Connection, who: str, typed_name: str) -> int:
    """Delete every token, only when the operator typed the collection's name."""
    if typed_name != connection.tokens.name:
        raise store_error("the typed name does not match the collection; nothing deleted")
    with connection.store.guard("delete all tokens"):
        return admin.audited_delete(connection.tokens, connection.audit, None, who)


def audit_entries(connection: Connection, limit: int = 200) -> list[dict[str, Any]]:
    return connection.store.call("read the audit log", lambda: list(
        connection.audit.find({}, {"_id": False}).sort("at", DESCENDING).limit(limit)))
