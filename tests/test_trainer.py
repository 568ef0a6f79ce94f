"""engine.trainer: determinism, thread-safe controls, divergence, schedules and evaluation."""
import math
import threading
import time

import numpy as np
import pytest

from engine.data import Dataset, load_bundled_mnist
from engine.model import Sequential
from engine.presets import build, get_preset
from engine import parallel
from engine import trainer as trainer_module
from engine.trainer import STEP_GAMMA, History, TrainConfig, Trainer, evaluate

SMALL_VGG7 = get_preset("vgg7", conv1=4, conv2=4, conv3=8, conv4=8, dense1=16, dense2=16)
SMALL_SEED003 = get_preset("seed003", conv1=4)  # max pooling and dropout


@pytest.fixture(scope="module")
def mnist():
    """(train subset of 256, validation subset of 100) from the bundled data, all digits."""
    train, val = load_bundled_mnist()
    rng = np.random.default_rng(0)
    return (train.subset(np.sort(rng.choice(len(train), 256, replace=False))),
            val.subset(np.sort(rng.choice(len(val), 100, replace=False))))


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the trainer")
        time.sleep(0.005)


def run_losses(spec, data, config):
    model = build(spec, seed=config.seed)
    trainer = Trainer(model, data, None, config)
    assert trainer.run() == "finished"
    return trainer.history.steps["loss"].array(), model.get_weights()


def test_same_seed_gives_the_same_loss_curve_bit_for_bit(mnist):
    train = mnist[0].subset(slice(0, 128))
    config = TrainConfig(preset="seed003", epochs=2, batch_size=32, lr_conv=0.05, lr_dense=0.05,
                         augment=True, seed=3)
    losses_a, weights_a = run_losses(SMALL_SEED003, train, config)
    losses_b, weights_b = run_losses(SMALL_SEED003, train, config)
    assert losses_a.shape == (8,)
    np.testing.assert_array_equal(losses_a, losses_b)
    for name in weights_a:
        np.testing.assert_array_equal(weights_a[name], weights_b[name])
    losses_c, _ = run_losses(SMALL_SEED003, train, TrainConfig(**{**config.__dict__, "seed": 4}))
    assert not np.array_equal(losses_a, losses_c)


def test_events_history_and_epoch_metrics(mnist):
    train, val = mnist
    events = []
    model = build(SMALL_VGG7, seed=0)
    trainer = Trainer(model, train, val, TrainConfig(epochs=2, batch_size=100, lr_conv=0.05, lr_dense=0.05),
                      on_event=events.append)
    assert trainer.run() == "finished"
    steps = [e for e in events if e["type"] == "step"]
    epochs = [e for e in events if e["type"] == "epoch"]
    assert trainer.steps_per_epoch == 3  # 256 = 100 + 100 + 56: the last batch is smaller
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert [e["epoch"] for e in steps] == [1, 1, 1, 2, 2, 2]
    assert [e["epoch_fraction"] for e in steps] == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert events[-1] == {"type": "done", "reason": "finished"} and trainer.state == "finished"
    np.testing.assert_array_equal(trainer.history.steps["loss"].array(), [e["loss"] for e in steps])
    # the epoch's train loss is the sample-weighted mean of its step losses
    sizes = np.array([100, 100, 56])
    assert epochs[0]["train_loss"] == pytest.approx((sizes * [e["loss"] for e in steps[:3]]).sum() / 256)
    final = evaluate(model, val)
    assert epochs[-1]["val_accuracy"] == final.accuracy and epochs[-1]["val_loss"] == pytest.approx(final.loss)
    np.testing.assert_array_equal(trainer.history.epochs["val_accuracy"].array(),
                                  [e["val_accuracy"] for e in epochs])
    with pytest.raises(RuntimeError, match="finished"):
        trainer.step()
    restored = History()
    restored.load_state_dict(trainer.history.state_dict())
    for group in ("steps", "epochs"):
        for name, series in getattr(trainer.history, group).items():
            np.testing.assert_array_equal(getattr(restored, group)[name].array(), series.array())
    restored.steps["loss"].append(0.5)  # still growable
    assert len(restored.steps["loss"]) == 7


def test_a_run_restored_from_its_state_continues_bit_for_bit(mnist):
    """Save weights + state_dict mid-epoch, restore into a fresh trainer: the rest matches an
    uninterrupted run exactly (shuffle order, augmentation and dropout generator, momentum)."""
    train = mnist[0].subset(slice(0, 96))
    config = TrainConfig(preset="seed003", epochs=3, batch_size=32, lr_conv=0.05, lr_dense=0.05, augment=True,
                         seed=5, warmup_epochs=1)
    whole = Trainer(build(SMALL_SEED003, seed=5), train, None, config)
    whole.run()

    first = Trainer(build(SMALL_SEED003, seed=5), train, None, config)
    for _ in range(4):  # one epoch and a bit
        first.step()
    weights, state = first.snapshot(), first.state_dict()
    model = build(SMALL_SEED003, seed=99)  # different initial weights, replaced below
    model.set_weights(weights)
    resumed = Trainer(model, train, None, TrainConfig(preset="seed003", optimizer="adam"))
    resumed.load_state_dict(state)
    assert resumed.run() == "finished"
    np.testing.assert_array_equal(resumed.history.steps["loss"].array(), whole.history.steps["loss"].array())
    np.testing.assert_array_equal(resumed.history.epochs["train_loss"].array(),
                                  whole.history.epochs["train_loss"].array())
    for name, value in whole.model.get_weights().items():
        np.testing.assert_array_equal(model.get_weights()[name], value)
    with pytest.raises(ValueError, match="96 training images"):
        Trainer(build(SMALL_SEED003), mnist[0], None, config).load_state_dict(state)


def test_an_epoch_state_belongs_to_the_steps_inside_its_epoch():
    """10 images in batches of 4: 3 steps an epoch; epoch 1 holds steps 4, 5 and 6 (after step 3 the
    run is in epoch 0's last step, after 6 in epoch 1's)."""
    from engine.trainer import epoch_state_problem

    state = {"epoch": 1, "order": np.arange(10), "totals": [0.0, 0, 0, 0.0]}
    assert [epoch_state_problem(state, 10, 4, step) is None for step in range(2, 9)] == \
        [False, False, True, True, True, False, False]


def test_an_epoch_state_that_does_not_fit_is_refused_and_changes_nothing(mnist):
    train = mnist[0].subset(slice(0, 96))
    trainer = Trainer(build(SMALL_SEED003, seed=5), train, None,
                      TrainConfig(preset="seed003", epochs=2, batch_size=32, seed=5))
    trainer.step()
    saved = trainer.epoch_state()
    assert saved["epoch"] == 0 and sorted(saved["order"]) == list(range(96)) and saved["totals"][2] == 32
    twice = dict(saved, order=np.concatenate([saved["order"][:48], saved["order"][:48]]))
    for bad, message in [(twice, "not an ordering"), (dict(saved, epoch=1), "epoch 1"),
                         (dict(saved, order=saved["order"][:95]), "had 95 training images"),
                         (dict(saved, totals=[0.5, 33, 32, 0.1]), "totals"), ({"epoch": 0}, "expected")]:
        with pytest.raises(ValueError, match=message):
            trainer.restore_epoch_state(bad)
        np.testing.assert_array_equal(trainer.epoch_state()["order"], saved["order"])


def test_learning_rate_schedules():
    cfg = TrainConfig(epochs=4, schedule="cosine", warmup_epochs=1)
    scales = [cfg.lr_scale(i, 10) for i in range(40)]
    assert scales[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])  # linear warmup
    assert scales[10] == 1.0 and scales[-1] < 0.01
    assert all(a >= b for a, b in zip(scales[10:], scales[11:]))  # then decays monotonically
    step = TrainConfig(epochs=4, schedule="step")
    assert [step.lr_scale(i, 10) for i in (0, 19, 20, 29, 30, 39)] == pytest.approx(
        [1, 1, STEP_GAMMA, STEP_GAMMA, STEP_GAMMA ** 2, STEP_GAMMA ** 2])
    assert {TrainConfig(schedule="constant").lr_scale(i, 7) for i in range(70)} == {1.0}


def test_the_schedule_reaches_the_optimiser(mnist):
    config = TrainConfig(epochs=2, batch_size=64, lr_conv=0.02, lr_dense=0.1, schedule="cosine", warmup_epochs=0.5)
    trainer = Trainer(build(SMALL_VGG7, seed=0), mnist[0], None, config)
    trainer.run()
    expected = np.array([config.lr_scale(i, 4) for i in range(8)])
    np.testing.assert_allclose(trainer.history.steps["lr_conv"].array(), 0.02 * expected)
    np.testing.assert_allclose(trainer.history.steps["lr_dense"].array(), 0.1 * expected)
    assert trainer.optimizer.lrs == {"conv": 0.02 * expected[-1], "dense": 0.1 * expected[-1]}


@pytest.mark.parametrize("field, value, words", [
    ("epochs", 0, "epochs"), ("epochs", 10**9, "epochs"), ("batch_size", -1, "batch_size"),
    ("batch_size", 2.5, "whole number"), ("lr_conv", float("nan"), "finite"), ("lr_dense", -0.1, "lr_dense"),
    ("momentum", 1.0, "momentum"), ("weight_decay", float("inf"), "finite"), ("weight_decay", 1.0, "weight_decay"),
    ("optimizer", "rmsprop", "optimizer"),
    ("schedule", "linear", "schedule"), ("variant", "typo", "variant"), ("seed", -1, "seed"),
    ("max_loss", float("nan"), "max_loss"), ("warmup_epochs", 20.0, "warmup"), ("augment", "yes", "augment"),
])
def test_validate_names_the_problem(field, value, words):
    assert TrainConfig().validate() == []
    problems = TrainConfig(**{field: value}).validate()
    assert len(problems) == 1 and words in problems[0]
    with pytest.raises(ValueError, match=words):
        Trainer(build(SMALL_VGG7), Dataset(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int64)), None,
                TrainConfig(**{field: value}))


def test_an_empty_training_set_is_refused_rather_than_a_run_of_no_steps():
    empty = Dataset(np.zeros((0, 28, 28, 1), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="the training set is empty"):
        Trainer(build(SMALL_VGG7), empty, None, TrainConfig())


def test_pause_step_resume_stop_from_another_thread(mnist):
    events = []
    trainer = Trainer(build(SMALL_VGG7, seed=0), mnist[0], None,
                      TrainConfig(epochs=1000, batch_size=32, lr_conv=0.01, lr_dense=0.01), on_event=events.append)
    trainer.pause()  # before run(): the run starts paused
    thread = threading.Thread(target=trainer.run)
    thread.start()
    try:
        wait_for(lambda: trainer.state == "paused")
        time.sleep(0.1)
        assert trainer.step_index == 0
        trainer.request_step()
        wait_for(lambda: trainer.step_index == 1)
        trainer.request_step()
        trainer.request_step()
        wait_for(lambda: trainer.step_index == 3)
        time.sleep(0.2)
        assert trainer.step_index == 3 and trainer.state == "paused"

        trainer.resume()
        wait_for(lambda: trainer.step_index >= 6)
        assert trainer.state == "running"
        trainer.request_step()  # ignored while running: must not cause an extra step after the next pause
        trainer.pause()
        wait_for(lambda: trainer.state == "paused")
        paused_at = trainer.step_index
        time.sleep(0.2)
        assert trainer.step_index == paused_at
    finally:
        trainer.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert trainer.state == "stopped" and trainer.step_index == paused_at
    assert events[-1] == {"type": "done", "reason": "stopped"}
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, paused_at + 1))
    # a stopped run continues where it left off
    trainer.pause()
    trainer.request_step()
    thread = threading.Thread(target=trainer.run)
    thread.start()
    wait_for(lambda: trainer.step_index == paused_at + 1)
    trainer.stop()
    thread.join(10)
    assert [e["step"] for e in events if e["type"] == "step"][-1] == paused_at + 1


def test_snapshots_are_never_half_updated(mnist):
    """Weight copies taken from another thread during training are always some step's weights."""
    model = build(SMALL_VGG7, seed=0)
    states = [model.get_weights()]
    trainer = Trainer(model, mnist[0], None, TrainConfig(epochs=3, batch_size=16, lr_conv=0.05, lr_dense=0.05),
                      on_event=lambda e: states.append(model.get_weights()) if e["type"] == "step" else None)
    thread = threading.Thread(target=trainer.run)
    thread.start()
    snapshots = []
    while thread.is_alive():
        snapshots.append(trainer.snapshot())
    thread.join()

    def key(weights):
        return b"".join(weights[name].tobytes() for name in sorted(weights))
    known = {key(s) for s in states}
    assert len(known) == trainer.total_steps + 1 and len(snapshots) > 10
    assert all(key(s) in known for s in snapshots)


def test_divergence_stops_at_the_bad_step_and_keeps_the_previous_weights(mnist):
    model = build(SMALL_VGG7, seed=0)
    events, weights_after = [], [model.get_weights()]

    def on_event(event):
        events.append(event)
        if event["type"] == "step":
            weights_after.append(model.get_weights())
    trainer = Trainer(model, mnist[0], None, TrainConfig(epochs=5, batch_size=32, lr_conv=1e3, lr_dense=1e3,
                                                         schedule="constant"), on_event=on_event)
    assert trainer.run() == "diverged"
    error = [e for e in events if e["type"] == "error"]
    assert len(error) == 1 and events[-1] == {"type": "done", "reason": "diverged"}
    good_steps = len(weights_after) - 1
    assert error[0]["step"] == good_steps + 1 and trainer.step_index == good_steps
    assert f"step {good_steps + 1}" in error[0]["message"] and "lower learning rate" in error[0]["message"]
    assert trainer.state == "diverged"
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(value, weights_after[-1][name])
    # lower the learning rates and carry on from the same step
    trainer.set_learning_rates(1e-4, 1e-4)
    trainer.pause()
    trainer.request_step()
    thread = threading.Thread(target=trainer.run)
    thread.start()
    wait_for(lambda: trainer.step_index == good_steps + 1)
    trainer.stop()
    thread.join(10)
    assert [e["step"] for e in events if e["type"] == "step"][-1] == good_steps + 1


def test_a_non_finite_gradient_is_not_applied(mnist, monkeypatch):
    model = build(SMALL_VGG7, seed=0)
    trainer = Trainer(model, mnist[0], None, TrainConfig(epochs=1, batch_size=32))
    trainer.step()
    before = model.get_weights()
    real = model.applied_grads

    def poisoned():
        grads = dict(real())
        grads["conv2.w"] = grads["conv2.w"].copy()
        grads["conv2.w"].flat[5] = np.inf
        return grads
    monkeypatch.setattr(model, "applied_grads", poisoned)
    event = trainer.step()
    assert event["type"] == "error" and event["step"] == 2 and "conv2.w" in event["message"]
    assert trainer.state == "diverged" and trainer.step_index == 1
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[name])


def test_evaluate_on_a_hand_made_case():
    """Logits = the inputs (a dense identity layer), so every prediction is known in advance."""
    spec = {"name": "identity", "input_shape": [1, 1, 3], "classes": [0, 1, 2], "loss": "softmax_cross_entropy",
            "layers": [{"type": "Flatten", "name": "flatten"}, {"type": "Dense", "name": "dense", "units": 3}]}
    model = Sequential(spec)
    model.set_weights({"dense.w": np.eye(3), "dense.b": np.zeros(3)})
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]], np.float32).reshape(5, 1, 1, 3)
    y = np.array([0, 1, 2, 2, 1])  # predictions 0, 1, 2, 1, 0: the last two are wrong
    result = evaluate(model, Dataset(x, y), batch_size=2)
    assert result.accuracy == pytest.approx(0.6)
    np.testing.assert_array_equal(result.misclassified, [3, 4])
    np.testing.assert_array_equal(result.predictions, [0, 1, 2, 1, 0])
    np.testing.assert_array_equal(result.confusion, [[1, 0, 0], [1, 1, 0], [0, 1, 1]])
    e = math.e
    sure = e / (e + 2)  # softmax of (1, 0, 0) puts e / (e + 2) on its 1
    np.testing.assert_allclose(result.probabilities, np.where(x.reshape(5, 3) == 1, sure, 1 / (e + 2)), rtol=1e-6)
    assert result.probabilities.dtype == model.dtype
    assert result.loss == pytest.approx((3 * -math.log(e / (e + 2)) + 2 * math.log(e + 2)) / 5, rel=1e-6)


def test_evaluate_counts_images_whose_outputs_overflow_as_unanswered_mistakes(recwarn):
    """Weights so large that float32 overflows: argmax of NaN said "class 0" for every such image (and
    NumPy warned on stderr); now they are unanswered mistakes in no cell of the matrix."""
    spec = {"name": "identity", "input_shape": [1, 1, 3], "classes": [0, 1, 2], "loss": "softmax_cross_entropy",
            "layers": [{"type": "Flatten", "name": "flatten"}, {"type": "Dense", "name": "dense", "units": 3}]}
    model = Sequential(spec)
    model.set_weights({"dense.w": 1e30 * np.eye(3), "dense.b": np.zeros(3)})
    x = np.array([[0, 1e-30, 0], [0, 1e10, 0], [0, 0, 1e-30]], np.float32).reshape(3, 1, 1, 3)
    result = evaluate(model, Dataset(x, np.array([1, 1, 0])))  # the middle one overflows to inf
    np.testing.assert_array_equal(result.unanswered, [1])
    np.testing.assert_array_equal(result.predictions, [1, -1, 2])
    np.testing.assert_array_equal(result.misclassified, [1, 2])
    assert result.accuracy == pytest.approx(1 / 3) and result.confusion.sum() == 2
    e = math.e  # the loss is the mean over the two answered images (logits (0, 1, 0) and (0, 0, 1))
    assert result.loss == pytest.approx((-math.log(e / (e + 2)) + math.log(e + 2)) / 2, rel=1e-5)
    assert result.unanswered_note().startswith("1 of 3 images got no answer: the network's outputs overflowed")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert evaluate(model, Dataset(x[[0, 2]], np.array([1, 2]))).unanswered_note() is None


def test_evaluate_reports_progress_per_batch_and_stops_when_cancelled(mnist):
    model, part = build("seed003", seed=0), mnist[0].subset(slice(0, 137))  # not a multiple of the batch
    whole = evaluate(model, part, batch_size=137)
    seen = []
    batched = evaluate(model, part, batch_size=50, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(50, 137), (100, 137), (137, 137)]
    np.testing.assert_array_equal(batched.confusion, whole.confusion)
    np.testing.assert_array_equal(batched.predictions, whole.predictions)
    assert batched.loss == pytest.approx(whole.loss, rel=1e-6)
    cancel = threading.Event()

    def cancel_after_the_first(done, total):
        seen.append(done)
        cancel.set()
    assert evaluate(model, part, batch_size=50, progress=cancel_after_the_first, cancel=cancel) is None
    assert seen[-1] == 50  # no second batch ran


def test_the_epoch_end_validation_says_how_far_it_is_and_a_stop_ends_it_at_once(mnist):
    """Full MNIST's 10,000 validation images took ~3 s in silence, and Stop or closing waited for them."""
    train, val = mnist  # 100 validation images: batches of 64 and 36
    config = TrainConfig(preset="seed003", epochs=3, batch_size=128, lr_conv=0.01, lr_dense=0.01, seed=0)
    events = []
    trainer = Trainer(build("seed003", seed=0), train, val, config, on_event=events.append)
    trainer.step(), trainer.step()  # the second step ends epoch 1
    kinds = [e["type"] for e in events]
    assert kinds == ["step", "step", "validation", "validation", "epoch"]
    assert [(e["epoch"], e["done"], e["total"]) for e in events[2:4]] == [(1, 64, 100), (1, 100, 100)]
    assert events[-1]["val_accuracy"] == evaluate(trainer.model, val).accuracy

    def stop_after_the_first_batch(event):
        events.append(event)
        if event["type"] == "validation":
            trainer.stop()
    trainer.on_event = stop_after_the_first_batch
    assert trainer.run() == "stopped"
    epoch = [e for e in events if e["type"] == "epoch"][-1]
    assert epoch["epoch"] == 2 and epoch["val_loss"] is None and epoch["val_accuracy"] is None
    assert [e["done"] for e in events if e["type"] == "validation"][2:] == [64]  # no second batch ran
    assert np.isnan(trainer.history.epochs["val_accuracy"].array()[-1])  # recorded as "no figure"


@pytest.fixture
def unsplit_batches():
    """Batches computed whole (the engine unconfigured, as a library user has it), whatever earlier tests set:
    which rates learn from lr 100's wreck depends on the summation order, and the app's tests had left one
    thread (passes of 16 images) behind, so this file alone and the whole suite followed other trajectories."""
    with parallel.using_threads(None):
        yield


def test_rollback_after_lr_100_returns_to_the_start_and_a_lower_rate_learns(mnist, unsplit_batches):
    """With lr 100 the first accepted steps already wreck the weights: the rescue point is the
    run's start, and from there x0.1 steps (as the app's one-click fix does) reach a rate that learns."""
    model = build(SMALL_VGG7, seed=0)
    initial = model.get_weights()
    events = []
    trainer = Trainer(model, mnist[0], None, TrainConfig(epochs=20, batch_size=32, lr_conv=100.0, lr_dense=100.0,
                                                         schedule="constant"), on_event=events.append)
    assert trainer.run() == "diverged"
    assert trainer.step_index >= 1                      # some steps were accepted before the refusal
    assert [e for e in events if e["type"] == "error"][0]["rescue_step"] == 0
    wrecked = model.get_weights()
    assert any(not np.array_equal(wrecked[n], initial[n]) for n in initial)
    lr = 100.0
    for _ in range(6):
        lr *= 0.1
        trainer.set_learning_rates(lr, lr)
        assert trainer.rollback() == 0
        for name, value in model.get_weights().items():
            np.testing.assert_array_equal(value, initial[name])
        assert all(not buf.any() for bufs in trainer.optimizer.buffers.values() for buf in bufs.values())
        trainer.pause()
        trainer.request_step()
        steps = []
        for _ in range(60):
            event = trainer.step()
            if event["type"] == "error":
                break
            steps.append(event["loss"])
        else:
            break
    assert len(steps) == 60, f"still diverging at lr {lr}"
    trainer.set_learning_rates(0.05, 0.05)              # a rate that learns, from the rescued weights
    assert trainer.rollback() is not None
    losses = [trainer.step()["loss"] for _ in range(80)]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])


def test_rescue_point_follows_healthy_training_and_stays_when_the_loss_climbs(mnist):
    from engine.trainer import RESCUE_EVERY
    model = build(SMALL_VGG7, seed=0)
    trainer = Trainer(model, mnist[0], None, TrainConfig(epochs=20, batch_size=16, lr_conv=0.02, lr_dense=0.02,
                                                         schedule="constant"))
    assert trainer.rescue_step is None and trainer.rollback() is None
    trainer._start_loss = None
    for _ in range(2 * RESCUE_EVERY + 3):
        assert trainer.step()["type"] == "step"
    assert trainer.rescue_step == 2 * RESCUE_EVERY     # loss falling: the point moved along
    kept = model.get_weights()
    trainer.set_learning_rates(0.02, 0.02)             # a new segment: its first step keeps its start
    assert trainer.step()["type"] == "step" and trainer.rescue_step == 2 * RESCUE_EVERY + 3
    trainer._block[2] = 1e-3                           # as if the loss had been far lower before: climbing
    for _ in range(RESCUE_EVERY):
        assert trainer.step()["type"] == "step"
    assert trainer.rollback() == 2 * RESCUE_EVERY + 3  # the new segment's start, never a climbing block
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(value, kept[name])


def test_evaluate_refuses_labels_outside_the_model_classes():
    model = build("tiny8x8", seed=0)  # two classes
    images = np.zeros((3, 8, 8, 1), np.float32)
    assert evaluate(model, Dataset(images, np.array([0, 1, 1]))).confusion.sum() == 3
    with pytest.raises(ValueError, match="labels 0..2 do not fit the model's 2 classes"):
        evaluate(model, Dataset(images, np.array([0, 1, 2])))


def test_training_memory_per_image_is_what_the_model_holds_per_image(monkeypatch):
    vgg7 = build("vgg7", seed=0)
    per_image = vgg7.training_bytes_per_image()
    assert 1.4 * 2**20 < per_image < 1.9 * 2**20  # 1.64 MiB: activations, caches, scratch buffers
    assert vgg7.copy(dtype=np.float64).training_bytes_per_image() == 2 * per_image  # the same arrays
    assert build("tiny8x8", seed=0).training_bytes_per_image() < per_image / 50
    # Counted from the model's own arrays: what another thread allocates meanwhile does not enter it.
    hog = []
    real_step = type(vgg7).loss_and_grads

    def step_while_another_thread_allocates(self, x, labels):
        hog.append(np.ones(2**26, np.uint8))  # 64 MiB
        return real_step(self, x, labels)
    monkeypatch.setattr(type(vgg7), "loss_and_grads", step_while_another_thread_allocates)
    assert vgg7.training_bytes_per_image() == per_image and len(hog) == 2


def test_a_batch_beyond_the_available_memory_is_refused_with_one_that_fits(mnist, monkeypatch):
    """Linux grants the memory and then kills the process (and, in the app, every unsaved run)."""
    train = Dataset(np.zeros((2000, 28, 28, 1), np.float32), np.arange(2000) % 10)
    monkeypatch.setattr(trainer_module, "available_memory", lambda: 2**30)  # 1 GiB
    config = TrainConfig(epochs=1, batch_size=1024)
    with pytest.raises(ValueError, match=r"a batch of 1,024 images needs about 2\.0 GiB .* 1\.0 GiB is "
                                         r"available: choose a batch size of at most (\d+)") as refused:
        Trainer(build("vgg7", seed=0), train, None, config)
    fits = int(str(refused.value).rsplit(" ", 1)[1].replace(",", ""))
    assert fits == int(2**30 // (trainer_module.MEMORY_MARGIN * build("vgg7").training_bytes_per_image()))
    Trainer(build("vgg7", seed=0), train, None, TrainConfig(epochs=1, batch_size=fits))  # accepted
    Trainer(build("vgg7", seed=0), train.subset(slice(0, 200)), None, config)  # 200 images: batches of 200
    monkeypatch.setattr(trainer_module, "available_memory", lambda: None)  # unknown (no /proc): no check
    Trainer(build("vgg7", seed=0), train, None, config)
