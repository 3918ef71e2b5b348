"""The DCGAN family of Aguinaldo et al. (2019), "Compressing GANs using Knowledge Distillation".

Generator, 32x32 (the paper's, Table 1): z(100) → ConvT(100,8d,4,1,0) BN ReLU → ConvT(8d,4d,4,2,1)
BN ReLU → ConvT(4d,2d,4,2,1) BN ReLU → ConvT(2d,d,4,2,1) BN ReLU → Conv2d(d,nc,1)+bias → Tanh.
Transposed convolutions carry no bias (BatchNorm follows), so with nc=1 the parameter count is
672d² + 12831d + 1 — 28,351 at d=2 and 47,324,929 at d=256 (1669:1).

The 64x64 variant, for users' own data, starts at 16d channels and adds one up-sampling stage.

Width profiles (``profile``): ``paper`` halves the channels at every stage (16d, 8d, 4d, 2d, d at 64x64).
``flat`` keeps them nearly level (12d, 12d, 10d, 8d, 6d; 12d, 10d, 8d, 6d at 32x32): fewer channels in
the seed, whose weights are most of a small student's parameters (100 x 16 x channels), and more at high
resolution, where a face's detail is drawn. At 64x64 RGB d=2 the two have about the same size
(62-64 k parameters) and flat is the better student of a real teacher (issue 19, bench/results/face64.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgegan.errors import ConfigError
from edgegan.models import FAMILIES, Family
from edgegan.models.conditional import Projection, check_num_classes, with_label


# Multiples of d per hidden stage, seed first, for each image size. One place: the CLI's choices read it.
PROFILES: dict[str, dict[int, tuple[int, ...]]] = {
    "paper": {32: (8, 4, 2, 1), 64: (16, 8, 4, 2, 1)},
    "flat": {32: (12, 10, 8, 6), 64: (12, 12, 10, 8, 6)},
}


def profile_names() -> list[str]:
    return list(PROFILES)


@dataclass(frozen=True)
class DCGANArgs:
    d: int = 2  # depth factor: channels of the last hidden layer; the others are 2d, 4d, 8d(, 16d)
    nc: int = 1  # output channels (1 grey, 3 RGB)
    image_size: int = 32  # 32 (the paper) or 64 (one more up-sampling stage)
    latent_dim: int = 100  # size of z; the paper uses 100
    d_disc: int | None = None  # depth factor of the matching discriminator (None: same as d)
    # Narrowest hidden stage (None: the paper's widths). At 64x64 RGB a d=2 student ends in 4 and 2
    # channels at 32x32 and 64x64, a 2-D colour space per pixel; min_width=8 widens those stages for
    # ~2% more parameters (issue 19: the face64 teacher).
    min_width: int | None = None
    # Classes of a conditional generator (issue 20): a one-hot label concatenated to z (models.conditional);
    # None: unconditional.
    num_classes: int | None = None
    profile: str = "paper"  # channels per stage: one of PROFILES (the module doc says why flat exists)

    def __post_init__(self) -> None:
        from edgegan.config import DEPTH, LATENT, Bounds

        # Upper bounds too: a manifest from elsewhere must not make us allocate terabytes (issue 14).
        for name, b in (("d", DEPTH), ("nc", Bounds(1, 4)), ("latent_dim", LATENT)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not b.admits(v):
                raise ConfigError(f"dcgan: {name} must be an integer {b.describe()}, got {v!r}")
        if self.image_size not in (32, 64):
            raise ConfigError(f"dcgan: image_size must be 32 or 64, got {self.image_size!r}")
        if self.d_disc is not None and (not isinstance(self.d_disc, int) or isinstance(self.d_disc, bool)
                                        or not DEPTH.admits(self.d_disc)):
            raise ConfigError(f"dcgan: d_disc must be an integer {DEPTH.describe()}, got {self.d_disc!r}")
        if self.min_width is not None and (not isinstance(self.min_width, int) or isinstance(self.min_width, bool)
                                           or not DEPTH.admits(self.min_width)):
            raise ConfigError(f"dcgan: min_width must be an integer {DEPTH.describe()}, got {self.min_width!r}")
        check_num_classes("dcgan", self.num_classes)
        if not isinstance(self.profile, str):
            raise ConfigError(f"dcgan: profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if self.profile not in PROFILES:
            from edgegan.errors import UnknownNameError

            raise UnknownNameError("dcgan profile", self.profile, list(PROFILES))

    def widths(self) -> list[int]:
        """Channels of each hidden stage, seed first: the profile's multiples of d, at least min_width."""
        mult = PROFILES[self.profile][self.image_size]
        return [max(m * self.d, self.min_width or 0) for m in mult]

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.nc, self.image_size, self.image_size)


def _up(cin: int, cout: int, first: bool = False) -> list[nn.Module]:
    conv = nn.ConvTranspose2d(cin, cout, 4, 1, 0, bias=False) if first else nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
    return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DCGANGenerator(nn.Module):
    def __init__(self, args: DCGANArgs):
        super().__init__()
        self.args = args
        widths = args.widths()
        layers: list[nn.Module] = _up(args.latent_dim + (args.num_classes or 0), widths[0], first=True)
        for cin, cout in zip(widths, widths[1:]):
            layers += _up(cin, cout)
        layers += [nn.Conv2d(widths[-1], args.nc, 1, 1, 0, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    @property
    def latent_dim(self) -> int:
        return self.args.latent_dim

    @property
    def num_classes(self) -> int | None:
        return self.args.num_classes

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        # z (N, latent) as well as the classic (N, latent, 1, 1); label: index (N,) or one-hot (N, K)
        return self.net(with_label(z, label, self.args.num_classes))


class DCGANDiscriminator(nn.Module):
    """The usual DCGAN critic mirrored to the generator: strided 4x4 convs, BN, LeakyReLU; returns logits."""

    def __init__(self, args: DCGANArgs):
        super().__init__()
        d = args.d_disc or args.d
        widths = [d, 2 * d, 4 * d] if args.image_size == 32 else [d, 2 * d, 4 * d, 8 * d]
        layers: list[nn.Module] = [nn.Conv2d(args.nc, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)
        self.projection = Projection(args.num_classes, widths[-1]) if args.num_classes else None

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.projection is None:
            if label is not None:
                raise ConfigError("this discriminator is unconditional; it takes no label")
            return self.net(x).flatten(1).squeeze(1)
        h = self.net[:-1](x)
        return self.net[-1](h).flatten(1).squeeze(1) + self.projection(h, label)


def _dcgan_init(m: nn.Module) -> None:
    # Radford et al. (2016): N(0, 0.02) conv weights, N(1, 0.02) BN scales.
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def dcgan_param_count(d: int, nc: int = 1) -> int:
    """Closed form for the 32x32 generator (paper, Table 1): 672d² + (12800 + 30 + nc)d + nc."""
    return 672 * d * d + (12830 + nc) * d + nc


FAMILIES.add(
    "dcgan",
    Family(
        name="dcgan",
        make_args=DCGANArgs,
        build_generator=DCGANGenerator,
        build_discriminator=DCGANDiscriminator,
        description="DCGAN scaled by depth factor d (Aguinaldo et al. 2019); 32x32 or 64x64",
        student_args=lambda d, shape, latent_dim: {"d": d, "nc": shape[0], "image_size": shape[1],
                                                   "latent_dim": latent_dim, **({} if shape[1] == shape[2] else
                                                                                {"image_size": (shape[1], shape[2])})},
    ),
)
