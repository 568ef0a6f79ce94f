"""Step-by-step trace of one convolution, forward and backward, number by number (issue 6).

``trace_conv2d(x, w, b, dy, stride, padding)`` takes ONE sample and returns a :class:`ConvTrace`
whose ``frames`` replay the computation the way seed 001 derives it:

- ``forward`` -> ``y``: one frame per (c_out, c_in, output cell); kh*kw terms: the window of input
  channel ci times the kernel slice ``w[:, :, ci, co]``, added to ``y[i, j, co]``.
- ``dilate`` -> ``dy_dilated``: one frame per δ cell, copied to ``(i*sh, j*sw)`` (s-1 zeros between).
- ``pad`` -> ``dy_padded``: one frame per δ cell, the dilated δ moved inside k-1 zeros on every side.
- ``rotate`` -> ``w_rot``: one frame per kernel cell, ``w_rot[p, q] = w[kh-1-p, kw-1-q]``.
- ``input_grad`` -> ``dx_padded``: one frame per (c_in, c_out, padded input cell); kh*kw terms: the
  stride-1 window of ``dy_padded`` times ``w_rot``, summed over c_out across frames.
- ``crop`` -> ``dx``: one frame per input cell: the forward padding is cut away.
- ``weight_grad`` -> ``dw``: one frame per (c_out, c_in, kernel cell); Hd*Wd terms: ``dy_dilated``
  slid over ``x_padded`` (valid, stride 1).
- ``bias_grad`` -> ``db``: one frame per c_out; H_out*W_out terms ``δ·1``.

Frames come stage by stage in that order; inside a stage the channel pair is the outermost loop, so the
frames of one ``(c_in, c_out)`` pair are contiguous (the live-model view shows one pair: see
:meth:`ConvTrace.frames_for`). A frame's ``value`` is the running sum for its cell after this frame
(bias included), so the last frame that writes a cell holds its final value: collecting the last
frame per index of ``y``, ``dx``, ``dw``, ``db`` gives exactly ``conv2d`` / ``conv2d_backward`` for a
batch of 1. ``dx`` frames (the crop stage) index the original, unpadded input.

Terms list *every* product of the window as the article draws the convolution, zeros inserted by
padding or dilation included (the view shows them, marked differently). Each :class:`Term` names the
cells its factors are read from (``a_source`` / ``b_source``, in the trace's arrays) and where the
number originally comes from (``a_origin`` / ``b_origin`` in ``"x"``, ``"dy"``, ``"w"``), or ``None``
for an inserted zero. :meth:`ConvTrace.formula` leaves inserted zeros out, which gives the article's
formulas, e.g. ``∇a22 = δ11·w22 + δ12·w21 + δ21·w12 + δ22·w11``.

Design for size: a 28x28x16 -> 16 layer has about half a million frames, so nothing per frame is
stored. ``trace_conv2d`` computes every array vectorised, including the per-channel running sums
(``(H_out, W_out, C_in, C_out)`` for ``y``, ``(Hp, Wp, C_in, C_out)`` for ``dx_padded``), and
``frames`` is a lazy sequence: ``len()``, indexing and slicing decode the position arithmetically and
build the one frame asked for. Measured on that layer (SAME, 2 shared cores): ``trace_conv2d`` 5-15 ms,
a window or copy frame 3-20 µs, a 784-term ``weight_grad`` frame 2-4 ms, a ``bias_grad`` frame
1-2 ms. All arrays are float64 copies, whatever dtype comes in: the trace is for reading numbers.

Stride and leftovers: δ is dilated with s-1 zeros between values and then *extended* with zero rows /
columns for input rows that no window reached (VALID with ``(H - k) % s != 0``, or any padding that
leaves a remainder), so the dilated δ is ``(Hp - kh + 1, Wp - kw + 1)`` and the full convolution
(``k - 1`` zeros around it, rotated kernel, stride 1) returns one gradient per padded input cell;
those leftover cells get zero. Cropping the (possibly asymmetric SAME) forward padding gives ``dx``.

For a viewer: :meth:`ConvTrace.state_at` gives a target array as it stands after a frame (what is
written so far), :meth:`ConvTrace.origin` tells data from inserted zeros, and :func:`live_conv_trace`
traces a conv layer of a model on one sample with the real δ of that sample's loss.

Formula notation: x -> ``a``, dy -> ``δ``, w -> ``w``, y -> ``z``, gradients ``∇a``, ``∇w``, ``∇b``.
Rows and columns count from 1, as in the article's formulas; they are written together (``a23``) when
every spatial size of the trace is at most 9, else as ``a(12,3)``. Channels follow in brackets when the
layer has more than one, counted from 0 like the channels of the app's other views (Kernels, Feature
maps, Pooling): ``a23[ci]``, ``δ11[co]``, ``z11[co]``, ``w12[ci,co]``, ``b[co]``. Intermediate cells are
written by array name, e.g. ``dy_padded[2,2]``. When a cell's sum spans several frames (one per
channel), the running sum carried in from the earlier frames is written as a number at the front.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.layers import Conv2D
from engine.ops import conv_output_hw, normalize_stride, resolve_padding
from engine.text import elide

STAGES = ("forward", "dilate", "pad", "rotate", "input_grad", "crop", "weight_grad", "bias_grad")

# The array each stage writes (frame.target), and back.
_TARGET_OF_STAGE = {"forward": "y", "dilate": "dy_dilated", "pad": "dy_padded", "rotate": "w_rot",
                    "input_grad": "dx_padded", "crop": "dx", "weight_grad": "dw", "bias_grad": "db"}
_STAGE_OF_TARGET = {target: stage for stage, target in _TARGET_OF_STAGE.items()}

# Formula symbols (seed 001's notation) of the original arrays and of the final targets.
_SYMBOL = {"x": "a", "dy": "δ", "w": "w", "b": "b", "y": "z", "dx": "∇a", "dw": "∇w", "db": "∇b"}

Source = tuple  # (array name, index tuple)


@dataclass(frozen=True)
class Term:
    """One product ``a_value * b_value`` of a frame.

    ``a_source`` / ``b_source``: ``(array name in ConvTrace.arrays, index)`` of the cell read at this
    step (``b_source`` is None for the constant 1 of the bias gradient). ``a_origin`` / ``b_origin``:
    where the number comes from in the original ``"x"``, ``"dy"`` or ``"w"``, or None when it is a
    zero inserted by padding or dilation.
    """

    a_value: float
    a_source: Source
    b_value: float
    b_source: Source | None
    a_origin: Source | None
    b_origin: Source | None

    @property
    def product(self) -> float:
        return self.a_value * self.b_value

    @property
    def inserted_zero(self) -> bool:
        """True when a factor is a zero that padding or dilation put there (not data)."""
        return self.a_origin is None or (self.b_source is not None and self.b_origin is None)


@dataclass(frozen=True)
class Window:
    """Cells of one array a frame reads: ``rows x cols`` (ranges, possibly strided) at ``channels``.

    ``channels`` is the trailing index: ``(c,)`` for ``(H, W, C)`` arrays, ``(ci, co)`` for kernels.
    """

    array: str
    rows: range
    cols: range
    channels: tuple

    def cells(self) -> list[tuple]:
        return [(r, c, *self.channels) for r in self.rows for c in self.cols]


@dataclass(frozen=True)
class Frame:
    """One step. ``index`` indexes ``ConvTrace.arrays[target]`` (``dx``: unpadded input coordinates).

    ``value`` = ``carry`` + sum of the term products: the running value of the cell after this step.
    ``carry`` is what the cell held before (the bias for the first ``y`` frame of a cell when there is
    one, the earlier channels' sum otherwise); for copy stages (dilate, pad, rotate, crop) ``terms``
    is empty and ``value`` is the copied number. ``part = (k, n)``: this is step k (0-based) of the n
    frames that build this cell. ``reads``: the windows read, for highlighting.
    """

    position: int
    stage: str
    target: str
    index: tuple
    terms: tuple
    value: float
    carry: float
    has_bias: bool
    part: tuple
    reads: tuple

    @property
    def writes(self) -> Source:
        """``(array name, index)`` of the cell this frame writes."""
        return (self.target, self.index)


class WorkedExample(NamedTuple):
    """Inputs of ``trace_conv2d`` for one worked example: x (H, W, C_in), w (kh, kw, C_in, C_out),
    b (C_out,) or None, dy (H_out, W_out, C_out)."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    dy: np.ndarray
    stride: int
    padding: str
    description: str


def _hwc(rows) -> np.ndarray:
    """A 2-D list as a one-channel ``(H, W, 1)`` float64 array."""
    return np.asarray(rows, dtype=np.float64)[:, :, None]


def _kernel(rows) -> np.ndarray:
    """A 2-D list as a one-in, one-out kernel ``(kh, kw, 1, 1)``."""
    return np.asarray(rows, dtype=np.float64)[:, :, None, None]


def _two_channel(a, b) -> np.ndarray:
    """Two 2-D lists stacked as channels ``(H, W, 2)``."""
    return np.stack([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)], axis=-1)


WORKED_EXAMPLES: dict[str, WorkedExample] = {
    "seed001_5x5_kernel3": WorkedExample(
        # The article's figure did not survive; its text gives the kernel, the first window
        # [[1,1,1],[0,1,1],[0,0,1]] and 1·1+1·0+1·1+0·0+1·1+1·0+0·1+0·0+1·1 = 4, which match the
        # classic 5x5 input of this animation (UFLDL's), used here.
        x=_hwc([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]),
        w=_kernel([[1, 0, 1], [0, 1, 0], [1, 0, 1]]),
        b=None,
        dy=_hwc([[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
        stride=1,
        padding="VALID",
        description="Seed 001: a 5x5 input and the kernel [[1,0,1],[0,1,0],[1,0,1]], stride 1, VALID; "
        "the first output is 4. δ is an arbitrary 3x3 example.",
    ),
    "seed001_3x3_kernel2_stride1": WorkedExample(
        x=_hwc([[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
        w=_kernel([[1, 2], [3, 4]]),
        b=None,
        dy=_hwc([[1, -1], [2, 0.5]]),
        stride=1,
        padding="VALID",
        description="Seed 001's backward derivation: a 3x3 input, a 2x2 kernel, stride 1. δ padded with "
        "k-1 = 1 zero and convolved with the kernel rotated by 180° gives "
        "∇a22 = δ11·w22 + δ12·w21 + δ21·w12 + δ22·w11.",
    ),
    "seed001_4x4_kernel2_stride2": WorkedExample(
        x=_hwc(np.arange(1, 17).reshape(4, 4)),
        w=_kernel([[1, 2], [3, 4]]),
        b=None,
        dy=_hwc([[1, -1], [2, 0.5]]),
        stride=2,
        padding="VALID",
        description="Seed 001, stride 2: a 4x4 input and a 2x2 kernel. δ gets s-1 = 1 zero between its "
        "values before the k-1 padding; the rotated kernel still moves with stride 1, so every ∇a "
        "has one product, e.g. ∇a12 = δ11·w12.",
    ),
    "seed001_two_channel": WorkedExample(
        x=_two_channel([[1, 2], [3, 4]], [[5, 6], [7, 8]]),
        w=_two_channel([[1, 2], [3, 4]], [[5, 6], [7, 8]])[:, :, :, None],
        b=None,
        dy=np.ones((1, 1, 1)),
        stride=1,
        padding="VALID",
        description="Seed 001's 2x2x2 input and 2x2x2 kernel. The article sums the products per position "
        "over the channels and gets a matrix [[26,40],[58,80]]; that is not a convolution. The true "
        "valid convolution sums over the window and the channels: one value, 30 + 174 = 204.",
    ),
}


class _LazyFrames(Sequence):
    """Frames at the given positions of a trace, built on access (``len``, ``[i]``, ``[a:b]``)."""

    def __init__(self, trace: "ConvTrace", positions):
        # positions: a range or a 1-D integer array of frame positions.
        self._trace = trace
        self._positions = positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return _LazyFrames(self._trace, self._positions[key])
        return self._trace._build(int(self._positions[key]))

    @property
    def positions(self):
        """Positions of these frames in ``ConvTrace.frames`` (for a scrub slider)."""
        return self._positions


class ConvTrace:
    """The arrays of one traced convolution and its lazy ``frames``; built by :func:`trace_conv2d`.

    Arrays (float64), shapes with ``Hp, Wp`` the padded input and ``Hd = Hp-kh+1, Wd = Wp-kw+1``:
    ``x (H, W, C_in)``, ``w (kh, kw, C_in, C_out)``, ``b (C_out,)`` or None, ``dy (H_out, W_out, C_out)``,
    ``x_padded (Hp, Wp, C_in)``, ``y (H_out, W_out, C_out)``, ``dy_dilated (Hd, Wd, C_out)``,
    ``dy_padded_for_input_grad (Hd+2(kh-1), Wd+2(kw-1), C_out)``, ``w_rot180 (kh, kw, C_in, C_out)``,
    ``dx_full (Hp, Wp, C_in)`` (before cropping), ``dx (H, W, C_in)``, ``dw (kh, kw, C_in, C_out)``,
    ``db (C_out,)``. ``arrays`` maps the names used in frames and terms to them (``"dy_padded"`` is
    ``dy_padded_for_input_grad``, ``"w_rot"`` is ``w_rot180``, ``"dx_padded"`` is ``dx_full``).
    Geometry: ``stride (sh, sw)``, ``padding ((top, bottom), (left, right))``, ``leftover (rows, cols)``
    of padded input no window reached.
    """

    def __init__(self, x, w, b, dy, stride, padding):
        self.x, self.w, self.b, self.dy = x, w, b, dy
        # Where dy came from, for the words: "given" (an example's or the learner's numbers), "loss" (a real
        # sample's loss, set by live_conv_trace) or "variant" (the transposed_pool variant's wrong backward)
        self.dy_origin = "given"
        self.stride = stride
        self.padding = padding
        (pt, pb), (pl, pr) = padding
        sh, sw = stride
        kh, kw, c_in, c_out = w.shape
        h_out, w_out = dy.shape[:2]
        self.x_padded = np.pad(x, ((pt, pb), (pl, pr), (0, 0)))
        hp, wp = self.x_padded.shape[:2]
        self.leftover = (hp - (h_out - 1) * sh - kh, wp - (w_out - 1) * sw - kw)

        # Forward, per input channel, then the running sum over channels (bias first).
        windows = sliding_window_view(self.x_padded, (kh, kw), axis=(0, 1))[::sh, ::sw]
        per_channel = np.einsum("ijcpq,pqco->ijco", windows, w)
        start = 0.0 if b is None else b
        self._y_running = start + np.cumsum(per_channel, axis=2)  # (H_out, W_out, C_in, C_out)
        self.y = self._y_running[:, :, -1, :]

        # δ dilated for the stride and extended over the leftover rows/cols: (Hp-kh+1, Wp-kw+1).
        self.dy_dilated = np.zeros((hp - kh + 1, wp - kw + 1, c_out))
        self.dy_dilated[: (h_out - 1) * sh + 1 : sh, : (w_out - 1) * sw + 1 : sw] = dy
        self.dy_padded_for_input_grad = np.pad(self.dy_dilated, ((kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
        self.w_rot180 = w[::-1, ::-1]

        # Full convolution with the rotated kernel, stride 1, per output channel, summed over them.
        dy_windows = sliding_window_view(self.dy_padded_for_input_grad, (kh, kw), axis=(0, 1))
        per_out = np.einsum("rcopq,pqio->rcio", dy_windows, self.w_rot180)
        self._dx_running = np.cumsum(per_out, axis=3)  # (Hp, Wp, C_in, C_out)
        self.dx_full = self._dx_running[:, :, :, -1]
        self.dx = self.dx_full[pt : pt + x.shape[0], pl : pl + x.shape[1]]

        # ∇W: the dilated δ slid over the padded input (valid, stride 1).
        x_windows = sliding_window_view(self.x_padded, self.dy_dilated.shape[:2], axis=(0, 1))
        self.dw = np.einsum("pqcuv,uvo->pqco", x_windows, self.dy_dilated)
        self.db = dy.sum(axis=(0, 1))

        self.arrays = {
            "x": x, "w": w, "dy": dy, "x_padded": self.x_padded, "y": self.y,
            "dy_dilated": self.dy_dilated, "dy_padded": self.dy_padded_for_input_grad,
            "w_rot": self.w_rot180, "dx_padded": self.dx_full, "dx": self.dx, "dw": self.dw,
            "db": self.db,
        }  # fmt: skip
        if b is not None:
            self.arrays["b"] = b

        counts = {
            "forward": c_out * c_in * h_out * w_out,
            "dilate": c_out * h_out * w_out,
            "pad": c_out * h_out * w_out,
            "rotate": c_out * c_in * kh * kw,
            "input_grad": c_in * c_out * hp * wp,
            "crop": c_in * x.shape[0] * x.shape[1],
            "weight_grad": c_out * c_in * kh * kw,
            "bias_grad": c_out,
        }
        self._counts = counts
        self._starts = []
        total = 0
        for stage in STAGES:
            self._starts.append(total)
            total += counts[stage]
        self.frames = _LazyFrames(self, range(total))
        # Write indices compactly (a23) only when no spatial size needs two digits.
        self._compact = max(hp + kh - 1, wp + kw - 1) <= 9

    # ----------------------------------------------------------------------------- navigation
    def stage_starts(self) -> dict[str, int]:
        """Position of the first frame of every stage (all stages have at least one frame)."""
        return dict(zip(STAGES, self._starts))

    def frames_for(self, stage: str, c_in: int | None = None, c_out: int | None = None) -> _LazyFrames:
        """The frames of one stage, optionally only those of one input and/or output channel.

        Channel filters that a stage has no use for are ignored (``dilate``, ``pad``, ``bias_grad``
        have no input channel; ``crop`` has no output channel).
        """
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
        kh, kw, n_in, n_out = self.w.shape
        h_out, w_out = self.dy.shape[:2]
        hp, wp = self.x_padded.shape[:2]
        h, w = self.x.shape[:2]
        # Loop nest of each stage, outermost first: (channel axis or None, size).
        nests = {
            "forward": [("co", n_out), ("ci", n_in), (None, h_out * w_out)],
            "dilate": [("co", n_out), (None, h_out * w_out)],
            "pad": [("co", n_out), (None, h_out * w_out)],
            "rotate": [("co", n_out), ("ci", n_in), (None, kh * kw)],
            "input_grad": [("ci", n_in), ("co", n_out), (None, hp * wp)],
            "crop": [("ci", n_in), (None, h * w)],
            "weight_grad": [("co", n_out), ("ci", n_in), (None, kh * kw)],
            "bias_grad": [("co", n_out)],
        }[stage]
        wanted = {"ci": c_in, "co": c_out}
        grid = np.arange(self._counts[stage]).reshape([size for _, size in nests])
        selector = tuple(
            slice(None) if axis is None or wanted[axis] is None else self._check_channel(axis, wanted[axis])
            for axis, _ in nests
        )
        start = self._starts[STAGES.index(stage)]
        local = grid[selector].ravel()
        if len(local) == self._counts[stage]:
            return _LazyFrames(self, range(start, start + len(local)))
        return _LazyFrames(self, start + local)

    def _check_channel(self, axis: str, value: int) -> int:
        limit = self.w.shape[2] if axis == "ci" else self.w.shape[3]
        if not 0 <= value < limit:
            raise IndexError(f"{axis}={value} out of range 0..{limit - 1}")
        return value

    # ---------------------------------------------------------------------- state for a viewer
    def origin(self, source: Source) -> Source | None:
        """Where the number in a cell comes from: ``("x" | "dy" | "w", index)``, or None for a zero
        inserted by padding or dilation. source: ``(array name, index)``; cells of ``x_padded``,
        ``dy_dilated``, ``dy_padded`` and ``w_rot`` are followed back, any other cell is its own origin.
        """
        name, index = source
        kh, kw = self.w.shape[:2]
        if name == "x_padded":
            return self._origin_x(*index)
        if name == "dy_dilated":
            return self._origin_dy(*index)
        if name == "dy_padded":
            r, c, co = index
            return self._origin_dy(r - (kh - 1), c - (kw - 1), co)
        if name == "w_rot":
            p, q, ci, co = index
            return ("w", (kh - 1 - p, kw - 1 - q, ci, co))
        return (name, tuple(index))

    def inserted_mask(self, name: str) -> np.ndarray:
        """(rows, cols) bool for ``"x_padded"``, ``"dy_dilated"`` or ``"dy_padded"``: True where
        :meth:`origin` is None, the zeros inserted by padding or dilation (the same in every channel)."""
        rows, cols = self.arrays[name].shape[:2]
        r, c = np.ogrid[:rows, :cols]
        if name == "x_padded":
            (pt, _), (pl, _) = self.padding
            h, w = self.x.shape[:2]
            return ~(((pt <= r) & (r < pt + h)) & ((pl <= c) & (c < pl + w)))
        if name not in ("dy_dilated", "dy_padded"):
            raise ValueError(f"{name!r} has no inserted zeros; expected x_padded, dy_dilated or dy_padded")
        if name == "dy_padded":
            kh, kw = self.w.shape[:2]
            r, c = r - (kh - 1), c - (kw - 1)
        (sh, sw), (ho, wo) = self.stride, self.dy.shape[:2]
        on_row = (r >= 0) & (r % sh == 0) & (r // sh < ho)   # see _origin_dy
        on_col = (c >= 0) & (c % sw == 0) & (c // sw < wo)
        return ~(on_row & on_col)

    def partial_sum(self, target: str, index: tuple, through: int) -> float:
        """A cell of a sum over channels, summed over channels ``0..through`` only: ``"y"`` (i, j, co)
        over input channels, bias included; ``"dx_padded"`` (r, c, ci) over output channels. With
        ``through`` the last channel it is the cell's complete value, ``arrays[target][index]``."""
        if target == "y":
            i, j, co = index
            return float(self._y_running[i, j, self._check_channel("ci", through), co])
        if target == "dx_padded":
            r, c, ci = index
            return float(self._dx_running[r, c, ci, self._check_channel("co", through)])
        raise ValueError(f"{target!r} is not a sum over channels; expected 'y' or 'dx_padded'")

    def state_at(self, position: int, target: str) -> np.ndarray:
        """``arrays[target]`` as it stands once frames ``0..position`` (trace order) have run.

        Cells no frame has written yet are NaN; cells no frame ever writes (the zeros inserted into
        ``dy_dilated`` / ``dy_padded``) are 0 from the start, as the array is allocated with zeros.
        A ``y`` or ``dx_padded`` cell summed over several frames (one per channel) holds its running
        sum. target: ``"y"``, ``"dy_dilated"``, ``"dy_padded"``, ``"w_rot"``, ``"dx_padded"``, ``"dx"``,
        ``"dw"`` or ``"db"``; returns a new float64 array of that target's shape.
        """
        stage = _STAGE_OF_TARGET.get(target)
        if stage is None:
            raise ValueError(f"{target!r} is not a frame target; expected one of {tuple(_STAGE_OF_TARGET)}")
        k = STAGES.index(stage)
        # Local index (inside the stage) of the last frame run; -1 before the stage, last after it.
        done = min(position - self._starts[k], self._counts[stage] - 1)
        order = self._write_order(stage)
        if stage in ("forward", "input_grad"):
            # order and running: (rows, cols, C_in, C_out); the channel summed over is axis 2 (forward,
            # over C_in) or 3 (input_grad, over C_out), written in increasing channel order.
            axis = 2 if stage == "forward" else 3
            running = self._y_running if stage == "forward" else self._dx_running
            count = (order <= done).sum(axis=axis, keepdims=True)
            value = np.take_along_axis(running, np.maximum(count - 1, 0), axis=axis)
            return np.squeeze(np.where(count > 0, value, np.nan), axis=axis)
        final = self.arrays[target]
        return np.where((order < 0) | (order <= done), final, np.nan)

    def _write_order(self, stage: str) -> np.ndarray:
        """Local frame index that writes each cell of the stage's target (-1: never written).

        Shapes: the target's, except ``forward`` (H_out, W_out, C_in, C_out) and ``input_grad``
        (Hp, Wp, C_in, C_out), where a cell is written once per channel of the summed axis.
        """
        kh, kw, n_in, n_out = self.w.shape
        h_out, w_out = self.dy.shape[:2]
        hp, wp = self.x_padded.shape[:2]
        sh, sw = self.stride
        if stage == "forward":
            return np.arange(self._counts[stage]).reshape(n_out, n_in, h_out, w_out).transpose(2, 3, 1, 0)
        if stage == "input_grad":
            return np.arange(self._counts[stage]).reshape(n_in, n_out, hp, wp).transpose(2, 3, 0, 1)
        if stage in ("rotate", "weight_grad"):
            return np.arange(self._counts[stage]).reshape(n_out, n_in, kh, kw).transpose(2, 3, 1, 0)
        if stage == "crop":
            h, w = self.x.shape[:2]
            return np.arange(self._counts[stage]).reshape(n_in, h, w).transpose(1, 2, 0)
        if stage == "bias_grad":
            return np.arange(n_out)
        # dilate / pad: δ cell (i, j, co) lands at (i*sh, j*sw) of the dilated δ, shifted by k-1 when padded.
        order = np.full(self.arrays[_TARGET_OF_STAGE[stage]].shape, -1)
        shift = (kh - 1, kw - 1) if stage == "pad" else (0, 0)
        rows = slice(shift[0], shift[0] + (h_out - 1) * sh + 1, sh)
        cols = slice(shift[1], shift[1] + (w_out - 1) * sw + 1, sw)
        order[rows, cols] = np.arange(self._counts[stage]).reshape(n_out, h_out, w_out).transpose(1, 2, 0)
        return order

    # ------------------------------------------------------------------------- frame building
    def _build(self, position: int) -> Frame:
        """Decode a frame position into its stage and loop indices and build that frame."""
        k = bisect.bisect_right(self._starts, position) - 1
        stage = STAGES[k]
        return getattr(self, "_frame_" + stage)(position, position - self._starts[k])

    def _origin_x(self, r: int, c: int, ci: int):
        """Origin in ``x`` of padded-input cell (r, c), or None inside the padding."""
        (pt, _), (pl, _) = self.padding
        h, w = self.x.shape[:2]
        if pt <= r < pt + h and pl <= c < pl + w:
            return ("x", (r - pt, c - pl, ci))
        return None

    def _origin_dy(self, u: int, v: int, co: int):
        """Origin in ``dy`` of dilated-δ cell (u, v), or None for a zero inserted by dilation."""
        sh, sw = self.stride
        if u < 0 or v < 0 or u % sh or v % sw:
            return None
        i, j = u // sh, v // sw
        if i < self.dy.shape[0] and j < self.dy.shape[1]:
            return ("dy", (i, j, co))
        return None

    def _frame_forward(self, position: int, local: int) -> Frame:
        kh, kw, n_in, _ = self.w.shape
        h_out, w_out = self.dy.shape[:2]
        sh, sw = self.stride
        co, rest = divmod(local, n_in * h_out * w_out)
        ci, cell = divmod(rest, h_out * w_out)
        i, j = divmod(cell, w_out)
        r0, c0 = i * sh, j * sw
        terms = tuple(
            Term(
                float(self.x_padded[r0 + p, c0 + q, ci]), ("x_padded", (r0 + p, c0 + q, ci)),
                float(self.w[p, q, ci, co]), ("w", (p, q, ci, co)),
                self._origin_x(r0 + p, c0 + q, ci), ("w", (p, q, ci, co)),
            )
            for p in range(kh)
            for q in range(kw)
        )  # fmt: skip
        value = float(self._y_running[i, j, ci, co])
        if ci > 0:
            carry = float(self._y_running[i, j, ci - 1, co])
        else:
            carry = 0.0 if self.b is None else float(self.b[co])
        reads = (
            Window("x_padded", range(r0, r0 + kh), range(c0, c0 + kw), (ci,)),
            Window("w", range(kh), range(kw), (ci, co)),
        )
        return Frame(position, "forward", "y", (i, j, co), terms, value, carry,
                     self.b is not None and ci == 0, (ci, n_in), reads)  # fmt: skip

    def _copy_frame(self, position, stage, target, index, source) -> Frame:
        """A frame that copies one number from ``source = (name, index)`` to ``target[index]``."""
        name, src = source
        value = float(self.arrays[name][src])
        reads = (Window(name, range(src[0], src[0] + 1), range(src[1], src[1] + 1), tuple(src[2:])),)
        return Frame(position, stage, target, index, (), value, 0.0, False, (0, 1), reads)

    def _frame_dilate(self, position: int, local: int) -> Frame:
        h_out, w_out = self.dy.shape[:2]
        sh, sw = self.stride
        co, cell = divmod(local, h_out * w_out)
        i, j = divmod(cell, w_out)
        return self._copy_frame(position, "dilate", "dy_dilated", (i * sh, j * sw, co), ("dy", (i, j, co)))

    def _frame_pad(self, position: int, local: int) -> Frame:
        kh, kw = self.w.shape[:2]
        h_out, w_out = self.dy.shape[:2]
        sh, sw = self.stride
        co, cell = divmod(local, h_out * w_out)
        i, j = divmod(cell, w_out)
        u, v = i * sh, j * sw
        return self._copy_frame(position, "pad", "dy_padded", (u + kh - 1, v + kw - 1, co),
                                ("dy_dilated", (u, v, co)))  # fmt: skip

    def _frame_rotate(self, position: int, local: int) -> Frame:
        kh, kw, n_in, _ = self.w.shape
        co, rest = divmod(local, n_in * kh * kw)
        ci, cell = divmod(rest, kh * kw)
        p, q = divmod(cell, kw)
        return self._copy_frame(position, "rotate", "w_rot", (p, q, ci, co),
                                ("w", (kh - 1 - p, kw - 1 - q, ci, co)))  # fmt: skip

    def _frame_input_grad(self, position: int, local: int) -> Frame:
        kh, kw, _, n_out = self.w.shape
        hp, wp = self.x_padded.shape[:2]
        ci, rest = divmod(local, n_out * hp * wp)
        co, cell = divmod(rest, hp * wp)
        r, c = divmod(cell, wp)
        dyp = self.dy_padded_for_input_grad
        terms = tuple(
            Term(
                float(dyp[r + p, c + q, co]), ("dy_padded", (r + p, c + q, co)),
                float(self.w_rot180[p, q, ci, co]), ("w_rot", (p, q, ci, co)),
                self._origin_dy(r + p - (kh - 1), c + q - (kw - 1), co),
                ("w", (kh - 1 - p, kw - 1 - q, ci, co)),
            )
            for p in range(kh)
            for q in range(kw)
        )  # fmt: skip
        value = float(self._dx_running[r, c, ci, co])
        carry = float(self._dx_running[r, c, ci, co - 1]) if co > 0 else 0.0
        reads = (
            Window("dy_padded", range(r, r + kh), range(c, c + kw), (co,)),
            Window("w_rot", range(kh), range(kw), (ci, co)),
        )
        return Frame(position, "input_grad", "dx_padded", (r, c, ci), terms, value, carry, False,
                     (co, n_out), reads)  # fmt: skip

    def _frame_crop(self, position: int, local: int) -> Frame:
        h, w = self.x.shape[:2]
        (pt, _), (pl, _) = self.padding
        ci, cell = divmod(local, h * w)
        r, c = divmod(cell, w)
        return self._copy_frame(position, "crop", "dx", (r, c, ci), ("dx_padded", (r + pt, c + pl, ci)))

    def _frame_weight_grad(self, position: int, local: int) -> Frame:
        kh, kw, n_in, _ = self.w.shape
        hd, wd = self.dy_dilated.shape[:2]
        co, rest = divmod(local, n_in * kh * kw)
        ci, cell = divmod(rest, kh * kw)
        p, q = divmod(cell, kw)
        terms = tuple(
            Term(
                float(self.x_padded[p + u, q + v, ci]), ("x_padded", (p + u, q + v, ci)),
                float(self.dy_dilated[u, v, co]), ("dy_dilated", (u, v, co)),
                self._origin_x(p + u, q + v, ci), self._origin_dy(u, v, co),
            )
            for u in range(hd)
            for v in range(wd)
        )  # fmt: skip
        reads = (
            Window("x_padded", range(p, p + hd), range(q, q + wd), (ci,)),
            Window("dy_dilated", range(hd), range(wd), (co,)),
        )
        return Frame(position, "weight_grad", "dw", (p, q, ci, co), terms, float(self.dw[p, q, ci, co]),
                     0.0, False, (0, 1), reads)  # fmt: skip

    def _frame_bias_grad(self, position: int, local: int) -> Frame:
        co = local
        h_out, w_out = self.dy.shape[:2]
        terms = tuple(
            Term(float(self.dy[i, j, co]), ("dy", (i, j, co)), 1.0, None, ("dy", (i, j, co)), None)
            for i in range(h_out)
            for j in range(w_out)
        )
        reads = (Window("dy", range(h_out), range(w_out), (co,)),)
        return Frame(position, "bias_grad", "db", (co,), terms, float(self.db[co]), 0.0, False, (0, 1), reads)

    # ------------------------------------------------------------------------------ formulas
    def _spatial(self, r: int, c: int) -> str:
        return f"{r + 1}{c + 1}" if self._compact else f"({r + 1},{c + 1})"

    def _channels(self, name: str, channels: tuple) -> str:
        """Channel suffix ``[..]`` for a cell of ``name`` (channels from 0), or '' for a one-channel layer."""
        _, _, n_in, n_out = self.w.shape
        if name in ("w", "dw", "w_rot"):
            multi = n_in > 1 or n_out > 1
        elif name in ("x", "x_padded", "dx", "dx_padded"):
            multi = n_in > 1
        else:
            multi = n_out > 1
        return "[" + ",".join(str(ch) for ch in channels) + "]" if multi else ""

    def symbol(self, source: Source) -> str:
        """Formula symbol of a cell: ``("x", (1, 1, 0))`` -> ``a22``; ``("dy_padded", (1, 1, 0))``
        -> ``dy_padded[2,2]``; targets ``y``/``dx``/``dw``/``db`` -> ``z``/``∇a``/``∇w``/``∇b``."""
        name, index = source
        if name in ("b", "db"):
            return _SYMBOL[name] + self._channels(name, index)
        suffix = self._channels(name, tuple(index[2:]))
        if name in _SYMBOL:
            return _SYMBOL[name] + self._spatial(index[0], index[1]) + suffix
        return f"{name}[{index[0] + 1},{index[1] + 1}]{suffix}"

    def _target_symbol(self, frame: Frame) -> str:
        if frame.target == "dx_padded":
            # Inside the original input it is that input's ∇a; in the padding it is cropped away.
            r, c, ci = frame.index
            origin = self._origin_x(r, c, ci)
            if origin is not None:
                return self.symbol(("dx", origin[1]))
        return self.symbol(frame.writes)

    def formula(self, frame: Frame, numbers: bool = False, keep: list[int] | None = None) -> str:
        """The frame's sum as text, e.g. ``∇a22 = δ11·w22 + δ12·w21 + δ21·w12 + δ22·w11``.

        Products with a zero inserted by padding or dilation are left out (they add nothing).
        ``numbers=True`` writes the values instead of the symbols and ends with ``= value``:
        ``z11 = 1·1 + 1·0 + … + 1·1 = 4``. Copy stages read e.g. ``w_rot[1,1] = w22``.
        ``keep``: the indices (among the products written) of the only ones to write, in order, with
        "…" where products are skipped; None writes them all.
        """
        lhs = self._target_symbol(frame)
        if not frame.terms:  # a copy
            (window,) = frame.reads
            src = (window.array, (window.rows[0], window.cols[0], *window.channels))
            origin = self._copy_origin(src)
            rhs = f"{frame.value:.6g}" if numbers else self.symbol(origin)
            return f"{lhs} = {rhs}"
        parts = []
        if frame.part[0] > 0:
            parts.append(_number(frame.carry))
        products = []
        for term in frame.terms:
            if term.inserted_zero:
                continue
            if numbers:
                products.append(_number(term.a_value) if term.b_source is None
                                else f"{_number(term.a_value)}·{_number(term.b_value)}")  # fmt: skip
            else:
                a = self.symbol(term.a_origin)
                products.append(a if term.b_source is None else f"{a}·{self.symbol(term.b_origin)}")
        parts += elide(products, keep)
        if frame.has_bias:
            parts.append(_number(frame.carry) if numbers else self.symbol(("b", (frame.index[2],))))
        text = f"{lhs} = " + (" + ".join(parts) if parts else "0")
        if numbers and (len(parts) > 1 or "·" in text):
            text += f" = {frame.value:.6g}"
        return text

    def _copy_origin(self, source: Source) -> Source:
        """Follow a copied cell back to the array the learner knows (x, dy, w) or to dx_padded."""
        name, index = source
        if name == "dy_dilated":
            return self._origin_dy(index[0], index[1], index[2])
        return source


def _number(v: float) -> str:
    """Compact number for formulas; negatives in parentheses so ``2·(-1)`` stays readable."""
    text = f"{v:.6g}"
    return f"({text})" if v < 0 else text


def trace_conv2d(x, w, b, dy, stride=1, padding="VALID") -> ConvTrace:
    """Trace one sample's convolution forward and backward (see the module docstring).

    x: (H, W, C_in); w: (kh, kw, C_in, C_out); b: (C_out,) or None; dy: (H_out, W_out, C_out), the
    loss gradient at the conv output (before any activation's backward). ``stride`` and
    ``padding`` as in ``engine.ops.conv2d``. Returns a :class:`ConvTrace`; the work is vectorised and
    frames are built on access.
    """
    # Copies: the trace must not change when the caller (e.g. a training model) updates its arrays.
    x = np.array(x, dtype=np.float64)
    w = np.array(w, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be (H, W, C_in) for one sample, got shape {x.shape}")
    if w.ndim != 4 or w.shape[2] != x.shape[2]:
        raise ValueError(f"w must be (kh, kw, {x.shape[2]}, C_out) for x {x.shape}, got {w.shape}")
    kh, kw, _, c_out = w.shape
    if b is not None:
        b = np.array(b, dtype=np.float64)
        if b.shape != (c_out,):
            raise ValueError(f"b must be ({c_out},), got {b.shape}")
    strides = normalize_stride(stride)
    pads = resolve_padding(x.shape[:2], (kh, kw), strides, padding)
    h_out, w_out = conv_output_hw(x.shape[:2], (kh, kw), strides, pads)  # raises if k does not fit
    dy = np.array(dy, dtype=np.float64)
    if dy.shape != (h_out, w_out, c_out):
        raise ValueError(f"dy must be {(h_out, w_out, c_out)} (the conv output), got {dy.shape}")
    return ConvTrace(x, w, b, dy, strides, tuple(tuple(int(v) for v in p) for p in pads))


class LiveTrace(NamedTuple):
    """:func:`live_conv_trace`'s result: the layer's ``trace``, the sample's ``loss``, the ``label``
    the loss was taken against, and the model's class probabilities ``proba: (num_classes,)``."""

    trace: ConvTrace
    loss: float
    label: int
    proba: np.ndarray


def live_conv_trace(model, layer_name: str, x, label: int | None = None) -> LiveTrace:
    """Trace conv layer ``layer_name`` of ``model`` on one sample, with the real δ of its loss.

    x: ``model.input_shape``, e.g. (28, 28, 1); label: class index, or None to take the loss against
    the predicted class (a drawn digit has no label). The trace's ``x`` is the layer's real input,
    ``w``/``b`` its current weights, ``dy`` the loss gradient at the layer's output *before* its
    activation (∂L/∂z, what ``Conv2D.backward`` receives), all channels.

    The model is not touched (its caches, gradients and weights stay as they are): a float64 copy
    with the same weights and variant runs the forward pass in inference mode (no dropout, so δ is
    a deterministic function of the weights and the sample) and back-propagates down to the layer.
    """
    clone = model.copy(dtype=np.float64)  # with its variant: "transposed_pool" changes the δ reaching a conv
    layer = clone.layer(layer_name)
    if not isinstance(layer, Conv2D):
        raise ValueError(f"{layer_name!r} is a {layer.kind}, not a Conv2D layer")
    if np.shape(x) != clone.input_shape:
        raise ValueError(f"x must be {clone.input_shape} for model {clone.name!r}, got {np.shape(x)}")
    sample = clone.delta_at(x, layer_name, label)  # delta: (1, H_out, W_out, C_out)
    trace = trace_conv2d(sample.layer_input[0], layer.params["w"], layer.params["b"], sample.delta[0],
                         layer.stride, layer.padding)
    trace.dy_origin = "variant" if clone.variant == "transposed_pool" else "loss"
    return LiveTrace(trace, sample.loss, sample.label, sample.proba)
