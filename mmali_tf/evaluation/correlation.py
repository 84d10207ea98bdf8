"""CCA correlation of feature modalities: the authors' CUB score (docs/authors_code.md, section 4.3),
also used for image modalities without labels (each image seen through its kind's CCA view: scaled to [0, 1] and
average-pooled to at most 8x8 cells per channel, :meth:`mmali_tf.kinds.image.SizedImageKind.cca_view`).

A multi-view CCA (:mod:`mmali_tf.evaluation.cca`, k = 40, the authors' generalized eigenproblem) is fitted on the
*train* tuples of the feature modalities (for CUB the 88,550 caption/image pairs); the score of a pair of feature
vectors is the cosine of their centred projections, and the score of a set is the mean of the per-batch means over
batches of 256 in the set's order (the last batch over-weighted, as theirs). For every pair (a, b) of feature
modalities, in config order, with the networks' EMA encoders and decoders and sampled latents (the source style
kept, as in their ``eval_cap_img_ft.py``):

============================  ======================================================================================
key                           cosine of
============================  ======================================================================================
``correlation/ground_truth``  ``x_a`` and ``x_b`` of the real test pairs (the ceiling)
``correlation/<a>_to_<b>``    real ``x_a`` and ``G_b(z)``, ``z ~ q(z | x_a)`` (theirs: C->I = caption_to_image,
                              ``cos(proj(x_cap), proj(G_img(E_cap(x_cap))))``; I->C = image_to_caption)
``correlation/joint``         ``G_a(z)`` and ``G_b(z)`` for 10,000 draws ``z ~ N(0, I)``, one batch (a plain mean)
``correlation/synergy_<m>``   ``G_m([s_m, c])`` and the other real modality, with ``s_m ~ q(s | x_m)`` and ``c`` a
                              sample of the geometric-mean posterior of all modalities (theirs: syn_c, syn_i)
============================  ======================================================================================

With more than two feature modalities the pair-specific keys carry the pair: ``ground_truth_<a>_<b>``,
``joint_<a>_<b>``, ``synergy_<m>_with_<other>``. The CCA is cached in the classifier directory as
``cca-<fingerprint>-<solver>.npz``, the fingerprint covering the train data of every view, their pairing, k and eps;
a cached fit of other data is refitted. ``solver="eigh"`` (default) gives the authors' ``scipy.linalg.eig``
projections up to the sign of each column, which leaves every cosine unchanged (``tests/test_cca.py``), far faster
at CUB's 3,072 stacked dimensions (BUILD.md, "Evaluation protocol", has the timings).
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import tensorflow as tf

from mmali_tf import kinds, losses
from mmali_tf.data.pipeline import to_model_input
from mmali_tf.evaluation import cca
from mmali_tf.evaluation.coherence import subset_of_pairs
from mmali_tf.evaluation.latent import encode_split
from mmali_tf.evaluation.progress import Progress
from mmali_tf.noise import StepNoise


def fingerprint(names, splits: dict, pairs: dict, k: int, eps: float, view_tags: dict | None = None) -> str:
    """16 hex characters over each view's name and train-data fingerprint, the tuples, ``k``, ``eps`` and, for
    modalities whose CCA view is not their examples as they are (images), a tag naming that view."""
    h = hashlib.sha256(f"k={k} eps={eps!r}".encode())
    for name in names:
        h.update(f"|{name}:{splits[name].fingerprint}".encode())
        if view_tags and view_tags.get(name):
            h.update(f"|view:{view_tags[name]}".encode())
        h.update(np.ascontiguousarray(pairs[name], np.int64).data)
    return h.hexdigest()[:16]


def kind_views(config, names) -> tuple[dict, dict]:
    """({name: examples -> float32 [N, D] CCA vectors}, {name: view tag}) from each modality's kind
    (:meth:`~mmali_tf.kinds.base.ModalityKind.cca_view`): feature vectors as they are (no tag), images scaled to
    [0, 1] as the networks see them and pooled (tag ``"<kind>:<input shape>"``)."""
    specs = {s.name: s for s in config.model.modalities}
    views, tags = {}, {}
    for name in names:
        spec = specs[name]
        kind = kinds.kind_of(spec)
        views[name] = lambda x, kind=kind, spec=spec: kind.cca_view(spec, to_model_input(np.asarray(x)))
        if kind.examples == kinds.PIXELS:
            tags[name] = f"{kind.name}:{'x'.join(map(str, kind.input_spec(spec).shape))}"
    return views, tags


def _flat(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x.reshape(len(x), -1)


def fit_train_cca(names, splits: dict, pairs: dict, cache_dir: str | None, solver: str, print_fn=print,
                  k: int = cca.NUM_COMPONENTS, views: dict | None = None,
                  view_tags: dict | None = None) -> tuple[cca.FittedCCA, dict]:
    """The CCA of the train tuples of the views ``names`` (cached in ``cache_dir``) and a record of how it was
    obtained. ``views`` maps a modality's examples to its CCA vectors (default: as they are, as float32)."""
    digest = fingerprint(names, splits, pairs, k, cca.EPS, view_tags)
    path = os.path.join(cache_dir, f"cca-{digest}-{solver}.npz") if cache_dir else None
    num = len(pairs[names[0]])
    fitted_now = []
    views = views or {}

    def train_views():
        fitted_now.append(True)
        print_fn(f"fitting CCA (k={k}, {solver}) on {num:,} train tuples of {', '.join(names)}")
        return [views.get(n, _flat)(splits[n].examples)[pairs[n]] for n in names]

    started = time.perf_counter()
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
    fitted = cca.load_or_fit_cca(path, digest, train_views, k, solver=solver)
    seconds = time.perf_counter() - started
    print_fn(f"CCA {'fitted' if fitted_now else 'read'} in {seconds:.1f} s ({path or 'not cached'}); top canonical "
             f"correlations {', '.join(f'{c:.3f}' for c in fitted.correlations[:3])}")
    return fitted, {"k": k, "eps": cca.EPS, "solver": solver, "fit_tuples": num, "fingerprint": digest,
                    "cache": path, "fitted_now": bool(fitted_now), "batch_size": cca.SCORE_BATCH_SIZE}


def _pairs_of(names):
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def correlation_metrics(ctx, names) -> dict[str, float]:
    """Every correlation key for the feature modalities ``names`` of ``ctx.model`` (see the module docstring)."""
    model, options, print_fn = ctx.model, ctx.options, ctx.print_fn
    views, tags = kind_views(ctx.config, names)
    fitted, record = fit_train_cca(names, ctx.train_splits(), ctx.train_pairs(),
                                   options.resolved_classifier_dir(ctx.workdir), options.cca_solver, print_fn,
                                   views=views, view_tags=tags)
    view = {n: i for i, n in enumerate(names)}
    test, all_pairs = ctx.test_splits(), ctx.test_pairs()
    everyone = list(model.names)
    keep = subset_of_pairs(len(all_pairs[everyone[0]]), options.max_pairs)
    pair_idx = {n: np.asarray(all_pairs[n], np.int64)[keep] for n in everyone}
    total = len(keep)
    for n in everyone:
        if (n, "test") not in ctx.encodings:
            ctx.encodings[(n, "test")] = encode_split(model.ema_encoders[n], test[n].examples, options.batch_size,
                                                      options.xla, label=f"encode {n}/test", print_fn=print_fn)
    real = {n: fitted.project(view[n], views[n](test[n].examples))[pair_idx[n]] for n in names}  # once per example
    means = {n: tf.constant(ctx.encodings[(n, "test")][0]) for n in everyone}
    logvars = {n: tf.constant(ctx.encodings[(n, "test")][1]) for n in everyone}
    lat, decoders, seed = model.latent, model.ema_decoders, options.seed

    @tf.function(jit_compile=options.xla)
    def generate(idx, batch_index):
        noise = StepNoise(seed, batch_index)
        mean = {n: tf.gather(means[n], idx[n]) for n in everyone}
        logvar = {n: tf.gather(logvars[n], idx[n]) for n in everyone}
        out = {}
        for a in names:
            z = losses.reparameterize(mean[a], logvar[a], noise.normal(f"correlation/cross/{a}", tf.shape(mean[a])))
            for b in names:
                if b != a:
                    out[f"{a}_to_{b}"] = decoders[b](z, training=False)
        joint_mean, joint_logvar = losses.geometric_mean_posterior([mean[n] for n in everyone],
                                                                   [logvar[n] for n in everyone])
        z_joint = losses.reparameterize(joint_mean, joint_logvar,
                                        noise.normal("correlation/synergy/joint", tf.shape(joint_mean)))
        for m in names:
            z_own = losses.reparameterize(mean[m], logvar[m], noise.normal(f"correlation/synergy/{m}",
                                                                           tf.shape(mean[m])))
            out[f"synergy_{m}"] = decoders[m](lat.join(lat.style(z_own), lat.content(z_joint)), training=False)
        return out

    target = {f"{a}_to_{b}": b for a in names for b in names if a != b}  # generate()'s keys -> decoded modality
    target.update({f"synergy_{m}": m for m in names})
    pairs = _pairs_of(names)
    single = len(pairs) == 1
    cosines: dict[str, list[np.ndarray]] = {}

    def add(key, values):
        cosines.setdefault(key, []).append(values)

    progress = Progress(total, "correlation (test pairs)", print_fn=print_fn)
    step = int(options.batch_size)
    for i, start in enumerate(range(0, total, step)):
        rows = slice(start, min(start + step, total))
        generated = {k: v.numpy() for k, v in generate({n: tf.constant(pair_idx[n][rows]) for n in everyone},
                                                       tf.constant(i, tf.int64)).items()}
        projected = {k: fitted.project(view[target[k]], views[target[k]](v)) for k, v in generated.items()}
        for a, b in pairs:
            suffix = "" if single else f"_{a}_{b}"
            add(f"ground_truth{suffix}", cca.cosine_similarity(real[a][rows], real[b][rows]))
            add(f"{a}_to_{b}", cca.cosine_similarity(real[a][rows], projected[f"{a}_to_{b}"]))
            add(f"{b}_to_{a}", cca.cosine_similarity(projected[f"{b}_to_{a}"], real[b][rows]))
            add(f"synergy_{a}" + ("" if single else f"_with_{b}"),
                cca.cosine_similarity(projected[f"synergy_{a}"], real[b][rows]))
            add(f"synergy_{b}" + ("" if single else f"_with_{a}"),
                cca.cosine_similarity(real[a][rows], projected[f"synergy_{b}"]))
        progress.update(rows.stop)
    out = {f"correlation/{k}": cca.mean_of_batch_means(np.concatenate(v)) for k, v in cosines.items()}

    z = StepNoise(seed, 0).normal("correlation/joint/prior", [int(options.num_prior), model.config.model.latent_dim])
    decoded = {n: fitted.project(view[n], views[n](decoders[n](z, training=False).numpy())) for n in names}
    for a, b in pairs:
        values = cca.cosine_similarity(decoded[a], decoded[b])
        out[f"correlation/joint{'' if single else f'_{a}_{b}'}"] = cca.mean_of_batch_means(values, len(values))
    ctx.settings["correlation"] = {**record, "test_tuples": total, "num_prior": int(options.num_prior),
                                   "views": list(names), **({"view_of": tags} if tags else {})}
    for key in sorted(out):
        print_fn(f"  {key}: {out[key]:.4f}")
    return out
