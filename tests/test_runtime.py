"""app.runtime: the window's process settings, here the one malloc arena and Qt's image thread pool (in
subprocesses: the settings are process-wide)."""
import os
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



# Prints how many threads Qt's image thread pool started for a smooth scaling of a large image, made
# after importing the app package or (control) without it.
QT_POOL = r"""
import os, sys
if sys.argv[1] == "app":
    import app  # noqa: F401
from PySide6 import QtCore, QtGui
application = QtGui.QGuiApplication([])
image = QtGui.QImage(1200, 1200, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
image.fill(QtGui.QColor("red"))
image.scaled(500, 500, QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
             QtCore.Qt.TransformationMode.SmoothTransformation)
names = [open(f"/proc/self/task/{task}/comm").read() for task in os.listdir("/proc/self/task")]
print(sum(name.startswith("Thread (pooled)") for name in names))
"""


def qt_pool_threads(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "QT_NO_GUI_THREADPOOL"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run([sys.executable, "-c", QT_POOL, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2,
                    reason="thread names from /proc (Linux); Qt's pool needs two cores")
def test_the_app_keeps_qt_image_work_on_the_gui_thread():
    assert qt_pool_threads("plain") >= 1  # Qt scales a large image with its thread pool by default
    assert qt_pool_threads("app") == 0
