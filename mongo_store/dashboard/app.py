"""The dashboard's frame: settings, the banners, sign-in, the sidebar and the page chosen. Each page
is its own module (``pages_*.py``); data access lives in ``data.py``, sign-in in ``auth.py``."""

from __future__ import annotations

import streamlit as st
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from ..core.errors import sentence
from ..core.masking import markdown_plain
from . import cache, data, demo, outage, results, urlstate
from .auth import Operator, keep_session, sign_out, signed_in_operator
from .compat import DIALOG_DISMISS, GRID_DEFAULT
from .pages_audit import audit_page
from .pages_lifecycle import lifecycle_page
from .pages_overview import overview_page
from .pages_tokens import tokens_page
from .settings import SettingError, Settings

PAGES = urlstate.PAGES
__all__ = ["DIALOG_DISMISS", "GRID_DEFAULT", "PAGES", "banners", "main"]


def main() -> None:
    st.set_page_config(page_title="Zoho token store", layout="wide")
    try:
        settings = Settings.load()
    except SettingError as error:
        st.error(f"The dashboard will not start: {error}.")
        return
    banners(settings)
    if settings.auth_disabled and not loopback(st.get_option("server.address")):
        st.error("Sign-in is turned off (DASHBOARD_AUTH_DISABLED), so the dashboard serves only this machine: "
                 "start it on 127.0.0.1 (the default of `zoho-mongo-store dashboard`), or turn sign-in on.")
        return
    operator = signed_in_operator(settings)
    if operator is None:
        return
    st.session_state["full_runs"] = st.session_state.get("full_runs", 0) + 1
    conn: data.Connection | None = None
    if not outage.active():
        try:
            conn = cache.connection(settings)
            urlstate.restore(lambda: data.domains(conn))  # once per session: the view a reloaded or shared URL names
        except SDKException as error:
            if not outage.unreachable(error):
                st.error(f"Cannot use the token store: {markdown_plain(sentence(error))}. Check MONGODB_URI and the "
                         "credentials.")
                return
            outage.begin(error)
    page = sidebar(conn, settings, operator)
    if conn is None or outage.active():
        outage.panel(settings)
        if page == "Overview":
            stale_counts()
        return
    results.panel()
    flash = st.session_state.pop("flash", None)
    if flash:
        st.toast(markdown_plain(flash[0]), icon=flash[1])  # floats in view wherever the page is scrolled
    try:
        {"Overview": overview_page, "Tokens": tokens_page, "Lifecycle": lifecycle_page,
         "Audit": audit_page}[page](conn, settings, operator)
    except SDKException as error:
        outage.handle(error, settings)


def stale_counts() -> None:
    """During an outage, the Overview's last counts, marked with their time (nothing is read)."""
    from .pages_overview import health_tiles

    last = st.session_state.get("last_counts")
    if last is not None:
        st.caption(f"The last counts, as of {last['as_of']:%H:%M:%S} UTC (the last time the server answered):")
        health_tiles(last, buttons=False)


def is_production(environment: str | None) -> bool:
    """``production``, ``prod``, ``prod-eu``...: the environment a mistake costs the most in."""
    return bool(environment) and str(environment).lower().startswith("prod")


def banners(settings: Settings) -> None:
    """At the top of every page: where this dashboard runs (production in red), and read-only mode."""
    if settings.environment:
        if is_production(settings.environment):
            st.error(f"Environment: **{markdown_plain(settings.environment)}**: changes here hit live "
                     "integrations.", icon="🔴")
        else:
            st.info(f"Environment: **{markdown_plain(settings.environment)}**", icon="🏷️")
    if settings.read_only:
        st.warning("Read-only mode (DASHBOARD_READ_ONLY): nothing can be checked, revoked or deleted here.", icon="🔒")


def loopback(address: str | None) -> bool:
    """Whether Streamlit listens on this machine only (no address means every interface): a
    loopback address or ``localhost``, never a name that merely starts with ``127.``."""
    from .auth import is_loopback

    return is_loopback(address)


ROLE_MEANS = {"viewer": "reads everything, changes nothing",
              "operator": "checks, revokes and deletes chosen tokens",
              "admin": "also deletes all, applies a policy, imports"}


def sidebar(conn: data.Connection | None, settings: Settings, operator: Operator) -> str:
    with st.sidebar:
        st.header("Zoho token store")
        page = str(st.radio("Page", PAGES, key="page") or PAGES[0])
        st.caption(f"Signed in as **{markdown_plain(operator.name)}**")
        st.caption(f"Role: **{operator.role}** ({ROLE_MEANS[operator.role]})"
                   + (" · read-only mode (DASHBOARD_READ_ONLY)" if settings.read_only else ""))
        if operator.method != "none" and st.button("Sign out", key="sign_out"):
            sign_out(operator)
            st.rerun()
        st.divider()
        if conn is not None:
            st.caption(f"Backend: {conn.backend}" + (" · demo data" if settings.demo else ""))
        note = demo.sidebar_note(settings)
        if note:
            st.caption(markdown_plain(note))
        st.caption(f"Collection: `{settings.store.database}.{settings.store.collection}`")
        if settings.environment:
            st.caption(f"Environment: **{markdown_plain(settings.environment)}**")
        # How many times the whole page ran (a tick or a filter reruns only its fragment): read by the browser test.
        st.markdown(f"<div class='full-runs' data-runs='{st.session_state['full_runs']}'></div>", unsafe_allow_html=True)
        keep_session(settings, operator)  # a reload, a new tab or a shared link stays signed in
    return page
