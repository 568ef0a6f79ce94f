"""What the views' pyqtgraph plots share: a value axis that labels a log or linear scale without piling its labels up,
an axis of steps or epochs that numbers whole ones only, a legend in a row above the data area instead of over
the curves, legend samples in their curves' colours from the start, and the empty loss plot's range."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui

LEGEND_INSET = 6  # px between a plot's legend and its right edge
# The empty loss plot's y range: 0..1 on a linear axis; on a log axis (log10 units) 0.1 to 10, a decade either
# side of 1, where a cross-entropy loss starts (ln 10 = 2.3) and falls, with a fifth of a decade to spare: pyqtgraph
# leaves a tick at the very end of the range unlabelled. The linear range read 1 to 10 there, labelled 2 … 9 only.
EMPTY_LOSS_RANGE = (0.0, 1.0)
EMPTY_LOG_LOSS_RANGE = (-1.2, 1.2)
# Which values between two powers of ten a log axis labels, the most first (see LogFriendlyAxis).
IN_DECADE_LABELS = ((2, 3, 4, 5, 6, 7, 8, 9), (2, 3, 5), (2, 5), ())


def empty_loss_range(log_y: bool) -> tuple[float, float]:
    """The y range (in the axis' own units: log10 on a log axis) of a loss plot without curves."""
    return EMPTY_LOG_LOSS_RANGE if log_y else EMPTY_LOSS_RANGE


def nice_spacing(at_least: float) -> float:
    """The smallest of 1, 2 and 5 times a power of ten that is at least ``at_least`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(at_least))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= at_least * (1 - 1e-9))


class LogFriendlyAxis(pg.AxisItem):
    """A value axis that, on a log scale, labels the powers of ten and only those values between them
    (IN_DECADE_LABELS) whose labels have room; the others keep a shorter tick without a label. pyqtgraph labels
    all of 2 … 9 or none, and over a decade or two of loss they piled up below each power of ten, "0.9" over "0.8"
    over "0.7"."""

    def __init__(self, orientation: str) -> None:
        super().__init__(orientation)
        self.setStyle(maxTextLevel=1)  # levels: powers of ten, the values between that have room, the rest

    def _label_height(self) -> float:
        return QtGui.QFontMetricsF(self.style["tickFont"] or self.font()).height()

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802, N803 (pyqtgraph naming)
        """On a linear scale, only spacings whose labels do not touch: pyqtgraph picks them from the axis' length
        alone, and at 17 pt the accuracy plot's 100 px held six labels, 0 to 100, on top of each other."""
        levels = super().tickSpacing(minVal, maxVal, size)
        if self.logMode or maxVal <= minVal or size <= 0 or self.orientation not in ("left", "right"):
            return levels
        least = self._label_height() * (maxVal - minVal) / size  # the spacing that puts labels a line apart
        roomy = [(spacing, offset) for spacing, offset in levels if spacing >= least]
        return roomy or [(nice_spacing(least), 0)]

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802, N803 (pyqtgraph naming)
        levels = super().logTickValues(minVal, maxVal, size, stdTicks)
        spacing, values = levels[-1]
        if spacing is not None or maxVal <= minVal:  # three decades or more: whole decades only
            return levels
        # pyqtgraph's last level then holds every tick of the range (1 … 9 times each power of ten)
        values = np.asarray(values)
        mantissas = np.rint(10.0 ** (values % 1))
        pixels_per_decade = size / (maxVal - minVal)
        label_height = self._label_height()

        def has_room(between):
            return np.diff(np.log10([1, *between, 10])).min() * pixels_per_decade >= label_height

        labelled = np.isin(mantissas, next((m for m in IN_DECADE_LABELS if has_room(m)), ()))
        return [(1.0, list(values[mantissas == 1])), (None, list(values[labelled])),
                (None, list(values[~labelled & (mantissas != 1)]))]


class WholeNumberAxis(pg.AxisItem):
    """An axis of a count (steps, epochs): ticks at whole numbers only, labelled without decimals. pyqtgraph
    divides any range, and the empty plots' frame, 0 to 1, read "step 0.1 … 0.9" and "epoch 0.1 … 0.9"; it now
    has ticks at its ends alone, where pyqtgraph draws no label (they would stick out of the axis)."""

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 (pyqtgraph naming)
        # a spacing of at least 1 also makes tickStrings write the whole numbers without decimals ("3", not "3.0")
        return [(max(spacing, 1.0), [float(round(v)) for v in values if abs(v - round(v)) < 1e-6])
                for spacing, values in super().tickValues(minVal, maxVal, size)]


def legend_above_data(item: pg.PlotItem) -> pg.LegendItem:
    """Give ``item`` a legend in its top margin, at its right end, in as many columns as fit above the data area
    (all entries in one row when there is room, more rows in a narrow plot); the margin grows to its height.

    Inside the data area any corner had curves running under it: at 1024x700 the Learning lab's 150 px plots
    (run B's loss on a log scale) and the Training tab's accuracy plot (its last epochs, under the bottom right
    legend)."""
    legend = item.addLegend(offset=None)
    legend.layout.setContentsMargins(0, 0, 0, 0)  # its 9 px margins would make a row 40 px tall, not 22
    legend.setParentItem(item)  # out of the view box, into the plot's top margin
    legend.anchor(itemPos=(1, 0), parentPos=(1, 0), offset=(-LEGEND_INSET, 0))
    # Room above the axes for the legend, and at least half a tick label: pyqtgraph centres each label on its
    # tick, and a tick at the top of the range (an empty plot's "1.0", "110" after a run) lost its upper half at
    # the widget's edge. Padding the range cannot prevent that: some range always puts a tick at its top.
    left, top, right, bottom = item.layout.getContentsMargins()
    half_label = math.ceil(QtGui.QFontMetricsF(item.getAxis("left").font()).height() / 2)
    fitting = False

    def fit_legend():  # its entries and the plot's width decide the columns, and they its height
        nonlocal fitting
        if fitting:  # re-entered by the legend's own geometry change while its columns are tried
            return
        fitting = True
        try:
            # Beside the left axis, not above it: the axis' top label reaches into the margin.
            room = item.width() - item.getAxis("left").width() - LEGEND_INSET
            for columns in range(max(len(legend.items), 1), 0, -1):
                legend.setColumnCount(columns)
                if columns == 1 or legend.layout.preferredWidth() <= room:
                    break
            item.layout.setContentsMargins(left, top + max(half_label, math.ceil(legend.height())), right, bottom)
        finally:
            fitting = False

    legend.geometryChanged.connect(fit_legend)  # entries added or removed
    item.geometryChanged.connect(fit_legend)  # the plot resized
    fit_legend()
    return legend


def style_symbols_now(curve: pg.PlotDataItem) -> None:
    """Give a curve's markers its symbol pen, brush and size before it has points. pyqtgraph styles them when it
    first has points to draw, and until then the legend's sample showed them in its default grey-blue."""
    curve.scatter.setPen(curve.opts["symbolPen"])
    curve.scatter.setBrush(curve.opts["symbolBrush"])
    curve.scatter.setSize(curve.opts["symbolSize"])
