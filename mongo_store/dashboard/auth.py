"""The sign-in gate: nothing is shown until an operator is known.

A password (from ``DASHBOARD_PASSWORD`` or secrets, compared in constant time, a few tries per
session, each wrong one slowed down; a session ends when the password changes), or OIDC through
``st.login`` when ``[auth]`` is configured in secrets, for the e-mails or domains on an allow-list
only. With neither, or OIDC without an allow-list, the app refuses to show data;
``DASHBOARD_AUTH_DISABLED=1`` turns the gate off for local use, with a visible warning.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from .settings import Settings, oidc_configured


@dataclass(frozen=True)
class Operator:
    name: str
    method: str
    password_hash: str = ""  # the password it signed in with, so a changed password ends the session


MAX_ATTEMPTS = 5
"""Wrong passwords a session may enter; then it must start over (a new browser session)."""
WRONG_PASSWORD_DELAY = 1.0

NO_ALLOW_LIST = (
    "Single sign-on is configured, but no one is allowed in yet, so no token data is shown. Set "
    "`DASHBOARD_ALLOWED_EMAILS` (exact e-mails, comma-separated) and/or `DASHBOARD_ALLOWED_DOMAINS` (e-mail "
    "domains), or `allowed_emails` / `allowed_domains` under `[dashboard]` in `.streamlit/secrets.toml`."
)


NOT_CONFIGURED = (
    "Sign-in is not configured, so no token data is shown. Set `DASHBOARD_PASSWORD` (or `password` under "
    "`[dashboard]` in `.streamlit/secrets.toml`), or configure OIDC under `[auth]` in secrets for `st.login`. "
    "For local use only, `DASHBOARD_AUTH_DISABLED=1` turns sign-in off."
)


def is_loopback(name: str | None) -> bool:
    """Whether ``name`` (an address, or a host name) can only mean this machine: ``localhost`` or a
    loopback address (127.0.0.0/8, ::1). ``127.0.0.1.evil.test`` is a name anyone's DNS can point
    anywhere."""
    name = str(name or "").strip().lower().removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def request_host() -> str | None:
    """The HTTP Host header of the browser's connection to this session, or None outside a browser
    (the tests' AppTest)."""
    host = st.context.headers.get("Host")
    return host if isinstance(host, str) else None


def foreign_host(host: str | None) -> bool:
    """Whether a page served under this Host header came by a name that is not this machine's: a
    DNS-rebinding page (``http://evil.test:8501`` resolved to 127.0.0.1) sends its own name."""
    if host is None:
        return False
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return True
    return not is_loopback(name)


def signed_in_operator(settings: Settings) -> Operator | None:
    """The operator, or None after rendering the sign-in (or the configuration error)."""
    if settings.auth_disabled:
        if foreign_host(request_host()):
            st.error("Sign-in is turned off, so the dashboard answers only pages opened as localhost or "
                     "127.0.0.1 on this machine, not under another name (which a hostile web page can point "
                     "here). Open it as http://localhost, or turn sign-in on.")
            return None
        st.warning("Sign-in is turned off (DASHBOARD_AUTH_DISABLED): anyone who can open this page can read "
                   "and delete tokens. Use it only on your own machine.", icon="⚠️")
        return Operator("local user (sign-in off)", "none")
    if oidc_configured():
        if not settings.allowed_emails and not settings.allowed_domains:
            st.error(NO_ALLOW_LIST)
            return None
        if not st.user.is_logged_in:
            st.title("Zoho token store")
            st.button("Sign in", on_click=st.login, type="primary")
            return None
        refused = oidc_refusal(settings, dict(st.user.to_dict()))
        if refused:
            st.error(refused)
            st.button("Sign out", on_click=st.logout)
            return None
        return Operator(str(st.user.get("email")).strip().lower(), "oidc")
    if settings.password:
        operator = st.session_state.get("operator")
        if isinstance(operator, Operator) and hmac.compare_digest(operator.password_hash,
                                                                  password_hash(settings.password)):
            return operator
        st.session_state.pop("operator", None)  # signed in with a password that has changed since
        password_form(settings)
        return None
    st.error(NOT_CONFIGURED)
    return None


def oidc_refusal(settings: Settings, user: dict[str, Any]) -> str | None:
    """Why an identity the provider vouches for may not use the dashboard, or None."""
    email = user.get("email")
    if not isinstance(email, str) or "@" not in email:
        return "Your identity provider did not give an e-mail address, so you cannot be let in."
    if not email_verified(user.get("email_verified")):
        return ("Your identity provider does not say that your e-mail address is verified, so you cannot be let in "
                "(anyone can type an address of an allowed domain into an account that is not verified).")
    email = email.strip().lower()
    if email in settings.allowed_emails or email.rpartition("@")[2] in settings.allowed_domains:
        return None
    return "This account is not on the dashboard's allow-list. Ask an administrator to add it."


def email_verified(claim: Any) -> bool:
    """Only the provider's explicit yes counts: JSON ``true``, or the string ``"true"`` some providers
    send. A missing claim, ``"0"``, ``"FALSE"``, ``"no"`` or ``1`` is no verification."""
    return claim is True or claim == "true"


def password_hash(password: str) -> str:
    return hashlib.sha256(str(password).encode()).hexdigest()


def password_form(settings: Settings) -> None:
    st.title("Zoho token store")
    if settings.demo:
        st.info("Demo: the password is shown in the terminal that started the demo (default `demo`).")
    failures = int(st.session_state.get("failed_sign_ins", 0))
    if failures >= MAX_ATTEMPTS:
        st.error(f"Too many wrong passwords ({MAX_ATTEMPTS}). Close this tab and open the dashboard again.")
        return
    with st.form("sign-in"):
        name = st.text_input("Your name (recorded in the audit log)")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        correct = hmac.compare_digest(password.encode(), str(settings.password).encode())
        if correct and name.strip():
            st.session_state["failed_sign_ins"] = 0
            st.session_state["operator"] = Operator(name.strip(), "password", password_hash(str(settings.password)))
            st.rerun()
        if not correct:
            st.session_state["failed_sign_ins"] = failures + 1
            time.sleep(WRONG_PASSWORD_DELAY)  # slows guessing down
        st.error("Wrong password." if not correct else "Please enter your name.")


def sign_out(operator: Operator) -> None:
    if operator.method == "oidc":
        st.logout()
    else:
        st.session_state.pop("operator", None)
