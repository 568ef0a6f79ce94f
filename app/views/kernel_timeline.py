"""Kernel timeline view: scrub or replay how the conv kernels formed during training.

Reads an :class:`engine.timeline.KernelTimeline` (filled on the training thread, see
docs/ARCHITECTURE.md) and shows one layer's kernels at the chosen snapshot as one mosaic ImageItem,
with the kernel view's conventions: rows = output channel (one filter each), columns = input
channel, a layer with one input channel wrapped into a near-square grid; blue < 0 < red on a
symmetric scale, white is exactly zero. By default the scale is fixed over the whole timeline, so
kernels visibly grow out of their random start instead of being renormalised at every snapshot.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.export import write_matrix_csv
from app.views.colour_scale import diverging_cmap, fmt, symmetric_levels
from app.views.images import ImagePanel, Mosaic, grid_columns
from app.views.lazy_view import LazyView
from app.views.widgets import SteadyLabel, glyph_button, model_combo, set_button_text
from engine.text import plural
from engine.timeline import KernelTimeline

PLAY_INTERVAL_MS = 120
PX_MAX = 40  # small layers (tiny8x8's 3x3 kernels) are drawn large; big ones are limited by the space
PX_MIN = 3
DRIFT_HEIGHT = 150
DRIFT_TITLE = "Change since the first snapshot, ‖w − w₀‖ / ‖w₀‖, against the step"
DRIFT_HINT = " (click to jump there)"  # on screen only: an exported frame cannot be clicked


def kernel_mosaic(shape: tuple[int, int, int, int], mosaic: Mosaic | None = None) -> tuple[Mosaic, bool]:
    """The mosaic layout for kernels ``(kh, kw, c_in, c_out)`` and whether it wraps (one input
    channel: filters in a near-square grid); reuses ``mosaic`` when it already fits."""
    kh, kw, c_in, c_out = shape
    wrap = c_in == 1
    rows, cols = (math.ceil(c_out / grid_columns(c_out)), grid_columns(c_out)) if wrap else (c_out, c_in)
    if mosaic is not None and mosaic.matches(rows, cols, kh, kw):
        return mosaic, wrap
    return Mosaic(rows, cols, kh, kw), wrap


def fill_kernels(mosaic: Mosaic, wrap: bool, w: np.ndarray) -> np.ndarray:
    """Copy kernels ``w: (kh, kw, c_in, c_out)`` into ``mosaic``; returns its buffer."""
    if wrap:
        return mosaic.fill_tiles(w[:, :, 0, :].transpose(2, 0, 1))     # (c_out, kh, kw)
    return mosaic.fill_grid(w.transpose(3, 0, 2, 1))                    # (c_out, kh, c_in, kw)


class KernelTimelineView(LazyView):
    """Layer box, snapshot slider with the step number, play/replay, and the kernel mosaic."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("kernelTimeline")
        self.setToolTip("The kernels as they were at earlier training steps. Scrub or replay to watch random "
                        "noise turn into edge and stroke detectors, and see which layers settle first.")
        self._timeline = None
        self._drawn = None        # (timeline version, layer, index, fixed scale) last drawn
        self._mosaic: Mosaic | None = None
        self._wrap = False
        self._scale_cache: dict[tuple[int, str], float] = {}
        self.shown_step: int | None = None
        self.shown_kernels: np.ndarray | None = None  # (kh, kw, c_in, c_out) copy of what is drawn

        self.layer = model_combo()
        self.layer.setToolTip("Which conv layer's kernels to show.")
        self.layer.setEnabled(False)  # empty until a timeline brings its layers
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setObjectName("kernelTimelineSlider")
        self.slider.setToolTip("Drag to move through the recorded snapshots, oldest on the left.")
        self.slider.setEnabled(False)
        self.step_label = SteadyLabel()  # changes with every snapshot shown, while the plots repaint
        self.step_label.setObjectName("kernelTimelineStep")
        self.step_label.reserve("step 9999999   (snapshot 9999 of 9999)")
        self.play = glyph_button("▶ Play")
        self.play.setObjectName("kernelTimelinePlay")
        self.play.setToolTip("Replay the snapshots from the one shown (from the start when at the end).")
        self.play.setCheckable(True)
        self.follow = QtWidgets.QCheckBox("Follow newest")
        self.follow.setChecked(True)
        self.follow.setToolTip("Jump to each new snapshot as training records it.")
        self.fixed = QtWidgets.QCheckBox("One scale for the whole timeline")
        self.fixed.setChecked(True)
        self.fixed.setToolTip("On: every snapshot uses the layer's largest |w| over the timeline, so growing "
                              "weights look stronger. Off: each snapshot is scaled to its own largest |w|.")
        self.caption = QtWidgets.QLabel()
        self.caption.setWordWrap(True)
        self.make_readout("Hover over a kernel to read its weights.")

        self.plot = self.make_plot()
        self.panel = ImagePanel(self.plot.ci, cmap=diverging_cmap(), bar_label="weight", name="kernels")
        self.plot.ci.nextRow()
        self.drift_plot = self.plot.ci.addPlot()
        self.drift_plot.setObjectName("kernel drift")  # File → Export data names its picture after it
        self.drift_plot.setFixedHeight(DRIFT_HEIGHT)
        self._set_drift_title(hint=True)
        self.drift_plot.setMouseEnabled(x=False, y=False)
        self.drift_plot.hideButtons()
        # No grid and no auto-range: pyqtgraph paints grid lines with each axis (~15 ms a repaint on a
        # loaded machine) and an auto-ranged view repaints a second time after every new point.
        self.drift_plot.disableAutoRange()
        self.drift_plot.setToolTip("Relative distance of the kernels from the first snapshot. Steep parts "
                                   "are where the layer is learning fast; a flat line means it has settled "
                                   "(or stopped learning).")
        self.drift_curve = self.drift_plot.plot(pen=pg.mkPen("#7fc4ff", width=1), symbol="o", symbolSize=4,
                                                symbolBrush="#7fc4ff", symbolPen=None)
        self.drift_marker = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#ffb347", width=1))
        self.drift_plot.addItem(self.drift_marker)
        self.plot.scene().sigMouseClicked.connect(self._mouse_clicked)
        # The plot is sized by the page stack (laid out only when first shown): fit the mosaic to it then.
        self.plot.installEventFilter(self)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(PLAY_INTERVAL_MS)
        self._timer.timeout.connect(self._advance)

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("Layer"))
        controls.addWidget(self.layer)
        controls.addWidget(self.play)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.step_label)
        options = QtWidgets.QHBoxLayout()
        options.addWidget(self.follow)
        options.addWidget(self.fixed)
        options.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addLayout(options)
        layout.addWidget(self.caption)
        # The plot only once there is something to draw: an empty mosaic and drift plot would confuse.
        self.pages = QtWidgets.QStackedWidget()
        self.pages.addWidget(QtWidgets.QWidget())
        self.pages.addWidget(self.plot)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.hover)

        self.layer.currentIndexChanged.connect(self._layer_changed)
        self.slider.valueChanged.connect(self._slider_moved)
        self.play.toggled.connect(self._play_toggled)
        self.fixed.toggled.connect(self._draw)
        self._show_empty()

    # ------------------------------------------------------------------ feeding

    def set_timeline(self, timeline) -> None:
        """Show ``timeline`` (an engine.timeline.KernelTimeline, or None to clear the view)."""
        self.play.setChecked(False)
        self._timeline = timeline
        self._drawn = None
        self._scale_cache.clear()
        self.layer.blockSignals(True)
        current = self.layer.currentText()
        self.layer.clear()
        if timeline is not None:
            self.layer.addItems(list(timeline.shapes))
            self.layer.setCurrentIndex(max(self.layer.findText(current), 0))
        self.layer.setEnabled(timeline is not None)
        self.layer.blockSignals(False)
        self._layer_changed()

    def _refresh(self) -> None:
        """New snapshots may have arrived: update the slider's range (and follow the newest)."""
        timeline = self._timeline
        if timeline is None:
            return
        count = len(timeline)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(count - 1, 0))
        if self.follow.isChecked() and not self.play.isChecked():
            self.slider.setValue(self.slider.maximum())
        self.slider.blockSignals(False)
        self.slider.setEnabled(count > 0)
        self._draw()

    # ------------------------------------------------------------------ controls

    def _layer_changed(self) -> None:
        name = self.layer.currentText()
        if self._timeline is None or not name:
            self._show_empty()
            return
        self._mosaic, self._wrap = kernel_mosaic(self._timeline.shapes[name], self._mosaic)
        mosaic = self._mosaic
        if self._wrap:
            self.panel.set_tile_ticks(mosaic, "filter (row start)", "+ column",
                                      [str(i * mosaic.cols) for i in range(mosaic.rows)],
                                      [f"+{j}" for j in range(mosaic.cols)])
        else:
            self.panel.set_tile_ticks(mosaic, "output channel", "input channel")
        self._size_panel()
        self._drawn = None
        self._refresh()

    def _slider_moved(self, _value: int) -> None:
        if not self.play.isChecked():
            self.follow.setChecked(self.slider.value() == self.slider.maximum())
        self._draw()

    def _play_toggled(self, on: bool) -> None:
        if on:
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self.follow.setChecked(False)
            self._timer.start()
            set_button_text(self.play, "⏸ Pause")
        else:
            self._timer.stop()
            set_button_text(self.play, "↻ Replay" if self.slider.value() >= self.slider.maximum() else "▶ Play")

    def _advance(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.play.setChecked(False)
            return
        self.slider.setValue(self.slider.value() + 1)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.play.setChecked(False)  # no playback timer while nobody watches
        super().hideEvent(event)

    # ------------------------------------------------------------------ drawing

    def _before_export(self) -> None:
        if self._timeline is None or len(self._timeline) == 0:
            raise ValueError("nothing to export yet: no kernel snapshot has been recorded")

    curves_in_own_csv = True  # the drift curve's numbers are in export_csv's table, every layer's

    def export_csv(self, path: str) -> None:
        """The drift of every layer, ‖w − w₀‖ / ‖w₀‖ since the first snapshot, a row per snapshot: columns
        ``step``, ``<layer> drift`` (the drift plot shows the chosen layer's). File → Export data writes
        it beside the PNGs; the plot's own CSV said only "curve 1 x, curve 1 y". ValueError before the
        first snapshot."""
        self._before_export()
        timeline = self._timeline.copy()  # one state for the steps and every layer
        write_matrix_csv(path, np.stack([timeline.drift(name) for name in timeline.shapes], axis=1),
                         [str(step) for step in timeline.steps()], [f"{name} drift" for name in timeline.shapes],
                         corner="step")

    def _show_empty(self) -> None:
        self.caption.setText("No kernel snapshots yet: while training runs, the timeline records every conv "
                             "kernel at regular steps (bounded memory: when full, every other snapshot is "
                             "dropped, so it always spans the whole run).")
        self.step_label.setText("")
        # Nothing to point at: the handle at the start, Play, and the next run's snapshots followed, not the
        # state the cleared run left (its last snapshot, "Replay", Follow newest unticked by a replay or a
        # scrub back in it, which kept a new run's timeline at its first snapshot while it trained).
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.blockSignals(False)
        self.slider.setEnabled(False)
        set_button_text(self.play, "▶ Play")
        self.follow.setChecked(True)
        self.play.setEnabled(False)
        self.pages.setCurrentIndex(0)
        self.shown_step = self.shown_kernels = None

    def _scale(self, name: str) -> float:
        key = (self._timeline.version, name)
        if key not in self._scale_cache:
            self._scale_cache = {key: self._timeline.max_abs(name)}
        return self._scale_cache[key]

    def _draw(self) -> None:
        timeline, name = self._timeline, self.layer.currentText()
        if timeline is None or not name or len(timeline) == 0 or not self.isVisible():
            if timeline is not None and len(timeline) == 0:
                self._show_empty()
            return
        key = (timeline.version, name, self.slider.value(), self.fixed.isChecked())
        if key == self._drawn:
            return
        # One read for the count and the snapshot: the training thread may have thinned the timeline
        # since the slider's range was set, and the slider's index may now be past the newest.
        shown = timeline.read(name, self.slider.value())
        if shown is None:
            self._show_empty()
            return
        if self._drawn is None or self._drawn[:2] != (shown.version, name):  # new snapshots or another layer
            self._draw_drift(timeline, name)
        self._drawn = (shown.version, *key[1:])
        scale = self._scale(name) if self.fixed.isChecked() else None
        self._draw_snapshot(name, shown.step, shown.kernels, scale)
        self.step_label.setText(f"step {shown.step}   (snapshot {shown.index + 1} of {shown.count})")
        self.play.setEnabled(shown.count > 1)
        self.caption.setText(f"{plural(shown.count, 'snapshot')}, one every {plural(timeline.stride, 'step')} "
                             f"now (thinned out "
                             f"as the run grows, capacity {timeline.capacity}). Blue = negative, white = 0, "
                             "red = positive.")

    def _draw_drift(self, timeline: KernelTimeline, name: str) -> None:
        """The drift curve of layer ``name`` over all of ``timeline``'s snapshots."""
        steps, drift = timeline.drift_curve(name)  # one read: both the same length
        steps = steps.astype(np.float64)
        self.drift_curve.setData(steps, drift, connect="finite")
        finite = drift[np.isfinite(drift)]
        self.drift_plot.setRange(xRange=(0, max(steps[-1], 1.0)),
                                 yRange=(0, max(float(finite.max()) if finite.size else 0.0, 1e-3)),
                                 padding=0.05)

    def _draw_snapshot(self, name: str, step: int, kernels: np.ndarray, scale: float | None) -> None:
        """Layer ``name``'s ``kernels`` (kh, kw, c_in, c_out) of snapshot ``step``: its mosaic and title, the
        drift plot's marker at its step. ``scale``: the colour scale's largest |w| (None: the snapshot's own)."""
        self.drift_marker.setValue(step)
        buffer = fill_kernels(self._mosaic, self._wrap, kernels)
        levels = symmetric_levels(kernels if scale is None else np.array([scale]))
        self.panel.set(buffer, levels)
        self.pages.setCurrentWidget(self.plot)
        self.shown_step, self.shown_kernels = step, kernels
        kh, kw, c_in, c_out = kernels.shape
        self.panel.set_title(f"<b>{name}</b> at step {step}: {c_out} filters × {c_in} input channel"
                             f"{'s' * (c_in > 1)}, each {kh}×{kw} — colour scale ±{fmt(levels[1])}")

    def _set_drift_title(self, hint: bool) -> None:
        self.drift_plot.setTitle(DRIFT_TITLE + DRIFT_HINT * hint, size="9pt")

    def animation_frames(self) -> "TimelineFrames":
        """The replay of the layer shown, for File → Export animation (see :class:`TimelineFrames`)."""
        return TimelineFrames(self)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        self._draw()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if watched is getattr(self, "plot", None) and event.type() == QtCore.QEvent.Type.Resize:
            self._size_panel()
        return False

    def _size_panel(self) -> None:
        if self._mosaic is None:
            return
        mh, mw = self._mosaic.shape
        avail_w = max(self.plot.width() - 170, 100)
        # Besides the drift plot: the panel's title row and axes, the layout's margins and spacing
        # (with 90 the drift plot's step labels fell 19 px below the widget's edge).
        avail_h = max(self.plot.height() - 120 - DRIFT_HEIGHT, 100)
        px = min(PX_MAX, max(PX_MIN, min(avail_w / mw, avail_h / mh)))
        self.panel.fit((mh, mw), px)
        # The view fitted the page to itself before this refit, when the bigger panel made the page's
        # minimum height exceed the view's: fit it again once the layout knows the new minimum, or
        # the drift plot's step labels stay below the edge after the window shrinks.
        QtCore.QTimer.singleShot(0, self, self._fit_page_to_view)

    def _fit_page_to_view(self) -> None:
        self.plot.ci.resize(QtCore.QSizeF(self.plot.viewport().size()))

    # ------------------------------------------------------------------ mouse

    def _mouse_clicked(self, event) -> None:
        """A click on the drift plot jumps to the snapshot nearest to the clicked step."""
        view = self.drift_plot.getViewBox()
        if self._timeline is None or not view.sceneBoundingRect().contains(event.scenePos()):
            return
        steps = self._timeline.steps()
        if len(steps):
            x = view.mapSceneToView(event.scenePos()).x()
            self.play.setChecked(False)
            self.slider.setValue(int(np.abs(steps - x).argmin()))

    def hover_text_at(self, scene_pos) -> str | None:
        pixel = self.panel.pixel_at(scene_pos)
        if pixel is None or self._mosaic is None or self.shown_kernels is None:
            return None
        where = self._mosaic.locate(*pixel)
        if where is None:
            return None
        i, j, r, c = where
        out, cin = (i * self._mosaic.cols + j, 0) if self._wrap else (i, j)
        if out >= self.shown_kernels.shape[3]:
            return None
        value = fmt(float(self.shown_kernels[r, c, cin, out]))
        return (f"{self.layer.currentText()} at step {self.shown_step}  output channel {out}  "
                f"input channel {cin}  kernel row {r} col {c}   w = {value}")


class TimelineFrames:
    """The replay of one layer's kernels as frames (app.export's FrameSource): frame i is the view's plot
    with snapshot i shown, as Play shows it (the mosaic, its title with the step, the drift plot's
    marker), on the view's colour scale. The layer, the scale and a copy of the timeline are taken at
    the first question (``frame_count`` or ``render_frame``): training goes on while an export renders,
    and its new snapshots, or the thinning of a full timeline, which renumbers them, would change the
    frames under it. The drift plot's "click to jump there" is left out of the frames. After each frame the
    view shows its own snapshot (and that hint) again."""

    fps = 1000.0 / PLAY_INTERVAL_MS  # the pace of Play on screen

    def __init__(self, view: KernelTimelineView) -> None:
        self.view = view
        self._frozen: tuple[KernelTimeline, str, float | None] | None = None

    def _source(self) -> tuple[KernelTimeline, str, float | None] | None:
        """(the copy of the timeline, the layer, the colour scale's largest |w| or None); None while the
        view has no timeline."""
        view = self.view
        if self._frozen is None and view._timeline is not None and view.layer.currentText():
            timeline = view._timeline.copy()
            name = view.layer.currentText()
            self._frozen = timeline, name, timeline.max_abs(name) if view.fixed.isChecked() else None
        return self._frozen

    def frame_count(self) -> int:
        source = self._source()
        return 0 if source is None else len(source[0])

    def render_frame(self, index: int) -> QtGui.QImage:
        timeline, name, scale = self._source()
        view = self.view
        view._set_drift_title(hint=False)
        try:
            view._draw_drift(timeline, name)
            view._draw_snapshot(name, *timeline.kernels(name, index), scale)
            # A longer title re-lays out the scene through a posted request: deliver it, or the grab
            # shows the old geometry.
            QtCore.QCoreApplication.sendPostedEvents()
            return view.plot.grab().toImage()
        finally:
            view._set_drift_title(hint=True)
            view._drawn = None  # what is drawn is no longer the view's own snapshot
            view._draw()
