"""The dashboard's pages. Data access lives in ``data.py``; sign-in in ``auth.py``."""

from __future__ import annotations

import hashlib
import inspect
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

PAGES = ("Overview", "Tokens", "Lifecycle", "Audit")
SEARCH_IN = {"User name": "user_name", "Client id": "client_id", "Token id": "_id"}
ATTENTION_LABEL = "Needs attention (failing + unusable)"
HEALTH_LABELS = {"Any": None, ATTENTION_LABEL: admin.ATTENTION, "Healthy": "healthy", "Idle": "idle",
                 "Failing": "failing", "Unusable": "unusable"}
HEALTH_HELP = "  \n".join(f"**{state}**: {meaning}" for state, meaning in admin.HEALTH_MEANING.items())
SORT_LABELS = {"Default (the filtered field)": None, "User name": "user", "Expiry": "expiry",
               "Last refreshed": "refreshed"}
DIALOG_DISMISS = "on_dismiss" in inspect.signature(st.dialog).parameters
"""Streamlit 1.46+ reruns when a dialog is dismissed (× or Esc); 1.42-1.45 close it in the browser only."""
GRID_DEFAULT = "selection_default" in inspect.signature(st.dataframe).parameters
"""Newer Streamlit can show ticks it did not receive from the browser (a re-keyed grid's ticks)."""
LISTED = 50
"""How many chosen tokens a confirmation lists by name before "and N more"."""
FILTERED_LISTED = 10
"""The same for a filtered "Delete all" (a sample: its count and filter say what it deletes)."""


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
        st.error(f"Cannot reach the token store: {markdown_plain(sentence(error))}. Check MONGODB_URI, the credentials and "
                 "that the server is running.")
        return
    if not st.session_state.pop("dialog_touched", False) and st.session_state.get("confirm"):
        disarm()  # a full rerun no dialog control asked for: the dialog was closed (× or Esc) and stays closed
    page = sidebar(conn, settings, operator)
    flash = st.session_state.pop("flash", None)
    if flash:
        st.toast(markdown_plain(flash[0]), icon=flash[1])  # floats in view wherever the page is scrolled
    try:
        {"Overview": overview_page, "Tokens": tokens_page, "Lifecycle": lifecycle_page,
         "Audit": audit_page}[page](conn, settings, operator)
    except SDKException as error:
        st.error(markdown_plain(sentence(error)))  # it may quote a stored value


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
        st.error(f"{markdown_plain(sentence(error))}. The counts below are stale: as of {counts['as_of']:%H:%M:%S} UTC, the last "
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
        st.error(markdown_plain(error))
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
    ticked = token_grid(conn, records, total, settings.read_only)
    if not ids:
        return
    on_page = [token_id for token_id in ticked if token_id in ids]
    newly = [token_id for token_id in on_page if token_id not in st.session_state.get("inspect_follows", [])]
    if newly:
        st.session_state["inspect"] = newly[-1]  # a newly ticked row is inspected
    st.session_state["inspect_follows"] = on_page
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
    scope = "; ".join(part for part in (
        f"{search_in.lower()} starts with {search.strip()!r}" if search.strip() else "",
        f"health: {health}" if HEALTH_LABELS[health] else "", f"data center: {domain}" if domain != "Any" else "",
    ) if part)
    token_actions(conn, settings, operator, chosen, ticked, query if scope else None, scope)


# -- ticks: kept as token ids, so a re-order, an insert or a delete never moves them to other tokens --


def grid_key(ids: list[str]) -> str:
    """The grid is a new widget whenever its rows change (or the ticks change outside it): its row
    positions then never point at tokens other than the ones the browser showed."""
    digest = hashlib.sha256("\0".join(ids).encode()).hexdigest()[:16]
    return f"grid-{st.session_state.get('tick_generation', 0)}-{digest}"


def selected_rows(state: Any) -> list[int]:
    """The ticked row positions of a grid's state (a DataframeState, or a plain dict on 1.42)."""
    try:
        return [int(row) for row in state["selection"]["rows"]]
    except (KeyError, TypeError, ValueError):
        return []


def read_ticks() -> list[str]:
    """The ticked token ids, with the ticks and unticks made in the grid the browser showed applied
    by id: the positions are read against the ids that grid showed, not against this run's rows."""
    state = st.session_state
    ticked = list(state.get("ticked", []))
    shown = state.get("grid_shown")
    if shown is not None and shown[0] in state:
        key, ids, before = shown
        now = {ids[row] for row in selected_rows(state[key]) if 0 <= row < len(ids)}
        was = {ids[row] for row in before if 0 <= row < len(ids)}
        ticked = [i for i in ticked if i not in was - now] + [i for i in ids if i in now - was and i not in ticked]
    state["ticked"] = ticked
    return ticked


def set_ticks(ticked: list[str]) -> None:
    """Ticks changed outside the grid (cleared, or their tokens deleted): a new grid shows them."""
    st.session_state["ticked"] = ticked
    st.session_state["tick_generation"] = st.session_state.get("tick_generation", 0) + 1
    st.session_state.pop("grid_shown", None)


def token_grid(conn: data.Connection, records: list[dict[str, Any]], total: int, read_only: bool) -> list[str]:
    """The page's tokens, with row ticks for the actions below; returns every ticked token id
    (on this page or not)."""
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
    caption = (f"Sort by orders all {admin.shown_total(total)} matches on the server; a click on a column header "
               "orders only the rows on this page.")
    if read_only:
        st.dataframe(table, hide_index=True, use_container_width=True, column_config=config, key="grid")
        st.caption(caption)
        return []
    ticked = read_ticks()
    ids = [record["id"] for record in records]
    key = grid_key(ids)
    fresh = key not in st.session_state
    defaults = [row for row, token_id in enumerate(ids) if token_id in ticked]
    extra: dict[str, Any] = {"selection_default": {"selection": {"rows": defaults, "columns": []}}} if GRID_DEFAULT and defaults else {}
    event = st.dataframe(table, hide_index=True, use_container_width=True, column_config=config, key=key,
                         on_select="rerun", selection_mode="multi-row", **extra)
    # What the browser now shows ticked: a new grid its defaults, a kept one its own selection.
    rows = (defaults if GRID_DEFAULT else []) if fresh else selected_rows(event)
    st.session_state["grid_key"] = key
    st.session_state["grid_shown"] = (key, ids, rows)
    st.caption(caption + " Tick rows to act on them: a tick stays with its token when the rows move.")
    if ticked:
        elsewhere = len([i for i in ticked if i not in ids])
        names = data.user_names(conn, ticked)
        line, clear = st.columns([6, 1])
        line.text(f"Ticked: {len(ticked)} token(s)" + (f", {elsewhere} of them not on this page" if elsewhere else "")
                  + ": " + ", ".join(printable(names.get(i) or i) for i in ticked[:LISTED])
                  + (f" and {len(ticked) - LISTED} more" if len(ticked) > LISTED else ""))
        clear.button("Clear ticks", key="clear_ticks", on_click=set_ticks, args=([],))
    return ticked


# -- destructive actions: each behind a confirmation that names what it hits ---------------------


def touched() -> None:
    """A dialog control was used: the rerun it starts keeps the dialog armed."""
    st.session_state["dialog_touched"] = True


def disarm() -> None:
    """Nothing stays armed and nothing typed stays typed: a dismissed dialog never comes back on an
    unrelated click (``on_dismiss``, and the next rerun no dialog control asked for)."""
    st.session_state["confirm"] = None
    st.session_state.pop("typed_name", None)


def arm(request: dict[str, Any]) -> None:
    """Open a confirmation (a callback, so the dialog is opened through session state: a dialog
    opened inside ``if st.button(...)`` loses its own clicks on the next rerun)."""
    disarm()
    st.session_state["confirm"] = request
    touched()


def token_actions(conn: data.Connection, settings: Settings, operator: Operator, chosen: str, ticked: list[str],
                  query: admin.Query | None, scope: str) -> None:
    st.subheader("Actions")
    st.caption("Check asks Zoho whether the token works (refreshing it if it lapsed, through the store's lease). "
               "Delete removes the stored token for good (a refresh in flight cannot save it back), but its refresh "
               "token stays valid at Zoho. Revoke ends the connection at Zoho, then deletes.")
    check, revoke, one, many, every = st.columns(5)
    if check.button(f"Check {markdown_plain(chosen)} with Zoho", key="check_one"):
        try:
            result = data.check(conn, chosen, operator.who, settings.accounts_url)
        except SDKException as error:
            st.error(markdown_plain(sentence(error)))
            return
        cached_overview.clear()
        st.session_state["flash"] = (f"Check of {chosen}: {result.result}", "✅" if result.ok else "⚠️")
        st.rerun()
    revoke.button("Revoke at Zoho…", key="revoke_one", on_click=arm, args=({"kind": "revoke", "ids": [chosen]},))
    one.button(f"Delete token {markdown_plain(chosen)}", key="delete_one", on_click=arm,
               args=({"kind": "ids", "ids": [chosen]},))
    # A fixed label: Streamlit 1.42 takes a button whose label changed for a new one, and loses its click.
    many.button("Delete ticked rows", disabled=not ticked, key="delete_selected", on_click=arm,
                args=({"kind": "ids", "ids": list(ticked)},),
                help="The rows ticked in the grid above, on any page; the confirmation lists them.")
    every.button("Delete all…", key="delete_all", on_click=arm, args=({"kind": "all", "query": query, "scope": scope},),
                 help="Every token the filters match (with a filter), or every token in the collection (without one).")
    if st.session_state.get("confirm"):
        confirm_dialog(conn, settings, operator)


DELETE_TRUTH = ("This deletes the stored tokens for good: a refresh in flight cannot save them back, and their "
                "people must log in again. Zoho still honours their refresh tokens: to end a connection at Zoho, "
                "revoke it. This cannot be undone.")


def listed(ids: list[str], names: dict[str, str | None], limit: int = LISTED) -> str:
    """The chosen tokens, one a line, by id and user name (plain text: ``st.text``)."""
    lines = [f"{printable(i)} · " + (printable(names[i] or "(no user name)") if i in names else "(no longer stored)")
             for i in ids[:limit]]
    return "\n".join(lines + ([f"… and {len(ids) - limit} more"] if len(ids) > limit else []))


def dialog(title: str) -> Any:
    """``st.dialog`` that disarms when dismissed, where Streamlit reports a dismissal (1.46+)."""
    return st.dialog(title, on_dismiss=disarm) if DIALOG_DISMISS else st.dialog(title)


@dialog("Confirm")
def confirm_dialog(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.session_state.pop("dialog_touched", None)  # this dialog's own rerun consumed it
    request: dict[str, Any] | None = st.session_state.get("confirm")
    if not request:
        st.rerun()  # disarmed meanwhile: close
        return
    kind, where = request["kind"], f"{conn.tokens.database.name}.{conn.tokens.name}"
    place = f"database {conn.tokens.database.name}, collection {conn.tokens.name}, environment " + \
        (settings.environment or "not named (set DASHBOARD_ENVIRONMENT)")
    expected, typed = data.confirm_name(conn, settings.environment), None
    ready = True
    try:
        if kind == "cleanup":
            summary = request["summary"]
            names = data.user_names(conn, request["ids"][:FILTERED_LISTED])
            st.text(f"Apply the lifecycle policy ({settings.policy.describe()})? As of the preview it revokes at "
                    f"Zoho and deletes {summary['revoke+delete']} token(s), and deletes {summary['delete']} "
                    f"token(s); each is checked again when it is acted on.\n{place}\n"
                    f"{listed(request['ids'], names, FILTERED_LISTED)}\n\n{DELETE_TRUTH}")
        elif kind == "revoke":
            names = data.user_names(conn, request["ids"])
            st.text(f"Revoke this token at Zoho, then delete it?\n{listed(request['ids'], names)}\n\nZoho stops "
                    "honouring its refresh token at once: the integration stops until its user grants access again.")
        elif kind == "ids":
            names = data.user_names(conn, request["ids"])
            st.text(f"Delete {len(request['ids'])} token(s) from {where}?\n{listed(request['ids'], names)}\n\n"
                    + DELETE_TRUTH)
        else:
            if request["query"] is not None and "ids" not in request:
                request["ids"] = data.matching_ids(conn, request["query"])  # read once: what is shown is deleted
            if request["query"] is not None:
                names = data.user_names(conn, request["ids"][:FILTERED_LISTED])
                st.text(f"Delete the {len(request['ids'])} token(s) that match the filter ({request['scope']})? "
                        f"Only the filtered set: tokens that do not match stay. To delete the whole collection, "
                        f"clear the filters.\n{place}\n{listed(request['ids'], names, FILTERED_LISTED)}\n\n{DELETE_TRUTH}")
            else:
                st.text(f"Delete every token in the whole collection: all {data.token_count(conn)} of them (no "
                        f"filter is set)?\n{place}\n\n{DELETE_TRUTH}")
            typed = st.text_input(f"Type {markdown_plain(expected)} to confirm (then press Enter)", key="typed_name",
                                  on_change=touched)  # a label is Markdown: the names shown as they are
            ready = typed == expected
    except SDKException as error:
        st.error(markdown_plain(sentence(error)))
        ready = False
    confirm, cancel = st.columns(2)
    go = confirm.button({"revoke": "Revoke", "cleanup": "Apply"}.get(kind, "Delete"), type="primary", key="confirm_delete",
                        disabled=not ready, on_click=touched)
    if cancel.button("Cancel", key="cancel_delete", on_click=touched):
        disarm()
        st.rerun()
    if not go:
        return
    chosen: list[str] = request.get("ids") or []
    try:
        if kind == "cleanup":
            report = data.cleanup_run(conn, settings.policy, operator.who, settings.accounts_url)
            done = "Cleanup: " + ", ".join(f"{count} {name}" for name, count in report.summary(dry_run=False).items())
        elif kind == "revoke":
            host = data.revoke(conn, chosen[0], operator.who, settings.accounts_url)
            done = f"Revoked at {host} and deleted {chosen[0]}."
        elif kind == "ids":
            done = f"Deleted {data.delete(conn, chosen, operator.who)} token(s)."
        elif request["query"] is not None:
            deleted = data.delete_matching(conn, chosen, operator.who, typed or "", expected, request["scope"])
            done = f"Deleted {deleted} token(s) that matched the filter."
        else:
            done = f"Deleted {data.delete_all(conn, operator.who, typed or '', expected)} token(s)."
    except ZohoError as error:  # the buttons stay: Cancel is still there after an error
        st.error(markdown_plain(f"{error}; the token is left in the store."))  # it may quote a stored value
        return
    except SDKException as error:
        st.error(markdown_plain(sentence(error)))
        return
    cached_overview.clear()
    everything = kind == "all" and request["query"] is None
    set_ticks([] if everything else [i for i in st.session_state.get("ticked", []) if i not in chosen])
    disarm()
    st.session_state["flash"] = (done, "✅")
    st.rerun()


def lifecycle_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    """The lifecycle policy (the same settings ``zoho-mongo-store cleanup`` applies from cron), what
    it would do now, and a button to apply it."""
    st.title("Lifecycle policy")
    policy = settings.policy
    st.text(f"Policy: {policy.describe()}.\nAudit entries are kept {settings.audit_retention_days:g} days "
            "(ZOHO_AUDIT_RETENTION_DAYS).")
    st.caption("Set ZOHO_CLEANUP_IDLE_DAYS (a session timeout: revoke at Zoho, then delete, tokens not refreshed "
               "for that long) and ZOHO_CLEANUP_UNUSABLE_DAYS (delete tokens nothing can renew) for the dashboard "
               "and for `zoho-mongo-store cleanup` alike. Each token is checked again when it is acted on: one "
               "refreshed meanwhile is left alone.")
    if not policy:
        st.info("No rule is set: nothing is cleaned up.")
        return
    report = data.cleanup_plan(conn, policy)
    if not report.entries:
        st.success("Nothing to do now: no token is outside the policy's limits.")
        return
    summary = report.summary(dry_run=True)
    st.subheader(f"Preview: {summary['revoke+delete']} to revoke and delete, {summary['delete']} to delete")
    st.dataframe(pd.DataFrame([{"id": e.id, "user_name": e.user_name, "action": e.action, "reason": e.reason}
                               for e in report.entries]), hide_index=True)
    if settings.read_only:
        return
    st.button("Apply the policy now…", key="apply_policy", type="primary", on_click=arm,
              args=({"kind": "cleanup", "ids": [e.id for e in report.entries], "summary": summary},))
    if st.session_state.get("confirm"):
        confirm_dialog(conn, settings, operator)


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
             "results": ", ".join(map(str, e.get("results") or [])),
             "outcome": "; ".join(str(e[k]) for k in ("outcome", "reason") if e.get(k))} for e in entries]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
