"""How far a quantized file's KID change stands above what harmless perturbations of the same size do
(issue 22: int16x8 within 0.3 % of fp32). For one unconditional student run:

    .venv/bin/python bench/scripts/int8_kid_floor.py RUN [--samples 1000] [--noise-seeds 3]

- the fp32, int8, int8+auto, int16x8 and int16x8+auto TFLite files, made by ``export_run`` as
  ``edgegan export`` makes them, their images through edgegan_runtime on the bench's latents
  (``latent(samples, L, 0)``, as ``edgegan bench``);
- the fp32 file's images rounded to 8-bit levels (what a display shows), and with white noise of the
  power of each quantized file's own error against fp32 (``noise-seeds`` seeds);
- each scored by ``evaluate`` against one prepared reference (the dataset's test split, its domain
  classifier), so a change against fp32 is the perturbation's alone.

Writes ``bench/results/int8-kid-floor.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_int8 import METRICS, _metric  # noqa: E402 - the same metrics, read the same way

from edgegan.manifest import now_iso, versions  # noqa: E402

log = logging.getLogger("int8_kid_floor")
RESULTS = Path(__file__).resolve().parents[1] / "results"
FILES = [("fp32", "none", None), ("int8", "int8", None), ("int8+auto", "int8", "auto"),
         ("int16x8", "int16x8", None), ("int16x8+auto", "int16x8", "auto")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, nargs="?")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--noise-seeds", type=int, default=3)
    ap.add_argument("--dataset", help="reference dataset (default: the run's, else its teacher's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--merge", nargs="+", type=Path, metavar="FOLDER",
                    help="one table from earlier runs' --out folders (RUN is then ignored)")
    a = ap.parse_args(argv)
    if a.merge:
        return merge(a.merge, a.out)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("edgegan", "onnxscript", "onnx_ir", "torch", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import edgegan_runtime as rt
    from edgegan.checkpoint import load_run
    from edgegan.bench.harness import _dataset_of
    from edgegan.data import load_dataset
    from edgegan.manifest import read_manifest
    from edgegan.export import export_run
    from edgegan.metrics.classifier import get_classifier
    from edgegan.metrics.evaluate import evaluate, prepare_reference
    from edgegan_runtime.probe import cpu_name

    student = load_run(a.run)
    m = read_manifest(a.run)
    t = Path(m["distill"]["teacher"]["spec"])
    tm = read_manifest(t) if (t if t.is_dir() else t.parent).joinpath("manifest.json").exists() else None
    ds, _ = _dataset_of(m, tm, a.dataset, None)  # as `edgegan bench` picks it
    if ds is None:
        raise SystemExit(f"{a.run}: no dataset to score against: pass --dataset")
    size = student.output_shape[-1]
    ref = load_dataset(ds, split="test", image_size=size)
    clf = get_classifier(ds, image_size=size, progress=False)
    prepared = prepare_reference(ref, classifier=clf, n_reference=min(len(ref), max(a.samples, 1000)),
                                 reference_seed=0, swd_seed=0, inception=False)
    z = rt.latent(a.samples, student.latent_dim, 0)
    rows: list[dict[str, Any]] = []

    def score(name: str, images: np.ndarray, **extra: Any) -> None:
        q = evaluate(images.astype(np.float32), prepared)["metrics"]
        rows.append({"case": name, **{k: _metric(q, k) for k in METRICS}, **extra})
        log.info("%-28s %s", name, "  ".join(f"{k} {rows[-1][k]:.5g}" for k in METRICS))

    images: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="edgegan-kid-floor-") as tmp:
        for name, q, kf in FILES:
            out = Path(tmp) / name
            e = export_run(a.run, format="tflite", quantize=q, out=out, allow_mismatch=True, keep_float=kf)
            g = rt.load(out / e["file"], threads=1)
            images[name] = np.concatenate([g.generate_from(z[i:i + 100]) for i in range(0, len(z), 100)])
            g.close()
            err = images[name] - images.get("fp32", images[name])
            score(name, images[name], parity_passed=e["parity"]["passed"], parity_psnr_db=e["parity"]["psnr_db"],
                  kept_float=(e.get("layers") or {}).get("kept_float"),
                  rms_vs_fp32=float(np.sqrt(np.mean(err.astype(np.float64) ** 2))),
                  mean_vs_fp32=float(np.mean(err)))
    base = images["fp32"]
    score("fp32, 8-bit rounded", np.round((base + 1) * 127.5) / 127.5 - 1)
    for r in [r for r in rows if r["case"] not in ("fp32", "fp32, 8-bit rounded")]:
        sigma = r["rms_vs_fp32"]
        for s in range(a.noise_seeds):
            noisy = np.clip(base + np.random.default_rng(s).normal(0, sigma, base.shape), -1, 1)
            score(f"fp32 + noise at {r['case']}'s rms #{s}", noisy, sigma=sigma)
    b = rows[0]
    for r in rows:
        r["change_vs_fp32"] = {k: (r[k] - b[k]) / abs(b[k]) for k in METRICS}
    isa = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f in ("avx2", "avx512f", "avx512_vnni")})
    res = {"created": now_iso(), "machine": f"{cpu_name()}, {' '.join(isa)}", "versions": versions("ai-edge-litert", "ai-edge-quantizer", "litert-torch"),
           "run": str(a.run), "dataset": ds, "samples": a.samples, "rows": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "int8-kid-floor.json").write_text(json.dumps(res, indent=2) + "\n")
    (a.out / "int8-kid-floor.md").write_text(markdown([res]))
    return 0


def _mean_noise(res: dict[str, Any], case: str, k: str) -> float:
    v = [r["change_vs_fp32"][k] for r in res["rows"] if r["case"].startswith(f"fp32 + noise at {case}'s rms")]
    return sum(v) / len(v)


def _noise_cases(results: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, float]]]:
    by: dict[tuple[str, str], list[dict[str, float]]] = {}
    for res in results:
        for r in res["rows"]:
            if r["case"].startswith("fp32 + noise at "):
                by.setdefault((res["run"], r["case"].rsplit(" #", 1)[0]), []).append(r["change_vs_fp32"])
    return by


def _noise_seeds(results: list[dict[str, Any]]) -> int:
    return max((len(v) for v in _noise_cases(results).values()), default=0)


def _noise_spread(results: list[dict[str, Any]]) -> float:
    """The widest spread, in percentage points, of one metric over the noise seeds of one case."""
    return max((100 * (max(c[k] for c in v) - min(c[k] for c in v))
                for v in _noise_cases(results).values() for k in METRICS), default=0.0)


def markdown(results: list[dict[str, Any]]) -> str:
    """One table of every run's files, each beside the mean change white noise of its own rms makes."""
    r0 = results[0]
    v = next((r["versions"] for r in results if r["versions"].get("ai-edge-litert")), r0["versions"])
    lines = ["# Quantized files' quality change against harmless perturbations of the same size (issue #22)", "",
             f"Written by `bench/scripts/int8_kid_floor.py` on {r0['created'][:10]} ({r0['machine']}; "
             f"torch {v.get('torch')}, ai-edge-litert {v.get('ai-edge-litert')}, "
             f"ai-edge-quantizer {v.get('ai-edge-quantizer')}). Each file as `edgegan export` makes it, "
             f"run through edgegan_runtime on the bench's {r0['samples']} latents and scored like `edgegan bench` "
             "(the dataset's domain classifier; one reference draw); Δ against the same run's fp32 file. "
             "`noise Δ` is the mean change of the fp32 images plus white noise with the file's own rms error "
             f"({_noise_seeds(results)} noise seeds; they agree to {_noise_spread(results):.2f} points): what an error "
             "of that size does to the metric when it "
             "carries no structure. `8-bit` is the fp32 images rounded to display levels.", "",
             "| run | file | parity | PSNR vs fp32 dB | ΔKID | noise ΔKID | ΔFID | noise ΔFID | ΔSWD | noise ΔSWD |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        name = Path(res["run"]).name
        for r in res["rows"]:
            c = r["change_vs_fp32"]
            if r["case"] == "fp32" or r["case"].startswith("fp32 + noise"):
                continue
            if r["case"] == "fp32, 8-bit rounded":
                cells = [name, "8-bit", "—", "—"] + [x for k in METRICS for x in (f"{c[k]:+.2%}", "—")]
            else:
                kf = f" ({','.join(r['kept_float'])})" if r.get("kept_float") else ""
                cells = [name, r["case"] + kf, "pass" if r["parity_passed"] else "FAIL", f"{r['parity_psnr_db']:.1f}"]
                cells += [x for k in METRICS for x in (f"{c[k]:+.2%}", f"{_mean_noise(res, r['case'], k):+.2%}")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def merge(folders: list[Path], out: Path) -> int:
    results = [json.loads((f / "int8-kid-floor.json").read_text()) for f in folders]
    out.mkdir(parents=True, exist_ok=True)
    (out / "int8-kid-floor.json").write_text(json.dumps({"runs": results}, indent=2) + "\n")
    (out / "int8-kid-floor.md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
