"""Rows of images tiled into one labelled uint8 RGB grid (numpy and PIL only): how the kinds draw their examples
for the sample grids (:mod:`mmali_tf.images`)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


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
