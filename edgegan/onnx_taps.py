"""Intermediate tensors of an ONNX teacher, for the feature term (issue 19).

An ONNX teacher has no modules to hook, but it is frozen, so no gradient through it is needed: the
chosen intermediate tensors become extra graph outputs of a copy of the model held in memory (the
file is not changed), and one ONNX Runtime call returns the image and those tensors together.
Candidates are the outputs of activation nodes (Relu, LeakyRelu, ...), and for an image-to-image
teacher (issue 21) also of Add nodes (a residual block's sum is a stage's output, as for module teachers);
paired with the student's stages by resolution, or named with ``--feature-layers TENSOR=student_module``.
"""

from __future__ import annotations

from typing import Any

from edgegan.errors import ConfigError, TeacherError

ACTIVATION_OPS = ("Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Gelu", "HardSwish", "Mish", "Celu", "ThresholdedRelu")


class OnnxTaps:
    """``forward(z)`` runs the teacher and keeps the tapped tensors for ``take()``; ``forward`` maps the
    image as the teacher's own ``forward`` does (latent shape, output range)."""

    def __init__(self, teacher: Any, names: list[str]):
        import onnx
        import onnxruntime as ort

        from edgegan.sources import to_edgegan_range

        model = onnx.load(teacher.spec)
        self.image_name = model.graph.output[0].name
        have = {o.name for o in model.graph.output}
        for n in names:
            if n not in have:
                model.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
        self.sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        inputs = getattr(teacher, "input_names", None) or {}
        self.in_name = inputs.get("z") or self.sess.get_inputs()[0].name
        self.label_name = inputs.get("label")  # a conditional teacher's (issue 20): fed its own label form
        self.one_at_a_time = self.sess.get_inputs()[0].shape[0] == 1  # a batch-1 file runs image by image
        self.names = list(names)
        self.teacher = teacher
        self._map = lambda x: to_edgegan_range(x, teacher.range)
        self.last: list = []

    def run(self, z, *label) -> tuple[Any, list]:
        """(raw image, tapped tensors) as torch tensors, for z (N, L) (and a conditional teacher's int64 labels
        (N,)) or, for an image teacher, images in [-1, 1]."""
        import numpy as np
        import torch

        x = np.ascontiguousarray(self.teacher.module_input(z).detach().cpu().numpy().astype(np.float32))
        feeds = {self.in_name: x}
        if self.label_name is not None:
            if not label:
                raise TeacherError(f"{self.teacher.spec}: a conditional teacher's tapped run needs the labels")
            feeds[self.label_name] = np.ascontiguousarray(self.teacher.labels.encode(label[0].cpu()).numpy())
        wanted = [self.image_name, *self.names]
        if self.one_at_a_time and len(x) > 1:
            runs = [self.sess.run(wanted, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(len(x))]
            outs = [np.concatenate([r[k] for r in runs]) for k in range(len(wanted))]
        else:
            outs = self.sess.run(wanted, feeds)
        return torch.from_numpy(outs[0]), [torch.from_numpy(o) for o in outs[1:]]

    def forward(self, z, *label):
        img, self.last = self.run(z, *label)
        return self._map(img).to(z.device)

    def take(self) -> list:
        out, self.last = self.last, []
        return out

    def close(self) -> None:
        self.last = []


def activation_outputs(path: str, image: bool = False) -> list[str]:
    """Output tensor names of the activation nodes of an ONNX graph (and its Add nodes for an image
    teacher), in graph order."""
    import onnx

    ops = ACTIVATION_OPS + (("Add",) if image else ())
    return [n.output[0] for n in onnx.load(path).graph.node if n.op_type in ops and n.output]


def _is_image(teacher: Any) -> bool:
    return getattr(teacher, "task", None) is not None


def tensor_shapes(teacher: Any, names: list[str]) -> dict[str, tuple]:
    """Shapes of ``names`` on a batch of two zero inputs (one run of the model with them as outputs)."""
    import torch

    taps = OnnxTaps(teacher, names)
    dims = teacher.probe_dims if _is_image(teacher) else (teacher.latent_dim,)
    label = (torch.zeros(2, dtype=torch.int64),) if getattr(teacher, "labels", None) is not None else ()
    _, outs = taps.run(torch.zeros(2, *dims), *label)
    return {n: tuple(o.shape) for n, o in zip(names, outs)}


def onnx_stages(teacher: Any, student_shapes: dict[str, tuple], layers: list[tuple[str, str]] | None):
    """(pairs [(tensor, student_module)], teacher channels, taps) for an ONNX teacher."""
    import difflib

    candidates = activation_outputs(teacher.spec, image=_is_image(teacher))
    if layers is not None:
        import onnx

        every = [o for n in onnx.load(teacher.spec).graph.node for o in n.output]
        for t, _ in layers:
            if t not in every:
                hit = difflib.get_close_matches(t, every, n=1, cutoff=0.5)
                raise ConfigError(f"--feature-layers: the teacher has no tensor {t!r}"
                                  + (f"; did you mean {hit[0]!r}?" if hit else f" (activations: {', '.join(candidates[:8])})"))
        pairs = list(layers)
    else:
        shapes = tensor_shapes(teacher, candidates) if candidates else {}
        by_res: dict[tuple, str] = {}
        for n in candidates:  # the last activation (or residual sum) at each resolution
            if len(shapes.get(n, ())) == 4:
                by_res[shapes[n][2:]] = n
        pairs = [(by_res[s[2:]], name) for name, s in student_shapes.items() if s[2:] in by_res]
        if not pairs:
            raise TeacherError(f"{teacher.spec}: no activation tensor of the ONNX teacher has the resolution of a "
                               "student stage; name the pairs with --feature-layers TENSOR=student_module,... "
                               f"(activations: {', '.join(candidates[:8]) or 'none'})")
    names = [t for t, _ in pairs]
    shapes = tensor_shapes(teacher, names)
    if any(len(shapes[n]) != 4 for n in names):
        raise ConfigError(f"--feature-layers: teacher tensors must be (N, C, H, W), got "
                          f"{ {n: shapes[n] for n in names} }")
    return pairs, [shapes[n][1] for n in names], OnnxTaps(teacher, names)
