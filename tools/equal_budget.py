"""Equal-budget check: does a setting of ours learn what the authors' code learns in the same number of iterations?

    python tools/equal_budget.py --config=multimnist_m2 --iterations=3000 --seeds=0,1 --root=/work/runs/equal_budget \
        [--sides=ours,theirs] [--label=ours] [--ours_flags=--precision=bf16,...] [--data_dir=DIR] \
        [--reference_dir=THEIR_TREE --torch_python=TORCH_VENV/bin/python] [--max_pairs=10000]

Every speed device (a spectral-norm schedule, a precision, a batching) must pass this before it becomes a default
(BUILD.md, "Speed"). For each seed and side the tool trains one run of ``--iterations`` iterations of the preset
``--config``, then evaluates every run with one evaluator, ``python -m mmali_tf.evaluate`` (EMA weights, the
shared classifiers of ``<root>/classifiers``, ``--max_pairs`` test tuples):

* ``ours``: ``python -m mmali_tf.train --config=<preset> --max_iter=N --seed=S`` plus ``--ours_flags``, in
  ``<root>/<config>/<label>_s<S>``;
* ``theirs``: the authors' training script (6b5d/mmali, their README options, torch seed S) run by
  ``tools/equal_budget_theirs.py`` in the torch interpreter on our training tuples in our pipeline's order; its
  weights are loaded into our networks (``tests/golden/reference_port.py``) and saved as a checkpoint of a run directory
  ``<root>/<config>/theirs_s<S>`` with the preset's config, so the same evaluator reads it.

Runs and evaluations already done are reused (delete a run directory to redo it). The table lists every metric of
every run and, per metric, whether each run of ``--label`` lies within the authors' seed-to-seed range or above it
(all metrics are accuracies or coherences: higher is better; the style probe is shown, not judged). The verdict is
"pass" when that holds for every metric. ``--against=<label>`` judges against runs of ours instead (e.g. bf16 against
fp32). Their side needs the torch venv and their work tree (BUILD.md, "Speed against the authors' code: how to
measure"); ``--sides=ours`` compares against the authors' runs already in ``--root``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from absl import flags, logging  # noqa: E402

from mmali_tf import cli, configs  # noqa: E402
from mmali_tf.errors import MMALIError  # noqa: E402
from mmali_tf.tools import flag_checks  # noqa: E402

F = flags.FLAGS
def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_string("config", "multimnist_m2", "Preset to train on both sides (mnist_svhn, multimnist_m2, "
                        "multimnist_m4).")
    flags.DEFINE_integer("iterations", 3000, "Iterations per run.", lower_bound=1)
    flags.DEFINE_list("seeds", ["0", "1"], "Seeds; one run per seed and side.")
    flags.DEFINE_string("root", "runs/equal_budget", "Directory of the runs, the classifiers and the table.")
    flags.DEFINE_list("sides", ["ours", "theirs"], "Sides to train (and evaluate): ours, theirs.")
    flags.DEFINE_string("label", "ours", "Name of our runs (e.g. bf16), so that several settings can sit side by "
                        "side.")
    flags.DEFINE_list("ours_flags", [], "More flags for our training, e.g. --precision=bf16.")
    flags.DEFINE_string("against", "theirs", "Label of the reference runs: theirs (the authors' code) or the label of "
                        "runs of ours already in --root (e.g. fp32, to check --precision=bf16 against it).")
    flags.DEFINE_string("data_dir", None, "Data directory (mnist.npz; SVHN or its stand-in for mnist_svhn); default "
                        "$MMALI_DATA_DIR.")
    flags.DEFINE_string("reference_dir", None, "Their work tree (6b5d/mmali at 3b500a7); needed for --sides=theirs.")
    flags.DEFINE_string("torch_python", None, "Python of the torch venv; needed for --sides=theirs.")
    flag_checks.require_existing_dir("data_dir")
    flag_checks.require_existing_dir("reference_dir")
    flag_checks.require_names("sides", ("ours", "theirs"))
    flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads for their side (0: the usable cores).")
    flags.DEFINE_integer("max_pairs", 10_000, "Test tuples for the coherence metrics.", lower_bound=0)
    flags.DEFINE_list("metrics", ["latent", "cross", "joint", "synergy"], "Metric groups for mmali_tf.evaluate.")


PYTHON = sys.executable


def _run(command: list[str], log: Path, env=None) -> str:
    """Run ``command``, its output appended to ``log``; the last line of its stdout. One error line on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=out, text=True, env=env, cwd=REPO)
        out.write(done.stdout)
    if done.returncode != 0:
        raise MMALIError(f"{command[1] if command[1] != '-m' else command[2]} failed (exit {done.returncode}); "
                         f"see {log}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def data_dir() -> str:
    found = F.data_dir or os.environ.get("MMALI_DATA_DIR")
    if not found:
        raise MMALIError("give --data_dir (or set MMALI_DATA_DIR)")
    return found


def train_ours(run: Path, seed: int) -> None:
    if (run / "checkpoints" / f"ckpt-{F.iterations}.index").exists():
        return
    _run([PYTHON, "-m", "mmali_tf.train", f"--config={F.config}", f"--max_iter={F.iterations}", f"--seed={seed}",
          f"--workdir={run}", f"--data_dir={data_dir()}", f"--save_every={F.iterations}",
          f"--image_every={F.iterations}", *F.ours_flags], run.parent / f"{run.name}.log")


def train_theirs(run: Path, seed: int) -> None:
    """Their script on our tuples, then their weights as a checkpoint of ours (evaluated like our runs)."""
    if (run / "checkpoints" / f"ckpt-{F.iterations}.index").exists():
        return
    import numpy as np

    from mmali_tf import checkpointing, checks, configs, rundir, training, training_data
    from tests.golden import reference_port

    config = checks.check_registered(configs.build(F.config, {"train.max_iter": F.iterations, "train.seed": seed,
                                                              "data.data_dir": data_dir()}))
    splits = training_data.load_modalities(config, "train")
    pairs = training_data.make_pairs(config, splits, "train")
    run.mkdir(parents=True, exist_ok=True)
    data_path, weights_path = run / "their_data.npz", run / "their_weights.npz"
    names = config.model.names
    np.savez(data_path, **{f"images/{i}": splits[n].examples for i, n in enumerate(names)},
             **{f"pairs/{i}": pairs[n] for i, n in enumerate(names)})
    job = {"config": F.config, "reference_dir": F.reference_dir, "batch_size": config.train.batch_size,
           "iterations": F.iterations, "seed": seed, "data": str(data_path), "out": str(weights_path),
           "data_seed": config.data.seed, "torch_threads": F.torch_threads}
    env = dict(os.environ, PYTHONPATH=F.reference_dir)
    result = _run([F.torch_python, str(REPO / "tools" / "equal_budget_theirs.py"), json.dumps(job)],
                  run.parent / f"{run.name}.log", env=env)
    data_path.unlink()
    their_keys = their_modality_keys(F.config, len(names))
    model = training.build_model(config)
    with np.load(weights_path) as state:
        flat = {k: state[k] for k in state.files}
    weights = {}
    for pair in reference_port.tensor_pairs(model, their_keys):
        network, name = pair.key.split("/", 1)
        weights[pair.key] = flat[f"{network}.{name}"]
    reference_port.load_reference_weights(model, their_keys, weights)  # live and EMA (a copy before ema_start)
    if F.iterations > config.train.ema_start:
        raise MMALIError("the authors' EMA weights are not exported: keep --iterations <= the preset's ema_start")
    model.d_optimizer.iterations.assign(F.iterations)
    rundir.write_start_files(config, str(run), {"theirs": json.loads(result), "weights": str(weights_path)})
    checkpointing.make_manager(model, checkpointing.checkpoint_dir(str(run))).save(checkpoint_number=F.iterations)


def their_modality_keys(preset: str, num: int) -> list[str]:
    """Their sorted modality keys: '0mnist', '1mnist', ... for MultiMNIST; '0mnist', '1svhn' for MNIST-SVHN."""
    return ["0mnist", "1svhn"] if preset == "mnist_svhn" else [f"{i}mnist" for i in range(num)]


def evaluate(run: Path) -> dict[str, float]:
    out = run / "metrics.json"
    if not out.exists():
        _run([PYTHON, "-m", "mmali_tf.evaluate", f"--workdir={run}", f"--data_dir={data_dir()}",
              f"--classifier_dir={Path(F.root) / 'classifiers'}", f"--max_pairs={F.max_pairs}",
              f"--metrics={','.join(F.metrics)}"], run.parent / f"{run.name}.log")
    return json.loads(out.read_text())["metrics"]


def table(results: dict[str, dict[int, dict[str, float]]]) -> tuple[str, bool]:
    labels = list(results)
    runs = [(label, seed) for label in labels for seed in results[label]]
    keys = sorted({k for label, seed in runs for k in results[label][seed]
                   if not k.endswith("_chance") and isinstance(results[label][seed][k], (int, float))})
    # The style probe is shown but not judged: style should carry little of the class, so higher is not better.
    head = ("| metric | " + " | ".join(f"{label} s{seed}" for label, seed in runs)
            + f" | {F.label} within or above {F.against} |")
    lines = [head, "|---|" + "---:|" * len(runs) + "---|"]
    passed = True
    for key in keys:
        cells = [f"{100 * results[label][seed].get(key, float('nan')):.2f}" for label, seed in runs]
        verdict = ""
        if F.against in results and F.label in results and F.label != F.against and "style" not in key:
            floor = min(results[F.against][s][key] for s in results[F.against])
            ok = all(results[F.label][s][key] >= floor for s in results[F.label])
            passed &= ok
            verdict = "yes" if ok else f"no ({F.against} from {100 * floor:.2f})"
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines), passed


def main(argv) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    seeds = [int(s) for s in F.seeds]
    root = Path(F.root) / F.config
    configs.get(F.config)  # an unknown preset is refused before anything is trained or written
    if "theirs" in F.sides and not (F.reference_dir and F.torch_python):
        raise MMALIError("--sides=theirs needs --reference_dir (their work tree) and --torch_python (BUILD.md, "
                         "'Speed against the authors' code: how to measure')")
    started = time.perf_counter()
    for seed in seeds:
        if "ours" in F.sides:
            print(f"training {F.label} seed {seed} ...", flush=True)
            train_ours(root / f"{F.label}_s{seed}", seed)
        if "theirs" in F.sides:
            print(f"training theirs seed {seed} ...", flush=True)
            train_theirs(root / f"theirs_s{seed}", seed)
    results = {}
    for label in dict.fromkeys([F.label, F.against]):
        runs = {s: root / f"{label}_s{s}" for s in seeds if (root / f"{label}_s{s}" / "checkpoints").exists()}
        if runs:
            print(f"evaluating {label} ...", flush=True)
            results[label] = {s: evaluate(run) for s, run in runs.items()}
    text, passed = table(results)
    verdict = ("pass" if passed else "FAIL") if len(results) == 2 else "no comparison (one side only)"
    against = f"{F.against} (" + ("the authors' code" if F.against == "theirs" else "runs of ours") + ")"
    report = (f"{F.config}, {F.iterations:,} iterations, seeds {', '.join(map(str, seeds))}; ours: "
              f"{' '.join(F.ours_flags) or 'defaults'}; evaluation: EMA weights, {F.max_pairs:,} test tuples\n\n"
              f"{text}\n\nverdict ({F.label} vs {against}): {verdict} ({time.perf_counter() - started:.0f} s)")
    (root / f"table_{F.label}_vs_{F.against}.md").write_text(report + "\n")
    print(report)


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
