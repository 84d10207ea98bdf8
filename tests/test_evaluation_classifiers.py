"""Coherence classifiers: architectures, protocols, training, checksum files, train-if-missing, refusal."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.data import Split
from mmali_tf.errors import MMALIError
from mmali_tf.evaluation import classifiers as clf


def trainable_params(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def test_architectures_match_the_reference_sizes():
    mnist = clf.build_classifier("mnist")
    assert trainable_params(mnist) == 21_840  # docs/authors_code.md, section 2.1
    assert mnist.output_shape == (None, 10)
    svhn = clf.build_classifier("svhn")
    # 4 convs (1,568 + 32,832 + 65,600 + 131,200) + BN scales/offsets (576) + Linear(128 -> 10) (1,290)
    assert trainable_params(svhn) == 233_066
    bn = [layer for layer in svhn.layers if "bn" in layer.name]
    assert all(layer.momentum == 0.9 and layer.epsilon == 1e-5 for layer in bn) and len(bn) == 4
    with pytest.raises(MMALIError):
        clf.build_classifier("cub")
    with pytest.raises(MMALIError):
        clf.build_classifier("mnist", protocol="sloppy")


def test_reference_protocol_keeps_mnist_dropout_at_inference():
    x = tf.random.uniform((64, 28, 28, 1), seed=1)
    clean = clf.build_classifier("mnist", "clean")
    np.testing.assert_array_equal(clean(x, training=False).numpy(), clean(x, training=False).numpy())
    buggy = clf.build_classifier("mnist", "reference")
    buggy.set_weights(clean.get_weights())
    first, second = buggy(x, training=False).numpy(), buggy(x, training=False).numpy()
    assert not np.allclose(first, second)  # stochastic, as the reference's F.dropout without training=
    svhn = clf.build_classifier("svhn", "reference")  # the SVHN classifier's dropout is off in eval mode
    y = tf.random.uniform((8, 32, 32, 3), seed=2)
    np.testing.assert_array_equal(svhn(y, training=False).numpy(), svhn(y, training=False).numpy())


def marker_split(n, seed, kind="mnist"):
    """Easy synthetic digits: class c is a bright 4-pixel-high bar at rows 2c+1.."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int64)
    h, w, c = clf.IMAGE_SHAPES[kind]
    x = (rng.random((n, h, w, c)) * 40).astype(np.uint8)
    for i, label in enumerate(labels):
        x[i, 2 * label + 1:2 * label + 5, 4:w - 4, :] = 255
    return Split(x, labels, f"bars/{kind} (synthetic test data)", f"{kind}{seed:014d}")


SETTINGS = clf.TrainSettings(epochs=2, batch_size=64)


def test_holdout_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    fit, held = clf.holdout_split(labels, 0.1, seed=0)
    assert len(held) == 50 and np.all(np.bincount(labels[held]) == 5)
    assert not set(fit) & set(held) and len(fit) + len(held) == 500
    np.testing.assert_array_equal(held, clf.holdout_split(labels, 0.1, seed=0)[1])
    assert not np.array_equal(held, clf.holdout_split(labels, 0.1, seed=1)[1])


def test_train_if_missing_then_load_then_refuse_tampered(tmp_path):
    train, test = marker_split(640, 0), marker_split(200, 1)
    directory = str(tmp_path / "classifiers")
    messages = []
    model, info = clf.get_classifier("mnist", "bars", train, test, directory, "clean", SETTINGS,
                                     print_fn=messages.append)
    assert info["trained_now"] and info["test_accuracy"] > 0.3  # chance: 0.1
    assert any("training the mnist classifier" in m for m in messages)
    stem = clf.classifier_stem("mnist", "bars", train.fingerprint, "clean")
    weights = os.path.join(directory, f"{stem}.weights.h5")
    with open(weights + ".sha256") as f:
        recorded, name = f.read().split()
    assert recorded == clf.sha256_file(weights) and name == os.path.basename(weights)
    with open(os.path.join(directory, f"{stem}.json")) as f:
        sidecar = json.load(f)
    for key, value in {"kind": "mnist", "dataset": "bars", "protocol": "clean", "epochs": 2,
                       "train_fingerprint": train.fingerprint, "test_fingerprint": test.fingerprint,
                       "sha256": recorded, "seed": 0}.items():
        assert sidecar[key] == value, key
    assert 0 < sidecar["test_accuracy"] <= 1 and sidecar["selected_epoch"] in (1, 2)
    assert "held-out" in sidecar["selection"] and len(sidecar["history"]) == 2

    # Loaded, not retrained; same predictions.
    loaded, info2 = clf.get_classifier("mnist", "bars", train, test, directory, "clean", SETTINGS, print_fn=quiet)
    assert not info2["trained_now"]
    x = tf.constant(test.images[:32].astype(np.float32) / 255.0)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-6)

    # One flipped byte: refused with one clear error naming the file.
    data = bytearray(open(weights, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(weights, "wb").write(bytes(data))
    with pytest.raises(clf.ClassifierChecksumError, match="fails its checksum") as err:
        clf.get_classifier("mnist", "bars", train, test, directory, "clean", SETTINGS, print_fn=quiet)
    assert weights in str(err.value) and "\n" not in str(err.value)
    # A missing checksum file is refused too.
    os.remove(weights + ".sha256")
    with pytest.raises(clf.ClassifierChecksumError, match="no checksum"):
        clf.get_classifier("mnist", "bars", train, test, directory, "clean", SETTINGS, print_fn=quiet)


def test_missing_classifier_without_training_is_an_error(tmp_path):
    train, test = marker_split(64, 0), marker_split(64, 1)
    with pytest.raises(MMALIError, match="no mnist classifier"):
        clf.get_classifier("mnist", "bars", train, test, str(tmp_path), "clean", SETTINGS, train_if_missing=False)


def test_reference_protocol_selects_on_test_and_is_seeded():
    train, test = marker_split(128, 0), marker_split(64, 1)
    settings = clf.TrainSettings(epochs=2, batch_size=64, seed=3)
    model_a, info = clf.train_classifier("mnist", train, test, "reference", settings, print_fn=quiet)
    assert "test" in info["selection"] and info["train_images"] == 128 and info["lr_schedule"] == "constant"
    assert info["always_on_dropout"] and info["lr"] == 1e-3
    assert info["selection_accuracy"] == pytest.approx(max(h["selection_accuracy"] for h in info["history"]))
    model_b, _ = clf.train_classifier("mnist", train, test, "reference", settings, print_fn=quiet)
    for a, b in zip(model_a.get_weights(), model_b.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_default_epochs_reach_a_minimum_number_of_steps():
    settings = clf.TrainSettings()
    assert settings.epochs_for("mnist", 54_000) == clf.DEFAULT_EPOCHS["mnist"]
    assert settings.epochs_for("mnist", 1_294) * 6 >= clf.MIN_STEPS  # 6 batches of 256 per epoch
    assert clf.TrainSettings(epochs=3).epochs_for("svhn", 10) == 3


def quiet(_):
    pass
