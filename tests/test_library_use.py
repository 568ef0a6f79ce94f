"""The engine used from Python (a notebook), and misused: every mistake gets an error that names it,
never a silently wrong number (found by a review of the engine as a library, 2026-12-07)."""
import json

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from engine import ops, parallel
from engine.data import Dataset
from engine.layers import Dense, layer_from_spec
from engine.model import ModelFileError, Sequential
from engine.presets import build, get_preset
from engine.trainer import TrainConfig, Trainer

SMALL = get_preset("vgg7", conv1=2, conv2=3, conv3=3, conv4=4, dense1=6, dense2=5)


def images(n, shape=(28, 28, 1), seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


# --------------------------------------------------------------------------- forward state and backward

def test_a_pass_between_forward_and_backward_is_refused_not_used():
    """forward(a), predict_proba(b), backward(dout of a) gave b's gradients without a word."""
    model = build(SMALL)
    a, b = images(4, seed=1), images(4, seed=2)
    labels = np.array([0, 1, 2, 3])
    _, dout = model.loss_from_output(model.forward(a, training=True), labels)
    model.backward(dout)
    expected = {k: v.copy() for k, v in model.grads().items()}

    for between in (lambda: model.predict_proba(b), lambda: model.infer(b), lambda: model.intermediates(b[0]),
                    lambda: model.delta_at(b[0], "pool1", 3)):
        model.forward(a, training=True)
        between()
        with pytest.raises(RuntimeError, match="forward\\(\\) of the same batch"):
            model.backward(dout)
    model.forward(b[:1], training=True)
    with pytest.raises(ValueError, match="labels"):
        model.delta_at(a[0], "pool1", 42)  # fails after its forward ran: backward must not take it
    with pytest.raises(RuntimeError, match="forward\\(\\) of the same batch"):
        model.backward(dout[:1])
    model.forward(a, training=True)  # the documented order still works, with a's gradients
    model.backward(dout)
    for name, grad in model.grads().items():
        np.testing.assert_array_equal(grad, expected[name])
    with pytest.raises(ValueError, match="last forward's batch of 4"):
        model.backward(dout[:3])
    with pytest.raises(RuntimeError, match="no forward ran yet"):
        build(SMALL).backward(dout)


def test_a_layers_backward_before_any_forward_names_the_layer():
    for spec in ({"type": "Conv2D", "name": "c", "filters": 2}, {"type": "Dense", "name": "d", "units": 2},
                 {"type": "Activation", "name": "a", "fn": "tanh"}, {"type": "MaxPool2D", "name": "p"},
                 {"type": "AvgPool2D", "name": "q"}, {"type": "Flatten", "name": "f"},
                 {"type": "Dropout", "name": "r"}):
        layer = layer_from_spec(spec)
        shape = (2,) if spec["type"] == "Dense" else (4, 4, 1)
        layer.build(shape, np.random.default_rng(0), np.float32)
        with pytest.raises(RuntimeError, match=f"^{spec['name']}: backward\\(\\) before any forward"):
            layer.backward(np.zeros((1, 2)))


def test_a_stale_forward_cache_is_refused():
    """conv2d_forward(x1), conv2d_forward(x2) on one workspace, then backward with x1's cache: x2's dw."""
    rng = np.random.default_rng(0)
    x1, x2, w = rng.random((2, 5, 5, 2)), rng.random((2, 5, 5, 2)), rng.random((3, 3, 2, 4))
    ws = ops.Workspace()
    y1, cache1 = ops.conv2d_forward(x1, w, None, 1, "SAME", ws)
    _, dw_fresh, _ = ops.conv2d_backward(np.ones_like(y1), x1, w, 1, "SAME", cache=cache1, workspace=ws)
    ops.conv2d_forward(x2, w, None, 1, "SAME", ws)
    with pytest.raises(ValueError, match="cache is stale"):
        ops.conv2d_backward(np.ones_like(y1), x1, w, 1, "SAME", cache=cache1, workspace=ws)
    _, dw, _ = ops.conv2d_backward(np.ones_like(y1), x1, w, 1, "SAME", workspace=ws)  # no cache: rebuilt
    np.testing.assert_array_equal(dw, dw_fresh)


# --------------------------------------------------------------------------- ops: shapes, types, numbers

@pytest.mark.parametrize("call, message", [
    (lambda: ops.conv2d(np.zeros((5, 5, 1)), np.zeros((3, 3, 1, 2))), r"x must be a batch \(N, H, W, C\), got shape "
                                                                       r"\(5, 5, 1\); add the batch axis"),
    (lambda: ops.avgpool2d(np.zeros((4, 4, 1))), r"x must be a batch"),
    (lambda: ops.maxpool2d(np.zeros((4, 4))), r"x must be a batch"),
    (lambda: ops.conv2d(np.zeros((1, 5, 5, 1)), np.zeros((3, 1, 2))), r"kernel w must be \(kh, kw, C_in, C_out\)"),
    (lambda: ops.conv2d(np.zeros((1, 5, 5, 1)), np.zeros((0, 3, 1, 2))), "empty axis"),
    (lambda: ops.conv2d(np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 2)), np.zeros(9)), r"bias b must have shape \(2,\)"),
    (lambda: ops.conv2d(np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 2)), stride=(2.7, 2)), "stride must be a whole"),
    (lambda: ops.conv2d(np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 2)), padding=((1.5, 1), (1, 1))),
     "padding must be a whole"),
    (lambda: ops.conv2d(np.zeros((1, 5, 5, 1), complex), np.zeros((3, 3, 1, 2))), "real numbers"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), "whole class indices"),
    (lambda: ops.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, int)), "empty batch has no loss"),
    (lambda: ops.l2_cost(np.zeros((0, 1)), np.zeros(0)), "empty batch has no loss"),
])
def test_mistakes_in_op_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize("padding, stored", [(np.int64(1), 1), (2, 2), (((1, 0), (0, np.int32(2))), [[1, 0], [0, 2]]),
                                             ([[0, 1], [1, 0]], [[0, 1], [1, 0]]), ("VALID", "VALID")])
def test_a_conv_layers_padding_is_kept_in_one_json_form(padding, stored):
    """A NumPy integer (e.g. from a sweep over np.arange) failed with "'numpy.int64' object is not iterable"."""
    layer = layer_from_spec({"type": "Conv2D", "name": "c", "filters": 2, "padding": padding})
    assert layer.spec()["padding"] == stored and type(layer.spec()["padding"]) is type(stored)
    json.dumps(layer.spec())
    layer.build((5, 5, 1), np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).random((1, 5, 5, 1))
    np.testing.assert_array_equal(layer.forward(x), ops.conv2d(x, layer.params["w"], layer.params["b"],
                                                               padding=padding))


@pytest.mark.parametrize("padding", [-1, True, 1.5, [[1, 2]], "SAMEISH"])
def test_a_conv_layer_refuses_a_wrong_padding_when_made(padding):
    with pytest.raises(ValueError, match="padding must"):
        layer_from_spec({"type": "Conv2D", "name": "c", "filters": 2, "padding": padding})


def test_a_kernel_given_as_nested_lists_works_like_an_array():
    x = np.random.default_rng(0).random((1, 4, 4, 1))
    w = [[[[1.0]], [[0.0]]], [[[0.0]], [[-1.0]]]]  # (2, 2, 1, 1)
    np.testing.assert_array_equal(ops.conv2d(x, w), ops.conv2d(x, np.array(w)))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, bool])
def test_activations_of_integers_compute_in_floating_point(dtype):
    """-abs(z) of a uint8 wraps around: sigmoid gave [0.5, 0, 0, 0] for [0, 1, 5, 200]."""
    z = np.array([0, 1, 5, 200] if dtype is not bool else [0, 1, 1, 0], dtype=dtype)
    for name in ops.ACTIVATIONS:
        a = ops.activation(name, z)
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, ops.activation(name, z.astype(np.float64)))
        da = ops.activation_backward(name, np.ones(4, dtype), z, a)
        np.testing.assert_allclose(da, ops.activation_backward(name, np.ones(4), z.astype(np.float64), a))


@pytest.mark.parametrize("stride, padding", [(1, "SAME"), (1, "VALID"), (2, "SAME"), ((2, 3), 1)])
def test_a_nan_in_the_input_reaches_exactly_the_kernel_taps_that_read_it(stride, padding):
    """dw is non-finite where its definition sum_{n,i,j} xpad[n, i*s + p, j*s + q, c] * dy[n, i, j, o]
    makes it so, no more: garbage grid rows (0 * NaN) spread one NaN over taps no window pairs with it."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 2, 2))
    sh, sw = ops.normalize_stride(stride)
    for position in [(0, 0), (2, 3), (5, 5), (4, 1)]:
        x = rng.standard_normal((2, 6, 6, 2))
        x[1, position[0], position[1], 1] = np.nan
        y = ops.conv2d(x, w, None, stride, padding)
        dy = rng.standard_normal(y.shape)
        _, dw, _ = ops.conv2d_backward(dy, x, w, stride, padding)
        (t, b), (l, r) = ops.resolve_padding((6, 6), (3, 3), stride, padding)
        xpad = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
        windows = sliding_window_view(xpad, (3, 3), axis=(1, 2))[:, ::sh, ::sw][:, :y.shape[1], :y.shape[2]]
        expected = np.einsum("nijcpq,nijo->pqco", windows, dy)  # (3, 3, C_in, C_out)
        np.testing.assert_array_equal(np.isnan(dw), np.isnan(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(dw[finite], expected[finite], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- models, layers, files

def test_a_model_computes_in_float32_or_float64_only():
    for dtype in (np.int32, bool, np.complex64, np.float16):
        with pytest.raises(TypeError, match="float32 .* or float64"):
            build("tiny8x8", dtype=dtype)
    assert build("tiny8x8", dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("change, message", [
    (lambda spec: spec.pop("input_shape"), "needs 'input_shape'"),
    (lambda spec: spec.update(input_shape=[8.7, 8, 1]), "input_shape must be a whole"),
    (lambda spec: spec["layers"][0].update(filters=2.7), "conv1: filters must be a whole"),
    (lambda spec: spec["layers"][0].update(kernel=True), "conv1: kernel must be a whole"),
    (lambda spec: spec["layers"][2].update(size=2.9), "pool1: pool size must be a whole"),
])
def test_spec_numbers_that_are_not_whole_are_refused_not_truncated(change, message):
    spec = get_preset("tiny8x8")
    change(spec)
    with pytest.raises(ValueError, match=message):
        Sequential(spec)


def test_a_dense_layer_given_the_wrong_width_says_so():
    layer = Dense("d", 3)
    layer.build((5,), np.random.default_rng(0), np.float32)
    with pytest.raises(ValueError, match=r"d: Dense takes a batch of flat inputs \(N, 5\), got shape \(2, 4\)"):
        layer.forward(np.zeros((2, 4)))


def test_an_l2_model_refuses_labels_its_sigmoid_cannot_take():
    model = build("tiny8x8")
    x = images(4, (8, 8, 1))
    for labels, message in [([0, 1, 2, 5], r"values \[2, 5\]"), ([0, -1, 1, 0], r"values \[-1\]"),
                            ([0.0, 1.0, 1.0, 0.0], "float64 labels")]:
        with pytest.raises(ValueError, match=message):
            model.loss_and_grads(x, np.array(labels))
    loss, _ = model.loss_and_grads(x, np.array([0, 1, 1, 0]))
    assert np.isfinite(loss)


def test_a_trainer_refuses_labels_the_model_has_no_output_for():
    """tiny8x8 on the digits 3, 5, 8 (labels 0..2) trained its sigmoid towards 2 until the first validation."""
    train = Dataset(images(12, (8, 8, 1)), np.arange(12) % 3, "three digits")
    with pytest.raises(ValueError, match="labels 0..2 do not fit the model's 2 classes"):
        Trainer(build("tiny8x8"), train, None, TrainConfig(preset="tiny8x8", epochs=1, batch_size=4))


def test_weights_beyond_float32_are_refused_and_nothing_is_changed():
    model = build(SMALL)
    before = model.get_weights()
    weights = {name: value.astype(np.float64) for name, value in before.items()}
    weights["dense2.w"][0, 0] = 1e300  # finite in float64, inf in float32
    with pytest.raises(ModelFileError, match="'dense2.w' has values beyond float32's range"):
        model.set_weights(weights)
    for name, value in model.params().items():
        np.testing.assert_array_equal(value, before[name])


def test_model_files_take_home_relative_paths_and_refuse_weights_for_other_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    model = build("tiny8x8")
    model.save("~/tiny.npz")
    assert (tmp_path / "tiny.npz").is_file()
    assert Sequential.load(b"~/tiny.npz").num_params() == model.num_params()
    other = Sequential({**get_preset("tiny8x8"), "classes": [3, 8]})
    with pytest.raises(ModelFileError, match=r"its outputs are the classes \[0, 1\], the model's are \[3, 8\]"):
        other.load_weights("~/tiny.npz")


def test_shards_follow_a_layer_whose_params_dict_was_replaced():
    model = build(SMALL)
    x = images(64)
    with parallel.using_threads(2):
        model.predict_proba(x)  # builds the replica of the second shard
        conv = model.layer("conv1")
        conv.params = {key: value * 2 for key, value in conv.params.items()}
        split = model.predict_proba(x)
    np.testing.assert_allclose(split, model.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_predict_proba_refuses_a_batch_size_it_cannot_use():
    model = build(SMALL)
    for size in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be at least 1"):
            model.predict_proba(images(3), batch_size=size)
    with pytest.raises(ValueError, match="batch_size must be a whole number"):
        model.predict_proba(images(3), batch_size=2.5)


def test_unconfiguring_the_threads_gives_blas_its_threads_back():
    before = parallel.blas_threads()
    try:
        if not parallel.set_blas_threads(2):
            pytest.skip("NumPy's BLAS is not OpenBLAS: its thread count cannot be set at run time")
        parallel.set_threads(3)
        assert parallel.blas_threads() == 1
        parallel.set_threads(2)
        parallel.set_threads(None)
        assert parallel.blas_threads() == 2
    finally:
        parallel.set_threads(None)
        parallel.set_blas_threads(before)

