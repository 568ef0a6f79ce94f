"""Responsiveness benchmark: does the GUI thread stay free while VGG-7 trains?

``python -m app.bench_responsiveness [--seconds S] [--view TITLE]`` opens the real MainWindow, presses
its Start button to train VGG-7 on the bundled MNIST subset, and for S seconds records the gaps between
ticks of a 10 ms timer on the GUI thread (any slot, repaint or GIL wait that holds the GUI thread up
shows as a long gap) together with the training throughput. It also measures the throughput of the
same training without any GUI. The last line printed is JSON:
``{"max_gap_ms":…, "p99_gap_ms":…, "train_ips_gui":…, "train_ips_headless":…}``.
Targets: max gap <= 50 ms, p99 <= 25 ms, train_ips_gui >= 0.85 x train_ips_headless.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numpy as np
from PySide6 import QtCore, QtWidgets

WARMUP_SECONDS = 1.0  # the first steps allocate buffers and warm caches; keep them out of the figures


class _TickRecorder(QtCore.QObject):
    """Records the perf_counter time of every tick of a precise timer on the thread it lives in."""

    def __init__(self, interval_ms: int) -> None:
        super().__init__()
        self.ticks: list[float] = []
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)

    @QtCore.Slot()
    def tick(self) -> None:
        self.ticks.append(time.perf_counter())


def measure_timer_gaps(seconds: float, interval_ms: int = 10) -> np.ndarray:
    """Spin the Qt event loop for ``seconds`` and return the gaps between ticks of an ``interval_ms`` timer.

    Returns (n,) float64 milliseconds. On an idle GUI thread every gap is close to ``interval_ms``;
    whatever blocks the thread (a slow slot, a repaint, waiting for the GIL) lengthens one gap.
    """
    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    recorder = _TickRecorder(interval_ms)
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    recorder.timer.start()
    loop.exec()
    recorder.timer.stop()
    return np.diff(np.asarray(recorder.ticks)) * 1000.0


def summarize_gaps(gaps_ms: np.ndarray) -> dict[str, float]:
    """Max and 99th percentile of the tick gaps (ms), rounded to 0.1 ms."""
    return {
        "max_gap_ms": round(float(np.max(gaps_ms)), 1),
        "p99_gap_ms": round(float(np.percentile(gaps_ms, 99)), 1),
    }
