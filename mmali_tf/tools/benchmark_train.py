"""Training-speed benchmark of mmali_tf: it/s, examples/s, our FLOP count, hours for a full run, the tf.data rate.

    python -m mmali_tf.tools.benchmark_train [--steps=25] [--repeats=3] [--warmup=3] [--data_dir=DIR]
        [--configs=mnist_svhn,multimnist_m2,multimnist_m4] [--modes=xla1,noxla1,xla2,noxla2]
        [--steps_per_execution=1] [--intra_op=-1] [--inter_op=-1] [--pipeline_steps=300] [--nopipeline]
        [--baseline=REF]

Configurations: presets of :mod:`mmali_tf.configs` (default the authors' README configurations ``mnist_svhn``,
``multimnist_m2``, ``multimnist_m4``; the names ``multimnist2`` / ``multimnist4`` of earlier versions are accepted
for the latter two), built by ``mmali_tf.configs.build`` with the mode's execution settings. One iteration = D step
+ G step on 4 fresh paired batches of the preset's batch size (64).

Modes: XLA on/off x 1 replica (default strategy) / MirroredStrategy on 2 logical CPU devices. Every (config, mode)
runs in a fresh process (:mod:`mmali_tf.tools.benchmark_train_worker`), because logical devices and thread counts
must be set before TensorFlow runs any op. Threads: by default what ``mmali_tf.train`` picks for the mode
(``distribution.resolve_execution``: on a CPU-only machine without XLA two ops at a time on half the cores each,
with XLA TensorFlow's default); ``--intra_op`` / ``--inter_op`` override it (0 = TensorFlow's default). The table's
"threads" column shows intra/inter per row.

Timing: ``model.fit`` on the real ``paired_batches`` tf.data pipeline (input included), ``--warmup`` steps (tracing,
XLA compilation) excluded, then ``--repeats`` consecutive windows of ``--steps`` steps; the table shows the median
window (and min-max), and the hours that 250,000 iterations (the presets' ``max_iter``) take at that rate. The
pipeline rate is ``measure_rate`` of ``paired_batches`` alone, median of ``--repeats``.

``--baseline REF`` also times the code of git ref REF (e.g. the commit before a speed-up), mode by mode right before
the current code, so that both see about the same machine load; the table then shows both and the speed-up. Both
run with the thread counts of this checkout's policy (or ``--intra_op`` / ``--inter_op``), so the comparison shows
what the code changed, not what the thread policy changed; ``--intra_op=0 --inter_op=0`` times both with
TensorFlow's defaults. REF's ``mmali_tf`` is extracted to a temporary directory with this ``mmali_tf/tools/``
copied into it, and the worker runs there.

FLOPs: our own count of what our step executes (``speed.count_step_flops``: TF's per-op statistics over the live
ops of the traced step, forward and backward of both players, convolutions counted from their shapes). No figures
of the authors' code are built in: ``python -m mmali_tf.tools.benchmark_vs_authors`` measures both in one run.

Data: MNIST ``mnist.npz`` from --data_dir, else $MMALI_DATA_DIR, else ../shared/data; the SVHN stand-in from
--data_dir, else $MMALI_DATA_DIR, else ../data/svhn_standin (beside the repository). If a file is absent the
benchmark warns and uses random uint8 arrays of the right shape.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import flags

from mmali_tf import cli
from mmali_tf.errors import MMALIError
from mmali_tf.tools import flag_checks, repository, speed
from mmali_tf.tools.benchmark_train_worker import MODES

MODE_NAMES = {"xla1": "XLA, 1 replica", "noxla1": "no XLA, 1 replica", "xla2": "XLA, 2 replicas",
              "noxla2": "no XLA, 2 replicas"}
F = flags.FLAGS


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    from mmali_tf.configs import PRESETS

    flags.DEFINE_integer("steps", 25, "Timed training steps per repetition.", lower_bound=1)
    flags.DEFINE_integer("repeats", 3, "Repetitions (the table shows the median).", lower_bound=1)
    flags.DEFINE_integer("warmup", 3, "Untimed first steps (tracing, XLA compilation).", lower_bound=0)
    flags.DEFINE_string("data_dir", None, "Directory with mnist.npz and/or train_32x32.mat (default: $MMALI_DATA_DIR, "
                        "else ../shared/data and ../data/svhn_standin beside the repository).")
    flags.DEFINE_list("configs", list(speed.BENCHMARK_PRESETS), "Presets to time (mmali_tf.configs).")
    flags.DEFINE_list("modes", list(MODES), f"Subset of {', '.join(MODES)}.")
    flags.DEFINE_integer("steps_per_execution", 1, "Training steps per tf.function call.", lower_bound=1)
    flags.DEFINE_integer("intra_op", -1, "Intra-op threads (-1 = what mmali_tf.train picks for the mode, "
                         "0 = TensorFlow's default).", lower_bound=-1)
    flags.DEFINE_integer("inter_op", -1, "Inter-op threads (-1 = what mmali_tf.train picks for the mode, "
                         "0 = TensorFlow's default).", lower_bound=-1)
    flags.DEFINE_integer("pipeline_steps", 300, "Elements per pipeline-rate repetition.", lower_bound=1)
    flags.DEFINE_bool("pipeline", True, "Also measure the tf.data rate (--nopipeline skips it).")
    flags.DEFINE_string("baseline", None, "Git ref whose code is also timed, interleaved (before/after).")
    flag_checks.require_existing_dir("data_dir")
    flag_checks.require_names("configs", list(PRESETS), speed.RENAMED_PRESETS)
    flag_checks.require_names("modes", list(MODES))
    flag_checks.require("baseline", check_baseline)


def check_baseline(ref: str) -> None:
    """:class:`MMALIError` unless ``ref`` names a commit of this checkout."""
    root = repository.require_repository("--baseline")
    if repository.commit_of(root, ref) is None:
        raise MMALIError(f"{ref!r} names no commit in {root}")


# ------------------------------------------------------------------------------------------------ workers
def run_worker(job: dict, tree: str | None) -> dict:
    """Run one measurement in a fresh process; ``tree`` is the checkout to time (None: this one, as this process
    found it). Returns the worker's result, or ``{"error": ...}`` with the end of its output."""
    cmd = [sys.executable, "-m", "mmali_tf.tools.benchmark_train_worker", json.dumps(job)]
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("WARNING (benchmark)"):
            print(f"  {line}", flush=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = "\n".join((proc.stderr or proc.stdout or "no output").splitlines()[-15:])
    return {"error": f"exit {proc.returncode}: {tail}"}


def baseline_tree(root: Path, ref: str, target: Path, configs: list[str]) -> Path:
    """REF's ``mmali_tf`` in ``target``, with this checkout's ``mmali_tf/tools/`` (the worker) replacing REF's;
    :class:`MMALIError` if REF predates ``mmali_tf.configs`` and ``configs`` names a preset that its legacy builder
    (:func:`mmali_tf.tools.speed.benchmark_config`) does not know."""
    repository.extract(root, ref, ["mmali_tf"], target)
    tools = target / "mmali_tf" / "tools"
    shutil.rmtree(tools, ignore_errors=True)
    shutil.copytree(Path(__file__).resolve().parent, tools, ignore=shutil.ignore_patterns("__pycache__"))
    has_configs = (target / "mmali_tf" / "configs" / "__init__.py").is_file()
    unknown = [c for c in configs if not has_configs and c not in speed.BENCHMARK_PRESETS]
    if unknown:
        raise MMALIError(f"--baseline {ref} predates mmali_tf.configs: it can time only "
                         f"{', '.join(speed.BENCHMARK_PRESETS)}, not {', '.join(unknown)}")
    return target


def resolved_threads(mode: str) -> dict[str, int]:
    """The thread counts of ``mode`` under this checkout's policy (or --intra_op / --inter_op)."""
    from mmali_tf import distribution

    xla = MODES[mode][0]
    _, intra, inter = distribution.resolve_execution(xla, F.intra_op, F.inter_op)
    return {"intra_op": intra, "inter_op": inter}


# ------------------------------------------------------------------------------------------------ report
def failure(result: dict) -> str | None:
    """The last line of a failed measurement's error, or None if it succeeded."""
    return result["error"].splitlines()[-1] if "error" in result else None


def table_header() -> str:
    """The column titles of :func:`table_row`."""
    return (f"{'config':14s} {'mode':17s} {'it/s median (min-max)':>22s} {'ex/s':>6s} "
            f"{f'h/{speed.TRAINING_ITERATIONS // 1000}k it':>10s} {'GFLOP/it':>8s} {'GFLOP/s':>7s} "
            f"{'CPU-s/it':>8s} {'load':>4s} {'threads':>7s}")


def table_row(config: str, label: str, result: dict, flops: float | None) -> str:
    """One row of the table: a successful training measurement ``result``; ``flops`` of a step, if counted."""
    its = statistics.median(result["its"])
    examples = its * speed.CALLS_PER_ITERATION * result["batch_size"]
    hours = speed.hours_for(speed.TRAINING_ITERATIONS, its)
    own = f"{flops / 1e9:8.1f} {its * flops / 1e9:7.1f}" if flops else f"{'-':>8s} {'-':>7s}"
    threads = result["threads"]
    return (f"{config:14s} {label:17s} {speed.spread(result['its']):>22s} {examples:6.0f} {hours:10.1f} {own} "
            f"{statistics.median(result['cpu_s']):8.3f} {statistics.mean(result['load']):4.1f} "
            f"{threads['intra_op']:>3d}/{threads['inter_op']:<3d}")


def speedup(now: dict, before: dict) -> str:
    """The ratios of a measurement of the current code to the baseline's (median it/s, median CPU-s/it)."""
    return (f"  {statistics.median(now['its']) / statistics.median(before['its']):.2f}x it/s, "
            f"{statistics.median(before['cpu_s']) / statistics.median(now['cpu_s']):.2f}x CPU-s vs before")


def print_table(configs, modes, results, before) -> None:
    """The table of every (config, mode) measurement (``results``; ``before``: the baseline's, or empty) and the
    pipeline rates."""
    header = table_header()
    print(header)
    print("-" * len(header))
    for c in configs:
        best = 0.0
        tables = ([("before", before)] if before else []) + [("now", results)]
        flops = {label: next((table[c, m].get("flops") for m in modes if table[c, m].get("flops")), None)
                 for label, table in tables}  # counted in the 1-replica workers
        for m in modes:
            for label, table in tables:
                r = table[c, m]
                name = MODE_NAMES[m] if label == "now" else f"  before {F.baseline}"[:17]
                if failure(r):
                    print(f"{c:14s} {name:17s} FAILED: {failure(r)}")
                    continue
                line = table_row(c, name, r, flops[label])
                if label == "now" and "its" in before.get((c, m), {}):
                    line += speedup(r, before[c, m])
                print(line)
                if label == "now":
                    best = max(best, statistics.median(r["its"]))
        pipeline = results.get((c, "pipeline"))
        if pipeline is not None:
            if failure(pipeline):
                print(f"{c:14s} {'tf.data pipeline':17s} FAILED: {failure(pipeline)}")
            else:
                rate = statistics.median(pipeline["rates"])
                ratio = f" = {rate / best:.0f}x the fastest training rate" if best else ""
                print(f"{c:14s} {'tf.data pipeline':17s} {speed.spread(pipeline['rates']):>22s} steps/s{ratio}")
    print("-" * len(header))
    print(f"h/{speed.TRAINING_ITERATIONS // 1000}k it = hours for {speed.TRAINING_ITERATIONS:,} iterations at the "
          "median rate; GFLOP/it = our count of the work our step executes, GFLOP/s = that x it/s; "
          "CPU-s/it = process CPU seconds per iteration (all threads); load = mean 1-min load average of the run")


def main(argv) -> None:
    del argv
    configs = flag_checks.resolve_aliases(F.configs, speed.RENAMED_PRESETS)
    modes = list(dict.fromkeys(F.modes))
    dirs = speed.default_data_dirs(F.data_dir)
    root = repository.repository_root()
    base = {"steps": F.steps, "repeats": F.repeats, "warmup": F.warmup, "dirs": dirs,
            "steps_per_execution": F.steps_per_execution, "pipeline_steps": F.pipeline_steps}
    threads = {m: resolved_threads(m) for m in MODES}

    with tempfile.TemporaryDirectory(prefix="mmali_baseline_") as scratch:
        old_tree = str(baseline_tree(root, F.baseline, Path(scratch), configs)) if F.baseline else None
        print(f"mmali_tf training benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}, commit "
              f"{repository.describe_head(root)}")
        print(f"CPU: {speed.cpu_description()}")
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"data: MNIST from {dirs['mnist']}, SVHN stand-in from {dirs['svhn']}")
        print(f"timing: median of {F.repeats} windows of {F.steps} steps after {F.warmup} warm-up steps, "
              f"steps_per_execution {F.steps_per_execution}, {speed.CALLS_PER_ITERATION} paired batches per "
              "iteration", flush=True)
        if old_tree:
            print(f"baseline: {F.baseline} ({repository.commit_of(root, F.baseline)}), timed right before the current "
                  "code in every mode")
        results, before = {}, {}
        for c in configs:
            for m in modes:
                runs = ([("before", before, old_tree)] if old_tree else []) + [("now", results, None)]
                for label, table, tree in runs:
                    started = time.perf_counter()
                    table[c, m] = r = run_worker({**base, **threads[m], "kind": "train", "config": c, "mode": m},
                                                 tree)
                    note = (f"FAILED ({failure(r)})" if failure(r) else
                            f"{speed.spread(r['its'])} it/s, load {r['load'][0]:.1f}->{r['load'][1]:.1f}")
                    print(f"  done {c:14s} {m:7s} {label:6s} in {time.perf_counter() - started:5.0f} s: {note}",
                          flush=True)
            if F.pipeline:
                results[c, "pipeline"] = r = run_worker({**base, **threads["noxla1"], "kind": "pipeline",
                                                         "config": c}, None)
                note = f"FAILED ({failure(r)})" if failure(r) else speed.spread(r["rates"]) + " steps/s"
                print(f"  done {c:14s} pipeline: {note}", flush=True)

    report = next((r for r in results.values() if "threads" in r), None)
    if report:
        t = report["threads"]
        print(f"TensorFlow {t['tf']}; env {t['env'] or '{}'}; threads per row as intra-op/inter-op (0 = TF's default)")
    sources = {n: s for r in results.values() for n, s in r.get("sources", {}).items()}
    print("sources: " + "; ".join(f"{n}: {s}" for n, s in sorted(sources.items())))
    print()
    print_table(configs, modes, results, before)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if all(failure(r) for r in results.values()):
        raise MMALIError("every measurement failed (see the table)")


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
