"""One call that measures a set of generated images against a reference set with every metric.

The whole set is reported, never Inception Score alone: on MNIST IS barely separates models (a
well-tuned scratch baseline scored 89 % of the teacher's IS), so FID in the domain classifier's
space, SWD and sharpness sit beside it. A metric that cannot be computed is reported as
``{"available": False, "reason": ...}``, never replaced by another number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgegan.metrics._images import check_images
from edgegan.metrics.errors import MetricError
from edgegan.metrics.fid import fid_from_features, inception_score
from edgegan.metrics.fidelity import psnr, ssim
from edgegan.metrics.reference import reference_subset
from edgegan.metrics.sharpness import sharpness
from edgegan.metrics.swd import SWDConfig, swd

if TYPE_CHECKING:
    from edgegan.data import ImageDataset
    from edgegan.metrics.classifier import DomainClassifier
    from edgegan.metrics.inception import InceptionOptions


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def is_available(value: Any) -> bool:
    return not (isinstance(value, dict) and value.get("available") is False)


def classifier_metrics(images: np.ndarray, reference: np.ndarray, classifier: DomainClassifier) -> dict[str, Any]:
    """FID and IS in the domain classifier's feature space, plus the reference's own IS (the ceiling)."""
    fa, pa = classifier.features_and_probs(images)
    fb, pb = classifier.features_and_probs(reference)
    return {"classifier_fid": fid_from_features(fa, fb), "classifier_is": inception_score(pa),
            "classifier_is_reference": inception_score(pb)}


def _classifier_section(images: np.ndarray, reference: ImageDataset, classifier: DomainClassifier | None):
    keys = ("classifier_fid", "classifier_is", "classifier_is_reference")
    if classifier is None:
        why = (f"dataset {reference.name!r} has no labels: classifier metrics need a labelled dataset"
               if reference.labels is None else "no domain classifier was given")
        return {k: unavailable(why) for k in keys}, None
    return classifier_metrics(images, reference.images, classifier), classifier.summary()


def _inception_section(images: np.ndarray, reference: np.ndarray, inception: InceptionOptions | bool | None):
    keys = ("inception_fid", "inception_is")
    if inception is False:
        return {k: unavailable("not requested") for k in keys}, unavailable("not requested")
    from edgegan.metrics.inception import InceptionOptions, inception_available, inception_fid_is

    options = InceptionOptions() if inception is None or inception is True else inception
    ok, reason = inception_available(options)
    if not ok:
        return {k: unavailable(reason) for k in keys}, unavailable(reason)
    r = inception_fid_is(images, reference, options)
    return {"inception_fid": r["fid"], "inception_is": r["is"]}, {"available": True, "reason": reason}


def _fidelity_section(images: np.ndarray, teacher_images: np.ndarray | None) -> dict[str, Any]:
    if teacher_images is None:
        why = "no teacher images given (fidelity compares student and teacher images for the same z)"
        return {"psnr_db": unavailable(why), "ssim": unavailable(why)}
    return {"psnr_db": psnr(images, teacher_images), "ssim": ssim(images, teacher_images)}


def evaluate(images: np.ndarray, reference: ImageDataset, *, classifier: DomainClassifier | None = None,
             teacher_images: np.ndarray | None = None, swd_seed: int = 0, swd_config: SWDConfig = SWDConfig(),
             inception: InceptionOptions | bool | None = None, n_reference: int | None = None,
             reference_seed: int = 0) -> dict[str, Any]:
    """Every quality metric of ``images`` (N, C, H, W) in [-1, 1] against ``reference``.

    ``n_reference`` draws that many reference images at random (seeded); ``teacher_images`` are the
    teacher's outputs for the same latents as ``images`` (fidelity, RQ1); ``inception`` None tries
    pytorch-fid with its default weights location, False skips it. PSNR is ``inf`` for identical sets.
    """
    x = check_images(images, "generated images", min_count=2)
    ref = reference_subset(reference, n_reference, reference_seed)
    r = check_images(ref.images, f"{ref.name} reference images", min_count=2)
    if x.shape[1:] != r.shape[1:]:
        raise MetricError(f"generated images {x.shape[1:]} and reference images {r.shape[1:]} differ in shape")
    metrics: dict[str, Any] = {}
    clf_metrics, clf_summary = _classifier_section(x, ref, classifier)
    metrics.update(clf_metrics)
    inc_metrics, inc_status = _inception_section(x, r, inception)
    metrics.update(inc_metrics)
    s = swd(x, r, seed=swd_seed, config=swd_config)
    metrics["swd"] = {"mean": s.mean, "per_level": {str(k): v for k, v in s.per_level.items()}, "scale": swd_config.scale,
                      "seed": swd_seed}
    metrics["sharpness"] = sharpness(x)
    metrics["sharpness_reference"] = sharpness(r)
    metrics.update(_fidelity_section(x, teacher_images))
    return {
        "n_samples": int(len(x)),
        "n_reference": int(len(r)),
        "n_pairs": None if teacher_images is None else int(len(x)),
        "reference": ref.describe(),
        "classifier": clf_summary,
        "inception": inc_status,
        "metrics": metrics,
    }
