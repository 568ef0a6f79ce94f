"""DeferredProgressBar: a new value is painted with the window's next repaint, never synchronously."""
import pytest
from PySide6 import QtWidgets

from app.progress_bar import DeferredProgressBar


class CountingLabel(QtWidgets.QLabel):
    def __init__(self) -> None:
        super().__init__("dirty")
        self.paints = 0

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.paints += 1
        super().paintEvent(event)


def window_with(bar: QtWidgets.QProgressBar, qtbot):
    window = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(window)
    label = CountingLabel()
    layout.addWidget(label)
    layout.addWidget(bar)
    bar.setRange(0, 100)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: label.paints > 0)
    return window, label


@pytest.mark.parametrize("bar_class, paints_at_once", [(QtWidgets.QProgressBar, True),
                                                       (DeferredProgressBar, False)])
def test_set_value_leaves_the_window_repaint_to_the_event_loop(qtbot, bar_class, paints_at_once):
    bar = bar_class()
    window, label = window_with(bar, qtbot)
    for value in (10, 60):
        before = label.paints
        label.update()  # another widget is dirty, e.g. a page just shown
        bar.setValue(value)
        assert bar.value() == value
        # QProgressBar.repaint() paints the window's whole dirty region, the label with it
        assert (label.paints > before) is paints_at_once
        qtbot.waitUntil(lambda: label.paints > before)
    window.close()


def test_deferred_bar_draws_its_new_value(qtbot):
    bar = DeferredProgressBar()
    bar.setTextVisible(True)
    window, _ = window_with(bar, qtbot)
    bar.setValue(0)
    qtbot.wait(50)
    empty = bar.grab().toImage()
    bar.setValue(100)
    qtbot.waitUntil(lambda: bar.grab().toImage() != empty)
    bar.setValue(100)  # the same value: nothing to do
    assert bar.value() == 100 and bar.updatesEnabled()
    window.close()
