"""Encryption at rest: sealed secrets, blind-index lookups, wrong keys, tampering, rotation."""

from __future__ import annotations

import base64
import io
import os
import sys
from typing import Any

import pytest
from pymongo import MongoClient, monitoring
from tokens import full, oauth, secret, values
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore, cli
from mongo_store.core.crypto import KEY_ID_FIELD, PREFIX
from mongo_store.core.mapping import SECRET_FIELDS
from mongo_store.core.rotation import rotate

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
    for value in secrets_of(tokens):
        assert value not in text
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
    # A store without a key does not write into a collection of sealed tokens at all: the server's
    # validator refuses its plaintext insert (mongomock: the store's own check), and a save by id
    # finds a token it cannot open.
    refused = "not configured" if reader == "wrong key" else "encrypted.*ZOHO_MONGO_ENCRYPTION_KEY"
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


# -- the whole token is bound: nothing of it changes without the key --------------------------------


ALICE, BOB = "alice@example.com:1", "bob@example.com:1"


def _swap_names(store: MongoTokenStore, first: str, second: str) -> None:
    names = {d["_id"]: d["user_name"] for d in store.collection.find({"_id": {"$in": [first, second]}})}
    store.collection.update_one({"_id": first}, {"$unset": {"user_name": ""}})
    store.collection.update_one({"_id": second}, {"$set": {"user_name": names[first]}})
    store.collection.update_one({"_id": first}, {"$set": {"user_name": names[second]}})


@pytest.mark.parametrize("change", ["user_name", "api_domain", "client_id", "redirect_url", "plaintext secret",
                                    "unset key id"])
def test_a_sealed_token_changed_without_the_key_is_refused(store: MongoTokenStore, change: str) -> None:
    sealed = keyed(store)
    alice, bob = full(ALICE), full(BOB)
    sealed.save_token(alice)
    sealed.save_token(bob)
    victim = alice.get_id()
    bypass = {"bypass_document_validation": True}  # a restored backup, or a user allowed to bypass the server's rules
    if change == "user_name":  # find_token(Alice) would hand out Bob's secrets
        _swap_names(store, alice.get_id(), bob.get_id())
        victim = bob.get_id()
    elif change == "plaintext secret":  # the attacker's own refresh token in Alice's sealed document
        store.collection.update_one({"_id": victim}, {"$set": {"refresh_token": secret("refresh")}}, **bypass)
    elif change == "unset key id":
        store.collection.update_one({"_id": victim}, {"$unset": {KEY_ID_FIELD: ""}}, **bypass)
    else:  # api_domain=http://attacker would receive the decrypted access token on the next check
        store.collection.update_one({"_id": victim}, {"$set": {change: "http://attacker.test"}})
    with pytest.raises(SDKException, match=f"token {victim}") as refused:
        sealed.find_token(oauth(ALICE, client=False))
    with pytest.raises(SDKException, match=f"token {victim}"):
        sealed.find_token_by_id(victim)
    for token in (alice, bob):
        assert all(secret_value not in str(refused.value) for secret_value in secrets_of([token]))


def test_the_stores_own_changes_of_identity_stay_readable(store: MongoTokenStore) -> None:
    sealed = keyed(store)
    token = full(None, api_domain="https://www.zohoapis.com")
    sealed.save_token(token)
    token.set_user_signature(__import__("zohocrmsdk.src.com.zoho.crm.api.user_signature",
                                        fromlist=["UserSignature"]).UserSignature(ALICE))  # named just before a save
    token.set_api_domain("https://www.zohoapis.eu")
    sealed.save_token(token)
    again = sealed.find_token_by_id(token.get_id())
    assert values(again) == values(token)
    partial = OAuthToken(id=token.get_id(), access_token="1000.newer.access.token.value")  # carries no identity
    partial.set_expires_in("4102444900000")
    sealed.save_token(partial)
    assert sealed.find_token(oauth(ALICE, client=False)).get_access_token() == "1000.newer.access.token.value"


def test_values_sealed_by_0_1_open_and_rotate_key_upgrades_them(store: MongoTokenStore) -> None:
    """0.1 bound each value to its document id and field only (``zms1:``, its own key id)."""
    from mongo_store.core.crypto import LEGACY_PREFIX, _associated

    cipher = keyed(store).cipher
    assert cipher is not None
    key = cipher.current
    token = full(ALICE)
    document: dict[str, Any] = {"_id": "legacy", "user_name": ALICE, "client_id": token.get_client_id(),
                                KEY_ID_FIELD: key.legacy_id}
    for field in SECRET_FIELDS:
        nonce = os.urandom(12)
        sealed_value = key.aead.encrypt(nonce, values(token)[field].encode(), _associated("legacy", field))
        document[field] = f"{LEGACY_PREFIX}{key.legacy_id}:{base64.b64encode(nonce + sealed_value).decode()}"
    store.collection.insert_one(document)
    assert keyed(store).find_token_by_id("legacy").get_refresh_token() == token.get_refresh_token()
    report = rotate(keyed(store))
    assert report.rotated == 1 and not report.failed
    upgraded = store.collection.find_one({"_id": "legacy"})
    assert upgraded[KEY_ID_FIELD] == key.id and all(upgraded[field].startswith(PREFIX) for field in SECRET_FIELDS)
    assert keyed(store).find_token_by_id("legacy").get_access_token() == token.get_access_token()


def test_no_key_material_in_a_repr(store: MongoTokenStore) -> None:
    sealed = keyed(store)
    assert sealed.cipher is not None
    texts = [repr(sealed.cipher.current), repr(sealed.cipher), repr(sealed), str(sealed.cipher.current)]
    assert texts[0] == f"Key(id={sealed.cipher.current.id!r})"
    for text in texts:
        assert sealed.cipher.current.mac.hex() not in text and "mac" not in text and "AESGCM" not in text


@pytest.mark.real
def test_the_server_refuses_plaintext_writes_beside_sealed_tokens_on_every_save(real_client: MongoClient,
                                                                                 database_name: str) -> None:
    """A keyless worker that saved before encryption was turned on keeps being refused afterwards,
    each time, in one command: it read, when it first could insert, that the collection had no
    validator yet, so within the minute its probe found no sealed token in its insert is the
    server's to refuse, and after it it looks for sealed tokens before an insert (one index probe)
    and refuses without writing; a worker started after the validator leaves it to the server."""
    from test_refresh_safety import FindAndModifyCounter  # it records every command's name
    from tokens import exception_texts

    from mongo_store.core.validation import requires_sealed

    commands = FindAndModifyCounter()
    client = MongoClient(real_client.address[0], real_client.address[1], event_listeners=[commands])
    try:
        plain = MongoTokenStore(client=client, database=database_name, encryption_key=None, old_encryption_keys=[])
        plain.save_token(full(ALICE))  # before encryption: fine
        sealed = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_A, old_encryption_keys=[])
        assert sealed.prepare() is True and requires_sealed(sealed.collection)
        sealed.save_token(full(BOB))
        for attempt in range(3):
            newcomer = full(f"carol{attempt}@example.com:1")
            if attempt:
                plain._no_sealed_until = 0.0  # a minute later: its probe is no longer trusted
            commands.names.clear()
            with pytest.raises(SDKException, match="holds encrypted tokens") as refused:
                plain.save_token(newcomer)
            assert commands.names == ["findAndModify" if attempt == 0 else "find"]
            assert not any(value in text for text in exception_texts(refused.value) for value in secrets_of([newcomer]))
        assert real_client[database_name].oauth_tokens.count_documents({}) == 2
        later = MongoTokenStore(client=client, database=database_name, encryption_key=None, old_encryption_keys=[])
        later.prepare()  # its indexes
        for attempt in range(2):
            commands.names.clear()
            with pytest.raises(SDKException, match="holds encrypted tokens"):
                later.save_token(full(f"dave{attempt}@example.com:1"))
            assert commands.names == (["listCollections"] if attempt == 0 else []) + ["findAndModify"]
        assert real_client[database_name].oauth_tokens.count_documents({}) == 2
        # The document stored before encryption stays writable until it is sealed (resumable).
        legacy = plain.find_token(oauth(ALICE, client=False))
        legacy.set_access_token(secret("access"))
        plain.save_token(legacy)
        assert rotate(sealed).rotated == 1
        with pytest.raises(SDKException, match="encrypted"):
            plain.save_token(legacy)
    finally:
        real_client.drop_database(database_name)
        client.close()


@pytest.mark.real
def test_no_command_carries_a_secret_in_the_clear(mongo_uri: str, database_name: str) -> None:
    """With a key, what reaches the server (its logs, profiler, currentOp) holds no secret: saves,
    the guards of a save by id, lookups by id and user name, a refresh lease and its failure."""
    class Everything(monitoring.CommandListener):
        def __init__(self) -> None:
            self.commands: list[str] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            self.commands.append(repr(event.command))

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    listener = Everything()
    client = MongoClient(mongo_uri, event_listeners=[listener])
    try:
        sealed = MongoTokenStore(client=client, database=database_name, encryption_key=KEY_A, old_encryption_keys=[])
        token = full(ALICE, expires_in="1000")
        sealed.save_token(token)
        holder = sealed.find_token_by_id(token.get_id())  # in the refresh window: takes the lease
        with pytest.raises(SDKException):
            holder.refresh_access_token(holder, "http://127.0.0.1:9/oauth/v2/token")  # recorded as failed
        again = full(ALICE, refresh_token=token.get_refresh_token(), grant_token=token.get_grant_token(),
                     client_secret=token.get_client_secret())
        again.set_id(token.get_id())
        sealed.save_token(again)  # the SDK's save after a refresh: by id, with the guards
        sealed.find_token(oauth(ALICE, client=False))
        assert sealed.flush_events(10)
        assert len(listener.commands) >= 6
        # The token history's events (both saves stored an access token; the refresh failed) are sent
        # too (in one or more batches), and are checked for secrets below like every other command.
        inserts = [command for command in listener.commands if command.startswith("{'insert': 'token_events'")]
        assert 1 <= len(inserts) <= 3 and sum(command.count("'event': ") for command in inserts) == 3
        for value in secrets_of([token, again]):
            assert not any(value in command for command in listener.commands)
    finally:
        client.drop_database(database_name)
        client.close()


# -- issue 29: formats and versions, the validator's record, a keyless writer ----------------------


def _sealed_0_1(key: Any, document_id: str, token: OAuthToken) -> dict[str, str]:
    """Secrets as 0.1 sealed them (``zms1:``: bound to the id and field only)."""
    from mongo_store.core.crypto import LEGACY_PREFIX, _associated

    sealed = {}
    for field in SECRET_FIELDS:
        nonce = os.urandom(12)
        ciphertext = key.aead.encrypt(nonce, values(token)[field].encode(), _associated(document_id, field))
        sealed[field] = f"{LEGACY_PREFIX}{key.legacy_id}:{base64.b64encode(nonce + ciphertext).decode()}"
    return sealed


def test_after_rotate_key_a_backups_old_format_values_are_refused(mongo_uri: str, database_name: str,
                                                                  real_client: MongoClient) -> None:
    """F3: 0.1's values are bound to the id only. After the real ``rotate-key`` upgraded every token,
    a writer without the key put a backup's ``zms1`` values back and swapped two user names:
    ``find_token`` handed out the other person's refresh token and data center."""
    import subprocess

    from pymongo.errors import WriteError

    key = keyed(MongoTokenStore(client=real_client, database=database_name)).cipher.current  # type: ignore[union-attr]
    alice, bob = full(ALICE, api_domain="https://www.zohoapis.com"), full(BOB, api_domain="https://www.zohoapis.eu")
    backup = []
    for document_id, token in (("a-id", alice), ("b-id", bob)):
        backup.append({"_id": document_id, "user_name": values(token)["user_name"], "client_id": token.get_client_id(),
                       "api_domain": token.get_api_domain(), KEY_ID_FIELD: key.legacy_id,
                       **_sealed_0_1(key, document_id, token)})
    tokens = real_client[database_name].oauth_tokens
    tokens.insert_many(backup)
    env = dict(os.environ, MONGODB_URI=mongo_uri, ZOHO_MONGO_DATABASE=database_name, ZOHO_MONGO_ENCRYPTION_KEY=KEY_A)
    env.pop("ZOHO_MONGO_OLD_ENCRYPTION_KEYS", None)
    done = subprocess.run([sys.executable, "-m", "mongo_store.cli", "rotate-key"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("rotated 2,"), done.stdout + done.stderr
    assert "accepts format zms3 only" in done.stdout
    # The keyless writer puts the backup back, the user names swapped: the server refuses it now...
    swapped = [dict(backup[0], user_name=BOB), dict(backup[1], user_name=ALICE)]
    with pytest.raises(WriteError) as refused:
        tokens.replace_one({"_id": "a-id"}, dict(swapped[0], user_name="someone-else"))
    assert refused.value.code == 121
    # ... and a writer allowed to bypass validation (a restore) gets nothing served either.
    tokens.delete_many({})
    tokens.insert_many(swapped, bypass_document_validation=True)
    store = keyed(MongoTokenStore(client=real_client, database=database_name))
    for lookup in (lambda: store.find_token(oauth(ALICE, client=False)), lambda: store.find_token_by_id("b-id")):
        with pytest.raises(SDKException, match="older format zms1, which this collection no longer accepts"):
            lookup()


def test_older_values_of_a_token_are_refused_after_a_newer_save(store: MongoTokenStore) -> None:
    """F15: a token's own sealed values of an older save, written back without the key beside the
    newer ones after a new login, were served as current (no version bound them)."""
    sealed = keyed(store)
    first = full(ALICE)
    sealed.save_token(first)
    old = store.collection.find_one({})
    second = full(ALICE)  # a new login: another refresh token for the same person
    sealed.save_token(second)
    assert sealed.find_token_by_id(first.get_id()).get_refresh_token() == second.get_refresh_token()
    store.collection.update_one({"_id": first.get_id()}, {"$set": {field: old[field] for field in (
        "refresh_token", "refresh_token_hmac", "client_secret")}})
    for lookup in (lambda: sealed.find_token_by_id(first.get_id()), lambda: sealed.find_token(oauth(ALICE, client=False)),
                   lambda: sealed.find_token(oauth(None, refresh_token=first.get_refresh_token(),
                                                   client_secret=first.get_client_secret()))):
        with pytest.raises(SDKException, match="mixes values of two saves"):
            lookup()
    # A value relabelled with another version fails authentication: the version is bound.
    current = store.collection.find_one({})["access_token"]
    prefix, key_id, version, payload = current.split(":", 3)
    store.collection.update_one({}, {"$set": {field: old[field] for field in SECRET_FIELDS} | {
        "refresh_token_hmac": old["refresh_token_hmac"]}})
    store.collection.update_one({}, {"$set": {"access_token": f"{prefix}:{key_id}:{int(version) - 1}:{payload}"}})
    with pytest.raises(SDKException, match=r"access_token of token \S+ failed authentication"):
        sealed.find_token_by_id(first.get_id())


@pytest.mark.parametrize("wrapped", [["zms2:", "1000.plain.refresh"], ["zms3:", "1000.plain.refresh"], [None], 42])
def test_the_validator_requires_strings(real_client: MongoClient, database_name: str, wrapped: Any) -> None:
    """F14: the query-form validator's ``$regex`` matched an array holding one sealed-looking string,
    so plaintext wrapped in an array passed. A collection with 0.2's validator gets the new one
    from the next keyed store allowed to install it."""
    from pymongo.errors import WriteError

    sealed_0_2 = {"$regex": "^(zms2:|zms1:)"}
    validator_0_2 = {"$or": [
        {"$and": [{KEY_ID_FIELD: {"$type": "string"}},
                  *({"$or": [{field: {"$exists": False}}, {field: sealed_0_2}]} for field in SECRET_FIELDS)]},
        {"$and": [{field: {"$exists": False}} for field in SECRET_FIELDS]},
    ]}
    try:
        sealed = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_A,
                                 old_encryption_keys=[])
        token = full(ALICE)
        sealed.save_token(token)
        real_client[database_name].command("collMod", "oauth_tokens", validator=validator_0_2)  # as 0.2 left it
        again = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_A, old_encryption_keys=[])
        assert again.prepare() is True
        tokens = real_client[database_name].oauth_tokens
        before = tokens.find_one({})
        with pytest.raises(WriteError) as refused:
            tokens.update_one({"_id": token.get_id()}, {"$set": {"refresh_token": wrapped}})
        assert refused.value.code == 121
        with pytest.raises(WriteError):
            tokens.insert_one({"_id": "x", KEY_ID_FIELD: before[KEY_ID_FIELD], "client_secret": wrapped})
        assert tokens.find_one({"_id": token.get_id()}) == before and tokens.count_documents({}) == 1
    finally:
        real_client.drop_database(database_name)


def test_a_keyless_store_of_a_readwrite_user_refuses_to_write_beside_sealed_tokens(secured_mongod: Any,
                                                                                   database_name: str) -> None:
    """F5: a readWrite user cannot install the validator (a warning), and the keyless check ran on
    mongomock only: a store without the key stored client_secret and refresh_token in plaintext
    beside sealed tokens, and a plaintext copy of a sealed token."""
    with MongoClient(secured_mongod.uri("root")) as root:
        root.admin.command("createUser", "writer", pwd="wr1ter-Pa55word", roles=[{"role": "readWrite", "db": database_name}])
        try:
            with MongoClient(secured_mongod.uri("root").replace("root:r00t-Pa55word", "writer:wr1ter-Pa55word")
                             ) as writer:
                sealed = MongoTokenStore(client=writer, database=database_name, encryption_key=KEY_A,
                                         old_encryption_keys=[])
                assert sealed.prepare() is False  # no collMod: no validator
                alice = full(ALICE)
                sealed.save_token(alice)
                before = list(root[database_name].oauth_tokens.find({}))
                plain = MongoTokenStore(client=writer, database=database_name, encryption_key=None,
                                        old_encryption_keys=[])
                attempts = [full(BOB), full(None, refresh_token=alice.get_refresh_token()),
                            oauth(None, refresh_token=alice.get_refresh_token(), access_token=secret("access"))]
                for token in attempts:
                    with pytest.raises(SDKException, match="holds encrypted tokens, but this store has no encryption "
                                                           "key") as refused:
                        plain.save_token(token)
                    assert "Traceback" not in str(refused.value) and str(refused.value).count("\n") == 0
                by_id = full(ALICE, expires_in="4102444900000")
                by_id.set_id(alice.get_id())
                with pytest.raises(SDKException, match="encrypted"):
                    plain.save_token(by_id)
                assert list(root[database_name].oauth_tokens.find({})) == before
                text = repr(before)
                assert not any(value in text for value in secrets_of([alice, *attempts]))
        finally:
            root.drop_database(database_name)
            root.admin.command("dropUser", "writer")


def test_rotation_never_writes_over_a_save_made_in_the_same_millisecond(real_client: MongoClient,
                                                                       database_name: str) -> None:
    """Suspected: rotation wrote back only if ``updated_at`` was unchanged, a millisecond date two
    saves can share: a save between its read and its write was lost (its values replaced by the
    older ones rotation had read). The same millisecond is made here by setting ``updated_at`` back."""
    try:
        old = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_A, old_encryption_keys=[])
        tokens = [full(f"user{n}@example.com:1") for n in range(2)]
        for token in tokens:
            old.save_token(token)
        _, second_id = sorted(token.get_id() for token in tokens)
        collection = real_client[database_name].oauth_tokens
        read_at = collection.find_one({"_id": second_id})["updated_at"]
        newer = secret("access")
        new = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_B,
                              old_encryption_keys=[KEY_A])

        def between(done: list[int] = []) -> None:  # noqa: B006  (counts the calls)
            done.append(1)
            if len(done) == 1:  # the first token is rotated; the second was read with the first batch
                saving = new.find_token_by_id(second_id)
                saving.set_access_token(newer)
                saving.set_expires_in("4102444900000")
                new.save_token(saving)
                collection.update_one({"_id": second_id}, {"$set": {"updated_at": read_at}})

        report = rotate(new, progress=between)
        assert report.rotated == 1 and report.changed_meanwhile == 1 and not report.failed
        assert new.find_token_by_id(second_id).get_access_token() == newer
    finally:
        real_client.drop_database(database_name)


def test_rotation_reseals_a_token_with_a_null_field_and_records_the_upgrade(real_client: MongoClient,
                                                                           database_name: str) -> None:
    """Rotation's write back names every field as read: one stored as null (by hand) is matched as
    null, so the token is rotated (not "saved meanwhile" on every run) and the upgrade recorded."""
    from mongo_store.core.validation import validator_of

    try:
        old = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_A, old_encryption_keys=[])
        token = full(ALICE)
        old.save_token(token)
        real_client[database_name].oauth_tokens.update_one({}, {"$unset": {"grant_token_hmac": ""},
                                                                "$set": {"grant_token": None}},
                                                            bypass_document_validation=True)  # by hand, past the validator
        new = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_B,
                              old_encryption_keys=[KEY_A])
        report = rotate(new)
        assert (report.rotated, report.changed_meanwhile, report.failed) == (1, 0, [])
        assert report.recorded is not None and report.recorded.startswith("recorded")
        assert validator_of(new.collection).formats == ("zms3",)
        assert new.find_token_by_id(token.get_id()).get_refresh_token() == token.get_refresh_token()
    finally:
        real_client.drop_database(database_name)


def test_after_rotate_key_no_lookup_carries_a_token_value(mongo_uri: str, database_name: str) -> None:
    """Until a rotation has sealed every token, a lookup by a token value also asks for it in plain
    text (tokens stored before encryption); once ``rotate-key`` recorded the upgrade, no command the
    store sends holds the value (a server's slow-query log would show it)."""
    import subprocess

    class Commands(monitoring.CommandListener):
        def __init__(self) -> None:
            self.sent: list[str] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            self.sent.append(repr(event.command))

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            pass

    listener = Commands()
    with MongoClient(mongo_uri, event_listeners=[listener]) as client:
        store = keyed(MongoTokenStore(client=client, database=database_name))
        refresh = secret("refresh")
        store.save_token(oauth("alice@example.com:1", refresh_token=refresh, access_token=secret("access"),
                               expires_in="4102444800000"))  # valid: a lookup takes no refresh lease
        listener.sent.clear()
        assert store.find_token(oauth(None, refresh_token=refresh)) is not None
        assert any(refresh in command for command in listener.sent)  # before: the plain value is asked for too
        env = dict(os.environ, MONGODB_URI=mongo_uri, ZOHO_MONGO_DATABASE=database_name, ZOHO_MONGO_ENCRYPTION_KEY=KEY_A)
        env.pop("ZOHO_MONGO_OLD_ENCRYPTION_KEYS", None)
        done = subprocess.run([sys.executable, "-m", "mongo_store.cli", "rotate-key"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0 and "accepts format zms3 only" in done.stdout, done.stdout + done.stderr
        after = keyed(MongoTokenStore(client=client, database=database_name))
        after.prepare()  # reads the collection's record, as a store's first use does
        listener.sent.clear()
        assert after.find_token(oauth(None, refresh_token=refresh)).get_user_signature().get_name() == "alice@example.com:1"
        assert listener.sent and not any(refresh in command for command in listener.sent)
