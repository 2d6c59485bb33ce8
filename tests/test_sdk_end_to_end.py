"""The real SDK, talking to a fake Zoho on 127.0.0.1, keeping its tokens in MongoTokenStore."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fake_zoho import USER_NAME, FakeZoho
from tokens import CLIENT_ID, secret
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.org.org_operations import OrgOperations
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature
from zohocrmsdk.src.com.zoho.crm.api.util.constants import Constants

from mongo_store import MongoTokenStore

# zohocrmsdk5-0 never looks the user up: a token is named only when it carries a user signature.
LOOKS_UP_USER = Constants.API_VERSION != "v5"


def initialize(zoho: FakeZoho, token: OAuthToken, store: MongoTokenStore, resources: Path) -> None:
    config = SDKConfig(auto_refresh_fields=False, pick_list_validation=False)
    # Releases before zohocrmsdk8-0 3.0.0 (and the 7-0, 6-0 lines) set the per-thread initializer only
    # after generating the token, so a second initialize in one thread would use the previous store
    # and server: reset it, so the test exercises the store, not that SDK bug.
    Initializer.LOCAL.init = None
    Initializer.initialize(zoho.environment, token, store=store, sdk_config=config, resource_path=str(resources))


def counts(grant: int = 0, refresh: int = 0, org: int = 0) -> Counter[str]:
    """The requests Zoho should have seen: the user lookup (users + org) happens on the lines that do it."""
    looked_up = 1 if LOOKS_UP_USER else 0
    return Counter(grant=grant, refresh=refresh, users=looked_up, org=org + looked_up)


def call_api() -> int:
    """One real SDK API call; every call asks the store for the token first."""
    return OrgOperations().get_organization().get_status_code()


def test_the_sdk_lifecycle_on_the_store(store: MongoTokenStore, tmp_path: Path) -> None:
    client_secret, grant, refresh = secret("clientsecret"), secret("grant"), secret("refresh")
    with FakeZoho(grant, refresh, CLIENT_ID, client_secret) as zoho:
        # First run: the grant token is exchanged once and one document is saved, named by the SDK.
        first = OAuthToken(client_id=CLIENT_ID, client_secret=client_secret, grant_token=grant,
                           redirect_url="https://app.example.com/oauth",
                           user_signature=None if LOOKS_UP_USER else UserSignature(USER_NAME))
        initialize(zoho, first, store, tmp_path)
        assert zoho.requests == counts(grant=1)
        [document] = store.collection.find({})
        assert document["user_name"] == USER_NAME
        assert document["refresh_token"] == refresh and document["grant_token"] == grant
        assert document["api_domain"] == zoho.url
        token_id, first_access = document["_id"], document["access_token"]
        assert first.get_id() == token_id

        # A second Initializer for the same user finds the stored token: no new exchange.
        second = OAuthToken(user_signature=UserSignature(USER_NAME))
        initialize(zoho, second, store, tmp_path)
        assert call_api() == 200
        assert zoho.requests == counts(grant=1, org=1)
        assert zoho.seen_authorization[-1] == f"Zoho-oauthtoken {first_access}"

        # The stored access token expires: the next call refreshes it onto the same document.
        store.collection.update_one({"_id": token_id}, {"$set": {"expiry_time": datetime.now(timezone.utc)}})
        assert call_api() == 200
        assert zoho.requests == counts(grant=1, refresh=1, org=2)
        [document] = store.collection.find({})
        assert document["_id"] == token_id and document["user_name"] == USER_NAME
        assert document["access_token"] != first_access
        assert zoho.seen_authorization[-1] == f"Zoho-oauthtoken {document['access_token']}"
        assert document["expiry_time"] > datetime.now(timezone.utc).replace(tzinfo=None)

        # A token known only by its id works, with the refreshed access token and no exchange.
        by_id = OAuthToken(id=token_id)
        initialize(zoho, by_id, store, tmp_path)
        assert call_api() == 200
        assert zoho.requests == counts(grant=1, refresh=1, org=3)
        assert zoho.seen_authorization[-1] == f"Zoho-oauthtoken {document['access_token']}"

        # remove() deletes it; a second remove() reports that nothing was there.
        assert by_id.remove() is True
        assert store.collection.count_documents({}) == 0
        assert by_id.remove() is False


def test_a_refresh_zoho_refuses_is_recorded_at_once_and_backs_off(store: MongoTokenStore, tmp_path: Path) -> None:
    """The real SDK, a refresh token Zoho no longer honours: the store sees the SDK's refresh fail
    (on every SDK line), records it at once with its reason, and the caller gets RefreshFailing
    (reason "revoked"), as every later caller does. A revoked token waits the longest window at
    once (only a new login helps, and it ends the back-off): within it the next attempt fails
    without asking Zoho; after it one attempt goes through."""
    import time

    import pytest

    from mongo_store.core.lease import Backoff, RefreshFailing
    from mongo_store.tools import health

    store.backoff = Backoff(0.4, 0.8)
    client_secret = secret("clientsecret")
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, client_secret) as zoho:
        token = OAuthToken(client_id=CLIENT_ID, client_secret=client_secret, refresh_token=secret("refused"),
                           access_token=secret("access"), user_signature=UserSignature(USER_NAME))
        token.set_expires_in("1000")  # long lapsed
        token.set_api_domain(zoho.url)
        store.save_token(token)
        with pytest.raises(RefreshFailing) as first:
            initialize(zoho, OAuthToken(id=token.get_id()), store, tmp_path)  # the SDK's refresh is refused
        assert first.value.reason == "revoked" and "invalid_code" in str(first.value)
        assert zoho.requests["refused refresh"] == 1
        document = store.collection.find_one({})
        assert document["refresh_failures"] == 1 and "refresh_lease" not in document
        assert document["refresh_failure_reason"] == "revoked" and first.value.retry_at == document["refresh_retry_at"]
        assert document["refresh_retry_at"] - document["last_refresh_failure_at"] == timedelta(seconds=0.8)
        assert health.health_of(document)[0] == "failing"
        with pytest.raises(RefreshFailing) as again:  # inside the window: at once, and Zoho is not asked
            initialize(zoho, OAuthToken(id=token.get_id()), store, tmp_path)
        assert again.value.reason == "revoked" and zoho.requests["refused refresh"] == 1
        time.sleep(0.45)
        with pytest.raises(RefreshFailing):  # 0.45 s: a throttle's first window, not a revoked token's
            initialize(zoho, OAuthToken(id=token.get_id()), store, tmp_path)
        assert zoho.requests["refused refresh"] == 1
        time.sleep(0.4)
        with pytest.raises(RefreshFailing):  # the window has passed: one attempt goes to Zoho
            initialize(zoho, OAuthToken(id=token.get_id()), store, tmp_path)
        assert zoho.requests["refused refresh"] == 2
        document = store.collection.find_one({})
        assert document["refresh_failures"] == 2
        assert document["refresh_retry_at"] - document["last_refresh_failure_at"] == timedelta(seconds=0.8)


REASONS = {  # how Zoho fails the refresh -> (the reason, what the message names)
    "revoked": ("revoked", "invalid_code"),
    "throttled": ("throttled", "Access Denied"),
    "5xx": ("unreachable", "JSONDecodeError"),
    "down": ("unreachable", "ConnectionError"),
    "wrong client": ("refused", "invalid_client"),
}


def test_each_reason_a_refresh_fails_for_is_the_same_in_every_process(store: MongoTokenStore, tmp_path: Path) -> None:
    """The real SDK against the kit's fake Zoho, refused each way Zoho refuses: the caller whose
    refresh failed and a second store (another process) get RefreshFailing with the same reason,
    the window that reason gets, and no secret in the message."""
    import pytest

    from mongo_store.core.lease import Backoff, RefreshFailing
    from mongo_store.core.mapping import REASON_FIELD

    other = MongoTokenStore(client=store.client, database=store.collection.database.name)
    for store_ in (store, other):
        store_.backoff = Backoff(30.0, 120.0)
    client_secret = secret("clientsecret")
    for trouble, (reason, named) in REASONS.items():
        with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, client_secret) as zoho:
            user = f"{trouble.replace(' ', '-')}@example.com:1"
            token = OAuthToken(client_id=CLIENT_ID, client_secret=client_secret, refresh_token=zoho.refresh_token,
                               access_token=zoho.new_access_token(), user_signature=UserSignature(user))
            token.set_expires_in("1000")  # lapsed: the next call refreshes
            token.set_api_domain(zoho.url)
            store.save_token(token)
            if trouble == "revoked":
                zoho.revoke(zoho.refresh_token)
            elif trouble == "throttled":
                zoho.fail_next("refresh", error="Access Denied", times=None)
            elif trouble == "5xx":
                zoho.trouble["token"] = 503
            elif trouble == "down":
                zoho.stop()  # nothing listens on its port any more
            else:
                zoho.fail_next("refresh", error="invalid_client", times=None)
            with pytest.raises(RefreshFailing) as first:
                initialize(zoho, OAuthToken(id=token.get_id()), store, tmp_path)
            with pytest.raises(RefreshFailing) as second:  # another process: at once, from what was recorded
                initialize(zoho, OAuthToken(id=token.get_id()), other, tmp_path)
            assert (first.value.reason, second.value.reason) == (reason, reason), trouble
            assert named in str(first.value) and first.value.code == "TOKEN_STORE", str(first.value)
            document = store.collection.find_one({"_id": token.get_id()})
            assert document[REASON_FIELD] == reason
            window = document["refresh_retry_at"] - document["last_refresh_failure_at"]
            assert window == timedelta(seconds=120.0 if reason in ("revoked", "refused") else 30.0), trouble
            assert second.value.retry_at == document["refresh_retry_at"]
            for value in (client_secret, zoho.refresh_token, token.get_access_token()):
                assert value not in str(first.value) + str(second.value)
            attempts = sum(count for name, count in zoho.counts.items() if "refresh" in name or name.startswith("token"))
            assert attempts == (0 if trouble == "down" else 1), (trouble, zoho.requests)  # one attempt, however many ask
