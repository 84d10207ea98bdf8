"""Checks every dataset format shares: the file is not empty, the examples have the expected rank and at least one
row, and labels, where the pairing needs them, are there as one integer per example.

Each loader reads its own format and calls these on what it read, so every format refuses the same problems with one
:class:`~mmali_tf.errors.DataError` line that names the file (or origin) and says what is wrong. :func:`check_split`
applies them once more to whatever a registered loader returns (``mmali_tf.data.datasets.load_dataset`` calls it), so
a new format gets the rank, row and label checks without code of its own.

Only numpy; nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from mmali_tf.constants import PIXELS
from mmali_tf.data.dataset import INDEX, LABEL
from mmali_tf.errors import DataError

if TYPE_CHECKING:  # annotations only: sources imports this module
    from mmali_tf.data.dataset import Dataset
    from mmali_tf.data.sources import Split

IMAGE_LAYOUT = "[N, H, W, C]"
FEATURE_LAYOUT = "[N, D]"


def check_file(path: str) -> None:
    """``DataError`` unless ``path`` is a regular file holding at least one byte (an empty file is what an
    interrupted copy or download leaves, and every reader would describe it differently)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a regular file")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: empty file (0 bytes)")


def check_rows(array, what: str, *, rank: int, name: str = "examples", layout: str | None = None) -> np.ndarray:
    """``array`` as a numpy array, after checking that it has rank ``rank`` and at least one row (N > 0).

    ``what`` names the file in the error, ``name`` the rows (``"images"``, ``"feature vectors"``) and ``layout`` the
    expected shape (e.g. ``"[N, H, W, C]"``).
    """
    array = np.asarray(array)
    layout = layout or "[N" + ", ..." * (rank > 1) + "]"
    if array.ndim != rank:
        raise DataError(f"{what}: expected {name} of shape {layout} (rank {rank}), got shape {array.shape}")
    if array.shape[0] == 0:
        raise DataError(f"{what}: contains no {name} (shape {array.shape})")
    return array


def check_labels(labels, num_examples: int, what: str, *, required: bool, why: str = "",
                 name: str = "examples") -> np.ndarray | None:
    """``labels`` as a 1-D integer numpy array of ``num_examples`` entries, or None when there are none and none are
    ``required``; ``why`` says what needs them (e.g. "dataset 'mnist' pairs its examples by label")."""
    if labels is None:
        if required:
            raise DataError(f"{what}: has no labels, but {why or 'they are required'}")
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{what}: expected a 1-D integer label array, got {labels.dtype} {labels.shape}")
    if labels.shape[0] != num_examples:
        raise DataError(f"{what}: {num_examples} {name} but {labels.shape[0]} labels")
    return labels


def check_split(split: Split, dataset: Dataset) -> Split:
    """``split`` (what ``dataset``'s loader returned) after the checks every format shares: examples of the rank its
    kind of examples has (images ``[N, H, W, C]``, features ``[N, D]``) with N > 0; labels of length N, required
    when the dataset pairs by label; a non-empty 1-D integer ``tuple_index`` into the examples when it pairs by row.
    Errors name ``split.source``, which says which file the split came from."""
    what = split.source
    name, rank, layout = (("images", 4, IMAGE_LAYOUT) if dataset.examples == PIXELS
                          else ("feature vectors", 2, FEATURE_LAYOUT))
    examples = check_rows(split.examples, what, rank=rank, name=name, layout=layout)
    check_labels(split.labels, examples.shape[0], what, required=dataset.pairing == LABEL,
                 why=f"dataset {dataset.name!r} pairs its examples by label", name=name)
    if dataset.pairing == INDEX:
        index = split.tuple_index
        if index is None:
            raise DataError(f"{what}: has no tuple index, but dataset {dataset.name!r} pairs its examples by row")
        index = np.asarray(index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer) or index.shape[0] == 0:
            raise DataError(f"{what}: expected a non-empty 1-D integer tuple index, got {index.dtype} {index.shape}")
        if int(index.min()) < 0 or int(index.max()) >= examples.shape[0]:
            raise DataError(f"{what}: tuple index must lie in [0, {examples.shape[0]}), found "
                            f"[{int(index.min())}, {int(index.max())}]")
    return split
