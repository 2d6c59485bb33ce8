"""Keyset (range) paging of the token list: first, previous, next and last page at the cost of the
first, however deep, for every sort and filter of ``queries.Query``.

The list is in a total order: the tokens that have the sort field by (field, ``_id``), in the asked
direction, then those without it (or with null) by ``_id`` ascending, as ``queries.page`` always
listed them. Each part is one range of a (field, ``_id``) index (``indexes.py``), so a page starts
where the previous one ended (its cursor) instead of skipping the tokens before it, and the last
page is the first page of the reverse order. A cursor is the position of a page's first or last
token: URL-safe text (it goes into the dashboard's URL), bound to the sort field it was made for.

Page numbers are what the caller passes on (``number + 1`` for next, ``number - 1`` for previous),
corrected at either end. When the match count is capped (``queries.COUNT_CAP``) the number of pages
is unknown: the last page is then numbered -1, the one before it -2, and so on (from the end).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.errors import BSONError
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from ..core.clock import utcnow
from .queries import COUNT_CAP, LIST_FIELDS, Query

GOES = ("first", "next", "previous", "last")
MAX_SIZE = 1000


@dataclass(frozen=True)
class Page:
    """One page: its documents (``queries.LIST_FIELDS``), the match count (exact, or ``COUNT_CAP + 1``
    when a filtered count is capped), its number (negative: counted from the end), the number of pages
    (at least 1; None when the count is capped), the cursors of its first and last token, and whether pages lie either side."""

    documents: list[dict[str, Any]]
    total: int
    number: int
    pages: int | None
    first_cursor: str | None
    last_cursor: str | None
    has_previous: bool
    has_next: bool


@dataclass(frozen=True)
class _Position:
    """Where a token stands in the order: in the part with the field (``having``) at (key, id), or
    in the part without it, at id."""

    having: bool
    key: Any
    id: Any


@dataclass(frozen=True)
class _Part:
    """One part of the order: its filter, its index order and its direction (ascending or not)."""

    having: bool
    where: dict[str, Any]
    ascending: bool


def _parts(field: str, descending: bool) -> list[_Part]:
    if field == "_id":
        return [_Part(True, {}, not descending)]
    return [_Part(True, {field: {"$ne": None}}, not descending), _Part(False, {field: None}, True)]


def _after(field: str, part: _Part, position: _Position, ascending: bool) -> dict[str, Any]:
    """The tokens of ``part`` strictly after ``position`` when walking it ``ascending``: two index
    ranges of (field, _id), so the page costs what the first one does."""
    beyond = "$gt" if ascending else "$lt"
    if field == "_id" or not part.having:
        return {"_id": {beyond: position.id}}
    return {"$or": [{field: position.key, "_id": {beyond: position.id}}, {field: {beyond: position.key}}]}


def finds(query: Query, *, go: str = "first", cursor: str | None = None,
          now: datetime | None = None) -> list[tuple[dict[str, Any], list[tuple[str, int]]]]:
    """The (filter, sort) of each find a page may run, in the order they run (the next runs only
    when the one before ran out): one per part of the order from where the page starts. For
    ``explain`` (tests, ``bench/admin.py``) as much as for ``page``."""
    if go not in GOES:
        raise ValueError(f"go must be one of {', '.join(GOES)}, not {go!r}")
    field = query.sort_key()
    start = None
    if go in ("next", "previous"):
        if not cursor:
            raise ValueError(f"the {go} page needs the cursor of the page it follows: start again from the first page")
        start = read_cursor(cursor, field)
    now = now or utcnow()
    reverse = go in ("previous", "last")
    parts = _parts(field, query.descending)
    if reverse:
        parts.reverse()
    planned = []
    started = start is None
    for part in parts:
        if not started:
            if part.having != start.having:  # type: ignore[union-attr]
                continue
            started = True
        ascending = part.ascending != reverse
        # A token without a user name has no search keys: only its id can match a search.
        where = query.to_filter(now, ids_only=field == "user_name" and not part.having)
        clauses = [clause for clause in (where, part.where) if clause]
        if start is not None and part.having == start.having:
            clauses.append(_after(field, part, start, ascending))
        direction = ASCENDING if ascending else DESCENDING
        order = [("_id", direction)] if field == "_id" else [(field, direction), ("_id", direction)]
        planned.append(({"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {}), order))
    return planned


def _position(document: dict[str, Any], field: str) -> _Position:
    key = document["_id"] if field == "_id" else document.get(field)
    return _Position(field == "_id" or key is not None, key, document["_id"])


def cursor_of(document: dict[str, Any], field: str) -> str:
    """The cursor of one listed document in the order by ``field``: URL-safe base64 of BSON."""
    at = _position(document, field)
    raw = bson.encode({"f": field, "h": at.having, "k": None if field == "_id" else at.key, "i": at.id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_KEY_TYPES = (str, int, float, datetime, DatetimeMS, ObjectId, type(None))
"""What a sort key or an id may be in a cursor (bool is an int): a stored value's own scalar types,
a date beyond year 9999 (read as a ``DatetimeMS``) and a hand-made ``ObjectId`` id included, so
the page after such a token can be reached."""
_CURSOR_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
"""A cursor is read as the collection is (``core/calls.py``): a date Python cannot hold as a ``DatetimeMS``."""


def read_cursor(cursor: str, field: str) -> _Position:
    """The position a cursor names; a malformed one, or one made for another sort, is a ValueError."""
    text = cursor.strip() if isinstance(cursor, str) else ""
    try:
        decoded = bson.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), codec_options=_CURSOR_CODEC)
    except (BSONError, binascii.Error, ValueError, TypeError):
        raise ValueError("the page cursor is malformed (cut short or edited?): start again from the first page") from None
    if (set(decoded) != {"f", "h", "k", "i"} or not isinstance(decoded["h"], bool) or decoded["i"] is None
            or not all(isinstance(decoded[part], _KEY_TYPES) for part in ("k", "i"))):
        # Only a stored value's own types: a document there would be read as a query operator.
        raise ValueError("the page cursor is malformed (cut short or edited?): start again from the first page")
    if decoded["f"] != field:
        raise ValueError(f"the page cursor belongs to the order by {decoded['f']}, not by {field}: "
                         "start again from the first page")
    return _Position(decoded["h"], decoded["k"], decoded["i"])


def count(collection: Collection, where: dict[str, Any]) -> int:
    """The match count: exact up to ``COUNT_CAP``, else ``COUNT_CAP + 1`` (counting a million
    matches takes seconds); the collection's own count when nothing is filtered."""
    return collection.count_documents(where, limit=COUNT_CAP + 1) if where else collection.estimated_document_count()


def page(collection: Collection, query: Query, size: int = 50, *, go: str = "first", cursor: str | None = None,
         number: int = 1, now: datetime | None = None) -> Page:
    """One page of the tokens ``query`` matches, by keyset: ``go`` is first, next (``cursor`` =
    the page's ``last_cursor``, ``number`` + 1), previous (``first_cursor``, ``number`` - 1) or
    last. A next past the end gives the last page, a previous before the start the first."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise ValueError(f"a page holds 1 to {MAX_SIZE} tokens")
    now = now or utcnow()
    finding = finds(query, go=go, cursor=cursor, now=now)
    where = query.to_filter(now)
    total = count(collection, where)
    pages = max(1, -(-total // size)) if total <= COUNT_CAP or not where else None  # unfiltered: exact
    # The last page holds what is left after the full pages before it, so that its number is right
    # and a previous from it meets the pages counted from the start.
    want = total - (pages - 1) * size if go == "last" and pages is not None and total else size
    found: list[dict[str, Any]] = []
    for match, order in finding:
        found.extend(collection.find(match, LIST_FIELDS).sort(order).limit(want + 1 - len(found)))
        if len(found) > want:
            break
    field, reverse = query.sort_key(), go in ("previous", "last")
    more = len(found) > want
    documents = found[:want]
    if reverse:
        documents.reverse()
    if not documents and go == "next":
        return page(collection, query, size, go="last", now=now)
    if not documents and go == "previous":
        return page(collection, query, size, go="first", now=now)
    has_previous = {"first": False, "next": True, "previous": more, "last": more}[go]
    has_next = {"first": more, "next": more, "previous": True, "last": False}[go]
    if not has_previous:
        number = 1
    elif not has_next:
        number = pages if pages is not None else -1
    return Page(documents, total, number, pages,
                cursor_of(documents[0], field) if documents else None,
                cursor_of(documents[-1], field) if documents else None, has_previous, has_next)
