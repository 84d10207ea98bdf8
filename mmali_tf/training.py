"""Train an MMALI model from a typed config into a run directory; resumes automatically.

Run directory layout::

    <workdir>/config.json          resolved config (checked against on resume)
    <workdir>/data_fingerprints.json  data sources, fingerprints and pairing of the training data
    <workdir>/checkpoints/         tf.train checkpoints: live + EMA nets, both optimizers, step
    <workdir>/tensorboard/         event files: every loss term, steps/s, image grids, evaluation metrics
    <workdir>/samples/             the same grids as PNG (feature modalities drawn as in mmali_tf.kinds.features)
    <workdir>/metrics.json         evaluation results (mmali_tf.evaluate)
"""

from __future__ import annotations

import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from mmali_tf import checkpointing, distribution, training_data
from mmali_tf.atomic_files import write_json_atomic
from mmali_tf.config import ExperimentConfig
from mmali_tf.data.pipeline import to_model_input
from mmali_tf.data.unpaired import pools_summary
from mmali_tf.errors import ConfigError
from mmali_tf.model import MMALI, count_parameters
from mmali_tf.monitoring import TrainingMonitor

# Train settings that may change between a run and its resumption without changing what is learned.
RESUMABLE_TRAIN_FIELDS = {"max_iter", "save_every", "log_every", "image_every", "eval_every", "eval_at_end",
                          "keep_checkpoints", "xla", "strategy", "num_devices", "steps_per_execution",
                          "intra_op_threads", "inter_op_threads"}
RESUMABLE_DATA_FIELDS = {"data_dir", "tfds_data_dir", "download"}
IMAGE_EXAMPLES = 8


def _learning_state(config: ExperimentConfig) -> dict:
    raw = config.to_dict()
    for key in RESUMABLE_TRAIN_FIELDS:
        raw["train"].pop(key)
    for key in RESUMABLE_DATA_FIELDS:
        raw["data"].pop(key)
    raw.pop("name")
    return raw


def prepare_workdir(config: ExperimentConfig, workdir: str) -> None:
    """Create the run directory and save the config; refuse to resume a run trained with a different setup."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path) and tf.train.latest_checkpoint(checkpointing.checkpoint_dir(workdir)):
        previous = ExperimentConfig.from_json_file(path)
        old, new = _learning_state(previous), _learning_state(config)
        if old != new:
            diff = sorted(f"{section}.{k}" for section in new for k in new[section]
                          if isinstance(new[section], dict) and old.get(section, {}).get(k) != new[section][k])
            raise ConfigError(f"{workdir} holds a run with a different config ({', '.join(diff) or 'model'}); "
                              "use a new --workdir")
    write_json_atomic(path, config.to_json())


def build_model(config: ExperimentConfig, strategy=None) -> MMALI:
    """The model with seeded initial weights, compiled for training under ``strategy``."""
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.train.seed)
    with strategy.scope():
        model = MMALI(config)
        model.compile(jit_compile=config.train.xla, steps_per_execution=config.train.steps_per_execution,
                      num_replicas=strategy.num_replicas_in_sync)
    return model


def image_batch(splits, pairs, seed: int) -> dict[str, np.ndarray]:
    """A fixed set of paired examples for the sample grids, as the networks see them."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(next(iter(pairs.values()))), IMAGE_EXAMPLES, replace=False)
    return {n: to_model_input(np.asarray(splits[n].examples[pairs[n][picks]])) for n in splits}


def describe_examples(split, which: str) -> str:
    """E.g. "60,000 train images" or "88,550 train feature vectors (float32, 1024-d)"."""
    if split.examples.dtype == np.uint8:
        return f"{len(split):,} {which} images"
    dims = "x".join(str(d) for d in split.examples.shape[1:])
    return f"{len(split):,} {which} feature vectors ({split.examples.dtype}, {dims}-d)"


def network_parameters(model) -> str:
    """One entry per trained network, e.g. "enc_caption 705,536, dec_caption 698,240, ..., d_joint 3,985,921"."""
    return ", ".join(f"{net.name} {count_parameters([net]):,}" for net in model.generators + model.discriminators)


def run(config: ExperimentConfig, workdir: str, print_fn=print, evaluate_fn=None) -> dict:
    """Train (or resume) to ``config.train.max_iter`` steps. Returns a summary dict.

    ``evaluate_fn(model, step)``, if given, runs every ``eval_every`` steps and at the end when ``eval_at_end``.
    """
    config = config.validate()
    t = config.train
    prepare_workdir(config, workdir)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    distribution.configure_threads(t)
    distribution.configure_devices(t)
    strategy = distribution.make_strategy(t)

    splits = training_data.load_modalities(config, "train")
    for name, split in splits.items():
        print_fn(f"{name}: {describe_examples(split, 'train')} from {split.source} "
                 f"(fingerprint {split.fingerprint})")
    pairs = training_data.make_pairs(config, splits, "train")
    summary_line = training_data.pairing_summary(config, pairs)
    print_fn(f"train pairing: {summary_line}")
    pools_and_unpaired = training_data.unimodal_pools(config, splits, pairs)
    pools = None
    data_record = {"modalities": {n: {"source": s.source, "fingerprint": s.fingerprint, "images": len(s)}
                                  for n, s in splits.items()},
                   "pairing": summary_line}
    if pools_and_unpaired is not None:
        pools, unpaired = pools_and_unpaired
        data_record["unpaired"] = pools_summary(pairs, pools, unpaired)
        print_fn(f"unpaired data on: {data_record['unpaired']}")
    write_json_atomic(os.path.join(workdir, "data_fingerprints.json"), data_record)

    model = build_model(config, strategy)
    print_fn(f"parameters: generators {count_parameters(model.generators):,}, "
             f"discriminators {count_parameters(model.discriminators):,}; "
             f"{strategy.num_replicas_in_sync} replica(s), XLA {'on' if t.xla else 'off'}, "
             f"{distribution.describe_threads()}")
    print_fn(f"networks: {network_parameters(model)}")
    manager = checkpointing.make_manager(model, workdir, t.keep_checkpoints)
    restored = checkpointing.restore_latest(manager)
    start_step = int(model.d_optimizer.iterations.numpy())
    if restored:
        print_fn(f"resumed from {restored} at step {start_step}")

    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
    evaluate_every = None
    if evaluate_fn is not None and t.eval_every > 0:
        evaluate_every = lambda step: evaluate_fn(model, step)  # noqa: E731
    monitor = TrainingMonitor(manager=manager, writer=writer, max_iter=t.max_iter, log_every=t.log_every,
                              save_every=t.save_every, image_every=t.image_every,
                              image_batch=image_batch(splits, pairs, config.data.seed),
                              png_dir=os.path.join(workdir, "samples"), print_fn=print_fn,
                              extra_fn=evaluate_every, extra_every=t.eval_every)
    remaining = t.max_iter - start_step
    started = time.perf_counter()
    if remaining > 0:
        dataset = training_data.training_pipeline(config, splits, pairs, start_step, pools)
        model.fit(dataset, epochs=1, steps_per_epoch=remaining, verbose=0, callbacks=[monitor], shuffle=False)
    else:
        print_fn(f"nothing to do: the run is already at step {start_step} >= max_iter {t.max_iter}")
    elapsed = time.perf_counter() - started
    step = int(model.d_optimizer.iterations.numpy())
    if evaluate_fn is not None and t.eval_at_end and monitor.last_extra != step:
        evaluate_fn(model, step)
    writer.flush()
    summary = {"step": step, "checkpoint": manager.latest_checkpoint, "seconds": elapsed,
               "steps_per_sec": (step - start_step) / elapsed if elapsed > 0 and step > start_step else None}
    logging.info("training summary: %s", summary)
    return {**summary, "model": model}

