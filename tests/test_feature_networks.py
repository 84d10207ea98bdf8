"""Feature-vector networks (networks/features.py): CUB parameter counts, layer types, init, forward pass, x-parts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.errors import ConfigError
from mmali_tf.networks import features as ft
from mmali_tf.networks.spectral_norm import SNDense

LATENT = 64


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _dense_params(widths):
    """Parameters of a chain of fully connected layers through ``widths`` (kernel + bias per layer)."""
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


@pytest.fixture(scope="module")
def nets():
    return {
        "enc_cap": ft.CAPTION_WIDTHS.encoder(LATENT, "enc_cap"),
        "dec_cap": ft.CAPTION_WIDTHS.decoder(LATENT, "dec_cap"),
        "enc_img": ft.IMAGE_WIDTHS.encoder(LATENT, "enc_img"),
        "dec_img": ft.IMAGE_WIDTHS.decoder(LATENT, "dec_img"),
        "d0_cap": ft.CAPTION_WIDTHS.xz_discriminator(LATENT, 3, "d0_cap"),
        "d1_cap": ft.CAPTION_WIDTHS.xz_discriminator(LATENT, 1, "d1_cap"),
        "d0_img": ft.IMAGE_WIDTHS.xz_discriminator(LATENT, 3, "d0_img"),
        "d1_img": ft.IMAGE_WIDTHS.xz_discriminator(LATENT, 1, "d1_img"),
        "joint": ft.CUBJointDiscriminator("joint"),
    }


def test_parameter_counts_match_the_reference(nets):
    expected = {"enc_cap": 705_536, "dec_cap": 698_240, "enc_img": 2_787_200, "dec_img": 2_772_736,
                "joint": 3_985_921}
    assert {k: _trainable(nets[k]) for k in expected} == expected


def test_xz_discriminator_counts_from_the_reference_layer_list(nets):
    # cub_caption.XZDiscriminatorFT: x 1024-512-256-128-128, z L-128-128, head 256-512-out.
    # cub_image.XZDiscriminatorFT: x 2048-1024-512-256-256, z L-256-256, head 512-512-out.
    for key, x_chain, z_chain, head_in in (("cap", (1024, 512, 256, 128, 128), (LATENT, 128, 128), 256),
                                           ("img", (2048, 1024, 512, 256, 256), (LATENT, 256, 256), 512)):
        for out_dim, prefix in ((3, "d0"), (1, "d1")):
            count = _dense_params(x_chain) + _dense_params(z_chain) + _dense_params((head_in, 512, out_dim))
            assert _trainable(nets[f"{prefix}_{key}"]) == count
    assert (_trainable(nets["d0_cap"]), _trainable(nets["d1_cap"])) == (863_491, 862_465)
    assert (_trainable(nets["d0_img"]), _trainable(nets["d1_img"])) == (3_166_723, 3_165_697)


def test_reference_width_rule_gives_cubs_widths():
    assert ft.FeatureWidths.from_feature_dim(1024) == ft.CAPTION_WIDTHS
    assert ft.FeatureWidths.from_feature_dim(2048) == ft.IMAGE_WIDTHS
    assert ft.FeatureWidths.from_feature_dim(64).x_hidden == (32, 16, 8, 8)
    with pytest.raises(ConfigError):
        ft.FeatureWidths.from_feature_dim(100)


def test_layer_types_activations_and_init(nets):
    for key in ("enc_cap", "dec_img"):
        dense = [layer for layer in nets[key].layers if layer.trainable_weights]
        assert all(type(layer) is keras.layers.Dense for layer in dense)  # no spectral norm outside discriminators
        assert [layer.activation.__name__ for layer in dense] == ["elu"] * 3 + ["linear"]  # linear output
    for key in ("d0_img", "joint"):
        weighted = [layer for layer in nets[key].layers if layer.trainable_weights]
        assert all(isinstance(layer, SNDense) for layer in weighted)
        slopes = {layer.negative_slope for layer in nets[key].layers if isinstance(layer, keras.layers.LeakyReLU)}
        assert slopes == {0.2}
    for key in ("enc_img", "d0_img"):
        first = next(layer for layer in nets[key].layers if layer.trainable_weights)
        assert first.kernel.shape == (2048, 1024)
        assert abs(float(np.std(first.kernel.numpy())) - 0.02) < 5e-4 and abs(float(np.mean(first.kernel))) < 5e-4
        assert all(not np.any(layer.bias.numpy()) for layer in nets[key].layers if getattr(layer, "bias", None)
                   is not None)


def test_encoder_forward_is_an_elu_mlp(nets):
    model = nets["enc_cap"]
    x = np.random.default_rng(0).normal(size=(3, 1024)).astype(np.float32)
    h = x.astype(np.float64)
    dense = [layer for layer in model.layers if layer.trainable_weights]
    for i, layer in enumerate(dense):
        h = h @ layer.kernel.numpy() + layer.bias.numpy()
        if i < len(dense) - 1:
            h = np.where(h > 0, h, np.expm1(h))
    out = model(x).numpy()
    assert out.shape == (3, 2 * LATENT)
    np.testing.assert_allclose(out, h, rtol=1e-4, atol=1e-6)


def _sn_branch_numpy(layers, x):
    h = x.astype(np.float64)
    for layer in layers:
        h = h @ layer.normalized_kernel(training=False).numpy() + layer.bias.numpy()
        h = np.where(h > 0, h, 0.2 * h)
    return h


@pytest.mark.parametrize("key, index, width, in_dim", [("d0_cap", 0, 128, 1024), ("d1_img", 0, 256, 2048),
                                                       ("joint", 0, 128, 1024), ("joint", 1, 256, 2048)])
def test_x_part_is_the_x_branch_up_to_the_concat(nets, key, index, width, in_dim):
    model = nets[key]
    part = ft.x_part(model, index)
    prefix = f"{model.name}_x" if key != "joint" else f"{model.name}_x{index}"
    branch = [model.get_layer(f"{prefix}_fc{i}") for i in range(1, 5)]
    assert part.output.shape == (None, width)
    assert {id(w) for w in part.trainable_weights} == {id(w) for layer in branch for w in layer.trainable_weights}
    x = np.random.default_rng(index).normal(size=(2, in_dim)).astype(np.float32)
    expected = _sn_branch_numpy(branch, x)  # large values: u, v are still the random initial ones, sigma is small
    np.testing.assert_allclose(part(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    with pytest.raises(ConfigError):
        ft.x_part(model, 5)


def test_joint_critic_is_concat_branches_then_head(nets):
    model = nets["joint"]
    assert [tuple(t.shape) for t in model.inputs] == [(None, 1024), (None, 2048)]
    assert model.get_layer("joint_concat").output.shape == (None, 384)
    rng = np.random.default_rng(3)
    cap, img = rng.normal(size=(2, 1024)).astype(np.float32), rng.normal(size=(2, 2048)).astype(np.float32)
    h = np.concatenate([ft.x_part(model, 0)(cap).numpy(), ft.x_part(model, 1)(img).numpy()], axis=1)
    h = _sn_branch_numpy([model.get_layer(f"joint_head_fc{i}") for i in (1, 2)], h)
    out = model.get_layer("joint_head_out")
    expected = h @ out.normalized_kernel(training=False).numpy() + out.bias.numpy()
    np.testing.assert_allclose(model([cap, img], training=False).numpy(), expected, rtol=1e-4,
                               atol=1e-5 * np.abs(expected).max())


def test_generic_builders_for_another_feature_size():
    enc = ft.FeatureEncoder(40, 8, (20, 10), name="enc40")
    dec = ft.FeatureDecoder(8, 40, (10, 20), name="dec40")
    disc = ft.FeatureXZDiscriminator(40, 8, 3, x_hidden=(16,), z_hidden=(4,), head_hidden=(), name="d40")
    assert enc.output.shape == (None, 16) and dec.output.shape == (None, 40) and disc.output.shape == (None, 3)
    assert _trainable(disc) == _dense_params((40, 16)) + _dense_params((8, 4)) + _dense_params((20, 3))
    joint = ft.FeatureJointDiscriminator((40, 12, 7), ((8,), (4,), (2, 2)), (6,), name="j3")
    assert joint.get_layer("j3_concat").output.shape == (None, 14)
    z = tf.zeros([5, 8])
    assert dec(z).shape == (5, 40)
    with pytest.raises(ConfigError):
        ft.FeatureEncoder(40, 8, (20, 0))
    with pytest.raises(ConfigError):
        ft.FeatureJointDiscriminator((40,), ((8,),))
    with pytest.raises(ConfigError):
        ft.FeatureJointDiscriminator((40, 12), ((8,),))
