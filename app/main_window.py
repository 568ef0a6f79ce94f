"""ConvScope's main window: training panel, insight views, menus and the display model.

The window owns the *display model*: a Sequential on the GUI thread holding the latest weight
snapshot from the worker (or the pretrained/opened/reset weights when nothing trains). Views only
ever see the display model; it is pushed to the visible views at most ``VIEW_HZ`` times per second,
and to a hidden view when it becomes visible. The training model lives on the worker thread.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sys
import time
from importlib import resources as importlib_resources

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

import resources
from app import gui_gc, qt_deps
from app import views as view_registry
from app.runtime import prepare_for_gui
from app.settings import Settings
from app.training_panel import TrainingPanel
from app.file_menu import FileMenu, message_box
from app.views.accessibility import name_fields, off_the_tab_chain
from app.views.loss import LossView
from app.worker import BackgroundTask, TrainingWorker
from engine import data as engine_data
from engine.model import ModelFileError, Sequential
from engine.presets import PRESETS, build
from engine.health import HealthMonitor
from engine.session import Session
from engine.timeline import KernelTimeline
from engine.text import plural
from engine.trainer import TrainConfig, Trainer, divergence_message

VIEW_HZ = 10.0
STATUS_HZ = 5.0
SHUTDOWN_MS = 2000
SESSION_ONLY = ("variant", "warmup_epochs", "max_loss")  # run settings the panel has no field for

SHORTCUTS = (
    ("Space", "Start, pause or resume training (on a focused button, check box or list: press or select it)"),
    ("Right", "Train one mini-batch, while paused or before a run (on a tab bar or slider: move it)"),
    ("Conv stepper", "Right / Left: step forward / back; Space: play or pause; PageDown / PageUp: "
                     "next / previous stage; Home / End: first / last step"),
    ("Pooling", "After a click on its maps: Right / Left: next / previous window; Space: play or pause; "
                "Home / End: first / last window"),
    ("Drawing pad", "Esc: clear; Ctrl+Z: undo the last stroke; Tab: its buttons"),
    ("Evaluation", "Arrow keys on the confusion matrix: move between cells and show their digits; Return "
                   "on a digit: open it in the other views"),
    ("Ctrl+Tab", "Next view in the current group (Ctrl+Shift+Tab: the previous one)"),
    ("Ctrl+PageDown", "Next group of views (Ctrl+PageUp: the previous one)"),
    ("Ctrl+O", "Open weights"),
    ("Ctrl+S", "Save weights"),
    ("Ctrl+Shift+O", "Open a session"),
    ("Ctrl+Shift+S", "Save the session"),
    ("Ctrl+E", "Export the current view as PNG"),
    ("Ctrl+Q", "Quit"),
)


TRAINING_KEYS = (QtCore.Qt.Key.Key_Space, QtCore.Qt.Key.Key_Right)


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


class MainWindow(FileMenu, QtWidgets.QMainWindow):
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

        self.worker: TrainingWorker | None = None
        self._task: BackgroundTask | None = None  # dataset loading or download
        self._download_dialog: QtWidgets.QProgressDialog | None = None
        self._download_done: dict[str, int] = {}  # bytes received per file
        self._run_state = "idle"
        self._step_offset = 0  # steps of earlier runs continued by this one (x axis of the loss plot)
        self._last_step = 0  # last global step plotted
        self._unsaved: set[str] = set()  # "run", "experiment": work no saved session holds (confirm_discard)
        self._steps_saved = 0  # the worker's step count when its run was last saved (or began)
        self._steps_in_session = 0  # steps of the run shown that a saved session holds (plot numbering)
        self._question: QtWidgets.QMessageBox | None = None  # the unsaved-work question while it is open
        self._quitting_from_terminal = False  # Ctrl-C: close without asking (FileMenu.quit_from_terminal)
        self._session_path: str | None = None  # the session file last opened or saved: Save session offers it
        self._elapsed = QtCore.QElapsedTimer()
        self._elapsed_before_ms = 0  # running time of the run before the last pause
        self._model_version = 0
        self._view_versions: dict[QtWidgets.QWidget, int] = {}
        self._last_push = 0.0
        self._exporting: QtWidgets.QWidget | None = None  # a view rendering an animation: no new weights
        self._constructed = False  # views added before the end of __init__ are attached then
        # The training run the weights shown belong to, as a session: Start with "Continue" resumes it
        # exactly (optimiser state, history, step count, random generator). None after weights came
        # from elsewhere (pretrained, a weights file, Reset).
        self._lineage: Session | None = None
        self.health: HealthMonitor | None = None  # fed by the worker, shown by the gradient-health view
        self.timeline: KernelTimeline | None = None  # fed by the worker, shown by the kernel timeline

        self.panel = TrainingPanel()
        self.panel_dock = QtWidgets.QDockWidget("Training", self, objectName="trainingDock")
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.panel)
        # Scroll vertically if need be, but never squeeze the form below its own width.
        scroll.setMinimumWidth(self.panel.minimumSizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width())
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)  # see add_view
        self.panel_dock.setWidget(scroll)
        self.panel_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                                    | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable
                                    | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, self.panel_dock)

        # Two levels of tabs: the groups (view_registry.GROUPS), each a tab widget of its views.
        self._paint_tabs_timer = QtCore.QTimer(self, singleShot=True, interval=0)
        self._paint_tabs_timer.timeout.connect(self._paint_tabs)
        self.tabs = QtWidgets.QTabWidget(objectName="viewTabs")
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.groups: dict[str, QtWidgets.QTabWidget] = {}
        self.views: dict[str, QtWidgets.QWidget] = {}
        self.view_docks: dict[str, QtWidgets.QDockWidget] = {}
        self._pages: dict[str, QtWidgets.QScrollArea] = {}  # title -> the scroll area of its tab
        for entry in view_registry.VIEWS:
            self.add_view(entry)
        self.loss_view: LossView = self.views["Loss"]
        self.tabs.currentChanged.connect(self._current_view_changed)

        self._build_status_bar()
        self._build_menus()
        self._connect_panel()
        self._connect_views()

        self._refresh_timer = QtCore.QTimer(self, singleShot=True)
        self._refresh_timer.timeout.connect(self._push_model)
        # While training, progress bars and status labels follow the run at STATUS_HZ, not per step:
        # each change repaints the bars and labels.
        self._clock = QtCore.QTimer(self, interval=int(1000 / STATUS_HZ))
        self._clock.timeout.connect(self._update_status)
        self._progress: tuple[int, int, float] | None = None  # (step of the run, epoch, images/s)
        self._validating: tuple[int, int] | None = None  # (done, total) images of the epoch-end validation

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

    # ------------------------------------------------------------------ views

    def _group(self, name: str) -> QtWidgets.QTabWidget:
        """The tab widget of group ``name`` (created, as the next group tab, on first use)."""
        if name not in self.groups:
            inner = QtWidgets.QTabWidget(objectName=f"{name} tabs")
            inner.setDocumentMode(True)
            inner.currentChanged.connect(self._current_view_changed)
            index = self.tabs.addTab(inner, name)
            self.tabs.setTabToolTip(index, view_registry.GROUPS.get(name, ""))
            self.groups[name] = inner
        return self.groups[name]

    def add_view(self, entry: view_registry.ViewEntry) -> QtWidgets.QWidget:
        """Build the view of a registry entry and add it as a tab of its group or a right-hand dock."""
        widget = view_registry.build(entry)
        name_fields(widget, entry.title)
        off_the_tab_chain(widget)
        self.views[entry.title] = widget
        if entry.area == "dock":
            dock = QtWidgets.QDockWidget(entry.title, self, objectName=f"{entry.title} dock")
            dock.setWidget(widget)
            dock.setToolTip(entry.tooltip)
            self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
            dock.visibilityChanged.connect(self._deliver_stale)
            self.view_docks[entry.title] = dock
        else:
            # A view wider or taller than the window scrolls instead of forcing the window's size.
            scroll = QtWidgets.QScrollArea(objectName=f"{entry.title} scroll")
            scroll.setWidgetResizable(True)
            # Not a Tab stop: a focused scroll area shows no focus, so Tab seemed to do nothing. A click
            # on the page still focuses it, so Page Up / Page Down scroll a tall page.
            scroll.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)
            scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
            scroll.setWidget(widget)
            # setWidget made the view (and Qt the viewport) paint their own background, i.e. opaque:
            # Qt then painted a newly shown page twice, once on its own and once with the window
            # behind the page it replaced (a whole page, 5-20 ms, painted again at every tab switch).
            # The window's background is the same colour and is painted under them anyway.
            widget.setAutoFillBackground(False)
            scroll.viewport().setAutoFillBackground(False)
            group = self._group(entry.group)
            index = group.addTab(scroll, entry.title)
            group.setTabToolTip(index, entry.tooltip)
            self._pages[entry.title] = scroll
        if hasattr(widget, "model_changed"):
            widget.installEventFilter(self)  # the model arrives before the view's own showEvent
        if self._constructed:
            self._attach(widget)
        return widget

    def _attach(self, widget: QtWidgets.QWidget) -> None:
        attach = getattr(widget, "attach", None)
        if attach is not None:
            attach(self)

    def current_view(self) -> QtWidgets.QWidget:
        """The view of the current tab (inside the current group)."""
        page = self.tabs.currentWidget()
        if isinstance(page, QtWidgets.QTabWidget):
            page = page.currentWidget()
        return page.widget() if isinstance(page, QtWidgets.QScrollArea) else page

    def next_view(self, step: int) -> None:
        """Show the tab ``step`` places on (cyclically) in the current group."""
        group = self.tabs.currentWidget()
        if isinstance(group, QtWidgets.QTabWidget) and group.count():
            group.setCurrentIndex((group.currentIndex() + step) % group.count())

    def next_group(self, step: int) -> None:
        """Show the group ``step`` places on (cyclically), at the view it showed last."""
        self.tabs.setCurrentIndex((self.tabs.currentIndex() + step) % self.tabs.count())

    def current_title(self) -> str:
        """The registry title of the current tab's view ("" for a page added by hand)."""
        view = self.current_view()
        return next((title for title, widget in self.views.items() if widget is view), "")

    def show_view(self, title: str) -> None:
        """Bring the view called ``title`` to the front (its group and tab, or its dock)."""
        if title in self.view_docks:
            self.view_docks[title].show()
            self.view_docks[title].raise_()
            return
        page = self._pages[title]
        group = next(g for g in self.groups.values() if g.indexOf(page) >= 0)
        group.setCurrentWidget(page)
        self.tabs.setCurrentWidget(group)

    @QtCore.Slot()
    def _current_view_changed(self) -> None:
        # The tab widgets re-lay themselves out when their page changes, with requests posted behind
        # the page's first paint: the page was painted at its old geometry, then laid out and painted
        # again, whole (twice or three times per switch). Laying out first makes the one paint final.
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.LayoutRequest)
        self._deliver_stale()
        if hasattr(self, "action_export_animation"):  # tabs are switched while the window is built
            self._update_export_actions()
        self._paint_pages_later()

    def _paint_pages_later(self) -> None:
        """Paint the tabs (the new page and the tab bars) after the timers and input that came due
        meanwhile, not straight after the switch.

        Showing a page lays it out and refreshes its view (5-15 ms under training) and the paint of the
        whole page costs as much again. Qt handles posted events (the window's repaint) before due timers,
        so the two ran back to back and held the GUI thread for their sum, 25-45 ms. Updates of the tab
        area are held until a zero-interval timer, which fires after the timers already due: input and
        timers get a turn between the two halves. The tab bars wait too, so the switch appears at once.
        """
        self.tabs.setUpdatesEnabled(False)
        self._paint_tabs_timer.start()

    @QtCore.Slot()
    def _paint_tabs(self) -> None:
        self.tabs.setUpdatesEnabled(True)  # schedules one repaint of the whole tab area

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

    def _view(self, object_name: str) -> QtWidgets.QWidget | None:
        """The view with this objectName (a contract name such as "kernelTimeline"), or None."""
        return next((v for v in self.views.values() if v.objectName() == object_name), None)

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

    def _set_recorders(self, health: HealthMonitor | None, timeline: KernelTimeline | None) -> None:
        """Use these recorders for the next run and show them in their views."""
        self.health, self.timeline = health, timeline
        view = self._view("gradientHealthView")
        if view is not None:
            view.set_monitor(health)
        view = self._view("kernelTimeline")
        if view is not None:
            view.set_timeline(timeline)

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
        self.status_step.setText("")  # the step and speed of a run these weights do not come from
        self.status_ips.setText("– images/s")
        if lineage is None:
            self.panel.set_progress(0, 0, 0)  # nor its progress bars
        if model.name in PRESETS and self.panel.preset.currentData() != model.name:
            self.panel.preset.setCurrentIndex(self.panel.preset.findData(model.name))
        self._schedule_push()

    # ------------------------------------------------------------------ data

    def _describe_data(self) -> str:
        h, w = self.train_data.x.shape[1:3]
        return f"{len(self.train_data):,} training / {len(self.val_data):,} validation images, {h}x{w}"

    def use_datasets(self, train: engine_data.Dataset, val: engine_data.Dataset, key: str,
                     path: str | None = None) -> None:
        """Train on ``train`` and validate on ``val`` from now on (``key``: a key of app.training_panel.DATASETS)."""
        self.train_data, self.val_data = train, val
        self._dataset_path = path
        self.panel.set_dataset(key, self._describe_data(), train.x.shape[1:])
        for view in self.views.values():
            if hasattr(view, "datasets_changed"):
                view.datasets_changed()

    @QtCore.Slot(str)
    def request_dataset(self, key: str) -> None:
        """Load the dataset the panel asked for (in the background when it is big)."""
        if self._task is not None:
            return
        if key == "bundled":
            self.use_datasets(*engine_data.load_bundled_mnist(), key)
        elif key == "digits8x8":
            self.use_datasets(*engine_data.load_digits_8x8(), key)
        elif key == "mnist_dir":
            directory = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder with the MNIST files",
                                                                   self.settings.last_dir())
            if directory:
                self.settings.set_last_dir(directory)
                self.load_mnist_dir(directory)
        elif key == "download":
            self.download_mnist()

    def load_mnist_dir(self, directory: str) -> None:
        """Load full MNIST from ``directory`` on a background thread."""
        self.statusBar().showMessage(f"Loading MNIST from {directory}…")
        self._start_task(functools.partial(_load_mnist_task, directory))

    def download_mnist(self) -> None:
        """Download full MNIST on a background thread behind a cancellable progress dialog, then load it."""
        total = sum(info["size"] for info in engine_data.MNIST_FILES.values())
        dialog = QtWidgets.QProgressDialog("Downloading MNIST…", "Cancel", 0, total, self)
        dialog.setObjectName("downloadDialog")
        dialog.setWindowTitle("Download MNIST")
        # Not modal: a modal QProgressDialog spins the event loop inside setValue (re-entrancy); the
        # panel is disabled while the task runs instead.
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        self._download_dialog = dialog
        self._download_done = {}
        task = self._start_task(_download_mnist_task)
        task.progressed.connect(self._download_progress)
        dialog.canceled.connect(self._cancel_task)
        dialog.show()

    @QtCore.Slot(object)
    def _download_progress(self, args: tuple) -> None:
        done, _, name = args
        self._download_done[name] = done
        dialog = self._download_dialog
        if dialog is not None:
            dialog.setLabelText(f"Downloading {name}…")
            dialog.setValue(min(sum(self._download_done.values()), dialog.maximum()))

    @QtCore.Slot()
    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel.set()
            # The download notices between two reads: on a stalled connection that is when the
            # server answers or the read times out. Until then the panel stays busy: say why.
            self.statusBar().showMessage("Cancelling the download: it stops at the server's next answer "
                                         "(on a stalled connection, within 30 s)…")

    def _start_task(self, function) -> BackgroundTask:
        """Run ``function(cancel, progress) -> (train, test, path)`` in the background, then use that data."""
        self.panel.set_state("busy")
        task = BackgroundTask(function, self)
        self._task = task
        self._update_actions()
        task.succeeded.connect(self._task_succeeded)
        task.failed.connect(self._task_failed)
        task.finished.connect(self._task_finished)
        task.start()
        return task

    @QtCore.Slot(object)
    def _task_succeeded(self, result: tuple) -> None:
        train, test, path = result
        self.use_datasets(train, test, "mnist_dir", path)
        self.statusBar().showMessage(f"Loaded {self._describe_data()} from {path}.", 5000)

    @QtCore.Slot(object)
    def _task_failed(self, error: Exception) -> None:
        if isinstance(error, engine_data.DownloadCancelled):
            self.statusBar().showMessage("Download cancelled.", 5000)
            return
        self.statusBar().clearMessage()
        message_box(self, QtWidgets.QMessageBox.Icon.Warning, "Cannot load the data",
                    f"{error}\n\nTraining stays on the data loaded before ({self._describe_data()}).")

    @QtCore.Slot()
    def _task_finished(self) -> None:
        if self._download_dialog is not None:
            self._download_dialog.canceled.disconnect(self._cancel_task)  # close() emits canceled too
            self._download_dialog.close()
            self._download_dialog.deleteLater()
            self._download_dialog = None
        self._task.deleteLater()
        self._task = None
        self.panel.set_state(self._run_state)
        self._update_actions()

    # ------------------------------------------------------------------ training

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
        if state == "running":
            self._elapsed.start()
            self._clock.start()
        elif self._clock.isActive():
            self._elapsed_before_ms += self._elapsed.elapsed()
            self._clock.stop()
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
        self._keep_curve_as_previous_run()
        self._step_offset = self._last_step = 0
        self._elapsed_before_ms = 0
        self.panel.set_progress(0, 0, 0)
        self._set_display_model(build(config.preset, seed=config.seed),
                                f"fresh {config.preset} (seed {config.seed})")
        self._set_recorders(None, None)
        kept = self.loss_view.has_overlay("previous run")
        self.statusBar().showMessage(f"Fresh random weights for {config.preset} (seed {config.seed})"
                                     + ("; the cleared curve stays as “previous run”." if kept else "."), 5000)
        self._update_status()

    def _keep_curve_as_previous_run(self) -> None:
        """Clear the loss curves, keeping the run just cleared as the "previous run" overlay."""
        if self.loss_view.steps.size:
            self.loss_view.add_overlay("previous run", self.loss_view.steps, self.loss_view.losses)
        self.loss_view.clear()

    def _update_actions(self) -> None:
        """Menu actions that change the weights, the data or the run: only when nothing runs, and
        training not while data loads (it would train on the old data and label it with the new)."""
        idle = self._run_state == "idle" and self._task is None
        for action in (self.action_open, self.action_reload, self.action_open_session):
            action.setEnabled(idle)
        for action in (self.action_start_pause, self.action_step):
            action.setEnabled(self._task is None)

    def _loading(self) -> bool:
        """True (and a status message) while data loads in the background: nothing that trains or
        replaces the weights may start meanwhile."""
        if self._task is not None:
            self.statusBar().showMessage("Loading data: try again when it has finished (or cancel it).", 5000)
        return self._task is not None

    def _start_run(self, paused: bool) -> bool:
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
                    "Starting a new run from fresh weights", ("run",)):
                return False
            trainer = self._new_trainer(config)
            if trainer is None:
                return False
        self._set_recorders(*_recorders_for(trainer, self.health, self.timeline))
        self.worker = TrainingWorker(trainer)
        self._steps_saved = trainer.step_index  # where its steps start (confirm_discard)
        # set before start (not passed to the constructor: tests subclass the worker with (trainer) only)
        self.worker.recorders = tuple(r for r in (self.health, self.timeline) if r is not None)
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        self.worker.steps.connect(self._on_steps, queued)
        self.worker.validation.connect(self._on_validation, queued)
        self.worker.epoch.connect(self._on_epoch, queued)
        self.worker.weights.connect(self._on_weights, queued)
        self.worker.diverged.connect(self._on_diverged, queued)
        self.worker.failed.connect(self._on_failed, queued)
        self.worker.done.connect(self._on_done, queued)
        self._progress = self._validating = None
        self.worker.start(paused=paused)
        self._set_run_state("paused" if paused else "running")
        self.panel.set_progress(trainer.step_index, trainer.total_steps, trainer.steps_per_epoch)
        epochs_left = -(-(trainer.total_steps - trainer.step_index) // trainer.steps_per_epoch)
        self.loss_view.set_run_extent(self._step_offset + trainer.total_steps,
                                      self.loss_view.epoch_count + epochs_left)
        return True

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
            self.panel.set_weights_info(f"training, continued from {self.panel.weights_description}",
                                        source.name)
        else:
            self._keep_curve_as_previous_run()
            self._step_offset = self._last_step = 0
            self._elapsed_before_ms = 0
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
        self._progress = (int(batch["step"][-1]), batch["epoch"], batch["images_per_second"])
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
        self._run_state = "diverged"
        if self._clock.isActive():
            self._elapsed_before_ms += self._elapsed.elapsed()
            self._clock.stop()
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
        self.panel.set_weights_info(f"{self.display_model.name} after {steps} ({'run ' + reason})",
                                    self.display_model.name)
        self.statusBar().showMessage(f"Run {reason} after {steps}.", 10000)

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

    # ------------------------------------------------------------------ status bar, menus

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_step = QtWidgets.QLabel(objectName="stepStatus")
        self.status_step.setToolTip("Current epoch and optimiser step of the run.")
        self.status_ips = QtWidgets.QLabel("– images/s", objectName="imagesPerSecond")
        self.status_ips.setToolTip("Training throughput: images per second through forward, backward and "
                                   "update.")
        self.status_elapsed = QtWidgets.QLabel(objectName="elapsedTime")
        self.status_elapsed.setToolTip("Training time of this run, pauses excluded.")
        for label in (self.status_step, self.status_ips, self.status_elapsed):
            bar.addPermanentWidget(label)

    @QtCore.Slot()
    def _update_status(self) -> None:
        """Elapsed time, and the run's progress and throughput when a run is going."""
        ms = self._elapsed_before_ms + (self._elapsed.elapsed() if self._clock.isActive() else 0)
        minutes, seconds = divmod(int(ms // 1000), 60)
        self.status_elapsed.setText(f"elapsed {minutes}:{seconds:02d}")
        if self.worker is None or self._progress is None:
            return
        step, epoch, images_per_second = self._progress
        trainer = self.worker.trainer
        self.panel.set_progress(step, trainer.total_steps, trainer.steps_per_epoch, self._validating)
        self.status_ips.setText("validating" if self._validating else f"{images_per_second:,.0f} images/s")
        self.status_step.setText(f"epoch {epoch}, step {step}/{trainer.total_steps}")

    def _action(self, menu: QtWidgets.QMenu, text: str, slot, shortcut: str | None = None,
                tip: str = "") -> QtGui.QAction:
        action = menu.addAction(text)
        action.triggered.connect(slot)
        if shortcut:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setToolTip(tip)
        return action

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        self.action_open = self._action(file_menu, "&Open weights…", self._open_weights_dialog, "Ctrl+O",
                                        "Load a weights file (.npz) saved by ConvScope or its CLI.")
        self._action(file_menu, "&Save weights as…", self._save_weights_dialog, "Ctrl+S",
                     "Save the weights shown to a .npz file (written atomically).")
        self.action_reload = self._action(file_menu, "Load &pretrained weights", self.load_pretrained, None,
                                          "Show the pretrained VGG-7 that ships with ConvScope again.")
        file_menu.addSeparator()
        self.action_open_session = self._action(
            file_menu, "Open sessio&n…", self._open_session_dialog, "Ctrl+Shift+O",
            "Open a saved session: weights, loss curves, settings, kernel timeline and experiments; Start "
            "continues its training.")
        self._action(file_menu, "Save sess&ion…", self._save_session_dialog, "Ctrl+Shift+S",
                     "Save everything needed to continue later: weights, optimiser state, loss history, "
                     "settings, kernel timeline and experiment results (training pauses first).")
        file_menu.addSeparator()
        self._action(file_menu, "&Export current view as PNG…", self._export_dialog, "Ctrl+E",
                     "Save the plot or heatmap of the current tab as a PNG image.")
        self._action(file_menu, "Export &data (PNG + CSV)…", self._export_data_dialog, None,
                     "Save every plot and heatmap of the current tab as PNG images and their numbers as "
                     "CSV files, into a folder.")
        self.action_export_animation = self._action(
            file_menu, "Export &animation…", self._export_animation_dialog, None,
            "Save the Conv stepper's or the Pooling view's steps as an animated GIF or PNG frames.")
        file_menu.addSeparator()
        self.action_ask_discard = self._action(
            file_menu, "Ask before discarding unsaved work", self.settings.set_ask_before_discarding, None,
            "Before closing, opening a session or other weights, resetting or starting a run from fresh "
            "weights: offer to save a training run or experiment that no saved session holds.")
        self.action_ask_discard.setCheckable(True)
        self.action_ask_discard.setChecked(self.settings.ask_before_discarding())
        self._action(file_menu, "&Quit", self.close, "Ctrl+Q", "Stop training and quit.")

        train_menu = menus.addMenu("&Training")
        self.action_start_pause = self._action(train_menu, "Start / pause", self.toggle_start_pause, "Space",
                                               "Start, pause or resume training.")
        self.action_step = self._action(train_menu, "Step one mini-batch", self.step, "Right",
                                        "Train one mini-batch, then pause.")
        self._action(train_menu, "Stop", self.stop, None, "End the run.")
        self._action(train_menu, "Reset weights", self.reset, None,
                     "Fresh random weights for the preset and seed.")

        view_menu = menus.addMenu("&View")
        # Window-wide: a tab widget handles Ctrl+Tab itself only while the focus is inside it.
        self._action(view_menu, "Next view in this group", functools.partial(self.next_view, 1), "Ctrl+Tab",
                     "Show the next tab of the current group.")
        self._action(view_menu, "Previous view in this group", functools.partial(self.next_view, -1),
                     "Ctrl+Shift+Tab", "Show the previous tab of the current group.")
        self._action(view_menu, "Next group", functools.partial(self.next_group, 1), "Ctrl+PgDown",
                     "Show the next group of views (Training, Inside the network, Learning lab).")
        self._action(view_menu, "Previous group", functools.partial(self.next_group, -1), "Ctrl+PgUp",
                     "Show the previous group of views.")
        view_menu.addSection("Panels")
        panel_action = self.panel_dock.toggleViewAction()
        panel_action.setText("Training panel")  # not "Training": the view group below has that name
        view_menu.addAction(panel_action)
        for dock in self.view_docks.values():
            view_menu.addAction(dock.toggleViewAction())
        for name, group in self.groups.items():  # every view, by group: a learner finds each one here
            view_menu.addSection(name)
            for i in range(group.count()):
                title = group.tabText(i)
                self._action(view_menu, title, functools.partial(self.show_view, title), None,
                             group.tabToolTip(i))
        self._update_export_actions()

        help_menu = menus.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self._show_shortcuts, None,
                     "List the keyboard shortcuts.")
        self._action(help_menu, "&About ConvScope", self._show_about, None, "Version and licences.")

    @QtCore.Slot()
    def _show_shortcuts(self) -> QtWidgets.QDialog:
        """The shortcuts in a dialog that scrolls within the screen: in a message box they ran off a
        1000-px screen at a 16-pt font, Close button and all."""
        dialog = QtWidgets.QDialog(self, objectName="shortcutsDialog", windowTitle="Keyboard shortcuts")
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        html = "<table cellpadding='3'>" + "".join(f"<tr><td><b>{key}</b></td><td>{what}</td></tr>"
                                                   for key, what in SHORTCUTS) + "</table>"
        text = QtWidgets.QTextBrowser(dialog)
        text.setHtml(html)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close, dialog)
        buttons.rejected.connect(dialog.reject)
        layout = QtWidgets.QVBoxLayout(dialog)
        layout.addWidget(text)
        layout.addWidget(buttons)
        screen = (self.screen() or QtGui.QGuiApplication.primaryScreen()).availableGeometry()
        width = min(90 * text.fontMetrics().averageCharWidth(), int(screen.width() * 0.9))
        measure = QtGui.QTextDocument()  # the browser's own document is laid out at its current width
        measure.setDefaultFont(text.font())
        measure.setHtml(html)
        measure.setTextWidth(width - 50)
        height = int(measure.size().height()) + buttons.sizeHint().height() + 60
        dialog.resize(width, min(height, int(screen.height() * 0.8)))
        dialog.open()
        return dialog

    @QtCore.Slot()
    def _show_about(self) -> None:
        from importlib import metadata

        try:
            version = metadata.version("convscope")
        except metadata.PackageNotFoundError:
            version = "development"
        message_box(self, QtWidgets.QMessageBox.Icon.Information, "About ConvScope",
                    f"<b>ConvScope</b> {version}<br>Watch a small CNN, written in plain NumPy, learn "
                    "handwritten digits.<br><br>MNIST: Y. LeCun and C. Cortes, CC BY-SA 3.0.<br>"
                    "UCI optical digits: E. Alpaydin and C. Kaynak, CC BY 4.0.")

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

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        if not self.confirm_discard("Closing ConvScope"):
            event.ignore()
            return
        self._save_settings()
        self.closed_cleanly = self.shutdown()
        super().closeEvent(event)


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


def _load_mnist_task(directory: str, cancel, progress) -> tuple:
    """Background: full MNIST from a folder -> (train, test, directory)."""
    train, test = engine_data.load_mnist_dir(directory)
    return train, test, directory


def _download_mnist_task(cancel, progress) -> tuple:
    """Background: download full MNIST (cancellable), then load it -> (train, test, folder)."""
    folder = engine_data.download_mnist(progress=progress, cancel=cancel)
    train, test = engine_data.load_mnist_dir(folder)
    return train, test, str(folder)


FRAME_ALLOWANCE = QtCore.QSize(20, 50)  # a window manager's frame and title bar around the window


def show_main_window(window: MainWindow) -> None:
    """Show ``window`` as it was left (saved geometry), else at its default size, or maximised when
    that size does not fit the screen (1400 x 900 hung off a 1280 x 800 laptop's edges); shrunk to
    the screen too, for "restore" and for window managers that do not maximise. The screen is the
    one under the mouse (where window managers open a new window), not necessarily the primary."""
    screen = QtGui.QGuiApplication.screenAt(QtGui.QCursor.pos()) or window.screen()
    available = screen.availableGeometry()
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
