"""The dashboard's pages. Data access lives in ``data.py``; sign-in in ``auth.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from .. import admin
from ..errors import sentence
from ..masking import ago, iso, markdown_plain, printable
from ..zoho import ZohoError
from . import data, demo
from .auth import Operator, sign_out, signed_in_operator
from .settings import SettingError, Settings

PAGES = ("Overview", "Tokens", "Audit")
SEARCH_IN = {"User name": "user_name", "Client id": "client_id", "Token id": "_id"}
ATTENTION_LABEL = "Needs attention (failing + unusable)"
HEALTH_LABELS = {"Any": None, ATTENTION_LABEL: admin.ATTENTION, "Healthy": "healthy", "Idle": "idle",
                 "Failing": "failing", "Unusable": "unusable"}
HEALTH_HELP = "  \n".join(f"**{state}**: {meaning}" for state, meaning in admin.HEALTH_MEANING.items())
SORT_LABELS = {"Default (the filtered field)": None, "User name": "user", "Expiry": "expiry",
               "Last refreshed": "refreshed"}


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
        st.toast(markdown_plain(flash[0]), icon=flash[1])  # floats in view wherever the page is scrolled
    try:
        {"Overview": overview_page, "Tokens": tokens_page, "Audit": audit_page}[page](conn, settings, operator)
    except SDKException as error:
        st.error(sentence(error))


def loopback(address: str | None) -> bool:
    """Whether Streamlit listens on this machine only (no address means every interface): a
    loopback address or ``localhost``, never a name that merely starts with ``127.``."""
    from .auth import is_loopback

    return is_loopback(address)


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
    deletion, check or revoke), not on every click."""
    return data.overview(connection(settings))


def show_attention() -> None:
    """The overview's link to the tokens that need a person (a callback: it runs before the widgets)."""
    st.session_state.update(page="Tokens", health=ATTENTION_LABEL, search="")


def overview_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.title("Overview")
    if st.button("Refresh counts", key="refresh_counts"):
        cached_overview.clear()
    try:
        counts = cached_overview(settings)
    except SDKException as error:
        last: dict[str, Any] | None = st.session_state.get("last_counts")
        if last is None:
            raise
        counts = last
        st.error(f"{sentence(error)}. The counts below are stale: as of {counts['as_of']:%H:%M:%S} UTC, the last "
                 "time the server answered.")
    else:
        st.session_state["last_counts"] = counts
        st.caption(f"Counts as of {counts['as_of']:%H:%M:%S} UTC (recounted at most once a minute; "
                   "Refresh counts recounts now).")
    health = counts["health"]
    attention = health["failing"] + health["unusable"]
    tiles = st.columns(5)
    tiles[0].metric("Needs attention", attention, help="Failing plus unusable: the integrations a person must fix.")
    for tile, state in zip(tiles[1:], ("failing", "unusable", "healthy", "idle"), strict=True):
        tile.metric(state.capitalize(), health[state], help=admin.HEALTH_MEANING[state].capitalize() + ".")
    if attention:
        st.button(f"Show the {attention} token(s) that need attention", key="show_attention", type="primary",
                  on_click=show_attention)
    more = st.columns(5)
    more[0].metric("Tokens", counts["total"])
    more[1].metric("Refresh-only (no access token)", counts["refresh-only"])
    more[2].metric("Grant-only", counts["grant-only"])
    more[3].metric("With a user name", counts["with-user-name"])
    more[4].metric("In the SDK's refresh window (5 s)", counts["refresh-window"])
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
        st.subheader("Refresh activity, last 7 days (UTC, per 6 hours)")
        activity = pd.DataFrame(counts["activity"])
        if not (activity["refreshed"].any() or activity["failed"].any()):
            st.caption("No token was refreshed in the last 7 days.")
        else:
            activity["from"] = activity["from"].dt.strftime("%m-%d %H:%M")  # 24-hour labels, in order
            chart = activity.rename(columns={"refreshed": "last refreshed", "failed": "last failed (failing now)"})
            st.bar_chart(chart, x="from", y=["last refreshed", "last failed (failing now)"], color=["#4c9be8", "#e8574c"])
            st.caption("Each token counts once, at its latest refresh (and a failing one at its latest failure): "
                       "the store keeps the latest of each, not a history.")


def tokens_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.title("Tokens")
    filters = st.columns([3, 1.2, 2.4, 2])
    search = filters[0].text_input("Search (prefix; never a secret)", key="search")
    search_in = str(filters[1].selectbox("in", list(SEARCH_IN), key="search_in"))
    health = str(filters[2].selectbox("Health", list(HEALTH_LABELS), key="health", help=HEALTH_HELP))
    domains = ["Any", *data.domains(conn)]
    domain = str(filters[3].selectbox("Data center", domains, key="domain"))
    paging = st.columns([1.6, 1, 1, 1, 2.4])
    sort = str(paging[0].selectbox("Sort by", list(SORT_LABELS), key="sort"))
    descending = paging[1].toggle("Descending", key="descending")
    size = int(paging[2].selectbox("Per page", [25, 50, 100, 200], index=1, key="page_size") or 50)
    shown = (search, search_in, health, domain, sort, descending, size)
    if st.session_state.get("page_shows", shown) != shown:
        st.session_state["page_number"] = 1  # another filter: its first page, not page 3 of the last one
    st.session_state["page_shows"] = shown
    number = int(paging[3].number_input("Page", min_value=1, value=1, step=1, key="page_number"))
    query = admin.Query(search=search.strip() or None, search_in=SEARCH_IN[search_in], health=HEALTH_LABELS[health],
                        api_domain=None if domain == "Any" else domain, sort=SORT_LABELS[sort], descending=descending)
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
    paging[4].markdown(f"<br>{label}", unsafe_allow_html=True)
    if not records and number > 1 and total:
        last = -(-min(total, admin.COUNT_CAP) // size)
        st.warning(f"Page {number} is past the end: the last page is {last}.")
        st.button("Go to the last page", key="last_page",
                  on_click=lambda: st.session_state.update(page_number=last))
    ids = [record["id"] for record in records]
    selected = token_grid(records, total, settings.read_only)
    if not ids:
        return
    if selected and selected != st.session_state.get("inspect_follows"):
        st.session_state["inspect"] = selected[-1]  # a newly ticked row is inspected
    st.session_state["inspect_follows"] = selected
    chosen = st.selectbox("Inspect a token", ids, key="inspect",
                          format_func=lambda i: printable(f"{i} · {next(r.get('user_name') or '—' for r in records if r['id'] == i)}"))
    record = data.inspect(conn, chosen)
    if record is not None:
        rows: dict[str, list[str]] = {"field": [], "value": []}
        for key, value in record.items():
            if value is None:
                continue
            rows["field"].append(key)
            rows["value"].append(f"{iso(value)} ({ago(value)})" if isinstance(value, datetime) else str(value))
            if key == "health":
                rows["field"].append("health means")
                rows["value"].append(admin.HEALTH_MEANING[str(value)])
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="inspect_table", use_container_width=True)
    if settings.read_only:
        return
    token_actions(conn, settings, operator, chosen, selected)


def token_grid(records: list[dict[str, Any]], total: int, read_only: bool) -> list[str]:
    """The page's tokens, with row selection for the actions below; returns the selected ids."""
    columns = ["id", "user_name", "health", "expires_at", "last_refreshed_at", "api_domain", "client_id",
               "access_token", "refresh_token", "grant_token"]
    columns += ["malformed"] if any("malformed" in record for record in records) else []
    table = pd.DataFrame(records, columns=columns)
    for column in ("expires_at", "last_refreshed_at"):
        table[column] = pd.to_datetime(table[column], utc=True)
    # Widths that fit every column at 1500 px: masked secrets are short, ids and names get the room.
    small, medium = st.column_config.TextColumn(width="small"), st.column_config.TextColumn(width="medium")
    config = {"id": small, "user_name": medium, "client_id": small, "api_domain": small, "access_token": small,
              "refresh_token": small, "grant_token": small,
              "health": st.column_config.TextColumn("health", width="small", help=HEALTH_HELP),
              "expires_at": st.column_config.DatetimeColumn("expires", width="small", format="distance",
                                                            help="The access token's expiry; the UTC time is in Inspect."),
              "last_refreshed_at": st.column_config.DatetimeColumn(
                  "last refreshed", width="small", format="distance",
                  help="The last save that stored an access token; the UTC time is in Inspect.")}
    event = st.dataframe(table, hide_index=True, use_container_width=True, column_config=config, key="grid",
                         on_select="ignore" if read_only else "rerun", selection_mode="multi-row")
    st.caption(f"Sort by orders all {admin.shown_total(total)} matches on the server; a click on a column header "
               "orders only the rows on this page." + ("" if read_only else " Tick rows to act on them."))
    if read_only:
        return []
    # on_select="rerun": a DataframeState, a dict with attribute access (indexed here: Streamlit
    # 1.42 hands back a state set through st.session_state as a plain dict).
    rows = event["selection"]["rows"]  # type: ignore[index]
    return [records[row]["id"] for row in rows if 0 <= row < len(records)]


def token_actions(conn: data.Connection, settings: Settings, operator: Operator, chosen: str, selected: list[str]) -> None:
    st.subheader("Actions")
    st.caption("Check asks Zoho whether the token works, the SDK's way (refreshing it if it lapsed). Delete removes "
               "the stored document only: a worker that holds the token saves it back on its next refresh, and the "
               "refresh token stays valid at Zoho. Revoke ends the connection at Zoho, then deletes.")
    check, revoke, one, many, every = st.columns(5)
    if check.button(f"Check {markdown_plain(chosen)} with Zoho", key="check_one"):
        try:
            result = data.check(conn, chosen, operator.name, settings.accounts_url)
        except SDKException as error:
            st.error(sentence(error))
            return
        cached_overview.clear()
        st.session_state["flash"] = (f"Check of {chosen}: {result.result}", "✅" if result.ok else "⚠️")
        st.rerun()
    if revoke.button("Revoke at Zoho…", key="revoke_one"):
        st.session_state["confirm"] = {"kind": "revoke", "ids": [chosen]}
    if one.button(f"Delete token {markdown_plain(chosen)}", key="delete_one"):
        st.session_state["confirm"] = {"kind": "ids", "ids": [chosen]}
    # A fixed label: Streamlit 1.42 takes a button whose label changed for a new one, and loses its click.
    if many.button("Delete ticked rows", disabled=not selected, key="delete_selected",
                   help="The rows ticked in the grid above; the confirmation lists them.") and selected:
        st.session_state["confirm"] = {"kind": "ids", "ids": list(selected)}
    if every.button("Delete all tokens…", key="delete_all"):
        st.session_state["confirm"] = {"kind": "all"}
    if st.session_state.get("confirm"):
        confirm_dialog(conn, settings, operator)


DELETE_TRUTH = ("This deletes the stored documents only. Zoho still honours their refresh tokens, and a worker that "
                "holds one in memory saves it back on its next refresh, under the same id. To end a connection, "
                "revoke it. This cannot be undone.")


@st.dialog("Confirm")
def confirm_dialog(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    request: dict[str, Any] = st.session_state["confirm"]
    typed = None
    if request["kind"] == "revoke":
        st.text(f"Revoke token {printable(request['ids'][0])} at Zoho, then delete it? Zoho stops honouring its "
                "refresh token at once: the integration stops until its user grants access again.")
    elif request["kind"] == "ids":
        st.text(f"Delete {len(request['ids'])} token(s): {', '.join(map(printable, request['ids']))}? {DELETE_TRUTH}")
    else:
        st.text(f"Delete all {data.token_count(conn)} tokens? {DELETE_TRUTH}")
        typed = st.text_input(f"Type the collection name `{conn.tokens.name}` to confirm", key="typed_name")
    confirm, cancel = st.columns(2)
    if confirm.button("Revoke" if request["kind"] == "revoke" else "Delete", type="primary", key="confirm_delete"):
        try:
            if request["kind"] == "revoke":
                host = data.revoke(conn, request["ids"][0], operator.name, settings.accounts_url)
                done = f"Revoked at {host} and deleted {request['ids'][0]}."
            elif request["kind"] == "ids":
                done = f"Deleted {data.delete(conn, request['ids'], operator.name)} token(s)."
            else:
                done = f"Deleted {data.delete_all(conn, operator.name, typed or '')} token(s)."
        except ZohoError as error:
            st.error(markdown_plain(f"{error}; the token is left in the store."))  # it may quote a stored value
            return
        except SDKException as error:
            st.error(sentence(error))
            return
        cached_overview.clear()
        st.session_state["confirm"] = None
        st.session_state["flash"] = (done, "✅")
        st.rerun()
    if cancel.button("Cancel", key="cancel_delete"):
        st.session_state["confirm"] = None
        st.rerun()


def audit_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.title("Audit log")
    st.caption("Every deletion, revoke and check made from this dashboard or the CLI: when, who, which ids and "
               "user names, Zoho's answers. Never a secret.")
    entries = data.audit_entries(conn)
    if not entries:
        st.caption("No deletions, revokes or checks yet.")
        return
    rows = [{"when (UTC)": e.get("at"), "who": str(e.get("who")), "action": str(e.get("action")),
             "deleted": e.get("deleted"), "ids": ", ".join(map(str, e.get("ids") or [])),
             "user names": ", ".join(map(str, e.get("user_names") or [])),
             "results": ", ".join(map(str, e.get("results") or []))} for e in entries]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
