"""Operator queries: what an operator asked to see (``Query``), as one server-side filter, and the
page of it by skip and limit. Shared by the CLI and the dashboard.

All of them run on the server, with projections and the store's indexes: nothing here loads the
whole collection. Secrets are never searchable: a secret typed into a search box ends up in logs.
Keyset paging, at any depth, is ``paging.py``; the health filters are ``health.py``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from ..core.clock import utcnow
from ..core.mapping import (
    CHECK_ERROR_FIELD,
    FAILED_AT_FIELD,
    FAILURES_FIELD,
    ISSUED_FIELD,
    LEASE_FIELD,
    REFRESHED_FIELD,
    RETRY_FIELD,
    check_text,
)
from ..core.search import describe, search_filter
from . import datacenters
from .health import ATTENTION, attention_filter, category_filter, health_filter, status_filter

LIST_FIELDS = {"_id": True, "user_name": True, "client_id": True, "api_domain": True, "expiry_time": True,
               "updated_at": True, "access_token": True, "refresh_token": True, "grant_token": True,
               REFRESHED_FIELD: True, LEASE_FIELD: True, FAILURES_FIELD: True, FAILED_AT_FIELD: True,
               RETRY_FIELD: True, CHECK_ERROR_FIELD: True, ISSUED_FIELD: True}
COUNT_CAP = 10_000
"""A page's match count stops here ("10,000+"): counting a million matches takes seconds."""
DATA_CENTERS = datacenters.DOMAINS
"""Zoho's data centers by their one name (``datacenters.py``), and the api_domain each one's tokens carry."""


def data_center(text: str) -> str:
    """The api_domain for a data center given as ``EU``, ``eu``, ``com.au``, ``www.zohoapis.eu`` or the URL."""
    found = datacenters.known(text)
    if found is None:
        raise ValueError(f"{text!r} is no Zoho data center; use one of {', '.join(DATA_CENTERS)} (or its URL)")
    return DATA_CENTERS[found]


def describe_search(text: str) -> str:
    """A sentence saying what a search looked at (for an empty result)."""
    return describe(text)


def describe_empty(query: Query) -> str:
    """An empty result in one sentence naming every filter it had, so a search that finds nothing
    under a filter is not read as a search that finds nothing: "no token matches all of: the search
    'wayne' (...), health unusable"."""
    from .health import BY_KEY

    filters = [f"health {'failing or unusable (needs attention)' if query.health == ATTENTION else query.health}"
               if query.health else "",
               f"why: {BY_KEY[query.reason].label}" if query.reason in BY_KEY else "",
               f"access token {query.status}" if query.status else "",
               f"data center {datacenters.name(query.api_domain)}" if query.api_domain else ""]
    filters = [part for part in filters if part]
    if query.search and query.search.strip():
        typed = query.search.strip()
        searched = (f"the search {typed!r} (the start of a user name's e-mail, e-mail domain or org id, any case, "
                    "or of a token id)")
        if not filters:
            return describe(typed)
        return f"no token matches all of: {searched}, " + ", ".join(filters) + \
            " (clear a filter to see what the search alone finds)"
    return "no token matches " + (("all of: " + ", ".join(filters)) if filters else "(no filter is set: the collection is empty)")


SORTS = {"user": "user_name", "expiry": "expiry_time", "refreshed": REFRESHED_FIELD}
"""``--sort`` names and the field each orders by (each has a sparse index)."""


@dataclass(frozen=True)
class Query:
    """What an operator asked to see. ``search``: one text, the start of a user name's e-mail, its
    domain or its org id (any case), or of a token id (``search.py``); ``sort`` one of ``SORTS``
    (else the field the filter narrows)."""

    search: str | None = None
    status: str | None = None
    api_domain: str | None = None
    descending: bool = False
    health: str | None = None
    sort: str | None = None
    reason: str | None = None
    """One of ``health.REASONS`` by key: the tokens whose first reason it is (the Overview's tiles)."""

    def to_filter(self, now: datetime, *, ids_only: bool = False) -> dict[str, Any]:
        """The server-side filter. ``ids_only``: for the tokens without a user name, which have no
        search keys, so a search can match only their id (``paging.py`` lists them apart)."""
        clauses: list[dict[str, Any]] = []
        if self.search and self.search.strip():
            clauses.append(search_filter(self.search, ids_only=ids_only))  # anchored regexes: index ranges
        if self.status:
            clauses.append(status_filter(self.status, now))
        if self.health == ATTENTION:
            clauses.append(attention_filter(now))
        elif self.health:
            clauses.append(health_filter(self.health, now))
        if self.reason:
            clauses.append(category_filter(self.reason, now))
        if self.api_domain:
            clauses.append({"api_domain": check_text("api_domain", self.api_domain)})
        return {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})

    def sort_key(self) -> str:
        """The asked order, else the field the filter narrows, so one index serves both (people,
        by user name, for a search). Ties are broken by id (``paging.py``)."""
        if self.sort is not None:
            if self.sort not in SORTS:
                raise ValueError(f"unknown sort {self.sort!r}; choose from {', '.join(SORTS)}")
            return SORTS[self.sort]
        if self.search and self.search.strip():
            return "user_name"
        if self.status:
            return "expiry_time"
        return "api_domain" if self.api_domain else "_id"


def page(collection: Collection, query: Query, number: int = 1, size: int = 50,
         now: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
    """One page by skip and limit (and the match count, capped past ``COUNT_CAP``), in the order
    ``paging.page`` walks by keyset: kept for ``bench/admin.py``, which measures the two side by
    side. A deep page costs as many index keys as it skips: list with ``paging.page``."""
    if number < 1 or not 1 <= size <= 1000:
        raise ValueError("page numbers start at 1 and a page holds 1 to 1000 tokens")
    where = query.to_filter(now or utcnow())
    key, skip = query.sort_key(), (number - 1) * size
    direction = DESCENDING if query.descending else ASCENDING
    if key == "_id":
        documents = list(collection.find(where, LIST_FIELDS).sort("_id", direction).skip(skip).limit(size))
    else:
        having = _both(where, {key: {"$ne": None}})
        documents = list(collection.find(having, LIST_FIELDS).sort([(key, direction), ("_id", direction)])
                         .skip(skip).limit(size))
        if len(documents) < size:
            # Where the tokens without the field start: known from this page unless it is empty.
            before = skip + len(documents) if documents or not skip else collection.count_documents(having, limit=skip)
            lacking = _both(where, {key: None})
            documents += list(collection.find(lacking, LIST_FIELDS).sort([(key, ASCENDING), ("_id", ASCENDING)])
                              .skip(max(0, skip - before)).limit(size - len(documents)))
    total = collection.count_documents(where, limit=COUNT_CAP + 1) if where else collection.estimated_document_count()
    return documents, total


def _both(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {"$and": [first, second]} if first else second


def shown_total(total: int) -> str:
    """``10,000+`` when a filtered count stopped at the cap (exactly one past it)."""
    return f"{COUNT_CAP:,}+" if total == COUNT_CAP + 1 else f"{total:,}"
