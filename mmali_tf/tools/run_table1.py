"""Paper Table 1: MultiMNIST linear-probe accuracy, factorized vs joint discriminator, 2-4 modalities.

    python -m mmali_tf.tools.run_table1 --iterations=2000 --data_dir=../shared/data --root=runs/table1

Trains and evaluates the presets ``multimnist_m{2,3,4}`` and ``multimnist_m{2,3,4}_joint`` (:mod:`mmali_tf.configs`)
at one iteration budget and prints the table next to the paper's values. Each configuration is a normal run
directory ``<root>/<preset>_it<iterations>`` (a re-run resumes or skips finished work), trained with
``python -m mmali_tf.train --config=<preset>`` and evaluated with ``python -m mmali_tf.evaluate
--metrics=latent,cross,joint`` (linear probe on the frozen EMA encoder of the upright modality, MNIST test split;
cross coherence between all modality pairs and joint coherence, with the MNIST classifier applied after
un-rotating; see BUILD.md for the protocol). Both run in this interpreter, from any directory; each run's output
goes to ``<run directory>/table1.log``. The table is also written to ``<root>/table1_it<iterations>.json``.

Every argument is checked before anything runs: the flags here, and those passed on to training
(``--extra_train_flags``, ``--data_dir``), which ``python -m mmali_tf.train --dry_run`` checks for every preset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import flags

from mmali_tf import cli
from mmali_tf.atomic_files import write_json_atomic  # a killed run must not leave half a JSON file
from mmali_tf.errors import MMALIError
from mmali_tf.evaluate import parse_metrics
from mmali_tf.tools import flag_checks

PAPER = {("joint", 2): 85.96, ("joint", 3): 85.44, ("joint", 4): 85.27,
         ("factorized", 2): 97.02, ("factorized", 3): 96.94, ("factorized", 4): 96.75}
MODALITY_COUNTS = ("2", "3", "4")
DISCRIMINATORS = ("joint", "factorized")
UPRIGHT = "mnist0"
F = flags.FLAGS


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_integer("iterations", 2000, "Training iterations per configuration.", lower_bound=1)
    flags.DEFINE_string("data_dir", None, "Directory with mnist.npz (default: $MMALI_DATA_DIR).")
    flags.DEFINE_string("root", "runs/table1", "Directory for the six run directories.")
    flags.DEFINE_list("modalities", list(MODALITY_COUNTS), "Modality counts to run.")
    flags.DEFINE_list("discriminators", list(DISCRIMINATORS), "Which discriminators to run.")
    flags.DEFINE_integer("seed", 0, "Seed of every run.", lower_bound=0)
    flags.DEFINE_list("extra_train_flags", [], "More flags for mmali_tf.train, e.g. --xla=false.")
    flags.DEFINE_list("metrics", ["latent", "cross", "joint"], "Metric groups passed to mmali_tf.evaluate.")
    flags.DEFINE_integer("max_pairs", 20_000, "Test tuples for cross coherence (0 = all 300,000).", lower_bound=0)
    flags.DEFINE_string("classifier_dir", None, "Coherence classifier directory shared by the six runs "
                        "(default: $MMALI_CLASSIFIER_DIR, else <root>/classifiers).")
    flag_checks.require_existing_dir("data_dir")
    flag_checks.require_output_dir("root")
    flag_checks.require_names("modalities", MODALITY_COUNTS)
    flag_checks.require_names("discriminators", DISCRIMINATORS)
    flag_checks.require("metrics", parse_metrics)
    flag_checks.require_output_dir("classifier_dir")


def preset(num: int, discriminator: str) -> str:
    """The MultiMNIST preset of ``num`` modalities and the "joint" or "factorized" discriminators."""
    return f"multimnist_m{num}" + ("_joint" if discriminator == "joint" else "")


def train_command(name: str, workdir: str, *extra: str) -> list[str]:
    """``python -m mmali_tf.train`` for preset ``name`` at this run's budget, seed, data and extra flags."""
    data = [f"--config.data.data_dir={F.data_dir}"] if F.data_dir else []
    return [sys.executable, "-m", "mmali_tf.train", f"--config={name}", f"--workdir={workdir}",
            f"--config.train.max_iter={F.iterations}", f"--config.train.seed={F.seed}",
            f"--config.train.save_every={max(F.iterations // 4, 1)}", f"--config.train.image_every={F.iterations}",
            *data, *F.extra_train_flags, *extra]


def check_train_flags(names: list[str]) -> None:
    """``flags.ValidationError`` (a bad flag: exit status 2) with training's own error line unless
    ``python -m mmali_tf.train --dry_run`` accepts the training flags of every preset in ``names`` (one process per
    preset, a few seconds each: a setting may suit one preset and not another)."""
    for name in names:
        proc = subprocess.run(train_command(name, os.devnull, "--dry_run"), capture_output=True, text=True)
        if proc.returncode:
            lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")] or ["no error line"]
            raise flags.ValidationError(f"mmali_tf.train refuses the flags for {name} (--extra_train_flags, "
                                        f"--data_dir): {lines[-1][len('error:'):].strip()}")


def read_json(path: str):
    """The parsed file, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def summary(metrics: dict, probe_modality: str = UPRIGHT) -> dict:
    """Table 1's three figures (percent, None where not measured) from an evaluation's metrics: the probe of
    ``probe_modality``, the mean cross coherence over all ordered pairs and the joint coherence."""
    cross = [v for k, v in metrics.items() if k.startswith("coherence/") and "_to_" in k]
    probe = metrics.get(f"latent_acc/{probe_modality}")
    return {"probe": None if probe is None else 100.0 * probe,
            "cross": 100.0 * sum(cross) / len(cross) if cross else None,
            "joint": 100.0 * metrics["coherence/joint"] if "coherence/joint" in metrics else None}


def percent(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def run(cmd: list[str], log_path: str) -> None:
    """Run ``cmd`` with its output appended to ``log_path``; :class:`MMALIError` with the log's last lines if it
    fails."""
    print("$ " + " ".join(cmd), flush=True)
    with open(log_path, "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_path) as log:
            errors = [line for line in log.read().splitlines() if line.startswith("error:")]
        last = errors[-1] if errors else f"see {log_path}"
        raise MMALIError(f"{cmd[2]} failed with status {proc.returncode} ({last}; log {log_path})")


def one_configuration(num: int, discriminator: str) -> dict:
    """Train (or resume) and evaluate one configuration; its accuracy, coherences, times and run directory."""
    name = preset(num, discriminator)
    workdir = os.path.join(F.root, f"{name}_it{F.iterations}")
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, "table1.log")
    times_path = os.path.join(workdir, "table1_times.json")
    metrics_path = os.path.join(workdir, "metrics.json")
    times = read_json(times_path) or {}
    if times.get("iterations") != F.iterations:  # not trained (or interrupted) at this budget: train / resume
        started = time.perf_counter()
        run(train_command(name, workdir), log_path)
        times = {"iterations": F.iterations, "train_seconds": time.perf_counter() - started}
        write_json_atomic(times_path, times)
    metrics = read_json(metrics_path)
    if metrics is None or metrics.get("step") != F.iterations or "evaluate_seconds" not in times:
        started = time.perf_counter()
        classifier_dir = (F.classifier_dir or os.environ.get("MMALI_CLASSIFIER_DIR")
                          or os.path.join(F.root, "classifiers"))
        data = [f"--data_dir={F.data_dir}"] if F.data_dir else []
        run([sys.executable, "-m", "mmali_tf.evaluate", f"--workdir={workdir}", f"--metrics={','.join(F.metrics)}",
             f"--max_pairs={F.max_pairs}", f"--classifier_dir={classifier_dir}", *data], log_path)
        times["evaluate_seconds"] = time.perf_counter() - started
        write_json_atomic(times_path, times)
        metrics = read_json(metrics_path)
    figures = summary(metrics["metrics"])
    return {"accuracy": figures["probe"], "cross": figures["cross"], "joint": figures["joint"],
            "train_seconds": times["train_seconds"], "eval_seconds": times["evaluate_seconds"], "workdir": workdir}


def print_table(counts: list[int], results: dict) -> None:
    """Table 1 in Markdown: ours (``results`` by (discriminator, modalities)) beside the paper's."""
    print(f"\nTable 1 (MultiMNIST linear probe on the upright modality, MNIST test; {F.iterations} iterations per "
          "configuration; paper: 250,000)")
    print("| modalities | joint (ours) | joint (paper) | factorized (ours) | factorized (paper) "
          "| mean cross coherence (J / F) | joint coherence (J / F) | train min (J / F) |")
    print("|---|---|---|---|---|---|---|---|")
    for num in counts:
        cells = []
        for discriminator in DISCRIMINATORS:
            r = results.get((discriminator, num))
            cells += [f"{r['accuracy']:.2f}" if r else "-", f"{PAPER[(discriminator, num)]:.2f}"]
        times = " / ".join(f"{results[(d, num)]['train_seconds'] / 60:.1f}" if (d, num) in results else "-"
                           for d in DISCRIMINATORS)
        cross, joint = (" / ".join(percent(results[(d, num)][key]) if (d, num) in results else "-"
                                   for d in DISCRIMINATORS) for key in ("cross", "joint"))
        print(f"| {num} | " + " | ".join(cells) + f" | {cross} | {joint} | {times} |")


def main(argv) -> None:
    del argv
    counts = sorted({int(m) for m in F.modalities})
    discriminators = [d for d in DISCRIMINATORS if d in F.discriminators]
    check_train_flags([preset(num, d) for num in counts for d in discriminators])
    results = {}
    try:
        for num in counts:
            for discriminator in discriminators:
                results[(discriminator, num)] = r = one_configuration(num, discriminator)
                print(f"M={num} {discriminator}: probe {r['accuracy']:.2f}%  cross {percent(r['cross'])}  "
                      f"joint {percent(r['joint'])}  train {r['train_seconds'] / 60:.1f} min  "
                      f"eval {r['eval_seconds'] / 60:.1f} min", flush=True)
        print_table(counts, results)
        write_json_atomic(os.path.join(F.root, f"table1_it{F.iterations}.json"),
                          {f"{d}/m{n}": r for (d, n), r in results.items()})
    except OSError as exc:
        raise MMALIError(f"under --root {F.root}: {exc}") from exc


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
