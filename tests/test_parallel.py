"""engine.parallel and the model's data-parallel shards: same numbers as one pass, no thread left."""

import threading
import warnings

import numpy as np
import pytest

from engine import bench, parallel
from engine.presets import build, get_preset

SMALL_VGG7 = dict(conv1=4, conv2=4, conv3=4, conv4=5, dense1=12, dense2=8)


@pytest.fixture
def engine_threads():
    """Set the engine's thread count for one test and put both settings back afterwards."""
    before = (parallel.threads(), parallel.blas_threads())
    yield parallel.set_threads
    parallel.set_threads(before[0])
    parallel.set_blas_threads(before[1])


def twin_models(spec, seed=3):
    """Two float64 models with identical weights: one to run whole, one to run in shards."""
    return build(spec, seed=seed, dtype=np.float64), build(spec, seed=seed, dtype=np.float64)


def batch(model, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *model.input_shape)), rng.integers(0, len(model.classes), size=n)


def test_shard_bounds_cover_the_batch_and_respect_the_minimum(engine_threads):
    engine_threads(None)
    assert parallel.shard_bounds(1000) == [(0, 1000)]  # unconfigured: never split
    engine_threads(3)
    assert parallel.shard_bounds(64) == [(0, 21), (21, 42), (42, 64)]
    assert parallel.shard_bounds(2 * parallel.MIN_SHARD) == [(0, parallel.MIN_SHARD),
                                                              (parallel.MIN_SHARD, 2 * parallel.MIN_SHARD)]
    assert parallel.shard_bounds(parallel.MIN_SHARD + 1) == [(0, parallel.MIN_SHARD + 1)]
    assert parallel.shard_bounds(0) == [(0, 0)]
    engine_threads(1)                                   # one thread: passes of 16-31 images
    assert parallel.shard_bounds(64) == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert parallel.shard_bounds(2 * parallel.PASS_IMAGES - 1) == [(0, 2 * parallel.PASS_IMAGES - 1)]
    assert parallel.shard_bounds(40) == [(0, 20), (20, 40)]
    assert parallel.shard_bounds(5) == [(0, 5)]
    with pytest.raises(ValueError, match="at least one thread"):
        parallel.set_threads(0)


def test_shard_plan_runs_shards_at_once_up_to_the_thread_count_else_here_in_order(engine_threads):
    ran = []

    def work(i):
        ran.append((i, threading.current_thread().name))
        return i

    engine_threads(1)
    bounds, concurrent = parallel.shard_plan(64)
    assert len(bounds) == 4 and not concurrent
    assert parallel.run_sharded([lambda i=i: work(i) for i in range(4)], concurrent) == [0, 1, 2, 3]
    assert ran == [(i, threading.current_thread().name) for i in range(4)]
    engine_threads(2)
    ran.clear()
    bounds, concurrent = parallel.shard_plan(64)
    assert len(bounds) == 2 and concurrent
    assert parallel.run_sharded([lambda i=i: work(i) for i in range(2)], concurrent) == [0, 1]
    assert len({name for _, name in ran}) == 2
    engine_threads(None)
    assert parallel.shard_plan(64) == ([(0, 64)], True)   # one shard: "at once" is just a call here


def test_run_concurrently_returns_in_order_and_reraises_after_joining():
    names = []

    def work(i):
        names.append(threading.current_thread().name)
        return i * i

    assert parallel.run_concurrently([lambda i=i: work(i) for i in range(3)]) == [0, 1, 4]
    assert names.count(threading.current_thread().name) == 1  # the first task ran here, the rest did not

    def fail():
        raise RuntimeError("shard failed")

    with pytest.raises(RuntimeError, match="shard failed"):
        parallel.run_concurrently([lambda: 1, fail])
    assert not [t for t in threading.enumerate() if t.name.startswith("engine shard")]


def test_shards_on_other_threads_handle_floating_point_errors_as_the_caller_does():
    """np.errstate is per thread: an evaluation that silences overflow (and reports it itself) had the
    helper threads' shards warn on stderr."""
    def overflow():
        return np.float32(3e38) * np.float32(10)

    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            parallel.run_concurrently([lambda: 1, overflow])
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parallel.run_concurrently([overflow, overflow]) == [np.inf, np.inf]
    calls = []
    with np.errstate(over="call", call=lambda kind, flag: calls.append(kind)):
        parallel.run_concurrently([overflow, overflow])
    assert calls == ["overflow", "overflow"]  # the helper's too: it raised "no function found"


@pytest.mark.parametrize("preset, variant", [("vgg7", None), ("vgg7", "broken_update"),
                                             ("tiny8x8", None), ("tiny8x8", "transposed_pool")])
@pytest.mark.parametrize("threads", [3, 1])   # three concurrent shards; three passes on one thread
def test_sharded_step_gives_the_whole_batch_loss_gradients_and_outputs(engine_threads, preset, variant, threads):
    spec = get_preset(preset, **SMALL_VGG7) if preset == "vgg7" else preset
    whole, sharded = twin_models(spec)
    whole.variant = sharded.variant = variant
    x, y = batch(whole, 3 * parallel.MIN_SHARD + 5)          # uneven shards
    engine_threads(None)
    loss, out = whole.loss_and_grads(x, y)
    engine_threads(threads)
    assert len(parallel.shard_bounds(len(x))) == 3
    for _ in range(2):                                       # the replicas' buffers are reused
        loss_s, out_s = sharded.loss_and_grads(x, y)
    assert loss_s == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(out_s, out, rtol=1e-12, atol=1e-14)
    for name, grad in whole.applied_grads().items():
        np.testing.assert_allclose(sharded.applied_grads()[name], grad, rtol=1e-10, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(sharded.infer(x), whole.forward(x), rtol=1e-12, atol=1e-14)


def test_passes_on_one_thread_share_the_scratch_buffers_and_concurrent_shards_do_not(engine_threads):
    """Passes one after the other reuse the model's conv workspaces (still in the CPU caches); shards
    run at once need their own. Switching between the two keeps the numbers."""
    whole, sharded = twin_models(get_preset("vgg7", **SMALL_VGG7))
    x, y = batch(whole, 2 * parallel.MIN_SHARD)
    engine_threads(None)
    loss, _ = whole.loss_and_grads(x, y)
    conv = sharded.layer("conv2")
    for threads in (1, 2, 1):
        engine_threads(threads)
        assert sharded.loss_and_grads(x, y)[0] == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(sharded.grads()["conv2.w"], whole.grads()["conv2.w"], rtol=1e-10)
        twin = sharded.trained_twins("conv2")[1]
        assert (twin._workspace is conv._workspace) == (threads == 1)


def test_passes_of_full_width_vgg7_give_the_whole_batch_step(engine_threads):
    """At VGG-7's own widths the conv products are cut into stacks of small ones (engine.ops); two
    passes of 16 images with shared buffers must still give the 32-image step."""
    whole, passes = twin_models("vgg7")
    x, y = batch(whole, 2 * parallel.PASS_IMAGES)
    engine_threads(None)
    loss, out = whole.loss_and_grads(x, y)
    engine_threads(1)
    assert len(parallel.shard_bounds(len(x))) == 2
    assert passes.loss_and_grads(x, y)[0] == pytest.approx(loss, rel=1e-12)
    for name, grad in whole.grads().items():
        np.testing.assert_allclose(passes.grads()[name], grad, rtol=1e-9, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(passes.infer(x), out, rtol=1e-12, atol=1e-14)


def test_inference_passes_on_one_thread_make_no_replicas(engine_threads):
    whole, sharded = twin_models(get_preset("vgg7", **SMALL_VGG7))
    x, _ = batch(whole, 4 * parallel.PASS_IMAGES + 3)
    engine_threads(1)
    np.testing.assert_allclose(sharded.infer(x), whole.forward(x), rtol=1e-12, atol=1e-14)
    assert sharded._replicas == []


def test_replicas_follow_weight_updates_and_variant_changes(engine_threads):
    whole, sharded = twin_models(get_preset("vgg7", **SMALL_VGG7))
    x, y = batch(whole, 2 * parallel.MIN_SHARD)
    engine_threads(2)
    sharded.loss_and_grads(x, y)                             # replicas exist from here on
    new = {name: value * 0.5 for name, value in whole.get_weights().items()}
    whole.set_weights(new)
    sharded.set_weights(new)
    sharded.variant = whole.variant = "transposed_pool"
    engine_threads(None)
    loss, _ = whole.loss_and_grads(x, y)
    engine_threads(2)
    assert sharded.loss_and_grads(x, y)[0] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(sharded.grads()["conv1.w"], whole.grads()["conv1.w"], rtol=1e-10)


def test_models_with_dropout_are_never_split(engine_threads):
    model = build("seed003", dtype=np.float64)
    engine_threads(2)
    assert model._shards(4 * parallel.MIN_SHARD) == ([(0, 4 * parallel.MIN_SHARD)], False)


def test_sharded_labels_of_the_wrong_length_are_refused(engine_threads):
    model = build(get_preset("vgg7", **SMALL_VGG7))
    x, y = batch(model, 2 * parallel.MIN_SHARD)
    engine_threads(2)
    with pytest.raises(ValueError, match="labels must have shape"):
        model.loss_and_grads(x, y[:-1])


def test_bench_puts_the_thread_settings_back(engine_threads, capsys):
    engine_threads(None)
    blas = parallel.blas_threads()
    args = bench.add_arguments(__import__("argparse").ArgumentParser()).parse_args(
        ["--no-torch", "--seconds", "0", "--rounds", "1", "--threads", "2", "--batch-size", "32"])
    assert bench.run(args) == 0
    assert "split into 2 shard(s)" in capsys.readouterr().out
    assert parallel.threads() is None and parallel.blas_threads() == blas


SETTINGS_BEFORE = []  # the two tests below run in this order (pytest keeps a file's order)


def test_a_test_may_leave_the_engine_threads_set():
    SETTINGS_BEFORE.append((parallel.threads(), parallel.blas_threads()))
    parallel.set_threads(3 if SETTINGS_BEFORE[0][0] == 1 else 1)  # as the app's windows do, unrestored


def test_the_engine_threads_are_back_for_the_next_test():
    """conftest's engine_threads_as_they_were: the app's tests had left one thread (passes of 16 images)
    to every later test."""
    assert SETTINGS_BEFORE and (parallel.threads(), parallel.blas_threads()) == SETTINGS_BEFORE[0]
