"""Where the conv stepper's numbers come from: one panel per source, each with ``build() -> (ConvTrace,
note)`` (raising ValueError with what is missing) and a ``changed`` signal.

- :class:`WorkedPanel`: seed 001's worked examples;
- :class:`CustomPanel`: a convolution of the learner's choosing, values random or typed
  (:func:`format_blocks` / :func:`parse_blocks` write and read them);
- :class:`LivePanel`: a conv layer of the display model on one sample, with that sample's real δ.

Split from ``app.views.conv_stepper``.
"""
from __future__ import annotations

import re

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.views.samples import SamplePicker, held_out_images
from app.views.tones import ToneLabel
from app.views.widgets import WrapRow, controls_row, model_combo
from engine.ops import conv_output_hw
from engine.trace import WORKED_EXAMPLES, ConvTrace, live_conv_trace, trace_conv2d

WORKED_TITLES = {
    "seed001_5x5_kernel3": "5×5 input, 3×3 kernel (first output 4)",
    "seed001_3x3_kernel2_stride1": "3×3 input, 2×2 kernel, stride 1 (∇a22)",
    "seed001_4x4_kernel2_stride2": "4×4 input, 2×2 kernel, stride 2",
    "seed001_two_channel": "2×2×2 input and kernel (= 204)",
}


def format_blocks(blocks: np.ndarray) -> str:
    """(n, rows, cols) → ``"1 2; 3 4 | 5 6; 7 8"``: rows by ';', blocks by '|'."""
    return " | ".join("; ".join(" ".join(f"{v:g}" for v in row) for row in block) for block in blocks)


def parse_blocks(text: str, n: int, rows: int, cols: int, what: str, block_names: list[str]) -> np.ndarray:
    """Inverse of :func:`format_blocks`; raises ValueError saying what is wrong, naming blocks (by their
    ``block_names``, e.g. their channels) and rows (from 1, as in the formulas) only where there are
    several. Returns (n, rows, cols)."""
    def numbers_word(count):
        return f"{count} number{'' if count == 1 else 's'}"
    # the views write negatives with a real minus sign: a number copied from a read-out is read too
    blocks = text.replace("\N{MINUS SIGN}", "-").split("|")
    if len(blocks) != n:
        raise ValueError(f"{what}: expected {n} block(s) separated by '|', got {len(blocks)}")
    out = np.zeros((n, rows, cols))
    for k, block in enumerate(blocks):
        where = f"{what} {block_names[k]}" if n > 1 else what
        lines = [line for line in re.split(r"[;\n]", block) if line.strip()]
        if not lines:
            raise ValueError(f"{where}: empty; type {numbers_word(rows * cols)}"
                             + (f" in {rows} rows separated by ';'" if rows > 1 else ""))
        if len(lines) != rows:
            needs = f"{rows} rows separated by ';'" if rows > 1 else "1 row (no ';')"
            raise ValueError(f"{where}: needs {needs}, got {len(lines)}")
        for r, line in enumerate(lines):
            at = f"{where}, row {r + 1}" if rows > 1 else where
            words = line.split()
            comma = next((word for word in words if "," in word), None)
            if comma is not None:  # "0,5" is a decimal in much of the world: never read it as 0 and 5
                raise ValueError(f"{at}: {comma!r}: separate numbers with spaces, and write decimals "
                                 f"with a dot (0.5)")
            try:
                numbers = [float(v) for v in words]
            except ValueError:
                raise ValueError(f"{at}: not a number in {line.strip()!r}") from None
            if len(numbers) != cols:
                raise ValueError(f"{at}: needs {numbers_word(cols)}, got {len(numbers)}")
            out[k, r] = numbers
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: values must be finite")
    return out


def _spin(lo: int, hi: int, value: int, tip: str) -> QtWidgets.QSpinBox:
    spin = QtWidgets.QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


class WorkedPanel(QtWidgets.QWidget):
    """Seed 001's worked examples."""

    changed = QtCore.Signal()

    def __init__(self) -> None:
        super().__init__()
        self.combo = QtWidgets.QComboBox()
        for key in WORKED_EXAMPLES:
            self.combo.addItem(WORKED_TITLES.get(key, key), key)
        self.combo.setToolTip("The examples seed 001 (Help → Reference articles) derives by hand, with its inputs "
                              "and kernels (its 5x5 input's "
                              "figure is lost: this is the classic UFLDL input, whose first window and output 4 "
                              "are the ones the article's text gives); the δ values are chosen here, and the "
                              "2x2x2 example shows the true convolution, not the article's matrix.")
        self.description = QtWidgets.QLabel()
        self.description.setWordWrap(True)
        # Room for a few words a line: narrower, the description goes below the example (WrapRow)
        # rather than stack 13 short lines.
        self.description.setMinimumWidth(300)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(WrapRow(controls_row("Example", self.combo, stretch=False), self.description,
                                 stretch=(0, 1)))
        self.combo.currentIndexChanged.connect(self._update)
        self._update()

    def _update(self) -> None:
        self.description.setText(WORKED_EXAMPLES[self.combo.currentData()].description)
        self.changed.emit()

    def build(self) -> tuple[ConvTrace, str]:
        e = WORKED_EXAMPLES[self.combo.currentData()]
        return trace_conv2d(e.x, e.w, e.b, e.dy, e.stride, e.padding), ""


class CustomPanel(QtWidgets.QWidget):
    """A convolution of the learner's choosing: sizes, stride, padding, channels; values random
    (small integers, easy to follow by hand) or typed."""

    changed = QtCore.Signal()

    def __init__(self) -> None:
        super().__init__()
        self.h = _spin(1, 32, 6, "Input height")
        self.w = _spin(1, 32, 6, "Input width")
        self.k = _spin(1, 7, 3, "Kernel size k (k×k)")
        self.stride = _spin(1, 4, 2, "Stride s: how far the kernel moves between windows")
        self.padding = QtWidgets.QComboBox()
        self.padding.addItems(["VALID", "SAME", "explicit"])
        self.padding.setCurrentText("SAME")
        self.padding.setToolTip("VALID: no padding. SAME (TensorFlow): output = ceil(input/stride); the odd "
                                "zero goes to the bottom/right. explicit: p zeros on every side.")
        self.pad_amount = _spin(0, 4, 1, "Zeros on every side (explicit padding)")
        self.c_in = _spin(1, 3, 1, "Input channels")
        self.c_out = _spin(1, 3, 1, "Output channels (one kernel each)")
        self.bias = QtWidgets.QCheckBox("Bias")
        self.bias.setToolTip("Add a bias b per output channel")
        self.random_button = QtWidgets.QPushButton("New random values")
        self.random_button.setToolTip("Draw new small integers for a, w, δ and b (easy to check by hand).")
        self.edits = {name: QtWidgets.QLineEdit() for name in ("x", "w", "dy", "b")}
        labels = {"x": "a", "w": "w", "dy": "δ", "b": "b"}
        tips = {"x": "Input a: rows separated by ';', numbers by spaces (decimals with a dot: 0.5), one block per "
                     "input channel separated by '|'.",
                "w": "Kernel w: one k×k block per (input channel, output channel), channels counted from 0, "
                     "in the order (in 0,out 0) | (in 1,out 0) | … | (in 0,out 1) | …",
                "dy": "δ = ∂L/∂z at the output: one block per output channel.",
                "b": "Bias: one number per output channel."}
        self.error = ToneLabel()
        self.error.set_tone("error")
        self.error.setWordWrap(True)
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        # two rows of settings: in one, the page would be wider than the window leaves the stepper
        rows = ((("Input", self.h), ("×", self.w), ("Kernel", self.k), ("Stride", self.stride),
                 ("Padding", self.padding), ("p", self.pad_amount)),
                (("Channels in", self.c_in), ("out", self.c_out), ("", self.bias), ("", self.random_button)))
        for row, pairs in enumerate(rows):
            line = QtWidgets.QHBoxLayout()
            for text, widget in pairs:
                if text:
                    line.addWidget(QtWidgets.QLabel(text))
                line.addWidget(widget)
            line.addStretch(1)
            grid.addLayout(line, row, 0, 1, 8)
        for col, name in enumerate(self.edits):
            self.edits[name].setToolTip(tips[name])
            grid.addWidget(QtWidgets.QLabel(labels[name]), 2, 2 * col)
            grid.addWidget(self.edits[name], 2, 2 * col + 1)
            grid.setColumnStretch(2 * col + 1, 3 if name in ("x", "dy") else 2)
        grid.addWidget(self.error, 3, 0, 1, 8)
        self._rng = np.random.default_rng(1)
        self._values: dict[str, np.ndarray] = {}
        # Why the settings or typed values make no convolution (None when they do): the view then shows
        # this on its canvas instead of an earlier trace that no longer matches the fields.
        self._problem: str | None = None
        for spin in (self.h, self.w, self.k, self.stride, self.pad_amount, self.c_in, self.c_out):
            spin.valueChanged.connect(self._shape_changed)
        self.padding.currentIndexChanged.connect(self._shape_changed)
        self.bias.toggled.connect(self._shape_changed)
        self.random_button.clicked.connect(self._randomize)
        for edit in self.edits.values():
            edit.editingFinished.connect(self._typed)
        self._shape_changed()

    def _padding_value(self):
        mode = self.padding.currentText()
        self.pad_amount.setEnabled(mode == "explicit")
        return self.pad_amount.value() if mode == "explicit" else mode

    def _shapes(self) -> dict[str, tuple] | None:
        """Required shapes of x, w, dy, b for the current settings, or None if the kernel does not fit."""
        h, w, k, ci, co = self.h.value(), self.w.value(), self.k.value(), self.c_in.value(), self.c_out.value()
        try:
            h_out, w_out = conv_output_hw((h, w), (k, k), self.stride.value(), self._padding_value())
        except ValueError:
            return None
        if h_out < 1 or w_out < 1:
            return None
        return {"x": (h, w, ci), "w": (k, k, ci, co), "dy": (h_out, w_out, co), "b": (co,)}

    def _random(self, name: str, shape: tuple) -> np.ndarray:
        """Small random integers of ``shape`` for array ``name`` of a random example (easy sums)."""
        lo, hi = {"x": (0, 3), "w": (-2, 2), "dy": (-2, 2), "b": (-1, 1)}[name]
        return self._rng.integers(lo, hi + 1, size=shape).astype(np.float64)

    def _shape_changed(self) -> None:
        """Keep the values whose shape still fits (typed ones included), draw new ones for the rest."""
        shapes = self._shapes()
        if shapes is None:
            k = self.k.value()
            self._set_problem(f"The {k}×{k} kernel does not fit in the padded input: make the input bigger, "
                              "the kernel smaller or add padding.")
            return
        for name, shape in shapes.items():
            if name not in self._values or self._values[name].shape != shape:
                self._values[name] = self._random(name, shape)
        self._show_values()
        self._set_problem(None)

    def _randomize(self) -> None:
        self._values.clear()
        self._shape_changed()

    def _show_values(self) -> None:
        v = self._values
        self.edits["x"].setText(format_blocks(v["x"].transpose(2, 0, 1)))
        kh, kw, ci, co = v["w"].shape
        self.edits["w"].setText(format_blocks(v["w"].transpose(3, 2, 0, 1).reshape(ci * co, kh, kw)))
        self.edits["dy"].setText(format_blocks(v["dy"].transpose(2, 0, 1)))
        self.edits["b"].setText(" ".join(f"{x:g}" for x in v["b"]))
        self.edits["b"].setEnabled(self.bias.isChecked())

    def _typed(self) -> None:
        shapes = self._shapes()
        if shapes is None:
            return
        try:
            h, w, ci = shapes["x"]
            k, _, _, co = shapes["w"]
            h_out, w_out, _ = shapes["dy"]
            # Blocks named by their channels, counted from 0 as the tooltips and the canvas count them.
            inputs, outputs = [f"[{c}]" for c in range(ci)], [f"[{c}]" for c in range(co)]
            pairs = [f"(in {i}, out {o})" for o in range(co) for i in range(ci)]
            x = parse_blocks(self.edits["x"].text(), ci, h, w, "a", inputs).transpose(1, 2, 0)
            wt = parse_blocks(self.edits["w"].text(), ci * co, k, k, "w", pairs).reshape(co, ci, k, k)
            wt = wt.transpose(2, 3, 1, 0)                                                 # (k, k, ci, co)
            dy = parse_blocks(self.edits["dy"].text(), co, h_out, w_out, "δ", outputs).transpose(1, 2, 0)
            b = parse_blocks(self.edits["b"].text(), 1, 1, co, "b (one per output channel)", [])[0, 0]
        except ValueError as error:
            self._set_problem(str(error))
            return
        new = {"x": x, "w": wt, "dy": dy, "b": b}
        if all(np.array_equal(new[n], self._values[n]) for n in new) and self._problem is None:
            return
        self._values.update(new)
        self._set_problem(None)

    def _set_problem(self, problem: str | None) -> None:
        """Show why there is no convolution (or clear it) and have the view rebuild: it then steps
        through the new values or shows the problem instead of a trace the fields no longer match."""
        self._problem = problem
        self.error.setText(problem or "")
        self.changed.emit()

    def build(self) -> tuple[ConvTrace, str]:
        if self._problem is not None:
            raise ValueError(self._problem)
        v = self._values
        b = v["b"] if self.bias.isChecked() else None
        trace = trace_conv2d(v["x"], v["w"], b, v["dy"], self.stride.value(), self._padding_value())
        return trace, ""


class LivePanel(QtWidgets.QWidget):
    """A conv layer of the display model on one sample: the current sample of the app or a bundled
    validation digit. Recomputed on demand (or on every weight update with "Follow training")."""

    changed = QtCore.Signal()

    def __init__(self) -> None:
        super().__init__()
        self.layer = model_combo()
        self.layer.setToolTip("The convolution layer to step through (its current weights).")
        self.sample_mode = QtWidgets.QComboBox()
        self.sample_mode.addItem("current sample", "current")
        self.sample_mode.addItem("validation sample", "validation")
        self.sample_mode.setToolTip("The app's current sample (e.g. sent from the drawing pad) or a bundled "
                                    "validation digit.")
        self.picker = SamplePicker()
        self.recompute_button = QtWidgets.QPushButton("Recompute")
        self.recompute_button.setToolTip("Run the sample through the model's current weights again: new x, w and δ.")
        self.follow = QtWidgets.QCheckBox("Follow training")
        self.follow.setToolTip("Recompute on every weight update (keeps the current step).")
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel("Layer"))
        row.addWidget(self.layer)
        row.addWidget(self.sample_mode)
        row.addWidget(self.picker)
        row.addWidget(self.recompute_button)
        row.addWidget(self.follow)
        row.addStretch(1)
        self.model = None
        self.current: tuple[np.ndarray, int | None] | None = None
        self.stale = False
        self.layer.currentIndexChanged.connect(self.changed)
        self.sample_mode.currentIndexChanged.connect(self._mode_changed)
        self.picker.picked.connect(self._picked)
        self.recompute_button.clicked.connect(self.changed)
        self._mode_changed()

    def set_model(self, model, window=None) -> bool:
        """Keep a reference to the display model; True when its conv layers changed (new architecture).
        ``window``: the main window, whose held-out images the picker offers."""
        self.model = model
        names = [layer.name for layer in model.layers if layer.kind == "Conv2D"]
        old = [self.layer.itemText(i) for i in range(self.layer.count())]
        self.picker.set_dataset(held_out_images(model, window))
        if names == old:
            return False
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems(names)
        self.layer.blockSignals(False)
        return True

    def _mode_changed(self) -> None:
        self.picker.setVisible(self.sample_mode.currentData() == "validation")
        self.changed.emit()

    def _picked(self, x, label) -> None:
        """The validation picker chose ``x: (H, W, C)``: rebuild if that is the sample used."""
        if self.sample_mode.currentData() == "validation":
            self.changed.emit()

    def sample(self) -> tuple[np.ndarray, int | None, str] | None:
        """(x: (H, W, C), label, description) of the sample to use, or None when there is none."""
        if self.sample_mode.currentData() == "current" and self.current is not None:
            x, label = self.current
            return x, label, "the current sample" + (f" (label {label})" if label is not None else " (no label)")
        picked = self.picker.current()
        if picked is None:
            return None
        x, label = picked
        where = f"validation sample #{self.picker.spin.value()} (label {label})"
        if self.sample_mode.currentData() == "current":
            where += " — no current sample yet"
        return x, label, where

    def build(self) -> tuple[ConvTrace, str]:
        if self.model is None or self.layer.count() == 0:
            raise ValueError("The live source needs a model with a convolution layer: load or train one first.")
        sample = self.sample()
        if sample is None:
            raise ValueError("No sample yet: pick a validation sample or send one from the drawing pad.")
        x, label, where = sample
        if tuple(x.shape) != tuple(self.model.input_shape):
            raise ValueError(f"The sample is {x.shape}, the model expects {tuple(self.model.input_shape)}.")
        live = live_conv_trace(self.model, self.layer.currentText(), x, label)
        classes = self.model.classes
        predicted = int(np.argmax(live.proba))
        against = (f"label {classes[live.label]}" if label is not None
                   else f"the predicted class {classes[live.label]} (no label given)")
        note = (f"{self.layer.currentText()} on {where}: predicted {classes[predicted]} "
                f"(p = {live.proba[predicted]:.3f}), loss {live.loss:.4g} against {against}. "
                + ("δ is the real ∂L/∂z at this layer's output, before its activation. "
                   if self.model.variant != "transposed_pool" else
                   "δ is what the transposed_pool variant's wrong pooling backward delivers to this layer's "
                   "output, before its activation: not the true ∂L/∂z. ")
                + "Channels count from 0, as in Kernels, Feature maps, Pooling and Gradient check; rows and "
                "columns count from 1, as in seed 001's formulas (w12: row 1, column 2).")
        self.stale = False
        return live.trace, note

