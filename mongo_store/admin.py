"""Operator queries (stats, filtered and paged lists), shared by the CLI and the dashboard.

All of them run on the server, with projections and the store's indexes: nothing here loads the
whole collection. Secrets are never searchable: a secret typed into a search box ends up in logs.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection

from .lease import REFRESH_WINDOW, utcnow
from .mapping import check_text

STATUSES = ("valid", "refresh-window", "within-hour", "expired")
LIST_FIELDS = {"_id": True, "user_name": True, "client_id": True, "api_domain": True, "expiry_time": True,
               "updated_at": True, "access_token": True, "refresh_token": True, "grant_token": True}
SEARCH_FIELDS = ("user_name", "client_id", "_id")
COUNT_CAP = 10_000
"""A page's match count stops here ("10,000+"): counting a million matches takes seconds."""


DATA_CENTERS = {name: f"https://www.zohoapis.{name}" for name in ("com", "eu", "in", "com.au", "jp", "ca",
                                                                  "com.cn", "sa")}
"""Zoho's data centers as operators name them, and the api_domain each one's tokens carry."""
_ALIASES = {"us": "com", "au": "com.au", "cn": "com.cn"}


def data_center(text: str) -> str:
    """The api_domain for a data center given as ``eu``, ``com.au``, ``www.zohoapis.eu`` or the URL."""
    name = text.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    name = name.removeprefix("www.").removeprefix("zohoapis.")
    name = _ALIASES.get(name, name)
    if name not in DATA_CENTERS:
        raise ValueError(f"{text!r} is no Zoho data center; use one of {', '.join(DATA_CENTERS)} (or its URL)")
    return DATA_CENTERS[name]


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


def status_of(expiry: datetime | None, has_access: bool, now: datetime | None = None) -> str:
    """One token's status, for a person reading it: the same boundaries as ``status_filter``."""
    now = now or utcnow()
    if not has_access:
        return "no access token"
    if expiry is None:
        return "no expiry"
    if expiry.tzinfo is not None:
        expiry = expiry.replace(tzinfo=None) - (expiry.utcoffset() or timedelta(0))
    if expiry <= now:
        return "expired"
    return "in refresh window" if expiry - now <= REFRESH_WINDOW else "valid"


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
            text = check_text("search", self.search, required=True)
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
    """One page of documents (no secrets beyond what ``LIST_FIELDS`` names) and the match count
    (a filtered count stops just past ``COUNT_CAP``)."""
    if number < 1 or not 1 <= size <= 1000:
        raise ValueError("page numbers start at 1 and a page holds 1 to 1000 tokens")
    where = query.to_filter(now or utcnow())
    # One key, so its single-field index serves the order (adding _id would sort in memory);
    # equal keys come back in the index's stable order.
    cursor = collection.find(where, LIST_FIELDS).sort(query.sort_key(), DESCENDING if query.descending else ASCENDING)
    documents = list(cursor.skip((number - 1) * size).limit(size))
    total = collection.count_documents(where, limit=COUNT_CAP + 1) if where else collection.estimated_document_count()
    return documents, total


AUDIT_COLLECTION = "dashboard_audit"
"""Where deletions are recorded (``DASHBOARD_AUDIT_COLLECTION`` names another), by the dashboard and the CLI."""


def audited_delete(tokens: Collection, audit: Collection, ids: list[str] | None, who: str) -> int:
    """Delete these tokens (``None``: all of them), recording when, who, which ids and user names
    first, and how many were deleted after. Never a secret."""
    now = utcnow()
    if ids is None:
        entry = audit.insert_one({"at": now, "who": who, "action": "delete-all", "ids": [], "user_names": [],
                                  "expected": tokens.estimated_document_count(), "deleted": None})
        deleted = tokens.delete_many({}).deleted_count  # documents only: the indexes stay
    else:
        names = [d.get("user_name") for d in tokens.find({"_id": {"$in": ids}}, {"user_name": True})]
        entry = audit.insert_one({"at": now, "who": who, "action": "delete", "ids": ids,
                                  "user_names": [name for name in names if name], "deleted": None})
        deleted = tokens.delete_many({"_id": {"$in": ids}}).deleted_count
    audit.update_one({"_id": entry.inserted_id}, {"$set": {"deleted": deleted}})
    return deleted


def shown_total(total: int) -> str:
    """``10,000+`` when a filtered count stopped at the cap (exactly one past it)."""
    return f"{COUNT_CAP:,}+" if total == COUNT_CAP + 1 else f"{total:,}"


def stats(collection: Collection, now: datetime | None = None,
          extra: dict[str, tuple[dict[str, Any], str]] | None = None) -> dict[str, Any]:
    """Counts for the overview, every one an index count (none a collection scan), run side by
    side: at a million tokens each takes a fraction of a second. ``extra``: more named counts."""
    now = now or utcnow()
    domains = stats_domains(collection)
    queries: dict[str, tuple[dict[str, Any], str | None]] = {status: (status_filter(status, now), None)
                                                             for status in STATUSES}
    queries |= {
        "with-user-name": ({"user_name": {"$exists": True}}, "user_name_unique"),
        "with-access-token": ({"access_token": {"$exists": True}}, "access_token"),
        "with-refresh-token": ({"refresh_token": {"$exists": True}}, "refresh_token_unique"),
    }
    queries |= {f"domain:{domain}": ({"api_domain": domain}, None) for domain in domains}
    queries |= extra or {}

    def count(name: str) -> int:
        where, hint = queries[name]
        return collection.count_documents(where, hint=hint) if hint else collection.count_documents(where)

    if isinstance(collection.database.client, MongoClient):
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = dict(zip(queries, pool.map(count, queries), strict=True))
    else:  # mongomock is not thread-safe
        found = {name: count(name) for name in queries}
    counts: dict[str, Any] = {"total": collection.estimated_document_count()}
    counts |= {name: value for name, value in found.items() if not name.startswith("domain:")}
    counts["per-api-domain"] = {domain: found[f"domain:{domain}"] for domain in domains}
    return counts


def stats_domains(collection: Collection) -> list[str]:
    """The data centers (api_domain values) in use, read from the index (a hand-edited value that is
    not a string is left out)."""
    return sorted(domain for domain in collection.distinct("api_domain") if isinstance(domain, str))
