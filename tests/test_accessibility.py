"""What a screen reader gets from the real window: a name for every field, the words without the button
glyphs, and the painted content (conv stepper, confusion matrix, probability bars) as text."""
import re

from PySide6 import QtCore, QtGui, QtWidgets

from app.views.accessibility import FIELDS, name_fields, part_of_a_control
from app.views.widgets import GLYPHS
from plot_reading import axis_labels

KEY = QtCore.Qt.Key
GLYPH = f"[{GLYPHS}]"


def spoken_name(widget):
    """The name a screen reader announces: the accessible name, else a buddy label's text (Qt's rule)."""
    interface = QtGui.QAccessible.queryAccessibleInterface(widget)
    labels = [other.text(QtGui.QAccessible.Text.Name)
              for other, _ in interface.relations(QtGui.QAccessible.RelationFlag.Label)]
    return widget.accessibleName() or " ".join(labels)


def fields_of(root):
    """The fields under ``root`` a user can reach (not hidden by the view, not a table's own header)."""
    for widget in root.findChildren(QtWidgets.QWidget):
        if (isinstance(widget, FIELDS) and not isinstance(widget, QtWidgets.QScrollBar) and widget.isVisibleTo(root)
                and not part_of_a_control(widget)
                and not isinstance(widget.parentWidget(), QtWidgets.QAbstractItemView)
                and not (isinstance(widget, QtWidgets.QAbstractButton) and widget.text().strip())):
            yield widget


def test_every_field_of_every_view_has_a_name_in_words(make_window):
    """80 of 178 interactive widgets had none: combo boxes were read as their value, spin boxes as nothing."""
    window = make_window()
    unnamed, glyphs = [], []
    for title, view in window.views.items():
        for widget in fields_of(view):
            name = spoken_name(widget)
            if not re.search(r"[^\W\d_]{2}", name):
                unnamed.append(f"{title}: {type(widget).__name__} {widget.objectName()!r} {name!r}")
        for button in view.findChildren(QtWidgets.QAbstractButton):
            if re.search(GLYPH, button.text()) and re.search(GLYPH, button.accessibleName() or "▶"):
                glyphs.append(f"{title}: {button.text()!r} read as {button.accessibleName()!r}")
    assert unnamed == [] and glyphs == []
    for title, view in window.views.items():  # and told apart: grad check's four index boxes had one name
        names = [spoken_name(widget) for widget in fields_of(view)]
        assert len(names) == len(set(names)), (title, sorted(names))
    stepper = window.views["Conv stepper"]
    assert spoken_name(stepper.first_button) == "First step"  # an icon and nothing else
    assert spoken_name(stepper.speed) == "Playback speed"  # not the step counter laid out in front of it


def test_a_label_in_front_names_its_field_and_a_tooltip_stands_in_for_a_missing_one(qtbot):
    root = QtWidgets.QWidget()
    qtbot.addWidget(root)
    row = QtWidgets.QHBoxLayout(root)
    epochs, times, width = QtWidgets.QSpinBox(), QtWidgets.QLabel("×"), QtWidgets.QSpinBox()
    plain = QtWidgets.QSlider()
    width.setToolTip("Input width. Pixels across the image.")
    plain.setToolTip("The app's sample (e.g. one sent from the pad): pick another here")
    for widget in (QtWidgets.QLabel("Epochs"), epochs, times, width, plain, unnamed := QtWidgets.QComboBox()):
        row.addWidget(widget)
    name_fields(root, "Experiments")
    assert spoken_name(epochs) == "Epochs" and times.buddy() is None
    assert spoken_name(width) == "Input width"
    assert spoken_name(plain) == "The app's sample (e.g. one sent from the pad)"
    assert spoken_name(unnamed) == "Experiments"


def test_the_conv_steppers_step_is_described_in_words_and_follows_the_keys(make_window, qtbot):
    window = make_window()
    window.show_view("Conv stepper")
    stepper = window.views["Conv stepper"]
    canvas = stepper.canvas
    first = canvas.accessibleDescription()
    assert stepper.formula_text() and stepper.formula_text() in first
    qtbot.keyClick(canvas, KEY.Key_End)
    last = canvas.accessibleDescription()
    assert last != first and stepper.formula_text() in last and stepper.numbers_text() in last


def test_the_confusion_matrix_and_the_probability_bars_say_what_they_show(qtbot):
    import numpy as np

    from app.views.drawing_pad import ProbabilityBars
    from app.views.evaluation import ConfusionMatrix

    matrix = ConfusionMatrix()
    qtbot.addWidget(matrix)
    matrix.set_data(np.array([[5, 1], [2, 7]]), ["0", "1"])
    assert matrix.accessibleDescription().startswith("12 of 15 images recognised")
    matrix.set_selected((1, 0))
    assert matrix.accessibleDescription() == matrix.cell_text(1, 0)
    assert matrix.cell_text(1, 0).startswith("2 images of 1 were taken for 0 (22.2% of the 1s).")
    bars = ProbabilityBars()
    qtbot.addWidget(bars)
    bars.set_probabilities(np.array([0.02, 0.9, 0.05, 0.03, 0, 0, 0, 0, 0, 0]))
    assert bars.accessibleDescription() == "1: 90%, 2: 5%, 3: 3%"


def test_painted_numbers_and_hints_read_at_4_5_to_1():
    """White on the matrix's green was 3.5:1, its zeros 1.9:1 on white, the pad's hint 3.8:1 on the pad."""
    import numpy as np

    from app.views import drawing_pad, grad_check
    from app.views.evaluation import ZERO_TEXT, ConfusionMatrix
    from app.views.tones import contrast, text_on

    counts = np.random.default_rng(0).integers(0, 60, size=(10, 10))
    counts[np.diag_indices(10)] = np.linspace(0, 500, 10).astype(int)  # every share right, 0% to 100%
    for row in ConfusionMatrix._cell_colours(counts, counts.sum(axis=1)):
        for colour in row:
            assert contrast(text_on(colour), colour) >= 4.5, colour.name()
    from app.views.stepper_grid import _lut, text_colour
    for rgb in _lut():  # the conv stepper's cells: white on (215, 103, 92) was 3.5:1
        assert contrast(text_colour(rgb), QtGui.QColor(*map(int, rgb))) >= 4.5, rgb
    white = QtGui.QColor("#ffffff")
    assert contrast(ZERO_TEXT, white) >= 4.5
    assert contrast(drawing_pad.PAD_HINT, drawing_pad.PAD_BACKGROUND) >= 4.5
    assert contrast(white, grad_check.NOISE_COLOUR) >= 4.5


def test_train_and_validation_curves_differ_in_more_than_colour(qtbot):
    """Orange and green were the only difference: one yellow to a red-green colour-blind eye."""
    from app.views.loss import LossView

    view = LossView()
    qtbot.addWidget(view)
    for train, val in ((view.train_loss_curve, view.val_loss_curve), (view.train_acc_curve, view.val_acc_curve)):
        assert train.opts["pen"].style() != val.opts["pen"].style()
        assert train.opts["symbol"] != val.opts["symbol"]


def test_the_shortcuts_fit_the_screen_at_a_large_font(make_window, qtbot):
    """In a message box the list was 1,045 px tall at 16 pt (1,894 at 20 pt) on a 1,000-px screen."""
    window = make_window()
    font = QtWidgets.QApplication.font()
    try:
        big = QtGui.QFont(font)
        big.setPointSizeF(20)
        QtWidgets.QApplication.setFont(big)
        dialog = window._show_shortcuts()
        qtbot.waitExposed(dialog)
        screen = window.screen().availableGeometry()
        assert dialog.frameGeometry().height() <= screen.height() and dialog.width() <= screen.width()
        listed = dialog.findChild(QtWidgets.QTextBrowser).toPlainText()
        assert "Ctrl+Tab" in listed and "Space" in listed
        dialog.reject()
    finally:
        QtWidgets.QApplication.setFont(font)


def test_painted_texts_and_their_room_grow_with_the_desktop_font(qtbot):
    """At 16-20 pt the conv stepper's texts stayed 12-22 px and the confusion matrix cut "100%"."""
    import numpy as np

    from app.views.conv_stepper import ConvStepper
    from app.views.conv_stepper_canvas import StepperCanvas, compose
    from app.views.evaluation import ConfusionMatrix

    def measure():
        canvas = StepperCanvas()
        qtbot.addWidget(canvas)
        stepper = ConvStepper()
        qtbot.addWidget(stepper)
        header = compose(QtCore.QRectF(0, 0, 900, 700), stepper.canvas.scene).header.size().height()
        matrix = ConfusionMatrix()
        qtbot.addWidget(matrix)
        matrix.set_data(np.full((10, 10), 1000), [str(d) for d in range(10)])
        bold = QtGui.QFont(matrix.font())
        bold.setBold(True)
        fits = (matrix.right_w > matrix.fontMetrics().horizontalAdvance("100%")
                and matrix.cell_px > QtGui.QFontMetrics(bold).horizontalAdvance("1000"))
        return canvas.minimumHeight(), header, fits

    font = QtWidgets.QApplication.font()
    normal = measure()
    try:
        big = QtGui.QFont(font)
        big.setPointSizeF(font.pointSizeF() * 2)
        QtWidgets.QApplication.setFont(big)
        large = measure()
    finally:
        QtWidgets.QApplication.setFont(font)
    assert normal[2] and large[2]
    assert large[0] >= 1.9 * normal[0] and large[1] >= 1.6 * normal[1]


def test_focus_shows_on_empty_lists_and_plots_leave_the_tab_chain(make_window, qtbot):
    from app.views.accessibility import off_the_tab_chain

    window = make_window()
    window.show_view("Evaluation")
    gallery = window.views["Evaluation"].gallery
    gallery.clear()
    window.panel.start_button.setFocus()
    qtbot.waitUntil(window.panel.start_button.hasFocus)
    unfocused = gallery.grab().toImage()
    gallery.setFocus()
    qtbot.waitUntil(gallery.hasFocus)
    assert gallery.grab().toImage() != unfocused
    plots = [plot for view in window.views.values() for plot in view.findChildren(QtWidgets.QGraphicsView)]
    assert plots and all(not plot.focusPolicy() & QtCore.Qt.FocusPolicy.TabFocus for plot in plots)
    root = QtWidgets.QGraphicsView()
    qtbot.addWidget(root)
    off_the_tab_chain(root)
    assert root.focusPolicy() == QtCore.Qt.FocusPolicy.ClickFocus


def test_a_long_tooltip_names_a_field_in_whole_words(qtbot):
    root = QtWidgets.QWidget()
    qtbot.addWidget(root)
    combo = QtWidgets.QComboBox(root)
    combo.setToolTip("Which images to evaluate on, held-out images showing how the network does on digits "
                     "it never trained on and training images how well it fits them")
    name_fields(root, "Evaluation")
    name = combo.accessibleName()
    assert name.endswith("…") and len(name) <= 81 and name[:-1] == combo.toolTip()[:len(name) - 1]
    assert combo.toolTip()[len(name) - 1] == " "  # cut between words


def test_help_names_the_articles_the_views_call_seed_001_to_004(make_window, qtbot):
    """"Seed 004" in Experiments sat beside the run's Seed field and read as random seed 4: the Help menu
    says what the articles are and where the app uses each, and the run's field is a "Random seed"."""
    window = make_window()
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    action = next(a for a in help_menu.actions() if a.text().startswith("&Reference articles"))
    action.trigger()
    dialog = window.findChild(QtWidgets.QDialog, "articlesDialog")
    qtbot.waitExposed(dialog)
    text = dialog.findChild(QtWidgets.QTextBrowser).toPlainText()
    for number in ("001", "002", "003", "004"):
        assert f"seed {number}" in text
    for place in ("Experiments", "Gradient check", "Conv stepper", "tiny8x8", "vgg7"):
        assert place in text
    assert "not the Seed field" in text
    form = window.panel.findChild(QtWidgets.QFormLayout)
    assert form.labelForField(window.panel.seed).text() == "Random seed"
    dialog.reject()


def shown(qtbot, widget, width, height):
    """``widget`` (kept by qtbot) at ``width`` x ``height``, shown and exposed."""
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)


def _at_point_size(points):
    """A context: the application font at ``points`` pt, put back after."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        font = QtWidgets.QApplication.font()
        big = QtGui.QFont(font)
        big.setPointSizeF(points)
        QtWidgets.QApplication.setFont(big)
        try:
            yield
        finally:
            QtWidgets.QApplication.setFont(font)
    return scope()


def test_the_run_controls_stay_in_view_and_the_dock_narrow_at_a_large_font(make_window, qtbot):
    """At 16 pt in a 1024x700 window the dock took 523 px (its combos' longest items) and Start, Pause,
    Step, Stop and the progress bars were scrolled out of view below the form."""
    with _at_point_size(16):
        window = make_window()
        window.resize(1024, 700)
        qtbot.wait(50)
        QtWidgets.QApplication.processEvents()
        dock, panel = window.panel_dock, window.panel
        # The dock may now be made that narrow (it takes its full width where there is room, as at 9 pt)
        assert dock.minimumSizeHint().width() <= 0.45 * window.width()
        window.resizeDocks([dock], [0], QtCore.Qt.Orientation.Horizontal)  # as narrow as it goes
        qtbot.waitUntil(lambda: dock.width() <= 0.45 * window.width())
        for widget in (panel.start_button, panel.pause_button, panel.step_button, panel.stop_button,
                       panel.epoch_progress, panel.run_progress):
            assert widget.isVisible() and widget.visibleRegion().boundingRect() == widget.rect(), \
                widget.objectName()
            top_left = widget.mapTo(dock, QtCore.QPoint(0, 0))
            assert dock.rect().contains(QtCore.QRect(top_left, widget.size())), widget.objectName()
        assert panel.dataset.width() < panel.dataset.fontMetrics().horizontalAdvance(panel.dataset.currentText())
        panel.dataset.showPopup()
        view = panel.dataset.view()
        qtbot.waitUntil(view.isVisible)
        assert view.width() >= view.sizeHintForColumn(0)  # the popup shows the items whole
        panel.dataset.hidePopup()


def test_the_run_controls_follow_the_settings_closely_when_the_dock_has_room(qtbot):
    """With the settings in a scroll area that took all the room, a 1000-px screen showed a 300-px gap
    between the weights line and Start; the settings now take their own height, and grow with the banner."""
    from app.training_panel import TrainingPanel

    panel = TrainingPanel()
    shown(qtbot, panel, 340, 780)  # the offscreen screen is 800 px tall
    scroll = panel.settings_scroll

    def gap():
        weights_bottom = panel.weights_label.mapTo(panel, QtCore.QPoint(0, panel.weights_label.height())).y()
        return panel.start_button.mapTo(panel, QtCore.QPoint(0, 0)).y() - weights_bottom

    assert 0 <= gap() < 4 * panel.fontMetrics().height()
    assert not scroll.verticalScrollBar().isVisible()
    before = scroll.height()
    panel.divergence_banner.show()  # e.g. after a diverged run: the settings grow, the controls move down
    qtbot.waitUntil(lambda: scroll.height() > before)
    assert not scroll.verticalScrollBar().isVisible()
    panel.divergence_banner.hide()
    qtbot.waitUntil(lambda: scroll.height() == before)


def test_at_the_default_font_the_dock_shows_its_settings_whole(make_window, qtbot):
    """Narrowing for a large font made the dock narrow at every font ("Bundled MNIST (4,5…"), and the settings'
    height ignored their wrapped lines: a scroll bar, and the weights line cut, above 400 px of empty dock."""
    window = make_window()
    window.resize(1400, 740)
    qtbot.wait(50)
    QtWidgets.QApplication.processEvents()
    panel = window.panel
    combo = panel.dataset
    assert combo.width() > combo.fontMetrics().horizontalAdvance(combo.currentText())
    scroll = panel.settings_scroll
    assert not scroll.verticalScrollBar().isVisible()
    label = panel.weights_label
    assert label.text() and label.visibleRegion().boundingRect() == label.rect()


def test_the_accuracy_plots_labels_do_not_overlap_at_a_large_font(qtbot):
    """At 17 pt the accuracy plot's data area was ~100 px: its six labels 0 … 100 were drawn over each other."""
    from app.views.loss import LossView

    with _at_point_size(17):
        view = LossView()
        shown(qtbot, view, 700, 420)
        view.append_epoch(10, 0.5, 0.6, 0.0, 1.0)  # accuracies as fractions: 0 % and 100 %
        QtWidgets.QApplication.processEvents()
        line = view.fontMetrics().height()
        assert view.epoch_plot.minimumHeight() >= 6 * line
        for plot in (view.epoch_plot, view.loss_plot):
            axis = plot.getPlotItem().getAxis("left")
            rects = sorted((rect for rect, _ in axis_labels(axis)), key=lambda rect: rect.top())
            assert len(rects) >= 2, plot.objectName()
            for upper, lower in zip(rects, rects[1:]):
                assert upper.bottom() <= lower.top() + 1, (plot.objectName(), upper, lower)
        # squeezed below its minimum height, the axis still labels only as many values as fit
        axis = view.epoch_plot.getPlotItem().getAxis("left")
        levels = axis.tickSpacing(0, 100, 100)
        assert levels and all(spacing * 100 / 100 >= QtGui.QFontMetricsF(axis.font()).height()
                              for spacing, _ in levels)


def test_the_empty_loss_plots_hint_wraps_inside_a_narrow_plot(qtbot):
    """"Press Start (Space) to train: …" kept its two long lines and was cut off at both sides of a plot
    narrower than ~420 px."""
    from app.views.loss import LossView

    with _at_point_size(16):
        view = LossView()
        shown(qtbot, view, 380, 600)
        QtWidgets.QApplication.processEvents()
        box = view.loss_plot.getPlotItem().getViewBox()
        inside = box.sceneBoundingRect()
        assert view.hint.isVisible() and view.hint.sceneBoundingRect().width() > 0
        assert inside.contains(view.hint.sceneBoundingRect()), (inside, view.hint.sceneBoundingRect())
        view.resize(1400, 600)  # room again: back to its own two lines
        QtWidgets.QApplication.processEvents()
        assert box.sceneBoundingRect().contains(view.hint.sceneBoundingRect())
        assert view.hint.textItem.textWidth() < 0


def test_the_gradient_check_tables_headers_stay_readable_at_a_large_font(qtbot):
    """At 16 pt the stretched columns shrank below their headers: "analytic (applied)" read "alytic (applie"."""
    from app.views.grad_check import COLUMNS, GradCheckView

    with _at_point_size(16):
        view = GradCheckView()
        qtbot.addWidget(view)
        view.show()
        qtbot.waitExposed(view)
        header = view.table.horizontalHeader()
        metrics = header.fontMetrics()
        for width in (500, 1400):  # narrower than the headers (the table scrolls sideways), and wide
            view.resize(width, 600)
            QtWidgets.QApplication.processEvents()
            for column, text in enumerate(COLUMNS):
                assert header.sectionSize(column) >= metrics.horizontalAdvance(text), (width, text)
        assert header.length() == view.table.viewport().width()  # wide, the columns fill the table


def test_a_squeezed_axis_falls_back_on_the_nicest_spacing_that_fits():
    """When none of pyqtgraph's spacings leaves a line between labels, the axis takes the smallest of 1, 2
    and 5 times a power of ten that does (not a larger one: fewer labels than fit)."""
    import math

    from app.views.plots import nice_spacing

    nice = sorted(m * 10.0 ** e for e in range(-4, 5) for m in (1, 2, 5))
    for at_least in (0.003, 0.02, 0.2, 1.0, 2.0, 2.5, 4.99, 5.0, 7.0, 37.0, 100.0, 120.0):
        spacing = nice_spacing(at_least)
        assert any(math.isclose(spacing, n) for n in nice), at_least
        smaller = [n for n in nice if n < spacing and not math.isclose(n, spacing)]
        assert spacing >= at_least * (1 - 1e-9) and smaller[-1] < at_least, at_least
