"""Search that finds people: one text matched against the start of a user name's e-mail, of its
domain and of its org id (case-insensitively), and against the start of a token id (as typed:
ids are case-sensitive).

A user name ``email:org_zgid`` is stored with ``search_keys``, its lowercase keys (the whole
name, the domain onwards, the org id), written by every save in the same ``find_one_and_update``
(``store.py``) and backfilled server-side for documents written otherwise (``backfill``). A
search is then an anchored regex on lowercase keys: a range of the multikey ``search_keys``
index, or of the ``_id`` index for an id. Nothing else is searched: a secret typed into a search
box ends up in logs.

Lowercasing is ASCII-only on both sides (MongoDB's ``$toLower`` leaves other letters as they are,
so Python must too): ``Ünal`` finds ``Ünal``, not ``ünal``.
"""

from __future__ import annotations

import re
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection

from .mapping import check_text

SEARCH_KEYS = "search_keys"
"""The field holding a user name's lowercase search keys (an array; multikey index ``search_keys``)."""

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(text: str) -> str:
    """Lowercase ASCII letters only, exactly as the server's ``$toLower`` does."""
    return text.translate(_ASCII_LOWER)


def keys(user_name: str) -> list[str]:
    """The search keys of a user name: the whole name (so the e-mail's start), from its domain on
    (after the first ``@``), and its org id (after the first ``:``), lowercase. ``backfill``'s
    pipeline computes the same."""
    name = fold(user_name)
    found = [name]
    for mark in ("@", ":"):
        at = name.find(mark)
        if at >= 0 and name[at + 1:]:
            found.append(name[at + 1:])
    return list(dict.fromkeys(found))


_SECRET_SHAPE = re.compile(r"1000\.[0-9a-f]{10,}|[0-9a-f]{32,}", re.IGNORECASE)
"""A Zoho token (``1000.`` and hex) or a client secret (a long hex run): never a search."""
SECRET_REFUSED = ("that looks like a Zoho token or client secret: secrets are never searchable (search by "
                  "e-mail, domain, org id or token id)")


def looks_secret(text: str) -> bool:
    """Whether a search text has a secret's shape: it is refused unseen, never echoed or kept in a URL."""
    return bool(_SECRET_SHAPE.search(text))


def search_filter(text: str, *, ids_only: bool = False) -> dict[str, Any]:
    """The filter for one search text: a key range of ``search_keys`` (case-insensitive) or of
    ``_id`` (case-sensitive), each an anchored regex, so an index range. ``ids_only``: the id
    alone (for tokens without a user name, which have no keys)."""
    if looks_secret(text):
        raise ValueError(SECRET_REFUSED)
    typed = check_text("search", text.strip(), required=True)
    by_id = {"_id": {"$regex": "^" + re.escape(typed)}}
    return by_id if ids_only else {"$or": [{SEARCH_KEYS: {"$regex": "^" + re.escape(fold(typed))}}, by_id]}


def describe(text: str) -> str:
    """What a search looked at, for an empty result."""
    typed = text.strip()
    return (f"no token's user name has an e-mail, e-mail domain or org id starting with {typed!r} (any case), "
            f"and no token id starts with {typed!r} (ids are case-sensitive); secrets are never searched")


def _key_expression() -> dict[str, Any]:
    """``keys`` as a server-side expression over ``$user_name``."""
    name = {"$toLower": "$user_name"}

    def after(mark: str) -> dict[str, Any]:
        at = {"$indexOfCP": ["$$name", mark]}
        return {"$cond": [{"$gte": [at, 0]}, {"$substrCP": ["$$name", {"$add": [at, 1]}, {"$strLenCP": "$$name"}]}, ""]}

    return {"$let": {"vars": {"name": name}, "in": {"$let": {
        "vars": {"domain": after("@"), "org": after(":")},
        "in": {"$setUnion": [{"$filter": {"input": ["$$name", "$$domain", "$$org"], "as": "key",
                                          "cond": {"$ne": ["$$key", ""]}}}]},
    }}}}


BACKFILL_BATCH = 5_000
"""Documents per backfill update: each one a short command, well inside a socket timeout."""


def backfill(collection: Collection, batch: int = BACKFILL_BATCH) -> int:
    """Give every document with a user name and no search keys its keys, ``batch`` documents per
    server-side pipeline ``update_many`` (nothing read into Python but the ids), walking the
    ``_id`` index forward: each command is short, so a million takes many bounded steps instead of
    one that outlasts a timeout, and a run cut short is finished by the next. A no-op once done;
    returns how many were written. (mongomock runs no such pipeline: there the keys are written one
    document at a time.)"""
    lacking = {"user_name": {"$type": "string"}, SEARCH_KEYS: {"$exists": False}}
    written, after = 0, None
    while True:
        where = lacking if after is None else {**lacking, "_id": {"$gt": after}}
        ids = [document["_id"] for document in
               collection.find(where, {"_id": True}).sort("_id", 1).hint([("_id", 1)]).limit(batch)]
        if not ids:
            break
        written += _write_keys(collection, {**lacking, "_id": {"$in": ids}})
        after = ids[-1]
    # Ids of another type than the last one seen are outside its range ($gt compares within a type).
    return written + _write_keys(collection, lacking)


def _write_keys(collection: Collection, where: dict[str, Any]) -> int:
    if isinstance(collection.database.client, MongoClient):
        return collection.update_many(where, [{"$set": {SEARCH_KEYS: _key_expression()}}]).modified_count
    written = 0
    for document in list(collection.find(where, {"user_name": True})):
        written += collection.update_one({"_id": document["_id"]},
                                         {"$set": {SEARCH_KEYS: keys(document["user_name"])}}).modified_count
    return written
