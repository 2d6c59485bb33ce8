"""Riding out a replica-set election: a store call whose failure a new primary cures is tried
again until it succeeds or a deadline passes.

An election takes about 10-11 s (MongoDB's election timeout) plus catch-up, longer than a server
selection timeout should be. pymongo retries a write once by itself; the store keeps trying for
``failover_wait`` seconds, each attempt bounded by ``attempt_timeout`` through pymongo's
client-side operation timeout, so a paused primary is given up on and the call goes to the new
one. Every write the store sends is idempotent by content (a new token keeps the id drawn before
the first attempt), so trying again after an unknown outcome never makes a second document.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import pymongo
from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, ServerSelectionTimeoutError
from pymongo.server_type import SERVER_TYPE
from pymongo.topology_description import TOPOLOGY_TYPE, TopologyDescription

from .outage import Down, OutageWatch

T = TypeVar("T")

# Server answers that a new primary cures (NotWritablePrimary, NotPrimaryNoSecondaryOk,
# NotPrimaryOrSecondary, PrimarySteppedDown, InterruptedAtShutdown, InterruptedDueToReplStateChange,
# ShutdownInProgress, HostUnreachable, HostNotFound, NetworkTimeout, SocketException,
# WriteConcernFailed, ExceededTimeLimit, MaxTimeMSExpired).
RETRYABLE_CODES = frozenset({10107, 13435, 13436, 189, 11600, 11602, 91, 6, 7, 89, 9001, 64, 262, 50})
FIRST_PAUSE, LONGEST_PAUSE = 0.05, 0.5
_RETRYING: ContextVar[bool] = ContextVar("mongo_store_retrying", default=False)


def retrying() -> bool:
    """Whether the current attempt follows a failed one: the primary may be paused or gone, so a
    read should go to a secondary if there is one."""
    return _RETRYING.get()


def retryable(error: BaseException) -> bool:
    """Whether trying again may succeed once the replica set has a (new) primary."""
    if isinstance(error, ConnectionFailure):  # includes no server or no primary, lost connections
        return True
    if not isinstance(error, PyMongoError):
        return False
    if error.timeout or error.has_error_label("RetryableWriteError"):
        return True
    return isinstance(error, OperationFailure) and error.code in RETRYABLE_CODES


@dataclass
class Outage(Exception):
    """A call still failing when the deadline passed: the last error, and whether an attempt may
    have been applied (its command was sent before the failure). ``down``: the call gave up early,
    MongoDB counting as down (``outage.py``), in that sentence."""

    error: BaseException
    seconds: float
    maybe_applied: bool
    down: str | None = None


def attempt(call: Callable[[], T], wait: float, attempt_timeout: float | None, *, write: bool,
            client_bounds_first: bool = False, sleep: Callable[[float], None] = time.sleep,
            watch: OutageWatch | None = None) -> T:
    """``call()``, tried again on a retryable failure until ``wait`` seconds have passed.

    Raises the error itself when it is not retryable, and ``Outage`` when time ran out.
    ``attempt_timeout=None`` leaves each attempt to the client's own timeouts;
    ``client_bounds_first`` does so for the first attempt only (see ``bounds_itself``). ``watch``
    (``outage.py``) is told of each retryable failure and raises ``outage.Down`` when MongoDB has
    been down for too long: then the call gives up at once (``Outage`` with ``down`` set).
    """
    started = time.monotonic()
    deadline = started + wait
    pause = FIRST_PAUSE
    maybe_applied = retried = False
    ticket: int | None = None

    def failed(error: Exception) -> None:
        nonlocal ticket, maybe_applied
        # Nothing is sent until a server is selected: only then can a write have been applied.
        maybe_applied = maybe_applied or (write and not isinstance(error, ServerSelectionTimeoutError))
        if watch is not None:
            try:
                ticket = watch.failed(ticket, started)
            except Down as down:
                ticket = None  # ended by the watch
                raise Outage(error, time.monotonic() - started, maybe_applied, down=str(down)) from None
        if time.monotonic() + pause >= deadline:
            raise Outage(error, wait, maybe_applied) from None

    try:
        if client_bounds_first:  # the common case, kept lean: it runs before every API call
            try:
                return call()
            except Exception as error:
                if not retryable(error):
                    raise
                failed(error)
            retried = True
            sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if watch is not None and watch.after and attempt_timeout is not None and started + watch.after - now > 0.05:
                # A failing attempt ends at the outage threshold, where the call may count MongoDB as down.
                remaining = min(remaining, started + watch.after - now)
            bound = None if attempt_timeout is None else max(min(attempt_timeout, remaining), 0.001)
            flag = _RETRYING.set(retried)
            try:
                with pymongo.timeout(bound):
                    result = call()
                if ticket is not None and watch is not None:
                    watch.ended(ticket, ok=True)
                    ticket = None
                return result
            except Exception as error:
                if not retryable(error):
                    raise
                failed(error)
            finally:
                _RETRYING.reset(flag)
            retried = True
            sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
    finally:
        if ticket is not None and watch is not None:
            watch.ended(ticket, ok=False)


def bounds_itself(client: Any, attempt_timeout: float, wait: float) -> bool:
    """Whether the client's own settings bound an attempt as the store would, and leave retrying
    reads to the store: then a first attempt needs no client-side operation timeout (which costs
    about 10 us a call). True of the client the store creates; mongomock has nothing to bound."""
    if not isinstance(client, MongoClient):
        return True
    options = client.options
    socket_timeout = options.pool_options.socket_timeout
    return (socket_timeout is not None and socket_timeout <= attempt_timeout
            and options.server_selection_timeout <= wait and not options.retry_reads)


def primary_known(client: Any) -> bool:
    """Whether the client may have a primary now: only a replica set it sees without one has none
    (mongomock always has one). An attribute read: this runs before every lookup."""
    return not isinstance(client, MongoClient) or \
        client.topology_description.topology_type != TOPOLOGY_TYPE.ReplicaSetNoPrimary


def answered_by_primary(address: tuple[str, int] | None, *views: TopologyDescription) -> bool:
    """Whether the server that answered a read was the primary in each view of the topology (one
    taken before the read, one after): a primaryPreferred read may be served by a secondary, and a
    secondary elected during the read may have lacked, when it answered, a change already seen."""
    def primary_in(view: TopologyDescription) -> bool:
        server = view.server_descriptions().get(address) if address is not None else None
        return server is not None and server.server_type == SERVER_TYPE.RSPrimary

    return all(primary_in(view) for view in views)


def no_primary(client: Any) -> bool:
    """Whether the client sees a secondary but no primary: an election, or a lost majority."""
    if not isinstance(client, MongoClient):  # mongomock: never without a primary
        return False
    servers = client.topology_description.server_descriptions().values()
    kinds = {server.server_type_name for server in servers}
    return "RSSecondary" in kinds and "RSPrimary" not in kinds
