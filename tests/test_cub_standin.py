"""The synthetic CUB feature stand-in: determinism, CUB's shapes and class split, the tool, and a CCA signal."""

import importlib.util
import os

import numpy as np
import pytest

from mmali_tf.data import cub_standin as cs
from mmali_tf.data.cub_features import load_cub_features
from mmali_tf.data.sources import clear_cache
from mmali_tf.errors import ConfigError
from mmali_tf.evaluation import cca

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_IMAGES, TEST_IMAGES = 400, 120


def _tool():
    spec = importlib.util.spec_from_file_location("make_cub_standin", os.path.join(REPO, "tools",
                                                                                    "make_cub_standin.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("standin")
    clear_cache()
    assert _tool().main(["--out_dir", str(out), "--seed", "3", "--train_images", str(TRAIN_IMAGES),
                         "--test_images", str(TEST_IMAGES)]) == 0
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


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(ConfigError, match=">= 150"):
        cs.generate_split("train", 149, seed=0)
    with pytest.raises(ConfigError, match="unknown split"):
        cs.generate_split("val", 500, seed=0)
    tool = _tool()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for argv, message in [(["--out_dir", str(a_file)], "is not a directory"),
                          (["--out_dir", str(tmp_path), "--test_images", "49"], "at least one image per class")]:
        with pytest.raises(SystemExit) as info:
            tool.main(argv)
        assert info.value.code != 0
        error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(error_lines) == 1 and message in error_lines[0]
    real = tmp_path / "real" / "cub" / "train"
    real.mkdir(parents=True)
    with pytest.raises(SystemExit):
        tool.main(["--out_dir", str(tmp_path / "real")])
    assert "is not a stand-in" in capsys.readouterr().err
