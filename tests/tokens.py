"""Test helpers: SDK tokens built the way applications build them, and collection snapshots."""

from __future__ import annotations

import secrets
import traceback
from typing import Any

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

CLIENT_ID = "1000.CLIENTID0123456789"


def secret(kind: str) -> str:
    """A unique, recognisable secret value, so a test can search for it in any output."""
    return f"1000.{kind}.{secrets.token_hex(16)}"


def oauth(user: str | None = None, *, expires_in: str | None = None, client: bool = True, **kwargs: Any) -> OAuthToken:
    """An OAuthToken through the SDK's own constructor."""
    if client:
        kwargs.setdefault("client_id", CLIENT_ID)
        kwargs.setdefault("client_secret", secret("clientsecret"))
    token = OAuthToken(user_signature=UserSignature(user) if user else None, **kwargs)
    if expires_in is not None:
        token.set_expires_in(expires_in)
    return token


def full(user: str | None = "alice@example.com:700001", **kwargs: Any) -> OAuthToken:
    """A token as the SDK saves it after a grant exchange: every field set."""
    kwargs.setdefault("refresh_token", secret("refresh"))
    kwargs.setdefault("access_token", secret("access"))
    kwargs.setdefault("grant_token", secret("grant"))
    kwargs.setdefault("redirect_url", "https://app.example.com/oauth")
    kwargs.setdefault("api_domain", "https://www.zohoapis.com")
    kwargs.setdefault("expires_in", "4102444800123")  # 2100: far from the refresh window
    return oauth(user, **kwargs)


def values(token: OAuthToken) -> dict[str, Any]:
    """Every token value, for comparing two tokens."""
    signature = token.get_user_signature()
    return {
        "id": token.get_id(),
        "user_name": signature.get_name() if signature else None,
        "client_id": token.get_client_id(),
        "client_secret": token.get_client_secret(),
        "refresh_token": token.get_refresh_token(),
        "access_token": token.get_access_token(),
        "grant_token": token.get_grant_token(),
        "redirect_url": token.get_redirect_url(),
        "api_domain": token.get_api_domain(),
        "expires_in": token.get_expires_in(),
    }


def snapshot(store: Any) -> list[dict[str, Any]]:
    """The raw collection, for asserting that a refused call changed nothing."""
    return sorted(store.collection.find({}), key=lambda document: document["_id"])


def exception_texts(error: BaseException) -> list[str]:
    """Everything a logger or error tracker could print of an exception: its printed traceback and
    the text, repr and details of every exception chained to it, suppressed context included."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), str(getattr(current, "details", "")),
                  str(getattr(current, "cause", ""))]
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    return texts
