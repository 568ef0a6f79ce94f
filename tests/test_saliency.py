"""engine.saliency: the input gradient agrees with finite differences and leaves the model as it was."""
import numpy as np
import pytest

from engine import presets
from engine.saliency import input_gradient


def loss_at(model, x, label):
    out = model.forward(x[None], training=False)
    return model.loss_from_output(out, np.array([label]))[0]


def finite_difference(model, x, label, pixels, h=1e-6):
    """-dL/dx at ``pixels`` ((row, col, channel) tuples) by central differences."""
    values = []
    for p in pixels:
        plus, minus = x.copy(), x.copy()
        plus[p] += h
        minus[p] -= h
        values.append(-(loss_at(model, plus, label) - loss_at(model, minus, label)) / (2 * h))
    return np.array(values)


@pytest.mark.parametrize("preset", ["vgg7", "seed003", "tiny8x8"])
def test_saliency_matches_finite_differences(preset):
    model = presets.build(preset, seed=3, dtype=np.float64)
    rng = np.random.default_rng(7)
    x = rng.random(model.input_shape)
    label = int(model.predict(x[None])[0])
    saliency, loss = input_gradient(model, x, label)
    assert saliency.shape == model.input_shape and saliency.dtype == np.float64
    assert loss == pytest.approx(loss_at(model, x, label))
    h, w, _ = model.input_shape
    flat = rng.choice(h * w, size=8, replace=False)
    pixels = [(int(i) // w, int(i) % w, 0) for i in flat]
    expected = finite_difference(model, x, label, pixels)
    got = np.array([saliency[p] for p in pixels])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-9 * np.abs(saliency).max())
    assert np.abs(saliency).max() > 0


def test_softmax_saliency_is_the_gradient_of_the_log_probability():
    model = presets.build("vgg7", seed=1, dtype=np.float64)
    x = np.random.default_rng(0).random((28, 28, 1))
    label = 4  # any class, not only the predicted one
    saliency, _ = input_gradient(model, x, label)
    h = 1e-6
    p = (5, 9, 0)
    plus, minus = x.copy(), x.copy()
    plus[p] += h
    minus[p] -= h
    log_p = [np.log(model.predict_proba(v[None])[0, label]) for v in (plus, minus)]
    assert saliency[p] == pytest.approx((log_p[0] - log_p[1]) / (2 * h), rel=1e-4)


def test_saliency_leaves_gradients_flags_and_variant_untouched():
    model = presets.build("vgg7", seed=2, dtype=np.float64)
    rng = np.random.default_rng(1)
    model.loss_and_grads(rng.random((4, 28, 28, 1)), np.array([0, 1, 2, 3]))
    grads_before = {k: v.copy() for k, v in model.grads().items()}
    model.variant = "transposed_pool"
    x = rng.random((28, 28, 1))
    saliency, _ = input_gradient(model, x, 3)
    assert model.variant == "transposed_pool"
    assert model.layers[0].need_dx is False
    for name, g in model.grads().items():
        np.testing.assert_array_equal(g, grads_before[name], err_msg=name)
    # The true gradient, not the transposed-pool experiment's.
    model.variant = None
    np.testing.assert_array_equal(input_gradient(model, x, 3)[0], saliency)


def test_saliency_rejects_bad_inputs():
    model = presets.build("tiny8x8", seed=0)
    with pytest.raises(ValueError, match="one input"):
        input_gradient(model, np.zeros((2, 8, 8, 1)), 0)
    with pytest.raises(ValueError, match="class index"):
        input_gradient(model, np.zeros((8, 8, 1)), 2)
