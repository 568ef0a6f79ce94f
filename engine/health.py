"""Gradient health: is each weight layer still learning, and are its units alive?

Right after an optimiser step the training model still holds that mini-batch's forward caches and
gradients. From them :func:`layer_health` computes, per weight layer (Conv2D or Dense):

- ``grad_norm``: ``||g||`` of the gradient the step applied (``model.applied_grads()``), all of the
  layer's parameters (w and b) together.
- ``update_ratio``: ``||theta_after - theta_before|| / ||theta_before||``: how far one step moved the
  layer relative to its size. Rule of thumb (cs231n): about 1e-3 is healthy, below ~1e-6 the layer
  is frozen, above ~1e-1 the steps are violent.
- ``dead_share``: when a ReLU follows the layer, the share of its units (conv channels, dense
  neurons) that were never positive anywhere in the batch. A dead unit passes no gradient back, so
  the weights feeding it stop learning.
- ``saturated_share``: when tanh, arctan or sigmoid follows, the share of activation values within
  3% of an asymptote (``|a - centre| > 0.97 * half_range``): their derivative is nearly 0, so little
  gradient flows through them.

:class:`HealthMonitor` collects these after training steps (call :meth:`HealthMonitor.observe` with
every trainer event, on the training thread) in bounded memory (engine.timeline.ThinningBuffer), and
raises warnings: a layer that stopped learning (update ratio below ``RATIO_FLOOR`` for
``stall_steps`` observations in a row while its learning rate is not annealed to ~0) and a run that
diverged (the trainer's error event: it decides what divergence is, a non-finite or exploding loss).
Views read copies from any thread.

Cost per observed step (VGG-7, batch 64): one pass over the activations of the following
activation layers, the gradients and the parameters; measured in benchmarks, not here.
"""
from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np

from engine.timeline import ThinningBuffer

RATIO_FLOOR = 1e-6
GRAD_ZERO = 1e-12  # a gradient norm below this is zero up to rounding
SATURATION = 0.97
ANNEALED = 1e-2  # a learning rate below this share of its peak so far is a schedule ending, not a fault
STALL_STEPS = 20
DEFAULT_CAPACITY = 512

# activation -> (centre, half range) of its output interval
SATURATING = {"tanh": (0.0, 1.0), "arctan": (0.0, math.pi / 2), "sigmoid": (0.5, 0.5)}
FIELDS = ("grad_norm", "weight_norm", "update_ratio", "dead_share", "saturated_share")


@dataclasses.dataclass(frozen=True)
class LayerHealth:
    """Statistics of one weight layer after one step (NaN where a statistic does not apply:
    ``update_ratio`` without the weights from before the step, ``dead_share`` unless a ReLU
    follows, ``saturated_share`` unless tanh/arctan/sigmoid follows)."""

    name: str
    activation: str | None
    grad_norm: float
    weight_norm: float
    update_ratio: float
    dead_share: float
    saturated_share: float


@dataclasses.dataclass(frozen=True)
class HealthWarning:
    """``kind``: "stalled" (``layer`` stopped learning), "diverged" (the run; ``layer`` None) or
    "went_on" (the run diverged and then went on: history, no longer a problem). ``step``: when it
    began. ``message``: one sentence for the learner."""

    kind: str
    layer: str | None
    step: int
    message: str


def weight_layers(model) -> list[tuple[object, object | None]]:
    """(weight layer, the Activation layer that follows it before the next weight layer, or None)
    for every Conv2D/Dense layer of ``model``, in order."""
    found = []
    for i, layer in enumerate(model.layers):
        if layer.kind not in ("Conv2D", "Dense"):
            continue
        act = None
        for later in model.layers[i + 1:]:
            if later.kind in ("Conv2D", "Dense"):
                break
            if later.kind == "Activation":
                act = later
                break
        found.append((layer, act))
    return found


def _norm(arrays) -> float:
    """The L2 norm of several arrays (any shapes) taken together, as one vector."""
    return math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))


def unit_stats(fn: str, a) -> tuple[float, float]:
    """(dead_share, saturated_share) of activation ``fn``'s output ``a: (N, ..., units)`` for one
    batch, or a list of such arrays (the shards of one batch); a unit is one index of the last axis
    (a conv channel at every position, a dense neuron). NaN for the statistic that does not apply to
    ``fn``."""
    parts = [a] if isinstance(a, np.ndarray) else list(a)
    dead = saturated = math.nan
    if fn == "relu":
        peak = np.max([_unit_peaks(part) for part in parts], axis=0)  # (units,) largest output over the batch
        dead = float(np.mean(peak <= 0))
    elif fn in SATURATING:
        centre, half = SATURATING[fn]
        out = sum(int(np.count_nonzero(np.abs(part - part.dtype.type(centre)) > part.dtype.type(SATURATION * half)))
                  for part in parts)
        saturated = out / sum(part.size for part in parts)
    return dead, saturated


def _unit_peaks(a: np.ndarray) -> np.ndarray:
    """Largest value of each unit (last axis) of ``a: (N, ..., units)`` -> (units,)."""
    units = a.shape[-1]
    rows = a.size // units
    # Max over rows of a (rows, units) table, in two reductions: first over a wide (.., m*units)
    # view (m divides rows), which NumPy vectorises ~15x better than a narrow 16-column one.
    m = math.gcd(rows, 256)
    wide = a.reshape(rows // m, m * units).max(axis=0)     # (m * units,)
    return wide.reshape(m, units).max(axis=0)


def layer_health(model, before: dict[str, np.ndarray] | None = None) -> list[LayerHealth]:
    """Per weight layer statistics (see the module doc) from ``model``'s last training step.

    before: the parameters as they were before that step (``{"conv1.w": array, ...}``), for the
    update ratio; None leaves it NaN. Reads the activation layers' cached outputs of the last
    forward, so call it before anything else runs the model forward.
    """
    grads = model.applied_grads()
    rows = []
    for layer, act in weight_layers(model):
        names = [f"{layer.name}.{k}" for k in layer.params]
        params = [layer.params[k] for k in layer.params]
        weight_norm = _norm(params)
        ratio = math.nan
        if before is not None:
            prior = _norm(before[n] for n in names)
            moved = _norm(p - before[n] for p, n in zip(params, names))
            ratio = moved / prior if prior > 0 else math.nan
        fn = act.fn if act is not None else None
        # The activation layer's outputs of the last forward, from every shard of a split batch.
        cached = [] if act is None else [twin._a for twin in model.trained_twins(act.name)
                                         if getattr(twin, "_a", None) is not None]
        dead, saturated = unit_stats(fn, cached) if cached else (math.nan, math.nan)
        rows.append(LayerHealth(layer.name, fn, _norm(grads[n] for n in names), weight_norm, ratio,
                                dead, saturated))
    return rows


class HealthMonitor:
    """Gradient health over a training run, fed with the trainer's events.

    model: the model being trained (its layout and current weights: the "before" of the next
    step). step: the optimiser steps already done (non-zero when resuming). capacity: stored
    observations; when full, every other one is dropped and from then on only every second step is
    observed (the history always spans the whole run). stall_steps: observations in a row with an
    update ratio below RATIO_FLOOR before a layer counts as stopped.
    """

    def __init__(self, model, step: int = 0, capacity: int = DEFAULT_CAPACITY,
                 stall_steps: int = STALL_STEPS) -> None:
        pairs = weight_layers(model)
        if not pairs:
            raise ValueError("the model has no Conv2D or Dense layer to monitor")
        self.layers = [layer.name for layer, _ in pairs]
        self.activations = {layer.name: (act.fn if act is not None else None) for layer, act in pairs}
        self.groups = {layer.name: layer.group for layer, _ in pairs}
        self.stall_steps = int(stall_steps)
        n = len(self.layers)
        fields = {"step": ((), np.int64), **{f: ((n,), np.float64) for f in FIELDS}}
        self._buffer = ThinningBuffer(capacity, fields)
        self._before = {name: p.copy() for name, p in model.params().items()}
        self._before_step = int(step)
        self._lock = threading.Lock()
        self._latest: tuple[int, list[LayerHealth]] | None = None
        self._low = dict.fromkeys(self.layers, 0)  # observations in a row below RATIO_FLOOR
        self._low_since: dict[str, int] = {}
        self._peak_lr: dict[str, float] = {}
        self._lr_share: float | None = None  # the latest observed rate / its peak (lowest group), not saved
        # the run's latest divergence: {"step", "message", "cause", "went_on": the first step accepted
        # after it, or None while the run is held}
        self._divergence: dict | None = None
        self.version = 0

    @property
    def stride(self) -> int:
        """Steps between observations now (1 until the buffer first thins out)."""
        return 1 << self._buffer.halvings

    def _due(self, step: int) -> bool:
        return self._buffer.due(step, self.stride)

    # ------------------------------------------------------------------ training thread

    def observe(self, event: dict, model) -> bool:
        """Trainer event hook, on the training thread, right after the trainer emitted ``event``
        (``model``: the training model). A "step" event that is due is measured (True returned);
        an "error" event marks the run as diverged. Steps that are not due only copy the weights
        when the next step will be due (the "before" of its update ratio)."""
        kind = event.get("type")
        if kind == "error":
            with self._lock:  # a new divergence, or the held one again (a rescue that diverged too): its news
                text = str(event.get("message") or "training diverged")
                self._divergence = {"step": int(event.get("step", 0)), "message": text[:1].upper() + text[1:],
                                    "cause": str(event.get("cause") or "its loss exploded"), "went_on": None}
                self.version += 1
            return False
        if kind != "step":
            return False
        step = int(event["step"])
        with self._lock:
            divergence = self._divergence
            if divergence is not None and divergence["went_on"] is None and step >= divergence["step"]:
                divergence["went_on"] = step  # a step accepted after it (the refused one's number comes again)
                self.version += 1
            due = self._due(step)
        measured = False
        if due:
            before = self._before if self._before_step == step - 1 else None
            rows = layer_health(model, before)
            with self._lock:
                self._record(step, rows, event)
            measured = True
        with self._lock:
            copy_now = self._due(step + 1)
        if copy_now:
            for name, p in model.params().items():
                np.copyto(self._before[name], p)
            self._before_step = step
        return measured

    def weights_restored(self, model, step: int) -> None:
        """The trainer went back to earlier weights (``Trainer.rollback``) at ``step``: the next
        step's update starts from the weights ``model`` holds now, not from the last step's (the
        update ratio of that step compared with the wrecked weights: 1.0 instead of ~1e-3). Call
        while no step runs."""
        with self._lock:
            for name, p in model.params().items():
                np.copyto(self._before[name], p)
            self._before_step = step

    def _record(self, step: int, rows: list[LayerHealth], event: dict) -> None:
        self._buffer.append({"step": step, **{f: [getattr(r, f) for r in rows] for f in FIELDS}})
        self._latest = (step, rows)
        lrs = event.get("lrs") or {}
        for group, lr in lrs.items():
            self._peak_lr[group] = max(self._peak_lr.get(group, 0.0), float(lr))
        shares = [float(lr) / self._peak_lr[g] for g, lr in lrs.items() if self._peak_lr[g] > 0]
        self._lr_share = min(shares) if shares else None
        for row in rows:
            lr = lrs.get(self.groups[row.name])
            peak = self._peak_lr.get(self.groups[row.name], 0.0)
            # (<= with a margin: the step schedule ends at 0.1**2 = 0.010000000000000002 of the peak)
            annealed = lr is not None and 0 < lr <= ANNEALED * peak * (1 + 1e-9)
            if row.update_ratio < RATIO_FLOOR and not annealed:  # NaN compares False: no evidence
                self._low[row.name] += 1
                self._low_since.setdefault(row.name, step)
            elif not math.isnan(row.update_ratio):
                self._low[row.name] = 0
                self._low_since.pop(row.name, None)
        self.version += 1

    # ------------------------------------------------------------------ any thread

    def lr_share(self) -> float | None:
        """The learning rate at the latest observed step as a share of its peak so far (the lowest over
        the parameter groups; 0.15: a schedule has brought it down to 15%), or None when unknown (before
        the first step, or a monitor restored from a saved session). The update ratio scales with it."""
        with self._lock:
            return self._lr_share

    def latest(self) -> tuple[int, list[LayerHealth]] | None:
        """(step, per-layer statistics) of the newest observation, or None before the first."""
        with self._lock:
            return self._latest

    def history(self) -> dict[str, np.ndarray]:
        """Copies: ``{"step": (n,) int64, "grad_norm": (n, L), "weight_norm", "update_ratio",
        "dead_share", "saturated_share": (n, L)}``, columns in :attr:`layers` order, oldest first."""
        with self._lock:
            n = self._buffer.count
            return {name: a[:n].copy() for name, a in self._buffer.arrays.items()}

    def warnings(self) -> list[HealthWarning]:
        """Warnings that hold now: the latest divergence ("went_on" once the run has gone on after it:
        its red "try a lower learning rate" stayed up over a recovered run), then every stopped layer."""
        with self._lock:
            found = []
            d = self._divergence
            if d is not None and d["went_on"] is None:
                found.append(HealthWarning("diverged", None, d["step"], d["message"]))
            elif d is not None:
                found.append(HealthWarning("went_on", None, d["step"], f"Training diverged at step {d['step']} "
                                           f"({d['cause']}) and went on from step {d['went_on']}."))
            latest = {r.name: r for r in self._latest[1]} if self._latest else {}
            for name in self.layers:
                if self._low[name] >= self.stall_steps:
                    found.append(HealthWarning("stalled", name, self._low_since[name],
                                               self._stall_message(name, latest.get(name))))
            return found

    def _stall_message(self, name: str, row: LayerHealth | None) -> str:
        since = self._low_since[name]
        if row is not None and row.grad_norm < GRAD_ZERO:
            why = ("its gradient is zero, no error signal reaches it (dead ReLUs or saturated units "
                   "between it and the loss?)")
        elif self._peak_lr.get(self.groups[name], 1.0) == 0:
            why = "its learning rate is 0"
        else:
            floor = f"{RATIO_FLOOR:.0e}".replace("e-0", "e-")  # 1e-6, not Python's 1e-06
            why = f"its steps change its weights by less than {floor} of their size"
        return f"{name} stopped learning (since step {since}): {why}."

    # ------------------------------------------------------------------ session files

    def state_dict(self) -> dict:
        """Plain data for a session file (copies): ``{"capacity", "halvings", "stall_steps",
        "layers": [name, ...], "history": {"step": (n,), field: (n, L)}, "low": {layer: observations
        in a row below RATIO_FLOOR}, "low_since": {layer: step}, "peak_lr": {group: lr},
        "divergence": {"step", "message", "cause", "went_on": step | None} | None}``. Call while no step
        runs."""
        with self._lock:
            buf = self._buffer
            return {"capacity": buf.capacity, "halvings": buf.halvings, "stall_steps": self.stall_steps,
                    "layers": list(self.layers),
                    "history": {name: a[:buf.count].copy() for name, a in buf.arrays.items()},
                    "low": dict(self._low), "low_since": dict(self._low_since), "peak_lr": dict(self._peak_lr),
                    "divergence": None if self._divergence is None else dict(self._divergence)}

    @classmethod
    def from_state_dict(cls, state: dict, model, step: int) -> "HealthMonitor":
        """The monitor of :meth:`state_dict` continuing on ``model`` (the weights it had at ``step``,
        the "before" of the next update ratio); ValueError naming what is inconsistent."""
        if not isinstance(state, dict) or not isinstance(state.get("history"), dict):
            raise ValueError("expected a state dict with a 'history' dict")
        stall_steps = state.get("stall_steps")
        if isinstance(stall_steps, bool) or not isinstance(stall_steps, int) or stall_steps < 1:
            raise ValueError(f"stall_steps must be a whole number >= 1, got {stall_steps!r}")
        try:
            monitor = cls(model, step=step, capacity=state["capacity"], stall_steps=stall_steps)
            history, halvings = state["history"], state["halvings"]
            low, low_since, peak_lr = dict(state["low"]), dict(state["low_since"]), dict(state["peak_lr"])
            divergence = state["divergence"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"incomplete state ({exc!r})") from None
        if state.get("layers") != monitor.layers:
            raise ValueError(f"layers {state.get('layers')!r} are not the model's {monitor.layers}")
        if isinstance(halvings, bool) or not isinstance(halvings, int) or not 0 <= halvings < 63:
            raise ValueError(f"bad halvings {halvings!r}")
        buf = monitor._buffer
        steps = np.asarray(history.get("step"))
        if set(history) != set(buf.arrays) or steps.ndim != 1 or steps.dtype.kind not in "iu" \
                or len(steps) > buf.capacity:
            raise ValueError(f"history needs 'step' and {', '.join(FIELDS)} with at most {buf.capacity} records")
        if np.any(np.diff(steps) <= 0) or (steps.size and not 0 < steps[0] <= steps[-1] <= step):
            raise ValueError(f"history steps must increase within 1..{step}")
        n = len(steps)
        for name in FIELDS:
            values = np.asarray(history[name])
            # NaN where a statistic does not apply; norms, ratios and shares are never negative
            if values.dtype.kind != "f" or values.shape != (n, len(monitor.layers)) or (values < 0).any():
                raise ValueError(f"history {name}: needs {n} x {len(monitor.layers)} numbers >= 0")
            buf.arrays[name][:n] = values
        buf.arrays["step"][:n] = steps
        buf.count, buf.halvings = n, halvings
        monitor._restore_warnings(low, low_since, peak_lr, divergence, step)
        if n:
            row = {name: buf.arrays[name][n - 1] for name in FIELDS}
            monitor._latest = (int(steps[-1]), [
                LayerHealth(layer, monitor.activations[layer], **{f: float(row[f][i]) for f in FIELDS})
                for i, layer in enumerate(monitor.layers)])
        return monitor

    def _restore_warnings(self, low: dict, low_since: dict, peak_lr: dict, divergence, step: int) -> None:
        """The stall counters, peak learning rates and divergence of a state dict at ``step``, checked."""
        def whole(value):
            return not isinstance(value, bool) and isinstance(value, int) and value >= 0
        if set(low) != set(self.layers) or not all(whole(v) for v in low.values()):
            raise ValueError("low: needs a count >= 0 for every layer")
        if not set(low_since) <= set(self.layers) or not all(whole(v) for v in low_since.values()) \
                or any(low[name] and name not in low_since for name in self.layers):
            raise ValueError("low_since: needs the step of every layer counted as low")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                   for v in peak_lr.values()):  # every group the optimiser has, this model's or not
            raise ValueError("peak_lr: needs a finite rate >= 0 per parameter group")
        if divergence is not None and not (
                isinstance(divergence, dict) and set(divergence) == {"step", "message", "cause", "went_on"}
                and whole(divergence["step"]) and isinstance(divergence["message"], str)
                and isinstance(divergence["cause"], str) and (divergence["went_on"] is None or (
                    whole(divergence["went_on"]) and divergence["step"] <= divergence["went_on"] <= step))):
            raise ValueError("divergence: needs its step, message, cause and the step the run went on from")
        self._low, self._low_since, self._peak_lr = low, low_since, {k: float(v) for k, v in peak_lr.items()}
        self._divergence = None if divergence is None else dict(divergence)
