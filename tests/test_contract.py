"""The TokenStore contract, run on every backend (mongomock, a real MongoDB, a real 3-member replica set)."""

from __future__ import annotations

from collections.abc import Iterator

import mongomock
import pytest
from conftest import BACKENDS, REPLICA_SET, open_backend
from tokens import CLIENT_ID, full, oauth, secret, snapshot, values
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from mongo_store import MongoTokenStore
from mongo_store.core.mapping import SECRET_FIELDS
from mongo_store.core.search import keys as search_keys

ALICE = "alice@example.com:700001"
BOB = "bob@example.com:700001"


@pytest.fixture(params=[*BACKENDS, REPLICA_SET])
def client(request: pytest.FixtureRequest, database_name: str) -> Iterator[object]:
    """The contract runs once more on a real 3-member replica set."""
    yield from open_backend(request, database_name)


@pytest.fixture(params=["reads", "read cache"])
def store(request: pytest.FixtureRequest, client: object, database_name: str) -> Iterator[MongoTokenStore]:
    """The contract holds with every lookup read from MongoDB, and with the read cache on and its
    change stream live (real servers: mongomock has no change streams)."""
    if request.param == "reads":
        yield MongoTokenStore(client=client, database=database_name, read_cache=False)
        return
    if isinstance(client, mongomock.MongoClient):
        pytest.skip("mongomock has no change streams: the cache is off there")
    cached = MongoTokenStore(client=client, database=database_name, read_cache=True)
    cached.prepare()
    watcher = cached.cache.watcher() if cached.cache is not None else None
    assert watcher is not None and watcher.wait_live(30)
    yield cached
    cached.close()


def stored(store: MongoTokenStore) -> int:
    return store.collection.count_documents({})


# -- save and find ------------------------------------------------------------------------------


def test_save_assigns_an_id_and_find_by_user_fills_the_given_object(store: MongoTokenStore) -> None:
    saved = full(ALICE)
    store.save_token(saved)
    assert isinstance(saved.get_id(), str) and 8 <= len(saved.get_id()) <= 32

    probe = oauth(ALICE, client=False)
    found = store.find_token(probe)
    assert found is probe
    assert values(found) == values(saved)


def test_document_layout(store: MongoTokenStore) -> None:
    token = full(ALICE, expires_in="4102444800123")
    store.save_token(token)
    document = store.collection.find_one({"_id": token.get_id()})
    assert document["user_name"] == ALICE
    assert document["expiry_time"].year == 2100 and document["expiry_time"].microsecond == 123000
    assert document["created_at"] is not None and document["updated_at"] is not None
    assert set(document) == {
        "_id", "user_name", "client_id", "client_secret", "refresh_token", "access_token", "grant_token",
        "redirect_url", "api_domain", "expiry_time", "created_at", "updated_at", "last_refreshed_at",
        "refresh_tokens_seen", "search_keys",
    }
    assert sorted(document["search_keys"]) == sorted(search_keys(ALICE))  # lowercase, for search.py
    [digest] = document["refresh_tokens_seen"]  # a short hash, never the refresh token
    assert len(digest) == 16 and digest not in token.get_refresh_token()


def test_the_refresh_tokens_a_person_was_given_are_counted(store: MongoTokenStore) -> None:
    """Zoho keeps 20 refresh tokens per user and client, and the 21st deletes the oldest: each new
    login's refresh token is counted once (refreshes do not count), shown, and warned about."""
    from mongo_store.tools import health, records

    for _ in range(19):
        store.save_token(full(ALICE))  # a new login each time: another refresh token, the same document
    again = store.find_token(oauth(ALICE, client=False))
    again.set_access_token(secret("access"))
    store.save_token(again)  # a refresh: the same refresh token, not counted again
    document = store.collection.find_one({})
    assert len(document["refresh_tokens_seen"]) == 19 and store.collection.count_documents({}) == 1
    shown = records.view(document)
    assert shown["refresh_tokens_issued"] == 19
    assert "19 refresh tokens issued for this user: Zoho keeps 20 per user and client" in shown["health_reason"]
    store.collection.update_one({}, {"$set": {"refresh_failures": 1}, "$push": {"refresh_tokens_seen": "x"}})
    state, why = health.health_of(store.collection.find_one({}))
    assert state == "failing" and "its limit may have evicted this one" in why


@pytest.mark.parametrize("expires_in", ["0", "1", "999", "1767225600123", "253402300799999", "-1000"])
def test_expires_in_round_trips_exactly(store: MongoTokenStore, expires_in: str) -> None:
    store.save_token(full(ALICE, expires_in=expires_in))
    assert store.find_token(oauth(ALICE, client=False)).get_expires_in() == expires_in


def test_empty_values_are_not_stored(store: MongoTokenStore) -> None:
    token = oauth(None, refresh_token=secret("refresh"), redirect_url="", api_domain=None)
    token.set_access_token("")
    store.save_token(token)
    document = store.collection.find_one({})
    assert "access_token" not in document and "redirect_url" not in document
    assert "api_domain" not in document and "user_name" not in document and "expiry_time" not in document


def test_many_tokens_without_user_name_coexist(store: MongoTokenStore) -> None:
    for _ in range(3):
        store.save_token(oauth(None, refresh_token=secret("refresh")))
    assert stored(store) == 3
    assert store.collection.count_documents({"user_name": {"$exists": True}}) == 0


def test_find_does_not_overwrite_values_the_token_has(store: MongoTokenStore) -> None:
    store.save_token(full(ALICE))
    probe = oauth(ALICE, client=False, access_token="in-memory")
    store.find_token(probe)
    assert probe.get_access_token() == "in-memory"
    assert probe.get_refresh_token() is not None


def test_find_by_access_token_only_without_client_credentials(store: MongoTokenStore) -> None:
    saved = full(None)
    store.save_token(saved)
    assert store.find_token(oauth(None, client=False, access_token=saved.get_access_token())).get_id() == saved.get_id()
    # With client credentials FileStore matches by grant/refresh, not access: so do we.
    assert store.find_token(oauth(None, access_token=saved.get_access_token())) is None


@pytest.mark.parametrize("by", ["refresh_token", "grant_token"])
def test_find_by_refresh_or_grant_needs_both_client_credentials(store: MongoTokenStore, by: str) -> None:
    saved = full(None)
    store.save_token(saved)
    value = values(saved)[by]
    assert store.find_token(oauth(None, **{by: value})).get_id() == saved.get_id()
    only_id = oauth(None, client=False, client_id=CLIENT_ID, access_token="x", **{by: value})
    assert store.find_token(only_id) is None


def test_either_grant_or_refresh_matching_counts(store: MongoTokenStore) -> None:
    saved = full(None)
    store.save_token(saved)
    stale_grant = oauth(None, grant_token=secret("grant"), refresh_token=saved.get_refresh_token())
    assert store.find_token(stale_grant).get_id() == saved.get_id()
    other_refresh = oauth(None, grant_token=saved.get_grant_token(), refresh_token=secret("refresh"))
    assert store.find_token(other_refresh).get_id() == saved.get_id()


def test_id_matches_first_and_revoke_style_lookup_fills_everything(store: MongoTokenStore) -> None:
    saved = full(ALICE)
    store.save_token(saved)
    store.save_token(full(BOB))
    probe = OAuthToken(id=saved.get_id())  # what OAuthToken.revoke() passes
    assert store.find_token(probe) is probe
    assert values(probe) == values(saved)
    # An id wins over a user name that belongs to another token.
    mixed = oauth(BOB, client=False, id=saved.get_id())
    assert store.find_token(mixed).get_refresh_token() == saved.get_refresh_token()


def test_misses_return_none(store: MongoTokenStore) -> None:
    store.save_token(full(ALICE))
    assert store.find_token(oauth(BOB, client=False)) is None
    assert store.find_token(OAuthToken(id="no-such-id")) is None
    assert store.find_token(oauth(None, refresh_token=secret("refresh"))) is None
    # Nothing to match by (client id alone): FileStore matches nothing, and so do we.
    assert store.find_token(oauth(None, client=False, access_token="a", client_id="c")) is None


def test_an_unknown_id_raises_as_in_the_sdks_own_stores(store: MongoTokenStore) -> None:
    """FileStore and DBStore raise TOKEN_STORE for an id they do not hold: with None, the SDK would
    go on to exchange a grant token it does not have."""
    store.save_token(full(ALICE))
    with pytest.raises(SDKException) as unknown:
        store.find_token_by_id("no-such-id")
    assert unknown.value.code == "TOKEN_STORE"
    assert "no stored token has id 'no-such-id'" in str(unknown.value) and "deleted" in str(unknown.value)


def test_second_save_updates_the_same_document(store: MongoTokenStore) -> None:
    first = full(ALICE)
    store.save_token(first)
    created = store.collection.find_one({})["created_at"]
    again = oauth(ALICE, refresh_token=first.get_refresh_token(), access_token="new-access", expires_in="4102448400000")
    store.save_token(again)
    assert stored(store) == 1
    assert again.get_id() == first.get_id()
    assert again.get_grant_token() == first.get_grant_token()  # stored values come back onto the token
    document = store.collection.find_one({})
    assert document["access_token"] == "new-access"
    assert document["created_at"] == created and document["updated_at"] >= created


def test_save_by_id_sets_the_user_name_on_the_same_document(store: MongoTokenStore) -> None:
    token = oauth(None, refresh_token=secret("refresh"))
    store.save_token(token)
    token.set_user_signature(UserSignature(ALICE))  # the SDK names the user just before saving
    store.save_token(token)
    assert stored(store) == 1
    assert store.collection.find_one({})["user_name"] == ALICE


def test_save_by_refresh_token_converges_on_one_document(store: MongoTokenStore) -> None:
    refresh = secret("refresh")
    store.save_token(oauth(None, refresh_token=refresh, access_token="a1"))
    later = oauth(None, refresh_token=refresh, access_token="a2")
    store.save_token(later)
    assert stored(store) == 1
    assert store.collection.find_one({})["access_token"] == "a2"


def test_token_with_nothing_to_match_by_is_inserted_under_a_new_id(store: MongoTokenStore) -> None:
    token = oauth(None, client=False, access_token="lonely", client_id="c")
    store.save_token(token)
    assert store.find_token_by_id(token.get_id()).get_access_token() == "lonely"


def test_token_without_token_values_only_updates(store: MongoTokenStore) -> None:
    with pytest.raises(SDKException) as refused:
        store.save_token(oauth(ALICE, client=False))
    assert refused.value.code == "TOKEN_STORE"
    assert stored(store) == 0
    store.save_token(full(ALICE))
    update = oauth(ALICE, client=False, api_domain="https://www.zohoapis.eu")
    store.save_token(update)
    assert store.collection.find_one({})["api_domain"] == "https://www.zohoapis.eu"
    assert update.get_refresh_token() is not None


def test_user_name_belonging_to_another_token_is_a_clear_conflict(store: MongoTokenStore) -> None:
    alice, bob = full(ALICE), full(BOB)
    store.save_token(alice)
    store.save_token(bob)
    before = snapshot(store)
    bob.set_user_signature(UserSignature(ALICE))
    with pytest.raises(SDKException) as conflict:
        store.save_token(bob)
    assert conflict.value.code == "TOKEN_STORE"
    assert f"another stored token ({alice.get_id()}) already has this user_name" in str(conflict.value)
    for token in (alice, bob):
        for field in SECRET_FIELDS:
            assert values(token)[field] not in str(conflict.value)
    assert snapshot(store) == before


# -- by id, listing, deleting --------------------------------------------------------------------


def test_find_token_by_id_builds_a_complete_token(store: MongoTokenStore) -> None:
    saved = full(ALICE)
    store.save_token(saved)
    found = store.find_token_by_id(saved.get_id())
    assert isinstance(found, OAuthToken) and found is not saved
    assert values(found) == values(saved)
    assert found._OAuthToken__find_user is True  # get_token() reads it


def test_get_tokens_and_delete(store: MongoTokenStore) -> None:
    tokens = [full(ALICE), full(BOB), full(None)]
    for token in tokens:
        store.save_token(token)
    listed = {token.get_id(): values(token) for token in store.get_tokens()}
    assert listed == {token.get_id(): values(token) for token in tokens}

    store.delete_token(tokens[0].get_id())
    with pytest.raises(SDKException, match="no stored token has id"):
        store.find_token_by_id(tokens[0].get_id())
    assert stored(store) == 2
    with pytest.raises(SDKException) as unknown:
        store.delete_token(tokens[0].get_id())
    assert unknown.value.code == "TOKEN_STORE" and "no stored token has id" in str(unknown.value)


def test_delete_tokens_keeps_the_indexes(store: MongoTokenStore) -> None:
    store.save_token(full(ALICE))
    indexes = store.collection.index_information()
    store.delete_tokens()
    assert stored(store) == 0
    assert store.collection.index_information() == indexes
    assert store.get_tokens() == []


def test_indexes_are_created_once_and_idempotently(client: object, database_name: str) -> None:
    MongoTokenStore(client=client, database=database_name).get_tokens()
    store = MongoTokenStore(client=client, database=database_name)
    store.get_tokens()
    info = store.collection.index_information()
    assert info["user_name_unique"]["unique"] and info["user_name_unique"]["sparse"]
    assert info["refresh_token_unique"]["unique"] and info["refresh_token_unique"]["sparse"]
    assert info["access_token"]["sparse"] and info["grant_token"]["sparse"]
    assert "partialFilterExpression" not in info["user_name_unique"]


def test_read_only_mode_creates_no_index(client: object, database_name: str) -> None:
    store = MongoTokenStore(client=client, database=database_name, create_indexes=False)
    store.collection.insert_one({"_id": "x", "access_token": "a"})
    assert store.find_token_by_id("x").get_access_token() == "a"
    assert set(store.collection.index_information()) == {"_id_"}


def test_a_fresh_store_may_start_with_a_lookup(client: object, database_name: str) -> None:
    """A lookup creates the indexes when a primary is known; without one (still discovering the
    set, or in an election) it goes on, and the first save creates them."""
    store = MongoTokenStore(client=client, database=database_name)
    assert store.find_token(oauth(ALICE, client=False)) is None
    store.save_token(full(ALICE))
    assert "user_name_unique" in store.collection.index_information()
