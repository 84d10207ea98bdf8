"""python -m mmali_tf.tools.prepare_cub on tiny fake inputs: JPEGs, Python-2-style pickles with bytes, random ResNet
weights. Every command line of the module runs in one interpreter (tests/cli_driver.py: one TensorFlow import), as
``python -m mmali_tf.tools.prepare_cub`` runs it; the library functions are called directly."""

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from mmali_tf.data.cub_features import load_cub_features
from mmali_tf.data.sources import clear_cache
from mmali_tf.tools import prepare_cub as tool
from tests.cli_driver import run_in_one_interpreter

MODULE = "mmali_tf.tools.prepare_cub"
NAMES = {"train": ["001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111",
                   "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55",
                   "002.Laysan_Albatross/Laysan_Albatross_0002_1027"],
         "test": ["009.Brewer_Blackbird/Brewer_Blackbird_0001_2616"]}
# Broken inputs (exit status 1, nothing written): breakage -> a fragment of the error line.
BREAKAGES = {
    "missing_pickle": "test/class_info.pickle: missing",
    "wrong_embedding_shape": "char-CNN-RNN-embeddings.pickle: expected shape [N, 10, 1024]",
    "ragged_embeddings": "char-CNN-RNN-embeddings.pickle: expected a float array",
    "length_mismatch": "filenames.pickle: has 2 entries but",
    "missing_image": "Laysan_Albatross_0002_1027.jpg: missing (1 of 3 images",
    "not_an_image": "Black_Footed_Albatross_0002_55.jpg: cannot open as an image",
    "garbage_pickle": "train/filenames.pickle: cannot unpickle",
}


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _make_inputs(root, seed=0):
    rng = np.random.default_rng(seed)
    cub, birds = root / "CUB_200_2011", root / "birds"
    embeddings = {}
    for split, names in NAMES.items():
        for i, name in enumerate(names):
            path = cub / "images" / f"{name}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (30 + 7 * i, 41, 3), dtype=np.uint8)  # odd sizes: squashed to 224
            image = Image.fromarray(pixels)
            (image.convert("L") if i == 1 else image).save(path, quality=90)  # a greyscale one too
        (birds / split).mkdir(parents=True)
        emb = rng.normal(size=(len(names), 10, 1024)).astype(np.float32)
        embeddings[split] = emb
        # StackGAN's pickles come from Python 2: names as byte strings; train embeddings as a list of arrays.
        _dump(birds / split / "char-CNN-RNN-embeddings.pickle", list(emb) if split == "train" else emb)
        _dump(birds / split / "filenames.pickle", [n.encode() for n in names])
        _dump(birds / split / "class_info.pickle", [int(n[:3]) for n in names])
    return cub, birds, embeddings


def _break(cub, birds, breakage):
    if breakage == "missing_pickle":
        os.remove(birds / "test" / "class_info.pickle")
    elif breakage == "wrong_embedding_shape":
        _dump(birds / "train" / "char-CNN-RNN-embeddings.pickle", np.zeros((3, 10, 512), np.float32))
    elif breakage == "ragged_embeddings":
        _dump(birds / "train" / "char-CNN-RNN-embeddings.pickle", [np.zeros((10, 1024)), np.zeros((9, 1024))])
    elif breakage == "length_mismatch":
        _dump(birds / "train" / "filenames.pickle", [n.encode() for n in NAMES["train"][:2]])
    elif breakage == "missing_image":
        os.remove(cub / "images" / f"{NAMES['train'][2]}.jpg")
    elif breakage == "not_an_image":
        (cub / "images" / f"{NAMES['train'][1]}.jpg").write_bytes(b"not a jpeg")
    elif breakage == "garbage_pickle":
        (birds / "train" / "filenames.pickle").write_bytes(b"\x80\x02garbage")


def _argv(cub, birds, out, *extra):
    return [f"--cub_dir={cub}", f"--birds_dir={birds}", f"--out_dir={out}", "--resnet_weights=none", *extra]


def _bad_arguments(cub, birds, scratch):
    """(argument list, a fragment of the error line) of bad arguments (exit status 2)."""
    return [
        ([f"--cub_dir={cub}", f"--birds_dir={birds}", f"--out_dir={scratch}"], "exactly one of"),
        (_argv(cub, birds, scratch, "--download"), "exactly one of"),
        (_argv(scratch / "nowhere", birds, scratch), "--cub_dir"),
        (_argv(cub, birds, cub / "images" / f"{NAMES['test'][0]}.jpg"), "is not a directory"),
        ([f"--cub_dir={cub}", f"--birds_dir={birds}", f"--out_dir={scratch}",
          f"--resnet_weights={scratch / 'missing.h5'}"], "no such file"),
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every command line of this module, run in one interpreter: the good run, the broken inputs, the refused
    overwrite and the bad arguments. Returns (scratch root, embeddings of the good inputs, case -> result)."""
    root = tmp_path_factory.mktemp("prepare")
    cub, birds, embeddings = _make_inputs(root / "good")
    cases = {"good": _argv(cub, birds, root / "good" / "data", "--batch_size=2")}
    for breakage in BREAKAGES:
        broken_cub, broken_birds, _ = _make_inputs(root / breakage)
        _break(broken_cub, broken_birds, breakage)
        cases[breakage] = _argv(broken_cub, broken_birds, root / breakage / "data")
    other_cub, other_birds, _ = _make_inputs(root / "other")
    (root / "other" / "data" / "cub" / "train").mkdir(parents=True)
    cases["overwrite"] = _argv(other_cub, other_birds, root / "other" / "data")
    for i, (argv, _) in enumerate(_bad_arguments(other_cub, other_birds, root / "other")):
        cases[f"argument-{i}"] = argv
    results = run_in_one_interpreter([{"module": MODULE, "argv": [str(a) for a in argv]} for argv in cases.values()],
                                     str(root))
    return root, embeddings, dict(zip(cases, results))


@pytest.fixture(scope="module")
def prepared(runs):
    root, embeddings, results = runs
    assert results["good"]["code"] == 0, results["good"]["stderr"][-3000:]
    clear_cache()
    return root / "good", root / "good" / "CUB_200_2011", embeddings


def test_writes_the_format_the_loader_reads(prepared):
    root, _, embeddings = prepared
    for split in ("train", "test"):
        data = load_cub_features(str(root / "data"), split)
        assert data.filenames == tuple(NAMES[split])  # bytes decoded
        assert data.class_ids.tolist() == [int(n[:3]) for n in NAMES[split]]
        np.testing.assert_array_equal(data.caption_features, embeddings[split])
        assert data.image_features.shape == (len(NAMES[split]), 2048)
        assert data.image_features.min() >= 0 and data.image_features.max() > 0  # pooled post-ReLU
        note = (root / "data" / "cub" / split / "FEATURES.txt").read_text()
        assert "RANDOM weights" in note and "without normalisation" in note
    assert sorted(os.listdir(root / "data" / "cub")) == ["test", "train"]  # no temporary directories left


def test_batching_does_not_change_features(prepared):
    _, cub, _ = prepared
    model = tool.build_resnet("none")
    paths = tool.image_paths(str(cub), NAMES["train"])
    one = tool.image_features(model, paths, "unit", 1, "b1")
    three = tool.image_features(model, paths, "unit", 3, "b3")
    np.testing.assert_allclose(one, three, rtol=1e-4, atol=1e-5 * np.abs(one).max())
    assert not np.allclose(one[0], one[1])


def test_pixels_are_squashed_to_224_and_scaled(prepared):
    _, cub, _ = prepared
    path = os.path.join(cub, "images", NAMES["train"][0] + ".jpg")
    unit = tool.load_pixels(path, "unit")
    assert unit.shape == (224, 224, 3) and unit.dtype == np.float32 and 0 <= unit.min() and unit.max() <= 1
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), np.float32)
    np.testing.assert_allclose(unit * 255, expected, atol=1e-3)
    caffe = tool.load_pixels(path, "caffe")  # BGR, ImageNet channel means subtracted
    np.testing.assert_allclose(caffe[..., 0], expected[..., 2] - 103.939, atol=1e-3)
    np.testing.assert_allclose(caffe[..., 2], expected[..., 0] - 123.68, atol=1e-3)


def _error_line(result, code):
    """The one line on stderr, an ``error:`` line, of a command that ended with exit status ``code``."""
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] == code, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"][-3000:]
    return lines[0]


@pytest.mark.parametrize("breakage, message", BREAKAGES.items())
def test_bad_inputs_give_one_error_line_and_write_nothing(runs, breakage, message):
    root, _, results = runs
    assert message in _error_line(results[breakage], 1)
    assert not (root / breakage / "data" / "cub").exists()


def test_refuses_to_overwrite_and_checks_arguments(runs):
    root, _, results = runs
    assert "already exists (pass --overwrite" in _error_line(results["overwrite"], 1)
    assert os.listdir(root / "other" / "data" / "cub" / "train") == []
    for i, (argv, message) in enumerate(_bad_arguments(root / "other" / "CUB_200_2011", root / "other" / "birds",
                                                         root / "other")):
        assert message in _error_line(results[f"argument-{i}"], 2), argv
