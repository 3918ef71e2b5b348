"""A foreign teacher through the whole chain (issue 10): the PyTorch DCGAN example's generator, trained
briefly here on the shared CelebA subset UPSAMPLED from 32x32 to 64x64, handed to edgegan as an ONNX
file whose input is z (N, 100, 1, 1); distilled, exported (ONNX fp32, TFLite int8) and benched.

The teacher is not an edgegan model: it is trained by a plain PyTorch loop below (the example's
architecture, ngf = ndf = 32, Adam 2e-4 / 0.5, BCE), so everything edgegan knows about it is what it
reads from the file. CPU-cheap on purpose (minutes): the numbers compare teacher and student on the
same machine, they are not a CelebA result.

    .venv/bin/python bench/scripts/bench_foreign_celeba64.py [--teacher-steps 400] [--steps 800] [--samples 1000]
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

from edgegan.data import load_dataset
from edgegan.manifest import atomic_write_bytes, atomic_write_json
from edgegan.utils import progress

RESULTS = Path(__file__).resolve().parents[1] / "results"
NZ = 100


def generator(ngf: int) -> nn.Module:
    return nn.Sequential(
        nn.ConvTranspose2d(NZ, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(ndf: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Flatten())


def _init(m: nn.Module) -> None:  # the example's weights_init
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def train_teacher(steps: int, batch: int, ngf: int) -> tuple[nn.Module, dict]:
    data = load_dataset("celeba", split="train", image_size=64)  # 32x32 files, bicubic-upsampled to 64x64
    x = data.torch()
    torch.manual_seed(0)
    G, D = generator(ngf), discriminator(ngf)
    G.apply(_init)
    D.apply(_init)
    oG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    oD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    bar = progress(steps, "teacher (DCGAN example, CelebA upsampled to 64)")
    for _ in range(steps):
        real = x[torch.randint(0, len(x), (batch,))]
        fake = G(torch.randn(batch, NZ, 1, 1))
        lD = bce(D(real), torch.ones(batch, 1)) + bce(D(fake.detach()), torch.zeros(batch, 1))
        oD.zero_grad()
        lD.backward()
        oD.step()
        lG = bce(D(fake), torch.ones(batch, 1))
        oG.zero_grad()
        lG.backward()
        oG.step()
        bar.update(1)
        bar.set_postfix(lD=f"{lD.item():.3f}", lG=f"{lG.item():.3f}", refresh=False)
    bar.close()
    return G.eval(), {"steps": steps, "batch": batch, "ngf": ngf, "seconds": round(time.perf_counter() - t0, 1),
                      "dataset": data.describe()}


def edgegan(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", *args])
    if r.returncode != 0:
        raise SystemExit(f"edgegan {' '.join(args)} failed ({r.returncode})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher-steps", type=int, default=400)
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="foreign_celeba64_"))
    G, info = train_teacher(a.teacher_steps, 32, a.ngf)
    onnx_path = tmp / "dcgan_example_celeba64.onnx"
    torch.onnx.export(G, (torch.zeros(1, NZ, 1, 1),), str(onnx_path), input_names=["z"], output_names=["images"],
                      dynamic_axes={"z": {0: "batch"}, "images": {0: "batch"}}, dynamo=False)
    run = tmp / "student"
    th = ["--threads", str(a.threads)]
    edgegan(*th, "distill", "--teacher", str(onnx_path), "--d", str(a.d), "--steps", str(a.steps), "--batch-size", "32",
            "--out", str(run))
    edgegan(*th, "export", str(run), "--format", "onnx")
    edgegan(*th, "export", str(run), "--format", "tflite", "--quantize", "int8", "--batch", "1")
    edgegan(*th, "bench", str(run), "--dataset", "celeba", "--samples", str(a.samples), "--out", str(tmp / "bench"),
            "--quiet")
    doc = json.loads((tmp / "bench" / "bench.json").read_text())
    doc["foreign_teacher"] = {**info, "form": "ONNX, input z (N, 100, 1, 1)",
                              "arch": f"PyTorch DCGAN example generator, ngf={a.ngf}, 64x64 RGB",
                              "note": "trained here on the shared CelebA subset's 32x32 images UPSAMPLED to 64x64 "
                                      "(bicubic); the bench reference is upsampled the same way"}
    doc["distill"] = json.loads((run / "manifest.json").read_text())["distill"]
    doc["distill"].pop("loss_curve", None)
    atomic_write_json(RESULTS / "foreign-celeba64.json", doc)
    md = (tmp / "bench" / "bench.md").read_text().replace(str(run), f"student (dcgan d={a.d}, 64x64)")
    head = [f"# A foreign 64x64 teacher through the chain: CelebA UPSAMPLED 32→64 (issue 10)", "",
            f"Teacher: the PyTorch DCGAN example's generator (ngf={a.ngf}, z (N, 100, 1, 1)), trained here for "
            f"{a.teacher_steps} steps at batch 32 ({info['seconds']} s) on the shared CelebA subset's 32×32 images "
            "**bicubic-upsampled to 64×64** — not real 64×64 CelebA — and handed to edgegan as an ONNX file. "
            f"Distilled into a dcgan d={a.d} student ({a.steps} steps, pixel MSE), exported to ONNX fp32 and TFLite "
            "int8, benched against the CelebA test split upsampled the same way.", "",
            f"Machine shared with other work (1-minute load average {os.getloadavg()[0]:.1f} at the end): latencies "
            "are noisy upper bounds; each model was timed in its own process as usual.", "",
            f"Reproduce: `.venv/bin/python bench/scripts/bench_foreign_celeba64.py {' '.join(sys.argv[1:])}`.", ""]
    atomic_write_bytes(RESULTS / "foreign-celeba64.md", ("\n".join(head) + md.split("\n", 1)[1]).encode())
    print(f"sample grid (not kept: ~1 MB of photographs): {tmp / 'bench' / 'samples.png'}")
    print("\n".join(head) + md)


if __name__ == "__main__":
    main()
