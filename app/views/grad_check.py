"""Gradient check view: the gradient a training step applies, against central finite differences.

The learner picks one weight (parameter and index, bounded by its shape), 20 random weights of one
parameter, or 20 random weights across the model (at least one of every parameter; the summary names
any parameter left out when there are more than 20), and a backprop variant: correct, seed 004's
``broken_update`` or seed 002's ``transposed_pool``. The check runs engine.gradcheck on a float64
copy of the display model (made when the check starts, so training may go on meanwhile) with a fixed
batch of the first BATCH bundled validation images, on a background thread (a VGG-7 entry costs a
few forward passes). Rows arrive chunk by chunk with a progress bar: parameter, index, analytic
(applied) gradient, numeric gradient, relative error and pass/fail against PASS_BELOW.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.progress_bar import DeferredProgressBar
from app.views.accessibility import frame_focus
from app.views.samples import validation_set
from app.views.tones import span
from app.views.widgets import WrapRow, controls_row, model_combo, signed
from app.worker import BackgroundTask
from engine import gradcheck
from engine.model import VARIANT_LABELS

BATCH = 8
PASS_BELOW = 1e-4
BIAS_JITTER = 0.01
RANDOM_COUNT = 20
# Entries per check_entries call. Each call first runs a full forward + backward (measured on VGG-7,
# batch 8, float64, loaded machine: ~1.1 s per call against ~0.16 s per entry), so small chunks give
# finer progress and faster cancelling at a high price: 20 entries take 4.2 s in one call, 5.3 s in
# chunks of 10, 7.5 s in chunks of 5.
CHUNK = 10
SHUTDOWN_MS = 3000

SCOPES = (
    ("one", "This weight", "Check the single weight chosen by the parameter and index boxes."),
    ("param", f"{RANDOM_COUNT} random weights of this parameter",
     f"Check {RANDOM_COUNT} weights of the chosen parameter, drawn at random."),
    ("model", f"{RANDOM_COUNT} random weights of the whole model",
     f"Check {RANDOM_COUNT} weights drawn from all parameters: one of every parameter first, the rest "
     "from parameters drawn at random."),
)
VARIANTS = (
    (None, "Correct", "The correct backpropagation"),
    ("broken_update", "Broken update (seed 004)", VARIANT_LABELS["broken_update"]),
    ("transposed_pool", "Transposed pooling (seed 002)", VARIANT_LABELS["transposed_pool"]),
)
COLUMNS = ("parameter", "index", "analytic (applied)", "numeric", "relative error", "result")
SIZED_TO_CONTENTS = (0, 1, len(COLUMNS) - 1)  # the table's columns as wide as their cells; the others stretch
HEADER_SLACK = 6  # px beside a header's text and margins (a sort indicator's or the style's frame)
PASS_COLOUR = QtGui.QColor("#2e7d32")
FAIL_COLOUR = QtGui.QColor("#c62828")
KINK_COLOUR = QtGui.QColor("#8d6e00")
NOISE_COLOUR = QtGui.QColor("#546e7a")  # white on it 5.4:1 (#607d8b: 4.4)
KINK_TIP = ("Nudging this weight by ±ε moved a ReLU input across 0 or changed a max-pool winner, even "
            "with ε down to 1e-8: the finite difference straddles a corner of the loss and does not "
            "measure a gradient here. Not counted as pass or fail.")


def error_text(err: float) -> str:
    """A relative error as the table and the summary write it, always with a mantissa and an exponent:
    the summary's short format wrote a failing 1.0 as a bare "1" beside "✗ FAIL", read as "1 failure"."""
    return signed(err, ".2e")


def axis_names(param: str, shape: tuple[int, ...]) -> list[str]:
    """What each index of a parameter means, for the spinbox labels."""
    if param.endswith(".b"):
        return ["unit"]
    if len(shape) == 4:
        return ["row", "col", "in ch", "out ch"]
    if len(shape) == 2:
        return ["input", "unit"]
    return [f"axis {i}" for i in range(len(shape))]


class GradCheckView(QtWidgets.QWidget):
    """Gradient check of the display model (see the module doc). Not a LazyView: it computes only
    when asked, never on model updates."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gradCheckView")
        self.setToolTip("Checks backpropagation numerically: nudge one weight up and down, see how the loss "
                        "changes, and compare that slope with the gradient backpropagation hands to the optimiser. "
                        "A correct backward agrees to 1e-7 or better on a fresh network (up to ~1e-5 on trained "
                        "weights, whose gradients are tiny); a buggy one is far off.")
        self._model = None
        self._jitter_decided_for = None  # the model object the bias-jitter box was last set for
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._task: BackgroundTask | None = None
        self._rows: list[gradcheck.GradCheckRow] = []
        self._unsampled: list[str] = []  # parameters the last check's entries left out
        self._rng = np.random.default_rng()

        self.variant = QtWidgets.QComboBox()
        for key, text, tip in VARIANTS:
            self.variant.addItem(text, key)
            self.variant.setItemData(self.variant.count() - 1, tip, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.variant.setToolTip("Which backpropagation to check. The broken variants are the seed articles' "
                                "bugs (a wrong update, a wrong backward pass); they still train, but the "
                                "gradients they apply are wrong.")
        self.scope = QtWidgets.QComboBox()
        for key, text, tip in SCOPES:
            self.scope.addItem(text, key)
            self.scope.setItemData(self.scope.count() - 1, tip, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.scope.setToolTip("Which weights to check.")
        self.param = model_combo()
        self.param.setToolTip("The parameter array: a layer's kernel/weights (.w) or biases (.b).")
        self.index_labels = [QtWidgets.QLabel() for _ in range(4)]
        self.index_spins = [QtWidgets.QSpinBox() for _ in range(4)]
        for label, spin in zip(self.index_labels, self.index_spins):
            spin.setToolTip("Index of the weight along this axis (bounded by the parameter's shape).")
            label.setBuddy(spin)  # a screen reader names each by its axis ("row", "in ch"), which changes
        self.jitter = QtWidgets.QCheckBox(f"Move biases off zero (σ = {BIAS_JITTER:g})")
        self.jitter.setToolTip(
            "A freshly initialised network has all biases at 0, so on the black background every ReLU "
            "input is exactly 0, a corner where the slope jumps: finite differences of the biases cannot "
            f"measure a gradient there ('kink'). This adds N(0, {BIAS_JITTER:g}²) noise to every bias of "
            "the checked copy first. Ticked automatically when weights with all their biases at zero are loaded "
            "(e.g. by Reset), unticked when other weights are; training does not change it.")
        self.run_button = QtWidgets.QPushButton("Run check")
        self.run_button.setObjectName("gradCheckRun")
        self.run_button.setToolTip("Compute both gradients for the chosen weights on a fixed batch of "
                                   f"{BATCH} validation images, in float64.")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the check; the rows computed so far stay.")
        self.cancel_button.setEnabled(False)
        self.progress = DeferredProgressBar()
        self.progress.setToolTip("Weights checked so far.")
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("no check run yet")
        self.caption = QtWidgets.QLabel()
        self.caption.setWordWrap(True)
        self.summary = QtWidgets.QLabel()
        self.summary.setObjectName("gradCheckSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.summary.setToolTip("Relative error of all checked weights of each parameter together (kink rows "
                                f"left out); a parameter passes below {PASS_BELOW:g}. Where it is above only "
                                "because of rows within the finite difference's rounding noise, it says so "
                                "instead of failing.")
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("gradCheckTable")
        frame_focus(self.table)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        for column in SIZED_TO_CONTENTS:
            header.setSectionResizeMode(column, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header_tips = ("Parameter array the weight belongs to.", "Position of the weight in that array.",
                       "The gradient backpropagation hands to the optimiser for this weight, before momentum "
                       "and weight decay (model.applied_grads()).",
                       f"Central finite difference: (L(w+ε) - L(w-ε)) / 2ε, with ε = {gradcheck.EPS:g} "
                       "(smaller near kinks).",
                       f"|analytic - numeric| / max(|analytic| + |numeric|, {gradcheck.FLOOR:g}), at most 1 "
                       "(the floor keeps two near-zero gradients from giving a huge error): 1e-7 or less on a "
                       "fresh network when backprop is right, up to ~1e-5 on trained weights.",
                       f"Pass below {PASS_BELOW:g} (float64).")
        for column, tip in enumerate(header_tips):
            self.table.horizontalHeaderItem(column).setToolTip(tip)
        self.table.installEventFilter(self)  # its columns follow its width (_fit_columns)
        self._fit_columns()

        backward = controls_row("Backward", self.variant, stretch=False)
        backward.addSpacing(12)
        scope = controls_row("Check", self.scope)
        indices = [widget for pair in zip(self.index_labels, self.index_spins) for widget in pair]
        position = controls_row("Parameter", self.param, *indices, stretch=False)
        position.addSpacing(12)
        jitter = controls_row(self.jitter)
        run = QtWidgets.QHBoxLayout()
        run.addWidget(self.run_button)
        run.addWidget(self.cancel_button)
        run.addWidget(self.progress, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(WrapRow(backward, scope, stretch=(0, 1)))
        layout.addWidget(WrapRow(position, jitter, stretch=(0, 1)))
        layout.addLayout(run)
        layout.addWidget(self.caption)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

        self.param.currentIndexChanged.connect(self._param_changed)
        self.scope.currentIndexChanged.connect(self._scope_changed)
        self.variant.currentIndexChanged.connect(self._variant_changed)
        self.run_button.clicked.connect(self.run_check)
        self.cancel_button.clicked.connect(self.cancel)
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._scope_changed()
        self._update_enabled()

    # ------------------------------------------------------------------ protocol

    def model_changed(self, model) -> None:
        """Remember the display model; a new architecture refills the parameter box (the weights
        are copied only when a check starts)."""
        self._model = model
        shapes = {name: tuple(p.shape) for name, p in model.params().items()}
        if shapes != self._shapes:
            self._shapes = shapes
            current = self.param.currentText()
            self.param.blockSignals(True)
            self.param.clear()
            self.param.addItems(list(shapes))
            self.param.setCurrentIndex(max(self.param.findText(current), 0))
            self.param.blockSignals(False)
            self._param_changed()
            self._update_variants(model)
        if model is not self._jitter_decided_for:  # new weights (Reset, a file), not a training step
            self._jitter_decided_for = model
            biases = [p for name, p in model.params().items() if name.endswith(".b")]
            self.jitter.setChecked(not any(p.any() for p in biases))
        self._update_enabled()

    def _update_variants(self, model) -> None:
        """Disable the variants this architecture cannot have (e.g. broken_update needs two conv
        layers with equal kernel size and filter count), with the reason as tooltip."""
        twin = gradcheck.float64_copy(model)
        for i, (key, _text, tip) in enumerate(VARIANTS):
            item = self.variant.model().item(i)
            try:
                twin.variant = key
                item.setEnabled(True)
                item.setToolTip(tip)
            except ValueError as error:
                item.setEnabled(False)
                item.setToolTip(f"Not available for {model.name}: {error}")
        if not self.variant.model().item(self.variant.currentIndex()).isEnabled():
            self.variant.setCurrentIndex(0)

    # ------------------------------------------------------------------ choosing

    def _param_changed(self) -> None:
        shape = self._shapes.get(self.param.currentText(), ())
        names = axis_names(self.param.currentText(), shape)
        for i, (label, spin) in enumerate(zip(self.index_labels, self.index_spins)):
            used = i < len(shape)
            label.setVisible(used)
            spin.setVisible(used)
            if used:
                label.setText(names[i])
                spin.setRange(0, shape[i] - 1)

    def _scope_changed(self) -> None:
        one = self.scope.currentData() == "one"
        for spin in self.index_spins:
            spin.setEnabled(one)
        self.param.setEnabled(self.scope.currentData() != "model")
        self._update_caption()

    def _variant_changed(self) -> None:
        self._update_caption()

    def _update_caption(self) -> None:
        key = self.variant.currentData()
        what = dict((k, tip) for k, _t, tip in VARIANTS)[key]
        hint = {None: "Every row should pass: a correct backward gives errors far below the threshold "
                      "(1e-7 and less on a fresh network; up to ~1e-5 where trained gradients are tiny).",
                "broken_update": "Check conv2.w: its applied gradient is conv1.w's, averaged over conv1's "
                                 "input channels and copied to each of conv2's, so it fails; the other "
                                 "parameters, conv2.b too, still pass.",
                "transposed_pool": "Every parameter before a pooling layer gets a wrongly routed gradient "
                                   "and fails; the dense layers after the pooling still pass."}[key]
        self.caption.setText(f"{what.rstrip('.')}. {hint} Batch: the first {BATCH} validation images; "
                             f"float64 copy of the current weights, dropout off; pass if the relative error "
                             f"is below {PASS_BELOW:g}.")

    def set_index(self, param: str, index: tuple[int, ...]) -> None:
        """Choose one weight (for scripting and tests): parameter name and full index."""
        self.scope.setCurrentIndex(self.scope.findData("one"))
        self.param.setCurrentIndex(self.param.findText(param))
        for spin, i in zip(self.index_spins, index):
            spin.setValue(int(i))

    def set_variant(self, variant: str | None) -> None:
        self.variant.setCurrentIndex(self.variant.findData(variant))

    def entries(self) -> list[tuple[str, tuple[int, ...]]]:
        """The (param, index) pairs the current choice asks for (random draws are new each call)."""
        scope, param = self.scope.currentData(), self.param.currentText()
        if scope == "one":
            shape = self._shapes[param]
            return [(param, tuple(spin.value() for spin in self.index_spins[: len(shape)]))]
        if scope == "param":
            shape = self._shapes[param]
            size = int(np.prod(shape))
            flat = self._rng.choice(size, size=min(RANDOM_COUNT, size), replace=False)
            return [(param, tuple(int(i) for i in np.unravel_index(f, shape))) for f in np.sort(flat)]
        return gradcheck.sample_entries(self._model, total=RANDOM_COUNT, rng=self._rng)

    # ------------------------------------------------------------------ running

    def _batch(self):
        """(x: (BATCH, H, W, C), labels: (BATCH,)) from the bundled validation set, or None."""
        model = self._model
        dataset = validation_set(tuple(model.input_shape), tuple(model.classes))
        if dataset is None:
            return None
        return dataset.x[:BATCH], np.asarray(dataset.y[:BATCH])

    def _update_enabled(self) -> None:
        busy = self._task is not None
        ready = self._model is not None and bool(self._shapes)
        self.run_button.setEnabled(ready and not busy)
        self.cancel_button.setEnabled(busy)
        for widget in (self.variant, self.scope, self.jitter):
            widget.setEnabled(not busy)

    def is_running(self) -> bool:
        return self._task is not None

    def run_check(self) -> bool:
        """Start a check of the current choice; False (with the reason shown) when it cannot run."""
        if self._model is None or self._task is not None:
            return False
        batch = self._batch()
        if batch is None:
            self.summary.setText("No bundled validation images fit this model's input.")
            return False
        twin = gradcheck.float64_copy(self._model)  # on the GUI thread: the display model is never shared
        try:
            twin.variant = self.variant.currentData()
        except ValueError as error:
            self.summary.setText(str(error))
            return False
        entries = self.entries()
        self._unsampled = []
        if self.scope.currentData() == "model":  # a model with more parameters than entries: some left out
            sampled = {name for name, _ in entries}
            self._unsampled = [name for name in self._shapes if name not in sampled]
        x, labels = batch
        jitter = BIAS_JITTER if self.jitter.isChecked() else 0.0
        seed = int(self._rng.integers(2**31))  # check_entries draws the jitter from it: same in every chunk
        self._rows = []
        self.table.setRowCount(0)
        self.summary.setText("Checking…")
        self.progress.setRange(0, len(entries))
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m weights checked")

        def work(cancel, progress):
            for start in range(0, len(entries), CHUNK):
                if cancel.is_set():
                    return False
                progress(gradcheck.check_entries(twin, x, labels, entries[start:start + CHUNK],
                                                 bias_jitter=jitter, seed=seed))
            return True

        self._task = BackgroundTask(work, self)
        self._task.progressed.connect(self._on_rows)
        self._task.succeeded.connect(self._on_done)
        self._task.failed.connect(self._on_failed)
        self._task.finished.connect(self._on_finished)
        self._task.start()
        self._update_enabled()
        return True

    @QtCore.Slot(object)
    def _on_rows(self, args: tuple) -> None:
        (rows,) = args
        for row in rows:
            self._append_row(row)
        self._rows.extend(rows)
        self.progress.setValue(len(self._rows))

    @QtCore.Slot(object)
    def _on_done(self, completed: bool) -> None:
        self._show_summary(completed)

    @QtCore.Slot(object)
    def _on_failed(self, error: Exception) -> None:
        self.summary.setText(f"The check failed: {error}")

    @QtCore.Slot()
    def _on_finished(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.wait()
            task.deleteLater()
        self._update_enabled()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel.set()

    def shutdown(self, timeout_ms: int = SHUTDOWN_MS) -> bool:
        """Cancel a running check and join its thread (the window calls this on close)."""
        task = self._task
        if task is None:
            return True
        ok = task.shutdown(timeout_ms)
        self._on_finished()
        return ok

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        self.shutdown()
        super().closeEvent(event)

    # ------------------------------------------------------------------ results

    @staticmethod
    def verdict(row: gradcheck.GradCheckRow) -> str:
        """"pass", "FAIL", "kink", or "noise" for a row whose gradients differ by less than the finite
        difference's rounding noise (a huge loss, e.g. a diverged model's: not a failure)."""
        if row.kink:
            return "kink"
        if row.rel_err < PASS_BELOW:
            return "pass"
        return "noise" if row.within_noise else "FAIL"

    def _append_row(self, row: gradcheck.GradCheckRow) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        verdict = self.verdict(row)
        index = f"[{', '.join(map(str, row.index))}]"
        texts = (row.param, index, signed(row.analytic, ".6e"), signed(row.numeric, ".6e"), error_text(row.rel_err),
                 verdict)
        colour = {"pass": PASS_COLOUR, "FAIL": FAIL_COLOUR, "kink": KINK_COLOUR, "noise": NOISE_COLOUR}[verdict]
        for c, text in enumerate(texts):
            item = QtWidgets.QTableWidgetItem(text)
            if c >= 2:
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight
                                      | QtCore.Qt.AlignmentFlag.AlignVCenter)
            if c == len(texts) - 1:
                item.setBackground(colour)
                item.setForeground(QtGui.QColor("white"))
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            if verdict == "kink":
                item.setToolTip(KINK_TIP)
            elif verdict == "noise":
                item.setToolTip(f"The two differ by less than the finite difference's rounding noise "
                                f"(~{row.noise:.1e}), which grows with the loss: on weights that give a "
                                "huge loss (a diverged run) small gradients cannot be checked this way. "
                                "Not a failure.")
            elif row.analytic == 0 and row.numeric == 0:
                item.setToolTip("Both are exactly 0: on this batch the weight does not change the loss (it "
                                "only meets zero inputs, e.g. the black background, or dead ReLUs). They "
                                "agree, but this row says little: check another entry to test the gradient.")
            elif row.eps != gradcheck.EPS:
                item.setToolTip(f"ε was reduced to {row.eps:g} to stay clear of a ReLU/max-pool kink.")
            self.table.setItem(r, c, item)
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Keep every column at least as wide as its header's text. The middle columns share the table's width
        while that leaves each room for its header, and scroll sideways at their headers' widths when not
        (stretched, they shrank below them at 16 pt: "alytic (applie")."""
        header = self.table.horizontalHeader()
        margin = 2 * header.style().pixelMetric(QtWidgets.QStyle.PixelMetric.PM_HeaderMargin, None, header)
        metrics = header.fontMetrics()
        fixed, stretched = 0, {}
        for column, text in enumerate(COLUMNS):
            needed = metrics.horizontalAdvance(text) + margin + HEADER_SLACK
            if column in SIZED_TO_CONTENTS:
                fixed += max(needed, header.sectionSize(column))  # its cells may be wider than its header
            else:
                stretched[column] = needed
        bar = self.table.verticalScrollBar()  # the viewport's width, also before the table has laid it out anew
        room = self.table.width() - 2 * self.table.frameWidth() - (bar.sizeHint().width() if bar.isVisible() else 0)
        share = (room - fixed) / max(len(stretched), 1)  # stretched columns share the room equally
        fits = share >= max(stretched.values(), default=0)
        mode = QtWidgets.QHeaderView.ResizeMode
        for column, needed in stretched.items():
            if fits:
                header.setSectionResizeMode(column, mode.Stretch)
            else:
                header.setSectionResizeMode(column, mode.Interactive)
                header.resizeSection(column, needed)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        if watched is self.table and event.type() == QtCore.QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 (Qt naming)
        super().changeEvent(event)
        if event.type() == QtCore.QEvent.Type.FontChange:
            self._fit_columns()

    def _show_summary(self, completed: bool) -> None:
        errors = gradcheck.param_errors(self._rows)
        parts = []
        for name, err in errors.items():
            if math.isnan(err):
                hint = "" if self.jitter.isChecked() else " (try 'Move biases off zero')"
                parts.append(span(self, "warn", f"{name}: only kinks{hint}"))
            elif all(row.analytic == 0 == row.numeric for row in self._rows if row.param == name and not row.kink):
                # 0 = 0 agrees but tests nothing: a broken update passed dense1.w on one such entry
                parts.append(span(self, "warn", f"<b>{name}</b>: not tested, its sampled gradients are exactly 0 "
                                                "on this batch"))
            elif err < PASS_BELOW:
                parts.append(span(self, "ok", f"<b>{name}</b> {error_text(err)} ✓ pass"))
            elif "FAIL" not in {self.verdict(row) for row in self._rows if row.param == name}:
                # every row off by more than the threshold is within rounding noise: no failure seen
                parts.append(span(self, "warn", f"<b>{name}</b> {error_text(err)}: rounding noise, not a failure"))
            else:
                parts.append(span(self, "error", f"<b>{name}</b> {error_text(err)} ✗ FAIL"))
        if self._unsampled:  # more parameters than entries: without this the model reads as all checked
            parts.append(span(self, "warn", "not sampled (fewer weights than parameters): "
                                            + ", ".join(self._unsampled)))
        prefix = "" if completed else "Cancelled. "
        self.summary.setText(prefix + "Relative error per parameter: " + " · ".join(parts) if parts
                             else prefix + "Nothing checked.")

    def results(self) -> list[gradcheck.GradCheckRow]:
        """The rows of the last check (for tests and export)."""
        return list(self._rows)

