"""Asking Zoho about a stored token: ``check`` gets a working access token as an SDK worker does
(through this store's refresh lease: no refresh storm; saved with ``save_token``) and calls the
current-user API with it; ``revoke`` revokes the refresh token at the accounts server of the
token's data center. Used by the CLI and the dashboard.

Every call to Zoho is made through ``core/zoho_http.py``, not by the SDK (whose ``requests.post``
has no timeout, follows redirects with the secret, reads a reply of any size and sends the refresh
to ``DataCenter.get(api_domain)`` whatever accounts server was configured): each one has a connect
and a read timeout, an overall bound, a reply size cap and follows no redirect, and a token's
secrets go only to Zoho's own hosts for its data center or to the accounts server the operator
configured, never to whatever ``api_domain`` a document says. ``ZohoError``, ``AlreadyRevoked``,
``NotReached`` and ``call_zoho`` are importable from here as before.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.util.constants import Constants

from ..core import reasons
from ..core.errors import RefreshFailing, sentence
from ..core.events import zoho_code
from ..core.lease import needs_refresh, record_failure, take, utcnow
from ..core.mapping import (
    CHECK_ERROR_FIELD,
    CHECK_RESULT_FIELD,
    CHECKED_AT_FIELD,
    LEASE_FIELD,
    STARTED_FIELD,
    check_text,
    document_to_token,
    malformed,
)
from ..core.store import MongoTokenStore
from ..core.urls import UrlError, http_url
from ..core.zoho_http import (
    CALL_BOUND,
    CONNECT_TIMEOUT,
    MAX_REPLY,
    READ_TIMEOUT,
    AlreadyRevoked,
    NotReached,
    Reply,
    ZohoError,
    call_zoho,
    host_of,
    revoke_refresh_token,
    unusable_status,
)
from .health import health_of

__all__ = ["CALL_BOUND", "CONNECT_TIMEOUT", "MAX_REPLY", "READ_TIMEOUT", "AlreadyRevoked", "Checked", "NotReached",
           "Reply", "Route", "ZohoError", "call_zoho", "check", "host_of", "revoke", "route"]

log = logging.getLogger("mongo_store")

DEFAULT_API_DOMAIN = "https://www.zohoapis.com"
"""The SDK's own default data center, for a token stored without an api_domain."""
REFRESH_SPACING = timedelta(minutes=1)
"""A check does not refresh a token whose last refresh started less than this ago: Zoho issues at most
10 access tokens per refresh token in 10 minutes, and a check run in a loop must not use them up."""


class _Answered(Exception):
    """Zoho answered with an error code (``invalid_code``, ``INVALID_TOKEN``...): recorded on the token."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Checked:
    token_id: str
    user_name: str | None
    result: str
    """``ok``; Zoho's error code (``invalid_code``, ``INVALID_TOKEN``...), also written on the token;
    or ``not checked: why`` (no answer from Zoho to go by, nothing written)."""

    @property
    def ok(self) -> bool:
        return self.result == "ok"


@dataclass(frozen=True)
class Route:
    """Where a token's secrets may go: ``accounts`` (the token endpoint: refresh, revoke) and ``api``
    (the CRM API base URL, with the access token), or None where nothing may be sent."""
    accounts: str | None
    api: str | None


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        return http_url(url).origin
    except UrlError:
        return None


def check_accounts_url(url: str) -> str:
    """A configured server must be an http(s) URL that every HTTP client reads alike
    (``core/urls.py``; its credentials never shown): the URL as it will be requested."""
    try:
        return http_url(url).text
    except UrlError as error:
        raise ZohoError(f"the accounts URL must be an http(s) URL such as https://accounts.zoho.eu/oauth/v2/token "
                        f"({error})") from None


def zoho_data_center(api_domain: str) -> Any:
    """The SDK's environment for ``api_domain`` when it is exactly one of Zoho's API hosts
    (``https://www.zohoapis.eu``, ``https://sandbox.zohoapis.com``...), else None: the SDK's own
    lookup also maps names such as ``eu`` and accounts URLs, which are no API host to send to."""
    known = DataCenter.get(api_domain)
    return known if known is not None and known.url == api_domain else None


def route(api_domain: str | None, accounts_url: str | None = None, api_url: str | None = None) -> Route:
    """Where this token's secrets may be sent. The refresh and the revoke go to the configured
    accounts server if there is one, else to the accounts server of the token's Zoho data center.
    The access token goes to the configured API server (``api_url``: a proxy, or the demo's local
    fake Zoho) if there is one, else to ``api_domain`` only if it is a Zoho API host, or the very
    server configured as the accounts server (a proxy for both, or a test server)."""
    if api_url is not None:
        return Route(route(api_domain, accounts_url).accounts, check_accounts_url(api_url))
    api_domain = api_domain or DEFAULT_API_DOMAIN
    known = zoho_data_center(api_domain)
    if accounts_url is not None:
        accounts_url = check_accounts_url(accounts_url)
        # Compared as read by the one parser, and sent as read (a URL it refuses is no origin).
        same = _origin(api_domain) is not None and _origin(api_domain) == _origin(accounts_url)
        return Route(accounts_url, api_domain if known is not None else http_url(api_domain).text if same else None)
    return Route(known.accounts_url if known is not None else None, api_domain if known is not None else None)


def _not_zoho(api_domain: str | None) -> str:
    return f"its api_domain {api_domain!r} is not a Zoho API host, so nothing was sent"


def check(store: MongoTokenStore, token_id: str, accounts_url: str | None = None, api_url: str | None = None) -> Checked:
    """Obtain a working access token for this stored token the way the SDK does (at most one
    refresh), call Zoho's current-user API with it (at ``api_url`` if given: see ``route``), and
    record the result on the token: Zoho's refusal makes it ``failing`` until the next save; no
    answer from Zoho records nothing. A stored document whose id is no string (``check --all``
    meets hand-made ones) is a result of its own, so it never stops a pass."""
    if token_id is not None and not isinstance(token_id, str):
        return Checked(repr(token_id), None, f"not checked: its id is {type(token_id).__name__}, not a string (no "
                       "token the store wrote: fix or delete it)")
    token_id = check_text("id", token_id, required=True)
    document = store.call("read the token", lambda: store.collection.find_one({"_id": token_id}))
    if document is None:
        return Checked(token_id, None, "not found")
    user_name = document.get("user_name") if isinstance(document.get("user_name"), str) else None
    problem = malformed(document)
    if problem:
        return Checked(token_id, user_name, f"not checked: malformed ({problem})")
    now = utcnow()
    state, why = health_of(document, now)
    if state == "unusable":
        return Checked(token_id, user_name, f"not checked: unusable ({why})")
    try:
        where = route(document.get("api_domain"), accounts_url, api_url)
    except ZohoError as error:
        return Checked(token_id, user_name, f"not checked: {error}")
    if where.api is None:
        return Checked(token_id, user_name, f"not checked: {_not_zoho(document.get('api_domain'))}")
    started = document.get(STARTED_FIELD)
    lapsed = needs_refresh(document, now) or document.get("access_token") is None
    if lapsed and isinstance(started, datetime) and now - started < REFRESH_SPACING:
        return Checked(token_id, user_name, "not checked: a refresh started under a minute ago (Zoho allows 10 "
                       "access tokens per refresh token in 10 minutes)")
    try:
        opened = store.open_document(document)
    except SDKException as error:  # sealed and altered, or under a key this store lacks: nothing is sent
        return Checked(token_id, user_name, f"not checked: {sentence(error)}")
    try:
        access = _refresh(store, document, opened, where) if lapsed else opened["access_token"]
        result = _current_user(where.api, access)
    except _Answered as answer:
        result = answer.code
    except ZohoError as error:
        return Checked(token_id, user_name, f"not checked: {error}")
    update: dict[str, Any] = {"$currentDate": {CHECKED_AT_FIELD: True}, "$set": {CHECK_RESULT_FIELD: result}}
    if result == "ok":
        update["$unset"] = {CHECK_ERROR_FIELD: ""}
    else:
        update["$set"][CHECK_ERROR_FIELD] = result
    store.call("record the check", lambda: store.collection.update_one({"_id": token_id}, update), write=True)
    return Checked(token_id, user_name, result)


def _refresh(store: MongoTokenStore, document: dict[str, Any], opened: dict[str, Any], where: Route) -> str:
    """A new access token, saved through the store, as the SDK's ``get_token`` would get it: the
    refresh token (or a grant token not yet exchanged) at the accounts server, under the store's
    lease. A refresh that gets no answer from Zoho gives the lease back, so it is not counted as a
    failed refresh; one Zoho refuses is recorded and backs off, as an SDK worker's is. A token
    inside its back-off window is not refreshed."""
    assert where.accounts is not None
    token_id = document["_id"]
    refresh = opened.get("refresh_token")
    form = {"client_id": opened.get("client_id"), "client_secret": opened.get("client_secret")}
    if refresh:
        form |= {"refresh_token": refresh, "grant_type": "refresh_token"}
    else:
        form |= {"code": opened.get("grant_token"), "redirect_uri": opened.get("redirect_url"),
                 "grant_type": "authorization_code"}
    lease = held = None
    if refresh and store.refresh_lease:
        try:  # as any SDK worker: one refresh at a time, and none inside a back-off window
            held = store.call("take the refresh lease",
                              lambda: take(store.collection, document, store.refresh_lease, store.backoff), write=True)
        except RefreshFailing as backing_off:
            raise ZohoError(sentence(backing_off)) from None
        if held is None:
            raise ZohoError("another worker is refreshing it right now")
        lease = held[LEASE_FIELD]
    host = host_of(where.accounts)
    try:
        reply = call_zoho("POST", where.accounts, data={key: value for key, value in form.items() if value is not None})
        trouble = unusable_status(reply, host)
        if trouble is None and not isinstance(reply.body, dict):
            trouble = NotReached(f"{host} answered HTTP {reply.status} without JSON")
        if trouble is not None:
            raise trouble
    except NotReached:
        if lease is not None:  # ours: named in the filter, so a later holder's lease is never removed
            store.call("give the refresh lease back", lambda: store.collection.update_one(
                {"_id": token_id, LEASE_FIELD: lease}, {"$unset": {LEASE_FIELD: ""}}), write=True)
        raise
    body = reply.body
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        code = body.get("error")
        if held is not None:  # refused, as an SDK worker's refresh would be: recorded, and backed off
            taken, reason = held, reasons.of_code(code)
            recorded = store.call("record the failed refresh",
                                  lambda: record_failure(store.collection, taken, taken[LEASE_FIELD], store.backoff, reason),
                                  write=True)
            if recorded:
                store.record_event(taken, "refresh-failed", f"Zoho refused the refresh "
                                   f"({zoho_code(code) or f'HTTP {reply.status}'}), during a check: {reason}")
                store.flush_events(store.failover_wait)  # before the check's own entry: the history in order
        raise _Answered(code if isinstance(code, str) and code else f"HTTP {reply.status}")
    seconds = body.get("expires_in")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 < seconds <= 10 ** 9:
        raise _Answered("no_expiry_in_answer")
    token = document_to_token(opened)
    token.set_access_token(access)
    # As the SDK: expires_in is in seconds, unless Zoho says expires_in_sec (then it is milliseconds).
    token.set_expires_in(str(int(time.time() * 1000) + (seconds if "expires_in_sec" in body else seconds * 1000)))
    if isinstance(body.get("refresh_token"), str) and body["refresh_token"]:
        token.set_refresh_token(body["refresh_token"])
    try:
        store.save_token(token)
    except SDKException as error:
        log.warning("check: the refreshed token %s was not saved: %s", token_id, type(error).__name__)
        raise _Answered("refresh_not_saved") from None  # asking again would refresh twice
    return access


def _current_user(api: str, access: str) -> str:
    """``ok``, or the API's error code for this access token (``INVALID_TOKEN``...)."""
    url = f"{api.rstrip('/')}/crm/{Constants.API_VERSION}/users"
    reply = call_zoho("GET", url, params={"type": "CurrentUser"}, headers={"Authorization": f"Zoho-oauthtoken {access}"})
    trouble = unusable_status(reply, host_of(url))
    if trouble is not None:
        raise trouble
    if reply.status == 200:
        return "ok"
    code = reply.body.get("code") if isinstance(reply.body, dict) else None
    return code if isinstance(code, str) and code else f"HTTP {reply.status}"


def revoke(store: MongoTokenStore, token_id: str, accounts_url: str | None = None) -> str:
    """Revoke the token's refresh token at Zoho; returns the accounts server's host. Raises
    ``ZohoError`` when Zoho did not revoke it (or was not asked): the caller keeps the document.
    Deleting it afterwards is the caller's (audited) step."""
    token_id = check_text("id", token_id, required=True)
    document = store.call("read the token", lambda: store.collection.find_one({"_id": token_id}))
    if document is None:
        raise ZohoError(f"no stored token has id {token_id!r}")
    return revoke_stored(store, document, accounts_url)


def revoke_stored(store: MongoTokenStore, document: dict[str, Any], accounts_url: str | None = None) -> str:
    """``revoke`` of the refresh token ``document`` holds as it was read, never as it is by now: an
    operator's action revokes the refresh token it checked (a new login meanwhile brought another,
    which must live on)."""
    refresh = store.open_document(document).get("refresh_token")
    if not refresh:
        raise ZohoError("the token has no refresh token, so there is nothing to revoke at Zoho: delete it instead")
    where = route(document.get("api_domain"), accounts_url)
    if where.accounts is None:
        raise ZohoError(f"{_not_zoho(document.get('api_domain'))} (pass the accounts server's URL to revoke it there)")
    return revoke_refresh_token(where.accounts, refresh)
