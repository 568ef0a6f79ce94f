"""Optimisers that update a Sequential's parameters in place with ``model.applied_grads()``.

Parameters are split into the model's groups ("conv", "dense"), each with its own learning
rate (seed 004 trains conv and dense layers at different rates); ``opt.lrs`` is a plain dict
a schedule may change between steps. Weight decay is the L2 penalty ``weight_decay * w``
added to the gradient of kernels and dense weights only (biases are not decayed).
Buffers (momentum, Adam moments) have each parameter's shape and dtype.
"""

import math

import numpy as np

OPTIMIZERS = ("sgd", "adam")
# A usual learning rate of each (the app's and the CLI's default for both groups): SGD's 0.05 would make
# Adam take steps of ~0.05 per weight from the start, and VGG-7 stalls at 10% or diverges.
DEFAULT_LRS = {"sgd": 0.05, "adam": 0.001}
GROUPS = ("conv", "dense")


def checked(what, value, low=0.0, below=math.inf, above_low=False):
    """``value`` as a float when it is finite and in [low, below) (or (low, below) with ``above_low``),
    else ValueError naming ``what``: a NaN learning rate or a beta of 1 turned every weight into NaN in
    one step."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and (number > low if above_low else number >= low) and number < below):
        bounds = f"{'>' if above_low else '>='} {low:g}" + ("" if below == math.inf else f" and < {below:g}")
        raise ValueError(f"{what} must be a finite number {bounds}, got {value!r}")
    return number


class Optimizer:
    """Shared bookkeeping: groups, learning rates, decay, step count, state save/restore."""

    name = None
    _buffer_names = ()
    # hyper-parameter -> (low, below, above_low) for checked(): what hyper() returns and load_state_dict sets
    _bounds = {"weight_decay": (0.0, math.inf, False)}

    def __init__(self, model, lr_conv, lr_dense, weight_decay=0.0):
        self.model = model
        self.lrs = self._checked_lrs({"conv": lr_conv, "dense": lr_dense})
        self.weight_decay = checked("weight_decay", weight_decay)
        self.group_of = {p: g for g, names in model.param_groups().items() for p in names}
        self.t = 0  # steps taken
        self.buffers = {b: {name: np.zeros_like(value) for name, value in model.params().items()}
                        for b in self._buffer_names}

    def _gradient(self, name, param, grad):
        """The gradient including weight decay (a new array only when decay applies)."""
        if self.weight_decay and name.endswith(".w"):
            return grad + self.weight_decay * param
        return grad

    @staticmethod
    def _checked_lrs(lrs):
        """{"conv": lr, "dense": lr} as floats, each finite and >= 0 (ValueError otherwise)."""
        if not isinstance(lrs, dict) or set(lrs) != set(GROUPS):
            raise ValueError(f"learning rates are a dict with the keys {list(GROUPS)}, got {lrs!r}")
        return {group: checked(f"the {group} learning rate", lrs[group]) for group in GROUPS}

    def step(self):
        """Apply one update to every parameter from ``model.applied_grads()``. ``lrs`` may have been
        changed since the last step (a schedule does): it is checked first."""
        self.lrs = self._checked_lrs(self.lrs)
        self.t += 1
        grads = self.model.applied_grads()
        for name, param in self.model.params().items():
            lr = self.lrs[self.group_of[name]]
            self._update(name, param, self._gradient(name, param, grads[name]), param.dtype.type(lr))
        if self.model.variant is not None:
            self.model.trained_with.add(self.model.variant)

    def _update(self, name, param, grad, lr):
        raise NotImplementedError

    def hyper(self):
        return {"weight_decay": self.weight_decay}

    def state_dict(self):
        """A copy of everything needed to resume: hyper-parameters, lrs, step count, buffers."""
        return {"name": self.name, "lrs": dict(self.lrs), "t": self.t, "hyper": self.hyper(),
                "buffers": {b: {n: v.copy() for n, v in bufs.items()} for b, bufs in self.buffers.items()}}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` output; checks optimiser type and buffer shapes first."""
        if state.get("name") != self.name:
            raise ValueError(f"state is for optimiser {state.get('name')!r}, this is {self.name!r}")
        buffers = state["buffers"]
        for b, bufs in self.buffers.items():
            if set(buffers.get(b, {})) != set(bufs):
                raise ValueError(f"optimiser state buffer {b!r} does not match the model's parameters")
            for n, v in bufs.items():
                if np.shape(buffers[b][n]) != v.shape:
                    raise ValueError(f"optimiser state {b}[{n!r}] has shape {np.shape(buffers[b][n])}, "
                                     f"expected {v.shape}")
        lrs = self._checked_lrs(state["lrs"])
        hyper = state["hyper"]
        if set(hyper) != set(self._bounds):
            raise ValueError(f"optimiser state has the settings {sorted(hyper)}, "
                             f"{self.name} has {sorted(self._bounds)}")
        hyper = {key: checked(key, value, *self._bounds[key]) for key, value in hyper.items()}
        t = int(state["t"])
        if t < 0:
            raise ValueError(f"optimiser state has {t} steps")
        for b, bufs in self.buffers.items():
            for n, v in bufs.items():
                v[...] = buffers[b][n]
        self.lrs, self.t = lrs, t
        for key, value in hyper.items():
            setattr(self, key, value)


class SGD(Optimizer):
    """SGD with (heavy-ball) momentum, PyTorch's form: ``v = momentum * v + g; w -= lr * v``."""

    name = "sgd"
    _buffer_names = ("velocity",)

    _bounds = {**Optimizer._bounds, "momentum": (0.0, 1.0, False)}

    def __init__(self, model, lr_conv, lr_dense, momentum=0.0, weight_decay=0.0):
        self.momentum = checked("momentum", momentum, *self._bounds["momentum"])
        super().__init__(model, lr_conv, lr_dense, weight_decay)

    def hyper(self):
        return {**super().hyper(), "momentum": self.momentum}

    def _update(self, name, param, grad, lr):
        if self.momentum:
            v = self.buffers["velocity"][name]
            v *= param.dtype.type(self.momentum)
            v += grad
            grad = v
        param -= lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; L2 weight decay added to the gradient."""

    name = "adam"
    _buffer_names = ("m", "v")

    _bounds = {**Optimizer._bounds, "beta1": (0.0, 1.0, False), "beta2": (0.0, 1.0, False),
               "eps": (0.0, math.inf, True)}

    def __init__(self, model, lr_conv, lr_dense, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.beta1, self.beta2, self.eps = (checked(key, value, *self._bounds[key])
                                            for key, value in (("beta1", beta1), ("beta2", beta2), ("eps", eps)))
        super().__init__(model, lr_conv, lr_dense, weight_decay)

    def hyper(self):
        return {**super().hyper(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _update(self, name, param, grad, lr):
        m, v = self.buffers["m"][name], self.buffers["v"][name]
        dt = param.dtype.type
        m *= dt(self.beta1)
        m += dt(1 - self.beta1) * grad
        v *= dt(self.beta2)
        v += dt(1 - self.beta2) * (grad * grad)
        # fold both bias corrections into the step size: lr * sqrt(1-b2^t) / (1-b1^t)
        step = dt(lr * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t))
        eps_hat = dt(self.eps * np.sqrt(1 - self.beta2 ** self.t))
        param -= step * m / (np.sqrt(v) + eps_hat)


def make_optimizer(name, model, lr_conv, lr_dense, momentum=0.0, weight_decay=0.0):
    """``"sgd"`` (uses momentum) or ``"adam"`` (has its own betas; momentum is ignored)."""
    if name == "sgd":
        return SGD(model, lr_conv, lr_dense, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(model, lr_conv, lr_dense, weight_decay=weight_decay)
    raise ValueError(f"unknown optimiser {name!r}; expected one of {OPTIMIZERS}")
