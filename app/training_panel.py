"""The training panel: what to train on, the hyperparameters, the run controls and the progress.

The panel only collects settings and shows state; the main window reacts to its buttons and signals.
Settings are checked as they are typed with ``TrainConfig.validate()`` (the engine's rules) plus the
checks only the app can make (numbers that do not parse, a preset that does not fit the dataset); every
reason is listed under the form, the offending fields are outlined, and Start and Step stay disabled
until the settings are valid.
"""
from __future__ import annotations

import dataclasses

from PySide6 import QtCore, QtGui, QtWidgets

from app.progress_bar import DeferredProgressBar
from app.views.tones import ToneLabel
from app.views.widgets import WholeNumberBox, not_a_number
from engine.optim import DEFAULT_LRS
from engine.presets import PRESETS
from engine.trainer import MAX_BATCH, MAX_EPOCHS, OPTIMIZERS, SCHEDULES, TrainConfig


def exact_text(value: float) -> str:
    """``value`` as short a text as reads back as exactly ``value`` (``:g`` kept 6 digits: a session
    reopened with lr 0.0123456789 resumed with 0.0123457, and its loss curve parted from the run's)."""
    text = f"{value:.15g}"
    return text if float(text) == value else repr(float(value))

# Dataset choices: key -> (combo text, tooltip). "download" and "mnist_dir" ask the main window to
# fetch/load the data; the combo shows what is loaded once it is.
DATASETS = {
    "bundled": ("Bundled MNIST (4,500 + 500)",
                "The MNIST subset that ships with ConvScope: 4,500 training and 500 validation digits, "
                "450/50 of each digit. Works offline."),
    "mnist_dir": ("Full MNIST from a folder…",
                  "Load the 60,000 + 10,000 MNIST digits from a folder holding the four IDX files (.gz or "
                  "raw) or a mnist.npz."),
    "download": ("Download full MNIST…",
                 "Download the four official MNIST files (about 11 MB), check their checksums and load them. "
                 "The download can be cancelled."),
    "digits8x8": ("8x8 digits, 0 vs 1",
                  "The UCI optical digits at 8x8 pixels, zeros and ones only: the data of the tiny8x8 "
                  "network (seed 002)."),
}

PRESET_TIPS = {
    "vgg7": "VGG-7: four 3x3 conv layers (16, 16, 32, 32 channels) with ReLU and average pooling, then dense "
            "128 tanh, 64 arctan and a dense layer of 10 units with softmax. The default network.",
    "seed003": "Seed 003's network: one conv layer with ReLU, max pooling and dropout, then a dense layer of "
               "10 units with softmax.",
    "tiny8x8": "Seed 002's tiny network for 8x8 images: two small conv + max-pool stages, three dense "
               "layers, a sigmoid output and the L2 cost. Tells 0 from 1.",
}

# Field name (as TrainConfig.validate() spells it) -> label used in the reasons shown to the user.
FIELD_LABELS = {
    "epochs": "Epochs", "batch_size": "Batch size", "lr_conv": "Conv learning rate",
    "lr_dense": "Dense learning rate", "momentum": "Momentum", "weight_decay": "Weight decay",
    "seed": "Random seed", "optimizer": "Optimiser", "schedule": "Schedule",
}

FLOAT_FIELDS = {
    "lr_conv": "Step size for the convolution kernels and biases. Seed 004 trains conv layers with a "
               "different rate from the dense layers; too high and the loss explodes.",
    "lr_dense": "Step size for the dense layers' weights and biases.",
    "momentum": "SGD momentum μ in [0, 1): v ← μ·v + g, w ← w − lr·v (PyTorch's form), so roughly the "
                "fraction μ of the previous step is carried into the next. Adam keeps its own moment "
                "estimates and ignores this.",
    "weight_decay": "L2 penalty on kernels and dense weights (not biases), in [0, 1). 0 turns it off.",
}

# added to a setting's tooltip while a run holds it fixed: changing the learning rates while paused was
# undiscoverable (the fields were just greyed out)
FIXED_DURING_RUN = ("\n\nFixed while a run is going, also when it is paused: Stop, change it, then Start with "
                    "“Continue from the weights shown” ticked to carry on from the same weights and step.")
INVALID_STYLE = "border: 1px solid #e04040;"
PROGRESS_MAX = 2**31 - 1  # the largest value a QProgressBar holds


COMBO_MIN_CHARACTERS = 12  # a combo box of the form narrows to this many characters, no further


class NarrowingComboBox(QtWidgets.QComboBox):
    """A combo box as wide as its longest item where there is room, narrowing to
    :data:`COMBO_MIN_CHARACTERS` characters where not (its longest item set the panel's minimum width:
    509 px at 16 pt, half a 1024-px window); the popup shows every item whole either way."""

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt naming)
        hint = super().minimumSizeHint()
        option = QtWidgets.QStyleOptionComboBox()
        self.initStyleOption(option)
        text = QtCore.QSize(self.fontMetrics().horizontalAdvance("x" * COMBO_MIN_CHARACTERS), hint.height())
        least = self.style().sizeFromContents(QtWidgets.QStyle.ContentsType.CT_ComboBox, option, text, self)
        hint.setWidth(min(hint.width(), least.width()))
        return hint

    def showPopup(self) -> None:  # noqa: N802 (Qt naming)
        view = self.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + 2 * view.frameWidth()
                             + view.verticalScrollBar().sizeHint().width())
        super().showPopup()


class SettingsScroll(QtWidgets.QScrollArea):
    """The panel's settings, scrolling vertically if need be but never squeezed below their own width."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.setWidgetResizable(True)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)  # not a Tab stop (see ViewPages.add_view)
        # As tall as the settings when there is room, so the run controls follow them closely; shorter
        # (scrolling) when not. Expanding, it kept the room to itself: a gap of 300 px above Start.
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt naming)
        hint = super().sizeHint()
        widget = self.widget()
        if widget is not None:
            # at the width it has: its wrapped labels (the dataset line, the weights line) take more lines
            # in a narrow dock than their own size hint says
            height = widget.heightForWidth(self.viewport().width()) if widget.hasHeightForWidth() else -1
            hint.setHeight((height if height >= 0 else widget.sizeHint().height()) + 2 * self.frameWidth())
        return hint

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # another width, another height for the wrapped labels

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        # The settings grew or shrank (the divergence banner, a longer weights line): so does the hint above
        if watched is self.widget() and event.type() == QtCore.QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt naming)
        hint = super().minimumSizeHint()
        if self.widget() is not None:
            hint.setWidth(self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
                          + 2 * self.frameWidth())
        return hint


class TrainingPanel(QtWidgets.QWidget):
    """Form + Start/Pause/Step/Stop/Reset + progress bars. States: idle, running, paused, diverged, busy."""

    dataset_requested = QtCore.Signal(str)  # a DATASETS key the user picked
    lower_lr_requested = QtCore.Signal()  # the divergence banner's one-click fix
    config_changed = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPanel")
        self._state = "idle"
        self._dataset_key = "bundled"
        self._dataset_shape: tuple[int, ...] | None = None
        self._model_name: str | None = None  # architecture of the weights shown (for "continue")
        self.weights_description = ""  # what set_weights_info says of the weights shown
        defaults = TrainConfig()

        self.preset = NarrowingComboBox(objectName="presetCombo")
        for name in ("vgg7", "seed003", "tiny8x8"):
            self.preset.addItem(name, name)
            self.preset.setItemData(self.preset.count() - 1, PRESET_TIPS[name],
                                    QtCore.Qt.ItemDataRole.ToolTipRole)
        self.preset.setToolTip("Network architecture to train. " + PRESET_TIPS["vgg7"])

        self.dataset = NarrowingComboBox(objectName="datasetCombo")
        for key, (text, tip) in DATASETS.items():
            self.dataset.addItem(text, key)
            self.dataset.setItemData(self.dataset.count() - 1, tip, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.dataset.setToolTip("Which images to train on. The validation split is used for the per-epoch "
                                "metrics and the sample shown in the feature-map and pooling views.")
        self.dataset_info = QtWidgets.QLabel(objectName="datasetInfo")
        self.dataset_info.setWordWrap(True)
        self.dataset_info.setToolTip("The dataset currently loaded.")

        self.epochs = self._spin("epochsSpin", 1, MAX_EPOCHS, defaults.epochs,
                                 "Passes over the whole training set.")
        self.batch_size = self._spin("batchSizeSpin", 1, MAX_BATCH, defaults.batch_size,
                                     "Images per mini-batch: one weight update per batch. Larger "
                                     "batches give smoother but fewer updates per epoch.")
        self.float_edits: dict[str, QtWidgets.QLineEdit] = {}
        for name, tip in FLOAT_FIELDS.items():
            edit = QtWidgets.QLineEdit(f"{getattr(defaults, name):g}", objectName=f"{name}Edit")
            edit.setToolTip(tip)
            edit.textChanged.connect(self._revalidate)
            self.float_edits[name] = edit
        self.optimizer = QtWidgets.QComboBox(objectName="optimizerCombo")
        self.optimizer.addItems(list(OPTIMIZERS))
        self.optimizer.setCurrentText(defaults.optimizer)
        self.optimizer.setToolTip("sgd: plain gradient descent with momentum. adam: per-parameter step sizes "
                                  "from running averages of the gradient and its square.")
        self.schedule = QtWidgets.QComboBox(objectName="scheduleCombo")
        self.schedule.addItems(list(SCHEDULES))
        self.schedule.setCurrentText(defaults.schedule)
        self.schedule.setToolTip("How the learning rates change over the run: constant; cosine (smoothly "
                                 "down to 0); step (x0.1 at 50% and at 75% of the run).")
        self.augment = QtWidgets.QCheckBox("Augment training images", objectName="augmentCheck")
        self.augment.setChecked(defaults.augment)
        self.augment.setToolTip("Randomly shift, rotate, scale and thicken each training image, so the "
                                "network learns digits however they are drawn. Slower to fit, better on "
                                "new digits.")
        self.seed = self._spin("seedSpin", 0, 2**31 - 1, defaults.seed,
                               "Seed for the initial weights, the shuffling, the augmentation and dropout: "
                               "the same seed gives the same run, bit for bit.")
        self.continue_check = QtWidgets.QCheckBox("Continue from the weights shown",
                                                  objectName="continueCheck")
        self.continue_check.setToolTip("Checked: Start trains the weights the views show now (e.g. the "
                                       "pretrained ones, or where the last run stopped) and the curves carry "
                                       "on. Unchecked: Start begins from fresh random weights (preset + "
                                       "seed).")

        for widget in (self.epochs, self.batch_size, self.seed):
            # The line edit's signal: it also fires when the text is emptied (the spin box's does not,
            # and keeps its last value meanwhile).
            widget.lineEdit().textChanged.connect(self._revalidate)
            widget.editingFinished.connect(self._revalidate)  # text it could not use put back, unsignalled
        for combo in (self.optimizer, self.schedule):
            combo.currentIndexChanged.connect(self._revalidate)
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self.optimizer.activated.connect(self._optimizer_chosen)
        self.dataset.activated.connect(self._dataset_activated)
        self.augment.toggled.connect(self._revalidate)
        self.continue_check.toggled.connect(self._revalidate)

        form = QtWidgets.QFormLayout()
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Preset", self.preset)
        form.addRow("Dataset", self.dataset)
        form.addRow("", self.dataset_info)
        form.addRow("Epochs", self.epochs)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Conv LR", self.float_edits["lr_conv"])
        form.addRow("Dense LR", self.float_edits["lr_dense"])
        form.addRow("Optimiser", self.optimizer)
        form.addRow("Momentum", self.float_edits["momentum"])
        form.addRow("Weight decay", self.float_edits["weight_decay"])
        form.addRow("LR schedule", self.schedule)
        form.addRow("Random seed", self.seed)
        form.addRow(self.augment)
        form.addRow(self.continue_check)

        self.errors_label = ToneLabel(objectName="configErrors")
        self.errors_label.setWordWrap(True)
        self.errors_label.set_tone("error")
        self.errors_label.setToolTip("Why the settings cannot be used; Start is disabled until they are "
                                     "fixed.")
        self.errors_label.hide()

        self.weights_label = QtWidgets.QLabel(objectName="weightsInfo")
        self.weights_label.setWordWrap(True)
        self.weights_label.setToolTip("Which weights the views show (and Start continues from when "
                                      "'Continue from the weights shown' is checked).")

        self.start_button = self._button("Start", "startButton",
                                         "Start training (Space). Resumes a paused run.")
        self.pause_button = self._button("Pause", "pauseButton",
                                         "Pause after the current mini-batch (Space).")
        self.step_button = self._button("Step", "stepButton",
                                        "Train exactly one mini-batch, then pause (Right arrow).")
        self.stop_button = self._button("Stop", "stopButton", "End the run; the weights reached so far stay "
                                        "(Pause to carry on later).")
        self.reset_button = self._button("Reset", "resetButton", "Replace the weights with fresh random ones "
                                         "(preset + seed) and clear the curves.")
        buttons = QtWidgets.QGridLayout()
        for i, button in enumerate((self.start_button, self.pause_button, self.step_button)):
            buttons.addWidget(button, 0, i)
        buttons.addWidget(self.stop_button, 1, 0)
        buttons.addWidget(self.reset_button, 1, 1)

        self.divergence_banner = QtWidgets.QFrame(objectName="divergenceBanner")
        self.divergence_banner.setStyleSheet(
            "#divergenceBanner { border: 1px solid #e04040; border-radius: 3px; }")
        self.divergence_text = QtWidgets.QLabel(objectName="divergenceText")
        self.divergence_text.setWordWrap(True)
        self.lower_lr_button = self._button("Lower learning rates ×0.1 and continue", "lowerLrButton",
                                            "Divide both learning rates by 10 and carry on from the last "
                                            "healthy weights of the run (before the loss began to climb).")
        self.lower_lr_button.clicked.connect(self.lower_lr_requested)
        banner_layout = QtWidgets.QVBoxLayout(self.divergence_banner)
        banner_layout.addWidget(self.divergence_text)
        banner_layout.addWidget(self.lower_lr_button)
        self.divergence_banner.hide()

        self.epoch_progress = self._progress("epochProgress", "Progress through the current epoch.")
        self.run_progress = self._progress("runProgress", "Progress through the whole run (all epochs).")

        # The settings scroll; the run controls and the progress stay in view under them (at a 16-pt font
        # the form is taller than a 700-px window and Start, Pause, Step and Stop were scrolled away).
        settings = QtWidgets.QWidget(objectName="trainingSettings")
        settings_layout = QtWidgets.QVBoxLayout(settings)
        settings_layout.setContentsMargins(0, 0, 0, 0)
        settings_layout.addLayout(form)
        settings_layout.addWidget(self.errors_label)
        settings_layout.addWidget(self.weights_label)
        settings_layout.addWidget(self.divergence_banner)
        settings_layout.addStretch(1)
        self.settings_scroll = SettingsScroll(objectName="trainingSettingsScroll")
        self.settings_scroll.setWidget(settings)
        controls = QtWidgets.QWidget(objectName="trainingControls")
        controls_layout = QtWidgets.QVBoxLayout(controls)
        controls_layout.setContentsMargins(0, 0, 0, 0)
        controls_layout.addLayout(buttons)
        controls_layout.addWidget(QtWidgets.QLabel("Epoch"))
        controls_layout.addWidget(self.epoch_progress)
        controls_layout.addWidget(QtWidgets.QLabel("Run"))
        controls_layout.addWidget(self.run_progress)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.settings_scroll)
        layout.addWidget(controls)
        layout.addStretch(1)
        self.set_progress(0, 0, 0)
        self._revalidate()

    # ------------------------------------------------------------------ construction helpers

    def _spin(self, name: str, low: int, high: int, value: int, tip: str) -> WholeNumberBox:
        """A whole-number field allowing ``low..high``. Any 32-bit number can be typed: one outside
        the range is refused with its reason under the form, like every other field. (A spin box
        limited to the range drops the keys that would leave it, so 10^7 typed as a batch size
        silently became 1000.)"""
        spin = WholeNumberBox(objectName=name)
        spin.setRange(-2**31, 2**31 - 1)
        spin.setValue(value)
        spin.setProperty("allowed", (low, high))
        spin.setToolTip(f"{tip} Allowed: {low} to {high:,}.")
        return spin

    def _button(self, text: str, name: str, tip: str) -> QtWidgets.QPushButton:
        button = QtWidgets.QPushButton(text, objectName=name)
        button.setToolTip(tip)
        return button

    def _progress(self, name: str, tip: str) -> QtWidgets.QProgressBar:
        bar = DeferredProgressBar(objectName=name)
        bar.setToolTip(tip)
        bar.setTextVisible(True)
        return bar

    # ------------------------------------------------------------------ settings

    def _float_values(self) -> tuple[dict[str, float], list[str], set[str]]:
        values, problems, bad = {}, [], set()
        for name, edit in self.float_edits.items():
            text = edit.text().strip()
            try:
                values[name] = float(text)
            except ValueError:
                problems.append(f"{FIELD_LABELS[name]}: {not_a_number(text)}")
                bad.add(name)
        return values, problems, bad

    def config(self) -> TrainConfig | None:
        """The settings as a TrainConfig, or None while any of them is invalid."""
        return None if self.errors() else self._build_config(self._float_values()[0])

    def _build_config(self, floats: dict[str, float]) -> TrainConfig:
        defaults = TrainConfig()
        return TrainConfig(
            preset=self.preset.currentData(), epochs=self.epochs.value(), batch_size=self.batch_size.value(),
            lr_conv=floats.get("lr_conv", defaults.lr_conv),
            lr_dense=floats.get("lr_dense", defaults.lr_dense),
            optimizer=self.optimizer.currentText(), momentum=floats.get("momentum", defaults.momentum),
            weight_decay=floats.get("weight_decay", defaults.weight_decay), augment=self.augment.isChecked(),
            seed=self.seed.value(), schedule=self.schedule.currentText(),
        )

    def errors(self) -> list[str]:
        """Every reason the settings cannot start a run (empty when they can)."""
        return self._check()[0]

    def _spin_problems(self) -> tuple[list[str], set[str]]:
        """Whole-number fields that are empty or outside the range their tooltips give. (An emptied
        spin box keeps its last value: without this a run would start with a number no longer shown.)"""
        problems, bad = [], set()
        for name, spin in (("epochs", self.epochs), ("batch_size", self.batch_size), ("seed", self.seed)):
            low, high = spin.property("allowed")
            if not spin.cleanText().strip():
                problems.append(f"{FIELD_LABELS[name]}: enter a whole number from {low} to {high:,}")
            elif problem := spin.problem():
                problems.append(f"{FIELD_LABELS[name]}: {problem}")
            elif not low <= spin.value() <= high:
                problems.append(f"{FIELD_LABELS[name]} must be between {low} and {high:,}, got {spin.value()}")
            else:
                continue
            bad.add(name)
        return problems, bad

    def _check(self) -> tuple[list[str], set[str]]:
        floats, problems, bad = self._float_values()
        spin_problems, spin_bad = self._spin_problems()
        problems, bad = problems + spin_problems, bad | spin_bad
        for problem in self._build_config(floats).validate():
            field = problem.split(" ", 1)[0]
            if field in FIELD_LABELS and field not in bad:
                bad.add(field)
                problems.append(FIELD_LABELS[field] + problem[len(field):])
            elif field not in FIELD_LABELS:
                problems.append(problem)
        preset = self.preset.currentData()
        needed = tuple(PRESETS[preset]["input_shape"])
        if self._dataset_shape is not None and tuple(self._dataset_shape) != needed:
            problems.append(f"Preset {preset} takes {needed[0]}x{needed[1]} images but the dataset's are "
                            f"{self._dataset_shape[0]}x{self._dataset_shape[1]}: pick a matching dataset.")
        if self.continue_check.isChecked() and self._model_name not in (None, preset):
            problems.append(f"To continue from the weights shown, the preset must be their architecture "
                            f"({self._model_name}); or uncheck 'Continue'.")
        return problems, bad

    def set_config(self, config: TrainConfig) -> None:
        """Show ``config`` in the form."""
        self.load_config_dict(dataclasses.asdict(config))

    def set_learning_rates(self, lr_conv: float, lr_dense: float) -> None:
        self.float_edits["lr_conv"].setText(exact_text(lr_conv))
        self.float_edits["lr_dense"].setText(exact_text(lr_dense))

    def config_dict(self) -> dict:
        """The form's contents (also while invalid: numbers as the text typed), JSON-able, for QSettings."""
        values = dataclasses.asdict(self._build_config({}))
        values.update({name: edit.text() for name, edit in self.float_edits.items()})
        values["continue"] = self.continue_check.isChecked()
        return values

    def load_config_dict(self, values: dict) -> None:
        """Fill the form from :meth:`config_dict` output or a TrainConfig's fields; entries that are
        missing or of the wrong type, and whole numbers outside their field's range, are skipped
        (settings files can be stale or edited by hand)."""
        preset = values.get("preset")
        if isinstance(preset, str) and (index := self.preset.findData(preset)) >= 0:
            self.preset.setCurrentIndex(index)
        for name, spin in (("epochs", self.epochs), ("batch_size", self.batch_size), ("seed", self.seed)):
            value = values.get(name)
            low, high = spin.property("allowed")
            if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
                spin.setValue(value)
        for name, combo in (("optimizer", self.optimizer), ("schedule", self.schedule)):
            if (index := combo.findText(str(values.get(name)))) >= 0:
                combo.setCurrentIndex(index)
        for name, edit in self.float_edits.items():
            value = values.get(name)
            if isinstance(value, str):
                edit.setText(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                edit.setText(exact_text(value))
        for name, check in (("augment", self.augment), ("continue", self.continue_check)):
            if isinstance(values.get(name), bool):
                check.setChecked(values[name])
        self._revalidate()

    @QtCore.Slot()
    def _revalidate(self) -> None:
        problems, bad = self._check()
        self.errors_label.setText("\n".join(problems))
        self.errors_label.setVisible(bool(problems))
        widgets = {"epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed,
                   **self.float_edits}
        for name, widget in widgets.items():
            widget.setStyleSheet(INVALID_STYLE if name in bad else "")
        self._update_momentum_enabled()
        self._update_buttons()
        self.config_changed.emit()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        """Shown again (its dock floated, docked or reopened): each spin box has just rewritten its text
        from its value, without a signal ("0.5" typed as the batch size became "0"), and the reasons
        and Start / Step must follow what the fields show now (Start stayed off under the old reason)."""
        super().showEvent(event)
        self._revalidate()

    def _update_momentum_enabled(self) -> None:
        """Momentum is an SGD setting: editable only for sgd, and only between runs."""
        sgd = self.optimizer.currentText() == "sgd"
        self.float_edits["momentum"].setEnabled(self._state == "idle" and sgd)

    @QtCore.Slot()
    def _optimizer_chosen(self) -> None:
        """A learning rate still at another optimiser's usual value takes the chosen one's (Adam at SGD's
        0.05 makes VGG-7 stall at 10%); one the learner typed stays."""
        chosen = self.optimizer.currentText()
        others = {lr for name, lr in DEFAULT_LRS.items() if name != chosen}
        floats = self._float_values()[0]
        for name in ("lr_conv", "lr_dense"):
            if floats.get(name) in others:
                self.float_edits[name].setText(f"{DEFAULT_LRS[chosen]:g}")

    @QtCore.Slot()
    def _preset_changed(self) -> None:
        preset = self.preset.currentData()
        self.preset.setToolTip("Network architecture to train. " + PRESET_TIPS[preset])
        # Offer the matching data at once: tiny8x8 only reads 8x8 images, the others only 28x28.
        wants_8x8 = tuple(PRESETS[preset]["input_shape"][:2]) == (8, 8)
        if wants_8x8 != (self._dataset_key == "digits8x8"):
            self.dataset_requested.emit("digits8x8" if wants_8x8 else "bundled")
        self._revalidate()

    @QtCore.Slot(int)
    def _dataset_activated(self, index: int) -> None:
        key = self.dataset.itemData(index)
        self.set_dataset(self._dataset_key, self.dataset_info.text(), self._dataset_shape)  # until it loads
        self.dataset_requested.emit(key)

    def set_dataset(self, key: str, description: str, input_shape: tuple[int, ...] | None) -> None:
        """Show which dataset is loaded. input_shape: (H, W, C) of its images."""
        self._dataset_key = key
        self._dataset_shape = None if input_shape is None else tuple(input_shape)
        with QtCore.QSignalBlocker(self.dataset):
            self.dataset.setCurrentIndex(self.dataset.findData(key))
        self.dataset_info.setText(description)
        self._revalidate()

    @property
    def dataset_key(self) -> str:
        return self._dataset_key

    def set_weights_info(self, text: str, model_name: str) -> None:
        """Describe the weights shown; ``model_name`` is their architecture (for 'Continue')."""
        if self._state != "diverged":  # a banner left by a stopped diverged run was about the weights replaced
            self.divergence_banner.hide()
        self.weights_label.setText(f"Weights: {text}")
        self.weights_description = text
        self._model_name = model_name
        self._revalidate()

    # ------------------------------------------------------------------ run state

    @property
    def state(self) -> str:
        return self._state

    def set_state(self, state: str) -> None:
        """idle (no run), running, paused, diverged (run halted, banner shown) or busy (loading data)."""
        self._state = state
        editable = state == "idle"
        for widget in (self.preset, self.dataset, self.epochs, self.batch_size, self.optimizer, self.schedule,
                       self.augment, self.seed, self.continue_check, *self.float_edits.values()):
            widget.setEnabled(editable)
            # the run's own settings (not the network or data, which Continue cannot change; not while
            # data loads, when there is no run to stop)
            if widget not in (self.continue_check, self.preset, self.dataset):
                tip = widget.toolTip().removesuffix(FIXED_DURING_RUN)
                widget.setToolTip(tip + FIXED_DURING_RUN if state in ("running", "paused", "diverged") else tip)
        self._update_momentum_enabled()
        if state != "diverged":
            self.divergence_banner.hide()
        self.start_button.setText("Resume" if state == "paused" else "Start")
        self._update_buttons()

    def show_divergence(self, message: str) -> None:
        self.set_state("diverged")
        self.divergence_text.setText(message)
        self.lower_lr_button.show()
        self.divergence_banner.show()
        self.settings_scroll.ensureWidgetVisible(self.divergence_banner)

    def show_stopped_divergence(self, message: str) -> None:
        """A diverged run the learner stopped: the banner stays, without the "lower and continue" button
        (there is no run left to continue), until the next run or other weights."""
        self.divergence_text.setText(message)
        self.lower_lr_button.hide()
        self.divergence_banner.show()

    def _update_buttons(self) -> None:
        state, valid = self._state, self.errors_label.isHidden()  # not isVisible: false until the panel is shown
        buttons = (self.start_button, self.pause_button, self.step_button, self.stop_button, self.reset_button)
        focused = next((b for b in buttons if b.hasFocus()), None)
        self.start_button.setEnabled((state == "idle" and valid) or state == "paused")
        self.pause_button.setEnabled(state == "running")
        self.step_button.setEnabled((state == "idle" and valid) or state == "paused")
        self.stop_button.setEnabled(state in ("running", "paused", "diverged"))
        self.reset_button.setEnabled(state == "idle")
        if focused is not None and not focused.isEnabled():
            # Qt would hand the focus to the next widget in the chain (a tab bar); keep it on the button
            # that takes over, so Space pauses right after Start and resumes right after Pause.
            order = (self.pause_button, self.start_button) if focused is self.start_button else \
                (self.start_button, self.pause_button, self.step_button)
            next((b for b in order if b.isEnabled()), focused).setFocus()

    def set_progress(self, step: int, total_steps: int, steps_per_epoch: int,
                     validating: tuple[int, int] | None = None) -> None:
        """Fill the bars after ``step`` optimiser steps of a run of ``total_steps`` (0 when none);
        ``validating``: (done, total) images of the epoch-end validation running now."""
        if total_steps <= 0 or steps_per_epoch <= 0:
            for bar in (self.epoch_progress, self.run_progress):
                bar.setRange(0, 1)
                bar.setValue(0)
                bar.setFormat("no run")
            return
        epochs = -(-total_steps // steps_per_epoch)
        epoch, within = divmod(step, steps_per_epoch)
        if within == 0 and step > 0:  # the last step of an epoch shows that epoch full
            epoch, within = epoch - 1, steps_per_epoch
        self.epoch_progress.setRange(0, steps_per_epoch)
        self.epoch_progress.setValue(within)
        self.epoch_progress.setFormat(f"epoch {min(epoch + 1, epochs)}/{epochs}: " + (
            "%p%" if validating is None else f"validating {validating[0]:,}/{validating[1]:,}"))
        # a QProgressBar counts in 32-bit ints: a run of more steps (e.g. batch 1 for thousands of
        # epochs of the full MNIST) is shown in units of several steps
        unit = -(-total_steps // PROGRESS_MAX)
        self.run_progress.setRange(0, total_steps // unit)
        self.run_progress.setValue(min(step // unit, total_steps // unit))
        self.run_progress.setFormat(f"step {step}/{total_steps}: %p%")
