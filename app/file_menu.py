"""The File menu's work for the main window: weights, sessions and exports, and the question
before work no saved session holds is thrown away (:class:`FileMenu`, a mixin of
:class:`app.main_window.MainWindow`, whose state it uses: the display model, the run, the views)."""
from __future__ import annotations

import dataclasses
import os
import sys
from importlib import resources as importlib_resources

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

import resources
from app.export import (completed_save_path, export_all_or_nothing, export_animation_dialog, export_view_data,
                        frame_source, save_png, write_failure)
from app.views.samples import validation_set
from app.views.scenes import export_scene_png
from engine.model import ModelFileError, Sequential
from engine.presets import PRESETS, build
from engine.session import SUFFIX as SESSION_SUFFIX
from engine.session import (EARLIER_EPOCH_KEYS, Session, data_description, file_kind, open_session,
                            save_session)
from engine.text import plural
from engine.trainer import TrainConfig, evaluate

SAVE_WAIT_MS = 200  # saving a session waits this long for the step in flight, then shows a dialog


def message_box(parent: QtWidgets.QWidget, icon: QtWidgets.QMessageBox.Icon, title: str,
                text: str) -> QtWidgets.QMessageBox:
    """A window-modal message box that does not block the caller (tests and timers keep running)."""
    box = QtWidgets.QMessageBox(icon, title, text, QtWidgets.QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


class FileMenu:
    """Opening and saving weights and sessions, exports, dropped files (mixed into MainWindow)."""

    def _refuse(self, icon: QtWidgets.QMessageBox.Icon, title: str, text: str) -> None:
        """A File action's box saying why it did nothing (nothing to export, a file it cannot read or
        write, a run in the way). The status bar's message of the action before ("Exported …", "Saved …")
        goes: beside the box it read as this one's outcome."""
        self.statusBar().clearMessage()
        message_box(self, icon, title, text)

    # ------------------------------------------------------------------ models and files

    @QtCore.Slot()
    def load_pretrained(self) -> None:
        """Show the bundled pretrained VGG-7, or a fresh one (and a status message saying so)."""
        if self._run_state != "idle" or self._loading() or not self.confirm_discard(
                "Loading the pretrained weights", ("run",)):
            return
        try:
            with importlib_resources.as_file(resources.path("weights", "vgg7.npz")) as path:
                model = Sequential.load(path)
        except ModelFileError as error:
            self._show_other_weights(build("vgg7", seed=0), "fresh vgg7 (seed 0)")
            reason = str(error).rsplit(": ", 1)[-1]  # the message starts with the full path
            self.statusBar().showMessage(f"Pretrained weights not available (vgg7.npz: {reason}): showing a "
                                         "freshly initialised vgg7 instead.")
            return
        description = "pretrained vgg7"
        # On the bundled 500, whatever data is loaded: ~0.1 s here on the GUI thread, where full MNIST's
        # 10,000 test images froze the window for 3 s (the Evaluation view gives those, in the background).
        held_out = validation_set(tuple(model.input_shape), tuple(model.classes))
        if held_out is not None:
            accuracy = evaluate(model, held_out).accuracy
            description += f", {accuracy:.1%} on the {len(held_out):,} bundled validation digits"
        self._show_other_weights(model, description)
        self.statusBar().showMessage("Pretrained VGG-7 loaded.", 5000)

    def open_weights(self, path: str) -> bool:
        """Load a weights file into the display model; a bad file is refused with a message and the
        current model stays. Returns True when loaded."""
        if self._run_state != "idle":
            self._refuse(QtWidgets.QMessageBox.Icon.Information, "Training in progress",
                         "Stop the run before opening other weights.")
            return False
        if self._loading():
            return False
        try:  # read first: the unsaved-work question is worth asking only for a file that opens
            model = Sequential.load(path)
        except ModelFileError as error:
            self._refuse(QtWidgets.QMessageBox.Icon.Warning, "Cannot open weights",
                         f"{error}\n\nThe current model is unchanged.")
            return False
        if not self.confirm_discard("Opening other weights", ("run",)):
            return False
        trained_with = _trained_with_note(model)
        self._show_other_weights(model, os.path.basename(path) + trained_with)
        self.statusBar().showMessage(f"Opened {path}{trained_with}", 5000)
        return True

    def open_file(self, path: str) -> bool:
        """Open a session or a weights file, whichever ``path`` is (a file named on the command line or
        dropped on the window). Returns True when opened. The content decides; a file too damaged to say
        (a truncated zip) goes by its name: a ``.convscope.npz`` is refused as a damaged session, with the
        session loader's reason (the weights loader called it "not a readable ConvScope model")."""
        kind = file_kind(path) or ("session" if path.lower().endswith(SESSION_SUFFIX) else "weights")
        return self.open_session(path) if kind == "session" else self.open_weights(path)

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 (Qt naming)
        if _dropped_file(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 (Qt naming)
        path = _dropped_file(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            # After the drop has ended: opening may ask a question, and the dragging program waits meanwhile.
            QtCore.QTimer.singleShot(0, self, lambda: self.open_file(path))

    def save_weights(self, path: str) -> bool:
        """Write the weights shown to ``path`` (atomically: a temporary file renamed into place)."""
        try:
            self.display_model.save(path)
        except OSError as error:
            self._refuse(QtWidgets.QMessageBox.Icon.Warning, "Cannot save weights", write_failure(path, error))
            return False
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    @QtCore.Slot()
    def _open_weights_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open weights", self.settings.last_dir(),
                                                        "ConvScope weights (*.npz);;All files (*)")
        if path:
            self.settings.set_last_dir(os.path.dirname(path))
            self.open_weights(path)

    @QtCore.Slot()
    def _save_weights_dialog(self) -> None:
        default = os.path.join(self.settings.last_dir(), f"{self.display_model.name}.npz")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save weights", default,
                                                        "ConvScope weights (*.npz)")
        path = path and completed_save_path(self, path, ".npz", "Save weights")
        if path:
            self.settings.set_last_dir(os.path.dirname(path))
            self.save_weights(path)

    def export_view(self, path: str) -> None:
        """Write the current tab's plot or heatmap to a PNG file (ValueError from a view with nothing
        to show yet, OSError when the file cannot be written)."""
        view = self.current_view()
        if hasattr(view, "export_png"):
            view.export_png(path)
            return
        graphics = [g for g in view.findChildren(pg.GraphicsView) if g.isVisible()]
        if graphics:
            export_scene_png(graphics[0].scene(), path)
        else:
            save_png(view.grab().toImage(), path)

    @QtCore.Slot()
    def _export_dialog(self) -> None:
        title = (self.current_title() or "view").lower().replace(" ", "-")
        default = os.path.join(self.settings.last_dir(), f"convscope-{title}.png")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export as PNG", default, "PNG image (*.png)")
        path = path and completed_save_path(self, path, ".png", "Export as PNG")
        if not path:
            return
        self.settings.set_last_dir(os.path.dirname(path))
        try:
            self.export_view(path)
        except ValueError as error:  # the view has nothing to show yet
            self._refuse(QtWidgets.QMessageBox.Icon.Information, "Nothing to export",
                         f"{self.current_title()}: {error}.")
            return
        except OSError as error:
            self._refuse(QtWidgets.QMessageBox.Icon.Warning, "Cannot export", write_failure(path, error))
            return
        self.statusBar().showMessage(f"Exported {path}", 5000)

    # ------------------------------------------------------------------ sessions

    def _experiments_state(self):
        panel = self._view("experimentsPanel")
        return panel.session_state() if panel is not None and hasattr(panel, "session_state") else None

    def _session_to_save(self) -> Session:
        """The session shown now: the run going (paused by the caller), else the run the weights come
        from, else just the weights with the panel's settings."""
        experiments = self._experiments_state()
        if self.worker is not None:
            session = Session.from_trainer(self.worker.trainer, self.panel.dataset_key, experiments,
                                           self.timeline, self.health)
            return dataclasses.replace(session, earlier=self._earlier_curve())
        if self._lineage is not None:
            return dataclasses.replace(self._lineage, experiments=experiments, earlier=self._earlier_curve())
        model = self.display_model
        config = self.panel.config() or TrainConfig()
        if config.preset != model.name and model.name in PRESETS:
            config = dataclasses.replace(config, preset=model.name)
        return Session(model.saved_spec(), model.get_weights(), dataclasses.asdict(config),
                       data=data_description(self.train_data, self.panel.dataset_key),
                       experiments=experiments)

    def _earlier_curve(self) -> dict[str, np.ndarray] | None:
        """The plotted curve of the runs before the current one (its first ``_step_offset`` steps), in
        the form ``Session.earlier`` stores ({"steps.loss": (k,), "epochs.step": (e,), ...}); None
        when the current run is the first."""
        if self._step_offset == 0:
            return None
        losses, epochs = self.loss_view.curves_until(self._step_offset)  # (k,), (e, 5)
        return {"steps.loss": losses, **{key: epochs[:, i] for i, key in enumerate(EARLIER_EPOCH_KEYS)}}

    def _pause_between_steps(self, doing: str) -> bool:
        """Pause a run going (there must be one: ``self.worker``) and wait until the training thread is
        between steps, so that its state holds still (to save it, or to quote its step count). A step in
        flight ends in well under a second; the validation ending an epoch of full MNIST takes seconds, so
        after ``SAVE_WAIT_MS`` a dialog titled ``doing`` shows how far it is, with Cancel, while the window
        keeps painting (it used to freeze for up to 3 s). True when between steps, False when cancelled
        (the run stays paused)."""
        self.pause()
        if self.worker.wait_between_steps(SAVE_WAIT_MS):
            return True
        dialog = QtWidgets.QProgressDialog("Waiting for the training step in progress to end…", "Cancel", 0, 0,
                                           self)
        dialog.setWindowTitle(doing)
        dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)

        worker, lineage = self.worker, self._lineage

        def poll() -> None:
            if self.worker is not worker:  # the run ended (its session kept) or the window closed (nothing)
                if self._lineage is not lineage:
                    dialog.accept()
                else:
                    dialog.reject()
            elif worker.between_steps():
                dialog.accept()
            elif self._validating is not None:
                done, total = self._validating
                dialog.setLabelText(f"Waiting for the epoch's validation to end: {done:,} of {total:,} images…")
        poll()
        timer = QtCore.QTimer(dialog, interval=20)
        timer.timeout.connect(poll)
        timer.start()
        dialog.canceled.connect(timer.stop)
        accepted = dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted
        dialog.deleteLater()
        return accepted

    def save_session(self, path: str) -> bool:
        """Write the whole session (weights, optimiser state, loss history, settings, kernel timeline,
        gradient health, experiment results) to ``path``, atomically. A running training pauses first and
        stays paused."""
        if self.worker is not None:
            if not self._pause_between_steps("Saving the session"):
                self.statusBar().showMessage("Session not saved (cancelled while the training thread was busy).",
                                             5000)
                return False
        try:
            save_session(path, self._session_to_save())
        except OSError as error:
            self._refuse(QtWidgets.QMessageBox.Icon.Warning, "Cannot save the session",
                         write_failure(path, error))
            return False
        except (TypeError, ValueError) as error:  # a part the file cannot hold: its message names no file
            self._refuse(QtWidgets.QMessageBox.Icon.Warning, "Cannot save the session",
                         f"{error}\n\nAny earlier file at {path} is unchanged.")
            return False
        panel = self._view("experimentsPanel")
        running = panel is not None and getattr(panel, "state", "idle") != "idle"
        self._unsaved -= {"run"} if running else {"run", "experiment"}
        self._session_path = os.path.abspath(path)
        self._steps_saved = self.worker.steps_done if self.worker is not None else 0
        self._steps_in_session = self._total_steps()
        self.statusBar().showMessage(f"Saved session {path}" + (
            " without the experiment still running (its curves are incomplete): save again when it has "
            "finished to keep it" if running else ""), 10000 if running else 5000)
        return True

    def open_session(self, path: str) -> bool:
        """Show a saved session: its weights, loss curves, settings, kernel timeline, gradient health
        and experiment results; Start (with "Continue" ticked) resumes its training exactly. A bad file is refused with
        a message and nothing changes. Returns True when opened."""
        if self._run_state != "idle":
            self._refuse(QtWidgets.QMessageBox.Icon.Information, "Training in progress",
                         "Stop the run before opening a session.")
            return False
        if self._loading():
            return False
        try:  # read before asking about unsaved work, as open_weights does
            session = open_session(path)
            model = session.build_model()
        except ValueError as error:  # SessionFileError names the file and the part
            self._refuse(QtWidgets.QMessageBox.Icon.Warning, "Cannot open the session",
                         f"{error}\n\nNothing was changed.")
            return False
        if not self.confirm_discard("Opening a session"):
            return False
        key = (session.data or {}).get("key")
        if not session.same_data(self.train_data) and key in ("bundled", "digits8x8"):
            self.request_dataset(key)  # data the app has at hand: load it, so Start can resume exactly
        self.panel.set_config(session.config())
        self.panel.continue_check.setChecked(True)
        self._show_history(session)
        name = os.path.basename(path)
        self._set_display_model(model, f"session {name}, step {session.step}{_trained_with_note(model)}",
                                lineage=session)
        self._set_recorders(session.health, session.timeline)
        panel = self._view("experimentsPanel")
        if panel is not None and hasattr(panel, "restore_session"):
            panel.restore_session(session.experiments)
        note = "" if session.same_data(self.train_data) else (
            " It was trained on other data: load that data to continue it exactly.")
        self._unsaved.clear()
        self._session_path = os.path.abspath(path)
        self.statusBar().showMessage(f"Opened session {name} at step {session.step}: Start continues its "
                                     f"training.{note}", 10000)
        return True

    def _show_history(self, session: Session) -> None:
        """The loss curves, progress, step count and training time of ``session`` (as they were when it
        was saved), after the curve of the runs it continued (``session.earlier``)."""
        self.loss_view.clear_overlays()
        self.loss_view.clear()
        earlier = session.earlier or {}
        offset = len(earlier.get("steps.loss", ()))
        if offset:
            self.loss_view.append_steps(np.arange(1, offset + 1), earlier["steps.loss"])
            for k in range(len(earlier["epochs.step"])):
                self.loss_view.append_epoch(int(earlier["epochs.step"][k]),
                                            *(float(earlier[key][k]) for key in EARLIER_EPOCH_KEYS[1:]))
        epochs_before = self.loss_view.epoch_count
        history = session.history or {}
        losses = history.get("steps.loss", np.zeros(0))
        fractions = history.get("steps.epoch_fraction", np.zeros(0))
        self.loss_view.append_steps(offset + np.arange(1, len(losses) + 1), losses)
        epochs = {name: history.get(f"epochs.{name}", np.zeros(0))
                  for name in ("train_loss", "val_loss", "train_accuracy", "val_accuracy")}
        start = offset  # the run's first epoch began where the earlier curve ends, each next where one ended
        for k in range(len(epochs["train_loss"])):
            # epoch k+1 ends at the step whose epoch fraction is k+1 (fraction = step / steps per epoch)
            step = int(np.searchsorted(fractions, k + 1 - 1e-9)) + 1
            self.loss_view.append_epoch(offset + step, *(float(epochs[name][k]) for name in epochs), start=start)
            start = offset + step
        self._step_offset, self._last_step = offset, offset + len(losses)
        self._elapsed_before_ms = round(1000 * session.training_seconds())
        if len(losses):
            steps_per_epoch = round(len(losses) / fractions[-1])
            total = steps_per_epoch * session.config().epochs
            self.loss_view.set_run_extent(offset + max(total, len(losses)),
                                          epochs_before + max(session.config().epochs, len(epochs["train_loss"])))
            self._show_progress(min(len(losses), total), total, steps_per_epoch)
        else:
            self._show_progress(0, 0, 0)

    @QtCore.Slot()
    def _open_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open session", self.settings.last_dir(),
            f"ConvScope sessions (*{SESSION_SUFFIX});;All files (*)")
        if path:
            self.settings.set_last_dir(os.path.dirname(path))
            self.open_session(path)

    @QtCore.Slot()
    def _save_session_dialog(self) -> bool:
        """Ask where, then save the session; True when saved."""
        default = self._session_path or os.path.join(self.settings.last_dir(),
                                                     f"{self.display_model.name}{SESSION_SUFFIX}")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save session", default,
                                                        f"ConvScope sessions (*{SESSION_SUFFIX})")
        path = path and completed_save_path(self, path, SESSION_SUFFIX, "Save session", replaces=".npz")
        if not path:
            return False
        self.settings.set_last_dir(os.path.dirname(path))
        return self.save_session(path)

    def confirm_discard(self, doing: str, parts: tuple[str, ...] = ("run", "experiment"), hint: str = "") -> bool:
        """Before ``doing`` (e.g. "Closing ConvScope") throws away work of ``parts`` that no saved session
        holds ("run": training steps taken; "experiment": results, or one still running): True when there is
        none, the learner asked not to be asked, saved it now, or chose Discard (or pressed Ctrl-C in the
        terminal: :meth:`quit_from_terminal`); False (Cancel) leaves everything as it is.

        A run going pauses before the question (as Save session pauses first): training on behind it made
        its step count stale, and Save stored a later state than the one described. Cancel (or a Save that
        saved nothing) resumes it; Save keeps it paused, as Save session does; Discard goes on (the caller
        ends the run). ``hint``: a sentence put first in the question's informative text (e.g. how to keep
        the work instead)."""
        pausing = (self._run_state == "running" and self.settings.ask_before_discarding()
                   and not self._quitting_from_terminal)
        if pausing and not self._pause_between_steps(doing):
            self.start_or_resume()
            return False
        answer = self._ask_before_discarding(doing, parts, hint)
        if pausing and answer == "cancel" and self._run_state == "paused":
            self.start_or_resume()
        return answer in ("go on", "saved")

    def _ask_before_discarding(self, doing: str, parts: tuple[str, ...], hint: str = "") -> str:
        """:meth:`confirm_discard`'s question, asked when there is work to lose: "go on" (nothing to lose,
        not asked, Discard, Ctrl-C), "saved" (Save, and nothing is discarded any more), "saved, not done" (Save
        over an experiment still running: not in the session, so nothing is done), "cancel" (Cancel, or Save
        then no file chosen or not saved)."""
        experiments = self._view("experimentsPanel")
        running = "experiment" in parts and experiments is not None and experiments.state != "idle"
        # the training thread may have taken steps the plot has not received yet
        stepped = self.worker is not None and self.worker.steps_done > self._steps_saved
        losing = [part for part in parts if part in self._unsaved or (part == "run" and stepped)]
        if not (losing or running) or not self.settings.ask_before_discarding():
            return "go on"
        what, many = [], running and "run" in losing
        if "run" in losing:
            steps = self._total_steps() - self._steps_in_session
            what.append(f"{plural(steps, 'training step')} (weights and loss curves)")
            many = many or steps != 1
        if running or "experiment" in losing:
            what.append("the experiment still running" if running else "the experiment's results")
        text = f"{doing} discards {' and '.join(what)}. No saved session holds {'them' if many else 'it'}."
        if self._quitting_from_terminal:
            print(f"ConvScope: Ctrl-C: {text[:1].lower()}{text[1:]}", file=sys.stderr)
            return "go on"
        buttons = QtWidgets.QMessageBox.StandardButton
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "Unsaved work", text,
                                    buttons.Save | buttons.Discard | buttons.Cancel, self)
        box.setInformativeText((f"{hint} " if hint else "")
                               + "Save the session to reopen it later (File > Open session)."
                               + (" An experiment is saved with it once it has finished." if running else ""))
        box.setDefaultButton(buttons.Save)
        box.setEscapeButton(buttons.Cancel)
        dont_ask = QtWidgets.QCheckBox("Don't ask again (File > Ask before discarding unsaved work)", box)
        box.setCheckBox(dont_ask)
        self._question = box
        try:
            box.exec()
        finally:
            self._question = None
        clicked = box.clickedButton()  # None when quit_from_terminal closed the question
        answer = box.standardButton(clicked) if clicked is not None else buttons.NoButton
        box.deleteLater()
        if self._quitting_from_terminal:  # Ctrl-C while the question was open
            return "go on"
        if answer not in (buttons.Save, buttons.Discard):
            return "cancel"
        if dont_ask.isChecked():
            self.settings.set_ask_before_discarding(False)
            self.action_ask_discard.setChecked(False)
        if answer == buttons.Discard:
            return "go on"
        if not self._save_session_dialog():
            return "cancel"
        # A running experiment is not in the session saved now: it goes on, and nothing is discarded.
        return "saved, not done" if running else "saved"

    def quit_from_terminal(self) -> None:
        """Ctrl-C in the terminal: close without the unsaved-work question (whoever pressed it may have no
        screen to answer on, under xvfb-run or offscreen), an open question included; stderr says what
        was not saved."""
        self._quitting_from_terminal = True
        if self._question is not None:
            self._question.reject()  # its exec() returns; confirm_discard then goes on as Discard
        else:
            self.close()

    def _total_steps(self) -> int:
        """Steps of the run shown (numbered as on the loss plot), also those the plot has not received."""
        if self.worker is None:
            return self._last_step
        return max(self._last_step, self._step_offset + self.worker.steps_done)

    # ------------------------------------------------------------------ exports

    def export_data(self, directory: str) -> list[str]:
        """Write the current view's numbers and pictures (its own PNG/CSV, every plot and heatmap) into
        ``directory``; problems are shown in a message box. Returns the paths written."""
        title = self.current_title() or "view"
        stem = "convscope-" + title.lower().replace(" ", "-")

        def replace(existing: list[str]) -> bool:
            return QtWidgets.QMessageBox.question(
                self, "Export data", f"{plural(len(existing), 'file')} of this export already exist in {directory} "
                f"({', '.join(existing[:3])}{' …' if len(existing) > 3 else ''}).\nReplace them?"
            ) == QtWidgets.QMessageBox.StandardButton.Yes

        def write(folder: str) -> list[str]:
            written = export_view_data(self.current_view(), folder, stem)
            if not written:
                raise ValueError("it has no plot or heatmap to export")
            return written

        try:
            paths = export_all_or_nothing(directory, write, replace)
        except ValueError as error:  # the view has nothing to export yet
            self._refuse(QtWidgets.QMessageBox.Icon.Information, "Nothing to export",
                         f"{title}: {error}.")
            return []
        except OSError as error:
            self._refuse(QtWidgets.QMessageBox.Icon.Warning, "Cannot export",
                         write_failure(f"the export into {directory}", error,
                                       "Nothing was written there (no partial set)."))
            return []
        if not paths:
            self.statusBar().showMessage("Nothing exported.", 5000)
        else:
            self.statusBar().showMessage(f"Exported {plural(len(paths), 'file')} to {directory}", 5000)
        return paths

    @QtCore.Slot()
    def _export_data_dialog(self) -> None:
        directory = QtWidgets.QFileDialog.getExistingDirectory(self, "Export data (PNG + CSV) into",
                                                               self.settings.last_dir())
        if directory:
            self.settings.set_last_dir(directory)
            self.export_data(directory)

    @QtCore.Slot()
    def _export_animation_dialog(self) -> None:
        # The dialog shows its own boxes (nothing to export, a file it cannot write), as _refuse does.
        self.statusBar().clearMessage()
        # Training goes on while the frames render (the progress dialog lets events through): the
        # view keeps the weights it shows now until the export ends.
        self._exporting = self.current_view()
        try:
            paths = export_animation_dialog(self._exporting, self, self.settings.last_dir())
        finally:
            self._exporting = None
            self._push_model()
        if paths:
            self.settings.set_last_dir(os.path.dirname(paths[0]))
            self.statusBar().showMessage(f"Exported {paths[0]}" + (f" and {plural(len(paths) - 1, 'more frame')}"
                                                                   if len(paths) > 1 else ""), 5000)

    def _update_export_actions(self) -> None:
        """Export animation only for views that have one (the conv stepper, the pooling view, the kernel
        timeline)."""
        try:
            frame_source(self.current_view())
        except TypeError:
            self.action_export_animation.setEnabled(False)
        else:
            self.action_export_animation.setEnabled(True)


def _trained_with_note(model: Sequential) -> str:
    """" (trained with the broken_update variant)" for weights a backprop variant trained, else ""."""
    variants = model.variant_labels()
    return f" (trained with the {', '.join(variants)} variant)" if variants else ""


def _dropped_file(mime: QtCore.QMimeData) -> str | None:
    """The path of the one local .npz file being dragged, or None (several files, other kinds, web links)."""
    urls = mime.urls() if mime.hasUrls() else []
    if len(urls) != 1 or not urls[0].isLocalFile() or not urls[0].toLocalFile().lower().endswith(".npz"):
        return None
    return urls[0].toLocalFile()
