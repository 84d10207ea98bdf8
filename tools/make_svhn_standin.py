"""Writes a synthetic SVHN stand-in (train_32x32.mat, test_32x32.mat, STANDIN.txt) to --out_dir.

SVHN cannot be downloaded on the offline development machines. This renders house-number-like
32x32 colour digits (mmali_tf/data/svhn_standin.py) with SVHN's class counts (73,257 train, 26,032
test) in SVHN's own .mat layout, so ``load_svhn(out_dir, ...)`` reads it unchanged and reports it as
a "stand-in" (never as genuine SVHN). Deterministic in --seed.

    python tools/make_svhn_standin.py --out_dir /work/data/svhn_standin [--seed 0]
        [--train_count N --test_count N] [--workers 2]

A smaller --train_count / --test_count scales SVHN's class counts proportionally.
Never write the output into the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from mmali_tf.data import svhn_standin as st  # noqa: E402
from mmali_tf.errors import MMALIError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out_dir", required=True, help="directory to write the .mat files and STANDIN.txt to")
    p.add_argument("--seed", type=int, default=0, help="random seed (train and test use different streams)")
    p.add_argument("--train_count", type=int, default=sum(st.SVHN_TRAIN_CLASS_COUNTS),
                   help="number of training images (default: SVHN's 73,257)")
    p.add_argument("--test_count", type=int, default=sum(st.SVHN_TEST_CLASS_COUNTS),
                   help="number of test images (default: SVHN's 26,032)")
    p.add_argument("--workers", type=int, default=None,
                   help="render processes (default: 2 for large sets); the output does not depend on it")
    args = p.parse_args(argv)
    if args.train_count < 1 or args.test_count < 1:
        p.error("--train_count and --test_count must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out_dir = os.path.abspath(os.path.expanduser(args.out_dir))
        os.makedirs(out_dir, exist_ok=True)
        marker = os.path.join(out_dir, st.STANDIN_MARKER)
        if os.path.exists(marker):
            os.remove(marker)  # rewritten last: a half-written set is never marked complete
        counts = {
            "train": st.scale_class_counts(st.SVHN_TRAIN_CLASS_COUNTS, args.train_count),
            "test": st.scale_class_counts(st.SVHN_TEST_CLASS_COUNTS, args.test_count),
        }
        start = time.monotonic()
        paths = []
        for stream, split in enumerate(("train", "test")):
            t0 = time.monotonic()
            images, labels = st.render_standin(counts[split], args.seed, stream=stream, workers=args.workers,
                                               progress=st.progress_printer(split, lambda s: print(s, flush=True)))
            path = os.path.join(out_dir, f"{split}_32x32.mat")
            st.write_svhn_mat(path, images, labels)
            paths.append(path)
            print(f"{split}: {len(labels):,} images in {time.monotonic() - t0:.1f} s -> {path}", flush=True)
        seconds = time.monotonic() - start
        with open(marker, "w") as f:
            f.write(st.standin_note(args.seed, counts["train"], counts["test"], seconds))
        print(f"wrote {', '.join(paths)} and {marker} ({seconds:.1f} s; synthetic SVHN stand-in, not SVHN)")
    except MMALIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
