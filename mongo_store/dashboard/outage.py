"""When the database stops answering: the page says so once, names the database, keeps what it
last showed where it can, and comes back by itself.

The first read that finds the server unreachable (after the store's ``failover_wait``: at most one
timeout per rerun) puts the session in an outage (``begin``); from then on no page reads the
database: the app draws ``panel`` instead, whose fragment counts down ("reconnecting, next try in
N s") and, at zero, asks the server one bounded ``ping`` (about 3 s at most). When it answers, the
whole app runs again: the page is back without a click. A failure that is not an outage (refused
credentials, a refused request) is shown as the one sentence it is."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError

from ..core.errors import sentence
from ..core.masking import markdown_plain
from ..tools.words import plural
from . import cache, data
from .settings import Settings

RETRY = 5.0
"""Seconds between two tries while the server does not answer."""
UNREACHABLE = ("no MongoDB server reachable", "did not complete", "timed out", "connection to MongoDB was lost",
               "no primary in the MongoDB replica set")
"""How the store's errors word an outage (``core/errors.describe``), when the cause is not at hand."""


def unreachable(error: BaseException) -> bool:
    """Whether a store error says the server did not answer (rather than refused something)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, (ConnectionFailure, ExecutionTimeout, WTimeoutError)):
        return True
    return any(words in sentence(error) for words in UNREACHABLE)


def reason(error: BaseException) -> str:
    """What the driver met, without the action the page was taking ("could not read the data
    centers: no MongoDB server reachable within 15 s" is about the server, not the data centers)."""
    said = sentence(error)
    return said.split(": ", 1)[1] if said.startswith("could not ") and ": " in said else said


def begin(error: BaseException) -> None:
    """The session is in an outage from now: no page reads until a ping is answered."""
    state = st.session_state
    if not state.get("outage"):
        state["outage"] = {"since": time.time(), "reason": reason(error)}
    state["outage"]["next"] = time.monotonic() + RETRY
    state["outage"]["reason"] = reason(error)


def active() -> bool:
    return bool(st.session_state.get("outage"))


def end() -> None:
    st.session_state.pop("outage", None)


def where(settings: Settings) -> str:
    store = settings.store
    return f"{store.database}.{store.collection}"


def handle(error: BaseException, settings: Settings) -> None:
    """A store error reached a page: an outage starts (and the whole app runs again, now drawing
    the outage panel, with no other read); any other failure is shown as its sentence."""
    if unreachable(error):
        begin(error)
        st.rerun()
    st.error(markdown_plain(sentence(error)))  # it may quote a stored value


def panel(settings: Settings) -> None:
    """The outage, in words, and the countdown to the next try."""
    state = st.session_state["outage"]
    st.error(f"The database is unreachable: MongoDB ({markdown_plain(where(settings))}) did not answer: "
             f"{markdown_plain(state['reason'])}. Nothing is shown or changed until it answers again.", icon="🔌")
    reconnect(settings)


@st.fragment(run_every=1.0)
def reconnect(settings: Settings) -> None:
    """Every second: the countdown; at zero, one ping. Answered: the whole app runs again."""
    state: dict[str, Any] | None = st.session_state.get("outage")
    if not state:
        return
    left = state["next"] - time.monotonic()
    if left <= 0:
        if answered(settings):
            end()
            st.rerun()  # the whole app: the page comes back
        state["next"] = time.monotonic() + RETRY
        state["tries"] = state.get("tries", 0) + 1
        left = RETRY
    since = time.strftime("%H:%M:%S", time.gmtime(state["since"]))
    tries = state.get("tries", 0)
    so_far = f", {plural(tries, 'try', 'tries')} so far" if tries else ""
    st.markdown(f"<div class='reconnecting'>Reconnecting: next try in <b>{max(1, round(left))} s</b> "
                f"(unreachable since {since} UTC{so_far}). This page comes back by itself when the server answers."
                "</div>", unsafe_allow_html=True)


def answered(settings: Settings) -> bool:
    """One bounded probe: the connection (made now if the first one failed), then a ping."""
    try:
        return data.ping(cache.connection(settings))
    except Exception:
        return False
