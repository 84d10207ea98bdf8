"""From an experiment config to modality arrays, paired tuples and the training input pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from mmali_tf.config import ExperimentConfig, ModalitySpec
from mmali_tf.data import Split, load_dataset, pair_by_label, paired_batches
from mmali_tf.data.unpaired import build_pools, pooled_batches
from mmali_tf.errors import ConfigError
from mmali_tf.networks.registry import IMAGE_SHAPES


def load_modality(spec: ModalitySpec, split: str, config: ExperimentConfig) -> Split:
    """Load one modality's split, rotated by its quarter turns, and check it fits the modality's networks."""
    d = config.data
    data = load_dataset(spec.dataset, split, d.data_dir, tfds_data_dir=d.tfds_data_dir, download=d.download)
    images = data.images
    if spec.quarter_turns % 4:
        images = np.ascontiguousarray(np.rot90(images, k=spec.quarter_turns, axes=(1, 2)))
    expected = IMAGE_SHAPES[spec.kind]
    if tuple(images.shape[1:]) != tuple(expected):
        raise ConfigError(f"modality {spec.name!r}: dataset {spec.dataset!r} has images of shape {images.shape[1:]}, "
                          f"but network kind {spec.kind!r} expects {expected}")
    return dataclasses.replace(data, images=images)


def load_modalities(config: ExperimentConfig, split: str) -> dict[str, Split]:
    return {spec.name: load_modality(spec, split, config) for spec in config.model.modalities}


def make_pairs(config: ExperimentConfig, splits: dict[str, Split], split: str = "train") -> dict[str, np.ndarray]:
    d = config.data
    use_all = d.use_all or split == "test"  # the reference's test pairing (docs/authors_code.md, section 1.2)
    return pair_by_label({n: s.labels for n, s in splits.items()}, data_multiplication=d.data_multiplication,
                          max_d=d.max_d, use_all=use_all, percentage=d.percentage if split == "train" else 1.0,
                          seed=d.seed if split == "train" else d.seed + 1)


def unimodal_pools(config: ExperimentConfig, splits: dict[str, Split], pairs: dict[str, np.ndarray]):
    """(pools, unpaired) per modality when training with unpaired data, else None."""
    if not config.data.unpaired:
        return None
    return build_pools({n: len(s.labels) for n, s in splits.items()}, pairs, dict(config.data.extra_unpaired))


def training_pipeline(config: ExperimentConfig, splits: dict[str, Split], pairs: dict[str, np.ndarray],
                      start_step: int, pools: dict[str, np.ndarray] | None = None) -> tf.data.Dataset:
    if pools is not None:
        return pooled_batches({n: s.images for n, s in splits.items()}, pairs, pools,
                              batch_size=config.train.batch_size, seed=config.data.seed, start_step=start_step)
    return paired_batches({n: s.images for n, s in splits.items()}, pairs, batch_size=config.train.batch_size,
                          seed=config.data.seed, start_step=start_step)


def replica_rows(dataset: tf.data.Dataset, first_replica: int, local_replicas: int,
                 num_replicas: int) -> tf.data.Dataset:
    """Per local replica, in order, its rows of each global batch of ``dataset``.

    Global replica ``r`` takes rows ``[r * b, (r + 1) * b)`` of every batch (``b = global batch / num_replicas``),
    so the replicas of one step together consume exactly the tuples of a single-replica step with the global batch;
    ``tf.distribute`` hands consecutive elements to consecutive local replicas.
    """
    def share(batch, replica):
        def rows(t):
            b = tf.shape(t)[0] // num_replicas
            return t[replica * b:(replica + 1) * b]
        return tf.nest.map_structure(rows, batch)

    def split(batch):
        return tf.data.Dataset.range(local_replicas).map(
            lambda j: share(batch, first_replica + tf.cast(j, tf.int32)))

    return dataset.flat_map(split).prefetch(tf.data.AUTOTUNE)
