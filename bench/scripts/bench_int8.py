"""Each precision against fp32, per student: bytes, latency (LiteRT and ONNX Runtime, batch 1 and 64)
and the change of quality (classifier KID / FID, SWD) — issue #22.

    python bench/scripts/bench_int8.py runs/q/s-mnist-d8-best ... [--samples 1000] [--dataset celeba]

Every file is made by ``export_run`` as ``edgegan export`` makes it (the default recipe of each
precision; ``int8+auto`` is ``--keep-float auto``), and its parity verdict is recorded. Quality is
``edgegan bench``'s (``run_bench``, models=exports) on the same latents for every file, so a change
against fp32 is the precision's alone. Latency: median of ``generate_from`` through edgegan_runtime,
one thread, on a shared machine (indicative; never asserted by a test).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgegan.export import export_run
from edgegan.manifest import now_iso, versions

log = logging.getLogger("bench_int8")
RESULTS = Path(__file__).resolve().parents[1] / "results"
CASES = [("tflite", "none", None), ("tflite", "int8", None), ("tflite", "int8", "auto"), ("tflite", "int16x8", None),
         ("onnx", "none", None), ("onnx", "int8", None)]
METRICS = ("classifier_kid", "classifier_fid", "swd")


def _latency_ms(path: Path, batch: int, repeats: int) -> float:
    import edgegan_runtime as rt

    g = rt.load(path, threads=1)
    z = rt.latent(batch, g.latent_dim, 0)
    g.generate_from(z)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        g.generate_from(z)
        times.append((time.perf_counter() - t) * 1000)
    g.close()
    return round(statistics.median(times), 3)


def _metric(q: dict[str, Any], name: str) -> float | None:
    v = q.get(name)
    if isinstance(v, dict):
        v = v.get("mean")
    return float(v) if isinstance(v, (int, float)) else None


def bench_run(run: Path, work: Path, samples: int, repeats: int, dataset: str | None) -> list[dict[str, Any]]:
    from edgegan.bench.harness import run_bench

    rows = []
    for fmt, q, kf in CASES:
        out = work / f"{run.name}-{'auto' if kf else 'plain'}"
        batch = [1, 64] if fmt == "tflite" else None
        e = export_run(run, format=fmt, quantize=q, batch=batch, out=out, allow_mismatch=True, keep_float=kf)
        path = out / e["file"]
        rows.append({"run": run.name, "format": fmt, "precision": e["precision"] + ("+auto" if kf else ""),
                     "bytes": e["bytes"], "parity_passed": e["parity"]["passed"], "psnr_db": e["parity"]["psnr_db"],
                     "p999_abs": e["parity"].get("p999_abs"), "changed_pixels": e["parity"].get("changed_pixels"),
                     "kept_float": (e.get("layers") or {}).get("kept_float"), "out": str(out), "file": e["file"],
                     "latency_ms": {f"b{b}": _latency_ms(path, b, repeats) for b in (1, 64)}})
        log.info("%s %s %s: %d B, psnr %.2f, %s", run.name, fmt, rows[-1]["precision"], e["bytes"],
                 e["parity"]["psnr_db"], rows[-1]["latency_ms"])
    quality: dict[tuple[str, str, str], dict[str, Any]] = {}
    for out in sorted({r["out"] for r in rows}):
        doc = run_bench([out], out=Path(out) / "bench", models=["exports"], samples=samples, progress=False,
                        dataset=dataset)
        for m in doc["results"][0]["models"]:
            q = m.get("quality") or {}
            if "metrics" not in q:  # a file that could not run: say so, never an empty cell that reads as 0
                raise RuntimeError(f"{out}: no quality for {m['format']} {m['precision']}: {q.get('error', q)}")
            quality[(out, m["format"], m["precision"])] = q["metrics"]
    for r in rows:
        prec = r["precision"].replace("+auto", "")
        qd = quality.get((r["out"], r["format"], prec), {})
        r["quality"] = {k: _metric(qd, k) for k in METRICS}
    for r in rows:
        base = next(b for b in rows if b["format"] == r["format"] and b["precision"] == "fp32")
        r["change_vs_fp32"] = {k: (None if r["quality"][k] is None or not base["quality"][k] else
                                   round((r["quality"][k] - base["quality"][k]) / abs(base["quality"][k]), 4))
                               for k in METRICS}
        r["bytes_vs_fp32"] = round(r["bytes"] / base["bytes"], 3)
        r.pop("out")
    return rows


def markdown(res: dict[str, Any]) -> str:
    lines = ["# Precisions against fp32: size, latency, quality (issue #22)", "",
             f"Written by `bench/scripts/bench_int8.py` on {res['created']} ({res['machine']}; "
             f"{', '.join(f'{k} {v}' for k, v in res['versions'].items() if k in ('ai-edge-litert', 'ai-edge-quantizer', 'onnxruntime', 'torch'))}). "
             f"{res['samples']} latents per file, the same for every file; quality is `edgegan bench`'s (classifier "
             "KID and FID where the dataset has labels, SWD always); `Δ` is the relative change against the same "
             "format's fp32 file (positive = worse). Latency: median ms per call through edgegan_runtime, one thread, "
             "on a shared 2-core machine under load from other jobs: indicative only. "
             + res.get("note", ""), "",
             "| student | format | precision | bytes | × fp32 | parity | PSNR dB | ms b1 | ms b64 | KID | ΔKID | FID | ΔFID | SWD | ΔSWD |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, spec=".4g"):
        return "—" if v is None else format(v, spec)

    for r in res["rows"]:
        q, c = r["quality"], r["change_vs_fp32"]
        prec = r["precision"] + (f" ({','.join(r['kept_float'])})" if r.get("kept_float") else "")
        lines.append(f"| {r['run']} | {r['format']} | {prec} | {r['bytes']:,} | {r['bytes_vs_fp32']:.2f} | "
                     f"{'pass' if r['parity_passed'] else 'FAIL'} | {f(r['psnr_db'], '.1f')} | "
                     f"{f(r['latency_ms']['b1'], '.3f')} | {f(r['latency_ms']['b64'], '.2f')} | "
                     f"{f(q['classifier_kid'])} | {f(c['classifier_kid'], '+.2%')} | {f(q['classifier_fid'])} | "
                     f"{f(c['classifier_fid'], '+.2%')} | {f(q['swd'])} | {f(c['swd'], '+.2%')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--dataset", default=None, help="reference dataset for students of a foreign teacher")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--append", action="store_true", help="add rows to an existing int8.json")
    ap.add_argument("--note", default="")
    ap.add_argument("--markdown-only", action="store_true")
    a = ap.parse_args(argv)
    jpath = a.out / "int8.json"
    if a.markdown_only:
        (a.out / "int8.md").write_text(markdown(json.loads(jpath.read_text())))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("edgegan", "onnxscript", "onnx_ir", "torch", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from edgegan_runtime.probe import cpu_name

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgegan-bench-int8-") as tmp:
        for run in a.runs:
            rows += bench_run(run, Path(tmp), a.samples, a.repeats, a.dataset)
    isa = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f in ("avx2", "avx512f", "avx512_vnni")})
    res = {"created": now_iso(), "machine": f"{cpu_name()}, {' '.join(isa)}", "versions": versions(),
           "samples": a.samples, "note": a.note, "rows": rows}
    if a.append and jpath.exists():
        old = json.loads(jpath.read_text())
        res["rows"] = old["rows"] + rows
        res["note"] = " ".join(x for x in (old.get("note", ""), a.note) if x)
    a.out.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps(res, indent=2) + "\n")
    (a.out / "int8.md").write_text(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
