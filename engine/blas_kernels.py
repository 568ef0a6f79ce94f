"""Which OpenBLAS kernels NumPy uses on this CPU, decided before NumPy is imported (standard library only).

OpenBLAS picks its kernels from the CPU model once, when it loads, i.e. when NumPy is first imported.
The release NumPy 2.4 bundles (OpenBLAS 0.3.31) does not know AMD's Zen 5 and falls back to its AVX2
("Haswell") kernels although the CPU has AVX-512; its AVX-512 ("SkylakeX") kernels ran VGG-7's narrow
GEMMs 1.5-2x faster there, a training step 1.2-1.3x (docs/benchmarks.md). OpenBLAS reads the
``OPENBLAS_CORETYPE`` environment variable at that moment, so ``engine/__init__.py`` sets it on import:
early enough for ``python -m engine`` and ``python -m app`` (whose package imports ``engine`` first), too
late for a program that imported NumPy before ``engine`` (nothing changes then).

Only AMD CPUs with AVX-512 get the override: OpenBLAS already picks the SkylakeX kernels on Zen 4 (the
override changes nothing there), and on Intel CPUs it knows newer AVX-512 families (Cooper Lake,
Sapphire Rapids) whose kernels a fixed SkylakeX choice would replace. A value the user set wins.
"""

from __future__ import annotations

import os
import sys

AVX512_FLAGS = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})  # what the SkylakeX kernels use
AVX512_KERNEL = "SkylakeX"


def cpu_facts(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """The first CPU's vendor ("AuthenticAMD", "GenuineIntel", ...) and instruction-set flags, as Linux
    lists them in ``cpuinfo``; ``("", frozenset())`` where that file is missing or unreadable (not Linux)."""
    vendor, flags = "", frozenset()
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags":
                    flags = frozenset(value.split())
                    break  # the first processor's block is enough: all cores of a machine agree here
    except OSError:
        pass
    return vendor, flags


def has_avx512(flags: frozenset[str]) -> bool:
    return AVX512_FLAGS <= flags


def kernel_to_prefer(vendor: str, flags: frozenset[str]) -> str | None:
    """The OpenBLAS core type to ask for on this CPU, or None to leave OpenBLAS's own choice."""
    return AVX512_KERNEL if vendor == "AuthenticAMD" and has_avx512(flags) else None


def prefer_best_kernels(environ=os.environ, cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """Set ``OPENBLAS_CORETYPE`` in ``environ`` when this CPU calls for it (see the module's docstring)
    and nothing decided it yet; return the value set, or None when nothing was set."""
    if "OPENBLAS_CORETYPE" in environ or "numpy" in sys.modules:
        return None  # the user's choice, or too late: OpenBLAS has already loaded
    kernel = kernel_to_prefer(*cpu_facts(cpuinfo))
    if kernel is not None:
        environ["OPENBLAS_CORETYPE"] = kernel
    return kernel
