"""End-to-end training on the embedded digits: resume is exact, outputs land in the run directory."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import checkpointing, rundir, training
from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig
from mmali_tf.errors import ConfigError, MMALIError

EMBEDDED = (ModalitySpec("grey", "mnist", "digits_grey28"), ModalitySpec("colour", "svhn", "digits_colour32"))


def tiny_config(max_iter=6, **train):
    return ExperimentConfig(
        name="tiny",
        data=DataConfig(data_multiplication=2),
        model=ModelConfig(modalities=EMBEDDED, latent_dim=20, style_dim=10),
        loss=LossConfig(lambda_unimodal=0.1, lambda_x_rec=0.05, lambda_s_rec=0.05, lambda_c_rec=0.05, joint_rec=True),
        train=TrainConfig(**{"batch_size": 8, "max_iter": max_iter, "ema_start": 2, "save_every": 3, "log_every": 3,
                             "image_every": 3, "xla": False, "deterministic": True, **train}),
    )


def all_state(model):
    """Every model variable (live, EMA, discriminators, SN vectors) and both optimizers' variables."""
    variables = list(model.variables) + list(model.d_optimizer.variables) + list(model.g_optimizer.variables)
    return {v.path: v.numpy() for v in variables}


def quiet(_):
    pass


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight"))
    result = training.run(tiny_config(), workdir, print_fn=quiet)
    return workdir, all_state(result["model"])


def test_resume_is_exact(straight_run, tmp_path):
    _, straight = straight_run
    workdir = str(tmp_path / "resumed")
    training.run(tiny_config(max_iter=3), workdir, print_fn=quiet)  # stops after 3 steps (as if killed after ckpt-3)
    resumed = training.run(tiny_config(max_iter=6), workdir, print_fn=quiet)["model"]
    assert int(resumed.d_optimizer.iterations.numpy()) == 6
    state = all_state(resumed)
    assert state.keys() == straight.keys()
    for key, value in straight.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)


def test_checkpoint_restores_every_variable(straight_run):
    workdir, straight = straight_run
    fresh = training.build_model(tiny_config())
    found = checkpointing.restore_newest(checkpointing.make_checkpoint(fresh), checkpointing.checkpoint_dir(workdir))
    assert found.prefix.endswith("ckpt-6") and found.step == 6
    state = all_state(fresh)
    assert state.keys() == straight.keys()
    for key, value in straight.items():  # live, EMA, discriminators, SN vectors, both optimizers
        np.testing.assert_array_equal(state[key], value, err_msg=key)


def test_ema_only_restore_for_evaluation(straight_run):
    workdir, straight = straight_run
    model = training.build_model(tiny_config())
    path, step = checkpointing.restore_ema_only(model, workdir)
    assert step == 6 and path.endswith("ckpt-6")
    for v in model.ema_dec_colour.weights:
        np.testing.assert_array_equal(v.numpy(), straight[v.path])


def test_run_directory_contents(straight_run):
    workdir, _ = straight_run
    assert os.path.exists(os.path.join(workdir, "config.json"))
    restored = ExperimentConfig.from_json_file(os.path.join(workdir, "config.json"))
    from mmali_tf import distribution

    assert restored == distribution.resolve(tiny_config())  # the run directory records the resolved "auto" values
    assert restored.train.intra_op_threads >= 0 and restored.train.inter_op_threads >= 0
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(workdir, "samples", "*.png"))) == [
        "colour_step0000003.png", "colour_step0000006.png", "grey_step0000003.png", "grey_step0000006.png"]
    events = glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
    tags = set()
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    for tag in ("D/dj", "D/d0_grey/content_of_colour", "G/joint/decoder", "G/colour/joint_reconstruction", "loss/d_loss", "perf/steps_per_sec",
                "samples/grey", "samples/colour"):
        assert tag in tags, tag


def test_ema_is_a_copy_before_ema_start(straight_run, tmp_path):
    model = training.run(tiny_config(max_iter=2, ema_start=5), str(tmp_path), print_fn=quiet)["model"]
    for live, shadow in ((model.enc_grey, model.ema_enc_grey), (model.dec_colour, model.ema_dec_colour)):
        for a, b in zip(live.weights, shadow.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_ema_decays_after_ema_start():
    model = training.build_model(tiny_config(ema_start=0))
    before = [w.numpy() for w in model.ema_enc_grey.weights]
    for w in model.enc_grey.weights:
        w.assign(w + 1.0)
    model.update_ema(tf.constant(1, tf.int64))  # step 1 > ema_start 0: decay 0.9999
    for old, new in zip(before, model.ema_enc_grey.weights):
        np.testing.assert_allclose(new.numpy(), old + 1e-4, atol=1e-6)


def test_resume_refuses_a_different_model(straight_run):
    workdir, _ = straight_run
    changed = tiny_config()
    changed = ExperimentConfig(changed.name, changed.data, ModelConfig(EMBEDDED, latent_dim=16, style_dim=8),
                               changed.loss, changed.train)
    with pytest.raises(ConfigError, match="different config"):
        rundir.check_resumable(changed, workdir)


def test_three_modalities_train_one_step(tmp_path):
    modalities = (ModalitySpec("a", "mnist", "digits_grey28"), ModalitySpec("b", "mnist", "digits_grey28", 1),
                  ModalitySpec("c", "mnist", "digits_grey28", 2))
    config = tiny_config(max_iter=1)
    config = ExperimentConfig("m3", config.data, ModelConfig(modalities, joint_architecture="concat"), LossConfig(0.1),
                              config.train)
    model = training.run(config, str(tmp_path), print_fn=quiet)["model"]
    assert model.d0_c.output_shape == (None, 4)
    assert int(model.g_optimizer.iterations.numpy()) == 1


def test_evaluation_schedule_runs_each_step_once(tmp_path):
    # eval_every divides max_iter: the periodic call at the last step must not be repeated by eval_at_end.
    evaluated = []
    training.run(tiny_config(max_iter=4, eval_every=2, eval_at_end=True, save_every=2),
                 str(tmp_path), print_fn=quiet, evaluate_fn=lambda model, step: evaluated.append(step))
    assert evaluated == [2, 4]


def test_auto_execution_settings_on_a_cpu_only_machine():
    from mmali_tf import distribution

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("the CPU-only defaults are checked on a machine without a GPU (CI)")
    half = max(1, distribution.usable_cpus() // 2)
    assert distribution.resolve_execution(None, -1, -1) == (False, half, 2)
    assert distribution.resolve_execution(True, -1, -1) == (True, 0, 0)  # one XLA cluster needs every core
    assert distribution.resolve_execution(False, 3, 0) == (False, 3, 0)  # explicit values are kept
    assert tiny_config(intra_op_threads=-1).validate().train.intra_op_threads == -1  # "auto", resolved at run time
    with pytest.raises(ConfigError, match="intra_op_threads"):
        tiny_config(intra_op_threads=-2).validate()


def test_keep_steps_are_saved_and_kept(tmp_path):
    """Checkpoints at train.keep_steps are written (off the save_every schedule) and survive keep_checkpoints."""
    workdir = str(tmp_path / "run")
    training.run(tiny_config(max_iter=4, save_every=3, keep_checkpoints=1, keep_steps=(1, 3)), workdir,
                 print_fn=quiet)
    directory = checkpointing.checkpoint_dir(workdir)
    assert [f.step for f in checkpointing.discover(directory)] == [4]
    assert [f.step for f in checkpointing.discover(os.path.join(directory, checkpointing.KEPT))] == [3, 1]
    model = training.build_model(tiny_config())
    path, step = checkpointing.restore_ema_only(model, workdir, os.path.join(directory, "kept", "ckpt-1"))
    assert step == 1


def test_live_weights_restore_into_the_ema_networks(tmp_path):
    """``weights="live"`` puts the trained encoders/decoders (not their average) where evaluation and export read."""
    workdir = str(tmp_path / "run")
    trained = training.run(tiny_config(max_iter=4, ema_start=1), workdir, print_fn=quiet)["model"]
    for weights, source in (("live", "enc_{}"), ("ema", "ema_enc_{}"), ("live", "dec_{}"), ("ema", "ema_dec_{}")):
        model = training.build_model(tiny_config())
        checkpointing.restore_ema_only(model, workdir, weights=weights)
        part = "enc" if "enc" in source else "dec"
        for n in model.names:
            got = getattr(model, f"ema_{part}_{n}").get_weights()
            want = getattr(trained, source.format(n)).get_weights()
            other = getattr(trained, (source[4:] if source.startswith("ema_") else "ema_" + source).format(n))
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), (weights, source, n)
            assert not all(np.array_equal(a, b) for a, b in zip(got, other.get_weights())), (weights, source, n)
    with pytest.raises(MMALIError, match="weights must be one of"):
        checkpointing.restore_ema_only(training.build_model(tiny_config()), workdir, weights="best")
