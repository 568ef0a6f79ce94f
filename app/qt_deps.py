"""Check that the Debian libraries Qt's xcb platform plugin needs are installed.

Run as `python -m app.qt_deps`: exits 0 when all are present, otherwise prints the exact
`apt-get install` line and exits 1. `make run` calls it before launching the app, because a missing
library otherwise surfaces as Qt's cryptic "could not load the Qt platform plugin xcb".
"""
from __future__ import annotations

import ctypes
import sys

# Debian package -> a shared library it provides.
XCB_PACKAGES = {
    "libegl1": "libEGL.so.1",
    "libgl1": "libGL.so.1",
    "libfontconfig1": "libfontconfig.so.1",
    "libdbus-1-3": "libdbus-1.so.3",
    "libxkbcommon0": "libxkbcommon.so.0",
    "libxkbcommon-x11-0": "libxkbcommon-x11.so.0",
    "libxcb-cursor0": "libxcb-cursor.so.0",
    "libxcb-icccm4": "libxcb-icccm.so.4",
    "libxcb-image0": "libxcb-image.so.0",
    "libxcb-keysyms1": "libxcb-keysyms.so.1",
    "libxcb-randr0": "libxcb-randr.so.0",
    "libxcb-render-util0": "libxcb-render-util.so.0",
    "libxcb-shape0": "libxcb-shape.so.0",
    "libxcb-xinerama0": "libxcb-xinerama.so.0",
    "libxcb-xkb1": "libxcb-xkb.so.1",
}


def loadable(soname: str) -> bool:
    """Whether the dynamic loader finds ``soname``. Asking the loader itself: `ldconfig -p` lives in
    /usr/sbin, outside a Debian user's PATH, and the check then passed for everyone who needed it."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_packages() -> list[str]:
    """The Debian packages of XCB_PACKAGES whose library cannot be loaded (none off Linux)."""
    if not sys.platform.startswith("linux"):
        return []
    return [pkg for pkg, soname in XCB_PACKAGES.items() if not loadable(soname)]


def main() -> int:
    missing = missing_packages()
    if not missing:
        return 0
    print("Qt's xcb platform plugin needs Debian libraries that are not installed. Install them with:")
    print("  sudo apt-get install -y " + " ".join(missing))
    return 1


if __name__ == "__main__":
    sys.exit(main())
