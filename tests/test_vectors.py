"""The generic ``vector`` kind and dataset: a user's own feature files, trained, evaluated and exported with a
flagfile and no code; ``python -m mmali_tf.tools.cub_to_vectors`` writes the CUB stand-in in that layout (the
README's example)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.data import cub_features as cf
from mmali_tf.data import datasets
from mmali_tf.errors import ConfigError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIMS = {"text": 48, "audio": 64}
ROWS = {"train": 200, "test": 60}


def write_vectors(directory, with_labels=True, seed=0):
    """Two modalities sharing a 6-d factor per row (so CCA finds something), text as .npz with labels, audio .npy."""
    rng = np.random.default_rng(seed)
    mix = {name: rng.standard_normal((6, dim)) for name, dim in DIMS.items()}
    for split, rows in ROWS.items():
        shared = rng.standard_normal((rows, 6))
        for name, dim in DIMS.items():
            features = (shared @ mix[name] + 0.5 * rng.standard_normal((rows, dim))).astype(np.float32)
            if name == "text" and with_labels:
                np.savez(directory / f"{name}_{split}.npz", features=features, labels=np.arange(rows) % 5)
            else:
                np.save(directory / f"{name}_{split}.npy", features)


def run_module(module, *args):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MMALI_CLASSIFIER_DIR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def test_loader_reads_npy_and_npz_paired_by_row(tmp_path):
    write_vectors(tmp_path)
    text = datasets.load_dataset("vector", "train", str(tmp_path), modality="text")
    audio = datasets.load_dataset("vector", "test", str(tmp_path), modality="audio")
    assert text.examples.shape == (200, 48) and text.examples.dtype == np.float32
    np.testing.assert_array_equal(text.labels, np.arange(200) % 5)
    assert audio.labels is None and audio.examples.shape == (60, 64)
    np.testing.assert_array_equal(text.tuple_index, np.arange(200))
    assert not text.examples.flags.writeable
    assert datasets.data_label("vector", text.source) == "vector files"
    (tmp_path / "STANDIN.txt").write_text("synthetic")
    marked = datasets.load_dataset("vector", "train", str(tmp_path), modality="text")
    assert datasets.data_label("vector", marked.source) == "vector stand-in"


@pytest.mark.parametrize("write, fragment", [
    (lambda p: None, "no vector files for modality 'text'.*text_train.npy or text_train.npz"),
    (lambda p: np.save(p / "text_train.npy", np.zeros((4, 3), np.int64)), "expected float features"),
    (lambda p: np.save(p / "text_train.npy", np.zeros(4, np.float32)),
     r"expected feature vectors of shape \[N, D\] \(rank 2\), got shape \(4,\)"),
    (lambda p: np.save(p / "text_train.npy", np.full((4, 3), np.nan, np.float32)), "NaN or infinite"),
    (lambda p: np.save(p / "text_train.npy", np.array([{"a": 1}], dtype=object)), "cannot read"),
    (lambda p: np.savez(p / "text_train.npz", x=np.zeros((4, 3), np.float32)), "expected an array 'features'"),
    (lambda p: np.savez(p / "text_train.npz", features=np.zeros((4, 3), np.float32), labels=np.arange(3)),
     "4 feature vectors but 3 labels"),
    (lambda p: np.savez(p / "text_train.npz", features=np.zeros((4, 3), np.float32), labels=-np.arange(4)),
     "labels must be non-negative"),
])
def test_loader_errors_name_the_file(tmp_path, write, fragment):
    write(tmp_path)
    with pytest.raises(DataError, match=fragment):
        datasets.load_dataset("vector", "train", str(tmp_path), modality="text")


def test_loader_needs_a_modality_and_a_directory(monkeypatch):
    monkeypatch.delenv("MMALI_DATA_DIR", raising=False)
    with pytest.raises(ConfigError, match="needs the modality's name"):
        datasets.load_dataset("vector", "train", "/tmp")
    with pytest.raises(DataError, match="no data directory for the vector files of 'text'"):
        datasets.load_dataset("vector", "train", None, modality="text")


def test_cub_to_vectors_keeps_the_pairing(tmp_path):
    from mmali_tf.tools import cub_to_vectors, make_cub_standin

    make_cub_standin.write_standin(str(tmp_path / "cub_data"), train_images=150, test_images=50,
                                   print_fn=lambda _: None)
    out = tmp_path / "vectors"
    cub_to_vectors.convert(str(tmp_path / "cub_data"), str(out), print_fn=lambda _: None)
    cub = cf.load_cub_features(str(tmp_path / "cub_data"), "train")
    caption = datasets.load_dataset("vector", "train", str(out), modality="caption")
    image = datasets.load_dataset("vector", "train", str(out), modality="image")
    np.testing.assert_array_equal(caption.examples, cub.pair_captions())
    np.testing.assert_array_equal(image.examples, cub.image_features[np.arange(1500) // 10])
    np.testing.assert_array_equal(caption.labels, np.repeat(cub.class_ids, 10))
    assert datasets.data_label("vector", caption.source) == "vector stand-in"
    with pytest.raises(Exception, match="already exists"):
        cub_to_vectors.convert(str(tmp_path / "cub_data"), str(out), print_fn=lambda _: None)
    proc = run_module("mmali_tf.tools.cub_to_vectors", f"--data_dir={tmp_path / 'cub_data'}", f"--out_dir={out}",
                      "--captions=first", "--overwrite")  # the command line, as the README runs it
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = datasets.load_dataset("vector", "test", str(out), modality="caption")
    np.testing.assert_array_equal(first.examples, cf.load_cub_features(str(tmp_path / "cub_data"),
                                                                        "test").caption_features[:, 0])


FLAGS = ["--modalities=text:vector:vector,audio:vector:vector", "--modality_option=text:feature_dim=48",
         "--modality_option=audio:feature_dim=64", "--modality_option=audio:encoder_hidden=40,20",
         "--joint_architecture=feature_concat", "--latent_dim=8", "--style_dim=4", "--lambda_x_rec=1",
         "--batch_size=8", "--max_iter=2", "--save_every=2", "--image_every=2", "--log_every=1", "--noxla"]


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("vectors")
    write_vectors(data)
    workdir = data / "run"
    trained = run_module("mmali_tf.train", *FLAGS, f"--data_dir={data}", f"--workdir={workdir}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    return data, workdir, trained.stdout


def test_train_and_evaluate_with_flags_only(vector_run):
    data, workdir, stdout = vector_run
    assert "text: 200 train feature vectors (float32, 48-d) from vector/train" in stdout
    assert "train pairing: 200 pairs by row; distinct examples per modality: text 200 (each once), audio 200" in stdout
    assert "enc_audio 3,756," in stdout  # 64 -> 40 -> 20 -> 16: 65 * 40 + 41 * 20 + 21 * 16
    evaluated = run_module("mmali_tf.evaluate", f"--workdir={workdir}", "--num_prior=500")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "metric latent skipped" in evaluated.stdout
    with open(workdir / "metrics.json") as f:
        record = json.load(f)
    assert set(record["metrics"]) == {"correlation/ground_truth", "correlation/text_to_audio",
                                      "correlation/audio_to_text", "correlation/joint", "correlation/synergy_text",
                                      "correlation/synergy_audio"}
    assert record["metrics"]["correlation/ground_truth"] > 0.5  # the shared factor, found on unseen rows
    assert record["data"]["text"]["label"] == "vector files"
    assert record["settings"]["correlation"]["fit_tuples"] == 200
    assert os.path.isfile(record["settings"]["correlation"]["cache"])
    refused = run_module("mmali_tf.evaluate", f"--workdir={workdir}", "--metrics=cross")
    assert refused.returncode != 0 and refused.stderr.strip().splitlines() == [
        "error: metric 'cross' does not apply to this model: no coherence classifier for the kind of text, audio"]


def test_wrong_feature_dim_is_one_error_line(vector_run, tmp_path):
    data, _, _ = vector_run
    flags = [f.replace("text:feature_dim=48", "text:feature_dim=50") for f in FLAGS]
    result = run_module("mmali_tf.train", *flags, f"--data_dir={data}", f"--workdir={tmp_path / 'run'}")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert lines[0] == ("error: modality 'text': dataset 'vector' has float32 examples of shape (48,), but network "
                        "kind 'vector' expects float32 (50,) (set --modality_option=text:feature_dim=48)")


def test_export_serves_feature_signatures(vector_run, tmp_path):
    _, workdir, _ = vector_run
    exported = run_module("mmali_tf.export", f"--workdir={workdir}", f"--export_dir={tmp_path / 'mmali' / '1'}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "translate_text_to_audio(features: float32[B,48]) -> features" in exported.stdout
    assert "_uint8" not in exported.stdout
    loaded = tf.saved_model.load(str(tmp_path / "mmali" / "1"))
    x = tf.random.stateless_normal([3, 48], seed=[0, 1])
    out = loaded.signatures["translate_text_to_audio"](features=x)
    assert set(out) == {"features"} and out["features"].shape == (3, 64)
    codes = loaded.signatures["encode_text"](features=x)
    decoded = loaded.signatures["decode_audio"](content=codes["content"], style=codes["style"])["features"]
    np.testing.assert_allclose(decoded.numpy(), out["features"].numpy(), rtol=1e-5, atol=1e-6)
    joint = loaded.signatures["reconstruct_joint"](text=x, audio=tf.zeros([3, 64]))
    assert joint["text"].shape == (3, 48) and joint["audio"].shape == (3, 64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"text features must have shape \[batch, 48\]"):
        loaded.signatures["encode_text"](features=tf.zeros([3, 47]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="text features must be finite"):
        loaded.signatures["encode_text"](features=tf.fill([3, 48], np.inf))
    with open(tmp_path / "mmali" / "1" / "assets.extra" / "mmali_metadata.json") as f:
        meta = json.load(f)
    assert [(m["name"], m["feature_dim"], m["input_name"]) for m in meta["modalities"]] == [
        ("text", 48, "features"), ("audio", 64, "features")]
