"""The Tokens page: filters, keyset paging, the grid with its reason column and ticks, inspect
(every field and the token's history) and the actions on one token, the ticked rows or every match.

It is one fragment: a tick, a filter or a paging click reruns this page only, not the sidebar or
the rest of the app; the URL follows the view (``urlstate``)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from ..core.clock import utcnow
from ..core.errors import sentence
from ..core.masking import ago, iso, markdown_plain, printable
from ..tools import datacenters, paging
from ..tools.health import BY_KEY, HEALTH_MEANING
from ..tools.operations import NotAllowed, refusal
from ..tools.queries import Query, describe_empty, shown_total
from ..tools.words import plural
from . import bulk, cache, data, outage, results, urlstate
from .auth import Operator
from .compat import BUTTON_STRETCH, CELL_CLICK, GRID_DEFAULT, STRETCH
from .confirm import LISTED, arm, confirm_dialog, disarm_unless_touched, health_label, set_ticks
from .plain import MISSING, plain
from .settings import Settings

ATTENTION_LABEL = "Needs attention (failing + unusable)"
HEALTH_LABELS = {"any": "Any", "attention": ATTENTION_LABEL, "healthy": "Healthy", "idle": "Idle",
                 "failing": "Failing", "unusable": "Unusable"}
HEALTH_HELP = "  \n".join(f"**{state}**: {meaning}" for state, meaning in HEALTH_MEANING.items())
SORT_LABELS = {"default": "Default (the filtered field)", "user": "User name", "expiry": "Expiry",
               "refreshed": "Last refreshed"}
ID_WIDTH = 172
"""Pixels that show any 16-character id whole in the grid's font (the widest measured 136 px + padding)."""
VIEW_KEYS = ("search", "health", "reason", "domain", "sort", "descending", "page_size", "position", "inspect")
"""The Session State that makes the Tokens page's view (and its URL)."""
GRID_COLUMNS = ["id", "user_name", "health", "health_reason", "data center", "expires_at", "last_refreshed_at"]
"""What fits at 1280 px: the client id and the (masked) secrets are in Inspect and in the export."""


def query_of(state: Any) -> Query:
    """The filters chosen (in Session State) as the query the server runs."""
    search = str(state.get("search") or "").strip()
    domain, health, reason = state.get("domain"), state.get("health"), state.get("reason")
    sort = state.get("sort")
    return Query(search=search or None, health=None if health in (None, "any") else health,
                       api_domain=None if domain in (None, "any") else domain,
                       sort=None if sort in (None, "default") else sort, descending=bool(state.get("descending")),
                       reason=None if reason in (None, "any") else reason)


def scope_of(state: Any) -> str:
    """The filters in words, for a confirmation and the audit (empty: no filter)."""
    search = str(state.get("search") or "").strip()
    domain = state.get("domain")
    return "; ".join(part for part in (
        f"search {search!r}" if search else "",
        f"health: {HEALTH_LABELS.get(state.get('health'), '')}" if state.get("health") not in (None, "any") else "",
        f"why: {BY_KEY[state['reason']].label}" if state.get("reason") in BY_KEY else "",
        f"data center: {datacenters.name(domain)}" if domain not in (None, "any") else "",
    ) if part)


def go_to(position: dict[str, Any]) -> None:
    """A paging button's callback: the position the next run shows."""
    st.session_state["position"] = position


@st.fragment
def tokens_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    try:
        tokens_view(conn, settings, operator)
    except SDKException as error:  # a fragment's rerun never reaches main()'s handler
        outage.handle(error, settings)


def tokens_view(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    disarm_unless_touched()
    state = st.session_state
    flash = state.pop("flash", None)
    if flash:
        st.toast(markdown_plain(flash[0]), icon=flash[1])
    kept = {**urlstate.defaults(), **(state.get("tokens_view") or {})}
    for key in VIEW_KEYS:  # a control not drawn on the last page shown lost its state: the view keeps it
        state.setdefault(key, kept[key])
    st.title("Tokens")
    filters = st.columns([3, 2.6, 1.5, 1.1])
    filters[0].text_input("Search: e-mail, its domain, org id or token id (start of; any case)", key="search",
                          help="`wayne.example`, `FEMI.2` and `700210` all find femi.210@wayne.example:700210; "
                               "never a secret (a secret typed into a search box ends up in logs).")
    filters[1].selectbox("Health", list(HEALTH_LABELS), key="health", format_func=HEALTH_LABELS.__getitem__,
                         help=HEALTH_HELP)
    filters[2].selectbox("Why", ["any", *BY_KEY], key="reason",
                         format_func=lambda r: "Any" if r == "any" else BY_KEY[r].label,
                         help="Why a failing or unusable token needs a person (the Overview's breakdown).")
    domains = data.domains(conn)
    if state.get("domain") not in ("any", *domains):
        state["domain"] = "any"
    filters[3].selectbox("Data center", ["any", *domains], key="domain",
                         format_func=lambda d: "Any" if d == "any" else datacenters.name(d))
    order = st.columns([2.2, 1.5, 1, 3.5])
    order[0].selectbox("Sort by", list(SORT_LABELS), key="sort", format_func=SORT_LABELS.__getitem__)
    order[1].toggle("Descending", key="descending")
    order[2].selectbox("Per page", list(urlstate.SIZES), key="page_size")
    shown = urlstate.shows()
    if state.get("page_shows", shown) != shown:
        state["position"] = dict(urlstate.FIRST)  # another filter: its first page, not page 3 of the last one
    state["page_shows"] = shown
    query = query_of(state)
    try:
        query.to_filter(utcnow())  # the search itself (a secret's shape, a control character): said, never run
    except ValueError as error:
        st.error(markdown_plain(error))
        urlstate.write(urlstate.tokens_view())
        return
    position = state.get("position") or dict(urlstate.FIRST)
    size = int(state.get("page_size") or 50)
    try:
        records, page = data.token_page(conn, query, size, go=position["go"], cursor=position.get("cursor"),
                                        number=int(position.get("number") or 1))
    except ValueError as error:  # a malformed cursor (an edited link): the first page, and why
        st.warning(f"{markdown_plain(error)} Showing the first page.")
        state["position"] = position = dict(urlstate.FIRST)
        records, page = data.token_page(conn, query, size)
    pager(st.container(), page)
    if not records:
        said = describe_empty(query)
        st.info(markdown_plain(said[0].upper() + said[1:] + "."))
    ids = [record["id"] for record in records]
    ticked = token_grid(conn, records, page.total)
    chosen = inspect_panel(conn, records, ticked)
    urlstate.write(urlstate.tokens_view())
    state["tokens_view"] = {key: state.get(key) for key in VIEW_KEYS}
    token_actions(conn, settings, operator, chosen, ticked, query, scope_of(state), page.total, bool(ids))


def page_label(page: paging.Page) -> str:
    """``page 3 of 12 · 600 tokens``; with a capped count, the page counted from the end."""
    total = shown_total(page.total)
    tokens = "token" if page.total == 1 else "tokens"
    if page.pages is not None:
        return f"page {page.number} of {page.pages} · {total} {tokens}"
    where = f"page {page.number}" if page.number > 0 else ("last page" if page.number == -1
                                                           else f"page {-page.number} from the end")
    return f"{where} · {total} {tokens}"


def pager(place: Any, page: paging.Page) -> None:
    """First / previous / next / last, and where this page is, on keyset cursors (any depth costs
    what the first page costs)."""
    first, previous, following, last, where = place.columns([1, 1, 1, 1, 4])
    first.button("« First", key="page_first", disabled=not page.has_previous, on_click=go_to,
                 args=(dict(urlstate.FIRST),), **BUTTON_STRETCH)
    previous.button("‹ Prev", key="page_previous", disabled=not page.has_previous, on_click=go_to,
                    args=({"go": "previous", "cursor": page.first_cursor, "number": page.number - 1},),
                    **BUTTON_STRETCH)
    following.button("Next ›", key="page_next", disabled=not page.has_next, on_click=go_to,
                     args=({"go": "next", "cursor": page.last_cursor, "number": page.number + 1},),
                     **BUTTON_STRETCH)
    last.button("Last »", key="page_last", disabled=not page.has_next, on_click=go_to,
                args=({"go": "last", "cursor": None, "number": page.pages or -1},), **BUTTON_STRETCH)
    where.markdown(f"<div style='padding-top:0.45rem'>{page_label(page)}</div>", unsafe_allow_html=True)


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


def token_grid(conn: data.Connection, records: list[dict[str, Any]], total: int) -> list[str]:
    """The page's tokens, health colour-coded and in words, with why each is in its state, and row
    ticks for the actions below; a click on a cell opens its token in Inspect (Streamlit 1.4x with
    cell selection; a newly ticked row does it everywhere). Returns every ticked token id (on this
    page or not)."""
    columns = GRID_COLUMNS + (["malformed"] if any("malformed" in record for record in records) else [])
    now = utcnow()
    rows = [{**record, "user_name": record.get("user_name") or MISSING, "health": health_label(record["health"]),
             "data center": datacenters.name(record.get("api_domain")),
             **{column: ago(record[column], now) if isinstance(record.get(column), datetime) else MISSING
                for column in ("expires_at", "last_refreshed_at")}} for record in records]
    table = pd.DataFrame(rows, columns=columns)
    # Widths that fit at 1280 px: the full id (monospace); a whole reason, user name or date is one click away (Inspect).
    config = {"id": st.column_config.TextColumn("id", width=ID_WIDTH, help="The token's id (16 characters)"),
              "user_name": st.column_config.TextColumn("user_name", width=150),
              "health": st.column_config.TextColumn("health", width=92, help=HEALTH_HELP),
              "health_reason": st.column_config.TextColumn("why", width=154,
                                                           help="Why the token is in its health state: click the row "
                                                                "for the whole sentence in Inspect"),
              "data center": st.column_config.TextColumn("DC", width=38, help="Data center"),
              "expires_at": st.column_config.TextColumn("expires", width=78,
                                                        help="The access token's expiry; the UTC time is in Inspect."),
              "last_refreshed_at": st.column_config.TextColumn(
                  "refreshed", width=86, help="The last save that stored an access token; the UTC time is in Inspect.")}
    caption = (f"Sort by orders all {shown_total(total)} matches on the server; a click on a column header "
               "orders only the rows on this page. Click a row to inspect it.")
    ticked = read_ticks()
    ids = [record["id"] for record in records]
    key = grid_key(ids)
    fresh = key not in st.session_state
    defaults = [row for row, token_id in enumerate(ids) if token_id in ticked]
    extra: dict[str, Any] = {"selection_default": {"selection": {"rows": defaults, "columns": []}}} if GRID_DEFAULT and defaults else {}
    event = st.dataframe(table, hide_index=True, column_config=config, key=key, on_select="rerun",
                         selection_mode=["multi-row", "single-cell"] if CELL_CLICK else "multi-row",
                         **extra, **STRETCH)
    # What the browser now shows ticked: a new grid its defaults, a kept one its own selection.
    shown = (defaults if GRID_DEFAULT else []) if fresh else selected_rows(event)
    st.session_state["grid_key"] = key
    st.session_state["grid_shown"] = (key, ids, shown)
    clicked_row(event, ids)
    st.caption(caption + " Tick rows to act on them: a tick stays with its token when the rows move.")
    if ticked:
        elsewhere = len([i for i in ticked if i not in ids])
        found = data.described(conn, ticked[:LISTED])
        line, clear = st.columns([6, 1])
        line.text(f"Ticked: {plural(len(ticked), 'token')}" + (f", {elsewhere} of them not on this page" if elsewhere else "")
                  + ": " + ", ".join(printable(found[i][0] if i in found and found[i][0] else i) for i in ticked[:LISTED])
                  + (f" and {len(ticked) - LISTED} more" if len(ticked) > LISTED else ""))
        clear.button("Clear ticks", key="clear_ticks", on_click=set_ticks, args=([],))
    return ticked


def clicked_row(event: Any, ids: list[str]) -> None:
    """A click on a cell (a new one: not the cell already selected) inspects that row's token."""
    try:
        cells = [tuple(cell) for cell in event["selection"]["cells"]]
    except (KeyError, TypeError):
        return
    state = st.session_state
    if cells and cells != state.get("grid_cells"):
        row = int(cells[-1][0])
        if 0 <= row < len(ids):
            state["inspect"] = ids[row]
    state["grid_cells"] = cells


# -- inspect: every field without scrolling, and the token's history --------------------------------


def inspect_panel(conn: data.Connection, records: list[dict[str, Any]], ticked: list[str]) -> str | None:
    """The inspected token: the one a row click, a new tick, the box or a ``?token=`` link chose;
    the first row only when none was chosen yet. It never moves to another token by itself: after
    paging, another filter or its delete it stays, shown "(not on this page)" or as no longer
    stored. Returns its id while it is stored."""
    state = st.session_state
    ids = [record["id"] for record in records]
    on_page = [token_id for token_id in ticked if token_id in ids]
    newly = [token_id for token_id in on_page if token_id not in state.get("inspect_follows", [])]
    if newly:
        state["inspect"] = newly[-1]  # a newly ticked row is inspected
    state["inspect_follows"] = on_page
    # Each token's label stays the same on every page (the browser names the choice by its label).
    names: dict[str, Any] = state.setdefault("inspect_names", {})
    if len(names) > 5000:
        names.clear()
    names.update({record["id"]: record.get("user_name") for record in records})
    chosen = state.get("inspect")  # the box, a row click, a new tick or a link: the operator's latest choice
    if isinstance(chosen, str) and " · " in chosen and chosen not in ids:  # a label the browser kept: its token
        chosen = chosen.split(" · ")[0]
    if not (isinstance(chosen, str) and chosen):
        chosen = state.get("inspected") or (ids[0] if ids else None)  # (a box drawn anew may come back empty)
    if chosen is None:
        return None
    state["inspect"] = state["inspected"] = chosen
    options = ([chosen] if chosen not in ids else []) + ids
    st.subheader("Inspect")
    shown = st.selectbox("Inspect a token", options, key="inspect",
                         format_func=lambda i: printable(f"{i} · {names.get(i) or MISSING}"))
    chosen = state["inspected"] = str(shown) if shown else chosen
    try:
        record = data.inspect(conn, chosen)
    except ValueError as error:
        st.error(markdown_plain(error))
        return None
    if record is None:
        st.info(f"No token {plain(chosen)} is stored (deleted, or a link to another store); its history "
                "below stays until it expires.")
    else:
        fields, history = st.columns([3, 2])
        fields.table(inspect_table(record))
        with history:
            history_panel(conn, chosen)
        return chosen
    history_panel(conn, chosen)
    return None


def inspect_table(record: dict[str, Any]) -> pd.DataFrame:
    """Every stored field of one token, one a row (a static table: all visible, nothing scrolls)."""
    rows: dict[str, list[str]] = {"field": [], "value": []}
    for key, value in record.items():
        if value is None:
            continue
        rows["field"].append(key)
        # st.table renders each cell as Markdown: a stored value is shown as plain text.
        if key == "api_domain":
            rows["value"].append(plain(datacenters.label(str(value))))
        elif isinstance(value, datetime):
            rows["value"].append(f"{iso(value)} ({ago(value)})")
        elif key == "health":
            rows["value"].append(health_label(str(value)))
        else:
            rows["value"].append(plain(printable(value)))
        if key == "health":
            rows["field"].append("health means")
            rows["value"].append(HEALTH_MEANING[str(value)])
    return pd.DataFrame(rows).set_index("field")


def history_panel(conn: data.Connection, token_id: str) -> None:
    """The token's latest events (refreshed, refresh failed, checked, revoked, deleted, imported)."""
    st.markdown("**History** (newest first)")
    events = data.token_history(conn, token_id, limit=20)
    if not events:
        st.caption("No events recorded for this token (they are kept for the retention period, "
                   "ZOHO_EVENTS_RETENTION_DAYS).")
        return
    st.table(pd.DataFrame([{"when (UTC)": iso(e.get("at")), "event": plain(e.get("event")),
                            "detail": plain(e.get("detail")), "who": plain(e.get("who"))}  # cells are Markdown
                           for e in events]))


# -- actions: on the inspected token, the ticked rows, or every match -------------------------------


def token_actions(conn: data.Connection, settings: Settings, operator: Operator, chosen: str | None,
                  ticked: list[str], query: Query, scope: str, total: int, listed: bool) -> None:
    st.subheader("Actions")
    st.caption("Check asks Zoho whether the token works (refreshing it if it lapsed, through the store's lease). "
               "Delete removes the stored token for good (a refresh in flight cannot save it back), but its refresh "
               "token stays valid at Zoho. Revoke ends the connection at Zoho, then deletes.")
    role = operator.role
    # A control the role may not use stays in place, disabled, its reason on hover (and in the caption below).
    no_check, no_revoke, no_delete = (refusal(role, action) for action in ("check", "revoke", "delete"))
    no_delete_all = refusal(role, "delete-filtered" if scope else "delete-all")
    view = {"view": query}  # the filters shown when a dialog opens: a token ticked under others is named so
    one = st.columns([1.3, 1.3, 1.3, 3])
    if chosen:
        one[3].text(f"This token: {printable(chosen)}")  # plain and monospace: a stored id is never Markdown
        if one[0].button("Check with Zoho", key="check_one", disabled=bool(no_check), help=why(no_check),
                         **BUTTON_STRETCH):
            check_one(conn, settings, operator, chosen)
        one[1].button("Revoke at Zoho…", key="revoke_one", on_click=arm, disabled=bool(no_revoke), help=why(no_revoke),
                      args=({"kind": "revoke", "ids": [chosen], **view},), **BUTTON_STRETCH)
        one[2].button("Delete token…", key="delete_one", on_click=arm, disabled=bool(no_delete), help=why(no_delete),
                      args=({"kind": "ids", "ids": [chosen], **view},), **BUTTON_STRETCH)
    many = st.columns([1.3, 1.3, 1.3, 3])
    many[3].markdown(f"Ticked rows: **{len(ticked)}**" + ("" if ticked else " (tick rows in the grid)"))
    # Fixed labels: Streamlit 1.42 takes a button whose label changed for a new one, and loses its click.
    if many[0].button("Check ticked", key="check_selected", disabled=not ticked or bool(no_check), help=why(no_check),
                      **BUTTON_STRETCH):
        check_ticked(conn, settings, operator, ticked)
    many[1].button("Revoke ticked…", key="revoke_selected", disabled=not ticked or bool(no_revoke), on_click=arm,
                   help=why(no_revoke), args=({"kind": "revoke", "ids": list(ticked), **view},), **BUTTON_STRETCH)
    many[2].button("Delete ticked rows", disabled=not ticked or bool(no_delete), key="delete_selected", on_click=arm,
                   args=({"kind": "ids", "ids": list(ticked), **view},),
                   help=why(no_delete) or "The rows ticked in the grid above, on any page; the confirmation lists "
                                          "them, and names any that are not in this view.", **BUTTON_STRETCH)
    every = st.columns([1.3, 1.3, 1.3, 3])
    every[3].markdown(f"Every match: **{shown_total(total)}**" + (f" ({markdown_plain(scope)})" if scope else ""))
    every[0].button("Select all", key="select_all", disabled=not listed or total > bulk.SELECT_LIMIT,
                    on_click=select_all, args=(conn, query), **BUTTON_STRETCH,
                    help=f"Tick every token the filters match, on every page (up to {bulk.SELECT_LIMIT:,}).")
    export_controls(every[1], conn, settings, query, total)
    every[2].button("Delete all…", key="delete_all", on_click=arm, disabled=not total or bool(no_delete_all),
                    args=({"kind": "all", "query": query if scope else None, "scope": scope},),
                    help=why(no_delete_all) or ("Nothing matches: nothing to delete." if not total else
                                                "Every token the filters match (with a filter), or every token in the "
                                                "collection (without one)."),
                    **BUTTON_STRETCH)
    refused = [said for said in dict.fromkeys((no_check, no_revoke, no_delete, no_delete_all)) if said]
    if refused:
        st.caption(f"Your role ({role}) turns some actions off: " + "; ".join(refused) + ".")
    if st.session_state.get("confirm"):
        confirm_dialog(conn, settings, operator)


def why(refused: str | None) -> str | None:
    """A disabled control's reason, for its tooltip."""
    return f"Not for your role: {refused}." if refused else None


def check_one(conn: data.Connection, settings: Settings, operator: Operator, chosen: str) -> None:
    try:
        result = data.check(conn, chosen, operator.who, operator.role)
    except NotAllowed as error:
        st.error(f"You cannot do this: {markdown_plain(error)}.")
        return
    except SDKException as error:
        st.error(markdown_plain(sentence(error)))
        return
    cache.recount()
    results.record(f"Check of {chosen}: {result.result}", [(chosen, result.user_name, result.result)])
    st.session_state["flash"] = (f"Check of {chosen}: {result.result}", "✅" if result.ok else "⚠️")
    st.rerun()


def check_ticked(conn: data.Connection, settings: Settings, operator: Operator, ticked: list[str]) -> None:
    try:
        names = {token_id: found[0] for token_id, found in data.described(conn, ticked).items()}
        outcome = data.check_many(conn, ticked, operator.who, operator.role)
    except NotAllowed as error:
        st.error(f"You cannot do this: {markdown_plain(error)}.")
        return
    except SDKException as error:
        st.error(markdown_plain(sentence(error)))
        return
    cache.recount()
    results.record(outcome.summary(), [(token_id, names.get(token_id), result) for token_id, result in outcome.results.items()])
    st.session_state["flash"] = (outcome.summary(), "✅" if len(outcome.done) == len(outcome.results) else "⚠️")
    st.rerun()


def select_all(conn: data.Connection, query: Query) -> None:
    """Tick every match (a callback: the grid is drawn again with them ticked)."""
    try:
        set_ticks(bulk.matching_ids(conn, query))
    except (bulk.TooMany, SDKException) as error:
        st.session_state["flash"] = (sentence(error) if isinstance(error, SDKException) else str(error), "⚠️")


def export_name(settings: Settings, now: Any = None) -> str:
    """The export's file name: where it comes from and when (``tokens-production-2026-12-07-1430.csv``),
    so two exports never overwrite each other and a file says which environment it holds."""
    where = settings.environment or settings.store.database
    return f"tokens-{where}-{(now or utcnow()):%Y-%m-%d-%H%M}.csv"


def export_controls(place: Any, conn: data.Connection, settings: Settings, query: Query, total: int) -> None:
    """Export every match as CSV (secrets masked): prepared on a click (it reads up to
    ``bulk.EXPORT_LIMIT`` tokens), then downloaded."""
    state = st.session_state
    prepared = state.get("export")
    key = repr(query)
    if not (prepared and prepared[0] == key) and place.button(
            "Export CSV", key="export_prepare", disabled=not total or total > bulk.EXPORT_LIMIT,
            help=f"Every token the filters match, not just this page (up to {bulk.EXPORT_LIMIT:,}), "
                 "secrets masked to their last four characters.", **BUTTON_STRETCH):
        try:
            text, count = bulk.export_csv(conn, query)
        except bulk.TooMany as error:
            st.error(markdown_plain(error))
            return
        state["export"] = prepared = (key, text, count, export_name(settings))
    if prepared and prepared[0] == key:
        place.download_button(f"Download {prepared[2]:,} (CSV)", prepared[1], file_name=prepared[3],
                              mime="text/csv", key="export_download", **BUTTON_STRETCH)
