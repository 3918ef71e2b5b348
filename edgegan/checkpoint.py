"""Generator checkpoints: safetensors weights + the JSON manifest that can rebuild the model.

Never pickle: weights are safetensors, everything else JSON. Optimiser state for ``--resume`` is
flattened into safetensors as well (see ``flatten_state``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from edgegan.errors import CheckpointError, ConfigError
from edgegan.manifest import atomic_write_bytes, file_entry, read_manifest, resolve
from edgegan.models import build_generator, count_params, get_family

WEIGHTS_NAME = "generator.safetensors"


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    atomic_write_bytes(path, data)


# Larger than any checkpoint edgegan makes (a d=512 teacher with its Adam moments is ~6 GB).
MAX_TENSORS_BYTES = 16 << 30


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors file: a regular file only, opened without blocking and read with a size cap
    (``edgegan_runtime.fileio.read_regular``), never a pickle."""
    from edgegan_runtime.fileio import read_regular

    data = read_regular(path, MAX_TENSORS_BYTES, "safetensors file", error=CheckpointError)
    try:
        return load(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({_first_line(e)})") from None


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """``module.load_state_dict(state)`` that refuses, instead of casting, a tensor whose dtype differs
    from the module's (a header saying I32 for a float weight: issue 14), and names the file."""
    expected = module.state_dict()
    for k, v in state.items():
        if k in expected and v.dtype != expected[k].dtype:
            raise CheckpointError(f"{path}: tensor {k!r} is {str(v.dtype).replace('torch.', '')}, "
                                  f"expected {str(expected[k].dtype).replace('torch.', '')}")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def save_generator_weights(path: str | os.PathLike, generator: torch.nn.Module, family: str) -> None:
    save_tensors(path, generator.state_dict(), metadata={"family": family})


def model_section(generator: torch.nn.Module, family: str, args: dict[str, Any], run_dir: str | os.PathLike,
                  weights_name: str = WEIGHTS_NAME, write: bool = True,
                  class_names: list[str] | None = None, task: str | None = None) -> dict[str, Any]:
    """Save a generator's weights in ``run_dir`` (unless ``write`` is False: already saved) and return
    the manifest's ``model`` section; a conditional generator's (``args.num_classes``) has ``classes``:
    ``{"count": K, "names": [...] or null}``, read by export into the file's contract (issue 20)."""
    run_dir = Path(run_dir)
    wpath = run_dir / weights_name
    if write:
        save_generator_weights(wpath, generator, family)
    a = get_family(family).make_args(**args)
    k = getattr(a, "num_classes", None)
    if class_names is not None and (k is None or len(class_names) != k):
        raise ConfigError(f"{len(class_names)} class names for a generator of {k or 'no'} classes")
    return {
        "family": family,
        "args": a.to_dict(),
        "params": count_params(generator),
        **(_input_section(a, task) if get_family(family).input_kind == "image"
           else {"latent": {"dim": a.latent_dim, "distribution": "standard_normal"}}),
        "output": {"shape": list(a.output_shape), "range": [-1.0, 1.0], "layout": "NCHW"},
        "weights": file_entry(wpath, run_dir),
        **({"classes": {"count": k, "names": None if class_names is None else list(class_names)}} if k else {}),
    }


def _input_section(a: Any, task: str | None) -> dict[str, Any]:
    """An image-to-image generator's ``input`` (issue 21): its kind, shape at the training size, range,
    the task that makes it from a dataset's images (``edgegan.tasks``; null: given as it is), and what
    its sides must divide by (the network is fully convolutional)."""
    if task is not None:
        from edgegan.tasks import get_task

        t = get_task(task)
        if t.input_shape(tuple(a.output_shape)) != tuple(a.input_shape):
            raise ConfigError(f"task {task} makes inputs {t.input_shape(tuple(a.output_shape))} for outputs "
                              f"{tuple(a.output_shape)}; the generator takes {tuple(a.input_shape)}")
    return {"input": {"kind": "image", "shape": list(a.input_shape), "range": [-1.0, 1.0], "layout": "NCHW",
                      "task": task, "multiple": a.multiple}}


@dataclass
class LoadedRun:
    run_dir: Path
    manifest: dict[str, Any]
    generator: torch.nn.Module

    @property
    def family(self) -> str:
        return self.manifest["model"]["family"]

    @property
    def args(self) -> dict[str, Any]:
        return self.manifest["model"]["args"]

    @property
    def latent_dim(self) -> int:
        return int(self.manifest["model"]["latent"]["dim"])

    @property
    def input(self) -> dict[str, Any] | None:
        """An image-to-image generator's input record (kind, shape, range, task); None: it takes latents."""
        return self.manifest["model"].get("input")

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["model"]["output"]["shape"])

    @property
    def num_classes(self) -> int | None:
        """K of a conditional generator (it takes z and a label in [0, K)); None: unconditional."""
        return self.manifest["model"]["args"].get("num_classes")

    @property
    def class_names(self) -> list[str] | None:
        return (self.manifest["model"].get("classes") or {}).get("names")


def load_run(run: str | os.PathLike) -> LoadedRun:
    """Rebuild a run's generator from its manifest and verified weights; returned in eval mode."""
    manifest = read_manifest(run)
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    model = manifest["model"]
    wpath = resolve(run_dir, model["weights"])
    try:
        gen = build_generator(model["family"], **model["args"])
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"{run_dir}: manifest model args do not fit family {model['family']!r} ({e})") from None
    load_into(gen, load_tensors(wpath), wpath)
    gen.eval()
    return LoadedRun(run_dir=run_dir, manifest=manifest, generator=gen)


def flatten_state(prefix: str, obj: Any, out: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Split a nested state dict (optimiser state) into tensors (→ safetensors) and scalars (→ JSON)."""
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten_state(f"{prefix}.{k}" if prefix else str(k), v, out, meta)
    elif isinstance(obj, (list, tuple)):
        meta[prefix] = {"__seq__": len(obj), "tuple": isinstance(obj, tuple)}
        for i, v in enumerate(obj):
            flatten_state(f"{prefix}.{i}", v, out, meta)
    else:
        meta[prefix] = obj


def unflatten_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Any:
    """Inverse of ``flatten_state`` for the structures torch optimisers use."""
    root: dict[str, Any] = {}
    items: dict[str, Any] = {**{k: v for k, v in meta.items() if not (isinstance(v, dict) and "__seq__" in v)}, **tensors}
    for key, value in items.items():
        parts = key.split(".")
        node = root
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value

    def fix(prefix: str, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        seq = meta.get(prefix)
        if isinstance(seq, dict) and "__seq__" in seq:
            vals = [fix(f"{prefix}.{i}" if prefix else str(i), node.get(str(i))) for i in range(seq["__seq__"])]
            return tuple(vals) if seq["tuple"] else vals
        out = {}
        for k, v in node.items():
            key: Any = int(k) if k.isdigit() else k
            out[key] = fix(f"{prefix}.{k}" if prefix else k, v)
        return out

    return fix("", root)


# ----------------------------------------------------------------------- resumable training state
# One layout for every resumable command (train-teacher, distill): state-<step>.safetensors holds the
# modules' weights, optimiser moments and RNG states; state.json holds the step, the config, the
# history, the optimisers' scalars and the sha256 of every checkpoint file, and names the tensors
# file. state.json is the commit point: it is replaced last, and the tensors file it named before is
# deleted only after it, so a SIGKILL at any moment leaves one complete checkpoint (issue 14).
STATE_JSON = "state.json"
STATE_TENSORS = "state.safetensors"  # the name before issue 14; still read
MAX_STATE_JSON_BYTES = 256 << 20


def _tensors_name(step: int) -> str:
    return f"state-{step:09d}.safetensors"


def save_training_state(out: str | os.PathLike, *, step: int, config: dict[str, Any], history: list,
                        optimizers: dict[str, torch.optim.Optimizer], rng: torch.Generator,
                        modules: dict[str, torch.nn.Module] | None = None, files: tuple[str, ...] = (),
                        extra: dict[str, Any] | None = None) -> None:
    """Write a resumable checkpoint into ``out``; ``files`` are weights the caller already wrote there
    (their sha256 goes into state.json, so a resume notices a torn checkpoint). state.json is written
    last: it is the checkpoint's commit point."""
    from edgegan.manifest import atomic_write_json, sha256_file

    out = Path(out)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, module in (modules or {}).items():
        for k, v in module.state_dict().items():
            tensors[f"module.{name}.{k}"] = v
    for name, opt in optimizers.items():
        flatten_state(name, opt.state_dict(), tensors, meta)
    tensors["rng.sampler"] = rng.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    tname = _tensors_name(step)
    save_tensors(out / tname, tensors)
    digests = {n: sha256_file(out / n) for n in (*files, tname)}
    atomic_write_json(out / STATE_JSON, {"step": step, "config": config, "history": history, "optimizer_meta": meta,
                                         "tensors": tname, "sha256": digests, **(extra or {})})
    for old in out.glob("state*.safetensors"):  # after the commit: the checkpoints it replaced
        if old.name != tname:
            old.unlink(missing_ok=True)


def read_training_state(out: str | os.PathLike) -> dict[str, Any]:
    """state.json of a checkpoint, after checking every file it names against its sha256."""
    from edgegan.manifest import load_json, sha256_file

    out = Path(out)
    st = load_json(out / STATE_JSON, "resume state", MAX_STATE_JSON_BYTES)
    try:
        if not isinstance(st, dict) or not isinstance(st["sha256"], dict):
            raise TypeError("not an object with a 'sha256' object")
        tname = st.get("tensors", STATE_TENSORS)
        if not isinstance(tname, str) or Path(tname).name != tname or tname not in st["sha256"]:
            raise ValueError(f"bad tensors file name {tname!r}")
        for name, digest in st["sha256"].items():
            if not isinstance(name, str) or Path(name).name != name:
                raise ValueError(f"bad file name {name!r}")
            if not (out / name).exists() or sha256_file(out / name) != digest:
                raise CheckpointError(f"{out / name}: does not match {STATE_JSON} (checkpoint corrupt)")
        step = st["step"]
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step {step!r} is not a count")
        if not isinstance(st["config"], dict) or not isinstance(st["history"], list) \
                or not isinstance(st["optimizer_meta"], dict):
            raise TypeError("config, history or optimizer_meta has the wrong type")
        return st
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{out}/{STATE_JSON}: corrupt resume state ({type(e).__name__}: {e})") from None


def restore_training_state(out: str | os.PathLike, st: dict[str, Any], *, optimizers: dict[str, torch.optim.Optimizer],
                           rng: torch.Generator, modules: dict[str, torch.nn.Module] | None = None) -> None:
    """Load what ``save_training_state`` wrote back into live objects (the inverse, bit for bit).
    A tensor of the wrong dtype or shape is a CheckpointError, never a silent cast or a failure at
    the first step (issue 14)."""
    path = Path(out) / st.get("tensors", STATE_TENSORS)
    t = load_tensors(path)
    meta = st["optimizer_meta"]
    try:
        for name, module in (modules or {}).items():
            prefix = f"module.{name}."
            load_into(module, {k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}, path)
        for name, opt in optimizers.items():
            sub_t = {k[len(name) + 1:]: v for k, v in t.items() if k.startswith(name + ".")}
            sub_m = {k[len(name) + 1:]: v for k, v in meta.items() if k.startswith(name + ".")}
            opt.load_state_dict(unflatten_state(sub_t, sub_m))
            _check_optimizer(opt, name, path)
        rng.set_state(t["rng.sampler"])
        torch.set_rng_state(t["rng.torch"])
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{out}: checkpoint does not fit this run ({_first_line(e)})") from None


def _check_optimizer(opt: torch.optim.Optimizer, name: str, path: Path) -> None:
    """Moments must have their parameter's shape and a float dtype (load_state_dict checks neither)."""
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if not isinstance(v, torch.Tensor):
                    continue
                if not v.is_floating_point():
                    raise CheckpointError(f"{path}: {name} state {k!r} is {str(v.dtype).replace('torch.', '')}, "
                                          "expected a float tensor")
                if v.dim() > 0 and v.shape != p.shape:
                    raise CheckpointError(f"{path}: {name} state {k!r} has shape {list(v.shape)}, its parameter "
                                          f"{list(p.shape)}")
