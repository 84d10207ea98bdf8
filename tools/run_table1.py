"""Paper Table 1: MultiMNIST linear-probe accuracy, factorized vs joint discriminator, 2-4 modalities.

Trains and evaluates the six configurations ``flags/multimnist_m{2,3,4}[_joint].cfg`` at one iteration budget and
prints the table next to the paper's values. Each configuration is a normal run directory under ``--root`` (a
re-run resumes or skips finished work), trained with ``python -m mmali_tf.train`` and evaluated with
``python -m mmali_tf.evaluate --metrics=latent,cross,joint`` (linear probe on the frozen EMA encoder of the upright
modality, MNIST test split; cross coherence between all modality pairs and joint coherence, with the MNIST classifier
applied after un-rotating; see BUILD.md for the protocol).

    python tools/run_table1.py --iterations=2000 --data_dir=../shared/data --root=runs/table1
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from anywhere
from mmali_tf.atomic_files import write_json_atomic  # noqa: E402  (a killed run must not leave half a JSON file)

PAPER = {("joint", 2): 85.96, ("joint", 3): 85.44, ("joint", 4): 85.27,
         ("factorized", 2): 97.02, ("factorized", 3): 96.94, ("factorized", 4): 96.75}
UPRIGHT = "mnist0"

F = flags.FLAGS
flags.DEFINE_integer("iterations", 2000, "Training iterations per configuration.", lower_bound=1)
flags.DEFINE_string("data_dir", None, "Directory with mnist.npz (default: $MMALI_DATA_DIR).")
flags.DEFINE_string("root", "runs/table1", "Directory for the six run directories.")
flags.DEFINE_list("modalities", ["2", "3", "4"], "Modality counts to run.")
flags.DEFINE_list("discriminators", ["joint", "factorized"], "Which discriminators to run.")
flags.DEFINE_integer("seed", 0, "Seed of every run.", lower_bound=0)
flags.DEFINE_list("extra_train_flags", [], "More flags for mmali_tf.train, e.g. --xla=false.")
flags.DEFINE_list("metrics", ["latent", "cross", "joint"], "Metric groups passed to mmali_tf.evaluate.")
flags.DEFINE_integer("max_pairs", 20_000, "Test tuples for cross coherence (0 = all 300,000).", lower_bound=0)
flags.DEFINE_string("classifier_dir", None, "Coherence classifier directory shared by the six runs "
                    "(default: $MMALI_CLASSIFIER_DIR, else <root>/classifiers).")


def read_json(path: str):
    """The parsed file, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def percent(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def run(cmd: list[str], log_path: str) -> None:
    print("$ " + " ".join(cmd), flush=True)
    with open(log_path, "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_path) as log:
            tail = log.read().splitlines()[-5:]
        sys.exit(f"error: command failed ({proc.returncode}); last lines of {log_path}:\n" + "\n".join(tail))


def one_configuration(num: int, discriminator: str) -> dict:
    name = f"multimnist_m{num}" + ("_joint" if discriminator == "joint" else "")
    workdir = os.path.join(F.root, f"{name}_it{F.iterations}")
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, "table1.log")
    data = [f"--data_dir={F.data_dir}"] if F.data_dir else []
    times_path = os.path.join(workdir, "table1_times.json")
    metrics_path = os.path.join(workdir, "metrics.json")
    times = read_json(times_path) or {}
    if times.get("iterations") != F.iterations:  # not trained (or interrupted) at this budget: train / resume
        started = time.perf_counter()
        run([sys.executable, "-m", "mmali_tf.train", f"--flagfile=flags/{name}.cfg", f"--workdir={workdir}",
             f"--max_iter={F.iterations}", f"--seed={F.seed}", f"--save_every={max(F.iterations // 4, 1)}",
             f"--image_every={F.iterations}", *data, *F.extra_train_flags], log_path)
        times = {"iterations": F.iterations, "train_seconds": time.perf_counter() - started}
        write_json_atomic(times_path, times)
    metrics = read_json(metrics_path)
    if metrics is None or metrics.get("step") != F.iterations or "evaluate_seconds" not in times:
        started = time.perf_counter()
        classifier_dir = (F.classifier_dir or os.environ.get("MMALI_CLASSIFIER_DIR")
                          or os.path.join(F.root, "classifiers"))
        run([sys.executable, "-m", "mmali_tf.evaluate", f"--workdir={workdir}", f"--metrics={','.join(F.metrics)}",
             f"--max_pairs={F.max_pairs}", f"--classifier_dir={classifier_dir}", *data], log_path)
        times["evaluate_seconds"] = time.perf_counter() - started
        write_json_atomic(times_path, times)
        metrics = read_json(metrics_path)
    trained, evaluated = times["train_seconds"], times["evaluate_seconds"]
    values = metrics["metrics"]
    cross = [v for k, v in values.items() if k.startswith("coherence/") and "_to_" in k]
    return {"accuracy": 100.0 * values[f"latent_acc/{UPRIGHT}"],
            "cross": 100.0 * sum(cross) / len(cross) if cross else None,
            "joint": 100.0 * values["coherence/joint"] if "coherence/joint" in values else None,
            "train_seconds": trained, "eval_seconds": evaluated, "workdir": workdir}


def main(argv):
    del argv
    results = {}
    for num in (int(m) for m in F.modalities):
        for discriminator in F.discriminators:
            results[(discriminator, num)] = one_configuration(num, discriminator)
            r = results[(discriminator, num)]
            print(f"M={num} {discriminator}: probe {r['accuracy']:.2f}%  cross {percent(r['cross'])}  "
                  f"joint {percent(r['joint'])}  train {r['train_seconds'] / 60:.1f} min  "
                  f"eval {r['eval_seconds'] / 60:.1f} min", flush=True)

    print(f"\nTable 1 (MultiMNIST linear probe on the upright modality, MNIST test; {F.iterations} iterations per "
          "configuration; paper: 250,000)")
    print("| modalities | joint (ours) | joint (paper) | factorized (ours) | factorized (paper) "
          "| mean cross coherence (J / F) | joint coherence (J / F) | train min (J / F) |")
    print("|---|---|---|---|---|---|---|---|")
    for num in (int(m) for m in F.modalities):
        cells = []
        for discriminator in ("joint", "factorized"):
            r = results.get((discriminator, num))
            cells += [f"{r['accuracy']:.2f}" if r else "-", f"{PAPER[(discriminator, num)]:.2f}"]
        times = " / ".join(f"{results[(d, num)]['train_seconds'] / 60:.1f}" if (d, num) in results else "-"
                           for d in ("joint", "factorized"))
        cross, joint = (" / ".join(percent(results[(d, num)][key]) if (d, num) in results else "-"
                                   for d in ("joint", "factorized")) for key in ("cross", "joint"))
        print(f"| {num} | " + " | ".join(cells) + f" | {cross} | {joint} | {times} |")
    with open(os.path.join(F.root, f"table1_it{F.iterations}.json"), "w") as f:
        json.dump({f"{d}/m{n}": r for (d, n), r in results.items()}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
