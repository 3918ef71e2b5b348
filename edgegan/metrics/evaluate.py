"""One call that measures a set of generated images against a reference set with every metric.

The whole set is reported, never Inception Score alone: on MNIST IS barely separates models (a
well-tuned scratch baseline scored 89 % of the teacher's IS), so FID in the domain classifier's
space, SWD and sharpness sit beside it. A metric that cannot be computed is reported as
``{"available": False, "reason": ...}``, never replaced by another number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgegan.metrics._images import check_images
from edgegan.metrics.errors import MetricError
from edgegan.metrics.fid import fid_from_features, frechet_distance, inception_score, statistics
from edgegan.metrics.fidelity import psnr, ssim
from edgegan.metrics.manifold import kid, knn_radii, precision_recall
from edgegan.metrics.reference import reference_subset
from edgegan.metrics.sharpness import sharpness
from edgegan.metrics.swd import SWDConfig, SWDDescriptors, swd_between, swd_descriptors

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


@dataclass(frozen=True)
class PreparedReference:
    """Everything ``evaluate`` needs of the reference set, computed once: a bench scores many models
    against the same reference, and its classifier features, SWD patches, sharpness and Inception
    activations do not depend on the model."""

    dataset: ImageDataset  # the (random) reference draw
    classifier: DomainClassifier | None
    classifier_stats: tuple[np.ndarray, np.ndarray] | None  # (mu, sigma) of the reference's features
    classifier_is_reference: float | None
    swd: SWDDescriptors
    sharpness: float
    inception_status: dict[str, Any]
    inception_net: Any = None  # InceptionNet when available
    inception_stats: tuple[np.ndarray, np.ndarray] | None = None
    classifier_features: np.ndarray | None = None  # for precision/recall and KID (issue 13)
    classifier_radii: np.ndarray | None = None  # each reference feature's k-NN radius
    inception_features: np.ndarray | None = None
    inception_radii: np.ndarray | None = None


def prepare_reference(reference: ImageDataset, *, classifier: DomainClassifier | None = None, swd_seed: int = 0,
                      swd_config: SWDConfig = SWDConfig(), inception: InceptionOptions | bool | None = None,
                      n_reference: int | None = None, reference_seed: int = 0) -> PreparedReference:
    ref = reference_subset(reference, n_reference, reference_seed)
    r = check_images(ref.images, f"{ref.name} reference images", min_count=2)
    stats = is_ref = fb = None
    if classifier is not None:
        fb, pb = classifier.features_and_probs(r)
        stats, is_ref = statistics(fb), inception_score(pb)
    inc_status, net, inc_stats, inc_feats = _prepare_inception(r, inception)
    return PreparedReference(ref, classifier, stats, is_ref, swd_descriptors(r, seed=swd_seed, config=swd_config,
                             name=f"{ref.name} reference images"), sharpness(r), inc_status, net, inc_stats,
                             fb, None if fb is None else knn_radii(_f64(fb)),
                             inc_feats, None if inc_feats is None else knn_radii(_f64(inc_feats)))


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def manifold_metrics(prefix: str, feats: np.ndarray, ref_feats: np.ndarray, ref_radii: np.ndarray | None,
                     seed: int = 0) -> dict[str, Any]:
    """Precision, recall (k-NN manifolds) and KID (mean ± std over subsets) in one feature space."""
    pr = precision_recall(_f64(feats), _f64(ref_feats), real_radii=ref_radii)
    return {f"{prefix}_precision": pr.precision, f"{prefix}_recall": pr.recall,
            f"{prefix}_kid": kid(_f64(feats), _f64(ref_feats), seed=seed).to_dict()}


def _prepare_inception(r: np.ndarray, inception: InceptionOptions | bool | None):
    if inception is False:
        return unavailable("not requested"), None, None, None
    from edgegan.metrics.inception import InceptionNet, InceptionOptions, inception_available

    options = InceptionOptions() if inception is None or inception is True else inception
    ok, reason = inception_available(options)
    if not ok:
        return unavailable(reason), None, None, None
    net = InceptionNet(options)
    feats = net.activations(r)[0]
    return {"available": True, "reason": reason}, net, statistics(feats), feats


def _classifier_section(x: np.ndarray, ref: PreparedReference) -> dict[str, Any]:
    if ref.classifier is None:
        why = (f"dataset {ref.dataset.name!r} has no labels: classifier metrics need a labelled dataset"
               if ref.dataset.labels is None else "no domain classifier was given")
        return {k: unavailable(why) for k in ("classifier_fid", "classifier_is", "classifier_is_reference",
                                              "classifier_precision", "classifier_recall", "classifier_kid")}
    fa, pa = ref.classifier.features_and_probs(x)
    return {"classifier_fid": frechet_distance(*statistics(fa), *ref.classifier_stats),
            "classifier_is": inception_score(pa), "classifier_is_reference": ref.classifier_is_reference,
            **manifold_metrics("classifier", fa, ref.classifier_features, ref.classifier_radii, ref.swd.seed)}


def _inception_section(x: np.ndarray, ref: PreparedReference) -> dict[str, Any]:
    if ref.inception_net is None:
        return {k: ref.inception_status for k in ("inception_fid", "inception_is", "inception_precision",
                                                  "inception_recall", "inception_kid")}
    fa, pa = ref.inception_net.activations(x)
    return {"inception_fid": frechet_distance(*statistics(fa), *ref.inception_stats), "inception_is": inception_score(pa),
            **manifold_metrics("inception", fa, ref.inception_features, ref.inception_radii, ref.swd.seed)}


def _fidelity_section(images: np.ndarray, teacher_images: np.ndarray | None) -> dict[str, Any]:
    if teacher_images is None:
        why = "no teacher images given (fidelity compares student and teacher images for the same z)"
        return {"psnr_db": unavailable(why), "ssim": unavailable(why)}
    return {"psnr_db": psnr(images, teacher_images), "ssim": ssim(images, teacher_images)}


def evaluate(images: np.ndarray, reference: ImageDataset | PreparedReference, *,
             classifier: DomainClassifier | None = None, teacher_images: np.ndarray | None = None, swd_seed: int = 0,
             swd_config: SWDConfig = SWDConfig(), inception: InceptionOptions | bool | None = None,
             n_reference: int | None = None, reference_seed: int = 0) -> dict[str, Any]:
    """Every quality metric of ``images`` (N, C, H, W) in [-1, 1] against ``reference``.

    ``reference`` is a dataset, or a ``prepare_reference`` result when several sets are scored against
    the same reference (then the reference options given there apply, and those here are ignored).
    ``n_reference`` draws that many reference images at random (seeded); ``teacher_images`` are the
    teacher's outputs for the same latents as ``images`` (fidelity, RQ1); ``inception`` None tries
    pytorch-fid with its default weights location, False skips it. PSNR is ``inf`` for identical sets.
    """
    x = check_images(images, "generated images", min_count=2)
    ref = reference if isinstance(reference, PreparedReference) else prepare_reference(
        reference, classifier=classifier, swd_seed=swd_seed, swd_config=swd_config, inception=inception,
        n_reference=n_reference, reference_seed=reference_seed)
    if x.shape[1:] != ref.dataset.images.shape[1:]:
        raise MetricError(f"generated images {x.shape[1:]} and reference images {ref.dataset.images.shape[1:]} "
                          "differ in shape")
    metrics: dict[str, Any] = {}
    metrics.update(_classifier_section(x, ref))
    metrics.update(_inception_section(x, ref))
    s = swd_between(swd_descriptors(x, seed=ref.swd.seed, config=ref.swd.config, name="generated images"), ref.swd)
    metrics["swd"] = {"mean": s.mean, "per_level": {str(k): v for k, v in s.per_level.items()},
                      "scale": ref.swd.config.scale, "seed": ref.swd.seed}
    from edgegan.metrics.colour import colour_fd

    metrics["colour_fd"] = colour_fd(x, ref.dataset.images)  # SWD normalises colour away (issue 19)
    metrics["sharpness"] = sharpness(x)
    metrics["sharpness_reference"] = ref.sharpness
    metrics.update(_fidelity_section(x, teacher_images))
    return {
        "n_samples": int(len(x)),
        "n_reference": int(len(ref.dataset)),
        "n_pairs": None if teacher_images is None else int(len(x)),
        "reference": ref.dataset.describe(),
        "classifier": None if ref.classifier is None else ref.classifier.summary(),
        "inception": ref.inception_status,
        "metrics": metrics,
    }
