"""Kernel heatmaps: every conv layer's kernels (and the first dense layer's weights) as images.

One mosaic ImageItem per layer: rows = output channel, columns = input channel, each tile one
kh x kw kernel (a layer with a single input channel wraps its kernels into a near-square grid).
The first dense layer is shown the same way once its weights ``(H*W*C, units)`` are reshaped to
``(H, W, C, units)``, the shape of the feature maps it reads: tile (unit, channel) is what that unit
looks for in that channel. Colours are diverging (blue < 0 < red) with symmetric levels, so white
is exactly zero. Updates copy the weights into preallocated buffers (no allocation per frame).

While training, a scale stays put as long as the weights fit it and fill at least half of it
(``colour_scale.steady_levels``, as the feature maps do): refitted to max|w| at every update, every
kernel of a layer faded or darkened whenever its single largest weight moved (conv3's scale grew 30%
in the first 8 s of a run), so kernels seemed to change that had not, and the colour bar's ticks
crept at every update. Other weights (a Reset, a fresh run, a file) get scales fitted to them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.views.colour_scale import diverging_cmap, fmt, steady_levels, symmetric_levels
from app.views.images import ImagePanel, Mosaic, grid_columns
from app.views.lazy_view import LazyView
from app.views.scenes import canvas_follows_scene, fit_canvas_to_scene

SCALES = (
    ("layer", "Per layer",
     "Each layer has its own symmetric scale, fitted to its largest |w| with 10% to spare: every layer shows "
     "its full contrast. It changes only when the weights outgrow it or shrink below half of it, so a "
     "kernel's colours change when its weights do."),
    ("shared", "Shared across layers",
     "One scale over all shown layers, fitted to their largest |w| (kept while the weights fit it, as per "
     "layer): compare weight sizes between layers."),
    ("locked", "Locked (frozen now)", "Freeze the current scales: during training, watch weights grow or shrink "
                                      "against a fixed colour scale, even beyond its ends."),
)
ALL_CONV = "__all_conv__"


@dataclass
class _WeightLayer:
    """One weight tensor shown as a mosaic, with its layout.

    shape4: (kh, kw, c_in, c_out) — a conv kernel, or a dense weight reshaped to (H, W, C, units).
    wrap: tiles laid out in a near-square grid (single input channel) instead of rows = c_out.
    """

    name: str
    kind: str  # "conv" or "dense"
    shape4: tuple[int, int, int, int]
    wrap: bool
    mosaic: Mosaic
    panel: ImagePanel | None = None
    levels: tuple[float, float] | None = None  # as drawn; None: not drawn since a new scale was chosen
    locked: tuple[float, float] | None = None
    max_abs: float | None = None  # of the last fill

    def fill(self, w: np.ndarray) -> None:
        """Copy weights into the mosaic and record max|w|. w: the layer's live weight array, (kh, kw,
        c_in, c_out) for a conv layer, (n_in, units) for a dense one (reshaped to ``shape4``)."""
        k4 = w.reshape(self.shape4)                             # (kh, kw, c_in, c_out), a view
        if self.wrap:
            self.mosaic.fill_tiles(k4[:, :, 0, :].transpose(2, 0, 1))   # (c_out, kh, kw)
        else:
            self.mosaic.fill_grid(k4.transpose(3, 0, 2, 1))             # (c_out, kh, c_in, kw)
        self.max_abs = float(np.abs(w).max()) if w.size else 0.0

    def channels_at(self, i: int, j: int) -> tuple[int, int] | None:
        """Tile (row i, col j) -> (c_out, c_in), None for an unused tile of a wrapped grid."""
        if self.wrap:
            out = i * self.mosaic.cols + j
            return (out, 0) if out < self.shape4[3] else None
        return i, j


def _weight_layers(model) -> list[tuple[str, str, tuple[int, int, int, int]]]:
    """(name, kind, shape4) of every conv layer and of the first dense layer when it reads a
    flattened (H, W, C) map (its weights can then be drawn as images)."""
    found = []
    in_shapes = [model.input_shape] + list(model.shapes)
    for i, layer in enumerate(model.layers):
        if layer.kind == "Conv2D":
            found.append((layer.name, "conv", tuple(layer.params["w"].shape)))
        elif layer.kind == "Dense":
            # Walk back over shape-preserving layers to the map that was flattened.
            j = i
            while j > 0 and len(in_shapes[j]) == 1 and model.layers[j - 1].kind in ("Flatten", "Dropout"):
                j -= 1
            source = in_shapes[j]
            if len(source) == 3:
                found.append((layer.name, "dense", (*source, layer.units)))
            break
    return found


LOOK_FOR = ("Learned kernels rarely look like neat edges. To see them change, press Play in the Kernel "
            "timeline during a run; to see what they detect, open Feature maps.")


class KernelView(LazyView):
    """All conv kernels as heatmaps, live during training; hover reads out indices and value."""

    PX_MAX = 8   # screen pixels per mosaic pixel in the stack of all layers, at most (keeps it short)
    PX_MIN = 2
    # ... except that a small layer may grow to this height: at 8 px conv1's 3x3 kernels were 24 px
    # squares, a quarter of what the kernel timeline draws of the same kernels
    SMALL_LAYER_PX = 320

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("kernelView")
        self.setToolTip("The learned convolution kernels. Each small square is one kernel: the weights one filter "
                        "(output channel) applies to one input channel. Red weights respond to high values there "
                        "(bright pixels for conv1, strong features deeper), blue ones to low values.")
        self._layers: dict[str, _WeightLayer] = {}
        self._signature = None
        self._drawn_model = None  # the model object last drawn: the window makes a new one for new weights
        self._panels_for = None  # the Show choice the panels were made for

        self.show_combo = QtWidgets.QComboBox()
        self.show_combo.setToolTip("Show all conv layers stacked, one layer large, or the first dense "
                                   "layer's weights reshaped to the feature maps it reads.")
        self.scale_combo = QtWidgets.QComboBox()
        for key, text, tip in SCALES:
            self.scale_combo.addItem(text, key)
            self.scale_combo.setItemData(self.scale_combo.count() - 1, tip, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.scale_combo.setToolTip("How colours map to weight values. White is always exactly zero.")
        self.caption = QtWidgets.QLabel()
        self.caption.setWordWrap(True)

        self.plot = self.make_plot()
        self.plot.ci.setSpacing(4)
        self.scroll = QtWidgets.QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)  # no focus frame: not a Tab stop
        self.scroll.setWidget(self.plot)
        canvas_follows_scene(self.plot)
        self.make_readout("Hover over a kernel to read its weights.")

        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Show"))
        bar.addWidget(self.show_combo)
        bar.addSpacing(12)
        bar.addWidget(QtWidgets.QLabel("Colour scale"))
        bar.addWidget(self.scale_combo)
        bar.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.caption)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.hover)

        self.show_combo.currentIndexChanged.connect(self._show_changed)
        self.scale_combo.currentIndexChanged.connect(self._scale_changed)

    # ------------------------------------------------------------------ protocol

    def _refresh(self) -> None:
        model = self._model
        if model is None:
            return
        found = _weight_layers(model)
        signature = tuple(found)
        if signature != self._signature:
            self._signature = signature
            self._build_layers(found)
        if self.show_combo.currentData() != self._panels_for:  # another Show choice since the last refresh
            self._rebuild_panels()
        if model is not self._drawn_model:  # other weights (Reset, a fresh run, a file), not a training step:
            self._drawn_model = model       # fitted afresh, not shown on the scale of the weights they replace
            for layer in self._layers.values():
                layer.levels = None
        params = model.params()
        for layer in self._shown():
            layer.fill(params[f"{layer.name}.w"])
        self._apply_levels()

    # ------------------------------------------------------------------ building

    def _build_layers(self, found) -> None:
        self._layers = {}
        for name, kind, shape4 in found:
            kh, kw, c_in, c_out = shape4
            wrap = c_in == 1
            if wrap:
                cols = grid_columns(c_out)
                mosaic = Mosaic(-(-c_out // cols), cols, kh, kw)
            else:
                mosaic = Mosaic(c_out, c_in, kh, kw)
            self._layers[name] = _WeightLayer(name, kind, shape4, wrap, mosaic)
        self.show_combo.blockSignals(True)
        current = self.show_combo.currentData()
        self.show_combo.clear()
        self.show_combo.addItem("All conv layers", ALL_CONV)
        for layer in self._layers.values():
            if layer.kind == "conv":
                self.show_combo.addItem(f"{layer.name} only", layer.name)
            else:
                h, w, c, units = layer.shape4
                self.show_combo.addItem(f"{layer.name}: {units} units' weights as {h}×{w}×{c} images", layer.name)
        index = self.show_combo.findData(current)
        self.show_combo.setCurrentIndex(max(index, 0))
        self.show_combo.blockSignals(False)
        self._rebuild_panels()

    def _shown(self) -> list[_WeightLayer]:
        key = self.show_combo.currentData()
        if key == ALL_CONV:
            return [layer for layer in self._layers.values() if layer.kind == "conv"]
        return [self._layers[key]] if key in self._layers else []

    def _rebuild_panels(self) -> None:
        """Lay out panels for the layers selected in the Show combo (panels are cheap to remake;
        the mosaic buffers persist)."""
        self.plot.ci.clear()
        for layer in self._layers.values():
            layer.panel = None
        self._panels_for = self.show_combo.currentData()
        shown = self._shown()
        for layer in shown:
            tip = ("Each tile holds the weights one dense unit gives to one channel of the last pooled maps: "
                   "the pattern that unit looks for there." if layer.kind == "dense" else
                   "Each tile is one kernel; an output channel adds up its row of kernels, each slid over "
                   "its input channel. Training shapes them into edge and stroke detectors.")
            layer.panel = ImagePanel(self.plot.ci, cmap=diverging_cmap(), bar_label="weight", tooltip=tip,
                                     name=layer.name)
            self.plot.ci.nextRow()
            mosaic = layer.mosaic
            if layer.wrap:
                layer.panel.set_tile_ticks(mosaic, "filter (row start)", "+ column",
                                           [str(i * mosaic.cols) for i in range(mosaic.rows)],
                                           [f"+{j}" for j in range(mosaic.cols)])
            elif layer.kind == "dense":
                layer.panel.set_tile_ticks(mosaic, "unit", "input channel")
            else:
                layer.panel.set_tile_ticks(mosaic, "output channel", "input channel")
            layer.panel.title.setText(self._title(layer))
        self._update_caption(shown)
        self._size_panels()

    def _show_changed(self) -> None:
        # The refresh remakes the panels, not this: remade here and filled after the rate limit's wait (often
        # while training), each new panel showed ImagePanel's 1x1 placeholder meanwhile, a solid blue square
        # on a 0 … 1 colour bar. Until the refresh the last choice's panels stay.
        self._request_refresh(by_user=True)

    def _update_caption(self, shown) -> None:
        # what to look for: a learner expected neat edge detectors and saw noise-like 3x3 tiles
        look = ("" if all(layer.kind == "dense" for layer in shown) else " " + LOOK_FOR)
        if any(layer.kind == "dense" for layer in shown):
            self.caption.setText(
                "Rows: the dense layer's units. Columns: the channels of the last pooled feature maps. Each tile "
                "is the weight a unit gives to every position of that channel: its learned template." + look)
        else:
            self.caption.setText(
                "Rows: output channel (one filter each). Columns: input channel. Each tile is one kernel; "
                "the output channel sums all its row's kernels slid over the input channels. A layer with "
                "one input channel (conv1) is wrapped instead: its filters fill the grid row by row (filter = "
                "row start + column). Blue = negative, white = 0, red = positive." + look)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._size_panels()

    def _size_panels(self) -> None:
        """Draw mosaic pixels as large as the width allows, at least PX_MIN screen pixels and at most
        PX_MAX, or the size that makes the layer SMALL_LAYER_PX tall (one layer shown alone: as tall as
        the page), and let the scroll area scroll when the stack is taller than the window."""
        # The width beside a vertical scroll bar, shown or not: the stack is usually taller than the
        # view, and sizing for the full width made the bar's arrival add a horizontal one.
        inner = self.scroll.width() - 2 * self.scroll.frameWidth()
        inner -= self.scroll.verticalScrollBar().sizeHint().width()
        shown = [layer for layer in self._shown() if layer.panel is not None]
        tall = self.scroll.viewport().height() - 60 if len(shown) == 1 else self.SMALL_LAYER_PX  # - title, axis
        # room beside a mosaic for its axis, colour bar, margins and the canvas' frame: 173 px measured for
        # conv4 at the default font (170 scrolled the page sideways by a pixel or two)
        avail = max(inner - 180, 100)
        for layer in shown:
            mh, mw = layer.mosaic.shape
            layer.panel.fit((mh, mw), min(max(self.PX_MAX, tall / mh), max(self.PX_MIN, avail / mw)))
        fit_canvas_to_scene(self.plot)

    # ------------------------------------------------------------------ levels

    def _scale_changed(self) -> None:
        locking = self.scale_combo.currentData() == "locked"
        for layer in self._layers.values():
            layer.locked = layer.levels if locking else None
            if not locking:  # fitted afresh: a scale kept from the other mode would make the choice do nothing
                layer.levels = None
        self._apply_levels()

    def _apply_levels(self) -> None:
        shown = [layer for layer in self._shown() if layer.max_abs is not None]
        mode = self.scale_combo.currentData()
        shared = None
        if mode == "shared" and shown:
            drawn = {layer.levels for layer in shown}  # one scale, unless other layers were shown since
            shared = steady_levels(symmetric_levels(np.array([layer.max_abs for layer in shown])),
                                   drawn.pop() if len(drawn) == 1 else None)
        for layer in shown:
            if mode == "locked" and layer.locked is not None:
                levels = layer.locked
            elif shared is not None:
                levels = shared
            else:
                levels = steady_levels(symmetric_levels(np.array([layer.max_abs])), layer.levels)
            if mode == "locked" and layer.locked is None:
                layer.locked = levels
            layer.levels = levels
            if layer.panel is not None:
                layer.panel.set(layer.mosaic.buffer, levels)

    @staticmethod
    def _title(layer: _WeightLayer) -> str:
        """Static (set once: re-laying out text on every live update is costly); the colour bar
        beside the mosaic carries the changing scale."""
        kh, kw, c_in, c_out = layer.shape4
        if layer.kind == "dense":
            return f"<b>{layer.name}</b>: {c_out} units × {c_in} channels, each {kh}×{kw}"
        return f"<b>{layer.name}</b>: {c_out} filters × {c_in} input channel{'s' * (c_in > 1)}, each {kh}×{kw}"

    # ------------------------------------------------------------------ hover

    def hover_text(self, name: str, row: int, col: int) -> str | None:
        """What the mosaic pixel (row, col) of layer ``name`` shows, or None on a separator."""
        layer = self._layers[name]
        where = layer.mosaic.locate(row, col)
        if where is None:
            return None
        channels = layer.channels_at(where[0], where[1])
        if channels is None:
            return None
        out, cin = channels
        r, c = where[2], where[3]
        value = fmt(float(layer.mosaic.buffer[row, col]))
        # Rows and columns count from 1, as in the Conv stepper (its w(1,2)), Pooling and Feature maps;
        # channels and the flattened index from 0, as arrays do.
        if layer.kind == "dense":
            h, w, ch, _ = layer.shape4
            flat = (r * w + c) * ch + cin
            return (f"{name}  unit {out}  ←  channel {cin} at (row {r + 1}, col {c + 1})  "
                    f"[flattened input {flat}]   w = {value}")
        return f"{name}  output channel {out}  input channel {cin}  kernel row {r + 1} col {c + 1}   w = {value}"

    def hover_text_at(self, scene_pos) -> str | None:
        for layer in self._shown():
            pixel = None if layer.panel is None else layer.panel.pixel_at(scene_pos)
            if pixel is not None:
                return self.hover_text(layer.name, *pixel)
        return None
