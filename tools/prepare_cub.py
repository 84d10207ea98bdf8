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
  weights expect mean/std-normalised inputs). ``--pixels unit`` (the default) does the same, i.e. [0, 1] RGB;
  ``--pixels caffe`` instead applies ``keras.applications.resnet.preprocess_input`` to 0..255 pixels (BGR, ImageNet
  mean subtracted), the input Keras' weights were trained on.

Weights: ``--resnet_weights PATH`` loads a local no-top weights file (Keras' own is
``resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5``); ``--download`` lets Keras fetch it (needs internet);
``--resnet_weights none`` uses random weights and exists for tests only (its features mean nothing).

    python tools/prepare_cub.py --cub_dir CUB_200_2011 --birds_dir birds --out_dir DATA_DIR \\
        (--resnet_weights PATH | --download) [--pixels unit|caffe] [--batch_size 32] [--overwrite]

Every input is checked (all pickles, every image file) before the network runs; any problem is one ``error:`` line
and a non-zero exit. Each split directory is written to a temporary directory and renamed, so it is whole or absent.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

import numpy as np  # noqa: E402

from mmali_tf.data import cub_features as cf  # noqa: E402
from mmali_tf.errors import DataError, MMALIError  # noqa: E402

EMBEDDINGS_PICKLE = "char-CNN-RNN-embeddings.pickle"
FILENAMES_PICKLE = "filenames.pickle"
CLASS_INFO_PICKLE = "class_info.pickle"
IMAGE_SIZE = 224
PIXEL_MODES = ("unit", "caffe")
RANDOM_WEIGHTS = "none"
FEATURES_NOTE = "FEATURES.txt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cub_dir", required=True, help="CUB-200-2011 directory holding images/")
    p.add_argument("--birds_dir", required=True, help="StackGAN birds directory holding train/ and test/ pickles")
    p.add_argument("--out_dir", required=True, help="data directory; writes <out_dir>/cub/{train,test}/")
    p.add_argument("--resnet_weights", default=None,
                   help="local ResNet101 no-top weights file (.h5), or 'none' for random weights (tests only)")
    p.add_argument("--download", action="store_true", help="let Keras download its ImageNet weights instead")
    p.add_argument("--pixels", choices=PIXEL_MODES, default="unit",
                   help="'unit': [0, 1] RGB, no normalisation (the authors' recipe, default); "
                        "'caffe': keras.applications.resnet.preprocess_input on 0..255")
    p.add_argument("--batch_size", type=int, default=32, help="images per ResNet forward pass")
    p.add_argument("--overwrite", action="store_true", help="replace existing <out_dir>/cub/{train,test}/")
    args = p.parse_args(argv)
    if (args.resnet_weights is None) == (not args.download):
        p.error("pass exactly one of --resnet_weights PATH (or 'none') and --download")
    if args.resnet_weights not in (None, RANDOM_WEIGHTS) and not os.path.isfile(args.resnet_weights):
        p.error(f"--resnet_weights {args.resnet_weights}: no such file")
    if args.batch_size < 1:
        p.error("--batch_size must be >= 1")
    for flag in ("cub_dir", "birds_dir"):
        if not os.path.isdir(getattr(args, flag)):
            p.error(f"--{flag} {getattr(args, flag)}: not a directory")
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        p.error(f"--out_dir {args.out_dir} exists and is not a directory")
    return args


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
    from PIL import Image

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
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            array = np.asarray(rgb, dtype=np.float32)
    except Exception as e:  # truncated or corrupt files fail only when decoded
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    if pixels == "unit":
        return array / np.float32(255.0)
    import keras

    return keras.applications.resnet.preprocess_input(array)


def build_resnet(weights: str | None):
    """ResNet101 without its classifier, average pooled: [B, 224, 224, 3] → [B, 2048]. ``weights`` is a file path,
    ``"none"`` (random) or None (Keras' ImageNet weights, downloaded)."""
    import keras

    source = None if weights == RANDOM_WEIGHTS else ("imagenet" if weights is None else weights)
    try:
        return keras.applications.ResNet101(include_top=False, weights=source, pooling="avg",
                                            input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    except Exception as e:  # wrong file, wrong architecture, no network ...
        first = str(e).splitlines()[0] if str(e) else ""
        raise DataError(f"cannot build ResNet101 with weights {source!r} ({type(e).__name__}: {first})") from None


def image_features(model, paths: list[str], pixels: str, batch_size: int, label: str) -> np.ndarray:
    """float32 [N, 2048], one ResNet forward pass per batch of ``batch_size`` images, in ``paths`` order."""
    features = np.empty((len(paths), cf.IMAGE_FEATURE_DIM), np.float32)
    start = last = time.monotonic()
    for begin in range(0, len(paths), batch_size):
        batch = np.stack([load_pixels(p, pixels) for p in paths[begin:begin + batch_size]])
        features[begin:begin + len(batch)] = np.asarray(model(batch, training=False))
        done, now = begin + len(batch), time.monotonic()
        if now - last > 10 or done == len(paths):
            last = now
            print(f"{label}: {done:,}/{len(paths):,} images, {done / max(now - start, 1e-9):.1f} img/s", flush=True)
    return features


def features_note(args: argparse.Namespace) -> str:
    """The ``FEATURES.txt`` of each split: how its features were made."""
    weights = {None: "Keras ImageNet weights (downloaded)", RANDOM_WEIGHTS: "RANDOM weights (tests only; "
               "these features mean nothing)"}.get(args.resnet_weights, f"weights file {args.resnet_weights}")
    pixels = ("[0, 1] RGB without normalisation (the authors' recipe)" if args.pixels == "unit"
              else "keras.applications.resnet.preprocess_input (caffe) on 0..255")
    return (
        "Made by mmali_tf tools/prepare_cub.py.\n"
        f"image features: keras.applications.ResNet101, include_top=False, pooling='avg'; {weights}\n"
        f"pixels: RGB, PIL bilinear resize to {IMAGE_SIZE}x{IMAGE_SIZE} (aspect not kept), {pixels}\n"
        "These are not the authors' torchvision ResNet-101 features (other weights).\n"
        "caption features: StackGAN char-CNN-RNN-embeddings.pickle, unchanged.\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = {split: os.path.join(os.path.abspath(args.out_dir), cf.SUBDIR, split) for split in cf.SPLITS}
        for directory in out.values():
            if os.path.exists(directory) and not args.overwrite:
                raise DataError(f"{directory} already exists (pass --overwrite to replace it)")
        inputs = {}
        for split in cf.SPLITS:
            captions, filenames, class_ids = read_birds_split(args.birds_dir, split)
            inputs[split] = (captions, filenames, class_ids, image_paths(args.cub_dir, filenames))
            print(f"{split}: {len(filenames):,} images, {len(filenames) * cf.CAPTIONS_PER_IMAGE:,} captions",
                  flush=True)
        model = build_resnet(args.resnet_weights)
        images = {split: image_features(model, inputs[split][3], args.pixels, args.batch_size, split)
                  for split in cf.SPLITS}
        note = features_note(args)
        for split in cf.SPLITS:
            captions, filenames, class_ids, _ = inputs[split]
            fingerprint = cf.write_cub_split(out[split], images[split], captions, filenames, class_ids,
                                             extra_files={FEATURES_NOTE: note}, overwrite=args.overwrite)
            print(f"{split}: wrote {out[split]} (fingerprint {fingerprint})", flush=True)
    except MMALIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
