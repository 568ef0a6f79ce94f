"""Layers of a Sequential model: thin stateful wrappers around :mod:`engine.ops`.

Every layer has ``name``, ``kind`` (its class name), ``params`` and ``grads`` (dicts keyed
``"w"``/``"b"``, empty for parameter-free layers), ``group`` (the optimiser's parameter group:
``"conv"``, ``"dense"`` or None), ``forward(x, training=False) -> y``, ``backward(dy) -> dx``,
``output_shape(input_shape) -> shape`` (shapes without the batch axis) and ``spec() -> dict``
(JSON-able, enough to rebuild the layer with :func:`layer_from_spec`).

Parameters are created by ``build(input_shape, rng, dtype, init)`` once the input shape is known;
the model calls it in order and chooses ``init`` ("he" or "glorot") from the activation that
follows each weight layer. ``forward`` keeps references (no copies) to what ``backward`` needs.
"""

import math

import numpy as np

from engine import ops

INITS = ("he", "glorot")


def _init_weights(rng, shape, fan_in, fan_out, init, dtype):
    """He normal (std sqrt(2 / fan_in), keeps ReLU activations' variance; softplus too, a smooth
    ReLU) or Glorot uniform (limit sqrt(6 / (fan_in + fan_out)), for tanh/arctan/sigmoid/identity)."""
    if init == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif init == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=shape)
    else:
        raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
    return w.astype(dtype)


class Layer:
    """Base class: a parameter-free layer that needs no building."""

    group = None

    def __init__(self, name):
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"layer name must be a non-empty string without '.', got {name!r}")
        self.name = name
        self.params = {}
        self.grads = {}

    @property
    def kind(self):
        return type(self).__name__

    def _hyper(self):
        """Hyper-parameters that, with type and name, make up the spec."""
        return {}

    def spec(self):
        return {"type": self.kind, "name": self.name, **self._hyper()}

    def build(self, input_shape, rng, dtype, init=None):
        """Create parameters for ``input_shape`` (no batch axis); return the output shape."""
        return self.output_shape(input_shape)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        """x: a batch (N, ...) -> this layer's output (N, ...); keeps what :meth:`backward` needs
        (references, not copies) until the next forward. ``training`` enables dropout."""
        raise NotImplementedError

    def backward(self, dy):
        """dy = dL/d(output of the last forward), that output's shape -> dL/d(its input), the input's
        shape (None where nobody needs it); parameter gradients go into ``grads``."""
        raise NotImplementedError

    def _forward_ran(self, cached):
        """``cached`` (what forward kept), or RuntimeError when no forward has run yet."""
        if cached is None:
            raise RuntimeError(f"{self.name}: backward() before any forward()")
        return cached

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{self.kind}({self.name!r}{', ' if hyper else ''}{hyper})"


class Conv2D(Layer):
    """Convolution with bias. x: (N, H, W, C_in) -> (N, H_out, W_out, filters).

    params: w (kernel, kernel, C_in, filters), b (filters,). ``need_dx`` is set False by the
    model on the first layer, whose input gradient nobody uses.
    """

    group = "conv"

    def __init__(self, name, filters, kernel=3, stride=1, padding="SAME"):
        super().__init__(name)
        self.filters = ops.whole_number(filters, f"{name}: filters")
        self.kernel = ops.whole_number(kernel, f"{name}: kernel")
        self.stride = ops.normalize_stride(stride)
        (t, b), (l, r) = ops.resolve_padding((1, 1), (1, 1), 1, padding)  # a wrong one refused now, not at build
        if not isinstance(padding, str):  # explicit amounts kept in one JSON form: an int or lists
            padding = t if isinstance(padding, (int, np.integer)) else [[t, b], [l, r]]
        self.padding = padding
        if self.filters < 1 or self.kernel < 1:
            raise ValueError(f"{name}: filters and kernel must be positive")
        self.need_dx = True
        self._x = self._cache = None
        self._workspace = ops.Workspace()  # scratch buffers reused by every forward/backward

    def _hyper(self):
        stride = self.stride[0] if self.stride[0] == self.stride[1] else list(self.stride)
        return {"filters": self.filters, "kernel": self.kernel, "stride": stride, "padding": self.padding}

    def _pads(self, input_shape):
        return ops.resolve_padding(input_shape[:2], (self.kernel, self.kernel), self.stride, self.padding)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: Conv2D needs an (H, W, C) input, got {tuple(input_shape)}")
        h, w = ops.conv_output_hw(input_shape[:2], (self.kernel, self.kernel), self.stride,
                                  self._pads(input_shape))
        return (h, w, self.filters)

    def build(self, input_shape, rng, dtype, init="he"):
        out = self.output_shape(input_shape)
        c_in, k, f = input_shape[2], self.kernel, self.filters
        self.params = {
            "w": _init_weights(rng, (k, k, c_in, f), k * k * c_in, k * k * f, init, dtype),
            "b": np.zeros(self.filters, dtype),
        }
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        return out

    def forward(self, x, training=False):
        self._x = None  # not this x until its pass succeeded: a failed one left the layer half-updated
        y, self._cache = ops.conv2d_forward(x, self.params["w"], self.params["b"], self.stride,
                                            self._pads(x.shape[1:]), self._workspace)
        self._x = x
        return y

    def backward(self, dy):
        x = self._forward_ran(self._x)
        dx, dw, db = ops.conv2d_backward(dy, x, self.params["w"], self.stride, self._pads(x.shape[1:]),
                                         need_dx=self.need_dx, cache=self._cache, workspace=self._workspace)
        self.grads["w"][...] = dw
        self.grads["b"][...] = db
        return dx


class Dense(Layer):
    """Fully connected layer. x: (N, n_in) -> (N, units); params w (n_in, units), b (units,)."""

    group = "dense"

    def __init__(self, name, units):
        super().__init__(name)
        self.units = ops.whole_number(units, f"{name}: units")
        if self.units < 1:
            raise ValueError(f"{name}: units must be positive")
        self.need_dx = True
        self._x = None

    def _hyper(self):
        return {"units": self.units}

    def output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"{self.name}: Dense needs a flat (n,) input, got {tuple(input_shape)}; "
                             "add a Flatten")
        return (self.units,)

    def build(self, input_shape, rng, dtype, init="glorot"):
        out = self.output_shape(input_shape)
        n_in = input_shape[0]
        self.params = {
            "w": _init_weights(rng, (n_in, self.units), n_in, self.units, init, dtype),
            "b": np.zeros(self.units, dtype),
        }
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        return out

    def forward(self, x, training=False):
        n_in = self.params["w"].shape[0]
        if np.ndim(x) != 2 or np.shape(x)[1] != n_in:
            raise ValueError(f"{self.name}: Dense takes a batch of flat inputs (N, {n_in}), got shape {np.shape(x)}")
        self._x = x
        return x @ self.params["w"] + self.params["b"]

    def backward(self, dy):
        # dy: (N, units); grads are written into the existing arrays so views stay valid
        np.matmul(self._forward_ran(self._x).T, dy, out=self.grads["w"])
        self.grads["b"][...] = dy.sum(axis=0)
        return dy @ self.params["w"].T if self.need_dx else None


class Activation(Layer):
    """Element-wise activation ``fn`` (one of ops.ACTIVATIONS); any shape in and out."""

    def __init__(self, name, fn):
        super().__init__(name)
        if fn not in ops.ACTIVATIONS:
            raise ValueError(f"{name}: unknown activation {fn!r}; expected one of {ops.ACTIVATIONS}")
        self.fn = fn
        self._z = self._a = None

    def _hyper(self):
        return {"fn": self.fn}

    def forward(self, x, training=False):
        self._z = x
        self._a = ops.activation(self.fn, x)
        return self._a

    def backward(self, dy):
        return ops.activation_backward(self.fn, dy, self._forward_ran(self._z), self._a)


class _Pool2D(Layer):
    """Shared shape logic of the pooling layers: (N, H, W, C) -> (N, H // size, W // size, C).

    ``transposed`` (set by the model for the "transposed_pool" variant) makes backward use
    seed 002's wrong routing.
    """

    def __init__(self, name, size=2):
        super().__init__(name)
        self.size = ops.whole_number(size, f"{name}: pool size")
        if self.size < 1:
            raise ValueError(f"{name}: pool size must be positive")
        self.transposed = False

    def _hyper(self):
        return {"size": self.size}

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: pooling needs an (H, W, C) input, got {tuple(input_shape)}")
        h, w, c = input_shape
        if h < self.size or w < self.size:
            raise ValueError(f"{self.name}: cannot pool {h}x{w} with {self.size}x{self.size} windows")
        return (h // self.size, w // self.size, c)


class AvgPool2D(_Pool2D):
    """Average pooling over non-overlapping size x size windows."""

    def __init__(self, name, size=2):
        super().__init__(name, size)
        self._x_shape = None

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return ops.avgpool2d(x, self.size)

    def backward(self, dy):
        return ops.avgpool2d_backward(dy, self._forward_ran(self._x_shape), self.size, transposed=self.transposed)


class MaxPool2D(_Pool2D):
    """Max pooling; ``mask`` (N, H, W, C) keeps the last forward's argmax mask (pooling view)."""

    def __init__(self, name, size=2):
        super().__init__(name, size)
        self.mask = None

    def forward(self, x, training=False):
        y, self.mask = ops.maxpool2d(x, self.size)
        return y

    def backward(self, dy):
        return ops.maxpool2d_backward(dy, self._forward_ran(self.mask), self.size, transposed=self.transposed)


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C) in row-major NHWC order."""

    def __init__(self, name):
        super().__init__(name)
        self._x_shape = None

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: that fails for an empty batch

    def backward(self, dy):
        return dy.reshape(self._forward_ran(self._x_shape))


class Dropout(Layer):
    """Inverted dropout: in training each unit is zeroed with probability ``rate`` and the rest
    scaled by 1 / (1 - rate), so inference is the identity. Any shape in and out.

    The mask generator comes from ``build`` (seeded by the model) so runs are reproducible.
    """

    IDENTITY = 1.0  # the "mask" of an inference (or rate-0) forward

    def __init__(self, name, rate=0.5):
        super().__init__(name)
        self.rate = float(rate)
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"{name}: dropout rate must be in [0, 1), got {rate!r}")
        self.rng = np.random.default_rng(0)
        self._mask = None  # no forward yet; IDENTITY after a forward that dropped nothing

    def _hyper(self):
        return {"rate": self.rate}

    def build(self, input_shape, rng, dtype, init=None):
        self.rng = np.random.default_rng(rng.integers(2**63))
        return self.output_shape(input_shape)

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._mask = self.IDENTITY
            return x
        keep = self.rng.random(x.shape) >= self.rate
        self._mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate)
        return x * self._mask

    def backward(self, dy):
        mask = self._forward_ran(self._mask)
        return dy if mask is self.IDENTITY else dy * mask


LAYER_TYPES = {cls.__name__: cls
               for cls in (Conv2D, AvgPool2D, MaxPool2D, Flatten, Dense, Dropout, Activation)}


def layer_from_spec(spec):
    """Build an (unbuilt) layer from its spec dict, e.g. ``{"type": "Dense", "name": "d1", "units": 10}``."""
    if not isinstance(spec, dict) or "type" not in spec or "name" not in spec:
        raise ValueError(f"a layer spec needs 'type' and 'name', got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    cls = LAYER_TYPES.get(spec["type"])
    if cls is None:
        raise ValueError(f"layer {spec['name']!r}: unknown type {spec['type']!r}; "
                         f"expected one of {sorted(LAYER_TYPES)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"layer {spec['name']!r}: bad spec {spec!r} ({exc})") from None
