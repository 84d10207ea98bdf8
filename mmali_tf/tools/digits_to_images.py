"""Writes the embedded digits (scikit-learn's 1,797 real 8x8 digits, mmali_tf/data/embedded.py) as a folder of image
files, two modalities of the same digits: the README's example of the ``image`` kind, needing no download.

    python -m mmali_tf.tools.digits_to_images --out_dir=DIR [--colour_size=40] [--grey_size=24] [--overwrite]

Writes ``DIR/colour/NNNN.png`` (the embedded ``colour32`` rendering, random colours on 32x32, resized to
``colour_size`` square, RGB), ``DIR/grey/NNNN.png`` (the ``grey28`` rendering, MNIST-like, resized to ``grey_size``
square, 8-bit grey) and ``DIR/labels.csv`` (``stem,label``), where ``NNNN`` is the digit's row in scikit-learn's
table: the two files of a stem show the same handwritten digit, so ``python -m mmali_tf.tools.pack_images`` pairs
them by name. Existing files are replaced only with ``--overwrite``; everything is rendered before anything is
written.
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags
from PIL import Image

from mmali_tf import cli
from mmali_tf.data import embedded
from mmali_tf.errors import DataError
from mmali_tf.networks.image import MAX_SIDE, MIN_SIDE
from mmali_tf.tools import flag_checks

F = flags.FLAGS
MODALITIES = ("colour", "grey")
LABELS_FILE = "labels.csv"


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_string("out_dir", None, "Where the colour/, grey/ folders and labels.csv go.", required=True)
    flags.DEFINE_integer("colour_size", 40, "Side of the colour images.", lower_bound=MIN_SIDE, upper_bound=MAX_SIDE)
    flags.DEFINE_integer("grey_size", 24, "Side of the grey images.", lower_bound=MIN_SIDE, upper_bound=MAX_SIDE)
    flags.DEFINE_bool("overwrite", False, "Replace existing files.")
    flag_checks.require_output_dir("out_dir")


def digit_images(colour_size: int = 40, grey_size: int = 24) -> dict[str, np.ndarray]:
    """{"colour": uint8 [1797, s, s, 3], "grey": uint8 [1797, g, g, 1], "labels": int64 [1797]}, row i = digit i of
    scikit-learn's table (both embedded splits, put back in table order)."""
    splits = embedded.split_indices()
    total = sum(len(rows) for rows in splits.values())
    out = {"colour": np.zeros((total, colour_size, colour_size, 3), np.uint8),
           "grey": np.zeros((total, grey_size, grey_size, 1), np.uint8), "labels": np.zeros(total, np.int64)}
    for split, rows in splits.items():
        for name, kind, side in (("colour", "colour32", colour_size), ("grey", "grey28", grey_size)):
            rendered = embedded.load_digits_modality(kind, split)
            out[name][rows] = [_resized(image, side) for image in rendered.examples]
            out["labels"][rows] = rendered.labels
    return out


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    if picture.size != (side, side):
        picture = picture.resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(picture, np.uint8).reshape(side, side, image.shape[-1])


def write_digit_images(out_dir: str, colour_size: int = 40, grey_size: int = 24, overwrite: bool = False,
                       print_fn=print) -> dict[str, str]:
    """Writes the folders and ``labels.csv``; returns {"colour": dir, "grey": dir, "labels": csv path}."""
    paths = {name: os.path.join(out_dir, name) for name in MODALITIES}
    labels_path = os.path.join(out_dir, LABELS_FILE)
    existing = [p for p in (*paths.values(), labels_path) if os.path.exists(p)]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} already exists (pass --overwrite to replace the digit images)")
    data = digit_images(colour_size, grey_size)
    stems = [f"{i:04d}" for i in range(len(data["labels"]))]
    for name, directory in paths.items():
        os.makedirs(directory, exist_ok=True)
        for stem, image in zip(stems, data[name]):
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
                os.path.join(directory, f"{stem}.png"))
        h, w, c = data[name].shape[1:]
        print_fn(f"{directory}/: {len(stems):,} PNG files, {h}x{w}, {'RGB' if c == 3 else 'grey'}")
    tmp = f"{labels_path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("stem,label\n" + "".join(f"{s},{int(y)}\n" for s, y in zip(stems, data["labels"])))
    os.replace(tmp, labels_path)
    print_fn(f"{labels_path}: {len(stems):,} labels (digits 0-9)")
    return {**paths, "labels": labels_path}


def main(argv) -> None:
    del argv
    write_digit_images(os.path.abspath(os.path.expanduser(F.out_dir)), F.colour_size, F.grey_size, F.overwrite,
                       print_fn=lambda s: print(s, flush=True))


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
