"""The conv stepper view (issue 6): navigation by real key and mouse events, seed 001's formulas at the
right step, stage jumps, the live-model source following the model's weights, heatmaps for big grids,
tooltips, typed values and frame export."""

import re
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.conv_stepper import ConvStepper
from app.views.conv_stepper_text import explanation, formula_html, shown_terms, unreached_note
from engine.text import elide
from app.views.cell_format import CellFormat
from app.views.stepper_grid import CAPTION_FLAGS, GridSpec, PlacedGrid, fitted_caption, moved_inside, text_slot
from app.views.widgets import signed
from engine.presets import build
from engine.trace import STAGES, WORKED_EXAMPLES, trace_conv2d

ROOT = Path(__file__).resolve().parents[1]

Key = QtCore.Qt.Key


@pytest.fixture
def view(qtbot):
    stepper = ConvStepper()
    qtbot.addWidget(stepper)
    stepper.resize(1400, 900)
    stepper.show()
    qtbot.waitExposed(stepper)
    stepper.canvas.setFocus()
    yield stepper
    stepper.pause()


def choose_example(view, name):
    view.set_source("worked")
    view.worked.combo.setCurrentIndex(view.worked.combo.findData(name))


def state(view):
    """What the learner sees: step, frame, every grid's values and highlights, the formulas."""
    frame = view.current_frame()
    grids = tuple((g.spec.key, g.spec.window, g.spec.written, g.mode,
                   np.nan_to_num(g.spec.values, nan=-1e300).tobytes()) for g in view.canvas.placed)
    return view.current_index(), frame.position, frame.stage, grids, view.formula_text(), view.numbers_text()


def press(qtbot, view, key, times=1):
    for _ in range(times):
        qtbot.keyClick(view.canvas, key)


@pytest.mark.parametrize("example", list(WORKED_EXAMPLES))
def test_stepping_forward_then_back_returns_to_the_same_state(qtbot, view, example):
    choose_example(view, example)
    for start in (0, view.stage_first_index("pad") - 2, view.stage_first_index("input_grad")):
        view.set_index(start)
        before = state(view)
        steps = min(7, view.frame_count() - 1 - start)
        press(qtbot, view, Key.Key_Right, steps)
        after = state(view)
        assert after[0] == before[0] + steps and after != before
        press(qtbot, view, Key.Key_Left, steps)
        assert state(view) == before


def test_the_3x3_example_writes_the_articles_formula_for_grad_a22(qtbot, view):
    choose_example(view, "seed001_3x3_kernel2_stride1")
    press(qtbot, view, Key.Key_Home)
    press(qtbot, view, Key.Key_PageDown, STAGES.index("input_grad"))
    assert view.current_frame().stage == "input_grad"
    press(qtbot, view, Key.Key_Right, 4)  # ∇a over the (unpadded, VALID) 3x3 input, row-major: (1, 1) is 5th
    assert view.formula_text() == "∇a22 = δ11·w22 + δ12·w21 + δ21·w12 + δ22·w11"
    trace = view.trace
    assert view.numbers_text().endswith(f"= {trace.dx[1, 1, 0]:.4g}")
    assert view.canvas.grid("dy_padded").spec.window == (1, 3, 1, 3)
    assert view.canvas.grid("dx_padded").spec.written == (1, 1)
    assert list(view.canvas.grid("w_rot").spec.symbols) == [["w22", "w21"], ["w12", "w11"]]
    assert "δ<sub>11</sub>·w<sub>22</sub>" in formula_html(view.formula_text())


def test_the_5x5_example_starts_with_the_articles_first_output(qtbot, view):
    choose_example(view, "seed001_5x5_kernel3")
    press(qtbot, view, Key.Key_End)
    press(qtbot, view, Key.Key_Home)
    # Seed 001: 1×1 + 1×0 + 1×1 + 0×0 + 1×1 + 1×0 + 0×1 + 0×0 + 1×1 = 4
    assert view.numbers_text() == "z11 = 1·1 + 1·0 + 1·1 + 0·0 + 1·1 + 1·0 + 0·1 + 0·0 + 1·1 = 4"
    x_grid = view.canvas.grid("x_padded")
    assert x_grid.spec.window == (0, 3, 0, 3)
    assert {cell: f for cell, (f, _) in x_grid.spec.partners.items()} == {
        (p, q): float(WORKED_EXAMPLES["seed001_5x5_kernel3"].w[p, q, 0, 0]) for p in range(3) for q in range(3)}


def test_the_stride_2_example_dilates_delta_and_gives_one_product_per_grad_a(qtbot, view):
    choose_example(view, "seed001_4x4_kernel2_stride2")
    view.jump_to_stage("dilate")
    dilated = view.canvas.grid("dy_dilated").spec
    assert dilated.inserted.tolist() == [[False, True, False], [True, True, True], [False, True, False]]
    view.jump_to_stage("input_grad")
    press(qtbot, view, Key.Key_Right)
    assert view.formula_text() == "∇a12 = δ11·w12"


def test_jumping_to_a_stage_lands_on_its_first_frame(qtbot, view):
    choose_example(view, "seed001_two_channel")
    starts = view.trace.stage_starts()
    combo = view.stage_combo
    for k, stage in enumerate(STAGES):
        view.set_index(view.frame_count() - 1)
        combo.setFocus()
        combo.setCurrentIndex(k)
        combo.activated.emit(k)  # what a click on the item does
        assert view.current_frame().position == starts[stage]
        assert view.current_index() == view.stage_first_index(stage)
        assert view.canvas.hasFocus()  # keys go on stepping after a jump
    # PageUp / PageDown walk the stages.
    press(qtbot, view, Key.Key_Home)
    for stage in STAGES[1:]:
        press(qtbot, view, Key.Key_PageDown)
        assert view.current_frame().position == starts[stage]
    press(qtbot, view, Key.Key_PageUp)  # at a stage's start: the previous stage
    assert view.current_frame().position == starts["weight_grad"]
    press(qtbot, view, Key.Key_Right)
    press(qtbot, view, Key.Key_PageUp)  # inside a stage: back to its start
    assert view.current_frame().position == starts["weight_grad"]


def test_with_one_channel_pair_a_jump_lands_on_that_pairs_first_frame(qtbot, view):
    view.set_source("custom")
    view.custom.c_in.setValue(2)
    view.custom.c_out.setValue(3)
    view.c_in.setCurrentIndex(view.c_in.findData(1))
    view.c_out.setCurrentIndex(view.c_out.findData(2))
    for stage in STAGES:
        view.jump_to_stage(stage)
        assert view.current_frame().position == view.trace.frames_for(stage, 1, 2).positions[0]
        frame = view.current_frame()
        channels = {w.array: w.channels for w in frame.reads}
        if "w" in channels:
            assert channels["w"] == (1, 2)
    assert view.frame_count() == sum(len(view.trace.frames_for(s, 1, 2)) for s in STAGES)


def test_space_plays_and_pauses(qtbot, view):
    choose_example(view, "seed001_5x5_kernel3")
    view.speed.setValue(30.0)
    press(qtbot, view, Key.Key_Home)
    press(qtbot, view, Key.Key_Space)
    assert view.is_playing()
    qtbot.waitUntil(lambda: view.current_index() >= 3, timeout=3000)
    press(qtbot, view, Key.Key_Space)
    assert not view.is_playing()
    index = view.current_index()
    qtbot.wait(150)
    assert view.current_index() == index


def test_buttons_and_slider_step_too(qtbot, view):
    choose_example(view, "seed001_3x3_kernel2_stride1")
    qtbot.mouseClick(view.forward_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.mouseClick(view.forward_button, QtCore.Qt.MouseButton.LeftButton)
    assert view.current_index() == 2 and view.slider.value() == 2
    qtbot.mouseClick(view.back_button, QtCore.Qt.MouseButton.LeftButton)
    assert view.current_index() == 1
    view.slider.setValue(view.frame_count() - 1)
    assert view.current_frame().stage == "bias_grad"
    assert view.stage_combo.currentData() == "bias_grad"


def live_view(view, model, x, label):
    view.model_changed(model)
    view.sample_changed(x, label)
    view.set_source("live")


def test_the_live_source_uses_the_models_current_weights(qtbot, view):
    model = build("seed003", seed=3)
    x = np.random.default_rng(0).random((28, 28, 1)).astype(np.float32)
    live_view(view, model, x, 4)
    assert view.live.layer.currentText() == "conv1"
    np.testing.assert_array_equal(view.trace.w, model.params()["conv1.w"])
    np.testing.assert_allclose(view.trace.x, x)
    old = view.trace.w.copy()

    model.params()["conv1.w"][1, 1, 0, 0] += 0.75  # a training step changes the display model in place
    view.model_changed(model)
    np.testing.assert_array_equal(view.trace.w, old)  # on demand: not recomputed yet …
    assert "Recompute" in view.note.text()
    qtbot.mouseClick(view.live.recompute_button, QtCore.Qt.MouseButton.LeftButton)
    assert view.trace.w[1, 1, 0, 0] == pytest.approx(old[1, 1, 0, 0] + 0.75)  # … now it is
    np.testing.assert_array_equal(view.trace.w, model.params()["conv1.w"])
    assert "Recompute" not in view.note.text()

    # With "Follow training" every update recomputes and the learner stays on the same step.
    qtbot.mouseClick(view.live.follow, QtCore.Qt.MouseButton.LeftButton)
    assert view.live.follow.isChecked()
    view.jump_to_stage("weight_grad")
    step = view.current_index()
    model.params()["conv1.w"][0, 0, 0, 0] -= 0.5
    view.model_changed(model)
    np.testing.assert_array_equal(view.trace.w, model.params()["conv1.w"])
    assert view.current_index() == step


def test_the_live_delta_is_the_loss_gradient_of_that_sample(qtbot, view):
    model = build("seed003", seed=3)
    x = np.random.default_rng(1).random((28, 28, 1)).astype(np.float32)
    live_view(view, model, x, 7)
    # ∇b of conv1 in the view's trace equals the engine's own backward on this one sample; the
    # trace runs in inference mode, so the reference has its dropout switched off (rate 0).
    model64 = build("seed003", seed=3, dtype=np.float64)
    model64.set_weights(model.get_weights())
    model64.layer("drop1").rate = 0.0
    model64.loss_and_grads(x[None].astype(np.float64), np.array([7]))
    np.testing.assert_allclose(view.trace.db, model64.grads()["conv1.b"], rtol=1e-7, atol=1e-12)
    assert "loss" in view.note.text() and "label 7" in view.note.text()


def test_a_new_sample_recomputes_the_live_trace(qtbot, view):
    model = build("seed003", seed=3)
    rng = np.random.default_rng(2)
    live_view(view, model, rng.random((28, 28, 1)).astype(np.float32), None)
    view.c_out.setCurrentIndex(view.c_out.findData(5))
    first = view.trace.x.copy()
    drawn = rng.random((28, 28, 1)).astype(np.float32)
    view.sample_changed(drawn, None)
    np.testing.assert_allclose(view.trace.x, drawn)
    assert not np.array_equal(view.trace.x, first)
    assert "no label" in view.note.text()
    assert view.c_out.currentData() == 5  # the learner's channel stays chosen


def test_channels_count_from_0_as_in_the_apps_other_views(qtbot, view):
    """Channel 9 in Pooling was channel 10 here: the combos, subtitles, formulas and note now count channels
    from 0 like Kernels, Feature maps and Pooling; rows and columns keep seed 001's 1-based subscripts."""
    model = build("seed003", seed=3)
    live_view(view, model, np.random.default_rng(0).random((28, 28, 1)).astype(np.float32), None)
    n_out = model.params()["conv1.w"].shape[3]
    assert [view.c_out.itemText(i) for i in range(view.c_out.count())] == ["all"] + [str(c) for c in range(n_out)]
    view.c_out.setCurrentIndex(view.c_out.findText("5"))
    assert view.c_out.currentData() == 5
    view.jump_to_stage("weight_grad")
    frame = view.current_frame()
    assert frame.index == (0, 0, 0, 5)  # ∇w of w[:, :, 0, 5], the Kernels tab's output channel 5
    # a long sum writes its largest products: a(2,6)·δ(3,7)[5], one input channel, δ's channel 5
    assert view.formula_text().startswith("∇w(1,1)[0,5] = … + a(")
    assert re.search(r" a\(\d+,\d+\)·δ\(\d+,\d+\)\[5\] ", view.formula_text())
    assert view.canvas.grid("dw").spec.subtitle == "3×3 · out 5"
    assert view.canvas.grid("dy_dilated").spec.subtitle == "28×28 · channel 5"
    assert "Channels count from 0" in view.note.text() and "rows and columns count from 1" in view.note.text()
    assert "Counted from 0" in view.c_out.toolTip() and "Counted from 0" in view.c_in.toolTip()
    view.jump_to_stage("bias_grad")
    assert re.match(r"∇b\[5\] = (… \+ )?δ\(\d+,\d+\)\[5\] \+ ", view.formula_text())
    assert view.canvas.grid("db").spec.symbols[0][:3] == ["∇b[0]", "∇b[1]", "∇b[2]"]


def test_under_transposed_pooling_the_live_note_says_delta_is_not_the_true_gradient(qtbot, view):
    model = build("tiny8x8", seed=3)
    x = np.random.default_rng(0).random((8, 8, 1)).astype(np.float32)
    live_view(view, model, x, 1)
    assert "δ is the real ∂L/∂z" in view.note.text()
    model.variant = "transposed_pool"
    live_view(view, model, x, 1)
    assert "not the true ∂L/∂z" in view.note.text() and "real ∂L/∂z" not in view.note.text()


def test_the_first_backward_stage_says_what_delta_is_and_where_this_one_came_from(qtbot, view):
    """A learner met δ at the dilate stage with no word on what it is, nor that the examples' δ is made up."""
    intro = "δ = ∂L/∂z says how much the loss would change if each output z changed; backpropagation hands it"
    choose_example(view, "seed001_4x4_kernel2_stride2")
    view.jump_to_stage("dilate")
    words = view.canvas.scene.explanation
    assert words.startswith(intro) and "made up" in words and "easy to follow" in words
    assert "stride 2" in words  # the stage's own words follow
    view.set_source("custom")
    view.jump_to_stage("dilate")
    assert "made up" in view.canvas.scene.explanation
    model = build("tiny8x8", seed=3)
    x = np.random.default_rng(0).random((8, 8, 1)).astype(np.float32)
    live_view(view, model, x, 1)
    view.jump_to_stage("dilate")
    words = view.canvas.scene.explanation
    assert words.startswith(intro) and "the real one, from this sample's loss" in words and "made up" not in words
    model.variant = "transposed_pool"
    live_view(view, model, x, 1)
    view.jump_to_stage("dilate")
    assert "not the true ∂L/∂z" in view.canvas.scene.explanation and "real one" not in view.canvas.scene.explanation
    view.jump_to_stage("pad")
    assert "∂L/∂z says" not in view.canvas.scene.explanation  # said once, at the first backward stage


def test_the_rotation_formula_counts_from_1_like_the_formulas_under_it():
    """rot180(w)[p,q] = w[k+1−p, k+1−q]: with p = q = 1 and k = 3 that is w33, as the frame prints."""
    ex = WORKED_EXAMPLES["seed001_5x5_kernel3"]
    trace = trace_conv2d(ex.x, ex.w, ex.b, ex.dy, ex.stride, ex.padding)
    assert "w[k+1−p, k+1−q]" in explanation(trace, "rotate")
    formulas = [trace.formula(frame) for frame in trace.frames_for("rotate")]
    assert formulas[0].endswith("[1,1] = w33"), formulas[:3]   # w_rot[1,1] = w33


def test_without_a_model_the_live_source_says_why(qtbot, view):
    view.set_source("live")
    assert view.trace is None and view.frame_count() == 0
    assert not view.play_button.isEnabled()
    press(qtbot, view, Key.Key_Right)  # nothing to step: must not raise


def test_big_grids_switch_to_heatmaps_with_the_window_outlined(qtbot, view):
    view.set_source("custom")
    view.custom.h.setValue(28)
    view.custom.w.setValue(28)
    view.custom.stride.setValue(1)
    view.jump_to_stage("forward")
    press(qtbot, view, Key.Key_Right, 30)
    x_grid, w_grid = view.canvas.grid("x_padded"), view.canvas.grid("w")
    assert x_grid.spec.shape == (30, 30)
    assert x_grid.mode == "heatmap"
    assert w_grid.mode == "numbers"  # the 3x3 kernel beside it stays readable
    assert x_grid.spec.window == (1, 4, 2, 5)
    # Hovering a cell gives its number.
    r, c = 2, 3
    centre = x_grid.cell_rect(r, c).center().toPoint()
    qtbot.mouseMove(view.canvas, centre)
    value = view.trace.x_padded[r, c, 0]
    partner = view.trace.w[r - 1, c - 2, 0, 0]  # the window starts at (1, 2)
    assert view.canvas.hover_text(QtCore.QPointF(centre)) == \
        f"a(2,3) = {signed(value, '.6g')}   (multiplied by {signed(partner, '.6g')} at this step)"
    event = QtGui.QHelpEvent(QtCore.QEvent.Type.ToolTip, centre, view.canvas.mapToGlobal(centre))
    QtWidgets.QApplication.sendEvent(view.canvas, event)
    assert QtWidgets.QToolTip.text() == view.canvas.hover_text(QtCore.QPointF(centre))
    # Back to a small input: numbers again.
    view.custom.h.setValue(4)
    view.custom.w.setValue(4)
    assert view.canvas.grid("x_padded").mode == "numbers"


def test_padding_zeros_are_marked_and_same_padding_is_asymmetric(qtbot, view):
    view.set_source("custom")
    view.custom.h.setValue(6)
    view.custom.w.setValue(6)
    view.custom.k.setValue(3)
    view.custom.stride.setValue(2)
    view.custom.padding.setCurrentText("SAME")
    assert view.trace.padding == ((0, 1), (0, 1))
    inserted = view.canvas.grid("x_padded").spec.inserted
    assert inserted[6].all() and inserted[:, 6].all() and not inserted[:6, :6].any()
    assert "asymmetric" in view.canvas.grid("x_padded").spec.caption


def custom_panel(view, h: int, w: int, k: int, channels: tuple[int, int] = (1, 1)):
    """The custom source's panel set to an h x w input, a k x k kernel, stride 1, VALID padding and
    ``channels`` (in, out)."""
    view.set_source("custom")
    panel = view.custom
    panel.h.setValue(h)
    panel.w.setValue(w)
    panel.k.setValue(k)
    panel.stride.setValue(1)
    panel.padding.setCurrentText("VALID")
    panel.c_in.setValue(channels[0])
    panel.c_out.setValue(channels[1])
    return panel


def test_typed_values_are_used_and_bad_ones_explained(qtbot, view):
    panel = custom_panel(view, 2, 3, 2)
    edit = panel.edits["x"]
    edit.clear()
    qtbot.keyClicks(edit, "1 2 3; 4 5 6")
    qtbot.keyClick(edit, Key.Key_Return)
    np.testing.assert_array_equal(view.trace.x[:, :, 0], [[1, 2, 3], [4, 5, 6]])
    edit.clear()
    qtbot.keyClicks(edit, "1 2; 4 5 6")
    qtbot.keyClick(edit, Key.Key_Return)
    assert panel.error.text() == "a, row 1: needs 3 numbers, got 2"
    # No earlier trace stepping on the canvas beside fields it no longer matches: the reason instead.
    assert view.trace is None and view.canvas.scene is None
    assert view.canvas._message == panel.error.text()
    edit.clear()
    qtbot.keyClicks(edit, "1 0,5 3; 4 5 6")
    qtbot.keyClick(edit, Key.Key_Return)
    assert panel.error.text().startswith("a, row 1: '0,5': separate numbers with spaces")
    edit.clear()
    edit.insert("1 \N{MINUS SIGN}2 3; 4 5 6")  # pasted from a read-out, which writes a real minus sign
    qtbot.keyClick(edit, Key.Key_Return)
    assert panel.error.text() == "" and view.trace.x[0, 1, 0] == -2
    edit.clear()
    qtbot.keyClicks(edit, "1 2 3; 4 5 6")  # the values of before: the trace comes back
    qtbot.keyClick(edit, Key.Key_Return)
    np.testing.assert_array_equal(view.trace.x[:, :, 0], [[1, 2, 3], [4, 5, 6]])
    assert panel.error.text() == "" and view.canvas.scene is not None
    assert view.canvas.scene.title == "Forward · z = a ⊛ w  (no bias here)"
    panel.bias.setChecked(True)
    bias = panel.edits["b"]
    for typed, reason in (("", "b (one per output channel): empty; type 1 number"),
                          ("1 2", "b (one per output channel): needs 1 number, got 2"),
                          # a decimal comma, which an earlier split read as two numbers (0 and 5)
                          ("0,5", "b (one per output channel): '0,5': separate numbers with spaces, and "
                                  "write decimals with a dot (0.5)")):
        bias.clear()
        qtbot.keyClicks(bias, typed)
        qtbot.keyClick(bias, Key.Key_Return)
        assert panel.error.text() == reason
    bias.clear()
    qtbot.keyClicks(bias, "0.5")
    qtbot.keyClick(bias, Key.Key_Return)
    assert view.trace.b.tolist() == [0.5]
    assert view.canvas.scene.title == "Forward · z = a ⊛ w + b"
    panel.k.setValue(4)  # a kernel bigger than the 2x3 input
    assert view.trace is None and "does not fit" in view.canvas._message
    panel.k.setValue(2)
    assert view.trace is not None


def test_a_typing_error_names_the_channel_as_the_canvas_does(qtbot, view):
    """Blocks were counted from 1 ("a, block 2") while the canvas and the tooltips count channels from 0."""
    panel = custom_panel(view, 2, 2, 1, channels=(2, 2))
    for name, typed, reason in (("x", "1 2; 3 4 | 5 6; 7", "a [1], row 2: needs 2 numbers, got 1"),
                                ("w", "1 | 2 | 3 4 | 5", "w (in 0, out 1): needs 1 number, got 2"),
                                ("dy", "1 2; 3 4 | 5 6", "δ [1]: needs 2 rows separated by ';', got 1")):
        edit, before = panel.edits[name], panel.edits[name].text()
        edit.clear()
        qtbot.keyClicks(edit, typed)
        qtbot.keyClick(edit, Key.Key_Return)
        assert panel.error.text() == reason
        edit.setText(before)
        qtbot.keyClick(edit, Key.Key_Return)
        assert panel.error.text() == ""


def test_render_frame_paints_any_step_like_the_canvas(qtbot, view):
    choose_example(view, "seed001_3x3_kernel2_stride1")
    view.set_index(5)
    image = view.render_frame(5)
    focused = view.canvas.grab().toImage().convertToFormat(image.format())
    view.canvas.clearFocus()  # the focus frame is the screen's, not the exported frame's
    grabbed = view.canvas.grab().toImage().convertToFormat(image.format())
    assert image.size() == view.canvas.size()
    assert image == grabbed
    assert focused != grabbed  # where the keys go shows on screen
    other = view.render_frame(20, QtCore.QSize(960, 540))
    assert other.size() == QtCore.QSize(960, 540) and not other.isNull()
    assert view.current_index() == 5  # exporting does not move the view


def test_a_caption_box_moves_inside_the_canvas_without_changing_size():
    canvas = QtCore.QRectF(0, 0, 600, 400)
    assert moved_inside(QtCore.QRectF(-30, 300, 420, 34), canvas) == QtCore.QRectF(0, 300, 420, 34)
    assert moved_inside(QtCore.QRectF(250, 300, 420, 34), canvas) == QtCore.QRectF(180, 300, 420, 34)
    assert moved_inside(QtCore.QRectF(90, 300, 420, 34), canvas) == QtCore.QRectF(90, 300, 420, 34)
    assert moved_inside(QtCore.QRectF(-50, 0, 700, 34), canvas).left() == 0  # wider: left-aligned


def test_a_long_subtitle_gets_a_slot_that_holds_it_inside_its_room(qapp):
    canvas, font = QtCore.QRectF(0, 0, 600, 400), QtGui.QFont()
    font.setPixelSize(12)
    metrics = QtGui.QFontMetricsF(font)
    text = "30×30 padded to 32×32, input channel 3 → output channel 12   values ×10⁻⁵"
    box, shown = text_slot(QtCore.QRectF(400, 10, 400, 30), text, font, canvas)  # a grid centred at x = 600
    assert shown == text and box.width() >= metrics.horizontalAdvance(text) and canvas.contains(box)
    box, shown = text_slot(QtCore.QRectF(100, 10, 400, 30), "short", font, canvas)
    assert shown == "short" and box.center().x() == 300  # centred on its grid
    room = QtCore.QRectF(200, 0, 150, 400)  # a narrow window: the grid's share between its neighbours
    box, shown = text_slot(QtCore.QRectF(75, 10, 400, 30), text, font, room)
    assert room.contains(box) and shown.endswith("…") and metrics.horizontalAdvance(shown) <= box.width()


def test_a_moving_number_carries_its_own_scale(qtbot, view):
    """On a digit the pretrained VGG-7 gets right, conv1's ∇a is ~1e-7 and its big grids draw no numbers:
    the number a crop step moves is written in its own scientific notation, not as the family's 0.01
    (with a ×10⁻⁴ shown nowhere)."""
    from engine.data import load_bundled_mnist
    from engine.model import Sequential

    val = load_bundled_mnist()[1]
    live_view(view, Sequential.load(ROOT / "resources" / "weights" / "vgg7.npz"), val.x[0], int(val.y[0]))
    view.jump_to_stage("crop")
    while view.current_frame().value == 0:
        press(qtbot, view, Key.Key_Right)
    value = view.current_frame().value
    _, text, shown, _ = view.canvas.scene.token
    assert shown == value and abs(value) < 1e-3
    mantissa, exponent = text.split("×10")
    power = int(exponent.translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")))
    assert float(mantissa) * 10.0 ** power == pytest.approx(value, rel=5e-3)
    assert CellFormat(2, 0, False).alone(0.25) == "0.25"  # unscaled numbers stay as the grids write them


def significant_digits(text: str) -> int:
    return len(text.lstrip("-").replace(".", "").lstrip("0"))


@pytest.mark.parametrize("largest", [0.000163, 0.0069, 0.0527, 0.52, 5.23, 52.3])
def test_compact_cells_write_two_significant_digits_of_the_largest_value(largest):
    """The pooling view's small cells: short numbers at a scale given once, right to half their last digit."""
    family = np.array([largest, -largest / 3, largest / 70, 0.0])
    fmt = CellFormat.compact(family)
    for v in family:
        text = fmt.text(v)
        assert abs(float(text) * 10.0 ** fmt.exponent - v) <= 10.0 ** (fmt.exponent - fmt.decimals) / 2 + 1e-15
    assert significant_digits(fmt.text(largest)) == 2
    assert bool(fmt.suffix()) == (largest < 0.1)  # small values at a shared ×10ⁿ, not 0.00016
    dead = CellFormat.compact(np.zeros((3, 3)))  # a dead channel's map
    assert dead.text(0.0) == "0" and dead.suffix() == ""


@pytest.mark.parametrize("largest", [0.0123, 0.5, 1234.567, 98765.43])
def test_grid_numbers_under_1_and_from_1000_are_scaled_to_the_tens(largest):
    fmt = CellFormat.for_values(np.array([largest, -largest / 7]))
    shown = float(fmt.text(largest))
    assert 10 <= shown < 100 and shown * 10.0 ** fmt.exponent == pytest.approx(largest, rel=5e-3)
    assert fmt.suffix().startswith("×10")  # the scale, given once beside the grid


def test_cell_format_and_formula_helpers():
    assert [CellFormat.for_values(np.array([1.0, -1.0, 2.0, 0.5])).text(v) for v in (1, -1, 0.5)] == ["1", "-1", "0.5"]
    tiny = CellFormat.for_values(np.array([0.0123, -0.0031]))  # the largest written between 10 and 100
    assert (tiny.text(0.0123), tiny.text(-0.0031), tiny.suffix()) == ("12.30", "-3.10", "×10⁻³")
    kernel = CellFormat.for_values(np.array([0.1154, -0.003246]))  # 0.1 ≤ max < 1 was unscaled: "0.00"
    assert (kernel.text(-0.003246), kernel.text(-0.1154), kernel.suffix()) == ("-0.32", "-11.54", "×10⁻²")
    assert kernel.text(-1e-9) == "-0.00" and kernel.text(-0.0) == "0.00"  # a tiny negative keeps its sign
    assert CellFormat.for_values(np.array([2.5, -0.5])).suffix() == ""  # exact and ≥ 1 values: as they are
    assert elide(list("abcdef"), [1, 2, 4]) == ["…", "b", "c", "…", "e", "…"]
    assert elide(list("abc"), [0, 2]) == ["a", "…", "c"] and elide(list("ab"), None) == ["a", "b"]
    assert formula_html("∇a(12,3) = δ(1,1)[2]·w(2,2)[1,2] + b[2]") == \
        "∇a<sub>12,3</sub> = δ<sub>1,1</sub><sup>[2]</sup>·w<sub>2,2</sub><sup>[1,2]</sup> + b<sup>[2]</sup>"


def test_a_hidden_view_recomputes_when_it_is_shown_again(qtbot, view):
    model = build("seed003", seed=3)
    rng = np.random.default_rng(4)
    live_view(view, model, rng.random((28, 28, 1)).astype(np.float32), 1)
    first = view.trace
    view.hide()  # another tab is in front
    drawn = rng.random((28, 28, 1)).astype(np.float32)
    view.sample_changed(drawn, 2)
    assert view.trace is first  # no work for a view nobody sees
    view.show()
    qtbot.waitExposed(view)
    np.testing.assert_allclose(view.trace.x, drawn)


def test_sums_over_channels_fade_the_cells_this_pass_has_not_reached(qtbot, view):
    view.set_source("custom")
    view.custom.h.setValue(4)
    view.custom.w.setValue(4)
    view.custom.stride.setValue(1)
    view.custom.padding.setCurrentText("VALID")
    view.custom.c_in.setValue(2)
    view.c_in.setCurrentIndex(view.c_in.findData(0))
    view.jump_to_stage("forward")
    press(qtbot, view, Key.Key_Right)
    y = view.canvas.grid("y").spec
    assert y.faded is None or not y.faded.any()  # first channel: later cells are simply empty
    assert np.isnan(y.values[1:]).all()
    view.c_in.setCurrentIndex(view.c_in.findData(1))
    view.jump_to_stage("forward")
    press(qtbot, view, Key.Key_Right, 2)  # second input channel, output cell (1, 0) of the 2x2 output
    y = view.canvas.grid("y").spec
    assert y.faded.tolist() == [[False, False], [False, True]]
    t = view.trace  # the faded cell still holds input channel 1's window sum only (no bias here)
    assert t.b is None
    assert y.values[1, 1] == pytest.approx(np.sum(t.x[1:4, 1:4, 0] * t.w[:, :, 0, 0]))


@pytest.mark.parametrize("width", [640, 1400])
def test_each_grid_writes_its_texts_in_its_own_room(view, width):
    """In a narrow canvas the subtitles and captions of neighbouring grids overlapped ("28×28 padded to
    30×3" under "3×3 · output channel 1"): each grid now has a room, halfway to its neighbours."""
    view.set_source("custom")
    view.resize(width, 900)
    view.set_index(0)
    QtWidgets.QApplication.processEvents()
    placed = view.canvas.placed
    assert len(placed) >= 3
    for g in placed:
        assert g.room[0] <= g.rect.left() and g.rect.right() <= g.room[1]
    for left, right in zip(placed, placed[1:]):
        assert left.room[1] == right.room[0]


def test_a_caption_too_long_for_its_room_ends_with_an_ellipsis(qapp):
    """Two lines in a grid's room: a long caption lost its end without a sign in a narrow canvas."""
    font = QtGui.QFont()
    font.setPixelSize(12)
    text = "zero padding: top 0, bottom 1, left 0, right 1 (asymmetric: SAME with an even total); dashed: the input"
    box = QtCore.QSizeF(190, 34)
    shown = fitted_caption(text, font, box)
    assert shown.endswith("…") and text.startswith(shown[:-1]) and len(shown) > 20
    metrics = QtGui.QFontMetricsF(font)
    assert metrics.boundingRect(QtCore.QRectF(0, 0, 190, 1e6), CAPTION_FLAGS, shown).height() <= 34
    assert fitted_caption(text, font, QtCore.QSizeF(900, 34)) == text  # room enough: whole


def test_cells_are_painted_as_row_runs_covering_exactly_the_masked_cells(qapp):
    from app.views.stepper_grid import PlacedGrid, _cells_path

    mask = np.random.default_rng(0).random((9, 11)) < 0.5
    mask[0], mask[:, -1], mask[4] = True, True, False
    g = PlacedGrid(spec=None, rect=QtCore.QRectF(3, 5, 11 * 7, 9 * 7), cell=7.0, room=(0.0, 0.0))
    path = _cells_path(g, mask)
    runs = int((mask & ~np.pad(mask, ((0, 0), (1, 0)))[:, :-1]).sum())  # cells that start a run in their row
    assert path.elementCount() == 5 * runs < 5 * mask.sum()              # a rectangle (5 elements) per run
    for r in range(9):
        for c in range(11):
            centre = g.cell_rect(r, c).center()
            assert path.contains(centre) == mask[r, c], (r, c)
    assert not _cells_path(g, np.zeros((9, 11), bool)).elementCount()


# ---------------------------------------------------------------- partial sums over channels (live conv2)
def _read_number(text):
    """A number as the app writes it, a negative one with a real minus sign (U+2212) in hover texts."""
    return float(text.replace("\N{MINUS SIGN}", "-"))


def _last_number(text):
    """The number after the last "= " of a formula line or a hover text."""
    return _read_number(text.rpartition("= ")[2])


@pytest.fixture
def conv2_view(view):
    """The review's default live view: pretrained VGG-7, conv2 (16 → 16 channels), validation sample #7,
    one channel pair (input 0 → output 0) as the stepper picks by default for a model layer."""
    from engine.data import load_bundled_mnist
    from engine.model import Sequential

    val = load_bundled_mnist()[1]
    model = Sequential.load(ROOT / "resources" / "weights" / "vgg7.npz")
    live_view(view, model, val.x[7], int(val.y[7]))
    view.live.layer.setCurrentText("conv2")
    assert (view.c_in.currentData(), view.c_out.currentData()) == (0, 0) and view.trace.w.shape[2:] == (16, 16)
    view.model = model
    view.sample = val.x[7]
    return view


def engine_results(trace, channels_in=None, channels_out=None):
    """engine.ops on the trace's arrays (float64): z and ∇a, optionally over some channels only."""
    from engine import ops

    ci = slice(None) if channels_in is None else channels_in
    co = slice(None) if channels_out is None else channels_out
    z = ops.conv2d(trace.x[None][..., ci], trace.w[:, :, ci], trace.b, trace.stride, trace.padding)[0]
    dx = ops.conv2d_backward(trace.dy[None][..., co], trace.x[None], trace.w[..., co], trace.stride,
                             trace.padding)[0][0]
    return z, dx


def test_one_input_channels_part_of_z_is_labelled_partial_and_completed_with_the_engines_z(qtbot, conv2_view):
    """z(1,1)[1] = … + b[1] = -0.01781 was written for input channel 0's window sum and the bias, while the
    real z (Feature maps) is 0.005218: a partial sum is now called one, and the complete z is given."""
    view = conv2_view
    trace = view.trace
    z, _ = engine_results(trace)
    z_part, _ = engine_results(trace, channels_in=slice(0, 1))  # input channel 0 and the bias
    np.testing.assert_allclose(z, view.model.intermediates(view.sample)["conv2"], atol=1e-5)
    n_in = trace.w.shape[2]
    view.jump_to_stage("forward")
    rests = []
    for step in (0, 37, 400):
        view.set_index(view.stage_first_index("forward") + step)
        i, j, co = view.current_frame().index
        cell = f"z({i + 1},{j + 1})[{co}]"
        assert view.formula_text().startswith(f"partial {cell} (input channel 0 + b) = a(")
        assert view.formula_text().endswith("[0,0] + b[0]")
        assert view.numbers_text().startswith(f"partial {cell} = ")
        assert _last_number(view.numbers_text()) == pytest.approx(z_part[i, j, co], rel=1e-3)
        total = view.canvas.scene.total
        head = f"complete {cell} = "
        assert total.startswith(head) and "(input channel 0 + b) + " in total and "(input channels 1…15) = " in total
        assert float(total[len(head):].split(" ")[0]) == pytest.approx(z_part[i, j, co], abs=1e-6)
        assert abs(_last_number(total) - z[i, j, co]) < 1e-6
        rest = total.split("(input channel 0 + b) + ")[1].split(" (input channels")[0]
        rests.append(float(rest.strip("()")))  # a negative rest in brackets: "+ (-0.0230)", not "+ -0.0230"
        assert rests[-1] == pytest.approx(z[i, j, co] - z_part[i, j, co], abs=1e-6)
        assert rest.startswith("(") == (rests[-1] < 0)
        assert total in view.canvas.accessibleDescription()  # a screen reader hears the complete value too
    assert min(rests) < 0 < max(rests)
    # The output grid: titled partial, and every cell's tooltip says partial and gives the engine's z.
    grid = view.canvas.grid("y")
    assert grid.spec.title == "partial output z"
    assert grid.spec.caption.startswith(f"partial: input channel 0 + b, {n_in - 1} more input channels to add")
    for r, c in ((0, 0), (5, 9), (i, j)):
        centre = grid.cell_rect(r, c).center()
        text = view.canvas.hover_text(centre)
        assert text.startswith(f"partial z({r + 1},{c + 1}) (input channel 0 + b) = ")
        assert _read_number(text.split(" = ")[1].split(";")[0]) == pytest.approx(z_part[r, c, 0], rel=1e-5)
        assert abs(_last_number(text) - z[r, c, 0]) < 1e-6
    event = QtGui.QHelpEvent(QtCore.QEvent.Type.ToolTip, centre.toPoint(), view.canvas.mapToGlobal(centre.toPoint()))
    QtWidgets.QApplication.sendEvent(view.canvas, event)
    assert QtWidgets.QToolTip.text() == text
    # The last but one input channel: still partial, one to go.
    view.c_in.setCurrentIndex(view.c_in.findData(n_in - 2))
    view.set_index(view.stage_first_index("forward") + 1)
    grid = view.canvas.grid("y")
    assert grid.spec.title == "partial output z"
    assert grid.spec.caption.startswith(f"partial: input channels 0…{n_in - 2} + b, 1 more input channel to add")
    # The last input channel completes the sums: no "partial" on them, the faded cells still partial.
    view.c_in.setCurrentIndex(view.c_in.findData(15))
    view.set_index(view.stage_first_index("forward") + 1)
    i, j, co = view.current_frame().index
    assert view.formula_text().startswith(f"z({i + 1},{j + 1})[0] = ") and view.canvas.scene.total == ""
    assert _last_number(view.numbers_text()) == pytest.approx(z[i, j, co], rel=1e-3)
    grid = view.canvas.grid("y")
    assert grid.spec.title == "output z" and grid.spec.caption.startswith("complete: input channels 0…15 + b")
    assert "; faded: input channels 0…14 + b only" in grid.spec.caption  # the cells its pass has not reached
    assert view.canvas.hover_text(grid.cell_rect(0, 0).center()) == f"z(1,1) = {z[0, 0, 0]:.6g}"
    faded = view.canvas.hover_text(grid.cell_rect(5, 5).center())  # not reached by channel 15's pass yet
    assert faded.startswith("partial z(6,6) (input channels 0…14 + b)")


def test_one_output_channels_part_of_grad_a_is_labelled_and_the_crop_says_its_sums_are_complete(qtbot, conv2_view):
    """"∇a(1,7)[1] = … = 0" while ∇a is 0.001057, and the crop showing full sums in the grid the ∇a stage
    had just filled with one output channel's parts: both now say which is which, with the engine's values."""
    view = conv2_view
    trace = view.trace
    _, dx = engine_results(trace)
    _, dx_part = engine_results(trace, channels_out=slice(0, 1))
    view.set_index(view.stage_first_index("input_grad") + 37)  # padded (1, 7): ∇a(1,7), row 1, column 7
    assert view.current_frame().index == (1, 7, 0)
    assert view.formula_text().startswith("partial ∇a(1,7)[0] (output channel 0) = δ(1,6)[0]·w(2,3)[0,0] + ")
    assert view.numbers_text().startswith("partial ∇a(1,7)[0] = ") and _last_number(view.numbers_text()) == 0
    total = view.canvas.scene.total
    assert total.startswith("complete ∇a(1,7)[0] = 0 (output channel 0) + ")
    assert "(output channels 1…15) = " in total
    assert abs(_last_number(total) - dx[0, 6, 0]) < 1e-6 and abs(dx[0, 6, 0]) > 1e-4
    assert view.canvas.grid("dx_padded").spec.title == "partial ∇a over the padded input"
    # The stage's end: the grid holds output channel 0's parts, and its tooltips say so.
    press(qtbot, view, Key.Key_PageDown)
    press(qtbot, view, Key.Key_Left)
    grid = view.canvas.grid("dx_padded")
    r, c = 10, 12  # padded cell (10, 12) is ∇a(10,12)
    assert grid.spec.values[r, c] == pytest.approx(dx_part[r - 1, c - 1, 0], rel=1e-9)
    text = view.canvas.hover_text(grid.cell_rect(r, c).center())
    assert text.startswith("partial ∇a(10,12) (output channel 0) = ")
    assert abs(_last_number(text) - dx[r - 1, c - 1, 0]) < 1e-6
    # The crop: the same grid now holds complete sums, titled so, and the step bridges part and whole.
    press(qtbot, view, Key.Key_Right)
    assert view.current_frame().stage == "crop"
    grid = view.canvas.grid("dx_padded")
    assert grid.spec.title == "complete ∇a over the padded input"
    assert "the ∇a stage showed output channel 0 only" in grid.spec.caption
    np.testing.assert_allclose(grid.spec.values[1:-1, 1:-1], dx[:, :, 0], rtol=1e-9, atol=1e-15)
    view.set_index(view.stage_first_index("crop") + 6)
    assert view.formula_text() == f"∇a(1,7)[0] = dx_padded[2,8][0] = {dx[0, 6, 0]:.6g}"
    total = view.canvas.scene.total
    assert total.startswith("complete ∇a(1,7)[0] = 0 (output channel 0, as the ∇a stage showed) + ")
    assert abs(_last_number(total) - dx[0, 6, 0]) < 1e-6


def test_when_every_channel_is_played_the_complete_sums_read_as_before(qtbot, view):
    """Seed 001's examples keep their formulas; only a running sum short of the last channel says partial
    (the 2x2x2 example's 30, which its own description calls the first part of 30 + 174 = 204)."""
    expected = {"seed001_5x5_kernel3": ("forward", 0,
                                        "z11 = 1·1 + 1·0 + 1·1 + 0·0 + 1·1 + 1·0 + 0·1 + 0·0 + 1·1 = 4"),
                "seed001_3x3_kernel2_stride1": ("input_grad", 4, "∇a22 = 1·4 + (-1)·3 + 2·2 + 0.5·1 = 5.5"),
                "seed001_two_channel": ("forward", 1, "z11 = 30 + 5·5 + 6·6 + 7·7 + 8·8 = 204")}
    for example, (stage, step, numbers) in expected.items():
        choose_example(view, example)
        view.set_index(view.stage_first_index(stage) + step)
        assert view.numbers_text() == numbers and view.canvas.scene.total == ""
        assert not any(g.spec.title.startswith(("partial", "complete")) for g in view.canvas.placed)
        for index in range(view.frame_count()):  # one-channel examples: nothing partial anywhere
            view.set_index(index)
            if example != "seed001_two_channel":
                assert view.canvas.scene.total == "" and "partial" not in view.formula_text()
    view.set_index(1)  # the 2x2x2 example's second input channel
    assert view.formula_text() == "z11 = 30 + a11[1]·w11[1,0] + a12[1]·w12[1,0] + a21[1]·w21[1,0] + a22[1]·w22[1,0]"
    view.set_index(0)
    assert view.numbers_text() == "partial z11 = 1·1 + 2·2 + 3·3 + 4·4 = 30"
    assert view.canvas.scene.total == "complete z11 = 30 (input channel 0) + 174 (input channel 1) = 204"
    # A custom convolution with every output channel played: the crop has nothing to bridge.
    view.set_source("custom")
    view.custom.c_out.setValue(3)
    assert view.c_out.currentData() is None  # "all"
    view.jump_to_stage("crop")
    assert view.canvas.scene.total == "" and view.canvas.grid("dx_padded").spec.title == "∇a over the padded input"
    view.c_out.setCurrentIndex(view.c_out.findData(1))  # one output channel, not the last: it has
    view.jump_to_stage("crop")
    assert view.canvas.grid("dx_padded").spec.title == "complete ∇a over the padded input"
    assert view.canvas.scene.total.startswith("complete ∇a11 = ")
    view.c_out.setCurrentIndex(view.c_out.findData(2))  # the last output channel: its sums were complete
    view.jump_to_stage("crop")
    assert view.canvas.scene.total == "" and view.canvas.grid("dx_padded").spec.title == "∇a over the padded input"


def test_the_kernel_keeps_its_signs_and_digits_under_a_short_subtitle(qtbot, conv2_view):
    """At 1600x1000 the kernel's subtitle was cut to "input channel 1 → output channe…" and w(3,3) =
    -0.003246 was written "0.00": now "in 0 → out 0" (in words in the tooltip) and -0.32 at ×10⁻²."""
    from app.views.stepper_grid import _font, _subtitle, text_scale

    view = conv2_view
    view.resize(1310, 900)  # the stepper's share of a 1600x1000 window
    QtWidgets.QApplication.processEvents()
    view.jump_to_stage("forward")
    grid = view.canvas.grid("w")
    spec = grid.spec
    assert spec.subtitle == "3×3 · in 0 → out 0" and grid.mode == "numbers"
    shown = _subtitle(spec, grid.mode)
    metrics = QtGui.QFontMetricsF(_font(12 * text_scale()))
    assert shown.endswith("values ×10⁻²") and metrics.horizontalAdvance(shown) + 8 <= grid.room[1] - grid.room[0]
    kernel = view.trace.w[:, :, 0, 0]
    assert spec.fmt.text(kernel[2, 2]) == "-0.32"
    for v in kernel.ravel():  # every weight: its sign and two significant digits
        text = spec.fmt.text(v)
        assert np.sign(float(text)) == np.sign(v)
        assert float(text) * 10.0 ** spec.fmt.exponent == pytest.approx(v, rel=0.02)
    header = grid.header_rect().center()
    assert view.canvas.hover_text(header) == ("kernel w: 3×3, input channel 0 → output channel 0\n"
                                              "numbers written ×10⁻²: 1.50 means 0.015")


def test_a_cells_hover_text_writes_negative_numbers_with_a_real_minus_sign():
    """The read-out wrote "-0.25" with a hyphen, where the app's other texts write "−0.25" (U+2212)."""
    values = np.array([[-0.25, 1.5]])
    spec = GridSpec("z", "output z", "", values, 1.5, CellFormat.for_values(values), np.zeros((1, 2), bool),
                    [["z11", "z12"]], partners={(0, 0): (-2.0, False)},
                    partial=lambda r, c: "input channel 0", complete=np.array([[-1.125, 3.0]]))
    grid = PlacedGrid(spec, QtCore.QRectF(0, 0, 80, 40), 40.0, (0.0, 80.0))
    assert grid.describe(0, 0) == "partial z11 (input channel 0) = \u22120.25;   complete z11 = \u22121.125"
    spec.partial = None
    assert grid.describe(0, 0) == "z11 = \u22120.25   (multiplied by \u22122 at this step)"


# ------------------------------------------------------- the formula's numbers are the cells' numbers
_PRODUCT_RE = re.compile(r"\(?(-?[\d.]+)\)?·\(?(-?[\d.]+)\)?")


@pytest.mark.parametrize("stage", ["forward", "input_grad", "weight_grad"])
def test_the_live_formula_writes_each_factor_as_its_cell_does(qtbot, conv2_view, stage):
    """A live kernel's weights are small (0.305, written 30.50 in a grid "values ×10⁻²"): the numeric formula
    writes each factor as its cell does and gives the grids' shared scale once, ``(…·30.50 + …)×10⁻²``; it
    wrote 0.305, and the learner had to spot the caption and convert to find the term's cell."""
    view = conv2_view
    view.jump_to_stage(stage)
    while sum(not term.inserted_zero and term.product != 0 for term in view.current_frame().terms) < 3:
        press(qtbot, view, Key.Key_Right)
    frame = view.current_frame()
    terms = [term for term in frame.terms if not term.inserted_zero]
    keep = shown_terms(frame)  # a long sum shows its largest products
    terms = terms if keep is None else [terms[i] for i in keep]
    cells = []
    for term in terms:
        factors = []
        for name, index in (term.a_source, term.b_source):
            spec = view.canvas.grid(name).spec
            value = spec.values[index[0], index[1]]
            text = spec.fmt.text(value)  # what a cell writes, unless it reads 0.00 for a value that is not 0
            factors.append(text if float(text) != 0 or value == 0 else f"{value / 10.0 ** spec.fmt.exponent:.3g}")
        cells.append(tuple(factors))
    numbers = view.numbers_text()
    assert _PRODUCT_RE.findall(numbers)[:len(cells)] == cells
    scales = {sum(view.canvas.grid(name).spec.fmt.exponent for name in (term.a_source[0], term.b_source[0]))
              for term in terms}
    assert len(scales) == 1 and scales != {0}  # the case the review found: scaled cells
    assert f"){CellFormat(2, *scales, False).suffix()}" in numbers
    # the products line takes the same factor out: 0.52·30.50 is 15.86 there, not 0.1586
    products = view.canvas.scene.products
    assert f"){CellFormat(2, *scales, False).suffix()}" in products
    first = next((term for term in terms if term.product != 0), None)  # of the terms shown
    assert first is None or f"{first.product / 10.0 ** scales.pop():.4g}".lstrip("-") in products


def test_the_header_numbers_the_stages_one_way_only(qtbot, view):
    """The header said "Backward 6 · ∇w" next to "stage 7 of 8": two counts on one screen. Now the title
    names the direction only, and the progress line gives the one stage number."""
    choose_example(view, "seed001_two_channel")
    for k, stage in enumerate(STAGES):
        view.jump_to_stage(stage)
        scene = view.canvas.scene
        assert re.match(r"(Forward|Backward) · ", scene.title), scene.title
        assert not re.match(r"(Forward|Backward) \d", scene.title)
        assert f"stage {k + 1} of {len(STAGES)}" in scene.progress


@pytest.mark.parametrize("example", list(WORKED_EXAMPLES))
def test_the_bias_gradient_stage_says_there_is_no_bias_when_there_is_none(qtbot, view, example):
    """Seed 001's examples have no bias (the forward formula has no "+ b"), yet the ∇b stage said "the bias
    was added to every output z of its channel". It now says there is none and what its gradient would be."""
    choose_example(view, example)
    assert view.trace.b is None
    view.jump_to_stage("bias_grad")
    scene = view.canvas.scene
    assert "bias was added" not in scene.explanation
    assert scene.explanation.startswith("This convolution has no bias; if it had one")
    assert "no bias here" in scene.title
    assert view.canvas.grid("db").spec.caption == "no bias here: what ∇b would be"
    if view.trace.w.shape[3] == 1:
        assert f"Σ δ = {float(view.trace.db[0]):.6g}, as it" in scene.explanation


def test_the_bias_gradient_stage_of_a_convolution_with_a_bias_keeps_its_words(qtbot, view):
    panel = custom_panel(view, 4, 4, 2)
    view.jump_to_stage("bias_grad")
    assert "no bias" in view.canvas.scene.explanation and "no bias here" in view.canvas.scene.title
    panel.bias.setChecked(True)
    assert view.trace.b is not None
    view.jump_to_stage("bias_grad")
    scene = view.canvas.scene
    assert scene.title == "Backward · ∇b = Σ δ"
    assert scene.explanation.startswith("∇b = Σ δ: the bias was added to every output z of its channel")
    assert view.canvas.grid("db").spec.caption == "one per output channel"


def test_an_input_cell_no_window_reached_says_why_its_gradient_is_0(qtbot, view):
    """Custom 6×6, 3×3 kernel, stride 2, VALID: the windows stop at rows/columns 0…4, so the last row and
    column fed no z. The dilate stage explains the left-over zeros, but the ∇a stage showed "∇a65 = 0" with
    nothing summed and no reason; now the explanation gives it for those cells, and only for them."""
    panel = custom_panel(view, 6, 6, 3)
    panel.stride.setValue(2)
    assert view.trace.stride == (2, 2) and any(view.trace.leftover)
    start = view.stage_first_index("input_grad")
    end = view.stage_first_index("crop")
    reasons = {}
    for index in range(start, end):
        view.set_index(index)
        frame = view.current_frame()
        reasons[frame.index[:2]] = "no window covered this cell" in view.canvas.scene.explanation
    assert len(reasons) == 36
    unreached = {cell for cell, said in reasons.items() if said}
    assert unreached == {(r, c) for r in range(6) for c in range(6) if r == 5 or c == 5}
    view.set_index(start + [*reasons].index((5, 4)))
    scene = view.canvas.scene
    assert "∇a65: no window covered this cell (stride 2 skipped it), so it had no effect on z" in scene.explanation
    assert scene.formula.startswith("∇a65 = ")


# ------------------------------------------------------- no factor reads 0.00 unless it is zero (live conv2)
@pytest.fixture(scope="module")
def live_conv2_builder():
    """The live conv2 trace of the review (VGG-7, validation sample #7) and its SceneBuilder, no view."""
    from app.views.conv_stepper_scene import SceneBuilder
    from engine.data import load_bundled_mnist
    from engine.model import Sequential
    from engine.trace import live_conv_trace

    val = load_bundled_mnist()[1]
    model = Sequential.load(ROOT / "resources" / "weights" / "vgg7.npz")
    trace = live_conv_trace(model, "conv2", val.x[7], int(val.y[7])).trace
    return trace, SceneBuilder(trace)


@pytest.mark.parametrize("stage", ["forward", "input_grad", "weight_grad"])
def test_no_live_factor_is_written_0_00_unless_it_is_zero(live_conv2_builder, stage):
    """The 28×28 input grid draws no numbers, yet its factors were written as a 2-decimal cell would:
    ``(0.00·3.17 + 0.00·(-1.52) + …)×10⁻²`` beside products ``(0.0143 + (-0.006863) + …)``. A factor that is
    not zero now keeps 3 significant digits at its grid's scale (0.00451); one a cell writes is unchanged."""
    trace, builder = live_conv2_builder
    frames = trace.frames_for(stage, 0, 0)
    checked = 0
    for i in range(0, len(frames), max(1, len(frames) // 40)):
        frame = frames[i]
        terms = [term for term in frame.terms if not term.inserted_zero]
        keep = shown_terms(frame)  # a long sum writes its largest products
        terms = terms if keep is None else [terms[i] for i in keep]
        pairs = _PRODUCT_RE.findall(builder._numbers(frame))
        assert len(pairs) == len(terms)
        for term, (a, b) in zip(terms, pairs):
            for text, value, source in ((a, term.a_value, term.a_source), (b, term.b_value, term.b_source)):
                if float(text) == 0:
                    assert value == 0, (frame.index, text, value)
                    checked += 1
                else:  # scaled as its grid, to its cell's or 3 significant digits
                    fmt = builder._format(source)
                    assert text == fmt.text(value) or text == f"{value / 10.0 ** fmt.exponent:.3g}"
    assert checked or stage == "weight_grad"  # exact zeros are still written as cells write them (∇w's
    # long sums show their largest products only)


def test_a_long_live_sum_shows_its_largest_products_and_says_what_it_leaves_out(live_conv2_builder):
    """∇w(1,1) of live conv2 sums 729 written products, 60 of them not zero: the first 8 and last 2 it showed
    were all background zeros. It now shows the 10 largest, in order, with "…" between, in all three lines,
    and says how many are left out at "…" and, apart, how many multiply a padding or dilation zero (never
    written: the formula has 729 terms of the window's 784)."""
    from app.views.conv_stepper_scene import _cell_number

    trace, builder = live_conv2_builder
    frame = trace.frames_for("weight_grad", 0, 0)[0]
    scene = builder.scene(frame, builder.channels_of(frame), "")
    terms = [term for term in frame.terms if not term.inserted_zero]
    inserted = len(frame.terms) - len(terms)
    assert len(terms) == 729 and inserted == 55
    largest = max(terms, key=lambda term: abs(term.product))
    exponent = builder._scale(frame)
    assert f"{abs(largest.product) / 10.0 ** exponent:.4g}" in scene.products
    a, b = (_cell_number(builder._format(s), v) for s, v in ((largest.a_source, largest.a_value),
                                                              (largest.b_source, largest.b_value)))
    assert f"{a}·{b}" in scene.numbers
    assert trace.symbol(largest.a_origin) in scene.formula
    shown = sorted(terms, key=lambda term: -abs(term.product))[:10]
    products = [float(p.strip("()")) for p in re.findall(r"\(?-?[\d.]+\)?(?= \+ |\))", scene.products.split("(", 1)[1])]
    assert products == pytest.approx([t.product / 10.0 ** exponent for t in terms if t in shown], rel=1e-3)
    assert "the other 719 are at …" in scene.products
    assert f"{inserted} products with a padding or dilation zero" in scene.products
    for line in (scene.formula, scene.numbers, scene.products.partition("   (")[0]):
        assert line.count("…") == 11  # before, between and after the 10 largest


def test_a_short_sum_says_how_many_products_with_a_padding_zero_it_does_not_write():
    """A SAME corner window multiplies 5 padding zeros: the formula writes 4 products and now says so,
    where it dropped them silently."""
    from app.views.conv_stepper_scene import SceneBuilder

    x = np.arange(16, dtype=float).reshape(4, 4, 1)
    w = np.ones((3, 3, 1, 1))
    trace = trace_conv2d(x, w, None, np.ones((4, 4, 1)), 1, "SAME")
    builder = SceneBuilder(trace)
    frame = trace.frames_for("forward", 0, 0)[0]
    scene = builder.scene(frame, builder.channels_of(frame), "")
    assert scene.numbers.count("·") == 4 and "…" not in scene.numbers
    assert scene.products.endswith("(5 products with a padding zero not written)")


@pytest.mark.parametrize("n, small", [(11, ()), (12, ()), (12, (5, 11)), (13, (0, 1, 12))])
def test_a_sum_one_product_too_long_is_written_whole_and_a_longer_one_keeps_its_10_largest(n, small):
    """Eliding one product of 11 would save nothing ("…" in its place): up to 11 are written whole;
    from 12 on, the 10 largest in magnitude, in their order, "…" where the others were (``small``: products
    made the smallest, so that the first or the last are left out)."""
    rng = np.random.default_rng(n)
    x = rng.normal(size=(1, n, 1)) + np.sign(rng.normal(size=(1, n, 1)))  # then the chosen ones made tiny
    x[0, list(small), 0] = 1e-3
    trace = trace_conv2d(x, np.ones((1, 1, 1, 1)), None, rng.uniform(1, 2, size=(1, n, 1)))
    frame = trace.frames_for("weight_grad")[0]  # ∇w(1,1) = Σ a·δ over the n outputs
    products = np.array([abs(term.product) for term in frame.terms])
    written = trace.formula(frame, keep=shown_terms(frame)).partition(" = ")[2].split(" + ")
    if n == 11:
        assert shown_terms(frame) is None and "…" not in written and len(written) == n
    else:
        largest = sorted(np.argsort(-products)[:10])
        assert shown_terms(frame) == largest
        assert [part for part in written if part != "…"] == [f"a(1,{i + 1})·δ(1,{i + 1})" for i in largest]
        expected = []  # one "…" for each run of products left out
        for i in range(n):
            if i in largest:
                expected.append("x")
            elif expected[-1:] != ["…"]:
                expected.append("…")
        assert ["…" if part == "…" else "x" for part in written] == expected


@pytest.mark.parametrize("bias", [None, "-0.5", "0.25"])
def test_the_numeric_formula_adds_up_to_the_value_it_states_bias_included(qtbot, view, bias):
    """``z11 = 1·2 + (-0.5) = 1.5``: the bias is a term of the sum, a negative one in parentheses; a sum
    of a single product still states its value (``z11 = 1·2 = 2``)."""
    panel = custom_panel(view, 2, 2, 1)
    typed = {"x": "1 2; 3 -4", "w": "2"}
    if bias is not None:
        panel.bias.setChecked(True)
        typed["b"] = bias
    for name, text in typed.items():
        panel.edits[name].clear()
        qtbot.keyClicks(panel.edits[name], text)
        qtbot.keyClick(panel.edits[name], Key.Key_Return)
    view.jump_to_stage("forward")
    for _ in range(4):  # the four output cells, each one product (and the bias)
        frame = view.current_frame()
        lhs, sums, stated = view.numbers_text().split(" = ")
        assert "+ -" not in sums and "·-" not in sums  # negatives in parentheses
        assert eval(sums.replace("·", "*")) == pytest.approx(float(stated)) == pytest.approx(frame.value)
        assert sums.count("+") == (bias is not None)
        press(qtbot, view, Key.Key_Right)



@pytest.mark.parametrize("stride, named", [((1, 2), "stride 1×2"), ((2, 1), "stride 2×1"), ((2, 2), "stride 2")])
def test_a_stride_in_one_direction_only_is_named_as_what_skipped_the_cell(stride, named):
    """A 1×1 kernel with stride 1×2 skips every other column: those cells' ∇a sums only inserted zeros,
    and the note says which stride skipped them."""
    sh, sw = stride
    trace = trace_conv2d(np.ones((4, 4, 1)), np.ones((1, 1, 1, 1)), None, np.ones((4 // sh, 4 // sw, 1)), stride)
    skipped = [frame for frame in trace.frames_for("input_grad")
               if frame.terms and all(term.inserted_zero for term in frame.terms)]
    assert len(skipped) == 16 - (4 // sh) * (4 // sw)
    symbol = trace.formula(skipped[0]).partition(" = ")[0]
    assert unreached_note(trace, symbol).startswith(f"{symbol}: no window covered this cell ({named} skipped it)")




@pytest.mark.parametrize("top", [0.3123, 4.123e-3, 2.5123, 5.123e4])
def test_a_factor_too_small_for_its_cells_keeps_three_digits_at_the_cells_scale(top):
    """A cell of a grid "×10⁻²" writes 3.7e-5 as "0.00"; as a factor of the formula, which gives that ×10ⁿ
    once, it keeps 3 significant digits at the same scale: "0.0037" (never "0.00" for a value not zero)."""
    fmt = CellFormat.for_values(np.array([top, -top / 3]))  # 2 decimals, scaled ×10ⁿ unless 1 ≤ top < 10
    for v in (10.0 ** fmt.exponent * 3.7e-3, -(10.0 ** fmt.exponent) * 1.234e-3, top / 7):
        text = fmt.factor(v)
        assert float(text) * 10.0 ** fmt.exponent == pytest.approx(v, rel=5e-3), (top, v, text)
        if float(fmt.text(v)) != 0:
            assert text == fmt.text(v)  # as its cell writes it
        else:
            assert "e" not in text and 1 <= len(text.lstrip("-0.")) <= 3, text  # at most 3 significant digits
    assert fmt.factor(0.0) == fmt.text(0.0)
