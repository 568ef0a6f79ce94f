"""engine.gradcheck and `python -m engine gradcheck`: applied gradients vs finite differences."""
import json
import os

import numpy as np
import pytest

from engine import cli
from engine.gradcheck import check_entries, check_model, float64_copy, param_errors, sample_entries
from engine.model import Sequential
from engine.presets import build


def gradcheck_json(capsys, *args, status=0):
    assert cli.main(["gradcheck", *args]) == status
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_correct_backward_passes_everywhere(capsys):
    result = gradcheck_json(capsys, "--preset", "vgg7", "--seed", "0")
    assert result["variant"] is None
    model = build("vgg7")
    assert list(result["layers"]) == list(model.params())  # every parameter, in layer order
    assert max(result["layers"].values()) < 1e-4
    assert result["failed"] == []


def test_cli_reports_how_many_entries_each_parameter_had_checked(capsys):
    """Asking for 40 entries per parameter checks 40 of every parameter that has as many and all the
    entries of smaller ones (tiny8x8's dense3.b has one), less those left out on a kink."""
    result = gradcheck_json(capsys, "--preset", "tiny8x8", "--seed", "0", "--per-param", "40")
    sizes = {name: p.size for name, p in build("tiny8x8").params().items()}
    checked = result["entries_checked"]
    assert result["entries_per_param"] == 40 and list(checked) == list(sizes)
    assert checked["dense3.b"] == 1 and checked["dense3.w"] == 36
    assert all(0 < checked[name] <= min(40, size) for name, size in sizes.items())
    assert sum(min(40, size) - checked[name] for name, size in sizes.items()) == result["kinks"]


def test_cli_exits_1_when_the_correct_backward_fails_the_tolerance(capsys):
    """A tolerance below float64 rounding makes the correct backward 'fail': a bug report, status 1
    (a --variant's failures are the experiment's point and exit 0, see below)."""
    result = gradcheck_json(capsys, "--preset", "tiny8x8", "--seed", "0", "--tolerance", "1e-30", status=1)
    assert result["failed"] == [name for name, err in result["layers"].items() if err >= 1e-30] != []


def test_cli_checks_trained_weights_whose_gradients_are_tiny(capsys):
    """On well-classified images the pretrained model's gradients are ~1e-7: the finite-difference
    step must keep rounding noise far below that."""
    weights = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "weights",
                           "vgg7.npz")
    result = gradcheck_json(capsys, "--weights", weights, "--seed", "0")
    assert max(result["layers"].values()) < 1e-4


def test_cli_broken_update_fails_on_conv2_only(capsys):
    result = gradcheck_json(capsys, "--preset", "vgg7", "--variant", "broken_update", "--seed", "0")
    assert result["variant"] == "broken_update"
    assert result["failed"] == ["conv2.w"]
    errors = result["layers"]
    assert errors["conv2.w"] > 0.1
    assert max(v for k, v in errors.items() if k != "conv2.w") < 1e-4


def test_transposed_pool_fails_below_the_pooling_layers(capsys):
    result = gradcheck_json(capsys, "--preset", "tiny8x8", "--variant", "transposed_pool", "--seed", "1")
    errors = result["layers"]
    assert min(errors["conv1.w"], errors["conv2.w"]) > 1e-2  # the gradient reaches them through the pools
    assert max(v for k, v in errors.items() if k.startswith("dense")) < 1e-4


TWO_LAYER = {"name": "two", "input_shape": [2, 2, 1], "classes": [0, 1, 2], "loss": "softmax_cross_entropy",
             "layers": [{"type": "Conv2D", "name": "conv", "filters": 2, "kernel": 2, "padding": "VALID"},
                        {"type": "Activation", "name": "relu", "fn": "relu"},
                        {"type": "Flatten", "name": "flatten"},
                        {"type": "Dense", "name": "dense", "units": 3}]}


def test_chosen_entries_match_a_hand_derived_gradient():
    """conv: 2x2 VALID on a 2x2 image, i.e. z = x . w[:, :, 0, f] + b[f]; the dense layer's gradient
    is relu(z)^T (softmax(logits) - onehot) / N, which the test computes independently."""
    model = Sequential(TWO_LAYER, seed=3)
    x = np.random.default_rng(0).uniform(0.1, 1.0, (2, 2, 2, 1))
    labels = np.array([2, 0])
    rows = check_entries(model, x, labels, [("dense.w", (1, 2)), ("dense.w", 0), ("dense.b", (1,))])
    assert [r.param for r in rows] == ["dense.w", "dense.w", "dense.b"]
    assert [r.index for r in rows] == [(1, 2), (0, 0), (1,)]
    p = {k: v.astype(np.float64) for k, v in model.params().items()}
    z = x.reshape(2, 4) @ p["conv.w"].reshape(4, 2) + p["conv.b"]
    a = np.maximum(z, 0)
    logits = a @ p["dense.w"] + p["dense.b"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    d = e / e.sum(axis=1, keepdims=True)
    d[np.arange(2), labels] -= 1
    d /= 2
    expected = [(a.T @ d)[1, 2], (a.T @ d)[0, 0], d.sum(axis=0)[1]]
    np.testing.assert_allclose([r.analytic for r in rows], expected, rtol=1e-6)
    np.testing.assert_allclose([r.numeric for r in rows], expected, rtol=1e-6)
    assert all(r.rel_err < 1e-6 and not r.kink for r in rows)


def test_a_kink_at_the_checked_point_is_flagged_not_reported_as_a_bug():
    """A zero input and zero biases put every ReLU input exactly at 0: the conv bias sits on a kink."""
    model = Sequential(TWO_LAYER, seed=0)
    rows = check_entries(model, np.zeros((1, 2, 2, 1)), np.array([1]), [("conv.b", 0), ("dense.b", 0)])
    assert rows[0].kink and not rows[1].kink
    errors = param_errors(rows)
    assert np.isnan(errors["conv.b"]) and errors["dense.b"] < 1e-6
    jittered = check_entries(model, np.zeros((1, 2, 2, 1)), np.array([1]), [("conv.b", 0)], bias_jitter=0.1)
    assert not jittered[0].kink and jittered[0].rel_err < 1e-6


def test_rows_of_a_huge_loss_carry_its_rounding_noise():
    """Weights of a diverged run give a loss of thousands: the finite differences carry ~1e-16·L/ε of
    rounding, more than small gradients, and a correct backward 'failed' there. Such rows are within
    their noise; a wrong backward's rows are far outside it."""
    from engine.data import load_bundled_mnist
    from engine.trainer import Trainer, TrainConfig

    train, val = load_bundled_mnist()
    model = build("vgg7", seed=0)
    trainer = Trainer(model, train.subset(slice(0, 4500, 9)), None,
                      TrainConfig(epochs=1, lr_conv=100, lr_dense=100, schedule="constant"))
    while trainer.step()["type"] != "error":  # lr 100: refused at step 3, the wrecked weights stay
        pass
    x, y = val.x[:8], val.y[:8]
    rows = check_entries(model, x, y, [("dense2.w", i) for i in range(0, 8192, 409)])
    loss = float64_copy(model).loss_and_grads(x.astype(np.float64), y)[0]
    assert loss > 100 and all(r.noise == pytest.approx(10 * np.finfo(float).eps * loss / r.eps) for r in rows)
    assert any(r.rel_err > 1e-4 for r in rows)  # what the view showed as FAIL
    assert all(r.rel_err < 1e-4 or r.within_noise for r in rows)
    fresh = build("vgg7", seed=1)  # at an ordinary loss the noise hides no real failure
    fresh.variant = "broken_update"
    broken = check_entries(fresh, x, y, [("conv2.w", i) for i in range(0, 2304, 230)], bias_jitter=0.01)
    assert sum(not r.within_noise and r.rel_err > 1e-4 for r in broken) >= 5


def test_the_checked_model_is_left_untouched():
    model = build("tiny8x8", seed=0)
    model.variant = "transposed_pool"
    before = model.get_weights()
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    errors, rows = check_model(model, x, np.array([0, 1, 1]), per_param=2, bias_jitter=0.01)
    assert set(errors) == set(before) and len(rows) == sum(min(2, v.size) for v in before.values())
    assert model.variant == "transposed_pool" and model.dtype == np.float32
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[name])
    twin = float64_copy(model)
    assert twin.dtype == np.float64 and twin.variant == "transposed_pool"


def test_sample_entries_spread_without_repeats():
    model = build("tiny8x8", seed=0)
    params = model.params()
    per = sample_entries(model, per_param=3, rng=np.random.default_rng(1))
    assert len(per) == len(set(per)) == sum(min(3, p.size) for p in params.values())  # all of a smaller one
    total = sample_entries(model, total=20, rng=np.random.default_rng(1))
    assert len(total) == len(set(total)) == 20
    assert all(name in params and len(index) == params[name].ndim for name, index in total)
    assert len({name for name, _ in total}) > 5  # drawn per parameter first: biases are represented
    with pytest.raises(ValueError):
        sample_entries(model)


@pytest.mark.parametrize("preset", ["vgg7", "tiny8x8"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_sampling_the_whole_model_checks_every_parameter(preset, seed):
    """20 draws over VGG-7's 14 parameters left dense1.w and dense1.b unchecked in a shipped screenshot."""
    model = build(preset, seed=0)
    entries = sample_entries(model, total=20, rng=np.random.default_rng(seed))
    assert len(entries) == len(set(entries)) == 20
    assert {name for name, _ in entries} == set(model.params())
    assert entries == sample_entries(model, total=20, rng=np.random.default_rng(seed))  # same seed, same draw
    order = list(model.params())  # grouped by parameter in model order (not by name), each group sorted
    assert entries == sorted(entries, key=lambda entry: (order.index(entry[0]), entry[1]))


def test_sampling_fewer_entries_than_parameters_takes_one_of_each_chosen_parameter():
    model = build("tiny8x8", seed=0)
    entries = sample_entries(model, total=4, rng=np.random.default_rng(5))
    names = [name for name, _ in entries]
    assert len(set(names)) == 4 and names == [name for name in model.params() if name in names]
