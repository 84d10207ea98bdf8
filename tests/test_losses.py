"""Loss functions against values computed by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import losses


def test_cross_entropy_by_hand():
    logits = tf.constant([[1.0, 2.0, 3.0]])
    # -log softmax[0] = log(1 + e + e^2)
    assert losses.cross_entropy(logits, 0).numpy() == pytest.approx(math.log(1 + math.e + math.e**2), abs=1e-6)
    assert losses.cross_entropy(logits, 2).numpy() == pytest.approx(math.log(1 + math.e + math.e**2) - 2, abs=1e-6)


def test_cross_entropy_is_batch_mean():
    logits = tf.constant([[0.0, 0.0], [10.0, 0.0]])
    expected = (math.log(2) + math.log(1 + math.exp(-10))) / 2
    assert losses.cross_entropy(logits, 0).numpy() == pytest.approx(expected, abs=1e-6)


def test_non_saturating_is_mean_over_wrong_classes():
    logits = tf.constant([[1.0, 2.0, 3.0]])
    lse = math.log(math.e + math.e**2 + math.e**3)
    expected = ((lse - 2) + (lse - 3)) / 2  # CE against classes 1 and 2
    assert losses.non_saturating(logits, 0).numpy() == pytest.approx(expected, abs=1e-6)


def test_non_saturating_binary_is_minus_log_d():
    # For K = 2, NS(l, 1) = CE(l, 0) = -log sigmoid(l0 - l1).
    logits = tf.constant([[0.3, -1.2]])
    expected = -math.log(1 / (1 + math.exp(-(0.3 + 1.2))))
    assert losses.non_saturating(logits, 1).numpy() == pytest.approx(expected, abs=1e-6)


def test_binary_terms_by_hand():
    logits = tf.constant([0.0, 2.0])
    assert losses.binary_real(logits).numpy() == pytest.approx((math.log(2) + math.log(1 + math.exp(-2))) / 2, abs=1e-6)
    assert losses.binary_fake(logits).numpy() == pytest.approx((math.log(2) + math.log(1 + math.exp(2))) / 2, abs=1e-6)


def test_mean_squared_error_over_every_element():
    assert losses.mean_squared_error(tf.constant([[1.0, 2.0], [3.0, 4.0]]),
                                     tf.zeros([2, 2])).numpy() == pytest.approx(7.5)


def test_factorized_joint_logits_by_hand():
    a = [tf.constant([1.0]), tf.constant([2.0])]
    b = [tf.constant([0.5]), tf.constant([-1.0])]
    j = tf.constant([3.0])
    # [b1, b2, -(J + (a1 - b1) + (a2 - b2))] = [0.5, -1, -(3 + 0.5 + 3)]
    np.testing.assert_allclose(losses.factorized_joint_logits(a, b, j).numpy(), [[0.5, -1.0, -6.5]])


def test_factorized_joint_logits_recover_density_ratios():
    """logit_k - logit_p = log q_k/p when the factors are exact log ratios (paper eq. 10)."""
    rng = np.random.default_rng(0)
    log_joint_mi, log_c_given_x = rng.normal(size=3), rng.normal(size=(3, 3))  # J and b_m for 3 modalities
    log_q_over_p = rng.normal(size=(3, 3))  # a_m
    a = [tf.constant(log_q_over_p[m]) for m in range(3)]
    b = [tf.constant(log_c_given_x[m]) for m in range(3)]
    logits = losses.factorized_joint_logits(a, b, tf.constant(log_joint_mi)).numpy()
    for k in range(3):
        expected = log_joint_mi + log_c_given_x[k] + sum(log_q_over_p[m] - log_c_given_x[m] for m in range(3))
        np.testing.assert_allclose(logits[:, k] - logits[:, 3], expected, rtol=1e-6)


def test_reparameterize():
    z = losses.reparameterize(tf.constant([1.0]), tf.constant([math.log(4.0)]), tf.constant([0.5]))
    assert z.numpy()[0] == pytest.approx(2.0)


def test_split_gaussian_layout():
    mean, logvar = losses.split_gaussian(tf.reshape(tf.range(8.0), [1, 8]))
    np.testing.assert_array_equal(mean.numpy(), [[0, 1, 2, 3]])
    np.testing.assert_array_equal(logvar.numpy(), [[4, 5, 6, 7]])


def test_geometric_mean_posterior_by_hand():
    means = [tf.constant([0.0]), tf.constant([3.0])]
    logvars = [tf.constant([0.0]), tf.constant([math.log(2.0)])]
    mean, logvar = losses.geometric_mean_posterior(means, logvars)
    # precisions 1 and 1/2: mean = (0 * 1 + 3 * 0.5) / 1.5 = 1; variance = N / sum(precisions) = 2 / 1.5.
    assert mean.numpy()[0] == pytest.approx(1.0, abs=1e-6)
    assert logvar.numpy()[0] == pytest.approx(math.log(4.0 / 3.0), abs=1e-6)


def test_geometric_mean_of_identical_experts_is_that_expert():
    mean, logvar = losses.geometric_mean_posterior([tf.constant([0.7])] * 3, [tf.constant([-1.3])] * 3)
    assert mean.numpy()[0] == pytest.approx(0.7, abs=1e-6)
    assert logvar.numpy()[0] == pytest.approx(-1.3, abs=1e-6)
