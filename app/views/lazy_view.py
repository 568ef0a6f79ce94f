"""``LazyView``, the base of the views drawn on a pyqtgraph canvas: they refresh only while visible, at a
rate that leaves the GUI thread free, and read out what the plot shows under the cursor."""
from __future__ import annotations

import math
import time

from PySide6 import QtCore, QtWidgets

from app.views.scenes import TimedGraphicsLayoutWidget, export_scene_png
from app.views.widgets import SteadyLabel, readout_label


class LazyView(QtWidgets.QWidget):
    """Base for views that follow the display model: work only while visible, and never hog the GUI.

    ``model_changed`` records the model and, when the view is hidden (e.g. another tab is shown),
    only marks it stale; the refresh happens on the next show. Subclasses implement ``_refresh()``
    and draw into ``self.plot = self.make_plot()`` so repaint costs are measured.

    Rate limit: a refresh plus the repaints it causes may take at most MAX_DUTY of the GUI thread's
    time; requests arriving sooner are coalesced into one deferred refresh. Under a heavily loaded
    CPU this keeps live updates from starving the event loop (the main window already limits calls
    to 10 Hz; this only bites when one update costs more than MAX_DUTY * 100 ms). A change the user
    made (another sample, layer or channel: ``_request_refresh(by_user=True)``) may take USER_DUTY:
    shown at once after a click, and still coalesced while a key repeats.
    The view keeps the model object (needed to recompute when the sample changes) but never keeps
    references to the model's arrays: everything drawn is copied into the view's own buffers.
    """

    MAX_DUTY: float | None = 0.4   # None: no rate limit (tests)
    USER_DUTY = 0.5  # the pooling view's limit of 6% held a click on Next back by up to 0.5 s

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = None
        self._stale = False
        self._last_start = -math.inf
        self._refresh_ms = 0.0
        self._paint_ms = 0.0          # repaints since the last refresh (pyqtgraph may paint twice)
        self.update_cost_ms = 0.0     # last refresh + its repaints
        self._deferred = QtCore.QTimer(self)
        self._deferred.setSingleShot(True)
        self._deferred.timeout.connect(self._run_refresh)
        self.hover: SteadyLabel | None = None  # the read-out line, see make_readout
        self._hover_hint = ""
        self._hover_pos = None                  # scene position under the cursor, None when outside

    def make_plot(self) -> TimedGraphicsLayoutWidget:
        plot = TimedGraphicsLayoutWidget(self._painted)
        plot.scene().sigMouseMoved.connect(self._hover_moved)
        plot.viewport().installEventFilter(self)  # Leave: the read-out shows its hint again
        return plot

    def make_readout(self, hint: str) -> SteadyLabel:
        """The hover read-out line (``self.hover``): what ``hover_text_at`` says the plot shows under the
        cursor, ``hint`` over anything else or outside the plot. It is read again after every repaint of
        the plot, so the value shown is the value drawn (not one from before the last training step)."""
        self._hover_hint = hint
        self.hover = readout_label(hint)
        return self.hover

    def hover_text_at(self, scene_pos: QtCore.QPointF) -> str | None:
        """What the plot shows at ``scene_pos`` (None: nothing to read there); views with a read-out
        override this."""
        return None

    def _hover_moved(self, scene_pos: QtCore.QPointF | None) -> None:
        self._hover_pos = scene_pos
        self._update_hover()

    def _update_hover(self) -> None:
        if self.hover is not None:
            text = None if self._hover_pos is None else self.hover_text_at(self._hover_pos)
            self.hover.setText(text or self._hover_hint)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QtCore.QEvent.Type.Leave:
            self._hover_moved(None)
        return super().eventFilter(watched, event)

    def model_changed(self, model) -> None:
        self._model = model
        self._request_refresh()

    def _request_refresh(self, by_user: bool = False) -> None:
        if not self.isVisible():
            self._stale = True
            return
        wait_ms = 0.0
        if self.MAX_DUTY is not None:
            duty = max(self.MAX_DUTY, self.USER_DUTY) if by_user else self.MAX_DUTY
            elapsed = (time.perf_counter() - self._last_start) * 1000.0
            wait_ms = self.update_cost_ms / duty - elapsed
        if wait_ms > 0:
            wait = int(math.ceil(wait_ms))
            if not self._deferred.isActive() or self._deferred.remainingTime() > wait:
                self._deferred.start(wait)
        else:
            self._run_refresh()

    def _run_refresh(self) -> None:
        self._deferred.stop()
        self._stale = False
        self._last_start = time.perf_counter()
        self._refresh()
        self._refresh_ms = self.update_cost_ms = (time.perf_counter() - self._last_start) * 1000.0
        self._paint_ms = 0.0

    def _painted(self, ms: float) -> None:
        self._paint_ms += ms
        self.update_cost_ms = self._refresh_ms + self._paint_ms
        self._update_hover()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self._stale:
            self._request_refresh()

    def _refresh(self) -> None:
        raise NotImplementedError

    def export_png(self, path: str) -> None:
        """Write the whole canvas (also what is scrolled out of view) to a PNG file; the main
        window's File > Export calls this for the current tab."""
        if self._stale or self._deferred.isActive():
            self._run_refresh()
        self._before_export()
        export_scene_png(self.plot.scene(), path)

    def _before_export(self) -> None:
        """Hook: bring parts that are only drawn on demand up to date, or raise ValueError("nothing to
        export yet: …") while the view shows a placeholder instead of its content."""
