"""The MMALI objective: every loss term of one training iteration, by name, next to what it estimates.

Written for any number M of modalities, addressed by name, in the order of the config. ``docs/objective.md``
derives each term from the paper (eqs. 4-10) and from the authors' ``FactorModel.forward_jsd2``; it is the design
note this module cites. Notation::

    E_m(x) -> q(z | x_m), z = [s | c]     encoder of modality m: private style s, shared content c
    G_m(z) -> x                           decoder of modality m
    D0_m(x, z) -> M+1 logits               class 0 "encoder" q(x_m, s_m, c), class 1 "decoder" p(x_m, s_m, c),
                                          class 2.. "content of k": (x_m, [s_m, c_k]) for each other modality k
    D1_m(x, z) -> 1 logit                  q(x_m, s_m, c) against q(x_m, s_m) p(c)
    DJ(x_1, ..., x_M) -> 1 logit           q(X) against the product of marginals prod_m q(x_m)
    D(x_1, ..., x_M, [s_1..s_M, c])        the joint-discriminator baseline's single (M+1)-way critic

Each iteration uses four fresh paired batches (``batches[name][modality]``): ``d_unimodal`` and ``d_joint`` for the
discriminator step, ``g_unimodal`` and ``g_joint`` for the generator step; a batch's noise streams start with its
name. A ``d_marginal`` batch, when the pipeline supplies one (unpaired data), replaces the in-batch shuffles as DJ's
negatives.

Each critic scores all the tuples it sees in a player step in one call, ``critic.score({tuple name: inputs})``, in
the order in which the authors' code makes its forwards (that order fixes which spectral-norm estimate each tuple
meets; :mod:`mmali_tf.networks.critic`). The terms are then read off the named logits. Term dictionaries keep the
authors' order, so that their sum (:func:`total`) adds as theirs does. Randomness comes from ``noise``
(:class:`mmali_tf.noise.StepNoise` or a replay of recorded draws), by stream name.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from typing import Callable, Mapping, Sequence

import tensorflow as tf

from mmali_tf import losses
from mmali_tf.config import LossConfig, ModelConfig

Net = Callable[..., tf.Tensor]

ENCODER, DECODER = 0, 1
"""D0's first two classes: (x, z) from the modality's own encoder, and from its decoder."""


@dataclasses.dataclass(frozen=True)
class Networks:
    """The players by modality name: encoders, decoders, and the critics ``d0``, ``d1``, ``dj`` (factorized model)
    or ``d_baseline`` (joint-discriminator baseline). Critics score named tuples: ``d0[m].score({"encoder": (x, z)})``
    (:class:`mmali_tf.networks.critic.Critic`)."""

    encoders: Mapping[str, Net]
    decoders: Mapping[str, Net]
    d0: Mapping[str, object] = dataclasses.field(default_factory=dict)
    d1: Mapping[str, object] = dataclasses.field(default_factory=dict)
    dj: object | None = None
    d_baseline: object | None = None


@dataclasses.dataclass(frozen=True)
class Posterior:
    """q(z | x) of one batch: the diagonal Gaussian's parameters and one reparameterised sample."""

    mean: tf.Tensor
    logvar: tf.Tensor
    sample: tf.Tensor


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


def posterior(nets: Networks, name: str, x, noise, stream: str) -> Posterior:
    """q(z | x) of modality ``name`` and a sample by reparameterisation with the noise of ``stream``."""
    mean, logvar = losses.split_gaussian(tf.cast(nets.encoders[name](x, training=True), tf.float32))
    return Posterior(mean, logvar, losses.reparameterize(mean, logvar, noise.normal(stream, tf.shape(mean))))


def posteriors(nets: Networks, name: str, batches: Mapping[str, tf.Tensor], noise) -> dict[str, Posterior]:
    """:func:`posterior` of modality ``name`` for each named batch (the noise of ``"<batch>/<name>/posterior"``),
    from one encoder call on the batches' rows (the encoders map rows independently)."""
    params = tf.cast(nets.encoders[name](_concat_rows(batches.values()), training=True), tf.float32)
    out = {}
    for batch, rows in zip(batches, tf.split(params, len(batches), axis=0)):
        mean, logvar = losses.split_gaussian(rows)
        eps = noise.normal(f"{batch}/{name}/posterior", tf.shape(mean))
        out[batch] = Posterior(mean, logvar, losses.reparameterize(mean, logvar, eps))
    return out


def decoded(nets: Networks, name: str, codes: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    """G_name(z) for each batch of codes, from one decoder call on their rows."""
    return tf.split(nets.decoders[name](_concat_rows(codes), training=True), len(codes), axis=0)


def _concat_rows(tensors) -> tf.Tensor:
    tensors = list(tensors)
    return tf.concat(tensors, axis=0) if len(tensors) > 1 else tensors[0]


def shuffled(x: tf.Tensor, permutation: tf.Tensor) -> tf.Tensor:
    """The rows of ``x`` in the order of ``permutation``, a permutation of the *global* batch.

    With several replicas ``x`` holds this replica's rows and :class:`mmali_tf.noise.StepNoise` permutes the global
    batch: every replica's rows are gathered, permuted, and this replica's share returned, so a shuffle does the same
    with any number of replicas.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tf.gather(x, permutation)
    local = tf.shape(x)[0]
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * local
    return tf.gather(_all_rows(context, x, start), permutation[start:start + local])


def _all_rows(context, x: tf.Tensor, start: tf.Tensor) -> tf.Tensor:
    """Every replica's rows of ``x`` in replica order: each pads its own into place, then all sum (an all-reduce
    works under every strategy; MultiWorkerMirroredStrategy's all_gather does not accept these graph tensors)."""
    local, total_rows = tf.shape(x)[0], tf.shape(x)[0] * context.num_replicas_in_sync
    padding = tf.concat([[[start, total_rows - start - local]], tf.zeros([tf.rank(x) - 1, 2], tf.int32)], axis=0)
    return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.pad(x, padding))


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
    x, x_joint = batches["d_unimodal"], batches["d_joint"]

    q = {m: posteriors(nets, m, {"d_unimodal": x[m], "d_joint": x_joint[m]}, noise) for m in names}
    # Unimodal batch: each modality alone, with its own prior z.
    z_q = {m: tf.stop_gradient(q[m]["d_unimodal"].sample) for m in names}
    z_p = {m: noise.normal(f"d_unimodal/{m}/prior", tf.shape(z_q[m])) for m in names}
    x_p = {m: tf.stop_gradient(nets.decoders[m](z_p[m], training=True)) for m in names}
    # Joint batch: paired tuples.
    z_joint = {m: tf.stop_gradient(q[m]["d_joint"].sample) for m in names}

    d0, d1 = {}, {}
    for m in names:
        # D0_m tells q(x_m, z) (class 0) from p(x_m, z) (class 1), the ratio q(x_i, z)/p(x_i, z) of eq. (7), and
        # both from a real x_m with its own style and the content encoded from another modality k (classes 2..).
        d0[m] = nets.d0[m].score({
            "encoder": (x[m], z_q[m]),
            "decoder": (x_p[m], z_p[m]),
            **{f"content_of_{k}": (x_joint[m], lat.join(lat.style(z_joint[m]), lat.content(z_joint[k])))
               for k in names if k != m}})
        # D1_m tells q(x_m, s_m, c) from q(x_m, s_m) p(c), eq. (10). The authors' negative is row i =
        # (x[p1[i]], s[p1[i]], c_prior[p2[i]]) for two shuffles p1, p2; its loss is a mean over rows, so we keep
        # (x, s) in place and give row j the prior content theirs pairs with it, c_prior[p2[p1^-1[j]]]: the same
        # tuples, and the critic sees the very image batch of its positive tuple.
        shuffle = noise.permutation(f"d_unimodal/{m}/shuffle", tf.shape(x[m])[0])
        prior_shuffle = noise.permutation(f"d_unimodal/{m}/prior_shuffle", tf.shape(x[m])[0])
        prior_content = shuffled(lat.content(z_p[m]), tf.gather(prior_shuffle, tf.argsort(shuffle)))
        d1[m] = nets.d1[m].score({"encoder": (x[m], z_q[m]),
                                  "prior_content": (x[m], lat.join(lat.style(z_q[m]), prior_content))})
    # DJ tells q(X) from prod_m q(x_m), the first factor of eqs. (7) and (10). Product-of-marginals negatives:
    # independent per-modality draws when the pipeline supplies them, else each modality shuffled on its own.
    if "d_marginal" in batches:
        marginals = tuple(batches["d_marginal"][m] for m in names)
    else:
        marginals = tuple(shuffled(x_joint[m], noise.permutation(f"d_joint/{m}/marginal", tf.shape(x_joint[m])[0]))
                          for m in names)
    dj = nets.dj.score({"paired": tuple(x_joint[m] for m in names), "marginals": marginals})

    terms: dict[str, tf.Tensor] = {}
    observe = _observer(scores)
    for m in names:
        terms[f"d0_{m}/encoder"] = losses.cross_entropy(d0[m]["encoder"], ENCODER)
        terms[f"d0_{m}/decoder"] = losses.cross_entropy(d0[m]["decoder"], DECODER)
        observe(f"d0_{m}", d0[m]["encoder"], ENCODER, d0[m]["decoder"], DECODER)
        terms[f"d1_{m}"] = losses.binary_real(d1[m]["encoder"]) + losses.binary_fake(d1[m]["prior_content"])
        observe(f"d1_{m}", d1[m]["encoder"], 1, d1[m]["prior_content"], 0)
    terms["dj"] = losses.binary_real(dj["paired"]) + losses.binary_fake(dj["marginals"])
    observe("dj", dj["paired"], 1, dj["marginals"], 0)
    for m in names:
        for k in names:
            if k != m:
                terms[f"d0_{m}/content_of_{k}"] = losses.cross_entropy(d0[m][f"content_of_{k}"],
                                                                       cross_content_label(names, m, k))
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
    x, x_joint = batches["g_unimodal"], batches["g_joint"]

    encoded = {m: posteriors(nets, m, {"g_unimodal": x[m], "g_joint": x_joint[m]}, noise) for m in names}
    # Unimodal batch: q(x_m, z) and p(x_m, z), one modality at a time.
    q = {m: encoded[m]["g_unimodal"] for m in names}
    z_p = {m: noise.normal(f"g_unimodal/{m}/prior", tf.shape(q[m].sample)) for m in names}
    # Joint batch: the M+1 tuples of eq. (4) with the latent split of eqs. (8)-(9).
    q_joint = {m: encoded[m]["g_joint"] for m in names}
    batch = _batch_size(x_joint)
    c_p = noise.normal("g_joint/prior_content", tf.stack([batch, cfg.content_dim]))
    # Decoder tuple, eq. (9): per-modality prior styles, one shared prior content.
    z_pj = {m: lat.join(noise.normal(f"g_joint/{m}/prior_style", tf.stack([batch, cfg.style_dim])), c_p)
            for m in names}
    x_p, x_pj = {}, {}
    for m in names:
        x_p[m], x_pj[m] = decoded(nets, m, [z_p[m], z_pj[m]])
    # "Encoder k" tuple, eq. (8): the real X, every modality with its own style and modality k's content.
    z_mk = {(m, k): lat.join(lat.style(q_joint[m].sample), lat.content(q_joint[k].sample)) for m in names
            for k in names}

    # The authors' code scores the "encoder k" tuple (x_m, z_mk) of D0_m twice, in the joint score and as the
    # cross-content term; each of their forwards meets its own spectral-norm estimate, and so does each tuple here.
    d0 = {m: nets.d0[m].score({
        "encoder": (x[m], q[m].sample),
        "decoder": (x_p[m], z_p[m]),
        **{f"joint/encoder_{k}": (x_joint[m], z_mk[m, k]) for k in names},
        "joint/decoder": (x_pj[m], z_pj[m]),
        **{f"content_of_{k}": (x_joint[m], z_mk[m, k]) for k in names if k != m}}) for m in names}
    d1 = {m: nets.d1[m].score({**{f"joint/encoder_{k}": (x_joint[m], z_mk[m, k]) for k in names},
                               "joint/decoder": (x_pj[m], z_pj[m])}) for m in names}
    dj = nets.dj.score({"joint/encoder": tuple(x_joint[m] for m in names),
                        "joint/decoder": tuple(x_pj[m] for m in names)})

    def joint_logits(tuple_name: str, dj_logit: tf.Tensor) -> tf.Tensor:
        """The (M+1)-way critic of eq. (4) assembled from the factors of eq. (10), for one tuple (x_m, z_m)_m."""
        return losses.factorized_joint_logits(
            [d0[m][tuple_name][:, ENCODER] - d0[m][tuple_name][:, DECODER] for m in names],
            [d1[m][tuple_name][:, 0] for m in names], dj_logit[:, 0])

    terms: dict[str, tf.Tensor] = {}
    for m in names:  # align q(x_m, z) and p(x_m, z) through D0_m
        terms[f"d0_{m}/encoder"] = w_unimodal * losses.non_saturating(d0[m]["encoder"], ENCODER)
        terms[f"d0_{m}/decoder"] = w_unimodal * losses.non_saturating(d0[m]["decoder"], DECODER)
    if loss_cfg.lambda_x_rec > 0 and not loss_cfg.joint_rec:
        for m in names:  # autoencoding: G_m(E_m(x_m)) = x_m
            x_rec = nets.decoders[m](q[m].sample, training=True)
            terms[f"{m}/reconstruction"] = (_rec_weight(cfg, m) * loss_cfg.lambda_x_rec
                                            * losses.mean_squared_error(x_rec, x[m]))
    content_cycle = loss_cfg.lambda_c_rec > 0 and not loss_cfg.joint_rec
    style_cycle = loss_cfg.lambda_s_rec > 0 and cfg.style_dim > 0
    if content_cycle or style_cycle:
        for m in names:  # latent cycle: E_m(G_m(z)) = z
            z_cycle = posterior(nets, m, x_p[m], noise, f"g_unimodal/{m}/cycle").sample
            if content_cycle:
                terms[f"{m}/content_cycle"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(
                    lat.content(z_cycle), lat.content(z_p[m]))
            if style_cycle:
                terms[f"{m}/style_cycle"] = loss_cfg.lambda_s_rec * losses.mean_squared_error(
                    lat.style(z_cycle), lat.style(z_p[m]))

    for label, k in enumerate(names):
        terms[f"joint/encoder_{k}"] = w_joint * losses.non_saturating(
            joint_logits(f"joint/encoder_{k}", dj["joint/encoder"]), label)
    terms["joint/decoder"] = w_joint * losses.non_saturating(joint_logits("joint/decoder", dj["joint/decoder"]), num)
    for m in names:  # D0_m's cross-content classes, from the generator side
        for k in names:
            if k != m:
                terms[f"d0_{m}/content_of_{k}"] = w_unimodal * losses.non_saturating(
                    d0[m][f"content_of_{k}"], cross_content_label(names, m, k))

    if loss_cfg.joint_rec:  # reconstructions through the geometric-mean joint posterior (the authors' joint_rec)
        if loss_cfg.lambda_c_rec > 0:  # content cycle: the joint posterior of the decoded tuple recovers c
            fakes = [losses.split_gaussian(tf.cast(nets.encoders[m](x_pj[m], training=True), tf.float32))
                     for m in names]
            mean, logvar = losses.geometric_mean_posterior(*zip(*fakes))
            c_cycle = lat.content(losses.reparameterize(mean, logvar,
                                                        noise.normal("g_joint/content_cycle", tf.shape(mean))))
            terms["joint/content_cycle"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(c_cycle, c_p)
        if loss_cfg.lambda_x_rec > 0:  # each x_m from its own style and the joint content of the real tuple
            mean, logvar = losses.geometric_mean_posterior([q_joint[m].mean for m in names],
                                                           [q_joint[m].logvar for m in names])
            z_joint = losses.reparameterize(mean, logvar, noise.normal("g_joint/joint_posterior", tf.shape(mean)))
            for m in names:
                x_rec = nets.decoders[m](lat.join(lat.style(q_joint[m].sample), lat.content(z_joint)),
                                         training=True)
                terms[f"{m}/joint_reconstruction"] = (_rec_weight(cfg, m) * loss_cfg.lambda_x_rec
                                                      * losses.mean_squared_error(x_rec, x_joint[m]))
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


def _baseline_tuples(nets: Networks, x, noise, cfg: ModelConfig, batch_name: str) -> dict[str, tuple]:
    """The M+1 tuples of eq. (4) for the critic D(x_1..x_M, [s_1..s_M, c]), named ``<batch>/encoder_<k>`` and
    ``<batch>/decoder``, each (x_1, ..., x_M, z).

    "Encoder k": the real tuple with every encoded style and modality k's encoded content. "Decoder": the decoded
    tuple of per-modality prior styles and one shared prior content.
    """
    lat, names = Latent(cfg), cfg.names
    z_q = {m: posterior(nets, m, x[m], noise, f"{batch_name}/{m}/posterior").sample for m in names}
    batch = _batch_size(x)
    c_p = noise.normal(f"{batch_name}/prior_content", tf.stack([batch, cfg.content_dim]))
    s_p = {m: noise.normal(f"{batch_name}/{m}/prior_style", tf.stack([batch, cfg.style_dim])) for m in names}
    x_p = tuple(nets.decoders[m](lat.join(s_p[m], c_p), training=True) for m in names)
    styles_q = [lat.style(z_q[m]) for m in names]
    tuples = {f"{batch_name}/encoder_{k}": tuple(x[m] for m in names) + (
        tf.concat(styles_q + [lat.content(z_q[k])], axis=-1),) for k in names}
    tuples[f"{batch_name}/decoder"] = x_p + (tf.concat([s_p[m] for m in names] + [c_p], axis=-1),)
    return tuples


def _baseline_batches(loss_cfg: LossConfig, step: str) -> list[tuple[str, bool]]:
    """The step's two batches, and whether each one's terms enter the loss (``discard_first_baseline_call``)."""
    return [(f"{step}_unimodal", not loss_cfg.discard_first_baseline_call), (f"{step}_joint", True)]


def _baseline_logits(nets, batches, noise, cfg, loss_cfg, step: str, constant_generators: bool):
    """Both batches' tuples scored in one call (first batch first, as the authors' two calls), and the names of the
    tuples whose terms count."""
    tuples, kept = {}, []
    for batch_name, counts in _baseline_batches(loss_cfg, step):
        named = _baseline_tuples(nets, batches[batch_name], noise, cfg, batch_name)
        if constant_generators:
            named = {name: tuple(tf.stop_gradient(t) for t in inputs) for name, inputs in named.items()}
        tuples.update(named)
        kept += list(named) if counts else []
    return nets.d_baseline.score(tuples), kept


def baseline_discriminator_losses(nets, batches, noise, cfg, loss_cfg, scores: dict | None = None) -> dict:
    """D loss of the baseline: sum_k CE(D(tuple_k), k) over both fresh batches.

    The authors' code computes the first ("unimodal") call and then overwrites its terms with the second's (both
    use the same keys). By default we keep both batches; ``discard_first_baseline_call`` reproduces theirs (the
    first call still runs, so every discriminator forward happens as in their code).
    """
    logits, kept = _baseline_logits(nets, batches, noise, cfg, loss_cfg, "d", constant_generators=True)
    classes = {name: label for label, name in enumerate(_tuple_names(cfg))}
    terms = {name: losses.cross_entropy(logits[name], classes[name.split("/")[1]]) for name in kept}
    batch_name = kept[0].split("/")[0]  # real: the first kept batch's "encoder 0" tuple; generated: its decoder tuple
    _observer(scores)("d_baseline", logits[f"{batch_name}/encoder_{cfg.names[0]}"], 0,
                      logits[f"{batch_name}/decoder"], len(cfg.names))
    return terms


def baseline_generator_losses(nets, batches, noise, cfg, loss_cfg) -> dict:
    """G loss of the baseline: sum_k 2/(M+1) NS(D(tuple_k), k) over both fresh batches."""
    weight = 2.0 / (len(cfg.names) + 1)
    logits, kept = _baseline_logits(nets, batches, noise, cfg, loss_cfg, "g", constant_generators=False)
    classes = {name: label for label, name in enumerate(_tuple_names(cfg))}
    return {name: weight * losses.non_saturating(logits[name], classes[name.split("/")[1]]) for name in kept}


def _tuple_names(cfg: ModelConfig) -> list[str]:
    """The baseline critic's classes in order: ``encoder_<k>`` for each modality k, then ``decoder``."""
    return [f"encoder_{k}" for k in cfg.names] + ["decoder"]
