"""Pure NumPy operations of the engine: convolution, pooling, activations and losses.

Conventions: activations are NHWC ``(N, H, W, C)``, conv kernels ``(kh, kw, C_in, C_out)``.
Every op keeps the floating dtype it is given (float32 for training, float64 for gradient
checks). Forward/backward pairs are pure functions: the caller keeps whatever backward needs.

The convolution is im2col + one GEMM: a strided *view* of the padded input enumerates every
window, one copy lays the windows out as rows, and a matrix product with the flattened
kernel does all the multiply-adds in BLAS. There is no Python loop over pixels, positions
or batch items; the only loops are over the ``kh * kw`` kernel taps when windows are
scattered back (col2im).
"""

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

ACTIVATIONS = ("relu", "tanh", "arctan", "sigmoid", "identity")


# --------------------------------------------------------------------------- geometry

def normalize_stride(stride):
    """Return ``(sh, sw)`` from an int or a pair of positive ints."""
    if isinstance(stride, (int, np.integer)):
        pair = (int(stride), int(stride))
    else:
        try:
            sh, sw = stride
        except (TypeError, ValueError):
            raise ValueError(f"stride must be an int or a pair (sh, sw), got {stride!r}") from None
        pair = (int(sh), int(sw))
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"stride must be positive, got {stride!r}")
    return pair


def _same_padding_1d(size, k, s):
    """TensorFlow SAME rule (seed 001): ``O = ceil(I/s)``, ``P = max((O-1)*s + k - I, 0)``,
    the first side gets ``floor(P/2)`` and the second the rest (one more when P is odd)."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return (total // 2, total - total // 2)


def resolve_padding(in_hw, k_hw, stride, padding):
    """Turn a padding description into explicit amounts ``((top, bottom), (left, right))``.

    in_hw: (H, W) of the input; k_hw: (kh, kw); stride: int or (sh, sw).
    padding: ``"VALID"`` (none), ``"SAME"`` (TensorFlow rule, possibly asymmetric),
    an int p (p on every side) or ``((top, bottom), (left, right))``.
    """
    (h, w), (kh, kw) = in_hw, k_hw
    sh, sw = normalize_stride(stride)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0), (0, 0))
        if mode == "SAME":
            return (_same_padding_1d(h, kh, sh), _same_padding_1d(w, kw, sw))
        raise ValueError(f"padding must be 'VALID', 'SAME', an int or ((t, b), (l, r)); got {padding!r}")
    if isinstance(padding, (int, np.integer)):
        pads = ((int(padding),) * 2,) * 2
    else:
        try:
            (t, b), (l, r) = padding
        except (TypeError, ValueError):
            raise ValueError(
                f"padding must be 'VALID', 'SAME', an int or ((t, b), (l, r)); got {padding!r}"
            ) from None
        pads = ((int(t), int(b)), (int(l), int(r)))
    if min(pads[0] + pads[1]) < 0:
        raise ValueError(f"padding must not be negative, got {padding!r}")
    return pads


def conv_output_hw(in_hw, k_hw, stride, padding):
    """Output ``(H_out, W_out)`` of a convolution: ``floor((I + P - k) / s) + 1`` per axis.

    Rows/columns of the (padded) input that a whole window can no longer reach are dropped,
    which for VALID is seed 001's ``ceil((I - k + 1) / s)``.
    """
    (h, w), (kh, kw) = in_hw, k_hw
    sh, sw = normalize_stride(stride)
    (t, b), (l, r) = resolve_padding(in_hw, k_hw, (sh, sw), padding)
    hp, wp = h + t + b, w + l + r
    if hp < kh or wp < kw:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input {hp}x{wp}")
    return ((hp - kh) // sh + 1, (wp - kw) // sw + 1)


# --------------------------------------------------------------------------- convolution

def _pad_hw(x, pads):
    """Zero-pad the two spatial axes. x: (N, H, W, C) -> (N, H+t+b, W+l+r, C)."""
    (t, b), (l, r) = pads
    if t == b == l == r == 0:
        return x
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))


def _windows(xp, k_hw, stride, out_hw):
    """Read-only strided view of every conv window, no copy.

    xp: (N, Hp, Wp, C) padded input -> (N, H_out, W_out, kh, kw, C).
    """
    n, _, _, c = xp.shape
    (kh, kw), (sh, sw), (ho, wo) = k_hw, stride, out_hw
    s0, s1, s2, s3 = xp.strides
    return as_strided(xp, shape=(n, ho, wo, kh, kw, c),
                      strides=(s0, s1 * sh, s2 * sw, s1, s2, s3), writeable=False)


def _conv_geometry(x_shape, w_shape, stride, padding):
    """Shared set-up of forward and backward: stride pair, explicit pads, output size."""
    _, h, w_, c_in = x_shape
    kh, kw, wc_in, _ = w_shape
    if wc_in != c_in:
        raise ValueError(f"kernel expects {wc_in} input channels, input has {c_in}")
    st = normalize_stride(stride)
    pads = resolve_padding((h, w_), (kh, kw), st, padding)
    out_hw = conv_output_hw((h, w_), (kh, kw), st, pads)
    return st, pads, out_hw


def conv2d(x, w, b=None, stride=1, padding="VALID"):
    """2-D cross-correlation (the "convolution" of deep learning), NHWC.

    x: (N, H, W, C_in); w: (kh, kw, C_in, C_out); b: (C_out,) or None.
    Returns y: (N, H_out, W_out, C_out) with ``y[n, i, j, o] = b[o] +
    sum_{p, q, c} xpad[n, i*sh + p, j*sw + q, c] * w[p, q, c, o]``.
    """
    x = np.asarray(x)
    n = x.shape[0]
    kh, kw, c_in, c_out = w.shape
    st, pads, (ho, wo) = _conv_geometry(x.shape, w.shape, stride, padding)
    cols = _windows(_pad_hw(x, pads), (kh, kw), st, (ho, wo))
    cols = cols.reshape(n * ho * wo, kh * kw * c_in)            # (N*Ho*Wo, kh*kw*C_in), a copy
    y = cols @ w.reshape(kh * kw * c_in, c_out)                 # (N*Ho*Wo, C_out)
    if b is not None:
        y += b
    return y.reshape(n, ho, wo, c_out)


def conv2d_backward(dy, x, w, stride=1, padding="VALID", need_dx=True):
    """Gradients of :func:`conv2d` given the upstream gradient.

    dy: (N, H_out, W_out, C_out); x: (N, H, W, C_in) the forward input; w: (kh, kw, C_in, C_out).
    Returns (dx, dw, db): dx (N, H, W, C_in) or None when ``need_dx`` is False (the first
    layer has nothing upstream to feed), dw (kh, kw, C_in, C_out), db (C_out,).

    dx is seed 001's "pad delta, insert s-1 zeros between values, convolve with the kernel
    rotated by 180 degrees", computed as its equivalent scatter: every output position sends
    ``dy * w`` back to the window it read.
    """
    x = np.asarray(x)
    dy = np.asarray(dy)
    n, h, w_, _ = x.shape
    kh, kw, c_in, c_out = w.shape
    st, pads, (ho, wo) = _conv_geometry(x.shape, w.shape, stride, padding)
    if dy.shape != (n, ho, wo, c_out):
        raise ValueError(f"dy has shape {dy.shape}, expected {(n, ho, wo, c_out)}")
    xp = _pad_hw(x, pads)
    dy2 = dy.reshape(n * ho * wo, c_out)                        # (N*Ho*Wo, C_out)
    cols = _windows(xp, (kh, kw), st, (ho, wo)).reshape(n * ho * wo, kh * kw * c_in)
    dw = (cols.T @ dy2).reshape(kh, kw, c_in, c_out)
    db = dy2.sum(axis=0)
    if not need_dx:
        return None, dw, db
    dcols = dy2 @ w.reshape(kh * kw * c_in, c_out).T            # (N*Ho*Wo, kh*kw*C_in)
    dcols = dcols.reshape(n, ho, wo, kh, kw, c_in)
    dxp = np.zeros(xp.shape, dtype=dcols.dtype)                 # (N, Hp, Wp, C_in)
    sh, sw = st
    # col2im: one strided add per kernel tap; all positions of a tap are disjoint.
    for p in range(kh):
        for q in range(kw):
            dxp[:, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw, :] += dcols[:, :, :, p, q, :]
    (t, _), (l, _) = pads
    return dxp[:, t:t + h, l:l + w_, :], dw, db


# --------------------------------------------------------------------------- pooling

def _pool_out_hw(x_shape, size):
    _, h, w, _ = x_shape
    if size < 1 or h < size or w < size:
        raise ValueError(f"cannot pool {h}x{w} with {size}x{size} windows")
    return h // size, w // size


def _upsample_into(dy, shape, size):
    """Copy each pooled value over its window; leftover rows/cols stay 0.

    dy: (N, Ho, Wo, C) -> (N, H, W, C) with (H, W) = shape[1:3].
    """
    n, ho, wo, c = dy.shape
    out = np.zeros(shape, dtype=dy.dtype)
    block = out[:, :ho * size, :wo * size, :].reshape(n, ho, size, wo, size, c)
    block[...] = dy[:, :, None, :, None, :]
    return out


def _transposed_hw(a, name):
    """Swap H and W of (N, H, W, C) for seed 002's wrong backward (needs H == W)."""
    if a.shape[1] != a.shape[2]:
        raise ValueError(f"transposed pooling backward needs square maps, {name} is {a.shape}")
    return a.transpose(0, 2, 1, 3)


def avgpool2d(x, size=2):
    """Average over non-overlapping size x size windows (stride = size, leftovers dropped).

    x: (N, H, W, C) -> y: (N, H // size, W // size, C).
    """
    n, _, _, c = x.shape
    ho, wo = _pool_out_hw(x.shape, size)
    blocks = x[:, :ho * size, :wo * size, :].reshape(n, ho, size, wo, size, c)
    return blocks.mean(axis=(2, 4), dtype=x.dtype)


def avgpool2d_backward(dy, x_shape, size=2, transposed=False):
    """Gradient of :func:`avgpool2d`: each input of a window gets ``dy / size**2``.

    dy: (N, Ho, Wo, C); x_shape: (N, H, W, C) -> dx: x_shape. ``transposed=True`` swaps H and W
    of dy first (the seed-002 experiment; needs square maps).
    """
    if transposed:
        dy = _transposed_hw(dy, "dy")
    return _upsample_into(dy / (size * size), tuple(x_shape), size)


def maxpool2d(x, size=2):
    """Max over non-overlapping size x size windows (stride = size, leftovers dropped).

    x: (N, H, W, C) -> (y, mask): y (N, H // size, W // size, C); mask (N, H, W, C) of x's
    dtype with exactly one 1 per window at its first maximum in row-major order, zeros
    elsewhere (including leftover rows/cols). The mask is what backward routes through.
    """
    n, h, w, c = x.shape
    ho, wo = _pool_out_hw(x.shape, size)
    blocks = x[:, :ho * size, :wo * size, :].reshape(n, ho, size, wo, size, c)
    flat = blocks.transpose(0, 1, 3, 5, 2, 4).reshape(n, ho, wo, c, size * size)
    arg = flat.argmax(axis=-1)                                  # (N, Ho, Wo, C), first max
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    onehot = (arg[..., None] == np.arange(size * size)).astype(x.dtype)
    mask = np.zeros(x.shape, dtype=x.dtype)
    onehot = onehot.reshape(n, ho, wo, c, size, size).transpose(0, 1, 4, 2, 5, 3)  # (N, Ho, s, Wo, s, C)
    mask[:, :ho * size, :wo * size, :] = onehot.reshape(n, ho * size, wo * size, c)
    return y, mask


def maxpool2d_backward(dy, mask, size=2, transposed=False):
    """Gradient of :func:`maxpool2d`: each pooled gradient goes to its window's maximum.

    dy: (N, Ho, Wo, C); mask: (N, H, W, C) from the forward -> dx: (N, H, W, C).
    ``transposed=True`` is seed 002's wrong backward: dy and the mask are both transposed
    H <-> W before routing (needs square maps).
    """
    if transposed:
        dy, mask = _transposed_hw(dy, "dy"), _transposed_hw(mask, "mask")
    return _upsample_into(dy, mask.shape, size) * mask


# --------------------------------------------------------------------------- activations

def _check_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def activation(name, z):
    """Apply an activation element-wise. z: any shape -> a: same shape and dtype."""
    _check_activation(name)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "arctan":
        return np.arctan(z)
    if name == "sigmoid":
        # 0.5 * (1 + tanh(z/2)) is sigmoid without exp overflow for large |z|.
        return 0.5 * (1 + np.tanh(0.5 * z))
    return z.copy()


def activation_backward(name, da, z, a):
    """dL/dz from dL/da. da, z (pre-activation), a (= activation(name, z)): same shape."""
    _check_activation(name)
    if name == "relu":
        return da * (z > 0)
    if name == "tanh":
        return da * (1 - a * a)
    if name == "arctan":
        return da / (1 + z * z)
    if name == "sigmoid":
        return da * (a * (1 - a))
    return da.copy()


# --------------------------------------------------------------------------- losses

def softmax(z):
    """Row-wise softmax, shifted by the row maximum so exp never overflows. z, p: (N, K)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, fused and stable.

    logits: (N, K); labels: (N,) ints in [0, K). Returns (loss: float, dlogits: (N, K)) with
    ``dlogits = (softmax(logits) - onehot(labels)) / N``.
    """
    n, k = logits.shape
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}), got range [{labels.min()}, {labels.max()}]")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_norm                                  # (N, K) log-probabilities
    rows = np.arange(n)
    loss = -float(log_p[rows, labels].mean())
    dlogits = np.exp(log_p)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return loss, dlogits


def l2_cost(pred, target):
    """Seed 002's L2 cost ``0.5 * sum((pred - target)**2) / N``.

    pred: (N, ...); target: same number of elements (reshaped to pred's shape).
    Returns (loss: float, dpred: pred's shape) with ``dpred = (pred - target) / N``.
    """
    diff = pred - np.asarray(target, dtype=pred.dtype).reshape(pred.shape)
    n = pred.shape[0]
    return 0.5 * float((diff * diff).sum()) / n, diff / n
