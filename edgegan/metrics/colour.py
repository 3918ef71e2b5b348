"""Colour statistics distance: what SWD cannot see (issue 19).

SWD (``edgegan.metrics.swd``) normalises each set's patch descriptors by that set's own per-channel
mean and standard deviation, as ProGAN does, so a global colour cast or a contrast change moves it
by nothing: on the face64 teacher a +0.25 red / -0.25 blue cast scored *below* a faithful copy. This
metric sees exactly that: each image is described by the mean and standard deviation of each of its
channels (2C numbers), and the distance is the Fréchet distance between the two sets' Gaussians of
those descriptors (Heusel et al.'s formula in a 2C-dimensional space), reported ×1e3. Closed forms:
0 for a set against itself; a constant shift c of one channel adds c² (×1e3) exactly.
"""

from __future__ import annotations

import numpy as np

from edgegan.metrics._images import check_images
from edgegan.metrics.fid import frechet_distance, statistics

COLOUR_SCALE = 1e3


def colour_descriptors(images: np.ndarray) -> np.ndarray:
    """(N, 2C): each image's per-channel mean, then per-channel standard deviation, float64."""
    x = check_images(images, "images", min_count=2).astype(np.float64)
    return np.concatenate([x.mean(axis=(2, 3)), x.std(axis=(2, 3))], axis=1)


def colour_fd(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between the colour descriptors of two image sets (N, C, H, W), ×1e3."""
    return COLOUR_SCALE * frechet_distance(*statistics(colour_descriptors(a)), *statistics(colour_descriptors(b)))
