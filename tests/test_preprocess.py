"""engine.preprocess: MNIST-style normalisation of drawings, stroke rendering, 8x8 downsampling."""
import numpy as np
import pytest

from engine.data import load_bundled_mnist, load_digits_8x8
from engine.preprocess import (DEFAULT_PEN_WIDTH_FRAC, MNIST_BOX, MNIST_COM, center_of_mass,
                               downsample_8x8, draw_strokes, ink_bbox, is_blank,
                               mnist_normalize, render_strokes, resample)
from engine.strokes import trace_strokes, transform_strokes

PAD = 280  # the drawing pad's side in these tests, pixels


@pytest.fixture(scope="module")
def mnist():
    """Bundled MNIST train split: x (4500, 28, 28) float32, y (4500,)."""
    train, _ = load_bundled_mnist()
    return train.x[..., 0], train.y


@pytest.fixture(scope="module")
def digits(mnist):
    """One bundled digit of each class: (10, 28, 28)."""
    x, y = mnist
    return np.stack([x[np.flatnonzero(y == c)[3]] for c in range(10)])


def soft_extent(img):
    """Continuous extent (height, width) of a solid shape's ink from an anti-aliased image
    ``(H, W)``: each row (column) counts by the fraction of it the shape covers."""
    return img.max(axis=1).sum(), img.max(axis=0).sum()


def place(strokes, height, rng, pad=PAD, pen_frac=DEFAULT_PEN_WIDTH_FRAC):
    """``strokes`` scaled so the drawing (pen included) is ``height`` of the pad, at a random
    position; returns (strokes on the pad, pen width in pad pixels scaled with the drawing)."""
    pts = np.concatenate(strokes)
    lo, extent = pts.min(axis=0), np.ptp(pts, axis=0)
    scale = height * pad / (extent.max() * (1 + pen_frac))
    pen = pen_frac * extent.max() * scale
    room = pad - (extent * scale + pen)
    offset = rng.uniform(0, 1, 2) * room - lo * scale + pen / 2
    return transform_strokes(strokes, scale, offset), pen


def stroke_width(img28, strokes):
    """Mean stroke thickness in pixels: ink mass / skeleton length (strokes in img28's frame)."""
    length = sum(np.hypot(*np.diff(s, axis=0).T).sum() for s in strokes)
    return img28.sum() / length


# --------------------------------------------------------------------------------------- conventions

def test_mnist_centre_of_mass_convention_is_measured_on_the_bundled_data(mnist):
    x, _ = mnist
    coms = np.array([center_of_mass(img) for img in x[::10]])
    assert np.allclose(coms.mean(axis=0), MNIST_COM, atol=0.05)
    assert np.all(np.abs(coms - MNIST_COM) <= 0.5 + 1e-6)  # MNIST centred by whole-pixel shifts
    box = np.array([ink_bbox(img, 1e-6) for img in x[::10]])
    long_side = np.maximum(box[:, 1] - box[:, 0], box[:, 3] - box[:, 2])
    assert np.all(long_side == MNIST_BOX)


def test_center_of_mass_uses_index_coordinates():
    img = np.zeros((5, 7))
    img[1, 2] = 1.0
    img[3, 6] = 3.0
    assert center_of_mass(img) == pytest.approx((2.5, 5.0))
    assert center_of_mass(np.zeros((3, 3))) is None


def test_resample_downscale_is_exact_area_averaging():
    img = np.random.default_rng(0).random((12, 20))
    out = resample(img, (3, 5), 0.25, (0.0, 0.0))
    assert np.allclose(out, img.reshape(3, 4, 5, 4).mean(axis=(1, 3)))
    shifted = resample(img, (4, 6), 0.25, (0.5, 0.25))  # sub-pixel placement keeps the ink's mass
    assert shifted.sum() * 16 == pytest.approx(img.sum())


# ------------------------------------------------------------------------------------ mnist_normalize

def test_normalized_digits_have_mass_at_the_centre_and_a_20px_long_side(digits):
    rng = np.random.default_rng(1)
    for img in digits:
        strokes, pen = place(trace_strokes(img), rng.uniform(0.3, 1.0), rng)
        out = mnist_normalize(draw_strokes(strokes, (PAD, PAD), pen))
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert np.allclose(center_of_mass(out), MNIST_COM, atol=0.1)
        top, bottom, left, right = ink_bbox(out, 0.05)
        assert max(bottom - top, right - left) in (MNIST_BOX, MNIST_BOX + 1)  # + the faint edge


@pytest.mark.parametrize("height, width", [(150, 45), (33, 200), (90, 90)])
def test_long_side_scaled_to_20_with_the_aspect_ratio_kept(height, width):
    canvas = np.zeros((PAD, PAD))
    canvas[17:17 + height, 61:61 + width] = 1.0  # a solid block, off-centre
    out = mnist_normalize(canvas)
    scale = MNIST_BOX / max(height, width)
    assert soft_extent(out) == pytest.approx((height * scale, width * scale), abs=0.02)
    assert np.allclose(center_of_mass(out), MNIST_COM, atol=0.01)


def test_a_thin_one_stays_thin_and_tall():
    canvas = draw_strokes([np.array([[150.0, 40.0], [140.0, 240.0]])], (PAD, PAD), pen_width=12)
    top, bottom, left, right = ink_bbox(mnist_normalize(canvas))
    assert bottom - top >= MNIST_BOX
    assert right - left <= 4


def test_same_digit_at_any_size_and_position_gives_the_same_image(digits):
    """The quality target: tiny, huge and off-centre drawings of the same digit (pen scaled with
    it, so the drawings differ only in size and place) come out alike."""
    rng = np.random.default_rng(2)
    for img in digits[[0, 4, 7]]:
        strokes = trace_strokes(img)
        outs = []
        for height in (0.3, 0.65, 1.0):
            placed, pen = place(strokes, height, rng)
            outs.append(mnist_normalize(draw_strokes(placed, (PAD, PAD), pen)))
        for out in outs[:2]:
            # The ink's box is found in whole pad pixels: at 30% of the pad one pixel is 1.2% of
            # the digit's size (MNIST's own box quantisation is 2.5%), hence no exact equality.
            assert np.abs(out - outs[2]).mean() < 0.02
            assert np.abs(out - outs[2]).max() < 0.25


def test_blank_canvas_gives_no_image():
    noise = np.random.default_rng(3).uniform(0, 0.05, (PAD, PAD))  # below the ink threshold
    for canvas in (np.zeros((PAD, PAD)), noise):
        assert is_blank(canvas)
        assert mnist_normalize(canvas) is None
        assert downsample_8x8(canvas) is None
    speck = noise.copy()
    speck[100, 100] = 1.0
    assert not is_blank(speck)
    assert render_strokes([]) is None
    assert render_strokes([np.zeros((0, 2))]) is None


def test_noise_below_the_threshold_does_not_move_the_digit(digits):
    canvas = resample(digits[3], (PAD, PAD), 10.0, (0.0, 0.0))
    noisy = canvas + np.random.default_rng(4).uniform(0, 0.05, canvas.shape) * (canvas == 0)
    assert np.abs(mnist_normalize(noisy) - mnist_normalize(canvas)).max() < 1e-6


@pytest.mark.parametrize("bad", [np.zeros(10), np.zeros((0, 5)), np.full((4, 4), np.nan)])
def test_invalid_images_are_refused(bad):
    with pytest.raises(ValueError):
        mnist_normalize(bad)


# -------------------------------------------------------------------------------- strokes, rendered

def test_draw_strokes_paints_anti_aliased_round_capped_lines():
    canvas = draw_strokes([np.array([[20.0, 30.0], [80.0, 30.0]])], (60, 100), pen_width=6)
    assert canvas.dtype == np.float32 and canvas.max() == pytest.approx(1.0)
    assert canvas[:, 50].sum() == pytest.approx(6.0, abs=0.01)  # the pen's width across the line
    # Round caps: the ink ends half a pen beyond the ends, and the cap is narrower than the line.
    assert canvas[30, 83] == 0 and canvas[30, 82] > 0.9
    assert canvas[27, 82] < canvas[27, 50]
    # Strokes partly off the pad are clipped, not refused.
    assert draw_strokes([np.array([[-50.0, 10.0], [30.0, 10.0]])], (20, 20), 4)[:, :5].sum() > 0


def test_render_strokes_centres_the_mass_and_scales_the_ink_box_to_20():
    line = [np.array([[3.0, 0.0], [3.0, 100.0]])]  # a vertical "1", any units
    out = render_strokes(line)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.allclose(center_of_mass(out), MNIST_COM, atol=0.05)
    height, width = soft_extent(out)
    assert height == pytest.approx(MNIST_BOX, abs=0.1)  # ink, round caps included
    assert width == pytest.approx(DEFAULT_PEN_WIDTH_FRAC * MNIST_BOX, abs=0.1)  # never stretched


def test_render_strokes_ignores_where_how_big_and_with_which_pen_it_was_drawn(digits):
    rng = np.random.default_rng(5)
    for img in digits[[2, 8]]:
        strokes = trace_strokes(img)
        reference = render_strokes(strokes)
        for height in (0.3, 1.0):
            placed, _ = place(strokes, height, rng)
            assert np.abs(render_strokes(placed) - reference).max() < 1e-3


def test_stroke_thickness_does_not_depend_on_the_drawn_size(digits):
    """Pixels scaled from a pad drawn with one pen get thick strokes when the digit was drawn
    small and thin ones when drawn big; re-rendered strokes are MNIST-thick at every size."""
    strokes = trace_strokes(digits[5])
    pen = 16.0  # pad pixels, the same for both drawings
    widths = {}
    for height in (0.3, 1.0):
        placed, _ = place(strokes, height, np.random.default_rng(6))
        normalized = mnist_normalize(draw_strokes(placed, (PAD, PAD), pen))
        rendered = render_strokes(placed)
        widths[height] = [stroke_width(img, trace_strokes(img)) for img in (normalized, rendered)]
    assert widths[0.3][0] > 1.5 * widths[1.0][0]  # the pad's pixels: a blob vs a hairline
    assert widths[0.3][1] == pytest.approx(widths[1.0][1], rel=0.02)
    assert widths[1.0][1] == pytest.approx(DEFAULT_PEN_WIDTH_FRAC * MNIST_BOX, rel=0.25)


def test_render_strokes_draws_a_lone_point_as_a_dot():
    out = render_strokes([np.array([[120.0, 45.0]])])
    assert np.allclose(center_of_mass(out), MNIST_COM, atol=0.05)
    assert out.sum() == pytest.approx(np.pi * (DEFAULT_PEN_WIDTH_FRAC * MNIST_BOX / 2) ** 2, rel=0.05)


# ---------------------------------------------------------------------------------------------- 8x8

def test_downsample_8x8_matches_the_scikit_learn_digits_layout(mnist):
    x, _ = mnist
    for img in x[::150]:
        out = downsample_8x8(img)
        assert out.shape == (8, 8) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        top, bottom, left, right = ink_bbox(out, 0.05)
        assert max(bottom - top, right - left) == 8  # the long side fills the frame, no margin
        # Across, the mass is centred unless that would push the ink out of the frame.
        tall = bottom - top >= right - left
        low, high = (left, right) if tall else (top, bottom)
        assert abs(center_of_mass(out)[1 if tall else 0] - 3.5) < 0.05 or low == 0 or high == 8


def test_downsample_8x8_keeps_zeros_and_ones_apart(mnist):
    """Downsampled MNIST 0s and 1s sit next to the 8x8 digits' own 0s and 1s."""
    train8, _ = load_digits_8x8(classes=(0, 1))
    centroids = np.stack([train8.x[train8.y == c, ..., 0].mean(axis=0) for c in (0, 1)])
    x, y = mnist
    pick = np.flatnonzero(y < 2)[::10]
    small = np.stack([downsample_8x8(img) for img in x[pick]])
    nearest = np.argmin(((small[:, None] - centroids[None]) ** 2).sum(axis=(2, 3)), axis=1)
    assert np.mean(nearest == y[pick]) >= 0.95
