"""MNIST networks (28x28x1 images in [0, 1], MLPs; docs/authors_code.md section 2, their ``models/mnist.py``).

Flattening an NHWC 28x28x1 image row-major gives the same 784-vector as PyTorch's 1x28x28 flatten.
Every Dense kernel is N(0, 0.02), every bias zero. Layer names are ``f"{name}_<part>"``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from mmali_tf.networks.joint import FEATURE_DIM, XBranch, check_positive_int
from mmali_tf.networks.spectral_norm import SNDense, leaky_relu, normal_init
from mmali_tf.networks.critic import Critic, concat_rows, distinct_rows

IMAGE_SHAPE = (28, 28, 1)
HIDDEN_DIM = 400


def _dense(units: int, name: str, activation=None) -> keras.layers.Dense:
    return keras.layers.Dense(
        units, activation=activation, kernel_initializer=normal_init(), bias_initializer="zeros", name=name
    )


def MNISTEncoder(latent_dim: int, name: str = "mnist_encoder") -> keras.Model:
    """x ``[B, 28, 28, 1]`` → ``[B, 2L]`` = [mean | logvar], each [style | content].

    flatten 784 → Dense 400 → ReLU → Dense 2L. 330,040 parameters at L = 20.
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    x = keras.Input(shape=IMAGE_SHAPE, name=f"{name}_x")
    h = keras.layers.Flatten(name=f"{name}_flatten")(x)
    h = _dense(HIDDEN_DIM, f"{name}_fc1", activation="relu")(h)
    out = _dense(2 * latent_dim, f"{name}_fc2")(h)
    return keras.Model(inputs=x, outputs=out, name=name)


def MNISTDecoder(latent_dim: int, name: str = "mnist_decoder") -> keras.Model:
    """z ``[B, L]`` → image ``[B, 28, 28, 1]`` in [0, 1].

    Dense 400 → ReLU → Dense 784 → sigmoid → reshape. 322,784 parameters at L = 20. The pre-sigmoid logits are the
    output of the layer ``f"{name}_fc2"``.
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    z = keras.Input(shape=(latent_dim,), name=f"{name}_z")
    h = _dense(HIDDEN_DIM, f"{name}_fc1", activation="relu")(z)
    h = _dense(IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2], f"{name}_fc2")(h)
    h = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(h)
    out = keras.layers.Reshape(IMAGE_SHAPE, name=f"{name}_reshape")(h)
    return keras.Model(inputs=z, outputs=out, name=name)


def MNISTXZDiscriminator(latent_dim: int, out_dim: int, name: str = "mnist_xz_discriminator") -> keras.Model:
    """``[x, z]`` → ``[B, out_dim]`` logits.

    concat(flatten(x) 784, z L) → SN Dense 400 → LReLU(0.2) → SN Dense out_dim.
    323,203 parameters at L = 20 with out_dim = 3, 322,401 with out_dim = 1.
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    out_dim = check_positive_int(out_dim, "out_dim")
    x = keras.Input(shape=IMAGE_SHAPE, name=f"{name}_x")
    z = keras.Input(shape=(latent_dim,), name=f"{name}_z")
    h = keras.layers.Flatten(name=f"{name}_flatten")(x)
    h = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([h, z])
    h = leaky_relu(f"{name}_lrelu1")(SNDense(HIDDEN_DIM, name=f"{name}_fc1")(h))
    out = SNDense(out_dim, name=f"{name}_fc2")(h)
    return keras.Model(inputs=[x, z], outputs=out, name=name)


class MNISTXZCritic(Critic):
    """An :func:`MNISTXZDiscriminator` whose batched scoring multiplies each distinct image batch by fc1 once.

    fc1 acts on ``concat(x, z)``: with its kernel split as ``[K_x; K_z]`` (rows for the 784 pixels, then for z),
    ``concat(x, z) K / sigma = (x K_x + z K_z) / sigma``. ``x K_x``, almost all of the network's work, does not
    depend on the spectral-norm estimate, so tuples that show the same image tensor share it, whatever the
    schedule; the rest (``z K_z``, the division by each tuple's sigma, bias, LReLU, fc2) runs on all rows.
    """

    def __init__(self, model: keras.Model, **settings):
        super().__init__(model, **settings)
        name = model.name
        self._fc1, self._act, self._fc2 = (model.get_layer(f"{name}_{part}") for part in ("fc1", "lrelu1", "fc2"))

    def _score_concatenated(self, tuples: list[tuple]) -> tf.Tensor:
        fc1 = self._fc1
        k_x, k_z = tf.split(fc1.raw_kernel(), [math.prod(IMAGE_SHAPE), -1], axis=0)

        def pixels_times_kernel(x):
            return tf.matmul(tf.reshape(x, [-1, math.prod(IMAGE_SHAPE)]), k_x)

        products = distinct_rows(pixels_times_kernel, [t[0] for t in tuples], fc1.compute_dtype)
        z = concat_rows([t[1] for t in tuples], fc1.compute_dtype)
        hidden = self._act(fc1.normalize_rows(products + tf.matmul(z, k_z), True))
        return tf.cast(self._fc2(hidden, training=True), tf.float32)


def xz_critic(model: keras.Model, **settings) -> Critic:
    """An :func:`MNISTXZDiscriminator` as the objective calls it (:class:`MNISTXZCritic`)."""
    return MNISTXZCritic(model, **settings)


def mnist_x_branch(x: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
    """Joint-discriminator branch: flatten → SN Dense 400 → LReLU → SN Dense 256 → LReLU (416,656 parameters)."""
    h = keras.layers.Flatten(name=f"{prefix}_flatten")(x)
    h = leaky_relu(f"{prefix}_lrelu1")(SNDense(HIDDEN_DIM, name=f"{prefix}_fc1")(h))
    return leaky_relu(f"{prefix}_lrelu2")(SNDense(FEATURE_DIM, name=f"{prefix}_fc2")(h))


X_BRANCH = XBranch(kind="mnist", input_shape=IMAGE_SHAPE, build=mnist_x_branch)
