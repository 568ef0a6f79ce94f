"""Shared test setup: Qt runs offscreen unless CONVSCOPE_ON_SCREEN=1; garbage is collected as the app
collects it (app.gui_gc: on the GUI thread, never from inside Qt code), and between tests; no test may
leave a thread running, and the engine's thread setting is put back after each. Fixtures for the tests
that drive the main window: ``small_data``, ``make_window`` and ``recording_worker``."""
import importlib
import os
import threading

import pytest

# Before any test module imports NumPy, as `python -m engine` and `python -m app` do: the same BLAS kernels.
importlib.import_module("engine")
from engine import parallel

if os.environ.get("CONVSCOPE_ON_SCREEN") != "1":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_configure(config):
    """CONVSCOPE_REQUIRE_TORCH=1 (set by .ci/run, which installs torch): the PyTorch oracle tests must run.
    Without it they skip cleanly where torch is missing; with it a missing or broken torch stops the run
    instead of turning the strongest gradient checks into skips."""
    if os.environ.get("CONVSCOPE_REQUIRE_TORCH") == "1":
        try:
            importlib.import_module("torch")
        except ImportError as error:
            raise pytest.UsageError(f"CONVSCOPE_REQUIRE_TORCH=1 but torch cannot be imported: {error}") from None


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


@pytest.fixture(autouse=True)
def engine_threads_as_they_were():
    """The engine's thread setting (and BLAS's) put back after every test: the app sets them for the whole
    process (app.runtime.prepare_for_gui: one thread on 2 cores), and a later test would compute batches
    in passes or shards, in another summation order, depending on which tests ran before it."""
    with parallel.using_threads(parallel.threads()):
        yield


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


@pytest.fixture(scope="session")
def small_data():
    """250 training / 50 validation images, every digit equally (the bundled file is sorted by digit)."""
    from engine.data import load_bundled_mnist

    train, val = load_bundled_mnist()
    return train.subset(slice(0, 4500, 18)), val.subset(slice(0, 500, 10))


@pytest.fixture
def make_window(qtbot, tmp_path, small_data):
    """``make(settings_name="settings.ini", data=None, ask_before_discarding=False)``: a shown MainWindow
    with its own settings file in ``tmp_path`` and ``data`` (train, val) or ``small_data`` to train on;
    all closed at the end."""
    from app.main_window import MainWindow
    from app.settings import Settings

    windows = []

    def make(settings_name="settings.ini", data=None, ask_before_discarding=False):
        settings = Settings(str(tmp_path / settings_name))
        settings.set_ask_before_discarding(ask_before_discarding)  # the question has tests of its own
        window = MainWindow(settings)
        # pytest-qt closes it before this fixture's teardown: a failed test must not leave a question waiting
        qtbot.addWidget(window, before_close_func=lambda w: w.settings.set_ask_before_discarding(False))
        window.use_datasets(*(data or small_data), "bundled")
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def recording_worker(monkeypatch):
    """Make the window's TrainingWorker keep a copy of the weights after every step (on the training
    thread, right after the update: consistent states) -> list of {name: array} per step, the first
    from before the first step."""
    import app.main_window as main_window

    states = []

    class RecordingWorker(main_window.TrainingWorker):
        def __init__(self, trainer):
            super().__init__(trainer)
            forward = trainer.on_event

            def on_event(event):
                if event["type"] == "step":
                    states.append(trainer.model.get_weights())
                forward(event)

            states.append(trainer.model.get_weights())
            trainer.on_event = on_event

    monkeypatch.setattr(main_window, "TrainingWorker", RecordingWorker)
    return states
