"""The CUB experiment as the authors build it (reference sections 3.5 and 4.3): flags/cub.cfg, the networks and
their parameter counts, the loss terms, the mapping of every tensor onto the authors' state_dict names, and the CUB
data as the dataset registry pairs it."""

import os

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import training_data
from mmali_tf.data import cub_features as cf
from mmali_tf.data import datasets
from mmali_tf.model import MMALI, count_parameters
from tests.golden import reference_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THEIR_KEYS = ("0cap", "1img")


def cub_config(**overrides):
    """flags/cub.cfg as the training command line reads it."""
    from absl import flags

    from mmali_tf import cli, train  # noqa: F401  (train defines the flags)

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        flags.FLAGS(["train", "--flagfile=flags/cub.cfg", "--workdir=/unused", "--noxla",
                     *(f"--{k}={v}" for k, v in overrides.items())])
        return cli.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
        os.chdir(cwd)


@pytest.fixture(scope="module")
def model():
    return MMALI(cub_config())


def test_flagfile_is_the_readme_configuration():
    cfg = cub_config()
    m, loss = cfg.model, cfg.loss
    assert [(s.name, s.kind, s.dataset, s.rec_weight) for s in m.modalities] == [
        ("caption", "cub_caption", "cub_caption", 1000.0), ("image", "cub_image", "cub_image", 1.0)]
    assert (m.latent_dim, m.style_dim, m.discriminator, m.joint_architecture) == (64, 32, "factorized",
                                                                                  "feature_concat")
    assert (loss.lambda_unimodal, loss.lambda_x_rec, loss.lambda_s_rec, loss.lambda_c_rec, loss.joint_rec) == (
        1.0, 1.0, 0.0, 0.0, False)
    t = cfg.train
    assert (t.batch_size, t.max_iter, t.lr, t.beta1, t.beta2, t.ema_start, t.ema_decay) == (
        64, 250_000, 2e-4, 0.5, 0.999, 50_000, 0.9999)


def test_parameter_counts_are_the_reference_architecture(model):
    counts = {net.name: count_parameters([net]) for net in model.generators + model.discriminators}
    assert counts == {"enc_caption": 705_536, "dec_caption": 698_240, "enc_image": 2_787_200, "dec_image": 2_772_736,
                      "d0_caption": 863_491, "d1_caption": 862_465, "d0_image": 3_166_723, "d1_image": 3_165_697,
                      "d_joint": 3_985_921}
    ema = {net.name: count_parameters([net]) for net in list(model.ema_encoders.values())
           + list(model.ema_decoders.values())}
    assert ema == {"ema_enc_caption": 0, "ema_enc_image": 0, "ema_dec_caption": 0, "ema_dec_image": 0}  # frozen
    assert sum(int(np.prod(w.shape)) for w in model.ema_enc_caption.weights) == 705_536


def test_loss_terms_are_the_readme_configurations(model):
    d_terms, g_terms = model.loss_term_names()
    assert d_terms == ["d0_caption/encoder", "d0_caption/decoder", "d1_caption", "d0_image/encoder",
                       "d0_image/decoder", "d1_image", "dj", "d0_caption/content_of_image", "d0_image/content_of_caption"]
    # Their keys' order: unimodal adversarial and the per-modality autoencoding (no joint_rec, no cycles).
    assert g_terms == ["d0_caption/encoder", "d0_caption/decoder", "d0_image/encoder", "d0_image/decoder",
                       "caption/reconstruction", "image/reconstruction", "joint/encoder_caption",
                       "joint/encoder_image", "joint/decoder", "d0_caption/content_of_image",
                       "d0_image/content_of_caption"]


def test_reconstruction_weights_are_the_mod_coeff(model):
    """One G step's terms on zero inputs and a zero-noise draw: x_rec = mod_coeff * lambda_x * mean((G(E(x)) - x)^2)."""
    from mmali_tf.noise import StepNoise
    from mmali_tf.objective import generator_losses

    cfg = model.config
    rng = np.random.default_rng(0)
    batches = {call: {"caption": tf.constant(rng.normal(0, 0.15, (4, 1024)), tf.float32),
                      "image": tf.constant(np.maximum(rng.normal(0.3, 0.8, (4, 2048)), 0), tf.float32)}
               for call in ("d_unimodal", "d_joint", "g_unimodal", "g_joint")}
    terms = generator_losses(model.networks, batches, StepNoise(0, 0), cfg.model, cfg.loss)
    x = batches["g_unimodal"]
    for name, weight in (("caption", 1000.0), ("image", 1.0)):
        mean, logvar = tf.split(model.encoders[name](x[name], training=True), 2, axis=-1)
        z = mean + tf.exp(logvar / 2) * StepNoise(0, 0).normal(f"g_unimodal/{name}/posterior", tf.shape(mean))
        expected = weight * float(tf.reduce_mean(tf.square(model.decoders[name](z, training=True) - x[name])))
        assert float(terms[f"{name}/reconstruction"]) == pytest.approx(expected, rel=1e-5)


def _their_state_dict_keys():
    """The authors' parameter names for train_mmali_cap_img.py's FactorModel (models/cub_*.py module layout)."""
    linear = (".weight", ".bias")
    sn = (".weight_orig", ".bias", ".weight_u", ".weight_v")
    keys = set()
    for key in THEIR_KEYS:
        keys |= {f"encoders.{key}.module.model.{i}{p}" for i in (0, 2, 4, 6) for p in linear}
        keys |= {f"decoders.{key}.model.{i}{p}" for i in (0, 2, 4, 6) for p in linear}
        for d in (0, 1):
            prefix = f"xz_discriminators.{key}.{d}"
            keys |= {f"{prefix}.x_discrimination.{i}{p}" for i in (0, 2, 4, 6) for p in sn}
            keys |= {f"{prefix}.z_discrimination.{i}{p}" for i in (0, 2) for p in sn}
            keys |= {f"{prefix}.discriminator.{i}{p}" for i in (0, 2) for p in sn}
    for branch in ("x1_discrimination", "x2_discrimination"):
        keys |= {f"joint_discriminator.{branch}.{i}{p}" for i in (0, 2, 4, 6) for p in sn}
    keys |= {f"joint_discriminator.joint_discriminator.{i}{p}" for i in (0, 2, 4) for p in sn}
    return keys


def test_every_tensor_maps_onto_the_authors_names(model):
    pairs = reference_port.tensor_pairs(model, THEIR_KEYS)
    ours = {p.key.replace("/", ".", 1) for p in pairs}
    assert ours == _their_state_dict_keys()
    shapes = {p.key: tuple(p.to_theirs(p.variable.numpy()).shape) for p in pairs}
    assert shapes["encoders.0cap/module.model.0.weight"] == (512, 1024)  # torch Linear weights are [out, in]
    assert shapes["xz_discriminators.1img.0/discriminator.2.weight_orig"] == (3, 512)
    assert shapes["joint_discriminator/joint_discriminator.0.weight_orig"] == (512, 384)
    # Round trip: their tensors (random, in their layout) load into every live and EMA variable and read back.
    rng = np.random.default_rng(0)
    weights = {p.key: rng.standard_normal(shapes[p.key]).astype(np.float32) for p in pairs}
    fresh = MMALI(model.config)
    reference_port.load_reference_weights(fresh, THEIR_KEYS, weights)
    back = reference_port.state_in_their_layout(fresh, THEIR_KEYS)
    for key, value in weights.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    np.testing.assert_array_equal(fresh.ema_enc_image.get_weights()[0], fresh.enc_image.get_weights()[0])


def test_vector_kind_has_no_authors_counterpart():
    from mmali_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="kind 'vector' has no counterpart in the authors' code"):
        reference_port.reference_names("vector")


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    from mmali_tf.tools import make_cub_standin

    out = tmp_path_factory.mktemp("cub")
    fingerprints = make_cub_standin.write_standin(str(out), train_images=150, test_images=50, print_fn=lambda _: None)
    assert sorted(fingerprints) == ["test", "train"]
    return str(out)


def test_datasets_pair_every_caption_with_its_image(standin):
    cfg = cub_config(data_dir=standin)
    splits = training_data.load_modalities(cfg, "train")
    cub = cf.load_cub_features(standin, "train")
    assert splits["caption"].examples.shape == (1500, 1024) and splits["image"].examples.shape == (150, 2048)
    pairs = training_data.make_pairs(cfg, splits, "train")
    np.testing.assert_array_equal(pairs["caption"], np.arange(1500))
    np.testing.assert_array_equal(pairs["image"], np.arange(1500) // 10)
    t = 437  # pair t = (caption t mod 10 of image t // 10, image t // 10)
    np.testing.assert_array_equal(splits["caption"].examples[pairs["caption"][t]], cub.caption_features[43, 7])
    np.testing.assert_array_equal(splits["image"].examples[pairs["image"][t]], cub.image_features[43])
    np.testing.assert_array_equal(splits["caption"].labels[pairs["caption"]], splits["image"].labels[pairs["image"]])
    assert training_data.pairing_summary(cfg, pairs) == (
        "1,500 pairs by row; distinct examples per modality: caption 1,500 (each once), image 150 (each 10x)")
    assert datasets.data_label("cub_caption", splits["caption"].source) == "CUB stand-in captions"
    assert splits["caption"].fingerprint != splits["image"].fingerprint
    # The standard split: 8,855 / 2,933 images give 88,550 / 29,330 pairs.
    assert [len(cf.pair_image_indices(n)) for n in (cf.CUB_TRAIN_IMAGES, cf.CUB_TEST_IMAGES)] == [88_550, 29_330]


def test_pipeline_feeds_features_unscaled(standin):
    cfg = cub_config(data_dir=standin, batch_size=5)
    splits = training_data.load_modalities(cfg, "train")
    pairs = training_data.make_pairs(cfg, splits, "train")
    batch = next(iter(training_data.training_pipeline(cfg, splits, pairs, start_step=0)))
    caption, image = batch["g_joint"]["caption"].numpy(), batch["g_joint"]["image"].numpy()
    assert caption.dtype == np.float32 and caption.shape == (5, 1024) and image.shape == (5, 2048)
    rows = [np.flatnonzero((splits["caption"].examples == c).all(axis=1))[0] for c in caption]  # found unchanged
    np.testing.assert_array_equal(image, splits["image"].examples[np.asarray(rows) // 10])  # and still paired
