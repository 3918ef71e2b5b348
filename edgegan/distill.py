"""Knowledge distillation of a generator (Aguinaldo et al. 2019), as a frozen teacher plus loss terms.

Each step draws latents z (fresh z ~ N(0, I) every step, as in the paper, unless ``latent_pool``),
runs the frozen teacher under ``torch.no_grad`` and the student, lets each term update what it owns
(a discriminator), and steps the student on ``sum(weight * term.loss)`` (see ``edgegan.terms``):

* ``--loss mse``   = ``pixel:1``                 (the paper's pixel MSE)
* ``--loss joint`` = ``pixel:1,gan:λ``           (the paper's joint loss; λ = ``--lam``)
* ``--loss best``  = our recipe (``edgegan.terms.RECIPES``)
* ``--terms pixel:1,feature:1,gan:0.01``         any recipe of terms, recorded with every weight

Options that matter for small students: an exponential moving average of the student's weights
(``ema``; the EMA is what is saved and exported), a learning-rate schedule, and the latent pool.
A run is resumable: ``--resume`` continues from the last checkpoint (student, EMA, adaptors,
discriminator, every optimiser, RNG state) and ends where an uninterrupted run ends, bit for bit.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from edgegan.errors import ConfigError, DivergenceError
from edgegan.manifest import MANIFEST_NAME, atomic_write_json, now_iso, versions
from edgegan.outputs import check_out, run_output
from edgegan.distill_config import LOSSES, DistillConfig, ResolvedRecipe, lr_at
from edgegan.distill_parts import (_check_image_size, _ema_update, _gan_record, _real_data, _teacher_record, ema_decay,
                                   gan_real_source, latent_pool_y, latent_pool_z, pool_size, progress_line,
                                   resume_point)
from edgegan.labels import Labels, label_args

log = logging.getLogger(__name__)


def distill(cfg: DistillConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
            pool_outputs: Any = None) -> dict[str, Any] | None:
    """Distil ``cfg.teacher`` into a ``cfg.family`` student of depth ``cfg.d``; writes run directory ``out``.

    Everything is validated before anything is written; with ``resume`` it continues the interrupted
    run in ``out`` from its last checkpoint. Under torchrun rank 0 alone writes and returns the
    manifest; the other ranks return None (``edgegan.distributed``). ``pool_outputs``: the teacher's
    outputs for this config's latent pool (``latent_pool_z(cfg, L)``), computed once by a caller that
    distils many students from one teacher (``edgegan sweep``); used only where the run would compute
    exactly those itself."""
    import torch

    from edgegan.checkpoint import restore_training_state
    from edgegan.distributed import setup
    from edgegan.models import build_generator, choose_family, get_family, student_args
    from edgegan.sources import load_generator
    from edgegan.stages import pair_stages
    from edgegan.terms import TERMS, Context
    from edgegan.utils import seed_everything

    out = Path(out)
    asked_pool = cfg.latent_pool  # the user's --latent-pool (0: none asked; the recipe may set one)
    cfg = cfg.effective()  # a named recipe's options where the user left the default (recorded as the config)
    from edgegan.image_sources import is_image_teacher

    if is_image_teacher(cfg.teacher, cfg.task):  # a teacher that takes images (issue 21)
        from edgegan.distill_images import distill_images

        return distill_images(cfg, out, resume=resume, progress=progress)
    if cfg.quant_aware > cfg.steps:
        raise ConfigError(f"--quant-aware {cfg.quant_aware} is more than --steps {cfg.steps}: it counts the last steps of "
                          f"the run")
    if cfg.family is not None:
        get_family(cfg.family)
    world = setup(cfg.device, cfg.batch_size)  # torchrun: this rank's device; --batch-size is the global batch
    device = world.device
    recipe = cfg.recipe()
    check_out(out)
    cfg, start_step, history, prev, complete = resume_point(cfg, out, resume, recipe_pool=not asked_pool)
    if complete:
        from edgegan.manifest import read_manifest

        return read_manifest(out) if world.is_main else None

    teacher = load_generator(cfg.teacher, weights=cfg.teacher_weights, latent_dim=cfg.latent_dim, device=str(device),
                             output_range=cfg.teacher_range, num_classes=cfg.num_classes)
    labels = Labels.for_teacher(cfg, teacher)  # None: unconditional
    if cfg.latent_dim is not None and cfg.latent_dim != teacher.latent_dim:
        from edgegan.errors import TeacherError

        raise TeacherError(f"{cfg.teacher}: --latent-dim {cfg.latent_dim} but the teacher takes z of size "
                           f"{teacher.latent_dim}; leave --latent-dim out (it is read from the teacher)")
    C, H, W = teacher.output_shape
    if cfg.family is None:  # chosen from the teacher's shape (issue 25): the paper's dcgan where it fits
        cfg = replace(cfg, family=choose_family(None, cfg.d, (C, H, W), teacher.latent_dim))
        log.info("student family %s for the teacher's %dx%dx%d images", cfg.family, C, H, W)
    try:
        args = student_args(cfg.family, cfg.d, (C, H, W), teacher.latent_dim,
                            **({"min_width": cfg.min_width} if cfg.min_width else {}),
                            **({"profile": cfg.width_profile} if cfg.width_profile else {}),
                            **({"num_classes": labels.num_classes} if labels else {}))
    except ConfigError as e:
        from edgegan.errors import TeacherError

        hint = "; the anyshape family makes any C x H x W (--family anyshape)" if cfg.family != "anyshape" else ""
        raise TeacherError(f"{cfg.teacher}: a {cfg.family} student cannot match the teacher's output {C}x{H}x{W} "
                           f"({e}){hint}") from None
    _check_image_size(cfg, (H, W))
    if cfg.latent_pool:
        cfg = replace(cfg, latent_pool=pool_size(cfg, asked_pool, (C, H, W)))

    term_classes = [(TERMS.get(t.name), t.weight) for t in recipe.terms]
    real_images, real_labels, dataset_info = None, None, None
    if any(cls.needs_real for cls, w in term_classes if w > 0):
        if gan_real_source(cfg, teacher) == "dataset":
            real_images, real_labels, dataset_info = _real_data(cfg, teacher, (C, H, W), labels)

    seed_everything(cfg.seed)
    student = build_generator(cfg.family, **args).to(device)
    rng = torch.Generator().manual_seed(cfg.seed)
    stages = pair_stages(teacher, student, cfg.feature_layers) if any(c.needs_features for c, _ in term_classes) else None

    def real(n: int):  # n per rank: the global batch of real images is drawn, this rank's part kept
        idx = torch.randint(0, len(real_images), (n * world.size,), generator=rng)[world.local(n * world.size)]
        return real_images[idx].to(device), None if real_labels is None else real_labels[idx].to(device)

    ctx = Context(config=cfg, teacher=teacher, student=student, device=device, rng=rng,
                  real=real if real_images is not None else None, stages=stages, labels=labels)
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
    # Under torchrun: the student with the adaptors of terms in use in one DistributedDataParallel, a
    # term's own networks (the discriminator) in theirs; the teacher stays frozen, unwrapped.
    student_run = world.wrap(student, [p for term, w in terms if w > 0 for p in term.parameters()])
    for term, w in terms:
        if w > 0:
            term.distribute(world.wrap)

    run = (cfg, out, recipe, teacher, student, student_run, terms, opt, ema, modules, optimizers, stages, rng, args,
           dataset_info, prev, start_step, history, world, progress, pool_outputs, labels)
    if not world.is_main:  # under torchrun rank 0 alone makes, writes and cleans up the run folder
        return _run(*run)
    with run_output(out):
        return _run(*run)


def _run(cfg: DistillConfig, out: Path, recipe: ResolvedRecipe, teacher, student, student_run, terms, opt, ema,
         modules: dict, optimizers: dict, stages, rng, args: dict, dataset_info, prev: dict | None, start_step: int,
         history: list, world, progress: bool, pool_outputs: Any = None, labels: Labels | None = None
         ) -> dict[str, Any] | None:
    import torch

    from edgegan.checkpoint import model_section
    from edgegan.models import count_params
    from edgegan.stages import FeatureCapture
    from edgegan.terms import Step
    from edgegan.utils import StopRequest
    from edgegan.utils import progress as bar
    from edgegan_runtime import latent

    device = world.device
    eval_z = torch.from_numpy(latent(cfg.eval_samples, teacher.latent_dim, cfg.seed + 1)).to(device)
    eval_y = labels.balanced(cfg.eval_samples, device) if labels else None  # class i mod K
    eval_t = torch.cat([teacher.forward(eval_z[i:i + 256], *label_args(labels, eval_y, slice(i, i + 256)))
                        for i in range(0, len(eval_z), 256)]).to(device)
    final_model = ema if ema is not None else student
    if not torch.isfinite(eval_t).all():  # a student fitted to NaN would "finish" with MSE nan → nan
        from edgegan.errors import TeacherError

        bad = int((~torch.isfinite(eval_t)).flatten(1).any(1).sum())
        raise TeacherError(f"{cfg.teacher}: the teacher's images are not finite (NaN or inf) for {bad} of "
                           f"{len(eval_t)} latents; nothing to distil")
    if len(eval_t) > 1 and float((eval_t - eval_t[:1]).abs().max()) < 1e-6:  # nothing depends on z
        from edgegan.errors import TeacherError

        raise TeacherError(f"{cfg.teacher}: the teacher makes the same image for every latent (constant output "
                           f"{float(eval_t.flatten()[0]):.4g}...); nothing to distil")
    eval_outside = float((eval_t.abs() > 1 + 2e-3).float().mean())  # teacher outputs beyond its declared range
    if eval_outside > 0:
        log.warning("%.2f%% of the teacher's outputs on the eval latents lie outside its declared range %s",
                    100 * eval_outside, list(teacher.range))

    def eval_mse(model) -> float:
        was = model.training
        model.eval()
        with torch.no_grad():
            v = torch.nn.functional.mse_loss(model(eval_z, *label_args(labels, eval_y)), eval_t).item()
        model.train(was)
        return v

    mse_start = prev["mse_start"] if prev is not None else eval_mse(final_model)
    pool_z = pool_t = pool_y = None
    if cfg.latent_pool and start_step < cfg.steps:  # a run resumed only to write its files needs no pool
        pool_z = torch.from_numpy(latent_pool_z(cfg, teacher.latent_dim)).to(device)
        pool_y = latent_pool_y(cfg, labels, device)
        if stages is None and pool_outputs is not None:
            want = (cfg.latent_pool, *teacher.output_shape)
            if tuple(pool_outputs.shape) != want:
                raise ConfigError(f"pool_outputs has shape {tuple(pool_outputs.shape)}, expected {want}")
            pool_t = pool_outputs.to(device)
        elif stages is None:  # only outputs are needed: the teacher runs once per pooled latent
            pool_t = torch.cat([teacher.forward(pool_z[i:i + 256], *label_args(labels, pool_y, slice(i, i + 256)))
                                for i in range(0, len(pool_z), 256)]).to(device)
    t_hooks = (stages.teacher_tap or FeatureCapture(stages.teacher_modules)) if stages else None
    s_hooks = FeatureCapture(stages.student_modules) if stages else None

    def checkpoint(step: int) -> None:
        from edgegan.checkpoint import save_training_state

        if not world.is_main:  # under torchrun rank 0 writes; every rank holds the same state
            return
        save_training_state(out, step=step, config=asdict(cfg), history=history, optimizers=optimizers, rng=rng,
                            modules=modules, extra={"mse_start": mse_start, "seconds": seconds_before + time.perf_counter() - t0})

    every = max(1, cfg.steps // 200)
    seconds_before = float(prev.get("seconds", 0.0)) if prev is not None else 0.0
    t0 = last_line = time.perf_counter()
    pb = bar(cfg.steps, f"distill d={cfg.d} ({recipe.name})", initial=start_step, enabled=progress and world.is_main)
    part = world.local(cfg.batch_size)  # every rank draws the global batch of latents and keeps its slice
    student.train()
    from edgegan.quant_aware import QuantAwareSteps

    qat = QuantAwareSteps(student, cfg, recipe.lr_schedule)  # --quant-aware: the last steps through int8 grids
    stop = StopRequest().install()  # Ctrl-C: finish the step, checkpoint it, stop
    try:
        for step in range(start_step + 1, cfg.steps + 1):
            lr = qat.lr(step)
            for g in opt.param_groups:
                g["lr"] = lr
            if pool_z is not None:
                idx = torch.randint(0, len(pool_z), (cfg.batch_size,), generator=rng)[part]
                z, y = pool_z[idx], None if pool_y is None else pool_y[idx]
                target = pool_t[idx] if pool_t is not None else teacher.forward(z, *label_args(labels, y)).to(device)
            else:
                z = torch.randn(cfg.batch_size, teacher.latent_dim, generator=rng)[part].to(device)
                y = labels.draw(cfg.batch_size, rng)[part].to(device) if labels else None
                target = teacher.forward(z, *label_args(labels, y)).to(device)
            for term, w in terms:
                term.at(step)
            t_feats = t_hooks.take() if t_hooks else []
            fake = student_run(z, *label_args(labels, y))
            s_feats = s_hooks.take() if s_hooks else []
            st = Step(z=z, student=fake, teacher=target, student_features=s_feats, teacher_features=t_feats, labels=y)
            logs: dict[str, float] = {}
            for term, w in terms:
                if w > 0:
                    logs.update(term.before_student(st))
            parts = {term.name: term.loss(st) for term, w in terms if w > 0}
            loss = sum(w * parts[term.name] for term, w in terms if w > 0)
            if not torch.isfinite(loss):
                why = "the teacher's images are not finite" if not torch.isfinite(target).all() else "lower --lr or a weight"
                raise DivergenceError(f"distillation diverged at step {step}: loss is {loss.item()} "
                                      f"({', '.join(f'{k}={v.item():.4g}' for k, v in parts.items())}); {why}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                _ema_update(ema, student, ema_decay(step, recipe.ema))
            if step % every == 0 or step == cfg.steps:
                with torch.no_grad():
                    mse = torch.nn.functional.mse_loss(fake, target)
                mse, total, *vals = world.mean([mse, loss, *parts.values()])  # global-batch means
                logged = dict(zip(parts, vals))
                history.append([step, round(mse, 6), round(total, 6), *(round(logged[t.name], 6) if t.name in logged else None
                                                                        for t, _ in terms)])
            pb.update(1)
            if cfg.progress_every and world.is_main and time.perf_counter() - last_line >= cfg.progress_every:
                last_line = time.perf_counter()
                log.warning("%s", progress_line(step, start_step, cfg.steps, last_line - t0, loss.item()))
            if step % 10 == 0:
                pb.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if world.any(stop.requested) and step != cfg.steps:  # Ctrl-C/SIGTERM: an exact checkpoint here, then stop
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
        return None  # rank 0 writes the run
    checkpoint(cfg.steps)
    mse_end = eval_mse(final_model)
    final_model.eval().cpu()

    from edgegan.viz import save_comparison

    with torch.no_grad():
        z64 = eval_z[:64].cpu()
        eval_y = None if eval_y is None else eval_y.cpu()
        t_img = eval_t[:64].cpu().numpy()
        s_img = final_model(z64, *label_args(labels, eval_y, slice(0, 64))).numpy()
    save_comparison({"teacher": t_img, f"student d={cfg.d}": s_img}, out / "samples" / "teacher_vs_student.png")
    sp = count_params(final_model)
    manifest = {
        "schema": "edgegan.manifest/1",
        "kind": "student",
        "created": now_iso(),
        "versions": versions(),
        "model": model_section(final_model, cfg.family, args, out,
                               class_names=None if labels is None or labels.names is None else list(labels.names)),
        "config": asdict(cfg),
        "distill": {
            "teacher": _teacher_record(teacher, out, eval_outside),
            "loss": recipe.name,
            "recipe": recipe.describe(),
            "lam": recipe.describe()["weights"].get("gan"),
            "weights_exported": "ema" if ema is not None else "student",
            "latent_sampling": f"pool of {cfg.latent_pool} fixed latents" if cfg.latent_pool else "fresh z every step",
            "dataset": dataset_info,
            **({"labels": labels.describe()} if labels else {}),
            "gan": _gan_record(cfg, terms),
            "quant_aware": qat.record(),
            "teacher_params": teacher.params,
            "student_params": sp,
            "compression_ratio": round(teacher.params / sp, 2) if teacher.params else None,
            "steps": cfg.steps,
            "resumed_from": start_step or None,
            "seconds": round(seconds, 3),
            # this session's pace; a run resumed only to write its files ran no step: the whole run's
            "seconds_per_step": round((seconds - seconds_before) / (cfg.steps - start_step) if cfg.steps > start_step
                                      else seconds / max(1, cfg.steps), 5),
            "distributed": world.describe(cfg.batch_size),
            "eval": {"samples": cfg.eval_samples, "seed": cfg.seed + 1, "mse_start": mse_start, "mse_end": mse_end,
                     "mse_drop": round(mse_start / mse_end, 2) if mse_end > 0 else None},
            "loss_curve": {"columns": ["step", "mse", "loss", *(t.name for t, _ in terms)], "rows": history},
            "samples": "samples/teacher_vs_student.png",
        },
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return manifest


__all__ = ["DistillConfig", "LOSSES", "distill", "ema_decay", "latent_pool_z", "lr_at"]
