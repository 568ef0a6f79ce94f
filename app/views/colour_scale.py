"""Colour scales: the colour maps and levels values are drawn with, and the colour bar beside an image.

The maps: diverging blue-white-red for signed values, viridis for non-negative ones, grey for input
images; the levels a map is drawn with (``symmetric_levels``, ``value_levels``, and ``steady_levels``
for live maps, so their scale does not change at every update); ``fmt``, the short text of a value in
hover read-outs and labels.

The colour bar, ``ColourScale``: the colour map as a vertical gradient, its levels as ticks. It replaces
pyqtgraph's ``ColorBarItem``, whose axis regenerates and lays out its tick texts again
(2-3 ms) whenever the levels change, i.e. on every live update of a map whose scale follows its
values (the kernels: +11 ms per refresh for four layers). Here new levels only re-make a few strings:
the width is fixed, the paint is one image, a few lines and texts, and the scene calls no Python
``boundingRect`` for it (an axis is several Python items the scene asks about at every paint).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.widgets import signed

# ColorBrewer RdBu (reversed): negative = blue, zero = white, positive = red.
_DIVERGING_COLORS = [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)]


@lru_cache(maxsize=None)
def diverging_cmap() -> pg.ColorMap:
    """Blue-white-red colormap; use it with symmetric levels so white means exactly zero."""
    return pg.ColorMap(np.linspace(0.0, 1.0, len(_DIVERGING_COLORS)), _DIVERGING_COLORS)


@lru_cache(maxsize=None)
def sequential_cmap() -> pg.ColorMap:
    """Perceptually uniform colormap for values that are never negative (e.g. after ReLU)."""
    return pg.colormap.get("viridis")


@lru_cache(maxsize=None)
def grey_cmap() -> pg.ColorMap:
    """Black-to-white, for input images (MNIST digits are white strokes on black)."""
    return pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)])


def symmetric_levels(a: np.ndarray) -> tuple[float, float]:
    """(-m, m) with m = max|a| over the finite values of ``a`` (any shape); (-1, 1) when a is all zero or empty,
    so a constant array never produces the degenerate levels ImageItem would auto-pick."""
    m = float(np.nanmax(np.abs(a))) if a.size else 0.0
    if not np.isfinite(m) or m == 0.0:
        m = 1.0
    return -m, m


def value_levels(a: np.ndarray) -> tuple[float, float]:
    """Levels for showing activations ``a`` (any shape): (0, max) when nothing is negative, else symmetric."""
    lo = float(np.nanmin(a)) if a.size else 0.0
    if lo < 0 or not np.isfinite(lo):
        return symmetric_levels(a)
    hi = float(np.nanmax(a))
    return 0.0, hi if hi > 0 else 1.0


HEADROOM = 1.1  # a new colour scale reaches 10% beyond the values, so slow growth does not change it at once


def steady_levels(levels: tuple[float, float], shown: tuple[float, float] | None) -> tuple[float, float]:
    """The colour levels to draw a map with, given ``levels`` fitted to its values (``(0, hi)`` or
    symmetric ``(-m, m)``, e.g. from ``value_levels``) and the levels ``shown`` until now (None: none yet).
    Keeps ``shown`` while the values fit in it and fill at least half of it (same kind of scale);
    otherwise the fitted levels with HEADROOM. For live maps: a colour bar whose levels stay is not laid
    out again (its axis is most of a map's repaint cost), and colours stay comparable between updates."""
    lo, hi = levels
    if shown is not None and (lo < 0) == (shown[0] < 0) and 0.5 * shown[1] <= hi <= shown[1]:
        return shown
    return (lo * HEADROOM if lo < 0 else lo), hi * HEADROOM


def cmap_for_levels(levels: tuple[float, float]) -> pg.ColorMap:
    """Diverging for signed (symmetric) levels, sequential for non-negative ones."""
    return diverging_cmap() if levels[0] < 0 else sequential_cmap()


def fmt(v: float) -> str:
    """Short, readable number for hover text and labels (4 significant digits, a real minus sign)."""
    return signed(v + 0.0, ".4g")  # + 0.0 turns -0 into 0


def percent(p: float, decimals: int = 1) -> str:
    """A probability or share ``p`` in [0, 1] as a percentage with ``decimals`` decimals that says 100%
    or 0% only when it is exactly that: a wrong prediction at 0.9956 was shown as "100%"."""
    step = 10.0 ** -decimals
    shown = round(100.0 * p, decimals)
    if p < 1 and shown >= 100:
        return f">{100 - step:.{decimals}f}%"
    if p > 0 and shown <= 0:
        return f"<{step:.{decimals}f}%"
    return f"{shown:.{decimals}f}%"


BAR_WIDTH = 12      # px of gradient
TICK_LENGTH = 4     # px, from the bar's right edge
TEXT_GAP = 2        # px between a tick and its text
MAX_TICKS = 6
# Tick values this large or this small are shown as mantissas and the label gets the power of ten,
# so the reserved text width ("-0.075", "-2500") fits every scale.
SCALED_BELOW, SCALED_FROM = 0.1, 1e4


def nice_ticks(lo: float, hi: float, max_ticks: int = MAX_TICKS) -> tuple[np.ndarray, int]:
    """Round tick values ``(n,)`` within [lo, hi] (a step of 1, 2, 2.5 or 5 times a power of ten giving
    at most ``max_ticks`` ticks) and the decimals that step needs. Degenerate or non-finite ranges: no ticks."""
    span = hi - lo
    if not (math.isfinite(lo) and math.isfinite(hi)) or span <= 0:
        return np.zeros(0), 0
    smallest = span / max(max_ticks - 1, 1)  # the step giving max_ticks ticks when lo is on one
    power = math.floor(math.log10(smallest))
    mantissa = next(m for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * 10.0 ** power >= smallest * (1 - 1e-9))
    step = mantissa * 10.0 ** power
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    decimals = max(0, -power - (mantissa == 10.0)) + (mantissa == 2.5 and power <= 0)
    return np.arange(first, last + 1) * step, decimals


def scale_exponent(lo: float, hi: float) -> int:
    """The power of ten the tick values are divided by (0: shown as they are)."""
    m = max(abs(lo), abs(hi))
    if not math.isfinite(m) or m == 0.0 or SCALED_BELOW <= m < SCALED_FROM:
        return 0
    return math.floor(math.log10(m))


def tick_labels(lo: float, hi: float, max_ticks: int = MAX_TICKS) -> tuple[list[tuple[float, str]], int]:
    """``[(value, text), ...]`` for the levels (lo, hi) and the power of ten the texts are scaled by."""
    exponent = scale_exponent(lo, hi)
    factor = 10.0 ** exponent
    values, decimals = nice_ticks(lo / factor, hi / factor, max_ticks)
    return [(v * factor, f"{v + 0.0:.{decimals}f}") for v in values], exponent


class ColourScale(QtWidgets.QGraphicsWidget):
    """Vertical colour bar: the gradient of a ``pg.ColorMap`` from ``lo`` (bottom) to ``hi`` (top), tick
    texts on its right and an optional rotated label ("weight", with "(×1e-05)" when scaled).
    Width fixed; the height is set by the panel (``set_height``) and decides how many ticks fit."""

    def __init__(self, cmap: pg.ColorMap, label: str | None = None) -> None:
        super().__init__()
        self._label = label or ""
        self._levels = (0.0, 1.0)
        self._ticks_for: tuple | None = None  # (levels, max ticks) the ticks below were made for
        self._ticks: list[tuple[float, str]] = []
        self._title = self._label
        self._fitted: tuple = (None, None, "")  # (title, height, the title as painted at that height)
        self._gradient = QtGui.QImage()
        self._colour = pg.mkColor(pg.getConfigOption("foreground"))
        metrics = QtGui.QFontMetricsF(self.font())
        self._text_height = metrics.height()
        self._text_width = metrics.horizontalAdvance("-0.075")
        width = BAR_WIDTH + TICK_LENGTH + TEXT_GAP + self._text_width + (self._text_height + 4 if label else 2)
        self.setMinimumWidth(width)
        self.setMaximumWidth(width)
        self.setColorMap(cmap)

    def setColorMap(self, cmap: pg.ColorMap) -> None:  # noqa: N802 (the name ColorBarItem had)
        lut = cmap.getLookupTable(nPts=256, alpha=True)[::-1]                 # (256, 4) uint8, top = hi
        self._gradient = QtGui.QImage(np.ascontiguousarray(lut).tobytes(), 1, 256,
                                      QtGui.QImage.Format.Format_RGBA8888).copy()
        self.update()

    def setLevels(self, levels: tuple[float, float]) -> None:  # noqa: N802
        levels = (float(levels[0]), float(levels[1]))
        if levels != self._levels:
            self._levels = levels
            self.update()

    def levels(self) -> tuple[float, float]:
        return self._levels

    def set_height(self, height: float) -> None:
        self.setMinimumHeight(height)
        self.setMaximumHeight(height)

    def ticks(self) -> list[tuple[float, str]]:
        """``[(value, text), ...]`` shown for the current levels and height."""
        max_ticks = int(np.clip(self._bar_rect().height() // (1.6 * self._text_height), 2, MAX_TICKS))
        key = (self._levels, max_ticks)
        if key != self._ticks_for:
            self._ticks_for = key
            self._ticks, exponent = tick_labels(*self._levels, max_ticks)
            self._title = self._label + (f" (×1e{exponent:+03d})" if exponent else "")
        return self._ticks

    def title(self) -> str:
        """The label as shown, with the power of ten the tick texts are scaled by."""
        self.ticks()
        return self._title

    def fitted_title(self) -> str:
        """The title as painted: along the whole height of the bar, the label shortened with "…" when
        the bar is too short for it (small plots), the power of ten always kept."""
        title, room = self.title(), self.size().height()
        if self._fitted[:2] != (title, room):  # measured once per title and height, not at every paint
            metrics = QtGui.QFontMetricsF(self.font())
            fitted = title
            if metrics.horizontalAdvance(title) > room:
                power = title[len(self._label):]
                fitted = metrics.elidedText(self._label, QtCore.Qt.TextElideMode.ElideRight,
                                            room - metrics.horizontalAdvance(power)) + power
            self._fitted = (title, room, fitted)
        return self._fitted[2]

    def _bar_rect(self) -> QtCore.QRectF:
        # Half a text line above and below, so the end ticks' texts stay inside the widget.
        inset = self._text_height / 2
        return QtCore.QRectF(0.5, inset, BAR_WIDTH, max(self.size().height() - 2 * inset, 1.0))

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        bar = self._bar_rect()
        painter.drawImage(bar, self._gradient)
        painter.setPen(QtGui.QPen(self._colour, 0))
        painter.drawRect(bar)
        lo, hi = self._levels
        x_tick = bar.right() + TICK_LENGTH
        for value, text in self.ticks():
            y = bar.bottom() - (value - lo) / (hi - lo) * bar.height()
            painter.drawLine(QtCore.QPointF(bar.right(), y), QtCore.QPointF(x_tick, y))
            painter.drawText(QtCore.QRectF(x_tick + TEXT_GAP, y - self._text_height / 2, self._text_width,
                                           self._text_height),
                             QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter, text)
        title = self.fitted_title()
        if title:
            room = self.size().height()
            painter.save()
            painter.translate(self.size().width() - 2, room / 2)
            painter.rotate(-90)  # reads bottom to top, as an axis label
            painter.drawText(QtCore.QRectF(-room / 2, -self._text_height, room, self._text_height),
                             QtCore.Qt.AlignmentFlag.AlignCenter, title)
            painter.restore()
