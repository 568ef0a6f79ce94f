"""Pure NumPy operations of the engine: convolution, pooling, activations and losses.

Conventions: activations are NHWC ``(N, H, W, C)``, conv kernels ``(kh, kw, C_in, C_out)``.
Every op keeps the floating dtype it is given (float32 for training, float64 for gradient
checks). Forward/backward pairs are pure functions: the caller keeps whatever backward needs.

The convolution does all its multiply-adds in a few large BLAS GEMMs over a flat, zero-padded
copy of the input (see the note above :class:`Workspace`); the backward pass reuses the same
machinery for dx. There is no Python loop over pixels, positions or batch items; the only loops
are over kernel rows (kh GEMMs, and kh partial dw products), the kh*kw taps when a 1-3 channel input's
column matrix is filled, and pooling window offsets (size**2 strided adds).
"""

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from engine import parallel

ACTIVATIONS = ("relu", "softplus", "tanh", "arctan", "sigmoid", "identity")


# --------------------------------------------------------------------------- geometry

def whole_number(value, what):
    """``value`` as an int when it is a whole number (an int or a NumPy integer), else ValueError naming
    ``what``: 2.7 filters or a (2.5, 2) stride were truncated without a word."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return int(value)


def normalize_stride(stride):
    """Return ``(sh, sw)`` from an int or a pair of positive ints."""
    if isinstance(stride, (int, np.integer)) and not isinstance(stride, bool):
        pair = (int(stride), int(stride))
    else:
        try:
            sh, sw = stride
        except (TypeError, ValueError):
            raise ValueError(f"stride must be an int or a pair (sh, sw), got {stride!r}") from None
        pair = (whole_number(sh, "stride"), whole_number(sw, "stride"))
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
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        pads = ((int(padding),) * 2,) * 2
    else:
        try:
            (t, b), (l, r) = padding
        except (TypeError, ValueError):
            raise ValueError(
                f"padding must be 'VALID', 'SAME', an int or ((t, b), (l, r)); got {padding!r}"
            ) from None
        t, b, l, r = (whole_number(v, "padding") for v in (t, b, l, r))
        pads = ((t, b), (l, r))
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
#
# Layout: the zero-padded input is stored on an (N, Hp, Wp) grid as one flat (rows, C) matrix
# with rows = N*Hp*Wp, after t zero grid rows and followed by a zero tail; pixel (n, i, j) is
# grid point (n, t + i, l + j). Consecutive images and consecutive image rows share their zero
# borders: Hp = H + max(t, b) and Wp = W + max(l, r) (for 3x3 SAME, 29x29 instead of 30x30 for a
# 28x28 image, 15x15 instead of 16x16 for 14x14: 7% and 12% less work), since a window reaching
# past the right (bottom) end of its grid row (image) lands in the left (top) zeros of the next.
# Output position (n, i, j) is row r = (n*Hp + i)*Wp + j, and kernel tap (p, q) reads row
# r + p*Wp + q (a grid point when j + q < Wp, else a zero of the next grid row). For a fixed
# kernel row p the taps q = 0..kw-1 are therefore kw consecutive rows, i.e. kw*C consecutive
# numbers: the "column" matrix A[r] = flat[r:r+kw].ravel() is one strided copy with kw-fold (not
# kh*kw-fold) duplication, and the whole convolution is kh GEMMs on contiguous row slices,
#     out = sum_p A[p*Wp : p*Wp + rows] @ w[p].reshape(kw*C, C_out).
# Rows that are not outputs (i >= Ho or j >= Wo) compute garbage that is never read. Strides > 1
# keep every s-th position (s**2 more work: no preset uses them). The backward pass reuses the
# same machinery: dy placed on the output rows of the same grid (zeros elsewhere, i.e. seed 001's
# "insert s-1 zeros and pad") gives dw as kh GEMMs A_p^T @ dy, and, with (kh-1)*Wp + kw-1 zero
# rows in front, dx as the same shifted-GEMM convolution with the kernel rotated by 180 degrees.


class Workspace:
    """Scratch arrays kept between calls, so the hot path neither allocates nor page-faults.

    ``get(name, shape, dtype, layout)`` returns the array stored under ``name`` when shape, dtype
    and ``layout`` (anything hashable that decides which entries callers overwrite, e.g. the
    padding) match one of the last ``KEPT`` requests for that name, and a new zero-filled array
    otherwise. Entries callers never write (the zero borders of padded buffers) therefore stay zero.
    A workspace array is overwritten by the next call asking for the same name, shape, dtype and
    layout: nothing returned to callers of the public functions lives in a workspace, except the
    ``cache`` of :func:`conv2d_forward`. It holds the memory of the last ``KEPT`` shapes together.
    """

    KEPT = 2  # shapes kept per name: one batch's passes come in two sizes at most (engine.parallel.shard_plan)

    def __init__(self):
        self._arrays = {}  # name -> {key: array}, least recently used first
        self.columns_written = 0  # times an input's column matrix was (re)built here: dates a forward cache

    def get(self, name, shape, dtype, layout=None):
        key = (tuple(shape), np.dtype(dtype), layout)
        held = self._arrays.setdefault(name, {})
        array = held.pop(key, None)
        if array is None:
            if len(held) >= self.KEPT:
                del held[next(iter(held))]  # before allocating: never KEPT + 1 of them at once
            array = np.zeros(shape, dtype)
        held[key] = array
        return array


def check_nhwc(shape, name):
    """``shape`` when it is a 4-axis (N, H, W, C) array's, else ValueError naming the array: a single image
    (H, W, C) without its batch axis failed deep inside with "not enough values to unpack"."""
    if len(shape) != 4:
        raise ValueError(f"{name} must be a batch (N, H, W, C), got shape {tuple(shape)}"
                         + ("; add the batch axis: x[None]" if len(shape) == 3 else ""))
    return shape


class _ConvGeometry:
    """Sizes of one convolution: input (n, h, w, c), kernel (kh, kw, c, co), stride (sh, sw),
    top/left padding (t, l), padded grid (hp, wp), output (ho, wo), rows = n*hp*wp."""

    def __init__(self, x_shape, w_shape, stride, padding):
        self.n, self.h, self.w, self.c = check_nhwc(x_shape, "x")
        if len(w_shape) != 4:
            raise ValueError(f"the kernel w must be (kh, kw, C_in, C_out), got shape {tuple(w_shape)}")
        self.kh, self.kw, wc_in, self.co = w_shape
        if min(w_shape) < 1:
            raise ValueError(f"the kernel w has an empty axis: shape {tuple(w_shape)}")
        if wc_in != self.c:
            raise ValueError(f"kernel expects {wc_in} input channels, input has {self.c}")
        self.sh, self.sw = normalize_stride(stride)
        hw, k_hw, st = (self.h, self.w), (self.kh, self.kw), (self.sh, self.sw)
        (self.t, b), (self.l, r) = resolve_padding(hw, k_hw, st, padding)
        self.ho, self.wo = conv_output_hw(hw, k_hw, st, ((self.t, b), (self.l, r)))
        # Neighbouring images (rows) share their zero borders: max(t, b) zero rows between two
        # images serve as the bottom padding of one and the top padding of the next (see the
        # layout note), and the grid is only as large as the outputs need beyond that.
        self.hp = max(self.h + max(self.t, b), (self.ho - 1) * self.sh + 1)
        self.wp = max(self.w + max(self.l, r), (self.wo - 1) * self.sw + 1)
        self.rows = self.n * self.hp * self.wp
        self.key = (x_shape, w_shape, self.sh, self.sw, self.t, b, self.l, r)

    def flat_rows(self):
        """Rows of a flat padded buffer: the grid plus the tail the last windows reach into."""
        return self.rows + (self.kh - 1) * self.wp + self.kw - 1

    def on_grid(self, flat, top, left, size, step=(1, 1)):
        """View (n, size[0], size[1], C) of grid positions (top + i*step[0], left + j*step[1])
        in a flat (>= rows, C) buffer laid out on the padded grid."""
        grid = flat[:self.rows].reshape(self.n, self.hp, self.wp, flat.shape[1])
        bottom, right = top + (size[0] - 1) * step[0] + 1, left + (size[1] - 1) * step[1] + 1
        return grid[:, top:bottom:step[0], left:right:step[1]]

    def outputs(self, out_rows):
        """The (n, ho, wo, co) view of the real outputs in a (rows, co) padded-grid result."""
        return self.on_grid(out_rows, 0, 0, (self.ho, self.wo), (self.sh, self.sw))


def _columns(flat, geo, ws, name, span):
    """Column matrix of a flat (flat_rows, C) padded buffer, a workspace array: row r holds the
    ``span`` kernel rows starting at r, flat[r + p*wp : r + p*wp + kw].ravel() for p < span.

    span is 1 (kw-fold duplication, kh GEMMs) or kh (the classic im2col, one GEMM). Shape
    (rows + (kh - span)*wp, span*kw*C); one copy of an overlapping strided view (a transposed
    view of a (kh*kw*C, rows) array for 1-3 channels).
    """
    c, s0, s1 = flat.shape[1], *flat.strides
    if span == geo.kh and c < 4:
        # So few channels that the strided copy below would move 3-number pieces (20x slower):
        # fill the transposed matrix tap by tap instead, each a long contiguous run.
        cols_t = ws.get(name, (geo.kh * geo.kw * c, geo.rows), flat.dtype)
        for p in range(geo.kh):
            for q in range(geo.kw):
                tap, offset = (p * geo.kw + q) * c, p * geo.wp + q
                cols_t[tap:tap + c] = flat[offset:offset + geo.rows].T
        return cols_t.T
    shape = (geo.rows + (geo.kh - span) * geo.wp, span, geo.kw * c)
    cols = ws.get(name, (shape[0], span * geo.kw * c), flat.dtype)
    np.copyto(cols.reshape(shape), as_strided(flat, shape, (s0, geo.wp * s0, s1), writeable=False))
    return cols


def _span(geo, c):
    """Kernel rows per column-matrix row: the whole kernel when a kernel row holds few numbers
    (kw*C < 32, e.g. the 1-channel input layer), where GEMMs with so short a K are slow."""
    return geo.kh if geo.kw * c < 32 else 1


# OpenBLAS (NumPy's BLAS) runs a product of at most 10**6 multiply-adds (M*N*K <= 100**3, its rule in
# kernel/x86_64/sgemm_small_kernel_permit_skylakex.c, with more conditions for transposed operands)
# with "small matrix" kernels, which skip packing the operands into blocks first; its AVX-512 kernel
# families have them, its AVX2 (Haswell, Zen) ones do not. At this engine's narrow shapes (16-32 output
# channels: each packed number serves only 16-32 multiply-adds) they run 1.2-1.5x faster than the
# packed GEMM of one long product. So where they exist a long product is cut along its long axis into
# a stack of such products, still one NumPy call (numpy's matmul loops over the stack in C). Where they
# do not, the stack was 5-20% slower than the whole product (Zen 3, docs/benchmarks.md): no cutting.
SMALL_KERNEL_FAMILIES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})  # get_corename, lower case


def blas_has_small_kernels(kernel):
    """Whether OpenBLAS's kernel family ``kernel`` (``parallel.blas_kernel()``; None: not OpenBLAS) has them."""
    return kernel is not None and kernel.lower() in SMALL_KERNEL_FAMILIES


SMALL_PRODUCT = 1_000_000 if blas_has_small_kernels(parallel.blas_kernel()) else 0  # 0: never cut
MIN_BLOCK = 64   # rows: stacks of thinner products (wide layers) would cost more in calls than they save


def _stacked(a, block, count):
    """View (count, block, K) of the first count*block rows of a 2-D a (M, K), of any strides."""
    return as_strided(a, (count, block, a.shape[1]), (block * a.strides[0], *a.strides), writeable=False)


def _blocks(length, width):
    """(block, count): a product's long axis of ``length`` cut into ``count`` blocks of ``block``
    under SMALL_PRODUCT multiply-adds, ``width`` being the product of its two other sizes; count is
    0 when cutting is not worth it (fewer than two blocks, or blocks thinner than MIN_BLOCK)."""
    block = SMALL_PRODUCT // width
    count = length // block if block >= max(MIN_BLOCK, 1) else 0
    return block, count if count >= 2 else 0


def _matmul_tall(a, b, out):
    """out = a @ b for a tall a (M, K), b (K, N), out (M, N), as blocks of rows under SMALL_PRODUCT
    multiply-adds (see above); returns out (written in place: splitting its first axis is a view)."""
    (m, k), n = a.shape, b.shape[1]
    block, count = _blocks(m, k * n)
    if not count:
        return np.matmul(a, b, out=out)
    whole = count * block
    np.matmul(_stacked(a, block, count), b, out=out[:whole].reshape(count, block, n))
    if whole < m:
        np.matmul(a[whole:], b, out=out[whole:])
    return out


def _matmul_long(a_t, b, out, scratch):
    """out = a_t @ b for a_t (M, R) the transposed view of a tall (R, M) array, b (R, N) tall, out
    (M, N): a sum over R in blocks under SMALL_PRODUCT multiply-adds (see above). scratch(shape)
    gives a work array for the stacked partial products. Returns out."""
    (m, r), n = a_t.shape, b.shape[1]
    block, count = _blocks(r, m * n)
    if not count:
        return np.matmul(a_t, b, out=out)
    whole = count * block
    parts = scratch((count, m, n))
    np.matmul(_stacked(a_t.T, block, count).transpose(0, 2, 1), _stacked(b, block, count), out=parts)
    np.sum(parts, axis=0, out=out)
    if whole < r:
        out += a_t[:, whole:] @ b[whole:]
    return out


def _shifted_gemms(cols, kernel, geo, ws, name):
    """sum_p cols[p*span*wp : p*span*wp + rows] @ kernel[p], see the layout note above.

    cols: from :func:`_columns`; kernel: (kh // span, span*kw*C, C_out), i.e. w reshaped.
    Returns (rows, C_out) in padded-grid coordinates, a workspace array.
    """
    step, rows = (geo.kh // kernel.shape[0]) * geo.wp, geo.rows
    out = ws.get(name + ".out", (rows, kernel.shape[2]), cols.dtype)
    _matmul_tall(cols[:rows], kernel[0], out)
    if len(kernel) > 1:
        part = ws.get(name + ".part", out.shape, cols.dtype)
        for p in range(1, len(kernel)):
            out += _matmul_tall(cols[p * step:p * step + rows], kernel[p], part)
    return out


def _input_columns(x, geo, ws, dtype):
    """x (N, H, W, C) zero-padded into the flat buffer, then its column matrix.

    Only the rows and columns some window reads are copied: with a stride, leftover pixels stay zero
    (garbage rows of the grid read them too: see the non-finite case of dw in conv2d_backward)."""
    flat = ws.get("x", (geo.flat_rows(), geo.c), dtype, geo.key)
    # max(0, …): padding can be wider than every window reaches (stride 9 over 2 zeros): no pixel is read.
    h = max(0, min(geo.h, (geo.ho - 1) * geo.sh + geo.kh - geo.t))
    w = max(0, min(geo.w, (geo.wo - 1) * geo.sw + geo.kw - geo.l))
    geo.on_grid(flat, geo.t, geo.l, (h, w))[...] = x[:, :h, :w]
    ws.columns_written += 1
    return _columns(flat, geo, ws, "x.cols", _span(geo, geo.c))


def _dtype(*arrays):
    """The floating dtype of a result from these arrays (integers compute in float64; complex numbers
    are refused: casting them dropped the imaginary part with only a warning)."""
    dtype = np.result_type(*arrays)
    if dtype.kind not in "biuf":
        raise TypeError(f"expected real numbers, got {dtype} arrays")
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def conv2d_forward(x, w, b=None, stride=1, padding="VALID", workspace=None):
    """:func:`conv2d` that also returns what :func:`conv2d_backward` can reuse.

    x: (N, H, W, C_in); w: (kh, kw, C_in, C_out); b: (C_out,) or None; workspace: a
    :class:`Workspace` kept by the caller between calls (None: a fresh one).
    Returns (y, cache): y (N, H_out, W_out, C_out), a new array; cache an opaque token holding x's
    column matrix (with the geometry and workspace it belongs to), valid until the next call with the
    same workspace (:func:`conv2d_backward` refuses it after that).
    """
    x, w = np.asarray(x), np.asarray(w)
    geo = _ConvGeometry(x.shape, w.shape, stride, padding)
    if b is not None:
        b = np.asarray(b)
        if b.shape != (geo.co,):
            raise ValueError(f"the bias b must have shape ({geo.co},), one per output channel, got {b.shape}")
        _dtype(b)  # real numbers only
    ws = Workspace() if workspace is None else workspace
    dtype = _dtype(x, w)
    cols = _input_columns(x, geo, ws, dtype)
    span = _span(geo, geo.c)
    out = _shifted_gemms(cols, w.reshape(geo.kh // span, span * geo.kw * geo.c, geo.co), geo, ws, "y")
    y = np.empty((geo.n, geo.ho, geo.wo, geo.co), dtype)
    if b is None:
        np.copyto(y, geo.outputs(out))
    else:
        # Rows of wo*C_out numbers plus the bias tiled wo times: numpy's inner loop then runs
        # over whole image rows instead of C_out numbers (~2.5x faster for C_out = 16).
        rows_of = (geo.n, geo.ho, geo.wo * geo.co)
        np.add(geo.outputs(out).reshape(rows_of), np.tile(b, geo.wo), out=y.reshape(rows_of))
    return y, (geo.key, cols, ws, ws.columns_written)


def conv2d(x, w, b=None, stride=1, padding="VALID"):
    """2-D cross-correlation (the "convolution" of deep learning), NHWC.

    x: (N, H, W, C_in); w: (kh, kw, C_in, C_out); b: (C_out,) or None.
    Returns y: (N, H_out, W_out, C_out) with ``y[n, i, j, o] = b[o] +
    sum_{p, q, c} xpad[n, i*sh + p, j*sw + q, c] * w[p, q, c, o]``.
    """
    return conv2d_forward(x, w, b, stride, padding)[0]


def conv2d_backward(dy, x, w, stride=1, padding="VALID", need_dx=True, cache=None, workspace=None):
    """Gradients of :func:`conv2d` given the upstream gradient.

    dy: (N, H_out, W_out, C_out); x: (N, H, W, C_in) the forward input; w: (kh, kw, C_in, C_out).
    cache, workspace: from the :func:`conv2d_forward` call on this x (saves rebuilding x's
    column matrix), or None.
    Returns (dx, dw, db): dx (N, H, W, C_in) or None when ``need_dx`` is False (the first
    layer has nothing upstream to feed), dw (kh, kw, C_in, C_out), db (C_out,).

    dx is seed 001's "pad delta, insert s-1 zeros between values, convolve with the kernel
    rotated by 180 degrees": dy is laid on the padded grid with kh-1 / kw-1 zeros in front and
    s-1 zeros between values, and the shifted-GEMM convolution runs with the rotated kernel.
    """
    x, dy, w = np.asarray(x), np.asarray(dy), np.asarray(w)
    geo = _ConvGeometry(x.shape, w.shape, stride, padding)
    if dy.shape != (geo.n, geo.ho, geo.wo, geo.co):
        raise ValueError(f"dy has shape {dy.shape}, expected {(geo.n, geo.ho, geo.wo, geo.co)}")
    ws = Workspace() if workspace is None else workspace
    dtype = _dtype(dy, x, w)
    if cache is None:
        cols = _input_columns(x, geo, ws, dtype)
    elif cache[0] != geo.key:
        raise ValueError("cache comes from a convolution of other shapes")
    elif cache[2].columns_written != cache[3]:
        # Its column matrix now holds a later input's: dw would be that input's, without a word.
        raise ValueError("cache is stale: conv2d_forward ran again with its workspace since; "
                         "pass the cache of the forward pass of this x")
    else:
        cols = cache[1]
    kh, kw, wp, rows = geo.kh, geo.kw, geo.wp, geo.rows
    # dy at its forward output rows (the dw operand), after (kh-1)*wp + kw-1 zero rows: read from
    # the buffer's start, the grid sees dy at (kh-1 + i*sh, kw-1 + j*sw), the "full" padding of dx.
    flat = ws.get("dy", (geo.flat_rows(), geo.co), dtype, geo.key)
    dy_rows = flat[(kh - 1) * wp + kw - 1:]                      # (rows, C_out)
    geo.on_grid(dy_rows, 0, 0, (geo.ho, geo.wo), (geo.sh, geo.sw))[...] = dy
    # dw[p] = cols_p^T @ dy, computed transposed: OpenBLAS runs dy^T @ cols_p ~1.25x faster here.
    span = _span(geo, geo.c)
    dw_t = np.empty((kh // span, geo.co, span * kw * geo.c), dtype)
    parts = functools.partial(ws.get, "dw.parts", dtype=dtype)   # scratch for the stacked partial products
    for p in range(kh // span):
        _matmul_long(dy_rows.T, cols[p * span * wp:p * span * wp + rows], dw_t[p], parts)
    if not np.isfinite(dw_t).all():
        # Garbage rows (between strides, past a row's end) multiplied their dy of 0 by real pixels, and
        # 0 * NaN is NaN: a NaN or inf in x then reached taps no window pairs with it. Sum over the real
        # outputs only, so dw is non-finite exactly where the definition makes it so.
        outputs = geo.outputs(np.arange(rows)[:, None]).ravel()   # their grid rows, in dy's order
        dy_out = dy.reshape(-1, geo.co).T
        for p in range(kh // span):
            np.matmul(dy_out, cols[p * span * wp + outputs], out=dw_t[p])
    dw = np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(w.shape)
    db = np.ones(rows, dtype) @ dy_rows                         # zeros off the outputs add nothing
    if not need_dx:
        return None, dw, db
    span = _span(geo, geo.co)
    rotated = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(kh // span, -1, geo.c)
    dx_rows = _shifted_gemms(_columns(flat, geo, ws, "dy.cols", span), rotated, geo, ws, "dx")
    return geo.on_grid(dx_rows, geo.t, geo.l, (geo.h, geo.w)).copy(), dw, db


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
    _, ho, wo, _ = dy.shape
    up = dy.repeat(size, axis=1).repeat(size, axis=2)           # (N, Ho*size, Wo*size, C)
    if up.shape == tuple(shape):
        return up
    out = np.zeros(shape, dtype=dy.dtype)
    out[:, :ho * size, :wo * size, :] = up
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
    n, _, _, c = check_nhwc(np.shape(x), "x")
    ho, wo = _pool_out_hw(x.shape, size)
    blocks = x[:, :ho * size, :wo * size, :].reshape(n, ho, size, wo, size, c)
    # size**2 strided adds: ~6x faster than mean() over the two non-adjacent window axes
    y = blocks[:, :, 0, :, 0].astype(_dtype(x))  # a copy; integers average in float64, as conv2d does
    for p in range(size):
        for q in range(size):
            if p or q:
                y += blocks[:, :, p, :, q]
    y /= size * size
    return y


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
    n, h, w, c = check_nhwc(np.shape(x), "x")
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


def _real(z):
    """z as a floating array: integers and booleans become float64 (-abs(z) of a uint8 wrapped
    around in the sigmoid), complex numbers are refused."""
    z = np.asarray(z)
    return z if z.dtype.kind == "f" else z.astype(_dtype(z))


def activation(name, z):
    """Apply an activation element-wise. z: any shape -> a: same shape and floating dtype (z's, or
    float64 for integers)."""
    _check_activation(name)
    z = _real(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "arctan":
        return np.arctan(z)
    if name == "softplus":
        return np.logaddexp(0, z)  # log(1 + e^z) without overflow: a smooth ReLU
    if name == "sigmoid":
        return _sigmoid(z)
    return z.copy()


def _sigmoid(z):
    """1 / (1 + e^-z) with exp of -|z| only (in (0, 1]: no overflow) and no 1 - x cancellation:
    0.5 * (1 + tanh(z/2)) lost the negative tail (exactly 0 in float32 from z = -18 on, 44% off at
    z = -17). z: any shape -> same shape and dtype."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


def activation_backward(name, da, z, a):
    """dL/dz from dL/da. da, z (pre-activation), a (= activation(name, z)): same shape."""
    _check_activation(name)
    da, z, a = _real(da), _real(z), _real(a)
    if name == "relu":
        return da * (z > 0)
    if name == "softplus":
        return da * _sigmoid(z)
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


def _class_indices(labels, n):
    """labels as an (n,) integer array, else ValueError: float labels failed as an IndexError, and an
    empty batch has no mean loss (it came out NaN, with warnings)."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be whole class indices, got {labels.dtype} values")
    if n == 0:
        raise ValueError("an empty batch has no loss")
    return labels


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, fused and stable.

    logits: (N, K); labels: (N,) ints in [0, K). Returns (loss: float, dlogits: (N, K)) with
    ``dlogits = (softmax(logits) - onehot(labels)) / N``.
    """
    n, k = logits.shape
    labels = _class_indices(labels, n)
    if labels.min() < 0 or labels.max() >= k:
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
    n = pred.shape[0]
    if n == 0:
        raise ValueError("an empty batch has no loss")
    diff = pred - np.asarray(target, dtype=pred.dtype).reshape(pred.shape)
    return 0.5 * float((diff * diff).sum()) / n, diff / n
