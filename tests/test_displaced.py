"""The refresh token a new login replaced (``mongo_store/core/displaced.py``), at the store's level:
what a save hands over and what it does not, the entries kept for cleanup (sealed with encryption
on), and ``retry_displaced``. The SDK's own logins, revoked at the fake Zoho, are in
tests/test_lifecycle.py (the README's recipe)."""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import Any

import pytest
from fake_zoho import ZohoAccounts
from tokens import CLIENT_ID, full, oauth, secret

from mongo_store import MongoTokenStore
from mongo_store.core import displaced
from mongo_store.core.crypto import KEY_ID_FIELD
from mongo_store.core.displaced import pending, retry_displaced
from mongo_store.core.rotation import rotate
from mongo_store.core.zoho_http import zoho_accounts_url

KEY, NEW_KEY = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
SECRET = secret("clientsecret")


def replace(store: MongoTokenStore, user: str = "alice@example.com:1", **kwargs: Any) -> tuple[str, str]:
    """A token, then a new login of the same person (by user name, another refresh token): (the
    replaced refresh token, the new one)."""
    first = full(user, api_domain="https://www.zohoapis.com", **kwargs)
    store.save_token(first)
    second = full(user, api_domain="https://www.zohoapis.com", **kwargs)
    store.save_token(second)
    assert second.get_id() == first.get_id()
    return first.get_refresh_token(), second.get_refresh_token()


def test_a_new_login_keeps_what_it_replaced_for_cleanup_and_sends_nothing(store: MongoTokenStore) -> None:
    """A save that is no SDK login names no accounts server: the entry waits, nothing is sent."""
    old, _ = replace(store)
    assert store.wait_for_retirements(5)
    [entry] = store.displaced.find({})
    assert entry["refresh_token"] == old and entry["accounts_url"] is None and entry["attempts"] == 0
    assert entry["user_name"] == "alice@example.com:1" and entry["token_id"] == store.collection.find_one({})["_id"]
    assert pending(store) == 1 and pending(store, entry["token_id"]) == 1
    assert [event["event"] for event in store.events.find({})] == ["refreshed", "refreshed"]  # nothing tried
    # The same refresh token again (a retried save, a reload): one entry, no second one.
    store.save_token(full("alice@example.com:1", refresh_token=old))
    store.save_token(full("alice@example.com:1", refresh_token=secret("refresh")))
    assert pending(store) == 2  # the new one it replaced; the old one once


@pytest.mark.parametrize("save", ["refresh by id", "same refresh token", "restore", "first login", "off"])
def test_what_is_no_replacement_keeps_nothing(client: Any, database_name: str, save: str) -> None:
    store = MongoTokenStore(client=client, database=database_name, retire_replaced=save != "off")
    token = full("alice@example.com:1")
    store.save_token(token)
    if save == "refresh by id":  # the SDK's save after a refresh: the same authorization
        token.set_access_token(secret("access"))
        store.save_token(token)
        stale = store.find_token_by_id(token.get_id())
        stale.set_refresh_token(secret("refresh"))  # a late refresh of a replaced login: it loses
        store.save_token(stale)
    elif save == "same refresh token":
        store.save_token(full("alice@example.com:1", refresh_token=token.get_refresh_token()))
    elif save == "restore":  # an import puts a token back: what it replaces is the importer's business
        restored = full("alice@example.com:1")
        restored.set_id(token.get_id())
        store.restore_token(restored)
    elif save == "off":
        store.save_token(full("alice@example.com:1"))
    else:
        store.save_token(full("bob@example.com:1"))
    assert store.displaced.count_documents({}) == 0


def test_retry_sends_it_where_the_operator_says_and_records_the_outcome(real_store: MongoTokenStore) -> None:
    with ZohoAccounts(CLIENT_ID, SECRET) as zoho:
        old = zoho.authorize("alice@example.com", CLIENT_ID, SECRET)
        first = oauth("alice@example.com:1", client_secret=SECRET, refresh_token=old, api_domain=zoho.url)
        real_store.save_token(first)
        real_store.save_token(oauth("alice@example.com:1", client_secret=SECRET, api_domain=zoho.url,
                                    refresh_token=zoho.authorize("alice@example.com", CLIENT_ID, SECRET)))
        [nowhere] = retry_displaced(real_store)  # no accounts server known: not sent anywhere
        assert nowhere.result == "not revoked: no accounts server is known for it (pass the accounts URL)"
        assert zoho.revocations == [] and pending(real_store) == 1
        [done] = retry_displaced(real_store, f"{zoho.url}/oauth/v2/token", who="cron")
        assert done.done and done.result == f"revoked at 127.0.0.1:{zoho.port}" and zoho.revocations == [(old, "revoked")]
        assert pending(real_store) == 0
        [event] = real_store.events.find({"event": "revoked"})
        assert event["who"] == "cron" and event["detail"] == f"the refresh token a new login replaced: revoked at " \
                                                             f"127.0.0.1:{zoho.port}"


def test_an_entry_zoho_no_longer_knows_is_done(real_store: MongoTokenStore) -> None:
    with ZohoAccounts(CLIENT_ID, SECRET) as zoho:
        replace(real_store)  # refresh tokens the fake never issued: it answers invalid_token
        [done] = retry_displaced(real_store, f"{zoho.url}/oauth/v2/token")
        assert done.done and done.result.startswith("already revoked (") and "invalid_token" in done.result
        assert pending(real_store) == 0


def test_with_encryption_an_entry_is_sealed_and_bound_to_its_accounts_server(real_client: Any, database_name: str) -> None:
    store = MongoTokenStore(client=real_client, database=database_name, encryption_key=KEY)
    try:
        old, _ = replace(store)
        [entry] = store.displaced.find({})
        assert entry["refresh_token"].startswith("zms3:") and entry[KEY_ID_FIELD]
        assert old not in repr(entry)
        assert displaced.open_entry(store, entry) == old
        # Edited to send it elsewhere: it cannot be opened, so it is not sent.
        store.displaced.update_one({"_id": entry["_id"]}, {"$set": {"accounts_url": "http://127.0.0.1:9/oauth/v2/token"}})
        [refused] = retry_displaced(store)
        assert refused.result.startswith("not revoked: ") and "failed authentication" in refused.result
        store.displaced.update_one({"_id": entry["_id"]}, {"$set": {"accounts_url": None}})
        without_key = MongoTokenStore(client=real_client, database=database_name)
        [locked] = retry_displaced(without_key)
        assert "is encrypted: configure its key" in locked.result
        # rotate-key seals it with the new key; the old key is no longer needed to open it.
        rotated = MongoTokenStore(client=real_client, database=database_name, encryption_key=NEW_KEY,
                                  old_encryption_keys=[KEY])
        assert rotate(rotated).displaced == 1
        only_new = MongoTokenStore(client=real_client, database=database_name, encryption_key=NEW_KEY)
        assert displaced.open_entry(only_new, only_new.displaced.find_one({})) == old
    finally:
        real_client.drop_database(database_name)


def test_the_accounts_server_of_a_data_center_is_zohos_own_only() -> None:
    assert zoho_accounts_url("https://www.zohoapis.eu") == "https://accounts.zoho.eu/oauth/v2/token"
    assert zoho_accounts_url("https://www.zohoapis.com") == "https://accounts.zoho.com/oauth/v2/token"
    for domain in ("https://www.zohoapis.eu.attacker.example", "http://127.0.0.1:8080", "eu", None, ""):
        assert zoho_accounts_url(domain) is None


def test_close_lets_a_revoke_in_flight_end_and_keeps_its_event(real_client: Any, database_name: str) -> None:
    """A store closed while it revokes a replaced refresh token at Zoho: the revoke ends first
    (within ``failover_wait``) and its event is written before close() returns (it used to be
    written, if at all, by a writer started again after the close)."""
    with ZohoAccounts(CLIENT_ID, SECRET) as zoho:
        store = MongoTokenStore(client=real_client, database=database_name)
        old = zoho.authorize("alice@example.com", CLIENT_ID, SECRET)
        token = oauth("alice@example.com:1", client_secret=SECRET, refresh_token=old, api_domain=zoho.url)
        store.save_token(token)
        answer, asked = zoho.revoke_response, threading.Event()

        def slow_revoke(form: dict[str, str]) -> Any:
            asked.set()
            time.sleep(0.5)  # Zoho takes its time: the application shuts down meanwhile
            return answer(form)

        zoho.revoke_response = slow_revoke  # type: ignore[method-assign]
        login = oauth("alice@example.com:1", client_secret=SECRET, api_domain=zoho.url,
                      refresh_token=zoho.authorize("alice@example.com", CLIENT_ID, SECRET))
        setattr(login, displaced.EXCHANGED_AT, f"{zoho.url}/oauth/v2/token")  # as the SDK's grant exchange marks it
        store.save_token(login)  # a new login: what it replaced is revoked in the background
        assert asked.wait(5)
        store.close()
        assert zoho.revocations == [(old, "revoked")] and pending(store) == 0
        assert [event["event"] for event in store.events.find({"event": "revoked"})] == ["revoked"]
