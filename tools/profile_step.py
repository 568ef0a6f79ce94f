"""Where one VGG-7 training step of the engine spends its time, on one thread, next to PyTorch.

Times each layer's forward and backward on a batch (default 32 images: one shard of the 2-thread
bench), the step's share spent in ``np.matmul`` (the GEMMs), and, when torch is importable, the
same step and inference in PyTorch from the same weights (``engine.bench``'s runners). Medians of
``--steps`` steps after a warm-up. Complements ``python -m engine bench``, which gives the ratios
the issue asks for; this tells where a gap comes from.

    OPENBLAS_NUM_THREADS=1 python tools/profile_step.py [--batch-size 32] [--steps 40]

Set OPENBLAS_NUM_THREADS=1 (the script does when it is unset, before NumPy loads).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # must precede the NumPy import

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine import bench  # noqa: E402  before NumPy, as in the app: engine picks OpenBLAS's kernels
import numpy as np  # noqa: E402


def median_ms(fn, steps):
    """Median wall time of ``fn()`` in ms over ``steps`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def layer_times(model, x, labels, steps):
    """{layer name: (forward ms, backward ms)}, medians over ``steps`` hand-run training steps.

    x: (N, 28, 28, 1); labels: (N,). Every layer's backward runs, the first one's included (the
    model skips it only when the first layer has no parameters)."""
    forward = {layer.name: [] for layer in model.layers}
    backward = {layer.name: [] for layer in model.layers}
    for _ in range(steps + 1):
        a = x
        for layer in model.layers:
            start = time.perf_counter()
            a = layer.forward(a, training=True)
            forward[layer.name].append(time.perf_counter() - start)
        d = model.loss_from_output(a, labels)[1]
        for layer in reversed(model.layers):
            start = time.perf_counter()
            d = layer.backward(d)
            backward[layer.name].append(time.perf_counter() - start)
    return {name: (float(np.median(forward[name][1:])) * 1e3, float(np.median(backward[name][1:])) * 1e3)
            for name in forward}


def gemm_share(step, steps):
    """(median step ms, median ms inside np.matmul, np.matmul calls per step) for ``step()``."""
    matmul, spent = np.matmul, [0.0, 0]

    def timed_matmul(*args, **kwargs):
        start = time.perf_counter()
        try:
            return matmul(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
            spent[1] += 1

    step()
    totals, inside = [], []
    np.matmul = timed_matmul
    try:
        for _ in range(steps):
            spent[:] = [0.0, 0]
            start = time.perf_counter()
            step()
            totals.append(time.perf_counter() - start)
            inside.append(spent[0])
    finally:
        np.matmul = matmul
    return float(np.median(totals)) * 1e3, float(np.median(inside)) * 1e3, spent[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)
    bench.keep_freed_memory()
    x, labels = bench._batch(args.batch_size)
    engine = bench.EngineRunner(x, labels)
    print(f"VGG-7, batch {args.batch_size}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
          "medians in ms")
    print(f"{'layer':10s} {'forward':>8s} {'backward':>9s}")
    for name, (fwd, bwd) in layer_times(engine.model, x, labels, args.steps).items():
        print(f"{name:10s} {fwd:8.2f} {bwd:9.2f}")
    step_ms, gemm_ms, calls = gemm_share(engine.train_step, args.steps)
    print(f"engine step {step_ms:.2f}, of which np.matmul {gemm_ms:.2f} in {calls} calls; "
          f"inference {median_ms(engine.infer, args.steps):.2f}")
    torch = bench._import_torch()
    if torch is None:
        print("torch not importable: no comparison")
        return 0
    torch.set_num_threads(1)
    reference = bench.TorchRunner(torch, engine.model, x, labels)
    print(f"torch  step {median_ms(reference.train_step, args.steps):.2f}; "
          f"inference {median_ms(reference.infer, args.steps):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
