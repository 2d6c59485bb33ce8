"""The sign-in gate: nothing is shown until an operator is known.

A password (from ``DASHBOARD_PASSWORD`` or secrets, compared in constant time), or OIDC through
``st.login`` when ``[auth]`` is configured in secrets. With neither, the app refuses to show data;
``DASHBOARD_AUTH_DISABLED=1`` turns the gate off for local use, with a visible warning.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import streamlit as st

from .settings import Settings, oidc_configured


@dataclass(frozen=True)
class Operator:
    name: str
    method: str


NOT_CONFIGURED = (
    "Sign-in is not configured, so no token data is shown. Set `DASHBOARD_PASSWORD` (or `password` under "
    "`[dashboard]` in `.streamlit/secrets.toml`), or configure OIDC under `[auth]` in secrets for `st.login`. "
    "For local use only, `DASHBOARD_AUTH_DISABLED=1` turns sign-in off."
)


def signed_in_operator(settings: Settings) -> Operator | None:
    """The operator, or None after rendering the sign-in (or the configuration error)."""
    if settings.auth_disabled:
        st.warning("Sign-in is turned off (DASHBOARD_AUTH_DISABLED): anyone who can open this page can read "
                   "and delete tokens. Use it only on your own machine.", icon="⚠️")
        return Operator("local user (sign-in off)", "none")
    if oidc_configured():
        if not st.user.is_logged_in:
            st.title("Zoho token store")
            st.button("Sign in", on_click=st.login, type="primary")
            return None
        return Operator(str(st.user.get("email") or st.user.get("name") or "unknown"), "oidc")
    if settings.password:
        if isinstance(st.session_state.get("operator"), Operator):
            return st.session_state["operator"]
        password_form(settings)
        return None
    st.error(NOT_CONFIGURED)
    return None


def password_form(settings: Settings) -> None:
    st.title("Zoho token store")
    if settings.demo:
        st.info("Demo: the password is shown in the terminal that started the demo (default `demo`).")
    with st.form("sign-in"):
        name = st.text_input("Your name (recorded in the audit log)")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        correct = hmac.compare_digest(password.encode(), str(settings.password).encode())
        if correct and name.strip():
            st.session_state["operator"] = Operator(name.strip(), "password")
            st.rerun()
        st.error("Wrong password." if not correct else "Please enter your name.")


def sign_out(operator: Operator) -> None:
    if operator.method == "oidc":
        st.logout()
    else:
        st.session_state.pop("operator", None)
