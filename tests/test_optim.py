"""engine.optim: per-group learning rates, momentum, weight decay, Adam, state save/restore,
and the broken_update variant as seen by an optimiser step."""

import copy

import numpy as np
import pytest

from engine.optim import SGD, Adam, make_optimizer
from engine.presets import build, get_preset

SMALL = get_preset("vgg7", conv1=3, conv2=3, conv3=4, conv4=4, dense1=10, dense2=8)


def data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, size=n)


def step(model, opt, seed):
    model.loss_and_grads(*data(seed=seed))
    opt.step()


def test_sgd_uses_the_group_learning_rates():
    model = build(SMALL, dtype=np.float64)
    opt = make_optimizer("sgd", model, lr_conv=0.1, lr_dense=0.01)
    before = model.get_weights()
    model.loss_and_grads(*data())
    grads = {k: g.copy() for k, g in model.grads().items()}
    opt.step()
    for name, value in model.params().items():
        lr = 0.1 if name.startswith("conv") else 0.01
        np.testing.assert_allclose(value, before[name] - lr * grads[name], rtol=1e-14, atol=1e-15)
    opt.lrs["conv"] = 0.0  # a schedule may change the rates between steps
    frozen = model.params()["conv1.w"].copy()
    step(model, opt, 1)
    np.testing.assert_array_equal(model.params()["conv1.w"], frozen)


@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("lrs, decay, named", [
    ((-0.1, 0.1), 0.0, "the conv learning rate"), ((0.1, -0.1), 0.0, "the dense learning rate"),
    ((0.1, 0.1), -1e-4, "weight_decay"), ((float("nan"), 0.1), 0.0, "the conv learning rate"),
    ((0.1, float("inf")), 0.0, "the dense learning rate"), ((0.1, 0.1), float("nan"), "weight_decay"),
    (("fast", 0.1), 0.0, "the conv learning rate")])
def test_negative_or_non_finite_learning_rates_or_decay_are_refused(name, lrs, decay, named):
    """A negative rate would climb the loss (gradient ascent), a NaN or infinite one (or decay) turns the
    weights into NaN in one step; TrainConfig guards the app and CLI, the optimisers guard everyone else."""
    with pytest.raises(ValueError, match=f"^{named} must be"):
        make_optimizer(name, build(SMALL), lr_conv=lrs[0], lr_dense=lrs[1], weight_decay=decay)


@pytest.mark.parametrize("make, named", [
    (lambda model: SGD(model, 0.1, 0.1, momentum=1.0), "momentum"),
    (lambda model: SGD(model, 0.1, 0.1, momentum=float("nan")), "momentum"),
    (lambda model: Adam(model, 0.1, 0.1, beta1=1.0), "beta1"),
    (lambda model: Adam(model, 0.1, 0.1, beta2=1.0), "beta2"),
    (lambda model: Adam(model, 0.1, 0.1, beta2=-0.5), "beta2"),
    (lambda model: Adam(model, 0.1, 0.1, eps=0.0), "eps")])
def test_settings_that_would_turn_the_weights_into_nan_are_refused(make, named):
    with pytest.raises(ValueError, match=f"^{named} must be a finite number"):
        make(build(SMALL))


def test_a_rate_set_between_steps_is_checked_and_a_bad_state_is_refused_untouched():
    model = build(SMALL)
    opt = SGD(model, 0.1, 0.1, momentum=0.9)
    before = model.get_weights()
    opt.lrs["dense"] = float("nan")  # e.g. a schedule gone wrong
    with pytest.raises(ValueError, match="the dense learning rate must be a finite number"):
        opt.step()
    for name, value in model.params().items():
        np.testing.assert_array_equal(value, before[name])
    opt.lrs = {"conv": 0.1, "dense": 0.1}
    good = opt.state_dict()
    for edit, message in [(lambda s: s["hyper"].update(momentum=5.0), "momentum must be"),
                          (lambda s: s["hyper"].update(lr=0.1), "settings"),
                          (lambda s: s.update(lrs={"conv": 0.1}), "keys"),
                          (lambda s: s.update(t=-3), "steps")]:
        state = opt.state_dict()
        state["buffers"]["velocity"]["conv1.w"][...] = 7.0
        edit(state)
        with pytest.raises(ValueError, match=message):
            opt.load_state_dict(state)
        assert opt.state_dict()["hyper"] == good["hyper"] and opt.lrs == good["lrs"]
        assert not np.any(opt.buffers["velocity"]["conv1.w"] == 7.0)  # nothing half-loaded


def test_sgd_momentum_and_weight_decay_follow_the_recursion():
    model = build(SMALL, dtype=np.float64)
    opt = make_optimizer("sgd", model, lr_conv=0.05, lr_dense=0.02, momentum=0.9, weight_decay=0.01)
    ref = model.get_weights()
    velocity = {k: np.zeros_like(v) for k, v in ref.items()}
    for seed in range(3):
        model.loss_and_grads(*data(seed=seed))
        grads = {k: g.copy() for k, g in model.grads().items()}
        opt.step()
        for name in ref:
            g = grads[name] + (0.01 * ref[name] if name.endswith(".w") else 0)  # biases not decayed
            velocity[name] = 0.9 * velocity[name] + g
            ref[name] = ref[name] - (0.05 if name.startswith("conv") else 0.02) * velocity[name]
    for name, value in model.params().items():
        np.testing.assert_allclose(value, ref[name], rtol=1e-12, atol=1e-14)


def test_adam_matches_the_textbook_update():
    model = build(SMALL, dtype=np.float64)
    opt = make_optimizer("adam", model, lr_conv=1e-3, lr_dense=3e-3)
    ref = model.get_weights()
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v = {k: np.zeros_like(x) for k, x in ref.items()}
    for t in range(1, 4):
        model.loss_and_grads(*data(seed=t))
        grads = {k: g.copy() for k, g in model.grads().items()}
        opt.step()
        for name in ref:
            g = grads[name]
            m[name] = 0.9 * m[name] + 0.1 * g
            v[name] = 0.999 * v[name] + 0.001 * g * g
            m_hat, v_hat = m[name] / (1 - 0.9 ** t), v[name] / (1 - 0.999 ** t)
            lr = 1e-3 if name.startswith("conv") else 3e-3
            ref[name] = ref[name] - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    for name, value in model.params().items():
        np.testing.assert_allclose(value, ref[name], rtol=1e-10, atol=1e-13)


def test_adam_applies_weight_decay_to_weights_not_biases():
    """L2 decay in the gradient: with every loss gradient 0, g = wd * w and Adam's first step is
    lr * g / (|g| + eps), about lr against the weight's sign; biases do not move."""
    model = build(SMALL, dtype=np.float64)
    before = {k: v.copy() for k, v in model.params().items()}
    for g in model.grads().values():
        g[...] = 0.0
    make_optimizer("adam", model, lr_conv=1e-3, lr_dense=1e-3, weight_decay=0.1).step()
    for name, value in model.params().items():
        g = 0.1 * before[name]
        expected = before[name] - 1e-3 * g / (np.abs(g) + 1e-8) if name.endswith(".w") else before[name]
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,kwargs", [("sgd", {"momentum": 0.8, "weight_decay": 1e-3}), ("adam", {})])
def test_state_dict_resumes_bit_identically(name, kwargs):
    model = build(SMALL)
    opt = make_optimizer(name, model, 0.01, 0.005, **kwargs)
    for seed in range(2):
        step(model, opt, seed)
    weights, state = model.get_weights(), copy.deepcopy(opt.state_dict())
    for seed in range(2, 4):
        step(model, opt, seed)

    resumed = build(SMALL, seed=99)
    resumed.set_weights(weights)
    opt2 = make_optimizer(name, resumed, 1.0, 1.0)
    opt2.load_state_dict(state)
    assert opt2.lrs == {"conv": 0.01, "dense": 0.005} and opt2.t == 2
    for seed in range(2, 4):
        step(resumed, opt2, seed)
    for key, value in model.params().items():
        assert resumed.params()[key].tobytes() == value.tobytes(), key


def test_state_dict_is_checked():
    model = build(SMALL)
    sgd = make_optimizer("sgd", model, 0.1, 0.1, momentum=0.5)
    with pytest.raises(ValueError, match="adam"):
        sgd.load_state_dict(make_optimizer("adam", model, 0.1, 0.1).state_dict())
    other = make_optimizer("sgd", build(get_preset("vgg7", conv1=3, conv2=3, conv3=4, conv4=4, dense1=11,
                                                   dense2=8)), 0.1, 0.1, momentum=0.5)
    for buffer in sgd.buffers["velocity"].values():
        buffer[...] = 7.0
    with pytest.raises(ValueError, match=r"optimiser state velocity\['dense1.w'\] has shape \(196, 11\)"):
        sgd.load_state_dict(other.state_dict())
    # refused before anything was written (conv1.w's shapes match and would have been copied first)
    assert all(np.all(buffer == 7.0) for buffer in sgd.buffers["velocity"].values())
    for bad in [("rmsprop", {}), ("sgd", {"momentum": 1.5}), ("sgd", {"weight_decay": -1})]:
        with pytest.raises(ValueError):
            make_optimizer(bad[0], model, 0.1, 0.1, **bad[1])


def test_float32_parameters_stay_float32_and_in_place():
    model = build(SMALL)
    live = model.params()
    opt = make_optimizer("adam", model, 1e-3, 1e-3, weight_decay=1e-4)
    step(model, opt, 0)
    for name, value in model.params().items():
        assert value is live[name] and value.dtype == np.float32


@pytest.mark.parametrize("channels", [1, 2])
def test_broken_update_moves_conv2_along_conv1s_gradient(channels):
    """Seed 004's typo: with the same seed and batch, every parameter takes the same step as
    with correct backprop except conv2.w, which steps along conv1.w's gradient (averaged over
    conv1's input channels when there are several, then repeated over conv2's)."""
    spec = copy.deepcopy(SMALL)
    spec["input_shape"] = [28, 28, channels]
    right, wrong = build(spec, seed=4), build(spec, seed=4)
    wrong.variant = "broken_update"
    before = right.get_weights()
    x, y = data()
    x = np.concatenate([x, x[::-1]], axis=3)[..., :channels]  # the channels differ
    for model in (right, wrong):
        model.loss_and_grads(x, y)
        make_optimizer("sgd", model, 0.1, 0.1).step()
    g1 = wrong.grads()["conv1.w"]                                    # (3, 3, channels, 3)
    direction = sum(g1[:, :, c:c + 1] for c in range(channels)) / channels  # (3, 3, 1, 3)
    expected = before["conv2.w"] - 0.1 * np.broadcast_to(direction, (3, 3, 3, 3))  # over conv2's inputs
    np.testing.assert_allclose(wrong.params()["conv2.w"], expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(wrong.params()["conv2.w"], right.params()["conv2.w"])
    for name, value in right.params().items():
        if name != "conv2.w":
            np.testing.assert_array_equal(wrong.params()[name], value)


@pytest.mark.parametrize("variant", [None, "transposed_pool"])
def test_tiny8x8_learns_a_toy_task_with_either_pool_backward(variant):
    """Seed 002 saw both the right and the transposed pooling backward train; a
    vertical-bar-versus-ring toy task must be learned either way."""
    rng = np.random.default_rng(0)
    ring = np.zeros((8, 8))
    ring[1:7, 1:7], ring[2:6, 2:6] = 1, 0
    bar = np.zeros((8, 8))
    bar[1:7, 3:5] = 1
    y = rng.integers(0, 2, size=64)
    x = np.where(y[:, None, None] == 1, bar, ring) + 0.1 * rng.standard_normal((64, 8, 8))
    x = x[..., None].astype(np.float32)
    model = build("tiny8x8", seed=1)
    model.variant = variant
    opt = make_optimizer("sgd", model, lr_conv=0.5, lr_dense=0.5, momentum=0.9)
    first, _ = model.loss_and_grads(x, y)
    for _ in range(150):
        loss, _ = model.loss_and_grads(x, y)
        opt.step()
    assert loss < 0.2 * first
    assert (model.predict(x) == y).mean() == 1.0
