"""The whole product in one window, driven like a user (pytest-qt, offscreen): the views are wired to
each other and to training, sessions reopen exactly, and closing leaves no thread behind.

Small data (250 training / 50 validation images) and short runs keep each test to seconds.
"""
import csv
import errno
import gc
import os
import time

import numpy as np
import pytest
import shiboken6
from PySide6 import QtCore, QtWidgets

from app import export
from app.main_window import MainWindow
from app.views.drawing_pad import replay_strokes
from engine import trainer as trainer_module
from engine.model import ModelFileError, Sequential
from engine.session import open_session

LEFT = QtCore.Qt.MouseButton.LeftButton
CONTRACT = ("startButton", "pauseButton", "stepButton", "stopButton", "lossPlot", "kernelView",
            "featureMapView", "poolingView", "convStepper", "drawingPad", "predictedDigit", "probabilityBars",
            "experimentsPanel", "gradCheckView", "gradientHealthView", "kernelTimeline", "evaluationView")
# A slightly slanted "1" in pad pixels, drawn as one drag.
ONE = [np.array([(160 + 0.25 * i, 60 + 10 * i) for i in range(23)])]


def running_qthreads() -> list[str]:
    """Every QThread with a Python wrapper that is still running (workers, background tasks). type(), not
    isinstance(): isinstance reads ``__class__``, which some of torch's deprecated module objects warn on."""
    return [t.objectName() or repr(t) for t in gc.get_objects()
            if issubclass(type(t), QtCore.QThread) and shiboken6.isValid(t) and t.isRunning()]


def click(qtbot, widget) -> None:
    assert widget.isEnabled(), f"{widget.objectName()} is disabled"
    qtbot.mouseClick(widget, LEFT)


def loss_curve(window) -> tuple[np.ndarray, np.ndarray]:
    """The per-step loss as plotted (all points, not the downsampled ones drawn)."""
    plot = window.findChild(QtWidgets.QWidget, "lossPlot")
    x, y = plot.getPlotItem().listDataItems()[0].getOriginalDataset()
    return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))


def train_one_short_run(qtbot, window, epochs=1, batch=16) -> None:
    """A fresh run of ``epochs`` on the 250 images (16 steps per epoch at batch 16), to its end."""
    panel = window.panel
    panel.continue_check.setChecked(False)
    panel.epochs.setValue(epochs)
    panel.batch_size.setValue(batch)
    click(qtbot, panel.start_button)
    qtbot.waitUntil(lambda: window.worker is None, timeout=120_000)


def shown_input(view) -> np.ndarray | None:
    """The sample the feature-map view draws: its "input" panel's values (H, W, C)."""
    panel = view.panels.get("input")
    return None if panel is None else panel.values


def assert_sample_reached_views(qtbot, window, x, label):
    """``x`` (with ``label``) is the sample of the feature-map, pooling and conv-stepper views."""
    assert window.current_title() == "Feature maps"
    maps = window.views["Feature maps"]
    qtbot.waitUntil(lambda: shown_input(maps) is not None and np.array_equal(shown_input(maps), x),
                    timeout=30_000)
    pooling = window.views["Pooling"]
    np.testing.assert_array_equal(pooling._x, x)  # the sample it computes from when shown
    assert pooling._label == label
    stepper_x, stepper_label = window.views["Conv stepper"].live.current  # its "current sample"
    np.testing.assert_array_equal(stepper_x, x)
    assert stepper_label == label


def test_every_contract_object_name_is_in_the_window(qtbot, tmp_path):
    # MainWindow() as the contract says, with no arguments; its QSettings go to a scratch folder.
    QtCore.QSettings.setPath(QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Scope.UserScope,
                             str(tmp_path))
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    try:
        for name in CONTRACT:
            assert window.findChild(QtWidgets.QWidget, name) is not None, name
        # Each view is reachable: its group's tab, then its own tab, or the View menu's entry.
        menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
        entries = {a.text(): a for a in menu.actions()}
        for title, view in window.views.items():
            entries[title].trigger()
            assert window.current_view() is view and view.isVisible(), title
        assert list(window.groups) == ["Training", "Inside the network", "Learning lab"]
    finally:
        window.close()


def test_look_inside_from_the_pad_reaches_the_sample_views(qtbot, make_window):
    window = make_window()
    window.show_view("Conv stepper")
    window.show_view("Drawing pad")
    click(qtbot, window.panel.reset_button)  # new weights while the stepper is hidden
    pad = window.views["Drawing pad"]
    replay_strokes(pad.canvas, ONE)
    qtbot.waitUntil(pad.look_button.isEnabled, timeout=30_000)
    x = pad.network_input()
    click(qtbot, pad.look_button)
    assert_sample_reached_views(qtbot, window, x, None)
    # The stepper switched to the live network and, once shown, traces the drawing through the
    # weights of now (it got them before its own show event), not the ones from before the reset.
    stepper = window.views["Conv stepper"]
    window.show_view("Conv stepper")
    assert stepper.live.model is window.display_model
    assert "on the current sample" in stepper.note.text() and "changed since" not in stepper.note.text()
    np.testing.assert_array_equal(stepper.trace.x, x.astype(np.float64))  # (H, W, C_in) in float64


def test_a_misclassified_thumbnail_reaches_the_sample_views(qtbot, make_window):
    window = make_window()
    view = window.views["Evaluation"]
    with qtbot.waitSignal(view.evaluated, timeout=120_000):
        window.show_view("Evaluation")  # the window's 50 held-out images first
    with qtbot.waitSignal(view.evaluated, timeout=120_000):  # the bundled 500: some mistakes to click
        view.dataset_combo.setCurrentIndex(view.dataset_combo.findText("Bundled:", QtCore.Qt.MatchFlag.MatchStartsWith))
    confusion = view.result.evaluation.confusion.copy()
    np.fill_diagonal(confusion, 0)
    true, predicted = np.unravel_index(int(confusion.argmax()), confusion.shape)
    assert confusion[true, predicted] > 0, "the pretrained network makes no mistake on these images"
    qtbot.mouseClick(view.matrix, LEFT, pos=view.matrix.cell_rect(true, predicted).center())
    item = view.gallery.item(0)
    x = view.result.dataset.x[view.gallery_indices()[0]]
    qtbot.mouseClick(view.gallery.viewport(), LEFT, pos=view.gallery.visualItemRect(item).center())
    assert_sample_reached_views(qtbot, window, x, true)
    assert f"true label {true}" in window.views["Feature maps"].prediction.text()


def test_loaded_full_mnist_test_images_are_what_the_sample_pickers_offer(qtbot, make_window):
    """With full MNIST loaded the pickers stayed on the bundled 500: test image 9,999 was out of reach."""
    from engine.data import load_bundled_mnist

    window = make_window()
    train, val = load_bundled_mnist()
    test = val.subset(np.arange(1000) % 500, name="mnist/test")  # a 1,000-image stand-in for the 10,000
    window.show_view("Feature maps")
    maps, stepper = window.views["Feature maps"], window.views["Conv stepper"]
    window.use_datasets(train, test, "mnist_dir")
    for picker in (maps.picker, window.views["Pooling"].picker, stepper.live.picker):
        assert picker.spin.maximum() == 999
    assert maps.picker.status.text() == "of 1000 (mnist/test)"  # Pooling shows the sample it sent
    maps.picker.spin.setValue(999)
    assert_sample_reached_views(qtbot, window, test.x[999], int(test.y[999]))
    window.use_datasets(train, val, "bundled")  # back: the shown sample is the new set's at that index
    assert maps.picker.spin.maximum() == 499 and maps.picker.status.text() == "of 500 (mnist-bundled/val)"
    assert_sample_reached_views(qtbot, window, val.x[499], int(val.y[499]))


def test_training_feeds_gradient_health_and_kernel_timeline(qtbot, make_window):
    window = make_window()
    health = window.views["Gradient health"]
    window.show_view("Gradient health")
    assert "No training run yet" in health.status.text()
    train_one_short_run(qtbot, window)  # 16 steps
    steps = window.health.history()["step"]
    np.testing.assert_array_equal(steps, np.arange(1, 17))
    qtbot.waitUntil(lambda: len(health.row("conv1").grad.curve_data()[0]) == 16, timeout=30_000)
    x, y = health.row("conv1").grad.curve_data()
    np.testing.assert_array_equal(x, steps)
    np.testing.assert_allclose(10 ** y, window.health.history()["grad_norm"][:, 0], rtol=1e-9)
    assert "After step 16" in health.status.text()

    timeline, view = window.timeline, window.views["Kernel timeline"]
    # the initial kernels, then every 10 steps, and those the run ended with
    np.testing.assert_array_equal(timeline.steps(), [0, 10, 16])
    np.testing.assert_array_equal(timeline.kernels("conv1", 2)[1], window.display_model.params()["conv1.w"])
    window.show_view("Kernel timeline")
    qtbot.waitUntil(lambda: view.shown_step == 16, timeout=30_000)
    np.testing.assert_array_equal(view.shown_kernels, timeline.kernels("conv1", 2)[1])
    view.slider.setValue(0)  # scrub back to the start: the kernels of the fresh network
    assert view.shown_step == 0
    np.testing.assert_array_equal(view.shown_kernels, timeline.kernels("conv1", 0)[1])


def test_gradient_health_export_data_writes_the_numbers_it_draws(qtbot, make_window, tmp_path):
    """Export data (PNG + CSV) wrote its picture alone: its sparklines and bars are no pyqtgraph plots."""
    window = make_window()
    window.show_view("Gradient health")
    assert window.export_data(str(tmp_path)) == []  # before any step: a message, no files
    train_one_short_run(qtbot, window)  # 16 steps
    view = window.views["Gradient health"]
    qtbot.waitUntil(lambda: view.row("conv1").grad.curve_data()[0].size == 16, timeout=30_000)
    written = window.export_data(str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == ["convscope-gradient-health.csv",
                                                            "convscope-gradient-health.png"]
    with open(tmp_path / "convscope-gradient-health.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    table = {name: np.array([float(row[k]) for row in rows[1:]]) for k, name in enumerate(rows[0])}
    history, layers = window.health.history(), window.health.layers
    np.testing.assert_array_equal(table["step"], history["step"])
    np.testing.assert_array_equal(table["step"], view.row("conv1").grad.curve_data()[0])
    for i, layer in enumerate(layers):
        for key, column in (("grad_norm", "gradient norm"), ("update_ratio", "update/weight ratio"),
                            ("dead_share", "dead ReLU share"), ("saturated_share", "saturated share")):
            np.testing.assert_array_equal(table[f"{layer} {column}"], history[key][:, i])
        for bar, column in ((view.row(layer).dead, "dead ReLU share"), (view.row(layer).saturated, "saturated share")):
            np.testing.assert_equal(table[f"{layer} {column}"][-1], bar.share)  # the bars show the last step's


def test_session_save_open_restores_curves_and_weights_then_start_continues(qtbot, make_window, tmp_path):
    window = make_window()
    panel = window.panel
    panel.continue_check.setChecked(False)
    panel.epochs.setValue(3)
    panel.batch_size.setValue(16)
    click(qtbot, panel.start_button)
    qtbot.waitUntil(lambda: window.worker is not None and window.worker.steps_done >= 18, timeout=120_000)
    path = str(tmp_path / "run.convscope.npz")
    assert window.save_session(path)  # pauses the run first
    trainer = window.worker.trainer
    assert panel.state == "paused" and trainer.state == "paused"
    saved_step = trainer.step_index
    saved_weights = trainer.snapshot()
    saved_health = window.health.history()
    qtbot.waitUntil(lambda: loss_curve(window)[0].size == saved_step, timeout=30_000)
    steps, losses = loss_curve(window)
    click(qtbot, panel.stop_button)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)

    click(qtbot, panel.reset_button)  # other weights, no curve
    assert loss_curve(window)[0].size == 0
    window.show_view("Gradient health")
    health_view = window._view("gradientHealthView")
    assert window.open_session(path)
    # the gradient-health history came back too, and is drawn
    for name, values in saved_health.items():
        np.testing.assert_array_equal(window.health.history()[name], values)
    assert saved_health["step"][-1] == saved_step
    qtbot.waitUntil(lambda: health_view.row("conv1").grad.curve_data()[0].size == saved_step, timeout=10_000)
    np.testing.assert_array_equal(health_view.row("conv1").grad.curve_data()[1],
                                  np.log10(saved_health["grad_norm"][:, 0]))  # drawn on a log scale
    restored_steps, restored_losses = loss_curve(window)
    np.testing.assert_array_equal(restored_steps, steps)
    np.testing.assert_array_equal(restored_losses, losses)  # bit for bit: float64 from the history
    for name, value in window.display_model.get_weights().items():
        assert value.dtype == saved_weights[name].dtype
        np.testing.assert_array_equal(value, saved_weights[name])
    assert window.loss_view.epoch_count == 1  # 16 steps per epoch: the first epoch's summary came back
    assert panel.continue_check.isChecked() and panel.epochs.value() == 3

    click(qtbot, panel.start_button)  # continues the saved run
    qtbot.waitUntil(lambda: loss_curve(window)[0].size >= saved_step + 2, timeout=120_000)
    resumed = window.worker.trainer
    assert resumed.total_steps == 48
    qtbot.waitUntil(lambda: window.health.latest()[0] > saved_step, timeout=30_000)  # the monitor goes on
    assert window.health.history()["step"][:saved_step].tolist() == saved_health["step"].tolist()
    steps_now, losses_now = loss_curve(window)
    np.testing.assert_array_equal(steps_now[:saved_step + 2], np.arange(1, saved_step + 3))
    np.testing.assert_array_equal(losses_now[:saved_step], losses)
    click(qtbot, panel.stop_button)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)


def test_a_resumed_run_says_it_trains_on_from_where_its_weights_came_from(qtbot, make_window, tmp_path):
    """Through the resumed run the weights line kept saying "session run.convscope.npz, step 2" (or "after 2
    steps (run stopped)"), the step the weights had long left behind."""
    window = make_window()
    panel = window.panel
    panel.continue_check.setChecked(False)
    for n in (1, 2):
        click(qtbot, panel.step_button)
        qtbot.waitUntil(lambda: window.loss_view.steps.size == n, timeout=30_000)
    path = str(tmp_path / "run.convscope.npz")
    assert window.save_session(path)
    click(qtbot, panel.stop_button)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)
    stopped = panel.weights_description
    assert stopped == "vgg7 after 2 steps (run stopped)"
    for reopen, origin in ((False, stopped), (True, "session run.convscope.npz, step 2")):
        if reopen:
            assert window.open_session(path)  # ticks "Continue"
        else:
            panel.continue_check.setChecked(True)
        assert window._lineage is not None
        click(qtbot, panel.step_button)
        qtbot.waitUntil(lambda: window.loss_view.steps.size == 3, timeout=30_000)
        assert panel.weights_label.text() == f"Weights: training, continued from {origin}"
        click(qtbot, panel.stop_button)
        qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)


@pytest.mark.parametrize("menu", ["Open weights", "Load pretrained weights", "Load pretrained weights, unreadable"])
def test_other_weights_take_the_replaced_runs_curve_and_recorders_with_them(qtbot, make_window, tmp_path,
                                                                            monkeypatch, menu):
    """The loss curve, gradient health and kernel timeline of the run stayed beside weights from a file; a run
    from them plotted its step 1 as step 9, after that curve, and its session stored the curve as its own."""
    window = make_window()
    train_one_short_run(qtbot, window, batch=32)  # 8 steps
    _, losses = loss_curve(window)
    assert losses.size == 8 and window.health is not None and window.timeline is not None
    weights = tmp_path / "other.npz"
    window.display_model.save(weights)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *args: (str(weights), ""))
    action = window.action_open if menu == "Open weights" else window.action_reload
    assert menu.startswith(action.text().replace("&", "").rstrip(".…"))
    if menu.endswith("unreadable"):  # the fresh vgg7 shown instead is other weights too

        def unreadable(path):
            raise ModelFileError(f"{path}: damaged")

        monkeypatch.setattr(Sequential, "load", unreadable)
    action.trigger()
    if menu.endswith("unreadable"):
        assert "Pretrained weights not available" in window.statusBar().currentMessage()

    assert loss_curve(window)[0].size == 0 and window.loss_view.epoch_count == 0
    np.testing.assert_array_equal(window.loss_view._overlays["previous run"].getOriginalDataset()[1], losses)
    assert window.health is None and window.timeline is None
    window.show_view("Gradient health")
    assert "No training run yet" in window.views["Gradient health"].status.text()
    window.show_view("Kernel timeline")
    assert window.views["Kernel timeline"].shown_step is None

    window.panel.continue_check.setChecked(True)  # a new run from the weights shown
    click(qtbot, window.panel.step_button)
    qtbot.waitUntil(lambda: loss_curve(window)[0].size == 1, timeout=30_000)
    assert loss_curve(window)[0].tolist() == [1.0]
    path = str(tmp_path / "from-other-weights.convscope.npz")
    assert window.save_session(path)
    assert open_session(path).earlier is None
    click(qtbot, window.panel.stop_button)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)


def test_a_run_saved_after_stop_keeps_its_gradient_health(qtbot, make_window, tmp_path):
    """Saved after Stop (not while paused), the session had no gradient-health history to reopen."""
    window = make_window()
    panel = window.panel
    panel.continue_check.setChecked(False)
    for n in range(1, 4):
        click(qtbot, panel.step_button)
        qtbot.waitUntil(lambda: window.loss_view.steps.size == n, timeout=30_000)
    click(qtbot, panel.stop_button)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)
    saved_health = window.health.history()
    assert saved_health["step"].tolist() == [1, 2, 3]
    path = str(tmp_path / "stopped.convscope.npz")
    assert window.save_session(path)
    click(qtbot, panel.reset_button)
    assert window.open_session(path)
    for name, values in saved_health.items():
        np.testing.assert_array_equal(window.health.history()[name], values)


def test_a_session_of_a_run_continued_with_new_settings_keeps_the_earlier_curve(qtbot, make_window, tmp_path):
    """Another batch size cannot carry the first run's schedule on: Start makes a new trainer from the
    weights shown, whose history begins at its own step 1. The saved session keeps the curve before."""
    window = make_window()
    panel = window.panel
    train_one_short_run(qtbot, window)  # 16 steps, one epoch
    first_steps, first_losses = loss_curve(window)
    assert first_steps.size == 16 and window.loss_view.epoch_count == 1
    panel.continue_check.setChecked(True)
    panel.batch_size.setValue(32)
    click(qtbot, panel.start_button)
    assert "its batch size was 16" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.worker is not None and window.worker.steps_done >= 3, timeout=120_000)
    path = str(tmp_path / "continued.convscope.npz")
    assert window.save_session(path)
    saved_step = window.worker.trainer.step_index
    qtbot.waitUntil(lambda: loss_curve(window)[0].size == 16 + saved_step, timeout=30_000)
    steps, losses = loss_curve(window)
    click(qtbot, panel.stop_button)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)

    click(qtbot, panel.reset_button)
    assert window.open_session(path)
    restored_steps, restored_losses = loss_curve(window)
    np.testing.assert_array_equal(restored_steps, steps)
    np.testing.assert_array_equal(restored_losses, losses)
    np.testing.assert_array_equal(restored_losses[:16], first_losses)
    assert window.loss_view.epoch_count == 1  # the first run's epoch; the second has none finished
    assert panel.batch_size.value() == 32

    click(qtbot, panel.start_button)  # continues the second run, numbered after the first
    qtbot.waitUntil(lambda: loss_curve(window)[0].size >= 16 + saved_step + 2, timeout=120_000)
    steps_now, losses_now = loss_curve(window)
    np.testing.assert_array_equal(steps_now, np.arange(1, steps_now.size + 1))
    np.testing.assert_array_equal(losses_now[:16 + saved_step], losses)
    click(qtbot, panel.stop_button)
    qtbot.waitUntil(lambda: window.worker is None, timeout=30_000)


@pytest.mark.parametrize("schedule, restart", [
    ("cosine", " The cosine learning-rate schedule now spans all 2 epochs: the rate goes back up from ×0.0096 to "
               "×0.5 of the set rates (a warm restart)."),   # 0.5 (1 + cos(pi 15/16)), then 0.5 (1 + cos(pi/2))
    ("step", " The step learning-rate schedule now spans all 2 epochs: the rate goes back up from ×0.01 to ×0.1 "
             "of the set rates (a warm restart)."),           # past both milestones, then past the first only
    ("constant", "")])
def test_continuing_a_finished_run_says_the_schedule_restarts(qtbot, make_window, schedule, restart):
    window = make_window()
    panel = window.panel
    panel.schedule.setCurrentText(schedule)
    train_one_short_run(qtbot, window)  # 16 steps, one epoch: finished
    panel.continue_check.setChecked(True)
    click(qtbot, panel.start_button)
    message = window.statusBar().currentMessage()
    assert message == "Continuing for 1 more epoch (to epoch 2)." + restart
    qtbot.waitUntil(lambda: window.worker is None, timeout=120_000)
    assert loss_curve(window)[0].size == 32


def test_session_keeps_the_last_experiment(qtbot, make_window, tmp_path):
    window = make_window()
    experiments = window.views["Experiments"]
    window.show_view("Experiments")
    experiments.network.setCurrentIndex(experiments.network.findData("seed003"))
    experiments.experiment.setCurrentIndex(experiments.experiment.findData("optimizer"))
    for spin, value in ((experiments.epochs, 1), (experiments.train_size, 40), (experiments.batch_size, 10)):
        spin.setValue(value)
    with qtbot.waitSignal(experiments.finished, timeout=120_000):
        click(qtbot, experiments.start_button)
    table = [[experiments.table.item(r, c).text() for c in range(experiments.table.columnCount())]
             for r in range(2)]
    curves = [item.getOriginalDataset() for item in experiments.loss_plot.getPlotItem().listDataItems()]
    conclusion = experiments.conclusion.text()
    path = str(tmp_path / "with-experiment.convscope.npz")
    assert window.save_session(path)

    experiments.restore_session(None)  # cleared, as in a fresh window
    assert experiments.table.item(0, 0) is None
    assert window.open_session(path)
    assert [[experiments.table.item(r, c).text() for c in range(experiments.table.columnCount())]
            for r in range(2)] == table
    assert experiments.conclusion.text() == conclusion
    for (x, y), item in zip(curves, experiments.loss_plot.getPlotItem().listDataItems()):
        restored_x, restored_y = item.getOriginalDataset()
        np.testing.assert_array_equal(restored_x, x)
        np.testing.assert_array_equal(restored_y, y)
    assert experiments.network.currentData() == "seed003" and experiments.train_size.value() == 40

    # Saved while another experiment runs: that one is not in the file, and the message says so.
    experiments.epochs.setValue(5)
    click(qtbot, experiments.start_button)
    qtbot.waitUntil(lambda: experiments.state == "running", timeout=10_000)
    assert window.save_session(str(tmp_path / "during.convscope.npz"))
    assert "without the experiment still running" in window.statusBar().currentMessage()
    with qtbot.waitSignal(experiments.finished, timeout=60_000):
        click(qtbot, experiments.stop_button)


def test_saving_during_a_long_epoch_end_validation_shows_its_progress_and_can_be_cancelled(
        qtbot, make_window, tmp_path, monkeypatch):
    """Full MNIST's 10,000 validation images take ~3 s: Save session froze the window that long."""
    real_evaluate = trainer_module.evaluate

    def slow_evaluate(model, dataset, batch_size=64, progress=None, cancel=None):
        def then_wait(done, total):
            progress(done, total)
            time.sleep(1.5)  # as a validation set 30 times the size would
        return real_evaluate(model, dataset, batch_size=batch_size, progress=then_wait, cancel=cancel)
    monkeypatch.setattr(trainer_module, "evaluate", slow_evaluate)
    window = make_window()
    panel = window.panel
    panel.continue_check.setChecked(False)
    panel.epochs.setValue(3)
    panel.batch_size.setValue(250)  # one step an epoch: the first step ends epoch 1
    click(qtbot, panel.start_button)
    qtbot.waitUntil(lambda: window._validating is not None, timeout=60_000)
    window._update_status()
    assert "validating 50/50" in panel.epoch_progress.text()

    ticks, dialogs = [], []

    def tick(cancel: bool) -> None:
        ticks.append(time.perf_counter())
        dialog = QtWidgets.QApplication.activeModalWidget()
        if isinstance(dialog, QtWidgets.QProgressDialog):
            dialogs.append(dialog.labelText())
            if cancel and len(dialogs) == 30:  # a user reads it for a moment, then cancels
                dialog.cancel()
    for cancel, name in ((True, "cancelled.convscope.npz"), (False, "saved.convscope.npz")):
        qtbot.waitUntil(lambda: window._validating is not None, timeout=60_000)
        timer = QtCore.QTimer(interval=10)
        timer.timeout.connect(lambda cancel=cancel: tick(cancel))
        timer.start()
        ticks.clear()
        dialogs.clear()
        saved = window.save_session(str(tmp_path / name))
        timer.stop()
        assert saved is not cancel and (tmp_path / name).exists() is not cancel
        assert dialogs and "validation" in dialogs[-1]
        assert max(np.diff(ticks)) < 0.5  # the window kept painting (the first 0.2 s wait aside)
        if cancel:
            assert "not saved" in window.statusBar().currentMessage()
            window.start_or_resume()  # on to the next epoch's validation
            qtbot.waitUntil(lambda: window._validating is None, timeout=60_000)
    assert window.worker.trainer.state == "paused"
    qtbot.waitUntil(lambda: "validating" not in panel.epoch_progress.text())  # paused: redrawn all the same

    # The window closed while the dialog waits: nothing is saved (there was a run's session to save,
    # and it is gone), rather than the bare weights under the run's name.
    window.start_or_resume()
    qtbot.waitUntil(lambda: window._validating is not None, timeout=60_000)
    QtCore.QTimer.singleShot(400, window.close)
    assert not window.save_session(str(tmp_path / "closing.convscope.npz"))
    assert not (tmp_path / "closing.convscope.npz").exists()


def test_an_opened_session_shows_its_step_and_training_time_in_the_status_bar(qtbot, make_window, small_data,
                                                                              tmp_path):
    """The step label stayed empty and "elapsed" read 0:00 beside progress bars saying "step 20/32"."""
    from engine.presets import build
    from engine.session import Session, save_session
    from engine.trainer import TrainConfig, Trainer

    trainer = Trainer(build("vgg7", seed=0), *small_data, TrainConfig(epochs=2, batch_size=16))
    for _ in range(20):  # 16 steps an epoch: the first epoch and 4 steps of the second
        trainer.step()
    session = Session.from_trainer(trainer, "bundled")
    # the times the trainer measured, made long enough to read on the clock: 60 s + 15.5 s
    session.history["epochs.seconds"][:] = [60.0]
    session.epoch_state["totals"][3] = 15.5
    assert session.training_seconds() == 75.5
    path = str(tmp_path / "run.convscope.npz")
    save_session(path, session)

    window = make_window()
    assert window.open_session(path)
    assert window.panel.run_progress.format().startswith("step 20/32")
    assert window.status_step.text() == "epoch 2, step 20/32"
    assert window.status_elapsed.text() == "elapsed 1:15"
    weights = str(tmp_path / "w.npz")
    assert window.save_weights(weights) and window.open_weights(weights)
    assert window.status_step.text() == "" and window.status_elapsed.text() == "elapsed 0:00"  # no run behind them


def test_a_bad_session_file_is_refused_and_nothing_changes(qtbot, make_window, tmp_path):
    window = make_window()
    weights = tmp_path / "weights.npz"
    window.display_model.save(weights)
    before = window.display_model.get_weights()
    assert not window.open_session(str(weights))
    boxes = [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]
    assert boxes and "not a ConvScope session" in boxes[-1].text()
    assert "Nothing was changed" in boxes[-1].text()
    for name, value in window.display_model.get_weights().items():
        np.testing.assert_array_equal(value, before[name])


def test_export_data_and_animation_menu_follow_the_view(qtbot, make_window, tmp_path):
    window = make_window()
    for title in ("Conv stepper", "Pooling", "Kernel timeline"):
        window.show_view(title)
        assert window.action_export_animation.isEnabled(), title
    window.show_view("Loss")
    assert not window.action_export_animation.isEnabled()
    window.loss_view.append_steps(np.arange(1, 4), np.array([2.3, 2.1, 1.9]))
    paths = window.export_data(str(tmp_path))
    assert any(p.endswith(".csv") for p in paths) and any(p.endswith(".png") for p in paths)
    # Kernels: one PNG + CSV per layer, named after it, holding that layer's kernel mosaic.
    window.show_view("Kernels")
    (tmp_path / "kernels").mkdir()
    paths = window.export_data(str(tmp_path / "kernels"))
    names = sorted(os.path.basename(p) for p in paths if p.endswith(".csv"))
    assert names == [f"convscope-kernels-conv{k}.csv" for k in range(1, 5)]
    view = window.views["Kernels"]
    conv4 = np.loadtxt(tmp_path / "kernels" / "convscope-kernels-conv4.csv", delimiter=",", skiprows=1)[:, 1:]
    np.testing.assert_array_equal(conv4, view._layers["conv4"].panel.image.image)
    window.show_view("Experiments")  # nothing run yet: a message instead of files
    before = sorted(p.name for p in tmp_path.iterdir())
    assert window.export_data(str(tmp_path)) == []
    boxes = [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]
    assert boxes and "nothing to export" in boxes[-1].text()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no staging folder left behind


def test_an_export_that_writes_nothing_leaves_no_earlier_outcome_in_the_status_bar(qtbot, make_window, tmp_path,
                                                                                   monkeypatch):
    """A "Nothing to export" box showed beside the last export's "Exported …" in the status bar."""
    window = make_window()
    bar = window.statusBar()

    def boxes() -> list[str]:
        shown = [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]
        for box in shown:
            box.close()
        return [box.windowTitle() for box in shown]

    def exported_then_nothing(export_nothing, view="Experiments") -> None:  # no experiment run yet
        window.show_view("Kernels")
        assert window.export_data(str(tmp_path)) and bar.currentMessage().startswith("Exported 9 files")
        window.show_view(view)
        export_nothing()
        assert bar.currentMessage() == ""

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda *args: QtWidgets.QMessageBox.StandardButton.Yes)
    exported_then_nothing(lambda: window.export_data(str(tmp_path)))
    assert boxes() == ["Nothing to export"]
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *args: (str(tmp_path / "e.png"), ""))
    exported_then_nothing(window._export_dialog)  # File > Export as PNG
    assert boxes() == ["Nothing to export"]
    told = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "information", lambda parent, title, text: told.append(text))
    exported_then_nothing(window._export_animation_dialog, "Kernel timeline")  # no run, no snapshot
    assert told == ["There is nothing to export yet: the view shows no steps."]


def test_feature_map_export_names_each_vector_after_its_layer_and_holds_its_values(qtbot, make_window, tmp_path):
    """The strips were plot-1 … plot-6 in reverse order, x held bar edges, and the probabilities were missing."""
    window = make_window()
    window.show_view("Feature maps")
    view = window.views["Feature maps"]
    qtbot.waitUntil(lambda: view._x is not None, timeout=10_000)
    window.export_data(str(tmp_path))
    outputs = window.display_model.intermediates(view._x)
    proba = window.display_model.predict_proba(view._x[None])[0]
    for name, expected in (("flatten", outputs["flatten"]), ("dense1", outputs["dense1"]),
                           ("dense3", outputs["dense3"]), ("probabilities", proba)):
        table = np.loadtxt(tmp_path / f"convscope-feature-maps-{name}.csv", delimiter=",", skiprows=1)
        np.testing.assert_array_equal(table[:, 0], np.arange(expected.size))  # unit index, not bar edges
        np.testing.assert_allclose(table[:, 1], expected.ravel(), rtol=1e-6)
    assert not list(tmp_path.glob("*plot-*"))


def test_export_data_asks_before_replacing_and_writes_all_or_nothing(qtbot, make_window, tmp_path, monkeypatch):
    window = make_window()
    window.show_view("Kernels")
    first = window.export_data(str(tmp_path))
    assert len(first) == 9  # the view's picture, then each layer's kernels as PNG + CSV
    for path in first:
        os.utime(path, (0, 0))
    questions = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda parent, title, text: questions.append(text)
                        or QtWidgets.QMessageBox.StandardButton.No)
    assert window.export_data(str(tmp_path)) == []  # "No": the earlier export stays as it was
    assert questions == [f"9 files of this export already exist in {tmp_path} (convscope-kernels.png, "
                         "convscope-kernels-conv1.png, convscope-kernels-conv1.csv …).\nReplace them?"]
    assert all(os.stat(path).st_mtime == 0 for path in first)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(os.path.basename(p) for p in first)

    real, calls = export.export_heatmap, []

    def disk_fills_up(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(export, "export_heatmap", disk_fills_up)
    (tmp_path / "full").mkdir()
    assert window.export_data(str(tmp_path / "full")) == []
    assert list((tmp_path / "full").iterdir()) == []  # not 2 of the 4 layers: nothing
    boxes = [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]
    assert boxes[-1].windowTitle() == "Cannot export"
    assert boxes[-1].text() == (f"Could not write the export into {tmp_path / 'full'}: No space left on device.\n\n"
                                "Nothing was written there (no partial set).")


def test_a_save_or_export_that_cannot_write_names_the_file_once_and_the_reason_in_words(qtbot, make_window,
                                                                                       tmp_path, monkeypatch):
    """Save session, Save weights, Export PNG and Export animation said "[Errno 13] cannot write <file>:
    Permission denied", and the session's box named the file again; Export data said only the reason."""
    import tempfile

    window = make_window()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    def shown() -> tuple[str, str]:
        (box,) = [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]
        box.close()
        return box.windowTitle(), box.text()

    warnings = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda parent, title, text: warnings.append((title, text)))
    monkeypatch.setattr(export, "frame_ranges", lambda source: [("first 3", range(3))])
    kept = "Any earlier file of that name is unchanged."
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    assert not window.save_weights(str(folder))  # no errno: atomic_write's own "cannot write …: it is a folder"
    assert shown() == ("Cannot save weights", f"Could not write {folder}: it is a folder.\n\n{kept}")
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    session, weights, png = (str(tmp_path / name) for name in ("run.convscope.npz", "w.npz", "loss.png"))
    assert not window.save_session(session)
    assert shown() == ("Cannot save the session", f"Could not write {session}: Permission denied.\n\n{kept}")
    assert not window.save_weights(weights)
    assert shown() == ("Cannot save weights", f"Could not write {weights}: Permission denied.\n\n{kept}")
    window.show_view("Loss")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *args: (png, "PNG image (*.png)"))
    window._export_dialog()
    assert shown() == ("Cannot export", f"Could not write {png}: Permission denied.\n\n{kept}")
    assert window.export_data(str(tmp_path)) == []
    assert shown() == ("Cannot export", f"Could not write the export into {tmp_path}: Permission denied.\n\n"
                                        "Nothing was written there (no partial set).")
    window.show_view("Conv stepper")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *args: (str(tmp_path / "conv"), "PNG sequence (*.png)"))
    window._export_animation_dialog()
    assert warnings == [("Export animation", f"Could not write {tmp_path / 'conv-0001.png'} … conv-0003.png: "
                                             "Permission denied.\n\nAny earlier files of those names are unchanged.")]
    assert list(tmp_path.iterdir()) == [folder]


def test_closing_while_everything_runs_leaves_no_thread(qtbot, make_window):
    window = make_window()
    panel = window.panel
    panel.epochs.setValue(50)
    click(qtbot, panel.start_button)
    qtbot.waitUntil(lambda: window.worker is not None and window.worker.steps_done >= 1, timeout=60_000)
    window.show_view("Gradient check")
    check = window.views["Gradient check"]
    click(qtbot, check.run_button)
    assert check.is_running()
    window.show_view("Experiments")
    experiments = window.views["Experiments"]
    experiments.train_size.setValue(200)
    click(qtbot, experiments.start_button)
    window.show_view("Evaluation")  # starts evaluating the display model in the background
    assert running_qthreads()
    window.close()
    assert running_qthreads() == []
    assert window.worker is None and not check.is_running() and experiments.state == "idle"


def test_an_animation_exported_while_the_weights_change_shows_one_set_of_weights(qtbot, make_window, tmp_path,
                                                                                monkeypatch):
    """The export's progress dialog lets events through, and with "Follow training" every new set of
    weights rebuilt the live trace between frames: one GIF mixed 17 traces. Now the exported view
    keeps its weights until the export ends, then gets the newest."""
    from app import export

    window = make_window()
    window.show_view("Conv stepper")
    view = window.views["Conv stepper"]
    view.set_source("live")
    view.live.follow.setChecked(True)
    assert view.trace is not None
    traces, real_render = [], view.render_frame

    def render_while_training(index, *args):
        traces.append(view.trace)
        window.display_model.params()["conv1.w"] *= 1.01  # a training step's new weights ...
        window._schedule_push()                          # ... announced as the worker does
        time.sleep(0.03)
        return real_render(index, *args)

    monkeypatch.setattr(view, "render_frame", render_while_training)
    monkeypatch.setattr(export, "frame_ranges", lambda widget: [("first 40", range(40))])
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *args: (str(tmp_path / "live.png"), "PNG sequence (*.png)"))
    window._export_animation_dialog()
    assert len(traces) == 40 and all(t is traces[0] for t in traces)
    assert len(list(tmp_path.glob("live-*.png"))) == 40
    qtbot.waitUntil(lambda: view.trace is not traces[0], timeout=5000)  # then the newest weights
    np.testing.assert_array_equal(view.trace.w, window.display_model.params()["conv1.w"])
