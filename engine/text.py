"""Wording shared by the CLI's, the engine's and the app's texts."""
from __future__ import annotations


def plural(n: int, word: str) -> str:
    """``n`` and the regular noun ``word``, singular for exactly one: "1 step", "0 steps", "2 steps"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def elide(items: list[str], keep: list[int] | None) -> list[str]:
    """``items`` at the indices ``keep`` (in order), with "…" where items are skipped; all for None."""
    if keep is None:
        return list(items)
    out, previous = [], -1
    for i in keep:
        if i > previous + 1:
            out.append("…")
        out.append(items[i])
        previous = i
    return out + (["…"] if previous < len(items) - 1 else [])
