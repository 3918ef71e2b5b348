"""The paper's MNIST compression, 1669:1 (dcgan d=256 teacher, d=2 student), as a latency ratio.

Both generators are exported to ONNX fp32 and TFLite fp32 through ``edgegan.export`` (parity-checked)
and timed by the runtime's probe in alternating subprocesses, batch 1, one thread: each student row
is divided by the teacher in the same runtime (ONNX Runtime, LiteRT, torch eager), side by side, and
also by the teacher in ONNX Runtime, its fastest runtime here. Latency does not
depend on training, so the weights are random (BatchNorm statistics made non-trivial first).
Issue 5's goal: a student/teacher latency ratio >= 5,000x at 1669:1.

    .venv/bin/python bench/scripts/bench_ratio.py [--rounds 3] [--teacher-d 256]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from edgegan.bench.harness import count_macs, probe_runtime, probe_torch
from edgegan.export import export_run
from edgegan import testing
from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.models import build_generator, count_params
from edgegan.sysinfo import machine

RESULTS = Path(__file__).resolve().parents[1] / "results"


def make_run(folder: Path, d: int) -> Path:
    return testing.make_run(folder, testing.random_bn_generator(d), {"d": d})


def _runtime(model: str) -> str:
    """'onnx fp32', 'tflite fp32' or 'torch eager': the teacher row a student row is divided by in the
    same-runtime column (a TFLite student against the TFLite teacher, never across runtimes)."""
    return {"onnx": "onnx fp32", "tflite": "tflite fp32", "torch": "torch eager"}[model.split()[1]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--teacher-d", type=int, default=256)
    ap.add_argument("--student-d", type=int, default=2)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_ratio_"))
    t_run, s_run = make_run(tmp / "teacher", a.teacher_d), make_run(tmp / "student", a.student_d)
    t_onnx = t_run / export_run(t_run, format="onnx")["file"]
    t_tflite = t_run / export_run(t_run, format="tflite")["file"]
    files = {"student onnx fp32": s_run / export_run(s_run, format="onnx")["file"],
             "student tflite fp32": s_run / export_run(s_run, format="tflite")["file"],
             "student tflite int8": s_run / export_run(s_run, format="tflite", quantize="int8", batch=[1, 64])["file"]}
    samples: dict[str, list[float]] = {"teacher onnx fp32": [], "teacher tflite fp32": [], "teacher torch eager": [],
                                       "student torch eager": [],
                                       **{k: [] for k in files}}
    for _ in range(a.rounds):  # alternate, so that machine noise hits every model alike
        samples["teacher onnx fp32"].append(probe_runtime(t_onnx)["p50_us"])
        samples["teacher tflite fp32"].append(probe_runtime(t_tflite)["p50_us"])
        for k, f in files.items():
            samples[k].append(probe_runtime(f)["p50_us"])
        samples["teacher torch eager"].append(probe_torch(str(t_run))["p50_us"])
        samples["student torch eager"].append(probe_torch(str(s_run))["p50_us"])
    med = {k: statistics.median(v) for k, v in samples.items()}
    tp, sp = (count_params(build_generator("dcgan", d=d)) for d in (a.teacher_d, a.student_d))
    tm, sm = (count_macs(build_generator("dcgan", d=d), 100) for d in (a.teacher_d, a.student_d))
    t = med["teacher onnx fp32"]
    rows = [{"model": k, "runtime": _runtime(k), "p50_us": round(v, 2),
             "teacher_over_this_same_runtime": round(med[f"teacher {_runtime(k)}"] / v, 1),
             "teacher_onnx_over_this": round(t / v, 1)} for k, v in med.items()]
    doc = {"created": now_iso(), "machine": machine(), "versions": versions("onnxruntime", "ai-edge-litert"),
           "teacher": {"d": a.teacher_d, "params": tp, "macs": tm}, "student": {"d": a.student_d, "params": sp, "macs": sm},
           "compression": round(tp / sp, 1), "mac_ratio": round(tm / sm, 1), "rounds": a.rounds, "batch": 1, "threads": 1,
           "samples_us": samples, "results": rows,
           "goal": "student/teacher latency ratio >= 5000x at 1669:1 in the same runtime"}
    atomic_write_json(RESULTS / "ratio.json", doc)
    mc = doc["machine"]
    best = max((r for r in rows if r["model"].startswith("student") and "eager" not in r["model"]),
               key=lambda r: r["teacher_onnx_over_this"])
    md = [f"# Latency at the paper's MNIST compression: dcgan d={a.teacher_d} teacher vs d={a.student_d} student", "",
          f"{tp:,} vs {sp:,} params ({doc['compression']}:1), {tm:,} vs {sm:,} MACs per image ({doc['mac_ratio']}:1). "
          f"Machine: {mc['cpu']} ({mc.get('isa', 'isa not recorded')}), {mc['cores']} cores; onnxruntime {doc['versions'].get('onnxruntime')}, "
          f"ai-edge-litert {doc['versions'].get('ai-edge-litert')}, torch {doc['versions'].get('torch')}. "
          f"p50 at batch 1, one thread, median of {a.rounds} alternating rounds, each model in its own process; {doc['created']}.", "",
          "| model | p50 µs | teacher ÷ this, same runtime (teacher's p50 in that runtime) | teacher (ONNX Runtime) ÷ this |",
          "|---|---:|---:|---:|"]
    md += [f"| {r['model']} | {r['p50_us']:,.1f} | {r['teacher_over_this_same_runtime']:,.1f} "
           f"({med['teacher ' + r['runtime']]:,.1f} µs) | {r['teacher_onnx_over_this']:,.1f} |" for r in rows]
    md += ["", f"Best deployed student: {best['model']}, {best['teacher_onnx_over_this']:,.0f}x faster than the teacher in "
           f"ONNX Runtime. Goal: >= 5,000x. A batch-1 call has a fixed cost (a trivial model's invoke is ~1.4 µs here), "
           f"so the latency ratio stays far below the {doc['mac_ratio']:,.0f}:1 MAC ratio.", ""]
    atomic_write_bytes(RESULTS / "ratio.md", "\n".join(md).encode())
    print("\n".join(md))


if __name__ == "__main__":
    main()
