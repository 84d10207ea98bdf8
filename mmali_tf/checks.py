"""Registry membership of a config: the checks that need the kind, dataset and joint-architecture registries.

:meth:`mmali_tf.config.ExperimentConfig.validate` checks values only, so building and validating a config imports
neither TensorFlow nor the data loaders. :func:`check_registered` adds what needs the registries (and through them
the networks and data modules); it is called where a run starts: training, evaluation, export and the tools that
build a config from a user's flags (all through :func:`mmali_tf.cli.config_from_flags` or
:func:`mmali_tf.training.run`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mmali_tf import kinds
from mmali_tf.config import ExperimentConfig, ModalitySpec
from mmali_tf.data.datasets import DATASETS
from mmali_tf.errors import ConfigError
from mmali_tf.networks.registry import JOINT_ARCHITECTURES


def check_registered(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` itself if every name it takes from a registry is registered and fits, else ``ConfigError``.

    Checked: each modality's kind and dataset are registered, the kind accepts the modality's fields, the dataset
    delivers what the kind models (pixels or feature vectors), all datasets pair their examples the same way, and
    the joint architecture is registered. Call it on a validated config (value checks come first).
    """
    check_modalities(config.model.modalities)
    architecture = config.model.joint_architecture
    if architecture not in JOINT_ARCHITECTURES:
        raise ConfigError(f"joint_architecture must be one of {', '.join(JOINT_ARCHITECTURES)}, got "
                          f"{architecture!r}")
    return config


def check_modalities(modalities: Sequence[ModalitySpec]) -> None:
    """``ConfigError`` unless each modality's kind and dataset are registered and fit each other, and all datasets
    pair their examples the same way (by label or by row)."""
    pairings = {}
    for spec in modalities:
        if spec.kind not in kinds.KINDS:
            raise ConfigError(f"modality {spec.name!r}: unknown network kind {spec.kind!r} (choose from "
                              f"{', '.join(kinds.KINDS.names())})")
        if spec.dataset not in DATASETS:
            raise ConfigError(f"modality {spec.name!r}: unknown dataset {spec.dataset!r} (choose from "
                              f"{', '.join(DATASETS.names())})")
        kind, dataset = kinds.KINDS.get(spec.kind), DATASETS.get(spec.dataset)
        kind.check(spec)
        if dataset.examples != kind.examples:
            raise ConfigError(f"modality {spec.name!r}: dataset {spec.dataset!r} holds {dataset.examples}, but "
                              f"kind {spec.kind!r} models {kind.examples}")
        pairings.setdefault(dataset.pairing, spec.dataset)
    if len(pairings) > 1:
        raise ConfigError("datasets paired by label and datasets paired by row cannot be mixed: "
                          + ", ".join(f"{name} ({how})" for how, name in pairings.items()))
