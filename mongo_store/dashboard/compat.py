"""What differs between the Streamlit versions the dashboard runs on (1.42 to the newest), found
by looking at the installed Streamlit's signatures, never by its version number."""

from __future__ import annotations

import inspect
from typing import Any

import streamlit as st


def _takes_stretch(function: Any) -> bool:
    """Whether ``width`` accepts ``"stretch"`` (1.42's ``width`` is a number of pixels)."""
    parameter = inspect.signature(function).parameters.get("width")
    return parameter is not None and "int" not in str(parameter.annotation).split("|")[0]


STRETCH: dict[str, Any] = {"width": "stretch"} if _takes_stretch(st.dataframe) else {"use_container_width": True}
"""A grid as wide as its container, without ``use_container_width`` where it is deprecated."""
BUTTON_STRETCH: dict[str, Any] = {"width": "stretch"} if _takes_stretch(st.button) else {"use_container_width": True}
DIALOG_DISMISS = "on_dismiss" in inspect.signature(st.dialog).parameters
"""Streamlit 1.46+ reruns when a dialog is dismissed (× or Esc); 1.42-1.45 close it in the browser only."""
GRID_DEFAULT = "selection_default" in inspect.signature(st.dataframe).parameters
"""Newer Streamlit can show ticks it did not receive from the browser (a re-keyed grid's ticks)."""


def _cell_selection() -> bool:
    """Whether ``st.dataframe`` selects single cells (Streamlit 1.4x+): then a click on a row's cell
    opens it in Inspect; before, a tick in the row's marker does."""
    try:
        from streamlit.elements import arrow
    except ImportError:
        return False
    return "single-cell" in getattr(arrow, "_SELECTION_MODES", ())


CELL_CLICK = _cell_selection()


def page_script(html: str) -> None:
    """Run a script of ours in the page's own origin, in a frame of no height: ``st.iframe`` where
    it exists (``components.html`` is deprecated there), ``components.html`` before it. Never
    given text from a user or the database."""
    if hasattr(st, "iframe"):
        try:
            st.iframe(html, height=1)
            return
        except Exception:  # an older st.iframe that takes URLs only
            pass
    import streamlit.components.v1 as components

    components.html(html, height=0)
