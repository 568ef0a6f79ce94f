"""engine.data: bundled sets, IDX / mnist.npz loaders (good, corrupt and fuzzed files), the download
(against a local HTTP server only), batches and augmentation."""
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import socket
import threading
import urllib.request
import warnings
import zipfile
from importlib import resources as importlib_resources
from pathlib import Path

import numpy as np
import pytest

from engine import data
from engine.data import DataFileError, DownloadCancelled, DownloadError

# ----------------------------------------------------------------------------------------------------
# helpers


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Serialise a uint8 array as IDX (magic 0x0800 | ndim unless given)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_file(path: Path, payload: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return path


def random_mnist(rng, n):
    """-> images (n, 28, 28) uint8, labels (n,) uint8 with every digit present when n >= 10."""
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def idx_name(stem: str, kind: str, style: str, gz: bool) -> str:
    sep = "-" if style == "dash" else "."
    return f"{stem}{sep}{kind}-ubyte" + (".gz" if gz else "")


def make_mnist_dir(directory: Path, rng, style="dash", gz=False, n_train=30, n_test=20):
    """Write the four MNIST IDX files; -> dict of the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, stem, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images, labels = random_mnist(rng, n)
        write_file(directory / idx_name(f"{stem}-images", "idx3", style, gz), idx_bytes(images), gz)
        write_file(directory / idx_name(f"{stem}-labels", "idx1", style, gz), idx_bytes(labels), gz)
        arrays[split] = (images, labels)
    return arrays


def assert_matches(dataset, images, labels):
    assert dataset.x.shape == (len(images), 28, 28, 1) and dataset.x.dtype == np.float32
    assert dataset.y.dtype == np.int64
    np.testing.assert_array_equal(np.rint(dataset.x[..., 0] * 255).astype(np.uint8), images)
    np.testing.assert_array_equal(dataset.y, labels)


def npz_bytes(compress: bool, **arrays) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------
# bundled data


def bundled(name):
    return importlib_resources.files("resources") / "data" / name


def test_bundled_files_found_through_importlib_and_match_provenance():
    record = json.loads(bundled("provenance.json").read_text())
    assert set(record["files"]) == {"mnist_bundled.npz", "digits8x8.npz"}
    for name, entry in record["files"].items():
        payload = bundled(name).read_bytes()
        assert hashlib.sha256(payload).hexdigest() == entry["sha256"], f"{name} changed without a rebuild"
        assert entry["sha256"] in bundled("PROVENANCE.md").read_text()
        meta = json.loads(str(np.load(io.BytesIO(payload), allow_pickle=False)["meta"]))
        assert meta["licence"] == entry["licence"]
    assert record["files"]["mnist_bundled.npz"]["licence"] == "CC BY-SA 3.0"
    assert record["files"]["digits8x8.npz"]["licence"] == "CC BY 4.0"
    total = sum(entry["bytes"] for entry in record["files"].values())
    assert total < 3_000_000


def test_bundled_mnist_shapes_balance_and_fixed_disjoint_split():
    train, val = data.load_bundled_mnist()
    assert (len(train), len(val)) == (4500, 500)
    for ds in (train, val):
        assert ds.x.shape[1:] == (28, 28, 1) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
        assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert np.bincount(train.y, minlength=10).tolist() == [450] * 10
    assert np.bincount(val.y, minlength=10).tolist() == [50] * 10
    # The split is the file's index arrays: disjoint, covering all 5,000, and what the loader returned.
    raw = np.load(io.BytesIO(bundled("mnist_bundled.npz").read_bytes()), allow_pickle=False)
    train_idx, val_idx = raw["train_idx"], raw["val_idx"]
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    assert np.array_equal(np.union1d(train_idx, val_idx), np.arange(5000))
    np.testing.assert_array_equal(np.rint(val.x[..., 0] * 255), raw["images"][val_idx])
    np.testing.assert_array_equal(train.y, raw["labels"][train_idx])
    # Pixels are laid out as MNIST's: digits centred in the 28x28 frame with an almost empty margin.
    ink = train.x[..., 0].mean(axis=0)
    assert ink[2:26, 2:26].sum() > 0.99 * ink.sum()


@pytest.mark.parametrize("key", ["train_idx", "val_idx"])
def test_a_bundled_index_past_the_images_is_refused(monkeypatch, key):
    keys = ("images", "labels", "train_idx", "val_idx")
    arrays = dict(data._bundled_npz("mnist_bundled.npz", keys))
    arrays[key] = arrays[key].copy()
    arrays[key][-1] = len(arrays["images"])  # one past the last image
    monkeypatch.setattr(data, "_bundled_npz", lambda filename, keys: arrays)
    with pytest.raises(DataFileError, match=f"{key} is not a valid index array"):
        data.load_bundled_mnist()


def test_digits_8x8_binary_split_is_stratified_and_scaled():
    train, test = data.load_digits_8x8()
    raw = np.load(io.BytesIO(bundled("digits8x8.npz").read_bytes()), allow_pickle=False)
    counts = np.bincount(raw["labels"], minlength=10)
    for ds in (train, test):
        assert ds.x.shape[1:] == (8, 8, 1) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
        assert 0.0 <= ds.x.min() and ds.x.max() == 1.0
        assert set(np.unique(ds.y)) == {0, 1}
    for label, digit in enumerate((0, 1)):
        n_test = int((test.y == label).sum())
        assert n_test + int((train.y == label).sum()) == counts[digit]
        assert n_test == round(0.3 * counts[digit])
    # Every image is one of the file's images of that digit, each used once across train and test.
    zeros = np.concatenate([train.x[train.y == 0], test.x[test.y == 0]])[..., 0] * 16
    expected = raw["images"][raw["labels"] == 0].astype(np.float32)
    assert sorted(map(bytes, zeros.astype(np.uint8))) == sorted(map(bytes, expected.astype(np.uint8)))


def test_digits_8x8_relabels_and_keeps_each_digits_split():
    two = data.load_digits_8x8((3, 5))
    three = data.load_digits_8x8((5, 3, 7))
    assert set(np.unique(two[0].y)) == {0, 1} and set(np.unique(three[0].y)) == {0, 1, 2}
    # "5" is label 1 in the first and 0 in the second, and its test images are the same in both.
    np.testing.assert_array_equal(two[1].x[two[1].y == 1], three[1].x[three[1].y == 0])
    for bad in [(), (1,), (1, 1), (0, 10), (-1, 2), (0.5, 1)]:
        with pytest.raises(ValueError):
            data.load_digits_8x8(bad)


def test_a_dataset_fits_a_model_whose_classes_are_its_digits():
    mnist = data.load_bundled_mnist()[1]
    threes_and_fives = data.load_digits_8x8((3, 5))[1]
    assert threes_and_fives.classes == (3, 5) and threes_and_fives.subset(slice(0, 9)).classes == (3, 5)
    assert mnist.classes is None and mnist.fits((28, 28, 1), range(10))
    assert not mnist.fits((28, 28, 1), [0, 1]) and not mnist.fits((8, 8, 1), range(10))
    assert threes_and_fives.fits((8, 8, 1), [3, 5])
    assert not threes_and_fives.fits((8, 8, 1), [0, 1])  # label 0 is a 3 here, a 0 to the model


def test_a_sample_is_distinct_rows_in_the_datas_order_fixed_by_its_seed():
    whole = data.Dataset(np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1), np.arange(50) % 10, "all")
    a, again, other = whole.sample(20, seed=4), whole.sample(20, seed=4), whole.sample(20, seed=5)
    rows = a.x.ravel().astype(int)
    assert len(set(rows)) == 20 and rows.tolist() == sorted(rows) and (a.y == rows % 10).all()
    np.testing.assert_array_equal(a.x, again.x)
    assert not np.array_equal(a.x, other.x) and a.name == "all" and whole.sample(7, 0, "seven").name == "seven"
    assert whole.sample(50, seed=4) is whole and whole.sample(80, seed=4) is whole
    with pytest.raises(ValueError, match="cannot sample -1 rows"):
        whole.sample(-1, seed=4)


# ----------------------------------------------------------------------------------------------------
# IDX and mnist.npz: good files


@pytest.mark.parametrize("style", ["dash", "dot"])
@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_dir_idx_round_trip(tmp_path, style, gz):
    arrays = make_mnist_dir(tmp_path, np.random.default_rng(1), style=style, gz=gz)
    train, test = data.load_mnist_dir(tmp_path)
    assert_matches(train, *arrays["train"])
    assert_matches(test, *arrays["test"])


def test_load_mnist_dir_accepts_one_folder_per_file(tmp_path):
    """Some archives unpack to train-images-idx3-ubyte/train-images-idx3-ubyte etc."""
    flat = make_mnist_dir(tmp_path / "flat", np.random.default_rng(2))
    nested = tmp_path / "nested"
    for file in (tmp_path / "flat").iterdir():
        (nested / file.name).mkdir(parents=True)
        (nested / file.name / file.name).write_bytes(file.read_bytes())
    train, _ = data.load_mnist_dir(nested)
    assert_matches(train, *flat["train"])


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_npz_from_folder_and_file(tmp_path, compress):
    rng = np.random.default_rng(3)
    (x_train, y_train), (x_test, y_test) = random_mnist(rng, 25), random_mnist(rng, 12)
    (tmp_path / "mnist.npz").write_bytes(npz_bytes(compress, x_train=x_train, y_train=y_train,
                                                   x_test=x_test, y_test=y_test))
    for source in (tmp_path, tmp_path / "mnist.npz"):
        train, test = data.load_mnist_dir(source)
        assert_matches(train, x_train, y_train)
        assert_matches(test, x_test, y_test)


def test_load_mnist_test_needs_and_reads_only_the_test_files(tmp_path):
    arrays = make_mnist_dir(tmp_path / "idx", np.random.default_rng(4))
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / "idx" / name).unlink()
    assert_matches(data.load_mnist_test(tmp_path / "idx"), *arrays["test"])
    with pytest.raises(DataFileError, match="missing train-images"):
        data.load_mnist_dir(tmp_path / "idx")
    x_test, y_test = random_mnist(np.random.default_rng(5), 7)
    (tmp_path / "mnist.npz").write_bytes(npz_bytes(False, x_test=x_test, y_test=y_test))
    assert_matches(data.load_mnist_test(tmp_path / "mnist.npz"), x_test, y_test)
    assert_matches(data.load_mnist_test(tmp_path), x_test, y_test)  # the folder's mnist.npz
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="missing t10k-images.*x_test, y_test"):
        data.load_mnist_test(tmp_path / "empty")


def test_devices_and_pipes_are_refused_before_reading(tmp_path):
    """Reading /dev/zero never ends (it filled the memory), nor does reading a FIFO nobody writes to."""
    from engine.model import ModelFileError, Sequential
    from engine.session import SessionFileError, open_session

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for source in ("/dev/zero", fifo):
        for read, error in ((data.read_idx, DataFileError), (lambda p: data.read_npz(p, ["x"]), DataFileError),
                            (Sequential.load, ModelFileError), (open_session, SessionFileError)):
            with pytest.raises(error, match="not a regular file"):
                read(source)


def test_read_idx_other_types_and_ranks(tmp_path):
    values = np.arange(-6, 6, dtype=">i4").reshape(3, 4)
    header = (0x0C02).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    out = data.read_idx(write_file(tmp_path / "ints.idx", header + values.tobytes(), gz=True))
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


# ----------------------------------------------------------------------------------------------------
# corrupt files: a DataFileError that names the file and says what is wrong


def corrupt_case(directory: Path, case: str) -> tuple[str, str]:
    """Write a MNIST folder with one defect -> (the file the message must name, words it must contain)."""
    make_mnist_dir(directory, np.random.default_rng(4))
    images, labels = random_mnist(np.random.default_rng(5), 30)
    img, lbl = directory / "train-images-idx3-ubyte", directory / "train-labels-idx1-ubyte"
    if case == "magic swapped":  # a labels file where the images belong
        img.write_bytes(idx_bytes(labels))
        return img.name, "magic number 0x00000801"
    if case == "garbage magic":
        img.write_bytes(b"\x12\x34\x56\x78" + img.read_bytes()[4:])
        return img.name, "bad magic"
    if case == "count too large":  # header claims 31 images, 30 present
        img.write_bytes(idx_bytes(images)[:4] + (31).to_bytes(4, "big") + idx_bytes(images)[8:])
        return img.name, "truncated"
    if case == "count too small":  # header claims 29 images, 30 present
        img.write_bytes(idx_bytes(images)[:4] + (29).to_bytes(4, "big") + idx_bytes(images)[8:])
        return img.name, "unexpected bytes"
    if case == "truncated body":
        img.write_bytes(idx_bytes(images)[:-100])
        return img.name, "truncated"
    if case == "truncated header":
        lbl.write_bytes(idx_bytes(labels)[:6])
        return lbl.name, "truncated header"
    if case == "empty file":
        lbl.write_bytes(b"")
        return lbl.name, "too short"
    if case == "mismatched counts":
        lbl.write_bytes(idx_bytes(labels[:29]))
        return lbl.name, "29 labels"
    if case == "label out of range":
        lbl.write_bytes(idx_bytes(np.where(labels == 3, 12, labels)))
        return lbl.name, "outside 0..9"
    if case == "wrong image size":
        img.write_bytes(idx_bytes(images[:, :27, :]))
        return img.name, "(30, 27, 28)"
    if case == "damaged gzip":
        img.unlink()
        gz = directory / "train-images-idx3-ubyte.gz"
        gz.write_bytes(gzip.compress(idx_bytes(images))[:-30])
        return gz.name, "gzip"
    if case == "missing file":
        lbl.unlink()
        return "train-labels-idx1-ubyte", "missing"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "magic swapped", "garbage magic", "count too large", "count too small", "truncated body",
    "truncated header", "empty file", "mismatched counts", "label out of range", "wrong image size",
    "damaged gzip", "missing file"])
def test_corrupt_idx_raises_data_file_error_naming_the_file(tmp_path, case):
    file_name, words = corrupt_case(tmp_path, case)
    with pytest.raises(DataFileError) as info:
        data.load_mnist_dir(tmp_path)
    assert file_name in str(info.value) and words in str(info.value)


def test_absurd_header_is_refused_before_allocating(tmp_path):
    header = (0x0803).to_bytes(4, "big") + (0xFFFFFFFF).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    with pytest.raises(DataFileError, match="huge.idx.*corrupt header"):
        data.read_idx(write_file(tmp_path / "huge.idx", header + b"\0" * 100))


def test_an_npz_member_claiming_more_than_any_array_may_hold_is_refused_unread(tmp_path, monkeypatch):
    """A zip member's size is the archive's claim: beyond the bound, refused even with memory to spare."""
    x_test, y_test = random_mnist(np.random.default_rng(9), 20)
    npz = write_file(tmp_path / "mnist.npz", npz_bytes(True, x_test=x_test, y_test=y_test))
    monkeypatch.setattr(data, "available_memory", lambda: 1 << 40)
    monkeypatch.setattr(data, "MAX_ARRAY_BYTES", 1000)  # x_test's 15,680 image bytes claim more
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a: pytest.fail("read a member over the bound"))
    with pytest.raises(DataFileError, match=r"mnist.npz: array 'x_test' claims 15,8.. bytes, too large"):
        data.load_mnist_test(npz)


def test_more_than_the_machine_can_hold_is_refused_before_allocating(tmp_path, monkeypatch):
    """A plausible header (a gzip bomb passes the size bound) asking for more than the free memory: Linux
    would grant it and later kill the app. Refused with the file named, before reading its body; and
    the float32 copy of images that were read is checked the same way."""
    make_mnist_dir(tmp_path, np.random.default_rng(7), n_train=30, n_test=20)
    images_bytes = 20 * 28 * 28
    monkeypatch.setattr(data, "available_memory", lambda: images_bytes - 1)
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte: the 15,680 values .* need .* GiB of memory, "
                                            r"only .* GiB is available"):
        data.load_mnist_test(tmp_path)
    monkeypatch.setattr(data, "available_memory", lambda: images_bytes)  # uint8 fits, float32 (4x) does not
    with pytest.raises(DataFileError, match="t10k-images-idx3-ubyte: 20 images as float32 need"):
        data.load_mnist_test(tmp_path)
    monkeypatch.setattr(data, "available_memory", lambda: 4 * images_bytes)
    assert len(data.load_mnist_test(tmp_path).y) == 20
    monkeypatch.setattr(data, "available_memory", lambda: None)  # no /proc/meminfo: no check
    assert len(data.load_mnist_test(tmp_path).y) == 20
    x_test, y_test = random_mnist(np.random.default_rng(8), 20)
    npz = write_file(tmp_path / "mnist.npz", npz_bytes(True, x_test=x_test, y_test=y_test))
    monkeypatch.setattr(data, "available_memory", lambda: images_bytes - 1)  # a zip bomb's member alike
    with pytest.raises(DataFileError, match="mnist.npz: array 'x_test''s 15,8.. bytes need"):
        data.load_mnist_test(npz)


def test_available_memory_is_read_from_proc_meminfo():
    available = data.available_memory()
    if not os.path.exists("/proc/meminfo"):  # not Linux: no check, loading goes ahead
        assert available is None
    else:
        assert 0 < available <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@pytest.mark.parametrize("case", ["missing key", "wrong shape", "object array", "not a zip", "mismatch",
                                  "escape in header"])
def test_corrupt_mnist_npz(tmp_path, case):
    rng = np.random.default_rng(6)
    (x, y), (xt, yt) = random_mnist(rng, 10), random_mnist(rng, 10)
    arrays = {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}
    path = tmp_path / "mnist.npz"
    expected = {"missing key": "y_test", "wrong shape": "(10, 784)", "object array": "dtype",
                "not a zip": "zip", "mismatch": "9 labels", "escape in header": "x_test': bad .npy header"}[case]
    if case == "missing key":
        del arrays["y_test"]
    elif case == "wrong shape":
        arrays["x_test"] = xt.reshape(10, 784)
    elif case == "mismatch":
        arrays["y_train"] = y[:9]
    if case == "object array":
        np.savez(path, **{**arrays, "x_train": np.array([x, None], dtype=object)})
    elif case == "not a zip":
        path.write_bytes(b"this is not an npz file at all")
    else:
        path.write_bytes(npz_bytes(True, **arrays))
    if case == "escape in header":  # NumPy's header parser compiles it: "\\h" warned besides failing
        payload = path.read_bytes()
        with zipfile.ZipFile(path, "w") as archive:
            for name, raw in zip_members_of(payload).items():
                archive.writestr(name, raw.replace(b"'|u1'", b"'|\\h'", 1) if name == "x_test.npy" else raw)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")  # ("error" would make the compiler raise, hiding the warning)
        with pytest.raises(DataFileError) as info:
            data.load_mnist_dir(tmp_path)
    assert "mnist.npz" in str(info.value) and expected in str(info.value)
    assert [str(w.message) for w in warned] == []  # a clear error and nothing else on stderr


def zip_members_of(payload: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(DataFileError, match="no such folder"):
        data.load_mnist_dir(tmp_path / "nope")
    with pytest.raises(DataFileError, match="t10k-labels-idx1-ubyte"):
        data.load_mnist_dir(tmp_path)


# ----------------------------------------------------------------------------------------------------
# fuzzing: random, truncated and mutated files give a result or DataFileError, nothing else


def mutate(rng, payload: bytes) -> bytes:
    buf = bytearray(payload)
    kind = rng.integers(4)
    if kind == 0 or not buf:  # random bytes
        return rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8).tobytes()
    if kind == 1:  # truncated
        return bytes(buf[:rng.integers(0, len(buf))])
    if kind == 2:  # a few bytes changed (often in the header, where it matters most)
        for _ in range(rng.integers(1, 5)):
            pos = rng.integers(0, min(len(buf), 64)) if rng.random() < 0.6 else rng.integers(0, len(buf))
            buf[pos] = rng.integers(0, 256)
        return bytes(buf)
    cut = rng.integers(0, len(buf))  # bytes inserted or appended
    return bytes(buf[:cut]) + rng.integers(0, 256, rng.integers(1, 20), dtype=np.uint8).tobytes() + bytes(buf[cut:])


def run_fuzz(rng, seeds: list[bytes], path: Path, load, cases: int) -> int:
    """Feed `cases` mutated files to load(path); -> how many raised DataFileError (anything else fails)."""
    refused = 0
    for case in range(cases):
        path.write_bytes(mutate(rng, seeds[case % len(seeds)]))
        try:
            load(path)
        except DataFileError as exc:
            assert path.name in str(exc), str(exc)
            refused += 1
    return refused


def test_fuzz_read_idx(tmp_path):
    rng = np.random.default_rng(7)
    images, labels = random_mnist(rng, 3)
    seeds = [idx_bytes(images), idx_bytes(labels), gzip.compress(idx_bytes(images), mtime=0),
             gzip.compress(idx_bytes(labels), mtime=0)]
    refused = run_fuzz(rng, seeds, tmp_path / "fuzz-idx3-ubyte", data.read_idx, 600)
    assert refused > 400  # the loop really exercises the error paths


def test_fuzz_mnist_npz(tmp_path):
    rng = np.random.default_rng(8)
    (x, y), (xt, yt) = random_mnist(rng, 2), random_mnist(rng, 2)
    arrays = {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}
    seeds = [npz_bytes(False, **arrays), npz_bytes(True, **arrays)]
    refused = run_fuzz(rng, seeds, tmp_path / "mnist.npz", data.load_mnist_dir, 500)
    assert refused > 350


def test_fuzz_npy_payloads_inside_a_valid_zip(tmp_path):
    """Zip CRCs catch most byte flips above; here the zip is intact and the .npy inside is mangled."""
    rng = np.random.default_rng(9)
    good = io.BytesIO()
    np.lib.format.write_array(good, random_mnist(rng, 2)[0])
    path = tmp_path / "mnist.npz"
    refused = 0
    for _ in range(500):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x_train.npy", mutate(rng, good.getvalue()))
        try:
            data.read_npz(path, ["x_train"])
        except DataFileError as exc:
            assert "mnist.npz" in str(exc)
            refused += 1
    assert refused > 350


# ----------------------------------------------------------------------------------------------------
# download, against a server on 127.0.0.1 only (this machine has no internet)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list  # set per server

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.endswith("/broken.gz"):  # promises 5000 bytes, sends 100 and hangs up
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/"srv" over HTTP on 127.0.0.1 -> (base URL, served dir, list of request paths)."""
    root = tmp_path / "srv"
    root.mkdir()
    requests = []
    handler = type("Handler", (QuietHandler,), {"requests": requests})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/files/", root / "files", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# Bypass any proxy from the environment: the test server is local.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({})).open


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def serve_mnist_files(directory: Path, rng) -> dict[str, str]:
    """Write the four MNIST .gz files (small, generated) -> {name: sha256}."""
    directory.mkdir(parents=True, exist_ok=True)
    make_mnist_dir(directory, rng, gz=True, n_train=300, n_test=40)  # ~240 KB: several chunks
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_download_with_progress_then_load(server, tmp_path):
    base, served, requests = server
    checksums = serve_mnist_files(served, np.random.default_rng(10))
    calls = []
    dest = data.download_mnist(tmp_path / "dest", progress=lambda *a: calls.append(a),
                               base_url=[closed_port_url(), base], opener=NO_PROXY, files=checksums)
    assert sorted(p.name for p in dest.iterdir()) == sorted(checksums)  # no .part left behind
    for name in checksums:
        assert (dest / name).read_bytes() == (served / name).read_bytes()
        done = [c[0] for c in calls if c[2] == name]
        size = (served / name).stat().st_size
        assert done == sorted(done) and done[0] == 0 and done[-1] == size
        assert {c[1] for c in calls if c[2] == name} == {size}
    assert len(calls) > 8  # the 235 KB images file came in several chunks
    train, test = data.load_mnist_dir(dest)
    assert (len(train), len(test)) == (300, 40)
    # A second call finds every file complete and downloads nothing.
    before = len(requests)
    data.download_mnist(dest, base_url=base, opener=NO_PROXY, files=checksums)
    assert len(requests) == before


def test_download_checksum_mismatch_is_refused_and_leaves_nothing(server, tmp_path):
    base, served, _ = server
    checksums = serve_mnist_files(served, np.random.default_rng(11))
    name = "train-labels-idx1-ubyte.gz"
    with pytest.raises(DownloadError) as info:
        data.download_mnist(tmp_path / "dest", base_url=base, opener=NO_PROXY, files={name: "0" * 64})
    assert "checksum mismatch" in str(info.value) and name in str(info.value)
    assert not info.value.offline
    assert list((tmp_path / "dest").iterdir()) == []
    # The official table checks sizes too: the generated file is refused against it.
    with pytest.raises(DownloadError, match="checksum mismatch|bytes"):
        data.download_mnist(tmp_path / "dest", base_url=base, opener=NO_PROXY)
    assert list((tmp_path / "dest").iterdir()) == []
    assert checksums  # the served files existed: the refusals were about content, not absence


def test_download_broken_connection_leaves_nothing(server, tmp_path):
    base, served, _ = server
    with pytest.raises(DownloadError) as info:
        data.download_mnist(tmp_path / "dest", base_url=base, opener=NO_PROXY, files={"broken.gz": "0" * 64})
    assert "broken.gz" in str(info.value) and not info.value.offline
    # said as it happened, not as a checksum mismatch
    assert "incomplete: 100 of 5,000 bytes" in str(info.value) or "broke after 100 bytes" in str(info.value)
    assert list((tmp_path / "dest").iterdir()) == []


def test_download_missing_on_server_reports_http_error(server, tmp_path):
    base, served, _ = server
    served.mkdir()
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        data.download_mnist(tmp_path / "dest", base_url=base, opener=NO_PROXY, files={"nothere.gz": "0" * 64})
    assert not info.value.offline


def test_download_offline_gives_a_clear_error(tmp_path):
    with pytest.raises(DownloadError) as info:
        data.download_mnist(tmp_path / "dest", base_url=[closed_port_url(), closed_port_url()],
                            opener=NO_PROXY, timeout=5)
    assert info.value.offline and "offline" in str(info.value)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert list((tmp_path / "dest").iterdir()) == []


def test_download_cancel_by_progress_or_event(server, tmp_path):
    base, served, _ = server
    checksums = serve_mnist_files(served, np.random.default_rng(12))
    big = "train-images-idx3-ubyte.gz"
    with pytest.raises(DownloadCancelled, match=big):
        data.download_mnist(tmp_path / "a", progress=lambda done, total, name: name != big or done < 70_000,
                            base_url=base, opener=NO_PROXY, files=checksums)
    # Files finished before the cancel are complete and kept; the cancelled one left neither file nor .part.
    kept = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert kept == sorted(name for name in checksums if name < big)
    stop = threading.Event()
    stop.set()
    with pytest.raises(DownloadCancelled):
        data.download_mnist(tmp_path / "b", base_url=base, opener=NO_PROXY, files=checksums, cancel=stop)
    assert list((tmp_path / "b").iterdir()) == []


def test_default_data_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert data.default_data_dir() == tmp_path / "convscope"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")  # the XDG spec says to ignore it
    assert data.default_data_dir() == Path.home() / ".local" / "share" / "convscope"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert data.default_data_dir() == Path.home() / ".local" / "share" / "convscope"


# ----------------------------------------------------------------------------------------------------
# augmentation


@pytest.fixture(scope="module")
def digits():
    """64 bundled MNIST training images, (64, 28, 28, 1) float32."""
    return data.load_bundled_mnist()[0].x[::70][:64]


def test_augment_is_deterministic_and_keeps_shape_and_range(digits):
    a = data.augment(digits, np.random.default_rng(42))
    b = data.augment(digits, np.random.default_rng(42))
    c = data.augment(digits, np.random.default_rng(43))
    assert a.shape == digits.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0
    # Every image actually changes, but stays mostly the same digit (overlaps its original).
    diff = np.abs(a - digits).mean(axis=(1, 2, 3))
    assert (diff > 0.01).all()
    axes = (1, 2, 3)
    overlap = (a * digits).sum(axis=axes) / np.sqrt((a * a).sum(axis=axes) * (digits ** 2).sum(axis=axes))
    assert np.median(overlap) > 0.5


def test_augment_with_zero_ranges_is_the_identity(digits):
    out = data.augment(digits, np.random.default_rng(0), shift=0, rotate_deg=0, scale=0, thickness=False)
    assert np.array_equal(out, digits)


def centroid(x):
    """Ink centre of mass per image -> (N, 2) (row, col)."""
    mass = x[..., 0].sum(axis=(1, 2))
    rows = (x[..., 0].sum(axis=2) * np.arange(x.shape[1])).sum(axis=1) / mass
    cols = (x[..., 0].sum(axis=1) * np.arange(x.shape[2])).sum(axis=1) / mass
    return np.stack([rows, cols], axis=1)


def test_augment_shift_moves_the_ink_within_range_and_keeps_it(digits):
    out = data.augment(digits, np.random.default_rng(1), shift=3, rotate_deg=0, scale=0, thickness=False)
    moved = centroid(out) - centroid(digits)
    assert np.abs(moved).max() <= 3.01 and np.abs(moved).mean() > 0.5
    # Bilinear resampling of a shift conserves ink (MNIST digits have a margin wider than 3 pixels).
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), digits.sum(axis=(1, 2, 3)), rtol=0.02)


def test_augment_rotation_and_zoom_keep_the_centre(digits):
    rotated = data.augment(digits, np.random.default_rng(2), shift=0, rotate_deg=15, scale=0, thickness=False)
    zoomed = data.augment(digits, np.random.default_rng(3), shift=0, rotate_deg=0, scale=0.2, thickness=False)
    for out in (rotated, zoomed):
        assert not np.array_equal(out, digits)
    # A rotation about the centre conserves ink; a zoom by s scales it by about s**2 (0.64..1.44).
    np.testing.assert_allclose(rotated.sum(axis=(1, 2, 3)), digits.sum(axis=(1, 2, 3)), rtol=0.05)
    ratio = zoomed.sum(axis=(1, 2, 3)) / digits.sum(axis=(1, 2, 3))
    assert ratio.min() > 0.6 and ratio.max() < 1.5 and ratio.std() > 0.05


def test_augment_turns_and_zooms_about_the_images_centre():
    """A disc centred on the 28x28 image's centre (13.5, 13.5) stays there however it is turned or
    zoomed; about pixel (14, 14) instead it would wander by up to ~0.7 px."""
    rows, cols = np.mgrid[0:28, 0:28]
    disc = np.clip(6.5 - np.hypot(rows - 13.5, cols - 13.5), 0, 1).astype(np.float32)[None, :, :, None]
    discs = np.repeat(disc, 40, axis=0)
    out = data.augment(discs, np.random.default_rng(5), shift=0, rotate_deg=90, scale=0.2, thickness=False)
    np.testing.assert_allclose(centroid(out), 13.5, atol=0.02)


def test_augment_thickness_amounts_lie_in_the_documented_range(monkeypatch, digits):
    seen = []
    real = data.stroke_thickness
    monkeypatch.setattr(data, "stroke_thickness", lambda x, amount: seen.append(amount) or real(x, amount))
    data.augment(np.repeat(digits, 20, axis=0), np.random.default_rng(6))
    amounts = np.concatenate(seen)
    assert -0.5 <= amounts.min() < -0.4 and 0.9 < amounts.max() <= 1.0  # erosion milder than dilation


def reference_filter(x, reduce):
    """3x3 filter with replicated edges, by brute force over the nine offsets."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[1:3]
    return reduce(np.stack([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]), axis=0)


def test_stroke_thickness_matches_grey_dilation_and_erosion(digits):
    ink = digits.sum(axis=(1, 2, 3))
    thick = data.stroke_thickness(digits, 1.0)
    thin = data.stroke_thickness(digits, -1.0)
    np.testing.assert_array_equal(thick, reference_filter(digits, np.max))
    np.testing.assert_array_equal(thin, reference_filter(digits, np.min))
    assert (thick.sum(axis=(1, 2, 3)) > 1.3 * ink).all() and (thin.sum(axis=(1, 2, 3)) < 0.8 * ink).all()
    half = data.stroke_thickness(digits, np.full(len(digits), 0.5, np.float32))
    np.testing.assert_allclose(half, (digits + thick) / 2, atol=1e-6)
    assert np.array_equal(data.stroke_thickness(digits, 0.0), digits)


def test_augment_thickness_changes_ink_both_ways(digits):
    out = data.augment(digits, np.random.default_rng(4), shift=0, rotate_deg=0, scale=0, thickness=True)
    ratio = out.sum(axis=(1, 2, 3)) / digits.sum(axis=(1, 2, 3))
    assert ratio.max() > 1.3 and ratio.min() < 0.95
