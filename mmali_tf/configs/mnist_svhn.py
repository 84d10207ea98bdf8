"""MNIST-SVHN, the authors' README configuration (docs/authors_code.md, section 3).

Latent 20 = style 10 + content 10, lambda_u 0.1, the three 0.05 reconstruction weights through the joint posterior
(joint_rec), use_all pairing, dot-product joint critic, 250k iterations of batch 64, Adam 2e-4 (0.5, 0.999), EMA
0.9999 after 50k, checkpoints every 2k. Data: ``--config.data.data_dir=DIR`` with mnist.npz (or the IDX files) and
SVHN's train_32x32.mat / test_32x32.mat (or the SVHN stand-in).
"""

from mmali_tf.config import (DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig)


def get_config(paired_fraction: float = 1.0, unpaired: bool = False, name: str = "mnist_svhn") -> ExperimentConfig:
    """``paired_fraction`` < 1 pairs only that fraction of each class (paper Table 2); ``unpaired`` then feeds the
    remaining images to the unimodal terms and the joint critic's negatives (off: the authors' released code)."""
    return ExperimentConfig(
        name=name,
        data=DataConfig(use_all=True, percentage=paired_fraction, data_multiplication=30, unpaired=unpaired),
        model=ModelConfig(modalities=(ModalitySpec("mnist", dataset="mnist", kind="mnist"),
                                      ModalitySpec("svhn", dataset="svhn", kind="svhn")),
                          latent_dim=20, style_dim=10, discriminator="factorized", joint_architecture="dot"),
        loss=LossConfig(lambda_unimodal=0.1, lambda_x_rec=0.05, lambda_s_rec=0.05, lambda_c_rec=0.05, joint_rec=True),
        train=TrainConfig(batch_size=64, max_iter=250_000, lr=2e-4, beta1=0.5, beta2=0.999, ema_start=50_000,
                          ema_decay=0.9999, save_every=2000, image_every=2000, log_every=100),
    )
