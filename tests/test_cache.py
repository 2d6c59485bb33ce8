"""The store on the caller's path, on a real mongod: one round trip per SDK call with the history
on (written off the caller's thread, and complete, also after a normal exit), and lookups answered
from memory while the change stream proves them current (``mongo_store/core/cache.py``): a delete
by another process seen within 0.2 s, an election ridden out, nothing served inside the refresh
window or while failing, bounded, counted, and off where there is no change stream.

The suite runs with the cache off (``conftest.py``); these tests turn it on. Round trips are
counted with pymongo's command monitoring on the calling thread only."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import mongomock
import pytest
from fake_zoho import FakeZoho
from pymongo import MongoClient, monitoring
from test_refresh_safety import FindAndModifyCounter
from test_sdk_end_to_end import LOOKS_UP_USER, call_api, initialize
from tokens import CLIENT_ID, full, oauth, secret
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.org.org_operations import OrgOperations
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from mongo_store import MongoTokenStore
from mongo_store.core import cache as read_cache
from mongo_store.core import events
from mongo_store.core.clock import utcnow
from mongo_store.core.errors import UnknownToken
from mongo_store.core.lease import RefreshFailing
from mongo_store.core.mapping import LEASE_FIELD, date_to_expiry
from mongo_store.tools.embedded import EmbeddedMongod

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ALICE = "alice@example.com:700001"
LIVE_WITHIN = 10.0


def until(condition: Callable[[], bool], seconds: float = 10.0, step: float = 0.005) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def live(store: MongoTokenStore) -> MongoTokenStore:
    """The store once its change stream is live (a store never waits for it; a test does)."""
    assert store.cache is not None
    watcher = store.cache.watcher()
    assert watcher is not None and watcher.wait_live(LIVE_WITHIN), "the change stream never went live"
    return store


def settled(store: MongoTokenStore, token_id: str) -> None:
    """Wait until the change stream has evicted a token edited by hand (milliseconds)."""
    assert store.cache is not None
    assert until(lambda: not store.cache.holds(token_id), 5.0), "the change was never seen"


@pytest.fixture
def counted(mongo_uri: str, database_name: str) -> Iterator[tuple[MongoClient, FindAndModifyCounter]]:
    """A client whose commands sent from this thread are counted."""
    counter = FindAndModifyCounter()
    client = MongoClient(mongo_uri, event_listeners=[counter])
    yield client, counter
    client.drop_database(database_name)
    client.close()


def cached_store(client: Any, database_name: str, **options: Any) -> MongoTokenStore:
    """A store with the cache on, its indexes made (once per store, on first use) and its stream live."""
    store = MongoTokenStore(client=client, database=database_name, read_cache=True, **options)
    store.prepare()
    return live(store)


class Calls:
    """Each store call the SDK makes, with the commands it sent from the caller's thread."""

    def __init__(self, store: MongoTokenStore, counter: FindAndModifyCounter) -> None:
        self.log: list[tuple[str, list[str]]] = []
        for name in ("find_token", "find_token_by_id", "save_token", "delete_token"):
            original = getattr(store, name)

            def wrapped(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                before = len(counter.names)
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.log.append((_name, counter.names[before:]))

            setattr(store, name, wrapped)

    def take(self) -> list[tuple[str, list[str]]]:
        taken, self.log = self.log, []
        return taken


def request(token_id: str) -> int:
    """A logged-in person's request, as the README's recipe makes it: the SDK looks the token up in
    ``switch_user``, and again in the API call's ``get_token``."""
    Initializer.switch_user(token=OAuthToken(id=token_id))
    return OrgOperations().get_organization().get_status_code()


# -- one round trip per SDK call, with the history on -------------------------------------------


def test_every_sdk_call_is_one_round_trip_on_the_callers_thread(counted: tuple[MongoClient, FindAndModifyCounter],
                                                               database_name: str, tmp_path: Path) -> None:
    """The real SDK against the fake Zoho, every store call it makes, and the commands each sent
    from its thread: a login, 50 requests of the logged-in person (two lookups each), a refresh at
    expiry, a logout. The history's events all land, written by the store's own thread."""
    client, counter = counted
    store = cached_store(client, database_name)
    calls = Calls(store, counter)
    client_secret, grant, refresh = secret("clientsecret"), secret("grant"), secret("refresh")
    with FakeZoho(grant, refresh, CLIENT_ID, client_secret) as zoho:
        login = OAuthToken(client_id=CLIENT_ID, client_secret=client_secret, grant_token=grant,
                           redirect_url="https://app.example.com/oauth",
                           user_signature=None if LOOKS_UP_USER else UserSignature("alice@example.com:700001"))
        initialize(zoho, login, store, tmp_path)  # the grant exchange: a lookup that finds nothing, a save
        # A login's save may insert: a store without a key first reads the collection's validator
        # (once per store) and, with none in place, probes for a sealed token it must not write
        # beside (issue 29's F5, docs/benchmark.md). Every other call below is one round trip.
        assert calls.take() == [("find_token", ["find"]), ("save_token", ["listCollections", "find", "findAndModify"])]
        token_id = login.get_id()

        for _ in range(50):
            assert request(token_id) == 200
        made = calls.take()
        assert [name for name, _ in made] == ["find_token_by_id"] * 100  # two lookups per request
        assert all(len(commands) <= 1 for _, commands in made)
        trips = sum(len(commands) for _, commands in made)
        assert trips <= 1, made  # the save filled the cache: at most the first lookup reads
        assert zoho.requests["refresh"] == 0

        # The access token reaches its expiry: the lookup that takes the lease is a find and the
        # lease's findAndModify, the SDK refreshes, and its save is one findAndModify.
        store.collection.update_one({"_id": token_id}, {"$set": {"expiry_time": utcnow()}})
        settled(store, token_id)
        assert call_api() == 200
        assert zoho.requests["refresh"] == 1
        assert calls.take() == [("find_token_by_id", ["find", "findAndModify"]), ("save_token", ["findAndModify"])]
        assert call_api() == 200 and calls.take() == [("find_token_by_id", [])]  # the refreshing save filled it

        assert OAuthToken(id=token_id).remove() is True  # the SDK's logout: delete_token
        assert calls.take() == [("delete_token", ["findAndModify"])]
        with pytest.raises(UnknownToken):  # gone from memory at once
            store.find_token_by_id(token_id)
        assert store.flush_events(10)
        assert [event["event"] for event in events.for_token(store.events, token_id)] == ["deleted", "refreshed", "refreshed"]
        stats = store.cache_stats()
        assert stats["events_written"] == 3 and stats["events_dropped"] == stats["events_failed"] == 0
        assert stats["hits"] >= 99 and stats["live"]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "round_trips.json").write_text(json.dumps({
        "requests": 50, "lookups": 100, "round_trips_on_the_callers_thread": trips, "cache": store.cache_stats()}, indent=2))


EXITING = """
import sys
from mongo_store import MongoTokenStore
sys.path.insert(0, sys.argv[3])
from tokens import full
store = MongoTokenStore(sys.argv[1], database=sys.argv[2])
saved = [full(f"person{{n}}@example.com:1") for n in range({count})]
for token in saved:
    store.save_token(token)
for token in saved[:2]:
    store.delete_token(token.get_id())
print(" ".join(token.get_id() for token in saved), flush=True)
{ending}
"""


@pytest.mark.parametrize("ending", ["", "store.close()", "raise SystemExit(3)"])
def test_the_history_is_complete_after_a_normal_exit(real_store: MongoTokenStore, mongo_uri: str, database_name: str,
                                                     ending: str) -> None:
    """A process that saves and deletes, then exits at once (without closing the store, closing
    it, or by SystemExit), leaves every event: the writer's queue is written at interpreter exit."""
    script = EXITING.format(count=20, ending=ending)
    done = subprocess.run([sys.executable, "-c", script, mongo_uri, database_name, str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == (3 if "SystemExit" in ending else 0), done.stderr
    ids = done.stdout.split()
    assert len(ids) == 20
    found = list(real_store.events.find({}, {"token_id": True, "event": True}))
    assert sorted((event["token_id"], event["event"]) for event in found) == \
        sorted([(token_id, "refreshed") for token_id in ids] + [(token_id, "deleted") for token_id in ids[:2]])
    assert "could not record" not in done.stderr


class Held:
    """An events collection whose inserts wait until ``release`` (MongoDB slower than the events)."""

    name = "token_events"

    def __init__(self, real: Any) -> None:
        self.real, self.gate, self.entered = real, threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def insert_one(self, document: dict[str, Any]) -> Any:
        self.entered.set()
        self.gate.wait(30)
        return self.real.insert_one(document)

    def insert_many(self, documents: list[dict[str, Any]], ordered: bool = True) -> Any:
        self.entered.set()
        self.gate.wait(30)
        return self.real.insert_many(documents, ordered=ordered)


def test_a_full_history_queue_drops_with_a_warning_and_never_fails_a_save(real_store: MongoTokenStore,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name, events_queue=3)
    held = Held(store.events)
    store.events = held
    tokens = [full(f"p{n}@example.com:1") for n in range(10)]
    with caplog.at_level(logging.WARNING, logger="mongo_store"):
        store.save_token(tokens[0])
        assert held.entered.wait(10)  # the writer holds the first event, waiting on MongoDB
        started = time.monotonic()
        for token in tokens[1:]:
            store.save_token(token)  # never waits for the history
        assert time.monotonic() - started < 5
        assert store.cache_stats()["events_pending"] == 3 and store.cache_stats()["events_dropped"] == 6
        held.gate.set()
        assert store.flush_events(10)
    assert real_store.collection.count_documents({}) == 10
    assert real_store.events.count_documents({}) == 4
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == ["the token history's queue is full (3 events waiting to be written): new events are dropped "
                        "until it drains (MongoDB unreachable, or slower than the events come)",
                        "dropped 6 token history events while its queue was full"]
    stats = store.cache_stats()
    assert (stats["events_written"], stats["events_dropped"], stats["events_failed"], stats["events_pending"]) == (4, 6, 0, 0)


# -- the read cache ----------------------------------------------------------------------------


DELETER = """
import sys, time
from mongo_store import MongoTokenStore
store = MongoTokenStore(sys.argv[1], database=sys.argv[2])
store.find_token_by_id("warm-up") if False else None
print("ready", flush=True)
for line in sys.stdin:
    store.delete_token(line.strip())
    print(repr(time.time()), flush=True)
"""


@pytest.mark.timed
def test_a_delete_by_another_process_is_seen_within_0_2_seconds(real_client: MongoClient, mongo_uri: str,
                                                                 database_name: str) -> None:
    """Another process deletes (the SDK's ``delete_token``: a logout elsewhere) tokens this one
    answers from memory; this one looks each up in a loop until it is gone. Measured from the end
    of the other process's delete to the first lookup that raised: under 0.2 s every time."""
    store = cached_store(real_client, database_name)
    tokens = [full(f"person{n}@example.com:1") for n in range(20)]
    for token in tokens:
        store.save_token(token)
    deleter = subprocess.Popen([sys.executable, "-c", DELETER, mongo_uri, database_name], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    staleness, stale_hits = [], []
    try:
        assert deleter.stdout is not None and deleter.stdin is not None
        assert deleter.stdout.readline().strip() == "ready"
        for token in tokens:
            assert store.find_token_by_id(token.get_id()) is not None
            hits = store.cache_stats()["hits"]
            store.find_token_by_id(token.get_id())
            assert store.cache_stats()["hits"] == hits + 1  # answered from memory
            deleter.stdin.write(token.get_id() + "\n")
            deleter.stdin.flush()
            served = 0
            deadline = time.monotonic() + 5
            while True:
                try:
                    store.find_token_by_id(token.get_id())
                    served += 1
                except UnknownToken:
                    seen = time.time()
                    break
                assert time.monotonic() < deadline, "the delete was never seen"
            deleted = float(deleter.stdout.readline())
            staleness.append(max(0.0, seen - deleted))
            stale_hits.append(served)
    finally:
        if deleter.stdin is not None:
            deleter.stdin.close()
        deleter.wait(timeout=30)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "cache_staleness.json").write_text(json.dumps({
        "deletes": len(staleness), "staleness_ms": sorted(round(s * 1000, 2) for s in staleness),
        "median_ms": round(sorted(staleness)[len(staleness) // 2] * 1000, 2), "max_ms": round(max(staleness) * 1000, 2)},
        indent=2))
    assert max(staleness) < 0.2, staleness


@pytest.mark.timed
def test_the_cache_follows_the_replica_set_through_an_election(replica_set: Any, database_name: str) -> None:
    """The stream resumes on the new primary: lookups go on through the election (none fails),
    and a change made after it evicts the cached token as before."""
    client = MongoClient(replica_set.uri, serverSelectionTimeoutMS=30_000)
    other = MongoClient(replica_set.uri, serverSelectionTimeoutMS=30_000)
    try:
        store = cached_store(client, database_name, failover_wait=60)
        token = full(ALICE)
        store.save_token(token)
        store.find_token_by_id(token.get_id())
        hits = store.cache_stats()["hits"]
        assert store.find_token_by_id(token.get_id()).get_access_token() == token.get_access_token()
        assert store.cache_stats()["hits"] == hits + 1
        failures: list[BaseException] = []
        stop = threading.Event()

        def keep_looking() -> None:
            while not stop.is_set():
                try:
                    store.find_token_by_id(token.get_id())
                except Exception as error:  # counted: there must be none
                    failures.append(error)
                time.sleep(0.01)

        looking = threading.Thread(target=keep_looking)
        looking.start()
        try:
            old = replica_set.primary()
            replica_set.step_down(old)
            replica_set.primary(other_than=old)
            assert until(lambda: store.cache_stats()["live"], 60, 0.05), "the stream did not resume"
        finally:
            stop.set()
            looking.join(timeout=90)
        assert failures == []
        store.find_token_by_id(token.get_id())
        hits = store.cache_stats()["hits"]
        store.find_token_by_id(token.get_id())
        assert store.cache_stats()["hits"] == hits + 1  # answered from memory again, on the resumed stream
        fresh = secret("access")
        other[database_name]["oauth_tokens"].update_one({"_id": token.get_id()}, {"$set": {"access_token": fresh}})
        changed_at = time.monotonic()
        assert until(lambda: store.find_token_by_id(token.get_id()).get_access_token() == fresh, 5.0)
        assert time.monotonic() - changed_at < 0.5
    finally:
        client.drop_database(database_name)
        client.close()
        other.close()
        replica_set.wait_healthy()


def test_no_token_is_served_from_memory_inside_the_refresh_window(counted: tuple[MongoClient, FindAndModifyCounter],
                                                                  database_name: str) -> None:
    """A cached token answers from memory until its expiry is ``refresh_margin`` + 5 s away; from
    then on the lookup reads MongoDB and the first caller takes the refresh lease."""
    client, counter = counted
    store = cached_store(client, database_name, refresh_margin=0.5, refresh_wait=0.3)
    expiry = utcnow() + timedelta(seconds=6.3)
    token = full(ALICE, expires_in=date_to_expiry(expiry))
    store.save_token(token)
    counter.names.clear()
    assert store.find_token_by_id(token.get_id()) is not None
    assert counter.names == []  # the save filled it: 0.8 s before the store's window
    assert until(lambda: utcnow() >= expiry - timedelta(seconds=5.5), 5.0, 0.01)
    time.sleep(0.02)
    handed = store.find_token_by_id(token.get_id())  # inside the store's window: MongoDB, and the lease
    assert counter.names == ["find", "findAndModify"]
    assert store.collection.find_one({"_id": token.get_id()})[LEASE_FIELD] is not None
    # Handed out with its expiry refresh_margin earlier: the SDK, deciding a moment later, refreshes.
    assert int(handed.get_expires_in()) - time.time() * 1000 < 5000
    counter.names.clear()
    assert store.find_token_by_id(token.get_id()) is not None  # a waiter: MongoDB again, until its wait ends
    assert counter.names[0] == "find" and set(counter.names) == {"find"}
    assert not store.cache.holds(token.get_id())


def test_a_failing_token_is_never_served_from_memory(counted: tuple[MongoClient, FindAndModifyCounter],
                                                    database_name: str) -> None:
    """A token whose refresh failed backs off: each lookup reads MongoDB and fails at once."""
    client, counter = counted
    store = cached_store(client, database_name, refresh_backoff=60, refresh_backoff_max=60)
    token = full(ALICE, expires_in=date_to_expiry(utcnow() + timedelta(hours=1)))
    store.save_token(token)
    assert store.cache.holds(token.get_id())
    store.collection.update_one({"_id": token.get_id()}, {"$set": {"expiry_time": utcnow()}})  # it lapses
    settled(store, token.get_id())
    holder = store.find_token_by_id(token.get_id())  # takes the lease; its refresh is refused
    with pytest.raises(SDKException):
        holder.refresh_access_token(holder, "http://127.0.0.1:9/oauth/v2/token")  # a closed port
    for _ in range(3):
        counter.names.clear()
        with pytest.raises(RefreshFailing):
            store.find_token_by_id(token.get_id())
        assert counter.names == ["find"]
    assert not store.cache.holds(token.get_id())


def test_the_cache_is_bounded_and_counts_hits_and_misses(real_client: MongoClient, database_name: str) -> None:
    store = cached_store(real_client, database_name, read_cache_size=3)
    tokens = [full(f"p{n}@example.com:1") for n in range(5)]
    for token in tokens:
        store.save_token(token)
    assert store.cache_stats()["entries"] == 3  # the last three saved
    before = store.cache_stats()
    for token in reversed(tokens):  # p4, p3, p2 from memory; p1 and p0 read, each pushing out the least recent
        store.find_token_by_id(token.get_id())
    after = store.cache_stats()
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (3, 2)
    assert after["entries"] == 3
    assert [store.cache.holds(token.get_id()) for token in tokens] == [True, True, True, False, False]
    store.find_token_by_id(tokens[4].get_id())
    assert not store.cache.holds(tokens[2].get_id())  # p4 came back in, p2 (least recently used) went
    after = store.cache_stats()
    found = store.find_token(oauth("p0@example.com:1", client=False))  # by user name: the same entry
    assert found is not None and found.get_id() == tokens[0].get_id()
    assert store.cache_stats()["hits"] == after["hits"] + 1


class Racing:
    """The tokens' collection, with another writer changing the token right after this process's
    read and before its fill (the change seen by the stream first)."""

    def __init__(self, real: Any, store: MongoTokenStore, change: Callable[[], None]) -> None:
        self.real, self.store, self.change = real, store, change

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def find(self, *args: Any, **kwargs: Any) -> Any:
        return RacingCursor(self.real.find(*args, **kwargs), self)

    def race(self) -> None:
        watcher = self.store.cache.watcher()
        seen = watcher.changes
        self.change()
        assert until(lambda: watcher.changes > seen, 5.0)


class RacingCursor:
    """A real cursor whose first document comes with the other writer's change right after it."""

    def __init__(self, real: Any, racing: Racing) -> None:
        self.real, self.racing = real, racing

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def limit(self, count: int) -> RacingCursor:
        self.real = self.real.limit(count)
        return self

    def __iter__(self) -> RacingCursor:
        return self

    def __next__(self) -> Any:
        found = next(self.real)
        self.racing.race()
        return found


def test_a_change_racing_a_read_is_never_cached(real_client: MongoClient, database_name: str) -> None:
    store = cached_store(real_client, database_name)
    token = full(ALICE)
    store.save_token(token)
    store.cache.evict(token.get_id())
    fresh = secret("access")
    racing = Racing(store._reads(), store, lambda: store.collection.update_one(
        {"_id": token.get_id()}, {"$set": {"access_token": fresh}}))
    store._reads = lambda: racing  # type: ignore[method-assign]  # where a lookup reads
    try:
        assert store.find_token_by_id(token.get_id()).get_access_token() == token.get_access_token()  # read before it
        assert store.cache.watcher().changes == 1
    finally:
        del store._reads
    assert not store.cache.holds(token.get_id())  # the change came after the read: not kept
    assert store.find_token_by_id(token.get_id()).get_access_token() == fresh
    assert store.cache.holds(token.get_id())


def test_a_read_a_secondary_answered_never_fills_the_cache(replica_set: Any, database_name: str) -> None:
    """A client that retries its own reads reads with primaryPreferred, which a secondary answers
    when the client sees no primary; the topology may show one again by the time the read returns.
    Only the primary's answer fills: the server that answered is what counts."""
    client = MongoClient(replica_set.uri, serverSelectionTimeoutMS=30_000)
    direct = None
    try:
        store = cached_store(client, database_name)
        assert not store._client_bounds_first  # it reads with primaryPreferred
        token = full(ALICE)
        store.save_token(token)
        assert until(lambda: bool(client.secondaries), 30.0)
        host, port = sorted(client.secondaries)[0]
        direct = MongoClient(host, port, directConnection=True, serverSelectionTimeoutMS=30_000)
        primary_reads = store._collection
        secondary = direct[database_name].get_collection("oauth_tokens", codec_options=primary_reads.codec_options)
        assert until(lambda: secondary.find_one({"_id": token.get_id()}) is not None, 10.0)  # replicated there
        store.cache.evict(token.get_id())
        live(store)  # a read may fill now: only who answered keeps it out
        store._collection = secondary  # as a primaryPreferred read is served while no primary is seen
        try:
            assert store.find_token_by_id(token.get_id()).get_access_token() == token.get_access_token()
        finally:
            store._collection = primary_reads
        assert not store.cache.holds(token.get_id())  # a secondary answered: not kept

        def kept_after_a_read() -> bool:
            assert store.find_token_by_id(token.get_id()).get_access_token() == token.get_access_token()
            return store.cache.holds(token.get_id())

        assert until(kept_after_a_read, 10.0, 0.05)  # the primary answered: kept (once the stream is live)
    finally:
        if direct is not None:
            direct.close()
        client.drop_database(database_name)
        client.close()
        replica_set.wait_healthy()


def test_own_saves_fill_the_cache_and_own_deletes_empty_it_at_once(counted: tuple[MongoClient, FindAndModifyCounter],
                                                                   database_name: str) -> None:
    client, counter = counted
    store = cached_store(client, database_name)
    sibling = cached_store(client, database_name)  # another store of this process, on the same stream
    token = full(ALICE)
    store.save_token(token)
    sibling.find_token_by_id(token.get_id())
    assert sibling.cache.holds(token.get_id())
    time.sleep(0.1)  # the stream delivers the save's own event: it leaves the entry in place
    counter.names.clear()
    assert store.find_token(oauth(ALICE, client=False)).get_id() == token.get_id()
    assert store.find_token(oauth(None, refresh_token=token.get_refresh_token(), client_id=CLIENT_ID,
                                  client_secret=token.get_client_secret())).get_id() == token.get_id()
    assert counter.names == []
    token.set_access_token(secret("access"))
    token.set_expires_in("4102444801000")
    store.save_token(token)
    assert not sibling.cache.holds(token.get_id())  # the other store dropped its copy before the save returned
    assert sibling.find_token_by_id(token.get_id()).get_access_token() == token.get_access_token()
    store.delete_token(token.get_id())
    counter.names.clear()
    for each in (store, sibling):
        with pytest.raises(UnknownToken):
            each.find_token_by_id(token.get_id())
    assert counter.names == ["find", "find"]


def test_encrypted_tokens_are_kept_opened_and_found_by_their_refresh_token(real_client: MongoClient,
                                                                           database_name: str) -> None:
    key = base64.b64encode(os.urandom(32)).decode()  # a key as crypto.GENERATE makes one
    store = cached_store(real_client, database_name, encryption_key=key, old_encryption_keys=[])
    token = full(ALICE)
    store.save_token(token)
    stored = store.collection.find_one({})
    assert stored["refresh_token"] != token.get_refresh_token()  # sealed on disk
    hits = store.cache_stats()["hits"]
    probe = oauth(None, refresh_token=token.get_refresh_token(), client_id=CLIENT_ID, client_secret=secret("other"))
    found = store.find_token(probe)
    assert found.get_access_token() == token.get_access_token()
    assert store.cache_stats()["hits"] == hits + 1


class Replies(monitoring.CommandListener):
    def __init__(self) -> None:
        self.texts: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in ("aggregate", "getMore"):
            self.texts.append(json.dumps(event.reply, default=str))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_the_change_stream_carries_no_token_value(mongo_uri: str, database_name: str) -> None:
    replies = Replies()
    client = MongoClient(mongo_uri, event_listeners=[replies])
    try:
        store = cached_store(client, database_name)
        token = full(ALICE)
        store.save_token(token)
        store.find_token_by_id(token.get_id())
        token.set_access_token(secret("access"))
        token.set_expires_in("4102444801000")
        store.save_token(token)
        store.delete_token(token.get_id())
        assert until(lambda: store.cache.watcher().changes >= 2, 5.0)
        text = "".join(replies.texts)
        assert token.get_id() in text  # it names the token
        for value in (token.get_access_token(), token.get_refresh_token(), token.get_client_secret(),
                      token.get_grant_token(), ALICE):
            assert value not in text
    finally:
        client.drop_database(database_name)
        client.close()


def test_without_a_change_stream_every_lookup_reads_as_before(counted: tuple[MongoClient, FindAndModifyCounter],
                                                              database_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """The off switch, mongomock and a standalone server (no change streams): one find per lookup,
    no error, no warning."""
    client, counter = counted
    off = MongoTokenStore(client=client, database=database_name, read_cache=False)
    assert off.cache is None and off.cache_stats()["enabled"] is False
    token = full(ALICE)
    off.save_token(token)
    counter.names.clear()
    for _ in range(3):
        off.find_token_by_id(token.get_id())
    assert counter.names == ["find"] * 3

    mock = MongoTokenStore(client=mongomock.MongoClient(), database=database_name, read_cache=True)
    mock.save_token(full(ALICE))
    assert mock.find_token(oauth(ALICE, client=False)) is not None
    assert mock.cache_stats()["enabled"] is False and mock.cache_stats()["hits"] == 0

    with EmbeddedMongod(replica_set=None) as standalone, caplog.at_level(logging.WARNING, logger="mongo_store"):
        standalone_counter = FindAndModifyCounter()
        plain = MongoClient(standalone.uri, event_listeners=[standalone_counter])
        store = MongoTokenStore(client=plain, database=database_name, read_cache=True)
        token = full(ALICE)
        store.save_token(token)
        assert until(lambda: store.cache.watcher() is None, 10.0, 0.05)  # no change streams here: off for good
        standalone_counter.names.clear()
        for _ in range(3):
            assert store.find_token_by_id(token.get_id()) is not None
        assert standalone_counter.names == ["find"] * 3
        assert store.cache_stats()["enabled"] is False
        store.close()  # writes its history event while the client is open
        plain.close()
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_a_closed_store_leaves_the_stream_and_the_stream_ends_with_its_last_store(real_client: MongoClient,
                                                                                 database_name: str) -> None:
    first, second = cached_store(real_client, database_name), cached_store(real_client, database_name)
    watcher = first.cache.watcher()
    assert watcher is second.cache.watcher()  # one stream per collection in a process
    first.close()
    assert watcher.state == "live"
    second.close()
    assert until(lambda: watcher.state == "stopped", 5.0)
    # Its thread leaves the registry as it ends, just after (never under the watcher's lock).
    assert until(lambda: read_cache._watchers.get(watcher.registry_key) is None, 5.0)


def test_an_application_exports_the_caches_counts(real_client: MongoClient, database_name: str) -> None:
    """``StoreCollector``: the cache's hits and misses and the history's queue on the
    application's own /metrics (counts in memory: a scrape asks MongoDB nothing)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from mongo_store.core.app_metrics import StoreCollector

    store = cached_store(real_client, database_name)
    token = full(ALICE)
    store.save_token(token)
    store.cache.evict(token.get_id())
    for _ in range(3):
        store.find_token_by_id(token.get_id())  # a miss, then two hits
    assert store.flush_events(10)
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    text = generate_latest(registry).decode()
    stats = store.cache_stats()
    assert (stats["hits"], stats["misses"]) == (2, 1)
    for line in ("zoho_store_cache_hits_total 2.0", "zoho_store_cache_misses_total 1.0", "zoho_store_cache_entries 1.0",
                 "zoho_store_cache_live 1.0", "zoho_store_events_written_total 1.0", "zoho_store_events_dropped_total 0.0",
                 "zoho_store_events_pending 0.0"):
        assert line in text.splitlines(), text
    assert token.get_id() not in text and ALICE not in text


class SessionsLost:
    """The tokens' collection as a client sees it when every server is lost mid-election: a command
    in an explicit session is refused (pymongo's ConfigurationError, before anything is sent)."""

    def __init__(self, real: Any) -> None:
        self.real, self.refused = real, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def find_one_and_update(self, *args: Any, session: Any = None, **kwargs: Any) -> Any:
        if session is not None:
            self.refused += 1
            from pymongo.errors import ConfigurationError

            raise ConfigurationError("Sessions are not supported by this MongoDB deployment")
        return self.real.find_one_and_update(*args, **kwargs)


def test_a_save_goes_on_without_its_session_when_the_client_cannot_use_one(real_client: MongoClient,
                                                                           database_name: str) -> None:
    """A save with the cache on runs in a session (for its write's cluster time); a client that can
    no longer use one saves without it (found by the 3-member failover test with the cache on)."""
    store = cached_store(real_client, database_name)
    token = full(ALICE)
    store.save_token(token)
    lost = SessionsLost(store._primary)
    store._primary = lost
    try:
        token.set_access_token(secret("access"))
        token.set_expires_in("4102444801000")
        store.save_token(token)
    finally:
        store._primary = lost.real
    assert lost.refused == 1
    assert store.collection.find_one({})["access_token"] == token.get_access_token()
    assert store.find_token_by_id(token.get_id()).get_access_token() == token.get_access_token()


def test_a_forked_child_keeps_nothing_it_cannot_prove(real_client: MongoClient, database_name: str) -> None:
    """A pre-forking server that built the store before the fork: the child drops the cached tokens
    (no stream of its own proves them yet) and its parent's queued history events (the parent
    writes those)."""
    store = cached_store(real_client, database_name)
    held = Held(store.events)
    store.events = held
    token = full(ALICE)
    store.save_token(token)
    assert held.entered.wait(10)
    store.save_token(full("bob@example.com:1"))  # queued behind the held write
    assert store.cache.holds(token.get_id()) and store.cache_stats()["events_pending"] == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: our own state only (no driver call)
        try:
            watcher = store.cache._watcher
            seen = [store.cache.holds(token.get_id()), store.cache_stats()["events_pending"],
                    watcher is not None and watcher.state]
            os.write(write, json.dumps(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert json.loads(os.read(read, 1000)) == [False, 0, "stopped"]
    finally:
        os.close(read)
        os.waitpid(pid, 0)
        held.gate.set()
    assert store.cache.holds(token.get_id())  # the parent keeps its own
    assert store.flush_events(10) and store.cache_stats()["events_written"] == 2


def test_a_stream_that_stops_never_waits_for_the_registry() -> None:
    """A stream stops with its own lock held (its last store went); a new store's first lookup
    holds the registry and waits for that lock. The stopping stream must not then wait for the
    registry (a deadlock that hung every later first lookup of the process): it leaves the
    registry when its thread ends, without its lock."""
    watcher = read_cache.Watcher(mongomock.MongoClient().db.tokens, (0, "db", "tokens"))

    def stop() -> None:
        with watcher.lock:
            watcher._stop("its last store went")

    with read_cache._registry:  # as watcher_for holds it, about to take the watcher's lock
        stopping = threading.Thread(target=stop, daemon=True)
        stopping.start()
        stopping.join(5)
        assert not stopping.is_alive(), "the stopping stream waits for the registry: a deadlock"
    assert watcher.state == "stopped"


def test_the_operator_front_ends_read_mongodb_every_time(mongo_uri: str, database_name: str,
                                                         dashboard_env: MongoTokenStore,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's and the dashboard's stores keep no read cache (and open no change stream): an
    operator acts on what is stored now, also right after a delete of their own, which the stream
    would deliver only milliseconds later. An application's store keeps it (the default)."""
    import argparse

    from mongo_store.cli.command import Command, open_store
    from mongo_store.dashboard import data
    from mongo_store.dashboard.settings import Settings

    monkeypatch.setenv("ZOHO_MONGO_READ_CACHE", "1")  # as a deployment has it (the suite turns it off)
    args = argparse.Namespace(uri=mongo_uri, database=database_name, collection=None, timeout=5.0)
    command_store = open_store(args, Command("check", "check tokens", lambda _context: 0, store="sdk"))
    connection = data.connect(Settings.load())
    application_store = MongoTokenStore(uri=mongo_uri, database=database_name)
    try:
        assert command_store.cache is None and connection.store.cache is None
        assert application_store.cache is not None
    finally:
        for store in (command_store, connection.store, application_store):
            store.close()


def test_a_store_without_a_key_probes_for_sealed_tokens_once_a_while_not_at_every_login(
        counted: tuple[MongoClient, FindAndModifyCounter], database_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A login's save in a collection without this package's validator first looks for a sealed
    token it must not write beside (issue 29's F5). A probe that found none is trusted for
    ``NO_SEALED_TRUSTED`` seconds: the next logins are one round trip each. Once that time has
    passed, a sealed token written meanwhile (encryption turned on elsewhere) is refused again."""
    from mongo_store.core import store as store_module

    client, counter = counted
    monkeypatch.setattr(store_module, "NO_SEALED_TRUSTED", 0.5)
    plain = MongoTokenStore(client=client, database=database_name, encryption_key=None, old_encryption_keys=[])
    plain.prepare()
    commands = []
    for n in range(3):
        before = len(counter.names)
        plain.save_token(full(f"person{n}@example.com:1"))
        commands.append(counter.names[before:])
    assert commands == [["listCollections", "find", "findAndModify"], ["findAndModify"], ["findAndModify"]]
    sealed = MongoTokenStore(client=client, database=database_name, encryption_key=base64.b64encode(os.urandom(32)).decode(),
                             old_encryption_keys=[], create_indexes=False)
    sealed.save_token(full("sealed@example.com:1"))
    time.sleep(0.6)
    with pytest.raises(SDKException, match="holds encrypted tokens, but this store has no encryption key"):
        plain.save_token(full("late@example.com:1"))
    assert client[database_name].oauth_tokens.count_documents({"user_name": "late@example.com:1"}) == 0
