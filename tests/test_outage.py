"""Failing fast in a long outage (``mongo_store/core/outage.py``): once a store call has waited
longer than an election takes, new calls fail at once with one sentence, one probe at a time finds
the server back, and calls work again within seconds of its return, with no restart of the app.

The real tests start their own mongod and stop it (SIGSTOP) or kill it; with ``MONGODB_URI`` set
they are skipped: we do not stop a server we did not start. Elections keep being ridden out with 0
failed calls: tests/test_failover.py, unchanged, runs with the same defaults.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tokens import full
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore
from mongo_store.core import outage
from mongo_store.core.outage import Down, OutageWatch
from mongo_store.tools.embedded import EmbeddedMongod, mongod_binary

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
real_server = pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URI")) or (mongod_binary() is None and not os.environ.get("CI")),
    reason="needs the embedded mongod (and is not run against a server it did not start)",
)


# -- the watch alone ---------------------------------------------------------------------------------


def test_a_call_failing_past_the_threshold_makes_new_calls_fail_until_a_probe_is_answered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outage, "PROBE_PAUSE", 0.05)
    answers = threading.Event()
    probes: list[float] = []

    def probe() -> None:
        probes.append(time.monotonic())
        if not answers.is_set():
            raise ConnectionError("no answer")

    watch = OutageWatch(0.3, probe)
    watch.check()  # nothing failing: a call goes through
    started = time.monotonic()
    ticket = watch.failed(None, started)  # a call's attempt failed; it tries again
    watch.check()  # not long enough yet: an election takes that long
    time.sleep(0.35)
    with pytest.raises(Down, match=r"MongoDB unreachable since \d{4}-\d\d-\d\dT[\d:]+Z \(\d+ s\); store calls fail at once"):
        watch.check()  # a new call: at once
    with pytest.raises(Down):
        watch.failed(ticket, started)  # the waiting call gives up at its next failure
    assert watch.down_since is not None
    time.sleep(0.3)
    assert len(probes) >= 3 and watch.down_since is not None  # one probe at a time, none answered
    gaps = [later - earlier for earlier, later in itertools.pairwise(probes)]
    assert min(gaps) >= 0.04
    answers.set()
    deadline = time.monotonic() + 2
    while watch.down_since is not None:
        assert time.monotonic() < deadline, "the probe never ended the outage"
        time.sleep(0.01)
    watch.check()  # calls go through again
    assert not watch.suspect


def test_off_with_zero_and_a_call_that_succeeds_ends_it() -> None:
    off = OutageWatch(0.0, lambda: None)
    ticket = off.failed(None, time.monotonic() - 3600)
    off.check()  # never down
    off.ended(ticket, ok=False)
    watch = OutageWatch(0.05, lambda: (_ for _ in ()).throw(ConnectionError()))
    waiting = watch.failed(None, time.monotonic())
    with pytest.raises(Down):
        watch.failed(None, time.monotonic() - 1)  # this one waited past the threshold: it gives up
    with pytest.raises(Down):
        watch.check()
    watch.ended(waiting, ok=True)  # a call that was waiting got its answer: MongoDB is back
    assert watch.down_since is None
    watch.check()
    watch.close()


def test_mongomock_never_counts_as_down() -> None:
    store = MongoTokenStore("mongomock://", fail_fast_after=0.001)
    assert store.outage.after == 0
    store.save_token(full())


@pytest.mark.parametrize("value", [-1, "20", float("nan")])
def test_fail_fast_after_is_a_number_of_seconds(value: Any) -> None:
    with pytest.raises(SDKException, match="fail_fast_after must be 0 \\(off\\) or a positive number of seconds"):
        MongoTokenStore("mongomock://", fail_fast_after=value)


# -- a real mongod, stopped ----------------------------------------------------------------------------


class Requests:
    """Request threads looking a token up in a loop: each call's start, duration and outcome."""

    def __init__(self, store: MongoTokenStore, token_id: str, threads: int = 4) -> None:
        self.store, self.token_id = store, token_id
        self.calls: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(threads)]
        self.origin = time.monotonic()

    def loop(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                self.store.find_token_by_id(self.token_id)
                error = None
            except SDKException as failure:
                error = failure.error_message
            self.calls.append({"at": began - self.origin, "seconds": time.monotonic() - began, "error": error})
            time.sleep(0.05)

    def __enter__(self) -> Requests:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


@real_server
def test_a_40_s_sigstop_fails_new_calls_at_once_past_20_s_and_they_work_again_after_sigcont(tmp_path: Path) -> None:
    """The defaults (socket_timeout 10 s, failover_wait 30 s, fail_fast_after 20 s), a single-node
    replica set stopped for 40 s under four request threads."""
    server = EmbeddedMongod(data_dir=tmp_path / "db").start()
    store = MongoTokenStore(server.uri)
    try:
        token = full()
        store.save_token(token)
        store.find_token_by_id(token.get_id())
        assert server.process is not None
        with Requests(store, token.get_id()) as requests:
            time.sleep(1)
            stopped = time.monotonic() - requests.origin
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                time.sleep(40)
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            resumed = time.monotonic() - requests.origin
            time.sleep(8)
        calls = requests.calls
        during = [call for call in calls if stopped < call["at"] < resumed - 1]
        early = [call for call in during if call["at"] < stopped + 1]  # they ride it out, then give up
        late = [call for call in during if call["at"] > stopped + outage_after(store) + 1]
        after = [call for call in calls if call["at"] > resumed]
        first_ok = min(call["at"] + call["seconds"] for call in after if call["error"] is None) - resumed
        report = {"stopped_s": 40, "threshold_s": outage_after(store), "calls_during": len(during),
                  "longest_early_call_s": round(max(call["seconds"] for call in early), 1),
                  "late_calls": len(late), "late_calls_failed": sum(call["error"] is not None for call in late),
                  "longest_late_call_s": round(max(call["seconds"] for call in late), 3),
                  "first_success_after_sigcont_s": round(first_ok, 2),
                  "calls_after_sigcont": len(after), "failed_after_sigcont_plus_3_s":
                      sum(call["error"] is not None for call in after if call["at"] > resumed + 3)}
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "outage.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report))
        # The calls under way when it stopped waited the threshold (not failover_wait, 30 s), then gave up.
        assert early and all(call["error"] for call in early)
        assert all(outage_after(store) - 0.5 <= call["seconds"] <= outage_after(store) + 1.5 for call in early), early
        # Once one had waited past it, new calls failed at once, saying so.
        assert len(late) > 100 and report["late_calls_failed"] == len(late)
        assert report["longest_late_call_s"] < 1.0
        assert all(call["error"].startswith("could not find the token by id: MongoDB unreachable since ") for call in late)
        # After SIGCONT: working again within seconds, with the same store.
        assert first_ok < 3.0 and report["failed_after_sigcont_plus_3_s"] == 0 and len(after) > 20
        assert store.outage.down_since is None
    finally:
        store.close()
        server.kill()


def outage_after(store: MongoTokenStore) -> float:
    return store.settings.fail_fast_after


@pytest.mark.timed
@real_server
def test_a_killed_and_restarted_mongod_is_found_back_without_a_restart_of_the_app(tmp_path: Path) -> None:
    """Short bounds, so it runs in seconds: the server is killed, calls fail at once past the
    threshold, and after the server starts again (same folder and port) they work at once."""
    server = EmbeddedMongod(data_dir=tmp_path / "db").start()
    store = MongoTokenStore(server.uri, socket_timeout=1.0, server_selection_timeout=1.0, failover_wait=10.0,
                            fail_fast_after=2.0)
    try:
        token = full()
        store.save_token(token)
        server.kill()
        began = time.monotonic()
        with pytest.raises(SDKException):
            store.find_token_by_id(token.get_id())  # waits past the threshold, then gives up
        assert 2.0 <= time.monotonic() - began < 4.0
        quick = time.monotonic()
        with pytest.raises(SDKException, match="MongoDB unreachable since"):
            store.save_token(full("bob@example.com:1"))
        assert time.monotonic() - quick < 0.5
        server.start()
        back = time.monotonic()
        while True:
            try:
                found = store.find_token_by_id(token.get_id())
                break
            except SDKException:
                assert time.monotonic() - back < 10, "the store never found the server back"
                time.sleep(0.1)
        assert found.get_refresh_token() == token.get_refresh_token() and time.monotonic() - back < 10
        store.save_token(full("bob@example.com:1"))
    finally:
        store.close()
        server.kill()


@real_server
def test_a_primary_missing_longer_than_the_threshold_is_no_outage_while_a_member_answers(replica_set: Any,
                                                                                           database_name: str) -> None:
    """The election that outlasts ``fail_fast_after`` (here 2 s, with the primary and one secondary
    paused there is no majority: no primary for as long as the test likes): a member still answers,
    so nothing counts as down. Lookups go on from the secondary; a save waits its ``failover_wait``
    and says "no primary", as before; no call is refused at once."""
    replica_set.wait_healthy()
    store = MongoTokenStore(replica_set.uri, database=database_name, socket_timeout=2.0, failover_wait=6.0,
                            fail_fast_after=2.0)
    paused: list[int] = []
    try:
        token = full()
        store.save_token(token)
        primary = replica_set.primary()
        survivor = (primary + 1) % 3
        deadline = time.monotonic() + 30
        with replica_set.direct(survivor) as direct:  # the survivor has the token before the others stop
            while direct[database_name].oauth_tokens.find_one({"_id": token.get_id()}) is None:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        paused = [number for number in range(3) if number != survivor]
        for number in paused:
            replica_set.pause(number)
        began = time.monotonic()
        with pytest.raises(SDKException) as refused:
            store.save_token(full("bob@example.com:1"))
        assert 5.5 < time.monotonic() - began < 9, "the save waited its failover_wait, past the threshold"
        assert "MongoDB unreachable" not in refused.value.error_message
        assert store.outage.down_since is None
        for _ in range(5):  # lookups: from the secondary, never refused
            assert store.find_token_by_id(token.get_id()).get_refresh_token() == token.get_refresh_token()
        assert store.outage.down_since is None
    finally:
        for number in paused:
            replica_set.resume(number)
        replica_set.wait_healthy()
        store.close()
        with replica_set.direct(replica_set.primary()) as client:
            client.drop_database(database_name)
