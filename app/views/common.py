"""Helpers shared by the insight views: colormaps, mosaic tiling, hover mapping, image panels.

A *mosaic* packs many small images (kernels, feature-map channels) into ONE float32 array with a
1-pixel NaN frame around every tile, so a whole layer is drawn by a single ``pg.ImageItem``
(one ImageItem per layer costs ~0.4 ms per update where a grid of separate cells costs ~5 ms).
NaN pixels are drawn transparent, so the separators show the dark background between tiles.
"""
from __future__ import annotations

import math
import re
import time
from functools import lru_cache

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.colour_scale import ColourScale

BAR_MAX_HEIGHT = 320  # px: a colour bar beside a taller image stops here, at the image's top

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
    """Short, readable number for hover text and labels (4 significant digits)."""
    return f"{v + 0.0:.4g}"  # + 0.0 turns -0 into 0


def grid_columns(n: int) -> int:
    """Columns for laying out n tiles in a near-square grid, never taller than wide: the smallest
    count from ceil(sqrt n) up to twice that which fills the grid exactly (32 -> 8x4), else ceil(sqrt n)."""
    base = max(1, math.ceil(math.sqrt(n)))
    return next((cols for cols in range(base, 2 * base + 1) if n % cols == 0), base)


class Mosaic:
    """A preallocated (rows x cols) grid of tile_h x tile_w tiles with 1-px NaN separators.

    ``buffer``: (rows*(tile_h+1)+1, cols*(tile_w+1)+1) float32, C-contiguous, NaN on the frame and
    in unused tiles. Tile (i, j) pixel (r, c) sits at buffer[1 + i*(tile_h+1) + r, 1 + j*(tile_w+1) + c].
    The buffer is reused by every fill, so live updates allocate nothing.
    """

    def __init__(self, rows: int, cols: int, tile_h: int, tile_w: int) -> None:
        self.rows, self.cols, self.tile_h, self.tile_w = rows, cols, tile_h, tile_w
        self.buffer = np.full((rows * (tile_h + 1) + 1, cols * (tile_w + 1) + 1), np.nan, np.float32)
        # A 4-D view of the interior: (rows, tile_h+1, cols, tile_w+1). Assigning the shape attribute
        # (instead of reshape) raises if a copy would be needed, so writes always reach the buffer.
        grid = self.buffer[1:, 1:].view()
        grid.shape = (rows, tile_h + 1, cols, tile_w + 1)
        self._tiles4 = grid[:, :tile_h, :, :tile_w]          # (rows, tile_h, cols, tile_w)

    @property
    def shape(self) -> tuple[int, int]:
        return self.buffer.shape

    def matches(self, rows: int, cols: int, tile_h: int, tile_w: int) -> bool:
        return (self.rows, self.cols, self.tile_h, self.tile_w) == (rows, cols, tile_h, tile_w)

    def fill_grid(self, grid: np.ndarray) -> np.ndarray:
        """Write all tiles at once. grid: (rows, tile_h, cols, tile_w), e.g. conv kernels
        w (kh, kw, c_in, c_out) as ``w.transpose(3, 0, 2, 1)``. Returns the buffer."""
        self._tiles4[...] = grid
        return self.buffer

    def fill_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """Write n <= rows*cols tiles in row-major grid order. tiles: (n, tile_h, tile_w).
        Tiles past n keep their NaN. Returns the buffer."""
        n = tiles.shape[0]
        full, rest = divmod(n, self.cols)
        if full:
            # (full*cols, th, tw) -> (full, cols, th, tw) -> (full, th, cols, tw)
            self._tiles4[:full] = tiles[: full * self.cols].reshape(
                full, self.cols, self.tile_h, self.tile_w).transpose(0, 2, 1, 3)
        if rest:
            self._tiles4[full, :, :rest, :] = tiles[full * self.cols:].transpose(1, 0, 2)
        return self.buffer

    def locate(self, y: int, x: int) -> tuple[int, int, int, int] | None:
        """Buffer pixel (row y, col x) -> (tile_row, tile_col, r, c), or None on a separator or outside."""
        if not (0 < y < self.buffer.shape[0] and 0 < x < self.buffer.shape[1]):
            return None
        i, r = divmod(y - 1, self.tile_h + 1)
        j, c = divmod(x - 1, self.tile_w + 1)
        if r == self.tile_h or c == self.tile_w:
            return None
        return i, j, r, c

    def tile_origin(self, i: int, j: int) -> tuple[int, int]:
        """Buffer (row, col) of tile (i, j)'s top-left pixel."""
        return 1 + i * (self.tile_h + 1), 1 + j * (self.tile_w + 1)


def layout_for(n_tiles: int, tile_h: int, tile_w: int, mosaic: Mosaic | None) -> Mosaic:
    """Reuse ``mosaic`` when it already has the near-square layout for n_tiles, else make a new one."""
    cols = grid_columns(n_tiles)
    rows = math.ceil(n_tiles / cols)
    if mosaic is not None and mosaic.matches(rows, cols, tile_h, tile_w):
        return mosaic
    return Mosaic(rows, cols, tile_h, tile_w)


class SteadyLabelItem(pg.LabelItem):
    """A pyqtgraph LabelItem that asks its scene for a layout pass only when a new text needs more
    room than it has: the room only grows (from ``width`` x ``height``, or the first text's size), or
    never changes with ``fixed=True`` (a longer text is then clipped by its neighbours).

    pyqtgraph's LabelItem fits itself to every text and asks for a layout pass three times per
    setText; on a page of plots each pass lays out and repaints the whole page again (a live title
    such as Feature maps' "predicted 7 at 99.8%" cost a second repaint of the page, 7 ms, at every
    refresh)."""

    def __init__(self, text: str = "", width: float = 0.0, height: float = 0.0, fixed: bool = False,
                 **options) -> None:
        self._room = QtCore.QSizeF(width, height)
        self._fixed = fixed
        super().__init__(text, **options)
        if fixed:
            self.setMinimumSize(self._room)
            self.setMaximumSize(self._room)

    def updateMin(self) -> None:  # noqa: N802 (pyqtgraph's name)
        """Grow when the text needs more room than the item has, else leave the layout alone."""
        need = self.itemRect().size()
        if self._fixed or (need.width() <= self._room.width() and need.height() <= self._room.height()):
            return
        self._room = self._room.expandedTo(need)
        self.setMinimumSize(self._room)
        QtWidgets.QGraphicsWidget.updateGeometry(self)

    def sizeHint(self, which, constraint=QtCore.QSizeF()) -> QtCore.QSizeF:  # noqa: N802 (Qt naming)
        if which == QtCore.Qt.SizeHint.MinimumDescent:
            return QtCore.QSizeF(0, 0)
        if which == QtCore.Qt.SizeHint.MaximumSize and not self._fixed:
            return QtCore.QSizeF(1e6, 1e6)
        return QtCore.QSizeF(self._room)

    def updateGeometry(self) -> None:  # noqa: N802 (Qt naming)
        """Asked for by every setText: nothing to do unless updateMin grew the item."""


class ImagePanel:
    """A titled plot holding one row-major ImageItem and (optionally) a colour bar, added as one
    cell of a ``pg.GraphicsLayout`` (the caller moves to the next row): title above, image and bar below.

    Image row 0 is drawn at the top (as in a matrix), aspect ratio is locked, and every ``set``
    passes explicit levels (auto-levels flicker during training and fail on constant arrays).
    Axes are hidden until ``set_tile_ticks`` labels the tile rows/columns of a mosaic.
    """

    def __init__(self, layout: pg.GraphicsLayout, title: str = "", cmap: pg.ColorMap | None = None,
                 bar: bool = True, bar_label: str | None = None, tooltip: str = "", name: str = "") -> None:
        # A nested layout per panel keeps the colour bar beside its own image; the trailing
        # stretch column keeps the fixed-size plot left-aligned instead of spread out.
        self.layout = layout.addLayout()
        self.title = SteadyLabelItem(title, justify="left")  # live titles (a loss, a step) stay put
        self.layout.addItem(self.title, colspan=3)
        self.layout.nextRow()
        self.plot = self.layout.addPlot(enableMenu=False)
        self.plot.setToolTip(tooltip)
        self.plot.hideButtons()
        for axis in ("left", "bottom", "top", "right"):
            self.plot.hideAxis(axis)
        self.view = self.plot.getViewBox()
        self.view.setAspectLocked(True)
        self.view.invertY(True)
        self.view.setMouseEnabled(x=False, y=False)  # the layout scrolls; zooming each cell would confuse
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setObjectName(name)  # names its files in File → Export data ("conv1", "routed delta")
        # Give the item data before the colour bar sets its levels: levels set on an empty ImageItem
        # are deferred and then override the explicit levels of the first real setImage.
        self.image.setImage(np.zeros((1, 1), np.float32), levels=(0.0, 1.0))
        self.view.addItem(self.image)
        self.bar = None
        cmap = cmap or diverging_cmap()
        if bar:
            # The label shows the power of ten tiny values need (e.g. "δ (×1e-05)").
            self.bar = ColourScale(cmap, bar_label)
            self.layout.addItem(self.bar)
            self.layout.layout.setAlignment(self.bar, QtCore.Qt.AlignmentFlag.AlignTop)
        self.layout.addItem(pg.GraphicsWidget())
        self.layout.layout.setColumnStretchFactor(2 if bar else 1, 1)
        self._shape = None
        self._cmap = None
        self._set_cmap(cmap)

    def _set_cmap(self, cmap: pg.ColorMap) -> None:
        """Colour the image (and bar) with cmap. The image gets a 512-entry lookup table: with at most
        256 entries pyqtgraph hands Qt an Indexed8 QImage, which Qt draws scaled ~3-5x slower
        (measured: 1.3-2.7 ms against 0.4 ms for a 117x117 map); more entries make pyqtgraph apply
        the table itself and pass an RGBA image."""
        self._cmap = cmap
        if self.bar is not None:
            self.bar.setColorMap(cmap)
        self.image.setLookupTable(cmap.getLookupTable(nPts=512, alpha=True))

    def set_tile_ticks(self, mosaic: "Mosaic", row_name: str, col_name: str, row_labels=None,
                       col_labels=None) -> None:
        """Label tile rows on the left axis and tile columns on the top axis, at tile centres.
        row_labels/col_labels: strings per tile row/column (default: the indices)."""
        def ticks(count, size, labels):
            step = max(1, count // 16)  # keep labels from overlapping on wide mosaics
            major = [(1 + k * (size + 1) + size / 2, labels[k] if labels else str(k))
                     for k in range(0, count, step)]
            return [major]
        left, top = self.plot.getAxis("left"), self.plot.getAxis("top")
        left.setTicks(ticks(mosaic.rows, mosaic.tile_h, row_labels))
        top.setTicks(ticks(mosaic.cols, mosaic.tile_w, col_labels))
        left.setLabel(row_name)
        top.setLabel(col_name)
        self.plot.showAxis("left")
        self.plot.showAxis("top")

    def set_title(self, html: str) -> None:
        """Set the title only when it changed (laying out its HTML again costs ~0.3 ms)."""
        if html != self.title.text:
            self.title.setText(html)

    def fit(self, shape: tuple[int, int], px: float) -> tuple[int, int]:
        """Size the plot so an image of ``shape`` (rows, cols) is drawn at ``px`` screen pixels per
        image pixel, axes included (fixed sizes keep stacked panels from stretching). Returns the
        plot's (width, height)."""
        extra_w = 48 if self.plot.getAxis("left").isVisible() else 4
        extra_h = 48 if self.plot.getAxis("top").isVisible() else 4
        width, height = int(shape[1] * px) + extra_w, int(shape[0] * px) + extra_h
        self.plot.setFixedWidth(width)
        self.plot.setFixedHeight(height)
        if self.bar is not None:
            # A tall mosaic (dense1's 128 tiles: ~2,000 px) kept a bar as tall, most of it scrolled out
            # of sight with its ticks; a bar of at most BAR_MAX_HEIGHT at the image's top stays readable.
            self.bar.set_height(min(height, BAR_MAX_HEIGHT))
        return width, height

    def set(self, data: np.ndarray, levels: tuple[float, float], cmap: pg.ColorMap | None = None) -> None:
        """Show data (2-D float32, C-contiguous) with the given levels; refit the view on a new shape."""
        if cmap is not None and cmap is not self._cmap:
            self._set_cmap(cmap)
        self.image.setImage(data, levels=levels, autoLevels=False)
        if self.bar is not None:
            self.bar.setLevels(levels)
        if data.shape != self._shape:
            self._shape = data.shape
            # No padding: a fraction of a tall mosaic's height (2% of dense1's 1,153 rows) left a band
            # of 70 empty pixels above and below it; fit() already leaves a few pixels around.
            self.view.setRange(xRange=(0, data.shape[1]), yRange=(0, data.shape[0]), padding=0)

    def pixel_at(self, scene_pos: QtCore.QPointF) -> tuple[int, int] | None:
        """Scene position -> (row, col) of the image pixel under it, or None when outside the image."""
        if self.image.image is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.image.mapFromScene(scene_pos)
        row, col = math.floor(p.y()), math.floor(p.x())
        h, w = self.image.image.shape[:2]
        if 0 <= row < h and 0 <= col < w:
            return row, col
        return None


def export_scene_png(scene: QtWidgets.QGraphicsScene, path: str) -> None:
    """Write a pyqtgraph scene to a PNG file; OSError when it cannot be written (pyqtgraph's
    exporter only returns False)."""
    from pyqtgraph.exporters import ImageExporter

    from app.export import save_png

    save_png(ImageExporter(scene).export(toBytes=True), str(path))


def _scene_changed(rects) -> None:
    """Nothing to do: connected only for its side effect, see ``repaint_with_window``."""


class _PendingSceneUpdate(QtCore.QObject):
    """Event filter for scenes: before each queued call a scene runs, records a scene update that no
    view can see (far outside them all), so that the call finds an update already pending."""

    OFF_SCREEN = QtCore.QRectF(-1e9, -1e9, 1.0, 1.0)

    def eventFilter(self, scene: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.MetaCall:
            scene.update(self.OFF_SCREEN)
        return False


@lru_cache(maxsize=1)
def _pending_update_filter() -> _PendingSceneUpdate:
    """The one filter, made on first use (on the GUI thread, where the scenes live)."""
    return _PendingSceneUpdate()


def repaint_with_window(view: QtWidgets.QGraphicsView) -> None:
    """Let ``view``'s changes be painted with the rest of the window, in one repaint.

    When items change, a QGraphicsScene queues a pass over its dirty items
    (``QGraphicsScenePrivate::_q_processDirtyItems``), and unless a scene update was already pending
    when that pass began, the pass ends by "immediately dispatching all pending update requests on the
    views": a synchronous repaint of the whole window, inside the scene's queued call. On a tab switch
    or a live refresh the scenes of a page (and pyqtgraph's second pass after ``prepareForPaint``)
    repainted the window one after the other, 2-4 times within one stall. Two things make the pass
    leave the repaint to the event loop:

    - the scene's ``changed`` signal is connected, so the pass reports dirty areas as scene updates
      (``changed``, then an ordinary ``update()`` of each view) instead of straight to the views;
    - an event filter records an invisible scene update before each of the scene's queued calls, so
      the pass always finds one pending and returns without dispatching.

    The window then paints the views together with everything else that is dirty, once, when the
    event loop gets to it.
    """
    scene = view.scene()
    scene.changed.connect(_scene_changed)
    scene.installEventFilter(_pending_update_filter())


class TimedGraphicsLayoutWidget(pg.GraphicsLayoutWidget):
    """A GraphicsLayoutWidget that reports how long each repaint took (ms) to ``on_paint`` and is
    painted with the window (``repaint_with_window``)."""

    def __init__(self, on_paint) -> None:
        super().__init__()
        self._on_paint = on_paint
        repaint_with_window(self)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        start = time.perf_counter()
        super().paintEvent(event)
        self._on_paint((time.perf_counter() - start) * 1000.0)


class LazyView(QtWidgets.QWidget):
    """Base for views that follow the display model: work only while visible, and never hog the GUI.

    ``model_changed`` records the model and, when the view is hidden (e.g. another tab is shown),
    only marks it stale; the refresh happens on the next show. Subclasses implement ``_refresh()``
    and draw into ``self.plot = self.make_plot()`` so repaint costs are measured.

    Rate limit: a refresh plus the repaints it causes may take at most MAX_DUTY of the GUI thread's
    time; requests arriving sooner are coalesced into one deferred refresh. Under a heavily loaded
    CPU this keeps live updates from starving the event loop (the main window already limits calls
    to 10 Hz; this only bites when one update costs more than MAX_DUTY * 100 ms).
    The view keeps the model object (needed to recompute when the sample changes) but never keeps
    references to the model's arrays: everything drawn is copied into the view's own buffers.
    """

    MAX_DUTY: float | None = 0.4   # None: no rate limit (tests)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = None
        self._stale = False
        self._last_start = -math.inf
        self._refresh_ms = 0.0
        self._paint_ms = 0.0          # repaints since the last refresh (pyqtgraph may paint twice)
        self.update_cost_ms = 0.0     # last refresh + its repaints
        self._deferred = QtCore.QTimer(self)
        self._deferred.setSingleShot(True)
        self._deferred.timeout.connect(self._run_refresh)
        self.hover: SteadyLabel | None = None  # the read-out line, see make_readout
        self._hover_hint = ""
        self._hover_pos = None                  # scene position under the cursor, None when outside

    def make_plot(self) -> TimedGraphicsLayoutWidget:
        plot = TimedGraphicsLayoutWidget(self._painted)
        plot.scene().sigMouseMoved.connect(self._hover_moved)
        plot.viewport().installEventFilter(self)  # Leave: the read-out shows its hint again
        return plot

    def make_readout(self, hint: str) -> SteadyLabel:
        """The hover read-out line (``self.hover``): what ``hover_text_at`` says the plot shows under the
        cursor, ``hint`` over anything else or outside the plot. It is read again after every repaint of
        the plot, so the value shown is the value drawn (not one from before the last training step)."""
        self._hover_hint = hint
        self.hover = readout_label(hint)
        return self.hover

    def hover_text_at(self, scene_pos: QtCore.QPointF) -> str | None:
        """What the plot shows at ``scene_pos`` (None: nothing to read there); views with a read-out
        override this."""
        return None

    def _hover_moved(self, scene_pos: QtCore.QPointF | None) -> None:
        self._hover_pos = scene_pos
        self._update_hover()

    def _update_hover(self) -> None:
        if self.hover is not None:
            text = None if self._hover_pos is None else self.hover_text_at(self._hover_pos)
            self.hover.setText(text or self._hover_hint)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.Leave:
            self._hover_moved(None)
        return super().eventFilter(watched, event)

    def model_changed(self, model) -> None:
        self._model = model
        self._request_refresh()

    def _request_refresh(self) -> None:
        if not self.isVisible():
            self._stale = True
            return
        wait_ms = 0.0
        if self.MAX_DUTY is not None:
            elapsed = (time.perf_counter() - self._last_start) * 1000.0
            wait_ms = self.update_cost_ms / self.MAX_DUTY - elapsed
        if wait_ms > 0:
            if not self._deferred.isActive():
                self._deferred.start(int(math.ceil(wait_ms)))
        else:
            self._run_refresh()

    def _run_refresh(self) -> None:
        self._deferred.stop()
        self._stale = False
        self._last_start = time.perf_counter()
        self._refresh()
        self._refresh_ms = self.update_cost_ms = (time.perf_counter() - self._last_start) * 1000.0
        self._paint_ms = 0.0

    def _painted(self, ms: float) -> None:
        self._paint_ms += ms
        self.update_cost_ms = self._refresh_ms + self._paint_ms
        self._update_hover()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self._stale:
            self._request_refresh()

    def _refresh(self) -> None:
        raise NotImplementedError

    def export_png(self, path: str) -> None:
        """Write the whole canvas (also what is scrolled out of view) to a PNG file; the main
        window's File > Export calls this for the current tab."""
        if self._stale or self._deferred.isActive():
            self._run_refresh()
        self._before_export()
        export_scene_png(self.plot.scene(), path)

    def _before_export(self) -> None:
        """Hook: bring parts that are only drawn on demand up to date, or raise ValueError("nothing to
        export yet: …") while the view shows a placeholder instead of its content."""


def _monospace(label: QtWidgets.QLabel) -> None:
    """Monospace font (numbers line up) and text the learner can select and copy."""
    font = label.font()
    font.setFamily("monospace")
    font.setStyleHint(font.StyleHint.Monospace)
    label.setFont(font)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)


def steady_info_label(lines: int) -> "SteadyLabel":
    """A selectable monospace text of several lines for numbers that change with every live update: a
    SteadyLabel ``lines`` lines high (longer lines wrap), so a new text never lays out the page again."""
    label = SteadyLabel("", lines=lines)
    _monospace(label.label)
    label.fit_height()
    return label


def readout_label(text: str = "") -> "SteadyLabel":
    """One selectable monospace line for hover read-outs: it takes the width the view gives it and
    never asks for more (a long read-out is clipped, the view not widened)."""
    label = SteadyLabel(text)
    _monospace(label.label)
    label.fit_height()
    return label


class SteadyLabel(QtWidgets.QWidget):
    """A line (or a few) of text that changes often (a live prediction, a hover read-out) without
    ever laying out the page around it again.

    QLabel.setText asks every layout above the label for a new pass unless the label has a fixed
    size, and on a page of plots inside scroll areas that pass costs the GUI thread 20-50 ms: Feature
    maps while training showed 60-170 ms gaps between the ticks of a 10 ms timer at each of its ~3
    refreshes a second, 24 ms at most once its prediction line was a SteadyLabel. Here the QLabel
    (``.label``) sits in a holder without a layout, so its requests stop there; the holder is
    ``lines`` lines high (the text wraps when more than one) and takes the width its layout gives it,
    at least what ``reserve``'s texts need.
    """

    def __init__(self, text: str = "", lines: int = 1, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel(text, self)
        self.label.setWordWrap(lines > 1)
        self.label.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop)
        self._lines = lines
        self._width = 0
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)
        self.fit_height()

    def fit_height(self) -> None:
        """Be ``lines`` lines of the label's font high (call again after changing the font)."""
        one_line = QtWidgets.QLabel("Xg", font=self.label.font()).sizeHint().height()
        self.setFixedHeight(one_line + (self._lines - 1) * self.label.fontMetrics().lineSpacing())

    def reserve(self, *samples: str) -> None:
        """Make sure each of these texts fits on its lines: the widest sets the least width the layout
        must give."""
        shown, wraps = self.label.text(), self.label.wordWrap()
        self.label.setWordWrap(False)  # a wrapping label's size hint is some width that wraps the text
        for sample in samples:
            self.label.setText(sample)
            self._width = max(self._width, self.label.sizeHint().width())
        self.label.setText(shown)
        self.label.setWordWrap(wraps)
        self.setMinimumWidth(self._width)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt naming)
        return QtCore.QSize(self._width, self.height())

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self.label.setGeometry(self.rect())

    def text(self) -> str:
        return self.label.text()

    def setText(self, text: str) -> None:  # noqa: N802 (the QLabel name, so it stands in for one)
        self.label.setText(text)


def model_combo() -> QtWidgets.QComboBox:
    """A combo box whose items arrive with a model (layers, channels, parameters): it fits its longest
    item whenever they change. By default Qt sizes a combo box once, when first shown, often while
    still empty, and a crowded row squeezed it: "pool1 (avg, 2×2)" read "pool1 (avg, 2×"."""
    combo = QtWidgets.QComboBox()
    combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
    # Never narrower than that either: a crowded row folds (WrapRow) or scrolls instead.
    combo.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Fixed)
    return combo


def not_a_number(text: str) -> str:
    """Why a typed ``text`` that float() refused is not a number, with the fix when it is a number
    written with a decimal comma (the way much of the world writes 0.05)."""
    typed = text.strip()
    if re.fullmatch(r"[+-]?\d*,\d+([eE][+-]?\d+)?", typed) and not _grouped_whole_number(typed):
        return f"{text!r} is not a number: write decimals with a dot ({typed.replace(',', '.')})"
    return f"{text!r} is not a number"


def _grouped_whole_number(text: str) -> bool:
    """Whether ``text`` is a whole number written with thousands commas ("1,000", "-12,345,678")."""
    return re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", text) is not None


class WholeNumberBox(QtWidgets.QSpinBox):
    """A QSpinBox that keeps a typed '.' or ',' on screen, as text it will not use, instead of dropping
    the key: "2.5" typed as epochs silently became 25. :meth:`problem` says why; Enter or leaving the
    field puts back the number it had before the edit. Thousands commas ("1,000") are read as such."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._before_edit = self.value()
        self.editingFinished.connect(self._edit_done)

    def _clean(self, text: str) -> str:
        """``text`` without the prefix and suffix."""
        return text.removeprefix(self.prefix()).removesuffix(self.suffix()).strip()

    def _unusable(self, text: str) -> bool:
        clean = self._clean(text)
        return ("." in clean or "," in clean) and not _grouped_whole_number(clean)

    def validate(self, text: str, pos: int):  # noqa: N802 (Qt naming)
        if self._unusable(text):
            return QtGui.QValidator.State.Intermediate, text, pos
        return super().validate(text, pos)

    def fixup(self, text: str) -> str:
        if self._unusable(text):
            return self.prefix() + self.textFromValue(self._before_edit) + self.suffix()
        return super().fixup(text)

    def focusInEvent(self, event: QtGui.QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        self._before_edit = self.value()
        super().focusInEvent(event)

    def _edit_done(self) -> None:
        self._before_edit = self.value()

    def problem(self) -> str | None:
        """Why the text shown is not a whole number, or None."""
        if self._unusable(self.text()):
            return f"{self._clean(self.text())!r} is not a whole number: type digits only"
        return None


class DecimalBox(QtWidgets.QDoubleSpinBox):
    """A QDoubleSpinBox that reads a typed decimal comma as the dot it shows. Numbers are read with a
    dot on any desktop (the window sets the C locale), where Qt drops a comma as a thousands separator:
    "0,5" became 5."""

    def validate(self, text: str, pos: int):  # noqa: N802 (Qt naming)
        return super().validate(text.replace(",", "."), pos)


def text_scale() -> float:
    """The desktop font's size against the 9 pt that painted views were laid out for (at least 1): their
    texts and the room for them grow with the window's (at 16 pt the conv stepper's stayed at 12-15 px
    beside 21-px controls, and the confusion matrix's "100%" was cut). Desktops whose default font is
    larger get a little more too (GNOME's 11 pt: 1.22)."""
    return max(1.0, QtGui.QGuiApplication.font().pointSizeF() / 9.0)


GLYPHS = "▶◀▸⏸↻❚"  # drawn on buttons, read aloud as "black right-pointing triangle"


def set_button_text(button: QtWidgets.QAbstractButton, text: str) -> None:
    """Show ``text`` with its glyphs and give screen readers the words alone ("▶ Play" -> "Play")."""
    button.setText(text)
    button.setAccessibleName("".join(ch for ch in text if ch not in GLYPHS).strip())


def glyph_button(text: str) -> QtWidgets.QPushButton:
    """A push button showing ``text`` whose accessible name is its words alone (see set_button_text)."""
    button = QtWidgets.QPushButton()
    set_button_text(button, text)
    return button


FIELDS = (QtWidgets.QComboBox, QtWidgets.QAbstractSpinBox, QtWidgets.QLineEdit, QtWidgets.QAbstractSlider,
          QtWidgets.QAbstractButton, QtWidgets.QAbstractItemView, QtWidgets.QGraphicsView)


def _label_before(widget: QtWidgets.QWidget) -> QtWidgets.QLabel | None:
    """The QLabel laid out just before ``widget`` in the layout holding it (how the views label a field),
    when it names it in a word: "×" between two sizes or "a" before a matrix say less than the tooltip."""
    parent = widget.parentWidget()
    if parent is None:
        return None
    for layout in [parent.layout(), *parent.findChildren(QtWidgets.QLayout)]:
        index = -1 if layout is None else layout.indexOf(widget)
        if index > 0:
            before = layout.itemAt(index - 1).widget()
            return before if isinstance(before, QtWidgets.QLabel) and re.search(r"[^\W\d_]{4}", before.text()) \
                else None
    return None


def _part_of_a_control(widget: QtWidgets.QWidget) -> bool:
    """A spin box's line edit, a combo box's pop-up list: named with their control."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, (QtWidgets.QAbstractSpinBox, QtWidgets.QComboBox)):
            return True
        parent = parent.parentWidget()
    return False


def name_fields(root: QtWidgets.QWidget, fallback: str) -> None:
    """Give every field under ``root`` that a screen reader could not name a name: the label laid out in
    front of it becomes its buddy, else its tooltip's first phrase is its accessible name, else
    ``fallback`` (the view's title). Most of the views' combo boxes, spin boxes, sliders, plots and
    canvases were read as "combo box" or nothing."""
    labelled = {label.buddy() for label in root.findChildren(QtWidgets.QLabel) if label.buddy() is not None}
    for widget in root.findChildren(QtWidgets.QWidget):
        if (not isinstance(widget, FIELDS) or isinstance(widget, QtWidgets.QScrollBar) or widget.accessibleName()
                or widget in labelled or _part_of_a_control(widget)):
            continue
        if isinstance(widget, QtWidgets.QAbstractButton) and widget.text().strip():
            continue  # read by its text
        label = _label_before(widget)
        if label is not None:
            label.setBuddy(widget)
        elif widget.toolTip():
            plain = QtGui.QTextDocumentFragment.fromHtml(widget.toolTip()).toPlainText()
            phrase = re.split(r"(?<!e\.g)(?<!i\.e)[.:;]\s|\n", plain + " ", maxsplit=1)[0].strip()
            widget.setAccessibleName(phrase if len(phrase) <= 80 else phrase[:80].rsplit(" ", 1)[0] + "…")
        elif not isinstance(widget.parentWidget(), QtWidgets.QAbstractItemView):  # not a table's own header
            widget.setAccessibleName(fallback)


class FocusFramed:
    """Mixin for painted widgets that take keys (the pad, the conv stepper's canvas): a frame in the
    style's highlight colour while they have the focus, so Tab no longer lands on nothing visible.
    Call ``paint_focus_frame(painter)`` last in ``paintEvent``."""

    def paint_focus_frame(self, painter: QtGui.QPainter) -> None:
        if self.hasFocus():
            painter.setPen(QtGui.QPen(self.palette().color(QtGui.QPalette.ColorRole.Highlight), 2))
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawRect(QtCore.QRectF(self.rect()).adjusted(1, 1, -1, -1))

    def focusInEvent(self, event: QtGui.QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        super().focusInEvent(event)
        self.update()

    def focusOutEvent(self, event: QtGui.QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        super().focusOutEvent(event)
        self.update()


def off_the_tab_chain(root: QtWidgets.QWidget) -> None:
    """Plots under ``root`` take the focus on a click only: no key does anything in them, and Tab landed
    on them with nothing to show for it (twice on the Loss page)."""
    for plot in root.findChildren(QtWidgets.QGraphicsView):
        if plot.focusPolicy() & QtCore.Qt.FocusPolicy.TabFocus:
            plot.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)
    if isinstance(root, QtWidgets.QGraphicsView):
        root.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)


def frame_focus(view: QtWidgets.QAbstractItemView) -> None:
    """A highlight-coloured border while ``view`` has the focus: an empty list or table showed none."""
    view.setStyleSheet(f"{type(view).__name__}:focus {{ border: 2px solid palette(highlight); }}")


def describe_for_screen_readers(widget: QtWidgets.QWidget, text: str) -> None:
    """Set what a painted widget (a canvas, the matrix, the bars) shows, in words, as its accessible
    description, and tell an active screen reader it changed: their content was only painted."""
    if widget.accessibleDescription() == text:
        return
    widget.setAccessibleDescription(text)
    if QtGui.QAccessible.isActive():
        QtGui.QAccessible.updateAccessibility(
            QtGui.QAccessibleEvent(widget, QtGui.QAccessible.Event.DescriptionChanged))


def controls_row(*parts, stretch: bool = True) -> QtWidgets.QHBoxLayout:
    """Widgets left to right (a str stands for a QLabel of that text); with ``stretch`` the spare width
    goes to the right, so the parts keep their size on a line of their own (see WrapRow)."""
    layout = QtWidgets.QHBoxLayout()
    for part in parts:
        layout.addWidget(QtWidgets.QLabel(part) if isinstance(part, str) else part)
    if stretch:
        layout.addStretch(1)
    return layout


class WrapRow(QtWidgets.QWidget):
    """Widgets side by side while the row is wide enough for all of them, else one under another: in
    a narrow window (a small screen with the Training dock open) a view's controls then make the page
    scroll down, never sideways.

    ``parts``: widgets, or layouts (each is wrapped in a widget of its own); ``stretch``: the
    stretch factor of each part side by side (0 for all by default)."""

    def __init__(self, *parts, stretch: tuple[int, ...] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._box = QtWidgets.QBoxLayout(QtWidgets.QBoxLayout.Direction.LeftToRight, self)
        self._box.setContentsMargins(0, 0, 0, 0)
        for part, factor in zip(parts, stretch or (0,) * len(parts)):
            if isinstance(part, QtWidgets.QLayout):
                holder = QtWidgets.QWidget()
                part.setContentsMargins(0, 0, 0, 0)
                holder.setLayout(part)
                part = holder
            self._box.addWidget(part, factor)

    def side_by_side(self) -> bool:
        return self._box.direction() == QtWidgets.QBoxLayout.Direction.LeftToRight

    def _part_widths(self) -> list[int]:
        """The least width of each shown part, as the row's layout counts it (hidden parts: none)."""
        items = (self._box.itemAt(i) for i in range(self._box.count()))
        return [item.minimumSize().width() for item in items if not item.isEmpty()]

    def _width_side_by_side(self) -> int:
        """The least width that holds every shown part side by side."""
        widths = self._part_widths()
        return sum(widths) + self._box.spacing() * max(len(widths) - 1, 0)

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt naming)
        # As narrow as the widest part: the row can always fold to one part per line.
        return QtCore.QSize(max(self._part_widths(), default=0), self._box.minimumSize().height())

    def _fold(self, width: int) -> None:
        fits = width >= self._width_side_by_side()
        if fits != self.side_by_side():
            self._box.setDirection(QtWidgets.QBoxLayout.Direction.LeftToRight if fits
                                   else QtWidgets.QBoxLayout.Direction.TopToBottom)
            self.updateGeometry()  # the row's height changed: the page around it lays out again

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self._fold(event.size().width())
        super().resizeEvent(event)

    def event(self, event: QtCore.QEvent) -> bool:
        # A part that grew (a longer status text) asks for a layout pass without resizing the row.
        if event.type() == QtCore.QEvent.Type.LayoutRequest:
            self._fold(self.width())
        return super().event(event)


@lru_cache(maxsize=4)
def validation_set(input_shape: tuple[int, int, int], classes: tuple[int, ...]):
    """The bundled held-out samples that fit a model's input (H, W, C): MNIST validation (500) for
    28x28x1, the 8x8 digits test split (restricted to the model's classes) for 8x8x1. None if nothing
    fits (e.g. a model loaded from a file that takes colour images). Loaded once per process; the
    arrays are owned here, not by any model."""
    from engine import data

    if tuple(input_shape) == (28, 28, 1):
        return data.load_bundled_mnist()[1]
    if tuple(input_shape) == (8, 8, 1):
        return data.load_digits_8x8(classes=classes)[1]
    return None


def held_out_images(model, window=None):
    """The held-out images a view offers for ``model``: the window's validation set (full MNIST's
    10,000 test images once loaded) when it fits the model's input and classes, else the bundled ones
    (:func:`validation_set`), else None."""
    data = getattr(window, "val_data", None)
    if data is not None and data.fits(model.input_shape, model.classes):
        return data
    return validation_set(tuple(model.input_shape), tuple(model.classes))


class SamplePicker(QtWidgets.QWidget):
    """Index spinbox + Prev / Next / Random over a validation set; emits ``picked(x, label)``.

    x: (H, W, C) float32. ``show_external(text)`` marks that the current sample came from elsewhere
    (the drawing pad), so the spinbox no longer claims to be showing it.
    """

    picked = QtCore.Signal(object, object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._dataset = None
        self._external = False  # the view shows a sample sent from elsewhere, not the spinbox's
        self._rng = np.random.default_rng()
        self.spin = QtWidgets.QSpinBox()
        self.spin.setToolTip("Index of the validation sample to show: held-out images, never trained on (the "
                             "bundled 500, or full MNIST's 10,000 test images once loaded).")
        self.prev_button = glyph_button("◀ Prev")
        self.prev_button.setToolTip("Show the previous validation sample.")
        self.next_button = glyph_button("Next ▶")
        self.next_button.setToolTip("Show the next validation sample.")
        self.random_button = QtWidgets.QPushButton("Random")
        self.random_button.setToolTip("Pick a random validation sample.")
        self.status = QtWidgets.QLabel()
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel("Sample"))
        for w in (self.spin, self.prev_button, self.next_button, self.random_button, self.status):
            row.addWidget(w)
        row.addStretch(1)
        self.spin.valueChanged.connect(self._emit)
        self.prev_button.clicked.connect(self._prev)
        self.next_button.clicked.connect(self._next)
        self.random_button.clicked.connect(self._random)
        self.setEnabled(False)

    def set_dataset(self, dataset) -> bool:
        """Use dataset (``x: (N, H, W, C)``, ``y: (N,)``) or None (no bundled data fits the model).
        True when it is another dataset than before."""
        if dataset is self._dataset:
            return False
        self._dataset = dataset
        self.setEnabled(dataset is not None)
        self.spin.blockSignals(True)
        self.spin.setRange(0, max(len(dataset.y) - 1, 0) if dataset is not None else 0)
        self.spin.blockSignals(False)
        if not self._external:  # a sample sent from the pad stays described as such
            self.show_index()
        return True

    def current(self):
        """(x: (H, W, C) float32, label) for the spinbox index, or None without a dataset."""
        if self._dataset is None:
            return None
        i = self.spin.value()
        return np.ascontiguousarray(self._dataset.x[i], dtype=np.float32), int(self._dataset.y[i])

    def show_external(self, text: str, tooltip: str = "") -> None:
        """Describe the sample shown as sent from elsewhere: a short ``text`` (the row stays narrow) and
        the whole story in ``tooltip``."""
        self._external = True
        self.status.setText(text)
        self.status.setToolTip(tooltip)

    def show_index(self) -> None:
        """Describe the spinbox's sample as the one shown."""
        self._external = False
        self.status.setToolTip("")
        if self._dataset is not None:
            self.status.setText(f"of {len(self._dataset.y)} ({self._dataset.name})")

    def follow_window_data(self, model, window) -> None:
        """The window loaded other data: pick from its held-out images for ``model`` (see
        :func:`held_out_images`) and, when they changed, show the one at the index (as a pick does)
        unless a sample sent from elsewhere is shown."""
        if self.set_dataset(held_out_images(model, window)) and not self._external:
            self._emit()

    def _prev(self) -> None:
        self.spin.stepBy(-1)

    def _next(self) -> None:
        self.spin.stepBy(1)

    def _random(self) -> None:
        if self._dataset is not None:
            self.spin.setValue(int(self._rng.integers(len(self._dataset.y))))

    def _emit(self) -> None:
        sample = self.current()
        if sample is not None:
            self.show_index()
            self.picked.emit(*sample)


class SampleView(LazyView):
    """A LazyView that shows one input sample: picked with its own ``self.picker`` (a
    :class:`SamplePicker`, created by the subclass) or sent by another view through the window.
    Subclasses set ``self._x`` / ``self._label`` to None first and implement ``_new_sample()``."""

    _window = None  # the main window, once attached

    def sample_changed(self, x: np.ndarray, label: int | None) -> None:
        """x: (H, W, C) float32 from elsewhere (e.g. the drawing pad); label: class index or None."""
        x = np.array(x, dtype=np.float32, copy=True)
        if self._x is not None and label == self._label and np.array_equal(x, self._x):
            return  # our own pick echoed back by the window
        self._x, self._label = x, label
        self.picker.show_external("showing a sent sample",
                                  "This sample was sent from the drawing pad (Look inside) or from the "
                                  "Evaluation view; choose an index to go back to the validation images.")
        self._new_sample()

    def attach(self, window) -> None:
        """Let picks here update every view through the window, when it offers ``set_sample``; offer
        the window's held-out images (see :func:`held_out_images`)."""
        self._window = window
        if hasattr(window, "set_sample"):
            self.picker.picked.connect(window.set_sample)

    def datasets_changed(self) -> None:
        """The window loaded other data: pick from its held-out images (full MNIST's 10,000 test
        images), showing the one at the picker's index unless a sent sample is shown."""
        if self._model is not None:
            self.picker.follow_window_data(self._model, self._window)

    def _picked(self, x: np.ndarray, label: int) -> None:
        """The sample picker chose ``x: (H, W, C)`` with class ``label``: show it."""
        self._x, self._label = x, label
        self._new_sample()

    def _sample_for(self, model) -> bool:
        """Point the picker at the validation samples that fit ``model``; keep the sample shown when it
        fits the model's input (H, W, C), else take the picker's. False when no sample fits."""
        self.picker.set_dataset(held_out_images(model, self._window))
        if self._x is None or self._x.shape != tuple(model.input_shape):
            sample = self.picker.current()
            if sample is None:
                return False
            self._x, self._label = sample
            self.picker.show_index()
        return True

    def _new_sample(self) -> None:
        raise NotImplementedError
