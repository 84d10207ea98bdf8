"""Train (or verify) the coherence classifiers into a classifier directory and print their test accuracy.

    python -m mmali_tf.tools.train_classifiers --workdir=runs/x          # the datasets of a run's config
    python -m mmali_tf.tools.train_classifiers --datasets=mnist:mnist,svhn:svhn --data_dir=DATA --out_dir=classifiers
    python -m mmali_tf.tools.train_classifiers --datasets=image:image:photo,image:image:sketch --data_dir=DATA ...

Give exactly one of --workdir (a run directory: its config.json names the datasets and the data directory; the
classifiers go to <workdir>/classifiers unless --out_dir) and --datasets (dataset:kind pairs, or
dataset:kind:modality for datasets whose files are named after the modality, such as ``image``: a small CNN sized
for that modality's images and labels; then --out_dir is required). Each classifier is identified by network kind,
dataset, the train split's fingerprint and the protocol;
existing ones are verified against their sha256 (a mismatch is refused) unless --retrain. See
mmali_tf/evaluation/classifiers.py for the architectures and the clean/reference protocols.
"""

from __future__ import annotations

import os

from absl import flags

from mmali_tf import cli
from mmali_tf.config import ExperimentConfig
from mmali_tf.data.datasets import DATASETS, data_label, load_dataset
from mmali_tf.errors import ConfigError
from mmali_tf.evaluation import classifiers as clf
from mmali_tf.evaluation.classifiers import KINDS as CLASSIFIER_KINDS
from mmali_tf.tools import flag_checks

F = flags.FLAGS


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_string("workdir", None, "Take the datasets (and data_dir) from <workdir>/config.json.")
    flags.DEFINE_list("datasets", [], "Instead of --workdir: dataset:kind pairs, e.g. mnist:mnist,svhn:svhn, or "
                      "dataset:kind:modality for per-modality files, e.g. image:image:photo.")
    flags.DEFINE_string("data_dir", None, "Raw data directory (default: the run's, else $MMALI_DATA_DIR).")
    flags.DEFINE_string("out_dir", None, "Classifier directory (default <workdir>/classifiers).")
    flags.DEFINE_enum("protocol", "clean", ["clean", "reference"], "Selection protocol (see the module docstring).")
    flags.DEFINE_integer("epochs", 0, "Training epochs; 0 = per-kind defaults.", lower_bound=0)
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, dropout and batch order.", lower_bound=0)
    flags.DEFINE_bool("retrain", False, "Train again even if a classifier exists (overwrites it).")
    flag_checks.require("workdir", run_config)
    flag_checks.require("datasets", parse_datasets)
    flag_checks.require_existing_dir("data_dir")
    flag_checks.require_output_dir("out_dir")
    flags.register_multi_flags_validator(["workdir", "datasets", "out_dir"], _check_choice)


def run_config(workdir: str) -> ExperimentConfig:
    """The config of the run directory ``workdir``; :class:`ConfigError` if it has none."""
    return ExperimentConfig.from_json_file(os.path.join(workdir, "config.json"))


def parse_datasets(items) -> list[tuple[str, str, str | None]]:
    """``["mnist:mnist", "image:image:photo", ...]`` -> ``[("mnist", "mnist", None), ("image", "image", "photo"),
    ...]``; :class:`ConfigError` for an entry that is not ``dataset:kind`` with a known dataset and a network kind
    with a classifier, plus ``:modality`` exactly when the dataset's files are named after the modality."""
    out = []
    for item in items:
        dataset, _, rest = item.partition(":")
        kind, _, modality = rest.partition(":")
        if dataset not in DATASETS or kind not in CLASSIFIER_KINDS:
            raise ConfigError(f"entry {item!r} must be dataset:kind with dataset one of "
                              f"{', '.join(DATASETS.names())} and kind one with a coherence classifier "
                              f"({', '.join(CLASSIFIER_KINDS)})")
        per_modality = DATASETS.get(dataset).per_modality
        if per_modality and not modality:
            raise ConfigError(f"entry {item!r}: the {dataset} dataset's files are named after the modality; write "
                              f"{dataset}:{kind}:NAME (NAME_train.npz, NAME_test.npz)")
        if modality and not per_modality:
            raise ConfigError(f"entry {item!r}: the {dataset} dataset takes no modality name; write {dataset}:{kind}")
        entry = (dataset, kind, modality or None)
        if entry not in out:
            out.append(entry)
    return out


def _check_choice(values) -> bool:
    if bool(values["workdir"]) == bool(values["datasets"]):
        raise flags.ValidationError("give exactly one of --workdir and --datasets")
    if values["datasets"] and not values["out_dir"]:
        raise flags.ValidationError("--datasets needs --out_dir")
    return True


def targets() -> tuple[list[tuple[str, str, str | None]], str | None, str]:
    """The (dataset, kind, modality or None) entries to train, the data directory and the classifier directory of
    the flags."""
    if F.workdir:
        config = run_config(F.workdir)
        # Kinds without a classifier (feature kinds) have nothing to train.
        pairs = parse_datasets(f"{spec.dataset}:{spec.kind}"
                               + (f":{spec.name}" if DATASETS.get(spec.dataset).per_modality else "")
                               for spec in config.model.modalities if spec.kind in CLASSIFIER_KINDS)
        if not pairs:
            raise ConfigError(f"no modality of {F.workdir} has a kind with a coherence classifier")
        return pairs, F.data_dir or config.data.data_dir, F.out_dir or os.path.join(F.workdir, "classifiers")
    return parse_datasets(F.datasets), F.data_dir, F.out_dir


def main(argv) -> None:
    del argv
    pairs, data_dir, out_dir = targets()
    settings = clf.TrainSettings(epochs=F.epochs or None, seed=F.seed)
    rows = []
    loaded = [(load_dataset(dataset, "train", data_dir, modality=modality),
               load_dataset(dataset, "test", data_dir, modality=modality)) for dataset, _, modality in pairs]
    for split in (split for both in loaded for split in both):
        if split.labels is None:
            raise ConfigError(f"a coherence classifier needs labels; {split.source} has none")
    for (dataset, kind, modality), (train, test) in zip(pairs, loaded):  # every file read before any is written
        _, info = clf.get_classifier(kind, dataset, train, test, out_dir, F.protocol, settings, retrain=F.retrain,
                                     print_fn=lambda s: print(s, flush=True), modality=modality)
        label = data_label(dataset, train.source) + (f" ({modality})" if modality else "")
        rows.append((dataset, kind, label, info))
    print("\n| classifier | data | protocol | test accuracy | epochs (selected) | sha256 |")
    print("|---|---|---|---:|---|---|")
    for dataset, kind, label, info in rows:
        print(f"| {os.path.basename(info['path'])} | {label} | {info['protocol']} | "
              f"{100 * info['test_accuracy']:.2f}% | {info['epochs']} ({info['selected_epoch']}) | "
              f"`{info['sha256'][:16]}` |")


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
