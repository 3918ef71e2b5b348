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
from safetensors.torch import load_file, save

from edgegan.errors import CheckpointError
from edgegan.manifest import atomic_write_bytes, file_entry, read_manifest, resolve
from edgegan.models import build_generator, count_params, get_family

WEIGHTS_NAME = "generator.safetensors"


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    atomic_write_bytes(path, data)


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({e})") from None


def save_generator_weights(path: str | os.PathLike, generator: torch.nn.Module, family: str) -> None:
    save_tensors(path, generator.state_dict(), metadata={"family": family})


def model_section(generator: torch.nn.Module, family: str, args: dict[str, Any], run_dir: str | os.PathLike,
                  weights_name: str = WEIGHTS_NAME, write: bool = True) -> dict[str, Any]:
    """Save a generator's weights in ``run_dir`` (unless ``write`` is False: already saved) and return
    the manifest's ``model`` section."""
    run_dir = Path(run_dir)
    wpath = run_dir / weights_name
    if write:
        save_generator_weights(wpath, generator, family)
    a = get_family(family).make_args(**args)
    return {
        "family": family,
        "args": a.to_dict(),
        "params": count_params(generator),
        "latent": {"dim": a.latent_dim, "distribution": "standard_normal"},
        "output": {"shape": list(a.output_shape), "range": [-1.0, 1.0], "layout": "NCHW"},
        "weights": file_entry(wpath, run_dir),
    }


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
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["model"]["output"]["shape"])


def load_run(run: str | os.PathLike) -> LoadedRun:
    """Rebuild a run's generator from its manifest and verified weights; returned in eval mode."""
    manifest = read_manifest(run)
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    model = manifest["model"]
    wpath = resolve(run_dir, model["weights"])
    try:
        gen = build_generator(model["family"], **model["args"])
    except TypeError as e:
        raise CheckpointError(f"{run_dir}: manifest model args do not fit family {model['family']!r} ({e})") from None
    state = load_tensors(wpath)
    try:
        gen.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{wpath}: weights do not fit {model['family']} {model['args']} ({first})") from None
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
# One layout for every resumable command (train-teacher, distill): state.safetensors holds module
# weights that live only in the checkpoint, optimiser moments and RNG states; state.json holds the
# step, the config, the history, the optimisers' scalars and the sha256 of every checkpoint file.
STATE_JSON = "state.json"
STATE_TENSORS = "state.safetensors"


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
    save_tensors(out / STATE_TENSORS, tensors)
    digests = {n: sha256_file(out / n) for n in (*files, STATE_TENSORS)}
    atomic_write_json(out / STATE_JSON, {"step": step, "config": config, "history": history, "optimizer_meta": meta,
                                         "sha256": digests, **(extra or {})})


def read_training_state(out: str | os.PathLike) -> dict[str, Any]:
    """state.json of a checkpoint, after checking every file it names against its sha256."""
    import json

    from edgegan.manifest import sha256_file

    out = Path(out)
    try:
        st = json.loads((out / STATE_JSON).read_text())
        for name, digest in st["sha256"].items():
            if sha256_file(out / name) != digest:
                raise CheckpointError(f"{out / name}: does not match {STATE_JSON} (checkpoint corrupt)")
        int(st["step"]), st["config"], st["history"], st["optimizer_meta"]
        return st
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, FileNotFoundError) as e:
        raise CheckpointError(f"{out}/{STATE_JSON}: corrupt resume state ({type(e).__name__}: {e})") from None


def restore_training_state(out: str | os.PathLike, st: dict[str, Any], *, optimizers: dict[str, torch.optim.Optimizer],
                           rng: torch.Generator, modules: dict[str, torch.nn.Module] | None = None) -> None:
    """Load what ``save_training_state`` wrote back into live objects (the inverse, bit for bit)."""
    t = load_tensors(Path(out) / STATE_TENSORS)
    meta = st["optimizer_meta"]
    try:
        for name, module in (modules or {}).items():
            prefix = f"module.{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)})
        for name, opt in optimizers.items():
            sub_t = {k[len(name) + 1:]: v for k, v in t.items() if k.startswith(name + ".")}
            sub_m = {k[len(name) + 1:]: v for k, v in meta.items() if k.startswith(name + ".")}
            opt.load_state_dict(unflatten_state(sub_t, sub_m))
        rng.set_state(t["rng.sampler"])
        torch.set_rng_state(t["rng.torch"])
    except (KeyError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{out}: checkpoint does not fit this run ({first})") from None
