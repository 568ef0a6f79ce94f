"""Live texts never lay out the page around them again.

A QLabel's or pyqtgraph LabelItem's setText asks the layouts above it for a new pass; on a page of
plots that pass cost the GUI thread 20-50 ms at every live refresh (see ``widgets.SteadyLabel``).
These tests count the LayoutRequest events the layouts above a changing text receive: none for the
steady labels, some for the plain ones (the control that shows the count can catch a request).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtWidgets

pytest.importorskip("pytestqt")

from app.views.feature_maps import FeatureMapView  # noqa: E402
from app.views.widgets import SteadyLabel, readout_label  # noqa: E402
from engine.presets import build  # noqa: E402

TEXTS = ["1", "a much longer text than the first one, in <b>bold</b> too", "12", "x" * 40]


class LayoutRequests(QtCore.QObject):
    """Counts the LayoutRequest events its object receives."""

    def __init__(self, watched: QtCore.QObject) -> None:
        super().__init__()
        self.count = 0
        watched.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.LayoutRequest:
            self.count += 1
        return False


def page_with(qtbot, label: QtWidgets.QWidget) -> tuple[QtWidgets.QWidget, LayoutRequests]:
    page = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(page)
    layout.addWidget(label)
    layout.addWidget(QtWidgets.QPushButton("something else on the page"))
    qtbot.addWidget(page)
    page.show()
    qtbot.waitExposed(page)
    qtbot.wait(50)  # the first layout passes of a new page are done
    return page, LayoutRequests(page)


def settle(qtbot, counters) -> None:
    """Wait until none of ``counters`` (LayoutRequests) has counted anything for 500 ms, then zero them:
    a new page's first layout passes come later on a loaded machine (a fixed 100 ms wait was too short
    with two other test runs on the two cores)."""
    for _ in range(50):
        before = [c.count for c in counters]
        qtbot.wait(500)
        if [c.count for c in counters] == before:
            break
    for c in counters:
        c.count = 0


def live_view(qtbot, view_class, model):
    """A view (no rate limit) showing ``model`` on a 1300x900 page, laid out; returns (view, page, the
    page's LayoutRequests counter); keep the page: it owns the view."""
    view = view_class()
    view.MAX_DUTY = None
    page, requests = page_with(qtbot, view)
    page.resize(1300, 900)
    view.model_changed(model)
    settle(qtbot, [requests])
    return view, page, requests


def refreshes(view, model, update, rounds, read):
    """``rounds`` training-like weight changes (``update(params)`` in place), each followed by a refresh
    of ``view``; returns what ``read()`` gives after each."""
    seen = []
    for _ in range(rounds):
        update(model.params())
        view.model_changed(model)
        QtWidgets.QApplication.processEvents()
        seen.append(read())
    return seen


def nudge(seed):
    """An ``update`` for :func:`refreshes`: Gaussian steps of 0.2 on every parameter."""
    rng = np.random.default_rng(seed)

    def update(params):
        for p in params.values():
            p += rng.standard_normal(p.shape).astype(p.dtype) * 0.2
    return update


def change_texts(label) -> None:
    for text in TEXTS:
        label.setText(text)
        QtWidgets.QApplication.processEvents()


def test_a_qlabel_asks_its_page_for_a_layout_pass_a_steady_label_does_not(qtbot):
    plain_label, steady_label = QtWidgets.QLabel("0"), SteadyLabel("0")
    plain_page, plain = page_with(qtbot, plain_label)
    steady_page, steady = page_with(qtbot, steady_label)
    change_texts(plain_label)
    change_texts(steady_label)
    assert plain.count > 0  # control: the count does catch a request
    assert steady.count == 0
    assert steady_label.text() == TEXTS[-1] == steady_label.label.text()


def test_steady_label_reserves_room_for_its_texts_and_fills_the_width_it_is_given(qtbot):
    label = SteadyLabel()
    label.reserve("Prediction: <b>8</b> (100.0%)  ✗ true label 8", "short")
    page, _ = page_with(qtbot, label)
    probe = QtWidgets.QLabel("Prediction: <b>8</b> (100.0%)  ✗ true label 8")
    assert label.minimumWidth() >= probe.sizeHint().width()
    page.resize(900, 200)
    QtWidgets.QApplication.processEvents()
    assert label.label.geometry() == label.rect() and label.width() > 800  # stretches with the page


def test_readout_label_is_one_monospace_line(qtbot):
    label = readout_label("Hover over a map")
    _page, requests = page_with(qtbot, label)
    change_texts(label)
    assert requests.count == 0
    assert label.label.font().styleHint() == label.label.font().StyleHint.Monospace
    assert label.height() < 2 * label.label.fontMetrics().lineSpacing()


def test_feature_map_refreshes_while_training_leave_the_page_layout_alone(qtbot):
    model = build("vgg7", seed=0)
    view, _page, requests = live_view(qtbot, FeatureMapView, model)
    # weights change as in training: a new prediction text at each refresh
    texts = set(refreshes(view, model, nudge(0), 6, view.prediction.text))
    assert len(texts) > 1  # the text did change
    assert requests.count == 0


def test_gradient_health_value_labels_change_without_a_scene_layout_pass(qtbot):
    from app.views.images import SteadyLabelItem

    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    steady = SteadyLabelItem("—", 140, 46, fixed=True, justify="left")
    widget.ci.addItem(steady, row=0, col=0)
    plain = widget.ci.addLabel("—", row=0, col=1)
    widget.show()
    qtbot.waitExposed(widget)
    QtWidgets.QApplication.processEvents()
    requests = LayoutRequests(widget.ci)
    change_texts(steady)
    assert requests.count == 0 and steady.text == TEXTS[-1]
    assert (steady.width(), steady.height()) == (140, 46)
    change_texts(plain)
    assert requests.count > 0  # control: pyqtgraph's own LabelItem asks for a pass


def test_drawing_pad_predictions_leave_the_pad_layout_alone(qtbot):
    """The prediction changes up to 50 times a second while someone draws: each new text must not lay
    out (and so repaint) the pad's whole panel."""
    from app.views.drawing_pad import DrawingPad, replay_strokes

    pad = DrawingPad()
    qtbot.addWidget(pad)
    pad.model_changed(build("vgg7", seed=0))
    pad.show()
    qtbot.waitExposed(pad)
    replay_strokes(pad.canvas, [np.array([[150.0, 60.0], [160.0, 200.0]])])  # the first prediction
    qtbot.wait(50)
    requests = LayoutRequests(pad)
    texts = {pad.predicted.text()}
    for end in range(3):
        replay_strokes(pad.canvas, [np.array([[60.0 + 40 * end, 100.0], [250.0, 120.0 + 50 * end]])])
        QtWidgets.QApplication.processEvents()
        texts.add(pad.predicted.text())
    assert len(texts) > 1  # the text did change
    assert requests.count == 0


def test_kernel_colour_scales_follow_the_weights_without_a_scene_layout_pass(qtbot):
    from app.views.kernels import KernelView

    model = build("vgg7", seed=0)
    view, _page, _ = live_view(qtbot, KernelView, model)
    panels = [layer.panel for layer in view._layers.values() if layer.panel is not None]
    requests = [LayoutRequests(panel.layout) for panel in panels] + [LayoutRequests(view.plot.ci)]

    def grow(params):  # every max|w| grows: every colour scale changes
        for p in params.values():
            p *= 1.3
    shown = refreshes(view, model, grow, 4, lambda: [panel.bar.levels() for panel in panels])
    assert all(a != b for before, after in zip(shown, shown[1:]) for a, b in zip(before, after))
    assert sum(r.count for r in requests) == 0


def test_steady_label_item_grows_for_a_longer_text_and_stays_for_shorter_ones(qtbot):
    from app.views.images import SteadyLabelItem

    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    label = SteadyLabelItem("12.5%", justify="left")
    widget.ci.addItem(label, row=0, col=0)
    widget.show()
    qtbot.waitExposed(widget)
    QtWidgets.QApplication.processEvents()
    requests = LayoutRequests(widget.ci)
    first = label.sizeHint(QtCore.Qt.SizeHint.PreferredSize)
    for text in ("3.5%", "99.9%", "1%"):  # no wider than the first: the layout is left alone
        label.setText(text)
        QtWidgets.QApplication.processEvents()
    assert requests.count == 0 and label.sizeHint(QtCore.Qt.SizeHint.PreferredSize) == first
    label.setText("a much longer text than any before")  # needs more room: one layout pass, then wider
    QtWidgets.QApplication.processEvents()
    assert requests.count > 0
    assert label.sizeHint(QtCore.Qt.SizeHint.PreferredSize).width() > first.width()
    assert label.width() >= label.itemRect().width()


def test_feature_map_titles_follow_training_without_a_scene_layout_pass(qtbot):
    model = build("vgg7", seed=0)
    view, _page, _ = live_view(qtbot, FeatureMapView, model)
    layouts = [item for item in view.plot.scene().items() if isinstance(item, pg.GraphicsLayout)]
    requests = [LayoutRequests(layout) for layout in layouts]
    settle(qtbot, requests)
    titles = set(refreshes(view, model, nudge(1), 6, lambda: view.probabilities.title.text))
    assert len(titles) > 1  # "predicted 3 at 41.2%" changed
    assert sum(r.count for r in requests) == 0


def test_pooling_refreshes_while_training_leave_the_page_layout_alone(qtbot):
    """The window-by-window text (δ values) changes at every refresh: it must not relayout the page."""
    from app.views.pooling import PoolingView

    model = build("vgg7", seed=0)
    view, _page, requests = live_view(qtbot, PoolingView, model)
    texts = set(refreshes(view, model, nudge(2), 4, view.step_text.text))
    assert len(texts) > 1
    assert requests.count == 0
