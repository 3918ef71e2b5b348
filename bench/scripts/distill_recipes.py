"""The MNIST recipe table (issue #9): one d=64 teacher, d=2 students distilled with each recipe at
equal wall-clock time, exported to TFLite int8, and scored by ``edgegan bench`` beside the paper's
baseline (a d=2 GAN trained from scratch).

Equal wall-clock time, reproducibly: each recipe's cost per step is measured first, side by side
(alternating short runs, median), and each recipe then gets the number of steps that costs what
``--mse-steps`` steps of the MSE recipe cost. The seconds each run really took are recorded too.
Writes bench/results/distill-recipes.{json,md} and distill-recipes.png (the same z for every model).

    .venv/bin/python bench/scripts/distill_recipes.py --teacher runs/mnist/teacher64 [--mse-steps 3000]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "results"
log = logging.getLogger("distill_recipes")


def per_step(teacher: str, recipe: str, out: Path, steps: int, seed: int) -> float:
    from edgegan.distill import DistillConfig, distill

    m = distill(DistillConfig(teacher=teacher, d=2, loss=recipe, steps=steps, checkpoint_every=0, seed=seed), out,
                progress=False)
    return m["distill"]["seconds_per_step"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="runs/mnist/teacher64")
    ap.add_argument("--recipes", default="mse,joint,best")
    ap.add_argument("--mse-steps", type=int, default=3000, help="steps of the MSE recipe; the time budget of every recipe")
    ap.add_argument("--baseline-steps", type=int, default=3000)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--timing-steps", type=int, default=30)
    ap.add_argument("--out", default="runs/mnist-recipes")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("edgegan", "onnxscript", "onnx_ir", "torch", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import tempfile

    import torch

    from edgegan.app.bench_runs import run_bench
    from edgegan.checkpoint import load_run
    from edgegan.errors import ParityError
    from edgegan.export import export_run
    from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
    from edgegan.sysinfo import machine
    from edgegan.viz import save_comparison
    from edgegan_runtime import latent

    torch.set_num_threads(1)  # costs measured as the runs below train: one thread each
    recipes = [r.strip() for r in a.recipes.split(",") if r.strip()]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    # 1. cost per step, alternating (machine noise hits every recipe alike)
    timing = out / "timing.json"  # measured once: a rerun (after a kill) reuses the same budget
    if timing.exists():
        sps = json.loads(timing.read_text())["seconds_per_step"]
    else:
        sps = {r: [] for r in recipes}
        with tempfile.TemporaryDirectory(prefix="recipes-timing-") as tmp:
            for rnd in range(2):
                for r in recipes:
                    sps[r].append(per_step(a.teacher, r, Path(tmp) / f"{r}-{rnd}", a.timing_steps, seed=rnd))
        atomic_write_json(timing, {"seconds_per_step": sps})
    cost = {r: statistics.median(v) for r, v in sps.items()}
    budget = cost["mse"] * a.mse_steps
    steps = {r: max(1, round(budget / cost[r])) for r in recipes}
    log.info("seconds/step %s -> steps at equal time %s", cost, steps)
    # 2. the students (and the scratch baseline) side by side, one thread each, resumable; then each
    # student exported as it would ship
    cli = [sys.executable, "-m", "edgegan.app.cli", "--threads", "1"]
    jobs = []
    for r in recipes:
        run = out / f"student-{r}"
        if not (run / "manifest.json").exists():
            jobs.append(subprocess.Popen([*cli, "distill", "--teacher", a.teacher, "--d", "2", "--loss", r, "--steps",
                                          str(steps[r]), "--out", str(run), "--quiet",
                                          *(["--resume"] if (run / "state.json").exists() else [])]))
    baseline = out / "baseline2"
    if not (baseline / "manifest.json").exists():
        jobs.append(subprocess.Popen([*cli, "train-teacher", "--dataset", "mnist", "--kind", "baseline", "--d", "2",
                                      "--lr", "1e-3", "--steps", str(a.baseline_steps), "--sample-every", "0",
                                      "--out", str(baseline), "--quiet",
                                      *(["--resume"] if (baseline / "state.json").exists() else [])]))
    if any(j.wait() for j in jobs):
        raise SystemExit("a training run failed (rerun this script: finished runs are reused, killed ones resumed)")
    rows = []
    for r in recipes:
        run = out / f"student-{r}"
        m = json.loads((run / "manifest.json").read_text())
        if not any(e["format"] == "tflite" for e in m.get("exports", [])):
            try:
                export_run(run, format="tflite", quantize="int8", batch=[1, 64])
            except ParityError as e:  # kept and scored all the same, its failed parity recorded in the table
                log.warning("%s", e)
                export_run(run, format="tflite", quantize="int8", batch=[1, 64], allow_mismatch=True)
        m = json.loads((run / "manifest.json").read_text())
        par = next(e["parity"] for e in m["exports"] if e["format"] == "tflite")
        rows.append({"recipe": r, "terms": m["distill"]["recipe"], "steps": m["distill"]["steps"],
                     "seconds": m["distill"]["seconds"], "seconds_per_step_measured_alone": round(cost[r], 5),
                     "int8_parity": {k: par.get(k) for k in ("passed", "max_abs", "psnr_db", "thresholds")}})
    # 3. the bench: same metrics, same latents, same reference for every model
    res = run_bench([str(out / f"student-{r}") for r in recipes], out=out / "bench", samples=a.samples,
                    baselines=[str(baseline)], progress=False)
    bench = res
    teacher_q = base_q = None
    for row, section in zip(rows, bench["results"]):
        for model in section["models"]:
            q = model["quality"]["metrics"]
            cells = {"clf_fid": q["classifier_fid"], "clf_is": q["classifier_is"], "swd": q["swd"]["mean"],
                     "sharpness": q["sharpness"], "psnr_db": q.get("psnr_db"), "ssim": q.get("ssim")}
            if model["kind"] == "teacher" and model["format"] == "torch":
                teacher_q = cells
            elif model["kind"] == "student":
                row["student"] = cells
            elif model["kind"] == "export" and model["precision"] == "int8":
                row["int8"] = cells | {"bytes": model["bytes"], "p50_us": model["latency"].get("p50_us")}
            elif model["kind"] == "baseline":
                base_q = cells
    # 4. the same z for every model, side by side
    z = torch.from_numpy(latent(64, 100, 1))
    grids = {}
    with torch.no_grad():
        grids["teacher d=64"] = load_run(a.teacher).generator(z).numpy()
        for r in recipes:
            grids[f"{r} d=2"] = load_run(out / f"student-{r}").generator(z).numpy()
        grids["scratch d=2"] = load_run(baseline).generator(z).numpy()
    save_comparison(grids, RESULTS / "distill-recipes.png")
    doc = {"created": now_iso(), "machine": machine(), "versions": versions(), "teacher": a.teacher,
           "teacher_quality": teacher_q, "baseline_quality": base_q, "samples": a.samples,
           "budget": {"mse_steps": a.mse_steps, "seconds_per_step": cost, "timing": sps, "steps": steps},
           "baseline_steps": a.baseline_steps, "rows": rows, "bench": str(out / "bench" / "bench.md")}
    atomic_write_json(RESULTS / "distill-recipes.json", doc)
    atomic_write_bytes(RESULTS / "distill-recipes.md", markdown(doc).encode())
    print(markdown(doc))
    return 0


def _parity(row: dict) -> str:
    p = row.get("int8_parity") or {}
    nums = f"max abs {p.get('max_abs', float('nan')):.2f}, {p.get('psnr_db', float('nan')):.1f} dB"
    return f"passed ({nums})" if p.get("passed") else f"**failed** ({nums}; limits max abs 0.5, 30 dB)"


def markdown(doc: dict) -> str:
    t, mc = doc["teacher_quality"], doc["machine"]
    lines = ["# Distillation recipes on MNIST: d=64 teacher -> d=2 student (126:1), equal wall-clock time", "",
             f"Machine: {mc['cpu']} ({mc.get('isa', '?')}), {mc['cores']} cores; torch {doc['versions'].get('torch')}; "
             f"{doc['created']}. Every recipe gets the time that {doc['budget']['mse_steps']:,} steps of `mse` cost "
             "(cost per step measured side by side first; `seconds` is what each run really took, on a shared machine). "
             f"Metrics from `edgegan bench` on {doc['samples']:,} images per model, the same latents for all; clf-FID and "
             "clf-IS in the domain classifier's feature space (not Inception; the `best` recipe's perceptual term uses "
             "the teacher's discriminator, not this classifier, so the classifier stays an independent judge). "
             "Ratios are to the teacher; PSNR is to the teacher for the same z.", "",
             "| model | terms | EMA | schedule | steps | seconds | clf-FID ↓ (× teacher) | clf-IS ↑ (% teacher) | "
             "sharpness (% teacher) | SWD ↓ | PSNR vs T dB | TFLite int8: clf-FID, bytes, parity |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
             f"| teacher d=64 | — | — | — | — | — | {t['clf_fid']:.1f} | {t['clf_is']:.2f} | {t['sharpness']:.0f} | "
             f"{t['swd']:.1f} | — | — |"]
    for r in doc["rows"]:
        s, q8, rc = r["student"], r.get("int8", {}), r["terms"]
        lines.append(f"| {r['recipe']} d=2 | `{rc['terms']}` | {rc['ema'] or 'off'} | {rc['lr_schedule']} | {r['steps']:,} | "
                     f"{r['seconds']:.0f} | {s['clf_fid']:.1f} ({s['clf_fid'] / t['clf_fid']:.2f}×) | "
                     f"{s['clf_is']:.2f} ({100 * s['clf_is'] / t['clf_is']:.0f} %) | "
                     f"{s['sharpness']:.0f} ({100 * s['sharpness'] / t['sharpness']:.0f} %) | {s['swd']:.1f} | "
                     f"{s['psnr_db']:.1f} | {q8.get('clf_fid', float('nan')):.1f}, {q8.get('bytes', 0):,} B, {_parity(r)} |")
    b = doc["baseline_quality"]
    lines.append(f"| scratch baseline d=2 | GAN from scratch, lr 1e-3 | off | constant | {doc['baseline_steps']:,} | — | "
                 f"{b['clf_fid']:.1f} ({b['clf_fid'] / t['clf_fid']:.2f}×) | {b['clf_is']:.2f} "
                 f"({100 * b['clf_is'] / t['clf_is']:.0f} %) | {b['sharpness']:.0f} ({100 * b['sharpness'] / t['sharpness']:.0f} %) | "
                 f"{b['swd']:.1f} | — | — |")
    lines += ["", "Goal (issue #9) for the best d=2 recipe: clf-FID ≤ 2× the teacher's, clf-IS ≥ 95 % and sharpness "
              "≥ 80 % of the teacher's, PSNR to the teacher within 2 dB of the MSE student's.", "",
              "TFLite int8 files that fail the exporter's parity check (max abs ≤ 0.5 per pixel and PSNR ≥ 30 dB "
              "against the float student) are kept with `--allow-mismatch` only for this table, and marked.", "",
              "![teacher and students, same z](distill-recipes.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
