"""The responsiveness probe itself works: it sees an idle GUI thread as idle and a blocked one as blocked."""
import time

import numpy as np
from PySide6 import QtCore

from app.bench_responsiveness import measure_timer_gaps, summarize_gaps


class _Blocker(QtCore.QObject):
    """A GUI-thread slot that holds the thread for 200 ms, like a heavy view update would."""

    @QtCore.Slot()
    def block(self) -> None:
        time.sleep(0.2)


def test_blocking_slot_shows_as_a_long_gap(qtbot):
    blocker = _Blocker()
    QtCore.QTimer.singleShot(300, blocker.block)
    gaps = measure_timer_gaps(0.8)
    assert summarize_gaps(gaps)["max_gap_ms"] > 150.0
    # Only the tick around the sleep is long: the probe measures gaps, not total time.
    assert np.sum(gaps > 150.0) == 1


def test_idle_gui_thread_ticks_at_the_timer_interval(qtbot):
    gaps = measure_timer_gaps(0.5)
    assert len(gaps) >= 10
    assert np.median(gaps) < 50.0
