"""Closing the window mid-work: the process always exits cleanly within 2 s.

Twenty start/close cycles, each in a fresh process running the real MainWindow offscreen: the child
starts some work the way a user does (training via the Start button, a slow download of full MNIST
from a local fake server, an experiment, conv-stepper playback, training and playback together),
waits until it is really under way, prints the moment it closes the window (answering Discard when
unsaved training or a running experiment makes the window ask first), and exits through the normal Qt
and Python shutdown. The test measures the time from that moment to the process's exit
(CLOCK_MONOTONIC is shared by all processes), the return code, and reads stderr: no
"QThread: Destroyed while thread is still running", no traceback, no thread that outlived the 2 s
join budget (the window's own check, unscaled). The 2 s for the whole process exit is the target on a
learner's machine; on an oversubscribed CI box it is stretched by load / cores (see budget_s), since
the interpreter's teardown then waits for CPU like everything else. Figures: docs/hardening.md.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXIT_BUDGET_S = 2.0
SCENARIOS = ("training", "download", "experiment", "stepper", "training+stepper")
CYCLES = 20

# The zygote imports everything once, then forks one child per cycle: a fresh process each time
# (its own QApplication, window, threads and interpreter shutdown) without paying the imports again.
ZYGOTE = r"""
import functools, json, os, sys, time
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest
import engine.data as engine_data
from app.main_window import MainWindow
from app.settings import Settings


class SlowResponse:
    # A fake MNIST server: 11 MB announced, 8 KB every 20 ms (a bad connection).
    def __init__(self, url, timeout):
        self.headers = {"Content-Length": str(11 * 2**20)}
    def read(self, n):
        time.sleep(0.02)
        return b"\0" * min(n, 8192)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False


def wait_for(condition, what, seconds=60.0):
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        QTest.qWait(20)


def child(scenario, folder):
    app = QtWidgets.QApplication(sys.argv[:1])
    engine_data.download_mnist = functools.partial(engine_data.download_mnist, dest_dir=folder + "/data",
                                                   opener=SlowResponse)
    window = MainWindow(Settings(folder + "/settings.ini"))
    window.show()
    QTest.qWait(50)
    panel = window.panel
    report = {"scenario": scenario}
    if "training" in scenario:
        panel.continue_check.setChecked(False)
        panel.epochs.setValue(100)
        QTest.mouseClick(panel.start_button, QtCore.Qt.MouseButton.LeftButton)
        wait_for(lambda: window.worker is not None and window.worker.steps_done >= 1, "a training step")
        report["steps"] = window.worker.steps_done
    if "stepper" in scenario:
        window.show_view("Conv stepper")
        stepper = window.findChild(QtWidgets.QWidget, "convStepper")
        stepper.play_button.click()
        first = stepper._index
        wait_for(lambda: stepper._index > first + 1, "stepper playback")
        report["frames"] = stepper._index - first
    if scenario == "download":
        window.request_dataset("download")
        wait_for(lambda: sum(window._download_done.values()) > 0, "download progress")
        report["bytes"] = sum(window._download_done.values())
    if scenario == "experiment":
        experiments = window.findChild(QtWidgets.QWidget, "experimentsPanel")
        window.show_view(next(t for t, v in window.views.items() if v is experiments))
        QTest.qWait(50)
        start = experiments.findChild(QtWidgets.QPushButton, "experimentStart")
        QTest.mouseClick(start, QtCore.Qt.MouseButton.LeftButton)
        wait_for(lambda: not start.isEnabled(), "the experiment to start")
        QTest.qWait(300)
    print("STARTED " + json.dumps(report), flush=True)
    # Unsaved training or a running experiment: the window asks first; the learner clicks Discard.
    prompts = []
    def discard():
        box = QtWidgets.QApplication.activeModalWidget()
        if isinstance(box, QtWidgets.QMessageBox) and box.isVisible():
            prompts.append(box.text())
            QTest.mouseClick(box.button(QtWidgets.QMessageBox.StandardButton.Discard), QtCore.Qt.MouseButton.LeftButton)
    answer = QtCore.QTimer(interval=20)
    answer.timeout.connect(discard)
    answer.start()
    print(f"CLOSE {time.monotonic()!r}", flush=True)
    window.close()
    answer.stop()
    print("PROMPTS " + json.dumps(prompts), flush=True)
    print(f"CLOSED {json.dumps(window.closed_cleanly)} {time.monotonic()!r}", flush=True)
    return 0


print("READY", flush=True)
for line in sys.stdin:
    scenario, folder = line.split()
    out, err = folder + "/stdout.txt", folder + "/stderr.txt"
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        sys.stdin.close()
        sys.exit(child(scenario, folder))  # a normal exit: Qt and Python shut down as usual
    _, status = os.waitpid(pid, 0)
    exited = time.monotonic()
    lines = open(out).read().splitlines()
    closed = [float(l.split()[1]) for l in lines if l.startswith("CLOSE ")]
    print(json.dumps({"exit_s": exited - closed[0] if closed else None,
                      "returncode": os.waitstatus_to_exitcode(status), "lines": lines,
                      "stderr": open(err).read()}), flush=True)
"""

NOISE = ("This plugin does not support propagateSizeHints()",)


@pytest.fixture(scope="module")
def zygote():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", ZYGOTE], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "READY"
    yield process
    process.stdin.close()
    process.wait(timeout=30)


def run_cycle(zygote, scenario: str, folder: Path) -> dict:
    """One forked child running ``scenario``: {"exit_s", "returncode", "lines", "stderr"}."""
    folder.mkdir()
    zygote.stdin.write(f"{scenario} {folder}\n")
    zygote.stdin.flush()
    result = json.loads(zygote.stdout.readline())
    result["stderr"] = "\n".join(line for line in result["stderr"].splitlines() if line.strip() not in NOISE)
    return result


def budget_s() -> float:
    """EXIT_BUDGET_S on an idle machine, stretched by how oversubscribed the cores are right now
    (the target is for a learner's machine, not for a CI box shared by several jobs)."""
    return EXIT_BUDGET_S * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


@pytest.mark.timeout(900)
def test_closing_mid_work_exits_cleanly_within_2s_every_time(zygote, tmp_path):
    results = []
    for cycle in range(CYCLES):
        scenario = SCENARIOS[cycle % len(SCENARIOS)]
        result = run_cycle(zygote, scenario, tmp_path / f"cycle{cycle}")
        results.append((scenario, result))
        assert any(line.startswith("STARTED") for line in result["lines"]), (scenario, result)
        prompts = json.loads(next(line for line in result["lines"] if line.startswith("PROMPTS "))[8:])
        losing = {"training": "training step", "training+stepper": "training step",
                  "experiment": "the experiment still running"}.get(scenario)
        assert len(prompts) == (losing is not None) and all(losing in text for text in prompts), (scenario, prompts)
        assert result["returncode"] == 0, (scenario, result)
        assert "QThread: Destroyed" not in result["stderr"], (scenario, result["stderr"])
        assert result["stderr"] == "", (scenario, result["stderr"])
        close_at = float(next(line.split()[1] for line in result["lines"] if line.startswith("CLOSE ")))
        closed = next(line.split() for line in result["lines"] if line.startswith("CLOSED"))
        result["join_s"] = float(closed[2]) - close_at  # window.close(): stop and join every thread
        assert closed[1] == "true", (scenario, result)  # every thread joined within the window's 2 s
        assert result["exit_s"] <= budget_s(), (scenario, result, os.getloadavg())
        # a cancelled download leaves no partial file behind (it would never be mistaken for a real
        # one either: only verified files are renamed from *.part)
        assert not list((tmp_path / f"cycle{cycle}").rglob("*.part")), scenario
    ran = [(s, r) for s, r in results if "join_s" in r]
    assert len(ran) == CYCLES
    summary = {s: [round(r["exit_s"], 2) for t, r in ran if t == s] for s in SCENARIOS}
    print(f"exit s after close, per scenario: {json.dumps(summary)}; "
          f"max {max(r['exit_s'] for _, r in ran):.2f} s, "
          f"max close/join {max(r['join_s'] for _, r in ran):.2f} s; load {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
