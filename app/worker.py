"""Training off the GUI thread: the engine's Trainer runs in a QObject moved to a QThread.

The trainer's ``run()`` occupies the worker thread for the whole run, so the worker's event loop is
blocked and queued slots would never reach it: pause, step and stop go straight to the trainer's
thread-safe flags (checked before every step). Results travel only as ``Signal(object)`` payloads that
are fresh arrays or copies (the engine updates weights in place), and they are throttled on the worker
thread so the GUI thread never drowns: loss points are batched and sent at most ``STEP_HZ`` times per
second, weight snapshots at most ``WEIGHTS_HZ`` times per second. Every signal is delivered with a
queued connection and emitted under one lock, so payloads arrive in the order they were produced even
when the GUI thread flushes the last points itself (on pause).

Recorders (``engine.health.HealthMonitor``, ``engine.timeline.KernelTimeline``: anything with
``observe(event, model)``) see every trainer event first, on the training thread, while the model
still holds that step's batch; the views read them from the GUI thread (they lock and copy).
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Callable, Protocol

import numpy as np
from PySide6 import QtCore

from engine.trainer import Trainer

STEP_HZ = 30.0
WEIGHTS_HZ = 10.0


class Recorder(Protocol):
    """Fed with every trainer event on the training thread (see the module doc)."""

    def observe(self, event: dict, model) -> bool: ...


class TrainingWorker(QtCore.QObject):
    """Runs one :class:`engine.trainer.Trainer` on its own QThread and reports through signals.

    Signals (all payloads owned by the receiver):
    - ``steps``: ``{"step": (n,) int64, "loss": (n,), "accuracy": (n,), "epoch_fraction": (n,),
      "epoch": int, "images_per_second": float, "lrs": dict}`` -- the mini-batches since the last one.
    - ``validation``: ``(done, total)`` images of the epoch-end validation so far (at most ``STEP_HZ``
      times per second); the ``epoch`` signal follows when it ends.
    - ``epoch``: the trainer's epoch event (a dict copy).
    - ``weights``: ``{"conv1.w": array, ...}`` copies taken under the trainer's weights lock.
    - ``diverged``: the trainer's error event; the run has ended with the pre-step weights kept, and
      :meth:`continue_run` (after lowering the learning rates) carries on.
    - ``failed``: the formatted traceback of an unexpected exception in the trainer; ``done("failed")``
      follows.
    - ``done``: the reason the run ended ("finished", "stopped", "diverged" or "failed").

    Connect receivers with ``QtCore.Qt.ConnectionType.QueuedConnection``: :meth:`pause` flushes from
    the GUI thread, and only queued delivery keeps its payloads behind the ones already in flight.

    ``recorders``: objects whose ``observe(event, trainer.model)`` is called for every trainer event,
    on the training thread, before anything else (e.g. the gradient-health monitor, the kernel timeline).
    """

    steps = QtCore.Signal(object)
    validation = QtCore.Signal(object)
    epoch = QtCore.Signal(object)
    weights = QtCore.Signal(object)
    diverged = QtCore.Signal(object)
    failed = QtCore.Signal(object)
    done = QtCore.Signal(str)
    _run_requested = QtCore.Signal()

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.trainer = trainer
        self.recorders: tuple[Recorder, ...] = ()  # set by the owner before start
        trainer.on_event = self._on_event
        self._lock = threading.Lock()
        self._pending: list[tuple[int, float, float, float]] = []  # (step, loss, accuracy, epoch_fraction)
        self._last_step_event: dict | None = None
        self._last_flush = 0.0
        self._last_weights = 0.0
        self._last_validation = 0.0
        self._paused = False  # every step while paused is a single step: report it at once
        self._requested = 0  # single steps asked for while paused and not taken yet
        self._epoch_open = False  # a step ended an epoch; its validation (the epoch event) is still running
        self._closing = False
        self.steps_done = 0  # optimiser steps so far (written by the worker thread, read anywhere)
        self._thread = QtCore.QThread()
        self._thread.setObjectName("training")
        self.moveToThread(self._thread)
        self._run_requested.connect(self._run, QtCore.Qt.ConnectionType.QueuedConnection)

    # ------------------------------------------------------------------ GUI-thread controls

    def start(self, paused: bool = False) -> None:
        """Start the thread and the run; ``paused`` starts it paused (for single-stepping from step 0)."""
        if paused:
            self.pause()
        self._thread.start()
        self._run_requested.emit()

    def continue_run(self) -> None:
        """Run again after a divergence (the trainer continues where it stopped)."""
        self._run_requested.emit()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
        self.trainer.pause()
        # The step in flight when pause was pressed reports itself (it sees _paused); an already
        # buffered one would wait for a step that never comes, so send it now, with the weights.
        self._flush()
        self._emit_weights()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._requested = 0  # the trainer forgets pending single steps on resume too
        self.trainer.resume()

    def request_step(self) -> None:
        """One step while paused."""
        with self._lock:
            if self._paused:  # the trainer ignores requests unless paused
                self._requested += 1
        self.trainer.request_step()

    def between_steps(self) -> bool:
        """True when the training thread is not inside a step (nor the validation ending an epoch) and
        none is coming without a new request: the trainer's state may then be read consistently, e.g.
        to save a session. Pause first: a running trainer is never between steps."""
        with self._lock:
            idle = self._requested == 0 and not self._epoch_open
        return idle and self.trainer.state != "running"

    def wait_between_steps(self, timeout_ms: int = 10000) -> bool:
        """Wait (blocking, at most ``timeout_ms``) until :meth:`between_steps`; False on timeout. One
        step of VGG-7 takes well under a second, so after :meth:`pause` this is short."""
        deadline = time.perf_counter() + timeout_ms / 1000.0
        while not self.between_steps():
            if time.perf_counter() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        """End the run after the current step; ``done`` follows."""
        self.trainer.stop()

    def is_running(self) -> bool:
        """True while the worker thread exists (a run is going, paused or waiting to continue)."""
        return self._thread.isRunning()

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop the run, end the thread and join it. True when it ended within ``timeout_ms``; later
        than that (one step outlasting the timeout on a swamped machine) it is still joined, because a
        QThread destroyed while running aborts the whole process."""
        self._closing = True
        self.trainer.stop()
        self._thread.quit()
        return _join(self._thread, timeout_ms)

    # ------------------------------------------------------------------ worker thread

    @QtCore.Slot()
    def _run(self) -> None:
        if self._closing:  # a continue request that raced with shutdown
            return
        try:
            self.trainer.run()
        except Exception:  # a bug or e.g. MemoryError: tell the GUI instead of dying silently
            self._flush()
            with self._lock:
                self.failed.emit(traceback.format_exc())
                self.done.emit("failed")

    def _on_event(self, event: dict) -> None:
        """The trainer's callback, on the worker thread: feed the recorders, buffer, throttle, emit."""
        for recorder in self.recorders:  # first: the model still caches this step's batch
            recorder.observe(event, self.trainer.model)
        kind = event["type"]
        now = time.perf_counter()
        if kind == "step":
            with self._lock:
                self._requested = max(self._requested - 1, 0)
                self._epoch_open = event["step"] % self.trainer.steps_per_epoch == 0
                self._pending.append((event["step"], event["loss"], event["accuracy"],
                                      event["epoch_fraction"]))
                self._last_step_event = event
                self.steps_done = event["step"]
            if self._paused or now - self._last_flush >= 1.0 / STEP_HZ:
                self._flush()
            if self._paused or now - self._last_weights >= 1.0 / WEIGHTS_HZ:
                self._emit_weights()
        elif kind == "validation":
            self._flush()  # the epoch's last steps are plotted while the validation runs (seconds on full MNIST)
            if now - self._last_validation >= 1.0 / STEP_HZ:
                self._last_validation = now
                with self._lock:
                    self.validation.emit((event["done"], event["total"]))
        elif kind == "epoch":
            self._flush()  # the epoch's points are plotted before its summary
            with self._lock:
                self._epoch_open = False
                self.epoch.emit(dict(event))
        elif kind == "error":
            self._flush()
            with self._lock:
                self._requested = max(self._requested - 1, 0)
                self.diverged.emit(dict(event))
        elif kind == "done":
            self._flush()
            self._emit_weights()
            with self._lock:
                self._requested = 0
                self.done.emit(event["reason"])

    def _flush(self) -> None:
        """Emit the buffered loss points as one batch (any thread)."""
        with self._lock:
            if not self._pending:
                return
            columns = np.array(self._pending, dtype=np.float64).T  # (4, n)
            last = self._last_step_event
            self._pending = []
            self._last_flush = time.perf_counter()
            self.steps.emit({
                "step": columns[0].astype(np.int64),
                "loss": columns[1],
                "accuracy": columns[2],
                "epoch_fraction": columns[3],
                "epoch": last["epoch"],
                "images_per_second": last["images_per_second"],
                "lrs": dict(last["lrs"]),
            })

    def _emit_weights(self) -> None:
        snapshot = self.trainer.snapshot()  # copies, taken under the trainer's weights lock
        with self._lock:
            self._last_weights = time.perf_counter()
            self.weights.emit(snapshot)


class BackgroundTask(QtCore.QThread):
    """Runs ``function(cancel, progress)`` once on its own thread (loading or downloading data).

    ``cancel`` is a ``threading.Event`` the function checks; ``progress(*args)`` re-emits its arguments
    as a tuple through ``progressed``. The result arrives through ``succeeded``, an exception through
    ``failed``; both are delivered on the GUI thread.
    """

    progressed = QtCore.Signal(object)
    succeeded = QtCore.Signal(object)
    failed = QtCore.Signal(object)

    def __init__(self, function: Callable, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._function = function
        self.cancel = threading.Event()
        self.setObjectName("background task")

    def run(self) -> None:  # noqa: D102 (QThread's entry point, on the new thread)
        try:
            result = self._function(self.cancel, self._progress)
        except Exception as error:  # reported to the GUI, which shows it
            self.failed.emit(error)
        else:
            self.succeeded.emit(result)

    def _progress(self, *args) -> None:
        self.progressed.emit(args)

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Ask the function to cancel and join the thread; True when it ended within ``timeout_ms``
        (it is joined in any case, see :meth:`TrainingWorker.shutdown`)."""
        self.cancel.set()
        return _join(self, timeout_ms)


def _join(thread: QtCore.QThread, timeout_ms: int) -> bool:
    """Wait for ``thread``; True when it finished within ``timeout_ms``, else wait on until it does."""
    if thread.wait(timeout_ms):
        return True
    print(f"ConvScope: thread {thread.objectName() or thread!r} took more than {timeout_ms} ms to stop; "
          "waiting for it", file=sys.stderr)
    thread.wait()
    return False
