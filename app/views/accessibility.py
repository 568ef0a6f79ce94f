"""Accessibility: names for the fields a screen reader could not name, focus frames on painted widgets
and item views, plots off the Tab chain, and what painted widgets show, in words."""
from __future__ import annotations

import re

from PySide6 import QtCore, QtGui, QtWidgets

FIELDS = (QtWidgets.QComboBox, QtWidgets.QAbstractSpinBox, QtWidgets.QLineEdit, QtWidgets.QAbstractSlider,
          QtWidgets.QAbstractButton, QtWidgets.QAbstractItemView, QtWidgets.QGraphicsView)


def _label_before(widget: QtWidgets.QWidget) -> QtWidgets.QLabel | None:
    """The QLabel laid out just before ``widget`` in the layout holding it (how the views label a field),
    when it names it in a word: "×" between two sizes or "a" before a matrix say less than the tooltip."""
    parent = widget.parentWidget()
    if parent is None:
        return None
    for layout in [parent.layout(), *parent.findChildren(QtWidgets.QLayout)]:
        index = -1 if layout is None else layout.indexOf(widget)
        if index > 0:
            before = layout.itemAt(index - 1).widget()
            return before if isinstance(before, QtWidgets.QLabel) and re.search(r"[^\W\d_]{4}", before.text()) \
                else None
    return None


def part_of_a_control(widget: QtWidgets.QWidget) -> bool:
    """A spin box's line edit, a combo box's pop-up list: named with their control."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, (QtWidgets.QAbstractSpinBox, QtWidgets.QComboBox)):
            return True
        parent = parent.parentWidget()
    return False


def name_fields(root: QtWidgets.QWidget, fallback: str) -> None:
    """Give every field under ``root`` that a screen reader could not name a name: the label laid out in
    front of it becomes its buddy, else its tooltip's first phrase is its accessible name, else
    ``fallback`` (the view's title). Most of the views' combo boxes, spin boxes, sliders, plots and
    canvases were read as "combo box" or nothing."""
    labelled = {label.buddy() for label in root.findChildren(QtWidgets.QLabel) if label.buddy() is not None}
    for widget in root.findChildren(QtWidgets.QWidget):
        if (not isinstance(widget, FIELDS) or isinstance(widget, QtWidgets.QScrollBar) or widget.accessibleName()
                or widget in labelled or part_of_a_control(widget)):
            continue
        if isinstance(widget, QtWidgets.QAbstractButton) and widget.text().strip():
            continue  # read by its text
        label = _label_before(widget)
        if label is not None:
            label.setBuddy(widget)
        elif widget.toolTip():
            plain = QtGui.QTextDocumentFragment.fromHtml(widget.toolTip()).toPlainText()
            phrase = re.split(r"(?<!e\.g)(?<!i\.e)[.:;]\s|\n", plain + " ", maxsplit=1)[0].strip()
            widget.setAccessibleName(phrase if len(phrase) <= 80 else phrase[:80].rsplit(" ", 1)[0] + "…")
        elif not isinstance(widget.parentWidget(), QtWidgets.QAbstractItemView):  # not a table's own header
            widget.setAccessibleName(fallback)


class FocusFramed:
    """Mixin for painted widgets that take keys (the pad, the conv stepper's canvas): a frame in the
    style's highlight colour while they have the focus, so Tab no longer lands on nothing visible.
    Call ``paint_focus_frame(painter)`` last in ``paintEvent``."""

    def paint_focus_frame(self, painter: QtGui.QPainter) -> None:
        if self.hasFocus():
            painter.setPen(QtGui.QPen(self.palette().color(QtGui.QPalette.ColorRole.Highlight), 2))
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawRect(QtCore.QRectF(self.rect()).adjusted(1, 1, -1, -1))

    def focusInEvent(self, event: QtGui.QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        super().focusInEvent(event)
        self.update()

    def focusOutEvent(self, event: QtGui.QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        super().focusOutEvent(event)
        self.update()


def off_the_tab_chain(root: QtWidgets.QWidget) -> None:
    """Plots under ``root`` take the focus on a click only: no key does anything in them, and Tab landed
    on them with nothing to show for it (twice on the Loss page)."""
    for plot in root.findChildren(QtWidgets.QGraphicsView):
        if plot.focusPolicy() & QtCore.Qt.FocusPolicy.TabFocus:
            plot.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)
    if isinstance(root, QtWidgets.QGraphicsView):
        root.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)


def frame_focus(view: QtWidgets.QAbstractItemView) -> None:
    """A highlight-coloured border while ``view`` has the focus: an empty list or table showed none."""
    view.setStyleSheet(f"{type(view).__name__}:focus {{ border: 2px solid palette(highlight); }}")


def describe_for_screen_readers(widget: QtWidgets.QWidget, text: str) -> None:
    """Set what a painted widget (a canvas, the matrix, the bars) shows, in words, as its accessible
    description, and tell an active screen reader it changed: their content was only painted."""
    if widget.accessibleDescription() == text:
        return
    widget.setAccessibleDescription(text)
    if QtGui.QAccessible.isActive():
        QtGui.QAccessible.updateAccessibility(
            QtGui.QAccessibleEvent(widget, QtGui.QAccessible.Event.DescriptionChanged))
