"""Torch-side rewrites that make a generator convertible, done before any converter sees it.

All rewrites are exact in real arithmetic; the parity check afterwards compares the converted file
with the *original* module, so any float rounding they introduce is measured, not assumed away.

* ``fold_batchnorm``: an eval-mode BatchNorm that directly follows a convolution (or Linear) inside
  an ``nn.Sequential`` is folded into that layer's weight and bias. LiteRT static-int8 files with
  unfolded BatchNorm do not load (measured with litert-torch / ai-edge-quantizer 0.10: a quantized
  constant keeps its float32 bytes, which the runtime's verifier rejects), and folding removes one
  op per layer for every format.
* ``rewrite_transposed_convs``: litert-torch 0.10 legalises ``ConvTranspose2d`` only when its padding
  maps to TFLite's VALID or SAME (k4/s2/p1, k4/s1/p0); kernel 3 with padding, or any
  ``output_padding``, fails to legalise. Such layers become a padding-0 transposed convolution
  followed by a crop (and, when ``output_padding`` exceeds ``padding``, a zero pad plus bias).
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
import torch.nn.functional as F

from edgegan.errors import ExportError

log = logging.getLogger(__name__)

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class LatentToImage(nn.Module):
    """The model-file contract: float32 z (B, latent_dim) → float32 images (B, C, H, W)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z).float()


class ImageToImage(nn.Module):
    """The image-to-image file contract (issue 21): float32 images → float32 images, both in [-1, 1]; NCHW, or
    NHWC (``channels_last``: TFLite's own layout, so the converted file needs no transposes) on both sides.
    Its one child is ``generator``, as ``LatentToImage``'s, so layers keep their names (``net.3``)."""

    def __init__(self, generator: nn.Module, channels_last: bool = False):
        super().__init__()
        self.generator = generator
        self.channels_last = channels_last

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return self.generator(image.permute(0, 3, 1, 2)).float().permute(0, 2, 3, 1)
        return self.generator(image).float()


class FlatLatent(nn.Module):
    """A generator that takes z (B, L, 1, 1) (the PyTorch DCGAN example's) as one that takes (B, L): every
    exported file takes (B, L), whatever the module did (issue 10)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z.reshape(z.shape[0], -1, 1, 1))


def prepare_for_export(module: nn.Module, *, rewrite_convt: bool = False,
                       latent_dim: int | None = None, image_layout: str | None = None) -> tuple[nn.Module, dict[str, int]]:
    """A deep copy of ``module`` in eval mode, BatchNorm folded (ConvTs rewritten if asked), wrapped
    as ``LatentToImage``; plus what was done, for the manifest. A conditional generator (its
    ``num_classes``; z of ``latent_dim``, default its own) is wrapped as ``labels.LabelledToImage``, its first
    layer split in two so that the one-hot label stays exact in int8 (issue 20). An image-to-image generator
    (``image_layout`` "NCHW" or "NHWC", issue 21) is wrapped as ``ImageToImage`` in that layout."""
    m = copy.deepcopy(module).float().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    done = {"batchnorm_folded": fold_batchnorm(m)}
    left = [name for name, sub in m.named_modules() if isinstance(sub, _BN)]
    if left:
        # Not an error: ONNX and float TFLite run BatchNorm fine; the parity check judges the rest.
        log.warning("BatchNorm layers not directly after a convolution in an nn.Sequential stay unfolded: %s",
                    ", ".join(left))
    done["batchnorm_unfolded"] = len(left)
    wrapped = LatentToImage(m) if image_layout is None else ImageToImage(m, channels_last=image_layout == "NHWC")
    if image_layout is None and getattr(m, "num_classes", None):
        from edgegan.export.labels import LabelledToImage

        wrapped = LabelledToImage(m, latent_dim if latent_dim is not None else m.latent_dim)
        done["label_layer_split"] = 1
    if rewrite_convt:
        done["convtranspose_rewritten"] = rewrite_transposed_convs(wrapped)
        if done["convtranspose_rewritten"]:
            log.info("rewrote %d transposed convolution(s) as padding 0 + crop for the TFLite converter",
                     done["convtranspose_rewritten"])
    return wrapped.eval(), done


# --------------------------------------------------------------------------------------- folding

def fold_batchnorm(module: nn.Module) -> int:
    """Fold every (conv | linear, BatchNorm) pair of consecutive children of an ``nn.Sequential``.

    The BatchNorm is replaced by ``nn.Identity`` so indices (and state-dict keys of other layers)
    stay put. Returns the number of folded pairs. The module must be in eval mode.
    """
    count = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            layer, bn = seq._modules[a], seq._modules[b]
            if isinstance(layer, _FOLDABLE) and isinstance(bn, _BN) and bn.track_running_stats \
                    and bn.running_mean is not None:
                seq._modules[a] = fuse_layer_bn(layer, bn)
                seq._modules[b] = nn.Identity()
                count += 1
    return count


def fuse_layer_bn(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """``layer`` followed by eval-mode ``bn`` as one layer: w' = w·γ/σ, b' = (b − μ)·γ/σ + β."""
    fused = copy.deepcopy(layer)
    with torch.no_grad():
        w = layer.weight.double()
        std = torch.sqrt(bn.running_var.double() + bn.eps)
        gamma = bn.weight.double() if bn.affine else torch.ones_like(std)
        beta = bn.bias.double() if bn.affine else torch.zeros_like(std)
        scale = gamma / std
        bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(std)
        if isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            # weight is (in, out/groups, k...): output channel o = g*(out/groups) + j.
            g = layer.groups
            cin, cpg = w.shape[0], w.shape[1]
            shape = (g, cin // g, cpg, *w.shape[2:])
            s = scale.reshape(g, 1, cpg, *([1] * (w.dim() - 2)))
            new_w = (w.reshape(shape) * s).reshape(w.shape)
        else:
            new_w = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
        new_b = (bias - bn.running_mean.double()) * scale + beta
        fused.weight = nn.Parameter(new_w.to(layer.weight.dtype), requires_grad=False)
        fused.bias = nn.Parameter(new_b.to(layer.weight.dtype), requires_grad=False)
    return fused


# ------------------------------------------------------------------------- transposed-conv rewrite

def convt_is_native(conv: nn.ConvTranspose2d) -> bool:
    """Whether litert-torch legalises this ConvTranspose2d as is (TFLite VALID or symmetric SAME)."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    if any(conv.output_padding) or conv.dilation != (1, 1) or isinstance(conv.padding, str):
        return False
    valid = ph == 0 and pw == 0
    same = kh - sh == 2 * ph and kw - sw == 2 * pw
    return valid or same


class CroppedConvTranspose2d(nn.Module):
    """``ConvTranspose2d(k, s, p, output_padding=op)`` as ``ConvTranspose2d(k, s, 0)`` + crop.

    The padding-0 output has size (H−1)s + d(k−1) + 1; the requested one starts ``p`` rows in and is
    (H−1)s − 2p + d(k−1) + op + 1 long. Rows past the padding-0 output (op > p) only ever receive the
    bias, so they are zero-padded before the bias is added.
    """

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        if isinstance(conv.padding, str):
            raise ExportError(f"cannot rewrite ConvTranspose2d with padding={conv.padding!r}")
        self.pad = tuple(int(p) for p in conv.padding)
        self.extra = tuple(int(o) - int(p) for o, p in zip(conv.output_padding, conv.padding))
        grows = any(e > 0 for e in self.extra)
        # The bias can stay inside the convolution unless zero rows are appended after it.
        self.conv = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                       padding=0, output_padding=0, groups=conv.groups,
                                       bias=conv.bias is not None and not grows, dilation=conv.dilation)
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight)
            if self.conv.bias is not None:
                self.conv.bias.copy_(conv.bias)
        self.bias = None
        if conv.bias is not None and grows:
            self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        (ph, pw), (eh, ew) = self.pad, self.extra
        h, w = y.shape[-2], y.shape[-1]
        y = y[..., ph:h + min(eh, 0), pw:w + min(ew, 0)]
        if eh > 0 or ew > 0:
            y = F.pad(y, (0, max(ew, 0), 0, max(eh, 0)))
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y


def rewrite_transposed_convs(module: nn.Module) -> int:
    """Replace, in place, every ConvTranspose2d the TFLite converter rejects. Returns how many."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, nn.ConvTranspose2d) and not convt_is_native(child):
                parent._modules[name] = CroppedConvTranspose2d(child)
                count += 1
    return count
