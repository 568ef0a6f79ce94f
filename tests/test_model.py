"""engine.model and engine.presets: whole-model gradients, names, variants, save/load."""

import json
import os
import zipfile

import numpy as np
import pytest

from engine import model as M
from engine.layers import Dropout
from engine.optim import SGD
from engine.presets import PRESETS, build, get_preset, preset_widths
from gradcheck import check_grad

SMALL_VGG7 = dict(conv1=3, conv2=4, conv3=4, conv4=5, dense1=12, dense2=8)


def batch(model, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *model.input_shape))
    y = rng.integers(0, len(model.classes), size=n)
    return x, y


def fixed_dropout(model):
    """Reset every dropout generator so repeated forwards draw identical masks."""
    for layer in model.layers:
        if isinstance(layer, Dropout):
            layer.rng = np.random.default_rng(11)


# --------------------------------------------------------------------------- presets


def test_vgg7_matches_the_issue():
    model = build("vgg7")
    rows = model.summary_rows()
    weight_rows = [r for r in rows if r["params"]]
    assert [(r["name"], r["output_shape"]) for r in weight_rows] == [
        ("conv1", (28, 28, 16)), ("conv2", (28, 28, 16)), ("conv3", (14, 14, 32)), ("conv4", (14, 14, 32)),
        ("dense1", (128,)), ("dense2", (64,)), ("dense3", (10,))]
    assert model.layer("dense1").params["w"].shape == (1568, 128)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("AvgPool2D") == 2 and "MaxPool2D" not in kinds
    fns = [l.fn for l in model.layers if l.kind == "Activation"]
    assert fns == ["relu"] * 4 + ["tanh", "arctan"]
    assert all(l.padding == "SAME" for l in model.layers if l.kind == "Conv2D")
    assert model.loss == "softmax_cross_entropy" and model.classes == list(range(10))


def test_tiny8x8_and_seed003_match_their_articles():
    tiny = build("tiny8x8")
    assert tiny.input_shape == (8, 8, 1) and tiny.loss == "l2" and tiny.classes == [0, 1]
    assert [l.params["w"].shape for l in tiny.layers if l.kind == "Dense"] == [(16, 28), (28, 36), (36, 1)]
    assert [l.filters for l in tiny.layers if l.kind == "Conv2D"] == [2, 4]
    assert [l.kind for l in tiny.layers].count("MaxPool2D") == 2
    fns = [l.fn for l in tiny.layers if l.kind == "Activation"]
    assert fns[-1] == "sigmoid" and len(set(fns)) == len(fns) == 5  # each weight layer its own activation
    seed003 = build("seed003")
    kinds = [l.kind for l in seed003.layers]
    assert kinds == ["Conv2D", "Activation", "MaxPool2D", "Dropout", "Flatten", "Dense"]
    assert seed003.layer("drop1").rate == 0.25 and seed003.layer("conv1").params["w"].shape == (3, 3, 1, 32)
    assert seed003.layer("conv1").padding == "SAME" and seed003.layer("dense1").params["w"].shape == (6272, 10)


def test_widths_are_parameters():
    spec = get_preset("vgg7", conv1=8, dense2=32)
    model = build(spec)
    assert model.layer("conv1").params["w"].shape == (3, 3, 1, 8)
    assert model.layer("conv2").params["w"].shape == (3, 3, 8, 16)
    assert model.layer("dense3").params["w"].shape == (32, 10)
    assert preset_widths("tiny8x8") == {"conv1": 2, "conv2": 4, "dense1": 28, "dense2": 36}
    assert get_preset("vgg7") == PRESETS["vgg7"] and get_preset("vgg7") is not PRESETS["vgg7"]
    json.dumps(spec)
    for bad in [{"conv9": 3}, {"conv1": 0}, {"conv1": 2.5}]:
        with pytest.raises(ValueError):
            get_preset("vgg7", **bad)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("resnet")


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("preset,widths", [("vgg7", SMALL_VGG7), ("tiny8x8", {}), ("seed003", {"conv1": 3})])
def test_whole_model_gradients(preset, widths):
    model = build(get_preset(preset, **widths), seed=1, dtype=np.float64)
    x, y = batch(model, 3)
    fixed_dropout(model)
    model.loss_and_grads(x, y)
    analytic = {k: g.copy() for k, g in model.grads().items()}

    def loss():
        fixed_dropout(model)
        return model.loss_from_output(model.forward(x, training=True), y)[0]

    check_grad(loss, model.params(), analytic, max_entries=8, rng=np.random.default_rng(2))


def test_first_layer_skips_its_input_gradient():
    model = build("vgg7")
    assert model.layers[0].need_dx is False
    assert all(l.need_dx for l in model.layers[1:] if hasattr(l, "need_dx"))


def test_float32_training_step_stays_float32():
    model = build("vgg7")
    x, y = batch(model, 4)
    loss, out = model.loss_and_grads(x, y)
    assert isinstance(loss, float) and np.isfinite(loss) and out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.grads().values())


# --------------------------------------------------------------------------- names and views


def test_params_grads_and_groups_by_name():
    model = build("vgg7")
    names = list(model.params())
    assert names[:4] == ["conv1.w", "conv1.b", "conv2.w", "conv2.b"] and names[-1] == "dense3.b"
    assert list(model.grads()) == names
    groups = model.param_groups()
    assert groups["conv"] == [n for n in names if n.startswith("conv")]
    assert groups["dense"] == [n for n in names if n.startswith("dense")]
    assert model.params()["conv2.w"] is model.layer("conv2").params["w"]  # live, not a copy
    with pytest.raises(KeyError, match="no layer named"):
        model.layer("conv9")


def test_predict_proba_batches_and_l2_probabilities():
    model = build(get_preset("vgg7", **SMALL_VGG7))
    x, _ = batch(model, 7)
    p = model.predict_proba(x, batch_size=3)
    np.testing.assert_allclose(p, model.predict_proba(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(model.predict(x), p.argmax(axis=1))
    tiny = build("tiny8x8")
    xt, _ = batch(tiny, 5)
    pt = tiny.predict_proba(xt)
    np.testing.assert_allclose(pt[:, 1], tiny.forward(xt)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(pt.sum(axis=1), 1, rtol=1e-6)
    # An L2 output is not bounded: probabilities are clipped to [0, 1].
    np.testing.assert_array_equal(tiny.proba_from_output(np.array([[1.3], [-0.2]])), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="expects inputs"):
        model.predict_proba(np.zeros((2, 8, 8, 1)))


def test_intermediates_for_one_sample():
    model = build("seed003")
    x, _ = batch(model, 2)
    inter = model.intermediates(x[1])
    assert list(inter) == ["input"] + [l.name for l in model.layers]
    for row in model.summary_rows():
        assert inter[row["name"]].shape == row["output_shape"]
    assert model.layer("pool1").mask.shape == (1, 28, 28, 32)  # the pooling view reads this
    np.testing.assert_allclose(inter["dense1"], model.forward(x)[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(inter["input"], x[1].astype(np.float32))
    with pytest.raises(ValueError, match="intermediates takes one sample, got 2"):  # not the first one's maps
        model.intermediates(x)


@pytest.mark.parametrize("layer_name", ["conv1", "pool1", "dense1"])
def test_delta_at_is_the_loss_gradient_at_a_layers_output(layer_name):
    """Checked by finite differences of the loss as a function of that output (the layers above run
    forward again on a nudged copy), with the label given and with the predicted class."""
    model = build("seed003", seed=2).copy(dtype=np.float64)
    x, labels = batch(model, 1)
    inter = model.intermediates(x[0])
    above = model.layers[[layer.name for layer in model.layers].index(layer_name) + 1:]

    def loss_of(output, label):
        for layer in above:
            output = layer.forward(output, training=False)
        return model.loss_from_output(output, np.array([label]))[0]

    for label in (int(labels[0]), None):
        found = model.delta_at(x[0], layer_name, label)
        assert found.label == (int(found.proba.argmax()) if label is None else label)
        np.testing.assert_allclose(found.layer_output[0], inter[layer_name], rtol=1e-12)
        output = found.layer_output.copy()
        delta = found.delta.copy()
        assert found.loss == pytest.approx(loss_of(output, found.label), rel=1e-12)
        rng = np.random.default_rng(0)
        for flat in rng.choice(output.size, 6, replace=False):
            index = np.unravel_index(flat, output.shape)
            plus, minus = output.copy(), output.copy()
            plus[index] += 1e-6
            minus[index] -= 1e-6
            numeric = (loss_of(plus, found.label) - loss_of(minus, found.label)) / 2e-6
            assert delta[index] == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_summary_lists_layers_and_labels_variants():
    model = build("vgg7")
    text = model.summary()
    for row in model.summary_rows():
        assert row["name"] in text
    assert f"{model.num_params():,}" in text and "VARIANT" not in text
    assert model.num_params() == sum(r["params"] for r in model.summary_rows())
    model.variant = "broken_update"
    assert "broken_update" in model.summary() and "broken_update" in repr(model)
    model.variant = None
    assert "VARIANT" not in model.summary()
    with pytest.raises(ValueError, match="unknown variant"):
        model.variant = "typo"


def test_initialisation_is_deterministic_and_follows_the_activation():
    a, b, c = build("vgg7", seed=3), build("vgg7", seed=3), build("vgg7", seed=4)
    for name, value in a.params().items():
        np.testing.assert_array_equal(value, b.params()[name])
    assert not np.array_equal(a.params()["conv2.w"], c.params()["conv2.w"])
    spec = {"name": "t", "input_shape": [500], "loss": "softmax_cross_entropy", "layers": [
        {"type": "Dense", "name": "d1", "units": 500}, {"type": "Activation", "name": "r", "fn": "relu"},
        {"type": "Dense", "name": "d2", "units": 500}, {"type": "Activation", "name": "t", "fn": "tanh"},
        {"type": "Dense", "name": "d3", "units": 10}]}
    m = build(spec)
    std = {n: m.params()[n].std() for n in ("d1.w", "d2.w", "d3.w")}
    assert abs(std["d1.w"] / np.sqrt(2 / 500) - 1) < 0.02        # He before ReLU
    assert abs(std["d2.w"] / np.sqrt(2 / 1000) - 1) < 0.02       # Glorot before tanh
    assert abs(std["d3.w"] / np.sqrt(2 / 510) - 1) < 0.05        # Glorot for the logits
    # He for a conv kernel before ReLU counts the inputs of one output: k*k*C_in, not k*k*C_out.
    conv = {"name": "c", "input_shape": [8, 8, 64], "loss": "softmax_cross_entropy", "layers": [
        {"type": "Conv2D", "name": "conv", "filters": 8, "kernel": 3, "padding": "SAME"},
        {"type": "Activation", "name": "r", "fn": "relu"}, {"type": "Flatten", "name": "f"},
        {"type": "Dense", "name": "d", "units": 10}]}
    assert abs(build(conv).params()["conv.w"].std() / np.sqrt(2 / (9 * 64)) - 1) < 0.05


# --------------------------------------------------------------------------- variants


def test_broken_update_gives_conv2_the_first_kernels_gradient():
    model = build("vgg7")
    x, y = batch(model, 4)
    model.loss_and_grads(x, y)
    right = {k: g.copy() for k, g in model.applied_grads().items()}
    model.variant = "broken_update"
    wrong = model.applied_grads()
    g1 = model.grads()["conv1.w"]                                    # (3, 3, 1, 16)
    for c in range(16):                                              # every input channel of conv2
        np.testing.assert_array_equal(wrong["conv2.w"][:, :, c, :], g1[:, :, 0, :])
    assert not np.allclose(wrong["conv2.w"], right["conv2.w"])
    for name in right:
        if name != "conv2.w":
            np.testing.assert_array_equal(wrong[name], right[name])
    np.testing.assert_array_equal(model.grads()["conv2.w"], right["conv2.w"])  # true gradient kept
    with pytest.raises(ValueError, match="equal size"):
        build(get_preset("vgg7", conv1=8)).variant = "broken_update"


def test_transposed_pool_changes_only_gradients_below_the_pools():
    model = build("tiny8x8", seed=2, dtype=np.float64)
    x, y = batch(model, 6)
    loss, _ = model.loss_and_grads(x, y)
    right = {k: g.copy() for k, g in model.grads().items()}
    model.variant = "transposed_pool"
    assert all(l.transposed for l in model.layers if l.kind == "MaxPool2D")
    loss2, _ = model.loss_and_grads(x, y)
    wrong = model.grads()
    assert loss2 == loss
    for name in right:
        if name.startswith("dense"):
            np.testing.assert_array_equal(wrong[name], right[name])
        else:
            assert not np.allclose(wrong[name], right[name]), name
    # the gradient leaving pool2 is the correct one mirrored H <-> W
    pool2 = model.layer("pool2")
    dy = np.random.default_rng(0).standard_normal((6, 2, 2, 4))
    mirrored = pool2.backward(dy)
    pool2.transposed = False
    np.testing.assert_array_equal(mirrored, pool2.backward(dy).transpose(0, 2, 1, 3))
    model.variant = None
    assert not any(l.transposed for l in model.layers if l.kind == "MaxPool2D")


# --------------------------------------------------------------------------- weights and files


def test_broken_update_averages_the_first_kernels_input_channels():
    """With a colour input conv1's gradient has 3 input channels: conv2 gets their mean."""
    spec = get_preset("vgg7")
    spec["input_shape"] = [28, 28, 3]
    model = build(spec)
    x = np.random.default_rng(0).random((2, 28, 28, 3)).astype(np.float32)
    model.loss_and_grads(x, np.array([1, 2]))
    model.variant = "broken_update"
    g1 = model.grads()["conv1.w"]                                    # (3, 3, 3, 16)
    np.testing.assert_allclose(model.applied_grads()["conv2.w"][:, :, 5, :], g1.mean(axis=2), rtol=1e-6)


def test_a_model_needs_unique_layer_names_and_only_its_own_parameters():
    spec = get_preset("tiny8x8")
    spec["layers"][1]["name"] = spec["layers"][0]["name"]
    with pytest.raises(ValueError, match="layer names must be unique"):
        M.Sequential(spec)
    model = build("tiny8x8")
    before = model.get_weights()
    with pytest.raises(M.ModelFileError, match=r"unexpected parameter\(s\) \['bogus.w'\]"):
        model.set_weights({**before, "bogus.w": np.zeros(3, np.float32)})
    missing = {k: v for k, v in before.items() if k != "conv2.b"}
    with pytest.raises(M.ModelFileError, match=r"layer 'conv2': parameter 'conv2.b' is missing"):
        model.set_weights(missing)


def test_specs_a_variant_or_a_loss_cannot_work_with_are_refused_when_built():
    spec = get_preset("tiny8x8")
    spec["layers"][-2]["units"] = 3  # an L2 cost compares one output with the 0/1 target
    with pytest.raises(ValueError, match=r"loss 'l2' needs one output unit, the model outputs \(3,\)"):
        M.Sequential(spec)
    wide = get_preset("tiny8x8")
    wide["input_shape"] = [8, 6, 1]  # transposing a pooled 8x6 map cannot work: say so now, not in backward
    model = M.Sequential(wide)
    with pytest.raises(ValueError, match=r"transposed_pool needs square maps, pool1 gets \(8, 6, 2\)"):
        model.variant = "transposed_pool"
    assert model.variant is None


def test_dropout_masks_follow_the_model_seed():
    """Outside a Trainer the masks come from the model's seed: the same seed repeats them, another differs."""
    x = np.ones((2, 28, 28, 1), np.float32)

    def mask(seed):
        model = build("seed003", seed=seed)
        model.forward(x, training=True)
        return model.layer("drop1")._mask

    np.testing.assert_array_equal(mask(1), mask(1))
    assert not np.array_equal(mask(1), mask(2))


def test_a_float64_model_loads_as_float64(tmp_path):
    model = build("tiny8x8", seed=1, dtype=np.float64)
    model.save(tmp_path / "m.npz")
    loaded = M.Sequential.load(tmp_path / "m.npz")
    assert loaded.dtype == np.float64
    for name, value in model.params().items():
        assert loaded.params()[name].dtype == np.float64
        np.testing.assert_array_equal(loaded.params()[name], value)


def test_set_weights_is_all_or_nothing():
    model = build("tiny8x8")
    before = model.get_weights()
    bad = {k: v + 1 for k, v in before.items()}
    bad["dense2.w"] = np.zeros((28, 35))
    with pytest.raises(M.ModelFileError, match="dense2"):
        model.set_weights(bad)
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, before[k])
    del bad["dense2.w"]
    with pytest.raises(M.ModelFileError, match="missing"):
        model.set_weights(bad)
    good = {k: v + 1 for k, v in before.items()}
    live = model.params()["conv1.w"]
    model.set_weights(good)
    assert model.params()["conv1.w"] is live                     # updated in place
    np.testing.assert_array_equal(live, good["conv1.w"])


def test_a_copy_shares_nothing_and_keeps_spec_seed_and_variant():
    original = build("seed003", seed=5)
    original.variant = "transposed_pool"
    twin = original.copy()
    assert (twin.spec, twin.seed, twin.variant, twin.dtype) == (original.spec, 5, "transposed_pool", np.float32)
    for name, value in original.params().items():
        np.testing.assert_array_equal(twin.params()[name], value)
        assert not np.shares_memory(twin.params()[name], value)
    twin.params()["conv1.w"] += 1.0  # a training step on the copy leaves the original alone
    assert not np.array_equal(twin.params()["conv1.w"], original.params()["conv1.w"])
    wide = original.copy(dtype=np.float64)
    assert wide.dtype == np.float64 and wide.params()["conv1.w"].dtype == np.float64
    np.testing.assert_array_equal(wide.params()["dense1.w"], original.params()["dense1.w"].astype(np.float64))


def test_save_load_round_trip_is_bit_identical(tmp_path):
    model = build("vgg7", seed=5)
    model.loss_and_grads(*batch(model, 2))
    for p in model.params().values():
        p += np.float32(1e-3) * np.arange(p.size, dtype=np.float32).reshape(p.shape) % 7
    path = tmp_path / "m.npz"
    model.save(path)
    assert os.listdir(tmp_path) == ["m.npz"]                      # no temporary file left behind
    again = M.Sequential.load(path)
    assert again.normalized_spec() == model.normalized_spec()
    for name, value in model.params().items():
        assert again.params()[name].dtype == value.dtype
        assert again.params()[name].tobytes() == value.tobytes()
    other = build("vgg7", seed=9)
    other.load_weights(path)
    for name, value in model.params().items():
        assert other.params()[name].tobytes() == value.tobytes()
    x, _ = batch(model, 3)
    np.testing.assert_array_equal(again.predict_proba(x), model.predict_proba(x))


def _small_vgg7(seed):
    """A small VGG-7 whose first two kernels have one size (broken_update needs that)."""
    return build(get_preset("vgg7", **{**SMALL_VGG7, "conv2": SMALL_VGG7["conv1"]}), seed=seed)


@pytest.mark.parametrize("variant", ["broken_update", "transposed_pool"])
def test_weights_a_variant_trained_keep_its_label_in_their_file(variant, tmp_path):
    model = _small_vgg7(1)
    model.variant = variant
    plain = tmp_path / "plain.npz"
    model.save(plain)  # no step taken: labelled all the same, the variant is set (a reopened session)
    assert M.Sequential.load(plain).trained_with == {variant}
    optimizer = SGD(model, 0.01, 0.01)
    model.loss_and_grads(*batch(model, 2))
    optimizer.step()
    model.variant = None  # training continued with the correct backward: the weights still carry it
    path = tmp_path / "m.npz"
    model.save(path)
    again = M.Sequential.load(path)
    assert again.trained_with == {variant} and again.variant is None  # a label, not a changed backward
    assert again.normalized_spec() == model.normalized_spec()          # the architecture without it
    assert f"weights trained with the variant(s) {variant}" in again.summary()
    assert again.copy().trained_with == {variant}
    fresh = _small_vgg7(2)
    fresh.load_weights(path)
    assert fresh.variant_labels() == [variant]
    unlabelled = tmp_path / "unlabelled.npz"
    _small_vgg7(3).save(unlabelled)
    fresh.load_weights(unlabelled)
    assert fresh.trained_with == set()
    with zipfile.ZipFile(unlabelled) as archive:
        assert M.TRAINED_WITH not in archive.read(M.SPEC_KEY + ".npy").decode("latin-1")


def test_a_model_file_with_a_bad_variant_label_is_refused(tmp_path):
    model = _small_vgg7(1)
    path = tmp_path / "m.npz"
    for bad in (["no_such_variant"], "broken_update", [None]):
        spec = {**model.normalized_spec(), M.TRAINED_WITH: bad}
        np.savez(path, **model.get_weights(), **{M.SPEC_KEY: np.array(json.dumps(spec))})
        with pytest.raises(M.ModelFileError, match="'trained_with' must list backprop variants"):
            M.Sequential.load(path)
        with pytest.raises(M.ModelFileError, match="'trained_with' must list backprop variants"):
            model.load_weights(path)


def test_save_is_atomic(tmp_path, monkeypatch):
    model = build("tiny8x8")
    path = tmp_path / "m.npz"
    model.save(path)
    original = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        build("tiny8x8", seed=1).save(path)
    assert path.read_bytes() == original and os.listdir(tmp_path) == ["m.npz"]


def assert_untouched(model, before):
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[name])


def test_bad_files_raise_clearly_and_leave_the_model_untouched(tmp_path):
    model = build("tiny8x8")
    good = tmp_path / "good.npz"
    model.save(good)
    target = build("tiny8x8", seed=7)
    before = target.get_weights()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    not_npz = tmp_path / "notes.npz"
    not_npz.write_text("these are not weights\n")
    missing = tmp_path / "missing.npz"
    for path in [truncated, not_npz, missing]:
        with pytest.raises(M.ModelFileError, match=path.name):
            target.load_weights(path)
        with pytest.raises(M.ModelFileError, match=path.name):
            M.Sequential.load(path)
        assert_untouched(target, before)

    # a file whose array does not fit its layer: the message names the layer
    weights = model.get_weights()
    weights["dense1.w"] = np.zeros((16, 5), np.float32)
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, __spec__=np.array(json.dumps(model.normalized_spec())), **weights)
    for load in (target.load_weights, M.Sequential.load):
        with pytest.raises(M.ModelFileError, match=r"wrong_shape\.npz.*dense1"):
            load(wrong_shape)
    assert_untouched(target, before)

    # a spec nested absurdly deep (json reads it; building the model would overflow the stack)
    deep = tmp_path / "deep.npz"
    spec = {**model.normalized_spec(), "junk": json.loads("[" * 600 + "]" * 600)}
    np.savez(deep, __spec__=np.array(json.dumps(spec)), **model.get_weights())
    with pytest.raises(M.ModelFileError, match="deep.npz"):
        M.Sequential.load(deep)

    # an npz without a spec
    no_spec = tmp_path / "no_spec.npz"
    np.savez(no_spec, **model.get_weights())
    with pytest.raises(M.ModelFileError, match="spec"):
        target.load_weights(no_spec)

    # a corrupted member inside an otherwise valid zip
    corrupt = tmp_path / "corrupt.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(corrupt, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:-8] if item.filename == "dense1.w.npy" else data)
    with pytest.raises(M.ModelFileError, match="corrupt"):
        target.load_weights(corrupt)
    assert_untouched(target, before)


def test_load_weights_refuses_another_architecture(tmp_path):
    path = tmp_path / "wide.npz"
    build(get_preset("tiny8x8", dense1=18)).save(path)
    target = build("tiny8x8")
    before = target.get_weights()
    with pytest.raises(M.ModelFileError, match=r"wide\.npz.*'dense1' differs"):
        target.load_weights(path)
    assert_untouched(target, before)
    vgg = build(get_preset("vgg7", **SMALL_VGG7))
    with pytest.raises(M.ModelFileError, match="input shape"):
        vgg.load_weights(path)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_an_empty_batch_gives_an_empty_output(name):
    model = build(name, seed=0)
    one = model.forward(np.zeros((1, *model.input_shape), model.dtype)).shape[1:]
    assert model.forward(np.zeros((0, *model.input_shape), model.dtype)).shape == (0, *one)
