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
