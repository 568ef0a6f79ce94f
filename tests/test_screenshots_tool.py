"""tools/screenshots.py: a scene drives a real window and writes its PNG."""
import importlib.util
from pathlib import Path

from PySide6 import QtGui


def load_tool():
    path = Path(__file__).resolve().parents[1] / "tools" / "screenshots.py"
    spec = importlib.util.spec_from_file_location("screenshots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_drawing_pad_scene_draws_a_digit_the_pretrained_model_reads(qapp, tmp_path):
    tool = load_tool()
    path = tool.take("window-drawing-pad", tmp_path, str(tmp_path))
    image = QtGui.QImage(str(path))
    assert (image.width(), image.height()) == tool.WINDOW_SIZE
    pad = QtGui.QImage(str(tmp_path / "drawing_pad.png"))
    assert not pad.isNull() and pad.width() < image.width()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["drawing_pad.png", "window-drawing-pad.png"]
