"""A cold start is one refresh: the first lookup of a refresh token that no stored token holds yet.

An app that builds its token from a refresh token on every start (``OAuthToken(client_id=...,
client_secret=..., refresh_token=...)``: the SDK looks it up with ``find_token``) finds nothing on
its very first run, and the SDK refreshes. With many workers starting together, every one of them
refreshed (9 workers, 9 refreshes within 60 ms: Zoho allows 10 per 10 minutes), and only one
document came out of it.

So the first lookup takes a lease keyed by the refresh token's digest (a keyed HMAC with encryption
on, else SHA-256: never the token) in a small collection of its own, ``<tokens>_cold_starts``: one
caller gets it and refreshes, and the others wait (polling the tokens, at most ``refresh_wait``)
until its save stores the token, which they then get. A lease is a document ``{_id: digest, until,
started_at, failures, retry_at, expires_at}``: it holds no secret, and it never shows as a token
(lists, counts, ``get_tokens`` read the tokens' collection only). It lapses at ``until`` when its
holder dies (then a waiter takes it over), and the TTL index on ``expires_at`` removes it later. A
save of that refresh token removes it. A first refresh that fails backs off as any refresh does
(``lease.Backoff``, by the failure's reason: ``reasons.py``): the holder and then the waiters fail at
once with ``RefreshFailing`` (its ``reason`` says what to do) until the window has passed.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from . import errors, reasons
from .clock import utcnow
from .lease import POLL_SECONDS, Backoff
from .masking import ago, iso

log = logging.getLogger("mongo_store")

SUFFIX = "_cold_starts"
KEPT = timedelta(minutes=10)
"""How long after its lease (or back-off window) ends the TTL index removes a lease document."""


def collection_for(tokens: Any) -> Any:
    """The cold-start leases of a tokens' collection (same database, write concern and reads)."""
    return tokens.database.get_collection(tokens.name + SUFFIX, codec_options=tokens.codec_options,
                                          write_concern=tokens.write_concern, read_preference=tokens.read_preference)


def keep(leases: Any) -> None:
    """The TTL index that removes lapsed leases; a failure (a user without createIndex, a server
    that does not answer) is a warning: a lapsed lease is taken over all the same."""
    try:
        leases.create_index([("expires_at", ASCENDING)], name="expires_at", expireAfterSeconds=0)
    except PyMongoError as error:
        log.warning("could not create the cold-start leases' TTL index on %s (%s): lapsed leases stay, "
                    "harmless", leases.name, type(error).__name__)


class ColdStarts:
    """Leases on first refreshes, for one store."""

    def __init__(self, leases: Any, run: Callable[[Callable[[], Any]], Any], keep_index: bool = True) -> None:
        """``run`` performs each database call (the store's failover and error handling);
        ``keep_index``: create the TTL index with the first cold start (a store's
        ``create_indexes``). It is made then, not with the store's other indexes: most stores
        never see a cold start, and their first call stays as short as it was."""
        self.leases, self.run = leases, run
        self._index_wanted = keep_index
        self.held: dict[str, tuple[datetime, int]] = {}
        """Leases this process holds: digest -> (until, failures before), until its save or failure."""

    def begin(self, digest: str, find: Callable[[], dict[str, Any] | None], lease: float, wait: float,
              sleep: Callable[[float], None] = time.sleep) -> tuple[dict[str, Any] | None, bool]:
        """(the stored document, once another caller's first refresh saved it; whether this caller
        now holds the lease, for ``lease`` seconds, and refreshes). (None, False): ``wait`` seconds
        ran out, and the caller refreshes on its own. ``find`` reads the tokens for this refresh
        token (from the primary). Raises ``RefreshFailing`` inside the back-off window of a failed
        first refresh."""
        deadline = time.monotonic() + wait
        if self._index_wanted:
            self._index_wanted = False
            self.run(lambda: keep(self.leases))
        while True:
            nonce, now = secrets.token_hex(8), utcnow()  # drawn once: a retried attempt knows its own lease
            taken = self.run(lambda: self._take(digest, nonce, now, lease))
            if taken is not None:
                # The token may have been saved between the caller's lookup and this lease.
                document = find()
                if document is not None:
                    self.release(digest, taken[0])
                    return document, False
                self.held[digest] = taken
                return None, True
            document = find()
            if document is not None:
                return document, False
            state = self.run(lambda: self.leases.find_one({"_id": digest}))
            if state is not None:
                refused = _refusal(state, utcnow())
                if refused is not None:
                    raise refused
            if time.monotonic() >= deadline:
                return None, False
            sleep(POLL_SECONDS)

    def _take(self, digest: str, nonce: str, now: datetime, lease: float) -> tuple[datetime, int] | None:
        """The lease, if no live lease or back-off window stands in the way: (until, failures before)."""
        until = now + timedelta(seconds=lease)
        takeable = {"_id": digest, "until": {"$lte": now},
                    "$or": [{"retry_at": {"$exists": False}}, {"retry_at": {"$lte": now}}]}
        update = {"$set": {"until": until, "started_at": now, "holder": nonce, "expires_at": until + KEPT}}
        try:
            document = self.leases.find_one_and_update(takeable, update, upsert=True, return_document=ReturnDocument.AFTER,
                                                       projection={"failures": True})
        except DuplicateKeyError:  # held (or backing off); or an earlier attempt of this one took it
            document = self.leases.find_one({"_id": digest, "holder": nonce}, {"failures": True})
            if document is None:
                return None
        failures = document.get("failures")
        return until, failures if isinstance(failures, int) and failures > 0 else 0

    def release(self, digest: str, until: datetime | None = None) -> None:
        """End a lease this process holds (its refresh token is saved now); a failure is harmless:
        the lease lapses."""
        held = self.held.pop(digest, None)
        until = until or (held[0] if held else None)
        if until is None:
            return
        try:
            self.run(lambda: self.leases.delete_one({"_id": digest, "until": until}))
        except Exception as error:
            log.info("could not end a cold-start lease (%s): it lapses by itself", errors.sentence(error))

    def failed(self, digest: str, backoff: Backoff, reason: str, why: str) -> BaseException | None:
        """The holder's first refresh failed for ``reason`` (``reasons.py``; ``why`` in words): end
        its lease and open the back-off window that reason gets, so the waiters fail at once instead
        of each trying in turn. The ``RefreshFailing`` the holder gets, as the others will (None when
        this process held no such lease)."""
        held = self.held.pop(digest, None)
        if held is None:
            return None
        until, before = held
        now = utcnow()
        count = before + 1
        retry = now + reasons.window(backoff, count, reason)
        try:
            self.run(lambda: self.leases.update_one({"_id": digest, "until": until}, {"$set": {
                "until": now, "failures": count, "failed_at": now, "retry_at": retry, "reason": reason,
                "expires_at": retry + KEPT}}))
        except Exception as error:
            log.warning("could not record a failed first refresh (%s): its lease lapses by itself", errors.sentence(error))
            return None
        return errors.RefreshFailing(f"the first refresh of this refresh token failed: {why}; callers fail at once "
                                     f"until {iso(retry)}, then one tries again", reason, retry)


def _refusal(state: dict[str, Any], now: datetime) -> Any:
    """``RefreshFailing`` while a failed first refresh backs off (and nobody is trying), else None."""
    failures, retry, until = state.get("failures"), state.get("retry_at"), state.get("until")
    if not isinstance(failures, int) or failures < 1 or not isinstance(retry, datetime) or retry <= now:
        return None
    if isinstance(until, datetime) and until > now:
        return None  # one caller is trying again now: wait for it
    reason = reasons.known(state.get("reason"))
    return errors.RefreshFailing(
        f"the first refresh of this refresh token keeps failing ({failures} failed refresh(es)): {reasons.why(reason)}; "
        f"the next attempt is at {iso(retry)} ({ago(retry, now)})", reason, retry)
