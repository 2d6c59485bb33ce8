"""Bad input gets a clear SDKException, writes nothing and changes nothing, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tokens import full, oauth, snapshot
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from mongo_store import MongoTokenStore
from mongo_store.core.mapping import MAX_LENGTH

ALICE = "alice@example.com:700001"
INJECTION = {"$ne": None}


def with_user(name: Any) -> Any:
    token = full(None)
    token.set_user_signature(UserSignature(name))
    return token


def with_field(setter: str, value: Any) -> Any:
    token = full("mallory@example.com:1")
    getattr(token, setter)(value)
    return token


def _signature(value: Any) -> Any:
    token = full(None)
    token.set_user_signature(value)
    return token


BAD_TOKENS = {
    "not a token": None,
    "a dict": {"user_name": ALICE},
    "a string": "1000.refresh",
    "user name is an operator dict": with_user(INJECTION),
    "user name is a regex dict": with_user({"$regex": ".*"}),
    "user name is a list": with_user([ALICE]),
    "user name is a number": with_user(42),
    "user_signature is a string": _signature(ALICE),
    "id is an operator dict": with_field("set_id", INJECTION),
    "id is a number": with_field("set_id", 7),
    "access token is an operator dict": with_field("set_access_token", {"$exists": True}),
    "refresh token is bytes": with_field("set_refresh_token", b"1000.abc"),
    "grant token is huge": with_field("set_grant_token", "g" * (MAX_LENGTH + 1)),
    "client secret is 1 MB": with_field("set_client_secret", "s" * 1_000_000),
    "user name has a NUL byte": with_user("alice@example.com\x00:1"),
    "access token has a NUL byte": with_field("set_access_token", "abc\x00def"),
    "expires_in is not a number": with_field("set_expires_in", "soon"),
    "expires_in is a float string": with_field("set_expires_in", "1.5e12"),
    "expires_in has leading zeros": with_field("set_expires_in", "0017"),
    "expires_in is a dict": with_field("set_expires_in", {"$gt": 0}),
    "expires_in is beyond year 9999": with_field("set_expires_in", "999999999999999999"),
    "expires_in is a bool": with_field("set_expires_in", True),
}

BAD_IDS = {
    "operator dict": INJECTION,
    "None": None,
    "empty": "",
    "number": 12,
    "list": ["a"],
    "huge": "i" * (MAX_LENGTH + 1),
    "NUL byte": "id\x00",
}


@pytest.fixture
def populated(store: MongoTokenStore) -> MongoTokenStore:
    for user in (ALICE, "bob@example.com:700001", None):
        store.save_token(full(user))
    return store


def assert_refused(store: MongoTokenStore, call: Callable[[], Any]) -> SDKException:
    before = snapshot(store)
    with pytest.raises(SDKException) as refused:
        call()
    assert refused.value.code == "TOKEN_STORE"
    assert refused.value.error_message  # a sentence, not an empty message
    assert snapshot(store) == before
    return refused.value


@pytest.mark.parametrize("name", BAD_TOKENS)
def test_bad_token_is_refused_by_save(populated: MongoTokenStore, name: str) -> None:
    assert_refused(populated, lambda: populated.save_token(BAD_TOKENS[name]))


@pytest.mark.parametrize("name", BAD_TOKENS)
def test_bad_token_is_refused_by_find(populated: MongoTokenStore, name: str) -> None:
    assert_refused(populated, lambda: populated.find_token(BAD_TOKENS[name]))


@pytest.mark.parametrize("name", BAD_IDS)
def test_bad_id_is_refused(populated: MongoTokenStore, name: str) -> None:
    assert_refused(populated, lambda: populated.find_token_by_id(BAD_IDS[name]))
    assert_refused(populated, lambda: populated.delete_token(BAD_IDS[name]))


def test_messages_name_the_problem_not_the_value(populated: MongoTokenStore) -> None:
    huge = assert_refused(populated, lambda: populated.save_token(with_field("set_client_secret", "S" * 5000)))
    assert "client_secret" in str(huge) and "4096" in str(huge) and "SSSS" not in str(huge)
    nul = assert_refused(populated, lambda: populated.save_token(with_field("set_access_token", "XQZ\x00XQZ")))
    assert "access_token" in str(nul) and "NUL" in str(nul) and "XQZ" not in str(nul)
    injection = assert_refused(populated, lambda: populated.find_token(with_user(INJECTION)))
    assert "user_name must be a string, not dict" in str(injection)


def test_an_injected_name_never_returns_another_users_token(populated: MongoTokenStore) -> None:
    """The Kaizen SQL samples return someone else's token for ``x' OR '1'='1``: a plain string here."""
    assert populated.find_token(oauth("x' OR '1'='1", client=False)) is None
    assert populated.find_token(oauth('{"$ne": null}', client=False)) is None
