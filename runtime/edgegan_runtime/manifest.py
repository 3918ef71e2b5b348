"""Read what the runtime needs from a run's manifest (schema ``edgegan.manifest/1``).

Only the ``model`` input/output spec and the ``exports`` list are read; the rest belongs to other
stages. An export entry names its file relative to the manifest's folder, with its sha256 and size,
which the loader verifies before the file reaches an interpreter.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgegan_runtime.errors import InputError, ManifestError
from edgegan_runtime.fileio import read_regular

SCHEMA = "edgegan.manifest/1"
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 16 << 20


@dataclass(frozen=True)
class ExportRef:
    """One model file to load, with what the manifest promises about it (None: unknown)."""

    path: Path
    sha256: str | None = None
    bytes: int | None = None
    format: str | None = None  # "onnx" | "tflite"
    precision: str | None = None
    latent_dim: int | None = None
    output_shape: tuple[int, int, int] | None = None
    manifest: Path | None = None
    input_kind: str | None = None  # "latent" or "image" (issue 21), as the manifest's model says; None: unknown


def is_manifest(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() == ".json"


def read_manifest(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(manifest path, parsed JSON) for a run directory or a manifest file; raises ManifestError."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    raw = read_regular(p, MAX_MANIFEST_BYTES, "manifest", error=ManifestError)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ManifestError(f"{p}: corrupt manifest, not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ManifestError(f"{p}: not an edgegan manifest (expected schema {SCHEMA!r})")
    return p, data


def entry_label(entry: dict[str, Any]) -> str:
    return f"{entry.get('format')}:{entry.get('precision')}"


def select_export(path: str | os.PathLike, export: str | None = None) -> ExportRef:
    """The export entry ``export`` (a file name, relative path or "format:precision"; default the first)."""
    mpath, data = read_manifest(path)
    exports = data.get("exports")
    if not isinstance(exports, list) or not exports or not all(isinstance(e, dict) for e in exports):
        raise ManifestError(f"{mpath}: manifest lists no exports (run the export stage first)")
    if export is None:
        entry = exports[0]
    else:
        entry = _match(exports, export, mpath)
    return _ref(mpath, data, entry)


def _match(exports: list[dict[str, Any]], export: str, mpath: Path) -> dict[str, Any]:
    for e in exports:
        f = str(e.get("file", e.get("path", "")))
        if export in (f, Path(f).name, entry_label(e)):
            return e
    names = [Path(str(e.get("file", e.get("path", "")))).name for e in exports] + [entry_label(e) for e in exports]
    close = difflib.get_close_matches(export, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ManifestError(f"{mpath}: no export {export!r} (choose from {', '.join(names)}){hint}")


def _ref(mpath: Path, data: dict[str, Any], entry: dict[str, Any]) -> ExportRef:
    rel = entry.get("file", entry.get("path"))
    if not isinstance(rel, str) or not rel:
        raise ManifestError(f"{mpath}: export entry without a 'file'")
    base = mpath.parent.resolve()
    target = (base / rel).resolve()
    if Path(rel).is_absolute() or not target.is_relative_to(base):
        raise ManifestError(f"{mpath}: export file {rel!r} lies outside the run directory")
    sha = entry.get("sha256")
    nbytes = entry.get("bytes")
    fmt = entry.get("format")
    if sha is not None and not _is_sha256(sha):
        raise ManifestError(f"{mpath}: export {rel!r} has a malformed sha256")
    if nbytes is not None and (not isinstance(nbytes, int) or nbytes < 0):
        raise ManifestError(f"{mpath}: export {rel!r} has a malformed byte count")
    if fmt is not None and fmt not in ("onnx", "tflite"):
        raise ManifestError(f"{mpath}: export {rel!r} has unknown format {fmt!r}")
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    latent = model.get("latent") if isinstance(model.get("latent"), dict) else {}
    dim = latent.get("dim")
    shape = (model.get("output") or {}).get("shape") if isinstance(model.get("output"), dict) else None
    image = isinstance(model.get("input"), dict) and model["input"].get("kind") == "image"
    kind = "image" if image else "latent" if isinstance(dim, int) else None
    return ExportRef(
        path=target,
        sha256=sha.lower() if sha else None,
        bytes=nbytes,
        format=fmt,
        precision=entry.get("precision"),
        latent_dim=dim if isinstance(dim, int) else None,
        output_shape=tuple(shape) if isinstance(shape, list) and len(shape) == 3 and not image else None,
        manifest=mpath,
        input_kind=kind,
    )


def _is_sha256(s: Any) -> bool:
    return isinstance(s, str) and len(s) == 64 and all(c in "0123456789abcdefABCDEF" for c in s)


def check_sha256_arg(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not _is_sha256(sha256):
        raise InputError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return sha256.lower()
