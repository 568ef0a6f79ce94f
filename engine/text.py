"""Wording shared by the CLI's and the app's messages."""
from __future__ import annotations


def plural(n: int, word: str) -> str:
    """``n`` and the regular noun ``word``, singular for exactly one: "1 step", "0 steps", "2 steps"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
