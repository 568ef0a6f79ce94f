"""engine.ops fast-path plumbing: a reused Workspace and a forward cache give exactly what fresh
calls give, whatever sequence of shapes, paddings, strides and dtypes goes through them."""

import numpy as np
import pytest

from engine import ops

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
