"""engine.ops: geometry rules, finite-difference gradients of every op, pooling masks, dtypes."""

import itertools
import math
import zlib

import numpy as np
import pytest

from engine import ops
from gradcheck import check_grad

# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("size", range(1, 12))
@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("s", [1, 2, 3])
def test_padding_rules_match_seed_001(size, k, s):
    if k > size:
        with pytest.raises(ValueError):
            ops.conv_output_hw((size, size), (k, k), s, "VALID")
    else:
        # VALID: O = ceil((I - k + 1) / s)
        assert ops.conv_output_hw((size, 1), (k, 1), s, "VALID")[0] == math.ceil((size - k + 1) / s)
    # SAME: O = ceil(I / s), P = max((O - 1) * s + k - I, 0), top = floor(P / 2)
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    (top, bottom), (left, right) = ops.resolve_padding((size, size), (k, k), s, "SAME")
    assert (top, bottom) == (left, right) == (total // 2, total - total // 2)
    assert ops.conv_output_hw((size, size), (k, k), s, "SAME") == (out, out)


def test_padding_forms():
    assert ops.resolve_padding((5, 5), (3, 3), 1, 2) == ((2, 2), (2, 2))
    assert ops.resolve_padding((5, 5), (3, 3), 1, ((0, 1), (2, 3))) == ((0, 1), (2, 3))
    assert ops.resolve_padding((5, 5), (3, 3), 1, "valid") == ((0, 0), (0, 0))
    assert ops.normalize_stride(2) == (2, 2)
    assert ops.normalize_stride((1, 3)) == (1, 3)
    for bad in ["FULL", -1, ((1,), (1,)), (1, 2, 3), ((0, 0), (-1, 0)), ((0, 0), (0, -1)), ((-1, 0), (0, 0))]:
        with pytest.raises(ValueError):
            ops.resolve_padding((5, 5), (3, 3), 1, bad)
    # A kernel taller or wider than the padded input has no output, not an empty one.
    for in_hw, k_hw in (((2, 5), (3, 3)), ((5, 2), (3, 3))):
        with pytest.raises(ValueError, match="larger than the padded input"):
            ops.conv_output_hw(in_hw, k_hw, 1, "VALID")
    for bad in [0, (1, 0), (1, 2, 3)]:
        with pytest.raises(ValueError):
            ops.normalize_stride(bad)
    with pytest.raises(ValueError, match="input channels"):
        ops.conv2d(np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 3, 1)))


# --------------------------------------------------------------------------- reference conv


def naive_conv2d(x, w, b, stride, padding):
    """Direct loop over output positions: obviously correct, only for small tests."""
    sh, sw = ops.normalize_stride(stride)
    (t, bo), (l, r) = ops.resolve_padding(x.shape[1:3], w.shape[:2], stride, padding)
    xp = np.pad(x, ((0, 0), (t, bo), (l, r), (0, 0)))
    kh, kw = w.shape[:2]
    ho, wo = ops.conv_output_hw(x.shape[1:3], w.shape[:2], stride, padding)
    y = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for i in range(ho):
        for j in range(wo):
            window = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]  # (N, kh, kw, C_in)
            y[:, i, j, :] = np.tensordot(window, w, axes=([1, 2, 3], [0, 1, 2])) + b
    return y


# (N, H, W, C_in, C_out, kernel, stride, padding): every kernel size and stride, with H odd and
# W even so SAME yields both odd and even total padding, plus explicit and asymmetric paddings.
CONV_CONFIGS = [
    (2, 7, 8, c_in, 3, k, s, pad)
    for (k, s, pad), c_in in zip(itertools.product([1, 2, 3, 5], [1, 2, 3], ["VALID", "SAME"]),
                                 itertools.cycle([1, 2]))
] + [
    (1, 6, 5, 2, 2, (2, 3), (1, 2), "SAME"),
    (3, 5, 6, 1, 1, 3, 1, 1),
    (2, 5, 5, 2, 2, 2, 2, ((0, 1), (2, 0))),
    (1, 9, 7, 1, 2, (3, 1), (3, 2), "VALID"),
]


def test_conv_configs_cover_the_required_cases():
    """The gradient sweep below must include odd/even SAME padding and VALID leftovers."""
    totals, leftovers = set(), False
    for n, h, w, c_in, c_out, k, s, pad in CONV_CONFIGS:
        kh, kw = (k, k) if np.isscalar(k) else k
        sh, sw = ops.normalize_stride(s)
        (t, b), _ = ops.resolve_padding((h, w), (kh, kw), s, pad)
        if pad == "SAME":
            totals.add((t + b) % 2)
        if pad == "VALID":
            ho, wo = ops.conv_output_hw((h, w), (kh, kw), s, pad)
            leftovers |= (wo - 1) * sw + kw < w
    assert totals == {0, 1} and leftovers


@pytest.mark.parametrize("n,h,w,c_in,c_out,k,stride,padding", CONV_CONFIGS)
def test_conv2d_forward_and_gradients(n, h, w, c_in, c_out, k, stride, padding):
    rng = np.random.default_rng(zlib.crc32(repr((n, h, w, c_in, c_out, k, stride, padding)).encode()))
    kh, kw = (k, k) if np.isscalar(k) else k
    x = rng.standard_normal((n, h, w, c_in))
    wt = rng.standard_normal((kh, kw, c_in, c_out))
    b = rng.standard_normal(c_out)
    y = ops.conv2d(x, wt, b, stride, padding)
    np.testing.assert_allclose(y, naive_conv2d(x, wt, b, stride, padding), rtol=1e-12, atol=1e-12)

    r = rng.standard_normal(y.shape)  # loss = sum(y * r), so dL/dy = r
    dx, dw, db = ops.conv2d_backward(r, x, wt, stride, padding)
    check_grad(lambda: float((ops.conv2d(x, wt, b, stride, padding) * r).sum()),
               {"x": x, "w": wt, "b": b}, {"x": dx, "w": dw, "b": db})

    none, dw2, db2 = ops.conv2d_backward(r, x, wt, stride, padding, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


def test_conv2d_keeps_float32_and_rejects_wrong_dy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    b = np.zeros(4, np.float32)
    y = ops.conv2d(x, w, b, 1, "SAME")
    assert y.dtype == np.float32 and y.flags.c_contiguous
    dx, dw, db = ops.conv2d_backward(np.ones_like(y), x, w, 1, "SAME")
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    with pytest.raises(ValueError, match="dy has shape"):
        ops.conv2d_backward(np.ones((2, 5, 5, 4), np.float32), x, w, 1, "SAME")


# --------------------------------------------------------------------------- pooling

POOL_SHAPES = [(2, 4, 4, 1, 2), (1, 5, 7, 3, 2), (2, 6, 6, 2, 3), (1, 3, 4, 2, 1)]


@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_pool_gradients(shape):
    *x_shape, size = shape
    rng = np.random.default_rng(size)
    x = rng.standard_normal(x_shape)
    y_avg = ops.avgpool2d(x, size)
    r = rng.standard_normal(y_avg.shape)
    check_grad(lambda: float((ops.avgpool2d(x, size) * r).sum()),
               {"x": x}, {"x": ops.avgpool2d_backward(r, x.shape, size)})
    y_max, mask = ops.maxpool2d(x, size)
    assert y_max.shape == y_avg.shape
    check_grad(lambda: float((ops.maxpool2d(x, size)[0] * r).sum()),
               {"x": x}, {"x": ops.maxpool2d_backward(r, mask, size)})


def test_pool_values_and_leftovers():
    x = np.arange(2 * 5 * 7 * 3, dtype=np.float64).reshape(2, 5, 7, 3) % 11
    y, mask = ops.maxpool2d(x, 2)
    assert y.shape == (2, 2, 3, 3)
    for i, j in itertools.product(range(2), range(3)):
        window = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2, :]
        np.testing.assert_array_equal(y[:, i, j, :], window.max(axis=(1, 2)))
        np.testing.assert_array_equal(ops.avgpool2d(x, 2)[:, i, j, :], window.mean(axis=(1, 2)))
        m = mask[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2, :]
        np.testing.assert_array_equal(m.sum(axis=(1, 2)), 1)
        np.testing.assert_array_equal((m * window).sum(axis=(1, 2)), y[:, i, j, :])
    # the leftover last row and column are ignored by the forward and get no gradient
    assert not mask[:, 4, :, :].any() and not mask[:, :, 6, :].any()
    dx = ops.avgpool2d_backward(np.ones_like(y), x.shape, 2)
    assert not dx[:, 4, :, :].any() and not dx[:, :, 6, :].any()
    assert dx[:, :4, :6, :].min() == 0.25
    # integers average in float64, as conv2d computes them
    np.testing.assert_array_equal(ops.avgpool2d(x.astype(np.int64), 2), ops.avgpool2d(x, 2))
    # a map smaller than a window in either direction has nothing to pool (not an empty result)
    for shape, size in (((1, 1, 4, 1), 2), ((1, 4, 1, 1), 2), ((1, 4, 4, 1), 0)):
        for pool in (ops.avgpool2d, ops.maxpool2d):
            with pytest.raises(ValueError, match="cannot pool"):
                pool(np.zeros(shape), size)


def test_maxpool_mask_picks_first_maximum_in_row_major_order():
    x = np.zeros((1, 4, 4, 2))
    x[0, 1, 0, 1] = x[0, 0, 1, 1] = 5.0  # a tie inside the top-left window of channel 1
    _, mask = ops.maxpool2d(x, 2)
    expected = np.zeros((1, 4, 4, 2))
    expected[0, ::2, ::2, 0] = 1  # all-zero windows: the top-left entry is the first maximum
    expected[0, ::2, ::2, 1] = 1
    expected[0, 0, 0, 1] = 0
    expected[0, 0, 1, 1] = 1      # (0, 1) precedes (1, 0) in row-major order
    np.testing.assert_array_equal(mask, expected)


def test_transposed_pool_backward_is_the_transposed_gradient():
    """Seed 002's experiment: transposing dy and the mask routes each gradient to the
    mirror image (H <-> W) of the right input, so it differs unless the map is symmetric."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 4, 3))
    dy = rng.standard_normal((2, 2, 2, 3))
    y, mask = ops.maxpool2d(x, 2)
    right = ops.maxpool2d_backward(dy, mask, 2)
    wrong = ops.maxpool2d_backward(dy, mask, 2, transposed=True)
    np.testing.assert_array_equal(wrong, right.transpose(0, 2, 1, 3))
    assert not np.allclose(wrong, right)
    # wrong routing: some gradient lands on entries that were not the window maximum
    assert (wrong[mask == 0] != 0).any()
    avg_right = ops.avgpool2d_backward(dy, x.shape, 2)
    avg_wrong = ops.avgpool2d_backward(dy, x.shape, 2, transposed=True)
    np.testing.assert_array_equal(avg_wrong, avg_right.transpose(0, 2, 1, 3))
    assert not np.allclose(avg_wrong, avg_right)
    with pytest.raises(ValueError, match="square"):
        ops.maxpool2d_backward(dy[:, :, :1], ops.maxpool2d(x[:, :, :2], 2)[1], 2, transposed=True)


# --------------------------------------------------------------------------- activations, losses


@pytest.mark.parametrize("name", ops.ACTIVATIONS)
def test_activation_gradients(name):
    rng = np.random.default_rng(len(name))
    z = rng.standard_normal((3, 4, 5)) * 2
    r = rng.standard_normal(z.shape)
    a = ops.activation(name, z)
    check_grad(lambda: float((ops.activation(name, z) * r).sum()),
               {"z": z}, {"z": ops.activation_backward(name, r, z, a)})
    z32 = z.astype(np.float32)
    assert ops.activation(name, z32).dtype == np.float32
    a32 = ops.activation(name, z32)
    assert ops.activation_backward(name, r.astype(np.float32), z32, a32).dtype == np.float32


def test_activation_values_and_unknown_name():
    z = np.array([-1000.0, -1.0, 0.0, 2.0, 1000.0])
    np.testing.assert_array_equal(ops.activation("relu", z), [0, 0, 0, 2, 1000])
    np.testing.assert_allclose(ops.activation("sigmoid", z[1:4]), 1 / (1 + np.exp(-z[1:4])), rtol=1e-15)
    assert np.isfinite(ops.activation("sigmoid", z)).all()
    np.testing.assert_allclose(ops.activation("softplus", z), [0, np.log1p(np.exp(-1)), np.log(2),
                                                             2 + np.log1p(np.exp(-2)), 1000], rtol=1e-15)
    with pytest.raises(ValueError, match="unknown activation"):
        ops.activation("elu", z)
    # ReLU's derivative at the kink is 0 (as in PyTorch): a unit at exactly 0 passes no gradient.
    z = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(ops.activation_backward("relu", np.ones(3), z, ops.activation("relu", z)), [0, 0, 1])


def test_softmax_cross_entropy():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((5, 7)) * 3
    labels = rng.integers(0, 7, size=5)
    loss, dlogits = ops.softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ops.softmax(logits), p, rtol=1e-13)
    np.testing.assert_array_equal(ops.softmax(np.array([[1000.0, 0.0]])), [[1.0, 0.0]])  # no exp overflow
    np.testing.assert_allclose(loss, -np.log(p[np.arange(5), labels]).mean(), rtol=1e-13)
    check_grad(lambda: ops.softmax_cross_entropy(logits, labels)[0], {"logits": logits}, {"logits": dlogits})
    # stable for logits far beyond exp's range
    big = np.array([[1e4, 0.0, -1e4]], dtype=np.float32)
    loss, d = ops.softmax_cross_entropy(big, np.array([1]))
    assert loss == pytest.approx(1e4) and np.isfinite(d).all() and d.dtype == np.float32
    for bad in ([0, 1, 2, 3, 7], [0, 1, -1, 3, 4]):  # -1 would silently pick the last class
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 7\)"):
            ops.softmax_cross_entropy(logits, np.array(bad))


def test_l2_cost():
    rng = np.random.default_rng(5)
    pred = rng.standard_normal((6, 1))
    target = rng.integers(0, 2, size=6).astype(np.float64)
    loss, dpred = ops.l2_cost(pred, target)
    assert loss == pytest.approx(0.5 * ((pred[:, 0] - target) ** 2).sum() / 6, rel=1e-14)
    check_grad(lambda: ops.l2_cost(pred, target)[0], {"pred": pred}, {"pred": dpred})


def test_nan_in_pixels_no_window_reads_stays_out_of_the_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 5, 5, 1))
    w = rng.standard_normal((2, 2, 1, 2))
    dy = rng.standard_normal((1, 2, 2, 2))
    clean = ops.conv2d_backward(dy, x, w, stride=2)
    x[:, 4, :, :] = x[:, :, 4, :] = np.nan  # stride 2, 2x2 windows: row 4 and column 4 are never read
    y, cache = ops.conv2d_forward(x, w, stride=2, workspace=(ws := ops.Workspace()))
    dirty = ops.conv2d_backward(dy, x, w, stride=2, cache=cache, workspace=ws)
    assert np.isfinite(y).all()
    for a, b in zip(clean, dirty):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("h, w, k, stride, padding", [
    (3, 3, 1, 9, 2),                        # the window sees only the top-left padding
    (2, 3, 1, 5, ((0, 1), (2, 0))),         # wider left padding than the one window reaches
])
def test_padding_beyond_every_window_reads_no_pixel(h, w, k, stride, padding):
    """The only windows sit in the padding: the output is the bias, and no gradient reaches x or w."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, h, w, 3))
    kernel, bias = rng.normal(size=(k, k, 3, 4)), rng.normal(size=4)
    y = ops.conv2d(x, kernel, bias, stride, padding)
    np.testing.assert_array_equal(y, np.broadcast_to(bias, y.shape))
    dx, dw, db = ops.conv2d_backward(np.ones_like(y), x, kernel, stride, padding)
    assert not dx.any() and not dw.any()
    np.testing.assert_array_equal(db, np.full(4, y.size // 4))


def test_softplus_keeps_its_tails_in_float32_and_never_overflows():
    z = np.array([-80, -20, -1, 0, 1, 20, 80], dtype=np.float32)
    exact = np.logaddexp(0, z.astype(np.float64))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a = ops.activation("softplus", z)
        dz = ops.activation_backward("softplus", np.ones_like(z), z, a)
        huge = ops.activation("softplus", np.array([-1e30, 1e30], np.float32))
    assert a.dtype == dz.dtype == np.float32
    np.testing.assert_allclose(a, exact, rtol=1e-6, atol=0)
    np.testing.assert_allclose(dz, 1 / (1 + np.exp(-z.astype(np.float64))), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(huge, np.array([0, 1e30], np.float32))


def test_sigmoid_keeps_its_tails_in_float32():
    """1 - tanh cancellation floored the negative tail: exactly 0 from z = -18 on in float32."""
    z = np.array([-80, -20, -17, -12, 0, 12, 20, 80], dtype=np.float32)
    exact = 1 / (1 + np.exp(-z.astype(np.float64)))
    a = ops.activation("sigmoid", z)
    assert a.dtype == np.float32
    np.testing.assert_allclose(a, exact, rtol=1e-6, atol=0)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow for huge |z|
        np.testing.assert_array_equal(ops.activation("sigmoid", np.array([-1e30, 1e30], np.float32)), [0, 1])
