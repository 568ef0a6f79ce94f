"""engine.trace viewer helpers: ``ConvTrace.state_at`` agrees with replaying the frames one by one, and
``ConvTrace.origin`` agrees with the origins every frame's terms carry."""

import numpy as np
import pytest

from engine.ops import conv_output_hw
from engine.trace import STAGES, WORKED_EXAMPLES, trace_conv2d

TARGETS = ("y", "dy_dilated", "dy_padded", "w_rot", "dx_padded", "dx", "dw", "db")


def small_traces():
    """Worked examples plus random cases covering stride 2-3, asymmetric SAME, explicit padding,
    leftover rows, 2-3 channels and a bias."""
    traces = [trace_conv2d(e.x, e.w, e.b, e.dy, e.stride, e.padding) for e in WORKED_EXAMPLES.values()]
    rng = np.random.default_rng(7)
    for (h, w), k, stride, padding, c_in, c_out in [((6, 6), 3, 2, "SAME", 2, 2), ((5, 4), 2, 3, "VALID", 1, 3),
                                                  ((4, 5), 3, 1, ((1, 0), (2, 1)), 3, 1)]:
        x = rng.standard_normal((h, w, c_in))
        wt = rng.standard_normal((k, k, c_in, c_out))
        h_out, w_out = conv_output_hw((h, w), (k, k), stride, padding)
        traces.append(trace_conv2d(x, wt, rng.standard_normal(c_out), rng.standard_normal((h_out, w_out, c_out)),
                                   stride, padding))
    return traces


@pytest.mark.parametrize("trace", small_traces(), ids=lambda t: f"{t.x.shape}-{t.w.shape}-s{t.stride}")
def test_state_at_equals_replaying_the_frames(trace):
    # Replay: every data cell starts unwritten (NaN); cells that no frame writes keep the array's zero.
    written_ever = {t: np.zeros(trace.arrays[t].shape, bool) for t in TARGETS}
    for frame in trace.frames:
        written_ever[frame.target][frame.index] = True
    state = {t: np.where(written_ever[t], np.nan, 0.0) for t in TARGETS}
    starts = trace.stage_starts()
    for position, frame in enumerate(trace.frames):
        state[frame.target][frame.index] = frame.value
        for target in TARGETS:
            np.testing.assert_array_equal(trace.state_at(position, target), state[target],
                                          err_msg=f"{target} after frame {position} ({frame.stage})")
    # Before its stage nothing is written; after the last frame every target is the final array.
    for stage, target in zip(STAGES, TARGETS):
        before = trace.state_at(starts[stage] - 1, target)
        assert np.isnan(before[written_ever[target]]).all()
        np.testing.assert_array_equal(trace.state_at(len(trace.frames) - 1, target), trace.arrays[target])


@pytest.mark.parametrize("trace", small_traces(), ids=lambda t: f"{t.x.shape}-{t.w.shape}-s{t.stride}")
def test_origin_matches_the_terms(trace):
    for frame in trace.frames:
        for term in frame.terms:
            assert trace.origin(term.a_source) == term.a_origin
            if term.b_source is not None:
                assert trace.origin(term.b_source) == term.b_origin
        if not frame.terms and frame.stage == "rotate":
            (window,) = frame.reads
            assert trace.origin(frame.writes) == (window.array, (window.rows[0], window.cols[0], *window.channels))


def test_state_at_rejects_a_non_target():
    e = WORKED_EXAMPLES["seed001_3x3_kernel2_stride1"]
    with pytest.raises(ValueError, match="not a frame target"):
        trace_conv2d(e.x, e.w, e.b, e.dy, e.stride, e.padding).state_at(0, "x")
