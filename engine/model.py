"""Sequential model: named layers built from a JSON-able spec, losses, variants, save/load.

Shapes: inputs ``x: (N, *input_shape)`` (``(N, 28, 28, 1)`` for MNIST presets); outputs
``(N, K)`` logits for ``loss="softmax_cross_entropy"`` or ``(N, 1)`` sigmoid outputs for
``loss="l2"``. Parameters are reachable as ``"<layer>.<key>"`` (``"conv2.w"``, ``"dense1.b"``).
"""

import copy
import dataclasses
import json
import math
import os
import zipfile

import numpy as np

from engine import ops, parallel
from engine.atomic import atomic_write
from engine.data import DataFileError, read_npz, refuse_special_file
from engine.layers import Activation, AvgPool2D, Conv2D, Dense, Dropout, MaxPool2D, layer_from_spec

LOSSES = ("softmax_cross_entropy", "l2")
VARIANTS = (None, "broken_update", "transposed_pool")
VARIANT_LABELS = {
    "broken_update": "broken_update: seed 004's typo, the second conv kernel is updated with the "
                     "first conv kernel's gradient (averaged over its input channels, repeated over the "
                     "second's; the bias keeps its own)",
    "transposed_pool": "transposed_pool: seed 002's experiment, pooling backward transposes the "
                       "pooled derivative (and the max-pooling mask)",
}
SPEC_KEY = "__spec__"
TRAINED_WITH = "trained_with"  # spec entry of a saved model: Sequential.variant_labels()
SESSION_MANIFEST = "__session__"  # engine.session's manifest, named here to recognise a session file

# Size limits checked from the spec before anything is allocated: a corrupt or hostile model file
# must not make the app allocate gigabytes only to refuse the weights afterwards. VGG-7 has ~0.3M
# parameters and 12,544 numbers in its largest activation; these are ~200x / ~1,300x that.
MAX_PARAMS = 1 << 26
MAX_ACTIVATION = 1 << 24


class ModelFileError(ValueError):
    """A model file cannot be read or does not fit the model; the message names file and layer."""


def _activation_after(layers, index):
    """The activation function that follows weight layer ``index`` (before the next weight
    layer), or None: it decides between He and Glorot initialisation."""
    for layer in layers[index + 1:]:
        if isinstance(layer, Activation):
            return layer.fn
        if isinstance(layer, (Conv2D, Dense)):
            return None
    return None


def _param_count(layer, input_shape):
    """Parameters ``layer.build(input_shape, ...)`` will create (the weight layers' shapes:
    Conv2D ``(k, k, C_in, filters)`` + ``(filters,)``, Dense ``(n_in, units)`` + ``(units,)``)."""
    if isinstance(layer, Conv2D):
        return (layer.kernel * layer.kernel * int(input_shape[2]) + 1) * layer.filters
    if isinstance(layer, Dense):
        return (int(input_shape[0]) + 1) * layer.units
    return 0


def _check_sizes(layers, input_shape):
    """ValueError when the layers on ``input_shape`` would need more than MAX_PARAMS parameters or
    produce an activation above MAX_ACTIVATION numbers per sample; computed from shapes alone."""
    shape, total = tuple(input_shape), 0
    if any(d < 1 for d in shape) or math.prod(shape) > MAX_ACTIVATION:
        raise ValueError(f"input shape {shape} is empty or too large (at most {MAX_ACTIVATION:,} numbers)")
    for layer in layers:
        out = tuple(layer.output_shape(shape))  # raises on an input the layer cannot take
        total += _param_count(layer, shape)
        if total > MAX_PARAMS:
            raise ValueError(f"layer {layer.name!r}: the model would have over {MAX_PARAMS:,} parameters")
        shape = out
        if any(d < 1 for d in shape) or math.prod(shape) > MAX_ACTIVATION:
            raise ValueError(f"layer {layer.name!r}: output shape {shape} is empty or too large "
                             f"(at most {MAX_ACTIVATION:,} numbers per sample)")


def _held_bytes(obj, seen: set[int]) -> int:
    """Bytes of the NumPy memory reachable from ``obj`` through the engine's own objects (their
    attributes), dicts, lists and tuples; each block counted once (a view counts as the array it
    views). ``seen``: ids of what was visited."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        owner = obj
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        if owner is not obj:
            if id(owner) in seen:
                return 0
            seen.add(id(owner))
        return owner.nbytes
    if isinstance(obj, dict):
        return sum(_held_bytes(value, seen) for value in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_held_bytes(value, seen) for value in obj)
    if type(obj).__module__.startswith("engine.") and hasattr(obj, "__dict__"):
        return sum(_held_bytes(value, seen) for value in vars(obj).values())
    return 0


def take_trained_with(spec: dict) -> set:
    """The variants a saved spec (:meth:`Sequential.saved_spec`) says its weights were trained with,
    removed from ``spec``: it describes weights, not the architecture. ValueError when the entry is not
    a list of variants."""
    labels = spec.pop(TRAINED_WITH, [])
    if not isinstance(labels, list) or not all(label in VARIANT_LABELS for label in labels):
        raise ValueError(f"'{TRAINED_WITH}' must list backprop variants among {sorted(VARIANT_LABELS)}, "
                         f"got {labels!r}")
    return set(labels)


def _trained_with(spec, source):
    """:func:`take_trained_with` for a model file: ModelFileError naming ``source``."""
    try:
        return take_trained_with(spec)
    except ValueError as exc:
        raise ModelFileError(f"{source}: {exc}") from None


def _file_path(path) -> str:
    """A str path from a str, bytes or os.PathLike one, with ``~`` expanded (as a shell would)."""
    return os.path.expanduser(os.fsdecode(path))


@dataclasses.dataclass
class LayerDelta:
    """One sample through a model and back down to one layer (:meth:`Sequential.delta_at`): the
    layer's ``layer_input`` and ``layer_output``, ``delta`` = ∂L/∂layer_output (each ``(1, ...)``,
    the model's arrays: copy what you keep), the ``loss``, the class ``label`` it was taken against
    and ``proba: (K,)``, the class probabilities."""

    layer_input: np.ndarray
    layer_output: np.ndarray
    delta: np.ndarray
    loss: float
    label: int
    proba: np.ndarray


class Sequential:
    """A stack of layers built from ``spec`` (see engine/presets.py for the format).

    seed: initial weights and dropout masks are a deterministic function of it.
    dtype: float32 for training, float64 for gradient checks.
    """

    def __init__(self, spec, seed=0, dtype=np.float32):
        if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list) or not spec["layers"]:
            raise ValueError("a model spec is a dict with a non-empty 'layers' list")
        self.spec = copy.deepcopy(spec)
        self.name = self.spec.get("name", "model")
        if not isinstance(self.spec.get("input_shape"), (list, tuple)):
            raise ValueError("a model spec needs 'input_shape', e.g. [28, 28, 1]; "
                             f"got {self.spec.get('input_shape')!r}")
        self.input_shape = tuple(ops.whole_number(d, "input_shape") for d in self.spec["input_shape"])
        self.loss = self.spec.get("loss", "softmax_cross_entropy")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        self.seed = seed
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            # int weights were truncated to zero and every prediction came out 0.5
            raise TypeError(f"a model computes in float32 (training) or float64 (gradient checks), not {self.dtype}")
        self.layers = [layer_from_spec(s) for s in self.spec["layers"]]
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        self._by_name = dict(zip(names, self.layers))

        _check_sizes(self.layers, self.input_shape)
        rng = np.random.default_rng(seed)
        shape = self.input_shape
        self.shapes = []  # output shape of every layer, no batch axis
        for i, layer in enumerate(self.layers):
            init = "he" if _activation_after(self.layers, i) in ("relu", "softplus") else "glorot"
            shape = layer.build(shape, rng, self.dtype, init)
            self.shapes.append(tuple(shape))
        self.output_shape = self.shapes[-1]
        if self.loss == "l2" and self.output_shape != (1,):
            raise ValueError(f"loss 'l2' needs one output unit, the model outputs {self.output_shape}")
        if len(self.output_shape) != 1:
            raise ValueError(f"the last layer must output a vector, got {self.output_shape}")
        n_classes = 2 if self.loss == "l2" else self.output_shape[0]
        classes = self.spec.get("classes", list(range(n_classes)))
        if (not isinstance(classes, list) or len(classes) != n_classes
                or not all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in classes)):
            raise ValueError(f"'classes' must list {n_classes} class labels (numbers or names) for this "
                             f"model's outputs, got {classes!r}")
        self.classes = list(classes)

        # The input layer's dx has no consumer: skip computing it.
        first = self.layers[0]
        if hasattr(first, "need_dx"):
            first.need_dx = False
        self._variant = None
        # Variants these weights took optimiser steps with (engine.optim), here or before they were saved:
        # kept in their file, so weights a broken backward trained stay labelled wherever they are opened.
        self.trained_with = set()
        self._replicas = []  # layer lists for shards 1, 2, ...: see _shard_layers
        self._replica_workspaces = []  # per replica, {layer index: its own conv Workspace}
        self._forward_batch = None  # batch size of the forward pass backward() may follow, None: none may
        self._trained_shards = 1  # how many shards the last training batch was split into

    # ------------------------------------------------------------------ access by name

    def layer(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no layer named {name!r}; layers are {list(self._by_name)}") from None

    def params(self):
        """{"conv1.w": array, ...}: the live parameter arrays, in layer order."""
        return {f"{l.name}.{k}": v for l in self.layers for k, v in l.params.items()}

    def grads(self):
        """Gradients of the last backward, same keys as :meth:`params` (live arrays)."""
        return {f"{l.name}.{k}": v for l in self.layers for k, v in l.grads.items()}

    def param_groups(self):
        """{"conv": [names], "dense": [names]}: which learning rate applies to which parameter."""
        groups = {"conv": [], "dense": []}
        for layer in self.layers:
            if layer.group is not None:
                groups[layer.group].extend(f"{layer.name}.{k}" for k in layer.params)
        return groups

    def _conv_layers(self):
        return [layer for layer in self.layers if isinstance(layer, Conv2D)]

    # ------------------------------------------------------------------ variants

    @property
    def variant(self):
        """None (correct backprop), "broken_update" or "transposed_pool" (see VARIANT_LABELS)."""
        return self._variant

    @variant.setter
    def variant(self, value):
        if value not in VARIANTS:
            raise ValueError(f"unknown variant {value!r}; expected one of {VARIANTS}")
        if value == "broken_update":
            convs = self._conv_layers()
            if len(convs) < 2:
                raise ValueError("broken_update needs two conv layers")
            w1, w2 = convs[0].params["w"], convs[1].params["w"]
            if w1.shape[:2] != w2.shape[:2] or w1.shape[3] != w2.shape[3]:
                raise ValueError(f"broken_update needs conv kernels of equal size and filter count, "
                                 f"got {w1.shape} and {w2.shape}")
        pool_transposed = value == "transposed_pool"
        if pool_transposed:
            pools = [(l, s) for l, s in zip(self.layers, [self.input_shape] + self.shapes)
                     if isinstance(l, (AvgPool2D, MaxPool2D))]
            if not pools:
                raise ValueError("transposed_pool needs a pooling layer")
            for layer, in_shape in pools:
                if in_shape[0] != in_shape[1]:
                    raise ValueError(f"transposed_pool needs square maps, {layer.name} gets {in_shape}")
        for layer in self.layers:
            if isinstance(layer, (AvgPool2D, MaxPool2D)):
                layer.transposed = pool_transposed
        self._variant = value
        self._replicas = []  # rebuilt from the layers as they are now
        self._replica_workspaces = []
        self._trained_shards = 1

    def applied_grads(self):
        """The gradients the optimiser applies: :meth:`grads`, except that with the
        "broken_update" variant the second conv kernel gets the first one's gradient
        averaged over its input channels and broadcast over the second's input channels."""
        grads = self.grads()
        if self._variant == "broken_update":
            first, second = self._conv_layers()[:2]
            g1 = first.grads["w"]                                   # (k, k, C_in1, F)
            broadcast = np.broadcast_to(g1.mean(axis=2, keepdims=True), second.grads["w"].shape)
            grads[f"{second.name}.w"] = np.ascontiguousarray(broadcast)
        return grads

    # ------------------------------------------------------------------ computation

    def _check_input(self, x):
        """``x: (N, *input_shape)`` as this model's dtype; ValueError for another shape."""
        x = np.asarray(x, dtype=self.dtype)
        if x.shape[1:] != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise ValueError(f"model {self.name!r} expects inputs (N, {expected}), got {x.shape}")
        return x

    def delta_at(self, x, layer_name: str, label: int | None = None) -> "LayerDelta":
        """One sample ``x: input_shape`` forward in inference mode (no dropout: δ is a deterministic
        function of the weights and the sample), its loss against ``label`` (None: the predicted
        class, e.g. for a drawn digit) and back-propagation down to layer ``layer_name``'s output.
        Overwrites this model's caches and the gradients of the layers above it: views run it on a
        copy (:meth:`copy`), not on a model being trained or shown."""
        layer = self.layer(layer_name)
        out = self._check_input(np.asarray(x)[None])                # (1, *input_shape)
        self._forward_batch = None  # from the first layer on: a failure half-way must not leave it set
        for current in self.layers:
            if current is layer:
                layer_input = out
            out = current.forward(out, training=False)
            if current is layer:
                layer_output = out
        proba = self.proba_from_output(out)[0]                     # (K,)
        label = int(proba.argmax()) if label is None else int(label)
        loss, delta = self.loss_from_output(out, np.array([label]))
        for current in reversed(self.layers):
            if current is layer:
                break
            delta = current.backward(delta)                         # ends as ∂L/∂(layer's output)
        return LayerDelta(layer_input, layer_output, delta, float(loss), label, proba)

    def forward(self, x, training=False):
        """x: (N, *input_shape) -> output (N, K). ``training`` enables dropout. The layers keep
        what :meth:`backward` needs, until the next pass through them: :meth:`predict_proba`,
        :meth:`infer`, :meth:`intermediates` and :meth:`delta_at` are passes too."""
        x = self._check_input(x)
        self._forward_batch = None  # while the layers are half-way through this batch
        out = self._run(self.layers, x, training)
        self._forward_batch = len(x)
        return out

    def backward(self, dout):
        """Propagate dL/dout (N, K) through every layer, filling the gradients. Must follow the
        :meth:`forward` of the same batch directly (RuntimeError otherwise: the layers' caches would
        hold another batch's values, and the gradients would silently be that batch's)."""
        if self._forward_batch is None:
            raise RuntimeError("backward() needs the forward() of the same batch just before it: no forward "
                               "ran yet, or predict_proba/infer/intermediates/delta_at ran since and replaced "
                               "what backward reads; call forward(x) again")
        if np.shape(dout)[:1] != (self._forward_batch,):
            raise ValueError(f"dout must have the last forward's batch of {self._forward_batch}, "
                             f"got shape {np.shape(dout)}")
        self._backprop(self.layers, dout)

    def loss_from_output(self, out, labels):
        """Loss and dL/dout for outputs (N, K) and labels (N,) (class indices; for "l2" the
        index 0/1 is the target value of the sigmoid output)."""
        if self.loss == "l2":
            labels = np.asarray(labels)
            if labels.shape != (len(out),) or labels.dtype.kind not in "iu" or not np.isin(labels, (0, 1)).all():
                # the sigmoid output was trained towards 2 or -1 without a word
                raise ValueError(f"an L2 model's labels are class indices 0 or 1, one per output: got "
                                 f"{labels.dtype} labels of shape {labels.shape}"
                                 + (f" with values {sorted(set(labels.ravel().tolist()) - {0, 1})[:5]}"
                                    if labels.dtype.kind in "iu" else ""))
            return ops.l2_cost(out, labels.reshape(-1, 1))
        return ops.softmax_cross_entropy(out, labels)

    def loss_and_grads(self, x, labels):
        """Forward in training mode, loss, backward. Returns (loss: float, out: (N, K)).

        x: (N, *input_shape); labels: (N,). With :func:`engine.parallel.set_threads` a large batch is
        split into shards, computed concurrently or one after the other (see :mod:`engine.parallel`
        and :meth:`_shard_layers`); the loss and gradients are those of the whole batch either way
        (equal up to float rounding).
        """
        x = self._check_input(x)
        bounds, concurrent = self._shards(len(x))
        self._trained_shards = len(bounds)
        if len(bounds) == 1:
            out = self.forward(x, training=True)
            loss, dout = self.loss_from_output(out, labels)
            self.backward(dout)
            return loss, out
        self._forward_batch = None  # the layers hold the first shard only
        labels = np.asarray(labels)
        if labels.shape[:1] != x.shape[:1]:
            raise ValueError(f"labels must have shape ({len(x)},), got {labels.shape}")

        def shard_step(layers, start, stop):
            out = self._run(layers, x[start:stop], training=True)
            loss, dout = self.loss_from_output(out, labels[start:stop])
            self._backprop(layers, dout)
            return loss, out

        parts = parallel.run_sharded([
            (lambda layers=layers, bound=bound: shard_step(layers, *bound))
            for layers, bound in zip(self._shard_layers(len(bounds), concurrent), bounds)], concurrent)
        # Each shard's loss and gradients are means over its own samples: weight them by size.
        weights = [(stop - start) / len(x) for start, stop in bounds]
        for i, layer in enumerate(self.layers):
            for key, grad in layer.grads.items():
                grad *= weights[0]
                for replica, weight in zip(self._replicas, weights[1:]):
                    grad += weight * replica[i].grads[key]
        loss = sum(weight * part_loss for weight, (part_loss, _) in zip(weights, parts))
        return float(loss), np.concatenate([out for _, out in parts])

    def infer(self, x):
        """Outputs (N, K) for x (N, *input_shape) in inference mode, split into shards like
        :meth:`loss_and_grads`. Unlike :meth:`forward`, no backward may follow."""
        x = self._check_input(x)
        bounds, concurrent = self._shards(len(x))
        self._forward_batch = None  # this pass replaces what backward would read
        if len(bounds) == 1:
            return self._run(self.layers, x, training=False)
        # Passes one after the other need no replicas: nothing is kept for a backward pass.
        layer_lists = self._shard_layers(len(bounds), concurrent) if concurrent else [self.layers] * len(bounds)
        parts = parallel.run_sharded([
            (lambda layers=layers, start=start, stop=stop: self._run(layers, x[start:stop], training=False))
            for layers, (start, stop) in zip(layer_lists, bounds)], concurrent)
        return np.concatenate(parts)

    def _shards(self, n):
        """:func:`engine.parallel.shard_plan` for a batch of n: (bounds, concurrent); a single shard for
        models with dropout, whose masks come from one shared generator (splitting would make runs
        irreproducible)."""
        if any(isinstance(layer, Dropout) for layer in self.layers):
            return [(0, n)], False
        return parallel.shard_plan(n)

    def trained_twins(self, name):
        """The layer ``name`` and its replicas that ran the other shards of the last training batch
        (just the layer when that batch was not split): their forward caches together hold the
        whole batch, e.g. for statistics over its activations."""
        index = [layer.name for layer in self.layers].index(name)
        return [layers[index] for layers in [self.layers] + self._replicas[:self._trained_shards - 1]]

    def _shard_layers(self, count, concurrent):
        """Layer lists for ``count`` shards: this model's own layers first, then replicas that share
        the parameter arrays (updated in place, so never stale) but keep their own forward caches
        and gradients. Shards run ``concurrent``-ly need scratch buffers (conv workspaces) of their
        own too; shards run one after the other share this model's, still warm in the CPU caches
        from the previous pass (VGG-7 training on one thread 1.2x faster than with buffers each).
        Replicas and their own workspaces are kept for the next steps."""
        while len(self._replicas) < count - 1:
            self._replicas.append([copy.copy(layer) for layer in self.layers])  # shares params, hyper-parameters
            self._replica_workspaces.append({i: ops.Workspace() for i, layer in enumerate(self.layers)
                                             if isinstance(layer, Conv2D)})
            for layer, twin in zip(self.layers, self._replicas[-1]):
                twin.grads = {key: np.zeros_like(g) for key, g in layer.grads.items()}
        for replica, workspaces in zip(self._replicas, self._replica_workspaces):
            for i, (layer, twin) in enumerate(zip(self.layers, replica)):
                twin.params = layer.params  # a layer's params may have been replaced by a new dict
                if i in workspaces:
                    twin._workspace = workspaces[i] if concurrent else layer._workspace
        return [self.layers] + self._replicas[:count - 1]

    @staticmethod
    def _run(layers, x, training):
        """``x: (N, *input_shape)`` through ``layers`` (a layer list of this model or of a replica): the
        last layer's output, e.g. (N, K)."""
        for layer in layers:
            x = layer.forward(x, training)
        return x

    @staticmethod
    def _backprop(layers, dout):
        """dL/dout back through ``layers``, filling their gradients (see :meth:`backward`)."""
        d = dout
        for i in range(len(layers) - 1, -1, -1):
            if i == 0 and not layers[i].params:
                break  # nothing to learn and no one wants the input gradient
            d = layers[i].backward(d)

    def proba_from_output(self, out):
        """Class probabilities (N, num_classes) from raw outputs (N, K)."""
        if self.loss == "l2":
            p = np.clip(out[:, 0], 0.0, 1.0)
            return np.stack([1.0 - p, p], axis=1)
        return ops.softmax(out)

    def predict_proba(self, x, batch_size=256):
        """x: (N, *input_shape) -> class probabilities (N, num_classes), in inference mode, ``batch_size``
        images at a time. Its passes replace what :meth:`backward` needs (see :meth:`forward`)."""
        batch_size = ops.whole_number(batch_size, "batch_size")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        x = self._check_input(x)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), self.dtype)
        parts = [self.proba_from_output(self.infer(x[i:i + batch_size]))
                 for i in range(0, len(x), batch_size)]
        return np.concatenate(parts)

    def predict(self, x, batch_size=256):
        """x: (N, *input_shape) -> predicted class index (N,)."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def intermediates(self, x):
        """Every layer's output for ONE sample, without the batch axis, as copies.

        x: input_shape or (1, *input_shape). Returns {"input": x, "<layer>": output, ...}
        in layer order (e.g. "conv1": (28, 28, 16), "flatten": (1568,)). The layers' caches (e.g.
        ``MaxPool2D.mask``) then hold this sample: no :meth:`backward` may follow.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.shape == self.input_shape:
            x = x[None]
        x = self._check_input(x)
        if len(x) != 1:
            raise ValueError(f"intermediates takes one sample, got {len(x)}")
        result = {"input": x[0].copy()}
        self._forward_batch = None
        out = x
        for layer in self.layers:
            out = layer.forward(out, False)
            result[layer.name] = out[0].copy()
        return result

    # ------------------------------------------------------------------ description

    def summary_rows(self):
        """[{"name", "kind", "output_shape", "params"}] per layer; params is a count."""
        return [{"name": layer.name, "kind": layer.kind, "output_shape": shape,
                 "params": int(sum(p.size for p in layer.params.values()))}
                for layer, shape in zip(self.layers, self.shapes)]

    def num_params(self):
        return int(sum(p.size for p in self.params().values()))

    def summary(self):
        """Human-readable table of layers, output shapes and parameter counts."""
        rows = self.summary_rows()
        lines = [f"Model {self.name!r}: input {self.input_shape}, loss {self.loss}"]
        if self._variant is not None:
            lines.append(f"VARIANT {VARIANT_LABELS[self._variant]}")
        earlier = self.trained_with - {self._variant}
        if earlier:
            lines.append(f"weights trained with the variant(s) {', '.join(sorted(earlier))}")
        lines.append(f"{'layer':<12}{'kind':<12}{'output shape':<16}{'params':>10}")
        for row in rows:
            shape = str(row["output_shape"])
            lines.append(f"{row['name']:<12}{row['kind']:<12}{shape:<16}{row['params']:>10,}")
        lines.append(f"total parameters: {self.num_params():,}")
        return "\n".join(lines)

    def __repr__(self):
        variant = f", variant={self._variant!r}" if self._variant else ""
        return f"Sequential({self.name!r}, {len(self.layers)} layers, {self.num_params()} params{variant})"

    # ------------------------------------------------------------------ weights and files

    def normalized_spec(self):
        """The spec with every layer's defaults filled in: the architecture (:meth:`saved_spec`, what
        :meth:`save` stores, adds the variants behind the weights)."""
        return {**copy.deepcopy(self.spec), "layers": [layer.spec() for layer in self.layers]}

    def saved_spec(self):
        """:meth:`normalized_spec` plus the variants behind the weights, when there are any (what weights
        and session files store; :func:`take_trained_with` reads them back)."""
        spec = self.normalized_spec()
        labels = self.variant_labels()
        if labels:
            spec[TRAINED_WITH] = labels
        return spec

    def variant_labels(self):
        """Sorted names of the variants behind these weights: :attr:`trained_with` and the variant set now
        (a session reopened from a variant's run has taken no step yet)."""
        return sorted(self.trained_with | {self._variant} - {None})

    def get_weights(self):
        """Copies of every parameter, keyed like :meth:`params`."""
        return {name: value.copy() for name, value in self.params().items()}

    def training_bytes_per_image(self) -> int:
        """The memory this architecture holds per image of a batch once it has trained on it
        (activations, caches, scratch buffers: 1.64 MiB for VGG-7 in float32): the difference between
        two copies that took one training step, on 2 images and on 1. Counted from the copies' own
        arrays, so other threads' allocations do not enter it; memory in flight during a step and the
        allocator's overhead add ~10% (see ``engine.trainer.MEMORY_MARGIN``)."""
        held = []
        for n in (1, 2):
            probe = self.copy()
            probe.loss_and_grads(np.zeros((n, *self.input_shape), self.dtype), np.zeros(n, np.int64))
            held.append(_held_bytes(probe, set()))
        return held[1] - held[0]

    def copy(self, dtype=None) -> "Sequential":
        """A new model with this one's spec, seed, weights and variants, sharing nothing with it
        (e.g. for another thread to read); ``dtype`` casts the weights (default: this model's)."""
        twin = Sequential(self.spec, seed=self.seed, dtype=self.dtype if dtype is None else dtype)
        twin.set_weights(self.params())
        twin.variant = self.variant
        twin.trained_with = set(self.trained_with)
        return twin

    def _check_weights(self, weights, source):
        """Raise ModelFileError (naming ``source`` and the layer) unless ``weights`` has
        exactly this model's parameter names and shapes."""
        params = self.params()
        for name, live in params.items():
            layer = name.split(".", 1)[0]
            if name not in weights:
                raise ModelFileError(f"{source}: layer {layer!r}: parameter {name!r} is missing")
            shape = np.shape(weights[name])
            if shape != live.shape:
                raise ModelFileError(f"{source}: layer {layer!r}: parameter {name!r} has shape {shape}, "
                                     f"the model expects {live.shape}")
        extra = sorted(set(weights) - set(params))
        if extra:
            layer = extra[0].split(".", 1)[0]
            raise ModelFileError(f"{source}: layer {layer!r}: unexpected parameter(s) {extra}")
        for name, value in weights.items():
            if np.asarray(value).dtype.kind != "f":
                raise ModelFileError(f"{source}: layer {name.split('.', 1)[0]!r}: parameter {name!r} "
                                     f"has dtype {np.asarray(value).dtype}, expected floating point")
            if not np.isfinite(value).all():
                raise ModelFileError(f"{source}: layer {name.split('.', 1)[0]!r}: parameter {name!r} "
                                     f"contains NaN or infinity")

    def set_weights(self, weights, source="weights"):
        """Copy ``weights`` ({name: array}) into the live parameters, all or nothing.

        Raises ModelFileError (a ValueError) naming the layer on a missing, extra or
        mis-shaped entry, leaving the model untouched.
        """
        self._check_weights(weights, source)
        # Checked again as this model's dtype: 1e300 in float64 is finite, and inf in float32.
        with np.errstate(over="ignore"):
            cast = {name: np.asarray(value, dtype=self.dtype) for name, value in weights.items()}
        for name, value in cast.items():
            if not np.isfinite(value).all():
                raise ModelFileError(f"{source}: layer {name.split('.', 1)[0]!r}: parameter {name!r} has values "
                                     f"beyond {self.dtype}'s range")
        for name, live in self.params().items():
            live[...] = cast[name]

    def save(self, path):
        """Write spec (JSON under "__spec__") and weights to an .npz, atomically: a temporary
        file in the same directory is renamed over ``path`` only once complete."""
        path = _file_path(path)
        arrays = self.get_weights()
        arrays[SPEC_KEY] = np.array(json.dumps(self.saved_spec()))
        with atomic_write(path, suffix=".npz.tmp") as f:
            np.savez(f, **arrays)

    @staticmethod
    def read_file(path):
        """Read a model file. Returns (spec dict, {name: array}); raises ModelFileError
        naming the file if it is missing, not an npz, truncated or has no valid spec.

        Members are parsed by :func:`engine.data.read_npz` (no pickle, every header checked
        against the data that follows, sizes bounded), so a damaged file fails here cleanly."""
        source = _file_path(path)
        refuse_special_file(source, ModelFileError)
        try:
            with zipfile.ZipFile(source) as archive:
                names = archive.namelist()
        except FileNotFoundError:
            raise ModelFileError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise ModelFileError(f"{source}: is a folder, not a weights file") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelFileError(f"{source}: not a readable ConvScope model (.npz) file: {exc}") from None
        others = [name for name in names if not name.endswith(".npy")]
        if others:
            raise ModelFileError(f"{source}: not a ConvScope model file: unexpected member(s) {others[:3]}")
        try:
            arrays = read_npz(source, [name[:-4] for name in names])
        except DataFileError as exc:  # its message starts with the file name
            raise ModelFileError(str(exc)) from None
        if SPEC_KEY not in arrays:
            if SESSION_MANIFEST in arrays:
                raise ModelFileError(f"{source}: a ConvScope session, not a weights file (open it with "
                                     "File > Open session in the app)")
            raise ModelFileError(f"{source}: no model spec ('{SPEC_KEY}') in the file")
        spec_array = arrays.pop(SPEC_KEY)
        if spec_array.dtype.kind != "U" or spec_array.ndim != 0:
            raise ModelFileError(f"{source}: the model spec is not a JSON string")
        try:
            spec = json.loads(str(spec_array))
        except (ValueError, RecursionError) as exc:  # RecursionError: nested absurdly deep
            raise ModelFileError(f"{source}: the model spec is not valid JSON: {exc}") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
            raise ModelFileError(f"{source}: the model spec has no layer list")
        return spec, arrays

    @classmethod
    def load(cls, path):
        """Build the model a file describes and load its weights (dtype taken from the file)."""
        source = _file_path(path)
        spec, weights = cls.read_file(source)
        trained_with = _trained_with(spec, source)
        dtypes = {a.dtype for a in weights.values()}
        dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float32)
        if dtype.kind != "f":
            dtype = np.dtype(np.float32)  # set_weights then names the parameter that is not floating point
        try:
            model = cls(spec, dtype=dtype)
        except (ValueError, KeyError, TypeError, OverflowError, MemoryError, RecursionError) as exc:
            raise ModelFileError(f"{source}: invalid model spec: {exc}") from None
        model.set_weights(weights, source)
        model.trained_with = trained_with
        return model

    def load_weights(self, path):
        """Load weights from a file saved from the same architecture.

        The file's layer specs must match this model's; otherwise (or on any shape mismatch)
        raise ModelFileError naming the file and the first differing layer, model untouched.
        """
        source = _file_path(path)
        spec, weights = self.read_file(source)
        trained_with = _trained_with(spec, source)
        if spec.get("input_shape") != list(self.input_shape):
            raise ModelFileError(f"{source}: input shape {spec.get('input_shape')} differs from the "
                                 f"model's {list(self.input_shape)}")
        if spec.get("classes", self.classes) != self.classes:  # same layers, other digits: outputs mean other things
            raise ModelFileError(f"{source}: its outputs are the classes {spec['classes']}, the model's are "
                                 f"{self.classes}")
        mine = [layer.spec() for layer in self.layers]
        theirs = spec["layers"]
        for i in range(max(len(mine), len(theirs))):
            a = mine[i] if i < len(mine) else None
            b = theirs[i] if i < len(theirs) else None
            name = (a or {}).get("name") or (b.get("name") if isinstance(b, dict) else None) or f"#{i + 1}"
            try:
                b = layer_from_spec(b).spec() if b is not None else None  # defaults filled in
            except (ValueError, TypeError, OverflowError) as exc:
                raise ModelFileError(f"{source}: layer {name!r}: invalid spec in the file: {exc}") from None
            if a != b:
                raise ModelFileError(f"{source}: layer {name!r} differs: the file has {b}, the model has {a}")
        self.set_weights(weights, source)
        self.trained_with = trained_with
