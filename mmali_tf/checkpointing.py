"""Training-state checkpoints: every sub-model (live and EMA), both optimizers and the step, found from the files.

Checkpoints are ``<workdir>/checkpoints/ckpt-<step>.{index,data-*}``, written by ``tf.train.CheckpointManager``
(files first, then the ``checkpoint`` state file, so a kill mid-save leaves the previous checkpoint intact). The state
file is only an index: :func:`discover` lists the checkpoints from the files themselves, :func:`restore_newest`
restores the newest one that restores completely (warning once about each damaged newer one), and
:func:`rebuild_state_file` rewrites the index from what restored. Leftover ``*_temp*`` folders of interrupted saves
are found by :func:`stale_temporaries`.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import sys

import tensorflow as tf

from mmali_tf.errors import MMALIError

_CKPT = re.compile(r"^ckpt-(\d+)\.(index|data-\d{5}-of-\d{5})$")
_TEMPORARY = re.compile(r"^ckpt-\d+_temp|_temp_[0-9a-f]+|^\.tmp")


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def make_checkpoint(model) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(model=model, d_optimizer=model.d_optimizer, g_optimizer=model.g_optimizer)


def make_manager(model, directory: str, max_to_keep: int = 3) -> tf.train.CheckpointManager:
    """A manager writing ``ckpt-<step>`` into ``directory`` (a workdir's checkpoints/ or a worker's temporary)."""
    return tf.train.CheckpointManager(make_checkpoint(model), directory, max_to_keep=max_to_keep,
                                      step_counter=model.d_optimizer.iterations)


@dataclasses.dataclass(frozen=True)
class Found:
    """A checkpoint on disk: its prefix, step, and whether its index and data files are all there."""

    prefix: str
    step: int
    complete: bool


def discover(directory: str) -> list[Found]:
    """Every ``ckpt-<step>`` whose files exist in ``directory``, newest first (whatever the state file says)."""
    if not os.path.isdir(directory):
        return []
    files: dict[int, set[str]] = {}
    for name in os.listdir(directory):
        match = _CKPT.match(name)
        if match:
            files.setdefault(int(match.group(1)), set()).add(match.group(2))
    found = []
    for step, kinds in files.items():
        shards = [k for k in kinds if k.startswith("data-")]
        expected = int(shards[0].rsplit("-of-", 1)[1]) if shards else 1
        complete = "index" in kinds and len(shards) == expected
        found.append(Found(os.path.join(directory, f"ckpt-{step}"), step, complete))
    return sorted(found, key=lambda f: f.step, reverse=True)


KEPT = "kept"
"""Subdirectory of checkpoints/ holding the checkpoints of ``train.keep_steps`` (never deleted)."""


def keep(prefix: str) -> str:
    """Hard-link (or copy) the files of checkpoint ``prefix`` into ``<its dir>/kept/``; returns the kept prefix."""
    directory, base = os.path.split(prefix)
    kept = os.path.join(directory, KEPT)
    os.makedirs(kept, exist_ok=True)
    for path in glob.glob(glob.escape(prefix) + ".*"):
        target = os.path.join(kept, os.path.basename(path))
        if os.path.exists(target):
            os.remove(target)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    return os.path.join(kept, base)


def stale_temporaries(directory: str) -> list[str]:
    """Folders and files an interrupted save left behind in ``directory`` (TensorFlow's ``ckpt-N_temp*``)."""
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if _TEMPORARY.search(n))


def remove_paths(paths) -> None:
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)


class NoRestorableCheckpoint(MMALIError):
    """Checkpoint files exist but none of them restores."""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def restore(checkpoint: tf.train.Checkpoint, prefix: str) -> None:
    """Restore every object of ``checkpoint`` from ``prefix``; a damaged or foreign checkpoint raises MMALIError."""
    try:
        checkpoint.restore(prefix).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as exc:
        raise MMALIError(f"cannot restore checkpoint {prefix}: {_reason(exc)}") from exc


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def restore_newest(checkpoint: tf.train.Checkpoint, directory: str, warn=warn) -> Found | None:
    """Restore the newest checkpoint of ``directory`` that restores completely; None if there is none at all.

    Each damaged newer one is reported by ``warn`` in one line; if checkpoint files exist but none restores, raise
    :class:`NoRestorableCheckpoint` (a run must never start again from step 0 over them).
    """
    found = discover(directory)
    for i, candidate in enumerate(found):
        try:
            if not candidate.complete:
                raise MMALIError(f"cannot restore checkpoint {candidate.prefix}: files missing")
            restore(checkpoint, candidate.prefix)
            return candidate
        except MMALIError as exc:
            later = found[i + 1].prefix if i + 1 < len(found) else None
            warn(f"warning: {exc}; " + (f"trying {os.path.basename(later)}" if later else "no older checkpoint"))
    if found:
        raise NoRestorableCheckpoint(f"{directory} holds checkpoint files but none restores "
                                     f"({', '.join(os.path.basename(f.prefix) for f in found)}); refusing to start "
                                     "from step 0 over them: move them away or use a new --workdir")
    return None


def rebuild_state_file(directory: str, restored: Found | None) -> None:
    """Rewrite the ``checkpoint`` state file: the restored checkpoint latest, every complete older one kept."""
    if restored is None:
        return
    older = [f.prefix for f in reversed(discover(directory)) if f.complete and f.step <= restored.step]
    tf.compat.v1.train.update_checkpoint_state(directory, restored.prefix, all_model_checkpoint_paths=older)


def restore_ema_only(model, workdir: str, path: str | None = None) -> tuple[str, int]:
    """Restore the EMA networks and the step of a run for evaluation or export, without optimizers.

    ``path`` None: the newest checkpoint that holds them (damaged newer ones are skipped with a warning). The rest
    (live nets, discriminators, optimizers) stays unread, but every EMA network must be found: a checkpoint of some
    other model would otherwise silently leave the initial weights in place.
    """
    if path is None:
        candidates = [f.prefix for f in discover(checkpoint_dir(workdir))]
        if not candidates:
            raise MMALIError(f"no checkpoint in {checkpoint_dir(workdir)}")
    else:
        if not glob.glob(path + ".index"):
            raise MMALIError(f"no checkpoint {path} (expected {path}.index)")
        candidates = [path]
    errors = []
    for prefix in candidates:
        try:
            return prefix, _restore_ema(model, prefix)
        except MMALIError as exc:
            if path is not None:
                raise
            errors.append(str(exc))
            warn(f"warning: {exc}; trying an older checkpoint")
    raise MMALIError(f"no checkpoint in {checkpoint_dir(workdir)} restores: {errors[-1]}")


def _restore_ema(model, prefix: str) -> int:
    step = tf.Variable(0, dtype=tf.int64)
    ema_nets = {f"ema_{part}_{n}": getattr(model, f"ema_{part}_{n}") for n in model.names for part in ("enc", "dec")}
    try:
        tf.train.Checkpoint(d_optimizer=tf.train.Checkpoint(_iterations=step)).restore(prefix).expect_partial()
        status = tf.train.Checkpoint(model=tf.train.Checkpoint(**ema_nets)).restore(prefix)
    except (tf.errors.OpError, ValueError) as exc:  # missing files, dtype or shape mismatch
        raise MMALIError(f"cannot restore checkpoint {prefix}: {_reason(exc)}") from exc
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as exc:
        raise MMALIError(f"checkpoint {prefix} does not hold the EMA networks of this model "
                         f"(modalities {', '.join(model.names)})") from exc
    return int(step.numpy())
