"""The size/quality curve of face64 students (issue 19) from ``face64.py``'s recorded JSONs: PSNR and SSIM
to the teacher against compression ratio, one line per width profile, with the issue's goals.

    python bench/scripts/face64_size_curve.py bench/results/face64-flat.json bench/results/face64-size.json \
        --out bench/results/face64-size-curve.png

A row's profile is read from its label ("flat ..." or "paper ..."); "k steps" in it ("15k steps") marks a
long run, drawn apart from the equal-step points. Exported files (no ratio) and fresh-z pilots are left out.
Several seeds of one size are drawn as their mean, each run as a faint point.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

GOALS = [(50, 22.0, 0.70), (20, 25.0, 0.80)]  # (ratio at least, PSNR dB, SSIM): issue 19


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    points: dict[str, dict[float, list[tuple[float, float, str]]]] = defaultdict(lambda: defaultdict(list))
    for p in a.json:
        for r in json.loads(p.read_text())["rows"]:
            if not r.get("ratio") or r.get("psnr_db") is None:
                continue
            label = r["model"]
            profile = "flat" if label.startswith("flat") else "paper" if label.startswith("paper") else None
            if profile is None:
                continue
            if "fresh z" in label:  # a pilot of another budget, not a point of the curve
                continue
            extra = ", long runs (15-20k steps)" if "k steps" in label else ""
            points[profile + extra][round(float(r["ratio"]), 1)].append((r["psnr_db"], r["ssim"], label))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, i, name in ((axes[0], 0, "PSNR to the teacher, dB"), (axes[1], 1, "SSIM to the teacher")):
        for profile, by_ratio in sorted(points.items()):
            xs = sorted(by_ratio)
            for x in xs:  # every run, faint; the mean of the seeds, joined
                ax.scatter([x] * len(by_ratio[x]), [v[i] for v in by_ratio[x]], s=12, alpha=0.4,
                           color="C0" if profile.startswith("flat") else "C1")
            means = [sum(v[i] for v in by_ratio[x]) / len(by_ratio[x]) for x in xs]
            ax.plot(xs, means, "*--" if "long" in profile else "o-", ms=10 if "long" in profile else 6,
                    label=profile.replace("flat", "flat profile").replace("paper", "paper profile"),
                    color="C0" if profile.startswith("flat") else "C1")
        for ratio, psnr, ssim in GOALS:
            goal = psnr if i == 0 else ssim
            ax.plot([ratio, 80], [goal, goal], ":", color="k", lw=1)
            ax.annotate(f"goal at >= {ratio}:1", (ratio, goal), textcoords="offset points", xytext=(2, 3), fontsize=8)
        ax.set_xscale("log")
        ax.set_xticks([5, 10, 20, 50])
        ax.set_xticklabels(["5:1", "10:1", "20:1", "50:1"])
        ax.minorticks_off()
        ax.set_xlabel("compression ratio (teacher params / student params)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("face64 students, pixel MSE, no face data (2,000 latents)")
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
