"""app.gui_gc: reference cycles holding Qt objects are collected on the GUI thread, from its timer."""
import gc
import threading

from app import gui_gc


class Cycle:
    """Garbage only the cyclic collector frees; records which thread freed it."""

    freed_on: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        Cycle.freed_on.append(threading.current_thread().name)


def test_allocating_threads_never_collect_and_the_gui_timer_does(qtbot):
    gui_gc.install()
    assert gui_gc.installed() and not gc.isenabled()
    Cycle.freed_on = []
    Cycle()  # unreachable at once, freed only by a collection

    kept = []

    def allocate():  # containers far beyond the collector's thresholds, as the training thread makes
        kept.extend({"i": i} for i in range(20 * gc.get_threshold()[0]))

    worker = threading.Thread(target=allocate, name="allocating worker")
    worker.start()
    worker.join()
    assert Cycle.freed_on == []  # no collection on the worker thread
    assert gc.get_count()[0] > gc.get_threshold()[0]
    qtbot.waitUntil(lambda: bool(Cycle.freed_on), timeout=3 * gui_gc.CHECK_MS + 2000)
    assert Cycle.freed_on == [threading.main_thread().name]


def test_the_timer_collects_only_when_the_thresholds_are_passed(qtbot):
    gui_gc.install()
    Cycle.freed_on = []
    gc.collect()
    Cycle()
    collector = gui_gc._collector
    collector.check()  # a handful of new objects: under threshold 0, nothing to do yet
    assert Cycle.freed_on == []
    junk = [[] for _ in range(gc.get_threshold()[0] + 10)]  # container allocations count
    collector.check()
    assert Cycle.freed_on == [threading.main_thread().name]
    del junk
