"""Experiments panel: two trainings side by side, same initial weights and seed, one difference apart.

The learner picks one difference (seed 004's broken update, seed 002's transposed pooling backward,
average vs max pooling, SGD vs Adam, two learning rates), the network and a demo-sized run (epochs,
training images). Both runs start from the weights ``build(spec, seed)`` gives, draw the same batches
(same seed), and are plotted over each other; a comparison table and one sentence sum them up. A run can
end "finished" without having learned (seed 0's VGG-7 at learning rate 0.5 climbed to a loss of 99.85, just
under the divergence limit, and then answered "3" for every image): :func:`outcome` says so from its last
epoch, in the table and the conclusion.

Scheduling: each run has its own :class:`~app.worker.TrainingWorker` (its own QThread), started
paused, and the panel hands out single steps in turn: A, B, A, B, … (a step that ends an epoch
includes that epoch's validation). Why not both threads at full speed: on the 2 cores this app is
meant for, two busy training threads plus the GUI thread oversubscribe the machine, one run can race
ahead of the other, and the measured times mostly show who the scheduler favoured. Taking turns keeps
the two curves growing together (the learner compares them at the same step while they train), gives
each step the CPU to itself so the time column is a fair comparison, and leaves a core free for the GUI.
The cost is one queued signal round trip per step (well under a millisecond against tens of
milliseconds for a VGG-7 step). One after the other would be as fair but would hide the second curve
until the first run ends.

Closing the panel, or the window it lives in (see ``attach``), stops both runs and joins their threads.

Session files keep a finished experiment: ``session_state()`` gives its settings and each run's
history, ``restore_session(state)`` redraws the same curves, table and conclusion from them.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import types

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.export import save_png
from app.views.loss import GrowingBuffer, ema_debiased
from app.views.plots import LogFriendlyAxis, empty_loss_range, legend_above_data, style_symbols_now
from app.views.scenes import repaint_with_window
from app.views.tones import ToneLabel, is_dark
from app.views.widgets import WholeNumberBox, WrapRow, not_a_number, signed
from app.worker import TrainingWorker
from engine import data as engine_data
from engine.experiments import TINY8X8_CONFIG, RunResult, same_start_models, write_loss_csv
from engine.presets import PRESETS, build, get_preset, preset_widths
from engine.text import plural
from engine.trainer import History, TrainConfig, Trainer, refuse_batch_beyond_memory

RUN_COLOURS = ("#4aa3ff", "#ff9f40")  # run A blue, run B orange (readable on pyqtgraph's black)
SMOOTHING = 0.8                       # EMA of the per-step curves (few dozen steps: light smoothing)
MAX_VAL = 1000                        # per-epoch validation on at most this many images (full MNIST: 10,000)
DEFAULT_TRAIN = 2000                  # training images by default: 2 epochs take well under a minute each
SHUTDOWN_MS = 2000
DENSE_WIDTHS = ("dense1", "dense2")   # sizes seed 002 compared (18/20, 28/36, 48/56), offered where a network has both
REDRAW_MS = 100                       # curves are redrawn at most 10 times a second
POOL_TYPES = ("AvgPool2D", "MaxPool2D")
SYMBOL_SIZE = 7                       # px across a curve's dots
# The per-step (raw) loss curves: each run's colour at this share of its brightness, opaque. They were the run
# colours at alpha 70 of 255, which on the plots' black came out near-black and read as two grey lines; at
# half brightness they keep their hue (tell the runs apart) and stay quieter than the moving averages.
RAW_SHADE = 0.5
RAW_NAME = "{} per mini-batch"        # legend name of run {}'s raw loss curve


def raw_colour(colour: str) -> QtGui.QColor:
    """The raw per-step curve's colour for a run drawn in ``colour``: its hue, RAW_SHADE of its brightness."""
    hue, saturation, value, _ = QtGui.QColor(colour).getHsvF()
    return QtGui.QColor.fromHsvF(hue, saturation, value * RAW_SHADE)
# A run "did not learn" when its accuracy ends at chance level: at most this many points above 1 / classes.
# Answering one digit for every image scores that digit's share (about 9 to 11% on MNIST), and the 500
# or 1,000 validation images measure accuracy to about a point either way.
CHANCE_POINTS = 3.0
# Its loss "rose" when the mean training loss of its last epoch is this many times its first mini-batch's
# loss (taken before any update). A margin, not 1: one batch's loss is noisy (a two-step epoch of 32
# images averaged 2.45 after a first batch of 2.24, and reached 20% where chance is 10%).
LOSS_ROSE = 1.25
# Runs this many points apart or closer may swap places with another seed; a larger gap is no coin toss.
SMALL_GAP = 3.0


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One choice of the experiment list. ``second``: (field label, default, tooltip) of the value
    only run B uses (Adam's or the second learning rate), None when B needs no value."""

    key: str
    title: str
    tooltip: str
    second: tuple[str, float, str] | None = None


EXPERIMENTS = (
    Experiment("broken_update", "Correct vs broken update (seed 004)",
               "Seed 004's typo: the second conv layer's kernel (not its bias) is updated with the first "
               "layer's kernel gradient, averaged over its input channels and repeated over the second's. The loss "
               "still falls and accuracy can end close (the article saw 78% against 84% on 50 test digits, a "
               "gap within the noise of so few; here a few epochs give a point or two either way, depending "
               "on the seed): the gradient check is what catches the bug for sure."),
    Experiment("transposed_pool", "Correct vs transposed pooling backward (seed 002)",
               "Seed 002's experiment: the pooling backward pass transposes δ (and a max pool's mask), so "
               "∂L/∂x comes out transposed: off the diagonal, each window's blame lands in the mirrored "
               "window, and with max pooling even a diagonal window's blame goes to the mirrored cell of its "
               "winner. The network still learns, from partly wrong gradients."),
    Experiment("pooling", "Average vs max pooling",
               "The same network with average pooling (VGG-7's choice) and with max pooling (seeds 002, 003). "
               "Pooling has no weights, so both runs start from identical weights."),
    Experiment("optimizer", "SGD vs Adam",
               "SGD with momentum against Adam, which steps each weight by a running average of its gradient "
               "divided by the square root of a running average of its square. Adam wants a far smaller "
               "learning rate (about 0.001).",
               ("Adam learning rate", 0.001, "Learning rate of run B (Adam), for conv and dense layers.")),
    Experiment("learning_rate", "One learning rate vs another",
               "The same run with two learning rates: too small learns slowly, too large makes the loss jump "
               "or diverge, or can leave the network stuck at chance, answering one digit for every image "
               "(try 0.5).",
               ("Run B learning rate", 0.005, "Learning rate of run B, for conv and dense layers.")),
)
EXPERIMENT_BY_KEY = {e.key: e for e in EXPERIMENTS}

TABLE_COLUMNS = (
    ("Run", "The two runs: A (blue) and B (orange)."),
    ("Val accuracy", "Accuracy on the validation images after the last finished epoch."),
    ("Val loss", "Mean loss on the validation images after the last finished epoch."),
    ("Train loss", "Mean training loss over the last finished epoch."),
    ("Time", "Compute time of the training steps (forward, backward, update) over the finished epochs, as "
             "the trainer measured it. The runs take turns, so their steps never compete with each other (the "
             "main training run, when it is going, shares the CPU with both)."),
    ("Steps", "Optimiser steps done."),
    ("Ended", "finished, stopped, or diverged (the loss blew up: try a lower learning rate). A run that ended "
              "without diverging can still have failed: \"did not learn\" when its accuracy ended at chance "
              "level (what answering one class for everything scores), \"loss rose\" when its last epoch's "
              "training loss ended well above its first mini-batch's."),
)


def with_pooling(spec: dict, pool_type: str) -> dict:
    """A copy of ``spec`` with every pooling layer made ``pool_type`` ("AvgPool2D" or "MaxPool2D");
    names, sizes and everything else unchanged."""
    spec = copy.deepcopy(spec)
    for layer in spec["layers"]:
        if layer["type"] in POOL_TYPES:
            layer["type"] = pool_type
    return spec


def unavailable_reason(key: str, spec: dict) -> str | None:
    """Why experiment ``key`` cannot run on the network ``spec`` (None when it can)."""
    if key in ("broken_update", "transposed_pool"):
        try:
            build(spec).variant = key  # the engine knows which networks a variant fits
        except ValueError as error:
            return str(error)
    if key == "pooling" and not any(layer["type"] in POOL_TYPES for layer in spec["layers"]):
        return "this network has no pooling layer"
    return None


# TrainConfig's field names as this panel's fields call them (both learning rates are one field here).
_FIELD_NAMES = {"lr_conv": "learning rate", "lr_dense": "learning rate", "batch_size": "batch size"}


def _run_problems(per_run: list[tuple[str, list[str]]]) -> list[str]:
    """The runs' TrainConfig problems ([(run label, problems)]) in the panel's words, each once: a
    problem every run has is given without a run label ("learning rate must be …", not four lines
    naming lr_conv and lr_dense for each run)."""
    def worded(problem):
        field, rest = problem.split(" ", 1)
        return f"{_FIELD_NAMES.get(field, field)} {rest}"
    worded_runs = [(label, list(dict.fromkeys(worded(p) for p in problems))) for label, problems in per_run]
    shared = [p for p in worded_runs[0][1] if all(p in ps for _, ps in worded_runs)] if worded_runs else []
    return shared + [f"{label}: {p}" for label, ps in worded_runs for p in ps if p not in shared]


def plan_runs(key: str, spec: dict, config: TrainConfig, second: float | None) -> list[tuple[str, dict, TrainConfig]]:
    """The two runs of experiment ``key``: [(label, spec, config)] for A and B. ``config`` is run A's
    (and the shared part of B's); ``second`` is B's own value where the experiment has one."""
    same = dataclasses.replace
    if key == "broken_update":
        return [("correct", spec, same(config, variant=None)),
                ("broken update", spec, same(config, variant="broken_update"))]
    if key == "transposed_pool":
        return [("correct", spec, same(config, variant=None)),
                ("transposed pooling", spec, same(config, variant="transposed_pool"))]
    if key == "pooling":
        return [("average pooling", with_pooling(spec, "AvgPool2D"), config),
                ("max pooling", with_pooling(spec, "MaxPool2D"), config)]
    if key == "optimizer":
        return [(f"SGD, lr {config.lr_conv:g}", spec, same(config, optimizer="sgd")),
                (f"Adam, lr {second:g}", spec, same(config, optimizer="adam", lr_conv=second, lr_dense=second))]
    if key == "learning_rate":
        return [(f"lr {config.lr_conv:g}", spec, config),
                (f"lr {second:g}", spec, same(config, lr_conv=second, lr_dense=second))]
    raise KeyError(key)


_SCHEDULES = {"constant": "a constant learning rate", "cosine": "a cosine learning-rate schedule",
              "step": "a step schedule (x0.1 at 50% and 75% of the run)"}


def _optimiser_words(config: TrainConfig, with_lr: bool = True) -> str:
    """A run's optimiser in words: "SGD with momentum 0.9, learning rate 0.05"."""
    words = {"sgd": "SGD", "adam": "Adam"}.get(config.optimizer, config.optimizer)
    if config.optimizer == "sgd":
        words += f" with momentum {config.momentum:g}" if config.momentum else " without momentum"
    if with_lr:
        same = config.lr_conv == config.lr_dense
        words += (f", learning rate {config.lr_conv:g}" if same
                  else f", learning rates {config.lr_conv:g} (conv) and {config.lr_dense:g} (dense)")
    return words


def settings_text(runs: list[tuple[str, TrainConfig]], with_lr: bool = True) -> str:
    """What the runs' configs fix beyond the form's fields, in one line ([(run letter, config)]): the
    schedule, warm-up, weight decay, augmentation and each run's optimiser, read from the configs the
    panel hands to the trainers (so the line cannot drift from what the runs use). The main window's
    Training dock has fields for all of these, and none of them applies here."""
    configs = [config for _, config in runs]
    first = configs[0]
    shared = [_SCHEDULES.get(first.schedule, f"a {first.schedule} schedule"),
              "no warm-up" if not first.warmup_epochs else f"{first.warmup_epochs:g} epochs of warm-up",
              "no weight decay" if not first.weight_decay else f"weight decay {first.weight_decay:g}",
              "augmented images" if first.augment else "no augmentation"]
    if any((c.schedule, c.warmup_epochs, c.weight_decay, c.augment)
           != (first.schedule, first.warmup_epochs, first.weight_decay, first.augment) for c in configs):
        raise ValueError("the runs differ in settings this line gives as shared")  # plan_runs never does that
    optimisers = [_optimiser_words(c, with_lr) for c in configs]
    if len(set(optimisers)) == 1:
        used = f"{', '.join(shared)}, {optimisers[0]}."
    else:
        each = "; ".join(f"{letter}: {words}" for (letter, _), words in zip(runs, optimisers))
        used = f"{', '.join(shared)}. {each}."
    return (f"Both runs use {used} The Training dock's settings (learning rates, "
            "optimiser, schedule, augmentation…) do not apply to experiments.")


def _step_seconds(history: History) -> float:
    """Step time over the finished epochs (forward, backward, update; validation excluded), as the
    trainer measured it on its own thread: unlike wall time between turns, it does not depend on
    when the GUI thread got round to handing over."""
    return float(history.epochs["seconds"].array().sum())


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a run's last finished epoch says about whether it learned (see :func:`outcome`)."""

    accuracy: float      # in [0, 1], on the validation images (on the training images without any)
    measured_on: str     # "validation" or "training"
    classes: int         # how many classes the network tells apart (2 for an L2 network's one output)
    first_loss: float    # the first mini-batch's loss, before any update
    last_loss: float     # mean training loss over the last finished epoch

    @property
    def chance(self) -> float:
        return 1.0 / self.classes

    @property
    def at_chance(self) -> bool:
        return self.accuracy <= self.chance + CHANCE_POINTS / 100

    @property
    def loss_rose(self) -> bool:
        return self.last_loss > LOSS_ROSE * self.first_loss

    @property
    def failed(self) -> bool:
        return self.at_chance or self.loss_rose

    def ended_note(self) -> str:
        """For the table's Ended column, after "finished" or "stopped" ("" for a run that learned)."""
        rose = f"loss rose {self.first_loss:.3g} → {self.last_loss:.3g}"
        if self.at_chance:
            return "did not learn (stuck at chance" + (f"; {rose})" if self.loss_rose else ")")
        return rose if self.loss_rose else ""

    def sentence(self, label: str) -> str:
        """The conclusion's words for a run that failed ("" for a run that learned)."""
        rose = (f"its training loss ended above where it started ({self.first_loss:.3g} on the first mini-batch, "
                f"{self.last_loss:.3g} averaged over the last epoch)")
        if self.at_chance:
            return (f"<b>{label}</b> did not learn: its {self.measured_on} accuracy ended at chance level "
                    f"({self.accuracy:.1%}; answering the same one of {self.classes} classes for every image scores "
                    f"about {self.chance:.0%})" + (f", and {rose}." if self.loss_rose else "."))
        if self.loss_rose:
            return f"<b>{label}</b>: {rose}: its updates made the loss worse, not better."
        return ""


def outcome(run, classes: int) -> Outcome | None:
    """Whether ``run`` (a :class:`_Run` that has ended, or a :class:`_SavedRun`) learned, from its last
    finished epoch: None before one has finished, and for a run that diverged or failed (its own
    ending says what went wrong). ``classes``: how many classes the network tells apart."""
    if run.reason not in ("finished", "stopped") or not run.epochs.size or not run.steps.size:
        return None
    accuracy, measured_on = float(run.epochs.data(1)[-1]), "validation"
    if not np.isfinite(accuracy):  # no validation images: the training images are all there is
        accuracy, measured_on = float(run.trainer.history.epochs["train_accuracy"].array()[-1]), "training"
    first, last = float(run.steps.data(1)[0]), float(run.epochs.data(3)[-1])
    if not all(np.isfinite(v) for v in (accuracy, first, last)):
        return None
    return Outcome(accuracy, measured_on, classes, first, last)


class _SavedRun:
    """A run of an experiment read back from a session (``ExperimentsPanel.session_state``): what the
    plots, the table, the conclusion and the CSV export read from a run. ``trainer`` stands in for the
    finished trainer (``history``, ``total_steps``). ValueError/KeyError/TypeError for a bad entry."""

    closed = True
    has_turn = False
    wants_steps = False

    def __init__(self, index: int, saved: dict) -> None:
        history = History()
        history.load_state_dict(saved["history"])
        self.index = index
        self.label, self.reason = str(saved["label"]), str(saved["reason"])
        self.message = str(saved["message"])
        self.step = int(saved["step"])
        self.trainer = types.SimpleNamespace(history=history, total_steps=int(saved["total_steps"]))
        self.steps = GrowingBuffer(5)
        self.epochs = GrowingBuffer(4)
        steps, epochs = history.steps, history.epochs
        loss, accuracy = steps["loss"].array(), steps["accuracy"].array()
        self.steps.append(steps["epoch_fraction"].array(), loss, ema_debiased(loss, SMOOTHING, (0.0, 0))[0],
                          accuracy, ema_debiased(accuracy, SMOOTHING, (0.0, 0))[0])
        n = len(epochs["train_loss"])
        self.epochs.append(np.arange(1, n + 1), epochs["val_accuracy"].array(), epochs["val_loss"].array(),
                           epochs["train_loss"].array())

    @property
    def seconds(self) -> float:
        return _step_seconds(self.trainer.history)

    def shutdown(self) -> bool:
        return True


class _Run(QtCore.QObject):
    """One run of the experiment, on the GUI thread: its worker, curves, epoch results and time.

    The worker's signals arrive here (queued); the panel is told when the run's turn is over.
    """

    def __init__(self, panel: "ExperimentsPanel", index: int, label: str, trainer: Trainer) -> None:
        super().__init__()
        self.panel = panel
        self.index = index
        self.label = label
        self.trainer = trainer
        self.initial_weights = trainer.model.get_weights()  # copies, before the first step
        self.steps = GrowingBuffer(5)   # epoch fraction, loss, smoothed loss, accuracy, smoothed accuracy
        self.epochs = GrowingBuffer(4)  # epoch, val accuracy, val loss, train loss
        self._loss_ema = (0.0, 0)
        self._acc_ema = (0.0, 0)
        self.step = 0
        self.has_turn = False               # its step has been requested and not reported yet
        self.reason: str | None = None      # how it ended
        self.message = ""
        self.closed = False                 # shut down: late queued signals are ignored
        self.worker = TrainingWorker(trainer)
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        self.worker.steps.connect(self._on_steps, queued)
        self.worker.epoch.connect(self._on_epoch, queued)
        self.worker.diverged.connect(self._on_diverged, queued)
        self.worker.failed.connect(self._on_failed, queued)
        self.worker.done.connect(self._on_done, queued)

    @property
    def wants_steps(self) -> bool:
        return self.reason is None and self.step < self.trainer.total_steps

    @property
    def seconds(self) -> float:
        return _step_seconds(self.trainer.history)

    def request_step(self) -> None:
        self.has_turn = True
        self.worker.request_step()

    def shutdown(self) -> bool:
        self.closed = True
        return self.worker.shutdown(SHUTDOWN_MS)

    @QtCore.Slot(object)
    def _on_steps(self, batch: dict) -> None:
        if self.closed:
            return
        loss_smooth, self._loss_ema = ema_debiased(batch["loss"], SMOOTHING, self._loss_ema)
        acc_smooth, self._acc_ema = ema_debiased(batch["accuracy"], SMOOTHING, self._acc_ema)
        self.steps.append(batch["epoch_fraction"], batch["loss"], loss_smooth, batch["accuracy"], acc_smooth)
        self.step = int(batch["step"][-1])
        self.panel._steps_arrived(self)
        if self.step % self.trainer.steps_per_epoch:
            self.panel._turn_over(self)
        # else: the step ended an epoch; the turn ends with its validation (the epoch signal)

    @QtCore.Slot(object)
    def _on_epoch(self, event: dict) -> None:
        if self.closed:
            return
        nan = float("nan")
        self.epochs.append([event["epoch"]], [nan if event["val_accuracy"] is None else event["val_accuracy"]],
                           [nan if event["val_loss"] is None else event["val_loss"]], [event["train_loss"]])
        self.panel._steps_arrived(self)
        self.panel._turn_over(self)

    @QtCore.Slot(object)
    def _on_diverged(self, event: dict) -> None:
        if not self.closed:
            self.message = event["message"]

    @QtCore.Slot(object)
    def _on_failed(self, text: str) -> None:
        if not self.closed:
            self.message = text.strip().splitlines()[-1]

    @QtCore.Slot(str)
    def _on_done(self, reason: str) -> None:
        if self.closed:
            return
        self.reason = reason
        self.shutdown()  # the run is over: join its thread now
        self.panel._run_ended(self)


class ExperimentsPanel(QtWidgets.QWidget):
    """The experiments panel (objectName ``experimentsPanel``).

    ``set_datasets(train, val)`` chooses the data (``attach(window)`` uses the window's and follows it);
    ``start()`` / ``stop()`` as the buttons; ``runs``: the current experiment's runs (A, B), each with
    ``label``, ``trainer``, ``initial_weights``, ``seconds``, ``reason``; ``state``: "idle" or "running";
    ``shutdown()`` stops and joins both runs. ``finished`` is emitted when both runs have ended.
    """

    finished = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("experimentsPanel")
        self.setToolTip("Train the same network twice from the same starting weights, changing one thing, "
                        "and watch what that one thing does to learning.")
        self.runs: list[_Run] = []
        self._run_settings: dict = {}  # the form as it was when the shown runs started (see session_state)
        self.state = "idle"
        self._dirty: set[int] = set()  # runs with points not drawn yet
        self._redraw_timer = QtCore.QTimer(self, singleShot=True, interval=REDRAW_MS)
        self._redraw_timer.timeout.connect(self._redraw)
        self._stopping = False
        self._window = None
        self._train = self._val = None
        self._classes = 10         # classes of the shown runs' network: chance level is one in this many
        self._x_extent: float | None = None  # epochs of the running experiment: the loss plot's x range

        self.experiment = QtWidgets.QComboBox(objectName="experimentCombo")
        for e in EXPERIMENTS:
            self.experiment.addItem(e.title, e.key)
            self.experiment.setItemData(self.experiment.count() - 1, e.tooltip, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.network = QtWidgets.QComboBox(objectName="experimentNetwork")
        self.network.setToolTip("The network both runs train (only those that fit the loaded images).")
        self.epochs = self._spin("experimentEpochs", 1, 500, 2, "Passes over the training images, per run.")
        self.train_size = self._spin("experimentTrainSize", 10, 60000, DEFAULT_TRAIN,
                                     "How many training images each run sees (the same ones, in the same order). "
                                     "Fewer images: a quicker demo.")
        self.batch_size = self._spin("experimentBatch", 1, 1024, 64, "Images per mini-batch (one update each).")
        self.seed = self._spin("experimentSeed", 0, 2**31 - 1, 0,
                               "Seed of the shared initial weights, the shuffling and dropout: both runs use it.")
        self.lr = QtWidgets.QLineEdit("0.05", objectName="experimentLr")
        self.lr.setToolTip("Learning rate of run A (both runs unless the experiment changes it), for conv and "
                           "dense layers. The line under the description gives the settings the runs share.")
        self.second_label = QtWidgets.QLabel()
        self.second = QtWidgets.QLineEdit(objectName="experimentSecond")
        self.description = QtWidgets.QLabel(objectName="experimentDescription")
        self.description.setWordWrap(True)
        # What the runs use besides the form's fields, and that the Training dock's fields (visible beside this
        # page, with a learning rate of their own) do not apply: a learner changed the dock's and saw no change.
        self.settings_line = QtWidgets.QLabel(objectName="experimentSettings")
        self.settings_line.setWordWrap(True)
        self.settings_line.setToolTip("Fixed for experiments. To train with other settings, use the Training dock "
                                      "and the Training tab.")
        self.start_button = QtWidgets.QPushButton("Run both", objectName="experimentStart")
        self.start_button.setToolTip("Train run A and run B, one mini-batch each in turn.")
        self.stop_button = QtWidgets.QPushButton("Stop", objectName="experimentStop")
        self.stop_button.setToolTip("Stop both runs; the table shows where they got to.")
        self.stop_button.setEnabled(False)
        self.status = ToneLabel(objectName="experimentStatus")
        self.status.setWordWrap(True)
        self.log_y = QtWidgets.QCheckBox("Loss on a log scale", objectName="experimentLogY")
        self.log_y.setToolTip("Show the loss plot on a logarithmic axis: a run whose loss jumped to 100 no longer "
                              "flattens one that fell to 0.1 into a line along the bottom.")
        self.dense_widths = {
            name: self._spin(f"experiment{name.capitalize()}", 1, 4096, 1,
                             f"Units of {name} in both runs (seed 002 compared 18/20 and 48/56 with its "
                             "base 28/36 under its transposed pooling backward).")
            for name in DENSE_WIDTHS}
        self.widths_label = QtWidgets.QLabel("Dense widths")
        self.widths_row = QtWidgets.QWidget()
        widths_layout = QtWidgets.QHBoxLayout(self.widths_row)
        widths_layout.setContentsMargins(0, 0, 0, 0)
        for name, spin in self.dense_widths.items():
            spin.setAccessibleName(f"{name} units")
            widths_layout.addWidget(spin)
        self._offers_widths = False  # the network has dense1 and dense2 widths (set with the network)
        self.widths_label.hide()
        self.widths_row.hide()

        # Two columns of fields, the second one below the first in a narrow window (WrapRow).
        columns = []
        for fields in ((("Experiment", self.experiment), ("Epochs", self.epochs), ("Batch size", self.batch_size),
                        ("Learning rate", self.lr)),
                       (("Network", self.network), ("Training images", self.train_size), ("Random seed", self.seed),
                        (self.second_label, self.second), (self.widths_label, self.widths_row))):
            grid = QtWidgets.QGridLayout()
            for r, (label, field) in enumerate(fields):
                grid.addWidget(QtWidgets.QLabel(label) if isinstance(label, str) else label, r, 0)
                grid.addWidget(field, r, 1)
            grid.setColumnStretch(2, 1)  # fields at their natural width, the spare width to the right
            grid.setRowStretch(len(fields), 1)  # and rows at the top: side by side, rows line up
            columns.append(grid)
        form = WrapRow(*columns, stretch=(0, 1))
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.log_y)

        self.loss_plot = self._plot("experimentLossPlot", "loss per step",
                                    "Training loss of each mini-batch (faint) and its moving average, for both runs. "
                                    "Same batches, same start: any gap comes from the one difference.")
        self.accuracy_plot = self._plot("experimentAccuracyPlot", "accuracy (%)",
                                        "Mini-batch accuracy (moving average, lines) and validation accuracy after "
                                        "each epoch (dots), for both runs.")
        self.accuracy_plot.getPlotItem().setXLink(self.loss_plot.getPlotItem())
        self.hint = pg.TextItem("Press Run both: A and B train in turn, one mini-batch each,\nand their curves "
                                "grow here side by side.", color="#aaaaaa", anchor=(0.5, 0.5))
        self.loss_plot.getPlotItem().addItem(self.hint, ignoreBounds=True)
        self._show_empty()
        self._curves = []
        for k, colour in enumerate(RUN_COLOURS):
            curves = {"loss_smooth": self._curve(self.loss_plot, colour, f"{'AB'[k]}"),
                      # after its moving average in the legend, under it on the plot
                      "loss": self._curve(self.loss_plot, raw_colour(colour), RAW_NAME.format("AB"[k])),
                      # a moving average per step, not the Loss page's per-epoch mean "train accuracy"
                      "acc_smooth": self._curve(self.accuracy_plot, colour, f"{'AB'[k]} training (moving average)"),
                      # B's dots hollow: at an epoch where both runs validate alike, B's drawn over A's hid it
                      "val_acc": self._curve(self.accuracy_plot, colour, f"{'AB'[k]} validation", symbol="o",
                                             style=QtCore.Qt.PenStyle.DashLine, hollow=k == 1)}
            curves["loss"].setZValue(-1)
            self._curves.append(curves)

        self.table = QtWidgets.QTableWidget(2, len(TABLE_COLUMNS), objectName="comparisonTable")
        self.table.setTabKeyNavigation(False)  # Tab leaves the table (it walked its cells forever)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        for j, (title, tip) in enumerate(TABLE_COLUMNS):
            item = QtWidgets.QTableWidgetItem(title)
            item.setToolTip(tip)
            self.table.setHorizontalHeaderItem(j, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        # "Ended" takes the width left and shortens a long divergence message with "…" (its tooltip holds
        # it whole): a horizontal scroll bar inside the table's fixed height hid run B's row.
        header.setSectionResizeMode(len(TABLE_COLUMNS) - 1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.table.setToolTip("How the two runs ended: final accuracy and loss on validation images, time.")
        self.table.setFixedHeight(self._table_height())  # both rows, always: the plots give way instead
        self.conclusion = QtWidgets.QLabel(objectName="experimentConclusion")
        self.conclusion.setWordWrap(True)
        self.conclusion.setToolTip("The comparison in one sentence.")
        self.conclusion.setMinimumHeight(2 * self.conclusion.fontMetrics().lineSpacing() + 4)  # no jump at the end

        self.results = QtWidgets.QWidget()  # what export_png shows: plots, table, conclusion
        results = QtWidgets.QVBoxLayout(self.results)
        results.setContentsMargins(0, 0, 0, 0)
        results.addWidget(self.loss_plot, 3)
        results.addWidget(self.accuracy_plot, 2)
        results.addWidget(self.table)
        results.addWidget(self.conclusion)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(form)
        layout.addWidget(self.description)
        layout.addWidget(self.settings_line)
        layout.addLayout(buttons)
        layout.addWidget(self.results, 1)
        self.setMinimumHeight(640)

        self.experiment.currentIndexChanged.connect(self._experiment_changed)
        self.network.currentIndexChanged.connect(self._network_changed)
        for edit in (self.lr, self.second):
            edit.textChanged.connect(self._validate)
        for spin in (self.epochs, self.train_size, self.batch_size, self.seed, *self.dense_widths.values()):
            spin.valueChanged.connect(self._validate)
            spin.lineEdit().textChanged.connect(self._validate)  # also text it cannot use, e.g. "2.5"
            spin.editingFinished.connect(self._validate)  # that text put back (without textChanged)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.log_y.toggled.connect(self.set_log_y)
        self._experiment_changed()

    # ------------------------------------------------------------------ building blocks

    @staticmethod
    def _spin(name: str, low: int, high: int, value: int, tip: str) -> WholeNumberBox:
        spin = WholeNumberBox(objectName=name)
        spin.setRange(low, high)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    @staticmethod
    def _plot(name: str, ylabel: str, tip: str) -> pg.PlotWidget:
        # Not PlotWidget(objectName=name): pyqtgraph hands keywords it does not know to PlotItem.plot(), which
        # made an empty curve of it and left the widget without a name (findChild found nothing, and File →
        # Export data wrote convscope-experiments-plot-1.png and -plot-2).
        plot = pg.PlotWidget(axisItems={"left": LogFriendlyAxis("left")})
        plot.setObjectName(name)
        repaint_with_window(plot)
        plot.setToolTip(tip)
        item = plot.getPlotItem()
        item.setLabel("left", ylabel)
        item.setLabel("bottom", "epoch")
        item.getAxis("bottom").enableAutoSIPrefix(False)  # "0.25 epoch", not "250 (x0.001)"
        # No grid: pyqtgraph paints grid lines with the axes, and blending them over the whole plot on
        # every update cost the GUI thread about 15 ms per axis (a third of its time during a run).
        legend_above_data(item)
        # Room above and below the curves, so they do not run along the frame.
        item.getViewBox().setDefaultPadding(0.06)
        plot.setMinimumHeight(150)
        # Take the space there is rather than ask for a preferred height: the tab's scroll area sizes
        # the panel by its preferred height and would otherwise push the table out of sight.
        plot.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Ignored)
        return plot

    @staticmethod
    def _curve(plot: pg.PlotWidget, colour, name: str | None, symbol: str | None = None,
               style: QtCore.Qt.PenStyle = QtCore.Qt.PenStyle.SolidLine, hollow: bool = False) -> pg.PlotDataItem:
        """One curve, created once and updated with setData (1 px pen); ``hollow``: its dots are rings."""
        curve = plot.getPlotItem().plot(pen=pg.mkPen(colour, width=1, style=style), name=name, symbol=symbol,
                                        symbolSize=SYMBOL_SIZE, symbolPen=pg.mkPen(colour, width=1),
                                        symbolBrush=pg.mkBrush(colour) if symbol and not hollow else None)
        if symbol:
            style_symbols_now(curve)  # the empty plot's legend: the validation dots in the runs' colours
        return curve

    def _table_height(self) -> int:
        header = self.table.horizontalHeader().sizeHint().height()
        return header + 2 * self.table.verticalHeader().defaultSectionSize() + 2 * self.table.frameWidth() + 2

    # ------------------------------------------------------------------ data and window

    def attach(self, window) -> None:
        """Train on the window's datasets (re-read on every start) and stop the runs when it closes. A window
        with a ``shutdown()`` (the MainWindow) stops its views itself, once it has decided to close: it may
        ask first, and a Cancel must find the runs still going (a Close filter runs before it can ask)."""
        self._window = window
        if not callable(getattr(window, "shutdown", None)):
            window.installEventFilter(self)
        self._refresh_networks()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        # getattr: a panel that has become garbage may still get events while the collector takes it
        # apart (its attributes are cleared before Qt removes the filter)
        if watched is getattr(self, "_window", None) and event.type() == QtCore.QEvent.Type.Close:
            self.shutdown()
        return False

    def set_datasets(self, train, val) -> None:
        """Use ``train`` and ``val`` (Datasets, ``x: (N, H, W, C)``) instead of the window's."""
        self._train, self._val = train, val
        self._refresh_networks()

    def _datasets(self):
        """(train, val): set explicitly, else the window's, else the bundled MNIST split."""
        if self._train is not None:
            return self._train, self._val
        if self._window is not None and getattr(self._window, "train_data", None) is not None:
            return self._window.train_data, self._window.val_data
        self._train, self._val = engine_data.load_bundled_mnist()
        return self._train, self._val

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self.state == "idle":
            self._refresh_networks()  # the window may have loaded other data meanwhile

    def _refresh_networks(self) -> None:
        train, _ = self._datasets()
        shape = tuple(train.x.shape[1:])
        names = [n for n in PRESETS if tuple(get_preset(n)["input_shape"]) == shape]
        if names != [self.network.itemData(i) for i in range(self.network.count())]:
            current = self.network.currentData()
            self.network.blockSignals(True)
            self.network.clear()
            for name in names:
                self.network.addItem(name, name)
            if current in names:
                self.network.setCurrentIndex(names.index(current))
            self.network.blockSignals(False)
            self._network_changed()
        self.train_size.setMaximum(len(train))
        self._validate()

    def _network_changed(self) -> None:
        name = self.network.currentData()
        widths = {} if name is None else preset_widths(name)
        self._offers_widths = all(key in widths for key in DENSE_WIDTHS)
        self.widths_label.setVisible(self._offers_widths)
        self.widths_row.setVisible(self._offers_widths)
        if self._offers_widths:
            for key, spin in self.dense_widths.items():
                spin.setValue(widths[key])
        if name == "tiny8x8":  # seed 002's settings for its tiny network (engine.experiments)
            self.batch_size.setValue(TINY8X8_CONFIG.batch_size)
            self.lr.setText(f"{TINY8X8_CONFIG.lr_conv:g}")
            self.epochs.setValue(20)
        # An experiment this network cannot run (VGG-7's broken update on tiny8x8) gives way to the first it can:
        # the panel opened on 8x8 digits with Run both greyed out and an error.
        spec = self._spec()
        if spec is not None and unavailable_reason(self.experiment.currentData(), spec):
            fitting = [i for i, e in enumerate(EXPERIMENTS) if not unavailable_reason(e.key, spec)]
            if fitting:
                self.experiment.blockSignals(True)
                self.experiment.setCurrentIndex(fitting[0])
                self.experiment.blockSignals(False)
        self._experiment_changed()

    # ------------------------------------------------------------------ settings

    def _experiment_changed(self) -> None:
        e = EXPERIMENT_BY_KEY[self.experiment.currentData()]
        self.experiment.setToolTip(e.tooltip)
        article = re.search(r"seed (\d{3})", e.title)
        # "seed 004" beside the form's Random seed read as a random seed: say once what it names
        source = (f" <i>(Seed {article[1]} is one of the articles ConvScope grew out of: Help → Reference "
                  "articles.)</i>" if article else "")
        self.description.setText(f"<b>{e.title}.</b> {e.tooltip}{source}")
        self.second_label.setVisible(e.second is not None)
        self.second.setVisible(e.second is not None)
        if e.second is not None:
            label, default, tip = e.second
            self.second_label.setText(label)
            self.second.setToolTip(tip)
            self.second.setText(f"{default:g}")
        # Greyed-out choices that do not fit the network, with the reason as their tooltip.
        spec = self._spec()
        model = self.experiment.model()
        for i, other in enumerate(EXPERIMENTS):
            reason = None if spec is None else unavailable_reason(other.key, spec)
            item = model.item(i)
            item.setEnabled(reason is None)
            item.setToolTip(other.tooltip if reason is None else f"Not for this network: {reason}.")
        self._validate()

    def _spec(self) -> dict | None:
        """The network both runs train: the chosen preset with the dense widths shown (where it has them)."""
        name = self.network.currentData()
        if name is None:
            return None
        return get_preset(name, **self._widths())

    def _widths(self) -> dict[str, int]:
        """{"dense1": units, "dense2": units} when the network's dense widths are offered, else {}."""
        return {key: spin.value() for key, spin in self.dense_widths.items()} if self._offers_widths else {}

    def plan(self) -> tuple[list[tuple[str, dict, TrainConfig]], list[str]]:
        """The two runs the settings describe ([(label, spec, config)]) and the problems (empty when fine)."""
        problems = []
        spec = self._spec()
        if spec is None:
            return [], ["no network fits the loaded images"]
        key = self.experiment.currentData()
        reason = unavailable_reason(key, spec)
        if reason:
            problems.append(f"{EXPERIMENT_BY_KEY[key].title} does not fit {spec['name']}: {reason}")
        for name, spin in (("epochs", self.epochs), ("training images", self.train_size),
                           ("batch size", self.batch_size), ("seed", self.seed),
                           *(self.dense_widths.items() if self._widths() else ())):
            if problem := spin.problem():
                problems.append(f"{name}: {problem}")
        experiment = EXPERIMENT_BY_KEY[key]
        fields = [("learning rate", self.lr)] + ([(experiment.second[0], self.second)] if experiment.second else [])
        values = []
        for name, edit in fields:
            try:
                values.append(float(edit.text()))
            except ValueError:
                problems.append(f"{name}: {not_a_number(edit.text())}")
        if problems:
            return [], problems
        config = self._config(spec, values[0])
        runs = plan_runs(key, spec, config, values[1] if len(values) > 1 else None)
        problems = _run_problems([(label, cfg.validate()) for label, _, cfg in runs])
        return (runs if not problems else []), problems

    def _config(self, spec: dict, lr: float) -> TrainConfig:
        """Run A's config (and the shared part of B's, see plan_runs): the form's fields, TrainConfig's
        defaults for the rest (schedule, momentum, …: the settings line says which)."""
        return TrainConfig(preset=spec["name"], epochs=self.epochs.value(), batch_size=self.batch_size.value(),
                           lr_conv=lr, lr_dense=lr, seed=self.seed.value())

    def _validate(self) -> None:
        if self.state != "idle":
            return
        runs, problems = self.plan()
        if runs:
            self.settings_line.setText(settings_text([("AB"[k], config) for k, (_, _, config) in enumerate(runs)]))
        else:  # the learning rate may be what is wrong: the settings without it
            spec = self._spec() or {"name": ""}
            self.settings_line.setText(settings_text([("A", self._config(spec, 0.0))], with_lr=False))
        self.start_button.setEnabled(not problems)
        self.status.set_tone("error" if problems else None)
        self.status.setText("; ".join(problems))

    # ------------------------------------------------------------------ running

    def start(self) -> bool:
        """Build both runs from the same initial weights and start taking turns. False when the
        settings are invalid (the reasons are shown) or a run is going."""
        if self.state != "idle":
            return False
        plan, problems = self.plan()
        if problems:
            self._validate()
            return False
        train, val = self._datasets()
        seed = self.seed.value()
        train = train.sample(self.train_size.value(), seed, f"{train.name} ({self.train_size.value()})")
        if val is not None:
            val = val.sample(MAX_VAL, seed, f"{val.name} ({MAX_VAL})")
        models = same_start_models([spec for _, spec, _ in plan], seed)  # pooling has no weights to differ
        try:  # both runs hold their batches' memory at once
            refuse_batch_beyond_memory(models[0], min(plan[0][2].batch_size, len(train.y)), runs=len(plan))
            trainers = [Trainer(model, train, val, config) for (_, _, config), model in zip(plan, models)]
        except ValueError as error:  # e.g. a batch larger than the machine's memory can train
            self.status.set_tone("error")
            self.status.setText(f"Cannot start: {error}")
            return False
        self._clear()
        # What the runs use, kept for the session: the form may be changed while they run or after.
        self._run_settings = self._form_settings()
        for k, ((label, _, _), trainer) in enumerate(zip(plan, trainers)):
            self.runs.append(_Run(self, k, label, trainer))
        for k, run in enumerate(self.runs):
            self._set_legend_name(k, f"{'AB'[k]}: {run.label}")
            run.worker.start(paused=True)
        self._classes = len(models[0].classes)
        # The whole run on the x axis from the start: the curves grow across it.
        self._x_extent = plan[0][2].epochs
        self.loss_plot.getPlotItem().setXRange(0, self._x_extent, padding=0.02)
        self.state = "running"
        self._stopping = False
        self._set_running(True)
        busy = self._window is not None and getattr(self._window, "worker", None) is not None
        self.status.set_tone(None)
        self.status.setText(f"Training {train.x.shape[0]:,} images × {plural(plan[0][2].epochs, 'epoch')} per run, "
                            f"validating "
                            f"on {0 if val is None else len(val):,}."
                            + (" The main training run is using the CPU too: times will be longer." if busy else ""))
        self.runs[0].request_step()
        return True

    def stop(self) -> None:
        """Stop both runs (each ends after its current step); the table fills when they have."""
        if self.state != "running":
            return
        self._stopping = True
        for run in self.runs:
            run.worker.stop()

    def shutdown(self) -> bool:
        """Stop both runs and join their threads (closing); True when all ended in time."""
        ok = True
        for run in self.runs:
            if not run.closed:
                ok = run.shutdown() and ok
        if self.state == "running":
            self.state = "idle"
            self._set_running(False)
        return ok

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        self.shutdown()
        super().closeEvent(event)

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt naming)
        # The tab's scroll area makes the panel this tall, or its minimum height when that is more. Qt's own
        # answer is the preferred height, which counts the plots as nothing (they ignore their size hint to
        # take the space there is), and at 1024x700 it and the 640 px minimum fell 39 px short of what the
        # fields, the wrapped description, both plots' minimum and the table need: the plots were laid over
        # each other, the accuracy plot hiding the loss plot's "epoch". At least the layout's minimum, then.
        return max(super().heightForWidth(width), self.layout().minimumHeightForWidth(width))

    @QtCore.Slot(bool)
    def set_log_y(self, on: bool) -> None:
        """The loss plot's y axis logarithmic (on) or linear; the checkbox follows. The curves keep their
        numbers (the CSV export is unchanged): pyqtgraph takes the logarithm when it draws them."""
        if self.log_y.isChecked() != on:
            self.log_y.setChecked(on)  # whose toggled signal comes back here
            return
        item = self.loss_plot.getPlotItem()
        item.setLogMode(y=on)  # which also turns auto-range on for both axes
        if self._x_extent is not None:  # a running experiment keeps its whole run on the x axis
            item.setXRange(0, self._x_extent, padding=0.02)
        if not self.runs:  # auto-range has no curves to follow: the empty plot's scale for this axis
            self._show_empty()

    def _set_running(self, running: bool) -> None:
        for widget in (self.experiment, self.network, self.epochs, self.train_size, self.batch_size, self.seed,
                       self.lr, self.second):
            widget.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if not running:
            self._validate()

    def _show_empty(self) -> None:
        """The hint, and a percentage scale on the empty accuracy plot (pyqtgraph's default is 0..1)."""
        # The loss plot back to a range of its own, the hint in its middle: cleared after an experiment, it
        # kept that experiment's range (a loss of 1.8 to 2.6) and the hint was out of sight.
        low, high = empty_loss_range(self.log_y.isChecked())
        self.loss_plot.setRange(xRange=(0, 1), yRange=(low, high), padding=0)
        self.hint.setPos(0.5, (low + high) / 2)
        self.hint.show()
        self.accuracy_plot.setYRange(0, 100, padding=0.03)

    def _clear(self) -> None:
        self.shutdown()
        self.runs = []
        self._x_extent = None
        self.hint.hide()  # the curves take its place
        self.loss_plot.enableAutoRange()  # the curves decide the scales (start() then fixes the x axis)
        self.accuracy_plot.enableAutoRange(axis="y")
        self._dirty.clear()
        self._redraw_timer.stop()
        for curves in self._curves:
            for curve in curves.values():
                curve.setData([], [])
        self.table.clearContents()
        self.conclusion.setText("")

    def _set_legend_name(self, k: int, name: str) -> None:
        """Rename run k's entry in the loss legend (the curve objects stay); its raw curve's entry follows it."""
        legend = self.loss_plot.getPlotItem().legend
        smooth, raw = self._curves[k]["loss_smooth"], self._curves[k]["loss"]
        for curve in (smooth, raw):
            legend.removeItem(curve)
        smooth.opts["name"] = name
        for curve in (smooth, raw):
            legend.addItem(curve, curve.opts["name"])

    # ------------------------------------------------------------------ from the runs (GUI thread)

    def _steps_arrived(self, run: _Run) -> None:
        """New points for ``run``: redraw within REDRAW_MS (steps of both runs share one repaint)."""
        self._dirty.add(run.index)
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    @QtCore.Slot()
    def _redraw(self) -> None:
        self._redraw_timer.stop()
        for k in sorted(self._dirty):
            run, curves = self.runs[k], self._curves[k]
            x = run.steps.data(0)
            # A run that ended after one step (diverged) is one point: a line alone would not show it.
            for name in ("loss", "loss_smooth", "acc_smooth"):
                curves[name].setSymbol("o" if len(x) == 1 else None)
            curves["loss"].setData(x, run.steps.data(1))
            curves["loss_smooth"].setData(x, run.steps.data(2))
            curves["acc_smooth"].setData(x, 100.0 * run.steps.data(4))
            # epochs without a validation figure (none to validate on, or cancelled by a stop) are left
            # out: NaN points made pyqtgraph's dots warn (all-NaN bounds) and drew nothing anyway
            epochs, accuracy = run.epochs.data(0), run.epochs.data(1)
            known = np.isfinite(accuracy)
            curves["val_acc"].setData(epochs[known], 100.0 * accuracy[known])
        self._dirty.clear()

    def _turn_over(self, run: _Run) -> None:
        """``run`` has reported its step (and validation): the other run goes next, if it still can."""
        run.has_turn = False
        if self._stopping:
            return
        others = [r for r in self.runs if r is not run and r.wants_steps]
        following = others[0] if others else (run if run.wants_steps else None)
        if following is not None:
            following.request_step()

    def _run_ended(self, run: _Run) -> None:
        if run.has_turn:  # it ended during its own turn (diverged, failed): hand over
            self._turn_over(run)
        self._fill_row(run)
        if all(r.reason is not None for r in self.runs):
            self._redraw()  # the last points, before the table and the conclusion
            self.state = "idle"
            self._set_running(False)
            self._conclude()
            self.finished.emit()

    def _fill_row(self, run: _Run) -> None:
        n = run.epochs.size
        last = (lambda column: float(run.epochs.data(column)[-1])) if n else (lambda column: float("nan"))
        epoch_note = "" if n == 0 or run.reason == "finished" else f" (epoch {n})"

        def number(value, text):
            return "–" if not np.isfinite(value) else text + epoch_note

        cells = [f"{'AB'[run.index]}: {run.label}",
                 number(last(1), f"{last(1):.1%}"),
                 number(last(2), f"{last(2):.4f}"),
                 number(last(3), f"{last(3):.4f}"),
                 number(run.seconds if n else float("nan"), f"{run.seconds:.1f} s"),
                 f"{run.step} / {run.trainer.total_steps}",
                 self._ending(run)]
        for j, text in enumerate(cells):
            item = QtWidgets.QTableWidgetItem(text)
            if j == 0:
                # the run's own colour on a dark table; darker on a light one (darker(130): 3.4:1 on white)
                colour = QtGui.QColor(RUN_COLOURS[run.index])
                item.setForeground(colour if is_dark(self.table) else colour.darker(170))
            if j == len(cells) - 1 and cells[j] != run.reason:  # shortened with "…" when narrow: whole here
                item.setToolTip(cells[j])
            self.table.setItem(run.index, j, item)

    def _ending(self, run) -> str:
        """The Ended cell: how the run ended, what went wrong, and whether a run that ended in good order
        learned anything (a loss that rose to 99.85 and stayed below the divergence limit ended "finished")."""
        if run.message:
            return f"{run.reason}: {run.message}"
        result = outcome(run, self._classes)
        note = result.ended_note() if result else ""
        return f"{run.reason}: {note}" if note else run.reason

    def _conclude(self) -> None:
        """The comparison in a sentence or two: validation accuracy and time, and what went wrong."""
        a, b = self.runs
        acc = {r: float(r.epochs.data(1)[-1]) if r.epochs.size else float("nan") for r in (a, b)}
        parts = [f"<b>{r.label}</b> diverged after {r.step} step{'' if r.step == 1 else 's'}: its updates overshot "
                 "and the loss blew up."
                 for r in (a, b) if r.reason == "diverged"]
        parts += [f"<b>{r.label}</b> failed: {r.message}" for r in (a, b) if r.reason == "failed"]
        results = [outcome(r, self._classes) for r in (a, b)]
        parts += [result.sentence(r.label) for r, result in zip((a, b), results) if result and result.failed]
        if all(np.isfinite(v) for v in acc.values()):
            diff = 100.0 * (acc[b] - acc[a])
            n = a.epochs.size
            when = f"after {n} epoch{'s' if n > 1 else ''}" if n == b.epochs.size else "at their last finished epochs"
            # The seed caveat only where it can matter: an 82-point gap does not change sign with another seed.
            caveat = "; with another seed a gap this small can change sign" if round(abs(diff), 1) <= SMALL_GAP else ""
            parts.append(f"<b>{b.label}</b> reached {acc[b]:.1%} validation accuracy against {acc[a]:.1%} for "
                         f"<b>{a.label}</b> ({signed(diff, '+.1f')} points) {when}. Both started from the same "
                         f"weights and saw the same batches{caveat}.")
        else:
            reached = [f"<b>{r.label}</b> reached {acc[r]:.1%} validation accuracy." for r in (a, b)
                       if np.isfinite(acc[r])]
            parts += reached or ["Neither run finished an epoch, so there is no validation result yet."]
        self.conclusion.setText(" ".join(parts))

    # ------------------------------------------------------------------ sessions

    def session_state(self) -> dict | None:
        """The last experiment for a session file (JSON-able, histories as arrays): its settings and
        each run's label, ending, steps and history. None before the first experiment and while one runs
        (its histories are still growing)."""
        if not self.runs or self.state != "idle":
            return None
        return {"settings": self._run_settings,
                "runs": [{"label": r.label, "reason": r.reason or "stopped", "message": r.message,
                          "step": r.step, "total_steps": r.trainer.total_steps,
                          "history": r.trainer.history.state_dict()}
                         for r in self.runs]}

    def _form_settings(self) -> dict:
        """The form's settings as a session stores them (JSON-able)."""
        return {"experiment": self.experiment.currentData(), "network": self.network.currentData(),
                "lr": self.lr.text(), "second": self.second.text(),
                **{name: spin.value() for name, spin in self._spins().items()}, **self._widths()}

    def restore_session(self, state: dict | None) -> None:
        """Show an experiment saved by :meth:`session_state` (curves, table, conclusion; it cannot be
        continued). None clears the panel; a running experiment is stopped first. A damaged entry
        clears the panel and says so in the status line."""
        self._clear()
        self.state = "idle"
        self._set_running(False)
        if not state:
            self._show_empty()
            return
        try:
            settings = state["settings"]
            self.experiment.setCurrentIndex(max(self.experiment.findData(settings["experiment"]), 0))
            self.network.setCurrentIndex(max(self.network.findData(settings["network"]), 0))
            self._network_changed()  # its defaults, even when it was already chosen (then the saved values)
            # Dense widths: only where the network has them, and not in sessions saved before they were offered.
            widths = {name: spin for name, spin in self.dense_widths.items() if name in settings and self._widths()}
            for name, spin in {**self._spins(), **widths}.items():
                value = int(settings[name])
                if not spin.minimum() <= value <= spin.maximum():  # Qt would report, not raise, 1e30
                    raise ValueError(f"{name} {value} is outside {spin.minimum()}..{spin.maximum()}")
                spin.setValue(value)
            self.lr.setText(str(settings["lr"]))
            self.second.setText(str(settings["second"]))
            runs = [_SavedRun(k, saved) for k, saved in enumerate(state["runs"][: len(RUN_COLOURS)])]
            spec = self._spec()
            self._classes = len(build(spec).classes) if spec is not None else self._classes
            self.runs, self._run_settings = runs, self._form_settings()  # the saved settings, as read
            for run in runs:
                self._set_legend_name(run.index, f"{'AB'[run.index]}: {run.label}")
                self._dirty.add(run.index)
                self._fill_row(run)
            self._redraw()
            if len(runs) == len(RUN_COLOURS):
                self._conclude()
        # OverflowError: a hand-edited 1e30 or Infinity where a whole number belongs.
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError) as error:
            self._clear()
            self._show_empty()
            self.status.set_tone("error")
            self.status.setText(f"The session's experiment could not be read ({error!r}).")
            return
        self.status.set_tone(None)
        self.status.setText("The experiment saved in the session (Run both starts it again).")

    def _spins(self) -> dict[str, WholeNumberBox]:
        return {"epochs": self.epochs, "train_size": self.train_size, "batch_size": self.batch_size,
                "seed": self.seed}

    # ------------------------------------------------------------------ export

    def export_png(self, path: str) -> None:
        """The plots, the table and the conclusion as one PNG (ValueError before the first experiment)."""
        if not self.runs:
            raise ValueError("nothing to export yet: no experiment has run")
        save_png(self.results.grab().toImage(), path)

    def export_csv(self, path: str) -> None:
        """Per-step training loss of both runs side by side (engine.experiments.write_loss_csv)."""
        if not self.runs:
            raise ValueError("nothing to export yet: no experiment has run")
        write_loss_csv(path, [RunResult(f"{'AB'[r.index]} {r.label}", r.trainer, None) for r in self.runs])
