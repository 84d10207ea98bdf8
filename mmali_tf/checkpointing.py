"""Training-state checkpoints: every sub-model (live and EMA), both optimizers and the step.

``tf.train.CheckpointManager`` writes the checkpoint files first and updates the ``checkpoint`` index last, so a
run killed mid-save still resumes from the previous complete checkpoint.
"""

from __future__ import annotations

import os

import tensorflow as tf

from mmali_tf.errors import MMALIError


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def make_manager(model, workdir: str, max_to_keep: int = 3) -> tf.train.CheckpointManager:
    ckpt = tf.train.Checkpoint(model=model, d_optimizer=model.d_optimizer, g_optimizer=model.g_optimizer)
    return tf.train.CheckpointManager(ckpt, checkpoint_dir(workdir), max_to_keep=max_to_keep,
                                      step_counter=model.d_optimizer.iterations)


def restore_latest(manager: tf.train.CheckpointManager, path: str | None = None) -> str | None:
    """Restore ``path`` (or the latest checkpoint); returns what was restored, None for a fresh run."""
    path = path or manager.latest_checkpoint
    if path is None:
        return None
    try:
        manager.checkpoint.restore(path).assert_existing_objects_matched()
    except (tf.errors.NotFoundError, tf.errors.DataLossError, AssertionError, ValueError) as exc:
        raise MMALIError(f"cannot restore checkpoint {path}: {str(exc).splitlines()[0]}") from exc
    return path


def restore_ema_only(model, workdir: str, path: str | None = None) -> tuple[str, int]:
    """Restore the EMA networks and the step of a run for evaluation or export, without optimizers.

    The rest of the checkpoint (live nets, discriminators, optimizers) stays unread, but every EMA network must be
    found: a checkpoint of some other model would otherwise silently leave the initial weights in place.
    """
    path = path or tf.train.latest_checkpoint(checkpoint_dir(workdir))
    if path is None:
        raise MMALIError(f"no checkpoint in {checkpoint_dir(workdir)}")
    step = tf.Variable(0, dtype=tf.int64)
    ema_nets = {f"ema_{part}_{n}": getattr(model, f"ema_{part}_{n}") for n in model.names for part in ("enc", "dec")}
    try:
        tf.train.Checkpoint(d_optimizer=tf.train.Checkpoint(_iterations=step)).restore(path).expect_partial()
        status = tf.train.Checkpoint(model=tf.train.Checkpoint(**ema_nets)).restore(path)
    except (tf.errors.OpError, ValueError) as exc:  # missing files, dtype or shape mismatch
        raise MMALIError(f"cannot restore checkpoint {path}: {str(exc).strip().splitlines()[0]}") from exc
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as exc:
        raise MMALIError(f"checkpoint {path} does not hold the EMA networks of this model "
                         f"(modalities {', '.join(model.names)})") from exc
    return path, int(step.numpy())
