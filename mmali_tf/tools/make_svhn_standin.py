"""Writes a synthetic SVHN stand-in (train_32x32.mat, test_32x32.mat, STANDIN.txt) to --out_dir.

SVHN cannot be downloaded on the offline development machines. This renders house-number-like
32x32 colour digits (mmali_tf/data/svhn_standin.py) with SVHN's class counts (73,257 train, 26,032
test) in SVHN's own .mat layout, so ``load_svhn(out_dir, ...)`` reads it unchanged and reports it as
a "stand-in" (never as genuine SVHN). Deterministic in --seed.

    python -m mmali_tf.tools.make_svhn_standin --out_dir=/work/data/svhn_standin [--seed=0]
        [--train_count=N --test_count=N] [--workers=2]

A smaller --train_count / --test_count scales SVHN's class counts proportionally. --out_dir is created if needed;
STANDIN.txt is written last, so a set interrupted half-way is never marked complete. Never write the output into
the repository.
"""

from __future__ import annotations

import os
import time

from absl import flags

from mmali_tf import cli
from mmali_tf.data import svhn_standin as st
from mmali_tf.errors import DataError
from mmali_tf.tools import flag_checks

F = flags.FLAGS


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_string("out_dir", None, "Directory to write the .mat files and STANDIN.txt to.", required=True)
    flags.DEFINE_integer("seed", 0, "Random seed (train and test use different streams).", lower_bound=0)
    flags.DEFINE_integer("train_count", sum(st.SVHN_TRAIN_CLASS_COUNTS),
                         "Number of training images (default: SVHN's 73,257).", lower_bound=1)
    flags.DEFINE_integer("test_count", sum(st.SVHN_TEST_CLASS_COUNTS),
                         "Number of test images (default: SVHN's 26,032).", lower_bound=1)
    flags.DEFINE_integer("workers", None, "Render processes (default: 2 for large sets); the output does not "
                         "depend on it.", lower_bound=1)
    flag_checks.require_output_dir("out_dir")


def main(argv) -> None:
    del argv
    out_dir = os.path.abspath(os.path.expanduser(F.out_dir))
    counts = {"train": st.scale_class_counts(st.SVHN_TRAIN_CLASS_COUNTS, F.train_count),
              "test": st.scale_class_counts(st.SVHN_TEST_CLASS_COUNTS, F.test_count)}
    try:
        os.makedirs(out_dir, exist_ok=True)
        marker = os.path.join(out_dir, st.STANDIN_MARKER)
        if os.path.exists(marker):
            os.remove(marker)  # rewritten last: a half-written set is never marked complete
        start = time.monotonic()
        paths = []
        for stream, split in enumerate(("train", "test")):
            t0 = time.monotonic()
            images, labels = st.render_standin(counts[split], F.seed, stream=stream, workers=F.workers,
                                               progress=st.progress_printer(split, lambda s: print(s, flush=True)))
            path = os.path.join(out_dir, f"{split}_32x32.mat")
            st.write_svhn_mat(path, images, labels)
            paths.append(path)
            print(f"{split}: {len(labels):,} images in {time.monotonic() - t0:.1f} s -> {path}", flush=True)
        seconds = time.monotonic() - start
        with open(marker, "w") as f:
            f.write(st.standin_note(F.seed, counts["train"], counts["test"], seconds))
    except OSError as exc:
        raise DataError(f"writing the stand-in to {out_dir}: {exc}") from exc
    print(f"wrote {', '.join(paths)} and {marker} ({seconds:.1f} s; synthetic SVHN stand-in, not SVHN)")


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
