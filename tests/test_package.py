"""The packages import, the engine stays free of Qt, and bundled resources resolve via importlib."""
import json
import os
import subprocess
import sys
from pathlib import Path

import resources

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout


def test_ci_stops_when_torch_is_required_but_missing(tmp_path):
    """.ci/run sets CONVSCOPE_REQUIRE_TORCH=1: a torch that failed to install must not turn the oracle
    tests into skips. Here "torch" is a module that fails to import."""
    (tmp_path / "torch.py").write_text('raise ImportError("simulated: no torch wheel")\n')
    env = {**os.environ, "CONVSCOPE_REQUIRE_TORCH": "1", "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_text.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stdout + done.stderr  # pytest's usage error: nothing ran
    assert "CONVSCOPE_REQUIRE_TORCH=1 but torch cannot be imported: simulated: no torch wheel" in done.stderr
    env.pop("CONVSCOPE_REQUIRE_TORCH")
    assert subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_text.py"],
                          cwd=ROOT, env=env, capture_output=True, timeout=120).returncode == 0


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
