"""The conv stepper's canvas: a :class:`~app.views.conv_stepper_scene.Scene` laid out in a rectangle
(header, grids with the operators between them, formula box) and painted with QPainter, the same way on
screen (:class:`StepperCanvas`) and into an exported frame (:func:`paint_composition` on a QImage).

Split from ``app.views.conv_stepper``; the grids themselves are painted by ``app.views.stepper_grid``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

from app.views.accessibility import FocusFramed, describe_for_screen_readers
from app.views.conv_stepper_scene import Scene
from app.views.conv_stepper_text import formula_html
from app.views.stepper_grid import (BACKGROUND, MUTED, SLOT_MIN_W, TEXT_DARK, WRITE_COLOR, PlacedGrid, cell_rgb,
                                    layout_row, paint_grid, text_colour)
from app.views.widgets import text_scale


@dataclass
class Composition:
    """A scene laid out in a rectangle (what a paint needs, and what hover tests use)."""

    rect: QtCore.QRectF
    header: QtGui.QTextDocument
    formula: QtGui.QTextDocument
    formula_top: float
    placed: list
    operators: list      # (QPointF centre, symbol, note)
    token: tuple | None  # (QRectF, symbol, text, value, scale): the number a copy step moves


MARGIN = 14


def _document(html_text: str, width: float) -> QtGui.QTextDocument:
    doc = QtGui.QTextDocument()
    doc.setDocumentMargin(0)
    font = QtGui.QFont()
    font.setPixelSize(round(14 * text_scale()))
    doc.setDefaultFont(font)
    doc.setHtml(html_text)
    doc.setTextWidth(width)
    return doc


def compose(rect: QtCore.QRectF, scene: Scene) -> Composition:
    """Lay out ``scene`` in ``rect``: header at the top, formula box at the bottom, grids in between."""
    width = rect.width() - 2 * MARGIN
    s = text_scale()

    def px(size: float) -> str:
        return f"font-size:{round(size * s)}px"

    header = _document(
        f"<div style='{px(20)}; font-weight:600; color:#1b1f24'>{html.escape(scene.title)}</div>"
        f"<div style='{px(15)}; color:#2f3943; margin-top:3px'>{html.escape(scene.explanation)}</div>"
        f"<div style='{px(12)}; color:#56606b; margin-top:3px'>{html.escape(scene.progress)}</div>", width)
    lines = [f"<div style='{px(22)}; color:#1b1f24'>{formula_html(scene.formula)}</div>"]
    if scene.numbers:
        lines.append(f"<div style='{px(17)}; color:#2f3943; margin-top:4px'>{formula_html(scene.numbers)}</div>")
    if scene.products:
        lines.append(f"<div style='{px(14)}; color:#56606b; margin-top:3px'>{html.escape(scene.products)}</div>")
    if scene.total:
        lines.append(f"<div style='{px(16)}; color:#1b1f24; font-weight:600; margin-top:4px'>"
                     f"{formula_html(scene.total)}</div>")
    formula = _document("".join(lines), width - 24)
    formula_top = rect.bottom() - MARGIN - formula.size().height() - 16
    top = rect.top() + MARGIN + header.size().height() + 10
    area = QtCore.QRectF(rect.left() + MARGIN, top, width, max(formula_top - 10 - top, 60.0))
    # 84 px between grids for the operator and its note; less in a narrow canvas, where the grids'
    # least slots and full gaps did not fit and every grid shrank to a dot.
    spare = width - SLOT_MIN_W * len(scene.grids)
    gap = min(84.0 * s, max(48.0 * s, spare / len(scene.operators))) if scene.operators else 84.0 * s
    placed = layout_row(scene.grids, [gap] * len(scene.operators), area)
    operators = []
    for (symbol, note), left, right in zip(scene.operators, placed, placed[1:]):
        x = (left.rect.right() + right.rect.left()) / 2
        y = (max(left.rect.top(), right.rect.top()) + min(left.rect.bottom(), right.rect.bottom())) / 2
        operators.append((QtCore.QPointF(x, y), symbol, note))
    token = None
    if scene.token is not None and operators:
        # The moving number sits in the first gap, above the operator: source grid → it → target grid.
        centre = operators[0][0]
        side = 46.0
        width = max(side, 9.0 * len(scene.token[1]))  # "6.10×10⁻⁷" gets a wider cell, not a tiny font
        token = (QtCore.QRectF(centre.x() - width / 2, centre.y() - 34 - side, width, side), *scene.token)
    return Composition(rect, header, formula, formula_top, placed, operators, token)


def paint_composition(p: QtGui.QPainter, comp: Composition) -> None:
    p.fillRect(comp.rect, BACKGROUND)
    p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
    p.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)
    p.save()
    p.translate(comp.rect.left() + MARGIN, comp.rect.top() + MARGIN)
    comp.header.drawContents(p)
    p.restore()
    for g in comp.placed:
        paint_grid(p, g)
    s = text_scale()
    for centre, symbol, note in comp.operators:
        font = QtGui.QFont()
        font.setPixelSize(round(34 * s))
        p.setFont(font)
        p.setPen(TEXT_DARK)
        p.drawText(QtCore.QRectF(centre.x() - 40 * s, centre.y() - 26 * s, 80 * s, 44 * s),
                   QtCore.Qt.AlignmentFlag.AlignCenter, symbol)
        if note:
            font.setPixelSize(round(13 * s))
            p.setFont(font)
            p.setPen(MUTED)
            p.drawText(QtCore.QRectF(centre.x() - 44 * s, centre.y() + 18 * s, 88 * s, 20 * s),
                       QtCore.Qt.AlignmentFlag.AlignCenter, note)
    if comp.token is not None:
        _paint_token(p, *comp.token)
    box = QtCore.QRectF(comp.rect.left() + MARGIN, comp.formula_top, comp.rect.width() - 2 * MARGIN,
                        comp.formula.size().height() + 16)
    p.setPen(QtGui.QPen(QtGui.QColor("#c3c9d1"), 1.0))
    p.setBrush(QtGui.QColor("#ffffff"))
    p.drawRoundedRect(box, 6, 6)
    p.save()
    p.translate(box.left() + 12, box.top() + 8)
    comp.formula.drawContents(p)
    p.restore()


def _paint_token(p: QtGui.QPainter, box: QtCore.QRectF, symbol: str, text: str, value: float,
                 scale: float) -> None:
    """The number a copy step moves, as a small cell with its name above it."""
    rgb = cell_rgb(value, scale)
    p.setPen(QtGui.QPen(WRITE_COLOR, 2.5))
    p.setBrush(QtGui.QColor(*rgb))
    p.drawRoundedRect(box, 4, 4)
    font = QtGui.QFont()
    font.setBold(True)
    font.setPixelSize(int(min(20, box.width() * 0.9 / max(len(text), 1) * 1.7)))
    p.setFont(font)
    p.setPen(text_colour(rgb))
    p.drawText(box, QtCore.Qt.AlignmentFlag.AlignCenter, text)
    font.setBold(False)
    s = text_scale()
    font.setPixelSize(round(13 * s))
    p.setFont(font)
    p.setPen(MUTED)
    p.drawText(QtCore.QRectF(box.center().x() - 50 * s, box.top() - 20 * s, 100 * s, 18 * s),
               QtCore.Qt.AlignmentFlag.AlignCenter, symbol)
    p.setBrush(QtCore.Qt.BrushStyle.NoBrush)


class StepperCanvas(FocusFramed, QtWidgets.QWidget):
    """Paints the current scene; hovering a cell shows its full-precision value in a tooltip."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("convStepperCanvas")
        self.setMouseTracking(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        # three grids with their texts (elided in their rooms below ~640); taller with a larger desktop font,
        # whose texts take more of it (the page scrolls rather than squeeze the grids)
        self.setMinimumSize(560, round(440 * text_scale()))
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding)
        self._scene: Scene | None = None
        self._message = ""
        self.composition: Composition | None = None
        self.setAccessibleName("Convolution step")

    def set_scene(self, scene: Scene | None, message: str = "") -> None:
        """Show scene, or when it is None the message (e.g. why the live source has nothing yet)."""
        self._scene = scene
        self._message = message
        self._compose()
        self.update()
        describe_for_screen_readers(self, message if scene is None else " ".join(
            part for part in (scene.title, scene.progress, scene.formula, scene.numbers, scene.total, scene.explanation)
            if part))

    @property
    def scene(self) -> Scene | None:
        return self._scene

    @property
    def placed(self) -> list[PlacedGrid]:
        return self.composition.placed if self.composition is not None else []

    def grid(self, key: str) -> PlacedGrid | None:
        return next((g for g in self.placed if g.spec.key == key), None)

    def hover_text(self, pos: QtCore.QPointF) -> str | None:
        for g in self.placed:
            cell = g.cell_at(pos)
            if cell is not None:
                return g.describe(*cell)
            if g.header_rect().contains(pos):
                return g.describe_header()
        return None

    def _compose(self) -> None:
        self.composition = compose(QtCore.QRectF(self.rect()), self._scene) if self._scene is not None else None

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._compose()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QtGui.QPainter(self)
        if self.composition is not None:
            paint_composition(p, self.composition)
        else:
            p.fillRect(self.rect(), BACKGROUND)
            p.setPen(MUTED)
            p.drawText(self.rect().adjusted(20, 20, -20, -20),
                       QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap, self._message)
        self.paint_focus_frame(p)
        p.end()

    def event(self, event) -> bool:
        if event.type() == QtCore.QEvent.Type.ToolTip:
            text = self.hover_text(QtCore.QPointF(event.pos()))
            if text:
                QtWidgets.QToolTip.showText(event.globalPos(), text, self)
            else:
                QtWidgets.QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

