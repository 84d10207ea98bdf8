"""README's first command, shortened: the quickstart trains, evaluates at the end, prints the table and the sample
grids' paths, and prints no TensorFlow C++ error or warning lines (E0000 / W0000 ...). The MNIST-SVHN networks (the
``tiny`` preset) are checked for the same, since their critics once tripped grappler's remapper."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPP_LOG_LINE = re.compile(r"^[EWF]\d{4} ", re.MULTILINE)  # absl C++ log prefix: severity letter, MMDD, space


def _train(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MMALI_CLASSIFIER_DIR")}
    done = subprocess.run([sys.executable, "-m", "mmali_tf.train", f"--workdir={tmp_path / 'run'}", *args],
                          cwd=REPO, env={**env, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_quickstart_ends_with_the_evaluation_table_and_the_grids_and_no_cpp_log_lines(tmp_path):
    out = _train(tmp_path, "--flagfile=flags/quickstart.cfg", "--max_iter=12", "--save_every=6", "--image_every=6",
                 "--log_every=6")
    assert not CPP_LOG_LINE.search(out), CPP_LOG_LINE.findall(out)
    for metric in ("latent_acc/upright", "latent_acc/rotated", "coherence/upright_to_rotated",
                   "coherence/rotated_to_upright", "coherence/joint", "coherence/joint_chance"):
        assert re.search(rf"^\| `{re.escape(metric)}` \| \d+\.\d+% \|", out, re.MULTILINE), metric
    grids = re.search(r"^sample grids \(rows: .*\): (.*)$", out, re.MULTILINE).group(1).split(", ")
    assert sorted(os.path.basename(g) for g in grids) == ["rotated_step0000012.png", "upright_step0000012.png"]
    assert all(os.path.isfile(os.path.join(REPO, g) if not os.path.isabs(g) else g) for g in grids)


def test_the_mnist_svhn_networks_train_without_cpp_log_lines(tmp_path):
    out = _train(tmp_path, "--config=tiny")
    assert "done: step 6" in out
    assert not CPP_LOG_LINE.search(out), CPP_LOG_LINE.findall(out)
