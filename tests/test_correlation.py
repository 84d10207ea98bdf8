"""The correlation metric computes the authors' CUB scores (reference section 7.3): recomputed here by hand from the
CCA of the train pairs, the model's EMA networks and the same noise draws."""

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf import evaluate, losses
from mmali_tf.evaluation import cca
from mmali_tf.evaluation.correlation import correlation_metrics
from mmali_tf.model import MMALI
from mmali_tf.noise import StepNoise
from tests.test_feature_learning import config, write_clustered_views

ROWS = {"train": 400, "test": 300}  # 300 test pairs: batches of 256 and 44, so the mean of means differs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corr")
    write_clustered_views(directory, seed=3, rows=ROWS)
    cfg = config(directory)
    tf.keras.utils.set_random_seed(1)
    model = MMALI(cfg)
    rng = np.random.default_rng(0)
    for net in list(model.ema_decoders.values()) + list(model.ema_encoders.values()):  # something to decode
        net.set_weights([w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in net.get_weights()])
    return directory, cfg, model


def context(directory, cfg, model, **options):
    opts = evaluate.EvalOptions(num_prior=500, batch_size=1000, classifier_dir=str(directory / "cache"),
                                tensorboard=False, **options)
    return evaluate.EvalContext(model, cfg, str(directory), opts, ("correlation",), {}, print_fn=lambda _: None)


def test_scores_are_the_authors_computation(setup):
    directory, cfg, model = setup
    ctx = context(directory, cfg, model)
    got = correlation_metrics(ctx, ["a", "b"])
    train, test = ctx.train_splits(), ctx.test_splits()
    fitted = cca.fit_cca([train["a"].examples, train["b"].examples], 40, solver="eigh")
    xa, xb = test["a"].examples, test["b"].examples

    def score(first, second):  # mean over batches of 256 of the batch means, in test order
        return cca.mean_of_batch_means(cca.cosine_similarity(fitted.project(0, first), fitted.project(1, second)))

    assert got["correlation/ground_truth"] == pytest.approx(score(xa, xb), abs=1e-6)
    plain = float(np.mean(cca.pair_cosines(fitted, xa, xb)))
    assert abs(plain - got["correlation/ground_truth"]) > 1e-4  # the last, short batch weighs as a full one

    noise = StepNoise(0, 0)  # one batch of 1,000 >= 300 test pairs: batch index 0
    mean, logvar = {}, {}
    for m, x in (("a", xa), ("b", xb)):
        mean[m], logvar[m] = losses.split_gaussian(model.ema_encoders[m](x, training=False))

    def sample(m, stream):
        return losses.reparameterize(mean[m], logvar[m], noise.normal(stream, tf.shape(mean[m])))

    dec = model.ema_decoders
    assert got["correlation/a_to_b"] == pytest.approx(score(xa, dec["b"](sample("a", "correlation/cross/a"))),
                                                      abs=1e-5)
    assert got["correlation/b_to_a"] == pytest.approx(score(dec["a"](sample("b", "correlation/cross/b")), xb),
                                                      abs=1e-5)
    joint_mean, joint_logvar = losses.geometric_mean_posterior([mean["a"], mean["b"]], [logvar["a"], logvar["b"]])
    c = losses.reparameterize(joint_mean, joint_logvar, noise.normal("correlation/synergy/joint",
                                                                     tf.shape(joint_mean)))[:, 8:]
    own = sample("a", "correlation/synergy/a")[:, :8]
    assert got["correlation/synergy_a"] == pytest.approx(score(dec["a"](tf.concat([own, c], -1)), xb), abs=1e-5)
    z = StepNoise(0, 0).normal("correlation/joint/prior", [500, 16])
    joint = cca.pair_cosines(fitted, dec["a"](z).numpy(), dec["b"](z).numpy())
    assert got["correlation/joint"] == pytest.approx(float(np.mean(joint)), abs=1e-5)  # one batch: a plain mean
    assert ctx.settings["correlation"]["fit_tuples"] == 400 and ctx.settings["correlation"]["fitted_now"]


def test_the_fit_is_cached_by_fingerprint_and_solvers_agree(setup, tmp_path):
    directory, cfg, model = setup
    first = correlation_metrics(context(directory, cfg, model), ["a", "b"])
    again_ctx = context(directory, cfg, model)
    assert correlation_metrics(again_ctx, ["a", "b"]) == first
    assert not again_ctx.settings["correlation"]["fitted_now"]  # read from the cache
    eig = correlation_metrics(context(directory, cfg, model, cca_solver="eig"), ["a", "b"])  # the authors' solver
    for key, value in first.items():
        assert eig[key] == pytest.approx(value, abs=1e-4), key
    # Other train data: another fingerprint, so a new fit (not the cached one).
    other = tmp_path / "other"
    other.mkdir()
    write_clustered_views(other, seed=4, rows=ROWS)
    other_ctx = context(other, config(other), model)
    other_ctx.options = evaluate.EvalOptions(num_prior=500, classifier_dir=str(directory / "cache"))
    correlation_metrics(other_ctx, ["a", "b"])
    assert other_ctx.settings["correlation"]["fitted_now"]
    assert other_ctx.settings["correlation"]["fingerprint"] != again_ctx.settings["correlation"]["fingerprint"]
