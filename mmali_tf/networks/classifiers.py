"""The coherence classifiers' architectures (docs/authors_code.md, section 2.1): the reference's MNIST and SVHN
digit classifiers and a small CNN for the ``image`` kind sized for its modality's images and classes.

Keras default initialisation: the reference does not pass its classifiers through the N(0, 0.02) init, and they are
not parity-critical. Training, checksums and caching are :mod:`mmali_tf.evaluation.classifiers`; which kind uses
which architecture is the kind's (:meth:`mmali_tf.kinds.base.ModalityKind.classifier`).
"""

from __future__ import annotations

import keras
import numpy as np

from mmali_tf.networks import mnist, svhn

NUM_CLASSES = 10
"""Classes of the digit classifiers (MNIST, SVHN)."""


class FunctionalDropout(keras.layers.Layer):
    """Dropout that, with ``always_on=True``, is also active at inference (the reference's MNIST-classifier bug:
    ``F.dropout(x, 0.5)`` with the default ``training=True``). With ``always_on=False`` it is ordinary dropout."""

    def __init__(self, rate: float, always_on: bool = False, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.always_on = bool(always_on)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if training or self.always_on:
            return keras.random.dropout(inputs, self.rate, seed=self.seed_generator)
        return inputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "always_on": self.always_on}


def mnist_classifier(always_on_dropout: bool = False, seed: int = 0,
                     name: str = "mnist_classifier") -> keras.Model:
    """Conv(10, k5) → maxpool 2 → ReLU → Conv(20, k5) → Dropout2d(0.5) → maxpool 2 → ReLU → flatten 320 →
    Dense 50 → ReLU → dropout(0.5) → Dense 10 logits. 21,840 parameters."""
    x = keras.Input(mnist.IMAGE_SHAPE, name=f"{name}_x")
    h = keras.layers.Conv2D(10, 5, name=f"{name}_conv1")(x)
    h = keras.layers.ReLU(name=f"{name}_relu1")(keras.layers.MaxPooling2D(2, name=f"{name}_pool1")(h))
    h = keras.layers.Conv2D(20, 5, name=f"{name}_conv2")(h)
    h = keras.layers.SpatialDropout2D(0.5, seed=seed, name=f"{name}_drop2d")(h)
    h = keras.layers.ReLU(name=f"{name}_relu2")(keras.layers.MaxPooling2D(2, name=f"{name}_pool2")(h))
    h = keras.layers.Flatten(name=f"{name}_flatten")(h)
    h = keras.layers.Dense(50, activation="relu", name=f"{name}_fc1")(h)
    h = FunctionalDropout(0.5, always_on=always_on_dropout, seed=seed + 1, name=f"{name}_drop")(h)
    out = keras.layers.Dense(NUM_CLASSES, name=f"{name}_fc2")(h)
    return keras.Model(x, out, name=name)


def svhn_classifier(seed: int = 0, name: str = "svhn_classifier") -> keras.Model:
    """4 x [Conv(k4, s2; 32, 64, 64 "same", then 128 "valid") → BN → Dropout(0.5) → ReLU] → flatten 128 →
    Dense 10.

    BatchNorm as PyTorch's defaults (momentum 0.1 → Keras 0.9, eps 1e-5). 233,066 trainable parameters."""
    x = keras.Input(svhn.IMAGE_SHAPE, name=f"{name}_x")
    h = x
    for i, (filters, padding) in enumerate(((32, "same"), (64, "same"), (64, "same"), (128, "valid")), start=1):
        h = keras.layers.Conv2D(filters, 4, strides=2, padding=padding, name=f"{name}_conv{i}")(h)
        h = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn{i}")(h)
        h = keras.layers.Dropout(0.5, seed=seed + i, name=f"{name}_drop{i}")(h)
        h = keras.layers.ReLU(name=f"{name}_relu{i}")(h)
    h = keras.layers.Flatten(name=f"{name}_flatten")(h)
    out = keras.layers.Dense(NUM_CLASSES, name=f"{name}_fc")(h)
    return keras.Model(x, out, name=name)


class PerImageStandardization(keras.layers.Layer):
    """Each image minus its mean, divided by its standard deviation (at least ``1 / sqrt(pixels)``), as
    ``tf.image.per_image_standardization``: the classifier sees patterns, not the overall brightness or colour."""

    def call(self, inputs):
        mean = keras.ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
        centred = inputs - mean
        std = keras.ops.sqrt(keras.ops.mean(keras.ops.square(centred), axis=(1, 2, 3), keepdims=True))
        floor = 1.0 / float(np.sqrt(np.prod(inputs.shape[1:])))
        return centred / keras.ops.maximum(std, floor)


def image_classifier(input_shape: tuple[int, int, int], num_classes: int, seed: int = 0,
                     name: str = "image_classifier") -> keras.Model:
    """The ``image`` kind's classifier, for any ``[H, W, C]`` (16-128 px) and number of classes: per-image
    standardization → 3 x [Conv(k3, same; 16, 32, 64) → BN → ReLU → maxpool 2] → flatten → Dropout(0.3) →
    Dense ``num_classes``.

    BatchNorm as the SVHN classifier's (momentum 0.9, eps 1e-5). For 40x40x3 images 23,808 trainable parameters
    before the last layer, which has 1,601 per class (flatten 5 x 5 x 64)."""
    x = keras.Input(tuple(input_shape), name=f"{name}_x")
    h = PerImageStandardization(name=f"{name}_standardize")(x)
    for i, filters in enumerate((16, 32, 64), start=1):
        h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv{i}")(h)
        h = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn{i}")(h)
        h = keras.layers.ReLU(name=f"{name}_relu{i}")(h)
        h = keras.layers.MaxPooling2D(2, name=f"{name}_pool{i}")(h)
    h = keras.layers.Flatten(name=f"{name}_flatten")(h)
    h = keras.layers.Dropout(0.3, seed=seed, name=f"{name}_drop")(h)
    out = keras.layers.Dense(int(num_classes), name=f"{name}_fc")(h)
    return keras.Model(x, out, name=name)
