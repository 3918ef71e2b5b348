"""Shared checks and separable filters on image batches (N, C, H, W) in [-1, 1]; numpy only."""

from __future__ import annotations

import numpy as np

from edgegan.metrics.errors import MetricError

RANGE_TOLERANCE = 0.05  # quantised exports may overshoot tanh's [-1, 1] a little; [0, 255] input must not pass


def check_images(images: np.ndarray, name: str = "images", *, min_count: int = 1) -> np.ndarray:
    """Validate a batch (N, C, H, W), C in {1, 3}, finite and in [-1, 1]; returned as an array (not copied)."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise MetricError(f"{name} must be (N, C, H, W) with C = 1 or 3, got shape {x.shape}")
    if x.shape[0] < min_count:
        raise MetricError(f"{name} needs at least {min_count} images, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise MetricError(f"{name} hold non-finite values (NaN or inf)")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise MetricError(f"{name} must lie in [-1, 1] (generator output range), found [{lo:.3g}, {hi:.3g}]")
    return x


def check_pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    """Two batches of the same shape (paired images, e.g. student and teacher for the same z)."""
    a, b = check_images(a, names[0]), check_images(b, names[1])
    if a.shape != b.shape:
        raise MetricError(f"{names[0]} {a.shape} and {names[1]} {b.shape} must have the same shape (paired images)")
    return a, b


def to_grey_255(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] → (N, H, W) float64 grey in [0, 255] (ITU-R 601 luma, as OpenCV's cvtColor)."""
    x = (np.asarray(images, dtype=np.float64) + 1.0) * 127.5
    if x.shape[1] == 1:
        return x[:, 0]
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def correlate_valid(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """1-D correlation along ``axis`` keeping only positions where the kernel fits inside ('valid')."""
    axis = axis % x.ndim
    n = x.shape[axis] - len(kernel) + 1
    if n < 1:
        raise MetricError(f"images of size {x.shape[axis]} are smaller than the {len(kernel)}-tap filter")
    out = np.zeros(x.shape[:axis] + (n,) + x.shape[axis + 1:], dtype=np.result_type(x, kernel))
    for i, w in enumerate(kernel):
        if w != 0:
            out += w * np.take(x, np.arange(i, i + n), axis=axis)
    return out


def separable_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The same 1-D kernel along the last two axes, 'valid' borders."""
    return correlate_valid(correlate_valid(x, kernel, -2), kernel, -1)


def separable_reflect(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The same 1-D kernel along the last two axes, size kept by mirror padding (d c b | a b c d | c b a)."""
    r = len(kernel) // 2
    pad = [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)]
    return separable_valid(np.pad(x, pad, mode="reflect"), kernel)
