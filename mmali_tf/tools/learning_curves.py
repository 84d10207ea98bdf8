"""Learning curves toward the paper's budget: Table 1's figures at chosen iteration counts, EMA and live weights.

    python -m mmali_tf.tools.learning_curves --root=runs/curves --configs=multimnist_m2,multimnist_m2_joint \\
        --steps=10000,25000,50000,75000,100000 --data_dir=../shared/data

For each preset in ``--configs`` the run directory ``<root>/<preset>_s<seed>`` is trained (or resumed) up to the
largest of ``--steps`` with ``train.keep_steps`` set to ``--steps``, so that the checkpoint of every chosen step is
kept in ``checkpoints/kept/`` however many newer ones follow. Then each kept checkpoint is evaluated with
``python -m mmali_tf.evaluate --checkpoint=... --weights=ema`` and, from ``--live_from`` on (default: the config's
``ema_start``, before which the EMA networks equal the live ones), also ``--weights=live``. Nothing is retrained: a
run that is already past a step is only evaluated, and ``--notrain`` evaluates whatever a run (possibly still
training in another process) has kept so far.

Every evaluation is one JSON record per (configuration, step, weights) in ``<root>/learning_curves.jsonl``; a
record already there is not evaluated again, so an interrupted call resumes where it stopped. ``--plot`` draws the
curves from the records (``--plot_only``: without training or evaluating): the upright modality's linear-probe
accuracy against iterations with the paper's Table 1 values as horizontal references, and the mean cross coherence
and the joint coherence in a second panel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import flags

from mmali_tf import cli, configs
from mmali_tf.atomic_files import write_text_atomic
from mmali_tf.errors import MMALIError
from mmali_tf.evaluate import parse_metrics
from mmali_tf.tools import flag_checks
from mmali_tf.evaluation import report
from mmali_tf.tools.run_table1 import PAPER, percent, read_json, run, summary

RECORDS = "learning_curves.jsonl"
WEIGHTS = ("ema", "live")
F = flags.FLAGS


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_list("configs", ["multimnist_m2", "multimnist_m2_joint"], "Presets to train and evaluate.")
    flags.DEFINE_list("steps", ["10000", "25000", "50000", "75000", "100000"],
                      "Iteration counts to keep and evaluate; training goes up to the largest.")
    flags.DEFINE_string("root", "runs/curves", "Directory of the run directories and the records.")
    flags.DEFINE_integer("seed", 0, "Seed of every run.", lower_bound=0)
    flags.DEFINE_bool("train", True, "Train or resume each run up to the largest step (--notrain: evaluate what the "
                      "runs have kept so far).")
    flags.DEFINE_integer("live_from", None, "Evaluate the live weights too from this step on (default: each "
                         "config's train.ema_start).", lower_bound=0)
    flags.DEFINE_string("data_dir", None, "Directory with mnist.npz (default: $MMALI_DATA_DIR).")
    flags.DEFINE_list("extra_train_flags", [], "More flags for mmali_tf.train, e.g. --precision=bf16.")
    flags.DEFINE_list("extra_eval_flags", [], "More flags for mmali_tf.evaluate, e.g. --probe_epochs=20.")
    flags.DEFINE_list("metrics", ["latent", "cross", "joint"], "Metric groups passed to mmali_tf.evaluate.")
    flags.DEFINE_integer("max_pairs", 20_000, "Test tuples for cross coherence (0 = all).", lower_bound=0)
    flags.DEFINE_string("classifier_dir", None, "Coherence classifier directory shared by the runs (default: "
                        "$MMALI_CLASSIFIER_DIR, else <root>/classifiers).")
    flags.DEFINE_string("plot", None, "Write the learning-curve figure (PNG) here.")
    flags.DEFINE_bool("plot_only", False, "Only draw --plot from the records already in --root.")
    flags.DEFINE_list("paper_modalities", ["2"], "Modality counts whose Table 1 values are drawn as references.")
    flag_checks.require_existing_dir("data_dir")
    flag_checks.require_output_dir("root")
    flag_checks.require_output_dir("classifier_dir")
    flag_checks.require("metrics", parse_metrics)
    flag_checks.require("steps", parse_steps)
    flag_checks.require_names("paper_modalities", ("2", "3", "4"))
    flags.register_validator("plot", lambda p: p is None or p.endswith(".png"), "--plot must name a .png file")
    flags.register_multi_flags_validator(["plot", "plot_only"], lambda f: f["plot"] or not f["plot_only"],
                                         "--plot_only needs --plot")


def parse_steps(values) -> tuple[int, ...]:
    """The sorted distinct positive step counts; :class:`MMALIError` for anything else."""
    steps = set()
    for value in values:
        try:
            step = int(str(value).replace("_", ""))
        except ValueError:
            raise MMALIError(f"steps are whole numbers, not {value!r}") from None
        if step < 1:
            raise MMALIError(f"steps must be positive, not {value}")
        steps.add(step)
    if not steps:
        raise MMALIError("no steps")
    return tuple(sorted(steps))


def run_dir(preset: str) -> str:
    return os.path.join(F.root, f"{preset}_s{F.seed}")


def kept_checkpoint(workdir: str, step: int) -> str | None:
    """The kept checkpoint of ``step`` in ``workdir``, or None when training has not kept it (yet)."""
    prefix = os.path.join(workdir, "checkpoints", "kept", f"ckpt-{step}")
    return prefix if os.path.exists(prefix + ".index") else None


def describe(preset: str) -> dict:
    """The discriminator kind, modality count, EMA start and probed modality (the first: MultiMNIST's upright one)
    of ``preset``."""
    config = configs.get(preset)
    return {"discriminator": config.model.discriminator, "modalities": len(config.model.modalities),
            "ema_start": config.train.ema_start, "probe_modality": config.model.modalities[0].name}


def load_records(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def save_records(path: str, records: list[dict]) -> None:
    records = sorted(records, key=lambda r: (r["config"], r["step"], r["weights"]))
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def train(preset: str, workdir: str, steps: tuple[int, ...]) -> None:
    data = [f"--config.data.data_dir={F.data_dir}"] if F.data_dir else []
    os.makedirs(workdir, exist_ok=True)
    run([sys.executable, "-m", "mmali_tf.train", f"--config={preset}", f"--workdir={workdir}",
         f"--config.train.max_iter={steps[-1]}", f"--config.train.seed={F.seed}",
         "--config.train.keep_steps=" + ",".join(str(s) for s in steps), *data, *F.extra_train_flags],
        os.path.join(workdir, "learning_curves.log"))


def evaluate(preset: str, workdir: str, step: int, checkpoint: str, weights: str, info: dict) -> dict:
    """Evaluate one kept checkpoint with ``weights``; its record."""
    classifier_dir = F.classifier_dir or os.environ.get("MMALI_CLASSIFIER_DIR") or os.path.join(F.root, "classifiers")
    data = [f"--data_dir={F.data_dir}"] if F.data_dir else []
    started = time.perf_counter()
    run([sys.executable, "-m", "mmali_tf.evaluate", f"--workdir={workdir}", f"--checkpoint={checkpoint}",
         f"--weights={weights}", f"--metrics={','.join(F.metrics)}", f"--max_pairs={F.max_pairs}",
         f"--classifier_dir={classifier_dir}", *data, *F.extra_eval_flags], os.path.join(workdir, "learning_curves.log"))
    name = report.output_name("clean", weights)
    result = read_json(os.path.join(workdir, f"{name}.json"))
    if not result or result.get("checkpoint") != checkpoint or result.get("step") != step:
        raise MMALIError(f"mmali_tf.evaluate did not write the record of {checkpoint} into {workdir}/{name}.json")
    return {"config": preset, **info, "seed": F.seed, "step": step, "weights": weights, "checkpoint": checkpoint,
            "checkpoint_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(os.path.getmtime(checkpoint + ".index"))),
            **summary(result["metrics"], info["probe_modality"]), "metrics": result["metrics"],
            "max_pairs": F.max_pairs, "eval_seconds": round(time.perf_counter() - started, 1)}


def print_records(records: list[dict]) -> None:
    print("\n| config | step | weights | probe (paper) | mean cross coherence | joint coherence |")
    print("|---|---:|---|---|---:|---:|")
    for r in sorted(records, key=lambda r: (r["config"], r["step"], r["weights"])):
        paper = PAPER.get((r["discriminator"], r["modalities"]))
        cells = [percent(r.get(k)) for k in ("probe", "cross", "joint")]
        print(f"| {r['config']} | {r['step']:,} | {r['weights']} | {cells[0]} ({paper:.2f} at 250,000) | "
              f"{cells[1]} | {cells[2]} |")


def column(rows: list[dict], key: str) -> list[float]:
    """``key`` of each record, NaN (a gap in the curve) where it was not measured."""
    return [float("nan") if r.get(key) is None else r[key] for r in rows]


def plot(records: list[dict], path: str) -> None:
    """The two-panel learning-curve figure of ``records`` at ``path``."""
    import matplotlib  # deferred: only the plot step needs it (slow import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: must follow matplotlib.use("Agg")

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8.5), sharex=True)
    colours = {}
    configs = sorted({r["config"] for r in records})
    for i, config in enumerate(configs):
        colours[config] = f"C{i}"
        for weights, marker, style in (("ema", "o", "-"), ("live", "x", ":")):
            rows = sorted((r for r in records if r["config"] == config and r["weights"] == weights),
                          key=lambda r: r["step"])
            if not rows:
                continue
            steps = [r["step"] for r in rows]
            top.plot(steps, column(rows, "probe"), style, marker=marker, color=colours[config],
                     label=f"{config} ({weights})")
            if weights == "ema":
                bottom.plot(steps, column(rows, "cross"), "-", marker="o", color=colours[config],
                            label=f"{config}: mean cross")
                bottom.plot(steps, column(rows, "joint"), "--", marker="s", color=colours[config],
                            label=f"{config}: joint")
    for discriminator, style in (("factorized", "-"), ("joint", "--")):
        for num in sorted(int(m) for m in F.paper_modalities):
            value = PAPER[(discriminator, num)]
            top.axhline(value, color="grey", linestyle=style, linewidth=0.8)
            top.annotate(f"paper, {discriminator}, M={num}: {value:.2f} (250k)", (0.01, value),
                         xycoords=("axes fraction", "data"), fontsize=7, color="grey", va="bottom")
    top.set_ylabel("linear probe accuracy, upright modality (%)")
    top.set_title("MultiMNIST learning curves (EMA solid, live dotted)")
    top.grid(alpha=0.3)
    top.legend(fontsize=7, loc="lower right")
    bottom.set_ylabel("coherence (EMA weights, %)")
    bottom.set_xlabel("training iterations")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=7, loc="best")
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}.png"
    try:
        fig.savefig(temporary, dpi=110)
        os.replace(temporary, path)
    finally:
        plt.close(fig)
        if os.path.exists(temporary):
            os.remove(temporary)
    print(f"wrote {path}", flush=True)


def main(argv) -> None:
    del argv
    records_path = os.path.join(F.root, RECORDS)
    records = load_records(records_path)
    if not F.plot_only:
        steps = parse_steps(F.steps)
        done = {(r["config"], r["step"], r["weights"]) for r in records}
        os.makedirs(F.root, exist_ok=True)
        for preset in F.configs:
            info = describe(preset)
            workdir = run_dir(preset)
            if F.train:
                train(preset, workdir, steps)
            live_from = info["ema_start"] if F.live_from is None else F.live_from
            for step in steps:
                checkpoint = kept_checkpoint(workdir, step)
                if checkpoint is None:
                    print(f"{preset}: step {step:,} not kept (yet) in {workdir}", flush=True)
                    continue
                for weights in WEIGHTS if step >= live_from else ("ema",):
                    if (preset, step, weights) in done:
                        continue
                    record = evaluate(preset, workdir, step, checkpoint, weights, info)
                    records.append(record)
                    done.add((preset, step, weights))
                    save_records(records_path, records)
                    print(f"{preset} step {step:,} {weights}: " + "  ".join(
                        f"{key} {percent(record[key])}" for key in ("probe", "cross", "joint"))
                        + f"  ({record['eval_seconds']:.0f} s)", flush=True)
    if not records:
        raise MMALIError(f"no records in {records_path}")
    print_records(records)
    if F.plot:
        plot(records, F.plot)


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
