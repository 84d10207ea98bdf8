"""MultiMNIST (issue 4): rotated modalities, tuples of different same-class images, one M=3 training step."""

import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from mmali_tf import training, training_data
from mmali_tf.config import ExperimentConfig
from tests.test_training import quiet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("MMALI_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))


def config_from_flagfile(name, *extra):
    """Parse a flagfile exactly as the entry point does (flags are read only here, in the test)."""
    from mmali_tf import cli, train  # noqa: F401  (defines the flags)

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["prog", f"--flagfile=flags/{name}.cfg", "--workdir=unused", f"--data_dir={DATA_DIR}", *extra])
        return cli.config_from_flags()
    finally:
        os.chdir(cwd)
        flags.FLAGS.unparse_flags()


@pytest.fixture(scope="module")
def m4_config() -> ExperimentConfig:
    return config_from_flagfile("multimnist_m4")


def test_flagfiles_follow_the_reference_readme(m4_config):
    assert [m.quarter_turns for m in m4_config.model.modalities] == [0, 1, 2, 3]
    assert m4_config.model.latent_dim == 20 and m4_config.model.style_dim == 10
    assert m4_config.loss.lambda_unimodal == 0.1 and m4_config.loss.lambda_x_rec == 0 and not m4_config.loss.joint_rec
    joint = config_from_flagfile("multimnist_m2_joint")
    assert joint.model.discriminator == "joint" and len(joint.model.modalities) == 2


def test_rotation_is_np_rot90_and_tf_rot90(m4_config):
    splits = training_data.load_modalities(m4_config, "test")
    upright = splits["mnist0"].images
    for spec in m4_config.model.modalities:
        rotated = splits[spec.name].images
        k = spec.quarter_turns
        np.testing.assert_array_equal(rotated[:50], np.stack([np.rot90(img, k) for img in upright[:50]]))
        np.testing.assert_array_equal(rotated[:50], tf.image.rot90(upright[:50], k).numpy())
        np.testing.assert_array_equal(splits[spec.name].labels, splits["mnist0"].labels)
    # Counter-clockwise: the top row of the upright image becomes the left column after one quarter turn.
    np.testing.assert_array_equal(splits["mnist90"].images[0][:, 0, 0], upright[0][0, ::-1, 0])


def test_tuples_hold_different_images_of_one_class(m4_config):
    splits = training_data.load_modalities(m4_config, "test")
    pairs = training_data.make_pairs(m4_config, splits, "test")
    names = m4_config.model.names
    assert len(pairs[names[0]]) == 10000 * 30
    labels = np.stack([splits[n].labels[pairs[n]] for n in names])
    assert (labels == labels[0]).all()
    same_image = np.mean(pairs[names[0]] == pairs[names[1]])
    assert same_image < 0.01  # independent permutations per modality, not one image under M rotations


def test_m3_trains_one_step_factorized_and_joint(tmp_path):
    for name in ("multimnist_m3", "multimnist_m3_joint"):
        config = config_from_flagfile(name, "--batch_size=8", "--data_multiplication=1", "--max_iter=1", "--noxla",
                                      "--log_every=1")
        model = training.run(config, str(tmp_path / name), print_fn=quiet)["model"]
        assert int(model.g_optimizer.iterations.numpy()) == 1
        if name.endswith("joint"):
            assert model.d_joint_xz.output_shape == (None, 4)
        else:
            assert model.d0_mnist180.output_shape == (None, 4)
