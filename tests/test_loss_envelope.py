"""The loss curves of a long run: drawn from a bounded, spike-preserving reduction of the series."""
from __future__ import annotations

import numpy as np
import pytest

from app.views.loss import LossView, PeakEnvelope


def brute_force(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each bucket of ``width`` points (the last may be shorter): its lowest and highest point, the
    earlier first (both the point itself when width is 1)."""
    xs, ys = [], []
    for start in range(0, len(y), width):
        bx, by = x[start:start + width], y[start:start + width]
        low, high = int(np.argmin(by)), int(np.argmax(by))
        picks = [low] if width == 1 else sorted([low, high], key=lambda i: bx[i])
        xs += [bx[i] for i in picks]
        ys += [by[i] for i in picks]
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize("chunks", ["one", "thirty", "random"])
def test_envelope_is_each_buckets_extremes_however_the_points_arrive(chunks):
    rng = np.random.default_rng(3)
    n = 5000 + 77  # not a multiple of any bucket width: a partly filled bucket at the end
    x = np.arange(1, n + 1, dtype=np.float64)
    y = rng.standard_normal(n)
    env = PeakEnvelope(max_buckets=64)
    if chunks == "one":
        bounds = [0, n]
    elif chunks == "thirty":
        bounds = list(range(0, n, 30)) + [n]
    else:
        bounds = [0, *np.sort(rng.choice(np.arange(1, n), 200, replace=False)), n]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        env.append(x[start:stop], y[start:stop])
    assert len(env) == n
    assert env.width == 128  # 5077 points in at most 64 buckets: width doubled from 1 to 128
    got_x, got_y = env.points()
    want_x, want_y = brute_force(x, y, env.width)
    np.testing.assert_array_equal(got_x, want_x)
    np.testing.assert_array_equal(got_y, want_y)
    assert len(got_x) <= 2 * 64 + 2


def test_short_series_are_drawn_point_for_point_and_clear_starts_over():
    env = PeakEnvelope(max_buckets=8)
    env.append(np.arange(5.0), np.array([3.0, 1.0, 4.0, 1.0, 5.0]))
    assert env.width == 1
    np.testing.assert_array_equal(env.points()[1], [3.0, 1.0, 4.0, 1.0, 5.0])
    env.append(np.arange(5.0, 20.0), np.zeros(15))
    assert env.width == 4 and len(env) == 20
    env.clear()
    assert len(env) == 0 and env.width == 1 and env.points()[0].size == 0
    with pytest.raises(ValueError, match="even"):
        PeakEnvelope(max_buckets=7)


def test_loss_view_draws_a_long_run_from_a_bounded_envelope_and_keeps_every_loss(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    n, batch = 60_000, 30
    losses = 2.0 * np.exp(-np.arange(n) / 10_000) + 0.3 * rng.random(n)
    losses[12_345] = 9.0  # one spike: must survive the reduction
    for start in range(0, n, batch):
        view.append_steps(np.arange(start + 1, start + batch + 1), losses[start:start + batch])
    np.testing.assert_array_equal(view.losses, losses)  # the full series is kept (overlays, export)
    for curve in (view.step_curve, view.smooth_curve):
        x, y = curve.getOriginalDataset()
        assert len(x) <= 2 * PeakEnvelope().max_buckets + 2
        assert np.all(np.diff(x) >= 0)  # ordered, as clip-to-view needs
    x, y = view.step_curve.getOriginalDataset()
    assert y.max() == 9.0 and x[np.argmax(y)] == 12_346 and y.min() == losses.min()
    overlay = view.add_overlay("previous run", np.arange(1, n + 1), losses)
    assert len(overlay.getOriginalDataset()[0]) <= 2 * PeakEnvelope().max_buckets + 2
    assert overlay.getOriginalDataset()[1].max() == 9.0
