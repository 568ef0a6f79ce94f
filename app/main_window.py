"""ConvScope's main window (placeholder until the app issue lands)."""
from __future__ import annotations

import sys

from PySide6 import QtWidgets


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("ConvScope")
        self.resize(1200, 800)


def main(argv: list[str] | None = None) -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(argv or sys.argv)
    window = MainWindow()
    window.show()
    return app.exec()
