"""Load an image-to-image teacher (issue 21): a generator whose input is an image, not a latent.

The same four forms as latent teachers (``edgegan.sources``): an edgegan run whose manifest records
``model.input`` (its task too), an ONNX file, a TorchScript archive, a ``module:factory`` with its
weights. A foreign teacher is recognised as image-to-image by ``--task``: its input is what the task
makes from the dataset's images (``edgegan.tasks``), and one forward pass on such a batch reads its
output shape and, unless ``--teacher-range`` gives it, its range ([0, 1] when no output is negative,
else [-1, 1]). The input is handed to the teacher in the range it makes (a [0, 1] generator takes
[0, 1] images), and ``forward`` maps its output to edgegan's [-1, 1], so the student, its files and
every metric see one convention.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgegan.errors import ConfigError, TeacherError
from edgegan.manifest import MANIFEST_NAME
from edgegan.sources import EDGEGAN_RANGE, RANGE_TOLERANCE, mapping_text, parse_range, to_edgegan_range

log = logging.getLogger("edgegan.sources")


@dataclass
class ImageSource:
    kind: str  # "edgegan" | "torchscript" | "onnx" | "factory"
    spec: str
    input_shape: tuple[int, int, int]  # (C_in, h, w) at the distillation's size
    output_shape: tuple[int, int, int]  # (C, H, W)
    params: int | None
    forward: Callable  # (N, C_in, h, w) in [-1, 1] -> (N, C, H, W) in [-1, 1], no grad
    module: Any = None
    task: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    range: tuple[float, float] = EDGEGAN_RANGE
    range_source: str = "edgegan"
    probe: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = field(default=None, repr=False)
    labels: Any = None  # image teachers are not class-conditional (the distiller's terms read it)
    latent_rank: int = 2

    @property
    def num_classes(self) -> None:
        return None

    def module_input(self, x):
        """Images in [-1, 1] as the teacher's module takes them: in its range ([0, 1] for a Sigmoid teacher)."""
        lo, hi = self.range
        return x if (lo, hi) == EDGEGAN_RANGE else lo + (x + 1) * ((hi - lo) / 2)

    @property
    def probe_dims(self) -> tuple[int, int, int]:
        """What a probe pass feeds the teacher and the student (``edgegan.stages``): one input's shape."""
        return self.input_shape

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "spec": self.spec, "input": {"kind": "image", "shape": list(self.input_shape),
                                                             "task": self.task},
                "output_shape": list(self.output_shape), "params": self.params,
                "range": {"declared": list(self.range), "source": self.range_source, "mapping": mapping_text(self.range),
                          "probe": self.probe}, **self.info}


def run_input(spec: str) -> dict[str, Any] | None:
    """An edgegan run's ``model.input`` (it takes images), or None (a latent run, or not a run)."""
    p = Path(spec)
    if not (p.is_dir() or p.name == MANIFEST_NAME):
        return None
    from edgegan.manifest import read_manifest

    try:
        m = read_manifest(p if p.is_dir() else p.parent)
    except Exception:  # noqa: BLE001 - not a run: the latent loader says why
        return None
    return (m.get("model") or {}).get("input")


def is_image_teacher(spec: str, task: str | None) -> bool:
    """Whether ``distill`` treats ``spec`` as image-to-image: ``--task`` given, or a run that records an input."""
    return task is not None or run_input(spec) is not None


def load_image_generator(spec: str, probe_images, *, task: str | None, weights: str | None = None,
                         device: str = "cpu", output_range: tuple | str | None = None, import_dir: str | None = None,
                         allow_factory: bool = True) -> ImageSource:
    """The image teacher ``spec``; ``probe_images`` (N, C, H, W) in [-1, 1], a few of the dataset's
    images, make the probe input through ``task`` (a run's own task when None)."""
    import torch

    from edgegan.tasks import get_task

    rng = parse_range(output_range)
    rec = run_input(spec)
    if rec is not None:
        src = _from_run(spec, device)
        if task is not None and src.task is not None and task != src.task:
            raise ConfigError(f"{spec}: --task {task} contradicts the teacher, trained for {src.task}")
        if rng is not None and rng != EDGEGAN_RANGE:
            raise ConfigError(f"{spec}: an edgegan run makes images in [-1, 1]; --teacher-range {rng} contradicts it")
        src.task = src.task or task
        if src.task is None:
            raise ConfigError(f"{spec}: the teacher records no task; pass --task (one of the tasks that makes its input)")
    else:
        if task is None:
            raise ConfigError(f"{spec}: pass --task to distil an image-to-image teacher")
        src = _foreign(spec, weights, device, import_dir, allow_factory)
        src.task = task
    t = get_task(src.task)
    x = t.input(probe_images[:8].float(), torch.Generator().manual_seed(0))
    if rec is not None:  # fully convolutional: the run's input shape at the training size need not be the data's
        multiple = int(rec.get("multiple") or 1)
        if x.shape[1] != src.input_shape[0] or x.shape[2] % multiple or x.shape[3] % multiple:
            raise ConfigError(f"{spec}: task {src.task} makes inputs {tuple(x.shape[1:])} from the dataset; the teacher "
                              f"takes {src.input_shape[0]} channels and sides that divide by {multiple}")
    _probe(src, x, rng)
    out = tuple(probe_images.shape[1:])
    if t.ground_truth and src.output_shape != out:
        raise ConfigError(f"{spec}: from the task's {tuple(x.shape[1:])} inputs the teacher makes {src.output_shape} "
                          f"images; the dataset's are {out} (pass --image-size to resize them to the teacher's output)")
    return src


def _from_run(spec: str, device: str) -> ImageSource:
    from edgegan.checkpoint import load_run
    from edgegan.errors import CheckpointError

    try:
        run = load_run(spec)
    except CheckpointError as e:
        raise TeacherError(str(e)) from None
    m = run.manifest["model"]
    module = run.generator.eval().to(device)
    return ImageSource("edgegan", str(run.run_dir.resolve()), tuple(m["input"]["shape"]), tuple(m["output"]["shape"]),
                       m["params"], _no_grad(module, device), module, m["input"].get("task"),
                       {"family": m["family"], "args": m["args"], "sha256": m["weights"]["sha256"]}, manifest=run.manifest)


def _no_grad(module, device):
    import torch

    def forward(x):
        with torch.no_grad():
            return module(x.to(device))

    return forward


def _foreign(spec: str, weights: str | None, device: str, import_dir: str | None, allow_factory: bool) -> ImageSource:
    """An ONNX, TorchScript or module:factory teacher, opened as ``edgegan.teacher_files`` opens latent ones."""
    from edgegan import teacher_files
    from edgegan.sources import FactoryRefused, _head, _is_factory

    p = Path(spec)
    if _is_factory(spec) and not p.exists():
        if not allow_factory:
            raise FactoryRefused(f"{spec}: a module:factory teacher is run only when typed on the command line")
        raw, module, params, info = teacher_files.open_factory(spec, weights, device, import_dir)
        kind = "factory"
    elif p.is_file() and p.suffix == ".onnx":
        raw, module, params, info = teacher_files.open_onnx(p.resolve())
        kind = "onnx"
    elif p.is_file() and _head(p, spec)[:2] == b"PK":
        raw, module, params, info = teacher_files.open_torchscript(p.resolve(), device)
        kind = "torchscript"
    else:
        raise TeacherError(f"{spec}: no such teacher (expected an edgegan run, .onnx, TorchScript file or module:factory)")
    if info.pop("inputs", 1) != 1:
        raise TeacherError(f"{spec}: an image-to-image teacher takes one input (the image)")
    return ImageSource(kind, str(p.resolve()) if kind != "factory" else spec, (0, 0, 0), (0, 0, 0), params, raw, module,
                       info=info)


def _probe(src: ImageSource, x, rng: tuple[float, float] | None) -> None:
    """Run the teacher once on the probe input ``x``: its output shape, range, and ``forward`` in [-1, 1]."""
    import torch

    raw = src.forward
    lo, hi = rng if rng is not None else EDGEGAN_RANGE

    def call(inp, lo=lo, hi=hi):
        return raw(inp if (lo, hi) == EDGEGAN_RANGE else lo + (inp + 1) * ((hi - lo) / 2))

    try:
        y = call(x)
    except Exception as e:  # noqa: BLE001 - a foreign model refusing the input is the user's answer
        raise TeacherError(f"{src.spec}: the teacher does not take the task's inputs {tuple(x.shape)} "
                           f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check --task") from None
    if not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[0] != x.shape[0]:
        raise TeacherError(f"{src.spec}: the teacher's output {getattr(y, 'shape', type(y))} is not (N, C, H, W)")
    y = y.float()
    if not bool(y.isfinite().all()):
        raise TeacherError(f"{src.spec}: the teacher makes NaN or infinite values on the probe inputs")
    if rng is None and src.kind != "edgegan":
        ylo, yhi = float(y.min()), float(y.max())
        tol = RANGE_TOLERANCE * 2
        if ylo >= 0 and yhi <= 1 + tol:
            lo, hi = 0.0, 1.0
            y = call(x, lo, hi).float()
        elif not (ylo >= -1 - tol and yhi <= 1 + tol):
            raise TeacherError(f"{src.spec}: the teacher's outputs span [{ylo:.4g}, {yhi:.4g}] on the probe inputs, "
                               "neither [-1, 1] nor [0, 1]; pass its range with --teacher-range LO,HI")
        src.range_source = "measured"
    elif rng is not None:
        src.range_source = "given"
    src.range = (float(lo), float(hi))
    tol = RANGE_TOLERANCE * (hi - lo)
    outside = float(((y < lo - tol) | (y > hi + tol)).float().mean())
    src.probe = {"samples": int(x.shape[0]), "min": float(y.min()), "max": float(y.max()), "outside": round(outside, 6)}
    if outside > 0:
        log.warning("%s: %.2f%% of the teacher's outputs on the probe inputs lie outside [%g, %g]; they are clipped "
                    "to it, as an image is when it is shown or saved", src.spec, 100 * outside, lo, hi)
    if float((y - y[:1]).abs().max()) < 1e-6 and x.shape[0] > 1 and float((x - x[:1]).abs().max()) > 0:
        raise TeacherError(f"{src.spec}: the teacher makes the same image for every input (constant output); "
                           "nothing to distil")
    src.input_shape = tuple(int(s) for s in x.shape[1:])
    src.output_shape = tuple(int(s) for s in y.shape[1:])
    if src.kind != "edgegan":
        # A foreign generator's head need not be bounded (Real-ESRGAN's is a convolution, its users clamp the
        # output to [0, 1]): the target is the image as shown, in the declared range; recorded in the manifest.
        src.info["clipped_to_range"] = True
        src.forward = lambda inp: to_edgegan_range(call(inp, lo, hi), (lo, hi)).clamp(-1.0, 1.0)
    elif (lo, hi) != EDGEGAN_RANGE:
        src.forward = lambda inp: to_edgegan_range(call(inp, lo, hi), (lo, hi))
