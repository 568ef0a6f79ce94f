"""The window's layout for :class:`app.main_window.MainWindow` (:class:`ViewPages`, a mixin): the
training panel's dock, the registry's views as tab pages in group tabs or as right-hand docks, moving
between them, and the deferred paint of a page switched to."""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app import views as view_registry
from app.views.accessibility import name_fields, off_the_tab_chain
from app.views.loss import LossView


class ViewPages:
    """Docks, group tabs and pages of the views, and navigation between them (mixed into MainWindow)."""

    def _build_panel_dock(self) -> None:
        """The training panel, in a dock on the left (its settings scroll, its run controls do not)."""
        self.panel_dock = QtWidgets.QDockWidget("Training", self, objectName="trainingDock")
        self.panel_dock.setWidget(self.panel)
        self.panel_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                                    | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable
                                    | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, self.panel_dock)

    def _build_view_tabs(self) -> None:
        """Every view of the registry, in two levels of tabs: the groups (view_registry.GROUPS), each a
        tab widget of its views; or in a dock."""
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
        self._keys_page: QtWidgets.QWidget | None = None  # the page that took the focus for its keys
        self._keys_focus_moved = False  # its keys widget had the focus when it was hidden (_hand_over_keys)
        QtWidgets.QApplication.instance().focusChanged.connect(self._note_keys_focus_moved)

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
        self._hand_over_keys()
        if hasattr(self, "action_export_animation"):  # tabs are switched while the window is built
            self._update_export_actions()
        self._paint_pages_later()

    def _hand_over_keys(self) -> None:
        """A page with keys of its own (``keys_widget()``: the conv stepper's and pooling view's Space
        and Right) takes the focus when its tab is chosen. The focus stayed on the training dock's Start
        (put there at start-up, kept there by the panel), so Space under a "Play (Space)" button started
        a run from fresh weights, replacing the pretrained ones. Leaving such a page for one without
        keys of its own gives the focus back to Start / Pause, so Space and Right train there again
        (Qt would have put it on the new page's first control, where Space presses a button)."""
        if not self._constructed:
            return  # tabs switched while the window is built; Start takes the focus at the end
        view = self.current_view()
        focus = QtWidgets.QApplication.focusWidget()
        left, self._keys_page = self._keys_page, None
        moved_by_qt = left is not None and left is not view and (self._keys_focus_moved or focus is None)
        self._keys_focus_moved = False
        keys_widget = getattr(view, "keys_widget", None)
        if keys_widget is not None:
            if focus is None or not view.isAncestorOf(focus) or moved_by_qt:
                keys_widget().setFocus(QtCore.Qt.FocusReason.OtherFocusReason)
            self._keys_page = view
        elif moved_by_qt:
            panel = self.panel
            button = next((b for b in (panel.start_button, panel.pause_button) if b.isEnabled()), None)
            if button is not None and button.isVisible():
                button.setFocus(QtCore.Qt.FocusReason.OtherFocusReason)

    @QtCore.Slot(QtWidgets.QWidget, QtWidgets.QWidget)
    def _note_keys_focus_moved(self, old: QtWidgets.QWidget | None, _new: QtWidgets.QWidget | None) -> None:
        """Note that the keys page's widget lost the focus by being hidden with its page (Qt then moves
        the focus to the next page's first control or a tab bar), not to a click or Tab elsewhere."""
        page = self._keys_page
        if page is not None and old is not None and old is page.keys_widget() and not old.isVisible():
            self._keys_focus_moved = True

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

    def _view(self, object_name: str) -> QtWidgets.QWidget | None:
        """The view with this objectName (a contract name such as "kernelTimeline"), or None."""
        return next((v for v in self.views.values() if v.objectName() == object_name), None)

