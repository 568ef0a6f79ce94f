"""engine.trace.live_conv_trace: the δ it traces is the real ∂L/∂z of the conv layer (central finite
differences through the rest of the network, and the engine's own backward), its x/w/b are the
layer's real input and current weights, and the model it reads is left untouched."""

import numpy as np
import pytest

from engine import ops
from engine.presets import build
from engine.trace import live_conv_trace


def loss_with_z_nudged(model, layer_name, x, label, index, eps):
    """Loss of one sample (inference mode) with ``eps`` added to the conv layer's output z at
    ``index`` (i, j, c), i.e. before its activation. x: input_shape."""
    out = np.asarray(x, np.float64)[None]
    for layer in model.layers:
        out = layer.forward(out, training=False)
        if layer.name == layer_name:
            out = out.copy()
            out[(0, *index)] += eps
    loss, _ = model.loss_from_output(out, np.array([label]))
    return loss


@pytest.fixture(scope="module")
def mnist_like():
    rng = np.random.default_rng(3)
    return rng.random((28, 28, 1))


@pytest.mark.parametrize("preset, layer_name", [("tiny8x8", "conv1"), ("tiny8x8", "conv2"), ("seed003", "conv1")])
def test_dy_equals_central_finite_differences(preset, layer_name, mnist_like):
    model = build(preset, seed=1)
    model_64 = build(preset, seed=1, dtype=np.float64)
    model_64.set_weights(model.get_weights())
    x = mnist_like if model.input_shape == (28, 28, 1) else mnist_like[::3, ::3][:8, :8]
    live = live_conv_trace(model, layer_name, x, label=1)
    dy = live.trace.dy
    rng = np.random.default_rng(0)
    eps = 1e-6
    for _ in range(8):
        index = tuple(int(rng.integers(n)) for n in dy.shape)
        numeric = (loss_with_z_nudged(model_64, layer_name, x, 1, index, eps)
                   - loss_with_z_nudged(model_64, layer_name, x, 1, index, -eps)) / (2 * eps)
        assert dy[index] == pytest.approx(numeric, rel=1e-5, abs=1e-9), index


@pytest.mark.parametrize("variant", [None, "transposed_pool"])
def test_trace_matches_the_engine_backward(variant):
    # tiny8x8 has no dropout, so loss_and_grads (training mode) runs the same computation.
    model = build("tiny8x8", seed=2, dtype=np.float64)
    model.variant = variant
    x = np.random.default_rng(5).random((8, 8, 1))
    live = live_conv_trace(model, "conv2", x, label=0)
    loss, _ = model.loss_and_grads(x[None], np.array([0]))
    trace = live.trace
    np.testing.assert_allclose(trace.dw, model.grads()["conv2.w"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(trace.db, model.grads()["conv2.b"], rtol=1e-10, atol=1e-14)
    assert live.loss == pytest.approx(loss)
    # The traced input is conv2's real input: pool1's output.
    np.testing.assert_allclose(trace.x, model.intermediates(x)["pool1"])
    np.testing.assert_allclose(trace.y, model.intermediates(x)["conv2"])


def test_uses_the_current_weights_and_leaves_the_model_untouched(mnist_like):
    model = build("vgg7", seed=0)
    before = model.get_weights()
    first = live_conv_trace(model, "conv3", mnist_like, label=4)
    np.testing.assert_array_equal(first.trace.w, model.params()["conv3.w"])
    for name, value in model.params().items():
        np.testing.assert_array_equal(value, before[name])
        assert not model.grads()[name].any(), f"{name} gradient was filled"
    model.params()["conv3.w"][1, 2, 0, 5] += 0.5
    second = live_conv_trace(model, "conv3", mnist_like, label=4)
    assert second.trace.w[1, 2, 0, 5] == pytest.approx(first.trace.w[1, 2, 0, 5] + 0.5)
    assert not np.array_equal(second.trace.y, first.trace.y)


def test_without_a_label_the_loss_is_taken_against_the_prediction(mnist_like):
    model = build("seed003", seed=4)
    live = live_conv_trace(model, "conv1", mnist_like)
    assert live.label == int(model.predict(mnist_like[None])[0])
    assert live.loss == pytest.approx(-np.log(live.proba[live.label]), rel=1e-5)
    np.testing.assert_allclose(live.proba, model.predict_proba(mnist_like[None])[0], rtol=1e-4)


def test_rejects_a_non_conv_layer_and_a_wrong_sample_shape(mnist_like):
    model = build("seed003")
    with pytest.raises(ValueError, match="not a Conv2D"):
        live_conv_trace(model, "dense1", mnist_like)
    with pytest.raises(ValueError, match="x must be"):
        live_conv_trace(model, "conv1", mnist_like[:8, :8])


def test_trace_y_is_the_layer_output_before_the_activation(mnist_like):
    model = build("vgg7", seed=0)
    trace = live_conv_trace(model, "conv1", mnist_like, label=0).trace
    z = ops.conv2d(mnist_like[None], model.params()["conv1.w"], model.params()["conv1.b"], 1, "SAME")[0]
    np.testing.assert_allclose(trace.y, z, rtol=1e-4, atol=1e-5)
