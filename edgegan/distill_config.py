"""What one distillation is asked to do (``DistillConfig``, from which ``edgegan distill``'s options are
generated), the recipe it resolves to, and the learning-rate schedule.

Loss terms own their options: ``DistillConfig`` is ``RunOptions`` (what no term owns: the teacher, the
student, the recipe, the data, the schedule) plus the options class of every term in
``edgegan.terms.TERMS`` (``PixelOptions``, ``GanOptions``, ``FeatureOptions`` in
``edgegan.term_options``), inherited: ``class DistillConfig(*config_bases(RunOptions))``. A new term's
options so reach the config, ``--help``, the manifest and validation (bounds and choices are checked
field by field) from its class and its registry row alone; the row must exist when this module is
first imported, as those in ``terms.py`` do. Inheritance rather than a class generated with
``make_dataclass``: the fields keep their ``Field`` objects (default, help, choices, bounds) and their
source (trailing-comment help), and the config stays a plain frozen dataclass whose methods are a class
body. The terms' classes are keyword-only: their fields come after ``RunOptions``' (which start with
the required ``teacher``) and are passed by name. Fields keep their names (``asdict(cfg)``,
``--resume``'s comparison); their order is ``RunOptions``' then the terms'.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from edgegan.config import (BATCH, BETA, DATASET_NAMES, DEPTH, EVERY, FAMILY_NAMES, LATENT, LEARNING_RATE, SEED, STEPS,
                            TASK_NAMES, WEIGHT, WIDTH_PROFILES, Bounds, check_bounds, field_choices, opt)
from edgegan.errors import ConfigError, UnknownNameError
from edgegan.registry import Registry
from edgegan.term_options import GAN_LOSSES, GAN_REALS, PIXEL_LOSSES  # noqa: F401 - their old home, re-exported
from edgegan.terms import TERMS

LOSSES = ("mse", "joint", "best", "blackbox")  # the named recipes (edgegan.terms.RECIPES); --terms for any other
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class RunOptions:
    """A distillation's options that no loss term owns (theirs: ``edgegan.term_options``)."""

    teacher: str  # edgegan run dir, .onnx, TorchScript file, or module:factory
    teacher_weights: str | None = None  # module:factory teacher's weights: safetensors, or a torch.save state dict (.pth, read with weights_only=True; W.pth#KEY picks one of several)
    latent_dim: int | None = opt(None, "latent size of an ONNX, TorchScript or factory teacher when it cannot be read "
                                 "from it (an edgegan run records its own: a different value is an error)", bounds=LATENT)
    teacher_range: str | None = opt(None, "the teacher's output range LO,HI, e.g. 0,1 for a Sigmoid head (default: "
                                    "measured on a probe batch); the student learns it mapped to [-1, 1], recorded")
    num_classes: int | None = opt(None, "classes of a conditional teacher (z and a label) when they cannot be read from "
                                  "it; a value the teacher contradicts is an error", bounds=Bounds(2, 1000))
    label_weights: str | None = opt(None, "conditional teacher: how often each class is drawn, K comma-separated "
                                    "non-negative weights (default: uniform)")
    class_names: str | None = opt(None, "conditional teacher: K comma-separated class names, recorded in the student's "
                                  "manifest and files (default: the teacher's, else none)")
    task: str | None = opt(None, "image-to-image teacher (issue 21): the task that makes its input from --dataset's "
                           "images (sr2x, sr4x: downscaled; colorize: grey; inpaint: masked; none: as they are); "
                           "default: the task an edgegan teacher records", choices=TASK_NAMES)
    family: str | None = opt(None, "student family (default: dcgan where it makes the teacher's images, square 32 or "
                             "64, else anyshape; mobile_i2i for an image-to-image teacher)", choices=FAMILY_NAMES)
    d: int = opt(2, "student depth factor", bounds=DEPTH)
    min_width: int | None = opt(None, "dcgan student: narrowest hidden stage (default: the paper's widths, d at the "
                                "last stage); e.g. 8 for a d=2 student of an RGB teacher", bounds=DEPTH)
    width_profile: str | None = opt(None, "dcgan student: channels per stage, paper (halved at every stage, the "
                                    "default) or flat (level: fewer in the seed, more at high resolution)",
                                    choices=WIDTH_PROFILES)
    loss: str = opt("mse", "named recipe: mse (paper's pixel MSE), joint (paper: MSE + lam * GAN), best (ours: joint + "
                    "feature term), blackbox (a foreign teacher without data); see edgegan/terms.py", choices=LOSSES)
    terms: str | None = None  # recipe of terms, e.g. "pixel:1,feature:1,gan:0.01" (replaces --loss)
    lam: float = opt(0.01, "λ: weight of the GAN term in the joint recipe", bounds=WEIGHT)
    dataset: str | None = opt(None, "real data for the GAN term (default: the teacher's dataset)", choices=DATASET_NAMES)
    data_dir: str | None = None  # folder holding the dataset's files (default: $EDGEGAN_DATA/<dataset>)
    image_size: str | None = opt(None, "size of the GAN term's real images, S or HxW (the teacher's): needed when the "
                                 "dataset's images are another size, which are then resized (recorded)")
    steps: int = opt(2000, "optimiser steps (a resumed run continues up to this)", bounds=STEPS)
    batch_size: int = opt(64, "latents per step", bounds=BATCH)
    # Adam learning rate of the student. Pixel-MSE regression is stable, and small-d students learn slowly
    # at the GAN rate 2e-4 (a 1x1 output conv over d channels moves ~lr per step): measured on MNIST,
    # 300 steps of a d=2 student cut the MSE 3x at 1e-3, 15x at 3e-3, 42x at 1e-2.
    lr: float = opt(5e-3, "student learning rate (Adam)", bounds=LEARNING_RATE)
    beta1: float = opt(0.5, "Adam beta1 of the student", bounds=BETA)
    lr_schedule: str | None = opt(None, "learning-rate schedule: constant, or cosine to 1% of lr (default: the recipe's)",
                                  choices=LR_SCHEDULES)
    warmup_steps: int = opt(0, "linear learning-rate warm-up at the start", bounds=EVERY)
    ema: float | None = opt(None, "decay of an EMA of the student's weights, exported instead of them (e.g. 0.99; 0: off; "
                            "default: the recipe's)", bounds=BETA)
    latent_pool: int = opt(0, "0: fresh z every step (the paper); N: draw from N fixed latents, teacher outputs cached",
                           bounds=Bounds(0, 10**6))
    quant_aware: int = opt(0, "the last N of --steps train through the int8 file's rounding of the student's stored "
                           "tensors (quantization-aware fine-tuning; a finished run continues with --resume --steps S+N "
                           "--quant-aware N)", bounds=EVERY)
    seed: int = opt(0, "random seed", bounds=SEED)
    device: str = "cpu"  # cpu, cuda or cuda:N
    eval_samples: int = opt(256, "fixed latents on which the student-teacher MSE is reported", bounds=Bounds(1, 65536))
    checkpoint_every: int = opt(500, "steps between resumable checkpoints (0: only at the end)", bounds=EVERY)
    progress_every: int = opt(0, "seconds between progress lines on stderr (step, s/step, ETA, MSE), for hour-long runs "
                              "whose stderr is a log file, not a terminal (0: off; the CLI's default is 60 when stderr is "
                              "not a terminal, unless --quiet)", bounds=EVERY)


def config_bases(own: type, terms: Registry | None = None) -> tuple[type, ...]:
    """The bases of a config with the options of every term in ``terms`` (default ``TERMS``): theirs,
    then ``own``. Dataclasses collect fields from the last base to the first, so ``own``'s come first
    (``--teacher`` heads ``--help``), then the terms'. An option declared twice, by two terms or by a
    term and ``own``, is a TypeError at import: one place declares each option."""
    terms = TERMS if terms is None else terms
    classes = list(dict.fromkeys(c for c in (terms.get(n).options for n in terms) if c is not None))
    seen = {f.name: own.__name__ for f in dataclasses.fields(own)}
    for c in classes:
        for f in dataclasses.fields(c):
            if f.name in seen:
                raise TypeError(f"option {f.name!r} is declared by both {seen[f.name]} and {c.__name__}")
            seen[f.name] = c.__name__
    return (*classes, own)


@dataclass(frozen=True)
class DistillConfig(*config_bases(RunOptions)):  # type: ignore[misc]
    """``RunOptions`` and every loss term's options (the module doc says how and why)."""

    def __post_init__(self) -> None:
        check_bounds(self)  # every numeric field: an integer or a finite number, within its declared range
        for f in dataclasses.fields(self):  # loss, lr_schedule and the terms' choices (registries check their own)
            valid, value = field_choices(f), getattr(self, f.name)
            if isinstance(valid, tuple) and value not in valid and not (value is None is f.default):  # None: unset
                raise UnknownNameError(f.name.replace("_", "-"), value, list(valid))
        for name in ("min_width", "width_profile"):
            if getattr(self, name) is not None and self.family not in (None, "dcgan"):  # None: chosen from the teacher
                raise ConfigError(f"--{name.replace('_', '-')} shapes dcgan students; the {self.family} family has "
                                  f"no such option")
        if self.latent_pool and self.latent_pool < self.batch_size:
            raise ConfigError(f"latent-pool ({self.latent_pool}) must hold at least one batch ({self.batch_size})")
        from edgegan.data import parse_image_size
        from edgegan.sources import parse_range

        parse_image_size(self.image_size)
        parse_range(self.teacher_range)
        parse_label_weights(self.label_weights)
        parse_class_names(self.class_names)
        self.recipe()  # unknown terms, bad weights: an error now, before anything is read or written

    def effective(self) -> "DistillConfig":
        """This config with the named recipe's options (beyond ema and lr_schedule, which ``recipe``
        resolves) wherever the option is at its declared default; ``--terms`` recipes set none. What
        a run trains with, and what its manifest records as its config."""
        from edgegan.terms import RECIPES

        if self.terms is not None:
            return self
        opts = {k: v for k, v in RECIPES.get(self.loss).options.items() if k not in ("ema", "lr_schedule")}
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        change = {k: v for k, v in opts.items() if getattr(self, k) == defaults[k]}
        return dataclasses.replace(self, **change) if change else self

    def recipe(self) -> "ResolvedRecipe":
        """The terms and options this config trains with: ``terms`` if given, else the named recipe's,
        with the recipe's options wherever the user left an option unset (None)."""
        from edgegan.terms import RECIPES, parse_terms

        named = RECIPES.get(self.loss)
        spec = self.terms if self.terms is not None else named.terms.format(lam=self.lam)
        opts = named.options if self.terms is None else {}
        ema = self.ema if self.ema is not None else opts.get("ema", 0.0)
        sched = self.lr_schedule if self.lr_schedule is not None else opts.get("lr_schedule", "constant")
        return ResolvedRecipe(self.loss if self.terms is None else "custom", parse_terms(spec), float(ema), sched)


def parse_label_weights(text: str | None, k: int | None = None) -> list[float] | None:
    """``"1,1,2"`` -> [1.0, 1.0, 2.0]: finite, >= 0, not all 0, and K of them when K is known."""
    if text is None:
        return None
    try:
        w = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"--label-weights must be comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in w) or not any(v > 0 for v in w):
        raise ConfigError(f"--label-weights must be finite, >= 0 and not all 0, got {text!r}")
    if k is not None and len(w) != k:
        raise ConfigError(f"--label-weights gives {len(w)} weights for a teacher of {k} classes")
    return w


def parse_class_names(text: str | None, k: int | None = None) -> list[str] | None:
    if text is None:
        return None
    names = [v.strip() for v in str(text).split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise ConfigError(f"--class-names must be distinct, non-empty names separated by commas, got {text!r}")
    if k is not None and len(names) != k:
        raise ConfigError(f"--class-names gives {len(names)} names for a teacher of {k} classes")
    return names


@dataclass(frozen=True)
class ResolvedRecipe:
    name: str
    terms: tuple  # of edgegan.terms.TermSpec
    ema: float
    lr_schedule: str

    def describe(self) -> dict[str, Any]:
        from edgegan.terms import format_terms

        return {"name": self.name, "terms": format_terms(self.terms),
                "weights": {t.name: t.weight for t in self.terms}, "ema": self.ema, "lr_schedule": self.lr_schedule}


# Fields that may differ between an interrupted run and its resumption.
_RESUMABLE = {"steps", "quant_aware", "checkpoint_every", "device", "data_dir", "teacher", "teacher_weights", "progress_every"}


def lr_at(step: int, cfg: DistillConfig, schedule: str) -> float:
    """Learning rate of step ``step`` (1-based): linear warm-up, then constant or cosine to 1% of lr."""
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    if schedule == "cosine":
        span = max(1, cfg.steps - cfg.warmup_steps)
        t = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))
    return cfg.lr
