"""The pieces of a distillation around its loop: the latent pool, the EMA, what the GAN term takes as
real, the records written into the student's manifest, and the progress line of hour-long runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgegan.distill_config import DistillConfig
from edgegan.errors import ConfigError

log = logging.getLogger("edgegan.distill")


def progress_line(step: int, start_step: int, steps: int, elapsed: float, loss: float) -> str:
    """``step 1200/6000 (20%), 0.412 s/step, ETA 0:32:58, loss 0.0312``: this session's pace (a resumed
    run's earlier sessions ran at another load) times the steps left."""
    done = max(1, step - start_step)
    per = elapsed / done
    left = int(round(per * (steps - step)))
    return (f"step {step}/{steps} ({100 * step / steps:.0f}%), {per:.3f} s/step, "
            f"ETA {left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}, loss {loss:.4g}")


def latent_pool_z(cfg: DistillConfig, latent_dim: int):
    """The fixed latents of ``cfg.latent_pool`` (numpy, float32): the same for every run with this seed."""
    from edgegan_runtime import latent

    return latent(cfg.latent_pool, latent_dim, cfg.seed + 2)


def latent_pool_y(cfg: DistillConfig, labels, device="cpu"):
    """The labels of the latent pool (a conditional run): drawn once from seed + 3, so the pool's
    (z, label) pairs are the same for every run with this seed; None when unconditional."""
    import torch

    if labels is None:
        return None
    return labels.draw(cfg.latent_pool, torch.Generator().manual_seed(cfg.seed + 3)).to(device)


def ema_decay(step: int, decay: float) -> float:
    """EMA decay at ``step`` (1-based), warmed up as TensorFlow's ExponentialMovingAverage does with
    num_updates: min(decay, (1 + step) / (10 + step)), so short runs are not stuck at the initial weights."""
    return min(decay, (1.0 + step) / (10.0 + step))


def _ema_update(ema, model, decay: float) -> None:
    import torch

    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):  # BatchNorm statistics: the student's own
            e.copy_(b)


# The latent pool keeps the teacher's outputs in memory as float32: at most this many bytes of them. 4 GiB
# holds 65,536 outputs of a 64x64 RGB teacher (3.2 GB; the blackbox recipe's pool) on a 16 GB machine.
POOL_MAX_BYTES = 4 * 2**30


def pool_size(cfg: DistillConfig, asked: int, shape: tuple[int, ...]) -> int:
    """The latent pool this run may hold for a teacher of output ``shape``. A pool the user asked for
    (``asked``, their --latent-pool) that exceeds POOL_MAX_BYTES is a ConfigError, before anything is
    written; one the recipe chose is capped to the largest power of two that fits (logged, and the
    manifest records it)."""
    import math

    per = 4 * math.prod(shape)
    if cfg.latent_pool * per <= POOL_MAX_BYTES:
        return cfg.latent_pool
    fit = 2 ** int(math.log2(max(1, POOL_MAX_BYTES // per)))
    need = cfg.latent_pool * per / 2**30
    if asked:
        raise ConfigError(f"--latent-pool {asked} keeps {asked} teacher outputs of {'x'.join(map(str, shape))} in memory "
                          f"({need:.1f} GiB, over the pool's {POOL_MAX_BYTES / 2**30:.0f} GiB); at most {fit} fit "
                          f"(0: fresh z every step)")
    if fit < cfg.batch_size:
        raise ConfigError(f"the recipe's latent pool cannot hold one batch of {'x'.join(map(str, shape))} outputs in "
                          f"{POOL_MAX_BYTES / 2**30:.0f} GiB; give --latent-pool 0 (fresh z every step)")
    log.warning(
        "the recipe's pool of %d latents would hold %.1f GiB of teacher outputs; using %d", cfg.latent_pool, need, fit)
    return fit


def _check_image_size(cfg: DistillConfig, hw: tuple[int, int]) -> None:
    from edgegan.data import parse_image_size

    want = parse_image_size(cfg.image_size)
    if want is not None and want != tuple(hw):
        raise ConfigError(f"--image-size {cfg.image_size}: the teacher makes {hw[0]}x{hw[1]} images; the real images "
                          "must be the teacher's size")


def _teacher_record(teacher, out: Path, eval_outside: float) -> dict[str, Any]:
    """``distill.teacher``: what every later command reads to load the teacher again (``load_recorded``)."""
    import os

    rec = teacher.describe()
    rec["range"]["eval_outside"] = round(eval_outside, 6)
    if teacher.kind != "factory":  # absolute, and relative to this manifest for a run moved with its teacher
        rec["spec_from_run"] = os.path.relpath(teacher.spec, out.resolve())
    else:
        rec["distill_cwd"] = os.getcwd()
    return rec


def _gan_record(cfg: DistillConfig, terms) -> dict[str, Any] | None:
    """``distill.gan``: what the GAN term took as real (``teacher`` images or the ``dataset``) and its
    stabilisers; None without a GAN term (issue 19)."""
    gan = next((t for t, w in terms if t.name == "gan" and w > 0), None)
    if gan is None:
        return None
    return {"real": "dataset" if gan.ctx.real is not None else "teacher", "loss": cfg.gan_loss,
            "spectral_norm": cfg.d_sn, "d_disc": cfg.d_disc, "d_lr": cfg.d_lr, "d_beta1": cfg.d_beta1,
            "start_step": cfg.gan_start}


def gan_real_source(cfg: DistillConfig, teacher) -> str:
    """``"dataset"`` or ``"teacher"``: the GAN term's real images. ``auto`` takes the dataset when one is
    given (``--dataset``) or an edgegan teacher records it, else the teacher's own images (no data)."""
    if cfg.gan_real != "auto":
        if cfg.gan_real == "teacher" and cfg.dataset is not None:
            raise ConfigError(f"--gan-real teacher takes the teacher's images as real; --dataset {cfg.dataset} would "
                              "be unused (leave one out)")
        return cfg.gan_real
    if cfg.dataset is not None:
        return "dataset"
    if teacher.manifest is not None and teacher.manifest.get("dataset", {}).get("name"):
        return "dataset"
    return "teacher"


def _real_data(cfg: DistillConfig, teacher, shape: tuple[int, int, int], labels=None):
    """(images, labels or None, dataset record): the GAN term's real images; a conditional run's come with
    their labels, whose classes must be the teacher's."""
    from edgegan.data import load_dataset

    name = cfg.dataset
    if name is None and teacher.manifest is not None:  # default: the data the teacher was trained on
        name = teacher.manifest.get("dataset", {}).get("name")
    if name is None:
        raise ConfigError("the gan term needs real data: pass --dataset")
    data = load_dataset(name, data_dir=cfg.data_dir, split="train", image_size=(shape[1], shape[2]))
    if data.shape[0] != shape[0]:
        raise ConfigError(f"dataset {name} has images {data.shape}, the teacher makes {shape}")
    if data.resized and cfg.image_size is None:  # never upsample silently and call it the data's size
        raise ConfigError(f"dataset {name} has {data.native[0]}x{data.native[1]} images, the teacher makes "
                          f"{shape[1]}x{shape[2]}: pass --image-size {shape[1] if shape[1] == shape[2] else f'{shape[1]}x{shape[2]}'} "
                          "to resize them for the GAN term (recorded in the manifest), or use a dataset of that size")
    y = None
    if labels is not None:
        if data.labels is None or data.num_classes != labels.num_classes:
            raise ConfigError(f"the conditional GAN term needs real images labelled with the teacher's "
                              f"{labels.num_classes} classes; dataset {name} has "
                              + ("no labels" if data.labels is None else f"{data.num_classes} classes")
                              + " (or take the teacher's images as real: --gan-real teacher)")
        import torch

        y = torch.from_numpy(data.labels)
    return data.torch(), y, data.describe()


def resume_point(cfg: DistillConfig, out: Path, resume: bool, recipe_pool: bool = False):
    """(cfg, start step, history, previous state or None, complete): where a run starts. With ``resume``
    the interrupted run's state (its config must match but for ``_RESUMABLE``; a family it chose is
    kept, and so is a latent pool the recipe chose, ``recipe_pool``, which ``pool_size`` may have capped);
    ``complete`` when the same command runs again on a finished run (issue 25)."""
    from dataclasses import asdict, replace

    from edgegan.checkpoint import read_training_state
    from edgegan.distill_config import _RESUMABLE
    from edgegan.errors import CheckpointError
    from edgegan.manifest import MANIFEST_NAME

    if not resume:
        if out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out}: output directory exists and is not empty (use --resume, or another --out)")
        return cfg, 0, [], None, False
    if not (out / "state.json").exists():
        raise CheckpointError(f"{out}: nothing to resume (no state.json; start without --resume)")
    prev = read_training_state(out)
    try:
        old = DistillConfig(**prev["config"])
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"{out}/state.json: its config is not a distillation config ({e})") from None
    if cfg.family is None:  # not given again: the family the run chose
        cfg = replace(cfg, family=old.family)
    if cfg.task is None:  # and an image teacher's task, read from it (issue 21)
        cfg = replace(cfg, task=old.task)
    if recipe_pool:
        cfg = replace(cfg, latent_pool=old.latent_pool)
    diff = {k for k, v in asdict(cfg).items() if getattr(old, k) != v} - _RESUMABLE
    if diff:
        raise ConfigError(f"{out}: --resume with changed settings {sorted(diff)}; they must match the interrupted run")
    start_step, history = int(prev["step"]), prev["history"]
    # A run whose last step is checkpointed but whose final files failed (a full disk) finishes.
    if start_step == cfg.steps and (out / MANIFEST_NAME).is_file():  # the same command again: done (issue 25)
        log.warning("%s: the run is complete (step %d of --steps %d); nothing to do", out, start_step, cfg.steps)
        return cfg, start_step, history, prev, True
    if start_step > cfg.steps:
        raise ConfigError(f"{out}: run is already at step {start_step} > --steps {cfg.steps}; raise --steps to continue")
    return cfg, start_step, history, prev, False
