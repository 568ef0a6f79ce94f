"""How long from a stroke update on the drawing pad to the prediction shown, with and without training.

``python -m app.bench_pad_latency [--digits 6] [--weights resources/weights/vgg7.npz] [--saliency]
[--blas-threads N]``

Validation digits traced into strokes (``engine.strokes.trace_strokes``) are drawn on the real pad
with QTest mouse events paced like a mouse (a point every 4 pad pixels, :data:`MOUSE_HZ` events per
second, from a QTimer so the event loop runs between events as it does for a user). An event's
latency is the time from sending it (press, move or release) to the end of the first classification
after it (the pad's ``prediction_shown``: label, bars and preview have been updated). The pad
classifies at most once per ``CLASSIFY_INTERVAL_MS``, so under continuous drawing most events wait
for the next slot.

The second run trains a vgg7 in a Python thread (``engine.trainer.Trainer``) meanwhile and, like the
main window, copies its weight snapshot into the display model and calls ``model_changed`` ten times
a second. Prints both runs and, as the last line, JSON with p50/p95 in ms, the median time one
classification takes (``classify_p50_ms``), NumPy's BLAS thread count and the machine's load
average (other processes competing for the CPUs inflate every figure). The process runs with the
main window's settings (``app.runtime.prepare_for_gui``): with a BLAS thread per core, OpenBLAS's
spinning threads held the GUI thread off for up to 320 ms while training.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

MOUSE_HZ = 125
"""Mouse events per second while drawing (a common USB mouse report rate)."""
POINT_SPACING = 4.0
"""Pad pixels between consecutive mouse positions (a moderate drawing speed at MOUSE_HZ)."""
MODEL_HZ = 10
"""Display-model refreshes per second while training (as the main window does)."""
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "resources" / "weights" / "vgg7.npz"


def densify(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """``stroke: (M, 2)`` -> ``(M', 2)`` with points at most ``spacing`` apart along each segment."""
    if len(stroke) < 2:
        return stroke
    out = [stroke[:1]]
    for a, b in zip(stroke[:-1], stroke[1:]):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) / spacing)))
        out.append(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
    return np.concatenate(out)


class Driver:
    """Sends one mouse event per timer tick; records each event's send time and each
    classification's end time."""

    def __init__(self, pad, digits: list[list[np.ndarray]]) -> None:
        from PySide6 import QtCore

        self.pad = pad
        self.events = self._schedule(digits)
        self.sent: list[float] = []
        self.shown: list[float] = []
        self.classify_ms: list[float] = []  # compute time of each classification
        self._i = 0
        self._loop = QtCore.QEventLoop()
        self._timer = QtCore.QTimer(interval=round(1000 / MOUSE_HZ))
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        pad.prediction_shown.connect(self._shown)

    @staticmethod
    def _schedule(digits):
        """[(kind, QPoint or None)] with kind "clear", "press", "move" or "release"."""
        from app.views.drawing_pad import stroke_events

        events = []
        for strokes in digits:
            events.append(("clear", None))
            events += stroke_events([densify(stroke, POINT_SPACING) for stroke in strokes])
        return events

    def _shown(self, p) -> None:
        self.shown.append(time.perf_counter())
        self.classify_ms.append(self.pad.classify_ms)

    def _tick(self) -> None:
        from app.views.drawing_pad import send_mouse_event

        if self._i == len(self.events):
            self._timer.stop()
            self._loop.quit()
            return
        kind, point = self.events[self._i]
        self._i += 1
        if kind == "clear":
            self.pad.canvas.clear()
            return
        self.sent.append(time.perf_counter())  # a stroke update
        send_mouse_event(self.pad.canvas, kind, point)

    def run(self) -> dict:
        """Draw everything; returns the summary of the stroke updates' latencies."""
        start = time.perf_counter()
        self._timer.start()
        self._loop.exec()
        seconds = time.perf_counter() - start
        self.pad.prediction_shown.disconnect(self._shown)
        # Everything runs on the GUI thread, so the first classification to end after an update
        # also started after it: it is the one that showed the update.
        shown, sent = np.array(self.shown), np.array(self.sent)
        after = np.searchsorted(shown, sent)
        answered = after < len(shown)
        latencies = 1000.0 * (shown[after[answered]] - sent[answered])
        return {"p50_ms": round(float(np.percentile(latencies, 50)), 2),
                "p95_ms": round(float(np.percentile(latencies, 95)), 2),
                "max_ms": round(float(latencies.max()), 2), "updates": int(len(latencies)),
                "classifications": len(shown),
                "classify_p50_ms": round(float(np.median(self.classify_ms)), 2),
                "seconds": round(seconds, 1), "load_average": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench_pad_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, default=6, help="validation digits drawn per run")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--saliency", action="store_true", help="with the saliency overlay on")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="set NumPy's BLAS thread count (default: the app's, see app.runtime)")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    from app.runtime import prepare_for_gui
    from app.views.drawing_pad import CLASSIFY_INTERVAL_MS, PAD_SIDE, DrawingPad, place_strokes
    from engine.parallel import blas_threads, set_blas_threads
    from engine.data import load_bundled_mnist
    from engine.model import Sequential
    from engine.presets import build
    from engine.strokes import trace_strokes
    from engine.trainer import TrainConfig, Trainer

    prepare_for_gui()  # what MainWindow applies (BLAS threads, GIL switching, malloc arena)
    if args.blas_threads is not None and not set_blas_threads(args.blas_threads):
        parser.error("cannot reach OpenBLAS to set its thread count")
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    train, val = load_bundled_mnist()
    display = Sequential.load(args.weights) if os.path.exists(args.weights) else build("vgg7", seed=0)
    rng = np.random.default_rng(0)
    digits = [place_strokes(trace_strokes(x), PAD_SIDE, rng.uniform(0.3, 1.0), rng)
              for x in val.x[:args.digits]]

    pad = DrawingPad()
    pad.saliency_box.setChecked(args.saliency)
    pad.model_changed(display)
    pad.show()
    app.processEvents()

    idle = Driver(pad, digits).run()

    # Training in a thread on its own model; the display model gets snapshots at MODEL_HZ.
    trainer = Trainer(build("vgg7", seed=1), train, val, TrainConfig(epochs=1000, batch_size=64))
    thread = threading.Thread(target=trainer.run, name="bench-trainer")
    refresh = QtCore.QTimer(interval=1000 // MODEL_HZ)

    def push_snapshot() -> None:
        display.set_weights(trainer.snapshot())
        pad.model_changed(display)

    refresh.timeout.connect(push_snapshot)
    thread.start()
    refresh.start()
    try:
        busy = Driver(pad, digits).run()
    finally:
        refresh.stop()
        trainer.stop()
        thread.join()
    steps = trainer.step_index

    result = {"without_training": idle, "with_training": busy,
              "training_steps_meanwhile": steps, "throttle_ms": CLASSIFY_INTERVAL_MS,
              "mouse_hz": MOUSE_HZ, "saliency": args.saliency, "digits": len(digits),
              "blas_threads": blas_threads(),
              "weights": args.weights if os.path.exists(args.weights) else "fresh vgg7"}
    for name in ("without_training", "with_training"):
        r = result[name]
        print(f"{name:17s}: p50 {r['p50_ms']:6.1f} ms  p95 {r['p95_ms']:6.1f} ms  max {r['max_ms']:7.1f} ms "
              f"({r['updates']} stroke updates, {r['classifications']} classifications of "
              f"{r['classify_p50_ms']:.1f} ms median, {r['seconds']:.0f} s, "
              f"load average {r['load_average']})")
    print(f"training steps run meanwhile: {steps}")
    print(json.dumps(result))
    pad.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
