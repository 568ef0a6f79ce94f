"""Kernel timeline: snapshots of every conv kernel during training, in bounded, preallocated memory.

:class:`ThinningBuffer` keeps records of fixed shape in arrays allocated once. When it is full it
drops every other record and keeps going at half the resolution, so it always spans the WHOLE run
(a plain ring would forget the first steps, which are exactly where kernels form) and never grows.
:class:`KernelTimeline` stores one conv kernel set per record; engine/health.py keeps its per-layer
statistics in the same kind of buffer.

Memory bound of a timeline: ``capacity * (8 + 4 * sum of kernel sizes)`` bytes, allocated in the
constructor and never exceeded (:meth:`KernelTimeline.bytes_needed`). VGG-7 (16-16-32-32 filters of
3x3) has 16,272 kernel weights: 65 KB per snapshot, 13 MB for the default capacity of 200.

Threads: the training thread calls :meth:`KernelTimeline.observe` after each step; views read copies
from the GUI thread. Every public method takes the timeline's lock.
"""
from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

DEFAULT_CAPACITY = 200
DEFAULT_EVERY = 10


class ThinningBuffer:
    """Up to ``capacity`` records, each a set of named fixed-shape arrays, in preallocated storage.

    fields: ``{name: (shape, dtype)}``; record i of field f is ``arrays[f][i]`` with that shape.
    Appending to a full buffer first keeps records 0, 2, 4, ... (``capacity // 2`` of them, in order)
    and increments ``halvings``: equally spaced records stay equally spaced at twice the spacing.
    Not thread-safe: the owner locks.
    """

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 2 \
                or capacity % 2:
            raise ValueError(f"capacity must be an even whole number >= 2, got {capacity!r}")
        self.capacity = int(capacity)
        self.arrays = {name: np.zeros((self.capacity, *shape), dtype)
                       for name, (shape, dtype) in fields.items()}
        self.count = 0
        self.halvings = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

    def due(self, step: int, stride: int) -> bool:
        """Whether ``step`` is at least ``stride`` after the last record's (its field ``"step"``), or
        the buffer is empty: the owners record every stride-th step, the stride doubling as they thin."""
        return self.count == 0 or step >= int(self.arrays["step"][self.count - 1]) + stride

    def append(self, values: dict[str, np.ndarray]) -> None:
        """Copy one record in (``values[name]`` broadcastable to the field's shape)."""
        if self.count == self.capacity:
            self._thin()
        for name, array in self.arrays.items():
            array[self.count] = values[name]
        self.count += 1

    def _thin(self) -> None:
        # Record i takes record 2i, in increasing i: slot 2i >= i is read before anything
        # overwrites it, so no temporary copy (and no memory beyond the bound) is needed.
        for array in self.arrays.values():
            for i in range(1, self.capacity // 2):
                array[i] = array[2 * i]
        self.count = self.capacity // 2
        self.halvings += 1

    def clear(self) -> None:
        self.count = 0
        self.halvings = 0


class SnapshotRead(NamedTuple):
    """One layer's snapshot with the timeline's state at the same moment (:meth:`KernelTimeline.read`)."""
    version: int         # the timeline's version
    count: int           # how many snapshots it held
    index: int           # the snapshot's position, 0 (oldest) to count - 1
    step: int            # the step it was taken at
    kernels: np.ndarray  # (kh, kw, c_in, c_out) float32, a copy


class KernelTimeline:
    """Snapshots of conv kernels ``{layer: (kh, kw, c_in, c_out)}`` with the step each was taken at.

    ``every``: :meth:`observe` records a snapshot when at least ``stride`` steps passed since the
    last one; ``stride = every * 2**halvings`` doubles each time the buffer thins out, so the
    snapshots stay evenly spaced, and when a run ends (its "done" event, unless it diverged) it records
    the run's last step too: the weights the run ended with. :meth:`push` records unconditionally (steps must increase).
    Snapshot index ``i`` runs from 0 (oldest) to ``len(self) - 1`` (newest).
    """

    def __init__(self, shapes: dict[str, tuple[int, int, int, int]], capacity: int = DEFAULT_CAPACITY,
                 every: int = DEFAULT_EVERY) -> None:
        if not shapes:
            raise ValueError("a kernel timeline needs at least one conv layer")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive whole number, got {every!r}")
        self.shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
        for name, shape in self.shapes.items():
            if len(shape) != 4 or min(shape) < 1:
                raise ValueError(f"{name}: a conv kernel shape is (kh, kw, c_in, c_out), got {shape}")
        self.every = int(every)
        fields = {"step": ((), np.int64),
                  **{name: (shape, np.float32) for name, shape in self.shapes.items()}}
        self._buffer = ThinningBuffer(capacity, fields)
        self._lock = threading.Lock()
        self.version = 0  # increments on every change: readers skip redraws when it is unchanged
        self._last_step: int | None = None  # the newest step event observed

    @classmethod
    def for_model(cls, model, capacity: int = DEFAULT_CAPACITY, every: int = DEFAULT_EVERY,
                  step: int | None = 0) -> "KernelTimeline":
        """A timeline for ``model``'s Conv2D layers; records their current kernels as the snapshot
        of ``step`` (the initial weights; None records nothing)."""
        shapes = {layer.name: layer.params["w"].shape for layer in model.layers if layer.kind == "Conv2D"}
        timeline = cls(shapes, capacity, every)
        if step is not None:
            timeline.push(step, model_kernels(model, shapes))
        return timeline

    @staticmethod
    def bytes_needed(shapes: dict[str, tuple[int, ...]], capacity: int = DEFAULT_CAPACITY) -> int:
        """The memory bound: int64 step + float32 kernels, per snapshot, times ``capacity``."""
        return capacity * (8 + 4 * sum(int(np.prod(s)) for s in shapes.values()))

    # ------------------------------------------------------------------ writing (training thread)

    @property
    def capacity(self) -> int:
        return self._buffer.capacity

    @property
    def stride(self) -> int:
        """Steps between the snapshots :meth:`observe` records now."""
        return self.every << self._buffer.halvings

    def due(self, step: int) -> bool:
        """Whether :meth:`observe` would record ``step``."""
        with self._lock:
            return self._due(step)

    def _due(self, step: int) -> bool:
        return self._buffer.due(step, self.stride)

    def observe(self, event: dict, model) -> bool:
        """Trainer event hook: after a ``"step"`` event that is due, record ``model``'s kernels, and at
        the run's ``"done"`` those of its last step when they are not recorded yet (a 142-step run's
        newest snapshot was step 140, not the weights it ended with). Call on the training thread
        right after the event. Returns True when a snapshot was taken."""
        kind = event.get("type")
        if kind == "step":
            step = self._last_step = int(event["step"])
        elif kind == "done" and event.get("reason") != "diverged" and self._last_step is not None:
            # (a diverged run's last weights are the wrecked ones a rescue rolls back from: not its end)
            step = self._last_step
        else:
            return False
        with self._lock:
            buf = self._buffer
            recorded = buf.count and int(buf.arrays["step"][buf.count - 1]) >= step
            if recorded or (kind == "step" and not self._due(step)):
                return False
            self._push(step, model_kernels(model, self.shapes))
        return True

    def push(self, step: int, kernels: dict[str, np.ndarray]) -> None:
        """Record ``kernels`` ({layer: (kh, kw, c_in, c_out)}, copied) as the snapshot of ``step``."""
        with self._lock:
            self._push(step, kernels)

    def _push(self, step: int, kernels: dict[str, np.ndarray]) -> None:
        """Store ``kernels`` ({layer: (kh, kw, c_in, c_out)}, every layer of :attr:`shapes`) as the
        snapshot of ``step`` (the caller holds the lock)."""
        buf = self._buffer
        for name, shape in self.shapes.items():
            if name not in kernels:
                raise ValueError(f"kernel timeline: no kernel for layer {name!r}")
            if np.shape(kernels[name]) != shape:
                raise ValueError(f"kernel timeline: {name} has shape {np.shape(kernels[name])}, "
                                 f"expected {shape}")
        if buf.count and step <= int(buf.arrays["step"][buf.count - 1]):
            raise ValueError(f"kernel timeline: step {step} is not after the last snapshot "
                             f"(step {int(buf.arrays['step'][buf.count - 1])})")
        buf.append({"step": step, **kernels})
        self.version += 1

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()
            self.version += 1

    # ------------------------------------------------------------------ reading (any thread)

    def __len__(self) -> int:
        return self._buffer.count

    @property
    def nbytes(self) -> int:
        """Bytes held by the snapshot arrays: fixed at construction (== bytes_needed)."""
        return self._buffer.nbytes

    def steps(self) -> np.ndarray:
        """The step of every snapshot, oldest first: (len,) int64, a copy."""
        with self._lock:
            return self._buffer.arrays["step"][: self._buffer.count].copy()

    def kernels(self, name: str, index: int) -> tuple[int, np.ndarray]:
        """(step, kernel copy (kh, kw, c_in, c_out) float32) of layer ``name`` at snapshot ``index``
        (negative counts from the newest, as for lists)."""
        with self._lock:
            index = self._check_index(index)
            return int(self._buffer.arrays["step"][index]), self._buffer.arrays[name][index].copy()

    def snapshot(self, index: int) -> tuple[int, dict[str, np.ndarray]]:
        """(step, {layer: kernel copy (kh, kw, c_in, c_out)}) of snapshot ``index`` (negative counts from
        the newest)."""
        with self._lock:
            index = self._check_index(index)
            arrays = self._buffer.arrays
            return int(arrays["step"][index]), {name: arrays[name][index].copy() for name in self.shapes}

    def max_abs(self, name: str) -> float:
        """max |w| of layer ``name`` over all stored snapshots (0.0 when empty): one colour scale
        for the whole timeline, so growing weights look stronger instead of being renormalised."""
        with self._lock:
            stored = self._buffer.arrays[name][: self._buffer.count]
            return float(np.abs(stored).max()) if stored.size else 0.0

    def drift(self, name: str) -> np.ndarray:
        """How far layer ``name`` has moved from its first snapshot, per snapshot:
        ``||w_i - w_0|| / ||w_0||``, shape (len,) float64 (0 for the first; NaN if w_0 is all zero)."""
        with self._lock:
            flat = self._flat_copy(name)
        return _relative_drift(flat)

    def drift_curve(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`steps` (n,) int64, :meth:`drift` of ``name`` (n,) float64) read in one state: separate
        calls may straddle a new snapshot or a thinning by the training thread and differ in length."""
        with self._lock:
            steps = self._buffer.arrays["step"][: self._buffer.count].copy()
            flat = self._flat_copy(name)
        return steps, _relative_drift(flat)

    def _flat_copy(self, name: str) -> np.ndarray:
        """Layer ``name``'s stored kernels as (len, kh*kw*c_in*c_out) float64, a copy (the caller locks)."""
        stored = self._buffer.arrays[name][: self._buffer.count]
        return stored.reshape(len(stored), -1).astype(np.float64)

    def read(self, name: str, index: int) -> SnapshotRead | None:
        """Layer ``name`` at snapshot ``index`` (clamped to the newest; negative counts from it), with the
        count and version of the same moment; None when empty. For a reader whose index comes from an
        earlier ``len()``, like a slider's range: the training thread may have thinned the timeline since,
        and :meth:`kernels` would raise IndexError (or the count would not match the snapshot)."""
        with self._lock:
            count = self._buffer.count
            if count == 0:
                return None
            index = self._check_index(min(index, count - 1))
            return SnapshotRead(self.version, count, index, int(self._buffer.arrays["step"][index]),
                                self._buffer.arrays[name][index].copy())

    def _check_index(self, index: int) -> int:
        """The non-negative position of ``index``; IndexError outside. (Another thread may thin the
        buffer between two calls: ask for -1, not len() - 1, to get the newest.)"""
        count = self._buffer.count
        if not -count <= index < count:
            raise IndexError(f"snapshot index {index} out of range (the timeline holds {count})")
        return index % count

    # ------------------------------------------------------------------ sessions

    def state_dict(self) -> dict:
        """Plain data for a session file: ``{"capacity", "every", "halvings", "steps": (n,),
        "kernels": {layer: (n, kh, kw, c_in, c_out)}}`` (copies)."""
        with self._lock:
            buf = self._buffer
            return {"capacity": buf.capacity, "every": self.every, "halvings": buf.halvings,
                    "steps": buf.arrays["step"][: buf.count].copy(),
                    "kernels": {name: buf.arrays[name][: buf.count].copy() for name in self.shapes}}

    def copy(self) -> "KernelTimeline":
        """A copy of the timeline as it is now: for a reader that reads it several times (its steps, then
        each layer's drift) while the training thread records on, and may thin it out, between two reads."""
        return KernelTimeline.from_state_dict(self.state_dict())

    @classmethod
    def from_state_dict(cls, state: dict) -> "KernelTimeline":
        """Rebuild a timeline from :meth:`state_dict`; ValueError on any inconsistency."""
        if not isinstance(state, dict) or not isinstance(state.get("kernels"), dict):
            raise ValueError("kernel timeline: expected a state dict with a 'kernels' dict")
        try:
            kernels = state["kernels"]
            steps = np.asarray(state["steps"])
            halvings = state["halvings"]
            shapes = {name: np.shape(k)[1:] for name, k in kernels.items()}
            timeline = cls(shapes, state["capacity"], state["every"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"kernel timeline: incomplete state ({exc!r})") from None
        if steps.ndim != 1 or steps.dtype.kind not in "iu" or len(steps) > timeline.capacity:
            raise ValueError(f"kernel timeline: steps must be at most {timeline.capacity} whole numbers")
        n = len(steps)
        if np.any(np.diff(steps) <= 0):
            raise ValueError("kernel timeline: snapshot steps must increase")
        if isinstance(halvings, bool) or not isinstance(halvings, int) or not 0 <= halvings < 63:
            raise ValueError(f"kernel timeline: bad halvings {halvings!r}")
        for name, k in kernels.items():
            k = np.asarray(k)  # strings or objects from a damaged file are refused, not compared
            if k.dtype.kind != "f" or k.ndim == 0 or len(k) != n or not np.isfinite(k).all():
                raise ValueError(f"kernel timeline: {name} needs {n} finite floating-point snapshots")
        buf = timeline._buffer
        buf.arrays["step"][:n] = steps
        for name, k in kernels.items():
            buf.arrays[name][:n] = k
        buf.count, buf.halvings = n, halvings
        return timeline


def _relative_drift(flat: np.ndarray) -> np.ndarray:
    """``||w_i - w_0|| / ||w_0||`` of the rows of ``flat: (n, k)``: (n,) float64 (NaN if w_0 is all zero)."""
    if not len(flat):
        return np.zeros(0)
    first = np.linalg.norm(flat[0])
    moved = np.linalg.norm(flat - flat[0], axis=1)
    return moved / first if first > 0 else np.full(len(flat), np.nan)


def model_kernels(model, names) -> dict[str, np.ndarray]:
    """{layer: its live kernel array (kh, kw, c_in, c_out)} for the layers ``names`` of ``model``."""
    return {name: model.layer(name).params["w"] for name in names}
