"""From an experiment config to modality arrays, paired tuples and the training input pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from mmali_tf import kinds
from mmali_tf.config import ExperimentConfig, ModalitySpec
from mmali_tf.data import DATASETS, Split, load_dataset, pair_by_label, paired_batches
from mmali_tf.data.dataset import INDEX
from mmali_tf.data.pairing import pairing_summary as label_summary
from mmali_tf.data.unpaired import build_pools, pooled_batches
from mmali_tf.errors import ConfigError, DataError


def load_modality(spec: ModalitySpec, split: str, config: ExperimentConfig) -> Split:
    """Load one modality's split, rotated by its quarter turns, and check it fits the modality's networks."""
    d = config.data
    data = load_dataset(spec.dataset, split, d.data_dir, modality=spec.name, tfds_data_dir=d.tfds_data_dir,
                        download=d.download)
    examples = data.examples
    if spec.quarter_turns % 4:
        examples = np.ascontiguousarray(np.rot90(examples, k=spec.quarter_turns, axes=(1, 2)))
    expected = kinds.input_spec(spec)
    if tuple(examples.shape[1:]) != tuple(expected.shape) or examples.dtype != np.dtype(expected.dtype):
        hint = kinds.kind_of(spec).option_hint(spec, tuple(examples.shape[1:]), data.source)
        raise ConfigError(f"modality {spec.name!r}: dataset {spec.dataset!r} has {examples.dtype} examples of shape "
                          f"{examples.shape[1:]}, but network kind {spec.kind!r} expects {expected.dtype} "
                          f"{tuple(expected.shape)}{f' ({hint})' if hint else ''}")
    return dataclasses.replace(data, examples=examples)


def load_modalities(config: ExperimentConfig, split: str) -> dict[str, Split]:
    return {spec.name: load_modality(spec, split, config) for spec in config.model.modalities}


def pairing_mode(config: ExperimentConfig) -> str:
    """``"label"`` or ``"index"``: how the config's datasets pair their examples (validation makes them agree)."""
    return DATASETS.get(config.model.modalities[0].dataset).pairing


def make_pairs(config: ExperimentConfig, splits: dict[str, Split], split: str = "train") -> dict[str, np.ndarray]:
    """{name: int64 [T] example indices}: position t across the modalities is one tuple.

    Datasets paired by label: the authors' same-label matching (docs/authors_code.md, section 1.2; the test split
    uses their test pairing). Datasets paired by index: each split's own ``tuple_index``.
    """
    if pairing_mode(config) == INDEX:
        return index_pairs(splits)
    d = config.data
    use_all = d.use_all or split == "test"  # the reference's test pairing (docs/authors_code.md, section 1.2)
    return pair_by_label({n: s.labels for n, s in splits.items()}, data_multiplication=d.data_multiplication,
                          max_d=d.max_d, use_all=use_all, percentage=d.percentage if split == "train" else 1.0,
                          seed=d.seed if split == "train" else d.seed + 1)


def index_pairs(splits: dict[str, Split]) -> dict[str, np.ndarray]:
    """The tuples of datasets paired by index: every split's ``tuple_index``, which must all have one length."""
    counts = {n: len(s.tuple_index) for n, s in splits.items()}
    if len(set(counts.values())) != 1:
        raise DataError("modalities paired by row must have the same number of tuples, got "
                        + ", ".join(f"{n} {c:,}{_where(splits[n])}" for n, c in counts.items()))
    return {n: np.asarray(s.tuple_index, np.int64) for n, s in splits.items()}


def _where(split: Split) -> str:
    """`` (in <file>)`` for a split read from a file (its source says ``... from <path>``), else ""."""
    _, sep, path = split.source.partition(" from ")
    return f" (in {path})" if sep else ""


def pairing_summary(config: ExperimentConfig, pairs: dict[str, np.ndarray]) -> str:
    """One line about the tuples, e.g. "1,682,040 pairs (dm=30); distinct images per modality: ..." or
    "88,550 pairs by row; distinct examples per modality: caption 88,550 (each once), image 8,855 (each 10x)"."""
    if pairing_mode(config) != INDEX:
        return label_summary(pairs)
    names = list(pairs)
    total = len(pairs[names[0]])
    noun = "pairs" if len(names) == 2 else "tuples"
    parts = []
    for name in names:
        _, counts = np.unique(pairs[name], return_counts=True)
        uses = set(np.unique(counts).tolist())
        use = ("each once" if uses == {1} else f"each {uses.pop()}x") if len(uses) == 1 else "uneven use"
        parts.append(f"{name} {len(counts):,} ({use})")
    return f"{total:,} {noun} by row; distinct examples per modality: " + ", ".join(parts)


def unimodal_pools(config: ExperimentConfig, splits: dict[str, Split], pairs: dict[str, np.ndarray]):
    """(pools, unpaired) per modality when training with unpaired data, else None."""
    if not config.data.unpaired:
        return None
    return build_pools({n: len(s) for n, s in splits.items()}, pairs, dict(config.data.extra_unpaired))


def training_pipeline(config: ExperimentConfig, splits: dict[str, Split], pairs: dict[str, np.ndarray],
                      start_step: int, pools: dict[str, np.ndarray] | None = None) -> tf.data.Dataset:
    if pools is not None:
        return pooled_batches({n: s.examples for n, s in splits.items()}, pairs, pools,
                              batch_size=config.train.batch_size, seed=config.data.seed, start_step=start_step)
    return paired_batches({n: s.examples for n, s in splits.items()}, pairs, batch_size=config.train.batch_size,
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
