"""How the command line shows stored things to a person: plain text, one line each, control
characters escaped (a stored value never moves the cursor or forges a line), dates in UTC with how
long ago. (Imported by commands as they run: parsing imports nothing heavy.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..core.masking import ago, iso, printable


def when(value: Any) -> str:
    """A date for a table cell: ISO 8601 UTC and how long ago (or from now)."""
    return f"{iso(value)} ({ago(value)})" if isinstance(value, datetime) else ""


def event_line(event: dict[str, Any]) -> str:
    """One event of a token's history for a person: when, what, the sentence, and who."""
    return "  ".join(printable(cell) for cell in (iso(event.get("at")) or "", f"{event.get('event', ''):<14}",
                                                  event.get("detail") or "", f"({event.get('who') or 'unknown'})"))
