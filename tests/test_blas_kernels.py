"""engine.blas_kernels: OPENBLAS_CORETYPE chosen from the CPU, before NumPy loads, and only where it helps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.blas_kernels import AVX512_FLAGS, cpu_facts, kernel_to_prefer, prefer_best_kernels

ROOT = Path(__file__).resolve().parent.parent
ZEN5_FLAGS = "fpu sse sse2 avx avx2 fma " + " ".join(sorted(AVX512_FLAGS)) + " avx512_bf16"


def write_cpuinfo(path, vendor, flags, processors=2):
    """A /proc/cpuinfo look-alike: one block per processor, each with its vendor and flags lines."""
    block = f"processor\t: {{n}}\nvendor_id\t: {vendor}\ncpu family\t: 26\nflags\t\t: {flags}\n\n"
    path.write_text("".join(block.format(n=n) for n in range(processors)))
    return str(path)


def test_cpu_facts_reads_the_vendor_and_the_flags(tmp_path):
    vendor, flags = cpu_facts(write_cpuinfo(tmp_path / "cpuinfo", "AuthenticAMD", ZEN5_FLAGS))
    assert vendor == "AuthenticAMD"
    assert AVX512_FLAGS <= flags and "avx2" in flags and "flags" not in flags


def test_cpu_facts_without_the_file_knows_nothing(tmp_path):
    assert cpu_facts(str(tmp_path / "missing")) == ("", frozenset())
    assert cpu_facts(str(tmp_path)) == ("", frozenset())  # there but unreadable (a directory)


def test_cpu_facts_reads_the_first_processors_block_only(tmp_path):
    """The first processor's vendor and flags, not a later block's (read no further than needed)."""
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {ZEN5_FLAGS}\n\n"
                    "processor\t: 1\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse\n\n")
    assert cpu_facts(str(path)) == ("AuthenticAMD", frozenset(ZEN5_FLAGS.split()))


@pytest.mark.parametrize("vendor, flags, expected", [
    ("AuthenticAMD", ZEN5_FLAGS, "SkylakeX"),              # Zen 5: OpenBLAS 0.3.31 falls back to AVX2
    ("AuthenticAMD", "fpu sse sse2 avx avx2 fma", None),   # Zen 3: no AVX-512, SkylakeX kernels would crash
    ("AuthenticAMD", "avx2 avx512f avx512vl", None),       # AVX-512 without BW/DQ: not what the kernels need
    ("GenuineIntel", ZEN5_FLAGS, None),                    # Intel: OpenBLAS knows its AVX-512 families
    ("CentaurHauls", ZEN5_FLAGS, None),                    # other vendors (Zhaoxin): AMD's only
    ("", "", None),                                        # no /proc/cpuinfo
])
def test_only_amd_with_avx512_is_given_the_avx512_kernels(vendor, flags, expected):
    assert kernel_to_prefer(vendor, frozenset(flags.split())) == expected


@pytest.fixture
def numpy_not_loaded(monkeypatch):
    """As the entry points see it: NumPy not imported yet (only the key; the module stays loaded)."""
    monkeypatch.delitem(sys.modules, "numpy")


def test_sets_the_core_type_when_the_cpu_calls_for_it(tmp_path, numpy_not_loaded):
    environ = {}
    assert prefer_best_kernels(environ, write_cpuinfo(tmp_path / "cpuinfo", "AuthenticAMD", ZEN5_FLAGS)) == "SkylakeX"
    assert environ == {"OPENBLAS_CORETYPE": "SkylakeX"}


def test_leaves_other_cpus_alone(tmp_path, numpy_not_loaded):
    environ = {}
    assert prefer_best_kernels(environ, write_cpuinfo(tmp_path / "cpuinfo", "GenuineIntel", ZEN5_FLAGS)) is None
    assert environ == {}


def test_the_users_choice_wins(tmp_path, numpy_not_loaded):
    environ = {"OPENBLAS_CORETYPE": "Haswell"}
    assert prefer_best_kernels(environ, write_cpuinfo(tmp_path / "cpuinfo", "AuthenticAMD", ZEN5_FLAGS)) is None
    assert environ == {"OPENBLAS_CORETYPE": "Haswell"}


def test_too_late_once_numpy_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy", np)
    environ = {}
    assert prefer_best_kernels(environ, write_cpuinfo(tmp_path / "cpuinfo", "AuthenticAMD", ZEN5_FLAGS)) is None
    assert environ == {}


def last_json_line_of_python(code: str):
    """Run ``code`` in a fresh interpreter with no OPENBLAS_CORETYPE set -> its last stdout line, parsed."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("package", ["engine", "app"])
def test_importing_the_package_first_decides_before_numpy_loads(package):
    """The real wiring, in a fresh interpreter: `python -m engine` and `python -m app` import their package
    first; by then OPENBLAS_CORETYPE must be decided, and the kernel OpenBLAS loads must be that one."""
    code = (f"import sys, os, json, {package}, engine\n"
            "numpy_before = 'numpy' in sys.modules\n"
            "from engine.parallel import blas_kernel\n"
            "print(json.dumps([numpy_before, engine.BLAS_KERNEL_OVERRIDE, os.environ.get('OPENBLAS_CORETYPE'),"
            " blas_kernel()]))")
    numpy_before, override, variable, kernel = last_json_line_of_python(code)
    expected = kernel_to_prefer(*cpu_facts())
    assert not numpy_before
    assert override == variable == expected
    if expected is not None:
        assert kernel == expected


@pytest.mark.parametrize("package", ["engine", "app"])
def test_importing_the_package_sets_the_core_type_an_amd_avx512_cpu_calls_for(package, tmp_path):
    """As on a Zen 5 (whatever this machine is): its /proc/cpuinfo read as the one written here. Nothing
    imports NumPy, which would then load OpenBLAS with kernels this machine may not have."""
    fake = write_cpuinfo(tmp_path / "cpuinfo", "AuthenticAMD", ZEN5_FLAGS)
    code = ("import builtins, json, os, sys\n"
            "real_open = builtins.open\n"
            f"builtins.open = lambda f, *a, **k: real_open({fake!r} if f == '/proc/cpuinfo' else f, *a, **k)\n"
            f"import {package}\n"
            "coretype = os.environ.get('OPENBLAS_CORETYPE')  # set by importing the package alone\n"
            "import engine\n"
            "print(json.dumps(['numpy' in sys.modules, engine.BLAS_KERNEL_OVERRIDE, coretype]))")
    assert last_json_line_of_python(code) == [False, "SkylakeX", "SkylakeX"]
