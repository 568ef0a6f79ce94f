"""The display model and its way to the views, for :class:`app.main_window.MainWindow`
(:class:`DisplayModel`, a mixin).

The display model is a Sequential on the GUI thread holding the latest weight snapshot from the
worker (or the pretrained/opened/reset weights when nothing trains). Views only ever see the display
model; it is pushed to the visible views at most ``VIEW_HZ`` times per second, and to a hidden view
when it becomes visible. Samples the learner picks (drawn on the pad, chosen among the evaluation's
mistakes) go to every view that takes one.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6 import QtCore, QtWidgets

from engine.model import Sequential
from engine.presets import PRESETS
from engine.session import Session

VIEW_HZ = 10.0


class DisplayModel:
    """The model the views show, pushed at most VIEW_HZ times per second; samples sent to the views
    (mixed into MainWindow)."""

    def _init_display_model(self) -> None:
        self._model_version = 0
        self._view_versions: dict[QtWidgets.QWidget, int] = {}
        self._last_push = 0.0
        self._exporting: QtWidgets.QWidget | None = None  # a view rendering an animation: no new weights
        self._refresh_timer = QtCore.QTimer(self, singleShot=True)
        self._refresh_timer.timeout.connect(self._push_model)

    def _model_views(self) -> list[QtWidgets.QWidget]:
        return [w for w in self.views.values() if hasattr(w, "model_changed")]

    def _schedule_push(self) -> None:
        """Push the display model to the visible views soon, at most VIEW_HZ times per second."""
        self._model_version += 1
        if not self._refresh_timer.isActive():
            wait_ms = 1000.0 / VIEW_HZ - (time.perf_counter() - self._last_push) * 1000.0
            self._refresh_timer.start(max(0, int(wait_ms)))

    @QtCore.Slot()
    def _push_model(self) -> None:
        self._last_push = time.perf_counter()
        for view in self._model_views():
            if view is self._exporting:
                continue  # its frames must all show one set of weights; it gets the newest afterwards
            if view.isVisible() or self._view_versions.get(view) is None:
                self._deliver(view)

    def _deliver(self, view: QtWidgets.QWidget) -> None:
        if self._view_versions.get(view) != self._model_version:
            self._view_versions[view] = self._model_version
            view.model_changed(self.display_model)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        """A view about to be shown gets the current model first: its showEvent then draws the model
        of now (tab widgets announce the switch only after showing the page)."""
        if (event.type() == QtCore.QEvent.Type.Show and getattr(self, "_constructed", False)
                and watched in self._view_versions):
            self._deliver(watched)
        return super().eventFilter(watched, event)

    @QtCore.Slot()
    def _deliver_stale(self) -> None:
        """A view became visible: give it the current model if it missed updates while hidden."""
        for view in self._model_views():
            if view.isVisible():
                self._deliver(view)

    def set_sample(self, x: np.ndarray, label: int | None) -> None:
        """Show sample ``x: (H, W, C)`` float32 (e.g. from the drawing pad) in every view that takes one."""
        for view in self.views.values():
            if hasattr(view, "sample_changed"):
                view.sample_changed(x, label)

    def _connect_views(self) -> None:
        """Signals between views go through the window: a digit drawn on the pad or picked among the
        evaluation's mistakes is shown in every view that takes a sample."""
        pad = self._view("drawingPadPanel")
        if pad is not None:
            pad.look_inside.connect(self.look_inside)
        evaluation = self._view("evaluationView")
        if evaluation is not None:
            evaluation.sample_selected.connect(self.show_mistake)
        experiments = self._view("experimentsPanel")
        if experiments is not None:
            experiments.finished.connect(lambda: self._unsaved.add("experiment"))

    @QtCore.Slot(object)
    def look_inside(self, x: np.ndarray) -> None:
        """The drawing pad's "Look inside": its network input ``x: (H, W, 1)`` float32 goes to every view
        that takes a sample, and the feature maps come to the front."""
        self._send_sample(x, None, "Your drawing")

    @QtCore.Slot(object, object)
    def show_mistake(self, x: np.ndarray, label: int) -> None:
        """A digit picked in the evaluation view (``x: (H, W, C)``, ``label``: its true class index)
        goes to every view that takes a sample; the feature maps come to the front."""
        name = self.display_model.classes[label] if 0 <= label < len(self.display_model.classes) else label
        self._send_sample(x, label, f"The chosen {name}")

    def _send_sample(self, x: np.ndarray, label: int | None, what: str) -> None:
        """A sample ``x: (H, W, C)`` the learner asked to look inside: every sample view shows it, the
        conv stepper switches to the live network (its "current sample" mode shows it), the feature
        maps come first."""
        self.set_sample(x, label)
        stepper = self._view("convStepper")
        if stepper is not None and hasattr(stepper, "set_source"):
            self._deliver(stepper)  # switching the source traces at once, even hidden: with the model of now
            stepper.set_source("live")
        self.show_view("Feature maps")
        self.statusBar().showMessage(f"{what} is in Feature maps, Pooling and the Conv stepper (live).", 8000)

    def _set_display_model(self, model: Sequential, description: str,
                           lineage: Session | None = None) -> None:
        """Show a new model (another architecture or new weights) in every view. ``lineage``: the
        session these weights continue (None: they do not come from a run that can be resumed)."""
        self.display_model = model
        self._lineage = lineage
        self._unsaved.discard("run")  # the run's weights are no longer shown (callers asked first)
        self._steps_in_session = self._last_step  # an opened session's steps, or none yet
        if lineage is None:
            self._session_path = None  # Save session must not offer to overwrite a session with other work
        self.panel.set_weights_info(description, model.name)
        self.loss_view.set_loss_kind(model.loss)
        self.status_ips.setText("– images/s")  # no speed measured on these weights yet
        if lineage is None:
            self._show_progress(0, 0, 0)  # nor the step and progress of a run they do not come from
        self._update_status()  # the training time of the run they come from (an opened session's), or 0:00
        if model.name in PRESETS and self.panel.preset.currentData() != model.name:
            self.panel.preset.setCurrentIndex(self.panel.preset.findData(model.name))
        self._schedule_push()

