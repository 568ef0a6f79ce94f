"""Export for teaching: files written by app.export are read back (QImage, csv, Pillow) and compared
with the data and the frames the views themselves produce."""
import csv
import math
import os

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtGui, QtWidgets

from app import export
from app.views.conv_stepper import ConvStepper
from app.views.loss import LossView
from app.views.pooling import PoolingView
from engine.presets import build


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def curve_columns(rows):
    """{curve name: (x, y)} from a write_curves_csv file, empty cells dropped."""
    header, body = rows[0], rows[1:]
    result = {}
    for j in range(0, len(header), 2):
        name = header[j][: -len(" x")]
        assert header[j + 1] == f"{name} y"
        xs = [float(r[j]) for r in body if r[j] != ""]
        ys = [float(r[j + 1]) for r in body if r[j + 1] != ""]
        result[name] = (np.array(xs), np.array(ys))
    return result


@pytest.fixture
def plot(qtbot):
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    widget.resize(500, 300)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_plot_png_has_the_plot_size_and_csv_holds_every_point_even_when_downsampled(plot, tmp_path):
    rng = np.random.default_rng(0)
    x_long = np.arange(5000, dtype=np.float64)
    y_long = rng.normal(size=5000)
    long_curve = plot.plot(x_long, y_long, name="loss")
    long_curve.setDownsampling(auto=True, method="peak")
    long_curve.setClipToView(True)
    plot.plot([0.5, 1.5, 2.5], [0.1, 1 / 3, 2e-9], name="val")
    plot.setXRange(100, 200)  # only part of the long curve is drawn, and that part downsampled
    drawn_x, _ = long_curve.getData()
    assert len(drawn_x) < len(x_long)  # the trap the export avoids

    png, csv_path = export.export_plot(plot, tmp_path / "p.png", tmp_path / "p.csv")
    image = QtGui.QImage(png)
    rect = plot.getPlotItem().sceneBoundingRect()
    assert not image.isNull()
    assert (image.width(), image.height()) == (int(rect.width()), int(rect.height()))

    columns = curve_columns(read_csv(csv_path))
    assert list(columns) == ["loss", "val"]
    np.testing.assert_array_equal(columns["loss"][0], x_long)
    np.testing.assert_array_equal(columns["loss"][1], y_long)  # repr round-trips floats exactly
    np.testing.assert_array_equal(columns["val"][1], [0.1, 1 / 3, 2e-9])


def test_heatmap_png_is_the_image_as_drawn_enlarged_and_csv_holds_the_numbers(qtbot, tmp_path):
    data = np.arange(35, dtype=np.float32).reshape(7, 5)
    data[6, 4] = np.nan
    item = pg.ImageItem(axisOrder="row-major")
    lut = pg.colormap.get("viridis").getLookupTable(nPts=256)
    item.setImage(data, levels=(0.0, 34.0), lut=lut)

    png, csv_path = export.export_heatmap(item, tmp_path / "h.png", tmp_path / "h.csv", scale=6)
    image = QtGui.QImage(png)
    assert (image.width(), image.height()) == (5 * 6, 7 * 6)
    first = image.pixelColor(2, 2)      # inside value data[0, 0] = 0 -> the LUT's first colour
    last = image.pixelColor(3 * 6 + 2, 6 * 6 + 2)  # data[6, 3] = 33 -> near the LUT's end
    assert (first.red(), first.green(), first.blue()) == tuple(lut[0][:3])
    # pyqtgraph maps level range (0, 34) onto the 256 LUT entries: index floor(33 * 256 / 34).
    assert (last.red(), last.green(), last.blue()) == tuple(lut[33 * 256 // 34][:3])
    assert image.pixelColor(4 * 6 + 2, 6 * 6 + 2).alpha() == 0  # NaN is transparent

    rows = read_csv(csv_path)
    assert rows[0] == ["", "0", "1", "2", "3", "4"]
    values = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    np.testing.assert_array_equal(values, data.astype(np.float64))  # NaN == NaN for this helper


def test_default_heatmap_scale_reaches_the_minimum_side(tmp_path):
    item = pg.ImageItem(axisOrder="row-major")
    item.setImage(np.eye(10, dtype=np.float32), levels=(0.0, 1.0))
    (png,) = export.export_heatmap(item, tmp_path / "eye.png")
    image = QtGui.QImage(png)
    scale = math.ceil(export.HEATMAP_MIN_SIDE / 10)
    assert (image.width(), image.height()) == (10 * scale, 10 * scale)


def test_view_data_export_writes_every_step_of_the_loss_view(qtbot, tmp_path):
    """5,000 steps: the plotted curve keeps a peak envelope of them, the CSV has every one."""
    view = LossView()
    qtbot.addWidget(view)
    view.resize(600, 500)
    view.show()
    steps = np.arange(1, 5001)
    losses = 2.3 * np.exp(-steps / 2000.0) + 0.1 * np.sin(steps)
    view.append_steps(steps, losses)
    view.append_epoch(5000, 0.9, 1.0, 0.7, 0.65)
    view.add_overlay("previous run", steps[:3000], losses[:3000] + 1)
    assert len(view.step_curve.getOriginalDataset()[0]) < len(steps)  # what is drawn is thinned out
    written = export.export_view_data(view, tmp_path, "loss")
    assert str(tmp_path / "loss.png") in written  # the view's own export_png
    assert [p for p in written if p.endswith(".csv")] == [str(tmp_path / "loss.csv")]  # no thinned copies
    columns = curve_columns(read_csv(str(tmp_path / "loss.csv")))
    np.testing.assert_array_equal(columns["loss per step"][0], steps)
    np.testing.assert_array_equal(columns["loss per step"][1], losses)
    assert len(columns["smoothed"][1]) == 5000
    np.testing.assert_array_equal(columns["previous run"][1], losses[:3000] + 1)
    assert columns["val accuracy % (end of epoch)"][1].tolist() == [65.0]
    # the epoch's mean training loss as the plot draws it: a bar from the epoch's start to its last step
    assert [column.tolist() for column in columns["train loss (mean over the epoch)"]] == [[0, 5000], [0.9, 0.9]]
    assert [column.tolist() for column in columns["val loss (end of epoch)"]] == [[5000], [1.0]]
    for p in written:
        if p.endswith(".png"):
            assert not QtGui.QImage(p).isNull(), p


@pytest.fixture
def stepper(qtbot):
    view = ConvStepper()  # opens on seed 001's first worked example: a few dozen frames
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_png_sequence_has_one_file_per_frame_equal_to_render_frame(stepper, tmp_path):
    n = stepper.frame_count()
    assert 0 < n < 400
    written = export.export_animation(stepper, tmp_path / "conv.png")
    assert written == export.sequence_paths(tmp_path / "conv.png", n)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.split("/")[-1] for p in written)
    size = stepper.canvas.size()
    for k in (0, n // 2, n - 1):
        image = QtGui.QImage(written[k])
        assert (image.width(), image.height()) == (size.width(), size.height())
        expected = stepper.render_frame(k).convertToFormat(image.format())
        assert image == expected
    assert QtGui.QImage(written[0]) != QtGui.QImage(written[1])


def test_gif_has_the_chosen_frames(stepper, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    frames = range(3, 9)
    (path,) = export.export_animation(stepper, tmp_path / "conv.gif", frames, fps=4)
    with Image.open(path) as gif:
        assert gif.n_frames == len(frames)
        assert gif.size == (stepper.canvas.width(), stepper.canvas.height())
        assert gif.info["duration"] == 250
        # First frame's colours survive the palette: compare with the rendered frame.
        expected = stepper.render_frame(frames[0]).convertToFormat(QtGui.QImage.Format.Format_RGB888)
        gif.seek(0)
        rgb = np.asarray(gif.convert("RGB"))
        x, y = expected.width() // 2, expected.height() // 2
        colour = expected.pixelColor(x, y)
        assert np.abs(rgb[y, x].astype(int) - [colour.red(), colour.green(), colour.blue()]).max() <= 8


def test_gif_without_pillow_is_refused_and_writes_nothing(stepper, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "gif_available", lambda: False)
    with pytest.raises(RuntimeError, match="Pillow"):
        export.export_animation(stepper, tmp_path / "conv.gif")
    assert list(tmp_path.iterdir()) == []


def test_export_dialog_without_pillow_says_why_it_offers_no_gif(stepper, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "gif_available", lambda: False)
    asked = {}

    def get_save_file_name(parent, caption, directory, filters):
        asked["filters"] = filters.split(";;")
        return str(tmp_path / "conv"), asked["filters"][0]

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", get_save_file_name)
    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", lambda *args: (args[3][0], True))
    written = export.export_animation_dialog(stepper)
    assert len(asked["filters"]) == 1 and "GIF needs Pillow" in asked["filters"][0]
    assert asked["filters"][0].endswith("(*.png)")
    assert written and all(path.endswith(".png") for path in written)


def earlier_sequence(tmp_path, n=5):
    paths = export.sequence_paths(tmp_path / "a.png", n)
    for path in paths:
        with open(path, "wb") as f:
            f.write(b"earlier export")
    return paths


def assert_untouched(tmp_path, paths):
    assert all(open(path, "rb").read() == b"earlier export" for path in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(os.path.basename(p) for p in paths)  # no leftovers


def test_a_cancelled_sequence_leaves_earlier_files_of_the_same_names_as_they_were(stepper, tmp_path, monkeypatch):
    paths = earlier_sequence(tmp_path)
    polls = []
    monkeypatch.setattr(QtWidgets.QProgressDialog, "wasCanceled", lambda self: polls.append(1) or len(polls) > 3)
    assert export.export_animation(stepper, tmp_path / "a.png", frames=range(5)) == []
    assert_untouched(tmp_path, paths)


def test_a_failed_export_leaves_earlier_files_as_they_were_and_says_why(stepper, tmp_path, monkeypatch):
    paths = earlier_sequence(tmp_path)
    real, calls = export._png_bytes, []

    def disk_fills_up(image):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(image)

    monkeypatch.setattr(export, "_png_bytes", disk_fills_up)
    with pytest.raises(OSError, match="No space left"):
        export.export_animation(stepper, tmp_path / "a.png", frames=range(5))
    assert_untouched(tmp_path, paths)


def test_a_failed_gif_leaves_the_earlier_gif_whole(stepper, tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    from PIL import Image

    gif = tmp_path / "a.gif"
    gif.write_bytes(b"earlier export")

    def disk_fills_up(self, fp, *args, **kwargs):
        fp.write(b"GIF89a half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_fills_up)
    with pytest.raises(OSError, match="No space left"):
        export.export_animation(stepper, gif, frames=range(3))
    assert gif.read_bytes() == b"earlier export" and [p.name for p in tmp_path.iterdir()] == ["a.gif"]


def test_stage_range_offered_for_the_conv_stepper(stepper):
    stepper.jump_to_stage("rotate")
    ranges = export.frame_ranges(stepper)
    assert ranges[0][1] == range(stepper.frame_count())
    (label, frames), = ranges[1:]
    assert "rotate" in label
    assert frames.start == stepper.stage_first_index("rotate") and stepper.current_index() in frames


def test_pooling_backward_stepper_exports_window_by_window(qtbot, tmp_path):
    view = PoolingView()
    view.MAX_DUTY = None
    qtbot.addWidget(view)
    view.resize(1100, 800)
    view.show()
    qtbot.waitExposed(view)
    view.model_changed(build("vgg7", seed=0))
    assert view.sample is not None
    source = export.frame_source(view)
    ho, wo = view.sample.out_hw
    assert source.frame_count() == ho * wo
    view.slider.setValue(5)
    written = export.export_animation(view, tmp_path / "pool.png", frames=range(3))
    assert len(written) == 3 and view.slider.value() == 5  # the view's own window is kept
    images = [QtGui.QImage(p) for p in written]
    assert all(not im.isNull() and im.width() >= view.plot.width() for im in images)
    assert images[0] != images[1]
    assert images[0] == source.render_frame(0).convertToFormat(images[0].format())


def test_a_view_without_animation_is_refused(qtbot):
    with pytest.raises(TypeError):
        export.frame_source(LossView())


def test_dialog_exports_the_chosen_stage_as_png_files(stepper, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    stepper.jump_to_stage("weight_grad")
    (stage_label, frames), = export.frame_ranges(stepper)[1:]
    asked = {}

    def get_item(parent, title, label, items, current, editable):
        asked["items"] = items
        return stage_label, True

    def get_save_file_name(parent, caption, directory, filters):
        asked["filters"] = filters
        return str(tmp_path / "stage"), "PNG sequence (*.png)"

    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", get_item)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", get_save_file_name)
    written = export.export_animation_dialog(stepper)
    assert asked["items"][0] == f"All {stepper.frame_count()} frames"
    assert ("Animated GIF (*.gif)" in asked["filters"]) == export.gif_available()
    assert written == export.sequence_paths(tmp_path / "stage.png", len(frames))
    first = QtGui.QImage(written[0])
    assert first == stepper.render_frame(frames[0]).convertToFormat(first.format())

    # The same name again: the files exist, so the dialog asks before replacing them; "No" keeps them.
    questions = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda parent, title, text: questions.append(text)
                        or QtWidgets.QMessageBox.StandardButton.No)
    for path in written:
        os.utime(path, (0, 0))
    assert export.export_animation_dialog(stepper) == []
    assert "already exist (stage-0001.png …). Replace them?" in questions[0]
    assert all(os.stat(path).st_mtime == 0 for path in written)


def test_a_gif_too_large_to_hold_in_memory_is_refused_before_anything_is_written(stepper, tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    area = stepper.canvas.width() * stepper.canvas.height()
    monkeypatch.setattr(export, "GIF_MAX_PIXELS", 5 * area)
    with pytest.raises(ValueError, match=r"6 frames of \d+ x \d+ pixels are too many for one animated GIF "
                                         r"\(at most 5 at this size\): export the current stage, or a PNG sequence"):
        export.export_animation(stepper, tmp_path / "a.gif", frames=range(6))
    assert list(tmp_path.iterdir()) == []
    assert len(export.export_animation(stepper, tmp_path / "a.gif", frames=range(5))) == 1


def test_gif_frames_are_made_one_at_a_time_as_pillow_writes_them(stepper, tmp_path, monkeypatch):
    """Not all first: 4,055 frames held together took 2.2 GB, and the progress dialog froze meanwhile."""
    Image = pytest.importorskip("PIL.Image")
    log, real_frame, real_save = [], export._pil_frame, Image.Image.save
    monkeypatch.setattr(export, "_pil_frame", lambda image: log.append("frame") or real_frame(image))
    monkeypatch.setattr(Image.Image, "save", lambda self, *a, **k: log.append("save") or real_save(self, *a, **k))
    (path,) = export.export_animation(stepper, tmp_path / "a.gif", frames=range(4))
    assert log == ["frame", "save", "frame", "frame", "frame"]
    with Image.open(path) as gif:
        assert gif.n_frames == 4


def test_a_cancelled_gif_leaves_the_earlier_gif_whole(stepper, tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    gif = tmp_path / "a.gif"
    gif.write_bytes(b"earlier export")
    polls = []
    monkeypatch.setattr(QtWidgets.QProgressDialog, "wasCanceled", lambda self: polls.append(1) or len(polls) > 2)
    assert export.export_animation(stepper, gif, frames=range(5)) == []
    assert gif.read_bytes() == b"earlier export" and [p.name for p in tmp_path.iterdir()] == ["a.gif"]


@pytest.mark.parametrize("typed, suffix, replaces, completed", [
    ("vgg7", ".npz", "", "vgg7.npz"), ("vgg7.NPZ", ".npz", "", "vgg7.NPZ"),
    ("run1.npz", ".convscope.npz", ".npz", "run1.convscope.npz"), ("run1", ".convscope.npz", ".npz",
                                                                   "run1.convscope.npz"),
    ("run1.convscope.npz", ".convscope.npz", ".npz", "run1.convscope.npz")])
def test_a_save_name_is_completed_and_an_existing_completed_file_is_asked_about(
        typed, suffix, replaces, completed, tmp_path, monkeypatch, qapp):
    answers, questions = [QtWidgets.QMessageBox.StandardButton.No, QtWidgets.QMessageBox.StandardButton.Yes], []
    monkeypatch.setattr(QtWidgets.QMessageBox, "question",
                        lambda parent, title, text: questions.append(text) or answers.pop(0))
    typed, completed = str(tmp_path / typed), str(tmp_path / completed)
    assert export.completed_save_path(None, typed, suffix, "Save", replaces) == completed and not questions
    open(completed, "wb").close()
    if typed == completed:  # the dialog itself asked about this name
        assert export.completed_save_path(None, typed, suffix, "Save", replaces) == completed and not questions
        return
    assert export.completed_save_path(None, typed, suffix, "Save", replaces) is None          # "No"
    assert export.completed_save_path(None, typed, suffix, "Save", replaces) == completed     # "Yes"
    assert questions == [f"{os.path.basename(completed)} already exists in {tmp_path}.\nDo you want to replace it?"] * 2


def test_a_shorter_sequence_over_a_longer_one_removes_its_later_frames_once_agreed(stepper, tmp_path, monkeypatch):
    earlier = earlier_sequence(tmp_path, n=12)
    (tmp_path / "a-notes.png").write_bytes(b"not a frame")
    assert export.later_frames(tmp_path / "a.png", 5) == earlier[5:]
    questions = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda parent, title, text: questions.append(text)
                        or QtWidgets.QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(export, "frame_ranges", lambda widget: [("All 5 frames", range(5))])
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *args: (str(tmp_path / "a"), "PNG sequence (*.png)"))
    written = export.export_animation_dialog(stepper)
    assert written == earlier[:5] and questions == [
        "12 file(s) of this sequence already exist (a-0001.png …). Replace them? The 7 frame(s) after frame 5 are "
        "removed: they belong to an earlier, longer export."]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-0001.png", "a-0002.png", "a-0003.png", "a-0004.png",
                                                         "a-0005.png", "a-notes.png"]


def test_only_frames_following_on_from_the_new_sequence_count_as_leftovers(tmp_path):
    """A lone holiday-2023.png beside a 40-frame export is somebody's picture: it was deleted."""
    for k in (41, 42, 43, 45, 2023):
        (tmp_path / f"holiday-{k:04d}.png").write_bytes(b"x")
    assert export.later_frames(tmp_path / "holiday.png", 40) == [str(tmp_path / f"holiday-{k:04d}.png")
                                                                 for k in (41, 42, 43)]
    assert export.later_frames(tmp_path / "holiday.png", 45) == []


# ---------------------------------------------------------------------- kernel timeline

@pytest.fixture
def timeline_view(qtbot):
    """A kernel timeline of six snapshots (steps 0-5) shown on a fixed scale; snapshot 2 repeats
    snapshot 1's kernels, every other one differs."""
    from app.views.kernel_timeline import KernelTimelineView
    from engine.timeline import KernelTimeline

    timeline = KernelTimeline.for_model(build("tiny8x8", seed=2), capacity=8, every=1)
    rng = np.random.default_rng(0)
    kernels = {}
    for step in range(1, 6):
        if step != 2:
            kernels = {name: rng.standard_normal(shape).astype(np.float32) * step
                       for name, shape in timeline.shapes.items()}
        timeline.push(step, kernels)
    view = KernelTimelineView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    view.set_timeline(timeline)
    view.slider.setValue(3)
    return view


def mosaic_pixels(view, image: np.ndarray) -> np.ndarray:
    """The kernel mosaic's pixels in a frame ``image: (H, W, 3)`` of ``view``'s plot."""
    rect = view.plot.mapFromScene(view.panel.image.sceneBoundingRect()).boundingRect()
    top_left = view.plot.viewport().mapTo(view.plot, rect.topLeft())
    x, y = top_left.x() + 2, top_left.y() + 2  # inside its edges
    return image[y:y + rect.height() - 4, x:x + rect.width() - 4].astype(int)


def test_the_kernel_timeline_exports_its_replay_as_a_gif_frame_per_snapshot(timeline_view, tmp_path, monkeypatch):
    Image = pytest.importorskip("PIL.Image")
    view, timeline = timeline_view, timeline_view._timeline
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *args: (str(tmp_path / "kernels"), "Animated GIF (*.gif)"))
    monkeypatch.setattr(QtWidgets.QMessageBox, "information", lambda parent, title, text: pytest.fail(text))
    (path,) = export.export_animation_dialog(view)
    with Image.open(path) as gif:
        assert gif.n_frames == len(timeline) == 6
        assert gif.info["duration"] == 120  # Play's pace on screen
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(np.asarray(gif.convert("RGB")))
    mosaics = [mosaic_pixels(view, frame) for frame in frames]
    # the kernels change from snapshot to snapshot, except from step 1 to step 2, and so do the frames
    for k in range(5):
        largest = np.abs(mosaics[k] - mosaics[k + 1]).max()
        assert largest <= 8 if k == 1 else largest > 16, k  # 8: what a GIF palette may move a colour
    expected = view.animation_frames().render_frame(4).convertToFormat(QtGui.QImage.Format.Format_RGB888)
    assert (expected.width(), expected.height()) == gif.size
    rgb = np.frombuffer(expected.constBits(), np.uint8).reshape(expected.height(), expected.bytesPerLine())
    reference = mosaic_pixels(view, rgb[:, : 3 * expected.width()].reshape(expected.height(), expected.width(), 3))
    assert np.abs(mosaics[4] - reference).max() <= 8
    assert view.slider.value() == 3 and view.shown_step == 3  # the view shows its own snapshot again
    np.testing.assert_array_equal(view.shown_kernels, timeline.kernels("conv1", 3)[1])


def test_timeline_frames_leave_out_the_drift_plots_click_hint_and_the_view_keeps_it(timeline_view):
    """A GIF cannot be clicked: the frames' drift plot title says what it shows, not "click to jump there"."""
    view = timeline_view
    title = view.drift_plot.titleLabel
    assert "click to jump there" in title.text
    grab, titles = view.plot.grab, []

    def grab_noting_the_title():
        titles.append(title.text)
        return grab()

    view.plot.grab = grab_noting_the_title
    view.animation_frames().render_frame(4)
    assert len(titles) == 1 and "‖w − w₀‖ / ‖w₀‖" in titles[0] and "click" not in titles[0]
    assert "click to jump there" in title.text  # back on screen


def test_snapshots_recorded_during_a_timeline_export_leave_its_frames_as_they_were(timeline_view, tmp_path,
                                                                                monkeypatch):
    """Training goes on while the frames render: a full timeline thins out and renumbers its snapshots."""
    view, timeline = timeline_view, timeline_view._timeline
    before = [QtGui.QImage(p) for p in export.export_animation(view, tmp_path / "before.png")]
    real, steps = export._png_bytes, iter(range(6, 100))

    def while_training(image):
        kernels = {name: np.full(shape, 9.0, np.float32) for name, shape in timeline.shapes.items()}
        for _ in range(3):
            timeline.push(next(steps), kernels)
        return real(image)

    monkeypatch.setattr(export, "_png_bytes", while_training)
    during = [QtGui.QImage(p) for p in export.export_animation(view, tmp_path / "during.png")]
    assert len(timeline) < 6 * 3 and timeline.steps()[-1] == 6 + 3 * 6 - 1  # thinned out meanwhile
    assert during == before
