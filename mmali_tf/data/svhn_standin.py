"""A synthetic stand-in for SVHN cropped digits (for machines that cannot download SVHN).

NOT genuine SVHN. Every image is a 32x32 colour crop of a rendered "house number": the labelled digit
in the middle, often with neighbouring digits partly visible at the left/right edges, as in SVHN's
cropped-digit format. Variation per image (all drawn from a seeded numpy Generator):

* glyphs: 20 TrueType faces shipped with matplotlib (DejaVu Sans / Sans Mono / Serif, STIX General,
  Computer Modern roman / sans / bold / typewriter; regular, bold, italic/oblique);
* digit height 15..28 px, aspect 0.8..1.2, rotation +-8 deg, shear +-0.15, offset +-2.5 px;
* distractor digits left/right (each with probability 0.75) at a random gap, same font and baseline;
* occasional outline stroke in a third colour;
* random background colour with a low-frequency colour field, occasionally a hard edge (plate border);
  random foreground colour with luminance contrast >= 0.2 against the background; colours are
  randomly desaturated;
* Gaussian blur (sigma 0.2..1.3) and Gaussian pixel noise (sigma 0.5%..4%).

Rendering uses PIL (FreeType). Work is split into fixed chunks of ``CHUNK`` images, each with its own
seed derived from (seed, stream, chunk index), so the output does not depend on the number of worker
processes. Workers are started with the "spawn" method (safe even after TensorFlow was imported).

``write_svhn_mat`` writes SVHN's own .mat layout, which ``load_svhn`` reads unchanged.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmali_tf.data.sources import STANDIN_MARKER  # noqa: F401  (re-exported for the tool)
from mmali_tf.errors import ConfigError, DataError

SVHN_TRAIN_CLASS_COUNTS = (4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659)  # digit 0..9, 73,257
SVHN_TEST_CLASS_COUNTS = (1744, 5099, 4149, 2882, 2523, 2384, 1977, 2019, 1660, 1595)  # 26,032

CHUNK = 512
IMAGE_SIZE = 32
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmss10.ttf", "cmb10.ttf", "cmtt10.ttf",
)
_CANVAS = (72, 48)  # width, height of the scratch canvas the text is drawn on before the affine warp


def scale_class_counts(counts: Sequence[int], total: int) -> tuple[int, ...]:
    """Scales ``counts`` to sum exactly to ``total`` (largest-remainder rounding, proportions kept)."""
    counts = np.asarray(counts, dtype=np.float64)
    if total < 0 or counts.sum() <= 0:
        raise ConfigError(f"cannot scale class counts {counts.tolist()} to {total}")
    exact = counts * (total / counts.sum())
    base = np.floor(exact).astype(np.int64)
    short = int(total - base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:short]] += 1
    return tuple(int(c) for c in base)


# ----------------------------------------------------------------------------------------------
# Fonts (loaded lazily, once per process)


_FONT_PATHS: list[str] | None = None
_FONT_HEIGHT: dict[int, float] = {}  # font index -> ink height of "0".."9" (mean) per point of size
_FONT_CACHE: dict[tuple[int, int], object] = {}


def font_paths() -> list[str]:
    """Absolute paths of the TrueType faces used, from matplotlib's bundled font directory."""
    global _FONT_PATHS
    if _FONT_PATHS is None:
        import matplotlib  # deferred: slow to import, only to find its bundled DejaVu font

        font_dir = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")
        paths = [os.path.join(font_dir, f) for f in FONT_FILES if os.path.isfile(os.path.join(font_dir, f))]
        if len(paths) < 4:
            raise DataError(f"{font_dir}: expected matplotlib's bundled DejaVu/STIX/cm fonts, found {len(paths)}")
        _FONT_PATHS = paths
    return _FONT_PATHS


def _font(index: int, size: int):
    key = (index, size)
    font = _FONT_CACHE.get(key)
    if font is None:
        font = ImageFont.truetype(font_paths()[index], size)
        _FONT_CACHE[key] = font
    return font


def _height_per_point(index: int) -> float:
    h = _FONT_HEIGHT.get(index)
    if h is None:
        font = _font(index, 100)
        heights = [font.getbbox(str(d))[3] - font.getbbox(str(d))[1] for d in range(10)]
        h = float(np.mean(heights)) / 100.0
        _FONT_HEIGHT[index] = h
    return h


# ----------------------------------------------------------------------------------------------
# Rendering


def _glyph_masks(label: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Fill mask (and optional outline mask) of one 32x32 crop, float32 0..1."""
    n_fonts = len(font_paths())
    fi = int(rng.integers(n_fonts))
    height = rng.uniform(15.0, 28.0)
    size = max(6, int(round(height / _height_per_point(fi))))
    font = _font(fi, size)
    stroke = int(rng.random() < 0.15)

    cw, ch = _CANVAS
    cx, cy = cw / 2.0, ch / 2.0
    x0, y0, x1, y1 = font.getbbox(str(label))
    ox, oy = cx - (x0 + x1) / 2.0, cy - (y0 + y1) / 2.0  # origin putting the ink box centre at the canvas centre
    glyphs = [(str(label), ox)]
    for side in (-1, 1):
        if rng.random() < 0.75:
            d = str(int(rng.integers(10)))
            gap = rng.uniform(0.04, 0.4) * height
            bx0, _, bx1, _ = font.getbbox(d)
            if side < 0:
                gx = ox + x0 - gap - bx1
            else:
                gx = ox + x1 + gap - bx0
            glyphs.append((d, gx))

    fill = Image.new("L", _CANVAS, 0)
    draw = ImageDraw.Draw(fill)
    for text, gx in glyphs:
        draw.text((gx, oy), text, font=font, fill=255)
    outline = None
    if stroke:
        outline = Image.new("L", _CANVAS, 0)
        odraw = ImageDraw.Draw(outline)
        for text, gx in glyphs:
            odraw.text((gx, oy), text, font=font, fill=255, stroke_width=1, stroke_fill=255)

    # Affine warp: output pixel (u, v) -> canvas point (x, y); rotation, shear, aspect, offset.
    angle = math.radians(rng.uniform(-8.0, 8.0))
    shear = rng.uniform(-0.15, 0.15)
    aspect = rng.uniform(0.8, 1.2)
    tx, ty = rng.uniform(-2.5, 2.5), rng.uniform(-2.0, 2.0)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    mat = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([1.0 / aspect, 1.0])
    half = IMAGE_SIZE / 2.0
    offset = np.array([cx, cy]) - mat @ np.array([half + tx, half + ty])
    coeffs = (mat[0, 0], mat[0, 1], offset[0], mat[1, 0], mat[1, 1], offset[1])
    out_size = (IMAGE_SIZE, IMAGE_SIZE)
    warp = lambda im: np.asarray(im.transform(out_size, Image.Transform.AFFINE, coeffs,  # noqa: E731
                                              resample=Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    fill_mask = warp(fill)
    outline_mask = np.clip(warp(outline) - fill_mask, 0.0, 1.0) if outline is not None else None
    return fill_mask, outline_mask


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _muted_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random RGB colours [n, 3] in 0..1, desaturated by a random amount (street scenes are rarely vivid)."""
    rgb = rng.uniform(0.0, 1.0, (n, 3))
    grey = rgb.mean(axis=1, keepdims=True)
    saturation = rng.uniform(0.0, 1.0, (n, 1)) ** 1.5
    return grey + saturation * (rgb - grey)


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Linear interpolation matrix [n_out, n_in] (pixel-centre aligned, edges clamped)."""
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 1)
    hi = np.clip(lo + 1, 0, n_in - 1)
    w = np.clip(pos - lo, 0.0, 1.0)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1.0 - w
    m[np.arange(n_out), hi] += w
    return m


def _blur_matrices(sigmas: np.ndarray, n: int) -> np.ndarray:
    """Per-image Gaussian blur as [B, n, n] matrices (reflect-free: rows renormalised at the borders)."""
    idx = np.arange(n)
    diff = idx[None, :, None] - idx[None, None, :]
    k = np.exp(-0.5 * (diff / sigmas[:, None, None]) ** 2)
    return k / k.sum(axis=2, keepdims=True)


def _separable(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Applies per-image matrices m [B, P, Q] along both spatial axes of x [B, Q, Q, C] -> [B, P, P, C]."""
    b, q, _, c = x.shape
    p = m.shape[1]
    rows = np.matmul(m, x.reshape(b, q, q * c)).reshape(b, p, q, c)  # along height
    cols = np.matmul(m, rows.transpose(0, 2, 1, 3).reshape(b, q, p * c)).reshape(b, p, p, c)  # along width
    return cols.transpose(0, 2, 1, 3)


def render_chunk(labels: np.ndarray, seed: Sequence[int]) -> np.ndarray:
    """Renders one chunk: uint8 [len(labels), 32, 32, 3]; a pure function of (labels, seed)."""
    rng = np.random.default_rng(list(seed))
    n = len(labels)
    size = IMAGE_SIZE
    fill = np.empty((n, size, size), np.float32)
    outline = np.zeros((n, size, size), np.float32)
    for i, label in enumerate(labels):
        f, o = _glyph_masks(int(label), rng)
        fill[i] = f
        if o is not None:
            outline[i] = o

    # Colours: background, foreground with enough luminance contrast, outline colour.
    bg = _muted_colours(rng, n)
    fg = _muted_colours(rng, n)
    for _ in range(100):  # redraw foregrounds that are too close to their background
        bad = np.abs(_luminance(fg) - _luminance(bg)) < 0.2
        if not bad.any():
            break
        fg[bad] = _muted_colours(rng, int(bad.sum()))
    fg = np.where((np.abs(_luminance(fg) - _luminance(bg)) < 0.2)[:, None], 1.0 - bg, fg)
    line = _muted_colours(rng, n)

    # Background field: base colour + smooth colour variation + linear lighting + sometimes an edge.
    up = _interp_matrix(4, size)
    coarse = (rng.normal(0.0, 1.0, (n, 4, 4, 1)) * rng.uniform(0.01, 0.1, (n, 1, 1, 1))  # mostly brightness
              + rng.normal(0.0, 0.02, (n, 4, 4, 3)))
    field = _separable(np.broadcast_to(up, (n,) + up.shape), coarse)
    yy, xx = (np.mgrid[0:size, 0:size] / (size - 1.0) - 0.5).astype(np.float32)
    grad = rng.uniform(-0.15, 0.15, (n, 2))
    field += (grad[:, 0, None, None] * yy + grad[:, 1, None, None] * xx)[..., None]
    background = bg[:, None, None, :] + field
    edge = rng.random(n) < 0.3
    theta = rng.uniform(0.0, 2 * np.pi, n)
    dist = rng.uniform(0.3, 0.5, n)  # edge near the crop border, so the digit stays on the plate
    side = (np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy) > dist[:, None, None]
    other = _muted_colours(rng, n)
    background = np.where((edge[:, None, None] & side)[..., None], other[:, None, None, :], background)

    f, o = fill[..., None], outline[..., None]
    img = background * (1.0 - f - o) + fg[:, None, None, :] * f + line[:, None, None, :] * o

    # Blur (separable Gaussian, per-image sigma) then pixel noise.
    b = _blur_matrices(rng.uniform(0.2, 1.3, n), size)
    img = _separable(b, img)
    img += rng.normal(0.0, 1.0, img.shape) * rng.uniform(0.005, 0.04, (n, 1, 1, 1))
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _render_task(args: tuple[np.ndarray, tuple[int, ...]]) -> np.ndarray:
    labels, seed = args
    return render_chunk(labels, seed)


def render_standin(class_counts: Sequence[int], seed: int, *, stream: int = 0, workers: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Renders ``sum(class_counts)`` images: uint8 [N, 32, 32, 3] and int64 labels [N] (shuffled order).

    Deterministic in (class_counts, seed, stream) and independent of ``workers`` (None: 2 processes
    for large requests, in-process for small ones). Use a different ``stream`` for each split made
    with the same seed. ``progress(done, total)`` is called after each chunk.
    """
    counts = [int(c) for c in class_counts]
    if len(counts) != 10 or min(counts) < 0:
        raise ConfigError(f"class_counts must be 10 non-negative counts (digits 0..9), got {counts}")
    labels = np.repeat(np.arange(10, dtype=np.int64), counts)
    labels = np.random.default_rng([int(seed), int(stream), 0]).permutation(labels)
    total = len(labels)
    tasks = [(labels[k:k + CHUNK], (int(seed), int(stream), 1, k // CHUNK)) for k in range(0, total, CHUNK)]
    if workers is None:
        workers = 1 if total <= 4 * CHUNK else min(2, os.cpu_count() or 1)
    images = np.empty((total, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    done = 0

    def collect(results) -> None:
        nonlocal done
        for (chunk_labels, (_, _, _, k)), chunk in zip(tasks, results):
            images[k * CHUNK:k * CHUNK + len(chunk_labels)] = chunk
            done += len(chunk_labels)
            if progress is not None:
                progress(done, total)

    if workers <= 1 or len(tasks) <= 1:
        collect(_render_task(t) for t in tasks)
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            collect(pool.imap(_render_task, tasks, chunksize=1))
    return images, labels


# ----------------------------------------------------------------------------------------------
# SVHN .mat layout


def write_svhn_mat(path, images: np.ndarray, labels: np.ndarray) -> None:
    """Writes SVHN's layout: X (32, 32, 3, N) uint8 and y (N, 1) uint8 with 10 meaning digit 0."""
    import scipy.io  # deferred: scipy is only needed to write the .mat files

    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise DataError(f"{path}: expected images uint8 [N, 32, 32, 3] to write, got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{path}: expected {images.shape[0]} labels in 0..9 to write, got {labels.shape}")
    x = np.ascontiguousarray(np.transpose(images, (1, 2, 3, 0)))
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
    path = os.fspath(path)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        scipy.io.savemat(f, {"X": x, "y": y}, do_compression=False)
    os.replace(tmp, path)


def standin_note(seed: int, train_counts: Sequence[int], test_counts: Sequence[int], seconds: float) -> str:
    """Text of the STANDIN.txt marker written next to the .mat files."""
    return (
        "SYNTHETIC SVHN STAND-IN -- this is NOT genuine SVHN.\n"
        "Rendered by python -m mmali_tf.tools.make_svhn_standin (mmali_tf/data/svhn_standin.py): 32x32 colour\n"
        "crops of house-number-like digits drawn with matplotlib's bundled fonts, random colours, distractor\n"
        "digits, blur and noise. Same file layout as SVHN's train_32x32.mat / test_32x32.mat (y = 10 means digit 0).\n"
        "Results obtained with it must be reported as 'SVHN stand-in', never as SVHN.\n"
        f"seed: {seed}\n"
        f"train: {sum(train_counts)} images, class counts 0..9: {list(train_counts)}\n"
        f"test: {sum(test_counts)} images, class counts 0..9: {list(test_counts)}\n"
        f"render time: {seconds:.0f} s\n"
    )


def progress_printer(name: str, printer: Callable[[str], None] = print) -> Callable[[int, int], None]:
    """A ``progress`` callback printing count, rate and ETA about every 5 s (and at the end)."""
    start = time.monotonic()
    last = [start]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 5.0:
            return
        last[0] = now
        rate = done / max(now - start, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        printer(f"{name}: {done:,}/{total:,} images, {rate:,.0f} img/s, ETA {eta:,.0f} s")

    return report
