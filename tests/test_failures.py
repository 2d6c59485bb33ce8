"""Configuration, dead servers, conflicts and secrecy: every failure is a clear SDKException."""

from __future__ import annotations

import logging
import time

import mongomock
import pytest
from pymongo import MongoClient
from tokens import exception_texts, full, oauth, values
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore
from mongo_store.core.mapping import SECRET_FIELDS
from mongo_store.tools.embedded import free_port

ALICE = "alice@example.com:700001"


def test_no_uri_anywhere_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    with pytest.raises(SDKException, match="set MONGODB_URI"):
        MongoTokenStore()


def test_uri_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongomock://")
    monkeypatch.setenv("ZOHO_MONGO_DATABASE", "envdb")
    store = MongoTokenStore()
    assert isinstance(store.client, mongomock.MongoClient)
    assert repr(store) == "MongoTokenStore(database='envdb', collection='oauth_tokens')"


def test_uri_and_client_together_are_refused() -> None:
    with pytest.raises(SDKException, match="either a URI or a client"):
        MongoTokenStore("mongomock://", client=mongomock.MongoClient())


@pytest.mark.parametrize("timeout", [0, -1, "5", float("nan"), float("inf"), True])
def test_timeouts_must_be_positive_seconds(timeout: object) -> None:
    with pytest.raises(SDKException, match="server_selection_timeout"):
        MongoTokenStore("mongomock://", server_selection_timeout=timeout)


def test_invalid_uri_never_echoes_its_password() -> None:
    with pytest.raises(SDKException) as refused:
        MongoTokenStore("mongodb://admin:hunter2secret@localhost:notaport/")
    assert refused.value.code == "TOKEN_STORE" and "invalid MongoDB URI" in str(refused.value)
    assert "hunter2secret" not in str(refused.value)
    assert "hunter2secret" not in repr(MongoTokenStore("mongodb://admin:hunter2secret@localhost:27017/"))


def test_the_store_closes_only_a_client_it_created(real_client: MongoClient, mongo_uri: str) -> None:
    with MongoTokenStore(client=real_client, database="zms_unused") as store:
        pass
    assert store.client is real_client
    real_client.admin.command("ping")  # still open
    owned = MongoTokenStore(mongo_uri, database="zms_unused")
    owned.close()
    with pytest.raises(SDKException):
        owned.get_tokens()  # a closed client refuses work


def test_a_dead_server_fails_every_call_quickly_and_clearly() -> None:
    dead = MongoTokenStore(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", server_selection_timeout=0.3,
                           failover_wait=0.3)
    token = full(ALICE)
    calls = {
        "find_token": lambda: dead.find_token(oauth(ALICE, client=False)),
        "save_token": lambda: dead.save_token(token),
        "find_token_by_id": lambda: dead.find_token_by_id("abc"),
        "get_tokens": dead.get_tokens,
        "delete_token": lambda: dead.delete_token("abc"),
        "delete_tokens": dead.delete_tokens,
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(SDKException) as failed:
            call()
        assert time.monotonic() - started < 3, name
        assert failed.value.code == "TOKEN_STORE"
        assert "no MongoDB server reachable within 0.3 s" in str(failed.value), name
        assert isinstance(failed.value.cause, Exception)
        for field in SECRET_FIELDS:
            assert values(token)[field] not in str(failed.value)


def test_an_index_that_drifted_is_reported(real_client: MongoClient, database_name: str) -> None:
    collection = real_client[database_name]["oauth_tokens"]
    collection.create_index("user_name", name="user_name_unique")  # not unique: drifted by hand
    try:
        with pytest.raises(SDKException) as drift:
            MongoTokenStore(client=real_client, database=database_name).get_tokens()
        assert "MongoDB refused the operation" in str(drift.value)
        assert "Index" in str(drift.value)  # IndexOptionsConflict / IndexKeySpecsConflict
    finally:
        real_client.drop_database(database_name)


def test_no_secret_reaches_a_log_line_a_message_or_a_repr(
    store: MongoTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice, bob = full(ALICE), full("bob@example.com:700001")
    texts = [repr(store), repr(alice)]
    store.save_token(alice)
    store.save_token(bob)
    store.find_token(oauth(ALICE, client=False))
    store.find_token_by_id(alice.get_id())
    bob.set_user_signature(alice.get_user_signature())
    with pytest.raises(SDKException) as conflict:
        store.save_token(bob)
    texts += exception_texts(conflict.value)
    store.delete_token(alice.get_id())
    # pymongo's own DEBUG command log prints documents: README says keep pymongo above DEBUG.
    texts += [record.getMessage() for record in caplog.records if not record.name.startswith("pymongo")]
    assert any("saved token" in text for text in texts)  # the capture did see our log lines
    for token in (alice, bob):
        for field in SECRET_FIELDS:
            secret = values(token)[field]
            assert all(secret not in text for text in texts), field
