"""Which calibration statistic and how many latents, for TFLite int8 (issue #22).

    python bench/scripts/int8_calibration.py runs/q/s-*   # writes bench/results/int8-calibration.{json,md}

For each student: int8 exported with each way of merging the calibration batches' ranges
(``litert_adapter.CALIBRATION_STATS``) and 256 or 1,024 calibration latents; parity numbers as the
exporter records them (64 parity latents, never the calibration ones).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgegan.export import export_run, litert_adapter
from edgegan.manifest import now_iso, versions

log = logging.getLogger("int8_calibration")
RESULTS = Path(__file__).resolve().parents[1] / "results"
KEYS = ("psnr_db", "p99_abs", "p999_abs", "changed_pixels", "max_abs")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--counts", default="256,1024")
    ap.add_argument("--quantize", default="int8")
    ap.add_argument("--stats", default=",".join(litert_adapter.CALIBRATION_STATS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("edgegan", "onnxscript", "onnx_ir", "torch", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from edgegan_runtime.probe import cpu_name

    rows: list[dict[str, Any]] = []
    default = litert_adapter.CALIBRATION_STAT
    with tempfile.TemporaryDirectory(prefix="edgegan-int8-calib-") as tmp:
        for run in a.runs:
            for stat in a.stats.split(","):
                for n in (int(c) for c in a.counts.split(",")):
                    litert_adapter.CALIBRATION_STAT = stat
                    try:
                        e = export_run(run, format="tflite", quantize=a.quantize, batch=[64], calibration_samples=n,
                                       out=Path(tmp) / f"{run.name}-{stat}-{n}", allow_mismatch=True)
                    finally:
                        litert_adapter.CALIBRATION_STAT = default
                    p = e["parity"]
                    rows.append({"run": run.name, "stat": stat, "count": n, **{k: p.get(k) for k in KEYS}})
                    log.info("%-22s %-15s %5d psnr %6.2f p99.9 %.4f changed %.5f max %.3f", run.name, stat, n,
                             p["psnr_db"], p["p999_abs"], p["changed_pixels"], p["max_abs"])
    isa = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f in ("avx2", "avx512f", "avx512_vnni")})
    res = {"created": now_iso(), "machine": f"{cpu_name()}, {' '.join(isa)}", "quantize": a.quantize,
           "versions": versions(), "rows": rows}
    lines = ["# Calibration statistic and count for TFLite " + a.quantize + " (issue #22)", "",
             f"Written by `bench/scripts/int8_calibration.py` on {res['created']} ({res['machine']}). "
             "`moving-average` is ai-edge-quantizer's default merge of the batches' ranges (the first batch "
             "dominates), `minmax` the extremes over all calibration latents, `mean` the mean of the batches' "
             "extremes. Parity on 64 other latents plus the batch-1 and batch-64 signatures.", "",
             "| student | statistic | latents | PSNR dB | p99 abs | p99.9 abs | changed | max abs |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['stat']} | {r['count']} | {r['psnr_db']:.2f} | {r['p99_abs']:.4f} | "
                     f"{r['p999_abs']:.4f} | {r['changed_pixels']:.5f} | {r['max_abs']:.3f} |")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.quantize}-calibration.json").write_text(json.dumps(res, indent=2) + "\n")
    (a.out / f"{a.quantize}-calibration.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
