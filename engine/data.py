"""Data for ConvScope: the bundled MNIST subset and 8x8 digits, full MNIST (IDX files, mnist.npz or a
download), mini-batches and augmentation. Standard library and NumPy only.

Every file read here is validated; anything wrong with one raises `DataFileError` (a ValueError) whose
message names the file and says what is wrong, never a bare NumPy, zip or gzip error. Declared sizes are
checked against the data before anything is allocated, so a hostile header cannot exhaust memory.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import stat
import struct
import threading
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources as _resources
from pathlib import Path

import numpy as np

__all__ = [
    "DataFileError", "DownloadError", "DownloadCancelled", "Dataset",
    "load_bundled_mnist", "load_digits_8x8", "load_mnist_dir", "load_mnist_test", "load_idx_pair", "read_idx",
    "read_npz",
    "refuse_special_file",
    "download_mnist", "default_data_dir", "MNIST_FILES", "MNIST_MIRRORS",
    "augment", "stroke_thickness",
]

# Nothing ConvScope reads is near this; it stops a forged header from asking for terabytes.
MAX_ARRAY_BYTES = 1 << 30
_CHUNK = 1 << 20

# Errors the zip, gzip and zlib modules raise on damaged input (zipfile raises RuntimeError for encrypted
# members and NotImplementedError for unknown compression methods).
_ARCHIVE_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError,
                   NotImplementedError, RuntimeError, struct.error, OverflowError)


class DataFileError(ValueError):
    """A data file is missing, damaged or not what it claims to be; the message names the file."""


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ensure_memory(nbytes: int, name: str, what: str) -> None:
    """Refuse, naming the file, an allocation the machine cannot hold: Linux would rather grant it and
    then kill the whole app (and the user's unsaved run) than raise MemoryError."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise DataFileError(f"{name}: {what} need {nbytes / 2**30:.1f} GiB of memory, only "
                            f"{available / 2**30:.1f} GiB is available")


def refuse_special_file(path, error: type[Exception] = DataFileError) -> None:
    """Raise ``error`` naming ``path`` when it is a device, a pipe or a socket: reading one may never
    end (/dev/zero fills the memory, a FIFO nobody writes to blocks). Missing files and folders are
    left to the caller's own open, which names them."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise error(f"{os.fspath(path)}: not a regular file (a device, a pipe or a socket)")


class DownloadError(OSError):
    """A download failed. `offline` is True when no server could be reached at all."""

    def __init__(self, message: str, offline: bool = False):
        super().__init__(message)
        self.offline = offline


class DownloadCancelled(DownloadError):
    """The caller cancelled a download (catch this before DownloadError); no partial file is left."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels. x: (N, H, W, 1) float32 in [0, 1] (H = W = 28 for MNIST, 8 for the 8x8 digits);
    y: (N,) int64 class indices; name: shown in the app; classes: the digit each class index stands for,
    e.g. (3, 5) when label 0 is a 3 (None: the labels are the digits themselves, as in MNIST)."""

    x: np.ndarray
    y: np.ndarray
    name: str = ""
    classes: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.x.ndim != 4 or self.y.ndim != 1 or len(self.x) != len(self.y):
            raise ValueError(f"Dataset {self.name!r}: x must be (N, H, W, C) and y (N,), "
                             f"got {self.x.shape} and {self.y.shape}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index, name: str | None = None) -> Dataset:
        """A new Dataset of the rows `index` selects (a slice, an int array or a boolean mask)."""
        return Dataset(self.x[index], self.y[index], self.name if name is None else name, self.classes)

    def fits(self, input_shape, classes) -> bool:
        """Whether a model taking ``input_shape`` (H, W, C) with ``classes`` (the digit of each output)
        can be scored on these images: the same shape, and every label the same digit to both."""
        if tuple(self.x.shape[1:]) != tuple(input_shape):
            return False
        digits = self.classes if self.classes is not None else range(int(np.max(self.y, initial=-1)) + 1)
        return [int(c) for c in classes][:len(digits)] == list(digits)

    def sample(self, n: int, seed: int, name: str | None = None) -> Dataset:
        """``n`` rows picked at random with ``seed`` and kept in the data's order (so a file's digit
        blocks stay blocks), or self when ``n`` covers it all. A small ``n`` may miss a class."""
        if n < 0:
            raise ValueError(f"cannot sample {n} rows")
        if n >= len(self):
            return self
        index = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return self.subset(index, name)


# ----------------------------------------------------------------------------------------------------
# .npz files (bundled data and Keras's mnist.npz), read without pickle and without trusting any size


def read_npz(source, keys: Sequence[str], label: str | None = None) -> dict[str, np.ndarray]:
    """Read the arrays `keys` from an .npz file (a path or a binary file object) -> {key: array}.

    Arrays keep their stored shape and dtype (numeric or unicode only; object arrays are refused).
    Raises DataFileError naming `label` (default: the path) for a missing key or any damage.
    """
    if isinstance(source, (str, os.PathLike)):
        refuse_special_file(source)
    if label is None:
        label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "npz data"
    try:
        archive = zipfile.ZipFile(source)
    except FileNotFoundError as exc:
        raise DataFileError(f"{label}: file not found") from exc
    except _ARCHIVE_ERRORS as exc:
        raise DataFileError(f"{label}: not a readable .npz (zip) file: {exc}") from exc
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        arrays = {}
        for key in keys:
            info = members.get(f"{key}.npy")
            if info is None:
                found = sorted(name[:-4] for name in members if name.endswith(".npy"))
                raise DataFileError(f"{label}: no array named {key!r} (arrays found: {found or 'none'})")
            if info.file_size > MAX_ARRAY_BYTES + 4096:
                raise DataFileError(f"{label}: array {key!r} claims {info.file_size:,} bytes, too large")
            _ensure_memory(info.file_size, label, f"array {key!r}'s {info.file_size:,} bytes")
            try:
                raw = archive.read(info)
            except _ARCHIVE_ERRORS as exc:
                raise DataFileError(f"{label}: array {key!r} is damaged: {exc}") from exc
            arrays[key] = _parse_npy(raw, f"{label}: array {key!r}")
    return arrays


def _parse_npy(raw: bytes, label: str) -> np.ndarray:
    """Decode one .npy payload after checking its header against its length. -> array (read-only)."""
    stream = io.BytesIO(raw)
    fmt = np.lib.format
    # NumPy parses the header, a Python literal ending in a newline after the 10-byte preamble, with the
    # compiler, which also warned (invalid escape sequence, on stderr) about a corrupt one holding a
    # backslash; no valid header of the dtypes accepted below holds one.
    if b"\\" in raw[10:raw.find(b"\n", 10, 1 << 20) + 1]:
        raise DataFileError(f"{label}: bad .npy header: it holds a backslash")
    try:
        version = fmt.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            version = None
        elif version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
    except Exception as exc:  # noqa: BLE001 - NumPy's header parser (ast, tokenize, dtype) on untrusted
        # bytes raises many types (ValueError, SyntaxError, TokenError, TypeError, RecursionError...);
        # all of them mean the same thing here, and nothing but parsing happens inside this try.
        raise DataFileError(f"{label}: bad .npy header: {exc}") from exc
    if version is None:
        raise DataFileError(f"{label}: unsupported .npy format version")
    if dtype.hasobject or dtype.kind not in "biufU" or dtype.itemsize == 0:
        raise DataFileError(f"{label}: unsupported dtype {dtype}")
    if any(dim < 0 for dim in shape):
        raise DataFileError(f"{label}: negative dimension in shape {shape}")
    count = math.prod(shape)
    expected = count * dtype.itemsize
    offset = stream.tell()
    if expected != len(raw) - offset:
        raise DataFileError(f"{label}: header says shape {shape} of {dtype} ({expected:,} bytes) but "
                            f"{len(raw) - offset:,} data bytes follow (truncated or corrupt)")
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order="F" if fortran else "C")


# ----------------------------------------------------------------------------------------------------
# IDX files (the original MNIST format), raw or gzipped

# IDX type codes -> big-endian dtypes (the third byte of the magic number; the fourth is the rank).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)


def _read_upto(stream, n: int) -> bytearray:
    """Read at most n bytes, in chunks, so a size from a header never becomes one huge allocation."""
    out = bytearray()
    while len(out) < n:
        chunk = stream.read(min(_CHUNK, n - len(out)))
        if not chunk:
            break
        out += chunk
    return out


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected by content) -> array with the declared shape, native dtype.

    Raises DataFileError naming the file for a bad magic number, a truncated header or body, trailing
    bytes, a damaged gzip stream or an absurd declared size.
    """
    return _read_idx(path)[1]


def _read_idx(path) -> tuple[int, np.ndarray]:
    """-> (magic number, array). See read_idx."""
    name = os.fspath(path)
    refuse_special_file(path)
    is_gzip = False
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if is_gzip:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _parse_idx(stream, name)
            return _parse_idx(raw, name)
    except FileNotFoundError as exc:
        raise DataFileError(f"{name}: file not found") from exc
    except IsADirectoryError as exc:
        raise DataFileError(f"{name}: is a directory, not an IDX file") from exc
    except (OSError, EOFError, zlib.error) as exc:
        what = "damaged gzip data" if is_gzip else "cannot read"
        raise DataFileError(f"{name}: {what}: {exc}") from exc


def _parse_idx(stream, name: str) -> tuple[int, np.ndarray]:
    """(magic number, array of the header's shape, e.g. (N, 28, 28)) from an IDX ``stream``;
    DataFileError naming ``name`` for a bad header, a short body or one larger than memory allows."""
    header = bytes(_read_upto(stream, 4))
    if len(header) < 4:
        raise DataFileError(f"{name}: only {len(header)} bytes, too short for an IDX header")
    magic = int.from_bytes(header, "big")
    code, ndim = header[2], header[3]
    if header[:2] != b"\0\0" or code not in _IDX_DTYPES or ndim == 0:
        raise DataFileError(f"{name}: bad magic number {magic:#010x}: not an IDX file "
                            f"(MNIST images have {IDX_IMAGES_MAGIC:#010x}, labels {IDX_LABELS_MAGIC:#010x})")
    dims_raw = bytes(_read_upto(stream, 4 * ndim))
    if len(dims_raw) < 4 * ndim:
        raise DataFileError(f"{name}: truncated header: magic {magic:#010x} announces {ndim} dimensions")
    dims = struct.unpack(f">{ndim}I", dims_raw)
    dtype = np.dtype(_IDX_DTYPES[code])
    count = math.prod(dims)
    nbytes = count * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise DataFileError(f"{name}: header declares dimensions {dims} ({nbytes:,} bytes), far more than "
                            "any MNIST file: corrupt header")
    _ensure_memory(nbytes, name, f"the {count:,} values its header declares")
    body = _read_upto(stream, nbytes + 1)  # one byte more reveals trailing data (and checks a gzip's CRC)
    if len(body) < nbytes:
        raise DataFileError(f"{name}: truncated: dimensions {dims} need {nbytes:,} data bytes, "
                            f"only {len(body):,} present")
    if len(body) > nbytes:
        raise DataFileError(f"{name}: unexpected bytes after the {nbytes:,} data bytes that dimensions "
                            f"{dims} declare (wrong counts in the header?)")
    array = np.frombuffer(body, dtype=dtype, count=count).reshape(dims)
    return magic, array.astype(dtype.newbyteorder("="), copy=False)


# ----------------------------------------------------------------------------------------------------
# MNIST: checks shared by every source, then the bundled subset, a directory, and the download

MNIST_SHAPE = (28, 28)


def _mnist_dataset(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str,
                   name: str) -> Dataset:
    """Validate images (N, 28, 28) integers 0..255 and labels (N,) integers 0..9 -> Dataset."""
    if images.ndim != 3 or images.shape[1:] != MNIST_SHAPE:
        raise DataFileError(f"{images_name}: images have shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1:
        raise DataFileError(f"{labels_name}: labels have shape {labels.shape}, expected (N,)")
    for array, file, what, top in ((images, images_name, "pixel", 255), (labels, labels_name, "label", 9)):
        if array.dtype.kind not in "ui":
            raise DataFileError(f"{file}: {what}s are {array.dtype}, expected integers")
        if array.size and (array.min() < 0 or array.max() > top):
            raise DataFileError(f"{file}: {what} values {array.min()}..{array.max()} outside 0..{top}")
    if len(images) != len(labels):
        raise DataFileError(f"{images_name} has {len(images):,} images but {labels_name} has "
                            f"{len(labels):,} labels")
    if len(images) == 0:
        raise DataFileError(f"{images_name}: contains no images")
    _ensure_memory(images.size * 4, images_name, f"{len(images):,} images as float32")
    x = images.astype(np.float32).reshape(len(images), *MNIST_SHAPE, 1)
    x *= np.float32(1 / 255)
    return Dataset(x, labels.astype(np.int64), name)


def _bundled_npz(filename: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read a file from resources/data through importlib.resources (works from an installed wheel)."""
    label = f"bundled data file {filename}"
    try:
        data = (_resources.files("resources") / "data" / filename).read_bytes()
    except (OSError, ModuleNotFoundError) as exc:
        raise DataFileError(f"{label} is missing ({exc}); reinstall ConvScope or run "
                            "python tools/build_resources.py") from exc
    return read_npz(io.BytesIO(data), keys, label)


def load_bundled_mnist() -> tuple[Dataset, Dataset]:
    """The bundled 5,000-image MNIST subset -> (train 4,500, val 500), a fixed split with 50 per digit
    in val. x: (N, 28, 28, 1) float32 in [0, 1]; y: (N,) int64."""
    label = "bundled data file mnist_bundled.npz"
    arrays = _bundled_npz("mnist_bundled.npz", ("images", "labels", "train_idx", "val_idx"))
    full = _mnist_dataset(arrays["images"], arrays["labels"], label, label, "mnist-bundled")
    parts = []
    for key in ("train_idx", "val_idx"):
        index = arrays[key]
        if index.ndim != 1 or index.dtype.kind not in "ui" or (index.size and
                                                              (index.min() < 0 or index.max() >= len(full))):
            raise DataFileError(f"{label}: {key} is not a valid index array")
        parts.append(full.subset(index, f"mnist-bundled/{key[:-4]}"))
    return parts[0], parts[1]


# The two spellings in circulation: the original "train-images-idx3-ubyte" and "train-images.idx3-ubyte".
_MNIST_IDX = {
    "train_images": ("train-images", "idx3"), "train_labels": ("train-labels", "idx1"),
    "test_images": ("t10k-images", "idx3"), "test_labels": ("t10k-labels", "idx1"),
}


def _find_idx(directory: Path, stem: str, kind: str) -> Path | None:
    for base in (f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"):
        for candidate in (directory / base, directory / f"{base}.gz"):
            if candidate.is_file():
                return candidate
            # Some archives unpack each file into a folder of the same name.
            if candidate.is_dir() and (candidate / candidate.name).is_file():
                return candidate / candidate.name
    return None


def load_mnist_dir(path) -> tuple[Dataset, Dataset]:
    """Full MNIST from a folder -> (train, test), x: (N, 28, 28, 1) float32 in [0, 1], y: (N,) int64.

    The folder holds the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-
    idx3-ubyte, t10k-labels-idx1-ubyte; raw or .gz; "-idx3" or ".idx3" spelling) or a Keras-style
    mnist.npz (x_train, y_train, x_test, y_test). `path` may also be the mnist.npz file itself, and may
    start with "~". Raises DataFileError naming the file for anything missing or wrong.
    """
    train, test = _load_mnist_splits(path, ("train", "test"))
    return train, test


def load_mnist_test(path) -> Dataset:
    """Only the test set of :func:`load_mnist_dir` (for evaluation: the training files need not be
    there, and are not read)."""
    return _load_mnist_splits(path, ("test",))[0]


def _load_mnist_splits(path, splits: Sequence[str]) -> list[Dataset]:
    """The datasets of ``splits`` ("train", "test") from an MNIST folder or mnist.npz, in that order."""
    path = Path(path).expanduser()
    if path.is_file():
        return _load_mnist_npz(path, splits)
    if not path.is_dir():
        raise DataFileError(f"{path}: no such folder")
    wanted = {key: names for key, names in _MNIST_IDX.items() if key.split("_")[0] in splits}
    found = {key: _find_idx(path, stem, kind) for key, (stem, kind) in wanted.items()}
    if all(found.values()):
        parts = []
        for split in splits:
            parts.append(load_idx_pair(found[f"{split}_images"], found[f"{split}_labels"], f"mnist/{split}"))
        return parts
    if (path / "mnist.npz").is_file():
        return _load_mnist_npz(path / "mnist.npz", splits)
    missing = [f"{stem}-{kind}-ubyte[.gz]" for key, (stem, kind) in wanted.items() if not found[key]]
    arrays = ", ".join(f"x_{split}, y_{split}" for split in splits)
    raise DataFileError(f"{path}: no complete MNIST set: missing {', '.join(missing)} (or put a mnist.npz "
                        f"with {arrays} there)")


def load_idx_pair(images_path, labels_path, name: str | None = None) -> Dataset:
    """A Dataset from an MNIST images IDX file and a labels IDX file (raw or gzipped): x: (N, 28, 28, 1)
    float32 in [0, 1], y: (N,) int64, called ``name`` (default: the images file's name). Raises
    DataFileError naming the file for anything missing or wrong."""
    images = _read_mnist_idx(images_path, IDX_IMAGES_MAGIC)
    labels = _read_mnist_idx(labels_path, IDX_LABELS_MAGIC)
    return _mnist_dataset(images, labels, str(images_path), str(labels_path),
                          name or os.path.basename(images_path))


def _read_mnist_idx(path: Path, magic: int) -> np.ndarray:
    """The array of IDX file ``path`` (images (N, 28, 28) or labels (N,), as the header says), when its
    magic number is ``magic``; DataFileError otherwise."""
    found, array = _read_idx(path)
    if found != magic:
        what = "images (N, 28, 28)" if magic == IDX_IMAGES_MAGIC else "labels (N,)"
        raise DataFileError(f"{path}: magic number {found:#010x}, expected {magic:#010x} for MNIST {what}")
    return array


def _load_mnist_npz(path: Path, splits: Sequence[str]) -> list[Dataset]:
    arrays = read_npz(path, [f"{xy}_{split}" for split in splits for xy in "xy"])
    return [_mnist_dataset(arrays[f"x_{split}"], arrays[f"y_{split}"], f"{path} (x_{split})",
                           f"{path} (y_{split})", f"mnist/{split}") for split in splits]


MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)
# The published checksums of the four official files (name -> size, sha256, md5).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": {"size": 9912422, "md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                   "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"},
    "train-labels-idx1-ubyte.gz": {"size": 28881, "md5": "d53e105ee54ea40749a09fcbcd1e9432",
                                   "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"},
    "t10k-images-idx3-ubyte.gz": {"size": 1648877, "md5": "9fb629c4189551a2d022fa330f9573f3",
                                  "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
    "t10k-labels-idx1-ubyte.gz": {"size": 4542, "md5": "ec29112dd5afa0611ce80d1b7f02629c",
                                  "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
}


def default_data_dir() -> Path:
    """Where ConvScope keeps downloads: $XDG_DATA_HOME/convscope (default ~/.local/share/convscope);
    %LOCALAPPDATA%\\ConvScope on Windows."""
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "ConvScope"
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"  # the spec ignores relative
    return base / "convscope"


class _MirrorFailed(Exception):
    """One mirror could not deliver a good copy; `unreachable` when no connection was made."""

    def __init__(self, message: str, unreachable: bool):
        super().__init__(message)
        self.unreachable = unreachable


def download_mnist(dest_dir=None, progress: Callable[[int, int | None, str], object] | None = None,
                   base_url: str | Sequence[str] | None = None, opener: Callable | None = None,
                   cancel: threading.Event | None = None, files: Mapping[str, str] | None = None,
                   timeout: float = 30.0) -> Path:
    """Download the four MNIST .gz files into dest_dir (default default_data_dir()/"mnist") -> dest_dir.

    Each file is fetched from the first mirror (`base_url`: one URL prefix or several; default
    MNIST_MIRRORS) that delivers it with the right checksum, written to `name.part` and renamed only once
    verified, so a half-finished or wrong download never looks complete. Files already present with the
    right checksum are kept. `progress(done_bytes, total_bytes or None, filename)` is called per chunk,
    per file; returning False cancels, as does setting `cancel`: both raise DownloadCancelled.
    `files` maps file name -> expected sha256 (default: the official MNIST files, also checked by size and
    md5). `opener(url, timeout=...)` returns a response (default urllib.request.urlopen).
    Raises DownloadError (with `.offline` True when no mirror could be reached) naming what failed.
    """
    dest = Path(dest_dir) if dest_dir is not None else default_data_dir() / "mnist"
    bases = list(MNIST_MIRRORS) if base_url is None else [base_url] if isinstance(base_url, str) else list(base_url)
    expected = MNIST_FILES if files is None else {name: {"sha256": sha} for name, sha in files.items()}
    opener = opener or urllib.request.urlopen
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the download folder {dest}: {exc}") from exc
    for name, expect in expected.items():
        final = dest / name
        if final.is_file() and _file_sha256(final) == expect["sha256"]:
            if progress is not None:
                size = final.stat().st_size
                progress(size, size, name)
            continue
        failures = []
        for base in bases:
            url = base.rstrip("/") + "/" + name
            try:
                _fetch(url, final, expect, progress, cancel, opener, timeout)
                break
            except _MirrorFailed as exc:
                failures.append((url, exc))
        else:
            tried = "\n".join(f"  {url}: {exc}" for url, exc in failures)
            if all(exc.unreachable for _, exc in failures):
                raise DownloadError(f"Could not download {name}: no server could be reached. You seem to be "
                                    "offline (or a proxy or firewall blocks the connection). Try again when "
                                    "online, or download the four MNIST files another way and open their "
                                    f"folder. Tried:\n{tried}", offline=True)
            raise DownloadError(f"Could not download {name}: every mirror failed. Tried:\n{tried}")
    return dest


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, final: Path, expect: Mapping, progress, cancel, opener, timeout: float) -> None:
    """Stream url into final.part, verify size/sha256/md5, then rename to final. Raises _MirrorFailed or
    DownloadCancelled; the .part file never survives a failure."""
    part = final.with_name(final.name + ".part")
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if "md5" in expect else None
    done = 0
    try:
        try:
            response = opener(url, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise _MirrorFailed(f"HTTP {exc.code} {exc.reason}", unreachable=False) from exc
        except ValueError as exc:  # urllib's answer to a malformed URL
            raise _MirrorFailed(f"bad URL ({exc})", unreachable=False) from exc
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise _MirrorFailed(f"cannot connect ({reason})", unreachable=True) from exc
        try:
            with response, open(part, "wb") as out:
                total = _content_length(response) or expect.get("size")
                _report(progress, cancel, done, total, final.name)
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    sha256.update(chunk)
                    if md5 is not None:
                        md5.update(chunk)
                    done += len(chunk)
                    if total is not None and done > total:
                        raise _MirrorFailed(f"sent more than the expected {total:,} bytes", unreachable=False)
                    _report(progress, cancel, done, total, final.name)
                out.flush()
                os.fsync(out.fileno())
        except DownloadCancelled:  # an OSError too, but not the mirror's fault
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise _MirrorFailed(f"connection broke after {done:,} bytes ({exc})", unreachable=False) from exc
        if total is not None and done != total:
            raise _MirrorFailed(f"incomplete: {done:,} of {total:,} bytes", unreachable=False)
        if sha256.hexdigest() != expect["sha256"] or (md5 is not None and md5.hexdigest() != expect["md5"]):
            raise _MirrorFailed(f"checksum mismatch: got sha256 {sha256.hexdigest()}, expected {expect['sha256']}; "
                                "the file was discarded", unreachable=False)
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)


def _content_length(response) -> int | None:
    value = getattr(response, "headers", {}).get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _report(progress, cancel, done: int, total: int | None, name: str) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(f"download of {name} cancelled")
    if progress is not None and progress(done, total, name) is False:
        raise DownloadCancelled(f"download of {name} cancelled")


# ----------------------------------------------------------------------------------------------------
# The 8x8 digits (scikit-learn's copy of the UCI set) for the tiny8x8 experiment

DIGITS_SPLIT_SEED = 2
DIGITS_TEST_FRACTION = 0.3


def load_digits_8x8(classes: Sequence[int] = (0, 1)) -> tuple[Dataset, Dataset]:
    """The bundled 8x8 digits of `classes` -> (train, test), a fixed stratified 70/30 split.

    x: (N, 8, 8, 1) float32 in [0, 1] (the 0..16 counts divided by 16); y: (N,) int64, the position of
    the digit in `classes` (so (3, 5) gives labels 0 for "3" and 1 for "5"). Each digit's split is fixed
    on its own, so a digit's test images are the same whichever other classes are chosen.
    """
    classes = tuple(classes)
    if (len(classes) < 2 or len(set(classes)) != len(classes)
            or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 9 for c in classes)):
        raise ValueError(f"classes must be two or more distinct digits 0..9, got {classes!r}")
    label = "bundled data file digits8x8.npz"
    arrays = _bundled_npz("digits8x8.npz", ("images", "labels"))
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 3 or images.shape[1:] != (8, 8) or labels.shape != images.shape[:1]:
        raise DataFileError(f"{label}: shapes {images.shape} and {labels.shape}, expected (N, 8, 8) and (N,)")
    train_idx, test_idx, train_y, test_y = [], [], [], []
    for new_label, digit in enumerate(classes):
        rng = np.random.default_rng([DIGITS_SPLIT_SEED, int(digit)])
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_test = round(len(idx) * DIGITS_TEST_FRACTION)
        for out, out_y, part in ((test_idx, test_y, idx[:n_test]), (train_idx, train_y, idx[n_test:])):
            out.append(part)
            out_y.append(np.full(len(part), new_label, dtype=np.int64))
    x = (images.astype(np.float32) / np.float32(16)).reshape(-1, 8, 8, 1)
    name = "digits8x8[" + ",".join(str(int(c)) for c in classes) + "]"
    result = []
    for split, idx, y in (("train", train_idx, train_y), ("test", test_idx, test_y)):
        idx, y = np.concatenate(idx), np.concatenate(y)
        order = np.argsort(idx, kind="stable")  # keep the file's order within a split
        result.append(Dataset(x[idx[order]], y[order], f"{name}/{split}", tuple(int(c) for c in classes)))
    return result[0], result[1]


# ----------------------------------------------------------------------------------------------------
# Augmentation


def _filter3x3(x: np.ndarray, op) -> np.ndarray:
    """3x3 grey max (op=np.maximum) or min (np.minimum) filter of x: (N, H, W, C), separable, edges
    replicated (so the border neither gains nor loses ink from outside the image)."""
    p = np.concatenate([x[:, :1], x, x[:, -1:]], axis=1)
    rows = op(op(p[:, :-2], p[:, 1:-1]), p[:, 2:])
    p = np.concatenate([rows[:, :, :1], rows, rows[:, :, -1:]], axis=2)
    return op(op(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])


def stroke_thickness(x: np.ndarray, amount) -> np.ndarray:
    """Make strokes thicker or thinner. x: (N, H, W, C) in [0, 1]; amount: scalar or (N,) in [-1, 1].

    amount > 0 blends each image towards its 3x3 grey dilation (1 = fully dilated, more ink), < 0 towards
    its 3x3 grey erosion (-1 = fully eroded, less ink), 0 leaves it unchanged. -> (N, H, W, C), x's dtype.
    """
    t = np.broadcast_to(np.asarray(amount, dtype=x.dtype), (len(x),)).reshape(-1, 1, 1, 1)
    target = np.where(t > 0, _filter3x3(x, np.maximum), _filter3x3(x, np.minimum))
    weight = np.abs(t)
    return (1 - weight) * x + weight * target  # exact at |t| = 0 and 1


def augment(x: np.ndarray, rng: np.random.Generator, shift: float = 2.0, rotate_deg: float = 10.0,
            scale: float = 0.1, thickness: bool = True) -> np.ndarray:
    """A random small distortion of every image, for training. x: (N, H, W, C) float in [0, 1] ->
    (N, H, W, C), same dtype, values in [0, 1].

    Per image, uniformly: a shift of up to `shift` pixels in each direction, a rotation of up to
    `rotate_deg` degrees and a zoom by a factor in [1 - scale, 1 + scale], all about the image centre and
    resampled bilinearly (outside the image counts as background 0); then, when `thickness`, a stroke
    thickness change by stroke_thickness with an amount in [-0.5, 1] (erosion is kept milder because thin
    strokes vanish quickly). Fully vectorised. Deterministic for the state of rng; zero ranges and
    thickness=False return x unchanged.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    n, h, w, c = x.shape
    dtype = x.dtype
    ty = rng.uniform(-shift, shift, n).astype(dtype)
    tx = rng.uniform(-shift, shift, n).astype(dtype)
    angle = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, n)).astype(dtype)
    zoom = rng.uniform(1 - scale, 1 + scale, n).astype(dtype)
    amount = rng.uniform(-0.5, 1.0, n).astype(dtype) if thickness else None

    # Inverse mapping: output pixel q reads source p = R(-angle) (q - centre - t) / zoom + centre.
    cy, cx = (h - 1) / 2, (w - 1) / 2
    a = (np.cos(angle) / zoom)[:, None, None]
    b = (np.sin(angle) / zoom)[:, None, None]
    qy = (np.arange(h, dtype=dtype) - dtype.type(cy))[None, :, None] - ty[:, None, None]  # (N, H, 1)
    qx = (np.arange(w, dtype=dtype) - dtype.type(cx))[None, None, :] - tx[:, None, None]  # (N, 1, W)
    # Clipping to [-1, H] keeps indices inside the padded image; any point beyond is background anyway.
    sy = np.clip(a * qy + b * qx + dtype.type(cy), -1, h)
    sx = np.clip(a * qx - b * qy + dtype.type(cx), -1, w)

    # Zero border: one row/col before, two after (a point at exactly H reads rows H and H+1 of the image).
    hp, wp = h + 3, w + 3
    padded = np.zeros((n, hp, wp, c), dtype=dtype)
    padded[:, 1:h + 1, 1:w + 1] = x
    flat = padded.reshape(n * hp * wp, c)
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = (sy - y0)[..., None], (sx - x0)[..., None]
    idx = (np.arange(n)[:, None, None] * (hp * wp) + (y0.astype(np.intp) + 1) * wp + (x0.astype(np.intp) + 1))
    top = flat[idx] * (1 - fx) + flat[idx + 1] * fx
    bottom = flat[idx + wp] * (1 - fx) + flat[idx + wp + 1] * fx
    out = top * (1 - fy) + bottom * fy
    if amount is not None:
        out = stroke_thickness(out, amount)
    return np.clip(out, 0, 1, out=out)
