"""Seconds per distillation step, d=2 and d=16 students of a d=64 teacher, beside the teacher's forward pass.

The teacher's forward pass is the floor of a distillation step; everything above it is overhead.
Goal (issue 2): a d=2 step costs <= 1.3x the teacher forward at the same batch. The three
measurements are interleaved in rounds, in one process, so machine noise hits them alike.

    .venv/bin/python bench/scripts/bench_distill.py [--rounds 3] [--steps 30] [--batch 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from edgegan.distill import DistillConfig, distill
from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.sources import load_generator
from edgegan.sysinfo import machine
from edgegan.testing import make_run, random_bn_generator

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--teacher-d", type=int, default=64)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_distill_"))
    teacher_dir = tmp / "teacher"
    make_run(teacher_dir, random_bn_generator(a.teacher_d), {"d": a.teacher_d}, kind="teacher")
    teacher = load_generator(str(teacher_dir))
    z = torch.randn(a.batch, 100)
    teacher.forward(z)  # warm-up
    samples: dict[str, list[float]] = {"teacher_forward": [], "student_d2": [], "student_d16": []}
    for r in range(a.rounds):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            teacher.forward(torch.randn(a.batch, 100))
        samples["teacher_forward"].append((time.perf_counter() - t0) / a.steps)
        for d in (2, 16):
            m = distill(DistillConfig(teacher=str(teacher_dir), d=d, steps=a.steps, batch_size=a.batch, eval_samples=64),
                        tmp / f"s{d}_{r}", progress=False)
            samples[f"student_d{d}"].append(m["distill"]["seconds_per_step"])
    med = {k: statistics.median(v) for k, v in samples.items()}
    fwd = med["teacher_forward"]
    rows = [{"what": k, "seconds_per_step": round(v, 5), "images_per_s": round(a.batch / v, 1),
             "x_teacher_forward": round(v / fwd, 3)} for k, v in med.items()]
    out = {"created": now_iso(), "machine": machine(), "versions": versions(), "torch_threads": torch.get_num_threads(),
           "teacher_d": a.teacher_d, "batch": a.batch, "steps_per_round": a.steps, "rounds": a.rounds,
           "samples": samples, "results": rows, "goal": "student_d2 <= 1.3x teacher_forward"}
    atomic_write_json(RESULTS / "distill.json", out)
    mc = out["machine"]
    md = [f"# Distillation step cost (teacher dcgan d={a.teacher_d}, batch {a.batch})", "",
          f"Machine: {mc['cpu']} ({mc.get('isa', 'isa not recorded')}), {mc['cores']} cores, torch {out['versions'].get('torch')} "
          f"({out['torch_threads']} threads); median of {a.rounds} interleaved rounds of {a.steps} steps; {out['created']}.", "",
          "| what | s / step | images / s | × teacher forward |", "|---|---:|---:|---:|"]
    md += [f"| {r['what']} | {r['seconds_per_step']:.4f} | {r['images_per_s']:.0f} | {r['x_teacher_forward']:.2f} |" for r in rows]
    md += ["", "Goal: a d=2 step ≤ 1.3× the teacher's forward pass (the rest of a step is overhead).", ""]
    atomic_write_bytes(RESULTS / "distill.md", "\n".join(md).encode())
    print("\n".join(md))


if __name__ == "__main__":
    main()
