"""Counts in words, as a person reads them: "1 token", "3 tokens", "1 day" (never "1 tokens")."""

from __future__ import annotations


def plural(count: int | float, word: str, words: str | None = None) -> str:
    """``count`` and the word in the form the count takes: ``plural(1, "token")`` is "1 token",
    ``plural(2, "entry", "entries")`` "2 entries". Whole numbers print with thousands separators."""
    shown = f"{count:,}" if isinstance(count, int) or float(count).is_integer() else f"{count:g}"
    if isinstance(count, float) and count.is_integer():
        shown = f"{int(count):,}"
    return f"{shown} {word if count == 1 else (words or word + 's')}"
