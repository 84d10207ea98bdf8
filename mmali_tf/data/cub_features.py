"""CUB caption/image features: the on-disk format, its loader and writer (docs/authors_code.md, section 1.5).

Format (one directory per split, ``<data_dir>/cub/train/`` and ``<data_dir>/cub/test/``):

=============================  =======================  =========================================================
file                           contents                 meaning
=============================  =======================  =========================================================
``cub_image_features.npy``     float32 ``[N, 2048]``    one pooled ResNet-101 feature vector per image
                                                        (post-ReLU average pool, so normally >= 0)
``cub_caption_features.npy``   float32 ``[N, 10, 1024]``  ten char-CNN-RNN sentence embeddings per image
``filenames.json``             JSON list of N strings   the image's path below CUB's ``images/``, without ``.jpg``
                                                        (e.g. ``"002.Laysan_Albatross/Laysan_Albatross_0002_1027"``)
``class_ids.npy``              integer ``[N]``          the image's class, non-negative (for CUB the class number
                                                        1..200 of its directory, as StackGAN's ``class_info``)
``STANDIN.txt`` (optional)     text                     present only in synthetic stand-in data
=============================  =======================  =========================================================

Row ``i`` of every file describes image ``i``. ``.npy`` files are plain numpy arrays (no pickles). The standard
StackGAN "birds" split has 8,855 train and 2,933 test images from class-disjoint sets of 150 and 50 classes.

Pairing (the reference's ``CaptionImagePair``): a split of N images has ``10 N`` pairs; pair ``t`` is caption
``t mod 10`` of image ``t // 10`` together with image ``t // 10``. So every caption appears once, paired with its
own image, and every image ten times in a row.

The loader checks shapes, dtypes, finiteness and that all files agree on N; it does not require image features to
be non-negative (features from another extractor may not be). Any problem raises a one-line
:class:`mmali_tf.errors.DataError` that names the file. ``python -m mmali_tf.tools.prepare_cub`` writes this format
from the CUB images and the StackGAN release; ``python -m mmali_tf.tools.make_cub_standin`` writes a synthetic
stand-in in it.

Registered datasets (:mod:`mmali_tf.data.datasets`), one per view, paired by index: ``cub_caption`` (examples = the
``10 N`` caption rows, tuple ``t`` = row ``t``) and ``cub_image`` (examples = the ``N`` image rows, tuple ``t`` = row
``t // 10``), so tuple ``t`` of the two is the reference's pair ``t``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence

import numpy as np

from mmali_tf.constants import FEATURES
from mmali_tf.data.sources import SPLITS  # noqa: F401  (re-exported for the tools)
from mmali_tf.data.dataset import INDEX, Dataset
from mmali_tf.data.sources import (DATA_DIR_ENV, STANDIN_MARKER, Split, _cached, _check_split, _file_key,
                                   resolve_data_dir)
from mmali_tf.data.validation import check_file
from mmali_tf.errors import DataError

IMAGE_FEATURE_DIM = 2048
CAPTION_FEATURE_DIM = 1024
CAPTIONS_PER_IMAGE = 10

CUB_TRAIN_IMAGES = 8_855
CUB_TEST_IMAGES = 2_933
CUB_NUM_CLASSES = 200
CUB_TRAIN_CLASSES = 150

SUBDIR = "cub"
IMAGE_FILE = "cub_image_features.npy"
CAPTION_FILE = "cub_caption_features.npy"
FILENAMES_FILE = "filenames.json"
CLASS_IDS_FILE = "class_ids.npy"
FORMAT_FILES = (IMAGE_FILE, CAPTION_FILE, FILENAMES_FILE, CLASS_IDS_FILE)


@dataclasses.dataclass(frozen=True)
class CUBFeatureSplit:
    """One split of CUB features, fully in memory; arrays are read-only.

    Attributes:
        image_features: float32 ``[N, 2048]``.
        caption_features: float32 ``[N, 10, 1024]``.
        filenames: N image names (see the module docstring).
        class_ids: int64 ``[N]``.
        source: human-readable origin, e.g. ``"cub features/train from /data/cub/train"``; says "stand-in" for
            synthetic data.
        fingerprint: first 16 hex characters of a sha256 over all four files' contents.
        standin: True when the split directory holds a ``STANDIN.txt`` marker.
    """

    image_features: np.ndarray
    caption_features: np.ndarray
    filenames: tuple[str, ...]
    class_ids: np.ndarray
    source: str
    fingerprint: str
    standin: bool = False

    @property
    def num_images(self) -> int:
        return int(self.image_features.shape[0])

    @property
    def num_pairs(self) -> int:
        return self.num_images * CAPTIONS_PER_IMAGE

    def pair_image_indices(self) -> np.ndarray:
        """int64 ``[10 N]``: the image of pair ``t`` is ``t // 10``."""
        return pair_image_indices(self.num_images)

    def pair_captions(self) -> np.ndarray:
        """float32 ``[10 N, 1024]``: the caption of pair ``t`` (a read-only view, no copy)."""
        return self.caption_features.reshape(-1, CAPTION_FEATURE_DIM)

    def pair_images(self) -> np.ndarray:
        """float32 ``[10 N, 2048]``: the image of pair ``t`` (a new array: each image repeated ten times)."""
        return np.repeat(self.image_features, CAPTIONS_PER_IMAGE, axis=0)


def pair_image_indices(num_images: int) -> np.ndarray:
    """int64 ``[10 num_images]``, ``t // 10``: pair ``t`` holds caption ``t % 10`` of that image."""
    return np.arange(num_images * CAPTIONS_PER_IMAGE, dtype=np.int64) // CAPTIONS_PER_IMAGE


def fingerprint(image_features: np.ndarray, caption_features: np.ndarray, filenames: Sequence[str],
                class_ids: np.ndarray) -> str:
    """First 16 hex characters of sha256 over the C-order bytes of the arrays and the UTF-8 filenames."""
    h = hashlib.sha256()
    for array in (image_features, caption_features, np.asarray(class_ids, np.int64)):
        h.update(np.ascontiguousarray(array).data)
    h.update("\n".join(filenames).encode("utf-8"))
    return h.hexdigest()[:16]


def split_dir(data_dir: str | None, split: str) -> str:
    """``<data_dir>/cub/<split>`` (``data_dir`` None: ``$MMALI_DATA_DIR``)."""
    _check_split(split)
    resolved = resolve_data_dir(data_dir)
    if resolved is None:
        raise DataError(f"no data directory for CUB features: pass one or set ${DATA_DIR_ENV}")
    return os.path.join(resolved, SUBDIR, split)


def _check_features(array: np.ndarray, shape_tail: tuple[int, ...], what: str) -> np.ndarray:
    if array.dtype != np.float32:
        raise DataError(f"{what}: expected float32 features, got dtype {array.dtype}")
    if array.ndim != 1 + len(shape_tail) or tuple(array.shape[1:]) != shape_tail:
        expected = ", ".join(["N"] + [str(d) for d in shape_tail])
        raise DataError(f"{what}: expected shape [{expected}], got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{what}: contains NaN or infinite values")
    return array


def check_arrays(image_features, caption_features, filenames, class_ids, *,
                 where: Mapping[str, str] | None = None) -> tuple[np.ndarray | None, np.ndarray, tuple[str, ...],
                                                                  np.ndarray]:
    """Validates one split's contents and returns them as (float32, float32, tuple of str, int64) C-order arrays.

    ``where`` maps each of the four file names to the name used in error messages (default: the file name).
    ``image_features`` None checks the other three (N taken from the captions) and returns None in its place.
    """
    where = dict(where or {})
    name = {f: where.get(f, f) for f in FORMAT_FILES}
    captions = _check_features(np.asarray(caption_features), (CAPTIONS_PER_IMAGE, CAPTION_FEATURE_DIM),
                               name[CAPTION_FILE])
    images = None
    if image_features is not None:
        images = _check_features(np.asarray(image_features), (IMAGE_FEATURE_DIM,), name[IMAGE_FILE])
    if (not isinstance(filenames, (list, tuple))) or not all(isinstance(f, str) and f for f in filenames):
        raise DataError(f"{name[FILENAMES_FILE]}: expected a list of non-empty strings")
    class_ids = np.asarray(class_ids)
    if class_ids.ndim != 1 or not np.issubdtype(class_ids.dtype, np.integer):
        raise DataError(f"{name[CLASS_IDS_FILE]}: expected a 1-D integer array, got {class_ids.dtype} "
                        f"{class_ids.shape}")
    if class_ids.size and int(class_ids.min()) < 0:
        raise DataError(f"{name[CLASS_IDS_FILE]}: class ids must be non-negative, found {int(class_ids.min())}")
    counted, n = (name[IMAGE_FILE], images.shape[0]) if images is not None else (name[CAPTION_FILE],
                                                                                   captions.shape[0])
    if n == 0:
        raise DataError(f"{counted}: contains no images")
    for what, count in ((name[CAPTION_FILE], captions.shape[0]), (name[FILENAMES_FILE], len(filenames)),
                        (name[CLASS_IDS_FILE], class_ids.shape[0])):
        if count != n:
            raise DataError(f"{what}: has {count} entries but {counted} has {n} images")
    return (None if images is None else np.ascontiguousarray(images), np.ascontiguousarray(captions),
            tuple(filenames), np.ascontiguousarray(class_ids, dtype=np.int64))


def _read_npy(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (see docs/cub_data.md for the CUB feature format)")
    check_file(path)
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # ValueError (pickled or truncated), OSError, EOFError ...
        raise DataError(f"{path}: cannot read as a .npy array ({type(e).__name__}: {e})") from None


def _read_filenames(path: str) -> list:
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (see docs/cub_data.md for the CUB feature format)")
    check_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read as a JSON list of file names ({type(e).__name__}: {e})") from None


def _read_split(directory: str, split: str) -> CUBFeatureSplit:
    paths = {f: os.path.join(directory, f) for f in FORMAT_FILES}
    images, captions, filenames, class_ids = check_arrays(
        _read_npy(paths[IMAGE_FILE]), _read_npy(paths[CAPTION_FILE]), _read_filenames(paths[FILENAMES_FILE]),
        _read_npy(paths[CLASS_IDS_FILE]), where=paths)
    for array in (images, captions, class_ids):
        array.setflags(write=False)
    standin = os.path.isfile(os.path.join(directory, STANDIN_MARKER))
    kind = "cub stand-in (synthetic, not CUB)" if standin else "cub features"
    return CUBFeatureSplit(image_features=images, caption_features=captions, filenames=filenames,
                           class_ids=class_ids, source=f"{kind}/{split} from {directory}",
                           fingerprint=fingerprint(images, captions, filenames, class_ids), standin=standin)


def load_cub_features(data_dir: str | None, split: str) -> CUBFeatureSplit:
    """The CUB features of ``split`` ("train"/"test") from ``<data_dir>/cub/<split>/`` (``data_dir`` None:
    ``$MMALI_DATA_DIR``). Cached in-process per (files, sizes, mtimes), like the image loaders."""
    directory = split_dir(data_dir, split)
    if not os.path.isdir(directory):
        raise DataError(f"no CUB features in {directory}: expected a directory with {', '.join(FORMAT_FILES)} "
                        f"(python -m mmali_tf.tools.prepare_cub writes them; python -m mmali_tf.tools.make_cub_standin "
                        f"writes a synthetic stand-in)")
    paths = [os.path.join(directory, f) for f in FORMAT_FILES]
    for path in paths:
        if not os.path.isfile(path):
            raise DataError(f"{path}: missing (see docs/cub_data.md for the CUB feature format)")
    standin = os.path.isfile(os.path.join(directory, STANDIN_MARKER))
    key = ("cub-features", split, standin) + sum((_file_key(p) for p in paths), ())
    return _cached(key, lambda: _read_split(directory, split))


def write_cub_split(directory: str, image_features, caption_features, filenames, class_ids, *,
                    extra_files: Mapping[str, str] | None = None, overwrite: bool = False) -> str:
    """Writes one split in the format above (after :func:`check_arrays`) to ``directory``, whole or not at all.

    Everything goes to a temporary sibling directory first, which is then renamed to ``directory``; an existing
    ``directory`` is replaced only with ``overwrite``. ``extra_files`` maps further file names (e.g.
    ``STANDIN.txt``) to their text. Returns the fingerprint of what was written.
    """
    directory = os.path.abspath(directory)
    images, captions, names, ids = check_arrays(image_features, caption_features, filenames, class_ids,
                                                where={f: os.path.join(directory, f) for f in FORMAT_FILES})
    if os.path.exists(directory) and not overwrite:
        raise DataError(f"{directory} already exists (pass overwrite to replace it)")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise DataError(f"{directory} exists and is not a directory")
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{directory}.partial.{os.getpid()}"
    old = f"{directory}.old.{os.getpid()}"
    try:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
        np.save(os.path.join(tmp, IMAGE_FILE), images)
        np.save(os.path.join(tmp, CAPTION_FILE), captions)
        np.save(os.path.join(tmp, CLASS_IDS_FILE), ids)
        with open(os.path.join(tmp, FILENAMES_FILE), "w", encoding="utf-8") as f:
            json.dump(list(names), f, indent=0)
        for name, text in (extra_files or {}).items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)
        if os.path.exists(directory):
            os.replace(directory, old)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return fingerprint(images, captions, names, ids)



VIEWS = ("caption", "image")


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def load_view(data_dir: str | None, split: str, view: str) -> Split:
    """One view of the CUB features as a dataset split paired by index: ``"caption"`` (examples ``[10 N, 1024]``,
    tuple ``t`` = row ``t``, labels = each caption's image class) or ``"image"`` (examples ``[N, 2048]``, tuple
    ``t`` = row ``t // 10``)."""
    if view not in VIEWS:
        raise ValueError(f"unknown CUB view {view!r}; expected one of {VIEWS}")
    cub = load_cub_features(data_dir, split)
    digest = hashlib.sha256(f"{cub.fingerprint}/{view}".encode()).hexdigest()[:16]
    if view == "caption":
        examples = cub.pair_captions()
        labels = _read_only(np.repeat(cub.class_ids, CAPTIONS_PER_IMAGE))
        index = _read_only(np.arange(cub.num_pairs, dtype=np.int64))
        what = f"{CAPTIONS_PER_IMAGE} captions per image"
    else:
        examples, labels, index = cub.image_features, cub.class_ids, _read_only(cub.pair_image_indices())
        what = f"image t // {CAPTIONS_PER_IMAGE} of pair t"
    return Split(examples=examples, labels=labels, source=f"{cub.source} ({view} view: {what})", fingerprint=digest,
                 tuple_index=index)


def _view_loader(view: str):
    def load(data_dir: str | None, split: str, **_) -> Split:
        return load_view(data_dir, split, view)

    return load


_STANDIN_NOTE = ("CUB stand-in: synthetic paired feature vectors in the CUB feature format, not CUB; figures are not "
                 "comparable with the paper's CUB numbers.")
CUB_CAPTION = Dataset(name="cub_caption", description="CUB caption features [10 N, 1024] from <data_dir>/cub/",
                      load=_view_loader("caption"), examples=FEATURES, pairing=INDEX, display="CUB captions",
                      standin_display="CUB stand-in captions", standin_note=_STANDIN_NOTE)
CUB_IMAGE = Dataset(name="cub_image", description="CUB image features [N, 2048] from <data_dir>/cub/",
                    load=_view_loader("image"), examples=FEATURES, pairing=INDEX, display="CUB images",
                    standin_display="CUB stand-in images", standin_note=_STANDIN_NOTE)
