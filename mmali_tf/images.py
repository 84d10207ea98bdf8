"""Sample and translation grids from the EMA networks (TensorBoard images and PNG files).

Each modality's kind draws its rows (:meth:`mmali_tf.kinds.base.ModalityKind.render`): image kinds with
:func:`tile`, feature kinds as grey-level rasters of their vectors (:mod:`mmali_tf.kinds.features`).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from mmali_tf import losses
from mmali_tf.noise import StepNoise


def tile(rows: list[np.ndarray], pad: int = 2, labels: list[str] | None = None, title: str | None = None) -> np.ndarray:
    """Tile rows of images ([N, H, W, C] floats in [0,1], any H/W/C) into one uint8 RGB grid.

    ``labels`` (one per row) are written in a margin on the left, ``title`` above the grid, with the column
    numbers 1..N under it, so a reader can tell originals from reconstructions and translations.
    """
    height = max(r.shape[1] for r in rows)
    width = max(r.shape[2] for r in rows)
    cols = max(r.shape[0] for r in rows)
    grid = np.ones(((height + pad) * len(rows) + pad, (width + pad) * cols + pad, 3), np.float32)
    for i, row in enumerate(rows):
        row = np.clip(np.asarray(row, np.float32), 0.0, 1.0)
        if row.shape[-1] == 1:
            row = np.repeat(row, 3, axis=-1)
        for j, img in enumerate(row):
            top = pad + i * (height + pad) + (height - img.shape[0]) // 2
            left = pad + j * (width + pad) + (width - img.shape[1]) // 2
            grid[top: top + img.shape[0], left: left + img.shape[1]] = img
    grid = (grid * 255 + 0.5).astype(np.uint8)
    if labels is None and title is None:
        return grid
    return _label(grid, labels or [], title, height, width, pad, cols)


def _label(grid: np.ndarray, labels, title, height, width, pad, cols) -> np.ndarray:
    font = ImageFont.load_default()
    margin = 8 + max([int(font.getlength(text)) for text in labels] + [0])
    header = 14 * ((title is not None) + 1)
    canvas = Image.new("RGB", (grid.shape[1] + margin, grid.shape[0] + header), "white")
    canvas.paste(Image.fromarray(grid), (margin, header))
    draw = ImageDraw.Draw(canvas)
    if title is not None:
        draw.text((margin, 1), title, fill="black", font=font)
    for j in range(cols):
        text = str(j + 1)
        x = margin + pad + j * (width + pad) + (width - int(font.getlength(text))) // 2
        draw.text((x, header - 13), text, fill="gray", font=font)
    for i, text in enumerate(labels):
        y = header + pad + i * (height + pad) + max(0, (height - 10) // 2)
        draw.text((4, y), text, fill="black", font=font)
    return np.asarray(canvas)


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
    from mmali_tf import kinds

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
