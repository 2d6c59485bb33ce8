"""The stores under measurement, each seeded with the same tokens and driven through the same ops.

A subject maps operation names to callables taking the sample index ``k``; all arguments are
built before timing starts, so only the store's own work is timed.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pymongo import ReturnDocument, monitoring
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from mongo_store import MongoTokenStore
from mongo_store.core.indexes import ensure_indexes
from mongo_store.core.mapping import TOKEN_FIELDS, token_fields


class RoundTrips(monitoring.CommandListener):
    """Counts the commands a client sends from the measuring thread: one command is one round trip
    to the server on the caller's path (the store's history writer and change stream run in
    threads of their own)."""

    def __init__(self) -> None:
        self.count = 0
        self.thread = threading.get_ident()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if threading.get_ident() == self.thread:
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


OPS = ["find_by_user", "find_by_refresh", "find_by_access", "find_by_id", "save_update", "save_insert", "delete"]
CLIENT_ID, CLIENT_SECRET = "1000.BENCHCLIENT", "bench-client-secret-0123456789abcdef"
EXPIRES = "4102444800000"  # far from the SDK's refresh window, as most stored tokens are
Ops = dict[str, Callable[[int], Any]]


def row(k: int, prefix: str = "u") -> dict[str, str]:
    """The k-th token's values (prefix "n" for tokens inserted during the run)."""
    return {
        "id": f"{prefix}{k:09d}", "user_name": f"{prefix}{k}@example.com:700001",
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "refresh_token": f"1000.{prefix}{k:09d}.refresh.0f3c2a9e41d7b6a8c5e0f1a2b3c4d5e6",
        "access_token": f"1000.{prefix}{k:09d}.access.9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
        "grant_token": f"1000.{prefix}{k:09d}.grant.1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
        "expiry_time": EXPIRES, "redirect_url": "https://app.example.com/oauth", "api_domain": "https://www.zohoapis.com",
    }


def to_token(values: dict[str, str], **only: bool) -> OAuthToken:
    """An SDK token holding all of ``values`` (or, with ``only``, just the named ones)."""
    token = object.__new__(OAuthToken)
    setters = {"id": "set_id", "client_id": "set_client_id", "client_secret": "set_client_secret",
               "refresh_token": "set_refresh_token", "access_token": "set_access_token",
               "grant_token": "set_grant_token", "redirect_url": "set_redirect_url", "api_domain": "set_api_domain",
               "expiry_time": "set_expires_in"}
    for field, setter in setters.items():
        getattr(token, setter)(values[field] if not only or only.get(field) else None)
    name = values["user_name"] if not only or only.get("user_name") else None
    token.set_user_signature(UserSignature(name) if name else None)
    token._OAuthToken__find_user = True
    return token


def probes(k: int) -> dict[str, OAuthToken]:
    """The lookup tokens the SDK would pass for the k-th stored token."""
    values = row(k)
    return {
        "find_by_user": to_token(values, user_name=True),
        "find_by_refresh": to_token(values, client_id=True, client_secret=True, refresh_token=True),
        "find_by_access": to_token(values, access_token=True),
    }


def updated(k: int) -> OAuthToken:
    """The k-th token after a refresh: the SDK saves it with its id set."""
    values = row(k) | {"access_token": f"1000.{k:09d}.access.refreshed.c0ffee", "expiry_time": "4102448400000"}
    return to_token(values)


def document(values: dict[str, str]) -> dict[str, Any]:
    """The stored document for ``values``, through the store's own mapping."""
    fields = token_fields(to_token(values))
    now = datetime.now(timezone.utc)
    return fields | {"created_at": now, "updated_at": now}


# -- MongoDB: the store, and the bare driver call beneath it -----------------------------------


def seed_mongo(store: MongoTokenStore, size: int) -> None:
    store.collection.drop()
    ensure_indexes(store.collection)
    batch = []
    for k in range(size):
        batch.append(document(row(k)))
        if len(batch) == 10_000:
            store.collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        store.collection.insert_many(batch, ordered=False)


def token_store_ops(store: Any, sample: list[int], stored_id: Callable[[int], str]) -> Ops:
    """The same SDK calls on any TokenStore (ours, or the SDK's FileStore)."""
    lookups = {k: probes(k) for k in sample}
    updates = {k: updated(k) for k in sample}
    for k in sample:
        updates[k].set_id(stored_id(k))
    inserts = {k: to_token(row(k, "n") | {"id": None}) for k in sample}
    return {
        "find_by_user": lambda k: store.find_token(lookups[k]["find_by_user"]),
        "find_by_refresh": lambda k: store.find_token(lookups[k]["find_by_refresh"]),
        "find_by_access": lambda k: store.find_token(lookups[k]["find_by_access"]),
        "find_by_id": lambda k: store.find_token_by_id(stored_id(k)),
        "save_update": lambda k: store.save_token(updates[k]),
        "save_insert": lambda k: store.save_token(inserts[k]),
        "delete": lambda k: store.delete_token(inserts[k].get_id()),
    }


def mongo_store_ops(store: MongoTokenStore, sample: list[int]) -> Ops:
    store.find_token(to_token(row(0, "warm-up") | {"id": None}))  # the store checks its indexes once, on first use
    return token_store_ops(store, sample, lambda k: row(k)["id"])


def mongo_floor_ops(collection: Any, sample: list[int]) -> Ops:
    """The single driver call each store operation needs at the least, with prepared arguments."""
    projection = {field: True for field in TOKEN_FIELDS}
    after = ReturnDocument.AFTER

    def upsert(query: dict, values: dict) -> Any:
        update = {"$set": values, "$currentDate": {"updated_at": True},
                  "$setOnInsert": {"created_at": datetime.now(timezone.utc)}}
        return lambda: collection.find_one_and_update(query, update, upsert=True, projection=projection,
                                                      return_document=after)

    updates, inserts = {}, {}
    for k in sample:
        fields = token_fields(updated(k))
        updates[k] = upsert({"_id": fields.pop("_id")}, fields)
        new = token_fields(to_token(row(k, "m")))
        inserts[k] = upsert({"user_name": new.pop("user_name")}, new)
    values = {k: row(k) for k in sample}
    return {
        "find_by_user": lambda k: collection.find_one({"user_name": values[k]["user_name"]}, projection),
        "find_by_refresh": lambda k: collection.find_one({"refresh_token": values[k]["refresh_token"]}, projection),
        "find_by_access": lambda k: collection.find_one({"access_token": values[k]["access_token"]}, projection),
        "find_by_id": lambda k: collection.find_one({"_id": values[k]["id"]}, projection),
        "save_update": lambda k: updates[k](),
        "save_insert": lambda k: inserts[k](),
        "delete": lambda k: collection.delete_one({"_id": row(k, "m")["id"]}),
    }


# -- a logged-in person's request, through the SDK ----------------------------------------------


def request_ops(stores: dict[str, tuple[Any, Callable[[int], str]]], sample: list[int], resources: str) -> dict[str, Ops]:
    """For each store (with how it names the k-th token), the SDK's two lookups of a logged-in
    person's request: ``Initializer.switch_user(token=OAuthToken(id=...))`` (the README recipe's
    ``use``), then ``get_token`` as an API call makes it (``authenticate``). The tokens are valid:
    nothing is refreshed, nothing is asked of Zoho. The SDK is initialized once; a request names
    its store (``Initializer.initializer.store``, which ``switch_user`` hands on)."""
    from zohocrmsdk.src.com.zoho.crm.api.dc import USDataCenter
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
    from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

    store, token_id = next(iter(stores.values()))
    Initializer.initialize(USDataCenter.PRODUCTION(), OAuthToken(id=token_id(sample[0])), store=store,
                           sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
                           resource_path=resources)
    for store, _ in stores.values():  # the read cache's stream starts with a first lookup, and is live shortly
        cache = getattr(store, "cache", None)
        if cache is not None:
            watcher = cache.watcher()
            if watcher is None or not watcher.wait_live(30):
                raise RuntimeError("the read cache's change stream did not start")

    def request(store: Any, token_id: str) -> str:
        Initializer.initializer.store = store
        Initializer.switch_user(token=OAuthToken(id=token_id))
        return Initializer.get_initializer().token.get_token()

    return {name: {op: (lambda k, store=store, token_id=token_id: request(store, token_id(k)))
                   for op in ("first request", "request")}
            for name, (store, token_id) in stores.items()}


# -- the SDK's FileStore -----------------------------------------------------------------------

FILE_COLUMNS = ["id", "user_name", "client_id", "client_secret", "refresh_token", "access_token", "grant_token",
                "expiry_time", "redirect_url", "api_domain"]


def file_store(size: int, folder: str) -> FileStore:
    path = os.path.join(folder, f"tokens-{size}.csv")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FILE_COLUMNS)
        for k in range(size):
            values = row(k) | {"id": str(k + 1)}
            writer.writerow([values[column] for column in FILE_COLUMNS])
    return FileStore(path)


def file_store_ops(store: FileStore, sample: list[int]) -> Ops:
    return token_store_ops(store, sample, lambda k: str(k + 1))  # FileStore numbers its rows


# -- a SQLite store built the way the SDK's Kaizen sample builds it ----------------------------


class KaizenSQLite:
    """Table ``oauthtoken``, primary key on id only, a new connection per call, as in the sample.

    Parameters are bound (the sample concatenates strings: the speed is the same, the injection
    is not copied). ``indexed=True`` adds the indexes the sample lacks, to separate design from engine.
    """

    COLUMNS = FILE_COLUMNS

    def __init__(self, path: str, indexed: bool) -> None:
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE IF EXISTS oauthtoken")
            db.execute("CREATE TABLE oauthtoken (id varchar(10) PRIMARY KEY, user_name varchar(255), "
                       "client_id varchar(255), client_secret varchar(255), refresh_token varchar(255), "
                       "access_token varchar(255), grant_token varchar(255), expiry_time varchar(20), "
                       "redirect_url varchar(255), api_domain varchar(255))")
            if indexed:
                db.execute("CREATE UNIQUE INDEX user_name ON oauthtoken(user_name)")
                for column in ("refresh_token", "access_token", "grant_token"):
                    db.execute(f"CREATE INDEX {column} ON oauthtoken({column})")

    def seed(self, size: int) -> None:
        with sqlite3.connect(self.path) as db:
            db.executemany(f"INSERT INTO oauthtoken VALUES ({','.join('?' * 10)})",
                           ([row(k)[c] for c in self.COLUMNS] for k in range(size)))

    def find(self, where: str, value: str) -> tuple | None:
        db = sqlite3.connect(self.path)
        try:
            return db.execute(f"SELECT * FROM oauthtoken WHERE {where} = ? LIMIT 1", (value,)).fetchone()
        finally:
            db.close()

    def save(self, where: str, values: dict[str, str]) -> None:
        db = sqlite3.connect(self.path)
        try:
            with db:
                found = db.execute(f"SELECT id FROM oauthtoken WHERE {where} = ? LIMIT 1", (values[where],)).fetchone()
                if found:
                    db.execute("UPDATE oauthtoken SET access_token = ?, expiry_time = ? WHERE id = ?",
                               (values["access_token"], values["expiry_time"], found[0]))
                else:
                    db.execute(f"INSERT INTO oauthtoken VALUES ({','.join('?' * 10)})",
                               [values[c] for c in self.COLUMNS])
        finally:
            db.close()

    def delete(self, token_id: str) -> None:
        db = sqlite3.connect(self.path)
        try:
            with db:
                db.execute("DELETE FROM oauthtoken WHERE id = ?", (token_id,))
        finally:
            db.close()


def sqlite_ops(store: KaizenSQLite, sample: list[int]) -> Ops:
    values = {k: row(k) for k in sample}
    return {
        "find_by_user": lambda k: store.find("user_name", values[k]["user_name"]),
        "find_by_refresh": lambda k: store.find("refresh_token", values[k]["refresh_token"]),
        "find_by_access": lambda k: store.find("access_token", values[k]["access_token"]),
        "find_by_id": lambda k: store.find("id", values[k]["id"]),
        "save_update": lambda k: store.save("id", values[k] | {"access_token": "refreshed"}),
        "save_insert": lambda k: store.save("user_name", row(k, "n")),
        "delete": lambda k: store.delete(row(k, "n")["id"]),
    }


def scratch_folder() -> str:
    return tempfile.mkdtemp(prefix="zoho-bench-")
