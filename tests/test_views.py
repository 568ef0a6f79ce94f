"""The kernel, feature-map and pooling views show exactly what the engine computes.

Images are read back from the ImageItems (``item.image``) and compared with the model's arrays at
the positions the documented mosaic layout gives (tile (i, j) pixel (r, c) at
``1 + i*(th+1) + r, 1 + j*(tw+1) + c``), not with the views' own bookkeeping.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore, QtWidgets  # noqa: E402
from app.views.cell_format import CellFormat  # noqa: E402
from app.views.colour_scale import HEADROOM, fmt, symmetric_levels, value_levels  # noqa: E402
from app.views.feature_maps import FeatureMapView  # noqa: E402
from app.views.scenes import fit_canvas_to_scene  # noqa: E402
from app.views.images import BAR_MAX_HEIGHT, Mosaic  # noqa: E402
from app.views.kernels import KernelView  # noqa: E402
from app.views.pooling import PoolingView, pooling_sample, step_map  # noqa: E402
from app.views.samples import held_out_images  # noqa: E402
from app.views.widgets import WrapRow  # noqa: E402
from engine import ops  # noqa: E402
from engine.model import Sequential  # noqa: E402
from engine.presets import build, get_preset  # noqa: E402
from plot_reading import axis_labels  # noqa: E402


def tile(image: np.ndarray, i: int, j: int, th: int, tw: int) -> np.ndarray:
    """Tile (i, j) of a mosaic with 1-px separators and frame."""
    r0, c0 = 1 + i * (th + 1), 1 + j * (tw + 1)
    return image[r0:r0 + th, c0:c0 + tw]


def nudge_weights(model: Sequential, seed: int) -> None:
    """Change every parameter in place, as a training step does."""
    rng = np.random.default_rng(seed)
    for p in model.params().values():
        p += rng.standard_normal(p.shape).astype(p.dtype) * 0.05


@pytest.fixture
def show(qtbot):
    """Construct a view with its rate limit off (every update is drawn at once) and show it."""
    def make(cls):
        view = cls()
        view.MAX_DUTY = None
        qtbot.addWidget(view)
        view.resize(1300, 900)
        view.show()
        qtbot.waitExposed(view)
        return view
    return make


# ---------------------------------------------------------------------------------------------- mosaic

@pytest.mark.parametrize("rows, cols, th, tw, n",
                         [(1, 1, 3, 3, 1), (4, 4, 3, 3, 16), (3, 5, 2, 4, 13), (2, 8, 7, 7, 16)])
def test_mosaic_places_every_tile_and_locates_every_pixel(rows, cols, th, tw, n):
    tiles = np.random.default_rng(n).standard_normal((n, th, tw)).astype(np.float32)
    mosaic = Mosaic(rows, cols, th, tw)
    image = mosaic.fill_tiles(tiles)
    assert image.flags.c_contiguous and image.dtype == np.float32
    assert image.shape == (rows * (th + 1) + 1, cols * (tw + 1) + 1)
    for k in range(rows * cols):
        i, j = divmod(k, cols)
        expected = tiles[k] if k < n else np.full((th, tw), np.nan)
        np.testing.assert_array_equal(tile(image, i, j, th, tw), expected)
    # Everything that is not a tile is a NaN separator, and locate inverts the layout.
    covered = np.zeros(image.shape, bool)
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            where = mosaic.locate(y, x)
            if where is not None:
                i, j, r, c = where
                assert (y, x) == (1 + i * (th + 1) + r, 1 + j * (tw + 1) + c)
                covered[y, x] = True
    assert np.isnan(image[~covered]).all()
    assert covered.sum() == rows * cols * th * tw


def test_mosaic_fill_grid_matches_conv_kernel_layout():
    w = np.random.default_rng(1).standard_normal((3, 3, 5, 4)).astype(np.float32)  # (kh, kw, c_in, c_out)
    image = Mosaic(4, 5, 3, 3).fill_grid(w.transpose(3, 0, 2, 1))
    for o in range(4):
        for i in range(5):
            np.testing.assert_array_equal(tile(image, o, i, 3, 3), w[:, :, i, o])


def test_levels_are_symmetric_and_never_degenerate():
    assert symmetric_levels(np.array([-0.5, 2.0])) == (-2.0, 2.0)
    assert symmetric_levels(np.zeros(4)) == (-1.0, 1.0)
    assert value_levels(np.array([0.0, 3.0])) == (0.0, 3.0)
    assert value_levels(np.array([-1.0, 3.0])) == (-3.0, 3.0)


# ---------------------------------------------------------------------------------------------- kernels

def kernel_panels(view: KernelView) -> dict:
    return {name: layer for name, layer in view._layers.items() if layer.panel is not None}


def wait_until_drawn(qtbot, view) -> None:
    """Let ``view``'s canvas be painted until a paint moves nothing in its scene: the scene as it stays on
    screen. Read sooner, it is not what is drawn: a pyqtgraph view box maps its items to a new range only
    when its scene is about to be painted (``ViewBox.prepareForPaint``), so between a refresh and that paint
    a new mosaic lies at the old range's scale, a view box's width per weight (an image item at x = 30,229);
    and an axis fits its width to the tick labels it paints, so the first paint after a new layout is
    followed by another layout (the left axes 15 px narrower)."""
    scene = view.plot.scene()
    before = None
    for _ in range(10):
        with qtbot.waitSignal(scene.sigPrepareForPaint, timeout=5000):
            view.plot.viewport().update()
        now = [item.sceneBoundingRect() for item in scene.items()], view.plot.size()
        if now == before:
            return
        before = now
    raise AssertionError("the canvas was laid out again at each of 10 paints")


def test_held_out_images_are_the_windows_only_when_their_digits_are_the_models():
    from types import SimpleNamespace
    from engine.data import load_bundled_mnist, load_digits_8x8
    from engine.presets import build, get_preset

    zeros_and_ones = load_digits_8x8((0, 1))[1]
    window = SimpleNamespace(val_data=zeros_and_ones)
    tiny = build("tiny8x8")
    assert held_out_images(tiny, window) is zeros_and_ones
    threes_and_fives = build({**get_preset("tiny8x8"), "classes": [3, 5]})
    picked = held_out_images(threes_and_fives, window)  # not 0s and 1s called 3s and 5s
    assert picked.classes == (3, 5) and picked.name == "digits8x8[3,5]/test"
    vgg7 = build("vgg7")
    assert held_out_images(vgg7, window).name == "mnist-bundled/val"  # another shape: the bundled
    test = load_bundled_mnist()[1].subset(slice(0, 100), name="mnist/test")
    assert held_out_images(vgg7, SimpleNamespace(val_data=test)) is test


def test_wrap_row_folds_when_its_parts_do_not_fit_side_by_side(qtbot):
    """Side by side while every part gets its least width, one under another below that, and back;
    a part that grows (a longer text) folds the row without the row being resized."""
    first, second = QtWidgets.QLabel("x" * 40), QtWidgets.QLabel("y" * 30)
    row = WrapRow(first, second)
    page = QtWidgets.QWidget()  # as in a view: the row in a page's layout, which the window resizes
    QtWidgets.QVBoxLayout(page).addWidget(row)
    qtbot.addWidget(page)
    need = first.minimumSizeHint().width() + second.minimumSizeHint().width() + row.layout().spacing()
    assert row.minimumSizeHint().width() == first.minimumSizeHint().width()  # the widest part
    page.resize(need + 40, 60)
    page.show()
    qtbot.waitExposed(page)
    assert row.side_by_side() and second.x() > first.x()
    page.resize(need, 200)  # less the page's margins
    qtbot.waitUntil(lambda: not row.side_by_side())
    qtbot.waitUntil(lambda: second.y() >= first.y() + first.height())
    assert row.minimumSizeHint().height() > first.minimumSizeHint().height() + second.minimumSizeHint().height()
    page.resize(need + 40, 200)
    qtbot.waitUntil(row.side_by_side)
    second.setText("y" * 60)
    qtbot.waitUntil(lambda: not row.side_by_side())


def test_kernel_view_shows_the_models_kernels_live(show):
    model = build("vgg7", seed=3)
    view = show(KernelView)
    assert view.objectName() == "kernelView"
    view.model_changed(model)
    for step in range(2):
        panels = kernel_panels(view)
        assert sorted(panels) == ["conv1", "conv2", "conv3", "conv4"]
        for name, layer in panels.items():
            w = model.params()[f"{name}.w"]
            kh, kw, c_in, c_out = w.shape
            image = layer.panel.image.image
            assert image.dtype == np.float32 and image.flags.c_contiguous
            assert not np.shares_memory(image, w)  # the view draws its own copy
            if c_in == 1:  # conv1: 16 filters wrap into a 4x4 grid, filter o at (o // 4, o % 4)
                assert layer.mosaic.cols == 4
                for o in range(c_out):
                    np.testing.assert_array_equal(tile(image, o // 4, o % 4, kh, kw), w[:, :, 0, o])
            else:  # rows = output channel, columns = input channel
                for o in range(c_out):
                    for i in range(c_in):
                        np.testing.assert_array_equal(tile(image, o, i, kh, kw), w[:, :, i, o])
            m = float(np.abs(w).max())  # every weight within the scale, and the scale at least half used
            lo, hi = layer.panel.image.getLevels()
            assert lo == -hi and m <= hi <= 2 * m and layer.panel.bar.levels() == (lo, hi)
        nudge_weights(model, step)  # a training step: the next model_changed must show the new values
        view.model_changed(model)


def test_the_kernel_caption_says_what_to_look_for_and_where_to_see_change_and_detection(show):
    """A learner expected neat edge detectors, saw noise-like tiles, and had no hint where to go next."""
    view = show(KernelView)
    view.model_changed(build("vgg7", seed=3))
    text = view.caption.text()
    assert view.caption.isVisible() and "Rows: output channel" in text
    assert "rarely look like neat edges" in text and "press Play in the Kernel timeline during a run" in text
    assert "to see what they detect, open Feature maps" in text


@pytest.mark.parametrize("width", [700, 1000, 1300])
def test_kernel_view_scrolls_down_only(qtbot, width):
    """The mosaics fill the width beside the vertical scroll bar: sized for the full width, the bar's
    arrival added a 12-pixel horizontal scroll at every window size."""
    view = KernelView()  # as in the window: the weights arrive before the view is first shown
    qtbot.addWidget(view)
    view.model_changed(build("vgg7", seed=3))
    view.resize(width, 700)
    view.show()
    qtbot.waitUntil(lambda: view.scroll.verticalScrollBar().maximum() > 0)
    qtbot.wait(50)  # the scroll bars settle after the layout's deferred passes
    assert view.scroll.horizontalScrollBar().maximum() == 0


def drawn_px(layer) -> float:
    """Screen pixels per weight of ``layer``'s mosaic, as its image item is drawn."""
    return layer.panel.image.sceneBoundingRect().height() / layer.mosaic.shape[0]


def test_kernel_view_draws_small_layers_large_and_one_layer_alone_as_large_as_the_page(show, qtbot):
    """conv1's 3x3 kernels were 24-px squares (8 px a weight) beside a 1,000-px wide empty canvas."""
    view = show(KernelView)
    view.model_changed(build("vgg7", seed=3))
    wait_until_drawn(qtbot, view)
    panels = kernel_panels(view)
    assert drawn_px(panels["conv1"]) * 3 >= 48  # kernels of at least 48 px
    assert drawn_px(panels["conv2"]) == pytest.approx(KernelView.PX_MAX, abs=0.5)  # the stack stays short
    view.show_combo.setCurrentIndex(view.show_combo.findData("conv2"))
    wait_until_drawn(qtbot, view)
    alone = drawn_px(view._layers["conv2"])
    assert alone > 1.2 * KernelView.PX_MAX and alone * view._layers["conv2"].mosaic.shape[0] <= view.height()
    assert view.scroll.horizontalScrollBar().maximum() == 0


@pytest.mark.parametrize("preset", ["vgg7", "tiny8x8"])
def test_every_kernel_panel_lies_on_the_scrolled_canvas(qtbot, preset):
    """The canvas was sized by estimate (30 px a title row): the last rows of a stack were cut off (84 px
    of conv4's at 1300 x 900) and scrolling could not reach them."""
    view = KernelView()
    view.MAX_DUTY = None  # each choice drawn at once, not deferred past the paints waited for
    qtbot.addWidget(view)
    view.model_changed(build(preset, seed=0))
    for size in ((700, 560), (1300, 900)):
        view.resize(*size)
        view.show()
        for i in range(view.show_combo.count()):
            view.show_combo.setCurrentIndex(i)
            wait_until_drawn(qtbot, view)
            content = view.plot.scene().itemsBoundingRect()
            assert content.right() <= view.plot.width() + 1 and content.bottom() <= view.plot.height() + 1, \
                (size, view.show_combo.currentText())


def test_kernel_view_shared_and_locked_scales(show):
    model = build("vgg7", seed=0)
    view = show(KernelView)
    view.model_changed(model)
    view.scale_combo.setCurrentIndex(view.scale_combo.findData("shared"))
    overall = HEADROOM * max(float(np.abs(model.params()[f"conv{i}.w"]).max()) for i in range(1, 5))
    for layer in kernel_panels(view).values():
        np.testing.assert_allclose(layer.panel.image.getLevels(), (-overall, overall), rtol=1e-6)
    view.scale_combo.setCurrentIndex(view.scale_combo.findData("locked"))
    model.params()["conv2.w"][...] *= 3.0
    view.model_changed(model)
    conv2 = view._layers["conv2"]
    np.testing.assert_allclose(conv2.panel.image.getLevels(), (-overall, overall), rtol=1e-6)  # frozen
    np.testing.assert_array_equal(tile(conv2.panel.image.image, 0, 0, 3, 3), model.params()["conv2.w"][:, :, 0, 0])


def test_kernel_colour_scales_hold_while_the_weights_fit_them(show):
    """Refitted to max|w| at every update, a layer's colours all shifted whenever its largest weight moved:
    kernels seemed to fade or darken between two training steps that had hardly touched them."""
    model = build("vgg7", seed=0)
    view = show(KernelView)
    view.model_changed(model)
    conv3 = view._layers["conv3"]
    w = model.params()["conv3.w"]
    m = float(np.abs(w).max())
    first = (-m * HEADROOM, m * HEADROOM)
    assert conv3.panel.image.getLevels() == pytest.approx(first) and conv3.panel.bar.levels() == first
    w[...] *= 1.05  # a few training steps' worth: the colours of unchanged weights must not move
    view.model_changed(model)
    assert conv3.panel.bar.levels() == first and conv3.panel.image.getLevels() == pytest.approx(first)
    np.testing.assert_array_equal(tile(conv3.panel.image.image, 0, 0, 3, 3), w[:, :, 0, 0])  # the new weights
    for factor in (1.5, 0.3):  # outgrown, then less than half used: refitted with the same room to spare
        w[...] *= factor
        view.model_changed(model)
        m = float(np.abs(w).max())
        assert conv3.panel.bar.levels() == pytest.approx((-m * HEADROOM, m * HEADROOM))
    other = build("vgg7", seed=0)  # new weights (Reset, a fresh run) that would fit the old scale: fitted afresh
    other.params()["conv3.w"][...] *= 0.4
    view.model_changed(other)
    m = float(np.abs(other.params()["conv3.w"]).max())
    assert conv3.panel.bar.levels() == pytest.approx((-m * HEADROOM, m * HEADROOM))
    view.model_changed(model)  # back to the first weights for the shared scale
    view.scale_combo.setCurrentIndex(view.scale_combo.findData("shared"))
    shared = {layer.panel.bar.levels() for layer in kernel_panels(view).values()}
    overall = HEADROOM * max(float(np.abs(model.params()[f"conv{i}.w"]).max()) for i in range(1, 5))
    assert shared == {(-overall, overall)}
    for layer in kernel_panels(view).values():
        model.params()[f"{layer.name}.w"][...] *= 1.02
    view.model_changed(model)
    assert {layer.panel.bar.levels() for layer in kernel_panels(view).values()} == shared
    view.scale_combo.setCurrentIndex(view.scale_combo.findData("layer"))  # fitted afresh, not the shared one
    m = float(np.abs(w).max())
    assert conv3.panel.bar.levels() == pytest.approx((-m * HEADROOM, m * HEADROOM))


def test_leaving_the_locked_scale_fits_each_layer_afresh(show):
    """A frozen scale kept once Locked is left would make the choice of another scale do nothing."""
    model = build("vgg7", seed=0)
    view = show(KernelView)
    view.model_changed(model)
    conv3 = view._layers["conv3"]
    frozen = conv3.panel.bar.levels()
    view.scale_combo.setCurrentIndex(view.scale_combo.findData("locked"))
    w = model.params()["conv3.w"]
    w[...] *= 0.8  # still fits the frozen scale, and fills more than half of it
    view.model_changed(model)
    assert conv3.panel.bar.levels() == frozen
    view.scale_combo.setCurrentIndex(view.scale_combo.findData("layer"))
    m = float(np.abs(w).max())
    assert conv3.panel.bar.levels() == pytest.approx((-m * HEADROOM, m * HEADROOM))


def test_a_shared_scale_over_layers_shown_on_other_scales_is_fitted_afresh(show):
    """Shared: layers drawn on different scales (one shown alone since) get one scale fitted to them all, not
    one of the scales they were drawn on."""
    model = build("vgg7", seed=0)
    view = show(KernelView)
    view.model_changed(model)
    view.scale_combo.setCurrentIndex(view.scale_combo.findData("shared"))
    params = model.params()
    names = [f"conv{i}" for i in range(1, 5)]
    top = max(float(np.abs(params[f"{name}.w"]).max()) for name in names)
    params["conv1.w"][...] *= 1.2 * top / float(np.abs(params["conv1.w"]).max())  # outgrows the shared scale
    view.show_combo.setCurrentIndex(view.show_combo.findData("conv1"))
    assert view._layers["conv1"].panel.bar.levels() == pytest.approx((-1.2 * top * HEADROOM, 1.2 * top * HEADROOM))
    for name in names:
        params[f"{name}.w"][...] *= 0.8  # fits both scales drawn, and fills more than half of each
    view.show_combo.setCurrentIndex(view.show_combo.findData("__all_conv__"))
    m = max(float(np.abs(params[f"{name}.w"]).max()) for name in names)
    assert list(kernel_panels(view)) == names
    for layer in kernel_panels(view).values():
        assert layer.panel.bar.levels() == pytest.approx((-m * HEADROOM, m * HEADROOM)), layer.name


def test_kernel_view_shows_first_dense_layer_as_images(show, qtbot):
    model = build("vgg7", seed=1)
    view = show(KernelView)
    view.model_changed(model)
    view.show_combo.setCurrentIndex(view.show_combo.findData("dense1"))
    panels = kernel_panels(view)
    assert list(panels) == ["dense1"]
    image = panels["dense1"].panel.image.image
    w = model.params()["dense1.w"]                        # (1568, 128), rows in flattened (7, 7, 32) order
    for unit in (0, 57, 127):
        maps = w[:, unit].reshape(7, 7, 32)
        for channel in (0, 13, 31):
            np.testing.assert_array_equal(tile(image, unit, channel, 7, 7), maps[:, :, channel])
    # The mosaic (~2,000 px tall) fills its plot: no band of empty rows above it (2% padding made 70 px),
    # and its colour bar stays short enough to read, at the top beside the first rows.
    wait_until_drawn(qtbot, view)
    panel = panels["dense1"].panel
    shown = panel.image.mapRectToScene(panel.image.boundingRect())
    box = panel.view.sceneBoundingRect()
    slack = 0.01 * box.height()  # the axes' sizes depend on the fonts; 2% padding left 2.3% empty
    assert abs(shown.top() - box.top()) < slack and abs(shown.bottom() - box.bottom()) < slack
    bar = panel.bar.sceneBoundingRect()
    assert bar.height() <= BAR_MAX_HEIGHT < box.height() and abs(bar.top() - box.top()) < 40


def test_kernel_hover_text_names_layer_channels_position_and_value(show, qtbot):
    model = build("vgg7", seed=2)
    view = show(KernelView)
    view.model_changed(model)
    w = model.params()["conv2.w"]
    row, col = 1 + 3 * 4 + 1, 1 + 5 * 4 + 2                # tile (out 3, in 5), w[1, 2]: the stepper's w(2,3)
    text = view.hover_text("conv2", row, col)
    assert text == f"conv2  output channel 3  input channel 5  kernel row 2 col 3   w = {fmt(w[1, 2, 5, 3])}"
    assert view.hover_text("conv2", 0, 0) is None          # the frame
    assert view.hover_text("conv2", 4, 1) is None          # a separator row
    # The same text through the mouse: a scene position over that pixel's centre, once the view
    # has been laid out and painted (as it is before any real mouse move).
    wait_until_drawn(qtbot, view)
    item = view._layers["conv2"].panel.image
    view.plot.scene().sigMouseMoved.emit(item.mapToScene(col + 0.5, row + 0.5))
    assert view.hover.text() == text
    # the weights change under a still cursor: the read-out follows the repaint, not the last mouse move
    trained = build("vgg7", seed=3)
    view.model_changed(trained)
    new_w = trained.params()["conv2.w"][1, 2, 5, 3]
    qtbot.waitUntil(lambda: view.hover.text().endswith(f"w = {fmt(new_w)}"), timeout=5000)
    # over a separator, then out of the plot: the hint, not a value that is no longer under the cursor
    view.plot.scene().sigMouseMoved.emit(item.mapToScene(1.5, 4.5))
    assert view.hover.text().startswith("Hover over")
    view.plot.scene().sigMouseMoved.emit(item.mapToScene(col + 0.5, row + 0.5))
    QtWidgets.QApplication.sendEvent(view.plot.viewport(), QtCore.QEvent(QtCore.QEvent.Type.Leave))
    assert view.hover.text().startswith("Hover over")


def test_a_show_choice_held_back_by_the_rate_limit_leaves_the_drawn_panels_until_it_is_drawn(show, qtbot):
    """Remade at once and filled only after the rate limit's wait (often while training), the chosen layer's
    panel showed ImagePanel's 1x1 placeholder meanwhile: a solid blue square on a 0 … 1 colour bar."""
    view = show(KernelView)
    view.model_changed(build("vgg7", seed=0))
    view.MAX_DUTY = KernelView.MAX_DUTY
    view.update_cost_ms = 1000.0  # the last refresh, just now, and its repaints as costly as on a loaded machine

    def every_panel_drawn():
        return all(layer.panel.image.image.shape == layer.mosaic.shape for layer in kernel_panels(view).values())

    view._last_start = time.perf_counter()
    view.show_combo.setFocus()
    qtbot.keyClick(view.show_combo, QtCore.Qt.Key.Key_Down)  # "All conv layers" -> "conv1 only"
    assert view.show_combo.currentData() == "conv1"
    assert every_panel_drawn(), {name: layer.panel.image.image.shape for name, layer in kernel_panels(view).items()}
    qtbot.waitUntil(lambda: list(kernel_panels(view)) == ["conv1"], timeout=5000)
    assert every_panel_drawn()


def test_hidden_view_does_no_work_until_shown(qtbot, monkeypatch):
    view = KernelView()
    qtbot.addWidget(view)
    calls = []
    monkeypatch.setattr(view, "_refresh", lambda: calls.append(1))
    view.model_changed(build("tiny8x8"))
    assert calls == []
    view.show()
    qtbot.waitExposed(view)
    assert calls == [1]


def test_rate_limit_coalesces_rapid_updates(show, qtbot):
    model = build("tiny8x8")
    view = show(KernelView)
    view.MAX_DUTY = 0.5
    view.model_changed(model)
    view.update_cost_ms = 40.0                             # pretend one update costs 40 ms ...
    view._last_start = time.perf_counter()                 # ... and one has just started
    refreshed = []
    view._refresh = lambda: refreshed.append(1)
    for _ in range(5):
        view.model_changed(model)                          # within 80 ms: deferred into one refresh
    assert refreshed == []
    qtbot.waitUntil(lambda: refreshed == [1], timeout=2000)


# ---------------------------------------------------------------------------------------------- feature maps

def test_feature_maps_equal_model_intermediates(show):
    model = build("vgg7", seed=4)
    view = show(FeatureMapView)
    assert view.objectName() == "featureMapView"
    view.model_changed(model)
    view.draw_all()
    x, label = view.picker.current()
    expected = model.intermediates(x)
    assert set(view.panels) == set(expected)
    for name, panel in view.panels.items():
        a = expected[name]
        if a.ndim == 3:
            h, w, c = a.shape
            image = panel.panel.image.image
            cols = panel.mosaic.cols
            assert cols * panel.mosaic.rows >= c
            for ch in range(c):
                np.testing.assert_array_equal(tile(image, ch // cols, ch % cols, h, w), a[:, :, ch])
        else:
            np.testing.assert_array_equal(panel.curve.getData()[1], a)
    np.testing.assert_allclose(view.probabilities.bars.opts["height"], model.predict_proba(x[None])[0], rtol=1e-6)
    # each colour bar says what its colours stand for (they said nothing)
    titles = {name: panel.panel.bar.title() for name, panel in view.panels.items() if hasattr(panel, "mosaic")}
    assert titles["input"] == "pixel value" and titles["conv2"] == "z (before the activation)"
    assert titles["relu2"] == titles["pool1"] == "activation"


def test_feature_maps_have_a_caption_saying_how_to_read_the_small_images(show):
    """Kernels had a caption; this page had none: what is a small image, what do the colours mean?"""
    view = show(FeatureMapView)
    view.model_changed(build("vgg7", seed=4))
    caption = view.findChild(QtWidgets.QLabel, "featureMapCaption")
    assert caption is not None and caption.isVisible() and caption.wordWrap()
    text = caption.text()
    for part in ("Each small image is one channel", "one filter found",
                 "raw response z before ReLU", "own colour map", "row label + column", "Hover over a panel",
                 "scroll down for the probabilities"):
        assert part in text
    assert caption.geometry().bottom() < view.scroll.geometry().top()  # above the maps


def test_feature_maps_follow_an_external_sample_and_new_weights(show):
    model = build("tiny8x8", seed=0)
    view = show(FeatureMapView)
    view.model_changed(model)
    x = np.random.default_rng(0).random((8, 8, 1)).astype(np.float32)
    view.sample_changed(x, None)
    nudge_weights(model, 1)
    view.model_changed(model)
    view.draw_all()
    expected = model.intermediates(x)
    np.testing.assert_array_equal(tile(view.panels["input"].panel.image.image, 0, 0, 8, 8), x[:, :, 0])
    conv1 = view.panels["conv1"]
    for ch in range(2):
        np.testing.assert_array_equal(tile(conv1.panel.image.image, 0, ch, 8, 8), expected["conv1"][:, :, ch])
    assert view.picker.status.text() == "showing a sent sample" and "drawing pad" in view.picker.status.toolTip()
    # Hover over channel 1, row 2, col 5 of conv1.
    row, col = 1 + 2, 1 + (8 + 1) + 5
    value = fmt(expected['conv1'][2, 5, 1])
    # rows and columns count from 1, as in the Conv stepper and Pooling; channels from 0
    assert conv1.hover_text(row, col) == f"conv1  channel 1  row 3 col 6   value = {value}"


def drawn_ticks(axis) -> list[tuple[QtCore.QPointF, str]]:
    """The tick labels ``axis`` draws: [(the label's centre in scene coordinates, its text)]."""
    return [(axis.mapToScene(rect.center()), text) for rect, text in axis_labels(axis)]


@pytest.mark.parametrize("preset", ["vgg7", "tiny8x8"])
def test_feature_map_mosaics_number_their_channels_as_the_hover_text_does(show, qtbot, preset):
    """The mosaics had no channel numbers (only the hover text had them), while the Pooling page and the Conv
    stepper name channels by number: each tile is labelled by its row's first channel plus its column."""
    import re

    view = show(FeatureMapView)
    view.model_changed(build(preset, seed=0))
    view.draw_all()
    qtbot.wait(20)  # the new panels get their geometry in the next event-loop pass
    for name, panel in view.panels.items():
        if not hasattr(panel, "mosaic") or panel.shape[2] == 1:
            continue
        plot = panel.panel.plot
        rows, cols = drawn_ticks(plot.getAxis("left")), drawn_ticks(plot.getAxis("top"))
        assert plot.getAxis("left").isVisible() and plot.getAxis("top").isVisible(), name
        assert len(rows) == panel.mosaic.rows and len(cols) == panel.mosaic.cols, name
        seen = set()
        for row_at, row_text in rows:
            for col_at, col_text in cols:
                channel = int(row_text) + int(col_text.lstrip("+"))
                hover = panel.hover(QtCore.QPointF(col_at.x(), row_at.y()))  # the tile's centre
                if channel >= panel.shape[2]:
                    assert hover is None, (name, row_text, col_text)
                    continue
                assert re.search(r"  channel (\d+)  ", hover).group(1) == str(channel), (name, hover)
                seen.add(channel)
        assert seen == set(range(panel.shape[2])), name
    assert "input" in view.panels and not view.panels["input"].panel.plot.getAxis("left").isVisible()


@pytest.mark.parametrize("preset", ["vgg7", "seed003", "tiny8x8"])
def test_the_output_layer_strip_names_its_units_as_the_classes_of_a_softmax_classifier(show, qtbot, preset):
    """vgg7's dense3 bars (the logits of the ten digits) were labelled "unit"; tiny8x8's output is one sigmoid
    unit (read as p of its second class), which is no class axis."""
    model = build(preset, seed=0)
    view = show(FeatureMapView)
    view.model_changed(model)
    view.draw_all()
    qtbot.wait(20)  # the new panels get their geometry in the next event-loop pass
    last = model.layers[-1].name
    for name, panel in view.panels.items():
        if hasattr(panel, "mosaic"):
            continue
        axis = panel.plot.getAxis("bottom")
        if name == last and preset != "tiny8x8":
            assert axis.labelText == "class (digit)", name
            ticks = drawn_ticks(axis)
            assert [text for _, text in ticks] == [str(d) for d in range(10)], name
            for at, text in ticks:  # each digit under its own bar
                assert panel.plot.vb.mapSceneToView(at).x() == pytest.approx(int(text), abs=0.05)
                above = QtCore.QPointF(at.x(), panel.plot.vb.sceneBoundingRect().center().y())
                assert panel.hover(above).split("   ")[0] == f"{name}  class {text}"
        else:
            assert "class" not in axis.labelText and "digit" not in axis.labelText, (name, axis.labelText)
            if panel.kind != "Flatten":
                assert axis.labelText == "unit", name



@pytest.mark.parametrize("classes", [[f"c{i}" for i in range(10)], list(range(10, 20))])
def test_an_output_strip_of_classes_that_are_not_digits_is_named_class_alone(show, qtbot, classes):
    """A model of its own class names (or numbers beyond 9) has no "digits": its logits' axis says "class",
    each bar is labelled with its class."""
    spec = copy.deepcopy(get_preset("seed003"))
    spec["classes"] = classes
    model = build(spec, seed=0)
    view = show(FeatureMapView)
    view.model_changed(model)
    view.draw_all()
    qtbot.wait(20)
    panel = view.panels[model.layers[-1].name]
    axis = panel.plot.getAxis("bottom")
    assert axis.labelText == "class"
    assert [text for _, text in drawn_ticks(axis)] == [str(c) for c in classes]


def test_a_draw_while_the_panels_are_rebuilt_for_another_network_draws_nothing_stale(show, monkeypatch):
    """Sizing the canvas for the new panels can move a scroll bar at once, whose signal draws the visible
    panels: they were drawn from the old network's outputs (a KeyError for 'drop1', found by the monkey
    test after Reset with another preset)."""
    import app.views.feature_maps as feature_maps

    view = show(FeatureMapView)
    view.model_changed(build("vgg7", seed=0))

    def fit_and_scroll(plot):  # as when the canvas' new size clamps a scroll bar's value
        fit_canvas_to_scene(plot)
        view.scroll.verticalScrollBar().valueChanged.emit(0)

    monkeypatch.setattr(feature_maps, "fit_canvas_to_scene", fit_and_scroll)
    model = build("seed003", seed=0)
    view.model_changed(model)
    view.draw_all()
    assert set(view.panels) == set(model.intermediates(view.picker.current()[0]))
    assert view._drawn == set(view.panels)


def test_the_prediction_line_has_room_for_a_wrong_answer(show):
    """"Prediction: 9 (23.6%) ✗ true label 0" lost its end: only right answers' lines were measured."""
    from app.views.feature_maps import prediction_text

    view = show(FeatureMapView)
    view.model_changed(build("vgg7", seed=0))
    probe = QtWidgets.QLabel()
    probe.setFont(view.prediction.label.font())
    for text in (prediction_text(9, 0.236, 0), prediction_text(8, 1.0, 3)):
        probe.setText(text)
        assert view.prediction.width() >= probe.sizeHint().width()


@pytest.mark.parametrize("view_class", [FeatureMapView, PoolingView])
def test_a_sample_sent_before_the_first_model_stays_described_as_sent(show, view_class):
    """Look inside from the pad before the view ever had a model: its first model_changed pointed the
    picker at the validation set, whose "Sample 0 of 500" then described the drawing shown."""
    view = show(view_class)
    drawn = np.random.default_rng(1).random((28, 28, 1)).astype(np.float32)
    view.sample_changed(drawn, None)
    view.model_changed(build("vgg7", seed=0))
    np.testing.assert_array_equal(view._x, drawn)
    assert view.picker.status.text() == "showing a sent sample" and "drawing pad" in view.picker.status.toolTip()
    view.model_changed(build("tiny8x8", seed=0))  # the drawing no longer fits: the picker's sample is shown
    assert view._x.shape == (8, 8, 1) and view.picker.status.text().startswith("of ")
    view.picker.next_button.click()
    assert view.picker.status.text().startswith("of ")


def test_a_hidden_feature_map_view_builds_its_panels_ahead_a_panel_per_event_loop_turn(qtbot):
    """Building all 18 panels in one go held the GUI thread for 250-630 ms on the page's first show. A
    hidden view given a model builds them ahead, one per event-loop turn; showing it keeps them."""
    view = FeatureMapView()
    view.MAX_DUTY = None
    qtbot.addWidget(view)
    view.resize(1300, 900)
    model = build("vgg7", seed=0)
    view.model_changed(model)
    assert view.panels == {}                 # nothing built in the call itself
    counts = []
    while view._building is not None and len(counts) < 100:
        QtWidgets.QApplication.processEvents()
        counts.append(len(view.panels))
    assert counts[-1] == len(view.panels) == 1 + len(model.layers) and view.probabilities is not None
    assert max(np.diff([0, *counts])) <= 1  # a panel a turn (processEvents may run no timer at all)
    built = dict(view.panels)
    view.show()
    qtbot.waitExposed(view)
    assert view._outputs is not None and all(view.panels[name] is panel for name, panel in built.items())


def test_feature_map_colour_scales_hold_while_values_fit_and_refit_for_a_new_sample(show):
    from app.views.colour_scale import steady_levels

    assert steady_levels((0.0, 2.0), None) == (0.0, 2.0 * HEADROOM)
    assert steady_levels((0.0, 1.5), (0.0, 2.2)) == (0.0, 2.2)        # fits and fills half: kept
    assert steady_levels((0.0, 1.0), (0.0, 2.2)) == (0.0, HEADROOM)   # under half: refitted
    assert steady_levels((-2.5, 2.5), (0.0, 2.2)) == (-2.5 * HEADROOM, 2.5 * HEADROOM)  # now signed
    model = build("vgg7", seed=4)
    view = show(FeatureMapView)
    view.model_changed(model)
    view.draw_all()
    conv1 = view.panels["conv1"]
    first = conv1.levels
    m = float(np.abs(model.intermediates(view.picker.current()[0])["conv1"]).max())
    assert first == (-m * HEADROOM, m * HEADROOM) and conv1.panel.bar.levels() == first
    model.params()["conv1.w"][...] *= 1.01  # a training step's worth: the maps still fit the scale
    view.model_changed(model)
    view.draw_all()
    assert conv1.levels == first
    x = np.random.default_rng(0).random((28, 28, 1)).astype(np.float32)
    view.sample_changed(x, None)
    view.draw_all()
    m = float(np.abs(model.intermediates(x)["conv1"]).max())
    assert conv1.levels == (-m * HEADROOM, m * HEADROOM)


# ---------------------------------------------------------------------------------------------- pooling

def pool_input(model: Sequential, x: np.ndarray, pool: str) -> np.ndarray:
    """The map entering layer ``pool``: (H, W, C), from model.intermediates."""
    names = ["input"] + [layer.name for layer in model.layers]
    return model.intermediates(x)[names[names.index(pool) - 1]]


def choose(view: PoolingView, layer: str, channel: int) -> None:
    view.layer_combo.setCurrentIndex(view.layer_combo.findData(layer))
    view.channel_spin.setValue(channel)


def test_cell_numbers_fit_their_cells_and_say_their_values(show):
    """tiny8x8's 8x8 maps have ~35 px cells: "0.00016" and "0.0069" spilled over the cell borders even
    at the smallest font. Numbers are now short, at a scale the panel title gives, and still right."""
    from PySide6 import QtGui

    view = show(PoolingView)
    view.model_changed(build("tiny8x8", seed=0))
    view.resize(1100, 800)  # ~35-px cells
    for layer, channel, sample in (("pool1", 0, 0), ("pool1", 1, 3), ("pool2", 2, 5)):
        choose(view, layer, channel)
        view.picker.spin.setValue(sample)
        view._run_refresh()
        view._last()  # every window routed: all four maps full of numbers
        s = view.sample
        maps = {"input": s.x[:, :, channel], "output": s.y[:, :, channel], "delta": s.delta_out[:, :, channel],
                "routed": s.delta_in[:, :, channel]}
        for key, values in maps.items():
            numbers = view._numbers[key]
            fmt = view._delta_fmt if key in ("delta", "routed") else CellFormat.compact(s.x[:, :, channel])
            for item, value in zip(numbers.items, values.ravel()):
                text = item.textItem.toPlainText()
                width = QtGui.QFontMetricsF(item.textItem.font()).horizontalAdvance(text)
                assert width <= numbers.cell_px - 6, (key, text)
                unit = 10.0 ** (fmt.exponent - fmt.decimals)  # the last digit written
                assert abs(float(text) * 10.0 ** fmt.exponent - value) <= unit / 2 + 1e-12, (key, text, value)
                assert (text == "0") == (value == 0)  # a dead unit's exact 0, never a tiny value's
            panel = {"input": view.input_panel, "output": view.output_panel, "delta": view.delta_panel,
                     "routed": view.routed_panel}[key]
            assert (f"numbers {fmt.suffix()}" in panel.title.text) == bool(fmt.suffix())


def test_max_pooling_mask_highlights_exactly_the_engines_argmax_cells(show):
    model = build("tiny8x8", seed=0)
    view = show(PoolingView)
    assert view.objectName() == "poolingView"
    view.model_changed(model)
    x, _ = view.picker.current()
    for layer, channel in (("pool1", 1), ("pool2", 3)):
        choose(view, layer, channel)
        _, mask = ops.maxpool2d(pool_input(model, x, layer)[None])
        expected = mask[0, :, :, channel]
        np.testing.assert_array_equal(view.weights_panel.image.image, expected)
        xs, ys = view._overlays["input"].winners.getData()
        rows, cols = np.nonzero(expected)
        assert sorted(zip(ys - 0.5, xs - 0.5)) == sorted(zip(rows.astype(float), cols.astype(float)))
        assert len(rows) == (expected.shape[0] // 2) * (expected.shape[1] // 2)  # one winner per window


def test_average_pooling_shows_one_over_k_squared(show):
    model = build("vgg7", seed=0)
    view = show(PoolingView)
    view.model_changed(model)
    choose(view, "pool2", 5)
    weights = view.weights_panel.image.image
    assert weights.shape == (14, 14)
    np.testing.assert_array_equal(weights, np.full((14, 14), 0.25, np.float32))
    assert "÷4" in view.step_description(5, 2, 3)


def test_pooling_counts_rows_and_columns_from_1_as_the_conv_stepper(show):
    """A teacher read "window (11, 7) … input rows 22–23 … y[11, 7]" beside the Conv stepper's w12 = row 1,
    column 2: Pooling now counts rows and columns from 1 too (channels still from 0), and says so."""
    model = build("vgg7", seed=0)
    view = show(PoolingView)
    view.model_changed(model)
    choose(view, "pool2", 5)
    text = view.step_description(5, 2, 3)  # the third row's fourth window, 0-based (2, 3)
    assert text.startswith("window (3, 4) of 7×7: input rows 5–6, cols 7–8")
    assert "→ y[3, 4] = " in text and "cells of window (3, 4)" in text
    s = view.sample
    assert view.hover_text("input", 4, 6) == f"x[5, 7] = {fmt(float(s.x[4, 6, 5]))}   window (3, 4)"
    assert view.hover_text("weights", 5, 7) == "weight[6, 8] = 0.25   window (3, 4)"
    assert view.hover_text("output", 2, 3) == f"y[3, 4] = {fmt(float(s.y[2, 3, 5]))}   (window (3, 4))"
    assert view.hover_text("delta", 0, 0).startswith("δ_out[1, 1] = ")
    view._last()
    assert view.hover_text("routed", 13, 13).startswith("δ_in[14, 14] = ")
    assert "rows and columns count from 1, channels from 0, as in the Conv stepper" in view.caption.text()
    # max pooling: the winner's position too
    view.model_changed(build("tiny8x8", seed=0))
    choose(view, "pool1", 1)
    s = view.sample
    wr, wc = np.argwhere(s.weights[2:4, 0:2, 1])[0]
    assert f"max = {fmt(float(s.y[1, 0, 1]))} at ({2 + wr + 1}, {wc + 1})" in view.step_description(1, 1, 0)
    assert f"to the winner ({2 + wr + 1}, {wc + 1})" in view.step_description(1, 1, 0)
    assert f"→ y[2, 1] = {fmt(float(s.y[1, 0, 1]))}" in view.step_description(1, 1, 0)


def test_the_backward_step_says_the_routed_shares_add_back_up_to_delta(show):
    """δ_out and the routed δ share one colour scale: with average pooling each routed cell is δ/4 and looks
    4x paler ("the gradient got lost"). The step description says the shares add back up to δ."""
    view = show(PoolingView)
    view.model_changed(build("vgg7", seed=0))
    choose(view, "pool2", 5)
    s = view.sample
    delta = fmt(float(s.delta_out[2, 3, 5]))
    text = view.step_description(5, 2, 3)
    assert f"(the 4 shares, δ/4 each, add up to δ = {delta})" in text
    assert np.isclose(s.delta_in[4:6, 6:8, 5].sum(), s.delta_out[2, 3, 5], rtol=1e-5, atol=0)  # as it says
    view.model_changed(build("tiny8x8", seed=0))
    choose(view, "pool1", 1)
    text = view.step_description(1, 1, 0)
    assert "all of δ goes to the max, the other 3 cells get 0" in text and "shares" not in text


def test_the_caption_says_where_to_see_max_pooling_when_the_model_only_averages(show):
    """The shipped vgg7 only averages: nothing on the page said how to see a max-pool mask."""
    view = show(PoolingView)
    view.model_changed(build("vgg7", seed=0))
    note = ("vgg7 pools by averaging; the presets seed003 and tiny8x8 use max pooling: choose one in the "
            "Training dock and train a few epochs to see its mask.")
    assert note in view.caption.text()
    for preset in ("tiny8x8", "seed003"):  # they have max pooling: the caption only says how to count
        view.model_changed(build(preset, seed=0))
        view._run_refresh()
        assert view.caption.text() == "Positions: rows and columns count from 1, channels from 0, as in the " \
                                      "Conv stepper."


@pytest.mark.parametrize("preset, variant, layer", [
    ("tiny8x8", None, "pool1"), ("tiny8x8", "transposed_pool", "pool2"),
    ("vgg7", None, "pool1"), ("vgg7", "transposed_pool", "pool2")])
def test_backward_routing_equals_the_engines_pooling_backward(show, preset, variant, layer):
    model = build(preset, seed=5)
    model.variant = variant
    view = show(PoolingView)
    view.model_changed(model)
    channel = 1
    choose(view, layer, channel)
    s = view.sample
    x_in = pool_input(model, view._x, layer)[None]
    size = model.layer(layer).size
    transposed = variant == "transposed_pool"
    if model.layer(layer).kind == "MaxPool2D":
        expected = ops.maxpool2d_backward(s.delta_out[None], ops.maxpool2d(x_in, size)[1], size, transposed)
    else:
        expected = ops.avgpool2d_backward(s.delta_out[None], x_in.shape, size, transposed)
    view.all_button.click()
    np.testing.assert_array_equal(view.routed_panel.image.image, expected[0, :, :, channel])
    np.testing.assert_array_equal(view.delta_panel.image.image, s.delta_out[:, :, channel])
    # Stepping: after window s, exactly the cells of windows 0..s are shown, the rest are blank.
    view.slider.setValue(2)
    shown = ~np.isnan(view.routed_panel.image.image)
    steps = step_map(expected.shape[1:3], s.out_hw, size, transposed)
    np.testing.assert_array_equal(shown, steps <= 2)


def test_delta_at_the_pooling_output_is_the_real_loss_gradient():
    """δ_out from the view's computation against central differences of the loss through the
    layers after the pooling layer (float64, so the differences are accurate)."""
    model = Sequential(get_preset("tiny8x8"), seed=2, dtype=np.float64)
    x = np.random.default_rng(3).random((8, 8, 1))
    label = 1
    s = pooling_sample(model, x, label, "pool1")
    index = [layer.name for layer in model.layers].index("pool1")

    def loss_from_pooled(y: np.ndarray) -> float:
        a = y[None]
        for layer in model.layers[index + 1:]:
            a = layer.forward(a, False)
        return float(model.loss_from_output(a, np.array([label]))[0])

    eps = 1e-6
    for cell in [(0, 0, 0), (1, 2, 1), (3, 3, 0), (2, 1, 1)]:
        up, down = s.y.copy(), s.y.copy()
        up[cell] += eps
        down[cell] -= eps
        numeric = (loss_from_pooled(up) - loss_from_pooled(down)) / (2 * eps)
        assert s.delta_out[cell] == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_under_transposed_pooling_only_a_layer_below_another_pooling_layer_gets_a_wrong_delta(show):
    """With seed 002's variant, pool1's δ_out has come through pool2's transposed backward: not ∂L/∂y,
    and the panel title says so; pool2's δ_out, from the dense layers, is still the real one."""
    model = Sequential(get_preset("tiny8x8"), seed=2, dtype=np.float64)
    x = np.random.default_rng(3).random((8, 8, 1))
    assert not pooling_sample(model, x, 1, "pool1").wrong_above
    model.variant = "transposed_pool"
    assert pooling_sample(model, x, 1, "pool1").wrong_above
    assert not pooling_sample(model, x, 1, "pool2").wrong_above
    view = show(PoolingView)
    view.model_changed(model)
    choose(view, "pool1", 0)
    assert "not ∂L/∂y" in view.delta_panel.title.text
    choose(view, "pool2", 0)
    assert "not ∂L/∂y" not in view.delta_panel.title.text and "∂L/∂y" in view.delta_panel.title.text


def test_pooling_view_leaves_the_display_models_gradients_alone(show):
    model = build("vgg7", seed=0)
    before = {k: v.copy() for k, v in model.grads().items()}
    view = show(PoolingView)
    view.model_changed(model)
    for k, v in model.grads().items():
        np.testing.assert_array_equal(v, before[k])


def test_pooling_stepper_forward_then_back_returns_to_the_same_state(show):
    model = build("tiny8x8", seed=0)
    view = show(PoolingView)
    view.model_changed(model)
    view.slider.setValue(5)
    image, text = view.routed_panel.image.image.copy(), view.step_text.text()
    view.next_button.click()
    assert view.step_text.text() != text
    view.prev_button.click()
    np.testing.assert_array_equal(view.routed_panel.image.image, image)
    assert view.step_text.text() == text


def test_a_step_while_another_layer_waits_for_its_refresh_draws_the_routed_delta_on_a_colour_scale(show, qtbot):
    """Found by the monkey test (another layer picked, then Next clicked at once): the new layer's refresh is
    rate-limited, so meanwhile the old layer is still shown, and its colour scales were already dropped; Next
    drew the routed δ with no levels (a TypeError in the slot, then an image pyqtgraph cannot paint: a
    segmentation fault, which would end the whole test run)."""
    view = show(PoolingView)
    view.model_changed(build("tiny8x8", seed=0))
    drawn = view._delta_levels  # the δ colour scale on screen, which the stepper draws the routed δ with
    view.MAX_DUTY = PoolingView.MAX_DUTY
    view.update_cost_ms = 1000.0  # a slow refresh (as while training): the new layer's waits ~2 s
    view.layer_combo.setCurrentIndex(1 - view.layer_combo.currentIndex())
    assert view.sample.layer != view.layer_combo.currentData()  # the old layer still shown meanwhile
    # Before Next draws with it: an image drawn with no levels crashes at its first paint, not in an assert.
    assert view._delta_levels == drawn
    qtbot.mouseClick(view.next_button, QtCore.Qt.MouseButton.LeftButton)
    assert view.slider.value() == 1
    assert tuple(view.routed_panel.image.levels) == drawn


def test_transposed_variant_routes_to_the_mirrored_winner(show):
    model = build("tiny8x8", seed=5)
    model.variant = "transposed_pool"
    view = show(PoolingView)
    view.model_changed(model)
    choose(view, "pool2", 0)
    assert view.variant_label.isVisibleTo(view)
    s = view.sample
    for p in range(2):
        for q in range(2):
            route = s.route(0, p, q)
            (r, c), = zip(*np.nonzero(route))
            k = s.size
            block = s.weights[p * k:(p + 1) * k, q * k:(q + 1) * k, 0]  # window (p, q) of the forward mask
            wr, wc = np.argwhere(block)[0]
            winner = (p * k + wr, q * k + wc)
            assert (r, c) == (winner[1], winner[0])                    # the winner's position, transposed
            assert "transposed position of the winner" in view.step_description(0, p, q) or winner[0] == winner[1]


# ---------------------------------------------------------------------------------------------- export

def test_export_writes_the_whole_canvas_including_panels_scrolled_out_of_view(show, tmp_path):
    from PySide6 import QtGui

    model = build("vgg7", seed=0)
    view = show(FeatureMapView)
    view.model_changed(model)
    assert "dense3" not in view._drawn                     # far below the fold: not drawn yet
    path = tmp_path / "features.png"
    view.export_png(str(path))
    image = QtGui.QImage(str(path))
    assert image.height() >= view.plot.minimumHeight() > view.scroll.viewport().height()
    assert set(view._drawn) == set(view.panels)            # everything drawn before the export


# ---------------------------------------------------------------------------------------------- cost

def test_update_benchmark_runs_and_reports_every_view(qtbot, capsys):
    """Smoke test of `python -m app.views.bench_views` (timings are printed, never asserted)."""
    from app.views.bench_views import measure

    results = measure(repeats=2, preset="tiny8x8")
    with capsys.disabled():
        print("\nview update cost (ms, tiny8x8, median of 2):", results)
    assert set(results) == {"kernels_model_ms", "feature_maps_model_ms", "feature_maps_sample_ms",
                            "pooling_model_ms", "pooling_sample_ms"}
    assert all(np.isfinite(v) and v > 0 for v in results.values())


def test_feature_map_tooltips_name_each_layers_own_activation_and_pool_size():
    """tanh and arctan layers are not described as ReLUs; a 3x3 pool not as 2x2."""
    from app.views.feature_maps import layer_tip

    model = build("vgg7", seed=0)
    assert "ReLU" in layer_tip(model, "relu1", "Activation")
    assert "tanh" in layer_tip(model, "tanh", "Activation") and "ReLU" not in layer_tip(model, "tanh", "Activation")
    assert "(−π/2, π/2)" in layer_tip(model, "arctan", "Activation")
    assert "2×2" in layer_tip(model, "pool1", "AvgPool2D")
    spec = get_preset("vgg7")
    for layer in spec["layers"]:
        if layer["name"] == "pool2":
            layer["size"] = 3
    wide = Sequential(spec, seed=0)
    assert "3×3" in layer_tip(wide, "pool2", "AvgPool2D") and "1/3 the size" in layer_tip(wide, "pool2", "AvgPool2D")


# ------------------------------------------------------------------------------------------ rate limit

def next_sample(view):
    view.picker.next_button.click()


def other_layer(view):  # the pooling view's layer, between its first two
    view.layer_combo.setCurrentIndex(1 - view.layer_combo.currentIndex())


def other_layers_shown(view):  # the kernel view's "Show": all layers, or the first alone
    view.show_combo.setCurrentIndex(1 - view.show_combo.currentIndex())


@pytest.mark.parametrize("cls, change", [(PoolingView, next_sample), (PoolingView, other_layer),
                                         (FeatureMapView, next_sample), (KernelView, other_layers_shown)])
def test_the_users_own_changes_are_drawn_at_once_while_live_updates_stay_rate_limited(show, cls, change):
    """A refresh of the pooling view costs ~15 ms and its live updates may take 6% of the GUI thread:
    the next one waited ~250 ms, and so did a click on Next (another sample). The user's own changes
    (another sample, layer, or layers shown) may now take half. (A cost of 2 s here leaves most of a
    second of margin for a loaded machine, with the kernel view's 40% for live updates.)"""
    view = show(cls)
    view.model_changed(build("vgg7"))
    view.MAX_DUTY = cls.MAX_DUTY
    cost = 2000.0  # the refresh and its repaints
    refreshes = []
    view._refresh = lambda: refreshes.append(time.perf_counter())
    view._run_refresh()
    view.update_cost_ms = cost
    view.model_changed(view._model)  # a training step: deferred by cost / MAX_DUTY
    user_wait = 1.05 * cost / cls.USER_DUTY  # (a coarse timer: 5% slack)
    assert len(refreshes) == 1 and view._deferred.remainingTime() > user_wait
    change(view)  # the user's: cost / USER_DUTY after the last one at most
    assert len(refreshes) == 2 or view._deferred.remainingTime() <= user_wait
    view._run_refresh()
    view.update_cost_ms = cost
    drawn = len(refreshes)
    change(view)  # right after another: coalesced, not drawn on top of it
    assert len(refreshes) == drawn and view._deferred.isActive()
