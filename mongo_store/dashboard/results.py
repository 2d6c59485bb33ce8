"""What the last actions did, token by token, in a panel at the top of the page until the operator
dismisses it: a toast is gone in seconds, and why a revoke failed must stay readable."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ..core.clock import utcnow
from ..core.masking import markdown_plain, printable
from .plain import MISSING, plain

KEPT = 5
"""The last actions kept in the panel (older ones are in the Audit page)."""
ROWS = 50
"""Tokens listed per action (the rest: "and N more", all of them in the Audit page)."""


def record(title: str, rows: list[tuple[str, str | None, str]]) -> None:
    """Keep an action's outcome: a title ("Revoked 3 tokens: 2 revoked, 1 not") and, per token,
    (id, user name, what happened)."""
    kept = list(st.session_state.get("results") or [])
    kept.append({"title": title, "rows": rows, "at": utcnow()})
    st.session_state["results"] = kept[-KEPT:]


def dismiss() -> None:
    st.session_state["results"] = []


def panel() -> None:
    """The kept outcomes, newest first, with "Dismiss". Always one block at the top (empty when
    there is nothing to show): the page below keeps its place, whether results come or go."""
    kept: list[dict[str, Any]] = st.session_state.get("results") or []
    slot = st.empty()  # (an element, not an empty block: a block left empty keeps what was drawn there before)
    if not kept:
        return
    with slot.container(border=True):
        head, button = st.columns([6, 1])
        head.markdown("**Results of your last actions** (kept here until you dismiss them; every action is also "
                      "in the Audit page)")
        button.button("Dismiss", key="dismiss_results", on_click=dismiss)
        for item in reversed(kept):
            st.markdown(f"**{markdown_plain(item['title'])}** · {item['at']:%H:%M:%S} UTC")
            rows = item["rows"]
            if rows:
                st.table(pd.DataFrame([{"token": plain(token_id), "user": plain(user or MISSING),
                                        "result": plain(printable(result))} for token_id, user, result in rows[:ROWS]]))
            if len(rows) > ROWS:
                st.caption(f"… and {len(rows) - ROWS} more: see the Audit page")
