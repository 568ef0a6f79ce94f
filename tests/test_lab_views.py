"""Learning-lab views: gradient check, gradient health and kernel timeline, driven like a learner would
(pytest-qt, offscreen), with what they show read back and compared with the engine."""
import os

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from app.views import grad_check
from app.views.grad_check import PASS_BELOW, GradCheckView
from app.views.gradient_health import GRAD_COLOUR, GradientHealthView, _Sparkline
from app.views.kernel_timeline import KernelTimelineView, fill_kernels, kernel_mosaic
from app.views.lazy_view import LazyView
from engine import data, gradcheck, presets
from engine.health import HealthMonitor
from engine.optim import make_optimizer
from engine.timeline import KernelTimeline

# A narrow VGG-7 (same layers, few channels) keeps float64 finite differences quick.
NARROW = dict(conv1=4, conv2=4, conv3=4, conv4=4, dense1=16, dense2=8)


@pytest.fixture(autouse=True)
def no_rate_limit(monkeypatch):
    monkeypatch.setattr(LazyView, "MAX_DUTY", None)


@pytest.fixture(scope="module")
def narrow_vgg7():
    """Trained-looking weights: biases moved off 0, so no ReLU input sits exactly on its kink."""
    model = presets.build(presets.get_preset("vgg7", **NARROW), seed=4)
    rng = np.random.default_rng(4)
    for name, p in model.params().items():
        if name.endswith(".b"):
            p += rng.normal(0.0, 0.05, p.shape).astype(p.dtype)
    return model


def check_view(qtbot, model):
    view = GradCheckView()
    qtbot.addWidget(view)
    view.show()
    view.model_changed(model)
    return view


def run(qtbot, view):
    assert view.run_check()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=60_000)
    return view.results()


def table_column(view, column):
    return [view.table.item(r, column).text() for r in range(view.table.rowCount())]


# ------------------------------------------------------------------------------ gradient check

def test_engine_gradient_check_passes_correct_and_fails_broken_update(narrow_vgg7):
    val = data.load_bundled_mnist()[1]
    x, y = val.x[:8], val.y[:8]
    errors, rows = gradcheck.check_model(narrow_vgg7, x, y, per_param=2)
    assert not any(r.kink for r in rows)
    assert max(errors.values()) < 1e-3
    broken = gradcheck.float64_copy(narrow_vgg7)
    broken.variant = "broken_update"
    errors_broken, _ = gradcheck.check_model(broken, x, y, per_param=2)
    assert errors_broken["conv2.w"] > 100 * max(errors.values()) and errors_broken["conv2.w"] > 1e-2
    assert errors_broken["conv1.w"] < 1e-3  # only the second kernel's update is wrong


def test_a_weight_passes_with_the_correct_backward_and_fails_with_broken_update(qtbot, narrow_vgg7):
    view = check_view(qtbot, narrow_vgg7)
    assert not view.jitter.isChecked()  # trained biases: the model is checked exactly as it is
    view.set_index("conv2.w", (1, 2, 3, 0))
    (row,) = run(qtbot, view)
    assert (row.param, row.index) == ("conv2.w", (1, 2, 3, 0))
    assert row.rel_err < 1e-3 and row.rel_err < PASS_BELOW and not row.kink
    assert table_column(view, 5) == ["pass"] and table_column(view, 1) == ["[1, 2, 3, 0]"]
    analytic = table_column(view, 2)[0].replace("\N{MINUS SIGN}", "-")  # written with real minus signs
    assert float(analytic) == pytest.approx(row.analytic, rel=1e-6)
    assert "conv2.w" in view.summary.text() and "pass" in view.summary.text()

    view.set_variant("broken_update")
    (broken,) = run(qtbot, view)
    assert broken.rel_err > 1e-2 and broken.rel_err > 100 * row.rel_err
    assert broken.numeric == pytest.approx(row.numeric, rel=1e-9)  # the loss is the same function
    assert broken.analytic != pytest.approx(row.analytic, rel=1e-3)  # the applied gradient is not
    assert table_column(view, 5) == ["FAIL"] and "FAIL" in view.summary.text()
    assert narrow_vgg7.variant is None  # the display model is never touched


def test_a_row_where_both_gradients_are_zero_says_it_tests_little(qtbot, narrow_vgg7):
    view = check_view(qtbot, narrow_vgg7)
    for analytic, numeric in ((0.0, 0.0), (1e-3, 1e-3)):
        row = gradcheck.GradCheckRow("conv1.w", (0, 0, 0, 0), analytic, numeric,
                                     gradcheck.relative_error(analytic, numeric), gradcheck.EPS, False)
        view._append_row(row)
    zero, nonzero = (view.table.item(r, 5) for r in range(2))
    assert zero.text() == nonzero.text() == "pass"
    assert "says little" in zero.toolTip() and nonzero.toolTip() == ""


def test_a_parameter_checked_only_where_both_gradients_are_zero_is_not_summed_up_as_passed(qtbot, narrow_vgg7):
    """Under the broken update "dense1.w 0 ✓ pass" rested on one entry whose gradient was exactly 0."""
    def row(param, g, kink=False):
        return gradcheck.GradCheckRow(param, (3, 1), g, g / 3 if kink else g, gradcheck.relative_error(g, g),
                                      gradcheck.EPS, kink)

    view = check_view(qtbot, narrow_vgg7)
    view._rows = [row("dense1.w", 0.0), row("dense1.w", 0.3, kink=True),  # a kink row counts for nothing
                  row("dense2.w", 0.0), row("dense2.w", 1e-3)]
    view._show_summary(True)
    dense1, dense2 = view.summary.text().split("dense2.w")
    assert "not tested, its sampled gradients are exactly 0" in dense1 and "pass" not in dense1
    assert "✓ pass" in dense2  # one entry with a gradient is a test


def test_a_difference_below_the_rounding_noise_is_marked_noise_not_fail():
    def row(noise):
        return gradcheck.GradCheckRow("dense2.w", (3, 1), 1.0e-7, 1.2e-7, gradcheck.relative_error(1e-7, 1.2e-7),
                                      gradcheck.EPS, False, noise)

    assert GradCheckView.verdict(row(1e-6)) == "noise"  # a huge loss's finite differences: says nothing
    assert GradCheckView.verdict(row(1e-9)) == "FAIL"


def test_a_parameter_off_only_by_rounding_noise_is_not_summed_up_as_a_failure(qtbot, narrow_vgg7):
    """The rows say "noise — not a failure"; the summary above them must not say FAIL for them."""
    def row(param, noise):
        return gradcheck.GradCheckRow(param, (3, 1), 1.0e-7, 1.2e-7, gradcheck.relative_error(1e-7, 1.2e-7),
                                      gradcheck.EPS, False, noise)

    view = check_view(qtbot, narrow_vgg7)
    view._rows = [row("dense2.w", 1e-6), row("dense2.w", 1e-6), row("dense3.w", 1e-9)]
    view._show_summary(True)
    text = view.summary.text()
    assert "<b>dense2.w</b>" in text and "rounding noise, not a failure" in text.split("dense3.w")[0]
    assert "✗ FAIL" in text.split("dense3.w")[1]      # a real difference still fails


def test_random_samples_cover_the_chosen_parameter_or_the_whole_model(qtbot, narrow_vgg7):
    view = check_view(qtbot, narrow_vgg7)
    view.set_variant("transposed_pool")
    view.scope.setCurrentIndex(view.scope.findData("param"))
    view.param.setCurrentIndex(view.param.findText("dense3.w"))
    rows = run(qtbot, view)
    assert len(rows) == 20 and {r.param for r in rows} == {"dense3.w"}
    assert len({r.index for r in rows}) == 20
    assert all(r.rel_err < PASS_BELOW for r in rows if not r.kink)  # after the pooling: unaffected
    assert view.progress.value() == view.progress.maximum() == 20

    view.scope.setCurrentIndex(view.scope.findData("model"))
    entries = view.entries()
    assert len(entries) == 20 and {p for p, _ in entries} == set(narrow_vgg7.params())  # every layer checked
    for param, index in entries:
        assert all(0 <= i < n for i, n in zip(index, narrow_vgg7.params()[param].shape))


def test_a_sample_too_small_for_every_parameter_names_the_ones_left_out(qtbot, monkeypatch):
    """Over a model with more parameters than entries the summary must not read as the whole model checked."""
    monkeypatch.setattr(grad_check, "RANDOM_COUNT", 4)
    model = presets.build("tiny8x8")
    view = check_view(qtbot, model)
    view.scope.setCurrentIndex(view.scope.findData("model"))
    rows = run(qtbot, view)
    checked = {r.param for r in rows}
    left_out = [name for name in model.params() if name not in checked]
    assert len(rows) == len(checked) == 4 and len(left_out) == 6
    assert "not sampled (fewer weights than parameters): " + ", ".join(left_out) in view.summary.text()

    view.scope.setCurrentIndex(view.scope.findData("param"))  # one parameter: the others are not missing
    run(qtbot, view)
    assert "not sampled" not in view.summary.text()


def test_transposed_pool_fails_the_first_kernel(qtbot, narrow_vgg7):
    view = check_view(qtbot, narrow_vgg7)
    view.set_variant("transposed_pool")
    view.set_index("conv1.w", (0, 1, 0, 2))
    (row,) = run(qtbot, view)
    assert row.rel_err > 1e-2 and view.verdict(row) == "FAIL"


def test_index_boxes_follow_the_parameter_shape_and_impossible_variants_are_disabled(qtbot):
    model = presets.build("tiny8x8")
    view = check_view(qtbot, model)
    view.param.setCurrentIndex(view.param.findText("conv2.w"))
    shape = model.params()["conv2.w"].shape
    visible = [s for s in view.index_spins if not s.isHidden()]
    assert [s.maximum() for s in visible] == [n - 1 for n in shape]
    view.param.setCurrentIndex(view.param.findText("dense1.b"))
    visible = [s for s in view.index_spins if not s.isHidden()]
    assert [s.maximum() for s in visible] == [model.params()["dense1.b"].size - 1]
    broken = view.variant.model().item(view.variant.findData("broken_update"))
    assert not broken.isEnabled() and "equal size" in broken.toolTip()  # conv1 has 2 filters, conv2 4
    assert view.variant.model().item(view.variant.findData("transposed_pool")).isEnabled()


def test_a_fresh_network_gets_its_biases_moved_off_the_relu_kinks(qtbot):
    fresh = presets.build(presets.get_preset("vgg7", **NARROW), seed=4)  # every bias is 0
    view = check_view(qtbot, fresh)
    assert view.jitter.isChecked()
    assert f"ε = {gradcheck.EPS:g}" in view.table.horizontalHeaderItem(3).toolTip()  # said 1e-6
    assert "dropout off" in view.caption.text()
    view.set_index("conv1.b", (1,))
    view.jitter.setChecked(False)
    (on_kink,) = run(qtbot, view)
    assert on_kink.kink and table_column(view, 5) == ["kink"]
    assert "Move biases off zero" in view.summary.text()
    view.jitter.setChecked(True)
    (moved,) = run(qtbot, view)
    assert not moved.kink and moved.rel_err < PASS_BELOW
    assert not fresh.params()["conv1.b"].any()  # only the checked copy was jittered
    # Other weights of the same architecture: the box follows them (it stayed as set for the first).
    trained = presets.build(presets.get_preset("vgg7", **NARROW), seed=5)
    for p in trained.params().values():
        p += 0.01
    view.model_changed(trained)
    assert not view.jitter.isChecked()
    view.model_changed(presets.build(presets.get_preset("vgg7", **NARROW), seed=6))  # as after Reset
    assert view.jitter.isChecked()
    view.jitter.setChecked(False)
    view.model_changed(view._model)  # a training step updates the same model: the choice stays
    assert not view.jitter.isChecked()


def test_closing_during_a_check_cancels_and_joins_it(qtbot, narrow_vgg7):
    view = check_view(qtbot, narrow_vgg7)
    view.scope.setCurrentIndex(view.scope.findData("model"))
    assert view.run_check()
    assert view.is_running() and not view.run_button.isEnabled()
    assert view.shutdown()
    assert not view.is_running() and view.run_button.isEnabled()
    assert len(view.results()) < 20


# ------------------------------------------------------------------------------ gradient health

SMALL = {"name": "small", "input_shape": [4], "classes": [0, 1], "loss": "softmax_cross_entropy",
         "layers": [{"type": "Dense", "name": "d1", "units": 3},
                    {"type": "Activation", "name": "r1", "fn": "relu"},
                    {"type": "Dense", "name": "d2", "units": 5},
                    {"type": "Activation", "name": "t2", "fn": "tanh"},
                    {"type": "Dense", "name": "d3", "units": 2}]}


def trained_monitor(steps, dead_first_layer):
    from engine.model import Sequential

    model = Sequential(SMALL, seed=1, dtype=np.float64)
    if dead_first_layer:
        model.layer("d1").params["b"][...] = -100.0
    monitor = HealthMonitor(model, stall_steps=5)
    opt = make_optimizer("sgd", model, 0.1, 0.1)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 2, 16)
    for step in range(1, steps + 1):
        loss, _ = model.loss_and_grads(x, y)
        opt.step()
        monitor.observe({"type": "step", "step": step, "loss": float(loss), "lrs": dict(opt.lrs)}, model)
    return model, monitor


def health_view(qtbot, monitor, model):
    view = GradientHealthView()
    view.MAX_DUTY = None  # rate limit off: every update is drawn at once
    qtbot.addWidget(view)
    view.resize(1200, 500)
    view.show()
    view.set_monitor(monitor)
    view.model_changed(model)
    return view


def test_health_view_shows_the_monitor_and_warns_in_red_when_a_layer_stops(qtbot):
    model, monitor = trained_monitor(8, dead_first_layer=True)
    view = health_view(qtbot, monitor, model)
    history = monitor.history()
    for i, name in enumerate(monitor.layers):
        x, y = view.row(name).grad.curve_data()
        np.testing.assert_array_equal(x, history["step"])
        expected = np.where(history["grad_norm"][:, i] > 0, history["grad_norm"][:, i], np.nan)  # 0: a gap
        np.testing.assert_allclose(10 ** y, expected, rtol=1e-12)  # the curve is drawn in log mode
    assert view.row("d1").dead.share == 1.0 and view.row("d1").dead.text.text() == "100%"
    assert view.row("d1").dead.bar.rect() == view.row("d1").dead.track.rect()  # 100%: the whole track
    assert view.row("d1").saturated.bar.rect().width() == 0.0  # n/a: no bar
    assert np.isnan(view.row("d1").saturated.share) and view.row("d1").saturated.text.text() == "n/a"
    assert view.row("d2").saturated.share == monitor.latest()[1][1].saturated_share
    assert view.warning.isVisible() and "d1 stopped learning" in view.warning.text()
    assert "#ff5555" in view.row("d1").name.text and "#ff5555" not in view.row("d3").name.text
    assert "After step 8" in view.status.text()


def test_the_healthy_band_is_named_on_the_page_while_there_are_curves(qtbot):
    """The green band behind the update/weight sparklines was explained only in their tooltip."""
    model, monitor = trained_monitor(4, dead_first_layer=False)
    view = health_view(qtbot, monitor, model)
    legend = view.findChild(QtWidgets.QLabel, "healthBandLegend")
    assert legend is not None and legend.isVisible() and not view.plot.isHidden()
    assert "green band behind the update / weight curves is the healthy range, 1e\u22124 … 1e\u22122" in legend.text()
    scroll = view.findChild(QtWidgets.QScrollArea)
    assert legend.geometry().bottom() < scroll.geometry().top()  # above the curves, in the page's own text
    view.set_monitor(None)  # Reset: no curves, no legend for them
    assert not legend.isVisible() and "No training run" in view.status.text()


def test_the_band_legend_says_a_decaying_rate_sinks_the_ratio_and_saturation_is_normal_late(qtbot):
    """After a cosine run at 75% every ratio was below the band: a healthy run read as unhealthy, and dense1's
    saturation bar, the only coloured cell, looked like an alarm."""
    model, monitor = trained_monitor(3, dead_first_layer=False)
    view = health_view(qtbot, monitor, model)
    legend = view.findChild(QtWidgets.QLabel, "healthBandLegend")
    assert "decaying schedule (cosine, step)" in legend.text() and "sinks below the band" in legend.text()
    assert "Saturated tanh/arctan units are normal once the loss is low" in legend.text()
    assert "Now the rate" not in legend.text()  # at the peak rate the band is where it is drawn
    # the schedule brings the rate down to 15% of its peak: the legend says where healthy ratios are now
    monitor.observe({"type": "step", "step": 4, "loss": 0.5, "lrs": {"conv": 0.015, "dense": 0.015}}, model)
    assert monitor.lr_share() == pytest.approx(0.15)
    view.model_changed(model)
    qtbot.waitUntil(lambda: "Now the rate is at 15% of its peak" in legend.text())
    assert "about 1.5e\u221205 … 0.0015" in legend.text()
    assert "decaying" in view.row("d1").ratio.toolTip()


def test_the_healthy_band_is_drawn_opaque_enough_to_see_on_black():
    spark = _Sparkline(GRAD_COLOUR, (1e-4, 1e-2), 40)
    assert spark._band_brush.color().alpha() >= 90  # 50 was barely visible on the black background


def test_a_new_health_view_names_no_band_before_there_are_curves(qtbot):
    view = GradientHealthView()
    qtbot.addWidget(view)
    view.show()
    legend = view.findChild(QtWidgets.QLabel, "healthBandLegend")
    assert legend is not None and not legend.isVisible() and "No training run" in view.status.text()


@pytest.mark.parametrize("steps", [None, 0])
def test_health_export_csv_before_the_first_measured_step_is_refused_and_writes_nothing(qtbot, tmp_path, steps):
    """No run (None), or a run not measured yet (0 steps): a ValueError saying so, not a table of no rows."""
    model, monitor = trained_monitor(steps or 0, dead_first_layer=False)
    view = health_view(qtbot, None if steps is None else monitor, model)
    path = tmp_path / "health.csv"
    with pytest.raises(ValueError, match="nothing to export yet"):
        view.export_csv(str(path))
    assert not path.exists()


def test_a_divergence_the_run_went_on_from_is_shown_as_history_not_as_a_red_warning(qtbot):
    from app.views.tones import tone

    model, monitor = trained_monitor(4, dead_first_layer=False)
    monitor.observe({"type": "error", "step": 5, "cause": "the loss reached 812 (limit 100)",
                     "message": "training diverged at step 5: the loss reached 812 (limit 100); try a lower "
                                "learning rate"}, model)
    view = health_view(qtbot, monitor, model)
    assert view.warning.isVisible() and "⚠ Training diverged at step 5" in view.warning.text()
    monitor.observe({"type": "step", "step": 5, "loss": 1.0, "lrs": {"conv": 0.01, "dense": 0.01}}, model)
    view.model_changed(model)
    text = view.warning.text()
    assert "⚠" not in text and "try a lower learning rate" not in text
    assert f"color:{tone(view, 'muted').name()}'>Training diverged at step 5" in text and "went on from step 5" in text


def test_health_view_narrows_its_bars_then_scrolls_sideways_rather_than_cut_columns_off(qtbot):
    """At 1024 px with the dock open the 'saturated' column lay beyond the view's edge, unreachable."""
    model, monitor = trained_monitor(4, dead_first_layer=True)
    view = health_view(qtbot, monitor, model)
    dead = view.row("d1").dead
    wide = dead.size().width()
    view.resize(600, 500)
    scroll = view.findChild(QtWidgets.QScrollArea)
    qtbot.waitUntil(lambda: dead.size().width() < wide)
    assert dead.bar.rect() == dead.track.rect() and dead.track.rect().width() == dead.size().width()
    needed = view.plot.ci.effectiveSizeHint(QtCore.Qt.SizeHint.MinimumSize).width()
    view.resize(int(needed) - 60, 500)  # narrower than the columns at their least
    qtbot.waitUntil(lambda: scroll.horizontalScrollBar().maximum() > 0)
    assert view.plot.width() >= needed
    view.set_monitor(None)  # Reset: an empty page, no scroll bar held open by the last model's columns
    qtbot.waitUntil(lambda: scroll.horizontalScrollBar().maximum() == 0)


def render_sparkline(steps, values, band=(1e-4, 1e-2), decades=(-4, -2)):
    """The sparkline drawn on black, 200 x 46 px, y range ``decades`` (log10): (46, 200, 3) uint8 RGB."""
    from PySide6 import QtCore, QtGui, QtWidgets

    scene = QtWidgets.QGraphicsScene()
    spark = _Sparkline(GRAD_COLOUR, band, 46)
    scene.addItem(spark)
    spark.resize(200, 46)
    spark.set(np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64), decades)
    image = QtGui.QImage(200, 46, QtGui.QImage.Format.Format_RGB888)
    image.fill(QtGui.QColor("black"))
    painter = QtGui.QPainter(image)
    scene.render(painter, QtCore.QRectF(0, 0, 200, 46), QtCore.QRectF(0, 0, 200, 46))
    painter.end()
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(46, image.bytesPerLine())
    return rows[:, :600].reshape(46, 200, 3).copy()  # a copy: the QImage goes with this function


class FakeMonitor:
    """What GradientHealthView reads of an engine.health.HealthMonitor, with histories chosen by the test."""

    def __init__(self, grad_norm, update_ratio):
        self.grad_norm, self.update_ratio = (np.asarray(v, dtype=np.float64) for v in (grad_norm, update_ratio))
        self.layers = [f"l{i}" for i in range(self.grad_norm.shape[1])]
        self.activations = dict.fromkeys(self.layers, "relu")
        self.version, self.stride = 1, 1

    def lr_share(self):
        return None

    def history(self):
        n = len(self.grad_norm)
        return {"step": np.arange(1, n + 1), "grad_norm": self.grad_norm, "update_ratio": self.update_ratio,
                "dead_share": np.zeros_like(self.grad_norm), "saturated_share": np.zeros_like(self.grad_norm)}

    def latest(self):
        return None

    def warnings(self):
        return []


def curve_rows(spark):
    """Mean pixel row (from the top) of ``spark``'s curve, drawn alone on black at its own size."""
    from PySide6 import QtGui

    size = spark.size().toSize()
    image = QtGui.QImage(size, QtGui.QImage.Format.Format_RGB888)
    image.fill(QtGui.QColor("black"))
    painter = QtGui.QPainter(image)
    spark.band = None  # the curve alone
    spark.paint(painter, None)
    painter.end()
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(size.height(), image.bytesPerLine())
    lit = rows[:, :3 * size.width()].reshape(size.height(), size.width(), 3).max(axis=-1) > 60
    return np.flatnonzero(lit.any(axis=1)).mean()


def test_health_sparklines_share_one_y_range_per_column_so_layers_compare(qtbot):
    """Each sparkline fitted its own range: a layer with gradients 10x smaller looked the same as the rest."""
    steps = 12
    grads = np.stack([np.full(steps, 1e-1), np.full(steps, 1e-2)], axis=1)  # l1's gradient 10x smaller
    ratios = np.stack([np.full(steps, 1e-3), np.full(steps, 1e-3 * 1.5)], axis=1)
    view = health_view(qtbot, FakeMonitor(grads, ratios), None)
    first, second = view.row("l0"), view.row("l1")
    assert first.grad.y_range == second.grad.y_range and first.ratio.y_range == second.ratio.y_range
    low, high = first.grad.y_range
    assert low <= -2 and high >= -1
    qtbot.waitUntil(lambda: second.grad.size().width() > 40)
    assert curve_rows(second.grad) > curve_rows(first.grad) + 5  # lower on the page: pixel rows count down
    # the ratio column: a fixed span around the healthy band, whatever the values
    assert first.ratio.y_range[0] < -6 < -4 < -2 < 0 < first.ratio.y_range[1]
    # the ranges are named in the column headers
    headers = view._headers
    assert "‖gradient‖" in headers["grad_norm"].text and "(1e\u22122 … 1e0, log)" in headers["grad_norm"].text
    assert "1e\u22126 … 1e0, log" in headers["update_ratio"].text
    # a ratio beyond the span widens it by whole decades, for every row alike
    ratios[-1, 0] = 0.5e1
    view.set_monitor(FakeMonitor(grads, ratios))
    assert first is not view.row("l0")
    assert view.row("l0").ratio.y_range == view.row("l1").ratio.y_range and view.row("l0").ratio.y_range[1] > 1
    assert "1e\u22126 … 1e1, log" in view._headers["update_ratio"].text



def test_the_shared_ranges_hold_values_between_powers_of_ten(qtbot):
    """A column's range is whole decades around every value of every row: 0.004 and 0.3 lie in 1e−3 … 1e0."""
    steps = 8
    grads = np.stack([np.full(steps, 0.3), np.full(steps, 0.004)], axis=1)
    ratios = np.stack([np.full(steps, 3e-7), np.full(steps, 2e-3)], axis=1)  # below the ratio column's 1e−6
    view = health_view(qtbot, FakeMonitor(grads, ratios), None)
    for name in ("l0", "l1"):
        for spark in (view.row(name).grad, view.row(name).ratio):
            _, logs = spark.curve_data()
            low, high = spark.y_range
            assert low <= logs.min() and logs.max() <= high
    assert "(1e\u22123 … 1e0, log)" in view._headers["grad_norm"].text
    assert "1e\u22127 … 1e0, log" in view._headers["update_ratio"].text


def test_zero_gradients_leave_a_gap_not_a_dive_to_1e_minus_12(qtbot):
    """After a divergence gradients of exactly 0 were drawn at 1e-12: every curve dove to the bottom."""
    steps = 10
    grads = np.stack([np.full(steps, 1e-1), np.full(steps, 1e-2)], axis=1)
    grads[6:, :] = 0.0  # the run diverged at step 7: nothing flows back any more
    ratios = np.full((steps, 2), 1e-3)
    ratios[6:, :] = 0.0
    view = health_view(qtbot, FakeMonitor(grads, ratios), None)
    for name in ("l0", "l1"):
        for spark in (view.row(name).grad, view.row(name).ratio):
            _, logs = spark.curve_data()
            assert np.isnan(logs[6:]).all() and np.isfinite(logs[:6]).all()  # no point at log10(1e-12)
            assert spark.y_range[0] > -7  # nor a range stretched down to reach one
    assert view.row("l0").grad.y_range == view.row("l1").grad.y_range
    assert "1e\u221212" not in view._headers["grad_norm"].text and "1e-12" not in view.status.text()
    # drawn: the points before the divergence, nothing along the bottom edge after it
    pixels = render_sparkline(np.arange(1, steps + 1), grads[:, 0], decades=(-2, 0))
    curve = np.array([int(GRAD_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    lit = np.abs(pixels.astype(int) - curve).sum(axis=-1) < 60
    assert lit[:, :100].any() and not lit[:, 140:].any()


def test_sparkline_draws_its_log_values_over_the_healthy_band_with_gaps_for_nan():
    curve = np.array([int(GRAD_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    is_curve = lambda rgb: np.abs(rgb.astype(int) - curve).sum(axis=-1) < 60  # noqa: E731
    # constant 1e-3: a flat line halfway up the band (band 1e-4..1e-2 is the whole y range here)
    pixels = render_sparkline(np.arange(1, 21), np.full(20, 1e-3))
    rows = np.flatnonzero(is_curve(pixels).any(axis=1))
    assert rows.size and abs(rows.mean() - 23) <= 2
    assert is_curve(pixels[:, 10:190]).any(axis=0).all()  # drawn across the whole width
    band_rows = pixels[5, 10:190]  # inside the band, away from the line: its green tint, not black
    assert (band_rows[:, 1] > band_rows[:, 0]).all() and band_rows[:, 1].min() > 0
    # rising values: the line climbs from bottom left to top right; NaN leaves a gap
    values = np.logspace(-4, -2, 21)
    values[9:12] = np.nan
    drawn = is_curve(render_sparkline(np.arange(21), values))
    first, last = np.flatnonzero(drawn[:, 12]), np.flatnonzero(drawn[:, 187])
    assert first.size and last.size and first.mean() > last.mean() + 25  # image rows grow downwards
    assert not drawn[:, 95:105].any()  # the NaN steps 9..11 sit around x = 100


def test_health_view_updates_only_when_the_monitor_changed_and_clears(qtbot):
    model, monitor = trained_monitor(3, dead_first_layer=False)
    view = health_view(qtbot, monitor, model)
    assert not view.warning.isVisible()
    drawn = view._drawn_version
    view.model_changed(model)
    assert view._drawn_version == drawn
    message = "training diverged at step 4: the loss became nan"
    monitor.observe({"type": "error", "step": 4, "message": message}, model)
    view.model_changed(model)
    assert view.warning.isVisible() and "Training diverged at step 4" in view.warning.text()
    assert not view.plot.isHidden()
    view.set_monitor(None)
    assert "No training run" in view.status.text() and view._rows == {} and view.plot.isHidden()


# ------------------------------------------------------------------------------ kernel timeline

@pytest.fixture
def timeline():
    model = presets.build("tiny8x8", seed=2)
    tl = KernelTimeline.for_model(model, capacity=8, every=1)
    rng = np.random.default_rng(0)
    for step in range(1, 6):
        tl.push(step, {name: rng.standard_normal(shape).astype(np.float32) * step
                       for name, shape in tl.shapes.items()})
    return tl


def timeline_view(qtbot, tl):
    view = KernelTimelineView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    view.set_timeline(tl)
    return view


def test_scrubbing_shows_the_recorded_snapshot_with_the_kernel_view_layout(qtbot, timeline):
    view = timeline_view(qtbot, timeline)
    assert view.slider.maximum() == 5 and view.slider.value() == 5  # follows the newest
    view.layer.setCurrentIndex(view.layer.findText("conv2"))
    view.slider.setValue(2)
    step, kernels = timeline.kernels("conv2", 2)
    assert view.shown_step == step == 2 and "step 2" in view.step_label.text()
    np.testing.assert_array_equal(view.shown_kernels, kernels)
    mosaic, wrap = kernel_mosaic(kernels.shape)
    assert not wrap  # conv2 has 2 input channels: rows = output channel, columns = input channel
    np.testing.assert_array_equal(view.panel.image.image, fill_kernels(mosaic, wrap, kernels))
    # tile (out 3, in 1) holds kernel [:, :, 1, 3]
    r0, c0 = mosaic.tile_origin(3, 1)
    np.testing.assert_array_equal(view.panel.image.image[r0:r0 + 3, c0:c0 + 3], kernels[:, :, 1, 3])
    levels = view.panel.image.getLevels()
    assert levels[1] == -levels[0] == pytest.approx(timeline.max_abs("conv2"))  # one scale for all snapshots
    view.fixed.setChecked(False)
    assert view.panel.image.getLevels()[1] == pytest.approx(np.abs(kernels).max())
    x, drift = view.drift_curve.getData()
    np.testing.assert_array_equal(x, timeline.steps())
    np.testing.assert_allclose(drift, timeline.drift("conv2"))
    assert view.drift_marker.value() == 2


@pytest.mark.parametrize("size", [(900, 700), (1100, 900), (1400, 620)])
def test_the_drift_plot_and_its_step_labels_lie_inside_the_view(qtbot, size):
    """Sized by the height, the kernel panel left the drift plot's step axis 19 px below the edge."""
    model = presets.build("vgg7", seed=2)
    tl = KernelTimeline.for_model(model, capacity=8, every=1)
    for step in range(1, 4):
        tl.push(step, {name: np.full(shape, step, np.float32) for name, shape in tl.shapes.items()})
    view = timeline_view(qtbot, tl)
    view.resize(*size)
    qtbot.wait(50)  # the resize, then the panel refit it triggers
    bottom = view.drift_plot.getAxis("bottom").sceneBoundingRect().bottom()
    assert bottom <= view.plot.viewport().height()


class TrainingBetweenReads(KernelTimeline):
    """A timeline whose training thread records a snapshot right after each call of the method named
    ``racing`` returns its answer: the interleaving of a reader's two calls with a thinning, made
    deterministic."""

    racing: str | None = None

    def _trained(self, answer):
        step = int(KernelTimeline.steps(self)[-1]) + 1
        self.push(step, kernels_of(step, self.shapes))
        return answer

    def __len__(self):
        count = super().__len__()
        return self._trained(count) if self.racing == "__len__" else count

    def steps(self):
        steps = super().steps()
        return self._trained(steps) if self.racing == "steps" else steps


def kernels_of(step: int, shapes) -> dict[str, np.ndarray]:
    """Kernels all equal to ``step + 1`` (not 0: the drift from all-zero kernels is NaN)."""
    return {name: np.full(shape, step + 1, np.float32) for name, shape in shapes.items()}


def racing_timeline(count: int) -> TrainingBetweenReads:
    """``count`` snapshots (steps 0 .. count - 1) in a timeline of capacity 8."""
    tl = TrainingBetweenReads(KernelTimeline.for_model(presets.build("tiny8x8", seed=2)).shapes, 8, 1)
    for step in range(count):
        tl.push(step, kernels_of(step, tl.shapes))
    return tl


def test_a_thinning_between_the_views_reads_of_count_and_snapshot_shows_one_state(qtbot):
    """Snapshot 7 of 7 shown; the training thread records after each len() of a redraw: the first fills the
    timeline (8), the second thins it to 5 before the view asked for snapshot 7, an IndexError before
    the view read the count and the snapshot in one call."""
    tl = racing_timeline(7)
    view = timeline_view(qtbot, tl)
    assert view.slider.value() == 6
    tl.racing = "__len__"
    view._draw()
    tl.racing = None
    assert view.shown_step == int(view.shown_kernels.flat[0]) - 1
    assert view.step_label.text() == f"step {view.shown_step}   (snapshot 7 of 8)"


def test_a_snapshot_between_the_views_reads_of_steps_and_drift_leaves_one_curve(qtbot):
    """The drift plot's steps and drift came from two reads: 8 steps and 5 drifts after a thinning."""
    tl = racing_timeline(8)
    view = timeline_view(qtbot, tl)
    tl.racing = "steps"
    tl.push(8, kernels_of(8, tl.shapes))  # a redraw is due
    view._draw()
    tl.racing = None
    x, drift = view.drift_curve.getData()
    assert len(x) == len(drift) == len(tl)


def test_single_input_channel_kernels_wrap_into_a_grid():
    mosaic, wrap = kernel_mosaic((3, 3, 1, 32))
    assert wrap and (mosaic.rows, mosaic.cols) == (4, 8)
    w = np.arange(3 * 3 * 32, dtype=np.float32).reshape(3, 3, 1, 32)
    buffer = fill_kernels(mosaic, wrap, w)
    r0, c0 = mosaic.tile_origin(1, 2)  # filter 1 * 8 + 2 = 10
    np.testing.assert_array_equal(buffer[r0:r0 + 3, c0:c0 + 3], w[:, :, 0, 10])


def test_new_snapshots_are_followed_until_the_learner_scrubs_back(qtbot, timeline):
    view = timeline_view(qtbot, timeline)
    model = presets.build("tiny8x8", seed=2)
    timeline.push(6, {name: model.layer(name).params["w"] for name in timeline.shapes})
    view.model_changed(model)
    assert view.slider.value() == 6 and view.shown_step == 6
    view.slider.setValue(1)
    assert not view.follow.isChecked()
    timeline.push(7, {name: model.layer(name).params["w"] for name in timeline.shapes})
    view.model_changed(model)
    assert view.slider.value() == 1 and view.slider.maximum() == 7


def test_replay_runs_to_the_end_and_stops(qtbot, timeline):
    view = timeline_view(qtbot, timeline)
    assert view.slider.value() == view.slider.maximum()
    view.play.click()  # at the end: replay from the first snapshot
    assert view.play.isChecked() and view.slider.value() <= 1
    qtbot.waitUntil(lambda: not view.play.isChecked(), timeout=5000)
    assert view.slider.value() == view.slider.maximum() and view.shown_step == 5
    assert "Replay" in view.play.text()
    view.play.click()
    view.hide()  # nobody watching: playback stops
    assert not view.play.isChecked() and not view._timer.isActive()


def slider_handle(slider: QtWidgets.QSlider) -> QtCore.QRect:
    """Where the slider's handle is drawn, in its own pixels."""
    option = QtWidgets.QStyleOptionSlider()
    slider.initStyleOption(option)
    return slider.style().subControlRect(QtWidgets.QStyle.ComplexControl.CC_Slider, option,
                                         QtWidgets.QStyle.SubControl.SC_SliderHandle, slider)


def test_a_cleared_timeline_leaves_the_slider_at_the_start_and_play_for_the_next_run(qtbot, timeline):
    """After a Reset the empty, disabled slider kept its handle at the right end, where the cleared run's last
    snapshot had been, beside a "Replay" button (for nothing); and the replay had unticked Follow newest, so
    the next run's timeline stayed at its first snapshot while it trained."""
    view = timeline_view(qtbot, timeline)
    qtbot.mouseClick(view.play, QtCore.Qt.MouseButton.LeftButton)  # replayed to the end
    qtbot.waitUntil(lambda: not view.play.isChecked(), timeout=5000)
    assert slider_handle(view.slider).right() == view.slider.width() - 1 and "Replay" in view.play.text()
    assert not view.follow.isChecked()
    view.set_timeline(None)  # as Reset does
    assert not view.slider.isEnabled() and slider_handle(view.slider).left() == 0
    assert view.play.text() == "▶ Play" and not view.play.isEnabled()
    model = presets.build("tiny8x8", seed=2)
    nxt = KernelTimeline.for_model(model, capacity=8, every=1)  # the next run's, at its start
    view.set_timeline(nxt)
    nxt.push(1, {name: model.layer(name).params["w"] for name in nxt.shapes})
    view.model_changed(model)  # its first step: followed
    assert view.slider.value() == view.slider.maximum() == 1 and view.shown_step == 1


def test_export_data_names_the_drift_after_what_it_is_and_holds_every_layers(qtbot, timeline, tmp_path):
    """The drift plot was exported as …-plot-1.csv with columns "curve 1 x", "curve 1 y"."""
    import csv

    from app.export import export_view_data

    view = timeline_view(qtbot, timeline)
    written = export_view_data(view, tmp_path, "convscope-kernel-timeline")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(os.path.basename(p) for p in written) == [
        "convscope-kernel-timeline-kernel-drift.png", "convscope-kernel-timeline-kernels.csv",
        "convscope-kernel-timeline-kernels.png", "convscope-kernel-timeline.csv", "convscope-kernel-timeline.png"]
    with open(tmp_path / "convscope-kernel-timeline.csv", newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["step", "conv1 drift", "conv2 drift"]
    table = np.array(rows, dtype=np.float64)
    np.testing.assert_array_equal(table[:, 0], timeline.steps())
    np.testing.assert_array_equal(table[:, 1], timeline.drift("conv1"))  # the curve the plot draws
    np.testing.assert_array_equal(table[:, 1], view.drift_curve.getData()[1])
    np.testing.assert_array_equal(table[:, 2], timeline.drift("conv2"))


def test_empty_timeline_explains_itself(qtbot):
    view = timeline_view(qtbot, None)
    assert "No kernel snapshots yet" in view.caption.text() and not view.slider.isEnabled()
    assert not view.plot.isVisible()  # no empty mosaic or drift plot
    assert not view.layer.isEnabled() and view.layer.count() == 0  # no empty combo box to open
    view.set_timeline(KernelTimeline.for_model(presets.build("vgg7"), capacity=4))
    assert view.layer.isEnabled() and view.layer.count() == 4
    view.set_timeline(None)
    assert not view.layer.isEnabled()


def test_every_lab_view_has_its_object_name_and_explains_itself(qtbot):
    for cls, name in ((GradCheckView, "gradCheckView"), (GradientHealthView, "gradientHealthView"),
                      (KernelTimelineView, "kernelTimeline")):
        view = cls()
        qtbot.addWidget(view)
        assert view.objectName() == name
        assert len(view.toolTip()) > 60



def test_views_read_the_recorders_while_a_trainer_fills_them_on_another_thread(qtbot):
    """The wiring ARCHITECTURE.md describes: the trainer's events feed both recorders on the training
    thread while the GUI thread redraws; at the end the views show exactly what was recorded."""
    import threading

    from engine.trainer import TrainConfig, Trainer

    train, val = data.load_digits_8x8()
    model = presets.build("tiny8x8", seed=0)
    monitor = HealthMonitor(model, capacity=16)
    timeline = KernelTimeline.for_model(model, capacity=8, every=4)

    def on_event(event):
        monitor.observe(event, model)
        timeline.observe(event, model)

    trainer = Trainer(model, train, val, TrainConfig(preset="tiny8x8", epochs=15, batch_size=32, lr_conv=0.5,
                                                     lr_dense=0.5), on_event=on_event)
    health, kernels = health_view(qtbot, monitor, model), timeline_view(qtbot, timeline)
    thread = threading.Thread(target=trainer.run)
    thread.start()
    try:
        while thread.is_alive():
            health.model_changed(model)
            kernels.model_changed(model)
            qtbot.wait(5)
    finally:
        thread.join()
    health.model_changed(model)
    kernels.model_changed(model)
    history = monitor.history()
    assert history["step"][-1] > trainer.total_steps - monitor.stride and len(history["step"]) <= 16
    x, _ = health.row("dense1").ratio.curve_data()
    np.testing.assert_array_equal(x, history["step"])
    assert kernels.shown_step == timeline.steps()[-1] and kernels.slider.maximum() == len(timeline) - 1
    np.testing.assert_array_equal(kernels.shown_kernels, timeline.kernels(kernels.layer.currentText(), -1)[1])


def test_the_health_and_timeline_views_refuse_to_export_their_empty_placeholders(qtbot, tmp_path, timeline):
    """Before any run, File > Export wrote an all-black picture and a blank mosaic, and reported success."""
    model, monitor = trained_monitor(3, dead_first_layer=False)
    empty_health = health_view(qtbot, None, model)
    empty_timeline = timeline_view(qtbot, None)
    for view, what in ((empty_health, "no training step has been measured"),
                       (empty_timeline, "no kernel snapshot has been recorded")):
        with pytest.raises(ValueError, match=f"^nothing to export yet: {what}$"):
            view.export_png(str(tmp_path / "view.png"))
    assert list(tmp_path.iterdir()) == []
    health_view(qtbot, monitor, model).export_png(str(tmp_path / "health.png"))
    timeline_view(qtbot, timeline).export_png(str(tmp_path / "timeline.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["health.png", "timeline.png"]


def test_the_tables_gradients_are_written_with_a_real_minus_sign(qtbot, narrow_vgg7):
    """"-1.234568e-03" had hyphens, where the app's other texts write the minus sign (U+2212)."""
    view = check_view(qtbot, narrow_vgg7)
    row = gradcheck.GradCheckRow("conv1.w", (0, 0, 0, 0), -1.2345678e-3, -1.2345679e-3,
                                 gradcheck.relative_error(-1.2345678e-3, -1.2345679e-3), gradcheck.EPS, False)
    view._append_row(row)
    assert [view.table.item(0, column).text() for column in (2, 3)] == ["\u22121.234568e\u221203",
                                                                         "\u22121.234568e\u221203"]
    assert "-" not in view.table.item(0, 4).text()  # the relative error's exponent too, as its neighbours'


def test_a_failing_relative_error_of_one_reads_as_an_error_not_a_count(qtbot, narrow_vgg7):
    """The summary wrote "conv2.w 1 ✗ FAIL" (read as "1 failure") beside "conv1.w 3e-09 ✓ pass"."""
    view = check_view(qtbot, narrow_vgg7)
    view._rows = [gradcheck.GradCheckRow("conv1.w", (0, 0, 0, 0), 1.0, 1.0 + 6e-9, 3e-9, gradcheck.EPS, False),
                  gradcheck.GradCheckRow("conv2.w", (0, 0, 0, 0), 1e-3, 0.0, 1.0, gradcheck.EPS, False)]
    for row in view._rows:
        view._append_row(row)
    view._show_summary(True)
    text = view.summary.text()
    assert text.startswith("Relative error per parameter: ")
    assert "<b>conv1.w</b> 3.00e\u221209 ✓ pass" in text and "<b>conv2.w</b> 1.00e+00 ✗ FAIL" in text
    assert table_column(view, 4) == ["3.00e\u221209", "1.00e+00"]  # the table's column writes them alike


def test_the_latest_value_and_its_range_write_exponents_alike():
    """The value (colour_scale.fmt) and the range beside it (its own format) in one label: both with U+2212."""
    text = GradientHealthView._value_html(2.5e-5, np.array([1e-5, 2.5e-5]))
    assert "2.5e\u221205" in text and "range 1e\u221205 … 2.5e\u221205" in text and "e-" not in text
