"""Smoke test of the soak script: a 0.2-minute run prints the JSON last line with sane contents.

Not a timing test: the figures themselves belong in docs/hardening.md, measured with long runs.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_soak_prints_its_json_last_line():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "app.soak", "--minutes", "0.2", "--tab-seconds", "1",
                           "--pad-ms", "300"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("minutes", "steps", "rss_start_mb", "rss_end_mb", "max_gap_ms", "rss_before_warmup_mb"):
        assert isinstance(result[key], (int, float)), key
    assert result["minutes"] >= 0.2 and result["steps"] > 0
    assert 0 < result["rss_start_mb"] and 0 < result["rss_end_mb"]
    assert result["max_gap_ms"] >= 10.0  # the probe's timer ticks every 10 ms
    assert len(result["rss_min_mb_per_min"]) == len(result["max_gap_ms_per_min"]) == 1
    assert result["pad_classifications"] > 0 and result["blas_threads"] >= 1


# Measured peaks: 53 MiB unconfigured (whole batches), 29 on one thread (passes of 16), 52 on two.
@pytest.mark.parametrize("threads, limit_mib", [(None, 64), (1, 40), (2, 64)])
def test_validation_pass_keeps_memory_small(threads, limit_mib):
    """Each epoch ends with a validation pass on the training model (and at start-up the window
    evaluates the pretrained weights). The conv layers' scratch buffers scale with the batch evaluated
    at once: 500 images at a time took ~520 MiB, so a soak's RSS swung by that much every epoch. After
    a training step at the default batch size, the pass must stay small."""
    import tracemalloc

    from engine import parallel
    from engine.data import load_bundled_mnist
    from engine.presets import build
    from engine.trainer import TrainConfig, evaluate

    train, val = load_bundled_mnist()
    model = build("vgg7")
    batch = TrainConfig().batch_size
    with parallel.using_threads(threads):    # unconfigured; passes on one thread; shards on two
        model.loss_and_grads(train.x[:batch], train.y[:batch])
        tracemalloc.start()
        try:
            evaluate(model, val)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < limit_mib * 2**20, f"evaluating {len(val)} images took {peak / 2**20:.0f} MiB"
