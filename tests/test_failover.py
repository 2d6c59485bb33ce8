"""Replica-set failover on a real 3-member set: elections are ridden out, acknowledged saves are
never lost (whatever client is passed), and when an outcome is unknown the message says so.

The set is the suite's own (three embedded mongods): its members are killed, paused and stepped
down here, so with ``MONGODB_URI`` set these tests are skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, ReadPreference, WriteConcern
from pymongo.read_concern import ReadConcern
from replica_set import ReplicaSet
from tokens import full, oauth, secret
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore, cli
from mongo_store.core.calls import DURABLE
from mongo_store.core.errors import sentence
from mongo_store.tools.embedded import EmbeddedMongod

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WORKERS = 4  # half of them pass their own client with w=1


@pytest.fixture
def members(replica_set: ReplicaSet) -> Iterator[ReplicaSet]:
    """The suite's replica set, healthy before and after the test whatever the test did to it."""
    replica_set.wait_healthy()
    yield replica_set
    for number, member in enumerate(replica_set.members):
        replica_set.resume(number)
        if member.process is None:
            replica_set.restart(number)
    replica_set.wait_healthy()


# -- the nemesis: workers save and find while the primary is killed, stepped down and paused ------


def _worker(uri: str, database: str, number: int, stop: Any, output: str) -> None:
    """Saves new tokens and updates earlier ones; a second thread finds them meanwhile. Every
    call's outcome and duration is recorded."""
    w1 = number % 2 == 1
    client = MongoClient(uri, w=1) if w1 else None
    store = MongoTokenStore(client=client, database=database) if w1 else MongoTokenStore(uri, database=database)
    calls: list[dict[str, Any]] = []
    latest: dict[str, dict[str, Any]] = {}  # user name -> what its last acknowledged save stored
    refresh_only: list[dict[str, Any]] = []
    rng = random.Random(number)
    n = 0
    record = _recorder(calls)
    finder = threading.Thread(target=_find_loop, args=(store, latest, stop, number, record))
    finder.start()

    while not stop.is_set():
        user = f"w{number}-{n}@example.com:1"
        token = full(user, expires_in=str(int(time.time() * 1000) + 3_600_000))
        if record("save", lambda: store.save_token(token)):
            latest[user] = {"id": token.get_id(), "access": token.get_access_token()}
        if latest:
            earlier = rng.choice(sorted(latest))
            update = oauth(earlier, access_token=secret("access"), expires_in=str(int(time.time() * 1000) + 3_700_000))
            if record("save", lambda: store.save_token(update)):
                latest[earlier]["access"] = update.get_access_token()
        if n % 10 == 0:  # no user name: a retried first save must keep the id it drew
            bare = oauth(None, refresh_token=secret("refresh"), access_token=secret("access"))
            if record("save", lambda: store.save_token(bare)):
                refresh_only.append({"id": bare.get_id(), "refresh": bare.get_refresh_token()})
        n += 1
        time.sleep(0.002)
    finder.join()
    Path(output).write_text(json.dumps({"w1": w1, "calls": calls, "latest": latest, "refresh_only": refresh_only}))
    store.close()
    if client is not None:
        client.close()


def _recorder(calls: list[dict[str, Any]]) -> Any:
    def record(kind: str, call: Any) -> bool:
        started, wall = time.monotonic(), time.time()
        try:
            result = call()
            error = None
        except SDKException as failure:
            result, error = None, failure.error_message
        calls.append({"kind": kind, "at": wall, "seconds": time.monotonic() - started, "error": error,
                      "miss": kind == "find" and error is None and result is None})
        return error is None

    return record


def _find_loop(store: MongoTokenStore, latest: dict[str, Any], stop: Any, number: int, record: Any) -> None:
    rng = random.Random(-number)
    while not stop.is_set():
        if latest:
            user = rng.choice(list(latest))
            record("find", lambda: store.find_token(oauth(user, client=False)))
        time.sleep(0.002)


def _fault(members: ReplicaSet, kind: str) -> dict[str, Any]:
    """Do one fault to the primary and bring the set back to health; the fault's time window."""
    primary = members.primary()
    started = time.time()
    if kind == "SIGKILL":
        members.kill(primary)
        members.primary(other_than=primary)
        members.restart(primary)
    elif kind == "isolate, then SIGKILL":  # it takes writes no secondary receives, then dies
        secondaries = [n for n in range(len(members.members)) if n != primary]
        for number in secondaries:
            members.pause(number)
        time.sleep(1.5)
        members.kill(primary)
        for number in secondaries:
            members.resume(number)
        members.primary(other_than=primary)
        members.restart(primary)  # it rolls back what only it had
    elif kind == "step-down":
        members.step_down(primary)
        members.primary(other_than=primary)
    else:  # SIGSTOP: a primary that is alive but answers nothing
        members.pause(primary)
        members.primary(other_than=primary)
        members.resume(primary)
    elected = time.time()
    members.wait_healthy()
    return {"fault": kind, "from": started, "elected": elected, "to": time.time()}


def test_nemesis_no_call_fails_no_acknowledged_save_is_lost(members: ReplicaSet, database_name: str,
                                                           tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    outputs = [tmp_path / f"worker{n}.json" for n in range(WORKERS)]
    processes = [context.Process(target=_worker, args=(members.uri, database_name, n, stop, str(out)))
                 for n, out in enumerate(outputs)]
    for process in processes:
        process.start()
    try:
        time.sleep(5)  # every worker connected and saving
        faults = []
        for kind in ("SIGKILL", "step-down", "SIGSTOP", "isolate, then SIGKILL"):
            faults.append(_fault(members, kind))
            time.sleep(3)  # quiet between faults, so each call is counted under one fault
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=120)
    assert all(process.exitcode == 0 for process in processes)
    results = [json.loads(out.read_text()) for out in outputs]
    calls = [call for result in results for call in result["calls"]]

    report = outage_report(faults, calls)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "failover.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))

    failed = [call for call in calls if call["error"]]
    assert failed == [], failed[:5]
    assert sum(call["kind"] == "save" for call in calls) > 1000

    # Everything acknowledged is there, read with majority: nothing was rolled back.
    with MongoClient(members.uri) as reader:
        tokens = reader[database_name].get_collection("oauth_tokens", read_concern=ReadConcern("majority"))
        stored = {document["_id"]: document for document in tokens.find({})}
        for result in results:
            for user, expected in result["latest"].items():
                document = stored.get(expected["id"])
                assert document is not None, f"lost: {user} (w=1 client: {result['w1']})"
                assert document["user_name"] == user and document["access_token"] == expected["access"], user
            for expected in result["refresh_only"]:
                assert stored[expected["id"]]["refresh_token"] == expected["refresh"]
        # One document per user and per refresh token: nothing acknowledged twice, no strays.
        acknowledged = sum(len(result["latest"]) + len(result["refresh_only"]) for result in results)
        users = [document.get("user_name") for document in stored.values() if document.get("user_name")]
        refresh = [document["refresh_token"] for document in stored.values()]
        assert len(users) == len(set(users)) and len(refresh) == len(set(refresh))
        assert len(stored) == acknowledged


def outage_report(faults: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fault: the longest a save and a find took among the calls started while it lasted."""
    report = []
    for fault in faults:
        during = [call for call in calls if fault["from"] - 1 <= call["at"] <= fault["to"]]
        entry = {"fault": fault["fault"], "election_s": round(fault["elected"] - fault["from"], 1)}
        for kind in ("save", "find"):
            seconds = [call["seconds"] for call in during if call["kind"] == kind]
            entry[f"longest_{kind}_s"] = round(max(seconds, default=0.0), 1)
            entry[f"{kind}s"] = len(seconds)
            entry[f"failed_{kind}s"] = sum(1 for call in during if call["kind"] == kind and call["error"])
        # A secondary may answer a find before it has the newest save (majority is 2 of 3).
        entry["finds_missing_a_new_token"] = sum(1 for call in during if call["miss"])
        report.append(entry)
    return report


# -- durability, no primary, unknown outcomes: one fault at a time ---------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(list(argv), out=out)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.timed
def test_writes_are_majority_and_journaled_even_on_a_w1_client(members: ReplicaSet, database_name: str) -> None:
    caller = MongoClient(members.uri, w=1)
    try:
        store = MongoTokenStore(client=caller, database=database_name, failover_wait=3, socket_timeout=1)
        assert store.collection.write_concern == DURABLE == WriteConcern(w="majority", j=True)
        weak = MongoTokenStore(client=caller, database=database_name, write_concern=WriteConcern(w=1),
                               failover_wait=3, socket_timeout=1)
        store.save_token(full("before@example.com:1"))
        primary = members.primary()
        secondaries = [n for n in range(3) if n != primary]
        for number in secondaries:  # no majority can acknowledge anything now
            members.pause(number)
        try:
            started = time.monotonic()
            weak.save_token(full("weak@example.com:1"))  # w=1, as the caller's client would
            assert time.monotonic() - started < 1
            with pytest.raises(SDKException) as refused:
                store.save_token(full("durable@example.com:1"))
            assert 2.5 < time.monotonic() - started < 5
        finally:
            for number in secondaries:
                members.resume(number)
        message = refused.value.error_message
        assert message.startswith("could not save the token: the MongoDB operation did not complete within 3 s")
        assert "The outcome is unknown (it may have been applied): saving the same token again is safe" in message
    finally:
        caller.drop_database(database_name)
        caller.close()


@pytest.mark.parametrize("concern", [WriteConcern(w=0), {"w": 1}, "majority"])
def test_a_write_concern_must_be_an_acknowledged_write_concern(concern: Any) -> None:
    with pytest.raises(SDKException, match="write_concern must be an acknowledged pymongo WriteConcern"):
        MongoTokenStore("mongomock://", write_concern=concern)


@pytest.mark.timed
def test_without_a_primary_finds_go_on_and_saves_say_no_primary(members: ReplicaSet, database_name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    setup = MongoTokenStore(members.uri, database=database_name)
    saved = full("alice@example.com:1")
    setup.save_token(saved)
    setup.close()
    primary = members.primary()
    survivor = (primary + 1) % 3
    deadline = time.monotonic() + 30
    with members.direct(survivor) as direct:  # the survivor has the token before the others go
        while direct[database_name].oauth_tokens.find_one({"_id": saved.get_id()}) is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    for number in range(3):
        if number != survivor:
            members.kill(number)
    with members.direct(survivor) as direct:  # until the survivor itself knows there is no primary
        while direct.admin.command("hello").get("primary"):
            assert time.monotonic() < deadline + 30
            time.sleep(0.2)
    store = MongoTokenStore(members.uri, database=database_name, failover_wait=3)
    # A client that has seen the set (a worker's, running when the election began). A brand-new one
    # would first wait one attempt (up to socket_timeout) for a primary to create the indexes.
    store.client.admin.command("ping", read_preference=ReadPreference.SECONDARY_PREFERRED)
    try:
        assert store.find_token(oauth("alice@example.com:1", client=False)).get_id() == saved.get_id()
        assert store.find_token_by_id(saved.get_id()).get_refresh_token() == saved.get_refresh_token()
        assert [token.get_id() for token in store.get_tokens()] == [saved.get_id()]
        started = time.monotonic()
        with pytest.raises(SDKException) as refused:
            store.save_token(full("bob@example.com:1"))
        assert 2.5 < time.monotonic() - started < 5
        assert sentence(refused.value) == ("could not save the token: no primary in the MongoDB replica set "
                                               "within 3 s (an election, or the set has lost its majority)")
        # The CLI reads too, and says the same of a write.
        monkeypatch.setenv("MONGODB_URI", members.uri)
        monkeypatch.setenv("ZOHO_MONGO_DATABASE", database_name)
        code, out, err = run_cli("--timeout", "3", "list")
        assert code == 0 and saved.get_id() in out, err
        code, out, err = run_cli("--timeout", "3", "delete", saved.get_id(), "--yes")
        assert code == 1 and "no primary in the MongoDB replica set within 3 s" in err
    finally:
        store.close()


def test_an_unknown_outcome_says_so_and_saving_again_is_safe(members: ReplicaSet, database_name: str) -> None:
    store = MongoTokenStore(members.uri, database=database_name, failover_wait=1.5)
    token = full("carol@example.com:1")
    primary = members.primary()
    members.fail_command(primary, "alwaysOn", failCommands=["findAndModify"], closeConnection=True,
                         appName="zoho-mongo-store")
    try:
        started = time.monotonic()
        with pytest.raises(SDKException) as unknown:
            store.save_token(token)
        assert time.monotonic() - started < 3
    finally:
        members.fail_command(primary, "off")
    # The last attempt ends on the closed connection, or on the deadline while it reconnects.
    message = sentence(unknown.value)
    assert message.startswith(("could not save the token: the connection to MongoDB was lost.",
                               "could not save the token: the MongoDB operation did not complete within 1.5 s."))
    assert message.endswith("The outcome is unknown (it may have been applied): saving the same token again is safe")
    store.save_token(token)
    assert store.collection.count_documents({}) == 1
    assert store.find_token_by_id(token.get_id()).get_access_token() == token.get_access_token()
    store.close()


def test_a_save_applied_but_unacknowledged_is_retried_into_the_same_document(members: ReplicaSet,
                                                                            database_name: str) -> None:
    """The server applies the save and then answers with an error, four times (more than pymongo's
    own single retry): the store keeps trying, and the token keeps the id it drew first."""
    store = MongoTokenStore(members.uri, database=database_name)
    store.get_tokens()  # the indexes exist before the fail point is on
    token = oauth(None, refresh_token=secret("refresh"), access_token=secret("access"))
    primary = members.primary()
    members.fail_command(primary, {"times": 4}, failCommands=["findAndModify"], appName="zoho-mongo-store",
                         writeConcernError={"code": 64, "codeName": "WriteConcernFailed",
                                            "errmsg": "waiting for replication timed out", "errInfo": {"wtimeout": True}})
    try:
        store.save_token(token)
    finally:
        members.fail_command(primary, "off")
    documents = list(store.collection.find({}))
    assert [document["_id"] for document in documents] == [token.get_id()]
    assert documents[0]["refresh_token"] == token.get_refresh_token()
    store.close()


def test_a_standalone_server_keeps_working(tmp_path: Path) -> None:
    """Majority and journaling are what a standalone mongod does anyway: nothing to configure."""
    with EmbeddedMongod(tmp_path / "standalone", replica_set=None) as server:
        store = MongoTokenStore(server.uri)
        token = full("dave@example.com:1")
        store.save_token(token)
        assert store.find_token(oauth("dave@example.com:1", client=False)).get_id() == token.get_id()
        store.delete_token(token.get_id())
        assert store.get_tokens() == []
        store.close()
