"""The ``image`` dataset: a user's own images, one file per modality and split, paired by row.

Files, for a modality named ``NAME`` (its ``--modalities`` name), in ``<data_dir>``:

=====================  ==========================================================================================
``NAME_train.npz``     ``images`` uint8 ``[N, H, W, C]`` (pixels 0..255), row ``t`` = tuple ``t``; optionally
                       ``labels`` (integer ``[N]``, 0..K-1, the tuple's class: the same in every modality's row
                       ``t``) and ``stems`` (the file name of each row, recorded by the packing tool, not read)
``NAME_test.npz``      the same for the test split
=====================  ==========================================================================================

Row ``t`` of every modality's file is one tuple, so all modalities of a split need the same number of rows. H, W
and C must be the modality's ``height``, ``width`` and ``channels`` options (the training data check says which
options the files need). With labels in every file, evaluation runs the linear probe and coherence (a classifier
per modality); without, the CCA correlation between modalities. A ``STANDIN.txt`` in ``<data_dir>`` marks synthetic
data (reports then say "stand-in"). Files are read without pickles (``allow_pickle=False``); every problem is one
``DataError`` line naming the file.

``python -m mmali_tf.tools.pack_images`` writes a folder of image files (one sub-folder per modality, files matched
by name) in this layout.
"""

from __future__ import annotations

import hashlib
import os
import zipfile

import numpy as np

from mmali_tf.constants import PIXELS
from mmali_tf.data.dataset import INDEX, Dataset
from mmali_tf.data.sources import (DATA_DIR_ENV, SPLITS, STANDIN_MARKER, Split, _cached, _check_split, _file_key,
                                   resolve_data_dir)
from mmali_tf.errors import ConfigError, DataError

MAX_CLASSES = 10_000
"""Labels must lie in 0..MAX_CLASSES-1 (the classifiers and probes have one output per class up to the largest)."""


def image_path(data_dir: str, modality: str, split: str) -> str:
    """``<data_dir>/<modality>_<split>.npz``."""
    return os.path.join(data_dir, f"{modality}_{split}.npz")


def _read(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # ValueError (pickled or truncated), OSError, BadZipFile ...
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if isinstance(loaded, np.ndarray):
        raise DataError(f"{path}: expected an .npz archive with an array 'images' (and optionally 'labels'), found "
                        f"a single array")
    try:
        with loaded:
            if "images" not in loaded.files:
                raise DataError(f"{path}: expected an array 'images' (and optionally 'labels'), found "
                                f"{sorted(loaded.files) or 'no arrays'}")
            return loaded["images"], (loaded["labels"] if "labels" in loaded.files else None)
    except DataError:
        raise
    except Exception as e:  # a damaged member: zipfile.BadZipFile, ValueError, EOFError, pickled object arrays
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None


def check_images(images, labels, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """C-order uint8 ``[N, H, W, C]`` images and int64 labels (or None), validated; errors name ``what``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(f"{what}: images must be uint8 pixels 0..255, got dtype {images.dtype} (scale float images "
                        f"by 255 and round, or pack image files with python -m mmali_tf.tools.pack_images)")
    if images.ndim != 4:
        raise DataError(f"{what}: images must have shape [N, height, width, channels], got shape {images.shape}")
    if images.shape[0] == 0 or 0 in images.shape[1:]:
        raise DataError(f"{what}: holds no images (shape {images.shape})")
    images = np.ascontiguousarray(images)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(images):
            raise DataError(f"{what}: labels must be an integer array of {len(images)} entries (one per image), got "
                            f"{labels.dtype} {labels.shape}")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= MAX_CLASSES:
            raise DataError(f"{what}: labels must lie in 0..{MAX_CLASSES - 1}, found values in [{low}, {high}]")
        labels = np.ascontiguousarray(labels, dtype=np.int64)
    return images, labels


def _split(path: str, split: str, standin: bool) -> Split:
    images, labels = check_images(*_read(path), what=path)
    digest = hashlib.sha256(str(images.shape).encode())
    digest.update(images.data)
    if labels is not None:
        digest.update(labels.data)
    for array in (images, labels):
        if array is not None:
            array.setflags(write=False)
    index = np.arange(len(images), dtype=np.int64)
    index.setflags(write=False)
    origin = "image stand-in (synthetic)" if standin else "image"
    return Split(examples=images, labels=labels, source=f"{origin}/{split} from {path}",
                 fingerprint=digest.hexdigest()[:16], tuple_index=index)


def _resolved(data_dir: str | None, modality: str | None) -> str:
    if not modality:
        raise ConfigError("the image dataset needs the modality's name (its files are NAME_train.npz, ...)")
    resolved = resolve_data_dir(data_dir)
    if resolved is None:
        raise DataError(f"no data directory for the image files of {modality!r}: pass --data_dir or set "
                        f"${DATA_DIR_ENV}")
    return resolved


def load_images(data_dir: str | None, split: str, *, modality: str | None = None, **_) -> Split:
    """The images of ``modality`` for ``split`` (see the module docstring); ``data_dir`` None: ``$MMALI_DATA_DIR``."""
    _check_split(split)
    resolved = _resolved(data_dir, modality)
    path = image_path(resolved, modality, split)
    if not os.path.isfile(path):
        raise DataError(f"no image file for modality {modality!r} in {resolved}: expected {os.path.basename(path)} "
                        f"(python -m mmali_tf.tools.pack_images writes it from a folder of image files)")
    standin = os.path.isfile(os.path.join(resolved, STANDIN_MARKER))
    return _cached(("image", split, standin) + _file_key(path), lambda: _split(path, split, standin))


def has_labels(data_dir: str | None, modality: str | None) -> bool:
    """Whether both of ``modality``'s files hold ``labels`` (read from the archives' member lists, not the arrays);
    False when a file is missing or unreadable (loading it then reports the problem)."""
    try:
        resolved = _resolved(data_dir, modality)
        for split in SPLITS:
            with zipfile.ZipFile(image_path(resolved, modality, split)) as archive:
                if "labels.npy" not in archive.namelist():
                    return False
    except (ConfigError, DataError, OSError, zipfile.BadZipFile):
        return False
    return True


IMAGE = Dataset(name="image", description="your images: <data_dir>/<name>_{train,test}.npz (images uint8 [N,H,W,C])",
                load=load_images, examples=PIXELS, pairing=INDEX, display="image files",
                standin_display="image stand-in", per_modality=True, has_labels=has_labels,
                standin_note="image stand-in: synthetic images; figures describe the stand-in only.")
