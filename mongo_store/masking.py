"""How a secret is shown to a person: at most its last four characters, in every tool we ship."""

from __future__ import annotations

from typing import Any

from .crypto import is_sealed
from .mapping import SECRET_FIELDS

MASK = "••••"


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
