"""Operator queries (stats, filtered and paged lists), shared by the CLI and the dashboard.

All of them run on the server, with projections and the store's indexes: nothing here loads the
whole collection. Secrets are never searchable: a secret typed into a search box ends up in logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from ..core.clock import utc_naive
from ..core.errors import sentence
from ..core.events import entry as event_entry
from ..core.events import record_quietly
from ..core.lease import REFRESH_WINDOW, utcnow
from ..core.mapping import (
    CHECK_ERROR_FIELD,
    FAILED_AT_FIELD,
    FAILURES_FIELD,
    ISSUED_FIELD,
    LEASE_FIELD,
    REFRESHED_FIELD,
    RETRY_FIELD,
    ZOHO_REFRESH_TOKEN_LIMIT,
    check_text,
)
from ..core.masking import ago
from ..core.search import describe, search_filter
from . import datacenters
from .history import audit_indexes

log = logging.getLogger("mongo_store")

STATUSES = ("valid", "refresh-window", "within-hour", "expired")
LIST_FIELDS = {"_id": True, "user_name": True, "client_id": True, "api_domain": True, "expiry_time": True,
               "updated_at": True, "access_token": True, "refresh_token": True, "grant_token": True,
               REFRESHED_FIELD: True, LEASE_FIELD: True, FAILURES_FIELD: True, FAILED_AT_FIELD: True,
               RETRY_FIELD: True, CHECK_ERROR_FIELD: True, ISSUED_FIELD: True}
COUNT_CAP = 10_000
"""A page's match count stops here ("10,000+"): counting a million matches takes seconds."""


DATA_CENTERS = datacenters.DOMAINS
"""Zoho's data centers by their one name (``datacenters.py``), and the api_domain each one's tokens carry."""


def data_center(text: str) -> str:
    """The api_domain for a data center given as ``EU``, ``eu``, ``com.au``, ``www.zohoapis.eu`` or the URL."""
    found = datacenters.known(text)
    if found is None:
        raise ValueError(f"{text!r} is no Zoho data center; use one of {', '.join(DATA_CENTERS)} (or its URL)")
    return DATA_CENTERS[found]


def describe_search(text: str) -> str:
    """A sentence saying what a search looked at (for an empty result)."""
    return describe(text)


def status_filter(status: str, now: datetime) -> dict[str, Any]:
    """The filter for a token status; each one is a range on the ``expiry_time`` index."""
    soon, hour = now + REFRESH_WINDOW, now + timedelta(hours=1)
    filters = {
        "valid": {"expiry_time": {"$gt": soon}},
        "refresh-window": {"expiry_time": {"$gt": now, "$lte": soon}},
        "within-hour": {"expiry_time": {"$gt": now, "$lte": hour}},
        "expired": {"expiry_time": {"$lte": now}},
    }
    if status not in filters:
        raise ValueError(f"unknown status {status!r}; choose from {', '.join(STATUSES)}")
    return filters[status]


# -- health: what an operator needs first, which Zoho connections work ---------------------------

HEALTH = ("healthy", "idle", "failing", "unusable")
HEALTH_MEANING = {
    "healthy": "the access token is valid",
    "idle": "the access token has lapsed; the SDK gets a new one on next use (with the refresh token, "
            "or a grant token not yet exchanged): normal",
    "failing": "a refresh or a check failed since the token was last saved",
    "unusable": "nothing renews it without a person: no refresh token and the access token has lapsed, "
                "or a grant token older than a grant token lives (10 minutes)",
}
"""One line per state, shown wherever the word is."""
NEEDS_ATTENTION = ("failing", "unusable")
ATTENTION = "attention"
"""``Query(health=ATTENTION)``: the tokens in either state that needs a person."""
GRANT_LIFETIME = timedelta(minutes=10)
"""How long a Zoho grant token can be exchanged."""


def _unusable(now: datetime) -> dict[str, Any]:
    return {"$or": [
        # ``refresh_token: None`` (null or absent) adds nothing to ``$exists: False`` but lets the
        # planner use NO_REFRESH_INDEX, the partial index of exactly those tokens' expiries.
        {"expiry_time": {"$lte": now}, "refresh_token": None, "$and": [{"refresh_token": {"$exists": False}}]},
        {"grant_token": {"$exists": True}, "refresh_token": {"$exists": False},  # the grant_token index
         "access_token": {"$exists": False}, "updated_at": {"$lte": now - GRANT_LIFETIME}},
    ]}


def _failure_marked(now: datetime) -> dict[str, Any]:
    """Counted failed refreshes, a failed check, or a lease that lapsed without a save (its failure
    is counted only when the next worker takes it over): each a nearly empty sparse index."""
    return {"$or": [{FAILURES_FIELD: {"$exists": True}}, {CHECK_ERROR_FIELD: {"$exists": True}},
                    {LEASE_FIELD: {"$lte": now}}]}


_NOT_MARKED = {FAILURES_FIELD: {"$exists": False}, CHECK_ERROR_FIELD: {"$exists": False}}


NO_REFRESH_INDEX = "expiry_time_no_refresh_token"
"""The partial index (``indexes.py``) of the expiries of tokens without a refresh token, which
makes the unusable count fetch only those."""


def health_filter(health: str, now: datetime) -> dict[str, Any]:
    """The filter for one health state; the four never overlap and together match every token.
    In order: unusable, then failing, then healthy (valid), and idle is the rest."""
    not_lapsed = {LEASE_FIELD: {"$not": {"$lte": now}}}
    filters = {
        "unusable": _unusable(now),
        "failing": {"$and": [_failure_marked(now), {"$nor": _unusable(now)["$or"]}]},
        "healthy": {"expiry_time": {"$gt": now}, **_NOT_MARKED, **not_lapsed},
        # The one state without a narrow index: it walks the refresh_token index (and the grant and
        # access tokens' ones, for a grant not yet exchanged and an access token with no expiry).
        "idle": {"$and": [_NOT_MARKED, not_lapsed, {"$or": [
            {"refresh_token": {"$exists": True}, "expiry_time": {"$not": {"$gt": now}}},
            {"grant_token": {"$exists": True}, "refresh_token": {"$exists": False},
             "access_token": {"$exists": False}, "updated_at": {"$gt": now - GRANT_LIFETIME}},
            {"access_token": {"$exists": True}, "refresh_token": {"$exists": False}, "expiry_time": {"$exists": False}},
        ]}]},
    }
    if health not in filters:
        raise ValueError(f"unknown health {health!r}; choose from {', '.join(HEALTH)}")
    return filters[health]


def health_of(document: dict[str, Any], now: datetime | None = None) -> tuple[str, str]:
    """(state, why) for one stored document, by the same rules as ``health_filter``; ``why`` names
    this token's own facts (dates in UTC), never a secret."""
    now = now or utcnow()
    expiry, updated = utc_naive(document.get("expiry_time")), utc_naive(document.get("updated_at"))
    lease, failures = utc_naive(document.get(LEASE_FIELD)), document.get(FAILURES_FIELD)
    has = {key: document.get(key) is not None for key in ("refresh_token", "access_token", "grant_token")}
    if not isinstance(expiry, datetime):  # absent (or malformed: shown as such elsewhere)
        expiry = None
    if not has["refresh_token"] and expiry is not None and expiry <= now:
        return "unusable", f"no refresh token, and the access token lapsed {ago(expiry, now)}"
    if (has["grant_token"] and not has["refresh_token"] and not has["access_token"]
            and isinstance(updated, datetime) and updated <= now - GRANT_LIFETIME):
        return "unusable", f"a grant token stored {ago(updated, now)} and never exchanged (grant tokens live 10 minutes)"
    reasons = []
    if failures is not None:
        last, retry = utc_naive(document.get(FAILED_AT_FIELD)), utc_naive(document.get(RETRY_FIELD))
        reasons.append(f"{failures} failed refresh(es) since the last save"
                       + (f", the last {ago(last, now)}" if isinstance(last, datetime) else "")
                       + (f"; callers fail at once until the next attempt {ago(retry, now)}"
                          if isinstance(retry, datetime) and retry > now else ""))
    if isinstance(lease, datetime) and lease <= now:
        reasons.append(f"a refresh lease lapsed {ago(lease, now)} without a save")
    if document.get(CHECK_ERROR_FIELD) is not None:
        reasons.append(f"the last check failed: {document[CHECK_ERROR_FIELD]}")
    issued = document.get(ISSUED_FIELD)
    issued = len(issued) if isinstance(issued, list) else 0
    if reasons:
        if issued >= ZOHO_REFRESH_TOKEN_LIMIT and failures is not None:
            reasons.append(f"{issued} refresh tokens were issued for this user: Zoho keeps {ZOHO_REFRESH_TOKEN_LIMIT} "
                           "per user and client, so its limit may have evicted this one")
        return "failing", "; ".join(reasons)
    nearing = (f"; {issued} refresh tokens issued for this user: Zoho keeps {ZOHO_REFRESH_TOKEN_LIMIT} per user "
               "and client, and the next one deletes the oldest" if issued >= ZOHO_REFRESH_TOKEN_LIMIT - 2 else "")
    if isinstance(expiry, datetime) and expiry > now:
        return "healthy", f"the access token is valid, expires {ago(expiry, now)}{nearing}"
    if has["refresh_token"]:
        lapsed = f"lapsed {ago(expiry, now)}" if expiry is not None else "is not issued yet"
        return "idle", f"the access token {lapsed}; the SDK refreshes it on next use{nearing}"
    if has["grant_token"] and not has["access_token"]:
        return "idle", "a grant token not yet exchanged; the SDK exchanges it on first use"
    return "idle", "the access token has no stored expiry; the SDK stores one on next use"


def health_queries(now: datetime, narrow: bool = False) -> dict[str, tuple[dict[str, Any], str | None]]:
    """The counts ``health_counts`` needs, each served by an index, with the index to name (or
    ``None``: the planner's choice): failing through its nearly empty indexes; healthy as the valid
    expiries (two ranges the status counts share: index only) less the marked ones among them; idle
    as the rest of the exact total (the _id index).

    Unusable, with ``narrow`` (the ``NO_REFRESH_INDEX`` exists): the lapsed tokens with no refresh
    token through that partial index, which holds only the tokens without one (a few percent), so
    only they are fetched; a refresh token stored as null (which the store never writes, and which
    the index holds too) is subtracted; plus the old grant tokens that are not lapsed too. Without
    it, the ``unusable`` filter itself, which fetches every lapsed token (seconds at a million)."""
    lapsed = {"expiry_time": {"$lte": now}}
    queries: dict[str, tuple[dict[str, Any], str | None]] = {
        "valid-later": (status_filter("valid", now), None), "valid-soon": (status_filter("refresh-window", now), None),
        "failing": (health_filter("failing", now), None),
        "valid-marked": ({"$and": [{"expiry_time": {"$gt": now}}, _failure_marked(now)]}, None),
        "all": ({}, "_id_"),
    }
    if narrow:
        old_grant = _unusable(now)["$or"][1]
        queries |= {
            "lapsed-no-refresh": ({**lapsed, "refresh_token": None}, NO_REFRESH_INDEX),
            "lapsed-null-refresh": ({**lapsed, "refresh_token": {"$type": "null"}}, None),
            "old-grant-not-lapsed": ({**old_grant, "expiry_time": {"$not": {"$lte": now}}}, "grant_token"),
        }
    else:
        queries["unusable"] = (_unusable(now), None)
    return queries


def health_counts(found: dict[str, int]) -> dict[str, int]:
    """The four states' counts from the counts of ``health_queries`` (they add up to the total)."""
    healthy = found["valid-later"] + found["valid-soon"] - found["valid-marked"]
    unusable = found["unusable"] if "unusable" in found else \
        found["lapsed-no-refresh"] - found["lapsed-null-refresh"] + found["old-grant-not-lapsed"]
    return {"healthy": healthy, "idle": found["all"] - healthy - found["failing"] - unusable,
            "failing": found["failing"], "unusable": unusable}


SORTS = {"user": "user_name", "expiry": "expiry_time", "refreshed": REFRESHED_FIELD}
"""``--sort`` names and the field each orders by (each has a sparse index)."""


@dataclass(frozen=True)
class Query:
    """What an operator asked to see. ``search``: one text, the start of a user name's e-mail, its
    domain or its org id (any case), or of a token id (``search.py``); ``sort`` one of ``SORTS``
    (else the field the filter narrows)."""

    search: str | None = None
    status: str | None = None
    api_domain: str | None = None
    descending: bool = False
    health: str | None = None
    sort: str | None = None

    def to_filter(self, now: datetime, *, ids_only: bool = False) -> dict[str, Any]:
        """The server-side filter. ``ids_only``: for the tokens without a user name, which have no
        search keys, so a search can match only their id (``paging.py`` lists them apart)."""
        clauses: list[dict[str, Any]] = []
        if self.search and self.search.strip():
            clauses.append(search_filter(self.search, ids_only=ids_only))  # anchored regexes: index ranges
        if self.status:
            clauses.append(status_filter(self.status, now))
        if self.health == ATTENTION:
            clauses.append({"$or": [health_filter(state, now) for state in NEEDS_ATTENTION]})
        elif self.health:
            clauses.append(health_filter(self.health, now))
        if self.api_domain:
            clauses.append({"api_domain": check_text("api_domain", self.api_domain)})
        return {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})

    def sort_key(self) -> str:
        """The asked order, else the field the filter narrows, so one index serves both (people,
        by user name, for a search). Ties are broken by id (``paging.py``)."""
        if self.sort is not None:
            if self.sort not in SORTS:
                raise ValueError(f"unknown sort {self.sort!r}; choose from {', '.join(SORTS)}")
            return SORTS[self.sort]
        if self.search and self.search.strip():
            return "user_name"
        if self.status:
            return "expiry_time"
        return "api_domain" if self.api_domain else "_id"


def page(collection: Collection, query: Query, number: int = 1, size: int = 50,
         now: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
    """One page by skip and limit (and the match count, capped past ``COUNT_CAP``), in the order
    ``paging.page`` walks by keyset: kept for ``bench/admin.py``, which measures the two side by
    side. A deep page costs as many index keys as it skips: list with ``paging.page``."""
    if number < 1 or not 1 <= size <= 1000:
        raise ValueError("page numbers start at 1 and a page holds 1 to 1000 tokens")
    where = query.to_filter(now or utcnow())
    key, skip = query.sort_key(), (number - 1) * size
    direction = DESCENDING if query.descending else ASCENDING
    if key == "_id":
        documents = list(collection.find(where, LIST_FIELDS).sort("_id", direction).skip(skip).limit(size))
    else:
        having = _both(where, {key: {"$ne": None}})
        documents = list(collection.find(having, LIST_FIELDS).sort([(key, direction), ("_id", direction)])
                         .skip(skip).limit(size))
        if len(documents) < size:
            # Where the tokens without the field start: known from this page unless it is empty.
            before = skip + len(documents) if documents or not skip else collection.count_documents(having, limit=skip)
            lacking = _both(where, {key: None})
            documents += list(collection.find(lacking, LIST_FIELDS).sort([(key, ASCENDING), ("_id", ASCENDING)])
                              .skip(max(0, skip - before)).limit(size - len(documents)))
    total = collection.count_documents(where, limit=COUNT_CAP + 1) if where else collection.estimated_document_count()
    return documents, total


def _both(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {"$and": [first, second]} if first else second


AUDIT_COLLECTION = "dashboard_audit"
"""Where deletions are recorded (``DASHBOARD_AUDIT_COLLECTION`` names another), by the dashboard and the CLI."""
AUDIT_RETENTION_ENV = "ZOHO_AUDIT_RETENTION_DAYS"
AUDIT_RETENTION_DAYS = 400.0
"""How long audit entries are kept by default: a TTL index on ``at`` deletes older ones."""


def audit_retention(environ: dict[str, str] | None = None) -> float:
    """The configured retention of audit entries, in days (``ZOHO_AUDIT_RETENTION_DAYS``, strictly)."""
    from .cleanup import days  # (cleanup builds on this module)

    environ = dict(os.environ) if environ is None else environ
    return days(AUDIT_RETENTION_ENV, environ.get(AUDIT_RETENTION_ENV)) or AUDIT_RETENTION_DAYS


def keep_audit(audit: Collection, retention_days: float) -> None:
    """Audit entries expire after ``retention_days`` (MongoDB's TTL monitor deletes them, about once a
    minute): the ``at`` index carries the retention, and a changed one is applied to it in place.
    A user who may create indexes but not modify them (readWrite) keeps the old retention, with a warning."""
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
    audit_indexes(audit)  # the Audit page's search and paging (history.py)


def audited_delete(tokens: Collection, audit: Collection, ids: list[str] | None, who: str,
                   action: str = "delete", scope: str | None = None, events: Collection | None = None) -> int:
    """Delete these tokens (``None``: all of them), recording when, who, which ids and user names
    first, and how many were deleted after. Never a secret. ``action``: ``delete-filtered`` for the
    tokens a filter matched, with ``scope`` naming the filter. With ``events``, each token found
    gets a "deleted" event in its history (not for all of them: the audit entry says that)."""
    now = utcnow()
    if ids is None:
        entry = audit.insert_one({"at": now, "who": who, "action": "delete-all", "ids": [], "user_names": [],
                                  "expected": tokens.estimated_document_count(), "deleted": None})
        deleted = tokens.delete_many({}).deleted_count  # documents only: the indexes stay
    else:
        found = list(tokens.find({"_id": {"$in": ids}}, {"user_name": True}))
        names = [d.get("user_name") for d in found]
        entry = audit.insert_one({"at": now, "who": who, "action": action, "ids": ids,
                                  "user_names": [name for name in names if name], "deleted": None,
                                  **({"scope": scope} if scope else {})})
        deleted = tokens.delete_many({"_id": {"$in": ids}}).deleted_count
        if events is not None:
            said = f"deleted by an operator ({action}{': ' + scope if scope else ''})"
            record_quietly(events, [event_entry(d["_id"], d.get("user_name"), "deleted", said, who) for d in found])
    audit.update_one({"_id": entry.inserted_id}, {"$set": {"deleted": deleted}})
    return deleted


REVOKE_ATTEMPT = "attempting the revoke at Zoho"
"""An audited revoke's outcome until Zoho answers: an entry left so means the process stopped midway."""


def audited_revoke(tokens: Collection, audit: Collection, token_id: str, who: str, revoke: Callable[[], str],
                   refusals: tuple[type[BaseException], ...],
                   guard: Callable[[str], AbstractContextManager[Any]],
                   events: Collection | None = None) -> tuple[str, int]:
    """Revoke a token at Zoho (``revoke()`` returns the accounts host), then delete it. The audit
    entry is written before Zoho is called and updated with each outcome, so a revoke Zoho honoured
    stays on record even when the delete after it fails. ``refusals``: the errors that mean nothing
    was revoked (Zoho refused or was unreachable); any other error leaves the outcome unknown.
    ``guard(action)`` wraps each database step (the store's error handling), never the Zoho call.
    Returns (host, how many were deleted); a failure is recorded, then raised. With ``events``, a
    revoke Zoho honoured is a "revoked" event in the token's history."""
    with guard("record the revoke in the audit log"):
        names = [d.get("user_name") for d in tokens.find({"_id": token_id}, {"user_name": True})]
        entry = audit.insert_one({"at": utcnow(), "who": who, "action": "revoke", "ids": [token_id],
                                  "user_names": [name for name in names if name], "outcome": REVOKE_ATTEMPT,
                                  "deleted": None}).inserted_id

    def record(outcome: str, **more: Any) -> None:
        with guard("record the revoke's outcome in the audit log"):
            audit.update_one({"_id": entry}, {"$set": {"outcome": outcome, **more}})

    try:
        host = revoke()
    except BaseException as error:
        known = isinstance(error, refusals)
        with contextlib.suppress(Exception):  # Zoho's answer is what the operator must see
            record("not revoked" if known else "unknown",
                   reason=sentence(error) if known else
                   f"the revoke stopped ({type(error).__name__}): ask Zoho whether the token still works")
        raise
    record("revoked", host=host)
    if events is not None:
        record_quietly(events, [event_entry(token_id, names[0] if names else None, "revoked",
                                            f"revoked at {host} by an operator", who)])
    try:
        with guard("delete the revoked token"):
            deleted = tokens.delete_many({"_id": token_id}).deleted_count
    except BaseException as error:
        with contextlib.suppress(Exception):  # the server that refused the delete may refuse this too
            record("revoked, not deleted", reason=f"the delete failed: {sentence(error)}")
        raise
    record("revoked and deleted" if deleted else "revoked; it was already deleted", deleted=deleted)
    return host, deleted


def audited_check(audit: Collection, who: str, results: dict[str, str], events: Collection | None = None,
                  user_names: dict[str, str | None] | None = None) -> None:
    """Record a check: when, who, which ids, and Zoho's answer for each (``ok`` or a code); with
    ``events``, a "checked" event in each token's history (``user_names``: whom each names)."""
    audit.insert_one({"at": utcnow(), "who": who, "action": "check", "ids": list(results),
                      "results": [f"{token_id}: {result}" for token_id, result in results.items()]})
    if events is not None:
        record_quietly(events, [event_entry(token_id, (user_names or {}).get(token_id), "checked", f"Zoho: {result}", who)
                                for token_id, result in results.items() if result != "not found"])


def shown_total(total: int) -> str:
    """``10,000+`` when a filtered count stopped at the cap (exactly one past it)."""
    return f"{COUNT_CAP:,}+" if total == COUNT_CAP + 1 else f"{total:,}"


def stats(collection: Collection, now: datetime | None = None,
          extra: dict[str, tuple[dict[str, Any], str | None]] | None = None, *, overview: bool = True) -> dict[str, Any]:
    """Counts for the overview, every one an index count (none a collection scan), run side by
    side (docs/benchmark.md). ``health`` holds the four states' counts, ``total`` the exact number
    of tokens, ``per-api-domain`` the data centers'; ``overview=False`` leaves out the expiry
    statuses and the with-a-value counts (the exporter needs neither); ``extra``: more named counts."""
    now = now or utcnow()
    domains = stats_domains(collection)
    queries: dict[str, tuple[dict[str, Any], str | None]] = {}
    if overview:
        queries |= {status: (status_filter(status, now), None) for status in STATUSES}
        queries |= {
            "with-user-name": ({"user_name": {"$exists": True}}, "user_name_unique"),
            "with-access-token": ({"access_token": {"$exists": True}}, "access_token"),
            "with-refresh-token": ({"refresh_token": {"$exists": True}}, "refresh_token_unique"),
        }
    real = isinstance(collection.database.client, MongoClient)  # mongomock has no partial indexes
    narrow = real and NO_REFRESH_INDEX in collection.index_information()
    queries |= {f"health:{name}": query for name, query in health_queries(now, narrow).items()}
    queries |= {f"domain:{domain}": ({"api_domain": domain}, None) for domain in domains}
    queries |= extra or {}
    # The same count asked under two names (a health range is a status one) is run once.
    unique = {repr(query): query for query in queries.values()}

    def count(key: str) -> int:
        where, hint = unique[key]
        return collection.count_documents(where, hint=hint) if hint else collection.count_documents(where)

    if real:
        with ThreadPoolExecutor(max_workers=4) as pool:
            counted = dict(zip(unique, pool.map(count, unique), strict=True))
    else:  # mongomock is not thread-safe
        counted = {key: count(key) for key in unique}
    found = {name: counted[repr(query)] for name, query in queries.items()}
    counts: dict[str, Any] = {"total": found["health:all"]}
    counts["health"] = health_counts({name.removeprefix("health:"): value for name, value in found.items()
                                      if name.startswith("health:")})
    counts |= {name: value for name, value in found.items() if not name.startswith(("domain:", "health:"))}
    counts["per-api-domain"] = {domain: found[f"domain:{domain}"] for domain in domains}
    return counts


def stats_domains(collection: Collection) -> list[str]:
    """The data centers (api_domain values) in use, read from the index (a hand-edited value that is
    not a string is left out)."""
    return sorted(domain for domain in collection.distinct("api_domain") if isinstance(domain, str))
