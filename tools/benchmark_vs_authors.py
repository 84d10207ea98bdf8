"""Speed of our training iteration against the authors' PyTorch code (6b5d/mmali), timed in lock-step (issue 14).

    python tools/benchmark_vs_authors.py --reference_dir=DIR [--torch_python=PY]
        [--configs=mnist_svhn,multimnist_m2,multimnist_m4] [--windows=5] [--steps=20] [--warmup=3]
        [--pool_iterations=8] [--batch_size=64] [--torch_threads=0] [--data_dir=DIR] [--svhn_dir=DIR]

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
   (``python -m mmali_tf.tools.make_svhn_standin --out_dir=../data/svhn_standin``). Defaults as
   ``benchmark_train``: $MMALI_DATA_DIR, else ``../shared/data`` and ``../data/svhn_standin`` beside the repository.

Configurations (one iteration = one D step and one G step on 4 fresh paired batches, and the EMA update):
``mnist_svhn`` (README MNIST-SVHN, the SVHN side being the stand-in), ``multimnist_m2`` and ``multimnist_m4``
(README MultiMNIST with 2 / 4 rotated-MNIST modalities); ours the preset of that name (``mmali_tf.configs``), theirs
from their README command line; both with ``--batch_size`` (64).

Protocol. Per configuration the parent starts two warm worker processes, ours
(``tools/benchmark_vs_authors_ours.py``, this interpreter) and theirs
(``tools/benchmark_vs_authors_theirs.py``, run by ``--torch_python``); they talk to it in JSON lines over
their stdin / stdout (:func:`tools.benchmark_vs_authors_theirs.serve`). Our worker draws a pool of
``--pool_iterations`` iterations of paired batches (4 x 64 tuples each: d_unimodal, d_joint, g_unimodal, g_joint)
from our pairing of the real images, the tuples our input pipeline gives steps 0, 1, ..., and writes it to a
temporary file; their worker reads the same images. Both convert the pool to float tensors up front and cycle
through it, so data loading is not timed. Each worker runs ``--warmup`` untimed iterations (tracing, allocation),
then the parent alternates timed windows of ``--steps`` iterations: ours then theirs in odd windows, theirs then
ours in even ones, ``--windows`` each, so that both see the same machine load while the other one waits idle. A
window's time is the wall time of its iterations in the worker (``time.perf_counter``), ending when the last
iteration's losses are read back as Python floats (their loop body does ``.item()`` every iteration).

Output: a header (date, CPU model, SIMD flags of interest, cores, versions, their commit), then per configuration
the parameter counts and loss-term counts of both sides (they must agree, else the run stops), both sides' thread
settings, the per-window it/s and CPU seconds per iteration (the worker's, all threads), how many cores other
processes kept busy during each window (from ``/proc/stat``, less the worker's own CPU time; hypervisor steal
included; a warning follows the table where that averages over 0.2 cores), the median it/s (min-max), the ratio
ours/theirs (of the medians, and the median of the per-window-pair ratios), and the hours for 250,000 iterations at
each median rate; a summary table at the end. No reference figures are built in: every number printed is measured
by the run.

Our side: ``our_config`` gives the config the trainer would use for the preset (``mmali_tf.configs.build``,
execution settings "auto" resolved for this machine by ``mmali_tf.distribution.resolve``: on a CPU-only machine no
XLA and its thread policy); the model is built by ``mmali_tf.training.build_model`` and its ``train_step`` runs in
one ``tf.function`` (as Keras' ``fit`` runs it: no autograph, XLA as configured) on in-memory batches. This worker
never imports torch.

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
Their files are not edited; their work tree is on the worker's ``PYTHONPATH``. ``torch.set_num_threads`` is
``--torch_threads`` (0 = the usable cores); torch's inter-op pool keeps its default. This worker never imports
TensorFlow or mmali_tf.

Every failure ends with one ``error:`` line and a non-zero exit status, and the workers are killed: 2 for bad
arguments and setup (their tree missing, torch missing, a data folder missing; checked while the flags are parsed,
before anything starts), 1 for a failure during the run (a worker's error or death, differing parameter counts),
130 / 143 if interrupted / terminated.
"""

from __future__ import annotations

import sys  # noqa: E402  (run as ``python tools/<name>.py``: the checkout's mmali_tf and tools packages)
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import functools
import hashlib
import importlib.metadata
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

from absl import flags

from mmali_tf import cli
from mmali_tf.errors import MMALIError
from mmali_tf.tools import flag_checks
from tools import benchmark_vs_authors_ours, repository, speed
from tools import benchmark_vs_authors_theirs as theirs_worker
from tools.benchmark_vs_authors_theirs import CALLS, THEIR_REQUIRED_FILES, THEIR_RUNS

CONFIGS = tuple(THEIR_RUNS)
TITLES = {"mnist_svhn": "MNIST-SVHN, README config (SVHN = synthetic stand-in, not genuine SVHN)",
          "multimnist_m2": "MultiMNIST M=2, README config", "multimnist_m4": "MultiMNIST M=4, README config"}
DEFAULT_TORCH_PYTHON = "/work/torchvenv/bin/python"
BUSY_MACHINE_CORES = 0.2  # mean cores used by other processes during the windows above which the table warns
SETUP_HELP = "python tools/benchmark_vs_authors.py --help"
F = flags.FLAGS


class SetupError(MMALIError):
    """Their tree, the torch interpreter or a data folder is not usable (raised by the flag validators: a bad flag,
    exit status 2)."""


class BenchmarkError(MMALIError):
    """A failure during the run (a worker's error or death, differing models): exit status 1."""


class Terminated(Exception):
    """SIGTERM: raised in the main thread so that the workers' clean-up runs; exit status 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


# ================================================================================================ statistics, tables
def window_rates(steps: int, windows: list[dict]) -> list[float]:
    """Iterations per second of each window (``{"seconds": wall time of ``steps`` iterations}``)."""
    return [steps / w["seconds"] for w in windows]


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
            "ours_hours": speed.hours_for(speed.TRAINING_ITERATIONS, ours_median),
            "theirs_hours": speed.hours_for(speed.TRAINING_ITERATIONS, theirs_median)}


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
    lines.append(f"  median it/s (min-max): ours {speed.spread(c['ours_its'])}, theirs {speed.spread(c['theirs_its'])}")
    lines.append(f"  ours/theirs: {c['ratio_of_medians']:.2f}x (ratio of the medians), "
                 f"{c['median_pair_ratio']:.2f}x (median of the per-window-pair ratios)")
    lines.append(f"  {speed.TRAINING_ITERATIONS:,} iterations at the median rate: ours {c['ours_hours']:.2f} h, "
                 f"theirs {c['theirs_hours']:.2f} h")
    busy = [w["others_cores"] for w in ours + theirs if w.get("others_cores") is not None]
    if busy and statistics.mean(busy) > BUSY_MACHINE_CORES:
        lines.append(f"  WARNING: other processes kept {statistics.mean(busy):.2f} cores busy on average (up to "
                     f"{max(busy):.2f}) during these windows: these are not the figures of a quiet machine")
    return lines


def utilization_line(its: float, ours: dict) -> str:
    """Our step's FLOP rate at ``its`` iterations per second, and its share of the measured matmul peaks."""
    rate = its * ours["step_gflop"]
    peaks = ours.get("peak_gflops") or {}
    shares = ", ".join(f"{100 * rate / peaks[d]:.0f}% of the {n} peak" for d, n in (("float32", "fp32"),
                                                                                   ("bfloat16", "bf16")) if d in peaks)
    return f"  ours: {rate:.0f} GFLOP/s at the median rate" + (f" = {shares}" if shares else "")


def summary_table(steps: int, results: dict[str, tuple[list[dict], list[dict]]]) -> list[str]:
    """One line per configuration: median it/s of both sides, their ratio, hours for the training run."""
    header = (f"{'config':14s} {'ours it/s':>10s} {'theirs it/s':>12s} {'ours/theirs':>12s} "
              f"{'pair ratio':>11s} {'ours h':>8s} {'theirs h':>9s}")
    lines = [header, "-" * len(header)]
    for name, (ours, theirs) in results.items():
        c = compare(steps, ours, theirs)
        lines.append(f"{name:14s} {c['ours_median']:10.2f} {c['theirs_median']:12.2f} {c['ratio_of_medians']:11.2f}x "
                     f"{c['median_pair_ratio']:10.2f}x {c['ours_hours']:8.2f} {c['theirs_hours']:9.2f}")
    lines.append(f"(median it/s over the windows; h = hours for {speed.TRAINING_ITERATIONS:,} iterations at that rate)")
    return lines


# ================================================================================================ parent: checks
def check_reference_dir(path: str | None) -> None:
    """:class:`SetupError` unless ``path`` is a work tree of their repository."""
    if not path:
        raise SetupError(f"--reference_dir is required: a work tree of 6b5d/mmali (setup: {SETUP_HELP})")
    if not os.path.isdir(path):
        raise SetupError(f"no such directory (setup: {SETUP_HELP})")
    missing = [f for f in THEIR_REQUIRED_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise SetupError(f"not a work tree of 6b5d/mmali (missing {shown})")


@functools.lru_cache(maxsize=None)
def probe_torch(python: str) -> dict:
    """Versions of the torch interpreter ``python``; :class:`SetupError` if it is missing or has no torch."""
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise SetupError(f"no such executable (setup: {SETUP_HELP})")
    code = ("import json, platform, numpy, torch; print(json.dumps({'python': platform.python_version(), "
            "'torch': torch.__version__, 'numpy': numpy.__version__}))")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SetupError(f"{python} cannot import torch and numpy ({last})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def our_versions() -> dict:
    """Versions of this interpreter's packages, from their metadata (which names the build: tensorflow or
    tensorflow-cpu)."""
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


def check_svhn_dir(path: str) -> None:
    """:class:`SetupError` if ``mnist_svhn`` is among ``--configs`` and ``path`` is not a directory."""
    if "mnist_svhn" in F.configs and not os.path.isdir(path):
        raise SetupError("no such directory (mnist_svhn needs the SVHN stand-in: python -m "
                         "mmali_tf.tools.make_svhn_standin --out_dir=DIR writes it)")


def their_environment(reference_dir: str) -> dict:
    """The environment of their worker: ours, with their work tree as the only ``PYTHONPATH`` entry (their script's
    imports resolve there) and ``PYTHONSAFEPATH`` set (Python >= 3.11 then keeps the worker's own folder off
    ``sys.path``)."""
    return {**os.environ, "PYTHONPATH": reference_dir, "PYTHONSAFEPATH": "1"}


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

    def __init__(self, side: str, config: str, argv: list[str], log_path: str, env: dict | None = None,
                 cwd: str | None = None):
        self.side, self.config, self.log_path = side, config, log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                         env=env, cwd=cwd, start_new_session=True)

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
           "reference_dir": os.path.abspath(args.reference_dir), "torch_threads": args.torch_threads,
           "precision": args.precision, "peaks": args.peaks}
    workers = []
    try:
        ours = Worker("ours", name, [sys.executable, benchmark_vs_authors_ours.__file__, json.dumps(job)],
                      os.path.join(workdir, f"ours_{name}.log"))
        workers.append(ours)
        ours_info = ours.request()["ready"]  # ours writes the pool first, so theirs starts after it
        theirs = Worker("theirs", name, [args.torch_python, theirs_worker.__file__, json.dumps(job)],
                        os.path.join(workdir, f"theirs_{name}.log"), env=their_environment(job["reference_dir"]),
                        cwd=job["reference_dir"])
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
    print(utilization_line(compare(args.steps, windows["ours"], windows["theirs"])["ours_median"], ours_info))
    print(flush=True)
    return windows["ours"], windows["theirs"]


def print_config_header(name: str, args, ours: dict, theirs: dict) -> None:
    print(f"== {name}: {TITLES[name]}; batch {args.batch_size}, {len(CALLS)} paired batches per iteration")
    print(f"  data (same images for both): pool of {args.pool_iterations} iterations x {len(CALLS)} x "
          f"{args.batch_size} tuples from our pairing; " + "; ".join(f"{m}: {s}" for m, s in ours["sources"].items()))
    print(f"  ours: --config={name}, {ours['model']}; precision {ours['precision']}, XLA {'on' if ours['xla'] else 'off'}, "
          f"{ours['threads']} {ours['thread_env'] or ''}".rstrip())
    peaks = ours.get("peak_gflops") or {}
    print(f"  ours: {ours['step_gflop']:.2f} GFLOP per iteration (our count of what our step executes)"
          + (f"; matmul peak with our threads: fp32 {peaks['float32']:.0f}, bf16 {peaks['bfloat16']:.0f} GFLOP/s"
             if peaks else ""))
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


def run_benchmark(args, torch_versions: dict) -> None:
    """Print the header, time every configuration of ``args.configs``, print the summary."""
    configs = list(dict.fromkeys(args.configs))
    facts = speed.cpu_facts()
    mine = our_versions()
    print(f"mmali_tf vs the authors' PyTorch code, training iterations in lock-step, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"CPU: {facts['model']}; {facts['cpus']} CPUs ({facts['usable']} usable); SIMD "
          + ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in facts["simd"].items()))
    print(f"ours: python {mine['python']}, tensorflow {mine['tensorflow']}, keras {mine['keras']}, "
          f"numpy {mine['numpy']}; mmali_tf commit {repository.describe_head(repository.repository_root())}")
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


# ================================================================================================ command line
def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    dirs = speed.default_data_dirs(None)
    flags.DEFINE_string("reference_dir", None, "Work tree of the authors' code (6b5d/mmali); required.")
    flags.DEFINE_string("torch_python", DEFAULT_TORCH_PYTHON, "Python of a venv with torch and numpy.")
    flags.DEFINE_list("configs", list(CONFIGS), f"Subset of {', '.join(CONFIGS)}.")
    flags.DEFINE_integer("windows", 5, "Timed windows per side and config.", lower_bound=1)
    flags.DEFINE_integer("steps", 20, "Training iterations per window.", lower_bound=1)
    flags.DEFINE_integer("warmup", 3, "Untimed iterations per worker before the first window.", lower_bound=1)
    flags.DEFINE_integer("pool_iterations", 8, "Distinct iterations of batches in the pool.", lower_bound=1)
    flags.DEFINE_integer("batch_size", 64, "Tuples per paired batch (4 batches per iteration).", lower_bound=1)
    flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads (0 = the usable cores).", lower_bound=0)
    flags.DEFINE_enum("precision", "auto", ["auto", "fp32", "bf16"], "Our --precision (auto = what training picks).")
    flags.DEFINE_bool("peaks", True, "Also measure the fp32 and bf16 matmul peaks with our threads (utilization).")
    flags.DEFINE_string("data_dir", dirs["mnist"], "Directory with mnist.npz.")
    flags.DEFINE_string("svhn_dir", dirs["svhn"], "Directory with the SVHN stand-in's train_32x32.mat (mnist_svhn).")
    # In this order (absl runs validators in the order of registration): the names, their tree, torch, the data.
    flag_checks.require_names("configs", CONFIGS)
    flag_checks.require("reference_dir", check_reference_dir, unset_too=True)
    flag_checks.require("torch_python", probe_torch)
    flag_checks.require_existing_dir("data_dir")
    flag_checks.require("svhn_dir", check_svhn_dir)


def main(argv) -> None:
    """Exit status: 0; 2 for bad arguments or setup (while the flags are parsed), 1 for a failure during the run,
    130 / 143 if interrupted / terminated."""
    del argv
    signal.signal(signal.SIGTERM, _raise_terminated)  # unwinds through the workers' clean-up
    try:
        run_benchmark(F, probe_torch(F.torch_python))
    except KeyboardInterrupt:
        print("error: interrupted; the workers were stopped", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("error: terminated (SIGTERM); the workers were stopped", file=sys.stderr)
        sys.exit(143)


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
