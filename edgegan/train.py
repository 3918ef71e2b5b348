"""GAN training for teachers and for the paper's *baselines* (a student-sized GAN trained from scratch).

Standard DCGAN recipe (Radford et al. 2016): Adam(2e-4, β=(0.5, 0.999)), non-saturating BCE loss.
With ``task`` set, an image-to-image teacher (pix2pix, issue 21) in the same layout: ``edgegan.train_i2i``.
A run directory holds::

    manifest.json            written last: the run's commit point (model, dataset, config, train)
    generator.safetensors    the generator (what later stages read)
    discriminator.safetensors
    state-NNNNNNNNN.safetensors  the checkpoint: both networks, optimiser moments, RNG state (no pickle)
    state.json               step, loss history, optimiser scalars, sha256s: the checkpoint's commit point
    samples/step_NNNNNN.png  sample grids on fixed latents
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgegan.config import (BATCH, BETA, DATASET_NAMES, DEPTH, EVERY, FAMILY_NAMES, LATENT, LEARNING_RATE, SEED, STEPS,
                            TASK_NAMES, WEIGHT, Bounds, check_bounds, check_choices, opt)
from edgegan.errors import CheckpointError, ConfigError, DivergenceError
from edgegan.manifest import MANIFEST_NAME, atomic_write_json, file_entry, now_iso, versions
from edgegan.outputs import check_out, run_output

log = logging.getLogger(__name__)
KINDS = ("teacher", "baseline")


@dataclass(frozen=True)
class TrainConfig:
    # Each field's default, help and choices are declared once here; `edgegan train-teacher` is generated from them.
    dataset: str = opt("digits", "dataset to train on", choices=DATASET_NAMES)
    data_dir: str | None = opt(None, "folder holding the dataset's files (default: $EDGEGAN_DATA/<dataset>)")
    family: str | None = opt(None, "generator family (default: dcgan; resnet_i2i with --task)", choices=FAMILY_NAMES)
    d: int = opt(64, "depth factor of the generator (with --task: its width, ngf)", bounds=DEPTH)
    d_disc: int | None = opt(None, "depth factor of the discriminator (default: same as --d)", bounds=DEPTH)
    image_size: int = opt(32, "image side: 32 (the paper) or 64", choices=(32, 64))
    latent_dim: int = opt(100, "size of the latent z", bounds=LATENT)
    steps: int = opt(2000, "total optimiser steps (a resumed run continues up to this)", bounds=STEPS)
    batch_size: int = opt(64, "images per optimiser step", bounds=BATCH)
    lr: float = opt(2e-4, "Adam learning rate, both networks (the generator's only, when --d-lr is given)",
                    bounds=LEARNING_RATE)
    d_lr: float | None = opt(None, "discriminator's Adam learning rate (default: --lr); a sweep tunes the baseline's "
                             "generator rate against a fixed discriminator rate (issue 13)", bounds=LEARNING_RATE)
    beta1: float = opt(0.5, "Adam beta1 (DCGAN: 0.5)", bounds=BETA)
    seed: int = opt(0, "random seed", bounds=SEED)
    device: str = opt("cpu", "cpu, cuda or cuda:N")
    sample_every: int = opt(500, "steps between sample grids (0: only at the end)", bounds=EVERY)
    checkpoint_every: int = opt(500, "steps between checkpoints (0: only at the end)", bounds=EVERY)
    kind: str = opt("teacher", "what the run is recorded as: a teacher, or a student-sized baseline trained "
                    "from scratch (the paper's baseline); the training is the same", choices=KINDS)
    limit: int | None = opt(None, "use only the first N training images", bounds=Bounds(1, None))
    conditional: bool = opt(False, "train a class-conditional GAN on the dataset's labels: the generator takes z and "
                            "a class, the discriminator is a projection discriminator (issue 20)")
    # Image-to-image teachers (issue 21; edgegan.train_i2i): pix2pix on (input, image) pairs that the task makes.
    task: str | None = opt(None, "train an image-to-image teacher: the task makes each input from a dataset image "
                           "(sr2x/sr4x: downscaled, colorize: its luma, inpaint: a hole), the image is the target "
                           "(issue 21)", choices=TASK_NAMES)
    n_down: int | None = opt(None, "with --task: stride-2 stages before the residual blocks (default: 0 for "
                             "super-resolution, else 2)", bounds=Bounds(0, 4))
    n_blocks: int | None = opt(None, "with --task: residual blocks (default: 8 for super-resolution, else 6)",
                               bounds=Bounds(0, 32))
    l1_weight: float | None = opt(None, "with --task: weight of the L1 term beside the GAN term (default: 100, "
                                  "pix2pix's lambda, Isola et al. 2017)", bounds=WEIGHT)

    def __post_init__(self) -> None:
        check_bounds(self)  # every numeric field: an integer or a finite number, within its declared range
        check_choices(self)  # kind, image_size
        if self.family is None:  # the default depends on --task; recorded resolved, so old runs resume
            object.__setattr__(self, "family", "dcgan" if self.task is None else "resnet_i2i")
        if self.task is None:
            given = [f for f in ("n_down", "n_blocks", "l1_weight") if getattr(self, f) is not None]
            if given:
                raise ConfigError(f"--{given[0].replace('_', '-')} applies to image-to-image teachers only (add --task)")
            return
        from edgegan.tasks import get_task

        if not get_task(self.task).ground_truth:  # an unknown name: the valid ones and the closest match
            raise ConfigError(f"task {self.task} has no ground truth to train on; a teacher learns pairs a task makes "
                              "from the dataset's images (sr2x, sr4x, colorize, inpaint)")
        if self.conditional:
            raise ConfigError("--conditional trains a class-conditional latent GAN; an image-to-image teacher (--task) "
                              "is conditioned on its input image: drop one of them")

    def model_args(self, nc: int, num_classes: int | None = None) -> dict[str, Any]:
        return {"d": self.d, "nc": nc, "image_size": self.image_size, "latent_dim": self.latent_dim, "d_disc": self.d_disc,
                **({"num_classes": num_classes} if self.conditional else {})}


# Fields that may differ between an interrupted run and its resumption.
_RESUMABLE = {"steps", "sample_every", "checkpoint_every", "device", "data_dir"}


def train_gan(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> dict[str, Any] | None:
    """Train a GAN into run directory ``out``; returns the manifest. Validates everything before writing.
    Under torchrun every rank trains its part of each batch and rank 0 alone writes and returns the
    manifest; the other ranks return None (``edgegan.distributed``)."""
    import torch

    from edgegan.checkpoint import load_tensors
    from edgegan.data import load_dataset
    from edgegan.distributed import setup
    from edgegan.models import build_discriminator, build_generator, get_family
    from edgegan.utils import seed_everything

    out = Path(out)
    family = get_family(cfg.family)
    if (family.input_kind == "image") != (cfg.task is not None):
        raise ConfigError(f"--task {cfg.task} trains an image-to-image generator; {cfg.family} takes latents "
                          "(use resnet_i2i, or mobile_i2i for a baseline)" if cfg.task is not None else
                          f"{cfg.family} maps images to images: name the task that makes its inputs (--task)")
    check_out(out)
    world = setup(cfg.device, cfg.batch_size)  # torchrun: this rank's device; --batch-size is the global batch
    device = world.device
    state_json = out / "state.json"
    start_step, history, prev = 0, [], None
    if resume:
        if not state_json.exists():
            raise CheckpointError(f"{out}: nothing to resume (no state.json; start without --resume)")
        prev = _read_state(out)
        try:
            old = TrainConfig(**prev["config"])
        except (TypeError, ConfigError) as e:
            raise CheckpointError(f"{out}/state.json: its config is not a training config ({e})") from None
        diff = {k for k, v in asdict(cfg).items() if getattr(old, k) != v} - _RESUMABLE
        if diff:
            raise ConfigError(f"{out}: --resume with changed settings {sorted(diff)}; they must match the interrupted run")
        start_step, history = prev["step"], prev["history"]
        # A run whose last step is checkpointed but whose final files failed (a full disk) finishes.
        if start_step == cfg.steps and (out / MANIFEST_NAME).is_file():  # the same command again: done (issue 25)
            from edgegan.manifest import read_manifest

            log.warning("%s: the run is complete (step %d of --steps %d); nothing to do", out, start_step, cfg.steps)
            return read_manifest(out) if world.is_main else None
        if start_step > cfg.steps:
            raise ConfigError(f"{out}: run is already at step {start_step} > --steps {cfg.steps}; raise --steps to continue")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: output directory exists and is not empty (use --resume, or another --out)")
    if cfg.task is not None:  # an image-to-image teacher (issue 21): pix2pix, the same run layout and resume
        from edgegan.train_i2i import train_i2i

        return train_i2i(cfg, out, world, start_step, history, prev, progress=progress)

    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="train", image_size=cfg.image_size, limit=cfg.limit)
    nc = data.shape[0]
    if cfg.conditional and (data.labels is None or not data.num_classes or data.num_classes < 2):
        raise ConfigError(f"--conditional needs a dataset with class labels; {cfg.dataset} has none "
                          "(mnist, digits and cifar10 have them; a folder's npz may carry 'labels')")
    margs = cfg.model_args(nc, data.num_classes)
    seed_everything(cfg.seed)
    G = build_generator(cfg.family, **margs).to(device)
    D = build_discriminator(cfg.family, **margs).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.d_lr if cfg.d_lr is not None else cfg.lr, betas=(cfg.beta1, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed)
    if prev is not None:
        _restore(out, prev, G, D, opt_g, opt_d, gen, load_tensors)

    if not world.is_main:  # under torchrun rank 0 alone makes, writes and cleans up the run folder
        return _train(cfg, out, data, margs, G, D, opt_g, opt_d, gen, start_step, history, prev, world, progress)
    with run_output(out):
        return _train(cfg, out, data, margs, G, D, opt_g, opt_d, gen, start_step, history, prev, world, progress)


def _train(cfg: TrainConfig, out: Path, data, margs: dict, G, D, opt_g, opt_d, gen, start_step: int, history: list,
           prev: dict | None, world, progress: bool) -> dict[str, Any] | None:
    import torch
    import torch.nn.functional as F

    from edgegan.checkpoint import model_section, save_tensors
    from edgegan.utils import StopRequest
    from edgegan.utils import progress as bar
    from edgegan.viz import save_grid
    from edgegan_runtime import latent

    device = world.device
    G_run, D_run = world.wrap(G), world.wrap(D)  # DistributedDataParallel under torchrun, else G and D
    images = data.torch()
    n = len(images)
    k = margs.get("num_classes")  # conditional: real images carry their labels, fakes get uniform ones
    labels = torch.from_numpy(data.labels) if k else None
    fixed_z = torch.from_numpy(latent(64, cfg.latent_dim, cfg.seed)).to(device)
    fixed_y = grid_labels(64, k, device)
    t0 = time.perf_counter()
    pb = bar(cfg.steps, f"train {cfg.kind} d={cfg.d}", initial=start_step, enabled=progress and world.is_main)
    part = world.local(cfg.batch_size)  # every rank draws the global batch and keeps its slice
    ones = torch.ones(part.stop - part.start, device=device)
    zeros = torch.zeros(part.stop - part.start, device=device)
    stop = StopRequest().install()  # Ctrl-C: finish the step, checkpoint it, stop
    try:
        for step in range(start_step + 1, cfg.steps + 1):
            idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)[part]
            real = images[idx].to(device)
            z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=gen)[part].to(device)
            if k:
                y_real = labels[idx].to(device)
                y_fake = torch.randint(0, k, (cfg.batch_size,), generator=gen)[part].to(device)
                cond_real, cond_fake = (y_real,), (y_fake,)
            else:
                cond_real = cond_fake = ()
            fake = G_run(z, *cond_fake)
            # Discriminator: real → 1, fake → 0.
            opt_d.zero_grad(set_to_none=True)
            loss_d = (F.binary_cross_entropy_with_logits(D_run(real, *cond_real), ones)
                      + F.binary_cross_entropy_with_logits(D_run(fake.detach(), *cond_fake), zeros))
            if not torch.isfinite(loss_d):  # NaN/inf: stop before a step spoils the weights (issue 14)
                raise DivergenceError(f"training diverged at step {step}: discriminator loss is {loss_d.item()}; "
                                      "lower --lr")
            loss_d.backward()
            opt_d.step()
            # Generator: non-saturating loss, fake → 1.
            opt_g.zero_grad(set_to_none=True)
            loss_g = F.binary_cross_entropy_with_logits(D_run(fake, *cond_fake), ones)
            if not torch.isfinite(loss_g):
                raise DivergenceError(f"training diverged at step {step}: generator loss is {loss_g.item()}; "
                                      "lower --lr")
            loss_g.backward()
            opt_g.step()
            if step % max(1, cfg.steps // 200) == 0 or step == cfg.steps:
                history.append([step, *(round(v, 5) for v in world.mean([loss_g, loss_d]))])  # global-batch means
            pb.update(1)
            pb.set_postfix(g=f"{loss_g.item():.3f}", d=f"{loss_d.item():.3f}", refresh=False)
            if cfg.sample_every and step % cfg.sample_every == 0 and step != cfg.steps:
                _sample(G, fixed_z, out / "samples" / f"step_{step:06d}.png", save_grid, fixed_y)
            if world.any(stop.requested) and step != cfg.steps:  # Ctrl-C/SIGTERM: an exact checkpoint here, then stop
                _checkpoint(out, cfg, step, history, G, D, opt_g, opt_d, gen)
                log.warning("interrupted: checkpoint at step %d in %s (continue with --resume)", step, out)
                raise stop.stopped()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step != cfg.steps:
                _checkpoint(out, cfg, step, history, G, D, opt_g, opt_d, gen)
    finally:
        stop.remove()
        pb.close()
    seconds = time.perf_counter() - t0
    if not world.is_main:
        return None  # rank 0 writes the run
    _sample(G, fixed_z, out / "samples" / f"step_{cfg.steps:06d}.png", save_grid, fixed_y)
    _checkpoint(out, cfg, cfg.steps, history, G, D, opt_g, opt_d, gen)
    G.eval()
    # The final weights, then the manifest (the commit point); a failure between them removes the
    # weights (edgegan.outputs.run_output) and keeps the step-N checkpoint, which --resume finishes.
    from edgegan.checkpoint import save_generator_weights

    save_tensors(out / _WEIGHTS[1], D.state_dict())
    save_generator_weights(out / _WEIGHTS[0], G, cfg.family)
    manifest = {
        "schema": "edgegan.manifest/1",
        "kind": cfg.kind,
        "created": now_iso(),
        "versions": versions(),
        "model": model_section(G.cpu(), cfg.family, margs, out, write=False, class_names=data.class_names if k else None),
        "discriminator": file_entry(out / _WEIGHTS[1], out),
        "dataset": data.describe(),
        "config": asdict(cfg),
        "train": {
            "step": cfg.steps,
            "resumed_from": start_step or None,
            "seconds": round(seconds + (prev or {}).get("seconds", 0.0), 3),
            "seconds_per_step": round(seconds / max(1, cfg.steps - start_step), 5),
            "distributed": world.describe(cfg.batch_size),
            "loss_curve": {"columns": ["step", "loss_g", "loss_d"], "rows": history},
            "samples": f"samples/step_{cfg.steps:06d}.png",
        },
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return manifest


def grid_labels(n: int, k: int | None, device="cpu"):
    """Labels of a conditional sample grid of ``n`` images: image i is of class i % k, so with k columns
    each column is one class; None when unconditional."""
    import torch

    return None if not k else (torch.arange(n) % k).to(device)


def _sample(G, z, path: Path, save_grid, y=None) -> None:
    import torch

    from edgegan.distributed import is_main

    if not is_main():
        return
    was = G.training
    G.eval()
    with torch.no_grad():
        imgs = (G(z) if y is None else G(z, y)).cpu().numpy()
    G.train(was)
    save_grid(imgs, path, nrow=8 if y is None or int(y.max()) + 1 > 16 else int(y.max()) + 1)


_WEIGHTS = ("generator.safetensors", "discriminator.safetensors")  # final files, written with the manifest


def _checkpoint(out: Path, cfg: TrainConfig, step: int, history: list, G, D, opt_g, opt_d, gen) -> None:
    from edgegan.checkpoint import save_training_state
    from edgegan.distributed import is_main

    if not is_main():  # under torchrun rank 0 writes the checkpoint; every rank holds the same state
        return
    save_training_state(out, step=step, config=asdict(cfg), history=history, optimizers={"opt_g": opt_g, "opt_d": opt_d},
                        rng=gen, modules={"generator": G, "discriminator": D})


def _read_state(out: Path) -> dict[str, Any]:
    from edgegan.checkpoint import read_training_state

    return read_training_state(out)


def _restore(out: Path, st: dict, G, D, opt_g, opt_d, gen, load_tensors) -> None:
    from edgegan.checkpoint import STATE_TENSORS, load_into, restore_training_state

    if st.get("tensors", STATE_TENSORS) == STATE_TENSORS:  # a checkpoint from before issue 14: weights beside it
        for name, module in zip(_WEIGHTS, (G, D)):
            load_into(module, load_tensors(out / name), out / name)
        restore_training_state(out, st, optimizers={"opt_g": opt_g, "opt_d": opt_d}, rng=gen)
    else:
        restore_training_state(out, st, optimizers={"opt_g": opt_g, "opt_d": opt_d}, rng=gen,
                               modules={"generator": G, "discriminator": D})


__all__ = ["TrainConfig", "train_gan"]
