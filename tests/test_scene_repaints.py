"""repaint_with_window: the scenes of a page are painted in the window's one repaint, not one each."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.scenes import repaint_with_window


class CountingView(pg.GraphicsLayoutWidget):
    """Records, for each of its paints, how many repaints (UpdateRequests) its window had begun."""

    def __init__(self, window_updates: list[int]) -> None:
        super().__init__()
        self.window_updates = window_updates
        self.painted_in: list[int] = []
        self.curve = self.addPlot().plot(np.zeros(20))

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.painted_in.append(self.window_updates[0])
        super().paintEvent(event)


class UpdateCounter(QtCore.QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = [0]

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.UpdateRequest:
            self.count[0] += 1
        return False


@pytest.mark.parametrize("with_window", [False, True])
def test_two_changed_scenes_cost_one_window_repaint_only_when_connected(qtbot, with_window):
    window = QtWidgets.QWidget()
    counter = UpdateCounter()
    window.installEventFilter(counter)
    layout = QtWidgets.QVBoxLayout(window)
    views = [CountingView(counter.count) for _ in range(2)]
    for view in views:
        layout.addWidget(view)
        if with_window:
            repaint_with_window(view)
    window.resize(400, 500)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(100)
    rng = np.random.default_rng(0)
    for _ in range(3):
        for view in views:
            view.painted_in.clear()
        for view in views:  # both pages' data change within one slot, as a live refresh does
            view.curve.setData(rng.random(20))
        qtbot.waitUntil(lambda: all(view.painted_in for view in views))
        qtbot.wait(50)
        first = [view.painted_in[0] for view in views]
        # by default each scene makes the window repaint at once, for its own view alone (and again
        # for pyqtgraph's second pass): 2 views, 4 repaints; connected, the views share them
        assert (first[0] == first[1]) is with_window, [view.painted_in for view in views]
        repaints = {update for view in views for update in view.painted_in}
        paints = sum(len(view.painted_in) for view in views)
        assert (len(repaints) < paints) is with_window
    window.close()


class DepthScene(QtWidgets.QGraphicsScene):
    """A scene that knows whether it is inside one of its own events (e.g. a queued call)."""

    def __init__(self) -> None:
        super().__init__(0, 0, 200, 200)
        self.depth = 0

    def event(self, event) -> bool:
        self.depth += 1
        try:
            return super().event(event)
        finally:
            self.depth -= 1


class WindowRepaints(QtCore.QObject):
    """Records, for each repaint of the watched window, whether it ran inside the scene's events."""

    def __init__(self, scene: DepthScene) -> None:
        super().__init__()
        self.scene = scene
        self.inside_scene: list[bool] = []

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.UpdateRequest:
            self.inside_scene.append(self.scene.depth > 0)
        return False


class ViewportPaints(QtCore.QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.Paint:
            self.count += 1
        return False


@pytest.mark.parametrize("setup", ["default", "changed connected", "repaint_with_window"])
def test_changed_items_repaint_the_window_from_the_event_loop_not_inside_the_scene(qtbot, setup):
    """An item's change is painted by the window's ordinary repaint, never by one the scene forces
    inside its queued pass over dirty items (the default; a connected ``changed`` alone still lets
    that pass dispatch the window's repaint when no scene update was pending). Items that ignore
    the view's transformations (pyqtgraph's legends) are updated through the views directly: they
    are repainted too."""
    scene = DepthScene()
    box = scene.addRect(10, 10, 50, 50, QtGui.QPen(), QtGui.QBrush(QtGui.QColor("red")))
    label = scene.addRect(100, 100, 30, 30, QtGui.QPen(), QtGui.QBrush(QtGui.QColor("red")))
    label.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
    window = QtWidgets.QWidget()
    view = QtWidgets.QGraphicsView(scene)
    QtWidgets.QVBoxLayout(window).addWidget(view)
    if setup == "changed connected":
        scene.changed.connect(lambda rects: None)
    elif setup == "repaint_with_window":
        repaint_with_window(view)
    repaints = WindowRepaints(scene)
    window.installEventFilter(repaints)
    paints = ViewportPaints()
    view.viewport().installEventFilter(paints)
    window.resize(300, 300)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    for item, colour in ((box, "blue"), (label, "green"), (box, "yellow"), (label, "blue")):
        repaints.inside_scene.clear()
        painted_before = paints.count
        item.setBrush(QtGui.QBrush(QtGui.QColor(colour)))
        qtbot.waitUntil(lambda: paints.count > painted_before)
        qtbot.wait(20)
        # what the window shows (its backing store), not a fresh rendering as QWidget.grab would be
        shown = window.screen().grabWindow(window.winId()).toImage()
        centre = view.viewport().mapTo(window, view.mapFromScene(item.sceneBoundingRect().center()))
        assert shown.pixelColor(centre) == QtGui.QColor(colour)
        assert repaints.inside_scene  # the window did repaint
        assert any(repaints.inside_scene) is (setup != "repaint_with_window"), repaints.inside_scene
    window.close()
