"""CUB captions and images as features, the authors' README configuration (docs/authors_code.md, sections 1.5 and 3;
docs/cub_data.md for the data).

Caption features 1024-d and image features 2048-d with the authors' MLPs, the joint feature critic
(``feature_concat``, their XXDiscriminatorFTFT), latent 64 = style 32 + content 32, lambda_u 1.0, autoencoding
weight lambda_x 1.0 without joint_rec and the per-modality weights (mod_coeff) 1000 on captions and 1 on images,
250k iterations of batch 64, Adam 2e-4 (0.5, 0.999), EMA 0.9999 after 50k. Modality order = the authors' sorted keys
('0cap' < '1img'): caption first, so D0's classes match theirs. Data: ``--config.data.data_dir=DIR`` with
``DIR/cub/{train,test}/`` (``python -m mmali_tf.tools.prepare_cub``, or the stand-in of
``python -m mmali_tf.tools.make_cub_standin``).
"""

from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="cub",
        data=DataConfig(),
        model=ModelConfig(modalities=(ModalitySpec("caption", kind="cub_caption", dataset="cub_caption",
                                                   rec_weight=1000.0),
                                      ModalitySpec("image", kind="cub_image", dataset="cub_image", rec_weight=1.0)),
                          latent_dim=64, style_dim=32, discriminator="factorized", joint_architecture="feature_concat"),
        loss=LossConfig(lambda_unimodal=1.0, lambda_x_rec=1.0, lambda_s_rec=0.0, lambda_c_rec=0.0, joint_rec=False),
        train=TrainConfig(batch_size=64, max_iter=250_000, lr=2e-4, beta1=0.5, beta2=0.999, ema_start=50_000,
                          ema_decay=0.9999, save_every=2000, image_every=2000, log_every=100),
    )
