"""Knowledge distillation of a generator (Aguinaldo et al. 2019).

The student is trained to reproduce the teacher's image for the same latent z, with fresh
z ~ N(0, I) every step:

* ``mse``:   L = ||S(z) - T(z)||²  (pixel MSE; the paper's main loss)
* ``joint``: L = ||S(z) - T(z)||² + λ · L_GAN(S), with a discriminator trained on the real data
  against the student's images (the paper's sharper variant; ``lam`` = λ).

The teacher is frozen and run under ``torch.no_grad``: its forward pass is the bulk of a step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgegan.config import DATASET_NAMES, FAMILY_NAMES, opt
from edgegan.errors import ConfigError, TeacherError
from edgegan.manifest import MANIFEST_NAME, atomic_write_json, now_iso, versions

log = logging.getLogger(__name__)
LOSSES = ("mse", "joint")


@dataclass(frozen=True)
class DistillConfig:
    # Each field's default, help and choices are declared once here; `edgegan distill` is generated from them.
    teacher: str = opt(help="edgegan run dir, .onnx, TorchScript file, or module:factory")
    teacher_weights: str | None = opt(None, "safetensors weights for a module:factory teacher")
    latent_dim: int | None = opt(None, "latent size, when it cannot be read from the teacher")
    family: str = opt("dcgan", "student family", choices=FAMILY_NAMES)
    d: int = opt(2, "student depth factor")
    loss: str = opt("mse", "mse: pixel MSE to the teacher; joint: MSE + lam * GAN loss on real data", choices=LOSSES)
    lam: float = opt(0.01, "weight of the GAN term of the joint loss")
    d_disc: int = opt(16, "discriminator depth factor for the joint loss")
    dataset: str | None = opt(None, "real data for the joint loss (default: the teacher's dataset)", choices=DATASET_NAMES)
    data_dir: str | None = opt(None, "folder holding the dataset's files (default: $EDGEGAN_DATA/<dataset>)")
    steps: int = opt(2000, "optimiser steps")
    batch_size: int = opt(64, "latents per step")
    # Adam learning rate of the student. Pixel-MSE regression is stable, and small-d students learn slowly
    # at the GAN rate 2e-4 (a 1x1 output conv over d channels moves ~lr per step): measured on MNIST,
    # 300 steps of a d=2 student cut the MSE 3x at 1e-3, 15x at 3e-3, 42x at 1e-2.
    lr: float = opt(5e-3, "student learning rate (Adam)")
    beta1: float = opt(0.5, "Adam beta1 of the student")
    seed: int = opt(0, "random seed")
    device: str = opt("cpu", "cpu, cuda or cuda:N")
    eval_samples: int = opt(256, "fixed latents on which the student-teacher MSE is reported")

    def __post_init__(self) -> None:
        for name, lo in {"d": 1, "steps": 1, "batch_size": 1, "d_disc": 1, "eval_samples": 1}.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {lo}, got {v!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if not self.lr > 0 or self.lam < 0:
            raise ConfigError("lr must be > 0 and lam >= 0")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ConfigError(f"latent-dim must be >= 1, got {self.latent_dim}")


def distill(cfg: DistillConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Distil ``cfg.teacher`` into a ``cfg.family`` student of depth ``cfg.d``; writes run directory ``out``."""
    import torch
    import torch.nn.functional as F

    from edgegan.checkpoint import model_section
    from edgegan.models import build_discriminator, build_generator, count_params, get_family
    from edgegan.sources import load_generator
    from edgegan.utils import progress as bar
    from edgegan.utils import resolve_device, seed_everything
    from edgegan.viz import save_comparison
    from edgegan_runtime import latent

    out = Path(out)
    fam = get_family(cfg.family)
    device = resolve_device(cfg.device)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: output directory exists and is not empty (choose another --out)")
    teacher = load_generator(cfg.teacher, weights=cfg.teacher_weights, latent_dim=cfg.latent_dim, device=cfg.device)
    C, H, W = teacher.output_shape
    if H != W:
        raise TeacherError(f"{cfg.teacher}: teacher makes {H}x{W} images; {cfg.family} students make square images")
    args = {"d": cfg.d, "nc": C, "image_size": H, "latent_dim": teacher.latent_dim}
    try:
        fam.make_args(**args)
    except ConfigError as e:
        raise TeacherError(f"{cfg.teacher}: a {cfg.family} student cannot match the teacher's output {C}x{H}x{W} ({e})") from None

    real = None
    dataset_info = None
    if cfg.loss == "joint":
        from edgegan.data import load_dataset

        name = cfg.dataset
        if name is None and teacher.kind == "edgegan":  # default: the data the teacher was trained on
            from edgegan.manifest import read_manifest

            name = read_manifest(teacher.spec).get("dataset", {}).get("name")
        if name is None:
            raise ConfigError("the joint loss needs real data: pass --dataset")
        data = load_dataset(name, data_dir=cfg.data_dir, split="train", image_size=H)
        if data.shape != (C, H, W):
            raise ConfigError(f"dataset {name} has images {data.shape}, the teacher makes {(C, H, W)}")
        real, dataset_info = data.torch(), data.describe()

    seed_everything(cfg.seed)
    student = build_generator(cfg.family, **args).to(device)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    if real is not None:
        D = build_discriminator(cfg.family, **{**args, "d_disc": cfg.d_disc}).to(device)
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed)
    eval_z = torch.from_numpy(latent(cfg.eval_samples, teacher.latent_dim, cfg.seed + 1)).to(device)
    eval_t = torch.cat([teacher.forward(eval_z[i:i + 256]) for i in range(0, len(eval_z), 256)]).to(device)

    def eval_mse() -> float:
        student.eval()
        with torch.no_grad():
            v = F.mse_loss(student(eval_z), eval_t).item()
        student.train()
        return v

    mse_start = eval_mse()
    curve: list[list[float]] = []
    every = max(1, cfg.steps // 200)
    t0 = time.perf_counter()
    pb = bar(cfg.steps, f"distill d={cfg.d} ({cfg.loss})", enabled=progress)
    out.mkdir(parents=True, exist_ok=True)
    try:
        for step in range(1, cfg.steps + 1):
            z = torch.randn(cfg.batch_size, teacher.latent_dim, generator=gen).to(device)
            target = teacher.forward(z).to(device)
            fake = student(z)
            loss_mse = F.mse_loss(fake, target)
            loss = loss_mse
            if real is not None:
                idx = torch.randint(0, len(real), (cfg.batch_size,), generator=gen)
                ones = torch.ones(cfg.batch_size, device=device)
                opt_d.zero_grad(set_to_none=True)
                loss_d = (F.binary_cross_entropy_with_logits(D(real[idx].to(device)), ones)
                          + F.binary_cross_entropy_with_logits(D(fake.detach()), torch.zeros_like(ones)))
                loss_d.backward()
                opt_d.step()
                loss = loss_mse + cfg.lam * F.binary_cross_entropy_with_logits(D(fake), ones)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % every == 0 or step == cfg.steps:
                curve.append([step, round(loss_mse.item(), 6)])
            pb.update(1)
            if step % 10 == 0:
                pb.set_postfix(mse=f"{loss_mse.item():.4f}", refresh=False)
    finally:
        pb.close()
    seconds = time.perf_counter() - t0
    mse_end = eval_mse()
    student.eval().cpu()

    with torch.no_grad():
        z64 = eval_z[:64].cpu()
        t_img = eval_t[:64].cpu().numpy()
        s_img = student(z64).numpy()
    save_comparison({"teacher": t_img, f"student d={cfg.d}": s_img}, out / "samples" / "teacher_vs_student.png")
    sp = count_params(student)
    manifest = {
        "schema": "edgegan.manifest/1",
        "kind": "student",
        "created": now_iso(),
        "versions": versions(),
        "model": model_section(student, cfg.family, args, out),
        "config": asdict(cfg),
        "distill": {
            "teacher": teacher.describe(),
            "loss": cfg.loss,
            "lam": cfg.lam if cfg.loss == "joint" else None,
            "dataset": dataset_info,
            "teacher_params": teacher.params,
            "student_params": sp,
            "compression_ratio": round(teacher.params / sp, 2) if teacher.params else None,
            "steps": cfg.steps,
            "seconds": round(seconds, 3),
            "seconds_per_step": round(seconds / cfg.steps, 5),
            "eval": {"samples": cfg.eval_samples, "seed": cfg.seed + 1, "mse_start": mse_start, "mse_end": mse_end,
                     "mse_drop": round(mse_start / mse_end, 2) if mse_end > 0 else None},
            "loss_curve": {"columns": ["step", "mse"], "rows": curve},
            "samples": "samples/teacher_vs_student.png",
        },
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return manifest
