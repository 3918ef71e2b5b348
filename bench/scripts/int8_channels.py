"""The per-layer broken-channel check's numbers (issue #22): how far the exporter's ``channel_err_db``
limit sits from clean int8 files and from injected broken channels.

    python bench/scripts/int8_channels.py runs/q/s-*     # writes bench/results/int8-channels.{json,md}

For each student run: the TFLite int8 file as ``edgegan export`` makes it, and the same file with
one channel of its last hidden layer dead or ×4 (``int8_parity``'s defects), each exported with
``allow_mismatch`` and ``report=True``. A row holds the image PSNR and the worst channel of any
layer (``quant_report.worst_channel``: its error power in dB against the layer's mean channel
power, floored at ``quant_report.STEP_FLOOR`` quantization steps).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from int8_parity import export_variant  # noqa: E402 - the same variants and defects

from edgegan.export import FORMATS  # noqa: E402
from edgegan.export.quant_report import STEP_FLOOR  # noqa: E402
from edgegan.manifest import now_iso, versions  # noqa: E402

log = logging.getLogger("int8_channels")
RESULTS = Path(__file__).resolve().parents[1] / "results"
CHANNEL_VARIANTS = ("int8", "dead-channel", "hot-channel")


def measure(run: Path, work: Path, variants: tuple[str, ...] = CHANNEL_VARIANTS) -> list[dict[str, Any]]:
    rows = []
    for name in variants:
        try:
            e = export_variant(run, name, work, report=True)
        except Exception as ex:  # noqa: BLE001 - a measurement script records what failed
            rows.append({"run": run.name, "variant": name, "error": f"{type(ex).__name__}: {ex}"})
            log.info("%-22s %-14s ERROR %s", run.name, name, ex)
            continue
        w = (e.get("layers") or {}).get("worst_channel") or {}
        row = {"run": run.name, "variant": name, "psnr_db": e["parity"].get("psnr_db"),
               "image_failures": [f for k, f in (e["parity"].get("failures") or {}).items() if k != "layers"],
               "worst_channel": w, "passed": e["parity"]["passed"]}
        rows.append(row)
        log.info("%-22s %-14s psnr %6.2f worst channel %s", run.name, name, row["psnr_db"] or -1, w)
    return rows


def markdown(res: dict[str, Any]) -> str:
    limit = FORMATS.get("tflite").precision("int8").thresholds.channel_err_db
    lines = ["# int8: the per-layer broken-channel check (issue #22)", "",
             f"Written by `bench/scripts/int8_channels.py` on {res['created']} ({res['machine']}). Each TFLite int8 "
             "file against its float file on the calibration latents, every intermediate tensor (`--report`); "
             "`worst channel` is the largest per-channel error of any layer, in dB of that layer's mean channel "
             f"power (floored at {res['step_floor']:g} quantization steps). Limit: {limit:g} dB. Defects as in "
             "`int8-parity.md`: channel 0 of the last transposed convolution dead or x4. `image limits` is the "
             "exporter's image verdict on the day of the run (`int8-parity.md` re-judges its rows by today's limits).", "",
             "| student | variant | image PSNR dB | image limits | worst channel dB | layer, channel | channel check |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        if "error" in r:
            lines.append(f"| {r['run']} | {r['variant']} | error: {r['error'][:80]} |||||")
            continue
        w = r["worst_channel"]
        db = w.get("err_db")
        lines.append(f"| {r['run']} | {r['variant']} | {r['psnr_db']:.2f} | "
                     f"{'fail' if r['image_failures'] else 'pass'} | {db if db is not None else '-'} | "
                     f"{w.get('layer', '-')}, {w.get('channel', '-')} | "
                     f"{'fail' if db is not None and db > limit else 'pass'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--variants", default=",".join(CHANNEL_VARIANTS), help="e.g. int8 alone: every student's default file")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("edgegan", "onnxscript", "onnx_ir", "torch", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from edgegan_runtime.probe import cpu_name

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgegan-int8-channels-") as tmp:
        for run in a.runs:
            rows += measure(run, Path(tmp), tuple(a.variants.split(",")))
            isa = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f in ("avx2", "avx512f", "avx512_vnni")})
            res = {"created": now_iso(), "machine": f"{cpu_name()}, {' '.join(isa)}", "step_floor": STEP_FLOOR,
                   "versions": versions(), "rows": rows}
            a.out.mkdir(parents=True, exist_ok=True)  # written after each run: a partial table survives a stop
            (a.out / "int8-channels.json").write_text(json.dumps(res, indent=2) + "\n")
            (a.out / "int8-channels.md").write_text(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
