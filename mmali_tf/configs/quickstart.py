"""The main job of README: the MNIST-SVHN README model on the embedded digit datasets (no download), 600
iterations, a few minutes on 2 CPU cores. ``tiny`` is the same model for a few steps of batch 8 (tests, smoke runs).
"""

from mmali_tf.config import ExperimentConfig, ModalitySpec
from mmali_tf.configs import mnist_svhn

EMBEDDED = (ModalitySpec("grey", dataset="digits_grey28", kind="mnist"),
            ModalitySpec("colour", dataset="digits_colour32", kind="svhn"))


def get_config() -> ExperimentConfig:
    return mnist_svhn.get_config().replace(
        name="quickstart", model=dict(modalities=EMBEDDED),
        train=dict(max_iter=600, ema_start=300, save_every=300, image_every=300, log_every=50))


def tiny() -> ExperimentConfig:
    return mnist_svhn.get_config().replace(
        name="tiny", model=dict(modalities=EMBEDDED), data=dict(data_multiplication=2),
        train=dict(batch_size=8, max_iter=6, ema_start=2, save_every=3, image_every=3, log_every=1))
