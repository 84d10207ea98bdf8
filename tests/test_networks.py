"""Tests for mmali_tf.networks: PyTorch-faithful spectral norm, architectures, parameter counts, registry."""

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.networks.spectral_norm import SNConv2D, SNDense

# --------------------------------------------------------------------------------------------------------------------
# Spectral normalisation
# --------------------------------------------------------------------------------------------------------------------


def _np_normalize(x, eps=1e-12):
    return x / max(np.linalg.norm(x), eps)


def _np_power_step(k_mat, u, v):
    """PyTorch's update, written with W = k_mat^T ([out, in]): v = n(W^T u), u = n(W v)."""
    w = k_mat.T
    v = _np_normalize(w.T @ u)
    u = _np_normalize(w @ v)
    return u, v


def test_sn_dense_gradient_matches_explicit_formula():
    tf.keras.utils.set_random_seed(1)
    layer = SNDense(3, name="sn_grad")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    r = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    layer.build((None, 4))
    layer.bias.assign(np.array([0.1, -0.2, 0.3], np.float32))
    k = layer.kernel.numpy().astype(np.float64)
    u0, v0 = layer.sn_u.numpy().astype(np.float64), layer.sn_v.numpy().astype(np.float64)

    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * r)
    g_kernel, g_bias = tape.gradient(loss, [layer.kernel, layer.bias])

    # By hand: one power step, sigma = u^T W v, y = x (K / sigma) + b.
    u, v = _np_power_step(k, u0, v0)
    sigma = u @ k.T @ v
    np.testing.assert_allclose(y.numpy(), x @ (k / sigma) + layer.bias.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.sn_u.numpy(), u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.sn_v.numpy(), v, rtol=1e-5, atol=1e-6)
    # dL/dK = G / sigma - <G, K> / sigma^2 * d sigma / dK, with G = x^T r and d sigma / dK = v u^T (K is [in, out]).
    big_g = x.T.astype(np.float64) @ r
    expected = big_g / sigma - (np.sum(big_g * k) / sigma**2) * np.outer(v, u)
    np.testing.assert_allclose(g_kernel.numpy(), expected, rtol=1e-4, atol=1e-6)
    # The sigma term is not negligible here: dropping it (Keras' built-in behaviour) would fail the check.
    assert np.abs(big_g / sigma - expected).max() > 1e-2 * np.abs(expected).max()
    np.testing.assert_allclose(g_bias.numpy(), r.sum(axis=0), rtol=1e-5)


def test_sn_conv_forward_and_gradient_match_explicit_formula():
    tf.keras.utils.set_random_seed(2)
    layer = SNConv2D(5, 3, strides=2, padding="same", name="sn_conv_grad")
    x = tf.random.normal([2, 7, 7, 4])
    layer.build(x.shape)
    k = layer.kernel.numpy().astype(np.float64)
    u0, v0 = layer.sn_u.numpy().astype(np.float64), layer.sn_v.numpy().astype(np.float64)
    assert u0.shape == (5,) and v0.shape == (3 * 3 * 4,)

    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        loss = tf.reduce_sum(y**2)
    g_kernel = tape.gradient(loss, layer.kernel)

    u, v = _np_power_step(k.reshape(-1, 5), u0, v0)
    k_var = tf.Variable(k.astype(np.float32))
    with tf.GradientTape() as tape:
        sigma = tf.tensordot(
            tf.constant(u, tf.float32),
            tf.linalg.matvec(tf.reshape(k_var, [-1, 5]), tf.constant(v, tf.float32), transpose_a=True),
            axes=1,
        )
        y_ref = tf.nn.conv2d(x, k_var / sigma, strides=2, padding="SAME") + layer.bias
        loss_ref = tf.reduce_sum(y_ref**2)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_kernel.numpy(), tape.gradient(loss_ref, k_var).numpy(), rtol=1e-4, atol=1e-5)


def _set_kernel_with_singular_values(layer, singular_values, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(layer.kernel.shape)
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a, _ = np.linalg.qr(rng.normal(size=(rows, rows)))
    b, _ = np.linalg.qr(rng.normal(size=(cols, cols)))
    s = np.zeros((rows, cols))
    np.fill_diagonal(s, singular_values)
    layer.kernel.assign((a @ s @ b.T).reshape(shape).astype(np.float32))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_sn_sigma_converges_to_top_singular_value(kind):
    tf.keras.utils.set_random_seed(3)
    if kind == "dense":
        layer, x = SNDense(6, name="sn_conv_dense"), tf.random.normal([2, 9])
    else:
        layer, x = SNConv2D(6, 2, strides=1, padding="valid", name="sn_conv_conv"), tf.random.normal([2, 3, 3, 2])
    layer.build(x.shape)
    _set_kernel_with_singular_values(layer, [3.0, 2.0, 1.5, 1.0, 0.5, 0.1], seed=4)
    k_mat = layer.kernel.numpy().reshape(-1, 6)
    top = np.linalg.svd(k_mat, compute_uv=False)[0]
    assert abs(float(layer.sigma()) - top) > 1e-2  # random u, v: not there yet

    step = tf.function(lambda x: layer(x, training=True))
    for _ in range(60):
        step(x)
    np.testing.assert_allclose(float(layer.sigma()), top, rtol=1e-4)
    w_sn = layer.normalized_kernel(training=False).numpy().reshape(-1, 6)
    np.testing.assert_allclose(np.linalg.svd(w_sn, compute_uv=False)[0], 1.0, rtol=1e-4)
    # With the default N(0, 0.02) init as well (smaller spectral gap, so more iterations).
    layer.kernel.assign(np.random.default_rng(5).normal(0, 0.02, size=layer.kernel.shape).astype(np.float32))
    for _ in range(300):
        step(x)
    top = np.linalg.svd(layer.kernel.numpy().reshape(-1, 6), compute_uv=False)[0]
    np.testing.assert_allclose(float(layer.sigma()), top, rtol=2e-3)


@pytest.mark.parametrize("training", [False, None])
def test_sn_inference_mode_keeps_u_v(training):
    tf.keras.utils.set_random_seed(6)
    layer = SNDense(4, name="sn_infer")
    x = tf.random.normal([3, 5])
    layer(x, training=True)  # build + one update
    u, v = layer.sn_u.numpy().copy(), layer.sn_v.numpy().copy()
    y = layer(x, training=training)
    np.testing.assert_array_equal(layer.sn_u.numpy(), u)
    np.testing.assert_array_equal(layer.sn_v.numpy(), v)
    k = layer.kernel.numpy()
    sigma = u @ k.T @ v
    np.testing.assert_allclose(y.numpy(), x.numpy() @ (k / sigma) + layer.bias.numpy(), rtol=1e-5, atol=1e-6)
    # ... while a training call does move them.
    layer(x, training=True)
    assert np.abs(layer.sn_v.numpy() - v).max() > 1e-6


def test_sn_tensor_training_flag():
    tf.keras.utils.set_random_seed(7)
    layer = SNDense(4, name="sn_flag")
    x = tf.random.normal([3, 5])
    layer(x)
    fn = tf.function(lambda x, flag: layer(x, training=flag))
    v = layer.sn_v.numpy().copy()
    fn(x, tf.constant(False))
    np.testing.assert_array_equal(layer.sn_v.numpy(), v)
    fn(x, tf.constant(True))
    assert np.abs(layer.sn_v.numpy() - v).max() > 1e-6


@pytest.mark.parametrize("layer_fn, shape", [(lambda: SNDense(4), (3, 5)), (lambda: SNConv2D(4, 2, 2, "same"), (2, 4, 4, 3))])
def test_sn_forward_does_not_modify_kernel(layer_fn, shape):
    tf.keras.utils.set_random_seed(8)
    layer = layer_fn()
    x = tf.random.normal(shape)
    layer(x)
    k = layer.kernel.numpy().copy()
    u = layer.sn_u.numpy().copy()
    for _ in range(3):
        layer(x, training=True)
    np.testing.assert_array_equal(layer.kernel.numpy(), k)
    assert np.abs(layer.sn_u.numpy() - u).max() > 1e-6  # the power iteration did run
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]
    assert sorted(w.name for w in layer.non_trainable_weights) == ["sn_u", "sn_v"]
    assert all(w.aggregation == "only_first_replica" for w in layer.non_trainable_weights)
    np.testing.assert_allclose(np.linalg.norm(layer.sn_u.numpy()), 1.0, rtol=1e-5)


def test_sn_layers_config_round_trip_and_init():
    tf.keras.utils.set_random_seed(9)
    conv = SNConv2D(16, 4, strides=2, padding="same", name="c")
    clone = SNConv2D.from_config(conv.get_config())
    assert clone.get_config() == conv.get_config()
    assert (clone.filters, clone.kernel_size, clone.strides, clone.padding) == (16, (4, 4), (2, 2), "same")
    dense = SNDense(300, name="d")
    assert SNDense.from_config(dense.get_config()).get_config() == dense.get_config()
    dense.build((None, 400))
    assert abs(float(np.std(dense.kernel.numpy())) - 0.02) < 0.0005
    assert abs(float(np.mean(dense.kernel.numpy()))) < 0.0005
    np.testing.assert_array_equal(dense.bias.numpy(), 0.0)
    # Each layer draws its own init (an unseeded initializer instance shared between layers would repeat values).
    other = SNDense(300)
    other.build((None, 400))
    assert not np.allclose(other.kernel.numpy(), dense.kernel.numpy())
    with pytest.raises(ValueError, match="padding"):
        SNConv2D(4, 3, padding="causal")
