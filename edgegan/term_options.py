"""The options of the loss terms (``edgegan.terms``): one small frozen dataclass per term that has any.

A term names its class (``GanTerm.options = GanOptions``), and ``DistillConfig`` inherits the classes of
every term in ``edgegan.terms.TERMS`` (``edgegan.distill_config``), so an option declared here is a
field of the config, an ``edgegan distill`` option with this default, help, choices and bounds, a key
of the manifest's recorded config, and validated with the rest, without another edit. Terms read
their options from the config (``ctx.config.gan_loss``).

The classes are keyword-only: inherited fields follow the config's own, so a positional field of an
option class could not come after them (and none should be passed positionally). Help is
``opt(default, "help")`` or a trailing comment on the field's line (read from this source). They live
here, not beside each term, to keep ``terms.py`` within the house's ~400 lines. Cheap: stdlib and
``edgegan.config`` only (``edgegan distill --help`` imports this without torch).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgegan.config import BETA, DEPTH, EVERY, LEARNING_RATE, opt

PIXEL_LOSSES = ("mse", "l1")
GAN_LOSSES = ("nonsat", "hinge", "relativistic")
GAN_REALS = ("auto", "teacher", "dataset")  # what the GAN term's discriminator takes as real (issue 19)


@dataclass(frozen=True, kw_only=True)
class PixelOptions:
    """``pixel``: S(z) to T(z)."""

    pixel_loss: str = opt("mse", "pixel term's distance", choices=PIXEL_LOSSES)


@dataclass(frozen=True, kw_only=True)
class GanOptions:
    """``gan``: the discriminator, its loss, its real images, its optimiser and its warm start."""

    gan_loss: str = opt("nonsat", "GAN term's loss: non-saturating BCE, hinge, or relativistic (D(T(z)) - D(S(z)) for "
                        "the same z, RpGAN)", choices=GAN_LOSSES)
    gan_real: str = opt("auto", "the GAN term's real images: teacher (T(z), no data needed: black-box distillation as in "
                        "TinyGAN), dataset (--dataset), auto: the dataset when one is given or recorded, else the teacher",
                        choices=GAN_REALS)
    gan_start: int = opt(0, "steps of the other terms alone before the GAN term starts (a warm start)", bounds=EVERY)
    d_sn: bool = opt(False, "spectral norm on the discriminator's convolutions (Miyato et al. 2018)")
    d_disc: int = opt(16, "depth factor of the GAN term's discriminator", bounds=DEPTH)
    d_lr: float = opt(2e-4, "discriminator's Adam learning rate", bounds=LEARNING_RATE)
    d_beta1: float = opt(0.5, "discriminator's Adam β1", bounds=BETA)


@dataclass(frozen=True, kw_only=True)
class FeatureOptions:
    """``feature``: which stages pair, where they cannot be paired by resolution."""

    feature_layers: str | None = None  # feature term for non-dcgan teachers: teacher_module=student_module,...
