"""bf16 mixed precision: what stays float32, and that a step computes nearly what the float32 step computes."""

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import configs, distribution, training
from mmali_tf.kinds.builders import IMAGE_SHAPES
from mmali_tf.networks.spectral_norm import SNConv2D, SNDense


def model(precision):
    config = configs.build("mnist_svhn", {"train.precision": precision, "train.batch_size": 8})
    return training.build_model(config)


def batches(m, seed=0):
    return {c: {s.name: tf.random.stateless_uniform((8,) + IMAGE_SHAPES[s.kind], seed=[seed, i * 10 + j])
                for j, s in enumerate(m.config.model.modalities)}
            for i, c in enumerate(("d_unimodal", "d_joint", "g_unimodal", "g_joint"))}


@pytest.fixture(scope="module")
def pair():
    fp32, bf16 = model("fp32"), model("bf16")
    for a, b in zip(fp32.variables, bf16.variables):
        b.assign(a)
    return fp32, bf16


def test_what_stays_float32(pair):
    _, bf16 = pair
    assert all(v.dtype == "float32" for v in bf16.variables)
    assert all(str(v.dtype) in ("float32", "int64") for opt in (bf16.d_optimizer, bf16.g_optimizer)
               for v in opt.variables)
    for net in bf16.generators + bf16.discriminators:
        assert net.dtype_policy.compute_dtype == "bfloat16", net.name
    for net in list(bf16.ema_encoders.values()) + list(bf16.ema_decoders.values()):
        assert net.dtype_policy.compute_dtype == "float32", net.name  # evaluation, samples and export in float32
    layer = next(l for d in bf16.discriminators for l in d.layers if isinstance(l, (SNDense, SNConv2D)))
    assert layer.normalized_kernel(training=False).dtype == tf.float32  # power iteration and sigma in float32
    assert layer.compute_kernel(training=False).dtype == tf.bfloat16


def test_a_bf16_step_is_close_to_the_float32_step(pair):
    fp32, bf16 = pair
    data = batches(fp32)
    out32 = {k: float(v) for k, v in fp32.train_step(data).items()}
    out16 = {k: float(v) for k, v in bf16.train_step(data).items()}
    assert out32.keys() == out16.keys()
    for key in ("d_loss", "g_loss"):
        assert out16[key] == pytest.approx(out32[key], rel=3e-2), key
    assert out16["d_loss"] != out32["d_loss"]  # it really computed in bfloat16
    for a, b in zip(fp32.variables, bf16.variables):
        assert b.dtype == "float32"
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-2)


def test_auto_precision_needs_a_bf16_dot_product_and_a_passed_check(monkeypatch):
    assert distribution.resolve_precision("bf16") == "bf16" and distribution.resolve_precision("fp32") == "fp32"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # a CPU-only machine
    monkeypatch.setattr(distribution, "BF16_CHECKED_CONFIGS", frozenset({"checked"}))
    monkeypatch.setattr(distribution, "cpu_flags", lambda: {"avx512f"})
    assert distribution.choose_precision("auto", "checked") == ("fp32", "auto: this CPU has no bf16 dot product")
    for flag in ("avx512_bf16", "amx_bf16"):
        monkeypatch.setattr(distribution, "cpu_flags", lambda: {"avx512f", flag})
        precision, why = distribution.choose_precision("auto", "checked")
        assert precision == "bf16" and flag in why
        precision, why = distribution.choose_precision("auto", "unchecked")
        assert precision == "fp32" and "no bf16 equal-budget check has passed for config 'unchecked'" in why
