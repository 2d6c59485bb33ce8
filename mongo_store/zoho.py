"""Asking Zoho about a stored token, through the SDK's own code: ``check`` gets a working access
token exactly as an SDK worker does (refreshing through this store and its lease: no refresh storm)
and calls the current-user API with it; ``revoke`` revokes the refresh token at the accounts server
of the token's data center. Used by the CLI and the dashboard."""

from __future__ import annotations

import inspect
import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig
from zohocrmsdk.src.com.zoho.crm.api.util.constants import Constants

from . import admin
from .errors import CODE as STORE_ERROR_CODE
from .errors import sentence
from .lease import RefreshFailing, needs_refresh, utcnow
from .mapping import CHECK_ERROR_FIELD, CHECK_RESULT_FIELD, CHECKED_AT_FIELD, STARTED_FIELD, check_text, malformed
from .store import MongoTokenStore

DEFAULT_API_DOMAIN = "https://www.zohoapis.com"
"""The SDK's own default data center, for a token stored without an api_domain."""
REFRESH_SPACING = timedelta(minutes=1)
"""A check does not refresh a token whose last refresh started less than this ago: Zoho issues at most
10 access tokens per refresh token in 10 minutes, and a check run in a loop must not use them up."""
TIMEOUT = 15.0


class ZohoError(Exception):
    """A step at Zoho failed (one sentence, never a secret)."""


@dataclass
class Checked:
    token_id: str
    user_name: str | None
    result: str
    """``ok``; Zoho's error code (``invalid_code``, ``INVALID_TOKEN``...), also written on the token;
    or ``not checked: why`` (nothing asked of Zoho, nothing written)."""

    @property
    def ok(self) -> bool:
        return self.result == "ok"


def environment(api_domain: str | None, accounts_url: str | None = None) -> Any:
    """The SDK's environment for a token's data center: ``DataCenter.get`` maps the api_domain to its
    accounts server (``https://www.zohoapis.eu`` -> ``https://accounts.zoho.eu/oauth/v2/token``).
    ``accounts_url`` replaces the accounts server (a proxy, or a test server)."""
    api_domain = api_domain or DEFAULT_API_DOMAIN
    if accounts_url is None:
        known = DataCenter.get(api_domain)
        if known is None:
            raise ZohoError(f"{api_domain!r} is no Zoho data center the SDK knows: pass the accounts server's URL")
        return known
    arguments = [api_domain, accounts_url, api_domain]
    if "name" in inspect.signature(DataCenter.Environment.__init__).parameters:  # zohocrmsdk5-0
        arguments.append("custom")
    return DataCenter.Environment(*arguments)


def _quiet_sdk() -> None:
    """The SDK logs a failed refresh on its own logger; with no handler, Python would print it."""
    logger = logging.getLogger("SDKLogger")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def check(store: MongoTokenStore, token_id: str, accounts_url: str | None = None) -> Checked:
    """Obtain a working access token for this stored token the way the SDK does (at most one
    refresh), call Zoho's current-user API with it, and record the result on the token: a failure
    makes it ``failing`` until the next save."""
    token_id = check_text("id", token_id, required=True)
    document = store.call("read the token", lambda: store.collection.find_one({"_id": token_id}))
    if document is None:
        return Checked(token_id, None, "not found")
    user_name = document.get("user_name") if isinstance(document.get("user_name"), str) else None
    problem = malformed(document)
    if problem:
        return Checked(token_id, user_name, f"not checked: malformed ({problem})")
    now = utcnow()
    state, why = admin.health_of(document, now)
    if state == "unusable":
        return Checked(token_id, user_name, f"not checked: unusable ({why})")
    started = document.get(STARTED_FIELD)
    lapsed = needs_refresh(document, now) or document.get("access_token") is None
    if lapsed and isinstance(started, datetime) and now - started < REFRESH_SPACING:
        return Checked(token_id, user_name, "not checked: a refresh started under a minute ago (Zoho allows 10 "
                       "access tokens per refresh token in 10 minutes)")
    try:
        result = _ask_zoho(store, token_id, environment(document.get("api_domain"), accounts_url))
    except ZohoError as error:
        return Checked(token_id, user_name, f"not checked: {error}")
    update: dict[str, Any] = {"$currentDate": {CHECKED_AT_FIELD: True}, "$set": {CHECK_RESULT_FIELD: result}}
    if result == "ok":
        update["$unset"] = {CHECK_ERROR_FIELD: ""}
    else:
        update["$set"][CHECK_ERROR_FIELD] = result
    store.call("record the check", lambda: store.collection.update_one({"_id": token_id}, update), write=True)
    return Checked(token_id, user_name, result)


def _ask_zoho(store: MongoTokenStore, token_id: str, env: Any) -> str:
    """``ok`` or Zoho's error code. The SDK's ``Initializer.initialize`` runs ``get_token``: it finds
    the token through the store, refreshes it if it lapsed (taking the store's lease) and saves it."""
    _quiet_sdk()
    if hasattr(Initializer, "LOCAL"):  # some SDK releases keep a per-thread initializer first
        Initializer.LOCAL.init = None
    with tempfile.TemporaryDirectory() as resources:
        try:
            Initializer.initialize(env, OAuthToken(id=token_id), store=store, resource_path=resources,
                                   sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False))
        except SDKException as error:
            answer = error.args[1] if len(error.args) > 1 else None  # SDKException(code, message)
            if error.code == Constants.INVALID_TOKEN_ERROR and isinstance(answer, str) and answer:
                return answer  # Zoho's answer to the refresh: invalid_code, invalid_client...
            if isinstance(error, RefreshFailing):  # backing off: Zoho is not asked again before the window ends
                raise ZohoError(sentence(error)) from None
            if error.code == STORE_ERROR_CODE:  # the store failed: not a question for Zoho
                raise
            cause = getattr(error, "cause", None)  # requests' error names the URL: the type says enough
            raise ZohoError(f"the SDK could not get an access token ({type(cause or error).__name__})") from None
    document = store.call("read the token", lambda: store.collection.find_one({"_id": token_id}))
    if document is None:
        return "deleted meanwhile"
    opened = store.open_document(document)
    if needs_refresh(opened, utcnow()) or not opened.get("access_token"):
        return "refresh_not_saved"  # refreshed, but the save failed: asking again would refresh twice
    url = f"{opened.get('api_domain') or env.url}/crm/{Constants.API_VERSION}/users"
    try:
        response = requests.get(url, params={"type": "CurrentUser"}, timeout=TIMEOUT,
                                headers={"Authorization": f"Zoho-oauthtoken {opened['access_token']}"})
    except requests.RequestException as error:
        raise ZohoError(f"cannot reach Zoho's API ({type(error).__name__})") from None
    if response.status_code == 200:
        return "ok"
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    return str(code) if isinstance(code, str) and code else f"HTTP {response.status_code}"


def revoke(store: MongoTokenStore, token_id: str, accounts_url: str | None = None) -> str:
    """Revoke the token's refresh token at Zoho (the SDK's own ``revoke_refresh_token``); returns
    the accounts server's host. Raises ``ZohoError`` when Zoho did not revoke it: the caller keeps
    the document. Deleting it afterwards is the caller's (audited) step."""
    token_id = check_text("id", token_id, required=True)
    document = store.call("read the token", lambda: store.collection.find_one({"_id": token_id}))
    if document is None:
        raise ZohoError(f"no stored token has id {token_id!r}")
    refresh = store.open_document(document).get("refresh_token")
    if not refresh:
        raise ZohoError("the token has no refresh token, so there is nothing to revoke at Zoho: delete it instead")
    env = environment(document.get("api_domain"), accounts_url)
    try:
        revoked = OAuthToken.revoke_refresh_token(refresh, env.accounts_url + Constants.REVOKE_URL)
    except SDKException:
        raise ZohoError("cannot reach Zoho's accounts server") from None
    host = env.accounts_url.split("/")[2]
    if not revoked:
        raise ZohoError(f"{host} did not revoke the refresh token")
    return host
