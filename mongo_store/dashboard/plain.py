"""Stored text as a person reads it on a page: plain (Markdown marks escaped, control characters
shown escaped), a bare URL or ``www.`` name never turned into a link, and one mark for a value that
is missing."""

from __future__ import annotations

import re
from typing import Any

from ..core.masking import markdown_plain

MISSING = "—"
"""The one mark for a missing value (no user name, never refreshed), everywhere in the dashboard."""
_AUTOLINK = re.compile(r"(?i)(?<=\\:)(?=//)|(?<=www)(?=\\\.)")
"""Where Streamlit's Markdown would turn stored text into a link (GitHub's autolinks: ``scheme://``
and ``www.``). Its parser finds them in the text after escapes and character references are
decoded, so only a different character stops it: a word joiner (U+2060, invisible, no width)
between the colon and ``//``, and between ``www`` and its dot."""


def plain(value: Any) -> str:
    """``value`` for a Markdown place (a table cell, a caption, a message): exactly its text."""
    if value is None or value == "":
        return MISSING
    escaped = markdown_plain(value).replace("&", "\\&")  # a stored "&lt;" is that text, not "<"
    return _AUTOLINK.sub("\u2060", escaped)
