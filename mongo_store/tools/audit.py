"""The audit log: who did what to which tokens, kept ``audit_retention_days`` (a TTL index),
searchable and pageable at any depth. Its entries are written by the operator actions
(``operations.py``), the only writer.

Search by actor (a case-insensitive prefix of ``who``), by token (its id, or a case-insensitive
prefix of a user name the entry names: ``_prefix``), by action (``ACTIONS``) and by time (from
``since``, before ``until``); pages are keyset ranges on (``at``, ``_id``), newest first,
so page 500 costs what page 1 costs. Every query runs on an index (``audit_indexes``): no
collection scan. This module imports no SDK.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from datetime import datetime, timezone
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

log = logging.getLogger("mongo_store")

GOES = ("first", "next", "previous", "last")
MAX_SIZE = 1000
MAX_TEXT = 200
ACTIONS = {"delete": ("delete",), "delete-filtered": ("delete-filtered",), "delete-all": ("delete-all",),
           "revoke": ("revoke",), "check": ("check",),
           "cleanup": ("cleanup", "cleanup revoke+delete", "cleanup delete", "cleanup revoke-replaced"),
           "import": ("import",)}
"""The actions an operator searches by, each with the values its entries hold (a cleanup writes one
entry per token and one with the run's summary)."""
AUDIT_INDEXES = [
    IndexModel([("at", DESCENDING), ("_id", DESCENDING)], name="at_id"),
    IndexModel([("action", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name="action_at_id"),
    IndexModel([("who", ASCENDING), ("at", DESCENDING)], name="who_at"),
    IndexModel([("ids", ASCENDING), ("at", DESCENDING)], name="ids_at"),
    IndexModel([("user_names", ASCENDING), ("at", DESCENDING)], name="user_names_at"),
]
"""The keyset order (a time range is a range of it), and one index per searched field (``ids``
and ``user_names`` are arrays: multikey; ``action`` with the keyset order, so a page of one action
reads only its entries). The TTL index on ``at`` alone is ``keep_audit``'s."""

_NEWEST = [("at", DESCENDING), ("_id", DESCENDING)]
_OLDEST = [("at", ASCENDING), ("_id", ASCENDING)]


def keep_audit(audit: Collection, retention_days: float) -> None:
    """The audit log's indexes: its entries expire after ``retention_days`` (MongoDB's TTL monitor
    deletes them, about once a minute): the ``at`` index carries the retention, and a changed one is
    applied to it in place. A user who may create indexes but not modify them (readWrite) keeps the
    old retention, with a warning. Then the search and paging indexes."""
    seconds = max(1, round(retention_days * 86_400))
    try:
        audit.create_index([("at", DESCENDING)], name="at", expireAfterSeconds=seconds)
    except OperationFailure as error:
        if error.code not in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict: it exists otherwise
            raise
        try:
            audit.database.command("collMod", audit.name, index={"name": "at", "expireAfterSeconds": seconds})
        except OperationFailure as refused:
            if refused.code != 13:
                raise
            log.warning("this MongoDB user may not change the audit log's retention (collMod, in dbAdmin)")
    audit.create_indexes(AUDIT_INDEXES)


CASED = 4
"""A prefix is matched with its first four letters in each of their cases (2**4 index ranges at
most), and everything after them case-insensitively: the server reads a narrow range of the
index (up to the fifth letter), not all of its keys."""


def _prefix(field: str, text: str) -> list[dict[str, Any]]:
    """Clauses (any of them matches) for a case-insensitive prefix of ``field``: one anchored regex
    per case of the first letters, whose literal start the server answers from the field's index."""
    variants, cased, end = [""], 0, 0
    for end, character in enumerate(text):  # noqa: B007  (end: where the literal start stops)
        lower, upper = character.lower(), character.upper()
        if lower != upper and len(lower) == len(upper) == 1:
            if cased == CASED:
                break
            cased += 1
            variants = [variant + form for variant in variants for form in (lower, upper)]
        else:
            variants = [variant + character for variant in variants]
    else:
        end = len(text)
    rest = text[end:]
    tail = f"(?i:{re.escape(rest)})" if rest else ""
    return [{field: {"$regex": "^" + re.escape(variant) + tail}} for variant in variants]


def _clean(name: str, text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_TEXT or any(not character.isprintable() for character in text):
        raise ValueError(f"the {name} search must be printable text of at most {MAX_TEXT} characters")
    return text


def audit_filter(actor: str | None = None, token: str | None = None, *, action: str | None = None,
                 since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """The entries by an actor whose name starts with ``actor`` (any case) that name the token
    ``token`` (its exact id, or a user name starting with it, any case), of ``action`` (a key of
    ``ACTIONS``), made at ``since`` or later and before ``until``."""
    clauses: list[dict[str, Any]] = []
    actor, token = _clean("actor", actor), _clean("token", token)
    if action is not None:
        if action not in ACTIONS:
            raise ValueError(f"an audit action is one of {', '.join(ACTIONS)}")
        values = ACTIONS[action]
        clauses.append({"action": values[0] if len(values) == 1 else {"$in": list(values)}})
    when: dict[str, datetime] = {}
    for name, value, op in (("since", since, "$gte"), ("until", until, "$lt")):
        if value is not None:
            if not isinstance(value, datetime):
                raise ValueError(f"{name} must be a date and time")
            when[op] = value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if since is not None and until is not None and when["$gte"] >= when["$lt"]:
        raise ValueError("the start of the time range must come before its end")
    if when:
        clauses.append({"at": when})
    if actor:
        who = _prefix("who", actor)
        clauses.append(who[0] if len(who) == 1 else {"$or": who})
    if token:
        clauses.append({"$or": [{"ids": token}, *_prefix("user_names", token)]})
    return {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})


def encode_cursor(entry: dict[str, Any]) -> str:
    """A URL-safe cursor for an entry's place in the order (its ``at`` and ``_id``)."""
    at = entry.get("at")
    if not isinstance(at, datetime):
        raise ValueError("an audit entry without a date has no place in the order")
    at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
    key = entry["_id"]
    raw = json.dumps({"at": round(at.timestamp() * 1000), "id": str(key), "oid": isinstance(key, ObjectId)},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, Any]:
    """(at, _id) from ``encode_cursor``; anything else raises ValueError with one sentence."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromtimestamp(int(raw["at"]) / 1000, timezone.utc).replace(tzinfo=None)
        key = ObjectId(raw["id"]) if raw.get("oid") else str(raw["id"])
    except (binascii.Error, ValueError, TypeError, KeyError, InvalidId, OverflowError, OSError, AttributeError):
        raise ValueError("the page cursor is not one this audit log gave out: start again from the first page") from None
    return at, key


def _beyond(cursor: str, older: bool) -> dict[str, Any]:
    at, key = decode_cursor(cursor)
    op = "$lt" if older else "$gt"
    return {"$or": [{"at": {op: at}}, {"at": at, "_id": {op: key}}]}


def _both(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {"$and": [first, second]} if first else second


def check_request(actor: str | None, token: str | None, size: int, cursor: str | None, go: str, *,
                  action: str | None = None, since: datetime | None = None,
                  until: datetime | None = None) -> dict[str, Any]:
    """The filter of a page request, once it is known to be sound: else ValueError, one sentence
    (before any database call, so a caller can tell a bad request from a failing server)."""
    if go not in GOES:
        raise ValueError(f"go must be one of {', '.join(GOES)}")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise ValueError(f"a page holds 1 to {MAX_SIZE} entries")
    if go in ("next", "previous"):
        if not cursor:
            raise ValueError(f"going to the {go} page needs the cursor of the page before")
        decode_cursor(cursor)
    return audit_filter(actor, token, action=action, since=since, until=until)


def audit_page(audit: Collection, *, actor: str | None = None, token: str | None = None, size: int = 50,
               cursor: str | None = None, go: str = "first", action: str | None = None, since: datetime | None = None,
               until: datetime | None = None) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """One page of audit entries, newest first: (entries, the cursor for the next (older) page or
    None, the cursor for the previous (newer) page or None). ``go``: ``first``, ``next`` (with
    the next cursor), ``previous`` (with the previous cursor), ``last``. Each page is one keyset
    range (plus one indexed lookup for a neighbour), whatever its depth."""
    where = check_request(actor, token, size, cursor, go, action=action, since=since, until=until)
    more_args: dict[str, Any] = {"action": action, "since": since, "until": until}
    if go in ("first", "next"):
        query = where if go == "first" else _both(where, _beyond(cursor or "", older=True))
        found = list(audit.find(query).sort(_NEWEST).limit(size + 1))
        entries, more = found[:size], len(found) > size
        if go == "next" and not entries:  # past the oldest (expired since the link was made): the last page
            return audit_page(audit, actor=actor, token=token, size=size, go="last", **more_args)
        older = encode_cursor(entries[-1]) if more else None
        newer = None
        if go == "next" and entries and audit.find_one(_both(where, _beyond(encode_cursor(entries[0]), older=False)),
                                                      {"_id": True}, sort=_OLDEST) is not None:
            newer = encode_cursor(entries[0])
        return entries, older, newer
    query = where if go == "last" else _both(where, _beyond(cursor or "", older=False))
    found = list(audit.find(query).sort(_OLDEST).limit(size + 1))
    entries, more = list(reversed(found[:size])), len(found) > size
    if go == "previous" and not entries:  # before the newest: the first page
        return audit_page(audit, actor=actor, token=token, size=size, go="first", **more_args)
    newer = encode_cursor(entries[0]) if more else None
    older = None
    if go == "previous" and entries and audit.find_one(_both(where, _beyond(encode_cursor(entries[-1]), older=True)),
                                                      {"_id": True}, sort=_NEWEST) is not None:
        older = encode_cursor(entries[-1])
    return entries, older, newer


def outcome_text(entry: dict[str, Any]) -> str:
    """An entry's outcome in one line, for a person (the CLI's ``audit``, the dashboard's Audit):
    what happened, why (Zoho's answer, the refusal), how many were deleted, each check's result and
    the filter of a filtered delete. Never empty: an entry still open says so."""
    parts = [str(entry[key]) for key in ("outcome", "reason") if entry.get(key)]
    if entry.get("zoho") and entry.get("zoho") not in parts and str(entry["zoho"]) not in str(entry.get("outcome")):
        parts.append(f"Zoho: {entry['zoho']}")
    if entry.get("deleted") is not None and not any("deleted" in part for part in parts):
        parts.append(f"deleted {entry['deleted']}")
    if entry.get("results"):
        parts.append(", ".join(map(str, entry["results"])))
    if entry.get("scope"):
        parts.append(f"filter: {entry['scope']}")
    return "; ".join(parts) or "no outcome recorded (the action stopped before it)"


def who_text(entry: dict[str, Any]) -> str:
    """Who acted, with the role the entry records (entries older than roles have none)."""
    who = str(entry.get("who") or "unknown")
    return f"{who} ({entry['role']})" if entry.get("role") else who
