"""What only a real MongoDB can show: query plans, and concurrency across threads and processes.

(mongomock is not thread-safe: concurrent calls fail inside it, so concurrency runs here only.)"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient, monitoring
from tokens import full, oauth, secret
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore

# -- every query shape the store sends uses an index ----------------------------------------------

EXPLAINABLE = {"find", "findAndModify", "delete", "update", "count", "aggregate", "distinct"}
SESSION_FIELDS = {"lsid", "$clusterTime", "txnNumber", "$db", "$readPreference", "autocommit", "startTransaction"}
INDEX_STAGES = {"IXSCAN", "IDHACK", "EXPRESS_IXSCAN", "EXPRESS_CLUSTERED_IXSCAN"}


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.inserts: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pipeline = event.command.get("pipeline") or [{}]
        if event.command_name == "aggregate" and "$changeStream" in pipeline[0]:
            return  # the read cache's change stream (cache.py) reads the oplog, not the tokens: no plan
        if event.command_name in EXPLAINABLE:
            self.commands.append({k: v for k, v in event.command.items() if k not in SESSION_FIELDS})
        elif event.command_name == "insert":  # the token history's events: nothing to explain
            self.inserts.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def stages(plan: Any) -> Iterator[str]:
    """Every stage name in a plan tree (inputStage, inputStages, queryPlan, winningPlan...),
    leaving out the plans the optimizer rejected."""
    if isinstance(plan, dict):
        if "stage" in plan:
            yield plan["stage"]
        for key, value in plan.items():
            if key != "rejectedPlans":
                yield from stages(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from stages(item)


def scans_everything(command: dict[str, Any]) -> bool:
    """get_tokens() and delete_tokens() read or delete the whole collection on purpose."""
    if command.get("filter") == {}:
        return True
    return any(entry.get("q") == {} for entry in command.get("deletes", []))


def test_every_query_shape_uses_an_index(mongo_uri: str, database_name: str) -> None:
    recorder = Recorder()
    client = MongoClient(mongo_uri, event_listeners=[recorder])
    try:
        store = MongoTokenStore(client=client, database=database_name)
        for user in range(50):  # enough documents that a scan and an index differ
            store.save_token(full(f"user{user}@example.com:1"))
        saved = full("alice@example.com:1")
        store.save_token(saved)  # insert by user name
        store.save_token(saved)  # update by id
        store.save_token(oauth(None, refresh_token=secret("refresh")))  # refresh token only
        store.save_token(oauth(None, refresh_token=secret("refresh"), grant_token=secret("grant")))  # $or
        store.save_token(oauth(None, client=False, access_token=secret("access")))  # access token
        store.save_token(oauth(None, client=False, access_token=secret("access"), client_id="c"))  # new id
        store.find_token(oauth("alice@example.com:1", client=False))
        store.find_token(oauth(None, client=False, access_token=saved.get_access_token()))
        store.find_token(oauth(None, refresh_token=saved.get_refresh_token()))
        store.find_token(oauth(None, grant_token=saved.get_grant_token()))
        store.find_token(oauth(None, grant_token=saved.get_grant_token(), refresh_token=saved.get_refresh_token()))
        store.find_token(OAuthToken(id=saved.get_id()))
        store.find_token_by_id(saved.get_id())
        expiring = full("expiring@example.com:1", expires_in="1000")  # in the refresh window: a lease
        store.save_token(expiring)
        store.find_token(oauth("expiring@example.com:1", client=False))  # takes the lease
        store.refresh_wait = 0.2
        store.find_token_by_id(expiring.get_id())  # waits, polls, gives up: bounded
        refused = full("refused@example.com:1", expires_in="1000")
        store.save_token(refused)
        holder = store.find_token_by_id(refused.get_id())  # takes the lease; its refresh fails:
        with pytest.raises(SDKException):
            holder.refresh_access_token(holder, "http://127.0.0.1:9/oauth/v2/token")  # recorded (an update)
        with pytest.raises(SDKException, match="keeps failing"):
            store.find_token_by_id(refused.get_id())  # backing off
        relogin = full("alice@example.com:1")  # a new login: another refresh token, by user name
        store.save_token(relogin)
        saved.set_access_token(secret("access"))
        store.save_token(saved)  # the old session's late save by id: the newer login stays
        store.get_tokens()
        store.delete_token(saved.get_id())
        store.delete_tokens()
        assert store.flush_events(10)  # the history is written by a thread of the store's own

        shapes = [command for command in recorder.commands if not scans_everything(command)]
        # delete_token is a findAndModify too: it names the person for the history in the same trip.
        assert {command_name(c) for c in shapes} == {"find", "findAndModify", "update"}
        # The store inserts only events: one per save that stored an access token, one per failed
        # refresh and one per delete_token.
        assert {insert["insert"] for insert in recorder.inserts} == {"token_events"}
        kinds = Counter(document["event"] for insert in recorder.inserts for document in insert["documents"])
        assert kinds["refresh-failed"] == 1 and kinds["deleted"] == 1 and kinds["refreshed"] >= 50
        assert set(kinds) == {"refreshed", "refresh-failed", "deleted"}
        assert len(shapes) >= 15
        for command in shapes:
            plan = client[database_name].command({"explain": command, "verbosity": "queryPlanner"})
            used = set(stages(plan["queryPlanner"]["winningPlan"]))
            assert "COLLSCAN" not in used, (command_name(command), used)
            assert used & INDEX_STAGES, (command_name(command), used)
    finally:
        client.drop_database(database_name)
        client.close()


def command_name(command: dict[str, Any]) -> str:
    return next(iter(command))


# -- concurrency -------------------------------------------------------------------------------

USERS = [f"user{n}@example.com:700001" for n in range(10)]
REFRESH = [f"1000.shared-refresh-{n}" for n in range(5)]


def save_all(store: MongoTokenStore, worker: int, rounds: int) -> list[str]:
    """Save every user and every shared refresh token, the way many SDK workers do at once."""
    failures = []
    for round_ in range(rounds):
        for user in USERS:
            token = oauth(user, refresh_token=f"1000.refresh-of-{user}", access_token=f"access-{worker}-{round_}")
            token.set_expires_in(str(1_767_225_600_000 + round_))
            try:
                store.save_token(token)
            except Exception as error:  # collected so the assertion shows every failure
                failures.append(f"{user}: {error}")
        for refresh in REFRESH:
            try:
                store.save_token(oauth(None, refresh_token=refresh, access_token=f"access-{worker}"))
            except Exception as error:
                failures.append(f"{refresh[:12]}: {error}")
    return failures


def assert_one_document_each(store: MongoTokenStore) -> None:
    assert store.collection.count_documents({}) == len(USERS) + len(REFRESH)
    for user in USERS:
        assert store.collection.count_documents({"user_name": user}) == 1
    for refresh in REFRESH:
        assert store.collection.count_documents({"refresh_token": refresh}) == 1


def test_many_threads_saving_the_same_users_leave_one_document_each(real_store: MongoTokenStore) -> None:
    failures: list[str] = []
    start = threading.Barrier(16)

    def worker(number: int) -> None:
        start.wait()
        failures.extend(save_all(real_store, number, rounds=3))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert_one_document_each(real_store)


def _process_worker(uri: str, database: str, number: int, start: Any, results: Any) -> None:
    store = MongoTokenStore(uri, database=database)
    start.wait()
    results.put(save_all(store, number, rounds=5))
    store.close()


def test_many_processes_saving_the_same_users_leave_one_document_each(
    real_store: MongoTokenStore, mongo_uri: str, database_name: str
) -> None:
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(6), context.Queue()
    processes = [
        context.Process(target=_process_worker, args=(mongo_uri, database_name, n, start, results)) for n in range(6)
    ]
    for process in processes:
        process.start()
    failures = [failure for _ in processes for failure in results.get(timeout=120)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert failures == []
    assert_one_document_each(real_store)


def race(threads: int, call: Any) -> list[Exception]:
    """Run ``call(n)`` in many threads released at the same instant; return what they raised."""
    start, errors = threading.Barrier(threads), []

    def worker(number: int) -> None:
        start.wait()
        try:
            call(number)
        except Exception as error:
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return errors


@pytest.mark.parametrize("key", ["user_name", "refresh_token", "refresh_or_grant"])
def test_racing_first_saves_of_a_new_token_converge(real_store: MongoTokenStore, key: str) -> None:
    """Twelve threads save one brand-new token at the same instant, twenty times over."""
    for round_ in range(20):
        value = secret(f"race{round_}")

        def save(number: int) -> None:
            if key == "user_name":
                token = oauth(f"{value}@example.com:1", refresh_token=secret("refresh"))
            elif key == "refresh_token":
                token = oauth(None, refresh_token=value, access_token=f"access-{number}")
            else:
                token = oauth(None, refresh_token=value, grant_token=f"grant-{round_}", access_token=f"a-{number}")
            real_store.save_token(token)

        assert race(12, save) == []
    assert real_store.collection.count_documents({}) == 20
