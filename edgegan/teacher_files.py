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

from edgegan.errors import ConfigError, TeacherError
from edgegan.manifest import sha256_file
from edgegan.sources import (LATENT_RANKS, GeneratorSource, _probe, _refuse_conditional, _required_args, _shaped,
                             _wrap)

log = logging.getLogger("edgegan.sources")


def open_torchscript(p: Path, device: str):
    """(forward, module, params, info) of a TorchScript archive; the number of inputs it requires in info."""
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
    params = sum(t.numel() for t in module.parameters())
    return _wrap(module, device), module, params, {"sha256": sha256_file(p), "inputs": len(args)}


def from_torchscript(p: Path, latent_dim: int | None, rank: int | None, device: str,
                     labels: tuple = (None, None)) -> GeneratorSource:
    raw, module, params, info = open_torchscript(p, device)
    if info.pop("inputs") == 2:
        return _conditional("torchscript", str(p), raw, module, params, info, latent_dim, rank, labels)
    L, r, shape = _probe(raw, latent_dim, rank, str(p))
    return GeneratorSource("torchscript", str(p), L, shape, params, _shaped(raw, r), module, info, latent_rank=r)


def _conditional(kind: str, spec: str, raw2, module, params, info: dict, latent_dim: int | None, rank: int | None,
                 labels: tuple, declared_k: int | None = None, index_dtype: str = "int64") -> GeneratorSource:
    """The GeneratorSource of a teacher that takes (z, label) (issue 20)."""
    from edgegan.teacher_labels import conditional_forward, module_classes, probe_conditional

    num_classes, recorded = labels
    L, r, shape, lf = probe_conditional(raw2, spec, latent_dim=latent_dim, rank=rank, num_classes=num_classes,
                                        recorded=recorded, declared_k=declared_k or module_classes(module),
                                        index_dtype=index_dtype)
    if num_classes is not None and num_classes != lf.num_classes:
        raise ConfigError(f"{spec}: --num-classes {num_classes} contradicts the teacher, recorded with {lf.num_classes}")
    log.info("%s: conditional teacher, %s labels of %d classes", spec, lf.form, lf.num_classes)
    return GeneratorSource(kind, spec, L, shape, params, conditional_forward(raw2, r, lf), module, info,
                           latent_rank=r, labels=lf)


def _onnx_session(p: Path):
    """(model, session) of an ONNX teacher, read once and bounded, structurally checked first."""

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
        so = ort.SessionOptions()
        so.log_severity_level = 4  # probing runs the teacher on inputs it may refuse; its refusals are answers
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    except ModelFileError as e:
        raise TeacherError(str(e)) from None
    except Exception as e:  # noqa: BLE001
        raise TeacherError(f"{p}: not a valid ONNX model ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return model, sess


def open_onnx(p: Path):
    """(forward, None, params, info) of a one-input ONNX teacher run by onnxruntime (an image-to-image one)."""
    import numpy as np
    import torch

    model, sess = _onnx_session(p)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise TeacherError(f"{p}: an image-to-image teacher takes one input (the image); this one takes {len(inputs)}")
    params = int(sum(np.prod(t.dims) for t in model.graph.initializer))
    name = inputs[0].name
    batch = inputs[0].shape[0] if isinstance(inputs[0].shape[0], int) else None  # a file exported for batch 1

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: x})[0]

    def raw(x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)
        if batch is None or batch == len(a):
            return torch.from_numpy(run(a))
        if len(a) % batch:
            raise TeacherError(f"{p}: the teacher takes batches of exactly {batch}; got {len(a)}")
        return torch.from_numpy(np.concatenate([run(a[i:i + batch]) for i in range(0, len(a), batch)]))

    return raw, None, params, {"sha256": sha256_file(p), "input_shape": [d if isinstance(d, int) else None
                                                                         for d in inputs[0].shape]}


def from_onnx(p: Path, latent_dim: int | None, labels: tuple = (None, None)) -> GeneratorSource:
    import numpy as np
    import torch

    model, sess = _onnx_session(p)
    inputs = sess.get_inputs()
    _refuse_conditional(str(p), len(inputs))
    params = int(sum(np.prod(t.dims) for t in model.graph.initializer))
    if len(inputs) == 2:
        return _onnx_conditional(p, sess, inputs, params, latent_dim, labels)
    shape = inputs[0].shape
    dims = [d for d in shape[1:]]
    rank = len(shape)
    if rank not in LATENT_RANKS or (rank == 4 and list(dims[1:]) != [1, 1]):
        raise TeacherError(f"{p}: teacher input has shape {shape}; expected (N, L) or (N, L, 1, 1)"
                           + ("; an image-to-image teacher? pass --task (sr2x, colorize, ...) and --dataset"
                              if rank == 4 else ""))
    if latent_dim is None:
        if not dims or not isinstance(dims[0], int):
            raise TeacherError(f"{p}: cannot read the latent size from input shape {shape}; pass --latent-dim")
        latent_dim = int(dims[0])
    in_name = inputs[0].name
    # Every initializer counts, BatchNorm running statistics included (torch counts only parameters).

    def raw(z: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(z.detach().cpu().numpy().astype(np.float32))
        return torch.from_numpy(sess.run(None, {in_name: x})[0])

    L, r, out_shape = _probe(raw, latent_dim, rank, str(p))
    return GeneratorSource("onnx", str(p), L, out_shape, params, _shaped(raw, r), None, {"sha256": sha256_file(p)},
                           latent_rank=r)


_LABEL_NAMES = ("label", "labels", "y", "class", "classes", "c", "class_label", "cls", "onehot", "one_hot")


def _onnx_conditional(p: Path, sess, inputs, params: int, latent_dim: int | None, labels: tuple) -> GeneratorSource:
    """An ONNX teacher with inputs z and a label: which is which from their types and names; K from a
    one-hot input's static width."""
    import numpy as np
    import torch

    def is_int(i) -> bool:
        return i.type in ("tensor(int64)", "tensor(int32)")

    def labelish(i) -> bool:
        return is_int(i) or i.name.lower() in _LABEL_NAMES

    order = sorted(range(2), key=lambda j: not labelish(inputs[j]))  # the label input first
    li, zi = inputs[order[0]], inputs[order[1]]
    if is_int(zi) or zi.type != "tensor(float)" or li.type not in ("tensor(float)", "tensor(int64)", "tensor(int32)"):
        raise TeacherError(f"{p}: a conditional teacher takes float z and a class label (int64/int32 (N,) or float "
                           f"one-hot (N, K)); its inputs are {[(i.name, i.type, i.shape) for i in inputs]}")
    zshape = zi.shape
    if latent_dim is None and len(zshape) >= 2 and isinstance(zshape[1], int):
        latent_dim = int(zshape[1])
    declared = None
    if not is_int(li):
        if len(li.shape) != 2:
            raise TeacherError(f"{p}: float label input {li.name!r} of shape {li.shape}; expected a one-hot (N, K)")
        declared = li.shape[1] if isinstance(li.shape[1], int) else None
    elif len(li.shape) != 1:
        raise TeacherError(f"{p}: integer label input {li.name!r} of shape {li.shape}; expected class indices (N,)")

    def raw2(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(z.detach().cpu().numpy().astype(np.float32))
        return torch.from_numpy(sess.run(None, {zi.name: x, li.name: np.ascontiguousarray(y.cpu().numpy())})[0])

    rank = len(zshape) if len(zshape) in LATENT_RANKS else None
    src = _conditional("onnx", str(p), raw2, None, params, {"sha256": sha256_file(p)}, latent_dim, rank, labels,
                       declared_k=declared, index_dtype="int32" if li.type == "tensor(int32)" else "int64")
    src.input_names = {"z": zi.name, "label": li.name}  # for the feature term's tapped runs (edgegan.onnx_taps)
    if (src.labels.form == "index") != is_int(li):
        raise TeacherError(f"{p}: label input {li.name!r} is {li.type} but ran as {src.labels.form} labels")
    return src


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


def open_factory(spec: str, weights: str | None, device: str, import_dir: str | None):
    """(forward, module, params, info) of a ``module:factory`` with its weights loaded."""
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
    n_args = _required_args(getattr(module, "forward", module))
    _refuse_conditional(spec, n_args)
    params = sum(t.numel() for t in module.parameters())
    info = {"weights": weights, "sha256": sha256_file(_split_key(weights)[0]) if weights else None, "import_dir": where}
    return _wrap(module, device), module, params, {**info, "inputs": n_args}


def from_factory(spec: str, weights: str | None, latent_dim: int | None, rank: int | None, device: str,
                 import_dir: str | None, labels: tuple = (None, None)) -> GeneratorSource:
    raw, module, params, info = open_factory(spec, weights, device, import_dir)
    n_args = info.pop("inputs")
    L = latent_dim or getattr(module, "latent_dim", None)
    if n_args == 2:
        return _conditional("factory", spec, raw, module, params, info, L, rank, labels)
    L, r, shape = _probe(raw, L, rank, spec)
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
