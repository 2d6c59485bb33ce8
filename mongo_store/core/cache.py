"""The read cache: a lookup answered from memory when the process can prove the token unchanged.

The SDK looks a token up twice per request (``Initializer.switch_user``, then the API call's
``get_token``), and again on every request: nearly always the same, unchanged document. A store
keeps the documents it read or wrote (``ReadCache``, per store instance, least recently used
first out past ``read_cache_size``), and a change stream on the tokens' collection (``Watcher``,
one per collection and client in a process, shared by the stores on it) evicts a token once a
change or a delete by anyone is majority-committed (change streams report only those): another
process, an operator's command, a hand-made update. A write acknowledged before the majority has
it (w:1, a lagging secondary) is seen when the majority has it.

What proves an entry current:

- It is served only while the change stream is live: caught up (its last ``getMore`` came back
  empty) and answering (a ``getMore`` was sent within ``MAX_AWAIT + SLACK`` seconds). A stream
  that breaks (an election, a lost connection) serves nothing until it has resumed from its resume
  token and caught up, so no change is missed; one that cannot resume (its history is gone, the
  collection was dropped) drops every entry. (pymongo resumes once by itself within a ``getMore``
  after a resumable error, unseen here: the changes it missed then come next, in order, while the
  stream stays live; what is served meanwhile is at most that resume's time old.)
- A read or a write fills an entry only if no change to that token was seen since the caller
  took its ``Ticket``, just before sending the command (a change racing the read evicts it, or
  keeps it out). The changes seen are numbered (``Watcher.seq``) and the latest ``RING`` kept.
- A save fills with the document it wrote and that write's cluster time: the change stream's
  own event of that write (same token, same time) is known as such and leaves it in place.
- Reads fill only from the primary: a secondary may not have a change the stream already showed.
  A primaryPreferred read counts when the server that answered was the primary before and after
  it (``failover.answered_by_primary``).
- This process's own saves and deletes evict at once, in every store on the same stream.

The store adds its own rules (``store.py``): never a token inside the refresh window (the lease
must run), never one whose refresh is failing or leased. A change made elsewhere is seen within
the stream's delivery time (milliseconds: ``docs/benchmark.md``). With mongomock, a standalone
server (no change streams) or a user without the ``changeStream`` privilege there is no stream,
and every lookup reads MongoDB as before. The cache holds what the store returns (decrypted
values, as the returned tokens hold them), in this process's memory only, never on disk.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo import MongoClient
from pymongo.errors import InvalidOperation, OperationFailure, PyMongoError

log = logging.getLogger("mongo_store")

MAX_AWAIT = 0.5
"""How long the change stream's ``getMore`` waits on the server for a change (seconds)."""
SLACK = 1.0
"""How much longer than ``MAX_AWAIT`` a stream may stay silent and still count as answering."""
BOUND = 15.0
"""The longest one command of the stream may take (a client without a socket timeout would wait on
a dead connection for good): then it is opened again."""
RING = 4096
"""Changes remembered, to check the fills that raced them."""
CACHED_KEYS = ("_id", "user_name", "refresh_token")
"""The unique keys a lookup is answered by: the document holding that value is the one answer."""
_PIPELINE = [
    {"$match": {"operationType": {"$in": ["update", "replace", "delete", "drop", "rename", "dropDatabase",
                                          "invalidate"]}}},
    # The id and the time only: no token value travels on the stream.
    {"$project": {"operationType": True, "documentKey._id": True, "clusterTime": True}},
]
_ENDS = frozenset({"drop", "rename", "dropDatabase", "invalidate"})
_NO_STREAM = frozenset({40573, 13, 8000, 115, 303})
"""Change streams refused for good: not a replica set, Unauthorized, Atlas' unsupported stage,
CommandNotSupported, IllegalOperation (such as a standalone server)."""
_HISTORY_LOST = frozenset({286, 280, 260})
"""ChangeStreamHistoryLost, ChangeStreamFatalError, InvalidResumeToken: the stream cannot resume."""
_PAUSES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def cache_key(query: dict[str, Any] | None) -> tuple[str, str] | None:
    """The key a lookup filter is cached under: a single equality on a unique key, else None."""
    if query is None or len(query) != 1:
        return None
    [(field, value)] = query.items()
    return (field, value) if field in CACHED_KEYS and isinstance(value, str) else None


@dataclass(frozen=True)
class Ticket:
    """Taken before a command is sent: a fill is accepted only if no change to its token was seen since."""

    watcher: Watcher
    epoch: int
    generation: int
    seq: int


class _Entry:
    __slots__ = ("document", "keys", "written_at")

    def __init__(self, document: dict[str, Any], keys: list[tuple[str, str]], written_at: Any) -> None:
        self.document, self.keys, self.written_at = document, keys, written_at


class Watcher:
    """The change stream on one collection, in a thread of its own, and the caches it keeps current.

    ``epoch`` changes when every entry is dropped; ``generation`` when the stream broke (a ticket
    from before cannot fill: the change it raced may not have been seen yet). ``lock`` guards the
    caches too, so a change and a fill are never interleaved."""

    def __init__(self, collection: Any, registry_key: tuple[int, str, str]) -> None:
        self.collection = collection
        self.registry_key = registry_key
        self.lock = threading.Lock()
        self.caches: weakref.WeakSet[ReadCache] = weakref.WeakSet()
        self.epoch = self.generation = self.seq = 0
        self.ring: deque[tuple[int, Any, Any]] = deque(maxlen=RING)
        self.state = "starting"
        """starting, live (caught up), resuming, stopped, or unsupported (no change streams here)."""
        self.live_until = 0.0
        self.changes = 0
        """Changes the stream delivered."""
        self._thread = threading.Thread(target=self._run, name="zoho-token-cache", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def live(self, now: float) -> bool:
        """Whether entries may be served now (the lock is held)."""
        return self.state == "live" and now < self.live_until

    def wait_live(self, timeout: float) -> bool:
        """Wait until the stream is live (for tests and benchmarks: a store never waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.live(time.monotonic()):
                    return True
                if self.state in ("stopped", "unsupported"):
                    return False
            time.sleep(0.01)
        return False

    # -- changes -------------------------------------------------------------------------------

    def changed(self, token_id: Any, at: Any = None) -> None:
        """A token changed (or was deleted): evict it everywhere, and keep out the fills that
        raced the change (the lock is held). ``at`` is the change's cluster time (None: this
        process's own write, known before its event)."""
        self.seq += 1
        self.ring.append((self.seq, token_id, at))
        for cache in list(self.caches):
            cache._evicted(token_id, at)

    def drop_all(self) -> None:
        """Every entry goes (the lock is held)."""
        self.epoch += 1
        for cache in list(self.caches):
            cache._cleared()

    def raced(self, ticket: Ticket, token_id: Any, written_at: Any) -> bool:
        """Whether a change to ``token_id`` was seen since ``ticket`` (other than the caller's own
        write, at ``written_at``), or too many changes to tell (the lock is held)."""
        if self.seq - ticket.seq >= RING:
            return True
        for seq, changed, at in reversed(self.ring):
            if seq <= ticket.seq:
                return False
            if changed == token_id and (written_at is None or at != written_at):
                return True
        return False

    # -- the stream ------------------------------------------------------------------------------

    def _wanted(self) -> bool:
        with self.lock:
            if self.state == "stopped":
                return False
            if not self.caches:
                self._stop("no store uses it")
                return False
            return True

    def _stop(self, why: str, state: str = "stopped") -> None:
        """(The lock is held.) The thread then ends, and leaves the registry as it does (``_run``):
        the registry's lock is never taken under a watcher's, which ``watcher_for`` takes in the
        other order."""
        self.state, self.live_until = state, 0.0
        self.drop_all()
        log.debug("read cache stream on %s stopped: %s", self.collection.name, why)

    def _run(self) -> None:
        try:
            self._follow()
        finally:
            _forget(self)

    def _follow(self) -> None:
        resume: Any = None
        pauses = 0
        while self._wanted():
            try:
                with pymongo.timeout(BOUND):
                    opened = self.collection.watch(_PIPELINE, max_await_time_ms=int(MAX_AWAIT * 1000),
                                                   resume_after=resume)
                with opened as stream:
                    caught_up = False
                    while self._wanted():
                        if caught_up:
                            with self.lock:
                                self.live_until = time.monotonic() + MAX_AWAIT + SLACK
                        with pymongo.timeout(BOUND):
                            change = stream.try_next()
                        resume = stream.resume_token
                        if change is None:
                            if not caught_up:
                                caught_up, pauses = True, 0
                                with self.lock:
                                    self.state, self.live_until = "live", time.monotonic() + MAX_AWAIT + SLACK
                            continue
                        if not self._apply(change):
                            return
            except OperationFailure as error:
                if error.code in _NO_STREAM:
                    with self.lock:
                        self._stop(f"no change stream ({error.code})", "unsupported")
                    if error.code == 13:
                        log.warning("the read cache is off: this MongoDB user may not open a change stream on %s "
                                    "(the changeStream action, in the read role)", self.collection.name)
                    return
                if error.code in _HISTORY_LOST:
                    resume = None
                    with self.lock:
                        self.drop_all()
                self._broken()
            except InvalidOperation:  # the client was closed
                with self.lock:
                    self._stop("the client was closed")
                return
            except PyMongoError:
                self._broken()
            except Exception:  # never let the thread die with the cache serving
                log.exception("read cache stream failed")
                with self.lock:
                    self._stop("unexpected error")
                return
            time.sleep(_PAUSES[min(pauses, len(_PAUSES) - 1)])
            pauses += 1

    def _broken(self) -> None:
        """The stream broke: nothing is served until it resumed and caught up."""
        with self.lock:
            if self.state not in ("stopped", "unsupported"):
                self.state, self.live_until = "resuming", 0.0
            self.generation += 1

    def _apply(self, change: dict[str, Any]) -> bool:
        """One change; False when the stream ends (the collection was dropped or renamed)."""
        kind = change.get("operationType")
        with self.lock:
            self.changes += 1
            if kind in _ENDS:
                self._stop(f"the collection saw {kind}")
                return False
            key = change.get("documentKey") or {}
            if "_id" in key:
                self.changed(key["_id"], change.get("clusterTime"))
        return True


_watchers: dict[tuple[int, str, str], Watcher] = {}
_registry = threading.Lock()


def _forget(watcher: Watcher) -> None:
    """A stopped watcher leaves the registry (its thread ends: never with the watcher's lock held)."""
    with _registry:
        if _watchers.get(watcher.registry_key) is watcher and watcher.state == "stopped":
            del _watchers[watcher.registry_key]


def watcher_for(collection: Any, cache: ReadCache) -> Watcher:
    """The process's stream on this collection (of this client), with ``cache`` listening to it;
    started if there is none."""
    key = (id(collection.database.client), collection.database.name, collection.name)
    with _registry:
        found = _watchers.get(key)
        fresh = found is None or found.state == "stopped"
        if fresh:
            found = _watchers[key] = Watcher(collection, key)
        assert found is not None
        with found.lock:
            found.caches.add(cache)
            cache._cleared()
        if fresh:
            found.start()
        return found


def _after_fork() -> None:
    """A child process has none of its parent's threads: its streams start anew, and the entries it
    inherited are dropped (nothing proves them current any more)."""
    global _registry
    _registry = threading.Lock()
    for watcher in list(_watchers.values()):
        watcher.lock = threading.Lock()
        watcher.state = "stopped"
        watcher.drop_all()
    _watchers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class ReadCache:
    """One store's entries: documents by id, and the unique keys (``CACHED_KEYS``) that lead to them."""

    def __init__(self, collection: Any, size: int) -> None:
        self.collection, self.size = collection, size
        self.hits = self.misses = 0
        self._entries: OrderedDict[Any, _Entry] = OrderedDict()
        self._keys: dict[tuple[str, str], Any] = {}
        self._watcher: Watcher | None = None
        self._lock = threading.Lock()  # to (re)join a stream
        self.enabled = isinstance(collection.database.client, MongoClient)

    def watcher(self) -> Watcher | None:
        """The stream this cache listens to, joined (or started) on first use; None when there
        can be none (mongomock, a server without change streams)."""
        current = self._watcher
        if current is not None and current.state not in ("stopped", "unsupported"):
            return current
        if not self.enabled or (current is not None and current.state == "unsupported"):
            return None
        with self._lock:
            joined = self._watcher
            if joined is current:
                joined = self._watcher = watcher_for(self.collection, self)
            return joined if joined is not None and joined.state != "unsupported" else None

    def get(self, key: tuple[str, str], usable: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The cached document for this key if the stream proves it current and ``usable`` accepts
        it; None (a miss) otherwise. The document is shared: never change it."""
        watcher = self.watcher()
        if watcher is None:
            return None
        with watcher.lock:
            token_id = self._keys.get(key)
            entry = self._entries.get(token_id) if token_id is not None else None
            if entry is None or not watcher.live(time.monotonic()) or not usable(entry.document):
                self.misses += 1
                return None
            self._entries.move_to_end(token_id)
            self.hits += 1
            return entry.document

    def ticket(self) -> Ticket | None:
        """Taken just before a read or a write that may fill the cache; None when it cannot."""
        watcher = self.watcher()
        if watcher is None:
            return None
        with watcher.lock:
            if not watcher.live(time.monotonic()):
                return None
            return Ticket(watcher, watcher.epoch, watcher.generation, watcher.seq)

    def put(self, ticket: Ticket | None, document: dict[str, Any], written_at: Any = None) -> bool:
        """Keep ``document`` (opened) if nothing changed it since ``ticket``; ``written_at`` is the
        cluster time of this caller's own write that returned it. False when it was not kept: the
        caller must then ``evict`` it (an older entry must not outlive its write)."""
        if ticket is None:
            return False
        watcher = ticket.watcher
        token_id = document.get("_id")
        with watcher.lock:
            if watcher is not self._watcher or (watcher.epoch, watcher.generation) != (ticket.epoch, ticket.generation) \
                    or not watcher.live(time.monotonic()) or watcher.raced(ticket, token_id, written_at):
                return False
            if written_at is not None:  # this process changed it: every other cache's copy is old now
                watcher.changed(token_id, written_at)
            self._remove(token_id)
            keys = [(field, document[field]) for field in CACHED_KEYS if isinstance(document.get(field), str)]
            self._entries[token_id] = _Entry(document, keys, written_at)
            for key in keys:
                self._keys[key] = token_id
            while len(self._entries) > self.size:
                oldest = next(iter(self._entries))
                self._remove(oldest)
            return True

    def evict(self, token_id: Any) -> None:
        """This process changed or deleted the token: out of every cache on the stream, at once."""
        watcher = self._watcher
        if watcher is None:
            return
        with watcher.lock:
            watcher.changed(token_id)

    def clear(self) -> None:
        """Every entry of every cache on the stream goes (``delete_tokens``)."""
        watcher = self._watcher
        if watcher is None:
            return
        with watcher.lock:
            watcher.drop_all()  # a new epoch: a fill in flight is refused too

    def close(self) -> None:
        """Leave the stream (it ends when no store listens) and drop the entries."""
        watcher = self._watcher
        if watcher is None:
            return
        with watcher.lock:
            watcher.caches.discard(self)
            self._cleared()

    def holds(self, token_id: Any) -> bool:
        """Whether the token is cached now (tests wait on it after editing a document by hand)."""
        return token_id in self._entries

    def stats(self) -> dict[str, Any]:
        """Hits, misses, entries, and whether the stream is live now."""
        watcher = self._watcher
        live = False
        if watcher is not None:
            with watcher.lock:
                live = watcher.live(time.monotonic())
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries), "live": live,
                "enabled": self.enabled and (watcher is None or watcher.state != "unsupported")}

    # -- under the watcher's lock ------------------------------------------------------------------

    def _evicted(self, token_id: Any, at: Any) -> None:
        entry = self._entries.get(token_id)
        if entry is not None and (at is None or entry.written_at is None or entry.written_at != at):
            self._remove(token_id)

    def _cleared(self) -> None:
        self._entries.clear()
        self._keys.clear()

    def _remove(self, token_id: Any) -> None:
        entry = self._entries.pop(token_id, None)
        if entry is not None:
            for key in entry.keys:
                if self._keys.get(key) == token_id:
                    del self._keys[key]
