"""The engine against PyTorch autograd (float64): ops on random configurations, and whole
training steps of the presets with identical weights. Skipped cleanly without torch."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine import ops
from engine.optim import make_optimizer
from engine.presets import build, get_preset

torch = pytest.importorskip("torch")
F = torch.nn.functional

HYPOTHESIS = settings(max_examples=60, deadline=None, derandomize=True, database=None)
TORCH_ACT = {"relu": torch.relu, "softplus": F.softplus, "tanh": torch.tanh, "arctan": torch.atan,
             "sigmoid": torch.sigmoid, "identity": lambda z: z}


def nchw(a):
    """(N, H, W, C) numpy -> (N, C, H, W) float64 tensor that records gradients."""
    return torch.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)), dtype=torch.float64,
                        requires_grad=True)


def nhwc(t):
    """(N, C, H, W) tensor -> (N, H, W, C) numpy."""
    return t.detach().permute(0, 2, 3, 1).numpy()


def torch_pads(in_hw, k_hw, stride, padding):
    """((t, b), (l, r)) written out from the TensorFlow rule, independently of engine.ops."""
    if padding == "VALID":
        return ((0, 0), (0, 0))
    if padding == "SAME":
        pads = []
        for size, k, s in zip(in_hw, k_hw, stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    return padding


def torch_conv(x, w, b, stride, pads):
    """x: (N, C_in, H, W) tensor; w: (C_out, C_in, kh, kw); pads ((t, b), (l, r)) via F.pad,
    which is how asymmetric SAME padding is expressed in PyTorch."""
    (t, bo), (l, r) = pads
    return F.conv2d(F.pad(x, (l, r, t, bo)), w, b, stride=stride)


def close(ours, theirs, rtol=1e-10):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    scale = max(np.abs(theirs).max(initial=0.0), 1e-300)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)


# --------------------------------------------------------------------------- ops


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    pair = st.tuples(st.integers(0, 2), st.integers(0, 2))
    padding = draw(st.one_of(st.sampled_from(["VALID", "SAME"]), st.integers(0, 2), st.tuples(pair, pair)))
    (t, b), (l, r) = torch_pads((h, w), (kh, kw), stride, padding)
    assume(h + t + b >= kh and w + l + r >= kw)
    return dict(n=draw(st.integers(1, 3)), c_in=draw(st.integers(1, 3)), c_out=draw(st.integers(1, 3)),
                h=h, w=w, kh=kh, kw=kw, stride=stride, padding=padding, seed=draw(st.integers(0, 2**16)))


@HYPOTHESIS
@given(conv_cases())
def test_conv2d_and_backward_match_torch(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["h"], case["w"], case["c_in"]))
    w = rng.standard_normal((case["kh"], case["kw"], case["c_in"], case["c_out"]))
    b = rng.standard_normal(case["c_out"])
    stride, padding = case["stride"], case["padding"]
    y = ops.conv2d(x, w, b, stride, padding)

    xt = nchw(x)
    wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)   # (C_out, C_in, kh, kw)
    bt = torch.tensor(b, requires_grad=True)
    yt = torch_conv(xt, wt, bt, stride, torch_pads(x.shape[1:3], w.shape[:2], stride, padding))
    close(y, nhwc(yt))

    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
    dx, dw, db = ops.conv2d_backward(dy, x, w, stride, padding)
    close(dx, nhwc(xt.grad))
    close(dw, wt.grad.permute(2, 3, 1, 0))
    close(db, bt.grad)


@HYPOTHESIS
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 3),
       size=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_pooling_matches_torch(n, h, w, c, size, seed):
    assume(h >= size and w >= size)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    y_max, mask = ops.maxpool2d(x, size)
    y_avg = ops.avgpool2d(x, size)
    dy = rng.standard_normal(y_max.shape)
    dyt = torch.tensor(dy.transpose(0, 3, 1, 2).copy())
    for ours, fn, backward in [(y_max, F.max_pool2d, lambda: ops.maxpool2d_backward(dy, mask, size)),
                               (y_avg, F.avg_pool2d, lambda: ops.avgpool2d_backward(dy, x.shape, size))]:
        xt = nchw(x)
        yt = fn(xt, size)  # stride = size, floor mode: leftovers dropped
        close(ours, nhwc(yt))
        yt.backward(dyt)
        close(backward(), nhwc(xt.grad))


@pytest.mark.parametrize("name", ops.ACTIVATIONS)
def test_activations_match_torch(name):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 6)) * 3
    da = rng.standard_normal(z.shape)
    zt = torch.tensor(z, requires_grad=True)
    at = TORCH_ACT[name](zt)
    at.backward(torch.tensor(da))
    a = ops.activation(name, z)
    close(a, at)
    close(ops.activation_backward(name, da, z, a), zt.grad)


@pytest.mark.parametrize("n,k,scale", [(1, 2, 1.0), (5, 10, 3.0), (8, 3, 300.0)])
def test_losses_match_torch(n, k, scale):
    rng = np.random.default_rng(k)
    logits = rng.standard_normal((n, k)) * scale
    labels = rng.integers(0, k, size=n)
    lt = torch.tensor(logits, requires_grad=True)
    loss_t = F.cross_entropy(lt, torch.tensor(labels))
    loss_t.backward()
    loss, dlogits = ops.softmax_cross_entropy(logits, labels)
    close(loss, loss_t)
    close(dlogits, lt.grad)

    pred = rng.random((n, 1))
    target = rng.integers(0, 2, size=n).astype(np.float64)
    pt = torch.tensor(pred, requires_grad=True)
    l2_t = 0.5 * ((pt[:, 0] - torch.tensor(target)) ** 2).sum() / n
    l2_t.backward()
    l2, dpred = ops.l2_cost(pred, target)
    close(l2, l2_t)
    close(dpred, pt.grad)


# --------------------------------------------------------------------------- whole models


def torch_params(model):
    """The engine's parameters as float64 leaf tensors, same names."""
    return {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in model.params().items()}


def torch_forward(model, params, x):
    """The engine model's architecture rebuilt from its layers with torch ops.

    x: (N, H, W, C) numpy; returns the output tensor (N, K). Dropout reuses the mask the
    engine drew in its last training forward so both see the same network.
    """
    h = torch.tensor(x.astype(np.float64).transpose(0, 3, 1, 2).copy())    # NCHW
    for layer in model.layers:
        kind = layer.kind
        if kind == "Conv2D":
            w = params[f"{layer.name}.w"].permute(3, 2, 0, 1)                  # (C_out, C_in, kh, kw)
            pads = torch_pads(tuple(h.shape[2:]), (layer.kernel, layer.kernel), layer.stride, layer.padding)
            h = torch_conv(h, w, params[f"{layer.name}.b"], layer.stride, pads)
        elif kind == "Activation":
            h = TORCH_ACT[layer.fn](h)
        elif kind == "AvgPool2D":
            h = F.avg_pool2d(h, layer.size)
        elif kind == "MaxPool2D":
            h = F.max_pool2d(h, layer.size)
        elif kind == "Flatten":
            h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # the engine flattens NHWC
        elif kind == "Dense":
            h = h @ params[f"{layer.name}.w"] + params[f"{layer.name}.b"]
        elif kind == "Dropout":
            mask = layer._mask
            if mask is not None:
                mask = torch.tensor(mask.astype(np.float64))
                h = h * (mask.permute(0, 3, 1, 2) if mask.ndim == 4 else mask)
        else:
            raise AssertionError(f"no torch translation for {kind}")
    return h


def torch_loss(model, out, labels):
    if model.loss == "l2":
        return 0.5 * ((out[:, 0] - torch.tensor(labels, dtype=torch.float64)) ** 2).sum() / len(labels)
    return F.cross_entropy(out, torch.tensor(labels))


def relative_error(ours, theirs):
    theirs = theirs.detach().numpy()
    return float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-300))


@pytest.mark.parametrize("preset,dtype,tol", [
    ("vgg7", np.float64, 1e-10), ("vgg7", np.float32, 1e-4),
    ("tiny8x8", np.float64, 1e-10), ("seed003", np.float64, 1e-10)])
def test_training_step_matches_torch(preset, dtype, tol):
    """Same weights and batch: loss and every gradient agree (the issue asks 1e-4 relative in
    float64; float64 actually agrees to rounding, and float32 still meets 1e-4)."""
    model = build(preset, seed=3, dtype=dtype)
    rng = np.random.default_rng(1)
    x = rng.random((4, *model.input_shape))
    labels = rng.integers(0, len(model.classes), size=4)
    params = torch_params(model)
    loss, out = model.loss_and_grads(x, labels)

    out_t = torch_forward(model, params, x)
    loss_t = torch_loss(model, out_t, labels)
    loss_t.backward()
    assert abs(loss - loss_t.item()) <= tol * abs(loss_t.item())
    assert relative_error(out, out_t) <= tol
    for name, grad in model.grads().items():
        assert relative_error(grad, params[name].grad) <= tol, name


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimiser_steps_match_torch(name):
    """Two vgg7 steps with separate conv/dense learning rates, momentum/weight decay for SGD."""
    model = build(get_preset("vgg7", conv1=4, conv2=4, conv3=6, conv4=6, dense1=16, dense2=12),
                  seed=2, dtype=np.float64)
    params = torch_params(model)
    groups = model.param_groups()
    lr = {"conv": 0.05, "dense": 0.01}
    if name == "sgd":
        opt = make_optimizer("sgd", model, lr["conv"], lr["dense"], momentum=0.9)
        opt_t = torch.optim.SGD([{"params": [params[p] for p in groups[g]], "lr": lr[g]} for g in groups],
                                momentum=0.9)
    else:
        opt = make_optimizer("adam", model, lr["conv"], lr["dense"])
        opt_t = torch.optim.Adam([{"params": [params[p] for p in groups[g]], "lr": lr[g]} for g in groups])
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.random((3, 28, 28, 1))
        labels = rng.integers(0, 10, size=3)
        model.loss_and_grads(x, labels)
        opt.step()
        opt_t.zero_grad()
        torch_loss(model, torch_forward(model, params, x), labels).backward()
        opt_t.step()
    for key, value in model.params().items():
        close(value, params[key], rtol=1e-9)
