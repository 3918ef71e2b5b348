"""Feature stages for the feature term (issue 19): which module of the teacher is matched by which of the
student (``pair_stages``: by resolution for DCGAN stages, or named with ``--feature-layers``; ONNX teachers
through tapped graph outputs), and the forward hooks that capture their outputs (``FeatureCapture``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgegan.errors import ConfigError, TeacherError

if TYPE_CHECKING:  # torch stays out of `edgegan --help`
    import torch


@dataclass
class StagePairs:
    """Modules of the teacher and the student whose outputs are matched, pair by pair."""

    teacher_modules: list
    student_modules: list
    teacher_channels: list[int]
    student_channels: list[int]
    names: list[tuple[str, str]]
    teacher_tap: Any = None  # an ONNX teacher's tapped tensors (edgegan.onnx_taps.OnnxTaps), instead of hooks


_ACTIVATIONS = ("ReLU", "LeakyReLU", "ReLU6", "PReLU", "ELU", "SELU", "GELU", "SiLU", "Mish", "Hardswish")


def pair_stages(teacher: Any, student: "torch.nn.Module", layers: str | None) -> StagePairs:
    """Feature stages of the teacher and the student, pair by pair.

    ``layers`` (``--feature-layers teacher.module=student.module,...``) names them; an unknown name is
    an error with the closest match. Otherwise they pair by resolution: each up-sampling stage of the
    student (its ReLU) with the teacher's last activation module at the same H x W (dcgan teachers, and
    any ``module:factory`` or edgegan teacher: GAN Compression's pairing, without naming conventions).
    A teacher with no modules (ONNX) or no hooks (TorchScript) is refused with the route that works."""
    import torch

    if teacher.kind == "onnx":
        return _onnx_pairs(teacher, student, layers)
    if teacher.module is None:
        raise TeacherError(f"{teacher.spec}: the feature term hooks the teacher's layers and this teacher exposes "
                           "none; pass the generator's Python class as module:factory with --teacher-weights "
                           "W.safetensors (docs/teachers.md: 'Distil a pretrained GAN you downloaded'), or use pixel and gan")
    if isinstance(teacher.module, torch.jit.ScriptModule):
        raise TeacherError(f"{teacher.spec}: the feature term hooks the teacher's layers; TorchScript modules take no "
                           "forward hooks: pass the generator's Python class as module:factory with --teacher-weights "
                           "W.safetensors (docs/teachers.md: 'Distil a pretrained GAN you downloaded'), or use pixel and gan")
    t_named, s_named = dict(teacher.module.named_modules()), dict(student.named_modules())
    if layers:
        pairs = _parse_layers(layers, s_named)
        for tn, _ in pairs:
            if tn not in t_named:
                raise ConfigError(f"--feature-layers: the teacher has no layer {tn!r}{_closest(tn, t_named)}")
    else:
        pairs = _pair_by_resolution(teacher, student, t_named, s_named)
    t_mods, s_mods = [t_named[a] for a, _ in pairs], [s_named[b] for _, b in pairs]
    t_ch = _channels(teacher.module, t_mods, _dims(teacher), getattr(teacher, "latent_rank", 2),
                     probe_label(getattr(teacher, "labels", None)))
    s_ch = _channels(student, s_mods, _dims(teacher), label=probe_label(student=student))
    return StagePairs(t_mods, s_mods, t_ch, s_ch, pairs)


def _dims(teacher: Any):
    """What a probe pass feeds: the latent size, or an image teacher's input shape (C, h, w) (issue 21)."""
    return getattr(teacher, "probe_dims", None) or teacher.latent_dim


def _parse_layers(layers: str, s_named: dict) -> list[tuple[str, str]]:
    pairs = []
    for item in layers.split(","):
        tn, sep, sn = (x.strip() for x in item.strip().partition("="))
        if not sep or not tn or not sn:
            raise ConfigError(f"--feature-layers: {item.strip()!r} must be teacher_module=student_module")
        if sn not in s_named:
            raise ConfigError(f"--feature-layers: the student has no layer {sn!r}{_closest(sn, s_named)}")
        pairs.append((tn, sn))
    return pairs


def _onnx_pairs(teacher: Any, student, layers: str | None) -> StagePairs:
    """An ONNX teacher: its activation tensors become extra graph outputs (``edgegan.onnx_taps``), and
    ``teacher.forward`` is replaced by one that runs the tapped model (same images, plus the tensors)."""
    from edgegan.onnx_taps import onnx_stages

    s_named = dict(student.named_modules())
    given = _parse_layers(layers, s_named) if layers else None
    image = getattr(teacher, "probe_dims", None) is not None
    s_act = _student_stages(s_named, image)
    label = probe_label(student=student)  # a conditional student's probe label (issue 20)
    s_shapes = _output_shapes(student, s_act, s_named, _dims(teacher), label=label)
    if image:  # the student's stages as for a module teacher: the last module to finish at each resolution
        order = _finish_order(student, [n for n in s_act if n in s_shapes], s_named, _dims(teacher))
        last = {s_shapes[n][2:]: n for n in order}
        s_shapes = {n: s_shapes[n] for n in order if last[s_shapes[n][2:]] == n}
    pairs, t_ch, taps = onnx_stages(teacher, s_shapes, given)
    s_mods = [s_named[b] for _, b in pairs]
    teacher.forward = taps.forward
    return StagePairs([], s_mods, t_ch, _channels(student, s_mods, _dims(teacher), label=label), pairs, taps)


def _closest(name: str, named: dict) -> str:
    import difflib

    names = [n for n in named if n]
    hit = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return f"; did you mean {hit[0]!r}?" if hit else f" (its layers: {_some(named)})"


def _output_shapes(model, names: list[str], named: dict, latent_dim: int, latent_rank: int = 2,
                   label: tuple = ()) -> dict[str, tuple]:
    """Output shape of each named module that runs exactly once in one forward pass on two latents."""

    shapes = _hooked_shapes(model, [named[n] for n in names], latent_dim, latent_rank, label)
    return {n: v[0] for n, v in zip(names, shapes) if len(v) == 1 and len(v[0]) == 4}


def _pair_by_resolution(teacher: Any, student, t_named: dict, s_named: dict) -> list[tuple[str, str]]:
    image = getattr(teacher, "probe_dims", None) is not None
    kinds = _ACTIVATIONS + (_BLOCKS if image else ())
    t_act = [n for n, m in t_named.items() if type(m).__name__ in kinds]
    s_act = _student_stages(s_named, image)
    t_shape = _output_shapes(teacher.module, t_act, t_named, _dims(teacher), getattr(teacher, "latent_rank", 2),
                             probe_label(getattr(teacher, "labels", None)))
    s_shape = _output_shapes(student, s_act, s_named, _dims(teacher), label=probe_label(student=student))
    if image:  # an image network's stages: the last module to finish at each resolution (a residual block's sum)
        t_act = _finish_order(teacher.module, [n for n in t_act if n in t_shape], t_named, _dims(teacher))
        s_act = _finish_order(student, [n for n in s_act if n in s_shape], s_named, _dims(teacher))
        last = {s_shape[n][2:]: n for n in s_act}
        s_act = [n for n in s_act if last[s_shape[n][2:]] == n]
    t_by_res: dict[tuple, str] = {}
    for n in t_act:  # the last activation at each resolution: the stage's output
        if n in t_shape:
            t_by_res[t_shape[n][2:]] = n
    pairs = [(t_by_res[s_shape[n][2:]], n) for n in s_act if n in s_shape and s_shape[n][2:] in t_by_res]
    if not pairs:
        raise TeacherError(f"{teacher.spec}: no activation of the teacher has the resolution of a student stage "
                           f"({sorted({s[2:] for s in s_shape.values()})}); name the pairs with --feature-layers "
                           f"teacher_module=student_module,... (teacher: {_some(t_named)}; student: {_some(s_named)})")
    return pairs


_BLOCKS = ("ResBlock", "ResnetBlock", "ResidualBlock", "MobileResnetBlock", "RRDB")  # residual blocks, whose output (after the sum) is a stage's output in an image network


def _student_stages(s_named: dict, image: bool) -> list[str]:
    """The student's candidate stage outputs: its ReLU / ReLU6 modules (ReLU6: an image student's bounded
    activations and residual stream), and in an image network its residual blocks."""
    from torch import nn

    return [n for n, m in s_named.items()
            if isinstance(m, (nn.ReLU, nn.ReLU6)) or (image and type(m).__name__ in _BLOCKS)]


def _finish_order(model, names: list[str], named: dict, dims) -> list[str]:
    """``names`` in the order their modules finish in one probe pass (a block after its inner layers)."""
    order: list[str] = []
    hooks = [named[n].register_forward_hook(lambda *_a, n=n: order.append(n)) for n in names]
    try:
        _hooked_shapes(model, [], dims)
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def _some(named: dict) -> str:
    names = [n for n in named if n and re.fullmatch(r"[\w.]+", n)]
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")


def _hooked_shapes(model, modules: list, latent_dim: int, latent_rank: int = 2, label: tuple = ()) -> list[list[tuple]]:
    """The output shapes each module gives in one eval forward pass on two zero latents (a list per
    module: a module that runs twice has two), read by forward hooks that are removed afterwards."""
    import torch

    seen: list[list[tuple]] = [[] for _ in modules]
    hooks = [m.register_forward_hook(lambda _m, _i, o, k=k: seen[k].append(tuple(getattr(o, "shape", ()))))
             for k, m in enumerate(modules)]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(iter(model.parameters()), torch.zeros(())).device
            if isinstance(latent_dim, tuple):  # an image network's input (C, h, w)
                z = torch.zeros(2, *latent_dim, device=device)
            else:
                z = torch.zeros(2, latent_dim, *([1, 1] if latent_rank == 4 else []), device=device)
            model(z, *(y.to(device) for y in label))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return seen


def probe_label(form: Any = None, student: Any = None) -> tuple:
    """The label argument of a probe pass on two latents: () for an unconditional model, class 0 in the
    model's own form for a conditional one (a teacher's recorded LabelForm, a student's index)."""
    import torch

    if form is not None:
        return (form.encode(torch.zeros(2, dtype=torch.int64)),)
    if student is not None and getattr(student, "num_classes", None):
        return (torch.zeros(2, dtype=torch.int64),)
    return ()


def _channels(model, modules: list, latent_dim: int, latent_rank: int = 2, label: tuple = ()) -> list[int]:
    """Channels of each module's output, by one forward pass on two latents (shapes must be NCHW)."""

    shapes = _hooked_shapes(model, modules, latent_dim, latent_rank, label)
    if any(len(v) != 1 or len(v[0]) != 4 for v in shapes):
        raise ConfigError(f"feature stages must each run once and give (N, C, H, W) outputs, got {shapes}")
    return [v[0][1] for v in shapes]


class FeatureCapture:
    """Forward hooks that keep the outputs of some modules during one forward pass."""

    def __init__(self, modules: list):
        self.outputs: list = []
        self._hooks = [m.register_forward_hook(self._keep) for m in modules]

    def _keep(self, _m, _i, out) -> None:
        self.outputs.append(out)

    def take(self) -> list:
        out, self.outputs = self.outputs, []
        return out

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
