"""engine.trace: the frames of one convolution rebuild the engine's (and PyTorch's) results, every
term is the product it claims to be, and seed 001's worked examples print the article's formulas.

Formulas expected below are copied from seed 001 (../shared/seeds/001_*.txt) with its
``a_{22}w_{11}`` written ``a22·w11``.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine import ops
from engine.trace import STAGES, WORKED_EXAMPLES, trace_conv2d

# Targets whose every cell some frame writes, and the intermediates whose data cells frames place.
FULL_TARGETS = ("y", "w_rot", "dx_padded", "dx", "dw", "db")


def rebuild(trace):
    """Replay all frames: {target: (array of last values, mask of written cells)}."""
    out = {}
    for frame in trace.frames:
        if frame.target not in out:
            shape = trace.arrays[frame.target].shape
            out[frame.target] = (np.zeros(shape), np.zeros(shape, dtype=bool))
        values, written = out[frame.target]
        values[frame.index] = frame.value
        written[frame.index] = True
    return out


def reference(x, w, b, dy, stride, padding):
    """The engine's batch-of-1 results: y (H_out, W_out, C_out), dx (H, W, C_in), dw, db."""
    y = ops.conv2d(x[None], w, b, stride, padding)[0]
    dx, dw, db = ops.conv2d_backward(dy[None], x[None], w, stride, padding)
    return {"y": y, "dx": dx[0], "dw": dw, "db": db}


@st.composite
def conv_cases(draw):
    """Random one-sample convolutions: stride 1-3, kernel 1-4, VALID/SAME/explicit, 1-3 channels."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kind = draw(st.sampled_from(["VALID", "SAME", "int", "pairs"]))
    if kind == "int":
        padding = draw(st.integers(0, 2))
    elif kind == "pairs":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    else:
        padding = kind
    (t, bo), (le, r) = ops.resolve_padding((h, w), (kh, kw), stride, padding)
    assume(h + t + bo >= kh and w + le + r >= kw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h_out, w_out = ops.conv_output_hw((h, w), (kh, kw), stride, padding)
    x = rng.standard_normal((h, w, c_in))
    wt = rng.standard_normal((kh, kw, c_in, c_out))
    b = rng.standard_normal(c_out) if draw(st.booleans()) else None
    dy = rng.standard_normal((h_out, w_out, c_out))
    return x, wt, b, dy, stride, padding


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


@FAST
@given(conv_cases())
def test_frames_rebuild_engine_results_and_every_intermediate(case):
    trace = trace_conv2d(*case)
    rebuilt = rebuild(trace)
    for name, expected in reference(*case).items():
        values, written = rebuilt[name]
        assert written.all(), f"{name}: cells no frame writes"
        np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-12, err_msg=name)
    for name in FULL_TARGETS:
        values, written = rebuilt[name]
        assert written.all()
        np.testing.assert_allclose(values, trace.arrays[name], rtol=1e-12, atol=1e-12, err_msg=name)
    # Dilation and padding frames place the δ values; every other cell is an inserted zero.
    for name in ("dy_dilated", "dy_padded"):
        values, written = rebuilt[name]
        assert written.sum() == trace.dy.size
        np.testing.assert_array_equal(values, trace.arrays[name])


@FAST
@given(conv_cases())
def test_inserted_masks_are_the_cells_without_an_origin(case):
    x, w, b, dy, stride, padding = case
    t = trace_conv2d(x, w, b, dy, stride, padding)
    for name in ("x_padded", "dy_dilated", "dy_padded"):
        rows, cols = t.arrays[name].shape[:2]
        expected = [[t.origin((name, (r, c, 0))) is None for c in range(cols)] for r in range(rows)]
        np.testing.assert_array_equal(t.inserted_mask(name), np.array(expected, bool).reshape(rows, cols))
    with pytest.raises(ValueError, match="'dx_padded' has no inserted zeros"):
        t.inserted_mask("dx_padded")


@FAST
@given(conv_cases())
def test_terms_are_the_products_they_claim(case):
    trace = trace_conv2d(*case)
    origins = {"x": trace.x, "dy": trace.dy, "w": trace.w}
    for frame in trace.frames:
        cells = {(win.array, cell) for win in frame.reads for cell in win.cells()}
        for term in frame.terms:
            assert term.a_value == trace.arrays[term.a_source[0]][term.a_source[1]]
            assert term.a_source in cells
            if term.b_source is None:  # the constant 1 of the bias gradient
                assert term.b_value == 1.0
            else:
                assert term.b_value == trace.arrays[term.b_source[0]][term.b_source[1]]
                assert term.b_source in cells
            for value, origin in ((term.a_value, term.a_origin), (term.b_value, term.b_origin)):
                if origin is not None:
                    assert value == origins[origin[0]][origin[1]]
            if term.inserted_zero:
                assert term.product == 0.0
        if frame.terms:
            assert frame.value == pytest.approx(frame.carry + sum(t.product for t in frame.terms), abs=1e-12)
        else:  # a copy: the one cell it reads holds the value it writes
            (window,) = frame.reads
            (cell,) = window.cells()
            assert trace.arrays[window.array][cell] == frame.value


def test_frames_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    # (H, W, kh, kw, stride, padding): asymmetric SAME with stride, VALID with leftovers, explicit.
    for h, w, kh, kw, stride, padding in [
        (7, 6, 3, 2, 2, "SAME"),
        (7, 8, 3, 3, (3, 2), "VALID"),
        (5, 5, 4, 2, 1, ((2, 0), (1, 3))),
        (6, 6, 2, 2, 3, 1),
    ]:
        c_in, c_out = 2, 3
        x = rng.standard_normal((h, w, c_in))
        wt = rng.standard_normal((kh, kw, c_in, c_out))
        b = rng.standard_normal(c_out)
        (t, bo), (le, r) = ops.resolve_padding((h, w), (kh, kw), stride, padding)
        xt = torch.tensor(x.transpose(2, 0, 1)[None], requires_grad=True)
        wt_t = torch.tensor(wt.transpose(3, 2, 0, 1), requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (le, r, t, bo)), wt_t, bt,
                                        stride=ops.normalize_stride(stride))
        dy = rng.standard_normal(yt.shape[2:] + (c_out,))
        yt.backward(torch.tensor(dy.transpose(2, 0, 1)[None]))
        expected = {
            "y": yt.detach().numpy()[0].transpose(1, 2, 0),
            "dx": xt.grad.numpy()[0].transpose(1, 2, 0),
            "dw": wt_t.grad.numpy().transpose(2, 3, 1, 0),
            "db": bt.grad.numpy(),
        }
        rebuilt = rebuild(trace_conv2d(x, wt, b, dy, stride, padding))
        for name, value in expected.items():
            np.testing.assert_allclose(rebuilt[name][0], value, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} for {(h, w, kh, kw, stride, padding)}")


def trace_of(name):
    ex = WORKED_EXAMPLES[name]
    return trace_conv2d(ex.x, ex.w, ex.b, ex.dy, ex.stride, ex.padding)


def formulas(trace, stage):
    return [trace.formula(f) for f in trace.frames_for(stage)]


@pytest.mark.parametrize("name", sorted(WORKED_EXAMPLES))
def test_worked_examples_match_the_engine(name):
    ex = WORKED_EXAMPLES[name]
    trace = trace_of(name)
    rebuilt = rebuild(trace)
    for target, expected in reference(ex.x, ex.w, ex.b, ex.dy, ex.stride, ex.padding).items():
        np.testing.assert_allclose(rebuilt[target][0], expected, rtol=1e-12, atol=1e-12)
    assert ex.description


def test_seed001_5x5_first_output_is_4_with_the_articles_products():
    trace = trace_of("seed001_5x5_kernel3")
    first = trace.frames[0]
    assert (first.stage, first.target, first.index) == ("forward", "y", (0, 0, 0))
    # The article: [[1,1,1],[0,1,1],[0,0,1]] * [[1,0,1],[0,1,0],[1,0,1]], term by term.
    assert [(t.a_value, t.b_value) for t in first.terms] == [
        (1, 1), (1, 0), (1, 1), (0, 0), (1, 1), (1, 0), (0, 1), (0, 0), (1, 1)]  # fmt: skip
    assert first.value == 4
    assert trace.formula(first, numbers=True) == (
        "z11 = 1·1 + 1·0 + 1·1 + 0·0 + 1·1 + 1·0 + 0·1 + 0·0 + 1·1 = 4"
    )
    assert trace.formula(first) == (
        "z11 = a11·w11 + a12·w12 + a13·w13 + a21·w21 + a22·w22 + a23·w23"
        " + a31·w31 + a32·w32 + a33·w33"
    )


def test_seed001_3x3_kernel2_stride1_formulas():
    trace = trace_of("seed001_3x3_kernel2_stride1")
    assert formulas(trace, "forward") == [
        "z11 = a11·w11 + a12·w12 + a21·w21 + a22·w22",
        "z12 = a12·w11 + a13·w12 + a22·w21 + a23·w22",
        "z21 = a21·w11 + a22·w12 + a31·w21 + a32·w22",
        "z22 = a22·w11 + a23·w12 + a32·w21 + a33·w22",
    ]
    assert formulas(trace, "input_grad") == [
        "∇a11 = δ11·w11",
        "∇a12 = δ11·w12 + δ12·w11",
        "∇a13 = δ12·w12",
        "∇a21 = δ11·w21 + δ21·w11",
        "∇a22 = δ11·w22 + δ12·w21 + δ21·w12 + δ22·w11",
        "∇a23 = δ12·w22 + δ22·w12",
        "∇a31 = δ21·w21",
        "∇a32 = δ21·w22 + δ22·w21",
        "∇a33 = δ22·w22",
    ]
    # The terms behind ∇a22: the full 2x2 window of the padded δ times the rotated kernel.
    (a22,) = [f for f in trace.frames_for("input_grad") if f.index == (1, 1, 0)]
    assert [(t.a_source, t.a_origin, t.b_source, t.b_origin) for t in a22.terms] == [
        (("dy_padded", (1, 1, 0)), ("dy", (0, 0, 0)), ("w_rot", (0, 0, 0, 0)), ("w", (1, 1, 0, 0))),
        (("dy_padded", (1, 2, 0)), ("dy", (0, 1, 0)), ("w_rot", (0, 1, 0, 0)), ("w", (1, 0, 0, 0))),
        (("dy_padded", (2, 1, 0)), ("dy", (1, 0, 0)), ("w_rot", (1, 0, 0, 0)), ("w", (0, 1, 0, 0))),
        (("dy_padded", (2, 2, 0)), ("dy", (1, 1, 0)), ("w_rot", (1, 1, 0, 0)), ("w", (0, 0, 0, 0))),
    ]
    # ∇a11 reads three zeros of the k-1 padding: terms keep them, the formula leaves them out.
    a11 = trace.frames_for("input_grad")[0]
    assert len(a11.terms) == 4 and sum(t.inserted_zero for t in a11.terms) == 3
    assert formulas(trace, "rotate") == ["w_rot[1,1] = w22", "w_rot[1,2] = w21", "w_rot[2,1] = w12",
                                         "w_rot[2,2] = w11"]  # fmt: skip
    # δ padded with k-1 = 1 zero: the article's 4x4 matrix with δ in the middle.
    assert formulas(trace, "pad") == [
        "dy_padded[2,2] = δ11", "dy_padded[2,3] = δ12", "dy_padded[3,2] = δ21", "dy_padded[3,3] = δ22",
    ]  # fmt: skip
    assert trace.dy_padded_for_input_grad.shape == (4, 4, 1)


def test_seed001_4x4_kernel2_stride2_formulas():
    trace = trace_of("seed001_4x4_kernel2_stride2")
    assert formulas(trace, "forward") == [
        "z11 = a11·w11 + a12·w12 + a21·w21 + a22·w22",
        "z12 = a13·w11 + a14·w12 + a23·w21 + a24·w22",
        "z21 = a31·w11 + a32·w12 + a41·w21 + a42·w22",
        "z22 = a33·w11 + a34·w12 + a43·w21 + a44·w22",
    ]
    assert formulas(trace, "input_grad") == [
        "∇a11 = δ11·w11", "∇a12 = δ11·w12", "∇a13 = δ12·w11", "∇a14 = δ12·w12",
        "∇a21 = δ11·w21", "∇a22 = δ11·w22", "∇a23 = δ12·w21", "∇a24 = δ12·w22",
        "∇a31 = δ21·w11", "∇a32 = δ21·w12", "∇a33 = δ22·w11", "∇a34 = δ22·w12",
        "∇a41 = δ21·w21", "∇a42 = δ21·w22", "∇a43 = δ22·w21", "∇a44 = δ22·w22",
    ]  # fmt: skip
    # s-1 = 1 zero between the δ values, then k-1 = 1 around: the article's 5x5 matrix.
    assert formulas(trace, "dilate") == ["dy_dilated[1,1] = δ11", "dy_dilated[1,3] = δ12",
                                         "dy_dilated[3,1] = δ21", "dy_dilated[3,3] = δ22"]  # fmt: skip
    assert formulas(trace, "pad") == ["dy_padded[2,2] = δ11", "dy_padded[2,4] = δ12",
                                      "dy_padded[4,2] = δ21", "dy_padded[4,4] = δ22"]  # fmt: skip
    assert trace.dy_padded_for_input_grad.shape == (5, 5, 1)
    # The rotated kernel moves with stride 1 over the padded δ: windows start at every cell.
    starts = [(f.reads[0].rows.start, f.reads[0].cols.start) for f in trace.frames_for("input_grad")]
    assert starts == [(r, c) for r in range(4) for c in range(4)]


def test_seed001_two_channel_is_one_value_204_not_the_elementwise_matrix():
    ex = WORKED_EXAMPLES["seed001_two_channel"]
    # The article's "multi-channel convolution": products per position summed over channels.
    np.testing.assert_array_equal((ex.x * ex.w[:, :, :, 0]).sum(axis=2), [[26, 40], [58, 80]])
    trace = trace_of("seed001_two_channel")
    assert trace.y.shape == (1, 1, 1) and trace.y[0, 0, 0] == 204
    first, second = trace.frames_for("forward")
    assert (first.value, second.value, first.part, second.part) == (30, 204, (0, 2), (1, 2))
    assert trace.formula(first) == (
        "z11 = a11[0]·w11[0,0] + a12[0]·w12[0,0] + a21[0]·w21[0,0] + a22[0]·w22[0,0]"
    )
    assert trace.formula(second, numbers=True) == "z11 = 30 + 5·5 + 6·6 + 7·7 + 8·8 = 204"


def test_a_partial_sum_over_channels_is_the_engines_result_on_those_channels_only():
    """partial_sum(target, index, k): z over input channels 0..k (bias included), ∇a over output channels
    0..k: engine.ops on the channel slices; through the last channel, the complete value."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((5, 6, 3)), rng.standard_normal((3, 3, 3, 4))
    b, dy = rng.standard_normal(4), rng.standard_normal((3, 3, 4))
    trace = trace_conv2d(x, w, b, dy, 2, "SAME")
    (pt, _), (pl, _) = trace.padding
    for k in range(3):
        z = ops.conv2d(x[None, :, :, : k + 1], w[:, :, : k + 1], b, 2, "SAME")[0]
        for index in ((0, 0, 1), (2, 1, 3)):
            assert trace.partial_sum("y", index, k) == pytest.approx(z[index], abs=1e-12)
    for k in range(4):
        dx = ops.conv2d_backward(dy[None, :, :, : k + 1], x[None], w[..., : k + 1], 2, "SAME")[0][0]
        for r, c, ci in ((0, 0, 0), (4, 5, 2), (3, 2, 1)):
            assert trace.partial_sum("dx_padded", (r + pt, c + pl, ci), k) == pytest.approx(dx[r, c, ci], abs=1e-12)
    assert trace.partial_sum("y", (1, 2, 0), 2) == trace.y[1, 2, 0]
    with pytest.raises(ValueError):
        trace.partial_sum("dw", (0, 0, 0, 0), 0)
    with pytest.raises(IndexError):
        trace.partial_sum("y", (0, 0, 0), 3)  # 3 input channels: 0..2


def test_same_padding_is_asymmetric_and_its_zeros_leave_the_formulas():
    # 3x3 input, 2x2 kernel, SAME: P = 1, all of it at the bottom and right (TensorFlow rule).
    x = np.arange(1.0, 10.0).reshape(3, 3, 1)
    w = np.array([[1.0, 2.0], [3.0, 4.0]])[:, :, None, None]
    b = np.array([0.5])
    trace = trace_conv2d(x, w, b, np.ones((3, 3, 1)), 1, "SAME")
    assert trace.padding == ((0, 1), (0, 1))
    last = trace.frames_for("forward")[-1]
    assert trace.formula(last) == "z33 = a33·w11 + b"
    assert trace.formula(last, numbers=True) == "z33 = 9·1 + 0.5 = 9.5"
    assert sum(t.inserted_zero for t in last.terms) == 3
    # The padded row/column gets a gradient too, which the crop throws away.
    corner = trace.frames_for("input_grad")[-1]
    assert corner.index == (3, 3, 0) and trace.formula(corner) == "dx_padded[4,4] = δ33·w22"
    assert trace.formula(trace.frames_for("crop")[0]) == "∇a11 = dx_padded[1,1]"


def test_valid_leftover_rows_get_zero_gradient():
    # 6 rows, k=2, s=3: windows cover rows 0-1 and 3-4; row 2 is skipped and row 5 is a leftover.
    rng = np.random.default_rng(3)
    trace = trace_conv2d(rng.standard_normal((6, 6, 1)), rng.standard_normal((2, 2, 1, 1)), None,
                         rng.standard_normal((2, 2, 1)), 3, "VALID")  # fmt: skip
    assert trace.leftover == (1, 1)
    assert trace.dy_dilated.shape == (5, 5, 1)  # (2-1)*3 + 1 = 4, extended by the leftover to 5
    assert not trace.dx[[2, 5]].any() and not trace.dx[:, [2, 5]].any()
    assert trace.dx[[0, 1, 3, 4]][:, [0, 1, 3, 4]].all()


def test_navigation_on_a_real_size_layer():
    # A vgg7-like conv2: 28x28x16 -> 16, 3x3, SAME. Frames are built on demand.
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((28, 28, 16)), rng.standard_normal((3, 3, 16, 16))
    trace = trace_conv2d(x, w, rng.standard_normal(16), rng.standard_normal((28, 28, 16)), 1, "SAME")
    starts = trace.stage_starts()
    assert list(starts) == list(STAGES) and starts["forward"] == 0
    assert len(trace.frames) == 28 * 28 * 256 + 3 * 28 * 28 * 16 + 30 * 30 * 256 + 2 * 9 * 256 + 16
    bounds = list(starts.values()) + [len(trace.frames)]
    for stage, begin, end in zip(STAGES, bounds, bounds[1:]):
        assert trace.frames[begin].stage == stage and trace.frames[end - 1].stage == stage
        assert len(trace.frames_for(stage)) == end - begin
    assert trace.frames[-1] == trace.frames[len(trace.frames) - 1]
    assert trace.frames[-1].position == len(trace.frames) - 1
    with pytest.raises(IndexError):
        trace.frames[len(trace.frames)]
    middle = trace.frames[starts["input_grad"] + 12345]
    assert middle.position == starts["input_grad"] + 12345
    window = trace.frames[10:20]
    assert [f.position for f in window] == list(range(10, 20))

    # One channel pair: contiguous frames, each cell of that pair exactly once, the right channels.
    pair = trace.frames_for("forward", c_in=3, c_out=5)
    assert len(pair) == 28 * 28
    assert list(pair.positions) == list(range(pair.positions[0], pair.positions[0] + 28 * 28))
    assert all(f.index[2] == 5 and f.part == (3, 16) for f in pair[::97])
    grads = trace.frames_for("input_grad", c_in=2)
    assert len(grads) == 30 * 30 * 16 and all(f.index[2] == 2 for f in grads[::501])
    kernels = trace.frames_for("weight_grad", c_out=7)
    assert {f.index[3] for f in kernels} == {7} and len(kernels) == 9 * 16
    with pytest.raises(IndexError):
        trace.frames_for("forward", c_in=16)
    with pytest.raises(ValueError):
        trace.frames_for("backward")
    # Formulas switch to (row,col) when indices reach two digits; channels count from 0 (as the app's
    # other views do), rows and columns from 1 (as the article's formulas do).
    assert trace.formula(trace.frames_for("crop", c_in=0)[-1]) == "∇a(28,28)[0] = dx_padded[29,29][0]"
    assert trace.formula(trace.frames_for("weight_grad", c_in=3, c_out=5)[0]).startswith("∇w(1,1)[3,5] = ")


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, dy_shape",
    [
        ((1, 5, 5, 1), (3, 3, 1, 1), None, (3, 3, 1)),  # a batch, not one sample
        ((5, 5, 2), (3, 3, 1, 1), None, (3, 3, 1)),  # channel mismatch
        ((5, 5, 1), (3, 3, 1, 2), (3,), (3, 3, 2)),  # bias of the wrong size
        ((5, 5, 1), (3, 3, 1, 1), None, (2, 2, 1)),  # dy not the conv output
        ((2, 2, 1), (3, 3, 1, 1), None, (1, 1, 1)),  # kernel larger than the input
    ],
)
def test_bad_shapes_are_refused(x_shape, w_shape, b_shape, dy_shape):
    b = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ValueError):
        trace_conv2d(np.zeros(x_shape), np.zeros(w_shape), b, np.zeros(dy_shape))


def test_trace_keeps_its_own_copy_of_the_inputs():
    ex = WORKED_EXAMPLES["seed001_3x3_kernel2_stride1"]
    x, w, dy = ex.x.copy(), ex.w.copy(), ex.dy.copy()
    trace = trace_conv2d(x, w, None, dy)
    before = trace.frames[0].value
    x += 1.0
    w *= 2.0  # what an optimiser step does to a live model's kernel
    assert trace.frames[0].value == before and trace.x[0, 0, 0] == ex.x[0, 0, 0]
