"""How a grid of cells writes its numbers: one format for a family of values (e.g. all of δ), so
related grids write numbers alike, with a shared ×10ⁿ scale given once beside the grid.

The conv stepper's grids (:meth:`CellFormat.for_values`) have cells wide enough for "-11.54"; the
pooling view's small maps (tiny8x8's ~35-px cells) take :meth:`CellFormat.compact`: two significant
digits of the largest value ("0.52", "-5.2", "12").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class CellFormat:
    """How one grid writes its numbers: exactly when they are short decimals (4, 0.5), else with two
    decimals, values under 1 (and from 1000) after dividing by a shared 10**exponent that puts the
    largest between 10 and 100: a kernel of 0.1154 … -0.003246 is written -11.54 … -0.32 with "×10⁻²" in
    the subtitle, so every value down to a hundredth of the largest keeps its sign and two significant
    digits (at one fixed scale, -0.003246 was "0.00")."""

    decimals: int
    exponent: int
    exact: bool  # every value is written exactly: drop trailing zeros (0.5, not 0.50)

    @classmethod
    def for_values(cls, values: np.ndarray) -> "CellFormat":
        """The format for a family of ``values`` (any shape, e.g. all of δ), so related grids write
        numbers alike."""
        finite = values[np.isfinite(values)]
        m = float(np.abs(finite).max()) if finite.size else 0.0
        for decimals in (0, 1, 2):
            if m < 1e4 and np.allclose(finite, np.round(finite, decimals), rtol=0, atol=1e-9):
                return cls(decimals, 0, True)
        if m < 1 or m >= 1000:
            return cls(2, int(math.floor(math.log10(m))) - 1, False)
        return cls(2 if m < 10 else 1 if m < 100 else 0, 0, False)

    @classmethod
    def compact(cls, values: np.ndarray) -> "CellFormat":
        """A short format for small cells: two significant digits of the largest value, scaled by
        10**exponent when it is under 0.1 (0.0027 … 0.00016 become 2.7 … 0.2 with "×10⁻³"); exact
        zeros are the caller's to write as "0". "0.00016" and "0.0069" spilled out of their cells."""
        finite = values[np.isfinite(values)]
        m = float(np.abs(finite).max()) if finite.size else 0.0
        if m == 0:
            return cls(0, 0, True)
        if m < 0.1:
            return cls(1, int(math.floor(math.log10(m))), False)
        return cls(2 if m < 1 else 1 if m < 10 else 0, 0, False)

    def text(self, v: float) -> str:
        text = f"{v / 10.0 ** self.exponent:.{self.decimals}f}"
        if self.exact and "." in text:
            text = text.rstrip("0").rstrip(".")
        # "-0" only from a true zero (0·(-2) is -0.0); a tiny negative keeps its sign: "-0.00"
        return text[1:] if text.startswith("-") and v == 0 else text

    def factor(self, v: float) -> str:
        """``v`` as a factor of a formula that gives this format's ×10ⁿ once: as :meth:`text` (as its cell
        writes it) unless that would read as zero for a value that is not, then with 3 significant digits
        at the same scale (0.0045 is "0.0045", not the "0.00" of a 2-decimal cell, which a 28×28 grid does
        not even show)."""
        text = self.text(v)
        if v == 0 or not math.isfinite(v) or float(text) != 0:
            return text
        return f"{v / 10.0 ** self.exponent:.3g}"

    def suffix(self) -> str:
        """``×10⁻³`` when the numbers are scaled, else ''."""
        return f"×10{str(self.exponent).translate(_SUPERSCRIPT)}" if self.exponent else ""

    def alone(self, v: float) -> str:
        """``v`` written where no grid subtitle gives the scale: as :meth:`text` when the numbers are
        not scaled, else in its own scientific notation (``6.10×10⁻⁷``; the family's ×10⁻⁴ would
        write it 0.01)."""
        if not self.exponent or v == 0 or not math.isfinite(v):
            return self.text(v)
        mantissa, exponent = f"{v:.2e}".split("e")
        return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"
