"""ConvScope's desktop app (PySide6 + pyqtgraph). GUI code only: every number comes from `engine`."""
