"""The drawing pad's predictions during training always come from a consistent set of weights.

The real MainWindow trains VGG-7 on its worker thread while the GUI thread hammers the pad's
classification path (the pad classifies its drawing with the window's display model, which the
worker's weight snapshots update). A recording worker keeps a copy of the weights after every step,
taken on the training thread between steps (consistent by construction). Afterwards every
probability vector the pad showed must be the prediction of one of those states: a snapshot torn
between two updates would match none of them, as the control case with a hand-made torn snapshot shows.
"""
import numpy as np
from PySide6 import QtCore

from engine.data import load_bundled_mnist
from engine.presets import build
from engine.strokes import trace_strokes

LEFT = QtCore.Qt.MouseButton.LeftButton
MATCH_ATOL = 1e-6  # the same weights and input through the same code give the same numbers
TORN_GAP = 1e-4  # a torn model's prediction is at least this far from every consistent state


def nearest(p: np.ndarray, references: np.ndarray) -> float:
    """Distance (max abs) from probabilities ``p: (K,)`` to the closest row of ``references: (S, K)``."""
    return float(np.abs(references - p).max(axis=1).min())


def test_pad_predictions_during_training_match_consistent_snapshots(qtbot, make_window, recording_worker):
    from app.views.drawing_pad import PAD_SIDE, place_strokes, replay_strokes

    train, val = load_bundled_mnist()
    window = make_window(data=(train.subset(slice(0, 4500, 9)), val.subset(slice(0, 500, 10))))
    window.show_view("Drawing pad")
    pad = window.views["Drawing pad"]
    strokes = trace_strokes(val.x[3, :, :, 0])
    replay_strokes(pad.canvas, place_strokes(strokes, PAD_SIDE, 0.7, np.random.default_rng(0)))
    x = pad.network_input()
    assert x is not None

    shown = []
    pad.prediction_shown.connect(lambda p: shown.append(None if p is None else p.copy()))
    window.panel.continue_check.setChecked(False)
    window.panel.epochs.setValue(50)
    window.panel.float_edits["lr_conv"].setText("0.1")  # big steps: consecutive states differ clearly
    qtbot.mouseClick(window.panel.start_button, LEFT)
    shown.clear()  # from here on the display model follows the run from its first state
    trainer = window.worker.trainer
    while trainer.step_index < 25 or len(shown) < 200:
        pad.model_changed(window.display_model)  # the pad's own path: classify with the display model
        qtbot.wait(1)  # let weight snapshots arrive in between
        assert len(shown) < 20000, "training did not advance"
    qtbot.mouseClick(window.panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: window.worker is None, timeout=20000)
    window.close()

    model = build("vgg7")
    references = []
    for state in recording_worker:
        model.set_weights(state)
        references.append(model.predict_proba(x[None])[0])
    references = np.array(references)  # (S, 10)
    distances = [nearest(p, references) for p in shown if p is not None]
    assert len(distances) == len(shown) >= 200
    unmatched = sum(d > MATCH_ATOL for d in distances)
    assert unmatched == 0, f"{unmatched} predictions match no state"
    matched_states = {int(np.abs(references - p).max(axis=1).argmin()) for p in shown}
    assert len(matched_states) >= 8  # the pad really saw the weights change under it

    # control: a snapshot torn between two states (first half of the parameters from one, the rest
    # from the other) predicts something no consistent state predicts, so the check above can fail
    names = list(recording_worker[0])
    middle = len(recording_worker) // 2
    for a, b in ((0, len(recording_worker) - 1), (middle, middle + 1)):
        torn = {n: (recording_worker[a] if i < len(names) // 2 else recording_worker[b])[n]
                for i, n in enumerate(names)}
        model.set_weights(torn)
        assert nearest(model.predict_proba(x[None])[0], references) > TORN_GAP
