"""Closing, opening or resetting over work no saved session holds asks first (Save / Discard / Cancel),
answered here in the real dialog with mouse clicks."""
import os

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from engine.session import open_session

LEFT = QtCore.Qt.MouseButton.LeftButton
Buttons = QtWidgets.QMessageBox.StandardButton


class Answer:
    """Clicks ``button`` (and first "Don't ask again" when ``dont_ask``) in the next question that shows;
    ``texts`` and ``details`` collect the questions asked and their informative texts."""

    def __init__(self, qtbot, button, dont_ask=False):
        self.qtbot, self.button, self.dont_ask, self.texts, self.details = qtbot, button, dont_ask, [], []
        self.timer = QtCore.QTimer(interval=20)
        self.timer.timeout.connect(self._answer)
        self.timer.start()

    def _answer(self):
        box = QtWidgets.QApplication.activeModalWidget()
        if not isinstance(box, QtWidgets.QMessageBox) or not box.isVisible() or box.windowTitle() != "Unsaved work":
            return
        self.texts.append(box.text())
        self.details.append(box.informativeText())
        if self.dont_ask:
            self.qtbot.mouseClick(box.checkBox(), LEFT, pos=QtCore.QPoint(8, box.checkBox().height() // 2))
        self.qtbot.mouseClick(box.button(self.button), LEFT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def trained_window(qtbot, make_window, steps=3):
    """A window that asks, after ``steps`` single training steps (then stopped: the weights stay shown)."""
    window = make_window(ask_before_discarding=True)
    for k in range(steps):
        qtbot.mouseClick(window.panel.step_button, LEFT)
        qtbot.waitUntil(lambda: window._last_step == k + 1, timeout=30_000)
    qtbot.mouseClick(window.panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)
    return window


def running_experiment(qtbot, make_window):
    """(window that asks, its experiments panel) with an experiment under way (20 epochs: long enough)."""
    window = make_window(ask_before_discarding=True)
    panel = window.findChild(QtWidgets.QWidget, "experimentsPanel")
    window.show_view(next(title for title, view in window.views.items() if view is panel))
    panel.epochs.setValue(20)
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: bool(panel.runs) and panel.runs[0].step >= 1, timeout=60_000)
    return window, panel


def test_closing_after_training_asks_and_cancel_keeps_the_window(qtbot, make_window):
    window = trained_window(qtbot, make_window)
    with Answer(qtbot, Buttons.Cancel) as answer:
        assert window.close() is False
    assert answer.texts == ["Closing ConvScope discards 3 training steps (weights and loss curves). "
                            "No saved session holds them."]
    assert window.isVisible() and window.display_model is not None
    with Answer(qtbot, Buttons.Discard) as answer:
        assert window.close() is True
    assert len(answer.texts) == 1 and not window.isVisible()


def test_save_in_the_question_saves_the_session_then_goes_on(qtbot, make_window, tmp_path, monkeypatch):
    window = trained_window(qtbot, make_window)
    weights = window.display_model.get_weights()
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *args: ("", ""))  # Save, then cancel
    with Answer(qtbot, Buttons.Save):
        assert window.close() is False  # no session saved: nothing closes
    path = tmp_path / "kept.convscope.npz"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *args: (str(tmp_path / "kept"), ""))
    with Answer(qtbot, Buttons.Save) as answer:
        assert window.close() is True
    assert len(answer.texts) == 1 and path.exists()
    session = open_session(path)
    assert session.step == 3
    for name, value in weights.items():
        np.testing.assert_array_equal(session.weights[name], value)


def test_nothing_is_asked_once_the_session_is_saved_or_before_any_training(qtbot, make_window, tmp_path):
    window = trained_window(qtbot, make_window)
    assert window.save_session(str(tmp_path / "s.convscope.npz"))
    with Answer(qtbot, Buttons.Cancel) as answer:
        assert window.close() is True
    assert answer.texts == []
    untouched = make_window(ask_before_discarding=True)
    with Answer(qtbot, Buttons.Cancel) as answer:
        assert untouched.close() is True
    assert answer.texts == []


@pytest.mark.parametrize("replace, doing", [
    (lambda window, path: window.load_pretrained(), "Loading the pretrained weights"),
    (lambda window, path: window.reset(), "Resetting the weights"),
    (lambda window, path: window.open_weights(path), "Opening other weights"),
    (lambda window, path: window.open_session(path), "Opening a session")])
def test_replacing_trained_weights_asks_and_cancel_keeps_them(qtbot, make_window, tmp_path, replace, doing):
    window = trained_window(qtbot, make_window)
    other = make_window("other.ini")
    path = str(tmp_path / "other.convscope.npz")
    assert other.save_session(path) if "session" in doing else other.save_weights(path)
    trained = window.display_model
    with Answer(qtbot, Buttons.Cancel) as answer:
        replace(window, path)
    assert answer.texts and answer.texts[0].startswith(f"{doing} discards 3 training steps")
    assert window.display_model is trained
    with Answer(qtbot, Buttons.Discard):
        replace(window, path)
    assert window.display_model is not trained
    with Answer(qtbot, Buttons.Cancel) as answer:  # the replaced run is gone: nothing left to ask about
        assert window.close() is True
    assert answer.texts == []


def test_a_file_that_cannot_be_opened_is_refused_before_the_question(qtbot, make_window, tmp_path):
    """The learner was asked to discard (or save) the run for a file that then turned out unreadable."""
    window = trained_window(qtbot, make_window)
    good = tmp_path / "good.npz"
    window.display_model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:2000])
    for open_file, path, refusal in ((window.open_weights, truncated, "Cannot open weights"),
                                     (window.open_session, good, "Cannot open the session")):
        with Answer(qtbot, Buttons.Discard) as answer:
            assert open_file(str(path)) is False
        assert answer.texts == []
        boxes = [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]
        assert [b.windowTitle() for b in boxes] == [refusal]
        boxes[0].close()
    with Answer(qtbot, Buttons.Discard) as answer:  # the run is still unsaved work
        assert window.close() is True
    assert len(answer.texts) == 1


def test_dont_ask_again_is_remembered_and_the_file_menu_turns_it_back_on(qtbot, make_window):
    window = trained_window(qtbot, make_window)
    with Answer(qtbot, Buttons.Discard, dont_ask=True):
        window.reset()
    assert not window.settings.ask_before_discarding() and not window.action_ask_discard.isChecked()
    qtbot.mouseClick(window.panel.step_button, LEFT)
    qtbot.waitUntil(lambda: window._last_step == 1, timeout=30_000)
    qtbot.mouseClick(window.panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)
    with Answer(qtbot, Buttons.Cancel) as answer:
        window.reset()
    assert answer.texts == [] and window._last_step == 0  # reset without a question
    window.action_ask_discard.trigger()  # File > Ask before discarding unsaved work
    assert window.settings.ask_before_discarding()


def test_a_finished_experiment_is_unsaved_work_too(qtbot, make_window):
    window = make_window(ask_before_discarding=True)
    panel = window.findChild(QtWidgets.QWidget, "experimentsPanel")
    window.show_view(next(title for title, view in window.views.items() if view is panel))
    panel.epochs.setValue(1)
    panel.train_size.setValue(128)
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: panel.state == "idle" and bool(panel.runs), timeout=120_000)
    window.reset()  # the experiment does not go with the weights: no question
    with Answer(qtbot, Buttons.Cancel) as answer:
        assert window.close() is False
    assert answer.texts == ["Closing ConvScope discards the experiment's results. No saved session holds it."]
    with Answer(qtbot, Buttons.Discard):
        assert window.close() is True


def test_cancelling_the_close_leaves_a_running_experiment_running(qtbot, make_window):
    """The experiments panel stopped its runs on the window's Close event, before the window could ask."""
    window, panel = running_experiment(qtbot, make_window)
    with Answer(qtbot, Buttons.Cancel) as answer:
        assert window.close() is False
    assert answer.texts == ["Closing ConvScope discards the experiment still running. No saved session holds it."]
    step = panel.runs[0].step
    qtbot.waitUntil(lambda: panel.runs[0].step > step, timeout=60_000)  # still training
    assert panel.state == "running"
    with Answer(qtbot, Buttons.Discard):
        assert window.close() is True
    assert panel.state == "idle" and not any(run.worker.is_running() for run in panel.runs)


def test_save_session_offers_the_file_last_opened_or_saved(qtbot, make_window, tmp_path, monkeypatch):
    window = make_window()
    offered = []
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda parent, caption, default, filters: offered.append(default) or ("", ""))
    window._save_session_dialog()
    assert offered[-1].endswith("vgg7.convscope.npz")
    path = tmp_path / "lesson 3.convscope.npz"
    assert window.save_session(str(path))
    window._save_session_dialog()
    assert offered[-1] == str(path)
    other = make_window("other.ini")
    assert other.open_session(str(path))
    other._save_session_dialog()
    assert offered[-1] == str(path)


def test_saving_while_training_runs_leaves_nothing_to_ask_about(qtbot, make_window, tmp_path):
    """The steps queued before the pause arrived after the save and marked the run unsaved again."""
    window = make_window(ask_before_discarding=True)
    qtbot.mouseClick(window.panel.start_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is not None and window.worker.steps_done >= 3, timeout=30_000)
    assert window.save_session(str(tmp_path / "s.convscope.npz"))  # pauses first
    qtbot.wait(300)  # the queued steps reach the plot
    with Answer(qtbot, Buttons.Cancel) as answer:
        assert window.close() is True
    assert answer.texts == []


def test_the_question_counts_only_the_steps_since_the_session_opened(qtbot, make_window, tmp_path):
    saved = trained_window(qtbot, make_window, steps=2)
    path = tmp_path / "two.convscope.npz"
    assert saved.save_session(str(path))
    window = make_window("other.ini", ask_before_discarding=True)
    assert window.open_session(str(path))
    window.panel.continue_check.setChecked(True)
    qtbot.mouseClick(window.panel.step_button, LEFT)
    qtbot.waitUntil(lambda: window._last_step == 3, timeout=30_000)
    with Answer(qtbot, Buttons.Cancel) as answer:
        assert window.close() is False
    assert answer.texts == ["Closing ConvScope discards 1 training step (weights and loss curves). "
                            "No saved session holds it."]
    qtbot.mouseClick(window.panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)


def test_starting_a_fresh_run_over_unsaved_training_asks(qtbot, make_window):
    window = trained_window(qtbot, make_window)
    trained = window.display_model
    window.panel.continue_check.setChecked(False)
    with Answer(qtbot, Buttons.Cancel) as answer:
        qtbot.mouseClick(window.panel.step_button, LEFT)
    assert answer.texts == ["Starting a new run from fresh weights discards 3 training steps (weights and loss "
                            "curves). No saved session holds them."]
    # Stop then Start meant "carry on" for a learner: the question names the check box that does that
    assert answer.details == ["To keep training these weights instead, Cancel and tick “Continue from the weights "
                              "shown”. Save the session to reopen it later (File > Open session)."]
    assert window.worker is None and window.display_model is trained
    window.panel.continue_check.setChecked(True)  # from the weights shown: nothing is lost, nothing asked
    with Answer(qtbot, Buttons.Cancel) as answer:
        qtbot.mouseClick(window.panel.step_button, LEFT)
        qtbot.waitUntil(lambda: window._last_step == 4, timeout=30_000)
    assert answer.texts == []
    window.panel.continue_check.setChecked(False)  # closing: no hint about continuing
    with Answer(qtbot, Buttons.Cancel) as answer:
        assert window.close() is False
    assert answer.details and "Continue from" not in answer.details[0]
    qtbot.mouseClick(window.panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)


def test_a_fresh_run_over_weights_no_run_trained_asks_nothing(qtbot, make_window):
    """The pretrained weights shown at start: nothing to lose, so no question (nor its hint) on Step."""
    window = make_window(ask_before_discarding=True)
    window.panel.continue_check.setChecked(False)
    with Answer(qtbot, Buttons.Cancel) as answer:
        qtbot.mouseClick(window.panel.step_button, LEFT)
        qtbot.waitUntil(lambda: window._last_step == 1, timeout=30_000)
    assert answer.texts == []
    qtbot.mouseClick(window.panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)


def test_save_over_a_running_experiment_keeps_the_window_open_and_the_experiment_running(
        qtbot, make_window, tmp_path, monkeypatch):
    """The session cannot hold an experiment still running: "Save" saved without it, then closed on it."""
    window, panel = running_experiment(qtbot, make_window)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *args: (str(tmp_path / "s"), ""))
    with Answer(qtbot, Buttons.Save) as answer:
        assert window.close() is False
    assert answer.details[0].endswith("An experiment is saved with it once it has finished.")
    assert (tmp_path / "s.convscope.npz").exists() and panel.state == "running"
    with Answer(qtbot, Buttons.Discard):
        assert window.close() is True


def test_ctrl_c_in_the_terminal_closes_without_the_question(qtbot, make_window, capsys):
    """Under xvfb-run or offscreen nobody can see the question: Ctrl-C then left the app running."""
    window = trained_window(qtbot, make_window)
    window.quit_from_terminal()
    assert not window.isVisible()
    assert capsys.readouterr().err == ("ConvScope: Ctrl-C: closing ConvScope discards 3 training steps (weights and "
                                       "loss curves). No saved session holds them.\n")
    asked = trained_window(qtbot, make_window)  # Ctrl-C while the question is open
    QtCore.QTimer.singleShot(200, asked.quit_from_terminal)
    assert asked.close() is True and not asked.isVisible()


def test_save_session_no_longer_offers_a_session_once_other_weights_are_shown(qtbot, make_window, tmp_path,
                                                                             monkeypatch):
    window = make_window()
    assert window.save_session(str(tmp_path / "s.convscope.npz"))
    offered = []
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda parent, caption, default, filters: offered.append(default) or ("", ""))
    window.reset()
    window._save_session_dialog()
    assert offered == [os.path.join(window.settings.last_dir(), "vgg7.convscope.npz")]


class HeldAnswer:
    """Answers the next question with ``button`` after watching it for ``hold_ms``: ``asked`` (the steps the
    question quotes, the trainer's step when it showed), ``steps_while_open`` (the trainer's step at each look)."""

    def __init__(self, qtbot, window, button, hold_ms=600):
        self.qtbot, self.window, self.button, self.hold_ms = qtbot, window, button, hold_ms
        self.asked, self.steps_while_open, self.texts, self._shown = None, [], [], None
        self.timer = QtCore.QTimer(interval=20)
        self.timer.timeout.connect(self._look)
        self.timer.start()

    def _look(self):
        box = QtWidgets.QApplication.activeModalWidget()
        if not isinstance(box, QtWidgets.QMessageBox) or not box.isVisible() or box.windowTitle() != "Unsaved work":
            return
        step = self.window.worker.trainer.step_index
        if self._shown is None:
            self._shown = QtCore.QElapsedTimer()
            self._shown.start()
            self.texts.append(box.text())
            self.asked = (int(box.text().split(" discards ")[1].split(" ")[0]), step)
        self.steps_while_open.append(step)
        if self._shown.elapsed() >= self.hold_ms:
            self.timer.stop()
            self.qtbot.mouseClick(box.button(self.button), LEFT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def training_window(qtbot, make_window, steps=3):
    """A window that asks, training (running) with at least ``steps`` steps taken."""
    window = make_window(ask_before_discarding=True)
    qtbot.mouseClick(window.panel.start_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is not None and window.worker.steps_done >= steps, timeout=30_000)
    assert window._run_state == "running"
    return window


def test_closing_while_training_pauses_quotes_the_steps_taken_and_cancel_resumes(qtbot, make_window):
    """The question used to quote a step count the run had already left behind (it trained on under the box)."""
    window = training_window(qtbot, make_window)
    with HeldAnswer(qtbot, window, Buttons.Cancel) as answer:
        assert window.close() is False
    quoted, at_show = answer.asked
    assert quoted == at_show >= 3
    assert len(answer.steps_while_open) >= 5 and set(answer.steps_while_open) == {at_show}  # held still
    assert window.isVisible() and window._run_state == "running"  # Cancel resumed the run
    qtbot.waitUntil(lambda: window.worker.trainer.step_index > at_show, timeout=30_000)
    qtbot.mouseClick(window.panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)


def test_save_in_the_question_while_training_saves_the_state_it_describes(qtbot, make_window, tmp_path,
                                                                          monkeypatch):
    window = training_window(qtbot, make_window)
    path = tmp_path / "held.convscope.npz"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *args: (str(path), ""))
    with HeldAnswer(qtbot, window, Buttons.Save, hold_ms=200) as answer:
        assert window.close() is True
    quoted, at_show = answer.asked
    assert quoted == at_show and open_session(path).step == at_show


def test_cancel_while_waiting_for_a_long_step_before_the_question_resumes_the_run(qtbot, make_window, monkeypatch):
    """Closing while training pauses first; when the step in flight is long (an epoch's validation), a
    "Waiting…" dialog shows, and its Cancel leaves everything as it was: the window open, the run going."""
    window = training_window(qtbot, make_window)
    worker = window.worker
    monkeypatch.setattr(worker, "wait_between_steps", lambda timeout_ms=0: False)  # a step that takes long
    monkeypatch.setattr(worker, "between_steps", lambda: False)
    shown = []

    def cancel_the_wait():
        dialog = next((w for w in QtWidgets.QApplication.topLevelWidgets()
                       if isinstance(w, QtWidgets.QProgressDialog) and w.isVisible()), None)
        if dialog is None:
            QtCore.QTimer.singleShot(20, cancel_the_wait)
            return
        shown.append((dialog.windowTitle(), window._run_state))
        qtbot.mouseClick(dialog.findChild(QtWidgets.QPushButton), LEFT)
    QtCore.QTimer.singleShot(0, cancel_the_wait)
    assert window.close() is False
    assert shown == [("Closing ConvScope", "paused")]  # paused while it waited, titled by what waits
    assert window.isVisible() and window._run_state == "running"
    monkeypatch.undo()
    steps = worker.trainer.step_index
    qtbot.waitUntil(lambda: worker.trainer.step_index > steps, timeout=30_000)  # training on
    qtbot.mouseClick(window.panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)
