"""What the pages share across reruns: the connection (one per process) and the counts, computed
at most once a minute (at a million tokens they take seconds)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ..tools import health
from . import data, demo
from .settings import Settings


@st.cache_resource(show_spinner="Connecting to MongoDB…")
def connection(settings: Settings) -> data.Connection:
    connected = data.connect(settings)
    if settings.demo and data.token_count(connected) == 0:
        demo.seed(connected.store)
    return connected


@st.cache_data(ttl=60, show_spinner="Counting tokens…")
def cached_overview(settings: Settings) -> dict[str, Any]:
    """At a million tokens the counts take seconds: computed at most once a minute (and after a
    deletion, check or revoke), not on every click. With the breakdown of the failing and
    unusable tokens by reason and data center."""
    conn = connection(settings)
    counts = data.overview(conn)
    counts["breakdown"] = conn.store.call("break down the tokens that need attention",
                                          lambda: health.breakdown(conn.tokens, counts["as_of"]))
    return counts


def recount() -> None:
    """After a deletion, check or revoke: the next Overview counts again."""
    cached_overview.clear()



