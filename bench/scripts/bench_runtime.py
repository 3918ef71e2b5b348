"""Benchmark the runtime: per backend and precision, batch 1 and 64, one and two threads, DCGAN d=2, 8, 32.

    .venv/bin/python bench/scripts/bench_runtime.py            # writes bench/results/runtime.{json,md}
    .venv/bin/python bench/scripts/bench_runtime.py --quick    # d=2 only, for a smoke run

Every measurement is one run of the device-side probe (``edgegan-runtime bench MODEL --json``) in
a fresh subprocess, so load time, first inference and peak RSS belong to that model alone. Torch
eager latency of the same generators is measured the same way (fresh process, >= 200 timed calls)
for reference; the runtime itself never imports torch.

Model files are the ones `edgegan export` writes (every precision, parity-checked), from generators
with random weights (latency does not depend on their values; they are scaled so activations have
realistic magnitudes, no denormals). A variant that cannot be exported or loaded is recorded with
its reason instead of numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
LATENT = 100
BATCHES = (1, 64)
THREADS = (1, 2)
GOAL_US, GOAL_RSS_MB = 10.0, 40.0
NOTES = [
    "Two-thread columns: this machine has 2 cores shared with other jobs, so a second interpreter thread "
    "often waits for a busy core; they say little about a dedicated device (torch eager suffers most).",
    "ONNX Runtime runs with ORT_ENABLE_EXTENDED (all fusions, no x86 NCHWc layout transform): the NCHWc "
    "reorder costs ~5 us of 21 at d=2, batch 1, and helped none of d=2/8/32 here. A trivial one-node ONNX model "
    "costs 2.8 us per call through the Python binding; the rest of the d=2 call is kernel time in 4 "
    "ConvTranspose, 4 Relu, Conv+Tanh and 2 Unsqueeze nodes.",
    "Peak RSS is VmHWM of the probe process: Python (10.5 MB) + numpy (15 MB) + the runtime (2 MB) + the "
    "interpreter library (LiteRT 9 MB; onnx 8 MB + ONNX Runtime 18 MB) + the model.",
    "Files: `edgegan export` (see bench/results/export.md for how each precision is made and its parity).",
]


@dataclass
class Variant:
    d: int
    format: str
    precision: str
    backend: str
    path: Path | None
    note: str = ""


# ---------------------------------------------------------------- model files


def build_generator(d: int):
    import torch

    from edgegan.models import build_generator as build

    torch.manual_seed(d)
    g = build("dcgan", d=d).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.normal_(0, 1.0).mul_(2.0 / m.weight[0].numel() ** 0.5)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return g


EXPORTS = (("onnx", "none"), ("onnx", "fp16"), ("onnx", "int8"), ("tflite", "none"), ("tflite", "fp16"),
           ("tflite", "dynamic-int8"), ("tflite", "weight-int8"), ("tflite", "int8"))
BACKEND = {"onnx": "onnxruntime", "tflite": "litert"}


def make_variants(d: int, work: Path) -> list[Variant]:
    """The files `edgegan export` writes (parity-checked), so the bench measures what users ship."""
    from edgegan.checkpoint import model_section
    from edgegan.errors import EdgeganError
    from edgegan.export import export_run
    from edgegan.manifest import write_manifest

    run = work / f"d{d}"
    write_manifest(run, {"schema": "edgegan.manifest/1", "kind": "student",
                         "model": model_section(build_generator(d), "dcgan", {"d": d}, run)})
    out: list[Variant] = []
    for fmt, q in EXPORTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = export_run(run, format=fmt, quantize=q, batch=[1, 64] if fmt == "tflite" else None)
            out.append(Variant(d, fmt, e["precision"], BACKEND[fmt], run / e["file"]))
        except EdgeganError as e:  # recorded, not fatal: the table says why a cell is empty
            precision = "fp32" if q == "none" else q
            out.append(Variant(d, fmt, precision, BACKEND[fmt], None, f"could not be exported: {e}"[:200]))
    return out


# ---------------------------------------------------------------- measurements


def probe(v: Variant, batch: int, threads: int, timeout: float = 300) -> dict:
    cmd = [sys.executable, "-m", "edgegan_runtime.cli", "bench", str(v.path), "--batch", str(batch),
           "--threads", str(threads), "--backend", v.backend, "--json"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1][:300]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def torch_eager_child(d: int, batch: int, threads: int) -> None:
    """Runs in a subprocess: torch eager latency of the same generator, printed as JSON (the runtime probe's
    timing protocol, ``edgegan_runtime.probe.time_calls``)."""
    import torch

    from edgegan_runtime.probe import peak_rss_mb, time_calls

    torch.set_num_threads(threads)
    g = build_generator(d)
    z = torch.randn(batch, LATENT)
    with torch.inference_mode():
        t = time_calls(lambda: g(z))
    print(json.dumps({
        "backend": "torch-eager", "batch": batch, "threads": threads, "runs": t["runs"],
        "p50_us": t["p50_us"], "p90_us": t["p90_us"], "p99_us": t["p99_us"], "mean_us": t["mean_us"],
        "images_per_s": batch * 1e6 / t["mean_us"],
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__,
    }))


def torch_eager(d: int, batch: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--torch-eager", f"{d},{batch},{threads}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report


def machine() -> dict:
    from edgegan.sysinfo import machine as sysinfo

    return {**sysinfo(), "platform": platform.platform()}


def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("edgegan-runtime", "numpy", "onnxruntime", "onnx", "ai-edge-litert", "litert-torch",
                 "ai-edge-quantizer", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _cell(r: dict | None, per_image: bool = False) -> str:
    if not r or "error" in r:
        return "–"
    v = r["p50_us"] / (r["batch"] if per_image else 1)
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def write_markdown(doc: dict, path: Path) -> None:
    rows = doc["results"]
    by = {(r["d"], r["format"], r["precision"], r["backend"], r["batch"], r["threads"]): r for r in rows}
    lines = [
        "# Runtime latency and memory",
        "",
        f"Machine: {doc['machine']['cpu']} ({doc['machine'].get('isa', 'isa not recorded')}), {doc['machine']['cores']} cores ({doc['machine']['platform']}); shared with "
        "other jobs while measured, so treat differences under ~10% as noise.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".",
        f"Made by `bench/scripts/bench_runtime.py` on {doc['created']} in {doc['seconds']:.0f} s. Each cell is the p50 of one "
        "probe run (`edgegan-runtime bench MODEL --json`, fresh process, >= 200 timed calls of `generate_from`).",
        "",
        "## Headline",
        "",
    ]
    lines += [f"- {h}" for h in doc["headline"]]
    for d in doc["d"]:
        lines += [
            "",
            f"## DCGAN d={d}",
            "",
            "| backend | precision | bytes | b=1 1 thr (µs) | b=1 2 thr (µs) | b=64 1 thr (µs/img) | b=64 2 thr (µs/img) "
            "| load (ms) | first call (ms) | peak RSS b=1 (MB) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        order = {"fp32": 0, "fp16": 1, "dynamic-int8": 2, "weight-int8": 3, "int8": 4}
        keys = sorted({(r["format"], r["precision"], r["backend"]) for r in rows if r["d"] == d},
                      key=lambda k: (k[2] == "torch-eager", k[0], order.get(k[1], 9)))
        for fmt, prec, backend in keys:
            cells = [by.get((d, fmt, prec, backend, b, t)) for b, t in ((1, 1), (1, 2), (64, 1), (64, 2))]
            base = next((c for c in cells if c and "error" not in c), {})
            size = f"{base['bytes']:,}" if "bytes" in base else "–"
            load = f"{base['load_ms']:.1f}" if "load_ms" in base else "–"
            first = f"{base['first_ms']:.2f}" if "first_ms" in base else "–"
            rss = f"{cells[0]['peak_rss_mb']:.1f}" if cells[0] and cells[0].get("peak_rss_mb") else "–"
            lines.append(
                f"| {backend} | {prec} | {size} | {_cell(cells[0])} | {_cell(cells[1])} | {_cell(cells[2], True)} "
                f"| {_cell(cells[3], True)} | {load} | {first} | {rss} |"
            )
    if doc["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in doc["notes"]]
    path.write_text("\n".join(lines) + "\n")


def headline(rows: list[dict]) -> list[str]:
    ok = [r for r in rows if "error" not in r and r["backend"] != "torch-eager"]
    out = []
    def single(r: dict) -> bool:
        return r["d"] == 2 and r["batch"] == 1 and r["threads"] == 1

    best = min((r for r in ok if single(r)), key=lambda r: r["p50_us"], default=None)
    if best:
        met = "meets" if best["p50_us"] <= GOAL_US else "misses"
        out.append(f"d=2 student, batch 1, one thread: best {best['p50_us']:.1f} µs/image p50 ({best['backend']} "
                   f"{best['precision']}) — {met} the {GOAL_US:.0f} µs goal.")
    for backend in sorted({r["backend"] for r in ok}):
        rs = [r for r in ok if single(r) and r["backend"] == backend]
        if rs:
            out.append(f"{backend}: d=2 batch 1 " + ", ".join(f"{r['precision']} {r['p50_us']:.1f} µs" for r in rs)
                       + f"; peak RSS {min(r['peak_rss_mb'] for r in rs):.1f} MB (goal ≤ {GOAL_RSS_MB:.0f} MB).")
    eager = [r for r in rows if r["backend"] == "torch-eager" and single(r) and "error" not in r]
    if eager and best:
        us = eager[0]["p50_us"]
        out.append(f"torch eager, same model: {us:.0f} µs ({us / best['p50_us']:.0f}x slower).")
    b64 = min((r for r in ok if r["d"] == 2 and r["batch"] == 64), key=lambda r: r["p50_us"], default=None)
    if b64:
        out.append(f"d=2 batch 64: best {b64['p50_us'] / 64:.2f} µs/image ({b64['backend']} {b64['precision']}, "
                   f"{b64['threads']} thread(s)), {b64['images_per_s']:,.0f} images/s.")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="d=2 only")
    ap.add_argument("--d", type=int, nargs="*", default=None, help="depth factors (default 2 8 32)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-torch", action="store_true", help="skip the torch eager reference")
    ap.add_argument("--render", action="store_true", help="only rewrite runtime.md from runtime.json")
    ap.add_argument("--torch-eager", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.torch_eager:
        torch_eager_child(*map(int, args.torch_eager.split(",")))
        return 0
    if args.render:
        doc = json.loads((args.out / "runtime.json").read_text())
        doc["headline"], doc["notes"] = headline(doc["results"]), NOTES + doc.get("errors", [])
        (args.out / "runtime.json").write_text(json.dumps(doc, indent=1) + "\n")
        write_markdown(doc, args.out / "runtime.md")
        return 0
    ds = args.d or ([2] if args.quick else [2, 8, 32])
    t0 = time.time()
    rows: list[dict] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgegan-bench-") as tmp:
        for d in ds:
            print(f"d={d}: making model files", flush=True)
            for v in make_variants(d, Path(tmp)):
                label = f"d={d} {v.backend} {v.precision}"
                if v.path is None:
                    notes.append(f"{label}: {v.note}")
                    continue
                for b in BATCHES:
                    for t in THREADS:
                        r = probe(v, b, t)
                        r.update(d=d, format=v.format, precision=v.precision, backend=v.backend, batch=b, threads=t)
                        rows.append(r)
                        said = r["error"] if "error" in r else f"{r['p50_us']:.1f} us p50"
                        print(f"  {label} b={b} t={t}: {said}", flush=True)
                        if "error" in r:
                            notes.append(f"{label} batch {b}, {t} thread(s): {r['error']}")
            if not args.no_torch:
                for b in BATCHES:
                    for t in THREADS:
                        r = torch_eager(d, b, t)
                        r.update(d=d, format="torch", precision="fp32", backend="torch-eager", batch=b, threads=t)
                        rows.append(r)
                        said = r.get("error", f"{r.get('p50_us', 0):.1f} us p50")
                        print(f"  d={d} torch eager b={b} t={t}: {said}", flush=True)
    doc = {
        "schema": "edgegan.bench.runtime/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": time.time() - t0,
        "machine": machine(),
        "versions": versions(),
        "d": ds,
        "goal": {"us_per_image_d2_batch1": GOAL_US, "peak_rss_mb": GOAL_RSS_MB},
        "headline": headline(rows),
        "notes": NOTES + notes,
        "errors": notes,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runtime.json").write_text(json.dumps(doc, indent=1) + "\n")
    write_markdown(doc, args.out / "runtime.md")
    print("\n".join(doc["headline"]))
    print(f"wrote {args.out / 'runtime.json'} and runtime.md in {doc['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
