"""The CUB feature format (data/cub_features.py): round trip, pairing, fingerprint, and one clear error per bad file."""

import json
import os

import numpy as np
import pytest

from mmali_tf.data import cub_features as cf
from mmali_tf.data.sources import clear_cache
from mmali_tf.errors import ConfigError, DataError

N = 4


def _arrays(seed=0, n=N):
    rng = np.random.default_rng(seed)
    return {
        "image_features": np.abs(rng.normal(size=(n, 2048))).astype(np.float32),
        "caption_features": rng.normal(size=(n, 10, 1024)).astype(np.float32),
        "filenames": [f"{c:03d}.Bird/Bird_{i:04d}" for i, c in enumerate(range(1, n + 1))],
        "class_ids": np.arange(1, n + 1),
    }


@pytest.fixture
def data_dir(tmp_path):
    clear_cache()
    cf.write_cub_split(str(tmp_path / "cub" / "train"), **_arrays())
    yield str(tmp_path)
    clear_cache()


def test_round_trip_and_pairing(data_dir):
    split = cf.load_cub_features(data_dir, "train")
    arrays = _arrays()
    np.testing.assert_array_equal(split.image_features, arrays["image_features"])
    np.testing.assert_array_equal(split.caption_features, arrays["caption_features"])
    assert split.filenames == tuple(arrays["filenames"]) and split.class_ids.dtype == np.int64
    assert split.num_images == N and split.num_pairs == 10 * N and not split.standin
    assert split.source == f"cub features/train from {os.path.join(data_dir, 'cub', 'train')}"
    assert not split.image_features.flags.writeable
    # Pair t = (caption t % 10 of image t // 10, image t // 10).
    t = 23
    np.testing.assert_array_equal(split.pair_captions()[t], arrays["caption_features"][2, 3])
    np.testing.assert_array_equal(split.pair_images()[t], arrays["image_features"][2])
    assert split.pair_image_indices().tolist()[:12] == [0] * 10 + [1, 1]
    assert split.pair_captions().shape == (40, 1024) and split.pair_images().shape == (40, 2048)


def test_fingerprint_changes_with_any_content(data_dir):
    fingerprint = cf.load_cub_features(data_dir, "train").fingerprint
    arrays = _arrays()
    assert fingerprint == cf.fingerprint(*(arrays[k] for k in ("image_features", "caption_features", "filenames",
                                                                "class_ids")))
    for key in arrays:
        changed = _arrays()
        if key == "filenames":
            changed[key] = changed[key][:-1] + ["x/y"]
        else:
            changed[key] = changed[key].copy()
            changed[key].flat[0] += 1
        assert cf.fingerprint(**changed) != fingerprint, key


def test_env_var_and_standin_marker(tmp_path, monkeypatch):
    clear_cache()
    cf.write_cub_split(str(tmp_path / "cub" / "test"), **_arrays(1), extra_files={"STANDIN.txt": "synthetic"})
    monkeypatch.setenv("MMALI_DATA_DIR", str(tmp_path))
    split = cf.load_cub_features(None, "test")
    assert split.standin and split.source.startswith("cub stand-in (synthetic, not CUB)/test from")


def test_writer_is_whole_or_nothing_and_does_not_overwrite_by_default(tmp_path):
    target = str(tmp_path / "cub" / "train")
    cf.write_cub_split(target, **_arrays())
    with pytest.raises(DataError, match="already exists"):
        cf.write_cub_split(target, **_arrays(2))
    bad = _arrays(2)
    bad["class_ids"] = bad["class_ids"][:-1]
    with pytest.raises(DataError, match="class_ids.npy"):
        cf.write_cub_split(target, **bad, overwrite=True)
    assert sorted(os.listdir(tmp_path / "cub")) == ["train"]  # no temporary directory left behind
    np.testing.assert_array_equal(np.load(os.path.join(target, cf.IMAGE_FILE)), _arrays()["image_features"])
    cf.write_cub_split(target, **_arrays(2), overwrite=True)
    np.testing.assert_array_equal(np.load(os.path.join(target, cf.IMAGE_FILE)), _arrays(2)["image_features"])
    assert sorted(os.listdir(tmp_path / "cub")) == ["train"]


def _corrupt(directory, name, value):
    path = os.path.join(directory, name)
    if name.endswith(".json"):
        with open(path, "w") as f:
            f.write(value if isinstance(value, str) else json.dumps(value))
    else:
        np.save(path, value)


CORRUPTIONS = [
    (cf.IMAGE_FILE, np.zeros((N, 2047), np.float32), "expected shape \\[N, 2048\\]"),
    (cf.IMAGE_FILE, np.zeros((N, 2048), np.float64), "expected float32"),
    (cf.IMAGE_FILE, np.full((N, 2048), np.nan, np.float32), "NaN"),
    (cf.CAPTION_FILE, np.zeros((N, 5, 1024), np.float32), "expected shape \\[N, 10, 1024\\]"),
    (cf.CAPTION_FILE, np.zeros((N + 1, 10, 1024), np.float32), "has 5 entries but"),
    (cf.CLASS_IDS_FILE, np.arange(N, dtype=np.float32), "integer"),
    (cf.CLASS_IDS_FILE, np.array([0, 1, -2, 3]), "non-negative"),
    (cf.FILENAMES_FILE, ["a", "b"], "has 2 entries but"),
    (cf.FILENAMES_FILE, ["a", "b", 3, "d"], "list of non-empty strings"),
    (cf.FILENAMES_FILE, "[not json", "cannot read as a JSON"),
]


@pytest.mark.parametrize("name, value, message", CORRUPTIONS, ids=[f"{c[0]}-{c[2][:12]}" for c in CORRUPTIONS])
def test_malformed_files_raise_a_data_error_naming_the_file(data_dir, name, value, message):
    directory = os.path.join(data_dir, "cub", "train")
    _corrupt(directory, name, value)
    with pytest.raises(DataError, match=message) as info:
        cf.load_cub_features(data_dir, "train")
    assert name in str(info.value) and "\n" not in str(info.value)


def test_missing_and_unreadable_files(data_dir, tmp_path):
    directory = os.path.join(data_dir, "cub", "train")
    with open(os.path.join(directory, cf.CAPTION_FILE), "wb") as f:
        f.write(b"\x93NUMPY truncated")
    with pytest.raises(DataError, match=f"{cf.CAPTION_FILE}: cannot read as a .npy"):
        cf.load_cub_features(data_dir, "train")
    os.remove(os.path.join(directory, cf.CLASS_IDS_FILE))
    with pytest.raises(DataError, match=f"{cf.CLASS_IDS_FILE}: missing"):
        cf.load_cub_features(data_dir, "train")
    with pytest.raises(DataError, match="no CUB features in"):
        cf.load_cub_features(data_dir, "test")
    with pytest.raises(ConfigError, match="unknown split"):
        cf.load_cub_features(data_dir, "val")
