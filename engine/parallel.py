"""How many cores the engine computes on: BLAS threads, and data-parallel shards of a batch.

VGG-7's GEMMs are narrow (16-32 output channels) and its element-wise passes (bias, ReLU,
pooling) run on one core in NumPy, so OpenBLAS's own threads scale poorly on it: two BLAS threads
made a training step only ~1.15x faster than one. Splitting the batch instead, each shard running
the whole network on its own thread with a one-thread BLAS, keeps every core busy in every pass
(NumPy and OpenBLAS release the GIL) and measured ~1.7x on 2 cores; each shard's activations
also fit the caches better. See docs/benchmarks.md.

``set_threads(n)`` (called by the entry points: CLI, benchmark, app) selects that mode: batches of at
least ``n * MIN_SHARD`` images are split into ``n`` shards and BLAS gets one thread. On one thread
(the app on 2 cores) a batch goes through the network in passes of about ``PASS_IMAGES`` images
instead, one after the other (a pass is a shard run on the calling thread): a pass's activations
and column matrices then stay near the 2 MB L2 cache (VGG-7 training 1.2x faster at batch 64).
With several threads each keeps one shard: more, smaller passes lost more to hand-overs of the GIL
than the caches gave back (28 vs 23.5 ms per 32 images). Unconfigured (``threads()`` is None),
nothing is split and BLAS keeps its own thread count. Shard threads live only for the call that
needs them, so no thread outlives a step.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import threading

import numpy as np

MIN_SHARD = 16   # images per shard: below that, thread start-up and small GEMMs cost more than they save
PASS_IMAGES = 16  # images per pass on one thread (see above)

_threads = None
_blas_unconfigured = None  # BLAS's thread count before set_threads first set it to one


def threads():
    """The configured number of engine threads, or None when unconfigured."""
    return _threads


def set_threads(n):
    """Compute on ``n`` threads (n >= 1), one BLAS thread each: ``n`` concurrent shards per large
    batch, or on one thread passes of ``PASS_IMAGES`` (see :func:`shard_plan`). ``None`` returns to
    the unconfigured default (no shards, BLAS's thread count as it was before)."""
    global _threads, _blas_unconfigured
    if n is None:
        if _threads is not None and _blas_unconfigured is not None:
            set_blas_threads(_blas_unconfigured)
        _threads = None
        return
    n = int(n)
    if n < 1:
        raise ValueError(f"the engine needs at least one thread, got {n}")
    if _threads is None:
        _blas_unconfigured = blas_threads()
    set_blas_threads(1)
    _threads = n


@contextlib.contextmanager
def using_threads(n):
    """``set_threads(n)`` for a with-block, then both settings as they were (for entry points that
    may run inside another program, e.g. the CLI's ``main()`` called by tests)."""
    before = (_threads, blas_threads())
    set_threads(n)
    try:
        yield
    finally:
        set_threads(before[0])
        set_blas_threads(before[1])


def shard_plan(n_items):
    """``(bounds, concurrent)``: how a batch of ``n_items`` is split, ``[(start, stop), ...]`` with one
    pair per shard, and whether the shards run at once, one per thread (else one after the other on
    the calling thread: the passes of one thread, ``PASS_IMAGES`` to ``2 * PASS_IMAGES - 1`` images
    each). A single pair when the engine is unconfigured or the batch is too small to be worth
    splitting. Both come from one reading of the thread count, which another thread may change."""
    threads = _threads
    if threads == 1:
        shards = n_items // PASS_IMAGES or 1
    else:
        shards = min(threads or 1, n_items // MIN_SHARD) or 1
    edges = [n_items * i // shards for i in range(shards + 1)]
    return list(zip(edges[:-1], edges[1:])), shards <= (threads or 1)


def shard_bounds(n_items):
    """The bounds of :func:`shard_plan`."""
    return shard_plan(n_items)[0]


def run_sharded(tasks, concurrent):
    """Call ``tasks`` (one per shard of :func:`shard_plan`) and return their results in order: all at
    once when ``concurrent`` (see :func:`run_concurrently`), else one after the other on this thread."""
    return run_concurrently(tasks) if concurrent else [task() for task in tasks]


def run_concurrently(tasks):
    """Call every function in ``tasks`` at once, the first on this thread and each other one on a
    thread of its own; return their results in order. The first exception raised is re-raised
    once all have finished (no thread is left running). The helper threads take the caller's NumPy
    floating-point error handling (``np.errstate`` is per thread), so shards warn, raise or stay quiet
    alike."""
    results = [None] * len(tasks)
    errors = [None] * len(tasks)
    error_handling = {**np.geterr(), "call": np.geterrcall()}

    def call(i):
        try:
            with np.errstate(**error_handling):
                results[i] = tasks[i]()
        except BaseException as error:  # handed to the calling thread below
            errors[i] = error

    helpers = [threading.Thread(target=call, args=(i,), name=f"engine shard {i}", daemon=True)
               for i in range(1, len(tasks))]
    for helper in helpers:
        helper.start()
    call(0)
    for helper in helpers:
        helper.join()
    for error in errors:
        if error is not None:
            raise error
    return results


# --------------------------------------------------------------------------- OpenBLAS

def _openblas_function(name, restype=ctypes.c_int):
    """The OpenBLAS function ``name`` (e.g. "get_num_threads") of the library NumPy has loaded,
    or None when there is no OpenBLAS in this process or it cannot be reached.

    The library is found in this process's memory map (Linux), so no threadpoolctl is needed;
    NumPy's wheels rename the symbols (``scipy_openblas_get_num_threads64_``), hence the spellings.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in (f"scipy_openblas_{name}64_", f"openblas_{name}64_", f"openblas_{name}"):
            if hasattr(lib, symbol):
                function = getattr(lib, symbol)
                function.restype = restype
                return function
    return None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. under ``taskset``; all of them elsewhere)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def blas_threads():
    """Thread count of NumPy's BLAS: asked from OpenBLAS itself when possible, else the usual
    environment variables, else the CPUs this process may run on."""
    get = _openblas_function("get_num_threads")
    if get is not None:
        return int(get())
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        match = re.match(r"\s*(\d+)", os.environ.get(var, ""))
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return usable_cpus()


def set_blas_threads(n):
    """Ask OpenBLAS to use ``n`` threads; False when it cannot be reached (then only the
    environment variables set before start-up decide)."""
    set_ = _openblas_function("set_num_threads", restype=None)
    if set_ is None:
        return False
    set_(ctypes.c_int(n))
    return True


def blas_kernel():
    """Name of the kernel family OpenBLAS picked for this CPU ("Haswell", "SkylakeX", ...), or None."""
    get = _openblas_function("get_corename", restype=ctypes.c_char_p)
    return None if get is None else get().decode()


