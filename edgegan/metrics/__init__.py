"""Quality metrics: FID/IS in a domain classifier's feature space, Inception FID/IS, SWD, sharpness, fidelity.

Cheap to import: only numpy here. The torch modules are ``edgegan.metrics.classifier`` (the domain
classifier) and ``edgegan.metrics.inception`` (the pytorch-fid adapter); import them directly.
"""

from edgegan.metrics.colour import colour_fd
from edgegan.metrics.errors import MetricError, NeedsLabelsError
from edgegan.metrics.evaluate import evaluate, is_available, unavailable
from edgegan.metrics.fid import fid_from_features, frechet_distance, inception_score, inception_score_splits, statistics
from edgegan.metrics.fidelity import psnr, psnr_per_image, ssim, ssim_per_image
from edgegan.metrics.reference import random_halves, reference_indices, reference_subset
from edgegan.metrics.sharpness import sharpness, sharpness_per_image
from edgegan.metrics.swd import SWDConfig, SWDResult, swd

__all__ = [
    "MetricError", "NeedsLabelsError", "colour_fd", "SWDConfig", "SWDResult", "evaluate", "fid_from_features", "frechet_distance",
    "inception_score", "inception_score_splits", "is_available", "psnr", "psnr_per_image", "random_halves",
    "reference_indices", "reference_subset", "sharpness", "sharpness_per_image", "ssim", "ssim_per_image",
    "statistics", "swd", "unavailable",
]
