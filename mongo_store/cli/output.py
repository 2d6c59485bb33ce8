"""How the command line shows stored things to a person: plain text, one line each, control
characters escaped (a stored value never moves the cursor or forges a line), dates in UTC with how
long ago. (Imported by commands as they run: parsing imports nothing heavy.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..core.masking import ago, iso, printable, spreadsheet_safe


def rows(table: list[list[Any]], *, tsv: bool = False) -> list[str]:
    """A table's lines, every cell as plain text (``printable``: a stored tab or newline is shown
    escaped, so no cell forges a column or a line): tab-separated, a cell a spreadsheet would run
    as a formula behind a ``'`` (a TSV file is opened in one), or aligned columns with the last one
    left ragged. Every table the CLI prints passes through here."""
    cells = [[printable(cell) for cell in row] for row in table]
    if tsv:
        return ["\t".join(spreadsheet_safe(cell) for cell in row) for row in cells]
    widths = [max(len(row[n]) for row in cells) for n in range(len(cells[0]))] if cells else []
    return ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)) + "  " + row[-1]
            for row in cells]


def when(value: Any) -> str:
    """A date for a table cell: ISO 8601 UTC and how long ago (or from now)."""
    return f"{iso(value)} ({ago(value)})" if isinstance(value, datetime) else ""


def event_line(event: dict[str, Any]) -> str:
    """One event of a token's history for a person: when, what, the sentence, and who."""
    return "  ".join(printable(cell) for cell in (iso(event.get("at")) or "", f"{event.get('event', ''):<14}",
                                                  event.get("detail") or "", f"({event.get('who') or 'unknown'})"))
