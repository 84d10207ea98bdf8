"""Networks for feature-vector modalities, e.g. CUB's caption and image features (docs/authors_code.md, section 2.2).

The reference builds every CUB network from one argument, the feature size ``channels`` (1,024 for the char-CNN-RNN
caption embeddings, 2,048 for the ResNet-101 image features), in ``models/cub_caption.py``, ``models/cub_image.py``
and ``models/cub_caption_image.py``:

* encoder ``EncoderFT``: Dense ``d/2 → d/4 → d/8`` with ELU (alpha 1) → Dense ``2L`` ([mean | logvar]);
* decoder ``DecoderFT``: Dense ``d/8 → d/4 → d/2`` with ELU → Dense ``d``, linear output (features are unbounded);
* (x, z) discriminator ``XZDiscriminatorFT``: x-branch SN Dense ``d/2 → d/4 → d/8 → d/8``, z-branch SN Dense
  ``d/8 → d/8``, head concat → SN Dense 512 → SN Dense ``out_dim``, LeakyReLU(0.2) after every hidden layer;
* joint critic ``XXDiscriminatorFTFT``: the two x-branches (caption → 128, image → 256), concat 384 → SN Dense 512
  → SN Dense 512 → SN Dense 1, LeakyReLU(0.2) after the hidden layers.

Here the builders take the widths explicitly, so a new D-dimensional feature modality can reuse them
(:meth:`FeatureWidths.from_feature_dim` gives the reference's rule for any ``d``); :data:`CAPTION_WIDTHS` and
:data:`IMAGE_WIDTHS` hold CUB's. As in the other network modules: Keras functional models with fixed input shapes,
every kernel N(0, 0.02) and every bias zero, spectral normalisation (:class:`SNDense`) on every discriminator layer
and never on encoders or decoders, layer names ``f"{name}_<part>"``, inputs ``f"{name}_x"`` / ``f"{name}_z"`` (joint
critic: ``f"{name}_x{i}"``). Each discriminator merges its branches in a ``Concatenate`` layer named
``f"{name}_concat"``; :func:`x_part` cuts a model there.

The feature kinds of :mod:`mmali_tf.kinds` (``cub_caption``, ``cub_image``, ``vector``) build their networks here;
the joint critic is the ``feature_concat`` architecture of :mod:`mmali_tf.networks.registry`
(:func:`~mmali_tf.networks.joint.ConcatJointDiscriminator` with the feature head).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence

import keras

from mmali_tf.errors import ConfigError
from mmali_tf.networks.joint import ConcatJointDiscriminator, XBranch, check_positive_int, sn_mlp_head, sn_stack
from mmali_tf.networks.spectral_norm import normal_init

CAPTION_FEATURE_DIM = 1024
IMAGE_FEATURE_DIM = 2048

XZ_HEAD_DIM = 512
"""Width of the one hidden layer of every feature (x, z) discriminator's head."""

JOINT_HEAD_HIDDEN = (512, 512)
"""Hidden widths of the joint critic's head (``XXDiscriminatorFTFT``)."""


def _widths(values, what: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"{what} must be a sequence of positive integers, got {values!r}.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
            raise ConfigError(f"{what} must be a sequence of positive integers, got {values!r}.")
    return tuple(int(v) for v in values)


def _dense(units: int, name: str, activation=None) -> keras.layers.Dense:
    return keras.layers.Dense(units, activation=activation, kernel_initializer=normal_init(),
                              bias_initializer="zeros", name=name)


def _elu_mlp(input_dim: int, output_dim: int, hidden: tuple[int, ...], name: str, input_name: str) -> keras.Model:
    """Dense ``hidden`` with ELU after each, then a linear Dense ``output_dim``; input ``f"{name}_{input_name}"``."""
    inputs = keras.Input(shape=(input_dim,), name=f"{name}_{input_name}")
    h = inputs
    for i, units in enumerate(hidden, start=1):
        h = _dense(units, f"{name}_fc{i}", activation="elu")(h)
    out = _dense(output_dim, f"{name}_fc{len(hidden) + 1}")(h)
    return keras.Model(inputs=inputs, outputs=out, name=name)


def FeatureEncoder(input_dim: int, latent_dim: int, hidden: Sequence[int], name: str = "feature_encoder"
                   ) -> keras.Model:
    """x ``[B, input_dim]`` → ``[B, 2L]`` = [mean | logvar], each [style | content].

    Dense ``hidden[0]`` → ... → Dense ``hidden[-1]``, ELU after each, then Dense 2L (no activation).
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    return _elu_mlp(check_positive_int(input_dim, "input_dim"), 2 * latent_dim,
                    _widths(hidden, "encoder hidden widths"), name, "x")


def FeatureDecoder(latent_dim: int, output_dim: int, hidden: Sequence[int], name: str = "feature_decoder"
                   ) -> keras.Model:
    """z ``[B, L]`` → features ``[B, output_dim]`` (linear output: feature values are unbounded).

    Dense ``hidden[0]`` → ... → Dense ``hidden[-1]``, ELU after each, then Dense ``output_dim``.
    """
    return _elu_mlp(check_positive_int(latent_dim, "latent_dim"), check_positive_int(output_dim, "output_dim"),
                    _widths(hidden, "decoder hidden widths"), name, "z")


def feature_x_branch(x: keras.KerasTensor, hidden: Sequence[int], prefix: str) -> keras.KerasTensor:
    """SN Dense ``hidden[0]`` → ... → SN Dense ``hidden[-1]``, LeakyReLU(0.2) after each; layers ``prefix_fc<i>``."""
    return sn_stack(x, _widths(hidden, "x-branch widths"), prefix)


def FeatureXZDiscriminator(input_dim: int, latent_dim: int, out_dim: int, *, x_hidden: Sequence[int],
                           z_hidden: Sequence[int], head_hidden: Sequence[int] = (XZ_HEAD_DIM,),
                           name: str = "feature_xz_discriminator") -> keras.Model:
    """``[x [B, input_dim], z [B, L]]`` → ``[B, out_dim]`` logits.

    x-branch :func:`feature_x_branch` with ``x_hidden``; z-branch the same with ``z_hidden``; concat
    (``f"{name}_concat"``) → SN Dense ``head_hidden`` with LeakyReLU(0.2) → SN Dense ``out_dim``.
    """
    input_dim = check_positive_int(input_dim, "input_dim")
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    out_dim = check_positive_int(out_dim, "out_dim")
    head_hidden = _widths(head_hidden, "head widths")
    x = keras.Input(shape=(input_dim,), name=f"{name}_x")
    z = keras.Input(shape=(latent_dim,), name=f"{name}_z")
    hx = feature_x_branch(x, x_hidden, f"{name}_x")
    hz = sn_stack(z, _widths(z_hidden, "z-branch widths"), f"{name}_z")
    h = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([hx, hz])
    return keras.Model(inputs=[x, z], outputs=sn_mlp_head(h, out_dim, name, head_hidden), name=name)


def FeatureJointDiscriminator(input_dims: Sequence[int], branch_hidden: Sequence[Sequence[int]],
                              head_hidden: Sequence[int] = JOINT_HEAD_HIDDEN,
                              name: str = "feature_joint_discriminator") -> keras.Model:
    """``[x_1 [B, input_dims[0]], ..., x_M]`` → ``[B, 1]`` logit, for M >= 2 feature modalities.

    Modality ``i`` goes through its own :func:`feature_x_branch` with ``branch_hidden[i]`` (layers
    ``f"{name}_x{i}_*"``); the branches are concatenated (``f"{name}_concat"``) → SN Dense ``head_hidden`` with
    LeakyReLU(0.2) → SN Dense 1.
    """
    input_dims = [check_positive_int(d, "input_dims entry") for d in input_dims]
    branch_hidden = list(branch_hidden)
    if len(input_dims) < 2 or len(branch_hidden) != len(input_dims):
        raise ConfigError(f"FeatureJointDiscriminator needs >= 2 modalities and one branch width list per "
                          f"modality, got {len(input_dims)} input sizes and {len(branch_hidden)} branches.")
    branches = [feature_branch(d, widths) for d, widths in zip(input_dims, branch_hidden)]
    return ConcatJointDiscriminator(branches, name=name, head_hidden=_widths(head_hidden, "head widths"))


def feature_branch(feature_dim: int, hidden: Sequence[int], kind: str = "features") -> XBranch:
    """The joint-critic :class:`XBranch` of a ``feature_dim``-vector modality: :func:`feature_x_branch` with
    ``hidden``."""
    hidden = _widths(hidden, "x-branch widths")
    return XBranch(kind=kind, input_shape=(check_positive_int(feature_dim, "feature_dim"),),
                   build=lambda x, prefix: feature_x_branch(x, hidden, prefix))


def x_part(model: keras.Model, index: int = 0) -> keras.Model:
    """The sub-model of a feature discriminator from its input ``index`` to the ``index``-th input of its
    ``f"{model.name}_concat"`` layer: the x-branch (same layers and variables, nothing copied)."""
    merge = model.get_layer(f"{model.name}_concat")
    merged = merge.input if isinstance(merge.input, (list, tuple)) else [merge.input]
    if not 0 <= index < len(merged) or not 0 <= index < len(model.inputs):
        raise ConfigError(f"{model.name}: no branch {index} (it has {len(merged)} merged inputs).")
    return keras.Model(model.inputs[index], merged[index], name=f"{model.name}_xpart{index}")


@dataclasses.dataclass(frozen=True)
class FeatureWidths:
    """The layer widths of one feature modality's encoder, decoder and (x, z) discriminator.

    Attributes:
        feature_dim: the feature size ``d``.
        encoder_hidden: encoder hidden widths, from the input; the decoder uses them reversed.
        x_hidden: widths of the discriminators' x-branch (also the joint critic's branch for this modality).
        z_hidden: widths of the (x, z) discriminator's z-branch.
        head_hidden: hidden widths of the (x, z) discriminator's head.
    """

    feature_dim: int
    encoder_hidden: tuple[int, ...]
    x_hidden: tuple[int, ...]
    z_hidden: tuple[int, ...]
    head_hidden: tuple[int, ...] = (XZ_HEAD_DIM,)

    @classmethod
    def from_feature_dim(cls, feature_dim: int, round_down: bool = False) -> FeatureWidths:
        """The reference's widths for a ``d``-dimensional feature: encoder ``d/2, d/4, d/8``; x-branch
        ``d/2, d/4, d/8, d/8``; z-branch ``d/8, d/8``; head 512. ``d`` must be a multiple of 8, unless
        ``round_down``, which rounds each width down (to at least 1)."""
        d = check_positive_int(feature_dim, "feature_dim")
        if d % 8 and not round_down:
            raise ConfigError(f"the reference's width rule needs a feature size divisible by 8, got {d}.")
        half, quarter, eighth = (max(1, d // k) for k in (2, 4, 8))
        return cls(feature_dim=d, encoder_hidden=(half, quarter, eighth), x_hidden=(half, quarter, eighth, eighth),
                   z_hidden=(eighth, eighth))

    def encoder(self, latent_dim: int, name: str) -> keras.Model:
        """:func:`FeatureEncoder` with these widths."""
        return FeatureEncoder(self.feature_dim, latent_dim, self.encoder_hidden, name=name)

    def decoder(self, latent_dim: int, name: str) -> keras.Model:
        """:func:`FeatureDecoder` with the encoder widths reversed."""
        return FeatureDecoder(latent_dim, self.feature_dim, self.encoder_hidden[::-1], name=name)

    def xz_discriminator(self, latent_dim: int, out_dim: int, name: str) -> keras.Model:
        """:func:`FeatureXZDiscriminator` with these widths."""
        return FeatureXZDiscriminator(self.feature_dim, latent_dim, out_dim, x_hidden=self.x_hidden,
                                      z_hidden=self.z_hidden, head_hidden=self.head_hidden, name=name)


CAPTION_WIDTHS = FeatureWidths(feature_dim=CAPTION_FEATURE_DIM, encoder_hidden=(512, 256, 128),
                               x_hidden=(512, 256, 128, 128), z_hidden=(128, 128))
"""CUB captions (1,024-d char-CNN-RNN embeddings): ``models/cub_caption.py`` ``EncoderFT`` / ``DecoderFT`` /
``XZDiscriminatorFT``."""

IMAGE_WIDTHS = FeatureWidths(feature_dim=IMAGE_FEATURE_DIM, encoder_hidden=(1024, 512, 256),
                             x_hidden=(1024, 512, 256, 256), z_hidden=(256, 256))
"""CUB images (2,048-d ResNet-101 features): ``models/cub_image.py`` ``EncoderFT`` / ``DecoderFT`` /
``XZDiscriminatorFT``."""


def CUBJointDiscriminator(name: str = "cub_joint_discriminator") -> keras.Model:
    """The reference's ``XXDiscriminatorFTFT``: inputs ``[caption [B, 1024], image [B, 2048]]`` → ``[B, 1]``.

    Caption branch SN 512 → 256 → 128 → 128, image branch SN 1024 → 512 → 256 → 256, concat 384 → SN 512 → SN 512
    → SN 1, LeakyReLU(0.2) after every hidden layer.
    """
    return FeatureJointDiscriminator((CAPTION_WIDTHS.feature_dim, IMAGE_WIDTHS.feature_dim),
                                     (CAPTION_WIDTHS.x_hidden, IMAGE_WIDTHS.x_hidden), JOINT_HEAD_HIDDEN, name=name)
