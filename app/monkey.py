"""Monkey test: a seeded stream of random user actions on the real MainWindow, checked after each one.

``python -m app.monkey --seed N --actions M`` opens a MainWindow (its own settings file, training on a
small subset of the bundled MNIST so runs last seconds) and does M random things a user can do:
clicks with the mouse on visible, enabled buttons, check boxes and radio buttons; picks items in combo
boxes; types valid and invalid text (empty, "abc", "-1", "1e9", "0,5", huge numbers) into line edits
and spin boxes and presses Enter or Tab (and, as a learner reading the reasons under the form would,
puts a usual value back into a field outlined as wrong, so that runs still start); presses the window's
shortcuts; clicks tab bars; triggers
menu actions (all but Quit); resizes the window; draws strokes on the drawing pad; clicks and scrolls
in plots and views; waits while training goes on.

Dialogs never block: file dialogs answer a path in a temporary folder (sometimes one that cannot
work, or Cancel), the animation export's frame question a random choice, and every other dialog
(message boxes, the unsaved-work question, progress dialogs) is answered from a timer with a random
button, accept or reject, also inside the nested event loops of ``exec()``. The MNIST download is
replaced by one that fails at once: no network.

After every action the driver checks: no exception reached ``sys.excepthook`` (an exception escaping a
Qt slot lands there), Qt printed no warning, the event loop still turns, the Start / Pause / Step /
Stop / Reset buttons agree with the run state, a run's training thread has ended once the window
no longer holds the run, and the training steps reach the window: every step the training thread has
taken (single steps asked for while paused too) is plotted within ``LIVENESS_S``, and while the run is
running new steps keep being plotted (unless it pauses, diverges, validates an epoch or ends meanwhile).
At the end the window is closed and must have joined its threads.

The last line printed is JSON: ``{"seed":…, "actions":…, "failures": [...], "seconds":…}`` and
``dialogs_answered``, ``runs`` (training runs started) and ``steps_plotted`` (the training steps the
loss plot gained: did training reach the window?); each failure names the action number, the
problems found and the actions that led to it. The run stops at the first failure unless
``--keep-going``; the exit status is 1 when there was one. Timing plays its part (training runs on its
own thread), so a seed does not replay exactly: the lead-up in a failure is what to reproduce.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest

from app.soak import measurement_window
from app.views import drawing_pad
from engine.trainer import TrainConfig

LEFT = QtCore.Qt.MouseButton.LeftButton
NO_MODIFIER = QtCore.Qt.KeyboardModifier.NoModifier
# Typed into any field; two in three valid for most (a form left invalid disables Start: no training)
VALID_TEXTS = ("0", "1", "2", "3", "0.5", "0.01", "0.05", "1e-4", "16", "64", "1,000", " 7 ")
INVALID_TEXTS = ("", "abc", "-1", "0,5", "1e9", "99999999999999999999", "nan", "inf", "1..2")
SIZES = ((1024, 700), (1280, 800), (1400, 900), (1600, 1000), (1920, 1080))
SETTLE_MS = (5, 60)  # each action is followed by this much event loop (random within), as a user pauses
WAIT_MS = (100, 800)  # the "wait" action: training and timers go on meanwhile
HISTORY = 12  # actions named in a failure report (the lead-up to it)
STUCK_S = 10.0  # an action (and its settling) taking longer than this: the window stopped responding
# A step the training thread took and the window has not plotted this long after, or a running run plotting
# no new step for this long: the steps stopped reaching the window (a step of the presets on the small data
# takes well under a second, an epoch-end validation of its 50 images less).
LIVENESS_S = 10.0
RUN_STATES = ("idle", "running", "paused", "diverged")
# Qt messages about what the platform plugin cannot do (the offscreen one cannot size a floating dock's
# native window, say): the platform's limits, not the app's faults.
PLATFORM_LIMITS = ("This plugin does not support",)


def window_shortcuts(window: QtWidgets.QMainWindow) -> list[QtGui.QKeySequence]:
    """Every key sequence of the window's menu actions except Quit, plus the keys the views answer
    themselves (Escape clears the pad, Left / Home / End step the stepper and pooling view, Tab moves
    the focus): the keys Help > Keyboard shortcuts lists."""
    keys = [QtGui.QKeySequence(k) for k in ("Escape", "Left", "Home", "End", "Tab", "PgDown", "PgUp", "Return")]
    for action in window.findChildren(QtGui.QAction):
        shortcut = action.shortcut()
        if not shortcut.isEmpty() and shortcut != QtGui.QKeySequence("Ctrl+Q"):
            keys.append(shortcut)
    return keys


def visible_enabled(window: QtWidgets.QWidget, kind) -> list[QtWidgets.QWidget]:
    """Widgets of ``kind`` in ``window`` (floating docks included) a user can reach now."""
    return [w for w in window.findChildren(kind)
            if w.isVisible() and w.isEnabled() and not w.visibleRegion().isEmpty()]


class DialogAnswerer(QtCore.QObject):
    """Answers any dialog that shows up, from a timer (so also inside a dialog's own ``exec()`` loop): a
    message box gets a random button clicked (its "don't ask again" box sometimes ticked first), a
    progress dialog is cancelled or left to finish, any other dialog is accepted or rejected."""

    TICK_MS = 40

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.answered = 0
        self._seen: dict[int, float] = {}  # id of a dialog -> when it was first seen
        self.timer = QtCore.QTimer(self, interval=self.TICK_MS)
        self.timer.timeout.connect(self.answer)

    @staticmethod
    def open_dialogs() -> list[QtWidgets.QDialog]:
        return [w for w in QtWidgets.QApplication.topLevelWidgets()
                if isinstance(w, QtWidgets.QDialog) and w.isVisible()]

    @QtCore.Slot()
    def answer(self) -> None:
        for dialog in self.open_dialogs():
            first_seen = self._seen.setdefault(id(dialog), time.perf_counter())
            if time.perf_counter() - first_seen < self.TICK_MS / 1000:
                continue  # one tick on screen first: the code that opened it gets to run its loop
            if isinstance(dialog, QtWidgets.QProgressDialog):
                # mostly let the work finish: cancelling a save is a choice, not the rule
                if self.rng.random() < 0.1 or time.perf_counter() - first_seen > 3.0:
                    dialog.cancel()
                else:
                    continue
            elif isinstance(dialog, QtWidgets.QMessageBox) and dialog.buttons():
                if dialog.checkBox() is not None and self.rng.random() < 0.2:
                    dialog.checkBox().setChecked(True)
                QTest.mouseClick(self.rng.choice(dialog.buttons()), LEFT)
            else:
                dialog.accept() if self.rng.random() < 0.5 else dialog.reject()
            self._seen.pop(id(dialog), None)
            self.answered += 1


class FileAnswers:
    """Stand-ins for the static file and input dialogs: a path in ``folder`` (existing files when
    opening), or one that cannot work (a missing folder, a file that is not a model), or Cancel."""

    def __init__(self, rng: random.Random, folder: str) -> None:
        self.rng = rng
        self.folder = folder
        with open(os.path.join(folder, "not-a-model.npz"), "wb") as junk:
            junk.write(b"this is not a zip file")

    def _bad_or_cancel(self) -> str:
        return self.rng.choice(["", os.path.join(self.folder, "missing", "x.npz"), "/proc/convscope.npz"])

    def open_file(self, *args, **kwargs) -> tuple[str, str]:
        files = [os.path.join(self.folder, f) for f in sorted(os.listdir(self.folder))
                 if os.path.isfile(os.path.join(self.folder, f))]
        return (self.rng.choice(files) if self.rng.random() < 0.7 else self._bad_or_cancel()), ""

    def save_file(self, *args, **kwargs) -> tuple[str, str]:
        name = self.rng.choice(["weights.npz", "run.convscope.npz", "view.png", "anim.gif", "noext", "frames.png"])
        return (os.path.join(self.folder, name) if self.rng.random() < 0.75 else self._bad_or_cancel()), ""

    def directory(self, *args, **kwargs) -> str:
        return self.folder if self.rng.random() < 0.7 else self._bad_or_cancel()

    def item(self, parent, title, label, items, current=0, editable=True, *args, **kwargs) -> tuple[str, bool]:
        return self.rng.choice(list(items)), self.rng.random() < 0.8

    @contextlib.contextmanager
    def installed(self):
        """The static dialogs answered by this object, and the MNIST download offline, meanwhile."""
        from engine import data as engine_data

        def offline(*args, **kwargs):
            raise OSError("no network in the monkey test")

        patches = [(QtWidgets.QFileDialog, "getOpenFileName", self.open_file),
                   (QtWidgets.QFileDialog, "getSaveFileName", self.save_file),
                   (QtWidgets.QFileDialog, "getExistingDirectory", self.directory),
                   (QtWidgets.QInputDialog, "getItem", self.item),
                   (engine_data, "download_mnist", offline)]
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        try:
            for owner, name, replacement in patches:
                setattr(owner, name, replacement)
            yield
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)


class ProblemRecorder:
    """Exceptions that reach ``sys.excepthook``, Qt's warnings, critical and fatal messages and Python's
    warnings (pyqtgraph reports an exception in a paint as one, NumPy its overflows), while installed;
    the previous hook and handlers still see them (pytest-qt fails the test on its own)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _excepthook(self, kind, value, tb) -> None:
        self.problems.append("exception: " + "".join(traceback.format_exception(kind, value, tb)).strip())
        self._previous_hook(kind, value, tb)

    def _qt_message(self, mode, context, message) -> None:
        if (mode not in (QtCore.QtMsgType.QtDebugMsg, QtCore.QtMsgType.QtInfoMsg)
                and not message.startswith(PLATFORM_LIMITS)):
            self.problems.append(f"Qt {mode.name}: {message}")
        if self._previous_handler is not None:
            self._previous_handler(mode, context, message)

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.problems.append(f"{category.__name__} at {filename}:{lineno}: {message}")
        self._previous_showwarning(message, category, filename, lineno, file, line)

    def take(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems

    @contextlib.contextmanager
    def installed(self):
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        self._previous_handler = QtCore.qInstallMessageHandler(self._qt_message)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")  # each time, not once per place: every action is checked
                self._previous_showwarning = warnings.showwarning
                warnings.showwarning = self._warning
                yield self
        finally:
            QtCore.qInstallMessageHandler(self._previous_handler)
            sys.excepthook = self._previous_hook


def random_point(widget: QtWidgets.QWidget, rng: random.Random) -> QtCore.QPoint:
    return QtCore.QPoint(rng.randrange(max(1, widget.width())), rng.randrange(max(1, widget.height())))


def wheel(widget: QtWidgets.QWidget, point: QtCore.QPoint, steps: int) -> None:
    """A mouse-wheel turn of ``steps`` notches over ``point`` of ``widget`` (QTest has no wheel)."""
    global_point = QtCore.QPointF(widget.mapToGlobal(point))
    event = QtGui.QWheelEvent(QtCore.QPointF(point), global_point, QtCore.QPoint(), QtCore.QPoint(0, 120 * steps),
                              QtCore.Qt.MouseButton.NoButton, NO_MODIFIER, QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(widget, event)


class Monkey:
    """Random actions on ``window`` from ``seed``; :meth:`run` does them and checks after each."""

    def __init__(self, window, seed: int, folder: str) -> None:
        self.window = window
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.answerer = DialogAnswerer(random.Random(seed + 1))
        self.files = FileAnswers(random.Random(seed + 2), folder)
        self.recorder = ProblemRecorder()
        self.history: list[str] = []
        self.failures: list[dict] = []
        self.shortcuts = window_shortcuts(window)
        self.workers: list = []  # every run's worker seen, until its thread is checked to have ended
        self.runs_seen = 0  # training runs the window started (a summary figure: did the monkey train?)
        self.steps_plotted = 0  # steps the loss plot gained over the actions (another: did training reach it?)
        self._plot_size = 0  # points of the loss plot at the last check
        self.actions = [(self.click_button, 8), (self.click_dock_button, 0.3), (self.choose_combo_item, 3),
                        (self.type_text, 4), (self.correct_settings, 2),
                        (self.press_shortcut, 4), (self.click_tab, 4), (self.trigger_menu_action, 3),
                        (self.resize_window, 1), (self.draw_on_pad, 2), (self.poke_view, 3), (self.wait, 2)]

    # ------------------------------------------------------------------ actions

    def _pick(self, kind, usable) -> QtWidgets.QWidget | None:
        """A random widget of ``kind`` that a user can reach now and ``usable(widget)`` accepts, or None."""
        widgets = [w for w in visible_enabled(self.window, kind) if usable(w)]
        return self.rng.choice(widgets) if widgets else None

    def click_button(self, docks: bool = False) -> str:
        """A click on a button, check box or radio button of the views and panel (``docks``: on a dock's
        close or float button instead: rarer, as a closed training panel leaves little to do)."""
        button = self._pick(QtWidgets.QAbstractButton, lambda b: b.objectName().startswith("qt_dockwidget_") == docks)
        if button is None:
            return "click: no button"
        QTest.mouseClick(button, LEFT, NO_MODIFIER, button.rect().center())
        return f"click {type(button).__name__} {button.objectName() or button.text()!r}"

    def click_dock_button(self) -> str:
        return self.click_button(docks=True)

    def choose_combo_item(self) -> str:
        combo = self._pick(QtWidgets.QComboBox, QtWidgets.QComboBox.count)
        if combo is None:
            return "combo: none"
        index = self.rng.randrange(combo.count())
        # as a user's choice from the open list does: the current item changes, then activated fires
        combo.setCurrentIndex(index)
        combo.activated.emit(index)
        return f"combo {combo.objectName()!r} -> {combo.itemText(index)!r}"

    def type_text(self) -> str:
        edit = self._pick(QtWidgets.QLineEdit, lambda e: not e.isReadOnly())
        if edit is None:
            return "type: no field"
        return self._type_into(edit, self.rng.choice(VALID_TEXTS if self.rng.random() < 2 / 3 else INVALID_TEXTS))

    def correct_settings(self) -> str:
        """What a learner does after reading the reasons under the training form: type the usual value
        into a field outlined as wrong, or untick "Continue" (the weights shown are another preset's)."""
        panel = self.window.panel
        if not panel.isVisible() or panel.state != "idle" or not panel.errors():
            return "correct: nothing to correct"
        fields = {"epochs": panel.epochs, "batch_size": panel.batch_size, "seed": panel.seed, **panel.float_edits}
        wrong = [(name, field) for name, field in fields.items() if field.styleSheet() and field.isEnabled()]
        if not wrong:
            if not panel.continue_check.isChecked():
                return "correct: nothing a field can fix"
            QTest.mouseClick(panel.continue_check, LEFT, NO_MODIFIER, panel.continue_check.rect().center())
            return "correct: untick Continue"
        name, field = self.rng.choice(wrong)
        edit = field.lineEdit() if isinstance(field, QtWidgets.QAbstractSpinBox) else field
        return "correct: " + self._type_into(edit, f"{getattr(TrainConfig(), name):g}")

    def _type_into(self, edit: QtWidgets.QLineEdit, text: str) -> str:
        """Click ``edit``, replace its text by ``text`` and press Return, Enter or Tab."""
        key = self.rng.choice([QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Tab, QtCore.Qt.Key.Key_Enter])
        QTest.mouseClick(edit, LEFT, NO_MODIFIER, edit.rect().center())
        QTest.keyClick(edit, QtCore.Qt.Key.Key_A, QtCore.Qt.KeyboardModifier.ControlModifier)
        QTest.keyClick(edit, QtCore.Qt.Key.Key_Delete)
        QTest.keyClicks(edit, text)
        QTest.keyClick(edit, key)
        owner = edit.parentWidget() if isinstance(edit.parentWidget(), QtWidgets.QAbstractSpinBox) else edit
        return f"type {text!r} + {key.name} into {owner.objectName() or type(owner).__name__!r}"

    def press_shortcut(self) -> str:
        # the training keys a third of the time: they are the ones a learner presses most
        training_keys = [QtGui.QKeySequence("Space"), QtGui.QKeySequence("Right")]
        sequence = self.rng.choice(training_keys if self.rng.random() < 1 / 3 else self.shortcuts)
        combination = sequence[0]
        target = QtWidgets.QApplication.focusWidget() or self.window
        QTest.keyClick(target, combination.key(), combination.keyboardModifiers())
        return f"key {sequence.toString()} on {target.objectName() or type(target).__name__!r}"

    def click_tab(self) -> str:
        bar = self._pick(QtWidgets.QTabBar, QtWidgets.QTabBar.count)
        if bar is None:
            return "tab: no tab bar"
        index = self.rng.randrange(bar.count())
        QTest.mouseClick(bar, LEFT, NO_MODIFIER, bar.tabRect(index).center())
        return f"tab {bar.tabText(index)!r}"

    def trigger_menu_action(self) -> str:
        actions = [a for menu in self.window.menuBar().findChildren(QtWidgets.QMenu) for a in menu.actions()
                   if a.isEnabled() and a.isVisible() and not a.isSeparator() and a.text() and a.menu() is None
                   and a.shortcut() != QtGui.QKeySequence("Ctrl+Q")]
        action = self.rng.choice(actions)
        action.trigger()
        return f"menu {action.text()!r}"

    def resize_window(self) -> str:
        width, height = self.rng.choice(SIZES)
        self.window.resize(width, height)
        return f"resize {width}x{height}"

    def draw_on_pad(self) -> str:
        canvases = visible_enabled(self.window, drawing_pad.PadCanvas)
        if not canvases:
            return "draw: pad hidden"
        canvas = canvases[0]
        walk = np.cumsum(self.np_rng.normal(0.0, 1.0, (self.rng.randrange(2, 30), 2)), axis=0)
        strokes = drawing_pad.place_strokes([walk], canvas.width(), self.rng.uniform(0.1, 0.9), self.np_rng)
        drawing_pad.replay_strokes(canvas, strokes)
        return f"draw a stroke of {len(walk)} points"

    def poke_view(self) -> str:
        """A click or a wheel turn at a random place of a plot, picture or list in the current views."""
        kinds = (QtWidgets.QGraphicsView, QtWidgets.QAbstractItemView, QtWidgets.QAbstractSlider)
        targets = [w for kind in kinds for w in visible_enabled(self.window, kind)]
        if not targets:
            return "poke: nothing"
        target = self.rng.choice(targets)
        surface = target.viewport() if isinstance(target, QtWidgets.QAbstractScrollArea) else target
        point = random_point(surface, self.rng)
        if self.rng.random() < 0.5:
            QTest.mouseClick(surface, LEFT, NO_MODIFIER, point)
            return f"click in {target.objectName() or type(target).__name__} at {point.x()},{point.y()}"
        steps = self.rng.choice([-3, -1, 1, 2])
        wheel(surface, point, steps)
        return f"wheel {steps} in {target.objectName() or type(target).__name__}"

    def wait(self) -> str:
        ms = self.rng.randint(*WAIT_MS)
        QTest.qWait(ms)
        return f"wait {ms} ms"

    # ------------------------------------------------------------------ checks

    def settle(self) -> None:
        """Let the event loop run as between a user's actions; answered dialogs close meanwhile."""
        QTest.qWait(self.rng.randint(*SETTLE_MS))
        deadline = time.perf_counter() + STUCK_S
        while DialogAnswerer.open_dialogs() and time.perf_counter() < deadline:
            QTest.qWait(DialogAnswerer.TICK_MS)

    def check(self) -> list[str]:
        """What is wrong after an action (empty: nothing)."""
        window, panel = self.window, self.window.panel
        problems = self.recorder.take()
        if DialogAnswerer.open_dialogs():
            problems.append(f"dialog still open: {[d.windowTitle() for d in DialogAnswerer.open_dialogs()]}")
        state = panel.state
        if state not in RUN_STATES + ("busy",):
            problems.append(f"unknown panel state {state!r}")
        if state != "busy":
            if (window.worker is None) != (state == "idle"):
                problems.append(f"panel state {state!r} but the window's worker is {window.worker!r}")
            expected = {panel.pause_button: state == "running", panel.stop_button: state != "idle",
                        panel.reset_button: state == "idle"}
            # idle: Start and Step whenever the settings are valid (the form lists why not)
            expected[panel.start_button] = expected[panel.step_button] = (
                state == "paused" or (state == "idle" and not panel.errors()))
            for button, enabled in expected.items():
                if button.isEnabled() != enabled:
                    problems.append(f"{button.objectName()} {'dis' if enabled else 'en'}abled while {state}")
        if window.worker is not None and all(w is not window.worker for w in self.workers):
            self.workers.append(window.worker)
            self.runs_seen += 1
        for worker in [w for w in self.workers if w is not window.worker]:
            if worker.is_running():
                problems.append("a run's training thread still runs after the window let the run go")
            self.workers.remove(worker)
        return problems

    def _plotted_run_step(self) -> int:
        """The last step the loss plot shows, as the current run's trainer numbers it (the plot's x axis
        carries the steps of the runs this one continues: the window's ``_step_offset``)."""
        return self.window._last_step - self.window._step_offset

    def _training_progressed(self, worker, steps_taken: int, plot_size: int) -> bool:
        """Whether the window shows the training going on since ``worker`` had taken ``steps_taken`` steps
        and the loss plot held ``plot_size`` points: those steps are plotted, and a running run plotted a
        new one or has a reason not to (it diverged, is validating an epoch, or ended: its last steps arrive
        before its end); a paused one has taken and plotted the single steps asked for (Step)."""
        window = self.window
        if window.worker is not worker:
            return True
        if window._run_state == "paused":  # no step comes once it is between steps: the count holds still
            return worker.between_steps() and self._plotted_run_step() >= worker.steps_done
        if self._plotted_run_step() < steps_taken:
            return False
        return (window._run_state != "running" or window._validating is not None
                or window.loss_view.steps.size > plot_size)

    def check_liveness(self) -> list[str]:
        """Wait (turning the event loop) until the training steps taken so far reach the window and a
        running run plots a new one; a problem when that takes more than ``LIVENESS_S``."""
        window, problems = self.window, []
        worker, plot_size = window.worker, window.loss_view.steps.size
        if worker is not None:
            steps_taken = worker.steps_done
            deadline = time.perf_counter() + LIVENESS_S
            while not self._training_progressed(worker, steps_taken, plot_size):
                if time.perf_counter() > deadline:
                    problems.append(f"training steps stopped reaching the window: the run is {window._run_state}, "
                                    f"its thread took {worker.steps_done} steps, the plot shows step "
                                    f"{self._plotted_run_step()} and no new one for {LIVENESS_S:g} s")
                    break
                QTest.qWait(10)
        size = window.loss_view.steps.size
        self.steps_plotted += size - self._plot_size if size >= self._plot_size else size  # less: cleared
        self._plot_size = size
        return problems

    def close_window(self) -> list[str]:
        """Close the window (the answerer may cancel the unsaved-work question: then without asking) and
        check that every thread was joined."""
        self.window.close()
        QTest.qWait(50)
        if self.window.isVisible():
            self.window.settings.set_ask_before_discarding(False)
            self.window.close()
        problems = self.recorder.take()
        if self.window.isVisible():
            problems.append("the window did not close")
        elif not self.window.closed_cleanly:
            problems.append("closing did not join every thread in time")
        problems += ["training thread of a run still running after close" for w in self.workers if w.is_running()]
        return problems

    # ------------------------------------------------------------------ driving

    def _fail(self, number: int, problems: list[str]) -> None:
        self.failures.append({"action": number, "problems": problems, "after": self.history[-HISTORY:]})

    def run(self, count: int, stop_at_first: bool = True) -> list[dict]:
        """Do ``count`` random actions, checking after each; then close the window. Returns the failures
        (``stop_at_first``: end at the first, whose lead-up is then the last actions done)."""
        functions, weights = zip(*self.actions)
        with self.recorder.installed(), self.files.installed():
            self.answerer.timer.start()
            try:
                for number in range(1, count + 1):
                    started = time.perf_counter()
                    try:
                        self.history.append(f"{number}: {self.rng.choices(functions, weights)[0]()}")
                    except Exception:  # the driver's own bug or one the action raised synchronously
                        self.history.append(f"{number}: raised")
                        self.recorder.problems.append("action raised: " + traceback.format_exc().strip())
                    self.settle()
                    problems = self.check()
                    if time.perf_counter() - started > STUCK_S:
                        problems.append(f"action and settling took {time.perf_counter() - started:.1f} s")
                    problems += self.check_liveness()  # its wait is not the action's: after the time taken
                    if problems:
                        self._fail(number, problems)
                        if stop_at_first:
                            break
                problems = self.close_window()
                if problems:
                    self._fail(len(self.history), problems)
            finally:
                self.answerer.timer.stop()
        return self.failures


def small_datasets():
    """Every 18th bundled training digit and every 10th validation one (250 + 50, every class): an
    epoch of VGG-7 takes about a second."""
    from engine.data import load_bundled_mnist

    train, val = load_bundled_mnist()
    return train.subset(slice(0, len(train), 18)), val.subset(slice(0, len(val), 10))


def run(seed: int, actions: int, stop_at_first: bool = True) -> dict:
    """Open a window, do ``actions`` random actions from ``seed``, close it -> the JSON summary's dict."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        window = measurement_window(os.path.join(folder, "settings"), size=(1400, 900))
        window.use_datasets(*small_datasets(), "bundled")
        window.settings.set_ask_before_discarding(True)  # the question is one more dialog to answer
        window.action_ask_discard.setChecked(True)
        monkey = Monkey(window, seed, folder)
        failures = monkey.run(actions, stop_at_first)
        window.deleteLater()
    return {"seed": seed, "actions": len(monkey.history), "failures": failures,
            "seconds": round(time.perf_counter() - started, 1), "dialogs_answered": monkey.answerer.answered,
            "runs": monkey.runs_seen, "steps_plotted": monkey.steps_plotted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.monkey", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the random actions (default 0)")
    parser.add_argument("--actions", type=int, default=500, help="how many actions (default 500)")
    parser.add_argument("--keep-going", action="store_true", help="go on after a failure (default: stop)")
    args = parser.parse_args(argv)
    QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    result = run(args.seed, args.actions, stop_at_first=not args.keep_going)
    print(json.dumps(result), flush=True)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
