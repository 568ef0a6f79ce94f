"""Soak test: a long training session with every view open and the drawing pad in constant use.

``python -m app.soak --minutes M`` opens the real MainWindow, presses Start to train VGG-7 on the bundled
MNIST subset, and for M minutes:

- shows the window's tab views in turn (``window.show_view``, whatever group each sits in), one every
  ``--tab-seconds`` (default 3 s), so each receives model updates while shown, while the docks (the
  drawing pad among them: it is moved into a dock when it is a tab, so it stays visible) receive them
  all the time;
- every ``--pad-ms`` (default 500 ms; later when the previous digit is still being drawn) clears the
  drawing pad and draws a digit on it with real mouse events, one every 10 ms: the strokes are traced
  from a bundled validation digit with :func:`engine.strokes.trace_strokes`; the pad classifies the
  drawing as it grows, with the weights being trained;
- records the gaps between ticks of a 10 ms timer on the GUI thread (anything that holds the GUI
  thread up lengthens a gap) and the resident set size (``/proc/self/statm``) every 5 s, and prints a
  progress line per minute (RSS low..high, steps, max gap, load average).

The last line printed is JSON: ``{"minutes":…, "steps":…, "rss_start_mb":…, "rss_end_mb":…,
"max_gap_ms":…}`` followed by details: ``rss_before_warmup_mb`` (measuring starts after a warm-up in
which training has started and every tab view has been shown once for a second, so that "every view
open" holds and the one-off cost of building views and first buffers is not counted as growth),
``p99_gap_ms`` (worst minute), ``rss_min_mb_per_min`` /
``rss_max_mb_per_min`` (lowest / highest reading of each minute), ``rss_trend_mb_per_min`` /
``rss_peak_trend_mb_per_min`` (least-squares slopes of those after the first minute; None with fewer
than four minutes), ``max_gap_ms_per_min``, ``p99_gap_ms_per_min``, ``pad_classifications`` (answers
shown, also mid-stroke), ``pad_digits`` / ``pad_accuracy`` (finished drawings and how many got the
right final answer), ``load_avg`` (1-minute load average at the end; gaps are inflated when other
work shares the cores) and ``blas_threads`` (OpenBLAS's thread count during the run: the window
applies its own choice, ``app.runtime``, when it starts; ``--blas-threads N`` sets one before).
Targets for 30 minutes: RSS growth < 50 MB, no growth trend after the first minute, max gap <= 50 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.bench_responsiveness import GapProbe

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
PAD_DIGITS = 40  # distinct digits traced once at start and drawn in turn
WARMUP_VIEW_S = 1.0  # each tab view shown this long during the warm-up, before anything is measured
PAD_POINT_STEP = 6  # every 6th traced point (1.5 MNIST px, 18 pad px apart): a quick hand's mouse samples


def rss_mb() -> float:
    """Resident set size of this process in MiB (second field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


def load_average() -> float:
    return os.getloadavg()[0]


def trend_mb_per_min(per_minute: list[float]) -> float | None:
    """Least-squares slope (MiB per minute, 2 decimals) of per-minute RSS figures after the first minute.

    per_minute[i] is minute i + 1's figure; the first minute (views built on their first visit, caches,
    first buffers) is left out. None when fewer than three minutes remain.
    """
    tail = np.asarray(per_minute[1:], dtype=np.float64)
    if tail.size < 3:
        return None
    return round(float(np.polyfit(np.arange(tail.size, dtype=np.float64), tail, 1)[0]), 2)


class RssSampler(QtCore.QObject):
    """RSS every ``interval_ms``; per period (one minute) the lowest and highest reading.

    A single reading per minute can land on a transient peak (a view rebuilding its panels, a
    validation pass); the per-minute minimum is the baseline a leak would raise.
    """

    def __init__(self, interval_ms: int = 5000) -> None:
        super().__init__()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.sample)
        self._period: list[float] = []
        self.low: list[float] = []
        self.high: list[float] = []

    @QtCore.Slot()
    def sample(self) -> None:
        self._period.append(rss_mb())

    def end_period(self) -> None:
        self.sample()
        self.low.append(round(min(self._period), 1))
        self.high.append(round(max(self._period), 1))
        self._period = []


def traced_digits(count: int) -> list[tuple[list[np.ndarray], int]]:
    """``count`` bundled validation digits as pen strokes ((M, 2) x, y in MNIST pixels) with their labels."""
    from engine.data import load_bundled_mnist
    from engine.strokes import trace_strokes

    _, val = load_bundled_mnist()
    rng = np.random.default_rng(0)
    digits = []
    for index in rng.permutation(len(val))[: count * 2]:
        strokes = [s[::PAD_POINT_STEP] if len(s) > 2 * PAD_POINT_STEP else s
                   for s in trace_strokes(val.x[index, :, :, 0])]
        if strokes:
            digits.append((strokes, int(val.y[index])))
        if len(digits) == count:
            break
    return digits


class PadDriver(QtCore.QObject):
    """Draws traced digits on the pad with real mouse events, spread over time like a hand's.

    Every ``interval_ms`` a new digit starts (the pad is cleared); its strokes become a queue of
    press / move / release events sent one per ``EVENT_MS`` tick, so the pad sees a drawing arrive
    point by point (and classifies it, throttled, as it grows) instead of in one burst. Counts the
    answers the pad shows and, for every finished digit, whether its final answer is right.
    """

    EVENT_MS = 10  # a mouse reports ~100 positions per second while it moves

    def __init__(self, pad, interval_ms: int) -> None:
        super().__init__()
        from app.views import drawing_pad

        self._pad_module = drawing_pad  # imported here: the soak's other parts need no pad
        self.pad = pad
        self.digits = traced_digits(PAD_DIGITS)
        self.rng = np.random.default_rng(1)
        self.interval_s = interval_ms / 1000.0
        self.drawn = 0
        self.classified = 0  # every answer the pad showed for a drawing (also mid-stroke ones)
        self.judged = 0  # finished drawings whose final answer was read back
        self.correct = 0
        self._label: int | None = None  # label of the digit on the pad, None while it is being cleared
        self._events: list[tuple[str, QtCore.QPoint]] = []
        self._started = -float("inf")
        pad.prediction_shown.connect(self._shown)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(self.EVENT_MS)
        self.timer.timeout.connect(self._tick)

    @QtCore.Slot()
    def _tick(self) -> None:
        if self._events:
            self._pad_module.send_mouse_event(self.pad.canvas, *self._events.pop(0))
        elif time.perf_counter() - self._started >= self.interval_s:
            self._new_digit()

    def _new_digit(self) -> None:
        if self._label is not None:  # the previous digit's final answer (with the newest weights)
            self.judged += 1
            self.correct += int(self.pad.bars.highlighted() == self._label)
        strokes, label = self.digits[self.drawn % len(self.digits)]
        self.drawn += 1
        self._started = time.perf_counter()
        self._label = None
        self.pad.canvas.clear()
        self._label = label
        pad = self._pad_module
        self._events += pad.stroke_events(pad.place_strokes(strokes, pad.PAD_SIDE, 0.7, self.rng))

    @QtCore.Slot(object)
    def _shown(self, p) -> None:
        if p is not None and self._label is not None:
            self.classified += 1


def pause(seconds: float) -> None:
    """Let the event loop run for ``seconds`` (timers, queued signals, repaints)."""
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def pad_in_dock(window) -> QtWidgets.QWidget:
    """The drawing pad, made permanently visible: moved into a right-hand dock when it is a tab."""
    title = "Drawing pad"
    pad = window.views[title]
    if title not in window.view_docks:
        dock = QtWidgets.QDockWidget(title, window, objectName="soak pad dock")
        dock.setWidget(pad)  # re-parents the pad out of its tab's scroll area
        window.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
        dock.show()
    return pad


def measurement_window(folder: str, size: tuple[int, int] = (1500, 950)):
    """A shown MainWindow of ``size`` with its own settings file in ``folder``, never the user's, that
    closes without asking about unsaved work: the measurements train, and nobody is there to answer."""
    from app.main_window import MainWindow
    from app.settings import Settings

    os.makedirs(folder, exist_ok=True)
    settings = Settings(os.path.join(folder, "settings.ini"))
    settings.set_ask_before_discarding(False)
    window = MainWindow(settings)
    window.resize(*size)
    window.show()
    return window


def run(minutes: float, tab_seconds: float, pad_ms: int, epochs: int, log=print) -> dict:
    """Run the soak in this process (a QApplication must exist) and return the result dict."""
    app = QtWidgets.QApplication.instance()
    with tempfile.TemporaryDirectory() as folder:
        window = measurement_window(folder)
        pad = pad_in_dock(window)
        driver = PadDriver(pad, pad_ms)
        window.panel.continue_check.setChecked(False)
        window.panel.preset.setCurrentIndex(window.panel.preset.findData("vgg7"))
        window.panel.epochs.setValue(epochs)
        app.processEvents()

        # every view that is a tab (at any level of the window's tab groups), shown in turn
        tab_views = [title for title in window.views
                     if title not in window.view_docks and title != "Drawing pad"]
        shown = [0]

        def next_tab() -> None:
            shown[0] += 1
            window.show_view(tab_views[shown[0] % len(tab_views)])

        tab_timer = QtCore.QTimer(interval=int(tab_seconds * 1000))
        tab_timer.timeout.connect(next_tab)
        runs = [0]  # steps of each run (a run that ends is started again, continuing its weights)

        def steps_done() -> int:
            if window.worker is not None:
                runs[-1] = window.worker.steps_done
            return sum(runs)

        # Warm-up, not measured: "all views open" means each has been shown once (its panels built,
        # its first buffers allocated) with training running, as a learner's session starts.
        rss_before = rss_mb()
        window.panel.start_button.click()
        for title in tab_views:
            window.show_view(title)
            pause(WARMUP_VIEW_S)
        window.show_view(tab_views[0])
        pause(WARMUP_VIEW_S)
        probe = GapProbe()
        memory = RssSampler()
        rss_start = rss_mb()
        log(f"start after warm-up: rss {rss_before:.1f} -> {rss_start:.1f} MiB, load {load_average():.2f}, "
            f"tabs shown in turn {tab_views}, docks {sorted(window.view_docks) + ['Drawing pad']}")
        probe.start()
        for timer in (memory.timer, tab_timer, driver.timer):
            timer.start()
        started = time.perf_counter()
        end = started + minutes * 60.0
        loop = QtCore.QEventLoop()
        while True:
            next_minute = started + 60.0 * (len(memory.low) + 1)
            wait_ms = int((min(next_minute, end) - time.perf_counter()) * 1000)
            QtCore.QTimer.singleShot(max(0, wait_ms), loop.quit)
            loop.exec()
            steps_done()
            if window.worker is None:  # the run ended (finished, or failed): train on from its weights
                log(f"the run ended ({window.statusBar().currentMessage()}); starting another")
                runs.append(0)
                window.panel.continue_check.setChecked(True)
                window.panel.start_button.click()
            if time.perf_counter() >= next_minute - 0.05 or time.perf_counter() >= end:
                probe.end_period()
                memory.end_period()
                log(f"minute {len(memory.low)}: rss {memory.low[-1]:.1f}..{memory.high[-1]:.1f} MiB, "
                    f"steps {steps_done()}, max gap {probe.max_per_period[-1]} ms, "
                    f"pad {driver.classified} classifications, load {load_average():.2f}", flush=True)
            if time.perf_counter() >= end:
                break
        for timer in (probe.timer, memory.timer, tab_timer, driver.timer):
            timer.stop()
        elapsed = time.perf_counter() - started
        steps = steps_done()
        rss_end = rss_mb()
        window.close()
        if not window.closed_cleanly:
            log("warning: a thread took longer than 2 s to stop")
    return {
        "minutes": round(elapsed / 60.0, 2),
        "steps": steps,
        "rss_start_mb": round(rss_start, 1),
        "rss_before_warmup_mb": round(rss_before, 1),
        "rss_end_mb": round(rss_end, 1),
        "max_gap_ms": round(probe.max_gap_ms, 1),
        "p99_gap_ms": max(probe.p99_per_period, default=0.0),
        "rss_min_mb_per_min": memory.low,
        "rss_max_mb_per_min": memory.high,
        "rss_trend_mb_per_min": trend_mb_per_min(memory.low),
        "rss_peak_trend_mb_per_min": trend_mb_per_min(memory.high),
        "max_gap_ms_per_min": probe.max_per_period,
        "p99_gap_ms_per_min": probe.p99_per_period,
        "pad_classifications": driver.classified,
        "pad_digits": driver.judged,
        "pad_accuracy": round(driver.correct / driver.judged, 3) if driver.judged else None,
        "load_avg": round(load_average(), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to train (default 30)")
    parser.add_argument("--tab-seconds", type=float, default=3.0, help="seconds per tab (default 3)")
    parser.add_argument("--pad-ms", type=int, default=500, help="one digit drawn on the pad every N ms")
    parser.add_argument("--epochs", type=int, default=1000, help="epochs of the run (enough not to finish)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="set OpenBLAS's thread count first (default: leave it as the app has it)")
    args = parser.parse_args(argv)
    if args.minutes < 0 or args.tab_seconds <= 0 or args.pad_ms <= 0:
        parser.error("--minutes must be >= 0, --tab-seconds and --pad-ms > 0")
    from engine.parallel import blas_threads, set_blas_threads

    if args.blas_threads is not None and not set_blas_threads(args.blas_threads):
        parser.error("cannot reach OpenBLAS to set its thread count")
    QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    result = run(args.minutes, args.tab_seconds, args.pad_ms, args.epochs)
    result["blas_threads"] = blas_threads()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
