"""The sign-in gate: nothing is shown until an operator is known, with a role.

A password (from ``DASHBOARD_PASSWORD`` or secrets, compared in constant time; or an account of the
operators file, argon2id), or OIDC through ``st.login`` when ``[auth]`` is configured in secrets,
for the e-mails, domains or groups on an allow-list only. With neither, or OIDC without an
allow-list, the app refuses to show data; ``DASHBOARD_AUTH_DISABLED=1`` turns the gate off for
local use, with a visible warning.

Wrong passwords are limited (``MAX_ATTEMPTS`` in ``LOCKOUT`` seconds) per client address and per
account, each attempt counted before its password is verified, so guesses sent at once are
refused once the limit is reached, not all evaluated.

A password sign-in survives a reload, a new tab and a shared link through a session cookie
(``COOKIE``): signed (HMAC-SHA256 with ``DASHBOARD_SESSION_SECRET``, else a key made per dashboard
process), expiring (``DASHBOARD_SESSION_HOURS``), revoked by "Sign out" (its id is refused by this
process until it would have expired), ended by a changed password or a removed account, and never
holding the password (an account's role is read from the file at each use). Streamlit has no way
to set a cookie from the server, so a zero-height component writes it in the page (``SameSite=Strict``,
``Secure`` over https); ``st.context.cookies`` reads it back. Single sign-on keeps ``st.login``'s
own session cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from ..tools.operations import ROLES
from .operators import OPERATORS_FILE_ENV, Account, OperatorsError, read_accounts, verify
from .settings import Settings, oidc_configured


@dataclass(frozen=True)
class Operator:
    name: str
    method: str
    password_hash: str = ""  # a keyed fingerprint of the password it signed in with: a changed password ends the session
    role: str = "admin"
    """``viewer``, ``operator`` or ``admin`` (``operations.ROLES``): what the operator layer lets it do."""

    @property
    def who(self) -> str:
        """The audit's "who": the account, the SSO e-mail, or, behind the one shared password, the
        name typed beside it, marked as such (nothing proves it)."""
        return f"{self.name} (typed name, shared password)" if self.method == "password" else self.name


MAX_ATTEMPTS = 5
"""Wrong passwords one address, or one account, may enter within ``LOCKOUT`` seconds; then it must wait."""
LOCKOUT = 15 * 60.0
WRONG_PASSWORD_DELAY = 1.0
_failures: dict[str, list[float]] = {}
"""Sign-in attempts by ``address:...`` and by ``account:...``, for this dashboard process: a lockout
that a new browser session (or many at once) does not reset. An attempt is counted when it is
made and forgotten again only when its password was right."""
_failures_lock = threading.Lock()


def client_address() -> str:
    """The browser's address as Streamlit sees it (behind a reverse proxy: the proxy's). Streamlit
    before 1.45 does not tell it: then every client shares one address lockout; the per-account
    lockout still tells accounts apart."""
    address = getattr(st.context, "ip_address", None)
    return address if isinstance(address, str) and address else "unknown"


def _kept(key: str, now: float) -> list[float]:
    kept = [at for at in _failures.get(key, []) if now - at < LOCKOUT]
    if kept:
        _failures[key] = kept
    else:
        _failures.pop(key, None)
    return kept


def recent_failures(address: str, now: float | None = None) -> int:
    """Attempts counted against this address (``address:`` keys) or key within ``LOCKOUT``."""
    now = time.monotonic() if now is None else now
    key = address if address.startswith(("address:", "account:")) else f"address:{address}"
    with _failures_lock:
        return len(_kept(key, now))


def record_failure(address: str) -> None:
    key = address if address.startswith(("address:", "account:")) else f"address:{address}"
    with _failures_lock:
        _failures.setdefault(key, []).append(time.monotonic())


def reserve_attempt(keys: list[str]) -> float | None:
    """Count one attempt against every key at once, before the password is verified; None (nothing
    counted) when any key has reached ``MAX_ATTEMPTS``. Returns the attempt's stamp, for ``forget_attempt``."""
    now = time.monotonic()
    with _failures_lock:
        if any(len(_kept(key, now)) >= MAX_ATTEMPTS for key in keys):
            return None
        for key in keys:
            _failures.setdefault(key, []).append(now)
    return now


def forget_attempt(keys: list[str], stamp: float) -> None:
    """A right password: its attempt no longer counts."""
    with _failures_lock:
        for key in keys:
            if stamp in _failures.get(key, []):
                _failures[key].remove(stamp)


def operators_file() -> str | None:
    """``DASHBOARD_OPERATORS_FILE``: the file of operator accounts (see ``operators.py``), or None."""
    value = os.environ.get(OPERATORS_FILE_ENV, "").strip()
    return value or None


# -- the session cookie ----------------------------------------------------------------------------

COOKIE = "zms_session"
_PROCESS_KEY = secrets.token_bytes(32)
"""Signs session cookies when ``DASHBOARD_SESSION_SECRET`` is unset: a restart signs everyone out."""
_signed_out: dict[str, float] = {}
"""Session ids ended by "Sign out", until they would have expired (epoch seconds)."""
_signed_out_lock = threading.Lock()


def _key(settings: Settings) -> bytes:
    return settings.session_secret.encode() if settings.session_secret else _PROCESS_KEY


def fingerprint(settings: Settings, secret_text: str) -> str:
    """A keyed fingerprint of what a session was opened with (the shared password, or an account's
    hash): a change ends the session; without the key it says nothing about the password."""
    return hmac.new(_key(settings), b"fingerprint\0" + str(secret_text).encode(), hashlib.sha256).hexdigest()[:32]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_token(settings: Settings, operator: Operator, now: float | None = None) -> str:
    """The cookie's value: ``payload.signature``; the payload names the operator, how it signed in,
    the fingerprint, a random session id and when it expires (never the password)."""
    now = time.time() if now is None else now
    payload = _b64(json.dumps({"n": operator.name, "m": operator.method, "f": operator.password_hash,
                               "sid": secrets.token_urlsafe(12), "exp": int(now + settings.session_hours * 3600)},
                              separators=(",", ":")).encode())
    signature = _b64(hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def read_token(settings: Settings, token: str | None, now: float | None = None) -> dict[str, Any] | None:
    """The payload of a cookie this dashboard signed, unexpired and not signed out; else None."""
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 2000:
        return None
    payload, signature = token.split(".")
    expected = _b64(hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None
    now = time.time() if now is None else now
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        return None
    with _signed_out_lock:
        for sid, until in list(_signed_out.items()):
            if until <= now:
                del _signed_out[sid]
        if claims.get("sid") in _signed_out:
            return None
    return claims


def read_cookie() -> str | None:
    """The session cookie the browser sent with this session's connection (None outside a browser)."""
    cookies = getattr(st.context, "cookies", None)
    try:
        value = cookies.get(COOKIE) if cookies is not None else None
    except Exception:  # no browser connection (a bare script)
        return None
    return value if isinstance(value, str) else None


def write_cookie(value: str | None, max_age: float = 0.0) -> None:
    """Set (or, with None, clear) the session cookie in the browser: a zero-height component runs
    in the page's own origin (Streamlit's component frames are same-origin)."""
    from .compat import page_script

    cookie = f"{COOKIE}={value or ''}; Path=/; Max-Age={int(max_age) if value else 0}; SameSite=Strict"
    with _hidden():
        page_script("<script>const c = " + json.dumps(cookie) + " + (parent.location.protocol === 'https:' ? "
                    "'; Secure' : ''); parent.document.cookie = c;</script>")


def keep_session(settings: Settings, operator: Operator) -> None:
    """Write this session's cookie into the page (each full run draws the same component, which the
    browser keeps: written once). Not for single sign-on, whose cookie is ``st.login``'s."""
    if operator.method not in ("account", "password"):
        return
    token = st.session_state.get("session_token")
    if token is None:
        token = st.session_state["session_token"] = session_token(settings, operator)
    write_cookie(token, settings.session_hours * 3600)


def _hidden() -> Any:
    """A container the page does not show (its frame still runs): keyed and hidden by CSS where
    Streamlit gives a container a key (1.42+ may not), else a plain one."""
    import inspect

    if "key" in inspect.signature(st.container).parameters:
        st.markdown("<style>.st-key-session-cookie {display: none}</style>", unsafe_allow_html=True)
        return st.container(key="session-cookie")
    return st.container()


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
        return Operator("local user (sign-in off)", "none", role="viewer" if settings.read_only else "admin")
    if oidc_configured():
        if not settings.sso_roles:
            st.error(NO_ALLOW_LIST)
            return None
        if not st.user.is_logged_in:
            st.title("Zoho token store")
            st.button("Sign in", on_click=st.login, type="primary")
            return None
        user = dict(st.user.to_dict())
        refused = oidc_refusal(settings, user)
        if refused:
            st.error(refused)
            st.button("Sign out", on_click=st.logout)
            return None
        return Operator(str(st.user.get("email")).strip().lower(), "oidc",
                        role=viewer_if(settings, sso_role(settings, user) or "admin"))
    accounts = operators_file()
    if accounts:
        try:
            operators = read_accounts(accounts)
        except OperatorsError as error:
            st.error(f"The dashboard will not start: {error}.")
            return None
        return signed_in(settings, operators, lambda name: operators[name].password_hash if name in operators else None)
    if settings.password:
        shared = str(settings.password)
        return signed_in(settings, None, lambda name: shared)
    st.error(NOT_CONFIGURED)
    return None


def viewer_if(settings: Settings, role: str) -> str:
    """``DASHBOARD_READ_ONLY`` makes everyone a viewer."""
    return "viewer" if settings.read_only else role


def signed_in(settings: Settings, operators: dict[str, Account] | None, secret_of: Any) -> Operator | None:
    """The operator of this browser session (signed in here, or by a valid session cookie), while
    its password and account are unchanged; else the sign-in form (None)."""
    method = "account" if operators is not None else "password"
    state = st.session_state
    operator = state.get("operator")
    if not isinstance(operator, Operator) and not state.get("signed_out"):
        cookie = read_cookie()
        claims = read_token(settings, cookie)
        if claims is not None and claims.get("m") == method and isinstance(claims.get("n"), str):
            operator = Operator(claims["n"], method, str(claims.get("f") or ""))
            state["session_token"] = cookie  # the same session (one id): "Sign out" here ends it everywhere
    elif isinstance(operator, Operator) and state.get("session_token") is not None and \
            read_token(settings, state["session_token"]) is None:
        operator = None  # signed out in another tab (or expired): this tab is signed out too
    if isinstance(operator, Operator) and operator.method == method:
        known = secret_of(operator.name)
        if known is not None and hmac.compare_digest(operator.password_hash, fingerprint(settings, known)):
            role = operators[operator.name].role if operators is not None else "admin"
            operator = Operator(operator.name, method, operator.password_hash, viewer_if(settings, role))
            state["operator"] = operator  # the role as the file says now
            return operator
    if state.pop("operator", None) is not None or state.pop("session_token", None) is not None:
        state["signed_out"] = True  # a changed password or a removed account: the cookie is cleared below
    password_form(settings, operators)
    return None


def groups_of(user: dict[str, Any]) -> list[str]:
    """The identity provider's groups of this user (a ``groups`` claim: a list, or one string), lowercased."""
    groups = user.get("groups")
    if isinstance(groups, str):
        groups = [groups]
    return [str(group).strip().lower() for group in groups or [] if isinstance(group, (str, int))]


def sso_role(settings: Settings, user: dict[str, Any]) -> str | None:
    """The highest role that an allow-list entry (the e-mail, its domain) or a group
    (``DASHBOARD_ROLE_GROUPS``) gives this identity; None when none lets it in."""
    email = str(user.get("email") or "").strip().lower()
    names = {email, email.rpartition("@")[2], *(f"group:{group}" for group in groups_of(user))}
    found = [role for entry, role in settings.sso_roles if entry in names]
    return max(found, key=ROLES.index) if found else None


def oidc_refusal(settings: Settings, user: dict[str, Any]) -> str | None:
    """Why an identity the provider vouches for may not use the dashboard, or None."""
    email = user.get("email")
    if not isinstance(email, str) or "@" not in email:
        return "Your identity provider did not give an e-mail address, so you cannot be let in."
    if not email_verified(user.get("email_verified")):
        return ("Your identity provider does not say that your e-mail address is verified, so you cannot be let in "
                "(anyone can type an address of an allowed domain into an account that is not verified).")
    email = email.strip().lower()
    if email in settings.allowed_emails or email.rpartition("@")[2] in settings.allowed_domains or \
            sso_role(settings, user) is not None:
        return None
    return "This account is not on the dashboard's allow-list. Ask an administrator to add it."


def email_verified(claim: Any) -> bool:
    """Only the provider's explicit yes counts: JSON ``true``, or the string ``"true"`` some providers
    send. A missing claim, ``"0"``, ``"FALSE"``, ``"no"`` or ``1`` is no verification."""
    return claim is True or claim == "true"


def password_form(settings: Settings, operators: dict[str, Account] | None = None) -> None:
    """The sign-in form: an account and its password (``operators``), or a typed name beside the
    shared password. Each attempt is counted by client address and by account before its password
    is verified; a right one is forgotten again."""
    st.title("Zoho token store")
    if st.session_state.pop("signed_out", False):
        write_cookie(None)  # signed out (or the password changed): this browser forgets the session
    if settings.demo:
        st.info("Demo: the password is shown in the terminal that started the demo (default `demo`).")
    address = f"address:{client_address()}"
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
    name = name.strip()
    if not name:
        st.error("Please enter your name." if operators is None else "Please enter your account.")
        return
    keys = [address, f"account:{name.lower()}" if operators is not None else "account:(shared password)"]
    stamp = reserve_attempt(keys)
    if stamp is None:
        st.error(f"Too many wrong passwords ({MAX_ATTEMPTS}) for this account or from your address: try again in "
                 f"{LOCKOUT / 60:g} minutes.")
        return
    if operators is not None:
        correct = verify({key: account.password_hash for key, account in operators.items()}, name, password)
        known = operators[name].password_hash if name in operators else ""
        operator = Operator(name, "account", fingerprint(settings, known), operators[name].role if correct else "viewer")
    else:
        correct = hmac.compare_digest(password.encode(), str(settings.password).encode())
        operator = Operator(name, "password", fingerprint(settings, str(settings.password)))
    if correct:
        forget_attempt(keys, stamp)
        st.session_state["operator"] = operator
        st.session_state.pop("session_token", None)
        st.rerun()
    time.sleep(WRONG_PASSWORD_DELAY)  # slows guessing down
    st.error("Wrong account or password." if operators is not None else "Wrong password.")


def sign_out(operator: Operator) -> None:
    """End the session here and everywhere its cookie went: the session id is refused from now on."""
    if operator.method == "oidc":
        st.logout()
        return
    end_session(st.session_state.pop("session_token", None))
    end_session(read_cookie())
    st.session_state.pop("operator", None)
    st.session_state["signed_out"] = True


def end_session(token: str | None) -> None:
    """Refuse this cookie's session id from now on, until it would have expired (the signature is
    not checked here: a forged id only ends a session nobody has)."""
    if not isinstance(token, str) or "." not in token:
        return
    try:
        claims = json.loads(_unb64(token.split(".")[0]))
        sid, until = str(claims["sid"]), float(claims["exp"])
    except (ValueError, TypeError, KeyError):
        return
    with _signed_out_lock:
        _signed_out[sid] = until
