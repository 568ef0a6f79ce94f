"""Responsiveness benchmark: does the GUI thread stay free while VGG-7 trains?

``python -m app.bench_responsiveness [--seconds S] [--view TITLE]`` (``--tab`` = ``--view``) opens the
real MainWindow, presses its Start button to train VGG-7 on the bundled MNIST subset, and for S seconds
records the gaps between ticks of a 10 ms timer on the GUI thread (any slot, repaint or GIL wait that
holds the GUI thread up shows as a long gap) together with the training throughput. It also measures
the throughput of the same training without any GUI. The last line printed is JSON:
``{"max_gap_ms":…, "p99_gap_ms":…, "train_ips_gui":…, "train_ips_headless":…}``.
Targets: max gap <= 50 ms, p99 <= 25 ms, train_ips_gui >= 0.85 x train_ips_headless.

``--first-show N`` measures instead how long the GUI thread is held when the view is shown for the first
time while VGG-7 trains (``show_view`` and the events it posts, e.g. building the view's plots), median
and each of N fresh windows; JSON last line ``{"first_show_ms":…, "runs_ms":[…]}``. The page switched from
was idle since the window opened (its start-up work, such as panels built ahead, is done).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np
from PySide6 import QtCore, QtWidgets

WARMUP_SECONDS = 1.0  # the first steps allocate buffers and warm caches; keep them out of the figures


class GapProbe(QtCore.QObject):
    """The gaps between ticks of a precise ``interval_ms`` timer on the thread it lives in, per period
    (e.g. a minute of a soak): max and p99 of each, kept without growing lists."""

    def __init__(self, interval_ms: int = 10) -> None:
        super().__init__()
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self._last: float | None = None
        self._gaps = np.zeros(8192)  # this period's gaps (ms), preallocated; a minute is ~6,000 ticks
        self._n = 0
        self.max_gap_ms = 0.0
        self.p99_per_period: list[float] = []
        self.max_per_period: list[float] = []

    def start(self) -> None:
        self._last = None
        self.timer.start()

    @QtCore.Slot()
    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            if self._n == self._gaps.size:
                self._gaps = np.concatenate([self._gaps, np.zeros_like(self._gaps)])
            self._gaps[self._n] = (now - self._last) * 1000.0
            self._n += 1
        self._last = now

    def gaps(self) -> np.ndarray:
        """(n,) the current period's gaps in milliseconds (a copy)."""
        return self._gaps[: self._n].copy()

    def end_period(self) -> None:
        """Close the current period: keep its max and p99, start a new one."""
        if self._n:
            summary = summarize_gaps(self._gaps[: self._n])
            self.max_per_period.append(summary["max_gap_ms"])
            self.p99_per_period.append(summary["p99_gap_ms"])
            self.max_gap_ms = max(self.max_gap_ms, float(self._gaps[: self._n].max()))
            self._n = 0


def measure_timer_gaps(seconds: float, interval_ms: int = 10) -> np.ndarray:
    """Spin the Qt event loop for ``seconds`` and return the gaps between ticks of an ``interval_ms`` timer.

    Returns (n,) float64 milliseconds. On an idle GUI thread every gap is close to ``interval_ms``;
    whatever blocks the thread (a slow slot, a repaint, waiting for the GIL) lengthens one gap.
    """
    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    probe = GapProbe(interval_ms)
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    probe.start()
    loop.exec()
    probe.timer.stop()
    return probe.gaps()


def summarize_gaps(gaps_ms: np.ndarray) -> dict[str, float]:
    """Max and 99th percentile of the tick gaps ``gaps_ms: (n,)`` (ms), rounded to 0.1 ms."""
    return {
        "max_gap_ms": round(float(np.max(gaps_ms)), 1),
        "p99_gap_ms": round(float(np.percentile(gaps_ms, 99)), 1),
    }


def _training_config(epochs: int):
    """The run both measurements train: the panel's defaults with enough epochs not to finish."""
    from engine.trainer import TrainConfig

    return TrainConfig(epochs=epochs)


def headless_ips(seconds: float, epochs: int) -> float:
    """Images/s of the same VGG-7 training on a plain thread with no GUI at all."""
    from engine.data import load_bundled_mnist
    from engine.presets import build
    from engine.trainer import Trainer

    train, val = load_bundled_mnist()
    config = _training_config(epochs)
    trainer = Trainer(build(config.preset, seed=config.seed), train, val, config)
    thread = threading.Thread(target=trainer.run, name="headless-training")
    thread.start()
    time.sleep(WARMUP_SECONDS)
    steps0, t0 = trainer.step_index, time.perf_counter()
    time.sleep(seconds)
    steps1, t1 = trainer.step_index, time.perf_counter()
    trainer.stop()
    thread.join()
    return (steps1 - steps0) * config.batch_size / (t1 - t0)


def gui_run(seconds: float, epochs: int, view: str) -> dict[str, float]:
    """Open the real window, press Start, and measure tick gaps and throughput while it trains."""
    from app.soak import measurement_window

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as folder:
        window = measurement_window(folder)
        window.show_view(view)
        window.panel.load_config_dict(dataclasses.asdict(_training_config(epochs)))
        app.processEvents()
        window.panel.start_button.click()
        measure_timer_gaps(WARMUP_SECONDS)
        steps0, t0 = window.worker.steps_done, time.perf_counter()
        cpu0, wait0 = time.thread_time(), _runqueue_wait_s()
        gaps = measure_timer_gaps(seconds)
        steps1, t1 = window.worker.steps_done, time.perf_counter()
        cpu1, wait1 = time.thread_time(), _runqueue_wait_s()
        batch = window.worker.trainer.config.batch_size
        closing = time.perf_counter()
        window.close()
        close_ms = (time.perf_counter() - closing) * 1000.0
        if window.worker is not None or window.isVisible():
            raise RuntimeError("the window did not shut down")
    return {**summarize_gaps(gaps), "train_ips_gui": (steps1 - steps0) * batch / (t1 - t0),
            "ticks": len(gaps), "close_ms": close_ms, "gui_cpu": (cpu1 - cpu0) / (t1 - t0),
            "gui_runqueue": None if wait0 is None else (wait1 - wait0) / (t1 - t0)}


def first_show_ms(view: str, epochs: int) -> float:
    """Milliseconds the GUI thread spends showing ``view`` for the first time in a fresh window while it
    trains: ``show_view`` plus the events it posts (layout, the view's refresh and paint)."""
    from app.soak import measurement_window

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as folder:
        window = measurement_window(folder)
        window.panel.load_config_dict(dataclasses.asdict(_training_config(epochs)))
        app.processEvents()
        window.panel.start_button.click()
        measure_timer_gaps(WARMUP_SECONDS)
        start = time.perf_counter()
        window.show_view(view)
        app.processEvents()
        elapsed = (time.perf_counter() - start) * 1000.0
        window.close()
    return elapsed


def _runqueue_wait_s() -> float | None:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat), else None.
    A large share means the machine was overloaded during the measurement, not that the app stalled."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench_responsiveness",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per run (default 10)")
    parser.add_argument("--view", "--tab", default="Loss",
                        help="title of the view shown while training, e.g. 'Feature maps' (default Loss)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of the run (enough not to finish)")
    parser.add_argument("--first-show", type=int, default=0, metavar="N",
                        help="instead: time the view's first show while training, in N fresh windows")
    args = parser.parse_args(argv)
    QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    if args.first_show:
        runs = [round(first_show_ms(args.view, args.epochs), 1) for _ in range(args.first_show)]
        print(f"first show of {args.view} while training: median {np.median(runs):.0f} ms of {runs} ms "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        print(json.dumps({"first_show_ms": round(float(np.median(runs)), 1), "runs_ms": runs}))
        return 0
    from app.runtime import prepare_for_gui

    runtime = prepare_for_gui()  # what MainWindow applies: headless trains with the same BLAS threads

    # Headless before and after the GUI run: other load on the machine drifts, the mean evens it out.
    before = headless_ips(args.seconds, args.epochs)
    gui = gui_run(args.seconds, args.epochs, args.view)
    after = headless_ips(args.seconds, args.epochs)
    headless = (before + after) / 2
    print(f"GUI thread: {gui['ticks']} ticks of a 10 ms timer, max gap {gui['max_gap_ms']} ms, "
          f"p99 {gui['p99_gap_ms']} ms (view: {args.view}); busy {gui['gui_cpu']:.0%} of the time"
          + ("" if gui["gui_runqueue"] is None else f", waiting for a CPU {gui['gui_runqueue']:.0%}")
          + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"BLAS threads {runtime['blas_threads']} of {os.cpu_count()} CPUs, GIL switch interval "
          f"{runtime['switch_interval_s'] * 1000:g} ms (app.runtime)")
    print(f"closing the window mid-run (stop + join the training thread) took {gui['close_ms']:.0f} ms")
    print(f"training: {gui['train_ips_gui']:.0f} images/s with the GUI, {before:.0f} / {after:.0f} images/s "
          f"headless before / after (ratio {gui['train_ips_gui'] / headless:.2f})")
    print(json.dumps({"max_gap_ms": gui["max_gap_ms"], "p99_gap_ms": gui["p99_gap_ms"],
                      "train_ips_gui": round(gui["train_ips_gui"], 1),
                      "train_ips_headless": round(headless, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
