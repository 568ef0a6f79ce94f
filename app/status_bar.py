"""The status bar of :class:`app.main_window.MainWindow` (:class:`StatusClock`, a mixin): the run's step,
throughput and training time, and the clock that refreshes them and the panel's progress bars while a
run trains."""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets

STATUS_HZ = 5.0


class StatusClock:
    """The status bar's permanent labels and the clock of a run (mixed into MainWindow)."""

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_step = QtWidgets.QLabel(objectName="stepStatus")
        self.status_step.setToolTip("Current epoch and optimiser step of the run.")
        self.status_ips = QtWidgets.QLabel("– images/s", objectName="imagesPerSecond")
        self.status_ips.setToolTip("Training throughput: images per second through forward, backward and "
                                   "update.")
        self.status_elapsed = QtWidgets.QLabel(objectName="elapsedTime")
        self.status_elapsed.setToolTip("Training time of this run, pauses excluded (of an opened session: the "
                                       "time its training steps took, as it recorded them).")
        for label in (self.status_step, self.status_ips, self.status_elapsed):
            bar.addPermanentWidget(label)
        self._elapsed = QtCore.QElapsedTimer()
        self._elapsed_before_ms = 0  # running time of the run before the last pause
        # While training, progress bars and status labels follow the run at STATUS_HZ, not per step:
        # each change repaints the bars and labels.
        self._clock = QtCore.QTimer(self, interval=int(1000 / STATUS_HZ))
        self._clock.timeout.connect(self._update_status)
        self._progress: tuple[int, float] | None = None  # (step of the run, images/s)
        self._validating: tuple[int, int] | None = None  # (done, total) images of the epoch-end validation

    def _run_clock(self, running: bool) -> None:
        """Start the clock when the run trains; stop it, adding the time since it started to the run's
        training time, when it no longer does."""
        if running:
            self._elapsed.start()
            self._clock.start()
        elif self._clock.isActive():
            self._elapsed_before_ms += self._elapsed.elapsed()
            self._clock.stop()

    @QtCore.Slot()
    def _update_status(self) -> None:
        """Elapsed time, and the run's progress and throughput when a run is going."""
        ms = self._elapsed_before_ms + (self._elapsed.elapsed() if self._clock.isActive() else 0)
        minutes, seconds = divmod(int(ms // 1000), 60)
        self.status_elapsed.setText(f"elapsed {minutes}:{seconds:02d}")
        if self.worker is None or self._progress is None:
            return
        step, images_per_second = self._progress
        trainer = self.worker.trainer
        self._show_progress(step, trainer.total_steps, trainer.steps_per_epoch, self._validating)
        self.status_ips.setText("validating" if self._validating else f"{images_per_second:,.0f} images/s")

    def _show_progress(self, step: int, total_steps: int, steps_per_epoch: int,
                       validating: tuple[int, int] | None = None) -> None:
        """The panel's progress bars and the status bar's step label after ``step`` optimiser steps of a run
        of ``total_steps`` (0: no run, both empty); ``validating``: see ``TrainingPanel.set_progress``."""
        self.panel.set_progress(step, total_steps, steps_per_epoch, validating)
        if total_steps <= 0 or steps_per_epoch <= 0:
            self.status_step.setText("")
            return
        epoch = max(-(-step // steps_per_epoch), 1)  # the epoch of the last step, as the epoch bar counts
        self.status_step.setText(f"epoch {epoch}, step {step}/{total_steps}")

