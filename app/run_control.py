"""The training run of :class:`app.main_window.MainWindow` (:class:`RunControl`, a mixin): start, pause,
single steps, stop and reset; the worker's signals (steps, validation, epochs, weights, divergence,
failure, end); resuming the run the weights shown come from; a divergence's "lower the learning rate
and continue"; the gradient-health and kernel-timeline recorders of a run.

The training model lives on the worker thread (app.worker.TrainingWorker); the window sees its weights
through the ``weights`` signal, copied into the display model (app.display_model)."""
from __future__ import annotations

import dataclasses

from PySide6 import QtCore, QtWidgets

from app.file_menu import message_box
from engine.health import HealthMonitor
from engine.model import ModelFileError, Sequential
from engine.presets import build
from engine.session import Session
from engine.text import plural
from engine.timeline import KernelTimeline
from engine.trainer import TrainConfig, Trainer, divergence_message

SHUTDOWN_MS = 2000
SESSION_ONLY = ("variant", "warmup_epochs", "max_loss")  # run settings the panel has no field for
# The worker's signals and the slots below that receive them (app.worker.TrainingWorker: all queued).
WORKER_SLOTS = (("steps(PyObject)", "_on_steps(PyObject)"), ("validation(PyObject)", "_on_validation(PyObject)"),
                ("epoch(PyObject)", "_on_epoch(PyObject)"), ("weights(PyObject)", "_on_weights(PyObject)"),
                ("diverged(PyObject)", "_on_diverged(PyObject)"), ("failed(PyObject)", "_on_failed(PyObject)"),
                ("done(QString)", "_on_done(QString)"))


def check_worker_slots(worker: QtCore.QMetaObject, window: QtCore.QMetaObject) -> None:
    """RuntimeError unless every signal and slot of WORKER_SLOTS is in the worker's and the window's meta
    objects: a connection by signature to a misspelt slot is made without a word and crashes the process
    at the first emit."""
    for signal, slot in WORKER_SLOTS:
        if worker.indexOfSignal(signal) < 0:
            raise RuntimeError(f"the training worker has no signal {signal}")
        if window.indexOfSlot(slot) < 0:
            raise RuntimeError(f"the window has no slot {slot} for the worker's signal {signal}")


class RunControl:
    """The run's lifecycle and the worker's signals (mixed into MainWindow, which makes the worker:
    ``_new_worker``)."""

    def _connect_panel(self) -> None:
        panel = self.panel
        panel.start_button.clicked.connect(self.start_or_resume)
        panel.pause_button.clicked.connect(self.pause)
        panel.step_button.clicked.connect(self.step)
        panel.stop_button.clicked.connect(self.stop)
        panel.reset_button.clicked.connect(self.reset)
        panel.lower_lr_requested.connect(self.lower_lr_and_continue)
        panel.dataset_requested.connect(self.request_dataset)

    def _set_run_state(self, state: str) -> None:
        self._run_state = state
        self.panel.set_state(state)
        self._update_actions()
        self._run_clock(state == "running")
        self._update_status()

    @QtCore.Slot()
    def start_or_resume(self) -> None:
        if self._run_state == "paused":
            self.worker.resume()
            self._set_run_state("running")
        elif self._run_state == "idle":
            self._start_run(paused=False)

    @QtCore.Slot()
    def toggle_start_pause(self) -> None:
        """Space: start, pause or resume."""
        if self._run_state == "running":
            self.pause()
        else:
            self.start_or_resume()

    @QtCore.Slot()
    def pause(self) -> None:
        if self._run_state == "running":
            self.worker.pause()
            self._set_run_state("paused")

    @QtCore.Slot()
    def step(self) -> None:
        """One mini-batch: from a paused run, or as the first step of a new run."""
        if self._run_state == "idle":
            if not self._start_run(paused=True):
                return
        if self._run_state == "paused":
            self.worker.request_step()

    @QtCore.Slot()
    def stop(self) -> None:
        if self._run_state in ("running", "paused"):
            self.worker.stop()  # "done" follows from the worker thread
        elif self._run_state == "diverged":
            self._end_run("stopped")

    @QtCore.Slot()
    def reset(self) -> None:
        """Fresh random weights for the preset and seed; the curves are cleared."""
        config = self.panel.config()
        if (self._run_state != "idle" or config is None or self._loading()
                or not self.confirm_discard("Resetting the weights", ("run",))):
            return
        self._show_other_weights(build(config.preset, seed=config.seed), f"fresh {config.preset} (seed {config.seed})")
        kept = self.loss_view.has_overlay("previous run")
        self.statusBar().showMessage(f"Fresh random weights for {config.preset} (seed {config.seed})"
                                     + ("; the cleared curve stays as “previous run”." if kept else "."), 5000)

    def _show_other_weights(self, model: Sequential, description: str) -> None:
        """Show weights no run on screen led to (fresh, pretrained, a weights file): the run shown goes
        with its gradient health and kernel timeline, its curve kept as the "previous run" overlay. A run
        from these weights then counts its steps from 1, and its session holds no curve of the run
        before (they kept the replaced run's, and plotted their first step after its last)."""
        self._start_afresh()
        self._set_display_model(model, description)
        self._set_recorders(None, None)

    def _start_afresh(self) -> None:
        """Clear the loss curves, keeping the run just cleared as the "previous run" overlay; steps and
        training time count from 0 again."""
        if self.loss_view.steps.size:
            self.loss_view.add_overlay("previous run", self.loss_view.steps, self.loss_view.losses)
        self.loss_view.clear()
        self._step_offset = self._last_step = 0
        self._elapsed_before_ms = 0

    def _update_actions(self) -> None:
        """Menu actions that change the weights, the data or the run: only when nothing runs, and
        training not while data loads (it would train on the old data and label it with the new)."""
        idle = self._run_state == "idle" and self._task is None
        for action in (self.action_open, self.action_reload, self.action_open_session):
            action.setEnabled(idle)
        for action in (self.action_start_pause, self.action_step):
            action.setEnabled(self._task is None)

    def _continue_hint(self) -> str:
        """Said when a fresh run would discard trained weights: a learner who pressed Stop meaning "pause"
        and then Start was offered Save / Discard / Cancel, never the check box that keeps training them."""
        check = self.panel.continue_check
        if not check.isEnabled():
            return ""
        return f"To keep training these weights instead, Cancel and tick “{check.text().replace('&', '')}”."

    def _start_run(self, paused: bool) -> bool:
        """Start a run, paused (for a single step) or training: the run the weights shown come from,
        resumed, or a new one. False, with a message, when the settings, the data or the learner's answer
        to the unsaved-work question stop it."""
        config = self.panel.config()
        if config is None:  # Space or Right with a setting the panel marks as wrong: say why nothing starts
            problems = self.panel.errors()
            self.statusBar().showMessage("Cannot start: " + (problems[0] if problems else "check the settings"),
                                         10000)
            return False
        if self._loading():
            return False
        self.statusBar().clearMessage()  # "Run stopped after …" was about the last run
        try:
            trainer = self._resume_lineage(config) if self.panel.continue_check.isChecked() else None
        except ValueError as error:  # e.g. a session setting the panel has no field for, against these
            message_box(self, QtWidgets.QMessageBox.Icon.Warning, "Cannot continue the run",
                        f"{error}\n\nChange the settings, or uncheck “Continue from the weights shown” "
                        "to start a new run from them.")
            return False
        if trainer is None:
            if not self.panel.continue_check.isChecked() and not self.confirm_discard(
                    "Starting a new run from fresh weights", ("run",), self._continue_hint()):
                return False
            trainer = self._new_trainer(config)
            if trainer is None:
                return False
        if self.panel.continue_check.isChecked():  # not "pretrained …" or "session …, step 5" while they change
            self.panel.set_weights_info(f"training, continued from {self.panel.weights_description}",
                                        trainer.model.name)
        self._set_recorders(*_recorders_for(trainer, self.health, self.timeline))
        self._start_worker(trainer, paused)
        self._set_run_state("paused" if paused else "running")
        self._show_progress(trainer.step_index, trainer.total_steps, trainer.steps_per_epoch)
        epochs_left = -(-(trainer.total_steps - trainer.step_index) // trainer.steps_per_epoch)
        self.loss_view.set_run_extent(self._step_offset + trainer.total_steps,
                                      self.loss_view.epoch_count + epochs_left)
        return True

    def _start_worker(self, trainer: Trainer, paused: bool) -> None:
        """Run ``trainer`` on a new worker thread, its signals queued to the slots below."""
        self.worker = self._new_worker(trainer)
        self._steps_saved = trainer.step_index  # where its steps start (confirm_discard)
        # set before start (not passed to the constructor: tests subclass the worker with (trainer) only)
        self.worker.recorders = tuple(r for r in (self.health, self.timeline) if r is not None)
        # By signature, to the window's own slots: PySide takes a bound method of a mixin for the window's
        # slot only while the window has no dynamic slots, and a view connecting a plain method of the
        # window (a sample picker, set_sample) adds one. It then called the method through a proxy object
        # living in the worker's thread, whose event loop the run keeps busy: no step ever reached the plot
        # (and once that loop was free, GUI code ran on the worker's thread).
        check_worker_slots(self.worker.metaObject(), self.metaObject())
        for signal, slot in WORKER_SLOTS:
            QtCore.QObject.connect(self.worker, QtCore.SIGNAL(signal), self, QtCore.SLOT(slot),
                                   QtCore.Qt.ConnectionType.QueuedConnection)
        self._progress = self._validating = None
        self._diverged_at = None
        self.worker.start(paused=paused)

    def _new_trainer(self, config: TrainConfig) -> Trainer | None:
        """A trainer starting at step 0: from the weights shown ("Continue" checked; the curves carry
        on) or from fresh weights (the old curve becomes the "previous run" overlay). None, with a
        message, when the trainer refuses the settings (e.g. a batch the memory cannot hold): then the
        views, weights and curves stay as they were."""
        continued = self.panel.continue_check.isChecked()
        source = self.display_model if continued else build(config.preset, seed=config.seed)
        model = Sequential(source.spec, seed=config.seed)
        model.set_weights(source.get_weights())
        model.trained_with = set(source.trained_with)  # weights a variant trained stay labelled
        try:
            trainer = Trainer(model, self.train_data, self.val_data, config)
        except ValueError as error:
            # The trainer's sentences are written to follow "error: " on the command line.
            text = str(error)
            message_box(self, QtWidgets.QMessageBox.Icon.Warning, "Cannot start training", text[:1].upper() + text[1:])
            return None
        if continued:
            self._step_offset = self._last_step
        else:
            self._start_afresh()
            self._set_display_model(source,
                                    f"training {config.preset} from fresh weights (seed {config.seed})")
        self.health = self.timeline = None  # step numbers start again: new recorders
        return trainer

    def _resume_lineage(self, config: TrainConfig) -> Trainer | None:
        """Continue the run the weights shown come from, exactly where it stopped (None when there is
        none or it cannot continue with these settings and data: then a new run starts from the weights,
        and the status bar says why). A run that has done all its epochs trains ``config.epochs`` more."""
        session = self._lineage
        if session is None:
            return None
        reason = session.resume_problem(self.train_data, config)
        if reason is not None:
            self.statusBar().showMessage(f"New run from the weights shown ({reason}: its optimiser state "
                                         "and schedule cannot carry on).", 10000)
            return None
        # settings the panel cannot show (e.g. a variant set by the CLI) stay the session's
        config = dataclasses.replace(config, **{k: session.settings[k] for k in SESSION_ONLY
                                                if k in session.settings})
        steps_per_epoch = -(-len(self.train_data) // config.batch_size)
        epochs_done = -(-session.step // steps_per_epoch)
        if session.step >= config.epochs * steps_per_epoch:
            finished = dataclasses.replace(config, epochs=epochs_done)
            config = dataclasses.replace(config, epochs=epochs_done + config.epochs)
            # The schedule now spans all the epochs: its rate can jump back up (cosine does, step when the
            # added epochs move the run back before a milestone).
            before = finished.lr_scale(session.step - 1, steps_per_epoch)
            after = config.lr_scale(session.step, steps_per_epoch)
            restart = (f" The {config.schedule} learning-rate schedule now spans all {config.epochs} epochs: the "
                       f"rate goes back up from ×{before:.2g} to ×{after:.2g} of the set rates (a warm restart)."
                       if after > before * 1.0001 else "")
            self.statusBar().showMessage(f"Continuing for {plural(config.epochs - epochs_done, 'more epoch')} "
                                         f"(to epoch {config.epochs}).{restart}", 15000)
        trainer = session.resume(self.train_data, self.val_data, config=config)
        self._step_offset = self._last_step - session.step
        return trainer

    @QtCore.Slot(object)
    def _on_steps(self, batch: dict) -> None:
        if self.worker is None:
            return
        steps = batch["step"] + self._step_offset
        self.loss_view.append_steps(steps, batch["loss"])
        self._last_step = int(steps[-1])
        if int(batch["step"][-1]) > self._steps_saved:  # steps queued before a save are in the session
            self._unsaved.add("run")
        self._progress = (int(batch["step"][-1]), batch["images_per_second"])
        if self._run_state != "running":  # single steps: no clock ticking
            self._update_status()

    @QtCore.Slot(object)
    def _on_validation(self, progress: tuple[int, int]) -> None:
        self._validating = progress
        if self._run_state != "running":  # no clock ticking (e.g. paused during the validation)
            self._update_status()

    @QtCore.Slot(object)
    def _on_epoch(self, event: dict) -> None:
        def value(key):
            return float("nan") if event[key] is None else event[key]

        self._validating = None
        if self._run_state != "running":  # no clock ticking: the bar still read "validating"
            self._update_status()

        # the epoch's bar begins where it did: a run continued with new settings starts its own epochs
        start = None if self.worker is None else self._last_step - self.worker.trainer.steps_per_epoch
        self.loss_view.append_epoch(self._last_step, event["train_loss"], value("val_loss"),
                                    event["train_accuracy"], value("val_accuracy"), start=start)

    @QtCore.Slot(object)
    def _on_weights(self, snapshot: dict) -> None:
        try:
            self.display_model.set_weights(snapshot, source="training snapshot")
        except ModelFileError:  # e.g. weights overflowed to inf: keep the last good ones on screen
            return
        self._schedule_push()

    @QtCore.Slot(object)
    def _on_diverged(self, event: dict) -> None:
        # Steps as the loss plot numbers them: a run continued with new settings counts its own from 0.
        offset, step = self._step_offset, event["step"]
        message = divergence_message(offset + step, event["cause"])
        message = message[:1].upper() + message[1:] + "."
        rescue = event.get("rescue_step")
        if rescue is not None:
            message += (f" Steps before it may already have wrecked the weights: continuing restores "
                        f"those of step {offset + rescue}, the last point before the loss began to climb.")
        self.panel.show_divergence(message)
        self._diverged_at = offset + step
        self.loss_view.mark_divergence(offset + step, f"diverged at step {offset + step}")
        self._run_state = "diverged"
        self._run_clock(False)
        self._update_status()
        self.statusBar().showMessage(f"Training diverged at step {offset + step}: run paused.")

    @QtCore.Slot(object)
    def _on_failed(self, text: str) -> None:
        message_box(self, QtWidgets.QMessageBox.Icon.Critical, "Training failed", text)

    @QtCore.Slot(str)
    def _on_done(self, reason: str) -> None:
        if reason == "diverged":
            return  # the worker stays: "lower the learning rate and continue" carries on from here
        self._end_run(reason)

    def _end_run(self, reason: str) -> None:
        self._update_status()  # the final step's progress, before the worker goes
        if self.worker is not None:
            self.worker.shutdown(SHUTDOWN_MS)
            self._lineage = Session.from_trainer(self.worker.trainer, self.panel.dataset_key,
                                                 timeline=self.timeline, health=self.health)
            self.worker = None
        self._set_run_state("idle")
        steps = plural(self._last_step, "step")
        diverged, self._diverged_at = self._diverged_at, None
        if diverged is None:
            self.panel.set_weights_info(f"{self.display_model.name} after {steps} ({'run ' + reason})",
                                        self.display_model.name)
            self.statusBar().showMessage(f"Run {reason} after {steps}.", 10000)
            return
        # Stopped while halted by a divergence: the weights kept are those the exploding steps left (no
        # rollback here: the learner may want to look at the damage), and nothing else would say so.
        self.panel.set_weights_info(f"{self.display_model.name} after {steps} (run diverged at step {diverged} "
                                    "and stopped: the weights may be wrecked)", self.display_model.name)
        self.loss_view.frame_run_so_far()  # not a few steps at the left edge of the run planned
        self.panel.show_stopped_divergence(
            f"Training diverged at step {diverged} and the run was stopped. The views show the weights it "
            "reached, which the steps before the divergence may already have wrecked. Reset, or open "
            "weights, to start again with a lower learning rate.")
        self.statusBar().showMessage(f"Run {reason} after {steps}, diverged at step {diverged}.", 10000)

    @QtCore.Slot()
    def lower_lr_and_continue(self) -> None:
        """After a divergence: divide both learning rates by 10, go back to the rescue point's
        weights (see Trainer.rollback) and continue the same run."""
        if self._run_state != "diverged":
            return
        trainer = self.worker.trainer  # idle: its run() ended with the divergence
        # One tenth, as the decimal number the panel then shows (0.05 * 0.1 is 0.005000000000000001).
        lr_conv, lr_dense = (float(f"{lr * 0.1:.12g}") for lr in (trainer.config.lr_conv, trainer.config.lr_dense))
        trainer.set_learning_rates(lr_conv, lr_dense)
        self._diverged_at = None
        rescued = trainer.rollback()
        if rescued is not None:  # the smoothed loss is not to carry the exploded losses into the rescued run
            self.loss_view.restart_smoothing(f"weights of step {self._step_offset + rescued} restored")
        if self.health is not None:
            self.health.weights_restored(trainer.model, trainer.step_index)
        self.panel.set_learning_rates(lr_conv, lr_dense)
        self.worker.resume()
        self.worker.continue_run()
        self._set_run_state("running")
        origin = "" if rescued is None else f" from the weights of step {self._step_offset + rescued}"  # as plotted
        self.statusBar().showMessage(f"Continuing{origin} with learning rates {lr_conv:g} (conv) and "
                                     f"{lr_dense:g} (dense).", 5000)

    def _set_recorders(self, health: HealthMonitor | None, timeline: KernelTimeline | None) -> None:
        """Use these recorders for the next run and show them in their views."""
        self.health, self.timeline = health, timeline
        view = self._view("gradientHealthView")
        if view is not None:
            view.set_monitor(health)
        view = self._view("kernelTimeline")
        if view is not None:
            view.set_timeline(timeline)


def _recorders_for(trainer: Trainer, health: HealthMonitor | None, timeline: KernelTimeline | None
                   ) -> tuple[HealthMonitor | None, KernelTimeline | None]:
    """The gradient-health monitor and kernel timeline for a run of ``trainer``: ``health`` and
    ``timeline`` go on when the run resumes after them (so they span the whole lineage), else new
    ones are made here, on the GUI thread, before the run starts (from then on only the training
    thread writes them). A model without weight / conv layers gets None for that recorder."""
    model, step = trainer.model, trainer.step_index
    if step == 0 or health is None or (health.latest() and health.latest()[0] > step):
        has_weights = any(layer.kind in ("Conv2D", "Dense") for layer in model.layers)
        health = HealthMonitor(model, step=step) if has_weights else None
    if step == 0 or timeline is None or (len(timeline) and timeline.steps()[-1] > step):
        has_conv = any(layer.kind == "Conv2D" for layer in model.layers)
        timeline = KernelTimeline.for_model(model, step=step) if has_conv else None
    return health, timeline
