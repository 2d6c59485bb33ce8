"""Each token's history (``events.py``): written by the SDK's own refreshes through the store, by
check, revoke, delete, cleanup and import; kept for its retention (a TTL index the test server
applies within seconds); never a secret; a failed event write never fails what it records. And the
audit log's search and keyset paging (``tools/audit.py``), explained on the real mongod."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_zoho import USER_NAME, FakeZoho, ZohoAccounts
from pymongo import MongoClient, monitoring
from test_check_revoke import SECRET, accounts, offline, stored  # noqa: F401  (fixtures and helpers)
from test_cleanup import CLIENT_SECRET, POLICY, SELECTED, scene
from test_cli import env, run  # noqa: F401  (the CLI fixture and runner)
from test_refresh_safety import FindAndModifyCounter
from test_sdk_end_to_end import LOOKS_UP_USER, call_api, initialize
from tokens import CLIENT_ID, full, oauth, secret
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from mongo_store import MongoTokenStore
from mongo_store.core import events
from mongo_store.core.clock import utcnow
from mongo_store.core.settings import StoreSettings
from mongo_store.dashboard import data
from mongo_store.tools import audit as audit_log
from mongo_store.tools.settings import OperatorSettings

DAY = 86_400


def events_of(store: MongoTokenStore, token_id: str) -> list[dict[str, Any]]:
    """The token's events, newest first, once the store's writer has written what it holds (the
    history is written off the caller's thread)."""
    assert store.flush_events(10)
    return events.for_token(store.events, token_id)


def kinds(store: MongoTokenStore, token_id: str) -> list[str]:
    """The token's events, newest first."""
    return [event["event"] for event in events_of(store, token_id)]


def no_secret_in(found: list[dict[str, Any]], *values: str | None) -> None:
    text = json.dumps(found, default=str)
    for value in values:
        if value:
            assert value not in text


def sdk_token(zoho: FakeZoho, grant: str, client_secret: str) -> OAuthToken:
    return OAuthToken(client_id=CLIENT_ID, client_secret=client_secret, grant_token=grant,
                      redirect_url="https://app.example.com/oauth",
                      user_signature=None if LOOKS_UP_USER else UserSignature(USER_NAME))


# -- written by the SDK's own path ---------------------------------------------------------------

def test_the_sdks_grant_exchange_and_refresh_are_in_the_history(store: MongoTokenStore, tmp_path: Path) -> None:
    client_secret, grant, refresh = secret("clientsecret"), secret("grant"), secret("refresh")
    with FakeZoho(grant, refresh, CLIENT_ID, client_secret) as zoho:
        initialize(zoho, sdk_token(zoho, grant, client_secret), store, tmp_path)  # the grant exchange
        [document] = store.collection.find({})
        token_id, first_access = document["_id"], document["access_token"]
        assert kinds(store, token_id) == ["refreshed"]
        assert call_api() == 200  # a valid token: no save, no event
        assert kinds(store, token_id) == ["refreshed"]
        store.collection.update_one({"_id": token_id}, {"$set": {"expiry_time": utcnow()}})
        assert call_api() == 200  # the SDK refreshes it and saves it through the store
        assert zoho.requests["refresh"] == 1
        found = events_of(store, token_id)
        assert [event["event"] for event in found] == ["refreshed", "refreshed"]
        assert found[0]["at"] >= found[1]["at"]  # newest first
        assert all(event["token_id"] == token_id and event["user_name"] == USER_NAME for event in found)
        assert found[0]["detail"].startswith("new access token, valid until 20")
        assert found[1]["detail"].startswith("new login (a new refresh token)")
        assert found[0]["who"].startswith("sdk (") and "pid" in found[0]["who"]
        access = store.collection.find_one({"_id": token_id})["access_token"]
        no_secret_in(found, client_secret, grant, refresh, first_access, access)


def test_a_refresh_zoho_refuses_is_a_refresh_failed_event_with_its_code(store: MongoTokenStore, tmp_path: Path) -> None:
    client_secret, grant, refresh = secret("clientsecret"), secret("grant"), secret("refresh")
    with FakeZoho(grant, refresh, CLIENT_ID, client_secret) as zoho:
        initialize(zoho, sdk_token(zoho, grant, client_secret), store, tmp_path)
        [document] = store.collection.find({})
        token_id = document["_id"]
        zoho.revoke(refresh)  # Zoho no longer honours the refresh token: invalid_code
        store.collection.update_one({"_id": token_id}, {"$set": {"expiry_time": utcnow()}})
        with pytest.raises(SDKException):
            call_api()
        assert zoho.requests["refused refresh"] == 1
        found = events_of(store, token_id)
        assert [event["event"] for event in found] == ["refresh-failed", "refreshed"]
        assert found[0]["detail"] == "Zoho refused the refresh (invalid_code): revoked"  # the reason, as the app's
        assert store.collection.find_one({"_id": token_id})["refresh_failures"] == 1
        no_secret_in(found, client_secret, grant, refresh, document["access_token"])


@pytest.mark.parametrize("backoff", [0.1, 30.0])
def test_a_refresh_that_never_finished_is_a_refresh_failed_event(store: MongoTokenStore, backoff: float) -> None:
    """A worker took the refresh lease and never saved (it died, or hangs): the next caller counts
    the failure once, taking the lease over (back-off over) or refused (inside it), and records it."""
    token = full("alice@example.com:1", access_token=secret("access"), expires_in=str(int(time.time() * 1000) + 1000))
    store.save_token(token)
    quick = MongoTokenStore(client=store.client, database=store.collection.database.name, refresh_lease=0.2,
                            refresh_wait=5, refresh_backoff=backoff, refresh_backoff_max=backoff)
    quick.find_token_by_id(token.get_id())  # holds the lease, and never saves
    time.sleep(0.3)
    if backoff < 0.2:
        quick.find_token_by_id(token.get_id())  # takes the lapsed lease over
    else:
        with pytest.raises(SDKException, match="keeps failing"):
            quick.find_token_by_id(token.get_id())
    assert quick.flush_events(10)  # that store recorded it
    found = events_of(store, token.get_id())
    assert [event["event"] for event in found] == ["refresh-failed", "refreshed"]
    assert found[0]["detail"] == "the refresh never finished: its lease lapsed (the worker stopped or hung): unreachable"
    assert store.collection.find_one({"_id": token.get_id()})["refresh_failures"] == 1


def test_a_save_that_stores_no_new_access_token_writes_no_event(store: MongoTokenStore) -> None:
    token = full("alice@example.com:1")
    store.save_token(token)
    assert kinds(store, token.get_id()) == ["refreshed"]
    again = OAuthToken(id=token.get_id())
    again.set_api_domain("https://www.zohoapis.eu")
    store.save_token(again)  # by id, no access token
    store.save_token(oauth("alice@example.com:1", refresh_token=token.get_refresh_token()))  # no access token
    store.restore_token(full("bob@example.com:1"))  # an import's save: the import writes "imported"
    assert kinds(store, token.get_id()) == ["refreshed"]
    assert store.events.count_documents({}) == 1


def test_the_sdks_delete_token_is_a_deleted_event(store: MongoTokenStore) -> None:
    token = full("alice@example.com:1")
    store.save_token(token)
    store.delete_token(token.get_id())
    found = events_of(store, token.get_id())
    assert [event["event"] for event in found] == ["deleted", "refreshed"]
    assert found[0]["user_name"] == "alice@example.com:1" and "logout" in found[0]["detail"]
    with pytest.raises(SDKException, match="no stored token has id"):
        store.delete_token(token.get_id())
    assert len(events_of(store, token.get_id())) == 2  # a failed delete is no event


def test_events_can_be_turned_off(store: MongoTokenStore) -> None:
    off = MongoTokenStore(client=store.client, database=store.collection.database.name, record_events=False)
    assert off.events is None
    token = full("alice@example.com:1")
    off.save_token(token)
    off.delete_token(token.get_id())
    assert "token_events" not in store.collection.database.list_collection_names()


def test_events_go_where_the_setting_says(store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOHO_EVENTS_COLLECTION", "history_elsewhere")
    moved = MongoTokenStore(client=store.client, database=store.collection.database.name)
    moved.save_token(full("alice@example.com:1"))
    assert moved.flush_events(10)
    assert moved.events.name == "history_elsewhere" and moved.events.count_documents({}) == 1
    named = MongoTokenStore(client=store.client, database=store.collection.database.name, events_collection="named")
    assert named.events.name == "named"
    with pytest.raises(SDKException):
        MongoTokenStore(client=store.client, database=store.collection.database.name, events_collection="a$b")


Counting = FindAndModifyCounter  # the command names a client sends


def test_a_failed_event_write_never_fails_the_save(mongo_uri: str, database_name: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The server refuses every event (a validator): saves, refreshes and deletes go on, each with
    one warning line that holds no secret and no traceback."""
    counter, every = Counting(), Counting(every_thread=True)
    client = MongoClient(mongo_uri, event_listeners=[counter, every])
    try:
        client[database_name].create_collection("token_events", validator={"event": {"$exists": False}})
        store = MongoTokenStore(client=client, database=database_name)
        token = full("alice@example.com:1")
        with caplog.at_level(logging.WARNING, logger="mongo_store"):
            store.save_token(token)
            assert store.flush_events(10)
            counter.names.clear()
            token.set_access_token(secret("access"))
            token.set_expires_in("4102444800999")
            store.save_token(token)
            assert counter.names == ["findAndModify"]  # the event is written in the history's own thread
            assert store.flush_events(10)
            store.delete_token(token.get_id())
            assert store.flush_events(10)
        assert every.names.count("insert") == 3  # each tried once: a refused write is not retried
        assert store.collection.count_documents({}) == 0
        assert client[database_name]["token_events"].count_documents({}) == 0
        warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 3
        for record in warnings:
            assert record.exc_info is None and "\n" not in record.getMessage()
            assert record.getMessage().startswith("could not record 1 ") and "code 121" in record.getMessage()
            for value in (token.get_access_token(), token.get_refresh_token(), token.get_client_secret()):
                assert value not in record.getMessage()
    finally:
        client.drop_database(database_name)
        client.close()


def test_an_unreachable_history_is_a_warning_too(store: MongoTokenStore, caplog: pytest.LogCaptureFixture) -> None:
    class Gone:
        name = "token_events"

        def insert_one(self, document: dict[str, Any]) -> Any:
            raise ConnectionResetError("the server went away")

    store.save_token(full("alice@example.com:1"))
    assert store.flush_events(10)
    store.events = Gone()
    with caplog.at_level(logging.WARNING, logger="mongo_store"):
        token = full("bob@example.com:1")
        store.save_token(token)
        assert store.flush_events(10)
    assert store.collection.find_one({"_id": token.get_id()}) is not None
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.getMessage() == "could not record 1 refreshed event(s) in token_events: ConnectionResetError"


# -- retention ------------------------------------------------------------------------------------

def ttl_of(collection: Any) -> int | None:
    return collection.index_information()["at"].get("expireAfterSeconds")


@pytest.mark.real
def test_events_expire_after_the_retention(real_store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real_store.prepare()
    assert ttl_of(real_store.events) == 90 * DAY
    assert [tuple(key) for key in real_store.events.index_information()["token_id_at"]["key"]] == \
        [("token_id", 1), ("at", -1), ("_id", -1)]
    monkeypatch.setenv("ZOHO_EVENTS_RETENTION_DAYS", "0.5")
    shorter = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name)
    shorter.prepare()
    assert ttl_of(real_store.events) == DAY // 2  # a changed retention is applied in place
    now = utcnow()
    events.record(real_store.events, [events.entry("old", None, "checked", "Zoho: ok", "ops", at=now - timedelta(days=1)),
                                      events.entry("new", None, "checked", "Zoho: ok", "ops", at=now)])
    deadline = time.monotonic() + 60  # the test server's TTL monitor runs every second
    while real_store.events.count_documents({"token_id": "old"}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert real_store.events.count_documents({"token_id": "old"}) == 0
    assert real_store.events.count_documents({"token_id": "new"}) == 1


@pytest.mark.parametrize("value", ["ninety", "0", "-3", "nan", "1e9"])
def test_a_bad_retention_is_one_sentence(store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ZOHO_EVENTS_RETENTION_DAYS", value)
    with pytest.raises(SDKException) as refused:
        MongoTokenStore(client=store.client, database=store.collection.database.name)
    assert "ZOHO_EVENTS_RETENTION_DAYS must be" in str(refused.value)
    with pytest.raises(ValueError, match="ZOHO_EVENTS_RETENTION_DAYS must be"):
        StoreSettings.load()
    # Settings are read in one place, when a store is built: a bad one is refused at start, also by a
    # store that creates no indexes (it would otherwise surface only where it is applied).
    with pytest.raises(SDKException, match="ZOHO_EVENTS_RETENTION_DAYS must be"):
        MongoTokenStore(client=store.client, database=store.collection.database.name, create_indexes=False)


def test_a_bad_retention_fails_a_cli_command_in_one_line(env: MongoTokenStore,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    token = full("alice@example.com:1")
    env.save_token(token)
    monkeypatch.setenv("ZOHO_EVENTS_RETENTION_DAYS", "soon")
    code, _out, err = run("delete", token.get_id(), "--yes")
    assert code == 1 and err.count("\n") == 1 and "ZOHO_EVENTS_RETENTION_DAYS must be a number of days" in err


# -- activity -------------------------------------------------------------------------------------

def test_activity_counts_every_event_per_six_hours(store: MongoTokenStore) -> None:
    now = datetime(2026, 12, 2, 15, 30)
    at = [now - timedelta(hours=hours) for hours in (0, 1, 2, 7, 30, 24 * 7 + 1)]
    events.record(store.events, [
        events.entry("t1", "a@b:1", "refreshed", "new access token", "sdk", at=at[0]),
        events.entry("t1", "a@b:1", "refreshed", "new access token", "sdk", at=at[1]),  # the same token again
        events.entry("t2", None, "refresh-failed", "Zoho refused the refresh (invalid_code)", "sdk", at=at[2]),
        events.entry("t2", None, "checked", "Zoho: invalid_code", "ops", at=at[3]),
        events.entry("t3", None, "imported", "imported from export (inserted)", "ops", at=at[4]),
        events.entry("t4", None, "deleted", "deleted", "ops", at=at[5]),  # older than the chart
    ])
    chart = events.activity(store.events, now)
    assert len(chart) == 28 and chart[-1]["from"] == datetime(2026, 12, 2, 12, 0)
    assert chart[0]["from"] == datetime(2026, 11, 25, 18, 0)
    assert set(chart[0]) == {"from", *events.EVENTS}
    assert (chart[-1]["refreshed"], chart[-1]["refresh-failed"]) == (2, 1)
    assert chart[-2]["checked"] == 1 and chart[-2]["from"] == datetime(2026, 12, 2, 6, 0)
    totals = Counter({kind: sum(row[kind] for row in chart) for kind in events.EVENTS})
    assert totals == Counter(refreshed=2, **{"refresh-failed": 1}, checked=1, imported=1, revoked=0, deleted=0)
    connection = data.Connection(store, OperatorSettings.load(), "test")
    assert data.event_activity(connection, now) == chart
    assert [event["event"] for event in data.token_history(connection, "t1")] == ["refreshed", "refreshed"]


def test_an_event_names_a_known_kind_and_keeps_its_detail_short() -> None:
    with pytest.raises(ValueError, match="unknown event"):
        events.entry("t", None, "exploded", "", "ops")
    assert len(events.entry("t", None, "checked", "x" * 5000, "ops")["detail"]) == events.DETAIL_LENGTH
    assert events.zoho_code("invalid_code") == "invalid_code"
    assert events.zoho_code("1000.refresh.abc/def") is None and events.zoho_code("x" * 100) is None


@pytest.mark.real
def test_the_history_queries_use_their_indexes(real_store: MongoTokenStore) -> None:
    real_store.prepare()
    now = utcnow()
    events.record(real_store.events, [events.entry(f"t{n % 50}", None, "refreshed", "new access token", "sdk",
                                                   at=now - timedelta(minutes=n)) for n in range(2000)])
    plan = real_store.events.find({"token_id": "t7"}, {"_id": False}).sort([("at", -1), ("_id", -1)]).limit(50).explain()
    used = json.dumps(plan["queryPlanner"]["winningPlan"])
    assert "COLLSCAN" not in used and "token_id_at" in used and '"SORT"' not in used
    explained = json.dumps(real_store.events.database.command(
        "aggregate", real_store.events.name, explain=True, pipeline=events.activity_pipeline(events.bins(now)),
        hint=events.ACTIVITY_INDEX), default=str)
    assert "COLLSCAN" not in explained and "IXSCAN" in explained and "FETCH" not in explained  # covered
    assert sum(sum(row[kind] for kind in events.EVENTS) for row in events.activity(real_store.events, now)) == 2000


# -- operator actions -----------------------------------------------------------------------------

@pytest.fixture
def zoho() -> Any:
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, SECRET) as fake:
        yield fake


def test_check_revoke_and_delete_are_in_the_history(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    checked = stored(env, zoho, "alice@example.com:1", refresh=zoho.refresh_token, access=zoho.new_access_token(),
                     expires=timedelta(minutes=40))
    lapsed = stored(env, zoho, "bob@example.com:1", refresh=secret("refresh"), access=secret("access"),
                    expires=timedelta(minutes=-5))  # Zoho does not know its refresh token
    assert run("check", checked, lapsed, *accounts(zoho), "--actor", "ops@example.com")[0] == 1
    assert kinds(env, checked) == ["checked", "refreshed"]
    [event] = events.for_token(env.events, checked)[:1]
    assert (event["detail"], event["who"], event["user_name"]) == ("Zoho: ok", "ops@example.com", "alice@example.com:1")
    assert kinds(env, lapsed) == ["checked", "refresh-failed", "refreshed"]
    failed = events.for_token(env.events, lapsed)
    assert failed[0]["detail"] == "Zoho: invalid_code"
    assert failed[1]["detail"] == "Zoho refused the refresh (invalid_code), during a check: revoked"

    assert run("revoke", checked, "--yes", "--actor", "ops@example.com", *accounts(zoho))[0] == 0
    assert kinds(env, checked)[0] == "revoked"
    detail = events.for_token(env.events, checked)[0]["detail"]
    assert detail.startswith("revoked at 127.0.0.1") and detail.endswith(" by an operator")
    assert run("delete", lapsed, "--yes", "--actor", "ops@example.com")[0] == 0
    gone = events.for_token(env.events, lapsed)[0]
    assert (gone["event"], gone["who"], gone["detail"]) == ("deleted", "ops@example.com", "deleted by an operator (delete)")
    assert ttl_of(env.events) == 90 * DAY  # the CLI set the history's indexes up
    everything = list(env.events.find({}, {"_id": False}))
    no_secret_in(everything, zoho.refresh_token, SECRET, *zoho.valid_access)

    code, out, _ = run("show", checked)  # deleted: show has nothing; events still has its history
    assert code == 1
    code, out, _ = run("events", checked)
    lines = out.splitlines()
    assert code == 0 and "revoked" in lines[0] and "(ops@example.com)" in lines[0] and "refreshed" in lines[2]
    assert lines[-1] == f"# 3 event(s) of {checked}, newest first"
    code, out, _ = run("events", checked, "--json", "--limit", "1")
    assert code == 0 and json.loads(out)["event"] == "revoked"
    assert run("events", "nobody")[1] == "# no events of nobody (none recorded, or all expired)\n"


def test_show_prints_the_history_newest_first(env: MongoTokenStore) -> None:  # noqa: F811
    token = full("carol@example.com:1")
    env.save_token(token)
    token.set_access_token(secret("access"))
    token.set_expires_in("4102444800999")
    env.save_token(token)
    assert env.flush_events(10)  # the store writes its events in a thread of its own
    code, out, _ = run("show", token.get_id())
    assert code == 0
    history_at = out.splitlines().index("history (newest first):")
    shown = out.splitlines()[history_at + 1:]
    assert len(shown) == 2 and all("refreshed" in line and "(sdk (" in line for line in shown)
    assert "new access token" in shown[0] and "new login" in shown[1]  # newest first
    assert token.get_access_token() not in out
    code, out, _ = run("show", token.get_id(), "--json")
    assert code == 0 and "history" not in json.loads(out)  # the JSON record stays the token's


@pytest.fixture
def accounts_zoho() -> Any:
    with ZohoAccounts(CLIENT_ID, CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture
def cleanup_env(real_store: MongoTokenStore, mongo_uri: str, monkeypatch: pytest.MonkeyPatch) -> MongoTokenStore:
    for name in ("ZOHO_CLEANUP_IDLE_DAYS", "ZOHO_CLEANUP_UNUSABLE_DAYS", "DASHBOARD_AUDIT_COLLECTION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("ZOHO_MONGO_DATABASE", real_store.collection.database.name)
    return real_store


def test_cleanup_is_in_the_history(cleanup_env: MongoTokenStore, accounts_zoho: ZohoAccounts) -> None:
    ids = scene(cleanup_env, accounts_zoho)
    assert cleanup_env.flush_events(10)  # the scene's saves wrote their events off this thread
    code, _, err = run("cleanup", *POLICY, "--actor", "cron", "--accounts-url", accounts_zoho.environment.accounts_url)
    assert code == 1, err  # Zoho refused one revoke
    latest = {name: (events.for_token(cleanup_env.events, token_id) or [{"event": None, "who": None}])[0]
              for name, token_id in ids.items()}
    for name in ("idle", "never refreshed"):
        assert latest[name]["event"] == "revoked" and latest[name]["who"] == "cron"
        assert latest[name]["detail"].startswith("cleanup (idle: not refreshed for more than 90 days): revoked at")
    for name in ("revoked before", "lapsed long ago", "old grant"):
        assert latest[name]["event"] == "deleted", name
    assert latest["refused"]["event"] == "refreshed"  # kept: nothing happened to it
    assert set(SELECTED) - {"refused"} == {name for name, event in latest.items() if event["who"] == "cron"}


def test_the_dashboard_records_events_too(dashboard_env: MongoTokenStore, zoho: FakeZoho,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_store.dashboard.settings import Settings

    monkeypatch.setenv("DASHBOARD_ZOHO_ACCOUNTS_URL", f"{zoho.url}/oauth/v2/token")
    connection = data.connect(Settings.load())
    assert connection.events.name == "token_events" and ttl_of(connection.events) == 90 * DAY
    token_id = stored(connection.store, zoho, "dana@example.com:1", refresh=zoho.refresh_token,
                      access=zoho.new_access_token(), expires=timedelta(minutes=40))
    assert connection.store.flush_events(10)
    data.check(connection, token_id, "dana-ops", "operator")
    data.delete(connection, [token_id], "dana-ops", "operator")
    assert [event["event"] for event in data.token_history(connection, token_id)] == ["deleted", "checked", "refreshed"]
    entries, older, newer = data.audit_search(connection, actor="DANA")
    assert [entry["action"] for entry in entries] == ["delete", "check"] and older is None and newer is None
    assert all("_id" not in entry for entry in entries)
    with pytest.raises(ValueError, match="cursor"):
        data.audit_search(connection, cursor="nonsense", go="next")


# -- the audit log: search and paging -------------------------------------------------------------

def seed_audit(audit: Any, count: int = 260) -> list[dict[str, Any]]:
    audit_log.keep_audit(audit, 400)
    base = utcnow().replace(microsecond=0)
    actors = ["Alice (cli)", "alicia@example.com", "bob@example.com", "cron"]
    actions = ["check", "check", "revoke", "cleanup delete", "check", "delete"]
    entries = [{"at": base - timedelta(seconds=n // 3), "who": actors[n % 4], "action": actions[n % 6] if n > 6 else "check",
                "ids": [f"id{n}"], "user_names": [f"User{n}@Example.com:1"], "results": [f"id{n}: ok"]}
               for n in range(count)]
    audit.insert_many(entries)  # three entries share each second: ties are ordered by _id
    return sorted(entries, key=lambda entry: (entry["at"], entry["_id"]), reverse=True)


def walk(audit: Any, **search: Any) -> list[list[Any]]:
    pages, cursor, go = [], None, "first"
    while True:
        found, older, _ = audit_log.audit_page(audit, size=50, cursor=cursor, go=go, **search)
        pages.append([entry["_id"] for entry in found])
        if older is None:
            return pages
        cursor, go = older, "next"


def test_the_audit_log_pages_past_200_without_gaps_or_repeats(store: MongoTokenStore) -> None:
    audit = store.collection.database["dashboard_audit"]
    expected = [entry["_id"] for entry in seed_audit(audit)]
    pages = walk(audit)
    assert [len(page) for page in pages] == [50, 50, 50, 50, 50, 10]
    assert [key for page in pages for key in page] == expected
    first, older, newer = audit_log.audit_page(audit, size=50)
    assert newer is None
    _second, _older2, newer2 = audit_log.audit_page(audit, size=50, cursor=older, go="next")
    back, _, newer_back = audit_log.audit_page(audit, size=50, cursor=newer2, go="previous")
    assert [entry["_id"] for entry in back] == [entry["_id"] for entry in first] and newer_back is None
    last, older_last, newer_last = audit_log.audit_page(audit, size=50, go="last")
    assert [entry["_id"] for entry in last] == expected[-50:] and older_last is None and newer_last is not None
    before_last, _, _ = audit_log.audit_page(audit, size=50, cursor=newer_last, go="previous")
    assert [entry["_id"] for entry in before_last] == expected[-100:-50]
    assert audit_log.audit_page(audit, actor="nobody") == ([], None, None)
    # A link past the oldest entry (expired since it was made) shows the last page, not an empty one.
    oldest = audit_log.encode_cursor(audit.find_one({}, sort=[("at", 1), ("_id", 1)]))
    stranded, older_gone, newer_gone = audit_log.audit_page(audit, size=50, cursor=oldest, go="next")
    assert [entry["_id"] for entry in stranded] == expected[-50:] and older_gone is None and newer_gone is not None
    newest = audit_log.encode_cursor(audit.find_one({}, sort=[("at", -1), ("_id", -1)]))
    assert [entry["_id"] for entry in audit_log.audit_page(audit, size=50, cursor=newest, go="previous")[0]] == \
        expected[:50]


def test_the_audit_log_is_searched_by_actor_and_token(store: MongoTokenStore) -> None:
    audit = store.collection.database["dashboard_audit"]
    entries = seed_audit(audit)
    ali = [key for page in walk(audit, actor="ALI") for key in page]  # Alice and alicia, any case
    assert ali == [entry["_id"] for entry in entries if entry["who"].lower().startswith("ali")] and len(ali) == 130
    assert [key for page in walk(audit, actor="alice (") for key in page] == \
        [entry["_id"] for entry in entries if entry["who"] == "Alice (cli)"]
    by_id, _, _ = audit_log.audit_page(audit, token="id17")
    assert [entry["ids"] for entry in by_id] == [["id17"]]  # an id matches whole
    by_name = [key for page in walk(audit, token="user1") for key in page]  # User1, User10..User19, User100..
    assert by_name == [entry["_id"] for entry in entries if entry["user_names"][0].lower().startswith("user1")]
    tail, _, _ = audit_log.audit_page(audit, token="uSeR17@eXAMPLE.C")  # past the first four letters too
    assert [entry["ids"] for entry in tail] == [["id17"]]
    both, _, _ = audit_log.audit_page(audit, actor="bob", token="USER2")
    assert [entry["_id"] for entry in both] == [entry["_id"] for entry in entries if entry["who"] == "bob@example.com"
                                                and entry["user_names"][0].startswith("User2")] and len(both) > 10
    assert audit_log.audit_page(audit, actor="(.*", token="[") == ([], None, None)  # text, not a pattern
    revokes = [key for page in walk(audit, action="revoke") for key in page]
    assert revokes == [entry["_id"] for entry in entries if entry["action"] == "revoke"] and len(revokes) > 40
    cleanups = [key for page in walk(audit, action="cleanup") for key in page]  # every kind of cleanup entry
    assert cleanups == [entry["_id"] for entry in entries if entry["action"].startswith("cleanup")] and cleanups
    newest = entries[0]["at"]
    since, until = newest - timedelta(seconds=40), newest - timedelta(seconds=20)
    window = [key for page in walk(audit, action="check", since=since, until=until) for key in page]
    assert window == [entry["_id"] for entry in entries
                      if entry["action"] == "check" and since <= entry["at"] < until] and window
    with pytest.raises(ValueError, match="an audit action is one of"):
        audit_log.audit_page(audit, action="drop")
    with pytest.raises(ValueError, match="must come before its end"):
        audit_log.audit_page(audit, since=newest, until=newest)


@pytest.mark.parametrize("cursor", ["", "nonsense", "eyJhdCI6IDF9", "e30", "!!!"])
def test_a_malformed_cursor_is_one_sentence(store: MongoTokenStore, cursor: str) -> None:
    audit = store.collection.database["dashboard_audit"]
    with pytest.raises(ValueError) as refused:
        audit_log.audit_page(audit, cursor=cursor, go="next")
    assert str(refused.value).count(".") <= 1 and "\n" not in str(refused.value)
    with pytest.raises(ValueError, match="go must be"):
        audit_log.audit_page(audit, go="sideways")
    with pytest.raises(ValueError, match="1 to 1000"):
        audit_log.audit_page(audit, size=0)


@pytest.mark.real
def test_every_audit_search_is_indexed(mongo_uri: str, database_name: str) -> None:
    class Finds(monitoring.CommandListener):
        def __init__(self) -> None:
            self.commands: list[dict[str, Any]] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name == "find":
                self.commands.append({k: v for k, v in event.command.items()
                                      if k not in ("lsid", "$clusterTime", "$db", "$readPreference")})

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    listener = Finds()
    client = MongoClient(mongo_uri, event_listeners=[listener])
    try:
        audit = client[database_name]["dashboard_audit"]
        seed_audit(audit, 3000)
        listener.commands.clear()
        newest = audit.find_one(sort=[("at", -1)])["at"]
        searches: list[dict[str, Any]] = [
            {}, {"actor": "ali"}, {"token": "id17"}, {"token": "USER1"}, {"actor": "bob", "token": "user2"},
            {"action": "revoke"}, {"action": "cleanup"}, {"since": newest - timedelta(seconds=200)},
            {"action": "delete", "since": newest - timedelta(seconds=600), "until": newest - timedelta(seconds=100)},
            {"actor": "bob", "action": "check"}]
        for search in searches:
            pages = walk(audit, **search)
            _, _, newer = audit_log.audit_page(audit, go="last", **search)
            if newer:
                audit_log.audit_page(audit, cursor=newer, go="previous", **search)
            assert pages
        assert len(listener.commands) >= 20
        # An action's page reads that action's entries only; a time range, a range of the keyset index.
        plan = audit.find(audit_log.audit_filter(action="revoke")).sort([("at", -1), ("_id", -1)]).limit(51).explain()
        assert plan["executionStats"]["totalDocsExamined"] == 51 and "action_at_id" in json.dumps(plan, default=str)
        since = newest - timedelta(seconds=30)
        plan = audit.find(audit_log.audit_filter(since=since)).sort([("at", -1), ("_id", -1)]).limit(51).explain()
        assert plan["executionStats"]["totalKeysExamined"] <= 100, plan["executionStats"]["totalKeysExamined"]
        # A case-insensitive prefix reads a narrow range of the index, not all of its keys.
        stats = audit.find(audit_log.audit_filter(token="USER2999")).sort([("at", -1), ("_id", -1)]).limit(51).explain()
        assert stats["executionStats"]["nReturned"] == 1 and stats["executionStats"]["totalKeysExamined"] < 50
        for command in listener.commands:
            plan = client[database_name].command({"explain": command, "verbosity": "queryPlanner"})
            used = json.dumps(plan["queryPlanner"]["winningPlan"], default=str)
            assert "COLLSCAN" not in used and "IXSCAN" in used, (command["filter"], used)
    finally:
        client.drop_database(database_name)
        client.close()


def test_the_cli_pages_and_searches_the_audit_log(env: MongoTokenStore) -> None:  # noqa: F811
    audit = env.collection.database["dashboard_audit"]
    entries = seed_audit(audit, 7)
    code, out, _ = run("audit", "--page-size", "3")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4 and lines[0].split("\t")[2] == "check"
    assert lines[0].split("\t")[3] == entries[0]["ids"][0]
    cursor = lines[-1].split("--after ")[1]
    assert "newer" not in lines[-1]
    code, out, _ = run("audit", "--page-size", "3", "--after", cursor)
    assert code == 0 and out.splitlines()[0].split("\t")[3] == entries[3]["ids"][0] and "--before" in out
    code, out, _ = run("audit", "--actor", "BOB", "--json")
    assert code == 0 and [json.loads(line)["who"] for line in out.splitlines()] == ["bob@example.com"] * 2
    code, out, _ = run("audit", "--token", "id4")
    assert code == 0 and out.splitlines()[-1] == "# 1 entry (token 'id4' (id, or user name start)), newest first"
    code, out, err = run("audit", "--after", "garbage")
    assert code == 1 and out == "" and err.count("\n") == 1 and "cursor" in err
    code, out, _ = run("audit", "--last", "--page-size", "2")
    assert code == 0 and out.splitlines()[1].split("\t")[3] == entries[-1]["ids"][0]
    # By action and time, and the reason printed with the outcome (the role beside who).
    audit.insert_one({"at": utcnow(), "who": "olga", "role": "operator", "action": "revoke", "ids": ["tok-x"],
                      "outcome": "not revoked", "reason": "accounts.zoho.eu did not revoke the refresh token (HTTP 500)"})
    code, out, _ = run("audit", "--action", "revoke", "--since", utcnow().date().isoformat())
    [line] = [line for line in out.splitlines() if not line.startswith("#")]
    assert code == 0 and line.split("\t")[1:] == ["olga (operator)", "revoke", "tok-x", "not revoked; accounts.zoho.eu "
                                                  "did not revoke the refresh token (HTTP 500)"]
    assert out.splitlines()[-1].startswith("# 1 entry (action revoke and from ")
    assert run("audit", "--until", "2000-01-01")[1].splitlines() == ["# 0 entries (before 2000-01-01T00:00:00Z), newest first"]
    code, _, err = run("audit", "--since", "yesterday")
    assert code == 2 and "must be a date such as 2026-12-01" in err


def test_an_import_is_audited_and_in_the_history(env: MongoTokenStore, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "tokens.jsonl"
    rows = [{"id": f"imp{n}", "user_name": f"p{n}@example.com:1", "refresh_token": secret("refresh"),
             "client_id": CLIENT_ID, "client_secret": SECRET} for n in range(3)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n{broken\n")
    code, out, _ = run("import", str(path), "--actor", "migrator")
    assert code == 1 and out.splitlines()[-1] == "inserted 3, updated 0, skipped 0, rejected 1"
    [entry] = env.collection.database["dashboard_audit"].find({"action": "import"})
    assert (entry["who"], entry["source"], entry["imported"], entry["inserted"], entry["rejected"]) == \
        ("migrator", "export", 3, 3, 1)
    assert entry["ids"] == ["imp0", "imp1", "imp2"] and entry["reasons"][0]["rows"] == 1
    assert entry["outcome"] == "3 tokens imported: 3 inserted, 0 updated, 0 skipped, 1 row rejected"
    assert entry["role"] == "admin"  # the CLI acts as an admin
    for n in range(3):
        [event] = events.for_token(env.events, f"imp{n}")
        assert (event["event"], event["who"], event["user_name"]) == ("imported", "migrator", f"p{n}@example.com:1")
        assert event["detail"] == "imported from export (inserted)"
    no_secret_in([entry, *env.events.find({}, {"_id": False})], SECRET, *(row["refresh_token"] for row in rows))
    assert run("import", str(path), "--dry-run")[0] == 1  # a dry run: no audit entry, no event
    assert env.collection.database["dashboard_audit"].count_documents({"action": "import"}) == 1
    assert env.events.count_documents({}) == 3
