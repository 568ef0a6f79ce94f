"""Image panels for the insight views: mosaic tiling, a titled image with its colour bar, and the scene
label whose new texts do not lay the scene out again (``SteadyLabelItem``).

A *mosaic* packs many small images (kernels, feature-map channels) into ONE float32 array with a
1-pixel NaN frame around every tile, so a whole layer is drawn by a single ``pg.ImageItem``
(one ImageItem per layer costs ~0.4 ms per update where a grid of separate cells costs ~5 ms).
NaN pixels are drawn transparent, so the separators show the dark background between tiles.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.views.colour_scale import ColourScale, diverging_cmap

BAR_MAX_HEIGHT = 320  # px: a colour bar beside a taller image stops here, at the image's top


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
