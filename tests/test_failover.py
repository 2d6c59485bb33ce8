"""Replica-set failover on a real 3-member set: elections are ridden out, acknowledged saves are
never lost (whatever client is passed), and when an outcome is unknown the message says so.

The set is the suite's own (three embedded mongods): its members are killed, paused and stepped
down here, so with ``MONGODB_URI`` set these tests are skipped.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, WriteConcern
from pymongo.read_concern import ReadConcern
from replica_set import ReplicaSet
from tokens import full, oauth, secret
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore, cli
from mongo_store.embedded import EmbeddedMongod
from mongo_store.store import DURABLE

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
        for kind in ("SIGKILL", "step-down", "SIGSTOP"):
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
