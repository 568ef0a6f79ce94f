"""A QProgressBar whose new value is painted with the window's next repaint, not at once.

QProgressBar.setValue calls ``repaint()``: a synchronous paint of the window's whole dirty region
(the region Qt collects from every widget that called ``update()`` since the last repaint), then and
there. The window's status clock moves two bars five times a second while training, so a tab switch
or a view refresh that had just made the page dirty was painted inside the clock's slot, adding the
page's paint (10-25 ms) to the slot instead of leaving it to the event loop's next pass.
"""
from __future__ import annotations

from PySide6 import QtWidgets


class DeferredProgressBar(QtWidgets.QProgressBar):
    """QProgressBar with ``setValue`` asking for an ordinary (posted, coalesced) update."""

    def setValue(self, value: int) -> None:  # noqa: N802 (Qt naming)
        if value == self.value():
            return
        # repaint() does nothing while updates are disabled; enabling them again calls update()
        self.setUpdatesEnabled(False)
        try:
            super().setValue(value)
        finally:
            self.setUpdatesEnabled(True)
