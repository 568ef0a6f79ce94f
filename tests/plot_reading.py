"""Reading pyqtgraph plots back for the tests: an axis' tick labels (text and where they are drawn), the numbers
a log axis' labels stand for, and where a curve is drawn."""
import numpy as np
from PySide6 import QtCore, QtGui


def axis_labels(axis):
    """The tick labels pyqtgraph's ``axis`` would draw now: [(its rectangle in the axis' coordinates, text)],
    blank ones left out."""
    image = QtGui.QImage(1, 1, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        texts = axis.generateDrawSpecs(painter)[2]
    finally:
        painter.end()
    return [(rect, text) for rect, _, text in texts if text]


def tick_labels(plot, side="left"):
    """An axis's tick labels: [(where it is drawn in the plot widget's pixels, text)], blank ones left out."""
    axis = plot.getPlotItem().getAxis(side)
    return [(plot.mapFromScene(axis.mapRectToScene(rect)).boundingRect(), text) for rect, text in axis_labels(axis)]


def log_label_value(text):
    """The number a log axis's label stands for: "0.2", "1", "10¹", "10⁻²"."""
    if text.startswith("10") and len(text) > 2:
        return 10.0 ** int(text[2:].translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")))
    return float(text)


def assert_labels_apart(plot):
    """No two of the left axis's labels overlap: their middles a line of text apart (pyqtgraph's own label
    rectangles are four fifths of the text's height, and labels drawn touching did not overlap in them)."""
    axis = plot.getPlotItem().getAxis("left")
    line = QtGui.QFontMetricsF(axis.style["tickFont"] or axis.font()).height()
    labels = sorted((rect.center().y(), text) for rect, text in tick_labels(plot))
    for (y, text), (next_y, next_text) in zip(labels, labels[1:]):
        assert next_y - y >= line, (text, next_text, next_y - y, line)


def drawn_points(curve):
    """Where ``curve`` is drawn, in scene coordinates: its points and nine more along each line between them."""
    x, y = curve.getData()  # as drawn: on a log axis, the logarithms
    points = np.array([[p.x(), p.y()] for p in (curve.mapToScene(QtCore.QPointF(a, b)) for a, b in zip(x, y))])
    along = np.linspace(0, 1, 10)[:, None, None]
    return (points[:-1] + along * (points[1:] - points[:-1])).reshape(-1, 2) if len(points) > 1 else points
