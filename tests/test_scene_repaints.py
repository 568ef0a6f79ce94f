"""repaint_with_window: the scenes of a page are painted in the window's one repaint, not one each."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtWidgets

from app.views.common import repaint_with_window


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
