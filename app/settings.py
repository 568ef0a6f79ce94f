"""What the app remembers between sessions (window geometry, last training settings, data choice).

A thin wrapper over QSettings. Structured values are stored as JSON text, so the INI backend cannot
change their types, and every read is defensive: a stale, hand-edited or corrupt entry reads as
"nothing saved" instead of breaking the start-up.
"""
from __future__ import annotations

import json

from PySide6 import QtCore


class Settings:
    """``Settings()``: the user's ConvScope settings; ``Settings(path)``: an INI file (tests, benchmarks)."""

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            self.qsettings = QtCore.QSettings("ConvScope", "ConvScope")
        else:
            self.qsettings = QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)

    def _bytes(self, key: str) -> QtCore.QByteArray | None:
        value = self.qsettings.value(key)
        return value if isinstance(value, QtCore.QByteArray) and not value.isEmpty() else None

    def _json(self, key: str, kind: type):
        text = self.qsettings.value(key)
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        return value if isinstance(value, kind) else None

    # window layout
    def geometry(self) -> QtCore.QByteArray | None:
        return self._bytes("window/geometry")

    def window_state(self) -> QtCore.QByteArray | None:
        return self._bytes("window/state")

    def set_window(self, geometry: QtCore.QByteArray, state: QtCore.QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)

    # training settings: the training panel's config_dict()
    def training(self) -> dict:
        return self._json("training/config", dict) or {}

    def set_training(self, values: dict) -> None:
        self.qsettings.setValue("training/config", json.dumps(values))

    # data: {"key": DATASETS key, "path": folder for full MNIST or None}
    def dataset(self) -> dict:
        return self._json("data/choice", dict) or {}

    def set_dataset(self, key: str, path: str | None) -> None:
        self.qsettings.setValue("data/choice", json.dumps({"key": key, "path": path}))

    # the folder file dialogs start in
    def last_dir(self) -> str:
        value = self.qsettings.value("files/last_dir")
        return value if isinstance(value, str) else ""

    def set_last_dir(self, directory: str) -> None:
        self.qsettings.setValue("files/last_dir", directory)

    # whether replacing or closing over work no session holds asks first ("Don't ask again" turns it off)
    def ask_before_discarding(self) -> bool:
        return self._json("confirm/discard", bool) is not False

    def set_ask_before_discarding(self, ask: bool) -> None:
        self.qsettings.setValue("confirm/discard", json.dumps(bool(ask)))

    def sync(self) -> None:
        self.qsettings.sync()
