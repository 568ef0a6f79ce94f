"""ConvScope's main window: the training panel, the insight views, the menus and the display model.

:class:`MainWindow` is put together from mixins, each holding one part of the window's work:
``app.file_menu.FileMenu`` (weights, sessions, exports, the unsaved-work question),
``app.run_control.RunControl`` (the training run and the worker's signals),
``app.data_tasks.DataTasks`` (datasets, loaded in the background), ``app.view_pages.ViewPages`` (the
docks, group tabs and pages of the views), ``app.display_model.DisplayModel`` (the weights the views
show, pushed at most ``VIEW_HZ`` times per second), ``app.status_bar.StatusClock`` (the status bar and
the run's clock) and ``app.menu_bar.MenuBar`` (the menus). This module builds the window, routes the
training keys, keeps the settings, shuts the threads down, and starts the app (``main``).
"""
from __future__ import annotations

import os
import signal
import sys
from importlib import resources as importlib_resources

from PySide6 import QtCore, QtGui, QtWidgets

import resources
from app import gui_gc, qt_deps
from app.data_tasks import DataTasks
from app.display_model import DisplayModel
from app.file_menu import FileMenu
from app.menu_bar import MenuBar
from app.run_control import SHUTDOWN_MS, RunControl
from app.runtime import prepare_for_gui
from app.settings import Settings
from app.status_bar import StatusClock
from app.training_panel import TrainingPanel
from app.view_pages import ViewPages
from app.worker import BackgroundTask, TrainingWorker
from engine import data as engine_data
from engine.health import HealthMonitor
from engine.session import Session
from engine.timeline import KernelTimeline
from engine.trainer import Trainer


TRAINING_KEYS = (QtCore.Qt.Key.Key_Space, QtCore.Qt.Key.Key_Right)


FRAME_ALLOWANCE = QtCore.QSize(20, 50)  # a window manager's frame and title bar around the window
# The window's minimum size in line heights of its font (fit_minimum_size): 700 x 504 at 9 pt, about 850 x 610
# at a desktop's usual 11 pt (57 x 40 lines made that 1,030 x 720, too much to tile two windows on a laptop).
MIN_WIDTH_LINES, MIN_HEIGHT_LINES = 50, 36
TOOLKITS = ("PySide6", "shiboken6", "pyqtgraph")


# Qt controls that need a training key themselves when they have the focus (Qt does not claim it from
# window shortcuts on their behalf): Space presses a focused button, ticks a check box, opens a combo
# box, selects a list item (the evaluation gallery's digits; a table's cells are selected by the click
# that focused them, so Space still trains there); Right moves a slider (the kernel timeline's, the
# pooling view's), goes to the next list item or tab. Taking those keys from them trained instead:
# Space on a focused Reset or gallery, or Right on a tab bar, started a run from fresh weights. The
# panel keeps the focus on Start / Pause as they take turns (TrainingPanel._update_buttons), so Space
# on them still starts and pauses.
CONTROLS_USING_KEY = {
    QtCore.Qt.Key.Key_Space: (QtWidgets.QAbstractButton, QtWidgets.QComboBox, QtWidgets.QListView),
    QtCore.Qt.Key.Key_Right: (QtWidgets.QAbstractSlider, QtWidgets.QAbstractItemView, QtWidgets.QTabBar),
}


def _focus_uses_key(widget: QtWidgets.QWidget | None, window: QtWidgets.QWidget, key: QtCore.Qt.Key) -> bool:
    """True when the focus ``widget`` needs ``key`` itself: a Qt control that uses it (above), or a
    widget that is, or sits inside, one with a ``keyPressEvent`` written for this app (not Qt's or
    pyqtgraph's) and the key among its ``TRAINING_KEYS_USED`` (default: both; the confusion matrix
    walks with Right but leaves Space to training, the drawing pad leaves both)."""
    if isinstance(widget, CONTROLS_USING_KEY[key]):
        return True
    while widget is not None and widget is not window:
        for kind in type(widget).__mro__:
            if kind.__module__.split(".")[0] not in TOOLKITS and "keyPressEvent" in vars(kind):
                return key in getattr(widget, "TRAINING_KEYS_USED", TRAINING_KEYS)
        widget = widget.parentWidget()
    return False


class MainWindow(FileMenu, RunControl, DataTasks, ViewPages, DisplayModel, StatusClock, MenuBar,
                 QtWidgets.QMainWindow):
    """The app. ``MainWindow()`` loads the bundled pretrained VGG-7 so every view has content at once.

    settings: where to remember geometry and training settings (default: the user's ConvScope settings).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        # Numbers read and written with a dot whatever the desktop's language: the texts are English and
        # every typed field reads "0.5"; under de_DE a spin box read "0.5" as 5 and showed "2,00". (Before
        # the window exists: its widgets take the locale it had when it was made.)
        QtCore.QLocale.setDefault(QtCore.QLocale.c())
        super().__init__()
        self.runtime = prepare_for_gui()  # BLAS threads and GIL switching for a responsive GUI thread
        gui_gc.install()  # Qt objects in reference cycles are destroyed on this thread, at safe moments
        self.settings = settings or Settings()
        self.setWindowTitle("ConvScope")
        self.setAcceptDrops(True)  # a session or weights file dropped on the window opens (open_file)
        with importlib_resources.as_file(resources.path("icons", "convscope.svg")) as icon_path:
            self.setWindowIcon(QtGui.QIcon(str(icon_path)))
        self.resize(1400, 900)
        self.fit_minimum_size(self.screen().availableGeometry().size())

        self.worker: TrainingWorker | None = None
        self._task: BackgroundTask | None = None  # dataset loading or download
        self._download_dialog: QtWidgets.QProgressDialog | None = None
        self._download_done: dict[str, int] = {}  # bytes received per file
        self._run_state = "idle"
        self._step_offset = 0  # steps of earlier runs continued by this one (x axis of the loss plot)
        self._last_step = 0  # last global step plotted
        self._diverged_at: int | None = None  # the step (as plotted) a run halted at, while it stays halted
        self._unsaved: set[str] = set()  # "run", "experiment": work no saved session holds (confirm_discard)
        self._steps_saved = 0  # the worker's step count when its run was last saved (or began)
        self._steps_in_session = 0  # steps of the run shown that a saved session holds (plot numbering)
        self._question: QtWidgets.QMessageBox | None = None  # the unsaved-work question while it is open
        self._quitting_from_terminal = False  # Ctrl-C: close without asking (FileMenu.quit_from_terminal)
        self._session_path: str | None = None  # the session file last opened or saved: Save session offers it
        self._constructed = False  # views added before the end of __init__ are attached then
        # The training run the weights shown belong to, as a session: Start with "Continue" resumes it
        # exactly (optimiser state, history, step count, random generator). None after weights came
        # from elsewhere (pretrained, a weights file, Reset).
        self._lineage: Session | None = None
        self.health: HealthMonitor | None = None  # fed by the worker, shown by the gradient-health view
        self.timeline: KernelTimeline | None = None  # fed by the worker, shown by the kernel timeline
        self._init_display_model()

        self.panel = TrainingPanel()
        self._build_panel_dock()
        self._build_view_tabs()
        self._build_status_bar()
        self._build_menus()
        self._connect_panel()
        self._connect_views()

        self.train_data, self.val_data = engine_data.load_bundled_mnist()
        self._dataset_path: str | None = None
        self.panel.set_dataset("bundled", self._describe_data(), self.train_data.x.shape[1:])
        self.load_pretrained()
        self._restore_settings()
        self.closed_cleanly: bool | None = None  # set on close: were all threads joined in time?
        self._constructed = True
        for widget in self.views.values():
            self._attach(widget)
        self._update_status()
        self._push_model()
        self.panel.start_button.setFocus()  # the first thing to do; Tab then walks the settings

    def fit_minimum_size(self, available: QtCore.QSize) -> None:
        """The smallest the window may be made: room for the training panel beside a tab's controls and
        plot, in lines of the window's font (700 x 504 at 9 pt, more with a larger font; Qt's own minimum,
        466 x 169, showed nothing usable); no more than a screen of ``available`` size holds with a window
        manager's frame (show_main_window passes the screen it opens on)."""
        line = self.fontMetrics().height()
        wanted = QtCore.QSize(MIN_WIDTH_LINES * line, MIN_HEIGHT_LINES * line)
        self.setMinimumSize(wanted.boundedTo(available - FRAME_ALLOWANCE))

    def _new_worker(self, trainer: Trainer) -> TrainingWorker:
        """The worker of a new run (RunControl): made here, where tests swap ``TrainingWorker`` for one
        that records every step."""
        return TrainingWorker(trainer)

    # ------------------------------------------------------------------ settings and shutdown

    def _restore_settings(self) -> None:
        geometry = self.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)
        self.panel.load_config_dict(self.settings.training())
        choice = self.settings.dataset()
        if choice.get("key") == "digits8x8":
            self.request_dataset("digits8x8")
        elif choice.get("key") == "mnist_dir" and isinstance(choice.get("path"), str):
            self.load_mnist_dir(choice["path"])

    def _save_settings(self) -> None:
        self.settings.set_window(self.saveGeometry(), self.saveState())
        self.settings.set_training(self.panel.config_dict())
        self.settings.set_dataset(self.panel.dataset_key, self._dataset_path)
        self.settings.sync()

    def shutdown(self) -> bool:
        """Stop training, background loading and the views' own threads (experiments, evaluation,
        gradient check: every view's ``shutdown()``) and join them; True when all ended in time."""
        ok = True
        if self.worker is not None:
            ok = self.worker.shutdown(SHUTDOWN_MS)
            self.worker = None
        if self._task is not None:
            ok = self._task.shutdown(SHUTDOWN_MS) and ok
        for view in self.views.values():
            if callable(getattr(view, "shutdown", None)):
                ok = view.shutdown() is not False and ok
        self._refresh_timer.stop()
        self._clock.stop()
        return ok

    def event(self, event: QtCore.QEvent) -> bool:
        """Space and Right train, unless the widget with the focus uses them itself (e.g. the conv
        stepper steps with Right): a ShortcutOverride that no child accepted arrives here, and a view
        of ours that handles key presses gets the key instead of the shortcut."""
        if (event.type() == QtCore.QEvent.Type.ShortcutOverride and event.key() in TRAINING_KEYS
                and event.modifiers() == QtCore.Qt.KeyboardModifier.NoModifier
                and _focus_uses_key(QtWidgets.QApplication.focusWidget(), self, event.key())):
            event.accept()
            return True
        return super().event(event)

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.FontChange:  # the minimum size is in lines of the font
            self.fit_minimum_size(self.screen().availableGeometry().size())
        super().changeEvent(event)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        if not self.confirm_discard("Closing ConvScope"):
            event.ignore()
            return
        self._save_settings()
        self.closed_cleanly = self.shutdown()
        super().closeEvent(event)


def show_main_window(window: MainWindow) -> None:
    """Show ``window`` as it was left (saved geometry), else at its default size, or maximised when
    that size does not fit the screen (1400 x 900 hung off a 1280 x 800 laptop's edges); shrunk to
    the screen too, for "restore" and for window managers that do not maximise. The screen is the
    one under the mouse (where window managers open a new window), not necessarily the primary."""
    screen = QtGui.QGuiApplication.screenAt(QtGui.QCursor.pos()) or window.screen()
    available = screen.availableGeometry()
    window.fit_minimum_size(available.size())
    needed = window.size() + FRAME_ALLOWANCE
    if window.settings.geometry() is None and (needed.width() > available.width()
                                               or needed.height() > available.height()):
        window.resize(window.size().boundedTo(available.size() - FRAME_ALLOWANCE))
        window.move(available.topLeft())
        window.showMaximized()
    else:
        window.show()


def display_problem(environ=os.environ, platform: str = sys.platform, argv: list[str] = ()) -> str | None:
    """Why Qt could not open a window here, in words and with the fix, or None. Without a display Qt
    aborts (exit 134) naming libxcb-cursor0 as the cause, and a missing xcb library gives the same
    cryptic message: a newcomer installed packages for nothing, or did not know which. ``argv``: the
    command line, whose ``-platform NAME`` Qt prefers to QT_QPA_PLATFORM."""
    if not platform.startswith("linux"):
        return None
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if "-platform" in argv[:-1]:
        chosen = argv[argv.index("-platform") + 1]
    chosen = chosen.split(":")[0]
    if chosen and chosen not in ("xcb", "wayland"):
        return None  # offscreen, vnc, ...: no display needed
    wanted = {"xcb": ["DISPLAY"], "wayland": ["WAYLAND_DISPLAY"]}.get(chosen, ["DISPLAY", "WAYLAND_DISPLAY"])
    if not any(environ.get(name) for name in wanted):
        unset = f"{wanted[0]} is not set" if len(wanted) == 1 else "neither DISPLAY nor WAYLAND_DISPLAY is set"
        return (f"there is no display to open the window on ({unset}). "
                "Run it under a virtual display: xvfb-run -a convscope (or xvfb-run -a python -m app).")
    if chosen == "wayland" or (not chosen and environ.get("WAYLAND_DISPLAY")):
        return None  # Qt's Wayland plugin needs none of the X11 libraries
    missing = qt_deps.missing_packages()
    if missing:
        return ("Qt's X11 plugin needs Debian libraries that are not installed. Install them with:\n"
                "  sudo apt-get install -y " + " ".join(missing))
    return None


USAGE = """usage: python -m app [FILE]

Open the ConvScope window; FILE (optional): a session (.convscope.npz) or weights file (.npz) to open.
Qt's own options (e.g. -platform offscreen) are accepted too."""


def main(argv: list[str] | None = None) -> int:
    app = QtWidgets.QApplication.instance()
    argv = list(argv or sys.argv)
    if "-h" in argv[1:] or "--help" in argv[1:]:
        print(USAGE)
        return 0
    made = app is None
    if made:
        problem = display_problem(argv=argv)
        if problem:
            print(f"ConvScope cannot start: {problem}", file=sys.stderr)
            return 1
        app = QtWidgets.QApplication(argv)
    app.setApplicationName("ConvScope")
    app.setOrganizationName("ConvScope")
    window = MainWindow()
    app.setWindowIcon(window.windowIcon())  # dialogs and the task bar too
    # Ctrl-C in the terminal closes the window without the unsaved-work question (settings saved, threads
    # joined); the timer hands control back to Python often enough for the handler to run at all.
    previous = signal.signal(signal.SIGINT, lambda *_: window.quit_from_terminal())
    wake = QtCore.QTimer(window, interval=200)
    wake.timeout.connect(lambda: None)
    wake.start()
    show_main_window(window)
    # The QApplication made here has taken Qt's own options (-platform NAME …) out of its arguments.
    files = [arg for arg in (app.arguments() if made else argv)[1:] if not arg.startswith("-")]
    if len(files) > 1:
        print(f"ConvScope opens one file at a time; opening {files[0]}", file=sys.stderr)
    if files:
        QtCore.QTimer.singleShot(0, window, lambda: window.open_file(files[0]))
    try:
        return app.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
