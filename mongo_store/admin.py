"""Operator queries (stats, filtered and paged lists), shared by the CLI and the dashboard.

All of them run on the server, with projections and the store's indexes: nothing here loads the
whole collection. Secrets are never searchable: a secret typed into a search box ends up in logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from .lease import REFRESH_WINDOW, utcnow
from .mapping import check_text


STATUSES = ("valid", "refresh-window", "within-hour", "expired")
LIST_FIELDS = {"_id": True, "user_name": True, "client_id": True, "api_domain": True, "expiry_time": True,
               "updated_at": True, "access_token": True, "refresh_token": True, "grant_token": True}
SEARCH_FIELDS = ("user_name", "client_id", "_id")


def status_filter(status: str, now: datetime) -> dict[str, Any]:
    """The filter for a token status; each one is a range on the ``expiry_time`` index."""
    soon, hour = now + REFRESH_WINDOW, now + timedelta(hours=1)
    filters = {
        "valid": {"expiry_time": {"$gt": soon}},
        "refresh-window": {"expiry_time": {"$gt": now, "$lte": soon}},
        "within-hour": {"expiry_time": {"$gt": now, "$lte": hour}},
        "expired": {"expiry_time": {"$lte": now}},
    }
    if status not in filters:
        raise ValueError(f"unknown status {status!r}; choose from {', '.join(STATUSES)}")
    return filters[status]


@dataclass(frozen=True)
class Query:
    """What an operator asked to see. ``search`` is a prefix of a user name, client id or token id."""

    search: str | None = None
    search_in: str = "user_name"
    status: str | None = None
    api_domain: str | None = None
    descending: bool = False

    def to_filter(self, now: datetime) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = []
        if self.search:
            if self.search_in not in SEARCH_FIELDS:
                raise ValueError(f"search_in must be one of {', '.join(SEARCH_FIELDS)}")
            text = check_text("search", self.search)
            clauses.append({self.search_in: {"$regex": "^" + re.escape(text)}})  # anchored: an index range
        if self.status:
            clauses.append(status_filter(self.status, now))
        if self.api_domain:
            clauses.append({"api_domain": check_text("api_domain", self.api_domain)})
        return {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})

    def sort_key(self) -> str:
        """Sort on the field the filter narrows, so one index serves both."""
        if self.search:
            return self.search_in
        if self.status:
            return "expiry_time"
        return "api_domain" if self.api_domain else "_id"


def page(collection: Collection, query: Query, number: int = 1, size: int = 50,
         now: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
    """One page of documents (no secrets beyond what ``LIST_FIELDS`` names) and the match count."""
    if number < 1 or not 1 <= size <= 1000:
        raise ValueError("page numbers start at 1 and a page holds 1 to 1000 tokens")
    where = query.to_filter(now or utcnow())
    key, direction = query.sort_key(), DESCENDING if query.descending else ASCENDING
    order = [(key, direction), ("_id", direction)] if key != "_id" else [("_id", direction)]
    cursor = collection.find(where, LIST_FIELDS).sort(order)
    documents = list(cursor.skip((number - 1) * size).limit(size))
    total = collection.count_documents(where) if where else collection.estimated_document_count()
    return documents, total


def stats(collection: Collection, now: datetime | None = None) -> dict[str, Any]:
    """Counts for the overview: every one an index count, none a collection scan."""
    now = now or utcnow()
    counts: dict[str, Any] = {"total": collection.estimated_document_count()}
    for status in STATUSES:
        counts[status] = collection.count_documents(status_filter(status, now))
    counts["with-user-name"] = collection.count_documents({"user_name": {"$exists": True}}, hint="user_name_unique")
    counts["with-access-token"] = collection.count_documents({"access_token": {"$exists": True}}, hint="access_token")
    counts["with-refresh-token"] = collection.count_documents(
        {"refresh_token": {"$exists": True}}, hint="refresh_token_unique"
    )
    counts["per-api-domain"] = {
        domain: collection.count_documents({"api_domain": domain}) for domain in stats_domains(collection)
    }
    return counts


def stats_domains(collection: Collection) -> list[str]:
    """The data centers (api_domain values) in use, read from the index."""
    return sorted(collection.distinct("api_domain"))
