"""A server that dies, comes back, or steps down: clear errors, bounded waits, nothing acknowledged lost.

These start their own mongod (the embedded one), so killing it disturbs no other test. With
``MONGODB_URI`` set they are skipped: we do not kill a server we did not start.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from pymongo import MongoClient
from tokens import full, oauth
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore
from mongo_store.tools.embedded import EmbeddedMongod, mongod_binary

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URI")) or (mongod_binary() is None and not os.environ.get("CI")),
    reason="needs the embedded mongod (and is not run against a server it did not start)",
)


def test_killed_server_fails_fast_and_recovers_with_nothing_lost(tmp_path: Path) -> None:
    server = EmbeddedMongod(data_dir=tmp_path / "db").start()
    store = MongoTokenStore(server.uri, server_selection_timeout=1.0, socket_timeout=2.0, failover_wait=2.0)
    try:
        saved = [full(f"user{n}@example.com:1") for n in range(20)]
        for token in saved:
            store.save_token(token)  # acknowledged (majority, journaled) before it returns

        server.kill()
        calls = {
            "find_token": lambda: store.find_token(oauth("user1@example.com:1", client=False)),
            "save_token": lambda: store.save_token(full("late@example.com:1")),
            "find_token_by_id": lambda: store.find_token_by_id(saved[0].get_id()),
            "get_tokens": store.get_tokens,
            "delete_token": lambda: store.delete_token(saved[0].get_id()),
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(SDKException) as failed:
                call()
            assert time.monotonic() - started < 2.0 + 1.0, name  # failover_wait + slack
            assert failed.value.code == "TOKEN_STORE"
            assert "MongoDB" in failed.value.error_message or "connection" in failed.value.error_message, name

        server.start()  # same folder, same port
        deadline = time.monotonic() + 30
        while True:
            try:
                found = store.find_token_by_id(saved[0].get_id())
                break
            except SDKException:
                assert time.monotonic() < deadline, "the store did not reconnect"
                time.sleep(0.2)
        assert found is not None
        assert sorted(t.get_id() for t in store.get_tokens()) == sorted(t.get_id() for t in saved)
        store.save_token(full("after@example.com:1"))
        assert len(store.get_tokens()) == 21
    finally:
        store.close()
        server.stop()


def test_step_down_during_a_stream_of_saves_loses_no_acknowledged_save() -> None:
    with EmbeddedMongod() as server:
        store = MongoTokenStore(server.uri, server_selection_timeout=15.0)
        acknowledged: list[str] = []
        failures: list[str] = []
        stop = threading.Event()

        def stream() -> None:
            number = 0
            while not stop.is_set() and number < 5000:
                token = full(f"stream{number}@example.com:1")
                try:
                    store.save_token(token)
                    acknowledged.append(token.get_id())
                except SDKException as error:
                    failures.append(error.error_message)
                number += 1

        writer = threading.Thread(target=stream)
        writer.start()
        time.sleep(0.5)
        before = len(acknowledged)
        admin = MongoClient(server.uri, serverSelectionTimeoutMS=15_000)
        term = admin.admin.command("replSetGetStatus")["term"]
        try:
            admin.admin.command("replSetStepDown", 2, secondaryCatchUpPeriodSecs=1, force=True)
        except Exception:
            pass  # the step-down closes this connection; that is expected
        deadline = time.monotonic() + 30
        while not admin.admin.command("hello").get("isWritablePrimary"):
            assert time.monotonic() < deadline, "no primary again after the step-down"
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        writer.join(timeout=60)
        try:
            assert admin.admin.command("replSetGetStatus")["term"] > term  # there was an election
            assert before > 0 and len(acknowledged) > before  # saves went on across the step-down
            assert failures == []  # retryable writes carried every save over the election
            stored = {document["_id"] for document in store.collection.find({}, {"_id": True})}
            assert set(acknowledged) <= stored
        finally:
            admin.close()
            store.close()
