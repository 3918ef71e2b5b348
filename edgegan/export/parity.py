"""Numerical parity of an exported file with its PyTorch model, measured through ``edgegan_runtime``.

The file is run by the runtime that apps ship (never by torch) on fixed latents
(``edgegan_runtime.latent``): once on all ``n`` latents, and once per fixed batch size so every
signature of a TFLite file is exercised. Like Optimum's validation, every failure is collected
before one typed error reports the largest differences per signature.

A conditional generator's file (issue 20) is checked per label: the ``n`` latents once with each class
(every class, or ``labels.PARITY_CLASSES`` evenly spaced ones when there are more: ``label_<c>`` runs),
then each fixed batch size with the checked classes in turn; the PyTorch module gets the same z and label.

An image-to-image file (issue 21) is checked the same way on real inputs instead of latents
(``check_images``; which inputs, ``images.ImageFile.parity``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from edgegan.errors import ParityError
from edgegan.export.formats import CHANGED_LEVELS, Thresholds

if TYPE_CHECKING:
    from edgegan.export.labels import Labels

log = logging.getLogger(__name__)

PEAK = 2.0  # peak-to-peak range of images in [-1, 1]
PSNR_CAP = 200.0  # dB reported for (near-)identical outputs, keeping the manifest valid JSON
# Fused integer kernels against the file's QDQ arithmetic simulated in float: a few output
# quantization steps (2/255 each for uint8 images in [-1, 1]); a saturating kernel is off by ~1-2.
KERNEL_MAX_ABS = 0.05
KERNEL_REFERENCE = "the file's QDQ arithmetic simulated in float (onnxruntime, graph optimizations off)"
PERCENTILE_MIN_VALUES = 10_000  # >= 10 values above the 99.9th percentile
STATS = ("max_abs", "mean_abs", "psnr_db", "p99_abs", "p999_abs", "changed_pixels")


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse <= 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(PEAK * PEAK / mse))


def pixels(x: np.ndarray) -> np.ndarray:
    """The runtime's 8-bit pixels of images in [-1, 1] (``edgegan_runtime.contract.PIXELS_RULE``), as int16."""
    return np.clip(np.rint((x.astype(np.float32) + np.float32(1)) * np.float32(127.5)), 0, 255).astype(np.int16)


def compare(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    """Differences that matter for images (issue #22), besides the single worst pixel:

    * ``p99_abs`` / ``p999_abs``: the 99th / 99.9th percentile of the per-value error;
    * ``changed_pixels``: the fraction of 8-bit output values (the pixels an app shows) that differ
      by more than ``CHANGED_LEVELS`` levels of 255 — quantizing the output alone moves many by one.
    """
    if got.shape != want.shape:
        raise ParityError(f"exported model returns {list(got.shape)}, PyTorch {list(want.shape)}")
    if not np.all(np.isfinite(got)):
        return {k: float("nan") for k in STATS}
    d = np.abs(got.astype(np.float64) - want.astype(np.float64)).ravel()
    p99, p999 = np.percentile(d, [99.0, 99.9])
    levels = np.abs(pixels(got) - pixels(want))
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "psnr_db": psnr_db(got, want),
            "p99_abs": float(p99), "p999_abs": float(p999),
            "changed_pixels": float(np.mean(levels > CHANGED_LEVELS))}


def failures(stats: dict[str, float], t: Thresholds, values: int | None = None) -> list[str]:
    """What ``stats`` break of ``t``. The 99.9th percentile is judged only on runs of at least
    ``PERCENTILE_MIN_VALUES`` values (``values``; None: any): on one 32×32 image it is the worst pixel
    again, which is what it replaces. The 64-latent run always has enough."""
    out = []
    if any(math.isnan(v) for v in stats.values()):
        out.append("output is not finite")
    if t.max_abs is not None and not stats["max_abs"] <= t.max_abs:
        out.append(f"max_abs {stats['max_abs']:.3g} > {t.max_abs:g}")
    if t.psnr_db is not None and not stats["psnr_db"] >= t.psnr_db:
        out.append(f"psnr {stats['psnr_db']:.2f} dB < {t.psnr_db:g} dB")
    if t.p999_abs is not None and (values is None or values >= PERCENTILE_MIN_VALUES) \
            and not stats["p999_abs"] <= t.p999_abs:
        out.append(f"p99.9 abs {stats['p999_abs']:.3g} > {t.p999_abs:g}")
    if t.changed_pixels is not None and not stats["changed_pixels"] <= t.changed_pixels:
        out.append(f"{stats['changed_pixels']:.2%} of 8-bit pixels off by > {CHANGED_LEVELS} levels "
                   f"(limit {t.changed_pixels:.2%})")
    return out


def check(path: str | Path, reference: Callable[[np.ndarray], np.ndarray], *, latent_dim: int,
          batches: Sequence[int] | None, thresholds: Thresholds, n: int, seed: int,
          kernel_reference: Callable[[np.ndarray], np.ndarray] | None = None, classes: Labels | None = None) -> dict:
    """Run ``path`` through the runtime on ``latent(n, latent_dim, seed)`` and compare with ``reference``.

    ``kernel_reference``, for quantized files, computes the file's own arithmetic without this CPU's
    integer kernels: the runtime's output must match it within ``KERNEL_MAX_ABS`` (``kernels``), so a
    file that is accurate only on this machine's instruction set fails here, not on a user's CPU.
    ``classes``: a conditional generator's (see the module doc); both references then take rows
    z ++ one-hot (``labels.rows``).

    Returns the manifest's ``parity`` section (``passed`` False on a mismatch; the caller decides
    whether that raises). A file the runtime cannot load or run counts as a mismatch with ``error``.
    """
    import edgegan_runtime as rt

    from edgegan.export import labels

    runs = _runs(n, batches, classes)
    z = rt.latent(max(count for count, _ in runs.values()), latent_dim, seed)
    if classes is None:
        want_all = reference(z)
        wants = [want_all[:count] for count, _ in runs.values()]
    else:
        wants = [reference(labels.rows(z[:count], c, classes)) for count, c in runs.values()]
    section: dict = {"n": n, "seed": seed, "thresholds": thresholds.to_dict()}
    if classes is not None:
        section["labels"] = {"classes": classes.count, "checked": labels.parity_classes(classes.count),
                             "rule": labels.parity_rule(classes.count)}
    try:
        gen = rt.load(path)
        section["backend"] = gen.backend
        per = {}
        outs = []
        for (label, (count, c)), want in zip(runs.items(), wants):
            got = gen.generate_from(z[:count]) if c is None else gen.generate_from(z[:count], labels=c)
            per[label] = compare(got, want)
            outs.append((got, want))
        gen.close()
    except rt.RuntimeModelError as e:
        section.update({**{k: None for k in STATS}, "passed": False,
                        "error": f"the runtime could not run the file: {e}"})
        return section
    got_all = np.concatenate([g.reshape(len(g), -1) for g, _ in outs])
    want_all = np.concatenate([w.reshape(len(w), -1) for _, w in outs])
    total = compare(got_all, want_all)
    problems = {label: failures(s, thresholds, values=g.size) for (label, s), (g, _) in zip(per.items(), outs)}
    if kernel_reference is not None:  # the n-latent runs ("all", or one per checked class)
        first = list(runs.values())[:1 if classes is None else len(section["labels"]["checked"])]
        x = np.concatenate([labels.rows(z[:count], c, classes) for count, c in first])
        k = compare(np.concatenate([got for got, _ in outs[:len(first)]]), kernel_reference(x))
        section["kernels"] = {"reference": KERNEL_REFERENCE, **k, "max_abs_limit": KERNEL_MAX_ABS}
        problems["kernels"] = failures(k, Thresholds(max_abs=KERNEL_MAX_ABS))
    section.update(total)
    section["runs"] = per
    section["passed"] = not any(problems.values())
    if not section["passed"]:
        section["failures"] = {k: v for k, v in problems.items() if v}
    return _json_safe(section)


def check_images(path: str | Path, reference: Callable[[np.ndarray], np.ndarray], runs: dict[str, np.ndarray], *,
                 thresholds: Thresholds, kernel_reference: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """An image-to-image file (issue 21) through the runtime's ``translate_array`` on each run's inputs (float32
    (N, C, h, w) in [-1, 1]; the first is ``all``), compared with ``reference`` on the same inputs, as ``check``
    does for latents (the same statistics, failures and kernel check, on ``all``). Returns the parity section
    without ``n`` and ``seed`` (the caller's)."""
    import edgegan_runtime as rt

    wants = [reference(x) for x in runs.values()]
    section: dict = {"thresholds": thresholds.to_dict()}
    try:
        gen = rt.load(path)
        section["backend"] = gen.backend
        outs = [gen.translate_array(x) for x in runs.values()]
        gen.close()
    except rt.RuntimeModelError as e:
        section.update({**{k: None for k in STATS}, "passed": False,
                        "error": f"the runtime could not run the file: {e}"})
        return section
    per = {label: compare(got, want) for label, got, want in zip(runs, outs, wants)}
    total = compare(np.concatenate([g.reshape(-1) for g in outs]), np.concatenate([w.reshape(-1) for w in wants]))
    problems = {label: failures(s, thresholds, values=g.size) for (label, s), g in zip(per.items(), outs)}
    if kernel_reference is not None:
        k = compare(outs[0], kernel_reference(runs["all"]))
        section["kernels"] = {"reference": KERNEL_REFERENCE, **k, "max_abs_limit": KERNEL_MAX_ABS}
        problems["kernels"] = failures(k, Thresholds(max_abs=KERNEL_MAX_ABS))
    section.update(total)
    section["runs"] = per
    section["passed"] = not any(problems.values())
    if not section["passed"]:
        section["failures"] = {k: v for k, v in problems.items() if v}
    return _json_safe(section)


def _runs(n: int, batches: Sequence[int] | None, classes: Labels | None) -> dict[str, tuple[int, np.ndarray | None]]:
    """{run: (latents, their classes or None)}: all ``n`` latents (once per checked class of a conditional
    generator), then each fixed batch size (a conditional one's with the checked classes in turn)."""
    from edgegan.export import labels

    checked = None if classes is None else np.array(labels.parity_classes(classes.count), dtype=np.int64)
    runs = {"all": (n, None)} if checked is None else {f"label_{c}": (n, np.full(n, c)) for c in checked}
    for b in batches or (1,):  # dynamic batch: also check batch 1
        runs[f"batch_{b}"] = (b, None if checked is None else np.resize(checked, b))
    return runs


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def describe(section: dict) -> str:
    """One paragraph for ParityError: every failing run with its numbers."""
    if section.get("error"):
        return section["error"]
    lines = []
    for label, why in section.get("failures", {}).items():
        s = section["runs"].get(label) or section.get(label) or {}  # "kernels" sits beside the runs
        nums = (f"max_abs={_fmt(s.get('max_abs'))} mean_abs={_fmt(s.get('mean_abs'))} psnr={_fmt(s.get('psnr_db'))} dB"
                + (f" p99.9={_fmt(s['p999_abs'])} changed={_fmt(s['changed_pixels'])}" if "p999_abs" in s else ""))
        lines.append(f"  {label}: {'; '.join(why)} ({nums})")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "nan" if v is None else f"{v:.4g}"
