"""Evaluation outputs: the ``metrics.json`` record (schema + validation), the Markdown table and TensorBoard
scalars."""

from __future__ import annotations

import datetime
import json
import math
import os

import keras
import tensorflow as tf

from mmali_tf.atomic_files import write_text_atomic
from mmali_tf.constants import FEATURES
from mmali_tf.kinds import KINDS
from mmali_tf.evaluation.metrics import METRICS, metric_of
from mmali_tf.evaluation.progress import format_seconds
from mmali_tf.data.datasets import data_label  # noqa: F401  (reports name each modality's data by it)

SCHEMA = "mmali_tf.metrics/1"


class _MetricKey:
    """``METRIC_KEY.match(key)``: the registered metric group that writes ``key`` (:mod:`.metrics`), or None."""

    @staticmethod
    def match(key: str):
        return metric_of(key)


METRIC_KEY = _MetricKey()

# Top-level fields of metrics.json and their types.
FIELDS = {
    "schema": str, "metrics": dict, "protocol": str, "step": int, "checkpoint": (str, type(None)), "workdir": str,
    "data": dict, "pairing": (dict, type(None)), "classifiers": dict, "settings": dict,
    "wall_time_seconds": (int, float), "timings": dict, "created": str, "versions": dict, "notes": list,
}


def split_record(split) -> dict:
    return {"source": split.source, "fingerprint": split.fingerprint, "size": len(split)}


def build_record(*, metrics: dict[str, float], protocol: str, step: int, checkpoint: str | None, workdir: str,
                 data: dict, pairing: dict | None, classifiers: dict, settings: dict, wall_time: float,
                 timings: dict, notes: list[str] | None = None) -> dict:
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
        metric = metric_of(key)
        if metric is None:
            problems.append(f"metric key {key!r} does not match the key pattern of any registered metric")
            continue
        low, high = metric.value_range
        if not isinstance(value, float) or not math.isfinite(value) or not low <= value <= high:
            what = "a fraction" if metric.percent else "a value"
            problems.append(f"metric {key!r} = {value!r} is not {what} in [{low:g}, {high:g}]")
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
    metric = metric_of(key)
    return metric.describe(key) if metric else ""


_TABLE_ORDER = ("correlation", "cross", "joint", "synergy", "latent")  # then any other registered group


def _order(key: str) -> tuple:
    metric = metric_of(key)
    groups = list(_TABLE_ORDER) + [n for n in METRICS.names() if n not in _TABLE_ORDER]
    rank = groups.index(metric.name) if metric is not None and metric.name in groups else len(groups)
    return (rank, metric.sort_key(key) if metric is not None else 0, key)


def format_value(key: str, value: float) -> str:
    """``12.34%`` for fractions, ``0.2981`` for values shown as they are (cosines)."""
    metric = metric_of(key)
    return f"{value:.4f}" if metric is not None and not metric.percent else f"{100.0 * value:.2f}%"


def metrics_table(metrics: dict[str, float]) -> str:
    lines = ["| metric | value | what |", "|---|---:|---|"]
    for key in sorted(metrics, key=_order):
        lines.append(f"| `{key}` | {format_value(key, metrics[key])} | {describe(key)} |")
    return "\n".join(lines)


def markdown(record: dict) -> str:
    out = [f"# Evaluation at step {record['step']:,}", "",
           f"- run: `{record['workdir']}`",
           f"- checkpoint: `{record['checkpoint']}`",
           f"- protocol: **{record['protocol']}**",
           f"- generator weights: **{record_weights(record)}**",
           f"- wall time: {format_seconds(record['wall_time_seconds'])}",
           ]
    if record.get("pairing"):
        p = record["pairing"]
        seed = f" (seed {p['seed']})" if p.get("seed") is not None else ""
        out.append(f"- test pairing: {p.get('summary', '')}{seed}")
    out += ["", metrics_table(record["metrics"]), ""]
    if record.get("data"):
        out += ["## Data", "", "| modality | data | kind | quarter turns | test split | test fingerprint |",
                "|---|---|---|---:|---|---|"]
        for name, d in record["data"].items():
            noun = "vectors" if d["kind"] in KINDS and KINDS.get(d["kind"]).examples == FEATURES else "images"
            out.append(f"| {name} | {d['label']} | {d['kind']} | {d['quarter_turns']} | {d['test']['size']:,} "
                       f"{noun} | `{d['test']['fingerprint']}` |")
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


def variant_suffix(protocol: str, weights: str = "ema") -> str:
    """What tells one evaluation variant from the default (clean protocol, EMA weights): "", "_reference", "_live",
    "_reference_live"."""
    return "".join(f"_{part}" for part, default in ((protocol, "clean"), (weights, "ema")) if part != default)


def tensorboard_tag(key: str, protocol: str, weights: str = "ema") -> str:
    suffix = variant_suffix(protocol, weights)
    if not suffix:
        return key
    prefix, _, name = key.partition("/")
    return f"{prefix}{suffix}/{name}"


def log_tensorboard(logdir: str, metrics: dict[str, float], step: int, protocol: str, weights: str = "ema") -> None:
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for key, value in sorted(metrics.items()):
            tf.summary.scalar(tensorboard_tag(key, protocol, weights), float(value), step=int(step))
    writer.flush()
    writer.close()


def record_weights(record: dict) -> str:
    """Which generator weights a record evaluated ("ema" unless its settings say "live")."""
    return (record.get("settings") or {}).get("weights", "ema")


def output_name(protocol: str, weights: str = "ema") -> str:
    """``metrics`` for the clean protocol and EMA weights; ``metrics_reference``, ``metrics_live``,
    ``metrics_reference_live`` for the other variants."""
    return "metrics" + variant_suffix(protocol, weights)


def write_outputs(record: dict, workdir: str, log_to_tensorboard: bool = True) -> dict[str, str]:
    """``<workdir>/<name>.json``, ``<name>.md``, one appended line in ``metrics_history.jsonl``, TensorBoard scalars."""
    validate_record(record)
    weights = record_weights(record)
    name = output_name(record["protocol"], weights)
    paths = {"json": os.path.join(workdir, f"{name}.json"), "md": os.path.join(workdir, f"{name}.md"),
             "history": os.path.join(workdir, "metrics_history.jsonl")}
    os.makedirs(workdir, exist_ok=True)
    write_text_atomic(paths["json"], json.dumps(record, indent=2, sort_keys=True) + "\n")
    write_text_atomic(paths["md"], markdown(record))
    with open(paths["history"], "a") as f:
        f.write(json.dumps({**{k: record[k] for k in ("step", "protocol", "checkpoint", "created", "metrics")},
                            "weights": weights}, sort_keys=True) + "\n")
    if log_to_tensorboard:
        paths["tensorboard"] = os.path.join(workdir, "tensorboard")
        log_tensorboard(paths["tensorboard"], record["metrics"], record["step"], record["protocol"], weights)
    return paths
