"""MNIST-style preprocessing of a digit drawn on the drawing pad (pure NumPy).

The MNIST recipe, and what the pad does with it:

* :func:`mnist_normalize` is the recipe on pixels, as MNIST was made: crop to the ink's bounding
  box, scale (anti-aliased, aspect kept) so the long side is 20 px, then place the result in a
  28x28 frame with its intensity-weighted centre of mass at :data:`MNIST_COM`. Tests use it as the
  reference for traced and re-drawn digits.
* :func:`render_strokes` is what the pad uses: it applies the same normalisation to the pen's
  polylines and re-draws them with an MNIST-thick pen. Scaling pixels also scales the pen: a digit
  drawn small with a thick pen turns into a blob of 6-px strokes, a big one drawn thin into
  hairlines. MNIST strokes are ~2.5 px, an eighth of the digit's height, whatever the writer's
  size, and re-rendering is the only way to guarantee that for every size and pen width the pad
  offers.

Image convention: greyscale ``float`` in ``[0, 1]``, **white ink (1) on black (0)**, like MNIST.

Coordinates: images are indexed ``img[row, col]``. *Index coordinates* put the centre of pixel
``(i, j)`` at ``(i, j)``; *continuous* (pen / Qt) coordinates ``(x, y)`` put the pixel's area at
``[j, j+1) x [i, i+1)``, so its centre is at ``(j + 0.5, i + 0.5)``. Polylines are ``(M, 2)``
arrays of continuous ``(x, y)``.

Measured on the bundled 5,000 MNIST digits (threshold 0: any ink):
the long side of the ink's bounding box is 20 px in 100% of digits (the height is 20 in 90%; width
median 16 px, 10 px for a "1"); the centre of mass in index coordinates is (13.99, 14.00) with a
standard deviation of 0.29 px per axis -- MNIST shifted by whole pixels, so the error is uniform in
+-0.5 px -- which is (14.5, 14.5) in continuous coordinates, half a pixel right of and below the
frame's geometric centre. Stroke thickness, as soft ink area / length of the traced skeleton
(:func:`engine.strokes.trace_strokes`), on 500 digits: median 2.5 px (10th-90th percentile
1.8-3.8 px; "8" thinnest at 2.0, "1" thickest at 2.9), 12.5% of the 20-px box.
"""
import numpy as np

MNIST_SIZE = 28
"""Side of the frame the network receives, in pixels."""
MNIST_BOX = 20
"""Long side of the ink's bounding box inside the frame, in pixels."""
MNIST_COM = 14.0
"""Where MNIST puts the centre of mass, in *index* coordinates (both axes); measured, see above."""
INK_THRESHOLD = 0.1
"""Intensities below this are noise: ignored for the bounding box and blank detection, zeroed."""
DEFAULT_PEN_WIDTH_FRAC = 0.12
"""MNIST's pen width as a fraction of :data:`MNIST_BOX`: 2.4 px. Calibrated so that re-rendering
traced MNIST digits gives them back their own ink mass (median ratio 1.00 on 500 digits)."""

_SEGMENT_RUN = 16  # consecutive segments rendered together (see _capsule_coverage)


def _as_image(img):
    """``img: (H, W)`` or ``(H, W, 1)`` -> float64 ``(H, W)``; ValueError for another shape, an empty
    image or NaN / infinity."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"expected a non-empty greyscale image (H, W), got shape {img.shape}")
    img = img.astype(np.float64, copy=False)
    if not np.all(np.isfinite(img)):
        raise ValueError("image contains NaN or infinity")
    return img


def is_blank(img, threshold=INK_THRESHOLD):
    """True when no pixel reaches ``threshold``. ``img: (H, W)`` (or ``(H, W, 1)``) white on black."""
    return not bool(np.any(_as_image(img) >= threshold))


def ink_bbox(img, threshold=INK_THRESHOLD):
    """Bounding box of the pixels ``>= threshold`` as half-open ``(top, bottom, left, right)``.

    ``img: (H, W)``. Returns None for a blank image. Height is ``bottom - top`` pixels.
    """
    ink = _as_image(img) >= threshold
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def center_of_mass(img):
    """Intensity-weighted centre ``(cy, cx)`` of ``img: (H, W)`` in index coordinates.

    Returns None when the image has no mass.
    """
    img = _as_image(img)
    mass = img.sum()
    if mass <= 0:
        return None
    cy = img.sum(axis=1) @ np.arange(img.shape[0]) / mass
    cx = img.sum(axis=0) @ np.arange(img.shape[1]) / mass
    return float(cy), float(cx)


def _box_integral(u):
    """Antiderivative of the unit box on ``[-0.5, 0.5)``, 0 at -inf and 1 at +inf. ``u``: any shape."""
    return np.clip(u + 0.5, 0.0, 1.0)


def _tent_integral(u):
    """Antiderivative of the unit tent ``max(0, 1 - |u|)``, 0 at -inf and 1 at +inf. ``u``: any shape."""
    u = np.clip(u, -1.0, 1.0)
    return np.where(u < 0, 0.5 * (1 + u) ** 2, 1 - 0.5 * (1 - u) ** 2)


def _resample_matrix(n_out, n_in, scale, offset):
    """Weights ``(n_out, n_in)`` resampling a 1-D signal under ``u_out = scale * u_in + offset``.

    Continuous coordinates; background (outside the input) is black. Every output pixel is the
    *average* of the reconstructed input over its footprint ``[o, o + 1)`` mapped back to the input.
    Downscaling reconstructs pixels as constant squares, which makes this exact area averaging (a
    box filter: no aliasing, the identity at scale 1 and whole-pixel offsets). Upscaling (only a
    drawing smaller than the frame) reconstructs with linear interpolation instead, so it is smooth
    rather than blocky.
    """
    integral = _box_integral if scale <= 1 else _tent_integral
    lo = (np.arange(n_out)[:, None] - offset) / scale  # footprint in input units, (n_out, 1)
    hi = lo + 1.0 / scale
    centres = np.arange(n_in)[None, :] + 0.5
    return (integral(hi - centres) - integral(lo - centres)) * scale


def resample(img, out_shape, scale, offset):
    """Anti-aliased resampling of ``img: (H, W)`` into ``out_shape = (h, w)`` (separable: two
    matrix products).

    The map is ``(x_out, y_out) = scale * (x_in, y_in) + (offset_x, offset_y)`` in continuous
    coordinates, ``offset = (offset_y, offset_x)``. Ink mapped outside the output is cut.
    Returns ``(h, w)`` float64.
    """
    img = _as_image(img)
    rows = _resample_matrix(out_shape[0], img.shape[0], scale, offset[0])
    cols = _resample_matrix(out_shape[1], img.shape[1], scale, offset[1])
    # einsum's own loops, not BLAS: for products this small, BLAS's threads cost 5-40 ms instead of
    # 0.1 when the cores are busy (the training thread runs beside the drawing pad).
    return np.einsum("ik,kl->il", np.einsum("ij,jk->ik", rows, img), cols.T)


def _fit_and_centre(img, out_size, box, target_com, threshold):
    """Crop ``img: (H, W)`` to its ink, scale the long side to ``box`` and place it in an
    ``(out_size, out_size)`` frame with the centre of mass at ``target_com`` (index coordinates,
    per axis ``(cy, cx)``), sub-pixel accurate. Offsets are clamped so that the ink's box stays
    inside the frame when it fits (on the long axis of an 8x8 digit the box *is* the frame).
    Returns ``(out_size, out_size)`` float64, or None for a blank image.
    """
    bbox = ink_bbox(img, threshold)
    if bbox is None:
        return None
    top, bottom, left, right = bbox
    crop = img[top:bottom, left:right]
    crop = np.where(crop >= threshold, crop, 0.0)  # noise would pull the centre of mass
    scale = box / max(crop.shape)
    com = np.array(center_of_mass(crop)) + 0.5  # continuous coordinates
    target = np.asarray(target_com, dtype=np.float64) + 0.5
    offset = target - scale * com
    # The box occupies [offset, offset + extent); keep it inside the frame when it fits.
    extent = scale * np.array(crop.shape)
    low, high = np.minimum(0.0, out_size - extent), np.maximum(0.0, out_size - extent)
    offset = np.clip(offset, low, high)
    out = resample(crop, (out_size, out_size), scale, offset)
    # Resampling moves the centre of mass by a few hundredths of a pixel (each output pixel
    # lumps its share of an input pixel at its own centre); one correction step removes that.
    offset = np.clip(offset + np.asarray(target_com) - center_of_mass(out), low, high)
    out = resample(crop, (out_size, out_size), scale, offset)
    return np.clip(out, 0.0, 1.0)


def mnist_normalize(img, threshold=INK_THRESHOLD):
    """The pad's pixels as an MNIST digit.

    ``img: (H, W)`` (or ``(H, W, 1)``) float in [0, 1], white ink on black, any size.
    Pixels below ``threshold`` are noise. The ink's bounding box is scaled (area averaging,
    aspect ratio kept) so its long side spans exactly :data:`MNIST_BOX` px, and placed so its
    centre of mass is at :data:`MNIST_COM` in index coordinates (to ~0.01 px). Because the placement
    is sub-pixel, the faint anti-aliased edge may touch a 21st row/column. The box is kept inside
    the frame: for a drawing so lopsided that its centre of mass cannot reach the centre (no
    MNIST digit is), the mass lands off-centre rather than ink being cut.

    Returns ``(28, 28)`` float32 in [0, 1], or None for a blank canvas (:func:`is_blank`): there is
    no digit to classify.
    """
    out = _fit_and_centre(_as_image(img), MNIST_SIZE, MNIST_BOX, (MNIST_COM, MNIST_COM), threshold)
    return None if out is None else out.astype(np.float32)


def _polylines(strokes):
    """Validate ``strokes`` (iterable of ``(M, 2)`` x, y) -> list of float64 ``(M, 2)``, empty
    ones dropped."""
    out = []
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        if pts.shape[0] == 0:
            continue
        if not np.all(np.isfinite(pts)):
            raise ValueError("stroke contains NaN or infinity")
        out.append(pts)
    return out


def _segments(polylines, min_step):
    """Segment endpoints ``(a, b)``, each ``(K, 2)``, of ``polylines``; a one-point polyline is a
    zero-length segment (a dot). Points closer than ``min_step`` along the path are merged first:
    a mouse delivers a point every pixel or two of a big pad, i.e. tenths of a pixel in the 28x28
    frame, and the cost of rendering is linear in the number of segments."""
    starts, ends = [], []
    for pts in polylines:
        if len(pts) > 1:
            arclen = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
            bucket = np.floor(arclen / min_step)
            keep = np.concatenate([[True], bucket[1:] != bucket[:-1]])
            keep[-1] = True  # the pen's last position, wherever it is
            pts = pts[keep]
        if len(pts) == 1:
            pts = np.repeat(pts, 2, axis=0)
        starts.append(pts[:-1])
        ends.append(pts[1:])
    return np.concatenate(starts), np.concatenate(ends)


def _capsule_coverage(xs, ys, a, b, radius, soft):
    """Ink coverage of a sample grid by round-capped segments (vectorised distance to segment).

    ``xs: (nx,)``, ``ys: (ny,)`` increasing sample positions; ``a, b: (K, 2)`` segment ends, all
    continuous ``(x, y)``. A sample's coverage ramps linearly from 1 to 0 over a band of width
    ``soft`` (the sample spacing) centred on the capsule's edge: anti-aliasing within each sample.
    Segments are taken in runs of consecutive ones (neighbours along a stroke), each against only
    the samples inside the run's bounding box plus the pen: the work follows the ink, not the
    whole grid. Returns ``(ny, nx)``.
    """
    d2_min = np.full((ys.size, xs.size), np.inf, dtype=np.float32)
    reach = radius + soft
    # Per segment, once for all runs (the loop below is per run: keep its numpy calls few).
    d = (b - a).astype(np.float32)                                       # (K, 2)
    len2 = (d * d).sum(axis=1)
    inv_len2 = np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)  # dot: t = 0
    a32 = a.astype(np.float32)
    starts = np.arange(0, len(a), _SEGMENT_RUN)
    box_lo = np.minimum.reduceat(np.minimum(a, b), starts, axis=0) - reach   # (runs, 2)
    box_hi = np.maximum.reduceat(np.maximum(a, b), starts, axis=0) + reach
    i0s, i1s = np.searchsorted(xs, box_lo[:, 0]).tolist(), np.searchsorted(xs, box_hi[:, 0]).tolist()
    j0s, j1s = np.searchsorted(ys, box_lo[:, 1]).tolist(), np.searchsorted(ys, box_hi[:, 1]).tolist()
    xs32, ys32 = xs.astype(np.float32), ys.astype(np.float32)
    for k, i0, i1, j0, j1 in zip(starts.tolist(), i0s, i1s, j0s, j1s):
        if i0 >= i1 or j0 >= j1:
            continue
        run = slice(k, k + _SEGMENT_RUN)
        dx, dy = d[run, 0], d[run, 1]
        rx = xs32[i0:i1, None] - a32[run, 0]                             # (nx', K')
        ry = ys32[j0:j1, None, None] - a32[run, 1]                       # (ny', 1, K')
        # (ny', nx', K'): projection onto each segment, clamped to it, then squared distance.
        t = np.clip((rx * dx + ry * dy) * inv_len2[run], 0.0, 1.0)
        ex = rx - t * dx
        ey = ry - t * dy
        window = d2_min[j0:j1, i0:i1]
        np.minimum(window, (ex * ex + ey * ey).min(axis=2), out=window)
    return np.clip((radius - np.sqrt(d2_min)) / soft + 0.5, 0.0, 1.0)


def draw_strokes(strokes, shape, pen_width, supersample=1):
    """Rasterise polylines as white anti-aliased round-capped strokes on a black canvas.

    ``strokes``: list of ``(M, 2)`` continuous ``(x, y)``; ``shape = (H, W)``; ``pen_width`` in
    canvas pixels. Each pixel averages ``supersample x supersample`` samples, each of which is
    itself anti-aliased; 1 already gives smooth edges, 4 resolves strokes narrower than a pixel and
    tight curves. Only the strokes' bounding box (plus the pen) is computed. Returns ``(H, W)`` float32.
    This is the pad's painting without Qt: tests and benchmarks use it to make canvases.
    """
    height, width = shape
    canvas = np.zeros((height, width), dtype=np.float32)
    polylines = _polylines(strokes)
    if not polylines:
        return canvas
    radius = 0.5 * pen_width
    pts = np.concatenate(polylines)
    margin = radius + 1.0
    c0, r0 = np.maximum(np.floor(pts.min(axis=0) - margin).astype(int), 0)
    c1 = min(int(np.ceil(pts[:, 0].max() + margin)), width)
    r1 = min(int(np.ceil(pts[:, 1].max() + margin)), height)
    if c0 >= c1 or r0 >= r1:
        return canvas  # entirely off the canvas
    ss = int(supersample)
    sub = (np.arange(ss) + 0.5) / ss
    xs = (np.arange(c0, c1)[:, None] + sub).ravel()
    ys = (np.arange(r0, r1)[:, None] + sub).ravel()
    a, b = _segments(polylines, min_step=0.5)
    cover = _capsule_coverage(xs, ys, a, b, radius, soft=1.0 / ss)
    cover = cover.reshape(r1 - r0, ss, c1 - c0, ss).mean(axis=(1, 3))
    canvas[r0:r1, c0:c1] = cover
    return canvas


def render_strokes(strokes, pen_width_frac=DEFAULT_PEN_WIDTH_FRAC, supersample=4):
    """The pen's polylines re-drawn as an MNIST digit with an MNIST-thick pen.

    ``strokes``: list of ``(M, 2)`` continuous ``(x, y)`` in any units (the pad's pixels); one
    point is a dot. The polylines' bounding box is scaled uniformly (a "1" stays thin and tall) so
    that the *ink's* box, strokes included, has a long side of :data:`MNIST_BOX` px; the strokes are
    drawn ``pen_width_frac * MNIST_BOX`` px wide directly at 28x28 with round caps (supersampled,
    see :func:`draw_strokes`) and moved so the centre of mass is at :data:`MNIST_COM` (index
    coordinates). The pad's own pen width and the digit's size play no part: the thickness is
    MNIST's whatever was drawn, which scaling the pad's pixels cannot give (see the module doc).

    Returns ``(28, 28)`` float32 in [0, 1], or None when there is no point.
    """
    polylines = _polylines(strokes)
    if not polylines:
        return None
    pts = np.concatenate(polylines)
    lo = pts.min(axis=0)
    extent = pts.max(axis=0) - lo
    pen = pen_width_frac * MNIST_BOX
    scale = (MNIST_BOX - pen) / extent.max() if extent.max() > 0 else 0.0
    ink_extent = scale * extent + pen  # (x, y) box of the ink
    # Keep the ink's box inside the frame, as mnist_normalize does: bounds of the skeleton box's origin.
    low, high = 0.5 * pen, MNIST_SIZE - ink_extent + 0.5 * pen

    def draw(origin, samples):
        return draw_strokes([(p - lo) * scale + origin for p in polylines],
                            (MNIST_SIZE, MNIST_SIZE), pen, samples)

    # Draw with the ink's box centred, then move by the centre of mass's error: drawing is exact
    # under translation, so one correction lands the mass within a few hundredths of a pixel. The
    # first drawing only locates the mass: half the supersampling (a quarter of the samples) moves
    # it by about a hundredth of a pixel and halves the cost of a classification's preprocessing.
    origin = 0.5 * (MNIST_SIZE - ink_extent) + 0.5 * pen
    cy, cx = center_of_mass(draw(origin, max(1, supersample // 2)))
    origin = np.clip(origin + MNIST_COM - np.array([cx, cy]), low, high)
    return draw(origin, supersample)


def downsample_8x8(img28, threshold=INK_THRESHOLD):
    """A 28x28 digit as the ``tiny8x8`` model's input, in the style of scikit-learn's 8x8 digits.

    Those are 32x32 bitmaps counted in 4x4 blocks (0..16, divided by 16 to get [0, 1]); measured on
    the bundled 1,797: the ink fills all 8 rows in every digit (no margin), is ~5 columns wide and
    its centre of mass is at (3.48, 3.57) in index coordinates. So the ink's box is scaled (area
    averaging, aspect kept) to a long side of 8 px filling the frame on that axis and centred by
    mass, at 3.5, on the other.

    ``img28: (28, 28)`` (any size works) in [0, 1], white on black. Returns ``(8, 8)`` float32 in
    [0, 1], or None when blank.
    """
    out = _fit_and_centre(_as_image(img28), 8, 8, (3.5, 3.5), threshold)
    return None if out is None else out.astype(np.float32)
