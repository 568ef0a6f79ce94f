"""Session files: a whole training session in one .npz, reopened bit for bit and resumable.

A session holds the model (spec + weights), the training settings (``TrainConfig`` fields), the
optimiser state (momentum / Adam moments, step count), the loss history, the trainer's position
(optimiser steps done, random generator state), a description of the training data, experiment
results (any JSON-able structure; NumPy arrays inside it are stored as arrays), optionally a
kernel timeline and the gradient-health history, and the loss curve of earlier runs these weights
were trained by before this run started from them (the app draws it before this run's steps; a run
continued with new settings is a new trainer with its own history).

File layout: an uncompressed .npz (a zip of .npy members, no pickle). Member ``__session__`` is a
JSON manifest (a unicode array); every NumPy array of the session is a separate member, referenced
from the manifest as ``{"__array__": "<member name>"}``:

    {"format": "convscope-session", "version": 1, "spec": {...}, "settings": {...}, "step": 120,
     "weights": {"conv1.w": {"__array__": "weights/conv1.w"}, ...},
     "history": {"steps.loss": {"__array__": ...}, ...}, "optimizer": {"name": "sgd", ...},
     "rng_state": {...}, "data": {"key": "bundled", "train_size": 4500, "labels_crc32": ...},
     "experiments": ..., "timeline": {...} | null, "health": {...} | null,
     "earlier": {"steps.loss": ..., ...} | null}

Writing is atomic (a temporary file in the same directory, flushed, then ``os.replace``), so a crash
or a kill mid-save leaves the previous file intact. Reading goes through ``engine.data.read_npz``
(header/length checks, no pickle) and then rebuilds and checks every part with the classes that
own it (``Sequential.set_weights``, ``Optimizer.load_state_dict``, ``History.load_state_dict``,
``TrainConfig.validate``, ``KernelTimeline.from_state_dict``, ``HealthMonitor.from_state_dict``): any problem raises
:class:`SessionFileError` naming the file and the part, and nothing outside the call is touched.

Resuming (:meth:`Session.resume`) restores weights, optimiser, history, step count, the random
generator and the position inside the epoch (its sample order and running totals,
:meth:`Trainer.epoch_state`): the continued run is bit-for-bit the uninterrupted one, saved at an
epoch's end or in the middle of one. Its step count, schedule and epochs are counted in its own
batches of its own training set: another batch size or other data cannot continue it
(:meth:`Session.resume_problem`; start a new run from its weights instead). Files written before the
epoch state was stored (no ``epoch_state``) continue with a new shuffle for the rest of the epoch.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
import zlib
from typing import Any

import numpy as np

from engine.atomic import atomic_write
from engine.data import DataFileError, read_npz, refuse_special_file
from engine.health import HealthMonitor
from engine.model import SESSION_MANIFEST, SPEC_KEY, ModelFileError, Sequential, take_trained_with
from engine.timeline import KernelTimeline
from engine.trainer import History, TrainConfig, Trainer, epoch_state_problem

FORMAT = "convscope-session"
VERSION = 1
MANIFEST = SESSION_MANIFEST
ARRAY_REF = "__array__"
SUFFIX = ".convscope.npz"


class SessionFileError(ValueError):
    """A session file cannot be read or is inconsistent; the message names the file and the part."""


@dataclasses.dataclass
class Session:
    """Everything needed to show a session again and to continue its training.

    spec/weights: the model (``{"conv1.w": array, ...}``). settings: ``TrainConfig`` fields.
    step: optimiser steps done. history: ``History.state_dict()`` (``{"steps.loss": (step,), ...}``),
    optimizer: ``Optimizer.state_dict()``, rng_state: the trainer's generator state, epoch_state:
    ``Trainer.epoch_state()``; these four are None before the first step. data: ``{"key",
    "train_size", "labels_crc32"}`` of the training set, or None. experiments: JSON-able results
    (dicts, lists, numbers, strings, arrays). timeline, health: the run's kernel timeline and
    gradient-health monitor (continuing on the session's weights at ``step``), or None. earlier: the
    curve of the runs before this one, or None:
    ``{"steps.loss": (k,)}`` for their steps 1..k and, per finished epoch, ``"epochs.step": (e,)``
    (its last step, in 1..k, growing), ``"epochs.train_loss"``, ``"epochs.val_loss"`` (NaN without
    validation data), ``"epochs.train_accuracy"``, ``"epochs.val_accuracy"`` (in [0, 1]; NaN): (e,).
    """

    spec: dict
    weights: dict[str, np.ndarray]
    settings: dict
    step: int = 0
    history: dict[str, np.ndarray] | None = None
    optimizer: dict | None = None
    rng_state: dict | None = None
    epoch_state: dict | None = None
    data: dict | None = None
    experiments: Any = None
    timeline: KernelTimeline | None = None
    health: HealthMonitor | None = None
    earlier: dict[str, np.ndarray] | None = None

    @classmethod
    def from_trainer(cls, trainer: Trainer, data_key: str | None = None, experiments: Any = None,
                     timeline: KernelTimeline | None = None, health: HealthMonitor | None = None) -> "Session":
        """Capture ``trainer`` (not while it is running a step: pause or stop it first).
        data_key: how the app names the training data (e.g. "bundled", "mnist_dir"). timeline and
        health: the recorders of the run (the app's views), kept with it."""
        if trainer.state == "running":
            raise RuntimeError("pause or stop the training before saving the session")
        with trainer.weights_lock:
            weights = trainer.model.get_weights()
            optimizer = trainer.optimizer.state_dict()
        epoch_state = trainer.epoch_state()
        started = trainer.step_index > 0
        return cls(
            spec=trainer.model.saved_spec(),
            weights=weights,
            settings=dataclasses.asdict(trainer.config),
            step=trainer.step_index,
            history=trainer.history.state_dict() if started else None,
            optimizer=optimizer if started else None,
            rng_state=trainer.rng.bit_generator.state if started else None,
            epoch_state=epoch_state if started else None,
            data=data_description(trainer.train_data, data_key),
            experiments=experiments,
            timeline=timeline,
            health=health,
        )

    def config(self) -> TrainConfig:
        return TrainConfig(**self.settings)

    def training_seconds(self) -> float:
        """Seconds the run's optimiser steps took, as its trainer timed them (validation not included): its
        finished epochs', then those of the epoch it stopped in (a file without the epoch state: its
        finished epochs' alone). 0.0 before the first step."""
        finished = (self.history or {}).get("epochs.seconds", np.zeros(0))
        seconds = float(np.sum(finished))
        if self.epoch_state is not None and self.epoch_state["epoch"] >= len(finished):  # in no epoch's sum yet
            seconds += float(self.epoch_state["totals"][3])
        return seconds

    def build_model(self) -> Sequential:
        """A new model with the session's architecture, weights (same dtype), variant and the variants its
        weights were trained with."""
        dtypes = {np.asarray(w).dtype for w in self.weights.values()}
        spec = dict(self.spec)
        trained_with = take_trained_with(spec)
        model = Sequential(spec, dtype=dtypes.pop() if len(dtypes) == 1 else np.float32)
        model.set_weights(self.weights, source="session")
        model.variant = self.settings.get("variant")
        model.trained_with = trained_with
        return model

    def same_data(self, train) -> bool:
        """Whether ``train`` looks like the training set the session used (size and labels);
        True when the session does not say."""
        if not self.data or "labels_crc32" not in self.data:
            return True
        other = data_description(train)
        return (other["train_size"], other["labels_crc32"]) == (self.data.get("train_size"),
                                                                 self.data["labels_crc32"])

    def resume_problem(self, train, config: TrainConfig) -> str | None:
        """Why this session cannot continue on ``train`` (a Dataset) with ``config``, e.g. "its batch
        size was 50", or None. Its step count is in its own batches of its own data: with others the
        epoch counter went back, the schedule jumped and the history saved next could not be read."""
        if self.step:
            size = (self.data or {}).get("train_size") or (len(self.epoch_state["order"]) if self.epoch_state else None)
            if not self.same_data(train) or size not in (None, len(train.y)):
                return "it was trained on other data"
            if self.settings.get("batch_size") != config.batch_size:
                return f"its batch size was {self.settings.get('batch_size')}"
        if self.optimizer is not None and self.optimizer.get("name") != config.optimizer:
            return f"its optimiser was {self.optimizer.get('name')}"
        return None

    def resume(self, train, val, on_event=None, config: TrainConfig | None = None) -> Trainer:
        """A Trainer that continues this session: step count, history, optimiser state, random
        generator and position in the epoch restored. ``config`` replaces the saved settings (e.g. more
        epochs to continue a finished run); ValueError when it or ``train`` cannot continue the run
        (:meth:`resume_problem`). The caller runs it as usual."""
        config = self.config() if config is None else config
        problem = self.resume_problem(train, config)
        if problem:
            raise ValueError(f"the session cannot continue: {problem}; start a new run from its weights")
        trainer = Trainer(self.build_model(), train, val, config, on_event=on_event)
        if self.step:
            # the buffers, step count and learning rates continue; momentum and weight decay are the
            # (possibly changed) config's, not the saved ones
            trainer.optimizer.load_state_dict({**self.optimizer, "hyper": trainer.optimizer.hyper()})
            trainer.history.load_state_dict(self.history)
            trainer.rng.bit_generator.state = self.rng_state
            trainer.step_index = self.step
            if self.epoch_state is not None:
                trainer.restore_epoch_state(self.epoch_state)
        return trainer


def data_description(dataset, key: str | None = None) -> dict:
    """{"key", "train_size", "labels_crc32"} of a dataset (``y: (N,)``): enough to notice that a
    session is continued on different data."""
    y = np.ascontiguousarray(np.asarray(dataset.y, dtype=np.int64))
    return {"key": key, "train_size": int(y.size), "labels_crc32": zlib.crc32(y.tobytes())}


def _timeline_mismatch(session: Session) -> str | None:
    """Why ``session.timeline`` cannot belong to the session's network (its conv kernel shapes
    differ from the weights'), or None when it can."""
    kernels = {layer["name"]: tuple(np.shape(session.weights.get(f"{layer['name']}.w")))
               for layer in session.spec["layers"] if layer.get("type") == "Conv2D"}
    if session.timeline.shapes == kernels:
        return None
    return f"kernel shapes {session.timeline.shapes} do not match the model's {kernels}"


# ---------------------------------------------------------------------------------------- writing

def _pack(value, path: str, arrays: dict[str, np.ndarray]):
    """``value`` as JSON-able data, every ndarray moved into ``arrays`` under a member name based on
    ``path`` and replaced by ``{ARRAY_REF: name}``. TypeError for anything else."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject or value.dtype.kind not in "biufU":
            raise TypeError(f"session: {path}: cannot store arrays of dtype {value.dtype}")
        name = path if path not in arrays else f"{path}~{len(arrays)}"
        arrays[name] = value
        return {ARRAY_REF: name}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or key == ARRAY_REF:
                raise TypeError(f"session: {path}: keys must be strings other than {ARRAY_REF!r}, "
                                f"got {key!r}")
            out[key] = _pack(item, f"{path}/{key}", arrays)
        return out
    if isinstance(value, (list, tuple)):
        return [_pack(item, f"{path}/{i}", arrays) for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"session: {path}: cannot store a {type(value).__name__}")


def save_session(path, session: Session) -> str:
    """Write ``session`` to ``path`` atomically; returns the absolute path. A TypeError (something
    that cannot be stored), ValueError (a kernel timeline or gradient health of another network) or OSError leaves any
    existing file at ``path`` untouched."""
    path = os.path.abspath(os.fspath(path))
    problem = session.timeline is not None and _timeline_mismatch(session)
    if problem:  # opening would refuse the file
        raise ValueError(f"session: kernel timeline: {problem}")
    weight_layers = [layer["name"] for layer in session.spec["layers"] if layer.get("type") in ("Conv2D", "Dense")]
    if session.health is not None and session.health.layers != weight_layers:
        raise ValueError(f"session: gradient health: layers {session.health.layers} are not the model's "
                         f"{weight_layers}")
    arrays: dict[str, np.ndarray] = {}
    content = {
        "format": FORMAT,
        "version": VERSION,
        "spec": session.spec,
        "settings": session.settings,
        "step": int(session.step),
        "weights": session.weights,
        "history": session.history,
        "optimizer": session.optimizer,
        "rng_state": session.rng_state,
        "epoch_state": session.epoch_state,
        "data": session.data,
        "experiments": session.experiments,
        "timeline": None if session.timeline is None else session.timeline.state_dict(),
        "health": None if session.health is None else session.health.state_dict(),
        "earlier": session.earlier,
    }
    manifest = {name: _pack(value, name, arrays) for name, value in content.items()}
    arrays[MANIFEST] = np.array(json.dumps(manifest))
    with atomic_write(path, suffix=".session.tmp") as f:
        np.savez(f, **arrays)
    return path


# ---------------------------------------------------------------------------------------- reading

def _unpack(value, arrays: dict[str, np.ndarray]):
    if isinstance(value, dict):
        if set(value) == {ARRAY_REF}:
            return np.array(arrays[value[ARRAY_REF]])  # a writable copy, owned by the caller
        return {key: _unpack(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_unpack(item, arrays) for item in value]
    return value


def _refs(value, found: list[str]) -> list[str]:
    """Every array member name referenced in the manifest ``value``."""
    if isinstance(value, dict):
        if set(value) == {ARRAY_REF}:
            if not isinstance(value[ARRAY_REF], str):
                raise ValueError(f"bad array reference {value!r}")
            found.append(value[ARRAY_REF])
        else:
            for item in value.values():
                _refs(item, found)
    elif isinstance(value, list):
        for item in value:
            _refs(item, found)
    return found


def file_kind(path) -> str | None:
    """What ``path`` holds: "session" for a regular file that is a zip with a session manifest, "weights"
    for one with a model spec instead, None otherwise (missing, a folder, a FIFO, no readable zip: damaged
    or truncated, or neither). Only the member list is read. Tells a session from a weights file, both
    ``.npz``, for the app's file arguments and drops."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):  # a folder, a FIFO (reading it would block), nothing
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if f"{MANIFEST}.npy" in names:
        return "session"
    return "weights" if f"{SPEC_KEY}.npy" in names else None


def open_session(path) -> Session:
    """Read and check a session file. Raises SessionFileError (a ValueError) naming the file and
    what is wrong; returns a new Session (nothing else is read or changed)."""
    label = os.fspath(path)
    refuse_special_file(label, SessionFileError)
    try:
        with open(label, "rb") as f:
            raw = f.read()  # one read: the file may be replaced while we parse it
    except FileNotFoundError:
        raise SessionFileError(f"{label}: no such file") from None
    except OSError as exc:
        raise SessionFileError(f"{label}: cannot read the file: {exc.strerror or exc}") from None
    try:
        head = read_npz(io.BytesIO(raw), [MANIFEST], label)
    except DataFileError as exc:
        if f"no array named {MANIFEST!r}" in str(exc):
            raise SessionFileError(f"{label}: not a ConvScope session (no '{MANIFEST}' manifest: a weights "
                                   "file, perhaps)") from None
        raise SessionFileError(str(exc)) from None
    try:
        manifest = json.loads(str(head[MANIFEST][()]))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError("it is not a ConvScope session manifest")
        if manifest.get("version") != VERSION:
            raise ValueError(f"session format version {manifest.get('version')!r}; this ConvScope reads "
                             f"version {VERSION}")
        names = _refs(manifest, [])
    except (ValueError, RecursionError) as exc:
        raise SessionFileError(f"{label}: bad session manifest: {exc}") from None
    try:
        arrays = read_npz(io.BytesIO(raw), sorted(set(names)), label)
    except DataFileError as exc:
        raise SessionFileError(str(exc)) from None
    try:
        return _check(label, _unpack(manifest, arrays))
    except RecursionError:  # a part nested absurdly deep (json.loads alone accepts depth ~1,000s)
        raise SessionFileError(f"{label}: bad session manifest: nested too deeply") from None


def _fail(label: str, part: str, why) -> SessionFileError:
    return SessionFileError(f"{label}: {part}: {why}")


def _contains_array(value) -> bool:
    if isinstance(value, np.ndarray):
        return True
    if isinstance(value, dict):
        return any(_contains_array(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_array(v) for v in value)
    return False


def _check(label: str, content: dict) -> Session:
    """Rebuild every part with the class that owns it; SessionFileError on the first problem."""
    spec, settings, step = content.get("spec"), content.get("settings"), content.get("step")
    for part in ("spec", "settings", "step", "rng_state", "data"):  # plain JSON, no array references
        if _contains_array(content.get(part)):
            raise _fail(label, part, "holds an array where plain values belong")
    if not isinstance(settings, dict):
        raise _fail(label, "settings", "missing")
    try:
        config = TrainConfig(**settings)
    except TypeError as exc:
        raise _fail(label, "settings", exc) from None
    problems = config.validate()
    if problems:
        raise _fail(label, "settings", "; ".join(problems))
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise _fail(label, "step", f"must be a whole number >= 0, got {step!r}")

    weights = content.get("weights")
    if not isinstance(weights, dict) or not all(isinstance(w, np.ndarray) and w.dtype.kind == "f"
                                                for w in weights.values()):
        raise _fail(label, "weights", "missing or not floating-point arrays")
    session = Session(spec=spec, weights=weights, settings=settings, step=step,
                      history=content.get("history"),
                      optimizer=content.get("optimizer"), rng_state=content.get("rng_state"),
                      epoch_state=content.get("epoch_state"), data=content.get("data"),
                      experiments=content.get("experiments"))
    try:
        model = session.build_model()
    except ModelFileError as exc:
        raise _fail(label, "weights", exc) from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, ArithmeticError) as exc:
        # an untrusted spec can fail anywhere in the layers' builders (e.g. 0 input channels)
        raise _fail(label, "model spec", exc) from None

    started = [session.history is not None, session.optimizer is not None, session.rng_state is not None]
    if (step > 0 and not all(started)) or (step == 0 and any(started)):
        raise _fail(label, "training state", f"step {step} needs history, optimiser state and random "
                                             f"generator state together (found {started})")
    if step:
        _check_training_state(label, session, model, config)
    earlier = content.get("earlier")  # absent from files written before it was stored
    if earlier is not None:
        problem = _earlier_curve_problem(earlier)
        if problem:
            raise _fail(label, "earlier runs' curve", problem)
        session.earlier = earlier
    timeline = content.get("timeline")
    if timeline is not None:
        try:
            session.timeline = KernelTimeline.from_state_dict(timeline)
        except ValueError as exc:
            raise _fail(label, "kernel timeline", exc) from None
        problem = _timeline_mismatch(session)
        if problem:
            raise _fail(label, "kernel timeline", problem)
    if session.data is not None and not isinstance(session.data, dict):
        raise _fail(label, "data", f"expected a description dict, got {type(session.data).__name__}")
    if session.epoch_state is not None:
        _check_epoch_state(label, session, config)
    health = content.get("health")  # absent from files written before it was stored
    if health is not None:
        try:
            session.health = HealthMonitor.from_state_dict(health, model, step)
        except ValueError as exc:
            raise _fail(label, "gradient health", exc) from None
    return session


def _check_epoch_state(label: str, session: Session, config: TrainConfig) -> None:
    state = session.epoch_state
    order = state.get("order") if isinstance(state, dict) else None
    size = order.size if isinstance(order, np.ndarray) else 0
    if session.data and session.data.get("train_size") not in (None, size):
        raise _fail(label, "epoch state", f"an order of {size} images for {session.data['train_size']} "
                                          f"training images")
    problem = epoch_state_problem(state, size, config.batch_size, session.step) if session.step else \
        "present before any step"
    if problem:
        raise _fail(label, "epoch state", problem)


# A trainer records a step only when its loss was finite and below the divergence limit, so a stored
# per-step value beyond float32's range cannot come from a run (the model computes in float32).
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _run_values(a: np.ndarray) -> bool:
    """a: any shape. Whether every value is one a run records: finite, within float32's range."""
    return bool(np.isfinite(a).all() and (np.abs(a) <= FLOAT32_MAX).all())


def _shares(a: np.ndarray, missing_ok: bool = False) -> bool:
    """a: any shape. Whether every value lies in [0, 1] (or is NaN, when ``missing_ok``)."""
    return bool(((a >= 0) & (a <= 1) | (np.isnan(a) & missing_ok)).all())


def _epochs_problem(epochs: dict[str, np.ndarray]) -> str | None:
    """What no run records in ``epochs`` ({"train_loss", "val_loss", "train_accuracy", "val_accuracy":
    (e,)}; the validation values are NaN without a validation set), or None."""
    val_loss = epochs["val_loss"]
    if not _run_values(epochs["train_loss"]):
        return "train_loss holds NaN, infinity or values no run produces"
    if not _run_values(val_loss[~np.isnan(val_loss)]):
        return "val_loss holds infinity or values no run produces"
    if not (_shares(epochs["train_accuracy"]) and _shares(epochs["val_accuracy"], missing_ok=True)):
        return "accuracies must lie in [0, 1] (NaN for a missing validation accuracy)"
    return None


def _history_problem(history: History) -> str | None:
    """What makes ``history`` impossible for a real run (None when it is plausible). The app plots it
    and derives the steps per epoch from it (``steps / last epoch_fraction``), so NaN, inf or a zero
    epoch fraction would break the window instead of being refused here."""
    steps = {name: series.array() for name, series in history.steps.items()}   # each (n_steps,)
    epochs = {name: series.array() for name, series in history.epochs.items()}  # each (n_epochs,)
    for name in ("loss", "lr_conv", "lr_dense"):
        if not _run_values(steps[name]):
            return f"steps.{name} holds NaN, infinity or values no run produces"
    if not _shares(steps["accuracy"]):
        return "steps.accuracy must lie in [0, 1]"
    fraction = steps["epoch_fraction"]  # step / steps per epoch; only sessions with steps get here
    growing = np.isfinite(fraction).all() and fraction[0] > 0 and (np.diff(fraction) > 0).all()
    if not (growing and 1 <= fraction.size / fraction[-1] <= 2**31 - 1):
        return "steps.epoch_fraction must grow from above 0, with 1 to 2^31 - 1 steps per epoch"
    if not _run_values(epochs["seconds"]):
        return "epochs.seconds holds NaN, infinity or values no run produces"
    problem = _epochs_problem(epochs)
    if problem:
        return f"epochs.{problem}"
    if epochs["train_loss"].size > int(np.ceil(fraction[-1] - 1e-9)):
        return f"{epochs['train_loss'].size} epoch records after {fraction[-1]:g} epochs"
    return None


EARLIER_EPOCH_KEYS = ("epochs.step", "epochs.train_loss", "epochs.val_loss", "epochs.train_accuracy",
                      "epochs.val_accuracy")


def _earlier_curve_problem(earlier) -> str | None:
    """What makes ``earlier`` (see :class:`Session`) impossible to plot as runs' curves, or None."""
    if not isinstance(earlier, dict) or set(earlier) != {"steps.loss", *EARLIER_EPOCH_KEYS}:
        return f"expected the arrays {['steps.loss', *EARLIER_EPOCH_KEYS]}"
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind in "fiu" for a in earlier.values()):
        return "every part must be a 1-D array of numbers"
    losses = earlier["steps.loss"].astype(np.float64)  # (k,)
    if not (losses.size and _run_values(losses)):
        return "steps.loss must hold at least one step, without NaN, infinity or values no run produces"
    epochs = {key: earlier[key].astype(np.float64) for key in EARLIER_EPOCH_KEYS}  # each (e,)
    if len({a.size for a in epochs.values()}) != 1:
        return "the epochs' arrays differ in length"
    ends = epochs["epochs.step"]
    if not ((ends == np.round(ends)).all() and (ends >= 1).all() and (ends <= losses.size).all()
            and (np.diff(ends) > 0).all()):
        return f"epochs.step must be growing whole numbers in 1..{losses.size}"
    problem = _epochs_problem({key.removeprefix("epochs."): values for key, values in epochs.items()})
    return None if problem is None else f"epochs.{problem}"


def _check_training_state(label: str, session: Session, model: Sequential, config: TrainConfig) -> None:
    try:
        if not isinstance(session.history, dict):
            raise ValueError(f"expected named series, got {type(session.history).__name__}")
        history = History()
        history.load_state_dict(session.history)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _fail(label, "history", exc) from None
    if len(history.steps["loss"]) != session.step:
        raise _fail(label, "history", f"{len(history.steps['loss'])} step records for {session.step} steps")
    problem = _history_problem(history)
    if problem:
        raise _fail(label, "history", problem)
    optimizer = config.make_optimizer(model)
    state = session.optimizer
    try:
        # load_state_dict sets every "hyper" entry as an attribute: they must be the settings' own
        if not isinstance(state, dict) or state.get("hyper") != optimizer.hyper():
            raise ValueError(f"hyper-parameters {state.get('hyper') if isinstance(state, dict) else None} "
                             f"do not match the settings' {optimizer.hyper()}")
        if _contains_array(state["hyper"]) or _contains_array(state.get("lrs")):
            raise ValueError("hyper-parameters and learning rates must be plain numbers")
        if set(state.get("lrs") or {}) != set(optimizer.lrs):
            raise ValueError(f"expected learning rates for {sorted(optimizer.lrs)}")
        if isinstance(state.get("t"), bool) or not isinstance(state.get("t"), int) or state["t"] < 0:
            raise ValueError(f"step count must be a whole number >= 0, got {state.get('t')!r}")
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _fail(label, "optimiser state", exc) from None
    if any(not np.isfinite(v).all() for bufs in optimizer.buffers.values() for v in bufs.values()):
        raise _fail(label, "optimiser state", "contains NaN or infinity")
    try:
        np.random.Generator(np.random.PCG64()).bit_generator.state = session.rng_state
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise _fail(label, "random generator state", exc) from None
