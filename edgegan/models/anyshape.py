"""The ``anyshape`` family: a DCGAN-style student for any image a teacher makes (issue 10).

``dcgan`` stays the paper's network (square 32 or 64). ``anyshape`` makes any C×H×W — non-square,
non-power-of-two (28×28), up to 512×512 — with the same building blocks and the same width factor d:

    z (N, L) → ConvT(L, w0, (h0, w0_), 1, 0) BN ReLU               a h0×w0_ seed grid
             → k × [ConvT(w_i, w_{i+1}, 4, 2, 1) BN ReLU]           each doubles H and W
             → Conv2d(d, C, 1) + bias → Tanh → crop to H×W           (a no-op when 2^k divides H and W)

k = floor(log2(min(H, W) / 4)) up-sampling stages (3 for 32×32, as dcgan; 2 for 28×28 from 7×7;
3 for 48×64 from 6×8; 6 for 256×256 from 4×4); h0 = ceil(H / 2^k), w0_ = ceil(W / 2^k). Channels
are d·2^min(j, 4) for the stage j steps before the output (8d, 4d, 2d, d at 32×32 — dcgan's widths
— capped at 16d for large images). Only ops every exporter handles: transposed convolutions in
TFLite's VALID / SAME forms, BatchNorm folded at export, a 1×1 convolution, Tanh and a slice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgegan.errors import ConfigError
from edgegan.models import FAMILIES, Family
from edgegan.models.conditional import Projection, check_num_classes, with_label
from edgegan.models.dcgan import _dcgan_init, _up

MAX_SIDE = 512
MIN_SIDE = 4


@dataclass(frozen=True)
class AnyShapeArgs:
    d: int = 2  # width factor: channels of the last hidden layer; earlier stages have 2d, 4d, 8d, 16d
    nc: int = 3  # output channels
    height: int = 32  # output height, 4..512
    width: int = 32  # output width, 4..512
    latent_dim: int = 100  # size of z
    d_disc: int | None = None  # width factor of the matching discriminator (None: same as d)
    num_classes: int | None = None  # classes of a conditional generator (models.conditional); None: unconditional

    def __post_init__(self) -> None:
        for name in ("d", "nc", "latent_dim", "height", "width"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"anyshape: {name} must be an integer >= 1, got {v!r}")
        for name in ("height", "width"):
            v = getattr(self, name)
            if not MIN_SIDE <= v <= MAX_SIDE:
                raise ConfigError(f"anyshape: {name} must be in [{MIN_SIDE}, {MAX_SIDE}], got {v}")
        if self.d_disc is not None and (not isinstance(self.d_disc, int) or self.d_disc < 1):
            raise ConfigError(f"anyshape: d_disc must be an integer >= 1, got {self.d_disc!r}")
        check_num_classes("anyshape", self.num_classes)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.nc, self.height, self.width)

    @property
    def stages(self) -> int:
        """Up-sampling stages k: the seed grid's shorter side is min(H, W) / 2^k, at least 4 (or all of it)."""
        return max(0, int(math.floor(math.log2(min(self.height, self.width) / 4))))

    @property
    def seed_grid(self) -> tuple[int, int]:
        s = 2 ** self.stages
        return -(-self.height // s), -(-self.width // s)

    def widths(self, d: int) -> list[int]:
        k = self.stages
        return [d * 2 ** min(j, 4) for j in range(k, -1, -1)]


class AnyShapeGenerator(nn.Module):
    def __init__(self, args: AnyShapeArgs):
        super().__init__()
        self.args = args
        widths = args.widths(args.d)
        h0, w0 = args.seed_grid
        layers: list[nn.Module] = [nn.ConvTranspose2d(args.latent_dim + (args.num_classes or 0), widths[0], (h0, w0), 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        for cin, cout in zip(widths, widths[1:]):
            layers += _up(cin, cout)
        layers += [nn.Conv2d(widths[-1], args.nc, 1, 1, 0, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        s = 2 ** args.stages
        self._crop = (h0 * s != args.height) or (w0 * s != args.width)
        self.apply(_dcgan_init)

    @property
    def latent_dim(self) -> int:
        return self.args.latent_dim

    @property
    def num_classes(self) -> int | None:
        return self.args.num_classes

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        y = self.net(with_label(z, label, self.args.num_classes))
        if self._crop:  # centre-crop the 2^k-aligned grid to the exact size
            H, W = self.args.height, self.args.width
            top, left = (y.shape[2] - H) // 2, (y.shape[3] - W) // 2
            y = y[:, :, top:top + H, left:left + W]
        return y


class AnyShapeDiscriminator(nn.Module):
    """Strided 4×4 convolutions down to the seed grid, then one linear logit."""

    def __init__(self, args: AnyShapeArgs):
        super().__init__()
        d = args.d_disc or args.d
        widths = list(reversed(args.widths(d)))  # d, 2d, ...
        layers: list[nn.Module] = [nn.Conv2d(args.nc, widths[0], 3, 1, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            n = self.net(torch.zeros(1, args.nc, args.height, args.width)).numel()
        self.head = nn.Linear(n, 1)
        self.apply(_dcgan_init)
        self.projection = Projection(args.num_classes, widths[-1]) if args.num_classes else None

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net(x)
        out = self.head(h.flatten(1)).squeeze(1)
        if self.projection is not None:
            return out + self.projection(h, label)
        if label is not None:
            raise ConfigError("this discriminator is unconditional; it takes no label")
        return out


FAMILIES.add(
    "anyshape",
    Family(
        name="anyshape",
        make_args=AnyShapeArgs,
        build_generator=AnyShapeGenerator,
        build_discriminator=AnyShapeDiscriminator,
        description="DCGAN-style student for any C x H x W (non-square, 28x28, up to 512x512), width factor d",
        student_args=lambda d, shape, latent_dim: {"d": d, "nc": shape[0], "height": shape[1], "width": shape[2],
                                                   "latent_dim": latent_dim},
    ),
)
