"""Refresh coordination: when a stored access token reaches the SDK's refresh window, one worker
takes a short lease and refreshes it; the others wait briefly and get the refreshed token.

Zoho issues at most 10 access tokens per refresh token in 10 minutes and keeps 15 active, so
twenty workers refreshing one user at once fail in production. The lease is a date field set by
one ``find_one_and_update`` (atomic on the server); ``save_token`` removes it, and it lapses by
itself if its holder dies. Dates come from the workers' clocks: keep them in sync (NTP).

The lease also records refresh outcomes, for the operators' health view (``admin.health_of``):
taking it stamps ``refresh_started_at``; taking over one that lapsed (its holder never saved)
counts a failed refresh in the same ``find_one_and_update``; the next save clears the count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from pymongo.collection import Collection

from .mapping import FAILED_AT_FIELD, FAILURES_FIELD, LEASE_FIELD, STARTED_FIELD

REFRESH_WINDOW = timedelta(milliseconds=5000)
"""The SDK refreshes when ``expires_in - now < 5000`` ms (OAuthToken.get_token)."""
POLL_SECONDS = 0.05
T = TypeVar("T")


def _direct(work: Callable[[], T]) -> T:
    return work()


def utcnow() -> datetime:
    """Naive UTC, as pymongo returns stored dates."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def needs_refresh(document: dict[str, Any], now: datetime) -> bool:
    """Whether the SDK will refresh this stored token now (it can only with a refresh token)."""
    if not document.get("refresh_token"):
        return False
    if document.get("access_token") is None:
        return True
    expiry = document.get("expiry_time")
    return expiry is not None and expiry - now < REFRESH_WINDOW


def acquire(collection: Collection, document: dict[str, Any], seconds: float) -> bool:
    """Take the lease on the token exactly as observed (its lease included), unless a live one is
    held: then no round trip. Taking over a lapsed lease counts a failed refresh, atomically: of
    the workers that saw it lapse, only the one whose update matches counts it."""
    now = utcnow()
    lease = document.get(LEASE_FIELD)
    if isinstance(lease, datetime) and lease > now:
        return False
    query = {
        "_id": document["_id"],
        "access_token": document.get("access_token"),  # unchanged since we read it: not yet refreshed
        "expiry_time": document.get("expiry_time"),
        LEASE_FIELD: lease,  # None also matches a missing field
    }
    update: dict[str, Any] = {"$set": {LEASE_FIELD: now + timedelta(seconds=seconds), STARTED_FIELD: now}}
    if lease is not None:  # its holder set out to refresh and never saved: that refresh failed
        update["$set"][FAILED_AT_FIELD] = lease
        update["$inc"] = {FAILURES_FIELD: 1}
    return collection.find_one_and_update(query, update, projection={"_id": True}) is not None


def coordinate(collection: Collection, document: dict[str, Any], projection: dict[str, Any], lease: float,
               wait: float, sleep: Callable[[float], None] = time.sleep,
               run: Callable[[Callable[[], Any]], Any] = _direct) -> dict[str, Any] | None:
    """The document to hand the SDK: as read if this worker now holds the lease (it refreshes),
    else the refreshed one once it is saved. After ``wait`` seconds, or when a lease lapses, the
    caller gets the document and refreshes itself: waits are bounded. ``run`` performs each
    database call (the store's failover and error handling)."""
    if run(lambda: acquire(collection, document, lease)):
        return document
    deadline = time.monotonic() + wait
    current: dict[str, Any] | None = document
    while time.monotonic() < deadline:
        sleep(POLL_SECONDS)
        current = run(lambda: collection.find_one({"_id": document["_id"]}, projection))
        if current is None or not needs_refresh(current, utcnow()):
            return current
        taken = current
        if run(lambda: acquire(collection, taken, lease)):  # the holder died or gave up: take over
            return current
    return current
