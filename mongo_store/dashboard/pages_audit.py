"""The Audit page: every deletion, revoke, check, cleanup and import, newest first, searchable by
actor and token and pageable to the oldest entry kept (keyset cursors, in the URL)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from ..core.errors import sentence
from ..core.masking import iso, markdown_plain, printable
from . import data, urlstate
from .auth import Operator
from .compat import BUTTON_STRETCH, STRETCH
from .settings import Settings

SIZE = 50
NEWEST: dict[str, Any] = {"go": "first", "cursor": None}


def go_to(position: dict[str, Any]) -> None:
    st.session_state["audit_position"] = position


def row(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry in five readable columns (the ids with their user names in one)."""
    ids = [str(i) for i in entry.get("ids") or []]
    names = [str(n) for n in entry.get("user_names") or []]
    tokens = ", ".join(ids[:5]) + (f" … and {len(ids) - 5} more" if len(ids) > 5 else "")
    if names:
        tokens += " · " + ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
    outcome = "; ".join(str(entry[k]) for k in ("outcome", "reason") if entry.get(k))
    if entry.get("deleted") is not None:
        outcome = "; ".join(part for part in (outcome, f"deleted {entry['deleted']}") if part)
    if entry.get("results"):
        outcome = "; ".join(part for part in (outcome, ", ".join(map(str, entry["results"]))) if part)
    if entry.get("scope"):
        outcome = "; ".join(part for part in (outcome, f"filter: {entry['scope']}") if part)
    return {"when (UTC)": iso(entry.get("at")), "who": printable(entry.get("who")), "action": printable(entry.get("action")),
            "tokens": printable(tokens), "outcome": printable(outcome)}


@st.fragment
def audit_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    try:
        audit_view(conn)
    except SDKException as error:  # a fragment's rerun never reaches main()'s handler
        st.error(markdown_plain(sentence(error)))


def audit_view(conn: data.Connection) -> None:
    state = st.session_state
    for key, value in (state.get("audit_view") or {}).items():
        state.setdefault(key, value)
    state.setdefault("audit_actor", "")
    state.setdefault("audit_token", "")
    st.title("Audit log")
    st.caption("Every deletion, revoke, check, cleanup and import made from this dashboard or the CLI: when, who, "
               "which ids and user names, Zoho's answers. Never a secret.")
    actor_box, token_box = st.columns(2)
    actor_box.text_input("Actor (start of who, any case)", key="audit_actor", max_chars=200)
    token_box.text_input("Token (its id, or the start of a user name)", key="audit_token", max_chars=200)
    actor, token = str(state["audit_actor"]).strip() or None, str(state["audit_token"]).strip() or None
    searched = (actor, token)
    if state.get("audit_searched", searched) != searched:
        state["audit_position"] = dict(NEWEST)
    state["audit_searched"] = searched
    position = state.get("audit_position") or dict(NEWEST)
    try:
        entries, older, newer = data.audit_search(conn, actor, token, position.get("cursor"), position["go"], SIZE)
    except ValueError as error:
        if position.get("cursor") is None:  # the search itself (too long, a control character)
            st.warning(markdown_plain(error))
            return
        st.warning(f"{markdown_plain(error)}. Showing the newest entries.")
        state["audit_position"] = dict(NEWEST)
        entries, older, newer = data.audit_search(conn, actor, token, None, "first", SIZE)
    state["audit_view"] = {"audit_actor": state["audit_actor"], "audit_token": state["audit_token"]}
    urlstate.write(urlstate.audit_view())
    first, previous, following, where = st.columns([1, 1, 1, 5])
    first.button("« Newest", key="audit_newest", disabled=newer is None, on_click=go_to, args=(dict(NEWEST),),
                 **BUTTON_STRETCH)
    previous.button("‹ Newer", key="audit_newer", disabled=newer is None, on_click=go_to,
                    args=({"go": "previous", "cursor": newer},), **BUTTON_STRETCH)
    following.button("Older ›", key="audit_older", disabled=older is None, on_click=go_to,
                     args=({"go": "next", "cursor": older},), **BUTTON_STRETCH)
    where.caption(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} on this page, newest first"
                  + ("; older ones on the next page" if older else ""))
    if not entries:
        st.caption("No audit entry matches." if actor or token else "No deletions, revokes or checks yet.")
        return
    # Widths that fit the main column at 1280 px (a cell's whole text shows on hover).
    config = {"when (UTC)": st.column_config.TextColumn(width=145), "who": st.column_config.TextColumn(width=140),
              "action": st.column_config.TextColumn(width=85), "tokens": st.column_config.TextColumn(width=215),
              "outcome": st.column_config.TextColumn(width=215)}
    st.dataframe(pd.DataFrame([row(entry) for entry in entries]), hide_index=True, column_config=config, **STRETCH)
