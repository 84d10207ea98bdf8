"""One training iteration of ours against the authors' PyTorch code, term by term and tensor by tensor.

The fixtures (``$MMALI_GOLDEN_DIR``, default ``../shared/golden``; see its README) record one iteration of their code
(6b5d/mmali at 3b500a7) for three configurations: their initial weights and spectral-norm vectors, the four input
batches, every random draw with its role, every loss term, and fingerprints of every gradient, of the state after
each optimizer step and of the EMA networks. We load their weights (:mod:`tests.golden.reference_port`), replay their
draws through our objective (:class:`tests.golden.replay_noise.ReplayNoise`), run ONE real ``train_step`` and compare.

The comparison runs in the authors' spectral-norm schedule (``spectral_norm_updates="per_forward"``) and, for the
joint baseline, with their discarded first call (``discard_first_baseline_call``). Our defaults differ on purpose in
both; the last tests show exactly how. Tolerances (BUILD.md, "Golden tests", explains them): float32 in two
frameworks differs by about the sum of both rounding errors, which the fixtures measure for their code
(``checks.float64``); each tolerance is about ten times that floor, or derived from it where noted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import training
from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig
from tests.golden import reference_port
from tests.golden.replay_noise import ReplayNoise

GOLDEN_DIR = Path(os.environ.get("MMALI_GOLDEN_DIR", Path(__file__).resolve().parents[2] / "shared" / "golden"))
FIXTURES = ("multimnist_m2", "mnist_svhn", "multimnist_m2_joint")
CALLS = ("d_unimodal", "d_joint", "g_unimodal", "g_joint")

# Loss terms: D terms see the fixture's weights (their float32-vs-float64 floor: 2.5e-7 relative); G terms see the
# discriminators after the D update, whose elements with |g| near Adam's eps moved differently (below).
D_TERM_RTOL, G_TERM_RTOL, TERM_ATOL = 2e-6, 1e-5, 1e-6
GRAD_NORM_RTOL = 1e-4  # l2 and max_abs; floor 2.7e-6 (1.1e-5 for the baseline's 3-element output bias)
GRAD_PROJ_ATOL = 4e-4  # x l2: the error vector is ~1e-5 l2 at most, its projection on a N(0, I) vector N(0, err^2)
GRAD_ELEMENT_REL = 3e-5  # x max|g|: elementwise gradient error allowed when bounding the Adam updates
SN_VECTOR_ATOL = 1e-5  # per element of u and v; floor 2.3e-6
SIGMA_RTOL = 1e-5
LR, ADAM_EPS = 2e-4, 1e-8


# ------------------------------------------------------------------------------------------------ fixtures
def _fixture_files(name: str) -> tuple[Path, Path]:
    manifest, arrays = GOLDEN_DIR / f"{name}.json", GOLDEN_DIR / f"{name}.npz"
    if not (manifest.exists() and arrays.exists()):
        pytest.fail(f"golden fixture {name} not found in {GOLDEN_DIR} (set MMALI_GOLDEN_DIR)")
    return manifest, arrays


def golden_config(manifest: dict, spectral_norm_updates: str = "per_forward", reference_baseline: bool = True):
    """Our config for the configuration their fixture ran, with their modality keys as our names."""
    c, networks = manifest["config"], manifest["networks"]
    keys = c["modalities"]
    kinds = [networks[f"decoders.{k}"]["class"].split(".")[1] for k in keys]  # models.mnist.Decoder -> mnist
    baseline = c["model_type"] == "joint"
    joint_class = "" if baseline else networks["joint_discriminator"]["class"]
    return ExperimentConfig(
        name=manifest["fixture"], data=DataConfig(),
        model=ModelConfig(
            modalities=tuple(ModalitySpec(k, kind, kind, rec_weight=float(c["mod_coeff"][k]))
                             for k, kind in zip(keys, kinds)),
            latent_dim=c["latent_dim"], style_dim=c["style_dim"],
            discriminator="joint" if baseline else "factorized",
            joint_architecture="dot" if joint_class.endswith("Dot") else "concat",
            spectral_norm_updates=spectral_norm_updates),
        loss=LossConfig(lambda_unimodal=c["lambda_unimodal"], lambda_x_rec=c["lambda_x_rec"],
                        lambda_s_rec=c["lambda_s_rec"], lambda_c_rec=c["lambda_c_rec"], joint_rec=c["joint_rec"],
                        discard_first_baseline_call=baseline and reference_baseline),
        train=TrainConfig(batch_size=c["batch_size"], lr=manifest["optimizers"]["D"]["lr"], xla=False,
                          ema_start=manifest["iteration"]["ema_start"], ema_decay=manifest["iteration"]["beta"]),
    ).validate()


class Golden:
    """One fixture: manifest, arrays, and a fresh model of ours holding their weights and replaying their draws."""

    def __init__(self, name: str):
        manifest_path, arrays_path = _fixture_files(name)
        self.name = name
        self.manifest = json.loads(manifest_path.read_text())
        with np.load(arrays_path) as arrays:
            self.arrays = {k: arrays[k] for k in arrays.files}
        self.keys = self.manifest["config"]["modalities"]
        self.weights = {k[len("weights/"):]: v for k, v in self.arrays.items() if k.startswith("weights/")}
        self.batches = {call: {k: tf.constant(self.arrays[f"inputs/{call}/{k}"]) for k in self.keys}
                        for call in CALLS}
        self.fingerprints = self.manifest["fingerprints"]
        self.baseline = self.manifest["config"]["model_type"] == "joint"

    def model(self, **config_options):
        model = training.build_model(golden_config(self.manifest, **config_options))
        reference_port.load_reference_weights(model, self.keys, self.weights)
        draws = {k: v for k, v in self.arrays.items() if k.startswith("draws/")}
        noise = ReplayNoise(reference_port.noise_streams(self.manifest, draws, model.names,
                                                         model.config.model.style_dim))
        model.use_noise(lambda n_iter, replica, num_replicas: noise)
        return model, noise

    def their_terms(self, group: str) -> dict[str, float]:
        return {t["name"]: t["value"] for t in self.manifest[group]["terms"]}

    def our_term_name(self, theirs: str, player: str) -> str:
        return reference_port.our_term_name(self.manifest, theirs, player, self.keys)


@pytest.fixture(scope="module", params=FIXTURES)
def golden(request):
    return Golden(request.param)


@pytest.fixture(scope="module")
def stepped(golden):
    """A model after ONE real ``train_step`` (D step, Adam, G step, Adam, EMA), and what the step returned."""
    model, noise = golden.model()
    out = model.train_step(golden.batches)
    return model, {k: float(v) for k, v in out.items()}, noise


@pytest.fixture(scope="module")
def d_stepped(golden):
    """A model after the discriminator half of the step only (the same method ``train_step`` calls first)."""
    model, _ = golden.model()
    model.discriminator_step(golden.batches, tf.constant(0, tf.int64))
    return model


# ------------------------------------------------------------------------------------------------ helpers
def fingerprint(key: str, value: np.ndarray) -> dict:
    """The fixtures' recipe (golden README section 6): torch layout, float64, four seeded N(0, I) projections."""
    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    vectors = np.random.default_rng(seed).standard_normal((4,) + value.shape)
    x = np.asarray(value, np.float64).ravel()
    return dict(l2=float(np.sqrt(x @ x)), sum=float(x.sum()), max_abs=float(np.abs(x).max()),
                n_zero=int((x == 0).sum()), proj=[float(vectors[j].ravel() @ x) for j in range(4)])


def test_fingerprint_recipe_matches_the_fixture(golden):
    check = golden.fingerprints["recipe"]["check"]
    seed = int.from_bytes(hashlib.sha256(check["key"].encode("utf-8")).digest()[:8], "little")
    vectors = np.random.default_rng(seed).standard_normal((4,) + tuple(check["shape"]))
    np.testing.assert_allclose(vectors[0].ravel()[:4], check["P_0_first4"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(vectors[3].ravel()[-2:], check["P_3_last2"], rtol=0, atol=1e-15)
    before = golden.fingerprints["before"]
    for key, value in list(golden.weights.items())[:5]:
        assert fingerprint(key, value)["l2"] == pytest.approx(before[key]["l2"], rel=1e-12)


def adam_first_update_bound(grad: np.ndarray) -> np.ndarray:
    """Per element, how far torch's first Adam update ``lr g / (|g| + eps)`` can move if g is off by
    ``GRAD_ELEMENT_REL * max|g|`` (the update is steep where |g| is near eps)."""
    g = np.asarray(grad, np.float64)
    delta = GRAD_ELEMENT_REL * np.abs(g).max()

    def update(x):
        return LR * x / (np.abs(x) + ADAM_EPS)

    return np.maximum(np.abs(update(g + delta) - update(g)), np.abs(update(g - delta) - update(g)))


def assert_matches(key: str, ours: np.ndarray, ref: dict, proj_atol: float, norm_atol: float, what: str):
    fp = fingerprint(key, ours)
    assert fp["n_zero"] == ref["n_zero"], (what, key, "exact zeros", fp["n_zero"], ref["n_zero"])
    assert abs(fp["l2"] - ref["l2"]) <= norm_atol, (what, key, "l2", fp["l2"], ref["l2"])
    worst = max(abs(a - b) for a, b in zip(fp["proj"], ref["proj"]))
    assert worst <= proj_atol, (what, key, "proj", worst, proj_atol)


def our_gradients(model, golden, player: str) -> dict[str, np.ndarray]:
    """The gradients of the one step, read from Adam's first moments: after one step from fresh state
    ``m = (1 - beta_1) g`` exactly (beta_1 = 0.5), in their layout."""
    optimizer = model.d_optimizer if player == "D" else model.g_optimizer
    group = "grad_d" if player == "D" else "grad_g"
    out = {}
    for pair in reference_port.tensor_pairs(model, golden.keys):
        if pair.key in golden.fingerprints[group]:
            moment = optimizer.first_moment(pair.variable).numpy()
            out[pair.key] = pair.to_theirs(moment / (1.0 - optimizer.beta_1))
    assert out.keys() == golden.fingerprints[group].keys()
    return out


def last_sigma(golden, step: str, layer: str) -> float:
    forwards = [f for f in golden.manifest["spectral_norm"]["layers"][layer]["forwards"] if f["step"] == step]
    return forwards[-1]["sigma"]


# ------------------------------------------------------------------------------------------------ loss terms
@pytest.mark.parametrize("player", ["D", "G"])
def test_every_loss_term_by_name(golden, stepped, player):
    _, out, _ = stepped
    group, rtol = ("d_terms", D_TERM_RTOL) if player == "D" else ("g_terms", G_TERM_RTOL)
    theirs = golden.their_terms(group)
    ours = {k.split("/", 1)[1]: v for k, v in out.items() if k.startswith(f"{player}/")}
    assert sorted(ours) == sorted(golden.our_term_name(name, player) for name in theirs)
    for name, value in theirs.items():
        assert ours[golden.our_term_name(name, player)] == pytest.approx(value, rel=rtol, abs=TERM_ATOL), name
    total = golden.manifest[group]["total"]["value"]
    assert out["d_loss" if player == "D" else "g_loss"] == pytest.approx(total, rel=rtol, abs=TERM_ATOL)


def test_every_recorded_draw_is_read_once(golden, stepped):
    """Each draw of theirs feeds our objective exactly once, except the few their own objective never reads."""
    _, _, noise = stepped
    assert sorted(noise.used) == sorted(noise.recorded), "a recorded draw was not read, or read twice"
    draws = golden.manifest["draws"]["list"]
    skipped = [d for d in draws if reference_port.is_unread(golden.manifest, d)]
    assert len(skipped) == (len(golden.keys) if golden.baseline else len(golden.keys) + 1)
    assert len(noise.recorded) >= len(draws) - len(skipped)


# ------------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("player", ["D", "G"])
def test_gradient_of_every_tensor(golden, stepped, player):
    model, _, _ = stepped
    reference = golden.fingerprints["grad_d" if player == "D" else "grad_g"]
    for key, grad in our_gradients(model, golden, player).items():
        ref = reference[key]
        fp = fingerprint(key, grad)
        assert fp["n_zero"] == ref["n_zero"], (key, fp["n_zero"], ref["n_zero"])
        assert fp["l2"] == pytest.approx(ref["l2"], rel=GRAD_NORM_RTOL), key
        assert fp["max_abs"] == pytest.approx(ref["max_abs"], rel=GRAD_NORM_RTOL), key
        assert abs(fp["sum"] - ref["sum"]) <= 1e-4 * ref["l2"] * math.sqrt(grad.size), key
        worst = max(abs(a - b) for a, b in zip(fp["proj"], ref["proj"]))
        assert worst <= GRAD_PROJ_ATOL * ref["l2"], (key, worst / ref["l2"])


# ------------------------------------------------------------------------------------------------ states
def _check_updates(golden, model, player, after: dict[str, np.ndarray], start: dict[str, np.ndarray]):
    grads = our_gradients(model, golden, player)
    group = "update_d_step" if player == "D" else "update_g_step"
    for key, ref in golden.fingerprints[group].items():
        update = after[key].astype(np.float64) - start[key].astype(np.float64)
        bound = float(np.linalg.norm(adam_first_update_bound(grads[key])))
        assert_matches(key, update, ref, proj_atol=5 * bound + 1e-4 * ref["l2"], norm_atol=bound + 1e-6 * ref["l2"],
                       what=group)


def _check_state(golden, group: str, state: dict[str, np.ndarray], grads: dict[str, np.ndarray]):
    """Parameters: the update's tolerance plus float32 rounding of the sum; u/v: SN_VECTOR_ATOL per element."""
    for key, ref in golden.fingerprints[group].items():
        value = state[key]
        if key.endswith(("weight_u", "weight_v")):
            atol = 4 * SN_VECTOR_ATOL * math.sqrt(value.size)
            assert_matches(key, value, ref, proj_atol=atol, norm_atol=atol, what=group)
            continue
        moved = float(np.linalg.norm(adam_first_update_bound(grads[key]))) if key in grads else 0.0
        atol = 5 * moved + 4e-7 * ref["l2"]
        assert_matches(key, value, ref, proj_atol=atol, norm_atol=atol, what=group)


def test_state_after_the_discriminator_step(golden, d_stepped):
    """D parameters updated, generators untouched, u / v after the D step's forwards, and each layer's last sigma."""
    model = d_stepped
    state = reference_port.state_in_their_layout(model, golden.keys)
    grads = our_gradients(model, golden, "D")
    _check_state(golden, "after_d_step", state, grads)
    _check_updates(golden, model, "D", state, golden.weights)
    for layer in golden.manifest["spectral_norm"]["layers"]:
        w = golden.weights[f"{layer}.weight_orig"].astype(np.float64)
        u, v = state[f"{layer}.weight_u"], state[f"{layer}.weight_v"]
        sigma = float(u @ w.reshape(w.shape[0], -1) @ v)
        assert sigma == pytest.approx(last_sigma(golden, "D", layer), rel=SIGMA_RTOL), layer


def test_state_after_the_full_step(golden, stepped):
    """After the G step: G parameters updated from the D-step state, D parameters as after the D step, u / v moved
    again by the G step's forwards (their discriminators stay in train mode)."""
    model, _, _ = stepped
    state = reference_port.state_in_their_layout(model, golden.keys)
    grads = {**our_gradients(model, golden, "D"), **our_gradients(model, golden, "G")}
    _check_state(golden, "after_g_step", state, grads)
    _check_updates(golden, model, "G", state, golden.weights)  # generators start the G step at their init
    for layer in golden.manifest["spectral_norm"]["layers"]:
        w = state[f"{layer}.weight_orig"].astype(np.float64)  # the D-step result, which the G step's forwards use
        u, v = state[f"{layer}.weight_u"], state[f"{layer}.weight_v"]
        sigma = float(u @ w.reshape(w.shape[0], -1) @ v)
        assert sigma == pytest.approx(last_sigma(golden, "G", layer), rel=SIGMA_RTOL), layer


def test_ema_after_the_step(golden, stepped):
    """n_iter = 0 <= ema_start: the EMA generators are copies of the live ones (their ``lerp(model, 0.0)``).

    Their EMA model also holds discriminators that nothing updates; ours keeps no EMA discriminators."""
    model, _, _ = stepped
    assert golden.manifest["iteration"]["n_iter"] == 0
    ema = reference_port.state_in_their_layout(model, golden.keys, ema=True)
    grads = our_gradients(model, golden, "G")
    reference = golden.fingerprints["ema_after_update"]
    generator_keys = set(ema)
    assert generator_keys < set(reference)
    assert all(k.startswith(("encoders.", "decoders.")) for k in generator_keys)
    for key in generator_keys:
        moved = float(np.linalg.norm(adam_first_update_bound(grads[key])))
        atol = 5 * moved + 4e-7 * reference[key]["l2"]
        assert_matches(key, ema[key], reference[key], proj_atol=atol, norm_atol=atol, what="ema_after_update")
    for key in set(reference) - generator_keys:  # their EMA discriminators: still the initial weights
        assert reference[key] == golden.fingerprints["before"][key]


# ------------------------------------------------------------------------------------------------ deliberate differences
def test_default_spectral_norm_schedule_differs_only_in_sigma(golden):
    """Our default updates each discriminator's spectral-norm estimate once per player step (so critics can reuse
    image features); theirs before every forward. From their weights (u, v fresh from initialisation, far from
    converged), terms that each critic's first forward of the step computes still match theirs at the golden
    tolerance; the others differ, by at most a few percent at this first iteration."""
    model, _ = golden.model(spectral_norm_updates="per_step")
    out = {k: float(v) for k, v in model.train_step(golden.batches).items()}
    theirs = golden.their_terms("d_terms")
    # The baseline's kept terms come from its critic's 4th-6th forwards (the discarded first call ran 1-3).
    first_forward = [] if golden.baseline else [n for n in theirs if n.endswith("_c0")]
    later = [n for n in theirs if n not in first_forward]
    for name in first_forward:
        assert out[f"D/{golden.our_term_name(name, 'D')}"] == pytest.approx(theirs[name], rel=D_TERM_RTOL), name
    differences = [abs(out[f"D/{golden.our_term_name(n, 'D')}"] / theirs[n] - 1) for n in later]
    assert max(differences) > 1e-4  # the schedules really differ ...
    assert max(differences) < 0.05  # ... by a moderate amount at initialisation


def test_spectral_norm_schedules_agree_once_the_estimate_has_converged(golden):
    """With converged u, v (many power iterations first) one update per step or one per forward give the same
    losses: the schedule changes only how fast sigma's estimate follows the weights."""
    terms = {}
    for schedule in ("per_step", "per_forward"):
        model, _ = golden.model(spectral_norm_updates=schedule)
        for layer in (layer for d in model.discriminators for layer in d.layers if hasattr(layer, "sn_u")):
            for _ in range(200):
                layer.normalized_kernel(training=True)
        terms[schedule] = {k: float(v) for k, v in model.train_step(golden.batches).items()}
    for key, value in terms["per_forward"].items():
        assert terms["per_step"][key] == pytest.approx(value, rel=2e-3), key


def test_baseline_keeps_both_batches_by_default():
    """Their baseline overwrites the first batch's terms with the second's (same dict keys); ours adds both by
    default. In the D step the real tuples of the first batch give their discarded values; its decoded tuple does
    not: their first call decodes each modality from its own full prior z and shows the critic modality 0's content,
    ours decodes one shared prior content (as in the second call). (The G step then sees a different D.)"""
    golden = Golden("multimnist_m2_joint")
    model, _ = golden.model(reference_baseline=False)
    out = {k: float(v) for k, v in model.train_step(golden.batches).items()}
    num = len(golden.keys)
    for discarded in golden.manifest["d_terms"]["discarded"]:
        label, value = int(discarded["name"].rsplit("_c", 1)[1]), discarded["value"]
        ours = out[f"D/{golden.our_term_name(discarded['name'], 'D').replace('d_joint/', 'd_unimodal/')}"]
        if label < num:
            assert ours == pytest.approx(value, rel=D_TERM_RTOL, abs=TERM_ATOL), discarded["name"]
        else:  # beyond rounding; at initialisation the critic barely tells the two decoded tuples apart
            assert ours != pytest.approx(value, rel=D_TERM_RTOL, abs=TERM_ATOL), (discarded["name"], ours, value)
    for player, loss in (("D", "d_loss"), ("G", "g_loss")):
        kept = sum(value for key, value in out.items() if key.startswith(f"{player}/{player.lower()}_"))
        assert out[loss] == pytest.approx(kept, rel=1e-6)
