"""The view in the URL (``st.query_params``): page, filters, sort, paging position and the
inspected token, so a reload (after sign-in) shows the same view and a link ``?token=ID`` opens
that token. The URL is read once per browser session, into the widgets' Session State before any
widget is drawn (a widget is never given a default beside its Session State value), and written
on every run, only where it changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import streamlit as st

from ..core.search import looks_secret
from ..tools import datacenters
from ..tools.audit import ACTIONS
from ..tools.health import BY_KEY
from ..tools.queries import SORTS

PAGES = ("Overview", "Tokens", "Lifecycle", "Audit")
HEALTHS = ("any", "attention", "healthy", "idle", "failing", "unusable")
SIZES = (25, 50, 100, 200)
FIRST: dict[str, Any] = {"go": "first", "cursor": None, "number": 1}
"""The paging position of a first page."""


def defaults() -> dict[str, Any]:
    """Each widget's Session State before the URL or a click changes it."""
    return {"page": "Overview", "search": "", "health": "any", "reason": "any", "domain": "any", "sort": "default",
            "descending": False, "page_size": 50, "position": dict(FIRST), "inspect": None,
            "audit_actor": "", "audit_token": "", "audit_action": "any", "audit_from": None, "audit_to": None,
            "audit_position": {"go": "first", "cursor": None}}


def restore(domains: Callable[[], list[str]]) -> None:
    """Once per session (after sign-in): the URL's view into Session State; a value that is not
    one of a control's choices is ignored (a link from an older dashboard, a hand-edited URL)."""
    state = st.session_state
    if state.get("url_restored"):
        return
    for key, value in defaults().items():
        state.setdefault(key, value)
    params = st.query_params
    page = str(params.get("page", "")).capitalize()
    if page in PAGES:
        state["page"] = page
    if params.get("token"):
        state["inspect"] = state["inspect_linked"] = str(params["token"])
        state["page"] = "Tokens" if page not in PAGES else page
    if "q" in params:
        state["search"] = str(params["q"])[:200]
    if params.get("health") in HEALTHS:
        state["health"] = params["health"]
    if params.get("reason") in BY_KEY:
        state["reason"] = params["reason"]
    if params.get("dc"):
        wanted = str(params["dc"])
        state["domain"] = next((d for d in domains() if wanted in (d, datacenters.name(d))), "any")
    if params.get("sort") in SORTS:
        state["sort"] = params["sort"]
    state["descending"] = params.get("desc") == "1"
    if str(params.get("size", "")).isdigit() and int(params["size"]) in SIZES:
        state["page_size"] = int(params["size"])
    if params.get("go") in ("next", "previous", "last"):
        number = str(params.get("n", ""))
        state["position"] = {"go": params["go"], "cursor": params.get("cursor") or None,
                             "number": int(number) if number.isdigit() and int(number) > 0 else 1}
    state["audit_actor"] = str(params.get("actor", ""))[:200]
    state["audit_token"] = str(params.get("atoken", ""))[:200]
    if params.get("action") in ACTIONS:
        state["audit_action"] = params["action"]
    for name, key in (("from", "audit_from"), ("to", "audit_to")):
        try:
            state[key] = date.fromisoformat(str(params.get(name, "")))
        except ValueError:
            pass
    if params.get("ago") in ("next", "previous") and params.get("acursor"):
        state["audit_position"] = {"go": params["ago"], "cursor": params["acursor"]}
    state["page_shows"] = shows()  # the restored position belongs to the restored filters
    state["url_restored"] = True  # (after the data centers were read: a failed read tries again)


def shows() -> tuple[Any, ...]:
    """The filters a paging position belongs to: another one starts again on the first page."""
    state = st.session_state
    return tuple(state.get(key) for key in ("search", "health", "reason", "domain", "sort", "descending", "page_size"))


def tokens_view() -> dict[str, str]:
    """The Tokens page's view as URL parameters (only what differs from the defaults)."""
    state, params = st.session_state, {"page": "tokens"}
    position = state.get("position") or FIRST
    search = str(state.get("search") or "").strip()
    if looks_secret(search):  # refused by the search, and never kept in the address bar
        search = ""
    domain = state.get("domain")
    for name, value, default in (("q", search, ""), ("health", state.get("health"), "any"),
                                 ("reason", state.get("reason"), "any"),
                                 ("dc", datacenters.name(domain) if domain not in (None, "any") else "any", "any"),
                                 ("sort", state.get("sort"), "default"),
                                 ("desc", "1" if state.get("descending") else "", ""),
                                 ("size", str(state.get("page_size") or 50), "50"),
                                 ("go", position["go"], "first"), ("cursor", position.get("cursor") or "", ""),
                                 ("n", str(position.get("number") or 1), "1"),
                                 ("token", state.get("inspect") or "", "")):
        if value != default:
            params[name] = str(value)
    return params


def audit_view() -> dict[str, str]:
    state, params = st.session_state, {"page": "audit"}
    position = state.get("audit_position") or {}
    for name, value in (("actor", str(state.get("audit_actor") or "").strip()),
                        ("atoken", str(state.get("audit_token") or "").strip()),
                        ("action", state.get("audit_action") if state.get("audit_action") in ACTIONS else ""),
                        ("from", state["audit_from"].isoformat() if isinstance(state.get("audit_from"), date) else ""),
                        ("to", state["audit_to"].isoformat() if isinstance(state.get("audit_to"), date) else ""),
                        ("ago", position.get("go") if position.get("cursor") else ""),
                        ("acursor", position.get("cursor") or "")):
        if value:
            params[name] = value
    return params


def write(params: dict[str, str]) -> None:
    """Put this view in the URL, only if it changed (each change is a message to the browser)."""
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
