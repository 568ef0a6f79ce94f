"""Take the README's screenshots of the real app, with the shipped weights and bundled data.

Each scene drives a fresh MainWindow (its own settings file) the way a learner would: buttons are
clicked, the digit on the drawing pad is drawn with mouse events (strokes traced from a bundled
validation digit), training runs on the worker thread. Run it on a virtual screen, so the window
gets real fonts and styles:

    xvfb-run -a -s "-screen 0 1600x1000x24" python tools/screenshots.py [--out docs/screenshots]
                                                                         [--only NAME ...]

Writes NAME.png (1600x1000 window, or the widget alone for drawing_pad) for every scene in SCENES.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WINDOW_SIZE = (1600, 1000)
PAD_DIGIT = 3  # the validation digit drawn on the pad: its first image of this label


def draw_digit(pad, label: int) -> None:
    """Draw the first bundled validation image of ``label`` on the pad with mouse events; raise when
    the pad reads another digit (a README picture should not show a mistake it does not explain)."""
    import numpy as np
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    from app.soak import pause
    from app.views.drawing_pad import PAD_SIDE, place_strokes
    from engine.data import load_bundled_mnist
    from engine.strokes import trace_strokes

    val = load_bundled_mnist()[1]
    image = val.x[int(np.flatnonzero(val.y == label)[0]), :, :, 0]
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    pad.canvas.clear()
    for stroke in place_strokes(trace_strokes(image), PAD_SIDE, 0.7, np.random.default_rng(0)):
        points = [QtCore.QPoint(int(x), int(y)) for x, y in np.rint(stroke)]
        QTest.mousePress(pad.canvas, left, none, points[0])
        for point in points[1:]:
            QTest.mouseMove(pad.canvas, point)
        QTest.mouseRelease(pad.canvas, left, none, points[-1])
    pause(1.0)  # the pad classifies after a short delay
    if pad.bars.highlighted() != label:
        raise RuntimeError(f"the pad read the drawn {label} as {pad.bars.highlighted()}")


def train_for(window, seconds: float) -> None:
    """Start a run with the panel's settings and let it train for ``seconds``."""
    from app.soak import pause

    window.panel.start_button.click()
    pause(seconds)


def stop(window) -> None:
    from app.soak import pause

    window.stop()
    while window._run_state != "idle":
        pause(0.1)


def scene_start(window, out):
    window.show_view("Loss")
    return window


def scene_training_kernels(window, out):
    window.show_view("Kernels")
    train_for(window, 6.0)
    return window


def scene_training_loss(window, out):
    window.show_view("Loss")
    train_for(window, 25.0)
    return window


def scene_drawing_pad(window, out):
    window.show_view("Drawing pad")
    window.views["Drawing pad"].saliency_box.setChecked(True)
    draw_digit(window.views["Drawing pad"], PAD_DIGIT)
    pad = window.views["Drawing pad"]
    # its controls only: the page around them is empty
    pad.grab(pad.childrenRect().adjusted(-8, -8, 8, 8)).save(str(out / "drawing_pad.png"))
    return window


def scene_feature_maps(window, out):
    from app.soak import pause

    window.show_view("Drawing pad")
    pad = window.views["Drawing pad"]
    draw_digit(pad, PAD_DIGIT)
    pad.look_button.click()
    pause(1.5)
    return window


def scene_evaluation(window, out):
    """The pretrained model's confusion matrix, with the biggest off-diagonal cell clicked open."""
    import numpy as np
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    from app.soak import pause

    window.show_view("Evaluation")
    view = window.views["Evaluation"]
    pause(3.0)
    confusion = view.matrix.confusion.copy()
    np.fill_diagonal(confusion, -1)
    true, predicted = np.unravel_index(int(np.argmax(confusion)), confusion.shape)
    QTest.mouseClick(view.matrix, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
                     view.matrix.cell_rect(int(true), int(predicted)).center())
    pause(0.5)
    return window


def wait_until(condition, timeout: float) -> None:
    """Let the window work until ``condition()`` holds; raise after ``timeout`` seconds."""
    import time

    from app.soak import pause

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise RuntimeError("the scene did not finish in time")
        pause(0.2)


def scene_experiments(window, out):
    """Seed 004's broken update against the correct one: two epochs on 1,200 images, run to the end."""
    window.show_view("Experiments")
    panel = window.views["Experiments"]
    panel.experiment.setCurrentIndex(panel.experiment.findData("broken_update"))
    panel.epochs.setValue(2)
    panel.train_size.setValue(1200)
    panel.start_button.click()
    wait_until(lambda: panel.state == "idle" and len(panel.runs) == 2, 240.0)
    return window


def scene_gradient_check(window, out):
    """The gradient check of the broken update on random weights of the whole model: conv2.w fails."""
    window.show_view("Gradient check")
    view = window.views["Gradient check"]
    view.variant.setCurrentIndex(view.variant.findData("broken_update"))
    view.scope.setCurrentIndex(view.scope.findData("model"))
    view.run_button.click()
    wait_until(lambda: not view.is_running(), 120.0)
    return window


SCENES = {
    "window-start": scene_start,
    "window-training-kernels": scene_training_kernels,
    "window-training-loss": scene_training_loss,
    "window-drawing-pad": scene_drawing_pad,
    "window-look-inside-feature-maps": scene_feature_maps,
    "window-evaluation": scene_evaluation,
    "window-experiments": scene_experiments,
    "window-gradient-check-broken-update": scene_gradient_check,
}


def take(name: str, out: Path, settings_dir: str) -> Path:
    """Run scene ``name`` in a fresh window and save the window as ``out/name.png``."""
    from app.soak import measurement_window, pause

    window = measurement_window(os.path.join(settings_dir, name), WINDOW_SIZE)
    pause(1.0)
    try:
        SCENES[name](window, out)
        pause(0.5)
        path = out / f"{name}.png"
        window.grab().save(str(path))
        return path
    finally:
        if window._run_state != "idle":
            stop(window)
        window.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "screenshots"))
    parser.add_argument("--only", nargs="+", choices=sorted(SCENES), help="take only these scenes")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6 import QtWidgets

    from app import gui_gc

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    gui_gc.install()
    with tempfile.TemporaryDirectory() as settings_dir:
        for name in args.only or SCENES:
            print(take(name, out, settings_dir), flush=True)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
