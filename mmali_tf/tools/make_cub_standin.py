"""Writes a synthetic CUB feature stand-in (<out_dir>/cub/{train,test}/, each with STANDIN.txt) to --out_dir.

The CUB images and the StackGAN caption embeddings are not available offline. This writes random paired
caption/image feature vectors with CUB's shapes, 200 classes split class-disjointly 150/50, in the format of
docs/cub_data.md (mmali_tf/data/cub_standin.py describes the generative model), so that
``load_cub_features(out_dir, split)`` reads it and labels it "stand-in" (never CUB). Deterministic in --seed.

    python -m mmali_tf.tools.make_cub_standin --out_dir=/work/data/cub_standin [--seed=0]
        [--train_images=N --test_images=N]

CUB's own sizes are --train_images=8855 --test_images=2933. An existing stand-in in --out_dir is replaced; real
features there are never overwritten (refused before anything is written). Never write the output into the
repository. :func:`write_standin` does the same from Python, without flags.
"""

from __future__ import annotations

import os
import time

from absl import flags

from mmali_tf import cli
from mmali_tf.data import cub_features as cf
from mmali_tf.data import cub_standin as cs
from mmali_tf.errors import ConfigError, DataError, os_reason
from mmali_tf.tools import flag_checks

# Images each split needs at least: one per class of the split.
MIN_IMAGES = {"train": cf.CUB_TRAIN_CLASSES, "test": cf.CUB_NUM_CLASSES - cf.CUB_TRAIN_CLASSES}
CUB_IMAGES = {"train": cf.CUB_TRAIN_IMAGES, "test": cf.CUB_TEST_IMAGES}
F = flags.FLAGS


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_string("out_dir", None, "Data directory; the stand-in goes to <out_dir>/cub/{train,test}/.",
                        required=True)
    flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
    flags.DEFINE_integer("train_images", cs.DEFAULT_TRAIN_IMAGES,
                         f"Train images, 10 pairs each (CUB has {cf.CUB_TRAIN_IMAGES:,}).")
    flags.DEFINE_integer("test_images", cs.DEFAULT_TEST_IMAGES,
                         f"Test images, 10 pairs each (CUB has {cf.CUB_TEST_IMAGES:,}).")
    flag_checks.require_output_dir("out_dir")
    flag_checks.require("out_dir", check_out_dir)
    for split in cf.SPLITS:
        flag_checks.require(f"{split}_images", lambda count, split=split: check_image_count(split, count))


def check_image_count(split: str, count: int) -> None:
    """:class:`ConfigError` unless ``count`` images give every class of ``split`` at least one."""
    if count < MIN_IMAGES[split]:
        raise ConfigError(f"--{split}_images must be >= {MIN_IMAGES[split]} (at least one image per class; CUB has "
                          f"{CUB_IMAGES[split]:,})")


def check_out_dir(out_dir: str) -> None:
    """:class:`DataError` if a split directory under ``out_dir`` holds something other than a stand-in (real
    features are never overwritten)."""
    for split in cf.SPLITS:
        directory = os.path.join(os.path.abspath(os.path.expanduser(out_dir)), cf.SUBDIR, split)
        if os.path.exists(directory) and not os.path.isfile(os.path.join(directory, cs.STANDIN_MARKER)):
            raise DataError(f"{directory} exists and is not a stand-in (no {cs.STANDIN_MARKER}); refusing to "
                            "overwrite it")


def write_standin(out_dir: str, seed: int = 0, train_images: int = cs.DEFAULT_TRAIN_IMAGES,
                  test_images: int = cs.DEFAULT_TEST_IMAGES, print_fn=print) -> dict[str, str]:
    """Writes the stand-in's two splits to ``<out_dir>/cub/{train,test}/`` (each whole or absent, an older
    stand-in replaced) and returns their fingerprints by split. :class:`mmali_tf.errors.MMALIError` for too few
    images or real features in the way, before anything is written."""
    out_dir = os.path.abspath(os.path.expanduser(out_dir))
    check_out_dir(out_dir)
    sizes = {"train": train_images, "test": test_images}
    for split in cf.SPLITS:
        check_image_count(split, sizes[split])
    classes = cs.class_split(seed)
    fingerprints = {}
    for split in cf.SPLITS:
        start = time.monotonic()
        arrays = cs.generate_split(split, sizes[split], seed)
        directory = os.path.join(out_dir, cf.SUBDIR, split)
        note = cs.standin_note(seed, split, sizes[split], classes[split])
        fingerprints[split] = cf.write_cub_split(directory, **arrays, extra_files={cs.STANDIN_MARKER: note},
                                                 overwrite=True)
        print_fn(f"{split}: {sizes[split]:,} images ({sizes[split] * cf.CAPTIONS_PER_IMAGE:,} pairs, "
                 f"{len(classes[split])} classes) in {time.monotonic() - start:.1f} s -> {directory} "
                 f"(fingerprint {fingerprints[split]})")
    return fingerprints


def main(argv) -> None:
    del argv
    try:
        write_standin(F.out_dir, F.seed, F.train_images, F.test_images, print_fn=lambda s: print(s, flush=True))
    except OSError as exc:
        raise DataError(f"writing the stand-in to {F.out_dir}: {os_reason(exc)}") from exc
    print("synthetic CUB stand-in, not CUB")


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
