"""Held-out samples for the views that look at one input: the bundled validation sets, the window's
held-out images for a model, the sample picker, and ``SampleView``, the base of views showing one sample."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.views.lazy_view import LazyView
from app.views.widgets import glyph_button


@lru_cache(maxsize=4)
def validation_set(input_shape: tuple[int, int, int], classes: tuple[int, ...]):
    """The bundled held-out samples that fit a model's input (H, W, C): MNIST validation (500) for
    28x28x1, the 8x8 digits test split (restricted to the model's classes) for 8x8x1. None if nothing
    fits (e.g. a model loaded from a file that takes colour images). Loaded once per process; the
    arrays are owned here, not by any model."""
    from engine import data

    if tuple(input_shape) == (28, 28, 1):
        return data.load_bundled_mnist()[1]
    if tuple(input_shape) == (8, 8, 1):
        return data.load_digits_8x8(classes=classes)[1]
    return None


def held_out_images(model, window=None):
    """The held-out images a view offers for ``model``: the window's validation set (full MNIST's
    10,000 test images once loaded) when it fits the model's input and classes, else the bundled ones
    (:func:`validation_set`), else None."""
    data = getattr(window, "val_data", None)
    if data is not None and data.fits(model.input_shape, model.classes):
        return data
    return validation_set(tuple(model.input_shape), tuple(model.classes))


class SamplePicker(QtWidgets.QWidget):
    """Index spinbox + Prev / Next / Random over a validation set; emits ``picked(x, label)``.

    x: (H, W, C) float32. ``show_external(text)`` marks that the current sample came from elsewhere
    (the drawing pad), so the spinbox no longer claims to be showing it.
    """

    picked = QtCore.Signal(object, object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._dataset = None
        self._external = False  # the view shows a sample sent from elsewhere, not the spinbox's
        self._rng = np.random.default_rng()
        self.spin = QtWidgets.QSpinBox()
        self.spin.setToolTip("Index of the validation sample to show: held-out images, never trained on (the "
                             "bundled 500, or full MNIST's 10,000 test images once loaded).")
        self.prev_button = glyph_button("◀ Prev")
        self.prev_button.setToolTip("Show the previous validation sample.")
        self.next_button = glyph_button("Next ▶")
        self.next_button.setToolTip("Show the next validation sample.")
        self.random_button = QtWidgets.QPushButton("Random")
        self.random_button.setToolTip("Pick a random validation sample.")
        self.status = QtWidgets.QLabel()
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel("Sample"))
        for w in (self.spin, self.prev_button, self.next_button, self.random_button, self.status):
            row.addWidget(w)
        row.addStretch(1)
        self.spin.valueChanged.connect(self._emit)
        self.prev_button.clicked.connect(self._prev)
        self.next_button.clicked.connect(self._next)
        self.random_button.clicked.connect(self._random)
        self.setEnabled(False)

    def set_dataset(self, dataset) -> bool:
        """Use dataset (``x: (N, H, W, C)``, ``y: (N,)``) or None (no bundled data fits the model).
        True when it is another dataset than before."""
        if dataset is self._dataset:
            return False
        self._dataset = dataset
        self.setEnabled(dataset is not None)
        self.spin.blockSignals(True)
        self.spin.setRange(0, max(len(dataset.y) - 1, 0) if dataset is not None else 0)
        self.spin.blockSignals(False)
        if not self._external:  # a sample sent from the pad stays described as such
            self.show_index()
        return True

    def current(self):
        """(x: (H, W, C) float32, label) for the spinbox index, or None without a dataset."""
        if self._dataset is None:
            return None
        i = self.spin.value()
        return np.ascontiguousarray(self._dataset.x[i], dtype=np.float32), int(self._dataset.y[i])

    def show_external(self, text: str, tooltip: str = "") -> None:
        """Describe the sample shown as sent from elsewhere: a short ``text`` (the row stays narrow) and
        the whole story in ``tooltip``."""
        self._external = True
        self.status.setText(text)
        self.status.setToolTip(tooltip)

    def show_index(self) -> None:
        """Describe the spinbox's sample as the one shown."""
        self._external = False
        self.status.setToolTip("")
        if self._dataset is not None:
            self.status.setText(f"of {len(self._dataset.y)} ({self._dataset.name})")

    def follow_window_data(self, model, window) -> None:
        """The window loaded other data: pick from its held-out images for ``model`` (see
        :func:`held_out_images`) and, when they changed, show the one at the index (as a pick does)
        unless a sample sent from elsewhere is shown."""
        if self.set_dataset(held_out_images(model, window)) and not self._external:
            self._emit()

    def _prev(self) -> None:
        self.spin.stepBy(-1)

    def _next(self) -> None:
        self.spin.stepBy(1)

    def _random(self) -> None:
        if self._dataset is not None:
            self.spin.setValue(int(self._rng.integers(len(self._dataset.y))))

    def _emit(self) -> None:
        sample = self.current()
        if sample is not None:
            self.show_index()
            self.picked.emit(*sample)


class SampleView(LazyView):
    """A LazyView that shows one input sample: picked with its own ``self.picker`` (a
    :class:`SamplePicker`, created by the subclass) or sent by another view through the window.
    Subclasses set ``self._x`` / ``self._label`` to None first and implement ``_new_sample()``."""

    _window = None  # the main window, once attached

    def sample_changed(self, x: np.ndarray, label: int | None) -> None:
        """x: (H, W, C) float32 from elsewhere (e.g. the drawing pad); label: class index or None."""
        x = np.array(x, dtype=np.float32, copy=True)
        if self._x is not None and label == self._label and np.array_equal(x, self._x):
            return  # our own pick echoed back by the window
        self._x, self._label = x, label
        self.picker.show_external("showing a sent sample",
                                  "This sample was sent from the drawing pad (Look inside) or from the "
                                  "Evaluation view; choose an index to go back to the validation images.")
        self._new_sample()

    def attach(self, window) -> None:
        """Let picks here update every view through the window, when it offers ``set_sample``; offer
        the window's held-out images (see :func:`held_out_images`)."""
        self._window = window
        if hasattr(window, "set_sample"):
            self.picker.picked.connect(window.set_sample)

    def datasets_changed(self) -> None:
        """The window loaded other data: pick from its held-out images (full MNIST's 10,000 test
        images), showing the one at the picker's index unless a sent sample is shown."""
        if self._model is not None:
            self.picker.follow_window_data(self._model, self._window)

    def _picked(self, x: np.ndarray, label: int) -> None:
        """The sample picker chose ``x: (H, W, C)`` with class ``label``: show it."""
        self._x, self._label = x, label
        self._new_sample()

    def _sample_for(self, model) -> bool:
        """Point the picker at the validation samples that fit ``model``; keep the sample shown when it
        fits the model's input (H, W, C), else take the picker's. False when no sample fits."""
        self.picker.set_dataset(held_out_images(model, self._window))
        if self._x is None or self._x.shape != tuple(model.input_shape):
            sample = self.picker.current()
            if sample is None:
                return False
            self._x, self._label = sample
            self.picker.show_index()
        return True

    def _new_sample(self) -> None:
        raise NotImplementedError
