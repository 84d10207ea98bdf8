"""The ``svhn`` kind: 32x32x3 images in [0, 1], the authors' DCGAN-style convnets (``networks/svhn.py``, their
``models/svhn.py``) and the SVHN coherence classifier (``networks/classifiers.py``)."""

from __future__ import annotations

from mmali_tf.kinds.base import ClassifierSpec, ImageKind, ReferenceNames
from mmali_tf.networks import svhn as svhn_networks
from mmali_tf.networks.classifiers import svhn_classifier

_CONVS = {0: "conv1", 2: "conv2", 4: "conv3", 6: "conv4"}


def _build_classifier(protocol: str, seed: int):
    return svhn_classifier(seed=seed)


class SVHNKind(ImageKind):
    name = "svhn"
    description = "32x32x3 images, convolutional networks"
    networks, prefix = svhn_networks, "SVHN"
    reference_names = ReferenceNames(
        encoder=_CONVS, decoder={1: "convt1", 3: "convt2", 5: "convt3", 7: "convt4"}, x_branch=_CONVS,
        xz={**{f"x_discrimination.{i}": f"x_{s}" for i, s in _CONVS.items()},
            "z_discrimination.0": "z_fc1", "z_discrimination.2": "z_fc2",
            "joint_discriminator.0": "head_fc1", "joint_discriminator.2": "head_fc2",
            "joint_discriminator.4": "head_out"})

    def classifier(self) -> ClassifierSpec:
        return ClassifierSpec(build=_build_classifier, default_epochs=8)


KIND = SVHNKind()
