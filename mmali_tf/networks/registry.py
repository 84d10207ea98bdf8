"""The registry of joint architectures: the critics of q(X) against prod q(x_m), each built on one x-branch per
modality (:class:`~mmali_tf.networks.joint.XBranch`).

The per-modality builders, which go through the modality kinds, are :mod:`mmali_tf.kinds.builders`; this module
imports no kind, so the networks sit below the kinds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras

from mmali_tf.networks import joint
from mmali_tf.registry import Registry


@dataclasses.dataclass(frozen=True)
class JointArchitecture:
    """A critic of q(X) against prod q(x_m): ``build(branches, name) -> model`` on one x-branch per modality."""

    name: str
    description: str
    build: Callable[[Sequence[joint.XBranch], str], keras.Model]


JOINT_ARCHITECTURE_REGISTRY: Registry[JointArchitecture] = Registry("joint discriminator architecture")
JOINT_ARCHITECTURE_REGISTRY.register(JointArchitecture(
    "dot", "bilinear critic of exactly two modalities, MNIST-SVHN's XXDiscriminatorDot",
    lambda branches, name: joint.DotJointDiscriminator(branches, name=name)))
JOINT_ARCHITECTURE_REGISTRY.register(JointArchitecture(
    "concat", "concatenated branches -> SN 1024, 1024, 1, MultiMNIST's MultiXDiscriminator",
    lambda branches, name: joint.ConcatJointDiscriminator(branches, name=name)))
JOINT_ARCHITECTURE_REGISTRY.register(JointArchitecture(
    "feature_concat", "concatenated branches -> SN 512, 512, 1, CUB's XXDiscriminatorFTFT",
    lambda branches, name: joint.ConcatJointDiscriminator(branches, name=name, head_hidden=(512, 512))))

JOINT_ARCHITECTURES: Sequence[str] = JOINT_ARCHITECTURE_REGISTRY.live_names()
"""``"dot"`` (bilinear critic, exactly two modalities), ``"concat"`` and ``"feature_concat"`` (concatenation MLPs,
any M >= 2), a live view of the registry."""
