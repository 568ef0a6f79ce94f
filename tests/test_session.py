"""Session files: bit-for-bit round trips, resumed training, clear errors on damaged files."""
import dataclasses
import json
import os

import numpy as np
import pytest

from engine import data, presets
from engine.health import HealthMonitor
from engine.session import Session, SessionFileError, open_session, save_session
from engine.timeline import KernelTimeline
from engine.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits():
    return data.load_digits_8x8()


def config(**changes):
    base = TrainConfig(preset="tiny8x8", epochs=3, batch_size=32, lr_conv=0.5, lr_dense=0.5, optimizer="sgd",
                       momentum=0.9, augment=True, seed=3, schedule="cosine")
    return dataclasses.replace(base, **changes)


def trainer_for(digits, cfg, steps=0, health=False):
    """A tiny8x8 trainer after ``steps`` steps; with ``health``, (trainer, the monitor that observed them)."""
    train, val = digits
    trainer = Trainer(presets.build("tiny8x8", seed=1), train, val, cfg)
    monitor = HealthMonitor(trainer.model, capacity=4)
    for _ in range(steps):
        monitor.observe(trainer.step(), trainer.model)
    return (trainer, monitor) if health else trainer


def assert_same_arrays(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


EXPERIMENTS = {"runs": [{"label": "correct", "final_accuracy": 0.84, "loss": np.linspace(2.3, 0.4, 7)},
                        {"label": "broken_update", "final_accuracy": 0.78,
                         "loss": np.arange(5, dtype=np.float32)}],
               "difference": "variant", "seconds": [12.5, 13.0], "note": None,
               "counts": np.eye(3, dtype=np.int64)}


def test_save_open_restores_everything_bit_for_bit(digits, tmp_path):
    trainer, health = trainer_for(digits, config(), steps=12, health=True)  # mid-epoch 2
    timeline = KernelTimeline.for_model(trainer.model, capacity=4, every=2)
    for step in (2, 4, 6, 8, 10):
        timeline.push(step, {n: trainer.model.layer(n).params["w"] + step for n in timeline.shapes})
    session = Session.from_trainer(trainer, data_key="digits8x8", experiments=EXPERIMENTS, timeline=timeline,
                                   health=health)
    path = save_session(tmp_path / "run.convscope.npz", session)
    again = open_session(path)

    assert_same_arrays(again.weights, trainer.model.get_weights())
    assert_same_arrays(again.history, trainer.history.state_dict())
    assert again.step == trainer.step_index == 12
    assert again.settings == dataclasses.asdict(trainer.config)
    assert again.spec == trainer.model.normalized_spec()
    assert again.rng_state == trainer.rng.bit_generator.state
    saved_opt, live_opt = again.optimizer, trainer.optimizer.state_dict()
    assert {k: v for k, v in saved_opt.items() if k != "buffers"} == \
        {k: v for k, v in live_opt.items() if k != "buffers"}
    assert_same_arrays(saved_opt["buffers"]["velocity"], live_opt["buffers"]["velocity"])
    assert again.data["key"] == "digits8x8" and again.same_data(digits[0]) and not again.same_data(digits[1])
    reordered = digits[0].subset(np.roll(np.arange(len(digits[0].y)), 1))  # same size, labels moved
    assert not np.array_equal(reordered.y, digits[0].y) and not again.same_data(reordered)

    runs = again.experiments["runs"]
    assert runs[1]["label"] == "broken_update" and runs[1]["final_accuracy"] == 0.78
    np.testing.assert_array_equal(runs[0]["loss"], EXPERIMENTS["runs"][0]["loss"])
    assert runs[1]["loss"].dtype == np.float32
    assert again.experiments["seconds"] == [12.5, 13.0] and again.experiments["note"] is None
    np.testing.assert_array_equal(again.experiments["counts"], np.eye(3))

    assert again.timeline.steps().tolist() == timeline.steps().tolist() == [0, 4, 8, 10]
    for i in range(len(timeline)):
        for name in timeline.shapes:
            np.testing.assert_array_equal(again.timeline.kernels(name, i)[1], timeline.kernels(name, i)[1])
    assert health.stride == again.health.stride == 4 and again.health.layers == health.layers
    assert_same_arrays(again.health.history(), health.history())
    assert repr(again.health.latest()) == repr(health.latest()) and again.health.latest()[0] == 9
    np.testing.assert_array_equal(again.build_model().params()["conv1.w"], trainer.model.params()["conv1.w"])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("saved_at", ["epoch end", "mid-epoch"])
def test_a_resumed_run_equals_the_uninterrupted_run(digits, tmp_path, optimizer, saved_at):
    """Saved mid-epoch, the rest of the epoch keeps its sample order and the epoch's summary counts
    the steps before the save: the history (epoch train losses included) is the same bit for bit."""
    cfg = config(optimizer=optimizer, lr_conv=0.05 if optimizer == "adam" else 0.5,
                 lr_dense=0.05 if optimizer == "adam" else 0.5)
    straight = trainer_for(digits, cfg)
    assert straight.run() == "finished"

    steps = straight.steps_per_epoch + (straight.steps_per_epoch // 2 if saved_at == "mid-epoch" else 0)
    first = trainer_for(digits, cfg, steps=steps)
    path = save_session(tmp_path / "s.npz", Session.from_trainer(first))
    resumed = open_session(path).resume(*digits)
    assert resumed.step_index == steps
    assert resumed.run() == "finished"
    assert resumed.step_index == straight.step_index
    assert_same_arrays(resumed.model.get_weights(), straight.model.get_weights())
    timeless = [h.state_dict() for h in (resumed.history, straight.history)]
    for h in timeless:
        del h["epochs.seconds"]  # wall-clock time, the only thing allowed to differ
    assert_same_arrays(*timeless)


def test_resumed_mid_epoch_continues_the_step_count_and_the_history(digits, tmp_path):
    first = trainer_for(digits, config(), steps=5)
    losses = first.history.state_dict()["steps.loss"]
    resumed = open_session(save_session(tmp_path / "s.npz", Session.from_trainer(first))).resume(*digits)
    event = resumed.step()
    assert event["step"] == 6 and event["epoch"] == 1
    assert resumed.run() == "finished"
    history = resumed.history.state_dict()
    np.testing.assert_array_equal(history["steps.loss"][:5], losses)
    assert len(history["steps.loss"]) == resumed.total_steps and len(history["epochs.val_loss"]) == 3


def test_another_batch_size_or_training_set_cannot_continue_a_run(digits, tmp_path):
    """Its steps are counted in its own batches: resumed with batch 16, the epoch counter went back, the
    schedule jumped, and the next session saved could not be reopened (its epoch fractions fell)."""
    first = trainer_for(digits, config(), steps=5)
    session = open_session(save_session(tmp_path / "s.npz", Session.from_trainer(first)))
    train, val = digits
    for other, problem in ((config(batch_size=16), "its batch size was 32"), (config(optimizer="adam"),
                                                                               "its optimiser was sgd")):
        assert session.resume_problem(train, other) == problem
        with pytest.raises(ValueError, match=f"^the session cannot continue: {problem}; start a new run"):
            session.resume(train, val, config=other)
    smaller = train.subset(np.arange(len(train.y) - 10))
    assert session.resume_problem(smaller, session.config()) == "it was trained on other data"
    described_by_its_epoch_only = dataclasses.replace(session, data=None)  # e.g. a file from a script
    assert described_by_its_epoch_only.resume_problem(smaller, session.config()) == "it was trained on other data"
    assert described_by_its_epoch_only.resume_problem(train, session.config()) is None
    fresh = open_session(save_session(tmp_path / "f.npz", Session.from_trainer(trainer_for(digits, config()))))
    assert fresh.resume_problem(smaller, config(batch_size=16)) is None  # no step counted yet


def test_resumed_mid_epoch_from_an_older_file_reshuffles(digits, tmp_path):
    first = trainer_for(digits, config(), steps=5)
    path = save_session(tmp_path / "s.npz", Session.from_trainer(first))
    session = open_session(path)
    assert session.epoch_state["epoch"] == 0 and session.epoch_state["totals"][2] == 5 * 32
    np.testing.assert_array_equal(session.epoch_state["order"], first.epoch_state()["order"])

    older = open_session(rewrite_manifest(path, tmp_path / "older.npz", lambda m: m.pop("epoch_state")))
    assert older.epoch_state is None
    resumed = older.resume(*digits)
    event = resumed.step()
    assert event["step"] == 6 and resumed.epoch_state()["totals"][2] == 32  # a new epoch order and sums


def test_a_finished_run_continues_with_more_epochs_but_not_with_another_optimiser(digits, tmp_path):
    done = trainer_for(digits, config(epochs=1))
    done.run()
    session = open_session(save_session(tmp_path / "s.npz", Session.from_trainer(done)))
    more = session.resume(*digits, config=config(epochs=2, momentum=0.5))
    assert more.optimizer.momentum == 0.5  # the new settings apply; the saved buffers continue
    assert_same_arrays(more.optimizer.state_dict()["buffers"]["velocity"],
                       session.optimizer["buffers"]["velocity"])
    assert more.step_index == done.step_index and more.run() == "finished"
    assert more.step_index == 2 * done.step_index
    with pytest.raises(ValueError, match="cannot continue: its optimiser was sgd"):
        session.resume(*digits, config=config(optimizer="adam"))


def test_a_session_before_any_step_resumes_as_a_fresh_run(digits, tmp_path):
    fresh = trainer_for(digits, config(epochs=1))
    session = open_session(save_session(tmp_path / "s.npz", Session.from_trainer(fresh)))
    assert session.step == 0 and session.history is None and session.optimizer is None
    resumed = session.resume(*digits)
    fresh.run()
    resumed.run()
    assert_same_arrays(resumed.model.get_weights(), fresh.model.get_weights())


EARLIER = {"steps.loss": np.array([2.3, 2.1, 1.7, 1.2, 0.9]), "epochs.step": np.array([2.0, 4.0]),
           "epochs.train_loss": np.array([2.2, 1.4]), "epochs.val_loss": np.array([np.nan, 1.3]),
           "epochs.train_accuracy": np.array([0.25, 0.5]), "epochs.val_accuracy": np.array([np.nan, 0.625])}


def test_the_earlier_runs_curve_round_trips_and_older_files_have_none(digits, tmp_path):
    """A run continued with new settings is a new trainer: the curve before it travels as ``earlier``."""
    session = dataclasses.replace(Session.from_trainer(trainer_for(digits, config(), steps=2)), earlier=EARLIER)
    again = open_session(save_session(tmp_path / "s.npz", session))
    assert again.earlier.keys() == EARLIER.keys()
    for key, values in EARLIER.items():
        np.testing.assert_array_equal(again.earlier[key], values)
    assert again.history["steps.loss"].size == 2  # this run's own history is unchanged
    older = open_session(rewrite_manifest(tmp_path / "s.npz", tmp_path / "older.npz", lambda m: m.pop("earlier")))
    assert older.earlier is None


@pytest.mark.parametrize("change, message", [
    (lambda e: e.pop("epochs.val_loss"), "expected the arrays"),
    (lambda e: e.update({"steps.loss": np.zeros(0)}), "at least one step"),
    (lambda e: e["steps.loss"].__setitem__(1, np.nan), "without NaN"),
    (lambda e: e.update({"epochs.step": np.array([2.0, 6.0])}), "growing whole numbers in 1..5"),
    (lambda e: e.update({"epochs.step": np.array([4.0, 2.0])}), "growing whole numbers"),
    (lambda e: e.update({"epochs.step": np.array([2.5, 4.0])}), "growing whole numbers"),
    (lambda e: e.update({"epochs.train_loss": np.array([1.0])}), "differ in length"),
    (lambda e: e.update({"epochs.train_accuracy": np.array([0.5, 50.0])}), "accuracies must lie in"),
    (lambda e: e.update({"epochs.val_loss": np.array([np.inf, 1.0])}), "val_loss holds infinity"),
    (lambda e: e.update({"epochs.step": np.ones((2, 1))}), "1-D array"),
])
def test_an_impossible_earlier_curve_is_refused_naming_it(digits, tmp_path, change, message):
    earlier = {key: values.copy() for key, values in EARLIER.items()}
    change(earlier)
    session = dataclasses.replace(Session.from_trainer(trainer_for(digits, config(), steps=2)), earlier=earlier)
    with pytest.raises(SessionFileError, match=f"earlier runs' curve: .*{message}"):
        open_session(save_session(tmp_path / "s.npz", session))


def test_saving_a_running_trainer_is_refused(digits):
    trainer = trainer_for(digits, config())
    trainer.state = "running"  # as seen from the GUI thread while run() is inside a step
    with pytest.raises(RuntimeError, match="pause"):
        Session.from_trainer(trainer)


# ------------------------------------------------------------------------------ damaged files

@pytest.fixture(scope="module")
def good_file(digits, tmp_path_factory):
    trainer, health = trainer_for(digits, config(), steps=3, health=True)
    timeline = KernelTimeline.for_model(trainer.model, capacity=4)
    path = tmp_path_factory.mktemp("good") / "good.convscope.npz"
    save_session(path, Session.from_trainer(trainer, experiments=EXPERIMENTS, timeline=timeline, health=health))
    return path


def same_session(a: Session, b: Session) -> bool:
    return (a.step == b.step and a.settings == b.settings and a.spec == b.spec
            and all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
            and all(np.array_equal(a.history[k], b.history[k], equal_nan=True) for k in a.history))


def test_truncated_and_bit_flipped_files_give_a_clear_error_or_the_same_session(good_file, tmp_path):
    raw = good_file.read_bytes()
    original = open_session(good_file)
    rng = np.random.default_rng(0)
    target = tmp_path / "damaged.npz"
    errors = 0
    cuts = list(rng.integers(0, len(raw), 60)) + [0, 1, len(raw) - 1]
    for cut in cuts:
        target.write_bytes(raw[:cut])
        with pytest.raises(SessionFileError, match="damaged.npz"):
            open_session(target)
    for _ in range(150):
        damaged = bytearray(raw)
        for position in rng.integers(0, len(raw), rng.integers(1, 4)):
            damaged[position] ^= 1 << int(rng.integers(8))
        target.write_bytes(bytes(damaged))
        try:
            reopened = open_session(target)
        except SessionFileError as exc:
            assert "damaged.npz" in str(exc)
            errors += 1
        else:  # the flip hit bytes that carry no data (e.g. zip timestamps)
            assert same_session(reopened, original)
    assert errors > 100


def rewrite_manifest(source, target, change):
    """Copy a session file with its JSON manifest edited by ``change(manifest)``."""
    with np.load(source, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    manifest = json.loads(str(arrays["__session__"]))
    change(manifest)
    arrays["__session__"] = np.array(json.dumps(manifest))
    np.savez(target, **arrays)
    return target


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(version=99), "version 99"),
    (lambda m: m.update(format="something"), "not a ConvScope session manifest"),
    (lambda m: m["settings"].update(lr_conv=-1.0), "settings: lr_conv"),
    (lambda m: m["settings"].update(colour="red"), "settings: .*colour"),
    (lambda m: m.update(step=4), "history: 3 step records for 4 steps"),
    (lambda m: m.update(step=-1), "step: must be a whole number >= 0, got -1"),
    (lambda m: m.update(rng_state=None), "training state"),
    (lambda m: m["weights"].pop("conv2.w"), "weights: .*conv2"),
    (lambda m: m["spec"]["layers"][0].update(filters=3), "weights: .*conv1"),
    (lambda m: m["optimizer"].update(name="adam"), "optimiser state"),
    (lambda m: m["optimizer"]["hyper"].update(model=1), "optimiser state: hyper-parameters"),
    (lambda m: m["optimizer"]["hyper"].update(momentum=1.0), "optimiser state: hyper-parameters"),
    (lambda m: m["rng_state"].update(bit_generator="MT19937"), "random generator state"),
    (lambda m: m["timeline"].update(every=0), "kernel timeline"),
    (lambda m: m["health"].update(layers=["conv1"]), "gradient health: layers .* are not the model's"),
    (lambda m: m["health"]["low"].update(conv1=-1), "gradient health: low"),
    (lambda m: m["epoch_state"].update(epoch=1), "epoch state: epoch 1 is not the one step 3 is in"),
    (lambda m: m["epoch_state"].update(totals=[1.0, 97, 96, 0.0]), "epoch state: the epoch totals"),
    (lambda m: [m.update(data=None), m["epoch_state"].update(order=m["history"]["steps.loss"])],
     "epoch state: the sample order must be an array of whole numbers"),
    (lambda m: m["data"].update(train_size=5), "epoch state: an order of"),
    (lambda m: m.update(step=0, history=None, optimizer=None, rng_state=None), "epoch state: present before"),
    (lambda m: m["weights"].update({"conv1.w": {"__array__": "nowhere"}}), "no array named 'nowhere'"),
    (lambda m: m["spec"].update(junk=json.loads("[" * 900 + "]" * 900)), "nested too deeply"),
])
def test_inconsistent_sessions_name_the_part(good_file, tmp_path, change, message):
    target = rewrite_manifest(good_file, tmp_path / "edited.npz", change)
    with pytest.raises(SessionFileError, match=message):
        open_session(target)


def rewrite_array(source, target, key, change):
    """Copy a session file with its array ``key`` replaced by ``change(array)``."""
    with np.load(source, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays[key] = change(arrays[key].copy())
    np.savez(target, **arrays)
    return target


def with_nan(a):
    a.flat[0] = np.nan
    return a


@pytest.mark.parametrize("key, change, message", [
    # resuming would turn every weight to NaN at the first step
    ("optimizer/buffers/velocity/conv2.w", with_nan, "optimiser state: contains NaN or infinity"),
    ("history/steps.epoch_fraction", lambda a: a - a[0], "steps.epoch_fraction must grow from above 0"),
])
def test_sessions_with_impossible_arrays_name_the_part(good_file, tmp_path, key, change, message):
    with pytest.raises(SessionFileError, match=message):
        open_session(rewrite_array(good_file, tmp_path / "edited.npz", key, change))


def test_a_kernel_timeline_of_another_network_is_refused(digits, good_file, tmp_path):
    trainer = trainer_for(digits, config(), steps=2)
    other = presets.build(presets.get_preset("tiny8x8", conv1=3))  # 3 filters where the run has 2
    mismatched = Session.from_trainer(trainer, timeline=KernelTimeline.for_model(other, capacity=4))
    target = tmp_path / "s.npz"
    target.write_bytes(b"earlier")
    with pytest.raises(ValueError, match="kernel timeline: kernel shapes .* do not match the model's"):
        save_session(target, mismatched)  # would write a file that cannot be opened
    assert target.read_bytes() == b"earlier"

    # the same mix written by another tool: the good file with the other network's timeline
    other_file = tmp_path / "other.npz"
    save_session(other_file, dataclasses.replace(Session.from_trainer(trainer_for(digits, config())),
                                                 spec=other.normalized_spec(), weights=other.get_weights(),
                                                 timeline=KernelTimeline.for_model(other, capacity=4)))
    with np.load(other_file, allow_pickle=False) as npz:
        timeline_arrays = {key: npz[key] for key in npz.files if key.startswith("timeline/")}
        other_timeline = json.loads(str(npz["__session__"]))["timeline"]
    with np.load(good_file, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files if not key.startswith("timeline/")}
    manifest = json.loads(str(arrays["__session__"]))
    manifest["timeline"] = other_timeline
    arrays.update(timeline_arrays, __session__=np.array(json.dumps(manifest)))
    np.savez(target, **arrays)
    with pytest.raises(SessionFileError, match="kernel timeline: kernel shapes .* do not match the model's"):
        open_session(target)


JUNK = [None, True, -1, 0, 3.5, float("nan"), "x", [], {}, [1, "a"], 10**30, {"__array__": "weights/conv1.w"}]


def manifest_paths(value, prefix=()):
    """Every (key, index, ...) path into a JSON manifest."""
    if prefix:
        yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from manifest_paths(item, prefix + (key,))


def test_any_edited_manifest_value_gives_a_clear_error_or_a_session(good_file, tmp_path):
    """Replace or delete one manifest entry at random, 200 times: opening either works or raises
    SessionFileError, never anything else (no KeyError, IndexError, ZeroDivisionError...)."""
    with np.load(good_file, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    manifest = json.loads(str(arrays["__session__"]))
    paths = list(manifest_paths(manifest))
    rng = np.random.default_rng(1)
    target = tmp_path / "edited.npz"
    refused = 0
    for _ in range(200):
        edited = json.loads(json.dumps(manifest))
        path = paths[rng.integers(len(paths))]
        parent = edited
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[path[-1]]
        else:
            parent[path[-1]] = JUNK[rng.integers(len(JUNK))]
        np.savez(target, **{**arrays, "__session__": np.array(json.dumps(edited))})
        try:
            open_session(target)
        except SessionFileError:
            refused += 1
    assert refused > 100


def test_other_files_are_refused_clearly(tmp_path, digits):
    weights = tmp_path / "weights.npz"
    presets.build("tiny8x8").save(weights)
    with pytest.raises(SessionFileError, match="not a ConvScope session.*a weights file"):
        open_session(weights)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(SessionFileError, match="notes.txt: not a readable"):
        open_session(text)
    with pytest.raises(SessionFileError, match="no such file"):
        open_session(tmp_path / "missing.npz")


def test_a_failed_save_leaves_the_previous_file_intact(good_file, tmp_path, monkeypatch):
    path = tmp_path / "keep.npz"
    path.write_bytes(good_file.read_bytes())
    before = open_session(path)
    bad = dataclasses.replace(before, experiments={"figure": object()})
    with pytest.raises(TypeError, match="experiments/figure"):
        save_session(path, bad)

    def dies_mid_write(file, **arrays):
        file.write(b"PK\x03\x04 half a session")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_session(path, before)
    monkeypatch.undo()
    assert same_session(open_session(path), before)
    assert sorted(os.listdir(tmp_path)) == ["keep.npz"]  # no temporary file left behind


def test_weights_a_variant_trained_keep_their_label_through_a_session(digits, tmp_path):
    trainer = trainer_for(digits, config(variant="transposed_pool"), steps=2)
    path = save_session(tmp_path / "s.npz", Session.from_trainer(trainer))
    session = open_session(path)
    model = session.build_model()
    assert model.trained_with == {"transposed_pool"} and model.variant == "transposed_pool"
    assert "trained_with" not in model.spec  # a label of the weights, not part of the architecture
    bad = rewrite_manifest(path, tmp_path / "bad.npz", lambda m: m["spec"].update(trained_with=["typo"]))
    with pytest.raises(SessionFileError, match="model spec.*'trained_with' must list backprop variants"):
        open_session(bad)


def test_gradient_health_of_another_network_is_not_saved(digits, tmp_path):
    trainer = trainer_for(digits, config(), steps=2)
    other = presets.build("vgg7")
    target = tmp_path / "s.npz"
    target.write_bytes(b"earlier")
    with pytest.raises(ValueError, match=r"gradient health: layers \['conv1', 'conv2', 'conv3', 'conv4'"):
        save_session(target, Session.from_trainer(trainer, health=HealthMonitor(other)))
    assert target.read_bytes() == b"earlier"
