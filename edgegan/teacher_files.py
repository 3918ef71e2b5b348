"""The three foreign teacher forms ``edgegan.sources.load_generator`` opens: a TorchScript archive, an ONNX file
(run by onnxruntime) and a ``module:factory`` with its weights (safetensors, or a torch state dict read with
``weights_only``); each returns a ``GeneratorSource`` with its latent shape probed."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from pathlib import Path

from edgegan.errors import TeacherError
from edgegan.manifest import sha256_file
from edgegan.sources import (LATENT_RANKS, GeneratorSource, _probe, _refuse_conditional, _required_args, _shaped,
                             _wrap)

log = logging.getLogger("edgegan.sources")


def from_torchscript(p: Path, latent_dim: int | None, rank: int | None, device: str) -> GeneratorSource:
    import torch

    try:
        module = torch.jit.load(str(p), map_location=device)
    except Exception as e:  # noqa: BLE001
        raise TeacherError(f"{p}: not a loadable TorchScript archive ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    try:  # the schema's first argument is self
        args = [a for a in module.forward.schema.arguments[1:] if not a.has_default_value()]
    except (AttributeError, RuntimeError):
        args = []
    _refuse_conditional(str(p), len(args))
    raw = _wrap(module, device)
    L, r, shape = _probe(raw, latent_dim, rank, str(p))
    params = sum(t.numel() for t in module.parameters())
    return GeneratorSource("torchscript", str(p), L, shape, params, _shaped(raw, r), module,
                           {"sha256": sha256_file(p)}, latent_rank=r)


def from_onnx(p: Path, latent_dim: int | None) -> GeneratorSource:
    import numpy as np
    import torch

    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        raise TeacherError(f"{p}: ONNX teachers need onnxruntime and onnx (pip install 'edgegan[export]'): {e}") from None
    from edgegan_runtime.checks import MAX_BYTES
    from edgegan_runtime.errors import ModelFileError
    from edgegan_runtime.fileio import read_regular
    from edgegan_runtime.onnx_check import check_structure

    # Read once, bounded, and run from those bytes with the runtime's structural checks first: no
    # external data is read from beside the file (issue 25), no loop, no attribute that crashes ORT.
    data = read_regular(p, MAX_BYTES, "teacher file", error=TeacherError)
    try:
        model = onnx.load_model_from_string(data)
        check_structure(model, str(p))
        onnx.checker.check_model(model)
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except ModelFileError as e:
        raise TeacherError(str(e)) from None
    except Exception as e:  # noqa: BLE001
        raise TeacherError(f"{p}: not a valid ONNX model ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    inputs = sess.get_inputs()
    _refuse_conditional(str(p), len(inputs))
    if len(inputs) != 1:
        raise TeacherError(f"{p}: teacher must take exactly one input (z), it takes {len(inputs)}")
    shape = inputs[0].shape
    dims = [d for d in shape[1:]]
    rank = len(shape)
    if rank not in LATENT_RANKS or (rank == 4 and list(dims[1:]) != [1, 1]):
        raise TeacherError(f"{p}: teacher input has shape {shape}; expected (N, L) or (N, L, 1, 1)")
    if latent_dim is None:
        if not dims or not isinstance(dims[0], int):
            raise TeacherError(f"{p}: cannot read the latent size from input shape {shape}; pass --latent-dim")
        latent_dim = int(dims[0])
    in_name = inputs[0].name
    # Every initializer counts, BatchNorm running statistics included (torch counts only parameters).
    params = int(sum(np.prod(t.dims) for t in model.graph.initializer))

    def raw(z: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(z.detach().cpu().numpy().astype(np.float32))
        return torch.from_numpy(sess.run(None, {in_name: x})[0])

    L, r, out_shape = _probe(raw, latent_dim, rank, str(p))
    return GeneratorSource("onnx", str(p), L, out_shape, params, _shaped(raw, r), None, {"sha256": sha256_file(p)},
                           latent_rank=r)


@contextlib.contextmanager
def _on_path(folder: str | None):
    if folder is None or folder in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def _import_factory(spec: str, import_dir: str | None):
    """``module:function``, imported as Python would, else from ``import_dir`` (default: the current
    directory, which the ``edgegan`` console script does not put on sys.path)."""
    mod_name, fn_name = spec.split(":")
    folder = os.path.abspath(import_dir) if import_dir else os.getcwd()
    try:
        with _on_path(folder):
            fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise TeacherError(f"{spec}: cannot import the factory from {folder} or sys.path ({type(e).__name__}: {e}); "
                           "run from the directory that holds the module, or put it on PYTHONPATH") from None
    mod = sys.modules[mod_name]
    where = os.path.dirname(os.path.abspath(getattr(mod, "__file__", "") or folder))
    # the directory to put on sys.path: the top package's parent
    for _ in range(mod_name.count(".")):
        where = os.path.dirname(where)
    return fn, where


def from_factory(spec: str, weights: str | None, latent_dim: int | None, rank: int | None, device: str,
                  import_dir: str | None) -> GeneratorSource:
    from edgegan.checkpoint import load_tensors
    from edgegan.errors import CheckpointError

    import torch

    fn, where = _import_factory(spec, import_dir)
    try:
        module = fn()
    except Exception as e:  # noqa: BLE001 - the user's code: its failure is a teacher error, one line
        raise TeacherError(f"{spec}: the factory failed ({type(e).__name__}: {e})") from None
    if not isinstance(module, torch.nn.Module):  # issue 25: a factory returning a function, a tensor, None
        raise TeacherError(f"{spec}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    if weights is not None:
        path, key = _split_key(weights)
        if not os.path.exists(path):
            raise TeacherError(f"{path}: teacher weights file does not exist")
        weights = os.path.abspath(path) + (f"#{key}" if key else "")
        try:
            state = load_tensors(path) if _is_safetensors(path) else torch_state_dict(path, key)
            module.load_state_dict(state)
        except (CheckpointError, RuntimeError) as e:
            raise TeacherError(f"{weights}: weights do not fit {spec} ({str(e).splitlines()[0]})") from None
    _refuse_conditional(spec, _required_args(getattr(module, "forward", module)))
    L = latent_dim or getattr(module, "latent_dim", None)
    raw = _wrap(module, device)
    L, r, shape = _probe(raw, L, rank, spec)
    params = sum(t.numel() for t in module.parameters())
    info = {"weights": weights, "sha256": sha256_file(_split_key(weights)[0]) if weights else None, "import_dir": where}
    return GeneratorSource("factory", spec, L, shape, params, _shaped(raw, r), module, info, latent_rank=r)


def _split_key(weights: str) -> tuple[str, str | None]:
    """``W.pth#netG_state_dict`` -> (``W.pth``, ``netG_state_dict``): a state dict inside a torch.save dict."""
    if "#" in weights and not os.path.exists(weights):
        path, _, key = weights.rpartition("#")
        return path, key or None
    return weights, None


def _is_safetensors(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return path.endswith(".safetensors") or (len(head) > 8 and head[8:9] == b"{")


def torch_state_dict(path: str, key: str | None = None) -> dict:
    """A state dict saved with ``torch.save`` (``.pth``), read with ``weights_only=True``: tensors and
    plain containers only, no code runs (a pickle that needs a class is refused). ``key`` picks one
    state dict out of a checkpoint that holds several (``{"netG_state_dict": ..., "netD_state_dict": ...}``)."""
    import torch

    from edgegan.errors import CheckpointError

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle, zip and unpickler errors alike
        raise CheckpointError(f"{path}: not a torch.save file that loads with weights_only=True "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None

    def is_state(d) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())

    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            have = sorted(obj) if isinstance(obj, dict) else []
            raise CheckpointError(f"{path}: no key {key!r} (keys: {', '.join(map(str, have)) or 'none'})")
        obj = obj[key]
    if is_state(obj):
        return obj
    nested = sorted(k for k, v in obj.items() if is_state(v)) if isinstance(obj, dict) else []
    if nested:
        raise CheckpointError(f"{path}: holds several entries ({', '.join(map(str, nested))}); pick the generator's "
                              f"state dict with --teacher-weights {path}#{nested[0]}")
    raise CheckpointError(f"{path}: not a state dict (a dict of tensors)")
