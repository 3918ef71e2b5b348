"""Image-to-image teachers (issue 21): pix2pix (Isola et al. 2017) on pairs a task makes from a dataset.

Each step draws a batch of dataset images x, makes the generator's input ``get_task(task).input(x)``
(downscaled for super-resolution, the luma for colourisation, a hole for inpainting) and trains

    D (a conditional PatchGAN on (image, input)):  ½ [BCE(D(x, inp), 1) + BCE(D(G(inp), inp), 0)]
    G (resnet_i2i):                                 BCE(D(G(inp), inp), 1) + λ_L1 · |G(inp) − x|₁

with Adam(2e-4, β = (0.5, 0.999)) for both. The GAN term is pix2pix's own: the non-saturating BCE on
every patch's logit, the loss of its paper and of ``train.py``'s DCGAN teachers (one recipe in the house);
LSGAN would only re-weight the term that λ_L1 = 100 already makes the smaller one. The run directory,
its checkpoints, ``--resume`` and the commit order are ``train.py``'s; the manifest's ``model.input``
records the task, and ``eval`` holds PSNR / SSIM to the ground truth on a fixed batch of the test
split beside a reference anyone can compute (bicubic upsampling for super-resolution).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgegan.errors import ConfigError, DivergenceError
from edgegan.manifest import MANIFEST_NAME, atomic_write_json, file_entry, now_iso, versions
from edgegan.outputs import run_output
from edgegan.tasks import Task, get_task

if TYPE_CHECKING:
    import torch

    from edgegan.train import TrainConfig

log = logging.getLogger(__name__)

L1_WEIGHT = 100.0  # pix2pix's λ (Isola et al. 2017, sec. 4): L1 carries the low frequencies, the PatchGAN the rest
EVAL_COUNT = 512  # test images in the eval batch
EVAL_SEED = 0  # which test images, and inpaint's holes on them: the same for every run of a dataset
SAMPLE_COUNT = 8  # rows of a sample grid (input | output | truth)
_CHUNK = 64  # images per forward pass in evaluation


def default_depth(task: Task) -> tuple[int, int]:
    """(n_down, n_blocks) when not given: super-resolution keeps the input's size (it is already small),
    a same-size task goes down twice to 1/4 of the side as pix2pix's ResNet generator."""
    return (0, 8) if task.scale > 1 else (2, 6)


def model_args(cfg: "TrainConfig", out_shape: tuple[int, int, int]) -> dict[str, Any]:
    """The generator's arguments (``I2IArgs`` minus ``block``, which the family sets) for images ``out_shape``."""
    task = get_task(cfg.task)
    task.check_output(out_shape)
    n_down, n_blocks = default_depth(task)
    nc, h, w = out_shape
    return {"ngf": cfg.d, "in_channels": task.in_channels(nc), "nc": nc, "height": h, "width": w, "scale": task.scale,
            "n_down": n_down if cfg.n_down is None else cfg.n_down,
            "n_blocks": n_blocks if cfg.n_blocks is None else cfg.n_blocks,
            "d_disc": cfg.d if cfg.d_disc is None else cfg.d_disc}  # --d-disc: "default: same as --d"


def train_i2i(cfg: "TrainConfig", out: Path, world, start_step: int, history: list, prev: dict | None, *,
              progress: bool = True) -> dict[str, Any]:
    """Train an image-to-image teacher into ``out`` (called by ``train_gan`` once the run folder and any
    checkpoint are checked); returns the manifest. Everything is validated before anything is written."""
    import torch

    from edgegan.data import load_dataset
    from edgegan.models import build_discriminator, build_generator
    from edgegan.train import _restore
    from edgegan.checkpoint import load_tensors
    from edgegan.utils import seed_everything

    if world.size > 1:
        raise ConfigError("image-to-image teachers train in one process for now (run without torchrun)")
    task = get_task(cfg.task)
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="train", image_size=cfg.image_size, limit=cfg.limit)
    if task.grey_input and data.shape[0] != 3:
        raise ConfigError(f"--task {cfg.task} learns colours from RGB images; {cfg.dataset} is grey "
                          f"({data.shape[0]} channel): use cifar10, celeba or an RGB folder")
    test = load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="test", image_size=cfg.image_size)
    margs = model_args(cfg, data.shape)
    seed_everything(cfg.seed)
    G = build_generator(cfg.family, **margs).to(world.device)
    D = build_discriminator(cfg.family, **margs).to(world.device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.d_lr if cfg.d_lr is not None else cfg.lr, betas=(cfg.beta1, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed)  # batches and the task's random parts: restored on --resume
    if prev is not None:
        _restore(out, prev, G, D, opt_g, opt_d, gen, load_tensors)
    with run_output(out):
        return _train(cfg, out, task, data, test, margs, G, D, opt_g, opt_d, gen, start_step, history, prev, world,
                      progress)


def _train(cfg: "TrainConfig", out: Path, task: Task, data, test, margs: dict, G, D, opt_g, opt_d, gen,
           start_step: int, history: list, prev: dict | None, world, progress: bool) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from edgegan.checkpoint import model_section, save_generator_weights, save_tensors
    from edgegan.train import _WEIGHTS, _checkpoint
    from edgegan.utils import StopRequest
    from edgegan.utils import progress as bar

    device = world.device
    lam = L1_WEIGHT if cfg.l1_weight is None else cfg.l1_weight
    images = data.torch()
    n = len(images)
    eval_x, eval_inp = eval_batch(test.torch(), task, EVAL_COUNT, EVAL_SEED)
    show = (eval_inp[:SAMPLE_COUNT].to(device), eval_x[:SAMPLE_COUNT])  # the grids' fixed test pairs
    every = max(1, cfg.steps // 200)
    t0 = time.perf_counter()
    pb = bar(cfg.steps, f"train {cfg.kind} {cfg.task} d={cfg.d}", initial=start_step, enabled=progress)
    stop = StopRequest().install()  # Ctrl-C / SIGTERM: finish the step, checkpoint it, stop
    try:
        for step in range(start_step + 1, cfg.steps + 1):
            idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
            real_cpu = images[idx]
            inp = task.input(real_cpu, gen).to(device)
            real = real_cpu.to(device)
            fake = G(inp)
            # Discriminator: (image, input) → 1, (output, input) → 0; halved as in pix2pix (D learns slower than G).
            opt_d.zero_grad(set_to_none=True)
            lr_, lf_ = D(real, inp), D(fake.detach(), inp)
            loss_d = 0.5 * (F.binary_cross_entropy_with_logits(lr_, torch.ones_like(lr_))
                            + F.binary_cross_entropy_with_logits(lf_, torch.zeros_like(lf_)))
            _finite(loss_d, "discriminator", step)  # NaN/inf: stop before a step spoils the weights (issue 14)
            loss_d.backward()
            opt_d.step()
            # Generator: non-saturating GAN term on every patch, plus λ · L1 to the ground truth.
            opt_g.zero_grad(set_to_none=True)
            lg_ = D(fake, inp)
            loss_gan = F.binary_cross_entropy_with_logits(lg_, torch.ones_like(lg_))
            loss_l1 = F.l1_loss(fake, real)
            loss_g = loss_gan + lam * loss_l1
            _finite(loss_g, "generator", step)
            loss_g.backward()
            opt_g.step()
            if step % every == 0 or step == cfg.steps:
                history.append([step, *(round(v.item(), 5) for v in (loss_gan, loss_l1, loss_d))])
            pb.update(1)
            pb.set_postfix(l1=f"{loss_l1.item():.4f}", g=f"{loss_gan.item():.3f}", d=f"{loss_d.item():.3f}",
                           refresh=False)
            if cfg.sample_every and step % cfg.sample_every == 0 and step != cfg.steps:
                save_samples(G, *show, out / "samples" / f"step_{step:06d}.png")
            if stop.requested and step != cfg.steps:  # an exact checkpoint here, then stop
                _checkpoint(out, cfg, step, history, G, D, opt_g, opt_d, gen)
                log.warning("interrupted: checkpoint at step %d in %s (continue with --resume)", step, out)
                raise stop.stopped()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step != cfg.steps:
                _checkpoint(out, cfg, step, history, G, D, opt_g, opt_d, gen)
    finally:
        stop.remove()
        pb.close()
    seconds = time.perf_counter() - t0
    save_samples(G, *show, out / "samples" / f"step_{cfg.steps:06d}.png")
    _checkpoint(out, cfg, cfg.steps, history, G, D, opt_g, opt_d, gen)
    t1 = time.perf_counter()
    ev = evaluate(G, task, eval_x, eval_inp, device)
    ev.update(split="test", count=len(eval_x), seed=EVAL_SEED, test_sha256=test.sha256,
              seconds=round(time.perf_counter() - t1, 3))
    # The final weights, then the manifest (the commit point): train.py's order and its clean-up on failure.
    save_tensors(out / _WEIGHTS[1], D.state_dict())
    save_generator_weights(out / _WEIGHTS[0], G, cfg.family)
    manifest = {
        "schema": "edgegan.manifest/1",
        "kind": cfg.kind,
        "created": now_iso(),
        "versions": versions(),
        "model": model_section(G.cpu(), cfg.family, margs, out, write=False, task=cfg.task),
        "discriminator": file_entry(out / _WEIGHTS[1], out),
        "dataset": data.describe(),
        "config": asdict(cfg),
        "train": {
            "step": cfg.steps,
            "resumed_from": start_step or None,
            "seconds": round(seconds + (prev or {}).get("seconds", 0.0), 3),
            "seconds_per_step": round(seconds / max(1, cfg.steps - start_step), 5),
            "objective": {"method": "pix2pix", "gan": "non-saturating BCE on PatchGAN logits", "l1_weight": lam},
            "loss_curve": {"columns": ["step", "loss_gan", "loss_l1", "loss_d"], "rows": history},
            "samples": f"samples/step_{cfg.steps:06d}.png",
        },
        "eval": ev,
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return manifest


def _finite(loss, which: str, step: int) -> None:
    import torch

    if not torch.isfinite(loss):
        raise DivergenceError(f"training diverged at step {step}: {which} loss is {loss.item()}; lower --lr")


# ------------------------------------------------------------------------------------------ evaluation

def eval_batch(images: "torch.Tensor", task: Task, count: int = EVAL_COUNT,
               seed: int = EVAL_SEED) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(ground truth, input) of ``count`` images of a split chosen by ``seed`` (in the split's order),
    inputs made by the task with a generator of the same seed: the same pairs on every run."""
    import torch

    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(images), generator=g)[:count].sort().values
    x = images[idx]
    return x, task.input(x, g)


def _upsample(inp: "torch.Tensor", size: tuple[int, int], mode: str) -> "torch.Tensor":
    import torch.nn.functional as F

    if tuple(inp.shape[-2:]) == tuple(size):
        return inp
    if mode == "nearest":
        return F.interpolate(inp, size=size, mode="nearest")
    return F.interpolate(inp, size=size, mode=mode, align_corners=False).clamp(-1, 1)


def as_image(inp: "torch.Tensor", out_shape: tuple[int, ...], mode: str = "nearest") -> "torch.Tensor":
    """An input shown as an output-sized image: upsampled (nearest for display, bicubic as SR's reference),
    grey repeated to RGB, inpaint's mask channel dropped (its hole is already 0, mid-grey)."""
    c = out_shape[0]
    x = _upsample(inp, tuple(out_shape[-2:]), mode)
    if x.shape[1] == 1 and c == 3:
        x = x.repeat(1, 3, 1, 1)
    return x[:, :c]


def reference_method(task: Task) -> str:
    """What the teacher is compared with: what one gets from the input with no model at all."""
    if task.scale > 1:
        return "bicubic"  # the baseline every super-resolution paper quotes
    return "luma as RGB" if task.grey_input else "input as it is"


def evaluate(G, task: Task, x: "torch.Tensor", inp: "torch.Tensor", device="cpu") -> dict[str, Any]:
    """PSNR (dB) and SSIM of G's outputs to the ground truth ``x``, and of the reference (``reference_method``)."""
    import torch

    from edgegan.metrics.fidelity import psnr, ssim

    was = G.training
    G.eval()
    with torch.no_grad():
        y = torch.cat([G(inp[i:i + _CHUNK].to(device)).cpu() for i in range(0, len(inp), _CHUNK)])
    G.train(was)
    ref = as_image(inp, tuple(x.shape[1:]), "bicubic" if task.scale > 1 else "nearest")
    xa, ya, ra = x.numpy(), y.numpy(), ref.numpy()
    return {"psnr": round(psnr(ya, xa), 4), "ssim": round(ssim(ya, xa), 5),
            "reference": {"method": reference_method(task), "psnr": round(psnr(ra, xa), 4),
                          "ssim": round(ssim(ra, xa), 5)}}


def save_samples(G, inp: "torch.Tensor", truth: "torch.Tensor", path: Path) -> None:
    """input (nearest-upsampled; grey as RGB) | output | ground truth, one row per pair."""
    import torch

    from edgegan.viz import save_comparison

    was = G.training
    G.eval()
    with torch.no_grad():
        y = G(inp).cpu()
    G.train(was)
    shown = as_image(inp.cpu(), tuple(truth.shape[1:]))
    save_comparison({"input": shown.numpy(), "output": y.numpy(), "truth": truth.numpy()}, path, nrow=1)


__all__ = ["L1_WEIGHT", "as_image", "default_depth", "eval_batch", "evaluate", "model_args", "train_i2i"]
