"""Empty, zero-row, wrong-rank and label-less files in every data format (issue 26): each is refused by its loader with
one ``DataError`` line naming the file and what is wrong, and by ``python -m mmali_tf.train`` with one ``error:`` line,
exit status 1, no traceback and nothing written (the run directory is not created, the data is untouched).

Formats: MNIST ``mnist.npz`` and IDX files, SVHN ``.mat``, a prepared TFDS dataset (the fallback of both), the CUB
feature files and the ``vector`` files. The registry-level check that every loader's split passes
(:func:`mmali_tf.data.validation.check_split`) is tested on a dataset registered here, as a new format would be.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import struct

import numpy as np
import pytest

from mmali_tf.data import cub_features as cf
from mmali_tf.data import datasets, sources
from mmali_tf.data.dataset import INDEX, LABEL, Dataset
from mmali_tf.data.validation import check_split
from mmali_tf.errors import DataError
from mmali_tf.constants import FEATURES, PIXELS
from tests.cli_driver import run_in_one_interpreter
from tests.test_reliability import assert_fails_with_one_line, hash_tree

# ------------------------------------------------------------------------------------------------ writers
N = 5


def digits(n=N, shape=(28, 28)):
    return np.zeros((n, *shape), np.uint8), np.arange(n, dtype=np.uint8) % 10


def write_npz(directory, **train):
    x, y = digits()
    arrays = {"x_test": x, "y_test": y, **train}
    np.savez(os.path.join(directory, "mnist.npz"), **arrays)


def write_idx(path, array, magic, gz=False):
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def write_idx_pair(directory, images=None, labels=None, image_magic=0x803):
    x, y = digits()
    write_idx(os.path.join(directory, "train-images-idx3-ubyte"), x if images is None else images, image_magic)
    if labels is not False:
        write_idx(os.path.join(directory, "train-labels-idx1-ubyte"), y if labels is None else labels, 0x801)


def write_mat(directory, **variables):
    import scipy.io

    scipy.io.savemat(os.path.join(directory, "train_32x32.mat"), variables)


def svhn_variables(n=N):
    return {"X": np.zeros((32, 32, 3, n), np.uint8), "y": (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)}


def empty_file(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def write_cub(directory, n=N, **replace):
    """A CUB train split written file by file (so that malformed contents get through), ``replace`` maps file names
    to arrays (None: leave the file out)."""
    arrays = {cf.IMAGE_FILE: np.zeros((n, 2048), np.float32), cf.CAPTION_FILE: np.zeros((n, 10, 1024), np.float32),
              cf.CLASS_IDS_FILE: np.arange(n, dtype=np.int64), cf.FILENAMES_FILE: [f"c/{i}" for i in range(n)]}
    arrays.update(replace)
    split_dir = os.path.join(directory, "cub", "train")
    os.makedirs(split_dir)
    for name, value in arrays.items():
        if value is None:
            continue
        if name == cf.FILENAMES_FILE:
            with open(os.path.join(split_dir, name), "w") as f:
                json.dump(value, f)
        else:
            np.save(os.path.join(split_dir, name), value)


def write_vectors(directory, text=None, labels=None):
    """``text_train`` (the bad one, first) and a good ``audio_train.npy``."""
    features = np.zeros((N, 3), np.float32) if text is None else text
    if labels is None:
        np.save(os.path.join(directory, "text_train.npy"), features)
    else:
        np.savez(os.path.join(directory, "text_train.npz"), features=features, labels=labels)
    np.save(os.path.join(directory, "audio_train.npy"), np.zeros((N, 3), np.float32))


def write_tfds(directory, prepared, how):
    """A copy of the prepared TFDS ``mnist`` (3 train images) in ``directory``/tfds, damaged as ``how`` says."""
    target = os.path.join(directory, "tfds")
    shutil.copytree(prepared[how == "no labels"], target)
    version = os.path.join(target, "mnist", "3.0.1")
    shard = os.path.join(version, "mnist-train.tfrecord-00000-of-00001")
    if how == "empty shard":
        open(shard, "wb").close()
    elif how == "zero rows":  # what TFDS records for a split without examples: no shard, 0 examples
        os.remove(shard)
        info_path = os.path.join(version, "dataset_info.json")
        with open(info_path) as f:
            info = json.load(f)
        for entry in info["splits"]:
            if entry["name"] == "train":
                entry["shardLengths"], entry["numBytes"] = [], "0"
        with open(info_path, "w") as f:
            json.dump(info, f)


# ------------------------------------------------------------------------------------------------ the cases
# How each format is read: (dataset, modality name, extra loader arguments, train flags). The bad file belongs to
# the first modality of the train flags.
TINY = ["--config=tiny", "--max_iter=1", "--batch_size=4"]
VECTOR_FLAGS = ["--config=tiny", "--modalities=text:vector:vector,audio:vector:vector",
                "--modality_option=text:feature_dim=3", "--modality_option=audio:feature_dim=3",
                "--joint_architecture=feature_concat", "--latent_dim=8", "--style_dim=4", "--max_iter=1",
                "--batch_size=4"]
FORMATS = {
    "mnist": ("mnist", "a", TINY + ["--modalities=a:mnist:mnist,b:mnist:mnist:1"]),
    "svhn": ("svhn", "a", TINY + ["--modalities=a:svhn:svhn,b:svhn:svhn:1"]),
    "tfds": ("mnist", "a", TINY + ["--modalities=a:mnist:mnist,b:mnist:mnist:1", "--tfds_data_dir={data}/tfds"]),
    "cub": ("cub_caption", "caption", ["--config=cub", "--max_iter=1", "--batch_size=4"]),
    "vector": ("vector", "text", VECTOR_FLAGS),
}
IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
CASES = [  # (id, format, writer(data directory, prepared TFDS), fragments of the error line; "{data}": the directory)
    ("npz-empty-file", "mnist", lambda d, _: empty_file(f"{d}/mnist.npz"), ["{data}/mnist.npz: empty file (0 bytes)"]),
    ("npz-zero-rows", "mnist", lambda d, _: write_npz(d, x_train=digits(0)[0], y_train=digits(0)[1]),
     ["{data}/mnist.npz: contains no images"]),
    ("npz-wrong-rank", "mnist", lambda d, _: write_npz(d, x_train=np.zeros((N, 784), np.uint8), y_train=digits()[1]),
     ["{data}/mnist.npz: expected x_train of shape (N, 28, 28) uint8 (rank 3), got uint8 (5, 784)"]),
    ("npz-no-labels", "mnist", lambda d, _: write_npz(d, x_train=digits()[0]),
     ["{data}/mnist.npz: expected arrays 'x_train' and 'y_train'"]),
    ("npz-labels-2d", "mnist", lambda d, _: write_npz(d, x_train=digits()[0], y_train=digits()[1][:, None]),
     ["{data}/mnist.npz: expected a 1-D integer label array, got uint8 (5, 1)"]),
    ("idx-empty-file", "mnist", lambda d, _: (write_idx_pair(d), empty_file(f"{d}/{IMAGES}")),
     [f"{{data}}/{IMAGES}: empty file (0 bytes)"]),
    ("idx-zero-rows", "mnist", lambda d, _: write_idx_pair(d, *digits(0)), [f"{{data}}/{IMAGES}: contains no images"]),
    ("idx-wrong-rank", "mnist", lambda d, _: write_idx_pair(d, np.zeros((N, 784), np.uint8), image_magic=0x802),
     [f"{{data}}/{IMAGES}: bad IDX magic number 0x00000802 (rank 2), expected 0x00000803 (unsigned bytes, rank 3)"]),
    ("idx-no-labels", "mnist", lambda d, _: write_idx_pair(d, labels=False),
     [f"found {IMAGES} but not {LABELS}[.gz]"]),
    ("mat-empty-file", "svhn", lambda d, _: empty_file(f"{d}/train_32x32.mat"),
     ["{data}/train_32x32.mat: empty file (0 bytes)"]),
    ("mat-zero-rows", "svhn", lambda d, _: write_mat(d, **svhn_variables(0)),
     ["{data}/train_32x32.mat: contains no images"]),
    ("mat-wrong-rank", "svhn", lambda d, _: write_mat(d, X=np.zeros((3072, N), np.uint8), y=svhn_variables()["y"]),
     ["{data}/train_32x32.mat: expected X of shape (32, 32, 3, N) uint8 (rank 4), got uint8 (3072, 5)"]),
    ("mat-no-labels", "svhn", lambda d, _: write_mat(d, X=svhn_variables()["X"]),
     ["{data}/train_32x32.mat: expected variables 'X' (32,32,3,N) and 'y' (N,1), found ['X']"]),
    ("tfds-empty-shard", "tfds", lambda d, p: write_tfds(d, p, "empty shard"),
     ["{data}/tfds/mnist/3.0.1/mnist-train.tfrecord-00000-of-00001: empty file (0 bytes)"]),
    ("tfds-zero-rows", "tfds", lambda d, p: write_tfds(d, p, "zero rows"),
     ["TFDS 'mnist'/train in {data}/tfds: contains no images"]),
    ("tfds-no-labels", "tfds", lambda d, p: write_tfds(d, p, "no labels"),
     ["TFDS 'mnist'/train in {data}/tfds: the prepared files have no 'label' feature"]),
    ("cub-empty-file", "cub", lambda d, _: (write_cub(d), empty_file(f"{d}/cub/train/{cf.IMAGE_FILE}")),
     [f"{{data}}/cub/train/{cf.IMAGE_FILE}: empty file (0 bytes)"]),
    ("cub-zero-rows", "cub", lambda d, _: write_cub(d, n=0),
     [f"{{data}}/cub/train/{cf.IMAGE_FILE}: contains no images"]),
    ("cub-wrong-rank", "cub", lambda d, _: write_cub(d, **{cf.CAPTION_FILE: np.zeros((N, 10240), np.float32)}),
     [f"{{data}}/cub/train/{cf.CAPTION_FILE}: expected shape [N, 10, 1024], got (5, 10240)"]),
    ("cub-no-labels", "cub", lambda d, _: write_cub(d, **{cf.CLASS_IDS_FILE: None}),
     [f"{{data}}/cub/train/{cf.CLASS_IDS_FILE}: missing"]),
    ("vector-empty-file", "vector", lambda d, _: (write_vectors(d), empty_file(f"{d}/text_train.npy")),
     ["{data}/text_train.npy: empty file (0 bytes)"]),
    ("vector-zero-rows", "vector", lambda d, _: write_vectors(d, np.zeros((0, 3), np.float32)),
     ["{data}/text_train.npy: contains no feature vectors"]),
    ("vector-wrong-rank", "vector", lambda d, _: write_vectors(d, np.zeros((N, 3, 2), np.float32)),
     ["{data}/text_train.npy: expected feature vectors of shape [N, D] (rank 2), got shape (5, 3, 2)"]),
    ("vector-labels-2d", "vector", lambda d, _: write_vectors(d, labels=np.zeros((N, 1), np.int64)),
     ["{data}/text_train.npz: expected a 1-D integer label array, got int64 (5, 1)"]),
]
CASE_IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module")
def prepared_tfds(tmp_path_factory):
    """Two prepared TFDS ``mnist`` datasets of 3 images per split: (with labels, without a label feature)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.dataset_builders import adhoc_builder

    root = tmp_path_factory.mktemp("tfds")
    x, y = digits(3, (28, 28, 1))
    out = []
    for labelled in (True, False):
        features = {"image": tfds.features.Image(shape=(28, 28, 1))}
        data = {"image": x}
        if labelled:
            features["label"], data["label"] = tfds.features.ClassLabel(num_classes=10), y.astype(np.int64)
        directory = str(root / ("labelled" if labelled else "label_less"))
        adhoc_builder.store_as_tfds_dataset(
            name="mnist", version="3.0.1", data_dir=directory, features=tfds.features.FeaturesDict(features),
            split_datasets={s: tf.data.Dataset.from_tensor_slices(data) for s in ("train", "test")})
        out.append(directory)
    return out[0], out[1]


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory, prepared_tfds):
    """case id -> its data directory, with the bad file written."""
    root = tmp_path_factory.mktemp("bad_data")
    directories = {}
    for case_id, _, write, _ in CASES:
        directory = str(root / case_id)
        os.makedirs(directory)
        write(directory, prepared_tfds)
        directories[case_id] = directory
    return directories


def case(case_id):
    return next(c for c in CASES if c[0] == case_id)


def fragments(case_id, directory):
    return [f.replace("{data}", directory) for f in case(case_id)[3]]


# ------------------------------------------------------------------------------------------------ the loaders
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_loader_refuses_with_one_line_naming_the_file(bad_data, case_id):
    directory = bad_data[case_id]
    dataset, modality, flags = FORMATS[case(case_id)[1]]
    tfds_dir = os.path.join(directory, "tfds") if any("tfds_data_dir" in f for f in flags) else None
    sources.clear_cache()
    with pytest.raises(DataError) as refused:
        datasets.load_dataset(dataset, "train", directory, modality=modality, tfds_data_dir=tfds_dir)
    message = str(refused.value)
    assert "\n" not in message
    for fragment in fragments(case_id, directory):
        assert fragment in message, (fragment, message)


def test_one_svhn_image_is_read_although_matlab_drops_its_last_dimension(tmp_path):
    write_mat(str(tmp_path), **svhn_variables(1))
    split = sources.load_svhn(str(tmp_path), "train")
    assert split.images.shape == (1, 32, 32, 3) and split.labels.tolist() == [1]


# ------------------------------------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def trained(bad_data, tmp_path_factory):
    """``python -m mmali_tf.train`` on every bad data directory, all in one interpreter; the data hashed before and
    after."""
    runs = tmp_path_factory.mktemp("runs")
    plan, before = [], {}
    for case_id, fmt, _, _ in CASES:
        directory = bad_data[case_id]
        flags = [f.replace("{data}", directory) for f in FORMATS[fmt][2]]
        plan.append({"module": "mmali_tf.train",
                     "argv": [*flags, f"--data_dir={directory}", f"--workdir={runs / case_id}"]})
        before[case_id] = hash_tree(directory)
    results = run_in_one_interpreter(plan, str(tmp_path_factory.mktemp("driver")))
    after = {case_id: hash_tree(bad_data[case_id]) for case_id in CASE_IDS}
    return {"results": dict(zip(CASE_IDS, results)), "runs": runs, "before": before, "after": after}


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_train_refuses_with_one_error_line_and_writes_nothing(bad_data, trained, case_id):
    result = trained["results"][case_id]
    assert_fails_with_one_line(result["code"], result["stderr"], 1, *fragments(case_id, bad_data[case_id]))
    assert not os.path.exists(trained["runs"] / case_id)  # the run directory was never created
    assert trained["after"][case_id] == trained["before"][case_id]  # nor anything written beside the data


# ------------------------------------------------------------------------------------------------ a new format
def _loader_of(split):
    return lambda data_dir, split_name, **_: split


@pytest.mark.parametrize("change, pairing, message", [
    (dict(examples=np.zeros((0, 28, 28, 1), np.uint8), labels=np.zeros(0, np.int64)), LABEL,
     "contains no images (shape (0, 28, 28, 1))"),
    (dict(examples=np.zeros((N, 28, 28), np.uint8)), LABEL,
     "expected images of shape [N, H, W, C] (rank 4), got shape (5, 28, 28)"),
    (dict(labels=None), LABEL, "has no labels, but dataset 'new_format' pairs its examples by label"),
    (dict(labels=np.zeros(N - 1, np.int64)), LABEL, "5 images but 4 labels"),
    (dict(labels=np.zeros((N, 1), np.int64)), LABEL, "expected a 1-D integer label array, got int64 (5, 1)"),
    (dict(tuple_index=None), INDEX, "has no tuple index, but dataset 'new_format' pairs its examples by row"),
    (dict(tuple_index=np.array([0, N])), INDEX, "tuple index must lie in [0, 5), found [0, 5]"),
])
def test_a_new_format_gets_the_shared_checks_from_the_registry(change, pairing, message):
    """A dataset registered as a new format would be: whatever its loader returns is checked by load_dataset."""
    good = sources.Split(examples=np.zeros((N, 28, 28, 1), np.uint8), labels=np.arange(N, dtype=np.int64),
                         source="new_format/train from /data/new.files", fingerprint="0" * 16,
                         tuple_index=np.arange(N, dtype=np.int64))
    bad = dataclasses.replace(good, **change)
    new = Dataset(name="new_format", description="registered by the test", load=_loader_of(bad), examples=PIXELS,
                  pairing=pairing, display="new format")
    datasets.DATASETS.register(new)
    try:
        with pytest.raises(DataError) as refused:
            datasets.load_dataset("new_format", "train", None)
    finally:
        datasets.DATASETS.unregister("new_format")
    assert str(refused.value) == f"new_format/train from /data/new.files: {message}"
    fine = Dataset(name="new_format", description="", load=_loader_of(good), examples=PIXELS, pairing=pairing,
                   display="")
    assert check_split(good, fine) is good


def test_feature_datasets_need_rank_2_and_no_labels():
    split = sources.Split(examples=np.zeros((N, 3), np.float32), labels=None, source="f/train from /x",
                          fingerprint="0" * 16, tuple_index=np.arange(N))
    features = Dataset(name="f", description="", load=_loader_of(split), examples=FEATURES, pairing=INDEX, display="")
    assert check_split(split, features) is split
    with pytest.raises(DataError, match=r"f/train from /x: expected feature vectors of shape \[N, D\] \(rank 2\)"):
        check_split(dataclasses.replace(split, examples=np.zeros((N, 3, 1), np.float32)), features)

