"""No stale overwrites, and one refresh per expiry however many workers share a user."""

from __future__ import annotations

import multiprocessing
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fake_zoho import USER_NAME, FakeZoho
from pymongo import MongoClient, monitoring
from tokens import CLIENT_ID, full, oauth, secret
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from mongo_store import MongoTokenStore
from mongo_store.core.lease import LEASE_FIELD, RefreshFailing

ALICE = "alice@example.com:700001"
NOW_MS = int(datetime.now(timezone.utc).timestamp() * 1000)
HOUR = 3_600_000


def refreshed(token: OAuthToken, access: str, expires_in: int) -> OAuthToken:
    """What OAuthToken.parse_response does to a token after a refresh."""
    token.set_access_token(access)
    token.set_expires_in(str(expires_in))
    return token


# -- no stale overwrites: interleavings forced step by step -------------------------------------


@pytest.mark.parametrize("lookup", ["id", "user_name", "refresh_token"])
def test_a_slow_workers_old_refresh_never_replaces_a_newer_token(store: MongoTokenStore, lookup: str) -> None:
    original = full(ALICE, access_token="a0", expires_in=str(NOW_MS + HOUR))
    store.save_token(original)

    def read() -> OAuthToken:  # each worker gets its own copy, as the SDK does
        if lookup == "id":
            return store.find_token_by_id(original.get_id())
        if lookup == "user_name":
            return store.find_token(oauth(ALICE, client=False))
        probe = oauth(None, refresh_token=original.get_refresh_token(), client_id=CLIENT_ID,
                      client_secret=original.get_client_secret())
        return store.find_token(probe)

    slow, fast = read(), read()
    store.save_token(refreshed(fast, "a2", NOW_MS + 3 * HOUR))  # the fast worker's refresh lands first
    if lookup != "id":
        slow.set_id(None)  # match by the name or refresh token, not the id
    store.save_token(refreshed(slow, "a1", NOW_MS + 2 * HOUR))  # then the slow one's older refresh
    document = store.collection.find_one({})
    assert store.collection.count_documents({}) == 1
    assert document["access_token"] == "a2"
    assert slow.get_access_token() == "a2" and slow.get_expires_in() == str(NOW_MS + 3 * HOUR)

    newer = read()
    store.save_token(refreshed(newer, "a3", NOW_MS + 4 * HOUR))  # a newer refresh does replace it
    assert store.collection.find_one({})["access_token"] == "a3"


def test_equal_or_missing_stored_expiry_is_replaced(store: MongoTokenStore) -> None:
    token = full(ALICE, access_token="a0", expires_in=str(NOW_MS + HOUR))
    store.save_token(token)
    store.save_token(refreshed(token, "same-expiry", NOW_MS + HOUR))
    assert store.collection.find_one({})["access_token"] == "same-expiry"
    store.collection.update_one({}, {"$unset": {"expiry_time": ""}})
    store.save_token(refreshed(token, "after-unknown", NOW_MS))
    assert store.collection.find_one({})["access_token"] == "after-unknown"


class FindAndModifyCounter(monitoring.CommandListener):
    """The names of the commands a client sends from the thread that made the counter (the
    caller's round trips: the store's history writer and change stream run in threads of their
    own); ``every_thread=True`` counts them all."""

    def __init__(self, every_thread: bool = False) -> None:
        self.names: list[str] = []
        self.thread = None if every_thread else threading.get_ident()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.thread is None or threading.get_ident() == self.thread:
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_the_guard_is_inside_the_write_and_holds_under_racing_saves(mongo_uri: str, database_name: str) -> None:
    """Saves race with random expiries: the newest always wins, and a save is one command."""
    counter = FindAndModifyCounter()
    client = MongoClient(mongo_uri, event_listeners=[counter])
    try:
        store = MongoTokenStore(client=client, database=database_name)
        base = full(ALICE, access_token="start", expires_in=str(NOW_MS))
        store.save_token(base)
        counter.names.clear()
        store.save_token(refreshed(base, "one-command", NOW_MS + 1))
        # No read before the write; a refreshing save adds its event to the token's history, off
        # the caller's thread.
        assert counter.names == ["findAndModify"]
        assert store.flush_events(10)
        assert [event["event"] for event in store.events.find({"token_id": base.get_id()})] == ["refreshed"] * 2
        counter.names.clear()
        unchanged = OAuthToken(id=base.get_id())  # a save that stores no access token: nothing else
        unchanged.set_api_domain("https://www.zohoapis.com")
        store.save_token(unchanged)
        assert counter.names == ["findAndModify"]

        expiries = random.Random(5).sample(range(NOW_MS + HOUR, NOW_MS + 2 * HOUR), 64)
        start = threading.Barrier(16)

        def worker(chunk: list[int]) -> None:
            start.wait()
            for expiry in chunk:
                token = store.find_token_by_id(base.get_id())
                store.save_token(refreshed(token, f"access-{expiry}", expiry))

        threads = [threading.Thread(target=worker, args=(expiries[n::16],)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        document = store.collection.find_one({})
        assert document["access_token"] == f"access-{max(expiries)}"
        assert store.find_token_by_id(base.get_id()).get_expires_in() == str(max(expiries))
    finally:
        client.drop_database(database_name)
        client.close()


# -- refresh coordination --------------------------------------------------------------------


def test_one_thread_refreshes_and_the_others_get_its_token(real_store: MongoTokenStore) -> None:
    token = full(ALICE, access_token="old", expires_in=str(NOW_MS + 1000))  # inside the 5 s window
    real_store.save_token(token)
    start, results = threading.Barrier(10), []

    def worker() -> None:
        start.wait()
        mine = real_store.find_token_by_id(token.get_id())
        if mine.get_access_token() == "old":  # this worker holds the lease: it refreshes, as the SDK would
            time.sleep(0.3)
            real_store.save_token(refreshed(mine, "fresh", NOW_MS + HOUR))
            results.append("refreshed")
        else:
            results.append(mine.get_access_token())

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["fresh"] * 9 + ["refreshed"]
    assert LEASE_FIELD not in real_store.collection.find_one({})  # the save released it


def test_the_off_switch_and_tokens_outside_the_window(store: MongoTokenStore) -> None:
    store.save_token(full(ALICE, access_token="old", expires_in=str(NOW_MS - 1000)))
    off = MongoTokenStore(client=store.client, database=store.collection.database.name, refresh_lease=0)
    assert off.find_token(oauth(ALICE, client=False)).get_access_token() == "old"
    assert off.find_token(oauth(ALICE, client=False)).get_access_token() == "old"  # no wait either time
    assert LEASE_FIELD not in store.collection.find_one({})
    store.save_token(full("bob@example.com:1", expires_in=str(NOW_MS + HOUR)))
    store.find_token(oauth("bob@example.com:1", client=False))
    assert LEASE_FIELD not in store.collection.find_one({"user_name": "bob@example.com:1"})


HOLDER = """
import os, signal, sys
from mongo_store import MongoTokenStore
store = MongoTokenStore(sys.argv[1], database=sys.argv[2], refresh_lease=float(sys.argv[4]))
token = store.find_token_by_id(sys.argv[3])  # takes the lease
print("holding", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies mid-refresh
"""


@pytest.mark.timed
@pytest.mark.parametrize("backoff", [1.0, 30.0])
def test_a_holder_killed_mid_refresh_delays_the_others_no_longer_than_the_lease(
    real_store: MongoTokenStore, mongo_uri: str, database_name: str, backoff: float
) -> None:
    """The others learn of the dead holder when its lease lapses: with the attempt's back-off window
    over by then, one of them takes over and refreshes; inside it, they are refused at once."""
    lease = 2.0
    token = full(ALICE, access_token="old", expires_in=str(NOW_MS + 1000))
    real_store.save_token(token)
    holder = subprocess.run([sys.executable, "-c", HOLDER, mongo_uri, database_name, token.get_id(), str(lease)],
                            capture_output=True, text=True, timeout=60)
    assert holder.returncode == -signal.SIGKILL and "holding" in holder.stdout
    assert real_store.collection.find_one({})[LEASE_FIELD] is not None
    waiter = MongoTokenStore(client=real_store.client, database=database_name, refresh_lease=lease, refresh_wait=30,
                             refresh_backoff=backoff, refresh_backoff_max=backoff)
    started = time.monotonic()
    if backoff < lease:
        found = waiter.find_token_by_id(token.get_id())
        assert found.get_access_token() == "old"  # it took over the lapsed lease: now it refreshes
    else:
        with pytest.raises(RefreshFailing, match="keeps failing"):
            waiter.find_token_by_id(token.get_id())
    waited = time.monotonic() - started
    assert waited <= lease + 0.5
    assert real_store.collection.find_one({})["refresh_failures"] == 1


# -- the real SDK in 20 processes at the moment of expiry ----------------------------------------


def _sdk_worker(uri: str, database: str, url: str, resources: str, start: Any, results: Any) -> None:
    from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
    from zohocrmsdk.src.com.zoho.crm.api.org.org_operations import OrgOperations
    from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

    try:
        store = MongoTokenStore(uri, database=database)
        environment = DataCenter.Environment(url, f"{url}/oauth/v2/token", url)
        token = OAuthToken(user_signature=UserSignature(USER_NAME))
        start.wait(timeout=120)
        Initializer.initialize(environment, token, store=store, resource_path=resources,
                               sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False))
        status = OrgOperations().get_organization().get_status_code()
        results.put((status, token.get_access_token()))
    except Exception as error:  # reported, so the assertion shows it
        results.put(("error", repr(error)))


def test_twenty_sdk_processes_at_the_moment_of_expiry_cause_one_refresh(
    real_store: MongoTokenStore, mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    workers = 20
    client_secret, refresh = secret("clientsecret"), secret("refresh")
    with FakeZoho(secret("grant"), refresh, CLIENT_ID, client_secret) as zoho:
        stored = OAuthToken(client_id=CLIENT_ID, client_secret=client_secret, refresh_token=refresh,
                            user_signature=UserSignature(USER_NAME), api_domain=zoho.url)
        stored.set_access_token(zoho.new_access_token())
        stored.set_expires_in(str(NOW_MS + HOUR))
        real_store.save_token(stored)

        context = multiprocessing.get_context("spawn")
        start, results = context.Barrier(workers + 1), context.Queue()
        processes = [context.Process(target=_sdk_worker,
                                     args=(mongo_uri, database_name, zoho.url, str(tmp_path), start, results))
                     for _ in range(workers)]
        for process in processes:
            process.start()
        try:
            # Everyone is ready: now the stored access token reaches its expiry, and all go at once.
            real_store.collection.update_one({}, {"$set": {"expiry_time": datetime.now(timezone.utc)}})
            start.wait(timeout=180)
            outcomes = [results.get(timeout=120) for _ in processes]
        finally:
            for process in processes:
                process.join(timeout=60)
                if process.is_alive():
                    process.kill()
        assert zoho.requests["refresh"] == 1, outcomes
        fresh = real_store.collection.find_one({})["access_token"]
        assert outcomes == [(200, fresh)] * workers
        assert set(zoho.seen_authorization[-workers:]) == {f"Zoho-oauthtoken {fresh}"}
