"""Latent accuracy: a linear probe on the frozen EMA encoder's latent (docs/authors_code.md, section 4.1; paper Tables 2 and 3).

The reference wraps the frozen encoder and a ``Linear(20 -> 10)`` and trains it with Adam(1e-3, 0.9, 0.999),
batch 256, shuffled, 100 epochs on the full unimodal train split, testing after every epoch on the full test split
and reporting the *maximum* test accuracy, with features that are a fresh reparameterised sample at every forward.

The encoder is frozen and deterministic, so its output ``[mean | logvar]`` is computed once per image here
(:func:`encode_split`); the probe then trains on those 20-d features entirely inside one ``tf.function`` per epoch,
drawing the reference's fresh sample per step from the stored mean and log-variance. That is the same computation
as the reference (the sample has the same distribution), at the cost of one encoder pass over each split instead of
100.

Protocols:

* ``clean``: features are the posterior *mean*, z-scored with the train split's statistics (:func:`standardize`);
  the probe is trained for ``epochs`` and the final-epoch test accuracy is reported (no model selection on the test
  set). Keys ``latent_acc/<m>``, ``latent_acc_content/<m>`` (content dims only), ``latent_acc_style/<m>`` (style
  dims only, omitted when ``style_dim == 0``).
* ``reference``: features are the sampled latent; ``latent_acc*`` keys hold the final-epoch accuracy and
  ``latent_acc_max*/<m>`` the maximum over epochs (the reference's reported number).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from mmali_tf import losses
from mmali_tf.data.pipeline import to_model_input
from mmali_tf.errors import ConfigError
from mmali_tf.evaluation.progress import Progress

VARIANTS = ("", "_content", "_style")


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0


def encode_split(encoder, images: np.ndarray, batch_size: int = 1000, jit_compile: bool = False,
                 label: str = "encode", print_fn=print) -> tuple[np.ndarray, np.ndarray]:
    """``encoder`` over ``images`` (uint8 NHWC images or float32 feature vectors, converted as the training
    pipeline does) in batches: (mean, logvar), each float32 [N, L]."""
    @tf.function(jit_compile=jit_compile)
    def run(x):
        return losses.split_gaussian(encoder(to_model_input(x), training=False))

    means, logvars = [], []
    progress = Progress(len(images), label, print_fn=print_fn)
    for i in range(0, len(images), batch_size):
        mean, logvar = run(tf.convert_to_tensor(images[i:i + batch_size]))
        means.append(mean.numpy())
        logvars.append(logvar.numpy())
        progress.update(min(i + batch_size, len(images)))
    return np.concatenate(means), np.concatenate(logvars)


def num_classes_of(*labels) -> int:
    """The probe's outputs: the largest label + 1 (10 for digits), at least 2."""
    return max(2, max(int(np.max(y)) + 1 for y in labels if len(y)))


def train_probe(train: tuple[np.ndarray, np.ndarray], train_labels: np.ndarray,
                test: tuple[np.ndarray, np.ndarray], test_labels: np.ndarray, *, sampled: bool,
                settings: ProbeSettings = ProbeSettings(), stream: int = 0) -> list[float]:
    """One probe on all feature columns; see :func:`train_probes`."""
    dim = int(np.shape(train[0])[1])
    return train_probes(train, train_labels, test, test_labels, {"all": slice(0, dim)}, sampled=sampled,
                        settings=settings, stream=stream)["all"]


def train_probes(train: tuple[np.ndarray, np.ndarray], train_labels: np.ndarray,
                 test: tuple[np.ndarray, np.ndarray], test_labels: np.ndarray, groups: dict[str, slice], *,
                 sampled: bool, settings: ProbeSettings = ProbeSettings(), stream: int = 0,
                 jit_compile: bool = False) -> dict[str, list[float]]:
    """Independent softmax regressions, one per column group, trained as the reference's probe; returns each one's
    test accuracy per epoch. One output per class, 0 to the largest label (:func:`num_classes_of`).

    ``train``/``test`` are (mean, logvar) [N, d] arrays; with ``sampled`` the features are ``mean + exp(logvar/2) e``
    with fresh ``e ~ N(0, I)`` every step (train) and every epoch (test), otherwise the mean. Each group's probe sees
    only its columns (``groups``, e.g. full / content / style); the groups share the batch order and the noise
    draws but no parameters, so this equals training them one after the other. Weights start as PyTorch's
    ``nn.Linear`` default (uniform in +-1/sqrt(d)); Adam as ``torch.optim.Adam`` (eps 1e-8, bias correction); the last,
    smaller batch of each epoch is kept (``drop_last=False``). ``stream`` separates the random streams of probes
    trained with the same seed.
    """
    train_mean, train_logvar = (tf.constant(np.asarray(a, np.float32)) for a in train)
    test_mean, test_logvar = (tf.constant(np.asarray(a, np.float32)) for a in test)
    n = int(train_mean.shape[0])
    cols = {}
    for name, group in groups.items():
        cols[name] = list(range(int(train_mean.shape[1])))[group]
        if not cols[name]:
            raise ConfigError(f"linear probe {name!r} has no feature columns")
    y_train = tf.constant(np.asarray(train_labels, np.int64))
    y_test = tf.constant(np.asarray(test_labels, np.int64))
    num_classes = num_classes_of(train_labels, test_labels)
    batch, num_batches = int(settings.batch_size), math.ceil(n / settings.batch_size)
    first = tf.constant((int(settings.seed) << 20) + int(stream), tf.int64)

    def seed(purpose, epoch, i=0):
        # Stateless seed of one draw: (seed, probe stream) x (purpose, epoch, step).
        second = (tf.cast(epoch, tf.int64) * 8 + purpose) * (1 << 24) + tf.cast(i, tf.int64)
        return tf.stack([first, second])

    params = {}
    for k, name in enumerate(cols):
        bound = 1.0 / math.sqrt(len(cols[name]))
        params[name] = (tf.Variable(tf.random.stateless_uniform([len(cols[name]), num_classes], seed(3, k, 0), -bound,
                                                                bound)),
                        tf.Variable(tf.random.stateless_uniform([num_classes], seed(3, k, 1), -bound, bound)))
    variables = [v for pair in params.values() for v in pair]
    moments = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in variables]
    t = tf.Variable(0.0)
    lr, beta1, beta2, eps = float(settings.lr), 0.9, 0.999, 1e-8

    def features(mean, logvar, noise_seed):
        if not sampled:
            return mean
        return losses.reparameterize(mean, logvar, tf.random.stateless_normal(tf.shape(mean), seed=noise_seed))

    def logits(x, name):
        w, b = params[name]
        return tf.matmul(tf.gather(x, cols[name], axis=1), w) + b

    padding = num_batches * batch - n

    # Static shapes (the last batch is padded and masked) so that the epoch can be XLA-compiled; on CPU that is
    # no faster and costs seconds of compilation, so XLA is off by default.
    @tf.function(jit_compile=jit_compile)
    def run_epoch(epoch):
        perm = tf.argsort(tf.random.stateless_uniform([n], seed(0, epoch)), stable=True)
        perm = tf.reshape(tf.concat([perm, tf.zeros([padding], perm.dtype)], 0), [num_batches, batch])
        mask = tf.reshape(tf.concat([tf.ones([n]), tf.zeros([padding])], 0), [num_batches, batch])
        for i in tf.range(num_batches):
            idx, valid = perm[i], mask[i]
            x = features(tf.gather(train_mean, idx), tf.gather(train_logvar, idx), seed(1, epoch, i))
            y = tf.gather(y_train, idx)
            with tf.GradientTape() as tape:
                # A sum of per-probe mean losses over the batch's real rows: each probe gets its own loss's gradient.
                loss = tf.add_n([tf.reduce_sum(valid * tf.nn.sparse_softmax_cross_entropy_with_logits(
                    y, logits(x, name))) / tf.reduce_sum(valid) for name in cols])
            grads = tape.gradient(loss, variables)
            t.assign_add(1.0)
            for v, g, (m, s2) in zip(variables, grads, moments):
                m.assign(beta1 * m + (1.0 - beta1) * g)
                s2.assign(beta2 * s2 + (1.0 - beta2) * tf.square(g))
                m_hat = m / (1.0 - tf.pow(beta1, t))
                v_hat = s2 / (1.0 - tf.pow(beta2, t))
                v.assign_sub(lr * m_hat / (tf.sqrt(v_hat) + eps))
        x_test = features(test_mean, test_logvar, seed(2, epoch))
        return {name: tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits(x_test, name), axis=-1), y_test), tf.float64))
                for name in cols}

    history = {name: [] for name in cols}
    for e in range(int(settings.epochs)):
        for name, value in run_epoch(tf.constant(e, tf.int64)).items():
            history[name].append(float(value))
    return history


def standardize(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]):
    """Z-score the (mean) features with the train split's per-dimension mean and standard deviation.

    An affine map, so a linear probe can represent the same decision rules; it only makes Adam at lr 1e-3 work on
    features of any scale (an untrained encoder's means are ~1e-2 and would otherwise stay at the majority class).
    Used by the clean protocol, whose features are the posterior means; the reference protocol leaves its sampled
    features as they are."""
    centre = train[0].mean(axis=0)
    scale = train[0].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return ((train[0] - centre) / scale, train[1]), ((test[0] - centre) / scale, test[1])


def _columns(variant: str, style_dim: int, latent_dim: int) -> slice | None:
    if variant == "":
        return slice(0, latent_dim)
    if variant == "_content":
        return slice(style_dim, latent_dim)
    return slice(0, style_dim) if style_dim > 0 else None


def latent_accuracy(model, train_splits: dict, test_splits: dict, protocol: str = "clean",
                    settings: ProbeSettings = ProbeSettings(), encodings: dict | None = None,
                    batch_size: int = 1000, jit_compile: bool = False, print_fn=print) -> dict[str, float]:
    """Probe accuracies for every modality of ``model`` (``ema_encoders``, ``config.model``).

    ``train_splits``/``test_splits``: {name: Split} as the model sees them (rotated modalities rotated).
    ``encodings`` may hold precomputed {(name, split): (mean, logvar)}; missing ones are computed and added.
    """
    cfg = model.config.model
    encodings = {} if encodings is None else encodings
    sampled = protocol == "reference"
    out: dict[str, float] = {}
    for stream, name in enumerate(model.names):
        for split, splits in (("train", train_splits), ("test", test_splits)):
            if (name, split) not in encodings:
                encodings[(name, split)] = encode_split(model.ema_encoders[name], splits[name].images, batch_size,
                                                        jit_compile, label=f"encode {name}/{split}",
                                                        print_fn=print_fn)
        tr, te = encodings[(name, "train")], encodings[(name, "test")]
        if not sampled:
            tr, te = standardize(tr, te)
        groups = {variant: _columns(variant, cfg.style_dim, cfg.latent_dim) for variant in VARIANTS}
        groups = {variant: cols for variant, cols in groups.items() if cols is not None}
        histories = train_probes(tr, train_splits[name].labels, te, test_splits[name].labels, groups,
                                 sampled=sampled, settings=settings, stream=stream, jit_compile=jit_compile)
        for variant, history in histories.items():
            out[f"latent_acc{variant}/{name}"] = history[-1]
            if protocol == "reference":
                out[f"latent_acc{variant}_max/{name}"] = max(history)
            print_fn(f"  probe{variant or ' (full latent)'} {name}: final {history[-1]:.4f}, "
                     f"max {max(history):.4f} over {len(history)} epochs")
    return out
