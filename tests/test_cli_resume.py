"""`python -m engine train`: Ctrl-C and a divergence keep the run as a session, `--resume` continues it."""
import json
import os
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest

from engine import cli
from engine.model import Sequential
from engine.session import Session, open_session, save_session
from test_data import make_mnist_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a short run on a fixed subset: 512 images in batches of 64, 8 steps an epoch
RUN = ["--limit", "512", "--batch-size", "64", "--no-progress", "--no-augment"]


def train(*argv):
    return cli.main(["train", *RUN, *argv])


def interrupt_at(monkeypatch, step, times=1):
    """Send this process SIGINT ``times`` times once the run's progress reaches ``step``."""
    shown = cli.Progress.__call__

    def call(bar, event):
        shown(bar, event)
        if event["type"] == "step" and event["step"] == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(cli.Progress, "__call__", call)


def test_ctrl_c_stops_after_the_step_and_the_resumed_run_is_the_uninterrupted_one(tmp_path, monkeypatch, capsys):
    straight, resumed = tmp_path / "straight.npz", tmp_path / "run.npz"
    assert train("--epochs", "2", "--out", str(straight)) == 0
    capsys.readouterr()

    interrupt_at(monkeypatch, step=5)
    assert train("--epochs", "2", "--out", str(resumed)) == 130
    err = capsys.readouterr().err
    session_path = tmp_path / "run.convscope.npz"
    assert "stopping after this step" in err and "stopped at step 5 of 16" in err
    assert f"Saved the run so far in {session_path}" in err and f"--resume {session_path}" in err
    assert not resumed.exists()  # --out is for finished runs
    session = open_session(session_path)
    assert session.step == 5 and session.data["key"] == "bundled"  # the app's name: it can continue it too
    monkeypatch.undo()

    assert train("--resume", str(session_path), "--out", str(resumed)) == 0
    a, b = Sequential.load(straight).get_weights(), Sequential.load(resumed).get_weights()
    assert all(np.array_equal(a[name], b[name]) for name in a)


def test_ctrl_c_in_the_middle_of_a_step_finishes_that_step_and_says_so_once(tmp_path, monkeypatch, capsys):
    """A real Ctrl-C lands while a step computes, not between steps: the step completes and is kept."""
    real, shown, steps_shown = Sequential.loss_and_grads, cli.Progress.__call__, []

    def call(bar, event):
        shown(bar, event)
        if event["type"] == "step":
            steps_shown.append(event["step"])

    def loss_and_grads(model, x, labels):
        if steps_shown == [1, 2]:  # in the middle of step 3
            steps_shown.append("Ctrl-C")
            os.kill(os.getpid(), signal.SIGINT)
        return real(model, x, labels)
    monkeypatch.setattr(cli.Progress, "__call__", call)
    monkeypatch.setattr(Sequential, "loss_and_grads", loss_and_grads)
    assert train("--epochs", "2", "--out", str(tmp_path / "RUN.NPZ")) == 130
    err = capsys.readouterr().err
    assert err.count("stopping after this step") == 1 and "stopped at step 3 of 16" in err
    assert open_session(tmp_path / "RUN.convscope.npz").step == 3  # beside the weights, however spelled


def test_a_second_ctrl_c_quits_at_once_saving_nothing(tmp_path, monkeypatch, capsys):
    interrupt_at(monkeypatch, step=3, times=2)
    assert train("--epochs", "2", "--out", str(tmp_path / "run.npz")) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")
    assert os.listdir(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_real_ctrl_c_in_a_terminal_keeps_the_run(tmp_path):
    out = tmp_path / "run.npz"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    progress = [a for a in RUN if a != "--no-progress"]  # on a pipe: a line per epoch
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", *progress, "--epochs", "200", "--out",
                             str(out)], cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        while "epoch 1:" not in proc.stderr.readline():
            assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and stdout == ""
    assert "Traceback" not in stderr and "Saved the run so far in" in stderr
    session = open_session(tmp_path / "run.convscope.npz")
    assert 8 <= session.step < 1600 and not out.exists()


def test_a_diverged_run_is_saved_with_the_weights_of_before_the_climb_and_continues_with_lower_rates(
        tmp_path, capsys):
    out = tmp_path / "run.npz"
    assert train("--epochs", "1", "--lr-conv", "1000", "--lr-dense", "1000", "--schedule", "constant",
                 "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged at step ")
    assert "with the weights of step 0 (before the loss started climbing)" in err
    assert "--lr-conv 100 --lr-dense 100" in err  # a tenth of the rates that diverged
    session = open_session(tmp_path / "run.convscope.npz")
    assert session.step >= 1 and session.settings["lr_conv"] == 1000
    initial = cli.build("vgg7", seed=0).get_weights()
    assert all(np.array_equal(session.weights[name], initial[name]) for name in initial)

    assert train("--resume", str(tmp_path / "run.convscope.npz"), "--lr-conv", "0.01", "--lr-dense", "0.01",
                 "--out", str(out)) == 0
    weights = Sequential.load(out).get_weights()
    assert all(np.isfinite(w).all() for w in weights.values())


def test_without_out_nothing_is_saved_and_it_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    interrupt_at(monkeypatch, step=2)
    assert train("--epochs", "1") == 130
    assert "stopped at step 2 of 8; nothing was saved (no --out)" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@pytest.fixture()
def stopped_session(tmp_path, monkeypatch, capsys):
    """A session of a VGG-7 run (2 epochs, seed 0) stopped at step 3."""
    interrupt_at(monkeypatch, step=3)
    assert train("--epochs", "2", "--out", str(tmp_path / "run.npz")) == 130
    monkeypatch.undo()
    capsys.readouterr()
    return str(tmp_path / "run.convscope.npz")


@pytest.mark.parametrize("argv, words", [
    (["--seed", "5"], "--seed: a resumed run goes on with its own random sequence (seed 0)"),
    (["--batch-size", "32"], "cannot continue with these options: its batch size was 64"),
    (["--optimizer", "adam"], "cannot continue with these options: its optimiser was sgd"),
    (["--epochs", "0"], "--epochs must be"),
])
def test_resume_refuses_options_that_cannot_continue_the_run(stopped_session, argv, words, capsys):
    assert cli.main(["train", *RUN, "--resume", stopped_session, *argv]) == 2  # later options win
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and words in err and "\n" not in err


def test_a_finished_session_continues_only_with_more_epochs(tmp_path, capsys):
    train_set, val = cli.load_data("bundled")
    train_set = cli.limit(train_set, 512)
    config = cli.TrainConfig(epochs=1, batch_size=64)
    trainer = cli.Trainer(cli.build("vgg7", seed=0), train_set, val, config)
    assert trainer.run() == "finished"
    path = save_session(tmp_path / "done.convscope.npz", Session.from_trainer(trainer, "bundled"))
    assert train("--resume", path) == 2
    assert "has finished its 1 epoch: --epochs counts all of the run's epochs, give more" in capsys.readouterr().err
    assert train("--resume", path, "--epochs", "2", "--out", str(tmp_path / "more.npz")) == 0
    assert (tmp_path / "more.npz").exists()


@pytest.mark.parametrize("argv, words", [
    (["--resume", "WEIGHTS"], "not a ConvScope session (no '__session__' manifest: a weights file, perhaps)"),
    (["--resume", "SESSION", "--preset", "seed003"], "argument --preset: not allowed with argument --resume"),
    (["--out", "x.convscope.npz"], "--out: .convscope.npz is the ending of session files"),
    (["--resume", "SESSION", "--data", "mnist:/nowhere"], "/nowhere"),
])
def test_bad_resume_input_is_one_line_and_changes_nothing(stopped_session, argv, words, capsys):
    before = open(stopped_session, "rb").read()
    weights = os.path.join(ROOT, "resources", "weights", "vgg7.npz")
    argv = [{"WEIGHTS": weights, "SESSION": stopped_session}.get(a, a) for a in argv]
    try:
        status = cli.main(["train", *RUN, *argv])
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and words in err and "\n" not in err and "Traceback" not in err
    assert open(stopped_session, "rb").read() == before


@pytest.mark.parametrize("key", ["mnist_dir", "download"])  # a folder given, or the app's download
def test_a_session_of_full_mnist_asks_for_its_folder(tmp_path, capsys, key):
    train_set, val = cli.load_data("bundled")
    trainer = cli.Trainer(cli.build("vgg7", seed=0), cli.limit(train_set, 64), val, cli.TrainConfig(epochs=1))
    path = save_session(tmp_path / "full.convscope.npz", Session.from_trainer(trainer, key))
    assert train("--resume", path) == 2
    assert "trained on the full MNIST: give its folder with --data mnist:DIR" in capsys.readouterr().err


def test_a_run_on_an_mnist_folder_is_kept_for_that_folder_and_its_hint_continues_it(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "my mnist"  # a space: the hint quotes it
    make_mnist_dir(folder, np.random.default_rng(0), n_train=128, n_test=20)  # 2 steps an epoch
    interrupt_at(monkeypatch, step=1)
    assert train("--data", f"mnist:{folder}", "--epochs", "2", "--out", str(tmp_path / "run.npz")) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    session_path = str(tmp_path / "run.convscope.npz")
    assert open_session(session_path).data["key"] == "mnist_dir"  # the app asks for the folder too
    assert train("--resume", session_path) == 2  # not the bundled set in its place
    assert "give its folder with --data mnist:DIR" in capsys.readouterr().err
    (hint,) = [line for line in err.splitlines() if line.startswith("Saved the run so far in")]
    command = shlex.split(hint.partition("continue it with: ")[2].partition(" (or open it in the app")[0])
    assert command[:4] == ["python", "-m", "engine", "train"]
    assert cli.main([*command[3:], "--no-progress"]) == 0  # the command as printed
    assert (tmp_path / "run.npz").exists()


def test_a_resumed_run_trains_with_a_variant_given(stopped_session, tmp_path, capsys):
    out = tmp_path / "broken.npz"
    assert cli.main(["train", *RUN, "--resume", stopped_session, "--variant", "broken_update", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", "--weights", str(out)]) == 0
    assert "trained with the backprop variant broken_update" in capsys.readouterr().out


def test_momentum_is_refused_when_resuming_an_adam_run(tmp_path, monkeypatch, capsys):
    interrupt_at(monkeypatch, step=1)
    assert train("--optimizer", "adam", "--epochs", "1", "--out", str(tmp_path / "run.npz")) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert train("--resume", str(tmp_path / "run.convscope.npz"), "--momentum", "0.5") == 2
    assert "--momentum is an SGD setting" in capsys.readouterr().err


def test_a_session_that_cannot_be_written_is_reported_not_claimed(tmp_path, monkeypatch, capsys):
    (tmp_path / "run.convscope.npz").mkdir()  # where the session goes: taken by a folder
    interrupt_at(monkeypatch, step=2)
    assert train("--epochs", "1", "--out", str(tmp_path / "run.npz")) == 130
    err = capsys.readouterr().err
    assert "stopped at step 2 of 8" in err
    assert f"error: could not save the run to {tmp_path / 'run.convscope.npz'}" in err
    assert "Saved" not in err and "--resume" not in err
    assert sorted(os.listdir(tmp_path)) == ["run.convscope.npz"] and not os.listdir(tmp_path / "run.convscope.npz")


def test_a_resumed_run_reports_the_steps_it_ran_and_all_its_epochs(tmp_path, monkeypatch, capsys):
    """It said "1 epoch (2 epochs in all) in 0.3 s" for the last 6 of epoch 2's 8 steps."""
    interrupt_at(monkeypatch, step=10)  # in epoch 2 of 2
    assert train("--epochs", "2", "--out", str(tmp_path / "run.npz")) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert train("--resume", str(tmp_path / "run.convscope.npz"), "--out", str(tmp_path / "done.npz")) == 0
    out = capsys.readouterr().out
    summary = out.strip().splitlines()[-2]
    assert summary.startswith("resumed at step 10 of 16: 6 steps in ") and " s (2 epochs in all): " in summary
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) == {"epochs", "train_loss", "val_accuracy", "images_per_second", "seconds", "epoch_seconds",
                           "out"}
    assert result["epochs"] == 2  # the weights' whole training


def test_train_help_says_what_its_seconds_count(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Its seconds are this invocation's (training and validation; after --resume, only the steps it ran)" \
        in help_text


def test_too_few_epochs_for_a_resumed_run_says_where_it_is(tmp_path, monkeypatch, capsys):
    interrupt_at(monkeypatch, step=11)  # in epoch 2 of 3
    assert train("--epochs", "3", "--out", str(tmp_path / "run.npz")) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert train("--resume", str(tmp_path / "run.convscope.npz"), "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "is at step 11, in epoch 2 of its 3, beyond --epochs 1: --epochs counts all of the run's epochs" in err
    assert "finished" not in err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's about the inf * 0 these weights make
def test_a_run_that_diverges_at_its_first_step_is_kept_with_the_weights_it_had(tmp_path, capsys):
    train_set, val = cli.load_data("bundled")
    trainer = cli.Trainer(cli.build("vgg7", seed=0), cli.limit(train_set, 512), val, cli.TrainConfig(epochs=1))
    for name in ("conv1.w", "conv2.w"):
        trainer.model.params()[name] *= 1e30  # every loss is non-finite: no step is ever accepted
    path = save_session(tmp_path / "wild.convscope.npz", Session.from_trainer(trainer, "bundled"))
    assert train("--resume", path, "--out", str(tmp_path / "wild.npz")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged at step 1") and "Traceback" not in err
    assert "Saved the run, with the weights it diverged with, in" in err


def test_ctrl_c_set_to_be_ignored_stays_ignored(tmp_path, monkeypatch, capsys):
    """A background job of a script (or nohup) ignores SIGINT: the run must not stop on one."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        interrupt_at(monkeypatch, step=3)
        assert train("--epochs", "1", "--out", str(tmp_path / "run.npz")) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (tmp_path / "run.npz").exists() and not (tmp_path / "run.convscope.npz").exists()
