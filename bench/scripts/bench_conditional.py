"""Conditional students of a conditional teacher (issue 20): does the student draw the digit it is asked
for, as well as the teacher does, and does its TFLite int8 file?

For each model (the teacher, each student seed, each student's int8 TFLite file run by edgegan_runtime)
the same latents and labels: ``--per-class`` images of every class. Scored against the dataset's test
split by the domain classifier (trained on the real labelled data): per-class accuracy (the classifier's
verdict on the class asked for), KID per class and overall, classifier FID. Also the latency of the
two-input int8 file (runtime probe, batch 1). Writes bench/results/conditional.{json,md} and
conditional-grid.png (rows = labels; panels teacher / student / int8 for the same z).

    .venv/bin/python bench/scripts/bench_conditional.py --teacher RUN --students S0 S1 S2 \
        [--dataset mnist --data-dir DIR] [--per-class 500]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgegan.checkpoint import load_run
from edgegan.data import load_dataset
from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.metrics.classifier import get_classifier
from edgegan.metrics.conditional import per_class
from edgegan.sysinfo import machine
from edgegan.viz import save_comparison
from edgegan_runtime import latent

RESULTS = Path(__file__).resolve().parents[1] / "results"
GRID_Z = 8  # latents per label row in the grid


def torch_images(gen, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    gen.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(z), 500):
            out.append(gen(torch.from_numpy(z[i:i + 500]), torch.from_numpy(y[i:i + 500])).numpy())
    return np.concatenate(out)


PARITY: dict[str, dict] = {}  # file name -> the exporter's parity verdict and worst numbers


def int8_file(run: Path, work: Path, keep_float: str | None = None) -> Path:
    """The student's int8 file as `edgegan export --format tflite --quantize int8` makes it, kept (and scored)
    even where the exporter's parity check refuses it; its verdict is recorded in PARITY."""
    from edgegan.export import export_run

    dest = work / (run.name + ("-keep-float" if keep_float else ""))
    entry = export_run(run, out=dest, format="tflite", quantize="int8", batch=[1, 64], keep_float=keep_float,
                       allow_mismatch=True)
    par = entry.get("parity") or {}
    PARITY[entry["file"]] = {"passed": par.get("passed"), "failures": par.get("failures"),
                             **{k: par.get(k) for k in ("psnr_db", "p999_abs", "changed_pixels", "max_abs")}}
    return dest / entry["file"]


def runtime_images(path: Path, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, dict]:
    import edgegan_runtime as rt

    from edgegan.bench.probes import probe_runtime  # its own process: the file's latency and peak RSS alone

    with rt.load(path) as g:
        imgs = g.generate_from(z, labels=y)
    return imgs, probe_runtime(path, batch=1)


def unconditional_twin(run: Path, work: Path) -> Path:
    """An int8 file of the student's architecture without the label input (its own random weights: the
    latency of the same operators, one input fewer)."""
    from edgegan.models import build_generator
    from edgegan.testing import make_run

    src = load_run(run)
    args = {k: v for k, v in src.args.items() if k != "num_classes"}
    torch.manual_seed(0)
    make_run(work / "twin", build_generator(src.family, **args), args, family=src.family)
    return int8_file(work / "twin", work / "twin-out")


def probe_pair(path: Path) -> dict:
    from edgegan.bench.probes import probe_runtime

    return probe_runtime(path, batch=1)


def summarise(name: str, r: dict) -> dict:
    return {"model": name, "accuracy": r["accuracy"], "kid": r["kid"]["mean"], "kid_std": r["kid"]["std"],
            "mean_class_kid": r["mean_class_kid"], "classifier_fid": r["classifier_fid"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--students", nargs="+", required=True)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--no-int8", action="store_true", help="torch models only")
    ap.add_argument("--keep-float", default=None,
                    help="also score each student's int8 file made with --keep-float VALUE (e.g. auto)")
    ap.add_argument("--out", default=str(RESULTS / "conditional"))
    a = ap.parse_args()

    import os

    load_start = os.getloadavg()
    teacher = load_run(a.teacher)
    k, names = teacher.num_classes, teacher.class_names
    if not k:
        raise SystemExit(f"{a.teacher}: not a conditional teacher")
    ref = load_dataset(a.dataset, data_dir=a.data_dir, split="test", image_size=teacher.output_shape[1])
    clf = get_classifier(a.dataset, a.data_dir, image_size=teacher.output_shape[1])
    ref_feats = clf.features(ref.images)
    y = np.repeat(np.arange(k, dtype=np.int64), a.per_class)
    z = latent(len(y), teacher.latent_dim, a.seed)
    results, rows, images = {}, [], {}

    def score(name: str, imgs: np.ndarray) -> None:
        r = per_class(imgs, y, ref.images, ref.labels, clf, names=names, reference_features=ref_feats)
        results[name] = r
        rows.append(summarise(name, r))
        images[name] = imgs
        print(f"{name}: accuracy {r['accuracy']:.4f}  KID {r['kid']['mean']:.5f}  FID {r['classifier_fid']:.3f}",
              flush=True)

    score("teacher", torch_images(teacher.generator, z, y))
    work = Path(tempfile.mkdtemp(prefix="bench_cond_"))
    latency = {}
    students = []
    for s in a.students:
        run = load_run(s)
        seed = run.manifest["config"]["seed"]
        qat = (run.manifest["distill"].get("quant_aware") or {}).get("steps")
        name = f"student d={run.args['d']} seed {seed}" + (f" quant-aware {qat}" if qat else "")
        if name in results:  # two runs alike in these fields: their folders tell them apart
            name += f" ({Path(s).name})"
        students.append({"run": str(Path(s).resolve()), "seed": seed, "params": run.manifest["model"]["params"],
                         "recipe": run.manifest["distill"]["recipe"]["terms"], "steps": run.manifest["distill"]["steps"],
                         "compression": run.manifest["distill"]["compression_ratio"]})
        score(name, torch_images(run.generator, z, y))
        if not a.no_int8:
            f = int8_file(Path(s), work)
            imgs, lat = runtime_images(f, z, y)
            score(f"{name} int8", imgs)
            latency[f"{name} int8"] = lat
            if a.keep_float:
                f = int8_file(Path(s), work, a.keep_float)
                imgs, lat = runtime_images(f, z, y)
                score(f"{name} int8 keep-float {a.keep_float}", imgs)
                latency[f"{name} int8 keep-float {a.keep_float}"] = lat
    if not a.no_int8 and a.students:  # the same student without its label input, side by side: what the label costs
        twin = unconditional_twin(Path(a.students[0]), work)
        latency["unconditional twin int8 (same d, no label input)"] = probe_pair(twin)
    t = rows[0]
    goal = []
    for r in rows[1:]:
        fp32 = r["model"].split(" int8")[0]
        base = next(x for x in rows if x["model"] == fp32) if " int8" in r["model"] else t
        goal.append({"model": r["model"], "vs": base["model"],
                     "accuracy_points": round(100 * (r["accuracy"] - base["accuracy"]), 2),
                     "kid_ratio": round(r["kid"] / base["kid"], 3) if base["kid"] > 0 else None})
    out = {"created": now_iso(), "machine": machine(), "versions": versions(), "teacher": str(Path(a.teacher).resolve()),
           "teacher_params": teacher.manifest["model"]["params"], "dataset": a.dataset, "per_class": a.per_class,
           "classifier": clf.summary(), "students": students, "results": rows, "comparisons": goal,
           "per_class_results": {n: r["classes"] for n, r in results.items()}, "latency": latency, "parity": PARITY,
           "load_average": {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in os.getloadavg()]},
           "goal": "student accuracy within 3 points of the teacher's, KID <= 1.5x the teacher's; "
                   "int8 within 2% of its fp32 on both"}
    dest = Path(a.out)
    atomic_write_json(dest.with_suffix(".json"), out)
    # grid: rows = labels, GRID_Z latents each; teacher / first student / its int8, same z
    pick = np.concatenate([np.where(y == c)[0][:GRID_Z] for c in range(k)])
    first = [n for n in images if n != "teacher"][: (1 if a.no_int8 else 2)]
    save_comparison({n: images[n][pick] for n in ["teacher", *first]}, dest.parent / f"{dest.name}-grid.png",
                    nrow=GRID_Z, scale=1)
    write_md(dest.with_suffix(".md"), out, dest.name)


def write_md(path: Path, out: dict, stem: str) -> None:
    mc = out["machine"]
    lines = [f"# Conditional students (issue 20)", "",
             f"Teacher: `{Path(out['teacher']).name}` ({out['teacher_params']:,} parameters), {out['dataset']}, "
             f"{out['per_class']} images per class for every model, the same z and labels. Domain classifier: test "
             f"accuracy {out['classifier']['test_accuracy']:.4f}. Machine: {mc.get('cpu')} ({mc.get('isa', '')}), "
             f"load average (1, 5, 15 min) {out['load_average']['start']} at the start, {out['load_average']['end']} "
             "at the end: latencies on a loaded machine are upper bounds.", "",
             "| model | accuracy | KID (classifier space) | mean per-class KID | classifier FID |",
             "|---|---|---|---|---|"]
    for r in out["results"]:
        lines.append(f"| {r['model']} | {100 * r['accuracy']:.2f} % | {r['kid']:.5f} ± {r['kid_std']:.5f} | "
                     f"{r['mean_class_kid']:.5f} | {r['classifier_fid']:.3f} |")
    lines += ["", "| model | vs | accuracy (points) | KID ratio |", "|---|---|---|---|"]
    for g in out["comparisons"]:
        lines.append(f"| {g['model']} | {g['vs']} | {g['accuracy_points']:+.2f} | {g['kid_ratio']} |")
    if out["latency"]:
        lines += ["", "Two-input int8 file (z, one-hot label), edgegan-runtime probe at batch 1, one thread, in its own "
                  "process:", "", "| file | backend | p50 µs | peak RSS MB |", "|---|---|---:|---:|"]
        for n, lat in out["latency"].items():
            lines.append(f"| {n} | {lat.get('backend', '?')} | {lat.get('p50_us', float('nan')):,.1f} | "
                         f"{lat.get('peak_rss_mb', float('nan')):.0f} |")
    if out.get("parity"):
        lines += ["", "The exporter's parity check on each int8 file (against its PyTorch student, every class, each "
                  "signature; `--allow-mismatch` keeps a refused file so it is scored too):", "",
                  "| file | verdict | PSNR dB | p99.9 abs | changed pixels | max abs |", "|---|---|---:|---:|---:|---:|"]
        for f, p in out["parity"].items():
            verdict = "pass" if p["passed"] else "refused: " + "; ".join(
                f"{k}: {v[0]}" + (f" (+{len(v) - 1})" if len(v) > 1 else "") for k, v in (p["failures"] or {}).items())[:160]
            num = [("—" if p[k] is None else format(p[k], fm)) for k, fm in
                   (("psnr_db", ".1f"), ("p999_abs", ".3f"), ("changed_pixels", ".3f"), ("max_abs", ".3f"))]
            lines.append(f"| {Path(f).name} | {verdict} | {' | '.join(num)} |")
    lines += ["", f"![rows = labels; teacher / student / int8 for the same z]({stem}-grid.png)", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())


if __name__ == "__main__":
    main()
