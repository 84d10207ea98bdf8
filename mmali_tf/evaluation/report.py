"""Evaluation outputs: the ``metrics.json`` record (schema + validation), the Markdown table, TensorBoard scalars,
and a progress line with ETA for long loops."""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import time

from mmali_tf.atomic_files import write_text_atomic

SCHEMA = "mmali_tf.metrics/1"
METRIC_KEY = re.compile(r"^(latent_acc(_content|_style)?(_max)?|coherence|synergy)/[A-Za-z0-9_.-]+$")

DESCRIPTIONS = {
    "latent_acc": "linear probe on the full latent, test accuracy (final epoch)",
    "latent_acc_content": "linear probe on the content dims only (final epoch)",
    "latent_acc_style": "linear probe on the style dims only (final epoch)",
    "latent_acc_max": "linear probe on the full sampled latent, max test accuracy over epochs (reference)",
    "latent_acc_content_max": "content-only probe, max over epochs (reference)",
    "latent_acc_style_max": "style-only probe, max over epochs (reference)",
    "coherence": "cross coherence over the test pairs (source style kept)",
    "synergy": "synergy: geometric-mean joint content + own style, over the test pairs",
}
JOINT_DESCRIPTION = "joint coherence: one prior z decoded by every decoder, all classifiers agree"
JOINT_CHANCE_DESCRIPTION = "agreement expected from each decoder's predicted-class frequencies alone (independence)"

# Top-level fields of metrics.json and their types.
FIELDS = {
    "schema": str, "metrics": dict, "protocol": str, "step": int, "checkpoint": (str, type(None)), "workdir": str,
    "data": dict, "pairing": (dict, type(None)), "classifiers": dict, "settings": dict,
    "wall_time_seconds": (int, float), "timings": dict, "created": str, "versions": dict, "notes": list,
}


def format_seconds(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Prints ``label: done/total (pct), elapsed, ETA`` at most every ``every`` seconds and once at the end."""

    def __init__(self, total: int, label: str, print_fn=print, every: float = 15.0):
        self.total = max(int(total), 1)
        self.label = label
        self.print_fn = print_fn
        self.every = every
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        finished = done >= self.total
        if not finished and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.start
        if finished:
            self.print_fn(f"  {self.label}: {done:,}/{self.total:,} done in {format_seconds(elapsed)}")
            return
        eta = elapsed / max(done, 1) * (self.total - done)
        self.print_fn(f"  {self.label}: {done:,}/{self.total:,} ({done / self.total:.0%}), "
                      f"{format_seconds(elapsed)} elapsed, ETA {format_seconds(eta)}")


def data_label(dataset: str, source: str) -> str:
    """Human name of a modality's data, saying "SVHN stand-in" for the synthetic SVHN replacement."""
    origin = source.split(" from ", 1)[0]  # e.g. "svhn stand-in (synthetic, not genuine SVHN)/test"; not the path
    if "stand-in" in origin:
        return "SVHN stand-in" if dataset == "svhn" else f"{dataset} stand-in"
    return {"mnist": "MNIST", "svhn": "SVHN", "digits_grey28": "embedded digits (grey28)",
            "digits_colour32": "embedded digits (colour32)"}.get(dataset, dataset)


def split_record(split) -> dict:
    return {"source": split.source, "fingerprint": split.fingerprint, "size": len(split)}


def build_record(*, metrics: dict[str, float], protocol: str, step: int, checkpoint: str | None, workdir: str,
                 data: dict, pairing: dict | None, classifiers: dict, settings: dict, wall_time: float,
                 timings: dict, notes: list[str] | None = None) -> dict:
    import keras
    import tensorflow as tf

    return {
        "schema": SCHEMA,
        "metrics": {k: float(v) for k, v in sorted(metrics.items())},
        "protocol": protocol,
        "step": int(step),
        "checkpoint": checkpoint,
        "workdir": os.path.abspath(workdir),
        "data": data,
        "pairing": pairing,
        "classifiers": classifiers,
        "settings": settings,
        "wall_time_seconds": round(float(wall_time), 1),
        "timings": {k: round(float(v), 1) for k, v in timings.items()},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "notes": list(notes or []),
    }


def validate_record(record: dict) -> None:
    """Raise ValueError listing every way ``record`` departs from the metrics.json schema."""
    problems = []
    for key, kind in FIELDS.items():
        if key not in record:
            problems.append(f"missing field {key!r}")
        elif not isinstance(record[key], kind) or isinstance(record[key], bool):
            problems.append(f"field {key!r} has type {type(record[key]).__name__}")
    if record.get("schema") not in (None, SCHEMA):
        problems.append(f"schema is {record.get('schema')!r}, expected {SCHEMA!r}")
    if record.get("protocol") not in (None, "clean", "reference"):
        problems.append(f"protocol is {record.get('protocol')!r}")
    for key, value in (record.get("metrics") or {}).items():
        if not METRIC_KEY.match(key):
            problems.append(f"metric key {key!r} does not match the key pattern")
        if not isinstance(value, float) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
            problems.append(f"metric {key!r} = {value!r} is not a fraction in [0, 1]")
    for name, entry in (record.get("data") or {}).items():
        for field in ("dataset", "kind", "quarter_turns", "label", "test"):
            if field not in entry:
                problems.append(f"data[{name!r}] lacks {field!r}")
        for split in ("train", "test"):
            if split in entry and not {"source", "fingerprint", "size"} <= set(entry[split]):
                problems.append(f"data[{name!r}][{split!r}] needs source, fingerprint and size")
    for name, entry in (record.get("classifiers") or {}).items():
        for field in ("kind", "dataset", "protocol", "sha256", "test_accuracy", "epochs", "path"):
            if field not in entry:
                problems.append(f"classifiers[{name!r}] lacks {field!r}")
    if problems:
        raise ValueError("metrics record does not match schema " + SCHEMA + ": " + "; ".join(problems))


def describe(key: str) -> str:
    if key == "coherence/joint":
        return JOINT_DESCRIPTION
    if key == "coherence/joint_chance":
        return JOINT_CHANCE_DESCRIPTION
    prefix, _, name = key.partition("/")
    text = DESCRIPTIONS.get(prefix, "")
    if prefix == "coherence" and "_to_" in name:
        a, b = name.split("_to_", 1)
        text = f"cross coherence {a} -> {b} over the test pairs (source style kept)"
    return text


def _order(key: str) -> tuple:
    prefix = key.split("/", 1)[0]
    groups = ["coherence", "synergy", "latent_acc", "latent_acc_max", "latent_acc_content", "latent_acc_content_max",
              "latent_acc_style", "latent_acc_style_max"]
    return (groups.index(prefix) if prefix in groups else len(groups), key.startswith("coherence/joint"), key)


def metrics_table(metrics: dict[str, float]) -> str:
    lines = ["| metric | value | what |", "|---|---:|---|"]
    for key in sorted(metrics, key=_order):
        lines.append(f"| `{key}` | {100.0 * metrics[key]:.2f}% | {describe(key)} |")
    return "\n".join(lines)


def markdown(record: dict) -> str:
    out = [f"# Evaluation at step {record['step']:,}", "",
           f"- run: `{record['workdir']}`",
           f"- checkpoint: `{record['checkpoint']}`",
           f"- protocol: **{record['protocol']}**",
           f"- wall time: {format_seconds(record['wall_time_seconds'])}",
           ]
    if record.get("pairing"):
        p = record["pairing"]
        out.append(f"- test pairing: {p.get('summary', '')} (seed {p.get('seed')})")
    out += ["", metrics_table(record["metrics"]), ""]
    if record.get("data"):
        out += ["## Data", "", "| modality | data | kind | quarter turns | test split | test fingerprint |",
                "|---|---|---|---:|---|---|"]
        for name, d in record["data"].items():
            out.append(f"| {name} | {d['label']} | {d['kind']} | {d['quarter_turns']} | {d['test']['size']:,} "
                       f"images | `{d['test']['fingerprint']}` |")
        out.append("")
    if record.get("classifiers"):
        out += ["## Coherence classifiers", "",
                "| modality | classifier | trained on | test accuracy | epochs (selected) | selection |",
                "|---|---|---|---:|---|---|"]
        for name, c in record["classifiers"].items():
            out.append(f"| {name} | {c['kind']} ({os.path.basename(c['path'])}) | {c.get('data_label', c['dataset'])}"
                       f" | {100.0 * c['test_accuracy']:.2f}% | {c['epochs']} ({c.get('selected_epoch')}) "
                       f"| {c.get('selection', '')} |")
        out.append("")
    for note in record.get("notes") or []:
        out.append(f"- {note}")
    return "\n".join(out).rstrip() + "\n"


def tensorboard_tag(key: str, protocol: str) -> str:
    if protocol == "clean":
        return key
    prefix, _, name = key.partition("/")
    return f"{prefix}_{protocol}/{name}"


def log_tensorboard(logdir: str, metrics: dict[str, float], step: int, protocol: str) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for key, value in sorted(metrics.items()):
            tf.summary.scalar(tensorboard_tag(key, protocol), float(value), step=int(step))
    writer.flush()
    writer.close()


def output_name(protocol: str) -> str:
    """``metrics`` for the clean protocol, ``metrics_reference`` for the reference protocol."""
    return "metrics" if protocol == "clean" else f"metrics_{protocol}"


def write_outputs(record: dict, workdir: str, log_to_tensorboard: bool = True) -> dict[str, str]:
    """``<workdir>/<name>.json``, ``<name>.md``, one appended line in ``metrics_history.jsonl``, TensorBoard scalars."""
    validate_record(record)
    name = output_name(record["protocol"])
    paths = {"json": os.path.join(workdir, f"{name}.json"), "md": os.path.join(workdir, f"{name}.md"),
             "history": os.path.join(workdir, "metrics_history.jsonl")}
    os.makedirs(workdir, exist_ok=True)
    write_text_atomic(paths["json"], json.dumps(record, indent=2, sort_keys=True) + "\n")
    write_text_atomic(paths["md"], markdown(record))
    with open(paths["history"], "a") as f:
        f.write(json.dumps({k: record[k] for k in ("step", "protocol", "checkpoint", "created", "metrics")},
                           sort_keys=True) + "\n")
    if log_to_tensorboard:
        paths["tensorboard"] = os.path.join(workdir, "tensorboard")
        log_tensorboard(paths["tensorboard"], record["metrics"], record["step"], record["protocol"])
    return paths
