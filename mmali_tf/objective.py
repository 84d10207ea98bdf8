"""The MMALI objective: every loss term of one training iteration, by name, next to what it estimates.

Written for any number M of modalities, addressed by name, in the order of the config. ``docs/objective.md``
derives each term from the paper (eqs. 4-10) and from the authors' ``FactorModel.forward_jsd2``; it is the design
note this module cites. Notation::

    E_m(x) -> z = [s | c] ~ q(z | x_m)    encoder of modality m: private style s, shared content c
    G_m(z) -> x                           decoder of modality m
    D0_m(x, z) -> M+1 logits               class 0 "own encoder" q(x_m, s_m, c), class 1 "decoder" p(x_m, s_m, c),
                                          class 2.. "cross content": (x_m, [s_m, c_k]) for the other modalities k
    D1_m(x, z) -> 1 logit                  q(x_m, s_m, c) against q(x_m, s_m) p(c)
    DJ(x_1, ..., x_M) -> 1 logit           q(X) against the product of marginals prod_m q(x_m)
    D(x_1, ..., x_M, [s_1..s_M, c])        the joint-discriminator baseline's single (M+1)-way critic

Each iteration uses four fresh paired batches (``batches[call][modality]``): ``d_unimodal`` and ``d_joint`` for the
discriminator step, ``g_unimodal`` and ``g_joint`` for the generator step. A ``d_marginal`` batch, when the pipeline
supplies one (unpaired data), replaces the in-batch shuffles as DJ's negatives.

Term dictionaries keep the authors' order, so that their sum (:func:`total`) adds left to right as theirs does.
Randomness comes from ``noise`` (:class:`mmali_tf.noise.StepNoise` or a replay of recorded draws), by stream name.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from typing import Callable, Mapping, Sequence

import tensorflow as tf

from mmali_tf import losses
from mmali_tf.config import LossConfig, ModelConfig
from mmali_tf.networks.step_scope import rows

Net = Callable[..., tf.Tensor]

ENCODER, DECODER = 0, 1
"""D0's first two classes: (x, z) from the modality's own encoder, and from its decoder."""


@dataclasses.dataclass(frozen=True)
class Networks:
    """The players by modality name: encoders, decoders, and the critics ``d0``, ``d1``, ``dj`` (factorized model)
    or ``d_baseline`` (joint-discriminator baseline). Critics are called on one tuple: ``d0[m](x, z)``."""

    encoders: Mapping[str, Net]
    decoders: Mapping[str, Net]
    d0: Mapping[str, Net] = dataclasses.field(default_factory=dict)
    d1: Mapping[str, Net] = dataclasses.field(default_factory=dict)
    dj: Net | None = None
    d_baseline: Net | None = None


class Latent:
    """z = [style | content], the authors' layout (style first)."""

    def __init__(self, cfg: ModelConfig):
        self.style_dim = cfg.style_dim
        self.latent_dim = cfg.latent_dim

    def style(self, z):
        return z[:, : self.style_dim]

    def content(self, z):
        return z[:, self.style_dim:]

    def join(self, style, content):
        return tf.concat([style, content], axis=-1)


def total(terms: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """The player's loss: the plain sum of its terms, added left to right in dict order."""
    return functools.reduce(operator.add, terms.values())


def cross_content_label(names: Sequence[str], own: str, other: str) -> int:
    """D0_own's class for "own style, content encoded from ``other``": 2, 3, ... over the other modalities in order."""
    return 2 + [n for n in names if n != own].index(other)


def _posterior_sample(nets: Networks, name: str, x, noise, stream: str):
    """z ~ q(z | x) by reparameterisation, and the posterior's (mean, logvar)."""
    mean, logvar = losses.split_gaussian(tf.cast(nets.encoders[name](x, training=True), tf.float32))
    return losses.reparameterize(mean, logvar, noise.normal(stream, tf.shape(mean))), mean, logvar


def _batch_size(xs: Mapping[str, tf.Tensor]) -> tf.Tensor:
    return tf.shape(next(iter(xs.values())))[0]


# ----------------------------------------------------------------------------------------------------------------
# The factorized discriminators (MMALI)
# ----------------------------------------------------------------------------------------------------------------


def discriminator_losses(nets: Networks, batches, noise, cfg: ModelConfig, loss_cfg: LossConfig,
                         scores: dict | None = None) -> dict:
    """The discriminator step's terms (docs/objective.md, "Discriminator step"); :func:`total` is the D loss.

    The discriminators learn the density ratios that eqs. (7) and (10) factorize the (M+1)-way critic of eq. (4)
    into. Encoders and decoders are constants here. ``scores``, if given, receives each critic's logits on its real
    and its generated (or shuffled) tuples with their classes, for monitoring (:func:`critic_scores`).
    """
    if cfg.discriminator == "joint":
        return baseline_discriminator_losses(nets, batches, noise, cfg, loss_cfg, scores)
    lat, names = Latent(cfg), cfg.names
    terms: dict[str, tf.Tensor] = {}
    observe = _observer(scores)

    # Unimodal batch: each modality alone, with its own prior z.
    x = batches["d_unimodal"]
    for m in names:
        d0, d1 = nets.d0[m], nets.d1[m]
        z_q = tf.stop_gradient(_posterior_sample(nets, m, x[m], noise, f"dA/{m}/posterior")[0])
        z_p = noise.normal(f"dA/{m}/prior", tf.shape(z_q))
        x_p = tf.stop_gradient(nets.decoders[m](z_p, training=True))
        # D0_m tells q(x_m, z) (class 0) from p(x_m, z) (class 1): the ratio q(x_i, z)/p(x_i, z) of eq. (7).
        logits_q, logits_p = d0(x[m], z_q), d0(x_p, z_p)
        terms[f"{m}_c0"] = losses.cross_entropy(logits_q, ENCODER)
        terms[f"{m}_c1"] = losses.cross_entropy(logits_p, DECODER)
        observe(f"d0_{m}", logits_q, ENCODER, logits_p, DECODER)
        # D1_m tells q(x_m, s_m, c) from q(x_m, s_m) p(c), eq. (10): the negative shuffles (x, s) jointly and swaps
        # the content for an (independently shuffled) prior draw.
        shuffle = noise.permutation(f"dA/{m}/shuffle", tf.shape(x[m])[0])
        prior_shuffle = noise.permutation(f"dA/{m}/prior_shuffle", tf.shape(x[m])[0])
        z_swapped = lat.join(rows(lat.style(z_q), shuffle), rows(lat.content(z_p), prior_shuffle))
        positive, negative = d1(x[m], z_q), d1(rows(x[m], shuffle), z_swapped)
        terms[f"{m}_1"] = losses.binary_real(positive) + losses.binary_fake(negative)
        observe(f"d1_{m}", positive, 1, negative, 0)

    # Joint batch: paired tuples.
    x = batches["d_joint"]
    # DJ tells q(X) from prod_m q(x_m), the first factor of eqs. (7) and (10). Product-of-marginals negatives:
    # independent per-modality draws when the pipeline supplies them, else each modality shuffled on its own.
    if "d_marginal" in batches:
        marginals = [batches["d_marginal"][m] for m in names]
    else:
        marginals = [rows(x[m], noise.permutation(f"dB/{m}/marginal", tf.shape(x[m])[0])) for m in names]
    positive, negative = nets.dj(*(x[m] for m in names)), nets.dj(*marginals)
    terms["joint"] = losses.binary_real(positive) + losses.binary_fake(negative)
    observe("dj", positive, 1, negative, 0)
    z_q = {m: tf.stop_gradient(_posterior_sample(nets, m, x[m], noise, f"dB/{m}/posterior")[0]) for m in names}
    # D0_m's cross-content classes: real x_m with its own style and the content encoded from another modality k.
    for m in names:
        for k in names:
            if k != m:
                z_mk = lat.join(lat.style(z_q[m]), lat.content(z_q[k]))
                label = cross_content_label(names, m, k)
                terms[f"{m}_c{label}"] = losses.cross_entropy(nets.d0[m](x[m], z_mk), label)
    return terms


def generator_losses(nets: Networks, batches, noise, cfg: ModelConfig, loss_cfg: LossConfig) -> dict:
    """The encoder/decoder step's terms, weighted (docs/objective.md, "Generator step"); :func:`total` is the G loss.

    Every adversarial term is the non-saturating loss of a tuple against its own class (Dandi et al. 2021): the
    joint terms weigh 2/(M+1) each (eq. 4 over the M+1 tuples), the unimodal D0 terms lambda_u * 2/(M+1).
    """
    if cfg.discriminator == "joint":
        return baseline_generator_losses(nets, batches, noise, cfg, loss_cfg)
    lat, names = Latent(cfg), cfg.names
    num = len(names)
    w_joint = 2.0 / (num + 1)
    w_unimodal = loss_cfg.lambda_unimodal * w_joint
    terms: dict[str, tf.Tensor] = {}

    # Unimodal batch: align q(x_m, z) and p(x_m, z) through D0_m, one modality at a time.
    x = batches["g_unimodal"]
    z_q, z_p, x_p = {}, {}, {}
    for m in names:
        z_q[m] = _posterior_sample(nets, m, x[m], noise, f"gA/{m}/posterior")[0]
        z_p[m] = noise.normal(f"gA/{m}/prior", tf.shape(z_q[m]))
        x_p[m] = nets.decoders[m](z_p[m], training=True)
    for m in names:
        terms[f"{m}_c0"] = w_unimodal * losses.non_saturating(nets.d0[m](x[m], z_q[m]), ENCODER)
        terms[f"{m}_c1"] = w_unimodal * losses.non_saturating(nets.d0[m](x_p[m], z_p[m]), DECODER)
    for m in names:
        weight = _rec_weight(cfg, m)
        if loss_cfg.lambda_x_rec > 0 and not loss_cfg.joint_rec:  # autoencoding: G_m(E_m(x_m)) = x_m
            x_rec = nets.decoders[m](z_q[m], training=True)
            terms[f"{m}_x_rec"] = weight * loss_cfg.lambda_x_rec * losses.mean_squared_error(x_rec, x[m])
        content_cycle = loss_cfg.lambda_c_rec > 0 and not loss_cfg.joint_rec
        style_cycle = loss_cfg.lambda_s_rec > 0 and cfg.style_dim > 0
        if content_cycle or style_cycle:  # latent cycle: E_m(G_m(z)) = z
            z_cycle = _posterior_sample(nets, m, x_p[m], noise, f"gA/{m}/cycle")[0]
            if content_cycle:
                terms[f"{m}_c_rec"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(
                    lat.content(z_cycle), lat.content(z_p[m]))
            if style_cycle:
                terms[f"{m}_s_rec"] = loss_cfg.lambda_s_rec * losses.mean_squared_error(
                    lat.style(z_cycle), lat.style(z_p[m]))

    # Joint batch: the M+1 tuples of eq. (4) with the latent split of eqs. (8)-(9).
    x = batches["g_joint"]
    encoded = {m: _posterior_sample(nets, m, x[m], noise, f"gB/{m}/posterior") for m in names}
    z_q = {m: encoded[m][0] for m in names}
    batch = _batch_size(x)
    c_p = noise.normal("gB/prior_content", tf.stack([batch, cfg.content_dim]))  # decoder tuple, eq. (9)
    z_p = {m: lat.join(noise.normal(f"gB/{m}/prior_style", tf.stack([batch, cfg.style_dim])), c_p) for m in names}
    x_p = {m: nets.decoders[m](z_p[m], training=True) for m in names}
    # "Encoder k" tuple, eq. (8): the real X, every modality with its own style and modality k's content.
    z_mk = {(m, k): lat.join(lat.style(z_q[m]), lat.content(z_q[k])) for m in names for k in names}

    def joint_logits(xs, zs, dj_logit):
        """The (M+1)-way critic of eq. (4) assembled from the factors of eq. (10), for one tuple (x_m, z_m)_m."""
        d0 = [nets.d0[m](xs[m], zs[m]) for m in names]
        return losses.factorized_joint_logits([l0[:, ENCODER] - l0[:, DECODER] for l0 in d0],
                                              [nets.d1[m](xs[m], zs[m])[:, 0] for m in names], dj_logit[:, 0])

    dj_real = nets.dj(*(x[m] for m in names))
    for label, k in enumerate(names):
        logits = joint_logits(x, {m: z_mk[m, k] for m in names}, dj_real)
        terms[f"joint_q{label}"] = w_joint * losses.non_saturating(logits, label)
    logits = joint_logits(x_p, z_p, nets.dj(*(x_p[m] for m in names)))
    terms["joint_p"] = w_joint * losses.non_saturating(logits, num)
    # D0_m's cross-content classes, from the generator side.
    for m in names:
        for k in names:
            if k != m:
                label = cross_content_label(names, m, k)
                terms[f"{m}_c{label}"] = w_unimodal * losses.non_saturating(nets.d0[m](x[m], z_mk[m, k]), label)

    if loss_cfg.joint_rec:  # reconstructions through the geometric-mean joint posterior (the authors' joint_rec)
        if loss_cfg.lambda_c_rec > 0:  # content cycle: the joint posterior of the decoded tuple recovers c
            fakes = [losses.split_gaussian(tf.cast(nets.encoders[m](x_p[m], training=True), tf.float32))
                     for m in names]
            mean, logvar = losses.geometric_mean_posterior(*zip(*fakes))
            c_cycle = lat.content(losses.reparameterize(mean, logvar, noise.normal("gB/cycle_joint", tf.shape(mean))))
            terms["joint_c_rec"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(c_cycle, c_p)
        if loss_cfg.lambda_x_rec > 0:  # each x_m from its own style and the joint content of the real tuple
            mean, logvar = losses.geometric_mean_posterior([encoded[m][1] for m in names],
                                                           [encoded[m][2] for m in names])
            z_joint = losses.reparameterize(mean, logvar, noise.normal("gB/posterior_joint", tf.shape(mean)))
            for m in names:
                x_rec = nets.decoders[m](lat.join(lat.style(z_q[m]), lat.content(z_joint)), training=True)
                terms[f"{m}_x_rec_joint"] = (_rec_weight(cfg, m) * loss_cfg.lambda_x_rec
                                             * losses.mean_squared_error(x_rec, x[m]))
    return terms


def _observer(scores: dict | None):
    def observe(critic, real_logits, real_class, fake_logits, fake_class):
        if scores is not None:
            scores[critic] = ((real_logits, real_class), (fake_logits, fake_class))

    return observe


def critic_scores(scores: dict) -> dict[str, tf.Tensor]:
    """Per critic, from the logits :func:`discriminator_losses` observed: the mean logit and the mean probability of
    the true class on real and on generated tuples, and the accuracy over both (argmax for M+1 classes, sign for
    one logit)."""
    out = {}
    for critic, ((real, real_class), (fake, fake_class)) in scores.items():
        hits = []
        for side, logits, label in (("real", real, real_class), ("fake", fake, fake_class)):
            if logits.shape[-1] == 1:
                prob = tf.sigmoid(logits[:, 0]) if label == 1 else tf.sigmoid(-logits[:, 0])
                hits.append(tf.cast(prob > 0.5, tf.float32))
                out[f"{critic}/logit_{side}"] = tf.reduce_mean(logits)
            else:
                prob = tf.nn.softmax(logits)[:, label]
                hits.append(tf.cast(tf.equal(tf.argmax(logits, axis=-1), label), tf.float32))
                out[f"{critic}/logit_{side}"] = tf.reduce_mean(logits[:, label])
            out[f"{critic}/p_{side}"] = tf.reduce_mean(prob)
        out[f"{critic}/accuracy"] = tf.reduce_mean(tf.concat(hits, axis=0))
    return out


def _rec_weight(cfg: ModelConfig, name: str) -> float:
    return next(m.rec_weight for m in cfg.modalities if m.name == name)


# ----------------------------------------------------------------------------------------------------------------
# The joint-discriminator baseline (one (M+1)-way critic on the whole tuple, eq. 4 without factorization)
# ----------------------------------------------------------------------------------------------------------------


def _baseline_tuples(nets: Networks, x, noise, cfg: ModelConfig, call: str):
    """The M+1 tuples of eq. (4) for the critic D(x_1..x_M, [s_1..s_M, c]), as (images, z) pairs.

    Class k < M: the real tuple with every encoded style and modality k's encoded content. Class M: the decoded
    tuple of per-modality prior styles and one shared prior content.
    """
    lat, names = Latent(cfg), cfg.names
    z_q = {m: _posterior_sample(nets, m, x[m], noise, f"{call}/{m}/posterior")[0] for m in names}
    batch = _batch_size(x)
    c_p = noise.normal(f"{call}/prior_content", tf.stack([batch, cfg.content_dim]))
    s_p = {m: noise.normal(f"{call}/{m}/prior_style", tf.stack([batch, cfg.style_dim])) for m in names}
    x_p = [nets.decoders[m](lat.join(s_p[m], c_p), training=True) for m in names]
    styles_q = [lat.style(z_q[m]) for m in names]
    tuples = [([x[m] for m in names], tf.concat(styles_q + [lat.content(z_q[k])], axis=-1)) for k in names]
    tuples.append((x_p, tf.concat([s_p[m] for m in names] + [c_p], axis=-1)))
    return tuples


def _baseline_calls(loss_cfg: LossConfig, step: str) -> list[tuple[str, bool]]:
    """The step's two batches, and whether each one's terms enter the loss (``discard_first_baseline_call``)."""
    return [(f"{step}_unimodal", not loss_cfg.discard_first_baseline_call), (f"{step}_joint", True)]


def baseline_discriminator_losses(nets, batches, noise, cfg, loss_cfg, scores: dict | None = None) -> dict:
    """D loss of the baseline: sum_k CE(D(tuple_k), k) over both fresh batches.

    The authors' code computes the first ("unimodal") call and then overwrites its terms with the second's (both
    use the same keys). By default we keep both batches; ``discard_first_baseline_call`` reproduces theirs (the
    first call still runs, so every discriminator forward happens as in their code).
    """
    terms = {}
    for call, kept in _baseline_calls(loss_cfg, "d"):
        tuples = _baseline_tuples(nets, batches[call], noise, cfg, call)
        logits = []
        for k, (images, z) in enumerate(tuples):
            images = [tf.stop_gradient(image) for image in images]
            logits.append(nets.d_baseline(*images, tf.stop_gradient(z)))
            if kept:
                terms[f"{call[2:]}_c{k}"] = losses.cross_entropy(logits[-1], k)
        if kept:  # real: the "encoder 0" tuple; generated: the decoder tuple
            _observer(scores)("d_baseline", logits[0], 0, logits[-1], len(cfg.names))
    return terms


def baseline_generator_losses(nets, batches, noise, cfg, loss_cfg) -> dict:
    """G loss of the baseline: sum_k 2/(M+1) NS(D(tuple_k), k) over both fresh batches."""
    weight = 2.0 / (len(cfg.names) + 1)
    terms = {}
    for call, kept in _baseline_calls(loss_cfg, "g"):
        for k, (images, z) in enumerate(_baseline_tuples(nets, batches[call], noise, cfg, call)):
            term = weight * losses.non_saturating(nets.d_baseline(*images, z), k)
            if kept:
                terms[f"{call[2:]}_c{k}"] = term
    return terms
