"""Train (or verify) the coherence classifiers into a classifier directory and print their test accuracy.

    python tools/train_classifiers.py --workdir=runs/x                      # the datasets of a run's config
    python tools/train_classifiers.py --datasets=mnist:mnist,svhn:svhn --data_dir=DATA --out_dir=classifiers

Each classifier is identified by network kind, dataset, the train split's fingerprint and the protocol; existing
ones are verified against their sha256 (a mismatch is refused) unless --retrain. See
mmali_tf/evaluation/classifiers.py for the architectures and the clean/reference protocols.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmali_tf import flags_common  # noqa: E402  (quiet TF before it is imported)

from absl import flags  # noqa: E402

from mmali_tf.errors import ConfigError  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("workdir", None, "Take the datasets (and data_dir) from <workdir>/config.json.")
flags.DEFINE_list("datasets", [], "Instead of --workdir: dataset:kind pairs, e.g. mnist:mnist,svhn:svhn.")
flags.DEFINE_string("data_dir", None, "Raw data directory (default: the run's, else $MMALI_DATA_DIR).")
flags.DEFINE_string("out_dir", None, "Classifier directory (default <workdir>/classifiers).")
flags.DEFINE_enum("protocol", "clean", ["clean", "reference"], "Selection protocol (see the module docstring).")
flags.DEFINE_integer("epochs", 0, "Training epochs; 0 = per-kind defaults.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of initialisation, dropout and batch order.", lower_bound=0)
flags.DEFINE_bool("retrain", False, "Train again even if a classifier exists (overwrites it).")


def targets() -> tuple[list[tuple[str, str]], str | None, str]:
    if F.workdir:
        from mmali_tf.config import ExperimentConfig

        from mmali_tf.evaluation.classifiers import KINDS as CLASSIFIER_KINDS

        config = ExperimentConfig.from_json_file(os.path.join(F.workdir, "config.json"))
        pairs = []
        for spec in config.model.modalities:  # kinds without a classifier (feature kinds) have nothing to train
            if spec.kind in CLASSIFIER_KINDS and (spec.dataset, spec.kind) not in pairs:
                pairs.append((spec.dataset, spec.kind))
        if not pairs:
            raise ConfigError(f"no modality of {F.workdir} has a kind with a coherence classifier")
        return pairs, F.data_dir or config.data.data_dir, F.out_dir or os.path.join(F.workdir, "classifiers")
    if not F.datasets:
        raise ConfigError("give --workdir or --datasets")
    if not F.out_dir:
        raise ConfigError("--datasets needs --out_dir")
    pairs = []
    for item in F.datasets:
        dataset, _, kind = item.partition(":")
        if not dataset or not kind:
            raise ConfigError(f"--datasets entry {item!r} must be dataset:kind")
        pairs.append((dataset, kind))
    return pairs, F.data_dir, F.out_dir


def main(argv) -> None:
    del argv
    from mmali_tf.data import load_dataset
    from mmali_tf.evaluation import classifiers as clf
    from mmali_tf.evaluation.report import data_label

    pairs, data_dir, out_dir = targets()
    settings = clf.TrainSettings(epochs=F.epochs or None, seed=F.seed)
    rows = []
    for dataset, kind in pairs:
        train = load_dataset(dataset, "train", data_dir)
        test = load_dataset(dataset, "test", data_dir)
        _, info = clf.get_classifier(kind, dataset, train, test, out_dir, F.protocol, settings, retrain=F.retrain,
                                     print_fn=lambda s: print(s, flush=True))
        rows.append((dataset, kind, data_label(dataset, train.source), info))
    print("\n| classifier | data | protocol | test accuracy | epochs (selected) | sha256 |")
    print("|---|---|---|---:|---|---|")
    for dataset, kind, label, info in rows:
        print(f"| {os.path.basename(info['path'])} | {label} | {info['protocol']} | "
              f"{100 * info['test_accuracy']:.2f}% | {info['epochs']} ({info['selected_epoch']}) | "
              f"`{info['sha256'][:16]}` |")


if __name__ == "__main__":
    flags_common.run_main(main)
