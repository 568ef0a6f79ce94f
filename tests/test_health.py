"""Gradient health: statistics on hand-made cases, the monitor's bounded history and its warnings."""
import math

import numpy as np
import pytest

from engine import presets
from engine.health import (RATIO_FLOOR, HealthMonitor, layer_health, unit_stats, weight_layers)
from engine.model import Sequential
from engine.optim import make_optimizer

SMALL = {"name": "small", "input_shape": [4], "classes": [0, 1], "loss": "softmax_cross_entropy",
         "layers": [{"type": "Dense", "name": "d1", "units": 3},
                    {"type": "Activation", "name": "r1", "fn": "relu"},
                    {"type": "Dense", "name": "d2", "units": 5},
                    {"type": "Activation", "name": "t2", "fn": "tanh"},
                    {"type": "Dense", "name": "d3", "units": 2}]}


def batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 2, n)


def train(model, monitor, steps, lr=0.1, first_step=1, lr_at=None):
    """Plain SGD steps, each followed by the trainer-style step event the monitor observes."""
    opt = make_optimizer("sgd", model, lr, lr)
    x, y = batch()
    for step in range(first_step, first_step + steps):
        if lr_at is not None:
            opt.lrs.update(conv=lr_at(step), dense=lr_at(step))
        loss, _ = model.loss_and_grads(x, y)
        opt.step()
        monitor.observe({"type": "step", "step": step, "loss": float(loss), "lrs": dict(opt.lrs)}, model)
    return opt


def test_weight_layers_pair_each_layer_with_its_activation():
    model = presets.build("vgg7")
    pairs = [(layer.name, act.fn if act else None) for layer, act in weight_layers(model)]
    assert pairs == [("conv1", "relu"), ("conv2", "relu"), ("conv3", "relu"), ("conv4", "relu"),
                     ("dense1", "tanh"), ("dense2", "arctan"), ("dense3", None)]


def test_all_negative_pre_activations_mean_100_percent_dead_and_no_gradient():
    model = Sequential(SMALL, seed=1, dtype=np.float64)
    model.layer("d1").params["b"][...] = -100.0  # every pre-activation of r1 is negative
    x, y = batch()
    model.loss_and_grads(x, y)
    rows = {r.name: r for r in layer_health(model)}
    assert rows["d1"].dead_share == 1.0
    assert rows["d1"].grad_norm == 0.0  # a dead ReLU passes nothing back
    assert math.isnan(rows["d1"].saturated_share) and math.isnan(rows["d1"].update_ratio)
    assert rows["d2"].activation == "tanh" and math.isnan(rows["d2"].dead_share)
    assert rows["d3"].activation is None and math.isnan(rows["d3"].dead_share)


def test_dead_units_are_channels_never_positive_anywhere_in_the_batch():
    a = np.zeros((2, 3, 3, 4), np.float32)        # (N, H, W, C)
    a[1, 2, 0, 0] = 0.5                              # channel 0 fires once: alive
    a[:, :, :, 3] = 1.0                              # channel 3 fires everywhere
    assert unit_stats("relu", a) == (0.5, pytest.approx(math.nan, nan_ok=True))


@pytest.mark.parametrize("fn, values, expected", [
    ("tanh", [0.99, -0.98, 0.96, 0.0], 0.5),
    ("arctan", [1.53, -1.53, 1.5, -1.52], 0.5),     # 0.97 * pi / 2 = 1.5237
    ("sigmoid", [0.99, 0.01, 0.98, 0.5], 0.5),      # within 0.015 of 0 or 1
])
def test_saturated_share_counts_values_near_an_asymptote(fn, values, expected):
    dead, saturated = unit_stats(fn, np.array([values]))
    assert saturated == expected and math.isnan(dead)


def test_saturated_layer_measured_on_a_model():
    model = Sequential(SMALL, seed=1, dtype=np.float64)
    model.layer("d2").params["b"][...] = 50.0  # pre-activations near 50 drive tanh to 1
    x, y = batch()
    model.loss_and_grads(x, y)
    rows = {r.name: r for r in layer_health(model)}
    assert rows["d2"].saturated_share == 1.0
    assert rows["d2"].grad_norm < 1e-12 * rows["d3"].grad_norm  # saturated tanh passes (almost) nothing


def test_update_ratio_of_plain_sgd_is_lr_times_gradient_over_weights():
    model = Sequential(SMALL, seed=2, dtype=np.float64)
    before = model.get_weights()
    opt = make_optimizer("sgd", model, 0.05, 0.05)
    x, y = batch()
    model.loss_and_grads(x, y)
    opt.step()
    for row in layer_health(model, before):
        prior = math.sqrt(sum(np.sum(before[f"{row.name}.{k}"] ** 2) for k in ("w", "b")))
        assert row.update_ratio == pytest.approx(0.05 * row.grad_norm / prior, rel=1e-9)
        assert row.weight_norm != prior


def test_monitor_warns_when_a_layer_stops_learning_and_explains_why():
    model = Sequential(SMALL, seed=1, dtype=np.float64)
    model.layer("d1").params["b"][...] = -100.0
    monitor = HealthMonitor(model, stall_steps=5)
    train(model, monitor, 4)
    assert monitor.warnings() == []  # not yet: 4 observations
    train(model, monitor, 3, first_step=5)
    warnings = monitor.warnings()
    assert [(w.kind, w.layer, w.step) for w in warnings] == [("stalled", "d1", 1)]
    assert "gradient is zero" in warnings[0].message
    latest_step, rows = monitor.latest()
    assert latest_step == 7 and rows[0].update_ratio == 0.0


def test_a_learning_rate_annealed_by_the_schedule_is_not_a_fault_but_zero_from_the_start_is():
    annealed = Sequential(SMALL, seed=1, dtype=np.float64)
    monitor = HealthMonitor(annealed, stall_steps=3)
    train(annealed, monitor, 10, lr_at=lambda step: 0.1 if step <= 2 else 1e-12)
    assert monitor.history()["update_ratio"][-1].max() < RATIO_FLOOR
    assert monitor.warnings() == []

    # the step schedule's end: 0.1**2 of the peak is 0.010000000000000002, a hair above 1%: still annealed
    stepped = Sequential(SMALL, seed=1, dtype=np.float64)
    monitor = HealthMonitor(stepped, stall_steps=3)
    opt = make_optimizer("sgd", stepped, 1e-12, 1e-12)  # steps too small to see, as at a schedule's end
    x, y = batch()
    for step in range(1, 8):
        lr = 0.1 if step <= 2 else 0.1 * 0.1 ** 2
        stepped.loss_and_grads(x, y)
        opt.step()
        monitor.observe({"type": "step", "step": step, "loss": 1.0, "lrs": {"conv": lr, "dense": lr}}, stepped)
    assert monitor.history()["update_ratio"][-1].max() < RATIO_FLOOR and monitor.warnings() == []

    frozen = Sequential(SMALL, seed=1, dtype=np.float64)
    monitor = HealthMonitor(frozen, stall_steps=3)
    train(frozen, monitor, 3, lr=0.0)
    assert [w.layer for w in monitor.warnings()] == ["d1", "d2", "d3"]
    assert all("learning rate is 0" in w.message for w in monitor.warnings())


def test_a_divergence_warns_while_the_run_is_held_and_is_history_once_it_went_on():
    """The red "try a lower learning rate" stayed up over a run that had recovered and finished at 95.8%."""
    model = Sequential(SMALL, seed=1, dtype=np.float64)
    monitor = HealthMonitor(model)
    train(model, monitor, 2)
    assert monitor.warnings() == []
    message = "training diverged at step 3: the loss reached 812 (limit 100); try a lower learning rate"
    monitor.observe({"type": "error", "step": 3, "cause": "the loss reached 812 (limit 100)", "message": message},
                    model)
    (warning,) = monitor.warnings()
    assert warning.kind == "diverged" and warning.step == 3 and warning.message == "T" + message[1:]
    assert warning.layer is None
    monitor.observe({"type": "error", "step": 3, "cause": "the loss became nan",  # the rescue diverged too
                     "message": "training diverged at step 3: the loss became nan; try a lower learning rate"}, model)
    (warning,) = monitor.warnings()
    assert "the loss became nan" in warning.message  # what happened last, not the first cause
    message = "training diverged at step 3: the loss reached 812 (limit 100); try a lower learning rate"
    monitor.observe({"type": "error", "step": 3, "cause": "the loss reached 812 (limit 100)", "message": message},
                    model)
    train(model, monitor, 2, first_step=3)  # the run goes on with a lower learning rate: step 3 again
    (warning,) = monitor.warnings()
    assert warning.kind == "went_on" and warning.step == 3
    assert warning.message == "Training diverged at step 3 (the loss reached 812 (limit 100)) and went on from step 3."
    monitor.observe({"type": "error", "step": 9, "cause": "the loss became nan", "message": "training diverged "
                     "at step 9: the loss became nan; try a lower learning rate"}, model)
    (warning,) = monitor.warnings()  # a new divergence is the one that counts
    assert warning.kind == "diverged" and warning.step == 9


def test_the_update_ratio_after_a_rollback_starts_from_the_restored_weights():
    """"Lower learning rates and continue" puts earlier weights back: the next step's ratio compares
    with them, not with the wrecked weights of the last step (that showed 1.0 instead of ~1e-3)."""
    model = Sequential(SMALL, seed=3, dtype=np.float64)
    monitor = HealthMonitor(model)
    kept = model.get_weights()
    train(model, monitor, 2, lr=50.0)  # wrecks the weights
    model.set_weights(kept)            # Trainer.rollback
    monitor.weights_restored(model, 2)
    x, y = batch()
    model.loss_and_grads(x, y)
    make_optimizer("sgd", model, 0.01, 0.01).step()
    assert monitor.observe({"type": "step", "step": 3, "loss": 1.0, "lrs": {"conv": 0.01, "dense": 0.01}}, model)
    for row in monitor.latest()[1]:
        prior = math.sqrt(sum(np.sum(kept[f"{row.name}.{k}"] ** 2) for k in ("w", "b")))
        assert row.update_ratio == pytest.approx(0.01 * row.grad_norm / prior, rel=1e-9)


def test_an_unobserved_step_leaves_no_ratio_rather_than_one_against_stale_weights():
    """The update ratio is one step's move: after a step the monitor did not see, the weights it
    kept are two steps old, and a ratio against them would overstate the step (and could mask a stall)."""
    model = Sequential(SMALL, seed=4, dtype=np.float64)
    monitor = HealthMonitor(model)
    train(model, monitor, 1)                       # step 1 observed: its weights kept for step 2
    for p in model.params().values():              # step 2 changes the weights unseen
        p *= 1.5
    train(model, monitor, 1, first_step=3)
    assert all(math.isnan(row.update_ratio) for row in monitor.latest()[1])
    train(model, monitor, 1, first_step=4)          # seen again step after step: measured again
    assert all(0 < row.update_ratio < 1 for row in monitor.latest()[1])


def test_a_layer_whose_weights_are_all_zero_has_no_update_ratio():
    """Zero weights give no scale to compare a step with: "no evidence" (NaN), not a ratio of 0 that
    would count towards a "stopped learning" warning."""
    model = Sequential(SMALL, seed=5, dtype=np.float64)
    before = {name: np.zeros_like(p) for name, p in model.params().items()}
    model.loss_and_grads(*batch())
    assert all(math.isnan(row.update_ratio) for row in layer_health(model, before))


def test_history_is_bounded_evenly_spaced_and_holds_true_one_step_ratios():
    model = Sequential(SMALL, seed=3, dtype=np.float64)
    monitor = HealthMonitor(model, capacity=8)
    opt = make_optimizer("sgd", model, 0.05, 0.05)
    x, y = batch()
    expected = {}
    for step in range(1, 101):
        before = model.get_weights()
        model.loss_and_grads(x, y)
        opt.step()
        if monitor.observe({"type": "step", "step": step, "loss": 1.0, "lrs": dict(opt.lrs)}, model):
            expected[step] = [r.update_ratio for r in layer_health(model, before)]
    history = monitor.history()
    steps = history["step"]
    assert len(steps) <= 8 and monitor._buffer.nbytes == 8 * (8 + 5 * 3 * 8)
    assert steps[0] == 1 and len(set(np.diff(steps))) == 1  # first step kept, even spacing
    assert steps[-1] > 100 - monitor.stride
    for i, step in enumerate(steps):
        np.testing.assert_allclose(history["update_ratio"][i], expected[step], rtol=1e-12)
    assert history["grad_norm"].shape == (len(steps), 3)


def test_activation_shares_cover_the_whole_batch_when_it_is_split_into_shards():
    """With data-parallel shards the model's own layers run only the first shard; the statistics
    must come from every shard, i.e. not change with the thread count."""
    from engine import parallel

    model = presets.build("vgg7", seed=0)
    model.params()["conv1.b"][...] = -0.5   # conv1's units fire only on bright input ...
    x = np.zeros((64, 28, 28, 1), np.float32)
    x[32:] = 1.0                           # ... which only the second half of the batch has
    labels = np.zeros(64, np.int64)
    shares = {}
    for threads in (1, 2):
        with parallel.using_threads(threads):
            model.loss_and_grads(x, labels)
            shares[threads] = [(r.dead_share, r.saturated_share) for r in layer_health(model)]
    assert model.trained_twins("relu1")[0] is model.layer("relu1") and len(model.trained_twins("relu1")) == 2
    assert shares[2][0][0] < 1.0  # some conv1 units fire (on the bright half)
    np.testing.assert_allclose(shares[2], shares[1], rtol=1e-6)


def stalling_run(model, monitor, first_step, steps):
    """Steps in which d1 learns nothing (lr 0 on its weights) while the rest learns."""
    opt = make_optimizer("sgd", model, 0.1, 0.1)
    x, y = batch()
    for step in range(first_step, first_step + steps):
        before = model.layer("d1").params["w"].copy(), model.layer("d1").params["b"].copy()
        loss, _ = model.loss_and_grads(x, y)
        opt.step()
        model.layer("d1").params["w"][...], model.layer("d1").params["b"][...] = before
        monitor.observe({"type": "step", "step": step, "loss": float(loss), "lrs": dict(opt.lrs)}, model)


def test_a_monitor_saved_mid_run_continues_exactly_like_the_uninterrupted_one():
    model = Sequential(SMALL, seed=2, dtype=np.float64)
    monitor = HealthMonitor(model, capacity=8, stall_steps=4)
    stalling_run(model, monitor, 1, 12)  # history thinned (12 > 8), d1 counted as stalled
    monitor.observe({"type": "error", "step": 13, "cause": "NaN", "message": "training diverged at step 13: NaN"},
                    model)
    state = monitor.state_dict()
    twin = Sequential(SMALL, seed=9, dtype=np.float64)
    twin.set_weights(model.get_weights())
    restored = HealthMonitor.from_state_dict(state, twin, 12)
    # repr: the rows hold NaN where a statistic does not apply, and NaN != NaN
    assert restored.warnings() == monitor.warnings() and repr(restored.latest()) == repr(monitor.latest())
    assert [w.kind for w in monitor.warnings()] == ["diverged", "stalled"]

    stalling_run(model, monitor, 13, 9)
    stalling_run(twin, restored, 13, 9)
    for name, values in monitor.history().items():
        np.testing.assert_array_equal(restored.history()[name], values, err_msg=name)
    assert restored.stride == monitor.stride > 1 and restored.warnings() == monitor.warnings()
    assert repr(restored.latest()) == repr(monitor.latest())


def test_a_reopened_run_whose_schedule_annealed_its_rate_is_still_not_stalled():
    """The peak rates are kept: against the annealed rate alone the tiny steps read as "stopped learning"."""
    model = Sequential(SMALL, seed=1, dtype=np.float64)
    monitor = HealthMonitor(model, stall_steps=3)

    def lr_at(step):
        return 0.1 if step <= 2 else 1e-12
    train(model, monitor, 4, lr_at=lr_at)
    restored = HealthMonitor.from_state_dict(monitor.state_dict(), model, 4)
    train(model, restored, 4, first_step=5, lr_at=lr_at)
    assert restored.history()["update_ratio"][-1].max() < RATIO_FLOOR and restored.warnings() == []


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(layers=["d1", "d2"]), "layers .* are not the model's"),
    (lambda s: s["history"]["grad_norm"].__setitem__((0, 0), -1.0), "history grad_norm: needs 4 x 3 numbers >= 0"),
    (lambda s: s["history"]["step"].__setitem__(1, 1), "history steps must increase within 1..6"),
    (lambda s: s["history"].update(step=s["history"]["step"] + 10), "history steps must increase within 1..6"),
    (lambda s: s["history"].pop("dead_share"), "history needs 'step' and"),
    (lambda s: s["low"].pop("d2"), "low: needs a count >= 0 for every layer"),
    (lambda s: s["low"].update(d2=3), "low_since: needs the step of every layer counted as low"),
    (lambda s: s["peak_lr"].update(dense=float("nan")), "peak_lr: needs a finite rate"),
    (lambda s: s.update(divergence={"step": "3"}), "divergence: needs its step, message, cause and the step"),
    (lambda s: s.update(divergence={"step": 3, "message": "m", "cause": "c", "went_on": 9}), "divergence: needs"),
    (lambda s: s.update(halvings=True), "bad halvings"),
    (lambda s: s.update(halvings=-1), "bad halvings"),  # a stride of half a step
    (lambda s: s.update(halvings=63), "bad halvings"),
    (lambda s: s.update(capacity=7), "capacity must be an even whole number"),
    (lambda s: s.update(stall_steps=0), "stall_steps must be a whole number >= 1"),
    (lambda s: s.pop("low"), "incomplete state"),
])
def test_an_inconsistent_monitor_state_is_refused_naming_the_part(change, message):
    model = Sequential(SMALL, seed=2, dtype=np.float64)
    monitor = HealthMonitor(model, capacity=8)
    train(model, monitor, 4)
    state = monitor.state_dict()
    state["history"] = {k: v.copy() for k, v in state["history"].items()}
    change(state)
    with pytest.raises(ValueError, match=message):
        HealthMonitor.from_state_dict(state, model, 6)
