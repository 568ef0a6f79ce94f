"""Feature maps: every layer's output for one sample, all channels, from the input to the probabilities.

Spatial outputs ``(H, W, C)`` are drawn as one mosaic per layer (channels in a near-square grid,
channel 0 top-left, row-major; a tile's channel is its row's first channel, on the left axis, plus its
column, on the top axis), each with its own colour scale: sequential (viridis) from 0 for
layers that are never negative (ReLU, pooling of ReLU), diverging with symmetric levels otherwise.
Vector outputs ``(n,)`` (flatten, dense, their activations) are drawn as bar strips. Layers are
grouped in rows, one per block: a weight layer followed by its activation, pooling and dropout. A row
too wide for the window wraps onto more lines and its maps shrink (to 60% of their size before it
wraps, never below a screen pixel per map pixel); the scrolled canvas is as large as the laid-out
scene, so what still does not fit is reached by scrolling, never cut off.

Live cost: while training, the window pushes new weights at up to 10 Hz, and repainting the maps on
screen (images, colour bars and their axes) costs the GUI thread 25-90 ms on a loaded 2-core machine,
the computation only ~2 ms. So the view refreshes at most ``MAX_DUTY`` = 12% of the time (about
3 times a second), and a map's colour scale stays put while its values fit it: its
colour bar's axis is then not laid out again on every update, and colours stay comparable between
updates (``colour_scale.steady_levels``). A new sample starts from fresh scales.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.views.colour_scale import cmap_for_levels, fmt, grey_cmap, percent, steady_levels, value_levels
from app.views.images import ImagePanel, SteadyLabelItem, layout_for
from app.views.samples import SamplePicker, SampleView
from app.views.scenes import canvas_follows_scene, fit_canvas_to_scene
from app.views.widgets import SteadyLabel, WrapRow

CAPTION = ("Each small image is one channel: where one filter found its pattern in this digit (channel = row "
           "label + column). Blue/white/red: the raw response z before ReLU (blue negative, red positive); ReLU "
           "and pooling maps have their own colour map, from 0. Hover over a panel for what its layer does; "
           "scroll down for the probabilities.")
PREDICTED_BRUSH = pg.mkBrush("#f5a623")
TRUE_BRUSH = pg.mkBrush("#4caf50")
OTHER_BRUSH = pg.mkBrush("#5b7bd5")
STRIP_PEN = pg.mkPen("#9ecbff", width=1)
STRIP_BRUSH = pg.mkBrush(90, 150, 230, 160)


KIND_TIPS = {
    "Input": "The image the network sees: grey values in [0, 1].",
    "Conv2D": "One channel per filter: each filter slides over all input channels and responds where its "
              "pattern appears (red above zero, blue below).",
    "Activation": "The activation function, applied cell by cell.",
    "AvgPool2D": "Each {k}×{k} window replaced by its mean: 1/{k} the size each way, less exact position, "
                 "same patterns.",
    "MaxPool2D": "Each {k}×{k} window replaced by its maximum: 1/{k} the size each way, keeps the strongest "
                 "response.",
    "Dropout": "Dropout only acts during training; at inference it passes its input through unchanged.",
    "Flatten": "The same numbers in one row, in (row, column, channel) order: what the dense layer reads.",
    "Dense": "Each unit is a weighted sum of every input plus a bias: the layers that combine evidence.",
}
ACTIVATION_TIPS = {
    "relu": "ReLU, cell by cell: every negative response becomes 0, so only detected patterns pass on.",
    "softplus": "Softplus, log(1 + eᶻ), cell by cell: a smooth ReLU; negative responses shrink towards 0.",
    "tanh": "tanh, cell by cell: squashes each value into (−1, 1); large values saturate near ±1.",
    "arctan": "arctan, cell by cell: squashes each value into (−π/2, π/2); large values saturate near ±π/2.",
    "sigmoid": "The sigmoid, cell by cell: squashes each value into (0, 1).",
    "identity": "The identity: values pass on unchanged.",
}


def layer_tip(model, name: str, kind: str) -> str:
    """The tooltip of layer ``name``'s panel: what its kind does, with its own activation function or
    pooling size."""
    if kind == "Activation":
        return ACTIVATION_TIPS.get(model.layer(name).fn, KIND_TIPS["Activation"])
    if kind in ("AvgPool2D", "MaxPool2D"):
        return KIND_TIPS[kind].format(k=model.layer(name).size)
    return KIND_TIPS.get(kind, "")


def shape_text(shape) -> str:
    return "×".join(str(d) for d in shape)


def prediction_text(predicted, p: float, truth=None) -> str:
    """The prediction line: class, probability ``p`` and, when the true class is known, the verdict."""
    verdict = ""
    if truth is not None:
        verdict = "  ✓ correct" if predicted == truth else f"  ✗ true label {truth}"
    return f"Prediction: <b>{predicted}</b> ({percent(p)}){verdict}"


def layer_rows(model) -> list[list[tuple[str, str, tuple[int, ...]]]]:
    """Group (name, kind, output shape) of "input" and every layer into display rows: a new row
    starts at every weight layer (Conv2D, Dense) but the first, and at Flatten."""
    rows = [[("input", "Input", tuple(model.input_shape))]]
    for i, (layer, shape) in enumerate(zip(model.layers, model.shapes)):
        if i > 0 and layer.kind in ("Conv2D", "Dense", "Flatten"):
            rows.append([])
        rows[-1].append((layer.name, layer.kind, tuple(shape)))
    return rows


# what a map's colours stand for, by layer kind (the other spatial layers pass activations on)
BAR_LABELS = {"Input": "pixel value", "Conv2D": "z (before the activation)"}


class _MapPanel:
    """One spatial output (H, W, C) as a mosaic of its C channels."""

    TARGET_H = 220   # screen pixels per layer mosaic: small maps are magnified, large ones shrunk
    MAX_W = 330      # three panels (plus colour bars) fit side by side in a 1200-px window
    PX_MAX = 28      # an 8x8 input still gets ~220 px
    MIN_PX = 1.0     # below one screen pixel per map pixel rows and columns of the map would be dropped

    def __init__(self, layout: pg.GraphicsLayout, name: str, kind: str, shape: tuple[int, int, int],
                 tip: str) -> None:
        self.name, self.kind, self.shape = name, kind, shape
        h, w, c = shape
        self.mosaic = layout_for(c, h, w, None)
        self.panel = ImagePanel(layout, cmap=grey_cmap() if name == "input" else None, tooltip=tip, name=name,
                                bar_label=BAR_LABELS.get(kind, "activation"))
        if c > 1:
            # Channels numbered as the hover text, the Pooling page and the Conv stepper number them:
            # row-major from 0, so a tile's channel is its row's start plus its column (as the Kernels
            # page labels wrapped filters). Set once: the mosaic's layout is fixed for the panel's life.
            m = self.mosaic
            self.panel.set_tile_ticks(m, "channel (row start)", "+ column",
                                      [str(i * m.cols) for i in range(m.rows)], [f"+{j}" for j in range(m.cols)])
        mh, mw = self.mosaic.shape
        self.natural_px = min(self.PX_MAX, self.TARGET_H / mh, self.MAX_W / mw)
        grid = f", {self.mosaic.rows}×{self.mosaic.cols} grid" if c > 1 else ""
        # Titles are static: re-laying out text on every live update is costly; the colour bar
        # carries the changing range.
        self.panel.title.setText(f"<b>{name}</b> ({kind})<br>{shape_text(shape)}{grid}")
        self.layout = self.panel.layout
        self.values = None
        self.levels: tuple[float, float] | None = None  # as drawn (None: the next update fits them afresh)
        # The panel's least width (title, map, colour bar, margins) at the smallest and the natural size,
        # measured from its layout rather than guessed: a guess (130 px beside each map) was short, and
        # rows of maps ran off the right edge of the window.
        self.fit(0.0)
        self._least_w = self.least_width()
        self.fit(1.0)
        self._natural_w = self.least_width()

    def _px(self, scale: float) -> float:
        return max(self.natural_px * scale, self.MIN_PX)

    def fit(self, scale: float) -> None:
        """Draw at ``scale`` times the natural size (rows shrink to fit narrow windows), never below MIN_PX."""
        self.panel.fit(self.mosaic.shape, self._px(scale))

    def least_width(self) -> float:
        return self.layout.effectiveSizeHint(QtCore.Qt.SizeHint.MinimumSize).width()

    def width_at(self, scale: float) -> float:
        """The panel's least width when fitted at ``scale``, or a little more: the width is the larger of
        the title's and (map + colour bar)'s, a convex function of the map's size, so the straight line
        between the two measured sizes never falls below it."""
        if self.natural_px <= self.MIN_PX:
            return self._natural_w
        t = (self._px(scale) - self.MIN_PX) / (self.natural_px - self.MIN_PX)
        return self._least_w + t * (self._natural_w - self._least_w)

    def update(self, a: np.ndarray) -> None:
        """a: (H, W, C), a copy owned by the view (kept for hover read-outs)."""
        self.values = a
        self.mosaic.fill_tiles(a.transpose(2, 0, 1))              # (C, H, W)
        if self.name == "input":
            self.levels = (min(0.0, float(a.min())), max(1.0, float(a.max())))
            cmap = None
        else:
            self.levels = steady_levels(value_levels(a), self.levels)
            cmap = cmap_for_levels(self.levels)
        self.panel.set(self.mosaic.buffer, self.levels, cmap)

    def hover_text(self, row: int, col: int) -> str | None:
        where = self.mosaic.locate(row, col)
        if where is None or self.values is None:
            return None
        i, j, r, c = where
        channel = i * self.mosaic.cols + j
        if channel >= self.shape[2]:
            return None
        # rows and columns count from 1 (as in the Conv stepper and Pooling), channels from 0
        return (f"{self.name}  channel {channel}  row {r + 1} col {c + 1}   "
                f"value = {fmt(float(self.values[r, c, channel]))}")

    def hover(self, scene_pos) -> str | None:
        pixel = self.panel.pixel_at(scene_pos)
        return None if pixel is None else self.hover_text(*pixel)


def class_axis_name(classes) -> str:
    """The name of an axis whose units are the classes: "class (digit)" for MNIST's digits."""
    return "class (digit)" if all(isinstance(c, int) and 0 <= c <= 9 for c in classes) else "class"


class _StripPanel:
    """One vector output (n,) as a bar strip (a filled step curve: one item, cheap for n = 1568).
    ``classes``: what the units stand for when they are a classifier's outputs, one per class (the logits
    of a softmax); None for any other layer."""

    MIN_W = 240  # narrower, a strip of a few hundred units is a smear: strips side by side then wrap

    def __init__(self, layout: pg.GraphicsLayout, name: str, kind: str, n: int, tip: str, note: str = "",
                 classes: list | None = None) -> None:
        self.name, self.kind, self.n = name, kind, n
        self.classes = classes
        self.layout = layout.addLayout()
        self.title = self.layout.addLabel("", justify="left")
        self.layout.nextRow()
        self.plot = self.layout.addPlot(enableMenu=False)
        self.plot.setObjectName(name)  # its exported files are named after the layer
        self.plot.setToolTip(tip)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=False, y=False)
        self.height = 130
        self.plot.setFixedHeight(self.height)
        if classes is not None:
            axis = class_axis_name(classes)
        else:
            axis = "unit" if kind != "Flatten" else "flattened index (row, col, channel)"
        self.plot.setLabel("bottom", axis)
        self.edges = np.arange(n + 1) - 0.5                      # bar i spans [i - 0.5, i + 0.5]
        self.curve = self.plot.plot(self.edges, np.zeros(n), stepMode="center", fillLevel=0,
                                    pen=STRIP_PEN, brush=STRIP_BRUSH, name=name)
        self.plot.setXRange(-0.5, n - 0.5, padding=0.01)
        if n <= 20:  # label every unit (the automatic ticks would show fractions of a unit)
            labels = classes if classes is not None else range(n)
            self.plot.getAxis("bottom").setTicks([[(i, str(c)) for i, c in enumerate(labels)]])
            self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.title.setText(f"<b>{name}</b> ({kind}) {n} value{'s' * (n != 1)}{note}")
        self.values = None

    def fit(self, scale: float) -> None:
        """Strips take the width their row gives them."""

    def width_at(self, scale: float) -> float:
        return max(self.layout.effectiveSizeHint(QtCore.Qt.SizeHint.MinimumSize).width(), self.MIN_W)

    def update(self, a: np.ndarray) -> None:
        """a: (n,), a copy owned by the view."""
        self.values = a
        self.curve.setData(self.edges, a, stepMode="center", fillLevel=0)

    def hover(self, scene_pos) -> str | None:
        if self.values is None or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        i = int(round(self.plot.vb.mapSceneToView(scene_pos).x()))
        if not 0 <= i < self.n:
            return None
        unit = f"unit {i}" if self.classes is None else f"class {self.classes[i]}"
        return f"{self.name}  {unit}   value = {fmt(float(self.values[i]))}"


class _ProbPanel:
    """The class probabilities, predicted class in orange, true label in green."""

    def __init__(self, layout: pg.GraphicsLayout, classes: list) -> None:
        self.classes = classes
        self.layout = layout.addLayout()
        self.title = SteadyLabelItem("", justify="left")  # a live text: "predicted 7 at 99.8%"
        self.layout.addItem(self.title)
        self.layout.nextRow()
        self.plot = self.layout.addPlot(enableMenu=False)
        self.plot.setObjectName("probabilities")
        self.plot.setToolTip("How sure the network is of each class (the softmax of the logits; for tiny8x8, "
                             "its sigmoid output o read as [1 - o, o]). Training pushes the true class's bar "
                             "towards 1.")
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setFixedHeight(150)
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.setLabel("left", "probability")
        self.plot.getAxis("bottom").setTicks([[(i, str(c)) for i, c in enumerate(classes)]])
        self.bars = pg.BarGraphItem(x=np.arange(len(classes)), height=np.zeros(len(classes)), width=0.7,
                                    brushes=[OTHER_BRUSH] * len(classes), name="probability")
        self.plot.addItem(self.bars)
        self.values = None

    def update(self, p: np.ndarray, label: int | None) -> None:
        """p: (num_classes,) probabilities; label: index of the true class or None."""
        self.values = p
        best = int(p.argmax())
        brushes = [OTHER_BRUSH] * len(p)
        if label is not None:
            brushes[label] = TRUE_BRUSH
        brushes[best] = PREDICTED_BRUSH
        self.bars.setOpts(height=p, brushes=brushes)
        truth = "" if label is None else f", true label {self.classes[label]} (green)"
        text = f"<b>probabilities</b>: predicted {self.classes[best]} at {percent(p[best])} (orange){truth}"
        if text != self.title.text:  # re-laying out a label costs ~0.3 ms: only when it changed
            self.title.setText(text)

    def hover(self, scene_pos) -> str | None:
        if self.values is None or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        i = int(round(self.plot.vb.mapSceneToView(scene_pos).x()))
        if not 0 <= i < len(self.values):
            return None
        return f"class {self.classes[i]}   p = {fmt(float(self.values[i]))}"


def _move_items(grid: pg.GraphicsLayout, cells: dict) -> None:
    """Move items of ``grid`` (a pyqtgraph layout) to other cells: ``cells`` maps each item to its
    (row, column, rowspan). pyqtgraph's removeItem would also take an item out of the scene; freeing
    its cell in the grid layout keeps it, with its images and curves, as it is."""
    layout = grid.layout
    for item in cells:
        index = next(i for i in range(layout.count()) if layout.itemAt(i).graphicsItem() is item)
        layout.removeAt(index)
        for r, c in grid.items[item]:
            del grid.rows[r][c]
    for item, (row, col, rowspan) in cells.items():
        layout.addItem(item, row, col, rowspan, 1)
        grid.items[item] = [(row + i, col) for i in range(rowspan)]
        for r, c in grid.items[item]:
            grid.rows.setdefault(r, {})[c] = item


class _Block:
    """One display row (a weight layer and what follows it) in a grid of its own: its panels side by
    side while the window is wide enough, else wrapped onto more lines, ``columns`` panels a line."""

    # Maps keep at least this share of their natural size before the row wraps: at 1024 px most rows
    # then hold two panels a line (at 0.7 vgg7's conv3 and relu3 went one a line, half the width empty).
    MIN_SCALE = 0.6

    def __init__(self, grid: pg.GraphicsLayout, panels: list, filler: pg.GraphicsWidget | None) -> None:
        self.grid, self.panels, self.filler = grid, panels, filler
        self.columns = len(panels)

    def width(self, columns: int, scale: float) -> float:
        """The least width of the row with ``columns`` panels a line (a column is as wide as its widest
        panel) and maps at ``scale``."""
        left, _, right, _ = self.grid.layout.getContentsMargins()
        widths = [panel.width_at(scale) for panel in self.panels]
        cells = [max(widths[c::columns]) for c in range(min(columns, len(widths)))]
        gaps = len(cells) - 1 + (self.filler is not None)
        return left + right + sum(cells) + gaps * self.grid.layout.horizontalSpacing()

    def largest_scale(self, columns: int, avail: float) -> float | None:
        """The largest scale (at most 1) at which the row fits ``avail`` with ``columns`` panels a
        line; None when it does not fit even at the smallest."""
        if self.width(columns, 0.0) > avail:
            return None
        lo, hi = 0.0, 1.0
        if self.width(columns, hi) <= avail:
            return hi
        for _ in range(16):  # widths grow with the scale: bisect
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.width(columns, mid) <= avail else (lo, mid)
        return lo

    def arrange(self, avail: float) -> None:
        """Fit the row into ``avail`` px: the fewest lines at which its maps keep MIN_SCALE of their
        size, the maps as large as then fits; one panel a line at the smallest size when nothing fits
        (the canvas then scrolls sideways rather than cutting panels off)."""
        for columns in range(len(self.panels), 0, -1):
            scale = self.largest_scale(columns, avail)
            if scale is not None and scale >= self.MIN_SCALE:
                break
        for panel in self.panels:
            panel.fit(scale or 0.0)
        if columns != self.columns:
            self.columns = columns
            lines = math.ceil(len(self.panels) / columns)
            cells = {panel.layout: (i // columns, i % columns, 1) for i, panel in enumerate(self.panels)}
            if self.filler is not None:  # the stretching column right of the maps keeps them left-aligned
                cells[self.filler] = (0, columns, lines)
            _move_items(self.grid, cells)
            if self.filler is not None:
                # Only columns that hold items: a stretch factor given to an empty column makes the grid
                # count it, with a spacing, and the row comes out 6 px wider than measured.
                for col in range(columns + 1):
                    self.grid.layout.setColumnStretchFactor(col, int(col == columns))


class FeatureMapView(SampleView):
    """Every layer's output for the chosen sample; pick samples here or send them from outside."""

    MAX_DUTY = 0.12  # repainting the maps dominates (see the module doc): ~3 refreshes a second

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("featureMapView")
        self.setToolTip("What each layer computes for one image. Early layers respond to edges and strokes; "
                        "deeper, pooled layers keep less position and more 'which pattern is present'.")
        self._x: np.ndarray | None = None      # (H, W, C) float32, owned copy
        self._label: int | None = None
        self._signature = None
        self.panels: dict[str, _MapPanel | _StripPanel] = {}
        self._outputs: dict[str, np.ndarray] | None = None   # latest model.intermediates (owned copies)
        self._drawn: set[str] = set()                        # panels showing the latest outputs
        self.probabilities: _ProbPanel | None = None
        self._blocks: list[_Block] = []
        # Building the panels ahead of the first show, one per event-loop turn (see _build_ahead)
        self._building = None          # the build's remaining steps (a generator), None when none runs
        self._build_timer = QtCore.QTimer(self, singleShot=True, interval=0)
        self._build_timer.timeout.connect(self._build_step)
        self._built = False            # the panels were built since the last refresh: draw after layout

        self.picker = SamplePicker()
        self.prediction = SteadyLabel()
        self.prediction.setToolTip("The network's answer for this sample, and the true label when known.")
        self.plot = self.make_plot()
        self.plot.ci.setSpacing(6)
        self.scroll = QtWidgets.QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)  # no focus frame: not a Tab stop
        self.scroll.setWidget(self.plot)
        self.make_readout("Hover over a map to read a value.")
        # Kernels had a caption, this page none: a learner saw 18 grids of small images and no reading key.
        self.caption = QtWidgets.QLabel(CAPTION, objectName="featureMapCaption")
        self.caption.setWordWrap(True)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(WrapRow(self.picker, self.prediction, stretch=(1, 0)))
        layout.addWidget(self.caption)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.hover)

        self.picker.picked.connect(self._picked)
        self.scroll.verticalScrollBar().valueChanged.connect(self._draw_visible)
        self.scroll.horizontalScrollBar().valueChanged.connect(self._draw_visible)
        canvas_follows_scene(self.plot)

    # ------------------------------------------------------------------ protocol

    def _new_sample(self) -> None:
        """Draw the current sample with colour scales fitted to it."""
        for panel in self.panels.values():
            if isinstance(panel, _MapPanel):
                panel.levels = None
        self._request_refresh(by_user=True)

    # ------------------------------------------------------------------ drawing

    def model_changed(self, model) -> None:
        super().model_changed(model)
        if not self.isVisible():  # no refresh now: get the panels ready for the first show
            self._build_ahead(model)

    def _refresh(self) -> None:
        model = self._model
        if model is None or not self._sample_for(model):
            return
        if self._signature_of(model) != self._signature:
            self._build_ahead(model)
        if self._building is not None:  # shown before the build ahead finished: finish it now
            self._build_timer.stop()
            for _ in self._building:
                pass
        if self._built:
            self._built = False
            # The new layout gets its geometry in the next event-loop pass: draw what is visible then.
            QtCore.QTimer.singleShot(0, self._draw_visible)
        self._outputs = model.intermediates(self._x)       # copies: the view may keep them
        self._drawn = set()
        self._draw_visible()
        outputs = self._outputs
        last = model.layers[-1].name
        p = model.proba_from_output(outputs[last][None])[0]
        self.probabilities.update(p, self._label)
        best = int(p.argmax())
        truth = None if self._label is None else model.classes[self._label]
        self.prediction.setText(prediction_text(model.classes[best], p[best], truth))

    @staticmethod
    def _signature_of(model) -> tuple:
        return tuple((name, kind, shape) for row in layer_rows(model) for name, kind, shape in row)

    def _build_ahead(self, model) -> None:
        """Build the panels for ``model``'s layers one per event-loop turn, unless they are built or being
        built already. Building them all costs 200-600 ms (18 pyqtgraph plots with their axes, colour
        bars and layouts; ~5-30 ms a panel): done in one go on the first show, it froze the GUI thread
        (628 ms under training); a panel a turn lets timers, input and repaints run in between. The view
        starts it when it is handed a model while hidden (at start-up), so the first show only draws."""
        signature = self._signature_of(model)
        if signature == self._signature:
            return
        self._signature = signature
        # Nothing to draw until the new network's outputs are in: sizing the canvas for the new
        # panels can move a scroll bar at once, whose signal draws the visible panels.
        self._outputs = None
        self._building = self._build(model)
        self._build_timer.start()

    def _build_step(self) -> None:
        if self._building is not None and next(self._building, None) is not None:
            self._build_timer.start()

    def _build(self, model):
        """The panels of ``model``'s layers, built one per step of this generator (it yields before each
        panel; ``self._building`` is None once it is done)."""
        ci = self.plot.ci
        ci.clear()
        self.panels = {}
        self._blocks = []
        self.probabilities = None
        for row in layer_rows(model):
            grid = ci.addLayout()
            for name, kind, shape in row:
                yield True
                tip = layer_tip(model, name, kind)
                if len(shape) == 3:
                    self.panels[name] = _MapPanel(grid, name, kind, shape, tip)
                else:
                    note, classes = "", None
                    # The last layer of a softmax classifier has one unit per class (tiny8x8's l2 output is
                    # one sigmoid unit, read as the probability of its second class: not a class axis).
                    if name == model.layers[-1].name and model.loss == "softmax_cross_entropy" \
                            and shape[0] == len(model.classes):
                        note = " — the logits: softmax turns them into the probabilities below"
                        classes = list(model.classes)
                    self.panels[name] = _StripPanel(grid, name, kind, shape[0], tip, note, classes)
            filler = None
            if all(len(shape) == 3 for _, _, shape in row):
                filler = pg.GraphicsWidget()  # keep fixed-size maps left-aligned
                grid.addItem(filler)
                grid.layout.setColumnStretchFactor(len(row), 1)
            self._blocks.append(_Block(grid, [self.panels[name] for name, _, _ in row], filler))
            ci.nextRow()
        self.probabilities = _ProbPanel(ci, list(model.classes))
        ci.nextRow()
        # Room for the longest line: a wrong answer names the true label too.
        self.prediction.reserve(*(prediction_text(c, 1.0, t) for c in model.classes for t in model.classes))
        self._fit_rows()
        self._building = None
        self._built = True

    def _fit_rows(self) -> None:
        """Fit every row of panels to the window's width (wrapped, maps shrunk); size the canvas."""
        # The width beside a vertical scroll bar, shown or not (as in the Kernels view): the canvas is
        # nearly always taller than the view, and the bar's arrival must not make the rows too wide.
        inner = self.scroll.width() - 2 * self.scroll.frameWidth()
        inner -= self.scroll.verticalScrollBar().sizeHint().width()
        left, _, right, _ = self.plot.ci.layout.getContentsMargins()
        for block in self._blocks:
            block.arrange(inner - left - right)
        fit_canvas_to_scene(self.plot)

    def _draw_visible(self) -> None:
        """Update the panels scrolled into view with the latest outputs; the others are drawn when
        they scroll in (a strip's setData + autorange costs ~1 ms even off screen)."""
        if self._outputs is None:
            return
        viewport = self.scroll.viewport()
        visible = QtCore.QRectF(QtCore.QRect(self.plot.mapFrom(viewport, QtCore.QPoint(0, 0)), viewport.size()))
        for name, panel in self.panels.items():
            if name in self._drawn:
                continue
            rect = self.plot.mapFromScene(panel.layout.sceneBoundingRect()).boundingRect()
            if visible.intersects(QtCore.QRectF(rect)):
                panel.update(self._outputs[name])
                self._drawn.add(name)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        if self.panels:
            self._fit_rows()
        QtCore.QTimer.singleShot(0, self._draw_visible)  # after the layout followed the new size

    def _before_export(self) -> None:
        self.draw_all()

    def draw_all(self) -> None:
        """Update every panel, visible or not (for tests and image export)."""
        if self._outputs is not None:
            for name, panel in self.panels.items():
                if name not in self._drawn:
                    panel.update(self._outputs[name])
                    self._drawn.add(name)

    def hover_text_at(self, scene_pos) -> str | None:
        for panel in [*self.panels.values(), self.probabilities]:
            if panel is not None:
                text = panel.hover(scene_pos)
                if text is not None:
                    return text
        return None
