"""Small widgets and helpers for the views' controls and texts: labels that change often without laying
out the page again, whole-number and decimal fields, combo boxes filled by a model, buttons with
glyphs, rows of controls that fold in a narrow window, the text scale of painted views, and signed numbers
written with a real minus sign."""
from __future__ import annotations

import re

from PySide6 import QtCore, QtGui, QtWidgets


def _monospace(label: QtWidgets.QLabel) -> None:
    """Monospace font (numbers line up) and text the learner can select and copy."""
    font = label.font()
    font.setFamily("monospace")
    font.setStyleHint(font.StyleHint.Monospace)
    label.setFont(font)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)


def steady_info_label(lines: int) -> "SteadyLabel":
    """A selectable monospace text of several lines for numbers that change with every live update: a
    SteadyLabel ``lines`` lines high (longer lines wrap), so a new text never lays out the page again."""
    label = SteadyLabel("", lines=lines)
    _monospace(label.label)
    label.fit_height()
    return label


def readout_label(text: str = "") -> "SteadyLabel":
    """One selectable monospace line for hover read-outs: it takes the width the view gives it and
    never asks for more (a long read-out is clipped, the view not widened)."""
    label = SteadyLabel(text)
    _monospace(label.label)
    label.fit_height()
    return label


class SteadyLabel(QtWidgets.QWidget):
    """A line (or a few) of text that changes often (a live prediction, a hover read-out) without
    ever laying out the page around it again.

    QLabel.setText asks every layout above the label for a new pass unless the label has a fixed
    size, and on a page of plots inside scroll areas that pass costs the GUI thread 20-50 ms: Feature
    maps while training showed 60-170 ms gaps between the ticks of a 10 ms timer at each of its ~3
    refreshes a second, 24 ms at most once its prediction line was a SteadyLabel. Here the QLabel
    (``.label``) sits in a holder without a layout, so its requests stop there; the holder is
    ``lines`` lines high (the text wraps when more than one) and takes the width its layout gives it,
    at least what ``reserve``'s texts need.
    """

    def __init__(self, text: str = "", lines: int = 1, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel(text, self)
        self.label.setWordWrap(lines > 1)
        self.label.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop)
        self._lines = lines
        self._width = 0
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)
        self.fit_height()

    def fit_height(self) -> None:
        """Be ``lines`` lines of the label's font high (call again after changing the font)."""
        one_line = QtWidgets.QLabel("Xg", font=self.label.font()).sizeHint().height()
        self.setFixedHeight(one_line + (self._lines - 1) * self.label.fontMetrics().lineSpacing())

    def reserve(self, *samples: str) -> None:
        """Make sure each of these texts fits on its lines: the widest sets the least width the layout
        must give."""
        shown, wraps = self.label.text(), self.label.wordWrap()
        self.label.setWordWrap(False)  # a wrapping label's size hint is some width that wraps the text
        for sample in samples:
            self.label.setText(sample)
            self._width = max(self._width, self.label.sizeHint().width())
        self.label.setText(shown)
        self.label.setWordWrap(wraps)
        self.setMinimumWidth(self._width)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt naming)
        return QtCore.QSize(self._width, self.height())

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self.label.setGeometry(self.rect())

    def text(self) -> str:
        return self.label.text()

    def setText(self, text: str) -> None:  # noqa: N802 (the QLabel name, so it stands in for one)
        self.label.setText(text)


def model_combo() -> QtWidgets.QComboBox:
    """A combo box whose items arrive with a model (layers, channels, parameters): it fits its longest
    item whenever they change. By default Qt sizes a combo box once, when first shown, often while
    still empty, and a crowded row squeezed it: "pool1 (avg, 2×2)" read "pool1 (avg, 2×"."""
    combo = QtWidgets.QComboBox()
    combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
    # Never narrower than that either: a crowded row folds (WrapRow) or scrolls instead.
    combo.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Fixed)
    return combo


def not_a_number(text: str) -> str:
    """Why a typed ``text`` that float() refused is not a number, with the fix when it is a number
    written with a decimal comma (the way much of the world writes 0.05)."""
    typed = text.strip()
    if re.fullmatch(r"[+-]?\d*,\d+([eE][+-]?\d+)?", typed) and not _grouped_whole_number(typed):
        return f"{text!r} is not a number: write decimals with a dot ({typed.replace(',', '.')})"
    return f"{text!r} is not a number"


def signed(value: float, spec: str) -> str:
    """``value`` formatted by ``spec`` (e.g. "+.1f") with a real minus sign, U+2212, where Python writes a
    hyphen: the minus is as wide as the plus and as the formulas in the views' texts write it ("k−1")."""
    return format(value, spec).replace("-", "\N{MINUS SIGN}")


def _grouped_whole_number(text: str) -> bool:
    """Whether ``text`` is a whole number written with thousands commas ("1,000", "-12,345,678")."""
    return re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", text) is not None


class WholeNumberBox(QtWidgets.QSpinBox):
    """A QSpinBox that keeps a typed '.' or ',' on screen, as text it will not use, instead of dropping
    the key: "2.5" typed as epochs silently became 25. :meth:`problem` says why; Enter or leaving the
    field puts back the number it had before the edit. Thousands commas ("1,000") are read as such."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._before_edit = self.value()
        self.editingFinished.connect(self._edit_done)

    def _clean(self, text: str) -> str:
        """``text`` without the prefix and suffix."""
        return text.removeprefix(self.prefix()).removesuffix(self.suffix()).strip()

    def _unusable(self, text: str) -> bool:
        clean = self._clean(text)
        return ("." in clean or "," in clean) and not _grouped_whole_number(clean)

    def validate(self, text: str, pos: int):  # noqa: N802 (Qt naming)
        if self._unusable(text):
            return QtGui.QValidator.State.Intermediate, text, pos
        return super().validate(text, pos)

    def fixup(self, text: str) -> str:
        if self._unusable(text):
            return self.prefix() + self.textFromValue(self._before_edit) + self.suffix()
        return super().fixup(text)

    def focusInEvent(self, event: QtGui.QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        self._before_edit = self.value()
        super().focusInEvent(event)

    def _edit_done(self) -> None:
        self._before_edit = self.value()

    def problem(self) -> str | None:
        """Why the text shown is not a whole number, or None."""
        if self._unusable(self.text()):
            return f"{self._clean(self.text())!r} is not a whole number: type digits only"
        return None


class DecimalBox(QtWidgets.QDoubleSpinBox):
    """A QDoubleSpinBox that reads a typed decimal comma as the dot it shows. Numbers are read with a
    dot on any desktop (the window sets the C locale), where Qt drops a comma as a thousands separator:
    "0,5" became 5."""

    def validate(self, text: str, pos: int):  # noqa: N802 (Qt naming)
        return super().validate(text.replace(",", "."), pos)


def text_scale() -> float:
    """The desktop font's size against the 9 pt that painted views were laid out for (at least 1): their
    texts and the room for them grow with the window's (at 16 pt the conv stepper's stayed at 12-15 px
    beside 21-px controls, and the confusion matrix's "100%" was cut). Desktops whose default font is
    larger get a little more too (GNOME's 11 pt: 1.22)."""
    return max(1.0, QtGui.QGuiApplication.font().pointSizeF() / 9.0)


GLYPHS = "▶◀▸⏸↻❚"  # drawn on buttons, read aloud as "black right-pointing triangle"


def set_button_text(button: QtWidgets.QAbstractButton, text: str) -> None:
    """Show ``text`` with its glyphs and give screen readers the words alone ("▶ Play" -> "Play")."""
    button.setText(text)
    button.setAccessibleName("".join(ch for ch in text if ch not in GLYPHS).strip())


def glyph_button(text: str) -> QtWidgets.QPushButton:
    """A push button showing ``text`` whose accessible name is its words alone (see set_button_text)."""
    button = QtWidgets.QPushButton()
    set_button_text(button, text)
    return button


def controls_row(*parts, stretch: bool = True) -> QtWidgets.QHBoxLayout:
    """Widgets left to right (a str stands for a QLabel of that text); with ``stretch`` the spare width
    goes to the right, so the parts keep their size on a line of their own (see WrapRow)."""
    layout = QtWidgets.QHBoxLayout()
    for part in parts:
        layout.addWidget(QtWidgets.QLabel(part) if isinstance(part, str) else part)
    if stretch:
        layout.addStretch(1)
    return layout


class WrapRow(QtWidgets.QWidget):
    """Widgets side by side while the row is wide enough for all of them, else one under another: in
    a narrow window (a small screen with the Training dock open) a view's controls then make the page
    scroll down, never sideways.

    ``parts``: widgets, or layouts (each is wrapped in a widget of its own); ``stretch``: the
    stretch factor of each part side by side (0 for all by default)."""

    def __init__(self, *parts, stretch: tuple[int, ...] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._box = QtWidgets.QBoxLayout(QtWidgets.QBoxLayout.Direction.LeftToRight, self)
        self._box.setContentsMargins(0, 0, 0, 0)
        for part, factor in zip(parts, stretch or (0,) * len(parts)):
            if isinstance(part, QtWidgets.QLayout):
                holder = QtWidgets.QWidget()
                part.setContentsMargins(0, 0, 0, 0)
                holder.setLayout(part)
                part = holder
            self._box.addWidget(part, factor)

    def side_by_side(self) -> bool:
        return self._box.direction() == QtWidgets.QBoxLayout.Direction.LeftToRight

    def _part_widths(self) -> list[int]:
        """The least width of each shown part, as the row's layout counts it (hidden parts: none)."""
        items = (self._box.itemAt(i) for i in range(self._box.count()))
        return [item.minimumSize().width() for item in items if not item.isEmpty()]

    def _width_side_by_side(self) -> int:
        """The least width that holds every shown part side by side."""
        widths = self._part_widths()
        return sum(widths) + self._box.spacing() * max(len(widths) - 1, 0)

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt naming)
        # As narrow as the widest part: the row can always fold to one part per line.
        return QtCore.QSize(max(self._part_widths(), default=0), self._box.minimumSize().height())

    def _fold(self, width: int) -> None:
        fits = width >= self._width_side_by_side()
        if fits != self.side_by_side():
            self._box.setDirection(QtWidgets.QBoxLayout.Direction.LeftToRight if fits
                                   else QtWidgets.QBoxLayout.Direction.TopToBottom)
            self.updateGeometry()  # the row's height changed: the page around it lays out again

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self._fold(event.size().width())
        super().resizeEvent(event)

    def event(self, event: QtCore.QEvent) -> bool:
        # A part that grew (a longer status text) asks for a layout pass without resizing the row.
        if event.type() == QtCore.QEvent.Type.LayoutRequest:
            self._fold(self.width())
        return super().event(event)
