"""pyqtgraph canvases and their scenes: painted with the rest of the window in one repaint
(``repaint_with_window``), timed (``TimedGraphicsLayoutWidget``), sized to their laid-out scene inside a
scroll area (``fit_canvas_to_scene``) and written to PNG files (``export_scene_png``)."""
from __future__ import annotations

import math
import time
from functools import lru_cache

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets


def export_scene_png(scene: QtWidgets.QGraphicsScene, path: str) -> None:
    """Write a pyqtgraph scene to a PNG file; OSError when it cannot be written (pyqtgraph's
    exporter only returns False)."""
    from pyqtgraph.exporters import ImageExporter

    from app.export import save_png

    save_png(ImageExporter(scene).export(toBytes=True), str(path))


def fit_canvas_to_scene(plot: pg.GraphicsLayoutWidget) -> None:
    """Make ``plot``, the scrolled canvas of a scroll area, as large as its laid-out scene needs, so that
    the scroll bars reach every panel (sizes estimated per panel fell short and cut off the last rows),
    and lay the scene out at the canvas's size again."""
    ci = plot.ci
    least = ci.effectiveSizeHint(QtCore.Qt.SizeHint.MinimumSize)
    size = QtCore.QSize(math.ceil(least.width()), math.ceil(least.height()))
    frame = 2 * plot.frameWidth()  # the view's own border, around the scene
    if plot.minimumSize() != size + QtCore.QSize(frame, frame):
        plot.setMinimumSize(size + QtCore.QSize(frame, frame))
    # Qt widens the scene's top item to its least size when panels grow, but never narrows it back
    # when they shrink (the view only sets its geometry on a resize): rows fitted to a narrower
    # window were still laid out at the old, wider size, their right-hand panels outside the canvas.
    rect = QtCore.QRectF(0, 0, max(plot.width(), size.width()), max(plot.height(), size.height()))
    if ci.geometry() != rect:
        ci.setGeometry(rect)


class _CanvasFollowsScene(QtCore.QObject):
    """Event filter on a canvas' top layout item: after every re-layout of its scene (a title or a colour
    bar grown), the canvas is sized to it again (:func:`fit_canvas_to_scene`)."""

    def __init__(self, plot: pg.GraphicsLayoutWidget) -> None:
        super().__init__(plot)
        self._plot = plot
        plot.ci.installEventFilter(self)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.LayoutRequest:
            fit_canvas_to_scene(self._plot)
        return False


def canvas_follows_scene(plot: pg.GraphicsLayoutWidget) -> None:
    """Keep ``plot`` (a scrolled canvas) as large as its laid-out scene from now on."""
    _CanvasFollowsScene(plot)


def _scene_changed(rects) -> None:
    """Nothing to do: connected only for its side effect, see ``repaint_with_window``."""


class _PendingSceneUpdate(QtCore.QObject):
    """Event filter for scenes: before each queued call a scene runs, records a scene update that no
    view can see (far outside them all), so that the call finds an update already pending."""

    OFF_SCREEN = QtCore.QRectF(-1e9, -1e9, 1.0, 1.0)

    def eventFilter(self, scene: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.MetaCall:
            scene.update(self.OFF_SCREEN)
        return False


@lru_cache(maxsize=1)
def _pending_update_filter() -> _PendingSceneUpdate:
    """The one filter, made on first use (on the GUI thread, where the scenes live)."""
    return _PendingSceneUpdate()


def repaint_with_window(view: QtWidgets.QGraphicsView) -> None:
    """Let ``view``'s changes be painted with the rest of the window, in one repaint.

    When items change, a QGraphicsScene queues a pass over its dirty items
    (``QGraphicsScenePrivate::_q_processDirtyItems``), and unless a scene update was already pending
    when that pass began, the pass ends by "immediately dispatching all pending update requests on the
    views": a synchronous repaint of the whole window, inside the scene's queued call. On a tab switch
    or a live refresh the scenes of a page (and pyqtgraph's second pass after ``prepareForPaint``)
    repainted the window one after the other, 2-4 times within one stall. Two things make the pass
    leave the repaint to the event loop:

    - the scene's ``changed`` signal is connected, so the pass reports dirty areas as scene updates
      (``changed``, then an ordinary ``update()`` of each view) instead of straight to the views;
    - an event filter records an invisible scene update before each of the scene's queued calls, so
      the pass always finds one pending and returns without dispatching.

    The window then paints the views together with everything else that is dirty, once, when the
    event loop gets to it.
    """
    scene = view.scene()
    scene.changed.connect(_scene_changed)
    scene.installEventFilter(_pending_update_filter())


class TimedGraphicsLayoutWidget(pg.GraphicsLayoutWidget):
    """A GraphicsLayoutWidget that reports how long each repaint took (ms) to ``on_paint`` and is
    painted with the window (``repaint_with_window``)."""

    def __init__(self, on_paint) -> None:
        super().__init__()
        self._on_paint = on_paint
        repaint_with_window(self)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        start = time.perf_counter()
        super().paintEvent(event)
        self._on_paint((time.perf_counter() - start) * 1000.0)
