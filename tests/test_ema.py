"""The EMA schedule at its boundary, counted as the authors count it.

Their loop runs ``n_iter = 0, 1, ...`` and after iteration ``n_iter`` calls ``model_ema.lerp(model, 0.0 if
n_iter <= ema_start else beta)``: a copy up to and including ``n_iter == ema_start``, the first decay at
``ema_start + 1``. Here ``n_iter`` is the number of iterations completed before the step (``d_optimizer.iterations``
read before the discriminator update).
"""

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import training
from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig
from mmali_tf.kinds.builders import IMAGE_SHAPES

EMA_START = 4
DECAY = 0.9999


def model():
    config = ExperimentConfig(
        name="ema", data=DataConfig(),
        model=ModelConfig(modalities=(ModalitySpec("a", "mnist", "mnist"), ModalitySpec("b", "mnist", "mnist")),
                          latent_dim=4, style_dim=2, joint_architecture="concat"),
        loss=LossConfig(lambda_unimodal=0.1),
        train=TrainConfig(batch_size=4, ema_start=EMA_START, ema_decay=DECAY, xla=False)).validate()
    return training.build_model(config)


def batches(step):
    shape = (4,) + IMAGE_SHAPES["mnist"]
    return {c: {n: tf.random.stateless_uniform(shape, seed=[step, 10 * i + j]) for j, n in enumerate("ab")}
            for i, c in enumerate(("d_unimodal", "d_joint", "g_unimodal", "g_joint"))}


def generator_weights(m, ema):
    nets = list(m.ema_encoders.values()) + list(m.ema_decoders.values()) if ema else m.generators
    return [w.numpy() for net in nets for w in net.weights]


@pytest.fixture(scope="module")
def steps_around_the_boundary():
    """(EMA before, live after, EMA after) for the real train_steps at n_iter = ema_start - 1 .. ema_start + 2."""
    m = model()
    for opt in (m.d_optimizer, m.g_optimizer):
        opt.iterations.assign(EMA_START - 1)
    records = {}
    for n_iter in range(EMA_START - 1, EMA_START + 3):
        assert int(m.d_optimizer.iterations.numpy()) == n_iter
        ema_before = generator_weights(m, ema=True)
        m.train_step(batches(n_iter))
        records[n_iter] = (ema_before, generator_weights(m, ema=False), generator_weights(m, ema=True))
    return records


@pytest.mark.parametrize("offset", [-1, 0])
def test_copy_up_to_and_including_ema_start(steps_around_the_boundary, offset):
    _, live, ema = steps_around_the_boundary[EMA_START + offset]
    for a, b in zip(live, ema):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("offset", [1, 2])
def test_decay_from_the_next_iteration(steps_around_the_boundary, offset):
    ema_before, live, ema = steps_around_the_boundary[EMA_START + offset]
    moved = 0
    for old, new, shadow in zip(ema_before, live, ema):
        np.testing.assert_allclose(shadow, DECAY * old + (1 - DECAY) * new, rtol=0, atol=1e-6)
        moved += int(np.any(np.abs(shadow - new) > 1e-6))
    assert moved > 0  # not a copy


def test_update_ema_alone_at_the_boundary():
    m = model()
    live = [v for net in m.generators for v in net.weights]
    for v in live:
        v.assign(v + 1.0)
    m.update_ema(tf.constant(EMA_START, tf.int64))
    for a, b in zip(generator_weights(m, ema=False), generator_weights(m, ema=True)):
        np.testing.assert_array_equal(a, b)
    before = generator_weights(m, ema=True)
    for v in live:
        v.assign(v + 1.0)
    m.update_ema(tf.constant(EMA_START + 1, tf.int64))
    for old, shadow in zip(before, generator_weights(m, ema=True)):
        np.testing.assert_allclose(shadow, old + (1 - DECAY), rtol=0, atol=1e-5)
