"""The seed articles' experiments, reproduced with the engine (no Qt).

- :func:`compare`: train the same network several times from the *same* initial weights and the
  same seed (so the same batches and augmentation), changing one setting per run; ``experiment
  broken-backprop`` uses it. The app's experiments panel runs its two trainers side by side on
  worker threads instead, from the models :func:`same_start_models` gives.
- :func:`broken_backprop`: seed 004's typo (``conv2.w`` updated with ``conv1.w``'s gradient,
  model variant "broken_update") against the correct update, on the bundled MNIST split.
- :func:`tiny8x8`: seed 002's small network on the 8x8 digits, 0 vs 1, L2 cost (the trainer, to run).
"""
from __future__ import annotations

import csv
import dataclasses
import os

from engine.atomic import atomic_write
from engine.data import Dataset, load_digits_8x8
from engine.model import Sequential
from engine.presets import build, get_preset
from engine.trainer import Evaluation, TrainConfig, Trainer, evaluate


@dataclasses.dataclass
class RunResult:
    """One run of a comparison: its trainer (model, history, final ``state``) and the final
    evaluation on the validation set (None without one)."""

    label: str
    trainer: Trainer
    evaluation: Evaluation | None


def same_start_models(specs: list, seed: int) -> list[Sequential]:
    """One fresh model per preset name or spec, all with the initial weights ``build(specs[0],
    seed)`` gives: runs that differ in one setting then differ in nothing else. The specs must
    have the same weights (they may differ where there are none, e.g. the kind of pooling)."""
    initial = build(specs[0], seed=seed).get_weights()
    models = [build(spec, seed=seed) for spec in specs]
    for model in models:
        model.set_weights(initial)
    return models


def compare(preset_or_spec, train, val, configs: dict, seed: int = 0, on_event=None,
            on_result=None) -> list[RunResult]:
    """Train one fresh model per entry of ``configs`` ({label: TrainConfig}), every one starting
    from the initial weights ``build(preset_or_spec, seed)`` gives. Runs one after the other;
    ``on_event(label, event)`` receives every trainer event, ``on_result(result)`` each run's
    RunResult once it is evaluated (a caller interrupted by Ctrl-C in a later run keeps the runs
    done). A run that diverges keeps its weights from before the bad step and is evaluated like
    the others."""
    models = same_start_models([preset_or_spec] * len(configs), seed)
    results = []
    for model, (label, config) in zip(models, configs.items()):
        forward = None if on_event is None else (lambda event, label=label: on_event(label, event))
        trainer = Trainer(model, train, val, config, on_event=forward)
        trainer.run()
        results.append(RunResult(label, trainer, None if val is None else evaluate(model, val)))
        if on_result is not None:
            on_result(results[-1])
    return results


def write_loss_csv(path, results: list[RunResult]) -> str:
    """Write the per-step training loss of every run side by side, atomically.

    Columns: ``step, epoch_fraction, <label>_loss...``; a run with fewer steps (diverged) leaves
    its later cells empty. Returns the absolute path."""
    path = os.path.abspath(os.fspath(path))
    losses = [r.trainer.history.steps["loss"].array() for r in results]
    longest = max(results, key=lambda r: len(r.trainer.history.steps["loss"]))
    fractions = longest.trainer.history.steps["epoch_fraction"].array()
    with atomic_write(path, "w", suffix=".csv.tmp", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "epoch_fraction"] + [f"{r.label}_loss" for r in results])
        for i, fraction in enumerate(fractions):
            writer.writerow([i + 1, f"{fraction:.6g}"] + [repr(float(l[i])) if i < len(l) else "" for l in losses])
    return path


def broken_backprop(train, val, config: TrainConfig, on_event=None, on_result=None) -> list[RunResult]:
    """VGG-7 trained twice with ``config`` from the same initial weights: labels "correct"
    (variant None) and "broken" (variant "broken_update", seed 004's typo). ``on_event`` and
    ``on_result`` as in :func:`compare`."""
    configs = {"correct": dataclasses.replace(config, preset="vgg7", variant=None),
               "broken": dataclasses.replace(config, preset="vgg7", variant="broken_update")}
    return compare("vgg7", train, val, configs, seed=config.seed, on_event=on_event, on_result=on_result)


# Seed 002 trained 500 epochs. Mini-batches of 8 with momentum reach 100% on the test split in a
# fraction of that (a few seconds).
TINY8X8_CONFIG = TrainConfig(preset="tiny8x8", epochs=60, batch_size=8, lr_conv=0.1, lr_dense=0.1,
                             optimizer="sgd", momentum=0.9, schedule="cosine")


def tiny8x8(config: TrainConfig = TINY8X8_CONFIG, **widths) -> tuple[Trainer, Dataset]:
    """Seed 002's network on the 8x8 digits 0 vs 1, ready to train on the train split: (trainer, the
    test split, for the caller to evaluate on once the run is over: nothing looks at it before).
    ``widths``: e.g. dense1=18, dense2=20, the other sizes the article compared; ``config.variant``
    "transposed_pool" for its wrong pooling backward."""
    train, test = load_digits_8x8((0, 1))
    model = build(get_preset("tiny8x8", **widths), seed=config.seed)
    return Trainer(model, train, None, dataclasses.replace(config, preset="tiny8x8")), test

