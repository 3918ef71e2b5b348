"""Metrics that separate fidelity from diversity, on any feature space, in float64 numpy.

* ``precision_recall``: improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision
  and Recall Metric for Assessing Generative Models"). Each set's manifold is the union of balls around
  its samples, each ball's radius the distance to the sample's k-th nearest neighbour in its own set
  (k = 3, the paper's choice). Precision: the share of generated samples inside the real manifold
  (fidelity); recall: the share of real samples inside the generated manifold (diversity).
* ``kid``: Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
  estimate of MMD² with the cubic polynomial kernel ``k(x, y) = (x·y / D + 1)^3``, averaged over
  random subsets, with its standard deviation over those subsets as the error bar. Unlike FID it is
  unbiased, so small sample sets compare fairly.

Why here (issue 13): a FID in a 10-class classifier's feature space ranked high-contrast noise above
real digit-like samples; precision falls for such noise even when FID does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegan.metrics.errors import MetricError
from edgegan.metrics.fid import _check_features

PR_K = 3  # Kynkäänniemi et al.'s default neighbourhood size
KID_SUBSETS = 20  # subsets averaged (torch-fidelity uses 100; 20 keeps a bench of many models cheap on a CPU)
KID_SUBSET_SIZE = 1000  # capped at the smaller set's size


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), clipped at 0 (rounding)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.clip(d, 0.0, None)


def knn_radii(x: np.ndarray, k: int = PR_K, block: int = 1024) -> np.ndarray:
    """Squared distance of each row of ``x`` to its k-th nearest *other* row of ``x``."""
    out = np.empty(len(x))
    for i in range(0, len(x), block):
        d = _sq_dists(x[i:i + block], x)
        # the row itself is at distance 0 and is the 0-th neighbour, so the k-th other is at index k
        out[i:i + block] = np.partition(d, k, axis=1)[:, k]
    return out


def _coverage(queries: np.ndarray, support: np.ndarray, radii: np.ndarray, block: int = 1024) -> float:
    """Share of ``queries`` that lie within the ball of at least one ``support`` sample."""
    inside = 0
    for i in range(0, len(queries), block):
        d = _sq_dists(queries[i:i + block], support)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(queries)


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int

    def to_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "k": self.k}


def precision_recall(generated: np.ndarray, real: np.ndarray, *, k: int = PR_K,
                     real_radii: np.ndarray | None = None) -> PrecisionRecall:
    """Improved precision and recall of ``generated`` (N, D) features against ``real`` (M, D).

    ``real_radii`` (from ``knn_radii(real, k)``) may be passed when many sets are scored against the
    same real set."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise MetricError(f"precision/recall: k must be an integer >= 1, got {k!r}")
    g = _check_features(generated, "generated features", min_rows=k + 1)
    r = _check_features(real, "real features", min_rows=k + 1)
    if g.shape[1] != r.shape[1]:
        raise MetricError(f"precision/recall: generated features have {g.shape[1]} dims, real {r.shape[1]}")
    rr = knn_radii(r, k) if real_radii is None else np.asarray(real_radii, dtype=np.float64)
    if rr.shape != (len(r),):
        raise MetricError(f"precision/recall: real_radii has shape {rr.shape}, expected ({len(r)},)")
    gr = knn_radii(g, k)
    return PrecisionRecall(_coverage(g, r, rr), _coverage(r, g, gr), k)


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KID's kernel ``(a·b / D + 1)^3``."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimate of MMD² between samples ``x`` (m, D) and ``y`` (n, D) with the cubic
    polynomial kernel: mean of k(x_i, x_j) over i≠j, plus the same for y, minus twice the mean of k(x_i, y_j)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise MetricError(f"MMD² needs at least 2 samples per set, got {m} and {n}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


@dataclass(frozen=True)
class KID:
    mean: float
    std: float
    subsets: int
    subset_size: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "subsets": self.subsets, "subset_size": self.subset_size}


def kid(generated: np.ndarray, real: np.ndarray, *, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        seed: int = 0) -> KID:
    """KID of ``generated`` (N, D) against ``real`` (M, D): unbiased MMD² over ``subsets`` random subsets
    of ``min(subset_size, N // 2, M // 2)`` samples each (drawn without replacement, seeded); mean and std
    over them. Half the smaller set at most, so the subsets differ and the std is an error bar."""
    g = _check_features(generated, "generated features")
    r = _check_features(real, "real features")
    if g.shape[1] != r.shape[1]:
        raise MetricError(f"KID: generated features have {g.shape[1]} dims, real {r.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise MetricError(f"KID: needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    size = max(2, min(subset_size, len(g) // 2, len(r) // 2))
    rng = np.random.default_rng(seed)
    vals = np.array([mmd2_unbiased(g[rng.choice(len(g), size, replace=False)], r[rng.choice(len(r), size, replace=False)])
                     for _ in range(subsets)])
    return KID(float(vals.mean()), float(vals.std(ddof=1)) if subsets > 1 else 0.0, subsets, size)


__all__ = ["KID", "KID_SUBSETS", "KID_SUBSET_SIZE", "PR_K", "PrecisionRecall", "kid", "knn_radii", "mmd2_unbiased",
           "polynomial_kernel", "precision_recall"]
