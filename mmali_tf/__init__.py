"""mmali_tf: Multimodal Adversarially Learned Inference with Factorized Discriminators in TF2 / Keras 3."""

__version__ = "0.1.0"
