"""Python's cyclic garbage collector, run only on the GUI thread at safe moments.

pyqtgraph's items and views sit in reference cycles, so the Qt objects behind them are destroyed when
the cyclic collector runs. By default it runs whenever enough objects have been allocated, in whatever
thread allocated them and at whatever point: inside a Python override that Qt calls while it walks a
scene's items (a plot's ``boundingRect`` during ``QGraphicsScene::itemsBoundingRect`` was caught doing
exactly that: the walk then touched the items just destroyed and the process aborted with "pure virtual
method called"), or on the training thread, which must never destroy GUI objects.

``install()`` turns the automatic collector off and collects from a timer on the GUI thread instead,
with the collector's own thresholds (generation 0 when it would have run, older generations as often
as it would run them): the same amount of collecting, at moments when no Qt code is on the stack.
``collect_now()`` is for the few places that want the garbage gone at once (tests between cases).
"""
from __future__ import annotations

import gc

from PySide6 import QtCore

CHECK_MS = 250   # allocation counts are checked this often; a collection itself takes ~1 ms

_collector: "_GuiCollector | None" = None


class _GuiCollector(QtCore.QObject):
    def __init__(self) -> None:
        super().__init__()
        self.thresholds = gc.get_threshold()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(CHECK_MS)
        self.timer.timeout.connect(self.check)

    @QtCore.Slot()
    def check(self) -> None:
        """Collect the generations the automatic collector would have collected by now."""
        count0, count1, count2 = gc.get_count()
        threshold0, threshold1, threshold2 = self.thresholds
        if count0 <= threshold0:
            return
        generation = 0
        if count1 > threshold1:
            generation = 2 if count2 > threshold2 else 1
        gc.collect(generation)


def install() -> None:
    """Collect garbage only on the GUI thread (call it there, once a QApplication exists; idempotent)."""
    global _collector
    app = QtCore.QCoreApplication.instance()
    if app is None:
        raise RuntimeError("install() needs a QApplication")
    if _collector is None:
        _collector = _GuiCollector()
        app.aboutToQuit.connect(_collector.timer.stop)
    gc.disable()
    _collector.timer.start()


def installed() -> bool:
    return _collector is not None and not gc.isenabled()


def collect_now() -> int:
    """A full collection on the calling thread (the GUI thread: see the module doc)."""
    return gc.collect()
