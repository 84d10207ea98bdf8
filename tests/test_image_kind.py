"""The ``image`` kind and dataset: a user's own images of any size (16-128 px) and channel count (1-4), trained,
evaluated and exported with flags only; the convolutional family is SVHN's for 32x32x3; bad input is one error line
and writes nothing; the exported image signatures are served by a fresh process that cannot import mmali_tf."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import kinds
from mmali_tf.checks import check_registered
from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig
from mmali_tf.data import datasets
from mmali_tf.errors import ConfigError, DataError
from mmali_tf.kinds.image import displayable, pooled
from mmali_tf.model import count_parameters
from mmali_tf.kinds import builders as registry
from mmali_tf.networks import svhn
from mmali_tf.networks.image import ConvLayout
from tests.cli_driver import run_in_one_interpreter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {"rgbd": (18, 16, 4), "depth": (16, 16, 1)}  # not square, cropped decoder, 4 channels; square, grey
ROWS = {"train": 48, "test": 24}
CLASSES = 3


def spec(name="p", **options):
    return ModalitySpec(name, "image", "image", **options)


# ---------------------------------------------------------------------------------------------- the network family
def test_32x32x3_is_the_svhn_family():
    """Default options at SVHN's size give SVHN's networks: the same layers (names, types, output shapes) and the
    same parameter counts, the (x, z) critic split at the same Concatenate and the same joint-critic branch."""
    image = spec(height=32, width=32, channels=3)
    pairs = [(registry.build_encoder(image, 20, "n"), svhn.SVHNEncoder(20, "n")),
             (registry.build_decoder(image, 20, "n"), svhn.SVHNDecoder(20, "n")),
             (registry.build_xz_discriminator(image, 20, 3, "n"), svhn.SVHNXZDiscriminator(20, 3, "n")),
             (registry.build_xz_discriminator(image, 20, 1, "n"), svhn.SVHNXZDiscriminator(20, 1, "n")),
             (registry.build_joint_discriminator([image, image], "dot", "n"),
              registry.build_joint_discriminator(["svhn", "svhn"], "dot", "n"))]
    for ours, theirs in pairs:
        def layers(model):
            return [(layer.name, type(layer).__name__, tuple(layer.output.shape)) for layer in model.layers]
        assert layers(ours) == layers(theirs), ours.name
        assert count_parameters([ours]) == count_parameters([theirs])
    assert count_parameters([pairs[0][0]]) == 247_560 and count_parameters([pairs[2][0]]) == 2_339_299
    # With SVHN's weights (and spectral-norm vectors) copied in, each network computes SVHN's function.
    x = tf.random.stateless_uniform((2, 32, 32, 3), seed=[1, 1])
    z = tf.random.stateless_normal((2, 20), seed=[1, 2])
    for (ours, theirs), inputs in zip(pairs, (x, z, [x, z], [x, z], [x, x])):
        ours.set_weights(theirs.get_weights())
        np.testing.assert_allclose(ours(inputs, training=False), theirs(inputs, training=False), rtol=1e-6, atol=1e-6)
    critic, reference = registry.xz_critic(image, pairs[2][0]), svhn.xz_critic(pairs[2][1])
    np.testing.assert_allclose(critic.x_parts[0](x), reference.x_parts[0](x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, stages, widths, final, decoded", [
    ((16, 16), 2, (32, 64), (4, 4), (16, 16)),
    ((24, 24), 2, (32, 64), (6, 6), (24, 24)),
    ((28, 28), 2, (32, 64), (7, 7), (28, 28)),
    ((32, 32), 3, (32, 64, 128), (4, 4), (32, 32)),
    ((40, 40), 3, (32, 64, 128), (5, 5), (40, 40)),
    ((64, 48), 3, (32, 64, 128), (8, 6), (64, 48)),
    ((17, 100), 2, (32, 64), (5, 25), (20, 100)),
    ((100, 100), 4, (32, 64, 128, 256), (7, 7), (112, 112)),
    ((128, 128), 5, (32, 64, 128, 256, 512), (4, 4), (128, 128)),
])
def test_depth_and_widths_follow_the_size(size, stages, widths, final, decoded):
    layout = ConvLayout.of(*size, 3)
    assert (layout.stages, layout.widths, layout.final, layout.decoded) == (stages, widths, final, decoded)


def test_overrides_and_shapes_of_every_network():
    layout = ConvLayout.of(18, 16, 4, base_filters=8, stages=1)
    assert (layout.widths, layout.final, layout.decoded) == ((8,), (9, 8), (18, 16))
    for options in ({"height": 18, "width": 16, "channels": 4}, {"height": 17, "width": 40, "channels": 2},
                    {"height": 16, "width": 16, "channels": 1, "base_filters": 4, "stages": 4}):
        s = spec(**options)
        shape = (options["height"], options["width"], options["channels"])
        x = tf.random.stateless_uniform((3, *shape), seed=[0, 1])
        z = tf.random.stateless_normal((3, 6), seed=[0, 2])
        encoder, decoder = registry.build_encoder(s, 6, "e"), registry.build_decoder(s, 6, "d")
        assert encoder(x).shape == (3, 12)
        images = decoder(z)
        assert images.shape == (3, *shape) and float(tf.reduce_min(images)) >= 0 and float(tf.reduce_max(images)) <= 1
        model = registry.build_xz_discriminator(s, 6, 3, "x")
        critic = registry.xz_critic(s, model)
        variables = len(model.weights)
        features = critic.x_parts[0](x)
        assert features.shape == (3, 256) and critic.head([features], z).shape == (3, 3)
        assert len(model.weights) == variables  # the critic's parts are the model's own layers
        joint = registry.build_joint_discriminator([s, "mnist"], "concat", "j")
        assert joint([x, tf.zeros((3, 28, 28, 1))], training=False).shape == (3, 1)


@pytest.mark.parametrize("options, fragment", [
    ({"width": 16, "channels": 1}, "kind 'image' needs the image size, e.g. --modality_option=p:height=64,width=64,"
                                   "channels=3 (missing: height)"),
    ({"height": 15, "width": 16, "channels": 1}, "modality 'p': height must be an integer from 16 to 128, got 15"),
    ({"height": 16, "width": 129, "channels": 1}, "modality 'p': width must be an integer from 16 to 128, got 129"),
    ({"height": 16, "width": 16, "channels": 5}, "modality 'p': channels must be an integer from 1 to 4, got 5"),
    ({"height": 16, "width": 16, "channels": 1, "stages": 5}, "stages must be an integer from 1 to 4, got 5"),
    ({"height": 16, "width": 16, "channels": 1, "base_filters": 513}, "base_filters must be an integer from 1 to 512"),
    ({"height": 16, "width": 20, "channels": 1, "quarter_turns": 1}, "quarter_turns need square images, got 16x20"),
    ({"height": 16, "width": 16, "channels": 1, "feature_dim": 3}, "kind 'image' takes no feature_dim"),
])
def test_options_are_validated(options, fragment):
    config = ExperimentConfig(name="t", data=DataConfig(), model=ModelConfig(
        modalities=(spec(**options), spec("q", height=16, width=16, channels=1))), loss=LossConfig(),
        train=TrainConfig(batch_size=8))
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_registered(config.validate())


def test_modality_option_takes_several_keys():
    specs = (spec("photo"), ModalitySpec("text", "vector", "vector"))
    out = kinds.apply_modality_options(specs, ["photo:height=64,width=48,channels=3", "photo:stages=2",
                                               "text:feature_dim=8,encoder_hidden=6,4"])
    assert (out[0].height, out[0].width, out[0].channels, out[0].stages) == (64, 48, 3, 2)
    assert (out[1].feature_dim, out[1].encoder_hidden) == (8, (6, 4))
    assert kinds.input_spec(out[0]).shape == (64, 48, 3)
    for entry, fragment in (("photo:height=64,size=3", "kind 'image' has no option 'size'"),
                            ("photo:height=6x", "height takes an integer"), ("photo:height=", "NAME:KEY=VALUE")):
        with pytest.raises(ConfigError, match=fragment):
            kinds.apply_modality_options(specs, [entry])


def test_sample_grid_and_cca_views():
    four = np.stack([np.full((2, 3), v, np.float32) for v in (0.1, 0.2, 0.3, 0.9)], axis=-1)[None]  # [1, 2, 3, 4]
    drawn = displayable(four)
    assert drawn.shape == (1, 2, 7, 3)
    np.testing.assert_allclose(drawn[0, 0, 0], [0.1, 0.2, 0.3])  # colour part
    np.testing.assert_allclose(drawn[0, 0, 3], [1, 1, 1])  # white gap
    np.testing.assert_allclose(drawn[0, 0, 4], [0.9, 0.9, 0.9])  # the fourth channel in grey
    assert displayable(four[..., :2]).shape == (1, 2, 7, 1)
    grid = kinds.get("image").render([four, four], labels=["a", "b"], title="t")
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    ramp = np.arange(18 * 16, dtype=np.float32).reshape(1, 18, 16, 1)
    cells = pooled(ramp, 8)  # f = ceil(18 / 8) = 3: 6 x 6 cells of 3 x 3 (the last column of cells 3 x 1 wide)
    assert cells.shape == (1, 6, 6, 1)
    assert cells[0, 0, 0, 0] == np.mean(ramp[0, :3, :3]) and cells[0, 5, 5, 0] == np.mean(ramp[0, 15:18, 15:16])
    assert kinds.get("image").cca_view(spec(height=18, width=16, channels=1), ramp).shape == (1, 36)


# ---------------------------------------------------------------------------------------------- data
def write_images(directory, labels=True, seed=0, rows=ROWS, shapes=SHAPES):
    """Each tuple: a class (which third of the image is bright) and a shared brightness, in every modality."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for split, count in rows.items():
        classes = np.arange(count) % CLASSES
        level = rng.uniform(0.4, 1.0, count)
        for name, (h, w, c) in shapes.items():
            images = rng.uniform(0, 0.2, (count, h, w, c))
            for i, (y, v) in enumerate(zip(classes, level)):
                band = slice(y * w // CLASSES, (y + 1) * w // CLASSES)
                images[i, :, band] += v * np.linspace(0.5, 1.0, c)
            arrays = {"images": np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)}
            if labels:
                arrays["labels"] = classes
            np.savez(os.path.join(directory, f"{name}_{split}.npz"), **arrays)


def test_loader_reads_images_paired_by_row(tmp_path):
    write_images(tmp_path)
    rgbd = datasets.load_dataset("image", "train", str(tmp_path), modality="rgbd")
    assert rgbd.examples.shape == (48, 18, 16, 4) and rgbd.examples.dtype == np.uint8
    np.testing.assert_array_equal(rgbd.labels, np.arange(48) % CLASSES)
    np.testing.assert_array_equal(rgbd.tuple_index, np.arange(48))
    assert not rgbd.examples.flags.writeable and rgbd.source.endswith("rgbd_train.npz")
    assert datasets.data_label("image", rgbd.source) == "image files"
    from mmali_tf.data.image_files import has_labels

    assert has_labels(str(tmp_path), "rgbd") and not has_labels(str(tmp_path), "nothing")
    write_images(tmp_path / "plain", labels=False)
    assert datasets.load_dataset("image", "test", str(tmp_path / "plain"), modality="depth").labels is None
    assert not has_labels(str(tmp_path / "plain"), "depth")
    (tmp_path / "STANDIN.txt").write_text("synthetic")
    marked = datasets.load_dataset("image", "train", str(tmp_path), modality="depth")
    assert datasets.data_label("image", marked.source) == "image stand-in"


IMAGES = np.zeros((4, 16, 16, 1), np.uint8)


@pytest.mark.parametrize("write, fragment", [
    (lambda p: None, "no image file for modality 'm' in .*: expected m_train.npz"),
    (lambda p: np.savez(p / "m_train.npz", x=IMAGES), r"m_train.npz: expected an array 'images'.*found \['x'\]"),
    (lambda p: np.savez(p / "m_train.npz", images=IMAGES.astype(np.float32)),
     "m_train.npz: images must be uint8 pixels 0..255, got dtype float32"),
    (lambda p: np.savez(p / "m_train.npz", images=IMAGES[..., 0]),
     r"images must have shape \[N, height, width, channels\], got shape \(4, 16, 16\)"),
    (lambda p: np.savez(p / "m_train.npz", images=IMAGES[:0]), r"m_train.npz: holds no images \(shape \(0, 16, 16, 1\)"),
    (lambda p: np.savez(p / "m_train.npz", images=IMAGES, labels=np.arange(3)),
     "labels must be an integer array of 4 entries"),
    (lambda p: np.savez(p / "m_train.npz", images=IMAGES, labels=np.array([0, 1, -1, 2])),
     r"labels must lie in 0..9999, found values in \[-1, 2\]"),
    (lambda p: np.savez(p / "m_train.npz", images=IMAGES, labels=np.zeros(4)), "labels must be an integer array"),
    (lambda p: (p / "m_train.npz").write_bytes(b"not an archive"), "m_train.npz: cannot read"),
    (lambda p: (p / "m_train.npz").write_bytes(b""), "m_train.npz: cannot read"),
    (lambda p: np.save(p / "m_train.npy", IMAGES) or os.rename(p / "m_train.npy", p / "m_train.npz"),
     "expected an .npz archive"),
])
def test_loader_errors_name_the_file(tmp_path, write, fragment):
    write(tmp_path)
    with pytest.raises(DataError, match=fragment):
        datasets.load_dataset("image", "train", str(tmp_path), modality="m")


def test_loader_needs_a_modality_and_a_directory(monkeypatch):
    monkeypatch.delenv("MMALI_DATA_DIR", raising=False)
    with pytest.raises(ConfigError, match="needs the modality's name"):
        datasets.load_dataset("image", "train", "/tmp")
    with pytest.raises(DataError, match="no data directory for the image files of 'm'"):
        datasets.load_dataset("image", "train", None, modality="m")


def test_metrics_follow_the_labels(tmp_path):
    """Labelled image files: probe and coherence; without labels: CCA correlation between the image modalities."""
    from mmali_tf.evaluation import metrics

    write_images(tmp_path / "lab")
    write_images(tmp_path / "unl", labels=False)
    modalities = tuple(spec(n, height=h, width=w, channels=c) for n, (h, w, c) in SHAPES.items())

    def config(data_dir):
        return ExperimentConfig(name="t", data=DataConfig(data_dir=str(data_dir)),
                                model=ModelConfig(modalities=modalities), loss=LossConfig(), train=TrainConfig())

    run, skipped = metrics.select(config(tmp_path / "lab"), metrics.parse_metrics(["all"]))
    assert run == ("latent", "cross", "joint", "synergy") and set(skipped) == {"correlation"}
    assert "labelled images are scored by coherence" in skipped["correlation"]
    run, skipped = metrics.select(config(tmp_path / "unl"), metrics.parse_metrics(["all"]))
    assert run == ("correlation",) and metrics.correlation_modalities(config(tmp_path / "unl")) == ["rgbd", "depth"]
    assert skipped["cross"] == "coherence needs class labels in every modality's train and test files; these have none"


# ---------------------------------------------------------------------------------------------- the command lines
FLAGS = ["--modalities=rgbd:image:image,depth:image:image", "--modality_option=rgbd:height=18,width=16,channels=4",
         "--modality_option=depth:height=16,width=16,channels=1", "--latent_dim=8", "--style_dim=4",
         "--batch_size=8", "--max_iter=2", "--save_every=2", "--image_every=2", "--log_every=1", "--ema_start=0",
         "--noxla"]
EVAL = ["--probe_epochs=3", "--classifier_epochs=2", "--num_prior=64"]


def _break(directory, name, split="train", **arrays):
    """A copy of the labelled data with ``name``'s ``split`` file replaced by ``arrays`` (or deleted)."""
    write_images(directory)
    path = os.path.join(directory, f"{name}_{split}.npz")
    if arrays.pop("delete", False):
        os.remove(path)
    elif arrays.pop("garbage", False):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 not really a zip archive")
    else:
        np.savez(path, **arrays)
    return directory


def _bad_cases(root):
    """{case: (data directory, training flags, the error line or a part of it)}."""
    good = np.zeros((48, 16, 16, 1), np.uint8)
    labels = np.arange(48) % CLASSES
    lab = root / "lab"
    return {
        "unequal_rows": (_break(root / "rows", "depth", images=good[:47], labels=labels[:47]), FLAGS,
                         "error: modalities paired by row must have the same number of tuples, got rgbd 48 (in "
                         f"{root / 'rows' / 'rgbd_train.npz'}), depth 47 (in {root / 'rows' / 'depth_train.npz'})"),
        "float_images": (_break(root / "float", "depth", images=good.astype(np.float32), labels=labels), FLAGS,
                         f"error: {root / 'float' / 'depth_train.npz'}: images must be uint8 pixels 0..255, got dtype "
                         "float32 (scale float images by 255 and round, or pack image files with python -m "
                         "mmali_tf.tools.pack_images)"),
        "wrong_shape": (_break(root / "shape", "depth", images=good.repeat(2, axis=-1), labels=labels), FLAGS,
                        "error: modality 'depth': dataset 'image' has uint8 examples of shape (16, 16, 2), but network "
                        f"kind 'image' expects uint8 (16, 16, 1) ({root / 'shape' / 'depth_train.npz'} holds 16x16x2 "
                        "images; set --modality_option=depth:height=16,width=16,channels=2)"),
        "rank_3": (_break(root / "rank", "depth", images=good[..., 0]), FLAGS,
                   f"error: {root / 'rank' / 'depth_train.npz'}: images must have shape [N, height, width, channels], "
                   "got shape (48, 16, 16)"),
        "empty": (_break(root / "empty", "rgbd", images=np.zeros((0, 18, 16, 4), np.uint8)), FLAGS,
                  f"error: {root / 'empty' / 'rgbd_train.npz'}: holds no images (shape (0, 18, 16, 4))"),
        "no_images_key": (_break(root / "key", "rgbd", pixels=good), FLAGS,
                          f"error: {root / 'key' / 'rgbd_train.npz'}: expected an array 'images' (and optionally "
                          "'labels'), found ['pixels']"),
        "short_labels": (_break(root / "labels", "depth", images=good, labels=labels[:40]), FLAGS,
                         f"error: {root / 'labels' / 'depth_train.npz'}: labels must be an integer array of 48 "
                         "entries (one per image), got int64 (40,)"),
        "not_a_zip": (_break(root / "zip", "depth", garbage=True), FLAGS,
                      f"{root / 'zip' / 'depth_train.npz'}: cannot read"),
        "missing_file": (_break(root / "missing", "depth", delete=True), FLAGS,
                         f"error: no image file for modality 'depth' in {root / 'missing'}: expected depth_train.npz "
                         "(python -m mmali_tf.tools.pack_images writes it from a folder of image files)"),
        "missing_option": (lab, [f for f in FLAGS if not f.startswith("--modality_option=depth")]
                           + ["--modality_option=depth:channels=1"],
                           "error: modality 'depth': kind 'image' needs the image size, e.g. --modality_option=depth:"
                           "height=64,width=64,channels=3 (missing: height, width)"),
        "height_too_small": (lab, FLAGS + ["--modality_option=depth:height=12"],
                             "error: modality 'depth': height must be an integer from 16 to 128, got 12"),
        "five_channels": (lab, FLAGS + ["--modality_option=rgbd:channels=5"],
                          "error: modality 'rgbd': channels must be an integer from 1 to 4, got 5"),
        "too_many_stages": (lab, FLAGS + ["--modality_option=depth:stages=5"],
                            "error: modality 'depth': stages must be an integer from 1 to 4, got 5"),
        "unknown_option": (lab, FLAGS + ["--modality_option=depth:size=16"],
                           "error: --modality_option 'depth:size=16': kind 'image' has no option 'size' (options: "
                           "height, width, channels, base_filters, stages)"),
    }


BAD_CASES = ("unequal_rows", "float_images", "wrong_shape", "rank_3", "empty", "no_images_key", "short_labels",
             "not_a_zip", "missing_file", "missing_option", "height_too_small", "five_channels", "too_many_stages",
             "unknown_option")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every command line of this module in one interpreter: train, evaluate and export a labelled run, train and
    evaluate an unlabelled one, the classifier tool, and the failing cases."""
    root = tmp_path_factory.mktemp("images")
    write_images(root / "lab")
    # the CCA fit needs more train tuples than its views have dimensions (rgbd 9x8x4 + depth 8x8 cells)
    write_images(root / "unl", labels=False, seed=1, rows={"train": 480, "test": ROWS["test"]})
    lab, unl, export_dir = root / "runs" / "lab", root / "runs" / "unl", root / "exports" / "img" / "1"
    env = {"MMALI_CLASSIFIER_DIR": None, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cases = {
        "train_lab": ("mmali_tf.train", FLAGS + [f"--data_dir={root / 'lab'}", f"--workdir={lab}"]),
        "eval_lab": ("mmali_tf.evaluate", [f"--workdir={lab}"] + EVAL),
        "export_lab": ("mmali_tf.export", [f"--workdir={lab}", f"--export_dir={export_dir}"]),
        "refused_metric": ("mmali_tf.evaluate", [f"--workdir={lab}", "--metrics=correlation"]),
        "classifier_tool": ("mmali_tf.tools.train_classifiers",
                            ["--datasets=image:image:depth", f"--data_dir={root / 'lab'}",
                             f"--out_dir={root / 'tool_classifiers'}", "--epochs=1"]),
        "train_unl": ("mmali_tf.train", FLAGS + [f"--data_dir={root / 'unl'}", f"--workdir={unl}"]),
        "eval_unl": ("mmali_tf.evaluate", [f"--workdir={unl}"] + EVAL),
    }
    bad = _bad_cases(root)
    assert tuple(bad) == BAD_CASES
    for name, (data, flags, _) in bad.items():
        cases[name] = ("mmali_tf.train", flags + [f"--data_dir={data}", f"--workdir={root / 'bad' / name}"])
    results = run_in_one_interpreter([{"module": module, "argv": argv, "env": env}
                                      for module, argv in cases.values()], str(root), timeout=1200)
    return {"root": root, "lab": lab, "unl": unl, "export_dir": export_dir,
            "expected": {name: line for name, (_, _, line) in bad.items()},
            **dict(zip(cases, results))}


def _ok(result):
    assert result["code"] == 0, result["stderr"][-3000:]
    return result["stdout"]


def test_train_evaluate_labelled_images_with_flags_only(runs):
    stdout = _ok(runs["train_lab"])
    assert "rgbd: 48 train images from image/train" in stdout
    assert "train pairing: 48 pairs by row; distinct examples per modality: rgbd 48 (each once), depth 48" in stdout
    assert os.path.isfile(runs["lab"] / "samples" / "rgbd_step0000002.png")
    _ok(runs["eval_lab"])
    with open(runs["lab"] / "metrics.json") as f:
        record = json.load(f)
    assert set(record["metrics"]) == {
        *(f"latent_acc{v}/{m}" for v in ("", "_content", "_style") for m in SHAPES),
        "coherence/rgbd_to_depth", "coherence/depth_to_rgbd", "coherence/joint", "coherence/joint_chance",
        "synergy/rgbd", "synergy/depth"}
    assert record["data"]["rgbd"]["label"] == "image files"
    classifiers = sorted(os.listdir(runs["lab"] / "classifiers"))
    assert len([c for c in classifiers if c.endswith(".weights.h5")]) == 2  # one per modality, not per dataset
    sidecars = [json.load(open(runs["lab"] / "classifiers" / c)) for c in classifiers if c.endswith(".json")]
    assert sorted((s["modality"], tuple(s["input_shape"]), s["num_classes"]) for s in sidecars) == [
        ("depth", (16, 16, 1), CLASSES), ("rgbd", (18, 16, 4), CLASSES)]
    refused = runs["refused_metric"]
    assert refused["code"] != 0 and refused["stderr"].strip().splitlines()[-1] == (
        "error: metric 'correlation' does not apply to this model: CCA correlation needs two or more feature "
        "modalities, or image modalities without labels (labelled images are scored by coherence)")


def test_classifier_tool_takes_an_image_modality(runs):
    stdout = _ok(runs["classifier_tool"])
    assert "| image files (depth) | clean |" in stdout
    assert len([f for f in os.listdir(runs["root"] / "tool_classifiers") if f.endswith(".weights.h5")]) == 1


def test_unlabelled_images_are_scored_by_cca(runs):
    _ok(runs["train_unl"])
    stdout = _ok(runs["eval_unl"])
    assert "metric latent skipped" in stdout
    with open(runs["unl"] / "metrics.json") as f:
        record = json.load(f)
    assert set(record["metrics"]) == {"correlation/ground_truth", "correlation/rgbd_to_depth",
                                      "correlation/depth_to_rgbd", "correlation/joint", "correlation/synergy_rgbd",
                                      "correlation/synergy_depth"}
    assert record["metrics"]["correlation/ground_truth"] > 0.5  # the shared class and brightness, on unseen rows
    assert record["settings"]["correlation"]["view_of"] == {"rgbd": "image:18x16x4", "depth": "image:16x16x1"}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_error_line_and_writes_nothing(runs, case):
    result = runs[case]
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] != 0
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result["stderr"], lines
    expected = runs["expected"][case]
    assert (lines[0] == expected) if expected.startswith("error: ") else (expected in lines[0]), lines[0]
    assert not (runs["root"] / "bad" / case).exists()


FRESH = textwrap.dedent('''
    import json, sys
    sys.modules["mmali_tf"] = None  # the export must not need our code
    import numpy as np
    import tensorflow as tf

    export_dir, inputs = sys.argv[1], dict(np.load(sys.argv[2]))
    model = tf.saved_model.load(export_dir)
    sig = model.signatures
    rgbd, depth = inputs["rgbd"], inputs["depth"]
    out = {"signatures": sorted(sig)}
    translated = sig["translate_rgbd_to_depth_uint8"](images=tf.constant(rgbd))["images"].numpy()
    as_float = sig["translate_rgbd_to_depth"](images=tf.constant(rgbd.astype(np.float32) / 255))["images"].numpy()
    codes = sig["encode_rgbd"](images=tf.constant(rgbd.astype(np.float32) / 255))
    decoded = sig["decode_depth"](content=codes["content"], style=codes["style"])["images"].numpy()
    joint = sig["reconstruct_joint_uint8"](rgbd=tf.constant(rgbd), depth=tf.constant(depth))
    samples = sig["sample_joint"](num_samples=tf.constant(5), seed=tf.constant(3, tf.int64))
    back = sig["translate_depth_to_rgbd_with_style_uint8"](images=tf.constant(depth), style=codes["style"])
    try:
        sig["encode_rgbd"](images=tf.zeros([2, 16, 16, 4]))
        wrong_shape = None
    except Exception as exc:  # noqa: BLE001
        wrong_shape = type(exc).__name__ + ": " + getattr(exc, "message", str(exc))
    np.savez(sys.argv[3], translated=translated, mean=codes["mean"].numpy())
    out.update(uint8_vs_float=float(np.max(np.abs(translated - as_float))),
               encode_decode_vs_translate=float(np.max(np.abs(decoded - as_float))),
               translated_shape=list(translated.shape), range=[float(translated.min()), float(translated.max())],
               joint={k: list(v.shape) for k, v in joint.items()},
               samples={k: list(v.shape) for k, v in samples.items()}, back=list(back["images"].shape),
               wrong_shape=wrong_shape)
    print(json.dumps(out))
''')


def test_exported_image_signatures_served_in_a_fresh_process(runs):
    from mmali_tf import checkpointing
    from mmali_tf.model import MMALI

    stdout = _ok(runs["export_lab"])
    assert "translate_rgbd_to_depth_uint8(images: uint8[B,18,16,4]) -> images" in stdout
    work = runs["root"] / "fresh"
    work.mkdir()
    rng = np.random.default_rng(5)
    inputs = {n: rng.integers(0, 256, (3, *shape), dtype=np.uint8) for n, shape in SHAPES.items()}
    np.savez(work / "inputs.npz", **inputs)
    (work / "serve.py").write_text(FRESH)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    served = subprocess.run([sys.executable, str(work / "serve.py"), str(runs["export_dir"]), str(work / "inputs.npz"),
                             str(work / "outputs.npz")], cwd=str(work), env=env, capture_output=True, text=True,
                            timeout=600)
    assert served.returncode == 0, served.stderr[-3000:]
    report = json.loads(served.stdout.strip().splitlines()[-1])
    assert {"encode_rgbd_uint8", "decode_depth", "translate_rgbd_to_depth_with_style_uint8",
            "sample_joint"} <= set(report["signatures"])
    assert report["translated_shape"] == [3, 16, 16, 1] and 0.0 <= report["range"][0] <= report["range"][1] <= 1.0
    assert report["uint8_vs_float"] < 1e-6 and report["encode_decode_vs_translate"] < 1e-5
    assert report["joint"] == {"rgbd": [3, 18, 16, 4], "depth": [3, 16, 16, 1], "content": [3, 4]}
    assert report["samples"] == {"rgbd": [5, 18, 16, 4], "depth": [5, 16, 16, 1], "z": [5, 8]}
    assert report["back"] == [3, 18, 16, 4]
    assert "rgbd images must have shape [batch, 18, 16, 4]" in (report["wrong_shape"] or "") or \
        "18, 16, 4" in (report["wrong_shape"] or ""), report["wrong_shape"]
    # The served networks are the run's EMA networks, restored here from the checkpoint.
    config = ExperimentConfig.from_json_file(str(runs["lab"] / "config.json"))
    model = MMALI(config)
    checkpointing.restore_ema_only(model, str(runs["lab"]))
    x = inputs["rgbd"].astype(np.float32) / 255
    mean = model.ema_encoders["rgbd"](x, training=False).numpy()[:, :8]
    expected = model.ema_decoders["depth"](mean, training=False).numpy()
    served_out = np.load(work / "outputs.npz")
    np.testing.assert_allclose(served_out["mean"], mean, atol=1e-5)
    np.testing.assert_allclose(served_out["translated"], expected, atol=1e-5)
