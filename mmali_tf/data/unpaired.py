"""Unimodal pools for training with partially paired data (the paper's semi-supervised setting, Table 2).

The authors' released code builds per-modality "universal" loaders (paired images plus ``n_extra`` unpaired ones)
and never reads them (docs/authors_code.md, section 1.3). Here they are real:

- the **pool** of modality m = every image of m that occurs in a paired tuple, plus its unpaired images (all the
  images of m's split that were not paired, or only the first ``extra`` of them, in index order as the
  reference's ``np.setdiff1d``);
- terms that involve one modality only draw that modality's batch from its pool (``d_unimodal``, ``g_unimodal``);
- the joint critic's negatives are independent per-modality pool draws (``d_marginal``): a sample of the product
  of the marginals;
- terms that need a paired tuple use paired batches (``d_joint``, ``g_joint``).

Every stream is a pure function of (seed, step), as for :func:`mmali_tf.data.pipeline.paired_batches`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from mmali_tf.data.pipeline import _step_indices, check_examples, to_model_input
from mmali_tf.errors import ConfigError

PAIRED_CALLS = ("d_joint", "g_joint")
POOL_CALLS = ("d_unimodal", "g_unimodal", "d_marginal")
ALL = -1  # "every unpaired image"


def unpaired_indices(num_images: int, paired: np.ndarray, extra: int = ALL) -> np.ndarray:
    """Indices of the images not used by any paired tuple, in index order; the first ``extra`` if extra >= 0."""
    rest = np.setdiff1d(np.arange(num_images), np.unique(paired))
    return rest if extra == ALL else rest[: int(extra)]


def build_pools(num_images: Mapping[str, int], pairs: Mapping[str, np.ndarray],
                extra: Mapping[str, int] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per modality: (pool indices, unpaired indices). The pool is the paired images (once each) + unpaired ones."""
    extra = dict(extra or {})
    unknown = set(extra) - set(pairs)
    if unknown:
        raise ConfigError(f"extra unpaired counts given for unknown modalities {sorted(unknown)}")
    pools, unpaired = {}, {}
    for name, idx in pairs.items():
        count = extra.get(name, ALL)
        if count < ALL:
            raise ConfigError(f"extra unpaired count of {name!r} must be >= 0 or 'all', got {count}")
        unpaired[name] = unpaired_indices(num_images[name], idx, count)
        pools[name] = np.concatenate([np.unique(idx), unpaired[name]]).astype(np.int64)
    return pools, unpaired


def pools_summary(pairs: Mapping[str, np.ndarray], pools: Mapping[str, np.ndarray],
                  unpaired: Mapping[str, np.ndarray]) -> str:
    num_tuples = len(next(iter(pairs.values())))
    parts = [f"{n}: {len(np.unique(pairs[n])):,} paired + {len(unpaired[n]):,} unpaired = {len(pools[n]):,}"
             for n in pairs]
    return f"{num_tuples:,} paired tuples; unimodal pools: " + "; ".join(parts)


def pooled_batches(images: Mapping[str, np.ndarray], pairs: Mapping[str, np.ndarray],
                   pools: Mapping[str, np.ndarray], *, batch_size: int, seed: int,
                   start_step: int = 0) -> tf.data.Dataset:
    """Infinite dataset of ``{call: {modality: float32 [B, ...]}}`` with paired calls from ``pairs`` and
    unimodal calls from each modality's ``pools`` (independent streams, one per modality)."""
    names = list(pairs)
    arrays = {m: check_examples(m, images[m]) for m in names}
    b, seed, start_step = int(batch_size), int(seed), int(start_step)
    num_tuples = len(pairs[names[0]])
    pair_index = {m: np.asarray(pairs[m], np.int64) for m in names}
    pool_index = {m: np.asarray(pools[m], np.int64) for m in names}
    for m in names:
        if len(pool_index[m]) == 0:
            raise ConfigError(f"the unimodal pool of {m!r} is empty")

    def generate():
        paired = _step_indices(num_tuples, seed, start_step, len(PAIRED_CALLS) * b)
        # Pool streams get their own seeds, distinct from the paired stream's and from each other.
        pooled = [_step_indices(len(pool_index[m]), seed * 1000 + 1 + i, start_step, len(POOL_CALLS) * b)
                  for i, m in enumerate(names)]
        while True:
            tuple_ids = next(paired)
            yield (tuple(pair_index[m][tuple_ids].reshape(len(PAIRED_CALLS), b) for m in names)
                   + tuple(pool_index[m][next(stream)].reshape(len(POOL_CALLS), b)
                           for m, stream in zip(names, pooled)))

    signature = (tuple(tf.TensorSpec([len(PAIRED_CALLS), b], tf.int64) for _ in names)
                 + tuple(tf.TensorSpec([len(POOL_CALLS), b], tf.int64) for _ in names))
    tables = [tf.convert_to_tensor(arrays[m]) for m in names]

    def gather(*idx):
        out = {c: {} for c in PAIRED_CALLS + POOL_CALLS}
        for calls, ids in ((PAIRED_CALLS, idx[: len(names)]), (POOL_CALLS, idx[len(names):])):
            for m, table, i in zip(names, tables, ids):
                batch = to_model_input(tf.gather(table, i))
                for k, call in enumerate(calls):
                    out[call][m] = batch[k]
        return out

    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
