"""A fake Zoho for many people, keeping the rules a multi-user app meets: a grant code works once
and for a few minutes; each grant gives its own refresh token; a refresh token mints at most 10
access tokens in 10 minutes ("Access Denied" after that) and keeps 15 alive (the 16th ends the
oldest); a revoked refresh token is refused (``invalid_code``); the CRM API answers as the person
whose access token is presented. Served by ``FakeZoho``'s HTTP handler on 127.0.0.1.

``gate`` holds refreshes in flight (clear it, and each refresh's answer, decided on arrival, waits
until it is set again), so a test can delete a token, revoke it or log its person in again while
a refresh is under way.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from fake_zoho import FakeZoho

GRANT_SECONDS = 180.0
REFRESH_LIMIT, REFRESH_PERIOD, LIVE_LIMIT = 10, 600.0, 15


@dataclass
class Attempt:
    """One refresh request: when, for whom, with which refresh token, and Zoho's answer."""

    at: float
    email: str | None
    refresh_token: str
    outcome: str


@dataclass
class Grant:
    email: str
    issued: float
    used: bool = False


@dataclass
class Authorization:
    """What one grant gave: a refresh token, the access tokens minted from it."""

    email: str
    minted: deque[float] = field(default_factory=deque)
    live: deque[str] = field(default_factory=deque)
    revoked: bool = False


class ZohoAccounts(FakeZoho):
    def __init__(self, client_id: str, client_secret: str, access_seconds: float = 3600.0) -> None:
        super().__init__("-", "-", client_id, client_secret)
        self.access_seconds = access_seconds
        self.people: dict[str, str] = {}  # email -> zgid
        self.grants: dict[str, Grant] = {}
        self.authorizations: dict[str, Authorization] = {}  # refresh token -> what it gave
        self.access_owner: dict[str, str] = {}  # access token -> refresh token
        self.attempts: list[Attempt] = []
        self.refuse_revokes: set[str] = set()
        self.revocations: list[tuple[str, str]] = []  # (refresh token, outcome) of each revoke request
        self.gate = threading.Event()
        self.gate.set()
        self.refresh_waiting = threading.Event()
        self._ids = itertools.count(1)

    # -- what a test does -----------------------------------------------------------------------

    def grant(self, email: str) -> str:
        """A one-time grant code for this person (who gets an org id on first use)."""
        with self._lock:
            self.people.setdefault(email, str(700_000 + next(self._ids)))
            code = f"1000.grant.{next(self._ids):06d}.{email}"
            self.grants[code] = Grant(email, time.monotonic())
            return code

    def user_name(self, email: str) -> str:
        return f"{email}:{self.people[email]}"

    def revoke(self, refresh_token: str) -> None:
        """Zoho forgets the refresh token and every access token minted from it."""
        with self._lock:
            authorization = self.authorizations[refresh_token]
            authorization.revoked = True
            for access in authorization.live:
                self.valid_access.discard(access)
            authorization.live.clear()

    def refreshes(self, email: str) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.email == email]

    # -- what Zoho answers ------------------------------------------------------------------------

    def token_response(self, form: dict[str, str]) -> tuple[int, dict]:
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            return 200, {"error": "invalid_client"}
        if form.get("grant_type") == "authorization_code":
            return self._exchange(form.get("code", ""))
        if form.get("grant_type") == "refresh_token":
            answer = self._refresh(form.get("refresh_token", ""))  # decided on arrival, sent once the gate opens
            if not self.gate.is_set():
                self.refresh_waiting.set()
                self.gate.wait(30)
            return answer
        return 200, {"error": "unsupported_grant_type"}

    def _exchange(self, code: str) -> tuple[int, dict]:
        with self._lock:
            grant = self.grants.get(code)
            if grant is None or grant.used or time.monotonic() - grant.issued > GRANT_SECONDS:
                self.requests["refused grant"] += 1
                return 200, {"error": "invalid_code"}
            grant.used = True
            self.requests["grant"] += 1
            refresh = f"1000.refresh.{next(self._ids):06d}.{grant.email}"
            self.authorizations[refresh] = Authorization(grant.email)
            access = self._mint(refresh)
        return 200, {"access_token": access, "refresh_token": refresh, "api_domain": self.url,
                     "token_type": "Bearer", "expires_in": int(self.access_seconds)}

    def _refresh(self, refresh: str) -> tuple[int, dict]:
        with self._lock:
            authorization = self.authorizations.get(refresh)
            email = authorization.email if authorization else None
            now = time.monotonic()
            if authorization is None or authorization.revoked:
                outcome, reply = "invalid_code", {"error": "invalid_code"}
            else:
                while authorization.minted and now - authorization.minted[0] > REFRESH_PERIOD:
                    authorization.minted.popleft()
                if len(authorization.minted) >= REFRESH_LIMIT:
                    outcome = "Access Denied"
                    reply = {"error": "Access Denied", "error_description":
                             "You have made too many requests continuously. Please try again after some time."}
                else:
                    outcome = "ok"
                    reply = {"access_token": self._mint(refresh), "api_domain": self.url, "token_type": "Bearer",
                             "expires_in": int(self.access_seconds)}
            self.attempts.append(Attempt(now, email, refresh, outcome))
            self.requests["refresh" if outcome == "ok" else "refused refresh"] += 1
        return (200 if outcome != "Access Denied" else 400), reply

    def _mint(self, refresh: str) -> str:
        """A new access token from this refresh token (the lock is held)."""
        authorization = self.authorizations[refresh]
        access = f"1000.access.{next(self._ids):06d}.{authorization.email}"
        authorization.minted.append(time.monotonic())
        authorization.live.append(access)
        if len(authorization.live) > LIVE_LIMIT:
            self.valid_access.discard(authorization.live.popleft())
        self.valid_access.add(access)
        self.access_owner[access] = refresh
        return access

    def revoke_response(self, form: dict[str, str]) -> tuple[int, dict]:
        self.requests["revoke"] += 1
        token = form.get("token", "")
        authorization = self.authorizations.get(token)
        if token in self.refuse_revokes:
            outcome, reply = "refused", (200, {"status": "error", "error": "access_denied"})
        elif authorization is None or authorization.revoked:  # Zoho no longer knows it
            outcome, reply = "invalid_token", (400, {"error": "invalid_token"})
        else:
            self.revoke(token)
            outcome, reply = "revoked", (200, {"status": "success"})
        self.revocations.append((token, outcome))
        return reply

    def api_response(self, path: str, authorization: str) -> tuple[int, dict]:
        self.seen_authorization.append(authorization)
        access = authorization.removeprefix("Zoho-oauthtoken ")
        if access not in self.valid_access:
            return 401, {"code": "INVALID_TOKEN", "status": "error", "message": "invalid oauth token", "details": {}}
        email = self.authorizations[self.access_owner[access]].email
        if path.endswith("/users"):
            self.requests["users"] += 1
            return 200, {"users": [{"id": f"9{self.people[email]}", "email": email, "full_name": email}],
                         "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False}}
        if path.endswith("/org"):
            self.requests["org"] += 1
            return 200, {"org": [{"id": f"4{self.people[email]}", "zgid": self.people[email], "company_name": email}]}
        return 404, {"code": "INVALID_URL_PATTERN", "status": "error", "message": "not found", "details": {}}
