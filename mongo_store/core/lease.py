"""Refresh coordination: when a stored access token reaches the SDK's refresh window, one worker
takes a short lease and refreshes it; the others wait briefly and get the refreshed token.

Zoho issues at most 10 access tokens per refresh token in 10 minutes and keeps 15 active, so
twenty workers refreshing one user at once fail in production. The lease is a date field set by
one ``find_one_and_update`` (atomic on the server); ``save_token`` removes it, and it lapses by
itself if its holder dies. Dates come from the workers' clocks: keep them in sync (NTP).

A refresh that fails (Zoho refused the refresh token, or the call failed) is recorded at once by
the holder (``record_failure``); one that never ends (its holder died, or hangs) when its lease
lapses without a save. From then on callers do not wait for anyone: they fail at once with
``RefreshFailing``, and one caller per back-off window (``Backoff``: 30 s, doubling, at most
5 min) is let through to try again, so Zoho sees a bounded number of attempts however many
requests arrive. The next save (a successful refresh, or a new login) ends it. The same fields
feed the operators' health view (``tools/health.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.collection import Collection

from . import errors, reasons
from .clock import utcnow
from .mapping import (
    CLAIM_FIELD,
    FAILED_AT_FIELD,
    FAILING_SINCE_FIELD,
    FAILURES_FIELD,
    LEASE_FIELD,
    REASON_FIELD,
    RETRY_FIELD,
    STARTED_FIELD,
)
from .masking import ago, iso

REFRESH_WINDOW = timedelta(milliseconds=5000)
"""The SDK refreshes when ``expires_in - now < 5000`` ms (OAuthToken.get_token)."""
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Backoff:
    """How long callers leave a token alone after its n-th failed refresh in a row: ``first``
    seconds, doubling each time, at most ``longest``."""

    first: float = 30.0
    longest: float = 300.0

    def after(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.first * 2 ** max(0, min(failures, 64) - 1), self.longest))


def __getattr__(name: str) -> Any:
    """``RefreshFailing`` is the SDK's exception (``errors``), built on first use: this module is on
    the admin path, which does not import the SDK."""
    if name == "RefreshFailing":
        return errors.RefreshFailing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def needs_refresh(document: dict[str, Any], now: datetime, margin: timedelta = timedelta(0)) -> bool:
    """Whether the SDK will refresh this stored token now (it can only with a refresh token).
    ``margin`` widens the window: the SDK decides a little later than the store, by its own clock,
    so the store decides early enough that the two agree (``store.py``)."""
    if not document.get("refresh_token"):
        return False
    if document.get("access_token") is None:
        return True
    expiry = document.get("expiry_time")
    return expiry is not None and expiry - now < REFRESH_WINDOW + margin


def failures(document: dict[str, Any]) -> int:
    """Failed refreshes since the last save (a hand-edited value that is no count counts as none)."""
    count = document.get(FAILURES_FIELD)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def _date(document: dict[str, Any], field: str) -> datetime | None:
    value = document.get(field)
    return value if isinstance(value, datetime) else None


def take(collection: Collection, document: dict[str, Any], seconds: float, backoff: Backoff,
         lapsed: Callable[[dict[str, Any]], object] | None = None) -> dict[str, Any] | None:
    """Become the one caller that refreshes this token, as observed: returns the document as it now
    is (holding this caller's lease), or None when that is not this caller's to do (another worker
    holds a live lease: no round trip; or changed the token or took its lease since ``document``
    was read: look again). Raises
    ``RefreshFailing`` inside a back-off window. A lapsed lease is a failed refresh (its holder
    died, or its refresh never answered): it is counted in the same update, and while the back-off
    window of that attempt (from its start) is open, the lease is ended and the caller refused, so
    a refresh that hangs is tried once per window too. Of the workers that saw the lease lapse,
    only the one whose update matches counts it, and calls ``lapsed(document)`` (the history's
    "refresh-failed"; it must not raise)."""
    now = utcnow()
    refused = refusal(document, now)
    if refused is not None:
        raise refused
    lease = document.get(LEASE_FIELD)
    if isinstance(lease, datetime) and lease > now:
        return None
    query = {
        "_id": document["_id"],
        "access_token": document.get("access_token"),  # unchanged since we read it: not yet refreshed
        "expiry_time": document.get("expiry_time"),
        LEASE_FIELD: lease,  # None also matches a missing field
        # Nobody took the lease since we read: a refresh that failed meanwhile ended its lease, so
        # the token is "not leased" again, but its window is open and this view predates it.
        STARTED_FIELD: document.get(STARTED_FIELD),
    }
    fields: dict[str, Any] = {}
    if lease is not None:  # its holder set out to refresh and never saved: that refresh failed
        failed_at = lease if isinstance(lease, datetime) else now
        count = failures(document) + 1
        fields = {FAILURES_FIELD: count, FAILED_AT_FIELD: failed_at, REASON_FIELD: reasons.UNREACHABLE,
                  FAILING_SINCE_FIELD: _date(document, FAILING_SINCE_FIELD) or failed_at}
        retry = (_date(document, STARTED_FIELD) or failed_at) + reasons.window(backoff, count, reasons.UNREACHABLE)
        if retry > now:
            fields[RETRY_FIELD] = retry
            if not collection.update_one(query, {"$set": fields, "$unset": {LEASE_FIELD: ""}}).modified_count:
                return None
            if lapsed is not None:
                lapsed(document)
            ended = {key: value for key, value in document.items() if key != LEASE_FIELD} | fields
            raise refusal(ended, now) or errors.RefreshFailing(f"the refresh of token {document['_id']!r} failed")
    fields |= {LEASE_FIELD: now + timedelta(seconds=seconds), STARTED_FIELD: now}
    # A worker that refreshes ends a cleanup's claim left behind (a killed run): no run may revoke
    # the refresh token under it.
    update = {"$set": fields, "$unset": {CLAIM_FIELD: ""}}
    if collection.find_one_and_update(query, update, projection={"_id": True}) is None:
        return None
    if lease is not None and lapsed is not None:
        lapsed(document)
    return document | fields


def record_failure(collection: Collection, document: dict[str, Any], lease: datetime, backoff: Backoff,
                   reason: str = reasons.UNREACHABLE) -> datetime | None:
    """The lease holder's refresh failed for ``reason`` (``reasons.py``): end its lease and open the
    back-off window that reason gets, in one update that applies only while that lease is still the
    token's (no save came in between). Returns the end of the window, or None when the update did
    not apply."""
    now = utcnow()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as stored (BSON dates hold milliseconds)
    count = failures(document) + 1
    retry = now + reasons.window(backoff, count, reason)
    update = {"$unset": {LEASE_FIELD: ""},
              "$set": {FAILURES_FIELD: count, FAILED_AT_FIELD: now, RETRY_FIELD: retry, REASON_FIELD: reason,
                       FAILING_SINCE_FIELD: _date(document, FAILING_SINCE_FIELD) or now}}
    applied = collection.update_one({"_id": document["_id"], LEASE_FIELD: lease}, update).modified_count == 1
    return retry if applied else None


def refusal(document: dict[str, Any], now: datetime) -> errors.RefreshFailing | None:
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
    reason = reasons.known(document.get(REASON_FIELD))
    return errors.RefreshFailing(f"the refresh of token {document['_id']!r} keeps failing ({count} failed refresh(es){when}); "
                                 f"{nxt}. {reasons.why(reason)}", reason,
                                 retry if retry is not None and retry > now else None)


def coordinate(collection: Collection, document: dict[str, Any], projection: dict[str, Any], lease: float,
               wait: float, backoff: Backoff, sleep: Callable[[float], None] = time.sleep,
               run: Callable[[Callable[[], Any]], Any] = lambda work: work(),
               lapsed: Callable[[dict[str, Any]], object] | None = None,
               margin: timedelta = timedelta(0)) -> tuple[dict[str, Any] | None, datetime | None]:
    """(the document to hand the SDK, the lease this caller now holds or None). With a lease, the
    caller refreshes; without, the document is the refreshed one once it is saved. A token whose
    refresh keeps failing raises ``RefreshFailing`` at once (``take``). After ``wait`` seconds the
    caller gets the document and refreshes itself: waits are bounded. ``run`` performs each
    database call (the store's failover and error handling); ``lapsed`` is ``take``'s; ``margin``
    is ``needs_refresh``'s."""
    deadline = time.monotonic() + wait
    current: dict[str, Any] | None = document
    while True:
        if current is None or not needs_refresh(current, utcnow(), margin):
            return current, None
        seen = current
        held = run(lambda: take(collection, seen, lease, backoff, lapsed))
        if held is not None:
            return held, held[LEASE_FIELD]
        if time.monotonic() >= deadline:
            return current, None
        leased = _date(current, LEASE_FIELD)
        if leased is not None and leased > utcnow():
            sleep(POLL_SECONDS)  # another worker refreshes: look again shortly
        current = run(lambda: collection.find_one({"_id": document["_id"]}, projection))


def watch(token: Any, report: Callable[[BaseException], BaseException | None]) -> None:
    """Make the SDK's next refresh of ``token`` call ``report`` with the error if it fails (the
    history names Zoho's error code from it), so a refused refresh is known at once instead of when
    its lease lapses; the caller then gets the exception ``report`` returns (the store's
    ``RefreshFailing`` with its reason), from the SDK's, or the SDK's own when it returns None.
    Every SDK line refreshes through the token object the store handed out
    (``oauth_token.refresh_access_token(...)`` in ``get_token``); the watch wraps that one call on
    this one object, then removes itself. ``report`` must not raise."""
    refresh = type(token).refresh_access_token

    def refresh_access_token(*args: Any, **kwargs: Any) -> Any:
        token.__dict__.pop("refresh_access_token", None)
        try:
            return refresh(token, *args, **kwargs)
        except Exception as error:  # not a KeyboardInterrupt or a timeout of the caller's own: those are no refusal
            instead = report(error)
            if instead is None:
                raise
            raise instead from error

    token.refresh_access_token = refresh_access_token
