"""Fidelity of student images to the teacher's for the same latent z (Aguinaldo et al. 2019, RQ1).

Both take paired batches (N, C, H, W) in [-1, 1], so ``data_range`` is 2 by default.
"""

from __future__ import annotations

import numpy as np

from edgegan.metrics._images import check_pair, gaussian_kernel, separable_valid
from edgegan.metrics.errors import MetricError

# Wang et al. 2004: an 11x11 Gaussian window with sigma 1.5 and these constants.
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03
_CHUNK = 256  # images per step: keeps the float64 intermediates small for 10k-image sets


def _check_range(data_range: float) -> float:
    if not data_range > 0:
        raise MetricError(f"data_range must be positive, got {data_range}")
    return float(data_range)


def _psnr_from_mse(mse: np.ndarray | float, data_range: float) -> np.ndarray:
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(data_range ** 2 / np.where(mse > 0, mse, 1.0)), np.inf)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """PSNR in dB from the MSE over every pixel of the whole set; ``inf`` when the sets are identical."""
    a, b = check_pair(a, b)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(_psnr_from_mse(mse, _check_range(data_range)))


def psnr_per_image(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> np.ndarray:
    """PSNR of each pair (N,), dB; ``inf`` for identical pairs."""
    a, b = check_pair(a, b)
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return _psnr_from_mse(mse, _check_range(data_range))


def ssim_per_image(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> np.ndarray:
    """Mean SSIM of each pair (N,), averaged over channels and over the window positions that fit.

    Same numbers as ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=...)``: its mirrored borders are cropped away again.
    """
    a, b = check_pair(a, b)
    L = _check_range(data_range)
    return np.concatenate([_ssim_chunk(a[i:i + _CHUNK], b[i:i + _CHUNK], L) for i in range(0, len(a), _CHUNK)])



def _ssim_chunk(a: np.ndarray, b: np.ndarray, L: float) -> np.ndarray:
    c1, c2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)
    k = gaussian_kernel(SSIM_SIGMA, SSIM_RADIUS)
    mx, my = separable_valid(x, k), separable_valid(y, k)
    vx = separable_valid(x * x, k) - mx * mx
    vy = separable_valid(y * y, k) - my * my
    cxy = separable_valid(x * y, k) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(axis=(1, 2, 3))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """Mean SSIM over the set (1 for identical images)."""
    return float(ssim_per_image(a, b, data_range).mean())
