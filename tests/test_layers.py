"""engine.layers: finite-difference gradients of every layer, specs, caches and dropout."""

import json

import numpy as np
import pytest

from engine import layers as L
from gradcheck import check_grad

# (layer spec, input shape without batch axis)
LAYER_CASES = [
    ({"type": "Conv2D", "name": "c", "filters": 3, "kernel": 3, "stride": 1, "padding": "SAME"}, (6, 5, 2)),
    ({"type": "Conv2D", "name": "c", "filters": 2, "kernel": 2, "stride": 2, "padding": "SAME"}, (7, 7, 1)),
    ({"type": "Conv2D", "name": "c", "filters": 2, "kernel": 5, "stride": 3, "padding": "VALID"}, (9, 8, 3)),
    ({"type": "Conv2D", "name": "c", "filters": 1, "kernel": 1, "stride": [1, 2],
      "padding": [[1, 0], [0, 2]]}, (4, 5, 2)),
    ({"type": "Dense", "name": "d", "units": 4}, (7,)),
    ({"type": "AvgPool2D", "name": "p", "size": 2}, (5, 6, 2)),
    ({"type": "MaxPool2D", "name": "p", "size": 3}, (7, 6, 2)),
    ({"type": "Flatten", "name": "f"}, (3, 4, 2)),
    ({"type": "Dropout", "name": "dr", "rate": 0.4}, (4, 4, 3)),
] + [({"type": "Activation", "name": "a", "fn": fn}, (3, 5)) for fn in L.ops.ACTIVATIONS]


def built(spec, in_shape, seed=0):
    layer = L.layer_from_spec(spec)
    out_shape = layer.build(in_shape, np.random.default_rng(seed), np.float64)
    return layer, out_shape


@pytest.mark.parametrize("spec,in_shape", LAYER_CASES,
                         ids=lambda v: v.get("type", "") if isinstance(v, dict) else "")
def test_layer_gradients(spec, in_shape):
    layer, out_shape = built(spec, in_shape)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *in_shape))
    for p in layer.params.values():  # non-zero biases so their path is exercised too
        p[...] = rng.standard_normal(p.shape)
    r = rng.standard_normal((2, *out_shape))

    def loss():
        if isinstance(layer, L.Dropout):
            layer.rng = np.random.default_rng(5)  # the same dropout mask at every evaluation
        return float((layer.forward(x, training=True) * r).sum())

    y_shape = layer.forward(x, training=True).shape
    assert y_shape == (2, *out_shape) == (2, *layer.output_shape(in_shape))
    loss()
    dx = layer.backward(r)
    analytic = {"x": dx, **{k: layer.grads[k].copy() for k in layer.params}}
    check_grad(loss, {"x": x, **layer.params}, analytic)


@pytest.mark.parametrize("spec,in_shape", LAYER_CASES[:5])
def test_weight_layer_can_skip_dx(spec, in_shape):
    layer, out_shape = built(spec, in_shape)
    x = np.random.default_rng(2).standard_normal((3, *in_shape))
    dy = np.ones((3, *out_shape))
    layer.forward(x)
    dx = layer.backward(dy)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.need_dx = False
    assert dx is not None and layer.backward(dy) is None
    for k in grads:
        np.testing.assert_array_equal(layer.grads[k], grads[k])


@pytest.mark.parametrize("spec,in_shape", LAYER_CASES)
def test_spec_round_trip_through_json(spec, in_shape):
    layer = L.layer_from_spec(spec)
    again = L.layer_from_spec(json.loads(json.dumps(layer.spec())))
    assert again.spec() == layer.spec()
    assert again.kind == spec["type"] and again.name == spec["name"]
    assert again.output_shape(in_shape) == layer.output_shape(in_shape)


def test_bad_specs_are_rejected():
    for spec in [{"type": "Conv3D", "name": "x"}, {"type": "Dense", "name": "d"},
                 {"type": "Dense", "name": "d", "units": 4, "bias": False},
                 {"type": "Activation", "name": "a", "fn": "gelu"},
                 {"type": "Dropout", "name": "d", "rate": 1.0},
                 {"type": "Flatten", "name": "a.b"}, {"name": "no type"},
                 {"type": "Conv2D", "name": "c", "filters": 0}, {"type": "Conv2D", "name": "c", "filters": 4,
                                                                  "kernel": 0}]:
        with pytest.raises(ValueError):
            L.layer_from_spec(spec)
    with pytest.raises(ValueError, match="Flatten"):
        L.layer_from_spec({"type": "Dense", "name": "d", "units": 3}).output_shape((4, 4, 1))
    with pytest.raises(ValueError, match="^pool7: cannot pool 1x4"):  # the message names the layer
        L.layer_from_spec({"type": "MaxPool2D", "name": "pool7", "size": 2}).output_shape((1, 4, 3))


def test_groups_and_param_keys():
    conv, _ = built(LAYER_CASES[0][0], LAYER_CASES[0][1])
    dense, _ = built(LAYER_CASES[4][0], LAYER_CASES[4][1])
    pool, _ = built(LAYER_CASES[5][0], LAYER_CASES[5][1])
    assert (conv.group, dense.group, pool.group) == ("conv", "dense", None)
    assert set(conv.params) == set(conv.grads) == set(dense.params) == {"w", "b"}
    assert conv.params["w"].shape == (3, 3, 2, 3) and dense.params["w"].shape == (7, 4)
    assert pool.params == {} and pool.grads == {}


def test_maxpool_layer_keeps_its_mask_and_transposed_flag_changes_backward():
    layer, _ = built({"type": "MaxPool2D", "name": "p", "size": 2}, (4, 4, 1))
    x = np.random.default_rng(3).standard_normal((1, 4, 4, 1))
    y = layer.forward(x)
    assert layer.mask.shape == x.shape and layer.mask.sum() == 4
    np.testing.assert_array_equal((layer.mask * x).sum(), y.sum())
    dy = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    right = layer.backward(dy)
    layer.transposed = True
    np.testing.assert_array_equal(layer.backward(dy), right.transpose(0, 2, 1, 3))


def test_dropout_is_identity_at_inference_and_unbiased_in_training():
    layer, _ = built({"type": "Dropout", "name": "d", "rate": 0.25}, (100, 100))
    x = np.ones((4, 100, 100))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(x), x)
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.01          # 40,000 draws: 0.01 is ~4.6 sigma
    assert abs(y.mean() - 1.0) < 0.02
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), y)


def test_initialisation_scales():
    rng = np.random.default_rng(0)
    for init, expected_std in [("he", np.sqrt(2 / 400)), ("glorot", np.sqrt(2 / (400 + 300)))]:
        dense = L.Dense("d", 300)
        dense.build((400,), rng, np.float32, init)
        w = dense.params["w"]
        assert w.dtype == np.float32 and not dense.params["b"].any()
        assert abs(w.std() / expected_std - 1) < 0.02     # 120,000 samples
    with pytest.raises(ValueError):
        L.Dense("d", 3).build((4,), rng, np.float32, "lecun")
