"""The packages import, the engine stays free of Qt, and bundled resources resolve via importlib."""
import json
import subprocess
import sys

import resources


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout


def test_engine_and_app_import():
    import app  # noqa: F401
    import app.main_window  # noqa: F401
    import engine  # noqa: F401


def test_engine_loads_no_qt_or_torch():
    code = (
        "import json, sys, pkgutil, importlib, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    if m.name != 'engine.__main__': importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(run_python(code))
    forbidden = [m for m in loaded if m.split(".")[0] in {"PySide6", "PyQt5", "PyQt6", "pyqtgraph", "torch"}]
    assert forbidden == []
    assert "engine" in loaded


def test_resources_found_through_importlib():
    root = resources.path()
    assert root.is_dir()
    names = {entry.name for entry in root.iterdir()}
    assert {"data", "weights", "icons"} <= names


def test_cli_help_runs():
    done = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "usage" in done.stdout.lower()
