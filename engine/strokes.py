"""Pen strokes from a digit image, and moving strokes (pure NumPy + stdlib).

Tests and benchmarks replay real handwritten digits onto the drawing pad with mouse events:
:func:`trace_strokes` turns a 28x28 image into the polylines a pen could have drawn (threshold,
Zhang-Suen thinning, then a walk of the skeleton's graph), :func:`transform_strokes` scales and
moves them (``app.views.drawing_pad.place_strokes`` puts them anywhere on the pad at any size with
it). Polylines are ``(M, 2)`` arrays of continuous ``(x, y)``: pixel
``(row i, col j)`` covers ``[j, j+1) x [i, i+1)`` (Qt's convention, see :mod:`engine.preprocess`).

Fidelity, measured on bundled MNIST digits: see :func:`trace_strokes`.
"""
import numpy as np

from engine.preprocess import resample

TRACE_UPSAMPLE = 4
"""Tracing works on the image enlarged this many times: a skeleton through whole pixels of a 28x28
digit is a staircase up to half a pixel off the stroke's centre line. Measured: re-drawn validation
digits lost 3.0 / 3.6 points of accuracy (the two CNNs of :func:`trace_strokes`) traced at 1x,
1.2 / 2.2 at 4x; it costs ~15 ms instead of ~1 ms per digit."""
TRACE_THRESHOLD = 0.5
"""Ink for the skeleton: MNIST's anti-aliased edges below half intensity are left out."""
MAX_HOLE = 2
"""Holes of at most this many pixels (of the original image) inside the ink are filled before
thinning: they are gaps in a thick blob, not loops (a real loop's hole is bigger, and a pen of
MNIST width fills a smaller one anyway)."""
MIN_SPUR = 2.0
"""Branches from a free end to a junction shorter than this (pixels of the original image) are
thinning artefacts."""

# The 8 neighbours in Zhang-Suen's order P2..P9: north, then clockwise.
_RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _padded(a, fill):
    """``a: (H, W)`` inside a one-pixel border of ``fill`` -> ``(H + 2, W + 2)``."""
    out = np.full((a.shape[0] + 2, a.shape[1] + 2), fill, dtype=a.dtype)
    out[1:-1, 1:-1] = a
    return out


def _shifts(a, fill, offsets=_RING):
    """The values at ``(i + dy, j + dx)`` for each offset, ``fill`` outside: ``(len(offsets), H, W)``."""
    padded = _padded(a, fill)
    height, width = a.shape
    return np.stack([padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width] for dy, dx in offsets])


def _neighbours(mask):
    """The 8 neighbours of every pixel of ``mask: (H, W)`` bool -> ``(8, H, W)``, outside = False."""
    return _shifts(mask, False)


def _fill_small_holes(mask, max_hole):
    """``mask: (H, W)`` bool with its holes of at most ``max_hole`` pixels filled. A hole is a
    4-connected piece of background that does not touch the image's border."""
    labels = _label(~mask)
    sizes = np.bincount(labels.ravel())
    small = sizes <= max_hole
    small[0] = False  # label 0 is the ink itself
    small[np.concatenate([labels[[0, -1], :].ravel(), labels[:, [0, -1]].ravel()])] = False
    return mask | small[labels]


def _label(mask, diagonal=False):
    """Connected-component labels of ``mask: (H, W)`` bool -> int ``(H, W)``, 0 = background,
    1..n the pieces; 4-connected, or 8-connected with ``diagonal``.

    Every pixel starts labelled with its own flat index and repeatedly takes the smallest label
    around it; as a label names a pixel of the same piece, looking that pixel's label up (pointer
    jumping) passes small labels along long winding pieces in a few steps rather than one pixel
    per step.
    """
    size = mask.size
    labels = np.where(mask, np.arange(size).reshape(mask.shape), size)  # size = background
    offsets = _RING if diagonal else _RING[0::2]
    while True:
        smallest = np.minimum(labels, _shifts(labels, size, offsets).min(axis=0))
        smallest = np.where(mask, smallest, size)
        table = np.append(smallest.ravel(), size)
        smallest = table[table[smallest]]
        if np.array_equal(smallest, labels):
            break
        labels = smallest
    _, dense = np.unique(labels, return_inverse=True)
    return np.where(mask, dense.reshape(mask.shape) + 1, 0)


def _restore_lost_pieces(mask, skel):
    """Zhang-Suen erases some small blobs entirely (a 2x2 square goes in one step). Give every
    8-connected piece of ``mask: (H, W)`` bool left without a skeleton pixel back its pixel nearest
    the piece's centre, so a dot stays a dot. Returns the new ``(H, W)`` skeleton."""
    labels = _label(mask, diagonal=True)
    kept = np.zeros(labels.max() + 1, dtype=bool)
    kept[labels[skel]] = True
    kept[0] = True
    if kept.all():
        return skel
    rows, cols = np.indices(mask.shape)
    count = np.bincount(labels.ravel())
    centre_r = np.bincount(labels.ravel(), rows.ravel()) / count
    centre_c = np.bincount(labels.ravel(), cols.ravel()) / count
    dist = (rows - centre_r[labels]) ** 2 + (cols - centre_c[labels]) ** 2
    order = np.lexsort((dist.ravel(), labels.ravel()))  # by piece, nearest first
    pieces = labels.ravel()[order]
    first = order[np.concatenate([[True], pieces[1:] != pieces[:-1]])]
    first = first[~kept[labels.ravel()[first]]]
    skel = skel.copy()
    skel.ravel()[first] = True
    return skel


def _connectivity8(p):
    """Yokoi's 8-connectivity number of every pixel from its ring ``p: (8, H, W)`` (order of
    :data:`_RING`): how many 8-connected pieces of foreground the pixel touches. 1 means the pixel
    can go without splitting or merging anything."""
    empty = ~p
    sides, diagonals = empty[0::2], empty[1::2]  # N, E, S, W and NE, SE, SW, NW
    next_sides = np.roll(sides, -1, axis=0)  # E, S, W, N
    return (sides.astype(int) - (sides & diagonals & next_sides)).sum(axis=0)


def skeletonize(mask):
    """Thin ``mask: (H, W)`` bool to a one-pixel-wide 8-connected skeleton of the same topology.

    Zhang-Suen thinning with Lu and Wang's fix (a pixel needs 3 neighbours, not 2, to go: plain
    Zhang-Suen wipes out two-pixel-thick diagonal strokes, common in MNIST), each sub-iteration on
    whole arrays. It leaves diagonal strokes as 4-connected staircases; their corner pixels are
    removed last, one checkerboard colour at a time so that two neighbours never go together.
    A blob that thinning erased entirely keeps one pixel.
    """
    skel = np.asarray(mask, dtype=bool).copy()
    while True:
        changed = False
        for first in (True, False):
            p = _neighbours(skel)
            count = p.sum(axis=0)
            transitions = (~p & np.roll(p, -1, axis=0)).sum(axis=0)  # 0 -> 1 going round
            north, east, south, west = p[0], p[2], p[4], p[6]
            if first:
                side = ~(north & east & south) & ~(east & south & west)
            else:
                side = ~(north & east & west) & ~(north & south & west)
            remove = skel & (count >= 3) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                skel &= ~remove
                changed = True
        if not changed:
            break
    rows, cols = np.indices(skel.shape)
    for colour in (0, 1):
        p = _neighbours(skel)
        north, east, south, west = p[0], p[2], p[4], p[6]
        corner = (north | south) & (east | west)
        remove = skel & corner & (_connectivity8(p) == 1) & ((rows + cols) % 2 == colour)
        skel &= ~remove
    return _restore_lost_pieces(np.asarray(mask, dtype=bool), skel)


def _skeleton_graph(skel):
    """Adjacency of the skeleton's pixels: ``{(i, j): [neighbour, ...]}``.

    8-connectivity, except that a diagonal step is dropped when a pixel at the corner between its
    ends already joins them: otherwise every staircase would be full of triangles and every pixel
    beside a corner would look like a junction.
    """
    pixels = set(zip(*map(np.ndarray.tolist, np.nonzero(skel))))
    graph = {}
    for i, j in pixels:
        near = []
        for di, dj in _RING:
            q = (i + di, j + dj)
            if q not in pixels:
                continue
            if di and dj and ((i + di, j) in pixels or (i, j + dj) in pixels):
                continue
            near.append(q)
        graph[(i, j)] = near
    return graph


def _walk(graph, start, first):
    """Follow the skeleton from ``start`` through ``first`` until a free end, a junction or back
    at ``start``. Returns the list of pixels, both ends included."""
    path = [start, first]
    while len(graph[path[-1]]) == 2 and path[-1] != start:
        a, b = graph[path[-1]]
        path.append(b if a == path[-2] else a)
    return path


def _branches(graph):
    """Split the skeleton into branches between nodes (free ends and junctions); a loop without a
    node (an "o") comes out closed, starting and ending on the same pixel. Every edge once."""
    seen = set()
    branches = []

    def take(path):
        steps = set(frozenset(e) for e in zip(path[:-1], path[1:]))
        if not steps & seen:
            seen.update(steps)
            branches.append(path)

    nodes = [p for p, near in graph.items() if len(near) != 2]
    for node in sorted(nodes):
        for q in graph[node]:
            take(_walk(graph, node, q))
        if not graph[node]:
            branches.append([node])  # a lone pixel: a dot
    for p in sorted(graph):  # what is left are pure cycles
        if len(graph[p]) == 2 and frozenset((p, graph[p][0])) not in seen:
            take(_walk(graph, p, graph[p][0]))
    return branches


def _prune_spurs(graph, min_length):
    """Remove, once, every branch shorter than ``min_length`` that runs from a free end to a
    junction (Zhang-Suen leaves such whiskers at corners). ``graph`` is modified in place."""
    for path in _branches(graph):
        ends = [len(graph[path[0]]), len(graph[path[-1]])]
        length = np.hypot(*np.diff(np.array(path, dtype=float), axis=0).T).sum() if len(path) > 1 else 0.0
        if sorted(ends)[0] == 1 and sorted(ends)[1] >= 3 and length < min_length:
            inner = path if ends[0] == 1 else path[::-1]
            for p in inner[:-1]:  # keep the junction
                for q in graph.pop(p):
                    if q in graph:
                        graph[q].remove(p)


def trace_strokes(img28, threshold=TRACE_THRESHOLD, upsample=TRACE_UPSAMPLE):
    """Pen strokes that re-draw the digit ``img28: (H, W)`` or ``(H, W, 1)`` (28x28 for MNIST),
    white on black.

    The image is enlarged ``upsample`` times (linear interpolation) so the skeleton can follow a
    stroke's centre line to a fraction of a pixel; pixels ``>= threshold`` are ink; tiny holes are
    filled, the ink is thinned to a one-pixel skeleton, short whiskers are pruned and the
    skeleton's graph is walked into polylines. Loops (in 0, 6, 8, 9) stay closed: each comes out as
    one polyline whose first and last points coincide, or as branches sharing their end points.
    A dot is a one-point stroke. Returns a list of ``(M, 2)`` float64 continuous ``(x, y)`` in
    ``img28``'s pixel units, points ``1 / upsample`` px apart; empty for a blank image.

    Measured on 200 bundled digits: drawn back over the original with the pen that restores its
    ink mass, the strokes cover its ink (>= 0.5) with a mean IoU of 0.83 (5th percentile 0.73) and
    a symmetric mean (Chamfer) distance of 0.10 px. Two small CNNs trained on the bundled training
    split (one with engine.data's augmentation) classify the 500 validation digits 97.2% / 97.8%
    right as they are, and 96.0% / 95.6% after tracing and :func:`render_strokes
    <engine.preprocess.render_strokes>`: the digits lost are mostly ones written with a much
    thicker or thinner pen than MNIST's average, which re-rendering evens out by design.
    """
    img = np.asarray(img28, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"expected a greyscale image (H, W), got shape {img.shape}")
    height, width = img.shape
    if upsample > 1:
        img = resample(img, (height * upsample, width * upsample), float(upsample), (0.0, 0.0))
    mask = img >= threshold
    skel = skeletonize(_fill_small_holes(mask, MAX_HOLE * upsample ** 2))
    graph = _skeleton_graph(skel)
    _prune_spurs(graph, MIN_SPUR * upsample)
    return [(np.array(path, dtype=np.float64)[:, ::-1] + 0.5) / upsample for path in _branches(graph)]


def transform_strokes(strokes, scale, offset):
    """Strokes scaled then moved: ``p -> p * scale + offset``.

    ``strokes``: list of ``(M, 2)`` ``(x, y)``; ``scale``: a number (or ``(sx, sy)``); ``offset``:
    ``(ox, oy)``. Returns a new list of float64 ``(M, 2)``; the input is not modified.
    """
    scale = np.asarray(scale, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    return [np.asarray(s, dtype=np.float64) * scale + offset for s in strokes]
