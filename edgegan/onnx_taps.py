"""Intermediate tensors of an ONNX teacher, for the feature term (issue 19).

An ONNX teacher has no modules to hook, but it is frozen, so no gradient through it is needed: the
chosen intermediate tensors become extra graph outputs of a copy of the model held in memory (the
file is not changed), and one ONNX Runtime call returns the image and those tensors together.
Candidates are the outputs of activation nodes (Relu, LeakyRelu, ...); paired with the student's
stages by resolution, or named with ``--feature-layers TENSOR=student_module``.
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
        self.in_name = self.sess.get_inputs()[0].name
        self.names = list(names)
        self.teacher = teacher
        self._map = lambda x: to_edgegan_range(x, teacher.range)
        self.last: list = []

    def run(self, z) -> tuple[Any, list]:
        """(raw image, tapped tensors) as torch tensors, for z (N, L)."""
        import numpy as np
        import torch

        x = np.ascontiguousarray(self.teacher.module_input(z).detach().cpu().numpy().astype(np.float32))
        outs = self.sess.run([self.image_name, *self.names], {self.in_name: x})
        return torch.from_numpy(outs[0]), [torch.from_numpy(o) for o in outs[1:]]

    def forward(self, z):
        img, self.last = self.run(z)
        return self._map(img).to(z.device)

    def take(self) -> list:
        out, self.last = self.last, []
        return out

    def close(self) -> None:
        self.last = []


def activation_outputs(path: str) -> list[str]:
    """Output tensor names of the activation nodes of an ONNX graph, in graph order."""
    import onnx

    return [n.output[0] for n in onnx.load(path).graph.node if n.op_type in ACTIVATION_OPS and n.output]


def tensor_shapes(teacher: Any, names: list[str]) -> dict[str, tuple]:
    """Shapes of ``names`` on a batch of two zero latents (one run of the model with them as outputs)."""
    import torch

    taps = OnnxTaps(teacher, names)
    _, outs = taps.run(torch.zeros(2, teacher.latent_dim))
    return {n: tuple(o.shape) for n, o in zip(names, outs)}


def onnx_stages(teacher: Any, student_shapes: dict[str, tuple], layers: list[tuple[str, str]] | None):
    """(pairs [(tensor, student_module)], teacher channels, taps) for an ONNX teacher."""
    import difflib

    candidates = activation_outputs(teacher.spec)
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
        for n in candidates:  # the last activation at each resolution
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
