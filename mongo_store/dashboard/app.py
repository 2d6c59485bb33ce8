"""The dashboard's pages. Data access lives in ``data.py``; sign-in in ``auth.py``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from .. import admin
from ..errors import sentence
from ..masking import markdown_plain, printable
from . import data, demo
from .auth import Operator, sign_out, signed_in_operator
from .settings import SettingError, Settings

PAGES = ("Overview", "Tokens", "Audit")
SEARCH_IN = {"User name": "user_name", "Client id": "client_id", "Token id": "_id"}
STATUS_LABELS = {"Any": None, "Valid": "valid", "In the SDK's refresh window (5 s)": "refresh-window",
                 "Expiring within an hour": "within-hour", "Expired": "expired"}


@st.cache_resource(show_spinner="Connecting to MongoDB…")
def connection(settings: Settings) -> data.Connection:
    connected = data.connect(settings)
    if settings.demo and data.token_count(connected) == 0:
        demo.seed(connected.store)
    return connected


def main() -> None:
    st.set_page_config(page_title="Zoho token store", layout="wide")
    try:
        settings = Settings.load()
    except SettingError as error:
        st.error(f"The dashboard will not start: {error}.")
        return
    if settings.auth_disabled and not loopback(st.get_option("server.address")):
        st.error("Sign-in is turned off (DASHBOARD_AUTH_DISABLED), so the dashboard serves only this machine: "
                 "start it on 127.0.0.1 (the default of `zoho-mongo-store dashboard`), or turn sign-in on.")
        return
    operator = signed_in_operator(settings)
    if operator is None:
        return
    try:
        conn = connection(settings)
    except SDKException as error:
        st.error(f"Cannot reach the token store: {sentence(error)}. Check MONGODB_URI, the credentials and "
                 "that the server is running.")
        return
    page = sidebar(conn, settings, operator)
    flash = st.session_state.pop("flash", None)
    if flash:
        st.toast(flash, icon="✅")  # floats in view wherever the page is scrolled
    try:
        {"Overview": overview_page, "Tokens": tokens_page, "Audit": audit_page}[page](conn, settings, operator)
    except SDKException as error:
        st.error(sentence(error))


def loopback(address: str | None) -> bool:
    """Whether Streamlit listens on this machine only (no address means every interface)."""
    return str(address or "").strip() in ("127.0.0.1", "localhost", "::1") or \
        str(address or "").startswith("127.")


def sidebar(conn: data.Connection, settings: Settings, operator: Operator) -> str:
    with st.sidebar:
        st.header("Zoho token store")
        page = str(st.radio("Page", PAGES, key="page") or PAGES[0])
        st.caption(f"Signed in as **{markdown_plain(operator.name)}**")
        if operator.method != "none" and st.button("Sign out"):
            sign_out(operator)
            st.rerun()
        st.divider()
        st.caption(f"Backend: {conn.backend}" + (" · demo data" if settings.demo else ""))
        st.caption(f"Collection: `{conn.tokens.database.name}.{conn.tokens.name}`")
        if settings.read_only:
            st.caption("Read-only mode: deleting is turned off.")
    return page


@st.cache_data(ttl=60, show_spinner="Counting tokens…")
def cached_overview(settings: Settings) -> dict[str, Any]:
    """At a million tokens the counts take seconds: computed at most once a minute (and after a
    deletion), not on every click."""
    return data.overview(connection(settings))


def overview_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.title("Overview")
    if st.button("Refresh counts", key="refresh_counts"):
        cached_overview.clear()
    counts = cached_overview(settings)
    top = st.columns(4)
    top[0].metric("Tokens", counts["total"])
    top[1].metric("Valid", counts["valid"])
    top[2].metric("Expiring within an hour", counts["within-hour"])
    top[3].metric("Expired", counts["expired"])
    more = st.columns(4)
    more[0].metric("In the SDK's refresh window", counts["refresh-window"])
    more[1].metric("Refresh-only (no access token)", counts["refresh-only"])
    more[2].metric("Grant-only", counts["grant-only"])
    more[3].metric("With a user name", counts["with-user-name"])
    left, right = st.columns(2)
    with left:
        st.subheader("Per data center")
        domains = pd.DataFrame({"data center": [str(d).removeprefix("https://").removeprefix("www.")
                                                for d in counts["per-api-domain"]],
                                "tokens": list(counts["per-api-domain"].values())})
        if domains.empty:
            st.caption("No tokens yet.")
        else:
            st.bar_chart(domains, x="data center", y="tokens", horizontal=True)
    with right:
        st.subheader("Expiry timeline (UTC, per 15 minutes)")
        timeline = pd.DataFrame(counts["timeline"])
        if not timeline["tokens"].any():
            st.caption("No token expires between 6 hours ago and 2 hours from now.")
        else:
            timeline["expires"] = timeline["expires"].dt.strftime("%m-%d %H:%M")  # 24-hour labels, in order
            st.bar_chart(timeline, x="expires", y="tokens")


def tokens_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.title("Tokens")
    filters = st.columns([3, 1.2, 2, 2])
    search = filters[0].text_input("Search (prefix; never a secret)", key="search")
    search_in = str(filters[1].selectbox("in", list(SEARCH_IN), key="search_in"))
    status = str(filters[2].selectbox("Status", list(STATUS_LABELS), key="status"))
    domains = ["Any", *data.domains(conn)]
    domain = str(filters[3].selectbox("Data center", domains, key="domain"))
    paging = st.columns([1, 1, 1, 3])
    size = int(paging[0].selectbox("Per page", [25, 50, 100, 200], index=1, key="page_size") or 50)
    shown = (search, search_in, status, domain, size)
    if st.session_state.get("page_shows", shown) != shown:
        st.session_state["page_number"] = 1  # another filter: its first page, not page 3 of the last one
    st.session_state["page_shows"] = shown
    number = int(paging[1].number_input("Page", min_value=1, value=1, step=1, key="page_number"))
    descending = paging[2].toggle("Newest/last first", key="descending")
    query = admin.Query(search=search.strip() or None, search_in=SEARCH_IN[search_in], status=STATUS_LABELS[status],
                        api_domain=None if domain == "Any" else domain, descending=descending)
    try:
        records, total = data.list_page(conn, query, number, size)
    except ValueError as error:
        st.error(str(error))
        return
    first = (number - 1) * size
    if records:
        label = f"{first + 1}–{first + len(records)} of **{admin.shown_total(total)}** tokens"
    else:
        label = f"none on page {number} · **{admin.shown_total(total)}** tokens"
    paging[3].markdown(f"<br>{label}", unsafe_allow_html=True)
    if not records and number > 1 and total:
        last = -(-min(total, admin.COUNT_CAP) // size)
        st.warning(f"Page {number} is past the end: the last page is {last}.")
        st.button("Go to the last page", key="last_page",
                  on_click=lambda: st.session_state.update(page_number=last))
    columns = ["id", "user_name", "client_id", "api_domain", "expires_in", "access_token", "refresh_token",
               "grant_token"] + (["malformed"] if any("malformed" in record for record in records) else [])
    table = pd.DataFrame(records, columns=columns)
    table.insert(4, "expires (UTC)", pd.to_datetime(pd.to_numeric(table.pop("expires_in")), unit="ms"))
    # Widths that fit every column at 1500 px: masked secrets are short, ids and names get the room.
    small, medium = st.column_config.TextColumn(width="small"), st.column_config.TextColumn(width="medium")
    st.dataframe(table, hide_index=True, use_container_width=True,
                 column_config={"id": small, "user_name": medium, "client_id": small, "api_domain": small,
                                "access_token": small, "refresh_token": small, "grant_token": small,
                                "expires (UTC)": st.column_config.DatetimeColumn(width="small")})
    ids = [record["id"] for record in records]
    if not ids:
        return
    chosen = st.selectbox("Inspect a token", ids, key="inspect",
                          format_func=lambda i: printable(f"{i} · {next(r.get('user_name') or '—' for r in records if r['id'] == i)}"))
    record = data.inspect(conn, chosen)
    if record is not None:
        st.dataframe(pd.DataFrame({"field": list(record), "value": [str(v) for v in record.values()]}),
                     hide_index=True)
    if settings.read_only:
        return
    destructive_controls(conn, operator, chosen, ids)


def destructive_controls(conn: data.Connection, operator: Operator, chosen: str, ids: list[str]) -> None:
    st.subheader("Delete")
    selected = st.multiselect("Tokens on this page", ids, key="selected")  # full width: the chips fit
    one, many, every = st.columns(3)
    if one.button(f"Delete token {markdown_plain(chosen)}", key="delete_one"):
        st.session_state["confirm"] = {"kind": "ids", "ids": [chosen]}
    if many.button("Delete selected", disabled=not selected, key="delete_selected"):
        st.session_state["confirm"] = {"kind": "ids", "ids": list(selected)}
    if every.button("Delete all tokens…", key="delete_all"):
        st.session_state["confirm"] = {"kind": "all"}
    if st.session_state.get("confirm"):
        confirm_dialog(conn, operator)


@st.dialog("Confirm deletion")
def confirm_dialog(conn: data.Connection, operator: Operator) -> None:
    request: dict[str, Any] = st.session_state["confirm"]
    if request["kind"] == "ids":
        st.text(f"Delete {len(request['ids'])} token(s): {', '.join(map(printable, request['ids']))}? This cannot "
                "be undone; the SDK will need a new grant token for these users.")
        typed = None
    else:
        st.write(f"Delete **all {data.token_count(conn)} tokens**? Every service using this store "
                 "will need new grant tokens.")
        typed = st.text_input(f"Type the collection name `{conn.tokens.name}` to confirm", key="typed_name")
    confirm, cancel = st.columns(2)
    if confirm.button("Delete", type="primary", key="confirm_delete"):
        try:
            if request["kind"] == "ids":
                deleted = data.delete(conn, request["ids"], operator.name)
            else:
                deleted = data.delete_all(conn, operator.name, typed or "")
        except SDKException as error:
            st.error(sentence(error))
            return
        cached_overview.clear()
        st.session_state["confirm"] = None
        st.session_state["flash"] = f"Deleted {deleted} token(s)."
        st.rerun()
    if cancel.button("Cancel", key="cancel_delete"):
        st.session_state["confirm"] = None
        st.rerun()


def audit_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.title("Audit log")
    st.caption("Every deletion made from this dashboard: when, who, which ids and user names. Never a secret.")
    entries = data.audit_entries(conn)
    if not entries:
        st.caption("No deletions yet.")
        return
    rows = [{"when (UTC)": e.get("at"), "who": str(e.get("who")), "action": str(e.get("action")),
             "deleted": e.get("deleted"), "ids": ", ".join(map(str, e.get("ids") or [])),
             "user names": ", ".join(map(str, e.get("user_names") or []))} for e in entries]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
