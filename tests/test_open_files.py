"""A session or weights file opens from the command line (`python -m app FILE`) or dropped on the window,
whichever of the two it is."""
import os

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest

from app import main_window
from engine.presets import build
from engine.session import file_kind


@pytest.fixture
def files(tmp_path, make_window):
    """{"session": path, "weights": path}: a session of a fresh window and other weights."""
    window = make_window("maker.ini")
    session = str(tmp_path / "run.convscope.npz")
    assert window.save_session(session)
    weights = str(tmp_path / "other.npz")
    build("vgg7", seed=7).save(weights)
    return {"session": session, "weights": weights}


def test_a_session_is_told_from_weights_by_its_manifest(files, tmp_path):
    assert file_kind(files["session"]) == "session" and file_kind(files["weights"]) == "weights"
    renamed = tmp_path / "renamed.npz"  # the name does not decide
    os.link(files["session"], renamed)
    assert file_kind(renamed) == "session"
    (tmp_path / "garbage.npz").write_bytes(b"PK not a zip")
    os.mkfifo(tmp_path / "fifo.npz")  # reading it would block
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    for other in ("garbage.npz", "fifo.npz", "missing.npz", "", "other.npz"):
        assert file_kind(tmp_path / other) is None


def drag(window, urls, drop=True) -> bool:
    """Drag ``urls`` over the window's centre and, if ``drop``, drop them; True when the window accepted."""
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(u) if not u.startswith("http") else QtCore.QUrl(u) for u in urls])
    centre = QtCore.QPointF(window.rect().center())
    enter = QtGui.QDragEnterEvent(centre.toPoint(), QtCore.Qt.DropAction.CopyAction, mime,
                                  QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(window, enter)
    if not enter.isAccepted() or not drop:
        return enter.isAccepted()
    event = QtGui.QDropEvent(centre, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton,
                             QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(window, event)
    return event.isAccepted()


def test_a_file_dropped_on_the_window_opens_as_what_it_is(qtbot, make_window, files, tmp_path):
    window = make_window()
    assert drag(window, [files["weights"]])
    qtbot.waitUntil(lambda: window.panel.weights_label.text() == "Weights: other.npz", timeout=10_000)
    assert drag(window, [files["session"]])
    qtbot.waitUntil(lambda: "session run.convscope.npz" in window.panel.weights_label.text(), timeout=10_000)
    (tmp_path / "notes.txt").write_text("not weights")
    for refused in ([str(tmp_path / "notes.txt")], [files["weights"], files["session"]], ["https://example.org/w.npz"]):
        assert not drag(window, refused, drop=False)


def test_python_m_app_opens_the_file_it_is_given(qtbot, files, tmp_path, monkeypatch):
    QtCore.QSettings.setPath(QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Scope.UserScope,
                             str(tmp_path))  # MainWindow() reads the user's settings: a scratch folder
    shown, real_show = {}, main_window.show_main_window
    monkeypatch.setattr(main_window, "show_main_window", lambda window: shown.update(window=window) or
                        real_show(window))

    def exec_until_opened():
        window = shown["window"]
        for _ in range(500):
            if "session run.convscope.npz" in window.panel.weights_label.text():
                break
            QTest.qWait(20)
        shown["label"] = window.panel.weights_label.text()
        window.close()
        return 0

    monkeypatch.setattr(QtWidgets.QApplication, "exec", staticmethod(exec_until_opened))
    assert main_window.main(["app", files["session"]]) == 0
    assert shown["label"].startswith("Weights: session run.convscope.npz, step 0")


def test_python_m_app_help_says_what_it_takes(capsys):
    assert main_window.main(["app", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: python -m app [FILE]")


def test_a_damaged_session_is_refused_as_a_session_with_the_reason(qtbot, make_window, files, tmp_path):
    """A truncated .convscope.npz is no zip, so its content no longer said "session": it went to the weights
    loader and was called "not a readable ConvScope model". Its name says what it was meant to be."""
    window = make_window()
    before = window.panel.weights_label.text()
    data = open(files["session"], "rb").read()
    truncated = tmp_path / "cut.convscope.npz"
    truncated.write_bytes(data[: len(data) // 2])
    assert drag(window, [str(truncated)])
    qtbot.waitUntil(lambda: any(b.isVisible() for b in window.findChildren(QtWidgets.QMessageBox)), timeout=10_000)
    (box,) = [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]
    assert box.windowTitle() == "Cannot open the session"
    assert box.text().startswith(f"{truncated}: not a readable .npz (zip) file") and "model" not in box.text()
    assert window.panel.weights_label.text() == before
    box.close()
    # the content still decides when it can: weights named like a session open as weights
    misnamed = tmp_path / "w.convscope.npz"
    os.link(files["weights"], misnamed)
    assert window.open_file(str(misnamed))
    assert window.panel.weights_label.text() == "Weights: w.convscope.npz"
