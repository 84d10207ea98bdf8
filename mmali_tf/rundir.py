"""The run directory: checked before anything is written, then written by the chief only.

Layout::

    <workdir>/config.json             resolved config (checked against on resume)
    <workdir>/data_fingerprints.json  data sources, fingerprints and pairing of the training data
    <workdir>/checkpoints/            ckpt-<step>: live + EMA nets, both optimizers, step (mmali_tf.checkpointing)
    <workdir>/tensorboard/            event files (mmali_tf.monitoring)
    <workdir>/samples/                image grids as PNG
    <workdir>/metrics.json            evaluation results (mmali_tf.evaluate)

Every check here only reads: a command that fails leaves a good run directory byte-identical.
"""

from __future__ import annotations

import os

from mmali_tf import checkpointing
from mmali_tf.atomic_files import write_json_atomic
from mmali_tf.config import ExperimentConfig
from mmali_tf.errors import ConfigError, MMALIError, os_reason
from mmali_tf.paths import output_dir_problem

CONFIG = "config.json"
DATA_FINGERPRINTS = "data_fingerprints.json"

# Train settings that may change between a run and its resumption without changing what is learned.
RESUMABLE_TRAIN_FIELDS = {"max_iter", "save_every", "log_every", "image_every", "eval_every", "eval_at_end",
                          "keep_checkpoints", "keep_steps", "xla", "strategy", "num_devices", "steps_per_execution",
                          "intra_op_threads", "inter_op_threads", "cluster_timeout", "collective_timeout",
                          "precision"}
RESUMABLE_DATA_FIELDS = {"data_dir", "tfds_data_dir", "download"}


def learning_state(config: ExperimentConfig) -> dict:
    """The part of a config that decides what is learned (a resumed run must agree on it)."""
    raw = config.to_dict()
    for key in RESUMABLE_TRAIN_FIELDS & set(raw["train"]):
        raw["train"].pop(key)
    for key in RESUMABLE_DATA_FIELDS:
        raw["data"].pop(key)
    raw.pop("name")
    return raw


def check_writable(workdir: str) -> None:
    """``workdir`` is a directory we can write into, or can be created (:func:`mmali_tf.paths.output_dir_problem`);
    nothing is created here."""
    problem = output_dir_problem(workdir)
    if problem:
        raise MMALIError(f"--workdir {workdir}: {problem}")


def check_resumable(config: ExperimentConfig, workdir: str) -> None:
    """Refuse a run directory whose checkpoints were trained with a different setup (or cannot be checked)."""
    found = checkpointing.discover(checkpointing.checkpoint_dir(workdir))
    if not found:
        return
    path = os.path.join(workdir, CONFIG)
    if not os.path.exists(path):
        raise ConfigError(f"{workdir} holds checkpoints but no {CONFIG}, so its config cannot be checked; use a new "
                          "--workdir")
    old, new = learning_state(ExperimentConfig.from_json_file(path)), learning_state(config)
    if old != new:
        diff = sorted(f"{section}.{k}" for section in new if isinstance(new[section], dict)
                      for k in new[section] if old.get(section, {}).get(k) != new[section][k])
        raise ConfigError(f"{workdir} holds a run with a different config ({', '.join(diff) or 'model'}); "
                          "use a new --workdir")


def write_start_files(config: ExperimentConfig, workdir: str, data_record: dict) -> None:
    """Create the run directory and record the resolved config and the data (chief only)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        write_json_atomic(os.path.join(workdir, CONFIG), config.to_json())
        write_json_atomic(os.path.join(workdir, DATA_FINGERPRINTS), data_record)
    except OSError as exc:
        raise MMALIError(f"cannot write the run directory {workdir}: {os_reason(exc)}") from exc
