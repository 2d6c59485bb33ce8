"""A "Log in with Zoho" portal (the README's "Many users" recipe) serving logged-in people from one
thread, against the testing kit's fake Zoho on 127.0.0.1: requests per second with MongoTokenStore
as it ships (the read cache on), with the cache off, and with the SDK's FileStore, side by side.

    python bench/portal.py                          # 20 people, 40 rounds, on the embedded mongod
    python bench/portal.py --people 50 --rounds 20
    MONGODB_URI=mongodb://... python bench/portal.py   # another server (its zoho_portal_bench database is dropped)

A request is what the recipe's ``organization(token_id)`` does: ``Initializer.switch_user`` with the
session's token id (the SDK's first lookup), then ``OrgOperations().get_organization()`` (its
second lookup, and an HTTP call to the fake Zoho, which runs in this process). The stores take
turns round by round, in alternating order, so the machine's drift affects them alike. Counts the
MongoDB round trips of the requesting thread. Prints a Markdown table. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from subjects import RoundTrips
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.org.org_operations import OrgOperations
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

from mongo_store import MongoTokenStore
from mongo_store.testing import FakeZoho
from mongo_store.tools.embedded import EmbeddedMongod

DATABASE = "zoho_portal_bench"
CLIENT_ID, CLIENT_SECRET = "1000.PORTALBENCH", "portal-bench-client-secret-0123456789"
SHIPPED, READS, FILE = "MongoTokenStore (as shipped)", "MongoTokenStore, read cache off", "SDK FileStore"


def log_in(zoho: FakeZoho, store: Any, email: str) -> str:
    """The recipe's ``log_in``: the SDK exchanges a grant code and saves the token; its id."""
    Initializer.initializer.store = store
    token = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, grant_token=zoho.grant(email),
                       redirect_url="https://portal.example.com/oauth")
    Initializer.switch_user(token=token)
    token_id = token.get_id()
    if token_id is None:
        raise RuntimeError("the login was not stored")
    return str(token_id)


def request(store: Any, token_id: str) -> int:
    """The recipe's ``organization``: both of the SDK's lookups and one API call."""
    Initializer.initializer.store = store
    Initializer.switch_user(token=OAuthToken(id=token_id))
    return int(OrgOperations().get_organization().get_status_code())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20, help="logged-in people, served in turn")
    parser.add_argument("--rounds", type=int, default=40, help="rounds of one request per person and store")
    args = parser.parse_args()

    with ExitStack() as stack:
        uri = os.environ.get("MONGODB_URI") or stack.enter_context(EmbeddedMongod()).uri
        zoho = stack.enter_context(FakeZoho())
        trips = RoundTrips()
        # The settings of the client MongoTokenStore(uri) creates, with the round trips counted.
        client = MongoClient(uri, event_listeners=[trips], serverSelectionTimeoutMS=5000, connectTimeoutMS=5000,
                             socketTimeoutMS=10_000, retryReads=False, appname="zoho-mongo-store")
        stack.callback(client.close)
        client.drop_database(DATABASE)
        stack.callback(client.drop_database, DATABASE)
        folder = tempfile.mkdtemp(prefix="zoho-portal-bench-")
        stores: dict[str, Any] = {
            SHIPPED: MongoTokenStore(client=client, database=DATABASE, collection="shipped"),
            READS: MongoTokenStore(client=client, database=DATABASE, collection="reads", read_cache=False),
            FILE: FileStore(os.path.join(folder, "tokens.csv")),
        }
        for store in stores.values():
            if isinstance(store, MongoTokenStore):
                store.prepare()
                stack.callback(store.close)
        first = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, grant_token=zoho.grant("first@example.com"),
                           redirect_url="https://portal.example.com/oauth")
        Initializer.initialize(zoho.environment, first, store=stores[FILE], resource_path=folder,
                               sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False))
        cache = stores[SHIPPED].cache
        watcher = cache.watcher() if cache is not None else None
        if watcher is None or not watcher.wait_live(30):  # live from a store's first call on, in an app
            raise RuntimeError("the read cache's change stream did not start")
        people = [f"person{n}@example.com" for n in range(args.people)]
        ids = {name: [log_in(zoho, store, email) for email in people] for name, store in stores.items()}

        seconds = dict.fromkeys(stores, 0.0)
        latencies: dict[str, list[float]] = {name: [] for name in stores}
        trips_by = dict.fromkeys(stores, 0)
        for round_ in range(args.rounds):
            order = list(stores) if round_ % 2 == 0 else list(reversed(stores))
            for name in order:
                before = trips.count
                for token_id in ids[name]:
                    started = time.perf_counter()
                    if request(stores[name], token_id) != 200:
                        raise RuntimeError(f"{name}: a request failed")
                    took = time.perf_counter() - started
                    seconds[name] += took
                    latencies[name].append(took * 1000)
                trips_by[name] += trips.count - before
        served = args.people * args.rounds
        print(f"{args.people} people, {args.rounds} rounds: {served} requests per store, one thread\n")
        print("| store | requests/s | median ms | p95 ms | MongoDB round trips per request |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name in stores:
            ordered = sorted(latencies[name])
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            rt = f"{trips_by[name] / served:.2f}" if name != FILE else "–"
            print(f"| {name} | {served / seconds[name]:,.0f} | {statistics.median(ordered):.2f} | {p95:.2f} | {rt} |")
        stats = stores[SHIPPED].cache_stats()
        print(f"\nread cache: {stats['hits']} hits, {stats['misses']} misses")


if __name__ == "__main__":
    main()
