"""Drawing pad: draw a digit with the mouse and watch the current weights classify it, live.

The panel (:class:`DrawingPad`) holds the pad (objectName ``drawingPad``), beside it the image the
network actually receives (28x28, or 8x8 for ``tiny8x8``) with an optional saliency overlay, below
them the predicted class (``predictedDigit``), the class probabilities (``probabilityBars``), the pen
and editing buttons and "Look inside", which emits ``look_inside(x: (H, W, 1) float32)``.

The network input is made from the pen's polylines, not from the pad's pixels:
:func:`engine.preprocess.render_strokes` scales the strokes' bounding box to MNIST's 20 px and
re-draws them with an MNIST-thick pen, centred by mass. Scaling the pad's pixels would scale the pen
too (a small digit drawn with a thick pen would turn into a blob, a big one drawn thin into
hairlines), so the pen widths offered here change what the pad shows, not what the network sees.
``tiny8x8`` gets that image shrunk to 8x8 by :func:`engine.preprocess.downsample_8x8`.

Classification runs on the GUI thread with the display model given to ``model_changed`` (the main
window's copy of the trainer's latest snapshot, never the training model), so it works while
training runs. It is throttled: a stroke update classifies at once when the last classification is
at least :data:`CLASSIFY_INTERVAL_MS` old, otherwise as soon as it is, and updates in between are
coalesced into that one; releasing the mouse, undo and clear classify at once.

The last section drives the pad with real mouse events (:func:`replay_strokes`); the tests,
``tools/pad_quality.py`` and ``app.bench_pad_latency`` use it to draw digits traced from MNIST.
"""
from __future__ import annotations

import functools
import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.accessibility import FocusFramed, describe_for_screen_readers
from app.views.colour_scale import percent
from app.views.tones import ToneLabel, text_on
from app.views.widgets import glyph_button, text_scale
from engine.preprocess import downsample_8x8, is_blank, render_strokes
from engine.saliency import input_gradient
from engine.strokes import transform_strokes

PAD_SIDE = 336
MIN_DRAWING = 2 * PAD_SIDE / 28  # pad pixels: ink spanning less than two MNIST pixels is not a digit yet
"""Side of the square pad in (logical) pixels: 12 pad pixels per MNIST pixel."""
PEN_WIDTHS = (("Thin", 8.0), ("Medium", 18.0), ("Thick", 30.0))
"""Pen presets (name, width in pad pixels). They only change what the pad shows (module doc)."""
DEFAULT_PEN = "Medium"
CLASSIFY_INTERVAL_MS = 20
"""At most one classification per this many milliseconds while a stroke is being drawn. An update
waits at most this long plus one classification (~3 ms for vgg7, strokes re-rendered included), which
keeps the prediction within ~30 ms of any stroke update while coalescing a 125 Hz mouse."""
PREVIEW_SIDE = 168
"""Side of the network-input preview in pixels (6 per MNIST pixel, 21 per 8x8 pixel)."""
COLUMN_GAP = 10
HINT = "draw a digit"

PAD_BACKGROUND = QtGui.QColor("#15181d")
PAD_INK = QtGui.QColor("#f4f4f4")
PAD_HINT = QtGui.QColor("#8a929d")  # 5.7:1 on the pad (#6c7480: 3.8)
WINNER_BRUSH = pg.mkBrush("#f5a623")
OTHER_BRUSH = pg.mkBrush("#5b7bd5")
SALIENCY_POSITIVE = (255, 64, 40)
SALIENCY_NEGATIVE = (40, 150, 255)
DIMMED_INPUT = 0.45
"""Opacity of the input image under a saliency overlay, so the colours stand out."""


def network_input_shape(model) -> tuple[int, int] | None:
    """The (H, W) image the pad can make for ``model``: (28, 28) or (8, 8) single-channel, else None."""
    shape = tuple(model.input_shape)
    return shape[:2] if shape in ((28, 28, 1), (8, 8, 1)) else None


class _StrokePath:
    """A polyline and its smoothed on-screen path, built as points arrive (O(1) per point).

    The path runs through the midpoints between consecutive points with the points themselves as
    quadratic control points (the usual way to turn mouse samples into a smooth curve), then
    straight to the last point. The network gets the raw polyline (``points``).
    """

    def __init__(self, x: float, y: float, width: float) -> None:
        self.width = width
        self.points = [(x, y)]
        self._path = QtGui.QPainterPath(QtCore.QPointF(x, y))

    def add(self, x: float, y: float) -> bool:
        """Append a point; False (and nothing added) when it repeats the last one."""
        if (x, y) == self.points[-1]:
            return False
        self.points.append((x, y))
        if len(self.points) >= 3:
            (x0, y0), (x1, y1) = self.points[-2], self.points[-1]
            self._path.quadTo(QtCore.QPointF(x0, y0), QtCore.QPointF(0.5 * (x0 + x1), 0.5 * (y0 + y1)))
        return True

    def path(self) -> QtGui.QPainterPath:
        """The path to draw, ending exactly at the last point."""
        path = QtGui.QPainterPath(self._path)
        path.lineTo(*self.points[-1])
        return path

    def array(self) -> np.ndarray:
        """The polyline as ``(M, 2)`` float64 ``(x, y)`` in pad pixels."""
        return np.array(self.points, dtype=np.float64)


class PadCanvas(FocusFramed, QtWidgets.QWidget):
    """The square pad: white anti-aliased round-capped strokes on a dark background.

    Left button draws (a click is a dot), right button or Esc clears, Ctrl+Z undoes the last
    stroke. Strokes are stored as polylines in pad coordinates (Qt's continuous ``(x, y)``, clamped
    to the pad). ``stroke_updated`` is emitted while a stroke grows, ``strokes_settled`` when a stroke
    ends or strokes are undone or cleared. ``version`` counts edits (a cache key).
    """

    stroke_updated = QtCore.Signal()
    strokes_settled = QtCore.Signal()
    TRAINING_KEYS_USED = ()  # Space and Right still train while the pad has the focus

    def __init__(self, parent: QtWidgets.QWidget | None = None, side: int = PAD_SIDE) -> None:
        super().__init__(parent)
        self.setObjectName("drawingPad")
        self.setAccessibleName("Drawing pad")
        self.setFixedSize(side, side)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.PreventContextMenu)
        self.setCursor(QtCore.Qt.CursorShape.CrossCursor)
        self.setToolTip("Draw a digit with the left mouse button. Right-click or Esc clears, Ctrl+Z undoes "
                        "the last stroke.")
        self.pen_width = dict(PEN_WIDTHS)[DEFAULT_PEN]
        self.version = 0
        self._strokes: list[_StrokePath] = []
        self._current: _StrokePath | None = None

    # ------------------------------------------------------------------ state

    def strokes(self) -> list[np.ndarray]:
        """Every stroke, the one being drawn included, as ``(M, 2)`` float64 ``(x, y)`` copies."""
        done = self._strokes + ([self._current] if self._current is not None else [])
        return [s.array() for s in done]

    def is_empty(self) -> bool:
        return not self._strokes and self._current is None

    @property
    def drawing(self) -> bool:
        """True while a stroke is being drawn (the left button is down)."""
        return self._current is not None

    def set_pen_width(self, width: float) -> None:
        """Pen width in pad pixels for the strokes drawn from now on."""
        self.pen_width = float(width)

    @QtCore.Slot()
    def undo(self) -> None:
        """Remove the last finished stroke."""
        if self._strokes and self._current is None:
            self._strokes.pop()
            self._edited(settled=True)

    @QtCore.Slot()
    def clear(self) -> None:
        if not self.is_empty():
            self._strokes.clear()
            self._current = None
            self._edited(settled=True)

    def _edited(self, settled: bool) -> None:
        self.version += 1
        self.update()
        (self.strokes_settled if settled else self.stroke_updated).emit()

    def _clamped(self, event: QtGui.QMouseEvent) -> tuple[float, float]:
        # The pad grabs the mouse while a button is down: positions may lie outside it.
        p = event.position()
        return min(max(p.x(), 0.0), float(self.width())), min(max(p.y(), 0.0), float(self.height()))

    # ------------------------------------------------------------------ input

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        if event.button() == QtCore.Qt.MouseButton.RightButton:
            self.clear()
        elif event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.setFocus(QtCore.Qt.FocusReason.MouseFocusReason)
            self._current = _StrokePath(*self._clamped(event), self.pen_width)
            self._edited(settled=False)

    def mouseDoubleClickEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802
        # Two quick strokes (the dot of an "i", a fast "4") arrive as press, release, double-click:
        # the double-click is the second stroke's press.
        self.mousePressEvent(event)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802
        if self._current is not None and self._current.add(*self._clamped(event)):
            self._edited(settled=False)

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802
        if event.button() == QtCore.Qt.MouseButton.LeftButton and self._current is not None:
            self._current.add(*self._clamped(event))
            self._strokes.append(self._current)
            self._current = None
            self._edited(settled=True)

    def event(self, event: QtCore.QEvent) -> bool:
        # Claim Esc and Ctrl+Z before window-wide shortcuts do, as text fields claim their keys.
        if event.type() == QtCore.QEvent.Type.ShortcutOverride and self._is_pad_key(event):
            event.accept()
            return True
        return super().event(event)

    @staticmethod
    def _is_pad_key(event: QtGui.QKeyEvent) -> bool:
        return event.key() == QtCore.Qt.Key.Key_Escape or event.matches(QtGui.QKeySequence.StandardKey.Undo)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802
        if event.key() == QtCore.Qt.Key.Key_Escape:
            self.clear()
        elif event.matches(QtGui.QKeySequence.StandardKey.Undo):
            self.undo()
        else:
            super().keyPressEvent(event)

    # ------------------------------------------------------------------ drawing

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), PAD_BACKGROUND)
        if self.is_empty():
            painter.setPen(PAD_HINT)
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter,
                             "draw a digit here\n\nany size, anywhere\n"
                             "right-click or Esc clears\nCtrl+Z undoes a stroke")
        for stroke in self._strokes + ([self._current] if self._current is not None else []):
            pen = QtGui.QPen(PAD_INK, stroke.width, QtCore.Qt.PenStyle.SolidLine,
                             QtCore.Qt.PenCapStyle.RoundCap, QtCore.Qt.PenJoinStyle.RoundJoin)
            painter.setPen(pen)
            if len(stroke.points) == 1:
                painter.drawPoint(QtCore.QPointF(*stroke.points[0]))  # a round-capped point is a dot
            else:
                painter.drawPath(stroke.path())
        self.paint_focus_frame(painter)
        painter.end()


class InputPreview(QtWidgets.QWidget):
    """The image the network receives, magnified with square pixels, and an optional RGBA overlay.

    ``image``: the last ``(H, W)`` float32 shown (a copy), or None for an empty pad.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("padInputPreview")
        self.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.image: np.ndarray | None = None
        self.overlay: np.ndarray | None = None
        self._qimage: QtGui.QImage | None = None
        self._qoverlay: QtGui.QImage | None = None
        self._grid = (28, 28)

    def set_input(self, img: np.ndarray | None, grid: tuple[int, int]) -> None:
        """``img: (H, W)`` in [0, 1] white on black, or None; ``grid``: (H, W) to frame when empty."""
        self._grid = tuple(grid)
        self.image = None if img is None else np.array(img, dtype=np.float32)
        if img is None:
            self._qimage = None
        else:
            grey = np.ascontiguousarray(np.clip(img, 0.0, 1.0) * 255.0 + 0.5, dtype=np.uint8)  # (H, W)
            self._qimage = QtGui.QImage(grey.data, grey.shape[1], grey.shape[0], grey.shape[1],
                                        QtGui.QImage.Format.Format_Grayscale8).copy()
        self.update()

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """``rgba: (H, W, 4)`` uint8 drawn over the image (same grid), or None."""
        self.overlay = None if rgba is None else np.array(rgba, dtype=np.uint8)
        if rgba is None:
            self._qoverlay = None
        else:
            data = np.ascontiguousarray(rgba, dtype=np.uint8)
            self._qoverlay = QtGui.QImage(data.data, data.shape[1], data.shape[0], 4 * data.shape[1],
                                          QtGui.QImage.Format.Format_RGBA8888).copy()
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor("black"))
        # No smoothing: every input pixel is a crisp square, as the network sees it.
        painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
        if self._qimage is not None:
            painter.setOpacity(DIMMED_INPUT if self._qoverlay is not None else 1.0)
            painter.drawImage(self.rect(), self._qimage)
            painter.setOpacity(1.0)
        if self._qoverlay is not None:
            painter.drawImage(self.rect(), self._qoverlay)
        if self._grid[0] <= 8:  # few pixels: show where they are
            painter.setPen(QtGui.QPen(QtGui.QColor(90, 90, 90), 1))
            rows, cols = self._grid
            for i in range(1, rows):
                y = round(i * self.height() / rows)
                painter.drawLine(0, y, self.width(), y)
            for j in range(1, cols):
                x = round(j * self.width() / cols)
                painter.drawLine(x, 0, x, self.height())
        painter.setPen(QtGui.QPen(QtGui.QColor(110, 110, 110), 1))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        painter.end()


def saliency_rgba(saliency: np.ndarray) -> np.ndarray:
    """``saliency: (H, W)`` -> ``(H, W, 4)`` uint8: red where more ink raises the prediction's
    probability, blue where it lowers it, opacity proportional to the magnitude (relative to this
    map's largest), so the few pixels that matter most stand out."""
    m = float(np.abs(saliency).max())
    s = saliency / m if m > 0 else np.zeros_like(saliency)
    rgba = np.empty((*s.shape, 4), dtype=np.uint8)
    rgba[..., :3] = np.where(s[..., None] >= 0, SALIENCY_POSITIVE, SALIENCY_NEGATIVE)
    rgba[..., 3] = np.round(255.0 * np.abs(s))
    return rgba


def saliency_scale(model, saliency: np.ndarray, p: float) -> str:
    """What the brightest pixel of :func:`saliency_rgba`'s map stands for, to be said beside it: each map
    is scaled to its own largest value, so a sure digit and an unsure one look equally hot.

    ``saliency``: :func:`engine.saliency.input_gradient`'s map for the predicted class, whose probability
    is ``p``. For softmax networks the map is ``∂ log P/∂x``, so ``P * max|map|`` is exactly the largest
    ``|∂P/∂x|``: how fast P changes per unit of ink on that pixel. For ``l2`` models the map's own value
    (the cost's slope) is given."""
    top = float(np.abs(saliency).max())
    if model.loss == "softmax_cross_entropy":
        return f"Brightest: |∂P/∂x| = {_two_digits(p * top)} per unit of ink."
    return f"Brightest: |∂cost/∂x| = {_two_digits(top)}."


def _two_digits(value: float) -> str:
    """``value`` with two significant digits, as "0.000033" rather than "3.3e-05" down to 1e-6."""
    if value < 1e-6:
        return f"{value:.2g}"
    return np.format_float_positional(value, precision=2, unique=False, fractional=False, trim="-")


class ProbabilityBars(QtWidgets.QWidget):
    """Bar chart of the class probabilities (objectName ``probabilityBars``), the winner in orange.

    It paints itself: a probability axis (0, 0.5, 1), one bar per class, the class labels and over
    each bar of at least :data:`LABEL_MIN` its percentage (:meth:`bar_label`), so that the runner-ups
    of a "6 (99.2%)" read as "0.6%" and "0.1%" where their bars are too short to see. As a pyqtgraph
    plot each repaint cost ~1 ms (view box, two axes, a BarGraphItem), up to 50 times a second while
    someone draws. ``probabilities()`` reads the shown values back.
    """

    # Margins around the bars, in px at the 9-pt font the widget was laid out for (see text_scale):
    AXIS_W = 44      # left: the axis title, tick texts and ticks
    LABELS_H = 20    # bottom: the class labels
    TOP = 8          # room for the "1" tick text above the plot area
    BAR_FRACTION = 0.7
    LABEL_MIN = 0.0005  # a bar whose percentage rounds to 0.1% or more is labelled ("<0.1%" says little)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probabilityBars")
        self.setAccessibleName("Class probabilities")
        self.setFixedHeight(round(150 * text_scale()))
        self.setToolTip("The network's probability for each class; the predicted one is orange. Each bar "
                        "of 0.1% or more is labelled with its percentage.")
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paints every pixel
        self._classes: tuple = ()
        self._values = np.zeros(0)
        self.set_classes(list(range(10)))

    def set_classes(self, classes: list) -> None:
        """One bar per class label, all empty."""
        if tuple(classes) == self._classes:
            return
        self._classes = tuple(classes)
        self.set_probabilities(None)

    def set_probabilities(self, p: np.ndarray | None) -> None:
        """``p: (num_classes,)`` or None (no bars)."""
        self._values = np.zeros(len(self._classes)) if p is None else np.array(p, dtype=np.float64)
        self.update()
        order = np.argsort(-self._values)[:3] if p is not None else []
        describe_for_screen_readers(self, ", ".join(f"{self._classes[i]}: {percent(self._values[i], 0)}" for i in order)
                                    or "No drawing classified.")

    def probabilities(self) -> np.ndarray:
        """The values shown, ``(num_classes,)`` (zeros when empty)."""
        return self._values.copy()

    def highlighted(self) -> int | None:
        """Index of the orange bar, or None when nothing is shown."""
        return int(np.argmax(self._values)) if self._values.any() else None

    def bar_label(self, i: int) -> str:
        """The percentage written over bar ``i`` ("0.6%"), or "" below :data:`LABEL_MIN` or when empty."""
        value = self._values[i]
        return percent(value) if value >= self.LABEL_MIN else ""

    def plot_rect(self) -> QtCore.QRectF:
        """Where probability 0..1 and the bars are drawn, in widget pixels."""
        s = text_scale()
        return QtCore.QRectF(self.AXIS_W * s, self.TOP * s, self.width() - self.AXIS_W * s - 6,
                             self.height() - (self.TOP + self.LABELS_H) * s)

    def bar_rect(self, i: int) -> QtCore.QRectF:
        """Bar ``i`` as drawn (zero height when its probability is 0)."""
        area = self.plot_rect()
        slot = area.width() / max(len(self._classes), 1)
        height = float(np.clip(self._values[i], 0.0, 1.0)) * area.height()
        width = self.BAR_FRACTION * slot
        return QtCore.QRectF(area.left() + (i + 0.5) * slot - width / 2, area.bottom() - height, width, height)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt naming)
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), pg.mkColor(pg.getConfigOption("background")))
        area = self.plot_rect()
        axis = pg.mkColor(pg.getConfigOption("foreground"))
        painter.setPen(QtGui.QPen(axis, 0))
        painter.drawLine(area.bottomLeft(), area.topLeft())
        painter.drawLine(area.bottomLeft(), area.bottomRight())
        text_h = painter.fontMetrics().height()
        right = QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
        for value, text in ((0.0, "0"), (0.5, "0.5"), (1.0, "1")):
            y = area.bottom() - value * area.height()
            painter.drawLine(QtCore.QPointF(area.left() - 4, y), QtCore.QPointF(area.left(), y))
            painter.drawText(QtCore.QRectF(0, y - text_h / 2, area.left() - 6, text_h), right, text)
        slot = area.width() / max(len(self._classes), 1)
        for i, label in enumerate(self._classes):
            painter.drawText(QtCore.QRectF(area.left() + i * slot, area.bottom() + 2, slot,
                                           self.LABELS_H * text_scale() - 2),
                             QtCore.Qt.AlignmentFlag.AlignCenter, str(label))
        best = self.highlighted()
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        for i in range(len(self._classes)):
            painter.setBrush(WINNER_BRUSH if i == best else OTHER_BRUSH)
            painter.drawRect(self.bar_rect(i))
        painter.save()  # the labels may shrink the font
        self._paint_bar_labels(painter, axis, slot)
        painter.restore()
        painter.save()  # the axis title, bottom to top along the left edge
        painter.translate(text_h / 2 + 2, area.center().y())
        painter.rotate(-90)
        painter.setPen(axis)
        painter.drawText(QtCore.QRectF(-area.height() / 2, -text_h / 2, area.height(), text_h),
                         QtCore.Qt.AlignmentFlag.AlignCenter, "probability")
        painter.restore()
        painter.end()

    def _paint_bar_labels(self, painter: QtGui.QPainter, colour: QtGui.QColor, slot: float) -> None:
        """Each :meth:`bar_label` centred over its bar, or at the top inside a bar that leaves no room
        above it (only a bar near 100% does: the others sum to less than its gap)."""
        labels = [(i, self.bar_label(i)) for i in range(len(self._classes))]
        labels = [(i, text) for i, text in labels if text]
        if not labels:
            return
        metrics = painter.fontMetrics()
        widest = max(metrics.horizontalAdvance(text) for _, text in labels)
        room = self.BAR_FRACTION * slot - 2  # a label may sit inside its bar
        if widest > room:  # ">99.9%" at 9 pt, a large font, many classes: shrink the numbers to fit
            font = QtGui.QFont(painter.font())
            font.setPointSizeF(max(font.pointSizeF() * room / widest, 5.0))
            painter.setFont(font)
            metrics = painter.fontMetrics()
        text_h = metrics.height()
        area = self.plot_rect()
        centre = QtCore.Qt.AlignmentFlag.AlignCenter
        best = self.highlighted()
        for i, text in labels:
            bar = self.bar_rect(i)
            if bar.top() - area.top() >= text_h:
                painter.setPen(colour)
                top = bar.top() - text_h
            else:
                painter.setPen(text_on((WINNER_BRUSH if i == best else OTHER_BRUSH).color()))
                top = bar.top() + 1
            painter.drawText(QtCore.QRectF(area.left() + i * slot, top, slot, text_h), centre, text)


class DrawingPad(QtWidgets.QWidget):
    """The drawing pad panel (view protocol: ``model_changed``; emits ``look_inside``).

    Unlike the insight views it does not defer refreshes to bound its share of the GUI thread: one
    classification costs a few milliseconds, and a learner drawing expects the answer at once.
    While hidden it only remembers the model and classifies when shown again.

    ``look_inside(x)``: ``x: (H, W, 1)`` float32, a copy of the input the network received.
    ``prediction_shown(p)``: after every classification, ``p: (num_classes,)`` or None (blank pad
    or no usable model); benchmarks time the pad with it, and with ``classify_ms``, the duration of
    the last classification.
    """

    look_inside = QtCore.Signal(object)
    prediction_shown = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("drawingPadPanel")
        self._model = None                           # the display model; its arrays are never kept
        self._stale = False                          # the model changed while the pad was hidden
        self._input: np.ndarray | None = None        # (H, W) float32 the network got, owned here
        self._rendered = (-1, None)                  # (canvas version, (28, 28) float32 or None)
        self._last_classified = -math.inf            # time.perf_counter() of the last classification
        self.classify_ms = 0.0
        self._hinting = False                        # predictedDigit shows a hint, not a prediction

        self.canvas = PadCanvas()
        self.preview = InputPreview()
        self.preview.setToolTip("Exactly what the network receives: your strokes re-drawn MNIST-style "
                                "(20 px box, MNIST-thick pen, centred by mass).")
        self.preview_caption = QtWidgets.QLabel()
        self.preview_caption.setWordWrap(True)
        self.preview_caption.setFixedWidth(PREVIEW_SIDE)
        self.saliency_box = QtWidgets.QCheckBox("Saliency")
        self.saliency_box.setFocusPolicy(QtCore.Qt.FocusPolicy.TabFocus)  # see the Undo and Clear buttons
        self.saliency_box.setToolTip("Colour each input pixel by how the predicted class's probability "
                                     "changes with more ink there (minus the gradient of its loss, from "
                                     "the engine's backward pass down to the input: ∂ log p/∂x for the "
                                     "softmax networks, the same sign for tiny8x8's L2 cost): red where more "
                                     "ink raises it, blue where ink lowers it. Each map's colours are scaled to its "
                                     "brightest pixel, whose value the note below gives: compare maps by it.")
        self.saliency_note = QtWidgets.QLabel()
        self.saliency_note.setWordWrap(True)
        self.saliency_note.setFixedWidth(PREVIEW_SIDE)
        self.look_button = glyph_button("Look inside ▸")
        self.look_button.setFocusPolicy(QtCore.Qt.FocusPolicy.TabFocus)
        self.look_button.setToolTip("Show this drawing in the feature-map, pooling and conv-stepper views.")
        self.look_button.setEnabled(False)

        self.predicted = ToneLabel(HINT)
        self.predicted.setObjectName("predictedDigit")
        font = self.predicted.font()
        font.setPointSizeF(font.pointSizeF() * 2.0)
        font.setBold(True)
        self.predicted.setFont(font)
        # A fixed size: a QLabel whose size may change asks every layout above it for a new pass at
        # each setText, and the prediction changes up to 50 times a second while someone draws (the
        # pad's whole panel was laid out and repainted each time).
        self.predicted.setFixedSize(PAD_SIDE + COLUMN_GAP + PREVIEW_SIDE, self.predicted.sizeHint().height())
        self.predicted.setToolTip("The predicted class and the network's confidence in it.")
        self.model_note = QtWidgets.QLabel()
        self.model_note.setWordWrap(True)
        self.bars = ProbabilityBars()

        self.pen_buttons = QtWidgets.QButtonGroup(self)
        pen_row = QtWidgets.QHBoxLayout()
        pen_row.addWidget(QtWidgets.QLabel("Pen"))
        self.pen_shortcuts: list[QtGui.QShortcut] = []
        for number, (name, width) in enumerate(PEN_WIDTHS, 1):
            button = QtWidgets.QToolButton(text=name, checkable=True)
            # Not in the Tab chain: an exclusive group is walked with the arrow keys, and Right is the
            # window's "train one step". Ctrl+1/2/3 choose them instead, wherever the focus is in the pad
            # (not beyond it: other views may give these keys other work).
            button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            keys = QtGui.QKeySequence(f"Ctrl+{number}")
            native = keys.toString(QtGui.QKeySequence.SequenceFormat.NativeText)
            button.setToolTip(f"{width:g} px on the pad ({native}); the network always sees an MNIST-thick stroke.")
            button.setChecked(name == DEFAULT_PEN)
            self.pen_buttons.addButton(button)
            pen_row.addWidget(button)
            shortcut = QtGui.QShortcut(keys, self)
            shortcut.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(functools.partial(self.set_pen, name))
            self.pen_shortcuts.append(shortcut)
        pen_row.addStretch(1)
        self.undo_button = QtWidgets.QPushButton("Undo")
        self.undo_button.setToolTip("Remove the last stroke (Ctrl+Z).")
        self.clear_button = QtWidgets.QPushButton("Clear")
        self.clear_button.setToolTip("Clear the pad (Esc or right-click).")
        for button in (self.undo_button, self.clear_button):
            # Reached with Tab, not taken by a click: the pad keeps the focus (and Esc / Ctrl+Z) while
            # someone draws and clicks these with the mouse.
            button.setFocusPolicy(QtCore.Qt.FocusPolicy.TabFocus)
            pen_row.addWidget(button)

        side = QtWidgets.QVBoxLayout()
        title = QtWidgets.QLabel("<b>Network input</b>")
        side.addWidget(title)
        side.addWidget(self.preview)
        side.addWidget(self.preview_caption)
        side.addWidget(self.saliency_box)
        side.addWidget(self.saliency_note)
        side.addStretch(1)
        side.addWidget(self.look_button)
        top = QtWidgets.QHBoxLayout()
        top.setSpacing(COLUMN_GAP)
        top.addWidget(self.canvas)
        top.addLayout(side)
        # One column as wide as pad + preview, top left: in a wide tab the buttons stay under the pad.
        self.bars.setFixedWidth(PAD_SIDE + COLUMN_GAP + PREVIEW_SIDE)
        column = QtWidgets.QVBoxLayout()
        column.addLayout(top)
        column.addLayout(pen_row)
        column.addWidget(self.predicted)
        column.addWidget(self.model_note)
        column.addWidget(self.bars)
        column.addStretch(1)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addLayout(column)
        layout.addStretch(1)

        self._timer = QtCore.QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._classify)
        self.canvas.stroke_updated.connect(self._stroke_updated)
        self.canvas.strokes_settled.connect(self._classify)
        self.pen_buttons.buttonClicked.connect(self._pen_chosen)
        self.undo_button.clicked.connect(self.canvas.undo)
        self.clear_button.clicked.connect(self.canvas.clear)
        self.saliency_box.toggled.connect(self._classify)
        self.look_button.clicked.connect(self._look_inside)
        self._classify()

    # ------------------------------------------------------------------ protocol

    def model_changed(self, model) -> None:
        """New weights or a new model (a ``Sequential`` owned by the GUI thread): classify again."""
        self._model = model
        if self.isVisible():
            self._classify()
        else:
            self._stale = True

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self._stale:
            self._classify()

    def network_input(self) -> np.ndarray | None:
        """The input the network received last, ``(H, W, 1)`` float32 copy, or None (blank pad)."""
        return None if self._input is None else self._input[..., None].copy()

    def set_pen(self, name: str) -> None:
        """Choose a pen preset by name (see :data:`PEN_WIDTHS`)."""
        for button in self.pen_buttons.buttons():
            if button.text() == name:
                button.setChecked(True)
                self._pen_chosen(button)
                return
        raise ValueError(f"no pen named {name!r}; pens are {[n for n, _ in PEN_WIDTHS]}")

    # ------------------------------------------------------------------ slots

    @QtCore.Slot(QtWidgets.QAbstractButton)
    def _pen_chosen(self, button: QtWidgets.QAbstractButton) -> None:
        self.canvas.set_pen_width(dict(PEN_WIDTHS)[button.text()])

    @QtCore.Slot()
    def _stroke_updated(self) -> None:
        if self._timer.isActive():
            return  # a classification is already due; it will include this update
        wait_ms = CLASSIFY_INTERVAL_MS - (time.perf_counter() - self._last_classified) * 1000.0
        self._timer.start(max(0, math.ceil(wait_ms)))

    @QtCore.Slot()
    def _look_inside(self) -> None:
        x = self.network_input()
        if x is not None:
            self.look_inside.emit(x)

    # ------------------------------------------------------------------ classification

    def _too_small(self) -> bool:
        """True for a blank pad, or ink smaller than MIN_DRAWING pad pixels both ways (a click, a
        slip of the mouse): blown up to a digit's size it was read as one ("2 (45%)" for a dot)."""
        if self.canvas.is_empty():
            return True
        points = np.concatenate(self.canvas.strokes())
        return bool(np.ptp(points, axis=0).max() < MIN_DRAWING)

    def _rendered28(self) -> np.ndarray | None:
        """The strokes as an MNIST digit ``(28, 28)`` float32, or None when the pad is blank.
        Cached per canvas edit: new weights reuse it."""
        version, img = self._rendered
        if version != self.canvas.version:
            img = None if self._too_small() else render_strokes(self.canvas.strokes())
            if img is not None and is_blank(img):
                img = None
            self._rendered = (self.canvas.version, img)
        return img

    @QtCore.Slot()
    def _classify(self) -> None:
        """Preprocess the strokes for the current model, classify, show everything."""
        self._timer.stop()
        self._stale = False
        self._last_classified = time.perf_counter()
        model = self._model
        grid = network_input_shape(model) if model is not None else (28, 28)
        img28 = self._rendered28()
        if img28 is None or grid is None:
            x = None
        else:
            x = img28 if grid == (28, 28) else downsample_8x8(img28)
        self._input = x
        self.preview.set_input(x, grid or (28, 28))
        self.look_button.setEnabled(x is not None)
        self._describe_input(model, grid)

        if model is None or grid is None or x is None:
            self._show_no_answer(model, HINT if model is not None and grid is not None else "")
            return

        with np.errstate(over="ignore", invalid="ignore"):  # overflow is told below, not warned on stderr
            p = model.predict_proba(x[None, :, :, None])[0]              # (num_classes,)
        if not np.isfinite(p).all():
            self._show_no_answer(model, "no answer", "The network's outputs overflowed (not finite): its "
                                                     "weights are far too large.")
            return
        best = int(np.argmax(p))
        label = model.classes[best]
        self._set_result(f"{label}  ({percent(p[best])})", hint=False)
        self.bars.set_classes(list(model.classes))
        self.bars.set_probabilities(p)
        if self.saliency_box.isChecked():
            saliency, _ = input_gradient(model, x[:, :, None], best)     # (H, W, 1)
            self.preview.set_overlay(saliency_rgba(saliency[..., 0]))
            self.saliency_note.setText(
                f"red: ink there raises P({label}); blue: lowers it.\n{saliency_scale(model, saliency, p[best])}"
                if saliency.any() else
                f"no colours: P({label}) is so close to 1 that no pixel changes it (the output layer is saturated)")
        else:
            self.preview.set_overlay(None)
            self.saliency_note.setText("")
        self._shown(p.copy())

    def _show_no_answer(self, model, text: str, note: str = "") -> None:
        """No prediction: ``text`` greyed where it would be, empty bars, ``note`` below the preview."""
        self._set_result(text, hint=True)
        self.bars.set_classes(list(model.classes) if model is not None else list(range(10)))
        self.bars.set_probabilities(None)
        self.preview.set_overlay(None)
        self.saliency_note.setText(note)
        self._shown(None)

    def _set_result(self, text: str, hint: bool) -> None:
        """Show a prediction in bold, or a hint greyed out so that it never looks like one."""
        self.predicted.setText(text)
        if hint != self._hinting:  # restyling costs a relayout: only on a change
            self._hinting = hint
            # a hint greyed and in the normal weight; a prediction in the font's (bold) weight
            self.predicted.set_tone(*(("muted", False) if hint else (None, None)))

    def _shown(self, p: np.ndarray | None) -> None:
        """The prediction ``p: (K,)`` (None: none) is on screen: time it and tell listeners."""
        self.classify_ms = (time.perf_counter() - self._last_classified) * 1000.0
        self.prediction_shown.emit(p)

    def _describe_input(self, model, grid) -> None:
        if model is None:
            self.preview_caption.setText("28×28, as MNIST. No model loaded yet.")
            self.model_note.setText("")
        elif grid is None:
            shape = "×".join(map(str, model.input_shape))
            self.preview_caption.setText(f"{model.name} takes {shape} inputs: the pad cannot make those.")
            self.model_note.setText("")
        elif grid == (8, 8):
            self.preview_caption.setText(f"{model.name} takes 8×8 images: your digit is shrunk to 8×8, "
                                         "as above.")
            classes = " and ".join(map(str, model.classes))
            self.model_note.setText(f"{model.name} only knows {classes}.")
        else:
            self.preview_caption.setText("28×28, MNIST-style: strokes re-drawn in a 20 px box, "
                                         "centred by mass.")
            self.model_note.setText(f"classified by the current {model.name} weights")


# ---------------------------------------------------------------------------------------------------
# Driving the pad with real mouse events (tests, tools/pad_quality.py, app.bench_pad_latency)

def place_strokes(strokes: list[np.ndarray], side: float, height_frac: float,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Scale ``strokes`` (``(M, 2)`` ``(x, y)``, any units) so the polylines are ``height_frac * side``
    tall (less if that would make them wider than the pad) and move them to a uniformly random
    position where they fit on a ``side`` x ``side`` pad. Returns new ``(M, 2)`` float64 arrays."""
    pts = np.concatenate(strokes)
    lo, extent = pts.min(axis=0), np.ptp(pts, axis=0)                     # (x, y)
    room = side - 1.0  # integer mouse positions run 0 .. side - 1
    scale = height_frac * room / extent[1] if extent[1] > 0 else 1.0
    if extent[0] * scale > room:
        scale = room / extent[0]
    size = extent * scale
    origin = rng.uniform(0.0, room - size)                                # (x, y)
    return transform_strokes(strokes, scale, origin - lo * scale)


def stroke_events(strokes: list[np.ndarray]) -> list[tuple[str, QtCore.QPoint]]:
    """The mouse events that draw ``strokes`` (``(M, 2)`` ``(x, y)`` in pad pixels): per stroke a
    ("press", first point), a ("move", point) to each further point and a ("release", last point).
    Positions are rounded to whole pixels, as a mouse reports them."""
    events = []
    for stroke in strokes:
        points = [QtCore.QPoint(int(x), int(y)) for x, y in np.rint(stroke)]
        events += [("press", points[0]), *(("move", point) for point in points[1:]), ("release", points[-1])]
    return events


def send_mouse_event(canvas: PadCanvas, kind: str, point: QtCore.QPoint) -> None:
    """One event of :func:`stroke_events` (a left-button press, move or release) on ``canvas``, with QTest."""
    from PySide6.QtTest import QTest

    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    if kind == "press":
        QTest.mousePress(canvas, left, none, point)
    elif kind == "move":
        QTest.mouseMove(canvas, point)
    else:
        QTest.mouseRelease(canvas, left, none, point)


def replay_strokes(canvas: PadCanvas, strokes: list[np.ndarray]) -> None:
    """Draw ``strokes`` (``(M, 2)`` ``(x, y)`` in pad pixels) on ``canvas`` with QTest mouse events,
    one after the other (:func:`stroke_events`)."""
    for kind, point in stroke_events(strokes):
        send_mouse_event(canvas, kind, point)
