"""Closed-form checks of precision/recall on k-NN manifolds and of KID (edgegan.metrics.manifold)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgegan.metrics import MetricError
from edgegan.metrics.manifold import kid, knn_radii, mmd2_unbiased, polynomial_kernel, precision_recall


def _x(n: int = 200, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def test_identical_sets_have_precision_and_recall_one():
    x = _x()
    pr = precision_recall(x, x.copy())
    assert pr.precision == 1.0 and pr.recall == 1.0 and pr.k == 3


def test_disjoint_far_sets_have_precision_and_recall_zero():
    x = _x()
    pr = precision_recall(x + 1000.0, x)
    assert pr.precision == 0.0 and pr.recall == 0.0


def test_a_collapsed_generator_has_precision_but_no_recall():
    real = _x(300)
    collapsed = real[:10].repeat(30, axis=0) + 1e-6 * _x(300, seed=1)  # ten modes of the real set, no more
    pr = precision_recall(collapsed, real)
    assert pr.precision == 1.0
    assert pr.recall < 0.2


def test_knn_radius_is_the_kth_other_neighbour():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    # from 0: others at 1, 3, 7 -> k=1: 1, k=2: 3 (squared distances)
    assert knn_radii(x, k=1).tolist() == [1.0, 1.0, 4.0, 16.0]
    assert knn_radii(x, k=2).tolist() == [9.0, 4.0, 9.0, 36.0]


def test_precision_recall_by_hand_on_a_line():
    real = np.array([[0.0], [1.0], [2.0], [10.0]])
    fake = np.array([[0.5], [5.0], [9.5], [100.0]])
    # k=1 radii (squared): real 1,1,1,64 ; 0.5 is in 0's ball, 5 no (|10-5|²=25 <= 64 yes!), 9.5 yes, 100 no
    pr = precision_recall(fake, real, k=1)
    assert pr.precision == pytest.approx(3 / 4)
    # fake radii (k=1, squared): 0.5->4.5²=20.25, 5->4.5²=20.25, 9.5->4.5²=20.25, 100->90.5²
    # every real point lies within 4.5 of a fake point (0, 1, 2 near 0.5 or 5; 10 near 9.5)
    assert pr.recall == 1.0


def test_unbiased_mmd2_matches_the_formula_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([[2.0, 0.0], [0.0, -1.0]])
    k = lambda a, b: (np.dot(a, b) / 2 + 1) ** 3  # noqa: E731 - the kernel, written out
    sxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(3), 2)) / (3 * 2)
    syy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(2), 2)) / (2 * 1)
    sxy = sum(k(a, b) for a in x for b in y) / (3 * 2)
    assert mmd2_unbiased(x, y) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-12)
    assert polynomial_kernel(x, y)[2, 0] == pytest.approx(k(x[2], y[0]))


def test_unbiased_mmd2_has_zero_mean_for_samples_of_one_distribution():
    # Unbiasedness: over many independent draws from the same distribution the estimate averages 0
    # (a biased V-statistic would average clearly above 0 at this sample size).
    rng = np.random.default_rng(3)
    vals = [mmd2_unbiased(rng.standard_normal((20, 4)), rng.standard_normal((20, 4))) for _ in range(400)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))


def test_kid_of_a_set_with_itself_is_near_zero_and_of_a_shifted_set_is_not():
    x = _x(400)
    same = kid(x, x, subsets=10, subset_size=100)
    shifted = kid(x + 1.0, x, subsets=10, subset_size=100)
    assert abs(same.mean) < 3 * same.std + 1e-9
    assert shifted.mean > 10 * max(same.std, 1e-6)
    assert same.subset_size == 100 and same.subsets == 10


def test_kid_subset_size_is_capped_by_half_the_smaller_set():
    k = kid(_x(50), _x(80, seed=1), subsets=3)
    assert k.subset_size == 25 and k.std > 0  # the subsets differ, so the error bar is not zero


def test_bad_inputs_raise_metric_errors():
    with pytest.raises(MetricError, match="dims"):
        precision_recall(_x(20, 3), _x(20, 4))
    with pytest.raises(MetricError, match="k must"):
        precision_recall(_x(), _x(), k=0)
    with pytest.raises(MetricError, match="at least"):
        precision_recall(_x(3), _x())
    with pytest.raises(MetricError, match="non-finite"):
        kid(np.full((10, 2), np.nan), _x(10, 2))
