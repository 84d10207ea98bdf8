"""Multi-view CCA and the CUB correlation score (docs/authors_code.md, section 4.3; ``utils.cca``, ``eval_cap_img_ft.py``).

The score of a caption/image pair is the cosine similarity of the two views after each is centred and projected
onto the top ``k = 40`` canonical directions fitted on the train pairs. The projections are the reference's, which
are *not* the canonical weights of textbook CCA (nor sklearn's): they are the generalized eigenvectors of

    A v = lambda B v,   A = [cross-covariance blocks, zero diagonal blocks] + eps I,
                        B = block-diagonal auto-covariances + eps I,          eps = 1e-12,

each scaled by LAPACK to unit Euclidean norm over the *stacked* dimensions of all views, then split per view.
The eigenvalues are the canonical correlations (plus their negatives and near-zero values); the scaling of each
column fixes how much each canonical dimension weighs in the cosine, so a port must keep it (see
``tests/test_cca.py`` for sklearn's different numbers).

Fitting follows the reference step by step: each view is centred and its covariances ``X_i^T X_j / (N - 1)`` are
computed in float32, then copied into float64 ``A`` and ``B``; ``scipy.linalg.eig(A, B)`` is solved; eigenpairs are
sorted by descending eigenvalue (numpy's complex order: real part, then imaginary part); the top ``k`` eigenvectors'
real parts become the projections. The projections, like the reference's, are stored as float32, and scoring runs
in float32. ``solver="eigh"`` solves the same problem with ``scipy.linalg.eigh(A, B)`` (symmetric-definite, far
faster at CUB's 3,072 stacked dimensions) and rescales its vectors to unit norm; it gives the same projections up to
the sign of each column, and a column's sign flips both views together, which leaves every cosine unchanged.

A fit is meaningful only when each view has more distinct samples than dimensions (otherwise ``B`` is singular up
to rounding and spurious eigenvalues appear at the top); CUB has 8,855 train images for 2,048 image dimensions.

Pure numpy/scipy: nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Sequence

import numpy as np

from mmali_tf.atomic_files import write_bytes_atomic
from mmali_tf.errors import ConfigError, DataError

NUM_COMPONENTS = 40
"""The reference's ``k``: canonical directions kept per view."""

EPS = 1e-12
"""The reference's regulariser, added to the diagonals of both ``A`` and ``B``."""

SCORE_BATCH_SIZE = 256
"""The reference's evaluation batch: a dataset's score is the unweighted mean of per-batch mean cosines."""

COSINE_EPS = 1e-8
"""``torch.nn.functional.cosine_similarity``'s default: each norm is clamped below at this value."""

SOLVERS = ("eig", "eigh")


@dataclasses.dataclass(frozen=True)
class FittedCCA:
    """A fitted multi-view CCA: per-view means and projections (float32) and the top-k eigenvalues.

    Attributes:
        means: per view ``i``, the float32 mean ``[d_i]`` of the fitting data.
        projections: per view ``i``, the float32 projection ``[d_i, k]`` (the view's rows of the eigenvectors).
        correlations: float64 ``[k]``, the real parts of the top-k eigenvalues, descending.
        eps: the regulariser used.
        solver: ``"eig"`` (the reference's) or ``"eigh"``.
        fingerprint: free text identifying the fitting data (empty if the caller gave none), so that a cached fit
            can be checked against the data it is meant for.
    """

    means: tuple[np.ndarray, ...]
    projections: tuple[np.ndarray, ...]
    correlations: np.ndarray
    eps: float = EPS
    solver: str = "eig"
    fingerprint: str = ""

    @property
    def num_views(self) -> int:
        return len(self.means)

    @property
    def k(self) -> int:
        return int(self.correlations.shape[0])

    @property
    def view_dims(self) -> tuple[int, ...]:
        return tuple(int(m.shape[0]) for m in self.means)

    def project(self, view: int, x: np.ndarray) -> np.ndarray:
        """``(x - means[view]) @ projections[view]`` in float32: ``[N, d_view]`` → ``[N, k]``."""
        if not 0 <= view < self.num_views:
            raise ConfigError(f"CCA view index {view} out of range: the fit has {self.num_views} views")
        x = _as_float32_matrix(x, f"view {view}")
        if x.shape[1] != self.view_dims[view]:
            raise DataError(f"CCA view {view}: expected features of width {self.view_dims[view]}, got shape {x.shape}")
        return (x - self.means[view]) @ self.projections[view]

    def save(self, path: str) -> None:
        """Writes an ``.npz`` (no pickles) that :meth:`load` reads; whole or not at all."""
        arrays = {"correlations": self.correlations, "eps": np.float64(self.eps), "solver": np.str_(self.solver),
                  "fingerprint": np.str_(self.fingerprint), "num_views": np.int64(self.num_views)}
        for i, (mean, projection) in enumerate(zip(self.means, self.projections)):
            arrays[f"mean_{i}"] = mean
            arrays[f"projection_{i}"] = projection
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str) -> FittedCCA:
        """Reads a file written by :meth:`save`; anything missing or inconsistent raises ``DataError``."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {key: z[key] for key in z.files}
        except FileNotFoundError:
            raise DataError(f"{path}: CCA file does not exist") from None
        except Exception as e:  # BadZipFile, ValueError (pickled data or a bare .npy), OSError ...
            raise DataError(f"{path}: cannot read as a saved CCA .npz ({type(e).__name__}: {e})") from None
        try:
            num_views = int(arrays["num_views"])
            means = tuple(np.asarray(arrays[f"mean_{i}"], np.float32) for i in range(num_views))
            projections = tuple(np.asarray(arrays[f"projection_{i}"], np.float32) for i in range(num_views))
            fitted = cls(means=means, projections=projections,
                         correlations=np.asarray(arrays["correlations"], np.float64), eps=float(arrays["eps"]),
                         solver=str(arrays["solver"]), fingerprint=str(arrays["fingerprint"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: not a saved CCA (missing or bad entry: {e})") from None
        _check_fitted(fitted, path)
        return fitted


def _check_fitted(fitted: FittedCCA, what: str) -> None:
    k = fitted.correlations.shape[0] if fitted.correlations.ndim == 1 else -1
    if fitted.num_views < 2 or k < 1 or fitted.solver not in SOLVERS:
        raise DataError(f"{what}: not a saved CCA ({fitted.num_views} views, correlations of shape "
                        f"{fitted.correlations.shape}, solver {fitted.solver!r})")
    for i, (mean, projection) in enumerate(zip(fitted.means, fitted.projections)):
        if mean.ndim != 1 or projection.shape != (mean.shape[0], k):
            raise DataError(f"{what}: view {i} has a mean of shape {mean.shape} and a projection of shape "
                            f"{projection.shape}; expected [d] and [d, {k}]")


def _as_float32_matrix(x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"CCA {what}: expected a numeric [N, d] array, got {x.dtype} {x.shape}")
    return x.astype(np.float32, copy=False)


def _covariance_matrices(views: Sequence[np.ndarray], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference's ``A`` and ``B`` (float64, ``eps`` on both diagonals) from float32 centred views."""
    n = views[0].shape[0]
    dims = [v.shape[1] for v in views]
    offsets = np.cumsum([0] + dims)
    a = np.zeros((offsets[-1],) * 2)
    b = np.zeros((offsets[-1],) * 2)
    scale = np.float32(1.0 / (n - 1))
    for i, vi in enumerate(views):
        rows = slice(offsets[i], offsets[i + 1])
        b[rows, rows] = scale * (vi.T @ vi)  # float32 product, then copied into float64 (as the reference)
        for j in range(i + 1, len(views)):
            cols = slice(offsets[j], offsets[j + 1])
            cross = scale * (vi.T @ views[j])
            a[rows, cols] = cross
            a[cols, rows] = cross.T
    a[np.diag_indices_from(a)] += eps
    b[np.diag_indices_from(b)] += eps
    return a, b


def _top_eigenpairs(a: np.ndarray, b: np.ndarray, k: int, solver: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (real parts, descending) and unit-norm eigenvectors (real parts) of the top ``k`` pairs."""
    import scipy.linalg  # local: only fitting needs scipy

    if solver == "eig":
        values, vectors = scipy.linalg.eig(a, b)
    else:
        try:
            values, vectors = scipy.linalg.eigh(a, b)
        except np.linalg.LinAlgError as e:
            raise DataError(f"CCA (solver 'eigh'): the auto-covariances are not positive definite ({e}); "
                            f"use solver 'eig' or more distinct samples than dimensions") from None
        vectors = vectors / np.linalg.norm(vectors, axis=0, keepdims=True)  # eigh gives B-orthonormal vectors
    order = np.argsort(values)[::-1][:k]
    top_values, top_vectors = np.real(values[order]), np.real(vectors[:, order])
    if not (np.all(np.isfinite(top_values)) and np.all(np.isfinite(top_vectors))):
        raise DataError("CCA: non-finite eigenvalues or eigenvectors among the top k (are the views rank-deficient?)")
    return top_values, top_vectors


def fit_cca(views: Sequence[np.ndarray], k: int = NUM_COMPONENTS, *, eps: float = EPS, solver: str = "eig",
            fingerprint: str = "") -> FittedCCA:
    """Fits the reference's multi-view CCA on paired samples.

    Args:
        views: two or more ``[N, d_i]`` arrays, row ``t`` of each belonging to sample ``t``. Cast to float32.
            Memory: one centred float32 copy of every view on top of the inputs.
        k: directions kept, at most the smallest view width.
        eps: added to the diagonals of ``A`` and ``B``.
        solver: ``"eig"`` (``scipy.linalg.eig``, the reference) or ``"eigh"`` (same projections up to column sign).
        fingerprint: stored in the result (see :class:`FittedCCA`).
    """
    if solver not in SOLVERS:
        raise ConfigError(f"unknown CCA solver {solver!r}: expected one of {', '.join(SOLVERS)}")
    views = [_as_float32_matrix(v, f"view {i}") for i, v in enumerate(views)]
    if len(views) < 2:
        raise ConfigError(f"CCA needs at least 2 views, got {len(views)}")
    n = views[0].shape[0]
    for i, v in enumerate(views):
        if v.shape[0] != n:
            raise DataError(f"CCA views must be paired: view 0 has {n} rows, view {i} has {v.shape[0]}")
        if not np.all(np.isfinite(v)):
            raise DataError(f"CCA view {i} contains NaN or infinite values")
    if n < 2:
        raise DataError(f"CCA needs at least 2 samples, got {n}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= min(v.shape[1] for v in views):
        raise ConfigError(f"CCA k must be an integer in [1, {min(v.shape[1] for v in views)}], got {k!r}")
    means = tuple(v.mean(axis=0) for v in views)
    centred = [v - mean for v, mean in zip(views, means)]
    a, b = _covariance_matrices(centred, eps)
    del centred
    values, vectors = _top_eigenpairs(a, b, int(k), solver)
    splits = np.cumsum([v.shape[1] for v in views])[:-1]
    projections = tuple(p.astype(np.float32) for p in np.split(vectors, splits, axis=0))
    return FittedCCA(means=means, projections=projections, correlations=values, eps=float(eps), solver=solver,
                     fingerprint=fingerprint)


def load_or_fit_cca(path: str | None, fingerprint: str, make_views: Callable[[], Sequence[np.ndarray]],
                    k: int = NUM_COMPONENTS, *, eps: float = EPS, solver: str = "eig") -> FittedCCA:
    """The fit cached at ``path`` if it was made from data with this ``fingerprint`` and the same k, eps and
    solver; otherwise fits on ``make_views()`` and (with ``path`` not None) saves the result there."""
    if path is not None and os.path.isfile(path):
        cached = FittedCCA.load(path)
        if (cached.fingerprint, cached.k, cached.eps, cached.solver) == (fingerprint, k, eps, solver):
            return cached
    fitted = fit_cca(make_views(), k, eps=eps, solver=solver, fingerprint=fingerprint)
    if path is not None:
        fitted.save(path)
    return fitted


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``a.b / (max(|a|, 1e-8) max(|b|, 1e-8))`` in float32, as ``torch.nn.functional.cosine_similarity``."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    norms = np.maximum(np.linalg.norm(a, axis=1), COSINE_EPS) * np.maximum(np.linalg.norm(b, axis=1), COSINE_EPS)
    return np.sum(a * b, axis=1) / norms


def pair_cosines(fitted: FittedCCA, first: np.ndarray, second: np.ndarray, views: tuple[int, int] = (0, 1)
                 ) -> np.ndarray:
    """float32 ``[N]``: per pair ``t``, the cosine of ``first[t]`` projected as view ``views[0]`` and ``second[t]``
    projected as view ``views[1]``."""
    first_projected = fitted.project(views[0], first)
    second_projected = fitted.project(views[1], second)
    if first_projected.shape[0] != second_projected.shape[0]:
        raise DataError(f"CCA score: {first_projected.shape[0]} first-view rows but {second_projected.shape[0]} "
                        f"second-view rows; the pairs must line up")
    return cosine_similarity(first_projected, second_projected)


def mean_of_batch_means(values: np.ndarray, batch_size: int = SCORE_BATCH_SIZE) -> float:
    """The mean of ``values`` over consecutive batches of ``batch_size`` (the last one possibly smaller), then the
    unweighted mean of those batch means, so a smaller last batch weighs as much as a full one (as the reference)."""
    values = np.asarray(values, np.float64).reshape(-1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if values.size == 0:
        raise DataError("CCA score of an empty set of pairs")
    starts = np.arange(0, values.size, batch_size)
    return float(np.mean(np.add.reduceat(values, starts) / np.diff(np.append(starts, values.size))))


def correlation_score(fitted: FittedCCA, first: np.ndarray, second: np.ndarray, *, views: tuple[int, int] = (0, 1),
                      batch_size: int = SCORE_BATCH_SIZE) -> float:
    """The reference's correlation score of a set of pairs, in their given order (no shuffling):
    :func:`mean_of_batch_means` of :func:`pair_cosines`. For the joint score on prior samples, the reference takes
    the plain mean over one batch: pass ``batch_size=len(first)``."""
    return mean_of_batch_means(pair_cosines(fitted, first, second, views), batch_size)
