"""engine.bench: the command's output format on a tiny run (never a timed assertion)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from engine import bench, parallel
from tool_scripts import load_tool

TINY = ["--seconds", "0", "--rounds", "1", "--batch-size", "2"]


def run_bench(capsys, *argv):
    assert bench.main([*argv, *TINY]) == 0
    return capsys.readouterr().out.strip().splitlines()


def test_json_mode_prints_only_the_contract_line_without_torch(capsys):
    lines = run_bench(capsys, "--json", "--no-torch")
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert list(record) == list(bench.JSON_KEYS)
    assert record["engine_train_ips"] > 0 and record["engine_infer_ips"] > 0
    assert record["torch_train_ips"] is record["torch_infer_ips"] is None
    assert record["train_ratio"] is record["infer_ratio"] is None
    assert isinstance(record["threads"], int) and record["threads"] >= 1


def test_table_then_json_last(capsys):
    lines = run_bench(capsys, "--no-torch")
    assert any(line.startswith("train") for line in lines) and any(line.startswith("infer") for line in lines)
    assert list(json.loads(lines[-1])) == list(bench.JSON_KEYS)


def test_against_torch_ratios_are_engine_over_torch(capsys):
    pytest.importorskip("torch")
    record = json.loads(run_bench(capsys, "--json")[-1])
    for task in ("train", "infer"):
        engine, torch_ips = record[f"engine_{task}_ips"], record[f"torch_{task}_ips"]
        assert engine > 0 and torch_ips > 0
        assert record[f"{task}_ratio"] == pytest.approx(engine / torch_ips, abs=2e-3)


def test_torch_network_computes_the_engine_network():
    torch = pytest.importorskip("torch")
    x, labels = bench._batch(3)
    engine = bench.EngineRunner(x, labels)
    reference = bench.TorchRunner(torch, engine.model, x, labels)
    assert abs(engine.infer() - reference.infer()).max() < 1e-4


def test_blas_threads_can_be_set_and_read_back():
    before = parallel.blas_threads()
    assert before >= 1
    if not parallel.set_blas_threads(1):
        pytest.skip("NumPy's BLAS is not a reachable OpenBLAS")
    try:
        assert parallel.blas_threads() == 1
    finally:
        parallel.set_blas_threads(before)
    assert parallel.blas_threads() == before


@pytest.mark.parametrize("args, words", [
    (["--batch-size", "0"], "--batch-size must be between 1 and 8192"),
    (["--batch-size", "100000000"], "--batch-size must be between 1 and 8192"),
    (["--rounds", "1000000"], "--rounds must be between 1 and 1000"),
    (["--threads", "1000"], "the CPUs this process may use"),
])
def test_bad_arguments_are_refused(capsys, args, words):
    assert bench.main([*args, "--no-torch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err


def test_the_module_entry_point_handles_errors_like_the_cli():
    """``python -m engine.bench`` (docs/benchmarks.md) printed tracebacks where ``python -m engine bench``
    printed one line: a full disk here."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "engine.bench", "--json", "--no-torch", *TINY],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    # (before it, a line on stderr when other processes kept the CPUs busy)
    assert proc.stderr.strip().splitlines()[-1] == "error: [Errno 28] No space left on device"


def test_importing_the_benchmark_does_not_import_torch():
    code = "import sys, engine.bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_profile_tool_times_every_layer_and_counts_the_gemms():
    tool = load_tool("profile_step")
    x, labels = bench._batch(2)
    runner = bench.EngineRunner(x, labels)
    times = tool.layer_times(runner.model, x, labels, steps=1)
    assert list(times) == [layer.name for layer in runner.model.layers]
    assert all(fwd >= 0 and bwd >= 0 for fwd, bwd in times.values())
    matmul = np.matmul
    step_ms, gemm_ms, calls = tool.gemm_share(runner.train_step, steps=1)
    assert np.matmul is matmul                      # the timing wrapper is gone again
    assert calls >= 10 and 0 < gemm_ms <= step_ms   # at least the forward convs' 1 + 3 * 3 GEMMs


@pytest.mark.parametrize("override, flags", [("SkylakeX", "avx2 avx512f avx512bw avx512dq avx512vl"), (None, "avx2")])
def test_the_header_says_who_chose_the_kernels_and_notes_avx2_kernels_on_an_avx512_cpu(capsys, monkeypatch,
                                                                                      override, flags):
    import engine

    monkeypatch.setattr(engine, "BLAS_KERNEL_OVERRIDE", override)
    monkeypatch.setattr(bench, "blas_kernel", lambda: "Haswell")
    monkeypatch.setattr(bench, "cpu_facts", lambda: ("AuthenticAMD", frozenset(flags.split())))
    assert bench.main(["--no-torch", *TINY]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    header = "BLAS kernel Haswell (OPENBLAS_CORETYPE set by the engine);"
    assert any(header in line for line in lines) == (override is not None), lines[:2]
    assert ("OpenBLAS picked its Haswell (AVX2) kernels" in err) == (override is not None), err
