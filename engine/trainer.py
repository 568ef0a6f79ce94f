"""The training loop: mini-batches, learning-rate schedules, thread-safe controls and evaluation.

No Qt here. The app's worker thread calls :meth:`Trainer.run` and turns the events (plain dicts,
passed to ``on_event`` on the training thread) into signals; the GUI thread calls
:meth:`Trainer.pause`, :meth:`~Trainer.resume`, :meth:`~Trainer.request_step`,
:meth:`~Trainer.stop` and :meth:`~Trainer.snapshot`, all safe from any thread.

Determinism: one ``np.random.Generator`` seeded from ``TrainConfig.seed`` drives the epoch
shuffles, the augmentation and every Dropout layer's masks, and nothing else draws from it,
so the same model weights + data + config give the same loss curve bit for bit (on one machine,
with the same :func:`engine.parallel.set_threads`: shards sum their gradients in another order).

Numbering in events: ``step`` counts optimiser steps from 1; ``epoch`` counts epochs from 1
(a step event's ``epoch`` is the epoch it belongs to); ``epoch_fraction`` is the training
progress in epochs after the step (e.g. 2.5 = halfway through the third epoch), for plot x-axes.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import threading
import time

import numpy as np

from engine.data import augment, available_memory
from engine.model import VARIANTS
from engine.optim import DEFAULT_LRS, OPTIMIZERS, make_optimizer

SCHEDULES = ("constant", "cosine", "step")

# "step" schedule: the learning rate is multiplied by STEP_GAMMA at each of these fractions of the
# (post-warmup) run, the classic 50% / 75% milestones.
STEP_MILESTONES = (0.5, 0.75)
STEP_GAMMA = 0.1

# Sanity bounds for validate(): beyond these a value is a typo, not an experiment. Learning rates
# up to MAX_LR stay allowed on purpose: diverging with lr 100 is a lesson the app teaches.
MAX_EPOCHS = 100_000
MAX_BATCH = 8192
MAX_LR = 1e4
LOSS_GROWTH = 10.0  # see TrainConfig.max_loss
# Rescue point (see Trainer.rollback): the weights are copied at the start of every run() and then
# every RESCUE_EVERY steps while the mean loss of those steps stays within RESCUE_GROWTH times the
# lowest such mean so far, i.e. while training is not visibly climbing towards a divergence.
RESCUE_EVERY = 50
RESCUE_GROWTH = 1.5
HISTORY_START = 4096  # initial capacity of the per-step and per-epoch history series


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run besides the model and the data.

    ``warmup_epochs``: the learning rates ramp linearly from lr/warmup_steps up to lr over this
    many epochs before the schedule starts. ``schedule``: "constant"; "cosine" (half a cosine from
    lr down to 0 over the rest of the run); "step" (x0.1 at 50% and again at 75% of it).
    ``variant``: the backprop variant the trainer sets on the model (None = correct backward).
    ``max_loss``: a finite loss above both it and ``LOSS_GROWTH`` times the first loss of the
    current run() also counts as divergence. VGG-7's dense layers are tanh and arctan, so with far
    too large steps its loss grows by orders of magnitude within a few steps without ever becoming
    NaN; cross-entropy starts near ln 10 = 2.3, and a mean above 100 means the network is
    confidently wrong on everything. Measuring from the run's start lets a run resumed with a
    lower learning rate after a divergence recover from its high loss. ``inf``: only NaN/inf.
    """

    preset: str = "vgg7"
    epochs: int = 10
    batch_size: int = 64
    lr_conv: float = DEFAULT_LRS["sgd"]
    lr_dense: float = DEFAULT_LRS["sgd"]
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: bool = False
    seed: int = 0
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    variant: str | None = None
    max_loss: float = 100.0

    def validate(self) -> list[str]:
        """Human-readable reasons why this config cannot run, each starting with the field's name
        ("lr_conv must be …": the CLI and the panel name the field their own way); empty when fine."""
        problems = []

        def integer(name, low, high):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                problems.append(f"{name} must be a whole number, got {value!r}")
            elif not low <= value <= high:
                problems.append(f"{name} must be between {low} and {high}, got {value}")

        def real(name, low, high, high_open=False):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                problems.append(f"{name} must be a number, got {value!r}")
            elif not math.isfinite(value):
                problems.append(f"{name} must be a finite number, got {value}")
            elif value < low or value > high or (high_open and value == high):
                bound = f"below {high}" if high_open else f"at most {high:g}"
                problems.append(f"{name} must be at least {low:g} and {bound}, got {value:g}")

        def choice(name, options):
            value = getattr(self, name)
            if value not in options:
                problems.append(f"{name} must be one of {', '.join(map(str, options))}; got {value!r}")

        if not isinstance(self.preset, str) or not self.preset:
            problems.append(f"preset must be a non-empty name, got {self.preset!r}")
        integer("epochs", 1, MAX_EPOCHS)
        integer("batch_size", 1, MAX_BATCH)
        integer("seed", 0, 2**63 - 1)
        real("lr_conv", 0.0, MAX_LR)
        real("lr_dense", 0.0, MAX_LR)
        real("momentum", 0.0, 1.0, high_open=True)
        real("weight_decay", 0.0, 1.0, high_open=True)
        real("warmup_epochs", 0.0, float(MAX_EPOCHS))
        if isinstance(self.max_loss, (int, float, np.integer, np.floating)) and not isinstance(self.max_loss, bool):
            if not self.max_loss > 0:  # also refuses NaN; inf is allowed
                problems.append(f"max_loss must be positive, got {self.max_loss}")
        else:
            problems.append(f"max_loss must be a number, got {self.max_loss!r}")
        choice("optimizer", OPTIMIZERS)
        choice("schedule", SCHEDULES)
        choice("variant", VARIANTS)
        if not isinstance(self.augment, (bool, np.bool_)):
            problems.append(f"augment must be true or false, got {self.augment!r}")
        if not problems and self.warmup_epochs > self.epochs:
            problems.append(f"warmup_epochs ({self.warmup_epochs:g}) must not exceed epochs ({self.epochs})")
        return problems

    def make_optimizer(self, model):
        """A fresh optimiser of this config's kind for ``model``, with its learning rates, momentum
        and weight decay."""
        return make_optimizer(self.optimizer, model, self.lr_conv, self.lr_dense, momentum=self.momentum,
                              weight_decay=self.weight_decay)

    def lr_scale(self, step: int, steps_per_epoch: int) -> float:
        """Factor applied to both base learning rates for the 0-based ``step`` about to run."""
        total = self.epochs * steps_per_epoch
        warmup = min(round(self.warmup_epochs * steps_per_epoch), total)
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(total - warmup, 1)  # progress through the post-warmup run, [0, 1)
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if self.schedule == "step":
            return STEP_GAMMA ** sum(t >= m for m in STEP_MILESTONES)
        return 1.0


class Series:
    """A growing 1-D float64 buffer: amortised O(1) appends, no per-step Python lists."""

    def __init__(self, capacity: int = 256):
        self._data = np.full(max(int(capacity), 1), np.nan)
        self._size = 0

    def append(self, value) -> None:
        if self._size == self._data.size:
            grown = np.full(2 * self._data.size, np.nan)
            grown[: self._size] = self._data
            self._data = grown
        self._data[self._size] = np.nan if value is None else value
        self._size += 1

    @classmethod
    def of(cls, values) -> "Series":
        """A Series holding ``values`` (1-D), with room to grow."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        series = cls(max(2 * values.size, 16))
        series._data[: values.size] = values
        series._size = values.size
        return series

    def __len__(self) -> int:
        return self._size

    def array(self) -> np.ndarray:
        """A copy of the values so far, shape (len,) (safe to keep and to read from another thread)."""
        return self._data[: self._size].copy()


STEP_FIELDS = ("loss", "accuracy", "epoch_fraction", "lr_conv", "lr_dense")
EPOCH_FIELDS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")


class History:
    """Per-step and per-epoch metrics. ``steps[field]`` / ``epochs[field]`` are :class:`Series`
    (STEP_FIELDS / EPOCH_FIELDS); a missing value (no validation set) is NaN."""

    def __init__(self, steps_capacity: int = 256, epochs_capacity: int = 16):
        self.steps = {name: Series(steps_capacity) for name in STEP_FIELDS}
        self.epochs = {name: Series(epochs_capacity) for name in EPOCH_FIELDS}

    def state_dict(self) -> dict:
        """Copies of every series: ``{"steps.loss": (n_steps,), ..., "epochs.val_accuracy": (n_epochs,)}``."""
        out = {f"steps.{k}": s.array() for k, s in self.steps.items()}
        out.update({f"epochs.{k}": s.array() for k, s in self.epochs.items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        """Replace the contents with a :meth:`state_dict` (e.g. from a session file)."""
        for prefix, group in (("steps", self.steps), ("epochs", self.epochs)):
            lengths = {len(np.asarray(state[f"{prefix}.{k}"])) for k in group}
            if len(lengths) != 1:
                raise ValueError(f"history: the {prefix} series have different lengths {sorted(lengths)}")
            for name in group:
                group[name] = Series.of(state[f"{prefix}.{name}"])


@dataclasses.dataclass
class Evaluation:
    """Result of :func:`evaluate`: ``confusion[true, predicted]`` counts, shape (K, K) for K classes;
    ``misclassified``: indices into the dataset, ascending; ``predictions``: (N,) predicted labels;
    ``probabilities``: (N, K) class probabilities in the model's dtype (the app's gallery of mistakes
    shows them: computing them again took as long as the evaluation). ``unanswered``: indices of the
    images whose outputs were not finite (weights so large that float overflowed): they count as
    misclassified, with prediction -1 and no cell in ``confusion``; ``loss`` is the mean over the others
    (NaN when none is left)."""

    accuracy: float
    confusion: np.ndarray
    misclassified: np.ndarray
    loss: float
    predictions: np.ndarray
    probabilities: np.ndarray
    unanswered: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    def unanswered_note(self) -> str | None:
        """A sentence about :attr:`unanswered`, None when every image got an answer."""
        if not self.unanswered.size:
            return None
        return (f"{self.unanswered.size:,} of {len(self.predictions):,} images got no answer: the network's "
                f"outputs overflowed (not finite), so its weights are far too large; they count as mistakes")


def predicted_labels(model, out: np.ndarray) -> np.ndarray:
    """Predicted class indices (N,) from the raw network output ``out: (N, K)``."""
    return model.proba_from_output(out).argmax(axis=1)


def labels_for(model, labels) -> np.ndarray:
    """``labels: (N,)`` as int64 class indices of ``model`` (positions in ``model.classes``), or ValueError:
    labels beyond its outputs were trained towards (an L2 model's sigmoid towards 2) without a word."""
    y = np.asarray(labels)
    k = len(model.classes)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(f"labels must be a vector of whole class indices, got {y.dtype} of shape {y.shape}")
    if y.size and not 0 <= y.min() <= y.max() < k:
        raise ValueError(f"labels {y.min()}..{y.max()} do not fit the model's {k} classes")
    return y.astype(np.int64, copy=False)


def evaluate(model, dataset, batch_size: int = 64, progress=None, cancel=None) -> Evaluation | None:
    """Accuracy, confusion matrix, misclassified indices and mean loss of ``model`` on ``dataset``
    (``x: (N, H, W, C)``, ``y: (N,)``), in inference mode, ``batch_size`` images at a time.
    ``progress(done, total)`` is called after each batch; when ``cancel`` (a ``threading.Event``) is
    set between batches the evaluation stops and returns None (e.g. from the app's background task).

    The model's conv layers keep scratch buffers sized for the batches they last saw (VGG-7: about
    1 MiB per image). 64 at a time, the training default, in the training step's shards or passes
    (:meth:`Sequential.infer`), mostly reuses its buffers (peak on the 500 bundled validation images:
    29 MiB on one engine thread, 52 on two, 53 unconfigured; 500 at a time took ~520 MiB, no faster).
    With several engine threads the evaluation runs on all of them, like training."""
    x, y = dataset.x, labels_for(model, dataset.y)
    n, k = len(y), len(model.classes)
    probabilities = np.empty((n, k), dtype=model.dtype)
    answered = np.ones(n, dtype=bool)  # outputs finite (see Evaluation.unanswered)
    loss_sum = 0.0
    for start in range(0, n, batch_size):
        if cancel is not None and cancel.is_set():
            return None
        xb = np.asarray(x[start:start + batch_size], dtype=model.dtype)
        stop = start + len(xb)
        # Overflow is reported as unanswered images, not as NumPy warnings on stderr.
        with np.errstate(over="ignore", invalid="ignore"):
            out = model.infer(xb)     # in the shards or passes of training: their buffers are reused
            probabilities[start:stop] = model.proba_from_output(out)
            ok = answered[start:stop] = np.isfinite(probabilities[start:stop]).all(axis=1)
            if ok.all():
                loss_sum += model.loss_from_output(out, y[start:stop])[0] * len(xb)
            elif ok.any():  # the mean loss is over the answered images: one NaN made it NaN
                loss_sum += model.loss_from_output(out[ok], y[start:stop][ok])[0] * int(ok.sum())
        if progress is not None:
            progress(stop, n)
    answered_n = int(answered.sum())
    predictions = np.where(answered, probabilities.argmax(axis=1), -1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y[answered], predictions[answered]), 1)
    wrong = np.flatnonzero(predictions != y)
    return Evaluation(
        accuracy=(n - wrong.size) / n if n else float("nan"),
        confusion=confusion,
        misclassified=wrong,
        loss=loss_sum / answered_n if answered_n else float("nan"),
        predictions=predictions,
        probabilities=probabilities,
        unanswered=np.flatnonzero(~answered),
    )


class _StopRequested:
    """:func:`evaluate`'s ``cancel`` for a trainer's validation: set once its stop() is called."""

    def __init__(self, trainer: "Trainer") -> None:
        self._trainer = trainer

    def is_set(self) -> bool:
        return self._trainer._stop_requested


def epoch_state_problem(state, train_size: int, batch_size: int, step: int) -> str | None:
    """What keeps ``state`` (see :meth:`Trainer.epoch_state`) from being the epoch that a run of
    ``step`` optimiser steps of ``batch_size`` on ``train_size`` images is inside; None when it fits."""
    if not isinstance(state, dict) or set(state) != {"epoch", "order", "totals"}:
        return "expected {'epoch', 'order', 'totals'}"
    epoch, order, totals = state["epoch"], state["order"], state["totals"]
    if not isinstance(order, np.ndarray) or order.dtype.kind not in "iu" or order.ndim != 1:
        return "the sample order must be an array of whole numbers"
    if order.size != train_size:
        return f"the saved run had {order.size} training images, this training set has {train_size}"
    if not np.array_equal(np.sort(order), np.arange(train_size)):
        return f"the sample order is not an ordering of the {train_size} training images"
    steps_per_epoch = math.ceil(train_size / batch_size)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or \
            not epoch * steps_per_epoch < step <= (epoch + 1) * steps_per_epoch:
        return f"epoch {epoch!r} is not the one step {step} is in ({steps_per_epoch} steps an epoch)"
    numbers = isinstance(totals, list) and len(totals) == 4 and all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t >= 0 for t in totals)
    if not numbers or not totals[1] <= totals[2] <= train_size:
        return "the epoch totals must be [loss sum, correct, images, seconds], finite and >= 0"
    return None


# Peak memory while training is ~10% above what the model holds after a step (arrays in flight, the
# allocator's overhead: VmHWM grew 1.09x the held bytes at batch 512, 1.08-1.11x at 1,024); a margin on top.
MEMORY_MARGIN = 1.25
_bytes_per_image: dict[tuple[str, str], int] = {}  # (spec as JSON, dtype) -> Sequential.training_bytes_per_image


def refuse_batch_beyond_memory(model, batch: int, runs: int = 1) -> None:
    """ValueError when ``runs`` models like ``model`` training ``batch`` images at a time each would
    need more memory than the machine has available: Linux grants the memory and then kills the
    process (a run and all the app's state gone), instead of raising MemoryError."""
    available = available_memory()
    if available is None:
        return
    key = (json.dumps(model.normalized_spec(), sort_keys=True), np.dtype(model.dtype).str)
    if key not in _bytes_per_image:
        _bytes_per_image[key] = model.training_bytes_per_image()
    per_image = MEMORY_MARGIN * runs * _bytes_per_image[key]
    if per_image * batch > available:
        each = f" in each of {runs} runs" if runs > 1 else ""
        raise ValueError(f"a batch of {batch:,} images{each} needs about {per_image * batch / 2**30:.1f} GiB of "
                         f"memory to train {model.name}, and {available / 2**30:.1f} GiB is available: choose a "
                         f"batch size of at most {max(1, int(available // per_image)):,}")


def divergence_message(step: int, cause: str) -> str:
    """What a refused step's error event says, e.g. for the app to number ``step`` its own way."""
    return (f"training diverged at step {step}: {cause}; the weights from before this step are kept; "
            f"try a lower learning rate")


class Trainer:
    """Trains ``model`` on ``train`` (a Dataset: ``x: (N, H, W, C)``, ``y: (N,)``), evaluating on
    ``val`` (or None) after every epoch. ``config`` is validated here (ValueError listing the
    problems). The trainer sets ``model.variant = config.variant`` and owns the optimiser.

    ``weights_lock`` guards the in-place weight update; anyone reading weights from another
    thread copies them under it (:meth:`snapshot` does).
    """

    def __init__(self, model, train, val, config: TrainConfig, on_event=None):
        problems = config.validate()
        if problems:
            raise ValueError("invalid training settings: " + "; ".join(problems))
        if len(train.y) == 0:
            raise ValueError("the training set is empty")
        labels_for(model, train.y)
        refuse_batch_beyond_memory(model, min(config.batch_size, len(train.y)))
        self.model = model
        self.train_data = train
        self.val_data = val
        self.config = config
        self.on_event = on_event
        model.variant = config.variant
        self.rng = np.random.default_rng(config.seed)
        for layer in model.layers:  # Dropout masks come from the run's generator (see module doc)
            if hasattr(layer, "rng"):
                layer.rng = self.rng
        self.optimizer = config.make_optimizer(model)
        self.weights_lock = threading.RLock()
        self._control = threading.Condition()
        self._pause_requested = False
        self._stop_requested = False
        self._steps_requested = 0
        self._active = False  # a run() is in progress
        self.state = "idle"
        self.steps_per_epoch = math.ceil(len(train.y) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.step_index = 0  # optimiser steps done so far
        # Series grow by doubling: start small, so a long run allowed by validate() (MAX_EPOCHS
        # epochs of batch 1 is 450 million steps) costs nothing up front.
        self.history = History(min(self.total_steps, HISTORY_START), min(config.epochs, HISTORY_START))
        self._order = None  # this epoch's shuffled sample order, (N,)
        self._order_epoch = -1
        self._epoch_totals = None  # [loss * n, correct, n, seconds] over the current epoch
        self._ips = None  # smoothed images per second
        self._start_loss = None  # first loss since run() or set_learning_rates(): divergence reference
        self._rescue = None      # (step the weights are from, weights, optimizer state): see rollback()
        self._restored_from = None  # step of the weights rollback() restored, until the next update
        self._block = [0.0, 0, math.inf]  # loss sum and steps since the last rescue check, best mean

    # ------------------------------------------------------------------ thread-safe controls

    def pause(self) -> None:
        """Pause after the current step (also before the first one, when called before run())."""
        with self._control:
            self._pause_requested = True
            self._control.notify_all()

    def resume(self) -> None:
        with self._control:
            self._pause_requested = False
            self._steps_requested = 0
            self._control.notify_all()

    def request_step(self) -> None:
        """While paused, run exactly one more step (ignored when not paused)."""
        with self._control:
            if self._pause_requested:
                self._steps_requested += 1
                self._control.notify_all()

    def stop(self) -> None:
        """End run() after the current step (at once when paused). A stop requested before the
        first run() starts is honoured by that run; between runs it is ignored."""
        with self._control:
            if self._active or self.state == "idle":
                self._stop_requested = True
                self._control.notify_all()

    def set_learning_rates(self, lr_conv: float | None = None, lr_dense: float | None = None) -> None:
        """Change the base learning rates (e.g. lower them after a divergence, then run() again);
        they take effect from the next step. ValueError when invalid."""
        new = dataclasses.replace(
            self.config,
            lr_conv=self.config.lr_conv if lr_conv is None else lr_conv,
            lr_dense=self.config.lr_dense if lr_dense is None else lr_dense,
        )
        problems = new.validate()
        if problems:
            raise ValueError("; ".join(problems))
        self.config = new
        self._start_loss = None

    def rollback(self) -> int | None:
        """Restore the weights and optimiser state of the rescue point: the last point of the run
        before the loss started to climb (the start of the current run() at the latest). Used after
        a divergence: a step that gets refused is often preceded by accepted steps that already
        wrecked the weights (with lr 100, one step does). The step count and history go on (the
        curves show the jump back). Returns the step the weights come from, None without a rescue
        point (no step run yet). Call it while no step runs."""
        if self._rescue is None:
            return None
        step, weights, optimizer_state = self._rescue
        with self.weights_lock:
            self.model.set_weights(weights)
            self.optimizer.load_state_dict(optimizer_state)
        self._restored_from = step  # the next rescue point holds these weights: label it alike
        return step

    @property
    def rescue_step(self) -> int | None:
        """The step :meth:`rollback` would restore (0: the initial weights), None without one."""
        return None if self._rescue is None else self._rescue[0]

    def _keep_rescue_point(self) -> None:
        origin = self.step_index if self._restored_from is None else self._restored_from
        self._rescue = (origin, self.model.get_weights(), self.optimizer.state_dict())

    def _track_rescue_point(self, loss: float) -> None:
        """After an accepted step: move the rescue point here every RESCUE_EVERY steps while the
        recent mean loss is not climbing (see RESCUE_GROWTH)."""
        block = self._block
        block[0] += loss
        block[1] += 1
        if block[1] < RESCUE_EVERY:
            return
        mean = block[0] / block[1]
        block[0], block[1] = 0.0, 0
        if mean <= RESCUE_GROWTH * block[2]:
            block[2] = min(block[2], mean)
            self._keep_rescue_point()

    def snapshot(self) -> dict:
        """Copies of all weights ``{"conv1.w": array, ...}``, never half-updated."""
        with self.weights_lock:
            return {name: p.copy() for name, p in self.model.params().items()}

    def epoch_state(self) -> dict | None:
        """Where the run is inside its epoch, which continuing it exactly needs besides the random
        generator (the epoch's sample order was drawn from it at the epoch's start): ``{"epoch": e
        (from 0), "order": (N,) int64 sample order, "totals": [loss sum, correct, images, seconds]}``
        for the epoch summary; None before the first step. Call it while no step runs."""
        with self.weights_lock:
            if self._order is None:
                return None
            return {"epoch": self._order_epoch, "order": self._order.copy(), "totals": list(self._epoch_totals)}

    def restore_epoch_state(self, state: dict | None) -> None:
        """Continue inside the epoch :meth:`epoch_state` captured (set ``step_index`` first); None: the
        next step starts its epoch with a new shuffle. ValueError when ``state`` does not fit this
        training set, batch size and step count; nothing changes then."""
        if state is not None:
            problem = epoch_state_problem(state, len(self.train_data.y), self.config.batch_size, self.step_index)
            if problem:
                raise ValueError(f"the saved epoch does not fit: {problem}")
        with self.weights_lock:
            if state is None:
                self._order, self._order_epoch, self._epoch_totals = None, -1, None
            else:
                self._order = np.asarray(state["order"], dtype=np.int64).copy()
                self._order_epoch = int(state["epoch"])
                loss_sum, correct, images, seconds = state["totals"]
                self._epoch_totals = [float(loss_sum), int(correct), int(images), float(seconds)]

    def state_dict(self) -> dict:
        """Everything besides the model's weights that continuing this run exactly needs (for
        session files; call it while no step runs): ``config`` (dict), ``step_index``, ``rng`` (the
        generator's JSON-able state), ``epoch`` (:meth:`epoch_state`), ``optimizer`` (its
        state_dict), ``history`` (flat arrays)."""
        epoch = self.epoch_state()
        with self.weights_lock:
            return {
                "config": dataclasses.asdict(self.config),
                "step_index": self.step_index,
                "rng": copy.deepcopy(self.rng.bit_generator.state),
                "epoch": epoch,
                "optimizer": self.optimizer.state_dict(),
                "history": self.history.state_dict(),
            }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (with the model's weights restored separately): the
        following steps are the ones the saved run would have taken. The training set must have
        the saved run's size. ValueError when the state does not fit; nothing changes then."""
        config = TrainConfig(**state["config"])
        problems = config.validate()
        if problems:
            raise ValueError("invalid training settings in the saved state: " + "; ".join(problems))
        epoch, step_index = state["epoch"], int(state["step_index"])
        if epoch is not None:
            problem = epoch_state_problem(epoch, len(self.train_data.y), config.batch_size, step_index)
            if problem:
                raise ValueError(f"the saved epoch does not fit: {problem}")
        optimizer = config.make_optimizer(self.model)
        optimizer.load_state_dict(state["optimizer"])
        history = History()
        history.load_state_dict(state["history"])
        with self.weights_lock:
            self.config = config
            self.model.variant = config.variant
            self.optimizer = optimizer
            self.history = history
            self.rng.bit_generator.state = state["rng"]
            self.steps_per_epoch = math.ceil(len(self.train_data.y) / config.batch_size)
            self.total_steps = self.steps_per_epoch * config.epochs
            self.step_index = step_index
        self.restore_epoch_state(epoch)

    # ------------------------------------------------------------------ training

    @property
    def finished(self) -> bool:
        return self.step_index >= self.total_steps

    def _emit(self, event: dict) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _batch_indices(self, epoch: int, position: int) -> np.ndarray:
        """Training-set indices ``(<= batch_size,)`` of batch ``position`` in ``epoch``'s shuffled
        order (a new order, and new running totals, when the epoch changes)."""
        if self._order_epoch != epoch:
            self._order = self.rng.permutation(len(self.train_data.y))
            self._order_epoch = epoch
            self._epoch_totals = [0.0, 0, 0, 0.0]
        bs = self.config.batch_size
        return self._order[position * bs:(position + 1) * bs]

    def _error(self, cause: str) -> dict:
        """Refuse this step: ``cause`` says what went wrong ("the loss became nan"); the event's
        ``message`` adds that the weights stay as they were and what to try."""
        self.state = "diverged"
        step = self.step_index + 1
        event = {"type": "error", "step": step, "cause": cause, "rescue_step": self.rescue_step,
                 "message": divergence_message(step, cause)}
        self._emit(event)
        return event

    def step(self) -> dict:
        """Run one mini-batch: forward, backward, a finite-ness check, then the weight update.

        Returns the step event (also passed to ``on_event``, followed by the epoch event when the
        step ends an epoch). A non-finite loss or gradient skips the update, sets ``state`` to
        "diverged" and returns an error event instead; the weights stay as before the step.
        """
        if self.finished:
            raise RuntimeError("training is finished: no steps left")
        cfg, model = self.config, self.model
        epoch, position = divmod(self.step_index, self.steps_per_epoch)
        started = time.perf_counter()
        idx = self._batch_indices(epoch, position)
        x = self.train_data.x[idx]
        y = np.asarray(self.train_data.y[idx], dtype=np.int64)
        if cfg.augment:
            x = augment(x, self.rng)
        x = np.ascontiguousarray(x, dtype=model.dtype)

        scale = cfg.lr_scale(self.step_index, self.steps_per_epoch)
        lrs = {"conv": cfg.lr_conv * scale, "dense": cfg.lr_dense * scale}
        loss, out = model.loss_and_grads(x, y)
        if not math.isfinite(loss):
            return self._error(f"the loss became {loss}")
        if self._start_loss is None:
            self._start_loss = loss
            self._block = [0.0, 0, math.inf]
            self._keep_rescue_point()  # the weights this run (or this learning rate) started from
        limit = max(cfg.max_loss, LOSS_GROWTH * self._start_loss)
        if loss > limit:
            return self._error(f"the loss reached {loss:.4g} (limit {limit:.4g})")
        bad = [name for name, g in model.applied_grads().items() if not np.isfinite(g).all()]
        if bad:
            return self._error(f"non-finite gradient in {', '.join(bad)}")
        with self.weights_lock:
            self.optimizer.lrs.update(lrs)
            self.optimizer.step()
        self.step_index = step_no = self.step_index + 1
        self._restored_from = None
        self._track_rescue_point(loss)

        seconds = time.perf_counter() - started
        n = len(y)
        correct = int((predicted_labels(model, out) == y).sum())
        ips = n / max(seconds, 1e-9)
        self._ips = ips if self._ips is None else 0.8 * self._ips + 0.2 * ips
        totals = self._epoch_totals
        totals[0] += loss * n
        totals[1] += correct
        totals[2] += n
        totals[3] += seconds
        event = {
            "type": "step",
            "step": step_no,
            "epoch": epoch + 1,
            "epoch_fraction": step_no / self.steps_per_epoch,
            "loss": float(loss),
            "accuracy": correct / n,
            "images_per_second": self._ips,
            "lrs": dict(lrs),
        }
        for name, value in (("loss", loss), ("accuracy", correct / n),
                            ("epoch_fraction", event["epoch_fraction"]),
                            ("lr_conv", lrs["conv"]), ("lr_dense", lrs["dense"])):
            self.history.steps[name].append(value)
        self._emit(event)
        if position == self.steps_per_epoch - 1:
            self._end_epoch(epoch)
        return event

    def _end_epoch(self, epoch: int) -> None:
        """Evaluate on the validation set and emit the epoch event (``seconds``: the epoch's step
        time, without this evaluation). Full MNIST's 10,000 images take seconds: "validation" events
        say how far it is, and stop() ends it at once (the epoch then has no validation figures)."""
        loss_sum, correct, n, seconds = self._epoch_totals
        val = None
        if self.val_data is not None:
            def progress(done, total):
                self._emit({"type": "validation", "epoch": epoch + 1, "done": done, "total": total})
            val = evaluate(self.model, self.val_data, progress=progress, cancel=_StopRequested(self))
        event = {
            "type": "epoch",
            "epoch": epoch + 1,
            "train_loss": loss_sum / n,
            "train_accuracy": correct / n,
            "val_loss": None if val is None else val.loss,
            "val_accuracy": None if val is None else val.accuracy,
            "seconds": seconds,
        }
        for name in EPOCH_FIELDS:
            self.history.epochs[name].append(event[name])
        self._emit(event)

    def run(self) -> str:
        """Step until the run is finished, stopped or diverged; honours pause/resume/request_step.

        Emits a "done" event at the end and returns its reason. May be called again after a stop
        or a divergence (e.g. with lower learning rates) to continue where the run left off.
        """
        reason = "finished" if self.finished else None
        self._start_loss = None
        with self._control:
            self._active = True
            self.state = "paused" if self._pause_requested else "running"
        try:
            while reason is None:
                with self._control:
                    while True:
                        if self._stop_requested:
                            reason = "stopped"
                            break
                        if not self._pause_requested:
                            self.state = "running"
                            break
                        if self._steps_requested:
                            self._steps_requested -= 1
                            break
                        self.state = "paused"
                        self._control.wait()
                if reason is not None:
                    break
                if self.step()["type"] == "error":
                    reason = "diverged"
                elif self.finished:
                    reason = "finished"
        finally:
            with self._control:
                self._active = False
                self._stop_requested = False
                self._steps_requested = 0
                self.state = reason or "stopped"
        self._emit({"type": "done", "reason": reason})
        return reason
