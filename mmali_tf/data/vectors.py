"""The ``vector`` dataset: a user's own feature vectors, one file per modality and split, paired by row.

Files, for a modality named ``NAME`` (its ``--modalities`` name), in ``<data_dir>``:

==========================  ===============================================================================
``NAME_train.npy``          float ``[N, D]`` (float16/32/64; read as float32), row ``t`` = tuple ``t``
``NAME_test.npy``           the same for the test split
==========================  ===============================================================================

or ``NAME_<split>.npz`` holding ``features`` (as above) and optionally ``labels`` (integer ``[N]``, >= 0; recorded
with the data, not used by the model). The ``.npy`` file wins when both exist. Row ``t`` of every modality's file
is one tuple, so all modalities of a split need the same number of rows. Values are modelled as they are (no
normalisation, as the authors model CUB's features); standardise them beforehand if their scales differ wildly. A
``STANDIN.txt`` in ``<data_dir>`` marks synthetic data (reports then say "stand-in"). Files are read without pickles
(``allow_pickle=False``); every problem is one ``DataError`` line naming the file.

``python -m mmali_tf.tools.cub_to_vectors`` writes the CUB features (or the CUB stand-in) in this layout, the
README's example.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from mmali_tf.constants import FEATURES
from mmali_tf.data.dataset import INDEX, Dataset
from mmali_tf.data.sources import (DATA_DIR_ENV, STANDIN_MARKER, Split, _cached, _check_split, _file_key,
                                   resolve_data_dir)
from mmali_tf.data.validation import FEATURE_LAYOUT, check_file, check_labels, check_rows
from mmali_tf.errors import ConfigError, DataError


def vector_paths(data_dir: str, modality: str, split: str) -> tuple[str, str]:
    """The ``.npy`` and ``.npz`` candidates of one modality's split."""
    stem = os.path.join(data_dir, f"{modality}_{split}")
    return stem + ".npy", stem + ".npz"


def _read(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    check_file(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # ValueError (pickled or truncated), OSError, BadZipFile ...
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        if "features" not in loaded.files:
            raise DataError(f"{path}: expected an array 'features' (and optionally 'labels'), found "
                            f"{sorted(loaded.files)}")
        return loaded["features"], (loaded["labels"] if "labels" in loaded.files else None)


def check_vectors(features, labels, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 C-order ``[N, D]`` features (N, D > 0) and int64 labels (or None), validated; errors name ``what``."""
    features = np.asarray(features)
    if not np.issubdtype(features.dtype, np.floating):
        raise DataError(f"{what}: expected float features, got dtype {features.dtype}")
    features = check_rows(features, what, rank=2, name="feature vectors", layout=FEATURE_LAYOUT)
    if features.shape[1] == 0:
        raise DataError(f"{what}: expected feature vectors of shape {FEATURE_LAYOUT} with D > 0, got shape "
                        f"{features.shape}")
    features = np.ascontiguousarray(features, dtype=np.float32)
    if not np.all(np.isfinite(features)):
        raise DataError(f"{what}: contains NaN or infinite values (after conversion to float32)")
    labels = check_labels(labels, len(features), what, required=False, name="feature vectors")
    if labels is not None:
        if int(labels.min()) < 0:
            raise DataError(f"{what}: labels must be non-negative, found {int(labels.min())}")
        labels = np.ascontiguousarray(labels, dtype=np.int64)
    return features, labels


def _split(path: str, split: str, standin: bool) -> Split:
    features, labels = check_vectors(*_read(path), what=path)
    digest = hashlib.sha256(features.data)
    if labels is not None:
        digest.update(labels.data)
    for array in (features, labels):
        if array is not None:
            array.setflags(write=False)
    index = np.arange(len(features), dtype=np.int64)
    index.setflags(write=False)
    origin = "vector stand-in (synthetic)" if standin else "vector"
    return Split(examples=features, labels=labels, source=f"{origin}/{split} from {path}",
                 fingerprint=digest.hexdigest()[:16], tuple_index=index)


def load_vectors(data_dir: str | None, split: str, *, modality: str | None = None, **_) -> Split:
    """The vectors of ``modality`` for ``split`` (see the module docstring); ``data_dir`` None: ``$MMALI_DATA_DIR``."""
    _check_split(split)
    if not modality:
        raise ConfigError("the vector dataset needs the modality's name (its files are NAME_train.npy, ...)")
    resolved = resolve_data_dir(data_dir)
    if resolved is None:
        raise DataError(f"no data directory for the vector files of {modality!r}: pass --data_dir or set "
                        f"${DATA_DIR_ENV}")
    npy, npz = vector_paths(resolved, modality, split)
    path = npy if os.path.isfile(npy) else npz if os.path.isfile(npz) else None
    if path is None:
        raise DataError(f"no vector files for modality {modality!r} in {resolved}: expected {os.path.basename(npy)} "
                        f"or {os.path.basename(npz)}")
    standin = os.path.isfile(os.path.join(resolved, STANDIN_MARKER))
    return _cached(("vector", split, standin) + _file_key(path), lambda: _split(path, split, standin))


VECTOR = Dataset(name="vector", description="your feature vectors: <data_dir>/<name>_{train,test}.npy (or .npz)",
                 load=load_vectors, examples=FEATURES, pairing=INDEX, display="vector files",
                 standin_display="vector stand-in", per_modality=True,
                 standin_note="vector stand-in: synthetic feature vectors; figures describe the stand-in only.")
