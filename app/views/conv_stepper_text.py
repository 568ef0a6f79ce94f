"""The conv stepper's words: stage titles, what each stage does (with a trace's numbers), and the formula
lines under the grids (symbolic, numeric and the products) as text or HTML with subscripts.

Split from ``app.views.conv_stepper``; :class:`app.views.conv_stepper_scene.SceneBuilder` puts these texts
into a scene, the canvas draws them.
"""
from __future__ import annotations

import html
import re

from app.views.cell_format import CellFormat
from engine.text import elide, plural
from engine.trace import ConvTrace, Frame

STAGE_TITLES = {
    "forward": "Forward · z = a ⊛ w + b",
    "dilate": "Backward · dilate δ for the stride",
    "pad": "Backward · pad δ with k−1 zeros",
    "rotate": "Backward · rotate the kernel by 180°",
    "input_grad": "Backward · ∇a = padded δ ⊛ rot180(w)",
    "crop": "Backward · crop the forward padding",
    "weight_grad": "Backward · ∇w = padded a ⊛ dilated δ",
    "bias_grad": "Backward · ∇b = Σ δ",
}
STAGE_SHORT = {"forward": "Forward z", "dilate": "Dilate δ", "pad": "Pad δ", "rotate": "Rotate w",
               "input_grad": "∇a", "crop": "Crop ∇a", "weight_grad": "∇w", "bias_grad": "∇b"}

# The first backward stage introduces δ: a learner met "δ" here with no word on what it is or where it came from.
DELTA_INTRO = ("δ = ∂L/∂z says how much the loss would change if each output z changed; backpropagation hands it "
               "to this layer from the layers after it.")
DELTA_ORIGIN = {  # by ConvTrace.dy_origin
    "given": "Here it is made up (small, simple numbers) so the arithmetic is easy to follow.",
    "loss": "Here it is the real one, from this sample's loss.",
    "variant": "Here it is what the transposed_pool variant's wrong pooling backward delivers: not the true ∂L/∂z.",
}

_FLOAT_RE = re.compile(r"\d+\.\d+(?:e[-+]?\d+)?")
_NEGATIVE_ZERO_RE = re.compile(r"(?<![\w.])-0(?![\w.])")


def tidy_numbers(text: str) -> str:
    """A numeric formula for reading: decimals to 4 significant digits, "-0" (a zero times a
    negative number) as "0"."""
    return _NEGATIVE_ZERO_RE.sub("0", _FLOAT_RE.sub(lambda m: f"{float(m[0]):.4g}", text))


def channels_text(kind: str, last: int, first: int = 0) -> str:
    """Channels ``first..last`` of one kind ("input" or "output") in words: "input channel 0",
    "output channels 0…3" (channels count from 0, as in the app's other views)."""
    return f"{kind} channel {first}" if first == last else f"{kind} channels {first}…{last}"


def signed_number(v: float, digits: int = 4) -> str:
    """A number for the products line (``digits`` significant digits) or a sum no grid cell shows (the bias,
    a carried partial sum), negatives in parentheses so ``2·(-1)`` stays readable."""
    text = f"{v + 0.0:.{digits}g}"  # + 0.0 turns -0.0 (e.g. 0·(-2)) into 0
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
        text = DELTA_INTRO + " " + DELTA_ORIGIN[trace.dy_origin] + " "
        if sh == 1 and sw == 1:
            text += "Stride 1: the kernel stopped at every position, so δ is copied with no zeros in between."
        else:
            text += (f"δ is dilated: s−1 = {sh - 1} zero(s) between values because stride {sh} skipped those "
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
    if trace.b is None:  # e.g. seed 001's examples, Custom with Bias unchecked: say what ∇b would be
        if n_out == 1:
            return (f"This convolution has no bias; if it had one, its gradient would be Σ δ = "
                    f"{float(trace.db[0]) + 0.0:.6g}, as it would be added to every output z of its channel and so "
                    "collect all their δ.")
        return ("This convolution has no bias; if it had one per output channel, each one's gradient would be "
                "the Σ δ of its channel's outputs (the grid), as it would be added to every output z of its channel.")
    return "∇b = Σ δ: the bias was added to every output z of its channel, so its gradient is the sum of their δ."


def unreached_note(trace: ConvTrace, symbol: str) -> str:
    """Why an input cell of the ∇a stage sums nothing: no forward window covered it (the dilate stage's
    left-over row/column, or a gap a stride wider than the kernel skipped)."""
    sh, sw = trace.stride
    stride = f"stride {sh}" if sh == sw else f"stride {sh}×{sw}"
    why = f" ({stride} skipped it)" if sh > 1 or sw > 1 else ""
    return (f"{symbol}: no window covered this cell{why}, so it had no effect on z and its gradient is 0 — "
            "every δ it meets here is an inserted zero.")


def padding_caption(trace: ConvTrace) -> str:
    """The input grid's caption: its zero padding on each side, and why SAME's may be uneven."""
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


SHOWN_TERMS = 10  # a longer sum shows its largest products only


def shown_terms(frame: Frame) -> list[int] | None:
    """The products a long sum writes: the indices (among the products written, those without a zero
    inserted by padding or dilation) of the :data:`SHOWN_TERMS` largest in magnitude, in their order; None
    when the sum is short enough to write whole. A live layer's first 8 and last 2 were all background
    zeros, hiding every product that made the sum."""
    products = [abs(term.product) for term in frame.terms if not term.inserted_zero]
    if len(products) <= SHOWN_TERMS + 1:
        return None
    largest = sorted(range(len(products)), key=lambda i: (-products[i], i))[:SHOWN_TERMS]
    return sorted(largest)


def terms_note(frame: Frame) -> str:
    """What the sums under the grids leave out, in words: the products skipped at "…" in a long sum, and
    separately those with a zero inserted by padding or dilation (never written: they add nothing)."""
    written = sum(not term.inserted_zero for term in frame.terms)
    inserted = len(frame.terms) - written
    notes = []
    keep = shown_terms(frame)
    if keep is not None:
        nonzero = sum(term.product != 0 for term in frame.terms)
        notes.append(f"the {len(keep)} largest of {written} products; the other {written - len(keep)} are at …, "
                     f"{nonzero} of all {len(frame.terms)} are not zero")
    if inserted:
        zero = "a padding zero" if frame.stage == "forward" else "a padding or dilation zero"
        notes.append(f"{plural(inserted, 'product')} with {zero} not written")
    return "   (" + "; ".join(notes) + ")" if notes else ""


def products_line(frame: Frame, exponent: int = 0) -> str:
    """The products' values and the running sum: ``1 + 0 + 1 + … = 4``; '' for a copy. With ``exponent``
    the products are written ×10**-exponent in parentheses with the factor after them, as in the numeric
    formula: ``(15.86 + 0 + …)×10⁻² + 0.0045 = 0.16`` (the formula's 0.52·30.50 is 15.86 here, not 0.1586).
    A long sum shows the products the formulas show (:func:`shown_terms`), and :func:`terms_note` says
    what is left out."""
    if not frame.terms:
        return ""
    keep = shown_terms(frame)
    products = elide([signed_number(term.product / 10.0 ** exponent)
                      for term in frame.terms if not term.inserted_zero], keep)
    parts = [signed_number(frame.carry)] if frame.part[0] > 0 else []
    if exponent:
        parts.append("(" + " + ".join(products) + ")" + CellFormat(2, exponent, False).suffix())
    else:
        parts += products
    if frame.has_bias:
        parts.append(signed_number(frame.carry))
    label = "products" if frame.part[0] == 0 else "sum so far + products"
    return f"{label}:  " + " + ".join(parts) + f"  =  {frame.value:.6g}" + terms_note(frame)
