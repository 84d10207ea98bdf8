"""Cross, joint and synergy coherence (docs/authors_code.md, section 4.2), for any M >= 2 named modalities.

* ``coherence/<a>_to_<b>``: over the test tuples, a sample ``z ~ q(z | x_a)`` (the whole latent, so the *source*
  style is kept, as the reference) is decoded by ``b``'s decoder and classified by ``b``'s classifier; the score is
  the accuracy against the tuple's label.
* ``coherence/joint``: ``num_prior`` (10,000) draws ``z ~ N(0, I)``; the *same* z (style and content) is decoded by
  every decoder; the score is the fraction where all classifiers predict the same digit. ``coherence/joint_chance``
  is the agreement that the decoders' class frequencies alone would give (see :func:`joint_coherence`).
* ``synergy/<m>``: the content of a sample of the geometric-mean ("PoE-average") posterior of all M modalities,
  joined with ``m``'s own posterior style sample, decoded by ``m``'s decoder and classified against the label.

Every modality's decoder output is un-rotated (``quarter_turns``) before its classifier, which is the classifier of
its base kind trained on the un-rotated dataset (:class:`classifiers.ModalityClassifier`).

Cost: the (deterministic) encoders run once per distinct test image (:func:`latent.encode_split`); each batch of
tuples then gathers the stored [mean | logvar], samples, and runs the decoders and classifiers inside one
``tf.function``. All noise is stateless, keyed on (seed, batch index, stream), so results are reproducible.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from mmali_tf import losses
from mmali_tf.errors import DataError
from mmali_tf.evaluation.latent import encode_split
from mmali_tf.evaluation.progress import Progress
from mmali_tf.noise import StepNoise


@dataclasses.dataclass(frozen=True)
class CoherenceSettings:
    batch_size: int = 1000
    num_prior: int = 10_000
    seed: int = 0
    max_pairs: int = 0  # 0 = every test tuple; otherwise an evenly spaced subset of max_pairs (quick checks)
    jit_compile: bool = False


def subset_of_pairs(num_pairs: int, max_pairs: int) -> np.ndarray:
    """Indices of the tuples to evaluate: all, or ``max_pairs`` evenly spaced ones. The pairing lists tuples class
    by class, so a prefix would hold one or two digits; every k-th tuple keeps the class mix."""
    if not max_pairs or max_pairs >= num_pairs:
        return np.arange(num_pairs)
    return np.arange(max_pairs, dtype=np.int64) * num_pairs // max_pairs


def _labels_of_pairs(test_splits: dict, pairs: dict[str, np.ndarray], names) -> np.ndarray:
    labels = np.asarray(test_splits[names[0]].labels)[pairs[names[0]]]
    for name in names[1:]:
        other = np.asarray(test_splits[name].labels)[pairs[name]]
        if not np.array_equal(labels, other):
            raise DataError(f"test tuples of {names[0]!r} and {name!r} disagree on labels; pairs are not same-label")
    return labels.astype(np.int64)


def _num_classes(classifier) -> int:
    """Outputs of a classifier (a ``ModalityClassifier`` or any callable with a Keras ``model``); 10 otherwise."""
    model = getattr(classifier, "model", None)
    return int(model.output_shape[-1]) if model is not None else 10


def _predict(classifier, images) -> tf.Tensor:
    return tf.argmax(classifier(images), axis=-1)


def cross_and_synergy(model, test_splits: dict, pairs: dict[str, np.ndarray], classifiers: dict,
                      settings: CoherenceSettings = CoherenceSettings(), cross: bool = True, synergy: bool = True,
                      encodings: dict | None = None, print_fn=print) -> dict[str, float]:
    """Cross coherence for every ordered pair of modalities and/or synergy for every modality, over the tuples
    ``pairs`` ({name: int64 [T] indices into that modality's test split}).

    ``model`` provides ``names``, ``ema_encoders``, ``ema_decoders``, ``latent`` (style/content/join).
    ``classifiers``: {name: callable float images -> logits}. ``encodings`` may hold precomputed
    {(name, "test"): (mean, logvar)} (shared with the latent probe).
    """
    names = list(model.names)
    if not (cross or synergy):
        return {}
    encodings = {} if encodings is None else encodings
    for name in names:
        if (name, "test") not in encodings:
            encodings[(name, "test")] = encode_split(model.ema_encoders[name], test_splits[name].images,
                                                     settings.batch_size, settings.jit_compile,
                                                     label=f"encode {name}/test", print_fn=print_fn)
    keep = subset_of_pairs(len(pairs[names[0]]), settings.max_pairs)
    pair_idx = {n: np.asarray(pairs[n], np.int64)[keep] for n in names}
    total = len(keep)
    labels = _labels_of_pairs(test_splits, pair_idx, names)
    means = {n: tf.constant(encodings[(n, "test")][0]) for n in names}
    logvars = {n: tf.constant(encodings[(n, "test")][1]) for n in names}
    lat = model.latent
    decoders = model.ema_decoders
    keys = ([f"coherence/{a}_to_{b}" for a in names for b in names if a != b] if cross else []) + \
           ([f"synergy/{m}" for m in names] if synergy else [])

    @tf.function(jit_compile=settings.jit_compile)
    def batch_counts(idx, y, batch_index):
        noise = StepNoise(settings.seed, batch_index)
        mean = {n: tf.gather(means[n], idx[n]) for n in names}
        logvar = {n: tf.gather(logvars[n], idx[n]) for n in names}
        counts = {}

        def correct(name, z):
            pred = _predict(classifiers[name], decoders[name](z, training=False))
            return tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.int64))

        if cross:
            for a in names:
                z = losses.reparameterize(mean[a], logvar[a], noise.normal(f"cross/{a}", tf.shape(mean[a])))
                for b in names:
                    if b != a:
                        counts[f"coherence/{a}_to_{b}"] = correct(b, z)
        if synergy:
            joint_mean, joint_logvar = losses.geometric_mean_posterior([mean[n] for n in names],
                                                                       [logvar[n] for n in names])
            z_joint = losses.reparameterize(joint_mean, joint_logvar,
                                            noise.normal("synergy/joint", tf.shape(joint_mean)))
            for m in names:
                z_own = losses.reparameterize(mean[m], logvar[m], noise.normal(f"synergy/{m}", tf.shape(mean[m])))
                counts[f"synergy/{m}"] = correct(m, lat.join(lat.style(z_own), lat.content(z_joint)))
        return counts

    sums = {k: 0 for k in keys}
    progress = Progress(total, "cross/synergy coherence" if cross and synergy else ("cross coherence" if cross
                                                                                    else "synergy"),
                        print_fn=print_fn)
    b = int(settings.batch_size)
    for i, start in enumerate(range(0, total, b)):
        stop = min(start + b, total)
        counts = batch_counts({n: tf.constant(pair_idx[n][start:stop]) for n in names},
                              tf.constant(labels[start:stop]), tf.constant(i, tf.int64))
        for k in keys:
            sums[k] += int(counts[k])
        progress.update(stop)
    return {k: sums[k] / total for k in keys}


def joint_coherence(model, classifiers: dict, settings: CoherenceSettings = CoherenceSettings(),
                    print_fn=print) -> dict[str, float]:
    """``coherence/joint``: fraction of ``num_prior`` shared prior draws on whose decodings all classifiers agree.

    Also ``coherence/joint_chance``: the agreement expected if each decoder's predicted class were drawn
    independently from its own class frequencies over the same draws, ``sum_k prod_m p_m(k)``. It tells a coherent
    model (joint well above joint_chance) from decoders that merely favour the same few digits (joint close to a
    high joint_chance) or that each always draw one different digit (both 0, as a freshly initialised model).
    """
    names = list(model.names)
    latent_dim = int(model.config.model.latent_dim)
    decoders = model.ema_decoders
    classes = max(_num_classes(classifiers[n]) for n in names)

    @tf.function(jit_compile=settings.jit_compile)
    def batch_predictions(size, batch_index):
        z = StepNoise(settings.seed, batch_index).normal("joint/prior", tf.stack([size, latent_dim]))
        preds = [_predict(classifiers[n], decoders[n](z, training=False)) for n in names]
        agree = tf.reduce_all(tf.stack([tf.equal(p, preds[0]) for p in preds[1:]], axis=0), axis=0)
        counts = tf.stack([tf.math.bincount(tf.cast(p, tf.int32), minlength=classes, maxlength=classes,
                                            dtype=tf.int64) for p in preds])
        return tf.reduce_sum(tf.cast(agree, tf.int64)), counts

    total, agreed, class_counts = int(settings.num_prior), 0, np.zeros((len(names), classes), np.int64)
    progress = Progress(total, "joint coherence", print_fn=print_fn)
    for i, start in enumerate(range(0, total, settings.batch_size)):
        size = min(settings.batch_size, total - start)
        batch_agreed, batch_counts = batch_predictions(tf.constant(size), tf.constant(i, tf.int64))
        agreed += int(batch_agreed)
        class_counts += batch_counts.numpy()
        progress.update(start + size)
    shares = class_counts / total
    return {"coherence/joint": agreed / total, "coherence/joint_chance": float(np.sum(np.prod(shares, axis=0)))}
