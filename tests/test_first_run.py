"""A newcomer's first start: no display, missing Qt libraries, Ctrl-C in the terminal."""
import ctypes
import os
import subprocess
import sys

from app import qt_deps
from app.main_window import display_problem

NO_DISPLAY = {"PATH": "/usr/bin:/bin"}


def test_no_display_is_said_in_words_with_the_fix():
    problem = display_problem(NO_DISPLAY, "linux")
    assert "no display" in problem and "xvfb-run -a convscope" in problem
    assert "neither DISPLAY nor WAYLAND_DISPLAY is set" in problem
    assert "no display" in display_problem({**NO_DISPLAY, "QT_QPA_PLATFORM": "xcb"}, "linux")
    assert display_problem({**NO_DISPLAY, "QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem(NO_DISPLAY, "linux", ["convscope", "-platform", "offscreen"]) is None  # Qt's own option
    assert display_problem(NO_DISPLAY, "darwin") is None
    # X11 asked for on a Wayland-only session: Qt's xcb plugin would abort
    assert "(DISPLAY is not set)" in display_problem({"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"},
                                                     "linux")


def test_missing_xcb_libraries_are_asked_of_the_loader_and_named_as_packages(monkeypatch):
    """`ldconfig -p` is in /usr/sbin, outside a Debian user's PATH: the check passed for everyone."""
    real = ctypes.CDLL

    def loader_without_two(name, *args, **kwargs):
        if name in ("libxcb-cursor.so.0", "libxkbcommon-x11.so.0"):
            raise OSError(f"{name}: cannot open shared object file")
        return real(name, *args, **kwargs)

    assert qt_deps.missing_packages() == []  # .ci/run installs them all
    monkeypatch.setattr(ctypes, "CDLL", loader_without_two)
    assert qt_deps.missing_packages() == ["libxkbcommon-x11-0", "libxcb-cursor0"]
    problem = display_problem({"DISPLAY": ":0"}, "linux")
    assert "sudo apt-get install -y libxkbcommon-x11-0 libxcb-cursor0" in problem
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None  # no X11 libraries needed


def test_the_command_without_a_display_exits_with_the_message_not_a_qt_abort(tmp_path):
    env = {**NO_DISPLAY, "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "app"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "ConvScope cannot start: there is no display" in run.stderr


DRIVER = """
import os, signal, sys
from PySide6 import QtCore, QtWidgets
app = QtWidgets.QApplication(sys.argv)
from app.main_window import main
# A real SIGINT, as Ctrl-C in the terminal sends, once the event loop runs with the window up.
QtCore.QTimer.singleShot(1500, lambda: os.kill(os.getpid(), signal.SIGINT))
sys.exit(main())
"""


def test_ctrl_c_in_the_terminal_closes_the_window_cleanly(tmp_path):
    """It was ignored: the KeyboardInterrupt surfaced as a traceback in the next Python slot."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    run = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "KeyboardInterrupt" not in run.stderr
    assert (tmp_path / "config" / "ConvScope" / "ConvScope.conf").is_file()  # closed as by its close button
