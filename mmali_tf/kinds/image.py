"""The ``image`` kind: a user's own images of any size from 16 to 128 pixels a side (square or not) and 1 to 4
channels, with the convolutional family of ``networks/image.py`` (SVHN's networks generalised) and a small CNN
coherence classifier sized for the data (``networks/classifiers.py``, :func:`image_classifier`).

The modality spec gives ``height``, ``width`` and ``channels`` (required; ``--modality_option=NAME:height=64,
width=64,channels=3``) and may override the family's ``base_filters`` (default 32) and ``stages`` (default: as many
stride-2 stages as keep the smaller side >= 4 pixels); see :class:`~mmali_tf.networks.image.ConvLayout`.

Sample grids draw 1- and 3-channel images as they are; with 2 channels both are drawn side by side in grey, with 4
the first three as colour and the fourth in grey beside them. For the CCA correlation metric (used when the data has
no labels) an image is average-pooled to at most 8x8 pixels per channel (:meth:`SizedImageKind.cca_view`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmali_tf.errors import ConfigError
from mmali_tf.kinds.base import ClassifierSpec, InputSpec, ModalityKind
from mmali_tf.networks import image as image_networks
from mmali_tf.networks.classifiers import image_classifier
from mmali_tf.tiles import tile

SIZE_OPTIONS = ("height", "width", "channels")
FAMILY_OPTIONS = ("base_filters", "stages")
CCA_SIDE = 8
"""The CCA view pools each side of an image to at most this many cells."""


def _build_classifier(protocol: str, seed: int, input_shape, num_classes: int):
    return image_classifier(tuple(input_shape), num_classes, seed=seed)


class SizedImageKind(ModalityKind):
    """The ``image`` kind: uint8 images whose size, channels and networks come from the modality's options (the
    fixed-size image kinds, ``mnist`` and ``svhn``, are :class:`~mmali_tf.kinds.base.ImageKind`\\ s)."""

    name = "image"
    description = "HxWxC images (16-128 px, 1-4 channels), conv networks sized by the height/width/channels options"
    options = SIZE_OPTIONS + FAMILY_OPTIONS

    def layout(self, spec):
        """The :class:`~mmali_tf.networks.image.ConvLayout` of the modality ``spec`` (``ConfigError`` naming the
        option when a size is missing or out of range)."""
        name = getattr(spec, "name", "?")
        missing = [key for key in SIZE_OPTIONS if not getattr(spec, key, 0)]
        if missing:
            raise ConfigError(f"modality {name!r}: kind 'image' needs the image size, e.g. "
                              f"--modality_option={name}:height=64,width=64,channels=3 (missing: "
                              f"{', '.join(missing)})")
        return image_networks.ConvLayout.of(spec.height, spec.width, spec.channels, spec.base_filters, spec.stages,
                             what=f"modality {name!r}")

    def input_spec(self, spec) -> InputSpec:
        return InputSpec(self.layout(spec).image_shape, self.examples)

    def check(self, spec) -> None:
        super().check(spec)
        layout = self.layout(spec)
        if spec.quarter_turns % 4 and layout.height != layout.width:
            raise ConfigError(f"modality {spec.name!r}: quarter_turns need square images, got {layout.height}x"
                              f"{layout.width}")

    def option_hint(self, spec, found_shape, source):
        if len(found_shape) != 3:
            return ""
        h, w, c = found_shape
        path = source.partition(" from ")[2] or source
        return (f"{path} holds {h}x{w}x{c} images; set --modality_option={spec.name}:height={h},width={w},"
                f"channels={c}")

    def encoder(self, spec, latent_dim, name):
        return image_networks.ImageEncoder(self.layout(spec), latent_dim, name=name)

    def decoder(self, spec, latent_dim, name):
        return image_networks.ImageDecoder(self.layout(spec), latent_dim, name=name)

    def xz_discriminator(self, spec, latent_dim, out_dim, name):
        return image_networks.ImageXZDiscriminator(self.layout(spec), latent_dim, out_dim, name=name)

    def xz_critic(self, model):
        return image_networks.xz_critic(model)

    def x_branch(self, spec):
        return image_networks.x_branch(self.layout(spec))

    def classifier(self) -> ClassifierSpec:
        return ClassifierSpec(build=_build_classifier, default_epochs=10, sized=True)

    def render(self, rows: Sequence[np.ndarray], labels=None, title=None) -> np.ndarray:
        return tile([displayable(np.asarray(r, np.float32)) for r in rows], labels=labels, title=title)

    def cca_view(self, spec, examples: np.ndarray) -> np.ndarray:
        return pooled(np.asarray(examples, np.float32), CCA_SIDE).reshape(len(examples), -1)


KIND = SizedImageKind()


def displayable(images: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` images as ones :func:`mmali_tf.tiles.tile` draws: C = 1 or 3 unchanged; C = 2: the two
    channels side by side (grey, ``[N, H, 2W + 1, 1]``); C = 4: the colour image and the fourth channel in grey beside
    it (``[N, H, 2W + 1, 3]``). The column between them is white."""
    channels = images.shape[-1]
    if channels in (1, 3):
        return images
    gap = np.ones(images.shape[:2] + (1, 1), images.dtype)
    if channels == 2:
        return np.concatenate([images[..., :1], gap, images[..., 1:]], axis=2)
    grey = np.repeat(images[..., 3:], 3, axis=-1)
    return np.concatenate([images[..., :3], np.repeat(gap, 3, axis=-1), grey], axis=2)


def pooled(images: np.ndarray, side: int) -> np.ndarray:
    """``[N, H, W, C]`` averaged over ``f x f`` cells, ``f = ceil(max(H, W) / side)`` (the last row and column of
    cells average the pixels they have): at most ``side`` cells a side."""
    n, h, w, c = images.shape
    f = max(1, -(-max(h, w) // side))
    rows, cols = -(-h // f), -(-w // f)
    sums = np.zeros((n, rows * f, cols * f, c), np.float64)
    counts = np.zeros((rows * f, cols * f, 1), np.float64)
    sums[:, :h, :w] = images
    counts[:h, :w] = 1.0
    sums = sums.reshape(n, rows, f, cols, f, c).sum(axis=(2, 4))
    counts = counts.reshape(rows, f, cols, f, 1).sum(axis=(1, 3))
    return (sums / counts).astype(np.float32)
