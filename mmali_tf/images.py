"""Sample and translation grids from the EMA networks (TensorBoard images and PNG files).

Each modality's kind draws its rows (:meth:`mmali_tf.kinds.base.ModalityKind.render`): image kinds with
:func:`mmali_tf.tiles.tile`, feature kinds as grey-level rasters of their vectors (:mod:`mmali_tf.kinds.features`).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import tensorflow as tf
from PIL import Image

from mmali_tf import kinds, losses
from mmali_tf.noise import StepNoise


def translation_grids(model, batch: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """One grid per target modality m, labelled rows (top to bottom), one column per paired example:

    original (the input of m); reconstruction of m; translation from each other modality (source style kept, as the
    authors do); joint posterior (the geometric-mean posterior's content, own style); prior sample (column j decodes
    the same prior z in every modality's grid: compare grids column by column for joint coherence).
    """
    names = model.names
    lat = model.latent
    noise = StepNoise(seed, 0)
    posteriors = {n: losses.split_gaussian(model.ema_encoders[n](batch[n], training=False)) for n in names}
    z_mean = {n: posteriors[n][0] for n in names}
    joint_mean, _ = losses.geometric_mean_posterior([p[0] for p in posteriors.values()],
                                                    [p[1] for p in posteriors.values()])
    num = int(next(iter(batch.values())).shape[0])
    z_prior = noise.normal("images/prior", [num, model.config.model.latent_dim])
    specs = {spec.name: spec for spec in model.config.model.modalities}
    grids = {}
    for m in names:
        dec = model.ema_decoders[m]
        rows = [batch[m], dec(z_mean[m], training=False)]
        labels = ["original", "reconstruction"]
        for src in names:
            if src != m:
                rows.append(dec(z_mean[src], training=False))
                labels.append(f"from {src}")
        rows.append(dec(lat.join(lat.style(z_mean[m]), lat.content(joint_mean)), training=False))
        rows.append(dec(z_prior, training=False))
        labels += ["joint posterior", "prior sample"]
        grids[m] = kinds.kind_of(specs[m]).render([np.asarray(r) for r in rows], labels=labels, title=f"decoded as {m}")
    return grids


def write_grids(grids: Mapping[str, np.ndarray], step: int, png_dir: str, writer) -> list[str]:
    """Save each grid as ``<png_dir>/<modality>_step<step>.png`` and as a TensorBoard image."""
    os.makedirs(png_dir, exist_ok=True)
    paths = []
    for name, grid in grids.items():
        path = os.path.join(png_dir, f"{name}_step{step:07d}.png")
        Image.fromarray(grid).save(path)
        paths.append(path)
        if writer is not None:
            with writer.as_default(step=step), tf.summary.record_if(True):
                tf.summary.image(f"samples/{name}", grid[None], step=step)
    return paths
