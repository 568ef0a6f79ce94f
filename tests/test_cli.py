"""`python -m engine …`: train → evaluate round trip, experiments, JSON last lines, bad input."""
import csv
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from engine import cli, experiments
from engine.data import load_bundled_mnist
from engine.model import Sequential
from engine.presets import get_preset
from engine.trainer import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    """Run the real entry point in a subprocess -> (returncode, stdout, stderr)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def write_idx(path, array, magic):
    """A gzipped IDX file: magic, big-endian dimensions, then uint8 data."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_train_then_evaluate_round_trip(tmp_path, capsys):
    out = tmp_path / "w.npz"
    code, stdout, stderr = run_cli("train", "--preset", "vgg7", "--data", "bundled", "--epochs", "1",
                                   "--batch-size", "50", "--lr-conv", "0.05", "--lr-dense", "0.05",
                                   "--optimizer", "sgd", "--no-augment", "--seed", "1", "--limit", "200",
                                   "--out", str(out))
    assert code == 0, stderr
    trained = last_json(stdout)
    assert set(trained) == {"epochs", "train_loss", "val_accuracy", "images_per_second", "seconds",
                            "epoch_seconds", "out"} and trained["out"] == str(out)
    assert trained["epochs"] == 1 and trained["images_per_second"] > 0 and trained["seconds"] > 0
    assert "epoch 1:" in stderr  # progress on stderr, epoch lines when not a terminal
    model = Sequential.load(out)
    val = load_bundled_mnist()[1]
    assert evaluate(model, val).accuracy == trained["val_accuracy"]

    code, stdout, stderr = run_cli("evaluate", "--weights", str(out), "--data", "bundled")
    assert code == 0, stderr
    result = last_json(stdout)
    assert result["n"] == 500 and result["accuracy"] == trained["val_accuracy"]
    confusion = np.array(result["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 500
    assert np.trace(confusion) / 500 == pytest.approx(result["accuracy"])
    assert (confusion.sum(axis=1) == 50).all()  # the bundled validation set has 50 of each digit

    # the same images as gzipped IDX files give the same answer
    sub = np.arange(0, 500, 7)
    write_idx(tmp_path / "img.gz", np.round(val.x[sub, :, :, 0] * 255), 0x803)
    write_idx(tmp_path / "lbl.gz", val.y[sub], 0x801)
    assert cli.main(["evaluate", "--weights", str(out), "--images", str(tmp_path / "img.gz"),
                     "--labels", str(tmp_path / "lbl.gz")]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["n"] == sub.size
    assert result["accuracy"] == pytest.approx(evaluate(model, val.subset(sub)).accuracy)


def test_broken_backprop_experiment_writes_both_curves(tmp_path, capsys):
    path = tmp_path / "curves.csv"
    code = cli.main(["experiment", "broken-backprop", "--epochs", "1", "--seed", "2", "--limit", "128",
                     "--batch-size", "32", "--csv", str(path), "--no-progress"])
    assert code == 0
    result = last_json(capsys.readouterr().out)
    assert set(result) >= {"correct_accuracy", "broken_accuracy", "csv"}
    assert 0 <= result["correct_accuracy"] <= 1 and 0 <= result["broken_accuracy"] <= 1
    assert result["csv"] == str(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "epoch_fraction", "correct_loss", "broken_loss"]
    table = np.array(rows[1:], dtype=float)
    assert table.shape == (4, 4) and list(table[:, 0]) == [1, 2, 3, 4]
    assert table[0, 2] == table[0, 3]  # same initial weights and batch: same first loss
    assert not np.array_equal(table[1:, 2], table[1:, 3])  # then conv2's update differs


def ctrl_c_at_the_broken_runs_second_step(monkeypatch):
    """A real Ctrl-C (SIGINT to this process) in the middle of broken-backprop's broken run."""
    shown = cli.Progress.__call__

    def call(bar, event):
        shown(bar, event)
        if bar.label == "broken " and event["type"] == "step" and event["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(cli.Progress, "__call__", call)


def csv_whose_folder_goes_before_the_write(monkeypatch, tmp_path):
    """A loss-CSV path in a folder removed just before the experiment writes it: the path."""
    csv_path = tmp_path / "run" / "c.csv"
    csv_path.parent.mkdir()
    write = experiments.write_loss_csv

    def folder_gone(path, results):
        os.rmdir(csv_path.parent)
        return write(path, results)
    monkeypatch.setattr(experiments, "write_loss_csv", folder_gone)
    return csv_path


def test_ctrl_c_in_the_broken_run_keeps_and_reports_the_finished_correct_run(tmp_path, monkeypatch, capsys):
    """It kept nothing: the correct run's accuracy and curve were lost with the broken run."""
    ctrl_c_at_the_broken_runs_second_step(monkeypatch)
    path = tmp_path / "curves.csv"
    assert cli.main(["experiment", "broken-backprop", "--epochs", "1", "--seed", "2", "--limit", "128",
                     "--batch-size", "32", "--csv", str(path), "--no-progress"]) == 130
    out, err = capsys.readouterr()
    assert re.search(r"^ correct: final training loss .*, validation accuracy \d+\.\d\d%$", out, re.M)
    assert "broken:" not in out and "{" not in out  # the comparison is incomplete: no JSON line
    assert f"loss curves: {path} (the correct run only)" in out
    assert err.startswith("interrupted: the comparison is incomplete") and f"loss curve in {path}" in err
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "epoch_fraction", "correct_loss"] and len(rows) == 1 + 4
    assert os.listdir(tmp_path) == ["curves.csv"]  # written atomically: no temporary file left


def test_seed003_reaches_the_articles_90_percent_on_mnist(tmp_path):
    """Seed 003: "about 90% on MNIST" (the bundled subset here: 4,500 training, 500 validation images)."""
    code, stdout, stderr = run_cli("train", "--preset", "seed003", "--epochs", "2", "--seed", "0",
                                   "--out", str(tmp_path / "w.npz"))
    assert code == 0, stderr
    assert last_json(stdout)["val_accuracy"] >= 0.90


def test_broken_backprop_experiment_trains_on_an_mnist_folder(tmp_path, capsys):
    """It was wired to the bundled set: `--data mnist:DIR` was refused, though the app runs it on 60,000."""
    train, val = load_bundled_mnist()
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, data, n in (("train", train, 96), ("t10k", val, 40)):
        pick = np.arange(n) * (len(data.y) // n)  # every digit
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.round(data.x[pick, :, :, 0] * 255), 0x803)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", data.y[pick], 0x801)
    path = tmp_path / "curves.csv"
    assert cli.main(["experiment", "broken-backprop", "--data", f"mnist:{folder}",
                     "--batch-size", "32", "--csv", str(path), "--no-progress"]) == 0
    assert last_json(capsys.readouterr().out)["csv"] == str(path)
    with open(path, newline="") as f:  # the folder's 96 training images: 3 steps an epoch, for the
        assert len(list(csv.reader(f))) == 1 + 3 * 96 // 32  # experiment's own 3 epochs (train's are more)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_epoch_end_validation_shows_how_far_it_is(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = cli.Progress(10)
    bar({"type": "validation", "epoch": 2, "done": 640, "total": 10_000})
    assert terminal.getvalue() == "\repoch 2 validating 640/10,000 images\x1b[K"


def test_on_a_terminal_the_bar_is_ended_before_each_epoch_line_and_at_the_end(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = cli.Progress(2)
    bar({"type": "step", "epoch": 1, "step": 1, "loss": 0.5, "images_per_second": 100.0})
    bar({"type": "epoch", "epoch": 1, "train_loss": 0.5, "train_accuracy": 0.75, "val_loss": None,
         "val_accuracy": None, "seconds": 0.3})
    assert terminal.getvalue().endswith("\x1b[K\nepoch 1: train loss 0.5000, train accuracy 75.00% (0.3 s)\n")
    bar({"type": "step", "epoch": 2, "step": 2, "loss": 0.4, "images_per_second": 100.0})
    bar.finish_line()  # Ctrl-C: the bar's line is ended, nothing written after it on the same line
    assert terminal.getvalue().endswith("img/s\x1b[K\n")


def test_gradcheck_shows_how_far_it_is_on_a_terminal_only(monkeypatch, capsys):
    """Its largest checks run for hours: on a terminal it said nothing until the end."""
    argv = ["gradcheck", "--preset", "seed003", "--per-param", "2", "--batch-size", "1"]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(argv) == 0
    shown = terminal.getvalue()
    assert shown.startswith("\rgradient check: entry 1 of 8 (conv1.w)\x1b[K") and shown.endswith("\n")
    assert "entry 8 of 8 (dense1.b)" in shown and shown.count("\n") == 1  # one line, ended before the table
    monkeypatch.undo()
    assert cli.main(argv) == 0
    assert capsys.readouterr().err == ""  # nothing on a pipe or in a log file


def test_on_a_pipe_epoch_lines_come_at_most_once_a_second_the_first_and_the_last_always(monkeypatch):
    log, now = io.StringIO(), [0.0]  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.setattr(cli, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    bar = cli.Progress(10)
    for epoch in range(1, 11):  # one every 0.3 s
        now[0] += 0.3
        bar({"type": "epoch", "epoch": epoch, "train_loss": 0.5, "train_accuracy": 0.75, "val_loss": None,
             "val_accuracy": None, "seconds": 0.3})
    assert [line.split(":")[0] for line in log.getvalue().splitlines()] == ["epoch 1", "epoch 5", "epoch 9"]
    bar({"type": "done", "reason": "finished"})  # the run is over: its last epoch is written
    assert log.getvalue().splitlines()[-1] == "epoch 10: train loss 0.5000, train accuracy 75.00% (0.3 s)"


def test_tiny8x8_experiment_reaches_100_percent(capsys):
    started = time.monotonic()
    assert cli.main(["experiment", "tiny8x8", "--seed", "0"]) == 0
    seconds = time.monotonic() - started
    captured = capsys.readouterr()
    assert last_json(captured.out) == {"test_accuracy": 1.0, "n_test": 108}
    # progress, as in the other commands; its 60 short epochs wrote 60 lines a second to a pipe
    epochs = [line for line in captured.err.splitlines() if line.startswith("epoch ")]
    assert epochs[0].startswith("epoch 1: train loss") and epochs[-1].startswith("epoch 60: train loss")
    assert len(epochs) <= seconds + 2
    assert cli.main(["experiment", "tiny8x8", "--seed", "0", "--epochs", "2", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_tiny8x8_experiment_runs_the_articles_other_sizes_and_its_transposed_pooling(capsys):
    """Seed 002 compared the right and the transposed pooling backward for several dense sizes."""
    sizes = ["--dense1", "18", "--dense2", "20", "--epochs", "3", "--no-progress"]
    assert cli.main(["experiment", "tiny8x8", *sizes]) == 0
    right = capsys.readouterr().out
    assert cli.main(["experiment", "tiny8x8", "--variant", "transposed_pool", *sizes]) == 0
    out = capsys.readouterr().out
    assert "dense 16 -> 18 -> 20 -> 1, transposed_pool" in out and "dense 16 -> 18 -> 20 -> 1:" in right
    final_loss = re.compile(r"final train loss ([0-9.]+)")
    assert final_loss.search(out).group(1) != final_loss.search(right).group(1)  # the backward differs
    assert set(last_json(out)) == {"test_accuracy", "n_test"}  # the contract's JSON, whatever the options
    assert cli.main(["experiment", "tiny8x8", "--dense2", "0"]) == 2
    assert "--dense2 must be positive, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["evaluate", "--weights", "/nonexistent/w.npz"], "no such file"),
    (["train", "--epochs", "0", "--lr-conv", "nan"], "epochs"),
    (["train", "--lr-dense", "-1", "--epochs", "1"], "--lr-dense must be at least 0"),  # the flag, as typed
    (["train", "--batch-size", "100000"], "--batch-size must be"),
    (["train", "--limit", "0", "--epochs", "1"], "--limit must be positive, got 0"),
    (["train", "--out", "", "--epochs", "1"], "--out is empty"),
    (["experiment", "broken-backprop", "--csv", " "], "--csv is empty"),
    (["train", "--preset", "tiny8x8", "--epochs", "1"], "experiment tiny8x8"),
    (["train", "--out", "/nonexistent/dir/w.npz", "--epochs", "1"], "does not exist"),
    (["train", "--data", "mnist:/nonexistent", "--epochs", "1"], "no such folder"),
    (["gradcheck", "--weights", "CORRUPT"], "not a readable"),
    (["gradcheck", "--tolerance", "nan"], "tolerance"),
    (["gradcheck", "--seed", "-1"], "--seed must be between 0 and"),
    (["bench", "--seconds", "nan"], "--seconds must be a finite number"),
    (["evaluate", "--weights", "PIPE"], "not a regular file"),  # reading a FIFO waited forever
    (["evaluate", "--weights", "SESSION"], "a ConvScope session, not a weights file"),
    (["train", "--out", "PIPE", "--epochs", "1"], "not a regular file"),
    (["evaluate", "--weights", "CORRUPT"], "not a readable"),
    (["evaluate", "--weights", "W", "--images", "BADIDX", "--labels", "BADIDX"], "magic number"),
    (["evaluate", "--weights", "W", "--images", "BADIDX"], "needs --labels"),
    (["evaluate", "--weights", "W", "--labels", "BADIDX"], "--labels needs --images"),
    (["train", "--warmup", "99", "--epochs", "1"], "--warmup "),  # the flag, not the field warmup_epochs
    (["train", "--warmup", "9", "--epochs", "2"], "--warmup (9) must not exceed --epochs (2)"),  # both flags
])
def test_bad_input_gives_one_line_and_exit_code_2(args, words, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip file")
    weights = tmp_path / "w.npz"
    Sequential(get_preset("vgg7")).save(weights)
    bad_idx = tmp_path / "bad.idx"
    bad_idx.write_bytes(b"\x12\x34\x56\x78" + b"\x00" * 20)
    pipe = tmp_path / "pipe"  # not a regular file, like a device
    os.mkfifo(pipe)
    session = tmp_path / "run.convscope"
    with open(session, "wb") as f:
        np.savez(f, __session__=np.array("{}"))  # what makes a file a session (engine.session)
    subst = {"CORRUPT": str(corrupt), "W": str(weights), "BADIDX": str(bad_idx), "PIPE": str(pipe),
             "SESSION": str(session)}
    assert cli.main([subst.get(a, a) for a in args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_a_diverging_run_without_out_exits_1_saying_nothing_was_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "--epochs", "1", "--limit", "256", "--batch-size", "32", "--lr-conv", "1000",
                     "--lr-dense", "1000", "--schedule", "constant", "--no-progress"])
    assert code == 1 and os.listdir(tmp_path) == []
    captured = capsys.readouterr()
    assert captured.out == ""
    line, = captured.err.strip().splitlines()
    assert line.startswith("error: training diverged at step ") and "lower learning rate" in line
    assert "nothing was saved (no --out)" in line  # with --out: tests/test_cli_resume.py


def test_argparse_errors_are_one_line_with_exit_code_2():
    code, stdout, stderr = run_cli("train", "--epochs", "many")
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "--epochs" in stderr and "invalid int value" in stderr


@pytest.mark.parametrize("argv, message", [
    (["train", "--epohcs", "3"], "python -m engine train: error: unrecognized arguments: --epohcs 3 "
                                 "(did you mean --epochs?)"),
    (["experiment", "broken-backprop", "--variant", "broken_update"],
     "python -m engine experiment broken-backprop: error: unrecognized arguments: --variant broken_update"),
    (["evaluate", "--weights", "pretrained", "--lables=x"], "python -m engine evaluate: error: unrecognized "
                                                           "arguments: --lables=x (did you mean --labels?)"),
    (["bench", "--secnds", "1"], "python -m engine bench: error: unrecognized arguments: --secnds 1 "
                                 "(did you mean --seconds?)"),
])
def test_an_unknown_option_is_reported_by_its_command_with_the_option_meant(argv, message, capsys):
    """They were reported by `python -m engine`, whose --help does not list the command's options."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"{message} (see --help)\n"


def command_parsers(parser, words=()):
    """(command, parser) of every command and experiment, `bench` with the options it adds when it runs."""
    import argparse

    from engine import bench

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name == "bench":
                    sub = bench.add_arguments(argparse.ArgumentParser())
                yield from command_parsers(sub, (*words, name))
    if words:
        yield " ".join(words), parser


def test_every_option_says_what_it_is_and_every_seed_its_default():
    """`gradcheck --variant` had no help at all; `--optimizer`, `--preset`, `tiny8x8 --seed` only "(default …)"."""
    vague = []
    for command, parser in command_parsers(cli.build_parser()):
        for action in parser._actions:
            if action.nargs == 0 or not action.option_strings or action.help == "==SUPPRESS==":
                continue
            text = parser._get_formatter()._expand_help(action) if action.help else ""  # as --help shows it
            if not text or text.startswith("(") or (action.dest == "seed" and "(default 0)" not in text):
                vague.append(f"{command} {action.option_strings[0]}: {text!r}")
    assert vague == []
    assert "Exit status: 0 done; 1 failed" in cli.build_parser().format_help()  # and 2, 130: the top --help


def test_bench_is_dispatched_to_engine_bench(monkeypatch, capsys):
    """`bench` hands its own arguments to engine.bench.add_arguments/run (the benchmark's contract)."""
    import types

    seen = {}

    def run(args):
        seen["seconds"] = args.seconds
        return 0
    fake = types.ModuleType("engine.bench")
    fake.add_arguments = lambda parser: parser.add_argument("--seconds", type=float, default=1.0)
    fake.run = run
    monkeypatch.setitem(sys.modules, "engine.bench", fake)
    assert cli.main(["bench", "--seconds", "0.5"]) == 0
    assert seen == {"seconds": 0.5}


@pytest.mark.parametrize("classes, refused", [
    (list(range(9, -1, -1)), True),            # output 0 is digit 9: MNIST's labels would be read as positions
    ([f"digit {k}" for k in range(10)], False),  # names, in order
])
def test_evaluate_refuses_a_model_whose_outputs_are_not_the_digits_in_order(classes, refused, tmp_path, capsys):
    spec = get_preset("vgg7")
    spec["classes"] = classes
    path = tmp_path / "relabelled.npz"
    Sequential(spec).save(path)
    code = cli.main(["evaluate", "--weights", str(path)])
    out, err = capsys.readouterr()
    if refused:
        assert code == 2 and "listing 0..9 in order" in err and out == ""
    else:
        assert code == 0 and last_json(out)["n"] == 500


def test_weights_trained_with_a_variant_say_so_when_evaluated(tmp_path):
    out = tmp_path / "broken.npz"
    code, _, stderr = run_cli("train", "--epochs", "1", "--limit", "64", "--batch-size", "32", "--no-augment",
                              "--variant", "broken_update", "--out", str(out))
    assert code == 0, stderr
    code, stdout, stderr = run_cli("evaluate", "--weights", str(out))
    assert code == 0, stderr
    assert "note: these weights were trained with the backprop variant broken_update: seed 004's typo" in stdout
    assert set(last_json(stdout)) == {"accuracy", "n", "confusion"}  # the contract's line is unchanged
    code, stdout, _ = run_cli("evaluate", "--weights", "pretrained")
    assert code == 0 and "variant" not in stdout


def test_evaluate_tells_when_weights_are_so_large_that_no_image_gets_an_answer(tmp_path):
    model = Sequential.load(os.path.join(ROOT, "resources", "weights", "vgg7.npz"))
    model.set_weights({name: w * 1e20 for name, w in model.get_weights().items()})
    path = tmp_path / "huge.npz"
    model.save(path)
    code, stdout, stderr = run_cli("evaluate", "--weights", str(path))
    assert code == 0 and "RuntimeWarning" not in stderr, stderr
    assert "note: 500 of 500 images got no answer: the network's outputs overflowed" in stdout  # as other notes
    assert "mean loss n/a (no image got an answer)" in stdout
    result = last_json(stdout)
    assert result["accuracy"] == 0 and result["n"] == 500 and np.sum(result["confusion"]) == 0


def test_limit_is_a_fixed_subset_in_the_original_order():
    train = load_bundled_mnist()[0]
    a, b = cli.limit(train, 300), cli.limit(train, 300)
    np.testing.assert_array_equal(a.x, b.x)  # the same images every time (a fixed seed)
    order = [int(np.flatnonzero((train.x == image).all(axis=(1, 2, 3)))[0]) for image in a.x[:40]]
    assert order == sorted(order)  # in the data's order: the bundled file's digit blocks stay blocks
    assert set(a.y.tolist()) == set(range(10)) and cli.limit(train, None) is train


def test_evaluate_on_an_mnist_folder_reads_only_its_test_files_and_expands_the_home_folder(
        tmp_path, monkeypatch, capsys):
    val = load_bundled_mnist()[1]
    folder = tmp_path / "mnist"
    folder.mkdir()
    sub = np.arange(0, 500, 25)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.round(val.x[sub, :, :, 0] * 255), 0x803)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", val.y[sub], 0x801)  # no training files at all
    monkeypatch.setenv("HOME", str(tmp_path))
    weights = os.path.join(ROOT, "resources", "weights", "vgg7.npz")
    assert cli.main(["evaluate", "--weights", weights, "--data", "mnist:~/mnist"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["n"] == sub.size
    assert result["accuracy"] == pytest.approx(evaluate(Sequential.load(weights), val.subset(sub)).accuracy)


def test_gradcheck_of_zero_biases_reports_them_unchecked_not_failed(tmp_path, capsys):
    """Saved fresh weights: every bias is 0, so every sampled bias entry sits on a ReLU kink wherever the
    input is 0. Nothing was measured there: not a failure of the backward pass (exit 0)."""
    path = tmp_path / "fresh.npz"
    Sequential(get_preset("vgg7")).save(path)
    assert cli.main(["gradcheck", "--weights", str(path), "--per-param", "2"]) == 0
    out = capsys.readouterr().out
    result = last_json(out)
    assert result["failed"] == [] and "conv1.b" in result["unchecked"] and result["entries_checked"]["conv1.b"] == 0
    assert result["layers"]["conv1.b"] is None and result["layers"]["conv1.w"] < 1e-6
    assert "not checked: every entry on a kink" in out and "FAIL" not in out
    measured = [err for name, err in result["layers"].items() if name not in result["unchecked"]]
    assert result["max_rel_err"] == max(measured)  # the unchecked biases do not make it null


@pytest.mark.parametrize("args, words", [
    (["--batch-size", "100000000"], "--batch-size must be between 1 and 256"),
    (["--per-param", "0"], "--per-param must be between 1 and 1000"),
    (["--per-param", "100000000"], "--per-param must be between 1 and 1000"),
    (["--preset", "vgg7", "--weights", "{tiny}"], "holds a tiny8x8, not a vgg7: leave --preset out"),
])
def test_gradcheck_refuses_absurd_sizes_and_a_preset_its_weights_contradict(tmp_path, capsys, args, words):
    """A batch of 10^8 filled the memory, 10^8 entries per parameter ran for hours, and --preset was
    silently ignored next to --weights."""
    tiny = tmp_path / "tiny.npz"
    Sequential(get_preset("tiny8x8")).save(tiny)
    assert cli.main(["gradcheck", *(a.format(tiny=tiny) for a in args)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and words in captured.err and captured.out == ""


def test_broken_backprop_names_diverged_runs_and_exits_1_when_the_correct_one_diverged(tmp_path, capsys):
    code = cli.main(["experiment", "broken-backprop", "--epochs", "1", "--limit", "64", "--batch-size", "32",
                     "--lr-conv", "10000", "--lr-dense", "10000", "--csv", str(tmp_path / "c.csv"),
                     "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert last_json(captured.out)["diverged"] == ["correct", "broken"]
    assert captured.err.count("training diverged at step") == 2


def test_a_failed_save_after_training_says_so_and_exits_1(tmp_path, monkeypatch, capsys):
    import errno

    def full_disk(self, path):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Sequential, "save", full_disk)
    out = tmp_path / "w.npz"
    code = cli.main(["train", "--epochs", "1", "--limit", "64", "--batch-size", "32", "--out", str(out),
                     "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    line, = captured.err.strip().splitlines()
    assert line == (f"error: could not save the weights to {out}: No space left on device; the trained "
                    "weights were not saved (any earlier file there is unchanged)")


@pytest.mark.parametrize("spoil, reason", [
    (lambda out: os.rmdir(out.parent), "No such file or directory"),  # the folder removed during training
    (lambda out: out.mkdir(), "it is a folder"),  # a folder made where the weights go
])
def test_a_failed_save_after_training_names_the_file_once_and_what_it_held(spoil, reason, tmp_path, monkeypatch,
                                                                           capsys):
    """It said "could not save the weights to X: cannot write X: No such file or directory" (atomic_write's
    reason came with the file), or for a folder "cannot write X: it is a folder" without saying what."""
    save = Sequential.save

    def spoiled(self, path):
        spoil(out)
        save(self, path)
    monkeypatch.setattr(Sequential, "save", spoiled)
    out = tmp_path / "run" / "w.npz"
    out.parent.mkdir()
    assert cli.main(["train", "--epochs", "1", "--limit", "64", "--batch-size", "32", "--out", str(out),
                     "--no-progress"]) == 1
    line, = capsys.readouterr().err.strip().splitlines()
    assert line.count(str(out)) == 1
    assert line.startswith(f"error: could not save the weights to {out}: {reason}; the trained weights were not")


@pytest.mark.parametrize("where, reason", [
    ("FOLDER", "it is a folder"),
    ("FOLDER/missing/w.npz", "folder FOLDER/missing does not exist"),
])
def test_an_output_that_cannot_be_written_is_named_once_before_training(where, reason, tmp_path, capsys):
    out = where.replace("FOLDER", str(tmp_path))
    assert cli.main(["train", "--epochs", "1", "--out", out]) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: cannot write the weights to {out}: {reason.replace('FOLDER', str(tmp_path))}"


def test_a_loss_csv_that_cannot_be_written_is_named_once(tmp_path, monkeypatch, capsys):
    """It said "cannot write X: No such file or directory", not that it was the loss curves."""
    csv_path = csv_whose_folder_goes_before_the_write(monkeypatch, tmp_path)
    assert cli.main(["experiment", "broken-backprop", "--epochs", "1", "--limit", "64", "--batch-size", "32",
                     "--csv", str(csv_path), "--no-progress"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == f"error: could not save the loss curves to {csv_path}: No such file or directory"


def test_a_loss_csv_that_cannot_be_written_after_ctrl_c_is_named_once_too(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the broken run keeps the correct run's curve: when that write fails, the error says it was
    the loss curves, as it does after a whole comparison."""
    ctrl_c_at_the_broken_runs_second_step(monkeypatch)
    csv_path = csv_whose_folder_goes_before_the_write(monkeypatch, tmp_path)
    assert cli.main(["experiment", "broken-backprop", "--epochs", "1", "--seed", "2", "--limit", "128",
                     "--batch-size", "32", "--csv", str(csv_path), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert re.search(r"^ correct: final training loss", out, re.M)  # reported before the write failed
    assert err.strip().splitlines()[-1] == \
        f"error: could not save the loss curves to {csv_path}: No such file or directory"


def fake_bench(monkeypatch, run):
    """engine.bench replaced by a module whose run(args) is ``run``."""
    import types

    fake = types.ModuleType("engine.bench")
    fake.add_arguments = lambda parser: parser
    fake.run = run
    monkeypatch.setitem(sys.modules, "engine.bench", fake)


@pytest.mark.parametrize("command", ["bench", "train"])
def test_ctrl_c_and_memory_errors_are_one_line_in_every_command(command, monkeypatch, capsys):
    def interrupted(*_):
        raise KeyboardInterrupt

    def out_of_memory(*_):
        raise MemoryError("Unable to allocate 3.1 GiB")
    for failure, status, words in ((interrupted, 130, "interrupted"),
                                   (out_of_memory, 1, "error: out of memory (Unable to allocate 3.1 GiB); "
                                                      "try a smaller --batch-size")):
        if command == "bench":
            fake_bench(monkeypatch, failure)
        else:
            monkeypatch.setattr(cli, "load_data", failure)
        assert cli.main([command]) == status
        captured = capsys.readouterr()
        assert captured.err.strip() == words and "Traceback" not in captured.err


@pytest.mark.parametrize("command", ["evaluate", "experiment tiny8x8"])
def test_out_of_memory_without_a_batch_size_option_does_not_suggest_one(command, monkeypatch, capsys):
    def out_of_memory(*_, **__):
        raise MemoryError("Unable to allocate 2.9 GiB")
    monkeypatch.setattr(cli, "evaluate", out_of_memory)
    monkeypatch.setattr(experiments, "tiny8x8", out_of_memory)  # imported by the command when it runs
    weights = os.path.join(ROOT, "resources", "weights", "vgg7.npz")
    argv = command.split() + (["--weights", weights] if command == "evaluate" else [])
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "--batch-size" not in err and "too little free memory" in err


def test_bench_progress_and_notes_go_to_stderr_its_results_to_stdout(monkeypatch, capsys):
    """Its rounds were printed on stdout, between the setup lines and the table: `bench > log` hid them."""
    from engine import bench

    monkeypatch.setattr(bench, "_import_torch", lambda: None)
    assert cli.main(["bench", "--seconds", "0", "--rounds", "2", "--batch-size", "2"]) == 0
    out, err = capsys.readouterr()
    told = [line for line in err.splitlines() if not line.startswith("note: this CPU")]  # on some CPUs only
    assert told[0] == "note: torch is not installed: engine only"  # why the table's torch column is empty
    assert [line[:9] for line in told[1:]] == ["round 1/2", "round 2/2"]
    assert "round 1/" not in out and "note:" not in out and set(last_json(out)) >= {"engine_train_ips", "threads"}
    assert cli.main(["bench", "--no-torch", "--seconds", "0", "--rounds", "1", "--batch-size", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "round" not in err and out.count("\n") == 1  # --json: the JSON line alone (and a busy machine said)


def test_ctrl_c_while_the_engine_loads_is_one_line_too(tmp_path):
    """The first tenth of a second loads NumPy, before main() handles Ctrl-C: it gave a traceback."""
    (tmp_path / "numpy.py").write_text("raise KeyboardInterrupt\n")  # as if Ctrl-C came during the import
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "engine", "gradcheck"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "interrupted\n")


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`python -m engine bench … | head -1`: the rest of the output has nowhere to go."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "bench", "--no-torch", "--seconds", "0.5",
                             "--rounds", "1", "--batch-size", "2"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("NumPy ")
    proc.stdout.close()  # like head after its first line
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141
    assert all(line.startswith(("round ", "note: ")) for line in stderr.splitlines())  # its progress, no error


def test_file_options_expand_the_home_folder_and_refuse_empty_values_and_folders(tmp_path, monkeypatch, capsys):
    """``--out=~/w.npz`` reaches the program with its "~" (the shell expands only a word-initial one)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["train", "--epochs", "1", "--limit", "64", "--batch-size", "32", "--out=~/w.npz",
                     "--no-progress"]) == 0
    assert (tmp_path / "w.npz").is_file() and not (tmp_path / "~").exists()
    assert cli.main(["evaluate", "--weights=~/w.npz"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--weights", ""])
    assert exit_info.value.code == 2 and "--weights: is empty: give a file name" in capsys.readouterr().err
    assert cli.main(["evaluate", "--weights", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: is a folder, not a weights file"


def test_train_refuses_a_batch_beyond_the_available_memory(monkeypatch, capsys):
    from engine import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "available_memory", lambda: 2**29)  # 0.5 GiB
    assert cli.main(["train", "--epochs", "1", "--limit", "1024", "--batch-size", "1024", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: a batch of 1,024 images needs about") and "at most" in captured.err


def test_the_pretrained_weights_have_a_name_that_works_from_any_directory(tmp_path):
    """Outside the repository resources/weights/vgg7.npz is somewhere in site-packages."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-m", "engine", "evaluate", "--weights", "pretrained", "--data", "bundled"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = evaluate(Sequential.load(os.path.join(ROOT, "resources", "weights", "vgg7.npz")),
                        load_bundled_mnist()[1])
    assert last_json(proc.stdout)["accuracy"] == expected.accuracy


@pytest.mark.parametrize("argv, lrs", [(["--optimizer", "adam"], (0.001, 0.001)), ([], (0.05, 0.05)),
                                       (["--optimizer", "adam", "--lr-dense", "0.01"], (0.001, 0.01)),
                                       (["--lr-conv", "0.2"], (0.2, 0.05))])
def test_each_optimizer_gets_its_own_default_learning_rate(argv, lrs):
    """Adam at SGD's 0.05 stalled VGG-7 at 10% validation accuracy."""
    args = cli.build_parser().parse_args(["train", *argv])
    config = cli._config_from(args)
    assert (config.lr_conv, config.lr_dense) == lrs and config.momentum == 0.9


def test_momentum_with_adam_is_refused_not_ignored(capsys):
    assert cli.main(["train", "--optimizer", "adam", "--momentum", "0.5", "--epochs", "1"]) == 2
    assert "--momentum is an SGD setting" in capsys.readouterr().err
