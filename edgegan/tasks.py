"""Image-to-image tasks (issue 21): how a task makes a generator's input from a dataset's images.

A task is a named transform from ground-truth images x (N, C, H, W) in [-1, 1] to the generator's
input (N, C_in, H / s, W / s) in [-1, 1], the same for teacher training, distillation, export
calibration and the bench, so every stage sees the inputs a deployed model will be fed:

========== ============================================================================ ======== ====
task       input                                                                        C_in     s
========== ============================================================================ ======== ====
sr2x       the image downscaled 2x, bicubic with antialiasing (PIL's / MATLAB's imresize) C        2
sr4x       the same, 4x                                                                 C        4
colorize   the image's luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601)              1        1
inpaint    the image with a square hole (side H/2, placed at random) set to 0, and the  C + 1    1
           mask as one more channel (+1 in the hole, -1 elsewhere)
none       the image as it is (a translation whose input is given, e.g. a stylisation)  C        1
========== ============================================================================ ======== ====

Every task but ``none`` has a ground truth: the image the input was made from. Random parts
(inpaint's hole) come from a ``torch.Generator``, so an evaluation set is the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from edgegan.errors import ConfigError
from edgegan.registry import Registry

if TYPE_CHECKING:
    import torch

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    scale: int  # output side / input side
    extra_channels: int = 0  # input channels beyond the output's (inpaint's mask)
    grey_input: bool = False  # the input is one channel whatever the output has (colorize)
    ground_truth: bool = True  # the image the input was made from is the target
    random: bool = False  # the input depends on random draws (inpaint's hole), not on the image alone
    make: Callable | None = None  # (x, generator) -> input

    def in_channels(self, out_channels: int) -> int:
        return 1 if self.grey_input else out_channels + self.extra_channels

    def input_shape(self, out_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """(C_in, h, w) of the input that makes an output of ``out_shape`` (C, H, W)."""
        c, h, w = out_shape
        self.check_output(out_shape)
        return self.in_channels(c), h // self.scale, w // self.scale

    def output_shape(self, in_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """(C, H, W) made from an input of ``in_shape`` (C_in, h, w)."""
        c, h, w = in_shape
        if self.grey_input:
            if c != 1:
                raise ConfigError(f"task {self.name}: the input is one grey channel, got {c} channels")
            out_c = 3
        else:
            out_c = c - self.extra_channels
            if out_c < 1:
                raise ConfigError(f"task {self.name}: the input needs more than {self.extra_channels} channels")
        return out_c, h * self.scale, w * self.scale

    def check_output(self, out_shape: tuple[int, int, int]) -> None:
        c, h, w = out_shape
        if self.grey_input and c != 3:
            raise ConfigError(f"task {self.name} colours grey images: the output must have 3 channels, not {c}")
        if h % self.scale or w % self.scale:
            raise ConfigError(f"task {self.name}: the image side must be a multiple of {self.scale}, got {h}x{w}")
        if min(h, w) // self.scale < 4:
            raise ConfigError(f"task {self.name}: {h}x{w} images give inputs under 4 pixels a side")

    def input(self, x: "torch.Tensor", generator: "torch.Generator | None" = None) -> "torch.Tensor":
        """The generator's input for ground-truth images ``x`` (N, C, H, W) in [-1, 1]."""
        if x.dim() != 4:
            raise ConfigError(f"task {self.name}: images must be (N, C, H, W), got {tuple(x.shape)}")
        self.check_output(tuple(x.shape[1:]))
        return self.make(x, generator) if self.make is not None else x


def _downscale(s: int):
    def make(x, generator=None):
        import torch.nn.functional as F

        h, w = x.shape[2] // s, x.shape[3] // s
        return F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)

    return make


def _luma(x, generator=None):
    import torch

    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _hole(x, generator=None):
    """A square hole of side H/2 (and W/2) per image, at a uniform position, zeroed; the mask as a channel."""
    import torch

    n, _, h, w = x.shape
    hh, hw = h // 2, w // 2
    top = torch.randint(0, h - hh + 1, (n,), generator=generator)
    left = torch.randint(0, w - hw + 1, (n,), generator=generator)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    hole = ((rows >= top.view(n, 1, 1)) & (rows < (top + hh).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1)) & (cols < (left + hw).view(n, 1, 1))).unsqueeze(1).to(x.device)
    masked = torch.where(hole, torch.zeros_like(x), x)
    return torch.cat([masked, hole.to(x.dtype) * 2 - 1], 1)


TASKS: Registry[Task] = Registry("image-to-image task")
TASKS.add("sr2x", Task("sr2x", "super-resolution 2x: the input is the image downscaled 2x (bicubic)", 2,
                       make=_downscale(2)))
TASKS.add("sr4x", Task("sr4x", "super-resolution 4x: the input is the image downscaled 4x (bicubic)", 4,
                       make=_downscale(4)))
TASKS.add("colorize", Task("colorize", "colourisation: the input is the image's luma (one grey channel)", 1,
                           grey_input=True, make=_luma))
TASKS.add("inpaint", Task("inpaint", "inpainting: a square hole of half the side zeroed, the mask as a channel", 1,
                          extra_channels=1, random=True, make=_hole))
TASKS.add("none", Task("none", "the images as they are (the input is given; no ground truth)", 1,
                       ground_truth=False))


def get_task(name: str) -> Task:
    return TASKS.get(name)


def task_names() -> list[str]:
    return TASKS.names()
