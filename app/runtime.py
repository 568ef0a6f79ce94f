"""Process settings that keep the GUI thread responsive while NumPy trains on another thread.

Shared resources decide how fast the GUI thread gets to run while VGG-7 trains:

- **CPU cores.** OpenBLAS starts one thread per core and its threads spin while they wait for each
  other. With every core busy in BLAS, the GUI thread has to preempt one of them, and the others then
  spin until it is back; on a machine that is busy with anything else the spinning makes training
  collapse (measured on a loaded 2-core machine: 500 images/s with one BLAS thread, 0-30 with two).
  So the app leaves one core to the GUI: the engine gets ``cores - 1`` threads (at least one), as
  data-parallel shards of each batch with one BLAS thread each (see engine/parallel.py).
- **The GIL.** A thread that wants the GIL waits until the holder is asked to drop it, after
  ``sys.getswitchinterval()`` (5 ms by default). The GUI thread needs the GIL for every Python slot and
  paint callback, so each one could cost it up to 5 ms while the trainer runs Python code between
  its BLAS calls; a 1 ms interval bounds that wait at 1 ms for a negligible cost to training.
- **Memory (glibc).** malloc gives each thread that allocates concurrently its own arena, and a block
  freed in one arena only serves allocations from that arena again. The training thread's freed batch
  arrays (~100 MiB of free blocks in its arena) could not serve the GUI thread's images, and the GUI
  arena's free blocks not the trainer: the resident size swung between 470 and 545 MiB during a soak
  (live heap steady at ~216 MiB). One arena shared by all threads: per-minute lows flat at 430-465 MiB
  over 30-minute soaks (highs up to 485 as the heap's top is trimmed and regrown), training as fast
  (a malloc is microseconds; small ones go through each thread's lock-free cache).

- **Qt's image thread pool.** Qt's raster engine splits large fills and blends (96 lines or more) and
  image scaling or conversion over a pool of one thread per core, and waits for the parts. With a
  core training, the pool's threads have to preempt the trainer or the GUI thread itself, and the GUI
  thread waits for the last part: in a profile of a soak (``perf`` sched_switch events, 120 s) the
  pool's two threads preempted the GUI thread 42,000 times. ``QT_NO_GUI_THREADPOOL`` keeps that work
  on the GUI thread; Qt reads it when the QApplication is made, so importing the ``app`` package sets it.

An ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` set by the user is respected.
"""
from __future__ import annotations

import ctypes
import os
import sys

from engine import parallel
from engine.parallel import blas_threads

SWITCH_INTERVAL_S = 0.001
M_ARENA_MAX = -8  # mallopt's parameter number (glibc's malloc.h)


def share_one_malloc_arena() -> bool:
    """Make threads created from now on allocate from glibc's main arena (False without glibc).

    Threads that already have an arena keep it, so call this before the training threads start."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, 1))


def prepare_for_gui() -> dict:
    """Apply the settings above but Qt's (idempotent). Returns
    ``{"blas_threads": n, "engine_threads": n, "switch_interval_s": s, "one_malloc_arena": bool}``."""
    wanted = max(1, parallel.usable_cpus() - 1)
    if any(os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):
        wanted = min(wanted, blas_threads())
    parallel.set_threads(wanted)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return {"blas_threads": blas_threads(), "engine_threads": parallel.threads(),
            "switch_interval_s": sys.getswitchinterval(), "one_malloc_arena": share_one_malloc_arena()}
