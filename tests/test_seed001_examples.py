"""Seed 001's worked examples as exact unit tests (see ../shared/seeds/001_*.txt).

The article writes a(row)(col) with 1-based indices; here a[r-1, c-1]. Its backward rule is
"insert s-1 zeros between the deltas, pad with k-1 zeros, convolve (stride 1) with the kernel
rotated by 180 degrees"; the engine scatters instead, and both must agree exactly.
"""

import numpy as np
import pytest

from engine import ops

# Distinct primes make every product identifiable: a wrong pairing of delta and weight gives a
# different integer, so exact equality checks the article's formulas symbol by symbol.
W2 = np.array([[2.0, 3.0], [5.0, 7.0]])          # w11 w12 / w21 w22
DELTA = np.array([[11.0, 13.0], [17.0, 19.0]])   # d11 d12 / d21 d22


def as_nhwc(a):
    """(H, W) -> (1, H, W, 1)."""
    return a[None, :, :, None]


def as_kernel(k):
    """(kh, kw) -> (kh, kw, 1, 1)."""
    return k[:, :, None, None]


def article_backward(delta, w, stride, in_hw):
    """Seed 001's recipe for dL/da of a single-channel VALID conv, written independently of
    the engine's backward. delta: (Ho, Wo); w: (kh, kw); returns (H, W)."""
    kh, kw = w.shape
    sh, sw = stride
    dilated = np.zeros(((delta.shape[0] - 1) * sh + 1, (delta.shape[1] - 1) * sw + 1))
    dilated[::sh, ::sw] = delta                                  # s-1 zeros between deltas
    padded = np.pad(dilated, ((kh - 1, kh - 1), (kw - 1, kw - 1)))  # k-1 zeros around
    rotated = w[::-1, ::-1]  # rot180
    full = np.array([[np.sum(padded[i:i + kh, j:j + kw] * rotated)  # stride-1 windows, by hand
                      for j in range(padded.shape[1] - kw + 1)] for i in range(padded.shape[0] - kh + 1)])
    out = np.zeros(in_hw)  # rows/cols no window reached (VALID leftovers) get no gradient
    out[:full.shape[0], :full.shape[1]] = full
    return out


def test_5x5_input_first_output_is_4():
    kernel = np.array([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]])
    # The article's figure (the UFLDL animation) is lost; its text gives the first window
    # [[1,1,1],[0,1,1],[0,0,1]] and the result 4. This is the animation's full input.
    image = np.array([[1.0, 1, 1, 0, 0],
                      [0, 1, 1, 1, 0],
                      [0, 0, 1, 1, 1],
                      [0, 0, 1, 1, 0],
                      [0, 1, 1, 0, 0]])
    y = ops.conv2d(as_nhwc(image), as_kernel(kernel))[0, :, :, 0]
    assert y.shape == (3, 3)                     # (I - k) / s + 1 = (5 - 3) / 1 + 1
    assert y[0, 0] == 1*1 + 1*0 + 1*1 + 0*0 + 1*1 + 1*0 + 0*1 + 0*0 + 1*1 == 4
    np.testing.assert_array_equal(y, [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_3x3_input_2x2_kernel_stride_1_backward():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3))
    dx, _, _ = ops.conv2d_backward(as_nhwc(DELTA), as_nhwc(a), as_kernel(W2), 1, "VALID")
    grad = dx[0, :, :, 0]
    (w11, w12), (w21, w22) = W2
    (d11, d12), (d21, d22) = DELTA
    expected = np.array([
        [d11 * w11, d11 * w12 + d12 * w11, d12 * w12],
        [d11 * w21 + d21 * w11, d11 * w22 + d12 * w21 + d21 * w12 + d22 * w11, d12 * w22 + d22 * w12],
        [d21 * w21, d21 * w22 + d22 * w21, d22 * w22],
    ])
    np.testing.assert_array_equal(grad, expected)
    assert grad[1, 1] == d11 * w22 + d12 * w21 + d21 * w12 + d22 * w11 == 77 + 65 + 51 + 38
    np.testing.assert_array_equal(grad, article_backward(DELTA, W2, (1, 1), (3, 3)))


def test_4x4_input_2x2_kernel_stride_2_backward():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 4))
    dx, _, _ = ops.conv2d_backward(as_nhwc(DELTA), as_nhwc(a), as_kernel(W2), 2, "VALID")
    grad = dx[0, :, :, 0]
    # windows do not overlap: each a gets exactly one delta times the weight it met
    expected = np.block([[DELTA[0, 0] * W2, DELTA[0, 1] * W2],
                         [DELTA[1, 0] * W2, DELTA[1, 1] * W2]])
    np.testing.assert_array_equal(grad, expected)
    assert grad[1, 2] == DELTA[0, 1] * W2[1, 0]    # the article's  grad a23 = d12 w21
    np.testing.assert_array_equal(grad, article_backward(DELTA, W2, (2, 2), (4, 4)))


@pytest.mark.parametrize("h,w,k,s", [(5, 5, 3, 1), (7, 6, 3, 2), (8, 9, 2, 3), (6, 6, 5, 1), (9, 7, 3, 3)])
def test_rot180_recipe_equals_engine_backward(h, w, k, s):
    """The recipe holds for any stride, including VALID inputs with leftover rows/columns."""
    rng = np.random.default_rng(h * w + k * s)
    a = rng.standard_normal((h, w))
    kernel = rng.standard_normal((k, k))
    ho, wo = ops.conv_output_hw((h, w), (k, k), s, "VALID")
    delta = rng.standard_normal((ho, wo))
    dx, _, _ = ops.conv2d_backward(as_nhwc(delta), as_nhwc(a), as_kernel(kernel), s, "VALID")
    np.testing.assert_allclose(dx[0, :, :, 0], article_backward(delta, kernel, (s, s), (h, w)),
                               rtol=1e-12, atol=1e-12)


def test_2x2x2_multichannel_example_is_a_single_value():
    """The article multiplies the arrays element-wise and sums over channels per position,
    getting [[26, 40], [58, 80]]. A valid 2x2 convolution of a 2x2 input has ONE position:
    the sum of all eight products, 204 (= 26 + 40 + 58 + 80)."""
    ch1 = np.array([[1.0, 2], [3, 4]])
    ch2 = np.array([[5.0, 6], [7, 8]])
    x = np.stack([ch1, ch2], axis=-1)[None]     # (1, 2, 2, 2)
    w = np.stack([ch1, ch2], axis=-1)[..., None]  # (2, 2, 2, 1)
    y = ops.conv2d(x, w)
    assert y.shape == (1, 1, 1, 1)
    assert y[0, 0, 0, 0] == 204
    article = ch1 * ch1 + ch2 * ch2
    np.testing.assert_array_equal(article, [[26, 40], [58, 80]])
    assert article.sum() == y[0, 0, 0, 0]


def test_softmax_jacobian_chained_with_the_cross_entropy_is_the_fused_gradient():
    """The article differentiates softmax with its Jacobian dp_i/dz_j = p_i (δ_ij - p_j) and the
    cross-entropy -Σ y log p with dL/dp = -y / p; chained, they give the engine's fused p - y."""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 10)) * 3
    labels = rng.integers(0, 10, size=4)
    loss, dlogits = ops.softmax_cross_entropy(logits, labels)
    p = ops.softmax(logits)
    y = np.eye(10)[labels]
    assert loss == pytest.approx(np.mean(-np.log(p[np.arange(4), labels])), rel=1e-12)
    for n in range(4):
        jacobian = np.diag(p[n]) - np.outer(p[n], p[n])  # (10, 10), symmetric
        chained = jacobian.T @ (-y[n] / p[n]) / 4        # dL/dz = J^T dL/dp, mean over the batch
        np.testing.assert_allclose(dlogits[n], chained, rtol=1e-10, atol=1e-15)
