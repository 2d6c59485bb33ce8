"""How stored values are shown to a person: a secret as at most its last four characters, any
value as plain text (a terminal gets control characters escaped, Markdown gets its marks escaped),
so a stored value can never forge an output line or render as a link, and a date as ISO 8601 UTC
and how long ago."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from .clock import utc_naive
from .crypto import is_sealed
from .mapping import SECRET_FIELDS

MASK = "••••"
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def printable(value: Any) -> str:
    """A value for a terminal line: every character Python does not call printable shown escaped,
    as ``repr`` writes it: control characters (newlines, tabs, ANSI escapes), bidirectional
    overrides and isolates (``\u202e`` makes ``exe.png`` read as ``gnp.exe``), zero-width and
    line-separator characters, spaces other than the plain one. So a stored value can never move
    the cursor, forge a line or a column, or read as something else."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else repr(character)[1:-1] for character in text)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""How a cell starts that a spreadsheet would run as a formula (OWASP's CSV injection list)."""


def spreadsheet_safe(text: str) -> str:
    """A cell of a file a person opens in a spreadsheet (the dashboard's CSV, the CLI's TSV):
    text a spreadsheet would run as a formula (a hand-made user name ``=HYPERLINK(...)``) goes
    behind a leading ``'``, so a stored value is data, never code."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def markdown_plain(value: Any) -> str:
    """A value placed in Markdown (a Streamlit label or message) that renders as the text itself."""
    return _MARKDOWN.sub(r"\\\1", printable(value))


def mask(value: str | None) -> str | None:
    """``••••a1b2`` for a long secret, ``••••`` for a short one (too little left to hide)."""
    if value is None:
        return None
    if is_sealed(value):
        return MASK + " (encrypted)"
    return MASK + value[-4:] if len(value) >= 16 else MASK


def is_masked(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MASK)


def masked(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a token record with every secret field masked."""
    return {key: mask(value) if key in SECRET_FIELDS else value for key, value in record.items()}


def ago(when: datetime, now: datetime | None = None) -> str:
    """``3 d ago``, ``in 12 min``: how a person reads a date next to now."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    seconds = (utc_naive(when) - now).total_seconds()
    size = abs(seconds)
    for unit, length in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if size >= length:
            amount = f"{int(size // length)} {unit}"
            break
    else:
        amount = f"{int(size)} s"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def iso(when: Any) -> str | None:
    """A stored date as ISO 8601 UTC (``2026-11-23T20:15:00Z``); None for anything else."""
    if not isinstance(when, datetime):
        return None
    return utc_naive(when).isoformat(timespec="seconds") + "Z"
