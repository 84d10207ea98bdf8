"""Train MMALI: ``python -m mmali_tf.train --config=<preset or file.py> --workdir=runs/x [--config.<path>=value]``.

Running the same command again resumes from the last checkpoint in ``--workdir``. ``--dry_run`` prints the resolved
config. Presets: :mod:`mmali_tf.configs`; settings and their defaults: :mod:`mmali_tf.config` (``--helpfull``).
"""

from __future__ import annotations

from absl import flags, logging

from mmali_tf import cli, evaluate, training
from mmali_tf.errors import ConfigError

F = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run directory (config, checkpoints, TensorBoard, samples).")
cli.define_config_flags()


def main(argv) -> None:
    del argv
    config = cli.config_from_flags()  # training.run resolves the "auto" settings and says why
    cli.exit_if_dry_run(config)
    if not F.workdir:
        raise ConfigError("--workdir is required (the run directory)")
    logging.set_verbosity(logging.WARNING)
    result = training.run(config, F.workdir, print_fn=lambda s: print(s, flush=True),
                          evaluate_fn=_evaluator(config))
    where = result["checkpoint"] or "kept by the chief"
    print(f"done: step {result['step']}, checkpoint {where}, weights {result['weights_digest']}", flush=True)
    if result["sample_grids"]:
        print(f"sample grids (rows: original, reconstruction, translation from each other modality, joint "
              f"posterior, prior sample): {', '.join(result['sample_grids'])}", flush=True)


def _evaluator(config):
    """In-training evaluation (mmali_tf.evaluate) if requested."""
    if not (config.train.eval_every or config.train.eval_at_end):
        return None
    return lambda model, step: evaluate.evaluate_in_training(model, F.workdir, step)


def entry_point() -> None:
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
