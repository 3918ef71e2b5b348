"""The artifact manifest: one JSON file per run directory that travels along the chain.

Layout (schema ``edgegan.manifest/1``)::

    {
      "schema": "edgegan.manifest/1",
      "kind": "teacher" | "baseline" | "student",
      "created": ISO-8601, "versions": {...},
      "model":   {"family", "args", "params", "latent": {"dim", "distribution"},
                  "output": {"shape": [C, H, W], "range": [-1, 1], "layout": "NCHW"},
                  "weights": {"path", "sha256", "bytes"}},
      "dataset": {...}, "config": {...}, "train": {...}        # train-teacher
      "distill": {...}                                         # distill
      "exports": [{...}, ...]                                  # export (one entry per file)
      "bench": {...}                                           # bench
    }

Paths inside are relative to the manifest's directory and carry a sha256. Each stage adds its own
section and leaves the others alone. Writes are atomic: temp file in the same folder, fsync, rename.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

from edgegan.errors import CheckpointError, OutputError

SCHEMA = "edgegan.manifest/1"


# One file-mode rule and one atomic write, defined in the runtime (edgegan_runtime.fileio), imported
# when first used: importing the runtime package loads numpy, and `edgegan --help` must stay light.
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Every file edgegan writes goes through here: a failure (a full disk, a read-only folder, a
    file where a folder should be) is an ``OutputError`` naming the file, and leaves no temporary."""
    from edgegan_runtime.fileio import atomic_write_bytes as write

    try:
        return write(path, data)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or type(e).__name__})") from None


# A manifest is a few KB (a long loss curve: a few hundred); anything near this is not one.
MAX_MANIFEST_BYTES = 64 << 20


def __getattr__(name: str) -> Any:
    if name == "FILE_MODE":
        from edgegan_runtime.fileio import FILE_MODE

        return FILE_MODE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a regular file; opened without blocking and checked first, so a FIFO named in a
    manifest is a CheckpointError, not a hang (issue 14)."""
    import stat

    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"{path}: not a regular file")
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (no NaN/Infinity tokens, which many parsers reject): non-finite floats become the
    strings "inf", "-inf" and "nan" (PSNR of identical images is inf, for instance)."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else ("nan" if math.isnan(o) else ("inf" if o > 0 else "-inf"))
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    try:
        import numpy as np

        if isinstance(o, np.floating):
            return _finite(float(o))
    except ImportError:  # pragma: no cover
        pass
    return o


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def versions(*extra: str) -> dict[str, str]:
    """Versions of the libraries that shaped an artifact (only those already imported, plus ``extra``)."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    names = ["edgegan", "edgegan-runtime", "numpy", "torch", *extra]
    for name in names:
        mod = name.replace("-", "_")
        if name not in ("edgegan", "edgegan-runtime", "numpy") and mod not in sys.modules and name not in extra:
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def manifest_path(run: str | os.PathLike) -> Path:
    p = Path(run)
    return p / MANIFEST_NAME if p.is_dir() else p


def read_manifest(run: str | os.PathLike) -> dict[str, Any]:
    """Read and sanity-check a run's manifest (a run directory or the manifest file itself)."""
    path = manifest_path(run)
    if not os.path.lexists(path):
        raise CheckpointError(f"{path}: no such run or manifest (expected a run directory holding {MANIFEST_NAME})")
    data = load_json(path, "manifest", MAX_MANIFEST_BYTES)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise CheckpointError(f"{path}: not an edgegan manifest (expected schema {SCHEMA!r})")
    model = data.get("model")
    if not isinstance(model, dict) or not {"family", "args", "weights"} <= set(model):
        raise CheckpointError(f"{path}: manifest has no complete 'model' section (family, args, weights)")
    _check_types(data, path)
    return data


def load_json(path: str | os.PathLike, what: str, limit: int) -> Any:
    """A JSON file a stranger may have made (a manifest, state.json): a regular file only, opened
    without blocking (a FIFO must not hang us), at most ``limit`` bytes (``/dev/zero``), and nesting
    deep enough to exhaust the parser's recursion is a CheckpointError like any other corruption."""
    from edgegan_runtime.fileio import read_regular

    raw = read_regular(path, limit, what, error=CheckpointError)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:  # ValueError: a JSON error, or an integer of > 4,300 digits
        raise CheckpointError(f"{path}: corrupt {what}, not valid JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: corrupt {what}, JSON nested too deeply") from None


# Fields later stages index into, with their types: a manifest that travelled between machines is
# checked here once, so a wrong type or a missing field is one CheckpointError instead of a
# TypeError or KeyError deep in a stage. Required: present whenever the section above it is.
_REQUIRED, _OPTIONAL = True, False
_TYPES: tuple[tuple[tuple[str, ...], type | tuple[type, ...], bool], ...] = (
    (("model", "family"), str, _REQUIRED), (("model", "args"), dict, _REQUIRED), (("model", "weights"), dict, _REQUIRED),
    (("model", "weights", "path"), str, _REQUIRED), (("model", "weights", "sha256"), (str, type(None)), _OPTIONAL),
    (("model", "weights", "bytes"), int, _REQUIRED), (("model", "params"), int, _REQUIRED),
    (("model", "latent"), dict, _OPTIONAL), (("model", "latent", "dim"), int, _REQUIRED),  # one of latent, input
    (("model", "input"), dict, _OPTIONAL), (("model", "input", "shape"), list, _REQUIRED),  # (issue 21)
    (("model", "output"), dict, _REQUIRED), (("model", "output", "shape"), list, _REQUIRED),
    (("model", "classes"), dict, _OPTIONAL), (("model", "classes", "count"), int, _REQUIRED),
    (("model", "classes", "names"), (list, type(None)), _OPTIONAL),
    (("kind",), str, _OPTIONAL), (("exports",), list, _OPTIONAL),
    (("distill",), dict, _OPTIONAL), (("distill", "teacher"), dict, _REQUIRED),
    (("distill", "teacher", "spec"), str, _REQUIRED), (("distill", "teacher", "kind"), str, _REQUIRED),
    (("distill", "teacher", "latent_dim"), (int, type(None)), _OPTIONAL),
    (("distill", "teacher", "weights"), (str, type(None)), _OPTIONAL),
    (("distill", "teacher", "import_dir"), (str, type(None)), _OPTIONAL),
    (("distill", "teacher", "spec_from_run"), (str, type(None)), _OPTIONAL),
    (("distill", "teacher", "latent_shape"), (list, type(None)), _OPTIONAL),
    (("distill", "teacher", "range"), (dict, type(None)), _OPTIONAL),
    (("distill", "teacher_params"), (int, type(None)), _REQUIRED),
    (("distill", "compression_ratio"), (int, float, type(None)), _REQUIRED),
    (("distill", "eval"), dict, _REQUIRED), (("distill", "eval", "mse_start"), (int, float), _REQUIRED),
    (("distill", "eval", "mse_end"), (int, float), _REQUIRED),
    (("dataset",), dict, _OPTIONAL), (("dataset", "name"), str, _REQUIRED), (("dataset", "count"), int, _REQUIRED),
    (("train",), dict, _OPTIONAL), (("train", "step"), int, _REQUIRED), (("train", "seconds"), (int, float), _REQUIRED),
    (("config",), dict, _OPTIONAL),
)


def _check_values(node: Any, path: Path, where: str = "") -> None:
    """Every string without NUL (it ends a path in C: a file named by it is another file) and every
    integer within 64 bits, anywhere in the manifest (issue 25); iterative, so any depth is fine."""
    todo = [(where, node)]
    while todo:
        at, v = todo.pop()
        if isinstance(v, str):
            if "\0" in v:
                raise CheckpointError(f"{path}: manifest field {at or '(top)'} holds a NUL character")
        elif isinstance(v, int) and not isinstance(v, bool):
            if abs(v) >= 1 << 63:
                raise CheckpointError(f"{path}: manifest field {at or '(top)'} holds an integer beyond 64 bits")
        elif isinstance(v, dict):
            for k, x in v.items():
                if "\0" in k:
                    raise CheckpointError(f"{path}: manifest field name in {at or '(top)'} holds a NUL character")
                todo.append((f"{at}.{k}" if at else k, x))
        elif isinstance(v, list):
            todo.extend((f"{at}[{i}]", x) for i, x in enumerate(v))


def _check_types(data: dict[str, Any], path: Path) -> None:
    _check_values(data, path)
    for keys, tp, required in _TYPES:
        node: Any = data
        for i, k in enumerate(keys):
            if not isinstance(node, dict) or k not in node:
                if required and i == len(keys) - 1 and isinstance(node, dict):
                    raise CheckpointError(f"{path}: manifest field {'.'.join(keys)} is missing")
                node = _ABSENT
                break
            node = node[k]
        if node is _ABSENT:
            continue
        if not isinstance(node, tp) or (isinstance(node, bool) and bool not in (tp if isinstance(tp, tuple) else (tp,))):
            want = tp.__name__ if isinstance(tp, type) else " or ".join(t.__name__ for t in tp)
            raise CheckpointError(f"{path}: manifest field {'.'.join(keys)} should be {want}, "
                                  f"got {type(node).__name__} ({str(node)[:40]!r})")
    if "latent" not in data["model"] and "input" not in data["model"]:  # a generator takes latents or images
        raise CheckpointError(f"{path}: manifest field model.latent is missing (or model.input, for an image generator)")
    shape = data["model"]["output"]["shape"]
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise CheckpointError(f"{path}: manifest field model.output.shape should be [C, H, W] of positive integers, "
                              f"got {shape!r}")
    for i, e in enumerate(data.get("exports") or []):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise CheckpointError(f"{path}: manifest field exports[{i}] should be an object with a 'file' string")
        for key, tp in (("format", str), ("precision", str), ("bytes", int), ("parity", (dict, type(None)))):
            if key in e and (not isinstance(e[key], tp) or isinstance(e[key], bool)):
                raise CheckpointError(f"{path}: manifest field exports[{i}].{key} has the wrong type "
                                      f"({type(e[key]).__name__})")


_ABSENT = object()


def write_manifest(run_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    manifest = dict(manifest)
    manifest.setdefault("schema", SCHEMA)
    path = Path(run_dir) / MANIFEST_NAME
    atomic_write_json(path, manifest)
    return path


def file_entry(path: str | os.PathLike, base: str | os.PathLike) -> dict[str, Any]:
    """A relative path with its sha256 and size, as every file reference in a manifest is stored."""
    path = Path(path)
    return {"path": os.path.relpath(path, base), "sha256": sha256_file(path), "bytes": path.stat().st_size}


def resolve(run_dir: str | os.PathLike, entry: dict[str, Any], *, verify: bool = True) -> Path:
    """Absolute path of a manifest file entry, checking that it lies inside the run (no absolute path,
    no ``..``, no symbolic link out of it: issue 25, as the runtime does for exports), exists and
    matches its sha256."""
    from edgegan.safedir import inside

    path = inside(run_dir, entry["path"], "file named in the manifest", CheckpointError).resolve()
    if not path.exists():
        raise CheckpointError(f"{path}: file named in the manifest is missing")
    if verify and entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise CheckpointError(f"{path}: sha256 does not match the manifest (file corrupt or replaced)")
    return path
