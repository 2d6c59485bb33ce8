"""Every index the store relies on, in one list, and the idempotent call that creates them.

- ``_id`` is the token id: MongoDB's built-in unique index.
- ``user_name`` is unique: one token per Zoho user. Sparse, so any number of tokens without a
  user name fit (the store never writes an empty or null user name). Not a partial index: on
  MongoDB 6.0 a plain equality filter does not use a partial ``{$type: "string"}`` index.
- ``refresh_token`` is unique: a refresh token belongs to exactly one grant, so two documents
  holding it are duplicates, and concurrent saves matched by it must converge on one document.
- ``access_token`` and ``grant_token`` serve the SDK's lookups by those values.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection

INDEXES = [
    IndexModel([("user_name", ASCENDING)], name="user_name_unique", unique=True, sparse=True),
    IndexModel([("refresh_token", ASCENDING)], name="refresh_token_unique", unique=True, sparse=True),
    IndexModel([("access_token", ASCENDING)], name="access_token", sparse=True),
    IndexModel([("grant_token", ASCENDING)], name="grant_token", sparse=True),
]


def ensure_indexes(collection: Collection) -> list[str]:
    """Create the indexes if missing; a no-op when they exist with the same options.

    The server refuses (IndexOptionsConflict / IndexKeySpecsConflict) when an index of the same
    name exists with other options, which surfaces as a store error rather than silent drift.
    """
    return collection.create_indexes(INDEXES)
