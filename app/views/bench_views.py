"""Update cost of the insight views (``python -m app.views.bench_views``, prints JSON last line).

Times ``model_changed`` (what the main window calls at <= 10 Hz during training) for the kernel,
feature-map and pooling views on the VGG-7, with the weights nudged before every call as a training
step would, plus a sample change for the sample views. Each view is shown (hidden views do no work),
its rate limit is off, and the event queue is drained after each update so the repaint is included.
Run under QT_QPA_PLATFORM=offscreen or Xvfb.
"""
from __future__ import annotations

import json
import time

import numpy as np
from PySide6 import QtWidgets

from engine.presets import build


def _time_updates(app, view, update, repeats: int) -> float:
    """Median milliseconds of ``update(i)`` followed by processing events (the repaint)."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        update(i)
        app.processEvents()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def measure(repeats: int = 30, preset: str = "vgg7") -> dict[str, float]:
    """{"<view>_model_ms": ..., "<view>_sample_ms": ...}: median ms per update."""
    from app.views.feature_maps import FeatureMapView
    from app.views.kernels import KernelView
    from app.views.pooling import PoolingView

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    model = build(preset, seed=0)
    rng = np.random.default_rng(0)
    nudges = {name: rng.standard_normal(p.shape).astype(p.dtype) * 1e-3 for name, p in model.params().items()}

    def training_step(_i: int) -> None:
        for name, p in model.params().items():
            p += nudges[name]

    results = {}
    for key, cls in (("kernels", KernelView), ("feature_maps", FeatureMapView), ("pooling", PoolingView)):
        view = cls()
        view.MAX_DUTY = None  # measure every update (the rate limit would defer most of them)
        view.resize(1400, 900)
        view.show()
        view.model_changed(model)
        app.processEvents()

        def model_update(i: int, view=view) -> None:
            training_step(i)
            view.model_changed(model)

        results[f"{key}_model_ms"] = round(_time_updates(app, view, model_update, repeats), 3)
        if hasattr(view, "sample_changed"):
            samples = rng.random((repeats, *model.input_shape)).astype(np.float32)
            results[f"{key}_sample_ms"] = round(
                _time_updates(app, view, lambda i, view=view: view.sample_changed(samples[i], None), repeats), 3)
        view.close()
        view.deleteLater()
    return results


def main() -> None:
    print(json.dumps(measure()))


if __name__ == "__main__":
    main()
