"""Realistic fake tokens for the demo: several data centers, and every health state the overview
counts; the demo's clock, which stands still while the demo is stopped, so its tokens keep their
states from one start to the next (``keep_time``); and the sidebar's word on where Check and Revoke go."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from pymongo import UpdateOne
from pymongo.database import Database
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from ..core.clock import utcnow
from ..core.mapping import (
    CHECK_ERROR_FIELD,
    CHECK_RESULT_FIELD,
    CHECKED_AT_FIELD,
    FAILED_AT_FIELD,
    FAILURES_FIELD,
    LEASE_FIELD,
    REFRESHED_FIELD,
    STARTED_FIELD,
    token_fields,
)
from ..core.store import MongoTokenStore
from .auth import is_loopback
from .settings import Settings

KINDS = {"valid": 50, "expired": 20, "refresh-only": 9, "grant-only": 6, "failing": 7, "access-only": 5, "soon": 3}
"""How often each kind of token occurs (weights)."""

DOMAINS = {"https://www.zohoapis.com": 40, "https://www.zohoapis.eu": 25, "https://www.zohoapis.in": 15,
           "https://www.zohoapis.com.au": 8, "https://www.zohoapis.jp": 5, "https://www.zohoapis.ca": 4,
           "https://www.zohoapis.sa": 2, "https://www.zohoapis.com.cn": 1}
FIRST = ["ana", "ben", "chen", "dara", "elif", "femi", "gus", "hana", "ivan", "jo", "kai", "lena", "mo", "nia",
         "omar", "pia", "quinn", "ravi", "sara", "tom", "uma", "vik", "wen", "yara", "zoe"]
COMPANIES = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne"]


def _hex(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(size))


def planned(count: int = 300, rng: random.Random | None = None,
            now: datetime | None = None) -> list[tuple[OAuthToken, dict[str, Any]]]:
    """The tokens ``seed`` saves, each with the history it then writes on it (``$set`` fields, or
    none): the same for the same ``rng`` (by default, ``random.Random(2026)``), so another process
    can know the demo's tokens without reading them (the local fake Zoho of an in-memory demo)."""
    rng = rng or random.Random(2026)
    now = now or utcnow()
    now_ms = int(now.replace(tzinfo=timezone.utc).timestamp() * 1000)
    clients = [f"1000.{_hex(rng, 30).upper()}" for _ in range(6)]
    tokens = []
    for number in range(count):
        client = rng.choice(clients)
        token = OAuthToken(client_id=client, client_secret=_hex(rng, 42), refresh_token=f"1000.{_hex(rng, 32)}.{_hex(rng, 32)}",
                           redirect_url="https://crm-sync.example.com/oauth/callback")
        kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
        if kind == "grant-only":
            token.set_refresh_token(None)
            token.set_grant_token(f"1000.{_hex(rng, 32)}.{_hex(rng, 32)}")
        elif kind != "refresh-only":
            token.set_access_token(f"1000.{_hex(rng, 32)}.{_hex(rng, 32)}")
            offset = {"valid": rng.randint(10_000, 3_600_000), "soon": rng.randint(60_000, 600_000)}.get(
                kind, -rng.randint(60_000, 6 * 86_400_000))
            token.set_expires_in(str(now_ms + offset))
        if kind == "access-only":
            token.set_refresh_token(None)
        if kind != "grant-only" and rng.random() < 0.9:
            person, company = rng.choice(FIRST), rng.choice(COMPANIES)
            token.set_user_signature(UserSignature(f"{person}.{number}@{company}.example:{700000 + number}"))
        token.set_api_domain(rng.choices(list(DOMAINS), list(DOMAINS.values()))[0])
        tokens.append((token, _history(kind, token, now, rng)))
    return tokens


SEEDED_AT_ENV = "ZOHO_DASHBOARD_DEMO_SEEDED_AT"
"""The moment an in-memory demo's tokens are dated from (ISO 8601 UTC), set by the ``demo`` command:
the dashboard seeds mongomock when its first page opens, and its tokens must be the very ones the
command's fake Zoho was taught at the start."""


def seeded_at() -> datetime:
    """``SEEDED_AT_ENV`` if set (and valid), else now."""
    try:
        return datetime.fromisoformat(os.environ[SEEDED_AT_ENV]).replace(tzinfo=None)
    except (KeyError, ValueError):
        return utcnow()


def seed(store: MongoTokenStore, count: int = 300, rng: random.Random | None = None) -> int:
    """Save ``count`` fake tokens through the store's own save path, then give them the history a
    running deployment leaves: refreshes over the past days, failed refreshes and checks, and
    grant tokens nobody exchanged, each dated consistently (created before its first refresh,
    saved last when it was last refreshed), and the token history those days would have written,
    spread over the week (not one burst at the moment of seeding). Written directly: the demo
    cannot wait hours or call Zoho."""
    now = seeded_at()
    written = []
    for token, history in planned(count, rng, now):
        store.save_token(token)
        if history:
            store.collection.update_one({"_id": token.get_id()}, history)
        written.append(token.get_id())
    if store.events is not None:  # the saves above each recorded a refresh now: the week's history instead
        store.events.delete_many({"token_id": {"$in": written}})
        documents = store.collection.find({"_id": {"$in": written}})
        events = [event for document in documents for event in past_events(document, now)]
        for start in range(0, len(events), 1000):
            store.events.insert_many(events[start:start + 1000], ordered=False)
    return count


def past_events(document: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The history a token's dates imply: a refresh every few hours back from its last one (within
    the last 7 days), its failed refreshes and its last check. Never a token value."""
    from ..core import events

    token_id, name = document["_id"], document.get("user_name")
    rng = random.Random(token_id)  # the same history for the same token
    found = []
    last = document.get(REFRESHED_FIELD)
    week = now - timedelta(days=7)
    if isinstance(last, datetime):
        at = last
        while at > week and at > document.get("created_at", week):
            found.append(events.entry(token_id, name, "refreshed", "a new access token was saved", "sdk", at=at))
            at -= timedelta(hours=rng.choice([6, 9, 12, 18, 24, 30]), minutes=rng.randint(0, 59))
    failed = document.get(FAILED_AT_FIELD) or document.get(LEASE_FIELD)
    if isinstance(failed, datetime) and failed > week:
        found.append(events.entry(token_id, name, "refresh-failed", "a refresh did not save in time", "sdk", at=failed))
    checked = document.get(CHECKED_AT_FIELD)
    if isinstance(checked, datetime) and checked > week:
        found.append(events.entry(token_id, name, "checked", f"Zoho: {document.get(CHECK_RESULT_FIELD)}", "ops (demo)",
                                  at=checked))
    return found


def planned_documents(count: int = 300, rng: random.Random | None = None,
                      now: datetime | None = None) -> list[dict[str, Any]]:
    """``planned`` as the documents the store would hold (without ids), for ``demo_zoho.teach``."""
    now = now or utcnow()
    documents = []
    for token, history in planned(count, rng, now):
        document = token_fields(token) | {"updated_at": now}
        document.pop("_id", None)
        documents.append(document | history.get("$set", {}))
    return documents


def _history(kind: str, token: OAuthToken, now: datetime, rng: random.Random) -> dict[str, Any]:
    """What the store would have recorded for this kind of token by now."""
    changes: dict[str, Any] = {}
    expires_in = token.get_expires_in()
    if expires_in:  # Zoho's access tokens live an hour: this one was issued an hour before it expires
        expiry = datetime(1970, 1, 1) + timedelta(milliseconds=int(expires_in))
        changes[REFRESHED_FIELD] = changes["updated_at"] = expiry - timedelta(hours=1)  # last saved by that refresh
    if kind == "grant-only":  # stored days ago and never exchanged: unusable from the start (never turning so mid-demo)
        changes["updated_at"] = now - timedelta(days=rng.randint(1, 20))
    # Created before anything else happened to it: weeks before its first save or refresh.
    earliest = min([changes.get("updated_at") or now, changes.get(REFRESHED_FIELD) or now, now])
    changes["created_at"] = earliest - timedelta(days=rng.randint(1, 90), hours=rng.randint(0, 23))
    if kind == "failing":
        failed_at = now - timedelta(minutes=rng.randint(5, 3 * 24 * 60))
        way = rng.choice(["lease", "count", "check"])
        if way == "lease":  # a worker set out to refresh, and never saved
            changes |= {LEASE_FIELD: failed_at, STARTED_FIELD: failed_at - timedelta(seconds=10)}
        elif way == "count":  # workers took over lapsed leases, again and again
            changes |= {FAILURES_FIELD: rng.randint(1, 40), FAILED_AT_FIELD: failed_at,
                        STARTED_FIELD: failed_at + timedelta(seconds=10)}
        else:  # an operator's check, and Zoho's answer
            error = rng.choice(["invalid_code", "INVALID_TOKEN"])
            changes |= {CHECKED_AT_FIELD: failed_at, CHECK_RESULT_FIELD: error, CHECK_ERROR_FIELD: error}
    return {"$set": changes} if changes else {}


CLOCK_COLLECTION = "demo_clock"
"""Where a kept demo database remembers the last moment the demo ran (one document)."""
CLOCK_BEAT = 30.0
"""Seconds between two writes of the demo's clock while it runs."""


def stamp(database: Database[dict[str, Any]], now: datetime | None = None) -> None:
    """Remember ``now`` as the last moment the demo ran (at the start, every ``CLOCK_BEAT``, at the stop)."""
    database[CLOCK_COLLECTION].replace_one({"_id": "clock"}, {"_id": "clock", "at": now or utcnow()}, upsert=True)


def keep_time(database: Database[dict[str, Any]], now: datetime | None = None) -> timedelta:
    """Move every date in the demo's database on by the time the demo was stopped, so every token
    is where it was at the stop: a token healthy for 30 more minutes still is, one idle or failing
    still is, and what the operator checked, revoked or deleted stays so. Dates in the tokens, the
    audit log and any other collection of the database (top-level fields); returns the shift."""
    now = now or utcnow()
    clock = database[CLOCK_COLLECTION].find_one({"_id": "clock"})
    last = clock.get("at") if clock else None
    shift = now - last if isinstance(last, datetime) else timedelta(0)
    if shift > timedelta(0):
        for name in database.list_collection_names():
            if name == CLOCK_COLLECTION or name.startswith("system."):
                continue
            collection = database[name]
            moves = [UpdateOne({"_id": document["_id"]}, {"$set": dated})
                     for document in collection.find({})
                     if (dated := {key: value + shift for key, value in document.items() if isinstance(value, datetime)})]
            for start in range(0, len(moves), 1000):
                collection.bulk_write(moves[start:start + 1000], ordered=False)
    stamp(database, now)
    return shift


def sidebar_note(settings: Settings) -> str | None:
    """One sentence for the sidebar of a demo (None otherwise): where Check and Revoke go."""
    if not settings.demo:
        return None
    if settings.accounts_url and settings.api_url and is_loopback(urlsplit(settings.accounts_url).hostname):
        origin = settings.accounts_url.split("/oauth/")[0]
        return f"Check and Revoke go to the demo's local fake Zoho at {origin}: no internet needed."
    return "Check and Revoke go to Zoho's own servers, which do not know the demo's fake tokens."
