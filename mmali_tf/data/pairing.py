"""Same-label pairing of M image modalities (reference ``rand_match_on_idx``, docs/authors_code.md section 1.2).

Given one label array per modality, build tuples of images that share a digit label:

1. stable-sort each modality's labels (``np.argsort(kind="stable")``, so ties keep the original index
   order; the reference used torch.sort, which is not guaranteed stable);
2. for each class ``l`` of the FIRST modality, in ascending order, let ``A_l^m`` be modality m's
   indices of class l in that order and
   ``n_l = min(min_m |A_l^m|, max_d)`` (``use_all=False``) or
   ``n_l = min_m int(|A_l^m| * percentage)`` (``use_all=True``, no ``max_d`` cap);
   keep only the first ``n_l`` of each list;
3. ``data_multiplication`` times: append, for EACH modality, an independent random permutation of its
   kept ``n_l`` indices. Position t across the modalities is one tuple.

So there are ``sum_l n_l * dm`` tuples, every used image appears exactly ``dm`` times per modality,
each time with uniformly random same-class partners. All randomness comes from
``np.random.default_rng(seed)``, consumed class by class, round by round, modality by modality
(in the mapping's order).

With genuine MNIST train and the SVHN train class counts this gives 56,068 distinct images per
modality and 1,682,040 pairs (dm = 30); MNIST test vs SVHN test with use_all=True gives 300,000.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from mmali_tf.errors import ConfigError, DataError


def pair_by_label(labels: Mapping[str, np.ndarray], *, data_multiplication: int = 30, max_d: int = 10000,
                  use_all: bool = False, percentage: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Same-label tuples across modalities: {name: int64 [T] indices into that modality's split}.

    As in the reference, ``percentage`` only takes effect with ``use_all=True``; with
    ``use_all=False`` every class keeps ``min(sizes, max_d)`` images whatever ``percentage`` says.
    """
    if len(labels) < 1:
        raise ConfigError("pair_by_label needs at least one modality")
    if int(data_multiplication) < 1:
        raise ConfigError(f"data_multiplication must be >= 1, got {data_multiplication}")
    if int(max_d) < 1:
        raise ConfigError(f"max_d must be >= 1, got {max_d}")
    if not 0.0 < float(percentage) <= 1.0:
        raise ConfigError(f"percentage must be in (0, 1], got {percentage}")
    names = list(labels)
    arrays = {}
    for name in names:
        lab = np.asarray(labels[name])
        if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
            raise DataError(f"labels of modality {name!r}: expected a 1-D integer array, got {lab.dtype} {lab.shape}")
        arrays[name] = lab.astype(np.int64, copy=False)

    # Per modality: indices in stable label-sorted order, and where each class's run starts/ends.
    order = {m: np.argsort(arrays[m], kind="stable") for m in names}
    sorted_labels = {m: arrays[m][order[m]] for m in names}

    def members(m: str, cls: int) -> np.ndarray:
        lo = np.searchsorted(sorted_labels[m], cls, side="left")
        hi = np.searchsorted(sorted_labels[m], cls, side="right")
        return order[m][lo:hi]

    rng = np.random.default_rng(seed)
    dm = int(data_multiplication)
    chunks: dict[str, list[np.ndarray]] = {m: [] for m in names}
    for cls in np.unique(arrays[names[0]]):  # ascending
        per_mod = {m: members(m, int(cls)) for m in names}
        if use_all:
            n = min(int(len(per_mod[m]) * float(percentage)) for m in names)
        else:
            n = min(min(len(per_mod[m]) for m in names), int(max_d))
        if n <= 0:
            continue
        kept = {m: per_mod[m][:n] for m in names}
        for _ in range(dm):
            for m in names:
                chunks[m].append(kept[m][rng.permutation(n)])
    return {m: (np.concatenate(chunks[m]) if chunks[m] else np.zeros(0, np.int64)).astype(np.int64)
            for m in names}


def pairing_summary(pairs: Mapping[str, np.ndarray]) -> str:
    """One line, e.g. "1,682,040 pairs (dm=30); distinct images per modality: mnist 56,068, svhn 56,068"."""
    names = list(pairs)
    if not names:
        return "0 pairs"
    total = len(pairs[names[0]])
    noun = "pairs" if len(names) == 2 else "tuples"
    distinct = {}
    multiplicities = set()
    for m in names:
        _, counts = np.unique(np.asarray(pairs[m]), return_counts=True)
        distinct[m] = len(counts)
        multiplicities.update(np.unique(counts).tolist())
    dm = f"dm={multiplicities.pop()}" if len(multiplicities) == 1 else "uneven multiplicity"
    per = ", ".join(f"{m} {distinct[m]:,}" for m in names)
    return f"{total:,} {noun} ({dm}); distinct images per modality: {per}"
