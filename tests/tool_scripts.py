"""Scripts of tools/ (not a package) loaded as modules, for their tests."""
import importlib.util
from pathlib import Path


def load_tool(name: str):
    """tools/<name>.py as a module."""
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
