"""The synthetic CUB stand-in: determinism, CUB's shapes and class split, the tool, and a CCA signal."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mmali_tf.data import cub_standin as cs
from mmali_tf.data.cub_features import load_cub_features
from mmali_tf.data.sources import clear_cache
from mmali_tf.errors import ConfigError
from mmali_tf.evaluation import cca
from tests.cli_driver import run_in_one_interpreter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "mmali_tf.tools.make_cub_standin"
TRAIN_IMAGES, TEST_IMAGES = 400, 120


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The stand-in written by ``python -m mmali_tf.tools.make_cub_standin`` (a real process)."""
    out = tmp_path_factory.mktemp("standin")
    clear_cache()
    proc = subprocess.run([sys.executable, "-m", MODULE, f"--out_dir={out}", "--seed=3",
                           f"--train_images={TRAIN_IMAGES}", f"--test_images={TEST_IMAGES}"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "synthetic CUB stand-in, not CUB"
    return str(out), load_cub_features(str(out), "train"), load_cub_features(str(out), "test")


def test_shapes_classes_and_marker(written):
    out, train, test = written
    assert train.image_features.shape == (TRAIN_IMAGES, 2048) and test.caption_features.shape == (TEST_IMAGES, 10,
                                                                                                  1024)
    assert train.standin and test.standin and "stand-in" in train.source and "not CUB" in test.source
    assert train.image_features.min() == 0.0 and 0.2 < (train.image_features == 0).mean() < 0.8  # ReLU features
    train_classes, test_classes = set(train.class_ids.tolist()), set(test.class_ids.tolist())
    assert len(train_classes) == 150 and len(test_classes) == 50 and not train_classes & test_classes
    assert train_classes | test_classes == set(range(1, 201))
    assert np.all(np.diff(train.class_ids) >= 0)  # listed class by class, as StackGAN's file lists
    assert np.bincount(train.class_ids)[sorted(train_classes)].tolist() == [3] * 100 + [2] * 50  # 400 over 150
    assert all(f.startswith(f"{c:03d}.Standin_Class_") for f, c in zip(train.filenames, train.class_ids))
    note = open(os.path.join(out, "cub", "train", "STANDIN.txt")).read()
    assert "NOT CUB" in note and "seed: 3" in note and f"{TRAIN_IMAGES} images" in note


def test_deterministic_in_seed(written):
    _, train, _ = written
    again = cs.generate_split("train", TRAIN_IMAGES, seed=3)
    np.testing.assert_array_equal(again["image_features"], train.image_features)  # the files round-trip exactly
    np.testing.assert_array_equal(again["caption_features"], train.caption_features)
    other = cs.generate_split("train", TRAIN_IMAGES, seed=4)
    assert not np.array_equal(other["image_features"], train.image_features)
    assert set(cs.class_split(3)["test"].tolist()) != set(cs.class_split(4)["test"].tolist())


def test_full_cub_sizes_generate():
    split = cs.generate_split("test", 2_933, seed=0)
    assert split["caption_features"].shape == (2_933, 10, 1024) and len(split["filenames"]) == 2_933
    assert split["caption_features"].dtype == np.float32 and np.isfinite(split["caption_features"]).all()


def test_real_test_pairs_correlate_far_above_shuffled_pairs(written):
    """CCA fitted on the train pairs, scored on the unseen test classes. The reference's solver on all 3,072 dims is
    too slow for a unit test, so this uses the first 128 caption and 256 image dimensions (the shared factor reaches
    every dimension through the random maps)."""
    _, train, test = written
    captions, images = test.pair_captions()[:, :128], test.pair_images()[:, :256]
    fitted = cca.fit_cca([train.pair_captions()[:, :128], train.pair_images()[:, :256]], k=40)
    real = cca.correlation_score(fitted, captions, images)
    shuffled = cca.correlation_score(fitted, captions, images[np.random.default_rng(0).permutation(len(images))])
    assert real > 0.2 and abs(shuffled) < 0.05 and real > shuffled + 0.2


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match=">= 150"):
        cs.generate_split("train", 149, seed=0)
    with pytest.raises(ConfigError, match="unknown split"):
        cs.generate_split("val", 500, seed=0)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    real = tmp_path / "real" / "cub" / "train"
    real.mkdir(parents=True)
    cases = [([f"--out_dir={a_file}"], "is not a directory"),
             ([f"--out_dir={tmp_path}", "--test_images=49"], "at least one image per class"),
             ([f"--out_dir={tmp_path / 'real'}"], "is not a stand-in")]
    results = run_in_one_interpreter([{"module": MODULE, "argv": argv} for argv, _ in cases], str(tmp_path))
    for (argv, message), result in zip(cases, results):
        assert result["code"] == 2, (argv, result)  # a bad flag: refused before anything is written
        error_lines = [line for line in result["stderr"].splitlines() if "error:" in line]
        assert len(error_lines) == 1 and message in error_lines[0], (argv, result["stderr"])
    assert os.listdir(real) == [] and sorted(os.listdir(tmp_path / "real" / "cub")) == ["train"]
