"""Checkpoint fallback (mmali_tf/checkpointing.py) on real TensorFlow checkpoints of a small object, in seconds: the
newest checkpoint that restores wins, a damaged or foreign newer one is skipped with one warning for the next-newest
(not the oldest, not the one that sorts first by name), and the rebuilt state file lists what restored. The same
behaviour on whole training runs, with kills and every kind of damage, is tests/test_reliability.py's."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import checkpointing

STEPS = (6, 8, 10)  # ckpt-10 sorts before ckpt-6 and ckpt-8 by name


def save_run(directory, steps=STEPS):
    """Checkpoints ``ckpt-<s>`` of a variable holding ``s``, written as training writes them."""
    value = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(value=value), str(directory), max_to_keep=10)
    for step in steps:
        value.assign(float(step))
        manager.save(checkpoint_number=step)
    return str(directory)


def garble(path, seed=0):
    """Random bytes of the same size in place of ``path`` (a new file, as the reliability suite damages files)."""
    size = os.path.getsize(path)
    os.remove(path)
    with open(path, "wb") as f:
        f.write(np.random.default_rng(seed).bytes(size))


def restore(directory):
    """(what restore_newest found, the value it restored, its warning lines)."""
    value, warnings = tf.Variable(-1.0), []
    found = checkpointing.restore_newest(tf.train.Checkpoint(value=value), directory, warn=warnings.append)
    return found, float(value.numpy()), warnings


def test_the_newest_checkpoint_is_restored(tmp_path):
    found, value, warnings = restore(save_run(tmp_path))
    assert (found.step, value, warnings) == (10, 10.0, [])
    assert [f.step for f in checkpointing.discover(str(tmp_path))] == [10, 8, 6]


def test_a_damaged_newest_checkpoint_falls_back_to_the_next_newest(tmp_path):
    directory = save_run(tmp_path)
    garble(os.path.join(directory, "ckpt-10.index"))
    found, value, warnings = restore(directory)
    assert (found.step, value) == (8, 8.0)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"warning: cannot restore checkpoint {directory}/ckpt-10: ")
    assert warnings[0].endswith("; trying ckpt-8")


def test_a_checkpoint_of_another_model_is_skipped(tmp_path):
    directory = save_run(tmp_path)
    other = tf.train.CheckpointManager(tf.train.Checkpoint(weights=tf.Variable([1.0, 2.0])), directory, max_to_keep=10)
    other.save(checkpoint_number=12)  # complete files, but none of this model's variables
    found, value, warnings = restore(directory)
    assert (found.step, value) == (10, 10.0)
    assert len(warnings) == 1 and "ckpt-12" in warnings[0] and warnings[0].endswith("trying ckpt-10"), warnings


def test_nothing_restorable_is_refused(tmp_path):
    directory = save_run(tmp_path)
    for step in STEPS:
        garble(os.path.join(directory, f"ckpt-{step}.index"), seed=step)
    with pytest.raises(checkpointing.NoRestorableCheckpoint, match=r"none restores \(ckpt-10, ckpt-8, ckpt-6\)"):
        restore(directory)


def test_the_rebuilt_state_file_lists_what_restored(tmp_path):
    directory = save_run(tmp_path)
    garble(os.path.join(directory, "ckpt-10.index"))
    found, _, _ = restore(directory)
    assert checkpointing.rebuild_state_file(directory, found)  # it said ckpt-10 before
    with open(os.path.join(directory, checkpointing.STATE_FILE)) as f:
        text = f.read()
    assert re.findall(r'^model_checkpoint_path: "(.*)"$', text, re.M) == ["ckpt-8"]
    assert re.findall(r'^all_model_checkpoint_paths: "(.*)"$', text, re.M) == ["ckpt-6", "ckpt-8"]
    assert len(re.findall(r"^all_model_checkpoint_timestamps: ", text, re.M)) == 2
    assert tf.train.get_checkpoint_state(directory).model_checkpoint_path.endswith("ckpt-8")
