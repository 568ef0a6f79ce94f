"""Shared test setup: Qt runs offscreen unless CONVSCOPE_ON_SCREEN=1; no test may leave a thread running."""
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
