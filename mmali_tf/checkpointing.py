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

from mmali_tf.atomic_files import write_text_atomic
from mmali_tf.errors import MMALIError

STATE_FILE = "checkpoint"
_CKPT = re.compile(r"^ckpt-(\d+)\.(index|data-\d{5}-of-\d{5})$")
_TEMPORARY = re.compile(r"^ckpt-\d+_temp|_temp_[0-9a-f]+|^\.tmp|\.tmp(\.\d+|[0-9a-f]{32})$")


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
    """Folders and files an interrupted save left behind in ``directory``: TensorFlow's ``ckpt-N_temp*`` and
    temporary state files, ours (``checkpoint.tmp.<pid>``) and TensorFlow's (``checkpoint.tmp<hex>``)."""
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if _TEMPORARY.search(n))


def files_of(directory: str, step: int) -> list[str]:
    """The index and data files of ``ckpt-<step>`` in ``directory``."""
    return sorted(glob.glob(os.path.join(glob.escape(directory), f"ckpt-{step}.*")))


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


# What reading a damaged or foreign checkpoint raises: TensorFlow's errors, and the Python errors its C++ reader's
# statuses become (a truncated data file is an IndexError "Read less bytes than requested"); AssertionError from
# assert_existing_objects_matched.
_UNREADABLE = (tf.errors.OpError, AssertionError, ValueError, IndexError, RuntimeError)


def restore(checkpoint: tf.train.Checkpoint, prefix: str) -> None:
    """Restore every object of ``checkpoint`` from ``prefix``; a damaged or foreign checkpoint raises MMALIError."""
    try:
        checkpoint.restore(prefix).assert_existing_objects_matched()
    except _UNREADABLE as exc:
        raise MMALIError(f"cannot restore checkpoint {prefix}: {_reason(exc)}") from exc


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def restore_newest(checkpoint: tf.train.Checkpoint, directory: str, warn=warn) -> Found | None:
    """Restore the newest checkpoint of ``directory`` that restores completely; None if there is none at all.

    Each damaged newer one is reported by ``warn`` in one line; if checkpoint files exist but none restores, raise
    :class:`NoRestorableCheckpoint` (a run must never start again from step 0 over them).
    """
    found = _newest_that_restores(directory, lambda prefix: restore(checkpoint, prefix), warn,
                                  "refusing to start from step 0 over them: move them away or use a new --workdir")
    return found[0] if found else None


def _newest_that_restores(directory: str, restore_fn, warn, refusal: str):
    """``(Found, restore_fn(prefix))`` of the newest checkpoint of ``directory`` for which ``restore_fn`` does not
    raise MMALIError (one ``warn`` line for each newer one); None if there are no checkpoint files;
    :class:`NoRestorableCheckpoint` (ending in ``refusal``) if there are but none restores."""
    found = discover(directory)
    for i, candidate in enumerate(found):
        try:
            if not candidate.complete:
                raise MMALIError(f"cannot restore checkpoint {candidate.prefix}: files missing")
            return candidate, restore_fn(candidate.prefix)
        except MMALIError as exc:
            later = found[i + 1].prefix if i + 1 < len(found) else None
            warn(f"warning: {exc}; " + (f"trying {os.path.basename(later)}" if later else "no older checkpoint"))
    if found:
        raise NoRestorableCheckpoint(f"{directory} holds checkpoint files but none restores "
                                     f"({', '.join(os.path.basename(f.prefix) for f in found)}); {refusal}")
    return None


def rebuild_state_file(directory: str, restored: Found | None) -> bool:
    """Rewrite the ``checkpoint`` state file from the files: ``restored`` latest, every complete older one listed
    with its file time, so that ``tf.train.CheckpointManager`` keeps managing them (it deletes beyond
    ``max_to_keep`` only checkpoints listed with a timestamp). Returns whether the previous state file said
    something else (another latest checkpoint, other checkpoints, missing timestamps), or was missing or
    unreadable."""
    if restored is None:
        return False
    state = os.path.join(directory, STATE_FILE)
    try:
        with open(state) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        text = ""
    previous = [os.path.basename(p) for p in re.findall(r'^(?:model|all_model)_checkpoint_paths?: "([^"]*)"', text,
                                                          re.M)]
    timed = len(re.findall(r"^all_model_checkpoint_timestamps: ", text, re.M)) == len(previous) - 1
    older = [f for f in reversed(discover(directory)) if f.complete and f.step <= restored.step]
    times = [os.path.getmtime(f.prefix + ".index") for f in older]
    lines = [f'model_checkpoint_path: "{os.path.basename(restored.prefix)}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(f.prefix)}"' for f in older]
    lines += [f"all_model_checkpoint_timestamps: {t:.6f}" for t in times]
    lines.append(f"last_preserved_timestamp: {min(times) - 1:.6f}")
    write_text_atomic(state, "\n".join(lines) + "\n")
    return not timed or previous != [os.path.basename(restored.prefix)] + [os.path.basename(f.prefix) for f in older]


INFERENCE_WEIGHTS = ("ema", "live")


def restore_ema_only(model, workdir: str, path: str | None = None, weights: str = "ema") -> tuple[str, int]:
    """Restore the EMA networks and the step of a run for evaluation or export, without optimizers.

    ``weights`` "live": the live encoders and decoders of the checkpoint are restored into the EMA networks instead
    (the same architectures), so that everything that reads the EMA networks evaluates the live weights.
    ``path`` None: the newest checkpoint that holds them (damaged newer ones are skipped with a warning). The rest
    (discriminators, optimizers, the other set of generator weights) stays unread, but every network asked for must
    be found: a checkpoint of some other model would otherwise silently leave the initial weights in place.
    """
    if weights not in INFERENCE_WEIGHTS:
        raise MMALIError(f"weights must be one of {', '.join(INFERENCE_WEIGHTS)}, not {weights!r}")
    if path is not None:
        if not glob.glob(glob.escape(path) + ".index"):
            raise MMALIError(f"no checkpoint {path} (expected {path}.index)")
        return path, _restore_ema(model, path, weights)
    directory = checkpoint_dir(workdir)
    found = _newest_that_restores(directory, lambda prefix: _restore_ema(model, prefix, weights), warn,
                                  "nothing to evaluate or export")
    if found is None:
        raise MMALIError(f"no checkpoint in {directory}")
    return found[0].prefix, found[1]


def _restore_ema(model, prefix: str, weights: str = "ema") -> int:
    step = tf.Variable(0, dtype=tf.int64)
    saved_as = "ema_{part}_{n}" if weights == "ema" else "{part}_{n}"  # the attribute names the checkpoint uses
    ema_nets = {saved_as.format(part=part, n=n): getattr(model, f"ema_{part}_{n}")
                for n in model.names for part in ("enc", "dec")}
    try:
        tf.train.Checkpoint(d_optimizer=tf.train.Checkpoint(_iterations=step)).restore(prefix).expect_partial()
        status = tf.train.Checkpoint(model=tf.train.Checkpoint(**ema_nets)).restore(prefix)
    except _UNREADABLE as exc:  # missing or damaged files, dtype or shape mismatch
        raise MMALIError(f"cannot restore checkpoint {prefix}: {_reason(exc)}") from exc
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as exc:
        what = "EMA networks" if weights == "ema" else "live encoders and decoders"
        raise MMALIError(f"checkpoint {prefix} does not hold the {what} of this model "
                         f"(modalities {', '.join(model.names)})") from exc
    return int(step.numpy())
