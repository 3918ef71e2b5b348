"""Image-to-image students over seeds, float and int8 (issue 21): ``bench/results/image2image.md``'s numbers.

    python bench/scripts/image2image.py --run qat=runs/s0-qat --run qat=runs/s1-qat --run ptq=runs/s0 \
        --samples 1000 --out bench/results/image2image

Each ``--run LABEL=DIR`` is a distilled image-to-image student (the same teacher for all). Each is exported
to TFLite fp32 and int8 with the exporter's defaults unless it already has those files; an int8 file the
exporter refuses is made again with ``--allow-mismatch`` so it can be measured, and the refusal is recorded.
Then ``edgegan bench`` scores the teacher, the student and its files on the same ``--samples`` test-split
inputs. Writes ``OUT.json`` (every bench document, the exports' parity, the machine), ``OUT-grid.png`` (the
first run's grid) and prints the markdown tables: per run, and per label the mean and spread (min..max)
over seeds of PSNR to the ground truth and of the int8 file's change against fp32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path


def _export(run: Path, quantize: str) -> dict:
    from edgegan.errors import ParityError
    from edgegan.export import export_run
    from edgegan.manifest import read_manifest

    for e in read_manifest(run).get("exports", []):
        if e["format"] == "tflite" and e["quantize"] == quantize:
            return {"refused": None, "parity": e["parity"], "bytes": e["bytes"], "reused": True}
    try:
        e = export_run(run, format="tflite", quantize=quantize)
        return {"refused": None, "parity": e["parity"], "bytes": e["bytes"]}
    except ParityError as err:
        e = export_run(run, format="tflite", quantize=quantize, allow_mismatch=True)
        return {"refused": str(err).splitlines()[0], "parity": e["parity"], "bytes": e["bytes"]}


def _rows(doc: dict) -> dict[str, dict]:
    out = {}
    for r in doc["results"][0]["models"]:
        key = r["kind"] if r["kind"] != "export" else f"tflite {r['precision']}"
        out[key if r["kind"] != "reference" else r["name"]] = r
    return out


def main(argv: list[str] | None = None) -> int:
    from edgegan.bench.harness import run_bench
    from edgegan.manifest import atomic_write_json, read_manifest
    from edgegan.sysinfo import machine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR (repeat; same label = seeds)")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--out", required=True, help="output prefix: OUT.json, OUT-grid.png")
    ap.add_argument("--tables-only", action="store_true", help="print the tables of an existing OUT.json")
    a = ap.parse_args(argv)
    if a.tables_only:
        print(markdown(json.loads(Path(f"{a.out}.json").read_text())["runs"]))
        return 0
    t0 = time.perf_counter()
    runs = [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in a.run]
    out = Path(a.out)
    records = []
    for i, (label, run) in enumerate(runs):
        exports = {q: _export(run, q) for q in ("none", "int8")}
        tmp = out.parent / f".bench-{run.name}"
        doc = run_bench([str(run)], out=tmp, models=["teacher", "student", "exports"], samples=a.samples,
                        progress=False)
        if i == 0:
            shutil.copyfile(tmp / "samples.png", f"{out}-grid.png")
        shutil.rmtree(tmp, ignore_errors=True)
        m = read_manifest(run)
        records.append({"label": label, "run": str(run), "seed": m["config"]["seed"], "d": m["config"]["d"],
                        "steps": m["distill"]["steps"], "quant_aware": m["config"].get("quant_aware", 0),
                        "seconds": m["distill"]["seconds"], "exports": exports, "bench": doc})
    atomic_write_json(Path(f"{out}.json"), {"schema": "edgegan.bench-i2i/1", "machine": machine(),
                                            "seconds": round(time.perf_counter() - t0, 1), "runs": records})
    print(markdown(records))
    return 0


def _q(r: dict, *path: str):
    v = r.get("quality") or {}
    for p in path:
        v = (v or {}).get(p)
    return float(v) if isinstance(v, str) else v  # the JSON writer stores inf as "inf"


def _refusal(ex: dict) -> str | None:
    """Why the exporter refused the int8 file by default (made again with --allow-mismatch to measure it), or
    None; a file exported earlier carries its verdict in its parity section."""
    if ex.get("refused"):
        return ex["refused"].split(": ", 1)[-1]
    par = ex.get("parity") or {}
    if par.get("passed", True):
        return None
    fails = par.get("failures") or {}
    first = next(iter(fails.values()), ["failed parity"])
    return first[0] if isinstance(first, list) and first else str(first)


def markdown(records: list[dict]) -> str:
    colour = records[0]["bench"]["results"][0]["task"] == "colorize"
    extra = " colourfulness | classifier accuracy |" if colour else ""
    lines = ["| label | seed | d | steps (quant-aware) | model | precision | bytes | p50 ms | PSNR / SSIM to teacher | "
             "PSNR / SSIM to truth | SWD to truth |" + extra + " int8 refused by default? |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if colour else "") + "---|"]
    by_label: dict[str, list[dict]] = {}
    for rec in records:
        rows = _rows(rec["bench"])
        by_label.setdefault(rec["label"], []).append(rows)
        for key in ("teacher", "student", "tflite fp32", "tflite int8", "bicubic", "grey (luma as RGB)"):
            r = rows.get(key)
            if r is None or (key in ("teacher", "bicubic", "grey (luma as RGB)") and rec is not records[0]):
                continue
            cq = (f" {_q(r, 'colourfulness')} | {_q(r, 'classifier_accuracy'):.4f} |" if colour else "")
            lat = (r.get("latency") or {}).get("p50_us")
            refused = _refusal(rec["exports"]["int8"]) if key == "tflite int8" else None
            lines.append(
                f"| {rec['label']} | {rec['seed']} | {rec['d']} | {rec['steps']} ({rec['quant_aware']}) | {key} | "
                f"{r['precision']} | {r['bytes'] or '—'} | {'—' if lat is None else f'{lat / 1e3:.3f}'} | "
                f"{_q(r, 'to_teacher', 'psnr'):.2f} / {_q(r, 'to_teacher', 'ssim'):.4f} | "
                f"{_q(r, 'to_truth', 'psnr'):.2f} / {_q(r, 'to_truth', 'ssim'):.4f} | {_q(r, 'to_truth', 'swd')} |{cq} "
                f"{'—' if key != 'tflite int8' else ('yes: ' + refused if refused else 'no')} |")
    if colour:
        t = records[0]["bench"]["results"][0]["truth"]
        lines += ["", f"Ground truth: colourfulness {t['colourfulness']}, classifier accuracy "
                      f"{t.get('classifier_accuracy', float('nan')):.4f}."]
    lines += ["", "| label | seeds | student PSNR to truth, mean (min..max) | gap to the teacher dB | "
              "int8 - fp32 file, PSNR to truth dB, mean (min..max) |", "|---|---|---|---|---|"]
    teacher = _q(_rows(records[0]["bench"])["teacher"], "to_truth", "psnr")
    for label, rs in by_label.items():
        s = [_q(r["student"], "to_truth", "psnr") for r in rs]
        dq = [_q(r["tflite int8"], "to_truth", "psnr") - _q(r["tflite fp32"], "to_truth", "psnr") for r in rs]
        lines.append(f"| {label} | {len(rs)} | {statistics.mean(s):.2f} ({min(s):.2f}..{max(s):.2f}) | "
                     f"{statistics.mean(s) - teacher:+.2f} | {statistics.mean(dq):+.3f} ({min(dq):+.3f}..{max(dq):+.3f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
