"""engine.atomic: saves replace a file whole or not at all, keep its permissions, write through
links and refuse what is not a regular file."""
import os
import stat

import pytest

from engine.atomic import atomic_write, check_writable


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_save_keeps_the_permissions_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o640


def test_a_new_file_gets_the_umask_permissions_not_private_ones(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.csv", "w", newline="") as f:
            f.write("a,b\n")
    finally:
        os.umask(old)
    assert mode(tmp_path / "new.csv") == 0o640  # 0o666 & ~0o027; mkstemp alone gives 0o600


def test_a_link_is_written_through(tmp_path):
    target, link = tmp_path / "target.bin", tmp_path / "link.bin"
    target.write_bytes(b"old")
    link.symlink_to(target)
    with atomic_write(link) as f:
        f.write(b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_a_failed_save_leaves_the_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["w.bin"]


def test_folders_devices_and_missing_folders_are_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="folder") as failure:
        check_writable(tmp_path)
    assert (failure.value.filename, failure.value.strerror) == (str(tmp_path), "it is a folder")
    pipe = tmp_path / "pipe"  # like a device (/dev/null), not a regular file; safe to make in a test
    os.mkfifo(pipe)
    with pytest.raises(OSError, match="not a regular file") as failure:
        with atomic_write(pipe) as f:
            f.write(b"x")
    # the file and the bare reason apart, as for every error of engine.atomic: a caller names the file once
    assert (failure.value.filename, failure.value.strerror) == (str(pipe), "it is not a regular file (a device, "
                                                                           "a pipe...)")
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)  # still the pipe
    os.remove(pipe)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_writable(tmp_path / "missing" / "w.npz")
    assert check_writable(tmp_path / "w.npz") == str(tmp_path / "w.npz") and os.listdir(tmp_path) == []


def test_a_save_into_a_missing_folder_names_the_file_asked_for(tmp_path):
    path = tmp_path / "missing" / "w.npz"
    with pytest.raises(FileNotFoundError) as failure:
        with atomic_write(path) as f:
            f.write(b"x")
    # the file and the bare reason apart, for callers to phrase: the file named once
    assert (failure.value.filename, failure.value.strerror) == (str(path), "No such file or directory")
