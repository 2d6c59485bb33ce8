"""Webhook alerts: one message when a token turns failing or unusable, one when it recovers.

A pass compares the tokens that need a person now (``health.ATTENTION``) with the episodes recorded
in a collection of its own (``ALERTS_COLLECTION``), so an episode is alerted once whichever machine
runs the pass, across restarts. The very first pass on a store records the tokens already failing
or unusable as the baseline and sends nothing: a store with thousands of old unusable tokens must
not flood a channel the day alerts are turned on (they are in ``stats`` and the dashboard). Every
later episode is alerted.

Each message is claimed in MongoDB before it is sent (``claimed_until``), so two passes running at
once never send it twice; one that was not delivered stays recorded and is tried again next pass.
No message carries a secret: it is built from the token's id, user name, data center and the
health rule's reason, never from a stored token value.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..core.clock import utcnow
from ..core.mapping import CHECK_ERROR_FIELD, FAILED_AT_FIELD, FAILURES_FIELD, LEASE_FIELD, RETRY_FIELD, SECRET_FIELDS
from ..core.masking import printable
from . import datacenters
from .health import NEEDS_ATTENTION, attention_filter, health_of

ALERTS_COLLECTION = "token_alerts"
"""Where the episodes are recorded (``ZOHO_MONGO_ALERTS_COLLECTION`` names another)."""
BASELINE_ID = 0
"""The document that says the first pass happened (token ids are always strings)."""
CLAIM = timedelta(minutes=5)
"""How long a pass owns a message it is sending; one that died meanwhile lets the next pass retry."""
FIELDS = {"_id": True, "user_name": True, "api_domain": True, "expiry_time": True, "updated_at": True,
          "access_token": True, "refresh_token": True, "grant_token": True, LEASE_FIELD: True,
          FAILURES_FIELD: True, FAILED_AT_FIELD: True, RETRY_FIELD: True, CHECK_ERROR_FIELD: True}
"""What the health rule reads; each secret is replaced by ``True`` as soon as it arrives."""
TEXT_LIMIT = 200


def data_center_name(api_domain: Any) -> str:
    """A data center's one name (``EU``, ``datacenters.py``), or ``other`` for any other api_domain (or none)."""
    return datacenters.NAMES.get(api_domain.rstrip("/"), "other") if isinstance(api_domain, str) else "other"


def presence(document: dict[str, Any]) -> dict[str, Any]:
    """The document with each stored secret replaced by ``True``: the health rule needs only
    whether it is there, and nothing built from it can carry one."""
    return {key: (True if key in SECRET_FIELDS and value is not None else value) for key, value in document.items()}


def bounded(text: str | None) -> str | None:
    """Stored text for a message: plain (``printable``) and at most ``TEXT_LIMIT`` characters, so
    a hand-made user name or check error of any length never makes a message of that length."""
    if text is None:
        return None
    text = printable(text)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT - 1] + "…"


def slack(text: str) -> str:
    """Text as Slack shows it literally: a user name cannot ping a channel (``<!channel>``)."""
    return (bounded(text) or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Problem:
    """One token that needs a person: what an alert says about it."""

    token_id: str
    user_name: str | None
    health: str
    reason: str
    data_center: str

    def alert(self) -> dict[str, Any]:
        who = f"{self.user_name} ({self.token_id})" if self.user_name else self.token_id
        return {"event": "alert", "token_id": bounded(self.token_id), "user_name": bounded(self.user_name),
                "health": self.health, "reason": bounded(self.reason), "data_center": self.data_center,
                "text": f"Zoho connection {slack(who)} is {self.health} ({self.data_center}): {slack(self.reason)}"}


def recovery(token_id: str, user_name: str | None, health: str) -> dict[str, Any]:
    """The message that ends an alerted episode: healthy or idle again, or deleted."""
    who = f"{user_name} ({token_id})" if user_name else token_id
    how = "was deleted" if health == "deleted" else f"is {health} again"
    return {"event": "recovery", "token_id": bounded(token_id), "user_name": bounded(user_name), "health": health,
            "text": f"Zoho connection {slack(who)} {how}"}


def attention(tokens: Collection, now: datetime, skipped: list[str] | None = None) -> dict[str, Problem]:
    """The tokens failing or unusable at ``now`` (through the health filters' indexes). A document
    whose id is no string is no token the store wrote (a hand-made one): it is named in ``skipped``
    and left out, so it never stops a pass (ids of two types cannot even be sorted)."""
    found = {}
    for document in tokens.find(attention_filter(now), FIELDS):
        if not isinstance(document["_id"], str):
            if skipped is not None:
                skipped.append(printable(repr(document["_id"]))[:TEXT_LIMIT])
            continue
        document = presence(document)
        health, reason = health_of(document, now)
        if health in NEEDS_ATTENTION:
            user = document.get("user_name")
            found[document["_id"]] = Problem(document["_id"], user if isinstance(user, str) else None, health, reason,
                                             data_center_name(document.get("api_domain")))
    return found


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that answers with a redirect is not followed: the message is not resent elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class Webhook:
    """Where messages go: ``timeout`` per attempt, ``retries`` more attempts after a failure that
    may pass (unreachable, 5xx, 408, 429), waiting ``backoff`` seconds, doubled each time."""

    url: str
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep

    @property
    def origin(self) -> str:
        """Scheme, host and port only: a webhook URL's path is often its secret (Slack's is)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def post(self, body: dict[str, Any]) -> str | None:
        """POST one JSON message; ``None`` once delivered (any 2xx), else why not, in a sentence."""
        data = json.dumps(body).encode()
        opener = urllib.request.build_opener(NoRedirect)
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, method="POST",
                                             headers={"Content-Type": "application/json", "User-Agent": "zoho-mongo-store"})
            try:
                with opener.open(request, timeout=self.timeout) as response:
                    response.read(65536)
                    return None
            except urllib.error.HTTPError as error:
                why = f"the webhook at {self.origin} answered HTTP {error.code}"
                if 300 <= error.code < 400 or (error.code < 500 and error.code not in (408, 429)):
                    return why  # it will not change by retrying now
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                why = f"the webhook at {self.origin} was not reached ({printable(str(reason))[:100]})"
            except (http.client.HTTPException, ValueError) as error:  # a broken answer; never the URL
                why = f"the webhook at {self.origin} gave no proper answer ({type(error).__name__})"
        return f"{why}, after {self.retries + 1} attempts"


@dataclass
class Report:
    """What one pass did."""

    baseline: int | None = None
    alerted: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    undelivered: int = 0
    error: str | None = None
    skipped: list[str] = field(default_factory=list)
    """Documents left out because their id is no string (each id as plain text)."""

    def summary(self) -> str:
        if self.baseline is not None:
            line = (f"first pass: {self.baseline} token(s) already failing or unusable recorded as the baseline, "
                    "not alerted; later episodes will be")
        else:
            line = f"sent {len(self.alerted)} alert(s) and {len(self.recovered)} recovery message(s)"
        if self.undelivered:
            line += f"; {self.undelivered} not delivered ({self.error}): tried again on the next pass"
        if self.skipped:
            shown = ", ".join(self.skipped[:3]) + (", …" if len(self.skipped) > 3 else "")
            line += f"; skipped {len(self.skipped)} document(s) whose id is no string ({shown}): fix or delete them"
        return line


def alert_state(tokens: Collection, name: str | None = None) -> Collection:
    """The alert episodes' collection, beside the tokens."""
    return tokens.database[name or ALERTS_COLLECTION]


def run_pass(tokens: Collection, state: Collection, webhook: Webhook, now: datetime | None = None) -> Report:
    """One pass: alert each new episode, send each recovery, retry what was not delivered. After
    the first message the webhook did not take, the rest wait for the next pass (bounded)."""
    now = now or utcnow()
    report = Report()
    current = attention(tokens, now, report.skipped)
    if state.find_one({"_id": BASELINE_ID}) is None:
        try:
            state.insert_one({"_id": BASELINE_ID, "at": now, "baseline": len(current)})
        except DuplicateKeyError:
            pass  # another pass recorded the baseline just now: this one goes on as a later pass
        else:
            if current:
                try:
                    state.insert_many([{"_id": token_id, "health": problem.health, "since": now, "alert": "baseline"}
                                       for token_id, problem in current.items()], ordered=False)
                except BulkWriteError:
                    pass  # some were recorded meanwhile by a concurrent pass
            report.baseline = len(current)
            return report
    entries = {entry["_id"]: entry for entry in state.find({"_id": {"$type": "string"}})}

    def send(token_id: str, body: dict[str, Any]) -> bool:
        """Deliver a claimed message; on failure give the claim back and stop the pass's sending."""
        if report.error is None:
            report.error = webhook.post(body)
            if report.error is None:
                return True
        report.undelivered += 1
        state.update_one({"_id": token_id}, {"$set": {"last_error": report.error}, "$unset": {"claimed_until": ""}})
        return False

    for token_id, problem in sorted(current.items()):
        entry = entries.get(token_id)
        if entry is None:
            try:
                state.insert_one({"_id": token_id, "health": problem.health, "since": now, "alert": "pending",
                                  "claimed_until": now + CLAIM})
            except DuplicateKeyError:
                continue  # another pass opened this episode
        elif entry.get("recovery") == "pending":
            # It turned again before its recovery was delivered: for whoever reads the channel the
            # episode never ended, so neither message is due.
            state.update_one({"_id": token_id}, {"$unset": {"recovery": "", "last_error": ""}})
            continue
        elif entry.get("alert") != "pending" or not claim(state, token_id, now, "pending"):
            continue  # alerted already (or the baseline): the same episode; or another pass sends it
        if send(token_id, problem.alert()):
            state.update_one({"_id": token_id}, {"$set": {"alert": "sent", "sent_at": utcnow()},
                                                 "$unset": {"claimed_until": "", "last_error": ""}})
            report.alerted.append(token_id)

    ended = [token_id for token_id in entries if token_id not in current]
    if ended:
        documents = {d["_id"]: presence(d) for d in tokens.find({"_id": {"$in": ended}}, FIELDS)}
        for token_id in sorted(ended):
            entry, document = entries[token_id], documents.get(token_id)
            health = health_of(document, now)[0] if document is not None else "deleted"
            if health in NEEDS_ATTENTION:
                continue  # it turned again since the first query: the next pass sees it
            if entry.get("alert") != "sent":  # nobody was told (the baseline, or never delivered)
                state.delete_one({"_id": token_id, "alert": entry.get("alert")})
                continue
            if not claim(state, token_id, now, "sent"):
                continue
            state.update_one({"_id": token_id}, {"$set": {"recovery": "pending"}})
            user = document.get("user_name") if document is not None else None
            if send(token_id, recovery(token_id, user if isinstance(user, str) else None, health)):
                state.delete_one({"_id": token_id})
                report.recovered.append(token_id)
    return report


def claim(state: Collection, token_id: str, now: datetime, alert: str) -> bool:
    """Own the message of this episode for ``CLAIM``, unless another pass owns it now or already
    sent it (``alert``: the state the message is for, ``pending`` or ``sent``). The claim runs
    from the moment it is taken, not from the start of the pass."""
    taken = utcnow()
    return state.update_one({"_id": token_id, "alert": alert, "claimed_until": {"$not": {"$gt": taken}}},
                            {"$set": {"claimed_until": taken + CLAIM}}).modified_count == 1
