"""``edgegan demo``: the whole chain on the embedded digits, in a few minutes on 2 CPU cores.

teacher (dcgan d=32, trained on sklearn digits) → student (d=2, pixel-MSE distillation)
→ export (ONNX fp32 and TFLite int8, parity-checked through edgegan-runtime) → bench table.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from edgegan.errors import ConfigError

log = logging.getLogger(__name__)

FULL = {"teacher_d": 32, "teacher_steps": 1200, "teacher_lr": 5e-4, "student_d": 2, "student_steps": 1500, "bench_samples": 1000}
FAST = {"teacher_d": 8, "teacher_steps": 60, "teacher_lr": 1e-3, "student_d": 2, "student_steps": 60, "bench_samples": 200}


DEMO_ENTRIES = {"teacher", "student", "bench", "summary.md"}  # what a demo folder holds


def run_demo(out: str | Path, *, fast: bool = False, progress: bool = True,
             stages: tuple[str, ...] = ("train", "distill", "export", "bench")) -> dict[str, Any]:
    from edgegan.distill import DistillConfig, distill
    from edgegan.manifest import atomic_write_bytes
    from edgegan.train import TrainConfig, train_gan

    p = FAST if fast else FULL
    out = Path(out)
    from edgegan.outputs import check_out

    check_out(out)
    if out.exists():
        # The demo owns its folder: a re-run starts clean instead of refusing. Only a demo's own
        # folder, though: `--out ~` must never delete a home directory (issue 14).
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES and not p.name.startswith("."))
        if foreign:
            raise ConfigError(f"{out}: exists and is not a demo folder (it holds {', '.join(foreign[:3])}); "
                              "choose another --out")
        shutil.rmtree(out)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"params": p}
    say = print if progress else (lambda *a, **k: None)

    say(f"[1/4] training a dcgan teacher d={p['teacher_d']} on the embedded digits ({p['teacher_steps']} steps)")
    teacher = train_gan(TrainConfig(dataset="digits", d=p["teacher_d"], steps=p["teacher_steps"], lr=p["teacher_lr"], batch_size=64,
                                    sample_every=0, checkpoint_every=0, seed=0), out / "teacher", progress=progress)
    summary["teacher"] = {"params": teacher["model"]["params"], "seconds": teacher["train"]["seconds"]}

    say(f"[2/4] distilling a d={p['student_d']} student by pixel MSE ({p['student_steps']} steps)")
    student = distill(DistillConfig(teacher=str(out / "teacher"), d=p["student_d"], steps=p["student_steps"],
                                    batch_size=64, seed=0), out / "student", progress=progress)
    dd = student["distill"]
    summary["student"] = {"params": dd["student_params"], "compression_ratio": dd["compression_ratio"],
                          "mse_start": dd["eval"]["mse_start"], "mse_end": dd["eval"]["mse_end"], "seconds": dd["seconds"]}

    exports: list[dict[str, Any]] = []
    if "export" in stages:
        from edgegan.export import export_run

        say("[3/4] exporting the student: ONNX fp32 and TFLite int8, each checked numerically through edgegan-runtime")
        for fmt, q, extra in (("onnx", "none", {}), ("tflite", "int8", {"batch": [1, 64]})):
            e = export_run(out / "student", format=fmt, quantize=q, **extra)
            exports.append({k: e.get(k) for k in ("file", "format", "precision", "bytes")} | {"parity": e.get("parity")})
    summary["exports"] = exports

    bench_md = None
    if "bench" in stages:
        from edgegan.app.bench_runs import run_bench

        say("[4/4] benchmarking teacher, student and exported files")
        res = run_bench([str(out / "student")], out=out / "bench", samples=p["bench_samples"], progress=progress)
        bench_md = Path(res["markdown_path"]).read_text()
    summary["seconds"] = round(time.perf_counter() - t0, 1)

    lines = [
        "# edgegan demo",
        "",
        f"- teacher: dcgan d={p['teacher_d']}, {summary['teacher']['params']:,} params, trained {p['teacher_steps']} steps "
        f"on the embedded digits in {summary['teacher']['seconds']:.0f}s",
        f"- student: dcgan d={p['student_d']}, {summary['student']['params']:,} params "
        f"(compression {summary['student']['compression_ratio']}:1), distilled {p['student_steps']} steps in "
        f"{summary['student']['seconds']:.0f}s; MSE to the teacher {summary['student']['mse_start']:.4f} → "
        f"{summary['student']['mse_end']:.4f} on 256 fixed latents",
        "- samples (same z): `student/samples/teacher_vs_student.png`",
    ]
    for e in exports:
        par = e["parity"] or {}
        mx, ps = par.get("max_abs"), par.get("psnr_db")
        lines.append(f"- export {e['file']}: {e['bytes']:,} bytes, parity {'ok' if par.get('passed') else 'FAILED'} "
                     f"(max abs {mx if mx is not None else float('nan'):.2g}, "
                     f"PSNR {ps if ps is not None else float('nan'):.1f} dB)")
    lines.append(f"- total: {summary['seconds']:.0f}s")
    if bench_md:
        lines += ["", bench_md]
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(out / "summary.md", text.encode())
    say("\n" + text)
    return summary
