"""Train MMALI: ``python -m mmali_tf.train --flagfile=flags/<experiment>.cfg --workdir=runs/x``.

Running the same command again resumes from the last checkpoint in ``--workdir``.
"""

from __future__ import annotations

from mmali_tf import flags_common  # noqa: F401  (quiet TF before it is imported)

from absl import flags, logging  # noqa: E402

from mmali_tf import kinds  # noqa: E402
from mmali_tf.config import (DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig,  # noqa: E402
                             TrainConfig)
from mmali_tf.data.datasets import DATASETS  # noqa: E402
from mmali_tf.errors import ConfigError  # noqa: E402
from mmali_tf.networks.registry import JOINT_ARCHITECTURE_REGISTRY  # noqa: E402


def modalities_help() -> str:
    """The ``--modalities`` help text, from the kind and dataset registries."""
    return ("Modalities as name:dataset:kind[:quarter_turns[:rec_weight]]; datasets: "
            f"{DATASETS.help_text()}; kinds (networks): {kinds.KINDS.help_text()}.")


F = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run directory (config, checkpoints, TensorBoard, samples).", required=True)
flags.DEFINE_string("name", "mmali", "Experiment name recorded in the config.")
# Data.
flags.DEFINE_string("data_dir", None, "Data directory: mnist.npz or IDX files, SVHN *_32x32.mat, cub/{train,test}/ "
                    "(CUB features), NAME_{train,test}.npy (vector files).")
flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory to read prepared datasets from.")
flags.DEFINE_bool("download", False, "Let TFDS download missing datasets (needs internet).")
flags.DEFINE_list("modalities", ["mnist:mnist:mnist", "svhn:svhn:svhn"], modalities_help())
flags.DEFINE_multi_string("modality_option", [], kinds.modality_option_help())
flags.DEFINE_integer("data_multiplication", 30, "Pairing repetitions per image (reference dm).", lower_bound=1)
flags.DEFINE_integer("max_d", 10000, "Per-class cap when not --use_all.", lower_bound=1)
flags.DEFINE_bool("use_all", True, "Reference pairing mode (docs/authors_code.md, section 1.2).")
flags.DEFINE_float("paired_fraction", 1.0, "Fraction of each class that is paired (the reference's --percentage).",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_alias("percentage", "paired_fraction")
flags.DEFINE_bool("unpaired", False, "Train the unimodal terms on per-modality pools of paired + unpaired images and "
                  "draw the joint critic's negatives from them; off = the authors' code (paired batches only).")
flags.DEFINE_list("extra_unpaired", [], "Per-modality limits on unpaired images, name:count or name:all "
                  "(default all of them), e.g. mnist:all,svhn:10000.")
flags.DEFINE_integer("pairing_seed", 0, "Seed of the pairing and of the batch order.", lower_bound=0)
# Model.
flags.DEFINE_integer("latent_dim", 20, "Latent size (style + content).", lower_bound=1)
flags.DEFINE_integer("style_dim", 10, "Style (private) part of the latent.", lower_bound=0)
flags.DEFINE_enum("discriminator", "factorized", ["factorized", "joint"],
                  "MMALI's factorized discriminators or the single (M+1)-way joint baseline.")
flags.DEFINE_enum("joint_architecture", "dot", list(JOINT_ARCHITECTURE_REGISTRY.names()),
                  f"Joint q(X) vs prod q(x_m) discriminator: {JOINT_ARCHITECTURE_REGISTRY.help_text()}.")
# Loss.
flags.DEFINE_float("lambda_unimodal", 1.0, "Weight of the unimodal adversarial generator terms.", lower_bound=0.0)
flags.DEFINE_float("lambda_x_rec", 0.0, "Image reconstruction weight.", lower_bound=0.0)
flags.DEFINE_float("lambda_s_rec", 0.0, "Style cycle weight.", lower_bound=0.0)
flags.DEFINE_float("lambda_c_rec", 0.0, "Content cycle weight.", lower_bound=0.0)
flags.DEFINE_bool("joint_rec", False, "Reconstruction/content cycle through the geometric-mean joint posterior.")
# Training.
flags.DEFINE_integer("batch_size", 64, "Global batch size of each of the 4 batches per iteration.", lower_bound=1)
flags.DEFINE_integer("max_iter", 250_000, "Training iterations (D step + G step).", lower_bound=1)
flags.DEFINE_float("lr", 2e-4, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_float("beta1", 0.5, "Adam beta1.")
flags.DEFINE_float("beta2", 0.999, "Adam beta2.")
flags.DEFINE_float("epsilon", 1e-8, "Adam epsilon (PyTorch default).")
flags.DEFINE_integer("ema_start", 50_000, "EMA is a copy up to this iteration.", lower_bound=0)
flags.DEFINE_float("ema_decay", 0.9999, "EMA decay after ema_start.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("seed", 0, "Seed of weight init and training noise.", lower_bound=0)
flags.DEFINE_integer("save_every", 2000, "Checkpoint interval (steps).", lower_bound=1)
flags.DEFINE_integer("log_every", 100, "Console/TensorBoard scalar interval (steps).", lower_bound=1)
flags.DEFINE_integer("image_every", 2000, "Image-grid interval (steps).", lower_bound=1)
flags.DEFINE_integer("eval_every", 0, "Evaluation interval (steps); 0 = never during training.", lower_bound=0)
flags.DEFINE_bool("eval_at_end", False, "Evaluate the final model.")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints to keep.", lower_bound=1)
flags.DEFINE_bool("xla", None, "Compile the training step with XLA (--xla / --noxla). Unset: on with a GPU or TPU, "
                  "off on a CPU-only machine, where oneDNN's kernels are faster.")
flags.DEFINE_integer("intra_op_threads", -1, "Threads inside one TensorFlow op; 0 = TensorFlow's default, -1 = auto "
                     "(CPU-only without XLA: half the cores; else the default).", lower_bound=-1)
flags.DEFINE_integer("inter_op_threads", -1, "TensorFlow ops run side by side; 0 = TensorFlow's default, -1 = auto "
                     "(CPU-only without XLA: 2; else the default).", lower_bound=-1)
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_integer("num_devices", 1, "Replicas for --strategy=mirrored (logical CPUs without GPUs).",
                     lower_bound=1)
flags.DEFINE_integer("steps_per_execution", 1, "Training steps per tf.function call.", lower_bound=1)
flags.DEFINE_bool("deterministic", False, "Enable TF op determinism (slower).")


def parse_modality(text: str) -> ModalitySpec:
    parts = text.split(":")
    if not 3 <= len(parts) <= 5:
        raise ConfigError(f"--modalities entry {text!r} must be name:dataset:kind[:quarter_turns[:rec_weight]]")
    try:
        turns = int(parts[3]) if len(parts) > 3 else 0
        weight = float(parts[4]) if len(parts) > 4 else 1.0
    except ValueError as exc:
        raise ConfigError(f"--modalities entry {text!r}: {exc}") from exc
    return ModalitySpec(name=parts[0], dataset=parts[1], kind=parts[2], quarter_turns=turns, rec_weight=weight)


def parse_extra_unpaired(entries) -> tuple[tuple[str, int], ...]:
    out = []
    for entry in entries:
        name, _, count = entry.partition(":")
        if not name or not count or not (count == "all" or count.isdigit()):
            raise ConfigError(f"--extra_unpaired entry {entry!r} must be name:count or name:all")
        out.append((name, -1 if count == "all" else int(count)))
    return tuple(out)


def config_from_flags() -> ExperimentConfig:
    """The typed config of the flags, with "auto" execution settings resolved for this machine."""
    from mmali_tf import distribution

    xla, intra_op_threads, inter_op_threads = distribution.resolve_execution(F.xla, F.intra_op_threads,
                                                                             F.inter_op_threads)
    return ExperimentConfig(
        name=F.name,
        data=DataConfig(data_dir=F.data_dir, tfds_data_dir=F.tfds_data_dir, download=F.download,
                        data_multiplication=F.data_multiplication, max_d=F.max_d, use_all=F.use_all,
                        percentage=F.paired_fraction, seed=F.pairing_seed, unpaired=F.unpaired,
                        extra_unpaired=parse_extra_unpaired(F.extra_unpaired)),
        model=ModelConfig(modalities=kinds.apply_modality_options([parse_modality(m) for m in F.modalities],
                                                                  F.modality_option), latent_dim=F.latent_dim,
                          style_dim=F.style_dim, discriminator=F.discriminator,
                          joint_architecture=F.joint_architecture),
        loss=LossConfig(lambda_unimodal=F.lambda_unimodal, lambda_x_rec=F.lambda_x_rec, lambda_s_rec=F.lambda_s_rec,
                        lambda_c_rec=F.lambda_c_rec, joint_rec=F.joint_rec),
        train=TrainConfig(batch_size=F.batch_size, max_iter=F.max_iter, lr=F.lr, beta1=F.beta1, beta2=F.beta2,
                          epsilon=F.epsilon, ema_start=F.ema_start, ema_decay=F.ema_decay, seed=F.seed,
                          save_every=F.save_every, log_every=F.log_every, image_every=F.image_every,
                          eval_every=F.eval_every, eval_at_end=F.eval_at_end, keep_checkpoints=F.keep_checkpoints,
                          xla=xla, strategy=F.strategy, num_devices=F.num_devices,
                          steps_per_execution=F.steps_per_execution, intra_op_threads=intra_op_threads,
                          inter_op_threads=inter_op_threads, deterministic=F.deterministic),
    ).validate()


def main(argv) -> None:
    del argv
    config = config_from_flags()
    from mmali_tf import training

    logging.set_verbosity(logging.WARNING)
    result = training.run(config, F.workdir, print_fn=lambda s: print(s, flush=True),
                          evaluate_fn=_evaluator(config))
    print(f"done: step {result['step']}, checkpoint {result['checkpoint']}", flush=True)


def _evaluator(config: ExperimentConfig):
    """In-training evaluation (mmali_tf.evaluate) if requested."""
    if not (config.train.eval_every or config.train.eval_at_end):
        return None
    from mmali_tf import evaluate

    return lambda model, step: evaluate.evaluate_in_training(model, F.workdir, step)


def entry_point() -> None:
    flags_common.run_main(main)


if __name__ == "__main__":
    entry_point()
