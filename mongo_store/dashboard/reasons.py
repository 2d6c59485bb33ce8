"""Why a token needs a person, in one short word each: the categories the Overview breaks the
failing and unusable tokens down by, and the filter of each, so every tile opens its own list.

A token falls in exactly one category, the first that holds in the order of ``admin.health_of``
(unusable first, then a counted failure, a lapsed lease, a failed check): the categories add up to
failing + unusable. The breakdown reads only the failing and unusable tokens (the health filters'
nearly empty indexes), never the whole collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection

from ..core.mapping import CHECK_ERROR_FIELD, FAILURES_FIELD, LEASE_FIELD
from ..tools import admin

REASONS = {
    "no-refresh-token": "no refresh token",
    "old-grant-token": "old grant token",
    "refresh-failed": "refresh failed",
    "lease-lapsed": "lease lapsed",
    "check-failed": "check failed",
}
"""Category key (in the URL) → its short name (on the Overview and in the filter)."""
REASON_HEALTH = {"no-refresh-token": "unusable", "old-grant-token": "unusable", "refresh-failed": "failing",
                 "lease-lapsed": "failing", "check-failed": "failing"}


def reason_filter(reason: str, now: datetime) -> dict[str, Any]:
    """The tokens of one category (exclusive: see the module's docstring)."""
    no_refresh, old_grant = admin._unusable(now)["$or"]
    unusable = {"$nor": [no_refresh, old_grant]}
    no_failures, lease_ok = {FAILURES_FIELD: {"$exists": False}}, {LEASE_FIELD: {"$not": {"$lte": now}}}
    filters = {
        "no-refresh-token": no_refresh,
        "old-grant-token": {"$and": [old_grant, {"$nor": [no_refresh]}]},
        "refresh-failed": {"$and": [{FAILURES_FIELD: {"$exists": True}}, unusable]},
        "lease-lapsed": {"$and": [no_failures, {LEASE_FIELD: {"$lte": now}}, unusable]},
        "check-failed": {"$and": [no_failures, lease_ok, {CHECK_ERROR_FIELD: {"$exists": True}}, unusable]},
    }
    if reason not in filters:
        raise ValueError(f"unknown reason {reason!r}; choose from {', '.join(REASONS)}")
    return filters[reason]


@dataclass(frozen=True)
class ReasonQuery(admin.Query):
    """An ``admin.Query`` narrowed to one category of ``REASONS`` (the Overview's tiles)."""

    reason: str | None = None

    def to_filter(self, now: datetime, *, ids_only: bool = False) -> dict[str, Any]:
        where = super().to_filter(now, ids_only=ids_only)
        if not self.reason:
            return where
        narrowed = reason_filter(self.reason, now)
        return {"$and": [where, narrowed]} if where else narrowed


def breakdown(tokens: Collection, now: datetime) -> list[dict[str, Any]]:
    """``[{"reason", "api_domain", "health", "tokens"}]``: the failing and unusable tokens counted
    by category and data center, biggest first. One small aggregation per category, each matching
    by that category's own filter (the one its tile opens), so a tile's count and its list agree;
    each reads only the tokens of its category, through the health filters' nearly empty indexes."""
    narrow = isinstance(tokens.database.client, MongoClient) and admin.NO_REFRESH_INDEX in tokens.index_information()
    found = []
    for reason in REASONS:
        first: list[dict[str, Any]] = []
        options: dict[str, Any] = {}
        if reason == "no-refresh-token" and narrow:
            # Through the partial index of the tokens without a refresh token (a few percent), as
            # the unusable count goes: a lapsed expiry alone would fetch every lapsed token.
            first = [{"$match": {"expiry_time": {"$lte": now}, "refresh_token": None}}]
            options["hint"] = admin.NO_REFRESH_INDEX
        rows = tokens.aggregate([*first, {"$match": reason_filter(reason, now)},
                                 {"$group": {"_id": "$api_domain", "n": {"$sum": 1}}}], **options)
        found += [{"reason": reason, "api_domain": row["_id"] if isinstance(row["_id"], str) else None,
                   "health": REASON_HEALTH[reason], "tokens": row["n"]} for row in rows]
    return sorted(found, key=lambda row: (-row["tokens"], row["reason"], str(row["api_domain"])))
