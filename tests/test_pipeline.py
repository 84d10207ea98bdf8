"""tf.data pipelines: structure, values, determinism, the resume property, epochs, eval batches, rate."""

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.data.pairing import pair_by_label
from mmali_tf.data.pipeline import (CALLS, _step_indices, epoch_order, measure_rate, paired_batches,
                                    step_tuple_indices, unimodal_batches)
from mmali_tf.errors import ConfigError, DataError


def identity_images(n, hw, c):
    """Image i is filled with the value i (n <= 256), so a batch reveals which images it holds."""
    assert n <= 256
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, hw, hw, c)).copy()


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    labels = {"mnist": rng.integers(0, 10, 200), "svhn": rng.integers(0, 10, 250)}
    images = {"mnist": identity_images(200, 28, 1), "svhn": identity_images(250, 32, 3)}
    pairs = pair_by_label(labels, data_multiplication=2, seed=1)
    return labels, images, pairs


def to_numpy(element):
    return {c: {m: t.numpy() for m, t in d.items()} for c, d in element.items()}


def take(ds, n):
    return [to_numpy(e) for e in ds.take(n)]


def image_ids(batch):
    """Recovers image indices from identity images (all pixels equal i / 255)."""
    ids = np.rint(batch[:, 0, 0, 0] * 255.0).astype(np.int64)
    np.testing.assert_allclose(batch, (ids / 255.0)[:, None, None, None].astype(np.float32) * np.ones_like(batch))
    return ids


def test_structure_shapes_dtypes_range(small):
    _, images, pairs = small
    ds = paired_batches(images, pairs, batch_size=16, seed=3)
    spec = ds.element_spec
    assert tuple(spec) == CALLS == ("d_unimodal", "d_joint", "g_unimodal", "g_joint")
    for call in CALLS:
        assert spec[call]["mnist"].shape == (16, 28, 28, 1) and spec[call]["mnist"].dtype == tf.float32
        assert spec[call]["svhn"].shape == (16, 32, 32, 3) and spec[call]["svhn"].dtype == tf.float32
    for element in take(ds, 3):
        for call in CALLS:
            for m in ("mnist", "svhn"):
                x = element[call][m]
                assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0


def test_values_follow_the_epoch_permutations(small):
    labels, images, pairs = small
    batch, seed = 8, 11
    per_step = len(CALLS) * batch
    for step, element in enumerate(take(paired_batches(images, pairs, batch_size=batch, seed=seed), 12)):
        tuple_ids = step_tuple_indices(len(pairs["mnist"]), seed, step, per_step).reshape(len(CALLS), batch)
        for i, call in enumerate(CALLS):
            mnist_ids = image_ids(element[call]["mnist"])
            svhn_ids = image_ids(element[call]["svhn"])
            np.testing.assert_array_equal(mnist_ids, pairs["mnist"][tuple_ids[i]])
            np.testing.assert_array_equal(svhn_ids, pairs["svhn"][tuple_ids[i]])
            np.testing.assert_array_equal(labels["mnist"][mnist_ids], labels["svhn"][svhn_ids])  # same digit


def test_real_pixels_are_scaled_by_255():
    rng = np.random.default_rng(0)
    images = {"a": rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8),
              "b": rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)}
    pairs = {"a": np.arange(30), "b": np.arange(30)[::-1].copy()}
    element = to_numpy(next(iter(paired_batches(images, pairs, batch_size=5, seed=0, calls=("only",)))))
    ids = step_tuple_indices(30, 0, 0, 5)
    np.testing.assert_allclose(element["only"]["a"], images["a"][ids].astype(np.float32) / 255.0, atol=1e-7)
    np.testing.assert_allclose(element["only"]["b"], images["b"][pairs["b"][ids]].astype(np.float32) / 255.0,
                               atol=1e-7)


def test_determinism_and_seed(small):
    _, images, pairs = small
    a = take(paired_batches(images, pairs, batch_size=16, seed=4), 4)
    b = take(paired_batches(images, pairs, batch_size=16, seed=4), 4)
    c = take(paired_batches(images, pairs, batch_size=16, seed=5), 4)
    for x, y in zip(a, b):
        for call in CALLS:
            np.testing.assert_array_equal(x[call]["svhn"], y[call]["svhn"])
    assert any(not np.array_equal(x["d_joint"]["mnist"], z["d_joint"]["mnist"]) for x, z in zip(a, c))


def test_resume_gives_the_same_batches(small):
    _, images, pairs = small
    # 20 steps of 4 x 64 = 256 tuples cross several epoch boundaries (the small set has < 1000 tuples)
    full = take(paired_batches(images, pairs, batch_size=64, seed=9), 20)
    resumed = take(paired_batches(images, pairs, batch_size=64, seed=9, start_step=5), 15)
    for step in range(5, 20):
        for call in CALLS:
            for m in ("mnist", "svhn"):
                np.testing.assert_array_equal(resumed[step - 5][call][m], full[step][call][m])
    assert not np.array_equal(full[0]["d_unimodal"]["mnist"], full[5]["d_unimodal"]["mnist"])


def test_iterating_twice_restarts_at_start_step(small):
    _, images, pairs = small
    ds = paired_batches(images, pairs, batch_size=8, seed=2, start_step=3)
    first, again = take(ds, 2), take(ds, 2)
    np.testing.assert_array_equal(first[1]["g_joint"]["svhn"], again[1]["g_joint"]["svhn"])


def test_each_epoch_is_a_permutation_of_all_tuples():
    num_tuples, per_step = 512, 128  # 4 steps per epoch exactly
    for epoch in range(3):
        ids = np.concatenate([step_tuple_indices(num_tuples, 0, s, per_step) for s in range(4 * epoch, 4 * epoch + 4)])
        assert sorted(ids.tolist()) == list(range(num_tuples))
        np.testing.assert_array_equal(ids, epoch_order(num_tuples, 0, epoch))
    assert not np.array_equal(epoch_order(num_tuples, 0, 0), epoch_order(num_tuples, 0, 1))


@pytest.mark.parametrize("num_tuples, per_step, start", [(1000, 256, 0), (1000, 256, 7), (100, 256, 3), (37, 5, 11)])
def test_generator_matches_the_pure_function(num_tuples, per_step, start):
    gen = _step_indices(num_tuples, 13, start, per_step)
    for step in range(start, start + 25):
        np.testing.assert_array_equal(next(gen), step_tuple_indices(num_tuples, 13, step, per_step))


def test_unimodal_batches_in_order():
    x = identity_images(70, 32, 3)
    batches = [b.numpy() for b in unimodal_batches(x, 32)]
    assert [len(b) for b in batches] == [32, 32, 6]
    assert all(b.dtype == np.float32 and b.shape[1:] == (32, 32, 3) for b in batches)
    np.testing.assert_array_equal(np.concatenate([image_ids(b) for b in batches]), np.arange(70))
    np.testing.assert_allclose(np.concatenate(batches), x.astype(np.float32) / 255.0, atol=1e-7)


def test_bad_inputs(small):
    _, images, pairs = small
    with pytest.raises(ConfigError, match="same modalities"):
        paired_batches({"mnist": images["mnist"]}, pairs, batch_size=4, seed=0)
    with pytest.raises(DataError, match=r"modality 'svhn': indices must lie in \[0, 250\)"):
        paired_batches(images, {"mnist": pairs["mnist"], "svhn": pairs["svhn"] + 250}, batch_size=4, seed=0)
    with pytest.raises(DataError, match="equal length"):
        paired_batches(images, {"mnist": pairs["mnist"], "svhn": pairs["svhn"][:-1]}, batch_size=4, seed=0)
    with pytest.raises(DataError, match="expected uint8"):
        paired_batches({"mnist": images["mnist"].astype(np.float32), "svhn": images["svhn"]}, pairs,
                       batch_size=4, seed=0)
    with pytest.raises(ConfigError):
        paired_batches(images, pairs, batch_size=0, seed=0)


def test_rate_mnist_svhn_shapes_batch_64():
    rng = np.random.default_rng(0)
    n = 6000
    labels = rng.integers(0, 10, n)
    images = {"mnist": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
              "svhn": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)}
    pairs = pair_by_label({"mnist": labels, "svhn": labels}, data_multiplication=30)
    rate = measure_rate(paired_batches(images, pairs, batch_size=64, seed=0), steps=200)
    print(f"paired_batches: {rate:.0f} steps/s (batch 64 x 4 calls, MNIST + SVHN shapes)")
    assert rate > 50
