"""One wrapper that gives every format the same validation, timing, atomic write, parity check and
manifest entry (the Ultralytics exporter's best idea, in a few functions rather than one class).

Order of work, so that a failure leaves nothing half-written:

1. options validated (``ExportOptions``) and the run loaded (``load_run``) — before any file exists;
2. the module prepared (BatchNorm folded, ConvTs rewritten for TFLite) and converted in memory;
3. the bytes written to a hidden temporary file next to the target (stale ones that a killed export
   left are removed first), run through ``edgegan_runtime`` and compared with the PyTorch module
   (deleted, raising ``ParityError``, unless ``allow_mismatch``);
4. the manifest's ``exports`` list updated atomically, and only then the file renamed to
   ``<stem>-<format>-<precision><ext>``: a failed manifest update leaves neither (issue 14), a
   failed rename puts the manifest back.

A conditional generator (issue 20) goes the same way with a second input, its one-hot label: its
pieces (the exported module, the label's calibration and exactness, per-class parity) are in ``labels``.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edgegan.checkpoint import load_run
from edgegan.errors import ConfigError, ExportError, OutputError, ParityError
from edgegan.export import labels, parity, quant_report, tempfiles
from edgegan.export.formats import CALIBRATION_BATCH, PARITY_N, ExportOptions
from edgegan.export.prepare import prepare_for_export
from edgegan.manifest import (FILE_MODE, MANIFEST_NAME, atomic_write_json, now_iso, read_manifest, sha256_file, versions,
                              write_manifest)
from edgegan.outputs import missing_dirs, remove_empty
from edgegan.safedir import manifest_lock

log = logging.getLogger(__name__)

EXPORTS_DIR = "exports"
CALIBRATION_SEED_OFFSET = 1  # calibration latents differ from the parity latents (seed + 1 vs seed)


def export_module(module: torch.nn.Module, *, latent_dim: int, out_dir: str | os.PathLike, stem: str,
                  format: str, quantize: str = "none", batch: Sequence[int] | None = None,
                  calibration_samples: int | None = None, allow_mismatch: bool = False, seed: int = 0,
                  progress: bool = False, manifest_dir: str | os.PathLike | None = None,
                  expected_output: Sequence[int] | None = None, latent_rank: int = 2,
                  keep_float: Sequence[str] | str | None = None, report: bool = False) -> dict[str, Any]:
    """Export any generator (z (B, latent_dim) → images (B, C, H, W) in [-1, 1]) to ``out_dir``;
    ``latent_rank`` 4 for a module that takes z (B, latent_dim, 1, 1): the file still takes (B, latent_dim).

    Returns the manifest export entry (its ``file`` relative to ``manifest_dir``, default ``out_dir``);
    writes no manifest. Raises ConfigError (options), ExportError (conversion), ParityError.
    """
    opts = ExportOptions(format=format, quantize=quantize, batch=batch, calibration_samples=calibration_samples,
                         allow_mismatch=allow_mismatch, seed=seed, keep_float=keep_float, report=report)
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
        raise ConfigError(f"latent_dim must be an integer >= 1, got {latent_dim!r}")
    if not _STEM.fullmatch(stem or ""):
        raise ConfigError(f"stem must be letters, digits, '.', '_' or '-', got {stem!r}")
    if latent_rank not in (2, 4):
        raise ConfigError(f"latent_rank must be 2 (B, L) or 4 (B, L, 1, 1), got {latent_rank!r}")
    if latent_rank == 4:
        from edgegan.export.prepare import FlatLatent

        module = FlatLatent(module)
    created = missing_dirs(Path(out_dir))
    try:
        entry, tmp, final = _export(module, latent_dim, Path(out_dir), stem, opts, progress=progress,
                                    manifest_dir=Path(manifest_dir) if manifest_dir is not None else None,
                                    expected_output=tuple(expected_output) if expected_output is not None else None)
        tempfiles.commit(tmp, final)
        return entry
    except BaseException:
        remove_empty(created)
        raise


def export_run(run: str | os.PathLike, options: ExportOptions | None = None, *, out: str | os.PathLike | None = None,
               progress: bool = False, **fields: Any) -> dict[str, Any]:
    """Export a run's generator to ``OUT/exports/`` and record the entry in ``OUT/manifest.json``.

    ``options`` is what ``edgegan export`` builds from its command line, passed as it is; or give its fields
    as keywords (``format="tflite", quantize="int8", batch=[1, 64]``), not both.
    OUT is ``out`` or the run directory. An ``out`` other than the run gets a copy of the run's
    manifest sections and weights, so it is self-contained. Returns the export entry.
    """
    if options is not None and fields:
        raise TypeError(f"export_run: give options or its fields ({', '.join(sorted(fields))}), not both")
    opts = options if options is not None else ExportOptions(**fields)
    loaded = load_run(run)  # CheckpointError for a missing or corrupt run, before anything is written
    run_dir = loaded.run_dir
    out_dir = Path(out) if out is not None else run_dir
    separate = out_dir.resolve() != run_dir.resolve()
    if separate:
        _check_out_dir(out_dir, loaded.manifest)
    if (out_dir / EXPORTS_DIR).is_symlink() or (out_dir / EXPORTS_DIR).exists() and not (out_dir / EXPORTS_DIR).is_dir():
        # A file recorded as exports/x.onnx must resolve inside the run, or the runtime refuses to load it.
        raise ConfigError(f"{out_dir / EXPORTS_DIR}: is a symbolic link or not a folder; exports are written to a real "
                          f"{EXPORTS_DIR}/ folder inside the run (remove it, or export with -o to another directory)")
    created = missing_dirs(out_dir / EXPORTS_DIR)
    tmp = None
    try:
        entry, tmp, final = _export(loaded.generator, loaded.latent_dim, out_dir / EXPORTS_DIR, _stem_of(run_dir), opts,
                                    progress=progress, manifest_dir=out_dir, expected_output=loaded.output_shape,
                                    model_sha256=loaded.manifest["model"]["weights"].get("sha256"),
                                    class_names=loaded.class_names)
        record_and_commit(out_dir, entry, tmp, final, copy_from=(run_dir, loaded.manifest) if separate else None)
    except BaseException:
        if tmp is not None:
            tempfiles.unlink(tmp)
        remove_empty(created)
        raise
    return entry


# ----------------------------------------------------------------------------------------- core

_STEM = re.compile(r"[A-Za-z0-9._-]+")


def _export(module: torch.nn.Module, latent_dim: int, out_dir: Path, stem: str, opts: ExportOptions, *,
            progress: bool, manifest_dir: Path | None, expected_output: tuple[int, ...] | None,
            model_sha256: str | None = None, class_names: list[str] | None = None) -> tuple[dict[str, Any], Path, Path]:
    """(manifest entry, the checked temporary file, the final path it is to be renamed to)."""
    t0 = time.perf_counter()
    spec, prec = opts.spec, opts.precision
    final = out_dir / f"{stem}-{spec.name}-{prec.label}{spec.extension}"
    reference = copy.deepcopy(module).float().eval()
    classes = labels.of(reference, class_names)  # None: unconditional
    out_shape = _probe(reference, latent_dim)
    if expected_output is not None and tuple(out_shape) != tuple(expected_output):
        raise ExportError(f"generator makes images {list(out_shape)}, the manifest says {list(expected_output)}")
    log.info("exporting %s (%s, quantize=%s) to %s", stem, spec.name, opts.quantize, final)
    prepared, rewrites = prepare_for_export(reference, rewrite_convt=spec.rewrite_convt, latent_dim=latent_dim)
    if opts.keep_float and opts.keep_float != (quant_report.AUTO,):
        quant_report.check_layers(opts.keep_float, quant_report.module_names(prepared))
    calibration, calib_meta = _calibration(opts, latent_dim, classes)

    t1 = time.perf_counter()
    metadata = _file_metadata(stem, final.name, opts, latent_dim, out_shape, model_sha256, classes)
    data, fields = _convert(prepared, opts, latent_dim, calibration, progress=progress, metadata=metadata)
    t2 = time.perf_counter()
    kernel_reference = fields.pop("kernel_reference", None)
    broken = quant_report.channel_failures(fields.get("layers"), prec.thresholds)  # before anything is written
    if broken and not opts.allow_mismatch:
        raise ParityError(f"{final.name}: the quantized file has a broken layer against the float file: {broken[0]}")
    tmp, par = _check(data, final, reference, latent_dim, opts, kernel_reference, classes)
    if broken:
        par.update(passed=False, failures={**par.get("failures", {}), "layers": broken})
        log.warning("%s: %s; keeping it because allow_mismatch is set; marked failed in the manifest",
                    final.name, broken[0])
    t3 = time.perf_counter()

    tool_versions = {**versions(), **fields.pop("versions")}
    label = fields.pop("label", None)  # a conditional generator's label input (converters._label)
    entry: dict[str, Any] = {
        "file": os.path.relpath(final, manifest_dir or out_dir),
        "format": spec.name, "precision": prec.label, "quantize": opts.quantize,
        **fields,
        "input": {"shape": [None, latent_dim], "dtype": "float32"},
        **({} if classes is None else {"label": {"shape": [None, classes.count], **label}, "classes": classes.record()}),
        "output": {"shape": [None, *out_shape], "dtype": "float32", "layout": "NCHW", "range": [-1.0, 1.0]},
        "sha256": sha256_file(tmp),
        "bytes": tmp.stat().st_size,
        "calibration": calib_meta,
        "parity": par,
        "rewrites": rewrites,
        "versions": tool_versions,
        "seconds": round(time.perf_counter() - t0, 3),
        "timings": {"prepare": round(t1 - t0, 3), "convert": round(t2 - t1, 3), "parity": round(t3 - t2, 3)},
        "created": now_iso(),
    }
    log.info("checked %s (%d bytes, parity %s: max_abs %s, psnr %s dB) in %.1f s", final, entry["bytes"],
             "passed" if par["passed"] else "FAILED", par.get("max_abs"), par.get("psnr_db"), entry["seconds"])
    return entry, tmp, final


def _file_metadata(stem: str, file: str, opts: ExportOptions, latent_dim: int, out_shape: tuple[int, ...],
                   model_sha256: str | None, classes: labels.Labels | None = None) -> dict[str, str]:
    """What every exported file carries inside itself: the ONNX path writes it to metadata_props, the
    TFLite path to the flatbuffer's metadata. ``edgegan.contract`` is the whole format-independent
    contract (``edgegan_runtime.contract``) that an app reads; the other keys are its older summary."""
    from edgegan_runtime import contract

    identity = {"stem": stem, "file": file, "format": opts.spec.name, "precision": opts.precision.label,
                "quantize": opts.quantize, "model_sha256": model_sha256}
    batches = list(opts.batches) if opts.batches is not None else None
    c = contract.make_contract(latent_dim=latent_dim, output_shape=out_shape, batch_sizes=batches, identity=identity,
                               label=None if classes is None else classes.contract())
    return {"edgegan.stem": stem, "edgegan.latent_dim": str(latent_dim),
            "edgegan.output": f"NCHW {list(out_shape)} float32 in [-1, 1]",
            contract.METADATA_NAME: contract.encode(c).decode()}


def _calibration(opts: ExportOptions, latent_dim: int,
                 classes: labels.Labels | None = None) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """Calibration latents for static precisions (seed + 1: never the parity latents) and their record; a
    conditional generator's are rows z ++ one-hot of uniform classes (``labels.calibration``)."""
    if opts.calibration_count is None:
        return None, None
    import edgegan_runtime as rt

    seed = opts.seed + CALIBRATION_SEED_OFFSET
    meta = {"count": opts.calibration_count, "batch": CALIBRATION_BATCH, "seed": seed,
            "distribution": "edgegan_runtime.latent (standard normal)"}
    rows, more = labels.calibration(rt.latent(opts.calibration_count, latent_dim, seed), classes, seed)
    return rows, {**meta, **more}


def _convert(prepared: torch.nn.Module, opts: ExportOptions, latent_dim: int, calibration: np.ndarray | None, *,
             progress: bool, metadata: dict[str, str]) -> tuple[bytes, dict[str, Any]]:
    """(file bytes, the format's own manifest fields) for a prepared module, by the converter the format's
    row names; static precisions of a format with a kernel check also carry its ``kernel_reference``."""
    spec = opts.spec
    data, fields = spec.load(spec.converter)(prepared, opts, latent_dim, calibration, progress=progress,
                                             metadata=metadata)
    if spec.kernel_check and opts.precision.static:
        fields["kernel_reference"] = spec.load(spec.kernel_check)(data)
    return data, fields


def _check(data: bytes, final: Path, reference: torch.nn.Module, latent_dim: int, opts: ExportOptions,
           kernel_reference=None, classes: labels.Labels | None = None) -> tuple[Path, dict[str, Any]]:
    """Write ``data`` to a temporary file beside ``final`` and run it through the runtime; returns
    (the temporary file, the parity section) if parity passes (or ``allow_mismatch``), else deletes
    it and raises ParityError. The caller renames it (``tempfiles.commit``) once it is recorded."""
    prec = opts.precision
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{final.parent}: cannot create the folder ({e.strerror or type(e).__name__})") from None
    tempfiles.remove_stale(final)
    tmp = tempfiles.write(final, data)
    try:
        def ref(z: np.ndarray) -> np.ndarray:  # z, or rows z ++ one-hot
            with torch.no_grad():
                return reference(*labels.torch_inputs(z, latent_dim, classes)).float().numpy()

        par = parity.check(tmp, ref, latent_dim=latent_dim, batches=opts.batches, thresholds=prec.thresholds,
                           n=max(PARITY_N, *(opts.batches or (1,))), seed=opts.seed,
                           kernel_reference=kernel_reference, classes=classes)
        if par.get("error"):
            par["error"] = par["error"].replace(str(tmp), final.name)
        if not par["passed"]:
            msg = (f"{final.name}: the exported file does not match the PyTorch generator "
                   f"(thresholds {prec.thresholds.to_dict()}):\n{parity.describe(par)}")
            if not opts.allow_mismatch:
                raise ParityError(msg)
            log.warning("%s\nkeeping it because allow_mismatch is set; marked failed in the manifest", msg)
    except BaseException:
        tempfiles.unlink(tmp)
        raise
    return tmp, par


def _probe(module: torch.nn.Module, latent_dim: int) -> tuple[int, ...]:
    """Output shape (C, H, W) for one latent; checks the module honours the file contract."""
    try:
        with torch.no_grad():
            y = module(*labels.sample_inputs(module, 2, latent_dim))
    except Exception as e:
        raise ExportError(f"generator does not accept z of shape (B, {latent_dim}): {type(e).__name__}: {e}") from e
    if not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[0] != 2:
        got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ExportError(f"generator must return one tensor (B, C, H, W); got {got}")
    return tuple(int(s) for s in y.shape[1:])


def _stem_of(run_dir: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", run_dir.resolve().name).strip("._") or "generator"
    return name


# ------------------------------------------------------------------------------------- manifest

def record_and_commit(out_dir: Path, entry: dict[str, Any], tmp: Path, final: Path,
                      copy_from: tuple[Path, dict[str, Any]] | None = None) -> None:
    """Record ``entry`` in ``out_dir``'s manifest, then rename ``tmp`` to ``final``; a failed rename puts
    the manifest back. Under the manifest's lock: concurrent exports of one run each keep their entry
    (issue 25: 3 of 30 were lost). ``copy_from``: (run, its manifest) to copy into a separate ``-o``."""
    with manifest_lock(out_dir):
        if copy_from is not None:
            _copy_run(copy_from[0], out_dir, copy_from[1])
        before = record(out_dir, entry)  # recorded first: a failure here leaves no unrecorded file
        try:
            tempfiles.commit(tmp, final)
        except BaseException:
            write_manifest(out_dir, before)
            raise


def record(manifest_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Add ``entry`` to ``manifest_dir``'s manifest, replacing an entry of the same format and precision;
    returns the manifest as it was before (to put back if the file cannot be committed)."""
    m = read_manifest(manifest_dir)
    before = copy.deepcopy(m)
    exports = [e for e in m.get("exports") or []
               if not (e.get("format") == entry["format"] and e.get("precision") == entry["precision"])]
    exports.append(entry)
    m["exports"] = exports
    write_manifest(manifest_dir, m)
    return before


def _check_out_dir(out_dir: Path, run_manifest: dict[str, Any]) -> None:
    """``-o DIR`` may be new, or hold exports of this same model; never another model's manifest."""
    mpath = out_dir / MANIFEST_NAME
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: -o must be a directory")
    if not mpath.exists():
        return
    try:
        other = read_manifest(out_dir)
    except Exception as e:
        raise ConfigError(f"{out_dir}: holds a manifest that is not a usable edgegan manifest ({e}); "
                          "choose another output directory") from None
    if other["model"].get("weights", {}).get("sha256") != run_manifest["model"]["weights"].get("sha256"):
        raise ConfigError(f"{out_dir}: holds the manifest of another model (its weights differ); "
                          "choose another output directory")


def _copy_run(run_dir: Path, out_dir: Path, run_manifest: dict[str, Any]) -> None:
    """Make ``out_dir`` self-contained: the run's manifest sections (not its exports) and weights."""
    mpath = out_dir / MANIFEST_NAME
    if mpath.exists():
        return  # checked by _check_out_dir: the same model, already copied
    m = copy.deepcopy(run_manifest)
    m.pop("exports", None)
    weights = m["model"]["weights"]
    src = (run_dir / weights["path"]).resolve()
    rel = Path(weights["path"])
    if rel.is_absolute() or ".." in rel.parts:
        rel = Path(src.name)
        weights["path"] = rel.as_posix()
    dst = out_dir / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        if weights.get("sha256") and sha256_file(tmp) != weights["sha256"]:
            raise ExportError(f"{src}: weights changed while being copied to {dst}")
        os.replace(tmp, dst)
    except BaseException:
        tempfiles.unlink(Path(tmp))
        raise
    atomic_write_json(mpath, m)
