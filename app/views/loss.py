"""Loss view: per-step training loss with a smoothed line, per-epoch loss and accuracy, overlays.

The top plot (objectName ``lossPlot``) shows every mini-batch loss against the global step, its
debiased exponential moving average (restarted where a divergence rescue rolled the weights back), and
per epoch: the mean training loss as a bar across the steps it averages, and the validation loss at the
step where the epoch ended (it is measured there). The bottom plot (``epochPlot``) shows per-epoch
train/validation accuracy against the epoch's number.
Another run's per-step losses can be overlaid with ``add_overlay`` (the window keeps the run before a
fresh start as "previous run").

Performance habits (pyqtgraph): every curve is created once and updated with ``setData``; per-step
curves get at most ~4,100 points however long the run (:class:`PeakEnvelope`: each bucket's lowest
and highest loss), then pyqtgraph's peak downsampling to the plot's width and clip-to-view; pens are
1 px.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter
from PySide6 import QtCore, QtGui, QtWidgets

from app.export import save_png, write_curves_csv
from app.views.plots import (LogFriendlyAxis, WholeNumberAxis, empty_loss_range, legend_above_data,
                             style_symbols_now)
from app.views.scenes import repaint_with_window

# Overlay colours, chosen to stay distinct from the run's own blue/orange/green curves.
OVERLAY_COLOURS = ("#e03cc8", "#e8d44d", "#ff5555", "#9b7cff")
# Other runs' curves lie beneath the current run's (z 0): added after them, the magenta "previous run"
# was drawn on top and hid the live per-step trace.
OVERLAY_Z = -1
# the y axis' title per engine loss (Sequential.loss): both are means over the mini-batch's images
LOSS_NAMES = {"softmax_cross_entropy": "cross-entropy loss", "l2": "L2 cost (½ squared error)"}


class GrowingBuffer:
    """Columns of float64 values in a preallocated array that doubles when full.

    ``data(i)`` is a view ``(n,)`` of column i's filled part; views handed to pyqtgraph stay valid
    because appending writes beyond them and growing allocates a new array.
    """

    def __init__(self, columns: int, capacity: int = 1024) -> None:
        self._array = np.empty((columns, capacity), dtype=np.float64)
        self.size = 0

    def append(self, *columns: np.ndarray) -> None:
        """Append equal-length 1-D arrays (one per column)."""
        n = len(columns[0])
        if self.size + n > self._array.shape[1]:
            capacity = max(2 * self._array.shape[1], self.size + n)
            grown = np.empty((self._array.shape[0], capacity), dtype=np.float64)
            grown[:, : self.size] = self._array[:, : self.size]
            self._array = grown
        for i, values in enumerate(columns):
            self._array[i, self.size : self.size + n] = values
        self.size += n

    def data(self, column: int) -> np.ndarray:
        return self._array[column, : self.size]

    def clear(self) -> None:
        self.size = 0


def _extremes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x, y: (M, K) K candidate points of each of M buckets -> (M, 4) ``(xa, ya, xb, yb)``: the
    bucket's lowest and highest points, the earlier one (a) first."""
    rows = np.arange(len(y))
    low, high = np.argmin(y, axis=1), np.argmax(y, axis=1)
    first = np.where(x[rows, low] <= x[rows, high], low, high)
    second = np.where(first == low, high, low)
    return np.stack([x[rows, first], y[rows, first], x[rows, second], y[rows, second]], axis=1)


class PeakEnvelope:
    """A series of any length reduced for plotting: the lowest and highest point of each bucket of
    ``width`` consecutive points, in order, so every spike stays visible.

    Handing pyqtgraph the whole series made each update cost O(length) (it re-downsamples all of
    it): 5 ms per update at 500,000 steps, an overnight run, 30 times a second, shown or hidden.
    Here ``width`` starts at 1 (the points themselves) and doubles by merging neighbouring buckets
    whenever there would be more than ``max_buckets``, so appending costs O(new points) amortised
    and :meth:`points` returns at most ``2 * max_buckets + 2`` points.
    """

    def __init__(self, max_buckets: int = 2048) -> None:
        if max_buckets < 2 or max_buckets % 2:
            raise ValueError(f"max_buckets must be even and >= 2, got {max_buckets}")
        self.max_buckets = max_buckets
        self.width = 1
        self._buckets = GrowingBuffer(4)      # complete buckets: xa, ya, xb, yb
        self._partial = np.empty(4)          # the bucket being filled ...
        self._partial_n = 0                  # ... with this many points (< width)

    def __len__(self) -> int:
        """Points appended so far."""
        return self._buckets.size * self.width + self._partial_n

    def clear(self) -> None:
        self.width = 1
        self._buckets.clear()
        self._partial_n = 0

    def append(self, x: np.ndarray, y: np.ndarray) -> None:
        """Append points ``x, y: (n,)`` (x increasing, after the points already there)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if self._partial_n:  # top up the bucket being filled
            take = min(self.width - self._partial_n, len(x))
            self._partial = self._merged(self._partial, x[:take], y[:take])
            self._partial_n += take
            x, y = x[take:], y[take:]
            if self._partial_n == self.width:
                self._buckets.append(*self._partial[:, None])
                self._partial_n = 0
        full = len(x) // self.width * self.width
        if full:
            self._buckets.append(*_extremes(x[:full].reshape(-1, self.width),
                                            y[:full].reshape(-1, self.width)).T)
        if full < len(x):
            self._partial = _extremes(x[None, full:], y[None, full:])[0]
            self._partial_n = len(x) - full
        while self._buckets.size > self.max_buckets:
            self._double_width()

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The reduced series ``(x, y)``, each ``(m,)``, new arrays: every point while ``width`` is 1,
        then both extremes of every bucket."""
        buckets = np.stack([self._buckets.data(i) for i in range(4)], axis=1)  # (n, 4)
        if self._partial_n:
            buckets = np.concatenate([buckets, self._partial[None]])
        if self.width == 1:
            return buckets[:, 0].copy(), buckets[:, 1].copy()
        return buckets[:, 0::2].ravel(), buckets[:, 1::2].ravel()

    @staticmethod
    def _merged(bucket: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``bucket: (4,)`` with the points ``x, y: (k,)`` added."""
        return _extremes(np.concatenate([bucket[0::2], x])[None], np.concatenate([bucket[1::2], y])[None])[0]

    def _double_width(self) -> None:
        buckets = np.stack([self._buckets.data(i) for i in range(4)], axis=1)  # (n, 4)
        pairs = len(buckets) // 2 * 2
        merged = _extremes(buckets[:pairs, 0::2].reshape(-1, 4), buckets[:pairs, 1::2].reshape(-1, 4))
        if pairs < len(buckets):  # the odd bucket out starts the new partial one
            last = buckets[-1]
            self._partial = (self._merged(last, self._partial[0::2], self._partial[1::2])
                             if self._partial_n else last)
            self._partial_n += self.width
        self.width *= 2
        self._buckets.clear()
        self._buckets.append(*merged.T)


def ema_debiased(values: np.ndarray, beta: float,
                 state: tuple[float, int]) -> tuple[np.ndarray, tuple[float, int]]:
    """Exponential moving average with bias correction (as TensorBoard's smoothing).

    values: (n,) new points; state: (biased running average, points seen so far) from the previous
    call, (0.0, 0) at the start. Returns the smoothed values (n,) and the new state. The correction
    ``/ (1 - beta**t)`` keeps the first points from being pulled towards 0.
    """
    average, seen = state
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):  # n is a few points per 30 Hz batch
        average = beta * average + (1.0 - beta) * float(value)
        seen += 1
        out[i] = average / (1.0 - beta**seen)
    return out, (average, seen)


class SteadyYRange:
    """Keeps a plot's y range around its curves, moving it only when a curve leaves it, a marker (dot,
    square) comes within reach of its edge, or the curves fill less than half of it.

    pyqtgraph's auto-range fits the data exactly, so it moved with nearly every new point, and a
    moved range re-downsamples every curve and re-lays out the axis: more than half of the Loss
    view's repaint while training (~20 ms of the first paint after switching to it). Zooming or
    panning with the mouse hands the range to the user until auto-range is asked for again (the
    plot's "A" button or "View All"); :meth:`fit` then takes over again.
    """

    MARGIN = 0.05  # of the data's span, above and below
    # Between a marker's edge and the plot's: a range fitted to the data alone let an accuracy of 98.6
    # sit on the edge of [79.95, 98.63] (its dot cut in half) and a dot touch the x axis.
    MARKER_GAP_PX = 4.0

    def __init__(self, plot: pg.PlotItem) -> None:
        self.view_box = plot.getViewBox()
        self.following = True
        self.view_box.sigRangeChangedManually.connect(self._user_took_over)
        # The room markers need is in pixels: a plot made smaller (or laid out after a fit while its
        # tab was hidden) may need a wider range for the same data.
        self.view_box.sigResized.connect(lambda *_: self.fit())

    def _user_took_over(self, *_) -> None:
        self.following = False

    @staticmethod
    def _y_bounds(item: pg.PlotDataItem) -> tuple[float, float] | None:
        """The finite y extent of a curve's data as plotted (log10 on a log axis), or None.

        From the data given to the curve, not pyqtgraph's ``dataBounds``: those come from display
        data clipped against the current view (its dynamicRangeLimit), so a sudden jump, such as a
        diverging loss after tiny ones, stayed out of view: the range was fitted before any repaint."""
        y = item.getOriginalDataset()[1]
        if y is None or len(y) == 0:
            return None
        y = np.asarray(y, dtype=np.float64)
        if item.opts["logMode"][1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.log10(y)
        y = y[np.isfinite(y)]
        return (float(y.min()), float(y.max())) if y.size else None

    @classmethod
    def _marker_room_px(cls, items: list[pg.PlotDataItem]) -> float:
        """Pixels a data point must keep from the plot's top and bottom edges so that its marker is
        drawn whole and clear of the axis line: half the largest marker, its outline and a gap (0 when no
        curve has markers: a line may run along the edge)."""
        reach = [item.opts["symbolSize"] / 2 + pg.mkPen(item.opts["symbolPen"]).widthF()
                 for item in items if item.opts["symbol"] is not None]
        return max(reach) + cls.MARKER_GAP_PX if reach else 0.0

    def fit(self, force: bool = False) -> None:
        """Move the range if the curves need it (``force``: fit them now, e.g. after a log-scale switch)."""
        if self.view_box.state["autoRange"][1] is not False:  # auto-range asked for: ours from now on
            self.following = True
        if not self.following:
            return
        items = [item for item in self.view_box.addedItems if isinstance(item, pg.PlotDataItem) and item.isVisible()]
        drawn = {item: self._y_bounds(item) for item in items}
        items = [item for item, b in drawn.items() if b is not None]  # an empty curve's markers need no room
        bounds = [drawn[item] for item in items]
        if not bounds:
            return
        low, high = min(b[0] for b in bounds), max(b[1] for b in bounds)
        shown_low, shown_high = self.view_box.viewRange()[1]
        room_px, height_px = self._marker_room_px(items), self.view_box.height()
        if 2 * (room_px + 1) >= height_px:  # not laid out yet (or absurdly small): the data alone
            room_px = 0.0
        inset = room_px * (shown_high - shown_low) / height_px if room_px else 0.0  # those pixels, in y units
        fits = (shown_low + inset <= low and high <= shown_high - inset
                and high - low >= 0.5 * (shown_high - shown_low))
        if fits and not force and self.view_box.state["autoRange"][1] is False:
            return
        if high - low <= 1e-9 * max(abs(high), 1.0):  # one point or a flat line: show it mid-plot
            log = any(item.opts["logMode"][1] for item in items)  # (zoomed to ±1e-4 it looked empty)
            pad = 0.1 if log else 0.1 * abs(high) or 0.5  # a tenth of a decade on a log axis
        else:
            pad = self.MARGIN * max(high - low, 1e-3 * abs(high), 1e-12)
            # pad / (span + 2 pad) of the height is room_px (a few pixels are much of a short plot), plus a
            # pixel so that rounding does not fail the next `fits` and move the range on every update
            if room_px:
                pad = max(pad, (room_px + 1) * (high - low) / (height_px - 2 * (room_px + 1)))
        self.view_box.setRange(yRange=(low - pad, high + pad), padding=0)  # also ends pyqtgraph's auto y


def _nice_step(at_least: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is >= ``at_least``: a tick spacing for whole epochs."""
    magnitude = 1
    while True:
        for step in (magnitude, 2 * magnitude, 5 * magnitude):
            if step >= at_least:
                return step
        magnitude *= 10


DASHED = QtCore.Qt.PenStyle.DashLine


def _curve(plot: pg.PlotItem, colour: str, name: str, symbol: str | None = None,
           style: QtCore.Qt.PenStyle = QtCore.Qt.PenStyle.SolidLine) -> pg.PlotDataItem:
    """One curve, created once, with the long-curve settings (1 px pen, peak downsampling, clipping)."""
    curve = plot.plot(
        pen=pg.mkPen(colour, width=1, style=style),
        name=name,
        symbol=symbol,
        symbolSize=6,
        symbolPen=pg.mkPen(colour, width=1),  # also for a symbol set later (LossView._mark_lone_point)
        symbolBrush=pg.mkBrush(colour),
    )
    if symbol:
        style_symbols_now(curve)  # the empty plot's legend: the validation squares and accuracy dots in colour
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)
    return curve


def _bars(plot: pg.PlotItem, colour: str, name: str) -> pg.PlotDataItem:
    """Horizontal bars, one per pair of points ``(start, y), (end, y)``. A few points (one pair an epoch),
    so neither downsampled nor clipped to the view: either could drop one point of a pair and pair the
    rest wrongly. 2 px: a bar lies across the 1 px per-step curve and has to stand out from its noise."""
    return plot.plot(pen=pg.mkPen(colour, width=2), name=name, connect="pairs")


HINT_MARGIN = 8  # px at least between the empty plot's hint and the data area's sides


class LossView(QtWidgets.QWidget):
    """Per-step and per-epoch curves of one training run, plus optional overlaid runs."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, smoothing: float = 0.9) -> None:
        super().__init__(parent)
        self.setObjectName("lossView")
        self.smoothing = smoothing
        self._steps = GrowingBuffer(3)  # step, loss, smoothed loss
        self._step_points = PeakEnvelope()  # what the per-step curves draw of them
        self._smooth_points = PeakEnvelope()
        # last step, train loss, val loss, train acc %, val acc %, the step the epoch began after
        self._epochs = GrowingBuffer(6)
        self._ema_state = (0.0, 0)
        self._restarts: list[pg.InfiniteLine] = []  # where the smoothing started again (restart_smoothing)
        self._divergences: list[pg.InfiniteLine] = []  # the steps refused as diverged (mark_divergence)
        self._last_step: int | None = None  # the run's extent on the step axis (set_run_extent)
        self._overlays: dict[str, pg.PlotDataItem] = {}
        self._overlay_data: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # every step, for the CSV

        self.log_y = QtWidgets.QCheckBox("Log scale")
        self.log_y.setObjectName("lossLogY")
        self.log_y.setToolTip("Show the loss on a logarithmic axis: late, small improvements become visible.")
        self.log_y.toggled.connect(self.set_log_y)

        self.loss_plot = pg.PlotWidget(axisItems={"left": LogFriendlyAxis("left"), "bottom": WholeNumberAxis("bottom")})
        self.loss_plot.setObjectName("lossPlot")
        repaint_with_window(self.loss_plot)
        self.loss_plot.setToolTip(
            "Loss of every mini-batch (faint) and its moving average (bright). Once per epoch: the training "
            "loss averaged over the epoch's mini-batches, as a bar across the steps it averages (each "
            "mini-batch measured before its own update: the early ones met the weights of the epoch's "
            "start), and the loss on the validation set (squares), measured with the weights at the "
            "epoch's end. A dotted line marks where the weights were rolled back after a divergence: "
            "the moving average starts again there. A dashed red line marks a step refused as diverged: its "
            "loss (not a number, or huge) is not plotted."
        )
        loss_item = self.loss_plot.getPlotItem()
        loss_item.getViewBox().sigResized.connect(self._stagger_restart_labels)
        # After a Reset the previous run's curve sets the range (steps 1..300): a hint left at x = 0.5 was cut
        # in half by the y axis ("ce) to train:"), so it keeps to the middle of whatever range is shown.
        loss_item.getViewBox().sigRangeChanged.connect(self._centre_hint)
        loss_item.getViewBox().sigResized.connect(self._centre_hint)  # and wraps to a narrower plot
        loss_item.setLabel("left", "loss")
        loss_item.setLabel("bottom", "step")
        # tiny8x8's loss of ~0.1 read "loss (x0.001)" with ticks 110..130: a learner read 125, not 0.125
        loss_item.getAxis("left").enableAutoSIPrefix(False)
        # No grid: pyqtgraph draws grid lines as part of each axis, which tripled the cost of a repaint.
        legend_above_data(loss_item)
        self.step_curve = _curve(loss_item, "#6b7b8c", "loss per step")
        self.smooth_curve = _curve(loss_item, "#7fc4ff", "smoothed")
        # The mean of an epoch's losses belongs to all its steps: drawn at the epoch's last step, epoch 1's
        # 0.61 sat beside a per-step loss of 0.25 and a validation loss of 0.29 ("training loss twice the
        # validation loss"). A bar across the epoch's steps says what was averaged.
        self.train_loss_curve = _bars(loss_item, "#ff9f40", "train loss (mean over the epoch)")
        # Validation: dashed with squares, not only green: to a red-green colour-blind eye the orange and
        # the green are one yellow.
        self.val_loss_curve = _curve(loss_item, "#5fd35f", "val loss (end of epoch)", symbol="s", style=DASHED)
        self.hint = pg.TextItem("Press Start (Space) to train:\nthe loss of every mini-batch appears here.",
                                color="#aaaaaa", anchor=(0.5, 0.5))
        loss_item.addItem(self.hint, ignoreBounds=True)
        self.loss_range = SteadyYRange(loss_item)

        self.epoch_plot = pg.PlotWidget(axisItems={"left": LogFriendlyAxis("left"),
                                                   "bottom": WholeNumberAxis("bottom")})
        self.epoch_plot.setObjectName("epochPlot")
        repaint_with_window(self.epoch_plot)
        self.epoch_plot.setToolTip("Accuracy once per epoch: on the training images, averaged over the epoch's "
                                   "mini-batches as they were trained (each before its own update); on the "
                                   "validation set, at the end of the epoch.")
        epoch_item = self.epoch_plot.getPlotItem()
        epoch_item.setLabel("left", "accuracy (%)")
        # Epochs, not steps: then this plot changes (and repaints) once per epoch, not on every step.
        epoch_item.setLabel("bottom", "epoch")
        legend_above_data(epoch_item)
        self.train_acc_curve = _curve(epoch_item, "#ff9f40", "train accuracy (mean over the epoch)", symbol="o")
        self.val_acc_curve = _curve(epoch_item, "#5fd35f", "val accuracy (end of epoch)", symbol="s", style=DASHED)
        self.accuracy_range = SteadyYRange(epoch_item)

        # Room for the axes, legends and hint: a smaller window scrolls the tab rather than piling the
        # tick labels and the legend on top of each other. The heights grow with the font (at 17 pt the accuracy
        # plot's 150 px left ~100 px of data area).
        line = QtGui.QFontMetrics(self.font()).height()
        self.loss_plot.setMinimumSize(360, max(240, 11 * line))
        self.epoch_plot.setMinimumSize(360, max(150, 7 * line))
        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.loss_plot)
        splitter.addWidget(self.epoch_plot)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.log_y)
        bar.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)
        self.clear()  # the empty plots' frames

    # ------------------------------------------------------------------ data in

    def set_loss_kind(self, loss: str) -> None:
        """Name the loss the curves show (a model's ``loss``: "softmax_cross_entropy" or "l2")."""
        self.loss_plot.getPlotItem().setLabel("left", LOSS_NAMES.get(loss, "loss"))

    def append_steps(self, steps: np.ndarray, losses: np.ndarray) -> None:
        """Add mini-batch losses. steps: (n,) global step numbers; losses: (n,) loss values."""
        if len(steps) == 0:
            return
        losses = np.asarray(losses, dtype=np.float64)
        smoothed, self._ema_state = ema_debiased(losses, self.smoothing, self._ema_state)
        self._steps.append(steps, losses, smoothed)
        self._step_points.append(steps, losses)
        self._smooth_points.append(steps, smoothed)
        self.hint.hide()
        self.step_curve.setData(*self._step_points.points())
        self.smooth_curve.setData(*self._smooth_points.points())
        self._mark_lone_point(len(self._steps.data(0)) == 1)
        self.loss_range.fit()

    def _mark_lone_point(self, lone: bool) -> None:
        """A curve of one point draws nothing: after a first Step, mark the point with a dot."""
        if lone != (self.smooth_curve.opts["symbol"] is not None):
            self.smooth_curve.setSymbol("o" if lone else None)

    def append_epoch(self, step: int, train_loss: float, val_loss: float, train_accuracy: float,
                     val_accuracy: float, start: int | None = None) -> None:
        """Add one epoch's metrics: it ran from after step ``start`` to step ``step``, its last (``start``
        by default: the previous epoch's last step, 0 for the first; a run that does not carry on the
        previous one's epochs says where it began). In the loss plot the mean training loss is a bar from
        ``start`` to ``step``, the validation loss a point at ``step``; the accuracies (in [0, 1], shown
        in %) are points at the epoch's number in the epoch plot."""
        if start is None:
            start = self._epochs.data(0)[-1] if self._epochs.size else 0
        self._epochs.append([step], [train_loss], [val_loss], [100.0 * train_accuracy],
                            [100.0 * val_accuracy], [start])
        ends = self._epochs.data(0)
        numbers = np.arange(1, self._epochs.size + 1, dtype=np.float64)
        for curve, (x, y) in ((self.train_loss_curve, self._epoch_bars()),
                              (self.val_loss_curve, (ends, self._epochs.data(2))),
                              (self.train_acc_curve, (numbers, self._epochs.data(3))),
                              (self.val_acc_curve, (numbers, self._epochs.data(4)))):
            # an epoch without a figure (its validation cancelled by a stop) is left out: NaN points
            # made pyqtgraph's symbols warn (all-NaN bounds) and drew nothing anyway (a bar's two points
            # share their figure, so go together)
            known = np.isfinite(y)
            curve.setData(x[known], y[known])
        self.loss_range.fit()
        self.accuracy_range.fit()

    def _epoch_bars(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean training losses as bars: ``(x, y)``, each (2e,), the points ``(start, loss), (end,
        loss)`` of every epoch in turn (``connect="pairs"``), as drawn and exported."""
        x = np.stack([self._epochs.data(5), self._epochs.data(0)], axis=1).ravel()
        return x, np.repeat(self._epochs.data(1), 2)

    def restart_smoothing(self, label: str = "") -> None:
        """Start the moving average again from the next step, and mark the place with a dotted vertical
        line (``label`` beside it) between the last step plotted and the next.

        After a divergence rescue (weights rolled back, lower learning rates) the loss is back to ~1
        within a few steps, but an average carrying the exploded losses stayed near 12 twenty steps on:
        it hid a recovery that had already happened."""
        self._ema_state = (0.0, 0)
        if self._steps.size == 0:
            return
        line = pg.InfiniteLine(self._steps.data(0)[-1] + 0.5, angle=90,
                               pen=pg.mkPen("#bbbbbb", width=1, style=QtCore.Qt.PenStyle.DotLine),
                               label=label or None,
                               labelOpts={"color": "#bbbbbb", "anchors": [(0, 0), (0, 0)]})
        self.loss_plot.getPlotItem().addItem(line, ignoreBounds=True)
        self._restarts.append(line)
        self._stagger_restart_labels()

    def mark_divergence(self, step: int, label: str) -> None:
        """Mark step ``step``, refused as diverged, with a dashed red vertical line (``label`` beside it):
        its loss (NaN or huge) is never plotted, so the curve just stopped without a word."""
        line = pg.InfiniteLine(step, angle=90, pen=pg.mkPen("#e04040", width=1, style=QtCore.Qt.PenStyle.DashLine),
                               label=label, labelOpts={"color": "#e04040", "anchors": [(0, 0), (0, 0)]})
        self.loss_plot.getPlotItem().addItem(line, ignoreBounds=True)
        self._divergences.append(line)
        self._stagger_restart_labels()

    def frame_run_so_far(self) -> None:
        """Fit the step axis to the steps plotted and the divergences marked, instead of the run's planned
        extent (set_run_extent): a run stopped after its divergence at step 3 of 710 was a sliver at the left."""
        ends = [float(self._steps.data(0)[-1])] if self._steps.size else []
        ends += [line.value() for line in self._divergences]
        if ends:
            self._last_step = max(max(ends), 1)
            self._frame_steps()

    def _stagger_restart_labels(self) -> None:
        """Each next label a line of text lower, in four rows from the top (rescues a few steps apart
        wrote their labels over each other). Label positions are fractions of the plot's height, so the
        rows are measured again when it changes: a fixed 6% was less than a line in a short plot."""
        lines = sorted(self._restarts + self._divergences, key=lambda line: line.value())
        labels = [line.label for line in lines if line.label is not None]
        if not labels:
            return
        box_px = max(self.loss_plot.getPlotItem().getViewBox().height(), 1.0)
        row = min(0.2, (max(label.boundingRect().height() for label in labels) + 2) / box_px)  # px: no zoom
        for k, label in enumerate(labels):
            label.setPosition(0.96 - row * (k % 4))

    def set_run_extent(self, last_step: int, last_epoch: int) -> None:
        """Fix the x axes to the end of the run (step ``last_step``, epoch ``last_epoch``): the curves
        grow into a fixed frame, so the axes are not re-laid out on every update, and epochs are
        labelled with whole numbers. ``clear`` returns to automatic ranging."""
        self._last_step = last_step
        self._frame_steps()
        self.epoch_plot.getPlotItem().setXRange(0.5, last_epoch + 0.5, padding=0)
        spacing = _nice_step(last_epoch / 10)
        self.epoch_plot.getPlotItem().getAxis("bottom").setTickSpacing(spacing, spacing)

    def _frame_steps(self) -> None:
        if self._last_step is not None:
            self.loss_plot.getPlotItem().setXRange(0, self._last_step, padding=0.02)

    def clear(self) -> None:
        """Forget the run's curves (overlays stay until ``clear_overlays``)."""
        self._steps.clear()
        self._step_points.clear()
        self._smooth_points.clear()
        self._epochs.clear()
        self._ema_state = (0.0, 0)
        for line in self._restarts + self._divergences:
            self.loss_plot.getPlotItem().removeItem(line)
        self._restarts.clear()
        self._divergences.clear()
        self._last_step = None
        self.hint.show()
        self._frame_empty_loss_plot()
        epoch_item = self.epoch_plot.getPlotItem()
        epoch_item.setRange(xRange=(0, 1), yRange=(0, 100), padding=0)
        epoch_item.setRange(yRange=(0, 100), padding=0.03)  # a percentage scale, with room for the "100" label
        for plot in (self.loss_plot, self.epoch_plot):
            plot.getPlotItem().enableAutoRange()  # both axes follow the next run (y through SteadyYRange)
        self.epoch_plot.getPlotItem().getAxis("bottom").setTickSpacing()  # automatic again
        for curve in (self.step_curve, self.smooth_curve, self.train_loss_curve, self.val_loss_curve,
                      self.train_acc_curve, self.val_acc_curve):
            curve.setData([], [])
        self._mark_lone_point(False)

    def _frame_empty_loss_plot(self) -> None:
        """The loss plot's range without curves, for its scale (linear or log), with the hint in the middle.
        On a log axis the linear 0..1 read 1 to 10: labelled 2 … 9, without a power of ten."""
        low, high = empty_loss_range(self.log_y.isChecked())
        plot = self.loss_plot.getPlotItem()
        plot.setRange(xRange=(0, 1), padding=0)
        # A little room above and below: the top tick label ("1.0") sits on the range's edge and was cut in half.
        plot.setRange(yRange=(low, high), padding=0.03)
        self._centre_hint()

    def _centre_hint(self, *_) -> None:
        """Put the hint of the empty plot in the middle of the range shown (in log10 units on a log axis)."""
        if self.hint.isVisible():
            box = self.loss_plot.getPlotItem().getViewBox()
            self._wrap_hint(box.width())
            (x0, x1), (y0, y1) = box.viewRange()
            self.hint.setPos((x0 + x1) / 2, (y0 + y1) / 2)

    def _wrap_hint(self, width: float) -> None:
        """Wrap the hint to ``width`` px (less a margin) when its lines are wider: in a plot narrower than
        ~420 px it was cut off at both edges."""
        room = max(width - 2 * HINT_MARGIN, 1.0)
        text = self.hint.textItem
        wrapped = text.textWidth() > 0
        text.setTextWidth(-1)  # its natural width, one line per line of the text
        if text.boundingRect().width() > room:
            self.hint.setTextWidth(room)
        elif wrapped:
            self.hint.setTextWidth(-1)  # re-anchors it at its natural size

    def add_overlay(self, name: str, steps: np.ndarray, losses: np.ndarray) -> pg.PlotDataItem:
        """Overlay another run's per-step losses in its own colour, listed in the legend.

        steps, losses: (n,). Calling again with the same name replaces that overlay's data.
        """
        if name not in self._overlays:
            colour = OVERLAY_COLOURS[len(self._overlays) % len(OVERLAY_COLOURS)]
            self._overlays[name] = _curve(self.loss_plot.getPlotItem(), colour, name)
            self._overlays[name].setZValue(OVERLAY_Z)
        curve = self._overlays[name]
        self._overlay_data[name] = (np.array(steps, dtype=np.float64), np.array(losses, dtype=np.float64))
        points = PeakEnvelope()
        points.append(steps, losses)
        curve.setData(*points.points())
        self.loss_range.fit()
        return curve

    def has_overlay(self, name: str) -> bool:
        return name in self._overlays

    def clear_overlays(self) -> None:
        plot = self.loss_plot.getPlotItem()
        for curve in self._overlays.values():
            plot.removeItem(curve)  # also removes its legend entry
        self._overlays.clear()
        self._overlay_data.clear()
        self.loss_range.fit()

    # ------------------------------------------------------------------ read back

    @property
    def steps(self) -> np.ndarray:
        """(n,) steps of the plotted mini-batch losses (a copy)."""
        return self._steps.data(0).copy()

    @property
    def losses(self) -> np.ndarray:
        """(n,) plotted mini-batch losses (a copy)."""
        return self._steps.data(1).copy()

    def curves_until(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The curves up to ``step`` (copies): losses (k,) of the plotted steps <= step, and epochs
        (e, 5) of the epochs ending by then: last step, train loss, val loss, train and val
        accuracy in [0, 1] (as ``append_epoch`` took them). Not the step each epoch began after:
        ``Session.earlier`` has no place for it, and ``append_epoch``'s default (the previous epoch's
        end) is right but at the first epoch of a run continued with new settings."""
        losses = self._steps.data(1)[self._steps.data(0) <= step]
        epochs = np.stack([self._epochs.data(column) for column in range(5)], axis=1)
        epochs = epochs[epochs[:, 0] <= step] / [1, 1, 1, 100, 100]
        return losses.copy(), epochs

    @property
    def epoch_count(self) -> int:
        return self._epochs.size

    # ------------------------------------------------------------------ display

    @QtCore.Slot(bool)
    def set_log_y(self, on: bool) -> None:
        plot = self.loss_plot.getPlotItem()
        if self.log_y.isChecked() != on:
            self.log_y.setChecked(on)  # whose toggled signal comes back here
            return
        plot.setLogMode(y=on)  # which also turns auto-range on for both axes
        self._frame_steps()
        self.loss_range.fit(force=True)
        if self._steps.size == 0 and not self._overlays:  # no curve to fit: the empty plot's range for this axis
            self._frame_empty_loss_plot()

    # File → Export data: this view's CSV has every step; the plots' own curves (what pyqtgraph
    # draws) hold only the peak envelope of a long run, so app.export does not write those.
    curves_in_own_csv = True

    def export_csv(self, path: str) -> None:
        """Every step's loss and smoothed loss, every epoch's metrics and the overlaid runs, as
        ``<name> x, <name> y`` column pairs (app.export.write_curves_csv), as the plots draw them: the
        epoch's mean training loss in two rows, x the step the epoch began after and its last step (the
        bar's ends); the validation loss at the epoch's last step; the accuracies at the epoch's number."""
        if self._steps.size == 0 and not self._overlay_data:
            raise ValueError("nothing to export yet: no training step has run")
        steps, epochs = self._steps.data(0), self._epochs.data(0)
        numbers = np.arange(1, self._epochs.size + 1, dtype=np.float64)
        curves = [("loss per step", steps, self._steps.data(1)), ("smoothed", steps, self._steps.data(2)),
                  ("train loss (mean over the epoch)", *self._epoch_bars()),
                  ("val loss (end of epoch)", epochs, self._epochs.data(2)),
                  ("train accuracy % (mean over the epoch)", numbers, self._epochs.data(3)),
                  ("val accuracy % (end of epoch)", numbers, self._epochs.data(4))]
        curves += [(name, *data) for name, data in self._overlay_data.items()]
        write_curves_csv(path, [(name, x, y) for name, x, y in curves if len(x)])

    def export_png(self, path: str) -> None:
        """Write both plots, stacked, to a PNG file (rendered by pyqtgraph's ImageExporter)."""
        images = [ImageExporter(plot.getPlotItem()).export(toBytes=True)
                  for plot in (self.loss_plot, self.epoch_plot)]
        width = max(image.width() for image in images)
        height = sum(image.height() for image in images)
        combined = QtGui.QImage(width, height, QtGui.QImage.Format.Format_ARGB32)
        combined.fill(QtGui.QColor("black"))
        painter = QtGui.QPainter(combined)
        top = 0
        for image in images:
            painter.drawImage(0, top, image)
            top += image.height()
        painter.end()
        save_png(combined, path)
