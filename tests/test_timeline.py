"""Kernel timeline: bounded memory, thinning keeps the whole run evenly spaced, exact snapshots."""
import threading
import tracemalloc

import numpy as np
import pytest

from engine import presets
from engine.timeline import KernelTimeline, ThinningBuffer

SHAPES = {"conv1": (3, 3, 1, 4), "conv2": (3, 3, 4, 4)}


def kernels_for(step):
    """Distinct, reproducible kernels per step (so a mixed-up slot cannot go unnoticed)."""
    rng = np.random.default_rng(step)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}


def test_thinning_buffer_keeps_every_other_record_in_order():
    buf = ThinningBuffer(4, {"v": ((), np.int64)})
    for v in range(5):
        buf.append({"v": v})
    # full at [0, 1, 2, 3]; the fifth append keeps records 0 and 2, then adds 4
    assert buf.count == 3 and buf.halvings == 1
    assert buf.arrays["v"][:3].tolist() == [0, 2, 4]


@pytest.mark.parametrize("capacity", [0, 3, -2, 2.0, True])
def test_bad_capacity_is_refused(capacity):
    with pytest.raises(ValueError, match="capacity"):
        ThinningBuffer(capacity, {"v": ((), np.int64)})


def test_memory_stays_bounded_after_1000_pushes_and_snapshots_are_what_was_pushed():
    timeline = KernelTimeline(SHAPES, capacity=200, every=1)
    bound = KernelTimeline.bytes_needed(SHAPES, 200)
    assert timeline.nbytes == bound == 200 * (8 + 4 * (9 * 4 + 9 * 16))
    arrays_before = {name: id(a) for name, a in timeline._buffer.arrays.items()}
    kernels_for(10**6)  # warm-up: the first Generator imports modules, which tracemalloc would count
    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    for step in range(1000):
        if timeline.due(step):
            timeline.push(step, kernels_for(step))
    end, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # no storage grew or was replaced; what the loop itself allocated is freed again
    assert {name: id(a) for name, a in timeline._buffer.arrays.items()} == arrays_before
    assert timeline.nbytes == bound
    assert len(timeline) <= timeline.capacity
    assert end - start < 64 * 1024 and peak - start < 1024 * 1024

    steps = timeline.steps()
    assert steps[0] == 0  # the initial kernels survive every thinning
    assert np.all(np.diff(steps) == timeline.stride // 2) or np.all(np.diff(steps) == timeline.stride)
    assert steps[-1] >= 1000 - timeline.stride
    for i, step in enumerate(steps):
        got_step, snap = timeline.snapshot(i)
        assert got_step == step
        pushed = kernels_for(int(step))  # kernels_for is deterministic: what was pushed at that step
        for name in SHAPES:
            np.testing.assert_array_equal(snap[name], pushed[name])
            assert timeline.kernels(name, i)[0] == step


def test_observe_takes_evenly_spaced_snapshots_of_the_model():
    model = presets.build("tiny8x8", seed=3)
    timeline = KernelTimeline.for_model(model, capacity=4, every=5)
    assert timeline.steps().tolist() == [0]
    w1 = model.layer("conv1").params["w"]
    for step in range(1, 41):
        w1 += 1.0  # stands in for an optimiser step
        taken = timeline.observe({"type": "step", "step": step}, model)
        assert taken == (step in timeline.steps())
    assert timeline.observe({"type": "epoch", "epoch": 1}, model) is False
    # 0,5,10,15 -> thin to 0,10 + 20, 30 -> thin to 0,20 + 40
    assert timeline.steps().tolist() == [0, 20, 40]
    step, kernel = timeline.kernels("conv1", 2)
    np.testing.assert_array_equal(kernel, w1)
    assert not np.shares_memory(kernel, w1)
    assert timeline.max_abs("conv1") == pytest.approx(float(np.abs(w1).max()))
    first = timeline.kernels("conv1", 0)[1].astype(np.float64)
    expected = [np.linalg.norm(timeline.kernels("conv1", i)[1] - first) / np.linalg.norm(first)
                for i in range(3)]
    np.testing.assert_allclose(timeline.drift("conv1"), expected, rtol=1e-12)
    assert timeline.drift("conv1")[0] == 0.0 and timeline.drift("conv2").tolist() == [0.0, 0.0, 0.0]


def test_the_end_of_a_run_records_the_weights_it_ended_with():
    """A 142-step run's newest snapshot was step 140: the timeline never showed the final kernels."""
    model = presets.build("tiny8x8", seed=3)
    timeline = KernelTimeline.for_model(model, capacity=64, every=5)
    w1 = model.layer("conv1").params["w"]
    for step in range(1, 8):
        w1 += 1.0
        timeline.observe({"type": "step", "step": step}, model)
    assert timeline.steps().tolist() == [0, 5]
    assert timeline.observe({"type": "done", "reason": "stopped"}, model)
    assert timeline.steps().tolist() == [0, 5, 7]
    np.testing.assert_array_equal(timeline.kernels("conv1", 2)[1], w1)
    assert not timeline.observe({"type": "done", "reason": "stopped"}, model)  # already there
    for step in range(8, 13):  # the run continued: every 5 steps from the last snapshot
        w1 += 1.0
        timeline.observe({"type": "step", "step": step}, model)
    assert timeline.steps().tolist() == [0, 5, 7, 12]
    timeline.observe({"type": "done", "reason": "finished"}, model)  # step 12 is recorded already
    assert timeline.steps().tolist() == [0, 5, 7, 12]
    timeline.observe({"type": "step", "step": 13}, model)
    assert not timeline.observe({"type": "done", "reason": "diverged"}, model)  # wrecked weights: not an end
    assert timeline.steps().tolist() == [0, 5, 7, 12]


def test_push_validates_names_shapes_and_order():
    timeline = KernelTimeline(SHAPES, capacity=4)
    with pytest.raises(ValueError, match="conv2"):
        timeline.push(0, {"conv1": np.zeros(SHAPES["conv1"])})
    for wrong in ((3, 3, 1, 5), (3, 3, 1, 1)):  # (3, 3, 1, 1) broadcasts: numpy alone would store it
        with pytest.raises(ValueError, match=rf"conv1 has shape \({', '.join(map(str, wrong))}\), expected"):
            timeline.push(0, {"conv1": np.zeros(wrong), "conv2": np.zeros(SHAPES["conv2"])})
    timeline.push(3, kernels_for(3))
    with pytest.raises(ValueError, match="not after"):
        timeline.push(3, kernels_for(3))
    with pytest.raises(IndexError):
        timeline.snapshot(1)
    assert timeline.snapshot(-1)[0] == 3
    assert len(timeline) == 1


def test_state_dict_round_trip_and_refusals():
    timeline = KernelTimeline(SHAPES, capacity=4, every=2)
    for step in (0, 2, 4, 6, 8):
        timeline.push(step, kernels_for(step))
    state = timeline.state_dict()
    again = KernelTimeline.from_state_dict(state)
    assert again.steps().tolist() == timeline.steps().tolist() == [0, 4, 8]
    assert again.stride == timeline.stride == 4
    for i in range(len(again)):
        for name in SHAPES:
            np.testing.assert_array_equal(again.kernels(name, i)[1], timeline.kernels(name, i)[1])
    broken = dict(state, steps=np.array([0, 4, 4]))
    with pytest.raises(ValueError, match="increase"):
        KernelTimeline.from_state_dict(broken)
    nan = {**state, "kernels": {**state["kernels"], "conv1": state["kernels"]["conv1"] * np.nan}}
    with pytest.raises(ValueError, match="conv1"):
        KernelTimeline.from_state_dict(nan)
    with pytest.raises(ValueError, match="'kernels'"):
        KernelTimeline.from_state_dict({"steps": state["steps"]})
    with pytest.raises(ValueError, match="incomplete"):
        KernelTimeline.from_state_dict({"kernels": state["kernels"]})


def test_reads_during_writes_see_whole_snapshots():
    """A reader on another thread never sees a half-written snapshot: every kernel it gets is
    constant and equal to its step (the writer fills each snapshot with its step number)."""
    timeline = KernelTimeline(SHAPES, capacity=8, every=1)
    for _ in reading_while_training_pushes(timeline, range(2000)):
        if len(timeline):
            step, snap = timeline.snapshot(-1)
            for kernel in snap.values():
                assert np.all(kernel == step)


def reading_while_training_pushes(timeline, steps):
    """Yields again and again while another thread pushes a snapshot of every step in ``steps`` (each
    kernel filled with its step number), until it has pushed them all."""
    done = threading.Event()

    def writer():
        for step in steps:
            timeline.push(step, {name: np.full(shape, step, np.float32) for name, shape in SHAPES.items()})
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while not done.is_set():
            yield
    finally:
        thread.join()


def full_timeline():
    """A timeline at its capacity of 8, snapshots of steps 0..7: the next push thins it to 5."""
    timeline = KernelTimeline(SHAPES, capacity=8, every=1)
    for step in range(8):
        timeline.push(step, kernels_for(step))
    return timeline


def test_read_gives_the_count_and_a_snapshot_of_one_moment_when_thinning_comes_between():
    """A reader takes its index from len(), then the training thread thins the timeline out before the
    reader asks for the snapshot: read() clamps to the newest and returns the count of that moment."""
    timeline = full_timeline()
    index = len(timeline) - 1                     # 7, the newest for the reader
    timeline.push(8, kernels_for(8))              # the training thread: thinned to 0, 2, 4, 6, then 8
    with pytest.raises(IndexError):
        timeline.kernels("conv2", index)          # what two separate calls ran into
    shown = timeline.read("conv2", index)
    assert (shown.count, shown.index, shown.step, shown.version) == (5, 4, 8, timeline.version)
    np.testing.assert_array_equal(shown.kernels, kernels_for(8)["conv2"])
    assert timeline.read("conv1", 1).step == 2 and timeline.read("conv1", -2).step == 6
    timeline.clear()
    assert timeline.read("conv1", 0) is None


def test_drift_curve_steps_and_drift_agree_when_a_snapshot_comes_between():
    """steps() and drift() as two calls straddle the training thread's push (here forced between them);
    drift_curve() reads both in one state."""
    timeline = full_timeline()
    steps = timeline.steps()
    timeline.push(8, kernels_for(8))
    assert len(steps) != len(timeline.drift("conv1"))  # 8 steps, 5 drifts: what the view plotted
    steps, drift = timeline.drift_curve("conv1")
    np.testing.assert_array_equal(steps, [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(drift, timeline.drift("conv1"))


def test_drift_curve_during_writes_has_as_many_steps_as_drifts():
    timeline = KernelTimeline(SHAPES, capacity=8, every=1)
    timeline.push(0, kernels_for(0))
    for _ in reading_while_training_pushes(timeline, range(1, 2000)):
        steps, drift = timeline.drift_curve("conv2")
        assert steps.shape == drift.shape


def test_what_read_and_drift_curve_return_stays_as_read_when_the_timeline_thins_out():
    """Both return copies: the training thread thinning the timeline (or the reader changing the array)
    must not rewrite a snapshot or the steps a view holds."""
    timeline = full_timeline()
    shown = timeline.read("conv2", 1)
    steps, drift = timeline.drift_curve("conv1")
    timeline.push(8, kernels_for(8))  # thinned in place: slot 1 now holds step 2
    np.testing.assert_array_equal(shown.kernels, kernels_for(1)["conv2"])
    np.testing.assert_array_equal(steps, np.arange(8))
    shown.kernels[...] = 0
    np.testing.assert_array_equal(timeline.read("conv2", 1).kernels, kernels_for(2)["conv2"])


def test_drift_curve_holds_off_a_push_that_arrives_while_it_reads():
    """drift_curve reads the steps and the kernels under one lock: a push from the training thread in
    between waits (here forced to arrive between the two reads) instead of splitting them."""
    timeline = full_timeline()
    read_kernels = timeline._flat_copy
    thread = threading.Thread(target=timeline.push, args=(8, kernels_for(8)))

    def push_arrives(name):
        thread.start()
        thread.join(0.3)  # done at once unless the lock holds it off
        return read_kernels(name)

    timeline._flat_copy = push_arrives
    steps, drift = timeline.drift_curve("conv1")
    assert len(steps) == len(drift) == 8
    del timeline._flat_copy
    thread.join()
    assert len(timeline) == 5  # the push went in once drift_curve let go


def test_drift_from_an_all_zero_first_snapshot_is_nan_throughout():
    timeline = KernelTimeline(SHAPES, capacity=8, every=1)
    timeline.push(0, {name: np.zeros(shape, np.float32) for name, shape in SHAPES.items()})
    timeline.push(1, kernels_for(1))
    steps, drift = timeline.drift_curve("conv1")
    assert steps.tolist() == [0, 1] and np.isnan(drift).all()
