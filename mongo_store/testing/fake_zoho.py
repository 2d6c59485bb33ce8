"""A fake Zoho (accounts server and CRM API) on 127.0.0.1 that keeps the rules a real app meets, so
an application's login, refresh, revocation and multi-person flows can be tested without Zoho.

The rules (Zoho's documented limits, on the fake's own clock so a test never sleeps; ``advance``
moves it): a grant code works once and for ``grant_seconds`` (3 minutes), ``invalid_code`` after;
each grant gives its own refresh token, bound to the client that exchanged it (another client's
secret gets ``invalid_client``); a refresh token mints at most ``refresh_limit`` (10) access tokens
in ``refresh_period`` (10 minutes), "Access Denied" (HTTP 400) after that, and keeps ``live_limit``
(15) alive (the 16th ends the oldest); the 21st refresh token of a person and client deletes the
oldest; a revoked refresh token is refused with ``invalid_code``; an access token lapses after
``access_seconds``. The CRM API (``/crm/v{N}/...``, any version: every SDK line calls its own)
answers as the person whose access token is presented: ``users?type=CurrentUser``, ``org``,
``settings/fields``, ``settings/modules`` and records (``GET``/``POST /crm/v8/Leads`` and the
other modules), each person seeing only their own records.

It answers under whatever Host it is reached: ``environment`` is 127.0.0.1, ``environment_for("eu")``
names ``accounts.zoho.eu.localhost`` and ``www.zohoapis.eu.localhost`` (served here through the
guard's resolver), and a token exchanged there gets that data center's ``api_domain``.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

DATA_CENTERS: dict[str, tuple[str, str]] = {
    "us": ("accounts.zoho.com", "www.zohoapis.com"),
    "eu": ("accounts.zoho.eu", "www.zohoapis.eu"),
    "in": ("accounts.zoho.in", "www.zohoapis.in"),
    "au": ("accounts.zoho.com.au", "www.zohoapis.com.au"),
    "cn": ("accounts.zoho.com.cn", "www.zohoapis.com.cn"),
    "jp": ("accounts.zoho.jp", "www.zohoapis.jp"),
    "ca": ("accounts.zohocloud.ca", "www.zohoapis.ca"),
    "sa": ("accounts.zoho.sa", "www.zohoapis.sa"),
    "uk": ("accounts.zoho.uk", "www.zohoapis.uk"),
}
"""Each data center's accounts and API hosts; the fake serves them as ``<host>.localhost``."""
SECRET_FIELDS = frozenset({"client_secret", "code", "refresh_token", "token", "access_token"})
"""Form and query fields a recorded request leaves out: the secrets."""
HUGE = 50 * 1024 * 1024
"""How much a ``"huge"`` trouble streams."""
MODULES = ("Leads", "Contacts", "Accounts", "Deals")
ENDPOINTS = ("grant", "refresh", "revoke", "api")
ACCESS_DENIED = "You have made too many requests continuously. Please try again after some time."
FIELDS: dict[str, list[tuple[str, str, bool]]] = {  # api_name, data_type, system_mandatory
    "Leads": [("Last_Name", "text", True), ("First_Name", "text", False), ("Email", "email", False),
              ("Company", "text", False), ("Phone", "phone", False), ("Description", "textarea", False)],
    "Contacts": [("Last_Name", "text", True), ("First_Name", "text", False), ("Email", "email", False),
                 ("Phone", "phone", False)],
    "Accounts": [("Account_Name", "text", True), ("Phone", "phone", False), ("Website", "website", False)],
    "Deals": [("Deal_Name", "text", True), ("Stage", "text", False), ("Description", "textarea", False)],
}


@dataclass
class Person:
    """Someone with a Zoho account: the ids the CRM API answers with, and their records."""

    email: str
    zgid: str
    user_id: str
    org_id: str
    name: str
    company: str
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def user_name(self) -> str:
        """How the SDK names this person's token (``email:zgid``)."""
        return f"{self.email}:{self.zgid}"


@dataclass
class Grant:
    email: str
    issued: float
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    used: bool = False


@dataclass
class Authorization:
    """What one grant gave: a refresh token, bound to a client, and the access tokens minted from it."""

    email: str
    client: tuple[str, str]
    issued: float
    data_center: str | None = None
    minted: deque[float] = field(default_factory=deque)
    live: deque[str] = field(default_factory=deque)
    revoked: bool = False


@dataclass(frozen=True)
class ZohoRequest:
    """One request the fake received, without its secrets: ``form`` and ``query`` leave out the
    client secret, codes and tokens. ``name`` is what the counts use: ``"grant"``, ``"refresh"``,
    ``"revoke"``, an API (``"users"``, ``"org"``, ``"Leads"``...), ``"refused <that>"`` when
    refused, or ``"<endpoint> <trouble>"``."""

    method: str
    path: str
    host: str
    endpoint: str
    name: str
    status: int
    error: str | None
    email: str | None
    at: float
    data_center: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """``"ok"``, or the error Zoho answered (``invalid_code``, ``Access Denied``...)."""
        return self.error or "ok"


@dataclass
class _Failure:
    error: str
    status: int
    description: str | None
    times: int | None


def _without_secrets(values: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in values.items() if key not in SECRET_FIELDS}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def _environment(url: str, accounts_url: str, upload_url: str) -> Any:
    """An SDK ``DataCenter.Environment``, built the way the installed SDK line expects (5-0 also
    takes a name). The SDK is imported here, not at import time: the plugin loads without it."""
    from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter

    arguments = [url, accounts_url, upload_url]
    if "name" in inspect.signature(DataCenter.Environment.__init__).parameters:
        arguments.append("fake")
    return DataCenter.Environment(*arguments)


class FakeZoho:
    """Zoho's accounts server and CRM API for many people, in this process. Use it as a context
    manager (or ``start``/``stop``); the pytest fixture ``fake_zoho`` does that for a test."""

    def __init__(self, *, access_seconds: float = 3600.0, grant_seconds: float = 180.0, refresh_limit: int = 10,
                 refresh_period: float = 600.0, live_limit: int = 15, refresh_token_limit: int = 20,
                 port: int = 0) -> None:
        self.access_seconds, self.grant_seconds = access_seconds, grant_seconds
        self.refresh_limit, self.refresh_period, self.live_limit = refresh_limit, refresh_period, live_limit
        self.refresh_token_limit = refresh_token_limit
        self.people: dict[str, Person] = {}
        self.grants: dict[str, Grant] = {}
        self.authorizations: dict[str, Authorization] = {}  # refresh token -> what it gave
        self.access_owner: dict[str, str] = {}  # access token -> refresh token
        self.access_expiry: dict[str, float] = {}  # access token -> when it lapses (the fake's clock)
        self.seen_authorization: list[str] = []  # the Authorization headers the API received
        self.trouble: dict[str, str | int] = {}  # "token", "revoke" or "api" -> "hang", "redirect", "huge" or a status
        self.redirect_to = ""
        self.sent_bytes = 0
        self.gate = threading.Event()  # clear it to hold refreshes in flight (each answer decided on arrival)
        self.gate.set()
        self.refresh_waiting = threading.Event()  # set when a refresh waits at the closed gate
        self._log: list[ZohoRequest] = []
        self._failures: dict[str, _Failure] = {}
        self._offset = 0.0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._local = threading.local()
        self._released = threading.Event()
        self._thread: threading.Thread | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))  # port 0: any free one
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        """The fake's address; also the ``api_domain`` of a token exchanged at 127.0.0.1."""

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> FakeZoho:
        if self._thread is None:
            self._thread = threading.Thread(target=self.server.serve_forever, name="fake-zoho", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # a hanging handler ends
        self.gate.set()
        if self._thread is not None:
            self.server.shutdown()
            self._thread = None
        self.server.server_close()

    def __enter__(self) -> FakeZoho:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    @property
    def environment(self) -> Any:
        """The SDK environment (``DataCenter.Environment``) of this fake at 127.0.0.1."""
        return _environment(self.url, f"{self.url}/oauth/v2/token", self.url)

    def environment_for(self, data_center: str) -> Any:
        """The SDK environment of a data center (``"us"``, ``"eu"``, ``"in"``, ``"au"``, ``"cn"``,
        ``"jp"``, ``"ca"``, ``"sa"``, ``"uk"``), served by this fake under ``<its host>.localhost``."""
        if data_center not in DATA_CENTERS:
            raise ValueError(f"no data center {data_center!r}: one of {', '.join(DATA_CENTERS)}")
        accounts, api = (f"http://{host}.localhost:{self.port}" for host in DATA_CENTERS[data_center])
        return _environment(api, f"{accounts}/oauth/v2/token", api.replace("www.", "content.", 1))

    # -- the clock --------------------------------------------------------------------------------

    def now(self) -> float:
        """The fake's clock (seconds, monotonic): real time plus every ``advance``."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on: grant codes, the refresh window and access tokens age with it."""
        with self._lock:
            self._offset += seconds

    # -- what a test does ---------------------------------------------------------------------------

    def person(self, email: str, *, zgid: str | None = None, user_id: str | None = None, org_id: str | None = None,
               name: str | None = None, company: str | None = None) -> Person:
        """The person with this e-mail (created on first use, with their own org and user id)."""
        with self._lock:
            if email not in self.people:
                number = next(self._ids)
                zgid = zgid or str(700_000 + number)
                self.people[email] = Person(email, zgid, user_id or f"9{zgid}", org_id or f"4{zgid}",
                                            name or email.split("@")[0].title(), company or f"{email.split('@')[-1]} Inc.")
            return self.people[email]

    def user_name(self, email: str) -> str:
        """How the SDK names this person's token: ``email:zgid``."""
        return self.person(email).user_name

    def grant(self, email: str, *, code: str | None = None, client_id: str | None = None,
              client_secret: str | None = None, refresh_token: str | None = None, age: float = 0.0) -> str:
        """A one-time grant code for this person, as Zoho's consent page sends back. Any client may
        exchange it unless ``client_id`` (and ``client_secret``) bind it; ``refresh_token`` picks the
        refresh token the exchange gives (a new one otherwise); ``age``: issued that many seconds ago."""
        with self._lock:
            self.person(email)
            code = code or f"1000.grant.{next(self._ids):06d}.{email}"
            self.grants[code] = Grant(email, self.now() - age, client_id, client_secret, refresh_token)
            return code

    def authorize(self, email: str, client_id: str, client_secret: str, *, refresh_token: str | None = None) -> str:
        """A refresh token for this person and client, as if they had logged in earlier (to seed a
        store with a token that refreshes here)."""
        with self._lock:
            self.person(email)
            return self._issue(email, (client_id, client_secret), None, refresh_token)

    def access_token(self, refresh_token: str) -> str:
        """An access token minted from this refresh token, as a refresh would give (it counts
        toward the refresh limits), without a request."""
        with self._lock:
            return self._mint(refresh_token)

    def issued(self, refresh_token: str, access_token: str, seconds_left: float) -> None:
        """Zoho knows ``access_token``, minted from this refresh token earlier and valid for
        ``seconds_left`` more seconds (a stored token's, to seed a fake for a store that already
        holds tokens); not counted as a refresh."""
        with self._lock:
            authorization = self.authorizations[refresh_token]
            authorization.live.append(access_token)
            if len(authorization.live) > self.live_limit:
                authorization.live.popleft()
            self.access_owner[access_token] = refresh_token
            self.access_expiry[access_token] = self.now() + seconds_left

    def revoke(self, refresh_token: str) -> None:
        """Zoho forgets the refresh token and every access token minted from it."""
        with self._lock:
            authorization = self.authorizations[refresh_token]
            authorization.revoked = True
            authorization.live.clear()

    def expire_access_tokens(self, email: str | None = None) -> None:
        """Every live access token (of this person, or of everyone) lapses now: the API refuses it
        with ``INVALID_TOKEN`` until a refresh."""
        with self._lock:
            now = self.now()
            for access, refresh in self.access_owner.items():
                authorization = self.authorizations.get(refresh)
                if email is None or (authorization is not None and authorization.email == email):
                    self.access_expiry[access] = min(self.access_expiry.get(access, now), now)

    def fail_next(self, endpoint: str, *, error: str, status: int | None = None, description: str | None = None,
                  times: int | None = 1) -> None:
        """The next ``times`` calls to ``endpoint`` (``"grant"``, ``"refresh"``, ``"revoke"``, ``"api"``
        or one API: ``"users"``, ``"org"``, ``"Leads"``...) fail with ``error`` (``times=None``: every
        call until ``fail_next(endpoint, error=..., times=0)``). The status defaults to Zoho's: 200
        for the accounts server's errors, 400 for "Access Denied" and for the API."""
        with self._lock:
            if times == 0:
                self._failures.pop(endpoint, None)
                return
            if status is None:
                status = 400 if error == "Access Denied" or endpoint not in ENDPOINTS[:3] else 200
            if description is None and error == "Access Denied":
                description = ACCESS_DENIED
            self._failures[endpoint] = _Failure(error, status, description, times)

    @property
    def requests(self) -> list[ZohoRequest]:
        """Every request received so far, in order (a copy)."""
        with self._lock:
            return list(self._log)

    @property
    def counts(self) -> Counter[str]:
        """The requests by ``name``: ``counts["refresh"]``, ``counts["refused refresh"]``..."""
        with self._lock:
            return Counter(request.name for request in self._log)

    def refreshes(self, email: str) -> list[ZohoRequest]:
        """This person's refresh requests, with their ``outcome``."""
        with self._lock:
            return [request for request in self._log if request.endpoint == "refresh" and request.email == email]

    @property
    def valid_access(self) -> set[str]:
        """The access tokens the API accepts now."""
        with self._lock:
            return {access for access in self.access_owner if self._valid(access)}

    @property
    def revoked(self) -> set[str]:
        """The refresh tokens revoked so far."""
        with self._lock:
            return {refresh for refresh, authorization in self.authorizations.items() if authorization.revoked}

    def records(self, email: str, module: str = "Leads") -> list[dict[str, Any]]:
        """This person's records of a module, as the API stores them."""
        with self._lock:
            return [dict(record) for record in self.person(email).records.get(module, [])]

    # -- the rules --------------------------------------------------------------------------------

    def _issue(self, email: str, client: tuple[str, str], data_center: str | None, refresh: str | None = None) -> str:
        """A refresh token for a person and client (the lock is held); the oldest of more than
        ``refresh_token_limit`` is deleted."""
        if refresh is not None and refresh in self.authorizations:
            return refresh
        refresh = refresh or f"1000.refresh.{next(self._ids):06d}.{email}"
        mine = [token for token, held in self.authorizations.items() if (held.email, held.client[0]) == (email, client[0])]
        while len(mine) >= self.refresh_token_limit:
            oldest = min(mine, key=lambda token: self.authorizations[token].issued)
            del self.authorizations[oldest]
            mine.remove(oldest)
        self.authorizations[refresh] = Authorization(email, client, self.now(), data_center)
        return refresh

    def _mint(self, refresh: str, *, refreshed: bool = True) -> str:
        """A new access token from this refresh token (the lock is held); the grant exchange's own
        is not one of the refreshes the limit counts."""
        authorization = self.authorizations[refresh]
        access = f"1000.access.{next(self._ids):06d}.{authorization.email}"
        if refreshed:
            authorization.minted.append(self.now())
        authorization.live.append(access)
        if len(authorization.live) > self.live_limit:
            authorization.live.popleft()
        self.access_owner[access] = refresh
        self.access_expiry[access] = self.now() + self.access_seconds
        return access

    def _valid(self, access: str) -> bool:
        refresh = self.access_owner.get(access)
        authorization = self.authorizations.get(refresh) if refresh else None
        return (authorization is not None and not authorization.revoked and access in authorization.live
                and self.now() < self.access_expiry[access])

    def _forced(self, *endpoints: str) -> _Failure | None:
        """The failure ``fail_next`` set for the first of these endpoints, used once (the lock is held)."""
        for endpoint in endpoints:
            failure = self._failures.get(endpoint)
            if failure is not None:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self._failures[endpoint]
                return failure
        return None

    def _record(self, endpoint: str, name: str, status: int, error: str | None, email: str | None,
                data_center: str | None = None) -> None:
        context = getattr(self._local, "context", None) or {}
        self._log.append(ZohoRequest(
            method=context.get("method", "POST"), path=context.get("path", ""), host=context.get("host", ""),
            endpoint=endpoint, name=name if error is None else f"refused {name}", status=status, error=error,
            email=email, at=self.now(), data_center=data_center or self._data_center(),
            query=_without_secrets(context.get("query", {})), form=_without_secrets(context.get("form", {}))))

    def _data_center(self) -> str | None:
        host = (getattr(self._local, "context", None) or {}).get("host", "").split(":")[0].lower()
        for name, hosts in DATA_CENTERS.items():
            if host in (f"{hosts[0]}.localhost", f"{hosts[1]}.localhost"):
                return name
        return None

    def _api_domain(self, data_center: str | None) -> str:
        if data_center is None:
            return self.url
        return f"http://{DATA_CENTERS[data_center][1]}.localhost:{self.port}"

    # -- what Zoho answers --------------------------------------------------------------------------

    def token_response(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The accounts server's answer to ``POST /oauth/v2/token``."""
        kind = form.get("grant_type")
        if kind == "authorization_code":
            return self._exchange(form)
        if kind == "refresh_token":
            answer = self._refresh(form)  # decided on arrival, sent once the gate opens
            if not self.gate.is_set():
                self.refresh_waiting.set()
                self.gate.wait(30)
            return answer
        return 200, {"error": "unsupported_grant_type"}

    def _exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            code, data_center = form.get("code", ""), self._data_center()
            grant = self.grants.get(code)
            email = grant.email if grant else None
            client = (form.get("client_id", ""), form.get("client_secret", ""))
            failure = self._forced("grant")
            if failure is not None:
                self._record("grant", "grant", failure.status, failure.error, email, data_center)
                return failure.status, self._token_error(failure)
            if grant is None or grant.used or self.now() - grant.issued > self.grant_seconds:
                self._record("grant", "grant", 200, "invalid_code", email, data_center)
                return 200, {"error": "invalid_code"}
            if (grant.client_id is not None and grant.client_id != client[0]) or \
                    (grant.client_secret is not None and grant.client_secret != client[1]):
                self._record("grant", "grant", 200, "invalid_client", email, data_center)
                return 200, {"error": "invalid_client"}
            grant.used = True
            refresh = self._issue(grant.email, client, data_center, grant.refresh_token)
            access = self._mint(refresh, refreshed=False)
            self._record("grant", "grant", 200, None, grant.email, data_center)
        return 200, {"access_token": access, "refresh_token": refresh, "api_domain": self._api_domain(data_center),
                     "token_type": "Bearer", "expires_in": int(self.access_seconds)}

    def _refresh(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            refresh = form.get("refresh_token", "")
            authorization = self.authorizations.get(refresh)
            email = authorization.email if authorization else None
            data_center = self._data_center() or (authorization.data_center if authorization else None)
            failure = self._forced("refresh")
            if failure is not None:
                status, reply, error = failure.status, self._token_error(failure), failure.error
            elif authorization is None or authorization.revoked:
                status, reply, error = 200, {"error": "invalid_code"}, "invalid_code"
            elif (form.get("client_id"), form.get("client_secret")) != authorization.client:
                status, reply, error = 200, {"error": "invalid_client"}, "invalid_client"
            else:
                now = self.now()
                while authorization.minted and now - authorization.minted[0] >= self.refresh_period:
                    authorization.minted.popleft()
                if len(authorization.minted) >= self.refresh_limit:
                    status, error = 400, "Access Denied"
                    reply = {"error": error, "error_description": ACCESS_DENIED}
                else:
                    status, error = 200, None
                    reply = {"access_token": self._mint(refresh), "api_domain": self._api_domain(data_center),
                             "token_type": "Bearer", "expires_in": int(self.access_seconds)}
            self._record("refresh", "refresh", status, error, email, data_center)
        return status, reply

    @staticmethod
    def _token_error(failure: _Failure) -> dict[str, Any]:
        reply: dict[str, Any] = {"error": failure.error}
        if failure.description:
            reply["error_description"] = failure.description
        return reply

    def revoke_response(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The accounts server's answer to ``POST /oauth/v2/token/revoke``."""
        with self._lock:
            token = form.get("token", "")
            authorization = self.authorizations.get(token)
            email = authorization.email if authorization else None
            failure = self._forced("revoke")
            if failure is not None:
                self._record("revoke", "revoke", failure.status, failure.error, email)
                return failure.status, {"status": "error", "error": failure.error}
            if authorization is None or authorization.revoked:  # Zoho no longer knows it
                self._record("revoke", "revoke", 400, "invalid_token", email)
                return 400, {"error": "invalid_token"}
            self.revoke(token)
            self._record("revoke", "revoke", 200, None, email)
        return 200, {"status": "success"}

    def api_response(self, method: str, path: str, query: dict[str, str], authorization: str,
                     body: Any = None) -> tuple[int, dict[str, Any] | None]:
        """The CRM API's answer, as the person whose access token is presented (``None``: 204)."""
        with self._lock:
            self.seen_authorization.append(authorization)
            match = re.fullmatch(r"/crm/v\d+/(.+?)/?", path)
            resource = match.group(1) if match else ""
            parts = resource.split("/")
            name = {"users": "users", "org": "org", "settings/fields": "fields", "settings/modules": "modules"}.get(
                resource, parts[0] if parts[0] in MODULES else "api")
            access = authorization.removeprefix("Zoho-oauthtoken ")
            owner = self.authorizations.get(self.access_owner.get(access, ""))
            email = owner.email if owner and self._valid(access) else None
            failure = self._forced(name, "api")
            if failure is not None:
                self._record("api", name, failure.status, failure.error, email)
                return failure.status, self._api_error(failure.error, failure.description or failure.error)
            if email is None:
                self._record("api", name, 401, "INVALID_TOKEN", None)
                return 401, self._api_error("INVALID_TOKEN", "invalid oauth token")
            status, reply = self._answer(method, parts, query, body, self.people[email])
            error = reply.get("code") if reply and reply.get("status") == "error" else None
            self._record("api", name, status, error, email)
            return status, reply

    @staticmethod
    def _api_error(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"code": code, "status": "error", "message": message, "details": details or {}}

    def _answer(self, method: str, parts: list[str], query: dict[str, str], body: Any,
                person: Person) -> tuple[int, dict[str, Any] | None]:
        resource = "/".join(parts)
        if method == "GET" and resource == "users":
            return 200, {"users": [{"id": person.user_id, "email": person.email, "full_name": person.name,
                                    "first_name": person.name, "last_name": person.name, "status": "active",
                                    "zuid": person.zgid}],
                         "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False}}
        if method == "GET" and resource == "org":
            return 200, {"org": [{"id": person.org_id, "zgid": person.zgid, "company_name": person.company,
                                  "primary_email": person.email, "currency": "US Dollar"}]}
        if method == "GET" and resource == "settings/modules":
            return 200, {"modules": [{"api_name": module, "module_name": module, "singular_label": module[:-1],
                                      "plural_label": module, "api_supported": True, "id": f"{person.org_id}{n}",
                                      "generated_type": "default"} for n, module in enumerate(MODULES, 1)]}
        if method == "GET" and resource == "settings/fields":
            module = query.get("module", "")
            if module not in FIELDS:
                return 400, self._api_error("INVALID_MODULE", "the module name given seems to be invalid",
                                            {"param_name": "module"})
            return 200, {"fields": [{"api_name": api_name, "data_type": data_type, "json_type": "string",
                                     "system_mandatory": mandatory, "custom_field": False, "read_only": False,
                                     "field_label": api_name.replace("_", " "), "id": f"{person.org_id}{n:03d}"}
                                    for n, (api_name, data_type, mandatory) in enumerate(FIELDS[module], 1)]}
        if parts[0] in MODULES and len(parts) <= 2:
            return self._records(method, parts, query, body, person)
        return 404, self._api_error("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")

    def _records(self, method: str, parts: list[str], query: dict[str, str], body: Any,
                 person: Person) -> tuple[int, dict[str, Any] | None]:
        module, stored = parts[0], person.records.setdefault(parts[0], [])
        if method == "POST" and len(parts) == 1:
            rows = body.get("data") if isinstance(body, dict) else None
            if not isinstance(rows, list) or not rows:
                return 400, self._api_error("INVALID_DATA", "invalid data", {"expected_data_type": "jsonarray"})
            answers, mandatory = [], [api for api, _, required in FIELDS[module] if required]
            for row in rows:
                missing = [api for api in mandatory if not (isinstance(row, dict) and row.get(api))]
                if missing:
                    answers.append({"code": "MANDATORY_NOT_FOUND", "details": {"api_name": missing[0]},
                                    "message": "required field not found", "status": "error"})
                    continue
                now = _iso(datetime.now(timezone.utc) + timedelta(seconds=self._offset))
                record = {**row, "id": f"{person.org_id}{next(self._ids):09d}", "Created_Time": now}
                stored.append(record)
                who = {"name": person.name, "id": person.user_id}
                answers.append({"code": "SUCCESS", "details": {"Modified_Time": now, "Modified_By": who,
                                                               "Created_Time": now, "id": record["id"], "Created_By": who},
                                "message": "record added", "status": "success"})
            ok = any(answer["status"] == "success" for answer in answers)
            return (201 if ok else 400), {"data": answers}
        if method == "GET":
            wanted = stored if len(parts) == 1 else [record for record in stored if record["id"] == parts[1]]
            if len(parts) == 1 and not query.get("fields"):
                return 400, self._api_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                                            {"param": "fields"})
            if not wanted:
                return 204, None
            names = [name for name in query.get("fields", "").split(",") if name]
            rows = [{key: value for key, value in record.items() if not names or key in names or key == "id"}
                    for record in wanted]
            return 200, {"data": rows, "info": {"per_page": 200, "count": len(rows), "page": 1, "more_records": False}}
        return 405, self._api_error("INVALID_REQUEST_METHOD", "The http request method type is not a valid one")


def _handler(fake: FakeZoho) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def setup_context(self, form: dict[str, str]) -> tuple[str, dict[str, str]]:
            url = urlparse(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            fake._local.context = {"method": self.command, "path": url.path, "host": self.headers.get("Host", ""),
                                   "query": query, "form": form}
            return url.path, query

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:
            data = self.body()
            path = urlparse(self.path).path
            if "/crm/" in path:
                self.api(data)
                return
            form = {key: values[0] for key, values in parse_qs(data.decode("utf-8", "replace")).items()}
            path, query = self.setup_context(form)
            revoking = path.endswith("/revoke")
            if revoking and "token" not in form and "token" in query:
                form["token"] = query["token"]
            if not self.misbehave("revoke" if revoking else "token"):
                self.reply(*(fake.revoke_response(form) if revoking else fake.token_response(form)))

        def do_GET(self) -> None:
            self.api(b"")

        def do_PUT(self) -> None:
            self.api(self.body())

        def do_DELETE(self) -> None:
            self.api(b"")

        def api(self, data: bytes) -> None:
            path, query = self.setup_context({})
            if self.misbehave("api"):
                return
            try:
                body = json.loads(data) if data else None
            except ValueError:
                body = None
            self.reply(*fake.api_response(self.command, path, query, self.headers.get("Authorization", ""), body))

        def misbehave(self, endpoint: str) -> bool:
            trouble = fake.trouble.get(endpoint)
            if trouble is None:
                return False
            with fake._lock:
                fake._log.append(ZohoRequest(self.command, urlparse(self.path).path, self.headers.get("Host", ""),
                                             endpoint, f"{endpoint} {trouble}", 0, str(trouble), None, fake.now()))
            try:
                if trouble == "hang":
                    fake._released.wait(60)
                elif trouble == "redirect":
                    self.send_response(307)
                    self.send_header("Location", fake.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif trouble == "huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()  # no Content-Length: the size shows only as it is read
                    chunk = b" " * 65536
                    while fake.sent_bytes < HUGE:
                        self.wfile.write(chunk)
                        fake.sent_bytes += len(chunk)
                else:
                    data = f"<html><body>{trouble}: try later</body></html>".encode()
                    self.send_response(int(trouble))
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
            except OSError:  # the client hung up, as it should
                pass
            return True

        def reply(self, status: int, body: dict[str, Any] | None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
