"""How much a conditional student's KID moves under perturbations no one would call a defect (issue 20):
its fp32 images rounded to 8-bit levels (what a display shows), and white noise of the power of its int8
file's error (sigma 0.025: 38 dB PSNR), three noise seeds. The int8 files' KID change (bench_conditional.py)
reads against these.

    .venv/bin/python bench/scripts/conditional_kid_floor.py --teacher RUN --students S0 S1 S2 [--sigma 0.025]

Prints one line per student: KID of the fp32 images, and each perturbation's KID as a ratio to it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgegan.checkpoint import load_run
from edgegan.data import load_dataset
from edgegan.metrics.classifier import get_classifier
from edgegan.metrics.conditional import per_class
from edgegan_runtime import latent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conditional import torch_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--students", nargs="+", required=True)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--sigma", type=float, default=0.025)
    ap.add_argument("--z-seed", type=int, default=123)
    a = ap.parse_args()
    t = load_run(a.teacher)
    size = t.output_shape[1]
    ref = load_dataset(a.dataset, split="test", image_size=size)
    clf = get_classifier(a.dataset, None, image_size=size)
    rf = clf.features(ref.images)
    y = np.repeat(np.arange(t.num_classes), a.per_class)
    z = latent(len(y), t.latent_dim, a.z_seed)

    def kid(images: np.ndarray) -> float:
        return per_class(images.astype(np.float32), y, ref.images, ref.labels, clf, reference_features=rf)["kid"]["mean"]

    psnr = 10 * np.log10(4 / a.sigma ** 2)
    for s in a.students:
        im = torch_images(load_run(s).generator, z, y)
        base = kid(im)
        out = [f"{Path(s).name}: fp32 KID {base:.4f}", f"8-bit rounded x{kid(np.round((im + 1) * 127.5) / 127.5 - 1) / base:.4f}"]
        for seed in range(3):
            noisy = np.clip(im + np.random.default_rng(seed).normal(0, a.sigma, im.shape), -1, 1)
            out.append(f"noise {psnr:.0f} dB #{seed} x{kid(noisy) / base:.4f}")
        print("  ".join(out), flush=True)


if __name__ == "__main__":
    main()
