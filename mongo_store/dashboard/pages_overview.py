"""The Overview: health counts first, why the failing and unusable tokens fail (by reason and by
data center), each tile one click from its filtered list, and the activity drawn from the history."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ..core.masking import markdown_plain
from ..tools import datacenters
from ..tools.health import BY_KEY, HEALTH_MEANING
from . import cache, data, urlstate
from .auth import Operator
from .compat import BUTTON_STRETCH
from .confirm import HEALTH_MARK
from .settings import Settings

EVENT_COLOURS = {"refreshed": "#4c9be8", "refresh-failed": "#e8574c", "checked": "#8e6bd8", "revoked": "#e89c4c",
                 "deleted": "#7a7a7a", "imported": "#4cc08e", "revoke-failed": "#b5179e"}


def show(health: str = "any", reason: str = "any", domain: str = "any") -> None:
    """A tile's callback: the Tokens page with just these filters (it runs before the widgets)."""
    state = st.session_state
    state.update(page="Tokens", search="", health=health, reason=reason, domain=domain,
                 position=dict(urlstate.FIRST), inspect=None)
    state.pop("tokens_view", None)
    state.pop("inspected", None)  # the new list's first token


def overview_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.title("Overview")
    urlstate.write({"page": "overview"})
    if st.button("Refresh counts", key="refresh_counts"):
        cache.recount()
    counts = cache.cached_overview(settings)  # an outage stops the page here (one timeout): the app shows it
    st.session_state["last_counts"] = counts
    st.caption(f"Counts as of {counts['as_of']:%H:%M:%S} UTC (recounted at most once a minute; "
               "Refresh counts recounts now).")
    health_tiles(counts)
    why(counts["breakdown"])
    more = st.columns(5)
    more[0].metric("Tokens", counts["total"])
    more[1].metric("Refresh-only (no access token)", counts["refresh-only"])
    more[2].metric("Grant-only", counts["grant-only"])
    more[3].metric("With a user name", counts["with-user-name"])
    more[4].metric("In the SDK's refresh window (5 s)", counts["refresh-window"])
    left, right = st.columns(2)
    with left:
        st.subheader("Per data center")
        domains = pd.DataFrame({"data center": [datacenters.name(d) for d in counts["per-api-domain"]],
                                "tokens": list(counts["per-api-domain"].values())})
        if domains.empty:
            st.caption("No tokens yet.")
        else:
            st.bar_chart(domains, x="data center", y="tokens", horizontal=True)
    with right:
        activity_chart(conn)


def health_tiles(counts: dict[str, Any], buttons: bool = True) -> None:
    health = counts["health"]
    attention = health["failing"] + health["unusable"]
    tiles = st.columns(5)
    tiles[0].metric("Needs attention", attention, help="Failing plus unusable: the integrations a person must fix.")
    for tile, state in zip(tiles[1:], ("failing", "unusable", "healthy", "idle"), strict=True):
        tile.metric(state.capitalize(), health[state], help=HEALTH_MEANING[state].capitalize() + ".")
    if not buttons:
        return
    if attention:
        tiles[0].button(f"Show these {attention}", key="show_attention", type="primary", on_click=show,
                        args=("attention",), help="The failing and unusable tokens, on the Tokens page.")
    for tile, state in zip(tiles[1:], ("failing", "unusable", "healthy", "idle"), strict=True):
        if health[state]:
            tile.button(f"{HEALTH_MARK[state]} Show {state}", key=f"show_{state}", on_click=show, args=(state,))


def why(rows: list[dict[str, Any]]) -> None:
    """The failing and unusable tokens by reason and by data center: each a button to its list."""
    if not rows:
        return
    st.subheader("Why they need attention")
    by_reason: dict[str, int] = {}
    by_domain: dict[str | None, dict[str, int]] = {}
    for row in rows:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + row["tokens"]
        counted = by_domain.setdefault(row["api_domain"], {"failing": 0, "unusable": 0})
        counted[row["health"]] += row["tokens"]
    reason_side, domain_side = st.columns(2)
    with reason_side:
        st.caption("By reason (each token counted once, at its first reason)")
        for reason, count in sorted(by_reason.items(), key=lambda item: -item[1]):
            st.button(f"{BY_KEY[reason].label} ({BY_KEY[reason].health}): {count}", key=f"show_reason_{reason}",
                      on_click=show, args=(BY_KEY[reason].health, reason), **BUTTON_STRETCH)
    with domain_side:
        st.caption("By data center")
        keys: set[str] = set()
        for domain, counted in sorted(by_domain.items(), key=lambda item: (-sum(item[1].values()),
                                                                            datacenters.name(item[0]))):
            name = datacenters.name(domain)
            parts = ", ".join(f"{n} {state}" for state, n in counted.items() if n)
            # Two stored spellings of one data center ("…eu" and "…eu/") are two buttons: one key each.
            key = f"show_domain_{name}"
            while key in keys:
                key += "+"
            keys.add(key)
            st.button(f"{markdown_plain(name)}: {sum(counted.values())} ({parts})",  # a label is Markdown
                      key=key,
                      disabled=not isinstance(domain, str),
                      on_click=show, args=("attention", "any", domain or "any"), **BUTTON_STRETCH)


def activity_chart(conn: data.Connection) -> None:
    """Every event of the last 7 days (refreshes, failures, checks, revokes, deletes, imports) per 6 h."""
    st.subheader("Activity, last 7 days (UTC, per 6 hours)")
    activity = pd.DataFrame(data.event_activity(conn))
    kinds = [kind for kind in EVENT_COLOURS if kind in activity and activity[kind].any()]
    if activity.empty or not kinds:
        st.caption("No events in the last 7 days (the history records refreshes, failures, checks, revokes, "
                   "deletes and imports).")
        return
    activity["from"] = activity["from"].dt.strftime("%m-%d %H:%M")  # 24-hour labels, in order
    st.bar_chart(activity, x="from", y=kinds, color=[EVENT_COLOURS[kind] for kind in kinds])
    st.caption("Counted from the token history (every refresh, not only each token's latest).")
