"""The monkey test (app.monkey: random clicks, keys, typing, menus, tabs, resizes, strokes and dialogs
answered at random on the real window, with training going on) for one fixed seed, and the bugs it
found, each driven again here through the widgets that showed it."""
import json

from PySide6 import QtCore, QtWidgets

from app.monkey import Monkey

SEED = 7
ACTIONS = 150  # 10-15 s here


def test_random_user_actions_break_nothing(make_window, tmp_path):
    """Any exception in a slot, Qt or Python warning, Start / Pause / Stop state that disagrees with the
    run, dialog left open or training thread left running fails it (the failure lists the actions
    before it)."""
    window = make_window(ask_before_discarding=True)  # the unsaved-work question: one more dialog to answer
    window.action_ask_discard.setChecked(True)
    folder = tmp_path / "files"  # where the file dialogs answer (apart from the settings file)
    folder.mkdir()
    monkey = Monkey(window, SEED, str(folder))
    failures = monkey.run(ACTIONS)
    assert not failures, json.dumps(failures, indent=1)
    assert len(monkey.history) == ACTIONS


def test_start_follows_the_batch_size_qt_puts_back_when_the_training_panel_floats(qtbot, make_window):
    """Found by the monkey ("0.5" typed as the batch size, then the panel's dock floated): showing the
    panel again makes the spin box rewrite its text from its value ("0" here), without a signal, and
    the reasons and Start stayed those of the "0.5" no longer there (Start disabled under a form the
    monkey had made valid)."""
    window = make_window()
    panel = window.panel
    edit = panel.batch_size.lineEdit()
    qtbot.mouseClick(edit, QtCore.Qt.MouseButton.LeftButton)
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_A, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(edit, "0.5")
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_Tab)
    assert not panel.start_button.isEnabled()  # "0.5" is refused while it is shown
    float_button = window.panel_dock.findChild(QtWidgets.QAbstractButton, "qt_dockwidget_floatbutton")
    qtbot.mouseClick(float_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.panel_dock.isFloating)
    qtbot.wait(50)
    assert panel.errors_label.text() == "\n".join(panel.errors())  # the reasons of what the form shows now
    assert panel.start_button.isEnabled() == (not panel.errors())
