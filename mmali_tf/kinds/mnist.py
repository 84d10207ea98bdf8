"""The ``mnist`` kind: 28x28x1 images in [0, 1], the authors' MLPs (``networks/mnist.py``, their ``models/mnist.py``)
and the MNIST coherence classifier (``evaluation/classifiers.py``)."""

from __future__ import annotations

from mmali_tf.kinds.base import ClassifierSpec, ImageKind, InputSpec, ReferenceNames


def _build_classifier(protocol: str, seed: int):
    from mmali_tf.evaluation.classifiers import mnist_classifier

    return mnist_classifier(always_on_dropout=protocol == "reference", seed=seed)


class MNISTKind(ImageKind):
    name = "mnist"
    description = "28x28x1 images, MLP networks"
    reference_names = ReferenceNames(encoder={1: "fc1", 3: "fc2"}, decoder={0: "fc1", 2: "fc2"},
                                     x_branch={1: "fc1", 3: "fc2"}, xz={"model.0": "fc1", "model.2": "fc2"})

    def input_spec(self, spec=None) -> InputSpec:
        from mmali_tf.networks.mnist import IMAGE_SHAPE

        return InputSpec(IMAGE_SHAPE, self.examples)

    def encoder(self, spec, latent_dim, name):
        from mmali_tf.networks.mnist import MNISTEncoder

        return MNISTEncoder(latent_dim, name=name)

    def decoder(self, spec, latent_dim, name):
        from mmali_tf.networks.mnist import MNISTDecoder

        return MNISTDecoder(latent_dim, name=name)

    def xz_discriminator(self, spec, latent_dim, out_dim, name):
        from mmali_tf.networks.mnist import MNISTXZDiscriminator

        return MNISTXZDiscriminator(latent_dim, out_dim, name=name)

    def xz_critic(self, model):
        from mmali_tf.networks.mnist import xz_critic

        return xz_critic(model)

    def x_branch(self, spec=None):
        from mmali_tf.networks.mnist import X_BRANCH

        return X_BRANCH

    def classifier(self) -> ClassifierSpec:
        return ClassifierSpec(build=_build_classifier, default_epochs=30, always_on_dropout_in_reference=True)


KIND = MNISTKind()
