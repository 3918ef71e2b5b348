"""Image-to-image generators (issue 21): a pix2pix-style ResNet teacher and a MobileNet-style student.

Both are fully convolutional, so one set of weights runs at any input size whose sides divide by
2^n_down (a phone feeds its camera's size; the exported file fixes one):

    x (N, C_in, h, w) → Conv3×3(C_in, w0) BN ReLU                                  the stem
                      → n_down × [Conv3×3 stride 2 (w_i → w_{i+1} = 2 w_i, ≤ 4 ngf) BN ReLU]
                      → n_blocks × residual block at the narrowest resolution
                      → (n_down + log2 scale) × [nearest 2× up-sampling, Conv3×3 BN ReLU]
                      → Conv3×3(·, nc) + bias → Tanh                               (N, nc, h·s, w·s)

``resnet_i2i`` (the teacher; Johnson et al. 2016 / pix2pix's ResNet generator, Isola et al. 2017)
uses full 3×3 convolutions. ``mobile_i2i`` (the student; GAN Compression's mobile ResNet generator,
Li et al. 2020) replaces every 3×3 convolution after the stem by a depthwise 3×3 and a pointwise
1×1 (MobileNet's separable convolution), so its MACs fall ~8× at equal width before the width
factor ``ngf`` shrinks it further. Up-sampling is nearest-neighbour then a convolution (no
checkerboard, Odena et al. 2016) rather than a transposed convolution, which int8 runtimes run
slowly. BatchNorm is folded at export; only Conv, Resize (nearest), ReLU (or ReLU6), Add, Tanh reach the file.

Students made by ``edgegan distill`` (``student_args``) use ReLU6 after every convolution (``act``) and
on each residual sum (``stream_act``), as MobileNetV2 does for low precision: every tensor of the int8
file is bounded to [0, 6], where a ReLU student's residual stream grew to values in the tens that int8's
per-tensor ranges either clip or coarsen. The teacher, and runs written before, keep plain ReLU.

The discriminator is a conditional PatchGAN (pix2pix): it sees the output beside its input
(nearest-upsampled to the output's size) and scores overlapping patches, one logit each.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgegan.errors import ConfigError
from edgegan.models import FAMILIES, Family

BLOCKS = ("conv", "mobile")
STREAM_ACTS = (None, "relu6")
ACTS = ("relu", "relu6")  # the activation after every convolution (ReLU6: bounded, as MobileNetV2 for int8)
SCALES = (1, 2, 4, 8)
MAX_WIDTH = 1024
MAX_BLOCKS = 32
MAX_SIDE = 2048


@dataclass(frozen=True)
class I2IArgs:
    ngf: int = 64  # width factor: channels of the stem; stride-2 stages double it (to at most 4 ngf)
    in_channels: int = 3  # input channels (1 for a grey input; 4 for inpaint's image + mask)
    nc: int = 3  # output channels
    height: int = 32  # output height at the training size (the network is fully convolutional)
    width: int = 32  # output width at the training size
    scale: int = 1  # output side / input side: 1 (translation, colourisation), 2 or 4 (super-resolution)
    n_down: int = 2  # stride-2 stages before the residual blocks (pix2pix: 2)
    n_blocks: int = 6  # residual blocks at the narrowest resolution (pix2pix at 256x256: 9)
    block: str = "conv"  # "conv": full 3x3 convolutions (the teacher); "mobile": depthwise separable (the student)
    d_disc: int | None = None  # width of the PatchGAN discriminator's first layer (None: 64)
    stream_act: str | None = None  # "relu6": each residual sum clipped to [0, 6], a bounded stream for int8 files
    act: str = "relu"  # "relu6": every convolution's activation clipped to [0, 6] (a bounded tensor for int8 files)

    def __post_init__(self) -> None:
        for name, hi in (("ngf", MAX_WIDTH), ("in_channels", 16), ("nc", 4), ("height", MAX_SIDE), ("width", MAX_SIDE)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
                raise ConfigError(f"i2i: {name} must be an integer in [1, {hi}], got {v!r}")
        for name, hi in (("n_down", 4), ("n_blocks", MAX_BLOCKS)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
                raise ConfigError(f"i2i: {name} must be an integer in [0, {hi}], got {v!r}")
        if self.scale not in SCALES:
            raise ConfigError(f"i2i: scale must be one of {SCALES}, got {self.scale!r}")
        if self.stream_act not in STREAM_ACTS:
            raise ConfigError(f"i2i: stream_act must be one of {STREAM_ACTS}, got {self.stream_act!r}")
        if self.act not in ACTS:
            raise ConfigError(f"i2i: act must be one of {ACTS}, got {self.act!r}")
        if self.block not in BLOCKS:
            raise ConfigError(f"i2i: block must be one of {BLOCKS}, got {self.block!r}")
        if self.d_disc is not None and (not isinstance(self.d_disc, int) or isinstance(self.d_disc, bool)
                                        or not 1 <= self.d_disc <= MAX_WIDTH):
            raise ConfigError(f"i2i: d_disc must be an integer in [1, {MAX_WIDTH}], got {self.d_disc!r}")
        h, w = self.input_shape[1:]
        if self.height % self.scale or self.width % self.scale:
            raise ConfigError(f"i2i: the output {self.height}x{self.width} is not a multiple of the scale {self.scale}")
        m = self.multiple
        if h % m or w % m:
            raise ConfigError(f"i2i: the input {h}x{w} must divide by 2^n_down = {m}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.nc, self.height, self.width)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.height // self.scale, self.width // self.scale)

    @property
    def multiple(self) -> int:
        """What the input's sides must divide by (the stride-2 stages)."""
        return 2 ** self.n_down

    def widths(self) -> list[int]:
        """Channels of the stem, then after each stride-2 stage."""
        return [min(self.ngf * 2 ** i, 4 * self.ngf) for i in range(self.n_down + 1)]


def _act(act: str) -> nn.Module:
    return nn.ReLU6(inplace=True) if act == "relu6" else nn.ReLU(inplace=True)


def _conv(cin: int, cout: int, stride: int = 1, mobile: bool = False, act: str = "relu") -> list[nn.Module]:
    """A 3x3 convolution, BN, ReLU; depthwise 3x3 + BN + ReLU + pointwise 1x1 + BN + ReLU when mobile
    (ReLU6 for ``act="relu6"``)."""
    if not mobile:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), _act(act)]
    return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), _act(act),
            nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), _act(act)]


class ResBlock(nn.Module):
    """x + F(x), F = conv BN ReLU conv BN (both separable when mobile)."""

    def __init__(self, c: int, mobile: bool, act: str = "relu"):
        super().__init__()
        body = _conv(c, c, 1, mobile, act) + _conv(c, c, 1, mobile, act)
        body.pop()  # no ReLU before the sum (He et al. 2016)
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class I2IGenerator(nn.Module):
    def __init__(self, args: I2IArgs):
        super().__init__()
        self.args = args
        mobile = args.block == "mobile"
        ws = args.widths()
        layers: list[nn.Module] = _conv(args.in_channels, ws[0], act=args.act)  # the stem is full: its input has few channels
        for cin, cout in zip(ws, ws[1:]):
            layers += _conv(cin, cout, 2, mobile, args.act)
        for _ in range(args.n_blocks):
            layers += [ResBlock(ws[-1], mobile, args.act)] + ([nn.ReLU6(inplace=True)] if args.stream_act == "relu6" else [])
        ups = list(reversed(ws)) + [ws[0]] * int(math.log2(args.scale))
        for cin, cout in zip(ups, ups[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest")] + _conv(cin, cout, 1, mobile, args.act)
        layers += [nn.Conv2d(ups[-1], args.nc, 3, 1, 1, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.args.input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """pix2pix's conditional PatchGAN: (output, input) → one logit per overlapping patch, (N, P)."""

    def __init__(self, args: I2IArgs):
        super().__init__()
        ndf = args.d_disc or 64
        layers: list[nn.Module] = [nn.Conv2d(args.nc + args.in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        c, side = ndf, min(args.height, args.width) // 2
        while side > 8 and c < 8 * ndf:  # down to 4-8 pixels of patches (a 70x70 receptive field at 256)
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, inplace=True)]
            c, side = 2 * c, side // 2
        layers += [nn.Conv2d(c, 1, 3, 1, 1)]
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, out: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        if inp.shape[-2:] != out.shape[-2:]:
            inp = nn.functional.interpolate(inp, size=out.shape[-2:], mode="nearest")
        return self.net(torch.cat([out, inp], 1)).flatten(1)


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def student_args(d: int, out_shape: tuple[int, int, int], in_shape: tuple[int, int, int]) -> dict:
    """A mobile student of width ``d`` for a teacher mapping ``in_shape`` to ``out_shape`` (ReLU6 throughout): residual
    blocks at 1/4 of the output's side for translation (two stride-2 stages, as pix2pix), at the input's
    side for super-resolution (no stride-2 stage: the input is already small), never under 4 pixels."""
    c_in, h, w = in_shape
    nc, H, W = out_shape
    if H % h or W % w or H // h != W // w:
        raise ConfigError(f"an image-to-image student maps {h}x{w} to a whole multiple of it; the teacher makes {H}x{W}")
    scale = H // h
    n_down = 0
    if scale == 1:
        while n_down < 2 and min(h, w) % 2 ** (n_down + 1) == 0 and min(h, w) // 2 ** (n_down + 1) >= 4:
            n_down += 1
    # ReLU6 after every convolution and on the residual stream: every int8 tensor of the file is bounded, so
    # post-training int8 keeps the float quality (bench/results/image2image.md: sr2x d=40, 3 seeds, equal float
    # PSNR; the unbounded student's stream grew to values in the tens and its int8 files lost 0.4-1.5 dB).
    return {"ngf": d, "in_channels": c_in, "nc": nc, "height": H, "width": W, "scale": scale, "n_down": n_down,
            "n_blocks": 4, "block": "mobile", "act": "relu6", "stream_act": "relu6"}


def _make(block: str):
    def make_args(**kw) -> I2IArgs:
        return I2IArgs(**{"block": block, **kw})

    return make_args


FAMILIES.add("resnet_i2i", Family(
    name="resnet_i2i", make_args=_make("conv"), build_generator=I2IGenerator, build_discriminator=PatchDiscriminator,
    description="image-to-image ResNet generator (pix2pix / Johnson et al.), full 3x3 convolutions: the teacher",
    input_kind="image", image_student_args=student_args))
FAMILIES.add("mobile_i2i", Family(
    name="mobile_i2i", make_args=_make("mobile"), build_generator=I2IGenerator, build_discriminator=PatchDiscriminator,
    description="image-to-image MobileNet-style ResNet generator (GAN Compression), width factor ngf: the student",
    input_kind="image", image_student_args=student_args))
