"""Lifecycle policies (``zoho-mongo-store cleanup``) on the real mongod against a fake accounts
server: a dry run changes nothing, a run revokes each selected refresh token once, deletes them,
audits each and touches nothing else; a second run does nothing; a run killed midway and run
again ends in the same state; a token refreshed meanwhile is left alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from fake_zoho import ZohoAccounts
from pymongo import MongoClient
from test_cli import run  # the CLI in-process: (exit code, stdout, stderr)
from tokens import CLIENT_ID, full, oauth, secret, snapshot

from mongo_store import MongoTokenStore
from mongo_store.core.mapping import CLAIM_FIELD, LEASE_FIELD, REFRESHED_FIELD
from mongo_store.tools.settings import AUDIT_COLLECTION

CLIENT_SECRET = secret("clientsecret")
DAY = timedelta(days=1)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@pytest.fixture
def zoho() -> Any:
    with ZohoAccounts(CLIENT_ID, CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture
def env(real_store: MongoTokenStore, mongo_uri: str, monkeypatch: pytest.MonkeyPatch) -> MongoTokenStore:
    for name in list(os.environ):
        if name.startswith(("ZOHO_CLEANUP_", "DASHBOARD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("ZOHO_MONGO_DATABASE", real_store.collection.database.name)
    return real_store


def issued(zoho: ZohoAccounts, email: str) -> dict[str, Any]:
    """A real authorization at the fake: its grant exchanged for a refresh and an access token."""
    return requests.post(zoho.environment.accounts_url, timeout=10, data={
        "grant_type": "authorization_code", "code": zoho.grant(email), "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}).json()


def person(store: MongoTokenStore, zoho: ZohoAccounts, email: str, *, refreshed: timedelta | None,
           saved: timedelta, expires: timedelta = timedelta(hours=-1)) -> str:
    """A stored token of someone who logged in, last refreshed ``refreshed`` ago (None: never)."""
    answer = issued(zoho, email)
    token = oauth(f"{email}:1", client_secret=CLIENT_SECRET, refresh_token=answer["refresh_token"],
                  access_token=answer["access_token"], api_domain=zoho.url,
                  expires_in=str(int((now() + expires).replace(tzinfo=timezone.utc).timestamp() * 1000)))
    store.save_token(token)
    changes: dict[str, Any] = {"$set": {"updated_at": now() - saved}}
    if refreshed is None:
        changes["$unset"] = {REFRESHED_FIELD: ""}
    else:
        changes["$set"][REFRESHED_FIELD] = now() - refreshed
    store.collection.update_one({"_id": token.get_id()}, changes)
    return token.get_id()


def unusable(store: MongoTokenStore, name: str, *, lapsed: timedelta | None = None,
             grant_saved: timedelta | None = None) -> str:
    if lapsed is not None:  # no refresh token, the access token lapsed that long ago
        token = oauth(name, client=False, access_token=secret("access"),
                      expires_in=str(int((now() - lapsed).replace(tzinfo=timezone.utc).timestamp() * 1000)))
    else:
        token = oauth(None, grant_token=secret("grant"))
    store.save_token(token)
    if grant_saved is not None:
        store.collection.update_one({"_id": token.get_id()}, {"$set": {"updated_at": now() - grant_saved}})
    return token.get_id()


def scene(store: MongoTokenStore, zoho: ZohoAccounts) -> dict[str, str]:
    ids = {
        "idle": person(store, zoho, "idle@example.com", refreshed=100 * DAY, saved=100 * DAY),
        "never refreshed": person(store, zoho, "never@example.com", refreshed=None, saved=100 * DAY),
        "refused": person(store, zoho, "refused@example.com", refreshed=100 * DAY, saved=100 * DAY),
        "revoked before": person(store, zoho, "gone@example.com", refreshed=100 * DAY, saved=100 * DAY),
        "active": person(store, zoho, "active@example.com", refreshed=DAY, saved=DAY),
        "recently saved": person(store, zoho, "fresh@example.com", refreshed=None, saved=DAY),
        "lapsed long ago": unusable(store, "lapsed@example.com:1", lapsed=100 * DAY),
        "old grant": unusable(store, "", grant_saved=100 * DAY),
        "lapsed lately": unusable(store, "lately@example.com:1", lapsed=DAY),
        "new grant": unusable(store, ""),
    }
    refresh = {name: store.collection.find_one({"_id": token_id}).get("refresh_token") for name, token_id in ids.items()}
    zoho.refuse_revokes.add(refresh["refused"])
    zoho.revoke(refresh["revoked before"])
    return ids


SELECTED = {"idle": "revoke+delete", "never refreshed": "revoke+delete", "refused": "revoke+delete",
            "revoked before": "revoke+delete", "lapsed long ago": "delete", "old grant": "delete"}
POLICY = ("--idle-days", "90", "--unusable-days", "30")


def test_a_dry_run_lists_exactly_the_selected_tokens_and_changes_nothing(env: MongoTokenStore, zoho: ZohoAccounts,
                                                                         real_client: MongoClient) -> None:
    ids = scene(env, zoho)
    before, requests_before = snapshot(env), sum(zoho.requests.values())
    code, out, err = run("cleanup", *POLICY, "--dry-run", "--json", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0, err
    plan = json.loads(out)
    assert {entry["id"]: entry["action"] for entry in plan["entries"]} == {ids[name]: action for name, action in SELECTED.items()}
    assert all(entry["reason"] and entry["result"] == "planned" for entry in plan["entries"])
    assert plan["summary"] == {"planned": 6, "revoke+delete": 4, "delete": 2} and plan["dry_run"] is True
    assert snapshot(env) == before and sum(zoho.requests.values()) == requests_before
    assert real_client[env.collection.database.name][AUDIT_COLLECTION].count_documents({}) == 0
    code, out, _ = run("cleanup", *POLICY, "--dry-run", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0 and len(out.splitlines()) == 7 and out.splitlines()[-1].endswith("(dry run: nothing changed)")


def test_a_run_revokes_once_deletes_audits_and_leaves_the_rest(env: MongoTokenStore, zoho: ZohoAccounts,
                                                               real_client: MongoClient) -> None:
    ids = scene(env, zoho)
    refresh = {name: env.collection.find_one({"_id": token_id}).get("refresh_token") for name, token_id in ids.items()}
    untouched = {name: env.collection.find_one({"_id": ids[name]}) for name in ids if name not in SELECTED}
    zoho.revocations.clear()
    code, out, err = run("cleanup", *POLICY, "--json", "--actor", "cron", "--accounts-url", zoho.environment.accounts_url)
    assert code == 1, err  # Zoho refused one revoke: that token is kept, the others go on
    result = {entry["id"]: entry["result"] for entry in json.loads(out)["entries"]}
    assert result[ids["refused"]].startswith("not revoked:") and result[ids["refused"]].endswith("the token is kept")
    assert result[ids["idle"]].startswith("revoked at 127.0.0.1") and result[ids["idle"]].endswith(", deleted")
    assert result[ids["revoked before"]].startswith("already revoked")
    assert result[ids["lapsed long ago"]] == result[ids["old grant"]] == "deleted"
    assert sorted(zoho.revocations) == sorted([(refresh["idle"], "revoked"), (refresh["never refreshed"], "revoked"),
                                               (refresh["refused"], "refused"), (refresh["revoked before"], "invalid_token")])
    remaining = {document["_id"] for document in env.collection.find({})}
    assert remaining == {ids[name] for name in ids if name not in SELECTED} | {ids["refused"]}
    for name, document in untouched.items():  # nothing inside the limits is touched
        assert env.collection.find_one({"_id": ids[name]}) == document, name
    kept = env.collection.find_one({"_id": ids["refused"]})
    assert CLAIM_FIELD not in kept and LEASE_FIELD not in kept
    audit = list(real_client[env.collection.database.name][AUDIT_COLLECTION].find({"action": {"$ne": "cleanup"}},
                                                                                 {"_id": False}))
    assert len(audit) == 6 and {entry["who"] for entry in audit} == {"cron"}
    [summary] = real_client[env.collection.database.name][AUDIT_COLLECTION].find({"action": "cleanup"})
    assert sorted(summary["ids"]) == sorted(ids[name] for name in SELECTED) and summary["role"] == "admin"
    assert summary["outcome"].startswith("6 tokens acted on: ") and summary["summary"]["failed"] == 1
    assert {entry["ids"][0] for entry in audit} == {ids[name] for name in SELECTED}
    by_id = {entry["ids"][0]: entry for entry in audit}
    assert by_id[ids["refused"]]["zoho"].endswith("did not revoke the refresh token")
    assert by_id[ids["idle"]]["action"] == "cleanup revoke+delete" and by_id[ids["idle"]]["deleted"] == 1
    assert not any(value in json.dumps(audit, default=str) + out for value in refresh.values() if value)

    zoho.refuse_revokes.clear()  # Zoho honours it now: the next run finishes the job, and only that
    code, out, _ = run("cleanup", *POLICY, "--json", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0 and [entry["id"] for entry in json.loads(out)["entries"]] == [ids["refused"]]
    code, out, _ = run("cleanup", *POLICY, "--json", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0 and json.loads(out)["entries"] == []  # nothing left to do
    assert [outcome for token, outcome in zoho.revocations if outcome == "revoked"].count("revoked") == 3


def test_a_token_refreshed_while_the_run_goes_on_is_left_alone(env: MongoTokenStore, zoho: ZohoAccounts) -> None:
    from mongo_store.tools import cleanup
    from mongo_store.tools.zoho import AlreadyRevoked, ZohoError, revoke_stored

    first = person(env, zoho, "a@example.com", refreshed=100 * DAY, saved=100 * DAY)
    second = person(env, zoho, "b@example.com", refreshed=100 * DAY, saved=100 * DAY)
    listed = cleanup.plan(env.collection, cleanup.Policy(idle_days=90))
    assert [entry.id for entry in listed.entries] == sorted([first, second])

    def revoke_and_meanwhile_refresh_the_other(claimed: dict[str, Any]) -> str:
        other = second if claimed["_id"] == first else first
        token = env.find_token_by_id(other)  # its person comes back: the SDK refreshes and saves it
        token.set_access_token(secret("access"))
        token.set_expires_in(str(int(time.time() * 1000) + 3_600_000))
        env.save_token(token)
        return revoke_stored(env, claimed, zoho.environment.accounts_url)

    steps = cleanup.Steps(revoke=revoke_and_meanwhile_refresh_the_other, refused=(ZohoError,), already=AlreadyRevoked,
                          holding=lambda claimed: {"refresh_token": claimed["refresh_token"]},
                          audit=lambda entry: None, database=lambda action, work: work())
    report = cleanup.run(env.collection, cleanup.Policy(idle_days=90), steps, batch_size=2)  # both listed at once
    results = {entry.id: entry.result for entry in report.entries}
    assert results[sorted([first, second])[0]].endswith(", deleted")
    survivor = sorted([first, second])[1]
    assert results[survivor].startswith("kept: it no longer qualifies")
    assert env.find_token_by_id(survivor).get_refresh_token() is not None
    assert zoho.authorizations[env.collection.find_one({"_id": survivor})["refresh_token"]].revoked is False


def test_a_run_killed_midway_and_run_again_ends_in_the_same_state(env: MongoTokenStore, zoho: ZohoAccounts,
                                                                   mongo_uri: str) -> None:
    idle = [person(env, zoho, f"idle{n}@example.com", refreshed=100 * DAY, saved=100 * DAY) for n in range(24)]
    keep = [person(env, zoho, f"keep{n}@example.com", refreshed=DAY, saved=DAY) for n in range(3)]
    refresh = {env.collection.find_one({"_id": token_id})["refresh_token"] for token_id in idle}
    environment = dict(os.environ)
    process = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "cleanup", "--idle-days", "90", "--batch-size",
                                "4", "--accounts-url", zoho.environment.accounts_url], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(zoho.revocations) < 6 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed midway"
    assert 0 < env.collection.count_documents({"_id": {"$in": idle}}) < len(idle)
    # The killed run's claim (at most one token) is a lease of CLAIM_SECONDS: a run started at once
    # leaves that token alone (no second revoke), and takes it over once the claim has lapsed.
    claimed = {document["_id"] for document in env.collection.find({CLAIM_FIELD: {"$exists": True}})}
    assert len(claimed) <= 1
    code, _, err = run("cleanup", "--idle-days", "90", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0, err
    assert {document["_id"] for document in env.collection.find({})} == set(keep) | claimed
    env.collection.update_many({CLAIM_FIELD: {"$exists": True}}, {"$set": {LEASE_FIELD: now() - timedelta(seconds=1)}})
    code, _, err = run("cleanup", "--idle-days", "90", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0, err
    assert {document["_id"] for document in env.collection.find({})} == set(keep)
    successes = [token for token, outcome in zoho.revocations if outcome == "revoked"]
    assert sorted(successes) == sorted(refresh)  # each revoked once (a repeat would be answered invalid_token)
    assert all(authorization.revoked for token, authorization in zoho.authorizations.items() if token in refresh)


def relogin(store: MongoTokenStore, zoho: ZohoAccounts, user_name: str) -> str:
    """The person logs in again (a new grant, a new refresh token, saved by user name as the SDK
    does): returns the new refresh token."""
    answer = issued(zoho, user_name.split(":")[0])
    store.save_token(oauth(user_name, client_secret=CLIENT_SECRET, refresh_token=answer["refresh_token"],
                           access_token=answer["access_token"], api_domain=zoho.url, expires_in=str(
                               int((now() + timedelta(hours=1)).replace(tzinfo=timezone.utc).timestamp() * 1000))))
    return str(answer["refresh_token"])


def test_a_login_during_the_cleanup_claim_is_never_revoked(env: MongoTokenStore, zoho: ZohoAccounts) -> None:
    """People log in again while the real CLI's cleanup holds their idle token: the cleanup revokes
    only the refresh token it claimed (which the login replaced anyway), never the new one, and the
    token is kept with the new login (it used to revoke whatever the token held when it re-read it)."""
    people = {person(env, zoho, f"back{n}@example.com", refreshed=100 * DAY, saved=100 * DAY): f"back{n}@example.com:1"
              for n in range(20)}
    old = {token_id: env.collection.find_one({"_id": token_id})["refresh_token"] for token_id in people}
    answer = zoho.revoke_response

    def slow_revoke(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        time.sleep(0.15)  # a real Zoho takes its time: logins land while tokens are claimed
        return answer(form)

    zoho.revoke_response = slow_revoke  # type: ignore[method-assign]
    process = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "cleanup", "--idle-days", "90", "--json",
                                "--accounts-url", zoho.environment.accounts_url], env=dict(os.environ),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    new: dict[str, str] = {}
    while process.poll() is None:  # every other person comes back the moment the cleanup claims them
        for document in env.collection.find({CLAIM_FIELD: {"$exists": True}}, {"_id": True}):
            token_id = document["_id"]
            if token_id not in new and len(new) < 10 and sorted(people).index(token_id) % 2 == 0:
                new[token_id] = relogin(env, zoho, people[token_id])
        time.sleep(0.005)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert len(new) >= 5, "too few logins landed during a claim to show anything"
    results = {entry["id"]: entry["result"] for entry in json.loads(out)["entries"]}
    for token_id, refresh in new.items():
        stored = env.find_token_by_id(token_id)
        assert stored.get_refresh_token() == refresh, results[token_id]  # the new login stayed
        assert not zoho.authorizations[refresh].revoked  # and Zoho still honours it
        assert "kept" in results[token_id]
    revoked = {token for token, outcome in zoho.revocations if outcome == "revoked"}
    assert revoked <= set(old.values()) and not revoked & set(new.values())
    gone = set(people) - set(new)
    assert not env.collection.count_documents({"_id": {"$in": list(gone)}})
    assert {old[token_id] for token_id in gone} <= revoked


def test_two_cleanups_at_once_revoke_each_token_once(env: MongoTokenStore, zoho: ZohoAccounts,
                                                      real_client: MongoClient) -> None:
    """A claim is a lease: a second run takes over none while it is live, so two runs started
    together revoke each of 30 tokens exactly once and report no failure (the second used to take
    over the first's claims at once: 56 revokes for 30 tokens, and false "not revoked" entries)."""
    idle = [person(env, zoho, f"twice{n}@example.com", refreshed=100 * DAY, saved=100 * DAY) for n in range(30)]
    refresh = {env.collection.find_one({"_id": token_id})["refresh_token"] for token_id in idle}
    command = [sys.executable, "-m", "mongo_store.cli", "cleanup", "--idle-days", "90", "--batch-size", "5",
               "--accounts-url", zoho.environment.accounts_url]
    runs = [subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    for process in runs:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert env.collection.count_documents({}) == 0
    assert Counter(token for token, outcome in zoho.revocations) == Counter(dict.fromkeys(refresh, 1))
    assert {outcome for _, outcome in zoho.revocations} == {"revoked"}
    audit = list(real_client[env.collection.database.name][AUDIT_COLLECTION].find({}))
    assert not [entry for entry in audit if str(entry.get("outcome", "")).startswith("not revoked")]


def test_a_login_between_zoho_and_the_delete_is_kept_by_revoke(env: MongoTokenStore, zoho: ZohoAccounts,
                                                               real_client: MongoClient) -> None:
    """``revoke`` revokes the refresh token it read and deletes the token only while it holds it: a
    person who logs in again while Zoho answers keeps the new login (it used to be deleted, unrevoked,
    and audited as "revoked and deleted")."""
    token_id = person(env, zoho, "quick@example.com", refreshed=DAY, saved=DAY)
    old = env.collection.find_one({"_id": token_id})["refresh_token"]
    answer, new = zoho.revoke_response, []

    def login_meanwhile(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        new.append(relogin(env, zoho, "quick@example.com:1"))
        return answer(form)

    zoho.revoke_response = login_meanwhile  # type: ignore[method-assign]
    code, out, err = run("revoke", token_id, "--yes", "--actor", "ops", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0, err
    assert "revoked the refresh token at" in out and f"kept {token_id}: a new login replaced its refresh token" in out
    assert zoho.authorizations[old].revoked and not zoho.authorizations[new[0]].revoked
    assert env.find_token_by_id(token_id).get_refresh_token() == new[0]
    [entry] = real_client[env.collection.database.name][AUDIT_COLLECTION].find({"action": "revoke"})
    assert entry["outcome"] == "revoked; kept: a new login replaced its refresh token meanwhile" and entry["deleted"] == 0


def test_the_policy_from_settings_and_bad_values(env: MongoTokenStore, zoho: ZohoAccounts,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run("cleanup")
    assert code == 1 and "no cleanup rule" in err
    monkeypatch.setenv("ZOHO_CLEANUP_IDLE_DAYS", "ninety")
    code, _, err = run("cleanup", "--dry-run")
    assert code == 1 and "ZOHO_CLEANUP_IDLE_DAYS must be a number of days" in err and "ninety" not in err
    monkeypatch.setenv("ZOHO_CLEANUP_IDLE_DAYS", "90")
    ids = scene(env, zoho)
    code, out, _ = run("cleanup", "--dry-run", "--json")
    assert code == 0 and {entry["id"] for entry in json.loads(out)["entries"]} == {
        ids[name] for name, action in SELECTED.items() if action == "revoke+delete"}
    for bad in ("0", "-3", "inf", "nan", "1e9"):
        assert run("cleanup", "--idle-days", bad, "--dry-run")[0] == 2, bad


def test_every_cleanup_query_uses_an_index(mongo_uri: str, database_name: str) -> None:
    from test_real_server import Recorder, stages

    from mongo_store.tools import cleanup

    recorder = Recorder()
    client = MongoClient(mongo_uri, event_listeners=[recorder])
    try:
        store = MongoTokenStore(client=client, database=database_name)
        for n in range(40):
            store.save_token(full(f"user{n}@example.com:1"))
        recorder.commands.clear()
        cleanup.plan(store.collection, cleanup.Policy(idle_days=1, unusable_days=1), batch_size=10)
        assert recorder.commands
        for command in recorder.commands:
            plan = client[database_name].command({"explain": command, "verbosity": "queryPlanner"})
            assert "COLLSCAN" not in set(stages(plan["queryPlanner"]["winningPlan"])), command
    finally:
        client.drop_database(database_name)
        client.close()


def test_the_dashboard_shows_the_policy_previews_and_applies_it(dashboard_env: MongoTokenStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from test_dashboard import APP, signed_in

    monkeypatch.setenv("ZOHO_CLEANUP_UNUSABLE_DAYS", "30")
    old = unusable(dashboard_env, "old@example.com:1", lapsed=100 * DAY)
    recent = unusable(dashboard_env, "recent@example.com:1", lapsed=DAY)
    at = signed_in()
    at = at.sidebar.radio(key="page").set_value("Lifecycle").run()
    assert not at.exception
    text = "\n".join(element.value for element in at.text)
    assert "Policy: delete tokens unusable for more than 30 days." in text and "kept 400 days" in text
    assert at.subheader[0].value == "Preview: 0 to revoke and delete, 1 to delete"
    assert list(at.dataframe[0].value["id"]) == [old]
    at.button(key="apply_policy").click().run()
    dialog = "\n".join(element.value for element in at.text)
    assert "to 1 token: revoke at Zoho and delete 0, delete only 1" in dialog and "old@example.com:1" in dialog
    assert dashboard_env.collection.count_documents({}) == 2  # nothing before the confirmation
    # A token that comes to qualify while the dialog is open was not in the confirmed preview: Apply
    # acts on the ids it showed, each only if it still qualifies, so this one stays.
    unseen = unusable(dashboard_env, "unseen@example.com:1", lapsed=100 * DAY)
    at.button(key="confirm_delete").click().run()
    assert {d["_id"] for d in dashboard_env.collection.find({})} == {recent, unseen}
    entry = dashboard_env.collection.database[AUDIT_COLLECTION].find_one({"action": "cleanup delete"})
    assert entry["ids"] == [old] and entry["who"].startswith("Olga Operator") and entry["outcome"] == "deleted"
    assert APP


def test_audit_entries_expire_after_the_retention(env: MongoTokenStore, real_client: MongoClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit log's ``at`` index is a TTL index with the configured retention (400 days by
    default), changed in place when the setting changes; the test server's TTL monitor runs every
    second, so an entry past the retention is seen to go."""
    audit = real_client[env.collection.database.name][AUDIT_COLLECTION]
    token = full("someone@example.com:1")
    env.save_token(token)
    assert run("delete", token.get_id(), "--yes", "--actor", "ops")[0] == 0
    assert audit.index_information()["at"]["expireAfterSeconds"] == 400 * 86_400
    monkeypatch.setenv("ZOHO_AUDIT_RETENTION_DAYS", "30")
    audit.insert_one({"at": now() - 40 * DAY, "who": "long ago", "action": "delete", "ids": ["x"]})
    other = full("other@example.com:1")
    env.save_token(other)
    assert run("delete", other.get_id(), "--yes", "--actor", "ops")[0] == 0
    assert audit.index_information()["at"]["expireAfterSeconds"] == 30 * 86_400
    deadline = time.monotonic() + 30
    while audit.find_one({"who": "long ago"}) is not None:
        assert time.monotonic() < deadline, "the TTL monitor did not remove the old entry"
        time.sleep(0.5)
    assert audit.count_documents({"who": "ops"}) == 2  # the recent ones stay
    monkeypatch.setenv("ZOHO_AUDIT_RETENTION_DAYS", "forever")
    code, _, err = run("delete", "whatever", "--yes", "--actor", "ops")
    assert code == 1 and "ZOHO_AUDIT_RETENTION_DAYS must be a number of days" in err


def test_a_worker_refreshing_a_token_ends_the_claim_a_killed_run_left(env: MongoTokenStore, zoho: ZohoAccounts) -> None:
    """A claim left by a killed run lapses; a worker that then takes the token's lease to refresh it
    ends that claim, so the next run cannot revoke the refresh token under it."""
    token_id = person(env, zoho, "back@example.com", refreshed=100 * DAY, saved=100 * DAY)
    env.collection.update_one({"_id": token_id}, {"$set": {CLAIM_FIELD: "dead-run", LEASE_FIELD: now() - DAY}})
    worker = MongoTokenStore(client=env.client, database=env.collection.database.name, refresh_backoff=0.1,
                             refresh_backoff_max=0.1)
    worker.find_token_by_id(token_id)  # its access token lapsed: the worker takes the lease to refresh
    assert CLAIM_FIELD not in env.collection.find_one({"_id": token_id})
    zoho.revocations.clear()
    code, out, _ = run("cleanup", "--idle-days", "90", "--json", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0 and json.loads(out)["entries"][0]["result"].startswith("kept: it no longer qualifies")
    assert zoho.revocations == [] and env.collection.find_one({"_id": token_id}) is not None


def test_revoke_and_cleanup_read_invalid_token_alike(env: MongoTokenStore, zoho: ZohoAccounts,
                                                     real_client: MongoClient) -> None:
    """Zoho no longer knows a refresh token (``invalid_token``: revoked before, or replaced): the
    CLI's ``revoke`` and ``cleanup`` both count it as revoked, delete the token and audit it so
    (the operator layer reads Zoho's answers once; ``revoke`` used to keep the token)."""
    by_revoke = person(env, zoho, "gone1@example.com", refreshed=100 * DAY, saved=100 * DAY)
    by_cleanup = person(env, zoho, "gone2@example.com", refreshed=100 * DAY, saved=100 * DAY)
    for token_id in (by_revoke, by_cleanup):
        zoho.revoke(env.collection.find_one({"_id": token_id})["refresh_token"])
    code, out, err = run("revoke", by_revoke, "--yes", "--actor", "ops", "--accounts-url", zoho.environment.accounts_url)
    assert code == 0, err
    assert "no longer knows the refresh token (already revoked)" in out and f"deleted {by_revoke}" in out
    code, out, err = run("cleanup", "--idle-days", "90", "--json", "--actor", "ops",
                         "--accounts-url", zoho.environment.accounts_url)
    assert code == 0, err
    [entry] = json.loads(out)["entries"]
    assert entry["id"] == by_cleanup and entry["result"].startswith("already revoked") and entry["result"].endswith("deleted")
    assert env.collection.count_documents({}) == 0
    audit = {entry["ids"][0]: entry for entry in real_client[env.collection.database.name][AUDIT_COLLECTION].find(
        {"action": {"$ne": "cleanup"}})}  # (the run's summary entry names its tokens too)
    assert audit[by_revoke]["outcome"] == "already revoked and deleted" and audit[by_revoke]["deleted"] == 1
    assert audit[by_cleanup]["zoho"].startswith("already revoked") and audit[by_cleanup]["deleted"] == 1


def test_a_login_just_before_zoho_is_asked_is_not_the_one_revoked(env: MongoTokenStore, zoho: ZohoAccounts,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The narrow window of the race above, made certain: the person logs in again after the claim,
    just before the cleanup asks Zoho. The refresh token revoked is the claimed one; the new login is
    neither revoked nor deleted."""
    from mongo_store.tools import operations
    from mongo_store.tools import zoho as zoho_calls

    token_id = person(env, zoho, "window@example.com", refreshed=100 * DAY, saved=100 * DAY)
    claimed = env.collection.find_one({"_id": token_id})["refresh_token"]
    revoke_stored, new = zoho_calls.revoke_stored, []

    def login_first(store: MongoTokenStore, document: dict[str, Any], accounts_url: str | None = None) -> str:
        new.append(relogin(env, zoho, "window@example.com:1"))
        return revoke_stored(store, document, accounts_url)

    monkeypatch.setattr(zoho_calls, "revoke_stored", login_first)
    session = operations.Session(env, "ops", accounts_url=zoho.environment.accounts_url)
    [entry] = session.cleanup(cleanup_policy(idle_days=90)).entries
    assert entry.result.startswith("revoked at") and "kept: saved meanwhile" in entry.result
    assert zoho.authorizations[claimed].revoked and not zoho.authorizations[new[0]].revoked
    assert env.find_token_by_id(token_id).get_refresh_token() == new[0]


def cleanup_policy(**days: float) -> Any:
    from mongo_store.tools.cleanup import Policy

    return Policy(**days)
