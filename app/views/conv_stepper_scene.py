"""The conv stepper's scenes: one frame of ``engine.trace`` turned into what is drawn for it — the grids of
its stage (values, colours, what is read and written, captions), the operators between them, the number a
copy moves, and the formula lines.

Split from ``app.views.conv_stepper``; nothing here paints (``app.views.conv_stepper_canvas`` does), so a
scene is the same on screen and in an exported frame.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.views.cell_format import CellFormat
from app.views.conv_stepper_text import (STAGE_TITLES, channels_text, explanation, padding_caption, products_line,
                                         shown_terms, signed_number, tidy_numbers, unreached_note)
from app.views.stepper_grid import GridSpec
from engine.text import elide, plural
from engine.trace import ConvTrace, Frame

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
        stage = frame.stage
        layout = _SCENES[stage]
        partner_grid, partners = self._partners(frame)
        grids = [self._grid(name, frame, channels, played, partners if name == partner_grid else {})
                 for name in layout if isinstance(name, str)]
        operators = [(item[0], self._operator_note(item[1])) for item in layout if isinstance(item, tuple)]
        formula, numbers, total = self._formula_lines(frame, played)
        title = STAGE_TITLES[stage]
        if stage == "forward" and self.trace.b is None:  # e.g. seed 001's examples: the formula has no b either
            title = title.replace(" + b", "") + "  (no bias here)"
        elif stage == "bias_grad" and self.trace.b is None:
            title += "  (no bias here: what its gradient would be)"
        words = explanation(self.trace, stage)
        if stage == "input_grad" and frame.terms and all(term.inserted_zero for term in frame.terms):
            # a cell no forward window reached: "∇a65 = 0" with nothing summed needs its reason here
            words += " " + unreached_note(self.trace, self.trace.formula(frame).partition(" = ")[0])
        return Scene(stage, title, words, progress, grids, operators, self._token(frame),
                     formula, numbers, products_line(frame, self._scale(frame)), total)

    @staticmethod
    def _partners(frame: Frame) -> tuple[str | None, dict]:
        """The grid whose window cells are multiplied by another grid's (None for a copy), and its
        ``{(r, c): (factor, inserted)}`` (see ``GridSpec.partners``)."""
        partner_grid, partners = None, {}
        for term in frame.terms:
            if term.b_source is not None:
                partner_grid = term.a_source[0]
                partners[tuple(term.a_source[1][:2])] = (term.b_value, term.b_origin is None)
        return partner_grid, partners

    def _grid(self, name: str, frame: Frame, channels: tuple[int, int], played: tuple[int | None, int | None],
              partners: dict) -> GridSpec:
        """Grid ``name`` of ``frame``'s scene on channels ``(c_in, c_out)``: the values it holds at this
        frame, what is read and written in it, and its labels."""
        ci, co = channels
        stage = frame.stage
        ch = tuple(ci if axis == "ci" else co for axis in _CHANNEL_AXES[name])
        is_target = name == frame.target
        values = self._plane(self.trace.state_at(frame.position, name) if is_target else self._array(name), name, ch)
        written = None
        if is_target:
            written = (0, frame.index[0]) if name == "db" else tuple(frame.index[:2])
        title, subtitle, caption, tooltip = self._labels(name, stage, ci, co)
        faded, partial, complete = None, None, None
        if is_target and frame.part[1] > 1:
            faded, partial, complete = self._sum_progress(name, frame, values, ch)
            k, n = frame.part
            if k < n - 1:
                title, tooltip = "partial " + title, "partial " + tooltip
            caption = "; ".join(part for part in (self._sum_caption(stage, k, n, bool(faded.any())), caption)
                                if part)
        elif stage == "crop" and name == "dx_padded" and self._crop_after_partial(played):
            n_out = self.trace.w.shape[3]
            title, tooltip = "complete " + title, "complete " + tooltip
            caption = (f"complete: {channels_text('output', n_out - 1)} (the ∇a stage showed "
                       f"{channels_text('output', played[1])} only); " + caption)
        inner, dim = self._inner(name, stage)
        scale, fmt = self.style(name, ch)
        mirror = {"w_lr": "vertical", "w_rot": "horizontal"}.get(name) if stage == "rotate" else None
        return GridSpec(
            key=name, title=title, subtitle=subtitle, values=values, scale=scale, fmt=fmt,
            inserted=self.inserted(name), symbols=self.symbols(name, ch), window=self._read_window(name, frame),
            written=written, partners=partners, inner=inner, dim_outside=dim, caption=caption, mirror=mirror,
            faded=faded, tooltip=tooltip, partial=partial, complete=complete)

    def _read_window(self, name: str, frame: Frame) -> tuple[int, int, int, int] | None:
        """``(r0, r1, c0, c1)`` (end-exclusive) the frame reads in grid ``name``, None where it reads nothing."""
        reads = {window.array: window for window in frame.reads}
        if name in reads:
            window = reads[name]
            return window.rows.start, window.rows.stop, window.cols.start, window.cols.stop
        if name == "w_lr":  # where the weight being copied sits halfway through the rotation
            kh = self.trace.w.shape[0]
            p, q = frame.index[:2]
            return kh - 1 - p, kh - p, q, q + 1
        return None

    def _sum_progress(self, name: str, frame: Frame, values: np.ndarray, channels: tuple):
        """Where a sum over channels stands in the grid it writes, ``values: (rows, cols)``: faded (rows, cols)
        bool, the cells this channel's pass has not reached yet (they hold the earlier channels' sum: fading
        them shows the pass); ``partial(r, c)``, what a cell short of the last channel holds (said in its
        tooltip); complete (rows, cols), the finished sums."""
        rows, cols = values.shape
        order = np.arange(rows * cols).reshape(rows, cols)
        faded = (order > frame.index[0] * cols + frame.index[1]) & np.isfinite(values)
        k, n = frame.part
        # the last channel each cell has summed: k where this pass has been, k - 1 where not yet
        partial = self._parts(frame.stage, np.where(faded, k - 1, k), n)
        return faded, partial, self._plane(self.trace.arrays[name], name, channels)

    def _token(self, frame: Frame) -> tuple | None:
        """The number a copy stage (dilate, pad, crop) moves, ``(symbol, text, value, scale)``; None for
        the stages that sum products."""
        if frame.stage not in ("dilate", "pad", "crop"):
            return None
        (window,) = frame.reads
        r, c = window.rows.start, window.cols.start
        scale, fmt = self.style(window.array, tuple(window.channels))
        symbol = self.symbols(window.array, tuple(window.channels))[r][c]
        return symbol, fmt.alone(frame.value), frame.value, scale  # the grids may show no numbers

    def _formula_lines(self, frame: Frame, played: tuple[int | None, int | None]) -> tuple[str, str, str]:
        """(symbolic formula, numeric formula, complete value) under the grids; a partial sum over channels
        is called partial (never written as if it were the cell) and completed in the third line."""
        t = self.trace
        stage = frame.stage
        formula, numbers = t.formula(frame, keep=shown_terms(frame)), self._numbers(frame)
        lhs = formula.partition(" = ")[0]  # the cell written: "z(1,1)[0]", "∇a22"
        total = ""
        k, n = frame.part
        if k < n - 1:
            formula = f"partial {lhs} ({self._partial_words(stage, k)})" + formula[len(lhs):]
            numbers = f"partial {lhs}" + numbers[len(lhs):]
            total = self._completion(stage, lhs, k, frame.value, float(t.arrays[frame.target][frame.index]))
        elif stage == "crop" and self._crop_after_partial(played):
            (window,) = frame.reads  # the ∇a cell the crop keeps: complete, where the ∇a stage showed a part
            last = played[1]
            part = t.partial_sum("dx_padded", (window.rows.start, window.cols.start, *window.channels), last)
            total = self._completion("input_grad", lhs, last, part, frame.value, ", as the ∇a stage showed")
        if not frame.terms:  # a copy: one line, "δdilated[1,3] = δ12 = -1"
            formula, numbers = f"{formula} = {frame.value:.6g}", ""
        return formula, numbers, total

    def _numbers(self, frame: Frame) -> str:
        """The numeric formula: every factor written as its cell writes it (``fmt.text``), so a term is found
        in the grids by its text; a scale the cells share (values ×10⁻²) is taken out of the sum once:
        ``z(3,4) = (0.52·30.50 + 1.00·(-12.68) + …)×10⁻² + 0.05 = 0.1234``. A live kernel of 0.305 was
        0.305 in the formula and 30.50 in its cell, the ×10⁻² in a small caption under the grid."""
        numbers = self.trace.formula(frame, numbers=True)
        if not frame.terms:  # a copy: its number is the token's
            return tidy_numbers(numbers)
        lhs = numbers.partition(" = ")[0]
        products = []
        for term in frame.terms:
            if term.inserted_zero:
                continue
            fa = self._format(term.a_source)
            text, exponent = _cell_number(fa, term.a_value), fa.exponent
            if term.b_source is not None:
                fb = self._format(term.b_source)
                text, exponent = f"{text}·{_cell_number(fb, term.b_value)}", exponent + fb.exponent
            products.append((text, exponent))
        parts = [tidy_numbers(signed_number(frame.carry, digits=6))] if frame.part[0] > 0 else []
        exponents = {exponent for _, exponent in products}
        keep = shown_terms(frame)  # a long sum: its largest products, "…" between
        if len(exponents) == 1 and exponents != {0}:
            sums = " + ".join(elide([text for text, _ in products], keep))
            parts.append(f"({sums})" + CellFormat(2, *exponents, False).suffix())
        else:  # one scale or none (a mix would be a new kind of grid; each term keeps its own factor then)
            parts += elide([text + CellFormat(2, exponent, False).suffix() for text, exponent in products], keep)
        if frame.has_bias:
            parts.append(tidy_numbers(signed_number(frame.carry, digits=6)))
        text = f"{lhs} = " + (" + ".join(parts) if parts else "0")
        if len(products) + (frame.part[0] > 0) + frame.has_bias > 1 or "·" in text:
            text += tidy_numbers(f" = {frame.value:.6g}")
        return text

    def _scale(self, frame: Frame) -> int:
        """n of the ×10ⁿ the numeric formula takes out of the frame's products (0 for none, or a mix)."""
        exponents = {sum(self._format(source).exponent for source in (term.a_source, term.b_source) if source)
                     for term in frame.terms if not term.inserted_zero}
        return exponents.pop() if len(exponents) == 1 else 0

    def _format(self, source) -> CellFormat:
        """The number format of the grid cell ``source`` (``(array, index)``) is drawn in."""
        name, index = source
        return self.style(name, () if name == "db" else tuple(index[2:]))[1]

    # ------------------------------------------------------------------ sums over channels
    def _partial_words(self, stage: str, last: int) -> str:
        """What a partial sum of a forward (input channels) or ∇a (output channels) cell holds, summed
        over channels 0..last: "input channels 0…3 + b", "output channel 0"."""
        bias = " + b" if stage == "forward" and self.trace.b is not None else ""
        return channels_text(_SUMMED[stage], last) + bias

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
                f"{f'({rest:.6g})' if rest < 0 else f'{rest:.6g}'} ({channels_text(_SUMMED[stage], n - 1, last + 1)})"
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
            "db": ("∇b = ∂L/∂b", f"{n_out} value" + ("s" if n_out > 1 else ""), "",
                   "one per output channel" if t.b is not None else "no bias here: what ∇b would be"),
        }
        title, shape, channel, caption = table[name]
        # In words: "kernel w: 3×3, input channel 0 → output channel 0" (the subtitle's "in 0 → out 0").
        axes = _CHANNEL_AXES[name]
        words = " → ".join(channels_text("input" if axis == "ci" else "output", ci if axis == "ci" else co)
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


def _cell_number(fmt: CellFormat, v: float) -> str:
    """``v`` as its cell writes it (see ``CellFormat.factor``: never "0.00" for a value that is not zero),
    negatives in parentheses so ``2·(-1)`` stays readable."""
    text = fmt.factor(v)
    return f"({text})" if text.startswith("-") else text
