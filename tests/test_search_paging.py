"""Search that finds people, keyset paging and one name per data center: the semantics on both
backends, and on the real mongod at 200,000 tokens the plans (no COLLSCAN) and what the last page
costs against the first (explain's executionStats), against skip/limit."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient
from test_real_server import stages
from test_refresh_safety import FindAndModifyCounter
from tokens import full

from mongo_store import MongoTokenStore
from mongo_store.core import search
from mongo_store.core.clock import utcnow
from mongo_store.core.indexes import ensure_indexes
from mongo_store.core.mapping import REFRESHED_FIELD
from mongo_store.tools import datacenters, metrics, paging, queries
from mongo_store.tools.migrate import Row, import_rows

KEY = base64.b64encode(b"S" * 32).decode()
FEMI = "Femi.210@Wayne.Example:700210"


# -- search ---------------------------------------------------------------------------------------


def found_by(store: MongoTokenStore, text: str) -> set[str]:
    where = queries.Query(search=text).to_filter(utcnow())
    return {document["_id"] for document in store.collection.find(where, {"_id": True})}


def test_search_finds_people_by_email_domain_and_org_id_in_any_case(store: MongoTokenStore) -> None:
    femi, lower, other = full(FEMI), full("femi.211@wayne.example:700211"), full("ann@acme.example:800001")
    nameless = full(None)
    for token in (femi, lower, other, nameless):
        store.save_token(token)
    both = {femi.get_id(), lower.get_id()}
    for text in ("wayne.example", "WAYNE.EX", "FEMI.2", "femi.21", "7002"):
        assert found_by(store, text) == both, text
    assert found_by(store, "700210") == found_by(store, " Femi.210@wayne.example:700210 ") == {femi.get_id()}
    assert found_by(store, "femi.210@WAYNE.EXAMPLE:7") == {femi.get_id()}
    assert found_by(store, "wayne.example") == both and found_by(store, "FEMI.2") == both
    assert found_by(store, "acme") == {other.get_id()} and found_by(store, "800001") == {other.get_id()}
    for middle in ("example", "210", "ayne", "@"):  # only the start of each part, never its middle
        assert found_by(store, middle) == set(), middle
    # A token id: its start, as typed (ids are case-sensitive), the nameless token too.
    token_id = nameless.get_id()
    assert nameless.get_id() in found_by(store, token_id[:5])
    swapped = token_id[:5].swapcase()
    if swapped != token_id[:5]:
        assert token_id not in found_by(store, swapped)
    assert found_by(store, ".*") == set() and found_by(store, "(") == set()  # regex characters are text


def test_an_empty_search_says_what_was_searched() -> None:
    said = queries.describe_search("  Wayne ")
    assert "'Wayne'" in said and "e-mail" in said and "org id" in said and "token id" in said and "secret" in said


def test_every_save_writes_the_keys_in_its_one_find_and_modify(mongo_uri: str, database_name: str) -> None:
    counter = FindAndModifyCounter()
    client = MongoClient(mongo_uri, event_listeners=[counter])
    try:
        for key in (None, KEY):  # plain, then encrypted (user names stay plain: crypto.IDENTITY_FIELDS)
            store = MongoTokenStore(client=client, database=f"{database_name}{'k' if key else 'p'}",
                                    encryption_key=key, old_encryption_keys=[])
            store.prepare()
            token = full(FEMI)
            counter.names.clear()
            store.save_token(token)
            assert counter.names.count("findAndModify") == 1, counter.names
            stored = store.collection.find_one({"_id": token.get_id()})
            assert stored["user_name"] == FEMI
            assert sorted(stored[search.SEARCH_KEYS]) == sorted(search.keys(FEMI)) == \
                ["700210", "femi.210@wayne.example:700210", "wayne.example:700210"]
            store.save_token(full(None, refresh_token=token.get_refresh_token()))  # a save without the name keeps them
            assert sorted(store.collection.find_one({"_id": token.get_id()})[search.SEARCH_KEYS]) == sorted(search.keys(FEMI))
            client.drop_database(store.collection.database.name)
    finally:
        client.close()


def test_a_store_never_walks_the_collection_for_keys_and_the_backfill_goes_in_short_steps(
        real_client: MongoClient, database_name: str) -> None:
    """An upgraded collection: the store's first write creates the index but leaves the old
    documents to ``indexes`` (a walk of a million would stall the SDK's first request), which
    writes them a batch per command and finishes a run cut short."""
    tokens = real_client[database_name]["oauth_tokens"]
    tokens.insert_many([{"_id": f"old{n:02d}", "user_name": f"Old.{n}@Wayne.Example:1", "refresh_token": f"r{n}"}
                        for n in range(12)] + [{"_id": ObjectId(), "user_name": "Odd@Wayne.Example:1"}])
    store = MongoTokenStore(client=real_client, database=database_name)
    store.save_token(full("new@wayne.example:1"))
    assert search.SEARCH_KEYS in tokens.index_information()
    assert tokens.count_documents({search.SEARCH_KEYS: {"$exists": False}}) == 13  # left alone
    counter = FindAndModifyCounter()
    counting = MongoClient(real_client.address[0], real_client.address[1], event_listeners=[counter])
    try:
        counted = counting[database_name]["oauth_tokens"]
        assert search.backfill(counted, batch=5) == 13  # 12 in three steps, the ObjectId one at the end
        assert counter.names.count("update") == 4
    finally:
        counting.close()
    assert tokens.count_documents({search.SEARCH_KEYS: {"$exists": False}}) == 0
    assert found_by(store, "old.1") == {"old01", "old10", "old11"}


def test_documents_without_keys_get_them_from_one_server_side_update(real_store: MongoTokenStore) -> None:
    names = [FEMI, "NoAt:123", "plain", "a@b", "Ünal@Wayne.Example:9", "x@y:z:w"]
    real_store.collection.insert_many([{"_id": f"raw{n}", "user_name": name, "refresh_token": f"r{n}"}
                                       for n, name in enumerate(names)] + [{"_id": "unnamed", "refresh_token": "r"}])
    ensure_indexes(real_store.collection)  # the pipeline runs on the server: $toLower, $indexOfCP, $substrCP
    for n, name in enumerate(names):
        stored = real_store.collection.find_one({"_id": f"raw{n}"})
        assert sorted(stored[search.SEARCH_KEYS]) == sorted(search.keys(name)), name  # Python agrees with the server
    assert search.SEARCH_KEYS not in real_store.collection.find_one({"_id": "unnamed"})
    assert search.backfill(real_store.collection) == 0  # done once
    assert found_by(real_store, "wayne.EXAMPLE") == {"raw0", "raw4"} and found_by(real_store, "ünal") == set()
    assert found_by(real_store, "Ünal") == {"raw4"}  # only ASCII letters fold, on both sides


def test_an_import_writes_the_keys(store: MongoTokenStore) -> None:
    rows = [{"id": "imported1", "user_name": FEMI, "refresh_token": "1000.r.imported", "client_id": "1000.C"}]
    assert import_rows(store, [Row(1, rows[0], None)]).inserted == 1  # through restore_token
    assert found_by(store, "700210") == {"imported1"}


# -- keyset paging: every token once, both ways, for every order ----------------------------------


def small_set(now: Any) -> list[dict[str, Any]]:
    """Tokens with ties in every sort field and some without each."""
    documents = []
    for n in range(23):
        document: dict[str, Any] = {"_id": f"k{(n * 7) % 23:02d}", "refresh_token": f"r{n}", "updated_at": now}
        if n % 4:
            document["user_name"] = f"User{n:02d}@Wayne.Example:{700 + n % 3}"
        if n % 5:
            document["expiry_time"] = now + timedelta(hours=n % 3)  # ties
        if n % 3 == 0:
            document[REFRESHED_FIELD] = now - timedelta(minutes=n % 2)  # ties
        if n % 6:
            document["api_domain"] = datacenters.DOMAINS["EU" if n % 2 else "UK"]
        documents.append(document)
    return documents


def expected(documents: list[dict[str, Any]], field: str, descending: bool) -> list[str]:
    having = sorted((d for d in documents if d.get(field) is not None), key=lambda d: (d[field], d["_id"]),
                    reverse=descending)
    lacking = sorted(d["_id"] for d in documents if d.get(field) is None)
    return [d["_id"] for d in having] + lacking


QUERIES = [*(queries.Query(sort=sort, descending=descending) for sort in queries.SORTS for descending in (False, True)),
           queries.Query(), queries.Query(descending=True), queries.Query(search="user0"), queries.Query(search="WAYNE"),
           queries.Query(api_domain=datacenters.DOMAINS["EU"]), queries.Query(status="valid"),
           queries.Query(search="wayne", sort="expiry", descending=True), queries.Query(health="healthy", sort="refreshed")]


@pytest.mark.parametrize("query", QUERIES, ids=repr)
@pytest.mark.parametrize("size", [1, 4, 50])
def test_paging_meets_every_token_once_forward_and_backward(store: MongoTokenStore, query: queries.Query,
                                                             size: int) -> None:
    now = utcnow().replace(microsecond=0)
    documents = small_set(now)
    store.collection.insert_many(documents)
    ensure_indexes(store.collection)
    where = query.to_filter(now)
    matching = [d for d in documents if d["_id"] in {m["_id"] for m in store.collection.find(where, {"_id": True})}]
    want = expected(matching, query.sort_key(), query.descending)
    pages = max(1, -(-len(want) // size))
    forward, numbers = [], []
    found = paging.page(store.collection, query, size, now=now)
    while True:
        forward += [d["_id"] for d in found.documents]
        numbers.append(found.number)
        assert found.pages == pages and found.total == len(want)
        if not found.has_next:
            break
        found = paging.page(store.collection, query, size, go="next", cursor=found.last_cursor,
                            number=found.number + 1, now=now)
    assert forward == want and numbers == list(range(1, pages + 1))
    backward: list[str] = []
    numbers = []
    found = paging.page(store.collection, query, size, go="last", now=now)
    while True:
        backward = [d["_id"] for d in found.documents] + backward
        numbers.append(found.number)
        assert len(found.documents) == (len(want) - (found.number - 1) * size if found.number == pages else size) \
            or not want
        if not found.has_previous:
            break
        found = paging.page(store.collection, query, size, go="previous", cursor=found.first_cursor,
                            number=found.number - 1, now=now)
    assert backward == want and numbers == list(range(pages, 0, -1))


def test_a_cursor_is_url_safe_and_checked(store: MongoTokenStore) -> None:
    now = utcnow()
    store.collection.insert_many(small_set(now))
    first = paging.page(store.collection, queries.Query(sort="expiry"), 3, now=now)
    assert first.last_cursor and all(c.isalnum() or c in "-_" for c in first.last_cursor)
    for bad in ("", "garbage!", first.last_cursor[:-4], base64.urlsafe_b64encode(b"\x05\x00\x00\x00\x00").decode()):
        with pytest.raises(ValueError, match="cursor"):
            paging.page(store.collection, queries.Query(sort="expiry"), 3, go="next", cursor=bad, now=now)
    with pytest.raises(ValueError, match="belongs to the order by expiry_time, not by user_name"):
        paging.page(store.collection, queries.Query(sort="user"), 3, go="next", cursor=first.last_cursor, now=now)
    with pytest.raises(ValueError, match="go must be one of"):
        paging.page(store.collection, queries.Query(), go="sideways")


def test_next_past_the_end_gives_the_last_page(store: MongoTokenStore) -> None:
    now = utcnow()
    documents = small_set(now)
    store.collection.insert_many(documents)
    last = paging.page(store.collection, queries.Query(), 5, go="last", now=now)
    after = paging.page(store.collection, queries.Query(), 5, go="next", cursor=last.last_cursor, number=99, now=now)
    assert after.documents == last.documents and after.number == 5 and not after.has_next


def test_a_capped_count_numbers_pages_from_the_end(store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "COUNT_CAP", 10)
    now = utcnow()
    store.collection.insert_many(small_set(now))
    ensure_indexes(store.collection)  # the search keys of raw documents
    query = queries.Query(search="user")  # 17 matches: more than the cap
    last = paging.page(store.collection, query, 4, go="last", now=now)
    assert last.pages is None and last.total == 11 and last.number == -1 and len(last.documents) == 4
    before = paging.page(store.collection, query, 4, go="previous", cursor=last.first_cursor, number=-2, now=now)
    assert before.number == -2 and before.has_next and before.has_previous


# -- data centers ---------------------------------------------------------------------------------


def test_one_name_per_data_center() -> None:
    assert datacenters.name("https://www.zohoapis.uk") == "UK" and datacenters.name("https://www.zohoapis.com") == "US"
    assert datacenters.name("https://crm.example.com") == "https://crm.example.com" and datacenters.name(None) == "none"
    assert datacenters.label("https://www.zohoapis.eu") == "EU (https://www.zohoapis.eu)"
    for text in ("uk", "UK", "zohoapis.uk", "www.zohoapis.uk", "https://www.zohoapis.uk/"):
        assert queries.data_center(text) == "https://www.zohoapis.uk", text
    assert queries.data_center("au") == queries.data_center("com.au") == "https://www.zohoapis.com.au"
    with pytest.raises(ValueError, match="no Zoho data center"):
        queries.data_center("uk.example")


def test_the_exporter_files_uk_under_its_name(real_store: MongoTokenStore) -> None:
    real_store.save_token(full("ann@example.co.uk:1", api_domain="https://www.zohoapis.uk"))
    real_store.save_token(full("bob@example.com:1", api_domain="https://www.zohoapis.com"))
    counts = metrics.count(real_store.collection)
    assert counts.data_centers["UK"] == 1 and counts.data_centers["US"] == 1 and counts.data_centers["other"] == 0


# -- at 200,000 tokens on the real mongod: plans and costs ----------------------------------------

SIZE = 200_000


@pytest.fixture(scope="module")
def crowd(real_client: MongoClient) -> Iterator[Any]:
    """200,000 raw documents (insert_many, then the store's indexes and key backfill)."""
    database = real_client["zms_search_paging_crowd"]
    tokens = database["oauth_tokens"]
    now = utcnow().replace(microsecond=0)
    batch = []
    for n in range(SIZE):
        document: dict[str, Any] = {"_id": f"c{n:07d}", "refresh_token": f"1000.r.{n}", "updated_at": now,
                                    "api_domain": list(datacenters.DOMAINS.values())[n % 9]}
        if n % 10:
            document["user_name"] = f"{'Femi' if n % 2 else 'Ann'}.{n}@{'Wayne' if n % 3 else 'Acme'}.Example:{700000 + n % 997}"
        if n % 7:
            document["expiry_time"] = now + timedelta(minutes=(n * 7919) % 1200 - 600)
        if n % 5 == 0:
            document[REFRESHED_FIELD] = now - timedelta(minutes=n % 60)
        if n % 1000 == 0:
            document["refresh_failures"] = 1
        batch.append(document)
        if len(batch) == 20_000:
            tokens.insert_many(batch, ordered=False)
            batch = []
    ensure_indexes(tokens)
    yield tokens, now
    real_client.drop_database(database.name)


SHAPES = [*(queries.Query(sort=sort, descending=descending) for sort in queries.SORTS for descending in (False, True)),
          queries.Query(), queries.Query(descending=True), queries.Query(search="wayne.example"), queries.Query(search="FEMI.2"),
          queries.Query(search="700210"), queries.Query(search="c00001"), queries.Query(status="expired"),
          queries.Query(api_domain=datacenters.DOMAINS["UK"]), queries.Query(health="healthy"),
          queries.Query(health="failing"), queries.Query(health="unusable"), queries.Query(health="idle", sort="user"),
          queries.Query(search="wayne", sort="expiry", descending=True),
          queries.Query(api_domain=datacenters.DOMAINS["EU"], sort="refreshed", descending=True),
          queries.Query(status="valid", sort="user")]


def explained(tokens: Any, query: queries.Query, go: str, cursor: str | None, now: Any,
              size: int = 50) -> tuple[set[str], int, int]:
    """(stages, keys examined, documents examined) over every find a page may run."""
    used: set[str] = set()
    keys = docs = 0
    returned = 0
    for where, order in paging.finds(query, go=go, cursor=cursor, now=now):
        plan = tokens.find(where, queries.LIST_FIELDS).sort(order).limit(size + 1 - returned).explain()
        used |= set(stages(plan["queryPlanner"]["winningPlan"]))
        keys += plan["executionStats"]["totalKeysExamined"]
        docs += plan["executionStats"]["totalDocsExamined"]
        returned += plan["executionStats"]["nReturned"]
        if returned > size:  # as paging.page: the next part runs only when this one ran out
            break
    return used, keys, docs


@pytest.mark.parametrize("query", SHAPES, ids=repr)
def test_every_page_shape_uses_an_index_and_the_last_costs_what_the_first_does(crowd: Any, query: queries.Query) -> None:
    tokens, now = crowd
    first = paging.page(tokens, query, 50, now=now)
    last = paging.page(tokens, query, 50, go="last", now=now)
    costs = {}
    for go, cursor in (("first", None), ("last", None), ("next", first.last_cursor),
                       ("previous", last.first_cursor)):
        if cursor is None and go in ("next", "previous"):
            continue
        used, keys, docs = explained(tokens, query, go, cursor, now)
        assert "COLLSCAN" not in used, (go, used)
        costs[go] = max(keys, docs)
    # A page, not a walk of the collection: at most what the matches are (a search the planner
    # serves from its keys, sorting the matches), never the tokens before the page.
    assert costs["first"] < max(5_000, 1.1 * paging.count(tokens, query.to_filter(now))), costs
    assert costs["last"] <= 3 * costs["first"] + 200, costs  # not the tokens before it
    if "previous" in costs:
        assert costs["previous"] <= 3 * costs["first"] + 200 and costs["next"] <= 3 * costs["first"] + 200, costs


def test_skip_and_limit_would_examine_every_token_before_the_page(crowd: Any) -> None:
    tokens, now = crowd
    query = queries.Query(sort="expiry")
    having = {"expiry_time": {"$ne": None}}
    deep = tokens.find(having, queries.LIST_FIELDS).sort([("expiry_time", 1), ("_id", 1)]).skip(150_000).limit(50)
    skipped = deep.explain()["executionStats"]["totalKeysExamined"]
    last = paging.page(tokens, query, 50, go="last", now=now)
    _, keyset, _ = explained(tokens, query, "previous", last.first_cursor, now)
    assert skipped >= 150_000 and keyset < 500, (skipped, keyset)


def test_the_database_profiler_shows_the_last_page_examines_what_the_first_does(crowd: Any) -> None:
    """The profiler records what each page's finds examined: the last page about the first's."""
    tokens, now = crowd
    database = tokens.database
    database.command("profile", 2)
    try:
        marker = utcnow()
        paging.page(tokens, queries.Query(sort="refreshed", descending=True), 50, now=now)
        first = [entry for entry in database["system.profile"].find({"ts": {"$gte": marker}, "op": "query",
                                                                      "ns": tokens.full_name})]
        marker = utcnow()
        paging.page(tokens, queries.Query(sort="refreshed", descending=True), 50, go="last", now=now)
        last = [entry for entry in database["system.profile"].find({"ts": {"$gte": marker}, "op": "query",
                                                                     "ns": tokens.full_name})]
    finally:
        database.command("profile", 0)
    examined = [sum(entry.get("keysExamined", 0) for entry in found) for found in (first, last)]
    assert first and last and all("COLLSCAN" not in entry.get("planSummary", "") for entry in first + last)
    assert examined[1] <= 3 * examined[0] + 200, examined


def test_a_search_at_200000_tokens_finds_exactly_the_prefix_matches(crowd: Any) -> None:
    tokens, now = crowd
    found = {d["_id"] for d in tokens.find(queries.Query(search="FEMI.21").to_filter(now), {"_id": True})}
    # Femi for odd n, name for n % 10 != 0: "femi.21..." is n = 21, 210-219, 2100-2199, ...
    want = {f"c{n:07d}" for n in range(SIZE) if n % 2 and n % 10 and str(n).startswith("21")}
    assert found == want


def test_the_dashboard_data_layer_pages_by_keyset(store: MongoTokenStore) -> None:
    from mongo_store.dashboard import data
    from mongo_store.tools.settings import OperatorSettings

    for n in range(5):
        store.save_token(full(f"user{n}@wayne.example:1"))
    connection = data.Connection(store, OperatorSettings.load(), "test")
    rows, first = data.token_page(connection, queries.Query(search="WAYNE", sort="user"), 2)
    assert [row["user_name"] for row in rows] == ["user0@wayne.example:1", "user1@wayne.example:1"]
    assert first.has_next and not first.has_previous and first.total == 5
    assert "health_reason" in rows[0] and rows[0]["refresh_token"].startswith("••••")  # as a person sees it
    rows, last = data.token_page(connection, queries.Query(search="WAYNE", sort="user"), 2, go="last")
    assert [row["user_name"] for row in rows] == ["user4@wayne.example:1"] and (last.number, last.pages) == (3, 3)
    with pytest.raises(ValueError, match="malformed"):  # an edited URL: one sentence, not a store error
        data.token_page(connection, queries.Query(sort="user"), 2, go="next", cursor="x")


@pytest.mark.parametrize("key", [{"$ne": None}, {"$gt": ""}, ["a"]])
def test_a_cursor_holding_a_query_operator_is_refused(store: MongoTokenStore, key: object) -> None:
    """An edited cursor in a URL cannot smuggle an operator into the page's filter."""
    import base64

    import bson

    store.save_token(full("user0@wayne.example:1"))
    for part in ("k", "i"):
        fields = {"f": "user_name", "h": True, "k": "user0@wayne.example:1", "i": "abc"} | {part: key}
        forged = base64.urlsafe_b64encode(bson.encode(fields)).decode().rstrip("=")
        with pytest.raises(ValueError, match="malformed"):
            paging.page(store.collection, queries.Query(sort="user"), 2, go="next", cursor=forged)


@pytest.mark.parametrize("secret", ["1000.0f3c9a1b2c3d4e5f60718293a4b5c6d7.e8f90a1b2c3d4e5f", "a3" * 21])
def test_a_secret_typed_in_the_search_is_refused_unseen(store: MongoTokenStore, secret: str) -> None:
    """A token or client secret pasted into a search box is refused without being repeated."""
    with pytest.raises(ValueError) as refused:
        queries.Query(search=secret).to_filter(utcnow())
    assert secret not in str(refused.value) and "never searchable" in str(refused.value)
    assert not search.looks_secret("femi.210@wayne.example:700210") and not search.looks_secret("Xk3v9QbTz1mR8wLp")
