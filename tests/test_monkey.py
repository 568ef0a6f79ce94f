"""Bugs found by the monkey test (app.monkey: random user actions on the real window), each driven
again here through the widgets that showed it."""
from PySide6 import QtCore


def test_pooling_next_window_while_a_new_layer_waits_for_its_refresh(qtbot, make_window):
    """Found by the monkey (another layer picked, then Next clicked at once): the new layer's refresh
    is rate-limited, so for a moment the old sample is still shown with its colour scales already
    dropped; Next drew the routed δ with no levels, a TypeError in the slot and a pyqtgraph paint error
    (here a segmentation fault)."""
    window = make_window()
    window.show_view("Pooling")
    view = window.views["Pooling"]
    qtbot.waitUntil(lambda: view.sample is not None, timeout=10_000)
    view.update_cost_ms = 1000.0  # a slow refresh (as while training): the layer's waits ~2 s
    view.layer_combo.setCurrentIndex((view.layer_combo.currentIndex() + 1) % view.layer_combo.count())
    assert view.sample.layer != view.layer_combo.currentData()  # the old layer still shown meanwhile
    qtbot.mouseClick(view.next_button, QtCore.Qt.MouseButton.LeftButton)
    assert view.slider.value() == 1
    qtbot.wait(50)  # the routed map painted
