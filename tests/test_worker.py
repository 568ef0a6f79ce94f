"""TrainingWorker: a real Trainer on its QThread, results as throttled copies, thread-safe controls."""
import numpy as np
import pytest
from PySide6 import QtCore

from app import worker as worker_module
from app.worker import BackgroundTask, TrainingWorker
from engine.data import load_bundled_mnist, load_digits_8x8
from engine.presets import build
from engine.trainer import Trainer, TrainConfig


class Receiver(QtCore.QObject):
    """Collects everything a worker sends, on the GUI thread."""

    def __init__(self, worker: TrainingWorker):
        super().__init__()
        self.batches, self.epochs, self.weights, self.errors, self.done = [], [], [], [], []
        self.validations = []
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        worker.steps.connect(self.on_steps, queued)
        worker.validation.connect(self.on_validation, queued)
        worker.epoch.connect(self.on_epoch, queued)
        worker.weights.connect(self.on_weights, queued)
        worker.diverged.connect(self.on_error, queued)
        worker.done.connect(self.on_done, queued)

    @QtCore.Slot(object)
    def on_steps(self, batch):
        self.batches.append(batch)

    @QtCore.Slot(object)
    def on_validation(self, progress):
        self.validations.append(progress)

    @QtCore.Slot(object)
    def on_epoch(self, event):
        self.epochs.append(event)

    @QtCore.Slot(object)
    def on_weights(self, snapshot):
        self.weights.append(snapshot)

    @QtCore.Slot(object)
    def on_error(self, event):
        self.errors.append(event)

    @QtCore.Slot(str)
    def on_done(self, reason):
        self.done.append(reason)

    @property
    def steps(self) -> np.ndarray:
        return np.concatenate([b["step"] for b in self.batches]) if self.batches else np.zeros(0, np.int64)


@pytest.fixture(scope="module")
def mnist_small():
    """250 training / 50 validation images, every digit equally (the bundled file is sorted by digit)."""
    train, val = load_bundled_mnist()
    return train.subset(slice(0, 4500, 18)), val.subset(slice(0, 500, 10))


def diverge_at(model, call: int) -> None:
    """Make the ``call``-th loss computation return NaN, as an exploding run would."""
    original, calls = model.loss_and_grads, []

    def loss_and_grads(x, labels):
        loss, out = original(x, labels)
        calls.append(1)
        return (float("nan") if len(calls) == call else loss), out

    model.loss_and_grads = loss_and_grads


def make_worker(data, preset="seed003", **config):
    train, val = data
    cfg = TrainConfig(preset=preset, **{"epochs": 2, "batch_size": 32, **config})
    trainer = Trainer(build(preset, seed=0), train, val, cfg)
    worker = TrainingWorker(trainer)
    return worker, Receiver(worker)


@pytest.fixture
def started():
    """Start workers through this, so every one is shut down even when the test fails."""
    workers = []

    def start(worker, **kwargs):
        workers.append(worker)
        worker.start(**kwargs)

    yield start
    for worker in workers:
        worker.shutdown()


def test_every_step_arrives_once_in_order_then_done(qtbot, mnist_small, started):
    worker, got = make_worker(mnist_small)
    started(worker)
    qtbot.waitUntil(lambda: got.done == ["finished"], timeout=30000)
    total = worker.trainer.total_steps
    np.testing.assert_array_equal(got.steps, np.arange(1, total + 1))
    losses = np.concatenate([b["loss"] for b in got.batches])
    np.testing.assert_array_equal(losses, worker.trainer.history.steps["loss"].array())
    assert [e["epoch"] for e in got.epochs] == [1, 2]
    # The last snapshot is the final weights, and a copy: training arrays are never handed out.
    final = got.weights[-1]
    for name, live in worker.trainer.model.params().items():
        np.testing.assert_array_equal(final[name], live)
        assert not np.shares_memory(final[name], live)


def test_fast_steps_are_batched_not_sent_one_by_one(qtbot, started):
    train, test = load_digits_8x8()
    worker, got = make_worker((train, test), preset="tiny8x8", epochs=40, batch_size=4,
                              lr_conv=0.1, lr_dense=0.1)
    started(worker)
    qtbot.waitUntil(lambda: bool(got.done), timeout=60000)
    steps = got.steps
    np.testing.assert_array_equal(steps, np.arange(1, worker.trainer.total_steps + 1))
    # Hundreds of steps a second travel in a few dozen payloads a second (<= STEP_HZ plus epoch flushes).
    assert len(got.batches) < len(steps) / 3
    assert len(got.weights) < len(steps) / 3


def test_pause_then_step_advances_exactly_one_step_then_stop(qtbot, mnist_small, started):
    worker, got = make_worker(mnist_small, epochs=50)
    started(worker)
    qtbot.waitUntil(lambda: got.steps.size >= 2, timeout=30000)
    worker.pause()
    qtbot.waitUntil(lambda: worker.trainer.state == "paused", timeout=30000)
    # Everything trained before the pause has been reported, weights included.
    qtbot.waitUntil(lambda: got.steps.size == worker.trainer.step_index, timeout=30000)
    before = got.steps.size
    snapshots = len(got.weights)
    worker.request_step()
    qtbot.waitUntil(lambda: got.steps.size == before + 1, timeout=30000)
    qtbot.wait(300)  # nothing else follows
    assert got.steps[-1] == before + 1
    assert worker.trainer.step_index == before + 1
    assert len(got.weights) > snapshots
    np.testing.assert_array_equal(got.weights[-1]["conv1.w"], worker.trainer.model.params()["conv1.w"])
    worker.stop()
    qtbot.waitUntil(lambda: got.done == ["stopped"], timeout=30000)


def test_starting_paused_lets_the_first_step_be_a_single_step(qtbot, mnist_small, started):
    worker, got = make_worker(mnist_small)
    started(worker, paused=True)
    worker.request_step()
    qtbot.waitUntil(lambda: got.steps.size == 1, timeout=30000)
    qtbot.wait(200)
    assert list(got.steps) == [1]


def test_recorders_see_every_event_on_the_training_thread_and_between_steps_waits(qtbot, mnist_small,
                                                                                    started):
    import threading

    seen = []

    class Recorder:  # what the gradient-health monitor and the kernel timeline are to the worker
        def observe(self, event, model):
            seen.append((event["type"], event.get("step"), threading.get_ident(), model))
            return True

    worker, got = make_worker(mnist_small, epochs=50)  # 8 steps per epoch
    worker.recorders = (Recorder(),)
    started(worker, paused=True)
    assert worker.between_steps()  # paused before any step, none asked for
    for _ in range(8):  # the 8th step ends epoch 1: its validation runs before the epoch event
        worker.request_step()
    assert not worker.between_steps()
    assert worker.wait_between_steps(60000)
    trainer = worker.trainer
    # Read at once, without processing any event: the whole epoch is done, validation included.
    assert trainer.step_index == 8 and len(trainer.history.epochs["val_loss"]) == 1
    batches = -(-len(trainer.val_data.y) // 64)  # the validation reports after each of its batches
    expected = [("step", i) for i in range(1, 9)] + [("validation", None)] * batches + [("epoch", None)]
    assert [(kind, step) for kind, step, _, _ in seen] == expected
    qtbot.waitUntil(lambda: len(got.validations) > 0, timeout=30000)  # the first at least, then throttled
    n = len(trainer.val_data.y)
    assert got.validations[0] == (min(64, n), n)
    assert {thread for _, _, thread, _ in seen} != {threading.get_ident()}  # the training thread
    assert all(model is trainer.model for *_, model in seen)
    worker.resume()
    qtbot.waitUntil(lambda: trainer.step_index > 8, timeout=30000)
    worker.pause()
    assert worker.wait_between_steps(60000) and trainer.state == "paused"
    qtbot.waitUntil(lambda: got.steps.size == trainer.step_index, timeout=30000)
    assert [step for kind, step, *_ in seen if kind == "step"] == list(got.steps)


def test_divergence_keeps_the_weights_and_the_run_can_continue(qtbot, mnist_small, started):
    worker, got = make_worker(mnist_small, epochs=5)
    diverge_at(worker.trainer.model, 3)
    started(worker)
    qtbot.waitUntil(lambda: got.done == ["diverged"], timeout=30000)
    assert got.errors[0]["step"] == 3 and "diverged" in got.errors[0]["message"]
    assert list(got.steps) == [1, 2]
    # The last weights sent are the trainer's current ones: those from before the bad step.
    weights = worker.trainer.snapshot()
    for name, value in weights.items():
        np.testing.assert_array_equal(got.weights[-1][name], value)
    assert worker.is_running()  # the thread waits for "lower the rate and continue"

    worker.trainer.set_learning_rates(1e-3, 1e-3)
    worker.continue_run()
    qtbot.waitUntil(lambda: got.steps.size >= 5, timeout=30000)
    assert list(got.steps[:5]) == [1, 2, 3, 4, 5]  # step 3 is retried, not skipped
    worker.stop()
    qtbot.waitUntil(lambda: got.done[-1] == "stopped", timeout=30000)


def test_shutdown_mid_run_joins_the_thread(qtbot, mnist_small):
    worker, got = make_worker(mnist_small, epochs=50)
    worker.start()
    qtbot.waitUntil(lambda: got.steps.size >= 1, timeout=30000)
    worker.shutdown()
    assert not worker.is_running()
    assert worker.trainer.state == "stopped"
    worker.continue_run()  # a late request after shutdown must not start anything
    qtbot.wait(100)
    assert not worker.is_running()


def test_an_exception_in_the_trainer_is_reported(qtbot, mnist_small, started, monkeypatch):
    worker, got = make_worker(mnist_small)
    failures = []
    worker.failed.connect(failures.append, QtCore.Qt.ConnectionType.QueuedConnection)

    def broken_step():
        raise MemoryError("no room")

    monkeypatch.setattr(worker.trainer, "step", broken_step)
    started(worker)
    qtbot.waitUntil(lambda: got.done == ["failed"], timeout=30000)
    assert "MemoryError" in failures[0]


def test_background_task_reports_progress_and_result(qtbot):
    def work(cancel, progress):
        for i in range(3):
            progress(i, 3, "file")
        return "loaded"

    task = BackgroundTask(work)
    progressed, results = [], []
    task.progressed.connect(progressed.append)
    task.succeeded.connect(results.append)
    with qtbot.waitSignal(task.finished, timeout=30000):
        task.start()
    qtbot.waitUntil(lambda: results == ["loaded"], timeout=30000)
    assert [args[0] for args in progressed] == [0, 1, 2]


def test_background_task_cancel_reaches_the_function(qtbot):
    def work(cancel, progress):
        while not cancel.wait(0.01):
            pass
        raise worker_module.threading.ThreadError("cancelled")

    task = BackgroundTask(work)
    errors = []
    task.failed.connect(errors.append)
    task.start()
    task.shutdown()
    assert not task.isRunning()
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=30000)
