"""The networks of the seed articles as plain, JSON-able specs.

- ``vgg7`` (seed 004, the default): seven weight layers, ReLU convs, average pooling, tanh and
  arctan dense layers, softmax + cross-entropy over the ten digits.
- ``tiny8x8`` (seed 002): 8x8 digits, 0 vs 1; two zero-padded 3x3 conv layers (2 then 4
  channels) each with an activation and 2x2 max pooling, dense 16 -> 28 -> 36 -> 1, an activation
  after each of the five weight layers, a different one each (relu, arctan; softplus, tanh, sigmoid),
  L2 cost.
- ``seed003`` (seed 003): the article's layer kinds, one of each: conv + ReLU + max pooling +
  dropout + flatten + dense + softmax on 28x28 MNIST (32 3x3 SAME filters, dropout 0.25, dense
  6272 -> 10). The article gives no sizes: these are ours.

Widths (filter and unit counts) are keyword arguments of :func:`get_preset`, named after the
layer they size: ``get_preset("vgg7", conv1=8, dense1=64)``.
"""

import copy

import numpy as np

from engine.model import Sequential

DIGITS = list(range(10))


def _conv(name, filters, kernel=3, padding="SAME"):
    return {"type": "Conv2D", "name": name, "filters": filters, "kernel": kernel, "stride": 1,
            "padding": padding}


def _act(name, fn):
    return {"type": "Activation", "name": name, "fn": fn}


def _dense(name, units):
    return {"type": "Dense", "name": name, "units": units}


def _vgg7(w):
    return {
        "name": "vgg7", "input_shape": [28, 28, 1], "classes": DIGITS, "loss": "softmax_cross_entropy",
        "layers": [
            _conv("conv1", w["conv1"]), _act("relu1", "relu"),
            _conv("conv2", w["conv2"]), _act("relu2", "relu"),
            {"type": "AvgPool2D", "name": "pool1", "size": 2},
            _conv("conv3", w["conv3"]), _act("relu3", "relu"),
            _conv("conv4", w["conv4"]), _act("relu4", "relu"),
            {"type": "AvgPool2D", "name": "pool2", "size": 2},
            {"type": "Flatten", "name": "flatten"},
            _dense("dense1", w["dense1"]), _act("tanh", "tanh"),
            _dense("dense2", w["dense2"]), _act("arctan", "arctan"),
            _dense("dense3", 10),  # logits; softmax is fused with the cross-entropy
        ],
    }


def _tiny8x8(w):
    return {
        "name": "tiny8x8", "input_shape": [8, 8, 1], "classes": [0, 1], "loss": "l2",
        "layers": [
            _conv("conv1", w["conv1"]), _act("relu1", "relu"),
            {"type": "MaxPool2D", "name": "pool1", "size": 2},
            _conv("conv2", w["conv2"]), _act("arctan2", "arctan"),
            {"type": "MaxPool2D", "name": "pool2", "size": 2},
            {"type": "Flatten", "name": "flatten"},
            _dense("dense1", w["dense1"]), _act("softplus3", "softplus"),
            _dense("dense2", w["dense2"]), _act("tanh4", "tanh"),
            _dense("dense3", 1), _act("sigmoid5", "sigmoid"),
        ],
    }


def _seed003(w):
    return {
        "name": "seed003", "input_shape": [28, 28, 1], "classes": DIGITS, "loss": "softmax_cross_entropy",
        "layers": [
            _conv("conv1", w["conv1"]), _act("relu1", "relu"),
            {"type": "MaxPool2D", "name": "pool1", "size": 2},
            {"type": "Dropout", "name": "drop1", "rate": 0.25},
            {"type": "Flatten", "name": "flatten"},
            _dense("dense1", 10),
        ],
    }


# name -> (builder, default widths)
_BUILDERS = {
    "vgg7": (_vgg7, {"conv1": 16, "conv2": 16, "conv3": 32, "conv4": 32, "dense1": 128, "dense2": 64}),
    "tiny8x8": (_tiny8x8, {"conv1": 2, "conv2": 4, "dense1": 28, "dense2": 36}),
    "seed003": (_seed003, {"conv1": 32}),
}

PRESETS = {name: builder(widths) for name, (builder, widths) in _BUILDERS.items()}
DEFAULT_PRESET = "vgg7"


def preset_widths(name):
    """The adjustable widths of a preset and their defaults, e.g. {"conv1": 16, ...}."""
    return dict(_lookup(name)[1])


def _lookup(name):
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(_BUILDERS)}") from None


def get_preset(name, **widths):
    """A fresh spec dict for preset ``name`` with some widths changed (positive ints)."""
    builder, defaults = _lookup(name)
    unknown = sorted(set(widths) - set(defaults))
    if unknown:
        raise ValueError(f"preset {name!r} has no width(s) {unknown}; it has {sorted(defaults)}")
    for key, value in widths.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"width {key} must be a positive int, got {value!r}")
    return copy.deepcopy(builder({**defaults, **{k: int(v) for k, v in widths.items()}}))


def build(name_or_spec=DEFAULT_PRESET, seed=0, dtype=np.float32):
    """A Sequential from a preset name or a spec dict."""
    spec = get_preset(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    return Sequential(spec, seed=seed, dtype=dtype)
