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

from edgegan.errors import CheckpointError

SCHEMA = "edgegan.manifest/1"


# One file-mode rule and one atomic write, defined in the runtime (edgegan_runtime.fileio), imported
# when first used: importing the runtime package loads numpy, and `edgegan --help` must stay light.
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    from edgegan_runtime.fileio import atomic_write_bytes as write

    return write(path, data)


def __getattr__(name: str) -> Any:
    if name == "FILE_MODE":
        from edgegan_runtime.fileio import FILE_MODE

        return FILE_MODE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
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
    if not path.exists():
        raise CheckpointError(f"{path}: no such run or manifest (expected a run directory holding {MANIFEST_NAME})")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt manifest, not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise CheckpointError(f"{path}: not an edgegan manifest (expected schema {SCHEMA!r})")
    model = data.get("model")
    if not isinstance(model, dict) or not {"family", "args", "weights"} <= set(model):
        raise CheckpointError(f"{path}: manifest has no complete 'model' section (family, args, weights)")
    return data


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
    """Absolute path of a manifest file entry, checking that it exists and matches its sha256."""
    path = (Path(run_dir) / entry["path"]).resolve()
    if not path.exists():
        raise CheckpointError(f"{path}: file named in the manifest is missing")
    if verify and entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise CheckpointError(f"{path}: sha256 does not match the manifest (file corrupt or replaced)")
    return path
