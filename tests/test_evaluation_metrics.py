"""Each metric on hand-made models whose answer is known exactly (or up to sampling noise).

Images carry their digit as a "marker": row 0 of the image is one-hot over columns 0..9. The hand-made encoders
read the marker into the content dims, the decoders write the argmax of the content dims back as a marker, and
the stub classifiers read the marker. Rotated modalities store rotated images; their classifier un-rotates.
"""

import types

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.config import ModalitySpec, ModelConfig
from mmali_tf.data import Split
from mmali_tf.evaluation import classifiers as clf
from mmali_tf.evaluation import coherence, latent
from mmali_tf.objective import Latent

SHAPES = {"mnist": (28, 28, 1), "svhn": (32, 32, 3)}
LATENT, STYLE = 20, 10


def marker_images(labels, kind, quarter_turns=0):
    h, w, c = SHAPES[kind]
    x = np.zeros((len(labels), h, w, c), np.uint8)
    x[np.arange(len(labels)), 0, labels, :] = 255
    return np.ascontiguousarray(np.rot90(x, k=quarter_turns, axes=(1, 2)))


def split(labels, kind, quarter_turns=0):
    labels = np.asarray(labels, np.int64)
    return Split(marker_images(labels, kind, quarter_turns), labels, f"markers/{kind}", f"fp-{kind}-{len(labels)}")


def read_marker(x, quarter_turns=0):
    """[B, H, W, C] float images → [B, 10] marker row (after un-rotating)."""
    return clf.unrotate(x, quarter_turns)[:, 0, :10, 0]


def perfect_encoder(quarter_turns=0, scale=4.0):
    def encode(x, training=False):
        content = scale * tf.one_hot(tf.argmax(read_marker(x, quarter_turns), axis=-1), 10)
        mean = tf.concat([tf.zeros_like(content), content], axis=-1)
        return tf.concat([mean, tf.fill(tf.shape(mean), -20.0)], axis=-1)

    return encode


def uninformative_encoder(x, training=False):
    """The prior as posterior: mean 0, log-variance 0."""
    return tf.zeros([tf.shape(x)[0], 2 * LATENT])


def marker_decoder(kind, quarter_turns=0, constant=None):
    h, w, c = SHAPES[kind]

    def decode(z, training=False):
        digit = tf.argmax(z[:, STYLE:], axis=-1) if constant is None else tf.fill([tf.shape(z)[0]], tf.constant(
            constant, tf.int64))
        row = tf.pad(tf.one_hot(digit, 10), [[0, 0], [0, w - 10]])
        image = tf.pad(tf.tile(row[:, None, :, None], [1, 1, 1, c]), [[0, 0], [0, h - 1], [0, 0], [0, 0]])
        return tf.image.rot90(image, k=quarter_turns) if quarter_turns else image

    return decode


class StubClassifier:
    output_shape = (None, 10)  # ten classes, as a Keras digit classifier reports them

    def __call__(self, x, training=False):
        return 10.0 * x[:, 0, :10, 0]


def fake_model(specs, encoders, decoders):
    cfg = ModelConfig(modalities=tuple(specs), latent_dim=LATENT, style_dim=STYLE)
    return types.SimpleNamespace(config=types.SimpleNamespace(model=cfg), names=cfg.names, latent=Latent(cfg),
                                 ema_encoders=encoders, ema_decoders=decoders)


def classifiers_for(specs):
    return {s.name: clf.ModalityClassifier(StubClassifier(), s.quarter_turns) for s in specs}


RNG = np.random.default_rng(0)
TEST_LABELS = RNG.integers(0, 10, 300)
SPECS = (ModalitySpec("a", "mnist", "mnist"), ModalitySpec("b", "svhn", "svhn"))
SETTINGS = coherence.CoherenceSettings(batch_size=128, num_prior=10_000)


def same_label_pairs(labels, dm=3, seed=0):
    from mmali_tf.data import pair_by_label

    return pair_by_label({"a": labels, "b": labels}, data_multiplication=dm, use_all=True, seed=seed)


def quiet(_):
    pass


def test_identity_translator_is_fully_coherent():
    model = fake_model(SPECS, {"a": perfect_encoder(), "b": perfect_encoder()},
                       {"a": marker_decoder("mnist"), "b": marker_decoder("svhn")})
    test = {"a": split(TEST_LABELS, "mnist"), "b": split(TEST_LABELS, "svhn")}
    pairs = same_label_pairs(TEST_LABELS)
    out = coherence.cross_and_synergy(model, test, pairs, classifiers_for(SPECS), SETTINGS, print_fn=quiet)
    assert out == {"coherence/a_to_b": 1.0, "coherence/b_to_a": 1.0, "synergy/a": 1.0, "synergy/b": 1.0}
    joint = coherence.joint_coherence(model, classifiers_for(SPECS), SETTINGS, print_fn=quiet)
    assert joint["coherence/joint"] == 1.0
    assert abs(joint["coherence/joint_chance"] - 0.1) < 0.01  # sum_k p(k)^2 for a uniform digit


def test_constant_decoder_scores_chance():
    model = fake_model(SPECS, {"a": perfect_encoder(), "b": perfect_encoder()},
                       {"a": marker_decoder("mnist"), "b": marker_decoder("svhn", constant=3)})
    test = {"a": split(TEST_LABELS, "mnist"), "b": split(TEST_LABELS, "svhn")}
    pairs = same_label_pairs(TEST_LABELS)
    out = coherence.cross_and_synergy(model, test, pairs, classifiers_for(SPECS), SETTINGS, print_fn=quiet)
    share_of_3 = float(np.mean(TEST_LABELS[pairs["a"]] == 3))
    assert out["coherence/a_to_b"] == pytest.approx(share_of_3)
    assert out["synergy/b"] == pytest.approx(share_of_3)
    assert out["coherence/b_to_a"] == 1.0
    joint = coherence.joint_coherence(model, classifiers_for(SPECS), SETTINGS, print_fn=quiet)
    assert abs(joint["coherence/joint"] - 0.1) < 0.015  # P(argmax of 10 iid normals == 3) = 0.1; sd 0.003
    assert joint["coherence/joint_chance"] == pytest.approx(joint["coherence/joint"])  # p_b = 1 at digit 3


def test_decoders_that_each_draw_one_different_digit_never_agree():
    """A freshly initialised model's decoders give near-constant images, one digit each: joint = chance = 0."""
    model = fake_model(SPECS, {}, {"a": marker_decoder("mnist", constant=1), "b": marker_decoder("svhn", constant=7)})
    joint = coherence.joint_coherence(model, classifiers_for(SPECS), SETTINGS, print_fn=quiet)
    assert joint == {"coherence/joint": 0.0, "coherence/joint_chance": 0.0}


def test_synergy_uses_the_precision_weighted_joint_posterior():
    """A sharp expert dominates the geometric mean of a sharp and a prior-like expert: synergy stays 100%."""
    model = fake_model(SPECS, {"a": perfect_encoder(), "b": uninformative_encoder},
                       {"a": marker_decoder("mnist"), "b": marker_decoder("svhn")})
    test = {"a": split(TEST_LABELS, "mnist"), "b": split(TEST_LABELS, "svhn")}
    pairs = same_label_pairs(TEST_LABELS)
    out = coherence.cross_and_synergy(model, test, pairs, classifiers_for(SPECS), SETTINGS, print_fn=quiet)
    assert out["synergy/a"] == 1.0 and out["synergy/b"] == 1.0
    assert out["coherence/a_to_b"] == 1.0
    assert 0.03 < out["coherence/b_to_a"] < 0.2  # a prior sample decoded: chance


def test_rotated_modalities_are_unrotated_before_classification():
    specs = tuple(ModalitySpec(f"m{q}", "mnist", "mnist", quarter_turns=q) for q in range(4))
    model = fake_model(specs, {s.name: perfect_encoder(s.quarter_turns) for s in specs},
                       {s.name: marker_decoder("mnist", s.quarter_turns) for s in specs})
    test = {s.name: split(TEST_LABELS, "mnist", s.quarter_turns) for s in specs}
    from mmali_tf.data import pair_by_label

    pairs = pair_by_label({s.name: TEST_LABELS for s in specs}, data_multiplication=1, use_all=True)
    out = coherence.cross_and_synergy(model, test, pairs, classifiers_for(specs), SETTINGS, print_fn=quiet)
    assert len(out) == 4 * 3 + 4 and set(out.values()) == {1.0}
    # Without un-rotation the rotated markers are unreadable.
    wrong = {s.name: clf.ModalityClassifier(StubClassifier(), 0) for s in specs}
    out = coherence.cross_and_synergy(model, test, pairs, wrong, SETTINGS, cross=False, print_fn=quiet)
    assert out["synergy/m0"] == 1.0 and out["synergy/m2"] < 0.5


def test_unrotate_inverts_np_rot90():
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    for q in range(-1, 5):
        rotated = np.rot90(x, k=q, axes=(1, 2))
        np.testing.assert_array_equal(clf.unrotate(tf.constant(rotated.copy()), q).numpy(), x)


def test_coherence_is_seeded():
    model = fake_model(SPECS, {"a": perfect_encoder(), "b": uninformative_encoder},
                       {"a": marker_decoder("mnist"), "b": marker_decoder("svhn")})
    test = {"a": split(TEST_LABELS, "mnist"), "b": split(TEST_LABELS, "svhn")}
    pairs = same_label_pairs(TEST_LABELS)
    run = lambda seed: coherence.cross_and_synergy(  # noqa: E731
        model, test, pairs, classifiers_for(SPECS), coherence.CoherenceSettings(batch_size=100, seed=seed),
        synergy=False, print_fn=quiet)["coherence/b_to_a"]
    assert run(0) == run(0) != run(1)


def test_perfect_encoder_probe():
    train_labels = RNG.integers(0, 10, 600)
    train = {"a": split(train_labels, "mnist"), "b": split(train_labels, "svhn")}
    test = {"a": split(TEST_LABELS, "mnist"), "b": split(TEST_LABELS, "svhn")}
    model = fake_model(SPECS, {"a": perfect_encoder(), "b": uninformative_encoder}, {})
    settings = latent.ProbeSettings(epochs=15, batch_size=64, lr=1e-2)
    out = latent.latent_accuracy(model, train, test, "clean", settings, print_fn=quiet)
    assert out["latent_acc/a"] == 1.0 and out["latent_acc_content/a"] == 1.0
    majority = np.bincount(TEST_LABELS, minlength=10).max() / len(TEST_LABELS)
    assert out["latent_acc_style/a"] <= majority + 1e-9  # constant style features: at best the majority class
    assert out["latent_acc/b"] <= majority + 1e-9
    assert "latent_acc_max/a" not in out
    ref = latent.latent_accuracy(model, train, test, "reference", settings, print_fn=quiet)
    assert ref["latent_acc/a"] == 1.0 and ref["latent_acc_max/a"] == 1.0
    assert ref["latent_acc_max/b"] < 0.25  # a sampled prior-like latent carries no label: chance level
    assert set(ref) == {f"latent_acc{v}{m}/{n}" for v in ("", "_content", "_style") for m in ("", "_max")
                        for n in "ab"}


def test_probe_is_fitted_on_train_and_scored_on_test():
    """The test split's labels follow another rule (marker digit + 1): a probe fitted on train and scored on test gets
    every test example wrong, where one fitted on the test split, or scored on the train split, would get them right."""
    rng = np.random.default_rng(2)
    train_labels, test_digits = rng.integers(0, 10, 600), rng.integers(0, 10, 300)
    shifted = Split(marker_images(test_digits, "mnist"), (test_digits + 1) % 10, "markers/shifted", "fp-shifted")
    model = fake_model(SPECS[:1], {"a": perfect_encoder()}, {})
    settings = latent.ProbeSettings(epochs=15, batch_size=64, lr=1e-2)
    out = latent.latent_accuracy(model, {"a": split(train_labels, "mnist")}, {"a": shifted}, "clean", settings,
                                 print_fn=quiet)
    assert out["latent_acc/a"] == 0.0 and out["latent_acc_content/a"] == 0.0


def test_clean_probe_reports_the_final_epoch_and_the_reference_also_the_best(monkeypatch):
    """No model selection on the test set in the clean protocol: its figure is the last epoch's, not the best one."""
    history = [0.5, 0.9, 0.7]  # test accuracy per epoch, as train_probes returns it
    monkeypatch.setattr(latent, "train_probes", lambda tr, y_tr, te, y_te, groups, **_: {g: history for g in groups})
    model = fake_model(SPECS[:1], {"a": perfect_encoder()}, {})
    data = {"a": split(TEST_LABELS, "mnist")}
    clean = latent.latent_accuracy(model, data, data, "clean", print_fn=quiet)
    assert clean == {"latent_acc/a": 0.7, "latent_acc_content/a": 0.7, "latent_acc_style/a": 0.7}
    reference = latent.latent_accuracy(model, data, data, "reference", print_fn=quiet)
    assert reference["latent_acc/a"] == 0.7 and reference["latent_acc_max/a"] == 0.9


def test_standardize_uses_the_train_statistics_for_both_splits():
    logvar = np.zeros((2, 2), np.float32)
    train = np.array([[0.0, 10.0], [2.0, 10.0]], np.float32)  # mean (1, 10), std (1, 0 -> 1)
    test = np.array([[4.0, 12.0], [1.0, 7.0]], np.float32)
    (train_z, _), (test_z, _) = latent.standardize((train, logvar), (test, logvar))
    np.testing.assert_array_equal(train_z, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(test_z, [[3.0, 2.0], [0.0, -3.0]])


def test_clean_probe_does_not_depend_on_the_feature_scale():
    """Posterior means of 1e-4 (as from an untrained encoder) are z-scored, so Adam at lr 1e-3 still finds the rule."""
    train_labels = RNG.integers(0, 10, 600)
    model = fake_model(SPECS[:1], {"a": perfect_encoder(scale=1e-4)}, {})
    out = latent.latent_accuracy(model, {"a": split(train_labels, "mnist")}, {"a": split(TEST_LABELS, "mnist")},
                                 "clean", latent.ProbeSettings(epochs=15, batch_size=64, lr=1e-2), print_fn=quiet)
    assert out["latent_acc/a"] == 1.0 and out["latent_acc_content/a"] == 1.0


def test_probe_matches_a_converged_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 5)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(5, 10)) + 0.3 * rng.normal(size=(2000, 10)), axis=1)
    zeros = np.full_like(x, -30.0)
    history = latent.train_probe((x[:1500], zeros[:1500]), y[:1500], (x[1500:], zeros[1500:]), y[1500:],
                                 sampled=False, settings=latent.ProbeSettings(epochs=100, lr=1e-2))
    best = LogisticRegression(C=1e4, max_iter=5000).fit(x[:1500], y[:1500]).score(x[1500:], y[1500:])
    assert len(history) == 100 and history[-1] > best - 0.05


def test_max_pairs_keeps_every_class():
    # The pairing lists tuples class by class; a prefix of them would score a constant decoder 0% or 100%.
    labels = np.repeat(np.arange(10), 30)
    pairs = same_label_pairs(labels)
    assert len(np.unique(labels[pairs["a"][:60]])) <= 2  # the pairing really is grouped by class
    model = fake_model(SPECS, {"a": perfect_encoder(), "b": perfect_encoder()},
                       {"a": marker_decoder("mnist"), "b": marker_decoder("svhn", constant=0)})
    test = {"a": split(labels, "mnist"), "b": split(labels, "svhn")}
    subset = coherence.CoherenceSettings(batch_size=128, max_pairs=100)
    out = coherence.cross_and_synergy(model, test, pairs, classifiers_for(SPECS), subset, print_fn=quiet)
    assert out["coherence/a_to_b"] == pytest.approx(0.1)  # 10 of the 100 evenly spaced tuples are zeros
    assert out["coherence/b_to_a"] == 1.0
    np.testing.assert_array_equal(coherence.subset_of_pairs(10, 4), [0, 2, 5, 7])
    np.testing.assert_array_equal(coherence.subset_of_pairs(5, 0), np.arange(5))
