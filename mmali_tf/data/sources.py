"""Loading the image modalities (MNIST, SVHN) into memory as uint8 NHWC arrays, and :class:`Split`, what every
dataset loader returns (images, feature vectors).

Arrays are read-only and cached in-process per (file, split, file size, mtime), because training and evaluation
load the same files. The loaders are registered, with the other datasets, in :mod:`mmali_tf.data.datasets`.

Where the data comes from, in order of preference:

* MNIST: ``<data_dir>/mnist.npz`` (Keras layout), else the four IDX files (raw or ``.gz``),
  else a prepared TFDS ``mnist`` dataset (``tfds_data_dir``, or ``data_dir`` itself if it holds one).
* SVHN: ``<data_dir>/train_32x32.mat`` / ``test_32x32.mat`` (the files of the SVHN site, or the
  synthetic stand-in written by ``python -m mmali_tf.tools.make_svhn_standin``), else a prepared TFDS
  ``svhn_cropped``.

``tensorflow_datasets`` is imported only when a TFDS route is actually taken (it is slow to import),
and never downloads unless ``download=True`` (offline, a TFDS download hangs for minutes before failing).
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import hashlib
import os
import re
import struct
import threading
from typing import Callable

import numpy as np

from mmali_tf.constants import PIXELS
from mmali_tf.data.dataset import LABEL, Dataset
from mmali_tf.data.validation import IMAGE_LAYOUT, check_file, check_labels, check_rows
from mmali_tf.errors import ConfigError, DataError, os_reason

DATA_DIR_ENV = "MMALI_DATA_DIR"
SPLITS = ("train", "test")
NUM_CLASSES = 10

MNIST_NPZ = "mnist.npz"
MNIST_IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SVHN_MAT = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
STANDIN_MARKER = "STANDIN.txt"
TFDS_NAMES = {"mnist": "mnist", "svhn": "svhn_cropped"}

_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of one modality's dataset, fully in memory; arrays are read-only.

    Attributes:
        examples: uint8 ``[N, H, W, C]`` images (pixels 0..255) or float32 ``[N, D]`` feature vectors.
        labels: int64 ``[N]`` class labels (digits 0..9 for the image datasets), or None for unlabelled features.
        source: human-readable origin, e.g. ``"mnist/train from /path/mnist.npz"``; says "stand-in" for synthetic
            data.
        fingerprint: 16 hex characters identifying the contents.
        tuple_index: for datasets paired by row (``pairing="index"``), int64 ``[T]``: tuple ``t`` holds example
            ``tuple_index[t]``; None for datasets paired by label.
    """

    examples: np.ndarray
    labels: np.ndarray | None
    source: str
    fingerprint: str
    tuple_index: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.examples.shape[0])

    @property
    def images(self) -> np.ndarray:
        """The examples (the name the image datasets' code uses)."""
        return self.examples

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.examples.shape[1:])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=NUM_CLASSES)


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """First 16 hex characters of sha256 over the C-order bytes of images then labels."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).data)
    h.update(np.ascontiguousarray(labels).data)
    return h.hexdigest()[:16]


def make_split(images: np.ndarray, labels: np.ndarray, source: str, *, what: str,
               image_hw: tuple[int, int] | None = None, channels: int | None = None) -> Split:
    """Validates uint8 NHWC images (at least one) and one 0..9 label per image, makes both read-only and builds a
    Split.

    ``what`` names the file (or origin) in error messages.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(f"{what}: expected uint8 images, got dtype {images.dtype}")
    images = check_rows(images, what, rank=4, name="images", layout=IMAGE_LAYOUT)
    if image_hw is not None and tuple(images.shape[1:3]) != tuple(image_hw):
        raise DataError(f"{what}: expected {image_hw[0]}x{image_hw[1]} images, got shape {images.shape}")
    if channels is not None and images.shape[3] != channels:
        raise DataError(f"{what}: expected {channels} channel(s), got shape {images.shape}")
    labels = check_labels(labels, images.shape[0], what, required=True, why="image datasets pair by label",
                          name="images")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= NUM_CLASSES:
        raise DataError(f"{what}: labels must be digits 0..9, found values in [{lo}, {hi}]")
    images = np.ascontiguousarray(images)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return Split(examples=images, labels=labels, source=source, fingerprint=fingerprint(images, labels))


# ----------------------------------------------------------------------------------------------
# In-process cache


_CACHE: dict[tuple, Split] = {}
_CACHE_LOCK = threading.Lock()


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


def _cached(key: tuple, load: Callable[[], Split]) -> Split:
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    split = load()
    with _CACHE_LOCK:
        _CACHE[key] = split
    return split


def clear_cache() -> None:
    """Drops every cached split (tests use it; normal code never needs it)."""
    with _CACHE_LOCK:
        _CACHE.clear()


# ----------------------------------------------------------------------------------------------
# Helpers


def resolve_data_dir(data_dir: str | None) -> str | None:
    """``data_dir`` if given, else ``$MMALI_DATA_DIR`` if set, else None."""
    if data_dir:
        return os.path.expanduser(str(data_dir))
    env = os.environ.get(DATA_DIR_ENV)
    return os.path.expanduser(env) if env else None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")


def _check_dir(data_dir: str | None, what: str) -> None:
    if data_dir is not None and not os.path.isdir(data_dir):
        raise DataError(f"{what} data directory {data_dir} does not exist (or is not a directory)")


def _find(directory: str, name: str) -> str | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists (raw first)."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


# ----------------------------------------------------------------------------------------------
# MNIST


def _read_mnist_npz(path: str, split: str) -> Split:
    xkey, ykey = f"x_{split}", f"y_{split}"
    check_file(path)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: expected an .npz archive with {xkey!r} and {ykey!r}, "
                            f"found a single .npy array")
        with z:
            keys = set(z.files)
            if xkey not in keys or ykey not in keys:
                raise DataError(f"{path}: expected arrays {xkey!r} and {ykey!r} (Keras mnist.npz layout), "
                                f"found {sorted(keys)}")
            x, y = z[xkey], z[ykey]
    except DataError:
        raise
    except Exception as e:  # BadZipFile, zlib.error, ValueError (pickled data), OSError, EOFError ...
        raise DataError(f"{path}: cannot read as an .npz archive ({type(e).__name__}: {e})") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise DataError(f"{path}: expected {xkey} of shape (N, 28, 28) uint8 (rank 3), got {x.dtype} {x.shape}")
    return make_split(x, y, f"mnist/{split} from {path}", what=path, image_hw=(28, 28), channels=1)


def _read_idx(path: str, magic: int) -> np.ndarray:
    check_file(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read IDX file ({type(e).__name__}: {e})") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, expected a {header}-byte header)")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        rank = f" (rank {found & 0xFF})" if found >> 8 == magic >> 8 else ""
        raise DataError(f"{path}: bad IDX magic number 0x{found:08x}{rank}, expected 0x{magic:08x} (unsigned bytes, "
                        f"rank {ndim})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DataError(f"{path}: IDX header says {dims} ({expected} bytes) but the file has {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_mnist_idx(image_path: str, label_path: str, split: str) -> Split:
    x = check_rows(_read_idx(image_path, _IDX_IMAGES_MAGIC), image_path, rank=3, name="images",
                   layout="[N, 28, 28]")
    y = _read_idx(label_path, _IDX_LABELS_MAGIC)
    if x.shape[1:] != (28, 28):
        raise DataError(f"{image_path}: expected 28x28 images, got shape {x.shape}")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{image_path}: {x.shape[0]} images but {label_path} has {y.shape[0]} labels")
    return make_split(x[..., None], y, f"mnist/{split} from {image_path} + {os.path.basename(label_path)}",
                      what=label_path, image_hw=(28, 28), channels=1)


# ----------------------------------------------------------------------------------------------
# SVHN (.mat)


def _read_svhn_mat(path: str, split: str) -> Split:
    import scipy.io  # local: scipy.io is only needed for SVHN

    check_file(path)
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except Exception as e:  # scipy raises many types (ValueError, MatReadError, OSError, ...)
        raise DataError(f"{path}: cannot read as a MATLAB .mat file with X and y "
                        f"({type(e).__name__}: {e})") from None
    if "X" not in mat or "y" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))  # loadmat adds __header__ and the like
        raise DataError(f"{path}: expected variables 'X' (32,32,3,N) and 'y' (N,1), found {found}")
    x, y = mat["X"], mat["y"]
    if x.shape == (32, 32, 3) and y.size == 1:
        x = x[..., None]  # one image: MATLAB drops the trailing singleton dimension
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: expected X of shape (32, 32, 3, N) uint8 (rank 4), got {x.dtype} {x.shape}")
    x = check_rows(np.transpose(x, (3, 0, 1, 2)), path, rank=4, name="images", layout="(32, 32, 3, N) in X")
    if not np.issubdtype(y.dtype, np.integer) and not np.issubdtype(y.dtype, np.floating):
        raise DataError(f"{path}: expected numeric labels y, got dtype {y.dtype}")
    if y.ndim != 2 or y.shape[1] != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"{path}: expected y of shape ({x.shape[0]}, 1), got {y.shape}")
    y = y[:, 0]
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DataError(f"{path}: labels y must be whole numbers 1..10")
    y = y.astype(np.int64)
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi > 10:
        raise DataError(f"{path}: SVHN labels must be 1..10 (10 = digit 0), found values in [{lo}, {hi}]")
    y = np.where(y == 10, 0, y)
    x = np.ascontiguousarray(x)
    standin = os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(path)), STANDIN_MARKER))
    kind = "svhn stand-in (synthetic, not genuine SVHN)" if standin else "svhn"
    return make_split(x, y, f"{kind}/{split} from {path}", what=path, image_hw=(32, 32), channels=3)


# ----------------------------------------------------------------------------------------------
# TFDS


def _tfds_prepared_dir(data_dir: str | None, tfds_name: str) -> bool:
    return data_dir is not None and os.path.isdir(os.path.join(data_dir, tfds_name))


def _load_tfds(tfds_name: str, tfds_dir: str | None, split: str, download: bool,
               *, image_hw: tuple[int, int], channels: int) -> Split:
    def load() -> Split:
        import tensorflow_datasets as tfds  # slow import: only when this route is taken

        where = tfds_dir if tfds_dir is not None else "the default TFDS directory"
        what = f"TFDS {tfds_name!r}/{split} in {where}"
        try:
            builder = tfds.builder(tfds_name, data_dir=tfds_dir)
            if not download and not builder.is_prepared():
                raise DataError(f"TFDS dataset {tfds_name!r} is not prepared in {where} "
                                f"(pass --download to fetch it; that needs internet)")
            if download:
                builder.download_and_prepare()
            for shard in sorted(glob.glob(os.path.join(glob.escape(builder.data_dir), f"{tfds_name}-{split}.*"))):
                check_file(shard)  # TFDS's default file names; an empty shard is an interrupted copy
            splits = builder.info.splits
            if split in splits and splits[split].num_examples == 0:
                raise DataError(f"{what}: contains no images (its dataset_info.json lists 0 examples)")
            data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        except DataError:
            raise
        except Exception as e:  # tfds raises many types; one line is all the user needs
            missing = re.search(r"Feature: (\w+) \(data type: \w+\) is required but could not be found", str(e))
            if missing:
                raise DataError(f"{what}: the prepared files have no {missing.group(1)!r} feature (images and "
                                f"labels are needed)") from None
            raise DataError(f"{what}: {type(e).__name__}: {os_reason(e)}") from None
        if not isinstance(data, dict) or "image" not in data or "label" not in data:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise DataError(f"{what}: expected the features 'image' and 'label', found {found}")
        return make_split(data["image"], data["label"], f"{tfds_name}/{split} from TFDS {where}",
                          what=what, image_hw=image_hw, channels=channels)

    key = ("tfds", tfds_name, os.path.realpath(tfds_dir) if tfds_dir else None, split)
    return _cached(key, load)


# ----------------------------------------------------------------------------------------------
# Public loaders


def load_mnist(data_dir: str | None, split: str, *, tfds_data_dir: str | None = None,
               download: bool = False, **_) -> Split:
    """MNIST ``split`` ("train"/"test") as uint8 [N, 28, 28, 1] with int64 labels.

    ``data_dir`` None means ``$MMALI_DATA_DIR``. Tries ``mnist.npz``, then the four IDX files
    (raw or .gz), then TFDS (``tfds_data_dir``, or ``data_dir`` if it holds a prepared ``mnist/``).
    """
    _check_split(split)
    data_dir = resolve_data_dir(data_dir)
    _check_dir(data_dir, "MNIST")
    if data_dir is not None:
        npz = os.path.join(data_dir, MNIST_NPZ)
        if os.path.isfile(npz):
            return _cached(("mnist-npz", split) + _file_key(npz), lambda: _read_mnist_npz(npz, split))
        image_name, label_name = MNIST_IDX[split]
        image_path, label_path = _find(data_dir, image_name), _find(data_dir, label_name)
        if image_path and label_path:
            key = ("mnist-idx", split) + _file_key(image_path) + _file_key(label_path)
            return _cached(key, lambda: _read_mnist_idx(image_path, label_path, split))
        if image_path or label_path:
            missing = label_name if image_path else image_name
            raise DataError(f"MNIST {split} in {data_dir}: found {os.path.basename(image_path or label_path)} "
                            f"but not {missing}[.gz]")
    tfds_dir = tfds_data_dir or (data_dir if _tfds_prepared_dir(data_dir, "mnist") else None)
    if tfds_dir is not None or download:
        return _load_tfds("mnist", tfds_dir, split, download, image_hw=(28, 28), channels=1)
    where = data_dir if data_dir is not None else f"(no data directory given and ${DATA_DIR_ENV} is unset)"
    raise DataError(f"no MNIST in {where}: expected {MNIST_NPZ}, the four IDX files "
                    f"({', '.join(MNIST_IDX['train'] + MNIST_IDX['test'])}, optionally .gz), "
                    f"or a prepared TFDS 'mnist' dataset (pass --download to fetch with TFDS)")


def load_svhn(data_dir: str | None, split: str, *, tfds_data_dir: str | None = None,
              download: bool = False, **_) -> Split:
    """SVHN cropped digits ``split`` as uint8 [N, 32, 32, 3], labels 0..9 (the file's 10 becomes 0).

    ``data_dir`` None means ``$MMALI_DATA_DIR``. Reads ``train_32x32.mat`` / ``test_32x32.mat``;
    if a ``STANDIN.txt`` lies next to them, ``Split.source`` says "stand-in". Falls back to a prepared
    TFDS ``svhn_cropped`` (``tfds_data_dir`` or ``data_dir``).
    """
    _check_split(split)
    data_dir = resolve_data_dir(data_dir)
    _check_dir(data_dir, "SVHN")
    if data_dir is not None:
        mat = os.path.join(data_dir, SVHN_MAT[split])
        if os.path.isfile(mat):
            marker = os.path.isfile(os.path.join(data_dir, STANDIN_MARKER))
            return _cached(("svhn-mat", split, marker) + _file_key(mat), lambda: _read_svhn_mat(mat, split))
    tfds_dir = tfds_data_dir or (data_dir if _tfds_prepared_dir(data_dir, "svhn_cropped") else None)
    if tfds_dir is not None or download:
        return _load_tfds("svhn_cropped", tfds_dir, split, download, image_hw=(32, 32), channels=3)
    where = data_dir if data_dir is not None else f"(no data directory given and ${DATA_DIR_ENV} is unset)"
    raise DataError(f"no SVHN in {where}: expected {SVHN_MAT[split]} (SVHN cropped digits, or a stand-in from "
                    f"python -m mmali_tf.tools.make_svhn_standin) or a prepared TFDS 'svhn_cropped' dataset "
                    f"(pass --download to fetch with TFDS)")


MNIST = Dataset(name="mnist", description="MNIST digits, 28x28x1: mnist.npz, IDX files or TFDS", load=load_mnist,
                examples=PIXELS, pairing=LABEL, display="MNIST")
SVHN = Dataset(name="svhn", description="SVHN cropped digits, 32x32x3: *_32x32.mat (or the stand-in) or TFDS",
               load=load_svhn, examples=PIXELS, pairing=LABEL, display="SVHN", standin_display="SVHN stand-in",
               standin_note="SVHN stand-in: synthetic digits in SVHN's layout, not genuine SVHN; figures are not "
                            "comparable with the paper's SVHN numbers.")
