"""Writes a synthetic CUB feature stand-in (<out_dir>/cub/{train,test}/, each with STANDIN.txt) to --out_dir.

The CUB images and the StackGAN caption embeddings are not available offline. This writes random paired
caption/image feature vectors with CUB's shapes, 200 classes split class-disjointly 150/50, in the format of
docs/cub_data.md (mmali_tf/data/cub_standin.py describes the generative model), so that
``load_cub_features(out_dir, split)`` reads it and labels it "stand-in" (never CUB). Deterministic in --seed.

    python tools/make_cub_standin.py --out_dir /work/data/cub_standin [--seed 0]
        [--train_images N --test_images N]

CUB's own sizes are --train_images 8855 --test_images 2933. An existing stand-in in --out_dir is replaced; real
features there are never overwritten. Never write the output into the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from mmali_tf.data import cub_features as cf  # noqa: E402
from mmali_tf.data import cub_standin as cs  # noqa: E402
from mmali_tf.errors import MMALIError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out_dir", required=True, help="data directory; the stand-in goes to <out_dir>/cub/{train,test}")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--train_images", type=int, default=cs.DEFAULT_TRAIN_IMAGES,
                   help=f"train images (10 pairs each; default {cs.DEFAULT_TRAIN_IMAGES:,}, CUB has "
                        f"{cf.CUB_TRAIN_IMAGES:,})")
    p.add_argument("--test_images", type=int, default=cs.DEFAULT_TEST_IMAGES,
                   help=f"test images (default {cs.DEFAULT_TEST_IMAGES:,}, CUB has {cf.CUB_TEST_IMAGES:,})")
    args = p.parse_args(argv)
    train_classes = cf.CUB_TRAIN_CLASSES
    test_classes = cf.CUB_NUM_CLASSES - cf.CUB_TRAIN_CLASSES
    if args.train_images < train_classes or args.test_images < test_classes:
        p.error(f"--train_images must be >= {train_classes} and --test_images >= {test_classes} "
                f"(at least one image per class)")
    out_dir = os.path.abspath(os.path.expanduser(args.out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        p.error(f"--out_dir {out_dir} exists and is not a directory")
    for split in cf.SPLITS:
        directory = os.path.join(out_dir, cf.SUBDIR, split)
        if os.path.exists(directory) and not os.path.isfile(os.path.join(directory, cs.STANDIN_MARKER)):
            p.error(f"{directory} exists and is not a stand-in (no {cs.STANDIN_MARKER}); refusing to overwrite it")
    args.out_dir = out_dir
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        classes = cs.class_split(args.seed)
        sizes = {"train": args.train_images, "test": args.test_images}
        for split in cf.SPLITS:
            start = time.monotonic()
            arrays = cs.generate_split(split, sizes[split], args.seed)
            directory = os.path.join(args.out_dir, cf.SUBDIR, split)
            note = cs.standin_note(args.seed, split, sizes[split], classes[split])
            fingerprint = cf.write_cub_split(directory, **arrays, extra_files={cs.STANDIN_MARKER: note},
                                             overwrite=True)
            print(f"{split}: {sizes[split]:,} images ({sizes[split] * cf.CAPTIONS_PER_IMAGE:,} pairs, "
                  f"{len(classes[split])} classes) in {time.monotonic() - start:.1f} s -> {directory} "
                  f"(fingerprint {fingerprint})", flush=True)
        print("synthetic CUB stand-in, not CUB")
    except MMALIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
