"""Distillation loss terms: each a small object with its own weight, over a frozen teacher.

The distiller (``edgegan.distill``) runs the teacher and the student on the same latents z each
step and sums ``weight * term.loss(step)`` over the recipe's terms (GAN Compression's layout: a
frozen teacher, forward hooks, 1x1 adaptors, a loss that sums GAN, reconstruction and feature terms).

=========== ===================================================================================
term        what it matches
=========== ===================================================================================
pixel       S(z) to T(z), MSE or L1 (Aguinaldo et al. 2019: the paper's loss)
gan         a discriminator on the real data against S(z), non-saturating or hinge (the paper's
            joint loss adds it to pixel)
feature     the teacher's intermediate activations, from the student's through learned 1x1
            adaptors (GAN Compression, Li et al. 2020); DCGAN stages pair by resolution
perceptual  distances in a frozen feature network: the teacher run's own discriminator, so the
            bench's domain classifier stays independent of training (no contaminated FID)
=========== ===================================================================================

A new term is one class here and one row in ``TERMS``; a term with options names a small frozen
dataclass of them (``options = GanOptions``, in ``edgegan.term_options``), and ``DistillConfig`` and
``edgegan distill`` take them from the registry. A recipe is a list of (term, weight), given
as ``pixel:1,feature:1,gan:0.01``; the named recipes in ``RECIPES`` keep the paper's one-word forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from edgegan.errors import ConfigError, TeacherError
from edgegan.registry import Registry
from edgegan.term_options import FeatureOptions, GanOptions, PixelOptions

if TYPE_CHECKING:  # torch stays out of `edgegan --help`
    import torch

    from edgegan.stages import StagePairs


# ------------------------------------------------------------------------------ recipes


@dataclass(frozen=True)
class TermSpec:
    name: str
    weight: float


def parse_terms(spec: str) -> tuple[TermSpec, ...]:
    """``"pixel:1,feature:0.5,gan:0.01"`` -> TermSpecs; a one-line ConfigError for anything else."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"--terms must look like 'pixel:1,gan:0.01', got {spec!r}")
    out: list[TermSpec] = []
    for part in spec.split(","):
        name, sep, w = part.strip().partition(":")
        name = name.strip()
        TERMS.get(name)  # UnknownNameError (a ConfigError) with the closest match
        try:
            weight = float(w) if sep else 1.0
        except ValueError:
            raise ConfigError(f"--terms: weight of {name!r} must be a number, got {w!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"--terms: weight of {name!r} must be a finite number >= 0, got {w!r}")
        if any(t.name == name for t in out):
            raise ConfigError(f"--terms: {name!r} is given twice")
        out.append(TermSpec(name, weight))
    if not any(t.name in ("pixel", "feature", "perceptual") and t.weight > 0 for t in out):
        # A GAN term alone trains a GAN from scratch; that is the baseline, not distillation.
        raise ConfigError("--terms needs a term that matches the teacher (pixel, feature or perceptual) with weight > 0")
    return tuple(out)


def format_terms(terms: tuple[TermSpec, ...]) -> str:
    return ",".join(f"{t.name}:{t.weight:g}" for t in terms)


@dataclass(frozen=True)
class Recipe:
    """A named recipe: its terms and the options it sets (applied where the user left the default)."""

    terms: str  # "{lam}" stands for the config's lam (the paper's λ)
    description: str
    options: dict[str, Any] = field(default_factory=dict)


RECIPES: Registry[Recipe] = Registry("distillation recipe")
RECIPES.add("mse", Recipe("pixel:1", "the paper's pixel MSE, L = ||S(z) - T(z)||²"))
RECIPES.add("joint", Recipe("pixel:1,gan:{lam}", "the paper's joint loss, L = MSE + λ·GAN (λ = --lam)"))
# Chosen on MNIST (d=64 teacher -> d=2 student), in short side-by-side runs before the recorded table
# (bench/results/distill-recipes.md): the GAN term at the paper's 0.01 keeps strokes crisp, and a small
# feature term (0.1; at 1 the 32x-wider teacher stages dominated and greyed the images) gives the tiny
# student the teacher's intermediate structure. EMA and a cosine schedule hurt at these run lengths
# (a few thousand steps): they stay options, off here.
RECIPES.add("best", Recipe("pixel:1,feature:0.1,gan:0.01",
                           "the joint loss plus the teacher's intermediate stages through 1x1 adaptors (weight 0.1)"))
# For a foreign teacher without its data (issue 19; bench/results/face64.md, face64 teacher, d=2):
# - pixel MSE alone: the data-free GAN term (hinge, spectral norm, warm start 250, EMA, lambda 0.003)
#   measured worse (SSIM 0.356 vs 0.427, checkerboard texture in the grid); it stays an option
#   (--terms pixel:1,gan:0.003 --gan-loss hinge --d-sn ...), not the recipe;
# - the flat width profile: at the same size (63.7 k parameters, 56:1) it beat the paper's profile with
#   min width 8 in 12,000-step runs (higher PSNR and SSIM, no dotted grid texture, more of the teacher's
#   colours); min width 8 stays for students the flat profile leaves narrower;
# - a pool of 65,536 latents whose teacher outputs are computed once (3.2 GB at 64x64 RGB; capped to
#   what fits in POOL_MAX_BYTES for larger teachers): the teacher's forward was most of a fresh-z step.
#   The earlier pool of 8,192 overfitted by 12,000 steps (1.3 dB under fresh z).
RECIPES.add("blackbox", Recipe("pixel:1",
                               "pixel MSE for a foreign teacher without data: a flat-profile student and a pool of "
                               "65,536 latents (teacher outputs cached)",
                               {"latent_pool": 65536, "min_width": 8, "width_profile": "flat"}))


# ------------------------------------------------------------------------------ the terms


@dataclass
class Step:
    """What the distiller computed this step, for the terms to read."""

    z: "torch.Tensor"
    student: "torch.Tensor"  # S(z), with grad
    teacher: "torch.Tensor"  # T(z), no grad
    student_features: list  # per paired stage (with grad), when a term asked for them
    teacher_features: list  # per paired stage (no grad)
    labels: "torch.Tensor | None" = None  # a conditional run's class of each z (int64), else None
    inputs: "torch.Tensor | None" = None  # an image-to-image run's inputs (``z`` is them too; issue 21)
    truth: "torch.Tensor | None" = None  # their ground truth, when the GAN term takes the dataset as real

    @property
    def label_args(self) -> tuple:
        """What a conditional discriminator takes after its image: (labels,) for a class-conditional run,
        (inputs,) for an image-to-image one (a pix2pix discriminator sees the pair), else ()."""
        if self.inputs is not None:
            return (self.inputs,)
        return () if self.labels is None else (self.labels,)


@dataclass
class Context:
    """What a term may build itself from (passed once, at set-up)."""

    config: Any  # DistillConfig
    teacher: Any  # edgegan.sources.GeneratorSource
    student: "torch.nn.Module"
    device: "torch.device"
    rng: "torch.Generator"
    real: Callable[[int], tuple] | None  # (real images, their labels or None), when the recipe needs data
    stages: "StagePairs | None"  # paired feature stages (edgegan.stages), when a term needs them
    labels: Any = None  # a conditional run's edgegan.labels.Labels (its discriminators are conditional too)
    student_args: dict | None = None  # an image-to-image student's family args: its discriminator is built from them


class Term:
    """Base class. ``loss`` returns the student-side loss; ``before_student`` runs first (a
    discriminator's own update); ``parameters`` are trained with the student (adaptors);
    ``modules``/``optimizers`` are saved in checkpoints. ``options``: the term's options, a frozen
    keyword-only dataclass whose fields ``DistillConfig`` inherits (None: it has none)."""

    name = ""
    needs_real = False
    needs_features = False
    options: type | None = None

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def at(self, step: int) -> None:
        """Called with the distiller's step (1-based) before each step: a term with a schedule reads it."""

    def before_student(self, step: Step) -> dict[str, float]:
        return {}

    def loss(self, step: Step) -> "torch.Tensor":  # pragma: no cover - interface
        raise NotImplementedError

    def parameters(self) -> list:
        return []

    def modules(self) -> dict[str, "torch.nn.Module"]:
        return {}

    def optimizers(self) -> dict[str, "torch.optim.Optimizer"]:
        return {}

    def distribute(self, wrap: Callable[["torch.nn.Module"], "torch.nn.Module"]) -> None:
        """Train the networks this term updates with its own optimiser through ``wrap(module)``
        (DistributedDataParallel under torchrun, ``edgegan.distributed``); ``modules`` still returns the
        unwrapped ones for checkpoints. Default: none (``parameters`` are wrapped with the student's)."""


TERMS: Registry[type[Term]] = Registry("loss term")


class PixelTerm(Term):
    name = "pixel"
    options = PixelOptions

    def loss(self, step: Step) -> "torch.Tensor":
        import torch.nn.functional as F

        fn = F.l1_loss if self.ctx.config.pixel_loss == "l1" else F.mse_loss
        return fn(step.student, step.teacher)


class GanTerm(Term):
    """A discriminator on real images against the student's; its own Adam (``d_lr``, ``d_beta1``).

    Real images are the dataset's (``ctx.real``) or, with no dataset (``--gan-real teacher``, the
    default for a teacher that records none), the teacher's own T(z) for the same z: black-box
    distillation as in TinyGAN (Chang & Lu 2020), which needs no training data. The stabilisers the
    GAN literature uses are options: hinge or relativistic loss, spectral norm on D (``d_sn``), a
    weaker D (``d_disc``), its own lr (``d_lr``), and a warm start on the other terms alone
    (``gan_start`` steps, during which D neither trains nor is consulted; issue 19). For a conditional
    teacher D is a projection discriminator: real images with their labels (the dataset's, or the
    step's for the teacher's images), the student's with the step's (issue 20)."""

    name = "gan"
    needs_real = True
    options = GanOptions

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        import torch

        from edgegan.models import build_discriminator, choose_family, student_args

        cfg = ctx.config
        if ctx.student_args is not None:  # image-to-image: a PatchGAN on (output, input) pairs (pix2pix)
            self.D = build_discriminator(cfg.family, **{**ctx.student_args, "d_disc": cfg.d_disc}).to(ctx.device)
        else:
            C, H, W = ctx.teacher.output_shape
            family = choose_family(cfg.family, cfg.d, (C, H, W), ctx.teacher.latent_dim)
            k = {"num_classes": ctx.labels.num_classes} if ctx.labels is not None else {}
            self.D = build_discriminator(family, **student_args(family, cfg.d, (C, H, W), ctx.teacher.latent_dim,
                                                                d_disc=cfg.d_disc, **k)).to(ctx.device)
        if getattr(cfg, "d_sn", False):
            _spectral_norm(self.D)
        self.opt = torch.optim.Adam(self.D.parameters(), lr=cfg.d_lr, betas=(cfg.d_beta1, 0.999))
        self.D_run = self.D  # what the steps call: D itself, or D wrapped for data-parallel training
        self.start = int(getattr(cfg, "gan_start", 0) or 0)
        self.step_no: int | None = None  # the distiller's step, set by ``at`` (None: not scheduled, always on)

    def at(self, step: int) -> None:
        self.step_no = step

    @property
    def active(self) -> bool:
        return self.step_no is None or self.step_no > self.start

    def distribute(self, wrap):
        self.D_run = wrap(self.D)

    def _real(self, step: Step) -> tuple:
        """(real images, then their labels when conditional): D's positional arguments. An image-to-image
        run's real pairs share the step's inputs: (ground truth or the teacher's output, inputs)."""
        if step.inputs is not None:
            return (step.truth if step.truth is not None else step.teacher, step.inputs)
        if self.ctx.real is None:
            return (step.teacher, *step.label_args)
        x, y = self.ctx.real(len(step.z))
        return (x,) if self.ctx.labels is None else (x, y)

    def before_student(self, step: Step) -> dict[str, float]:
        import torch.nn.functional as F

        if not self.active:
            return {}
        real = self._real(step)
        d_real, d_fake = self.D_run(*real), self.D_run(step.student.detach(), *step.label_args)
        kind = self.ctx.config.gan_loss
        if kind == "hinge":
            loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        elif kind == "relativistic":  # RpGAN: real more realistic than fake, pair by pair
            loss_d = F.softplus(-(d_real - d_fake)).mean()
        else:
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()  # BCE with logits, real 1 / fake 0
        self.opt.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt.step()
        return {"loss_d": loss_d.item()}

    def loss(self, step: Step) -> "torch.Tensor":
        import torch
        import torch.nn.functional as F

        if not self.active:
            return step.student.sum() * 0.0  # keeps the recipe's columns; no gradient
        d_fake = self.D_run(step.student, *step.label_args)
        kind = self.ctx.config.gan_loss
        if kind == "hinge":
            return -d_fake.mean()
        if kind == "relativistic":
            with torch.no_grad():
                d_real = self.D_run(*self._real(step))
            return F.softplus(-(d_fake - d_real)).mean()
        return F.softplus(-d_fake).mean()

    def modules(self):
        return {"discriminator": self.D}

    def optimizers(self):
        return {"opt_discriminator": self.opt}


def _spectral_norm(D: "torch.nn.Module") -> None:
    """Spectral norm on every convolution and linear layer of ``D`` (Miyato et al. 2018), in place."""
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm

    for name, m in list(D.named_modules()):
        for cname, child in list(m.named_children()):
            if isinstance(child, (nn.Conv2d, nn.Linear)):
                setattr(m, cname, spectral_norm(child))


class FeatureTerm(Term):
    """MSE between each teacher stage and a 1x1 conv of the matching student stage (GAN Compression)."""

    name = "feature"
    needs_features = True
    options = FeatureOptions

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        from torch import nn

        assert ctx.stages is not None
        self.adaptors = nn.ModuleList(
            nn.Conv2d(cs, ct, 1) for cs, ct in zip(ctx.stages.student_channels, ctx.stages.teacher_channels)
        ).to(ctx.device)

    def loss(self, step: Step) -> "torch.Tensor":
        import torch.nn.functional as F

        terms = [F.mse_loss(a(s), t) for a, s, t in zip(self.adaptors, step.student_features, step.teacher_features)]
        return sum(terms) / len(terms)

    def parameters(self):
        return list(self.adaptors.parameters())

    def modules(self):
        return {"adaptors": self.adaptors}


class PerceptualTerm(Term):
    """Mean over the layers of a frozen network of the MSE between its activations for S(z) and T(z).

    The network is the teacher run's discriminator, trained with the teacher on the real data: it
    knows what strokes and edges the data has, needs no labels (CelebA too), and is not the domain
    classifier the bench scores with, so that classifier's FID stays an independent judge."""

    name = "perceptual"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        from torch import nn

        self.net = _teacher_discriminator(ctx).to(ctx.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.layers = [m for m in self.net.modules() if isinstance(m, nn.LeakyReLU)]

    def _features(self, x, label_args: tuple = ()):
        feats: list = []
        hooks = [m.register_forward_hook(lambda _m, _i, o: feats.append(o)) for m in self.layers]
        try:
            self.net(x, *label_args)
        finally:
            for h in hooks:
                h.remove()
        return feats

    def loss(self, step: Step) -> "torch.Tensor":
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            want = self._features(step.teacher, step.label_args)
        got = self._features(step.student, step.label_args)
        return sum(F.mse_loss(g, w) for g, w in zip(got, want)) / len(got)


for _t in (PixelTerm, GanTerm, FeatureTerm, PerceptualTerm):
    TERMS.add(_t.name, _t)


def _teacher_discriminator(ctx: Context):
    """The discriminator saved beside an edgegan teacher run; refused with the reason otherwise."""
    from edgegan.checkpoint import load_tensors
    from edgegan.models import build_discriminator

    t = ctx.teacher
    why = f"the perceptual term uses the teacher run's discriminator; a {t.kind} teacher has none"
    if t.kind != "edgegan":
        raise TeacherError(f"{t.spec}: {why} (use pixel, feature or gan)")
    m = t.manifest
    entry = m.get("discriminator")
    if not entry:
        raise TeacherError(f"{t.spec}: {why} (this run has no discriminator.safetensors)")
    D = build_discriminator(m["model"]["family"], **m["model"]["args"])
    from edgegan.safedir import inside

    D.load_state_dict(load_tensors(inside(t.spec, entry["path"], "discriminator", TeacherError)))
    return D
