"""Same-label pairing: the reference's counts, per-tuple label equality, multiplicity, determinism."""

import os

import numpy as np
import pytest

from mmali_tf.data.pairing import pair_by_label, pairing_summary
from mmali_tf.data.sources import DATA_DIR_ENV, load_mnist
from mmali_tf.data.svhn_standin import SVHN_TEST_CLASS_COUNTS, SVHN_TRAIN_CLASS_COUNTS
from mmali_tf.errors import ConfigError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def genuine_data_dir() -> str:
    return os.environ.get(DATA_DIR_ENV) or os.path.join(os.path.dirname(REPO), "shared", "data")


def fake_labels(counts, seed):
    """A label array with the given class counts, in a shuffled order."""
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(10), counts)).astype(np.int64)


@pytest.fixture(scope="module")
def mnist():
    return {s: load_mnist(genuine_data_dir(), s).labels for s in ("train", "test")}


@pytest.fixture(scope="module")
def train_pairs(mnist):
    labels = {"mnist": mnist["train"], "svhn": fake_labels(SVHN_TRAIN_CLASS_COUNTS, 7)}
    return labels, pair_by_label(labels, use_all=True)


def test_train_pair_count_is_the_reference_number(train_pairs):
    labels, pairs = train_pairs
    assert set(pairs) == {"mnist", "svhn"}
    assert len(pairs["mnist"]) == len(pairs["svhn"]) == 1_682_040
    assert pairs["mnist"].dtype == np.int64 and pairs["svhn"].dtype == np.int64
    assert pairing_summary(pairs) == "1,682,040 pairs (dm=30); distinct images per modality: mnist 56,068, svhn 56,068"
    # use_all=False (max_d=10000 never binds) gives the same count
    assert len(pair_by_label(labels, data_multiplication=1)["svhn"]) == 56_068


def test_every_tuple_has_equal_labels_and_each_image_occurs_dm_times(train_pairs):
    labels, pairs = train_pairs
    np.testing.assert_array_equal(labels["mnist"][pairs["mnist"]], labels["svhn"][pairs["svhn"]])
    for m in ("mnist", "svhn"):
        used, counts = np.unique(pairs[m], return_counts=True)
        assert len(used) == 56_068 and np.all(counts == 30)
        # the used images are the first n_l of each class in stable (original index) order
        for c in range(10):
            members = np.flatnonzero(labels[m] == c)
            n_l = min(np.sum(labels["mnist"] == c), np.sum(labels["svhn"] == c))
            np.testing.assert_array_equal(used[labels[m][used] == c], members[:n_l])


def test_blocks_are_class_ordered_permutations(train_pairs):
    labels, pairs = train_pairs
    lab = labels["mnist"][pairs["mnist"]]
    assert np.all(np.diff(lab) >= 0)  # classes in ascending order, dm blocks per class
    n0 = 4948  # digit 0: min(5923 MNIST, 4948 SVHN)
    first, second = pairs["svhn"][:n0], pairs["svhn"][n0:2 * n0]
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)  # independent permutations
    assert not np.array_equal(pairs["mnist"][:n0], np.sort(pairs["mnist"][:n0]))


def test_test_pairs_use_all_is_300000(mnist):
    labels = {"mnist": mnist["test"], "svhn": fake_labels(SVHN_TEST_CLASS_COUNTS, 3)}
    pairs = pair_by_label(labels, use_all=True, data_multiplication=30)
    assert len(pairs["mnist"]) == 300_000
    used, counts = np.unique(pairs["mnist"], return_counts=True)
    assert len(used) == 10_000 and np.all(counts == 30)  # every MNIST test image, 30 times
    np.testing.assert_array_equal(labels["mnist"][pairs["mnist"]], labels["svhn"][pairs["svhn"]])


def test_determinism_with_seed():
    labels = {"a": fake_labels([50] * 10, 0), "b": fake_labels([40, 60] * 5, 1)}
    p1, p2 = pair_by_label(labels, seed=5), pair_by_label(labels, seed=5)
    p3 = pair_by_label(labels, seed=6)
    for m in labels:
        np.testing.assert_array_equal(p1[m], p2[m])
    assert not np.array_equal(p1["a"], p3["a"])
    assert sorted(p1["a"]) == sorted(p3["a"])  # same images, different order


def test_percentage_semantics():
    a = fake_labels([100, 51, 30, 7, 10, 10, 10, 10, 10, 10], 0)
    b = fake_labels([40, 200, 29, 9, 10, 10, 10, 10, 10, 10], 1)
    pairs = pair_by_label({"a": a, "b": b}, use_all=True, percentage=0.2, data_multiplication=3)
    # n_l = min(int(0.2 |A_l|), int(0.2 |B_l|)) = 8, 10, 5, 1, 2 x 6
    expected = [8, 10, 5, 1] + [2] * 6
    assert len(pairs["a"]) == sum(expected) * 3
    counts = np.bincount(a[pairs["a"]], minlength=10) // 3
    assert counts.tolist() == expected
    used = np.unique(pairs["a"])
    np.testing.assert_array_equal(used[a[used] == 0], np.flatnonzero(a == 0)[:8])  # the first n_l only
    # reference semantics: without use_all the percentage is not applied (n_l = min(|A_l|, |B_l|, max_d))
    plain = pair_by_label({"a": a, "b": b}, percentage=0.2, data_multiplication=1)
    assert len(plain["a"]) == 40 + 51 + 29 + 7 + 60


def test_max_d_caps_each_class():
    labels = {"a": fake_labels([30] * 10, 0), "b": fake_labels([25] * 10, 1)}
    pairs = pair_by_label(labels, max_d=20, data_multiplication=2)
    assert len(pairs["a"]) == 20 * 10 * 2
    pairs_all = pair_by_label(labels, max_d=20, use_all=True, data_multiplication=2)  # no cap with use_all
    assert len(pairs_all["a"]) == 25 * 10 * 2


def test_hand_example():
    a = np.array([1, 0, 1, 0, 2])
    b = np.array([0, 0, 1, 1, 1, 2, 2])
    pairs = pair_by_label({"a": a, "b": b}, data_multiplication=1, seed=0)
    # class 0: a {1, 3}, b {0, 1}; class 1: a {0, 2}, b first two {2, 3}; class 2: a {4}, b first {5}
    assert sorted(pairs["a"][:2]) == [1, 3] and sorted(pairs["b"][:2]) == [0, 1]
    assert sorted(pairs["a"][2:4]) == [0, 2] and sorted(pairs["b"][2:4]) == [2, 3]
    assert pairs["a"][4:].tolist() == [4] and pairs["b"][4:].tolist() == [5]


def test_classes_come_from_the_first_modality():
    a = np.array([0, 0, 1, 1])
    b = np.array([1, 1, 2, 2, 0])
    pairs = pair_by_label({"a": a, "b": b}, data_multiplication=1)
    assert sorted(b[pairs["b"]].tolist()) == [0, 1, 1]  # class 2 (absent from "a") is never used


def test_multimnist_style_four_modalities(mnist):
    labels = {f"m{i}": mnist["train"] for i in range(4)}
    pairs = pair_by_label(labels, use_all=True)
    assert all(len(p) == 1_800_000 for p in pairs.values())
    for i in range(1, 4):
        np.testing.assert_array_equal(mnist["train"][pairs["m0"]], mnist["train"][pairs[f"m{i}"]])
        assert np.mean(pairs["m0"] == pairs[f"m{i}"]) < 0.01  # own permutations: different images per tuple
    assert pairing_summary(pairs).startswith("1,800,000 tuples (dm=30); distinct images per modality: m0 60,000")


def test_bad_arguments():
    labels = {"a": np.zeros(4, np.int64), "b": np.zeros(4, np.int64)}
    with pytest.raises(ConfigError):
        pair_by_label(labels, data_multiplication=0)
    with pytest.raises(ConfigError):
        pair_by_label(labels, use_all=True, percentage=0.0)
    with pytest.raises(DataError, match="modality 'b'"):
        pair_by_label({"a": np.zeros(4, np.int64), "b": np.zeros((4, 1), np.int64)})
    with pytest.raises(DataError, match="modality 'a'"):
        pair_by_label({"a": np.zeros(4, np.float32), "b": np.zeros(4, np.int64)})
