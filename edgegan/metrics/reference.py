"""Reference sets drawn at random, never the first n: MNIST's first and last 5,000 test images come
from different writers, and their classifier-space FID to each other is ~13 against ~2 for random
halves (measured by tests/test_metrics.py), so a leading slice is a biased reference."""

from __future__ import annotations

import numpy as np

from edgegan.metrics.errors import MetricError


def reference_indices(n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct indices out of ``range(n_total)`` drawn uniformly at random (sorted), reproducible by seed."""
    if not 1 <= n <= n_total:
        raise MetricError(f"cannot draw {n} reference images out of {n_total}")
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def random_halves(n_total: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of ``range(n_total)`` (each sorted); an odd element out is dropped."""
    if n_total < 2:
        raise MetricError(f"cannot split {n_total} images into two halves")
    perm = np.random.default_rng(seed).permutation(n_total)
    half = n_total // 2
    return np.sort(perm[:half]), np.sort(perm[half:2 * half])


def reference_subset(dataset, n: int | None, seed: int = 0):
    """A random ``n``-image subset of an ImageDataset (the dataset itself when ``n`` is None or covers it)."""
    from edgegan.data import ImageDataset

    total = len(dataset)
    if n is None or n == total:
        return dataset
    idx = reference_indices(total, n, seed)
    labels = None if dataset.labels is None else dataset.labels[idx]
    return ImageDataset(dataset.name, dataset.images[idx], labels, dataset.num_classes,
                        f"{dataset.source} (random {n} of {total}, seed {seed})", dataset.split)
