"""Fuzzing every file the app reads: weights, sessions, full-MNIST folders and npz, settings.

Each loader gets >= 500 mutated files from seeded loops (no test depends on luck: the seeds are fixed).
Mutations work at four levels, because a zip's CRCs reject most plain byte flips before any parser
sees them: (1) the whole file's bytes (random, truncated, flipped, inserted); (2) one member's bytes
inside a zip rewritten with valid CRCs; (3) members dropped, added, renamed or replaced by arrays of
the wrong shape, dtype (object arrays need pickle), NaN/inf, 0-d or empty; (4) the JSON inside (model
spec, session manifest) edited at random paths with garbage values, absurd sizes among them.

The contract checked on every case: the load either succeeds (and then gives something usable) or
raises the module's error class with a message naming the file; nothing else escapes, nothing
allocates without bound (a memory ceiling turns that into a failure instead of a swamped machine)
and the model already loaded is untouched (weights compared before/after).
engine.data's own byte-level fuzz loops (tests/test_data.py) are not repeated: here the MNIST
folder and npz cases are structurally valid files with wrong contents.
"""
import copy
import gzip
import io
import json
import math
import resource
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine import data, presets
from engine.data import DataFileError
from engine.model import ModelFileError, Sequential
from engine.session import Session, SessionFileError, open_session, save_session
from engine.timeline import KernelTimeline
from engine.trainer import TrainConfig, Trainer

CASES = 520
MEMORY_HEADROOM = 1 << 30  # the most any single fuzz case may add to the process (address space)


@pytest.fixture
def memory_ceiling():
    """Cap this process's address space at its current size + MEMORY_HEADROOM while the test runs, so
    a file that makes a loader allocate without bound fails with MemoryError instead of thrashing."""
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = current + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ---------------------------------------------------------------------------------------------------
# mutations


GARBAGE = [None, True, False, 0, -1, math.inf, -math.inf, math.nan, -(2**31), 2**31, 10**9, 10**12, 2**64,
           1e308, -1e308, 0.5, -0.0,
           "", "x", "NaN", "Infinity", "..", "conv1", "SAME", "VALID", "relu", [], [1], [0, 0], [-1, 28, 1],
           [10**9, 10**9, 1], [28, 28], {}, {"type": "Dense"}, {"__array__": "nowhere"}, "\u0000" * 3,
           "a" * 5000, list(range(50))]


def byte_mutation(rng, payload: bytes) -> bytes:
    """Random bytes, a truncation, a few changed bytes, or bytes inserted."""
    buf = bytearray(payload)
    kind = rng.integers(4)
    if kind == 0 or not buf:
        return rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes()
    if kind == 1:
        return bytes(buf[:rng.integers(0, len(buf))])
    if kind == 2:
        for _ in range(rng.integers(1, 6)):
            buf[rng.integers(0, len(buf))] = rng.integers(0, 256)
        return bytes(buf)
    cut = rng.integers(0, len(buf) + 1)
    inserted = rng.integers(0, 256, rng.integers(1, 40), dtype=np.uint8).tobytes()
    return bytes(buf[:cut]) + inserted + bytes(buf[cut:])


def zip_members(payload: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zip_bytes(members: dict[str, bytes], compress: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return out.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, allow_pickle=True)
    return out.getvalue()


def bad_array(rng, like: np.ndarray) -> np.ndarray:
    """An array that should not be accepted in place of ``like`` (some happen to fit: the loader decides)."""
    shape = like.shape
    choices = [
        lambda: np.zeros(shape + (1,), like.dtype),                       # one axis too many
        lambda: np.zeros(shape[1:], like.dtype),                          # one axis too few
        lambda: np.zeros((0,) + shape[1:], like.dtype),                   # empty
        lambda: np.array(3.0),                                            # 0-d
        lambda: np.full(shape, {"f": np.nan, "u": 255, "i": -1}.get(like.dtype.kind, "?"), like.dtype),
        lambda: np.full(shape, np.inf, np.float32),
        lambda: np.ones(shape, np.complex64),
        lambda: np.ones(shape, bool),
        lambda: np.ones(shape, np.int64) * 10**12,
        lambda: np.full(shape, "x", dtype="<U3"),
        lambda: np.array([{"a": 1}], dtype=object),                       # needs pickle
        lambda: np.asfortranarray(np.ones(shape[::-1] + (2,), like.dtype)),
        lambda: np.zeros(tuple(d + 1 for d in shape), like.dtype),      # off by one everywhere
    ]
    return choices[rng.integers(len(choices))]()


def json_mutation(rng, value, edits: int):
    """``value`` (parsed JSON) with ``edits`` random edits: a key deleted, a value replaced by garbage,
    a list element duplicated or dropped, at random depths."""
    value = json.loads(json.dumps(value))
    for _ in range(edits):
        parent, key = None, None
        node = value
        while isinstance(node, (dict, list)) and node and (parent is None or rng.random() < 0.7):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, keys[rng.integers(len(keys))]
            node = parent[key]
        # a copy: a later edit may descend into it (editing GARBAGE itself, or nesting a list in itself)
        garbage = copy.deepcopy(GARBAGE[rng.integers(len(GARBAGE))])
        if parent is None:
            return garbage
        action = rng.integers(4)
        if action == 0 and isinstance(parent, dict):
            del parent[key]
        elif action == 1 and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        elif action == 2 and isinstance(parent, list):
            del parent[key]
        else:
            parent[key] = garbage
    return value


def json_text(value) -> str:
    """JSON that may hold NaN/inf (allowed in the garbage on purpose: json.loads accepts them)."""
    return json.dumps(value, allow_nan=True)


def npz_mutation(rng, payload: bytes, json_member: str) -> bytes:
    """One mutated version of an .npz ``payload`` whose member ``json_member`` holds a JSON string."""
    members = zip_members(payload)
    names = list(members)
    level = rng.integers(10)
    if level < 2:  # (1) the file's bytes
        return byte_mutation(rng, payload)
    if level < 4:  # (2) one member's bytes, valid zip around it
        name = names[rng.integers(len(names))]
        members[name] = byte_mutation(rng, members[name])
    elif level < 5:  # (3a) members dropped, duplicated under another name, or junk added
        action = rng.integers(3)
        name = names[rng.integers(len(names))]
        if action == 0:
            del members[name]
        elif action == 1:
            members["junk.npy"] = npy_bytes(np.arange(5))
        else:
            members[name.replace(".npy", "_x.npy")] = members.pop(name)
    elif level < 7:  # (3b) an array replaced by a wrong one
        name = names[rng.integers(len(names))]
        like = np.lib.format.read_array(io.BytesIO(members[name]), allow_pickle=False)
        members[name] = npy_bytes(bad_array(rng, like))
    else:  # (4) the JSON edited
        text = str(np.lib.format.read_array(io.BytesIO(members[json_member]), allow_pickle=False))
        edited = json_mutation(rng, json.loads(text), int(rng.integers(1, 4)))
        carrier = rng.integers(6)
        if carrier == 0:
            stored = np.frombuffer(json_text(edited).encode(), np.uint8)  # bytes, not a string array
        elif carrier == 1:
            stored = np.array([json_text(edited)] * 2)                     # not a single string
        else:
            stored = np.array(json_text(edited))
        members[json_member] = npy_bytes(stored)
    return zip_bytes(members, compress=bool(rng.integers(2)))


def run_cases(rng, seeds: list[bytes], path: Path, mutate, load, error, cases: int = CASES) -> dict:
    """Write ``cases`` mutated files to ``path`` and call ``load(path)`` on each.

    Returns counts {"refused", "loaded"}; any exception other than ``error`` propagates (the test
    fails showing it), and every ``error`` must name the file.
    """
    counts = {"refused": 0, "loaded": 0}
    for case in range(cases):
        path.write_bytes(mutate(rng, seeds[case % len(seeds)]))
        try:
            load(path)
        except error as exc:
            assert path.name in str(exc), f"case {case}: the message does not name the file: {exc}"
            counts["refused"] += 1
        else:
            counts["loaded"] += 1
    return counts


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------------
# weights


SMALL_SPECS = [
    presets.get_preset("tiny8x8"),
    {"name": "small", "input_shape": [12, 12, 1], "classes": list(range(10)), "loss": "softmax_cross_entropy",
     "layers": [{"type": "Conv2D", "name": "conv1", "filters": 4, "kernel": 3, "padding": "SAME"},
                {"type": "Activation", "name": "relu1", "fn": "relu"},
                {"type": "MaxPool2D", "name": "pool1", "size": 2},
                {"type": "Flatten", "name": "flatten"},
                {"type": "Dense", "name": "dense1", "units": 10}]},
]


@pytest.fixture(scope="module")
def weight_seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    seeds = []
    for i, spec in enumerate(SMALL_SPECS):
        for dtype in (np.float32, np.float64):
            path = folder / f"seed{i}{np.dtype(dtype).name}.npz"
            Sequential(spec, seed=i, dtype=dtype).save(path)
            seeds.append(path.read_bytes())
    return seeds


def test_fuzz_weights_load(weight_seeds, tmp_path, memory_ceiling):
    """Sequential.load: a usable model or ModelFileError naming the file."""
    loaded = []

    def load(path):
        model = Sequential.load(path)
        # a file that loads gives a model that works, with finite weights
        out = model.predict_proba(np.zeros((1, *model.input_shape), model.dtype))
        assert out.shape == (1, len(model.classes)) and np.isfinite(out).all()
        loaded.append(model.name)

    counts = run_cases(np.random.default_rng(101), weight_seeds, tmp_path / "fuzzed.npz",
                       lambda rng, seed: npz_mutation(rng, seed, "__spec__.npy"), load, ModelFileError)
    print(f"test_fuzz_weights_load: {counts}")
    assert counts["refused"] + counts["loaded"] == CASES
    assert counts["refused"] > 0.6 * CASES, counts  # the mutations do reach the error paths


def test_fuzz_load_weights_leaves_the_model_untouched(weight_seeds, tmp_path, memory_ceiling):
    """model.load_weights: on refusal the model's weights are exactly as before; on success they are
    the file's."""
    model = Sequential(SMALL_SPECS[1], seed=7)
    original = model.get_weights()

    def load(path):
        before = model.get_weights()
        try:
            model.load_weights(path)
        except ModelFileError:
            assert same_weights(model.get_weights(), before), "a refused file changed the model"
            raise
        _, file_weights = Sequential.read_file(path)
        assert same_weights(model.get_weights(), {k: v.astype(model.dtype) for k, v in file_weights.items()})
        model.set_weights(original)

    seeds = weight_seeds[2:]  # the files of this architecture (float32 and float64)
    counts = run_cases(np.random.default_rng(102), seeds, tmp_path / "fuzzed.npz",
                       lambda rng, seed: npz_mutation(rng, seed, "__spec__.npy"), load, ModelFileError)
    print(f"test_fuzz_load_weights_leaves_the_model_untouched: {counts}")
    assert counts["refused"] > 0.6 * CASES, counts


@pytest.mark.parametrize("layer, change", [
    (0, {"filters": 10**9}), (0, {"filters": 2**40}), (0, {"kernel": 10**5}), (0, {"filters": math.inf}),
    (4, {"units": 10**7}), (None, {"input_shape": [10**5, 10**5, 1]}), (None, {"classes": [0, 1, 2]}),
    (None, {"classes": "0123456789"}),
])
def test_an_absurd_or_inconsistent_spec_is_refused_before_allocating(weight_seeds, tmp_path, memory_ceiling,
                                                                      layer, change):
    """A spec asking for billions of parameters or numbers per activation (a corrupt or hostile file)
    is refused from the shapes alone, not by trying to allocate them; so is a class list that does
    not fit the outputs (the pad's bars would mislabel them)."""
    members = zip_members(weight_seeds[2])
    spec = json.loads(str(np.lib.format.read_array(io.BytesIO(members["__spec__.npy"]))))
    (spec if layer is None else spec["layers"][layer]).update(change)
    members["__spec__.npy"] = npy_bytes(np.array(json.dumps(spec)))
    path = tmp_path / "absurd.npz"
    path.write_bytes(zip_bytes(members))
    with pytest.raises(ModelFileError, match="absurd.npz"):
        Sequential.load(path)
    if "classes" in change:
        return  # load_weights keeps the model's own classes: only the layers must match
    model = Sequential(SMALL_SPECS[1], seed=7)
    before = model.get_weights()
    with pytest.raises(ModelFileError, match="absurd.npz"):
        model.load_weights(path)
    assert same_weights(model.get_weights(), before)


# ---------------------------------------------------------------------------------------------------
# sessions


@pytest.fixture(scope="module")
def digits():
    return data.load_digits_8x8()


@pytest.fixture(scope="module")
def session_seeds(digits, tmp_path_factory):
    """A session before any step, one mid-run with history, optimiser state, a kernel timeline,
    experiment results and an earlier run's curve, and one with Adam."""
    folder = tmp_path_factory.mktemp("sessions")
    train, val = digits
    seeds = []
    runs = (("fresh", {}, 0), ("sgd", {"augment": True}, 5),
            ("adam", {"batch_size": 64, "optimizer": "adam"}, 3))
    for name, changes, steps in runs:
        config = TrainConfig(**{"preset": "tiny8x8", "epochs": 2, "batch_size": 32, **changes})
        trainer = Trainer(presets.build("tiny8x8", seed=1), train, val, config)
        for _ in range(steps):
            trainer.step()
        timeline = KernelTimeline.for_model(trainer.model, capacity=4, every=1) if steps else None
        experiments = {"runs": [{"label": "a", "loss": np.linspace(1, 0, 5)}], "note": "x"} if steps else None
        path = folder / f"{name}.convscope.npz"
        session = Session.from_trainer(trainer, data_key="digits8x8", experiments=experiments, timeline=timeline)
        if name == "sgd":  # continued from an earlier run with other settings: that run's curve
            session.earlier = {"steps.loss": np.linspace(2.3, 1.1, 7), "epochs.step": np.array([4.0]),
                               **{f"epochs.{key}": np.array([0.5]) for key in
                                  ("train_loss", "val_loss", "train_accuracy", "val_accuracy")}}
        save_session(path, session)
        seeds.append(path.read_bytes())
    return seeds


def test_fuzz_open_session(session_seeds, digits, tmp_path, memory_ceiling):
    """open_session: a Session that can be shown and resumed, or SessionFileError naming the file."""
    train, val = digits

    def load(path):
        session = open_session(path)
        model = session.build_model()
        assert all(np.isfinite(w).all() for w in model.get_weights().values())
        try:
            trainer = session.resume(train, val, config=None)
        except ValueError as exc:  # e.g. a config for 28x28 data: the app says so before resuming
            assert "optimiser" in str(exc) or "invalid training settings" in str(exc), exc
        else:
            assert trainer.step_index == session.step

    counts = run_cases(np.random.default_rng(103), session_seeds, tmp_path / "fuzzed.convscope.npz",
                       lambda rng, seed: npz_mutation(rng, seed, "__session__.npy"), load, SessionFileError)
    print(f"test_fuzz_open_session: {counts}")
    assert counts["refused"] > 0.6 * CASES, counts


def replaced_member(payload: bytes, manifest_path: list, array: np.ndarray) -> bytes:
    """``payload`` (a session file) with the array the manifest references at ``manifest_path``
    (e.g. ["history", "steps.loss"]) replaced by ``array``."""
    members = zip_members(payload)
    node = json.loads(str(np.lib.format.read_array(io.BytesIO(members["__session__.npy"]))))
    for key in manifest_path:
        node = node[key]
    members[node["__array__"] + ".npy"] = npy_bytes(array)
    return zip_bytes(members)


IMPLAUSIBLE = [  # (manifest path, replacement for the 5 recorded steps, part named in the error)
    (["history", "steps.epoch_fraction"], np.zeros(5), "history"),
    (["history", "steps.epoch_fraction"], np.full(5, np.nan), "history"),
    (["history", "steps.epoch_fraction"], np.full(5, 1e-300), "history"),
    (["history", "steps.epoch_fraction"], np.array([0.1, 0.2, 0.2, 0.3, 0.4]), "history"),
    (["history", "steps.loss"], np.full(5, np.inf), "history"),
    (["history", "steps.loss"], np.full(5, 1e300), "history"),
    (["history", "steps.accuracy"], np.full(5, 2.0), "history"),
    (["timeline", "kernels", "conv1"], np.full((1, 3, 3, 1, 2), "x"), "kernel timeline"),
    (["earlier", "steps.loss"], np.full(5, np.inf), "earlier runs' curve"),
    (["earlier", "epochs.step"], np.array([8.0]), "earlier runs' curve"),
]


@pytest.mark.parametrize("path, values, part", IMPLAUSIBLE)
def test_implausible_session_contents_are_refused(session_seeds, tmp_path, path, values, part):
    """Values no run can record (a zero or NaN epoch fraction, an infinite loss) passed the format
    checks and then broke the window: it derives steps per epoch as steps / last epoch fraction
    (OverflowError) and plots the losses (pyqtgraph's axes then failed on every repaint)."""
    target = tmp_path / "implausible.convscope.npz"
    target.write_bytes(replaced_member(session_seeds[1], path, values))
    with pytest.raises(SessionFileError, match=f"implausible.convscope.npz.*{part}"):
        open_session(target)


# ---------------------------------------------------------------------------------------------------
# full MNIST: a folder of four IDX files, and mnist.npz, structurally valid with wrong contents


def idx_bytes(array: np.ndarray, type_code: int = 0x08, dims: list[int] | None = None) -> bytes:
    dims = list(array.shape) if dims is None else dims
    header = bytes([0, 0, type_code, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
    return header + array.tobytes()


IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def mnist_arrays(rng, n_train=6, n_test=4) -> dict[str, np.ndarray]:
    return {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}


def wrong_idx(rng, array: np.ndarray) -> bytes:
    """A well-formed or nearly well-formed IDX file whose contents do not fit MNIST."""
    n = array.shape[0]
    choices = [
        lambda: idx_bytes(array[:-1] if n > 1 else array[:0]),                              # fewer items
        lambda: idx_bytes(array, dims=[n + 1, *array.shape[1:]]),                           # claims more
        lambda: idx_bytes(array, dims=[n, *array.shape[1:-1]]) if array.ndim > 1     # one dim short
        else idx_bytes(array[:, None]),                                                  # one too many
        lambda: idx_bytes(np.zeros((n, 28, 27), np.uint8)),                                 # 28x27 images
        lambda: idx_bytes(np.zeros((n, 8, 8), np.uint8)),                                   # 8x8 images
        lambda: idx_bytes(np.full(n, 10 + rng.integers(246), np.uint8)),                   # label >= 10
        lambda: idx_bytes(array.astype(">i4"), type_code=0x0C),                            # int32 payload
        lambda: idx_bytes(array.astype(">f4"), type_code=0x0D),                            # float payload
        lambda: idx_bytes(array, type_code=int(rng.choice([0x00, 0x07, 0x0A, 0x0F, 0xFF]))),  # unknown type
        lambda: idx_bytes(array, dims=[10**9, 28, 28][: array.ndim]),                       # absurd count
        lambda: idx_bytes(array)[: rng.integers(0, 16)],                                    # header cut
        lambda: byte_mutation(rng, idx_bytes(array)),
    ]
    return choices[rng.integers(len(choices))]()


def test_fuzz_mnist_idx_folder(tmp_path, memory_ceiling):
    """load_mnist_dir on a folder of four IDX files (raw or .gz), one or two of them wrong: two
    datasets of 28x28 images in [0, 1] and labels 0-9, or DataFileError naming the wrong file."""
    rng = np.random.default_rng(104)
    counts = {"refused": 0, "loaded": 0}
    for case in range(CASES):
        folder = tmp_path / f"case{case % 2}"
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        arrays = mnist_arrays(rng)
        gz = bool(rng.integers(2))
        broken = set(rng.choice(list(IDX_NAMES), rng.integers(1, 3), replace=False))
        for key, name in IDX_NAMES.items():
            payload = wrong_idx(rng, arrays[key]) if key in broken else idx_bytes(arrays[key])
            target = folder / (name + (".gz" if gz else ""))
            target.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
        try:
            train, test = data.load_mnist_dir(folder)
        except DataFileError as exc:
            assert any(IDX_NAMES[key] in str(exc) for key in broken), f"case {case}: {exc}"
            counts["refused"] += 1
        else:
            for dataset in (train, test):
                assert dataset.x.shape[1:] == (28, 28, 1) and dataset.x.dtype == np.float32
                assert len(dataset.x) == len(dataset.y) > 0
                assert dataset.x.min() >= 0 and dataset.x.max() <= 1 and set(dataset.y) <= set(range(10))
            counts["loaded"] += 1
    print(f"test_fuzz_mnist_idx_folder: {counts}")
    assert counts["refused"] > 0.7 * CASES, counts


def test_fuzz_mnist_npz_contents(tmp_path, memory_ceiling):
    """load_mnist_dir on a Keras-style mnist.npz whose members are valid .npy with wrong contents."""
    rng = np.random.default_rng(105)
    path = tmp_path / "mnist.npz"
    counts = {"refused": 0, "loaded": 0}
    keys = {"x_train": "train_images", "y_train": "train_labels", "x_test": "test_images",
            "y_test": "test_labels"}
    for case in range(CASES):
        arrays = mnist_arrays(rng)
        members = {f"{key}.npy": npy_bytes(arrays[source]) for key, source in keys.items()}
        for key in rng.choice(list(keys), rng.integers(1, 3), replace=False):
            members[f"{key}.npy"] = npy_bytes(bad_array(rng, arrays[keys[key]]))
        path.write_bytes(zip_bytes(members, compress=bool(rng.integers(2))))
        try:
            train, test = data.load_mnist_dir(path)
        except DataFileError as exc:
            assert "mnist.npz" in str(exc), f"case {case}: {exc}"
            counts["refused"] += 1
        else:
            for dataset in (train, test):
                assert dataset.x.shape[1:] == (28, 28, 1) and np.isfinite(dataset.x).all()
                assert len(dataset.x) == len(dataset.y) > 0 and set(dataset.y) <= set(range(10))
            counts["loaded"] += 1
    print(f"test_fuzz_mnist_npz_contents: {counts}")
    assert counts["refused"] > 0.8 * CASES, counts


# ---------------------------------------------------------------------------------------------------
# settings (QSettings INI files)


INI_SEED = b'[training]\nconfig="{\\"epochs\\": 5}"\n[window]\ngeometry=@ByteArray(x)\n'
SETTINGS_KEYS = ("window/geometry", "window/state", "training/config", "data/choice", "files/last_dir")
CONFIG_KEYS = ("preset", "epochs", "batch_size", "lr_conv", "lr_dense", "optimizer", "momentum",
               "weight_decay", "augment", "seed", "schedule", "continue", "warmup_epochs", "variant")


def garbage_setting(rng):
    """A value for a settings key: garbage of any type, JSON of the wrong shape, or a config dict
    with garbage entries."""
    kind = rng.integers(5)
    if kind == 0:
        return GARBAGE[rng.integers(len(GARBAGE))]
    if kind == 1:
        return rng.integers(0, 256, rng.integers(0, 64), dtype=np.uint8).tobytes()
    if kind == 2:
        return json_text(GARBAGE[rng.integers(len(GARBAGE))])
    if kind == 3:  # a config dict with some garbage entries (or a dataset choice)
        keys = rng.choice(CONFIG_KEYS, rng.integers(1, 8))
        values = {key: GARBAGE[rng.integers(len(GARBAGE))] for key in keys}
        if rng.random() < 0.3:
            values = {"key": rng.choice(["bundled", "mnist_dir", "digits8x8", "download", "zz"]),
                      "path": GARBAGE[rng.integers(len(GARBAGE))]}
        return json_text(values)
    return byte_mutation(rng, b'{"epochs": 7, "lr_conv": "0.01", "preset": "vgg7"}').decode("latin-1")


def test_fuzz_settings_values(qtbot, tmp_path):
    """Every Settings getter, the training panel and the window's geometry restore survive garbage in
    the INI file: wrong types read as "nothing saved", the panel never holds an out-of-range value and
    either gives a valid TrainConfig or shows why not."""
    from PySide6 import QtCore, QtWidgets

    from app.settings import Settings
    from app.training_panel import TrainingPanel

    rng = np.random.default_rng(106)
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.show()  # the reasons label is checked with isVisible()
    window = QtWidgets.QMainWindow()
    qtbot.addWidget(window)
    defaults = panel.config_dict()
    path = tmp_path / "fuzzed.ini"
    counts = {"refused": 0, "loaded": 0}  # panel shows reasons / panel gives a valid config
    for case in range(CASES):
        if rng.random() < 0.25:  # the file itself garbled (hand-edited, half-written)
            path.write_bytes(byte_mutation(rng, INI_SEED))
        else:
            path.unlink(missing_ok=True)
            writer = QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)
            for key in rng.choice(SETTINGS_KEYS, rng.integers(1, len(SETTINGS_KEYS) + 1), replace=False):
                value = garbage_setting(rng)
                if isinstance(value, bytes) and rng.random() < 0.5:
                    value = QtCore.QByteArray(value)
                elif isinstance(value, int) and not -2**63 <= value < 2**63:
                    value = str(value)  # QSettings stores 64-bit numbers; an INI file holds it as text
                writer.setValue(str(key), value)
            writer.sync()
            del writer
        settings = Settings(str(path))
        geometry, state = settings.geometry(), settings.window_state()
        assert geometry is None or isinstance(geometry, QtCore.QByteArray)
        if geometry is not None:
            window.restoreGeometry(geometry)
        if state is not None:
            window.restoreState(state)
        training, choice, last_dir = settings.training(), settings.dataset(), settings.last_dir()
        assert isinstance(training, dict) and isinstance(choice, dict) and isinstance(last_dir, str)

        panel.load_config_dict(defaults)
        panel.load_config_dict(training)
        for spin in (panel.epochs, panel.batch_size, panel.seed):
            assert spin.minimum() <= spin.value() <= spin.maximum()
        config = panel.config()
        if config is None:
            assert panel.errors_label.isVisible() and panel.errors_label.text(), f"case {case}: no reason"
            assert not panel.start_button.isEnabled()
            counts["refused"] += 1
        else:
            assert config.validate() == [], f"case {case}"
            counts["loaded"] += 1
        for key, value in training.items():  # entries of the wrong type fall back to the defaults
            whole = isinstance(value, int) and not isinstance(value, bool)
            if key in ("epochs", "batch_size", "seed") and not whole:
                assert getattr(panel, key).value() == defaults[key], (case, key, value)
            if key == "augment" and not isinstance(value, bool):
                assert panel.augment.isChecked() == defaults["augment"], (case, value)
    print(f"test_fuzz_settings_values: {counts}")
    assert counts["refused"] > 0 and counts["loaded"] > 0


def test_garbage_settings_open_the_real_window(qtbot, tmp_path):
    """A handful of the worst settings files through the real MainWindow start-up: it opens, says
    nothing it cannot back up, and the panel is usable."""
    from PySide6 import QtCore

    from app.main_window import MainWindow
    from app.settings import Settings

    rng = np.random.default_rng(107)
    nasty = [
        {"training/config": json_text({"epochs": 10**12, "batch_size": -5, "lr_conv": "nan", "preset": "zz",
                                       "optimizer": ["sgd"], "augment": "yes", "seed": 1e308}),
         "window/geometry": QtCore.QByteArray(rng.integers(0, 256, 200, dtype=np.uint8).tobytes()),
         "window/state": QtCore.QByteArray(b"\x00\x00\x00\xff" * 40)},
        {"data/choice": json_text({"key": "mnist_dir", "path": str(tmp_path / "no such folder")}),
         "files/last_dir": 10**9},
        {**{key: garbage_setting(rng) for key in SETTINGS_KEYS},
         "data/choice": json_text({"key": "mnist_dir", "path": "\u0000"})},
    ]
    for case, values in enumerate(nasty):
        path = tmp_path / f"nasty{case}.ini"
        writer = QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)
        for key, value in values.items():
            writer.setValue(key, value)
        writer.sync()
        del writer
        window = MainWindow(Settings(str(path)))
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.panel.state == "idle", timeout=10000)  # a folder load failed or ended
        assert window.display_model.name == "vgg7"
        config = window.panel.config()
        assert config is None or config.validate() == []
        window.close()
        assert window.closed_cleanly
