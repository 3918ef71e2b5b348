"""Per-class quality of a conditional generator (issue 20): does it draw a 7 when asked for a 7, and do its
7s look like the data's 7s.

* **accuracy**: the fraction of images generated for class c that the domain classifier (trained on
  the real labelled data, independent of every generator) assigns to c; per class and over all.
* **KID per class**: the images asked for c against the reference images labelled c, in the domain
  classifier's feature space (unbiased MMD², so small per-class sets are not biased upwards as FID is);
  and the overall KID and FID of all images against the whole reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgegan.metrics.errors import MetricError
from edgegan.metrics.fid import fid_from_features
from edgegan.metrics.manifold import kid


def per_class(images: np.ndarray, labels: np.ndarray, reference: np.ndarray, reference_labels: np.ndarray,
              classifier: Any, *, names: list[str] | None = None, seed: int = 0,
              reference_features: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy and KID per requested class, and overall (see the module doc). ``labels`` (N,) are the
    classes the images were asked for; ``reference_labels`` (M,) the reference's true classes."""
    labels = np.asarray(labels)
    ref_y = np.asarray(reference_labels)
    if labels.shape != (len(images),) or ref_y.shape != (len(reference),):
        raise MetricError(f"per-class metrics need one label per image: {labels.shape} for {len(images)} images, "
                          f"{ref_y.shape} for {len(reference)} reference images")
    k = classifier.num_classes
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise MetricError(f"requested labels outside the classifier's [0, {k})")
    feats, probs = classifier.features_and_probs(images)
    ref_feats = classifier.features(reference) if reference_features is None else reference_features
    pred = probs.argmax(1)
    classes = []
    for c in np.unique(labels):
        mine, theirs = labels == c, ref_y == c
        row: dict[str, Any] = {"class": int(c), "name": names[c] if names else str(int(c)), "count": int(mine.sum()),
                               "accuracy": float((pred[mine] == c).mean())}
        if mine.sum() >= 4 and theirs.sum() >= 4:
            row["kid"] = kid(feats[mine].astype(np.float64), ref_feats[theirs].astype(np.float64), seed=seed).to_dict()
        classes.append(row)
    return {"accuracy": float((pred == labels).mean()),
            "kid": kid(feats.astype(np.float64), ref_feats.astype(np.float64), seed=seed).to_dict(),
            "classifier_fid": fid_from_features(feats, ref_feats),
            "mean_class_kid": float(np.mean([r["kid"]["mean"] for r in classes if "kid" in r])) if classes else None,
            "classes": classes}
