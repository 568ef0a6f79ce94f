"""`python -m engine …`: train, evaluate, experiment, gradcheck, bench.

Every command prints what it did for a human and, as its **last stdout line**, one JSON object
(a contract: scripts and tests parse it). Progress goes to stderr. Bad input (missing or corrupt
files, invalid settings) ends with a one-line ``error: …`` on stderr and exit status 2, never a
traceback. Status 1: a diverged training run (in ``experiment broken-backprop``: the correct run
diverged), a gradient check of the correct backward with a parameter over its tolerance (a bug),
weights that could not be saved, too little memory. Ctrl-C exits with 130, a closed stdout pipe
(``| head``) quietly with 141. An unfinished ``train`` (diverged, or stopped by Ctrl-C, which it
honours after the current step) prints no JSON; with ``--out`` it is kept as a session that
``train --resume`` continues. Nor does ``experiment broken-backprop`` stopped by Ctrl-C in its broken
run; it reports the finished correct run and writes that run's loss curve to its CSV.

``bench`` is implemented in :mod:`engine.bench` (``add_arguments(parser)`` and ``run(args) -> int``),
imported only when that command runs.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import importlib
import json
import math
import os
import re
import shlex
import signal
import sys
import threading
import time
from importlib import resources as importlib_resources

import numpy as np

from engine import data as datamod
from engine import parallel
from engine.atomic import check_writable
from engine.data import DataFileError, Dataset
from engine.experiments import TINY8X8_CONFIG
from engine.model import VARIANT_LABELS, ModelFileError, Sequential
from engine.presets import PRESETS, build
from engine.session import SUFFIX as SESSION_SUFFIX, Session, open_session, save_session
from engine.optim import DEFAULT_LRS
from engine.trainer import OPTIMIZERS, SCHEDULES, TrainConfig, Trainer, evaluate
from engine.text import plural

DEFAULTS = TrainConfig()
LIMIT_SEED = 0  # --limit picks its subset with this fixed seed, independent of --seed
# gradcheck: every checked entry costs two float64 forward passes of the whole batch
MAX_GRADCHECK_BATCH = 256
MAX_PER_PARAM = 1000


class UsageError(Exception):
    """Bad command-line input found after parsing (reported as ``error: …``, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (argparse's own exit status 2 is kept). Arguments it does
    not know are reported by the command they were given to, with the option a typo was meant for:
    argparse leaves them to the top parser, whose --help does not list the command's options."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A command's parser fills the namespace after its parents': the innermost one is kept.
        self.set_defaults(command_parser=self)

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            parsed.command_parser.error_unrecognized(unknown)
        return parsed

    def error_unrecognized(self, unknown: list[str]):
        options = [option for action in self._actions if action.help is not argparse.SUPPRESS
                   for option in action.option_strings]
        meant = [match for word in unknown if word.startswith("--")
                 for match in difflib.get_close_matches(word.split("=", 1)[0], options, n=1)]
        hint = f" (did you mean {', '.join(meant)}?)" if meant else ""
        self.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# --------------------------------------------------------------------------- output helpers

def _json_line(record: dict) -> None:
    """Print ``record`` as the final JSON line; NaN/inf become null (JSON has no NaN)."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, (float, np.floating)):
            return float(value) if math.isfinite(value) else None
        if isinstance(value, np.integer):
            return int(value)
        return value
    print(json.dumps(clean(record)), flush=True)


class StatusLine:
    """A line on stderr redrawn in place, at most 10 times a second, when stderr is a terminal; on a pipe
    or in a log file the redraws would pile up, so :meth:`show` writes nothing there."""

    def __init__(self, enabled=True):
        self.stream = sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_draw = 0.0
        self._line_open = False

    def show(self, text: str, last: bool = False) -> None:
        """Redraw the line as ``text``; ``last`` draws it even within a tenth of a second of the previous."""
        now = time.monotonic()
        if self.tty and (now - self._last_draw >= 0.1 or last):
            self._last_draw = now
            self._write(f"\r{text}\x1b[K")
            self._line_open = True

    def finish_line(self):
        if self._line_open:
            self._write("\n")
            self._line_open = False

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()


class Progress(StatusLine):
    """A progress bar of training steps on stderr: a :class:`StatusLine` on a terminal; on a pipe or
    log file, epoch lines instead, at most one every ``EPOCH_LINE_SECONDS``: short epochs (tiny8x8's 60
    take about a second) would flood a CI log. The first epoch's line is always written, and the latest
    one held back when the run ends (its "done" or "error" event, or :meth:`finish_line`)."""

    WIDTH = 24
    EPOCH_LINE_SECONDS = 1.0

    def __init__(self, total_steps: int, label: str = "", enabled=True):
        super().__init__(enabled)
        self.total = total_steps
        self.label = f"{label} " if label else ""
        self._last_epoch_line = None  # time.monotonic() of the last epoch line written
        self._held = None  # the latest epoch line not written yet

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        kind = event["type"]
        if kind == "step":
            done = event["step"] / self.total
            bar = "#" * round(done * self.WIDTH)
            self.show(f"{self.label}epoch {event['epoch']} [{bar:<{self.WIDTH}}] {done:4.0%} step {event['step']}/"
                      f"{self.total} loss {event['loss']:.4f} {event['images_per_second']:,.0f} img/s",
                      last=event["step"] == self.total)
        elif kind == "validation":  # 10,000 full-MNIST test images take seconds
            self.show(f"{self.label}epoch {event['epoch']} validating {event['done']:,}/{event['total']:,} images")
        elif kind == "epoch":
            val = ("" if event["val_accuracy"] is None
                   else f", val loss {event['val_loss']:.4f}, val accuracy {event['val_accuracy']:.2%}")
            line = (f"{self.label}epoch {event['epoch']}: train loss {event['train_loss']:.4f}, "
                    f"train accuracy {event['train_accuracy']:.2%}{val} ({event['seconds']:.1f} s)\n")
            now = time.monotonic()
            if self.tty or self._last_epoch_line is None or now - self._last_epoch_line >= self.EPOCH_LINE_SECONDS:
                self._held = None  # older than this line
                self._last_epoch_line = now
                self.finish_line()
                self._write(line)
            else:
                self._held = line
        elif kind in ("error", "done"):
            self.finish_line()

    def finish_line(self):
        """End the status line, then write the epoch line held back, if any."""
        super().finish_line()
        if self._held is not None:
            self._write(self._held)
            self._held = None


# --------------------------------------------------------------------------- data and settings

def _data_source(text: str) -> str:
    """argparse type for --data: "bundled" or "mnist:DIR"."""
    if text == "bundled" or (text.startswith("mnist:") and len(text) > len("mnist:")):
        return text
    raise argparse.ArgumentTypeError(f"expected 'bundled' or 'mnist:DIR', got {text!r}")


def load_data(source: str) -> tuple[Dataset, Dataset]:
    """(train, validation) for --data: the bundled 4,500/500 split, or full MNIST's train and
    test sets (the 10,000 test images then serve as validation)."""
    if source == "bundled":
        return datamod.load_bundled_mnist()
    return datamod.load_mnist_dir(source[len("mnist:"):])


def limit(dataset: Dataset, n: int | None) -> Dataset:
    """A fixed random subset of ``n`` samples, in the original order (see ``Dataset.sample``)."""
    if n is None:
        return dataset
    if n < 1:
        raise UsageError(f"--limit must be positive, got {n}")
    return dataset.sample(n, LIMIT_SEED, f"{dataset.name}[:{n}]")


# TrainConfig's field names as the user typed them (its messages start with the field's name).
_FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "seed": "--seed", "lr_conv": "--lr-conv",
          "lr_dense": "--lr-dense", "momentum": "--momentum", "weight_decay": "--weight-decay",
          "warmup_epochs": "--warmup"}
_FIELD_NAMES = re.compile(r"\b(?:" + "|".join(_FLAGS) + r")\b")  # "epochs", not the end of "warmup_epochs"


def _checked_config(**settings) -> TrainConfig:
    config = TrainConfig(**settings)
    problems = config.validate()
    if problems:
        raise UsageError("; ".join(_as_typed(problem) for problem in problems))
    return config


def _as_typed(problem: str) -> str:
    """A TrainConfig problem ("lr_conv must be …") with every field named by its flag ("--lr-conv …"),
    also one a problem compares with ("warmup_epochs (20) must not exceed epochs (1)")."""
    return _FIELD_NAMES.sub(lambda match: _FLAGS[match.group()], problem)


def _output_path(value: str | None, flag: str, what: str) -> str | None:
    """The checked file behind an output option (None when the option is not given); an empty value,
    e.g. an unset shell variable in ``--out "$OUT"``, is refused rather than silently ignored."""
    if value is None:
        return None
    if not value.strip():
        raise UsageError(f"{flag} is empty: give a file name")
    return _check_writable(os.path.expanduser(value), what)


def _input_file(value: str) -> str:
    """argparse type of a file to read: "~" expanded (also in ``--weights=~/w.npz``, which the shell
    leaves alone); an empty value, e.g. an unset shell variable, refused."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty: give a file name")
    return os.path.expanduser(value)


PRETRAINED = "pretrained"  # --weights pretrained: the bundled VGG-7, wherever ConvScope is installed


def _weights_file(value: str) -> str:
    """argparse type of --weights: a file (see _input_file), or "pretrained" for the bundled weights
    (outside the repository resources/weights/vgg7.npz is somewhere in site-packages)."""
    if value == PRETRAINED:
        return os.fspath(importlib_resources.files("resources") / "weights" / "vgg7.npz")
    return _input_file(value)


def _reason(exc: OSError) -> str:
    """Why a file could not be written, for a message that names the file itself: engine.atomic's
    errors keep the file in ``filename`` and the reason alone in ``strerror`` (str() adds "[Errno 13]"
    and the file)."""
    return exc.strerror or str(exc)


def _check_writable(path: str, what: str) -> str:
    """Fail before hours of training when ``path`` cannot be written (see atomic.check_writable)."""
    try:
        return check_writable(path)
    except OSError as exc:
        raise UsageError(f"cannot write {what} to {path}: {_reason(exc)}") from None


def _add_data_option(p):
    """--data of the commands that train (None when not given: bundled, or a resumed session's data)."""
    p.add_argument("--data", type=_data_source, default=None,
                   help="'bundled' (4,500 train / 500 validation) or 'mnist:DIR' (full MNIST; its test set "
                        "is the validation set) (default bundled)")


def _add_training_options(p, epochs=DEFAULTS.epochs):
    """Options shared by `train` and the training experiments. Their defaults are None, "not given"
    (a resumed run keeps its own settings); _config_from fills in TrainConfig's defaults."""
    p.set_defaults(default_epochs=epochs)
    p.add_argument("--epochs", type=int, help=f"passes over the training set (default {epochs})")
    p.add_argument("--batch-size", type=int, help=f"images per step (default {DEFAULTS.batch_size})")
    lrs = ", ".join(f"{lr:g} for {name}" for name, lr in DEFAULT_LRS.items())
    p.add_argument("--lr-conv", type=float, help=f"learning rate of the conv layers (default {lrs})")
    p.add_argument("--lr-dense", type=float, help=f"learning rate of the dense layers (default {lrs})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"how the gradients update the weights (default "
                                                           f"{DEFAULTS.optimizer})")
    p.add_argument("--momentum", type=float, help=f"SGD momentum (default {DEFAULTS.momentum:g}; Adam has none)")
    p.add_argument("--weight-decay", type=float,
                   help=f"L2 penalty on kernels and dense weights (default {DEFAULTS.weight_decay:g})")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help=f"learning-rate schedule after warmup (default {DEFAULTS.schedule})")
    p.add_argument("--warmup", type=float, metavar="EPOCHS",
                   help=f"linear learning-rate warmup, in epochs (default {DEFAULTS.warmup_epochs:g})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="random shift/rotation/zoom/stroke thickness of training images (default off)")
    p.add_argument("--seed", type=int,
                   help=f"initial weights, shuffling, augmentation and dropout (default {DEFAULTS.seed})")
    p.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)  # tests: train on N images
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr")


def _given_settings(args) -> dict:
    """The TrainConfig fields of the training options given on the command line."""
    values = dict(epochs=args.epochs, batch_size=args.batch_size, lr_conv=args.lr_conv, lr_dense=args.lr_dense,
                  optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay,
                  schedule=args.schedule, warmup_epochs=args.warmup, augment=args.augment, seed=args.seed)
    return {field: value for field, value in values.items() if value is not None}


def _refuse_momentum_with_adam(optimizer: str, given: dict) -> None:
    if optimizer == "adam" and "momentum" in given:
        raise UsageError("--momentum is an SGD setting: Adam keeps its own running averages (drop --momentum, "
                         "or use --optimizer sgd)")


def _config_from(args, **overrides) -> TrainConfig:
    """A new run's settings: TrainConfig's defaults (the optimiser's own learning rate), the options
    given, then ``overrides``."""
    given = _given_settings(args)
    optimizer = given.get("optimizer", DEFAULTS.optimizer)
    _refuse_momentum_with_adam(optimizer, given)
    lr = DEFAULT_LRS[optimizer]
    settings = {**dataclasses.asdict(DEFAULTS), "epochs": args.default_epochs, "lr_conv": lr, "lr_dense": lr,
                **given, **overrides}
    return _checked_config(**settings)


def _resumed_config(args, session: Session) -> TrainConfig:
    """A resumed run's settings: the session's, with the options given in their place. Its random
    sequence goes on, so another --seed is refused; the batch size and optimiser are checked with
    the data (Session.resume_problem)."""
    given = _given_settings(args)
    settings = {**session.settings, **given}
    if "seed" in given and given["seed"] != session.settings.get("seed"):
        raise UsageError(f"--seed: a resumed run goes on with its own random sequence (seed "
                         f"{session.settings.get('seed')}); drop --seed")
    _refuse_momentum_with_adam(settings.get("optimizer"), given)
    if args.variant is not None:
        settings["variant"] = args.variant
    return _checked_config(**settings)


def _run_trainer(trainer: Trainer, label: str, quiet: bool, stop_on_ctrl_c: bool = False) -> str:
    """Run with a progress bar; returns the done reason. Ctrl-C raises KeyboardInterrupt, or with
    ``stop_on_ctrl_c`` the first one ends the run after its current step ("stopped") and a second
    one raises it."""
    bar = Progress(trainer.total_steps, label, enabled=not quiet)
    user_callback = trainer.on_event
    ctrl_c = _StopOnCtrlC(trainer) if stop_on_ctrl_c else contextlib.nullcontext()

    def on_event(event):
        if stop_on_ctrl_c and ctrl_c.caught_unsaid():
            bar.finish_line()
            print("stopping after this step (press Ctrl-C again to quit at once, saving nothing)", file=sys.stderr)
        bar(event)
        if user_callback is not None:
            user_callback(event)
    trainer.on_event = on_event
    try:
        with ctrl_c:
            return trainer.run()
    finally:
        bar.finish_line()


class _StopOnCtrlC:
    """While inside (main thread only: signal handlers belong to it): the first SIGINT asks ``trainer``
    to stop after its current step, so the weights are never left half-updated, and puts the previous
    handler back for a second one. The handler only sets flags: it may run in the middle of a write
    to stderr, so the caller says it was caught (:meth:`caught_unsaid`) at its next event."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.previous = None
        self.caught = self.said = False

    def __enter__(self):
        # SIGINT set to be ignored (a background job of a script, nohup) stays ignored
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self.previous = signal.signal(signal.SIGINT, self._stop)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _stop(self, signum, frame):
        signal.signal(signal.SIGINT, self.previous)
        self.caught = True
        self.trainer.stop()

    def caught_unsaid(self) -> bool:
        """True once, after the first Ctrl-C."""
        if self.caught and not self.said:
            self.said = True
            return True
        return False


# --------------------------------------------------------------------------- commands

def _session_path_for(weights_path: str) -> str:
    """Where `train` keeps an unfinished run beside its --out weights: run.npz -> run.convscope.npz."""
    stem = weights_path[:-len(".npz")] if weights_path.lower().endswith(".npz") else weights_path
    return stem + SESSION_SUFFIX


def _session_data(session: Session, given: str | None) -> str:
    """--data for resuming ``session``: the option given, or the bundled set the session names."""
    if given is not None:
        return given
    key = (session.data or {}).get("key")
    if key in ("mnist_dir", "download"):
        raise UsageError("the session was trained on the full MNIST: give its folder with --data mnist:DIR")
    if key not in (None, "bundled"):
        raise UsageError(f"the session was trained on data `train` does not load ({key}); continue it in the app")
    return "bundled"


def _data_key(source: str) -> str:
    """How a session names --data's training set (the app's names: resumable there too)."""
    return "bundled" if source == "bundled" else "mnist_dir"


def _new_trainer(args, on_event) -> tuple[Trainer, str]:
    """The trainer of `train`: a fresh preset, or the session of --resume continued; and its --data."""
    return _fresh_trainer(args, on_event) if args.resume is None else _resumed_trainer(args, on_event)


def _fresh_trainer(args, on_event) -> tuple[Trainer, str]:
    config = _config_from(args, preset=args.preset or DEFAULTS.preset, variant=args.variant)
    source = args.data or "bundled"
    train, val = load_data(source)
    train = limit(train, args.limit)
    model = build(config.preset, seed=config.seed)
    if model.input_shape != train.x.shape[1:]:
        hint = "; train it with `python -m engine experiment tiny8x8`" if config.preset == "tiny8x8" else ""
        raise UsageError(f"preset {config.preset!r} takes {model.input_shape} inputs, the data is "
                         f"{train.x.shape[1:]}{hint}")
    return Trainer(model, train, val, config, on_event=on_event), source


def _resumed_trainer(args, on_event) -> tuple[Trainer, str]:
    session = open_session(args.resume)
    source = _session_data(session, args.data)
    train, val = load_data(source)
    train = limit(train, args.limit)
    config = _resumed_config(args, session)
    problem = session.resume_problem(train, config)
    if problem:
        raise UsageError(f"{args.resume} cannot continue with these options: {problem}")
    trainer = session.resume(train, val, on_event=on_event, config=config)
    if trainer.finished:
        own_epochs = session.config().epochs
        done = session.step >= trainer.steps_per_epoch * own_epochs
        where = (f"has finished its {plural(own_epochs, 'epoch')}" if done else
                 f"is at step {session.step:,}, in epoch {session.step // trainer.steps_per_epoch + 1} of its "
                 f"{own_epochs}, beyond --epochs {config.epochs}")
        raise UsageError(f"{args.resume} {where}: --epochs counts all of the run's epochs, give more to train on")
    return trainer, source


def _save_unfinished(trainer: Trainer, out: str, source: str) -> str | None:
    """Save the run so far as a session beside ``out``; its path, None (with the reason on stderr)
    when it could not be written."""
    path = _session_path_for(out)
    try:
        return save_session(path, Session.from_trainer(trainer, _data_key(source)))
    except OSError as exc:
        print(f"error: could not save the run to {path}: {_reason(exc)}", file=sys.stderr)
        return None


def _continue_hint(session_path: str, out: str, data: str, extra: str = "") -> str:
    data_flag = "" if data == "bundled" else f" --data {shlex.quote(data)}"
    return (f"python -m engine train --resume {shlex.quote(session_path)}{data_flag}{extra} --out {shlex.quote(out)} "
            f"(or open it in the app: python -m app {shlex.quote(session_path)})")


def cmd_train(args) -> int:
    out = _output_path(args.out, "--out", "the weights")
    if out and out.lower().endswith(SESSION_SUFFIX):
        raise UsageError(f"--out: {SESSION_SUFFIX} is the ending of session files (`train` keeps an unfinished "
                         "run in one beside the weights): name the weights file something.npz")
    events = []
    trainer, source = _new_trainer(
        args, on_event=lambda e: events.append(e) if e["type"] in ("epoch", "error") else None)
    config = trainer.config
    first_step = trainer.step_index  # where --resume continues (0: a fresh run)
    started = time.perf_counter()
    reason = _run_trainer(trainer, "", args.no_progress, stop_on_ctrl_c=True)
    seconds = time.perf_counter() - started
    if reason in ("diverged", "stopped"):
        return _train_unfinished(trainer, reason, events, out, source)
    epoch_events = [e for e in events if e["type"] == "epoch"]  # this invocation's (a resumed run's are fewer)
    train_seconds = sum(e["seconds"] for e in epoch_events)
    last = epoch_events[-1]
    if out:
        try:
            trainer.model.save(out)
        except OSError as exc:
            print(f"error: could not save the weights to {out}: {_reason(exc)}; the trained weights were not "
                  "saved (any earlier file there is unchanged)", file=sys.stderr)
            return 1
        print(f"saved {config.preset} weights to {out}")
    # Ctrl-C during the last epoch's validation ends it with the run's steps all done
    validation = ("validation skipped (stopped)" if last["val_accuracy"] is None else
                  f"validation accuracy {last['val_accuracy']:.2%} on {len(trainer.val_data.y):,} images")
    if first_step:  # its first epoch was partly trained before: count the steps, not its epochs
        done = (f"resumed at step {first_step:,} of {trainer.total_steps:,}: "
                f"{plural(trainer.step_index - first_step, 'step')} in {seconds:.1f} s "
                f"({plural(config.epochs, 'epoch')} in all)")
    else:
        done = f"{plural(len(epoch_events), 'epoch')} in {seconds:.1f} s"
    print(f"{done}: train loss {last['train_loss']:.4f}, {validation}")
    _json_line({
        "epochs": config.epochs,  # the weights' whole training, also after --resume
        "train_loss": last["train_loss"],
        "val_accuracy": last["val_accuracy"],
        "images_per_second": len(trainer.train_data.y) * len(epoch_events) / train_seconds,
        "seconds": seconds,
        "epoch_seconds": train_seconds / len(epoch_events),
        "out": out,
    })
    return 0


def _train_unfinished(trainer: Trainer, reason: str, events: list, out: str | None, source: str) -> int:
    """A run stopped by Ctrl-C (status 130) or diverged (status 1): with --out, saved as a session to
    continue (after a divergence with the weights of before the loss started climbing)."""
    if reason == "diverged":
        error = events[-1]
        headline = f"error: training diverged at step {error['step']}: {error['cause']}"
        rescued = trainer.rollback()  # None: it diverged at its first step, nothing earlier to go back to
        what = ("the run, with the weights it diverged with," if rescued is None else
                f"the run, with the weights of step {rescued:,} (before the loss started climbing),")
        how = "continue it with lower learning rates"
        lower = f" --lr-conv {trainer.config.lr_conv / 10:g} --lr-dense {trainer.config.lr_dense / 10:g}"
        unsaved = "nothing was saved (no --out); try lower learning rates (--lr-conv, --lr-dense)"
    else:
        headline = f"stopped at step {trainer.step_index:,} of {trainer.total_steps:,}"
        what, how, lower = "the run so far", "continue it with", ""
        unsaved = "nothing was saved (no --out)"
    if not out:
        print(f"{headline}; {unsaved}", file=sys.stderr)
    else:
        print(headline, file=sys.stderr)
        saved = _save_unfinished(trainer, out, source)
        if saved:
            print(f"Saved {what} in {saved}; {how}: {_continue_hint(saved, out, source, lower)}", file=sys.stderr)
    return 1 if reason == "diverged" else 130


def cmd_evaluate(args) -> int:
    model = Sequential.load(args.weights)
    if args.images is not None:
        if args.labels is None:
            raise UsageError("--images needs --labels")
        dataset = datamod.load_idx_pair(args.images, args.labels)
    elif args.labels is not None:
        raise UsageError("--labels needs --images")
    elif args.data in (None, "bundled"):
        dataset = datamod.load_bundled_mnist()[1]
    else:
        dataset = datamod.load_mnist_test(args.data[len("mnist:"):])
    if model.input_shape != dataset.x.shape[1:]:
        raise UsageError(f"{args.weights}: the model takes {model.input_shape} inputs, the data is "
                         f"{dataset.x.shape[1:]}")
    # MNIST labels are digits used as output positions: output k must be digit k (or a name for it).
    if len(model.classes) != 10 or any(isinstance(c, int) and c != k for k, c in enumerate(model.classes)):
        raise UsageError(f"{args.weights}: the model's outputs are the classes {model.classes}; MNIST labels "
                         "are the digits 0-9 in that order, so evaluate needs 10 outputs listing 0..9 in order")
    result = evaluate(model, dataset)
    n = len(dataset.y)
    print(f"{args.weights} on {dataset.name} ({n:,} images): accuracy {result.accuracy:.2%}, "
          f"{result.misclassified.size} misclassified, mean loss "
          + (f"{result.loss:.4f}" if math.isfinite(result.loss) else "n/a (no image got an answer)"))
    for variant in model.variant_labels():
        print(f"note: these weights were trained with the backprop variant {VARIANT_LABELS[variant]}")
    if result.unanswered.size:
        print(f"note: {result.unanswered_note()} (and are in no cell of the matrix)")
    print("confusion matrix (rows: true digit, columns: predicted):")
    for label, row in zip(model.classes, result.confusion):
        print(f"  {label}: " + " ".join(f"{v:5d}" for v in row))
    _json_line({"accuracy": result.accuracy, "n": n, "confusion": result.confusion.tolist()})
    return 0


def cmd_broken_backprop(args) -> int:
    from engine.experiments import broken_backprop, write_loss_csv

    config = _config_from(args, preset="vgg7")
    csv_path = _output_path(args.csv, "--csv", "the CSV")
    train, val = load_data(args.data or "bundled")
    train = limit(train, args.limit)
    bars, errors = {}, {}

    def on_event(label, event):
        if event["type"] == "error":
            errors[label] = event["message"]
        if label not in bars:
            steps = math.ceil(len(train.y) / config.batch_size) * config.epochs
            bars[label] = Progress(steps, label, enabled=not args.no_progress)
        bars[label](event)

    def write_csv(runs):  # main prints the OSError: the file named once, with what it holds
        try:
            write_loss_csv(csv_path, runs)
        except OSError as exc:
            raise OSError(f"could not save the loss curves to {csv_path}: {_reason(exc)}") from None
    finished = []
    try:
        results = broken_backprop(train, val, config, on_event=on_event, on_result=finished.append)
    except KeyboardInterrupt:
        for bar in bars.values():
            bar.finish_line()
        if not finished:
            raise
        # Ctrl-C in the broken run: the correct run is whole (and took as long to train), so it is kept;
        # reported before the CSV is written, which may fail
        _report_runs(finished, errors)
        kept = f"{' and '.join(r.label for r in finished)} run{'s' if len(finished) > 1 else ''}"
        write_csv(finished)
        print(f"loss curves: {csv_path} (the {kept} only)")
        print(f"interrupted: the comparison is incomplete (no JSON line); kept the finished {kept}: reported "
              f"above, loss curve in {csv_path}", file=sys.stderr)
        return 130
    write_csv(results)
    acc, diverged = _report_runs(results, errors)
    print(f"loss curves: {csv_path}")
    _json_line({"correct_accuracy": acc["correct"], "broken_accuracy": acc["broken"], "csv": csv_path,
                "epochs": config.epochs, "seed": config.seed, "diverged": diverged})
    # The broken run diverging can be the experiment's outcome; the correct one means bad settings.
    return 1 if "correct" in diverged else 0


def _report_runs(results: list, errors: dict) -> tuple[dict, list]:
    """Print each run's final training loss and validation accuracy, and on stderr why a run diverged
    (``errors``: {label: message}); returns ({label: accuracy}, [labels of the diverged runs])."""
    acc = {r.label: r.evaluation.accuracy for r in results}
    for r in results:
        loss = r.trainer.history.steps["loss"].array()
        tail = loss[-max(1, len(loss) // 10):].mean() if loss.size else float("nan")
        state = f" ({r.trainer.state})" if r.trainer.state != "finished" else ""
        print(f"{r.label:>8}: final training loss (mean of the last 10% of steps) {tail:.4f}, "
              f"validation accuracy {acc[r.label]:.2%}{state}")
    diverged = [r.label for r in results if r.trainer.state == "diverged"]
    for label in diverged:
        print(f"{label}: {errors.get(label, 'diverged')}", file=sys.stderr)
    return acc, diverged


def cmd_tiny8x8(args) -> int:
    from engine.experiments import tiny8x8

    base = TINY8X8_CONFIG
    config = _checked_config(**{**base.__dict__, "seed": args.seed, "variant": args.variant,
                                "epochs": base.epochs if args.epochs is None else args.epochs})
    widths = {name: getattr(args, name) for name in ("dense1", "dense2") if getattr(args, name) is not None}
    for name, value in widths.items():
        if value < 1:
            raise UsageError(f"--{name} must be positive, got {value}")
    trainer, test = tiny8x8(config, **widths)
    _run_trainer(trainer, "", args.no_progress)  # a second with the recipe; more epochs take longer
    result = evaluate(trainer.model, test)
    loss = trainer.history.epochs["train_loss"].array()
    dense = [layer.params["w"].shape[1] for layer in trainer.model.layers if layer.kind == "Dense"]
    print(f"tiny8x8 (seed article 002), digits 0 vs 1, dense 16 -> {' -> '.join(map(str, dense))}"
          f"{'' if args.variant is None else ', ' + VARIANT_LABELS[args.variant]}: {config.epochs} epochs, "
          f"final train loss {loss[-1]:.5f}; test accuracy {result.accuracy:.2%} "
          f"({len(result.predictions) - result.misclassified.size}/{len(result.predictions)})")
    # the contract, exactly: the sizes and variant are in the line above
    _json_line({"test_accuracy": result.accuracy, "n_test": len(result.predictions)})
    return 0


def gradcheck_batch(model, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch for the gradient check, drawn with ``seed`` from the bundled data that fits the
    model's input (28x28 MNIST or the 8x8 digits): ``x: (B, H, W, 1)``, ``labels: (B,)``."""
    if model.input_shape == (8, 8, 1):
        train = datamod.load_digits_8x8(tuple(model.classes))[0]
    else:
        train = datamod.load_bundled_mnist()[0]
    if model.input_shape != train.x.shape[1:]:
        raise UsageError(f"no bundled data has the model's input shape {model.input_shape}")
    pick = np.random.default_rng(seed).choice(len(train.y), size=min(batch_size, len(train.y)), replace=False)
    return train.x[pick], train.y[pick]


def cmd_gradcheck(args) -> int:
    from engine.gradcheck import check_model

    if not 1 <= args.batch_size <= MAX_GRADCHECK_BATCH:
        raise UsageError(f"--batch-size must be between 1 and {MAX_GRADCHECK_BATCH}, got {args.batch_size}")
    if not 1 <= args.per_param <= MAX_PER_PARAM:
        raise UsageError(f"--per-param must be between 1 and {MAX_PER_PARAM}, got {args.per_param}")
    if not 0 < args.tolerance < math.inf:
        raise UsageError(f"--tolerance must be a positive number, not {args.tolerance}")
    if not 0 <= args.seed < 2**63:
        raise UsageError(f"--seed must be between 0 and {2**63 - 1}, got {args.seed}")
    if args.weights:
        model = Sequential.load(args.weights)
        if args.preset not in (None, model.name):
            raise UsageError(f"{args.weights} holds a {model.name}, not a {args.preset}: leave --preset out "
                             "with --weights (the file has its own architecture)")
    else:
        model = build(args.preset or "vgg7", seed=args.seed)
    model.variant = args.variant
    x, labels = gradcheck_batch(model, args.batch_size, args.seed)
    # A fresh model has all biases 0: move them off the ReLU kinks (see engine.gradcheck.check_model).
    jitter = 0.0 if args.weights else 0.01
    status = StatusLine()  # the largest checks take hours

    def show_entry(i, n, name):
        status.show(f"gradient check: entry {i:,} of {n:,} ({name})", last=i == n)
    try:
        errors, rows = check_model(model, x, labels, per_param=args.per_param, seed=args.seed, bias_jitter=jitter,
                                   progress=show_entry)
    finally:
        status.finish_line()
    kinks = sum(r.kink for r in rows)
    print(f"gradient check of {model.name} ({args.variant or 'correct backward'}), float64, batch of {len(x)}, "
          f"{args.per_param} random entries per parameter{', biases jittered by N(0, 0.01^2)' if jitter else ''}")
    # Every sampled entry on a kink: nothing measured (NaN), not a failure. A NaN from checked
    # entries (a NaN gradient) fails.
    unchecked = [name for name in errors if all(r.kink for r in rows if r.param == name)]
    failed = [name for name, err in errors.items() if name not in unchecked and not err < args.tolerance]
    for name, err in errors.items():
        verdict = "not checked: every entry on a kink" if name in unchecked else "FAIL" if name in failed else "ok"
        print(f"  {name:<10} relative error {err:9.2e}  {verdict}")
    if kinks:
        print(f"  ({kinks} entries sat on a ReLU/max-pool kink at every step tried and were left out"
              + ("; biases at exactly 0 put them there wherever the input is 0: a fresh preset, without "
                 "--weights, is checked with its biases moved off 0" if unchecked else "") + ")")
    # entries_per_param is what was asked; entries_checked what each parameter had (a 10-entry bias
    # has at most 10) less the entries left out on kinks.
    checked = {name: sum(1 for r in rows if r.param == name and not r.kink) for name in errors}
    _json_line({"layers": errors, "variant": args.variant, "entries_per_param": args.per_param,
                "entries_checked": checked, "kinks": kinks,
                # over the parameters measured; NaN (a NaN gradient) if any of them is
                "max_rel_err": max((errors[n] for n in errors if n not in unchecked), default=None,
                                   key=lambda err: math.inf if math.isnan(err) else err),
                "failed": failed, "unchecked": unchecked})
    return 1 if failed and args.variant is None else 0  # a variant's failures are the lesson, not an error


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m engine", description="ConvScope's NumPy CNN engine.",
                     epilog="Each command prints what it did, then one JSON object as its last stdout line; "
                            "progress goes to stderr. Exit status: 0 done; 1 failed (a diverged run, a gradient "
                            "check of the correct backward over its tolerance, weights not saved, out of "
                            "memory); 2 bad input; 130 interrupted (Ctrl-C).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    presets = sorted(PRESETS)

    p = sub.add_parser("train", help="train a network and save its weights",
                       description="Train a preset network; the last stdout line is JSON. Its seconds are this "
                                   "invocation's (training and validation; after --resume, only the steps it ran); "
                                   "epoch_seconds and images_per_second are over the epochs it finished, whole (the "
                                   "steps of a resumed epoch before the resume included), as the epoch lines show.")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--preset", choices=presets, help=f"the network to train (default {DEFAULTS.preset})")
    start.add_argument("--resume", metavar="SESSION", type=_input_file,
                       help="continue the run saved in this session file (by Ctrl-C, a divergence or the app) "
                            "with its settings; options given replace them (e.g. more --epochs, which counts all "
                            "the run's epochs, or a lower --lr-conv)")
    _add_data_option(p)
    p.add_argument("--out", help="where to save the trained weights (.npz); not saved when omitted. A run stopped "
                                 "by Ctrl-C or diverged is saved beside it as a session to --resume "
                                 "(NAME.convscope.npz)")
    p.add_argument("--variant", choices=["broken_update", "transposed_pool"], default=None,
                   help="train with one of the seed articles' bugs: a wrong update (broken_update) or a wrong "
                        "backward pass (transposed_pool)")
    _add_training_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy and confusion matrix of saved weights",
                       description="Evaluate saved weights; the last stdout line is JSON.")
    p.add_argument("--weights", required=True, type=_weights_file,
                   help="a .npz saved by `train` or the app, or 'pretrained' for the bundled VGG-7")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--data", type=_data_source,
                       help="'bundled' (the 500 validation images, the default) or 'mnist:DIR' (its test set)")
    group.add_argument("--images", type=_input_file, help="an MNIST images IDX file (may be gzipped); needs --labels")
    p.add_argument("--labels", type=_input_file, help="the matching labels IDX file (may be gzipped)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("experiment", help="reproduce an experiment of the seed articles")
    experiments = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    e = experiments.add_parser("broken-backprop",
                               help="seed 004: correct vs broken conv2 update, same initial weights")
    e.add_argument("--csv", default="broken_backprop_losses.csv",
                   help="where to write both loss curves (default %(default)s); after Ctrl-C in the broken "
                        "run, the finished correct run's alone")
    _add_data_option(e)
    _add_training_options(e, epochs=3)
    e.set_defaults(func=cmd_broken_backprop)
    e = experiments.add_parser("tiny8x8", help="seed 002: the small 8x8 network, digits 0 vs 1, L2 cost")
    e.add_argument("--seed", type=int, default=0, help="initial weights and shuffling (default %(default)s)")
    e.add_argument("--epochs", type=int, default=None,
                   help=f"passes over the training split (default {TINY8X8_CONFIG.epochs}, the tuned recipe's)")
    e.add_argument("--variant", choices=["transposed_pool"], default=None,
                   help="seed 002's experiment: the pooling backward transposes the pooled derivative and mask")
    e.add_argument("--dense1", type=int, default=None,
                   help="units of the first dense layer (default 28; the article also tried 18 and 48)")
    e.add_argument("--dense2", type=int, default=None,
                   help="units of the second dense layer (default 36; the article also tried 20 and 56)")
    e.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    e.set_defaults(func=cmd_tiny8x8)

    p = sub.add_parser("gradcheck", help="applied gradients vs finite differences, per parameter",
                       description="Compare the gradient a training step applies with central finite "
                                   "differences of the loss (float64, one batch); the last stdout line is JSON. "
                                   "Exit status 1 when the correct backward (no --variant) has a parameter over "
                                   "the tolerance.")
    p.add_argument("--preset", choices=presets, default=None, help="the network to check, freshly initialised "
                                                                   "(default vgg7)")
    p.add_argument("--weights", type=_weights_file,
                   help="check these saved weights ('pretrained': the bundled VGG-7) instead of a fresh preset")
    p.add_argument("--variant", choices=["broken_update", "transposed_pool"], default=None,
                   help="check one of the seed articles' bugs instead of the correct backward: its failures are "
                        "the lesson and exit 0 (default: the correct backward)")
    p.add_argument("--seed", type=int, default=0,
                   help="batch, sampled entries and (without --weights) initial weights (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=4,
                   help=f"images the loss is taken on, 1 to {MAX_GRADCHECK_BATCH} (default %(default)s)")
    p.add_argument("--per-param", type=int, default=5,
                   help=f"entries checked per parameter, 1 to {MAX_PER_PARAM} (default %(default)s)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest relative error marked ok (default %(default)s)")
    p.set_defaults(func=cmd_gradcheck)

    # `bench` lives in engine/bench.py; its options are added only when it runs (see main()).
    sub.add_parser("bench", help="images per second of VGG-7 training and inference (vs PyTorch)",
                   add_help=False)
    return parser


def _bench(argv: list[str]) -> int:
    try:
        bench = importlib.import_module("engine.bench")
    except ModuleNotFoundError as exc:
        if exc.name != "engine.bench":
            raise
        return _fail("the benchmark is not available: engine/bench.py is missing")
    parser = _Parser(prog="python -m engine bench", description=(bench.__doc__ or "").strip().split("\n")[0])
    bench.add_arguments(parser)
    return bench.run(parser.parse_args(argv))


def _fail(message: str) -> int:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _run(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    # Every core BLAS would use (OPENBLAS_NUM_THREADS is respected), as data-parallel shards.
    with parallel.using_threads(parallel.blas_threads()):
        return args.func(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (`… | head -1`): say nothing more, and keep Python's exit-time flush
        # of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (UsageError, DataFileError, ModelFileError, OSError, ValueError) as exc:
        return _fail(exc)
    except MemoryError as exc:  # e.g. a batch too big for this machine
        # whether the command has the option (bench's options are its own, see _bench)
        batches = argv[:1] == ["bench"] or hasattr(build_parser().parse_known_args(argv)[0], "batch_size")
        print(f"error: out of memory ({exc}); " + ("try a smaller --batch-size" if batches else
              "this machine has too little free memory for it"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
