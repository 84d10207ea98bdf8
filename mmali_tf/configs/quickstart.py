"""The main job of README: MMALI learning visibly within minutes on 2 CPU cores, on embedded data (no download).

``quickstart`` is the MultiMNIST M=2 model (MLP encoders, decoders and critics, factorized discriminators) on the
embedded scikit-learn digits: modality ``upright`` is a digit as it is, ``rotated`` another digit of the same
class turned 90 degrees. Demo settings, not the paper's (documented in BUILD.md, "The quickstart"): a learning rate
of 5e-4 instead of 2e-4, the feature-concatenation joint critic, 5,000 iterations, an EMA from iteration 2,000 with
decay 0.999, and an evaluation at the end (linear probe, cross and joint coherence) printed as a table.

``tiny`` is the MNIST-SVHN model on the embedded digits for a few steps of batch 8 (tests, smoke runs): it covers
the convolutional networks, which the quickstart does not.
"""

from mmali_tf.config import ExperimentConfig, ModalitySpec
from mmali_tf.configs import mnist_svhn, multimnist

DIGITS = (ModalitySpec("upright", dataset="digits_grey28", kind="mnist"),
          ModalitySpec("rotated", dataset="digits_grey28", kind="mnist", quarter_turns=1))
"""The embedded digits twice: upright and turned 90 degrees counter-clockwise; a tuple holds two same-class digits."""

EMBEDDED = (ModalitySpec("grey", dataset="digits_grey28", kind="mnist"),
            ModalitySpec("colour", dataset="digits_colour32", kind="svhn"))
"""The MNIST-SVHN pair on embedded data: grey 28x28 digits and coloured 32x32 ones."""


def get_config() -> ExperimentConfig:
    return multimnist.get_config(2).replace(
        name="quickstart", model=dict(modalities=DIGITS, joint_architecture="feature_concat"),
        train=dict(max_iter=5000, lr=5e-4, ema_start=2000, ema_decay=0.999, save_every=1000, image_every=1000,
                   log_every=250, eval_at_end=True))


def tiny() -> ExperimentConfig:
    return mnist_svhn.get_config().replace(
        name="tiny", model=dict(modalities=EMBEDDED), data=dict(data_multiplication=2),
        train=dict(batch_size=8, max_iter=6, ema_start=2, save_every=3, image_every=3, log_every=1))
