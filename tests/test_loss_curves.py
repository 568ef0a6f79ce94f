"""The loss curves of a long run: drawn from a bounded, spike-preserving reduction of the series."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.loss import LossView, PeakEnvelope
from plot_reading import assert_labels_apart, drawn_points, log_label_value, tick_labels
from engine.model import Sequential
from engine.presets import build


def brute_force(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each bucket of ``width`` points (the last may be shorter): its lowest and highest point, the
    earlier first (both the point itself when width is 1)."""
    xs, ys = [], []
    for start in range(0, len(y), width):
        bx, by = x[start:start + width], y[start:start + width]
        low, high = int(np.argmin(by)), int(np.argmax(by))
        picks = [low] if width == 1 else sorted([low, high], key=lambda i: bx[i])
        xs += [bx[i] for i in picks]
        ys += [by[i] for i in picks]
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize("chunks", ["one", "thirty", "random"])
def test_envelope_is_each_buckets_extremes_however_the_points_arrive(chunks):
    rng = np.random.default_rng(3)
    n = 5000 + 77  # not a multiple of any bucket width: a partly filled bucket at the end
    x = np.arange(1, n + 1, dtype=np.float64)
    y = rng.standard_normal(n)
    env = PeakEnvelope(max_buckets=64)
    if chunks == "one":
        bounds = [0, n]
    elif chunks == "thirty":
        bounds = list(range(0, n, 30)) + [n]
    else:
        bounds = [0, *np.sort(rng.choice(np.arange(1, n), 200, replace=False)), n]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        env.append(x[start:stop], y[start:stop])
    assert len(env) == n
    assert env.width == 128  # 5077 points in at most 64 buckets: width doubled from 1 to 128
    got_x, got_y = env.points()
    want_x, want_y = brute_force(x, y, env.width)
    np.testing.assert_array_equal(got_x, want_x)
    np.testing.assert_array_equal(got_y, want_y)
    assert len(got_x) <= 2 * 64 + 2


def test_short_series_are_drawn_point_for_point_and_clear_starts_over():
    env = PeakEnvelope(max_buckets=8)
    env.append(np.arange(5.0), np.array([3.0, 1.0, 4.0, 1.0, 5.0]))
    assert env.width == 1
    np.testing.assert_array_equal(env.points()[1], [3.0, 1.0, 4.0, 1.0, 5.0])
    env.append(np.arange(5.0, 20.0), np.zeros(15))
    assert env.width == 4 and len(env) == 20
    env.clear()
    assert len(env) == 0 and env.width == 1 and env.points()[0].size == 0
    with pytest.raises(ValueError, match="even"):
        PeakEnvelope(max_buckets=7)


def test_loss_view_draws_a_long_run_from_a_bounded_envelope_and_keeps_every_loss(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    n, batch = 60_000, 30
    losses = 2.0 * np.exp(-np.arange(n) / 10_000) + 0.3 * rng.random(n)
    losses[12_345] = 9.0  # one spike: must survive the reduction
    for start in range(0, n, batch):
        view.append_steps(np.arange(start + 1, start + batch + 1), losses[start:start + batch])
    np.testing.assert_array_equal(view.losses, losses)  # the full series is kept (overlays, export)
    for curve in (view.step_curve, view.smooth_curve):
        x, y = curve.getOriginalDataset()
        assert len(x) <= 2 * PeakEnvelope().max_buckets + 2
        assert np.all(np.diff(x) >= 0)  # ordered, as clip-to-view needs
    x, y = view.step_curve.getOriginalDataset()
    assert y.max() == 9.0 and x[np.argmax(y)] == 12_346 and y.min() == losses.min()
    overlay = view.add_overlay("previous run", np.arange(1, n + 1), losses)
    assert len(overlay.getOriginalDataset()[0]) <= 2 * PeakEnvelope().max_buckets + 2
    assert overlay.getOriginalDataset()[1].max() == 9.0


def wheel(widget: QtWidgets.QWidget, steps: int) -> None:
    """Turn the mouse wheel ``steps`` notches (positive: away from the user) over the widget's centre."""
    centre = QtCore.QPointF(widget.rect().center())
    event = QtGui.QWheelEvent(centre, widget.mapToGlobal(centre), QtCore.QPoint(), QtCore.QPoint(0, 120 * steps),
                              QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier,
                              QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(widget, event)


def test_y_range_moves_rarely_keeps_every_loss_in_view_and_yields_to_the_user(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    plot = view.loss_plot.getPlotItem()
    box = plot.getViewBox()
    moves = []
    box.sigYRangeChanged.connect(lambda *_: moves.append(1))
    rng = np.random.default_rng(1)
    n, batch = 3000, 10
    losses = 2.3 * np.exp(-np.arange(n) / 800) + 0.2 * rng.random(n)  # falling, noisy: new lows often
    for start in range(0, n, batch):
        view.append_steps(np.arange(start + 1, start + batch + 1), losses[start:start + batch])
        view.loss_plot.grab()  # a repaint, as the window's would follow
        low, high = box.viewRange()[1]
        assert low <= losses[:start + batch].min() and losses[:start + batch].max() <= high
    assert 1 <= len(moves) <= 40, len(moves)  # of 300 updates (35); fitting the data exactly moved it 170 times

    # The user zooms in with the wheel: the range is theirs, whatever data come.
    fitted = box.viewRange()[1]
    wheel(view.loss_plot.viewport(), 3)
    zoomed = box.viewRange()[1]
    assert zoomed[1] - zoomed[0] < 0.9 * (fitted[1] - fitted[0])
    view.append_steps(np.array([n + 1]), np.array([9.0]))
    view.loss_plot.grab()
    assert box.viewRange()[1] == zoomed
    # Auto-range asked for again (the plot's "A" button): every loss in view, and followed from then on.
    plot.autoBtnClicked()
    view.append_steps(np.array([n + 2]), np.array([12.0]))
    view.loss_plot.grab()
    low, high = box.viewRange()[1]
    assert low <= losses.min() and 12.0 <= high
    assert box.autoRangeEnabled()[1] is False  # the steady range again, not pyqtgraph's exact fit


def test_log_scale_keeps_the_runs_frame_and_every_loss_in_view(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    view.set_run_extent(7100, 100)
    losses = np.geomspace(2.3, 0.002, 600)
    view.append_steps(np.arange(1, 601), losses)
    box = view.loss_plot.getPlotItem().getViewBox()
    qtbot.mouseClick(view.log_y, QtCore.Qt.MouseButton.LeftButton)
    view.loss_plot.grab()
    (x_low, x_high), (y_low, y_high) = box.viewRange()
    assert x_low <= 0 and 7100 <= x_high < 7500  # the whole run's steps, not just those done
    assert y_low <= np.log10(losses.min()) and np.log10(losses.max()) <= y_high  # log10 coordinates
    assert y_high - y_low < 2 * (np.log10(2.3) - np.log10(0.002))


def test_the_empty_accuracy_plot_has_a_percentage_scale_before_and_after_a_run(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    box = view.epoch_plot.getPlotItem().getViewBox()

    def percent_scale():  # not pyqtgraph's 0..1 under an "accuracy (%)" label; room for the "100" label
        low, high = box.viewRange()[1]
        return -5 < low < 0 and 100 < high < 105

    assert percent_scale()
    view.append_epoch(10, 0.5, 0.6, 0.91, 0.93)
    view.append_epoch(20, 0.3, 0.4, 0.95, 0.96)
    low, high = box.viewRange()[1]
    assert low <= 91 and 96 <= high and high - low < 50  # fitted to the accuracies
    view.clear()
    assert percent_scale()


def test_the_step_and_epoch_axes_number_whole_steps_and_epochs_only(qtbot):
    """Before any training the empty plots read "step 0.1 … 0.9" and "epoch 0.1 … 0.9", and a short run
    ("previous run" after a Reset, a session of a few steps) "step 0.5 … 2.5", "epoch 0.6 … 1.4"."""
    view = LossView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)

    def labels(plot):
        plot.grab()  # laid out and ranged as the window shows it
        return [text for _, text in tick_labels(plot, "bottom")]

    assert labels(view.loss_plot) == [] and labels(view.epoch_plot) == []  # an empty frame: no numbers yet
    view.append_steps(np.arange(1, 4), np.array([2.3, 2.1, 1.9]))
    view.append_epoch(3, 2.1, 2.0, 0.30, 0.35)
    assert sorted(labels(view.loss_plot), key=int) == ["0", "1", "2", "3"]
    assert labels(view.epoch_plot) == ["1"]


def test_a_sudden_jump_is_brought_into_view_without_waiting_for_a_repaint(qtbot):
    """A diverging run: tiny losses, then one of 27. pyqtgraph's own data bounds are clipped against
    the current view until a repaint, and no more points come after a divergence."""
    view = LossView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    box = view.loss_plot.getPlotItem().getViewBox()
    view.append_steps(np.array([1]), np.array([7.5e-4]))
    view.append_steps(np.array([2]), np.array([27.3]))
    low, high = box.viewRange()[1]
    assert low <= 7.5e-4 and 27.3 <= high
    view.log_y.setChecked(True)  # on a log axis the range is in decades
    low, high = box.viewRange()[1]
    assert low <= np.log10(7.5e-4) and np.log10(27.3) <= high


def test_a_single_step_shows_its_point_in_a_readable_range(qtbot):
    """After one Step the plot looked empty: a one-point line draws nothing and the y axis spanned
    2.3491-2.3493."""
    view = LossView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    view.append_steps(np.array([1]), np.array([2.3492]))
    assert view.smooth_curve.opts["symbol"] == "o"  # a dot marks the lone point
    low, high = view.loss_plot.getPlotItem().getViewBox().viewRange()[1]
    assert low < 2.3492 < high and high - low >= 0.4
    view.append_steps(np.array([2]), np.array([2.1]))
    assert view.smooth_curve.opts["symbol"] is None  # a line from the second point on
    view.clear()
    view.append_steps(np.array([1]), np.array([0.5]))
    assert view.smooth_curve.opts["symbol"] == "o"
    view.clear()
    view.set_log_y(True)  # on a log axis the range is in decades: near a loss of 1, log10 is ~0
    view.append_steps(np.array([1]), np.array([1.0004]))
    low, high = view.loss_plot.getPlotItem().getViewBox().viewRange()[1]
    assert high - low >= 0.2


def test_the_loss_axis_names_the_models_loss_in_plain_numbers(qtbot, make_window, tmp_path):
    """tiny8x8's L2 cost of ~0.12 read "loss (x0.001)" with ticks 110..130; the axis named no loss."""
    window = make_window()
    axis = window.loss_view.loss_plot.getPlotItem().getAxis("left")
    assert axis.labelText == "cross-entropy loss"  # the pretrained VGG-7
    path = str(tmp_path / "tiny.npz")
    build("tiny8x8").save(path)
    window.open_file(path)
    qtbot.waitUntil(lambda: axis.labelText == "L2 cost (½ squared error)", timeout=10_000)
    window.loss_view.append_steps(np.arange(1, 101), np.linspace(0.13, 0.11, 100))
    qtbot.wait(50)
    assert axis.autoSIPrefixScale == 1.0 and "x0.001" not in axis.labelString()


def test_the_hint_after_a_reset_stays_whole_in_the_middle_of_the_previous_runs_range(qtbot, make_window):
    """The previous run's curve sets the empty plot's range after a Reset (steps 1..3 here, 1..300 after a
    longer run), and the hint, kept at x = 0.5, was cut in half by the y axis: "ce) to train:"."""
    window = make_window()
    window.show_view("Loss")
    view = window.loss_view
    for size in (1, 2, 3):
        qtbot.mouseClick(window.panel.step_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: view.steps.size == size, timeout=30_000)
    qtbot.mouseClick(window.panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)
    qtbot.mouseClick(window.panel.reset_button, QtCore.Qt.MouseButton.LeftButton)
    box = view.loss_plot.getPlotItem().getViewBox()
    qtbot.waitUntil(lambda: box.viewRange()[0][0] > 0.5, timeout=5000)  # the previous run's steps set the range
    for log_y in (False, True):
        view.log_y.setChecked(log_y)
        view.loss_plot.grab()  # laid out and ranged as the window shows it
        area, hint = box.sceneBoundingRect(), view.hint.sceneBoundingRect()
        assert view.hint.isVisible() and view.has_overlay("previous run")
        assert area.contains(hint), (log_y, area, hint)
        assert abs(hint.center().x() - area.center().x()) < 2 and abs(hint.center().y() - area.center().y()) < 2


def bars(view: LossView) -> list[tuple[float, float, float]]:
    """The mean training losses as drawn: ``(from step, to step, loss)`` per epoch."""
    x, y = view.train_loss_curve.getOriginalDataset()  # the points (start, loss), (end, loss) of each
    assert np.array_equal(y[0::2], y[1::2])
    return list(zip(x[0::2], x[1::2], y[0::2]))


def test_an_epochs_mean_training_loss_spans_the_steps_it_averages(qtbot):
    """Drawn at the epoch's last step, epoch 1's mean of 0.61 sat by a per-step loss of 0.25 and a
    validation loss of 0.29: "training loss twice the validation loss"."""
    view = LossView()
    qtbot.addWidget(view)
    losses = np.concatenate([np.linspace(2.3, 0.25, 71), np.full(71, 0.15)])
    view.append_steps(np.arange(1, 143), losses)
    view.append_epoch(71, losses[:71].mean(), 0.29, 0.81, 0.90)
    view.append_epoch(142, losses[71:].mean(), 0.14, 0.95, 0.96)
    assert bars(view) == [(0, 71, losses[:71].mean()), (71, 142, losses[71:].mean())]  # each over its steps
    np.testing.assert_array_equal(view.val_loss_curve.getOriginalDataset()[0], [71, 142])  # measured there
    legend = [label.text for _, label in view.loss_plot.getPlotItem().legend.items]
    assert "train loss (mean over the epoch)" in legend and "val loss (end of epoch)" in legend


def test_the_bars_of_a_run_continued_with_new_settings_begin_where_it_began(qtbot, make_window, tmp_path):
    """Stopped at step 20, in its second epoch, the first run's steps 17-20 belong to no finished epoch;
    the run continued from there (batch 32: 8 steps an epoch) has its first epoch over steps 21-28, also
    when its session is opened again."""
    window = make_window()
    panel = window.panel
    panel.continue_check.setChecked(False)
    panel.epochs.setValue(2)
    panel.batch_size.setValue(16)  # 16 steps an epoch on the 250 images
    for n in range(1, 21):
        qtbot.mouseClick(panel.step_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.loss_view.steps.size == n, timeout=30_000)
    qtbot.mouseClick(panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)
    panel.continue_check.setChecked(True)
    panel.epochs.setValue(1)
    panel.batch_size.setValue(32)
    qtbot.mouseClick(panel.start_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.worker is None, timeout=120_000)
    losses = window.loss_view.losses
    assert losses.size == 28 and window.loss_view.epoch_count == 2
    shown = bars(window.loss_view)
    assert [(start, end) for start, end, _ in shown] == [(0, 16), (20, 28)]
    images = [32] * 7 + [250 - 7 * 32]  # the epoch's last batch is smaller: the mean is per image
    assert shown[1][2] == pytest.approx(np.average(losses[20:], weights=images))  # of the steps under the bar
    path = str(tmp_path / "continued.convscope.npz")
    assert window.save_session(path)
    window.loss_view.clear()
    assert window.open_session(path)
    assert bars(window.loss_view) == shown


def test_the_smoothed_loss_starts_again_where_a_divergence_rescue_rolled_the_weights_back(
        qtbot, make_window, monkeypatch):
    """After the rollback the loss was back to ~1 within a few steps, the smoothed line near 12 twenty
    steps on: it carried the exploded losses."""
    window = make_window()
    window.panel.epochs.setValue(20)
    real, calls = Sequential.loss_and_grads, []

    def loss_and_grads(model, x, labels):  # training losses 3-5 explode, the 6th is NaN: diverged
        loss, out = real(model, x, labels)
        if threading.get_ident() == threading.main_thread().ident:  # a view computing on the GUI thread
            return loss, out
        calls.append(1)
        return {3: 60.0, 4: 80.0, 5: 90.0, 6: float("nan")}.get(len(calls), loss), out

    monkeypatch.setattr(Sequential, "loss_and_grads", loss_and_grads)
    qtbot.mouseClick(window.panel.start_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.panel.divergence_banner.isVisible, timeout=30_000)
    view = window.loss_view
    assert view.steps.tolist() == [1, 2, 3, 4, 5]
    qtbot.mouseClick(window.panel.lower_lr_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.steps.size >= 10, timeout=30_000)
    qtbot.mouseClick(window.panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)
    steps, smoothed = view.smooth_curve.getOriginalDataset()
    after = steps >= 6
    assert smoothed[after][0] == pytest.approx(view.losses[5])  # the first step after it: its own loss
    assert smoothed[after].max() < 5  # not the ~60 the exploded steps 3-5 left in the average
    assert smoothed[~after].max() > 50  # before it, they stay in
    (line,) = view._restarts
    assert line.value() == 5.5 and line.label.toPlainText() == "weights of step 0 restored"
    view.clear()
    assert not view._restarts and line.scene() is None


def marker_clearance_px(view: LossView) -> float:
    """The least distance, in pixels, from a marker's centre in the accuracy plot to its top or bottom edge."""
    box = view.epoch_plot.getPlotItem().getViewBox()
    bottom, top = box.viewRange()[1]
    distances = []
    for curve in (view.train_acc_curve, view.val_acc_curve):
        y = curve.getOriginalDataset()[1]
        distances.append(np.minimum(y - bottom, top - y) * box.height() / (top - bottom))
    return float(np.min(np.concatenate(distances)))


def test_accuracy_markers_are_never_cut_by_the_plots_edge(qtbot):
    """After 4 epochs the range was [79.95, 98.63] with a point at 98.6: its dot cut in half; after one
    epoch in a small window the training accuracy's dot sat on the x axis."""
    view = LossView()
    qtbot.addWidget(view)
    view.resize(600, 430)  # the accuracy plot at its least height
    view.show()
    qtbot.waitExposed(view)
    view.set_run_extent(284, 4)
    box = view.epoch_plot.getPlotItem().getViewBox()

    def resize(width, height):  # and wait for the plots' new layout
        before = box.height()
        view.resize(width, height)
        qtbot.waitUntil(lambda: box.height() != before, timeout=5_000)

    whole = view.train_acc_curve.opts["symbolSize"] / 2 + 1 + 2  # half a dot, its outline, 2 px of air
    epochs = [(0.6077, 0.2889, 0.69, 0.909), (0.1738, 0.1474, 0.9491, 0.962), (0.0834, 0.0964, 0.9778, 0.968),
              (0.0501, 0.0915, 0.986, 0.97)]
    for k, metrics in enumerate(epochs, start=1):
        view.append_steps(np.arange(71 * k - 70, 71 * k + 1), np.full(71, metrics[0]))
        view.append_epoch(71 * k, *metrics)
        assert marker_clearance_px(view) >= whole, k
        if k == 1:
            resize(1000, 700)
    resize(600, 430)  # a smaller plot: the same room in pixels is more of its range
    assert marker_clearance_px(view) >= whole


def shown_loss_view(qtbot, width=600, height=430) -> LossView:
    view = LossView()
    qtbot.addWidget(view)
    view.resize(width, height)
    view.show()
    qtbot.waitExposed(view)
    return view


def view_with_a_run(qtbot, width: int, height: int, log_y: bool) -> LossView:
    """A shown LossView of ``width`` x ``height`` px (682 x 590: as the Training tab has it at 1024x700) with a
    ten-epoch run falling from 2.3 to 0.05 and the run before it as "previous run"."""
    view = shown_loss_view(qtbot, width, height)
    rng = np.random.default_rng(0)
    steps = np.arange(1, 1201)
    losses = 2.3 * np.exp(-steps / 250) + 0.03 + 0.08 * rng.random(steps.size) * np.exp(-steps / 600)
    view.set_run_extent(1200, 10)
    view.add_overlay("previous run", steps, 2.3 * np.exp(-steps / 500) + 0.1 + 0.1 * rng.random(steps.size))
    view.append_steps(steps, losses)
    for epoch in range(1, 11):
        end = 120 * epoch
        view.append_epoch(end, losses[end - 120:end].mean(), 1.1 * losses[end - 1], 0.5 + 0.045 * epoch,
                          0.52 + 0.044 * epoch)
    view.log_y.setChecked(log_y)
    view.loss_plot.grab()  # laid out and ranged as the window shows it
    return view


def test_log_scale_labels_between_powers_of_ten_do_not_pile_up(qtbot):
    """At 1024x700 pyqtgraph labelled every one of 0.2 … 0.9 and 0.02 … 0.09: "0.9 0.8 0.7" touched below "1"."""
    view = view_with_a_run(qtbot, 682, 590, log_y=True)
    assert 350 < view.loss_plot.height() < 450
    values = [log_label_value(text) for _, text in tick_labels(view.loss_plot)]
    assert {0.1, 1.0} <= set(values) and len(values) >= 5, values  # powers of ten and values between them
    assert_labels_apart(view.loss_plot)


def test_the_empty_loss_plot_on_a_log_scale_is_labelled_a_decade_either_side_of_one(qtbot):
    """Its linear 0..1 read 1 to 10 on the log axis, labelled 2 … 9 with no power of ten but 10¹ at the top."""
    view = LossView()
    qtbot.addWidget(view)
    box = view.loss_plot.getPlotItem().getViewBox()
    for clear_first in (False, True):  # ticked on the empty plot; a run cleared with the box ticked
        if clear_first:
            view.append_steps(np.array([1, 2]), np.array([2.3, 2.1]))
            view.clear()
        else:
            view.log_y.setChecked(True)
        values = [log_label_value(text) for _, text in tick_labels(view.loss_plot)]
        assert {0.1, 1.0, 10.0} <= set(values), values
        low, high = box.viewRange()[1]
        assert view.hint.isVisible() and low < view.hint.pos().y() < high
    view.log_y.setChecked(False)
    low, high = box.viewRange()[1]
    assert low < 0 < view.hint.pos().y() < 1 < high


@pytest.mark.parametrize("width, height", [(682, 590), (1578, 780)])  # the Training tab at 1024x700, 1920x1080
@pytest.mark.parametrize("log_y", [False, True])
def test_the_legends_sit_above_the_data_and_leave_every_curve_in_sight(qtbot, width, height, log_y):
    """In the data area's corners they covered curves: the last epochs' accuracies at 1024x700, and any loss
    passing the top right corner (a previous run that learned slowly)."""
    view = view_with_a_run(qtbot, width, height, log_y)
    for plot, entries in ((view.loss_plot, 5), (view.epoch_plot, 2)):
        item = plot.getPlotItem()
        legend, data_area = item.legend, item.getViewBox().sceneBoundingRect()
        assert len(legend.items) == entries and legend.isVisible()
        legend_rect = legend.sceneBoundingRect()
        assert legend_rect.bottom() <= data_area.top(), plot.objectName()
        # whole, in sight, and beside the value axis' labels, not over them
        assert plot.rect().contains(plot.mapFromScene(legend_rect).boundingRect()), plot.objectName()
        assert legend_rect.left() >= item.getAxis("left").sceneBoundingRect().right(), plot.objectName()
        if width > 1500:  # room for all its entries in one row
            assert legend.layout.rowCount() == 1, plot.objectName()
        for curve in item.listDataItems():
            hidden = [p for p in drawn_points(curve) if legend_rect.contains(QtCore.QPointF(*p))]
            assert not hidden, (plot.objectName(), curve.name(), len(hidden))


def test_the_empty_plots_legends_show_the_markers_in_their_curves_colours(qtbot):
    """pyqtgraph styles markers when they first have points: the legend drew them grey-blue until then."""
    view = LossView()
    qtbot.addWidget(view)
    for curve in (view.val_loss_curve, view.train_acc_curve, view.val_acc_curve):
        colour = curve.opts["pen"].color()
        assert curve.scatter.opts["brush"].color() == colour, curve.name()
        assert curve.scatter.opts["pen"].color() == colour, curve.name()


@pytest.mark.parametrize("direction", [1, -1])
def test_a_new_high_or_low_inside_the_old_margin_gets_room_for_its_marker_too(qtbot, direction):
    """A validation accuracy that drifts a little further each epoch (by 0.2, 0.4, ... points away from
    the training accuracy) lands inside the range's margin: the range must still move, so that the new
    extreme's marker is not cut by the plot's edge."""
    view = shown_loss_view(qtbot)
    view.set_run_extent(71 * 10, 10)
    whole = view.train_acc_curve.opts["symbolSize"] / 2 + 1 + 2  # half a dot, its outline, 2 px of air
    for k in range(1, 11):
        view.append_steps(np.arange(71 * k - 70, 71 * k + 1), np.full(71, 1.0))
        view.append_epoch(71 * k, 1.0, 1.0, 0.5, 0.5 + direction * (0.1 + 0.001 * k * (k + 1)))
        assert marker_clearance_px(view) >= whole, k


def test_markers_keep_their_room_when_the_plot_is_made_smaller_without_new_data(qtbot):
    view = shown_loss_view(qtbot, 600, 1400)
    box = view.epoch_plot.getPlotItem().getViewBox()
    whole = view.train_acc_curve.opts["symbolSize"] / 2 + 1 + 2
    for k, accuracy in enumerate((0.69, 0.95, 0.978, 0.986), start=1):
        view.append_steps(np.arange(71 * k - 70, 71 * k + 1), np.full(71, 1.0))
        view.append_epoch(71 * k, 1.0, 1.0, accuracy, accuracy - 0.01)
    tall = box.height()
    view.resize(600, 430)
    qtbot.waitUntil(lambda: box.height() < tall / 2, timeout=5_000)
    assert marker_clearance_px(view) >= whole


def test_the_labels_of_rescues_a_few_steps_apart_do_not_cover_each_other(qtbot):
    view = shown_loss_view(qtbot, 900, 600)
    view.set_run_extent(40, 1)
    labels = []
    for rescue in range(4):  # four rescues, two steps apart
        view.append_steps(np.arange(2 * rescue + 1, 2 * rescue + 3), np.full(2, 1.0))
        view.restart_smoothing(f"weights of step {2 * rescue} restored")
        labels.append(view._restarts[-1].label)
    box = view.loss_plot.getPlotItem().getViewBox()
    for size in ((900, 600), (900, 330)):  # and in a shorter plot, where a fixed share of its height was too little
        tall = box.height()
        view.resize(*size)
        qtbot.waitUntil(lambda: box.height() != tall or size == (900, 600), timeout=5_000)

        def apart():
            rects = [label.sceneBoundingRect() for label in labels]
            return not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])

        qtbot.waitUntil(apart, timeout=2_000)  # once the plot's new size has reached the labels
        assert all(label.isVisible() for label in labels), size


def test_another_runs_overlay_lies_beneath_the_current_runs_curves(qtbot):
    """The magenta "previous run" overlay, added after the current run's curves, was drawn on top of them
    and hid the live per-step trace."""
    view = LossView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    losses = np.linspace(2.3, 0.5, 50)
    view.append_steps(np.arange(1, 51), losses)
    overlay = view.add_overlay("previous run", np.arange(1, 51), losses)  # the same points: one hides the other
    for curve in (view.step_curve, view.smooth_curve, view.val_loss_curve):
        assert overlay.zValue() < curve.zValue()
    stacked = view.loss_plot.scene().items(QtCore.Qt.SortOrder.DescendingOrder)  # topmost first
    assert stacked.index(view.step_curve.curve) < stacked.index(overlay.curve)
    assert stacked.index(view.smooth_curve.curve) < stacked.index(overlay.curve)
