"""SavedModel export: a tiny run, exported by the command line and loaded in a fresh Python process without
mmali_tf, serves every signature with the outputs of the in-memory Keras EMA networks; bad inputs are rejected
with clear messages; exports are atomic and never overwrite by accident."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import checkpointing

from mmali_tf import export, rundir, training
from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig
from mmali_tf.errors import MMALIError
from mmali_tf.model import MMALI

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
EMBEDDED = (ModalitySpec("grey", "mnist", "digits_grey28"), ModalitySpec("colour", "svhn", "digits_colour32"))
SHAPES = {"grey": (28, 28, 1), "colour": (32, 32, 3)}
L, S = 20, 10  # latent and style sizes
BATCH, NUM_SAMPLES, SEED = 5, 4, 7
TOLERANCE = 1e-5


def tiny_config(style_dim=S):
    return ExperimentConfig(
        name="export_test",
        data=DataConfig(data_multiplication=2),
        model=ModelConfig(modalities=EMBEDDED, latent_dim=L, style_dim=style_dim),
        loss=LossConfig(lambda_unimodal=0.1, lambda_x_rec=0.05, lambda_s_rec=0.05, lambda_c_rec=0.05, joint_rec=True),
        train=TrainConfig(batch_size=8, max_iter=3, ema_start=0, save_every=3, xla=False),
    )


FINGERPRINTS = {"modalities": {"grey": {"fingerprint": "3b2e866206b08e9a"},
                               "colour": {"fingerprint": "0bdd21c4c008cd02"}}}


def cli(*args):
    """Start ``python -m mmali_tf.export`` (several run at once: each pays TensorFlow's import time)."""
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "mmali_tf.export", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process):
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory as the trainer leaves it after step 3, and the in-memory model.

    Training itself is skipped to keep the test fast (the export of a trained quickstart run is the acceptance
    check): the EMA networks are the seeded initial weights plus noise, so they differ from the live ones and a
    mix-up shows. The checkpoint has the trainer's layout (model + d_optimizer step) and number.
    """
    workdir = str(tmp_path_factory.mktemp("run"))
    config = tiny_config()
    rundir.write_start_files(config, workdir, FINGERPRINTS)
    keras.utils.set_random_seed(0)
    model = MMALI(config)
    rng = np.random.default_rng(0)
    for m in model.names:
        for v in model.ema_encoders[m].weights + model.ema_decoders[m].weights:
            v.assign(v.numpy() + rng.normal(0.0, 0.02, v.shape).astype(np.float32))
    ckpt = tf.train.Checkpoint(model=model, d_optimizer=tf.train.Checkpoint(_iterations=tf.Variable(3, dtype=tf.int64)))
    tf.train.CheckpointManager(ckpt, os.path.join(workdir, "checkpoints"), max_to_keep=1).save(checkpoint_number=3)
    return workdir, model, 3


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """The command-line export of the run (restored from its checkpoint) and a failing export run at the same time."""
    workdir, _, _ = run
    root = tmp_path_factory.mktemp("exports")
    export_dir = str(root / "mmali" / "1")
    good = cli(f"--workdir={workdir}", f"--export_dir={export_dir}")
    bad = cli(f"--workdir={workdir}", f"--export_dir={root / 'other' / '1'}",
              f"--checkpoint={workdir}/checkpoints/ckpt-99")
    good, bad = finish(good), finish(bad)
    assert good.returncode == 0, good.stderr
    with open(os.path.join(export_dir, "assets.extra", "mmali_metadata.json")) as f:
        metadata = json.load(f)
    return {"export_dir": export_dir, "stdout": good.stdout, "metadata": metadata, "bad_checkpoint": bad,
            "other": root / "other"}


# ---------------------------------------------------------------------------------------------- expected outputs
def make_inputs():
    rng = np.random.default_rng(0)
    data = {}
    for m, shape in SHAPES.items():
        data[f"{m}_float"] = rng.random((BATCH, *shape), dtype=np.float32)
        data[f"{m}_uint8"] = rng.integers(0, 256, (BATCH, *shape), dtype=np.uint8)
    data["style"] = rng.standard_normal((BATCH, S)).astype(np.float32)
    data["content"] = rng.standard_normal((BATCH, L - S)).astype(np.float32)
    return data


def signature_plan():
    """signature -> {input name: key in make_inputs() (or a scalar)}; the fresh process calls each."""
    plan = {"serving_default": {"images": "grey_float"},
            "sample_joint": {"num_samples": NUM_SAMPLES, "seed": SEED}}
    for m in SHAPES:
        plan[f"encode_{m}"] = {"images": f"{m}_float"}
        plan[f"encode_{m}_uint8"] = {"images": f"{m}_uint8"}
        plan[f"decode_{m}"] = {"content": "content", "style": "style"}
    for a, b in (("grey", "colour"), ("colour", "grey")):
        for kind in ("float", "uint8"):
            suffix = "_uint8" if kind == "uint8" else ""
            plan[f"translate_{a}_to_{b}{suffix}"] = {"images": f"{a}_{kind}"}
            plan[f"translate_{a}_to_{b}_with_style{suffix}"] = {"images": f"{a}_{kind}", "style": "style"}
    plan["reconstruct_joint"] = {m: f"{m}_float" for m in SHAPES}
    plan["reconstruct_joint_uint8"] = {m: f"{m}_uint8" for m in SHAPES}
    return plan


def keras_outputs(model, data):
    """What every signature should return, computed directly from the Keras EMA networks (and NumPy)."""

    def images(key):
        x = data[key]
        return x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x

    def enc(m, key):
        params = model.ema_encoders[m](images(key), training=False).numpy()
        return params[:, :L], params[:, L:]

    def dec(m, z):
        return model.ema_decoders[m](np.asarray(z, np.float32), training=False).numpy()

    out = {}
    for name, inputs in signature_plan().items():
        if name.startswith("encode_"):
            mean, logvar = enc(name.split("_")[1], inputs["images"])
            out[name] = {"mean": mean, "logvar": logvar, "style": mean[:, :S], "content": mean[:, S:]}
        elif name.startswith("decode_"):
            out[name] = {"images": dec(name[len("decode_"):], np.concatenate([data["style"], data["content"]], 1))}
        elif name.startswith("translate_") or name == "serving_default":
            a, b = ("grey", "colour") if name == "serving_default" else name.split("_")[1:4:2]
            mean, _ = enc(a, inputs["images"])
            style = data["style"] if "_with_style" in name else mean[:, :S]
            out[name] = {"images": dec(b, np.concatenate([style, mean[:, S:]], 1))}
        elif name.startswith("reconstruct_joint"):
            post = {m: enc(m, key) for m, key in inputs.items()}
            precision = {m: np.exp(-post[m][1].astype(np.float64)) for m in post}
            joint = sum(precision[m] * post[m][0] for m in post) / sum(precision.values())
            content = joint[:, S:].astype(np.float32)
            out[name] = {m: dec(m, np.concatenate([post[m][0][:, :S], content], 1)) for m in post}
            out[name]["content"] = content
        elif name == "sample_joint":
            z = tf.random.stateless_normal([NUM_SAMPLES, L], seed=tf.constant([SEED, 0], tf.int64)).numpy()
            out[name] = {m: dec(m, z) for m in SHAPES}
            out[name]["z"] = z
    return out


# ---------------------------------------------------------------------------------------------- the fresh process
FRESH_PROCESS = textwrap.dedent('''
    import json, sys, time
    sys.modules["mmali_tf"] = None  # the export must not need our code: any import of mmali_tf now fails
    import numpy as np
    import tensorflow as tf

    export_dir, inputs_path, plan_path, outputs_path = sys.argv[1:5]
    data = dict(np.load(inputs_path))
    plan = json.load(open(plan_path))
    started = time.perf_counter()
    loaded = tf.saved_model.load(export_dir)
    report = {"load_seconds": time.perf_counter() - started, "signatures": sorted(loaded.signatures)}
    outputs = {}
    for name, inputs in plan.items():
        args = {k: (data[v] if isinstance(v, str) else tf.constant(v, tf.int32 if k == "num_samples" else tf.int64))
                for k, v in inputs.items()}
        for key, value in loaded.signatures[name](**args).items():
            outputs[f"{name}/{key}"] = value.numpy()
    np.savez(outputs_path, **outputs)
    again = loaded.signatures["sample_joint"](num_samples=tf.constant(3), seed=tf.constant(7, tf.int64))["grey"]
    report["sample_joint_deterministic"] = bool(np.array_equal(again.numpy(), outputs["sample_joint/grey"][:3]))

    def error(call):
        try:
            call()
        except Exception as exc:  # noqa: BLE001
            lines = [l for l in str(exc).splitlines() if "assertion failed" in l] or str(exc).splitlines()[:1]
            return type(exc).__name__ + ": " + lines[0]
        return None

    enc = loaded.signatures["encode_grey"]
    x = data["grey_float"]
    report["errors"] = {
        "wrong_shape": error(lambda: enc(images=np.zeros((2, 32, 32, 3), np.float32))),
        "wrong_dtype": error(lambda: enc(images=tf.zeros((2, 28, 28, 1), tf.uint8))),
        "above_one": error(lambda: enc(images=x * 2.0)),
        "negative": error(lambda: enc(images=x - 0.5)),
        "nan": error(lambda: enc(images=np.full_like(x, np.nan))),
        "uint8_values_as_float": error(lambda: enc(images=data["grey_uint8"].astype(np.float32))),
        "batch_mismatch": error(lambda: loaded.signatures["reconstruct_joint"](
            grey=x, colour=data["colour_float"][:2])),
        "style_batch_mismatch": error(lambda: loaded.signatures["translate_grey_to_colour_with_style"](
            images=x, style=data["style"][:2])),
        "num_samples_zero": error(lambda: loaded.signatures["sample_joint"](
            num_samples=tf.constant(0), seed=tf.constant(1, tf.int64))),
        "num_samples_vector": error(lambda: loaded.signatures["sample_joint"](
            num_samples=tf.constant([2, 3]), seed=tf.constant(1, tf.int64))),
        "seed_vector": error(lambda: loaded.signatures["sample_joint"](
            num_samples=tf.constant(2), seed=tf.constant([1, 2], tf.int64))),
        "seed_matrix": error(lambda: loaded.signatures["sample_joint"](
            num_samples=tf.constant(2), seed=tf.constant([[1]], tf.int64))),
    }

    # TensorFlow Serving feeds tensors through the C API without Python's shape check: the in-graph check answers.
    with tf.compat.v1.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
        sig = meta.signature_def["encode_grey"]
        feed = graph.get_tensor_by_name(sig.inputs["images"].name)
        fetch = graph.get_tensor_by_name(sig.outputs["mean"].name)
        def raw(value):
            return tf.compat.v1.Session._call_tf_sessionrun(
                sess, None, {feed._as_tf_output(): value}, [fetch._as_tf_output()], [], None)
        report["session_ok_shape"] = list(raw(x)[0].shape)
        report["errors"]["session_wrong_shape"] = error(lambda: raw(np.zeros((2, 32, 32, 3), np.float32)))
        report["errors"]["session_wrong_rank"] = error(lambda: raw(np.zeros((2, 28, 28), np.float32)))
        sig = meta.signature_def["sample_joint"]
        inputs = {k: graph.get_tensor_by_name(sig.inputs[k].name)._as_tf_output() for k in ("num_samples", "seed")}
        fetch = graph.get_tensor_by_name(sig.outputs["z"].name)._as_tf_output()
        def sample(num_samples, seed):
            feed = {inputs["num_samples"]: np.asarray(num_samples, np.int32),
                    inputs["seed"]: np.asarray(seed, np.int64)}
            return tf.compat.v1.Session._call_tf_sessionrun(sess, None, feed, [fetch], [], None)
        report["session_sample_shape"] = list(sample(3, 7)[0].shape)
        report["errors"]["session_num_samples_vector"] = error(lambda: sample([2, 3], 7))
        report["errors"]["session_seed_vector"] = error(lambda: sample(3, [7, 8]))
    print(json.dumps(report))
''')


@pytest.fixture(scope="module")
def fresh(exported, tmp_path_factory):
    """Run the fresh-process script and ``saved_model_cli show --all`` (at the same time) on the export."""
    work = tmp_path_factory.mktemp("fresh")
    data = make_inputs()
    np.savez(work / "inputs.npz", **data)
    (work / "plan.json").write_text(json.dumps(signature_plan()))
    (work / "load.py").write_text(FRESH_PROCESS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    loader = subprocess.Popen([sys.executable, str(work / "load.py"), exported["export_dir"], str(work / "inputs.npz"),
                               str(work / "plan.json"), str(work / "outputs.npz")],
                              cwd=str(work), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    show = subprocess.Popen([os.path.join(BIN, "saved_model_cli"), "show", "--all", "--dir", exported["export_dir"]],
                            cwd=str(work), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    loaded, show = finish(loader), finish(show)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    report = json.loads(loaded.stdout.strip().splitlines()[-1])
    return data, report, dict(np.load(work / "outputs.npz")), show


def test_fresh_process_matches_keras_for_every_signature(run, fresh):
    _, model, _ = run
    data, report, outputs, _ = fresh
    expected = keras_outputs(model, data)
    assert report["signatures"] == sorted(signature_plan())
    worst = {}
    for name, values in expected.items():
        got_keys = {k.split("/", 1)[1] for k in outputs if k.split("/", 1)[0] == name}
        assert got_keys == set(values), name
        for key, value in values.items():
            got = outputs[f"{name}/{key}"]
            assert got.shape == value.shape and got.dtype == np.float32, (name, key, got.shape, value.shape)
            worst[f"{name}/{key}"] = float(np.max(np.abs(got - value)))
    bad = {k: v for k, v in worst.items() if not v < TOLERANCE}
    assert not bad, bad
    assert report["sample_joint_deterministic"]
    for name in ("decode_grey", "translate_colour_to_grey", "sample_joint"):  # images in [0, 1]
        images = outputs[f"{name}/grey" if name == "sample_joint" else f"{name}/images"]
        assert images.min() >= 0.0 and images.max() <= 1.0


def test_export_serves_the_ema_networks_not_the_live_ones(run, fresh):
    """The checkpoint holds both; the export's encoder and decoder give the EMA networks' outputs, not the live ones'
    (nor those of networks left at their initial weights)."""
    _, model, _ = run
    data, _, outputs, _ = fresh
    x = data["grey_float"]
    ema, live = (net(x, training=False).numpy()[:, :L] for net in (model.ema_enc_grey, model.enc_grey))
    assert np.max(np.abs(ema - live)) > 1e-3  # the two differ in this run
    assert np.max(np.abs(outputs["encode_grey/mean"] - ema)) < TOLERANCE
    z = np.concatenate([data["style"], data["content"]], axis=1)
    decoded = model.ema_dec_colour(z, training=False).numpy()
    assert np.max(np.abs(outputs["decode_colour/images"] - decoded)) < TOLERANCE
    assert np.max(np.abs(model.dec_colour(z, training=False).numpy() - decoded)) > 1e-3


def test_bad_inputs_are_rejected_with_clear_messages(fresh):
    _, report, _, _ = fresh
    errors = report["errors"]
    assert errors["wrong_shape"].startswith(("TypeError", "ValueError")) and "28, 28, 1" in errors["wrong_shape"]
    assert errors["wrong_dtype"] is not None and "uint8" in errors["wrong_dtype"]
    for case in ("above_one", "negative", "nan", "uint8_values_as_float"):
        assert errors[case] is not None, case
        assert "grey images (float32) must lie in [0, 1]" in errors[case], errors[case]
        assert "_uint8 signature" in errors[case]
    assert "reconstruct_joint: grey, colour must have the same batch size" in errors["batch_mismatch"]
    assert "images, style must have the same batch size" in errors["style_batch_mismatch"]
    assert "num_samples must be in [1, 10000]" in errors["num_samples_zero"]
    # vector scalars, through the loaded signature and as TensorFlow Serving feeds them (the session's C API)
    for case, name, shape in (("num_samples_vector", "num_samples", "2"), ("seed_vector", "seed", "2"),
                              ("seed_matrix", "seed", "1 1"), ("session_num_samples_vector", "num_samples", "2"),
                              ("session_seed_vector", "seed", "2")):
        assert errors[case] is not None and errors[case].startswith("InvalidArgumentError"), (case, errors[case])
        assert f"{name} must be a scalar (shape []); got shape] [{shape}]" in errors[case], (case, errors[case])
    assert report["session_sample_shape"] == [3, L]
    assert report["session_ok_shape"] == [BATCH, L]
    for case in ("session_wrong_shape", "session_wrong_rank"):
        assert "grey images must have shape [batch, 28, 28, 1]" in (errors[case] or ""), errors[case]


def test_saved_model_cli_lists_every_signature(fresh):
    show = fresh[3]
    assert show.returncode == 0, show.stderr[-2000:]
    listed = {line.split("'")[1] for line in show.stdout.splitlines() if line.startswith("signature_def['")}
    assert listed - {"__saved_model_init_op"} == set(signature_plan())
    assert "dtype: DT_UINT8" in show.stdout and "shape: (-1, 28, 28, 1)" in show.stdout


def test_metadata(run, exported):
    workdir, model, step = run
    meta = exported["metadata"]  # read from <export_dir>/assets.extra/mmali_metadata.json
    assert [(m["name"], m["kind"], m["image_shape"]) for m in meta["modalities"]] == [
        ("grey", "mnist", [28, 28, 1]), ("colour", "svhn", [32, 32, 3])]
    assert meta["latent"]["style_dim"] == S and meta["latent"]["content_dim"] == L - S
    assert meta["step"] == step == 3 and meta["checkpoint"].endswith("ckpt-3")
    assert ExperimentConfig.from_dict(meta["config"]) == model.config
    with open(os.path.join(workdir, "data_fingerprints.json")) as f:  # as the trainer writes it
        assert meta["data_fingerprints"] == {"available": True, "source": f.name, "fingerprints": json.load(f)}
    assert sorted(meta["signatures"]) == sorted(signature_plan())
    assert meta["serving_default"] == "translate_grey_to_colour"
    assert meta["signatures"]["translate_grey_to_colour_uint8"]["inputs"] == {
        "images": {"dtype": "uint8", "shape": [-1, 28, 28, 1]}}
    assert meta["signatures"]["sample_joint"]["outputs"]["z"] == {"dtype": "float32", "shape": [-1, L]}
    assert meta["signatures"]["sample_joint"]["inputs"] == {  # declared without a shape, checked in the graph
        "num_samples": {"dtype": "int32", "shape": [], "checked_in_graph": True},
        "seed": {"dtype": "int64", "shape": [], "checked_in_graph": True}}
    assert meta["versions"]["tensorflow"] == tf.__version__ and "keras" in meta["versions"]
    assert meta["exported_at"].endswith("+00:00")
    assert meta["workdir"] == os.path.abspath(workdir)


def test_fingerprints_missing_or_unreadable(tmp_path):
    assert export.read_fingerprints(str(tmp_path)) == {
        "available": False, "note": "data_fingerprints.json not found in the run directory"}
    (tmp_path / "data_fingerprints.json").write_text("{not json")
    assert "unreadable" in export.read_fingerprints(str(tmp_path))["note"]


def test_in_graph_shape_check():
    check = tf.function(lambda x: export.check_images(x, "grey", (28, 28, 1)),
                        input_signature=[tf.TensorSpec(None, tf.float32)])
    assert check(tf.zeros([0, 28, 28, 1])).shape == (0, 28, 28, 1)
    for shape in ([2, 28, 28], [2, 28, 28, 3], [28, 28, 1, 1, 1]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"grey images must have shape \[batch, 28, 28, 1\]"):
            check(tf.zeros(shape))


def test_uint8_images_are_divided_by_255():
    """What the _uint8 signatures give the networks: pixels / 255, as the training pipeline does."""
    pixels = np.array([0, 51, 128, 255], np.uint8).reshape(1, 2, 2, 1)
    check = tf.function(lambda x: export.check_images(x, "grey", (2, 2, 1)))
    got = check(tf.constant(pixels)).numpy()  # TensorFlow may multiply by 1/255: one rounding step apart
    np.testing.assert_allclose(got, pixels.astype(np.float32) / np.float32(255), rtol=1e-6, atol=0)


def test_in_graph_scalar_check(tmp_path):
    """num_samples and seed: a scalar passes, anything else fails naming the input, also through a SavedModel
    signature, which (like TensorFlow Serving) feeds any shape to the graph: the graph is not told the rank, as in the
    export, so that its check is not optimized away."""

    class Sampler(tf.Module):
        @tf.function(input_signature=[export.scalar_spec(tf.int32, "num_samples"),
                                      export.scalar_spec(tf.int64, "seed")])
        def sample(self, num_samples, seed):
            num_samples, seed = export.check_scalar(num_samples, "num_samples"), export.check_scalar(seed, "seed")
            z = tf.random.stateless_normal(tf.stack([num_samples, 2]), seed=tf.stack([seed, tf.constant(0, tf.int64)]))
            return {"z": z}

    sampler = Sampler()
    tf.saved_model.save(sampler, str(tmp_path), signatures={"sample": sampler.sample})
    sample = tf.saved_model.load(str(tmp_path)).signatures["sample"]
    assert sample(num_samples=tf.constant(4), seed=tf.constant(7, tf.int64))["z"].shape == (4, 2)
    for num_samples, seed, message in (([4, 5], 7, "num_samples must be a scalar (shape []); got shape] [2]"),
                                       (4, [[7]], "seed must be a scalar (shape []); got shape] [1 1]")):
        with pytest.raises(tf.errors.InvalidArgumentError) as refused:
            sample(num_samples=tf.constant(num_samples), seed=tf.constant(seed, tf.int64))
        assert message in str(refused.value)


def test_no_style_signatures_without_style():
    names = [name for name, _, _ in export._Endpoints(MMALI(tiny_config(style_dim=0))).all()]
    assert "translate_grey_to_colour" in names and not any("_with_style" in n for n in names)


def _export_small(monkeypatch):
    """Make exports fast by keeping only the first two signatures."""
    original = export._Endpoints.all
    monkeypatch.setattr(export._Endpoints, "all", lambda self: original(self)[:2])


def test_existing_export_is_kept_unless_overwrite(run, tmp_path, monkeypatch):
    _, model, step = run
    _export_small(monkeypatch)
    target = tmp_path / "mmali" / "1"
    first = export.export_model(model, str(target), step)
    with pytest.raises(MMALIError, match="already exists; pass --overwrite"):
        export.export_model(model, str(target), step + 1)
    assert json.loads((target / "assets.extra" / "mmali_metadata.json").read_text())["step"] == step
    second = export.export_model(model, str(target), step + 1, overwrite=True)
    assert second["metadata"]["step"] == step + 1 != first["metadata"]["step"]
    assert json.loads((target / "assets.extra" / "mmali_metadata.json").read_text())["step"] == step + 1
    assert os.listdir(tmp_path / "mmali") == ["1"]  # no temporary or moved-aside directories left


def test_failed_export_leaves_nothing(run, tmp_path, monkeypatch):
    _, model, step = run
    _export_small(monkeypatch)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "build_metadata", fail)  # fails after the SavedModel is written
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_model(model, str(tmp_path / "mmali" / "1"), step)
    assert os.listdir(tmp_path / "mmali") == []


def test_restore_refuses_a_checkpoint_without_the_ema_networks(run, tmp_path):
    workdir, _, _ = run
    other = tf.train.Checkpoint(x=tf.Variable(1.0)).write(str(tmp_path / "other"))
    with pytest.raises(MMALIError, match="does not hold the EMA networks"):
        checkpointing.restore_ema_only(MMALI(tiny_config()), workdir, other)
    model = MMALI(tiny_config())
    assert checkpointing.restore_ema_only(model, workdir)[1] == 3
    for a, b in zip(model.ema_dec_colour.weights, run[1].ema_dec_colour.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_cli_prints_size_and_signatures(exported):
    out = exported["stdout"]
    assert "exported step 3 from" in out and "ckpt-3" in out
    size = export.directory_size(exported["export_dir"]) / 1e6
    assert f"{size:.1f} MB, 18 signatures" in out
    assert "serving_default(images: float32[B,28,28,1]) -> images  (= translate_grey_to_colour)" in out
    assert "reconstruct_joint_uint8(colour: uint8[B,32,32,3], grey: uint8[B,28,28,1]) -> colour, content, grey" in out


def test_cli_errors_are_one_line(exported):
    bad = exported["bad_checkpoint"]
    assert bad.returncode != 0
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ckpt-99" in lines[0], bad.stderr
    assert not exported["other"].exists() or os.listdir(exported["other"]) == []
