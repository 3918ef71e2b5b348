"""Quantization-aware fine-tuning: train through the rounding a static int8 file will do (issues 21, 22).

Post-training int8 costs an image-to-image student more than its distance to the teacher can spare: a
``mobile_i2i`` sr2x student loses 0.9 dB against the ground truth in its TFLite int8 file, most of it in
the per-tensor activation grids of its residual stream and depthwise layers
(``bench/results/image2image.md``). The last steps of a distillation can instead run the student with every tensor that the
int8 file stores rounded as the file will round it, the gradient passed straight through the rounding
(Bengio et al. 2013; Jacob et al. 2018), so the weights settle where the grid hurts least. The float
weights are still what is saved and exported; the exporter's calibration sets the file's own ranges.

Which tensors the file stores, for the networks edgegan builds (BatchNorm folded, the activation fused
into its convolution, as litert-torch does):

* the input image (one grid over its range);
* every activation's output (ReLU, LeakyReLU, ReLU6: the fused convolution's output);
* every residual block's sum, and the last layer of its body (the convolution feeding the sum);
* the Tanh head, on TFLite's fixed int8 grid for tanh (scale 1/128, zero point 0).

Each grid is asymmetric, 256 levels over [min(lo, 0), max(hi, 0)], with lo and hi a moving average of
the batches' extremes (momentum ``MOMENTUM``, the ai-edge-quantizer's own merge of calibration batches).
Weights are not rounded here: they are quantized per output channel in the file, a smaller error than the
activations' (measured on a quick sr2x student: its activations rounded alone, in torch, gave 37.9 dB PSNR
against the float output, the int8 file 36.8 dB). Measured effect, and its limit (the growing residual
stream's clipping, which these grids do not remove): ``bench/results/image2image.md``.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

MOMENTUM = 0.95  # the moving average of the batches' ranges (ai-edge-quantizer's 0.95 old + 0.05 new)
LEVELS = 256
# The fine-tuning's learning rate is LR_FACTOR x --lr, constant (the float steps' schedule, cosine or not, spans
# the float steps alone, so a run continued with --resume --steps S+N --quant-aware N keeps its schedule).
LR_FACTOR = 0.1
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)


class _Grid:
    """One tensor's int8 grid: a moving range in training, frozen in eval."""

    def __init__(self, fixed: tuple[float, float] | None = None):
        self.lo, self.hi = fixed if fixed is not None else (None, None)
        self.fixed = fixed is not None

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if not self.fixed and training:
            lo, hi = float(x.detach().min()), float(x.detach().max())
            if self.lo is None:
                self.lo, self.hi = lo, hi
            else:
                self.lo = MOMENTUM * self.lo + (1 - MOMENTUM) * lo
                self.hi = MOMENTUM * self.hi + (1 - MOMENTUM) * hi
        if self.lo is None:
            return x
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        if hi - lo <= 0:
            return x
        step = (hi - lo) / (LEVELS - 1)
        q = torch.clamp(torch.round((x - lo) / step), 0, LEVELS - 1) * step + lo
        return x + (q - x).detach()  # straight-through: the rounding's gradient is taken as 1

    def describe(self) -> dict[str, float | None]:
        return {"lo": None if self.lo is None else round(self.lo, 6), "hi": None if self.hi is None else round(self.hi, 6)}


def quant_points(model: nn.Module) -> Iterator[tuple[str, nn.Module, tuple[float, float] | None]]:
    """(name, module, fixed range or None) for each module whose output the int8 file stores."""
    from edgegan.models.i2i import ResBlock

    for name, m in model.named_modules():
        if isinstance(m, _ACTIVATIONS):
            yield name, m, None
        elif isinstance(m, nn.Tanh):
            yield name, m, (-1.0, 127 / 128)  # TFLite's int8 tanh: scale 1/128, zero point 0
        elif isinstance(m, ResBlock):
            yield name, m, None
            last = [c for c in m.body.children() if not isinstance(c, nn.Identity)]
            if last and not isinstance(last[-1], _ACTIVATIONS):
                yield f"{name}.body.{len(list(m.body.children())) - 1}", list(m.body.children())[-1], None


class QuantAware:
    """Hooks that round ``model``'s stored tensors to int8 grids while installed (``with QuantAware(m):``).
    In-place activations are fine: the hooks replace a module's output, they do not modify it."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.grids: dict[str, _Grid] = {}
        self._hooks: list = []

    @property
    def installed(self) -> bool:
        return bool(self._hooks)

    def install(self) -> "QuantAware":
        if self._hooks:
            return self
        model = self.model
        self.grids.setdefault("input", _Grid())
        inp = self.grids["input"]
        self._hooks.append(model.register_forward_pre_hook(lambda m, args: (inp(args[0], m.training), *args[1:])))
        for name, m, fixed in quant_points(model):
            g = self.grids.setdefault(name, _Grid(fixed))
            self._hooks.append(m.register_forward_hook(lambda mod, a, out, g=g: g(out, model.training)))
        return self

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __enter__(self) -> "QuantAware":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.remove()

    def describe(self) -> dict[str, dict[str, float | None]]:
        return {k: g.describe() for k, g in self.grids.items()}


class QuantAwareSteps:
    """A distillation's quantization-aware tail (``--quant-aware N``): the learning rate of each step, the hooks
    installed from step ``steps - N + 1`` on, and the manifest's record. One place for both distillers."""

    def __init__(self, student: nn.Module, cfg, schedule: str):
        from dataclasses import replace

        self.n = int(cfg.quant_aware)
        self.start = cfg.steps - self.n  # steps after this one train through the int8 rounding
        self.cfg, self.schedule = cfg, schedule
        self.float_cfg = replace(cfg, steps=self.start)  # the schedule spans the float steps alone
        self.hooks = QuantAware(student)

    def lr(self, step: int) -> float:
        """Step ``step``'s learning rate, installing the hooks when the quantization-aware steps begin."""
        from edgegan.distill_config import lr_at

        if self.n and step > self.start and not self.hooks.installed:
            import logging

            self.hooks.install()
            logging.getLogger("edgegan.distill").info(
                "quantization-aware from step %d: %d stored tensors rounded to int8 grids", step, len(self.hooks.grids))
        return self.cfg.lr * LR_FACTOR if self.hooks.installed else lr_at(step, self.float_cfg, self.schedule)

    def remove(self) -> None:
        self.hooks.remove()

    def record(self) -> dict | None:
        if not self.n:
            return None
        return {"steps": self.n, "from_step": self.start + 1, "lr_factor": LR_FACTOR, "grids": self.hooks.describe()}
