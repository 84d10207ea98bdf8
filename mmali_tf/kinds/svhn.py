"""The ``svhn`` kind: 32x32x3 images in [0, 1], the authors' DCGAN-style convnets (``networks/svhn.py``, their
``models/svhn.py``) and the SVHN coherence classifier (``networks/classifiers.py``)."""

from __future__ import annotations

from mmali_tf.kinds.base import ClassifierSpec, ImageKind
from mmali_tf.networks import svhn as svhn_networks
from mmali_tf.networks.classifiers import svhn_classifier


def _build_classifier(protocol: str, seed: int):
    return svhn_classifier(seed=seed)


class SVHNKind(ImageKind):
    name = "svhn"
    description = "32x32x3 images, convolutional networks"
    networks, prefix = svhn_networks, "SVHN"

    def classifier(self) -> ClassifierSpec:
        return ClassifierSpec(build=_build_classifier, default_epochs=8)


KIND = SVHNKind()
