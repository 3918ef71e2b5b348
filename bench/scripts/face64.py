"""Score students of a foreign teacher with no data (issue 19): ``bench/results/face64.md``'s numbers.

    python bench/scripts/face64.py --teacher generator:make --teacher-weights face64.safetensors \
        --import-dir ../shared/teachers/face64 --run mse=runs/f64/mse --run recipe=runs/f64/gan \
        [--file int8=runs/f64/gan/exports/student_int8.tflite] --samples 2000 --out bench/results/face64

Per model, on ``--samples`` latents (``edgegan_runtime.latent``, seed ``--seed``), all label-free:
PSNR and SSIM to the teacher for the same z; SWD to the teacher's own samples on disjoint latents
(seed + 1,000,003), beside the teacher-vs-teacher floor (the teacher's samples for the scored z
against that reference); colour FD to the same reference (SWD normalises colour away); sharpness. From each run's manifest: steps, seconds, s/step, and the
curve of PSNR (from the logged batch MSE on fresh or pooled z) against steps and wall-clock.
Writes ``OUT.json``, ``OUT-grid.png`` (teacher and each model for the same 8 latents) and
``OUT-curve.png``; the markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def _images(fn, z: np.ndarray, batch: int = 250) -> np.ndarray:
    return np.concatenate([fn(z[i:i + batch]) for i in range(0, len(z), batch)]).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgegan.bench.harness import TEACHER_REFERENCE_SEED
    from edgegan.checkpoint import load_run
    from edgegan.manifest import atomic_write_json, read_manifest
    from edgegan.metrics import SWDConfig, colour_fd, psnr, sharpness, ssim
    from edgegan.metrics import swd as _swd
    from edgegan.sources import load_generator
    from edgegan.sysinfo import machine
    from edgegan.viz import save_comparison
    from edgegan_runtime import latent

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--teacher-weights")
    ap.add_argument("--import-dir")
    ap.add_argument("--run", action="append", default=[], help="LABEL=RUN_DIR (a distilled student)")
    ap.add_argument("--file", action="append", default=[], help="LABEL=MODEL_FILE (an exported student)")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--swd-nhoods", type=int, default=128, help="SWD patches per image and level (ProGAN: 128; fewer "
                    "is cheaper on a loaded CPU, the same for every row and for the floor)")
    ap.add_argument("--out", required=True, help="path prefix of the outputs")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg = SWDConfig(nhoods_per_image=a.swd_nhoods)

    def swd(x, y, seed):
        return _swd(x, y, seed=seed, config=cfg)

    src = load_generator(a.teacher, weights=a.teacher_weights, import_dir=a.import_dir)

    def teacher_fn(z):
        return src.forward(torch.from_numpy(z)).numpy()

    z = latent(a.samples, src.latent_dim, a.seed)
    zr = latent(a.samples, src.latent_dim, a.seed + TEACHER_REFERENCE_SEED)
    t_img, ref = _images(teacher_fn, z), _images(teacher_fn, zr)
    floor = swd(t_img, ref, seed=a.seed)
    rows = [{"model": "teacher", "params": src.params, "swd": floor.mean, "swd_per_level": floor.per_level,
             "swd_x_floor": 1.0, "colour_fd": colour_fd(t_img, ref), "sharpness": sharpness(t_img), "psnr_db": None, "ssim": None}]
    grids = {"teacher": t_img[:8]}
    curves = {}
    for item in a.run + a.file:
        label, _, path = item.partition("=")
        if item in a.run:
            raw = path.endswith("@student")  # the raw student of an EMA run, from its last checkpoint
            path = path.removesuffix("@student")
            run = load_run(path)
            g = run.generator.eval()
            m = read_manifest(path)
            if raw:
                from edgegan.checkpoint import load_tensors

                st = json.loads((Path(path) / "state.json").read_text())
                t = load_tensors(Path(path) / st["tensors"])
                g.load_state_dict({k[len("module.student."):]: v for k, v in t.items() if k.startswith("module.student.")})

            def fn(zz, g=g):
                with torch.no_grad():
                    return g(torch.from_numpy(zz)).numpy()

            d = m["distill"]
            info = {"params": m["model"]["params"], "ratio": d["compression_ratio"], "steps": d["steps"],
                    "seconds": d["seconds"], "s_per_step": round(d["seconds"] / max(1, d["steps"]), 4),
                    "recipe": d["recipe"]["terms"], "ema": d["recipe"]["ema"], "gan": d.get("gan"),
                    "latents": d["latent_sampling"]}
            cols = d["loss_curve"]["columns"]
            curves[label] = {"steps": [r[0] for r in d["loss_curve"]["rows"]],
                             "psnr": [10 * math.log10(4.0 / max(r[cols.index("mse")], 1e-12))
                                      for r in d["loss_curve"]["rows"]],
                             "s_per_step": info["s_per_step"]}
        else:
            import edgegan_runtime as rt

            handle = rt.load(path)
            fn = handle.generate_from
            info = {"file": path, "bytes": Path(path).stat().st_size}
        s_img = _images(fn, z)
        w = swd(s_img, ref, seed=a.seed)
        rows.append({"model": label, **info, "psnr_db": psnr(s_img, t_img), "ssim": ssim(s_img, t_img),
                     "swd": w.mean, "swd_per_level": w.per_level, "swd_x_floor": w.mean / floor.mean,
                     "colour_fd": colour_fd(s_img, ref),
                     "sharpness": sharpness(s_img)})
        grids[label] = s_img[:8]
    out = Path(a.out)
    doc = {"machine": machine(), "teacher": src.describe(), "samples": a.samples, "seed": a.seed,
           "reference": f"teacher images, latents seed {a.seed + TEACHER_REFERENCE_SEED}",
           "swd_nhoods_per_image": a.swd_nhoods,
           "seconds": round(time.perf_counter() - t0, 1), "rows": rows, "curves": curves}
    atomic_write_json(out.with_suffix(".json"), doc)
    save_comparison(grids, out.parent / f"{out.name}-grid.png", nrow=2, scale=1)
    _curve_png(curves, out.parent / f"{out.name}-curve.png")
    print("| model | params | ratio | steps | s/step | PSNR vs T dB ↑ | SSIM vs T ↑ | SWD to T samples ↓ | × floor | colour FD ↓ | sharpness |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        f = lambda v, s: "—" if v is None else format(v, s)  # noqa: E731
        print(f"| {r['model']} | {f(r.get('params'), ',')} | {f(r.get('ratio'), '.1f')} | {f(r.get('steps'), ',')} | "
              f"{f(r.get('s_per_step'), '.3f')} | {f(r['psnr_db'], '.2f')} | {f(r['ssim'], '.3f')} | {r['swd']:.1f} | "
              f"{r['swd_x_floor']:.2f} | {r['colour_fd']:.3g} | {r['sharpness']:.3g} |")
    return 0


def _curve_png(curves: dict, path: Path) -> None:
    if not curves:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    for label, c in curves.items():
        psnr = np.array(c["psnr"])
        k = max(1, len(psnr) // 40)  # a running mean over the logged batches: each is one batch's MSE
        sm = np.convolve(psnr, np.ones(k) / k, mode="valid")
        steps = np.array(c["steps"][k - 1:])
        axes[0].plot(steps, sm, label=label)
        axes[1].plot(steps * c["s_per_step"] / 60, sm, label=label)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("wall-clock minutes (mean s/step of the run)")
    for ax in axes:
        ax.set_ylabel("PSNR to teacher, dB (batch)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
