"""Gradient health view: per weight layer, is it learning, and are its units alive?

Reads an :class:`engine.health.HealthMonitor` (fed on the training thread, see docs/ARCHITECTURE.md)
whenever the window pushes the display model (<= 10 Hz, only while visible) and its data changed.
One scene (``self.plot``) holds a row per weight layer: name and the activation after it, the latest
gradient norm and its sparkline, the latest update/weight ratio and its sparkline (log scales, one
y range per column over every layer, named in the column's header, so the rows compare; a zero is a
gap; a green band marks the healthy 1e-4..1e-2 range around the 1e-3 rule of thumb, named in a line
above the scene, which also says where that range sits once a schedule has lowered the learning rate),
and bars for the share of dead ReLU units and of saturated tanh/arctan/sigmoid values.
A red line above lists warnings: a layer that stopped learning, a run that diverged.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.export import write_matrix_csv
from app.views.colour_scale import fmt
from app.views.images import SteadyLabelItem
from app.views.lazy_view import LazyView
from app.views.tones import ToneLabel, span
from app.views.widgets import SteadyLabel, signed

HEALTHY_RATIO = (1e-4, 1e-2)
POINT_AT = " Point at a column for what it measures."  # the band legend's last sentence
# The update/weight column's y range (log10): two decades either side of the healthy band, from "frozen"
# (health.RATIO_FLOOR) to "violent"; it grows by whole decades only for values beyond it.
RATIO_DECADES = (-6, 0)
MIN_GRAD_DECADES = 2  # the gradient column spans at least this many decades (whole ones)
GRAD_COLOUR = "#7fc4ff"
RATIO_COLOUR = "#ffb347"
DEAD_COLOUR = "#e05d5d"
SATURATED_COLOUR = "#c89bff"
# What each layer's row shows, as File → Export data's CSV names it: (HealthMonitor.history key, column).
SHOWN = (("grad_norm", "gradient norm"), ("update_ratio", "update/weight ratio"),
         ("dead_share", "dead ReLU share"), ("saturated_share", "saturated share"))

TIPS = {
    "view": "How well each weight layer is learning. Gradients that shrink to zero, updates that are "
            "tiny next to the weights, dead ReLUs or saturated units can each mean a layer is learning "
            "little or nothing. The view warns in red when a layer's updates stall or the run diverges.",
    "grad": "Size ‖g‖ of the gradient backpropagation handed to the optimiser for this layer's weights and "
            "biases at the last step (log scale; before momentum and weight decay). If it falls towards zero, "
            "almost no error signal reaches the layer.",
    "ratio": "How far one step moved the layer, as a fraction of its weights' size (log scale). Around "
             "1e-3 is healthy (green band) at the peak learning rate; the ratio scales with the rate, so a "
             "decaying schedule brings it below the band, as intended. Below about 1e-6 the layer is frozen, "
             "unless the learning-rate schedule has brought the rate down to 1% of its peak or less (the end "
             "of a cosine or step schedule: intended, and never warned about); near 1e-1 the steps are "
             "violent and training may blow up.",
    "dead": "Share of the units after this layer's ReLU (conv channels or dense neurons) that were "
            "never positive anywhere in the last batch. A dead unit passes no gradient back, so its "
            "weights get no update from that batch; a unit dead on every batch stops learning for good.",
    "saturated": "Share of tanh/arctan/sigmoid outputs beyond 97% of the way to their limits (|tanh| > 0.97, "
                 "|arctan| > 0.97·π/2, sigmoid outside 0.015 … 0.985). There the slope is "
                 "almost flat, so little gradient flows through: large weights saturate these units. "
                 "An output layer (a sigmoid) of a network that is sure of its answers, or a hidden "
                 "layer of a well-trained one, is expected to saturate: a problem only while the loss "
                 "is still high.",
}


def _log_values(values: np.ndarray) -> np.ndarray:
    """log10 of values (n,) for a log-scale curve, NaN (a gap) where a value is 0 or not finite: a log scale
    has no place for 0 (drawn at 1e-12, a diverged run's zero gradients dove every curve to the bottom)."""
    shown = np.isfinite(values) & (values > 0)
    return np.log10(np.where(shown, values, 1.0), where=shown, out=np.full(values.shape, np.nan))


def _decades(values, least: tuple[int, int] | None = None, span: int = 1) -> tuple[int, int] | None:
    """Whole decades (log10 low, log10 high) holding every finite positive value in ``values`` (any shape)
    and the decades ``least``, ``span`` decades wide at least; None when there is nothing to hold.
    Whole decades: the shared y range of a column (and its header) changes rarely, not with every step."""
    values = np.asarray(values, dtype=np.float64)
    shown = values[np.isfinite(values) & (values > 0)]
    if shown.size:
        low, high = math.floor(math.log10(shown.min())), math.ceil(math.log10(shown.max()))
        if least:
            low, high = min(low, least[0]), max(high, least[1])
    elif least:
        low, high = least
    else:
        return None
    missing = span - (high - low)
    if missing > 0:  # widened around the data: half above, half below
        high += (missing + 1) // 2
        low -= missing // 2
    return low, high


def _power_text(exponent: int) -> str:
    """'1e−4' for -4, with a true minus sign as the value labels have."""
    return f"1e{exponent}".replace("-", "\u2212")


def _decades_text(decades: tuple[int, int] | None) -> str:
    """'1e−4 … 1e0, log' for a column header; 'log' before there are values."""
    if decades is None:
        return "log"
    return f"{_power_text(decades[0])} … {_power_text(decades[1])}, log"


class _Sparkline(QtWidgets.QGraphicsWidget):
    """A small log-scale curve over the steps, without axes, on the y range it is given: the same for
    every row of a column (named in the column's header), so the rows compare (a layer whose gradient
    is 10x smaller is a decade lower); over the healthy band when it has one.

    One path painted by Qt, not a pyqtgraph PlotItem: 28 of those (each a view box, four axes and a
    signal cascade on every range change) made this view's refresh and repaint the slowest in the app."""

    def __init__(self, colour: str, band: tuple[float, float] | None, height: int) -> None:
        super().__init__()
        self.setMinimumSize(48, height)  # with the other columns, fits a 1024-px screen with the dock open
        self.setMaximumHeight(height)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)
        self.band = None if band is None else (math.log10(band[0]), math.log10(band[1]))
        self._pen = QtGui.QPen(QtGui.QColor(colour), 1)
        self._pen.setCosmetic(True)  # 1 px wide whatever the data-to-pixel scale
        self._band_brush = QtGui.QBrush(QtGui.QColor(60, 170, 60, 95))  # 50 was hard to see on black
        self._steps = self._logs = np.empty(0)
        self._path = QtGui.QPainterPath()
        self._x_range, self._y_range = (0.0, 1.0), (-1.0, 1.0)

    def set(self, steps: np.ndarray, values: np.ndarray, decades: tuple[int, int]) -> None:
        """steps, values: (n,); zeros and NaN (or infinite) values are gaps.
        ``decades``: the y range, log10 (low, high), shared by the column; the x range spans the steps."""
        logs = _log_values(values)
        self._steps, self._logs = steps, logs
        if steps.size:
            self._x_range = _padded(float(steps[0]), float(steps[-1]) + (steps[-1] == steps[0]), 0.02)
        self._y_range = _padded(float(decades[0]), float(decades[1]), 0.03)  # a line at the edge stays whole
        self._path = pg.arrayToQPath(steps, logs, connect="finite")
        self.update()

    def curve_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, log10 values) as drawn, both (n,)."""
        return self._steps, self._logs

    @property
    def y_range(self) -> tuple[float, float]:
        """The drawn y range, log10 (low, high), with its margin."""
        return self._y_range

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        rect = self.rect().adjusted(6, 2, -6, -2)  # apart from the texts beside it
        (x0, x1), (y0, y1) = self._x_range, self._y_range
        to_pixels = QtGui.QTransform()  # data (step, log10 value) -> this item, y upwards
        to_pixels.translate(rect.left(), rect.bottom())
        to_pixels.scale(rect.width() / (x1 - x0), -rect.height() / (y1 - y0))
        to_pixels.translate(-x0, -y0)
        painter.setClipRect(rect)
        if self.band:
            band = QtCore.QRectF(x0, self.band[0], x1 - x0, self.band[1] - self.band[0])
            painter.fillRect(to_pixels.mapRect(band), self._band_brush)
        painter.setPen(self._pen)
        painter.setTransform(to_pixels, True)
        painter.drawPath(self._path)


def _padded(low: float, high: float, fraction: float) -> tuple[float, float]:
    """The range widened by ``fraction`` of its span on each side (pyqtgraph's ``padding``)."""
    margin = (high - low) * fraction
    return low - margin, high + margin


def _cache_paint(item: QtWidgets.QGraphicsItem) -> None:
    """Repaint ``item`` from a pixmap of its last paint until it changes: rendering text and the
    band's Python paint were a third of every repaint of this view, most of them unchanged."""
    item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)


def _set_text(label: pg.LabelItem, html: str) -> None:
    """Change a label only when its text changed: each setText lays out its HTML again and repaints it."""
    if label.text != html:
        label.setText(html)


@dataclass
class _Row:
    """The scene items of one layer's row."""

    name: pg.LabelItem
    grad_value: pg.LabelItem
    grad: _Sparkline
    ratio_value: pg.LabelItem
    ratio: _Sparkline
    dead: "_ShareBar"
    saturated: "_ShareBar"


class _ShareBar(QtWidgets.QGraphicsWidget):
    """A horizontal 0-100% bar with its percentage (NaN: "n/a"): a grey track, the bar over it and
    the text, plain items painted by Qt alone (as PlotItems they were a third of this view's repaint).
    ``width`` wide when there is room, down to ``MIN_WIDTH`` in a narrow window."""

    MIN_WIDTH = 60  # "100%" still fits (the column is as wide as its header anyway)

    def __init__(self, colour: str, width: int, height: int) -> None:
        super().__init__()
        self._bar_rect = QtCore.QRectF(0, 0.2 * height, width, 0.6 * height)
        self.track = self._rect(QtGui.QColor(80, 80, 80, 90))
        self.track.setRect(self._bar_rect)
        self.bar = self._rect(QtGui.QColor(colour))
        self.text = QtWidgets.QGraphicsSimpleTextItem(self)
        self.text.setBrush(QtGui.QColor("white"))
        _cache_paint(self.text)
        self.set(math.nan)
        self.setMinimumSize(self.MIN_WIDTH, height)
        self.setPreferredSize(width, height)
        self.setMaximumSize(width, height)

    def _rect(self, colour: QtGui.QColor) -> QtWidgets.QGraphicsRectItem:
        item = QtWidgets.QGraphicsRectItem(self)
        item.setBrush(colour)
        item.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        return item

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._bar_rect.setWidth(event.newSize().width())
        self.track.setRect(self._bar_rect)
        self.set(self.share)

    def set(self, share: float) -> None:
        self.share = share
        missing = math.isnan(share)
        bar = QtCore.QRectF(self._bar_rect)
        bar.setWidth(0.0 if missing else share * bar.width())
        self.bar.setRect(bar)
        text = "n/a" if missing else f"{100 * share:.0f}%"
        if text != self.text.text():  # a new text is laid out and cached again
            self.text.setText(text)
            self.text.setPos(6, self._bar_rect.center().y() - self.text.boundingRect().height() / 2)


class GradientHealthView(LazyView):
    """Live per-layer gradient health of the current training run (see the module doc)."""

    # One refresh (14 sparklines, 14 value labels, 14 bars) and its repaints cost ~9 ms (median) on a
    # 2-core machine while VGG-7 trains (38 ms when the sparklines and bars were pyqtgraph plots): at
    # most a few times a second, plenty for curves spanning the whole run, and little GUI time.
    MAX_DUTY = 0.04

    ROW_HEIGHT = 46
    HEADER_HEIGHT = 26

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gradientHealthView")
        self.setToolTip(TIPS["view"])
        self._monitor = None
        self._drawn_version = None
        self._rows: dict[str, _Row] = {}
        self._headers: dict[str, pg.LabelItem] = {}  # HealthMonitor.history key -> its column's header

        self.warning = ToneLabel(objectName="healthWarning")
        self.warning.setWordWrap(True)
        self.warning.set_tone("error", bold=True)
        self.warning.setToolTip("Problems found in the run: a layer whose weights stopped changing, or "
                                "a loss that blew up.")
        self.warning.hide()
        self.status = SteadyLabel(lines=2)  # "After step N…": a new text with every refresh
        # The band said what it meant only in the sparklines' tooltip: a learner saw green behind the curves and
        # no reason. A line of its own, set once (a header cell in the scene widened its column by 160 px,
        # past a 1024-px screen's width).
        low, high, thumb = (_power_text(round(math.log10(v))) for v in (*HEALTHY_RATIO, 1e-3))
        self._legend_text = (
            f"The green band behind the update / weight curves is the healthy range, {low} … {high} (around {thumb} "
            "is the rule of thumb). The ratio follows the learning rate: with a decaying schedule (cosine, step) "
            "it sinks below the band as the rate falls, as expected. Saturated tanh/arctan units are normal once "
            "the loss is low.")
        self.band_legend = QtWidgets.QLabel(self._legend_text + POINT_AT, objectName="healthBandLegend")
        self.band_legend.setWordWrap(True)
        self.plot = self.make_plot()
        self.plot.ci.setSpacing(2)
        self.plot.setToolTip(TIPS["view"])
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)  # no focus frame: not a Tab stop
        scroll.setWidget(self.plot)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.warning)
        layout.addWidget(self.status)
        layout.addWidget(self.band_legend)
        layout.addWidget(scroll, 1)
        self._show_status()
        self.plot.hide()  # until there is a monitor to show
        self.band_legend.hide()

    # ------------------------------------------------------------------ feeding

    def set_monitor(self, monitor) -> None:
        """Show ``monitor`` (an engine.health.HealthMonitor, or None to clear the view)."""
        self._monitor = monitor
        self._drawn_version = None
        self._build_rows([] if monitor is None else monitor.layers,
                         {} if monitor is None else monitor.activations)
        self._request_refresh()

    def _refresh(self) -> None:
        monitor = self._monitor
        if monitor is None:
            self.warning.hide()
            self._show_status()
            self.plot.hide()
            self.band_legend.hide()
            return
        self.plot.show()
        self.band_legend.show()
        if monitor.version == self._drawn_version:
            return
        self._drawn_version = monitor.version
        history = monitor.history()
        steps = history["step"].astype(np.float64)
        latest = monitor.latest()
        rows = {r.name: r for r in latest[1]} if latest else {}
        # one y range per column, over every layer's values: the rows compare
        decades = {"grad_norm": _decades(history["grad_norm"], span=MIN_GRAD_DECADES),
                   "update_ratio": _decades(history["update_ratio"], least=RATIO_DECADES)}
        headers = {key: self._header_html(key, value) for key, value in decades.items()}
        if any(self._headers[key].text != text for key, text in headers.items()):  # a new decade: rare
            for key, text in headers.items():
                _set_text(self._headers[key], text)
            self._fit_width()  # a longer range in a header widens its columns
        shared = {key: value or (-1, 1) for key, value in decades.items()}  # (-1, 1): nothing measured yet
        for i, name in enumerate(monitor.layers):
            row = self._rows[name]
            stats = rows.get(name)
            for spark, label, key in ((row.grad, row.grad_value, "grad_norm"),
                                      (row.ratio, row.ratio_value, "update_ratio")):
                values = history[key][:, i]
                spark.set(steps, values, shared[key])
                _set_text(label, self._value_html(getattr(stats, key) if stats else math.nan, values))
            row.dead.set(stats.dead_share if stats else math.nan)
            row.saturated.set(stats.saturated_share if stats else math.nan)
        warnings = monitor.warnings()
        stalled = {w.layer for w in warnings if w.layer}
        for name, row in self._rows.items():
            _set_text(row.name, self._name_html(name, monitor.activations[name], name in stalled))
        # a divergence the run went on from is history: said in grey, not as a red problem
        self.warning.setText("<br>".join(span(self, "muted", html.escape(w.message)) if w.kind == "went_on"
                                         else f"⚠ {html.escape(w.message)}" for w in warnings))
        self.warning.setVisible(bool(warnings))
        self._show_status(latest[0] if latest else None)
        legend = self._legend_text + self._rate_text(monitor.lr_share()) + POINT_AT
        if legend != self.band_legend.text():
            self.band_legend.setText(legend)

    @staticmethod
    def _rate_text(share: float | None) -> str:
        """A sentence on where the band sits now that a schedule has lowered the rate (to 5% steps, so the text
        changes rarely); empty near the peak rate or when the rate is unknown."""
        if share is None or share > 0.9:
            return ""
        shown = max(round(20 * share) / 20, 0.01)
        low, high = (fmt(shown * v) for v in HEALTHY_RATIO)
        return (f" Now the rate is at {100 * shown:.0f}% of its peak, so healthy ratios are that much smaller: "
                f"about {low} … {high}.")

    def _before_export(self) -> None:
        if self._monitor is None or not self._monitor.latest():
            raise ValueError("nothing to export yet: no training step has been measured")

    def export_csv(self, path: str) -> None:
        """Every step the monitor holds (those the sparklines draw), a row each: per layer its gradient
        norm, update/weight ratio and the shares of dead and saturated units (the bars show the last
        row's). File → Export data writes this beside the PNG: the sparklines and bars paint themselves,
        so app.export finds no plot in the scene to take numbers from. ValueError before the first step."""
        self._before_export()
        monitor = self._monitor
        history = monitor.history()  # {"step": (n,), key: (n, layers)}
        values = np.stack([history[key][:, i] for i in range(len(monitor.layers)) for key, _ in SHOWN], axis=1)
        write_matrix_csv(path, values, [str(step) for step in history["step"]],
                         [f"{layer} {column}" for layer in monitor.layers for _, column in SHOWN], corner="step")

    # ------------------------------------------------------------------ building

    @staticmethod
    def _value_html(value: float, history: np.ndarray) -> str:
        """The latest value, and in grey the range of the sparkline ``history: (n,)`` beside it."""
        text = f"<span style='color:#ffffff'>{'—' if math.isnan(value) else fmt(value)}</span>"
        finite = history[np.isfinite(history)]
        if finite.size:
            text += (f"<br><span style='color:#999999; font-size:8pt'>range {signed(finite.min(), '.2g')} … "
                     f"{signed(finite.max(), '.2g')}</span>")
        return text

    @staticmethod
    def _name_html(name: str, activation: str | None, stalled: bool) -> str:
        colour = "#ff5555" if stalled else "#ffffff"
        after = f"→ {activation}" if activation else "(output)"
        return (f"<span style='color:{colour}'><b>{name}</b></span><br>"
                f"<span style='color:#aaaaaa'>{after}</span>")

    def _show_status(self, step: int | None = None) -> None:
        if self._monitor is None:
            text = "No training run yet: start training to see how each layer learns."
        elif step is None:
            text = "Waiting for the first training step…"
        else:
            every = self._monitor.stride
            sampled = "every step" if every == 1 else f"every {every} steps (older history thinned out)"
            text = (f"After step {step}. Sparklines span the whole run, measured {sampled}; "
                    "log scales (a zero leaves a gap; the value beside it says 0).")
        self.status.setText(text)

    HEADERS = {"grad_norm": "‖gradient‖", "update_ratio": "update / weight"}

    @classmethod
    def _header_html(cls, key: str, decades: tuple[int, int] | None) -> str:
        """A sparkline column's header with its shared y range, e.g. '‖gradient‖ (1e−4 … 1e0, log)'."""
        return f"<b>{cls.HEADERS[key]}</b> <span style='color:#aaaaaa'>({_decades_text(decades)})</span>"

    def _header(self, text: str, tip: str, col: int, colspan: int = 1) -> pg.LabelItem:
        label = self.plot.ci.addLabel(text, row=0, col=col, colspan=colspan, justify="left")
        label.setToolTip(tip)
        _cache_paint(label.item)
        return label

    def _sparkline(self, row: int, col: int, colour: str, tip: str, band: tuple | None = None) -> _Sparkline:
        spark = _Sparkline(colour, band, self.ROW_HEIGHT)
        spark.setToolTip(tip)
        self.plot.ci.addItem(spark, row=row, col=col)
        return spark

    def _label(self, html: str, row: int, col: int, width: int) -> SteadyLabelItem:
        label = SteadyLabelItem(html, width, self.ROW_HEIGHT, fixed=True, justify="left")
        _cache_paint(label.item)
        self.plot.ci.addItem(label, row=row, col=col)
        return label

    def _build_rows(self, layers: list[str], activations: dict) -> None:
        ci = self.plot.ci
        ci.clear()
        self._rows, self._headers = {}, {}
        if not layers:
            self.plot.setMinimumSize(0, 0)  # the last model's columns no longer hold the page open
            return
        # the sparkline columns' headers span their value label too: the range they name fits there
        self._header("<b>layer</b>", TIPS["view"], 0)
        for col, key, tip in ((1, "grad_norm", "grad"), (3, "update_ratio", "ratio")):
            self._headers[key] = self._header(self._header_html(key, None), TIPS[tip], col, colspan=2)
        self._header("<b>dead ReLUs</b>", TIPS["dead"], 5)
        self._header("<b>saturated</b>", TIPS["saturated"], 6)
        for r, name in enumerate(layers, start=1):
            label = self._label(self._name_html(name, activations[name], False), r, 0, 90)
            grad_value = self._label("—", r, 1, 140)
            grad = self._sparkline(r, 2, GRAD_COLOUR, TIPS["grad"])
            ratio_value = self._label("—", r, 3, 140)
            ratio = self._sparkline(r, 4, RATIO_COLOUR, TIPS["ratio"], band=HEALTHY_RATIO)
            bars = []
            for col, colour, key in ((5, DEAD_COLOUR, "dead"), (6, SATURATED_COLOUR, "saturated")):
                bar = _ShareBar(colour, 150, self.ROW_HEIGHT)
                bar.setToolTip(TIPS[key])
                ci.addItem(bar, row=r, col=col)
                bars.append(bar)
            self._rows[name] = _Row(label, grad_value, grad, ratio_value, ratio, *bars)
        layout = ci.layout
        for col in (2, 4):
            layout.setColumnStretchFactor(col, 1)
        layout.setRowMaximumHeight(0, self.HEADER_HEIGHT)  # every row is fixed: spare height stays below
        self.plot.setMinimumHeight((len(layers) + 1) * (self.ROW_HEIGHT + 6) + 20)
        self._fit_width()

    def _fit_width(self) -> None:
        """The scene's layout cannot widen the widget: narrower than its columns, it scrolls sideways
        (its last columns were cut off without a scroll bar)."""
        ci = self.plot.ci
        ci.layout.invalidate()
        self.plot.setMinimumWidth(int(ci.effectiveSizeHint(QtCore.Qt.SizeHint.MinimumSize).width()) + 2)

    # ------------------------------------------------------------------ read back (tests)

    def row(self, name: str) -> _Row:
        return self._rows[name]
