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
That includes CPython's rule for full collections: the oldest generation is only collected once the
objects moved into it since the last full collection number a quarter of those it held then. A full
collection walks every tracked object of the app (20-47 ms under training); run whenever its
threshold was passed, as this module first did, it came after every 11 generation-1 collections
(~3.5 minutes of training), each time a long stall of the GUI thread.
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
        self.long_lived_total = 0    # objects in the oldest generation after the last full collection
        self.long_lived_pending = 0  # objects moved into it since
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
        if count1 <= threshold1:
            gc.collect(0)
        elif count2 > threshold2 and self.long_lived_pending >= self.long_lived_total / 4:
            self.collect_all()
        else:  # generation 1: its survivors (and generation 0's) move into the oldest generation
            young = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
            self.long_lived_pending += max(0, young - gc.collect(1))

    def collect_all(self) -> int:
        """A full collection (and the counts the rule above starts from). Returns the objects found
        unreachable."""
        found = gc.collect()
        self.long_lived_total = len(gc.get_objects(generation=2))
        self.long_lived_pending = 0
        return found


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
    return gc.collect() if _collector is None else _collector.collect_all()
