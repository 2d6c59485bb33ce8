"""Refresh coordination: when a stored access token reaches the SDK's refresh window, one worker
takes a short lease and refreshes it; the others wait briefly and get the refreshed token.

Zoho issues at most 10 access tokens per refresh token in 10 minutes and keeps 15 active, so
twenty workers refreshing one user at once fail in production. The lease is a date field set by
one ``find_one_and_update`` (atomic on the server); ``save_token`` removes it, and it lapses by
itself if its holder dies. Dates come from the workers' clocks: keep them in sync (NTP).

A refresh that fails (Zoho refused the refresh token, or it never answered) is recorded at once
by the holder (``record_failure``), or when its lease lapses without a save. From then on callers
do not wait for anyone: they fail at once with ``RefreshFailing``, and one caller per back-off
window (``Backoff``: 30 s, doubling, at most 5 min) is let through to try again, so Zoho sees a
bounded number of attempts however many requests arrive. The next save (a successful refresh, or
a new login) ends it. The same fields feed the operators' health view (``admin.health_of``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo.collection import Collection
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from .errors import CODE
from .mapping import FAILED_AT_FIELD, FAILING_SINCE_FIELD, FAILURES_FIELD, LEASE_FIELD, RETRY_FIELD, STARTED_FIELD
from .masking import ago, iso

REFRESH_WINDOW = timedelta(milliseconds=5000)
"""The SDK refreshes when ``expires_in - now < 5000`` ms (OAuthToken.get_token)."""
POLL_SECONDS = 0.05


class RefreshFailing(SDKException):
    """A token whose refresh keeps failing, asked for inside its back-off window (or while the one
    caller let through is trying): refused at once instead of waiting, with when it failed and
    when it will next be tried."""

    def __init__(self, message: str) -> None:
        super().__init__(code=CODE, message=message)


@dataclass(frozen=True)
class Backoff:
    """How long callers leave a token alone after its n-th failed refresh in a row: ``first``
    seconds, doubling each time, at most ``longest``."""

    first: float = 30.0
    longest: float = 300.0

    def after(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.first * 2 ** max(0, min(failures, 64) - 1), self.longest))


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


def failures(document: dict[str, Any]) -> int:
    """Failed refreshes since the last save (a hand-edited value that is no count counts as none)."""
    count = document.get(FAILURES_FIELD)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def _date(document: dict[str, Any], field: str) -> datetime | None:
    value = document.get(field)
    return value if isinstance(value, datetime) else None


def acquire(collection: Collection, document: dict[str, Any], seconds: float) -> datetime | None:
    """Take the lease on the token exactly as observed (its lease included); returns the lease taken,
    or None when another worker changed the token first. Taking over a lapsed lease counts a failed
    refresh, atomically: of the workers that saw it lapse, only the one whose update matches counts it."""
    now = utcnow()
    lease = document.get(LEASE_FIELD)
    query = {
        "_id": document["_id"],
        "access_token": document.get("access_token"),  # unchanged since we read it: not yet refreshed
        "expiry_time": document.get("expiry_time"),
        LEASE_FIELD: lease,  # None also matches a missing field
    }
    taken = now + timedelta(seconds=seconds)
    update: dict[str, Any] = {"$set": {LEASE_FIELD: taken, STARTED_FIELD: now}}
    if lease is not None:  # its holder set out to refresh and never saved: that refresh failed
        failed_at = lease if isinstance(lease, datetime) else now
        update["$set"] |= {FAILURES_FIELD: failures(document) + 1, FAILED_AT_FIELD: failed_at,
                           FAILING_SINCE_FIELD: _date(document, FAILING_SINCE_FIELD) or failed_at}
    return taken if collection.find_one_and_update(query, update, projection={"_id": True}) is not None else None


def record_failure(collection: Collection, document: dict[str, Any], lease: datetime, backoff: Backoff) -> bool:
    """The lease holder's refresh failed: end its lease and open the back-off window, in one update
    that applies only while that lease is still the token's (no save came in between)."""
    now = utcnow()
    count = failures(document) + 1
    update = {"$unset": {LEASE_FIELD: ""},
              "$set": {FAILURES_FIELD: count, FAILED_AT_FIELD: now, RETRY_FIELD: now + backoff.after(count),
                       FAILING_SINCE_FIELD: _date(document, FAILING_SINCE_FIELD) or now}}
    return collection.update_one({"_id": document["_id"], LEASE_FIELD: lease}, update).modified_count == 1


def refusal(document: dict[str, Any], now: datetime) -> RefreshFailing | None:
    """Why a caller must not refresh this token now, or None: it failed before, and either its back-off
    window is open or the one caller let through is trying."""
    count = failures(document)
    if not count:
        return None
    lease, retry = _date(document, LEASE_FIELD), _date(document, RETRY_FIELD)
    if lease is not None and lease > now:
        nxt = "one caller is trying again now"
    elif retry is not None and retry > now:
        nxt = f"the next attempt is at {iso(retry)} ({ago(retry, now)})"
    else:
        return None
    since = _date(document, FAILING_SINCE_FIELD) or _date(document, FAILED_AT_FIELD)
    when = f" since {iso(since)}" if since is not None else ""
    return RefreshFailing(f"the refresh of token {document['_id']!r} keeps failing ({count} failed refresh(es){when}); "
                          f"{nxt}. A new login (a new grant token) ends this at once; if Zoho revoked the "
                          "refresh token, the user must authorize the app again")


def coordinate(collection: Collection, document: dict[str, Any], projection: dict[str, Any], lease: float,
               wait: float, sleep: Callable[[float], None] = time.sleep,
               run: Callable[[Callable[[], Any]], Any] = lambda work: work()) -> tuple[dict[str, Any] | None, datetime | None]:
    """(the document to hand the SDK, the lease this caller now holds or None). With a lease, the
    caller refreshes; without, the document is the refreshed one once it is saved. A token whose
    refresh keeps failing raises ``RefreshFailing`` at once. After ``wait`` seconds the caller gets
    the document and refreshes itself: waits are bounded. ``run`` performs each database call (the
    store's failover and error handling)."""
    deadline = time.monotonic() + wait
    current: dict[str, Any] | None = document
    while True:
        now = utcnow()
        if current is None or not needs_refresh(current, now):
            return current, None
        refused = refusal(current, now)
        if refused is not None:
            raise refused
        held = _date(current, LEASE_FIELD)
        live = held is not None and held > now
        if not live:
            seen = current
            taken = run(lambda: acquire(collection, seen, lease))
            if taken is not None:
                return current, taken
        if time.monotonic() >= deadline:
            return current, None
        if live:
            sleep(POLL_SECONDS)
        current = run(lambda: collection.find_one({"_id": document["_id"]}, projection))


def watch(token: Any, report: Callable[[], None]) -> None:
    """Make the SDK's next refresh of ``token`` call ``report`` if it fails, so a refused refresh
    is known at once instead of when its lease lapses. Every SDK line refreshes through the token
    object the store handed out (``oauth_token.refresh_access_token(...)`` in ``get_token``); the
    watch wraps that one call on this one object, then removes itself. ``report`` must not raise."""
    refresh = type(token).refresh_access_token

    def refresh_access_token(*args: Any, **kwargs: Any) -> Any:
        token.__dict__.pop("refresh_access_token", None)
        try:
            return refresh(token, *args, **kwargs)
        except BaseException:
            report()
            raise

    token.refresh_access_token = refresh_access_token
