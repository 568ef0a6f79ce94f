"""engine.ops fast-path plumbing: a reused Workspace and a forward cache give exactly what fresh
calls give, whatever sequence of shapes, paddings, strides and dtypes goes through them."""

import numpy as np
import pytest

from engine import ops, parallel

# Calls through ONE workspace, chosen so that consecutive geometries share buffer shapes (5x5
# SAME and 7x7 VALID both pad to a 7x7 grid) but not the places written: stale data would show.
SEQUENCE = [
    ((2, 5, 5, 3), (3, 3, 3, 4), 1, "SAME", np.float64),
    ((2, 7, 7, 3), (3, 3, 3, 4), 1, "VALID", np.float64),
    ((2, 5, 5, 3), (3, 3, 3, 4), 1, "SAME", np.float64),
    ((2, 6, 5, 3), (2, 3, 3, 4), (2, 1), ((1, 0), (0, 2)), np.float64),
    ((2, 5, 5, 3), (3, 3, 3, 4), 1, "SAME", np.float32),
    ((1, 9, 8, 2), (5, 5, 2, 1), 3, "SAME", np.float64),
    # Same shapes, padding moved from bottom/right to top/left: the borders written swap places.
    ((2, 5, 5, 3), (2, 2, 3, 4), 1, ((0, 1), (0, 1)), np.float64),
    ((2, 5, 5, 3), (2, 2, 3, 4), 1, ((1, 0), (1, 0)), np.float64),
]


def test_reused_workspace_matches_fresh_calls():
    rng = np.random.default_rng(0)
    ws = ops.Workspace()
    for x_shape, w_shape, stride, padding, dtype in SEQUENCE * 2:
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal(w_shape).astype(dtype)
        b = rng.standard_normal(w_shape[3]).astype(dtype)
        y, cache = ops.conv2d_forward(x, w, b, stride, padding, ws)
        np.testing.assert_array_equal(y, ops.conv2d(x, w, b, stride, padding))
        dy = rng.standard_normal(y.shape).astype(dtype)
        got = ops.conv2d_backward(dy, x, w, stride, padding, cache=cache, workspace=ws)
        want = ops.conv2d_backward(dy, x, w, stride, padding)
        for a, e in zip(got, want):
            assert a.dtype == dtype
            np.testing.assert_array_equal(a, e)


def test_results_do_not_alias_the_workspace():
    rng = np.random.default_rng(1)
    ws = ops.Workspace()
    x, w = rng.standard_normal((2, 6, 6, 2)), rng.standard_normal((3, 3, 2, 3))
    y1, cache = ops.conv2d_forward(x, w, None, 1, "SAME", ws)
    dx1, dw1, db1 = ops.conv2d_backward(np.ones_like(y1), x, w, 1, "SAME", cache=cache, workspace=ws)
    kept = [a.copy() for a in (y1, dx1, dw1, db1)]
    y2, cache = ops.conv2d_forward(-x, w, None, 1, "SAME", ws)
    ops.conv2d_backward(-np.ones_like(y2), -x, w, 1, "SAME", cache=cache, workspace=ws)
    for a, k in zip((y1, dx1, dw1, db1), kept):
        np.testing.assert_array_equal(a, k)


def test_cache_of_another_geometry_is_refused():
    x, w = np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 2))
    _, cache = ops.conv2d_forward(x, w, None, 1, "SAME")
    with pytest.raises(ValueError, match="cache"):
        ops.conv2d_backward(np.zeros((1, 3, 3, 2)), x, w, 1, "VALID", cache=cache)


# --------------------------------------------------------------------------- stacked small products

def _products_cut_small(monkeypatch, product=400):
    """Make ops cut every product into stacks of a few rows, so these small shapes take that path."""
    monkeypatch.setattr(ops, "SMALL_PRODUCT", product)
    monkeypatch.setattr(ops, "MIN_BLOCK", 1)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dtype", SEQUENCE)
def test_stacked_products_give_the_convolution_of_one_product(monkeypatch, x_shape, w_shape, stride, padding,
                                                              dtype):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    dy = rng.standard_normal(ops.conv2d(x, w, None, stride, padding).shape).astype(dtype)
    whole = (ops.conv2d(x, w, None, stride, padding), *ops.conv2d_backward(dy, x, w, stride, padding))
    _products_cut_small(monkeypatch)
    cut = (ops.conv2d(x, w, None, stride, padding), *ops.conv2d_backward(dy, x, w, stride, padding))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for a, e in zip(cut, whole):
        assert a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)


# rows in blocks of 4: fewer than two blocks (one product), 2 blocks + 3 rows, 3 blocks, 3 blocks + 1 row
@pytest.mark.parametrize("rows, stacked", [(7, False), (11, True), (12, True), (13, True)])
@pytest.mark.parametrize("order", ["C", "F"])   # the 1-3 channel column matrix is a transposed view
def test_stacked_products_with_and_without_leftover_rows(monkeypatch, rows, stacked, order):
    rng = np.random.default_rng(rows)
    a = np.asarray(rng.standard_normal((rows, 5)), order=order)
    b, g = rng.standard_normal((5, 3)), rng.standard_normal((rows, 4))
    _products_cut_small(monkeypatch, 60)   # blocks of 60 // (5*3) = 4 rows
    assert (ops._blocks(rows, 5 * 3)[1] > 0) == stacked
    np.testing.assert_allclose(ops._matmul_tall(a, b, np.empty((rows, 3))), a @ b, rtol=1e-12)
    monkeypatch.setattr(ops, "SMALL_PRODUCT", 80)   # blocks of 80 // (4*5) = 4 rows of the long axis
    assert (ops._blocks(rows, 4 * 5)[1] > 0) == stacked
    sums = ops._matmul_long(g.T, a, np.empty((4, 5)), np.empty)
    np.testing.assert_allclose(sums, g.T @ a, rtol=1e-12)


@pytest.mark.parametrize("kernel, cut", [("SkylakeX", True), ("SapphireRapids", True), ("COOPERLAKE", True),
                                         ("Haswell", False), ("Zen", False), (None, False)])
def test_products_are_cut_only_for_blas_kernels_with_small_matrix_kernels(kernel, cut):
    assert ops.blas_has_small_kernels(kernel) == cut


def test_the_running_blas_decides_whether_products_are_cut():
    assert (ops.SMALL_PRODUCT > 0) == ops.blas_has_small_kernels(parallel.blas_kernel())


def test_vgg7_sized_convolutions_take_the_stacked_path(monkeypatch):
    """The speed of docs/benchmarks.md relies on it: with OpenBLAS's small-matrix limit, conv2 of a 32-image
    shard, products of 26,912 rows, must reach OpenBLAS as stacks of small products (3-D operands)."""
    monkeypatch.setattr(ops, "SMALL_PRODUCT", 1_000_000)  # as where the BLAS has small-matrix kernels
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 28, 28, 16)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 16, 16)) * 0.1).astype(np.float32)
    calls, matmul = [], np.matmul

    def recording(a, b, *args, **kwargs):
        calls.append((np.ndim(a), np.ndim(b)))
        return matmul(a, b, *args, **kwargs)

    monkeypatch.setattr(np, "matmul", recording)
    y, cache = ops.conv2d_forward(x, w, None, 1, "SAME")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, _ = ops.conv2d_backward(dy, x, w, 1, "SAME", cache=cache)
    monkeypatch.undo()
    stacked = [c for c in calls if c[0] == 3]
    assert len(stacked) == 9, calls     # 3 forward, 3 dw, 3 dx
    monkeypatch.setattr(ops, "SMALL_PRODUCT", 0)   # the reference: one product each, in float64
    x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    np.testing.assert_allclose(y, ops.conv2d(x64, w64, None, 1, "SAME"), rtol=1e-4, atol=1e-4)
    want_dx, want_dw, _ = ops.conv2d_backward(dy64, x64, w64, 1, "SAME")
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-4, atol=2e-3)


def test_workspace_keeps_the_buffers_of_the_last_two_shapes_per_name():
    """A batch's passes come in two sizes (e.g. 16 and 17 images): both sets of buffers are kept, so
    alternating between them allocates nothing; a third shape replaces the least recently used."""
    ws = ops.Workspace()
    a16, a17 = ws.get("x", (16, 3), np.float32), ws.get("x", (17, 3), np.float32)
    a16[...] = 1.0
    assert ws.get("x", (16, 3), np.float32) is a16 and ws.get("x", (17, 3), np.float32) is a17
    assert ws.get("x", (16, 3), np.float32, layout="other") is not a16   # layout is part of the key
    assert ws.get("x", (17, 3), np.float32) is a17                       # kept: used last before that
    fresh = ws.get("x", (16, 3), np.float32)                             # evicted: least recently used
    assert fresh is not a16 and not fresh.any()
    assert ws.get("y", (17, 3), np.float32) is not a17


def test_uneven_passes_on_one_thread_reuse_their_buffers_step_after_step():
    from engine import parallel
    from engine.presets import build, get_preset

    model = build(get_preset("vgg7", conv1=4, conv2=4, conv3=4, conv4=5, dense1=12, dense2=8))
    rng = np.random.default_rng(0)
    x, y = rng.random((100, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, 100)
    with parallel.using_threads(1):
        assert {stop - start for start, stop in parallel.shard_bounds(100)} == {16, 17}
        model.loss_and_grads(x, y)
        workspace = model.layer("conv2")._workspace
        held = {(name, key): a for name, keys in workspace._arrays.items() for key, a in keys.items()}
        model.loss_and_grads(x, y)
    now = {(name, key): a for name, keys in workspace._arrays.items() for key, a in keys.items()}
    assert now.keys() == held.keys() and all(now[k] is held[k] for k in held)
