"""Regression guard for the PySide6 pin (see pyproject.toml).

PySide6 6.12.0 + pyqtgraph 0.14 + Python 3.11 dies with "Fatal Python error: bool_dealloc" within a few
thousand ImageItem repaints. This runs the same loop in a subprocess so that a crash fails one test
instead of killing the run. Lift the `<6.12` cap only when this passes on the newer PySide6.
"""
import subprocess
import sys
import textwrap

REPAINTS = 3000

SCRIPT = textwrap.dedent(
    f"""
    import numpy as np
    import pyqtgraph as pg
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication([])
    widget = pg.GraphicsLayoutWidget()
    view = widget.addViewBox()
    item = pg.ImageItem(axisOrder="row-major")
    view.addItem(item)
    widget.resize(300, 300)
    widget.show()
    rng = np.random.default_rng(0)
    for i in range({REPAINTS}):
        item.setImage(rng.standard_normal((28, 28)).astype(np.float32), levels=(-3, 3))
        widget.repaint()
        app.processEvents()
    print("repaints", i + 1)
    """
)


def test_imageitem_survives_3000_repaints():
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"repaints {REPAINTS}" in done.stdout
