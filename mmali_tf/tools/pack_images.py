"""Packs a folder of image files into the ``image`` dataset's files (mmali_tf/data/image_files.py).

    python -m mmali_tf.tools.pack_images --image_dir=DIR --out_dir=OUT [--labels_csv=FILE] [--modalities=a,b]
        [--height=H --width=W] [--channels=C] [--test_fraction=0.2] [--seed=0] [--skip_unmatched] [--overwrite]

Layout: one sub-folder of ``DIR`` per modality (its name is the modality's name: a letter, then letters, digits or
``_``), holding image files (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, ``.tif``, ``.tiff``, ``.webp``,
``.ppm``, ``.pgm``; other files are counted and left out). Files are matched across modalities by name without the
extension (the "stem"): ``DIR/rgb/0001.png`` and ``DIR/depth/0001.png`` are one tuple. A stem missing from some
modality is an error listing a few, unless ``--skip_unmatched`` leaves such stems out (the count is printed).

Sizes and channels: without ``--height``/``--width`` every image of a modality must already have one size (each
modality may have its own); with them every image is resized to H x W (Lanczos; the aspect ratio is not kept, so
crop first if it matters). Sides must be 16 to 128 pixels (the ``image`` kind's range). Without ``--channels`` each
modality keeps the channels of its files (grey 1, grey + alpha 2, colour 3, colour + alpha 4; the most any of its
files has, the others converted up); with it every image is converted to C channels. 16-bit grey images are scaled
to 8 bits.

Labels (optional): ``--labels_csv`` with one ``stem,label`` line per tuple (a first line ``stem,label`` is a header).
Integer labels (>= 0) are kept; otherwise the label names are numbered in sorted order and ``OUT/label_names.txt``
lists ``index,name``. Every packed stem needs a label (``--skip_unmatched`` leaves out stems without one). With
labels, evaluation reports the linear probe and coherence; without, CCA correlation.

Split: a seeded random ``--test_fraction`` of the tuples is the test split (per class when there are labels); rows
within a split are in stem order. Each modality gets ``OUT/NAME_train.npz`` and ``OUT/NAME_test.npz`` (``images``
uint8 [N, H, W, C], ``labels`` when given, ``stems``: the file stem of each row). Everything is read and checked
before anything is written; existing files are replaced only with ``--overwrite``. :func:`pack` does the same from
Python.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import time

import numpy as np
from absl import flags
from PIL import Image, UnidentifiedImageError

from mmali_tf import cli
from mmali_tf.data.image_files import MAX_CLASSES, image_path
from mmali_tf.data.sources import SPLITS
from mmali_tf.errors import ConfigError, DataError
from mmali_tf.networks.image import MAX_CHANNELS, MAX_SIDE, MIN_CHANNELS, MIN_SIDE
from mmali_tf.tools import flag_checks

F = flags.FLAGS
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
LABEL_NAMES_FILE = "label_names.txt"
SHOWN = 5
"""How many stems or files an error lists."""
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_string("image_dir", None, "Folder with one sub-folder of image files per modality.", required=True)
    flags.DEFINE_string("out_dir", None, "Where NAME_train.npz / NAME_test.npz go (the --data_dir of training).",
                        required=True)
    flags.DEFINE_list("modalities", [], "Sub-folders to pack (default: every sub-folder).")
    flags.DEFINE_string("labels_csv", None, "CSV of stem,label lines (optional).")
    flags.DEFINE_integer("height", 0, "Resize every image to this height (0: keep each modality's size).",
                         lower_bound=0)
    flags.DEFINE_integer("width", 0, "Resize every image to this width (0: keep each modality's size).",
                         lower_bound=0)
    flags.DEFINE_integer("channels", 0, "Convert every image to 1-4 channels (0: keep each modality's).",
                         lower_bound=0, upper_bound=MAX_CHANNELS)
    flags.DEFINE_float("test_fraction", 0.2, "Fraction of the tuples in the test split.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_integer("seed", 0, "Seed of the train/test split.", lower_bound=0)
    flags.DEFINE_bool("skip_unmatched", False, "Leave out stems missing from some modality (or from the labels) "
                      "instead of refusing.")
    flags.DEFINE_bool("overwrite", False, "Replace existing NAME_train.npz / NAME_test.npz files.")
    flag_checks.require_existing_dir("image_dir")
    flag_checks.require_output_dir("out_dir")
    flag_checks.require("labels_csv", lambda path: None if os.path.isfile(path) else _missing(path))
    flags.register_multi_flags_validator(["height", "width"], _check_size)
    flags.register_validator("test_fraction", lambda f: 0.0 < f < 1.0, "--test_fraction must lie strictly between "
                             "0 and 1")


def _missing(path: str):
    raise ConfigError(f"no such file: {path}")


def _check_size(values) -> bool:
    height, width = values["height"], values["width"]
    if bool(height) != bool(width):
        raise flags.ValidationError("give both --height and --width (or neither, to keep the files' sizes)")
    for name in ("height", "width"):
        if values[name] and not MIN_SIDE <= values[name] <= MAX_SIDE:
            raise flags.ValidationError(f"--{name} must be from {MIN_SIDE} to {MAX_SIDE} (the image kind's range), "
                                        f"got {values[name]}")
    return True


@dataclasses.dataclass(frozen=True)
class Packed:
    """What :func:`pack` wrote: the files, the tuples per split and each modality's image shape."""

    paths: list[str]
    rows: dict[str, int]
    shapes: dict[str, tuple[int, int, int]]
    labelled: bool


# ------------------------------------------------------------------------------------------------ finding files
def _few(items) -> str:
    items = sorted(items)
    more = f" and {len(items) - SHOWN:,} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def find_modalities(image_dir: str, names=()) -> list[str]:
    """The modality sub-folders of ``image_dir`` (or ``names``, checked), sorted or in the given order."""
    if names:
        missing = [n for n in names if not os.path.isdir(os.path.join(image_dir, n))]
        if missing:
            raise ConfigError(f"{image_dir} has no sub-folder {_few(missing)} (--modalities)")
        found = list(dict.fromkeys(names))
    else:
        found = sorted(e.name for e in os.scandir(image_dir) if e.is_dir() and not e.name.startswith("."))
    if len(found) < 2:
        raise DataError(f"{image_dir} needs one sub-folder of image files per modality, at least 2; found "
                        f"{_few(found) if found else 'none'}")
    bad = [n for n in found if not NAME_RE.match(n)]
    if bad:
        raise DataError(f"{image_dir}: sub-folder names are modality names and must be a letter followed by letters, "
                        f"digits or _ ; rename {_few(bad)}")
    return found


def find_files(folder: str, print_fn=print) -> dict[str, str]:
    """{stem: path} of the image files in ``folder`` (other files are counted and left out)."""
    files, other = {}, 0
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            other += 1
            continue
        if stem in files:
            raise DataError(f"{folder}: two files share the name {stem!r} ({os.path.basename(files[stem])}, "
                            f"{entry.name}); the name without its extension identifies a tuple")
        files[stem] = entry.path
    if other:
        print_fn(f"{folder}: {other:,} file(s) without an image extension left out")
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def match_stems(files: dict[str, dict[str, str]], skip_unmatched: bool, print_fn=print) -> list[str]:
    """The stems every modality has, sorted; unmatched stems are an error unless ``skip_unmatched``."""
    everywhere = set.intersection(*(set(f) for f in files.values()))
    for name, found in files.items():
        extra = set(found) - everywhere
        if not extra:
            continue
        if not skip_unmatched:
            absent = ", ".join(n for n in files if n != name and not set(files[n]) >= extra)
            raise DataError(f"{len(extra):,} file(s) of {name} have no match in {absent}: {_few(extra)} (files are "
                            f"matched by name; pass --skip_unmatched to leave them out)")
        print_fn(f"{name}: {len(extra):,} file(s) without a match in every modality left out")
    if not everywhere:
        raise DataError("no file name occurs in every modality (files are matched by name without extension)")
    return sorted(everywhere)


# ------------------------------------------------------------------------------------------------ labels
def read_labels(path: str) -> dict[str, str]:
    """{stem: label text} from a CSV of ``stem,label`` lines (an optional header ``stem,label``)."""
    labels = {}
    try:
        with open(path, newline="") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) != 2 or not row[0].strip() or not row[1].strip():
                    raise DataError(f"{path}, line {number}: expected stem,label, got {','.join(row)!r}")
                stem, label = row[0].strip(), row[1].strip()
                if number == 1 and (stem, label) == ("stem", "label"):
                    continue
                if stem in labels and labels[stem] != label:
                    raise DataError(f"{path}, line {number}: {stem!r} has two labels ({labels[stem]!r}, {label!r})")
                labels[stem] = label
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text CSV file ({e})") from None
    if not labels:
        raise DataError(f"{path}: no stem,label lines")
    return labels


def label_values(texts: list[str], path: str) -> tuple[np.ndarray, list[str] | None]:
    """int64 labels of ``texts``: the integers themselves, or (names) their index in the sorted names, which are
    returned too."""
    try:
        values = np.array([int(t) for t in texts], np.int64)
    except ValueError:
        names = sorted(set(texts))
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[t] for t in texts], np.int64), names
    if values.min() < 0 or values.max() >= MAX_CLASSES:
        raise DataError(f"{path}: integer labels must lie in 0..{MAX_CLASSES - 1}, found [{values.min()}, "
                        f"{values.max()}]")
    return values, None


# ------------------------------------------------------------------------------------------------ images
def _channels_of(image: Image.Image) -> int:
    if image.mode in ("LA", "La"):
        return 2
    if image.mode in ("RGBA", "RGBa", "PA") or (image.mode == "P" and "transparency" in image.info):
        return 4
    if image.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        return 1
    return 3


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grey: to 8 bits, keeping the range
        pixels = np.asarray(image, np.float64)
        scale = 257.0 if pixels.max(initial=0.0) > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(pixels / scale), 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image if image.mode == MODES[channels] else image.convert(MODES[channels])


def _open(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read the image ({type(e).__name__}: {e})") from None


def read_modality(name: str, paths: list[str], size: tuple[int, int] | None, channels: int,
                  print_fn=print) -> np.ndarray:
    """uint8 ``[N, H, W, C]`` images of the files ``paths`` (in order), resized to ``size`` (H, W) if given and
    converted to ``channels`` (0: the most any of the files has)."""
    images = [_open(p) for p in _progress(paths, f"reading {name}", print_fn)]
    if not channels:
        channels = max(_channels_of(image) for image in images)
    if size is None:
        sizes = {}
        for path, image in zip(paths, images):
            sizes.setdefault((image.height, image.width), path)
        if len(sizes) > 1:
            (first, path_a), (second, path_b) = list(sizes.items())[:2]
            raise DataError(f"{name}: images of different sizes ({first[0]}x{first[1]} {path_a}, {second[0]}x"
                            f"{second[1]} {path_b}); pass --height and --width to resize them all")
        size = next(iter(sizes))
        if not all(MIN_SIDE <= side <= MAX_SIDE for side in size):
            raise DataError(f"{name}: images are {size[0]}x{size[1]}, but the image kind takes {MIN_SIDE} to "
                            f"{MAX_SIDE} pixels a side; pass --height and --width to resize them")
    height, width = size
    out = np.empty((len(images), height, width, channels), np.uint8)
    for i, image in enumerate(images):
        image = _to_mode(image, channels)
        if (image.height, image.width) != (height, width):
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        out[i] = np.asarray(image, np.uint8).reshape(height, width, channels)
    return out


def _progress(items, what: str, print_fn, every: float = 5.0):
    started = last = time.monotonic()
    for i, item in enumerate(items, start=1):
        yield item
        now = time.monotonic()
        if now - last >= every and i < len(items):
            print_fn(f"  {what}: {i:,}/{len(items):,} files ({now - started:.0f} s)")
            last = now


# ------------------------------------------------------------------------------------------------ split, write
def split_rows(count: int, labels: np.ndarray | None, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """{"train": rows, "test": rows}, each sorted: a seeded ``test_fraction`` of ``range(count)`` to test, drawn per
    class when there are labels; both splits non-empty."""
    rng = np.random.default_rng([int(seed), 11])
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if labels is not None else [np.arange(count)]
    test = np.sort(np.concatenate([rng.permutation(g)[:int(round(test_fraction * len(g)))] for g in groups]))
    train = np.setdiff1d(np.arange(count), test)
    if len(test) == 0 or len(train) == 0:
        raise DataError(f"{count:,} tuple(s) with --test_fraction={test_fraction:g} leave the "
                        f"{'test' if len(test) == 0 else 'train'} split empty")
    return {"train": train, "test": test}


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _write_all(files: dict[str, bytes]) -> None:
    """Every file written beside its target first, then each renamed into place (temporaries removed on failure)."""
    temporaries = {path: f"{path}.tmp.{os.getpid()}" for path in files}
    try:
        for path, data in files.items():
            with open(temporaries[path], "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for path, tmp in temporaries.items():
            os.replace(tmp, path)
    finally:
        for tmp in temporaries.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def targets_of(out_dir: str, names) -> list[str]:
    return [image_path(out_dir, name, split) for name in names for split in SPLITS]


def pack(image_dir: str, out_dir: str, *, modalities=(), labels_csv: str | None = None,
         size: tuple[int, int] | None = None, channels: int = 0, test_fraction: float = 0.2, seed: int = 0,
         skip_unmatched: bool = False, overwrite: bool = False, print_fn=print) -> Packed:
    """Packs ``image_dir`` into ``out_dir`` (see the module docstring); :class:`~mmali_tf.errors.MMALIError` before
    anything is written when something is wrong."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if channels and not MIN_CHANNELS <= channels <= MAX_CHANNELS:
        raise ConfigError(f"channels must be from {MIN_CHANNELS} to {MAX_CHANNELS}, got {channels}")
    names = find_modalities(image_dir, modalities)
    targets = targets_of(out_dir, names)
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} already exists (pass --overwrite to replace the image files)")
    files = {name: find_files(os.path.join(image_dir, name), print_fn) for name in names}
    stems = match_stems(files, skip_unmatched, print_fn)
    labels, label_names = None, None
    if labels_csv:
        texts = read_labels(labels_csv)
        unlabelled = [s for s in stems if s not in texts]
        if unlabelled and not skip_unmatched:
            raise DataError(f"{labels_csv}: no label for {len(unlabelled):,} file name(s): {_few(unlabelled)} (pass "
                            f"--skip_unmatched to leave them out)")
        if unlabelled:
            print_fn(f"{len(unlabelled):,} file name(s) without a label in {labels_csv} left out")
            stems = [s for s in stems if s in texts]
            if not stems:
                raise DataError(f"{labels_csv}: none of the matched file names has a label")
        labels, label_names = label_values([texts[s] for s in stems], labels_csv)
    rows = split_rows(len(stems), labels, test_fraction, seed)
    print_fn(f"{len(stems):,} tuples of {', '.join(names)}: {len(rows['train']):,} train, {len(rows['test']):,} test"
             + (f", {len(np.unique(labels))} classes" if labels is not None else ", no labels"))
    images = {name: read_modality(name, [files[name][s] for s in stems], size, channels, print_fn) for name in names}
    stem_array = np.array(stems)
    payload = {}
    for name in names:
        for split, idx in rows.items():
            arrays = {"images": images[name][idx], "stems": stem_array[idx]}
            if labels is not None:
                arrays["labels"] = labels[idx]
            payload[image_path(out_dir, name, split)] = _npz_bytes(**arrays)
    if label_names is not None:
        payload[os.path.join(out_dir, LABEL_NAMES_FILE)] = "".join(
            f"{i},{n}\n" for i, n in enumerate(label_names)).encode()
    os.makedirs(out_dir, exist_ok=True)
    _write_all(payload)
    shapes = {name: tuple(int(d) for d in images[name].shape[1:]) for name in names}
    for name in names:
        for split, idx in rows.items():
            h, w, c = shapes[name]
            print_fn(f"{image_path(out_dir, name, split)}: {len(idx):,} images {h}x{w}x{c}"
                     + (" with labels" if labels is not None else ""))
    if label_names is not None:
        print_fn(f"{os.path.join(out_dir, LABEL_NAMES_FILE)}: {len(label_names)} label names, numbered in sorted order")
    options = " ".join(f"--modality_option={n}:height={shapes[n][0]},width={shapes[n][1]},channels={shapes[n][2]}"
                       for n in names)
    print_fn(f"train with: --data_dir={out_dir} --modalities={','.join(f'{n}:image:image' for n in names)} {options}")
    return Packed(paths=list(payload), rows={s: len(r) for s, r in rows.items()}, shapes=shapes,
                  labelled=labels is not None)


def main(argv) -> None:
    del argv
    pack(F.image_dir, os.path.abspath(os.path.expanduser(F.out_dir)), modalities=F.modalities,
         labels_csv=F.labels_csv, size=(F.height, F.width) if F.height else None, channels=F.channels,
         test_fraction=F.test_fraction, seed=F.seed, skip_unmatched=F.skip_unmatched, overwrite=F.overwrite,
         print_fn=lambda s: print(s, flush=True))


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
