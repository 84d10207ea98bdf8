"""Builds the CUB feature format (docs/cub_data.md) from the CUB-200-2011 images and the StackGAN "birds" release.

Inputs:

* ``--cub_dir``: CUB-200-2011, with ``images/<filename>.jpg``
  (e.g. ``images/002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg``);
* ``--birds_dir``: StackGAN's "birds" directory, with ``train/`` and ``test/`` each holding
  ``char-CNN-RNN-embeddings.pickle`` ([N, 10, 1024] sentence embeddings), ``filenames.pickle`` (N image names) and
  ``class_info.pickle`` (N class numbers). They are Python-2 pickles, read with ``encoding="bytes"``.

Output: ``<out_dir>/cub/{train,test}/`` as :mod:`mmali_tf.data.cub_features` reads it, plus a ``FEATURES.txt``
recording how the image features were made. Caption features are StackGAN's embeddings, unchanged (as float32).

Image features follow the reference's recipe (``make_cub_img_ft.py``) where Keras allows: RGB, resized to 224x224
with PIL's bilinear filter ignoring the aspect ratio (torchvision's ``Resize((224, 224))`` on a PIL image does the
same), through ResNet-101 without its classifier, global average pooled to 2,048 values (post-ReLU, so >= 0).
Two differences remain, and the features are therefore NOT the authors' numbers:

* the network is ``keras.applications.ResNet101``, whose ImageNet weights are the original (Caffe-trained) ResNet's,
  not torchvision's ``resnet101(pretrained=True)`` weights, so every feature value differs;
* pixels: the authors fed ``ToTensor()`` pixels in [0, 1] with *no* ImageNet normalisation (unusual: torchvision's
  weights expect mean/std-normalised inputs). ``--pixels=unit`` (the default) does the same, i.e. [0, 1] RGB;
  ``--pixels=caffe`` instead applies ``keras.applications.resnet.preprocess_input`` to 0..255 pixels (BGR, ImageNet
  mean subtracted), the input Keras' weights were trained on.

Weights: ``--resnet_weights=PATH`` loads a local no-top weights file (Keras' own is
``resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5``); ``--download`` lets Keras fetch it (needs internet);
``--resnet_weights=none`` uses random weights and exists for tests only (its features mean nothing).

    python -m mmali_tf.tools.prepare_cub --cub_dir=CUB_200_2011 --birds_dir=birds --out_dir=DATA_DIR \\
        (--resnet_weights=PATH | --download) [--pixels=unit|caffe] [--batch_size=32] [--overwrite]

A bad flag (a missing directory or weights file, neither or both of --resnet_weights and --download) is one
``error:`` line and exit status 2 before anything runs. Every input is then checked (all pickles, every image file)
before the network runs; any problem is one ``error:`` line and exit status 1. Each split directory is written to a
temporary directory and renamed, so it is whole or absent. :func:`prepare` does the same from Python, without flags.
"""

from __future__ import annotations

import os
import pickle
import time

import numpy as np
from absl import flags

from mmali_tf import cli

import keras  # noqa: E402  (after cli: TensorFlow loads with its banners filtered)
from PIL import Image  # noqa: E402

from mmali_tf.data import cub_features as cf  # noqa: E402
from mmali_tf.errors import ConfigError, DataError  # noqa: E402
from mmali_tf.tools import flag_checks  # noqa: E402

EMBEDDINGS_PICKLE = "char-CNN-RNN-embeddings.pickle"
FILENAMES_PICKLE = "filenames.pickle"
CLASS_INFO_PICKLE = "class_info.pickle"
IMAGE_SIZE = 224
PIXEL_MODES = ("unit", "caffe")
RANDOM_WEIGHTS = "none"
FEATURES_NOTE = "FEATURES.txt"
F = flags.FLAGS


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_string("cub_dir", None, "CUB-200-2011 directory holding images/.", required=True)
    flags.DEFINE_string("birds_dir", None, "StackGAN birds directory holding the train/ and test/ pickles.",
                        required=True)
    flags.DEFINE_string("out_dir", None, "Data directory; writes <out_dir>/cub/{train,test}/.", required=True)
    flags.DEFINE_string("resnet_weights", None, f"Local ResNet101 no-top weights file (.h5), or "
                        f"'{RANDOM_WEIGHTS}' for random weights (tests only).")
    flags.DEFINE_bool("download", False, "Let Keras download its ImageNet weights instead (needs internet).")
    flags.DEFINE_enum("pixels", "unit", PIXEL_MODES, "'unit': [0, 1] RGB, no normalisation (the authors' recipe); "
                      "'caffe': keras.applications.resnet.preprocess_input on 0..255.")
    flags.DEFINE_integer("batch_size", 32, "Images per ResNet forward pass.", lower_bound=1)
    flags.DEFINE_bool("overwrite", False, "Replace existing <out_dir>/cub/{train,test}/.")
    flag_checks.require_existing_dir("cub_dir")
    flag_checks.require_existing_dir("birds_dir")
    flag_checks.require_output_dir("out_dir")
    flag_checks.require("resnet_weights", check_weights)
    flags.register_multi_flags_validator(["resnet_weights", "download"], _check_weights_choice)


def check_weights(weights: str) -> None:
    """:class:`DataError` unless ``weights`` is an existing file or ``"none"`` (random weights)."""
    if weights != RANDOM_WEIGHTS and not os.path.isfile(weights):
        raise DataError(f"no such file: {weights}")


def _check_weights_choice(values) -> bool:
    if (values["resnet_weights"] is None) == (not values["download"]):
        raise flags.ValidationError(f"pass exactly one of --resnet_weights=PATH (or '{RANDOM_WEIGHTS}') and "
                                    "--download")
    return True


def _unpickle(path: str):
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (expected StackGAN's birds release: {EMBEDDINGS_PICKLE}, "
                        f"{FILENAMES_PICKLE}, {CLASS_INFO_PICKLE} per split)")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")  # Python-2 pickles
    except Exception as e:  # UnpicklingError, EOFError, ValueError, ... : one line is all the user needs
        raise DataError(f"{path}: cannot unpickle ({type(e).__name__}: {e})") from None


def _decode_names(names, path: str) -> list[str]:
    try:
        names = list(names)
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
    except (TypeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: expected a list of file names ({type(e).__name__}: {e})") from None


def read_birds_split(birds_dir: str, split: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """StackGAN's pickles of one split, checked: captions float32 [N, 10, 1024], N file names, int64 class ids."""
    paths = {name: os.path.join(birds_dir, split, name)
             for name in (EMBEDDINGS_PICKLE, FILENAMES_PICKLE, CLASS_INFO_PICKLE)}
    embeddings, names, classes = (_unpickle(paths[name]) for name in paths)
    try:
        embeddings = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError) as e:  # ragged lists, strings ...
        raise DataError(f"{paths[EMBEDDINGS_PICKLE]}: expected a float array [N, 10, 1024] "
                        f"({type(e).__name__}: {e})") from None
    try:
        classes = np.asarray(classes)
    except (TypeError, ValueError) as e:
        raise DataError(f"{paths[CLASS_INFO_PICKLE]}: expected N integer class numbers ({e})") from None
    where = {cf.CAPTION_FILE: paths[EMBEDDINGS_PICKLE], cf.FILENAMES_FILE: paths[FILENAMES_PICKLE],
             cf.CLASS_IDS_FILE: paths[CLASS_INFO_PICKLE]}
    _, captions, filenames, class_ids = cf.check_arrays(
        None, embeddings, _decode_names(names, paths[FILENAMES_PICKLE]), classes, where=where)
    return captions, list(filenames), class_ids


def image_paths(cub_dir: str, filenames: list[str]) -> list[str]:
    """``<cub_dir>/images/<name>.jpg`` per name; each must exist and open as an image (header only)."""
    paths = [os.path.join(cub_dir, "images", f"{name}.jpg") for name in filenames]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"{missing[0]}: missing ({len(missing)} of {len(paths)} images not found under "
                        f"{os.path.join(cub_dir, 'images')})")
    for path in paths:
        try:
            with Image.open(path):
                pass
        except Exception as e:  # UnidentifiedImageError, OSError ...
            raise DataError(f"{path}: cannot open as an image ({type(e).__name__}: {e})") from None
    return paths


def load_pixels(path: str, pixels: str) -> np.ndarray:
    """float32 [224, 224, 3]: RGB, bilinear resize ignoring aspect, then [0, 1] ('unit') or caffe preprocessing."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            array = np.asarray(rgb, dtype=np.float32)
    except Exception as e:  # truncated or corrupt files fail only when decoded
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    if pixels == "unit":
        return array / np.float32(255.0)
    return keras.applications.resnet.preprocess_input(array)


def build_resnet(weights: str | None):
    """ResNet101 without its classifier, average pooled: [B, 224, 224, 3] → [B, 2048]. ``weights`` is a file path,
    ``"none"`` (random) or None (Keras' ImageNet weights, downloaded)."""
    source = None if weights == RANDOM_WEIGHTS else ("imagenet" if weights is None else weights)
    try:
        return keras.applications.ResNet101(include_top=False, weights=source, pooling="avg",
                                            input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    except Exception as e:  # wrong file, wrong architecture, no network ...
        first = str(e).splitlines()[0] if str(e) else ""
        raise DataError(f"cannot build ResNet101 with weights {source!r} ({type(e).__name__}: {first})") from None


def image_features(model, paths: list[str], pixels: str, batch_size: int, label: str,
                   print_fn=print) -> np.ndarray:
    """float32 [N, 2048], one ResNet forward pass per batch of ``batch_size`` images, in ``paths`` order."""
    features = np.empty((len(paths), cf.IMAGE_FEATURE_DIM), np.float32)
    start = last = time.monotonic()
    for begin in range(0, len(paths), batch_size):
        batch = np.stack([load_pixels(p, pixels) for p in paths[begin:begin + batch_size]])
        features[begin:begin + len(batch)] = np.asarray(model(batch, training=False))
        done, now = begin + len(batch), time.monotonic()
        if now - last > 10 or done == len(paths):
            last = now
            print_fn(f"{label}: {done:,}/{len(paths):,} images, {done / max(now - start, 1e-9):.1f} img/s")
    return features


def features_note(resnet_weights: str | None, pixels: str) -> str:
    """The ``FEATURES.txt`` of each split: how its features were made."""
    weights = {None: "Keras ImageNet weights (downloaded)", RANDOM_WEIGHTS: "RANDOM weights (tests only; "
               "these features mean nothing)"}.get(resnet_weights, f"weights file {resnet_weights}")
    pixels = ("[0, 1] RGB without normalisation (the authors' recipe)" if pixels == "unit"
              else "keras.applications.resnet.preprocess_input (caffe) on 0..255")
    return (
        "Made by mmali_tf: python -m mmali_tf.tools.prepare_cub.\n"
        f"image features: keras.applications.ResNet101, include_top=False, pooling='avg'; {weights}\n"
        f"pixels: RGB, PIL bilinear resize to {IMAGE_SIZE}x{IMAGE_SIZE} (aspect not kept), {pixels}\n"
        "These are not the authors' torchvision ResNet-101 features (other weights).\n"
        "caption features: StackGAN char-CNN-RNN-embeddings.pickle, unchanged.\n"
    )


def prepare(cub_dir: str, birds_dir: str, out_dir: str, resnet_weights: str | None = None, pixels: str = "unit",
            batch_size: int = 32, overwrite: bool = False, print_fn=print) -> dict[str, str]:
    """Writes ``<out_dir>/cub/{train,test}/`` from CUB's images and StackGAN's pickles and returns the fingerprints
    by split. ``resnet_weights``: a weights file, ``"none"`` (random) or None (Keras downloads its ImageNet
    weights). Every input is checked before the network runs; :class:`mmali_tf.errors.MMALIError` for a problem."""
    if pixels not in PIXEL_MODES:
        raise ConfigError(f"unknown pixel mode {pixels!r}: expected one of {', '.join(PIXEL_MODES)}")
    out = {split: os.path.join(os.path.abspath(out_dir), cf.SUBDIR, split) for split in cf.SPLITS}
    for directory in out.values():
        if os.path.exists(directory) and not overwrite:
            raise DataError(f"{directory} already exists (pass --overwrite to replace it)")
    inputs = {}
    for split in cf.SPLITS:
        captions, filenames, class_ids = read_birds_split(birds_dir, split)
        inputs[split] = (captions, filenames, class_ids, image_paths(cub_dir, filenames))
        print_fn(f"{split}: {len(filenames):,} images, {len(filenames) * cf.CAPTIONS_PER_IMAGE:,} captions")
    model = build_resnet(resnet_weights)
    images = {split: image_features(model, inputs[split][3], pixels, batch_size, split, print_fn=print_fn)
              for split in cf.SPLITS}
    note = features_note(resnet_weights, pixels)
    fingerprints = {}
    for split in cf.SPLITS:
        captions, filenames, class_ids, _ = inputs[split]
        fingerprints[split] = cf.write_cub_split(out[split], images[split], captions, filenames, class_ids,
                                                 extra_files={FEATURES_NOTE: note}, overwrite=overwrite)
        print_fn(f"{split}: wrote {out[split]} (fingerprint {fingerprints[split]})")
    return fingerprints


def main(argv) -> None:
    del argv
    prepare(F.cub_dir, F.birds_dir, F.out_dir, resnet_weights=F.resnet_weights, pixels=F.pixels,
            batch_size=F.batch_size, overwrite=F.overwrite, print_fn=lambda s: print(s, flush=True))


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
