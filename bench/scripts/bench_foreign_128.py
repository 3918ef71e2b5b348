"""Distilling a 128x128, latent-512 foreign teacher of ~16 M params (issue 10): peak memory and s/step.

The teacher is the PyTorch DCGAN example's generator grown to 128x128 (z (N, 512, 1, 1), six
transposed convolutions, ngf=56: 15.9 M params), random weights (speed and memory do not depend on
the values), handed to edgegan as a TorchScript file, as a user would. Each distillation runs in its
own process, so peak RSS (VmHWM) is that run's alone; s/step is the distill manifest's.

    .venv/bin/python bench/scripts/bench_foreign_128.py [--steps 20] [--batch 16] [--d 4 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.sysinfo import machine

RESULTS = Path(__file__).resolve().parents[1] / "results"
NZ, NGF, SIDE = 512, 56, 128


def teacher(nz: int = NZ, ngf: int = NGF, nc: int = 3) -> nn.Module:
    """DCGAN example generator, one more stage per doubling: 4 -> 8 -> ... -> 128."""
    widths = [ngf * 16, ngf * 8, ngf * 4, ngf * 2, ngf]
    layers: list[nn.Module] = [nn.ConvTranspose2d(nz, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]),
                               nn.ReLU(True)]
    for cin, cout in zip(widths, widths[1:]):
        layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(widths[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


CHILD = """
import json, sys
import torch
torch.set_num_threads(int(sys.argv[4]))
from edgegan.distill import DistillConfig, distill
from edgegan_runtime.probe import peak_rss_mb
m = distill(DistillConfig(teacher=sys.argv[1], family="anyshape", d=int(sys.argv[3]), steps=int(sys.argv[5]),
                          batch_size=int(sys.argv[6]), eval_samples=32, checkpoint_every=0), sys.argv[2], progress=True)
d = m["distill"]
print(json.dumps({"peak_rss_mb": peak_rss_mb(), "seconds_per_step": d["seconds_per_step"],
                  "teacher_params": d["teacher_params"], "student_params": d["student_params"],
                  "latent_shape": d["teacher"]["latent_shape"], "output_shape": m["model"]["output"]["shape"],
                  "student_args": m["model"]["args"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--d", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_foreign_"))
    torch.manual_seed(0)
    g = teacher().eval()
    params = sum(p.numel() for p in g.parameters())
    ts = tmp / "teacher128.pt"
    torch.jit.trace(g, torch.zeros(1, NZ, 1, 1)).save(str(ts))
    with torch.no_grad():  # the floor of a step: one teacher forward at the batch
        z = torch.randn(a.batch, NZ, 1, 1)
        g(z)
        t0 = time.perf_counter()
        for _ in range(3):
            g(z)
        fwd = (time.perf_counter() - t0) / 3
    rows = []
    for d in a.d:
        load0 = os.getloadavg()[0]
        r = subprocess.run([sys.executable, "-c", CHILD, str(ts), str(tmp / f"s{d}"), str(d), str(a.threads),
                            str(a.steps), str(a.batch)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(r.stderr[-2000:])
        row = json.loads(r.stdout.strip().splitlines()[-1])
        row.update(d=d, load_avg_1min_before=round(load0, 2), load_avg_1min_after=round(os.getloadavg()[0], 2))
        rows.append(row)
        print(f"d={d}: {row['seconds_per_step']:.3f} s/step, peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    out = {"created": now_iso(), "machine": machine(), "versions": versions(), "torch_threads": a.threads,
           "teacher": {"form": "TorchScript", "arch": f"DCGAN example grown to {SIDE}x{SIDE}, ngf={NGF}", "params": params,
                       "latent": [NZ, 1, 1], "output": [3, SIDE, SIDE], "forward_s_per_batch": round(fwd, 4)},
           "batch": a.batch, "steps": a.steps, "loss": "mse (pixel)", "results": rows}
    atomic_write_json(RESULTS / "foreign-128.json", out)
    mc = out["machine"]
    md = [f"# Distilling a {SIDE}x{SIDE}, latent-{NZ} foreign teacher ({params / 1e6:.1f} M params, TorchScript)", "",
          f"Machine: {mc['cpu']} ({mc.get('isa', 'isa not recorded')}), {mc['cores']} cores, torch "
          f"{out['versions'].get('torch')} ({a.threads} threads); {a.steps} steps at batch {a.batch}, pixel MSE, "
          f"`--family anyshape`; each run in its own process; {out['created']}. The machine was shared with other "
          "work (1-minute load average in the table), so times are upper bounds.", "",
          f"Teacher forward alone: {fwd:.3f} s per batch of {a.batch}.", "",
          "| student | params | compression | s / step | × teacher forward | peak RSS MB | load avg |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| anyshape d={r['d']} | {r['student_params']:,} | {params / r['student_params']:,.0f}:1 | "
                  f"{r['seconds_per_step']:.3f} | {r['seconds_per_step'] / fwd:.2f} | {r['peak_rss_mb']:.0f} | "
                  f"{r['load_avg_1min_before']:.1f} |")
    md += ["", f"Reproduce: `.venv/bin/python bench/scripts/bench_foreign_128.py {' '.join(sys.argv[1:])}`.", ""]
    atomic_write_bytes(RESULTS / "foreign-128.md", "\n".join(md).encode())
    print("\n".join(md))


if __name__ == "__main__":
    main()
