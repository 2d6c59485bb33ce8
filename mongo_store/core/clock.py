"""The one form dates are compared in: naive UTC, as pymongo returns stored dates by default."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any


def utcnow() -> datetime:
    """Now, as naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def utc_naive(value: Any) -> Any:
    """A date as naive UTC (a ``tz_aware`` client returns aware ones); anything else as it is."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None) - (value.utcoffset() or timedelta(0))
    return value
