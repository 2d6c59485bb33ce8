"""Whether each Zoho connection works: four states, and one table of the reasons a token needs a
person, from which everything else is made.

``REASONS`` declares each reason once: its key (one spelling everywhere: the dashboard's URL, the
exporter's ``reason`` label, the docs), its short label, the state it puts a token in, the server
filter of what marks a document, and the same test on one document with the sentence a person
reads. The four states' filters (``health_filter``), the rule for one document (``health_of``),
the counts (``health_queries``), the Overview's exclusive breakdown (``category_filter``,
``breakdown``) and the exporter's per-reason counts (``reason_counts``) are all derived from it,
so a new reason is one entry here (docs/architecture.md).

Every filter runs on the store's indexes: the marks are on nearly empty sparse indexes
(``core/indexes.py``), so the failing and unusable tokens are found without reading the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection

from ..core.clock import utc_naive, utcnow
from ..core.lease import REFRESH_WINDOW
from ..core.mapping import (
    CHECK_ERROR_FIELD,
    FAILED_AT_FIELD,
    FAILURES_FIELD,
    ISSUED_FIELD,
    LEASE_FIELD,
    REASON_FIELD,
    RETRY_FIELD,
    ZOHO_REFRESH_TOKEN_LIMIT,
)
from ..core.masking import ago
from ..core.reasons import REASONS as REFRESH_REASONS
from ..core.reasons import why as refresh_failure

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
NO_REFRESH_INDEX = "expiry_time_no_refresh_token"
"""The partial index (``indexes.py``) of the expiries of tokens without a refresh token, which
makes the unusable count fetch only those."""


STATUSES = ("valid", "refresh-window", "within-hour", "expired")
"""The access token's expiry alone (not health: a lapsed access token is renewed on next use)."""


def status_filter(status: str, now: datetime) -> dict[str, Any]:
    """The filter for an expiry status; each one is a range on the ``expiry_time`` index."""
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


def _present(document: dict[str, Any], field: str) -> bool:
    return document.get(field) is not None


def _date(document: dict[str, Any], field: str) -> datetime | None:
    value = utc_naive(document.get(field))
    return value if isinstance(value, datetime) else None


# -- the reasons -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reason:
    """Why a token needs a person. ``mark(now)`` is the server filter of the condition, ``holds(document,
    now)`` the same condition on one document: the sentence saying so, or None."""

    key: str
    label: str
    health: str
    mark: Callable[[datetime], dict[str, Any]]
    holds: Callable[[dict[str, Any], datetime], str | None]


def _no_refresh_mark(now: datetime) -> dict[str, Any]:
    # ``refresh_token: None`` (null or absent) adds nothing to ``$exists: False`` but lets the planner
    # use NO_REFRESH_INDEX, the partial index of exactly those tokens' expiries.
    return {"expiry_time": {"$lte": now}, "refresh_token": None, "$and": [{"refresh_token": {"$exists": False}}]}


def _no_refresh(document: dict[str, Any], now: datetime) -> str | None:
    expiry = _date(document, "expiry_time")
    if not _present(document, "refresh_token") and expiry is not None and expiry <= now:
        return f"no refresh token, and the access token lapsed {ago(expiry, now)}"
    return None


def _old_grant_mark(now: datetime) -> dict[str, Any]:
    return {"grant_token": {"$exists": True}, "refresh_token": {"$exists": False},  # the grant_token index
            "access_token": {"$exists": False}, "updated_at": {"$lte": now - GRANT_LIFETIME}}


def _old_grant(document: dict[str, Any], now: datetime) -> str | None:
    updated = _date(document, "updated_at")
    if (_present(document, "grant_token") and not _present(document, "refresh_token")
            and not _present(document, "access_token") and updated is not None and updated <= now - GRANT_LIFETIME):
        return f"a grant token stored {ago(updated, now)} and never exchanged (grant tokens live 10 minutes)"
    return None


def _refresh_failed(document: dict[str, Any], now: datetime) -> str | None:
    failures = document.get(FAILURES_FIELD)
    if failures is None:
        return None
    last, retry = _date(document, FAILED_AT_FIELD), _date(document, RETRY_FIELD)
    reason = document.get(REASON_FIELD)  # RefreshFailing.reason, as every process reports it
    said = f" ({refresh_failure(reason)})" if reason in REFRESH_REASONS else ""
    return (f"{failures} failed refresh(es) since the last save{said}"
            + (f", the last {ago(last, now)}" if last is not None else "")
            + (f"; callers fail at once until the next attempt {ago(retry, now)}" if retry is not None and retry > now
               else ""))


def _lease_lapsed(document: dict[str, Any], now: datetime) -> str | None:
    lease = _date(document, LEASE_FIELD)
    return f"a refresh lease lapsed {ago(lease, now)} without a save" if lease is not None and lease <= now else None


def _check_failed(document: dict[str, Any], now: datetime) -> str | None:
    error = document.get(CHECK_ERROR_FIELD)
    return None if error is None else f"the last check failed: {error}"


REASONS: tuple[Reason, ...] = (
    Reason("no-refresh-token", "no refresh token", "unusable", _no_refresh_mark, _no_refresh),
    Reason("old-grant-token", "old grant token", "unusable", _old_grant_mark, _old_grant),
    # Failing: counted failed refreshes, a lease that lapsed without a save (its failure is counted
    # only when the next worker takes it over), a failed check; each a nearly empty sparse index.
    Reason("refresh-failed", "refresh failed", "failing", lambda now: {FAILURES_FIELD: {"$exists": True}},
           _refresh_failed),
    Reason("lease-lapsed", "lease lapsed", "failing", lambda now: {LEASE_FIELD: {"$lte": now}}, _lease_lapsed),
    Reason("check-failed", "check failed", "failing", lambda now: {CHECK_ERROR_FIELD: {"$exists": True}}, _check_failed),
)
"""In the order ``health_of`` tries them: a token's category is the first that holds."""
BY_KEY = {reason.key: reason for reason in REASONS}
UNUSABLE = tuple(reason for reason in REASONS if reason.health == "unusable")
FAILING = tuple(reason for reason in REASONS if reason.health == "failing")


def _marks(reasons: tuple[Reason, ...], now: datetime) -> list[dict[str, Any]]:
    return [reason.mark(now) for reason in reasons]


# -- the four states ---------------------------------------------------------------------------------

def health_filter(health: str, now: datetime) -> dict[str, Any]:
    """The filter for one health state; the four never overlap and together match every token.
    In order: unusable, then failing, then healthy (valid), and idle is the rest."""
    if health == "unusable":
        return {"$or": _marks(UNUSABLE, now)}
    if health == "failing":
        return {"$and": [{"$or": _marks(FAILING, now)}, {"$nor": _marks(UNUSABLE, now)}]}
    unmarked = {"$nor": _marks(FAILING, now)}
    if health == "healthy":
        return {"$and": [{"expiry_time": {"$gt": now}}, unmarked]}
    if health == "idle":
        # The one state without a narrow index: it walks the refresh_token index (and the grant and
        # access tokens' ones, for a grant not yet exchanged and an access token with no expiry).
        return {"$and": [unmarked, {"$or": [
            {"refresh_token": {"$exists": True}, "expiry_time": {"$not": {"$gt": now}}},
            {"grant_token": {"$exists": True}, "refresh_token": {"$exists": False},
             "access_token": {"$exists": False}, "updated_at": {"$gt": now - GRANT_LIFETIME}},
            {"access_token": {"$exists": True}, "refresh_token": {"$exists": False}, "expiry_time": {"$exists": False}},
        ]}]}
    raise ValueError(f"unknown health {health!r}; choose from {', '.join(HEALTH)}")


def health_of(document: dict[str, Any], now: datetime | None = None) -> tuple[str, str]:
    """(state, why) for one stored document, by the same rules as ``health_filter``; ``why`` names
    this token's own facts (dates in UTC), never a secret."""
    now = now or utcnow()
    for reason in UNUSABLE:
        said = reason.holds(document, now)
        if said is not None:
            return "unusable", said
    reasons = [said for reason in FAILING if (said := reason.holds(document, now)) is not None]
    issued = document.get(ISSUED_FIELD)
    issued = len(issued) if isinstance(issued, list) else 0
    if reasons:
        if issued >= ZOHO_REFRESH_TOKEN_LIMIT and document.get(FAILURES_FIELD) is not None:
            reasons.append(f"{issued} refresh tokens were issued for this user: Zoho keeps {ZOHO_REFRESH_TOKEN_LIMIT} "
                           "per user and client, so its limit may have evicted this one")
        return "failing", "; ".join(reasons)
    nearing = (f"; {issued} refresh tokens issued for this user: Zoho keeps {ZOHO_REFRESH_TOKEN_LIMIT} per user "
               "and client, and the next one deletes the oldest" if issued >= ZOHO_REFRESH_TOKEN_LIMIT - 2 else "")
    expiry = _date(document, "expiry_time")
    if expiry is not None and expiry > now:
        return "healthy", f"the access token is valid, expires {ago(expiry, now)}{nearing}"
    if _present(document, "refresh_token"):
        lapsed = f"lapsed {ago(expiry, now)}" if expiry is not None else "is not issued yet"
        return "idle", f"the access token {lapsed}; the SDK refreshes it on next use{nearing}"
    if _present(document, "grant_token") and not _present(document, "access_token"):
        return "idle", "a grant token not yet exchanged; the SDK exchanges it on first use"
    return "idle", "the access token has no stored expiry; the SDK stores one on next use"


def attention_filter(now: datetime) -> dict[str, Any]:
    """The tokens that need a person (failing or unusable)."""
    return {"$or": [health_filter(state, now) for state in NEEDS_ATTENTION]}


# -- counts --------------------------------------------------------------------------------------------

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
        "valid-marked": ({"$and": [{"expiry_time": {"$gt": now}}, {"$or": _marks(FAILING, now)}]}, None),
        "all": ({}, "_id_"),
    }
    if narrow:
        queries |= {
            "lapsed-no-refresh": ({**lapsed, "refresh_token": None}, NO_REFRESH_INDEX),
            "lapsed-null-refresh": ({**lapsed, "refresh_token": {"$type": "null"}}, None),
            "old-grant-not-lapsed": ({**BY_KEY["old-grant-token"].mark(now), "expiry_time": {"$not": {"$lte": now}}},
                                     "grant_token"),
        }
    else:
        queries["unusable"] = (health_filter("unusable", now), None)
    return queries


def health_counts(found: dict[str, int]) -> dict[str, int]:
    """The four states' counts from the counts of ``health_queries`` (they add up to the total)."""
    healthy = found["valid-later"] + found["valid-soon"] - found["valid-marked"]
    unusable = found["unusable"] if "unusable" in found else \
        found["lapsed-no-refresh"] - found["lapsed-null-refresh"] + found["old-grant-not-lapsed"]
    return {"healthy": healthy, "idle": found["all"] - healthy - found["failing"] - unusable,
            "failing": found["failing"], "unusable": unusable}


def reason_counts(now: datetime) -> dict[str, tuple[dict[str, Any], str | None]]:
    """The exporter's count of failing tokens per failing reason (a token with several counts under
    each): a reason's mark, not unusable, each through that mark's nearly empty sparse index."""
    not_unusable = {"$nor": _marks(UNUSABLE, now)}
    return {f"reason:{reason.key}": ({"$and": [reason.mark(now), not_unusable]}, None) for reason in FAILING}


# -- the exclusive categories: the Overview's breakdown ----------------------------------------------

def category_filter(key: str, now: datetime) -> dict[str, Any]:
    """The tokens whose first reason (in ``REASONS`` order) is ``key``: each token that needs a
    person is in exactly one category, and the categories add up to failing + unusable."""
    if key not in BY_KEY:
        raise ValueError(f"unknown reason {key!r}; choose from {', '.join(BY_KEY)}")
    position = [reason.key for reason in REASONS].index(key)
    earlier = [reason.mark(now) for reason in REASONS[:position]]
    mark = BY_KEY[key].mark(now)
    return {"$and": [mark, {"$nor": earlier}]} if earlier else mark


def breakdown(tokens: Collection, now: datetime) -> list[dict[str, Any]]:
    """``[{"reason", "api_domain", "health", "tokens"}]``: the failing and unusable tokens counted
    by category and data center, biggest first. One small aggregation per category, each matching
    by that category's own filter (the one its tile opens), so a tile's count and its list agree;
    each reads only the tokens of its category, through the marks' nearly empty indexes."""
    narrow = isinstance(tokens.database.client, MongoClient) and NO_REFRESH_INDEX in tokens.index_information()
    found = []
    for reason in REASONS:
        first: list[dict[str, Any]] = []
        options: dict[str, Any] = {}
        if reason.key == "no-refresh-token" and narrow:
            # Through the partial index of the tokens without a refresh token (a few percent), as
            # the unusable count goes: a lapsed expiry alone would fetch every lapsed token.
            first = [{"$match": {"expiry_time": {"$lte": now}, "refresh_token": None}}]
            options["hint"] = NO_REFRESH_INDEX
        rows = tokens.aggregate([*first, {"$match": category_filter(reason.key, now)},
                                 {"$group": {"_id": "$api_domain", "n": {"$sum": 1}}}], **options)
        found += [{"reason": reason.key, "api_domain": row["_id"] if isinstance(row["_id"], str) else None,
                   "health": reason.health, "tokens": row["n"]} for row in rows]
    return sorted(found, key=lambda row: (-row["tokens"], row["reason"], str(row["api_domain"])))
