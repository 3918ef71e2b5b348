"""Benchmark the runtime: per backend and precision, batch 1 and 64, one and two threads, DCGAN d=2, 8, 32.

    .venv/bin/python bench/bench_runtime.py            # writes bench/results/runtime.{json,md}
    .venv/bin/python bench/bench_runtime.py --quick    # d=2 only, for a smoke run

Every measurement is one run of the device-side probe (``edgegan-runtime bench MODEL --json``) in
a fresh subprocess, so load time, first inference and peak RSS belong to that model alone. Torch
eager latency of the same generators is measured the same way (fresh process, >= 200 timed calls)
for reference; the runtime itself never imports torch.

Model files are made here with random weights (latency does not depend on their values; they are
scaled so activations have realistic magnitudes, no denormals): ONNX via torch.onnx (fp32), its
fp16 conversion (onnxruntime.transformers.float16) and static QDQ int8 (onnxruntime.quantization);
TFLite via litert-torch (fp32, signatures batch_1 and batch_64), weight-only fp16
(ai-edge-quantizer float casting) and static int8 (litert-torch PT2E, per-channel weights). A
variant that cannot be made or loaded is recorded with its reason instead of numbers.
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
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
    "ONNX fp16: onnxruntime.transformers.float16 with keep_io_types (its graph is re-sorted topologically, "
    "which onnx.checker requires); ONNX int8: static QDQ, per-channel weights, 8 random calibration batches.",
    "TFLite fp16: ai-edge-quantizer float casting (weight-only fp16); TFLite int8: litert-torch PT2E static "
    "int8 with per-channel weights and float I/O. ai-edge-quantizer's static int8 recipe was not used: its "
    "per-channel output is refused by the interpreter (num_scales must be 1 ...) and its per-tensor variant "
    "fails on the TRANSPOSE_CONV bias.",
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


def export_onnx(g, path: Path) -> Path:
    import torch

    torch.onnx.export(g, (torch.zeros(1, LATENT),), str(path), input_names=["z"], output_names=["images"],
                      dynamic_axes={"z": {0: "batch"}, "images": {0: "batch"}}, dynamo=False)
    return path


def _toposort(graph) -> None:
    """Reorder nodes so each runs after its inputs' producers (the fp16 converter appends its casts)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    nodes, ordered = list(graph.node), []
    while nodes:
        rest = [n for n in nodes if not all(i in ready for i in n.input)]
        done = [n for n in nodes if all(i in ready for i in n.input)]
        if not done:
            raise RuntimeError("graph has a cycle")
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        nodes = rest
    del graph.node[:]
    graph.node.extend(ordered)


def onnx_fp16(src: Path, path: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _toposort(m.graph)
    onnx.save(m, str(path))
    return path


def onnx_int8(src: Path, path: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.it = iter([{"z": rng.standard_normal((16, LATENT)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.it, None)

    pre = path.with_name(path.stem + "-pre.onnx")
    quant_pre_process(str(src), str(pre))
    quantize_static(str(pre), str(path), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    pre.unlink()
    return path


def _signatures(modules: dict[int, object]):
    import litert_torch
    import torch

    conv = None
    for b, m in modules.items():
        args = (torch.zeros(b, LATENT),)
        conv = litert_torch.signature(f"batch_{b}", m, args) if conv is None else conv.signature(f"batch_{b}", m, args)
    return conv


def tflite_fp32(g, path: Path) -> Path:
    _signatures({b: g for b in BATCHES}).convert().export(str(path))
    return path


def tflite_fp16(src: Path, path: Path) -> Path:
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    qt = quantizer.Quantizer(str(src))
    qt.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                              algorithm_key=AlgorithmName.FLOAT_CASTING)
    qt.quantize().export_model(str(path), overwrite=True)
    return path


def tflite_int8(g, path: Path) -> Path:
    import torch
    from litert_torch.quantize import pt2e_quantizer, quant_config

    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:  # older torch
        from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e

    q = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    gen = torch.Generator().manual_seed(0)
    modules = {}
    for b in BATCHES:
        m = prepare_pt2e(torch.export.export(g, (torch.zeros(b, LATENT),)).module(), q)
        for _ in range(4):
            m(torch.randn(b, LATENT, generator=gen))
        modules[b] = convert_pt2e(m, fold_quantize=False)
    _signatures(modules).convert(quant_config=quant_config.QuantConfig(pt2e_quantizer=q)).export(str(path))
    return path


def make_variants(d: int, work: Path) -> list[Variant]:
    g = build_generator(d)
    out: list[Variant] = []

    def attempt(fmt: str, precision: str, backend: str, make) -> Path | None:
        path = work / f"d{d}-{precision}.{fmt}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make(path)
            out.append(Variant(d, fmt, precision, backend, path))
            return path
        except Exception as e:  # recorded, not fatal: the table says why a cell is empty
            why = f"could not be made: {type(e).__name__}: {str(e)[:160]}"
            out.append(Variant(d, fmt, precision, backend, None, why))
            return None

    onnx32 = attempt("onnx", "fp32", "onnxruntime", lambda p: export_onnx(g, p))
    if onnx32:
        attempt("onnx", "fp16", "onnxruntime", lambda p: onnx_fp16(onnx32, p))
        attempt("onnx", "int8", "onnxruntime", lambda p: onnx_int8(onnx32, p))
    tfl32 = attempt("tflite", "fp32", "litert", lambda p: tflite_fp32(g, p))
    if tfl32:
        attempt("tflite", "fp16", "litert", lambda p: tflite_fp16(tfl32, p))
    attempt("tflite", "int8", "litert", lambda p: tflite_int8(g, p))
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
    """Runs in a subprocess: torch eager latency of the same generator, printed as JSON."""
    import torch

    from edgegan_runtime.probe import peak_rss_mb

    torch.set_num_threads(threads)
    g = build_generator(d)
    z = torch.randn(batch, LATENT)
    with torch.inference_mode():
        t0 = time.perf_counter()
        warm = 0
        while warm < 10 or time.perf_counter() - t0 < 0.2:
            g(z)
            warm += 1
        per = (time.perf_counter() - t0) / warm
        runs = int(max(200, min(20000, 1.0 / per)))
        times = np.empty(runs)
        for i in range(runs):
            t = time.perf_counter_ns()
            g(z)
            times[i] = time.perf_counter_ns() - t
    us = times / 1e3
    print(json.dumps({
        "backend": "torch-eager", "batch": batch, "threads": threads, "runs": runs,
        "p50_us": float(np.percentile(us, 50)), "p90_us": float(np.percentile(us, 90)),
        "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean()),
        "images_per_s": batch * 1e6 / float(us.mean()),
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
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "platform": platform.platform()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "Model name":
                info["cpu"] = val.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


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
        f"Machine: {doc['machine']['cpu']}, {doc['machine']['cores']} cores ({doc['machine']['platform']}); shared with "
        "other jobs while measured, so treat differences under ~10% as noise.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".",
        f"Made by `bench/bench_runtime.py` on {doc['created']} in {doc['seconds']:.0f} s. Each cell is the p50 of one "
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
        order = {"fp32": 0, "fp16": 1, "int8": 2}
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
