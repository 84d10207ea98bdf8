"""Speed of our training iteration against the authors' PyTorch code (6b5d/mmali), timed in lock-step (issue 14).

    python tools/benchmark_vs_authors.py --reference_dir DIR [--torch_python PY]
        [--configs mnist_svhn,multimnist_m2,multimnist_m4] [--windows 5] [--steps 20] [--warmup 3]
        [--pool_iterations 8] [--torch_threads 0] [--data_dir DIR] [--svhn_dir DIR]

Setup (once). Nothing of theirs goes into this repository, and torch is a dependency of this tool only: never of
the mmali_tf package or its tests, and it lives in a venv of its own.

1. Their code, at the commit our golden fixtures use, exported to a folder outside any repository::

       MIRROR=...      # a bare git directory of github.com/6b5d/mmali (a clone, or the search tool's fetch)
       mkdir -p /work/reference/mmali
       git --git-dir=$MIRROR archive 3b500a7 | tar -x -C /work/reference/mmali
       git --git-dir=$MIRROR rev-parse 3b500a7 > /work/reference/mmali/COMMIT   # optional: the header shows it

   A git checkout of theirs works too; the header then shows its commit and whether it has local changes.
2. torch (the CPU build) for their side::

       python3 -m venv /work/torchvenv && /work/torchvenv/bin/pip install torch==2.13.0 numpy==2.4.6

   Nothing else: no torchvision, tensorboard, scipy, scikit-image, gensim or nltk (see "Their side").
3. Data: MNIST ``mnist.npz`` in ``--data_dir``; for ``mnist_svhn`` the synthetic SVHN stand-in in ``--svhn_dir``
   (``python tools/make_svhn_standin.py --out_dir ../data/svhn_standin``). Defaults as ``tools/benchmark_train.py``:
   $MMALI_DATA_DIR, else ``../shared/data`` and ``../data/svhn_standin`` beside the repository.

Configurations (one iteration = one D step and one G step on 4 fresh paired batches, and the EMA update):
``mnist_svhn`` (README MNIST-SVHN, the SVHN side being the stand-in), ``multimnist_m2`` and ``multimnist_m4``
(README MultiMNIST with 2 / 4 rotated-MNIST modalities); ours from ``flags/<config>.cfg``, theirs from their README
command line; both with ``--batch_size 64``.

Protocol. Per configuration the parent starts two warm worker processes, ours (this interpreter, ``--worker=ours``)
and theirs (``--torch_python``, ``--worker=theirs``); they talk to it in JSON lines over their stdin / stdout. Our
worker draws a pool of ``--pool_iterations`` iterations of paired batches (4 x 64 tuples each: d_unimodal, d_joint,
g_unimodal, g_joint) from our pairing of the real images, the tuples our input pipeline gives steps 0, 1, ..., and
writes it to a temporary file; their worker reads the same images. Both convert the pool to float tensors up front
and cycle through it, so data loading is not timed. Each worker runs ``--warmup`` untimed iterations (tracing,
allocation), then the parent alternates timed windows of ``--steps`` iterations: ours then theirs in odd windows,
theirs then ours in even ones, ``--windows`` each, so that both see the same machine load while the other one
waits idle. A window's time is the wall time of its iterations in the worker (``time.perf_counter``), ending when
the last iteration's losses are read back as Python floats (their loop body does ``.item()`` every iteration).

Output: a header (date, CPU model, SIMD flags of interest, cores, versions, their commit), then per configuration
the parameter counts and loss-term counts of both sides (they must agree, else the run stops), both sides' thread
settings, the per-window it/s and CPU seconds per iteration (the worker's, all threads), how many cores other
processes kept busy during each window (from ``/proc/stat``, less the worker's own CPU time; hypervisor steal
included; a warning follows the table where that averages over 0.2 cores), the median it/s (min-max), the ratio
ours/theirs (of the medians, and the median of the per-window-pair ratios), and the hours for 250,000 iterations at
each median rate; a summary table at the end. No reference figures are built in: every number printed is measured
by the run.

Our side: ``our_config`` gives the config the trainer would use for the flagfile (execution settings "auto" for this
machine: on a CPU-only machine no XLA and the thread policy of ``mmali_tf.distribution``); the model is built by
``mmali_tf.training.build_model`` and its ``train_step`` runs in one ``tf.function`` (as Keras' ``fit`` runs it:
no autograph, XLA as configured) on in-memory batches. This worker never imports torch.

Their side: their own statements, executed from their training script, never copied into this repository. The
worker parses ``train_mmali_mnist_svhn.py`` / ``train_mmali_multimnist.py`` and runs (a) its module-level imports
except torchvision, ``torch.utils.tensorboard`` and ``datasets`` (data loading and logging only), (b) its
module-level constants (``key_mnist``, ``mnist_img_shape``, ``device``, ...), with ``opt`` parsed by their
``options.parser`` from the README command line plus ``--batch_size``, (c) ``main()``'s statements that build the
model, the EMA copy and the two Adams (from ``if opt.deterministic:`` to ``optimizer_D = ...``) and
``model.train()``, and (d) per iteration the body of their ``for n_iter`` loop, with ``paired_dataloader`` an
iterator over the pool, less the per-iteration ``print``, the ``writer.add_scalars`` calls and the
checkpoint / sample / evaluation blocks (``n_iter % opt.save_interval``, ``opt.eval_interval``); the header of each
configuration lists the line ranges run and left out. Their ``utils.py`` imports scipy and scikit-image at the top
for its CCA helpers (CUB evaluation only): where they are not installed, ``scipy.linalg.eig`` and
``skimage.filters.threshold_yen`` are stubbed in ``sys.modules`` (a stub raises if called) and the output says so.
Their files are not edited. ``torch.set_num_threads`` is ``--torch_threads`` (0 = the usable cores); torch's
inter-op pool keeps its default. This worker never imports TensorFlow or mmali_tf.

Every failure (bad arguments, their tree missing, torch missing, a worker's error or death, differing parameter
counts) ends with one ``error:`` line and a non-zero exit status (2 for arguments, 1 otherwise), and the workers are
killed.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import importlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import types

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.path.insert(1, REPO)  # our worker imports mmali_tf from this checkout

import benchmark_train as bench  # noqa: E402  (machine facts, data loading, formatting; imports no TensorFlow)

CONFIGS = ("mnist_svhn", "multimnist_m2", "multimnist_m4")
TITLES = {"mnist_svhn": "MNIST-SVHN, README config (SVHN = synthetic stand-in, not genuine SVHN)",
          "multimnist_m2": "MultiMNIST M=2, README config", "multimnist_m4": "MultiMNIST M=4, README config"}
TRAINING_ITERATIONS = 250_000  # the paper's and both README commands' --max_iter
# The 4 paired batches of an iteration, in the order both loops consume them (our mmali_tf.data.pipeline.CALLS;
# their four next(paired_dataloader) per iteration).
CALLS = ("d_unimodal", "d_joint", "g_unimodal", "g_joint")
DEFAULT_TORCH_PYTHON = "/work/torchvenv/bin/python"
BUSY_MACHINE_CORES = 0.2  # mean cores used by other processes during the windows above which the table warns

# Their training script and README command line (their README, MultiMNIST with --n_modalities 2 / 4).
_README_MULTIMNIST = ["--max_iter", "250000", "--style_dim", "10", "--latent_dim", "20", "--lambda_unimodal", "0.1"]
THEIR_RUNS = {
    "mnist_svhn": ("train_mmali_mnist_svhn.py",
                   ["--max_iter", "250000", "--style_dim", "10", "--latent_dim", "20", "--use_all",
                    "--lambda_unimodal", "0.1", "--lambda_x_rec", "0.05", "--lambda_s_rec", "0.05",
                    "--lambda_c_rec", "0.05", "--joint_rec", "--name", "exp_mnist_svhn"]),
    "multimnist_m2": ("train_mmali_multimnist.py", _README_MULTIMNIST + ["--n_modalities", "2", "--name", "jsd2_mod2"]),
    "multimnist_m4": ("train_mmali_multimnist.py", _README_MULTIMNIST + ["--n_modalities", "4", "--name", "jsd2_mod4"]),
}
THEIR_REQUIRED_FILES = ("options.py", "utils.py", "models/__init__.py", "models/mmali/factor2.py", "models/mnist.py",
                        "models/svhn.py", "models/mnist_svhn.py", "models/multimnist.py",
                        "train_mmali_mnist_svhn.py", "train_mmali_multimnist.py")


class UsageError(Exception):
    """Bad arguments or setup: exit status 2."""


class BenchmarkError(Exception):
    """A failure during the run (a worker's error or death, differing models): exit status 1."""


class Terminated(Exception):
    """SIGTERM: raised in the main thread so that the workers' clean-up runs; exit status 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


# ================================================================================================ statistics, tables
def window_rates(steps: int, windows: list[dict]) -> list[float]:
    """Iterations per second of each window (``{"seconds": wall time of ``steps`` iterations}``)."""
    return [steps / w["seconds"] for w in windows]


def hours_for(iterations: int, its: float) -> float:
    """Hours that ``iterations`` take at ``its`` iterations per second."""
    return iterations / its / 3600.0


def compare(steps: int, ours: list[dict], theirs: list[dict]) -> dict:
    """Medians, ratios and training hours of one configuration from the two sides' windows (equal counts, paired
    by position: window i of ours and window i of theirs ran back to back)."""
    if not ours or len(ours) != len(theirs):
        raise ValueError(f"need the same number (>= 1) of windows per side, got {len(ours)} and {len(theirs)}")
    ours_its, theirs_its = window_rates(steps, ours), window_rates(steps, theirs)
    ours_median, theirs_median = statistics.median(ours_its), statistics.median(theirs_its)
    return {"ours_its": ours_its, "theirs_its": theirs_its, "ours_median": ours_median, "theirs_median": theirs_median,
            "ratio_of_medians": ours_median / theirs_median,
            "median_pair_ratio": statistics.median(o / t for o, t in zip(ours_its, theirs_its)),
            "ours_hours": hours_for(TRAINING_ITERATIONS, ours_median),
            "theirs_hours": hours_for(TRAINING_ITERATIONS, theirs_median)}


def window_table(steps: int, ours: list[dict], theirs: list[dict]) -> list[str]:
    """The per-window lines, the medians and the hours of one configuration (the windows as in :func:`compare`,
    with ``"cpu_seconds"``: the worker's CPU time over the window, all threads, and optionally ``"others_cores"``:
    the cores that other processes kept busy meanwhile, on average)."""
    def others(window):
        value = window.get("others_cores")
        return f"{value:.2f}" if value is not None else "-"

    c = compare(steps, ours, theirs)
    lines = [f"  {'window':>6s} {'ours it/s':>10s} {'theirs it/s':>12s} {'ours/theirs':>12s} "
             f"{'ours CPU-s/it':>14s} {'theirs CPU-s/it':>16s} {'others (cores) ours / theirs':>30s}"]
    for i, (o, t, wo, wt) in enumerate(zip(c["ours_its"], c["theirs_its"], ours, theirs), 1):
        lines.append(f"  {i:6d} {o:10.2f} {t:12.2f} {o / t:11.2f}x {wo['cpu_seconds'] / steps:14.3f} "
                     f"{wt['cpu_seconds'] / steps:16.3f} {others(wo) + ' / ' + others(wt):>30s}")
    lines.append(f"  median it/s (min-max): ours {bench.spread(c['ours_its'])}, theirs {bench.spread(c['theirs_its'])}")
    lines.append(f"  ours/theirs: {c['ratio_of_medians']:.2f}x (ratio of the medians), "
                 f"{c['median_pair_ratio']:.2f}x (median of the per-window-pair ratios)")
    lines.append(f"  {TRAINING_ITERATIONS:,} iterations at the median rate: ours {c['ours_hours']:.2f} h, "
                 f"theirs {c['theirs_hours']:.2f} h")
    busy = [w["others_cores"] for w in ours + theirs if w.get("others_cores") is not None]
    if busy and statistics.mean(busy) > BUSY_MACHINE_CORES:
        lines.append(f"  WARNING: other processes kept {statistics.mean(busy):.2f} cores busy on average (up to "
                     f"{max(busy):.2f}) during these windows: these are not the figures of a quiet machine")
    return lines


def summary_table(steps: int, results: dict[str, tuple[list[dict], list[dict]]]) -> list[str]:
    """One line per configuration: median it/s of both sides, their ratio, hours for the training run."""
    header = (f"{'config':14s} {'ours it/s':>10s} {'theirs it/s':>12s} {'ours/theirs':>12s} "
              f"{'pair ratio':>11s} {'ours h':>8s} {'theirs h':>9s}")
    lines = [header, "-" * len(header)]
    for name, (ours, theirs) in results.items():
        c = compare(steps, ours, theirs)
        lines.append(f"{name:14s} {c['ours_median']:10.2f} {c['theirs_median']:12.2f} {c['ratio_of_medians']:11.2f}x "
                     f"{c['median_pair_ratio']:10.2f}x {c['ours_hours']:8.2f} {c['theirs_hours']:9.2f}")
    lines.append(f"(median it/s over the windows; h = hours for {TRAINING_ITERATIONS:,} iterations at that rate)")
    return lines


# ================================================================================================ parent: checks
def check_reference_dir(path: str | None) -> None:
    """Raise :class:`UsageError` unless ``path`` is a work tree of their repository."""
    if not path:
        raise UsageError("--reference_dir is required: a work tree of 6b5d/mmali (setup: see this tool's docstring)")
    if not os.path.isdir(path):
        raise UsageError(f"--reference_dir {path}: no such directory (setup: see this tool's docstring)")
    missing = [f for f in THEIR_REQUIRED_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UsageError(f"--reference_dir {path} is not a work tree of 6b5d/mmali (missing {shown})")


def probe_torch(python: str) -> dict:
    """Versions of the torch interpreter ``python``; :class:`UsageError` if it is missing or has no torch."""
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise UsageError(f"--torch_python {python}: no such executable (setup: see this tool's docstring)")
    code = ("import json, platform, numpy, torch; print(json.dumps({'python': platform.python_version(), "
            "'torch': torch.__version__, 'numpy': numpy.__version__}))")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"--torch_python {python} cannot import torch and numpy ({last})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def our_versions() -> dict:
    """Versions of this interpreter's packages (read from their metadata: TensorFlow is not imported here)."""
    def version(*names):
        for name in names:
            try:
                return importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        return "not installed"

    return {"python": platform.python_version(), "tensorflow": version("tensorflow", "tensorflow-cpu"),
            "keras": version("keras"), "numpy": version("numpy")}


def their_commit(path: str) -> str:
    """Their commit: of a git checkout (with "+ local changes" if any), else the ``COMMIT`` file of the setup."""
    if os.path.exists(os.path.join(path, ".git")):
        head = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain"], capture_output=True, text=True)
        if head.returncode == 0:
            return head.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")
    marker = os.path.join(path, "COMMIT")
    if os.path.isfile(marker):
        with open(marker) as f:
            return f.read().strip() + " (from COMMIT)"
    return "unknown (no git checkout, no COMMIT file)"


def tree_fingerprint(path: str) -> str:
    """sha256 (16 hex digits) over the relative paths and contents of their ``*.py`` files: edits show up here."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs[:] = sorted(d for d in dirs if d != ".git" and d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode() + b"\0")
            with open(full, "rb") as f:
                digest.update(f.read() + b"\0")
    return digest.hexdigest()[:16]


# ================================================================================================ parent: workers
def machine_busy_seconds() -> float | None:
    """CPU seconds that all processes of the machine have used since boot (``/proc/stat``; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # guest time is already counted in user / nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


class Worker:
    """A warm worker process: JSON-line commands on its stdin, JSON-line replies on its stdout, stderr in a log."""

    def __init__(self, side: str, config: str, argv: list[str], log_path: str):
        self.side, self.config, self.log_path = side, config, log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                         cwd=REPO, start_new_session=True)

    def request(self, message: dict | None = None) -> dict:
        """Send ``message`` (if any) and return the reply; :class:`BenchmarkError` on an error reply or death."""
        try:
            if message is not None:
                self.proc.stdin.write(json.dumps(message) + "\n")
                self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.proc.wait()
            raise BenchmarkError(f"{self.side} worker ({self.config}) exited with status {code}: "
                                 f"{self.last_log_line()}")
        reply = json.loads(line)
        if "error" in reply:
            raise BenchmarkError(f"{self.side} worker ({self.config}): {reply['error']}")
        return reply

    def last_log_line(self) -> str:
        try:
            with open(self.log_path) as f:
                lines = [x.strip() for x in f if x.strip()]
        except OSError:
            lines = []
        return lines[-1] if lines else f"no message (log {self.log_path})"

    def close(self) -> None:
        """Ask the worker to quit; kill it if it has not within 10 s."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_config(name: str, args, workdir: str) -> tuple[list[dict], list[dict]]:
    """Start both workers for configuration ``name``, check that they built the same model, run the windows in
    lock-step and print the configuration's block. Returns (our windows, their windows)."""
    job = {"config": name, "batch_size": args.batch_size, "warmup": args.warmup,
           "pool_iterations": args.pool_iterations, "pool_path": os.path.join(workdir, f"pool_{name}.npz"),
           "dirs": {"mnist": args.data_dir, "svhn": args.svhn_dir},
           "reference_dir": os.path.abspath(args.reference_dir), "torch_threads": args.torch_threads}
    me = os.path.abspath(__file__)
    workers = []
    try:
        ours = Worker("ours", name, [sys.executable, me, "--worker=ours", "--job", json.dumps(job)],
                      os.path.join(workdir, f"ours_{name}.log"))
        workers.append(ours)
        ours_info = ours.request()["ready"]  # ours writes the pool first, so theirs starts after it
        theirs = Worker("theirs", name, [args.torch_python, me, "--worker=theirs", "--job", json.dumps(job)],
                        os.path.join(workdir, f"theirs_{name}.log"))
        workers.append(theirs)
        theirs_info = theirs.request()["ready"]
        print_config_header(name, args, ours_info, theirs_info)
        check_same_model(name, ours_info, theirs_info)
        windows = {"ours": [], "theirs": []}
        for w in range(args.windows):
            for worker in (ours, theirs) if w % 2 == 0 else (theirs, ours):
                busy_before = machine_busy_seconds()
                window = worker.request({"run": args.steps})["window"]
                busy_after = machine_busy_seconds()
                if busy_before is not None and busy_after is not None:
                    others = busy_after - busy_before - window["cpu_seconds"]
                    window["others_cores"] = max(0.0, others) / window["seconds"]
                windows[worker.side].append(window)
        for worker in workers:
            worker.close()
    finally:
        for worker in workers:
            worker.kill()
    for side, side_windows in windows.items():
        if not all(math.isfinite(w["d_loss"]) and math.isfinite(w["g_loss"]) for w in side_windows):
            print(f"  WARNING: {side} reported a non-finite loss (speed of NaN arithmetic may differ)")
    for line in window_table(args.steps, windows["ours"], windows["theirs"]):
        print(line)
    print(flush=True)
    return windows["ours"], windows["theirs"]


def print_config_header(name: str, args, ours: dict, theirs: dict) -> None:
    print(f"== {name}: {TITLES[name]}; batch {args.batch_size}, {len(CALLS)} paired batches per iteration")
    print(f"  data (same images for both): pool of {args.pool_iterations} iterations x {len(CALLS)} x "
          f"{args.batch_size} tuples from our pairing; " + "; ".join(f"{m}: {s}" for m, s in ours["sources"].items()))
    print(f"  ours: flags/{name}.cfg, {ours['model']}; XLA {'on' if ours['xla'] else 'off'}, "
          f"{ours['threads']} {ours['thread_env'] or ''}".rstrip())
    print(f"  theirs: {theirs['script']} {' '.join(theirs['argv'])}; device {theirs['device']}; "
          f"torch threads {theirs['threads']['intra_op']} (set_num_threads), inter-op {theirs['threads']['inter_op']}, "
          f"CPU capability {theirs['threads']['cpu_capability']} {theirs['threads']['env'] or ''}".rstrip())
    print(f"  theirs ran: model construction lines {theirs['construction_lines']}; loop body lines "
          f"{theirs['loop_lines']}, left out {theirs['left_out'] or 'nothing'}")
    if theirs["stubs"]:
        print(f"  theirs: stubbed missing modules {', '.join(theirs['stubs'])} (imported by their utils.py, used "
              "only by CCA for CUB; a stub raises if called)")
    print(f"  parameters: generators ours {ours['generators']:,} / theirs {theirs['generators']:,}, "
          f"discriminators ours {ours['discriminators']:,} / theirs {theirs['discriminators']:,}; loss terms "
          f"D ours {ours['d_terms']} / theirs {theirs['d_terms']}, G ours {ours['g_terms']} / theirs "
          f"{theirs['g_terms']}", flush=True)


def check_same_model(name: str, ours: dict, theirs: dict) -> None:
    """:class:`BenchmarkError` unless both sides have the same parameter counts and loss-term counts."""
    keys = ("generators", "discriminators", "d_terms", "g_terms")
    differ = [k for k in keys if ours[k] != theirs[k]]
    if differ:
        raise BenchmarkError(f"{name}: the two sides differ in {', '.join(differ)} "
                             f"(ours { {k: ours[k] for k in keys} }, theirs { {k: theirs[k] for k in keys} }); "
                             "they would not time the same computation")


def check_setup(args) -> dict:
    """:class:`UsageError` unless their tree, the torch interpreter and the data folders are there; returns the
    torch interpreter's versions."""
    check_reference_dir(args.reference_dir)
    torch_versions = probe_torch(args.torch_python)
    for directory, needed in ((args.data_dir, True), (args.svhn_dir, "mnist_svhn" in args.configs.split(","))):
        if needed and not os.path.isdir(directory):
            raise UsageError(f"data directory {directory} does not exist (see --data_dir / --svhn_dir)")
    return torch_versions


def run_benchmark(args, torch_versions: dict) -> int:
    """Print the header, time every configuration of ``args.configs``, print the summary."""
    configs = [c for c in args.configs.split(",") if c]
    facts = bench.cpu_facts()
    mine = our_versions()
    print(f"mmali_tf vs the authors' PyTorch code, training iterations in lock-step, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"CPU: {facts['model']}; {facts['cpus']} CPUs ({facts['usable']} usable); SIMD "
          + ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in facts["simd"].items()))
    print(f"ours: python {mine['python']}, tensorflow {mine['tensorflow']}, keras {mine['keras']}, "
          f"numpy {mine['numpy']}; mmali_tf commit {bench.git_commit()}")
    print(f"theirs: python {torch_versions['python']}, torch {torch_versions['torch']}, "
          f"numpy {torch_versions['numpy']}; "
          f"6b5d/mmali commit {their_commit(args.reference_dir)} at {os.path.abspath(args.reference_dir)} "
          f"(*.py fingerprint {tree_fingerprint(args.reference_dir)})")
    print(f"protocol: two warm workers per config, {args.warmup} warm-up iterations each, then {args.windows} windows "
          f"of {args.steps} iterations per side, alternating (ours first in odd windows, theirs first in even ones); "
          f"data loading not timed")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print()
    results = {}
    with tempfile.TemporaryDirectory(prefix="mmali_vs_authors_") as workdir:
        for name in configs:
            results[name] = run_config(name, args, workdir)
    for line in summary_table(args.steps, results):
        print(line)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


# ================================================================================================ workers
def serve(side: str, job: dict) -> int:
    """A worker's life: build and warm up, reply ``{"ready": info}``, then time ``{"run": n}`` windows until
    ``{"quit": true}`` or the end of stdin; on any exception reply ``{"error": message}`` and exit 1."""
    channel = os.fdopen(os.dup(1), "w")  # replies only: anything else written to stdout goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    try:
        info, run = (start_ours if side == "ours" else start_theirs)(job)
        foreign = "torch" if side == "ours" else "tensorflow"
        if foreign in sys.modules:
            raise RuntimeError(f"the {side} worker imported {foreign}")
        send({"ready": info})
        for line in sys.stdin:
            message = json.loads(line)
            if message.get("quit"):
                break
            steps = int(message["run"])
            started, cpu_started = time.perf_counter(), bench.cpu_seconds()
            losses = run(steps)
            send({"window": {"seconds": time.perf_counter() - started,
                             "cpu_seconds": bench.cpu_seconds() - cpu_started, **losses}})
        return 0
    except Exception as exc:  # reported to the parent as one line; the traceback goes to the worker's log
        traceback.print_exc()
        try:
            send({"error": f"{type(exc).__name__}: {exc}"})
        except OSError:
            pass
        return 1


# ------------------------------------------------------------------------------------------------ ours
def our_config(preset: str, batch_size: int):
    """Our ``ExperimentConfig`` for ``flags/<preset>.cfg`` with ``--batch_size=batch_size``, exactly as
    ``python -m mmali_tf.train --flagfile=flags/<preset>.cfg`` resolves it on this machine (execution settings
    "auto": no XLA and the thread policy of ``mmali_tf.distribution`` on a CPU-only machine).

    The only place here that knows the config API: swap this function when that API changes."""
    from absl import flags

    from mmali_tf import train

    flags.FLAGS(["benchmark_vs_authors", f"--flagfile={os.path.join(REPO, 'flags', preset + '.cfg')}",
                 "--workdir=unused", f"--batch_size={batch_size}"])
    return train.config_from_flags()


def draw_pool(images: dict, pairs: dict, batch_size: int, seed: int, iterations: int) -> dict[str, list]:
    """``{call: [uint8 [iterations, batch_size, H, W, C] per modality, in the config's order]}``: for pool
    position i the tuples our pipeline feeds step i (``step_tuple_indices``), dealt to the calls in order."""
    import numpy as np

    from mmali_tf.data.pipeline import step_tuple_indices

    names = list(pairs)
    num_tuples = len(pairs[names[0]])
    ids = np.stack([step_tuple_indices(num_tuples, seed, i, len(CALLS) * batch_size) for i in range(iterations)])
    ids = ids.reshape(iterations, len(CALLS), batch_size)
    return {call: [images[n][pairs[n][ids[:, c]]] for n in names] for c, call in enumerate(CALLS)}


def start_ours(job: dict):
    """Build our model as the trainer does, write the shared batch pool, warm up. Returns (info, run)."""
    from mmali_tf import flags_common  # noqa: F401  (imports TensorFlow without its start-up banner)

    import numpy as np
    import tensorflow as tf

    from mmali_tf import distribution, training
    from mmali_tf.data import pipeline
    from mmali_tf.model import count_parameters

    if CALLS != tuple(pipeline.CALLS):
        raise RuntimeError(f"the pool's calls {CALLS} differ from our pipeline's {pipeline.CALLS}")
    config = our_config(job["config"], job["batch_size"])
    distribution.configure_threads(config.train)  # before TensorFlow runs any op, as training.run does
    distribution.configure_devices(config.train)
    strategy = distribution.make_strategy(config.train)
    images, pairs, sources = bench.load_training_data(config, job["dirs"], random_if_absent=False)
    pool = draw_pool(images, pairs, config.train.batch_size, config.data.seed, job["pool_iterations"])
    np.savez(job["pool_path"], **{f"{call}/{m}": arr for call, arrays in pool.items() for m, arr in enumerate(arrays)})
    names = config.model.names
    batches = [{call: {n: tf.constant(pool[call][m][i].astype(np.float32) / 255.0) for m, n in enumerate(names)}
                for call in CALLS} for i in range(job["pool_iterations"])]

    model = training.build_model(config, strategy)
    # What Keras' fit runs for one step (no autograph, XLA as compiled); the batches are already tensors.
    step = tf.function(model.train_step, jit_compile=config.train.xla, autograph=False)
    positions = itertools.cycle(range(len(batches)))

    def run(iterations: int) -> dict:
        for _ in range(iterations):
            logs = step(batches[next(positions)])
        return {"d_loss": float(logs["d_loss"]), "g_loss": float(logs["g_loss"])}  # mean over the steps so far

    run(job["warmup"])
    d_terms, g_terms = model.loss_term_names()
    report = bench.thread_report(tf)
    info = {"generators": count_parameters(model.generators), "discriminators": count_parameters(model.discriminators),
            "d_terms": len(d_terms), "g_terms": len(g_terms), "xla": config.train.xla,
            "threads": distribution.describe_threads(), "thread_env": report["env"],
            "model": f"modalities {', '.join(names)}", "sources": sources}
    return info, run


# ------------------------------------------------------------------------------------------------ theirs
SKIPPED_IMPORTS = ("torchvision", "torch.utils.tensorboard", "datasets")  # their data loading and logging only
SCRIPT_CONSTANTS = {"mnist_img_shape", "svhn_channels", "key_template", "key_mnist", "key_svhn", "device"}
# Imported at the top of their utils.py, used only by its CCA helpers (CUB evaluation).
OPTIONAL_IMPORTS = {"scipy.linalg": ("eig",), "skimage.filters": ("threshold_yen",)}


@dataclasses.dataclass
class TheirScript:
    """The parts of their training script that the worker runs, compiled with their file's line numbers."""

    imports: types.CodeType
    constants: types.CodeType
    construction: types.CodeType
    loop_body: types.CodeType
    construction_lines: str  # e.g. "160-207, 224"
    loop_lines: str
    left_out: str  # statements of the loop body not run, with their lines


def _line_ranges(body: list[ast.stmt], chosen: list[int], label=lambda node: "") -> str:
    """"a-b, c-d" for the statements ``body[i]``, i in ``chosen``: consecutive statements with the same label
    (e.g. why they are left out) merge into one range, followed by " (label)" where the label is not empty."""
    runs = []  # [first index, last index, label]
    for i in chosen:
        if runs and runs[-1][1] == i - 1 and runs[-1][2] == label(body[i]):
            runs[-1][1] = i
        else:
            runs.append([i, i, label(body[i])])
    out = []
    for first, last, text in runs:
        start, end = body[first].lineno, body[last].end_lineno
        out.append((f"{start}-{end}" if end != start else f"{start}") + (f" ({text})" if text else ""))
    return ", ".join(out)


def _left_out_of_loop(node: ast.stmt) -> str | None:
    """Why a statement of their loop body is not run (printing, TensorBoard, checkpoints/samples/evaluation), or
    None if it is run."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        if isinstance(func, ast.Name) and func.id == "print":
            return "print"
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "writer":
            return f"writer.{func.attr}"
    if isinstance(node, ast.If):
        test = ast.unparse(node.test)
        if "opt.save_interval" in test:
            return "save_interval block"
        if "opt.eval_interval" in test:
            return "evaluation block"
    return None


def parse_their_script(path: str) -> TheirScript:
    """Split their training script into what the worker runs (see the module docstring, "Their side")."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)

    def compiled(nodes):
        return compile(ast.Module(body=list(nodes), type_ignores=[]), path, "exec")

    def skipped(node):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        return any(m == s or m.startswith(s + ".") for m in modules for s in SKIPPED_IMPORTS)

    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and not skipped(n)]
    constants = [n for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
                 and isinstance(n.targets[0], ast.Name) and n.targets[0].id in SCRIPT_CONSTANTS]
    main = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"), None)
    body = main.body if main else []
    source = [ast.unparse(n) for n in body]
    try:
        first = next(i for i, n in enumerate(body)
                     if isinstance(n, ast.If) and ast.unparse(n.test) == "opt.deterministic")
        last = next(i for i, s in enumerate(source) if s.startswith("optimizer_D = "))
        loop = next(i for i, n in enumerate(body) if isinstance(n, ast.For) and ast.unparse(n.target) == "n_iter")
    except StopIteration:
        raise RuntimeError(f"{path}: not the structure this benchmark expects (main() with 'if opt.deterministic:', "
                           "'optimizer_D = ...' and 'for n_iter in ...')") from None
    built = list(range(first, last + 1)) + [i for i in range(last + 1, loop) if source[i] == "model.train()"]
    construction = [body[i] for i in built]
    loop_body = body[loop].body
    kept_at = [i for i, n in enumerate(loop_body) if _left_out_of_loop(n) is None]
    dropped_at = [i for i, n in enumerate(loop_body) if _left_out_of_loop(n) is not None]
    kept = [loop_body[i] for i in kept_at]
    kept_source = "\n".join(ast.unparse(n) for n in kept)
    for needed in ("optimizer_D.step()", "optimizer_G.step()", "model_ema.lerp("):
        if needed not in kept_source:
            raise RuntimeError(f"{path}: the loop body run would lack {needed}")
    return TheirScript(imports=compiled(imports), constants=compiled(constants), construction=compiled(construction),
                       loop_body=compiled(kept), construction_lines=_line_ranges(body, built),
                       loop_lines=_line_ranges(loop_body, kept_at),
                       left_out=_line_ranges(loop_body, dropped_at, _left_out_of_loop))


def stub_missing_modules() -> list[str]:
    """Put a stub in ``sys.modules`` for each of :data:`OPTIONAL_IMPORTS` that cannot be imported; its functions
    raise if called. Returns the stubbed names."""
    stubbed = []
    for module_name, attributes in OPTIONAL_IMPORTS.items():
        try:
            importlib.import_module(module_name)
            continue
        except ImportError:
            pass
        parts = module_name.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                if depth > 1:
                    setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], sys.modules[name])
        for attribute in attributes:
            def unavailable(*args, _name=f"{module_name}.{attribute}", **kwargs):
                raise RuntimeError(f"{_name} is a stub of the benchmark (the package is not installed)")
            setattr(sys.modules[module_name], attribute, unavailable)
        stubbed.append(", ".join(f"{module_name}.{a}" for a in attributes))
    return stubbed


def start_theirs(job: dict):
    """Build their model by running their script's own statements, load the shared pool, warm up.
    Returns (info, run)."""
    import numpy as np
    import torch

    threads = job["torch_threads"] or bench.cpu_facts()["usable"]
    torch.set_num_threads(threads)
    reference_dir = job["reference_dir"]
    sys.path.insert(0, reference_dir)
    stubs = stub_missing_modules()
    script_name, readme_argv = THEIR_RUNS[job["config"]]
    script = parse_their_script(os.path.join(reference_dir, script_name))
    argv = readme_argv + ["--batch_size", str(job["batch_size"])]

    namespace = {"__name__": "their_training_script", "__builtins__": __builtins__}
    exec(script.imports, namespace)
    namespace["opt"] = namespace["options"].parser.parse_args(argv)
    exec(script.constants, namespace)
    with np.load(job["pool_path"]) as pool:
        count = len([k for k in pool.files if k.startswith(CALLS[0] + "/")])
        arrays = {k: pool[k] for k in pool.files}
    # What their DataLoader yields: per modality (sorted keys = our config order) float32 NCHW in [0, 1]
    # (ToTensor), one list per next(paired_dataloader): iteration by iteration, the calls in CALLS order.
    batches = [[torch.from_numpy(arrays[f"{call}/{m}"][i]).permute(0, 3, 1, 2).float().div(255).contiguous()
                for m in range(count)] for i in range(job["pool_iterations"]) for call in CALLS]
    namespace["paired_dataloader"] = itertools.cycle(batches)
    torch.manual_seed(0)
    exec(script.construction, namespace)
    iteration = itertools.count()

    def run(iterations: int) -> dict:
        for _ in range(iterations):
            namespace["n_iter"] = next(iteration)
            exec(script.loop_body, namespace)
        return {"d_loss": float(namespace["d_loss"]), "g_loss": float(namespace["g_loss"])}

    run(job["warmup"])
    model = namespace["model"]
    info = {"generators": sum(p.numel() for p in model.generators.parameters()),
            "discriminators": sum(p.numel() for p in model.discriminators.parameters()),
            "d_terms": len(namespace["d_losses_iter_avg"]), "g_terms": len(namespace["g_losses_iter_avg"]),
            "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}},
            "device": str(namespace["device"]), "script": script_name, "argv": argv, "stubs": stubs,
            "construction_lines": script.construction_lines, "loop_lines": script.loop_lines,
            "left_out": script.left_out}
    return info, run


# ================================================================================================ command line
class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse_args(argv):
    dirs = bench.data_dirs(None)
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference_dir", default=None, help="work tree of the authors' code (6b5d/mmali); required")
    p.add_argument("--torch_python", default=DEFAULT_TORCH_PYTHON, help="python of a venv with torch and numpy")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}")
    p.add_argument("--windows", type=int, default=5, help="timed windows per side and config")
    p.add_argument("--steps", type=int, default=20, help="training iterations per window")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations per worker before the first window")
    p.add_argument("--pool_iterations", type=int, default=8, help="distinct iterations of batches in the pool")
    p.add_argument("--batch_size", type=int, default=64, help="tuples per paired batch (4 batches per iteration)")
    p.add_argument("--torch_threads", type=int, default=0, help="torch.set_num_threads (0 = the usable cores)")
    p.add_argument("--data_dir", default=dirs["mnist"], help="directory with mnist.npz")
    p.add_argument("--svhn_dir", default=dirs["svhn"], help="directory with the SVHN stand-in's train_32x32.mat")
    p.add_argument("--worker", choices=("ours", "theirs"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    for c in args.configs.split(","):
        if c not in CONFIGS:
            raise UsageError(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
    if min(args.windows, args.steps, args.warmup, args.pool_iterations, args.batch_size) < 1:
        raise UsageError("--windows, --steps, --warmup, --pool_iterations and --batch_size must be >= 1")
    if args.torch_threads < 0:
        raise UsageError("--torch_threads must be >= 0 (0 = the usable cores)")
    return args


def main(argv=None) -> int:
    """Exit status: 0, 2 for bad arguments or setup, 1 for a failure during the run, 130 / 143 if interrupted /
    terminated."""
    try:
        args = parse_args(argv)
        if args.worker:
            return serve(args.worker, json.loads(args.job))
        torch_versions = check_setup(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_terminated)  # unwinds through the workers' clean-up
    try:
        return run_benchmark(args, torch_versions)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; the workers were stopped", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated (SIGTERM); the workers were stopped", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
