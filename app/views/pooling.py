"""Pooling masks and the backward routing through a pooling layer, for one sample and one channel.

Forward (top row): the map entering the pooling layer with its k x k windows drawn, the routing
weights (max pooling: the mask, 1 on each window's winner; average pooling: 1/k² everywhere) and the
pooled map. Backward (bottom row, right to left): δ arriving at the pooling layer's output — the real
∂L/∂y for this sample's loss — and δ routed to the input. A stepper walks the windows one by one with
the numbers of the current window. Everything shown is computed by the engine: the model's layers
on a private copy of the model (forward, loss, backward down to the pooling layer) and
``engine.ops``' pooling backward functions for the per-window routes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.cell_format import CellFormat
from app.views.colour_scale import (cmap_for_levels, diverging_cmap, fmt, sequential_cmap, steady_levels,
                                    symmetric_levels, value_levels)
from app.views.images import ImagePanel
from app.views.samples import SamplePicker, SampleView
from app.views.tones import ToneLabel
from app.views.widgets import WrapRow, controls_row, glyph_button, model_combo, set_button_text, steady_info_label
from engine import ops
from engine.model import Sequential
from engine.presets import PRESETS

POOL_KINDS = {"MaxPool2D": "max", "AvgPool2D": "avg"}
GRID_PEN = pg.mkPen(255, 255, 255, 120, width=1)
WINNER_PEN = pg.mkPen("#ff9f1c", width=2)
CURRENT_PEN = pg.mkPen("#ffe600", width=3)
CURRENT_PEN.setCosmetic(True)


@dataclass
class PoolingSample:
    """Forward and backward through one pooling layer for one sample (all arrays owned copies).

    x: (H, W, C) the pooling layer's input; y: (Ho, Wo, C) its output; weights: (H, W, C) the forward
    routing — for max pooling the engine's mask (1 on each window's first maximum), for average
    pooling 1/k² in every window cell (0 in dropped leftover rows/cols); delta_out: (Ho, Wo, C)
    ∂L/∂y for this sample's loss; delta_in: (H, W, C) the engine's pooling backward of delta_out,
    routed as the model's variant routes it (``transposed``: seed 002's wrong routing).
    label: the class the loss was taken against; predicted: True when that is the network's own
    prediction because the sample had no label. wrong_above: a pooling layer above this one routes δ
    transposed, so delta_out is not the true ∂L/∂y but what that wrong backward delivers.
    """

    layer: str
    kind: str
    size: int
    transposed: bool
    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    delta_out: np.ndarray
    delta_in: np.ndarray
    label: int
    predicted: bool
    loss: float
    wrong_above: bool = False

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.y.shape[:2]

    def route(self, channel: int, p: int, q: int) -> np.ndarray:
        """Where a unit δ at output cell (p, q) of ``channel`` lands: (H, W), from engine.ops."""
        ho, wo = self.out_hw
        h, w = self.x.shape[:2]
        dy = np.zeros((1, ho, wo, 1), self.delta_out.dtype)
        dy[0, p, q, 0] = 1
        if self.kind == "max":
            mask = self.weights[None, :, :, channel:channel + 1]
            return ops.maxpool2d_backward(dy, mask, self.size, transposed=self.transposed)[0, :, :, 0]
        return ops.avgpool2d_backward(dy, (1, h, w, 1), self.size, transposed=self.transposed)[0, :, :, 0]

    def destination(self, p: int, q: int) -> tuple[int, int]:
        """The window whose cells receive output cell (p, q)'s δ: (p, q), or (q, p) when transposed."""
        return (q, p) if self.transposed else (p, q)


class ScratchModel:
    """A private copy of the display model for the forward/backward the pooling view needs.

    Running backward on the display model would overwrite its gradients (which other views may show);
    this copy is rebuilt only when the architecture changes and otherwise just receives the weights.
    """

    def __init__(self) -> None:
        self.model: Sequential | None = None

    def sync(self, model) -> Sequential:
        if self.model is None or self.model.spec != model.spec or self.model.dtype != model.dtype:
            self.model = Sequential(model.spec, dtype=model.dtype)
        mine = self.model.params()
        for name, value in model.params().items():
            mine[name][...] = value
        self.model.variant = model.variant
        return self.model


def pooling_layers(model) -> list[str]:
    return [layer.name for layer in model.layers if layer.kind in POOL_KINDS]


def pooling_sample(model: Sequential, x: np.ndarray, label: int | None, layer_name: str) -> PoolingSample:
    """Run one sample through ``model`` (inference mode: dropout off), take the loss against
    ``label`` (or the prediction when None), backpropagate down to ``layer_name`` and through it.

    model: a model this call may modify (caches, gradients) — pass a ScratchModel's copy.
    x: (H, W, C) the model's input. Returns a PoolingSample for that layer.
    """
    predicted = label is None
    sample = model.delta_at(x, layer_name, label)
    pool_in, pool_out, d = sample.layer_input, sample.layer_output, sample.delta  # (1, ...) each
    pool = model.layer(layer_name)
    delta_in = pool.backward(d)                                  # the engine's routing, variant included
    kind = POOL_KINDS[pool.kind]
    if kind == "max":
        weights = pool.mask[0].copy()
    else:  # the (correct) backward of an all-ones δ is exactly the 1/k² averaging weights
        weights = ops.avgpool2d_backward(np.ones_like(pool_out), pool_in.shape, pool.size)[0]
    above = model.layers[model.layers.index(pool) + 1:]
    wrong_above = any(getattr(layer, "transposed", False) for layer in above)
    return PoolingSample(layer_name, kind, pool.size, bool(pool.transposed), pool_in[0].copy(),
                         pool_out[0].copy(), weights, d[0].copy(), delta_in[0].copy(),
                         sample.label, predicted, sample.loss, wrong_above)


def window_grid(rows: int, cols: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Line segments (x, y), each ``(2 (rows + cols + 2),)`` for ``connect="pairs"``, outlining a rows x
    cols grid of k x k windows."""
    xs, ys = [], []
    for i in range(rows + 1):
        xs += [0, cols * k]
        ys += [i * k, i * k]
    for j in range(cols + 1):
        xs += [j * k, j * k]
        ys += [0, rows * k]
    return np.array(xs, float), np.array(ys, float)


def step_map(hw: tuple[int, int], out_hw: tuple[int, int], k: int, transposed: bool) -> np.ndarray:
    """(H, W) int: the stepper step (window index, row-major over the output) at which each input
    cell receives its δ; -1 for leftover rows/cols that no window covers (their δ is always 0)."""
    ho, wo = out_hw
    steps = np.full(hw, -1, np.int64)
    order = np.arange(ho * wo).reshape(ho, wo)
    if transposed:  # output cell (p, q) writes into window (q, p)
        order = order.T
    steps[:ho * k, :wo * k] = np.repeat(np.repeat(order, k, axis=0), k, axis=1)
    return steps


def _pos(row: int, col: int) -> str:
    """A 0-based (row, col) as the page writes it: counted from 1, as in the Conv stepper (and seed 001)."""
    return f"({row + 1}, {col + 1})"


def matrix_text(a: np.ndarray) -> list[str]:
    """Rows of a small matrix ``a: (rows, cols)`` as aligned text."""
    cells = [[fmt(float(v)) for v in row] for row in a]
    width = max(len(c) for row in cells for c in row)
    return ["  ".join(c.rjust(width) for c in row) for row in cells]


class _Overlay:
    """Window grid lines, winner outlines and the current-window rectangle drawn over a panel."""

    def __init__(self, panel: ImagePanel, winners: bool) -> None:
        self.grid = pg.PlotDataItem(connect="pairs", pen=GRID_PEN)
        panel.view.addItem(self.grid)
        self.winners = None
        if winners:
            self.winners = pg.ScatterPlotItem(symbol="s", size=0.9, pxMode=False, pen=WINNER_PEN, brush=None)
            panel.view.addItem(self.winners)
        self.current = QtWidgets.QGraphicsRectItem()
        self.current.setPen(CURRENT_PEN)
        self.current.setZValue(10)
        panel.view.addItem(self.current)

    def set_grid(self, rows: int, cols: int, k: int) -> None:
        x, y = window_grid(rows, cols, k)
        self.grid.setData(x, y)

    def set_current(self, row: int, col: int, k: int) -> None:
        self.current.setRect(QtCore.QRectF(col * k, row * k, k, k))


class _Numbers:
    """Values written in the cells of a small map (at most MAX_CELLS), so a learner can read them."""

    MAX_CELLS = 64
    FONT_PT = 8.0
    MIN_PT = 6.0   # smaller than this cannot be read; the hover read-out has every value anyway

    def __init__(self, panel: ImagePanel) -> None:
        self.view = panel.view
        self.items: list[pg.TextItem] = []
        self.shape = None
        self.cell_px: float | None = None  # screen pixels per cell, set when the panel is sized
        self._pt: float | None = None
        self._texts: list[str] = []

    def set(self, values: np.ndarray, fmt: CellFormat) -> None:
        """values: (h, w) shown by the panel's image, written in ``fmt`` (exact zeros as "0": dead ReLU
        outputs are exactly 0, a tiny value is not); NaN cells are left blank."""
        if values.shape != self.shape:
            for item in self.items:
                self.view.removeItem(item)
            self.items = []
            self.shape = values.shape
            if values.size <= self.MAX_CELLS:
                for r in range(values.shape[0]):
                    for c in range(values.shape[1]):
                        # white on a translucent dark box: readable over every colormap
                        item = pg.TextItem(anchor=(0.5, 0.5), color="w", fill=pg.mkBrush(0, 0, 0, 120))
                        item.setPos(c + 0.5, r + 0.5)
                        self.view.addItem(item)
                        self.items.append(item)
            self._pt = None
        texts = ["" if np.isnan(v) else "0" if v == 0 else fmt.text(v) for v in values.ravel()]
        for item, text in zip(self.items, texts):
            item.setText(text)
        self._texts = texts
        self._fit_font()

    @classmethod
    def scale_note(cls, fmt: CellFormat, shape: tuple[int, int]) -> str:
        """", numbers ×10⁻³" for the title of a panel of ``shape`` when its numbers are written at a
        scale, else ''."""
        return f", numbers {fmt.suffix()}" if shape[0] * shape[1] <= cls.MAX_CELLS and fmt.suffix() else ""

    def set_cell_px(self, px: float) -> None:
        """The panel's new cell size on screen: refit the numbers to it."""
        self.cell_px = px
        self._fit_font()

    def _fit_font(self) -> None:
        """The numbers' size: FONT_PT, smaller when the widest text ("-0.52") would spill out of its
        cell (tiny8x8's 8x8 maps have ~35 px cells)."""
        if not self.items:
            return
        font = self.items[0].textItem.font()
        font.setPointSizeF(self.FONT_PT)
        pt = self.FONT_PT
        widest = max((QtGui.QFontMetricsF(font).horizontalAdvance(t) for t in self._texts), default=0.0)
        room = (self.cell_px or 0.0) - 6.0  # the text box's margins
        if self.cell_px and widest > room:
            pt = max(self.MIN_PT, self.FONT_PT * room / widest)
        if pt != self._pt:
            self._pt = pt
            font.setPointSizeF(pt)
            for item in self.items:
                item.setFont(font)


class PoolingView(SampleView):
    """Pooling forward (windows, mask or 1/k² weights) and backward (δ routing) with a window stepper."""

    # A live update recomputes a backward pass and repaints five maps with their overlays (~15 ms on a
    # loaded 2-core machine): at most 6% of the GUI thread, about 4 times a second, while training.
    MAX_DUTY = 0.06
    TARGET = 280   # screen pixels for the side of an input map

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("poolingView")
        self.setToolTip("Pooling shrinks each feature map by summarising k×k windows. In the backward pass "
                        "it decides who gets the blame: max pooling sends δ only to each window's winner, "
                        "average pooling spreads δ/k² over the window.")
        self._x: np.ndarray | None = None
        self._label: int | None = None
        # colour scales as drawn (None: none yet); _refit_scales: fit them afresh at the next draw
        self._act_levels: tuple[float, float] | None = None
        self._delta_levels: tuple[float, float] | None = None
        self._refit_scales = True
        self._delta_fmt = CellFormat(0, 0, True)  # how the δ maps write their numbers (see _draw)
        self._scratch = ScratchModel()
        self._layers_signature = None
        self.sample: PoolingSample | None = None
        self._steps: np.ndarray | None = None
        self._step = 0

        self.picker = SamplePicker()
        self.layer_combo = model_combo()
        self.layer_combo.setToolTip("Which pooling layer to inspect.")
        self.channel_spin = QtWidgets.QSpinBox()
        self.channel_spin.setToolTip("Which channel (feature map) of that layer: pooling works on each channel "
                                     "separately.")
        self.caption = ToneLabel()
        self.caption.set_tone("muted")
        self.caption.setWordWrap(True)
        self.caption.setText(self.caption_text(None))
        self.variant_label = ToneLabel()
        self.variant_label.set_tone("error", bold=True)
        self.variant_label.setWordWrap(True)

        self.plot = self.make_plot()
        ci = self.plot.ci
        ci.setSpacing(8)
        self.input_panel = ImagePanel(ci, bar_label="activation", name="input x", tooltip=(
            "The feature map entering the pooling layer, cut into non-overlapping k×k windows."))
        self.weights_panel = ImagePanel(ci, cmap=sequential_cmap(), bar_label="routing weight", name="weights",
                                        tooltip=(
            "How much of each window's δ each cell receives in the backward pass: max pooling passes it all "
            "to the winner (the mask), average pooling gives every cell 1/k²."))
        self.output_panel = ImagePanel(ci, bar_label="activation", name="output y", tooltip=(
            "One number per window (its max or mean): the map shrinks by a factor of k in each direction "
            "(leftover rows and columns are dropped)."))
        ci.nextRow()
        self.routed_panel = ImagePanel(ci, cmap=diverging_cmap(), bar_label="δ", name="routed delta", tooltip=(
            "∂L/∂x, what the pooling backward pass hands to the layer below. Average pooling: every cell "
            "of a window gets δ/k². Max pooling: only the window's winner gets δ, the other cells exactly "
            "0 (they had no influence on the output); the transposed variant sends δ elsewhere."))
        self.middle = ci.addLabel("", justify="center")
        self.middle.setToolTip("Forward runs left to right (x → y). The backward pass runs right to left: the "
                               "real δ of this sample's loss, back through the layers after this one, arrives "
                               "at y and is routed to x.")
        self.delta_panel = ImagePanel(ci, cmap=diverging_cmap(), bar_label="δ", name="output delta", tooltip=(
            "∂L/∂y: how the loss on this sample changes with each pooled value, as computed by "
            "backpropagation through every layer above. With the transposed_pool variant and a pooling "
            "layer above this one, it is what that layer's wrong backward delivers instead."))
        self._numbers = {key: _Numbers(panel) for key, panel in (
            ("input", self.input_panel), ("output", self.output_panel), ("delta", self.delta_panel),
            ("routed", self.routed_panel))}
        self._overlays = {
            "input": _Overlay(self.input_panel, winners=True),
            "weights": _Overlay(self.weights_panel, winners=False),
            "output": _Overlay(self.output_panel, winners=False),
            "delta": _Overlay(self.delta_panel, winners=False),
            "routed": _Overlay(self.routed_panel, winners=False),
        }

        self.prev_button = glyph_button("◀ Prev")
        self.prev_button.setToolTip("Back one window: undo its δ routing. Key: Left (on this tab, or after a "
                                    "click on the maps).")
        self.play_button = glyph_button("▶ Play")
        self.play_button.setToolTip("Route δ window after window, one step at a time. Key: Space (on this tab, "
                                    "or after a click on the maps).")
        self.play_button.setCheckable(True)
        self.next_button = glyph_button("Next ▶")
        self.next_button.setToolTip("Route δ through the next window. Key: Right (on this tab, or after a click "
                                    "on the maps).")
        self.all_button = QtWidgets.QPushButton("All windows")
        self.all_button.setToolTip("Jump to the last window: δ routed through every window.")
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("Scrub through the windows (row by row over the pooled output).")
        self.step_text = steady_info_label(7)  # a window of up to 3 rows and its forward/backward lines
        self.step_text.setToolTip("The numbers of the current window: forward (what the window outputs) and "
                                  "backward (where its δ goes).")
        # The forward line on one line (the longer backward one may take two of the 7); narrower, the
        # row folds (WrapRow).
        self.step_text.reserve("forward:  mean of 4 values = -0.08888 → y[13, 13] = -0.08888")
        self.make_readout("Hover over a map to read a value.")
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(500)

        choice = controls_row("Pooling layer", self.layer_combo, "Channel", self.channel_spin)
        stepper_buttons = controls_row(self.prev_button, self.play_button, self.next_button, self.all_button)
        stepper_left = QtWidgets.QVBoxLayout()
        title = QtWidgets.QLabel("<b>Backward, window by window</b>")
        stepper_left.addWidget(title)
        stepper_left.addLayout(stepper_buttons)
        stepper_left.addWidget(self.slider)
        stepper_left.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(WrapRow(self.picker, choice, stretch=(1, 0)))
        layout.addWidget(self.caption)
        layout.addWidget(self.variant_label)
        layout.addWidget(self.plot, 1)
        layout.addWidget(WrapRow(stepper_left, self.step_text, stretch=(0, 1)))
        layout.addWidget(self.hover)
        self.variant_label.hide()

        self.picker.picked.connect(self._picked)
        self.layer_combo.currentIndexChanged.connect(self._layer_changed)
        self.channel_spin.valueChanged.connect(self._channel_changed)
        self.prev_button.clicked.connect(self._prev)
        self.next_button.clicked.connect(self._next)
        self.all_button.clicked.connect(self._last)
        self.play_button.toggled.connect(self._play)
        self.timer.timeout.connect(self._tick)
        self.slider.valueChanged.connect(self._set_step)
        self.plot.scene().sigMouseClicked.connect(self._mouse_clicked)
        # A click on a window gives the plot the focus; its scroll area would eat Left and Right, and
        # the window's training keys took Space: the stepper's keys are handled here instead.
        self.plot.installEventFilter(self)

    # ------------------------------------------------------------------ protocol

    def _layer_changed(self, _index: int) -> None:
        self._new_scales()
        self._request_refresh(by_user=True)

    def _new_sample(self) -> None:
        self._new_scales()
        self._request_refresh(by_user=True)

    def _channel_changed(self) -> None:
        self._new_scales()
        self._draw()

    def _new_scales(self) -> None:
        """Fit the colour scales afresh at the next draw (another sample, layer or channel); live
        updates of the same maps keep them while the values fit (``steady_levels``). The scales drawn
        stay until then: the new sample or layer may wait for its refresh (rate-limited), and meanwhile
        the stepper still draws the routed δ of the one shown with them (a click on Next drew it with
        no levels: a TypeError, and an image pyqtgraph could not paint)."""
        self._refit_scales = True

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().hideEvent(event)
        self.play_button.setChecked(False)  # no timer work for a hidden view

    # ------------------------------------------------------------------ computing

    def _refresh(self) -> None:
        model = self._model
        if model is None or not self._sample_for(model):
            return
        caption = self.caption_text(model)
        if caption != self.caption.text():
            self.caption.setText(caption)
        names = pooling_layers(model)
        if tuple(names) != self._layers_signature:
            self._layers_signature = tuple(names)
            self.layer_combo.blockSignals(True)
            self.layer_combo.clear()
            for name in names:
                layer = model.layer(name)
                self.layer_combo.addItem(f"{name} ({POOL_KINDS[layer.kind]}, {layer.size}×{layer.size})", name)
            self.layer_combo.blockSignals(False)
        name = self.layer_combo.currentData()
        if name is None:
            self.sample = None
            self.middle.setText("This model has no pooling layer.")
            return
        previous = self.sample
        self.sample = pooling_sample(self._scratch.sync(model), self._x, self._label, name)
        s = self.sample
        if self.channel_spin.maximum() != s.x.shape[2] - 1:  # setRange lays out the page again, always
            self.channel_spin.blockSignals(True)
            self.channel_spin.setRange(0, s.x.shape[2] - 1)
            self.channel_spin.blockSignals(False)
        if previous is None or previous.layer != s.layer or previous.x.shape != s.x.shape \
                or previous.transposed != s.transposed:
            if previous is None or previous.layer != s.layer:
                # Start on the channel with the most activity: a dead channel teaches nothing.
                self.channel_spin.blockSignals(True)
                self.channel_spin.setValue(int(np.abs(s.x).sum(axis=(0, 1)).argmax()))
                self.channel_spin.blockSignals(False)
            self._layout_for_sample()
        self._draw()

    def _layout_for_sample(self) -> None:
        """Sizes, grids and the step map for a new layer geometry."""
        s = self.sample
        h, w = s.x.shape[:2]
        ho, wo = s.out_hw
        k = s.size
        self._fit()
        for key in ("input", "weights", "routed"):
            self._overlays[key].set_grid(ho, wo, k)
        self._overlays["input"].winners.setPen(pg.mkPen(WINNER_PEN.color(), width=1 if h > 16 else 2))
        for key in ("output", "delta"):
            self._overlays[key].set_grid(ho, wo, 1)
        self.middle.setText("forward ──▶<br><br>◀── backward")
        self._steps = step_map((h, w), (ho, wo), k, s.transposed)
        self.slider.blockSignals(True)
        self.slider.setRange(0, ho * wo - 1)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self._step = 0
        if s.transposed:
            self.variant_label.setText("Variant transposed_pool (seed 002's experiment): the backward pass "
                                       "transposes δ (and a max pool's mask), so the δ it hands down is the "
                                       "correct routing of the δ that arrives, transposed: output cell (p, q) "
                                       "sends its δ into window "
                                       "(q, p), not to the cells that produced it (with average pooling, "
                                       "right when p = q; with max pooling even then to the mirrored cell).")
        self.variant_label.setVisible(s.transposed)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        """Size the maps to the space available: three columns (each map plus its colour bar) and
        two rows (each map plus a two-line title), at most TARGET pixels per side. Pooled maps
        get the same screen size per window as the input maps, so window and cell line up."""
        s = self.sample
        if s is None:
            return
        h, w = s.x.shape[:2]
        k = s.size
        px = min(self.TARGET / max(h, w),
                 (self.plot.width() - 3 * 130) / (3 * w),
                 (self.plot.height() - 2 * 70) / (2 * h))
        px = max(px, 2.0)
        for panel in (self.input_panel, self.weights_panel, self.routed_panel):
            panel.fit((h, w), px)
        for panel in (self.output_panel, self.delta_panel):
            panel.fit(s.out_hw, px * k)
        for key, numbers in self._numbers.items():
            numbers.set_cell_px(px * k if key in ("output", "delta") else px)

    # ------------------------------------------------------------------ drawing

    def _draw(self) -> None:
        s = self.sample
        if s is None:
            return
        c = self.channel_spin.value()
        k = s.size
        x_c = np.ascontiguousarray(s.x[:, :, c], np.float32)
        y_c = np.ascontiguousarray(s.y[:, :, c], np.float32)
        shown_act, shown_delta = (None, None) if self._refit_scales else (self._act_levels, self._delta_levels)
        self._refit_scales = False
        self._act_levels = act_levels = steady_levels(value_levels(x_c), shown_act)
        act_cmap = cmap_for_levels(act_levels)
        self.input_panel.set(x_c, act_levels, act_cmap)
        self.output_panel.set(y_c, act_levels, act_cmap)
        self.weights_panel.set(np.ascontiguousarray(s.weights[:, :, c], np.float32), (0.0, 1.0))
        delta_c = np.ascontiguousarray(s.delta_out[:, :, c], np.float32)
        self._delta_levels = steady_levels(symmetric_levels(delta_c), shown_delta)
        self.delta_panel.set(delta_c, self._delta_levels)
        act_fmt = CellFormat.compact(x_c)  # the outputs are maxima or means of these inputs
        self._delta_fmt = CellFormat.compact(delta_c)  # the routed δ is δ or δ/k² of these
        self._numbers["input"].set(x_c, act_fmt)
        self._numbers["output"].set(y_c, act_fmt)
        self._numbers["delta"].set(delta_c, self._delta_fmt)
        if s.kind == "max":
            rows, cols = np.nonzero(s.weights[:, :, c])
            self._overlays["input"].winners.setData(cols + 0.5, rows + 0.5)
        else:
            self._overlays["input"].winners.setData([], [])
        layer = s.layer
        h, w = x_c.shape
        ho, wo = y_c.shape
        what = "max" if s.kind == "max" else "mean"
        self.input_panel.set_title(
            f"<b>{layer} input x</b>, channel {c} ({h}×{w}){_Numbers.scale_note(act_fmt, (h, w))}"
            f"<br>{k}×{k} windows"
            + (", <span style='color:#ff9f1c'>orange</span>: winners" if s.kind == "max" else ""))
        self.weights_panel.set_title(
            "<b>mask</b>: 1 on each window's maximum<br>(the first one if tied)" if s.kind == "max" else
            f"<b>weights</b>: each cell counts<br>1/{k * k} = {fmt(1 / (k * k))} of its window")
        self.output_panel.set_title(f"<b>{layer} output y</b> ({ho}×{wo}){_Numbers.scale_note(act_fmt, (ho, wo))}"
                                    f"<br>the {what} of each window")
        who = f"its prediction {s.label}" if s.predicted else f"label {s.label}"
        arriving = ("<b>δ arriving at the output</b> (not ∂L/∂y)" if s.wrong_above
                    else "<b>δ at the output</b> ∂L/∂y")
        self.delta_panel.set_title(f"{arriving}{_Numbers.scale_note(self._delta_fmt, (ho, wo))}<br>loss "
                                   f"{fmt(s.loss)} against {who}")
        self.routed_panel.set_title(f"<b>δ routed to the input</b> ∂L/∂x"
                                    f"{_Numbers.scale_note(self._delta_fmt, (h, w))}<br>windows up to the "
                                    "current one")
        self._draw_step()

    @staticmethod
    def caption_text(model) -> str:
        """The page's caption: how positions are counted and, when ``model`` (the model shown, or None) has
        no max pooling, where to find a model that has (the shipped vgg7 only averages: no mask to see)."""
        text = "Positions: rows and columns count from 1, channels from 0, as in the Conv stepper."
        if model is None or any(layer.kind == "MaxPool2D" for layer in model.layers):
            return text
        name = model.spec.get("name") or "This model"
        how = "pools by averaging" if pooling_layers(model) else "has no pooling layer"
        others = " and ".join(n for n, spec in sorted(PRESETS.items())
                              if any(layer["type"] == "MaxPool2D" for layer in spec["layers"]))
        return (f"{text} {name} {how}; the presets {others} use max pooling: choose one in the Training dock "
                "and train a few epochs to see its mask.")

    def _draw_step(self) -> None:
        s = self.sample
        if s is None:
            return
        c = self.channel_spin.value()
        k = s.size
        ho, wo = s.out_hw
        p, q = divmod(self._step, wo)
        routed = np.where(self._steps <= self._step, s.delta_in[:, :, c], np.nan).astype(np.float32)
        self.routed_panel.set(routed, self._delta_levels)
        self._numbers["routed"].set(routed, self._delta_fmt)
        dp, dq = s.destination(p, q)
        for key in ("input", "weights"):
            self._overlays[key].set_current(p, q, k)
        self._overlays["routed"].set_current(dp, dq, k)
        for key in ("output", "delta"):
            self._overlays[key].set_current(p, q, 1)
        self.step_text.setText(self.step_description(c, p, q))

    def step_description(self, c: int, p: int, q: int) -> str:
        """The numbers of window (p, q) of channel c: inputs, forward result, where δ goes."""
        s = self.sample
        k = s.size
        r0, c0 = p * k, q * k
        window = s.x[r0:r0 + k, c0:c0 + k, c]
        y = float(s.y[p, q, c])
        delta = float(s.delta_out[p, q, c])
        ho, wo = s.out_hw
        # positions count from 1 (as in the Conv stepper), channels from 0
        lines = [f"window ({p + 1}, {q + 1}) of {ho}×{wo}: input rows {r0 + 1}–{r0 + k}, cols {c0 + 1}–{c0 + k}"]
        for i, row in enumerate(matrix_text(window)):
            lines.append(("  inputs  " if i == 0 else "          ") + row)
        if s.kind == "max":
            wr, wc = np.unravel_index(int(np.argmax(s.weights[r0:r0 + k, c0:c0 + k, c])), (k, k))
            winner = (r0 + int(wr), c0 + int(wc))
            at = _pos(*winner)
            ties = int(np.count_nonzero(window == window.max()))
            tie = f" (a {ties}-way tie: the first in row-major order wins)" if ties > 1 else ""
            lines.append(f"forward:  max = {fmt(y)} at {at}{tie} → y[{p + 1}, {q + 1}] = {fmt(y)}")
        else:
            lines.append(f"forward:  mean of {k * k} values = {fmt(y)} → y[{p + 1}, {q + 1}] = {fmt(y)}")
        route = s.route(c, p, q)
        targets = list(zip(*np.nonzero(route)))
        if s.kind == "avg":
            dr, dc = s.destination(p, q)
            transposed = s.transposed and (dr, dc) != (p, q)
            where = f"window {_pos(dr, dc)}" + (" — the transposed window!" if transposed else "")
            # δ_out and the routed δ share one colour scale, so the routed cells look k² times paler:
            # say that nothing is lost, the shares add back up to δ
            n = len(targets)
            lines.append(f"backward: δ = {fmt(delta)} → ÷{k * k} → {fmt(delta / (k * k))} to each of the "
                         f"{n} cells of {where} (the {n} shares, δ/{k * k} each, add up to δ = {fmt(delta)})")
        else:
            (tr, tc), = targets
            target = (int(tr), int(tc))
            if target == winner:
                lines.append(f"backward: δ = {fmt(delta)} → to the winner {at}: all of δ goes to the max, "
                             f"the other {k * k - 1} cells get 0")
            else:
                lines.append(f"backward: δ = {fmt(delta)} → to {_pos(*target)}, the transposed position of the "
                             f"winner {at}: the wrong cell gets the blame")
        return "\n".join(lines)

    # ------------------------------------------------------------------ stepper

    def _set_step(self, step: int) -> None:
        self._step = int(step)
        self._draw_step()

    def _prev(self) -> None:
        self.slider.setValue(self.slider.value() - 1)

    def _next(self) -> None:
        self.slider.setValue(self.slider.value() + 1)

    def _last(self) -> None:
        self.slider.setValue(self.slider.maximum())

    def keys_widget(self) -> QtWidgets.QWidget:
        """The widget that takes the focus when this view's tab is chosen (ViewPages._hand_over_keys): the
        maps, whose keys (Space, Right, ...) drive the window stepper instead of training."""
        return self.plot

    def _stepper_key(self, event: QtGui.QKeyEvent) -> bool:
        """Left/Right: the previous/next window, Home/End: the first/last, Space: play or pause.
        True when ``event`` was one of them (and done)."""
        Key = QtCore.Qt.Key
        actions = {Key.Key_Left: self._prev, Key.Key_Right: self._next, Key.Key_Home: lambda: self.slider.setValue(0),
                   Key.Key_End: self._last, Key.Key_Space: self.play_button.toggle}
        action = actions.get(event.key())
        if action is None or event.modifiers() not in (QtCore.Qt.KeyboardModifier.NoModifier,
                                                       QtCore.Qt.KeyboardModifier.KeypadModifier):
            return False
        if self.sample is not None:
            action()
        return True

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        if not self._stepper_key(event):
            super().keyPressEvent(event)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        if watched is self.plot and event.type() == QtCore.QEvent.Type.KeyPress and self._stepper_key(event):
            return True
        return super().eventFilter(watched, event)

    def _play(self, on: bool) -> None:
        set_button_text(self.play_button, "❚❚ Pause" if on else "▶ Play")
        if on:
            if self.slider.value() == self.slider.maximum():
                self.slider.setValue(0)
            self.timer.start()
        else:
            self.timer.stop()

    def _tick(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.play_button.setChecked(False)
        else:
            self._next()

    # ------------------------------------------------------------------ hover and click

    def _panel_pixel(self, scene_pos):
        panels = {"input": self.input_panel, "weights": self.weights_panel, "output": self.output_panel,
                  "delta": self.delta_panel, "routed": self.routed_panel}
        for key, panel in panels.items():
            pixel = panel.pixel_at(scene_pos)
            if pixel is not None:
                return key, pixel
        return None

    def hover_text(self, key: str, row: int, col: int) -> str:
        """What pixel (row, col) of panel ``key`` ("input", "weights", "output", "delta", "routed") shows."""
        s = self.sample
        c = self.channel_spin.value()
        k = s.size
        if key in ("output", "delta"):
            values = s.y if key == "output" else s.delta_out
            name = "y" if key == "output" else "δ_out"
            return f"{name}[{row + 1}, {col + 1}] = {fmt(float(values[row, col, c]))}   (window {_pos(row, col)})"
        ho, wo = s.out_hw
        inside = row < ho * k and col < wo * k
        where = f"window {_pos(row // k, col // k)}" if inside else "leftover row/col: dropped by the pooling"
        if key == "input":
            won = " — the winner" if s.kind == "max" and s.weights[row, col, c] else ""
            return f"x[{row + 1}, {col + 1}] = {fmt(float(s.x[row, col, c]))}   {where}{won}"
        if key == "weights":
            return f"weight[{row + 1}, {col + 1}] = {fmt(float(s.weights[row, col, c]))}   {where}"
        if self._steps[row, col] > self._step:
            return f"δ_in[{row + 1}, {col + 1}]: not routed yet (step {self._steps[row, col]})"
        return f"δ_in[{row + 1}, {col + 1}] = {fmt(float(s.delta_in[row, col, c]))}   {where}"

    def hover_text_at(self, scene_pos) -> str | None:
        hit = self._panel_pixel(scene_pos) if self.sample is not None else None
        return None if hit is None else self.hover_text(hit[0], *hit[1])

    def _mouse_clicked(self, event) -> None:
        """Clicking a window (or pooled cell) makes it the stepper's current window."""
        hit = self._panel_pixel(event.scenePos()) if self.sample is not None else None
        if hit is None:
            return
        key, (row, col) = hit
        s = self.sample
        ho, wo = s.out_hw
        if key not in ("output", "delta"):
            row, col = row // s.size, col // s.size
            if key == "routed":
                row, col = s.destination(row, col)  # the destination map is its own inverse
        if row < ho and col < wo:
            self.slider.setValue(row * wo + col)
