"""Tests for mmali_tf.networks: PyTorch-faithful spectral norm, architectures, parameter counts, registry."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.errors import ConfigError
from mmali_tf.kinds.builders import (
    IMAGE_SHAPES,
    build_decoder,
    build_encoder,
    build_joint_discriminator,
    build_joint_xz_discriminator,
    build_xz_discriminator,
)
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


@pytest.mark.parametrize("kernel, strides, padding, size", [(3, 2, "same", 7), (4, 1, "valid", 4)])
def test_sn_conv_forward_and_gradient_match_explicit_formula(kernel, strides, padding, size):
    """Also the 4x4 "valid" kernel on a 4x4 input (the SVHN x-branch's last layer), which runs as one matmul."""
    tf.keras.utils.set_random_seed(2)
    layer = SNConv2D(5, kernel, strides=strides, padding=padding, name="sn_conv_grad")
    x = tf.random.normal([2, size, size, 4])
    layer.build(x.shape)
    k = layer.kernel.numpy().astype(np.float64)
    u0, v0 = layer.sn_u.numpy().astype(np.float64), layer.sn_v.numpy().astype(np.float64)
    assert u0.shape == (5,) and v0.shape == (kernel * kernel * 4,)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y**2)
    g_kernel, g_x = tape.gradient(loss, [layer.kernel, x])

    u, v = _np_power_step(k.reshape(-1, 5), u0, v0)
    k_var = tf.Variable(k.astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        sigma = tf.tensordot(
            tf.constant(u, tf.float32),
            tf.linalg.matvec(tf.reshape(k_var, [-1, 5]), tf.constant(v, tf.float32), transpose_a=True),
            axes=1,
        )
        y_ref = tf.nn.conv2d(x, k_var / sigma, strides=strides, padding=padding.upper()) + layer.bias
        loss_ref = tf.reduce_sum(y_ref**2)
    assert y.shape == y_ref.shape
    # The layer divides x * K by sigma where the reference convolves with K / sigma: float32 rounding of the
    # products, relative to the outputs' scale.
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-5, atol=1e-6 * np.abs(y_ref.numpy()).max())
    for ours, ref in ((g_kernel, tape.gradient(loss_ref, k_var)), (g_x, tape.gradient(loss_ref, x))):
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6 * np.abs(ref.numpy()).max())


def test_sn_conv_covering_the_input_runs_as_a_matmul():
    """oneDNN runs a 1x1-output convolution and its gradients 2-3x slower than the equivalent matmul."""
    layer = SNConv2D(8, 4, strides=1, padding="valid", name="sn_conv_cover")

    def ops(size):
        graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
            tf.TensorSpec([None, size, size, 3])).graph
        return graph.get_operations()

    # The power iteration has matrix-vector MatMuls either way; the covering case adds a [batch, 48] x [48, 8] one.
    covering = ops(4)
    assert not any(op.type == "Conv2D" for op in covering)
    assert any(op.type == "MatMul" and op.inputs[0].shape.as_list() == [None, 4 * 4 * 3] for op in covering)
    larger = ops(5)
    assert any(op.type == "Conv2D" for op in larger)
    assert not any(op.type == "MatMul" and op.inputs[0].shape.as_list()[0] is None for op in larger)


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


@pytest.mark.parametrize(
    "layer_fn, shape", [(lambda: SNDense(4), (3, 5)), (lambda: SNConv2D(4, 2, 2, "same"), (2, 4, 4, 3))]
)
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
    assert all(w.synchronization == "on_read" for w in layer.non_trainable_weights)
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


# --------------------------------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------------------------------

L = 20


def n_trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# Parameter counts written out from the layer tables of docs/authors_code.md (section 2), independent of the implementation.
def _lin(i, o):
    return i * o + o


def _conv(i, o, k=4):
    return k * k * i * o + o


MNIST_X_BRANCH = _lin(784, 400) + _lin(400, 256)
SVHN_X_BRANCH = _conv(3, 32) + _conv(32, 64) + _conv(64, 128) + _conv(128, 256)
FORMULAS = {
    ("encoder", "mnist"): lambda l: _lin(784, 400) + _lin(400, 2 * l),
    ("decoder", "mnist"): lambda l: _lin(l, 400) + _lin(400, 784),
    ("xz", "mnist"): lambda l, o: _lin(784 + l, 400) + _lin(400, o),
    ("encoder", "svhn"): lambda l: _conv(3, 32) + _conv(32, 64) + _conv(64, 128) + _conv(128, 2 * l),
    ("decoder", "svhn"): lambda l: _conv(l, 128) + _conv(128, 64) + _conv(64, 32) + _conv(32, 3),
    ("xz", "svhn"): lambda l, o: (
        SVHN_X_BRANCH + _lin(l, 256) + _lin(256, 256) + _lin(512, 1024) + _lin(1024, 1024) + _lin(1024, o)
    ),
}


def joint_xz_formula(m, z_dim):
    return (
        m * MNIST_X_BRANCH
        + _lin(z_dim, 400)
        + _lin(400, 256)
        + _lin(256 * (m + 1), 1024)
        + _lin(1024, 1024)
        + _lin(1024, m + 1)
    )


@pytest.fixture(scope="module")
def nets():
    """One instance of every network at L = 20, built once for the module."""
    tf.keras.utils.set_random_seed(11)
    out = {}
    for kind in ("mnist", "svhn"):
        out[("encoder", kind)] = build_encoder(kind, L, f"enc_{kind}")
        out[("decoder", kind)] = build_decoder(kind, L, f"dec_{kind}")
        out[("xz3", kind)] = build_xz_discriminator(kind, L, 3, f"d0_{kind}")
        out[("xz1", kind)] = build_xz_discriminator(kind, L, 1, f"d1_{kind}")
    out["dot"] = build_joint_discriminator(["mnist", "svhn"], "dot", "dj")
    out["concat4"] = build_joint_discriminator(["mnist"] * 4, "concat", "dj4")
    out["joint_xz4"] = build_joint_xz_discriminator(["mnist"] * 4, 4 * 10 + 10, "dxz4")
    return out


DISCRIMINATOR_KEYS = [
    ("xz3", "mnist"), ("xz1", "mnist"), ("xz3", "svhn"), ("xz1", "svhn"), "dot", "concat4", "joint_xz4",
]
GENERATOR_KEYS = [("encoder", "mnist"), ("decoder", "mnist"), ("encoder", "svhn"), ("decoder", "svhn")]

EXPECTED_L20 = {
    ("encoder", "mnist"): 330_040,
    ("decoder", "mnist"): 322_784,
    ("xz3", "mnist"): 323_203,
    ("xz1", "mnist"): 322_401,
    ("encoder", "svhn"): 247_560,
    ("decoder", "svhn"): 206_563,
    ("xz3", "svhn"): 2_339_299,
    ("xz1", "svhn"): 2_337_249,
    "dot": 1_238_384,
    "concat4": 3_766_849,
    "joint_xz4": 4_156_149,  # = joint_xz_formula(4, 50), computed by hand from the layer list
}


@pytest.mark.parametrize("key", list(EXPECTED_L20), ids=str)
def test_trainable_parameter_counts_at_l20(nets, key):
    assert n_trainable(nets[key]) == EXPECTED_L20[key]


def test_parameter_count_formulas_match_reference_tables():
    # The formulas reproduce the reference's numbers at L = 20 ...
    for (what, kind), f in FORMULAS.items():
        if what == "xz":
            assert f(L, 3) == EXPECTED_L20[("xz3", kind)] and f(L, 1) == EXPECTED_L20[("xz1", kind)]
        else:
            assert f(L) == EXPECTED_L20[(what, kind)]
    assert MNIST_X_BRANCH + SVHN_X_BRANCH + 2 * _lin(256, 256) == EXPECTED_L20["dot"]
    assert 4 * MNIST_X_BRANCH + _lin(1024, 1024) + _lin(1024, 1024) + _lin(1024, 1) == EXPECTED_L20["concat4"]
    assert joint_xz_formula(4, 50) == EXPECTED_L20["joint_xz4"]


@pytest.mark.parametrize("kind", ["mnist", "svhn"])
def test_parameter_counts_follow_formulas_for_other_latent_sizes(kind):
    latent = 8
    assert n_trainable(build_encoder(kind, latent, "e8")) == FORMULAS[("encoder", kind)](latent)
    assert n_trainable(build_decoder(kind, latent, "g8")) == FORMULAS[("decoder", kind)](latent)
    assert n_trainable(build_xz_discriminator(kind, latent, 5, "d8")) == FORMULAS[("xz", kind)](latent, 5)
    mixed = build_joint_xz_discriminator([kind, "mnist"], 2 * 3 + 5, "dxz_mixed")
    branch = {"mnist": MNIST_X_BRANCH, "svhn": SVHN_X_BRANCH}[kind]
    assert n_trainable(mixed) == joint_xz_formula(2, 11) - MNIST_X_BRANCH + branch


def test_non_trainable_weights_are_only_power_iteration_vectors(nets):
    for key in DISCRIMINATOR_KEYS:
        for w in nets[key].non_trainable_weights:
            assert w.name in ("sn_u", "sn_v"), w.path
        assert len(nets[key].non_trainable_weights) == len(nets[key].trainable_weights)  # kernel+bias <-> u+v
    for key in GENERATOR_KEYS:
        assert nets[key].non_trainable_weights == []


@pytest.mark.parametrize("kind", ["mnist", "svhn"])
def test_output_shapes_and_decoder_range(nets, kind):
    b = 3
    x = tf.random.uniform((b,) + IMAGE_SHAPES[kind])
    z = tf.random.normal([b, L])
    assert nets[("encoder", kind)](x).shape == (b, 2 * L)
    assert nets[("xz3", kind)]([x, z]).shape == (b, 3)
    assert nets[("xz1", kind)]([x, z]).shape == (b, 1)
    img = nets[("decoder", kind)](z).numpy()
    assert img.shape == (b,) + IMAGE_SHAPES[kind]
    assert img.min() >= 0.0 and img.max() <= 1.0
    # With large weights the output saturates, and still stays in [0, 1] (a sigmoid, not a linear output).
    big = build_decoder(kind, L, f"dec_big_{kind}")
    for w in big.trainable_weights:
        w.assign(w * 50.0 if w.name == "kernel" else w)
    img = big(z).numpy()
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert img.min() < 0.01 and img.max() > 0.99


def test_joint_output_shapes_and_dot_product(nets):
    b = 4
    xm = tf.random.uniform([b, 28, 28, 1])
    xs = tf.random.uniform([b, 32, 32, 3])
    dot = nets["dot"]
    assert [tuple(t.shape) for t in dot.inputs] == [(None, 28, 28, 1), (None, 32, 32, 3)]
    logit = dot([xm, xs])
    assert logit.shape == (b, 1)
    features = keras.Model(dot.inputs, [dot.get_layer("dj_fc1").output, dot.get_layer("dj_fc2").output])
    f1, f2 = features([xm, xs])
    assert f1.shape == (b, 256) and f2.shape == (b, 256)
    np.testing.assert_allclose(logit.numpy()[:, 0], np.sum(f1.numpy() * f2.numpy(), axis=1), rtol=1e-4, atol=1e-7)
    xs4 = [tf.random.uniform([b, 28, 28, 1]) for _ in range(4)]
    assert nets["concat4"](xs4).shape == (b, 1)
    assert nets["joint_xz4"](xs4 + [tf.random.normal([b, 50])]).shape == (b, 5)


def test_init_normal_002_and_zero_bias(nets):
    head = nets[("xz3", "svhn")].get_layer("d0_svhn_head_fc2").kernel.numpy()
    assert head.shape == (1024, 1024)
    assert abs(head.std() - 0.02) < 0.0002 and abs(head.mean()) < 0.0002
    for key in GENERATOR_KEYS + DISCRIMINATOR_KEYS:
        for w in nets[key].trainable_weights:
            values = w.numpy()
            if w.name == "bias":
                np.testing.assert_array_equal(values, 0.0, err_msg=w.path)
            elif values.size >= 1000:
                assert abs(values.std() - 0.02) < 0.002, w.path
                assert abs(values.mean()) < 0.002, w.path


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.trainable_weights]


def test_spectral_norm_on_every_discriminator_layer_and_never_on_generators(nets):
    for key in DISCRIMINATOR_KEYS:
        layers = _weighted_layers(nets[key])
        assert layers and all(isinstance(layer, (SNDense, SNConv2D)) for layer in layers), key
    for key in GENERATOR_KEYS:
        layers = _weighted_layers(nets[key])
        assert layers and not any(isinstance(layer, (SNDense, SNConv2D)) for layer in layers), key
        plain = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Conv2DTranspose)
        assert all(type(layer) in plain for layer in layers), key


def test_leaky_relu_slope_is_0_2(nets):
    for key in DISCRIMINATOR_KEYS:
        lrelus = [layer for layer in nets[key].layers if isinstance(layer, keras.layers.LeakyReLU)]
        # one activation after every SN layer except the output layer(s)
        n_sn = len(_weighted_layers(nets[key]))
        n_out = 2 if key == "dot" else 1
        assert len(lrelus) == n_sn - n_out, key
        for layer in lrelus:
            assert layer.negative_slope == pytest.approx(0.2)
            np.testing.assert_allclose(layer(tf.constant([-1.0, 2.0])).numpy(), [-0.2, 2.0], rtol=1e-6)


def _sn_state(model):
    return [w.numpy().copy() for w in model.non_trainable_weights]


@pytest.mark.parametrize("key", [("xz3", "svhn"), "dot", "joint_xz4"], ids=str)
def test_discriminators_honour_training_flag(nets, key):
    model = nets[key]
    inputs = [tf.random.uniform((2,) + tuple(t.shape[1:])) for t in model.inputs]
    before = _sn_state(model)
    model(inputs)
    model(inputs, training=False)
    for a, b in zip(before, _sn_state(model)):
        np.testing.assert_array_equal(a, b)
    model(inputs, training=True)
    for a, b in zip(before, _sn_state(model)):
        assert np.abs(a - b).max() > 0  # every u and v moved


def test_discriminator_sn_under_xla_matches_eager(nets):
    model = nets["dot"]  # SNConv2D and SNDense layers
    inputs = [tf.random.uniform((3,) + tuple(t.shape[1:])) for t in model.inputs]

    def step(xs):
        with tf.GradientTape() as tape:
            out = model(xs, training=True)
            loss = tf.reduce_mean(tf.nn.softplus(-out))
        return out, tape.gradient(loss, model.trainable_weights)

    sn_before = _sn_state(model)
    kernels_before = [w.numpy().copy() for w in model.trainable_weights]
    out_xla, grads_xla = tf.function(step, jit_compile=True)(inputs)
    sn_xla = _sn_state(model)
    assert all(np.abs(a - b).max() > 0 for a, b in zip(sn_before, sn_xla))
    for w, k in zip(model.trainable_weights, kernels_before):
        np.testing.assert_array_equal(w.numpy(), k)
    for w, value in zip(model.non_trainable_weights, sn_before):
        w.assign(value)
    out_eager, grads_eager = step(inputs)
    np.testing.assert_allclose(out_xla.numpy(), out_eager.numpy(), rtol=1e-4, atol=1e-6)
    for a, b in zip(sn_xla, _sn_state(model)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(grads_xla, grads_eager):
        assert a is not None
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------------
# Names, tracking, serialisation, registry errors
# --------------------------------------------------------------------------------------------------------------------


def test_names_are_prefixed_and_instances_do_not_clash(nets):
    for key, model in nets.items():
        prefix = model.name + "_"
        for layer in model.layers:
            assert layer.name.startswith(prefix), (model.name, layer.name)
    paths = [w.path for model in nets.values() for w in model.weights]
    assert len(paths) == len(set(paths))
    assert [t.name for t in nets["joint_xz4"].inputs] == ["dxz4_x0", "dxz4_x1", "dxz4_x2", "dxz4_x3", "dxz4_z"]
    assert nets[("xz3", "mnist")].get_layer("d0_mnist_fc1").units == 400


def test_networks_as_attributes_are_checkpointed(nets, tmp_path):
    class Holder(keras.Model):
        def __init__(self):
            super().__init__()
            self.d0 = nets[("xz3", "svhn")]
            self.dj = nets["dot"]
            self.enc = nets[("encoder", "mnist")]

        def call(self, x):
            return x

    holder = Holder()
    path = tf.train.Checkpoint(model=holder).save(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(saved) == len(holder.variables)
    assert sum(name.split("/")[-3] in ("sn_u", "sn_v") for name in saved) == sum(
        w.name in ("sn_u", "sn_v") for w in holder.variables
    )


def test_functional_config_round_trip(nets):
    model = nets["dot"]
    clone = keras.Model.from_config(model.get_config())
    assert n_trainable(clone) == n_trainable(model)
    assert [type(a) for a in clone.layers] == [type(b) for b in model.layers]


def test_registry_errors():
    with pytest.raises(ConfigError, match="unknown modality kind 'cub'"):
        build_encoder("cub", 8, "e")
    with pytest.raises(ConfigError, match="unknown modality kind"):
        build_decoder("MNIST", 8, "g")
    with pytest.raises(ConfigError, match="unknown modality kind"):
        build_xz_discriminator("svhn2", 8, 3, "d")
    with pytest.raises(ConfigError, match="unknown joint discriminator architecture 'bilinear'"):
        build_joint_discriminator(["mnist", "svhn"], "bilinear", "dj")
    with pytest.raises(ConfigError, match="exactly 2 modalities"):
        build_joint_discriminator(["mnist", "svhn", "mnist"], "dot", "dj")
    with pytest.raises(ConfigError, match="at least 2 modalities"):
        build_joint_discriminator(["mnist"], "concat", "dj")
    with pytest.raises(ConfigError, match="sequence of modality kinds"):
        build_joint_xz_discriminator("mnist", 10, "dxz")
    with pytest.raises(ConfigError, match="unknown modality kind"):
        build_joint_xz_discriminator(["mnist", "text"], 10, "dxz")
    with pytest.raises(ConfigError, match="latent_dim must be a positive integer"):
        build_encoder("mnist", 0, "e")
    with pytest.raises(ConfigError, match="out_dim"):
        build_xz_discriminator("mnist", 8, 0, "d")
    with pytest.raises(ConfigError, match="z_dim"):
        build_joint_xz_discriminator(["mnist", "mnist"], 2.5, "dxz")


_MIRRORED_SCRIPT = r"""
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mmali_tf.kinds.builders import build_xz_discriminator
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    d = build_xz_discriminator("mnist", 8, 3, "d0")
sn = [layer for layer in d.layers if hasattr(layer, "sn_u")]
before = [layer.sn_u.numpy().copy() for layer in sn]

def replica_grads(x, z):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(d([x, z], training=True) ** 2)
    return tape.gradient(loss, d.trainable_variables)

per_replica = tf.function(replica_grads, jit_compile=True)  # the per-replica XLA recipe (docs/platform.md, section 3)

@tf.function
def step(x, z):
    def replica_fn(x, z):
        grads = per_replica(x, z)
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    return strategy.run(replica_fn, (x, z))

data = tf.data.Dataset.from_tensors((tf.random.uniform([4, 28, 28, 1]), tf.random.normal([4, 8]))).repeat(2)
for x, z in strategy.experimental_distribute_dataset(data):
    step(x, z)
for layer, u0 in zip(sn, before):
    replicas = [v.numpy() for v in layer.sn_u.value.values]
    assert len(replicas) == 2
    np.testing.assert_array_equal(replicas[0], replicas[1])
    assert np.abs(replicas[0] - u0).max() > 0
print("MIRRORED_OK")
"""


def test_power_iteration_under_mirrored_strategy_with_per_replica_xla():
    """u/v updates from replica context inside a nested jit function (merge_call would fail there)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=240
    )
    assert "MIRRORED_OK" in result.stdout, result.stderr[-3000:]
