"""pyqtgraph canvases and their scenes: painted with the rest of the window in one repaint
(``repaint_with_window``), timed (``TimedGraphicsLayoutWidget``) and written to PNG files
(``export_scene_png``)."""
from __future__ import annotations

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
