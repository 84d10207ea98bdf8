"""The ``mnist`` kind: 28x28x1 images in [0, 1], the authors' MLPs (``networks/mnist.py``, their ``models/mnist.py``)
and the MNIST coherence classifier (``networks/classifiers.py``)."""

from __future__ import annotations

from mmali_tf.kinds.base import ClassifierSpec, ImageKind
from mmali_tf.networks import mnist as mnist_networks
from mmali_tf.networks.classifiers import mnist_classifier


def _build_classifier(protocol: str, seed: int):
    return mnist_classifier(always_on_dropout=protocol == "reference", seed=seed)


class MNISTKind(ImageKind):
    name = "mnist"
    description = "28x28x1 images, MLP networks"
    networks, prefix = mnist_networks, "MNIST"

    def classifier(self) -> ClassifierSpec:
        return ClassifierSpec(build=_build_classifier, default_epochs=30, always_on_dropout_in_reference=True)


KIND = MNISTKind()
