"""Coherence classifiers: the reference's MNIST and SVHN digit classifiers (docs/authors_code.md, section 2.1) and a
small CNN for the ``image`` kind sized for its modality's images and classes, trained, checksummed, cached and
loaded per (network kind, dataset), and per modality for datasets whose files are the modality's own (``image``: the
train fingerprint in the file name tells them apart).

Which kinds have a classifier, its architecture and its default epochs are the kind's
(:meth:`mmali_tf.kinds.base.ModalityKind.classifier`, read from the kinds registry); the architectures are in
:mod:`mmali_tf.networks.classifiers`. A classifier is identified by the network kind of the images it reads (``"mnist"``: 28x28x1, ``"svhn"``: 32x32x3),
the dataset it was trained on (its *own* train split, un-rotated: a rotated MultiMNIST modality shares the
``mnist`` classifier and is un-rotated before classification), the train split's fingerprint and the protocol.
In a classifier directory each one is three files::

    <stem>.weights.h5          Keras weights
    <stem>.weights.h5.sha256   "<sha256>  <stem>.weights.h5" (``sha256sum -c`` format)
    <stem>.json                sidecar: kind, dataset, fingerprints, protocol, epochs, selection, accuracies

with ``stem = f"{kind}-{dataset}-{train_fingerprint[:8]}-{protocol}"``. A missing weights file is trained (seeded);
a weights file whose sha256 does not match its checksum file (or has none) is refused with one clear error.

Protocols (see ``PROTOCOLS``):

* ``clean`` (default): the epoch is selected on a held-out part of the train split (``holdout``, 10%, stratified,
  seeded); the classifier is trained on the rest with Adam 2e-3 and a cosine decay to 0; dropout is active only
  while training. The test accuracy is measured once, after selection.
* ``reference``: as the authors' ``eval_mnist_svhn_gen.py``: trained on the full train split with a constant Adam
  1e-3, the epoch with the best *test* accuracy is kept, and the MNIST classifier's second dropout (PyTorch
  ``F.dropout`` without ``training=``) stays active at inference, so its predictions are stochastic.

Both use Adam(0.9, 0.999, eps 1e-8), batch 256 and softmax cross-entropy as the reference, but far fewer epochs than
its 100 (the kinds' default epochs, ``DEFAULT_EPOCHS``: MNIST kind 30, SVHN kind 8, and at least ``MIN_STEPS`` steps
for small data sets).
Measured on this 2-core machine under load (clean): MNIST 99.12% test in 3.5 min, SVHN stand-in 98.86% in 7 min. With
a constant 1e-3, 20 epochs gave only 98.85% on MNIST (the two 0.5 dropouts make this small net converge slowly),
hence the cosine schedule of the clean protocol. ``--classifier_epochs=100`` restores the reference's length.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from mmali_tf import kinds
from mmali_tf.atomic_files import write_text_atomic
from mmali_tf.data import Split
from mmali_tf.errors import ConfigError, MMALIError
from mmali_tf.kinds.builders import IMAGE_SHAPES
from mmali_tf.networks.classifiers import NUM_CLASSES
from mmali_tf.registry import LiveMapping

PROTOCOLS = ("clean", "reference")


def classifier_spec(kind: str) -> kinds.ClassifierSpec:
    """The coherence classifier of ``kind`` (``ConfigError`` if the kind is unknown or has none)."""
    spec = kinds.get(kind).classifier()
    if spec is None:
        raise ConfigError(f"no classifier for network kind {kind!r}; kinds with one: {', '.join(KINDS)}")
    return spec


def _classifier_kinds() -> dict[str, kinds.ClassifierSpec]:
    return {k.name: k.classifier() for k in kinds.KINDS.entries() if k.classifier() is not None}


KINDS = LiveMapping(_classifier_kinds)
"""The kinds that have a coherence classifier (a live view of the kinds registry)."""

DEFAULT_EPOCHS = LiveMapping(lambda: {name: spec.default_epochs for name, spec in _classifier_kinds().items()})
"""Training epochs per kind when not overridden (the reference trains 100; see the module docstring)."""
MIN_STEPS = 1000
"""Default training is at least this many optimizer steps (batch 256), whatever the epochs."""
SIDECAR_VERSION = 1


class ClassifierChecksumError(MMALIError):
    """A cached classifier's weights do not match their recorded sha256 (or the checksum is missing)."""


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How a classifier is trained. ``epochs=None`` means ``DEFAULT_EPOCHS[kind]``."""

    epochs: int | None = None
    batch_size: int = 256
    lr: float | None = None  # None: 2e-3 with cosine decay (clean), 1e-3 constant (reference)
    schedule: str | None = None  # "cosine" or "constant"; None: by protocol as above
    holdout: float = 0.1  # fraction of the train split held out for epoch selection (clean protocol)
    seed: int = 0

    def epochs_for(self, kind: str, num_images: int) -> int:
        """``epochs`` if given, else ``DEFAULT_EPOCHS[kind]`` raised to at least ``MIN_STEPS`` optimizer steps
        (small data sets such as the embedded digits need many more epochs)."""
        if self.epochs:
            return int(self.epochs)
        steps_per_epoch = max(1, -(-int(num_images) // self.batch_size))
        return max(DEFAULT_EPOCHS[kind], -(-MIN_STEPS // steps_per_epoch))

    def lr_for(self, protocol: str) -> float:
        return float(self.lr) if self.lr else (2e-3 if protocol == "clean" else 1e-3)

    def schedule_for(self, protocol: str) -> str:
        schedule = self.schedule or ("cosine" if protocol == "clean" else "constant")
        if schedule not in ("cosine", "constant"):
            raise ConfigError(f"unknown classifier learning-rate schedule {schedule!r}: expected cosine or constant")
        return schedule


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    return protocol


def build_classifier(kind: str, protocol: str = "clean", seed: int = 0, input_shape: tuple[int, ...] | None = None,
                     num_classes: int = NUM_CLASSES) -> keras.Model:
    """The classifier of ``kind``; a sized one (``ClassifierSpec.sized``, the ``image`` kind) for ``input_shape``
    and ``num_classes``, the others for their kind's fixed shape and the 10 digits."""
    check_protocol(protocol)
    spec = classifier_spec(kind)
    if spec.sized:
        if input_shape is None:
            raise ConfigError(f"the {kind} classifier needs the image shape it reads")
        return spec.build(protocol, seed, tuple(int(d) for d in input_shape), int(num_classes))
    return spec.build(protocol, seed)


def classes_of(train: Split, test: Split) -> int:
    """The number of classes a sized classifier of these splits predicts: the largest label + 1, at least 2."""
    return max(2, int(max(train.labels.max(), test.labels.max())) + 1)


# ----------------------------------------------------------------------------------------------------------------
# Training


def _to_float(images) -> tf.Tensor:
    return tf.cast(images, tf.float32) / 255.0


def make_predict_fn(model: keras.Model) -> Callable:
    """tf.function: uint8 or float images → int64 predicted classes (inference mode)."""

    @tf.function
    def predict(x):
        if x.dtype == tf.uint8:
            x = _to_float(x)
        return tf.argmax(model(x, training=False), axis=-1)

    return predict


def accuracy(predict: Callable, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> float:
    correct = 0
    for i in range(0, len(images), batch_size):
        pred = predict(tf.convert_to_tensor(images[i:i + batch_size])).numpy()
        correct += int(np.sum(pred == labels[i:i + batch_size]))
    return correct / max(len(images), 1)


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of ``range(len(labels))`` into (fit, held-out) index arrays, both sorted."""
    rng = np.random.default_rng([int(seed), 7])
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = int(round(fraction * len(members)))
        held.append(rng.permutation(members)[:n])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    fit_idx = np.setdiff1d(np.arange(len(labels)), held_idx)
    return fit_idx, held_idx


def train_classifier(kind: str, train: Split, test: Split, protocol: str = "clean",
                     settings: TrainSettings = TrainSettings(), print_fn=print) -> tuple[keras.Model, dict]:
    """Train a ``kind`` classifier on ``train``; select the epoch (held-out train part under ``clean``, the test
    split under ``reference``); return the selected model and an info dict (the sidecar's training fields)."""
    check_protocol(protocol)
    sized = classifier_spec(kind).sized
    expected = tuple(train.images.shape[1:]) if sized else IMAGE_SHAPES[kind]
    if tuple(train.images.shape[1:]) != expected or tuple(test.images.shape[1:]) != expected:
        raise ConfigError(f"{kind} classifier needs images of shape {expected}, got "
                          f"{train.images.shape[1:]} / {test.images.shape[1:]}")
    for split in (train, test):
        if split.labels is None:
            raise ConfigError(f"a coherence classifier needs labelled images; {split.source} has no labels")
    num_classes = classes_of(train, test) if sized else NUM_CLASSES
    keras.utils.set_random_seed(settings.seed)
    model = build_classifier(kind, protocol, seed=settings.seed, input_shape=expected, num_classes=num_classes)

    predict = make_predict_fn(model)
    if protocol == "clean":
        fit_idx, held_idx = holdout_split(train.labels, settings.holdout, settings.seed)
        if len(held_idx) == 0:
            raise ConfigError(f"holdout {settings.holdout} leaves no held-out images for epoch selection")
        sel_images, sel_labels = train.images[held_idx], train.labels[held_idx]
        selection = f"held-out {settings.holdout:.0%} of train ({len(held_idx):,} images, stratified, seeded)"
    else:
        fit_idx = np.arange(len(train))
        sel_images, sel_labels = test.images, test.labels
        selection = "best test accuracy over epochs (reference protocol)"
    fit_images, fit_labels = train.images[fit_idx], train.labels[fit_idx].astype(np.int32)
    epochs = settings.epochs_for(kind, len(fit_idx))
    lr, schedule = settings.lr_for(protocol), settings.schedule_for(protocol)
    steps_per_epoch = -(-len(fit_idx) // settings.batch_size)
    rate = (keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps_per_epoch)
            if schedule == "cosine" else lr)
    optimizer = keras.optimizers.Adam(rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(_to_float(x), training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    started = time.perf_counter()
    best = (-1.0, 0, None)
    history = []
    rng = np.random.default_rng([int(settings.seed), 1])
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(fit_idx))
        losses = []
        for i in range(0, len(order), settings.batch_size):
            ids = order[i:i + settings.batch_size]
            losses.append(float(train_step(tf.convert_to_tensor(fit_images[ids]),
                                           tf.convert_to_tensor(fit_labels[ids]))))
        score = accuracy(predict, sel_images, sel_labels)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "selection_accuracy": score})
        if score > best[0]:
            best = (score, epoch, [w.copy() for w in model.get_weights()])
        elapsed = time.perf_counter() - started
        if epoch == 1 or epoch == epochs or epoch % max(1, epochs // 10) == 0:  # about ten progress lines
            print_fn(f"  {kind} classifier on {train.source.split(' ')[0]}: epoch {epoch}/{epochs} loss "
                     f"{np.mean(losses):.4f} selection acc {score:.4f} ({elapsed:.0f} s, ETA "
                     f"{elapsed / epoch * (epochs - epoch):.0f} s)")
    model.set_weights(best[2])
    test_acc = accuracy(predict, test.images, test.labels)
    info = {
        "epochs": epochs, "selected_epoch": best[1], "selection": selection,
        "selection_accuracy": best[0], "test_accuracy": test_acc,
        "batch_size": settings.batch_size, "lr": lr, "lr_schedule": schedule,
        "optimizer": "Adam(0.9, 0.999, eps 1e-8)",
        "seed": settings.seed, "holdout": settings.holdout if protocol == "clean" else 0.0,
        "train_images": int(len(fit_idx)), "input_shape": [int(d) for d in expected], "num_classes": num_classes,
        "always_on_dropout": classifier_spec(kind).always_on_dropout_in_reference and protocol == "reference",
        "history": history, "train_seconds": round(time.perf_counter() - started, 1),
    }
    return model, info


# ----------------------------------------------------------------------------------------------------------------
# Files: weights + checksum + sidecar


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def classifier_stem(kind: str, dataset: str, train_fingerprint: str, protocol: str) -> str:
    return f"{kind}-{dataset}-{train_fingerprint[:8]}-{check_protocol(protocol)}"


@dataclasses.dataclass(frozen=True)
class ClassifierFiles:
    directory: str
    stem: str

    @property
    def weights(self) -> str:
        return os.path.join(self.directory, f"{self.stem}.weights.h5")

    @property
    def checksum(self) -> str:
        return self.weights + ".sha256"

    @property
    def sidecar(self) -> str:
        return os.path.join(self.directory, f"{self.stem}.json")


def save_classifier(model: keras.Model, files: ClassifierFiles, sidecar: dict) -> dict:
    """Write weights, checksum and sidecar (each atomically; the checksum is written after the weights)."""
    os.makedirs(files.directory, exist_ok=True)
    tmp = os.path.join(files.directory, f".{files.stem}.{os.getpid()}.weights.h5")
    model.save_weights(tmp)
    digest = sha256_file(tmp)
    os.replace(tmp, files.weights)
    write_text_atomic(files.checksum, f"{digest}  {os.path.basename(files.weights)}\n")
    sidecar = {**sidecar, "sha256": digest, "weights_file": os.path.basename(files.weights)}
    write_text_atomic(files.sidecar, json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return sidecar


def verify_checksum(files: ClassifierFiles) -> str:
    """The weights' sha256 if it matches the checksum file; otherwise ClassifierChecksumError."""
    if not os.path.isfile(files.checksum):
        raise ClassifierChecksumError(f"classifier {files.weights} has no checksum file {files.checksum}; refusing "
                                      f"to use it (delete the weights to retrain)")
    with open(files.checksum) as f:
        recorded = f.read().split()
    actual = sha256_file(files.weights)
    if not recorded or recorded[0].lower() != actual:
        expected = recorded[0] if recorded else "(empty)"
        raise ClassifierChecksumError(
            f"classifier {files.weights} fails its checksum (sha256 {actual[:16]}..., recorded "
            f"{expected[:16]}...); refusing to use it: restore the file or delete it (with its .sha256 and .json) "
            f"to retrain")
    return actual


def load_classifier(kind: str, protocol: str, files: ClassifierFiles, seed: int = 0) -> tuple[keras.Model, dict]:
    digest = verify_checksum(files)
    try:
        with open(files.sidecar) as f:
            sidecar = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ClassifierChecksumError(f"classifier sidecar {files.sidecar} is missing or unreadable ({exc}); "
                                      f"delete {files.weights} to retrain") from None
    if sidecar.get("sha256") not in (None, digest):
        raise ClassifierChecksumError(f"classifier sidecar {files.sidecar} records sha256 "
                                      f"{str(sidecar.get('sha256'))[:16]}..., but the weights have {digest[:16]}...")
    if sidecar.get("kind") != kind or sidecar.get("protocol") != protocol:
        raise ClassifierChecksumError(f"classifier sidecar {files.sidecar} is for kind {sidecar.get('kind')!r} / "
                                      f"protocol {sidecar.get('protocol')!r}, expected {kind!r} / {protocol!r}")
    try:
        model = build_classifier(kind, protocol, seed=seed, input_shape=sidecar.get("input_shape"),
                                 num_classes=int(sidecar.get("num_classes", NUM_CLASSES)))
    except (ConfigError, TypeError, ValueError) as exc:
        raise ClassifierChecksumError(f"classifier sidecar {files.sidecar} does not describe a {kind} classifier "
                                      f"({exc}); delete {files.weights} to retrain") from None
    try:
        model.load_weights(files.weights)
    except Exception as exc:  # h5py/Keras raise many types; the checksum matched, so the file is what was saved
        raise ClassifierChecksumError(f"cannot load classifier {files.weights}: {type(exc).__name__}: {exc}") from None
    return model, sidecar


def get_classifier(kind: str, dataset: str, train: Split, test: Split, directory: str, protocol: str = "clean",
                   settings: TrainSettings = TrainSettings(), train_if_missing: bool = True,
                   retrain: bool = False, print_fn=print, modality: str | None = None) -> tuple[keras.Model, dict]:
    """The ``kind`` classifier of ``dataset`` from ``directory``; trained and saved first if missing. ``modality``
    names the modality whose files a per-modality dataset read (``image``: one classifier per modality, told apart
    by the train fingerprint in the file name); it is recorded and shown in messages."""
    check_protocol(protocol)
    dataset_label = f"{dataset} ({modality})" if modality else dataset
    files = ClassifierFiles(directory, classifier_stem(kind, dataset, train.fingerprint, protocol))
    if os.path.isfile(files.weights) and not retrain:
        model, sidecar = load_classifier(kind, protocol, files, seed=settings.seed)
        if sidecar.get("train_fingerprint") != train.fingerprint:
            raise ClassifierChecksumError(
                f"classifier {files.weights} was trained on data with fingerprint {sidecar.get('train_fingerprint')}, "
                f"but {dataset_label}/train has fingerprint {train.fingerprint}")
        return model, {**sidecar, "path": files.weights, "trained_now": False}
    if not train_if_missing:
        raise MMALIError(f"no {kind} classifier for {dataset_label} in {directory} (expected {files.weights}); train "
                         f"it with python -m mmali_tf.tools.train_classifiers or allow training")
    print_fn(f"training the {kind} classifier for {dataset_label} ({protocol} protocol) -> {files.weights}")
    model, info = train_classifier(kind, train, test, protocol, settings, print_fn=print_fn)
    sidecar = {
        "version": SIDECAR_VERSION, "kind": kind, "dataset": dataset, "protocol": protocol,
        **({"modality": modality} if modality else {}),
        "train_fingerprint": train.fingerprint, "test_fingerprint": test.fingerprint,
        "train_source": train.source, "test_source": test.source,
        "tensorflow": tf.__version__, "keras": keras.__version__, **info,
    }
    sidecar = save_classifier(model, files, sidecar)
    print_fn(f"  saved; test accuracy {sidecar['test_accuracy']:.4f} (epoch {sidecar['selected_epoch']} of "
             f"{sidecar['epochs']}, selected on {sidecar['selection']})")
    return model, {**sidecar, "path": files.weights, "trained_now": True}


# ----------------------------------------------------------------------------------------------------------------
# Per-modality view: un-rotate, then classify with the base kind's classifier


def unrotate(images: tf.Tensor, quarter_turns: int) -> tf.Tensor:
    """Undo ``np.rot90(images, k=quarter_turns, axes=(1, 2))`` on NHWC images."""
    k = (-int(quarter_turns)) % 4
    # Reverses and transposes, not tf.image.rot90: its graph trips a grappler optimizer into printing warnings.
    if k == 1:
        return tf.transpose(tf.reverse(images, [2]), [0, 2, 1, 3])
    if k == 2:
        return tf.reverse(images, [1, 2])
    if k == 3:
        return tf.transpose(tf.reverse(images, [1]), [0, 2, 1, 3])
    return images


class ModalityClassifier:
    """Callable: float images of one modality in [0, 1] (NHWC, possibly rotated) → [B, 10] logits."""

    def __init__(self, model: keras.Model, quarter_turns: int = 0, info: dict | None = None):
        self.model = model
        self.quarter_turns = int(quarter_turns)
        self.info = info or {}

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        return self.model(unrotate(images, self.quarter_turns), training=False)
