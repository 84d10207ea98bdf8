"""The MMALI objective: which networks see which tuples, and which loss each term is.

This is the reference's ``FactorModel.forward_jsd2`` (reference-implementation.md section 4) for any number of
modalities, addressed by name, plus the single-discriminator baseline (section 4.5). The loss arithmetic lives in
:mod:`mmali_tf.losses`; this module only assembles tuples and calls the networks.

Every call of a network on several tuples is made once, on the tuples concatenated along the batch, and split
afterwards: the result is identical (no layer mixes examples) and it is much faster than separate calls.

Shared images. The same real batch meets a discriminator several times per step: in the generator step D0_m and D1_m
see x_m with each of the M "encoder k" codes, the D1 negatives are an in-batch shuffle of the positives' images, and
the joint critic's negatives (without a pipeline-supplied ``d_marginal`` batch) shuffle the positives per modality.
Tuples name such images as the same tensor or as :class:`Rows` of it. When the discriminator is a
:class:`~mmali_tf.networks.split.SplitCritic` (what :class:`mmali_tf.model.MMALI` passes), its x-part (for SVHN the
whole conv stack) runs once per distinct image batch and the features are reused or shuffled; otherwise (any plain
callable) the tuples are materialised and the whole network runs on them. Both give the same logits and gradients
(``tests/test_equivalence.py``).

Spectral normalisation: each discriminator call with ``training=True`` runs one power iteration in every layer (a
SplitCritic call too, see :mod:`mmali_tf.networks.split`). Per player step D0_m is called twice (calls A and B),
D1_m and the joint critic once each; the baseline's single discriminator twice. The reference calls each
discriminator on each tuple separately (2-4 power iterations per step); the estimate of sigma converges either way.

Batches: ``batches[call][modality]`` holds images; the calls are ``d_unimodal``, ``d_joint`` (discriminator
step) and ``g_unimodal``, ``g_joint`` (generator step): the four fresh paired batches of one reference iteration.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import tensorflow as tf

from mmali_tf import losses
from mmali_tf.config import LossConfig, ModelConfig
from mmali_tf.networks.split import SplitCritic
from mmali_tf.noise import StepNoise

Net = Callable[..., tf.Tensor]


@dataclasses.dataclass(frozen=True)
class Networks:
    """The players, by modality name. ``q_vs_p`` is D0 (M+1 classes), ``content`` is D1 (binary).

    Discriminators may be plain callables ``net(inputs, training=...)`` or :class:`SplitCritic` views of them.
    ``training`` is passed to every network call (False: no spectral-norm update, e.g. for tracing).
    """

    encoders: Mapping[str, Net]
    decoders: Mapping[str, Net]
    q_vs_p: Mapping[str, Net] = dataclasses.field(default_factory=dict)
    content: Mapping[str, Net] = dataclasses.field(default_factory=dict)
    joint: Net | None = None  # D_J(x_1..x_M): q(X) vs prod_m q(x_m)
    joint_xz: Net | None = None  # baseline: one (M+1)-way D on (x_1..x_M, [s_1..s_M, c])
    training: bool = True


class Latent:
    """Slicing of z = [style | content] (reference section 2)."""

    def __init__(self, cfg: ModelConfig):
        self.style_dim = cfg.style_dim
        self.latent_dim = cfg.latent_dim

    def style(self, z):
        return z[:, : self.style_dim]

    def content(self, z):
        return z[:, self.style_dim:]

    def join(self, style, content):
        return tf.concat([style, content], axis=-1)


@dataclasses.dataclass(frozen=True)
class Rows:
    """The rows ``index`` of the image batch ``images`` (e.g. an in-batch shuffle), as a discriminator input."""

    images: tf.Tensor
    index: tf.Tensor


def _source(x) -> tuple[tf.Tensor, tf.Tensor | None]:
    return (x.images, x.index) if isinstance(x, Rows) else (x, None)


def _materialize(x) -> tf.Tensor:
    return tf.gather(x.images, x.index) if isinstance(x, Rows) else x


def _batched_call(net: Net, inputs: Sequence[Sequence[tf.Tensor]], training: bool) -> list[tf.Tensor]:
    """Call ``net`` once on several input tuples concatenated along the batch; return one output per tuple.

    Inputs may be :class:`Rows`. A :class:`SplitCritic` runs its x-part once per distinct image batch (the same
    tensor object, whether used whole or as ``Rows``); any other network runs on the materialised tuples.
    """
    sizes = [tf.shape(t[0].index if isinstance(t[0], Rows) else t[0])[0] for t in inputs]
    if isinstance(net, SplitCritic):
        num = net.num_images
        images, picks = [], []
        for k in range(num):
            batches, position, chosen = [], {}, []
            for t in inputs:
                base, index = _source(t[k])
                if id(base) not in position:
                    position[id(base)] = len(batches)
                    batches.append(base)
                chosen.append((position[id(base)], index))
            images.append(batches)
            picks.append(chosen)
        extra = [tf.concat(list(parts), axis=0) for parts in zip(*(t[num:] for t in inputs))]
        out = net.logits(images, picks, extra, training=training)
    else:
        merged = [tf.concat([_materialize(x) for x in parts], axis=0) for parts in zip(*inputs)]
        out = net(merged, training=training)
    return tf.split(out, sizes, axis=0) if len(inputs) > 1 else [out]


def _encode(nets: Networks, name: str, x, noise: StepNoise, stream: str):
    """Sampled z ~ q(z|x) and the raw (mean, logvar)."""
    mean, logvar = losses.split_gaussian(nets.encoders[name](x, training=nets.training))
    return losses.reparameterize(mean, logvar, noise.normal(stream, tf.shape(mean))), mean, logvar


def _unimodal_weight(cfg: ModelConfig, loss_cfg: LossConfig) -> float:
    return loss_cfg.lambda_unimodal * 2.0 / (len(cfg.names) + 1)


def cross_content_label(names: Sequence[str], own: str, other: str) -> int:
    """D0 class of "own style, content encoded from ``other``": 2, 3, ... over the other modalities in order."""
    others = [n for n in names if n != own]
    return 2 + others.index(other)


# ----------------------------------------------------------------------------------------------------------------
# Factorized discriminators (the MMALI model)
# ----------------------------------------------------------------------------------------------------------------


def discriminator_losses(nets: Networks, batches, noise: StepNoise, cfg: ModelConfig,
                         loss_cfg: LossConfig) -> dict[str, tf.Tensor]:
    """Discriminator terms of one step (reference 4.1); their plain sum is the D loss (no 2/(M+1) weights).

    Data sources: ``<m>_c0``, ``<m>_c1``, ``<m>_1`` use the ``d_unimodal`` batch of modality m only (which the
    pipeline may draw from that modality's paired + unpaired pool); ``joint`` uses the paired ``d_joint`` batch as
    positives and ``d_marginal`` (independent per-modality pool draws) or in-batch shuffles as negatives;
    ``<m>_c<k>`` (k >= 2) use the paired ``d_joint`` batch.
    """
    if cfg.discriminator == "joint":
        return joint_baseline_discriminator_losses(nets, batches, noise, cfg)
    lat = Latent(cfg)
    names = cfg.names
    terms: dict[str, tf.Tensor] = {}

    # Call A, "unimodal": each modality on its own, independent prior z per modality.
    xa = batches["d_unimodal"]
    for name in names:
        x = xa[name]
        z_q, _, _ = _encode(nets, name, x, noise, f"dA/{name}/posterior")
        z_q = tf.stop_gradient(z_q)
        z_p = noise.normal(f"dA/{name}/prior", tf.shape(z_q))
        x_p = tf.stop_gradient(nets.decoders[name](z_p, training=nets.training))
        logits_q, logits_p = _batched_call(nets.q_vs_p[name], [(x, z_q), (x_p, z_p)], nets.training)
        terms[f"{name}_c0"] = losses.cross_entropy(logits_q, 0)
        terms[f"{name}_c1"] = losses.cross_entropy(logits_p, 1)
        # D1: q(x, s, c) against q(x, s) p(c): shuffle (x, s) jointly, swap the content for a prior draw.
        perm = noise.permutation(f"dA/{name}/shuffle", tf.shape(x)[0])
        prior_perm = noise.permutation(f"dA/{name}/prior_shuffle", tf.shape(x)[0])
        z_swapped = lat.join(tf.gather(lat.style(z_q), perm), tf.gather(lat.content(z_p), prior_perm))
        pos, neg = _batched_call(nets.content[name], [(x, z_q), (Rows(x, perm), z_swapped)], nets.training)
        terms[f"{name}_1"] = losses.binary_real(pos) + losses.binary_fake(neg)

    # Call B, "joint": paired tuples. Negatives of the joint critic come from the product of marginals: independent
    # per-modality draws from the unimodal pools when the pipeline supplies them ("d_marginal"), otherwise (the
    # reference, section 1.3) an independent in-batch shuffle of each modality of the paired batch.
    xb = batches["d_joint"]
    if "d_marginal" in batches:
        marginals = [batches["d_marginal"][n] for n in names]
    else:
        marginals = [Rows(xb[n], noise.permutation(f"dB/{n}/marginal", tf.shape(xb[n])[0])) for n in names]
    pos, neg = _batched_call(nets.joint, [[xb[n] for n in names], marginals], nets.training)
    terms["joint"] = losses.binary_real(pos) + losses.binary_fake(neg)
    z_q = {n: tf.stop_gradient(_encode(nets, n, xb[n], noise, f"dB/{n}/posterior")[0]) for n in names}
    for own in names:
        others = [n for n in names if n != own]
        tuples = [(xb[own], lat.join(lat.style(z_q[own]), lat.content(z_q[o]))) for o in others]
        for other, logits in zip(others, _batched_call(nets.q_vs_p[own], tuples, nets.training)):
            label = cross_content_label(names, own, other)
            terms[f"{own}_c{label}"] = losses.cross_entropy(logits, label)
    return terms


def generator_losses(nets: Networks, batches, noise: StepNoise, cfg: ModelConfig,
                     loss_cfg: LossConfig) -> dict[str, tf.Tensor]:
    """Encoder/decoder terms of one step (reference 4.3), already weighted; their plain sum is the G loss.

    Data sources: ``<m>_c0``, ``<m>_c1``, ``<m>_s_rec``, ``<m>_c_rec``, ``<m>_x_rec`` use the ``g_unimodal`` batch of
    modality m only (paired or from the modality's unpaired pool); ``joint_q<k>``, ``joint_p``, ``<m>_c<k>`` (k >= 2), ``joint_c_rec`` and ``<m>_x_rec_joint`` use
    the paired ``g_joint`` batch.
    """
    if cfg.discriminator == "joint":
        return joint_baseline_generator_losses(nets, batches, noise, cfg)
    lat = Latent(cfg)
    names = cfg.names
    num = len(names)
    w_joint = 2.0 / (num + 1)
    w_uni = _unimodal_weight(cfg, loss_cfg)
    terms: dict[str, tf.Tensor] = {}

    # Call A, "unimodal".
    xa = batches["g_unimodal"]
    for name in names:
        x = xa[name]
        z_q, _, _ = _encode(nets, name, x, noise, f"gA/{name}/posterior")
        z_p = noise.normal(f"gA/{name}/prior", tf.shape(z_q))
        x_p = nets.decoders[name](z_p, training=nets.training)
        logits_q, logits_p = _batched_call(nets.q_vs_p[name], [(x, z_q), (x_p, z_p)], nets.training)
        terms[f"{name}_c0"] = w_uni * losses.non_saturating(logits_q, 0)
        terms[f"{name}_c1"] = w_uni * losses.non_saturating(logits_p, 1)
        rec_weight = _rec_weight(cfg, name)
        if not loss_cfg.joint_rec and loss_cfg.lambda_x_rec > 0:
            x_rec = nets.decoders[name](z_q, training=nets.training)
            terms[f"{name}_x_rec"] = rec_weight * loss_cfg.lambda_x_rec * losses.mean_squared_error(x_rec, x)
        content_cycle = loss_cfg.lambda_c_rec > 0 and not loss_cfg.joint_rec
        style_cycle = loss_cfg.lambda_s_rec > 0 and cfg.style_dim > 0
        if content_cycle or style_cycle:
            z_cycle, _, _ = _encode(nets, name, x_p, noise, f"gA/{name}/cycle")
            if content_cycle:
                terms[f"{name}_c_rec"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(
                    lat.content(z_cycle), lat.content(z_p))
            if style_cycle:
                terms[f"{name}_s_rec"] = loss_cfg.lambda_s_rec * losses.mean_squared_error(
                    lat.style(z_cycle), lat.style(z_p))

    # Call B, "joint": shared prior content, each modality its own prior style.
    xb = batches["g_joint"]
    encoded = {n: _encode(nets, n, xb[n], noise, f"gB/{n}/posterior") for n in names}
    z_q = {n: encoded[n][0] for n in names}
    batch = tf.shape(xb[names[0]])[0]
    shared_content = noise.normal("gB/prior_content", tf.stack([batch, cfg.content_dim]))
    z_p = {n: lat.join(noise.normal(f"gB/{n}/prior_style", tf.stack([batch, cfg.style_dim])), shared_content)
           for n in names}
    x_p = {n: nets.decoders[n](z_p[n], training=nets.training) for n in names}
    joint_q, joint_p = _batched_call(nets.joint, [[xb[n] for n in names], [x_p[n] for n in names]], nets.training)
    joint_q, joint_p = joint_q[:, 0], joint_p[:, 0]

    # For every modality m, D0_m and D1_m on the M "encoder k" tuples (x_m, [s_m, c_k]) and the decoder tuple.
    a_terms: dict[str, list[tf.Tensor]] = {}
    b_terms: dict[str, list[tf.Tensor]] = {}
    d0_on_q: dict[str, list[tf.Tensor]] = {}
    for m in names:
        tuples = [(xb[m], lat.join(lat.style(z_q[m]), lat.content(z_q[k]))) for k in names] + [(x_p[m], z_p[m])]
        d0 = _batched_call(nets.q_vs_p[m], tuples, nets.training)
        d1 = _batched_call(nets.content[m], tuples, nets.training)
        d0_on_q[m] = d0[:num]
        a_terms[m] = [logits[:, 0] - logits[:, 1] for logits in d0]
        b_terms[m] = [logits[:, 0] for logits in d1]
    for k, name in enumerate(names + ("p",)):
        score = losses.factorized_joint_logits([a_terms[m][k] for m in names], [b_terms[m][k] for m in names],
                                               joint_q if name != "p" else joint_p)
        key = "joint_p" if name == "p" else f"joint_q{k}"
        terms[key] = w_joint * losses.non_saturating(score, k)
    for own in names:
        for k, other in enumerate(names):
            if other != own:
                label = cross_content_label(names, own, other)
                terms[f"{own}_c{label}"] = w_uni * losses.non_saturating(d0_on_q[own][k], label)

    if loss_cfg.joint_rec:
        if loss_cfg.lambda_c_rec > 0:
            fake_posteriors = [losses.split_gaussian(nets.encoders[n](x_p[n], training=nets.training))
                               for n in names]
            mean, logvar = losses.geometric_mean_posterior(*zip(*fake_posteriors))
            z_cycle = losses.reparameterize(mean, logvar, noise.normal("gB/cycle_joint", tf.shape(mean)))
            terms["joint_c_rec"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(lat.content(z_cycle),
                                                                                     shared_content)
        if loss_cfg.lambda_x_rec > 0:
            mean, logvar = losses.geometric_mean_posterior([encoded[n][1] for n in names],
                                                           [encoded[n][2] for n in names])
            z_joint = losses.reparameterize(mean, logvar, noise.normal("gB/posterior_joint", tf.shape(mean)))
            for n in names:
                z_rec = lat.join(lat.style(z_q[n]), lat.content(z_joint))
                x_rec = nets.decoders[n](z_rec, training=nets.training)
                terms[f"{n}_x_rec_joint"] = _rec_weight(cfg, n) * loss_cfg.lambda_x_rec * losses.mean_squared_error(
                    x_rec, xb[n])
    return terms


def _rec_weight(cfg: ModelConfig, name: str) -> float:
    return next(m.rec_weight for m in cfg.modalities if m.name == name)


# ----------------------------------------------------------------------------------------------------------------
# Joint-discriminator baseline (reference 4.5, JointModel.forward_jsd)
# ----------------------------------------------------------------------------------------------------------------


def _joint_baseline_tuples(nets: Networks, xs, noise: StepNoise, cfg: ModelConfig, prefix: str, detach: bool):
    """The M+1 tuples of the single discriminator: class k < M is the real tuple with all encoded styles and
    modality k's encoded content; class M is the decoded tuple of shared prior content and per-modality prior styles.
    Each tuple is (list of images, z = [s_1..s_M, c])."""
    lat = Latent(cfg)
    names = cfg.names
    z_q = {n: _encode(nets, n, xs[n], noise, f"{prefix}/{n}/posterior")[0] for n in names}
    batch = tf.shape(xs[names[0]])[0]
    content = noise.normal(f"{prefix}/prior_content", tf.stack([batch, cfg.content_dim]))
    styles = {n: noise.normal(f"{prefix}/{n}/prior_style", tf.stack([batch, cfg.style_dim])) for n in names}
    x_p = [nets.decoders[n](lat.join(styles[n], content), training=nets.training) for n in names]
    x_q = [xs[n] for n in names]  # the same tensors in all M real tuples: a SplitCritic runs its x-parts once
    all_styles_q = [lat.style(z_q[n]) for n in names]
    tuples = [(x_q, tf.concat(all_styles_q + [lat.content(z_q[k])], axis=-1)) for k in names]
    tuples.append((x_p, tf.concat([styles[n] for n in names] + [content], axis=-1)))
    if detach:
        x_q, x_p = [tf.stop_gradient(x) for x in x_q], [tf.stop_gradient(x) for x in x_p]
        tuples = [(x_q if k < len(names) else x_p, tf.stop_gradient(z)) for k, (_, z) in enumerate(tuples)]
    return tuples


def _joint_baseline_logits(nets: Networks, tuples) -> list[tf.Tensor]:
    return _batched_call(nets.joint_xz, [list(images) + [z] for images, z in tuples], nets.training)


def joint_baseline_discriminator_losses(nets, batches, noise, cfg) -> dict[str, tf.Tensor]:
    """D loss of the baseline: sum_k CE(D(tuple_k), k) over both fresh batches.

    The reference computes the first ("unimodal") call and then discards it because both calls return the same
    dict keys (reference 4.5 [BUG]). We keep both batches, each with a shared prior content, so the baseline sees
    the same data per step as the factorized model.
    """
    terms = {}
    for call in ("d_unimodal", "d_joint"):
        tuples = _joint_baseline_tuples(nets, batches[call], noise, cfg, f"{call}", detach=True)
        for k, logits in enumerate(_joint_baseline_logits(nets, tuples)):
            terms[f"{call[2:]}_c{k}"] = losses.cross_entropy(logits, k)
    return terms


def joint_baseline_generator_losses(nets, batches, noise, cfg) -> dict[str, tf.Tensor]:
    """G loss of the baseline: sum_k 2/(M+1) NS(D(tuple_k), k) over both fresh batches (reference 4.5)."""
    weight = 2.0 / (len(cfg.names) + 1)
    terms = {}
    for call in ("g_unimodal", "g_joint"):
        tuples = _joint_baseline_tuples(nets, batches[call], noise, cfg, f"{call}", detach=False)
        for k, logits in enumerate(_joint_baseline_logits(nets, tuples)):
            terms[f"{call[2:]}_c{k}"] = weight * losses.non_saturating(logits, k)
    return terms
