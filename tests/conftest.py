"""Shared test setup: Qt runs offscreen unless CONVSCOPE_ON_SCREEN=1; garbage is collected as the app
collects it (app.gui_gc: on the GUI thread, never from inside Qt code), and between tests; no test may
leave a thread running."""
import os
import threading

import pytest

if os.environ.get("CONVSCOPE_ON_SCREEN") != "1":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Fail any test that leaves a Python thread running (workers must be stopped and joined)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leftover:
        thread.join(timeout=2.0)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"test left threads running: {still}"


@pytest.fixture(scope="session", autouse=True)
def garbage_collected_like_the_app(qapp):
    """The app's policy for the whole session (see app/gui_gc.py), also for tests without a window."""
    from app import gui_gc
    gui_gc.install()
    yield


@pytest.fixture(autouse=True)
def collect_garbage_between_tests():
    """A full collection after every test, outside any Qt call (the timer only runs in event loops)."""
    yield
    from app import gui_gc
    gui_gc.collect_now()
