"""Variance-of-Laplacian sharpness (Pech-Pacheco et al. 2000): the blur measure of Aguinaldo et al. 2019.

Per image, as ``cv2.Laplacian(grey, cv2.CV_64F).var()`` computes it: grey in [0, 255] (ITU-R 601
luma for colour), the 3x3 kernel [[0, 1, 0], [1, -4, 1], [0, 1, 0]] with mirrored borders
(OpenCV's BORDER_REFLECT_101), population variance over the pixels. Blurrier images score lower.
"""

from __future__ import annotations

import numpy as np

from edgegan.metrics._images import check_images, to_grey_255


def laplacian(grey: np.ndarray) -> np.ndarray:
    """Discrete Laplacian of (N, H, W) images, same size, mirrored borders."""
    p = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4.0 * p[:, 1:-1, 1:-1]


def sharpness_per_image(images: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each image (N,), in grey levels squared (0..255 scale)."""
    x = check_images(images)
    return laplacian(to_grey_255(x)).var(axis=(1, 2))


def sharpness(images: np.ndarray) -> float:
    """Mean variance of the Laplacian over the set."""
    return float(sharpness_per_image(images).mean())
