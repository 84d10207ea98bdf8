"""The assembled objective on tiny constant networks, where every term is known in closed form."""

import math

import pytest
import tensorflow as tf

from mmali_tf.config import LossConfig, ModalitySpec, ModelConfig
from mmali_tf.noise import StepNoise
from mmali_tf.objective import Networks, cross_content_label, discriminator_losses, generator_losses

B, L, S = 4, 6, 2
SHAPE = (3, 3, 1)


class FunctionCritic:
    """A critic that scores each tuple with ``fn(*inputs)``."""

    def __init__(self, fn):
        self.fn = fn

    def score(self, tuples):
        return {name: self.fn(*inputs) for name, inputs in tuples.items()}


def constant_networks(names, d0_logits=None, joint_logit=0.0, joint_xz=False):
    """Encoders give z = 0 (mean 0, logvar 0), decoders give 0.5, discriminators give fixed logits."""
    num = len(names)
    d0_logits = d0_logits or [0.0] * (num + 1)

    def encoder(x, training=None):
        return tf.zeros([tf.shape(x)[0], 2 * L])

    def decoder(z, training=None):
        return tf.fill(tf.concat([tf.shape(z)[:1], SHAPE], 0), 0.5)

    def d0(x, z):
        return tf.tile(tf.constant([d0_logits]), [tf.shape(x)[0], 1])

    def d1(x, z):
        return tf.zeros([tf.shape(x)[0], 1])

    def joint(*xs):
        return tf.fill([tf.shape(xs[0])[0], 1], joint_logit)

    def d_joint_xz(*inputs):
        return tf.zeros([tf.shape(inputs[0])[0], num + 1])

    if joint_xz:
        return Networks({n: encoder for n in names}, {n: decoder for n in names},
                        d_baseline=FunctionCritic(d_joint_xz))
    return Networks({n: encoder for n in names}, {n: decoder for n in names}, {n: FunctionCritic(d0) for n in names},
                    {n: FunctionCritic(d1) for n in names}, FunctionCritic(joint))


def model_config(names, discriminator="factorized"):
    return ModelConfig(modalities=tuple(ModalitySpec(n, "mnist", "mnist") for n in names), latent_dim=L, style_dim=S,
                       discriminator=discriminator, joint_architecture="concat")


def batches(names):
    calls = ("d_unimodal", "d_joint", "g_unimodal", "g_joint")
    return {c: {n: tf.random.stateless_uniform((B,) + SHAPE, seed=[i, j]) for j, n in enumerate(names)}
            for i, c in enumerate(calls)}


README = LossConfig(lambda_unimodal=0.1, lambda_x_rec=0.05, lambda_s_rec=0.05, lambda_c_rec=0.05, joint_rec=True)


def test_term_names_for_mnist_svhn():
    names = ("mnist", "svhn")
    nets = constant_networks(names)
    d = discriminator_losses(nets, batches(names), StepNoise(0, 0), model_config(names), README)
    g = generator_losses(nets, batches(names), StepNoise(0, 0), model_config(names), README)
    # docs/objective.md sections 3-4: 9 D terms, 14 G terms, in the authors' order.
    assert list(d) == ["d0_mnist/encoder", "d0_mnist/decoder", "d1_mnist", "d0_svhn/encoder", "d0_svhn/decoder",
                       "d1_svhn", "dj", "d0_mnist/content_of_svhn", "d0_svhn/content_of_mnist"]
    assert list(g) == ["d0_mnist/encoder", "d0_mnist/decoder", "d0_svhn/encoder", "d0_svhn/decoder",
                       "mnist/style_cycle", "svhn/style_cycle", "joint/encoder_mnist", "joint/encoder_svhn",
                       "joint/decoder", "d0_mnist/content_of_svhn", "d0_svhn/content_of_mnist", "joint/content_cycle",
                       "mnist/joint_reconstruction", "svhn/joint_reconstruction"]


def d0_tuples(names, own):
    """D0's M + 1 classes as our term names call them."""
    return ["encoder", "decoder"] + [f"content_of_{k}" for k in names if k != own]


@pytest.mark.parametrize("num", [2, 3])
def test_discriminator_terms_with_uninformative_discriminators(num):
    names = tuple(f"m{i}" for i in range(num))
    terms = discriminator_losses(constant_networks(names), batches(names), StepNoise(0, 0), model_config(names),
                                 LossConfig())
    # All-zero logits: each (M+1)-way CE is log(M+1), each binary pair is 2 log 2.
    for n in names:
        for tuple_name in d0_tuples(names, n):
            assert terms[f"d0_{n}/{tuple_name}"].numpy() == pytest.approx(math.log(num + 1), abs=1e-5)
        assert terms[f"d1_{n}"].numpy() == pytest.approx(2 * math.log(2), abs=1e-5)
    assert terms["dj"].numpy() == pytest.approx(2 * math.log(2), abs=1e-5)
    assert len(terms) == num * (num + 2) + 1


@pytest.mark.parametrize("num", [2, 3])
def test_generator_terms_with_uninformative_discriminators(num):
    names = tuple(f"m{i}" for i in range(num))
    loss_cfg = LossConfig(lambda_unimodal=0.1)
    terms = generator_losses(constant_networks(names), batches(names), StepNoise(0, 0), model_config(names), loss_cfg)
    w_joint, w_uni = 2 / (num + 1), 0.1 * 2 / (num + 1)
    # Zero logits everywhere: NS over K classes is log K; the factorized joint score is also all zeros.
    for k in names:
        assert terms[f"joint/encoder_{k}"].numpy() == pytest.approx(w_joint * math.log(num + 1), abs=1e-5)
    assert terms["joint/decoder"].numpy() == pytest.approx(w_joint * math.log(num + 1), abs=1e-5)
    for n in names:
        for tuple_name in d0_tuples(names, n):
            assert terms[f"d0_{n}/{tuple_name}"].numpy() == pytest.approx(w_uni * math.log(num + 1), abs=1e-5)
    assert len(terms) == num + 1 + num * (num + 1)


def test_generator_joint_score_uses_the_joint_critic():
    """With D0 logits [a, 0, ...] and J != 0, the decoder logit is -(J + M a); check joint_p by hand."""
    names = ("x", "y")
    nets = constant_networks(names, d0_logits=[1.0, 0.0, 0.0], joint_logit=0.5)
    terms = generator_losses(nets, batches(names), StepNoise(0, 0), model_config(names), LossConfig())
    logits = tf.constant([[0.0, 0.0, -(0.5 + 2 * 1.0)]])
    from mmali_tf import losses

    assert terms["joint/decoder"].numpy() == pytest.approx((2 / 3) * losses.non_saturating(logits, 2).numpy(),
                                                           abs=1e-6)
    assert terms["joint/encoder_x"].numpy() == pytest.approx((2 / 3) * losses.non_saturating(logits, 0).numpy(),
                                                             abs=1e-6)


def test_reconstruction_terms_by_hand():
    """Decoders output 0.5 everywhere, so each x reconstruction MSE is mean((0.5 - x)^2)."""
    names = ("a", "b")
    data = batches(names)
    loss_cfg = LossConfig(lambda_x_rec=0.05, lambda_s_rec=0.0, lambda_c_rec=0.0, joint_rec=False)
    terms = generator_losses(constant_networks(names), data, StepNoise(0, 0), model_config(names), loss_cfg)
    for n in names:
        expected = 0.05 * tf.reduce_mean(tf.square(0.5 - data["g_unimodal"][n])).numpy()
        assert terms[f"{n}/reconstruction"].numpy() == pytest.approx(expected, rel=1e-6)
    joint_cfg = LossConfig(lambda_x_rec=0.05, joint_rec=True)
    terms = generator_losses(constant_networks(names), data, StepNoise(0, 0), model_config(names), joint_cfg)
    for n in names:
        expected = 0.05 * tf.reduce_mean(tf.square(0.5 - data["g_joint"][n])).numpy()
        assert terms[f"{n}/joint_reconstruction"].numpy() == pytest.approx(expected, rel=1e-6)
        assert f"{n}/reconstruction" not in terms


def test_cross_content_labels_follow_modality_order():
    names = ("a", "b", "c", "d")
    assert [cross_content_label(names, "b", o) for o in ("a", "c", "d")] == [2, 3, 4]
    assert [cross_content_label(names, "d", o) for o in ("a", "b", "c")] == [2, 3, 4]


def test_joint_baseline_terms():
    names = ("a", "b", "c")
    nets = constant_networks(names, joint_xz=True)
    cfg = model_config(names, discriminator="joint")
    d = discriminator_losses(nets, batches(names), StepNoise(0, 0), cfg, LossConfig())
    g = generator_losses(nets, batches(names), StepNoise(0, 0), cfg, LossConfig())
    # Both fresh batches contribute (the reference discards the first), M + 1 classes each.
    assert len(d) == len(g) == 2 * 4
    assert list(d) == [f"d_{b}/{t}" for b in ("unimodal", "joint") for t in ("encoder_a", "encoder_b", "encoder_c",
                                                                           "decoder")]
    for value in d.values():
        assert value.numpy() == pytest.approx(math.log(4), abs=1e-5)
    for value in g.values():
        assert value.numpy() == pytest.approx(0.5 * math.log(4), abs=1e-5)


def test_noise_is_a_function_of_seed_step_and_stream():
    a = StepNoise(1, 5).normal("x", [3])
    assert tf.reduce_all(a == StepNoise(1, 5).normal("x", [3]))
    assert not tf.reduce_all(a == StepNoise(1, 6).normal("x", [3]))
    assert not tf.reduce_all(a == StepNoise(2, 5).normal("x", [3]))
    assert not tf.reduce_all(a == StepNoise(1, 5).normal("y", [3]))
    perm = StepNoise(0, 3).permutation("p", 10).numpy()
    assert sorted(perm) == list(range(10))
