"""Failing fast through a long outage: once a store call has waited longer than an election takes,
new calls fail at once instead of each waiting ``failover_wait``, until MongoDB answers again.

A replica-set election takes up to about 15 s here (``docs/failover.md``); calls ride it out by
trying again (``failover.py``). A server that is gone for longer (stopped, cut off, a whole set
down) would otherwise hold every request thread for ``failover_wait`` (30 s) each, and an app
could serve nothing, not even pages that need no Zoho. So each store watches its own calls:

- A call whose attempt failed with a retryable error is *failing*; calls that have not failed cost
  nothing here (one attribute read per call).
- Once a failing call started ``fail_fast_after`` seconds ago (20 s by default: longer than the
  longest election measured, 16 s) and the client sees no server answer at all (``reachable``: every
  member Unknown to its monitor), MongoDB counts as down *since that call started*. From then on a
  new call fails at once with ``MongoDB unreachable since ...`` (a ``TOKEN_STORE`` error), and calls
  still waiting give up at their next failed attempt (attempts are cut at the threshold).
- An election is no outage, however long it takes: the other members still answer, so calls keep
  riding it out for up to ``failover_wait`` (on a loaded machine a paused primary's election took
  21.6 s once; it failed no call).
- One probe at a time (a background thread: ``ping``, bounded by ``PROBE_TIMEOUT``, every
  ``PROBE_PAUSE``) finds the server back; the first answer ends the outage, and calls work again
  with no restart. A call that succeeds meanwhile ends it too.

Per store instance (so per process): each process finds out for itself. ``fail_fast_after=0``
turns it off: every call then waits up to ``failover_wait``, as before.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from .clock import utcnow

log = logging.getLogger("mongo_store")

PROBE_TIMEOUT = 2.0
"""Seconds one probe waits for an answer (a live server answers a ping in milliseconds)."""
PROBE_PAUSE = 0.5
"""Seconds between two probes."""


def iso(moment: datetime) -> str:
    """A naive UTC date as ISO 8601 text, to the second (``masking.iso``'s form; that module loads
    the cryptography package, which the admin path does without)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Down(Exception):
    """MongoDB counts as down: a call is refused, or given up, at once (the message is one sentence)."""


class OutageWatch:
    """One store's view of MongoDB being down; thread-safe. ``probe()`` must return when the server
    answers and raise when it does not, within ``PROBE_TIMEOUT``."""

    def __init__(self, after: float, probe: Callable[[], object], reachable: Callable[[], bool] = lambda: False) -> None:
        self.after = after
        self._probe = probe
        self._reachable = reachable
        self._lock = threading.Lock()
        self._failing: dict[int, float] = {}  # ticket -> when its call started (monotonic)
        self._tickets = itertools.count(1)
        self._since: float | None = None  # monotonic start of the outage, None while up
        self._since_wall: datetime | None = None
        self._prober: threading.Thread | None = None
        self._closed = threading.Event()

    @property
    def suspect(self) -> bool:
        """Whether any call is failing or MongoDB counts as down (cheap: read before every call)."""
        return self._since is not None or bool(self._failing)

    @property
    def down_since(self) -> datetime | None:
        """When the outage began (naive UTC), or None while MongoDB counts as up."""
        return self._since_wall

    def check(self) -> None:
        """Before a call: raises ``Down`` when MongoDB counts as down (deciding it, when a failing
        call has waited past the threshold)."""
        if not self.after:
            return
        with self._lock:
            if self._since is None and self._failing:
                oldest = min(self._failing.values())
                if time.monotonic() - oldest >= self.after and not self._reachable():
                    self._open(oldest)
            if self._since is not None:
                raise Down(self._sentence())

    def failed(self, ticket: int | None, started: float) -> int:
        """A call (started at ``started``, monotonic) had a retryable failure: its ticket. Raises
        ``Down`` when MongoDB counts as down (the call gives up)."""
        with self._lock:
            if ticket is None:
                ticket = next(self._tickets)
                self._failing[ticket] = started
            oldest = min(self._failing.values())
            if self.after and self._since is None and time.monotonic() - oldest >= self.after and not self._reachable():
                self._open(oldest)
            down = self._since is not None
        if down:
            self.ended(ticket, ok=False)
            raise Down(self._sentence())
        return ticket

    def ended(self, ticket: int | None, ok: bool) -> None:
        """A call that had failed ended (``ok``: it succeeded, so MongoDB answers again)."""
        if ticket is None:
            return
        with self._lock:
            self._failing.pop(ticket, None)
            if ok and self._since is not None:
                self._close("a call succeeded")

    def close(self) -> None:
        """Stop probing (the store is closed)."""
        self._closed.set()

    # -- internals (the lock is held where noted) ----------------------------------------------------

    def _open(self, oldest: float) -> None:
        """MongoDB is down since the oldest failing call started (the lock is held)."""
        self._since = oldest
        self._since_wall = utcnow() - timedelta(seconds=time.monotonic() - oldest)
        log.warning("MongoDB unreachable since %s: store calls fail at once until it answers again", iso(self._since_wall))
        if self._prober is None or not self._prober.is_alive():
            self._prober = threading.Thread(target=self._probe_until_up, name="mongo-store-probe", daemon=True)
            self._prober.start()

    def _close(self, how: str) -> None:
        """MongoDB answers again (the lock is held)."""
        if self._since is not None:
            log.warning("MongoDB answers again (%s, after %.0f s): store calls go through", how,
                        time.monotonic() - self._since)
        self._since, self._since_wall = None, None
        now = time.monotonic()  # calls still failing count from now: the server answers again
        for ticket in self._failing:
            self._failing[ticket] = now

    def _sentence(self) -> str:
        since = self._since_wall
        if since is None:  # ended meanwhile
            return "MongoDB was unreachable a moment ago; trying again is safe"
        seconds = max(0.0, (utcnow() - since).total_seconds())
        return (f"MongoDB unreachable since {iso(since)} ({seconds:.0f} s); store calls fail at once until it answers "
                f"again (one probe every {PROBE_PAUSE:g} s finds it back); trying again then is safe")

    def _probe_until_up(self) -> None:
        """One probe at a time until MongoDB answers (or the store is closed)."""
        while not self._closed.is_set():
            with self._lock:
                if self._since is None:
                    return
            try:
                self._probe()
            except Exception:  # no answer yet: try again after a pause
                self._closed.wait(PROBE_PAUSE)
                continue
            with self._lock:
                self._close("a probe was answered")
            return
