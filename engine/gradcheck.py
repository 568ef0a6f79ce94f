"""Gradient checking: the gradient a training step applies vs central finite differences of the loss.

Used by ``python -m engine gradcheck`` and by the app's gradient-check view. The check runs on a
float64 copy of the model (same weights, same variant, dropout switched off so the loss is a
deterministic function of the weights), so the caller's model is never touched and a float32 model
can be checked too. What is compared is ``model.applied_grads()``: for a correct backward that is
the true gradient and every relative error is tiny; for seed 004's ``broken_update`` the
``conv2.w`` entries are far off, which is the point of the lesson.

Kinks: ReLU and max pooling make the loss piecewise smooth. If nudging a weight by +-eps moves
any ReLU input across 0 or any max-pool winner, the central difference straddles a kink and
measures a mix of two slopes, not the gradient (with ~10^5 ReLUs in VGG-7 this happens often at
eps = 1e-5). Every finite difference therefore compares the on/off pattern of all ReLUs and the
max-pool masks with the unperturbed pass, retries with eps / 10 down to ``MIN_EPS``, and when a
kink remains flags the row (``kink=True``); flagged rows are left out of the per-parameter errors.

Relative error of one entry: ``|a - n| / max(|a| + |n|, FLOOR)``; of a parameter (several sampled
entries): ``||a - n|| / max(||a|| + ||n||, FLOOR)``. The floor keeps entries whose gradient is
(almost) zero, where both numbers are rounding noise, from reporting a meaningless large error.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np

from engine.layers import Activation, MaxPool2D
from engine.model import Sequential

# Float64 step. Truncation error ~EPS**2; rounding error ~1e-16 / EPS, since the loss is computed from
# O(1) intermediates (log-sum-exp) whatever its size. A trained model's gradients on well-classified
# images are ~1e-7, so 1e-6 would leave relative errors near 1e-4 from rounding alone; 1e-5 keeps both
# terms small, and the kink retries below shrink it where needed.
EPS = 1e-5
MIN_EPS = 1e-8  # smallest retry step (rounding error ~1e-8 absolute): only where kinks leave no choice
FLOOR = 1e-8
# The loss's own rounding grows with its size: a diverged model's loss of ~4,000 puts ~1e-7 of noise
# on each finite difference at EPS, more than a small gradient. A row's ``noise`` is this many machine
# epsilons of max(|L|, 1), divided by the step: a difference below it says nothing about the backward.
ROUNDING_ULPS = 10


@dataclasses.dataclass(frozen=True)
class GradCheckRow:
    """One checked entry: ``param`` ("conv2.w"), ``index`` (a tuple into that array), the analytic
    (applied) and numeric gradients, their relative error, the finite-difference step used, and
    ``kink``: True when every step tried crossed a ReLU/max-pool kink (numeric is then unreliable);
    ``noise``: the rounding noise of ``numeric`` (see ROUNDING_ULPS)."""

    param: str
    index: tuple
    analytic: float
    numeric: float
    rel_err: float
    eps: float
    kink: bool
    noise: float = 0.0

    @property
    def within_noise(self) -> bool:
        """The two gradients differ by less than the finite difference's rounding noise."""
        return abs(self.analytic - self.numeric) <= self.noise


def relative_error(analytic, numeric) -> float:
    """``||a - n|| / max(||a|| + ||n||, FLOOR)`` for scalars or arrays of entries."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    scale = np.linalg.norm(a) + np.linalg.norm(n)
    return float(np.linalg.norm(a - n) / max(scale, FLOOR))


def float64_copy(model, bias_jitter: float = 0.0, rng: np.random.Generator | None = None) -> Sequential:
    """A float64 copy of ``model`` with the same weights and variant and every dropout rate 0.

    ``bias_jitter`` > 0 adds N(0, bias_jitter**2) noise to every bias (see :func:`check_model`)."""
    spec = copy.deepcopy(model.spec)
    for layer in spec["layers"]:
        if layer.get("type") == "Dropout":
            layer["rate"] = 0.0
    twin = Sequential(spec, seed=0, dtype=np.float64)
    twin.set_weights({name: p.astype(np.float64) for name, p in model.params().items()})
    twin.variant = model.variant
    if bias_jitter > 0:
        rng = np.random.default_rng(0) if rng is None else rng
        for name, p in twin.params().items():
            if name.endswith(".b"):
                p += rng.normal(0.0, bias_jitter, p.shape)
    return twin


def sample_entries(model, per_param: int | None = None, total: int | None = None,
                   rng: np.random.Generator | None = None) -> list[tuple[str, tuple]]:
    """Random ``(param, index)`` pairs, without repeats, grouped by parameter in model order:
    ``per_param`` entries of every parameter (all of a smaller one), or ``total`` entries spread over
    the parameters: one of every parameter first (of ``total`` parameters drawn at random when there
    are more), then each further one from a parameter drawn uniformly, so the small bias vectors are
    represented too. Deterministic for a given ``rng`` state."""
    if (per_param is None) == (total is None):
        raise ValueError("give exactly one of per_param and total")
    rng = np.random.default_rng(0) if rng is None else rng
    params = model.params()
    if per_param is not None:
        chosen = {name: rng.choice(p.size, size=min(per_param, p.size), replace=False)
                  for name, p in params.items()}
    else:
        picked = {name: set() for name in params}

        def pick(name):
            free = np.setdiff1d(np.arange(params[name].size), list(picked[name]))
            picked[name].add(int(free[rng.integers(free.size)]))

        # Drawing every entry's parameter at random left whole layers unchecked (dense1.w and dense1.b
        # in 20 draws over VGG-7's 14 parameters) while the result read as "the whole model passes".
        first = list(params)
        if total < len(first):
            first = [first[i] for i in sorted(rng.choice(len(first), total, replace=False))]
        for name in first:
            pick(name)
        for _ in range(min(total, sum(p.size for p in params.values())) - len(first)):
            open_names = [name for name in params if len(picked[name]) < params[name].size]
            pick(open_names[rng.integers(len(open_names))])
        chosen = {name: sorted(flat) for name, flat in picked.items() if flat}
    return [(name, tuple(int(i) for i in np.unravel_index(flat, params[name].shape)))
            for name, flats in chosen.items() for flat in flats]


def _loss_and_kinks(model, x, labels):
    """Training-mode loss on (x, labels) and the side of every kink: a list of boolean arrays,
    each ReLU's input > 0 and each max pool's mask, in layer order."""
    out, sides = x, []
    for layer in model.layers:
        if isinstance(layer, Activation) and layer.fn == "relu":
            sides.append(out > 0)
        out = layer.forward(out, training=True)
        if isinstance(layer, MaxPool2D):
            sides.append(layer.mask > 0)
    return model.loss_from_output(out, labels)[0], sides


def _same_sides(a, b) -> bool:
    """Whether two sequences of arrays (any shapes, pairwise) are equal, element by element."""
    return all(np.array_equal(p, q) for p, q in zip(a, b))


def check_entries(model, x: np.ndarray, labels: np.ndarray, entries, eps: float = EPS,
                  bias_jitter: float = 0.0, seed: int = 0, progress=None) -> list[GradCheckRow]:
    """Compare applied and numeric gradients at ``entries`` (``[(param, index), ...]``; index a
    tuple or a flat int) for the loss on the batch ``x: (N, *input_shape)``, ``labels: (N,)``.
    ``model`` is not modified; ``bias_jitter`` and ``seed``: see :func:`check_model`. ``progress(i, n,
    param)``, when given, is called as the i-th of the n entries (counting from 1) is started."""
    twin = float64_copy(model, bias_jitter, np.random.default_rng(seed))
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1:] != twin.input_shape:
        raise ValueError(f"inputs must be (N, {', '.join(map(str, twin.input_shape))}), got {x.shape}")
    labels = np.asarray(labels)
    twin.loss_and_grads(x, labels)
    applied = {name: g.copy() for name, g in twin.applied_grads().items()}
    params = twin.params()
    base_loss, base_sides = _loss_and_kinks(twin, x, labels)
    rounding = ROUNDING_ULPS * np.finfo(np.float64).eps * max(abs(float(base_loss)), 1.0)

    def nudged(arr, index, delta):
        old = arr[index]
        arr[index] = old + delta
        try:
            return _loss_and_kinks(twin, x, labels)
        finally:
            arr[index] = old

    rows = []
    for i, (name, index) in enumerate(entries, 1):
        if progress is not None:
            progress(i, len(entries), name)
        if name not in params:
            raise KeyError(f"no parameter named {name!r}; parameters are {list(params)}")
        arr = params[name]
        flat = np.isscalar(index) or np.ndim(index) == 0
        index = tuple(int(i) for i in (np.unravel_index(int(index), arr.shape) if flat else index))
        step = eps
        while True:
            up, up_sides = nudged(arr, index, step)
            down, down_sides = nudged(arr, index, -step)
            kink = not (_same_sides(up_sides, base_sides) and _same_sides(down_sides, base_sides))
            if not kink or step / 10 < MIN_EPS * 0.999:
                break
            step /= 10
        numeric = (up - down) / (2 * step)
        analytic = float(applied[name][index])
        rows.append(GradCheckRow(name, index, analytic, numeric, relative_error(analytic, numeric), step, kink,
                                 rounding / step))
    return rows


def param_errors(rows) -> dict[str, float]:
    """Per parameter, the relative error of all its kink-free entries together (see module doc);
    NaN for a parameter whose every checked entry sat on a kink."""
    grouped = {}
    for row in rows:
        grouped.setdefault(row.param, [])
        if not row.kink:
            grouped[row.param].append(row)
    return {name: relative_error([r.analytic for r in rs], [r.numeric for r in rs]) if rs else float("nan")
            for name, rs in grouped.items()}


def check_model(model, x: np.ndarray, labels: np.ndarray, per_param: int = 6, seed: int = 0, eps: float = EPS,
                bias_jitter: float = 0.0, progress=None) -> tuple[dict[str, float], list[GradCheckRow]]:
    """Check ``per_param`` random entries (drawn with ``seed``) of every parameter, on the loss of
    ``x: (N, *input_shape)`` against ``labels: (N,)``. Returns ({param: rel_err}, rows).

    ``bias_jitter``: at initialisation every bias is 0, so wherever the input is exactly 0 (the
    black MNIST background) every ReLU input is exactly 0 too: the checked point sits on a kink for
    every bias, whose finite differences then measure the mean of two one-sided slopes. Checking a
    freshly built model needs its biases moved off 0 first (e.g. ``bias_jitter=0.01`` adds
    N(0, 0.01**2) to every bias of the float64 copy). ``progress``: see :func:`check_entries`."""
    entries = sample_entries(model, per_param=per_param, rng=np.random.default_rng(seed))
    rows = check_entries(model, x, labels, entries, eps, bias_jitter, seed, progress)
    return param_errors(rows), rows
