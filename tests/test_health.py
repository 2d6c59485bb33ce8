"""The health model: each state arises from real store use, and the server's filters, the counts
and the per-document rule agree, on mongomock and on a real MongoDB."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from tokens import full, oauth, secret

from mongo_store import MongoTokenStore
from mongo_store.core.clock import utcnow
from mongo_store.core.indexes import ensure_indexes
from mongo_store.core.lease import RefreshFailing
from mongo_store.core.mapping import FAILED_AT_FIELD, FAILURES_FIELD, LEASE_FIELD, REFRESHED_FIELD, RETRY_FIELD, STARTED_FIELD
from mongo_store.tools import health as rules
from mongo_store.tools import queries, stats


def epoch_ms(when: datetime) -> str:
    return str(int(when.replace(tzinfo=timezone.utc).timestamp() * 1000))


def health(store: MongoTokenStore, token_id: str, now: datetime | None = None) -> str:
    """The state by the per-document rule, after checking the server's filter says the same."""
    now = now or utcnow()
    document = store.collection.find_one({"_id": token_id})
    state, _ = rules.health_of(document, now)
    matching = [name for name in rules.HEALTH
                if store.collection.find_one({"$and": [{"_id": token_id}, rules.health_filter(name, now)]})]
    assert matching == [state], (state, matching)
    return state


def test_a_refresh_that_fails_through_the_lease_is_failing_until_the_next_save(client: Any, database_name: str) -> None:
    # Back-off windows shorter than the lease: each lapse is over its window, so the next worker takes over.
    store = MongoTokenStore(client=client, database=database_name, refresh_lease=0.3, refresh_wait=0.05,
                            refresh_backoff=0.1, refresh_backoff_max=0.2)
    lapsed = epoch_ms(utcnow() - timedelta(minutes=5))
    token = full("alice@example.com:1", expires_in=lapsed)
    store.save_token(token)
    token_id = token.get_id()
    assert health(store, token_id) == "idle"  # lapsed, with a refresh token: the SDK refreshes on next use

    # A worker sets out to refresh: it holds the lease, and the start is recorded.
    store.find_token(oauth("alice@example.com:1", client=False))
    document = store.collection.find_one({"_id": token_id})
    assert document[STARTED_FIELD] <= utcnow() < document[LEASE_FIELD]
    assert health(store, token_id) == "idle"  # refreshing: not failing yet

    # Its refresh fails (Zoho refused, or the worker died): no save, and the lease lapses.
    time.sleep(0.4)
    assert health(store, token_id) == "failing"
    assert "lapsed" in rules.health_of(store.collection.find_one({"_id": token_id}))[1]

    # The next worker takes the lease over, and counts the failed refresh in the same update.
    store.find_token(oauth("alice@example.com:1", client=False))
    document = store.collection.find_one({"_id": token_id})
    assert document[FAILURES_FIELD] == 1 and document[FAILED_AT_FIELD] <= document[STARTED_FIELD]
    assert health(store, token_id) == "failing"
    _, why = rules.health_of(document)
    assert "1 failed refresh(es)" in why
    time.sleep(0.4)
    store.find_token(oauth("alice@example.com:1", client=False))  # lapsed again: counted again, once
    assert store.collection.find_one({"_id": token_id})[FAILURES_FIELD] == 2

    # A refresh that works ends in a save: the failures are cleared, and the refresh recorded.
    refreshed = full("alice@example.com:1", expires_in=epoch_ms(utcnow() + timedelta(hours=1)))
    store.save_token(refreshed)
    document = store.collection.find_one({"_id": token_id})
    assert FAILURES_FIELD not in document and LEASE_FIELD not in document
    assert abs(document[REFRESHED_FIELD] - utcnow()) < timedelta(seconds=5)
    assert health(store, token_id) == "healthy"


def test_a_lapsed_lease_opens_a_back_off_window_from_the_attempts_start(client: Any, database_name: str) -> None:
    """A refresh that never ends (its holder died, or Zoho never answers) is tried once per window
    too: when its lease lapses inside the window, the next caller records it and is refused."""
    store = MongoTokenStore(client=client, database=database_name, refresh_lease=0.3, refresh_wait=0.05)
    token = full("alice@example.com:1", expires_in=epoch_ms(utcnow() - timedelta(minutes=5)))
    store.save_token(token)
    store.find_token_by_id(token.get_id())  # takes the lease, and never saves
    started = store.collection.find_one({})[STARTED_FIELD]
    time.sleep(0.4)
    with pytest.raises(RefreshFailing, match="the next attempt is at"):
        store.find_token_by_id(token.get_id())
    document = store.collection.find_one({})
    assert document[FAILURES_FIELD] == 1 and LEASE_FIELD not in document
    assert document[RETRY_FIELD] - started == timedelta(seconds=30)  # the window of that attempt, from its start
    with pytest.raises(RefreshFailing):  # and so for everyone, with one find each, until it ends
        store.find_token(oauth("alice@example.com:1", client=False))
    assert store.collection.find_one({})[FAILURES_FIELD] == 1  # counted once


def test_a_grant_only_token_ages_into_unusable(store: MongoTokenStore) -> None:
    token = oauth(None, grant_token=secret("grant"), redirect_url="https://app.example.com/oauth")
    store.save_token(token)
    assert health(store, token.get_id()) == "idle"  # not exchanged yet: the SDK will on first use
    later = utcnow() + timedelta(minutes=11)
    assert health(store, token.get_id(), later) == "unusable"
    assert "never exchanged" in rules.health_of(store.collection.find_one({}), later)[1]


def test_an_access_only_token_is_unusable_once_it_lapses(store: MongoTokenStore) -> None:
    token = oauth(None, client=False, access_token=secret("access"), expires_in=epoch_ms(utcnow() + timedelta(minutes=30)))
    store.save_token(token)
    assert health(store, token.get_id()) == "healthy"
    assert health(store, token.get_id(), utcnow() + timedelta(hours=1)) == "unusable"


def test_a_save_without_an_access_token_leaves_last_refreshed_alone(store: MongoTokenStore) -> None:
    token = oauth(None, refresh_token=secret("refresh"))
    store.save_token(token)
    assert REFRESHED_FIELD not in store.collection.find_one({})
    assert health(store, token.get_id()) == "idle"


def varied_documents(now: datetime) -> list[dict[str, Any]]:
    """Every combination the rules distinguish, written directly (as old versions or hand edits leave them)."""
    documents = []
    expiries = {"valid": now + timedelta(minutes=30), "lapsed": now - timedelta(hours=2), "none": None}
    updated = {"new": now - timedelta(minutes=1), "old": now - timedelta(hours=1)}
    marks: dict[str, dict[str, Any]] = {
        "none": {}, "failures": {FAILURES_FIELD: 2, FAILED_AT_FIELD: now - timedelta(minutes=3)},
        "check": {"check_error": "INVALID_TOKEN"}, "lapsed-lease": {LEASE_FIELD: now - timedelta(seconds=30)},
        "live-lease": {LEASE_FIELD: now + timedelta(seconds=5)},
    }
    number = 0
    for refresh in (True, False):
        for grant in (True, False):
            for access, expiry in expiries.items():
                for when in updated.values():
                    for fields in marks.values():
                        number += 1
                        document: dict[str, Any] = {"_id": f"t{number:03d}", "updated_at": when, **fields}
                        if refresh:
                            document["refresh_token"] = f"r{number}"
                        if grant:
                            document["grant_token"] = f"g{number}"
                        if expiry is not None:
                            document |= {"access_token": f"a{number}", "expiry_time": expiry}
                        elif access == "none" and number % 2:
                            document["access_token"] = f"a{number}"  # an access token with no expiry
                        if not (refresh or grant or "access_token" in document):
                            document["access_token"] = f"a{number}"
                        documents.append(document)
    return documents


def test_the_filters_the_counts_and_the_rule_agree(store: MongoTokenStore) -> None:
    now = utcnow().replace(microsecond=0)
    documents = varied_documents(now)
    ensure_indexes(store.collection)
    store.collection.insert_many(documents)
    by_rule: dict[str, set[str]] = {name: set() for name in rules.HEALTH}
    for document in documents:
        by_rule[rules.health_of(document, now)[0]].add(document["_id"])
    assert all(by_rule.values())  # every state occurs
    for name in rules.HEALTH:
        by_filter = {d["_id"] for d in store.collection.find(rules.health_filter(name, now), {"_id": True})}
        assert by_filter == by_rule[name], name
        listed, total = queries.page(store.collection, queries.Query(health=name), 1, 1000, now=now)
        assert {d["_id"] for d in listed} == by_rule[name] and total == len(by_rule[name])
    counts = stats.stats(store.collection, now)
    assert counts["health"] == {name: len(ids) for name, ids in by_rule.items()}
    assert sum(counts["health"].values()) == counts["total"] == len(documents)


@pytest.mark.parametrize("sort", sorted(queries.SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_a_sort_pages_through_every_token_once(store: MongoTokenStore, sort: str, descending: bool) -> None:
    now = utcnow().replace(microsecond=0)
    documents = varied_documents(now)
    for number, document in enumerate(documents):
        if number % 3:
            document["user_name"] = f"user{(number * 7919) % 1000:03d}@example.com:1"
        if number % 4 == 0:
            document[REFRESHED_FIELD] = now - timedelta(minutes=number)
    ensure_indexes(store.collection)
    store.collection.insert_many(documents)
    field = queries.SORTS[sort]
    seen: list[str] = []
    for number in range(1, 100):
        rows, _ = queries.page(store.collection, queries.Query(sort=sort, descending=descending), number, 7, now=now)
        if not rows:
            break
        seen += [row["_id"] for row in rows]
    assert sorted(seen) == sorted(d["_id"] for d in documents)  # each once
    by_id = {d["_id"]: d for d in documents}
    having = [d[field] for d in documents if d.get(field) is not None]
    assert [by_id[i][field] for i in seen[:len(having)]] == sorted(having, reverse=descending)  # by the field
    assert seen[len(having):] == sorted(d["_id"] for d in documents if d.get(field) is None)  # then the rest, by id


def test_a_lookup_outside_the_refresh_window_is_still_one_round_trip(mongo_uri: str, database_name: str) -> None:
    from pymongo import MongoClient
    from test_refresh_safety import FindAndModifyCounter  # it records every command's name (of this thread)

    counter = FindAndModifyCounter()
    client = MongoClient(mongo_uri, event_listeners=[counter])
    try:
        store = MongoTokenStore(client=client, database=database_name)
        token = full("alice@example.com:1")
        store.save_token(token)
        counter.names.clear()
        assert store.find_token(oauth("alice@example.com:1", client=False)) is not None
        assert store.find_token_by_id(token.get_id()) is not None
        assert counter.names == ["find", "find"]
    finally:
        client.drop_database(database_name)
        client.close()
