"""The colour bar beside every image panel: round ticks inside the levels, scaled texts for tiny or
huge values, and the colour map drawn from lo (bottom) to hi (top)."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtGui, QtWidgets

pytest.importorskip("pytestqt")

from app.views.colour_scale import (MAX_TICKS, ColourScale, diverging_cmap, fmt, nice_ticks,  # noqa: E402
                                    sequential_cmap, tick_labels)


@pytest.mark.parametrize("seed", range(5))
def test_ticks_are_round_evenly_spaced_and_inside_the_levels(seed):
    rng = np.random.default_rng(seed)
    for _ in range(400):
        hi = 10.0 ** rng.uniform(-7, 7)
        lo = -hi if rng.random() < 0.5 else 0.0
        max_ticks = int(rng.integers(2, MAX_TICKS + 1))
        values, _ = nice_ticks(lo, hi, max_ticks)
        assert 1 <= values.size <= max_ticks
        assert values.min() >= lo - 1e-9 * hi and values.max() <= hi + 1e-9 * hi
        if values.size > 1:
            steps = np.diff(values)
            np.testing.assert_allclose(steps, steps[0], rtol=1e-9)
            mantissa = steps[0] / 10.0 ** math.floor(math.log10(steps[0]) + 1e-9)
            assert min(abs(mantissa - m) for m in (1.0, 2.0, 2.5, 5.0)) < 1e-6
            assert values.size >= max_ticks // 3  # not needlessly sparse


def test_tick_texts_and_the_power_of_ten():
    ticks, exponent = tick_labels(-1.0, 1.0)
    assert exponent == 0 and [t for _, t in ticks] == ["-1.0", "-0.5", "0.0", "0.5", "1.0"]
    ticks, exponent = tick_labels(0.0, 1.1)
    assert [t for _, t in ticks] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    ticks, exponent = tick_labels(-1.2e-5, 1.2e-5)  # tiny gradients: mantissas, the power in the label
    assert exponent == -5 and [t for _, t in ticks] == ["-1.0", "-0.5", "0.0", "0.5", "1.0"]
    assert [v for v, _ in ticks] == pytest.approx([-1e-5, -5e-6, 0.0, 5e-6, 1e-5])
    assert tick_labels(0.0, 0.0) == ([], 0) and tick_labels(0.0, math.nan) == ([], 0)


def test_the_bar_draws_the_colour_map_from_lo_at_the_bottom_to_hi_at_the_top(qtbot):
    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    scale = ColourScale(sequential_cmap(), "δ")
    widget.ci.addItem(scale)
    scale.set_height(220)
    scale.setLevels((-3e-6, 3e-6))
    widget.resize(200, 260)
    widget.show()
    qtbot.waitExposed(widget)
    QtWidgets.QApplication.processEvents()
    assert scale.title() == "δ (×1e-06)"
    assert [t for _, t in scale.ticks()] == ["-2", "0", "2"]
    image = widget.grab().toImage()
    origin = scale.mapToScene(0, 0)
    bar = scale._bar_rect()
    x = int(origin.x() + bar.center().x())
    top = image.pixelColor(x, int(origin.y() + bar.top() + 3))
    bottom = image.pixelColor(x, int(origin.y() + bar.bottom() - 3))
    hi, lo = sequential_cmap().map([1.0, 0.0], mode="qcolor")
    for shown, expected in ((top, hi), (bottom, lo)):
        assert abs(shown.red() - expected.red()) + abs(shown.green() - expected.green()) \
            + abs(shown.blue() - expected.blue()) < 30
    width = scale.size().width()
    scale.setLevels((-250.0, 250.0))  # new levels: new texts, the same size (no layout pass)
    scale.setColorMap(diverging_cmap())
    QtWidgets.QApplication.processEvents()
    assert scale.size().width() == width and scale.title() == "δ"
    assert scale.levels() == (-250.0, 250.0)


def test_a_label_longer_than_a_short_bar_is_shortened_and_keeps_its_power_of_ten(qtbot):
    """On a small plot the rotated label used to be cut at both ends ("outing weigh")."""
    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    scale = ColourScale(sequential_cmap(), "routing weight")
    widget.ci.addItem(scale)
    metrics = QtGui.QFontMetricsF(scale.font())
    scale.set_height(metrics.horizontalAdvance("routing weight") + 2)
    widget.show()
    qtbot.waitExposed(widget)
    assert scale.fitted_title() == "routing weight"  # fits whole
    scale.setLevels((-3e-6, 3e-6))
    assert scale.title() == "routing weight (×1e-06)"
    shown = scale.fitted_title()
    assert shown.endswith("… (×1e-06)") and shown.startswith("ro")
    assert metrics.horizontalAdvance(shown) <= scale.size().height()


def test_a_percentage_says_100_or_0_only_when_it_is_exactly_that():
    """A misclassified digit at p = 0.9956 was labelled "100%" in the evaluation gallery."""
    from app.views.colour_scale import percent

    assert [percent(p, 0) for p in (0.9956, 1.0, 0.5, 0.004, 0.0)] == [">99%", "100%", "50%", "<1%", "0%"]
    assert [percent(p) for p in (0.9956, 0.99951, 1.0, 0.00004)] == ["99.6%", ">99.9%", "100.0%", "<0.1%"]


def test_hover_numbers_are_written_with_a_real_minus_sign():
    """The views' read-outs (a weight, an activation, a gradient) wrote "-0.1235" with a hyphen, where the app's
    other texts write the minus sign U+2212; a zero times a negative number is still just 0."""
    assert fmt(-0.123456) == "\u22120.1235"
    assert fmt(-3.2e-7) == "\u22123.2e\u221207"
    assert fmt(-0.0) == "0" and fmt(0.5) == "0.5"
