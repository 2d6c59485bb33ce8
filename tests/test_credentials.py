"""A server with access control: bad credentials and missing privileges are clear errors that
quote neither the password nor a token (MongoDB's own authorization errors quote the command)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from pymongo import MongoClient
from tokens import exception_texts, full, values
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore
from mongo_store.core.mapping import SECRET_FIELDS


@pytest.fixture
def root(secured_mongod: Any) -> Any:
    client = MongoClient(secured_mongod.uri("root"))
    yield client
    client.drop_database("zoho")
    client.close()


def test_a_wrong_password_is_a_clear_error_without_the_password(secured_mongod: Any) -> None:
    store = MongoTokenStore(secured_mongod.uri("root", "not-the-Pa55word"), server_selection_timeout=3)
    started = time.monotonic()
    with pytest.raises(SDKException) as refused:
        store.find_token_by_id("any")
    assert time.monotonic() - started < 3
    assert "MongoDB rejected the credentials (AuthenticationFailed)" in str(refused.value)
    assert all("not-the-Pa55word" not in text for text in exception_texts(refused.value))


def test_a_read_only_user_is_told_what_it_lacks(secured_mongod: Any) -> None:
    with pytest.raises(SDKException, match=r"may not do this \(Unauthorized\).*create_indexes=False"):
        MongoTokenStore(secured_mongod.uri("reader")).get_tokens()  # it cannot create the indexes


def test_a_read_only_user_reads_and_a_refused_save_quotes_no_secret(
    secured_mongod: Any, root: MongoClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mongo_store")
    alice = full("alice@example.com:1")
    MongoTokenStore(client=root).save_token(alice)
    before = list(root.zoho.oauth_tokens.find())

    reader = MongoTokenStore(secured_mongod.uri("reader"), create_indexes=False)
    assert values(reader.find_token_by_id(alice.get_id())) == values(alice)
    bob = full("bob@example.com:1")
    with pytest.raises(SDKException) as refused:
        reader.save_token(bob)  # MongoDB's Unauthorized message quotes the whole findAndModify

    assert "could not save the token: the MongoDB user may not do this (Unauthorized)" in str(refused.value)
    texts = exception_texts(refused.value) + [record.getMessage() for record in caplog.records]
    for field in SECRET_FIELDS:
        assert all(values(bob)[field] not in text for text in texts), field
    assert list(root.zoho.oauth_tokens.find()) == before


def test_credentials_apart_from_the_uri_need_no_percent_encoding(secured_mongod: Any, root: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The compose dashboard's way: a least-privilege user whose password has / @ : % in it."""
    password = "sl/ash@at:colon%pct"
    root.admin.command("createUser", "dashboard", pwd=password, roles=[{"role": "readWrite", "db": "zoho"}])
    try:
        monkeypatch.setenv("MONGODB_USERNAME", "dashboard")
        monkeypatch.setenv("MONGODB_PASSWORD", password)
        store = MongoTokenStore(f"mongodb://127.0.0.1:{secured_mongod.server.port}/?replicaSet=rs0&authSource=admin",
                                server_selection_timeout=3)
        store.save_token(full("alice@example.com:1"))
        assert len(store.get_tokens()) == 1
        store.close()
    finally:
        root.admin.command("dropUser", "dashboard")
