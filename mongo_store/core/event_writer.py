"""The token history written off the caller's thread, so a save or a delete stays one round trip.

``MongoTokenStore`` records an event (``events.py``) beside a refreshing save, a delete and a failed
refresh. Written in line, that insert was a second majority-acknowledged round trip on the SDK's
path. Here the caller only appends the event to a bounded queue; one thread per store writes what
has gathered in a batch (``insert_many``), riding out an election as the store's calls do
(``failover.attempt``: pymongo gives each event its ``_id`` before the first attempt, so a retry
writes nothing twice). The thread starts with the first event and ends when idle.

Nothing is lost on a normal exit: ``close()`` writes what is pending, and so does an ``atexit``
hook for every writer still open (in the exiting thread: no new thread is started at shutdown).
A process killed outright (SIGKILL, ``os._exit``) loses the events of its last moments, at most
what was queued. Past ``bound`` pending events an event is dropped with a warning (memory stays
bounded while MongoDB is unreachable); a write that fails is a warning, never a failed save.
This module imports no SDK.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any

from pymongo.errors import BulkWriteError

from . import events as token_events
from .failover import Outage, attempt

log = logging.getLogger("mongo_store")

IDLE_SECONDS = 5.0
"""A writer's thread ends after this long with nothing to write (a new event starts it again)."""
LINGER_SECONDS = 0.02
"""How long the thread lets events gather before a write: under a burst of saves, one insert for
many, instead of one durable write beside every save (each waits on the server's journal)."""
BATCH = 1000
_DUPLICATE_KEY = 11000
_open: weakref.WeakSet[EventWriter] = weakref.WeakSet()
_hooked = threading.Lock()
_registered = False


class EventWriter:
    """A bounded queue of (collection, event) and the thread that writes it."""

    def __init__(self, bound: int, attempt_seconds: float, failover_wait: float) -> None:
        """``bound``: events pending at most. Each write is bounded by ``attempt_seconds`` and
        tried again through an election for up to ``failover_wait``."""
        self.bound, self.attempt_seconds, self.failover_wait = bound, attempt_seconds, failover_wait
        self.dropped = 0
        """Events dropped because ``bound`` were pending (since this writer was made)."""
        self.failed = 0
        """Events whose write failed (each failure was a warning)."""
        self.written = 0
        self._pending: deque[tuple[Any, dict[str, Any]]] = deque()
        self._changed = threading.Condition()
        self._added = 0  # events accepted so far (their sequence numbers)
        self._done = 0  # the events before this number are written, or failed
        self._writing = False
        self._thread: threading.Thread | None = None
        self._closed = False
        self._dropping = 0  # drops since the last warning that named them
        _hook()

    def add(self, collection: Any, event: dict[str, Any]) -> bool:
        """Queue one event for ``collection``; False when it was dropped (the queue is full)."""
        with self._changed:
            if len(self._pending) >= self.bound:
                self.dropped += 1
                self._dropping += 1
                first = self._dropping == 1
            else:
                self._pending.append((collection, event))
                self._added += 1
                first = False
                if self._thread is None or not self._thread.is_alive():
                    self._start()
                self._changed.notify_all()
                return True
        if first:
            log.warning("the token history's queue is full (%d events waiting to be written): new events are dropped "
                        "until it drains (MongoDB unreachable, or slower than the events come)", self.bound)
        return False

    @property
    def pending(self) -> int:
        """Events waiting to be written."""
        with self._changed:
            return len(self._pending)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call is written (or has failed, with a
        warning); True when it finished within ``timeout`` seconds. Without a running thread (at
        interpreter exit) the events are written in this thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            target = self._added
            while self._done < target:
                alive = self._thread is not None and self._thread.is_alive()
                if not alive and not self._writing:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left if left is None else min(left, 0.5))
        while self._done < target:  # no thread: write here
            if not self._write_batch():
                break
        return self._done >= target

    def close(self, timeout: float | None = None) -> bool:
        """Write what is pending (``flush``) and stop the thread; later events are still written
        (a store may be used after ``close``), each by a thread started anew."""
        finished = self.flush(timeout)
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        _open.discard(self)
        return finished

    # -- the thread --------------------------------------------------------------------------

    def _start(self) -> None:
        """(The lock is held.)"""
        self._closed = False
        _open.add(self)
        self._thread = threading.Thread(target=self._run, name="zoho-token-history", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                idle_until = time.monotonic() + IDLE_SECONDS
                while not self._pending:
                    left = idle_until - time.monotonic()
                    if left <= 0 or self._closed:
                        self._thread = None
                        self._changed.notify_all()
                        return
                    self._changed.wait(left)
            time.sleep(LINGER_SECONDS)
            self._write_batch()

    def _write_batch(self) -> bool:
        """Take what is pending (up to ``BATCH``) and write it; False when there was nothing."""
        with self._changed:
            if not self._pending or self._writing:
                return False
            self._writing = True
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), BATCH))]
            dropped, self._dropping = self._dropping, 0
        try:
            if dropped > 1:
                log.warning("dropped %d token history events while its queue was full", dropped)
            by_collection: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
            for collection, event in batch:
                by_collection.setdefault(id(collection), (collection, []))[1].append(event)
            for collection, items in by_collection.values():
                self._write(collection, items)
        finally:
            with self._changed:
                self._writing = False
                self._done += len(batch)
                self._changed.notify_all()
        return True

    def _write(self, collection: Any, items: list[dict[str, Any]]) -> None:
        """One batch into one collection, through elections; a failure is one warning line."""
        try:
            attempt(lambda: _insert(collection, items), self.failover_wait, self.attempt_seconds, write=True)
        except Exception as error:
            cause = error.error if isinstance(error, Outage) else error
            self.failed += len(items)
            kinds = sorted({item.get("event", "?") for item in items})
            log.warning("could not record %d %s event(s) in %s: %s", len(items), "/".join(kinds),
                        getattr(collection, "name", "?"), token_events.describe(cause))
        else:
            self.written += len(items)


def _insert(collection: Any, items: list[dict[str, Any]]) -> None:
    """Insert the events; on a retry, those an earlier attempt wrote are duplicates of their own
    ``_id`` (given before the first attempt), which is success."""
    try:
        token_events.record(collection, items)
    except BulkWriteError as error:
        if any(failure.get("code") != _DUPLICATE_KEY for failure in error.details.get("writeErrors", [])):
            raise
    except Exception as error:
        if getattr(error, "code", None) != _DUPLICATE_KEY:
            raise


def _hook() -> None:
    """Register the exit hook once, after pymongo's own (hooks run last registered first, so the
    events are written while the driver still works)."""
    global _registered
    with _hooked:
        if not _registered:
            atexit.register(flush_all)
            _registered = True


def _after_fork() -> None:
    """A child process has none of its parent's threads, and the events its parent queued are the
    parent's to write: each writer starts empty, with a new lock."""
    global _hooked
    _hooked = threading.Lock()
    for writer in list(_open):
        writer._changed = threading.Condition()
        writer._pending.clear()
        writer._done = writer._added
        writer._thread, writer._writing, writer._dropping = None, False, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def flush_all(timeout: float = 10.0) -> None:
    """Write what every open writer holds (at interpreter exit), within ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    for writer in list(_open):
        writer.flush(max(deadline - time.monotonic(), 0.001))
