"""Status colours readable on light and dark desktops (app.views.tones)."""
import pytest
from PySide6 import QtGui, QtWidgets

from app.views import tones
from app.views.tones import TONES, ToneLabel, span

LIGHT_WINDOWS = ("#ffffff", "#efefef", "#e0e0e0")  # white, Fusion's light window, a greyer theme
DARK_WINDOWS = ("#1e1e1e", "#2b2b2b", "#353535")   # common dark themes' base and window colours


def contrast(a: str, b: str) -> float:
    return tones.contrast(QtGui.QColor(a), QtGui.QColor(b))


def test_contrast_is_wcags_ratio():
    assert contrast("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the classic AA grey
    assert contrast("#777777", "#ffffff") < 4.5


@pytest.mark.parametrize("name", TONES)
def test_every_tone_reads_at_4_5_to_1_on_light_and_on_dark_windows(name):
    light, dark = TONES[name]
    assert min(contrast(light, window) for window in LIGHT_WINDOWS) >= 4.5
    assert min(contrast(dark, window) for window in DARK_WINDOWS) >= 4.5


def dark_palette() -> QtGui.QPalette:
    palette = QtGui.QPalette()
    for role, colour in ((QtGui.QPalette.ColorRole.Window, "#2b2b2b"), (QtGui.QPalette.ColorRole.WindowText, "#ffffff"),
                         (QtGui.QPalette.ColorRole.Base, "#1e1e1e"), (QtGui.QPalette.ColorRole.Text, "#ffffff"),
                         (QtGui.QPalette.ColorRole.Button, "#3c3c3c"),
                         (QtGui.QPalette.ColorRole.ButtonText, "#ffffff")):
        palette.setColor(role, QtGui.QColor(colour))
    return palette


@pytest.fixture
def dark_desktop(qapp):
    """The application switched to a dark palette (as a desktop's dark theme does), restored after."""
    before = qapp.palette()
    qapp.setPalette(dark_palette())
    yield
    qapp.setPalette(before)


def test_a_tone_label_follows_the_desktop_between_light_and_dark(qtbot, qapp):
    label = ToneLabel("Cannot start")
    qtbot.addWidget(label)
    label.set_tone("error", bold=True)
    label.show()
    light, dark = TONES["error"]
    assert label.palette().color(QtGui.QPalette.ColorRole.Window).lightness() >= 128  # the tests' light default
    assert light in label.styleSheet() and "bold" in label.styleSheet()
    before = qapp.palette()
    qapp.setPalette(dark_palette())
    try:
        qtbot.waitUntil(lambda: dark in label.styleSheet())
        assert "bold" in label.styleSheet()
    finally:
        qapp.setPalette(before)
    qtbot.waitUntil(lambda: light in label.styleSheet())
    label.set_tone(None)
    assert label.styleSheet() == ""


def test_rich_text_spans_take_the_shade_of_the_widgets_palette(qtbot, dark_desktop):
    widget = QtWidgets.QLabel()
    qtbot.addWidget(widget)
    assert span(widget, "ok", "<b>conv1.w</b> ✓ pass") == \
        f"<span style='color:{TONES['ok'][1]}'><b>conv1.w</b> ✓ pass</span>"


def test_the_windows_messages_are_readable_on_a_dark_desktop(qtbot, make_window, dark_desktop):
    """A dark red on a dark window read at 2.5:1, the stepper's notes (#37414b) at 1.4:1."""
    window = make_window()
    edit = window.panel.float_edits["lr_conv"]
    edit.setText("abc")
    assert window.panel.errors_label.isVisible() and TONES["error"][1] in window.panel.errors_label.styleSheet()
    stepper = window.views["Conv stepper"]
    window.show_view("Conv stepper")
    for label in (stepper.worked.description, stepper.note):  # the explanations: the palette's text colour
        text = label.palette().color(QtGui.QPalette.ColorRole.WindowText).name()
        back = label.palette().color(QtGui.QPalette.ColorRole.Window).name()
        assert "color" not in label.styleSheet() and contrast(text, back) >= 4.5
