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
import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from .operators import OPERATORS_FILE_ENV, OperatorsError, read_operators, verify
from .settings import Settings, oidc_configured


@dataclass(frozen=True)
class Operator:
    name: str
    method: str
    password_hash: str = ""  # the password it signed in with, so a changed password ends the session

    @property
    def who(self) -> str:
        """The audit's "who": the account, the SSO e-mail, or, behind the one shared password, the
        name typed beside it, marked as such (nothing proves it)."""
        return f"{self.name} (typed name, shared password)" if self.method == "password" else self.name


MAX_ATTEMPTS = 5
"""Wrong passwords one address may enter within ``LOCKOUT`` seconds; then it must wait."""
LOCKOUT = 15 * 60.0
WRONG_PASSWORD_DELAY = 1.0
_failures: dict[str, list[float]] = {}
"""Wrong passwords by client address, for this dashboard process: a lockout that a new browser
session (or many at once) does not reset."""
_failures_lock = threading.Lock()


def client_address() -> str:
    """The browser's address as Streamlit sees it (behind a reverse proxy: the proxy's). Streamlit
    before 1.45 does not tell it: then every client shares one lockout, which still holds."""
    address = getattr(st.context, "ip_address", None)
    return address if isinstance(address, str) and address else "unknown"


def recent_failures(address: str, now: float | None = None) -> int:
    now = time.monotonic() if now is None else now
    with _failures_lock:
        kept = [at for at in _failures.get(address, []) if now - at < LOCKOUT]
        if kept:
            _failures[address] = kept
        else:
            _failures.pop(address, None)
        return len(kept)


def record_failure(address: str) -> None:
    with _failures_lock:
        _failures.setdefault(address, []).append(time.monotonic())


def operators_file() -> str | None:
    """``DASHBOARD_OPERATORS_FILE``: the file of operator accounts (see ``operators.py``), or None."""
    value = os.environ.get(OPERATORS_FILE_ENV, "").strip()
    return value or None

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
    accounts = operators_file()
    if accounts:
        try:
            operators = read_operators(accounts)
        except OperatorsError as error:
            st.error(f"The dashboard will not start: {error}.")
            return None
        operator = st.session_state.get("operator")
        if isinstance(operator, Operator) and operator.method == "account" and hmac.compare_digest(
                operator.password_hash, password_hash(operators.get(operator.name, ""))):
            return operator  # a removed account, or a new password, ends the session
        st.session_state.pop("operator", None)
        password_form(settings, operators)
        return None
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


def password_form(settings: Settings, operators: dict[str, str] | None = None) -> None:
    """The sign-in form: an account and its password (``operators``), or a typed name beside the
    shared password. Wrong passwords are counted by client address, across sessions."""
    st.title("Zoho token store")
    if settings.demo:
        st.info("Demo: the password is shown in the terminal that started the demo (default `demo`).")
    address = client_address()
    if recent_failures(address) >= MAX_ATTEMPTS:
        st.error(f"Too many wrong passwords ({MAX_ATTEMPTS}) from your address: try again in "
                 f"{LOCKOUT / 60:g} minutes.")
        return
    with st.form("sign-in"):
        name = st.text_input("Account" if operators is not None else "Your name (recorded in the audit log)")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    if operators is not None:
        correct = verify(operators, name.strip(), password)
        operator = Operator(name.strip(), "account", password_hash(operators.get(name.strip(), "")))
    else:
        correct = hmac.compare_digest(password.encode(), str(settings.password).encode())
        operator = Operator(name.strip(), "password", password_hash(str(settings.password)))
    if correct and name.strip():
        st.session_state["operator"] = operator
        st.rerun()
    if not correct:
        record_failure(address)
        time.sleep(WRONG_PASSWORD_DELAY)  # slows guessing down
    st.error(("Wrong account or password." if operators is not None else "Wrong password.") if not correct
             else "Please enter your name.")


def sign_out(operator: Operator) -> None:
    if operator.method == "oidc":
        st.logout()
    else:
        st.session_state.pop("operator", None)
