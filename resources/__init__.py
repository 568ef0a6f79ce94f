"""Bundled data, pretrained weights and icons, read through importlib.resources (works from a wheel)."""
from importlib import resources as _resources


def path(*parts: str):
    """Traversable for a bundled file, e.g. ``path("weights", "vgg7.npz")``."""
    node = _resources.files(__name__)
    for part in parts:
        node = node / part
    return node
