"""Counted nouns in messages: "1 divergence", "2 divergences" (never "1 divergences")."""

from __future__ import annotations


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number ``n`` takes; ``plural`` defaults to singular + "s"."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
