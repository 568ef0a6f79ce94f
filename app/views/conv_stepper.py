"""Conv stepper (issue 6): one convolution, forward and backward, replayed number by number.

The frames come from ``engine.trace`` (seed 001's derivation: z = a ⊛ w + b; δ dilated for the
stride, padded with k−1 zeros, convolved with the kernel rotated by 180° to give ∇a; ∇w = padded a ⊛
dilated δ; ∇b = Σ δ). The view's parts, one module each:

- ``conv_stepper_sources``: where the numbers come from — seed 001's worked examples, a custom
  convolution (sizes, stride, padding, channels, random or typed values) and the live model (a conv layer
  of the display model on one sample, with the real δ of that sample's loss, computed on demand by
  ``engine.trace.live_conv_trace``);
- ``conv_stepper_scene``: one frame turned into a *scene* — the grids of that stage, what is read and
  written — with its words from ``conv_stepper_text`` (stage titles, explanations, formulas);
- ``conv_stepper_canvas``: the scene laid out and painted, the same way on screen and into a QImage
  (:meth:`ConvStepper.render_frame`, for exporting the animation); the grids by ``stepper_grid``.

This module holds the view: its controls, the playlist of frames, navigation and playback.
"""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.conv_stepper_canvas import StepperCanvas, compose, paint_composition
from app.views.conv_stepper_scene import Scene, SceneBuilder
from app.views.conv_stepper_sources import CustomPanel, LivePanel, WorkedPanel
from app.views.conv_stepper_text import STAGE_SHORT
from app.views.stepper_grid import BACKGROUND
from app.views.tones import span
from app.views.widgets import DecimalBox, WrapRow, controls_row, model_combo
from engine.trace import STAGES, ConvTrace, Frame


class ConvStepper(QtWidgets.QWidget):
    """The conv stepper view (objectName ``convStepper``).

    View protocol: ``model_changed(model)`` keeps a reference to the display model (the live source
    recomputes on demand, or on every update with "Follow training"); ``sample_changed(x: (H, W, C),
    label)`` sets the "current sample" of the live source. Keys (when the view has focus): Left/Right
    step, Space play/pause, Home/End first/last frame, PageUp/PageDown previous/next stage.
    ``render_frame(i, size)`` paints frame i of the current playlist into a QImage (for export).
    """

    SOURCES = (("worked", "Worked example (seed 001)"), ("custom", "Custom"), ("live", "Live model"))

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("convStepper")
        # Keys arrive from the canvas (it takes the focus and shows it); the page itself was a Tab stop
        # with nothing to show for it.
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.trace: ConvTrace | None = None
        self._builder: SceneBuilder | None = None
        self._positions = np.zeros(0, dtype=np.int64)
        self._firsts: dict[str, int] = {}
        self._index = 0
        self._channels = (0, 0)
        self._note_text = ""
        self._pending: bool | None = None  # a rebuild deferred while hidden (its keep_index)
        self._window = None  # the main window, once attached

        self._make_source_controls()
        self.canvas = StepperCanvas()
        self._make_playback_controls()
        self._lay_out()
        self._connect_signals()
        self._speed_changed()
        self._rebuild()

    def _make_source_controls(self) -> None:
        """The source combo with its panels (one per source), the channel combos and the source's note."""
        self.source = QtWidgets.QComboBox()
        for key, title in self.SOURCES:
            self.source.addItem(title, key)
        self.source.setToolTip("Where the numbers come from: the worked examples of seed 001 (one of the articles "
                               "ConvScope grew out of: Help → Reference articles), your own, or the model.")
        self.worked = WorkedPanel()
        self.custom = CustomPanel()
        self.live = LivePanel()
        self.panels = QtWidgets.QStackedWidget()
        for panel in (self.worked, self.custom, self.live):
            self.panels.addWidget(panel)
        self._show_panel(self.source.currentIndex())
        self.c_in = model_combo()
        self.c_out = model_combo()
        self.c_in.setToolTip("Input channel to follow (all: every channel pair in turn). Counted from 0, as "
                             "in Kernels, Feature maps, Pooling and Gradient check and in the formulas' "
                             "[channel] marks (rows and columns in the formulas count from 1, as in seed 001). "
                             "With one input channel chosen (not the last), each z is a partial sum and says "
                             "so; the line under the formula gives the complete z.")
        self.c_out.setToolTip("Output channel to follow (all: every channel pair in turn). Counted from 0, as "
                              "in Kernels, Feature maps, Pooling and Gradient check: output channel k here is "
                              "channel k of the layer there. With one output channel chosen (not the last), "
                              "each ∇a is a partial sum and says so; the line under the formula gives the "
                              "complete ∇a.")
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)

    def _make_playback_controls(self) -> None:
        """Step and play buttons, the stage combo, the scrub slider with its step counter, the speed."""
        icon = self.style().standardIcon
        pixmap = QtWidgets.QStyle.StandardPixmap
        self._play_icon, self._pause_icon = icon(pixmap.SP_MediaPlay), icon(pixmap.SP_MediaPause)
        self.play_button = self._button("Play", "Play / pause (Space)", self._play_icon)
        self.back_button = self._button("Back", "One step back (Left)", icon(pixmap.SP_MediaSeekBackward))
        self.forward_button = self._button("Step", "One step forward (Right)", icon(pixmap.SP_MediaSeekForward))
        self.first_button = self._button("", "First step (Home)", icon(pixmap.SP_MediaSkipBackward))
        self.last_button = self._button("", "Last step (End)", icon(pixmap.SP_MediaSkipForward))
        self.first_button.setAccessibleName("First step")  # icons only: a screen reader had no name to read
        self.last_button.setAccessibleName("Last step")
        self.stage_combo = QtWidgets.QComboBox()
        self.stage_combo.setToolTip("Jump to the first step of a stage (PageUp / PageDown).")
        for stage in STAGES:
            self.stage_combo.addItem(STAGE_SHORT[stage], stage)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("Scrub through every step")
        self.position_label = QtWidgets.QLabel()
        self.position_label.setMinimumWidth(110)
        self.speed = DecimalBox()
        self.speed.setRange(0.25, 30.0)
        self.speed.setValue(2.0)
        self.speed.setSingleStep(0.5)
        self.speed.setSuffix(" steps/s")
        self.speed.setToolTip("Playback speed")
        self.speed.setAccessibleName("Playback speed")  # the step counter sits in front of it, not a label
        self.timer = QtCore.QTimer(self)

    def _lay_out(self) -> None:
        """Source and its panel, channels and note, the canvas, then the playback controls; the rows wrap
        in a narrow window."""
        source = controls_row("Source", self.source)
        channels = QtWidgets.QHBoxLayout()
        channels.addWidget(QtWidgets.QLabel("Input channel"))
        channels.addWidget(self.c_in)
        channels.addWidget(QtWidgets.QLabel("Output channel"))
        channels.addWidget(self.c_out)
        channels.addWidget(self.note, 1)
        buttons = controls_row(self.first_button, self.back_button, self.play_button, self.forward_button,
                               self.last_button, "Stage", self.stage_combo)
        scrub = QtWidgets.QHBoxLayout()
        scrub.addWidget(self.slider, 1)
        scrub.addWidget(self.position_label)
        scrub.addWidget(self.speed)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(WrapRow(source, self.panels, stretch=(0, 1)))
        layout.addLayout(channels)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(WrapRow(buttons, scrub, stretch=(0, 1)))

    def _connect_signals(self) -> None:
        self.source.currentIndexChanged.connect(self._source_changed)
        for panel in (self.worked, self.custom, self.live):
            panel.changed.connect(self._panel_changed)
        self.c_in.currentIndexChanged.connect(self._channels_changed)
        self.c_out.currentIndexChanged.connect(self._channels_changed)
        self.play_button.clicked.connect(self.toggle_play)
        self.back_button.clicked.connect(lambda: self.step(-1))
        self.forward_button.clicked.connect(lambda: self.step(1))
        self.first_button.clicked.connect(lambda: self.set_index(0))
        self.last_button.clicked.connect(lambda: self.set_index(self.frame_count() - 1))
        self.stage_combo.activated.connect(self._stage_chosen)
        self.slider.valueChanged.connect(self.set_index)
        self.speed.valueChanged.connect(self._speed_changed)
        self.timer.timeout.connect(self._tick)

    def _button(self, text: str, tip: str, icon: QtGui.QIcon) -> QtWidgets.QPushButton:
        button = QtWidgets.QPushButton(icon, text)
        button.setToolTip(tip)
        button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys keep going to the stepper
        return button

    # ------------------------------------------------------------------ view protocol
    def attach(self, window) -> None:
        """The live source's picker offers the window's held-out images."""
        self._window = window

    def datasets_changed(self) -> None:
        """The window loaded other data: the live source picks from its held-out images."""
        if self.live.model is not None:
            self.live.picker.follow_window_data(self.live.model, self._window)

    def model_changed(self, model) -> None:
        if model is None:
            return
        new_architecture = self.live.set_model(model, self._window)
        if self._source() != "live":
            return
        if new_architecture or self.trace is None:
            self._rebuild_when_visible()
        elif self.live.follow.isChecked():
            self._rebuild_when_visible(keep_index=True)
        else:
            self.live.stale = True
            self._show_note()

    def sample_changed(self, x, label) -> None:
        """The window's current sample is now ``x: (H, W, C)`` (``label`` None for a drawing)."""
        self.live.current = (np.array(x, dtype=np.float32), None if label is None else int(label))
        if self._source() == "live" and self.live.sample_mode.currentData() == "current":
            self._rebuild_when_visible()

    def _rebuild_when_visible(self, keep_index: bool = False) -> None:
        """Rebuild now when shown; a hidden view (another tab) rebuilds when it is shown again."""
        if self.isVisible():
            self._pending = None
            self._rebuild(keep_index)
        else:
            self._pending = keep_index if self._pending is None else self._pending and keep_index

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._pending is not None:
            keep_index, self._pending = self._pending, None
            self._rebuild(keep_index)
        # Chosen by its tab: the stepper's keys (Right steps, Space plays) work at once, instead of
        # Right going to the tab bar that was clicked.
        if isinstance(QtWidgets.QApplication.focusWidget(), (QtWidgets.QTabBar, type(None))):
            self.canvas.setFocus()

    def keys_widget(self) -> QtWidgets.QWidget:
        """The widget that takes the focus when this view's tab is chosen (ViewPages._hand_over_keys), so
        Space plays and Right steps here instead of training."""
        return self.canvas

    # ------------------------------------------------------------------ building
    def _source(self) -> str:
        return self.source.currentData()

    def set_source(self, key: str) -> None:
        """Switch to source ``"worked"``, ``"custom"`` or ``"live"``."""
        self.source.setCurrentIndex([k for k, _ in self.SOURCES].index(key))

    def _source_changed(self) -> None:
        self._show_panel(self.source.currentIndex())
        self._rebuild()

    def _show_panel(self, index: int) -> None:
        """Show the source's panel; the stack then asks for that panel's room only (a QStackedWidget
        asks for its widest page's, and the custom panel's settings would make the page scroll)."""
        self.panels.setCurrentIndex(index)
        for i in range(self.panels.count()):
            policy = QtWidgets.QSizePolicy.Policy.Preferred if i == index else QtWidgets.QSizePolicy.Policy.Ignored
            self.panels.widget(i).setSizePolicy(policy, policy)

    def _panel_changed(self) -> None:
        if self.sender() is self.panels.currentWidget():
            self._rebuild_when_visible()  # e.g. other data loaded while another tab is shown

    def _rebuild(self, keep_index: bool = False) -> None:
        """Build the trace of the current source and restart (or keep the step with keep_index)."""
        self.pause()
        panel = self.panels.currentWidget()
        try:
            trace, note = panel.build()
        except ValueError as error:
            self.trace, self._builder = None, None
            self._positions = np.zeros(0, dtype=np.int64)
            self._note_text = ""
            self.note.setText("")
            self.canvas.set_scene(None, str(error))
            self._update_controls()
            return
        self.trace = trace
        self._builder = SceneBuilder(trace)
        self._note_text = note
        self._fill_channel_combos()
        self._make_playlist(self._index if keep_index else 0)
        self._show_note()

    def _show_note(self) -> None:
        text = self._note_text
        if self._source() == "live" and self.live.stale:
            text += "  " + span(self, "error", "<b>The weights have changed since: press Recompute.</b>")
        self.note.setText(text)

    def _fill_channel_combos(self) -> None:
        """Offer "all" and every channel; keep the learner's choice while the channel counts stay."""
        _, _, n_in, n_out = self.trace.w.shape
        live = self._source() == "live"
        for combo, n in ((self.c_in, n_in), (self.c_out, n_out)):
            if combo.count() == n + 1 and combo.property("live") == live:
                continue
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("all", None)
            for c in range(n):
                combo.addItem(str(c), c)
            # One channel pair by default for a model layer (all pairs would be tens of thousands of steps).
            combo.setCurrentIndex(1 if (live and n > 1) else 0)
            combo.setProperty("live", live)
            combo.setEnabled(n > 1)
            combo.blockSignals(False)

    def _channels_changed(self) -> None:
        self.pause()
        self._make_playlist(0)
        self.canvas.setFocus()

    def _make_playlist(self, index: int) -> None:
        """Positions of the frames shown (all stages, filtered by the channel combos)."""
        c_in, c_out = self.c_in.currentData(), self.c_out.currentData()
        parts, self._firsts, n = [], {}, 0
        for stage in STAGES:
            positions = np.asarray(self.trace.frames_for(stage, c_in, c_out).positions, dtype=np.int64)
            self._firsts[stage] = n
            parts.append(positions)
            n += len(positions)
        self._positions = np.concatenate(parts)
        self._channels = (c_in or 0, c_out or 0)
        self._index = -1
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(n - 1, 0))
        self.slider.blockSignals(False)
        self.set_index(min(index, n - 1))

    # ------------------------------------------------------------------ navigation
    def frame_count(self) -> int:
        return len(self._positions)

    def current_index(self) -> int:
        return self._index

    def current_frame(self) -> Frame | None:
        return self.trace.frames[int(self._positions[self._index])] if self.frame_count() else None

    def stage_first_index(self, stage: str) -> int:
        """Playlist index of the first step of ``stage``."""
        return self._firsts[stage]

    def set_index(self, index: int) -> None:
        if not self.frame_count():
            return
        index = int(min(max(index, 0), self.frame_count() - 1))
        if index == self._index:
            return
        self._index = index
        frame = self.current_frame()
        self._channels = self._builder.channels_of(frame, self._channels)
        self.canvas.set_scene(self._scene(index, frame))
        self._update_controls()

    def step(self, delta: int) -> None:
        self.set_index(self._index + delta)

    def jump_to_stage(self, stage: str) -> None:
        self.set_index(self._firsts[stage])

    def _stage_chosen(self) -> None:
        self.pause()
        self.jump_to_stage(self.stage_combo.currentData())
        self.canvas.setFocus()

    def _stage_of_index(self, index: int) -> str:
        return [s for s in STAGES if self._firsts[s] <= index][-1]

    def _scene(self, index: int, frame: Frame) -> Scene:
        stage = frame.stage
        first = self._firsts[stage]
        k = STAGES.index(stage)
        end = self._firsts[STAGES[k + 1]] if k + 1 < len(STAGES) else self.frame_count()
        channels = self._builder.channels_of(frame, self._channels)
        progress = (f"Step {index - first + 1} of {end - first} in this stage  ·  step {index + 1} of "
                    f"{self.frame_count()} overall  ·  stage {k + 1} of {len(STAGES)}")
        return self._builder.scene(frame, channels, progress, (self.c_in.currentData(), self.c_out.currentData()))

    def _update_controls(self) -> None:
        n = self.frame_count()
        for widget in (self.play_button, self.back_button, self.forward_button, self.first_button, self.last_button,
                       self.stage_combo, self.slider):
            widget.setEnabled(n > 0)
        if not n:
            self.position_label.setText("")
            return
        self.slider.blockSignals(True)
        self.slider.setValue(self._index)
        self.slider.blockSignals(False)
        self.stage_combo.setCurrentIndex(STAGES.index(self._stage_of_index(self._index)))
        self.position_label.setText(f"step {self._index + 1} / {n}")

    # ------------------------------------------------------------------ playback
    def is_playing(self) -> bool:
        return self.timer.isActive()

    def play(self) -> None:
        if not self.frame_count():
            return
        if self._index >= self.frame_count() - 1:
            self.set_index(0)
        self.timer.start()
        self.play_button.setText("Pause")
        self.play_button.setIcon(self._pause_icon)

    def pause(self) -> None:
        self.timer.stop()
        self.play_button.setText("Play")
        self.play_button.setIcon(self._play_icon)

    def toggle_play(self) -> None:
        self.pause() if self.is_playing() else self.play()

    def _speed_changed(self) -> None:
        self.timer.setInterval(int(1000 / self.speed.value()))

    def _tick(self) -> None:
        if self._index >= self.frame_count() - 1:
            self.pause()
        else:
            self.step(1)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        Key = QtCore.Qt.Key
        if key == Key.Key_Right:
            self.step(1)
        elif key == Key.Key_Left:
            self.step(-1)
        elif key == Key.Key_Space:
            self.toggle_play()
        elif key == Key.Key_Home:
            self.set_index(0)
        elif key == Key.Key_End:
            self.set_index(self.frame_count() - 1)
        elif key in (Key.Key_PageUp, Key.Key_PageDown) and self.frame_count():
            k = STAGES.index(self._stage_of_index(self._index))
            if key == Key.Key_PageUp and self._index == self._firsts[STAGES[k]]:
                k -= 1  # already at the stage start: go to the previous stage
            k = k + 1 if key == Key.Key_PageDown else k
            if 0 <= k < len(STAGES):
                self.jump_to_stage(STAGES[k])
        else:
            super().keyPressEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802
        self.pause()
        super().hideEvent(event)

    # ------------------------------------------------------------------ text and export
    def formula_text(self) -> str:
        """The symbolic formula of the current step (``∇a22 = δ11·w22 + …``), as drawn."""
        scene = self.canvas.scene
        return scene.formula if scene is not None else ""

    def numbers_text(self) -> str:
        """The numeric formula of the current step (``∇a22 = 1·4 + (-1)·3 + … = 5.5``), as drawn."""
        scene = self.canvas.scene
        return scene.numbers if scene is not None else ""

    def render_frame(self, index: int, size: QtCore.QSize | None = None) -> QtGui.QImage:
        """Step ``index`` of the current playlist painted into a new QImage (default: the canvas size),
        exactly as the canvas draws it. The view's own position does not change."""
        size = size or self.canvas.size()
        index = int(min(max(index, 0), self.frame_count() - 1))
        frame = self.trace.frames[int(self._positions[index])]
        image = QtGui.QImage(size, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(BACKGROUND)
        painter = QtGui.QPainter(image)
        paint_composition(painter, compose(QtCore.QRectF(0, 0, size.width(), size.height()),
                                           self._scene(index, frame)))
        painter.end()
        return image

