"""Where the authors' PyTorch modules sit in our layers, per modality kind: the tables the weight port
(:mod:`tests.golden.reference_port`) reads. Kinds without an authors' counterpart (``vector``, ``image``) have no
entry."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class ReferenceNames:
    """Where the authors' PyTorch modules of one kind sit in our layers.

    Each table maps their module index (inside ``Sequential``\\ s) or path to our layer-name suffix, the layer being
    ``f"{model.name}_{suffix}"``.

    Attributes:
        encoder: index in their encoder's ``model`` (wrapped by their Gaussian module as ``module.model.<i>``).
        decoder: index in their decoder's ``model``.
        x_branch: index in the x-branch of their joint critics (suffixes relative to the branch prefix).
        xz: module path in their (x, z) discriminator.
    """

    encoder: Mapping[int, str]
    decoder: Mapping[int, str]
    x_branch: Mapping[int, str]
    xz: Mapping[str, str]


MNIST = ReferenceNames(encoder={1: "fc1", 3: "fc2"}, decoder={0: "fc1", 2: "fc2"}, x_branch={1: "fc1", 3: "fc2"},
                       xz={"model.0": "fc1", "model.2": "fc2"})
"""The authors' ``models/mnist.py`` MLPs."""

_SVHN_CONVS = {0: "conv1", 2: "conv2", 4: "conv3", 6: "conv4"}
SVHN = ReferenceNames(
    encoder=_SVHN_CONVS, decoder={1: "convt1", 3: "convt2", 5: "convt3", 7: "convt4"}, x_branch=_SVHN_CONVS,
    xz={**{f"x_discrimination.{i}": f"x_{s}" for i, s in _SVHN_CONVS.items()},
        "z_discrimination.0": "z_fc1", "z_discrimination.2": "z_fc2",
        "joint_discriminator.0": "head_fc1", "joint_discriminator.2": "head_fc2",
        "joint_discriminator.4": "head_out"})
"""The authors' ``models/svhn.py`` convnets."""

_CUB_LINEARS = {0: "fc1", 2: "fc2", 4: "fc3", 6: "fc4"}
CUB = ReferenceNames(
    encoder=_CUB_LINEARS, decoder=_CUB_LINEARS, x_branch=_CUB_LINEARS,
    xz={**{f"x_discrimination.{i}": f"x_{s}" for i, s in _CUB_LINEARS.items()},
        "z_discrimination.0": "z_fc1", "z_discrimination.2": "z_fc2",
        "discriminator.0": "head_fc1", "discriminator.2": "head_out"})
"""The authors' ``EncoderFT`` / ``DecoderFT`` / ``XZDiscriminatorFT`` module layout (``models/cub_caption.py``,
``models/cub_image.py``): ``Sequential``\\ s with an activation after every linear layer."""

REFERENCE_NAMES: Mapping[str, ReferenceNames] = {"mnist": MNIST, "svhn": SVHN, "cub_caption": CUB, "cub_image": CUB}
"""Modality kind name -> the authors' layer names of its networks."""
