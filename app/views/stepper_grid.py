"""Number grids for the conv stepper, painted with QPainter: one matrix of cells per :class:`GridSpec`.

A grid is drawn in one of two modes, chosen by the cell size the layout can afford:

- *numbers* (cells >= ``CELL_NUMBERS`` px): every cell coloured by value (diverging blue-white-red,
  white = 0) with its number, its symbol (``a23``, ``δ11``) in the corner when there is room, and in
  the highlighted window the factor the cell is multiplied by (``×w22``'s value, in red, as in the
  animation seed 001 describes);
- *heatmap* (smaller cells, e.g. a 28x28 input): colours only, drawn as one scaled QImage; the numbers
  are in the tooltip (:meth:`PlacedGrid.describe`).

In both modes zeros inserted by padding or dilation are hatched grey (they are not data), cells not
computed yet are empty, the window being read has an amber outline, the cell being written a green one.
Nothing here knows about convolutions: ``app.views.conv_stepper_scene`` builds the specs.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PySide6 import QtCore, QtGui

from app.views.cell_format import CellFormat
from app.views.colour_scale import diverging_cmap
from app.views.tones import dark_reads_better
from app.views.widgets import signed, text_scale

CELL_MAX = 100       # px: small grids (kernels, worked examples) are drawn at this cell size
CELL_NUMBERS = 42    # px: below this a grid is drawn as a heatmap (numbers would not be legible)
CELL_SYMBOLS = 46    # px: from this size the cell's symbol is written in its corner
TITLE_H = 40         # px above a grid: title and subtitle
CAPTION_H = 34       # px below a grid: up to two lines of caption
SLOT_MIN_W = 150     # px: a grid's slot is at least this wide so its title fits
SMALL_GRID = 10      # grids up to this many rows and columns (kernels) keep readable cells ...
SMALL_CELL = 56      # px ... of at least this size while there is room, the big grids shrink first

BACKGROUND = QtGui.QColor("#eef0f3")
EMPTY_FILL = QtGui.QColor("#fbfbfc")
PENDING_FILL = QtGui.QColor("#d8dee6")   # heatmap cells not computed yet (white would read as 0)
EMPTY_BORDER = QtGui.QColor("#c3c9d1")
CELL_BORDER = QtGui.QColor("#8f99a5")
INSERTED_FILL = QtGui.QColor("#c9cdd3")
INSERTED_HATCH = QtGui.QColor("#7d8590")
INSERTED_TEXT = QtGui.QColor("#4a525c")
READ_COLOR = QtGui.QColor("#ff8f00")
WRITE_COLOR = QtGui.QColor("#00a152")
PARTNER_COLOR = QtGui.QColor("#c2185b")
INNER_COLOR = QtGui.QColor("#5e35b1")
TEXT_DARK = QtGui.QColor("#1b1f24")
TEXT_LIGHT = QtGui.QColor("#ffffff")
CELL_DARK = QtGui.QColor("#000000")  # numbers on a cell: black or white reads at >= 4.58:1 on any colour
MUTED = QtGui.QColor("#56606b")


@lru_cache(maxsize=None)
def _lut() -> np.ndarray:
    """(256, 3) uint8 colours of the shared diverging map (blue < 0, white = 0, red > 0)."""
    return diverging_cmap().getLookupTable(0.0, 1.0, 256, alpha=False)


def colour_indices(values: np.ndarray, scale: float) -> np.ndarray:
    """LUT indices (int, same shape) for values in [-scale, scale]; NaN maps to the white middle."""
    t = np.nan_to_num((values / scale + 1.0) * 0.5, nan=0.5)
    return np.clip(np.rint(t * 255), 0, 255).astype(np.intp)


def cell_rgb(value: float, scale: float) -> tuple[int, int, int]:
    """The colour of one value on a grid whose colours span [-scale, scale]."""
    return tuple(int(c) for c in _lut()[colour_indices(np.asarray(value, dtype=np.float64), scale)])


def text_colour(rgb) -> QtGui.QColor:
    """Dark or white text on a cell of colour ``rgb: (>= 3,)``, whichever contrasts more (WCAG)."""
    return CELL_DARK if dark_reads_better(rgb[:3], CELL_DARK) else TEXT_LIGHT


@dataclass
class GridSpec:
    """One matrix to draw. ``values``: (rows, cols) float64, NaN where nothing is computed yet;
    colours span ``[-scale, scale]``. ``inserted``: (rows, cols) bool, zeros inserted by padding or
    dilation. ``fmt``: how numbers are written (shared by a family of grids, e.g. δ and padded δ).
    ``symbols``: (rows, cols) cell names (``"a23"``), '' for none: ``symbols[r][c]``.
    ``window``: ``(r0, r1, c0, c1)`` (end-exclusive) read at this step; ``written``: ``(r, c)``;
    ``partners``: ``{(r, c): (factor, inserted)}`` for the window's cells (inserted: the factor is an
    inserted zero); ``inner``: ``(r0, r1, c0, c1)``
    a dashed outline (the unpadded input, the region kept by the crop); ``dim_outside``: fade the
    cells outside ``inner`` (they are about to be dropped). ``mirror``: ``"vertical"`` or ``"horizontal"``,
    the axis this grid was flipped in, drawn as a dashed line with a double arrow beside the grid.
    ``faded``: (rows, cols) bool, cells drawn faded (running sums the current pass has not reached).
    ``tooltip``: title and subtitle in words, for hovering them (the subtitle is short: slots are narrow).
    For a grid of sums built over several steps: ``partial(r, c)`` names the terms cell (r, c) holds so far
    when that is only part of its sum (None when it is complete), ``complete``: (rows, cols) the complete
    sums, so a tooltip never passes a part off as the whole."""

    key: str
    title: str
    subtitle: str
    values: np.ndarray
    scale: float
    fmt: CellFormat
    inserted: np.ndarray
    symbols: Sequence
    window: tuple | None = None
    written: tuple | None = None
    partners: dict = field(default_factory=dict)
    inner: tuple | None = None
    dim_outside: bool = False
    caption: str = ""
    mirror: str | None = None
    faded: np.ndarray | None = None
    tooltip: str = ""
    partial: Callable[[int, int], str | None] | None = None
    complete: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape


@dataclass
class PlacedGrid:
    """A grid laid out on the canvas: ``rect`` is the cell area, ``cell`` the cell size in px,
    ``room`` the band (left, right) its texts may use: up to halfway to its neighbours."""

    spec: GridSpec
    rect: QtCore.QRectF
    cell: float
    room: tuple[float, float]

    @property
    def mode(self) -> str:
        """``"numbers"`` or ``"heatmap"``."""
        return "numbers" if self.cell >= CELL_NUMBERS else "heatmap"

    def cell_rect(self, r: int, c: int, rows: int = 1, cols: int = 1) -> QtCore.QRectF:
        return QtCore.QRectF(self.rect.left() + c * self.cell, self.rect.top() + r * self.cell,
                             cols * self.cell, rows * self.cell)

    def cell_at(self, point: QtCore.QPointF) -> tuple[int, int] | None:
        if not self.rect.contains(point):
            return None
        r = int((point.y() - self.rect.top()) // self.cell)
        c = int((point.x() - self.rect.left()) // self.cell)
        rows, cols = self.spec.shape
        return (r, c) if 0 <= r < rows and 0 <= c < cols else None

    def describe(self, r: int, c: int) -> str:
        """Tooltip text of one cell: its name, full-precision value and what kind of number it is."""
        spec = self.spec
        name = spec.symbols[r][c] or f"{spec.key}[{r + 1},{c + 1}]"
        v = spec.values[r, c]
        if spec.inserted[r, c]:
            return f"{name}: 0 — a zero inserted by padding/dilation (not data)"
        if not np.isfinite(v):
            return f"{name}: not computed yet"
        part = spec.partial(r, c) if spec.partial is not None else None
        if part:
            return (f"partial {name} ({part}) = {signed(v, '.6g')};   "
                    f"complete {name} = {signed(spec.complete[r, c], '.6g')}")
        text = f"{name} = {signed(v, '.6g')}"
        if (r, c) in spec.partners:
            text += f"   (multiplied by {signed(spec.partners[(r, c)][0], '.6g')} at this step)"
        return text

    def header_rect(self) -> QtCore.QRectF:
        """The band above the cells where the title and subtitle are written (its share of the canvas)."""
        title_h = TITLE_H * text_scale()
        return QtCore.QRectF(self.room[0], self.rect.top() - title_h, self.room[1] - self.room[0], title_h)

    def describe_header(self) -> str:
        """Tooltip of the title and subtitle: them in full words, the numbers' scale and the caption
        (which a narrow canvas cuts short)."""
        spec = self.spec
        text = spec.tooltip or f"{spec.title}: {spec.subtitle}"
        if spec.fmt.exponent:
            example = 1.5 * 10.0 ** spec.fmt.exponent
            text += f"\nnumbers written {spec.fmt.suffix()}: {spec.fmt.text(example)} means {example:g}"
        return text + (f"\n{spec.caption}" if spec.caption else "")


def layout_row(specs: list[GridSpec], gap_widths: list[float], area: QtCore.QRectF) -> list[PlacedGrid]:
    """Place the grids left to right in ``area`` with ``gap_widths[i]`` px between grid i and i+1.

    Every grid gets cells of at most ``CELL_MAX`` px and fits the height; the largest common limit that
    fits the width is found by bisection, but small grids (kernels) keep ``SMALL_CELL`` px cells as
    long as the row fits, so a 3x3 kernel stays readable beside a 30x30 input drawn as a heatmap.
    The row is centred, every grid vertically centred in the area. Each grid's texts get the band up
    to halfway to its neighbours (``PlacedGrid.room``): in a narrow window they overlapped there.
    """
    title_h, caption_h = TITLE_H * text_scale(), CAPTION_H * text_scale()
    cells_h = max(area.height() - title_h - caption_h, 10.0)
    small = [max(s.shape) <= SMALL_GRID for s in specs]
    floor = [SMALL_CELL if is_small else 0.0 for is_small in small]

    def cells(limit: float) -> list[float]:
        return [min(CELL_MAX, cells_h / s.shape[0], max(limit, f)) for s, f in zip(specs, floor)]

    def width(limit: float) -> float:
        return sum(max(s.shape[1] * c, SLOT_MIN_W) for s, c in zip(specs, cells(limit))) + sum(gap_widths)

    lo, hi = 1.0, float(CELL_MAX)
    if width(lo) > area.width():
        floor = [0.0] * len(specs)  # not even that fits: small grids shrink too
    if width(hi) > area.width():
        for _ in range(30):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if width(mid) <= area.width() else (lo, mid)
    else:
        lo = hi
    sizes = [math.floor(c) if c >= CELL_NUMBERS else c for c in cells(lo)]  # whole px: crisp lines
    rects, slots = [], []
    x = area.left() + max(0.0, (area.width() - width(lo)) / 2)
    for i, (spec, cell) in enumerate(zip(specs, sizes)):
        rows, cols = spec.shape
        slot = max(cols * cell, SLOT_MIN_W)
        top = area.top() + title_h + (cells_h - rows * cell) / 2
        rects.append(QtCore.QRectF(round(x + (slot - cols * cell) / 2), round(top), cols * cell, rows * cell))
        slots.append((x, x + slot))
        x += slot + (gap_widths[i] if i < len(gap_widths) else 0)
    # Texts may spread halfway into the gaps on either side; the outer grids up to the area's edges.
    edges = [area.left()] + [(a[1] + b[0]) / 2 for a, b in zip(slots, slots[1:])] + [area.right()]
    return [PlacedGrid(spec, rect, cell, (edges[i], edges[i + 1]))
            for i, (spec, rect, cell) in enumerate(zip(specs, rects, sizes))]


def _subtitle(spec: GridSpec, mode: str) -> str:
    suffix = spec.fmt.suffix()
    return spec.subtitle + (f"   values {suffix}" if suffix and mode == "numbers" else "")


def _font(px: float, bold: bool = False, italic: bool = False) -> QtGui.QFont:
    font = QtGui.QFont()
    font.setPixelSize(max(7, int(px)))
    font.setBold(bold)
    font.setItalic(italic)
    return font


def _cells_path(g: PlacedGrid, mask: np.ndarray) -> QtGui.QPainterPath:
    """The cells where ``mask: (rows, cols) bool`` is True, one rectangle per run of them along a row
    (a padding band is a few long rectangles, not hundreds of cells, on every paint)."""
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)  # +1 where a run starts, -1 past it
    (rows, starts), (_, ends) = np.nonzero(edges == 1), np.nonzero(edges == -1)   # both in row-major order
    path = QtGui.QPainterPath()
    for r, c0, c1 in zip(rows.tolist(), starts.tolist(), ends.tolist()):
        path.addRect(g.cell_rect(r, c0, 1, c1 - c0))
    return path


def _hatch_brush() -> QtGui.QBrush:
    return QtGui.QBrush(INSERTED_HATCH, QtCore.Qt.BrushStyle.BDiagPattern)


def paint_grid(p: QtGui.QPainter, g: PlacedGrid) -> None:
    """Draw one placed grid: title and subtitle above, cells, outlines, caption below."""
    spec, rect = g.spec, g.rect
    rows, cols = spec.shape
    s = text_scale()
    title_h = TITLE_H * s
    room = QtCore.QRectF(g.room[0], rect.top() - title_h, g.room[1] - g.room[0], title_h - 4)
    slot = QtCore.QRectF(rect.center().x() - 200 * s, rect.top() - title_h, 400 * s, title_h - 4)
    p.setPen(TEXT_DARK)
    bold = _font(15 * s, bold=True)
    p.setFont(bold)
    box, title = text_slot(slot.adjusted(0, 0, 0, -18 * s), spec.title, bold, room.adjusted(0, 0, 0, -18 * s))
    p.drawText(box, QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignBottom, title)
    p.setPen(MUTED)
    font = _font(12 * s)
    p.setFont(font)
    subtitle = _subtitle(spec, g.mode)
    box, subtitle = text_slot(slot, subtitle, font, room)
    p.drawText(box, QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignBottom, subtitle)

    colours = _lut()[colour_indices(spec.values, spec.scale)]          # (rows, cols, 3)
    if g.mode == "numbers":
        _paint_numbers(p, g, colours)
    else:
        _paint_heatmap(p, g, colours)

    if spec.faded is not None and spec.faded.any():
        p.fillPath(_cells_path(g, spec.faded), QtGui.QColor(238, 240, 243, 170))
    if spec.inner is not None:
        r0, r1, c0, c1 = spec.inner
        inner = g.cell_rect(r0, c0, r1 - r0, c1 - c0)
        if spec.dim_outside:
            outside = QtGui.QPainterPath()
            outside.addRect(rect)
            keep = QtGui.QPainterPath()
            keep.addRect(inner)
            p.fillPath(outside.subtracted(keep), QtGui.QColor(255, 255, 255, 150))
        pen = QtGui.QPen(INNER_COLOR, 2.0, QtCore.Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        p.drawRect(inner)
    if spec.window is not None:
        r0, r1, c0, c1 = spec.window
        p.setPen(QtGui.QPen(READ_COLOR, 3.5))
        p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        p.drawRect(g.cell_rect(r0, c0, r1 - r0, c1 - c0).adjusted(-1, -1, 1, 1))
    if spec.written is not None:
        p.setPen(QtGui.QPen(WRITE_COLOR, 4.0))
        p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        p.drawRect(g.cell_rect(*spec.written).adjusted(-1.5, -1.5, 1.5, 1.5))

    if spec.mirror is not None:
        _paint_mirror(p, rect, spec.mirror)
    if spec.caption:
        p.setPen(MUTED)
        font = _font(12 * s)
        p.setFont(font)
        # within the grid's room: a caption wraps rather than run into its neighbour's
        below = QtCore.QRectF(g.room[0], rect.bottom() + (24 if spec.mirror == "vertical" else 5),
                              g.room[1] - g.room[0], CAPTION_H * s)
        p.drawText(below, CAPTION_FLAGS, fitted_caption(spec.caption, font, below.size()))


CAPTION_FLAGS = QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.TextFlag.TextWordWrap


def fitted_caption(text: str, font: QtGui.QFont, box: QtCore.QSizeF) -> str:
    """``text`` wrapped in ``box``, or as many of its first words as fit followed by "…" (a narrow
    canvas: the box clipped the sentence's end without a sign)."""
    metrics = QtGui.QFontMetricsF(font)

    def fits(candidate: str) -> bool:
        return metrics.boundingRect(QtCore.QRectF(0, 0, box.width(), 1e6), CAPTION_FLAGS,
                                    candidate).height() <= box.height()

    if fits(text):
        return text
    words = text.split()
    lo, hi = 0, len(words) - 1  # the most words that fit with "…" after them (0: only "…")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(" ".join(words[:mid]) + "…") else (lo, mid - 1)
    return " ".join(words[:lo]) + "…"


def text_slot(slot: QtCore.QRectF, text: str, font: QtGui.QFont, room: QtCore.QRectF) -> tuple[QtCore.QRectF, str]:
    """A box for ``text`` on one line, centred like ``slot`` and moved inside ``room`` (a grid's share of
    the canvas: a subtitle near the canvas' edge lost its end, the "values ×10⁻⁵" that gives the scale),
    and the text, shortened with "…" only when even ``room`` is too narrow for it."""
    metrics = QtGui.QFontMetricsF(font)
    width = min(metrics.horizontalAdvance(text) + 8, room.width())
    box = moved_inside(QtCore.QRectF(slot.center().x() - width / 2, slot.top(), width, slot.height()), room)
    return box, metrics.elidedText(text, QtCore.Qt.TextElideMode.ElideRight, width - 4)


def moved_inside(box: QtCore.QRectF, bounds: QtCore.QRectF) -> QtCore.QRectF:
    """``box`` moved sideways, not resized, to lie within ``bounds`` (left-aligned when it is wider)."""
    dx = max(bounds.left() - box.left(), 0.0) or min(bounds.right() - box.right(), 0.0)
    return box.translated(dx, 0.0)


def _paint_mirror(p: QtGui.QPainter, rect: QtCore.QRectF, axis: str) -> None:
    """A flip: the dashed mirror line through the grid and a double-headed arrow across it, drawn
    below the grid (left↔right flip) or to its right (top↔bottom flip)."""
    faint = QtGui.QColor(INNER_COLOR)
    faint.setAlpha(90)  # inside the grid the line must not hide the numbers
    inside, outside = (QtGui.QPen(faint, 2.0, QtCore.Qt.PenStyle.DashLine),
                       QtGui.QPen(INNER_COLOR, 2.5, QtCore.Qt.PenStyle.SolidLine))
    p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
    c = rect.center()

    def line(a: QtCore.QPointF, b: QtCore.QPointF, out_a: QtCore.QPointF, out_b: QtCore.QPointF) -> None:
        p.setPen(inside)
        p.drawLine(a, b)
        p.setPen(outside)
        p.drawLine(out_a, a)
        p.drawLine(b, out_b)

    if axis == "vertical":
        line(QtCore.QPointF(c.x(), rect.top()), QtCore.QPointF(c.x(), rect.bottom()),
             QtCore.QPointF(c.x(), rect.top() - 8), QtCore.QPointF(c.x(), rect.bottom() + 8))
        y = rect.bottom() + 12
        a = QtCore.QPointF(rect.left() + rect.width() * 0.2, y)
        b = QtCore.QPointF(rect.right() - rect.width() * 0.2, y)
        bend = QtCore.QPointF(c.x(), y + 14)
    else:
        line(QtCore.QPointF(rect.left(), c.y()), QtCore.QPointF(rect.right(), c.y()),
             QtCore.QPointF(rect.left() - 8, c.y()), QtCore.QPointF(rect.right() + 8, c.y()))
        x = rect.right() + 10
        a = QtCore.QPointF(x, rect.top() + rect.height() * 0.2)
        b = QtCore.QPointF(x, rect.bottom() - rect.height() * 0.2)
        bend = QtCore.QPointF(x + 14, c.y())
    path = QtGui.QPainterPath(a)
    path.quadTo(bend, b)
    p.setPen(QtGui.QPen(INNER_COLOR, 2.0))
    p.drawPath(path)
    p.setBrush(INNER_COLOR)
    for tip, towards in ((a, bend), (b, bend)):
        dx, dy = tip.x() - towards.x(), tip.y() - towards.y()
        n = max((dx * dx + dy * dy) ** 0.5, 1e-6)
        ux, uy = dx / n, dy / n
        p.drawPolygon(QtGui.QPolygonF([tip + QtCore.QPointF(2 * ux, 2 * uy),
                                       QtCore.QPointF(tip.x() - 8 * ux + 5 * uy, tip.y() - 8 * uy - 5 * ux),
                                       QtCore.QPointF(tip.x() - 8 * ux - 5 * uy, tip.y() - 8 * uy + 5 * ux)]))
    p.setBrush(QtCore.Qt.BrushStyle.NoBrush)


def _paint_numbers(p: QtGui.QPainter, g: PlacedGrid, colours: np.ndarray) -> None:
    """Grid ``g`` as cells filled with ``colours: (rows, cols, 3)`` and its numbers written in them."""
    spec, cell = g.spec, g.cell
    rows, cols = spec.shape
    texts = [[spec.fmt.text(v) if np.isfinite(v) else "" for v in row] for row in spec.values]
    number_px = _fitting_px(tuple(sorted({t for row in texts for t in row} | {"0"})), cell * 0.36, cell - 10)
    number_font = _font(number_px, bold=True)
    inserted_font = _font(number_px, italic=True)
    small_font = _font(max(9.0, cell * 0.2))
    pens = [[CELL_DARK if dark else TEXT_LIGHT for dark in row] for row in dark_reads_better(colours, CELL_DARK)]
    fills = [[QtGui.QColor(int(r), int(g), int(b)) for r, g, b in row] for row in colours]
    hatch = _hatch_brush()
    align_center = QtCore.Qt.AlignmentFlag.AlignCenter
    for r in range(rows):
        for c in range(cols):
            box = g.cell_rect(r, c)
            if spec.inserted[r, c]:
                p.fillRect(box, INSERTED_FILL)
                p.fillRect(box, hatch)
                p.setPen(CELL_BORDER)
                p.drawRect(box)
                p.setPen(INSERTED_TEXT)
                p.setFont(inserted_font)
                p.drawText(box, align_center, "0")
                if cell >= CELL_SYMBOLS and (r, c) in spec.partners:
                    _paint_partner(p, box, *spec.partners[(r, c)])
                continue
            if not texts[r][c]:
                p.fillRect(box, EMPTY_FILL)
                p.setPen(QtGui.QPen(EMPTY_BORDER, 1.0, QtCore.Qt.PenStyle.DotLine))
                p.drawRect(box.adjusted(1, 1, -1, -1))
            else:
                p.fillRect(box, fills[r][c])
                p.setPen(pens[r][c])
                p.setFont(number_font)
                p.drawText(box, align_center, texts[r][c])
            p.setPen(CELL_BORDER)
            p.drawRect(box)
            if cell >= CELL_SYMBOLS and spec.symbols[r][c]:
                p.setFont(small_font)
                p.setPen(pens[r][c] if texts[r][c] else MUTED)
                p.drawText(box.adjusted(3, 1, -2, -2), QtCore.Qt.AlignmentFlag.AlignLeft
                           | QtCore.Qt.AlignmentFlag.AlignTop, spec.symbols[r][c])
            if cell >= CELL_SYMBOLS and (r, c) in spec.partners:
                _paint_partner(p, box, *spec.partners[(r, c)])


@lru_cache(maxsize=64)
def _fitting_px(texts: tuple[str, ...], px: float, width: float) -> float:
    """The largest pixel size <= px at which the widest of texts (bold) fits in width (cached: a grid
    is painted again with the same numbers far more often than with new ones)."""
    widest = max(QtGui.QFontMetricsF(_font(px, bold=True)).horizontalAdvance(t) for t in texts)
    return px if widest <= width else max(7.0, px * width / widest)


def _paint_partner(p: QtGui.QPainter, box: QtCore.QRectF, factor: float, inserted: bool) -> None:
    """The factor a window cell is multiplied by, on a white tag in the cell's bottom-right corner
    (grey when that factor is an inserted zero)."""
    font = _font(max(9.0, box.width() * 0.2), bold=True)
    text = "×" + _short(factor)
    metrics = QtGui.QFontMetricsF(font)
    w, h = metrics.horizontalAdvance(text) + 6, metrics.height()
    tag = QtCore.QRectF(box.right() - w - 2, box.bottom() - h - 2, w, h)
    p.setPen(QtCore.Qt.PenStyle.NoPen)
    p.setBrush(QtGui.QColor(255, 255, 255, 225))
    p.drawRoundedRect(tag, 3, 3)
    p.setFont(font)
    p.setPen(INSERTED_TEXT if inserted else PARTNER_COLOR)
    p.drawText(tag, QtCore.Qt.AlignmentFlag.AlignCenter, text)
    p.setBrush(QtCore.Qt.BrushStyle.NoBrush)


def _short(v: float) -> str:
    """A factor in 4 characters or so, for the small red labels in the window."""
    if v == round(v) and abs(v) < 1000:
        return f"{v:.0f}"
    return f"{v:.2g}" if abs(v) >= 0.01 else f"{v:.0e}"


def _paint_heatmap(p: QtGui.QPainter, g: PlacedGrid, colours: np.ndarray) -> None:
    """Grid ``g`` too small for numbers: one pixel per cell from ``colours: (rows, cols, 3)``, scaled up."""
    spec = g.spec
    rows, cols = spec.shape
    rgb = np.ascontiguousarray(colours, dtype=np.uint8)                        # (rows, cols, 3)
    rgb[~np.isfinite(spec.values)] = (PENDING_FILL.red(), PENDING_FILL.green(), PENDING_FILL.blue())
    rgb[spec.inserted] = (INSERTED_FILL.red(), INSERTED_FILL.green(), INSERTED_FILL.blue())
    image = QtGui.QImage(rgb.data, cols, rows, 3 * cols, QtGui.QImage.Format.Format_RGB888)
    p.save()
    p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
    p.drawImage(g.rect, image)
    if spec.inserted.any():
        p.fillPath(_cells_path(g, spec.inserted), _hatch_brush())
    p.restore()
    p.setPen(QtGui.QPen(CELL_BORDER, 1.0))
    p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
    p.drawRect(g.rect)
