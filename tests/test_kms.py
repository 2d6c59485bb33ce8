"""Envelope encryption with a KMS (issue 32), against moto's server on 127.0.0.1 (``kms_server.py``):
the data key, wrapped by the KMS key and kept beside the tokens, unwrapped once per process; the
KMS's refusals as one sentence; rotation to, from and between KMS keys; the provider interface."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import mongomock
import pytest
from kms_server import MotoKms
from pymongo import MongoClient, monitoring
from tokens import exception_texts, full, oauth, secret, values
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore
from mongo_store.core.aws_kms import AwsKms
from mongo_store.core.crypto import KEY_ID_FIELD
from mongo_store.core.envelope import KMS_EXTRA, context_of, register_provider, rewrap
from mongo_store.core.kms import KeyProvider, LocalKey
from mongo_store.core.mapping import SECRET_FIELDS
from mongo_store.core.rotation import rotate
from mongo_store.core.settings import StoreSettings

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_C = base64.b64encode(os.urandom(32)).decode()
VARIABLES = ("ZOHO_MONGO_ENCRYPTION_KEY", "ZOHO_MONGO_OLD_ENCRYPTION_KEYS", "ZOHO_MONGO_KMS_KEY",
             "ZOHO_MONGO_OLD_KMS_KEYS", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN")


@pytest.fixture(scope="module")
def moto_kms() -> Iterator[MotoKms]:
    server = MotoKms().start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_kms: MotoKms, monkeypatch: pytest.MonkeyPatch) -> MotoKms:
    """boto3 pointed at moto's server through the standard variables; no store key from outside."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_kms.env.items():
        monkeypatch.setenv(name, value)
    return moto_kms


def new_key(server: MotoKms) -> str:
    """A fresh KMS key, as a store names it: ``aws-kms:alias/...``."""
    return "aws-kms:" + server.create_key(f"alias/zms-{uuid.uuid4().hex[:10]}")


def enveloped(client: Any, database: str, key: Any = None, **options: Any) -> MongoTokenStore:
    options.setdefault("old_encryption_keys", [])
    options.setdefault("old_kms_keys", [])
    return MongoTokenStore(client=client, database=database, kms_key=key, **options)


def raw(client: Any, database: str) -> dict[str, list[dict[str, Any]]]:
    """Every document of every collection of the database."""
    return {name: list(client[database][name].find({})) for name in client[database].list_collection_names()}


def data_key_of(server: MotoKms, store: MongoTokenStore) -> bytes:
    """The plaintext data key, as the test (not the store) gets it from the KMS: to search for it."""
    record = store.data_keys.find_one({"_id": store.keys.kms.name})  # type: ignore[union-attr]
    return bytes(server.client().decrypt(CiphertextBlob=record["wrapped"],
                                         EncryptionContext=context_of(store.collection))["Plaintext"])


def forms(value: bytes) -> list[str]:
    """The ways a key's bytes could be written down."""
    return [base64.b64encode(value).decode(), value.hex(), repr(value)[2:-1], base64.urlsafe_b64encode(value).decode()]


class KmsRequests:
    """Every HTTP request boto3 sends (any client, retries included), by operation: the measure of
    KMS calls per process start and per lookup."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from botocore.endpoint import Endpoint

        self.operations: list[str] = []
        send = Endpoint._send

        def counted(endpoint: Any, request: Any) -> Any:
            target = request.headers.get("X-Amz-Target", b"")
            self.operations.append((target.decode() if isinstance(target, bytes) else target).split(".")[-1])
            return send(endpoint, request)

        monkeypatch.setattr(Endpoint, "_send", counted)


class Commands(monitoring.CommandListener):
    """Every command sent to MongoDB, encoded."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(bson.encode(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


# -- the envelope -------------------------------------------------------------------------------------


def test_no_plaintext_secret_or_key_in_any_collection_or_command(aws: MotoKms, mongo_uri: str,
                                                                 database_name: str) -> None:
    key = new_key(aws)
    commands = Commands()
    client = MongoClient(mongo_uri, event_listeners=[commands])
    try:
        store = enveloped(client, database_name, key)
        tokens = [full(f"user{n}@example.com:1") for n in range(3)]
        for token in tokens:
            store.save_token(token)
        relogin = full("user0@example.com:1")  # a new login: the replaced refresh token is kept, sealed
        store.save_token(relogin)
        store.find_token_by_id(relogin.get_id())
        store.find_token(oauth("user1@example.com:1", client=False))
        data_key = data_key_of(aws, store)
        everything = raw(client, database_name)
        assert {f"oauth_tokens{suffix}" for suffix in ("", "_displaced", "_data_keys")} <= set(everything)
        [record] = everything["oauth_tokens_data_keys"]
        assert set(record) == {"_id", "data_key_id", "wrapped", "created_at"} and record["_id"] == key
        assert record["data_key_id"] == store.cipher.current.id  # type: ignore[union-attr]
        encoded = [bson.encode(document) for documents in everything.values() for document in documents]
        text = repr(everything)
        secrets = [values(token)[field] for token in [*tokens, relogin] for field in SECRET_FIELDS]
        assert len(secrets) == 16 and not any(value in text for value in secrets)
        assert not any(data_key in document for document in encoded + commands.sent)  # the raw bytes, anywhere
        assert not any(form in text for form in forms(data_key))
        assert all(document[KEY_ID_FIELD] == record["data_key_id"] for document in everything["oauth_tokens"])
        assert all(document[field].startswith(f"zms3:{record['data_key_id']}:") for document in everything["oauth_tokens"]
                   for field in SECRET_FIELDS)
        assert everything["oauth_tokens_displaced"][0]["refresh_token"].startswith("zms3:")
        leaks = [bson.decode(command) for command in commands.sent if any(value.encode() in command for value in secrets)]
        assert not leaks, leaks
    finally:
        client.drop_database(database_name)
        client.close()


def test_a_second_store_with_the_same_kms_key_reads_the_tokens_one_kms_call_per_start_none_per_lookup(
        aws: MotoKms, real_client: MongoClient, database_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key(aws)
    requests = KmsRequests(monkeypatch)
    try:
        first = enveloped(real_client, database_name, key)
        assert requests.operations == ["GenerateDataKey"]  # an empty collection: the data key is made
        tokens = [full(f"user{n}@example.com:1") for n in range(5)]
        for token in tokens:
            first.save_token(token)
        with MongoClient(real_client.address[0], real_client.address[1]) as other_client:
            second = enveloped(other_client, database_name, key)
            assert requests.operations == ["GenerateDataKey", "Decrypt"]  # the second start: one Decrypt
            assert second.cipher.current.id == first.cipher.current.id  # type: ignore[union-attr]
            started = len(requests.operations)
            for token in tokens:
                assert values(second.find_token_by_id(token.get_id())) == values(token)
                found = second.find_token(oauth(None, refresh_token=token.get_refresh_token()))
                assert found is not None and found.get_id() == token.get_id()
                assert second.find_token(oauth(values(token)["user_name"], client=False)).get_id() == token.get_id()
            for n in range(10):
                second.save_token(oauth(None, refresh_token=tokens[0].get_refresh_token(), access_token=secret(f"a{n}")))
            assert len(second.get_tokens()) == 5
            per_lookup = len(requests.operations) - started
            assert per_lookup == 0
            print(f"\nKMS calls: first start (empty collection) 1 GenerateDataKey, each later start 1 Decrypt; "
                  f"15 lookups, 10 saves, 1 listing: {per_lookup}")
        assert real_client[database_name].oauth_tokens_data_keys.count_documents({}) == 1
    finally:
        real_client.drop_database(database_name)


def test_lookups_keep_working_after_the_kms_stops(real_client: MongoClient, database_name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server = MotoKms().start()
    try:
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        key = new_key(server)
        store = enveloped(real_client, database_name, key)
        token = full("alice@example.com:1")
        store.save_token(token)
        server.stop()  # the KMS is gone: the running store has its key in memory
        assert values(store.find_token_by_id(token.get_id())) == values(token)
        assert store.find_token(oauth(None, refresh_token=token.get_refresh_token())).get_id() == token.get_id()
        later = full("bob@example.com:1")
        store.save_token(later)
        refreshed = oauth(None, refresh_token=token.get_refresh_token(), access_token=secret("access"))
        store.save_token(refreshed)
        assert {values(t)["id"] for t in store.get_tokens()} == {token.get_id(), later.get_id()}
        started = time.monotonic()
        with pytest.raises(SDKException) as refused:  # a process starting now cannot open the data key
            enveloped(real_client, database_name, key)
        message = refused.value.error_message
        assert message == (f"KMS key {key} could not unwrap the data key of {database_name}.oauth_tokens: "
                           "KMS is unreachable")
        print(f"\nan unreachable KMS refused a start in {time.monotonic() - started:.2f} s")
    finally:
        server.stop()
        real_client.drop_database(database_name)


@pytest.mark.parametrize("backend", ["mongomock", "mongod"])
def test_another_or_a_disabled_key_reads_nothing_with_a_sentence_naming_kms(aws: MotoKms, backend: str,
                                                                            real_client: MongoClient,
                                                                            database_name: str) -> None:
    client = mongomock.MongoClient() if backend == "mongomock" else real_client
    key, other = new_key(aws), new_key(aws)
    try:
        store = enveloped(client, database_name, key)
        token = full("alice@example.com:1")
        store.save_token(token)
        data_key_id = store.cipher.current.id  # type: ignore[union-attr]
        # Another KMS key: its own data key, and none of these tokens.
        stranger = enveloped(client, database_name, other)
        assert stranger.cipher.current.id != data_key_id  # type: ignore[union-attr]
        expected = (f"client_secret of token {token.get_id()} was sealed with key {data_key_id}, which is not configured "
                    f"(its data key is wrapped by KMS key {key}: name it in ZOHO_MONGO_KMS_KEY or ZOHO_MONGO_OLD_KMS_KEYS)")
        for lookup in (lambda: stranger.find_token_by_id(token.get_id()),
                       lambda: stranger.find_token(oauth("alice@example.com:1", client=False))):
            with pytest.raises(SDKException) as refused:
                lookup()
            assert refused.value.error_message == f"cannot decrypt: {expected}"
        # A wrapped key put under another KMS key's name: that key does not open it.
        wrapped = client[database_name].oauth_tokens_data_keys.find_one({"_id": key})["wrapped"]
        client[database_name].oauth_tokens_data_keys.update_one({"_id": other}, {"$set": {"wrapped": wrapped}})
        with pytest.raises(SDKException) as refused:
            enveloped(client, database_name, other)
        assert refused.value.error_message.startswith(f"KMS key {other} could not unwrap the data key of "
                                                      f"{database_name}.oauth_tokens: access denied")
        # The KMS key disabled: a store starting now reads nothing; the sentence names KMS and the key.
        before = raw(client, database_name)
        aws.disable(key)
        with pytest.raises(SDKException) as refused:
            enveloped(client, database_name, key)
        assert refused.value.error_message == (f"KMS key {key} could not unwrap the data key of "
                                               f"{database_name}.oauth_tokens: the key is disabled")
        texts = exception_texts(refused.value)
        assert not any(form in text for text in texts for form in [*forms(wrapped), token.get_refresh_token()])
        assert raw(client, database_name) == before
        assert values(store.find_token_by_id(token.get_id())) == values(token)  # the running one: in memory
    finally:
        if backend == "mongod":
            real_client.drop_database(database_name)


def test_the_wrapped_keys_encryption_context_is_checked(aws: MotoKms, real_client: MongoClient, database_name: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The context names the database and collection; the KMS binds the wrapped key to it, so a
    wrapped key copied beside another collection (or database) does not open there."""
    from botocore.endpoint import Endpoint

    key = new_key(aws)
    elsewhere = f"{database_name}_copy"
    bodies: list[dict[str, Any]] = []
    send = Endpoint._send
    monkeypatch.setattr(Endpoint, "_send", lambda endpoint, request: bodies.append(json.loads(request.body)) or
                        send(endpoint, request))
    try:
        store = enveloped(real_client, database_name, key)
        store.save_token(full("alice@example.com:1"))
        enveloped(real_client, database_name, key)
        assert [body.get("EncryptionContext") for body in bodies] == [
            {"purpose": "zoho-mongo-store data key", "database": database_name, "collection": "oauth_tokens"}] * 2
        record = real_client[database_name].oauth_tokens_data_keys.find_one({})
        real_client[elsewhere].oauth_tokens_data_keys.insert_one(record)  # another database, same collection name
        real_client[database_name].other_data_keys.insert_one(record)  # the same database, another collection
        for database, collection in ((elsewhere, "oauth_tokens"), (database_name, "other")):
            with pytest.raises(SDKException) as refused:
                enveloped(real_client, database, key, collection=collection)
            assert refused.value.error_message == (
                f"KMS key {key} could not unwrap the data key of {database}.{collection}: the wrapped data key does not "
                "open under this key and encryption context: it was wrapped by another key, for another database or "
                "collection, or altered")
        # The KMS itself refuses the other context (moto: InvalidCiphertextException), and opens the right one.
        kms = aws.client()
        assert len(kms.decrypt(CiphertextBlob=record["wrapped"], EncryptionContext=context_of(store.collection))[
            "Plaintext"]) == 32
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(CiphertextBlob=record["wrapped"], EncryptionContext=context_of(
                real_client[elsewhere].oauth_tokens))
    finally:
        real_client.drop_database(database_name)
        real_client.drop_database(elsewhere)


def test_two_stores_starting_on_an_empty_collection_agree_on_one_data_key(aws: MotoKms, real_client: MongoClient,
                                                                          database_name: str) -> None:
    """The loser of the insert race made a data key of its own: it is dropped, and the winner's
    unwrapped. Here the other store starts between this one's GenerateDataKey and its insert."""
    key = new_key(aws)
    alias = key.removeprefix("aws-kms:")
    others: list[MongoTokenStore] = []

    class Racing(AwsKms):
        def generate(self, context: Any) -> tuple[bytes, bytes]:
            made = super().generate(context)
            others.append(enveloped(real_client, database_name, key))  # stores its data key first
            return made

    try:
        loser = enveloped(real_client, database_name, Racing(alias))
        [winner] = others
        assert loser.cipher.current.id == winner.cipher.current.id  # type: ignore[union-attr]
        records = list(real_client[database_name].oauth_tokens_data_keys.find({}))
        assert [record["_id"] for record in records] == [key]
        first, second = full("alice@example.com:1"), full("bob@example.com:1")
        loser.save_token(first)
        winner.save_token(second)
        assert values(winner.find_token_by_id(first.get_id())) == values(first)
        assert values(loser.find_token_by_id(second.get_id())) == values(second)
    finally:
        real_client.drop_database(database_name)


RACER = """
import logging, os, sys, time
sys.path.insert(0, {tests!r})
from tokens import full
from mongo_store import MongoTokenStore
logging.basicConfig(level=logging.INFO, format="%(message)s")
time.sleep(max(0.0, {start:f} - time.time()))
store = MongoTokenStore(os.environ["MONGODB_URI"], database={database!r}, kms_key={key!r})
token = full("user" + sys.argv[1] + "@example.com:1")
store.save_token(token)
print(store.cipher.current.id, token.get_id())
"""


def test_two_processes_starting_at_once_agree_on_one_data_key(aws: MotoKms, mongo_uri: str, real_client: MongoClient,
                                                              database_name: str) -> None:
    key = new_key(aws)
    script = RACER.format(tests=str(TESTS), start=time.time() + 8, database=database_name, key=key)
    env = dict(os.environ, MONGODB_URI=mongo_uri, PYTHONPATH=str(ROOT))
    try:
        processes = [subprocess.Popen([sys.executable, "-c", script, str(n)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for n in range(2)]
        results = [process.communicate(timeout=120) for process in processes]
        assert all(process.returncode == 0 for process in processes), results
        (first_key, first_id), (second_key, second_id) = (out.split() for out, _ in results)
        assert first_key == second_key
        assert real_client[database_name].oauth_tokens_data_keys.count_documents({}) == 1
        reader = enveloped(real_client, database_name, key)
        assert {token.get_id() for token in reader.get_tokens()} == {first_id, second_id}
        made = sum("made the data key" in err for _, err in results)
        assert made == 1
    finally:
        real_client.drop_database(database_name)


# -- refusals -----------------------------------------------------------------------------------------


def test_kms_refusing_permission_is_one_sentence_and_the_documented_permissions_suffice(
        real_client: MongoClient, database_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's IAM checks on (after the setup's 8 requests): a user with kms:DescribeKey only is
    refused; one with the actions docs/encryption.md lists for the store runs it, and re-wrapping
    takes kms:Encrypt besides. (moto matches a policy's Resource "*" only, not a key's ARN.)"""
    server = MotoKms(no_auth_actions=8).start()
    try:
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        key = new_key(server)  # 2 requests: the key, its alias
        iam = server.client("iam")

        def user(name: str, actions: list[str]) -> dict[str, str]:  # 3 requests each
            iam.create_user(UserName=name)
            iam.put_user_policy(UserName=name, PolicyName="kms", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
            access = iam.create_access_key(UserName=name)["AccessKey"]
            return {"AWS_ACCESS_KEY_ID": access["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": access["SecretAccessKey"]}

        documented = documented_actions()
        store_user, onlooker = user("store", documented["store"]), user("onlooker", ["kms:DescribeKey"])
        for name, value in onlooker.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(SDKException) as refused:
            enveloped(real_client, database_name, key)
        assert refused.value.error_message == (
            f"KMS key {key} could not generate the data key of {database_name}.oauth_tokens: access denied: these AWS "
            "credentials may not use this key for this (see the IAM permissions in docs/encryption.md)")
        assert onlooker["AWS_SECRET_ACCESS_KEY"] not in "".join(exception_texts(refused.value))
        for name, value in store_user.items():
            monkeypatch.setenv(name, value)
        store = enveloped(real_client, database_name, key)
        token = full("alice@example.com:1")
        store.save_token(token)
        assert values(enveloped(real_client, database_name, key).find_token_by_id(token.get_id())) == values(token)
        with pytest.raises(SDKException, match=r"could not re-wrap the data key .*: access denied"):
            rewrap(store, store.keys.kms)  # kms:Encrypt is rotate-key --rewrap's, not the store's
        assert set(documented["rewrap"]) - set(documented["store"]) == {"kms:Encrypt"}
    finally:
        server.stop()
        real_client.drop_database(database_name)


def documented_actions() -> dict[str, list[str]]:
    """The IAM actions docs/encryption.md's policies grant the store and ``rotate-key --rewrap``."""
    page = (ROOT / "docs" / "encryption.md").read_text()
    policies = {}
    for name in ("store", "rewrap"):
        block = page.split(f"<!-- iam: {name} -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
        policies[name] = json.loads(block)["Statement"][0]["Action"]
    return policies


def test_without_the_kms_extra_an_aws_kms_key_is_one_sentence_naming_it() -> None:
    """boto3 missing (blocked in a child process): the store refuses with one sentence naming the
    extra; a store with a local key never imports boto3 at all."""
    probe = """
import sys
sys.modules["boto3"] = None  # what `import boto3` meets without the kms extra
import mongomock
from mongo_store import MongoTokenStore
store = MongoTokenStore(client=mongomock.MongoClient(), encryption_key="QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
assert "botocore" not in sys.modules and "mongo_store.core.aws_kms" not in sys.modules
try:
    MongoTokenStore(client=mongomock.MongoClient(), kms_key="aws-kms:alias/zoho-tokens")
except Exception as error:
    print(type(error).__name__, "|", error.error_message)
"""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ZOHO_MONGO_")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=env | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"SDKException | {KMS_EXTRA}"
    assert "[kms]" in KMS_EXTRA


# -- rotation -----------------------------------------------------------------------------------------


def cli_env(server: MotoKms, mongo_uri: str, database: str, **variables: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in VARIABLES}
    return env | server.env | {"MONGODB_URI": mongo_uri, "ZOHO_MONGO_DATABASE": database, "PYTHONPATH": str(ROOT)} \
        | variables


def rotate_key(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mongo_store.cli", "rotate-key", *arguments], env=env,
                          capture_output=True, text=True, timeout=300)


def test_rotate_key_to_a_new_kms_key_with_the_cli_then_the_old_one_disabled(aws: MotoKms, mongo_uri: str,
                                                                           real_client: MongoClient,
                                                                           database_name: str) -> None:
    old, new = new_key(aws), new_key(aws)
    try:
        store = enveloped(real_client, database_name, old)
        tokens = [full(f"user{n}@example.com:1") for n in range(6)]
        for token in tokens:
            store.save_token(token)
        store.save_token(full("user0@example.com:1"))  # a new login: a replaced refresh token waits, sealed
        expected = {values(t)["id"]: values(t) for t in store.get_tokens()}
        done = rotate_key(cli_env(aws, mongo_uri, database_name, ZOHO_MONGO_KMS_KEY=new, ZOHO_MONGO_OLD_KMS_KEYS=old))
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "rotated 6, saved meanwhile 0 (already on the new key), failed 0; replaced refresh tokens " \
                           "awaiting their revoke sealed again: 1"
        assert lines[-1] == (f"no token of this collection needs KMS key {old} any more: remove it from "
                             "ZOHO_MONGO_OLD_KMS_KEYS; once nothing else uses it, it can be disabled")
        aws.disable(old)
        reader = enveloped(real_client, database_name, new)
        assert {values(t)["id"]: values(t) for t in reader.get_tokens()} == expected
        for token in tokens[1:]:
            assert reader.find_token(oauth(None, refresh_token=token.get_refresh_token())).get_id() == token.get_id()
        new_id = reader.cipher.current.id  # type: ignore[union-attr]
        database = real_client[database_name]
        assert {document[KEY_ID_FIELD] for document in database.oauth_tokens.find({})} == {new_id}
        assert {document[KEY_ID_FIELD] for document in database.oauth_tokens_displaced.find({})} == {new_id}
        with pytest.raises(SDKException, match=f"KMS key {old} could not unwrap .*: the key is disabled"):
            enveloped(real_client, database_name, new, old_kms_keys=[old])  # left configured: said at once
    finally:
        real_client.drop_database(database_name)


def test_rotate_key_killed_midway_resumes_and_loses_nothing(aws: MotoKms, mongo_uri: str, real_client: MongoClient,
                                                            database_name: str) -> None:
    """SIGKILL while rotate-key moves 3,000 tokens to a new KMS key; run again, it does the rest."""
    from datetime import datetime, timezone

    old, new = new_key(aws), new_key(aws)
    try:
        store = enveloped(real_client, database_name, old)
        cipher, now = store.cipher, datetime.now(timezone.utc)
        assert cipher is not None
        real_client[database_name].oauth_tokens.insert_many([
            cipher.seal({"refresh_token": f"1000.r{n}", "access_token": f"1000.a{n}"}, {"_id": f"id{n:04}"})
            | {"_id": f"id{n:04}", "updated_at": now} for n in range(3000)])
        env = cli_env(aws, mongo_uri, database_name, ZOHO_MONGO_KMS_KEY=new, ZOHO_MONGO_OLD_KMS_KEYS=old)
        process = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "rotate-key"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        database, deadline = real_client[database_name], time.monotonic() + 120
        while (record := database.oauth_tokens_data_keys.find_one({"_id": new})) is None or \
                database.oauth_tokens.count_documents({KEY_ID_FIELD: record["data_key_id"]}) < 200:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        moved = database.oauth_tokens.count_documents({KEY_ID_FIELD: record["data_key_id"]})
        assert 200 <= moved < 3000
        done = rotate_key(env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"rotated {3000 - moved}, saved meanwhile 0")
        reader = enveloped(real_client, database_name, new)
        opened = {token.get_id(): token.get_refresh_token() for token in reader.get_tokens()}
        assert opened == {f"id{n:04}": f"1000.r{n}" for n in range(3000)}
    finally:
        real_client.drop_database(database_name)


def test_from_a_local_key_to_kms_and_back(aws: MotoKms, mongo_uri: str, real_client: MongoClient,
                                          database_name: str) -> None:
    key = new_key(aws)
    try:
        local = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_A,
                                old_encryption_keys=[], old_kms_keys=[])
        tokens = [full(f"user{n}@example.com:1") for n in range(4)]
        for token in tokens:
            local.save_token(token)
        expected = {values(t)["id"]: values(t) for t in local.get_tokens()}
        # To KMS: the new key in ZOHO_MONGO_KMS_KEY, the local one among the old ones.
        done = rotate_key(cli_env(aws, mongo_uri, database_name, ZOHO_MONGO_KMS_KEY=key,
                                  ZOHO_MONGO_OLD_ENCRYPTION_KEYS=KEY_A))
        assert done.returncode == 0 and done.stdout.startswith("rotated 4,"), done.stdout + done.stderr
        enveloped_store = enveloped(real_client, database_name, key)
        assert {values(t)["id"]: values(t) for t in enveloped_store.get_tokens()} == expected
        with pytest.raises(SDKException, match="which is not configured"):  # the local key alone: the tokens moved
            MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_A, old_encryption_keys=[],
                            old_kms_keys=[]).get_tokens()
        # And back: a local key again, the KMS key among the old ones.
        back = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_C, old_encryption_keys=[],
                               old_kms_keys=[key])
        report = rotate(back)
        assert report.rotated == 4 and not report.failed and report.retired == [key]
        only_local = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY_C,
                                     old_encryption_keys=[], old_kms_keys=[])
        assert {values(t)["id"]: values(t) for t in only_local.get_tokens()} == expected
    finally:
        real_client.drop_database(database_name)


def test_rewrapping_the_data_key_touches_no_token(aws: MotoKms, mongo_uri: str, real_client: MongoClient,
                                                  database_name: str) -> None:
    """The KMS key's own rotation: its new material wraps the same data key (``--rewrap``): the
    wrapped form changes, the data key and every token stay as they are."""
    key = new_key(aws)
    try:
        store = enveloped(real_client, database_name, key)
        for n in range(3):
            store.save_token(full(f"user{n}@example.com:1"))
        database = real_client[database_name]
        tokens_before, record = list(database.oauth_tokens.find({})), database.oauth_tokens_data_keys.find_one({})
        aws.client().rotate_key_on_demand(KeyId=aws.arn(key.removeprefix("aws-kms:")).split("/")[-1])
        done = rotate_key(cli_env(aws, mongo_uri, database_name, ZOHO_MONGO_KMS_KEY=key), "--rewrap")
        assert done.returncode == 0, done.stderr
        assert done.stdout == (f"re-wrapped the data key {record['data_key_id']} of {database_name}.oauth_tokens under "
                               f"KMS key {key}; no token was touched\n")
        after = database.oauth_tokens_data_keys.find_one({})
        assert after["wrapped"] != record["wrapped"] and after["data_key_id"] == record["data_key_id"]
        assert "rewrapped_at" in after
        assert list(database.oauth_tokens.find({})) == tokens_before
        reader = enveloped(real_client, database_name, key)
        assert len(reader.get_tokens()) == 3
        with pytest.raises(SDKException, match="re-wrapping needs the KMS key that wraps the data key in "
                                               "ZOHO_MONGO_KMS_KEY"):
            rewrap(store, None)
    finally:
        real_client.drop_database(database_name)


# -- providers, settings, logs -------------------------------------------------------------------------


def test_a_local_wrapping_key_is_a_provider_like_the_kms(database_name: str) -> None:
    client = mongomock.MongoClient()
    wrapping = base64.b64encode(os.urandom(32)).decode()
    store = MongoTokenStore(client=client, database=database_name, kms_key=f"local:{wrapping}")
    name = store.keys.kms.name  # type: ignore[union-attr]
    assert name.startswith("local:") and len(name) == len("local:") + 12 and wrapping not in repr(store.keys)
    token = full("alice@example.com:1")
    store.save_token(token)
    again = MongoTokenStore(client=client, database=database_name, kms_key=f"local:{wrapping}")
    assert values(again.find_token_by_id(token.get_id())) == values(token)
    record = client[database_name].oauth_tokens_data_keys.find_one({})
    assert record["_id"] == name and wrapping not in repr(record)
    client[database_name].other_data_keys.insert_one(record)
    with pytest.raises(SDKException) as refused:
        MongoTokenStore(client=client, database=database_name, collection="other", kms_key=f"local:{wrapping}")
    assert refused.value.error_message.startswith(f"KMS key {name} could not unwrap the data key of "
                                                  f"{database_name}.other: the wrapped data key does not open")
    with pytest.raises(SDKException, match="a local: key must be 32 random bytes"):
        MongoTokenStore(client=client, database=database_name, kms_key="local:c2hvcnQ=")


def test_a_provider_of_your_own_passed_or_registered(aws: MotoKms, database_name: str) -> None:
    """The interface a team implements for another KMS: ``wrap`` and ``unwrap`` (``generate`` by
    default: 32 random bytes, wrapped). Here, AWS KMS's Encrypt and Decrypt through a client of
    one's own."""
    kms = aws.client()

    class Mine(KeyProvider):
        scheme = "mine"

        def __init__(self, key: str) -> None:
            self.key = key

        def wrap(self, data_key: bytes, context: Any) -> bytes:
            return bytes(kms.encrypt(KeyId=self.key, Plaintext=data_key, EncryptionContext=dict(context))["CiphertextBlob"])

        def unwrap(self, wrapped: bytes, context: Any) -> bytes:
            return bytes(kms.decrypt(KeyId=self.key, CiphertextBlob=wrapped, EncryptionContext=dict(context))["Plaintext"])

    alias = new_key(aws).removeprefix("aws-kms:")
    client = mongomock.MongoClient()
    store = MongoTokenStore(client=client, database=database_name, kms_key=Mine(alias))
    token = full("alice@example.com:1")
    store.save_token(token)
    register_provider("mine", Mine)
    try:
        again = MongoTokenStore(client=client, database=database_name, kms_key=f"mine:{alias}")
        assert values(again.find_token_by_id(token.get_id())) == values(token)
        aws.disable(alias)
        with pytest.raises(SDKException) as refused:  # a provider's own exception: its type, never its text
            MongoTokenStore(client=client, database=database_name, kms_key=f"mine:{alias}")
        assert refused.value.error_message == (f"KMS key mine:{alias} could not unwrap the data key of "
                                               f"{database_name}.oauth_tokens: the provider failed (DisabledException)")
    finally:
        from mongo_store.core.envelope import PROVIDERS

        PROVIDERS.pop("mine", None)


@pytest.mark.parametrize("given, message", [
    ({"encryption_key": KEY_A, "kms_key": "aws-kms:alias/x"}, "set either ZOHO_MONGO_ENCRYPTION_KEY or "
                                                              "ZOHO_MONGO_KMS_KEY, not both"),
    ({"old_kms_keys": ["aws-kms:alias/x"]}, "old encryption keys are set but no current key"),
    ({"kms_key": "alias/zoho-tokens"}, "kms_key must name a KMS key as <provider>:<key>"),
    ({"kms_key": "aws-kms:"}, "kms_key must name a KMS key as <provider>:<key>"),
    ({"kms_key": 42}, "kms_key must name a KMS key as <provider>:<key>"),
    ({"kms_key": "gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k"},
     "the KMS key names the unknown key provider 'gcp-kms': this store knows aws-kms, local"),
])
def test_kms_settings_are_one_sentence(given: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SDKException) as refused:
        MongoTokenStore(client=mongomock.MongoClient(), **given)
    assert refused.value.error_message.startswith(message)


def test_kms_settings_from_the_environment_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    wrapping = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("ZOHO_MONGO_KMS_KEY", f" local:{wrapping} ")
    monkeypatch.setenv("ZOHO_MONGO_OLD_KMS_KEYS", "aws-kms:alias/a, aws-kms:arn:aws:kms:eu-west-1:1:key/k,")
    monkeypatch.delenv("ZOHO_MONGO_ENCRYPTION_KEY", raising=False)
    settings = StoreSettings.load()
    assert settings.kms_key == f"local:{wrapping}"
    assert settings.old_kms_keys == ("aws-kms:alias/a", "aws-kms:arn:aws:kms:eu-west-1:1:key/k")
    assert wrapping not in repr(settings) and "alias/a" not in repr(settings)
    assert AwsKms("arn:aws:kms:eu-west-1:1:key/k").client().meta.region_name == "eu-west-1"  # the ARN's region


def test_no_data_key_in_logs_even_at_debug(aws: MotoKms, mongo_uri: str, database_name: str,
                                           real_client: MongoClient, caplog: pytest.LogCaptureFixture) -> None:
    """botocore logs request and response bodies at DEBUG: with an application's DEBUG logging on,
    the plaintext data key and the wrapped one. Not while the store asks the KMS."""
    caplog.set_level(logging.DEBUG)
    key = new_key(aws)
    try:
        store = enveloped(real_client, database_name, key)  # GenerateDataKey
        store.save_token(full("alice@example.com:1"))
        enveloped(real_client, database_name, key)  # Decrypt
        rewrap(store, store.keys.kms)  # Decrypt and Encrypt
        assert any(record.name.startswith("botocore") for record in caplog.records)  # DEBUG was on
        logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
        data_key = data_key_of(aws, store)  # the test's own call: botocore logs its body (checked below)
        wrapped = [record["wrapped"] for record in real_client[database_name].oauth_tokens_data_keys.find({})]
        assert not any(form in logged for value in [data_key, *wrapped] for form in forms(value))
        assert any(record.name == "botocore.parsers" for record in caplog.records)  # the app's own calls: as they were
    finally:
        real_client.drop_database(database_name)


def test_the_local_provider_wraps_bound_to_its_context() -> None:
    provider = LocalKey(base64.b64encode(os.urandom(32)))
    data_key = os.urandom(32)
    wrapped = provider.wrap(data_key, {"database": "a", "collection": "b"})
    assert provider.unwrap(wrapped, {"collection": "b", "database": "a"}) == data_key  # any order
    from mongo_store.core.kms import KmsError

    for context in ({"database": "a", "collection": "c"}, {}):
        with pytest.raises(KmsError):
            provider.unwrap(wrapped, context)
    with pytest.raises(KmsError):
        provider.unwrap(wrapped[:-1] + bytes([wrapped[-1] ^ 1]), {"database": "a", "collection": "b"})
    assert data_key not in wrapped
