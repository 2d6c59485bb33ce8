"""Lifecycle policies: a session timeout (revoke and delete tokens nobody used for N days) and the
cleanup of tokens nothing can renew, run in batches, safely beside the SDK's workers.

Each token is decided at the moment it is acted on, never from a list made earlier: a claim (one
``find_one_and_update`` whose filter is the rule itself) takes it only if it still qualifies, and
holds the token's refresh lease meanwhile, so a worker asking for it waits instead of refreshing
a refresh token that is about to be revoked. A token refreshed, saved or claimed by another run
meanwhile is left alone. A revoke Zoho honoured is marked on the token before its delete, so a
run killed midway and run again revokes nothing twice; Zoho's "invalid_token" (it no longer knows
the refresh token) counts as already revoked. Deletions are the store's (a refresh in flight
cannot save the token back: saves by id never insert). Every action is audited.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection

from ..core.clock import utcnow
from ..core.mapping import CLAIM_FIELD, LEASE_FIELD, REFRESHED_FIELD, REVOKED_FIELD
from .health import GRANT_LIFETIME
from .settings import OperatorSettings
from .words import plural

REVOKE_REPLACED = "revoke-replaced"
"""A cleanup's retry of a refresh token a new login replaced, whose revoke failed (``core/displaced.py``)."""
CLAIM_SECONDS = 60.0
"""How long a claim (and so the refresh lease it holds) lasts: longer than a bounded revoke."""


@dataclass(frozen=True)
class Policy:
    """``idle_days``: a session timeout (tokens with a refresh token not refreshed, or if never,
    not saved, for so long: revoked at Zoho, then deleted). ``unusable_days``: tokens unusable for
    so long (a grant token never exchanged; no refresh token and the access token lapsed): deleted."""

    idle_days: float | None = None
    unusable_days: float | None = None

    @classmethod
    def of(cls, settings: OperatorSettings) -> Policy:
        """The policy the settings set (``ZOHO_CLEANUP_IDLE_DAYS``, ``ZOHO_CLEANUP_UNUSABLE_DAYS``)."""
        return cls(settings.cleanup_idle_days, settings.cleanup_unusable_days)

    def __bool__(self) -> bool:
        return self.idle_days is not None or self.unusable_days is not None

    def describe(self) -> str:
        rules = []
        if self.idle_days is not None:
            rules.append(f"revoke and delete tokens idle for more than {plural(self.idle_days, 'day')}")
        if self.unusable_days is not None:
            rules.append(f"delete tokens unusable for more than {plural(self.unusable_days, 'day')}")
        return "; ".join(rules) or "no rule"


@dataclass(frozen=True)
class Rule:
    action: str
    """``revoke+delete`` or ``delete``."""
    reason: str
    where: dict[str, Any]


def rules(policy: Policy, now: datetime) -> list[Rule]:
    """Each rule of the policy as a server filter (on indexed fields), with its action and reason."""
    found = []
    if policy.idle_days is not None:
        cutoff = now - timedelta(days=policy.idle_days)
        found.append(Rule("revoke+delete", f"idle: not refreshed for more than {plural(policy.idle_days, 'day')}", {
            "refresh_token": {"$exists": True},
            "$or": [{REFRESHED_FIELD: {"$lt": cutoff}},  # the last_refreshed_at index
                    {REFRESHED_FIELD: {"$exists": False}, "updated_at": {"$lt": cutoff}}],  # the updated_at index
        }))
    if policy.unusable_days is not None:
        cutoff = now - timedelta(days=policy.unusable_days)
        found.append(Rule("delete", f"unusable for more than {plural(policy.unusable_days, 'day')}", {
            "refresh_token": {"$exists": False},
            "$or": [{"expiry_time": {"$lt": cutoff}},  # lapsed long ago, nothing renews it
                    {"grant_token": {"$exists": True}, "access_token": {"$exists": False},
                     "updated_at": {"$lt": cutoff - GRANT_LIFETIME}}],  # a grant never exchanged
        }))
    return found


@dataclass
class Entry:
    id: str
    user_name: str | None
    action: str
    reason: str
    result: str = "planned"
    """``planned`` (a dry run); ``revoked and deleted``, ``deleted``, ``already revoked, deleted``;
    ``kept: ...`` (refreshed or saved meanwhile); ``not revoked: ...`` (Zoho refused: an error)."""

    @property
    def failed(self) -> bool:
        return self.result.startswith("not revoked")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user_name": self.user_name, "action": self.action, "reason": self.reason,
                "result": self.result}


@dataclass
class Report:
    entries: list[Entry] = field(default_factory=list)

    def summary(self, dry_run: bool) -> dict[str, int]:
        done = [entry for entry in self.entries if not entry.failed and not entry.result.startswith("kept")]
        counts = {"planned" if dry_run else "done": len(done),
                  "revoke+delete": sum(entry.action == "revoke+delete" for entry in done),
                  "delete": sum(entry.action == "delete" for entry in done)}
        if any(entry.action == REVOKE_REPLACED for entry in self.entries):
            counts[REVOKE_REPLACED] = sum(entry.action == REVOKE_REPLACED for entry in done)
        if not dry_run:
            counts |= {"kept": sum(entry.result.startswith("kept") for entry in self.entries),
                       "failed": sum(entry.failed for entry in self.entries)}
        return counts


def candidates(tokens: Collection, rule: Rule, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """The tokens a rule selects now, a batch at a time in id order (each batch read afresh)."""
    after: str | None = None
    while True:
        where = rule.where if after is None else {"$and": [rule.where, {"_id": {"$gt": after}}]}
        batch = list(tokens.find(where, {"_id": True, "user_name": True}).sort("_id", ASCENDING).limit(batch_size))
        if not batch:
            return
        yield batch
        after = batch[-1]["_id"]


def plan(tokens: Collection, policy: Policy, batch_size: int = 100, now: datetime | None = None) -> Report:
    """What a run would do now (reads only)."""
    report, seen = Report(), set()
    for rule in rules(policy, now or utcnow()):
        for batch in candidates(tokens, rule, batch_size):
            for document in batch:
                if document["_id"] not in seen:
                    seen.add(document["_id"])
                    report.entries.append(Entry(document["_id"], _name(document), rule.action, rule.reason))
    return report


def _name(document: dict[str, Any]) -> str | None:
    name = document.get("user_name")
    return name if isinstance(name, str) else None


@dataclass
class Steps:
    """What a run needs from outside: the Zoho revoke of the refresh token the claimed document holds
    (returns the host; raises ``refused`` when Zoho did not revoke, ``already`` when it no longer
    knows the token), the filter of a token still holding that refresh token (``holding``), the
    audit, the store's error handling for each database step, and optionally the token history
    (``event(token_id, user_name, event, detail)``, which must not raise: ``events.record_quietly``)."""

    revoke: Callable[[dict[str, Any]], str]
    holding: Callable[[dict[str, Any]], dict[str, Any]]
    refused: tuple[type[BaseException], ...]
    already: type[BaseException]
    audit: Callable[[dict[str, Any]], Any]
    database: Callable[[str, Callable[[], Any]], Any]
    event: Callable[[str, str | None, str, str], Any] | None = None


def run(tokens: Collection, policy: Policy, steps: Steps, batch_size: int = 100,
        progress: Callable[[Entry], None] | None = None, only: list[str] | None = None) -> Report:
    """Apply the policy now, a batch at a time; each token decided when it is acted on. ``only``:
    act on these ids alone (those an operator confirmed), each only if it still qualifies."""
    report, claim = Report(), secrets.token_hex(8)
    for rule in rules(policy, utcnow()):
        if only is not None:
            rule = Rule(rule.action, rule.reason, {"$and": [rule.where, {"_id": {"$in": list(only)}}]})
        for batch in candidates_now(tokens, rule, batch_size, steps):
            for document in batch:
                entry = Entry(document["_id"], _name(document), rule.action, rule.reason)
                entry.result = _act(tokens, rule, entry, claim, steps)
                report.entries.append(entry)
                if progress is not None:
                    progress(entry)
    return report


def candidates_now(tokens: Collection, rule: Rule, batch_size: int, steps: Steps) -> Iterator[list[dict[str, Any]]]:
    batches = candidates(tokens, rule, batch_size)
    while True:
        batch = steps.database("list the tokens to clean up", lambda: next(batches, None))
        if batch is None:
            return
        yield batch


def _act(tokens: Collection, rule: Rule, entry: Entry, claim: str, steps: Steps) -> str:
    """Claim the token if it still qualifies (rule filter, now), revoke the refresh token it held
    when claimed unless that was done, delete it while it still holds that one and the claim;
    audit each step."""
    now = utcnow()
    claimed = steps.database("claim the token", lambda: tokens.find_one_and_update(
        {"$and": [rule.where, {"_id": entry.id},
                  # Not while a worker refreshes it, nor while another run's claim is live (a claim
                  # is a lease too: one left by a killed run is taken over once it lapses).
                  {"$or": [{LEASE_FIELD: {"$exists": False}}, {LEASE_FIELD: {"$lte": now}}, {CLAIM_FIELD: claim}]}]},
        {"$set": {CLAIM_FIELD: claim, LEASE_FIELD: now + timedelta(seconds=CLAIM_SECONDS)}},
        return_document=ReturnDocument.AFTER))
    if claimed is None:
        return "kept: it no longer qualifies (refreshed, saved, being refreshed or cleaned up by another run meanwhile)"
    audit = {"action": f"cleanup {rule.action}", "ids": [entry.id],
             "user_names": [entry.user_name] if entry.user_name else [], "reason": rule.reason}
    answer, revoked_now = "not asked", False
    if rule.action == "revoke+delete" and claimed.get(REVOKED_FIELD) is None:
        try:
            host = steps.revoke(claimed)
            answer, revoked_now = f"revoked at {host}", True
        except steps.already:
            answer = "already revoked (Zoho no longer knows the refresh token)"
        except steps.refused as error:
            steps.database("end the claim", lambda: tokens.update_one(
                {"_id": entry.id, CLAIM_FIELD: claim}, {"$unset": {CLAIM_FIELD: "", LEASE_FIELD: ""}}))
            result = f"not revoked: {error}; the token is kept"
            steps.audit(audit | {"zoho": str(error), "outcome": result})
            return result
        steps.database("mark the token revoked", lambda: tokens.update_one(
            {"_id": entry.id, CLAIM_FIELD: claim}, {"$currentDate": {REVOKED_FIELD: True}}))
    elif claimed.get(REVOKED_FIELD) is not None:
        answer = "revoked by an earlier run"
    attempts = 0

    def delete() -> int:
        nonlocal attempts
        attempts += 1
        still = [steps.holding(claimed)] if claimed.get("refresh_token") is not None else []
        deleted = tokens.delete_one({"$and": [{"_id": entry.id, CLAIM_FIELD: claim}, *still]}).deleted_count
        if deleted or attempts == 1:
            return deleted
        # Retried after an answer was lost: the first attempt may have deleted it.
        return int(tokens.find_one({"_id": entry.id}, {"_id": True}) is None)

    deleted = steps.database("delete the token", delete)
    if deleted:
        result = "deleted" if rule.action == "delete" else f"{answer}, deleted"
    elif steps.database("look the token up", lambda: tokens.find_one({"_id": entry.id}, {"_id": True})) is None:
        result = f"{answer}; deleted meanwhile (by another run, or a person)"
    else:
        result = f"{answer}; kept: saved meanwhile (a login or a refresh ended the claim), or taken over by another run"
    steps.audit(audit | {"zoho": answer, "outcome": result, "deleted": deleted})
    if steps.event is not None and (revoked_now or deleted):
        steps.event(entry.id, entry.user_name, "revoked" if revoked_now else "deleted", f"cleanup ({rule.reason}): {result}")
    return result
