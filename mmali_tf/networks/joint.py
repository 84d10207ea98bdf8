"""Discriminators that look at several modalities at once (docs/authors_code.md, section 2).

* ``DotJointDiscriminator``: the MNIST-SVHN ``XXDiscriminatorDot``, a bilinear critic for exactly two modalities.
* ``ConcatJointDiscriminator``: MultiMNIST's ``MultiXDiscriminator``, a concatenation MLP for M modalities.
* ``JointXZDiscriminator``: MultiMNIST's single-discriminator baseline ``MultiXZDiscriminator`` on ``(x_1..x_M, z)``.

Each modality enters through its own "x-branch" (separate weights per modality, even for two modalities of the same
kind), described by an :class:`XBranch`; every modality kind provides one (``mmali_tf.kinds``: ``mnist.X_BRANCH``,
``svhn.X_BRANCH``, the feature kinds' SN MLP branches). The models are Keras functional models with one input per
modality, in the caller's order, named ``f"{name}_x{i}"`` (plus ``f"{name}_z"``); call them with a list of image or
feature batches. All layers are spectrally normalised and honour ``training=`` (the power iteration runs only when
``training=True``).

The builders are functions with class-like names, in the style of ``keras.applications``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence

import keras

from mmali_tf.errors import ConfigError
from mmali_tf.networks.spectral_norm import SNDense, leaky_relu
from mmali_tf.networks.critic import Critic, merge_critic

FEATURE_DIM = 256
"""Width of every x-branch output and of the dot-product features."""

HEAD_DIM = 1024
"""Width of the two hidden layers of the concatenation heads."""

HEAD_HIDDEN = (HEAD_DIM, HEAD_DIM)
"""Hidden widths of the image concatenation heads (``MultiXDiscriminator``, ``MultiXZDiscriminator``)."""

JOINT_Z_HIDDEN = 400
"""Hidden width of ``JointXZDiscriminator``'s z-branch."""


@dataclasses.dataclass(frozen=True)
class XBranch:
    """How one modality enters a joint discriminator.

    Attributes:
        kind: the modality kind string (``"mnist"``, ``"svhn"``, ``"cub_caption"``, ...).
        input_shape: shape of one example without the batch axis (NHWC image or ``(D,)`` features).
        build: ``build(x, prefix) -> features`` adds the branch's layers (names starting with ``prefix``) on the input
            tensor ``x`` and returns a ``[B, F]`` tensor (already through its LeakyReLU; F = ``FEATURE_DIM`` for the
            image kinds, the last x-branch width for feature kinds).
    """

    kind: str
    input_shape: tuple[int, ...]
    build: Callable[[keras.KerasTensor, str], keras.KerasTensor]


def check_positive_int(value, what: str) -> int:
    """``value`` if it is a positive ``int`` (not a bool), else a ``ConfigError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


def _check_branches(branches: Sequence[XBranch], what: str, exactly: int | None = None) -> list[XBranch]:
    branches = list(branches)
    if exactly is not None and len(branches) != exactly:
        raise ConfigError(f"{what} needs exactly {exactly} modalities, got {len(branches)}.")
    if len(branches) < 2:
        raise ConfigError(f"{what} needs at least 2 modalities, got {len(branches)}.")
    for branch in branches:
        if not isinstance(branch, XBranch):
            raise ConfigError(f"{what}: expected XBranch descriptions of the modalities, got {branch!r}.")
    return branches


def _inputs(branches: Sequence[XBranch], name: str) -> list[keras.KerasTensor]:
    return [keras.Input(shape=b.input_shape, name=f"{name}_x{i}") for i, b in enumerate(branches)]


def sn_stack(h: keras.KerasTensor, hidden: Sequence[int], prefix: str) -> keras.KerasTensor:
    """SN Dense ``hidden[0]`` → LReLU → ... → SN Dense ``hidden[-1]`` → LReLU; layers ``prefix_fc<i>`` and
    ``prefix_lrelu<i>``."""
    for i, units in enumerate(hidden, start=1):
        h = leaky_relu(f"{prefix}_lrelu{i}")(SNDense(units, name=f"{prefix}_fc{i}")(h))
    return h


def sn_mlp_head(h: keras.KerasTensor, out_dim: int, name: str, hidden: Sequence[int] = HEAD_HIDDEN
                ) -> keras.KerasTensor:
    """SN Dense ``hidden`` with LReLU after each (default 1024, 1024) → SN Dense out_dim (logits); layers
    ``f"{name}_head_fc<i>"``, ``f"{name}_head_lrelu<i>"`` and ``f"{name}_head_out"``."""
    return SNDense(out_dim, name=f"{name}_head_out")(sn_stack(h, hidden, f"{name}_head"))


def DotJointDiscriminator(branches: Sequence[XBranch], name: str = "joint_dot_discriminator") -> keras.Model:
    """``XXDiscriminatorDot``: ``sum_k fc1(branch_1(x_1))_k * fc2(branch_2(x_2))_k`` → ``[B, 1]`` logit.

    ``fc1``/``fc2`` are SN Dense 256 → 256 without activation. 1,238,384 trainable parameters for (mnist, svhn).
    """
    branches = _check_branches(branches, "DotJointDiscriminator", exactly=2)
    inputs = _inputs(branches, name)
    features = []
    for i, (branch, x) in enumerate(zip(branches, inputs)):
        h = branch.build(x, f"{name}_x{i}")
        features.append(SNDense(FEATURE_DIM, name=f"{name}_fc{i + 1}")(h))
    logit = keras.layers.Dot(axes=1, name=f"{name}_dot")(features)
    return keras.Model(inputs=inputs, outputs=logit, name=name)


def ConcatJointDiscriminator(branches: Sequence[XBranch], name: str = "joint_concat_discriminator",
                             head_hidden: Sequence[int] = HEAD_HIDDEN) -> keras.Model:
    """``MultiXDiscriminator``: concat of the M x-branches → SN 1024 → SN 1024 → SN 1 (``[B, 1]`` logit).

    3,766,849 trainable parameters for four MNIST modalities. With ``head_hidden=(512, 512)`` and the CUB caption
    and image branches this is the authors' ``XXDiscriminatorFTFT`` (3,985,921 parameters).
    """
    branches = _check_branches(branches, "ConcatJointDiscriminator")
    inputs = _inputs(branches, name)
    features = [branch.build(x, f"{name}_x{i}") for i, (branch, x) in enumerate(zip(branches, inputs))]
    h = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")(features)
    return keras.Model(inputs=inputs, outputs=sn_mlp_head(h, 1, name, head_hidden), name=name)


def JointXZDiscriminator(
    branches: Sequence[XBranch], z_dim: int, name: str = "joint_xz_discriminator"
) -> keras.Model:
    """``MultiXZDiscriminator``: inputs ``[x_1, ..., x_M, z]`` → ``[B, M+1]`` logits.

    x-branches as above; z-branch SN Dense(z_dim → 400) LReLU → SN Dense(400 → 256) LReLU; concat 256·(M+1) →
    SN 1024 → SN 1024 → SN M+1. In the reference ``z_dim = M·style_dim + content_dim``.
    """
    branches = _check_branches(branches, "JointXZDiscriminator")
    z_dim = check_positive_int(z_dim, "JointXZDiscriminator z_dim")
    inputs = _inputs(branches, name)
    z = keras.Input(shape=(z_dim,), name=f"{name}_z")
    features = [branch.build(x, f"{name}_x{i}") for i, (branch, x) in enumerate(zip(branches, inputs))]
    hz = leaky_relu(f"{name}_z_lrelu1")(SNDense(JOINT_Z_HIDDEN, name=f"{name}_z_fc1")(z))
    hz = leaky_relu(f"{name}_z_lrelu2")(SNDense(FEATURE_DIM, name=f"{name}_z_fc2")(hz))
    h = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")(features + [hz])
    logits = sn_mlp_head(h, len(branches) + 1, name)
    return keras.Model(inputs=inputs + [z], outputs=logits, name=name)


def joint_critic(model: keras.Model) -> Critic:
    """Any joint discriminator above as a :class:`Critic` with one x-part per modality, scoring each tuple in its
    own forward (:func:`merge_critic`).

    The x-parts end where the modalities meet: the ``_dot`` layer (so a dot critic's x-part includes its ``fc``) or
    the ``_concat`` layer (for ``JointXZDiscriminator`` the head includes the z-branch).
    """
    names = {layer.name for layer in model.layers}
    merge = f"{model.name}_dot" if f"{model.name}_dot" in names else f"{model.name}_concat"
    return merge_critic(model, merge)
