"""Text colours that say something (an error, a pass, a warning, a hint) and stay readable on light
and dark desktops: each tone has a shade for light windows and one for dark windows, both at least
4.5:1 (WCAG AA) against the window and base colours of common themes. A fixed dark red was 2.5:1
on a dark window; a light grey hint 2.8:1 on a light one."""

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

TONES = {  # name: (shade on a light window, shade on a dark window)
    "error": ("#b3261e", "#ff8a80"),
    "ok": ("#1b6e20", "#81c784"),
    "warn": ("#7a5500", "#ffd54f"),
    "muted": ("#535b64", "#aab2bb"),
}


def relative_luminance(rgb) -> np.ndarray:
    """WCAG relative luminance of 0-255 sRGB colours ``rgb: (..., 3)`` -> ``(...)`` (channels linearised)."""
    c = np.asarray(rgb, dtype=np.float64)[..., :3] / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4) @ np.array([0.2126, 0.7152, 0.0722])


def luminance(colour: QtGui.QColor) -> float:
    """WCAG relative luminance of ``colour``."""
    return float(relative_luminance(colour.getRgb()[:3]))


def dark_reads_better(rgb, dark: QtGui.QColor) -> np.ndarray:
    """Whether text in ``dark`` contrasts more than white with each 0-255 colour of ``rgb: (..., 3)`` ->
    bool ``(...)``: how painted numbers pick their colour (by lightness, white on the matrix's green
    was 3.5:1)."""
    background = relative_luminance(rgb) + 0.05
    return background / (luminance(dark) + 0.05) >= 1.05 / background


def contrast(a: QtGui.QColor, b: QtGui.QColor) -> float:
    """WCAG contrast ratio of two colours, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def text_on(background: QtGui.QColor) -> QtGui.QColor:
    """Black or white, whichever reads better on ``background`` (at least 4.58:1 whatever it is): white on
    the confusion matrix's green was 3.5:1, picked by lightness."""
    dark = QtGui.QColor("#000000")
    return dark if dark_reads_better(background.getRgb()[:3], dark) else QtGui.QColor("#ffffff")


def is_dark(widget: QtWidgets.QWidget) -> bool:
    """Whether ``widget`` is drawn on a dark window colour (a dark desktop theme)."""
    return widget.palette().color(QtGui.QPalette.ColorRole.Window).lightness() < 128


def tone(widget: QtWidgets.QWidget, name: str) -> QtGui.QColor:
    """The shade of tone ``name`` for ``widget``'s palette now."""
    return QtGui.QColor(TONES[name][is_dark(widget)])


def span(widget: QtWidgets.QWidget, name: str, html: str) -> str:
    """``html`` in tone ``name``, for rich text in ``widget`` (picked when called)."""
    return f"<span style='color:{tone(widget, name).name()}'>{html}</span>"


class ToneLabel(QtWidgets.QLabel):
    """A QLabel whose text is in a tone (or the palette's own text colour), re-picked when the desktop
    switches between a light and a dark theme."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tone: str | None = None
        self._bold: bool | None = None

    def set_tone(self, name: str | None, bold: bool | None = None) -> None:
        """Text in tone ``name`` (None: the palette's text colour); ``bold`` True or False overrides
        the font's weight, None keeps it."""
        self._tone, self._bold = name, bold
        self._restyle()

    def _restyle(self) -> None:
        style = "" if self._tone is None else f"color: {tone(self, self._tone).name()};"
        if self._bold is not None:
            style += f" font-weight: {'bold' if self._bold else 'normal'};"
        if style.strip() != self.styleSheet():  # restyling costs a relayout (and sends a PaletteChange)
            self.setStyleSheet(style.strip())

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 (Qt naming)
        super().changeEvent(event)
        if event.type() == QtCore.QEvent.Type.PaletteChange and self._tone is not None:
            self._restyle()
