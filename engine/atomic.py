"""Atomic file writes: a save either replaces the file whole or leaves it as it was.

:func:`atomic_write` writes to a temporary file in the target's folder, flushes it to disk and renames
it over the target (``os.replace`` is atomic on POSIX and Windows), so a crash, a full disk or an
exception mid-save never leaves half a file. The new file gets the permissions the old one had (or,
for a new file, what ``open`` would give: 0o666 less the umask) rather than ``mkstemp``'s private
0o600; a symbolic link is written through (the link stays, its target is replaced); anything else that
is not a regular file (a folder, a device such as /dev/null) is refused.

Its own errors carry the file in ``filename`` and only the reason in ``strerror`` ("it is a folder",
"Permission denied"), so that a caller names the file once, in its own words.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile


def _umask() -> int:
    """The process umask, read without changing it (os.umask sets it: racy with other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def new_file_mode() -> int:
    """The permission bits ``open`` gives a new file: 0o666 less the umask."""
    return 0o666 & ~_umask()


def _target(path) -> tuple[str, int]:
    """(the file to replace, with links resolved; the permission bits the new file gets)."""
    path = os.path.realpath(os.fspath(path))
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return path, new_file_mode()
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "it is a folder", path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "it is not a regular file (a device, a pipe...)", path)
    return path, stat.S_IMODE(info.st_mode)


def check_writable(path) -> str:
    """The file a save to ``path`` would write (links resolved), after trying to create a file in its
    folder; OSError (see the module doc) when it cannot be written: its folder is missing or
    read-only, or it is a folder or a device. For callers that must not find out after hours of work."""
    target, _ = _target(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"folder {folder} does not exist", target)
    fd, probe = _temporary(target, ".probe")
    os.close(fd)
    os.remove(probe)
    return target


def _temporary(target: str, suffix: str) -> tuple[int, str]:
    """A new hidden file next to ``target``: (descriptor, path); an OSError names ``target``, not the
    temporary name the user never chose."""
    try:
        return tempfile.mkstemp(prefix=".convscope-", suffix=suffix, dir=os.path.dirname(target))
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, target) from None


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", suffix: str = ".tmp", **open_options):
    """``with atomic_write(path) as f: ...`` writes ``path`` atomically (see the module doc).

    mode: "wb" or "w" (then ``open_options`` such as newline="" go to ``os.fdopen``). On an exception
    inside the block the temporary file is removed and ``path`` is untouched."""
    target, permissions = _target(path)
    fd, tmp = _temporary(target, suffix)
    try:
        os.fchmod(fd, permissions)
        with os.fdopen(fd, mode, **open_options) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the file
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
