"""Build networks from a modality "kind" string.

Kinds: ``"mnist"`` (28x28x1, MLP networks) and ``"svhn"`` (32x32x3, conv networks). Every builder returns a Keras
functional model whose inputs have fixed shapes, so it is built on return and can be made a direct attribute of a
bigger model. Unknown kinds, architectures or bad sizes raise :class:`mmali_tf.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import keras

from mmali_tf.errors import ConfigError
from mmali_tf.networks import joint, mnist, svhn
from mmali_tf.networks.critic import Critic


class _Kind(NamedTuple):
    encoder: object
    decoder: object
    xz_discriminator: object
    x_branch: joint.XBranch
    xz_critic: object


_KINDS = {
    "mnist": _Kind(mnist.MNISTEncoder, mnist.MNISTDecoder, mnist.MNISTXZDiscriminator, mnist.X_BRANCH,
                   mnist.xz_critic),
    "svhn": _Kind(svhn.SVHNEncoder, svhn.SVHNDecoder, svhn.SVHNXZDiscriminator, svhn.X_BRANCH,
                  svhn.xz_critic),
}

KINDS = tuple(_KINDS)
"""The modality kinds that have networks."""

IMAGE_SHAPES = {"mnist": mnist.IMAGE_SHAPE, "svhn": svhn.IMAGE_SHAPE}
"""NHWC image shape (without batch axis) of each kind."""

_JOINT_ARCHITECTURES = {"dot": joint.DotJointDiscriminator, "concat": joint.ConcatJointDiscriminator}

JOINT_ARCHITECTURES = tuple(_JOINT_ARCHITECTURES)
"""``"dot"`` (bilinear critic, exactly two modalities) and ``"concat"`` (concatenation MLP, any M >= 2)."""


def _kind(kind: str) -> _Kind:
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown modality kind {kind!r}; expected one of {', '.join(KINDS)}.") from None


def x_branch(kind: str) -> joint.XBranch:
    """The joint-discriminator x-branch of a kind."""
    return _kind(kind).x_branch


def _branches(kinds: Sequence[str]) -> list[joint.XBranch]:
    if isinstance(kinds, str):
        raise ConfigError(f"expected a sequence of modality kinds, got the string {kinds!r}.")
    return [x_branch(kind) for kind in kinds]


def build_encoder(kind: str, latent_dim: int, name: str) -> keras.Model:
    """Image ``[B, *IMAGE_SHAPES[kind]]`` → ``[B, 2 * latent_dim]`` = [mean | logvar], each [style | content]."""
    return _kind(kind).encoder(latent_dim, name=name)


def build_decoder(kind: str, latent_dim: int, name: str) -> keras.Model:
    """``z [B, latent_dim]`` → images ``[B, *IMAGE_SHAPES[kind]]`` in [0, 1] (sigmoid output)."""
    return _kind(kind).decoder(latent_dim, name=name)


def build_xz_discriminator(kind: str, latent_dim: int, out_dim: int, name: str) -> keras.Model:
    """Inputs ``[x, z]`` → ``[B, out_dim]`` logits (spectrally normalised; honours ``training=``)."""
    return _kind(kind).xz_discriminator(latent_dim, out_dim, name=name)


def build_joint_discriminator(kinds: Sequence[str], architecture: str, name: str) -> keras.Model:
    """Inputs: a list of images in the order of ``kinds`` → ``[B, 1]`` logit.

    ``architecture`` is ``"dot"`` (MNIST-SVHN's ``XXDiscriminatorDot``, two modalities) or ``"concat"``
    (MultiMNIST's ``MultiXDiscriminator``).
    """
    try:
        builder = _JOINT_ARCHITECTURES[architecture]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown joint discriminator architecture {architecture!r}; "
            f"expected one of {', '.join(JOINT_ARCHITECTURES)}."
        ) from None
    return builder(_branches(kinds), name=name)


def build_joint_xz_discriminator(kinds: Sequence[str], z_dim: int, name: str) -> keras.Model:
    """Inputs ``[x_1, ..., x_M, z]`` (``z [B, z_dim]``) → ``[B, M + 1]`` logits (``MultiXZDiscriminator``)."""
    return joint.JointXZDiscriminator(_branches(kinds), z_dim, name=name)


def xz_critic(kind: str, model: keras.Model) -> Critic:
    """A ``build_xz_discriminator(kind, ...)`` model as the objective calls it, ``d(x, z)`` (same variables)."""
    return _kind(kind).xz_critic(model)


def joint_critic(model: keras.Model) -> Critic:
    """A joint (dot, concat or x-z) discriminator as the objective calls it, ``d(x_1, ..., x_M[, z])``."""
    return joint.joint_critic(model)
