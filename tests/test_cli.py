"""The training command line: bad input ends with one clear error line and a non-zero exit."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import distribution

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "mmali_tf.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def assert_one_error_line(result, *fragments):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_data_dir(tmp_path):
    result = train("--flagfile=flags/mnist_svhn.cfg", f"--workdir={tmp_path / 'run'}",
                   f"--data_dir={tmp_path / 'nowhere'}")
    assert_one_error_line(result, "nowhere")


def test_corrupt_npz(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 definitely not a zip archive")
    result = train("--flagfile=flags/mnist_svhn.cfg", f"--workdir={tmp_path / 'run'}", f"--data_dir={tmp_path}")
    assert_one_error_line(result, "mnist.npz")


def test_corrupt_svhn_mat(tmp_path):
    real = os.path.join(os.environ.get("MMALI_DATA_DIR", os.path.join(REPO, "..", "shared", "data")), "mnist.npz")
    os.symlink(os.path.abspath(real), tmp_path / "mnist.npz")
    (tmp_path / "train_32x32.mat").write_bytes(np.random.default_rng(0).bytes(4096))
    result = train("--flagfile=flags/mnist_svhn.cfg", f"--workdir={tmp_path / 'run'}", f"--data_dir={tmp_path}")
    assert_one_error_line(result, "train_32x32.mat")


@pytest.mark.parametrize("flag, fragment", [("--bogus_flag=1", "bogus_flag"), ("--batch_size=-4", "batch_size"),
                                            ("--paired_fraction=1.5", "paired_fraction"), ("--paired_fraction=-0.1", "paired_fraction"),
                                            ("--percentage=0.5", "percentage"),  # one short name per setting
                                            ("--modalities=a:mnist", "modalities"),
                                            ("--style_dim=30", "style_dim")])
def test_bad_flags(tmp_path, flag, fragment):
    result = train("--flagfile=flags/tiny.cfg", f"--workdir={tmp_path / 'run'}", flag)
    assert_one_error_line(result, fragment)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_workdir_flag():
    result = train("--flagfile=flags/tiny.cfg")
    assert_one_error_line(result, "workdir")


def test_cli_trains_and_resumes(tmp_path):
    workdir = tmp_path / "run"
    first = train("--flagfile=flags/tiny.cfg", f"--workdir={workdir}", "--max_iter=2")
    assert first.returncode == 0, first.stderr
    assert "step 2/2" in first.stdout and "done: step 2" in first.stdout
    # Execution left to "auto" on a CPU-only machine (CI): no XLA, two ops at a time on half of the cores each;
    # the log line shows the counts TensorFlow runs with, config.json the resolved settings.
    written = json.loads((workdir / "config.json").read_text())["train"]
    if not tf.config.list_physical_devices("GPU"):
        half = max(1, distribution.usable_cpus() // 2)
        assert f"XLA off, threads intra-op {half} / inter-op 2" in first.stdout
        assert (written["xla"], written["intra_op_threads"], written["inter_op_threads"]) == (False, half, 2)
    # Execution settings may change on resume; explicit values are kept as given.
    second = train("--flagfile=flags/tiny.cfg", f"--workdir={workdir}", "--max_iter=3", "--noxla",
                   "--intra_op_threads=0", "--inter_op_threads=1")
    assert second.returncode == 0, second.stderr
    assert "resumed from" in second.stdout and "ckpt-2" in second.stdout
    assert "XLA off, threads intra-op default / inter-op 1" in second.stdout
    assert "done: step 3" in second.stdout
