"""SVHN networks (32x32x3 images in [0, 1], DCGAN-style convs; docs/authors_code.md section 2, their ``models/svhn.py``).

NHWC. PyTorch ``Conv(k4, s2, p1)`` = Keras ``(4, 2, "same")``; ``Conv(k4, s1, p0)`` on 4x4 = ``"valid"``;
``ConvT(k4, s2, p1)`` = ``Conv2DTranspose(4, 2, "same")`` (doubles H, W);
``ConvT(k4, s1, p0)`` from 1x1 = ``"valid"`` (4x4).
Every kernel is N(0, 0.02), every bias zero. Layer names are ``f"{name}_<part>"``.
"""

from __future__ import annotations

import keras

from mmali_tf.networks.joint import FEATURE_DIM, XBranch, check_positive_int, sn_mlp_head
from mmali_tf.networks.spectral_norm import SNConv2D, SNDense, leaky_relu, normal_init
from mmali_tf.networks.critic import Critic, merge_critic

IMAGE_SHAPE = (32, 32, 3)
CONV_FILTERS = (32, 64, 128)
KERNEL_SIZE = 4


def _conv(filters: int, strides: int, padding: str, name: str, activation=None) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        KERNEL_SIZE,
        strides=strides,
        padding=padding,
        activation=activation,
        kernel_initializer=normal_init(),
        bias_initializer="zeros",
        name=name,
    )


def _conv_t(filters: int, strides: int, padding: str, name: str, activation=None) -> keras.layers.Conv2DTranspose:
    return keras.layers.Conv2DTranspose(
        filters,
        KERNEL_SIZE,
        strides=strides,
        padding=padding,
        activation=activation,
        kernel_initializer=normal_init(),
        bias_initializer="zeros",
        name=name,
    )


def SVHNEncoder(latent_dim: int, name: str = "svhn_encoder") -> keras.Model:
    """x ``[B, 32, 32, 3]`` → ``[B, 2L]`` = [mean | logvar], each [style | content].

    Conv 32 → 64 → 128 (4, stride 2, same; ReLU) [16², 8², 4²] → Conv 2L (4, stride 1, valid) [1²] → flatten.
    247,560 parameters at L = 20.
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    x = keras.Input(shape=IMAGE_SHAPE, name=f"{name}_x")
    h = x
    for i, filters in enumerate(CONV_FILTERS, start=1):
        h = _conv(filters, 2, "same", f"{name}_conv{i}", activation="relu")(h)
    h = _conv(2 * latent_dim, 1, "valid", f"{name}_conv{len(CONV_FILTERS) + 1}")(h)
    out = keras.layers.Flatten(name=f"{name}_flatten")(h)
    return keras.Model(inputs=x, outputs=out, name=name)


def SVHNDecoder(latent_dim: int, name: str = "svhn_decoder") -> keras.Model:
    """z ``[B, L]`` → image ``[B, 32, 32, 3]`` in [0, 1].

    reshape 1x1xL → ConvT 128 (4, 1, valid) ReLU [4²] → ConvT 64 (4, 2, same) ReLU [8²] → ConvT 32 ReLU [16²]
    → ConvT 3 [32²] → sigmoid. 206,563 parameters at L = 20. The pre-sigmoid logits are the output of
    ``f"{name}_convt4"``.
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    z = keras.Input(shape=(latent_dim,), name=f"{name}_z")
    h = keras.layers.Reshape((1, 1, latent_dim), name=f"{name}_reshape")(z)
    h = _conv_t(CONV_FILTERS[2], 1, "valid", f"{name}_convt1", activation="relu")(h)
    h = _conv_t(CONV_FILTERS[1], 2, "same", f"{name}_convt2", activation="relu")(h)
    h = _conv_t(CONV_FILTERS[0], 2, "same", f"{name}_convt3", activation="relu")(h)
    h = _conv_t(IMAGE_SHAPE[2], 2, "same", f"{name}_convt4")(h)
    out = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(h)
    return keras.Model(inputs=z, outputs=out, name=name)


def svhn_x_branch(x: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
    """SN Conv 32 → 64 → 128 (4, 2, same) → SN Conv 256 (4, 1, valid), LReLU(0.2) after each → flatten 256.

    690,144 parameters. Used by the SVHN XZ discriminator and by the joint discriminators.
    """
    h = x
    for i, filters in enumerate(CONV_FILTERS, start=1):
        h = leaky_relu(f"{prefix}_lrelu{i}")(SNConv2D(filters, KERNEL_SIZE, 2, "same", name=f"{prefix}_conv{i}")(h))
    last = len(CONV_FILTERS) + 1
    h = SNConv2D(FEATURE_DIM, KERNEL_SIZE, 1, "valid", name=f"{prefix}_conv{last}")(h)
    h = leaky_relu(f"{prefix}_lrelu{last}")(h)
    return keras.layers.Flatten(name=f"{prefix}_flatten")(h)


def SVHNXZDiscriminator(latent_dim: int, out_dim: int, name: str = "svhn_xz_discriminator") -> keras.Model:
    """``[x, z]`` → ``[B, out_dim]`` logits.

    x-branch (see :func:`svhn_x_branch`) → 256; z-branch SN Dense 256 LReLU → SN Dense 256 LReLU;
    head concat 512 → SN Dense 1024 LReLU → SN Dense 1024 LReLU → SN Dense out_dim.
    2,339,299 parameters at L = 20 with out_dim = 3, 2,337,249 with out_dim = 1.
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    out_dim = check_positive_int(out_dim, "out_dim")
    x = keras.Input(shape=IMAGE_SHAPE, name=f"{name}_x")
    z = keras.Input(shape=(latent_dim,), name=f"{name}_z")
    hx = svhn_x_branch(x, f"{name}_x")
    hz = leaky_relu(f"{name}_z_lrelu1")(SNDense(FEATURE_DIM, name=f"{name}_z_fc1")(z))
    hz = leaky_relu(f"{name}_z_lrelu2")(SNDense(FEATURE_DIM, name=f"{name}_z_fc2")(hz))
    h = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([hx, hz])
    return keras.Model(inputs=[x, z], outputs=sn_mlp_head(h, out_dim, name), name=name)


def xz_critic(model: keras.Model) -> Critic:
    """An :func:`SVHNXZDiscriminator` as a :class:`Critic`: x-part = the conv x-branch; head = z-branch and MLP."""
    return merge_critic(model, f"{model.name}_concat")


X_BRANCH = XBranch(kind="svhn", input_shape=IMAGE_SHAPE, build=svhn_x_branch)
