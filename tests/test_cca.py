"""The reference's multi-view CCA (evaluation/cca.py): solver, scoring rule, caching, and why sklearn's CCA differs."""

import numpy as np
import pytest

from mmali_tf.errors import ConfigError, DataError
from mmali_tf.evaluation import cca

CORRELATIONS = (0.9, 0.7, 0.5, 0.3)


def _paired_views(n=3000, seed=0, dims=(6, 9)):
    """Two views sharing four latent factors with canonical correlations close to CORRELATIONS."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, len(CORRELATIONS)))
    rho = np.sqrt(np.asarray(CORRELATIONS))
    views = []
    for d in dims:
        latent = np.concatenate([rho * shared + np.sqrt(1 - rho**2) * rng.normal(size=shared.shape),
                                 rng.normal(size=(n, d - len(CORRELATIONS)))], axis=1)
        mixing = rng.normal(size=(d, d)) + 3 * np.eye(d)
        views.append((latent @ mixing + rng.normal(size=d)).astype(np.float32))
    return views


def _whitened_svd_cca(x, y, k):
    """Textbook CCA in float64, independently of the solver: SVD of C11^-1/2 C12 C22^-1/2.

    Returns the canonical correlations and the stacked canonical vectors [a; b] (a^T C11 a = b^T C22 b = 1), each
    scaled to unit Euclidean norm as LAPACK scales generalized eigenvectors.
    """
    x = x.astype(np.float64) - x.mean(axis=0)
    y = y.astype(np.float64) - y.mean(axis=0)
    n = x.shape[0]
    c11, c22, c12 = x.T @ x / (n - 1), y.T @ y / (n - 1), x.T @ y / (n - 1)

    def inv_sqrt(c):
        w, v = np.linalg.eigh(c)
        return v @ np.diag(w**-0.5) @ v.T

    w1, w2 = inv_sqrt(c11), inv_sqrt(c22)
    u, s, vt = np.linalg.svd(w1 @ c12 @ w2)
    stacked = np.concatenate([w1 @ u[:, :k], w2 @ vt.T[:, :k]], axis=0)
    return s[:k], stacked / np.linalg.norm(stacked, axis=0)


def _align_signs(vectors, reference):
    return vectors * np.sign(np.sum(vectors * reference, axis=0))


@pytest.fixture(scope="module")
def views():
    return _paired_views()


@pytest.fixture(scope="module")
def fitted(views):
    return cca.fit_cca(views, k=4)


def test_solver_matches_an_independent_float64_cca(views, fitted):
    expected_corr, expected_vectors = _whitened_svd_cca(*views, k=4)
    np.testing.assert_allclose(fitted.correlations, expected_corr, rtol=1e-4)
    assert np.all(np.abs(fitted.correlations - CORRELATIONS) < 0.05)  # the data has the intended structure
    stacked = np.concatenate(fitted.projections, axis=0)
    assert stacked.dtype == np.float32 and [p.shape for p in fitted.projections] == [(6, 4), (9, 4)]
    np.testing.assert_allclose(np.linalg.norm(stacked, axis=0), 1.0, rtol=1e-5)  # unit norm over stacked dims
    np.testing.assert_allclose(_align_signs(stacked, expected_vectors), expected_vectors, atol=2e-4)
    for view, mean in zip(views, fitted.means):
        np.testing.assert_allclose(mean, view.mean(axis=0), rtol=1e-5)


def test_eigh_solver_gives_the_same_projections_up_to_sign_and_the_same_scores(views, fitted):
    fast = cca.fit_cca(views, k=4, solver="eigh")
    np.testing.assert_allclose(fast.correlations, fitted.correlations, rtol=1e-6)
    for p_fast, p_ref in zip(fast.projections, fitted.projections):
        signs = np.sign(np.sum(np.concatenate(fast.projections) * np.concatenate(fitted.projections), axis=0))
        np.testing.assert_allclose(p_fast * signs, p_ref, atol=1e-5)
    np.testing.assert_allclose(cca.pair_cosines(fast, *views), cca.pair_cosines(fitted, *views), atol=1e-5)


def test_more_than_two_views_keeps_each_view_block(views):
    third = (views[0][:, :3] + np.random.default_rng(5).normal(size=(views[0].shape[0], 3))).astype(np.float32)
    fitted = cca.fit_cca([views[0], views[1], third], k=3)
    assert [p.shape for p in fitted.projections] == [(6, 3), (9, 3), (3, 3)]
    assert fitted.correlations[0] > fitted.correlations[1] > fitted.correlations[2] > 0


def test_mean_of_batch_means_weighs_the_short_last_batch_like_a_full_one():
    values = [1, 1, 1, 0, 0, 0, 4]
    assert cca.mean_of_batch_means(values, 3) == pytest.approx((1 + 0 + 4) / 3)
    assert cca.mean_of_batch_means(values, 7) == pytest.approx(1.0)  # one batch: the plain mean
    assert cca.mean_of_batch_means(values, 100) == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        cca.mean_of_batch_means(values, 0)
    with pytest.raises(DataError):
        cca.mean_of_batch_means([], 3)


def test_correlation_score_on_a_hand_checked_case():
    identity = cca.FittedCCA(means=(np.zeros(2, np.float32), np.ones(2, np.float32)),
                             projections=(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32)),
                             correlations=np.array([1.0, 0.5]))
    first = np.array([[1, 0], [1, 0], [1, 0]], np.float32)
    second = np.array([[2, 1], [1, 2], [0, 1]], np.float32)  # minus the mean (1, 1): (1,0), (0,1), (-1,0)
    np.testing.assert_allclose(cca.pair_cosines(identity, first, second), [1.0, 0.0, -1.0], atol=1e-7)
    assert cca.correlation_score(identity, first, second, batch_size=2) == pytest.approx((0.5 - 1.0) / 2)
    assert cca.correlation_score(identity, first, second, batch_size=3) == pytest.approx(0.0, abs=1e-7)
    # A zero vector has cosine 0 (norms clamped at 1e-8), not NaN.
    assert cca.pair_cosines(identity, np.zeros((1, 2), np.float32), second[:1])[0] == 0.0


def test_real_pairs_score_above_shuffled_pairs(views, fitted):
    real = cca.correlation_score(fitted, *views)
    shuffled = cca.correlation_score(fitted, views[0], views[1][np.random.default_rng(1).permutation(len(views[1]))])
    assert real > 0.3 and abs(shuffled) < 0.05


def test_save_load_round_trip_and_cache(tmp_path, views, fitted):
    path = str(tmp_path / "cca.npz")
    fitted.save(path)
    again = cca.FittedCCA.load(path)
    assert again.k == 4 and again.solver == "eig" and again.view_dims == (6, 9)
    for a, b in zip(again.projections + again.means, fitted.projections + fitted.means):
        np.testing.assert_array_equal(a, b)
    calls = []

    def make_views():
        calls.append(1)
        return views

    first = cca.load_or_fit_cca(str(tmp_path / "cache.npz"), "data-1", make_views, k=4)
    second = cca.load_or_fit_cca(str(tmp_path / "cache.npz"), "data-1", make_views, k=4)
    assert len(calls) == 1 and second.fingerprint == "data-1"
    np.testing.assert_array_equal(first.projections[1], second.projections[1])
    cca.load_or_fit_cca(str(tmp_path / "cache.npz"), "data-2", make_views, k=4)  # other data: refit
    assert len(calls) == 2 and cca.FittedCCA.load(str(tmp_path / "cache.npz")).fingerprint == "data-2"


def test_bad_inputs_and_files_raise_one_line_errors(tmp_path, views):
    with pytest.raises(DataError, match="paired"):
        cca.fit_cca([views[0], views[1][:-1]], k=2)
    with pytest.raises(ConfigError, match="k must be"):
        cca.fit_cca(views, k=7)
    with pytest.raises(ConfigError, match="solver"):
        cca.fit_cca(views, k=2, solver="svd")
    bad = views[1].copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        cca.fit_cca([views[0], bad], k=2)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        cca.FittedCCA.load(str(tmp_path / "junk.npz"))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="not a saved CCA"):
        cca.FittedCCA.load(str(tmp_path / "other.npz"))
    with pytest.raises(DataError, match="does not exist"):
        cca.FittedCCA.load(str(tmp_path / "missing.npz"))


def test_sklearn_cca_gives_different_scores(views, fitted):
    """sklearn's ``CCA`` is not a substitute for the reference's solver.

    It finds the same canonical directions (each component pair has the same correlation), but it scales
    them differently: it standardises every input variable and normalises each view's weights on its own, whereas
    the reference keeps the raw generalized eigenvectors, of unit norm over both views stacked. The cosine of two
    k-dimensional projections weighs each canonical dimension by the square of its scale, so rescaling the columns
    changes the cosine (and thus the correlation score), even though every per-dimension correlation is the same.
    """
    from sklearn.cross_decomposition import CCA

    model = CCA(n_components=4, max_iter=2000, tol=1e-10).fit(*views)
    x_scores, y_scores = model.transform(*views)
    per_dimension = [np.corrcoef(x_scores[:, i], y_scores[:, i])[0, 1] for i in range(4)]
    np.testing.assert_allclose(per_dimension, fitted.correlations, atol=1e-3)  # the same canonical directions
    sklearn_score = cca.mean_of_batch_means(cca.cosine_similarity(x_scores, y_scores))
    reference_score = cca.correlation_score(fitted, *views)
    assert abs(sklearn_score - reference_score) > 0.02
