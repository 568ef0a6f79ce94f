"""Finite-difference gradient checking shared by the engine tests (float64 only)."""

import numpy as np


def numerical_grad(f, arr, index=None, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to entries of ``arr``.

    arr is perturbed in place and restored. index: flat indices to probe (all when None).
    Returns the partial derivatives at those indices, shape (len(index),).
    """
    flat = arr.reshape(-1)  # a view: arr must be contiguous so perturbations reach f
    assert np.shares_memory(flat, arr)
    index = np.arange(flat.size) if index is None else np.asarray(index)
    out = np.empty(index.size)
    for k, i in enumerate(index):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        out[k] = (up - down) / (2 * eps)
    return out


def check_grad(f, inputs, analytic, max_entries=None, rng=None, rtol=1e-5, atol=1e-7):
    """Assert that analytic gradients match finite differences of ``f``.

    f: () -> float, reading the arrays in ``inputs`` (float64, contiguous, perturbed in place).
    inputs: dict name -> array; analytic: dict name -> gradient of f w.r.t. that array
    (same shape). max_entries: probe at most this many random entries per array.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    for name, arr in inputs.items():
        assert arr.dtype == np.float64, f"{name}: gradient checks need float64, got {arr.dtype}"
        grad = analytic[name]
        assert grad.shape == arr.shape, f"{name}: gradient shape {grad.shape} != {arr.shape}"
        index = None
        if max_entries is not None and arr.size > max_entries:
            index = rng.choice(arr.size, size=max_entries, replace=False)
        num = numerical_grad(f, arr, index)
        ana = grad.reshape(-1) if index is None else grad.reshape(-1)[index]
        np.testing.assert_allclose(ana, num, rtol=rtol, atol=atol, err_msg=f"gradient of {name}")
