"""tools/screenshots.py: a scene drives a real window and writes its PNG."""
from PySide6 import QtGui

from tool_scripts import load_tool


def test_the_drawing_pad_scene_draws_a_digit_the_pretrained_model_reads(qapp, tmp_path):
    tool = load_tool("screenshots")
    path = tool.take("window-drawing-pad", tmp_path, str(tmp_path))
    image = QtGui.QImage(str(path))
    assert (image.width(), image.height()) == tool.WINDOW_SIZE
    pad = QtGui.QImage(str(tmp_path / "drawing_pad.png"))
    assert not pad.isNull() and pad.width() < image.width()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["drawing_pad.png", "window-drawing-pad.png"]
