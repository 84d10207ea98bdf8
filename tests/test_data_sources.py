"""Loaders: MNIST (npz, IDX raw/gz, TFDS), SVHN .mat, embedded digits, and their error messages."""

import gzip
import os
import struct
import time

import numpy as np
import pytest

from mmali_tf.data import sources
from mmali_tf.data.embedded import load_digits_modality, split_indices
from mmali_tf.data import load_dataset
from mmali_tf.data.sources import (DATA_DIR_ENV, Split, load_mnist, load_svhn, make_split)
from mmali_tf.data.svhn_standin import write_svhn_mat
from mmali_tf.errors import ConfigError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def genuine_data_dir() -> str:
    """Where genuine MNIST lives: $MMALI_DATA_DIR, else <repo>/../shared/data (never skipped)."""
    return os.environ.get(DATA_DIR_ENV) or os.path.join(os.path.dirname(REPO), "shared", "data")


@pytest.fixture(scope="module")
def mnist_npz():
    path = os.path.join(genuine_data_dir(), "mnist.npz")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def write_idx(path, array, magic, gz):
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


# ------------------------------------------------------------------------------------------ MNIST


def test_genuine_mnist_npz_shapes_counts_and_cache():
    train = load_mnist(genuine_data_dir(), "train")
    test = load_mnist(genuine_data_dir(), "test")
    assert isinstance(train, Split)
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28, 1)
    assert train.labels.dtype == np.int64 and train.labels.shape == (60000,)
    assert train.class_counts().tolist() == MNIST_TRAIN_COUNTS
    assert test.class_counts().tolist() == MNIST_TEST_COUNTS
    assert "mnist/train" in train.source and "mnist.npz" in train.source
    assert len(train.fingerprint) == 16 and int(train.fingerprint, 16) >= 0
    assert train.fingerprint != test.fingerprint
    assert not train.images.flags.writeable  # the cached arrays cannot be modified by callers
    assert load_mnist(genuine_data_dir(), "train") is train  # cached in-process


def test_env_var_is_the_default_data_dir(monkeypatch, tmp_path):
    x = np.zeros((3, 28, 28), np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.array([1, 2, 3], np.uint8), x_test=x, y_test=x[:, 0, 0])
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    split = load_mnist(None, "train")
    assert split.labels.tolist() == [1, 2, 3] and str(tmp_path) in split.source


def test_fingerprint_is_sha256_of_images_then_labels():
    import hashlib

    x = np.arange(2 * 28 * 28, dtype=np.int64).astype(np.uint8).reshape(2, 28, 28, 1)
    y = np.array([3, 4], np.int64)
    expected = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()[:16]
    assert make_split(x, y, "t", what="t").fingerprint == expected


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_load_like_the_npz(tmp_path, mnist_npz, gz):
    suffix = ".gz" if gz else ""
    n_train, n_test = 700, 300
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", mnist_npz["x_train"][:n_train], 0x803, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", mnist_npz["y_train"][:n_train], 0x801, gz)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", mnist_npz["x_test"][:n_test], 0x803, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", mnist_npz["y_test"][:n_test], 0x801, gz)
    train = load_mnist(str(tmp_path), "train")
    test = load_mnist(str(tmp_path), "test")
    np.testing.assert_array_equal(train.images[..., 0], mnist_npz["x_train"][:n_train])
    np.testing.assert_array_equal(train.labels, mnist_npz["y_train"][:n_train])
    np.testing.assert_array_equal(test.images[..., 0], mnist_npz["x_test"][:n_test])
    assert train.images.shape == (n_train, 28, 28, 1) and train.labels.dtype == np.int64
    assert train.fingerprint == make_split(mnist_npz["x_train"][:n_train, ..., None],
                                           mnist_npz["y_train"][:n_train], "x", what="x").fingerprint
    assert ("idx1-ubyte.gz" in train.source) == gz


def test_idx_bad_magic_truncated_and_partial(tmp_path, mnist_npz):
    x, y = mnist_npz["x_test"][:10], mnist_npz["y_test"][:10]
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x, 0x801, False)  # label magic on an image file
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y, 0x801, False)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: bad IDX magic number 0x00000801"):
        load_mnist(str(tmp_path), "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x, 0x803, False)
    with open(tmp_path / "t10k-images-idx3-ubyte", "r+b") as f:
        f.truncate(16 + 5 * 784)  # header says 10 images
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: IDX header says \(10, 28, 28\)"):
        load_mnist(str(tmp_path), "test")
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match=r"found t10k-images-idx3-ubyte but not t10k-labels-idx1-ubyte"):
        load_mnist(str(tmp_path), "test")


def test_idx_label_out_of_range(tmp_path, mnist_npz):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", mnist_npz["x_test"][:4], 0x803, True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 12, 3]), 0x801, True)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: labels must be digits 0..9"):
        load_mnist(str(tmp_path), "test")


def test_corrupt_npz_is_one_clear_line(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(os.urandom(1000))
    with pytest.raises(DataError) as err:
        load_mnist(str(tmp_path), "train")
    msg = str(err.value)
    assert "mnist.npz" in msg and "cannot read" in msg and "\n" not in msg


def test_truncated_npz(tmp_path):
    x = np.zeros((50, 28, 28), np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.zeros(50, np.uint8), x_test=x, y_test=np.zeros(50))
    data = (tmp_path / "mnist.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="mnist.npz: cannot read"):
        load_mnist(str(tmp_path), "train")


@pytest.mark.parametrize("bad, pattern", [
    (dict(x_train=np.zeros((5, 32, 32), np.uint8), y_train=np.zeros(5, np.uint8)), r"expected x_train of shape"),
    (dict(x_train=np.zeros((5, 28, 28), np.float32), y_train=np.zeros(5, np.uint8)), r"expected uint8 images"),
    (dict(x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.zeros(4, np.uint8)), r"5 images but 4 labels"),
    (dict(x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.full(5, 10, np.uint8)), r"labels must be digits"),
    (dict(x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.zeros((5, 2), np.uint8)), r"1-D integer label"),
    (dict(images=np.zeros((5, 28, 28), np.uint8)), r"expected arrays 'x_train' and 'y_train'"),
])
def test_wrong_npz_contents(tmp_path, bad, pattern):
    np.savez(tmp_path / "mnist.npz", **bad)
    with pytest.raises(DataError, match=pattern):
        load_mnist(str(tmp_path), "train")


def test_missing_and_empty_dirs(tmp_path):
    with pytest.raises(DataError, match=r"does not exist"):
        load_mnist(str(tmp_path / "nope"), "train")
    with pytest.raises(DataError) as err:
        load_mnist(str(tmp_path), "train")
    msg = str(err.value)
    assert f"no MNIST in {tmp_path}" in msg and "mnist.npz" in msg and "IDX" in msg and "--download" in msg
    with pytest.raises(DataError, match=r"no SVHN in .*train_32x32.mat"):
        load_svhn(str(tmp_path), "train")


def test_unknown_split_and_dataset():
    with pytest.raises(ConfigError, match="unknown split"):
        load_mnist(genuine_data_dir(), "validation")
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'"):
        load_dataset("cifar", "train", None)


def test_tfds_not_prepared_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(DataError, match=r"TFDS dataset 'mnist' is not prepared"):
        load_mnist(str(tmp_path), "train", tfds_data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataError, match=r"TFDS dataset 'svhn_cropped' is not prepared"):
        load_svhn(str(tmp_path), "test", tfds_data_dir=str(tmp_path / "tfds"))
    assert time.monotonic() - start < 30  # a download attempt would hang for minutes offline


def test_tfds_prepared_dir_is_read(tmp_path):
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.dataset_builders import adhoc_builder

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 12).astype(np.int64)
    features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(28, 28, 1)),
                                           "label": tfds.features.ClassLabel(num_classes=10)})
    adhoc_builder.store_as_tfds_dataset(
        name="mnist", version="3.0.1", data_dir=str(tmp_path), features=features,
        split_datasets={s: tf.data.Dataset.from_tensor_slices({"image": x, "label": y}) for s in ("train", "test")})
    split = load_mnist(str(tmp_path), "test")  # data_dir itself holds mnist/3.0.1
    assert "TFDS" in split.source and split.images.shape == (12, 28, 28, 1)
    # TFDS shuffles the stored order; compare as multisets of (image, label).
    key = lambda xs, ys: sorted(a.tobytes() + bytes([b]) for a, b in zip(xs, ys))  # noqa: E731
    assert key(split.images, split.labels) == key(x, y)


# ------------------------------------------------------------------------------------------ SVHN


def test_svhn_mat_round_trip_maps_10_to_0(tmp_path):
    import scipy.io

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (37, 32, 32, 3), dtype=np.uint8)
    y = np.arange(37) % 10
    write_svhn_mat(tmp_path / "train_32x32.mat", x, y)
    raw = scipy.io.loadmat(tmp_path / "train_32x32.mat")
    assert raw["X"].shape == (32, 32, 3, 37) and raw["X"].dtype == np.uint8
    assert raw["y"].shape == (37, 1) and raw["y"].dtype == np.uint8
    assert raw["y"][0, 0] == 10 and raw["y"].min() == 1  # SVHN's convention
    np.testing.assert_array_equal(raw["X"][:, :, :, 5], x[5])
    split = load_svhn(str(tmp_path), "train")
    np.testing.assert_array_equal(split.images, x)
    np.testing.assert_array_equal(split.labels, y)
    assert split.labels.dtype == np.int64 and split.images.shape == (37, 32, 32, 3)
    assert "stand-in" not in split.source and split.source.startswith("svhn/train")
    assert load_dataset("svhn", "train", str(tmp_path)) is split


def test_standin_marker_shows_in_source(tmp_path):
    x = np.zeros((4, 32, 32, 3), np.uint8)
    write_svhn_mat(tmp_path / "test_32x32.mat", x, np.array([0, 1, 2, 3]))
    (tmp_path / "STANDIN.txt").write_text("synthetic\n")
    assert "stand-in" in load_svhn(str(tmp_path), "test").source


def test_corrupt_and_wrong_mat(tmp_path):
    import scipy.io

    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file" + os.urandom(300))
    with pytest.raises(DataError) as err:
        load_svhn(str(tmp_path), "train")
    assert "train_32x32.mat: cannot read" in str(err.value) and "\n" not in str(err.value)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((28, 28, 1, 3), np.uint8), "y": np.ones((3, 1))})
    with pytest.raises(DataError, match=r"expected X of shape \(32, 32, 3, N\)"):
        load_svhn(str(tmp_path), "test")
    scipy.io.savemat(tmp_path / "test_32x32.mat",
                     {"X": np.zeros((32, 32, 3, 3), np.uint8), "y": np.array([[1], [11], [2]])})
    with pytest.raises(DataError, match=r"SVHN labels must be 1..10"):
        load_svhn(str(tmp_path), "test")
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 3), np.uint8)})
    with pytest.raises(DataError, match=r"expected variables 'X'"):
        load_svhn(str(tmp_path), "test")


# ------------------------------------------------------------------------------------------ embedded digits


def test_embedded_digits_shapes_split_and_balance():
    grey = {s: load_digits_modality("grey28", s) for s in ("train", "test")}
    colour = {s: load_digits_modality("colour32", s) for s in ("train", "test")}
    assert grey["train"].images.shape == (1438, 28, 28, 1) and grey["test"].images.shape == (359, 28, 28, 1)
    assert colour["train"].images.shape == (1438, 32, 32, 3) and colour["test"].images.shape == (359, 32, 32, 3)
    for s in ("train", "test"):
        assert grey[s].images.dtype == np.uint8 and colour[s].images.dtype == np.uint8
        np.testing.assert_array_equal(grey[s].labels, colour[s].labels)  # same split for both kinds
    idx = split_indices()
    assert len(np.intersect1d(idx["train"], idx["test"])) == 0 and len(idx["train"]) + len(idx["test"]) == 1797
    total = grey["train"].class_counts() + grey["test"].class_counts()
    frac = grey["test"].class_counts() / total
    assert np.all(np.abs(frac - 0.2) < 0.01)  # stratified
    g = grey["train"].images.astype(np.float32)
    assert g.max() == 255 and g[:, :2].max() == 0 and g[:, -2:].max() == 0 and g[:, :, :2].max() == 0  # black border
    c = colour["train"].images.astype(np.float32)
    assert c.reshape(len(c), -1).std(axis=1).min() > 5  # every image has visible contrast
    assert "load_digits" in grey["train"].source


def test_embedded_digits_are_deterministic():
    from mmali_tf.data import embedded

    first = {k: load_digits_modality(k, "train").fingerprint for k in ("grey28", "colour32")}
    embedded._build.cache_clear()
    embedded.split_indices.cache_clear()
    again = {k: load_digits_modality(k, "train").fingerprint for k in ("grey28", "colour32")}
    assert first == again
    other = load_digits_modality("colour32", "train", seed=1)
    assert other.fingerprint != first["colour32"]  # the seed changes the rendering...
    np.testing.assert_array_equal(other.labels, load_digits_modality("colour32", "train").labels)  # ...not the split
    assert load_dataset("digits_grey28", "test", None).images.shape == (359, 28, 28, 1)
    assert load_dataset("digits_colour32", "test", "/ignored", seed=1).images.shape == (359, 32, 32, 3)
    with pytest.raises(ConfigError):
        load_digits_modality("rgb", "train")


def test_clear_cache_forces_reload(tmp_path):
    x = np.zeros((2, 28, 28), np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.array([1, 2]), x_test=x, y_test=np.array([1, 2]))
    a = load_mnist(str(tmp_path), "train")
    sources.clear_cache()
    b = load_mnist(str(tmp_path), "train")
    assert a is not b and a.fingerprint == b.fingerprint
