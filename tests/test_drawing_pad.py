"""The drawing pad, driven with real mouse and key events (pytest-qt, offscreen).

Predictions are checked with the shipped weights ``resources/weights/vgg7.npz``.
"""
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.colour_scale import percent
from app.views.drawing_pad import (HINT, PAD_SIDE, DrawingPad, place_strokes, replay_strokes,
                                   saliency_rgba)
from engine.data import load_bundled_mnist
from engine.model import Sequential
from engine.preprocess import downsample_8x8, render_strokes
from engine.presets import build, get_preset
from engine.saliency import input_gradient
from engine.strokes import trace_strokes

WEIGHTS = Path(__file__).resolve().parents[1] / "resources" / "weights" / "vgg7.npz"
LEFT, RIGHT = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.RightButton
NONE = QtCore.Qt.KeyboardModifier.NoModifier

# Hand-made strokes in pad pixels: a slightly slanted "1" and an oval "0", both drawn as one drag.
ONE = [np.array([(160, 60 + 10 * i) for i in range(23)]) + np.array([[0.25 * i, 0] for i in range(23)])]
_angles = np.linspace(0.0, 2 * np.pi, 40)
ZERO = [np.stack([170 + 70 * np.sin(_angles), 170 - 110 * np.cos(_angles)], axis=1)]


@pytest.fixture(scope="module")
def shipped():
    return Sequential.load(WEIGHTS)


@pytest.fixture
def pad(qtbot, shipped):
    widget = DrawingPad()
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    widget.model_changed(shipped)
    return widget


def drag(qtbot, canvas, points):
    """One stroke with the mouse: press, move through ``points`` (pad pixels), release."""
    points = [QtCore.QPoint(int(round(x)), int(round(y))) for x, y in points]
    qtbot.mousePress(canvas, LEFT, NONE, points[0])
    for p in points[1:]:
        qtbot.mouseMove(canvas, p)
    qtbot.mouseRelease(canvas, LEFT, NONE, points[-1])


def predicted_label(pad):
    text = pad.predicted.text()
    return int(text.split()[0]) if text[:1].isdigit() else None


def ink_pixels(canvas):
    """How many pad pixels are painted brighter than mid-grey (the background is near black), inside the
    2-px focus frame."""
    image = canvas.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_Grayscale8)
    grey = np.array(image.constBits(), dtype=np.uint8).reshape(image.height(), image.bytesPerLine())
    return int((grey[2:-2, 2:image.width() - 2] > 128).sum())


# ------------------------------------------------------------------------------ blank pad

def test_blank_pad_shows_no_prediction(pad, qtbot):
    assert pad.predicted.text() == HINT
    assert pad.network_input() is None and pad.preview.image is None
    assert pad.bars.highlighted() is None and not pad.bars.probabilities().any()
    assert not pad.look_button.isEnabled()
    drag(qtbot, pad.canvas, ONE[0])
    assert predicted_label(pad) is not None
    pad.clear_button.click()
    assert pad.predicted.text() == HINT and pad.network_input() is None
    assert pad.bars.highlighted() is None and not pad.look_button.isEnabled()


def test_a_click_or_a_slip_of_the_mouse_is_not_read_as_a_digit(pad, qtbot):
    """Blown up to a digit's size, a dot was classified "2 (45%)" and a 1-pixel slip "2 (97%)"."""
    from app.views.drawing_pad import MIN_DRAWING

    qtbot.mouseClick(pad.canvas, LEFT, NONE, QtCore.QPoint(150, 150))
    pad._classify()
    assert pad.predicted.text() == HINT and pad.network_input() is None
    drag(qtbot, pad.canvas, [(150, 150), (151, 150), (150 + MIN_DRAWING - 2, 152)])
    pad._classify()
    assert pad.predicted.text() == HINT and not pad.look_button.isEnabled()
    drag(qtbot, pad.canvas, [(150, 150), (150, 150 + MIN_DRAWING + 1)])  # now a short stroke: a "1"?
    pad._classify()
    assert predicted_label(pad) is not None


def test_without_a_model_the_pad_predicts_nothing_and_a_hidden_pad_waits_until_shown(qtbot, shipped):
    widget = DrawingPad()
    qtbot.addWidget(widget)
    widget.show()
    drag(qtbot, widget.canvas, ONE[0])
    assert widget.preview.image is not None and widget.preview.image.shape == (28, 28)
    assert widget.predicted.text() == ""
    widget.hide()
    widget.model_changed(shipped)
    assert widget.predicted.text() == ""  # hidden views do no work
    widget.show()
    assert predicted_label(widget) == 1


# ------------------------------------------------------------------------------ drawing and predicting

def test_probability_bars_draw_each_probability_as_a_bar_the_winner_orange(qtbot):
    from app.views.drawing_pad import OTHER_BRUSH, WINNER_BRUSH, ProbabilityBars

    bars = ProbabilityBars()
    qtbot.addWidget(bars)
    bars.resize(500, 150)
    bars.show()
    qtbot.waitExposed(bars)
    p = np.array([0.05, 0.6, 0.0, 0.2, 0.0, 0.0, 0.15, 0.0, 0.0, 0.0])
    bars.set_probabilities(p)
    image = bars.grab().toImage()
    area = bars.plot_rect()
    for i, value in enumerate(p):
        rect = bars.bar_rect(i)
        assert rect.height() == pytest.approx(value * area.height())
        if value > 0.1:  # tall enough to sample inside
            colour = image.pixelColor(int(rect.center().x()), int(rect.center().y()))
            expected = (WINNER_BRUSH if i == 1 else OTHER_BRUSH).color()
            assert colour.rgb() == expected.rgb(), i
    assert bars.highlighted() == 1
    np.testing.assert_array_equal(bars.probabilities(), p)
    bars.set_classes([0, 1])  # tiny8x8: two empty bars
    assert bars.highlighted() is None and len(bars.probabilities()) == 2


@pytest.mark.parametrize("strokes, digit", [(ONE, 1), (ZERO, 0)], ids=["one", "zero"])
def test_drawn_digit_is_recognised(pad, qtbot, strokes, digit):
    for stroke in strokes:
        drag(qtbot, pad.canvas, stroke)
    assert predicted_label(pad) == digit
    p = pad.bars.probabilities()
    assert pad.bars.highlighted() == digit and p.sum() == pytest.approx(1.0, abs=1e-4)
    assert pad.predicted.text().endswith(f"({percent(p[digit])})")
    # The network got the strokes MNIST-style, and the preview shows exactly that image.
    x = pad.network_input()
    assert x.shape == (28, 28, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], render_strokes(pad.canvas.strokes()), atol=1e-6)
    np.testing.assert_array_equal(pad.preview.image, x[..., 0])


def test_classifies_live_while_drawing_and_coalesces_updates(pad, qtbot):
    canvas = pad.canvas
    shown = []
    pad.prediction_shown.connect(shown.append)
    qtbot.mousePress(canvas, LEFT, NONE, QtCore.QPoint(160, 60))
    for y in range(70, 260, 10):  # no event loop runs in between: one classification must cover all
        qtbot.mouseMove(canvas, QtCore.QPoint(160, y))
    with qtbot.waitSignal(pad.prediction_shown, timeout=2000):
        pass
    assert len(shown) == 1
    assert canvas.drawing  # the button is still down
    np.testing.assert_allclose(pad.network_input()[..., 0], render_strokes(canvas.strokes()), atol=1e-6)
    assert predicted_label(pad) == 1
    qtbot.mouseRelease(canvas, LEFT, NONE, QtCore.QPoint(160, 260))
    assert not canvas.drawing and len(shown) == 2  # the release classifies at once


def test_undo_clear_escape_and_right_click(pad, qtbot):
    canvas = pad.canvas
    drag(qtbot, canvas, ZERO[0])
    zero_input = pad.network_input()
    drag(qtbot, canvas, [(250, 40), (250, 300)])
    assert len(canvas.strokes()) == 2 and not np.allclose(pad.network_input(), zero_input)
    canvas.setFocus()
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert len(canvas.strokes()) == 1
    np.testing.assert_allclose(pad.network_input(), zero_input, atol=1e-6)
    assert predicted_label(pad) == 0

    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Escape)
    assert canvas.is_empty() and pad.predicted.text() == HINT

    drag(qtbot, canvas, ONE[0])
    qtbot.mouseClick(canvas, RIGHT, NONE, QtCore.QPoint(100, 100))
    assert canvas.is_empty() and pad.predicted.text() == HINT

    drag(qtbot, canvas, ONE[0])
    drag(qtbot, canvas, ZERO[0])
    pad.undo_button.click()
    assert len(canvas.strokes()) == 1 and predicted_label(pad) == 1
    pad.clear_button.click()
    assert canvas.is_empty() and pad.network_input() is None
    pad.undo_button.click()  # nothing left to undo
    assert canvas.is_empty()


def test_the_pad_buttons_are_reached_with_tab_and_a_click_leaves_the_keys_on_the_pad(pad, qtbot):
    pad.activateWindow()
    qtbot.waitActive(pad)
    canvas = pad.canvas
    drag(qtbot, canvas, ONE[0])
    drag(qtbot, canvas, ZERO[0])
    assert canvas.hasFocus()  # drawing took it
    qtbot.mouseClick(pad.undo_button, LEFT)
    assert len(canvas.strokes()) == 1 and canvas.hasFocus()  # Esc still clears at once
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Escape)
    assert canvas.is_empty()

    drag(qtbot, canvas, ONE[0])
    reached = []
    for _ in range(12):  # Tab walks through the pad's controls and back to the canvas
        qtbot.keyClick(QtWidgets.QApplication.focusWidget(), QtCore.Qt.Key.Key_Tab)
        reached.append(QtWidgets.QApplication.focusWidget())
    assert {pad.undo_button, pad.clear_button, pad.saliency_box, canvas} <= set(reached)
    pad.clear_button.setFocus()
    qtbot.keyClick(pad.clear_button, QtCore.Qt.Key.Key_Space)  # a focused button is pressed by Space
    assert canvas.is_empty()


def test_a_double_click_starts_a_new_stroke(pad, qtbot):
    drag(qtbot, pad.canvas, ONE[0])
    qtbot.mouseDClick(pad.canvas, LEFT, NONE, QtCore.QPoint(40, 40))
    assert len(pad.canvas.strokes()) == 2
    assert pad.canvas.strokes()[1].tolist() == [[40.0, 40.0]]


def test_pen_width_changes_the_pad_but_barely_the_network_input(pad, qtbot):
    stroke = ZERO[0] * 0.5 + 40  # a small digit, where the pen matters most
    inputs, ink = {}, {}
    for pen in ("Thin", "Thick"):
        pad.set_pen(pen)
        drag(qtbot, pad.canvas, stroke)
        inputs[pen], ink[pen] = pad.network_input(), ink_pixels(pad.canvas)
        pad.canvas.clear()
    assert ink["Thick"] > 2.5 * ink["Thin"]
    assert np.abs(inputs["Thick"] - inputs["Thin"]).max() < 0.05


def test_ctrl_1_2_3_choose_the_thin_medium_and_thick_pen_wherever_the_focus_is_in_the_pad(pad, qtbot):
    """The pen buttons are out of the Tab order (the arrow keys train), so no key chose the pen before."""
    from app.views.drawing_pad import PEN_WIDTHS

    pad.activateWindow()
    qtbot.waitActive(pad)
    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
    checked = lambda: pad.pen_buttons.checkedButton().text()  # noqa: E731
    for focus in (pad.canvas, pad.clear_button, pad.saliency_box):
        focus.setFocus()
        qtbot.waitUntil(focus.hasFocus, timeout=5000)
        for key, (name, width) in zip((QtCore.Qt.Key.Key_3, QtCore.Qt.Key.Key_1, QtCore.Qt.Key.Key_2), (
                PEN_WIDTHS[2], PEN_WIDTHS[0], PEN_WIDTHS[1])):
            qtbot.keyClick(focus, key, ctrl)
            assert (pad.canvas.pen_width, checked()) == (width, name), (focus, name)
    qtbot.keyClick(pad.canvas, QtCore.Qt.Key.Key_1, ctrl)
    stroke = ZERO[0] * 0.5 + 40
    drag(qtbot, pad.canvas, stroke)
    thin = ink_pixels(pad.canvas)
    pad.canvas.clear()
    qtbot.keyClick(pad.canvas, QtCore.Qt.Key.Key_3, ctrl)
    drag(qtbot, pad.canvas, stroke)
    assert ink_pixels(pad.canvas) > 2.5 * thin  # the strokes drawn next are that wide


def test_the_pen_keys_act_only_within_the_pad(qtbot, shipped):
    from app.views.drawing_pad import DEFAULT_PEN

    outer = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(outer)
    pad, other, button = DrawingPad(), QtWidgets.QLineEdit(), QtWidgets.QPushButton("Elsewhere")
    layout.addWidget(pad)
    layout.addWidget(other)
    layout.addWidget(button)  # a widget with no use for Ctrl+3 itself (a line edit may take it as a key)
    qtbot.addWidget(outer)
    outer.show()
    qtbot.waitExposed(outer)
    outer.activateWindow()
    qtbot.waitActive(outer)
    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
    for widget in (other, button):
        widget.setFocus()
        qtbot.waitUntil(widget.hasFocus, timeout=5000)
        qtbot.keyClick(widget, QtCore.Qt.Key.Key_3, ctrl)
        assert pad.pen_buttons.checkedButton().text() == DEFAULT_PEN, widget
    pad.canvas.setFocus()
    qtbot.waitUntil(pad.canvas.hasFocus, timeout=5000)
    qtbot.keyClick(pad.canvas, QtCore.Qt.Key.Key_3, ctrl)  # the same key within the pad does choose
    assert pad.pen_buttons.checkedButton().text() == "Thick"


# ------------------------------------------------------------------------------ models

def test_pad_uses_the_model_it_is_given(pad, qtbot, shipped):
    drag(qtbot, pad.canvas, ONE[0])
    assert predicted_label(pad) == 1
    biased = Sequential.load(WEIGHTS)
    biased.layer("dense3").params["b"][5] += 100.0
    pad.model_changed(biased)
    assert predicted_label(pad) == 5
    # New weights arriving in place (as the window's display model gets them) are used too.
    weights = shipped.get_weights()
    biased.set_weights(weights)
    pad.model_changed(biased)
    assert predicted_label(pad) == 1


def test_tiny8x8_gets_an_8x8_input_and_two_bars(pad, qtbot):
    tiny = build("tiny8x8", seed=0)
    pad.model_changed(tiny)
    drag(qtbot, pad.canvas, ZERO[0])
    x = pad.network_input()
    assert x.shape == (8, 8, 1)
    np.testing.assert_allclose(x[..., 0], downsample_8x8(render_strokes(pad.canvas.strokes())), atol=1e-6)
    assert pad.preview.image.shape == (8, 8)
    assert "8×8" in pad.preview_caption.text()
    assert len(pad.bars.probabilities()) == 2
    p = tiny.predict_proba(x[None])[0]
    assert pad.predicted.text().startswith(f"{tiny.classes[int(p.argmax())]}  (")
    pad.model_changed(build("seed003", seed=0))
    assert pad.network_input().shape == (28, 28, 1) and len(pad.bars.probabilities()) == 10
    spec = get_preset("tiny8x8")
    spec["input_shape"] = [16, 16, 1]  # no digit format the pad makes
    pad.model_changed(Sequential(spec))
    assert pad.network_input() is None and pad.predicted.text() == ""
    assert "cannot" in pad.preview_caption.text() and not pad.look_button.isEnabled()


def test_a_saturated_prediction_explains_its_empty_saliency(pad, qtbot, shipped):
    """p = 1 exactly (float32): the gradient is 0 everywhere, and the note said "red … blue …" over nothing."""
    from engine.presets import build

    model = build("vgg7")
    model.set_weights(shipped.get_weights())
    model.params()["dense3.b"][3] = 1e4
    pad.model_changed(model)
    pad.saliency_box.setChecked(True)
    drag(qtbot, pad.canvas, ZERO[0])
    pad._classify()
    assert predicted_label(pad) == 3 and "saturated" in pad.saliency_note.text()
    pad.model_changed(shipped)
    pad._classify()
    assert pad.saliency_note.text().startswith("red: ink there raises P(0)")


def test_weights_so_large_that_the_outputs_overflow_give_no_answer_and_say_why(pad, qtbot, shipped, recwarn):
    """With weights of 1e20 the float32 outputs are NaN: the pad read "0 (nan%)" (argmax of NaN) and
    NumPy warned on stderr."""
    model = build("vgg7")
    model.set_weights({name: w * 1e20 for name, w in shipped.get_weights().items()})
    pad.model_changed(model)
    shown = []
    pad.prediction_shown.connect(shown.append)
    drag(qtbot, pad.canvas, ZERO[0])
    pad._classify()
    assert pad.predicted.text() == "no answer" and predicted_label(pad) is None
    assert "overflowed" in pad.saliency_note.text() and shown[-1] is None
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    pad.model_changed(shipped)
    pad._classify()
    assert predicted_label(pad) == 0 and pad.saliency_note.text() == ""


def test_look_inside_sends_the_network_input(pad, qtbot):
    drag(qtbot, pad.canvas, ZERO[0])
    with qtbot.waitSignal(pad.look_inside, timeout=1000) as blocker:
        qtbot.mouseClick(pad.look_button, LEFT)
    (x,) = blocker.args
    assert x.shape == (28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x, pad.network_input())
    x[...] = 0  # a copy: the receiver may keep or change it
    assert pad.network_input().any()


def test_saliency_overlay_is_the_input_gradient_of_the_prediction(pad, qtbot, shipped):
    drag(qtbot, pad.canvas, ZERO[0])
    assert pad.preview.overlay is None
    pad.saliency_box.setChecked(True)
    x = pad.network_input()
    saliency, _ = input_gradient(shipped, x, predicted_label(pad))
    np.testing.assert_array_equal(pad.preview.overlay, saliency_rgba(saliency[..., 0]))
    assert pad.preview.overlay[..., 3].max() > 200  # visibly drawn
    pad.saliency_box.setChecked(False)
    assert pad.preview.overlay is None


# ------------------------------------------------------------------------------ quality

def test_replayed_validation_digits_score_like_the_images(pad, shipped):
    """Two digits per class, traced into strokes and drawn anywhere, 30-100% of the pad's height,
    with every pen; tools/pad_quality.py runs the same on all 500."""
    _, val = load_bundled_mnist()
    pick = np.concatenate([np.flatnonzero(val.y == c)[:2] for c in range(10)])
    direct = float(np.mean(shipped.predict(val.x[pick]) == val.y[pick]))
    rng = np.random.default_rng(4)
    hits = []
    for k, i in enumerate(pick):
        pad.set_pen(("Thin", "Medium", "Thick")[k % 3])
        pad.canvas.clear()
        strokes = place_strokes(trace_strokes(val.x[i]), PAD_SIDE, rng.uniform(0.3, 1.0), rng)
        replay_strokes(pad.canvas, strokes)
        hits.append(predicted_label(pad) == val.y[i])
    assert np.mean(hits) >= direct - 0.05  # one digit of 20


# ------------------------------------------------------------------------------ reading the runner-ups

def painted_pixels_over_bar(bars, i):
    """How many pixels differ from the background between the top of the plot and the top of bar ``i``,
    within its slot."""
    import pyqtgraph as pg

    image = bars.grab().toImage()
    area, bar = bars.plot_rect(), bars.bar_rect(i)
    slot = area.width() / len(bars.probabilities())
    background = pg.mkColor(pg.getConfigOption("background")).rgb()
    x0, x1 = int(area.left() + i * slot) + 1, int(area.left() + (i + 1) * slot) - 1
    return sum(image.pixelColor(x, y).rgb() != background
               for x in range(x0, x1) for y in range(int(area.top()), int(bar.top()) - 1))


def test_the_runner_ups_of_a_confident_drawing_are_labelled_with_their_percentages(pad, qtbot):
    """A drawn "0" reads "0 (99.x%)": the other bars were flat and nothing said which came second."""
    drag(qtbot, pad.canvas, ZERO[0])
    assert predicted_label(pad) == 0
    p = pad.bars.probabilities()
    runner_ups = [i for i in np.argsort(-p)[1:] if 0.0005 <= p[i] < 0.05]  # bars too short to read
    assert runner_ups, p
    for i in runner_ups:
        assert pad.bars.bar_label(i) == percent(p[i])
        assert painted_pixels_over_bar(pad.bars, i) > 10, i  # the number is painted over the bar
    for i in np.flatnonzero(p < 0.0005):
        assert pad.bars.bar_label(i) == "" and painted_pixels_over_bar(pad.bars, i) == 0
    assert pad.bars.bar_label(0) == percent(p[0])  # the winner's too, inside its bar if it is near 100%
    pad.clear_button.click()
    assert all(pad.bars.bar_label(i) == "" for i in range(10))
    assert all(painted_pixels_over_bar(pad.bars, i) == 0 for i in range(10))


def test_the_saliency_note_states_the_maps_scale_as_the_slope_of_p_at_its_brightest_pixel(pad, qtbot, shipped):
    """Each map is scaled to its own maximum: a sure digit and an unsure one looked equally hot and the
    note gave no number. The number stated is checked against P itself, nudging that pixel's ink."""
    import re

    exact = build("vgg7", dtype=np.float64)  # the shipped weights in float64: P's changes are tiny near 1
    exact.set_weights(shipped.get_weights())
    pad.saliency_box.setChecked(True)
    slopes = []
    for strokes in (ZERO, [np.array([(120, 80), (220, 80), (170, 170), (120, 260), (220, 260)])]):  # a "0", a "Z"
        pad.canvas.clear()
        for stroke in strokes:
            drag(qtbot, pad.canvas, stroke)
        label = predicted_label(pad)
        note = pad.saliency_note.text()
        assert note.startswith(f"red: ink there raises P({label})")
        stated = float(re.search(r"\|∂P/∂x\| = ([0-9.e+-]+)", note).group(1))
        x = pad.network_input().astype(np.float64)
        saliency, _ = input_gradient(shipped, x, label)
        r, c = np.unravel_index(np.abs(saliency[..., 0]).argmax(), (28, 28))
        eps, probes = 1e-4, []
        for sign in (1, -1):
            nudged = x.copy()
            nudged[r, c, 0] += sign * eps
            probes.append(float(exact.predict_proba(nudged[None])[0, label]))
        assert stated == pytest.approx(abs(probes[0] - probes[1]) / (2 * eps), rel=0.15)
        slopes.append(stated)
    assert slopes[0] != slopes[1]


def test_the_pen_keys_work_in_the_window(qtbot, make_window):
    """No window shortcut or menu takes Ctrl+1/2/3 from the pad."""
    window = make_window()
    window.activateWindow()
    qtbot.waitActive(window)
    window.show_view("Drawing pad")
    pad = window.views["Drawing pad"]
    pad.canvas.setFocus()
    qtbot.waitUntil(pad.canvas.hasFocus, timeout=5000)
    qtbot.keyClick(pad.canvas, QtCore.Qt.Key.Key_3, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert pad.pen_buttons.checkedButton().text() == "Thick"
    qtbot.keyClick(pad.canvas, QtCore.Qt.Key.Key_1, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert pad.pen_buttons.checkedButton().text() == "Thin"


def test_the_saliency_scale_of_an_unsure_prediction_is_the_slope_of_p_not_of_log_p():
    """The map is ∂ log P/∂x: for a confident digit P ≈ 1 and the two slopes agree, for an unsure one (an
    untrained network, P ≈ 0.2) the note's |∂P/∂x| is P times the map's largest value. Checked against P
    itself, nudging that pixel's ink; small slopes are written as decimals ("0.000069", not "6.9e-05")."""
    import re

    from app.views.drawing_pad import saliency_scale

    model = build("vgg7", seed=0, dtype=np.float64)
    x = np.random.default_rng(0).random((28, 28, 1))
    p = model.predict_proba(x[None])[0]
    label = int(p.argmax())
    assert p[label] < 0.5
    saliency, _ = input_gradient(model, x, label)
    note = saliency_scale(model, saliency, p[label])
    stated = float(re.fullmatch(r"Brightest: \|∂P/∂x\| = ([0-9.]+) per unit of ink\.", note).group(1))
    r, c = np.unravel_index(np.abs(saliency[..., 0]).argmax(), (28, 28))
    eps, probes = 1e-5, []
    for sign in (1, -1):
        nudged = x.copy()
        nudged[r, c, 0] += sign * eps
        probes.append(float(model.predict_proba(nudged[None])[0, label]))
    assert stated == pytest.approx(abs(probes[0] - probes[1]) / (2 * eps), rel=0.05)
    small = saliency_scale(model, saliency * 1e-2, p[label])  # a slope of ~7e-5
    assert re.fullmatch(r"Brightest: \|∂P/∂x\| = 0\.0000\d\d? per unit of ink\.", small), small


def test_the_label_of_a_bar_near_100_percent_is_written_inside_its_top(qtbot):
    """A bar of 99.5% leaves no room above it: its percentage is written at the top inside the bar, in a
    colour that reads on it (above, it was cut off by the widget's edge)."""
    from app.views.drawing_pad import WINNER_BRUSH, ProbabilityBars

    bars = ProbabilityBars()
    qtbot.addWidget(bars)
    bars.resize(400, bars.height())
    bars.set_classes(list(range(10)))
    p = np.full(10, 0.005 / 9)
    p[3] = 0.995
    bars.set_probabilities(p)
    bars.show()
    qtbot.waitExposed(bars)
    assert bars.bar_label(3) == percent(0.995)
    image = bars.grab().toImage()
    bar = bars.bar_rect(3)
    line = bars.fontMetrics().height()
    winner = WINNER_BRUSH.color().rgb()
    inside = [image.pixelColor(x, y).rgb() != winner for x in range(int(bar.left()) + 2, int(bar.right()) - 1)
              for y in range(int(bar.top()) + 2, int(bar.top() + line))]
    assert sum(inside) > 10  # the number, over the orange
