"""The Audit page: every deletion, revoke, check, cleanup and import, newest first, searchable by
actor, token, action and date range, pageable to the oldest entry kept (keyset cursors, in the
URL), exported as CSV; each row links to its token, and a click on a row shows the whole entry."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from ..core.clock import utcnow
from ..core.masking import iso, markdown_plain, printable
from ..tools.audit import ACTIONS, outcome_text, who_text
from ..tools.words import plural
from . import data, outage, urlstate
from .auth import Operator
from .bulk import cell
from .compat import BUTTON_STRETCH, STRETCH
from .plain import MISSING, plain
from .settings import Settings

SIZE = 50
NEWEST: dict[str, Any] = {"go": "first", "cursor": None}
EXPORT_LIMIT = 10_000


def go_to(position: dict[str, Any]) -> None:
    st.session_state["audit_position"] = position


def token_link(token_id: str) -> str:
    """The Tokens page with this token in Inspect (a relative link: the same dashboard)."""
    return "?" + urlencode({"page": "tokens", "token": token_id})


def row(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry in readable columns: the first token as a link, the others counted; the whole
    entry is in the detail panel below."""
    ids = [str(i) for i in entry.get("ids") or []]
    names = [str(n) for n in entry.get("user_names") or []]
    tokens = ", ".join(ids[:5]) + (f" … and {len(ids) - 5} more" if len(ids) > 5 else "")
    if names:
        tokens += " · " + ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
    return {"when (UTC)": iso(entry.get("at")), "who": printable(who_text(entry)),
            "action": printable(entry.get("action")), "token": token_link(ids[0]) if ids else None,
            "tokens": printable(tokens) or MISSING, "outcome": printable(outcome_text(entry))}


@st.fragment
def audit_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    try:
        audit_view(conn, settings)
    except SDKException as error:  # a fragment's rerun never reaches main()'s handler
        outage.handle(error, settings)


def day_range(first: Any, last: Any) -> tuple[datetime | None, datetime | None]:
    """The days chosen (either may be unset) as [the start of the first, the start of the day after the last)."""
    since = datetime.combine(first, time()) if isinstance(first, date) else None
    until = datetime.combine(last, time()) + timedelta(days=1) if isinstance(last, date) else None
    return since, until


def audit_view(conn: data.Connection, settings: Settings) -> None:
    state = st.session_state
    for key, value in (state.get("audit_view") or {}).items():
        state.setdefault(key, value)
    state.setdefault("audit_actor", "")
    state.setdefault("audit_token", "")
    state.setdefault("audit_action", "any")
    state.setdefault("audit_from", None)
    state.setdefault("audit_to", None)
    st.title("Audit log")
    st.caption("Every deletion, revoke, check, cleanup and import made from this dashboard or the CLI: when, who (and "
               "their role), which ids and user names, Zoho's answers. Never a secret.")
    actor_box, token_box, action_box, from_box, to_box = st.columns([1.2, 1.2, 0.9, 0.8, 0.8])
    actor_box.text_input("Actor (start of who, any case)", key="audit_actor", max_chars=200)
    token_box.text_input("Token (its id, or the start of a user name)", key="audit_token", max_chars=200)
    action_box.selectbox("Action", ["any", *ACTIONS], key="audit_action",
                         format_func=lambda a: "Any" if a == "any" else a)
    today = utcnow().date()
    from_box.date_input("From (UTC)", key="audit_from", max_value=today, format="YYYY-MM-DD",
                        help="Entries from the start of this day (empty: the oldest kept).")
    to_box.date_input("To (UTC)", key="audit_to", max_value=today, format="YYYY-MM-DD",
                      help="Entries to the end of this day (empty: up to now).")
    actor, token = str(state["audit_actor"]).strip() or None, str(state["audit_token"]).strip() or None
    action = state["audit_action"] if state["audit_action"] in ACTIONS else None
    since, until = day_range(state["audit_from"], state["audit_to"])
    filters: dict[str, Any] = {"action": action, "since": since, "until": until}
    searched = (actor, token, action, since, until)
    if state.get("audit_searched", searched) != searched:
        state["audit_position"] = dict(NEWEST)
    state["audit_searched"] = searched
    position = state.get("audit_position") or dict(NEWEST)
    try:
        entries, older, newer = data.audit_search(conn, actor, token, position.get("cursor"), position["go"], SIZE,
                                                  **filters)
    except ValueError as error:
        if position.get("cursor") is None:  # the search itself (too long, a control character)
            st.warning(markdown_plain(error))
            return
        st.warning(f"{markdown_plain(error)}. Showing the newest entries.")
        state["audit_position"] = dict(NEWEST)
        entries, older, newer = data.audit_search(conn, actor, token, None, "first", SIZE, **filters)
    state["audit_view"] = {key: state[key] for key in ("audit_actor", "audit_token", "audit_action", "audit_from",
                                                      "audit_to")}
    urlstate.write(urlstate.audit_view())
    first, previous, following, where, export = st.columns([1, 1, 1, 3.2, 1.4])
    first.button("« Newest", key="audit_newest", disabled=newer is None, on_click=go_to, args=(dict(NEWEST),),
                 **BUTTON_STRETCH)
    previous.button("‹ Newer", key="audit_newer", disabled=newer is None, on_click=go_to,
                    args=({"go": "previous", "cursor": newer},), **BUTTON_STRETCH)
    following.button("Older ›", key="audit_older", disabled=older is None, on_click=go_to,
                     args=({"go": "next", "cursor": older},), **BUTTON_STRETCH)
    where.caption(f"{plural(len(entries), 'entry', 'entries')} on this page, newest first"
                  + ("; older ones on the next page" if older else ""))
    export_controls(export, conn, settings, actor, token, filters, bool(entries))
    if not entries:
        st.caption("No audit entry matches." if actor or token or action or since else
                   "No deletions, revokes or checks yet.")
        return
    # Widths that fit the main column at 1280 px; the whole entry is in the panel below (click a row).
    config = {"when (UTC)": st.column_config.TextColumn(width=140), "who": st.column_config.TextColumn(width=130),
              "action": st.column_config.TextColumn(width=80),
              "token": st.column_config.LinkColumn("token", width=60, display_text="open",
                                                   help="The token in Inspect (also once deleted: its history)"),
              "tokens": st.column_config.TextColumn(width=170), "outcome": st.column_config.TextColumn(width=220)}
    event = st.dataframe(pd.DataFrame([row(entry) for entry in entries]), hide_index=True, column_config=config,
                         key=f"audit_grid-{len(entries)}-{position.get('cursor')}", on_select="rerun",
                         selection_mode="single-row", **STRETCH)
    try:
        picked = [int(r) for r in event["selection"]["rows"]]
    except (KeyError, TypeError):
        picked = []
    st.caption("Click a row for the whole entry (every token, Zoho's answer, the reason).")
    if picked and 0 <= picked[0] < len(entries):
        detail(entries[picked[0]])


def detail(entry: dict[str, Any]) -> None:
    """Every field of one entry, whole, as plain text (a static table: nothing is cut)."""
    st.markdown("**The whole entry**")
    shown = {"when (UTC)": iso(entry.get("at")), "who": who_text(entry), "action": entry.get("action"),
             "outcome": outcome_text(entry)}
    shown |= {key: value for key, value in entry.items() if key not in ("at", "who", "role", "action", "ids", "user_names")}
    rows: dict[str, list[Any]] = {"field": [], "value": []}
    for key, value in shown.items():
        rows["field"].append(key)
        rows["value"].append(plain(", ".join(map(str, value)) if isinstance(value, list) else
                                   iso(value) if isinstance(value, datetime) else value))
    st.table(pd.DataFrame(rows).set_index("field"))
    ids = [str(i) for i in entry.get("ids") or []]
    if ids:
        names = [str(n) for n in entry.get("user_names") or []]
        st.markdown("Tokens: " + ", ".join(f"[{plain(i)}]({token_link(i)})" for i in ids[:50])
                    + (f" and {len(ids) - 50} more" if len(ids) > 50 else "")
                    + (f" · user names: {plain(', '.join(names[:50]))}" if names else ""))


def export_controls(place: Any, conn: data.Connection, settings: Settings, actor: str | None, token: str | None,
                    filters: dict[str, Any], any_entry: bool) -> None:
    """Every entry the search matches (up to ``EXPORT_LIMIT``) as CSV: prepared on a click, then downloaded."""
    state = st.session_state
    key = repr((actor, token, filters))
    prepared = state.get("audit_export")
    if not (prepared and prepared[0] == key) and place.button("Export CSV", key="audit_export_prepare",
                                                              disabled=not any_entry, **BUTTON_STRETCH,
                                                              help=f"Every entry this search matches (up to "
                                                                   f"{EXPORT_LIMIT:,}), not just this page."):
        entries = data.audit_export(conn, actor, token, limit=EXPORT_LIMIT, **filters)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["at", "who", "role", "action", "ids", "user_names", "outcome"])
        for entry in entries:
            writer.writerow([cell(value) for value in (
                entry.get("at"), entry.get("who"), entry.get("role") or "", entry.get("action"),
                " ".join(map(str, entry.get("ids") or [])), " ".join(map(str, entry.get("user_names") or [])),
                outcome_text(entry))])
        where = settings.environment or settings.store.database
        state["audit_export"] = prepared = (key, out.getvalue(), len(entries),
                                            f"audit-{where}-{utcnow():%Y-%m-%d-%H%M}.csv")
    if prepared and prepared[0] == key:
        place.download_button(f"Download {prepared[2]:,} (CSV)", prepared[1], file_name=prepared[3], mime="text/csv",
                              key="audit_export_download", **BUTTON_STRETCH)
