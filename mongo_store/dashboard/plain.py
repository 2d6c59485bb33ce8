"""Stored text as a person reads it on a page: plain (Markdown marks escaped, control characters
shown escaped), a bare URL or ``www.`` name never turned into a link, and one mark for a value that
is missing."""

from __future__ import annotations

import re
from typing import Any

from ..core.masking import markdown_plain

MISSING = "—"
"""The one mark for a missing value (no user name, never refreshed), everywhere in the dashboard."""
_AUTOLINK = re.compile(r"(?i)(\\:)(/)|(www)(\\\.)")
"""Where Streamlit's Markdown (GitHub's autolinks) would start a link in escaped text: ``scheme\\://``
and ``www\\.``; a word joiner (U+2060, invisible) between the two parts stops it."""


def plain(value: Any) -> str:
    """``value`` for a Markdown place (a table cell, a caption, a message): exactly its text."""
    if value is None or value == "":
        return MISSING
    return _AUTOLINK.sub(lambda found: (found.group(1) or found.group(3)) + "\u2060" + (found.group(2) or found.group(4)),
                         markdown_plain(value))
