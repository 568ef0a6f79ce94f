"""The menu bar of :class:`app.main_window.MainWindow` (:class:`MenuBar`, a mixin): the File, Training,
View and Help menus with their shortcuts, and the Help menu's dialogs. The File menu's work is in
:mod:`app.file_menu`, the Training menu's in :mod:`app.run_control`."""
from __future__ import annotations

import functools

from PySide6 import QtCore, QtGui, QtWidgets

from app.file_menu import message_box

SHORTCUTS = (
    ("Space", "Start, pause or resume training (on a focused button, check box or list: press or select it)"),
    ("Right", "Train one mini-batch, while paused or before a run (on a tab bar or slider: move it)"),
    ("Conv stepper", "Right / Left: step forward / back; Space: play or pause; PageDown / PageUp: "
                     "next / previous stage; Home / End: first / last step"),
    ("Pooling", "On its tab (or after a click on its maps): Right / Left: next / previous window; Space: play "
                "or pause; Home / End: first / last window"),
    ("Drawing pad", "Esc: clear; Ctrl+Z: undo the last stroke; Ctrl+1 / Ctrl+2 / Ctrl+3: thin / medium / thick "
                    "pen; Tab: its buttons"),
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


# The views name these articles "seed 001" … "seed 004" (never the random seed of a run): what each is, and
# where the app shows what it teaches (the project's ../shared/seeds/README.md in a learner's words).
ARTICLES_LEAD = ("ConvScope grew out of five articles on writing a CNN from scratch in NumPy, numbered 000 to "
                 "004. The views name them <b>seed 001</b> … <b>seed 004</b> where they reproduce their "
                 "examples, networks and experiments. This is not the <i>Seed</i> field of a run, which only "
                 "makes its random start repeatable.")
ARTICLES = (
    ("004 / 000", "Mini VGG (VGG-7) and a softmax layer (000: a Chinese translation of 004)",
     "The default network <b>vgg7</b>: ReLU conv layers with average pooling, tanh and arctan dense layers, "
     "separate learning rates for conv and dense layers. Its typo updated the second conv kernel with the "
     "first layer's gradient (\"broken update\"): compare both in Learning lab → Experiments, and see the "
     "wrong gradient in Gradient check."),
    ("001", "Neural networks in Python (3): convolutional networks",
     "Convolution as sliding inner products, TensorFlow's SAME and VALID padding, the backward pass with "
     "a 180°-rotated kernel and zeros inserted for a stride: the Conv stepper's <i>Worked example</i> source "
     "replays its examples number by number."),
    ("002", "Multi-layer CNN with NumPy only",
     "The preset <b>tiny8x8</b>: 8x8 digits, 0 against 1, max pooling and an L2 cost. Its experiment "
     "transposed the pooling's backward pass and still trained: \"transposed pooling\" in Experiments, "
     "Gradient check and Pooling."),
    ("003", "Let's code a CNN in plain NumPy",
     "The preset <b>seed003</b>: one conv layer, max pooling with its mask (see Pooling), dropout and a dense "
     "softmax layer."),
)


class MenuBar:
    """The window's menus and the Help menu's dialogs (mixed into MainWindow)."""

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
        self._build_file_menu(menus.addMenu("&File"))
        self._build_training_menu(menus.addMenu("&Training"))
        self._build_view_menu(menus.addMenu("&View"))
        self._update_export_actions()
        self._build_help_menu(menus.addMenu("&Help"))

    def _build_file_menu(self, file_menu: QtWidgets.QMenu) -> None:
        """Weights, sessions, exports, the unsaved-work question and Quit (the work: app.file_menu)."""
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

    def _build_training_menu(self, train_menu: QtWidgets.QMenu) -> None:
        """Start / pause, one step, stop and reset (the work: app.run_control)."""
        self.action_start_pause = self._action(train_menu, "Start / pause", self.toggle_start_pause, "Space",
                                               "Start, pause or resume training.")
        self.action_step = self._action(train_menu, "Step one mini-batch", self.step, "Right",
                                        "Train one mini-batch, then pause.")
        self._action(train_menu, "Stop", self.stop, None, "End the run.")
        self._action(train_menu, "Reset weights", self.reset, None,
                     "Fresh random weights for the preset and seed.")

    def _build_view_menu(self, view_menu: QtWidgets.QMenu) -> None:
        """Moving between views and groups, the docks shown or hidden, and every view by group."""
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

    def _build_help_menu(self, help_menu: QtWidgets.QMenu) -> None:
        """The keyboard shortcuts, the reference articles and the About box."""
        self._action(help_menu, "&Keyboard shortcuts", self._show_shortcuts, None,
                     "List the keyboard shortcuts.")
        self._action(help_menu, "&Reference articles (seed 000–004)", self._show_articles, None,
                     "What the \"seed 001\" … \"seed 004\" in the views' names and notes refer to.")
        self._action(help_menu, "&About ConvScope", self._show_about, None, "Version and licences.")

    @QtCore.Slot()
    def _show_shortcuts(self) -> QtWidgets.QDialog:
        html = "<table cellpadding='3'>" + "".join(f"<tr><td><b>{key}</b></td><td>{what}</td></tr>"
                                                   for key, what in SHORTCUTS) + "</table>"
        return self._html_dialog("shortcutsDialog", "Keyboard shortcuts", html)

    @QtCore.Slot()
    def _show_articles(self) -> QtWidgets.QDialog:
        rows = "".join(f"<tr><td><b>seed {number}</b></td><td><i>{title}</i><br>{what}</td></tr>"
                       for number, title, what in ARTICLES)
        html = f"<p>{ARTICLES_LEAD}</p><table cellpadding='4'>{rows}</table>"
        return self._html_dialog("articlesDialog", "The reference articles (seed 000–004)", html)

    def _html_dialog(self, name: str, title: str, html: str) -> QtWidgets.QDialog:
        """A non-modal dialog showing ``html`` that scrolls within the screen: in a message box the
        shortcuts ran off a 1000-px screen at a 16-pt font, Close button and all."""
        dialog = QtWidgets.QDialog(self, objectName=name, windowTitle=title)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
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
