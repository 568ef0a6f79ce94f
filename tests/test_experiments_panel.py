"""Experiments panel driven by clicks: two runs from the same weights, taking turns, compared in a table;
stopping or closing mid-run leaves no thread behind (the conftest fixture checks that too)."""
import csv
import os
import re

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.experiments import EXPERIMENTS, RUN_COLOURS, ExperimentsPanel, with_pooling
from app.views.loss import ema_debiased
from plot_reading import assert_labels_apart, drawn_points, log_label_value, tick_labels
from engine import parallel
from engine.presets import build, get_preset

LEFT = QtCore.Qt.MouseButton.LeftButton
KEYS = [e.key for e in EXPERIMENTS]


@pytest.fixture(scope="module", autouse=True)
def gui_runtime():
    """The process settings the app runs with (one BLAS thread per spare core, 1 ms GIL switching):
    without them two spinning BLAS threads make every step several times slower on a loaded machine. The
    engine's threads put back for the modules after this one (conftest does that only around each test)."""
    from app.runtime import prepare_for_gui

    with parallel.using_threads(parallel.threads()):
        prepare_for_gui()
        yield


@pytest.fixture
def panel(qtbot, small_data):
    widget = ExperimentsPanel()
    qtbot.addWidget(widget)
    widget.set_datasets(*small_data)
    widget.resize(1000, 900)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.close()


def configure(panel, qtbot, key, network="vgg7", epochs=1, images=96, batch=16, second=None):
    panel.network.setCurrentIndex(panel.network.findData(network))
    panel.experiment.setCurrentIndex(KEYS.index(key))
    panel.epochs.setValue(epochs)
    panel.train_size.setValue(images)
    panel.batch_size.setValue(batch)
    if second is not None:
        panel.second.selectAll()
        qtbot.keyClicks(panel.second, second)


def run_to_end(panel, qtbot, timeout=90_000):
    """Click Run and wait for both runs, checking on every poll that they take turns."""
    gaps = []

    def done():
        if len(panel.runs) == 2:
            gaps.append(abs(panel.runs[0].step - panel.runs[1].step))
        return panel.state == "idle"

    with qtbot.waitSignal(panel.finished, timeout=timeout):
        qtbot.mouseClick(panel.start_button, LEFT)
        assert panel.state == "running"
    qtbot.waitUntil(done, timeout=1000)
    return gaps


def legend_curve(plot, name):
    for item in plot.getPlotItem().listDataItems():
        if item.name() == name:
            return item.getOriginalDataset()
    raise AssertionError(f"no curve named {name!r}")


def table_row(panel, row):
    return [panel.table.item(row, j).text() for j in range(panel.table.columnCount())]


def test_broken_update_side_by_side_same_start_distinct_curves_table(panel, qtbot, tmp_path):
    configure(panel, qtbot, "broken_update")
    gaps = run_to_end(panel, qtbot)
    a, b = panel.runs
    assert (a.trainer.model.variant, b.trainer.model.variant) == (None, "broken_update")
    expected = build("vgg7", seed=0).get_weights()
    for name, w in expected.items():  # the same start, rebuilt independently
        np.testing.assert_array_equal(a.initial_weights[name], w)
        np.testing.assert_array_equal(b.initial_weights[name], w)
    assert a.initial_weights["conv1.w"] is not b.initial_weights["conv1.w"]
    assert max(gaps) <= 1  # A and B took turns, one step each

    xa, ya = legend_curve(panel.loss_plot, "A: correct")
    xb, yb = legend_curve(panel.loss_plot, "B: broken update")
    np.testing.assert_array_equal(xa, xb)
    assert len(xa) == a.trainer.total_steps == 6
    for (x, y), run in (((xa, ya), a), ((xb, yb), b)):
        losses = run.trainer.history.steps["loss"].array()
        np.testing.assert_allclose(y, ema_debiased(losses, 0.8, (0.0, 0))[0])
    # Same weights and batch: the first loss is identical; the broken update shows from step 2.
    assert ya[0] == yb[0]
    assert not np.allclose(ya[1:], yb[1:])
    # The weights really diverged where the bug acts.
    assert not np.allclose(a.trainer.model.params()["conv2.w"], b.trainer.model.params()["conv2.w"])

    for row, run in enumerate((a, b)):
        cells = table_row(panel, row)
        assert cells[0].endswith(run.label)
        assert cells[1] == f"{run.trainer.history.epochs['val_accuracy'].array()[-1]:.1%}"
        assert cells[2] == f"{run.trainer.history.epochs['val_loss'].array()[-1]:.4f}"
        assert cells[4] == f"{run.trainer.history.epochs['seconds'].array().sum():.1f} s"
        assert cells[5] == "6 / 6" and cells[6] == "finished"
    conclusion = panel.conclusion.text()
    assert "broken update" in conclusion and "correct" in conclusion
    assert "its time" not in conclusion  # both runs do the same work: a time ratio would be noise
    assert not any(run.worker.is_running() for run in panel.runs)

    path = tmp_path / "loss.csv"
    panel.export_csv(str(path))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "epoch_fraction", "A correct_loss", "B broken update_loss"]
    np.testing.assert_array_equal([float(r[3]) for r in rows[1:]], b.trainer.history.steps["loss"].array())


def test_average_vs_max_pooling_share_weights_but_not_curves(panel, qtbot):
    configure(panel, qtbot, "pooling", images=64)
    run_to_end(panel, qtbot)
    a, b = panel.runs
    pools = [[layer.kind for layer in r.trainer.model.layers if "Pool" in layer.kind] for r in (a, b)]
    assert pools == [["AvgPool2D", "AvgPool2D"], ["MaxPool2D", "MaxPool2D"]]
    assert b.trainer.model.spec == with_pooling(get_preset("vgg7"), "MaxPool2D")
    for name, w in a.initial_weights.items():
        np.testing.assert_array_equal(w, b.initial_weights[name])
    _, ya = legend_curve(panel.loss_plot, "A: average pooling")
    _, yb = legend_curve(panel.loss_plot, "B: max pooling")
    assert ya[0] != yb[0]  # different forward passes from the very first batch


def test_typed_learning_rate_and_stop_mid_run(panel, qtbot):
    configure(panel, qtbot, "learning_rate", epochs=2, images=250, second="0.2")
    assert panel.second_label.text() == "Run B learning rate" and panel.second.isVisible()
    qtbot.mouseClick(panel.start_button, LEFT)
    a, b = panel.runs
    assert (b.label, b.trainer.config.lr_conv, b.trainer.config.lr_dense) == ("lr 0.2", 0.2, 0.2)
    assert a.trainer.config.lr_conv == 0.05
    qtbot.waitUntil(lambda: b.step >= 2, timeout=60_000)
    assert not panel.start_button.isEnabled() and not panel.experiment.isEnabled()
    with qtbot.waitSignal(panel.finished, timeout=30_000):
        qtbot.mouseClick(panel.stop_button, LEFT)
    for row, run in enumerate((a, b)):
        assert run.reason == "stopped" and run.step < run.trainer.total_steps == 32
        assert not run.worker.is_running()
        cells = table_row(panel, row)
        assert cells[6] == "stopped" and cells[5] == f"{run.step} / 32"
        assert cells[1] == cells[4] == "–"  # stopped before the first epoch ended: no validation, no epoch time
    assert panel.start_button.isEnabled() and panel.experiment.isEnabled()
    assert "Neither run finished an epoch" in panel.conclusion.text()


def test_closing_mid_run_joins_both_threads(panel, qtbot):
    configure(panel, qtbot, "optimizer", epochs=3, images=250)
    qtbot.mouseClick(panel.start_button, LEFT)
    assert panel.runs[1].trainer.config.optimizer == "adam" and panel.runs[1].trainer.config.lr_conv == 0.001
    qtbot.waitUntil(lambda: panel.runs[0].step >= 1, timeout=60_000)
    panel.close()
    assert panel.state == "idle"
    assert not any(run.worker.is_running() for run in panel.runs)


def test_closing_the_window_stops_the_runs(qtbot, small_data):
    window = QtWidgets.QMainWindow()
    window.train_data, window.val_data, window.worker = *small_data, None
    panel = ExperimentsPanel()
    window.setCentralWidget(panel)
    qtbot.addWidget(window)
    panel.attach(window)
    window.show()
    configure(panel, qtbot, "broken_update", epochs=3, images=250)
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: panel.runs[0].step >= 1, timeout=60_000)
    window.close()
    assert not any(run.worker.is_running() for run in panel.runs)


def test_experiments_that_do_not_fit_the_network_are_greyed_out_with_the_reason(panel, qtbot):
    configure(panel, qtbot, "transposed_pool", network="seed003")
    assert panel.start_button.isEnabled()  # 28x28 maps are square: seed 002's bug applies
    items = panel.experiment.model()
    broken = items.item(KEYS.index("broken_update"))
    assert not broken.isEnabled()
    assert "two conv layers" in broken.toolTip()
    panel.experiment.setCurrentIndex(KEYS.index("broken_update"))  # even if chosen programmatically
    assert not panel.start_button.isEnabled()
    assert "two conv layers" in panel.status.text()
    assert panel.start() is False and panel.runs == []


def test_invalid_numbers_block_the_start(panel, qtbot):
    configure(panel, qtbot, "learning_rate", second="fast")
    assert not panel.start_button.isEnabled()
    assert "'fast' is not a number" in panel.status.text()
    panel.second.selectAll()
    qtbot.keyClicks(panel.second, "0,02")  # a decimal comma: the fix is named
    assert "'0,02' is not a number: write decimals with a dot (0.02)" in panel.status.text()
    panel.epochs.lineEdit().selectAll()
    qtbot.keyClicks(panel.epochs.lineEdit(), "1.5")  # kept as typed, not read as 15 epochs
    assert "epochs: '1.5' is not a whole number: type digits only" in panel.status.text()
    panel.epochs.setValue(1)
    panel.second.selectAll()
    qtbot.keyClicks(panel.second, "-1")
    assert not panel.start_button.isEnabled() and "lr -1" in panel.status.text()
    panel.second.selectAll()
    qtbot.keyClicks(panel.second, "0.01")
    assert panel.start_button.isEnabled() and panel.status.text() == ""


def test_eight_by_eight_data_offers_the_tiny_network_only(qtbot):
    from engine.data import load_digits_8x8

    panel = ExperimentsPanel()
    qtbot.addWidget(panel)
    panel.set_datasets(*load_digits_8x8((0, 1)))
    assert [panel.network.itemData(i) for i in range(panel.network.count())] == ["tiny8x8"]
    assert panel.batch_size.value() == 8
    # VGG-7's broken update (listed first) does not fit: the panel opens on an experiment that does
    assert panel.experiment.currentData() == "transposed_pool" and panel.start_button.isEnabled()


def test_seed_002s_dense_sizes_are_compared_from_the_panel_and_kept_in_the_session(qtbot):
    from engine.data import load_digits_8x8

    panel = ExperimentsPanel()
    qtbot.addWidget(panel)
    panel.set_datasets(*load_digits_8x8((0, 1)))
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.widths_row.isVisible()
    assert [spin.value() for spin in panel.dense_widths.values()] == [28, 36]  # the preset's sizes
    panel.experiment.setCurrentIndex(KEYS.index("transposed_pool"))
    panel.epochs.setValue(1)
    for spin, typed in zip(panel.dense_widths.values(), ("18", "20")):  # the article's smallest sizes
        spin.lineEdit().selectAll()
        qtbot.keyClicks(spin.lineEdit(), typed)
    run_to_end(panel, qtbot)
    for run in panel.runs:  # both runs train the 16 -> 18 -> 20 -> 1 network, from the same weights
        dense = [layer.params["w"].shape for layer in run.trainer.model.layers if layer.kind == "Dense"]
        assert dense == [(16, 18), (18, 20), (20, 1)]
    assert np.array_equal(*(run.trainer.history.steps["loss"].array()[:1] for run in panel.runs))
    panel.experiment.setCurrentIndex(KEYS.index("optimizer"))  # the form changed after the run: the
    panel.epochs.setValue(7)                                       # session keeps what the runs used
    state = panel.session_state()
    assert (state["settings"]["dense1"], state["settings"]["dense2"]) == (18, 20)
    assert (state["settings"]["experiment"], state["settings"]["epochs"]) == ("transposed_pool", 1)

    panel.dense_widths["dense1"].lineEdit().selectAll()
    qtbot.keyClicks(panel.dense_widths["dense1"].lineEdit(), "2.5")
    assert "dense1: '2.5' is not a whole number" in panel.status.text() and not panel.start_button.isEnabled()
    panel.restore_session(state)
    assert [spin.value() for spin in panel.dense_widths.values()] == [18, 20]
    assert panel.session_state()["settings"] == state["settings"]  # saved again as it was read
    del state["settings"]["dense1"], state["settings"]["dense2"]  # a session saved before the fields existed
    panel.restore_session(state)
    assert panel.runs and [spin.value() for spin in panel.dense_widths.values()] == [28, 36]
    panel.close()


def test_dense_widths_are_offered_where_the_network_has_them(panel, qtbot):
    configure(panel, qtbot, "optimizer", network="seed003")  # one dense layer of 10: nothing to size
    assert not panel.widths_row.isVisible() and panel._widths() == {}
    configure(panel, qtbot, "broken_update", network="vgg7")
    assert panel.widths_row.isVisible()
    assert [spin.value() for spin in panel.dense_widths.values()] == [128, 64]
    panel.dense_widths["dense2"].setValue(32)
    units = {layer["name"]: layer["units"] for layer in panel._spec()["layers"] if layer["type"] == "Dense"}
    assert units["dense1"] == 128 and units["dense2"] == 32


def test_a_diverging_run_ends_alone_and_the_other_carries_on(panel, qtbot):
    configure(panel, qtbot, "learning_rate", images=128, batch=32, second="50")
    run_to_end(panel, qtbot)
    a, b = panel.runs
    assert a.reason == "finished" and a.step == 4
    assert b.reason == "diverged" and b.step < 4 and "diverged" in b.message
    assert table_row(panel, 1)[6].startswith("diverged: ")
    # Narrower than its columns (a stopped run's "(epoch N)" cells, a large font): the message is
    # shortened rather than scrolled to, and both rows stay in the table's fixed height.
    table = panel.table
    table.setFixedWidth(sum(table.columnWidth(i) for i in range(6)) - 20)
    qtbot.waitUntil(lambda: table.viewport().width() < sum(table.columnWidth(i) for i in range(6)))
    qtbot.wait(100)  # the scroll bars follow the columns' new sizes
    assert not table.horizontalScrollBar().isVisible()
    assert table.rowViewportPosition(1) + table.rowHeight(1) <= table.viewport().height()
    text = panel.conclusion.text()
    assert f"<b>lr 50</b> diverged after {b.step} step{'' if b.step == 1 else 's'}:" in text
    assert f"<b>lr 0.05</b> reached {a.trainer.history.epochs['val_accuracy'].array()[-1]:.1%}" in text


def test_the_empty_accuracy_plot_has_a_percentage_scale_and_runs_rescale_it(panel, qtbot):
    view = panel.accuracy_plot.getPlotItem().getViewBox()
    low, high = view.viewRange()[1]  # not pyqtgraph's 0..1 under an "accuracy (%)" label, and "100"
    assert -4 < low < 0 and 100 < high < 104  # has room above it
    configure(panel, qtbot, "broken_update", images=32)
    run_to_end(panel, qtbot)
    assert view.autoRangeEnabled()[1]  # the curves decide the scale
    legend = [label.text for _, label in panel.accuracy_plot.getPlotItem().legend.items]
    assert legend == ["A training (moving average)", "A validation", "B training (moving average)", "B validation"]
    # Four stacked rows hid the curves, and so did two in a 150 px plot: one row, above the data area.
    legend_rect = panel.accuracy_plot.getPlotItem().legend.sceneBoundingRect()
    assert legend_rect.bottom() <= view.sceneBoundingRect().top()
    panel.resize(panel.width(), panel.minimumHeight())  # a short window: the plots give way, not the table
    qtbot.waitUntil(lambda: panel.height() == panel.minimumHeight())
    assert panel.table.height() == panel._table_height()  # both rows shown (it had shrunk to one)
    _, smooth = legend_curve(panel.accuracy_plot, "A training (moving average)")
    assert smooth.size > 0 and np.all((0 <= smooth) & (smooth <= 100))
    panel.restore_session(None)
    assert view.viewRange()[1] == [low, high] and panel.hint.isVisible()


@pytest.mark.parametrize("edit", [
    lambda state: state["settings"].update(epochs=1e30),          # int(1e30) fits; the spin box refuses
    lambda state: state["runs"][1].update(step=float("inf")),      # OverflowError
    lambda state: state["runs"][0].update(history={"steps": 3}),   # not a history
])
def test_a_hand_edited_experiment_in_a_session_clears_the_panel_with_a_message(panel, qtbot, edit):
    configure(panel, qtbot, "broken_update", images=32)
    run_to_end(panel, qtbot)
    state = panel.session_state()
    panel.restore_session(state)
    assert panel.runs and "saved in the session" in panel.status.text()
    edit(state)
    panel.restore_session(state)  # no exception escapes to the window, which has already switched models
    assert panel.runs == [] and panel.table.item(0, 0) is None and panel.conclusion.text() == ""
    assert "could not be read" in panel.status.text()


def test_tab_leaves_the_comparison_table(panel, qtbot):
    panel.table.setFocus()
    qtbot.waitUntil(panel.table.hasFocus, timeout=5000)
    qtbot.keyClick(panel.table, QtCore.Qt.Key.Key_Tab)
    assert not panel.table.hasFocus()  # it walked its own cells forever


def test_a_learning_rate_out_of_range_is_one_problem_in_the_panels_words(panel, qtbot):
    configure(panel, qtbot, "broken_update")
    panel.lr.selectAll()
    qtbot.keyClicks(panel.lr, "1e9")
    assert not panel.start_button.isEnabled()
    # Not four lines naming lr_conv and lr_dense for each run: both runs share the one field.
    assert panel.status.text() == "learning rate must be at least 0 and at most 10000, got 1e+09"


def test_a_run_that_diverges_at_its_first_step_still_shows_its_point(panel, qtbot):
    configure(panel, qtbot, "broken_update", images=64, batch=32)
    panel.lr.selectAll()
    qtbot.keyClicks(panel.lr, "10000")
    run_to_end(panel, qtbot)
    for run in panel.runs:
        assert run.reason == "diverged"
    curve = next(c for c in panel.loss_plot.getPlotItem().listDataItems() if c.name() == "A: correct")
    x, _ = curve.getData()
    assert len(x) == 1 and curve.opts["symbol"] == "o"  # a lone point needs a symbol to be seen
    assert "diverged after 1 step:" in panel.conclusion.text()


def test_a_batch_beyond_the_available_memory_is_refused_in_the_status_line(panel, qtbot, monkeypatch):
    from engine import trainer as trainer_module
    from engine.data import Dataset

    images = Dataset(np.zeros((600, 28, 28, 1), np.float32), np.arange(600) % 10, "zeros")
    panel.set_datasets(images, images.subset(slice(0, 50)))
    monkeypatch.setattr(trainer_module, "available_memory", lambda: 2**29)  # 0.5 GiB
    configure(panel, qtbot, "optimizer", images=600, batch=512)
    qtbot.mouseClick(panel.start_button, LEFT)
    assert panel.state == "idle" and not panel.runs
    assert panel.status.text().startswith("Cannot start: a batch of 512 images in each of 2 runs needs about")
    # Room for one run's batch but not for both: the two runs hold their memory at the same time.
    one_run = trainer_module.MEMORY_MARGIN * build("vgg7").training_bytes_per_image() * 512
    monkeypatch.setattr(trainer_module, "available_memory", lambda: int(1.5 * one_run))
    qtbot.mouseClick(panel.start_button, LEFT)
    assert panel.state == "idle" and not panel.runs
    needed = float(panel.status.text().split("needs about ")[1].split(" GiB")[0])
    assert needed == pytest.approx(2 * one_run / 2**30, abs=0.06)  # both runs' memory, said once


# ---------------------------------------------------------------------- results given, not trained

def saved_run(label, losses, val_accuracy, train_loss, val_loss=1.0, reason="finished", epochs=2):
    """A session's entry for one run (ExperimentsPanel.session_state's layout): ``losses`` per step over
    ``epochs`` epochs, the last epoch's validation accuracy and mean training loss given."""
    n = len(losses)
    history = {"steps.loss": np.asarray(losses, np.float64), "steps.accuracy": np.full(n, 0.1),
               "steps.epoch_fraction": np.arange(1, n + 1) * epochs / n,
               "steps.lr_conv": np.full(n, 0.05), "steps.lr_dense": np.full(n, 0.05)}
    last = {"train_loss": train_loss, "train_accuracy": 0.1, "val_loss": val_loss, "val_accuracy": val_accuracy,
            "seconds": 2.0}
    history.update({f"epochs.{name}": np.full(epochs, value, np.float64) for name, value in last.items()})
    return {"label": label, "reason": reason, "message": "", "step": n, "total_steps": n, "history": history}


def show_results(panel, qtbot, key, runs, second="0.5"):
    """The panel showing runs A and B of experiment ``key`` without training them (as a session restores them)."""
    configure(panel, qtbot, key, epochs=2, images=2000, batch=64, second=second if key == "learning_rate" else None)
    panel.restore_session({"settings": panel._form_settings(), "runs": runs})
    assert len(panel.runs) == 2, panel.status.text()


LEARNED = np.linspace(2.34, 0.2, 64)
# Seed 0's VGG-7 at learning rate 0.5: up from 2.34 to 99.85 by step 22 (below the divergence limit of
# 100), then down again but never learning: "3" for all 500 validation images.
STUCK = np.concatenate([np.linspace(2.34, 99.85, 22), np.linspace(90.0, 12.0, 42)])


@pytest.mark.parametrize("reason", ["finished", "stopped"])  # a run stopped after its epochs is judged too
def test_a_run_stuck_at_chance_did_not_learn_and_a_large_gap_has_no_seed_caveat(panel, qtbot, reason):
    show_results(panel, qtbot, "learning_rate", [saved_run("lr 0.05", LEARNED, 0.92, 0.2555, 0.284),
                                                  saved_run("lr 0.5", STUCK, 0.10, 41.5679, 10.6115, reason=reason)])
    assert table_row(panel, 0)[6] == "finished"
    ended = table_row(panel, 1)[6]
    assert ended == f"{reason}: did not learn (stuck at chance; loss rose 2.34 → 41.6)"
    assert panel.table.item(1, 6).toolTip() == ended  # whole, when the column shortens it with "…"
    text = panel.conclusion.text()
    assert text.startswith("<b>lr 0.5</b> did not learn: its validation accuracy ended at chance level (10.0%;")
    assert "its training loss ended above where it started (2.34 on the first mini-batch, 41.6" in text
    # A real minus sign (U+2212), as the views' formulas write it: no hyphen in front of a number.
    assert "(\N{MINUS SIGN}82.0 points)" in text and not re.search(r"-\d", text)
    assert "change sign" not in text  # 82 points apart: no seed makes that a coin toss


def test_close_runs_that_both_learned_keep_the_seed_caveat_and_no_verdict(panel, qtbot):
    show_results(panel, qtbot, "broken_update", [saved_run("correct", LEARNED, 0.634, 1.77),
                                                  saved_run("broken update", LEARNED, 0.640, 1.79)])
    assert [table_row(panel, row)[6] for row in (0, 1)] == ["finished", "finished"]
    text = panel.conclusion.text()
    assert "did not learn" not in text and "loss ended above" not in text
    assert "(+0.6 points)" in text and "with another seed a gap this small can change sign" in text


@pytest.mark.parametrize("accuracy, at_chance", [(0.12, True), (0.13, True), (0.135, False), (0.05, True)])
def test_chance_level_is_within_a_few_points_of_one_in_the_number_of_classes(panel, qtbot, accuracy, at_chance):
    show_results(panel, qtbot, "pooling", [saved_run("average pooling", LEARNED, 0.5, 1.0),
                                           saved_run("max pooling", LEARNED, accuracy, 1.0)])
    assert ("did not learn" in table_row(panel, 1)[6]) is at_chance
    assert ("<b>max pooling</b> did not learn" in panel.conclusion.text()) is at_chance


def test_a_loss_that_rose_is_reported_even_above_chance(panel, qtbot):
    # seed003 under SGD at 0.05 from 40 images: 2.29 on the first batch, 6.05 over the epoch, 14% accuracy
    show_results(panel, qtbot, "optimizer", [saved_run("SGD, lr 0.05", [2.29, 4.0, 9.0, 8.9], 0.14, 6.05, epochs=1),
                                             saved_run("Adam, lr 0.001", [2.29, 2.33, 2.36, 2.31], 0.16, 2.33,
                                                       epochs=1)])
    assert table_row(panel, 0)[6] == "finished: loss rose 2.29 → 6.05"
    assert table_row(panel, 1)[6] == "finished"  # 2.33 against a first batch of 2.29: noise, not a rise
    assert "<b>SGD, lr 0.05</b>: its training loss ended above where it started" in panel.conclusion.text()


def test_without_validation_images_the_training_accuracy_tells_a_run_at_chance(panel, qtbot, recwarn):
    show_results(panel, qtbot, "pooling", [saved_run("average pooling", LEARNED, float("nan"), 1.0),
                                           saved_run("max pooling", LEARNED, float("nan"), 1.0)])
    assert table_row(panel, 1)[6] == "finished: did not learn (stuck at chance)"  # its training accuracy: 10%
    assert "<b>max pooling</b> did not learn: its training accuracy ended at chance level (10.0%;" in \
        panel.conclusion.text()
    qtbot.waitUntil(lambda: not panel._dirty)  # drawn: no validation dots, and no all-NaN warnings for them
    assert all(curves["val_acc"].getData()[0] is None for curves in panel._curves)  # no points at all
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_chance_on_the_8x8_digits_is_one_in_two(qtbot):
    from engine.data import load_digits_8x8

    panel = ExperimentsPanel()
    qtbot.addWidget(panel)
    panel.set_datasets(*load_digits_8x8((0, 1)))
    panel.experiment.setCurrentIndex(KEYS.index("pooling"))
    losses = np.linspace(0.3, 0.1, 20)
    panel.restore_session({"settings": panel._form_settings(),
                           "runs": [saved_run("average pooling", losses, 0.52, 0.2, epochs=20),
                                    saved_run("max pooling", losses, 0.60, 0.2, epochs=20)]})
    assert table_row(panel, 0)[6] == "finished: did not learn (stuck at chance)"  # 52% of two classes
    assert table_row(panel, 1)[6] == "finished"  # 60%: a poor result, but above a coin toss
    assert "answering the same one of 2 classes for every image scores about 50%" in panel.conclusion.text()


def test_the_loss_plot_has_a_log_scale_that_keeps_both_runs_readable(panel, qtbot):
    box = panel.findChild(QtWidgets.QCheckBox, "experimentLogY")
    assert box is panel.log_y and not box.isChecked()
    show_results(panel, qtbot, "learning_rate", [saved_run("lr 0.05", LEARNED, 0.92, 0.2555),
                                                  saved_run("lr 0.5", STUCK, 0.10, 41.5679)])
    view = panel.loss_plot.getPlotItem().getViewBox()
    qtbot.waitUntil(lambda: view.viewRange()[1][1] > 99.85)  # auto-range follows the curves when drawn
    low, high = view.viewRange()[1]
    assert (0.2 - low) / (high - low) < 0.1  # linear: run A is a line along the bottom tenth
    qtbot.mouseClick(box, LEFT, pos=QtCore.QPoint(8, box.height() // 2))
    assert box.isChecked()
    qtbot.waitUntil(lambda: view.viewRange()[1][1] < 2.5)
    low, high = view.viewRange()[1]  # log10 of the losses: 0.2 .. 99.85 spread over the whole height
    assert low < np.log10(0.2) < np.log10(2.34) < np.log10(99.85) < high
    _, y = legend_curve(panel.loss_plot, "A: lr 0.05")
    np.testing.assert_allclose(y, ema_debiased(LEARNED, 0.8, (0.0, 0))[0])  # the numbers stay (CSV export)
    qtbot.mouseClick(box, LEFT, pos=QtCore.QPoint(8, box.height() // 2))
    qtbot.waitUntil(lambda: view.viewRange()[1][1] > 99.85)


def test_the_empty_loss_plot_on_a_log_scale_is_labelled_a_decade_either_side_of_one(panel, qtbot):
    """Its linear 0..1 read 1 to 10 on the log axis, labelled 2 … 9 without a power of ten."""
    view = panel.loss_plot.getPlotItem().getViewBox()
    for clear_first in (False, True):  # ticked on the empty plot; an experiment cleared with the box ticked
        if clear_first:
            panel.restore_session(None)
        else:
            panel.log_y.setChecked(True)
        values = [log_label_value(text) for _, text in tick_labels(panel.loss_plot)]
        assert {0.1, 1.0, 10.0} <= set(values), values
        assert_labels_apart(panel.loss_plot)
        low, high = view.viewRange()[1]
        assert panel.hint.isVisible() and low < panel.hint.pos().y() < high
    panel.log_y.setChecked(False)
    assert view.viewRange()[1] == [0, 1] and panel.hint.pos().y() == 0.5


def test_log_scale_labels_between_powers_of_ten_do_not_pile_up(panel, qtbot):
    """Over a decade and a half of loss pyqtgraph labelled every one of 0.2 … 0.9, on top of each other."""
    panel.resize(1000, 1100)
    show_results(panel, qtbot, "learning_rate", [saved_run("lr 0.05", LEARNED, 0.92, 0.2555),
                                                  saved_run("lr 0.5", 1.5 * LEARNED, 0.90, 0.3833)])
    panel.log_y.setChecked(True)
    qtbot.waitUntil(lambda: panel.loss_plot.getPlotItem().getViewBox().viewRange()[1][1] < 1)
    assert panel.loss_plot.height() > 400
    values = [log_label_value(text) for _, text in tick_labels(panel.loss_plot)]
    assert 1.0 in values and len(values) >= 4, values  # the power of ten and values either side
    assert_labels_apart(panel.loss_plot)


def test_a_running_experiment_keeps_its_whole_run_on_the_x_axis_in_log_scale(panel, qtbot):
    configure(panel, qtbot, "broken_update", epochs=3, images=250)
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: panel.runs[0].step >= 1, timeout=60_000)
    panel.log_y.setChecked(True)
    assert panel.loss_plot.getPlotItem().getViewBox().viewRange()[0][1] >= 3  # not just the steps so far
    panel.close()


def test_tick_labels_at_the_top_of_a_plot_are_whole(panel, qtbot):
    # The empty loss plot's range is 0..1: its "1.0" sits at the very top (half of it was cut off).
    for plot, y_range in ((panel.loss_plot, None), (panel.loss_plot, (0, 110)), (panel.accuracy_plot, (0, 100))):
        if y_range:
            plot.setYRange(*y_range, padding=0)  # a tick at the very top ("110" after lr 0.5's run)
        rects = [rect for rect, _ in tick_labels(plot)]
        assert rects
        for rect in rects:
            assert 0 <= rect.top() and rect.bottom() <= plot.height(), (plot.objectName(), y_range, rect)


def settle_layouts():
    """Run the layout passes the results just asked for (posted events), as the event loop would next: the
    scroll area follows the panel's new size. Deterministic, unlike waiting a fixed time."""
    for _ in range(3):  # a layout pass can post another (the panel's, then the scroll area's)
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.LayoutRequest)
        QtWidgets.QApplication.processEvents()


def panel_in_a_short_window(qtbot, small_data):
    """A panel in the tab's scroll area as a 1024x700 window has it (both plots at their 150 px minimum)."""
    scroll = QtWidgets.QScrollArea()
    scroll.setWidgetResizable(True)
    panel = ExperimentsPanel()
    panel.set_datasets(*small_data)
    scroll.setWidget(panel)
    qtbot.addWidget(scroll)
    scroll.resize(676, 607)
    scroll.show()
    qtbot.waitExposed(scroll)
    return scroll, panel


def test_in_a_short_window_the_plots_are_not_laid_over_each_other(qtbot, small_data):
    """The tab's scroll area at 1024x700: the panel's 640 px minimum was 39 px short of what its fields,
    text, plots and table need, and the accuracy plot covered the loss plot's "epoch"."""
    scroll, panel = panel_in_a_short_window(qtbot, small_data)
    show_results(panel, qtbot, "broken_update", [saved_run("correct", LEARNED, 0.634, 1.77),
                                                  saved_run("broken update", LEARNED, 0.640, 1.79)])
    settle_layouts()
    widgets = [panel.description, panel.loss_plot, panel.accuracy_plot, panel.table, panel.conclusion]
    tops = [w.mapTo(panel, QtCore.QPoint(0, 0)).y() for w in widgets]
    for upper, top, lower in zip(widgets, tops[1:], widgets[1:]):
        assert upper.mapTo(panel, QtCore.QPoint(0, 0)).y() + upper.height() <= top, (upper, lower)
    assert panel.conclusion.mapTo(panel, QtCore.QPoint(0, 0)).y() + panel.conclusion.height() <= panel.height()
    for plot in (panel.loss_plot, panel.accuracy_plot):
        label = plot.getPlotItem().getAxis("bottom").label  # "epoch", drawn inside its text item's margin
        margin = label.document().documentMargin()
        text = label.mapRectToScene(label.boundingRect().adjusted(margin, margin, -margin, -margin))
        assert plot.mapFromScene(text).boundingRect().bottom() <= plot.height()
    scroll.close()


@pytest.mark.parametrize("log_y", [False, True])
def test_in_a_short_window_the_legends_leave_the_curves_in_sight(qtbot, small_data, log_y):
    """At 1024x700 (150 px plots) the legends sat in the data area: run B's loss on a log scale ran under
    the loss legend."""
    scroll, panel = panel_in_a_short_window(qtbot, small_data)
    panel.log_y.setChecked(log_y)
    show_results(panel, qtbot, "learning_rate", [saved_run("lr 0.05", LEARNED, 0.92, 0.2555, 0.284),
                                                  saved_run("lr 0.5", STUCK, 0.50, 41.5679, 10.6115)])
    settle_layouts()
    for plot in (panel.loss_plot, panel.accuracy_plot):
        assert plot.height() <= 160
        legend = plot.getPlotItem().legend
        assert legend.items and legend.isVisible()
        legend_rect = legend.sceneBoundingRect()
        assert plot.rect().contains(plot.mapFromScene(legend_rect).boundingRect())  # whole, in sight
        curves = [curve for curve in plot.getPlotItem().listDataItems() if len(curve.getData()[0])]
        assert len(curves) == 4
        for curve in curves:
            hidden = [p for p in drawn_points(curve) if legend_rect.contains(QtCore.QPointF(*p))]
            assert not hidden, (plot.objectName(), curve.name(), len(hidden))
    scroll.close()


def test_the_empty_plots_legend_shows_the_validation_dots_in_the_runs_colours(panel, qtbot):
    """pyqtgraph styles symbols when they first have points: the legend drew them grey-blue until then."""
    legend = panel.accuracy_plot.getPlotItem().legend
    samples = {label.text: sample for sample, label in legend.items}
    for run, colour in zip("AB", RUN_COLOURS):
        scatter = samples[f"{run} validation"].item.scatter  # what the legend's sample draws its dot from
        if run == "A":
            assert scatter.opts["brush"].color() == QtGui.QColor(colour), run
        else:  # hollow, so that A's dot shows through where both runs validate alike
            assert scatter.opts["brush"].style() == QtCore.Qt.BrushStyle.NoBrush
        assert scatter.opts["pen"].color() == QtGui.QColor(colour), run


def test_the_plots_are_named_for_find_child_and_file_export(panel, qtbot, tmp_path):
    import pyqtgraph as pg

    from app.export import export_view_data

    assert panel.findChild(pg.PlotWidget, "experimentLossPlot") is panel.loss_plot
    assert panel.findChild(pg.PlotWidget, "experimentAccuracyPlot") is panel.accuracy_plot
    # Only the runs' curves: the name given to the constructor had made an empty curve of its own.
    assert len(panel.loss_plot.getPlotItem().listDataItems()) == 4  # A and B, per step and smoothed
    show_results(panel, qtbot, "learning_rate", [saved_run("lr 0.05", LEARNED, 0.92, 0.2555),
                                                  saved_run("lr 0.5", STUCK, 0.10, 41.5679)])
    written = sorted(os.path.basename(path) for path in export_view_data(panel, tmp_path, "convscope-experiments"))
    assert written == ["convscope-experiments-experimentaccuracyplot.csv",
                       "convscope-experiments-experimentaccuracyplot.png",
                       "convscope-experiments-experimentlossplot.csv", "convscope-experiments-experimentlossplot.png",
                       "convscope-experiments.csv", "convscope-experiments.png"]


def test_a_line_under_the_form_gives_the_runs_fixed_settings_from_their_configs(panel, qtbot):
    """The Training dock's fields (schedule, momentum, its own learning rates) stay in sight beside this page
    but do not apply: a line says what the runs use instead, read from the configs the panel plans."""
    line = panel.findChild(QtWidgets.QLabel, "experimentSettings")
    assert line is not None and line.isVisible()
    configure(panel, qtbot, "optimizer")
    runs, problems = panel.plan()
    assert not problems
    sgd, adam = (config for _, _, config in runs)
    text = line.text()
    assert f"momentum {sgd.momentum:g}" in text and sgd.schedule in text and "Training dock" in text
    assert f"learning rate {sgd.lr_conv:g}" in text and f"Adam, learning rate {adam.lr_conv:g}" in text
    panel.lr.selectAll()
    qtbot.keyClicks(panel.lr, "0.0125")  # the panel's own field: the line follows
    assert "SGD with momentum 0.9, learning rate 0.0125" in line.text()
    panel.lr.selectAll()
    qtbot.keyClicks(panel.lr, "fast")  # no learning rate to give: the fixed settings still are
    assert "learning rate" not in line.text().split("Training dock")[0] and sgd.schedule in line.text()


def test_the_raw_loss_curves_are_in_the_legend_in_a_shade_of_their_runs_colour(panel, qtbot):
    """The per-step curves were the run colours at alpha 70: near-black on the plot, two grey lines, and not in
    the legend. Now each is named after its run, next to its moving average, and keeps its run's hue."""
    background = panel.loss_plot.backgroundBrush().color()
    show_results(panel, qtbot, "learning_rate", [saved_run("lr 0.05", LEARNED, 0.92, 0.2555),
                                                 saved_run("lr 0.5", LEARNED[::-1], 0.11, 2.3)])
    legend = [label.text for _, label in panel.loss_plot.getPlotItem().legend.items]
    assert legend == ["A: lr 0.05", "A per mini-batch", "B: lr 0.5", "B per mini-batch"]
    for run, colour in zip("AB", RUN_COLOURS):
        raw = next(c for c in panel.loss_plot.getPlotItem().listDataItems() if c.name() == f"{run} per mini-batch")
        assert raw.getOriginalDataset()[1].size == len(LEARNED)
        pen = raw.opts["pen"].color()
        alpha = pen.alphaF()  # the colour as seen: blended over the plot's background
        seen = QtGui.QColor.fromRgbF(*(alpha * getattr(pen, c)() + (1 - alpha) * getattr(background, c)()
                                       for c in ("redF", "greenF", "blueF")))
        run_colour = QtGui.QColor(colour)
        assert abs(seen.hueF() - run_colour.hueF()) < 0.02, run
        assert seen.valueF() >= 0.4 * run_colour.valueF(), run  # not near-black
        assert seen.valueF() < run_colour.valueF(), run  # fainter than its moving average
        assert raw.zValue() < panel._curves["AB".index(run)]["loss_smooth"].zValue()  # drawn under it


def test_an_experiment_from_an_article_says_what_its_seed_number_names(panel, qtbot):
    """"Correct vs broken update (seed 004)" sat above the form's Random seed: a learner read random seed 4."""
    for key, article in (("broken_update", "004"), ("transposed_pool", "002"), ("optimizer", None)):
        index = panel.experiment.findData(key)
        assert index >= 0
        panel.experiment.setCurrentIndex(index)
        text = panel.description.text()
        if article:
            assert f"Seed {article} is one of the articles ConvScope grew out of: Help → Reference articles" in text
        else:
            assert "Reference articles" not in text
