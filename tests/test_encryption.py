"""Encryption at rest: sealed secrets, blind-index lookups, wrong keys, tampering, rotation."""

from __future__ import annotations

import base64
import io
import os
import sys
from typing import Any

import pytest
from pymongo import MongoClient
from tokens import full, oauth, values
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore, cli
from mongo_store.crypto import KEY_ID_FIELD, PREFIX
from mongo_store.mapping import SECRET_FIELDS
from mongo_store.rotation import rotate

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()
KEY_C = base64.b64encode(os.urandom(32)).decode()


def keyed(store: MongoTokenStore, key: str | None = KEY_A, old: list[str] | None = None, **options: Any) -> MongoTokenStore:
    """Another store on the same collection with other keys (old=[] so the environment is not read)."""
    return MongoTokenStore(client=store.client, database=store.collection.database.name,
                           encryption_key=key, old_encryption_keys=[] if old is None else old, **options)


def raw(store: MongoTokenStore) -> list[dict[str, Any]]:
    return list(store.collection.find({}))


def secrets_of(tokens: list[OAuthToken]) -> list[str]:
    return [values(token)[field] for token in tokens for field in SECRET_FIELDS if values(token)[field]]


def test_raw_documents_hold_no_readable_secret(store: MongoTokenStore) -> None:
    sealed = keyed(store)
    tokens = [full(f"user{n}@example.com:1") for n in range(3)]
    for token in tokens:
        sealed.save_token(token)
    text = repr(raw(store))
    for secret in secrets_of(tokens):
        assert secret not in text
    document = raw(store)[0]
    assert all(document[field].startswith(PREFIX) for field in SECRET_FIELDS)
    assert document["user_name"].startswith("user") and document[KEY_ID_FIELD]
    assert {"refresh_token_hmac", "access_token_hmac", "grant_token_hmac"} <= set(document)


def test_every_lookup_works_on_sealed_tokens(store: MongoTokenStore) -> None:
    sealed = keyed(store)
    token = full("alice@example.com:1")
    sealed.save_token(token)
    assert values(sealed.find_token_by_id(token.get_id())) == values(token)
    assert values(sealed.find_token(oauth("alice@example.com:1", client=False))) == values(token)
    by_refresh = oauth(None, refresh_token=token.get_refresh_token(), client_secret=token.get_client_secret())
    assert sealed.find_token(by_refresh).get_id() == token.get_id()
    assert sealed.find_token(oauth(None, grant_token=token.get_grant_token())).get_id() == token.get_id()
    assert sealed.find_token(oauth(None, client=False, access_token=token.get_access_token())).get_id() == token.get_id()
    assert [values(t) for t in sealed.get_tokens()] == [values(token)]
    again = oauth(None, refresh_token=token.get_refresh_token(), access_token="1000.new.access.token.value")
    sealed.save_token(again)  # matched through the refresh token's blind index: same document
    assert again.get_id() == token.get_id() and len(raw(store)) == 1
    assert sealed.find_token_by_id(token.get_id()).get_access_token() == "1000.new.access.token.value"


def test_a_sealed_refresh_token_stays_unique(store: MongoTokenStore) -> None:
    sealed = keyed(store)
    first = full("alice@example.com:1")
    sealed.save_token(first)
    with pytest.raises(SDKException, match="already has this"):
        sealed.save_token(full("bob@example.com:1", refresh_token=first.get_refresh_token()))


def test_tampering_and_moved_ciphertexts_are_detected(store: MongoTokenStore) -> None:
    sealed = keyed(store)
    alice, bob = full("alice@example.com:1"), full("bob@example.com:1")
    sealed.save_token(alice)
    sealed.save_token(bob)
    document = store.collection.find_one({"_id": alice.get_id()})
    text = document["access_token"]
    flipped = text[:-6] + ("A" if text[-6] != "A" else "B") + text[-5:]
    store.collection.update_one({"_id": alice.get_id()}, {"$set": {"access_token": flipped}})
    with pytest.raises(SDKException, match="failed authentication"):
        sealed.find_token_by_id(alice.get_id())
    bobs = store.collection.find_one({"_id": bob.get_id()})["access_token"]
    store.collection.update_one({"_id": alice.get_id()}, {"$set": {"access_token": bobs}})  # moved across tokens
    with pytest.raises(SDKException, match="failed authentication"):
        sealed.find_token_by_id(alice.get_id())
    store.collection.update_one({"_id": bob.get_id()}, {"$set": {"refresh_token": document["grant_token"]}})
    with pytest.raises(SDKException, match="failed authentication"):  # moved across fields
        sealed.find_token_by_id(bob.get_id())


@pytest.mark.parametrize("reader", ["wrong key", "no key"])
def test_a_wrong_or_missing_key_is_refused_and_overwrites_nothing(store: MongoTokenStore, reader: str) -> None:
    keyed(store).save_token(full("alice@example.com:1"))
    before = raw(store)
    other = keyed(store, KEY_B) if reader == "wrong key" else keyed(store, None)
    expected = "not configured" if reader == "wrong key" else "is encrypted: configure its key"
    # A store without a key does not write into a collection of sealed tokens at all.
    refused = "not configured" if reader == "wrong key" else "holds encrypted tokens, but this store has no encryption key"
    with pytest.raises(SDKException, match=expected):
        other.find_token(oauth("alice@example.com:1", client=False))
    with pytest.raises(SDKException, match=expected):
        other.find_token_by_id(before[0]["_id"])
    with pytest.raises(SDKException, match=expected):
        other.get_tokens()
    with pytest.raises(SDKException, match=refused):
        other.save_token(full("alice@example.com:1", expires_in="4102444900000"))
    by_id = full(None, id=before[0]["_id"], expires_in="4102444900000")
    with pytest.raises(SDKException, match=refused):
        other.save_token(by_id)
    assert raw(store) == before


def test_bad_keys_are_clear_errors(store: MongoTokenStore) -> None:
    for bad in ("short", base64.b64encode(b"x" * 16).decode(), "not base64 !!"):
        with pytest.raises(SDKException, match="32 random bytes, base64-encoded"):
            keyed(store, bad)
    with pytest.raises(SDKException, match="no current key"):
        keyed(store, None, old=[KEY_A])


def test_plaintext_tokens_keep_working_and_are_sealed_on_their_next_save(store: MongoTokenStore) -> None:
    plain = keyed(store, None)
    token = full("alice@example.com:1")
    plain.save_token(token)
    sealed = keyed(store)
    probe = oauth(None, refresh_token=token.get_refresh_token(), client_secret=token.get_client_secret())
    assert values(sealed.find_token(probe)) == values(token)
    refresh = oauth("alice@example.com:1", client=False, access_token="1000.after.turning.encryption.on")
    sealed.save_token(refresh)  # carries only some secrets: the others are sealed too
    document = raw(store)[0]
    assert all(document[field].startswith(PREFIX) for field in SECRET_FIELDS)
    assert sealed.find_token_by_id(token.get_id()).get_grant_token() == token.get_grant_token()


def test_rotation_interrupted_halfway_resumes_and_loses_nothing(store: MongoTokenStore) -> None:
    keyed(store, None).save_token(full("plain@example.com:1"))  # one stored before encryption
    old = keyed(store, KEY_A)
    tokens = [full(f"user{n}@example.com:1") for n in range(12)]
    for token in tokens:
        old.save_token(token)
    expected = {values(t)["id"]: values(t) for t in old.get_tokens()}

    rotating = keyed(store, KEY_B, old=[KEY_A])
    done = []

    def interrupt() -> None:
        done.append(1)
        if len(done) == 5:
            raise KeyboardInterrupt  # the operator's Ctrl-C, halfway

    with pytest.raises(KeyboardInterrupt):
        rotate(rotating, progress=interrupt)
    assert {values(t)["id"]: values(t) for t in rotating.get_tokens()} == expected  # readable mid-way
    new_id = rotating.cipher.current.id
    assert 0 < store.collection.count_documents({KEY_ID_FIELD: new_id}) < 13

    report = rotate(rotating)
    assert report.failed == [] and report.rotated == 13 - 5  # five were written before the interrupt
    assert store.collection.count_documents({KEY_ID_FIELD: new_id}) == 13
    only_new = keyed(store, KEY_B)
    assert {values(t)["id"]: values(t) for t in only_new.get_tokens()} == expected
    by_refresh = oauth(None, refresh_token=tokens[3].get_refresh_token())
    assert only_new.find_token(by_refresh).get_id() == tokens[3].get_id()  # blind index under the new key
    with pytest.raises(SDKException, match="not configured"):
        keyed(store, KEY_A).get_tokens()
    assert rotate(rotating).rotated == 0  # nothing left to do


def test_rotation_reports_what_it_cannot_open(store: MongoTokenStore) -> None:
    keyed(store, KEY_C).save_token(full("lost@example.com:1"))
    keyed(store, KEY_A).save_token(full("kept@example.com:1"))
    before = store.collection.find_one({"user_name": "lost@example.com:1"})
    report = rotate(keyed(store, KEY_B, old=[KEY_A]))
    assert report.rotated == 1 and len(report.failed) == 1 and "not configured" in report.failed[0]
    assert store.collection.find_one({"user_name": "lost@example.com:1"}) == before


def test_rotate_key_command(mongo_uri: str, database_name: str, real_client: MongoClient,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_A, old_encryption_keys=[])
    for n in range(4):
        store.save_token(full(f"user{n}@example.com:1"))
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("ZOHO_MONGO_DATABASE", database_name)
    monkeypatch.setenv("ZOHO_MONGO_ENCRYPTION_KEY", KEY_B)
    monkeypatch.setenv("ZOHO_MONGO_OLD_ENCRYPTION_KEYS", KEY_A)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert cli.main(["rotate-key"], out=out) == 0
    assert out.getvalue().startswith("rotated 4,")
    export = io.StringIO()
    assert cli.main(["export", "--include-secrets"], out=export) == 0
    assert all(PREFIX not in line for line in export.getvalue().splitlines())  # exports are opened
    real_client.drop_database(database_name)


def test_sealed_lookups_use_indexes(mongo_uri: str, database_name: str) -> None:
    from test_real_server import Recorder, scans_everything, stages

    recorder = Recorder()
    client = MongoClient(mongo_uri, event_listeners=[recorder])
    try:
        store = MongoTokenStore(client=client, database=database_name, encryption_key=KEY_A, old_encryption_keys=[KEY_B])
        for n in range(30):
            store.save_token(full(f"user{n}@example.com:1"))
        token = full("alice@example.com:1")
        store.save_token(token)
        store.save_token(token)
        store.find_token(oauth(None, refresh_token=token.get_refresh_token()))
        store.find_token(oauth(None, grant_token=token.get_grant_token(), refresh_token=token.get_refresh_token()))
        store.find_token(oauth(None, client=False, access_token=token.get_access_token()))
        store.save_token(oauth(None, refresh_token=token.get_refresh_token(), access_token="x" * 20))
        shapes = [c for c in recorder.commands if not scans_everything(c)]
        assert len(shapes) >= 10
        for command in shapes:
            plan = client[database_name].command({"explain": command, "verbosity": "queryPlanner"})
            used = set(stages(plan["queryPlanner"]["winningPlan"]))
            assert "COLLSCAN" not in used, (command, used)
    finally:
        client.drop_database(database_name)
        client.close()
