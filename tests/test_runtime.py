"""app.runtime: the window's process settings, here the one malloc arena (in subprocesses: the
settings are process-wide)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Prints how many glibc arenas hold memory after two threads have allocated and freed 8 MB arrays
# (malloc_info lists one <heap> per arena), optionally after app.runtime.prepare_for_gui().
ARENAS = r"""
import ctypes, re, sys, tempfile, threading
import numpy as np
if sys.argv[1] == "prepared":
    from app.runtime import prepare_for_gui
    assert prepare_for_gui()["one_malloc_arena"]
def churn():
    for _ in range(20):
        np.ones(1 << 21, dtype=np.float32).sum()
threads = [threading.Thread(target=churn) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(len(re.findall(r"<heap nr=", open(out.name).read())))
"""


def arenas(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", ARENAS, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas (Linux)")
def test_threads_started_after_prepare_for_gui_share_one_malloc_arena():
    assert arenas("default") >= 2  # each thread that allocates gets its own arena by default
    assert arenas("prepared") == 1

