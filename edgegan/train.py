"""GAN training for teachers and for the paper's *baselines* (a student-sized GAN trained from scratch).

Standard DCGAN recipe (Radford et al. 2016): Adam(2e-4, β=(0.5, 0.999)), non-saturating BCE loss.
A run directory holds::

    manifest.json            written last: the run's commit point (model, dataset, config, train)
    generator.safetensors    the generator (what later stages read)
    discriminator.safetensors
    state.safetensors        optimiser moments and RNG state, for --resume (no pickle)
    state.json               step, loss history and the scalars of the optimiser state
    samples/step_NNNNNN.png  sample grids on fixed latents
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgegan.config import DATASET_NAMES, FAMILY_NAMES, check_choices, opt
from edgegan.errors import CheckpointError, ConfigError
from edgegan.manifest import MANIFEST_NAME, atomic_write_json, file_entry, now_iso, versions

log = logging.getLogger(__name__)
KINDS = ("teacher", "baseline")


@dataclass(frozen=True)
class TrainConfig:
    # Each field's default, help and choices are declared once here; `edgegan train-teacher` is generated from them.
    dataset: str = opt("digits", "dataset to train on", choices=DATASET_NAMES)
    data_dir: str | None = opt(None, "folder holding the dataset's files (default: $EDGEGAN_DATA/<dataset>)")
    family: str = opt("dcgan", "generator family", choices=FAMILY_NAMES)
    d: int = opt(64, "depth factor of the generator")
    d_disc: int | None = opt(None, "depth factor of the discriminator (default: same as --d)")
    image_size: int = opt(32, "image side: 32 (the paper) or 64", choices=(32, 64))
    latent_dim: int = opt(100, "size of the latent z")
    steps: int = opt(2000, "total optimiser steps (a resumed run continues up to this)")
    batch_size: int = opt(64, "images per optimiser step")
    lr: float = opt(2e-4, "Adam learning rate, both networks (the generator's only, when --d-lr is given)")
    d_lr: float | None = opt(None, "discriminator's Adam learning rate (default: --lr); a sweep tunes the baseline's "
                             "generator rate against a fixed discriminator rate (issue 13)")
    beta1: float = opt(0.5, "Adam beta1 (DCGAN: 0.5)")
    seed: int = opt(0, "random seed")
    device: str = opt("cpu", "cpu, cuda or cuda:N")
    sample_every: int = opt(500, "steps between sample grids (0: only at the end)")
    checkpoint_every: int = opt(500, "steps between checkpoints (0: only at the end)")
    kind: str = opt("teacher", "what the run is recorded as: a teacher, or a student-sized baseline trained "
                    "from scratch (the paper's baseline); the training is the same", choices=KINDS)
    limit: int | None = opt(None, "use only the first N training images")

    def __post_init__(self) -> None:
        ints = {"d": 1, "steps": 1, "batch_size": 1, "latent_dim": 1, "sample_every": 0, "checkpoint_every": 0}
        for name, lo in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"{name.replace('_', '-')} must be an integer, got {v!r}")
            if v < lo:
                raise ConfigError(f"{name.replace('_', '-')} must be >= {lo}, got {v!r}")
        if self.d_disc is not None and self.d_disc < 1:
            raise ConfigError(f"d-disc must be >= 1, got {self.d_disc}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.d_lr is not None and not self.d_lr > 0:
            raise ConfigError(f"d-lr must be > 0, got {self.d_lr}")
        check_choices(self)  # kind, image_size
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")

    def model_args(self, nc: int) -> dict[str, Any]:
        return {"d": self.d, "nc": nc, "image_size": self.image_size, "latent_dim": self.latent_dim, "d_disc": self.d_disc}


# Fields that may differ between an interrupted run and its resumption.
_RESUMABLE = {"steps", "sample_every", "checkpoint_every", "device", "data_dir"}


def train_gan(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train a GAN into run directory ``out``; returns the manifest. Validates everything before writing."""
    import torch
    import torch.nn.functional as F

    from edgegan.checkpoint import load_tensors, model_section, save_tensors
    from edgegan.data import load_dataset
    from edgegan.models import build_discriminator, build_generator, get_family
    from edgegan.utils import progress as bar
    from edgegan.utils import resolve_device, seed_everything
    from edgegan.viz import save_grid
    from edgegan_runtime import latent

    out = Path(out)
    get_family(cfg.family)
    device = resolve_device(cfg.device)
    state_json = out / "state.json"
    start_step, history, prev = 0, [], None
    if resume:
        if not state_json.exists():
            raise CheckpointError(f"{out}: nothing to resume (no state.json; start without --resume)")
        prev = _read_state(out)
        old = TrainConfig(**prev["config"])
        diff = {k for k, v in asdict(cfg).items() if getattr(old, k) != v} - _RESUMABLE
        if diff:
            raise ConfigError(f"{out}: --resume with changed settings {sorted(diff)}; they must match the interrupted run")
        start_step, history = prev["step"], prev["history"]
        if start_step >= cfg.steps:
            raise ConfigError(f"{out}: run is already at step {start_step} >= --steps {cfg.steps}; raise --steps to continue")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: output directory exists and is not empty (use --resume, or another --out)")

    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="train", image_size=cfg.image_size, limit=cfg.limit)
    nc = data.shape[0]
    margs = cfg.model_args(nc)
    seed_everything(cfg.seed)
    G = build_generator(cfg.family, **margs).to(device)
    D = build_discriminator(cfg.family, **margs).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.d_lr if cfg.d_lr is not None else cfg.lr, betas=(cfg.beta1, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed)
    if prev is not None:
        _restore(out, prev, G, D, opt_g, opt_d, gen, load_tensors)

    out.mkdir(parents=True, exist_ok=True)
    images = data.torch()
    n = len(images)
    fixed_z = torch.from_numpy(latent(64, cfg.latent_dim, cfg.seed)).to(device)
    t0 = time.perf_counter()
    pb = bar(cfg.steps, f"train {cfg.kind} d={cfg.d}", initial=start_step, enabled=progress)
    step = start_step
    ones = torch.ones(cfg.batch_size, device=device)
    zeros = torch.zeros(cfg.batch_size, device=device)
    try:
        for step in range(start_step + 1, cfg.steps + 1):
            idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
            real = images[idx].to(device)
            z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=gen).to(device)
            fake = G(z)
            # Discriminator: real → 1, fake → 0.
            opt_d.zero_grad(set_to_none=True)
            loss_d = F.binary_cross_entropy_with_logits(D(real), ones) + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros)
            loss_d.backward()
            opt_d.step()
            # Generator: non-saturating loss, fake → 1.
            opt_g.zero_grad(set_to_none=True)
            loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
            loss_g.backward()
            opt_g.step()
            if step % max(1, cfg.steps // 200) == 0 or step == cfg.steps:
                history.append([step, round(loss_g.item(), 5), round(loss_d.item(), 5)])
            pb.update(1)
            pb.set_postfix(g=f"{loss_g.item():.3f}", d=f"{loss_d.item():.3f}", refresh=False)
            if cfg.sample_every and step % cfg.sample_every == 0 and step != cfg.steps:
                _sample(G, fixed_z, out / "samples" / f"step_{step:06d}.png", save_grid)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step != cfg.steps:
                _checkpoint(out, cfg, step, history, G, D, opt_g, opt_d, gen, save_tensors)
    except KeyboardInterrupt:
        # Keep what was learnt: a resumable checkpoint at the last finished step.
        done = step - 1 if step > start_step else start_step
        if done > start_step:
            _checkpoint(out, cfg, done, history, G, D, opt_g, opt_d, gen, save_tensors)
            log.warning("interrupted: checkpoint at step %d in %s (continue with --resume)", done, out)
        raise
    finally:
        pb.close()
    seconds = time.perf_counter() - t0
    _sample(G, fixed_z, out / "samples" / f"step_{cfg.steps:06d}.png", save_grid)
    _checkpoint(out, cfg, cfg.steps, history, G, D, opt_g, opt_d, gen, save_tensors)
    G.eval()
    manifest = {
        "schema": "edgegan.manifest/1",
        "kind": cfg.kind,
        "created": now_iso(),
        "versions": versions(),
        "model": model_section(G.cpu(), cfg.family, margs, out, write=False),
        "discriminator": file_entry(out / "discriminator.safetensors", out),
        "dataset": data.describe(),
        "config": asdict(cfg),
        "train": {
            "step": cfg.steps,
            "resumed_from": start_step or None,
            "seconds": round(seconds + (prev or {}).get("seconds", 0.0), 3),
            "seconds_per_step": round(seconds / max(1, cfg.steps - start_step), 5),
            "loss_curve": {"columns": ["step", "loss_g", "loss_d"], "rows": history},
            "samples": f"samples/step_{cfg.steps:06d}.png",
        },
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return manifest


def _sample(G, z, path: Path, save_grid) -> None:
    import torch

    was = G.training
    G.eval()
    with torch.no_grad():
        imgs = G(z).cpu().numpy()
    G.train(was)
    save_grid(imgs, path, nrow=8)


_WEIGHTS = ("generator.safetensors", "discriminator.safetensors")


def _checkpoint(out: Path, cfg: TrainConfig, step: int, history: list, G, D, opt_g, opt_d, gen, save_tensors) -> None:
    from edgegan.checkpoint import save_generator_weights, save_training_state

    save_generator_weights(out / _WEIGHTS[0], G, cfg.family)
    save_tensors(out / _WEIGHTS[1], D.state_dict())
    save_training_state(out, step=step, config=asdict(cfg), history=history, optimizers={"opt_g": opt_g, "opt_d": opt_d},
                        rng=gen, files=_WEIGHTS)


def _read_state(out: Path) -> dict[str, Any]:
    from edgegan.checkpoint import read_training_state

    return read_training_state(out)


def _restore(out: Path, st: dict, G, D, opt_g, opt_d, gen, load_tensors) -> None:
    from edgegan.checkpoint import restore_training_state

    try:
        G.load_state_dict(load_tensors(out / _WEIGHTS[0]))
        D.load_state_dict(load_tensors(out / _WEIGHTS[1]))
    except RuntimeError as e:
        raise CheckpointError(f"{out}: checkpoint weights do not fit this run ({str(e).splitlines()[0]})") from None
    restore_training_state(out, st, optimizers={"opt_g": opt_g, "opt_d": opt_d}, rng=gen)


__all__ = ["TrainConfig", "train_gan"]
