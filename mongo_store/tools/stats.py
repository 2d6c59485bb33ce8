"""Counts for the operators: by health, expiry status and data center, every one an index count
(none a collection scan), run side by side. ``stats``, the dashboard's Overview and the exporter
count with the same function (docs/benchmark.md has the figures at a million tokens)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection

from ..core.clock import utcnow
from .health import NO_REFRESH_INDEX, STATUSES, health_counts, health_queries, status_filter


def stats(collection: Collection, now: datetime | None = None,
          extra: dict[str, tuple[dict[str, Any], str | None]] | None = None, *, overview: bool = True) -> dict[str, Any]:
    """Counts for the overview, every one an index count (none a collection scan), run side by
    side (docs/benchmark.md). ``health`` holds the four states' counts, ``total`` the exact number
    of tokens, ``per-api-domain`` the data centers'; ``overview=False`` leaves out the expiry
    statuses and the with-a-value counts (the exporter needs neither); ``extra``: more named counts."""
    now = now or utcnow()
    domains = stats_domains(collection)
    queries: dict[str, tuple[dict[str, Any], str | None]] = {}
    if overview:
        queries |= {status: (status_filter(status, now), None) for status in STATUSES}
        queries |= {
            "with-user-name": ({"user_name": {"$exists": True}}, "user_name_unique"),
            "with-access-token": ({"access_token": {"$exists": True}}, "access_token"),
            "with-refresh-token": ({"refresh_token": {"$exists": True}}, "refresh_token_unique"),
        }
    real = isinstance(collection.database.client, MongoClient)  # mongomock has no partial indexes
    narrow = real and NO_REFRESH_INDEX in collection.index_information()
    queries |= {f"health:{name}": query for name, query in health_queries(now, narrow).items()}
    queries |= {f"domain:{domain}": ({"api_domain": domain}, None) for domain in domains}
    queries |= extra or {}
    # The same count asked under two names (a health range is a status one) is run once.
    unique = {repr(query): query for query in queries.values()}

    def count(key: str) -> int:
        where, hint = unique[key]
        return collection.count_documents(where, hint=hint) if hint else collection.count_documents(where)

    if real:
        with ThreadPoolExecutor(max_workers=4) as pool:
            counted = dict(zip(unique, pool.map(count, unique), strict=True))
    else:  # mongomock is not thread-safe
        counted = {key: count(key) for key in unique}
    found = {name: counted[repr(query)] for name, query in queries.items()}
    counts: dict[str, Any] = {"total": found["health:all"]}
    counts["health"] = health_counts({name.removeprefix("health:"): value for name, value in found.items()
                                      if name.startswith("health:")})
    counts |= {name: value for name, value in found.items() if not name.startswith(("domain:", "health:"))}
    counts["per-api-domain"] = {domain: found[f"domain:{domain}"] for domain in domains}
    return counts


def stats_domains(collection: Collection) -> list[str]:
    """The data centers (api_domain values) in use, read from the index (a hand-edited value that is
    not a string is left out)."""
    return sorted(domain for domain in collection.distinct("api_domain") if isinstance(domain, str))
