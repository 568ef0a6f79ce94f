"""`python -m engine bench`: VGG-7 training and inference speed, NumPy engine vs PyTorch.

What is timed, batch of ``--batch-size`` (64) float32 MNIST-shaped images ``(N, 28, 28, 1)``:

- train: forward + softmax cross-entropy + backward + SGD (momentum 0.9) update;
- infer: forward in inference mode.

When torch is importable the same network (same weights, NCHW, conv3x3 SAME + ReLU, avgpool,
dense tanh/arctan, softmax CE, input gradient not computed) runs in PyTorch with the same thread
count as NumPy's BLAS. Engine and torch are measured alternately within each round (engine,
torch, engine, torch, ...) so that load from other processes hits both alike; each figure is the
median over the rounds. Each round and the notes go to stderr as they come; a table is printed, and the
last line is JSON (a contract)::

    {"engine_train_ips": ..., "torch_train_ips": ..., "train_ratio": ..., "engine_infer_ips": ...,
     "torch_infer_ips": ..., "infer_ratio": ..., "threads": ...}

with the torch fields null when torch is missing. torch is imported lazily, only here.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import json
import math
import os
import statistics
import sys
import time

import numpy as np

import engine
from engine import parallel, presets
from engine.blas_kernels import cpu_facts, has_avx512
from engine.parallel import blas_kernel, blas_threads
from engine.optim import make_optimizer
from engine.trainer import MAX_BATCH

LR = 0.01          # small enough that repeated steps on one batch stay finite for minutes
MOMENTUM = 0.9     # the trainer's default
MAX_ROUNDS = 1000  # each round takes at least 2 steps of each task per contender
JSON_KEYS = ("engine_train_ips", "torch_train_ips", "train_ratio",
             "engine_infer_ips", "torch_infer_ips", "infer_ratio", "threads")


def keep_freed_memory():
    """Ask glibc's malloc to keep freed blocks for reuse (Linux; False elsewhere).

    By default glibc serves every block over 128 KiB with a fresh mmap and unmaps it on free,
    unless an earlier large free happened to raise that threshold: each new 3 MB activation then
    costs ~800 page faults. PyTorch allocates its activations anew every step, so its speed here
    varied by up to 2x with the allocation history of the process (the engine reuses workspaces
    and varied far less). Both contenders run with the same, steady-state setting.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 256 << 20) and libc.mallopt(m_trim_threshold, 1 << 30))


# --------------------------------------------------------------------------- the two contenders

def _batch(batch_size, seed=0):
    """A fixed random batch: x (N, 28, 28, 1) float32 in [0, 1), labels (N,) int64."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch_size, 28, 28, 1), dtype=np.float32)
    return x, rng.integers(0, 10, batch_size)


class EngineRunner:
    """VGG-7 in the NumPy engine with an SGD optimiser."""

    name = "engine"

    def __init__(self, x, labels):
        self.model = presets.build("vgg7")
        self.opt = make_optimizer("sgd", self.model, LR, LR, momentum=MOMENTUM)
        self.x, self.labels = x, labels

    def train_step(self):
        self.model.loss_and_grads(self.x, self.labels)
        self.opt.step()

    def infer(self):
        return self.model.infer(self.x)


class TorchRunner:
    """The same VGG-7 in PyTorch (NCHW), starting from the engine model's weights."""

    name = "torch"

    def __init__(self, torch, engine_model, x, labels):
        nn = torch.nn
        self.torch = torch
        convs = [engine_model.layer(f"conv{i}") for i in range(1, 5)]
        denses = [engine_model.layer(f"dense{i}") for i in range(1, 4)]
        tconvs = [nn.Conv2d(c.params["w"].shape[2], c.filters, c.kernel, padding=c.kernel // 2)
                  for c in convs]
        tdenses = [nn.Linear(*d.params["w"].shape) for d in denses]

        class Arctan(nn.Module):
            def forward(self, z):
                return torch.atan(z)

        self.net = nn.Sequential(
            tconvs[0], nn.ReLU(), tconvs[1], nn.ReLU(), nn.AvgPool2d(2),
            tconvs[2], nn.ReLU(), tconvs[3], nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
            tdenses[0], nn.Tanh(), tdenses[1], Arctan(), tdenses[2])
        with torch.no_grad():
            for conv, tconv in zip(convs, tconvs):
                # (kh, kw, C_in, C_out) -> (C_out, C_in, kh, kw)
                tconv.weight.copy_(torch.from_numpy(conv.params["w"].transpose(3, 2, 0, 1).copy()))
                tconv.bias.copy_(torch.from_numpy(conv.params["b"]))
            # The engine flattens (H, W, C), torch flattens (C, H, W): permute dense1's rows.
            h, w, c = engine_model.shapes[[l.name for l in engine_model.layers].index("flatten") - 1]
            w1 = denses[0].params["w"].reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
            for k, (dense, tdense) in enumerate(zip(denses, tdenses)):
                tdense.weight.copy_(torch.from_numpy((w1 if k == 0 else dense.params["w"]).T.copy()))
                tdense.bias.copy_(torch.from_numpy(dense.params["b"]))
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LR, momentum=MOMENTUM)
        self.x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())   # (N, 1, 28, 28)
        self.labels = torch.from_numpy(labels)

    def train_step(self):
        self.opt.zero_grad(set_to_none=True)
        self.torch.nn.functional.cross_entropy(self.net(self.x), self.labels).backward()
        self.opt.step()

    def infer(self):
        with self.torch.inference_mode():
            return self.net(self.x).numpy()


def _import_torch():
    """PyTorch for the side-by-side comparison, or None. Loaded only when the benchmark runs, by name,
    so nothing in engine/ imports torch (the engine itself never needs it)."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


# --------------------------------------------------------------------------- measuring

def _images_per_second(fn, batch_size, seconds):
    """Call ``fn`` repeatedly for at least ``seconds`` (and at least twice); images per second."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 2:
            return calls * batch_size / elapsed


def _busy_cpu_seconds():
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]                                  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


class ForeignLoad:
    """How many CPUs other processes kept busy while this one measured (a context manager).

    Figures taken while other programs compete for the cores are not comparable: with
    multi-threaded BLAS/OpenMP both contenders slow down many-fold, and not by the same factor.
    ``cpus`` is None where /proc/stat is unavailable.
    """

    def __enter__(self):
        self._start = (_busy_cpu_seconds(), time.process_time(), time.perf_counter())
        self.cpus = None
        return self

    def __exit__(self, *exc):
        busy0, own0, wall0 = self._start
        busy1 = _busy_cpu_seconds()
        if busy0 is not None and busy1 is not None:
            own, wall = time.process_time() - own0, time.perf_counter() - wall0
            self.cpus = max(0.0, (busy1 - busy0) - own) / max(wall, 1e-9)
        return False


def measure(runners, batch_size, seconds, rounds, log=None):
    """Alternate the runners within every round; return {(runner, task): median ips}.

    Each of the ``rounds * 2 * len(runners)`` windows lasts about ``seconds / (rounds * 2 *
    len(runners))``. One untimed call of each task first: buffers, caches and torch's kernel
    selection are set up outside the timing.
    """
    for runner in runners:
        runner.train_step()
        runner.infer()
    window = seconds / (rounds * 2 * len(runners))
    samples = {(r.name, task): [] for task in ("train", "infer") for r in runners}
    for i in range(rounds):
        for task in ("train", "infer"):
            for runner in runners:
                fn = runner.train_step if task == "train" else runner.infer
                samples[(runner.name, task)].append(_images_per_second(fn, batch_size, window))
        if log:
            log(f"round {i + 1}/{rounds}: " + ", ".join(
                f"{name} {task} {values[-1]:,.0f}" for (name, task), values in samples.items()))
    return {key: statistics.median(values) for key, values in samples.items()}


def results(medians, threads):
    """The JSON record (a contract): ips rounded to 0.1, ratios engine/torch to 0.001."""
    def ips(name, task):
        value = medians.get((name, task))
        return None if value is None else round(value, 1)

    record = {}
    for task in ("train", "infer"):
        engine_ips, torch_ips = ips("engine", task), ips("torch", task)
        record[f"engine_{task}_ips"] = engine_ips
        record[f"torch_{task}_ips"] = torch_ips
        record[f"{task}_ratio"] = None if torch_ips is None else round(engine_ips / torch_ips, 3)
    record["threads"] = threads
    return {key: record[key] for key in JSON_KEYS}


def table(record, batch_size):
    """Human-readable summary of :func:`results`."""
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    lines = [f"VGG-7, batch {batch_size}, float32, {record['threads']} thread(s); images per second "
             "(median over rounds)",
             f"{'':<10}{'engine':>12}{'torch':>12}{'ratio':>10}"]
    for task in ("train", "infer"):
        engine_ips, torch_ips = record[f"engine_{task}_ips"], record[f"torch_{task}_ips"]
        lines.append(f"{task:<10}{fmt(engine_ips, ',.0f'):>12}{fmt(torch_ips, ',.0f'):>12}"
                     f"{fmt(record[f'{task}_ratio'], '.2f'):>10}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line

def add_arguments(parser):
    """Add the benchmark's options to an argparse (sub)parser."""
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--seconds", type=float, default=24.0,
                        help="total measuring time, shared by all rounds and contenders (default 24); each "
                             "contender still takes at least 2 steps of each task per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds, median taken (default 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for the engine (one batch shard each) and for torch "
                             "(default: BLAS's thread count at start, normally one per core)")
    parser.add_argument("--no-torch", action="store_true", help="measure the engine only")
    return parser


def run(args):
    """Run the benchmark described by parsed ``args``; returns the exit status."""
    # The upper bounds: a thread per CPU (more only makes both contenders fight over the cores and
    # reports a thread count that did not run), a batch the trainer would take, rounds that end.
    bounds = (("--batch-size", args.batch_size, MAX_BATCH, "as in training"),
              ("--rounds", args.rounds, MAX_ROUNDS, ""),
              ("--threads", args.threads, parallel.usable_cpus(), "the CPUs this process may use"))
    problems = [f"{flag} must be between 1 and {top}{f' ({why})' if why else ''}, got {value}"
                for flag, value, top, why in bounds if value is not None and not 1 <= value <= top]
    if not 0 <= args.seconds < math.inf:  # NaN too: a round would never end
        problems.append(f"--seconds must be a finite number, at least 0, got {args.seconds}")
    if problems:
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 2
    # say: what was measured and how (stdout); tell: progress and notes (stderr), so that `bench > log`
    # shows the rounds as they go. --json leaves the JSON line alone.
    say = (lambda *a: None) if args.json else print
    tell = (lambda *a: None) if args.json else functools.partial(print, file=sys.stderr)
    threads = args.threads or blas_threads()
    with parallel.using_threads(threads):
        return _compare(args, threads, say, tell)


def _compare(args, threads, say, tell):
    """The measurement of :func:`run` with the engine already on ``threads`` threads."""
    kernel = blas_kernel()
    bounds, concurrent = parallel.shard_plan(args.batch_size)
    chosen = " (OPENBLAS_CORETYPE set by the engine)" if engine.BLAS_KERNEL_OVERRIDE else ""
    say(f"NumPy {np.__version__}, BLAS kernel {kernel or 'unknown'}{chosen}; engine on {threads} thread(s): "
        f"batches split into {len(bounds)} shard(s){'' if concurrent else ' run one after the other'}, "
        f"{blas_threads()} BLAS thread each")
    if keep_freed_memory():
        say("glibc malloc keeps freed blocks (no page faults for new tensors), for both contenders")
    if kernel in ("Haswell", "Zen") and has_avx512(cpu_facts()[1]):
        tell(f"note: this CPU has AVX-512 but OpenBLAS picked its {kernel} (AVX2) kernels; "
            "OPENBLAS_CORETYPE=SkylakeX selects the AVX-512 ones (see docs/benchmarks.md)")

    x, labels = _batch(args.batch_size)
    runners = [EngineRunner(x, labels)]
    torch = None if args.no_torch else _import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
        runners.append(TorchRunner(torch, runners[0].model, x, labels))
        # Same weights, same function: the logits must agree before anything is timed.
        gap = float(np.abs(runners[0].infer() - runners[1].infer()).max())
        say(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
            f"max |logit difference| engine vs torch: {gap:.1e}")
        if not gap < 1e-3:
            print(f"bench: the torch network does not compute what the engine does (gap {gap})",
                  file=sys.stderr)
            return 1
    elif not args.no_torch:
        tell("note: torch is not installed: engine only")
    with ForeignLoad() as load:
        medians = measure(runners, args.batch_size, args.seconds, args.rounds, log=tell)
    record = results(medians, threads)
    say(table(record, args.batch_size))
    if load.cpus is not None:
        busy = load.cpus > 0.1
        line = (f"other processes kept {load.cpus:.2f} CPU(s) busy on average during the measurement"
                + (" (results are not representative; measure on an idle machine)" if busy else ""))
        if busy and args.json:  # stdout stays the JSON line; a busy machine is still reported
            print(line, file=sys.stderr)
        else:
            say(line)
    print(json.dumps(record))
    return 0


def main(argv=None):
    """``python -m engine.bench``: the same as ``python -m engine bench``, its error handling included
    (an out-of-memory batch, a closed pipe, a full disk: one line, no traceback)."""
    from engine import cli

    return cli.main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
