"""Feature maps: every layer's output for one sample, all channels, from the input to the probabilities.

Spatial outputs ``(H, W, C)`` are drawn as one mosaic per layer (channels in a near-square grid,
channel 0 top-left, row-major), each with its own colour scale: sequential (viridis) from 0 for
layers that are never negative (ReLU, pooling of ReLU), diverging with symmetric levels otherwise.
Vector outputs ``(n,)`` (flatten, dense, their activations) are drawn as bar strips. Layers are
grouped in rows, one per block: a weight layer followed by its activation, pooling and dropout.

Live cost: while training, the window pushes new weights at up to 10 Hz, and repainting the maps on
screen (images, colour bars and their axes) costs the GUI thread 25-90 ms on a loaded 2-core machine,
the computation only ~2 ms. So the view refreshes at most ``MAX_DUTY`` = 12% of the time (about
3 times a second), and a map's colour scale stays put while its values fit it: its
colour bar's axis is then not laid out again on every update, and colours stay comparable between
updates (``colour_scale.steady_levels``). A new sample starts from fresh scales.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.views.colour_scale import cmap_for_levels, fmt, grey_cmap, steady_levels, value_levels
from app.views.images import ImagePanel, SteadyLabelItem, layout_for
from app.views.samples import SamplePicker, SampleView
from app.views.widgets import SteadyLabel, WrapRow

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
    return f"Prediction: <b>{predicted}</b> ({100 * p:.1f}%){verdict}"


def layer_rows(model) -> list[list[tuple[str, str, tuple[int, ...]]]]:
    """Group (name, kind, output shape) of "input" and every layer into display rows: a new row
    starts at every weight layer (Conv2D, Dense) but the first, and at Flatten."""
    rows = [[("input", "Input", tuple(model.input_shape))]]
    for i, (layer, shape) in enumerate(zip(model.layers, model.shapes)):
        if i > 0 and layer.kind in ("Conv2D", "Dense", "Flatten"):
            rows.append([])
        rows[-1].append((layer.name, layer.kind, tuple(shape)))
    return rows


class _MapPanel:
    """One spatial output (H, W, C) as a mosaic of its C channels."""

    TARGET_H = 220   # screen pixels per layer mosaic: small maps are magnified, large ones shrunk
    MAX_W = 330      # three panels (plus colour bars) fit side by side in a 1200-px window
    PX_MAX = 28      # an 8x8 input still gets ~220 px
    EXTRA_W = 130    # colour bar, its axis and label, margins and spacing beside each mosaic

    def __init__(self, layout: pg.GraphicsLayout, name: str, kind: str, shape: tuple[int, int, int],
                 tip: str) -> None:
        self.name, self.kind, self.shape = name, kind, shape
        h, w, c = shape
        self.mosaic = layout_for(c, h, w, None)
        self.panel = ImagePanel(layout, cmap=grey_cmap() if name == "input" else None, tooltip=tip, name=name)
        mh, mw = self.mosaic.shape
        self.natural_px = min(self.PX_MAX, self.TARGET_H / mh, self.MAX_W / mw)
        self.fit(1.0)
        grid = f", {self.mosaic.rows}×{self.mosaic.cols} grid" if c > 1 else ""
        # Titles are static: re-laying out text on every live update is costly; the colour bar
        # carries the changing range.
        self.panel.title.setText(f"<b>{name}</b> ({kind})<br>{shape_text(shape)}{grid}")
        self.layout = self.panel.layout
        self.values = None
        self.levels: tuple[float, float] | None = None  # as drawn (None: the next update fits them afresh)

    def fit(self, scale: float) -> None:
        """Draw at ``scale`` times the natural size (rows shrink to fit narrow windows)."""
        self.height = self.panel.fit(self.mosaic.shape, max(self.natural_px * scale, 1.0))[1]

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
        return f"{self.name}  channel {channel}  row {r} col {c}   value = {fmt(float(self.values[r, c, channel]))}"

    def hover(self, scene_pos) -> str | None:
        pixel = self.panel.pixel_at(scene_pos)
        return None if pixel is None else self.hover_text(*pixel)


class _StripPanel:
    """One vector output (n,) as a bar strip (a filled step curve: one item, cheap for n = 1568)."""

    def __init__(self, layout: pg.GraphicsLayout, name: str, kind: str, n: int, tip: str, note: str = "") -> None:
        self.name, self.kind, self.n = name, kind, n
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
        self.plot.setLabel("bottom", "unit" if kind != "Flatten" else "flattened index (row, col, channel)")
        self.edges = np.arange(n + 1) - 0.5                      # bar i spans [i - 0.5, i + 0.5]
        self.curve = self.plot.plot(self.edges, np.zeros(n), stepMode="center", fillLevel=0,
                                    pen=STRIP_PEN, brush=STRIP_BRUSH, name=name)
        self.plot.setXRange(-0.5, n - 0.5, padding=0.01)
        if n <= 20:  # label every unit (the automatic ticks would show fractions of a unit)
            self.plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(n)]])
            self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.title.setText(f"<b>{name}</b> ({kind}) {n} value{'s' * (n != 1)}{note}")
        self.values = None

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
        return f"{self.name}  unit {i}   value = {fmt(float(self.values[i]))}"


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
        text = f"<b>probabilities</b>: predicted {self.classes[best]} at {100 * p[best]:.1f}% (orange){truth}"
        if text != self.title.text:  # re-laying out a label costs ~0.3 ms: only when it changed
            self.title.setText(text)

    def hover(self, scene_pos) -> str | None:
        if self.values is None or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        i = int(round(self.plot.vb.mapSceneToView(scene_pos).x()))
        if not 0 <= i < len(self.values):
            return None
        return f"class {self.classes[i]}   p = {fmt(float(self.values[i]))}"


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
        self._rows: list = []

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

        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(WrapRow(self.picker, self.prediction, stretch=(1, 0)))
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.hover)

        self.picker.picked.connect(self._picked)
        self.scroll.verticalScrollBar().valueChanged.connect(self._draw_visible)

    # ------------------------------------------------------------------ protocol

    def _new_sample(self) -> None:
        """Draw the current sample with colour scales fitted to it."""
        for panel in self.panels.values():
            if isinstance(panel, _MapPanel):
                panel.levels = None
        self._request_refresh(by_user=True)

    # ------------------------------------------------------------------ drawing

    def _refresh(self) -> None:
        model = self._model
        if model is None or not self._sample_for(model):
            return
        signature = tuple((name, kind, shape) for row in layer_rows(model) for name, kind, shape in row)
        if signature != self._signature:
            self._signature = signature
            self._build(model)
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

    def _build(self, model) -> None:
        ci = self.plot.ci
        ci.clear()
        self.panels = {}
        for row in layer_rows(model):
            row_layout = ci.addLayout()
            for name, kind, shape in row:
                tip = layer_tip(model, name, kind)
                if len(shape) == 3:
                    self.panels[name] = _MapPanel(row_layout, name, kind, shape, tip)
                else:
                    note = ""
                    if name == model.layers[-1].name and model.loss == "softmax_cross_entropy":
                        note = " — the logits: softmax turns them into the probabilities below"
                    self.panels[name] = _StripPanel(row_layout, name, kind, shape[0], tip, note)
            if all(len(shape) == 3 for _, _, shape in row):
                row_layout.addItem(pg.GraphicsWidget())  # keep fixed-size maps left-aligned
                row_layout.layout.setColumnStretchFactor(len(row), 1)
            ci.nextRow()
        self.probabilities = _ProbPanel(ci, list(model.classes))
        ci.nextRow()
        # Room for the longest line: a wrong answer names the true label too.
        self.prediction.reserve(*(prediction_text(c, 1.0, t) for c in model.classes for t in model.classes))
        self._rows = layer_rows(model)
        self._fit_rows()

    def _fit_rows(self) -> None:
        """Shrink rows of maps that would be wider than the window; size the scrolled canvas."""
        avail = self.scroll.viewport().width() - 30
        height = 150 + 90  # the probabilities
        for row in self._rows:
            maps = [self.panels[name] for name, _, _ in row if isinstance(self.panels[name], _MapPanel)]
            if maps:
                natural = sum(p.mosaic.shape[1] * p.natural_px for p in maps)
                scale = min(1.0, (avail - _MapPanel.EXTRA_W * len(maps)) / natural)
                for panel in maps:
                    panel.fit(scale)
            height += self._row_height(row)
        self.plot.setMinimumHeight(height)

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

    def _row_height(self, row) -> int:
        return max(self.panels[name].height for name, _, _ in row) + 75  # + titles, axis, spacing

    def hover_text_at(self, scene_pos) -> str | None:
        for panel in [*self.panels.values(), self.probabilities]:
            if panel is not None:
                text = panel.hover(scene_pos)
                if text is not None:
                    return text
        return None
