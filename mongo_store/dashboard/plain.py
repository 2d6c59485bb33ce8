"""Stored text as a person reads it on a page: plain (Markdown marks escaped, control characters
shown escaped), a bare URL or ``www.`` name never turned into a link, and one mark for a value that
is missing."""

from __future__ import annotations

import re
from typing import Any

from ..core.masking import markdown_plain

MISSING = "—"
"""The one mark for a missing value (no user name, never refreshed), everywhere in the dashboard."""
_AUTOLINK = re.compile(r"(?i)\\:(?=//)|(?<=www)\\\.")
"""Where Streamlit's Markdown (GitHub's autolinks) would start a link in escaped text: the colon of
``scheme://`` and the dot of ``www.``. Written as character references (``&#58;``, ``&#46;``) they
show as the same characters, and copy as them, but no longer spell a link to the Markdown parser."""


def plain(value: Any) -> str:
    """``value`` for a Markdown place (a table cell, a caption, a message): exactly its text."""
    if value is None or value == "":
        return MISSING
    escaped = markdown_plain(value).replace("&", "\\&")  # a stored "&lt;" is that text, not "<"
    return _AUTOLINK.sub(lambda found: "&#58;" if found.group() == "\\:" else "&#46;", escaped)
