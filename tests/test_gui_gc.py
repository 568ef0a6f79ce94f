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


def test_full_collections_wait_for_a_quarter_more_long_lived_objects_as_cpythons_do(qtbot):
    gui_gc.install()
    collector = gui_gc._collector
    gui_gc.collect_now()
    assert collector.long_lived_total == len(gc.get_objects(generation=2)) > 0
    assert collector.long_lived_pending == 0
    threshold0, _, threshold2 = gc.get_threshold()
    per_round = 2 * threshold0 + 1  # containers allocated per round below (over threshold 0)
    generations = []

    def record(phase, info):
        if phase == "start":
            generations.append(info["generation"])

    gc.callbacks.append(record)
    try:
        # A heap as big as the app's (its figure set, not allocated): short-lived containers, alive
        # at each check and gone after, never add up to a quarter of it.
        collector.long_lived_total = 4 * 200_000
        for _ in range(15 * (threshold2 + 1)):
            junk = [[] for _ in range(2 * threshold0)]
            collector.check()
            del junk
        assert generations.count(1) > threshold2 + 1  # the old rule collected everything after 11
        assert 2 not in generations
        # Long-lived ones: the full collection comes once a quarter of the total has moved in.
        collector.long_lived_total, collector.long_lived_pending = 4 * 20_000, 0
        kept = []
        while 2 not in generations:
            kept.append([[] for _ in range(2 * threshold0)])
            collector.check()
            assert len(kept) < 200
    finally:
        gc.callbacks.remove(record)
    assert len(kept) * per_round >= 20_000
    assert collector.long_lived_pending == 0
    assert collector.long_lived_total == len(gc.get_objects(generation=2))
