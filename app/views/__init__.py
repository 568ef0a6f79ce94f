"""The registry of insight views: adding a view to the main window is one line in ``VIEWS``.

Each entry names the widget class as ``"module:Class"`` and is imported when the window is built, so a
view whose module does not exist yet shows a placeholder tab that says which issue brings it.
The view protocol (see docs/ARCHITECTURE.md): a view is a ``QWidget`` that may define
``model_changed(model)`` (called at <= 10 Hz while it is visible, and when it becomes visible after the
model changed), ``sample_changed(x: (H, W, C) float32, label: int | None)`` and ``attach(window)``
(called once, after the window has added it, to reach window services such as ``window.set_sample``),
``datasets_changed()`` (the window's ``train_data`` / ``val_data`` were replaced, e.g. full MNIST
loaded) and ``shutdown()`` (called when the window closes, for views that own threads).

Tabs are grouped by what a learner does with them (``GROUPS``): watch the training, look inside the
network at one image, experiment. Each group is a tab holding its views' tabs.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from PySide6 import QtCore, QtWidgets


@dataclass(frozen=True)
class ViewEntry:
    """One view of the main window.

    title: tab or dock title; target: ``"package.module:ClassName"`` (constructed with no arguments);
    tooltip: one sentence on what the view shows; area: ``"tab"`` (central tabs) or ``"dock"`` (a
    right-hand dock that can stay visible beside the tabs); issue: where a not-yet-written view comes from;
    group: the tab group it sits in (one of ``GROUPS``, or a new group added after them).
    """

    title: str
    target: str
    tooltip: str
    area: str = "tab"
    issue: str = ""
    group: str = "Training"


TRAIN, INSIDE, LAB = "Training", "Inside the network", "Learning lab"
GROUPS = {
    TRAIN: "Watch the network learn: the loss, the kernels, how they formed and whether every layer is "
           "still learning.",
    INSIDE: "Follow one image through the network: draw a digit, see every layer's output, the pooling "
            "decisions and a convolution number by number.",
    LAB: "Experiment: two runs one difference apart, the network's mistakes, and a numerical check of "
         "backpropagation.",
}


VIEWS: list[ViewEntry] = [
    ViewEntry("Loss", "app.views.loss:LossView", "Training loss per step and per epoch, and accuracy."),
    ViewEntry("Kernels", "app.views.kernels:KernelView",
              "Every convolution kernel as a heatmap, live during training."),
    ViewEntry("Kernel timeline", "app.views.kernel_timeline:KernelTimelineView",
              "Scrub or replay snapshots of every kernel taken during training.", issue="issue 8"),
    ViewEntry("Gradient health", "app.views.gradient_health:GradientHealthView",
              "Per layer, live: gradient size, update/weight ratio, dead ReLUs and saturated units.",
              issue="issue 8"),
    ViewEntry("Drawing pad", "app.views.drawing_pad:DrawingPad",
              "Draw a digit and watch the network being trained classify it.", issue="issue 7", group=INSIDE),
    ViewEntry("Feature maps", "app.views.feature_maps:FeatureMapView",
              "Every layer's output for the chosen sample, all channels.", group=INSIDE),
    ViewEntry("Pooling", "app.views.pooling:PoolingView",
              "Pooling windows, the max-pooling mask or the averaging weights, and the gradient routing for the "
              "chosen sample.",
              group=INSIDE),
    ViewEntry("Conv stepper", "app.views.conv_stepper:ConvStepper",
              "One convolution's forward and backward pass, number by number.", issue="issue 6",
              group=INSIDE),
    ViewEntry("Experiments", "app.views.experiments:ExperimentsPanel",
              "Two trainings from the same start, one difference apart, compared.", issue="issue 8",
              group=LAB),
    ViewEntry("Evaluation", "app.views.evaluation:EvaluationView",
              "Confusion matrix on held-out digits; click a mistake to look inside the network.",
              issue="issue 8", group=LAB),
    ViewEntry("Gradient check", "app.views.grad_check:GradCheckView",
              "Backpropagation's gradient against finite differences, for the correct and the broken "
              "variants.",
              issue="issue 8", group=LAB),
]


def resolve(entry: ViewEntry) -> Callable[[], QtWidgets.QWidget] | None:
    """The widget class of ``entry``, or None when its module has not been written yet.

    Only a missing module itself counts as "not written": an import error inside an existing view
    module is a bug and propagates.
    """
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return None
        raise
    return getattr(module, class_name)


def placeholder(entry: ViewEntry) -> QtWidgets.QWidget:
    """A tab saying which view will appear here and where it comes from."""
    source = entry.issue or "a later issue"
    label = QtWidgets.QLabel(f"{entry.title}: {entry.tooltip}\n\nThis view arrives with {source}.")
    label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setObjectName(f"placeholder:{entry.title}")
    return label


def build(entry: ViewEntry) -> QtWidgets.QWidget:
    """Construct the view of ``entry``, or its placeholder."""
    factory = resolve(entry)
    return placeholder(entry) if factory is None else factory()
