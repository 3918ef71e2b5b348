"""Distillation of an image-to-image teacher (issue 21): the student learns T(x) for the same input x.

Each step draws a batch of the dataset's images y, makes the task's inputs x from them
(``edgegan.tasks``: downscaled, grey, masked), runs the frozen teacher on x, and the student, and
steps the student on the recipe's terms (``edgegan.terms``), as a latent distillation does with z:

* pixel      S(x) to T(x), MSE or L1
* gan        a conditional PatchGAN on (output, input) pairs (pix2pix): real pairs are
             (T(x), x) by default (``--gan-real auto`` or ``teacher``: the student learns the teacher's
             mapping, no labels needed), or (y, x) with ``--gan-real dataset`` (the ground truth)
* feature    the teacher's stages through 1x1 adaptors, paired by resolution (a residual block's sum is a
             stage's output) or named with ``--feature-layers``
* perceptual the teacher run's own PatchGAN's activations

The dataset is needed (the inputs come from it): ``--dataset``, or the one an edgegan teacher records.
It is evaluated on a fixed batch of the dataset's test split: fidelity to the teacher (MSE, PSNR,
SSIM) and, where the task has one, quality against the ground truth, the teacher's beside the student's.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from edgegan.distill_config import DistillConfig
from edgegan.distill_parts import _ema_update, ema_decay, progress_line, resume_point
from edgegan.errors import ConfigError, DivergenceError
from edgegan.manifest import MANIFEST_NAME, atomic_write_json, now_iso, versions
from edgegan.outputs import check_out, run_output

log = logging.getLogger("edgegan.distill")
DEFAULT_FAMILY = "mobile_i2i"
# Options of latent distillation that mean nothing for an image teacher: refused, never ignored.
_LATENT_ONLY = {"latent_dim": "--latent-dim", "num_classes": "--num-classes", "label_weights": "--label-weights",
                "class_names": "--class-names", "latent_pool": "--latent-pool", "min_width": "--min-width",
                "width_profile": "--width-profile"}


def distill_images(cfg: DistillConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> dict | None:
    """Distil the image-to-image teacher ``cfg.teacher`` into a ``cfg.family`` (default mobile_i2i) student
    of width ``cfg.d``; writes run directory ``out`` (``edgegan.distill.distill`` calls this)."""
    import torch

    from edgegan.checkpoint import restore_training_state
    from edgegan.distributed import setup
    from edgegan.image_sources import load_image_generator
    from edgegan.models import build_generator, get_family, image_student_args
    from edgegan.stages import pair_stages
    from edgegan.tasks import get_task
    from edgegan.terms import TERMS, Context
    from edgegan.utils import seed_everything

    out = Path(out)
    if cfg.terms is None and cfg.loss == "blackbox":
        raise ConfigError("--loss blackbox is a recipe for latent teachers (a latent pool); for an image teacher use "
                          "mse, joint, best or --terms")
    for name, flag in _LATENT_ONLY.items():
        if getattr(cfg, name):
            raise ConfigError(f"{flag} is for teachers that take latents; this teacher takes images (--task)")
    if cfg.family is not None and get_family(cfg.family).input_kind != "image":
        raise ConfigError(f"--family {cfg.family} makes images from latents; an image-to-image teacher's student is "
                          f"an image family ({DEFAULT_FAMILY})")
    if cfg.quant_aware > cfg.steps:
        raise ConfigError(f"--quant-aware {cfg.quant_aware} is more than --steps {cfg.steps}: it counts the last steps of "
                          f"the run")
    world = setup(cfg.device, cfg.batch_size)
    device = world.device
    recipe = cfg.recipe()
    check_out(out)
    cfg, start_step, history, prev, complete = resume_point(cfg, out, resume)
    if complete:
        from edgegan.manifest import read_manifest

        return read_manifest(out) if world.is_main else None

    train, test, dataset_name = _data(cfg)
    teacher = load_image_generator(cfg.teacher, torch.from_numpy(train.images[:8]), task=cfg.task,
                                   weights=cfg.teacher_weights, device=str(device), output_range=cfg.teacher_range)
    task = get_task(teacher.task)
    cfg = replace(cfg, family=cfg.family or DEFAULT_FAMILY, task=teacher.task)
    try:
        args = image_student_args(cfg.family, cfg.d, teacher.output_shape, teacher.input_shape)
    except ConfigError as e:
        raise ConfigError(f"{cfg.teacher}: a {cfg.family} student cannot map {teacher.input_shape} to "
                          f"{teacher.output_shape} ({e})") from None
    real = _gan_real(cfg, task)
    seed_everything(cfg.seed)
    student = build_generator(cfg.family, **args).to(device)
    rng = torch.Generator().manual_seed(cfg.seed)
    term_classes = [(TERMS.get(t.name), t.weight) for t in recipe.terms]
    stages = pair_stages(teacher, student, cfg.feature_layers) if any(c.needs_features for c, _ in term_classes) else None
    ctx = Context(config=cfg, teacher=teacher, student=student, device=device, rng=rng, real=None, stages=stages,
                  student_args=args)
    terms = [(cls(ctx), w) for cls, w in term_classes]
    params = list(student.parameters()) + [p for term, _ in terms for p in term.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, 0.999))
    ema = copy.deepcopy(student).eval() if recipe.ema > 0 else None
    if ema is not None:
        for p in ema.parameters():
            p.requires_grad_(False)
    modules = {"student": student, **({"ema": ema} if ema is not None else {})}
    optimizers = {"opt_student": opt}
    for term, _ in terms:
        modules.update(term.modules())
        optimizers.update(term.optimizers())
    if prev is not None:
        restore_training_state(out, prev, optimizers=optimizers, rng=rng, modules=modules)
    student_run = world.wrap(student, [p for term, w in terms if w > 0 for p in term.parameters()])
    for term, w in terms:
        if w > 0:
            term.distribute(world.wrap)
    run = dict(cfg=cfg, out=out, recipe=recipe, teacher=teacher, task=task, student=student, student_run=student_run,
               terms=terms, opt=opt, ema=ema, modules=modules, optimizers=optimizers, stages=stages, rng=rng, args=args,
               train=train, test=test, dataset_name=dataset_name, real=real, prev=prev, start_step=start_step,
               history=history, world=world, progress=progress)
    if not world.is_main:
        return _run(**run)
    with run_output(out):
        return _run(**run)


def _data(cfg: DistillConfig):
    """(train, test, name): the dataset the inputs are made from, at ``--image-size`` or the teacher's size."""
    from edgegan.data import load_dataset, parse_image_size
    from edgegan.image_sources import run_input

    name, size = cfg.dataset, parse_image_size(cfg.image_size)
    teacher_manifest = None
    if run_input(cfg.teacher) is not None:
        from edgegan.manifest import read_manifest

        p = Path(cfg.teacher)
        teacher_manifest = read_manifest(p if p.is_dir() else p.parent)
        name = name or (teacher_manifest.get("dataset") or {}).get("name")
        if size is None:
            size = tuple(teacher_manifest["model"]["output"]["shape"][1:])
    if name is None:
        raise ConfigError("an image-to-image teacher's inputs are made from a dataset's images: pass --dataset "
                          "(and --data-dir), e.g. --dataset celeba")
    train = load_dataset(name, data_dir=cfg.data_dir, split="train", image_size=size or 32)
    if size is None and train.resized:  # no size asked for: the data's own
        size = train.native
        train = load_dataset(name, data_dir=cfg.data_dir, split="train", image_size=size)
    test = load_dataset(name, data_dir=cfg.data_dir, split="test", image_size=size or train.native)
    return train, test, name


def _gan_real(cfg: DistillConfig, task) -> str:
    """What the GAN term's real pairs hold: the teacher's outputs (default: the student learns the
    teacher's mapping), or with ``--gan-real dataset`` the ground truth the inputs were made from."""
    if cfg.gan_real == "dataset":
        if not task.ground_truth:
            raise ConfigError(f"--gan-real dataset: task {task.name} has no ground truth (its inputs are the images)")
        return "dataset"
    return "teacher"


def _run(*, cfg, out, recipe, teacher, task, student, student_run, terms, opt, ema, modules, optimizers, stages, rng, args,
         train, test, dataset_name, real, prev, start_step, history, world, progress) -> dict | None:
    import torch

    from edgegan.checkpoint import model_section, save_training_state
    from edgegan.quant_aware import QuantAwareSteps
    from edgegan.stages import FeatureCapture
    from edgegan.terms import Step
    from edgegan.utils import StopRequest
    from edgegan.utils import progress as bar

    device = world.device
    images = torch.from_numpy(train.images)
    cached = _teacher_cache(teacher, task, images, stages, progress and world.is_main)
    n_eval = min(cfg.eval_samples, len(test))
    eval_y = torch.from_numpy(test.images[:n_eval]).to(device)
    eval_x = task.input(eval_y, torch.Generator().manual_seed(cfg.seed + 1))
    eval_t = torch.cat([teacher.forward(eval_x[i:i + 256]) for i in range(0, n_eval, 256)]).to(device)
    if not torch.isfinite(eval_t).all():
        from edgegan.errors import TeacherError

        raise TeacherError(f"{cfg.teacher}: the teacher's outputs are not finite (NaN or inf) on the evaluation inputs")
    final_model = ema if ema is not None else student

    def evaluate(model) -> Any:
        was = model.training
        model.eval()
        with torch.no_grad():
            s = torch.cat([model(eval_x[i:i + 256]) for i in range(0, n_eval, 256)])
        model.train(was)
        return s

    mse_start = prev["mse_start"] if prev is not None else float(torch.nn.functional.mse_loss(evaluate(final_model), eval_t))
    seconds_before = float(prev.get("seconds", 0.0)) if prev is not None else 0.0

    def checkpoint(step: int) -> None:
        if world.is_main:
            save_training_state(out, step=step, config=asdict(cfg), history=history, optimizers=optimizers, rng=rng,
                                modules=modules, extra={"mse_start": mse_start,
                                                        "seconds": seconds_before + time.perf_counter() - t0})

    t_hooks = (stages.teacher_tap or FeatureCapture(stages.teacher_modules)) if stages else None
    s_hooks = FeatureCapture(stages.student_modules) if stages else None
    every = max(1, cfg.steps // 200)
    t0 = last_line = time.perf_counter()
    pb = bar(cfg.steps, f"distill {task.name} d={cfg.d} ({recipe.name})", initial=start_step,
             enabled=progress and world.is_main)
    part = world.local(cfg.batch_size)
    student.train()
    qat = QuantAwareSteps(student, cfg, recipe.lr_schedule)  # --quant-aware: the last steps through int8 grids
    stop = StopRequest().install()
    try:
        for step in range(start_step + 1, cfg.steps + 1):
            lr = qat.lr(step)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = torch.randint(0, len(images), (cfg.batch_size,), generator=rng)
            y = images[idx]
            x = task.input(y, rng)[part].to(device)  # the global batch's inputs (inpaint draws holes), this rank's part
            target = cached[idx][part].to(device) if cached is not None else teacher.forward(x).to(device)
            y = y[part].to(device)
            for term, w in terms:
                term.at(step)
            t_feats = t_hooks.take() if t_hooks else []
            fake = student_run(x)
            s_feats = s_hooks.take() if s_hooks else []
            st = Step(z=x, student=fake, teacher=target, student_features=s_feats, teacher_features=t_feats,
                      inputs=x, truth=y if real == "dataset" else None)
            logs: dict[str, float] = {}
            for term, w in terms:
                if w > 0:
                    logs.update(term.before_student(st))
            parts = {term.name: term.loss(st) for term, w in terms if w > 0}
            loss = sum(w * parts[term.name] for term, w in terms if w > 0)
            if not torch.isfinite(loss):
                raise DivergenceError(f"distillation diverged at step {step}: loss is {loss.item()} "
                                      f"({', '.join(f'{k}={v.item():.4g}' for k, v in parts.items())}); lower --lr or a weight")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                _ema_update(ema, student, ema_decay(step, recipe.ema))
            if step % every == 0 or step == cfg.steps:
                with torch.no_grad():
                    mse = torch.nn.functional.mse_loss(fake, target)
                mse, total, *vals = world.mean([mse, loss, *parts.values()])
                logged = dict(zip(parts, vals))
                history.append([step, round(mse, 6), round(total, 6),
                                *(round(logged[t.name], 6) if t.name in logged else None for t, _ in terms)])
            pb.update(1)
            if cfg.progress_every and world.is_main and time.perf_counter() - last_line >= cfg.progress_every:
                last_line = time.perf_counter()
                log.warning("%s", progress_line(step, start_step, cfg.steps, last_line - t0, loss.item()))
            if step % 10 == 0:
                pb.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if world.any(stop.requested) and step != cfg.steps:
                checkpoint(step)
                log.warning("interrupted: checkpoint at step %d in %s (continue with --resume)", step, out)
                raise stop.stopped()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step != cfg.steps:
                checkpoint(step)
    finally:
        qat.remove()
        stop.remove()
        pb.close()
        for h in (t_hooks, s_hooks):
            if h:
                h.close()
    seconds = seconds_before + time.perf_counter() - t0
    if not world.is_main:
        return None
    checkpoint(cfg.steps)
    s_out = evaluate(final_model)
    final_model.eval().cpu()
    from edgegan.viz import save_comparison

    cols = {"input": input_view(eval_x[:64].cpu(), teacher.output_shape).numpy(), "teacher": eval_t[:64].cpu().numpy(),
            f"student d={cfg.d}": s_out[:64].cpu().numpy()}
    if task.ground_truth:
        cols["ground truth"] = eval_y[:64].cpu().numpy()
    save_comparison(cols, out / "samples" / "teacher_vs_student.png")
    manifest = {
        "schema": "edgegan.manifest/1",
        "kind": "student",
        "created": now_iso(),
        "versions": versions(),
        "model": model_section(final_model, cfg.family, args, out, task=task.name),
        "config": asdict(cfg),
        "dataset": train.describe(),
        "distill": {
            "teacher": _teacher_record(teacher, out),
            "task": task.name,
            "loss": recipe.name,
            "recipe": recipe.describe(),
            "weights_exported": "ema" if ema is not None else "student",
            "inputs": f"the task's inputs from {dataset_name} (train split), a fresh batch every step",
            "teacher_outputs": "cached once for the training set" if cached is not None else "computed every step",
            "dataset": train.describe(),
            "gan": _gan_record(cfg, terms, real),
            "quant_aware": qat.record(),
            **_sizes(teacher, final_model),
            "steps": cfg.steps,
            "resumed_from": start_step or None,
            "seconds": round(seconds, 3),
            "seconds_per_step": round((seconds - seconds_before) / max(1, cfg.steps - start_step), 5),
            "distributed": world.describe(cfg.batch_size),
            "eval": _eval_record(cfg, task, eval_x, eval_y.cpu(), eval_t.cpu(), s_out.cpu(), mse_start),
            "loss_curve": {"columns": ["step", "mse", "loss", *(t.name for t, _ in terms)], "rows": history},
            "samples": "samples/teacher_vs_student.png",
        },
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return manifest


CACHE_BYTES = 2 << 30  # the teacher's outputs for the whole training set are kept when they fit in this


def _teacher_cache(teacher, task, images, stages, progress: bool):
    """The teacher's outputs for every training image, computed once, when the task's input depends on
    the image alone (not inpaint's random holes), no term needs the teacher's stages, and they fit in
    ``CACHE_BYTES``: the teacher's forward is most of a step (a 190 M-MAC teacher against a 5 M-MAC
    student), as the latent pool's cache is for latent teachers. None otherwise (run per step)."""
    import math

    import torch

    from edgegan.utils import progress as bar

    if task.random or stages is not None:
        return None
    if len(images) * math.prod(teacher.output_shape) * 4 > CACHE_BYTES:
        return None
    out = []
    pb = bar(len(images), "teacher outputs (cached)", enabled=progress)
    for i in range(0, len(images), 256):
        out.append(teacher.forward(task.input(images[i:i + 256])).float().cpu())
        pb.update(len(out[-1]))
    pb.close()
    return torch.cat(out)


def input_view(x, out_shape: tuple[int, int, int]):
    """Inputs drawn beside outputs: the image channels (a grey one repeated to the output's), nearest-
    upsampled to the output's size."""
    import torch.nn.functional as F

    c = out_shape[0]
    v = x[:, :c] if x.shape[1] >= c else x[:, :1].expand(-1, c, -1, -1)
    if tuple(v.shape[2:]) != tuple(out_shape[1:]):
        v = F.interpolate(v, size=tuple(out_shape[1:]), mode="nearest")
    return v


def _teacher_record(teacher, out: Path) -> dict[str, Any]:
    import os

    rec = teacher.describe()
    if teacher.kind != "factory":
        rec["spec_from_run"] = os.path.relpath(teacher.spec, out.resolve())
    else:
        rec["distill_cwd"] = os.getcwd()
    return rec


def _gan_record(cfg: DistillConfig, terms, real: str) -> dict[str, Any] | None:
    if not any(t.name == "gan" and w > 0 for t, w in terms):
        return None
    return {"real": real, "discriminator": "conditional PatchGAN on (output, input)", "loss": cfg.gan_loss,
            "spectral_norm": cfg.d_sn, "d_disc": cfg.d_disc, "d_lr": cfg.d_lr, "d_beta1": cfg.d_beta1,
            "start_step": cfg.gan_start}


def _sizes(teacher, student) -> dict[str, Any]:
    """Parameters and MACs per image at the distillation's input size, and the ratios (the issue's goal
    is in MACs: a student >= 20x cheaper). An ONNX teacher's are counted on its graph; a TorchScript one has none."""
    import torch

    from edgegan.models import count_macs, count_params

    x = torch.zeros(1, *teacher.input_shape)
    sm = count_macs(student, x)
    tm = count_macs(teacher.module, x.to(next(teacher.module.parameters()).device)) \
        if isinstance(teacher.module, torch.nn.Module) and not isinstance(teacher.module, torch.jit.ScriptModule) else None
    if teacher.kind == "onnx":
        from edgegan.models import count_macs_onnx_or_none

        tm = count_macs_onnx_or_none(teacher.spec, (1, *teacher.input_shape))
    sp = count_params(student)
    return {"teacher_params": teacher.params, "student_params": sp,
            "compression_ratio": round(teacher.params / sp, 2) if teacher.params else None,
            "teacher_macs": tm, "student_macs": sm, "macs_ratio": round(tm / sm, 2) if tm else None}


def _eval_record(cfg, task, x, y, t, s, mse_start: float) -> dict[str, Any]:
    """Fidelity to the teacher; against the ground truth, the teacher's and the student's (and for super-
    resolution the bicubic up-sampling of the input, the reference every SR paper quotes)."""
    import torch
    import torch.nn.functional as F

    from edgegan.metrics.fidelity import psnr, ssim

    tn, sn = t.numpy(), s.numpy()
    rec: dict[str, Any] = {"samples": int(len(x)), "split": "test", "seed": cfg.seed + 1,
                           "mse_start": mse_start, "mse_end": float(F.mse_loss(s, t)),
                           "to_teacher": {"psnr": round(psnr(sn, tn), 3), "ssim": round(ssim(sn, tn), 4)}}
    rec["mse_drop"] = round(rec["mse_start"] / rec["mse_end"], 2) if rec["mse_end"] > 0 else None
    if task.ground_truth:
        yn = y.numpy()
        rec["to_truth"] = {name: {"psnr": round(psnr(v, yn), 3), "ssim": round(ssim(v, yn), 4)}
                           for name, v in (("teacher", tn), ("student", sn))}
        if task.scale > 1:
            with torch.no_grad():
                b = F.interpolate(x.cpu(), size=tuple(y.shape[2:]), mode="bicubic", align_corners=False).clamp(-1, 1)
            rec["to_truth"]["bicubic"] = {"psnr": round(psnr(b.numpy(), yn), 3), "ssim": round(ssim(b.numpy(), yn), 4)}
    return rec
