"""Partial pairing with unpaired data (issue 7): pools, independent marginals, class balance, M = 3."""

import os

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import losses
from mmali_tf.config import LossConfig
from mmali_tf.data import load_mnist, pair_by_label
from mmali_tf.data.unpaired import build_pools, pooled_batches
from mmali_tf.noise import StepNoise
from mmali_tf.objective import Networks, discriminator_losses
from tests.test_objective import batches as objective_batches
from tests.test_objective import FunctionCritic, constant_networks, model_config

DATA_DIR = os.environ.get("MMALI_DATA_DIR",
                          os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data"))


@pytest.fixture(scope="module")
def mnist_labels():
    return load_mnist(DATA_DIR, "train").labels


def partial_pairs(labels_by_name, fraction):
    return pair_by_label(labels_by_name, data_multiplication=3, use_all=True, percentage=fraction, seed=0)


def test_pools_are_paired_plus_disjoint_unpaired(mnist_labels):
    labels = {"a": mnist_labels, "b": mnist_labels[::-1].copy()}
    pairs = partial_pairs(labels, 0.2)
    pools, unpaired = build_pools({n: len(v) for n, v in labels.items()}, pairs)
    for n in labels:
        paired_images = np.unique(pairs[n])
        assert np.intersect1d(paired_images, unpaired[n]).size == 0
        assert len(pools[n]) == len(np.unique(pools[n])) == 60000  # every image exactly once
        assert set(pools[n]) == set(paired_images) | set(unpaired[n])
        # 20% of every class is paired (reference `percentage` semantics).
        for digit in range(10):
            in_class = np.sum(labels[n] == digit)
            assert np.sum(labels[n][paired_images] == digit) == int(in_class * 0.2)


def test_extra_unpaired_limit_and_class_balance(mnist_labels):
    labels = {"a": mnist_labels, "b": mnist_labels}
    pairs = partial_pairs(labels, 0.2)
    pools, unpaired = build_pools({"a": 60000, "b": 60000}, pairs, {"a": 5000})
    assert len(unpaired["a"]) == 5000 and len(unpaired["b"]) == 60000 - len(np.unique(pairs["b"]))
    counts = np.bincount(mnist_labels[unpaired["a"]], minlength=10)
    assert counts.min() > 0.6 * 500 and counts.max() < 1.4 * 500, counts  # roughly balanced, like the reference
    full = np.bincount(mnist_labels[pools["b"]], minlength=10)
    np.testing.assert_array_equal(full, np.bincount(mnist_labels, minlength=10))


def labelled_images(labels):
    """1x1 'images' whose pixel encodes the label, so batches can be decoded back to labels."""
    return (labels.astype(np.uint8) * 20).reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("names", [("a", "b"), ("a", "b", "c")])
def test_marginal_batches_mix_tuples_and_paired_batches_do_not(mnist_labels, names):
    labels = {n: mnist_labels for n in names}
    pairs = partial_pairs(labels, 0.2)
    pools, _ = build_pools({n: 60000 for n in names}, pairs)
    ds = pooled_batches({n: labelled_images(mnist_labels) for n in names}, pairs, pools, batch_size=256, seed=3)
    agree_paired, agree_marginal = [], []
    for element in ds.take(8):
        decode = lambda x: np.round(x.numpy().reshape(-1) * 255 / 20).astype(int)  # noqa: E731
        for call, sink in (("d_joint", agree_paired), ("g_joint", agree_paired), ("d_marginal", agree_marginal)):
            first = decode(element[call][names[0]])
            sink.extend(first == decode(element[call][n]) for n in names[1:])
    assert np.mean(agree_paired) == 1.0
    assert 0.05 < np.mean(agree_marginal) < 0.2  # independent draws: ~10% share the label by chance


def test_pool_streams_are_pure_functions_of_the_step(mnist_labels):
    labels = {"a": mnist_labels, "b": mnist_labels}
    pairs = partial_pairs(labels, 0.2)
    pools, _ = build_pools({"a": 60000, "b": 60000}, pairs)
    images = {n: labelled_images(mnist_labels) for n in labels}
    from_zero = list(pooled_batches(images, pairs, pools, batch_size=16, seed=1).take(4))
    resumed = next(iter(pooled_batches(images, pairs, pools, batch_size=16, seed=1, start_step=3)))
    for call in resumed:
        for n in resumed[call]:
            np.testing.assert_array_equal(resumed[call][n].numpy(), from_zero[3][call][n].numpy())


def test_joint_critic_negatives_come_from_the_marginal_batch():
    names = ("a", "b", "c")
    base = constant_networks(names)

    def mean_pixel_critic(*xs):
        return tf.reduce_mean(tf.reshape(xs[0], [tf.shape(xs[0])[0], -1]), axis=1, keepdims=True)

    nets = Networks(base.encoders, base.decoders, base.d0, base.d1, FunctionCritic(mean_pixel_critic))
    data = objective_batches(names)
    data["d_marginal"] = {n: tf.fill(tf.shape(data["d_joint"][n]), 0.25) for n in names}
    terms = discriminator_losses(nets, data, StepNoise(0, 0), model_config(names), LossConfig())
    positives = tf.reduce_mean(tf.reshape(data["d_joint"]["a"], [4, -1]), axis=1)
    expected = losses.binary_real(positives) + losses.binary_fake(tf.fill([4], 0.25))
    assert terms["dj"].numpy() == pytest.approx(expected.numpy(), abs=1e-6)
