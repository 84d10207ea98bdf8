"""Writes CUB features (real or the stand-in) as ``vector`` dataset files, the README's example of the vector kind.

    python -m mmali_tf.tools.cub_to_vectors --data_dir=DIR --out_dir=OUT [--captions=all|first] [--overwrite]

Reads ``DIR/cub/{train,test}/`` (docs/cub_data.md) and writes, per split, ``OUT/caption_<split>.npz`` and
``OUT/image_<split>.npz`` (``features`` float32 and ``labels``, the image's class), paired by row as the vector
dataset pairs them (mmali_tf/data/vectors.py): with ``--captions=all`` (default) row ``t`` is CUB's pair ``t``
(caption ``t mod 10`` of image ``t // 10``, the image row repeated for each of its captions); with
``--captions=first`` only each image's first caption (N rows). A stand-in's ``STANDIN.txt`` is copied, so the vector
data is reported as a stand-in too. Existing files are replaced only with ``--overwrite``; each file is written to a
temporary name and renamed. Both splits are read (and checked) before anything is written. :func:`convert` does the
same from Python, without flags.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
from absl import flags

from mmali_tf import cli
from mmali_tf.data import cub_features as cf
from mmali_tf.data.sources import STANDIN_MARKER
from mmali_tf.errors import ConfigError, MMALIError
from mmali_tf.tools import flag_checks

NAMES = ("caption", "image")
CAPTION_MODES = ("all", "first")
F = flags.FLAGS


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_string("data_dir", None, "Directory holding cub/{train,test}/.", required=True)
    flags.DEFINE_string("out_dir", None, "Where the vector files go (a --data_dir for the vector dataset).",
                        required=True)
    flags.DEFINE_enum("captions", "all", CAPTION_MODES, "all: CUB's 10 N pairs (default); first: each image's "
                      "first caption only.")
    flags.DEFINE_bool("overwrite", False, "Replace existing vector files.")
    flag_checks.require_existing_dir("data_dir")
    flag_checks.require_output_dir("out_dir")


def vector_arrays(split: cf.CUBFeatureSplit, captions: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"caption": (features, labels), "image": (features, labels)}, row t of both one pair."""
    if captions == "all":
        labels = np.repeat(split.class_ids, cf.CAPTIONS_PER_IMAGE)
        return {"caption": (split.pair_captions(), labels), "image": (split.pair_images(), labels)}
    return {"caption": (split.caption_features[:, 0], split.class_ids),
            "image": (split.image_features, split.class_ids)}


def _save(path: str, features: np.ndarray, labels: np.ndarray) -> None:
    tmp = f"{path}.partial.{os.getpid()}.npz"
    try:
        np.savez(tmp, features=np.ascontiguousarray(features, np.float32), labels=np.asarray(labels, np.int64))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def convert(data_dir: str, out_dir: str, captions: str = "all", overwrite: bool = False, print_fn=print) -> list[str]:
    """Writes the vector files of both splits to ``out_dir``; returns their paths. :class:`MMALIError` if they
    exist (unless ``overwrite``) or the CUB features cannot be read, before anything is written."""
    if captions not in CAPTION_MODES:
        raise ConfigError(f"unknown captions mode {captions!r}: expected one of {', '.join(CAPTION_MODES)}")
    targets = [os.path.join(out_dir, f"{name}_{split}.npz") for split in cf.SPLITS for name in NAMES]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not overwrite:
        raise MMALIError(f"{existing[0]} already exists (pass --overwrite to replace the vector files)")
    splits = {split: cf.load_cub_features(data_dir, split) for split in cf.SPLITS}  # everything read first
    os.makedirs(out_dir, exist_ok=True)
    for split, cub in splits.items():
        for name, (features, labels) in vector_arrays(cub, captions).items():
            path = os.path.join(out_dir, f"{name}_{split}.npz")
            _save(path, features, labels)
            print_fn(f"{path}: {features.shape[0]:,} x {features.shape[1]} ({cub.source.split(' from ')[0]})")
    marker = os.path.join(out_dir, STANDIN_MARKER)
    if any(cub.standin for cub in splits.values()):
        source = os.path.join(cf.split_dir(data_dir, "train"), STANDIN_MARKER)
        shutil.copyfile(source, marker)
        print_fn(f"{marker}: copied (synthetic stand-in data)")
    elif os.path.exists(marker):
        os.remove(marker)
    return targets


def main(argv) -> None:
    del argv
    convert(F.data_dir, os.path.abspath(os.path.expanduser(F.out_dir)), F.captions, F.overwrite,
            print_fn=lambda s: print(s, flush=True))


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
