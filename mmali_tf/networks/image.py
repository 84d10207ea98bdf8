"""The convolutional family of the ``image`` kind: the SVHN networks (``networks/svhn.py``) generalised to any image
size from 16 to 128 pixels a side (square or not) and 1 to 4 channels.

A :class:`ConvLayout` fixes the family's shape for one modality:

* ``stages`` stride-2 stages (4x4 kernels, "same" padding, so each halves the height and width, rounding up). By
  default as many as keep the smaller side at 4 pixels or more: ``stages = floor(log2(min(H, W) / 4))``, which leaves
  a final map of 4 to 7 pixels on the smaller side (32x32: 3 stages, 4x4; 40x40: 3, 5x5; 24x24: 2, 6x6; 64x48: 3,
  8x6; 128x128: 5, 4x4).
* widths ``base_filters * 2**i`` for stage ``i`` (default base 32: 32, 64, 128, ... as SVHN's).
* a final "valid" convolution whose kernel is the whole final map (``final = ceil(H / 2**stages) x ceil(W /
  2**stages)``), to a 1x1 map, as SVHN's 4x4 one.

Networks (layer names ``f"{name}_<part>"``, every kernel N(0, 0.02), every bias zero, NHWC):

* encoder: Conv ``widths`` (4, 2, same) ReLU → Conv 2L (``final``, valid) → flatten = [mean | logvar].
* decoder: reshape 1x1xL → ConvT ``widths[-1]`` (``final``, valid) ReLU → ConvT ``widths[-2]``, ..., ``widths[0]``
  (4, 2, same) ReLU → ConvT C (4, 2, same) → crop to H x W (only when a side is not ``final * 2**stages``; the rows
  and columns beyond the image at the bottom and right, where the encoder's "same" padding added them) → sigmoid.
* x-branch (the (x, z) discriminators' and the joint critics'): SN Conv ``widths`` (4, 2, same) → SN Conv 256
  (``final``, valid), LReLU(0.2) after each → flatten 256 (``joint.FEATURE_DIM``).
* (x, z) discriminator: x-branch; z-branch SN Dense 256, 256 with LReLU; ``Concatenate`` named ``f"{name}_concat"``;
  head SN Dense 1024, 1024 with LReLU → SN Dense out_dim.

For 32x32x3 with the defaults every network has exactly SVHN's layers, names and parameter counts
(``tests/test_image_kind.py``).
"""

from __future__ import annotations

import dataclasses

import keras

from mmali_tf.errors import ConfigError
from mmali_tf.networks.critic import Critic, merge_critic
from mmali_tf.networks.joint import FEATURE_DIM, XBranch, check_positive_int, sn_mlp_head
from mmali_tf.networks.spectral_norm import SNConv2D, SNDense, leaky_relu, normal_init

KERNEL_SIZE = 4
MIN_SIDE, MAX_SIDE = 16, 128
MIN_CHANNELS, MAX_CHANNELS = 1, 4
DEFAULT_BASE_FILTERS = 32
MAX_BASE_FILTERS = 512
MIN_FINAL_SIDE = 4
"""The default number of stages keeps the smaller side of the final map at this many pixels or more."""


def _in_range(value, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def default_stages(height: int, width: int) -> int:
    """``floor(log2(min(height, width) / 4))``: the most halvings that keep the smaller side >= 4 pixels."""
    side, stages = min(height, width), 0
    while MIN_FINAL_SIDE * 2 ** (stages + 1) <= side:
        stages += 1
    return stages


def max_stages(height: int, width: int) -> int:
    """The most stages a size allows: every halving must still halve the smaller side (``2**stages <= side``)."""
    return min(height, width).bit_length() - 1


@dataclasses.dataclass(frozen=True)
class ConvLayout:
    """The shape of the convolutional family for one image modality (see the module docstring).

    ``base_filters`` and ``stages`` 0 mean the defaults; :meth:`of` validates and resolves them. ``what`` names the
    modality in error messages.
    """

    height: int
    width: int
    channels: int
    base_filters: int = 0
    stages: int = 0

    @classmethod
    def of(cls, height, width, channels, base_filters=0, stages=0, what: str = "image") -> "ConvLayout":
        """A validated layout with its defaults resolved; :class:`ConfigError` naming the option otherwise."""
        height = _in_range(height, MIN_SIDE, MAX_SIDE, f"{what}: height")
        width = _in_range(width, MIN_SIDE, MAX_SIDE, f"{what}: width")
        channels = _in_range(channels, MIN_CHANNELS, MAX_CHANNELS, f"{what}: channels")
        base_filters = _in_range(base_filters or DEFAULT_BASE_FILTERS, 1, MAX_BASE_FILTERS, f"{what}: base_filters")
        stages = _in_range(stages or default_stages(height, width), 1, max_stages(height, width), f"{what}: stages")
        return cls(height, width, channels, base_filters, stages)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def widths(self) -> tuple[int, ...]:
        """Filters of the stride-2 stages, from the image inwards."""
        return tuple(self.base_filters * 2 ** i for i in range(self.stages))

    @property
    def final(self) -> tuple[int, int]:
        """(height, width) of the map after the stages: each side divided by ``2**stages``, rounded up."""
        step = 2 ** self.stages
        return (-(-self.height // step), -(-self.width // step))

    @property
    def decoded(self) -> tuple[int, int]:
        """(height, width) the transposed convolutions produce before the crop."""
        step = 2 ** self.stages
        return (self.final[0] * step, self.final[1] * step)

    def describe(self) -> str:
        """E.g. "40x40x3: 3 stages 32, 64, 128, final 5x5"."""
        h, w = self.final
        crop = "" if self.decoded == (self.height, self.width) else f", decoder cropped from {self.decoded[0]}x" \
                                                                    f"{self.decoded[1]}"
        return (f"{self.height}x{self.width}x{self.channels}: {self.stages} stages "
                f"{', '.join(map(str, self.widths))}, final {h}x{w}{crop}")


def _conv(filters: int, kernel, strides: int, padding: str, name: str, activation=None) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation=activation,
                               kernel_initializer=normal_init(), bias_initializer="zeros", name=name)


def _conv_t(filters: int, kernel, strides: int, padding: str, name: str,
            activation=None) -> keras.layers.Conv2DTranspose:
    return keras.layers.Conv2DTranspose(filters, kernel, strides=strides, padding=padding, activation=activation,
                                        kernel_initializer=normal_init(), bias_initializer="zeros", name=name)


def ImageEncoder(layout: ConvLayout, latent_dim: int, name: str = "image_encoder") -> keras.Model:
    """x ``[B, H, W, C]`` in [0, 1] → ``[B, 2L]`` = [mean | logvar], each [style | content]."""
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    x = keras.Input(shape=layout.image_shape, name=f"{name}_x")
    h = x
    for i, filters in enumerate(layout.widths, start=1):
        h = _conv(filters, KERNEL_SIZE, 2, "same", f"{name}_conv{i}", activation="relu")(h)
    h = _conv(2 * latent_dim, layout.final, 1, "valid", f"{name}_conv{layout.stages + 1}")(h)
    out = keras.layers.Flatten(name=f"{name}_flatten")(h)
    return keras.Model(inputs=x, outputs=out, name=name)


def ImageDecoder(layout: ConvLayout, latent_dim: int, name: str = "image_decoder") -> keras.Model:
    """z ``[B, L]`` → image ``[B, H, W, C]`` in [0, 1]."""
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    z = keras.Input(shape=(latent_dim,), name=f"{name}_z")
    h = keras.layers.Reshape((1, 1, latent_dim), name=f"{name}_reshape")(z)
    widths = layout.widths
    h = _conv_t(widths[-1], layout.final, 1, "valid", f"{name}_convt1", activation="relu")(h)
    for i, filters in enumerate(reversed(widths[:-1]), start=2):
        h = _conv_t(filters, KERNEL_SIZE, 2, "same", f"{name}_convt{i}", activation="relu")(h)
    h = _conv_t(layout.channels, KERNEL_SIZE, 2, "same", f"{name}_convt{layout.stages + 1}")(h)
    extra_h, extra_w = layout.decoded[0] - layout.height, layout.decoded[1] - layout.width
    if extra_h or extra_w:
        h = keras.layers.Cropping2D(((0, extra_h), (0, extra_w)), name=f"{name}_crop")(h)
    out = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(h)
    return keras.Model(inputs=z, outputs=out, name=name)


def image_x_branch(layout: ConvLayout):
    """``build(x, prefix)``: the spectrally normalised conv branch of ``layout`` on ``x``, → ``[B, 256]``."""
    def build(x: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
        h = x
        for i, filters in enumerate(layout.widths, start=1):
            h = leaky_relu(f"{prefix}_lrelu{i}")(SNConv2D(filters, KERNEL_SIZE, 2, "same", name=f"{prefix}_conv{i}")(h))
        last = layout.stages + 1
        h = SNConv2D(FEATURE_DIM, layout.final, 1, "valid", name=f"{prefix}_conv{last}")(h)
        h = leaky_relu(f"{prefix}_lrelu{last}")(h)
        return keras.layers.Flatten(name=f"{prefix}_flatten")(h)

    return build


def ImageXZDiscriminator(layout: ConvLayout, latent_dim: int, out_dim: int,
                         name: str = "image_xz_discriminator") -> keras.Model:
    """``[x, z]`` → ``[B, out_dim]`` logits (x-branch, z-branch, ``f"{name}_concat"``, SN MLP head)."""
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    out_dim = check_positive_int(out_dim, "out_dim")
    x = keras.Input(shape=layout.image_shape, name=f"{name}_x")
    z = keras.Input(shape=(latent_dim,), name=f"{name}_z")
    hx = image_x_branch(layout)(x, f"{name}_x")
    hz = leaky_relu(f"{name}_z_lrelu1")(SNDense(FEATURE_DIM, name=f"{name}_z_fc1")(z))
    hz = leaky_relu(f"{name}_z_lrelu2")(SNDense(FEATURE_DIM, name=f"{name}_z_fc2")(hz))
    h = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([hx, hz])
    return keras.Model(inputs=[x, z], outputs=sn_mlp_head(h, out_dim, name), name=name)


def xz_critic(model: keras.Model) -> Critic:
    """An :func:`ImageXZDiscriminator` as a :class:`Critic`: x-part = the conv x-branch; head = z-branch and MLP."""
    return merge_critic(model, f"{model.name}_concat")


def x_branch(layout: ConvLayout) -> XBranch:
    """The :class:`XBranch` through which a modality of this layout enters the joint critics."""
    return XBranch(kind="image", input_shape=layout.image_shape, build=image_x_branch(layout))
