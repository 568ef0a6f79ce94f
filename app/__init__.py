"""ConvScope's desktop app (PySide6 + pyqtgraph). GUI code only: every number comes from `engine`."""
import importlib
import os

# First, before anything imports NumPy: the engine package picks OpenBLAS's kernels (engine.blas_kernels).
importlib.import_module("engine")

# Qt's raster engine hands large fills, blends and image scaling to a thread pool and waits for them,
# which made the GUI thread wait on the trainer's core (see app.runtime). Qt reads this when the
# QApplication is made: set on importing the package, before any is.
os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")
