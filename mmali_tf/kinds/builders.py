"""Build the networks of modalities through their kinds (:mod:`mmali_tf.kinds`), and the joint critics through
the registry of joint architectures (:mod:`mmali_tf.networks.registry`).

Every builder takes a modality as a :class:`~mmali_tf.config.ModalitySpec` or, for kinds with fixed networks, just
its kind string (``"mnist"``, ``"svhn"``, ``"cub_caption"``, ``"cub_image"``), and returns a Keras functional model
whose inputs have fixed shapes, so it is built on return and can be made a direct attribute of a bigger model.
Unknown kinds, architectures or bad sizes raise :class:`mmali_tf.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from mmali_tf import kinds
from mmali_tf.config import ModalitySpec
from mmali_tf.constants import PIXELS
from mmali_tf.errors import ConfigError
from mmali_tf.networks import joint
from mmali_tf.networks.critic import Critic
from mmali_tf.networks.registry import JOINT_ARCHITECTURE_REGISTRY
from mmali_tf.registry import LiveMapping

KINDS = kinds.KINDS
"""The modality kinds (the registry of :mod:`mmali_tf.kinds`)."""


def _image_shapes() -> dict[str, tuple[int, ...]]:
    return {k.name: k.input_spec(None).shape for k in KINDS.entries()
            if k.examples == PIXELS and not k.options}


KIND_NAMES: Sequence[str] = KINDS.live_names()
"""The registered modality kinds (a live view of the registry)."""

IMAGE_SHAPES: Mapping[str, tuple[int, ...]] = LiveMapping(_image_shapes)
"""NHWC image shape (without batch axis) of each image kind with fixed networks (a live view of the kinds registry;
the ``image`` kind's shape is its modality's options, :func:`input_shape`)."""


def modality(kind_or_spec):
    """(kind, spec) of a ``ModalitySpec`` or of a kind string (then a spec with that kind and defaults)."""
    if isinstance(kind_or_spec, str) or kind_or_spec is None or not hasattr(kind_or_spec, "kind"):
        if not isinstance(kind_or_spec, str):
            raise ConfigError(f"expected a modality kind or spec, got {kind_or_spec!r}.")
        spec = ModalitySpec(name=kind_or_spec, kind=kind_or_spec, dataset="")
    else:
        spec = kind_or_spec
    return KINDS.get(spec.kind), spec


def x_branch(kind_or_spec) -> joint.XBranch:
    """The joint-discriminator x-branch of a modality."""
    kind, spec = modality(kind_or_spec)
    return kind.x_branch(spec)


def _branches(modalities: Sequence) -> list[joint.XBranch]:
    if isinstance(modalities, str):
        raise ConfigError(f"expected a sequence of modality kinds, got the string {modalities!r}.")
    return [x_branch(m) for m in modalities]


def input_shape(kind_or_spec) -> tuple[int, ...]:
    """Shape of one example of a modality (``[H, W, C]`` or ``[D]``)."""
    kind, spec = modality(kind_or_spec)
    return tuple(kind.input_spec(spec).shape)


def build_encoder(kind_or_spec, latent_dim: int, name: str) -> keras.Model:
    """Example ``[B, *input_shape]`` → ``[B, 2 * latent_dim]`` = [mean | logvar], each [style | content]."""
    kind, spec = modality(kind_or_spec)
    return kind.encoder(spec, latent_dim, name=name)


def build_decoder(kind_or_spec, latent_dim: int, name: str) -> keras.Model:
    """``z [B, latent_dim]`` → ``[B, *input_shape]``: images in [0, 1] (sigmoid) or features (linear)."""
    kind, spec = modality(kind_or_spec)
    return kind.decoder(spec, latent_dim, name=name)


def build_xz_discriminator(kind_or_spec, latent_dim: int, out_dim: int, name: str) -> keras.Model:
    """Inputs ``[x, z]`` → ``[B, out_dim]`` logits (spectrally normalised; honours ``training=``)."""
    kind, spec = modality(kind_or_spec)
    return kind.xz_discriminator(spec, latent_dim, out_dim, name=name)


def build_joint_discriminator(modalities: Sequence, architecture: str, name: str) -> keras.Model:
    """Inputs: a list of example batches in the order of ``modalities`` (kinds or specs) → ``[B, 1]`` logit.

    ``architecture`` is a registered joint architecture: ``"dot"`` (MNIST-SVHN's ``XXDiscriminatorDot``, two
    modalities), ``"concat"`` (MultiMNIST's ``MultiXDiscriminator``) or ``"feature_concat"`` (CUB's
    ``XXDiscriminatorFTFT``).
    """
    builder = JOINT_ARCHITECTURE_REGISTRY.get(architecture).build
    return builder(_branches(modalities), name)


def build_joint_xz_discriminator(modalities: Sequence, z_dim: int, name: str) -> keras.Model:
    """Inputs ``[x_1, ..., x_M, z]`` (``z [B, z_dim]``) → ``[B, M + 1]`` logits (``MultiXZDiscriminator``)."""
    return joint.JointXZDiscriminator(_branches(modalities), z_dim, name=name)


def xz_critic(kind_or_spec, model: keras.Model) -> Critic:
    """A ``build_xz_discriminator(kind, ...)`` model as the objective calls it, ``d(x, z)`` (same variables)."""
    kind, _ = modality(kind_or_spec)
    return kind.xz_critic(model)


def joint_critic(model: keras.Model) -> Critic:
    """A joint (dot, concat or x-z) discriminator as the objective calls it, ``d(x_1, ..., x_M[, z])``."""
    return joint.joint_critic(model)
