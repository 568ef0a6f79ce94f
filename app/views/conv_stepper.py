"""Conv stepper (issue 6): one convolution, forward and backward, replayed number by number.

The frames come from ``engine.trace`` (seed 001's derivation: z = a ⊛ w + b; δ dilated for the
stride, padded with k−1 zeros, convolved with the kernel rotated by 180° to give ∇a; ∇w = padded a ⊛
dilated δ; ∇b = Σ δ). This module turns one frame into a *scene* — the grids of that stage, what is read and
written, the formula — and paints it on one canvas widget, the same way on screen and into a QImage
(:meth:`ConvStepper.render_frame`, for exporting the animation).

Three sources: seed 001's worked examples, a custom convolution (sizes, stride, padding, channels,
random or typed values) and the live model (a conv layer of the display model on one sample, with
the real δ of that sample's loss, computed on demand by ``engine.trace.live_conv_trace``).
"""
from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.accessibility import FocusFramed, describe_for_screen_readers
from app.views.samples import SamplePicker, held_out_images
from app.views.cell_format import CellFormat
from app.views.stepper_grid import (BACKGROUND, MUTED, SLOT_MIN_W, TEXT_DARK, WRITE_COLOR, GridSpec, PlacedGrid,
                                    cell_rgb, layout_row, paint_grid, text_colour)
from app.views.tones import ToneLabel, span
from app.views.widgets import DecimalBox, WrapRow, controls_row, model_combo, text_scale
from engine.ops import conv_output_hw
from engine.trace import STAGES, WORKED_EXAMPLES, ConvTrace, Frame, live_conv_trace, trace_conv2d
from engine.text import plural

STAGE_TITLES = {
    "forward": "Forward · z = a ⊛ w + b",
    "dilate": "Backward 1 · dilate δ for the stride",
    "pad": "Backward 2 · pad δ with k−1 zeros",
    "rotate": "Backward 3 · rotate the kernel by 180°",
    "input_grad": "Backward 4 · ∇a = padded δ ⊛ rot180(w)",
    "crop": "Backward 5 · crop the forward padding",
    "weight_grad": "Backward 6 · ∇w = padded a ⊛ dilated δ",
    "bias_grad": "Backward 7 · ∇b = Σ δ",
}
STAGE_SHORT = {"forward": "Forward z", "dilate": "Dilate δ", "pad": "Pad δ", "rotate": "Rotate w",
               "input_grad": "∇a", "crop": "Crop ∇a", "weight_grad": "∇w", "bias_grad": "∇b"}

WORKED_TITLES = {
    "seed001_5x5_kernel3": "5×5 input, 3×3 kernel (first output 4)",
    "seed001_3x3_kernel2_stride1": "3×3 input, 2×2 kernel, stride 1 (∇a22)",
    "seed001_4x4_kernel2_stride2": "4×4 input, 2×2 kernel, stride 2",
    "seed001_two_channel": "2×2×2 input and kernel (= 204)",
}

# Where each grid's channel index comes from: input channel, output channel, both, or none (∇b row).
_CHANNEL_AXES = {"x_padded": ("ci",), "dx_padded": ("ci",), "dx": ("ci",), "w": ("ci", "co"),
                 "w_rot": ("ci", "co"), "w_lr": ("ci", "co"), "dw": ("ci", "co"), "y": ("co",), "dy": ("co",),
                 "dy_dilated": ("co",), "dy_padded": ("co",), "db": ()}
# Grids of each stage, with the operator (symbol, note key) between neighbours.
_SCENES = {
    "forward": ["x_padded", ("⊛", "stride"), "w", ("=", "bias"), "y"],
    "dilate": ["dy", ("→", "dilate"), "dy_dilated"],
    "pad": ["dy_dilated", ("→", "pad"), "dy_padded"],
    # rot180 in seed 001's two moves: flip left↔right, then top↔bottom ("w_lr" is the halfway kernel).
    "rotate": ["w", ("↔", "flip"), "w_lr", ("↕", "flip"), "w_rot"],
    "input_grad": ["dy_padded", ("⊛", "stride1"), "w_rot", ("=", ""), "dx_padded"],
    "crop": ["dx_padded", ("→", "crop"), "dx"],
    "weight_grad": ["x_padded", ("⊛", "stride1"), "dy_dilated", ("=", ""), "dw"],
    "bias_grad": ["dy", ("Σ", "sum"), "db"],
}
# The channels a stage's cells are summed over, across frames: forward z over input channels, ∇a over output channels.
_SUMMED = {"forward": "input", "input_grad": "output"}
_CHANNEL_SUFFIX = re.compile(r"\[[\d,]+\]$")
_FLOAT_RE = re.compile(r"\d+\.\d+(?:e[-+]?\d+)?")
_NEGATIVE_ZERO_RE = re.compile(r"(?<![\w.])-0(?![\w.])")


def _tidy_numbers(text: str) -> str:
    """A numeric formula for reading: decimals to 4 significant digits, "-0" (a zero times a
    negative number) as "0"."""
    return _NEGATIVE_ZERO_RE.sub("0", _FLOAT_RE.sub(lambda m: f"{float(m[0]):.4g}", text))


def _channels_text(kind: str, last: int, first: int = 0) -> str:
    """Channels ``first..last`` of one kind ("input" or "output") in words: "input channel 0",
    "output channels 0…3" (channels count from 0, as in the app's other views)."""
    return f"{kind} channel {first}" if first == last else f"{kind} channels {first}…{last}"


def _g(v: float) -> str:
    """A number for the products line: 4 significant digits, negatives in parentheses."""
    text = f"{v + 0.0:.4g}"  # + 0.0 turns -0.0 (e.g. 0·(-2)) into 0
    return f"({text})" if v < 0 else text


def explanation(trace: ConvTrace, stage: str) -> str:
    """One or two sentences on what this stage does and why, with this trace's numbers."""
    kh, kw, n_in, n_out = trace.w.shape
    sh, sw = trace.stride
    (pt, pb), (pl, pr) = trace.padding
    if stage == "forward":
        text = (f"The {kh}×{kw} kernel slides over the input with stride {sh}; each output z is the sum "
                f"of the {kh * kw} products in its window")
        if n_in > 1:
            text += f"; with {n_in} input channels the {n_in} window sums are added"
        text += (", and the bias once" if trace.b is not None else "") + "."
        return text + (" Deep learning calls this a convolution, but the kernel is not flipped: it is a "
                       "cross-correlation, written ⊛ here.")
    if stage == "dilate":
        if sh == 1 and sw == 1:
            text = "Stride 1: the kernel stopped at every position, so δ is copied with no zeros in between."
        else:
            text = (f"δ is dilated: s−1 = {sh - 1} zero(s) between values because stride {sh} skipped those "
                    "positions — the kernel never stopped there, so no δ belongs to them.")
        if any(trace.leftover):
            text += (f" {plural(trace.leftover[0], 'zero row')} and {plural(trace.leftover[1], 'zero column')} "
                     "are added at the bottom and right for input cells that no window reached.")
        return text
    if stage == "pad":
        return (f"δ is padded with k−1 = {kh - 1} zero(s) on every side, so the rotated kernel can slide past "
                "the edges and every input cell meets each δ it contributed to.")
    if stage == "rotate":
        return ("The kernel is rotated by 180°: flipped left↔right, then top↔bottom, so rot180(w)[p,q] = "
                "w[k+1−p, k+1−q] (rows and columns counted from 1, as in the formulas). Sliding it over δ "
                "pairs each δ with the weight that linked it to an input.")
    if stage == "input_grad":
        text = ("∇a = padded δ ⊛ rot180(w): the same sliding-window sum (⊛, no flip) as the forward pass, "
                "at stride 1 whatever the forward stride, one ∇a per padded input cell. Sliding the rotated "
                "kernel without a flip is a true convolution of δ with w.")
        if n_out > 1:
            text += f" Each input cell fed {n_out} output channels, so their contributions add up."
        return text
    if stage == "crop":
        if pt == pb == pl == pr == 0:
            return "No forward padding: ∇a of the input is the result as it is."
        return ("The forward padding is cut away: the padding zeros were not inputs, so their gradients are "
                f"dropped (top {pt}, bottom {pb}, left {pl}, right {pr}).")
    if stage == "weight_grad":
        return ("∇w[p,q] = Σ a·δ: the dilated δ slides over the padded input with stride 1; each weight collects "
                "the products of every input value it multiplied in the forward pass.")
    return "∇b = Σ δ: the bias was added to every output z of its channel, so its gradient is the sum of their δ."


def padding_caption(trace: ConvTrace) -> str:
    (pt, pb), (pl, pr) = trace.padding
    if pt == pb == pl == pr == 0:
        return "no padding"
    text = f"zero padding: top {pt}, bottom {pb}, left {pl}, right {pr}"
    if pt != pb or pl != pr:
        text += " — asymmetric: SAME puts the odd zero at the bottom/right"
    return text


_SYMBOL_RE = re.compile(r"(?<![A-Za-z_])(∇?[azwδ])(\d\d|\(\d+,\d+\))(\[[\d,]+\])?")
_BIAS_RE = re.compile(r"(?<![A-Za-z_])(∇?b)(\[\d+\])?(?![A-Za-z_\d])")
_INTERMEDIATE_HTML = {"dy_dilated": "δ<sub>dilated</sub>", "dy_padded": "δ<sub>padded</sub>",
                      "w_rot": "rot180(w)", "dx_padded": "∇a<sub>padded</sub>"}


def formula_html(text: str) -> str:
    """A symbolic formula from ``ConvTrace.formula`` as HTML with subscripts: a22 → a<sub>22</sub>."""
    out = _SYMBOL_RE.sub(lambda m: f"{m[1]}<sub>{m[2].strip('()')}</sub>" + (f"<sup>{m[3]}</sup>" if m[3] else ""),
                         html.escape(text))
    out = _BIAS_RE.sub(lambda m: m[1] + (f"<sup>{m[2]}</sup>" if m[2] else ""), out)
    for raw, pretty in _INTERMEDIATE_HTML.items():
        out = out.replace(raw, pretty)
    return out


def shorten(text: str, first: int = 8, last: int = 2) -> str:
    """Keep a long sum readable: ``lhs = t1 + … + tn [= v]`` with at most first + last terms shown."""
    lhs, _, rhs = text.partition(" = ")
    tail = ""
    if " = " in rhs:
        rhs, _, value = rhs.rpartition(" = ")
        tail = f" = {value}"
    terms = rhs.split(" + ")
    if len(terms) <= first + last + 1:
        return text
    hidden = len(terms) - first - last
    return f"{lhs} = " + " + ".join(terms[:first] + [f"… {hidden} more …"] + terms[-last:]) + tail


@dataclass
class Scene:
    """Everything drawn for one frame. ``operators[i]`` sits between ``grids[i]`` and ``grids[i+1]``
    as ``(symbol, note)``; ``token``: for a copy, the number travelling through the first operator as
    ``(symbol, text, value, scale)``. ``total``: when the step's sum covers only some of the channels
    it is summed over, the complete value from that part and the other channels' ("complete z(1,1)[0] =
    -0.0178 (input channel 0 + b) + 0.0230 (input channels 1…15) = 0.00522"); '' otherwise."""

    stage: str
    title: str
    explanation: str
    progress: str
    grids: list
    operators: list
    token: tuple | None
    formula: str
    numbers: str
    products: str
    total: str = ""


class SymbolRows(Sequence):
    """A grid's (rows, cols) cell names, each row made by ``make_row(r) -> list[str]`` when first read."""

    def __init__(self, count: int, make_row) -> None:
        self._rows: list[list[str] | None] = [None] * count
        self._make_row = make_row

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, r: int) -> list[str]:
        if self._rows[r] is None:
            self._rows[r] = self._make_row(r)
        return self._rows[r]


class SceneBuilder:
    """Builds :class:`Scene` s for the frames of one trace; caches what does not change per frame
    (colour scales, inserted-zero masks, cell symbols)."""

    def __init__(self, trace: ConvTrace) -> None:
        self.trace = trace
        t = trace
        # The final array each grid's colours and number format come from: a number looks the same
        # in every grid it appears in (δ, dilated δ, padded δ), and does not change colour as cells fill in.
        self._family = {"x_padded": t.x, "w": t.w, "w_lr": t.w, "w_rot": t.w, "y": t.y, "dy": t.dy,
                        "dy_dilated": t.dy, "dy_padded": t.dy, "dx_padded": t.dx_full, "dx": t.dx_full,
                        "dw": t.dw, "db": t.db}
        self._styles: dict[tuple, tuple[float, CellFormat]] = {}
        self._inserted: dict[str, np.ndarray] = {}
        self._symbols: dict[tuple, SymbolRows] = {}

    # ------------------------------------------------------------------ per-grid data
    def style(self, name: str, channels: tuple) -> tuple[float, CellFormat]:
        """(colour scale, number format) of one grid, from its family's values in that channel: a
        layer's channels differ a lot in size, and tiny gradients would otherwise all look white."""
        key = (name, channels)
        if key not in self._styles:
            a = self._family[name]
            a = a if name == "db" else a[(slice(None), slice(None), *channels)]
            m = float(np.abs(a).max()) if a.size else 0.0
            self._styles[key] = (m if m > 0 else 1.0, CellFormat.for_values(a))
        return self._styles[key]

    def _array(self, name: str) -> np.ndarray:
        """The trace's array ``name`` ((H, W, C) maps, (kh, kw, c_in, c_out) kernels); "w_lr" is the
        kernel flipped left-right, halfway through the rotation by 180°."""
        return self.trace.w[:, ::-1] if name == "w_lr" else self.trace.arrays[name]

    def _plane_shape(self, name: str) -> tuple[int, int]:
        a = self._array(name)
        return (1, a.shape[0]) if name == "db" else a.shape[:2]

    def _plane(self, a: np.ndarray, name: str, channels: tuple) -> np.ndarray:
        """2-D (rows, cols) slice of array a (shaped like ``arrays[name]``) at channels."""
        if name == "db":
            return np.asarray(a, dtype=np.float64)[None, :]
        return a[(slice(None), slice(None), *channels)]

    def inserted(self, name: str) -> np.ndarray:
        """(rows, cols) bool: zeros inserted by padding/dilation (the same for every channel)."""
        if name not in self._inserted:
            if name in ("x_padded", "dy_dilated", "dy_padded"):
                self._inserted[name] = self.trace.inserted_mask(name)
            else:
                self._inserted[name] = np.zeros(self._plane_shape(name), bool)
        return self._inserted[name]

    def symbols(self, name: str, channels: tuple) -> SymbolRows:
        """Cell names (``a23``, ``δ11``, ``∇w12``) without channel suffix, '' for inserted zeros: rows
        named when first read (a live layer's 28 x 28 grids show colours, no names: naming all their cells
        took 6.6 ms per trace on the GUI thread)."""
        key = (name, channels)
        if key not in self._symbols:
            rows, cols = self._plane_shape(name)
            self._symbols[key] = SymbolRows(rows, lambda r: [self._symbol(name, channels, r, c, cols)
                                                             for c in range(cols)])
        return self._symbols[key]

    def _symbol(self, name: str, channels: tuple, r: int, c: int, cols: int) -> str:
        t = self.trace
        if name == "db":
            return "∇b" + (f"[{c}]" if t.w.shape[3] > 1 else "")  # its column is its channel
        if name == "dx_padded":
            (pt, _), (pl, _) = t.padding
            h, w = t.x.shape[:2]
            inside = pt <= r < pt + h and pl <= c < pl + w
            origin = ("dx", (r - pt, c - pl, *channels)) if inside else None
        elif name == "w_lr":
            origin = ("w", (r, cols - 1 - c, *channels))
        else:
            origin = t.origin((name, (r, c, *channels)))
        return "" if origin is None else _CHANNEL_SUFFIX.sub("", t.symbol(origin))

    # ------------------------------------------------------------------ scene
    def channels_of(self, frame: Frame, previous: tuple[int, int] = (0, 0)) -> tuple[int, int]:
        """(c_in, c_out) the frame works on; a stage without one keeps ``previous``'s."""
        ci, co = previous
        for window in frame.reads:
            axes = _CHANNEL_AXES.get(window.array, ())
            for axis, value in zip(axes, window.channels):
                ci, co = (value, co) if axis == "ci" else (ci, value)
        axes = _CHANNEL_AXES[frame.target]
        values = frame.index[2:] if frame.target != "db" else frame.index
        for axis, value in zip(axes, values):
            ci, co = (value, co) if axis == "ci" else (ci, value)
        return ci, co

    def scene(self, frame: Frame, channels: tuple[int, int], progress: str,
              played: tuple[int | None, int | None] = (None, None)) -> Scene:
        """The scene of ``frame`` on channels ``(c_in, c_out)``; ``played``: the channel filter of the
        playlist, ``(c_in, c_out)`` with None for all (the crop says what the ∇a stage left out)."""
        t = self.trace
        kh, kw, n_in, n_out = t.w.shape
        ci, co = channels
        stage = frame.stage
        layout = _SCENES[stage]
        names = [item for item in layout if isinstance(item, str)]
        reads = {window.array: window for window in frame.reads}
        write_name = frame.target
        partners = {}
        partner_grid = None
        for term in frame.terms:
            if term.b_source is not None:
                partner_grid = term.a_source[0]
                partners[tuple(term.a_source[1][:2])] = (term.b_value, term.b_origin is None)
        grids = []
        for name in names:
            ch = tuple(ci if axis == "ci" else co for axis in _CHANNEL_AXES[name])
            source = t.state_at(frame.position, name) if name == write_name else self._array(name)
            values = self._plane(source, name, ch)
            window = None
            if name in reads:
                rw = reads[name]
                window = (rw.rows.start, rw.rows.stop, rw.cols.start, rw.cols.stop)
            elif name == "w_lr":  # where the weight being copied sits halfway through the rotation
                p, q = frame.index[:2]
                window = (kh - 1 - p, kh - p, q, q + 1)
            written = None
            if name == write_name:
                written = (0, frame.index[0]) if name == "db" else tuple(frame.index[:2])
            title, subtitle, caption, tooltip = self._labels(name, stage, ci, co)
            inner, dim = self._inner(name, stage)
            faded, partial, complete = None, None, None
            if name == write_name and frame.part[1] > 1:
                # A sum over channels: cells this channel's pass has not reached yet hold the earlier
                # channels' sum; fade them so the pass is visible. Cells short of the last channel hold
                # partial sums, and say so: title, caption, tooltips.
                rows, cols = values.shape
                order = np.arange(rows * cols).reshape(rows, cols)
                faded = (order > frame.index[0] * cols + frame.index[1]) & np.isfinite(values)
                k, n = frame.part
                # the last channel each cell has summed: k where this pass has been, k - 1 where not yet
                partial = self._parts(stage, np.where(faded, k - 1, k), n)
                complete = self._plane(t.arrays[name], name, ch)
                if k < n - 1:
                    title, tooltip = "partial " + title, "partial " + tooltip
                caption = "; ".join(part for part in (self._sum_caption(stage, k, n, bool(faded.any())), caption)
                                    if part)
            elif stage == "crop" and name == "dx_padded" and self._crop_after_partial(played):
                title, tooltip = "complete " + title, "complete " + tooltip
                caption = (f"complete: {_channels_text('output', n_out - 1)} (the ∇a stage showed "
                           f"{_channels_text('output', played[1])} only); " + caption)
            scale, fmt = self.style(name, ch)
            mirror = {"w_lr": "vertical", "w_rot": "horizontal"}.get(name) if stage == "rotate" else None
            grids.append(GridSpec(
                key=name, title=title, subtitle=subtitle, values=values, scale=scale, fmt=fmt,
                inserted=self.inserted(name), symbols=self.symbols(name, ch), window=window, written=written,
                partners=partners if name == partner_grid else {}, inner=inner, dim_outside=dim,
                caption=caption, mirror=mirror, faded=faded, tooltip=tooltip, partial=partial, complete=complete))
        operators = [(item[0], self._operator_note(item[1])) for item in layout if isinstance(item, tuple)]
        token = None
        if stage in ("dilate", "pad", "crop"):
            (window,) = frame.reads
            source = (window.array, (window.rows.start, window.cols.start, *window.channels))
            scale, fmt = self.style(window.array, tuple(window.channels))
            symbol = self.symbols(window.array, tuple(window.channels))[source[1][0]][source[1][1]]
            token = (symbol, fmt.alone(frame.value), frame.value, scale)  # the grids may show no numbers
        formula, numbers = t.formula(frame), t.formula(frame, numbers=True)
        lhs = formula.partition(" = ")[0]  # the cell written: "z(1,1)[0]", "∇a22"
        total = ""
        k, n = frame.part
        if k < n - 1:  # a sum over channels, short of the last one: never written as if it were the cell
            formula = f"partial {lhs} ({self._partial_words(stage, k)})" + formula[len(lhs):]
            numbers = f"partial {lhs}" + numbers[len(lhs):]
            total = self._completion(stage, lhs, k, frame.value, float(t.arrays[frame.target][frame.index]))
        elif stage == "crop" and self._crop_after_partial(played):
            (window,) = frame.reads  # the ∇a cell the crop keeps: complete, where the ∇a stage showed a part
            last = played[1]
            part = t.partial_sum("dx_padded", (window.rows.start, window.cols.start, *window.channels), last)
            total = self._completion("input_grad", lhs, last, part, frame.value, ", as the ∇a stage showed")
        formula, numbers = shorten(formula), shorten(_tidy_numbers(numbers))
        if not frame.terms:  # a copy: one line, "δdilated[1,3] = δ12 = -1"
            formula, numbers = f"{formula} = {frame.value:.6g}", ""
        title = STAGE_TITLES[stage]
        if stage == "forward" and t.b is None:  # e.g. seed 001's examples: the formula has no b either
            title = title.replace(" + b", "") + "  (no bias here)"
        return Scene(stage, title, explanation(t, stage), progress, grids, operators, token,
                     formula, numbers, self._products(frame), total)

    # ------------------------------------------------------------------ sums over channels
    def _partial_words(self, stage: str, last: int) -> str:
        """What a partial sum of a forward (input channels) or ∇a (output channels) cell holds, summed
        over channels 0..last: "input channels 0…3 + b", "output channel 0"."""
        bias = " + b" if stage == "forward" and self.trace.b is not None else ""
        return _channels_text(_SUMMED[stage], last) + bias

    def _parts(self, stage: str, last: np.ndarray, n: int):
        """``partial(r, c)`` of a grid of sums (see ``GridSpec``): what cell (r, c) holds when its last
        channel summed, ``last: (rows, cols)``, is short of channel n - 1; None when it is complete."""
        def partial(r: int, c: int) -> str | None:
            return self._partial_words(stage, int(last[r, c])) if last[r, c] < n - 1 else None
        return partial

    def _completion(self, stage: str, symbol: str, last: int, part: float, complete: float, shown: str = "") -> str:
        """The complete value of a sum over channels from its part over channels 0..last (``shown``: where
        the learner saw that part) and the rest: "complete z(1,1)[0] = -0.0178 (input channel 0 + b)
        + 0.0230 (input channels 1…15) = 0.00522"."""
        n = self.trace.w.shape[2 if stage == "forward" else 3]
        rest = complete - part
        return (f"complete {symbol} = {part:.6g} ({self._partial_words(stage, last)}{shown}) + "
                f"{f'({rest:.6g})' if rest < 0 else f'{rest:.6g}'} ({_channels_text(_SUMMED[stage], n - 1, last + 1)})"
                f" = {complete:.6g}")

    def _sum_caption(self, stage: str, k: int, n: int, faded: bool) -> str:
        """Caption of a grid of sums over n channels at channel k's pass (faded: cells it has not reached)."""
        kind = _SUMMED[stage]
        if k < n - 1:
            text = f"partial: {self._partial_words(stage, k)}, {plural(n - 1 - k, f'more {kind} channel')} to add"
        else:
            text = f"complete: {self._partial_words(stage, n - 1)}"
        return text + (f"; faded: {self._partial_words(stage, k - 1)} only" if faded else "")

    def _crop_after_partial(self, played: tuple[int | None, int | None]) -> bool:
        """True when the ∇a stage played the sums over output channels only part of the way (one output
        channel chosen, not the last): the crop's ∇a are complete sums the learner has not seen."""
        n_out = self.trace.w.shape[3]
        return n_out > 1 and played[1] is not None and played[1] < n_out - 1

    def _products(self, frame: Frame) -> str:
        """The products' values and the running sum: ``1 + 0 + 1 + … = 4``; '' for a copy."""
        if not frame.terms:
            return ""
        parts = [_g(frame.carry)] if frame.part[0] > 0 else []
        parts += [_g(term.product) for term in frame.terms if not term.inserted_zero]
        if frame.has_bias:
            parts.append(_g(frame.carry))
        n = len(parts)
        note = ""
        if n > 11:
            parts = parts[:8] + [f"… {n - 10} more …"] + parts[-2:]
            nonzero = sum(term.product != 0 for term in frame.terms)
            note = f"   ({nonzero} of the {len(frame.terms)} products are not zero)"
        label = "products" if frame.part[0] == 0 else "sum so far + products"
        return f"{label}:  " + " + ".join(parts) + f"  =  {frame.value:.6g}" + note

    def _labels(self, name: str, stage: str, ci: int, co: int) -> tuple[str, str, str, str]:
        """Title, subtitle (shape and channels, short: a kernel's slot is narrow), caption and tooltip
        (title and subtitle in full words) of a grid."""
        t = self.trace
        kh, kw, n_in, n_out = t.w.shape
        h, w = t.x.shape[:2]
        rows, cols = self._plane_shape(name)
        size = f"{rows}×{cols}"
        cin = f"channel {ci}" if n_in > 1 else ""
        cout = f"channel {co}" if n_out > 1 else ""
        both = " → ".join(s for s in (f"in {ci}" if n_in > 1 else "", f"out {co}" if n_out > 1 else "") if s)
        padded = any(sum(p) for p in t.padding)
        sh, sw = t.stride
        crop = "dashed: the input cells, kept by the crop" if padded else ""
        table = {
            "x_padded": ("input a" + (" (zero-padded)" if padded else ""),
                         f"{h}×{w}" + (f" padded to {size}" if padded else ""), cin,
                         padding_caption(t) + ("; dashed: the input" if padded else "")),
            "w": ("kernel w", size, both, ""),
            "w_lr": ("flipped left↔right", size, both, "mirrored in the dashed vertical line"),
            "w_rot": ("rot180(w)", size, both, "then flipped top↔bottom (dashed horizontal line)"
                      if stage == "rotate" else "w rotated by 180°"),
            "y": ("output z", size, cout, "before any activation"),
            "dy": ("δ = ∂L/∂z", size, cout, ""),
            "dy_dilated": ("δ dilated", size, cout, f"stride {sh}: {sh - 1} zero(s) between values"
                           if sh > 1 or sw > 1 else "stride 1: nothing inserted"),
            "dy_padded": ("δ padded", size, cout, f"k−1 = {kh - 1} zero(s) around the dilated δ (dashed)"),
            "dx_padded": ("∇a over the padded input" if padded else "∇a", size, cin, crop),
            "dx": ("∇a = ∂L/∂a", size, cin, ""),
            "dw": ("∇w = ∂L/∂w", size, both, ""),
            "db": ("∇b = ∂L/∂b", f"{n_out} value" + ("s" if n_out > 1 else ""), "", "one per output channel"),
        }
        title, shape, channel, caption = table[name]
        # In words: "kernel w: 3×3, input channel 0 → output channel 0" (the subtitle's "in 0 → out 0").
        axes = _CHANNEL_AXES[name]
        words = " → ".join(_channels_text("input" if axis == "ci" else "output", ci if axis == "ci" else co)
                           for axis in axes if (n_in if axis == "ci" else n_out) > 1)
        tooltip = f"{title}: {shape}" + (f", {words}" if words else "")
        return title, shape + (f" · {channel}" if channel else ""), caption, tooltip

    def _inner(self, name: str, stage: str) -> tuple[tuple | None, bool]:
        """Dashed outline inside a grid: the real input within the padding, or δ within its zeros."""
        t = self.trace
        (pt, _), (pl, _) = t.padding
        h, w = t.x.shape[:2]
        kh, kw = t.w.shape[:2]
        if name in ("x_padded", "dx_padded") and any(sum(p) for p in t.padding):
            return (pt, pt + h, pl, pl + w), name == "dx_padded" and stage == "crop"
        if name == "dy_padded" and (kh > 1 or kw > 1):
            hd, wd = t.dy_dilated.shape[:2]
            return (kh - 1, kh - 1 + hd, kw - 1, kw - 1 + wd), False
        return None, False

    def _operator_note(self, key: str) -> str:
        t = self.trace
        sh, sw = t.stride
        if key == "stride":
            return f"stride {sh}" if sh == sw else f"stride {sh}×{sw}"
        if key == "stride1":
            return "stride 1"
        if key == "bias":
            return "+ b" if t.b is not None else ""
        return {"dilate": "dilate", "pad": "pad", "flip": "flip", "crop": "crop", "sum": "sum"}.get(key, "")


# ---------------------------------------------------------------------------------------- painting
@dataclass
class Composition:
    """A scene laid out in a rectangle (what a paint needs, and what hover tests use)."""

    rect: QtCore.QRectF
    header: QtGui.QTextDocument
    formula: QtGui.QTextDocument
    formula_top: float
    placed: list
    operators: list      # (QPointF centre, symbol, note)
    token: tuple | None  # (QRectF, symbol, text, value, scale): the number a copy step moves


MARGIN = 14


def _document(html_text: str, width: float) -> QtGui.QTextDocument:
    doc = QtGui.QTextDocument()
    doc.setDocumentMargin(0)
    font = QtGui.QFont()
    font.setPixelSize(round(14 * text_scale()))
    doc.setDefaultFont(font)
    doc.setHtml(html_text)
    doc.setTextWidth(width)
    return doc


def compose(rect: QtCore.QRectF, scene: Scene) -> Composition:
    """Lay out ``scene`` in ``rect``: header at the top, formula box at the bottom, grids in between."""
    width = rect.width() - 2 * MARGIN
    s = text_scale()

    def px(size: float) -> str:
        return f"font-size:{round(size * s)}px"

    header = _document(
        f"<div style='{px(20)}; font-weight:600; color:#1b1f24'>{html.escape(scene.title)}</div>"
        f"<div style='{px(15)}; color:#2f3943; margin-top:3px'>{html.escape(scene.explanation)}</div>"
        f"<div style='{px(12)}; color:#56606b; margin-top:3px'>{html.escape(scene.progress)}</div>", width)
    lines = [f"<div style='{px(22)}; color:#1b1f24'>{formula_html(scene.formula)}</div>"]
    if scene.numbers:
        lines.append(f"<div style='{px(17)}; color:#2f3943; margin-top:4px'>{formula_html(scene.numbers)}</div>")
    if scene.products:
        lines.append(f"<div style='{px(14)}; color:#56606b; margin-top:3px'>{html.escape(scene.products)}</div>")
    if scene.total:
        lines.append(f"<div style='{px(16)}; color:#1b1f24; font-weight:600; margin-top:4px'>"
                     f"{formula_html(scene.total)}</div>")
    formula = _document("".join(lines), width - 24)
    formula_top = rect.bottom() - MARGIN - formula.size().height() - 16
    top = rect.top() + MARGIN + header.size().height() + 10
    area = QtCore.QRectF(rect.left() + MARGIN, top, width, max(formula_top - 10 - top, 60.0))
    # 84 px between grids for the operator and its note; less in a narrow canvas, where the grids'
    # least slots and full gaps did not fit and every grid shrank to a dot.
    spare = width - SLOT_MIN_W * len(scene.grids)
    gap = min(84.0 * s, max(48.0 * s, spare / len(scene.operators))) if scene.operators else 84.0 * s
    placed = layout_row(scene.grids, [gap] * len(scene.operators), area)
    operators = []
    for (symbol, note), left, right in zip(scene.operators, placed, placed[1:]):
        x = (left.rect.right() + right.rect.left()) / 2
        y = (max(left.rect.top(), right.rect.top()) + min(left.rect.bottom(), right.rect.bottom())) / 2
        operators.append((QtCore.QPointF(x, y), symbol, note))
    token = None
    if scene.token is not None and operators:
        # The moving number sits in the first gap, above the operator: source grid → it → target grid.
        centre = operators[0][0]
        side = 46.0
        width = max(side, 9.0 * len(scene.token[1]))  # "6.10×10⁻⁷" gets a wider cell, not a tiny font
        token = (QtCore.QRectF(centre.x() - width / 2, centre.y() - 34 - side, width, side), *scene.token)
    return Composition(rect, header, formula, formula_top, placed, operators, token)


def paint_composition(p: QtGui.QPainter, comp: Composition) -> None:
    p.fillRect(comp.rect, BACKGROUND)
    p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
    p.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)
    p.save()
    p.translate(comp.rect.left() + MARGIN, comp.rect.top() + MARGIN)
    comp.header.drawContents(p)
    p.restore()
    for g in comp.placed:
        paint_grid(p, g)
    s = text_scale()
    for centre, symbol, note in comp.operators:
        font = QtGui.QFont()
        font.setPixelSize(round(34 * s))
        p.setFont(font)
        p.setPen(TEXT_DARK)
        p.drawText(QtCore.QRectF(centre.x() - 40 * s, centre.y() - 26 * s, 80 * s, 44 * s),
                   QtCore.Qt.AlignmentFlag.AlignCenter, symbol)
        if note:
            font.setPixelSize(round(13 * s))
            p.setFont(font)
            p.setPen(MUTED)
            p.drawText(QtCore.QRectF(centre.x() - 44 * s, centre.y() + 18 * s, 88 * s, 20 * s),
                       QtCore.Qt.AlignmentFlag.AlignCenter, note)
    if comp.token is not None:
        _paint_token(p, *comp.token)
    box = QtCore.QRectF(comp.rect.left() + MARGIN, comp.formula_top, comp.rect.width() - 2 * MARGIN,
                        comp.formula.size().height() + 16)
    p.setPen(QtGui.QPen(QtGui.QColor("#c3c9d1"), 1.0))
    p.setBrush(QtGui.QColor("#ffffff"))
    p.drawRoundedRect(box, 6, 6)
    p.save()
    p.translate(box.left() + 12, box.top() + 8)
    comp.formula.drawContents(p)
    p.restore()


def _paint_token(p: QtGui.QPainter, box: QtCore.QRectF, symbol: str, text: str, value: float,
                 scale: float) -> None:
    """The number a copy step moves, as a small cell with its name above it."""
    rgb = cell_rgb(value, scale)
    p.setPen(QtGui.QPen(WRITE_COLOR, 2.5))
    p.setBrush(QtGui.QColor(*rgb))
    p.drawRoundedRect(box, 4, 4)
    font = QtGui.QFont()
    font.setBold(True)
    font.setPixelSize(int(min(20, box.width() * 0.9 / max(len(text), 1) * 1.7)))
    p.setFont(font)
    p.setPen(text_colour(rgb))
    p.drawText(box, QtCore.Qt.AlignmentFlag.AlignCenter, text)
    font.setBold(False)
    s = text_scale()
    font.setPixelSize(round(13 * s))
    p.setFont(font)
    p.setPen(MUTED)
    p.drawText(QtCore.QRectF(box.center().x() - 50 * s, box.top() - 20 * s, 100 * s, 18 * s),
               QtCore.Qt.AlignmentFlag.AlignCenter, symbol)
    p.setBrush(QtCore.Qt.BrushStyle.NoBrush)


class StepperCanvas(FocusFramed, QtWidgets.QWidget):
    """Paints the current scene; hovering a cell shows its full-precision value in a tooltip."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("convStepperCanvas")
        self.setMouseTracking(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        # three grids with their texts (elided in their rooms below ~640); taller with a larger desktop font,
        # whose texts take more of it (the page scrolls rather than squeeze the grids)
        self.setMinimumSize(560, round(440 * text_scale()))
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding)
        self._scene: Scene | None = None
        self._message = ""
        self.composition: Composition | None = None
        self.setAccessibleName("Convolution step")

    def set_scene(self, scene: Scene | None, message: str = "") -> None:
        """Show scene, or when it is None the message (e.g. why the live source has nothing yet)."""
        self._scene = scene
        self._message = message
        self._compose()
        self.update()
        describe_for_screen_readers(self, message if scene is None else " ".join(
            part for part in (scene.title, scene.progress, scene.formula, scene.numbers, scene.total, scene.explanation)
            if part))

    @property
    def scene(self) -> Scene | None:
        return self._scene

    @property
    def placed(self) -> list[PlacedGrid]:
        return self.composition.placed if self.composition is not None else []

    def grid(self, key: str) -> PlacedGrid | None:
        return next((g for g in self.placed if g.spec.key == key), None)

    def hover_text(self, pos: QtCore.QPointF) -> str | None:
        for g in self.placed:
            cell = g.cell_at(pos)
            if cell is not None:
                return g.describe(*cell)
            if g.header_rect().contains(pos):
                return g.describe_header()
        return None

    def _compose(self) -> None:
        self.composition = compose(QtCore.QRectF(self.rect()), self._scene) if self._scene is not None else None

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._compose()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QtGui.QPainter(self)
        if self.composition is not None:
            paint_composition(p, self.composition)
        else:
            p.fillRect(self.rect(), BACKGROUND)
            p.setPen(MUTED)
            p.drawText(self.rect().adjusted(20, 20, -20, -20),
                       QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap, self._message)
        self.paint_focus_frame(p)
        p.end()

    def event(self, event) -> bool:
        if event.type() == QtCore.QEvent.Type.ToolTip:
            text = self.hover_text(QtCore.QPointF(event.pos()))
            if text:
                QtWidgets.QToolTip.showText(event.globalPos(), text, self)
            else:
                QtWidgets.QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)


# ---------------------------------------------------------------------------------------- sources
def format_blocks(blocks: np.ndarray) -> str:
    """(n, rows, cols) → ``"1 2; 3 4 | 5 6; 7 8"``: rows by ';', blocks by '|'."""
    return " | ".join("; ".join(" ".join(f"{v:g}" for v in row) for row in block) for block in blocks)


def parse_blocks(text: str, n: int, rows: int, cols: int, what: str) -> np.ndarray:
    """Inverse of :func:`format_blocks`; raises ValueError saying what is wrong, naming blocks and rows
    only where there are several. Returns (n, rows, cols)."""
    def numbers_word(count):
        return f"{count} number{'' if count == 1 else 's'}"
    blocks = text.split("|")
    if len(blocks) != n:
        raise ValueError(f"{what}: expected {n} block(s) separated by '|', got {len(blocks)}")
    out = np.zeros((n, rows, cols))
    for k, block in enumerate(blocks):
        where = f"{what}, block {k + 1}" if n > 1 else what
        lines = [line for line in re.split(r"[;\n]", block) if line.strip()]
        if not lines:
            raise ValueError(f"{where}: empty; type {numbers_word(rows * cols)}"
                             + (f" in {rows} rows separated by ';'" if rows > 1 else ""))
        if len(lines) != rows:
            raise ValueError(f"{where}: needs {rows} rows separated by ';', got {len(lines)}")
        for r, line in enumerate(lines):
            at = f"{where}, row {r + 1}" if rows > 1 else where
            words = line.split()
            comma = next((word for word in words if "," in word), None)
            if comma is not None:  # "0,5" is a decimal in much of the world: never read it as 0 and 5
                raise ValueError(f"{at}: {comma!r}: separate numbers with spaces, and write decimals "
                                 f"with a dot (0.5)")
            try:
                numbers = [float(v) for v in words]
            except ValueError:
                raise ValueError(f"{at}: not a number in {line.strip()!r}") from None
            if len(numbers) != cols:
                raise ValueError(f"{at}: needs {numbers_word(cols)}, got {len(numbers)}")
            out[k, r] = numbers
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: values must be finite")
    return out


def _spin(lo: int, hi: int, value: int, tip: str) -> QtWidgets.QSpinBox:
    spin = QtWidgets.QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


class WorkedPanel(QtWidgets.QWidget):
    """Seed 001's worked examples."""

    changed = QtCore.Signal()

    def __init__(self) -> None:
        super().__init__()
        self.combo = QtWidgets.QComboBox()
        for key in WORKED_EXAMPLES:
            self.combo.addItem(WORKED_TITLES.get(key, key), key)
        self.combo.setToolTip("The examples seed 001 derives by hand, with its inputs and kernels (its 5x5 input's "
                              "figure is lost: this is the classic UFLDL input, whose first window and output 4 "
                              "are the ones the article's text gives); the δ values are chosen here, and the "
                              "2x2x2 example shows the true convolution, not the article's matrix.")
        self.description = QtWidgets.QLabel()
        self.description.setWordWrap(True)
        # Room for a few words a line: narrower, the description goes below the example (WrapRow)
        # rather than stack 13 short lines.
        self.description.setMinimumWidth(300)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(WrapRow(controls_row("Example", self.combo, stretch=False), self.description,
                                 stretch=(0, 1)))
        self.combo.currentIndexChanged.connect(self._update)
        self._update()

    def _update(self) -> None:
        self.description.setText(WORKED_EXAMPLES[self.combo.currentData()].description)
        self.changed.emit()

    def build(self) -> tuple[ConvTrace, str]:
        e = WORKED_EXAMPLES[self.combo.currentData()]
        return trace_conv2d(e.x, e.w, e.b, e.dy, e.stride, e.padding), ""


class CustomPanel(QtWidgets.QWidget):
    """A convolution of the learner's choosing: sizes, stride, padding, channels; values random
    (small integers, easy to follow by hand) or typed."""

    changed = QtCore.Signal()

    def __init__(self) -> None:
        super().__init__()
        self.h = _spin(1, 32, 6, "Input height")
        self.w = _spin(1, 32, 6, "Input width")
        self.k = _spin(1, 7, 3, "Kernel size k (k×k)")
        self.stride = _spin(1, 4, 2, "Stride s: how far the kernel moves between windows")
        self.padding = QtWidgets.QComboBox()
        self.padding.addItems(["VALID", "SAME", "explicit"])
        self.padding.setCurrentText("SAME")
        self.padding.setToolTip("VALID: no padding. SAME (TensorFlow): output = ceil(input/stride); the odd "
                                "zero goes to the bottom/right. explicit: p zeros on every side.")
        self.pad_amount = _spin(0, 4, 1, "Zeros on every side (explicit padding)")
        self.c_in = _spin(1, 3, 1, "Input channels")
        self.c_out = _spin(1, 3, 1, "Output channels (one kernel each)")
        self.bias = QtWidgets.QCheckBox("Bias")
        self.bias.setToolTip("Add a bias b per output channel")
        self.random_button = QtWidgets.QPushButton("New random values")
        self.random_button.setToolTip("Draw new small integers for a, w, δ and b (easy to check by hand).")
        self.edits = {name: QtWidgets.QLineEdit() for name in ("x", "w", "dy", "b")}
        labels = {"x": "a", "w": "w", "dy": "δ", "b": "b"}
        tips = {"x": "Input a: rows separated by ';', numbers by spaces (decimals with a dot: 0.5), one block per "
                     "input channel separated by '|'.",
                "w": "Kernel w: one k×k block per (input channel, output channel), channels counted from 0, "
                     "in the order (in 0,out 0) | (in 1,out 0) | … | (in 0,out 1) | …",
                "dy": "δ = ∂L/∂z at the output: one block per output channel.",
                "b": "Bias: one number per output channel."}
        self.error = ToneLabel()
        self.error.set_tone("error")
        self.error.setWordWrap(True)
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        # two rows of settings: in one, the page would be wider than the window leaves the stepper
        rows = ((("Input", self.h), ("×", self.w), ("Kernel", self.k), ("Stride", self.stride),
                 ("Padding", self.padding), ("p", self.pad_amount)),
                (("Channels in", self.c_in), ("out", self.c_out), ("", self.bias), ("", self.random_button)))
        for row, pairs in enumerate(rows):
            line = QtWidgets.QHBoxLayout()
            for text, widget in pairs:
                if text:
                    line.addWidget(QtWidgets.QLabel(text))
                line.addWidget(widget)
            line.addStretch(1)
            grid.addLayout(line, row, 0, 1, 8)
        for col, name in enumerate(self.edits):
            self.edits[name].setToolTip(tips[name])
            grid.addWidget(QtWidgets.QLabel(labels[name]), 2, 2 * col)
            grid.addWidget(self.edits[name], 2, 2 * col + 1)
            grid.setColumnStretch(2 * col + 1, 3 if name in ("x", "dy") else 2)
        grid.addWidget(self.error, 3, 0, 1, 8)
        self._rng = np.random.default_rng(1)
        self._values: dict[str, np.ndarray] = {}
        # Why the settings or typed values make no convolution (None when they do): the view then shows
        # this on its canvas instead of an earlier trace that no longer matches the fields.
        self._problem: str | None = None
        for spin in (self.h, self.w, self.k, self.stride, self.pad_amount, self.c_in, self.c_out):
            spin.valueChanged.connect(self._shape_changed)
        self.padding.currentIndexChanged.connect(self._shape_changed)
        self.bias.toggled.connect(self._shape_changed)
        self.random_button.clicked.connect(self._randomize)
        for edit in self.edits.values():
            edit.editingFinished.connect(self._typed)
        self._shape_changed()

    def _padding_value(self):
        mode = self.padding.currentText()
        self.pad_amount.setEnabled(mode == "explicit")
        return self.pad_amount.value() if mode == "explicit" else mode

    def _shapes(self) -> dict[str, tuple] | None:
        """Required shapes of x, w, dy, b for the current settings, or None if the kernel does not fit."""
        h, w, k, ci, co = self.h.value(), self.w.value(), self.k.value(), self.c_in.value(), self.c_out.value()
        try:
            h_out, w_out = conv_output_hw((h, w), (k, k), self.stride.value(), self._padding_value())
        except ValueError:
            return None
        if h_out < 1 or w_out < 1:
            return None
        return {"x": (h, w, ci), "w": (k, k, ci, co), "dy": (h_out, w_out, co), "b": (co,)}

    def _random(self, name: str, shape: tuple) -> np.ndarray:
        """Small random integers of ``shape`` for array ``name`` of a random example (easy sums)."""
        lo, hi = {"x": (0, 3), "w": (-2, 2), "dy": (-2, 2), "b": (-1, 1)}[name]
        return self._rng.integers(lo, hi + 1, size=shape).astype(np.float64)

    def _shape_changed(self) -> None:
        """Keep the values whose shape still fits (typed ones included), draw new ones for the rest."""
        shapes = self._shapes()
        if shapes is None:
            k = self.k.value()
            self._set_problem(f"The {k}×{k} kernel does not fit in the padded input: make the input bigger, "
                              "the kernel smaller or add padding.")
            return
        for name, shape in shapes.items():
            if name not in self._values or self._values[name].shape != shape:
                self._values[name] = self._random(name, shape)
        self._show_values()
        self._set_problem(None)

    def _randomize(self) -> None:
        self._values.clear()
        self._shape_changed()

    def _show_values(self) -> None:
        v = self._values
        self.edits["x"].setText(format_blocks(v["x"].transpose(2, 0, 1)))
        kh, kw, ci, co = v["w"].shape
        self.edits["w"].setText(format_blocks(v["w"].transpose(3, 2, 0, 1).reshape(ci * co, kh, kw)))
        self.edits["dy"].setText(format_blocks(v["dy"].transpose(2, 0, 1)))
        self.edits["b"].setText(" ".join(f"{x:g}" for x in v["b"]))
        self.edits["b"].setEnabled(self.bias.isChecked())

    def _typed(self) -> None:
        shapes = self._shapes()
        if shapes is None:
            return
        try:
            h, w, ci = shapes["x"]
            k, _, _, co = shapes["w"]
            h_out, w_out, _ = shapes["dy"]
            x = parse_blocks(self.edits["x"].text(), ci, h, w, "a").transpose(1, 2, 0)
            wt = parse_blocks(self.edits["w"].text(), ci * co, k, k, "w").reshape(co, ci, k, k).transpose(2, 3, 1, 0)
            dy = parse_blocks(self.edits["dy"].text(), co, h_out, w_out, "δ").transpose(1, 2, 0)
            b = parse_blocks(self.edits["b"].text(), 1, 1, co, "b (one per output channel)")[0, 0]
        except ValueError as error:
            self._set_problem(str(error))
            return
        new = {"x": x, "w": wt, "dy": dy, "b": b}
        if all(np.array_equal(new[n], self._values[n]) for n in new) and self._problem is None:
            return
        self._values.update(new)
        self._set_problem(None)

    def _set_problem(self, problem: str | None) -> None:
        """Show why there is no convolution (or clear it) and have the view rebuild: it then steps
        through the new values or shows the problem instead of a trace the fields no longer match."""
        self._problem = problem
        self.error.setText(problem or "")
        self.changed.emit()

    def build(self) -> tuple[ConvTrace, str]:
        if self._problem is not None:
            raise ValueError(self._problem)
        v = self._values
        b = v["b"] if self.bias.isChecked() else None
        trace = trace_conv2d(v["x"], v["w"], b, v["dy"], self.stride.value(), self._padding_value())
        return trace, ""


class LivePanel(QtWidgets.QWidget):
    """A conv layer of the display model on one sample: the current sample of the app or a bundled
    validation digit. Recomputed on demand (or on every weight update with "Follow training")."""

    changed = QtCore.Signal()

    def __init__(self) -> None:
        super().__init__()
        self.layer = model_combo()
        self.layer.setToolTip("The convolution layer to step through (its current weights).")
        self.sample_mode = QtWidgets.QComboBox()
        self.sample_mode.addItem("current sample", "current")
        self.sample_mode.addItem("validation sample", "validation")
        self.sample_mode.setToolTip("The app's current sample (e.g. sent from the drawing pad) or a bundled "
                                    "validation digit.")
        self.picker = SamplePicker()
        self.recompute_button = QtWidgets.QPushButton("Recompute")
        self.recompute_button.setToolTip("Run the sample through the model's current weights again: new x, w and δ.")
        self.follow = QtWidgets.QCheckBox("Follow training")
        self.follow.setToolTip("Recompute on every weight update (keeps the current step).")
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel("Layer"))
        row.addWidget(self.layer)
        row.addWidget(self.sample_mode)
        row.addWidget(self.picker)
        row.addWidget(self.recompute_button)
        row.addWidget(self.follow)
        row.addStretch(1)
        self.model = None
        self.current: tuple[np.ndarray, int | None] | None = None
        self.stale = False
        self.layer.currentIndexChanged.connect(self.changed)
        self.sample_mode.currentIndexChanged.connect(self._mode_changed)
        self.picker.picked.connect(self._picked)
        self.recompute_button.clicked.connect(self.changed)
        self._mode_changed()

    def set_model(self, model, window=None) -> bool:
        """Keep a reference to the display model; True when its conv layers changed (new architecture).
        ``window``: the main window, whose held-out images the picker offers."""
        self.model = model
        names = [layer.name for layer in model.layers if layer.kind == "Conv2D"]
        old = [self.layer.itemText(i) for i in range(self.layer.count())]
        self.picker.set_dataset(held_out_images(model, window))
        if names == old:
            return False
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems(names)
        self.layer.blockSignals(False)
        return True

    def _mode_changed(self) -> None:
        self.picker.setVisible(self.sample_mode.currentData() == "validation")
        self.changed.emit()

    def _picked(self, x, label) -> None:
        """The validation picker chose ``x: (H, W, C)``: rebuild if that is the sample used."""
        if self.sample_mode.currentData() == "validation":
            self.changed.emit()

    def sample(self) -> tuple[np.ndarray, int | None, str] | None:
        """(x: (H, W, C), label, description) of the sample to use, or None when there is none."""
        if self.sample_mode.currentData() == "current" and self.current is not None:
            x, label = self.current
            return x, label, "the current sample" + (f" (label {label})" if label is not None else " (no label)")
        picked = self.picker.current()
        if picked is None:
            return None
        x, label = picked
        where = f"validation sample #{self.picker.spin.value()} (label {label})"
        if self.sample_mode.currentData() == "current":
            where += " — no current sample yet"
        return x, label, where

    def build(self) -> tuple[ConvTrace, str]:
        if self.model is None or self.layer.count() == 0:
            raise ValueError("The live source needs a model with a convolution layer: load or train one first.")
        sample = self.sample()
        if sample is None:
            raise ValueError("No sample yet: pick a validation sample or send one from the drawing pad.")
        x, label, where = sample
        if tuple(x.shape) != tuple(self.model.input_shape):
            raise ValueError(f"The sample is {x.shape}, the model expects {tuple(self.model.input_shape)}.")
        live = live_conv_trace(self.model, self.layer.currentText(), x, label)
        classes = self.model.classes
        predicted = int(np.argmax(live.proba))
        against = (f"label {classes[live.label]}" if label is not None
                   else f"the predicted class {classes[live.label]} (no label given)")
        note = (f"{self.layer.currentText()} on {where}: predicted {classes[predicted]} "
                f"(p = {live.proba[predicted]:.3f}), loss {live.loss:.4g} against {against}. "
                + ("δ is the real ∂L/∂z at this layer's output, before its activation. "
                   if self.model.variant != "transposed_pool" else
                   "δ is what the transposed_pool variant's wrong pooling backward delivers to this layer's "
                   "output, before its activation: not the true ∂L/∂z. ")
                + "Channels count from 0, as in Kernels, Feature maps, Pooling and Gradient check; rows and "
                "columns count from 1, as in seed 001's formulas (w12: row 1, column 2).")
        self.stale = False
        return live.trace, note


# ---------------------------------------------------------------------------------------- the view
class ConvStepper(QtWidgets.QWidget):
    """The conv stepper view (objectName ``convStepper``).

    View protocol: ``model_changed(model)`` keeps a reference to the display model (the live source
    recomputes on demand, or on every update with "Follow training"); ``sample_changed(x: (H, W, C),
    label)`` sets the "current sample" of the live source. Keys (when the view has focus): Left/Right
    step, Space play/pause, Home/End first/last frame, PageUp/PageDown previous/next stage.
    ``render_frame(i, size)`` paints frame i of the current playlist into a QImage (for export).
    """

    SOURCES = (("worked", "Worked example (seed 001)"), ("custom", "Custom"), ("live", "Live model"))

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("convStepper")
        # Keys arrive from the canvas (it takes the focus and shows it); the page itself was a Tab stop
        # with nothing to show for it.
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.trace: ConvTrace | None = None
        self._builder: SceneBuilder | None = None
        self._positions = np.zeros(0, dtype=np.int64)
        self._firsts: dict[str, int] = {}
        self._index = 0
        self._channels = (0, 0)
        self._note_text = ""
        self._pending: bool | None = None  # a rebuild deferred while hidden (its keep_index)
        self._window = None  # the main window, once attached

        self.source = QtWidgets.QComboBox()
        for key, title in self.SOURCES:
            self.source.addItem(title, key)
        self.source.setToolTip("Where the numbers come from: the article's examples, your own, or the model.")
        self.worked = WorkedPanel()
        self.custom = CustomPanel()
        self.live = LivePanel()
        self.panels = QtWidgets.QStackedWidget()
        for panel in (self.worked, self.custom, self.live):
            self.panels.addWidget(panel)
        self._show_panel(self.source.currentIndex())
        self.c_in = model_combo()
        self.c_out = model_combo()
        self.c_in.setToolTip("Input channel to follow (all: every channel pair in turn). Counted from 0, as "
                             "in Kernels, Feature maps, Pooling and Gradient check and in the formulas' "
                             "[channel] marks (rows and columns in the formulas count from 1, as in seed 001). "
                             "With one input channel chosen (not the last), each z is a partial sum and says "
                             "so; the line under the formula gives the complete z.")
        self.c_out.setToolTip("Output channel to follow (all: every channel pair in turn). Counted from 0, as "
                              "in Kernels, Feature maps, Pooling and Gradient check: output channel k here is "
                              "channel k of the layer there. With one output channel chosen (not the last), "
                              "each ∇a is a partial sum and says so; the line under the formula gives the "
                              "complete ∇a.")
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)

        self.canvas = StepperCanvas()
        icon = self.style().standardIcon
        pixmap = QtWidgets.QStyle.StandardPixmap
        self._play_icon, self._pause_icon = icon(pixmap.SP_MediaPlay), icon(pixmap.SP_MediaPause)
        self.play_button = self._button("Play", "Play / pause (Space)", self._play_icon)
        self.back_button = self._button("Back", "One step back (Left)", icon(pixmap.SP_MediaSeekBackward))
        self.forward_button = self._button("Step", "One step forward (Right)", icon(pixmap.SP_MediaSeekForward))
        self.first_button = self._button("", "First step (Home)", icon(pixmap.SP_MediaSkipBackward))
        self.last_button = self._button("", "Last step (End)", icon(pixmap.SP_MediaSkipForward))
        self.first_button.setAccessibleName("First step")  # icons only: a screen reader had no name to read
        self.last_button.setAccessibleName("Last step")
        self.stage_combo = QtWidgets.QComboBox()
        self.stage_combo.setToolTip("Jump to the first step of a stage (PageUp / PageDown).")
        for stage in STAGES:
            self.stage_combo.addItem(STAGE_SHORT[stage], stage)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("Scrub through every step")
        self.position_label = QtWidgets.QLabel()
        self.position_label.setMinimumWidth(110)
        self.speed = DecimalBox()
        self.speed.setRange(0.25, 30.0)
        self.speed.setValue(2.0)
        self.speed.setSingleStep(0.5)
        self.speed.setSuffix(" steps/s")
        self.speed.setToolTip("Playback speed")
        self.speed.setAccessibleName("Playback speed")  # the step counter sits in front of it, not a label
        self.timer = QtCore.QTimer(self)

        source = controls_row("Source", self.source)
        channels = QtWidgets.QHBoxLayout()
        channels.addWidget(QtWidgets.QLabel("Input channel"))
        channels.addWidget(self.c_in)
        channels.addWidget(QtWidgets.QLabel("Output channel"))
        channels.addWidget(self.c_out)
        channels.addWidget(self.note, 1)
        buttons = controls_row(self.first_button, self.back_button, self.play_button, self.forward_button,
                               self.last_button, "Stage", self.stage_combo)
        scrub = QtWidgets.QHBoxLayout()
        scrub.addWidget(self.slider, 1)
        scrub.addWidget(self.position_label)
        scrub.addWidget(self.speed)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(WrapRow(source, self.panels, stretch=(0, 1)))
        layout.addLayout(channels)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(WrapRow(buttons, scrub, stretch=(0, 1)))

        self.source.currentIndexChanged.connect(self._source_changed)
        for panel in (self.worked, self.custom, self.live):
            panel.changed.connect(self._panel_changed)
        self.c_in.currentIndexChanged.connect(self._channels_changed)
        self.c_out.currentIndexChanged.connect(self._channels_changed)
        self.play_button.clicked.connect(self.toggle_play)
        self.back_button.clicked.connect(lambda: self.step(-1))
        self.forward_button.clicked.connect(lambda: self.step(1))
        self.first_button.clicked.connect(lambda: self.set_index(0))
        self.last_button.clicked.connect(lambda: self.set_index(self.frame_count() - 1))
        self.stage_combo.activated.connect(self._stage_chosen)
        self.slider.valueChanged.connect(self.set_index)
        self.speed.valueChanged.connect(self._speed_changed)
        self.timer.timeout.connect(self._tick)
        self._speed_changed()
        self._rebuild()

    def _button(self, text: str, tip: str, icon: QtGui.QIcon) -> QtWidgets.QPushButton:
        button = QtWidgets.QPushButton(icon, text)
        button.setToolTip(tip)
        button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys keep going to the stepper
        return button

    # ------------------------------------------------------------------ view protocol
    def attach(self, window) -> None:
        """The live source's picker offers the window's held-out images."""
        self._window = window

    def datasets_changed(self) -> None:
        """The window loaded other data: the live source picks from its held-out images."""
        if self.live.model is not None:
            self.live.picker.follow_window_data(self.live.model, self._window)

    def model_changed(self, model) -> None:
        if model is None:
            return
        new_architecture = self.live.set_model(model, self._window)
        if self._source() != "live":
            return
        if new_architecture or self.trace is None:
            self._rebuild_when_visible()
        elif self.live.follow.isChecked():
            self._rebuild_when_visible(keep_index=True)
        else:
            self.live.stale = True
            self._show_note()

    def sample_changed(self, x, label) -> None:
        """The window's current sample is now ``x: (H, W, C)`` (``label`` None for a drawing)."""
        self.live.current = (np.array(x, dtype=np.float32), None if label is None else int(label))
        if self._source() == "live" and self.live.sample_mode.currentData() == "current":
            self._rebuild_when_visible()

    def _rebuild_when_visible(self, keep_index: bool = False) -> None:
        """Rebuild now when shown; a hidden view (another tab) rebuilds when it is shown again."""
        if self.isVisible():
            self._pending = None
            self._rebuild(keep_index)
        else:
            self._pending = keep_index if self._pending is None else self._pending and keep_index

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._pending is not None:
            keep_index, self._pending = self._pending, None
            self._rebuild(keep_index)
        # Chosen by its tab: the stepper's keys (Right steps, Space plays) work at once, instead of
        # Right going to the tab bar that was clicked.
        if isinstance(QtWidgets.QApplication.focusWidget(), (QtWidgets.QTabBar, type(None))):
            self.canvas.setFocus()

    # ------------------------------------------------------------------ building
    def _source(self) -> str:
        return self.source.currentData()

    def set_source(self, key: str) -> None:
        """Switch to source ``"worked"``, ``"custom"`` or ``"live"``."""
        self.source.setCurrentIndex([k for k, _ in self.SOURCES].index(key))

    def _source_changed(self) -> None:
        self._show_panel(self.source.currentIndex())
        self._rebuild()

    def _show_panel(self, index: int) -> None:
        """Show the source's panel; the stack then asks for that panel's room only (a QStackedWidget
        asks for its widest page's, and the custom panel's settings would make the page scroll)."""
        self.panels.setCurrentIndex(index)
        for i in range(self.panels.count()):
            policy = QtWidgets.QSizePolicy.Policy.Preferred if i == index else QtWidgets.QSizePolicy.Policy.Ignored
            self.panels.widget(i).setSizePolicy(policy, policy)

    def _panel_changed(self) -> None:
        if self.sender() is self.panels.currentWidget():
            self._rebuild_when_visible()  # e.g. other data loaded while another tab is shown

    def _rebuild(self, keep_index: bool = False) -> None:
        """Build the trace of the current source and restart (or keep the step with keep_index)."""
        self.pause()
        panel = self.panels.currentWidget()
        try:
            trace, note = panel.build()
        except ValueError as error:
            self.trace, self._builder = None, None
            self._positions = np.zeros(0, dtype=np.int64)
            self._note_text = ""
            self.note.setText("")
            self.canvas.set_scene(None, str(error))
            self._update_controls()
            return
        self.trace = trace
        self._builder = SceneBuilder(trace)
        self._note_text = note
        self._fill_channel_combos()
        self._make_playlist(self._index if keep_index else 0)
        self._show_note()

    def _show_note(self) -> None:
        text = self._note_text
        if self._source() == "live" and self.live.stale:
            text += "  " + span(self, "error", "<b>The weights have changed since: press Recompute.</b>")
        self.note.setText(text)

    def _fill_channel_combos(self) -> None:
        """Offer "all" and every channel; keep the learner's choice while the channel counts stay."""
        _, _, n_in, n_out = self.trace.w.shape
        live = self._source() == "live"
        for combo, n in ((self.c_in, n_in), (self.c_out, n_out)):
            if combo.count() == n + 1 and combo.property("live") == live:
                continue
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("all", None)
            for c in range(n):
                combo.addItem(str(c), c)
            # One channel pair by default for a model layer (all pairs would be tens of thousands of steps).
            combo.setCurrentIndex(1 if (live and n > 1) else 0)
            combo.setProperty("live", live)
            combo.setEnabled(n > 1)
            combo.blockSignals(False)

    def _channels_changed(self) -> None:
        self.pause()
        self._make_playlist(0)
        self.canvas.setFocus()

    def _make_playlist(self, index: int) -> None:
        """Positions of the frames shown (all stages, filtered by the channel combos)."""
        c_in, c_out = self.c_in.currentData(), self.c_out.currentData()
        parts, self._firsts, n = [], {}, 0
        for stage in STAGES:
            positions = np.asarray(self.trace.frames_for(stage, c_in, c_out).positions, dtype=np.int64)
            self._firsts[stage] = n
            parts.append(positions)
            n += len(positions)
        self._positions = np.concatenate(parts)
        self._channels = (c_in or 0, c_out or 0)
        self._index = -1
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(n - 1, 0))
        self.slider.blockSignals(False)
        self.set_index(min(index, n - 1))

    # ------------------------------------------------------------------ navigation
    def frame_count(self) -> int:
        return len(self._positions)

    def current_index(self) -> int:
        return self._index

    def current_frame(self) -> Frame | None:
        return self.trace.frames[int(self._positions[self._index])] if self.frame_count() else None

    def stage_first_index(self, stage: str) -> int:
        """Playlist index of the first step of ``stage``."""
        return self._firsts[stage]

    def set_index(self, index: int) -> None:
        if not self.frame_count():
            return
        index = int(min(max(index, 0), self.frame_count() - 1))
        if index == self._index:
            return
        self._index = index
        frame = self.current_frame()
        self._channels = self._builder.channels_of(frame, self._channels)
        self.canvas.set_scene(self._scene(index, frame))
        self._update_controls()

    def step(self, delta: int) -> None:
        self.set_index(self._index + delta)

    def jump_to_stage(self, stage: str) -> None:
        self.set_index(self._firsts[stage])

    def _stage_chosen(self) -> None:
        self.pause()
        self.jump_to_stage(self.stage_combo.currentData())
        self.canvas.setFocus()

    def _stage_of_index(self, index: int) -> str:
        return [s for s in STAGES if self._firsts[s] <= index][-1]

    def _scene(self, index: int, frame: Frame) -> Scene:
        stage = frame.stage
        first = self._firsts[stage]
        k = STAGES.index(stage)
        end = self._firsts[STAGES[k + 1]] if k + 1 < len(STAGES) else self.frame_count()
        channels = self._builder.channels_of(frame, self._channels)
        progress = (f"Step {index - first + 1} of {end - first} in this stage  ·  step {index + 1} of "
                    f"{self.frame_count()} overall  ·  stage {k + 1} of {len(STAGES)}")
        return self._builder.scene(frame, channels, progress, (self.c_in.currentData(), self.c_out.currentData()))

    def _update_controls(self) -> None:
        n = self.frame_count()
        for widget in (self.play_button, self.back_button, self.forward_button, self.first_button, self.last_button,
                       self.stage_combo, self.slider):
            widget.setEnabled(n > 0)
        if not n:
            self.position_label.setText("")
            return
        self.slider.blockSignals(True)
        self.slider.setValue(self._index)
        self.slider.blockSignals(False)
        self.stage_combo.setCurrentIndex(STAGES.index(self._stage_of_index(self._index)))
        self.position_label.setText(f"step {self._index + 1} / {n}")

    # ------------------------------------------------------------------ playback
    def is_playing(self) -> bool:
        return self.timer.isActive()

    def play(self) -> None:
        if not self.frame_count():
            return
        if self._index >= self.frame_count() - 1:
            self.set_index(0)
        self.timer.start()
        self.play_button.setText("Pause")
        self.play_button.setIcon(self._pause_icon)

    def pause(self) -> None:
        self.timer.stop()
        self.play_button.setText("Play")
        self.play_button.setIcon(self._play_icon)

    def toggle_play(self) -> None:
        self.pause() if self.is_playing() else self.play()

    def _speed_changed(self) -> None:
        self.timer.setInterval(int(1000 / self.speed.value()))

    def _tick(self) -> None:
        if self._index >= self.frame_count() - 1:
            self.pause()
        else:
            self.step(1)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        Key = QtCore.Qt.Key
        if key == Key.Key_Right:
            self.step(1)
        elif key == Key.Key_Left:
            self.step(-1)
        elif key == Key.Key_Space:
            self.toggle_play()
        elif key == Key.Key_Home:
            self.set_index(0)
        elif key == Key.Key_End:
            self.set_index(self.frame_count() - 1)
        elif key in (Key.Key_PageUp, Key.Key_PageDown) and self.frame_count():
            k = STAGES.index(self._stage_of_index(self._index))
            if key == Key.Key_PageUp and self._index == self._firsts[STAGES[k]]:
                k -= 1  # already at the stage start: go to the previous stage
            k = k + 1 if key == Key.Key_PageDown else k
            if 0 <= k < len(STAGES):
                self.jump_to_stage(STAGES[k])
        else:
            super().keyPressEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802
        self.pause()
        super().hideEvent(event)

    # ------------------------------------------------------------------ text and export
    def formula_text(self) -> str:
        """The symbolic formula of the current step (``∇a22 = δ11·w22 + …``), as drawn."""
        scene = self.canvas.scene
        return scene.formula if scene is not None else ""

    def numbers_text(self) -> str:
        """The numeric formula of the current step (``∇a22 = 1·4 + (-1)·3 + … = 5.5``), as drawn."""
        scene = self.canvas.scene
        return scene.numbers if scene is not None else ""

    def render_frame(self, index: int, size: QtCore.QSize | None = None) -> QtGui.QImage:
        """Step ``index`` of the current playlist painted into a new QImage (default: the canvas size),
        exactly as the canvas draws it. The view's own position does not change."""
        size = size or self.canvas.size()
        index = int(min(max(index, 0), self.frame_count() - 1))
        frame = self.trace.frames[int(self._positions[index])]
        image = QtGui.QImage(size, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(BACKGROUND)
        painter = QtGui.QPainter(image)
        paint_composition(painter, compose(QtCore.QRectF(0, 0, size.width(), size.height()),
                                           self._scene(index, frame)))
        painter.end()
        return image
