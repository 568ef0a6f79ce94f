"""Numbers a learner can type: refused with the reason shown, the largest allowed ones harmless, and a
learning rate of 100 caught, explained and recoverable in one click.

The panel tests type into the real widgets with pytest-qt key events; the divergence test runs the real
MainWindow end to end (Start button, real VGG-7, real trainer thread).
"""
import dataclasses
import math
import resource
import tracemalloc

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from engine.data import load_bundled_mnist
from engine.presets import build
from engine.trainer import MAX_BATCH, MAX_EPOCHS, MAX_LR, TrainConfig, Trainer

LEFT = QtCore.Qt.MouseButton.LeftButton

# field -> values TrainConfig.validate() must refuse (the brief's list: NaN, inf, negatives, zero
# batch, absurd sizes), each reason naming the field
BAD_VALUES = {
    "epochs": [0, -1, 10**9, MAX_EPOCHS + 1, 2.5, math.nan, "10", None, True],
    "batch_size": [0, -64, 10**7, MAX_BATCH + 1, 64.0, math.inf, "64", None, False],
    "lr_conv": [math.nan, math.inf, -math.inf, -0.01, 1e6, MAX_LR * 1.01, "0.1", None, True],
    "lr_dense": [math.nan, math.inf, -1e-9, 1e6, "x"],
    "momentum": [math.nan, -0.1, 1.0, 1.5, math.inf],
    "weight_decay": [math.nan, -1e-4, 1.0, math.inf],
    "warmup_epochs": [math.nan, -1.0, math.inf, MAX_EPOCHS + 1.0],
    "seed": [-1, 2**63, 1.5, math.nan, "0"],
    "max_loss": [0.0, -5.0, math.nan, "100"],
}


def test_validate_refuses_every_bad_number_naming_the_field():
    cases = 0
    for field, values in BAD_VALUES.items():
        for value in values:
            problems = dataclasses.replace(TrainConfig(), **{field: value}).validate()
            assert problems and any(p.startswith(field) for p in problems), (field, value, problems)
            cases += 1
    assert cases >= 50
    assert TrainConfig().validate() == []
    largest = TrainConfig(epochs=MAX_EPOCHS, batch_size=MAX_BATCH, lr_conv=MAX_LR, lr_dense=MAX_LR)
    assert largest.validate() == []


@pytest.fixture
def memory_ceiling():
    """At most 1 GiB more address space while the test runs: an absurd allocation fails at once."""
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (current + (1 << 30), hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_the_largest_allowed_run_costs_no_memory_up_front(memory_ceiling):
    """epochs = MAX_EPOCHS with batch size 1 is allowed (450 million steps on the bundled set); setting
    up the trainer must not preallocate per-step buffers for all of them (that was 18 GB)."""
    train, _ = load_bundled_mnist()
    config = TrainConfig(epochs=MAX_EPOCHS, batch_size=1)
    assert config.validate() == []
    tracemalloc.start()
    try:
        trainer = Trainer(build("vgg7"), train, None, config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert trainer.total_steps == MAX_EPOCHS * len(train)
    assert peak < 64 * 2**20, f"setting up the trainer took {peak / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------------------------------
# the training panel, typed into


@pytest.fixture
def panel(qtbot):
    from app.training_panel import TrainingPanel

    widget = TrainingPanel()
    qtbot.addWidget(widget)
    widget.set_dataset("bundled", "test data", (28, 28, 1))
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def type_into(qtbot, widget: QtWidgets.QWidget, text: str) -> None:
    """Select everything in the field and type ``text`` with key events, then Tab away (as a user)."""
    widget.setFocus()
    line = widget.lineEdit() if isinstance(widget, QtWidgets.QAbstractSpinBox) else widget
    line.selectAll()
    qtbot.keyClick(line, QtCore.Qt.Key.Key_Delete)
    qtbot.keyClicks(line, text)
    if isinstance(widget, QtWidgets.QAbstractSpinBox):
        widget.interpretText()  # what Enter or leaving the field does


def shown_reasons(panel) -> str:
    return panel.errors_label.text() if panel.errors_label.isVisible() else ""


@pytest.mark.parametrize("field, label", [
    ("lr_conv", "Conv learning rate"), ("lr_dense", "Dense learning rate"), ("momentum", "Momentum"),
    ("weight_decay", "Weight decay"),
])
def test_typed_bad_numbers_are_refused_with_the_reason_shown(qtbot, panel, field, label):
    edit = panel.float_edits[field]
    bad = {"nan": "finite", "inf": "finite", "-inf": "finite", "1e400": "finite", "-0.5": "at least 0",
           "abc": "not a number", "": "not a number", "0,5": "not a number: write decimals with a dot (0.5)",
           "1e6": "at most" if field.startswith("lr") else "below 1"}
    for text, reason in bad.items():
        type_into(qtbot, edit, text)
        assert edit.text() == text
        reasons = shown_reasons(panel)
        assert label in reasons and reason in reasons, (text, reasons)
        assert "e04040" in edit.styleSheet()  # the field itself is outlined
        assert panel.config() is None
        assert not panel.start_button.isEnabled() and not panel.step_button.isEnabled()
    type_into(qtbot, edit, "0.01")
    assert shown_reasons(panel) == "" and panel.start_button.isEnabled()
    assert getattr(panel.config(), field) == 0.01


@pytest.mark.parametrize("spin_name, field, label, typed", [
    ("epochs", "epochs", "Epochs", ["1000000000", "0", "-3"]),
    ("batch_size", "batch_size", "Batch size", ["10000000", "0", "-64"]),
    ("seed", "seed", "Random seed", ["-1"]),
])
def test_typed_absurd_sizes_are_refused_with_the_reason_shown(qtbot, panel, spin_name, field, label, typed):
    """Typing 10^9 epochs or a batch of 10^7 must not silently become another number (a spin box
    that drops the keys it dislikes turns 10^7 into 1000): the value is refused and the reason shown."""
    spin = getattr(panel, spin_name)
    for text in typed:
        type_into(qtbot, spin, text)
        reasons = shown_reasons(panel)
        assert label in reasons, f"typed {text!r} into {label}: shown {spin.text()!r}, reasons {reasons!r}"
        assert panel.config() is None and not panel.start_button.isEnabled()
    type_into(qtbot, spin, "3")
    assert shown_reasons(panel) == "" and getattr(panel.config(), field) == 3


@pytest.mark.parametrize("typed", ["2.5", "2,5", "1.000"])
def test_a_decimal_typed_as_a_whole_number_is_kept_and_refused_not_read_as_digits(qtbot, panel, typed):
    """A spin box drops the keys it cannot use: "2.5" epochs became 25 without a word."""
    spin = panel.epochs
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), typed)
    assert spin.text() == typed  # the text stays as typed, with the reason it is not used
    assert f"Epochs: {typed!r} is not a whole number: type digits only" in shown_reasons(panel)
    assert panel.config() is None and not panel.start_button.isEnabled()
    # Enter puts back the number from before the edit (not the digits run together, nor those before
    # the mark: Qt read "2,5" as 25 and then 2, both silently)
    qtbot.keyClick(spin.lineEdit(), QtCore.Qt.Key.Key_Return)
    assert spin.text() == "10" and shown_reasons(panel) == "" and panel.config().epochs == 10


def test_start_follows_the_batch_size_qt_puts_back_when_the_training_panel_floats(qtbot, make_window):
    """Found by the monkey test ("0.5" typed as the batch size, then the panel's dock floated): showing the
    panel again makes the spin box rewrite its text from its value ("0" here), without a signal, and the
    reasons and Start stayed those of the "0.5" no longer there (Start disabled under a form the monkey had
    made valid)."""
    window = make_window()
    panel = window.panel
    edit = panel.batch_size.lineEdit()
    qtbot.mouseClick(edit, QtCore.Qt.MouseButton.LeftButton)
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_A, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(edit, "0.5")
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_Tab)
    assert not panel.start_button.isEnabled()  # "0.5" is refused while it is shown
    float_button = window.panel_dock.findChild(QtWidgets.QAbstractButton, "qt_dockwidget_floatbutton")
    qtbot.mouseClick(float_button, QtCore.Qt.MouseButton.LeftButton)
    # the panel shown again (its spin box rewrote the text, and the panel's own show event came right after)
    qtbot.waitUntil(lambda: window.panel_dock.isFloating() and panel.batch_size.text() != "0.5")
    assert panel.errors_label.text() == "\n".join(panel.errors())  # the reasons of what the form shows now
    assert panel.start_button.isEnabled() == (not panel.errors())


def test_a_whole_number_with_thousands_commas_is_read_as_such(qtbot, panel):
    type_into(qtbot, panel.batch_size, "1,000")
    assert shown_reasons(panel) == "" and panel.config().batch_size == 1000


@pytest.mark.parametrize("spin_name, label",
                         [("epochs", "Epochs"), ("batch_size", "Batch size"), ("seed", "Random seed")])
def test_an_emptied_whole_number_field_blocks_the_start_instead_of_using_its_old_value(qtbot, panel, spin_name,
                                                                                        label):
    spin = getattr(panel, spin_name)
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClick(spin.lineEdit(), QtCore.Qt.Key.Key_Delete)  # still in the field (leaving it restores the text)
    assert spin.text() == ""  # a spin box keeps its last value while its text is empty
    assert f"{label}: enter a whole number" in shown_reasons(panel)
    assert panel.config() is None and not panel.start_button.isEnabled()
    type_into(qtbot, spin, "7")
    assert shown_reasons(panel) == "" and panel.start_button.isEnabled()


@pytest.mark.parametrize("lr", [0.0123456789, 0.1 + 0.2, 1e-7, 5.0])
def test_a_learning_rate_shown_in_the_panel_reads_back_exactly(panel, lr):
    """Sessions and "Lower learning rates" put numbers into the panel, and a run is built from the
    panel: 6 significant digits made a resumed run part from the saved one."""
    from app.training_panel import exact_text

    panel.load_config_dict({"lr_conv": lr})
    panel.set_learning_rates(lr, lr / 3)
    config = panel.config()
    assert (config.lr_conv, config.lr_dense) == (lr, lr / 3)
    assert exact_text(0.005) == "0.005" and exact_text(0.1 + 0.2) == "0.30000000000000004"


def test_the_seed_field_names_its_own_range():
    """The seed spin box stops at 2^31 - 1 (its tooltip says so); TrainConfig would take up to 2^63 - 1."""
    from app.training_panel import TrainingPanel

    panel = TrainingPanel()
    panel.seed.setValue(-5)
    assert "Random seed must be between 0 and 2,147,483,647, got -5" in panel.errors()
    panel.deleteLater()


# ---------------------------------------------------------------------------------------------------
# diverging training in the real window


def test_learning_rate_100_diverges_is_explained_and_one_click_continues(qtbot, make_window, recording_worker):
    train, val = load_bundled_mnist()
    window = make_window(data=(train.subset(slice(0, 4500, 15)), val.subset(slice(0, 500, 10))))
    panel = window.panel
    panel.continue_check.setChecked(False)
    type_into(qtbot, panel.epochs, "5")
    for field in ("lr_conv", "lr_dense"):
        type_into(qtbot, panel.float_edits[field], "100")
    # lr 100 is allowed: the lesson is to see it fail
    assert panel.start_button.isEnabled(), shown_reasons(panel)
    qtbot.mouseClick(panel.start_button, LEFT)

    banner = panel.divergence_banner
    qtbot.waitUntil(banner.isVisible, timeout=60000)
    trainer = window.worker.trainer
    good_steps = len(recording_worker) - 1
    message = panel.divergence_text.text()
    assert f"diverged at step {good_steps + 1}" in message and "lower learning rate" in message, message
    assert "restores those of step 0" in message, message  # lr 100 wrecks the weights at once
    assert trainer.state == "diverged" and trainer.step_index == good_steps
    assert f"step {good_steps + 1}" in window.statusBar().currentMessage()
    assert not panel.start_button.isEnabled() and not panel.pause_button.isEnabled()
    assert panel.stop_button.isEnabled() and panel.lower_lr_button.isEnabled()
    # the weights from before the bad step, finite, on the trainer and (once delivered) on screen
    kept = recording_worker[-1]
    for name, value in trainer.model.get_weights().items():
        np.testing.assert_array_equal(value, kept[name])
        assert np.isfinite(value).all()
    qtbot.waitUntil(lambda: all(np.array_equal(window.display_model.params()[n], kept[n]) for n in kept),
                    timeout=5000)
    assert window.worker.is_running()  # the run is held, not ended: it can continue

    # one click per try: x0.1 and continue, until the run trains on without diverging again
    clicks = 0
    while True:
        lr_before = trainer.config.lr_conv
        steps_before = trainer.step_index
        qtbot.mouseClick(panel.lower_lr_button, LEFT)
        clicks += 1
        assert "from the weights of step" in window.statusBar().currentMessage()
        assert trainer.config.lr_conv == pytest.approx(lr_before * 0.1)
        assert float(panel.float_edits["lr_conv"].text()) == trainer.config.lr_conv  # what runs is what shows
        qtbot.waitUntil(lambda: trainer.step_index >= steps_before + 5 or banner.isVisible(), timeout=60000)
        if not banner.isVisible():
            break
        assert clicks < 4, f"still diverging after {clicks} clicks: {panel.divergence_text.text()}"
    assert window.worker.is_running() and panel.pause_button.isEnabled()
    qtbot.mouseClick(panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=10000)
    window.close()
    assert window.closed_cleanly
    print(f"lr 100: diverged at step {good_steps + 1}; trained on after {clicks} click(s) "
          f"(lr {trainer.config.lr_conv:g})")


@pytest.mark.parametrize("typed, reason", [
    ("0,05", "'0,05' is not a number: write decimals with a dot (0.05)"),
    ("-1,5e-3", "'-1,5e-3' is not a number: write decimals with a dot (-1.5e-3)"),
    ("1,000", "'1,000' is not a number"),  # thousands, or one in German: no guess
    ("0_5,1", "'0_5,1' is not a number"), ("abc", "'abc' is not a number"), ("", "'' is not a number"),
])
def test_the_reason_for_a_refused_number_names_the_fix_only_when_it_is_sure(typed, reason):
    from app.views.widgets import not_a_number

    assert not_a_number(typed) == reason



def test_settings_held_by_a_run_say_how_to_change_them(qtbot, panel):
    """The learning rates were greyed out while paused, and nothing said how to change them."""
    from app.training_panel import FIXED_DURING_RUN

    lr = panel.float_edits["lr_conv"]
    base = lr.toolTip()
    for state in ("running", "paused", "diverged"):
        panel.set_state(state)
        assert not lr.isEnabled() and lr.toolTip() == base + FIXED_DURING_RUN  # added once, not per state
        assert panel.batch_size.toolTip().endswith(FIXED_DURING_RUN)
        assert not panel.continue_check.toolTip().endswith(FIXED_DURING_RUN)
        assert not panel.preset.toolTip().endswith(FIXED_DURING_RUN)  # Continue cannot change the network
    panel.set_state("busy")  # data loading: no run to stop
    assert not lr.isEnabled() and lr.toolTip() == base
    panel.set_state("idle")
    assert lr.isEnabled() and lr.toolTip() == base
