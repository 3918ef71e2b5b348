"""Generator families. A family is one file in this package that registers itself in ``FAMILIES``.

A family turns a JSON-able argument dict into a generator (z of shape (N, latent_dim) → images
(N, nc, H, W) in [-1, 1]) and a matching discriminator. Checkpoints store ``family`` + ``args``,
so any stage can rebuild the model from the manifest alone. Every family's args have an
``output_shape`` (C, H, W), and ``student_args(d, shape, latent_dim)`` says which args make a
student of width factor ``d`` for a teacher's images (the distiller's one question to a family).
"""

from __future__ import annotations

import math

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from edgegan.registry import Registry


@dataclass(frozen=True)
class Family:
    name: str
    make_args: Callable[..., Any]  # validated frozen dataclass built from keyword arguments
    build_generator: Callable[[Any], Any]
    build_discriminator: Callable[[Any], Any]
    description: str = ""
    # (d, (C, H, W), latent_dim) -> args of a student of width factor d that makes those images
    student_args: Callable[[int, tuple[int, int, int], int], dict[str, Any]] | None = None
    # "latent": z (N, L) -> images; "image": images (N, C_in, h, w) -> images (issue 21, ``models.i2i``)
    input_kind: str = "latent"
    # an image family's students: (d, output (C, H, W), input (C_in, h, w)) -> args of width factor d
    image_student_args: Callable[[int, tuple[int, int, int], tuple[int, int, int]], dict[str, Any]] | None = None


FAMILIES: Registry[Family] = Registry("generator family")

# Modules that register families; a new family is one new file plus one name here.
_FAMILY_MODULES = ("edgegan.models.dcgan", "edgegan.models.anyshape", "edgegan.models.i2i")
_loaded = False


def _load_families() -> None:
    global _loaded
    if not _loaded:
        for mod in _FAMILY_MODULES:
            importlib.import_module(mod)
        _loaded = True


def get_family(name: str) -> Family:
    _load_families()
    return FAMILIES.get(name)


def family_names() -> list[str]:
    _load_families()
    return FAMILIES.names()


def build_generator(family: str, **args: Any):
    fam = get_family(family)
    return fam.build_generator(fam.make_args(**args))


def build_discriminator(family: str, **args: Any):
    fam = get_family(family)
    return fam.build_discriminator(fam.make_args(**args))


def choose_family(family: str | None, d: int, shape: tuple[int, int, int], latent_dim: int) -> str:
    """``family``, or where it is None (not given) the paper's dcgan if it makes ``shape``, else anyshape
    (issue 25: a 28x28 teacher with no --family was refused with advice to pass --family anyshape)."""
    if family is not None:
        return family
    from edgegan.errors import ConfigError

    try:
        student_args("dcgan", d, shape, latent_dim)
        return "dcgan"
    except ConfigError:
        return "anyshape"


def student_args(family: str, d: int, shape: tuple[int, int, int], latent_dim: int, **extra: Any) -> dict[str, Any]:
    """Args of a ``family`` student of width factor ``d`` making images ``shape`` (C, H, W) from z of
    ``latent_dim``, validated (ConfigError when the family cannot make that shape)."""
    fam = get_family(family)
    if fam.student_args is None:
        from edgegan.errors import ConfigError

        raise ConfigError(f"generator family {family!r} cannot be a distilled student (it has no student_args)")
    args = {**fam.student_args(d, tuple(shape), latent_dim), **extra}
    fam.make_args(**args)
    return args


def image_student_args(family: str, d: int, out_shape: tuple[int, int, int], in_shape: tuple[int, int, int],
                       **extra: Any) -> dict[str, Any]:
    """Args of an image-to-image ``family`` student of width ``d`` for a teacher mapping ``in_shape``
    (C_in, h, w) to ``out_shape`` (C, H, W), validated (ConfigError when the family cannot)."""
    from edgegan.errors import ConfigError

    fam = get_family(family)
    if fam.input_kind != "image" or fam.image_student_args is None:
        raise ConfigError(f"generator family {family!r} takes latents, not images; image-to-image students: "
                          + ", ".join(image_family_names()))
    args = {**fam.image_student_args(d, tuple(out_shape), tuple(in_shape)), **extra}
    fam.make_args(**args)
    return args


def image_family_names() -> list[str]:
    """The families whose generators take an image (issue 21)."""
    return [n for n in family_names() if get_family(n).input_kind == "image"]


def input_kind(family: str) -> str:
    return get_family(family).input_kind


def count_macs(module, *inputs) -> int:
    """Multiply-accumulates of one forward pass on ``inputs`` (a batch of one) through Conv2d,
    ConvTranspose2d and Linear layers, counted by forward hooks (eager modules only)."""
    import torch

    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.ConvTranspose2d):
            x = inp[0]  # every input pixel scatters a k x k x Cout/groups patch
            total += x[0].numel() * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Conv2d):
            total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in module.modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    was = module.training
    try:
        with torch.no_grad():
            module.eval()(*inputs)
    finally:
        module.train(was)
        for h in hs:
            h.remove()
    return int(total)


def count_macs_onnx(path, input_shape: tuple[int, ...]) -> int:
    """``count_macs``'s rule for an ONNX graph (Conv, ConvTranspose, Gemm and MatMul nodes) on one input of
    ``input_shape`` (with its batch of 1), the shapes read by ONNX shape inference: a foreign teacher's
    MACs, for the MACs ratio. Raises ValueError where a node's shapes cannot be inferred."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    g = model.graph
    init = {t.name for t in g.initializer}
    inp = next((i for i in g.input if i.name not in init), None)
    if inp is None:
        raise ValueError("the graph has no input")
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != len(input_shape):
        raise ValueError(f"the graph's input has rank {len(dims)}, not {len(input_shape)}")
    for d, v in zip(dims, input_shape):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    g = shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(g.value_info) + list(g.output) + list(g.input)}
    shapes.update({t.name: list(t.dims) for t in g.initializer})

    def need(name: str) -> list[int]:
        s = shapes.get(name)
        if not s or any(v <= 0 for v in s):
            raise ValueError(f"cannot infer the shape of {name!r}")
        return s

    total = 0
    for n in g.node:
        if n.op_type == "Conv":
            w, out = need(n.input[1]), need(n.output[0])
            total += math.prod(out[1:]) * math.prod(w[1:])  # out elements x (Cin/groups x kh x kw)
        elif n.op_type == "ConvTranspose":
            x, w = need(n.input[0]), need(n.input[1])
            total += math.prod(x[1:]) * math.prod(w[1:])  # every input pixel scatters Cout/groups x kh x kw
        elif n.op_type in ("Gemm", "MatMul"):
            a, out = need(n.input[0]), need(n.output[0])
            total += math.prod(out[1:]) * a[-1] if len(out) > 1 else out[0] * a[-1]
    return int(total)


def count_macs_onnx_or_none(path, input_shape: tuple[int, ...]) -> int | None:
    """``count_macs_onnx``, or None (logged) where the graph's shapes cannot be inferred: a foreign
    teacher's MACs column is left empty rather than the run or the bench failing."""
    import logging

    try:
        return count_macs_onnx(path, input_shape)
    except ValueError as e:
        logging.getLogger("edgegan").info("the ONNX teacher's MACs are not counted: %s", e)
        return None


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())
