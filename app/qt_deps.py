"""Check that the Debian libraries Qt's xcb platform plugin needs are installed.

Run as `python -m app.qt_deps`: exits 0 when all are present, otherwise prints the exact
`apt-get install` line and exits 1. `make run` calls it before launching the app, because a missing
library otherwise surfaces as Qt's cryptic "could not load the Qt platform plugin xcb".
"""
from __future__ import annotations

import subprocess
import sys

# Debian package -> a shared library it provides (as listed by `ldconfig -p`).
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


def installed_libraries() -> set[str]:
    """Sonames known to the dynamic linker."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:  # no ldconfig (not Linux): nothing to check
        return set(XCB_PACKAGES.values())
    return {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}


def missing_packages() -> list[str]:
    libs = installed_libraries()
    return [pkg for pkg, soname in XCB_PACKAGES.items() if soname not in libs]


def main() -> int:
    missing = missing_packages()
    if not missing:
        return 0
    print("Qt's xcb platform plugin needs Debian libraries that are not installed. Install them with:")
    print("  sudo apt-get install -y " + " ".join(missing))
    return 1


if __name__ == "__main__":
    sys.exit(main())
