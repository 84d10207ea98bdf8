"""The embedded default data: real handwritten digits that ship inside scikit-learn, no download.

``sklearn.datasets.load_digits()`` holds 1,797 genuine 8x8 handwritten digits (values 0..16, UCI
"optdigits" test set). They are turned into two image modalities that take the same model paths as the
real data sets:

* ``grey28``   -- MNIST-like: the digit smoothly upsampled to 20x20 and centred by centre of mass in
  a 28x28 black canvas, uint8 0..255, 1 channel.
* ``colour32`` -- SVHN-like: the digit upsampled to a random 18..26 px square, placed with random
  jitter on a 32x32 colour background, random foreground/background colours with a minimum
  luminance contrast, mild Gaussian noise; uint8, 3 channels.

The train/test split is fixed (stratified, 20% of each class to test, drawn once from a constant seed),
identical for both kinds and for every ``seed``; ``seed`` only changes the colour32 rendering.
Results are cached in-process; building both kinds takes well under a second.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
from PIL import Image

from mmali_tf.constants import PIXELS
from mmali_tf.data.dataset import LABEL, Dataset
from mmali_tf.data.sources import Split, make_split
from mmali_tf.errors import ConfigError, DataError

KINDS = ("grey28", "colour32")
TEST_FRACTION = 0.2
_SPLIT_SEED = 20240  # constant: the split must not depend on the rendering seed


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as float32 [N, 8, 8] in 0..1 (ink = 1) and int64 labels."""
    # sklearn.datasets.load_digits() reads sklearn/datasets/data/digits.csv.gz (64 pixels + label per
    # row). Reading that file directly avoids importing scikit-learn (about 1 s); same arrays.
    spec = importlib.util.find_spec("sklearn")
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz") if spec else ""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        pixels, target = table[:, :64], table[:, 64]
    except (OSError, ValueError, IndexError):
        from sklearn.datasets import load_digits  # deferred: sklearn is slow to import; fallback only

        d = load_digits()
        pixels, target = d.data, d.target
    if pixels.shape != (1797, 64):
        raise DataError(f"{path}: expected scikit-learn's 1797 8x8 digits, got {pixels.shape}")
    images = np.asarray(pixels, dtype=np.float32).reshape(-1, 8, 8) / 16.0
    return images, np.asarray(target, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def split_indices() -> dict[str, np.ndarray]:
    """Stratified split of the 1,797 digits: {"train": idx, "test": idx}, each sorted ascending."""
    _, labels = _raw_digits()
    rng = np.random.default_rng(_SPLIT_SEED)
    test = []
    for c in range(10):
        members = np.flatnonzero(labels == c)
        n_test = int(round(TEST_FRACTION * len(members)))
        test.append(rng.permutation(members)[:n_test])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return {"train": train_idx, "test": test_idx}


def _upsample(img: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of a float [8, 8] image (0..1) to [size, size], clipped to 0..1."""
    out = Image.fromarray(img, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def _grey28(images: np.ndarray) -> np.ndarray:
    out = np.zeros((len(images), 28, 28), np.float32)
    rows = np.arange(20, dtype=np.float32)
    for i, img in enumerate(images):
        big = _upsample(img, 20)
        mass = big.sum()
        # Shift so the centre of mass lands near the canvas centre (as MNIST was made), keeping a 2 px border.
        cy = (big.sum(axis=1) @ rows) / mass if mass > 0 else 9.5
        cx = (big.sum(axis=0) @ rows) / mass if mass > 0 else 9.5
        top = int(np.clip(round(14 - 0.5 - cy), 2, 6))
        left = int(np.clip(round(14 - 0.5 - cx), 2, 6))
        out[i, top:top + 20, left:left + 20] = big
    return np.round(out * 255.0).astype(np.uint8)[..., None]


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _colour32(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(images)
    out = np.empty((n, 32, 32, 3), np.float32)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 31.0 - 0.5
    for i, img in enumerate(images):
        size = int(rng.integers(18, 27))
        alpha = _upsample(img, size)
        slack = 32 - size
        top = int(np.clip(slack // 2 + rng.integers(-3, 4), 0, slack))
        left = int(np.clip(slack // 2 + rng.integers(-3, 4), 0, slack))
        mask = np.zeros((32, 32), np.float32)
        mask[top:top + size, left:left + size] = alpha
        while True:  # draw colours until foreground and background differ enough in luminance
            bg, fg = rng.uniform(0.0, 1.0, 3), rng.uniform(0.0, 1.0, 3)
            if abs(_luminance(fg) - _luminance(bg)) >= 0.3:
                break
        gradient = rng.uniform(-0.08, 0.08, 2)  # soft lighting gradient across the background
        shade = (gradient[0] * yy + gradient[1] * xx)[..., None]
        background = bg[None, None, :] + shade
        out[i] = background * (1.0 - mask[..., None]) + fg[None, None, :] * mask[..., None]
    out += rng.normal(0.0, 0.03, out.shape).astype(np.float32)
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def _build(kind: str, split: str, seed: int) -> Split:
    images, labels = _raw_digits()
    idx = split_indices()[split]
    if kind == "grey28":
        x = _grey28(images[idx])
        how = "upsampled to 20x20, centred in 28x28"
    else:
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        x = _colour32(images[idx], rng)
        how = f"rendered in random colours on 32x32, seed {seed}"
    source = f"digits_{kind}/{split} (scikit-learn load_digits 8x8 real digits, {how}; embedded, no download)"
    return make_split(x, labels[idx], source, what=f"digits_{kind}/{split}")


def load_digits_modality(kind: str, split: str, seed: int = 0) -> Split:
    """The embedded digits as an image modality: ``kind`` "grey28" ([N,28,28,1]) or "colour32"
    ([N,32,32,3]); ``split`` "train" (about 80%, 1,438 images) or "test" (359 images)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown embedded digits kind {kind!r}: expected one of {', '.join(KINDS)}")
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r}: expected train or test")
    return _build(kind, split, int(seed))


def _loader(kind: str):
    def load(data_dir: str | None, split: str, *, seed: int = 0, **_) -> Split:
        return load_digits_modality(kind, split, seed=seed)  # needs no files: data_dir is ignored

    return load


DIGITS_GREY28 = Dataset(name="digits_grey28", description="embedded 8x8 digits as 28x28x1 images, no download",
                        load=_loader("grey28"), examples=PIXELS, pairing=LABEL, display="embedded digits (grey28)")
DIGITS_COLOUR32 = Dataset(name="digits_colour32", description="embedded 8x8 digits as 32x32x3 colour images",
                          load=_loader("colour32"), examples=PIXELS, pairing=LABEL,
                          display="embedded digits (colour32)")
