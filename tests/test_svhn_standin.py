"""The synthetic SVHN stand-in: determinism, class counts, worker independence, the tool and its files."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mmali_tf.data import svhn_standin as st
from mmali_tf.data.sources import load_svhn
from mmali_tf.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTS_200 = st.scale_class_counts(st.SVHN_TRAIN_CLASS_COUNTS, 200)


@pytest.fixture(scope="module")
def rendered():
    return st.render_standin(COUNTS_200, seed=0)


def test_class_counts_sum_to_svhn_totals():
    assert sum(st.SVHN_TRAIN_CLASS_COUNTS) == 73_257 and sum(st.SVHN_TEST_CLASS_COUNTS) == 26_032
    assert sum(COUNTS_200) == 200 and COUNTS_200 == (13, 38, 29, 23, 20, 19, 16, 15, 14, 13)  # largest remainder
    assert st.scale_class_counts(st.SVHN_TEST_CLASS_COUNTS, 26_032) == st.SVHN_TEST_CLASS_COUNTS
    assert sum(st.scale_class_counts(st.SVHN_TEST_CLASS_COUNTS, 1001)) == 1001


def test_shapes_labels_and_counts(rendered):
    images, labels = rendered
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (200,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == list(COUNTS_200)
    assert not np.all(np.diff(labels) >= 0)  # shuffled, not sorted by class


def test_images_are_varied_colour_digits(rendered):
    images, _ = rendered
    x = images.astype(np.float32)
    per_image_std = x.reshape(200, -1).std(axis=1)
    assert per_image_std.min() > 3  # every image shows something
    assert len({img.tobytes() for img in images}) == 200  # all different
    channel_spread = np.abs(x - x.mean(axis=3, keepdims=True)).mean()
    assert channel_spread > 2  # colour, not grey
    centre, edge = x[:, 8:24, 10:22].std(axis=(1, 2, 3)), x[:, :, :3].std(axis=(1, 2, 3))
    assert np.median(centre) > np.median(edge)  # the digit sits in the middle


def test_deterministic_in_seed_and_stream(rendered):
    images, labels = rendered
    again_images, again_labels = st.render_standin(COUNTS_200, seed=0)
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(labels, again_labels)
    other, other_labels = st.render_standin(COUNTS_200, seed=1)
    assert not np.array_equal(images, other) and not np.array_equal(labels, other_labels)
    test_split, _ = st.render_standin(COUNTS_200, seed=0, stream=1)
    assert not np.array_equal(images, test_split)


def test_independent_of_worker_count(monkeypatch):
    monkeypatch.setattr(st, "CHUNK", 48)  # several chunks from a small request
    counts = st.scale_class_counts(st.SVHN_TEST_CLASS_COUNTS, 150)
    one = st.render_standin(counts, seed=3, workers=1)
    two = st.render_standin(counts, seed=3, workers=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_progress_callback_reaches_total(monkeypatch):
    monkeypatch.setattr(st, "CHUNK", 40)
    seen = []
    st.render_standin(st.scale_class_counts(st.SVHN_TRAIN_CLASS_COUNTS, 100), seed=0,
                      progress=lambda done, total: seen.append((done, total)))
    assert seen == [(40, 100), (80, 100), (100, 100)]


def test_bad_counts():
    with pytest.raises(ConfigError):
        st.render_standin((1, 2, 3), seed=0)
    with pytest.raises(ConfigError):
        st.render_standin((5,) * 9 + (-1,), seed=0)


def test_tool_writes_files_that_load_svhn_reads(tmp_path):
    out = tmp_path / "standin"
    result = subprocess.run([sys.executable, "-m", "mmali_tf.tools.make_svhn_standin", f"--out_dir={out}", "--seed=2",
                             "--train_count=120", "--test_count=60"], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    printed = result.stdout
    assert "train_32x32.mat" in printed and "img/s" in printed and "ETA" in printed
    note = (out / "STANDIN.txt").read_text()
    assert "NOT genuine SVHN" in note and "seed: 2" in note and "train: 120 images" in note
    train, test = load_svhn(str(out), "train"), load_svhn(str(out), "test")
    assert "stand-in" in train.source and "stand-in" in test.source
    assert train.images.shape == (120, 32, 32, 3) and test.images.shape == (60, 32, 32, 3)
    assert train.class_counts().tolist() == list(st.scale_class_counts(st.SVHN_TRAIN_CLASS_COUNTS, 120))
    images, labels = st.render_standin(st.scale_class_counts(st.SVHN_TRAIN_CLASS_COUNTS, 120), seed=2)
    np.testing.assert_array_equal(train.images, images)  # the .mat round trip is lossless
    np.testing.assert_array_equal(train.labels, labels)
    assert train.fingerprint != test.fingerprint
