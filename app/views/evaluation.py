"""Evaluation view: confusion matrix → gallery of the digits in a cell → one digit into the other views.

The matrix counts, for held-out images the network never trained on, how often each true digit (rows)
was predicted as each digit (columns); the diagonal is what it got right. Clicking an off-diagonal cell
lists those mistakes as thumbnails, most confident first (a confident mistake is the most instructive);
clicking a thumbnail emits ``sample_selected(x, label)`` so the window can show that digit in the
feature-map, pooling and stepper views.

Evaluation runs off the GUI thread (:class:`app.worker.BackgroundTask`) on a private copy of the
display model, through :func:`engine.trainer.evaluate` (which reports progress and can be cancelled
after each batch: 10,000 test images take seconds). While "Follow training" is ticked it re-evaluates
when the weights change, at most once per ``MIN_INTERVAL_S`` and using at most a third of one core.
"""
from __future__ import annotations

import functools
import math
import time

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.export import save_png, write_matrix_csv
from app.progress_bar import DeferredProgressBar
from app.views.accessibility import describe_for_screen_readers, frame_focus
from app.views.colour_scale import percent
from app.views.samples import held_out_images, validation_set
from app.views.tones import span, text_on
from app.views.widgets import WrapRow
from app.worker import BackgroundTask
from engine.model import Sequential
from engine.trainer import Evaluation, evaluate, labels_for
from engine.text import plural

MAX_THUMBNAILS = 300  # a gallery beyond this shows the most confident ones and says how many it left out
THUMB_PX = 56
MIN_INTERVAL_S = 1.0  # follow mode: at most one evaluation per second ...
MAX_DUTY = 1 / 3      # ... and at most this share of the time spent evaluating
SHUTDOWN_MS = 2000


class EvaluationResult:
    """One finished evaluation: the model copy it used (for its classes: the view reuses that copy, so
    its weights are the next evaluation's once one starts), the dataset and the engine's Evaluation."""

    def __init__(self, model: Sequential, dataset, evaluation: Evaluation) -> None:
        self.model = model
        self.dataset = dataset
        self.evaluation = evaluation

    def cell(self, true: int, predicted: int) -> tuple[np.ndarray, np.ndarray]:
        """The misclassified images of one off-diagonal cell: (dataset indices (m,), their class
        probabilities (m, K)), the most confident mistakes first."""
        wrong = self.evaluation.misclassified
        y = np.asarray(self.dataset.y)[wrong]
        picked = wrong[(y == true) & (self.evaluation.predictions[wrong] == predicted)]
        proba = self.evaluation.probabilities[picked]
        order = np.argsort(-proba[:, predicted], kind="stable")
        return picked[order], proba[order]


def _evaluate_task(model: Sequential, dataset, cancel, progress) -> EvaluationResult | None:
    """Background: the evaluation (on the task's thread)."""
    evaluation = evaluate(model, dataset, progress=progress, cancel=cancel)
    if evaluation is None or cancel.is_set():
        return None
    return EvaluationResult(model, dataset, evaluation)


def _blend(a: QtGui.QColor, b: QtGui.QColor, t: float) -> QtGui.QColor:
    t = min(max(t, 0.0), 1.0)
    return QtGui.QColor(*(round(x + (y - x) * t) for x, y in ((a.red(), b.red()), (a.green(), b.green()),
                                                               (a.blue(), b.blue()))))


ZERO_TEXT = QtGui.QColor("#6e747b")  # zeros quieter than counts, yet 4.7:1 on white (#b8bcc2 was 1.9:1)


class ConfusionMatrix(QtWidgets.QWidget):
    """A K x K table of counts painted with QPainter: rows = true class, columns = predicted class.

    The diagonal is green by the share of its row it got right; mistakes are red, by count relative to
    the largest mistake (square root, so that a single error is still visible). A column at the right
    gives each row's accuracy. Clicking a cell, or moving to it with the arrow keys, emits
    ``cell_clicked(true, predicted)``; a click or Return also ``cell_opened(true, predicted)``: the
    learner asks to see its digits (the page scrolls to them), which moving over cells does not.
    """

    cell_clicked = QtCore.Signal(int, int)
    cell_opened = QtCore.Signal(int, int)

    WHITE = QtGui.QColor("#ffffff")
    GREEN = QtGui.QColor("#2e9d4f")
    RED = QtGui.QColor("#d0342c")
    SELECTED = QtGui.QColor("#1f6fd1")
    # Room for the headers and the "right" column, and the cell size, from the widget's font (at 20 pt
    # "100%" was cut in a 64-px column, "predicted →" in a 20-px band, and the counts filled 40-px cells).
    def _sizes(self) -> dict[str, int]:
        """line_h, header_w, header_h, right_w and cell_px, measured once per font and data: the
        table asks for them hundreds of times a paint (measuring each time made a paint 4x slower)."""
        if self._measured is None:
            metrics = self.fontMetrics()
            bold = QtGui.QFont(self.font())
            bold.setBold(True)
            line_h = max(20, metrics.height() + 2)
            self._measured = {
                "line_h": line_h,  # one line of header text (the column titles' band)
                "header_w": max(70, line_h + metrics.horizontalAdvance("88") + 24),
                "header_h": max(46, 2 * line_h + 6),
                "right_w": max(64, metrics.horizontalAdvance("100%") + 14),
                # As wide as the longest count needs, 3 digits at least (full MNIST's diagonal has 4): room
                # for 4 whatever the data made the bundled set's matrix too wide for 1024 px at 11 pt.
                "cell_px": max(40 if len(self.labels) > 4 else 72,
                               QtGui.QFontMetrics(bold).horizontalAdvance("8" * self._count_digits()) + 4),
            }
        return self._measured

    def _count_digits(self) -> int:
        largest = int(self.confusion.max()) if self.confusion.size else 0
        return max(3, len(str(largest)))

    line_h = property(lambda self: self._sizes()["line_h"])
    header_w = property(lambda self: self._sizes()["header_w"])
    header_h = property(lambda self: self._sizes()["header_h"])
    right_w = property(lambda self: self._sizes()["right_w"])
    cell_px = property(lambda self: self._sizes()["cell_px"])

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("confusionMatrix")
        self.setMouseTracking(True)
        self.confusion = np.zeros((0, 0), np.int64)
        self.totals = np.zeros(0, np.int64)  # images per true class (set_data)
        self.labels: list[str] = []
        self._colours: list[list[QtGui.QColor]] = []  # per cell, computed once per set_data, not per paint
        self.selected: tuple[int, int] | None = None
        # The painted table, kept until the data, selection, size or style changes: its 100+ texts take
        # ~10 ms to draw under training, which a tab switch to this page would pay on every visit.
        self._image: QtGui.QPixmap | None = None
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)  # arrow keys walk the cells
        self.setAccessibleName("Confusion matrix")
        self._measured: dict[str, int] | None = None  # see _sizes; None: measure again
        self._pens: list[list[QtGui.QColor]] = []  # per cell, the number's colour (see text_on)

    def set_data(self, confusion: np.ndarray, labels: list[str], totals: np.ndarray | None = None) -> None:
        """confusion: (K, K) counts, rows = true, columns = predicted; labels: K class names; totals: (K,)
        images of each true class, default the rows' sums (more when some got no answer, in no cell:
        :attr:`engine.trainer.Evaluation.unanswered`)."""
        self.confusion = np.asarray(confusion, dtype=np.int64).copy()
        self.totals = self.confusion.sum(axis=1) if totals is None else np.asarray(totals, dtype=np.int64).copy()
        self.labels = list(labels)
        self._colours = self._cell_colours(self.confusion, self.totals)
        self._pens = [[text_on(colour) for colour in row] for row in self._colours]
        self._measured = None  # the class count or the longest count may have changed
        if self.selected is not None and max(self.selected) >= len(labels):
            self.selected = None
        self.updateGeometry()
        self.adjustSize()
        self._repaint_table()

    def set_selected(self, cell: tuple[int, int] | None) -> None:
        self.selected = cell
        self._repaint_table()

    def _repaint_table(self) -> None:
        self._image = None
        self.update()
        if not self.labels:
            text = "No evaluation yet."
        elif self.selected is None:
            right, total = int(np.trace(self.confusion)), int(self.totals.sum())
            text = (f"{right} of {total} images recognised. The arrow keys choose a cell; "
                    "the gallery then shows its images."
                    if total else "No images evaluated.")
        else:
            text = self.cell_text(*self.selected)
        describe_for_screen_readers(self, text)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt naming)
        k = max(len(self.labels), 1)
        return QtCore.QSize(self.header_w + k * self.cell_px + self.right_w, self.header_h + k * self.cell_px + 8)

    def cell_rect(self, true: int, predicted: int) -> QtCore.QRect:
        c = self.cell_px
        return QtCore.QRect(self.header_w + predicted * c, self.header_h + true * c, c, c)

    def cell_at(self, pos: QtCore.QPointF) -> tuple[int, int] | None:
        k, c = len(self.labels), self.cell_px
        col = math.floor((pos.x() - self.header_w) / c)
        row = math.floor((pos.y() - self.header_h) / c)
        return (row, col) if 0 <= row < k and 0 <= col < k else None

    def cell_text(self, true: int, predicted: int) -> str:
        """What one cell means, in words (its tooltip)."""
        n = int(self.confusion[true, predicted])
        total = int(self.totals[true])
        share = f"{n / total:.1%}" if total else "–"
        t, p = self.labels[true], self.labels[predicted]
        if true == predicted:
            return f"{n} of the {total} images of {t} were recognised ({share})."
        return (f"{plural(n, 'image')} of {t} {'was' if n == 1 else 'were'} taken for {p} ({share} of the {t}s)."
                + (" Click to see them." if n else ""))

    @classmethod
    def _cell_colours(cls, counts: np.ndarray, totals: np.ndarray) -> list[list[QtGui.QColor]]:
        """counts: (K, K), totals: (K,) images per row. Each cell's colour: green by its row's share on the
        diagonal, red by the square root of its count relative to the largest mistake elsewhere."""
        off = counts.copy()
        np.fill_diagonal(off, 0)
        top = off.max(initial=0)
        k = counts.shape[0]
        return [[_blend(cls.WHITE, cls.GREEN, counts[t, t] / totals[t] if totals[t] else 0.0) if t == q else
                 _blend(cls.WHITE, cls.RED, math.sqrt(counts[t, q] / top) if top else 0.0)
                 for q in range(k)] for t in range(k)]

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if not self.labels:
            return
        ratio = self.devicePixelRatioF()
        size = self.size() * ratio
        if self._image is None or self._image.size() != size:
            self._image = QtGui.QPixmap(size)
            self._image.setDevicePixelRatio(ratio)
            self._image.fill(QtCore.Qt.GlobalColor.transparent)
            self._paint_table(QtGui.QPainter(self._image))
        painter = QtGui.QPainter(self)
        painter.drawPixmap(0, 0, self._image)
        painter.end()

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 (Qt naming)
        if event.type() in (QtCore.QEvent.Type.PaletteChange, QtCore.QEvent.Type.FontChange,
                            QtCore.QEvent.Type.StyleChange):
            self._measured = None
            self._repaint_table()
        super().changeEvent(event)

    def _paint_table(self, p: QtGui.QPainter) -> None:
        """Draw the whole table with ``p`` (ends it)."""
        k, c = len(self.labels), self.cell_px
        p.setFont(self.font())  # a pixmap's painter starts with the application's font, not ours
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        font = p.font()
        grey = self.palette().color(QtGui.QPalette.ColorRole.WindowText)
        p.setPen(grey)
        p.drawText(QtCore.QRect(self.header_w, 0, k * c, self.line_h), QtCore.Qt.AlignmentFlag.AlignCenter,
                   "predicted →")
        p.save()
        p.translate(self.line_h * 0.6, self.header_h + k * c / 2)
        p.rotate(-90)
        p.drawText(QtCore.QRect(-3 * self.line_h, -self.line_h // 2, 6 * self.line_h, self.line_h),
                   QtCore.Qt.AlignmentFlag.AlignCenter, "true ↓")
        p.restore()
        p.drawText(QtCore.QRect(self.header_w + k * c, self.line_h, self.right_w, self.header_h - self.line_h),
                   QtCore.Qt.AlignmentFlag.AlignCenter, "right")
        for i, label in enumerate(self.labels):
            p.drawText(QtCore.QRect(self.header_w + i * c, self.line_h, c, self.header_h - self.line_h),
                       QtCore.Qt.AlignmentFlag.AlignCenter, label)
            p.drawText(QtCore.QRect(self.line_h, self.header_h + i * c, self.header_w - self.line_h - 6, c),
                       QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter, label)
        bold = QtGui.QFont(font)
        bold.setBold(True)
        for t in range(k):
            total = int(self.totals[t])
            for q in range(k):
                rect = self.cell_rect(t, q)
                colour = self._colours[t][q]
                p.fillRect(rect, colour)
                n = int(self.confusion[t, q])
                p.setPen(ZERO_TEXT if n == 0 else self._pens[t][q])
                p.setFont(bold if t == q else font)
                p.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, str(n))
            p.setFont(font)
            p.setPen(grey)
            share = f"{self.confusion[t, t] / total:.0%}" if total else "–"
            p.drawText(QtCore.QRect(self.header_w + k * c + 6, self.header_h + t * c, self.right_w - 6, c),
                       QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter, share)
        p.setPen(QtGui.QPen(QtGui.QColor("#d5d8dc"), 1))
        for i in range(k + 1):
            p.drawLine(self.header_w, self.header_h + i * c, self.header_w + k * c, self.header_h + i * c)
            p.drawLine(self.header_w + i * c, self.header_h, self.header_w + i * c, self.header_h + k * c)
        if self.selected is not None:
            p.setPen(QtGui.QPen(self.SELECTED, 3))
            p.drawRect(self.cell_rect(*self.selected).adjusted(1, 1, -2, -2))
        if self.hasFocus():  # where the arrow keys act
            p.setPen(QtGui.QPen(self.SELECTED, 1, QtCore.Qt.PenStyle.DashLine))
            p.drawRect(QtCore.QRect(self.header_w - 3, self.header_h - 3, k * c + 5, k * c + 5))
        p.end()

    def event(self, event: QtCore.QEvent) -> bool:
        if event.type() == QtCore.QEvent.Type.ToolTip:
            cell = self.cell_at(QtCore.QPointF(event.pos()))
            if cell is not None:
                QtWidgets.QToolTip.showText(event.globalPos(), self.cell_text(*cell), self)
            else:
                QtWidgets.QToolTip.showText(event.globalPos(), self.toolTip(), self)
            return True
        return super().event(event)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        cell = self.cell_at(event.position())
        if cell is not None and event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.set_selected(cell)
            self.cell_clicked.emit(*cell)
            self.cell_opened.emit(*cell)

    ARROWS = {QtCore.Qt.Key.Key_Left: (0, -1), QtCore.Qt.Key.Key_Right: (0, 1),
              QtCore.Qt.Key.Key_Up: (-1, 0), QtCore.Qt.Key.Key_Down: (1, 0)}
    TRAINING_KEYS_USED = (QtCore.Qt.Key.Key_Right,)  # Space still starts and pauses training here

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        """Arrow keys move to the neighbouring cell (from none: the top left one) and show it; Return
        shows the selected cell again."""
        k = len(self.labels)
        move = self.ARROWS.get(event.key())
        if k and move is not None:
            row, col = (0, 0) if self.selected is None else (self.selected[0] + move[0], self.selected[1] + move[1])
            cell = (min(max(row, 0), k - 1), min(max(col, 0), k - 1))
        elif k and self.selected is not None and event.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
            self.cell_clicked.emit(*self.selected)
            self.cell_opened.emit(*self.selected)
            return
        else:
            super().keyPressEvent(event)
            return
        self.set_selected(cell)
        self.cell_clicked.emit(*cell)

    def focusInEvent(self, event: QtGui.QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        super().focusInEvent(event)
        self._repaint_table()  # the focus frame

    def focusOutEvent(self, event: QtGui.QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        super().focusOutEvent(event)
        self._repaint_table()


def thumbnail(x: np.ndarray, px: int = THUMB_PX, ratio: float = 1.0) -> QtGui.QPixmap:
    """A digit ``x: (H, W, 1)`` in [0, 1] as a px x px grey pixmap (white strokes on black, square
    pixels: nearest-neighbour enlargement keeps the pixels the network sees). ``ratio``: the screen's
    device pixels per logical pixel; the pixmap has that many more pixels, so that a high-DPI screen
    does not enlarge it again, smoothly, into a blur."""
    grey = np.ascontiguousarray(np.clip(x[:, :, 0], 0.0, 1.0) * 255.0, dtype=np.uint8)  # (H, W)
    h, w = grey.shape
    image = QtGui.QImage(grey.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()  # own the pixels
    side = round(px * ratio)
    pixmap = QtGui.QPixmap.fromImage(image).scaled(side, side, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                                                   QtCore.Qt.TransformationMode.FastTransformation)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


class EvaluationView(QtWidgets.QWidget):
    """The evaluation view (objectName ``evaluationView``).

    View protocol: ``model_changed(model)``, ``attach(window)`` (offers the window's ``val_data`` and
    ``train_data`` besides the bundled validation images). Signals: ``sample_selected(x, label)`` with
    ``x: (H, W, C)`` float32 (a copy) and ``label`` its true class index, when a thumbnail is clicked;
    ``evaluated`` after each evaluation is shown. ``result``: the last :class:`EvaluationResult`.
    """

    sample_selected = QtCore.Signal(object, object)
    evaluated = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("evaluationView")
        self.setToolTip("Which digits the network confuses with which, on the chosen images (held-out ones by "
                        "default). Click a cell to see those digits, then a digit to look inside the network.")
        self._model: Sequential | None = None
        self._model_version = 0
        self._evaluated_version = -1
        self._result_version = -1    # the model version the result shown was computed from
        self._replaced_version = 0   # the version at which another model object (not a step) arrived
        self._window = None
        self._task: BackgroundTask | None = None
        self._again = False
        self._last_finish = -math.inf
        self._last_cost = 0.0
        self._task_started = 0.0
        self.result: EvaluationResult | None = None
        self._evaluation_copy: Sequential | None = None  # see _evaluation_model
        self.cell: tuple[int, int] | None = None

        self.dataset_combo = QtWidgets.QComboBox(objectName="evaluationDataset")
        self.dataset_combo.setToolTip("Which images to evaluate on: held-out images show how the network does on "
                                      "digits it has never seen; the training images show what it memorised. "
                                      "With full MNIST loaded, its 10,000 test images are the held-out ones; "
                                      "the bundled 500 come from MNIST's training set.")
        self.evaluate_button = QtWidgets.QPushButton("Evaluate", objectName="evaluateButton")
        self.evaluate_button.setToolTip("Run the network over every image of the chosen set now.")
        self.follow = QtWidgets.QCheckBox("Follow training", objectName="evaluationFollow")
        self.follow.setChecked(True)
        self.follow.setToolTip("Re-evaluate when the weights change (at most about once a second), so the matrix "
                               "fills in while the network learns.")
        self.progress = DeferredProgressBar(objectName="evaluationProgress")
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.summary = QtWidgets.QLabel(objectName="evaluationSummary")
        self.summary.setWordWrap(True)
        self.matrix = ConfusionMatrix()
        self.matrix.setToolTip("Rows: the true digit. Columns: what the network answered. The diagonal (green) "
                               "is right; every red cell is a kind of mistake. Click a cell, or move between "
                               "cells with the arrow keys, to see its digits.")
        self.gallery_title = QtWidgets.QLabel("Click a cell of the matrix to see its digits.",
                                              objectName="galleryTitle")
        self.gallery_title.setWordWrap(True)
        self.gallery = QtWidgets.QListWidget(objectName="misclassifiedGallery")
        frame_focus(self.gallery)
        self.gallery.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QtCore.QSize(THUMB_PX, THUMB_PX))
        self.gallery.setGridSize(QtCore.QSize(THUMB_PX + 30, THUMB_PX + 44))
        # Two thumbnails side by side at least: squeezed by a narrow window it shrank to a sliver and its
        # title above to a letter per line.
        self.gallery.setMinimumSize(2 * (THUMB_PX + 30) + self.gallery.verticalScrollBar().sizeHint().width() + 6,
                                    THUMB_PX + 50)
        self.gallery.setResizeMode(QtWidgets.QListView.ResizeMode.Adjust)
        self.gallery.setMovement(QtWidgets.QListView.Movement.Static)
        self.gallery.setUniformItemSizes(True)
        self.gallery.setWordWrap(True)
        self.gallery.setToolTip("The misclassified digits of the chosen cell: true → predicted label and the "
                                "network's confidence. Click one to open it in the other views.")
        self._timer = QtCore.QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.evaluate_now)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Images"))
        top.addWidget(self.dataset_combo, 1)
        top.addWidget(self.evaluate_button)
        top.addWidget(self.follow)
        top.addWidget(self.progress)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.matrix)
        left.addStretch(1)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.gallery_title)
        right.addWidget(self.gallery, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        # The gallery beside the matrix, or below it in a narrow window (two thumbnails wide at least).
        layout.addWidget(WrapRow(left, right, stretch=(0, 1)), 1)
        self.setMinimumHeight(self.matrix.sizeHint().height() + 120)

        self.dataset_combo.currentIndexChanged.connect(self._dataset_changed)
        self.evaluate_button.clicked.connect(self.evaluate_now)
        self.follow.toggled.connect(self._follow_toggled)
        self.matrix.cell_clicked.connect(self.show_cell)
        self.matrix.cell_opened.connect(lambda *_: self._bring_gallery_into_view())
        self.gallery.itemClicked.connect(self._thumbnail_clicked)
        self.gallery.itemActivated.connect(self._thumbnail_clicked)  # Return on a thumbnail, too

    # ------------------------------------------------------------------ view protocol

    def model_changed(self, model) -> None:
        # Another model object: weights loaded, reset or a new run, not a training step. Its results
        # are wanted at once, not at the pace that keeps following training cheap.
        replaced = model is not self._model
        self._model = model
        self._model_version += 1
        if replaced:
            self._replaced_version = self._model_version
        if self.isVisible():
            self._refresh_datasets()
            self._maybe_evaluate(at_once=replaced)
            self._show_summary()  # marks the results shown as those of earlier weights

    def attach(self, window) -> None:
        """Evaluate the window's datasets; stop when it closes (see ExperimentsPanel.attach)."""
        self._window = window
        if not callable(getattr(window, "shutdown", None)):
            window.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        # getattr: see ExperimentsPanel.eventFilter (garbage being taken apart still gets events)
        if watched is getattr(self, "_window", None) and event.type() == QtCore.QEvent.Type.Close:
            self.shutdown()
        return False

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        self._refresh_datasets()
        self._maybe_evaluate()

    def shutdown(self) -> bool:
        """Cancel a running evaluation and join its thread; True when it ended in time."""
        self._timer.stop()
        return self._cancel_task()

    def _cancel_task(self) -> bool:
        """Cancel the evaluation running (if any) and join its thread; True when it ended in time."""
        self._again = False
        if self._task is None:
            return True
        task, self._task = self._task, None
        ok = task.shutdown(SHUTDOWN_MS)
        task.deleteLater()
        self.progress.hide()
        return ok

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.shutdown()
        super().closeEvent(event)

    # ------------------------------------------------------------------ datasets

    def _dataset_choices(self) -> list[tuple[str, object]]:
        """(label, dataset) pairs that fit the model's input: the window's held-out images first (full
        MNIST's test set once loaded), the bundled held-out images, the window's training set."""
        model = self._model
        if model is None:
            return []
        shape = tuple(model.input_shape)
        window = self._window
        choices = []
        for kind, data in (("Held-out", held_out_images(model, window)),
                           ("Bundled", validation_set(shape, tuple(model.classes))),
                           ("Training", getattr(window, "train_data", None))):
            # The same images may come as another object (the window loads its own copy of the bundled
            # set): a data set is known by its name and size.
            if data is None or not data.fits(shape, model.classes) or any(
                    data is d or (data.name, len(data.y)) == (d.name, len(d.y)) for _, d in choices):
                continue  # e.g. 8x8 digits 0/1 for a model of 3s and 5s
            # the bundled 500 beside full MNIST: they are MNIST training images, not held out from it
            origin = ", from MNIST's training set" if kind == "Bundled" and shape == (28, 28, 1) else ""
            choices.append((f"{kind}: {data.name} ({len(data.y):,} images{origin})", data))
        return choices

    def datasets_changed(self) -> None:
        """The window loaded other data: offer it; an evaluation running on the old data is cancelled,
        results on data no longer offered are let go (full MNIST held ~600 MB after switching back),
        and the new data is evaluated when shown."""
        if not self._refresh_datasets():
            return
        self._cancel_task()
        if self.result is not None and not any(self.result.dataset is self.dataset_combo.itemData(i)
                                               for i in range(self.dataset_combo.count())):
            self.result = None
            k = len(self._model.classes)
            self.matrix.set_data(np.zeros((k, k), dtype=np.int64), [str(c) for c in self._model.classes])
            self._clear_gallery("Click a cell of the matrix to see its digits.")
            self.summary.setText("Other images loaded: evaluating them…" if self.isVisible()
                                 else "Other images loaded: evaluated when this view is shown.")
        if self.isVisible():
            self._maybe_evaluate()

    def _refresh_datasets(self) -> bool:
        """Offer the data sets that fit the model now; True when they changed."""
        choices = self._dataset_choices()
        current = [(self.dataset_combo.itemText(i), self.dataset_combo.itemData(i))
                   for i in range(self.dataset_combo.count())]
        if [(label, id(d)) for label, d in choices] == [(label, id(d)) for label, d in current]:
            return False
        chosen = self.dataset_combo.currentText()
        self.dataset_combo.blockSignals(True)
        self.dataset_combo.clear()
        for label, data in choices:
            self.dataset_combo.addItem(label, data)
        labels = [label for label, _ in choices]
        self.dataset_combo.setCurrentIndex(labels.index(chosen) if chosen in labels else 0)
        self.dataset_combo.blockSignals(False)
        self._evaluated_version = -1  # the data may be new
        return True

    def dataset(self):
        """The dataset chosen in the combo (None without a model or fitting data)."""
        return self.dataset_combo.currentData()

    def _dataset_changed(self) -> None:
        self._evaluated_version = -1
        self.evaluate_now()

    # ------------------------------------------------------------------ evaluating

    def _follow_toggled(self, on: bool) -> None:
        if on:
            self._maybe_evaluate()
        else:
            self._show_summary()

    def _maybe_evaluate(self, at_once: bool = False) -> None:
        """Evaluate when the weights or the data changed: at once the first time (or ``at_once``),
        rate-limited while following training, not at all (only a note) when not following."""
        if self._model is None or self._evaluated_version == self._model_version:
            return
        if self.result is None or self.result.dataset is not self.dataset() or (at_once and self.follow.isChecked()):
            self.evaluate_now()
        elif self.follow.isChecked():
            wait = max(MIN_INTERVAL_S - (time.perf_counter() - self._last_finish),
                       self._last_cost / MAX_DUTY - (time.perf_counter() - self._task_started))
            if wait <= 0:
                self.evaluate_now()
            elif not self._timer.isActive():
                self._timer.start(int(wait * 1000) + 1)
        else:
            self._show_summary()

    @QtCore.Slot()
    def evaluate_now(self) -> None:
        """Evaluate the current weights on the chosen images (in the background)."""
        dataset = self.dataset()
        if self._model is None or dataset is None:
            return
        if self._task is not None:
            self._again = True  # one more when this one is done: the weights or data changed meanwhile
            return
        self._timer.stop()
        version = self._model_version
        task = BackgroundTask(functools.partial(_evaluate_task, self._evaluation_model(), dataset))
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        task.succeeded.connect(self._succeeded, queued)
        task.failed.connect(self._failed, queued)
        task.progressed.connect(self._progressed, queued)
        task.setProperty("version", version)
        self._task = task
        self._task_started = time.perf_counter()
        self.progress.setRange(0, len(dataset.y))
        self.progress.setValue(0)
        self.progress.show()
        task.start()

    def _evaluation_model(self) -> Sequential:
        """The display model's weights in a model of the evaluation thread's own (called while no
        evaluation runs): the same one each time while the architecture stays. A fresh copy per
        evaluation, each with its own scratch buffers, grew the process by ~250 MB while following
        training on full MNIST."""
        mine, model = self._evaluation_copy, self._model
        if mine is None or mine.spec != model.spec or mine.dtype != model.dtype:
            self._evaluation_copy = model.copy()
        else:
            mine.set_weights(model.params(), source="display model")
            mine.variant = model.variant
        return self._evaluation_copy

    def _finish_task(self) -> None:
        task, self._task = self._task, None
        task.wait()
        task.deleteLater()
        self.progress.hide()
        self._last_finish = time.perf_counter()
        self._last_cost = self._last_finish - self._task_started
        if self._again:
            self._again = False
            self._maybe_evaluate()

    @QtCore.Slot(object)
    def _progressed(self, args: tuple) -> None:
        if self._task is not None and self.sender() is self._task:
            self.progress.setValue(args[0])

    @QtCore.Slot(object)
    def _failed(self, error: Exception) -> None:
        if self._task is None or self.sender() is not self._task:
            return
        self.summary.setText(span(self, "error", f"Evaluation failed: {error}"))
        self._finish_task()

    @QtCore.Slot(object)
    def _succeeded(self, result: EvaluationResult | None) -> None:
        if self._task is None or self.sender() is not self._task:
            return  # a task shut down meanwhile
        version = self._task.property("version")
        if result is not None:
            self.result = result
            self._evaluated_version = self._result_version = version
            labels = [str(c) for c in result.model.classes]
            # rows out of every image of their class: those that got no answer are in no cell
            totals = np.bincount(labels_for(result.model, result.dataset.y), minlength=len(labels))
            self.matrix.set_data(result.evaluation.confusion, labels, totals)
            self._show_summary()
            if self.cell is not None and max(self.cell) < len(result.model.classes):
                self.show_cell(*self.cell)
            else:
                self._clear_gallery("Click a cell of the matrix to see its digits.")
        self._finish_task()
        if result is not None:
            self.evaluated.emit()

    def _show_summary(self) -> None:
        if self.result is None:
            return
        e, data = self.result.evaluation, self.result.dataset
        n = len(data.y)
        loss = f"{e.loss:.3f}" if math.isfinite(e.loss) else "–"  # NaN when no image got an answer
        text = (f"<b>{e.accuracy:.1%}</b> right ({n - e.misclassified.size:,} of {n:,}), mean loss {loss}, "
                f"on {data.name}. {e.misclassified.size:,} mistakes.")
        if e.unanswered.size:
            text += " " + span(self, "error", e.unanswered_note()[:1].upper() + e.unanswered_note()[1:] + ".")
        if not self.follow.isChecked() and self._evaluated_version != self._model_version:
            text += " " + span(self, "error", "The weights have changed since: press Evaluate.")
        elif self._result_version < self._replaced_version:  # following, and these are other weights
            text += " " + span(self, "warn", "These are earlier weights' results: updating…")
        self.summary.setText(text)

    # ------------------------------------------------------------------ gallery

    def _clear_gallery(self, title: str) -> None:
        self.gallery.clear()
        self.gallery_title.setText(title)

    @QtCore.Slot(int, int)
    def show_cell(self, true: int, predicted: int) -> None:
        """Fill the gallery with cell (true, predicted)'s misclassified digits."""
        self.cell = (true, predicted)
        self.matrix.set_selected(self.cell)
        if self.result is None:
            return
        names = [str(c) for c in self.result.model.classes]
        if true == predicted:
            n = int(self.result.evaluation.confusion[true, true])
            self._clear_gallery(f"The diagonal: {n} images of {names[true]} recognised correctly. Click a red "
                                "cell to see mistakes.")
            return
        indices, proba = self.result.cell(true, predicted)
        shown = indices[:MAX_THUMBNAILS]
        self.gallery.setUpdatesEnabled(False)
        self.gallery.clear()
        x = self.result.dataset.x
        ratio = self.gallery.devicePixelRatioF()
        for index, p in zip(shown, proba):
            item = QtWidgets.QListWidgetItem(QtGui.QIcon(thumbnail(x[index], ratio=ratio)),
                                             f"{names[true]} → {names[predicted]}\n{percent(p[predicted], 0)}")
            item.setData(QtCore.Qt.ItemDataRole.UserRole, int(index))
            item.setToolTip(f"Image {index}: a {names[true]}, taken for a {names[predicted]} with "
                            f"{percent(p[predicted])} confidence ({names[true]}: {percent(p[true])}). Click to look "
                            "inside.")
            self.gallery.addItem(item)
        self.gallery.setUpdatesEnabled(True)
        if not len(indices):
            title = f"No {names[true]} was taken for a {names[predicted]}."
        else:
            more = f" (the {len(shown)} most confident shown)" if len(indices) > len(shown) else ""
            images = "image" if len(indices) == 1 else "images"
            title = (f"{len(indices)} {images} of a {names[true]} taken for a {names[predicted]}{more}, most "
                     "confident mistake first. Click one to open it in the feature-map, pooling and conv "
                     "stepper views.")
        self.gallery_title.setText(title)

    def _bring_gallery_into_view(self) -> None:
        """Scroll the page (in a small window it scrolls) to the gallery's title and first row of digits
        after a click on a cell (at 1024x700 they filled in below the fold, and the click seemed to do
        nothing); never on a re-evaluation, which would pull a learner reading the matrix away from it."""
        page = self.parentWidget()
        while page is not None and not isinstance(page, QtWidgets.QScrollArea):
            page = page.parentWidget()
        if page is None or page.widget() is None:
            return
        page.widget().layout().activate()  # the title's new text may have moved the gallery down
        first_row = self.gallery.mapTo(page.widget(), QtCore.QPoint(0, self.gallery.gridSize().height()))
        page.ensureVisible(first_row.x(), first_row.y(), 0, 8)
        page.ensureWidgetVisible(self.gallery_title, 0, 4)

    def gallery_indices(self) -> list[int]:
        """Dataset indices of the thumbnails shown, in order."""
        return [self.gallery.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(self.gallery.count())]

    @QtCore.Slot(QtWidgets.QListWidgetItem)
    def _thumbnail_clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        index = item.data(QtCore.Qt.ItemDataRole.UserRole)
        data = self.result.dataset
        self.sample_selected.emit(np.array(data.x[index], dtype=np.float32), int(data.y[index]))

    # ------------------------------------------------------------------ export

    def _require_result(self) -> None:
        if self.result is None:
            raise ValueError("nothing to export yet: no evaluation has finished")

    def export_png(self, path: str) -> None:
        """The confusion matrix as drawn (ValueError before the first evaluation)."""
        self._require_result()
        save_png(self.matrix.grab().toImage(), path)

    def export_csv(self, path: str) -> None:
        """The confusion counts: rows "true c", columns "predicted c" (ValueError before the first evaluation)."""
        self._require_result()
        labels = self.matrix.labels
        write_matrix_csv(path, self.matrix.confusion, [f"true {c}" for c in labels],
                         [f"predicted {c}" for c in labels])
