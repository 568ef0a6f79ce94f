"""engine.strokes: skeletons, pen strokes traced from digit images, placing strokes on a pad."""
import numpy as np
import pytest

from engine.data import load_bundled_mnist
from engine.preprocess import draw_strokes, mnist_normalize, render_strokes
from engine.strokes import _label, skeletonize, trace_strokes, transform_strokes


@pytest.fixture(scope="module")
def digits():
    """Two bundled digits of each class: (20, 28, 28) float32 and labels (20,)."""
    train, _ = load_bundled_mnist()
    pick = np.concatenate([np.flatnonzero(train.y == c)[[3, 40]] for c in range(10)])
    return train.x[pick, ..., 0], train.y[pick]


def holes(mask):
    """Number of holes in ``mask: (H, W)`` bool: background pieces that do not touch the border."""
    labels = _label(~mask)
    border = np.concatenate([labels[[0, -1], :].ravel(), labels[:, [0, -1]].ravel()])
    return len(set(np.unique(labels)) - set(border) - {0})


def length(strokes):
    return sum(np.hypot(*np.diff(s, axis=0).T).sum() for s in strokes)


def redraw(img, strokes):
    """``strokes`` drawn back at ``img``'s geometry with the pen that gives the same ink mass."""
    return draw_strokes(strokes, img.shape, img.sum() / length(strokes), supersample=4)


def chamfer(a, b):
    """Symmetric mean distance (pixels) between the pixels of masks ``a`` and ``b``: ``(H, W)`` bool."""
    pa, pb = np.argwhere(a), np.argwhere(b)
    dist = np.sqrt(((pa[:, None] - pb[None]) ** 2).sum(axis=-1))
    return 0.5 * (dist.min(axis=0).mean() + dist.min(axis=1).mean())


# ------------------------------------------------------------------------------------------ skeleton

def test_skeleton_of_a_thick_bar_is_one_pixel_wide_and_keeps_its_length():
    mask = np.zeros((12, 30), dtype=bool)
    mask[4:9, 3:27] = True
    skel = skeletonize(mask)
    assert skel.sum(axis=0).max() == 1  # one pixel per column
    assert np.ptp(np.flatnonzero(skel.any(axis=0))) >= 18


def test_skeleton_keeps_two_pixel_thick_diagonals():
    """Plain Zhang-Suen erases these entirely; they are everywhere in MNIST."""
    mask = np.zeros((20, 20), dtype=bool)
    for i in range(2, 18):
        mask[i, i - 1:i + 1] = True
    skel = skeletonize(mask)
    rows = np.flatnonzero(skel.any(axis=1))
    assert np.ptp(rows) >= 12
    assert np.all(skel.sum(axis=1)[rows[0] + 1:rows[-1]] == 1)  # a single staircase between the ends


def test_skeleton_keeps_the_hole_of_a_ring():
    yy, xx = np.mgrid[:24, :24]
    r = np.hypot(yy - 11.5, xx - 11.5)
    ring = (r > 5) & (r < 9)
    skel = skeletonize(ring)
    assert holes(skel) == 1
    assert skel.sum() < 0.4 * ring.sum()


# ------------------------------------------------------------------------------------------- tracing

def test_a_ring_is_traced_as_one_closed_stroke():
    yy, xx = np.mgrid[:28, :28]
    r = np.hypot(yy - 13.5, xx - 13.5)
    strokes = trace_strokes(((r > 6) & (r < 9)).astype(np.float32))
    assert len(strokes) == 1
    assert np.array_equal(strokes[0][0], strokes[0][-1]) and len(strokes[0]) > 20
    radius = np.hypot(*(strokes[0] - 14.0).T)  # pixel centres at +0.5: the ring's centre is 14.0
    assert np.allclose(radius, 7.5, atol=1.0)


def test_strokes_are_in_continuous_pixel_coordinates():
    img = np.zeros((28, 28))
    img[10:13, 5:20] = 1.0  # a horizontal bar, rows 10-12: its centre line is at y = 11.5
    (stroke,) = trace_strokes(img)
    assert np.allclose(stroke[:, 1], 11.5, atol=0.125)  # within half a step of the 4x grid
    assert stroke[:, 0].min() >= 5.5 and stroke[:, 0].max() <= 19.5


def test_a_dot_and_a_blank_image():
    img = np.zeros((28, 28))
    assert trace_strokes(img) == []
    img[5:7, 8:10] = 1.0
    (dot,) = trace_strokes(img)
    assert len(dot) == 1 and np.all((dot[0] >= 5.5) & (dot[0] <= 9.5))
    assert render_strokes([dot]) is not None


def test_traced_digits_redraw_the_original_ink(digits):
    """Geometric fidelity on real digits: the strokes drawn back over the original overlap it."""
    x, _ = digits
    ious, distances = [], []
    for img in x:
        strokes = trace_strokes(img)
        a, b = img >= 0.5, redraw(img, strokes) >= 0.5
        ious.append((a & b).sum() / (a | b).sum())
        distances.append(chamfer(a, b))
    assert min(ious) > 0.7 and np.mean(ious) > 0.8
    assert max(distances) < 0.2 and np.mean(distances) < 0.12


def test_loops_stay_closed(digits):
    """Every hole of a digit (the loops of 0, 6, 8, 9, a closed 4) survives tracing and redrawing."""
    x, _ = digits
    looped = 0
    for img in x:
        expected = holes(img >= 0.5)
        looped += expected > 0
        assert holes(redraw(img, trace_strokes(img)) >= 0.5) == expected
    assert looped >= 6  # the check did see loops


def test_rendered_traces_look_like_the_normalized_digit(digits):
    """What the replay test feeds the network: strokes re-rendered at MNIST thickness."""
    x, _ = digits
    correlations, distances = [], []
    for img in x:
        original = mnist_normalize(img)
        rendered = render_strokes(trace_strokes(img))
        correlations.append(np.corrcoef(original.ravel(), rendered.ravel())[0, 1])
        distances.append(chamfer(original >= 0.5, rendered >= 0.5))
    # Not equal by design: the pen is MNIST's average, so a 5-px-thick "0" comes back 2.4 px thick.
    assert min(correlations) > 0.65 and np.mean(correlations) > 0.85
    assert max(distances) < 0.5 and np.mean(distances) < 0.25


# --------------------------------------------------------------------------------------- transforms

def test_transform_strokes_scales_then_moves_without_touching_the_input():
    strokes = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.5, 0.5]])]
    before = [s.copy() for s in strokes]
    moved = transform_strokes(strokes, 10.0, (100.0, 50.0))
    assert np.allclose(moved[0], [[110.0, 70.0], [130.0, 90.0]])
    assert np.allclose(moved[1], [[105.0, 55.0]])
    assert np.allclose(transform_strokes(strokes, (2.0, 3.0), (0.0, 0.0))[0], [[2.0, 6.0], [6.0, 12.0]])
    assert all(np.array_equal(s, b) for s, b in zip(strokes, before))


def test_traced_strokes_replayed_on_a_pad_give_the_digit_back(digits):
    """Trace, place on a 280x280 pad at 10x, paint with a 10x pen, normalise: the digit again."""
    x, _ = digits
    for img in x[::4]:
        strokes = transform_strokes(trace_strokes(img), 10.0, (0.0, 0.0))
        pen = 10.0 * img.sum() / length(trace_strokes(img))
        canvas = draw_strokes(strokes, (280, 280), pen)
        replayed = mnist_normalize(canvas)
        assert np.corrcoef(mnist_normalize(img).ravel(), replayed.ravel())[0, 1] > 0.8
