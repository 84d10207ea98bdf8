"""A synthetic stand-in for the CUB caption/image features (for machines without CUB and the StackGAN release).

NOT CUB. The arrays have CUB's shapes and pairing (2,048-d "image features", 10 x 1,024-d "caption features" per
image, 200 classes split class-disjointly into 150 train and 50 test classes) and are written in the format of
:mod:`mmali_tf.data.cub_features`, with a ``STANDIN.txt`` marker in each split directory so the loader labels them
"stand-in". The file names say so too (``"017.Standin_Class_017/Standin_Class_017_0003"``).

Generative model (all draws from numpy Generators seeded by ``(seed, stream)``):

* the "world" shared by both splits: a mean content vector per class, N(0, I) in ``CONTENT_DIM`` dimensions, and
  one fixed random linear map per modality from (content, private style) to the feature space;
* per image: content = its class mean + ``INSTANCE_SPREAD`` N(0, I) (shared by the image and its ten captions), and
  a private image style N(0, I) in ``STYLE_DIM`` dimensions;
* image features = ReLU(map_image(content, image style) + bias + ``IMAGE_NOISE`` N(0, I)): non-negative, about half
  zeros, like pooled post-ReLU CNN features;
* caption ``j`` = ``CAPTION_SCALE`` (map_caption(content + ``CAPTION_JITTER`` N(0, I), caption style_j)
  + ``CAPTION_NOISE`` N(0, I)), with a private style per caption.

The per-dimension noise makes both feature covariances full-rank once a split has more images than the image
dimension (2,048), which the reference's CCA (eps = 1e-12) needs to be well posed; that is why the default train
size of the tool is above 2,048. Images are listed class by class (as StackGAN's file lists are).
"""

from __future__ import annotations

import numpy as np

from mmali_tf.data.cub_features import (CAPTION_FEATURE_DIM, CAPTIONS_PER_IMAGE, CUB_NUM_CLASSES,
                                        CUB_TRAIN_CLASSES, IMAGE_FEATURE_DIM, SPLITS)
from mmali_tf.data.sources import STANDIN_MARKER  # noqa: F401  (re-exported for the tool)
from mmali_tf.errors import ConfigError

CONTENT_DIM = 32
STYLE_DIM = 64
INSTANCE_SPREAD = 0.6
IMAGE_NOISE = 1.0
IMAGE_BIAS_MEAN = -0.2
CAPTION_JITTER = 0.8
CAPTION_NOISE = 1.0
CAPTION_SCALE = 0.1

DEFAULT_TRAIN_IMAGES = 2_500
DEFAULT_TEST_IMAGES = 800

_WORLD_STREAM = 100  # seed stream of the shared "world"; the splits use streams 0 (train) and 1 (test)


def class_split(seed: int) -> dict[str, np.ndarray]:
    """Class numbers 1..200 split into 150 train and 50 test classes (each sorted), a seeded permutation."""
    classes = np.random.default_rng([int(seed), _WORLD_STREAM, 0]).permutation(np.arange(1, CUB_NUM_CLASSES + 1))
    return {"train": np.sort(classes[:CUB_TRAIN_CLASSES]), "test": np.sort(classes[CUB_TRAIN_CLASSES:])}


def images_per_class(num_images: int, num_classes: int) -> np.ndarray:
    """``num_images`` spread over ``num_classes`` as evenly as possible (the first classes get one more)."""
    counts = np.full(num_classes, num_images // num_classes, np.int64)
    counts[: num_images % num_classes] += 1
    return counts


def _world(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([int(seed), _WORLD_STREAM, 1])
    latent = CONTENT_DIM + STYLE_DIM
    return {
        "class_means": rng.standard_normal((CUB_NUM_CLASSES + 1, CONTENT_DIM), np.float32),  # row = class number
        "image_map": rng.standard_normal((latent, IMAGE_FEATURE_DIM), np.float32) / np.float32(np.sqrt(latent)),
        "image_bias": (IMAGE_BIAS_MEAN + 0.3 * rng.standard_normal(IMAGE_FEATURE_DIM)).astype(np.float32),
        "caption_map": rng.standard_normal((latent, CAPTION_FEATURE_DIM), np.float32) / np.float32(np.sqrt(latent)),
    }


def generate_split(split: str, num_images: int, seed: int) -> dict:
    """One split of the stand-in: ``image_features`` float32 [N, 2048] (>= 0), ``caption_features`` float32
    [N, 10, 1024], ``filenames`` (list of N str) and ``class_ids`` int64 [N] (class numbers of the split's classes).

    Deterministic in (split, num_images, seed); the two splits of one seed share the world (class means and maps)
    but not their classes. ``num_images`` must give every class of the split at least one image.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    classes = class_split(seed)[split]
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < len(classes):
        raise ConfigError(f"the {split} stand-in needs an integer number of images >= {len(classes)} (one per "
                          f"class), got {num_images!r}")
    world = _world(seed)
    rng = np.random.default_rng([int(seed), SPLITS.index(split)])
    counts = images_per_class(int(num_images), len(classes))
    class_ids = np.repeat(classes, counts)
    n = class_ids.shape[0]

    content = world["class_means"][class_ids] + np.float32(INSTANCE_SPREAD) * rng.standard_normal(
        (n, CONTENT_DIM), np.float32)
    image_latent = np.concatenate([content, rng.standard_normal((n, STYLE_DIM), np.float32)], axis=1)
    image_pre = image_latent @ world["image_map"] + world["image_bias"]
    image_pre += np.float32(IMAGE_NOISE) * rng.standard_normal(image_pre.shape, np.float32)
    image_features = np.maximum(image_pre, np.float32(0.0))

    caption_content = np.repeat(content, CAPTIONS_PER_IMAGE, axis=0)
    caption_content += np.float32(CAPTION_JITTER) * rng.standard_normal(caption_content.shape, np.float32)
    caption_latent = np.concatenate(
        [caption_content, rng.standard_normal((n * CAPTIONS_PER_IMAGE, STYLE_DIM), np.float32)], axis=1)
    captions = caption_latent @ world["caption_map"]
    captions += np.float32(CAPTION_NOISE) * rng.standard_normal(captions.shape, np.float32)
    captions *= np.float32(CAPTION_SCALE)

    filenames = []
    for c, count in zip(classes, counts):
        filenames += [f"{c:03d}.Standin_Class_{c:03d}/Standin_Class_{c:03d}_{j:04d}" for j in range(count)]
    return {
        "image_features": image_features,
        "caption_features": captions.reshape(n, CAPTIONS_PER_IMAGE, CAPTION_FEATURE_DIM),
        "filenames": filenames,
        "class_ids": class_ids.astype(np.int64),
    }


def standin_note(seed: int, split: str, num_images: int, classes: np.ndarray) -> str:
    """Text of the ``STANDIN.txt`` marker of one split directory."""
    return (
        "SYNTHETIC CUB STAND-IN -- these are NOT CUB features.\n"
        "Generated by mmali_tf: python -m mmali_tf.tools.make_cub_standin (mmali_tf/data/cub_standin.py): random\n"
        "paired vectors with a shared class/content factor and private per-view factors, at CUB's shapes (2048-d\n"
        "non-negative 'image features', 10 x 1024-d 'caption features' per image), in the format of\n"
        "docs/cub_data.md.\n"
        "Results obtained with it must be reported as 'CUB stand-in', never as CUB.\n"
        f"seed: {seed}\n"
        f"split: {split}, {num_images} images, {num_images * CAPTIONS_PER_IMAGE} pairs, {len(classes)} classes\n"
        f"classes: {' '.join(str(int(c)) for c in classes)}\n"
    )
