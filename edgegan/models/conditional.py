"""The class-conditional form shared by the generator families (issue 20).

A conditional generator takes z and a class label. Its label input is a float one-hot (N, K),
concatenated to z before the first layer: z (N, L) ++ onehot (N, K) -> ConvT(L + K, ...). Why
concatenation, and not class-conditional BatchNorm: BatchNorm is folded into the convolutions at
export, and a per-class scale would stay a runtime multiply on every stage; the concatenation is one
wider first layer and the exported file gains one input. In int8 the converter would requantize a
concatenated one-hot to z's scale (1 became 0.9905, issue 20), so the exporter computes that first
layer as ConvT_z(z) + ConvT_label(onehot), exact in real arithmetic (``edgegan.export.labels``), and the
one-hot keeps its own exact levels (0 and 1 at scale 1/255).

Modules take the label as an int64 index (N,) or the one-hot itself; files (ONNX, TFLite) take the
one-hot, and the runtime builds it from an index. The discriminators are projection discriminators
(Miyato & Koyama 2018): logit = head(phi(x)) + <embed(y), sum-pooled phi(x)>.
"""

from __future__ import annotations

import torch
from torch import nn

from edgegan.errors import ConfigError

MAX_CLASSES = 1000  # ImageNet's; a manifest from elsewhere must not make us allocate a huge embedding


def check_num_classes(family: str, k) -> None:
    if k is None:
        return
    if not isinstance(k, int) or isinstance(k, bool) or not 2 <= k <= MAX_CLASSES:
        raise ConfigError(f"{family}: num_classes must be an integer in [2, {MAX_CLASSES}] (or None: unconditional), "
                          f"got {k!r}")


def one_hot(label: torch.Tensor | None, k: int | None, n: int) -> torch.Tensor | None:
    """The float one-hot (n, k) of ``label`` (an integer index (n,) or a one-hot (n, k)); None when
    unconditional. A label given to an unconditional module, or none to a conditional one, is a
    ConfigError; so is an index outside [0, k)."""
    if k is None:
        if label is not None:
            raise ConfigError("this generator is unconditional; it takes no label")
        return None
    if label is None:
        raise ConfigError(f"this generator is conditional on {k} classes; give a label in [0, {k})")
    if label.dim() == 2 and label.is_floating_point():
        if label.shape != (n, k):
            raise ConfigError(f"one-hot label of shape {tuple(label.shape)}; expected ({n}, {k})")
        return label
    if label.dim() != 1 or label.shape[0] != n or label.is_floating_point() or label.dtype == torch.bool:
        raise ConfigError(f"label must be an integer index ({n},) or a float one-hot ({n}, {k}); "
                          f"got {label.dtype} {tuple(label.shape)}")
    tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()  # no data-dependent check in a graph
    if n and not tracing and (int(label.min()) < 0 or int(label.max()) >= k):
        raise ConfigError(f"label outside [0, {k}): min {int(label.min())}, max {int(label.max())}")
    return nn.functional.one_hot(label.long(), k).float()


def with_label(z: torch.Tensor, label: torch.Tensor | None, k: int | None) -> torch.Tensor:
    """z (N, L) or (N, L, 1, 1) with the one-hot appended: (N, L + K, 1, 1); z as (N, L, 1, 1) when unconditional."""
    if z.dim() == 2:
        z = z[:, :, None, None]
    oh = one_hot(label, k, z.shape[0])
    if oh is None:
        return z
    return torch.cat([z, oh.to(z.dtype)[:, :, None, None]], 1)


class Projection(nn.Module):
    """The class term of a projection discriminator: <embed(y), sum over H, W of features>."""

    def __init__(self, k: int, channels: int):
        super().__init__()
        self.k = k
        self.embed = nn.Linear(k, channels, bias=False)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, h: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        oh = one_hot(label, self.k, h.shape[0])
        return (self.embed(oh) * h.sum((2, 3))).sum(1)
