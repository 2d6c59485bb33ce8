"""Each token's history: one small document per event in its own collection (``token_events``).

The tokens keep only their latest refresh and failure; operators asking "what happened to this
token" need the sequence: refreshed, refresh failed, checked, revoked, deleted, imported. An event
holds when, which token (id and user name), what, a short sentence (Zoho's error code, the accounts
host), and who: never a token value. Events expire after the store's ``events_retention_days``
(``ZOHO_EVENTS_RETENTION_DAYS``, 90 by default: ``settings.py``) through a TTL index on ``at``; the
(token_id, at, _id) index serves a token's history.

Writing an event never fails what it records: a failure is one warning line (``record_quietly``).
This module imports no SDK, so the SDK-free CLI can read histories.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pymongo
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from .clock import utcnow

log = logging.getLogger("mongo_store")

EVENTS = ("refreshed", "refresh-failed", "checked", "revoked", "deleted", "imported", "revoke-failed")
BIN = timedelta(hours=6)
SPAN = timedelta(days=7)
DETAIL_LENGTH = 200
"""A detail is a short sentence: longer text is cut (it never needs more)."""
_TTL_INDEX, _TOKEN_INDEX, ACTIVITY_INDEX = "at", "token_id_at", "at_event"
_BATCH = 1000
_CODE = re.compile(r"[A-Za-z0-9_. -]{1,64}")


def keep_events(events: Collection, retention_days: float) -> None:
    """The history's indexes: the TTL index on ``at`` carrying the retention (a changed retention is
    applied in place, as ``tools/audit.keep_audit`` does) and (token_id, at) for one token's history.
    A user who may not modify indexes (readWrite) keeps the old retention, with a warning."""
    seconds = max(1, round(retention_days * 86_400))
    events.create_index([("token_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name=_TOKEN_INDEX)
    events.create_index([("at", DESCENDING), ("event", ASCENDING)], name=ACTIVITY_INDEX)  # activity: covered
    try:
        events.create_index([("at", DESCENDING)], name=_TTL_INDEX, expireAfterSeconds=seconds)
    except OperationFailure as error:
        if error.code not in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict: it exists otherwise
            raise
        try:
            events.database.command("collMod", events.name, index={"name": _TTL_INDEX, "expireAfterSeconds": seconds})
        except OperationFailure as refused:
            if refused.code != 13:
                raise
            log.warning("this MongoDB user may not change the token history's retention (collMod, in dbAdmin)")


def sdk_actor() -> str:
    """Who an event the store writes names: the application's process (host and pid, never a secret)."""
    try:
        host = socket.gethostname() or "unknown host"
    except OSError:
        host = "unknown host"
    return f"sdk ({host}, pid {os.getpid()})"


def entry(token_id: str, user_name: str | None, event: str, detail: str, who: str,
          at: datetime | None = None) -> dict[str, Any]:
    """One event document. ``detail`` must be a sentence the caller built (never a token value):
    it is cut at ``DETAIL_LENGTH`` characters."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; events are {', '.join(EVENTS)}")
    return {"at": at or utcnow(), "token_id": token_id,
            "user_name": user_name if isinstance(user_name, str) else None, "event": event,
            "detail": " ".join(str(detail).split())[:DETAIL_LENGTH], "who": who}


def zoho_code(text: Any) -> str | None:
    """Zoho's error code (``invalid_code``, ``INVALID_TOKEN``) when ``text`` is one, else None: only a
    short code goes into an event, never an answer's free text."""
    return text if isinstance(text, str) and _CODE.fullmatch(text) else None


def record(events: Collection, entries: Iterable[dict[str, Any]]) -> int:
    """Insert events (in batches, unordered); returns how many."""
    batch: list[dict[str, Any]] = []
    written = 0
    for item in entries:
        batch.append(item)
        if len(batch) == _BATCH:
            written += len(events.insert_many(batch, ordered=False).inserted_ids)
            batch = []
    if len(batch) == 1:
        written += 1 if events.insert_one(batch[0]).inserted_id is not None else 0
    elif batch:
        written += len(events.insert_many(batch, ordered=False).inserted_ids)
    return written


def describe(error: BaseException) -> str:
    """A failed write in a few words: its type and server code, never its text (which may quote
    the command)."""
    code = getattr(error, "code", None)
    return type(error).__name__ + (f" (code {code})" if isinstance(code, int) else "")


def record_quietly(events: Collection, entries: Iterable[dict[str, Any]], seconds: float | None = None) -> bool:
    """``record``, never raising: a failure is one warning line. ``seconds`` bounds the write, so an
    unreachable server cannot hold up what the event records for longer."""
    items = list(entries)
    if not items:
        return True
    try:
        if seconds is None:
            record(events, items)
        else:
            with pymongo.timeout(seconds):
                record(events, items)
    except Exception as error:
        kinds = sorted({item.get("event", "?") for item in items})
        log.warning("could not record %d %s event(s) in %s: %s", len(items), "/".join(kinds), events.name,
                    describe(error))
        return False
    return True


def for_token(events: Collection, token_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """A token's latest ``limit`` events, newest first (the (token_id, at, _id) index: events of one
    millisecond keep the order they were written in)."""
    if not 1 <= limit <= 10_000:
        raise ValueError("a history holds 1 to 10,000 events")
    return list(events.find({"token_id": token_id}, {"_id": False})
                .sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit))


def bins(now: datetime) -> list[datetime]:
    """The edges of the activity chart's bins: 6 hours each over the last 7 days, the last one
    holding ``now``."""
    start = now.replace(hour=now.hour - now.hour % 6, minute=0, second=0, microsecond=0) + BIN - SPAN
    return [start + BIN * n for n in range(int(SPAN / BIN) + 1)]


def activity_pipeline(edges: list[datetime]) -> list[dict[str, Any]]:
    """The aggregation ``activity`` runs: the events between the first and last edge, counted per
    kind and bin (the bin number from the start)."""
    return [
        {"$match": {"at": {"$gte": edges[0], "$lt": edges[-1]}}},
        {"$project": {"_id": False, "at": True, "event": True}},  # read from the index alone
        {"$group": {"_id": {"event": "$event",
                            "bin": {"$floor": {"$divide": [{"$subtract": ["$at", edges[0]]}, BIN / timedelta(milliseconds=1)]}}},
                    "n": {"$sum": 1}}},
    ]


def activity(events: Collection, now: datetime) -> list[dict[str, Any]]:
    """Per 6 hours over the last 7 days, how many events of each kind: ``{"from": datetime,
    "refreshed": n, "refresh-failed": n, ...}``: one range of the (at, event) index, read from the
    index alone. Unlike the tokens' latest-refresh fields, a token refreshed every hour counts
    every time."""
    edges = bins(now)
    covered = ACTIVITY_INDEX in events.index_information()  # (mongomock: a hint must name an index)
    pipeline = activity_pipeline(edges)
    rows = events.aggregate(pipeline, hint=ACTIVITY_INDEX) if covered else events.aggregate(pipeline)
    counts: dict[tuple[int, str], int] = {}
    for row in rows:
        key = row["_id"]
        if key.get("event") in EVENTS and isinstance(key.get("bin"), (int, float)):
            counts[(int(key["bin"]), key["event"])] = row["n"]
    return [{"from": edge, **{kind: counts.get((n, kind), 0) for kind in EVENTS}} for n, edge in enumerate(edges[:-1])]
