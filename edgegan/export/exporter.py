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
An image-to-image generator (issue 21) goes the same way with images instead of z: the steps that depend
on what a file takes (probe, prepare, calibration, contract, parity, the entry's input and output) are
methods of ``latents.LatentFile`` and ``images.ImageFile``.
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
from typing import Any, Callable, Sequence

import numpy as np
import torch

from edgegan.checkpoint import load_run
from edgegan.errors import ConfigError, ExportError, OutputError, ParityError
from edgegan.export import images, labels, latents, parity, quant_report, tempfiles
from edgegan.export.formats import ExportOptions
from edgegan.manifest import (FILE_MODE, MANIFEST_NAME, atomic_write_json, now_iso, read_manifest, sha256_file, versions,
                              write_manifest)
from edgegan.outputs import missing_dirs, remove_empty
from edgegan.safedir import manifest_lock

log = logging.getLogger(__name__)

EXPORTS_DIR = "exports"


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
    images.check_latent_options(opts)
    created = missing_dirs(Path(out_dir))
    try:
        inputs = latents.LatentFile(latent_dim, labels.of(module),
                             tuple(expected_output) if expected_output is not None else None)
        entry, tmp, final = _export(module, inputs, Path(out_dir), stem, opts, progress=progress,
                                    manifest_dir=Path(manifest_dir) if manifest_dir is not None else None)
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
    image = images.of_run(loaded, opts)  # an image-to-image run's input (issue 21); None: it takes latents
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
        inputs = images.ImageFile(image) if image is not None else \
            latents.LatentFile(loaded.latent_dim, labels.of(loaded.generator, loaded.class_names), loaded.output_shape)
        entry, tmp, final = _export(loaded.generator, inputs, out_dir / EXPORTS_DIR, _stem_of(run_dir), opts,
                                    progress=progress, manifest_dir=out_dir,
                                    model_sha256=loaded.manifest["model"]["weights"].get("sha256"))
        record_and_commit(out_dir, entry, tmp, final, copy_from=(run_dir, loaded.manifest) if separate else None)
    except BaseException:
        if tmp is not None:
            tempfiles.unlink(tmp)
        remove_empty(created)
        raise
    return entry


# ----------------------------------------------------------------------------------------- core

_STEM = re.compile(r"[A-Za-z0-9._-]+")


def _export(module: torch.nn.Module, inputs: latents.LatentFile | images.ImageFile, out_dir: Path, stem: str,
            opts: ExportOptions, *, progress: bool, manifest_dir: Path | None,
            model_sha256: str | None = None) -> tuple[dict[str, Any], Path, Path]:
    """(manifest entry, the checked temporary file, the final path it is to be renamed to)."""
    t0 = time.perf_counter()
    spec, prec = opts.spec, opts.precision
    final = out_dir / f"{stem}-{spec.name}-{prec.label}{spec.extension}"
    reference = copy.deepcopy(module).float().eval()
    out_shape = inputs.probe(reference)
    inputs.load(opts)  # an image generator's real inputs, read before any conversion
    log.info("exporting %s (%s, quantize=%s) to %s", stem, spec.name, opts.quantize, final)
    prepared, rewrites = inputs.prepare(reference, spec)
    if opts.keep_float and opts.keep_float != (quant_report.AUTO,):
        quant_report.check_layers(opts.keep_float, quant_report.module_names(prepared))
    calibration, calib_meta = inputs.calibration(opts)

    t1 = time.perf_counter()
    identity = {"stem": stem, "file": final.name, "format": spec.name, "precision": prec.label,
                "quantize": opts.quantize, "model_sha256": model_sha256}
    metadata = inputs.metadata(identity, opts, out_shape)
    data, fields = _convert(prepared, opts, inputs.latent_dim, calibration, progress=progress, metadata=metadata,
                            image=inputs.image)
    t2 = time.perf_counter()
    kernel_reference = fields.pop("kernel_reference", None)
    broken = quant_report.channel_failures(fields.get("layers"), prec.thresholds)  # before anything is written
    if broken and not opts.allow_mismatch:
        raise ParityError(f"{final.name}: the quantized file has a broken layer against the float file: {broken[0]}")
    tmp, par = _check(data, final, opts, lambda path: inputs.parity(path, reference, opts, kernel_reference))
    if broken:
        par.update(passed=False, failures={**par.get("failures", {}), "layers": broken})
        log.warning("%s: %s; keeping it because allow_mismatch is set; marked failed in the manifest",
                    final.name, broken[0])
    t3 = time.perf_counter()

    tool_versions = {**versions(), **fields.pop("versions")}
    io = inputs.entry_io(fields, out_shape)  # takes a conditional file's "label" out of fields
    entry: dict[str, Any] = {
        "file": os.path.relpath(final, manifest_dir or out_dir),
        "format": spec.name, "precision": prec.label, "quantize": opts.quantize,
        **fields,
        **io,
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


def _convert(prepared: torch.nn.Module, opts: ExportOptions, latent_dim: int | None, calibration: np.ndarray | None,
             *, progress: bool, metadata: dict[str, str],
             image: images.ImageInput | None = None) -> tuple[bytes, dict[str, Any]]:
    """(file bytes, the format's own manifest fields) for a prepared module, by the converter the format's
    row names; static precisions of a format with a kernel check also carry its ``kernel_reference``.
    ``image``: an image-to-image file's input (issue 21; ``latent_dim`` is then None)."""
    spec = opts.spec
    extra = {} if image is None else {"image": image}
    data, fields = spec.load(spec.converter)(prepared, opts, latent_dim, calibration, progress=progress,
                                             metadata=metadata, **extra)
    if spec.kernel_check and opts.precision.static:
        fields["kernel_reference"] = spec.load(spec.kernel_check)(data)
    return data, fields


def _check(data: bytes, final: Path, opts: ExportOptions,
           measure: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """Write ``data`` to a temporary file beside ``final`` and run it through the runtime (``measure``: the
    file -> its parity section); returns (the temporary file, the parity section) if parity passes (or
    ``allow_mismatch``), else deletes it and raises ParityError. The caller renames it (``tempfiles.commit``)
    once it is recorded."""
    prec = opts.precision
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{final.parent}: cannot create the folder ({e.strerror or type(e).__name__})") from None
    tempfiles.remove_stale(final)
    tmp = tempfiles.write(final, data)
    try:
        par = measure(tmp)
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
