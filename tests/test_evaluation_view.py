"""Evaluation view by clicks: its confusion matrix is engine.trainer.evaluate's, a cell lists exactly its
misclassified digits, a thumbnail emits that digit; evaluation runs off the GUI thread and is joined."""
import csv
import time

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.evaluation import EvaluationView, thumbnail
from app.views.colour_scale import percent
from app.views.samples import validation_set
from engine.data import load_bundled_mnist
from engine.presets import build, get_preset
from engine.trainer import evaluate

LEFT = QtCore.Qt.MouseButton.LeftButton


@pytest.fixture(scope="module")
def data():
    return load_bundled_mnist()


@pytest.fixture(scope="module")
def model():
    # A fresh network already spreads its answers over several digits: plenty of mistakes to browse.
    # seed003 (one conv layer) evaluates about twice as fast as VGG-7.
    return build("seed003", seed=0)


class FakeWindow(QtWidgets.QMainWindow):
    """What the view reads from the main window: its datasets (and its close event)."""

    def __init__(self, train, val):
        super().__init__()
        self.train_data, self.val_data = train, val


def evaluated_in(qtbot, window, model):
    """An EvaluationView in ``window`` (which offers its datasets), shown, after its first evaluation."""
    view = EvaluationView()
    window.setCentralWidget(view)
    qtbot.addWidget(window)
    view.attach(window)
    window.show()
    with qtbot.waitSignal(view.evaluated, timeout=60_000):
        view.model_changed(model)
    return view


def offered(view):
    return [view.dataset_combo.itemText(i) for i in range(view.dataset_combo.count())]


@pytest.fixture
def view(qtbot, model):
    widget = EvaluationView()
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    qtbot.waitExposed(widget)
    with qtbot.waitSignal(widget.evaluated, timeout=60_000):
        widget.model_changed(model)
    yield widget
    widget.close()


def busiest_mistake(confusion):
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    return np.unravel_index(int(off.argmax()), off.shape)


def test_matrix_is_the_engines_evaluation(view, model, data):
    _, val = data
    expected = evaluate(model, val)
    assert view.dataset() is validation_set((28, 28, 1), tuple(range(10)))  # the bundled held-out images
    np.testing.assert_array_equal(view.dataset().y, val.y)
    np.testing.assert_array_equal(view.matrix.confusion, expected.confusion)
    np.testing.assert_array_equal(view.result.evaluation.misclassified, expected.misclassified)
    assert view.result.model is not model  # evaluated on a private copy, off the GUI thread
    assert f"{expected.accuracy:.1%}" in view.summary.text()


def test_weights_so_large_that_outputs_overflow_are_told_not_read_as_zeros(view, qtbot, model):
    """argmax of NaN is 0: every image used to land in the matrix's "predicted 0" column."""
    huge = build("seed003", seed=0)
    huge.set_weights({name: w * 1e25 for name, w in model.get_weights().items()})
    with qtbot.waitSignal(view.evaluated, timeout=60_000):
        view.model_changed(huge)
    n = len(view.dataset().y)
    assert view.matrix.confusion.sum() == 0 and view.result.evaluation.unanswered.size == n
    assert f"{n} of {n} images got no answer" in view.summary.text() and "mean loss –" in view.summary.text()
    # each row's share is out of all its images: 0 of 50 recognised, not "0 of the 0"
    per_class = np.bincount(view.dataset().y, minlength=10)
    assert view.matrix.cell_text(3, 3) == f"0 of the {per_class[3]} images of 3 were recognised (0.0%)."
    assert view.matrix.accessibleDescription().startswith(f"0 of {n} images recognised")


def test_rows_count_the_images_that_got_no_answer(qtbot):
    """Three of four images of 1 unanswered (in no cell): the row said "1 of the 1 ... (100.0%)" in green."""
    from app.views.evaluation import ConfusionMatrix

    matrix = ConfusionMatrix()
    qtbot.addWidget(matrix)
    counts = np.array([[2, 0], [0, 1]])
    matrix.set_data(counts, ["0", "1"], totals=np.array([2, 4]))
    assert matrix.cell_text(1, 1) == "1 of the 4 images of 1 were recognised (25.0%)."
    assert matrix._colours[1][1] != ConfusionMatrix.GREEN and matrix._colours[0][0] == ConfusionMatrix.GREEN
    matrix.set_data(counts, ["0", "1"])  # no totals: the rows' sums
    assert matrix.cell_text(1, 1) == "1 of the 1 images of 1 were recognised (100.0%)."


def test_clicking_a_cell_shows_exactly_its_mistakes_then_a_thumbnail_emits_the_digit(view, qtbot, data, model):
    _, val = data
    e = view.result.evaluation
    true, predicted = busiest_mistake(e.confusion)
    qtbot.mouseClick(view.matrix, LEFT, pos=view.matrix.cell_rect(true, predicted).center())
    expected = np.flatnonzero((val.y == true) & (e.predictions == predicted))
    assert len(expected) >= 2
    shown = view.gallery_indices()
    assert sorted(shown) == expected.tolist()
    assert view.matrix.selected == (true, predicted)
    # Most confident mistake first, with its confidence in the caption.
    proba = model.predict_proba(val.x[shown])  # the weights evaluated
    assert np.all(np.diff(proba[:, predicted]) <= 1e-7)
    assert view.gallery.item(0).text() == f"{true} → {predicted}\n{percent(proba[0, predicted], 0)}"

    k = min(2, len(shown) - 1)
    item = view.gallery.item(k)
    view.gallery.scrollToItem(item)
    with qtbot.waitSignal(view.sample_selected) as signal:
        qtbot.mouseClick(view.gallery.viewport(), LEFT, pos=view.gallery.visualItemRect(item).center())
    x, label = signal.args
    assert x.dtype == np.float32 and x.shape == (28, 28, 1)
    np.testing.assert_array_equal(x, val.x[shown[k]])
    assert label == int(val.y[shown[k]]) == true
    # From the keyboard: the current thumbnail opens with Return.
    view.gallery.setCurrentRow(0)
    with qtbot.waitSignal(view.sample_selected) as signal:
        qtbot.keyClick(view.gallery, QtCore.Qt.Key.Key_Return)
    np.testing.assert_array_equal(signal.args[0], val.x[shown[0]])


def test_arrow_keys_walk_the_cells_and_show_each(view, qtbot):
    matrix = view.matrix
    matrix.setFocus()
    qtbot.waitUntil(matrix.hasFocus)
    qtbot.keyClick(matrix, QtCore.Qt.Key.Key_Right)  # from no selection: the top left cell
    assert matrix.selected == view.cell == (0, 0) and "recognised correctly" in view.gallery_title.text()
    for key in (QtCore.Qt.Key.Key_Right, QtCore.Qt.Key.Key_Right, QtCore.Qt.Key.Key_Down):
        qtbot.keyClick(matrix, key)
    assert matrix.selected == (1, 2)
    expected = np.flatnonzero((view.result.dataset.y == 1) & (view.result.evaluation.predictions == 2))
    assert sorted(view.gallery_indices()) == expected.tolist()
    for _ in range(3):
        qtbot.keyClick(matrix, QtCore.Qt.Key.Key_Up)  # stops at the top row
    qtbot.keyClick(matrix, QtCore.Qt.Key.Key_Left)
    assert matrix.selected == view.cell == (0, 1)


def test_diagonal_cell_explains_instead_of_listing(view, qtbot):
    qtbot.mouseClick(view.matrix, LEFT, pos=view.matrix.cell_rect(8, 8).center())
    assert view.gallery.count() == 0
    assert "recognised correctly" in view.gallery_title.text()


def test_window_datasets_are_offered_and_evaluated(qtbot, model, data):
    train, val = data
    test_set = val.subset(slice(0, 500, 5), name="mnist/test")
    window = FakeWindow(train, test_set)
    view = evaluated_in(qtbot, window, model)
    # The window's held-out images first (full MNIST's test set); the bundled 500 are MNIST training
    # images, not held out from a run on full MNIST.
    assert offered(view) == ["Held-out: mnist/test (100 images)",
                             "Bundled: mnist-bundled/val (500 images, from MNIST's training set)",
                             "Training: mnist-bundled/train (4,500 images)"]
    np.testing.assert_array_equal(view.matrix.confusion, evaluate(model, test_set).confusion)
    assert view.matrix.confusion.sum() == 100
    with qtbot.waitSignal(view.evaluated, timeout=60_000):
        view.dataset_combo.setCurrentIndex(1)
    assert view.matrix.confusion.sum() == 500

    # The window switches to other data while the 4,500 training images are being evaluated: the
    # new data is offered at once and evaluated; nothing is kept of the sets the window no longer has.
    view.dataset_combo.setCurrentIndex(2)
    running = view._task
    assert running is not None
    window.train_data, window.val_data = train.subset(slice(0, 4500, 45)), val
    with qtbot.waitSignal(view.evaluated, timeout=60_000):
        view.datasets_changed()
        assert view._task is not running  # cancelled (and joined), not left to finish on the old data
    assert offered(view) == ["Held-out: mnist-bundled/val (500 images)",
                             "Training: mnist-bundled/train (100 images)"]
    assert view.result.dataset is val and view.matrix.confusion.sum() == 500
    assert not any(view.dataset_combo.itemData(i) is test_set for i in range(view.dataset_combo.count()))
    window.close()


def test_not_following_marks_the_matrix_stale_until_evaluate_is_clicked(view, qtbot, model):
    qtbot.mouseClick(view.follow, LEFT)
    assert not view.follow.isChecked()
    trained = build("seed003", seed=1)
    view.model_changed(trained)
    qtbot.wait(50)
    assert view._task is None and "changed since" in view.summary.text()
    with qtbot.waitSignal(view.evaluated, timeout=60_000):
        qtbot.mouseClick(view.evaluate_button, LEFT)
    np.testing.assert_array_equal(view.matrix.confusion, evaluate(trained, view.dataset()).confusion)
    assert "changed since" not in view.summary.text()


def test_evaluations_reuse_one_model_copy_while_the_architecture_stays(view, qtbot, model):
    """A fresh copy per evaluation, each with its own scratch buffers, grew the app by ~250 MB while
    following training on full MNIST."""
    first = view._evaluation_copy
    retrained = build("seed003", seed=1)
    with qtbot.waitSignal(view.evaluated, timeout=60_000):
        view.model_changed(retrained)
    assert view._evaluation_copy is first
    np.testing.assert_array_equal(view.matrix.confusion, evaluate(retrained, view.dataset()).confusion)
    other = build(get_preset("seed003", conv1=4), seed=0)  # another architecture: another copy
    with qtbot.waitSignal(view.evaluated, timeout=60_000):
        view.model_changed(other)
    assert view._evaluation_copy is not first
    np.testing.assert_array_equal(view.matrix.confusion, evaluate(other, view.dataset()).confusion)


def test_closing_during_an_evaluation_joins_its_thread(qtbot, model, data):
    train, val = data
    window = FakeWindow(train, val)
    view = evaluated_in(qtbot, window, model)
    view.dataset_combo.setCurrentIndex(view.dataset_combo.findText("Training: mnist-bundled/train (4,500 images)"))
    # 4,500 training images: several chunks
    task = view._task
    assert task is not None and task.isRunning()
    window.close()
    assert view._task is None and task.isFinished()


def test_matrix_exports_png_and_csv_counts(view, tmp_path):
    from PySide6 import QtGui

    view.export_png(str(tmp_path / "m.png"))
    image = QtGui.QImage(str(tmp_path / "m.png"))
    assert (image.width(), image.height()) == (view.matrix.width(), view.matrix.height())
    view.export_csv(str(tmp_path / "m.csv"))
    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == [f"predicted {c}" for c in range(10)]
    counts = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    np.testing.assert_array_equal(counts, view.matrix.confusion)


def test_nothing_to_export_before_the_first_evaluation(qtbot, tmp_path):
    view = EvaluationView()
    qtbot.addWidget(view)
    with pytest.raises(ValueError, match="nothing to export"):
        view.export_csv(str(tmp_path / "m.csv"))
    assert not (tmp_path / "m.csv").exists()


def test_cell_colours_green_by_row_share_red_by_mistakes_drawn_as_painted(qtbot):
    from app.views.evaluation import ConfusionMatrix

    matrix = ConfusionMatrix()
    qtbot.addWidget(matrix)
    counts = np.array([[10, 0, 0], [1, 5, 4], [0, 0, 0]])
    matrix.set_data(counts, ["a", "b", "c"])
    colours = matrix._colours
    assert colours[0][0] == ConfusionMatrix.GREEN  # all of row 0 right
    assert colours[1][2] == ConfusionMatrix.RED  # the largest mistake
    assert colours[0][1] == colours[2][2] == ConfusionMatrix.WHITE  # no mistake; an empty row
    # one mistake against the largest four: sqrt(1/4) = halfway from white to red
    half = colours[1][0]
    assert abs(half.red() - 232) <= 1 and abs(half.green() - 154) <= 1 and abs(half.blue() - 150) <= 1
    image = matrix.grab().toImage()
    centre = matrix.cell_rect(1, 2).topLeft() + QtCore.QPoint(3, 3)  # a corner away from the number
    assert image.pixelColor(centre) == ConfusionMatrix.RED
    assert matrix.cell_text(1, 0).startswith("1 image of b was taken for a (10.0% of the bs)")  # not "1 images"
    assert matrix.cell_text(1, 2).startswith("4 images of b were taken for c")


def test_cells_are_as_wide_as_their_longest_count_needs(qtbot):
    """Cells kept room for four digits whatever the data: with an 11-pt font the bundled set's matrix
    (counts of two digits) was too wide for a 1024-px screen beside the training panel."""
    from app.views.evaluation import ConfusionMatrix

    matrix = ConfusionMatrix()
    qtbot.addWidget(matrix)
    font = QtGui.QFont(matrix.font())
    font.setPointSize(font.pointSize() + 2)
    matrix.setFont(font)
    bold = QtGui.QFont(font)
    bold.setBold(True)
    width = QtGui.QFontMetrics(bold).horizontalAdvance
    labels = [str(d) for d in range(10)]
    matrix.set_data(np.full((10, 10), 50), labels)
    small = matrix.cell_px
    assert small > width("888")
    matrix.set_data(np.full((10, 10), 1135), labels)  # full MNIST: 1,135 ones
    assert matrix.cell_px > width("1135") and matrix.cell_px > small
    assert matrix.sizeHint().width() == matrix.header_w + 10 * matrix.cell_px + matrix.right_w
    matrix.set_data(np.full((10, 10), 50), labels)
    assert matrix.cell_px == small


def test_table_is_drawn_once_and_again_on_every_change(qtbot, monkeypatch):
    """The painted table is kept between paints (a tab switch only copies it) and redrawn when the
    data, the selected cell or the font changes, with what changed visible."""
    from app.views.evaluation import ConfusionMatrix

    matrix = ConfusionMatrix()
    qtbot.addWidget(matrix)
    drawn = []
    paint_table = matrix._paint_table
    monkeypatch.setattr(matrix, "_paint_table", lambda painter: (drawn.append(1), paint_table(painter)))
    matrix.set_data(np.array([[10, 0], [2, 8]]), ["a", "b"])
    first = matrix.grab().toImage()
    matrix.grab()
    matrix.repaint()
    assert len(drawn) == 1
    corner = matrix.cell_rect(0, 1).topLeft() + QtCore.QPoint(3, 3)
    assert first.pixelColor(corner) == ConfusionMatrix.WHITE  # no mistake there yet

    matrix.set_data(np.array([[6, 4], [2, 8]]), ["a", "b"])
    assert matrix.grab().toImage().pixelColor(corner) == ConfusionMatrix.RED
    assert len(drawn) == 2

    matrix.set_selected((0, 1))
    edge = matrix.cell_rect(0, 1).topLeft() + QtCore.QPoint(2, 2)  # inside the 3 px selection frame
    assert matrix.grab().toImage().pixelColor(edge) == ConfusionMatrix.SELECTED
    assert len(drawn) == 3

    font = matrix.font()
    font.setPointSize(font.pointSize() + 4)
    matrix.setFont(font)
    matrix.grab()
    assert len(drawn) == 4


def test_new_weights_are_evaluated_at_once_and_the_old_results_marked_meanwhile(view, qtbot, model):
    """Weights loaded or reset (another model object) must not wait for the rate limit that keeps
    following training cheap; until their results come, the old ones say they are old."""
    view._last_cost = 100.0  # as if the last evaluation had taken 100 s: following would wait 300 s
    view._last_finish = view._task_started = time.perf_counter()
    trained = build("seed003", seed=1)
    with qtbot.waitSignal(view.evaluated, timeout=60_000):
        view.model_changed(trained)
        assert "earlier weights" in view.summary.text()
    np.testing.assert_array_equal(view.matrix.confusion, evaluate(trained, view.dataset()).confusion)
    assert "earlier weights" not in view.summary.text()
    trained.set_weights(model.get_weights())  # a training step: the same object, rate-limited, no note
    view.model_changed(trained)
    assert view._task is None and view._timer.isActive() and "earlier" not in view.summary.text()


def test_the_same_data_set_loaded_twice_is_offered_once(qtbot, model, data):
    train, val = data
    copy = val.subset(np.arange(len(val.y)), name=val.name)  # another object, the same images
    window = FakeWindow(train.subset(slice(0, 4500, 45)), copy)
    view = evaluated_in(qtbot, window, model)
    assert offered(view) == ["Held-out: mnist-bundled/val (500 images)", "Training: mnist-bundled/train (100 images)"]
    window.close()


@pytest.mark.parametrize("ratio", [1.0, 1.5, 2.0])
def test_thumbnails_have_a_device_pixel_per_screen_pixel_so_high_dpi_keeps_them_sharp(qapp, ratio):
    """At QT_SCALE_FACTOR 2 a 56-px thumbnail was enlarged smoothly to 112 device pixels: a blur of
    246 greys instead of the digit's square pixels."""
    x = np.random.default_rng(0).random((28, 28, 1))
    pixmap = thumbnail(x, px=56, ratio=ratio)
    side = round(56 * ratio)
    assert pixmap.devicePixelRatio() == ratio and (pixmap.width(), pixmap.height()) == (side, side)
    image = pixmap.toImage().convertToFormat(QtGui.QImage.Format.Format_Grayscale8)
    grey = np.frombuffer(image.constBits(), np.uint8).reshape(side, image.bytesPerLine())[:, :side]
    source = (x[:, :, 0] * 255).astype(np.uint8)
    rows = (np.arange(side) * 28) // side  # nearest neighbour: every device pixel is one source pixel
    assert np.isin(grey, source).all()
    np.testing.assert_array_equal(grey[side // 2], source[rows[side // 2]][rows])

