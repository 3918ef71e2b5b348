"""Load a generator from any of the forms the distiller accepts.

| spec                                   | how it runs                                             |
|----------------------------------------|---------------------------------------------------------|
| an edgegan run directory / manifest    | rebuilt from the manifest, weights sha256-checked       |
| ``file.pt`` / ``file.ts`` TorchScript  | ``torch.jit.load`` (a TorchScript archive, not a pickle) |
| ``file.onnx``                          | onnxruntime (MSE distillation needs only its outputs)   |
| ``pkg.module:factory`` + ``--teacher-weights W.safetensors`` | ``factory()`` then safetensors weights |

The latent size is read from the source (manifest, ONNX input shape, or by probing a TorchScript
module with (N, L) and (N, L, 1, 1) for the usual L); the output shape from one forward pass.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgegan.errors import TeacherError
from edgegan.manifest import MANIFEST_NAME, sha256_file

_PROBE_LATENTS = (100, 128, 64, 256, 512, 200, 120, 32, 16)


class FactoryRefused(TeacherError):
    """A ``module:factory`` read from a manifest, not typed by the user: never imported."""


@dataclass
class GeneratorSource:
    kind: str  # "edgegan" | "torchscript" | "onnx" | "factory"
    spec: str
    latent_dim: int
    output_shape: tuple[int, int, int]  # (C, H, W)
    params: int | None
    forward: Callable  # torch.Tensor (N, latent) -> torch.Tensor (N, C, H, W), no grad
    module: Any = None  # the torch module when there is one (export, bench)
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "spec": self.spec, "latent_dim": self.latent_dim,
                "output_shape": list(self.output_shape), "params": self.params, **self.info}


def load_generator(spec: str, *, weights: str | None = None, latent_dim: int | None = None,
                   device: str = "cpu", allow_factory: bool = True) -> GeneratorSource:
    """``allow_factory=False`` for a spec read from a file (a manifest): a manifest must never name
    code to run, so a ``module:factory`` there is refused before anything is imported (issue 14)."""
    p = Path(spec)
    if p.is_dir() or p.name == MANIFEST_NAME:
        return _from_run(spec, device)
    if _is_factory(spec) and not p.exists():
        if not allow_factory:
            refuse_recorded_factory(spec, weights)
        return _from_factory(spec, weights, latent_dim, device)
    if not p.exists():
        raise TeacherError(f"{spec}: no such teacher (expected a run directory, .onnx, TorchScript file, or module:factory)")
    if not p.is_dir() and not p.is_file():  # a FIFO or a device: opening it could block forever
        raise TeacherError(f"{spec}: teacher is not a regular file")
    if p.stat().st_size == 0:
        raise TeacherError(f"{spec}: teacher file is empty")
    with open(p, "rb") as f:
        head = f.read(4)
    if p.suffix == ".onnx" or (head[:1] == b"\x08" and p.suffix not in (".pt", ".ts", ".pth")):
        return _from_onnx(p, latent_dim)
    if head[:2] == b"PK":  # TorchScript archives are zip files
        return _from_torchscript(p, latent_dim, device)
    raise TeacherError(f"{spec}: unrecognised teacher file (not ONNX, not a TorchScript archive)")


def refuse_recorded_factory(spec: str, weights: str | None = None) -> None:
    """Raise FactoryRefused if ``spec``, read from a file, names a ``module:factory`` (issue 14)."""
    if isinstance(spec, str) and _is_factory(spec) and not Path(spec).exists():
        raise FactoryRefused(f"{spec}: a module:factory teacher is run only when typed on the command line "
                             f"(a manifest never names code to run); pass --teacher {spec}"
                             + (f" --teacher-weights {weights}" if weights else "") + " again")


def _is_factory(spec: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec) is not None


def _wrap(module, device):
    import torch

    module.eval().to(device)

    def forward(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # not inference_mode: its tensors cannot enter the student's loss
            return module(z.to(device))

    return forward


def _from_run(spec: str, device: str) -> GeneratorSource:
    from edgegan.checkpoint import load_run
    from edgegan.errors import CheckpointError

    try:
        run = load_run(spec)
    except CheckpointError as e:
        raise TeacherError(str(e)) from None
    m = run.manifest["model"]
    return GeneratorSource("edgegan", str(run.run_dir), run.latent_dim, tuple(m["output"]["shape"]), m["params"],
                           _wrap(run.generator, device), run.generator,
                           {"family": m["family"], "args": m["args"], "sha256": m["weights"]["sha256"]})


def _probe(forward, latent_dim: int | None, spec: str) -> tuple[int, tuple[int, int, int]]:
    import torch

    cands = [latent_dim] if latent_dim else list(_PROBE_LATENTS)
    errors = []
    for L in cands:
        for shape in ((2, L), (2, L, 1, 1)):
            try:
                y = forward(torch.zeros(shape))
            except Exception as e:  # noqa: BLE001 - probing a foreign model
                errors.append(f"{shape}: {type(e).__name__}")
                continue
            if isinstance(y, torch.Tensor) and y.dim() == 4 and y.shape[0] == 2:
                return L, tuple(int(s) for s in y.shape[1:])  # type: ignore[return-value]
            errors.append(f"{shape}: output {getattr(y, 'shape', type(y))} is not (N, C, H, W)")
    hint = "" if latent_dim else " (pass --latent-dim if z is not one of the usual sizes)"
    raise TeacherError(f"{spec}: cannot run the teacher on latents {cands}{hint}; tried {'; '.join(errors[:4])}")


def _accepting_2d(forward):
    """Sources probed with (N, L, 1, 1) get a wrapper so the distiller can always pass (N, L)."""

    def fwd(z):
        try:
            return forward(z)
        except Exception:  # noqa: BLE001
            return forward(z[:, :, None, None])

    return fwd


def _from_torchscript(p: Path, latent_dim: int | None, device: str) -> GeneratorSource:
    import torch

    try:
        module = torch.jit.load(str(p), map_location=device)
    except Exception as e:  # noqa: BLE001
        raise TeacherError(f"{p}: not a loadable TorchScript archive ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    fwd = _accepting_2d(_wrap(module, device))
    L, shape = _probe(fwd, latent_dim, str(p))
    params = sum(t.numel() for t in module.parameters())
    return GeneratorSource("torchscript", str(p), L, shape, params, fwd, module, {"sha256": sha256_file(p)})


def _from_onnx(p: Path, latent_dim: int | None) -> GeneratorSource:
    import numpy as np
    import torch

    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        raise TeacherError(f"{p}: ONNX teachers need onnxruntime and onnx (pip install 'edgegan[export]'): {e}") from None
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise TeacherError(f"{p}: not a valid ONNX model ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise TeacherError(f"{p}: teacher must take exactly one input (z), it takes {len(inputs)}")
    shape = inputs[0].shape
    dims = [d for d in shape[1:]]
    if latent_dim is None:
        if not dims or not isinstance(dims[0], int):
            raise TeacherError(f"{p}: cannot read the latent size from input shape {shape}; pass --latent-dim")
        latent_dim = int(dims[0])
    in_name, rank = inputs[0].name, len(shape)
    # Every initializer counts, BatchNorm running statistics included (torch counts only parameters).
    params = int(sum(np.prod(t.dims) for t in model.graph.initializer))

    def forward(z: torch.Tensor) -> torch.Tensor:
        x = z.detach().cpu().numpy().astype(np.float32)
        x = x.reshape(x.shape[0], -1, *([1] * (rank - 2))) if rank > 2 else x.reshape(x.shape[0], -1)
        return torch.from_numpy(sess.run(None, {in_name: x})[0])

    L, out_shape = _probe(forward, latent_dim, str(p))
    return GeneratorSource("onnx", str(p), L, out_shape, params, forward, None, {"sha256": sha256_file(p)})


def _from_factory(spec: str, weights: str | None, latent_dim: int | None, device: str) -> GeneratorSource:
    from edgegan.checkpoint import load_tensors
    from edgegan.errors import CheckpointError

    mod_name, fn_name = spec.split(":")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise TeacherError(f"{spec}: cannot import the factory ({type(e).__name__}: {e})") from None
    module = fn()
    if weights is not None:
        if not os.path.exists(weights):
            raise TeacherError(f"{weights}: teacher weights file does not exist")
        try:
            module.load_state_dict(load_tensors(weights))
        except (CheckpointError, RuntimeError) as e:
            raise TeacherError(f"{weights}: weights do not fit {spec} ({str(e).splitlines()[0]})") from None
    L = latent_dim or getattr(module, "latent_dim", None)
    fwd = _accepting_2d(_wrap(module, device))
    L, shape = _probe(fwd, L, spec)
    params = sum(t.numel() for t in module.parameters())
    info = {"weights": weights, "sha256": sha256_file(weights) if weights else None}
    return GeneratorSource("factory", spec, L, shape, params, fwd, module, info)
