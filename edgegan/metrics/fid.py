"""Fréchet distance and Inception Score on any feature space, in float64 numpy.

Layered like pytorch-fid: features → ``statistics`` → ``frechet_distance``. Statistics are taken over
the whole sample set at once, never averaged per batch (the issue's rule; averaging per-batch FIDs
is biased upward by the small-sample term).

The matrix square root is not ``scipy.linalg.sqrtm``: both covariances are symmetric positive
semi-definite, so ``tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1)))`` with ``sqrt(S1)`` from a
symmetric eigendecomposition. That is exact, needs only numpy, never returns a complex result and
copes with singular covariances (ReLU features often have dead units) without the ``eps * I``
retry pytorch-fid needs. The tests check it against scipy's ``sqrtm`` where scipy is installed.
"""

from __future__ import annotations

import numpy as np

from edgegan.metrics.errors import MetricError


def _check_features(features: np.ndarray, name: str = "features", min_rows: int = 2) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2:
        raise MetricError(f"{name} must be a 2-D array (N samples, D dims), got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise MetricError(f"{name} needs at least {min_rows} samples, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise MetricError(f"{name} holds {int((~np.isfinite(x)).sum())} non-finite values (NaN or inf)")
    return x.astype(np.float64, copy=False)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of the whole set, float64."""
    x = _check_features(features)
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, sigma


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; tiny negative eigenvalues are rounding."""
    w, v = np.linalg.eigh((m + m.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr sqrt(S1 S2)`` for symmetric PSD S1, S2: the eigenvalues of S1 S2 are those of sqrt(S1) S2 sqrt(S1)."""
    r = _sqrt_psd(sigma1)
    w = np.linalg.eigvalsh(r @ sigma2 @ r)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def _check_stats(mu: np.ndarray, sigma: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise MetricError(f"{name}: mean {mu.shape} and covariance {sigma.shape} do not fit (expected (D,) and (D, D))")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise MetricError(f"{name}: mean or covariance holds non-finite values")
    return mu, sigma


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2))`` (Heusel et al. 2017), clipped at 0 against rounding."""
    mu1, sigma1 = _check_stats(mu1, sigma1, "first set")
    mu2, sigma2 = _check_stats(mu2, sigma2, "second set")
    if mu1.shape != mu2.shape:
        raise MetricError(f"feature sizes differ: {mu1.shape[0]} vs {mu2.shape[0]} dims")
    diff = mu1 - mu2
    d = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(d, 0.0))


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two whole feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*statistics(a), *statistics(b))


def _check_probs(probs: np.ndarray) -> np.ndarray:
    p = _check_features(probs, "class probabilities", min_rows=1)
    if (p < 0).any():
        raise MetricError("class probabilities must be non-negative")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        worst = float(np.abs(sums - 1.0).max())
        raise MetricError(f"class probabilities must sum to 1 per row (worst row is off by {worst:.3g}); pass softmax outputs")
    return p


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(y) with 0 * log(0) = 0."""
    positive = x > 0
    return np.where(positive, x * np.log(np.where(positive, y, 1.0)), 0.0)


def _score(p: np.ndarray) -> float:
    marginal = p.mean(axis=0, keepdims=True)
    kl = (_xlogy(p, p) - _xlogy(p, marginal)).sum(axis=1)
    return float(np.exp(kl.mean()))


def inception_score(probs: np.ndarray) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))`` over the whole set (Salimans et al. 2016), p(y) its own marginal.

    Between 1 (every row the same) and K (confident and uniform over K classes).
    """
    return _score(_check_probs(probs))


def inception_score_splits(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Mean and standard deviation of the score over ``splits`` contiguous parts (the original protocol)."""
    p = _check_probs(probs)
    if not 1 <= splits <= p.shape[0]:
        raise MetricError(f"splits must be between 1 and the number of samples ({p.shape[0]}), got {splits}")
    scores = [_score(part) for part in np.array_split(p, splits)]
    return float(np.mean(scores)), float(np.std(scores))
