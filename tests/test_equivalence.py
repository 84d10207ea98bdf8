"""The fast critics compute what the executable specification computes.

``MMALI.networks`` gives critics that score all tuples of a player step in one batched forward (each tuple's rows
divided by its own spectral-norm estimate, the MNIST critic multiplying each distinct image batch by its first
layer once); ``MMALI.plain_networks`` gives critics that run the whole Keras model once per tuple, one power
iteration before each forward, as the authors' code; for the reference run every spectrally normalised
convolution is a convolution (``SNConv2D`` otherwise runs a kernel that covers its input as a matmul). On one fixed
batch both must give the same loss terms, the same gradients and the same spectral-norm state afterwards. The same
holds for the ``per_step`` schedule (one estimate per call), whose critics share the x-part features of identical
image batches, against batched critics without any sharing.
"""

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig
from mmali_tf.model import MMALI
from mmali_tf.model import _map_critics
from mmali_tf.kinds.builders import IMAGE_SHAPES
from mmali_tf.networks.critic import Critic
from mmali_tf.networks.spectral_norm import SNConv2D
from mmali_tf.noise import StepNoise
from mmali_tf.objective import discriminator_losses, generator_losses

B = 8
TOL = 1e-5

README = LossConfig(lambda_unimodal=0.1, lambda_x_rec=0.05, lambda_s_rec=0.05, lambda_c_rec=0.05, joint_rec=True)


def config(modalities, loss, discriminator="factorized", joint_architecture="dot"):
    return ExperimentConfig(
        name="equivalence", data=DataConfig(),
        model=ModelConfig(modalities=modalities, latent_dim=20, style_dim=10, discriminator=discriminator,
                          joint_architecture=joint_architecture),
        loss=loss, train=TrainConfig(batch_size=B, seed=3)).validate()


MNIST_SVHN = config((ModalitySpec("mnist", "mnist", "mnist"), ModalitySpec("svhn", "svhn", "svhn")), README)
MULTIMNIST3 = tuple(ModalitySpec(f"mnist{i}", "mnist", "mnist", quarter_turns=i) for i in range(3))
CONFIGS = {
    "mnist_svhn_readme": MNIST_SVHN,
    "multimnist_m3": config(MULTIMNIST3, LossConfig(lambda_unimodal=0.1), joint_architecture="concat"),
    "multimnist_m3_joint_baseline": config(MULTIMNIST3, LossConfig(lambda_unimodal=0.1), discriminator="joint",
                                           joint_architecture="concat"),
}


def fixed_batches(cfg, marginal=False):
    calls = ["d_unimodal", "d_joint", "g_unimodal", "g_joint"] + (["d_marginal"] if marginal else [])
    shapes = {m.name: IMAGE_SHAPES[m.kind] for m in cfg.model.modalities}
    return {c: {n: tf.random.stateless_uniform((B,) + shapes[n], seed=[i, j]) for j, n in enumerate(shapes)}
            for i, c in enumerate(calls)}


@pytest.fixture(scope="module", params=list(CONFIGS))
def model(request):
    tf.keras.utils.set_random_seed(0)
    m = MMALI(CONFIGS[request.param])
    # Take the discriminators away from initialisation so that no logit or gradient is trivially small.
    for v in m.d_variables + m.g_variables:
        v.assign(v * 3.0)
    return m


def sn_vectors(model):
    return [v for d in model.discriminators for v in d.non_trainable_variables]


def run(model, nets, player, batches):
    """Loss terms, gradients (of the player's variables) and spectral-norm vectors after one player step."""
    losses_fn = discriminator_losses if player == "D" else generator_losses
    variables = model.d_variables if player == "D" else model.g_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            terms = losses_fn(nets, batches, StepNoise(7, 11), model.config.model, model.config.loss)
            total = tf.add_n(list(terms.values()))
        return terms, tape.gradient(total, variables)

    saved = [v.numpy() for v in sn_vectors(model)]
    terms, grads = step()
    after = [v.numpy() for v in sn_vectors(model)]
    for v, value in zip(sn_vectors(model), saved):  # leave the model as it was
        v.assign(value)
    return {k: t.numpy() for k, t in terms.items()}, [g.numpy() for g in grads], after, variables


def compare(model, fast, reference, player, batches, monkeypatch):
    with monkeypatch.context() as plain:
        plain.setattr(SNConv2D, "_covers_input", lambda layer, inputs: False)  # every convolution as tf.nn.conv2d
        ref_terms, ref_grads, ref_sn, variables = run(model, reference, player, batches)
    opt_terms, opt_grads, opt_sn, _ = run(model, fast, player, batches)

    assert list(opt_terms) == list(ref_terms)
    for key, value in ref_terms.items():
        assert abs(opt_terms[key] - value) <= TOL, (key, opt_terms[key], value)
    assert max(abs(v) for v in ref_terms.values()) > 0.1
    for var, g_ref, g_opt in zip(variables, ref_grads, opt_grads):
        scale = max(np.abs(g_ref).max(), 1e-3)
        np.testing.assert_allclose(g_opt, g_ref, rtol=0, atol=TOL * scale, err_msg=var.path)
    assert sum(np.abs(g).sum() > 0 for g in ref_grads) == len(ref_grads)  # every variable gets a gradient
    # The same number of power iterations per layer in both: the stored vectors agree after the step.
    for a, b in zip(ref_sn, opt_sn):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(ref_sn, [v.numpy() for v in sn_vectors(model)]))


# d_marginal (unpaired pools) only feeds the discriminator step; the joint baseline ignores it.
@pytest.mark.parametrize("player, marginal", [("D", False), ("G", False), ("D", True)],
                         ids=["D-in_batch_negatives", "G", "D-d_marginal"])
def test_batched_critics_match_one_forward_per_tuple(model, player, marginal, monkeypatch):
    batches = fixed_batches(model.config, marginal)
    assert model.config.model.spectral_norm_updates == "per_forward"
    if model.config.model.discriminator == "factorized":  # the MNIST (x, z) critics batch their tuples
        assert any(isinstance(d, Critic) and d.batched for d in model.networks.d0.values())
    compare(model, model.networks, model.plain_networks, player, batches, monkeypatch)


@pytest.mark.parametrize("player", ["D", "G"])
def test_shared_features_match_plain_batched_critics_per_step(model, player, monkeypatch):
    """One estimate per call: critics share the x-part features of identical image batches; the reference
    concatenates every tuple and runs the whole model on it."""
    fast = _map_critics(model.networks, lambda c: c.with_schedule(separate_estimates=False))
    reference = _map_critics(model.networks, lambda c: Critic(c.model, batched=True, separate_estimates=False))
    compare(model, fast, reference, player, fixed_batches(model.config), monkeypatch)


def test_critics_add_no_variables_or_checkpoint_entries(model, tmp_path):
    plain_paths = sorted(v.path for v in model.variables)
    for critic in list(model.networks.d0.values()) + [model.networks.dj or model.networks.d_baseline]:
        assert {v.path for v in critic.model.variables} <= set(plain_paths)
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    keys = [name for name, _ in tf.train.list_variables(path)]
    assert not any("xpart" in k or "_head/" in k for k in keys)
    assert len([k for k in keys if k.startswith("model/") and "OPTIMIZER_SLOT" not in k]) == len(plain_paths)
