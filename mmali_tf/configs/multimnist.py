"""MultiMNIST (paper Table 1), the authors' README configuration (docs/authors_code.md, sections 1.4 and 3).

Modality i is MNIST rotated i x 90 degrees counter-clockwise; each tuple holds M different same-class images.
Latent 20 = style 10 + content 10, lambda_u 0.1, no reconstruction terms, concatenation joint critic, 250k
iterations of batch 64, EMA after 50k. ``discriminator="joint"`` is the joint-discriminator baseline
(docs/objective.md, section 6) as the authors' code runs it: of the two paired batches of a player step only the
second's terms count (their two calls return the same loss-dict keys, so the second overwrites the first);
``both_batches=True`` is our variant in which both batches count. Data: ``--config.data.data_dir=DIR`` with mnist.npz or the IDX files.
"""

from mmali_tf.config import (DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig)

ANGLES = (0, 90, 180, 270)


def modalities(num: int) -> tuple[ModalitySpec, ...]:
    """``mnist0``, ``mnist90``, ...: MNIST rotated by 0, 90, ... degrees (``quarter_turns`` 0, 1, ...)."""
    return tuple(ModalitySpec(f"mnist{ANGLES[i]}", dataset="mnist", kind="mnist", quarter_turns=i) for i in range(num))


def get_config(num_modalities: int = 2, discriminator: str = "factorized", both_batches: bool = False
               ) -> ExperimentConfig:
    suffix = ("_joint_both_batches" if both_batches else "_joint") if discriminator == "joint" else ""
    return ExperimentConfig(
        name=f"multimnist_m{num_modalities}{suffix}",
        data=DataConfig(use_all=True, data_multiplication=30),
        model=ModelConfig(modalities=modalities(num_modalities), latent_dim=20, style_dim=10,
                          discriminator=discriminator, joint_architecture="concat"),
        loss=LossConfig(lambda_unimodal=0.1, lambda_x_rec=0.0, lambda_s_rec=0.0, lambda_c_rec=0.0, joint_rec=False,
                        discard_first_baseline_call=discriminator == "joint" and not both_batches),
        train=TrainConfig(batch_size=64, max_iter=250_000, ema_start=50_000, save_every=2000, image_every=2000,
                          log_every=100),
    )
