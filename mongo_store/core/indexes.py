"""Every index the store relies on, in one list, and the idempotent call that creates them.

- ``_id`` is the token id: MongoDB's built-in unique index.
- ``user_name`` is unique: one token per Zoho user. Sparse, so any number of tokens without a
  user name fit (the store never writes an empty or null user name). Not a partial index: on
  MongoDB 6.0 a plain equality filter does not use a partial ``{$type: "string"}`` index.
- ``refresh_token`` is unique: a refresh token belongs to exactly one grant, so two documents
  holding it are duplicates, and concurrent saves matched by it must converge on one document.
- ``access_token`` and ``grant_token`` serve the SDK's lookups by those values.
- ``*_hmac`` are the blind indexes of encrypted tokens: the refresh token's is unique for the
  same reason as the plain one.
- ``client_id``, ``api_domain`` and ``expiry_time`` serve the operators' searches, filters and
  counts (``mongo_store/tools/queries.py``, ``stats.py``, ``health.py``), so that none of them scans the collection.
- ``refresh_lease``, ``refresh_failures`` and ``check_error`` find the failing tokens (a lapsed
  lease, counted failures, a failed check): present on few documents, so nearly empty.
- ``last_refreshed_at`` serves the "last refreshed" sort, the exporter's latest refresh and, with
  ``updated_at``, the session timeout of ``cleanup`` (``mongo_store/tools/cleanup.py``).
- ``expiry_time_no_refresh_token`` holds the expiries of the tokens without a refresh token only
  (a partial index: ``refresh_token: null``), a few percent of them, so the unusable count fetches
  those instead of every lapsed token (``health.health_queries``).
- ``search_keys`` (multikey) holds each user name's lowercase search keys (``search.py``): a search
  is a range of it, or of ``_id`` for a token id.
- ``*_id`` pairs each sort field with ``_id``: the total order (field, id) that keyset paging
  (``paging.py``) walks from either end; not sparse, so a token without the field (indexed as null)
  is found in the same index, by id.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection

from .search import SEARCH_KEYS, backfill

INDEXES = [
    IndexModel([("user_name", ASCENDING)], name="user_name_unique", unique=True, sparse=True),
    IndexModel([("refresh_token", ASCENDING)], name="refresh_token_unique", unique=True, sparse=True),
    IndexModel([("access_token", ASCENDING)], name="access_token", sparse=True),
    IndexModel([("grant_token", ASCENDING)], name="grant_token", sparse=True),
    IndexModel([("client_id", ASCENDING)], name="client_id", sparse=True),
    IndexModel([("api_domain", ASCENDING)], name="api_domain", sparse=True),
    IndexModel([("expiry_time", ASCENDING)], name="expiry_time", sparse=True),
    # Refresh outcomes and checks, for the health view.
    IndexModel([("refresh_lease", ASCENDING)], name="refresh_lease", sparse=True),
    IndexModel([("refresh_failures", ASCENDING)], name="refresh_failures", sparse=True),
    IndexModel([("check_error", ASCENDING)], name="check_error", sparse=True),
    IndexModel([("last_refreshed_at", ASCENDING)], name="last_refreshed_at", sparse=True),
    # The session timeout of ``cleanup`` for tokens never refreshed (by their last save).
    IndexModel([("updated_at", ASCENDING)], name="updated_at"),
    IndexModel([("expiry_time", ASCENDING)], name="expiry_time_no_refresh_token",
               partialFilterExpression={"refresh_token": None}),
    # Search and keyset paging (search.py, paging.py).
    IndexModel([(SEARCH_KEYS, ASCENDING)], name=SEARCH_KEYS, sparse=True),
    *(IndexModel([(field, ASCENDING), ("_id", ASCENDING)], name=f"{field}_id")
      for field in ("user_name", "expiry_time", "last_refreshed_at", "api_domain")),
    # Blind indexes, used when encryption at rest is on (mongo_store/core/crypto.py).
    IndexModel([("refresh_token_hmac", ASCENDING)], name="refresh_token_hmac_unique", unique=True, sparse=True),
    IndexModel([("access_token_hmac", ASCENDING)], name="access_token_hmac", sparse=True),
    IndexModel([("grant_token_hmac", ASCENDING)], name="grant_token_hmac", sparse=True),
]


def ensure_indexes(collection: Collection, *, backfill_keys: bool | None = None) -> list[str]:
    """Create the indexes if missing; a no-op when they exist with the same options.

    The server refuses (IndexOptionsConflict / IndexKeySpecsConflict) when an index of the same
    name exists with other options, which surfaces as a store error rather than silent drift.
    When the ``search_keys`` index is new (an upgrade, or a collection filled by raw inserts before
    its indexes), the documents without search keys get them, in one server-side update
    (``search.backfill``); ``backfill_keys=True`` runs it anyway (``indexes``: a walk of the user
    names, too slow for every store's first write), False never.
    """
    if backfill_keys is None:
        backfill_keys = SEARCH_KEYS not in collection.index_information()
    names = collection.create_indexes(INDEXES)
    if backfill_keys:
        backfill(collection)
    return names


def index_drift(collection: Collection) -> tuple[list[str], list[str]]:
    """(missing index names, descriptions of indexes that exist with other keys or options)."""
    existing = collection.index_information()
    missing, drifted = [], []
    for model in INDEXES:
        spec = model.document
        found = existing.get(spec["name"])
        if found is None:
            missing.append(spec["name"])
            continue
        want = (list(spec["key"].items()), bool(spec.get("unique")), bool(spec.get("sparse")))
        have = ([tuple(pair) for pair in found["key"]], bool(found.get("unique")), bool(found.get("sparse")))
        if want != have:
            drifted.append(f"{spec['name']}: expected key={want[0]} unique={want[1]} sparse={want[2]}, "
                           f"found key={have[0]} unique={have[1]} sparse={have[2]}")
    return missing, drifted
