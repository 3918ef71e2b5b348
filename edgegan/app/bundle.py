"""A bench bundle: everything a board needs to check and measure a run's exported files, in one tar.gz.

    make_bundle("runs/student", out="bundle.tar.gz", target="aarch64")

Layout (``edgegan-bundle-<stem>/`` inside the archive)::

    run_bench.py            the one script (edgegan/bundle_script.py): checks, images, probe -> one JSON
    bundle.json             schema edgegan.bundle/1: target, models, reference latents, sha256 of every file,
                            the interpreter wheels included or named
    model/manifest.json     the run's manifest, its exports limited to the bundled ones
    model/exports/*         the exported files
    runtime/edgegan_runtime the runtime (numpy + one interpreter; no torch), its probe and its C port
    reference/*.npy         the host's float images for the reference latents, one per model (an image-to-image
                            run: for the reference inputs, reference/inputs-HxW.npy, made from its dataset)
    wheels/*.whl            the target's interpreter wheels, when ``wheels=`` names a folder of them
    README.txt              how to run it

On the board: ``python3 run_bench.py -o device.json``; on the host:
``edgegan bench RUN --device-results device.json`` (``run_bench(..., device_results=[...])``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgegan.errors import BundleError, ConfigError, UnknownNameError
from edgegan.manifest import FILE_MODE, atomic_write_bytes, now_iso, read_manifest, versions
from edgegan.safedir import inside
from edgegan_runtime.checks import MAX_BYTES
from edgegan_runtime.fileio import read_regular

MAX_WHEEL_BYTES = 1 << 30

log = logging.getLogger(__name__)

SCHEMA = "edgegan.bundle/1"
SCRIPT = Path(__file__).with_name("bundle_script.py")
REFERENCE_N = 8  # images per model compared with the host's (the parity check's own count is 64)
REFERENCE_SEED = 0
# Board against host, same file, same runtime: only the interpreter's kernels differ (ARM NEON vs x86
# AVX sum in other orders). fp32 stays within 1e-6 (issue 12's probe); other precisions keep their
# export's parity thresholds, and the board reports whether they were bit-exact.
DEVICE_FP32_MAX_ABS = 1e-6


def reference_labels(num_classes: int | None, n: int = REFERENCE_N) -> list[int] | None:
    """The class of each reference image of a conditional file (issue 20): image i draws class i mod K, so
    the reference covers the first min(n, K) classes; None for an unconditional file. The board's script and
    the web page read the list from the bundle, not this rule."""
    return None if num_classes is None else [i % int(num_classes) for i in range(n)]


@dataclass(frozen=True)
class Target:
    """A board's CPU family: which wheels fit it and which interpreter packages to name."""

    name: str
    machine: str  # platform.machine() on the board
    wheel_platforms: tuple[str, ...]
    note: str


TARGETS = {
    "aarch64": Target("aarch64", "aarch64", ("manylinux2014_aarch64", "manylinux_2_27_aarch64",
                                             "manylinux_2_28_aarch64"),
                      "64-bit ARM Linux: Raspberry Pi 4/5 with a 64-bit OS, Android phones in Termux, ARM servers"),
    "x86_64": Target("x86_64", "x86_64", ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
                     "64-bit x86 Linux (checks a bundle on the host)"),
}
# What the board installs for each file format (the host's versions are named; any recent one works).
INTERPRETERS = {"tflite": ("ai-edge-litert",), "onnx": ("onnxruntime", "onnx")}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise UnknownNameError("bundle target", name, list(TARGETS))
    return TARGETS[name]


def make_bundle(run: str | os.PathLike, *, out: str | os.PathLike, target: str = "aarch64",
                exports: Sequence[str] | None = None, wheels: str | os.PathLike | None = None,
                reference: bool = True) -> dict[str, Any]:
    """Write a bench bundle of ``run``'s exports to ``out`` (tar.gz); returns its summary.

    exports: entries to include, by "format:precision" or file name (default: every entry whose parity
        passed). wheels: a folder of .whl files to include (those fitting the target); without it the
        interpreter is only named. reference: run each file here through edgegan_runtime and store its
        images, so the board reports its difference from this host (needs the host's backends).
    Raises ConfigError (options), BundleError (nothing to bundle, a file that does not match its manifest).
    """
    tgt = get_target(target)
    out = Path(out)
    if out.exists() and out.is_dir():
        raise ConfigError(f"{out}: -o must be a file name (.tar.gz), not a directory")
    m = read_manifest(run)
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    entries = _select(m, exports, run_dir)
    stem = _stem(run_dir)
    top = f"edgegan-bundle-{stem}"
    files: dict[str, bytes] = {}
    models = []
    for e in entries:
        # Inside the run (no absolute path, no .., no symbolic link out of it), a regular file of bounded
        # size: a manifest must not make the bundle pack another file of this machine (issue 25).
        src = inside(run_dir, e["file"], "export file", BundleError)
        data = read_regular(src, MAX_BYTES, "export file", error=BundleError)
        if hashlib.sha256(data).hexdigest() != e.get("sha256"):
            raise BundleError(f"{src}: sha256 differs from the manifest (re-export it)")
        rel = f"model/exports/{src.name}"
        files[rel] = data
        name = f"{e['format']}:{e['precision']}"
        models.append({"name": name, "file": rel, "format": e["format"], "precision": e["precision"],
                       "sha256": e["sha256"], "bytes": e["bytes"], "signatures": e.get("signatures"),
                       "thresholds": _device_thresholds(e), "reference": None})
    bundled = dict(m)
    bundled["exports"] = [{**e, "file": f"exports/{Path(e['file']).name}"} for e in entries]
    files["model/manifest.json"] = json.dumps(bundled, indent=2).encode()
    notes: list[str] = []
    if reference:
        _references(run_dir, entries, models, files, notes)
    files.update(_runtime_files())
    files["run_bench.py"] = SCRIPT.read_bytes()
    included, named = _wheels(tgt, entries, wheels)
    for w in included:
        files[f"wheels/{w.name}"] = read_regular(w, MAX_WHEEL_BYTES, "wheel", error=BundleError)
    files["README.txt"] = _readme(top, tgt, named).encode()
    doc = {"schema": SCHEMA, "created": now_iso(), "run": stem, "target": tgt.name, "target_note": tgt.note,
           "model_sha256": m["model"].get("weights", {}).get("sha256"), "manifest": "model/manifest.json",
           "models": models, "reference": {"n": REFERENCE_N, "seed": REFERENCE_SEED, "host": _host()},
           "wheels": {"included": [w.name for w in included], "named": named}, "notes": notes,
           "versions": versions(), "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}}
    files["bundle.json"] = json.dumps(doc, indent=2).encode()
    atomic_write_bytes(out, _tar(top, files))
    log.info("wrote %s: %d models, %d files, %d bytes", out, len(models), len(files), out.stat().st_size)
    return {"path": str(out), "bytes": out.stat().st_size, "files": len(files), "top": top,
            "models": [x["name"] for x in models], "target": tgt.name, "wheels": doc["wheels"], "notes": notes}


def _device_thresholds(e: dict[str, Any]) -> dict[str, Any]:
    if e["precision"] == "fp32":
        return {"max_abs": DEVICE_FP32_MAX_ABS, "psnr_db": None}
    return dict((e.get("parity") or {}).get("thresholds") or {})


def _stem(run_dir: Path) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_dir.resolve().name).strip("._") or "run"


def _select(m: dict[str, Any], exports: Sequence[str] | None, run_dir: Path) -> list[dict[str, Any]]:
    all_entries = m.get("exports") or []
    if not all_entries:
        raise BundleError(f"{run_dir}: the run has no exports; run `edgegan export` first")
    if exports is None:
        chosen = [e for e in all_entries if (e.get("parity") or {}).get("passed", True)]
        if not chosen:
            raise BundleError(f"{run_dir}: every export failed its parity check; nothing worth measuring")
        return chosen
    labels = {f"{e['format']}:{e['precision']}": e for e in all_entries}
    labels.update({Path(e["file"]).name: e for e in all_entries})
    out = []
    for want in exports:
        if want not in labels:
            raise UnknownNameError("export", want, sorted(labels))
        if labels[want] not in out:
            out.append(labels[want])
    return out


def _references(run_dir: Path, entries: list[dict], models: list[dict], files: dict[str, bytes],
                notes: list[str]) -> None:
    """This host's float images for the reference latents, through the same runtime the board runs."""
    import numpy as np

    import edgegan_runtime as rt

    for e, mdl in zip(entries, models):
        inputs = None
        if (e.get("input") or {}).get("kind") == "image":  # image-to-image (issue 21): real inputs travel too
            size = tuple(int(v) for v in e["input"]["size"])
            rel_in = f"reference/inputs-{size[0]}x{size[1]}.npy"
            if rel_in not in files:
                buf = io.BytesIO()
                np.save(buf, _image_inputs(run_dir, e, size), allow_pickle=False)
                files[rel_in] = buf.getvalue()
            inputs = np.load(io.BytesIO(files[rel_in]), allow_pickle=False)
            mdl["inputs"] = rel_in
        try:
            with rt.load(run_dir / e["file"]) as g:
                labels = reference_labels(g.num_classes) if inputs is None else None
                x = g.generate_from(rt.latent(REFERENCE_N, g.latent_dim, REFERENCE_SEED), labels) if inputs is None \
                    else g.translate_array(inputs)
        except rt.RuntimeModelError as ex:  # e.g. no backend for this format on the host
            notes.append(f"{mdl['name']}: no host reference ({type(ex).__name__}: {ex})")
            continue
        buf = io.BytesIO()
        np.save(buf, x, allow_pickle=False)
        if labels is not None:
            mdl["labels"] = labels
        rel = f"reference/{Path(mdl['file']).stem}.npy"
        files[rel] = buf.getvalue()
        mdl["reference"] = rel


def _image_inputs(run_dir: Path, entry: dict[str, Any], size: tuple[int, int]):
    """``REFERENCE_N`` real inputs (NCHW float32 in [-1, 1]) of an image-to-image file: the task's inputs made
    from the first test-split images of the dataset its parity was checked on, at the file's input size."""
    from edgegan.checkpoint import load_run
    from edgegan.export import images
    from edgegan.export.formats import ExportOptions

    opts = ExportOptions(format=entry["format"], input_size=list(size),
                         dataset=(entry.get("input") or {}).get("dataset"))
    image = images.of_run(load_run(run_dir), opts)
    x, _ = images.task_inputs(image, split="test", size=size, count=REFERENCE_N, seed=REFERENCE_SEED)
    return x


def _runtime_files() -> dict[str, bytes]:
    """The runtime package as installed here (sources and the C port; no caches)."""
    import edgegan_runtime

    root = Path(edgegan_runtime.__file__).parent
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".c", ".h", ".typed"):
            out[f"runtime/edgegan_runtime/{p.relative_to(root).as_posix()}"] = p.read_bytes()
    return out


def _wheels(tgt: Target, entries: list[dict], wheels: str | os.PathLike | None) -> tuple[list[Path], list[str]]:
    """(wheel files to include, requirement lines to name): the target's numpy and interpreters."""
    from importlib import metadata

    names = ["numpy"] + [n for fmt in dict.fromkeys(e["format"] for e in entries) for n in INTERPRETERS[fmt]]
    named = []
    for n in names:
        try:
            named.append(f"{n}=={metadata.version(n)}")
        except metadata.PackageNotFoundError:
            named.append(n)
    if wheels is None:
        return [], named
    wdir = Path(wheels)
    if not wdir.is_dir():
        raise ConfigError(f"{wdir}: --wheels must be a folder of .whl files")
    fit = [w for w in sorted(wdir.glob("*.whl"))
           if w.name.endswith("-any.whl") or any(p in w.name for p in (tgt.machine,))]
    if not fit:
        raise ConfigError(f"{wdir}: no wheel for {tgt.name} (nor a pure one) in it")
    return fit, named


def _host() -> dict[str, Any]:
    from edgegan_runtime.probe import cpu_name

    return {"cpu": cpu_name(), "machine": platform.machine(), "python": platform.python_version()}


def _readme(top: str, tgt: Target, named: list[str]) -> str:
    return f"""edgegan bench bundle for {tgt.name} ({tgt.note}).

On the board, with Python 3.9+ and numpy:

    tar xzf bundle.tar.gz && cd {top}
    python3 -m pip install {' '.join(n for n in named if not n.startswith('numpy'))}   # unless wheels/ fits
    python3 run_bench.py -o device.json

run_bench.py checks every file's sha256, compares each model's images with the host's, writes a
sample grid per model and runs the runtime's latency probe; device.json goes back to the host:

    edgegan bench RUN --out DIR --device-results device.json
"""


def _tar(top: str, files: dict[str, bytes]) -> bytes:
    """A gzip'd tar with fixed owners and times (the same inputs give the same members)."""
    buf = io.BytesIO()
    mtime = int(time.time())
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mtime, info.mode = len(data), mtime, 0o755 if rel == "run_bench.py" else FILE_MODE
            info.uname = info.gname = "edgegan"
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def run_bundle_here(bundle: str | os.PathLike, *, out: str | os.PathLike, runs: int | None = None,
                    args: Sequence[str] = ()) -> dict[str, Any]:
    """Unpack ``bundle`` and run its script with this Python (a check of the bundle on the host, and the
    x86 side of a comparison). Returns the JSON it wrote; raises BundleError if it failed."""
    with tempfile.TemporaryDirectory(prefix="edgegan-bundle-") as tmp:
        with tarfile.open(bundle) as tf:
            tf.extractall(tmp, filter="data")
        (top,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        cmd = [sys.executable, str(top / "run_bench.py"), "--out", str(Path(out).resolve()), *args]
        if runs is not None:
            cmd += ["--runs", str(runs)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        if r.returncode not in (0, 1):
            raise BundleError(f"the bundle's script failed (exit {r.returncode}): "
                              f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(Path(out).read_text())

