"""The web target of ``edgegan bundle`` (issue 23): a static site that generates on the device.

    make_site("runs/student", out="site/")

Layout of ``site/`` (serve it from any static server; it works offline once loaded)::

    index.html, app.js      the page: a grid for a seed (and a class, for a conditional model: a class
                            picker named by the contract's class names), "new seed", latency per image, the
                            model's contract, a check against this host's images, a probe that writes device.json
    edgegan.js              the ES module: loadGenerator, the latent sampler and the pixel rule
                            (edgegan_runtime's, bit for bit), generate(n, {seed, label | labels}) -> ImageData[]
    sw.js                   a service worker that caches every file below (offline after the first visit)
    manifest.webmanifest, icon.png, icon-512.png   installable as a PWA (the host's first reference image)
    site.json               schema edgegan.web-site/1: models (file, sha256, bytes, contract, thresholds,
                            reference files), reference latents, runtime, sha256 of every file
    models/*.onnx           the run's ONNX exports
    reference/*.f32, *.u8   this host's float images (N, C, H, W) and pixels (N, H, W, C) for the
                            reference latents (and, conditional, the classes site.json's reference.labels
                            lists), raw little-endian; *.png the same pixels as a grid
    ort/                    onnxruntime-web's WebAssembly build (ort.wasm.min.mjs, its .wasm and .mjs)

The assets live in ``edgegan/web/`` (package data, so an installed edgegan writes the same site); the
runtime's files come from ``node_modules/onnxruntime-web`` there (``make web-deps`` runs ``npm ci``
against the committed lockfile) or from ``web_runtime=``. The page runs ONNX files only: LiteRT.js
(@litertjs/core 2.5.3) refuses edgegan's static-int8 .tflite files (int8 input tensors), see
``bench/results/web.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from html import escape as html_escape
from pathlib import Path
from typing import Any, Sequence

from edgegan.app.bundle import DEVICE_FP32_MAX_ABS, REFERENCE_N, REFERENCE_SEED, _host, _select, _stem, reference_labels
from edgegan.errors import BundleError, ConfigError, OutputError
from edgegan.manifest import now_iso, read_manifest

log = logging.getLogger(__name__)

SCHEMA = "edgegan.web-site/1"
WEB_DIR = Path(__file__).parent.parent / "web"  # edgegan/web: the page, the module and the lockfile
ASSETS = ("index.html", "app.js", "edgegan.js", "manifest.webmanifest")
FORMAT = "onnx"  # what the page's runtime runs (see the module doc)
RUNTIME = "onnxruntime-web"
RUNTIME_FILES = ("dist/ort.wasm.min.mjs", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm")
# A page downloads its model before the first image, on a phone's connection, and onnxruntime-web copies it
# into a 32-bit WebAssembly heap that mobile browsers cap at 1-2 GB: 32 MiB is twice the d=64 face teacher
# (14 MB), hundreds of times any student; a larger file is not an edge model for a page.
MAX_MODEL_BYTES = 32 << 20
# The browser against the host, same file, same runtime family: fp32 within the board's 1e-6 and no pixel
# more than one level off; other precisions keep their export's parity thresholds.
FP32_MAX_PIXEL_DIFF = 1


def runtime_version() -> str:
    """The onnxruntime-web version the lockfile pins (edgegan/web/package.json)."""
    return json.loads((WEB_DIR / "package.json").read_text())["dependencies"][RUNTIME]


def find_runtime(web_runtime: str | os.PathLike | None = None) -> Path:
    """The onnxruntime-web package folder, at the pinned version; BundleError when it is missing."""
    base = Path(web_runtime) if web_runtime is not None else WEB_DIR
    pkg = base / "node_modules" / RUNTIME
    if not (pkg / "package.json").is_file():
        raise BundleError(f"{pkg}: {RUNTIME} is not installed; run `make web-deps` (npm ci in edgegan/web) "
                          "or pass --web-runtime DIR (a folder with node_modules/onnxruntime-web)")
    got, want = json.loads((pkg / "package.json").read_text()).get("version"), runtime_version()
    if got != want:
        raise BundleError(f"{pkg}: {RUNTIME} {got}, the lockfile pins {want}; run `make web-deps`")
    missing = [f for f in RUNTIME_FILES if not (pkg / f).is_file()]
    if missing:
        raise BundleError(f"{pkg}: {RUNTIME} lacks {', '.join(missing)}")
    return pkg


def make_site(run: str | os.PathLike, *, out: str | os.PathLike, exports: Sequence[str] | None = None,
              web_runtime: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write the static site of ``run``'s ONNX exports to the folder ``out``; returns its summary.

    Everything is read and checked before anything is written (no exports, no ONNX export, a file over
    MAX_MODEL_BYTES, a file without a readable contract, the runtime missing: BundleError); the site
    is built in a temporary folder beside ``out`` and renamed into place. ``out`` must not exist, be
    empty, or hold a site this function wrote (which is replaced)."""
    out = Path(out)
    _check_out(out)
    m = read_manifest(run)
    if (m["model"].get("input") or {}).get("kind") == "image":
        from edgegan.errors import ConfigError

        raise ConfigError(f"{run}: an image-to-image generator (task {m['model']['input'].get('task')}); the web page "
                          "feeds latents and has no image input yet (issue 21): run its files with `edgegan-runtime "
                          "translate` or `edgegan bundle` (a board)")
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    entries = _web_entries(_select(m, exports, run_dir), run_dir, explicit=exports is not None)
    pkg = find_runtime(web_runtime)
    files: dict[str, bytes] = {}
    models = [_model(run_dir, e, files) for e in entries]
    for f in RUNTIME_FILES:
        files[f"ort/{Path(f).name}"] = (pkg / f).read_bytes()
    for a in ASSETS:
        files[a] = (WEB_DIR / a).read_bytes()
    files["index.html"] = _preload_model(files["index.html"], models[0]["file"])
    for size, name in ((192, "icon.png"), (512, "icon-512.png")):  # the two sizes browsers ask to install a PWA
        files[name] = _icon(files[models[0]["reference"]["pixels"]], models[0]["contract"], size)
    doc = {"schema": SCHEMA, "created": now_iso(), "run": _stem(run_dir),
           "model_sha256": m["model"].get("weights", {}).get("sha256"), "models": models,
           "reference": {"n": REFERENCE_N, "seed": REFERENCE_SEED, "host": _host()},
           "runtime": {"name": RUNTIME, "version": runtime_version(), "path": "ort/",
                       "license": json.loads((pkg / "package.json").read_text()).get("license")},
           "limits": {"max_model_bytes": MAX_MODEL_BYTES},
           "precache": sorted([*files, "site.json"]),
           "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}}
    files["site.json"] = json.dumps(doc, indent=2).encode()
    site_id = hashlib.sha256(files["site.json"]).hexdigest()[:16]
    files["sw.js"] = (WEB_DIR / "sw.js").read_bytes().replace(b"__SITE_ID__", site_id.encode())
    _write_folder(out, files)
    total = sum(len(v) for v in files.values())
    log.info("wrote %s: %d models, %d files, %d bytes", out, len(models), len(files), total)
    return {"path": str(out), "bytes": total, "files": len(files), "models": [x["name"] for x in models],
            "target": "web", "runtime": f"{RUNTIME} {runtime_version()}"}


MODEL_PRELOAD = b"<!-- edgegan:model-preload -->"


def _preload_model(html: bytes, file: str) -> bytes:
    """index.html with its marker replaced by a preload of the model the page opens first (site.json's first),
    so that the model downloads beside site.json and the runtime, not after site.json is read. The link's mode
    (as=fetch, crossorigin) is the page's fetch(): the browser hands the preloaded response to it."""
    if html.count(MODEL_PRELOAD) != 1:
        raise BundleError(f"{WEB_DIR / 'index.html'}: needs one {MODEL_PRELOAD.decode()} line (edgegan's own page)")
    link = f'<link rel="preload" href="{html_escape(file)}" as="fetch" crossorigin>'
    return html.replace(MODEL_PRELOAD, link.encode())


def _check_out(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"{out}: -o for --target web must be a folder (the site), not a file or a link")
    if out.is_dir() and any(out.iterdir()) and not _is_site(out):
        raise ConfigError(f"{out}: exists and is not an edgegan site (no site.json of {SCHEMA}); choose another -o")
    parent = out.parent if out.parent != Path("") else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: cannot be created, {parent} is not a folder")


def _is_site(p: Path) -> bool:
    try:
        return json.loads((p / "site.json").read_text()).get("schema") == SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def _web_entries(entries: list[dict[str, Any]], run_dir: Path, *, explicit: bool) -> list[dict[str, Any]]:
    web = [e for e in entries if e["format"] == FORMAT]
    others = [f"{e['format']}:{e['precision']}" for e in entries if e["format"] != FORMAT]
    if explicit and others:
        raise BundleError(f"{', '.join(others)}: the web page runs ONNX files (onnxruntime-web); choose onnx exports")
    if not web:
        raise BundleError(f"{run_dir}: no ONNX export for the page to run; run `edgegan export {run_dir} --format onnx`")
    for e in web:
        if int(e["bytes"]) > MAX_MODEL_BYTES:
            raise BundleError(f"{run_dir / e['file']}: {int(e['bytes']):,} bytes, over the page's limit of "
                              f"{MAX_MODEL_BYTES:,} (a model a phone downloads before its first image)")
    return web


def _model(run_dir: Path, e: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    """One model's files (the export and this host's reference images) and its site.json entry."""
    import numpy as np

    import edgegan_runtime as rt
    from edgegan_runtime.png import encode_png, grid

    from edgegan_runtime.fileio import read_regular

    src = run_dir / e["file"]
    if not src.resolve().is_relative_to(run_dir.resolve()):
        raise BundleError(f"{src}: the manifest names a file outside the run {run_dir}; nothing of it goes on a page")
    # Bounded, non-blocking, regular files only: a FIFO or /dev/zero where the export was is refused.
    data = read_regular(src, MAX_MODEL_BYTES, "model file", error=BundleError)
    if hashlib.sha256(data).hexdigest() != e.get("sha256"):
        raise BundleError(f"{src}: sha256 differs from the manifest (re-export it)")
    try:
        with rt.load(src, sha256=e["sha256"]) as g:
            contract = g.contract
            labels = reference_labels(g.num_classes)  # a conditional file (issue 20): image i draws class i mod K
            x = g.generate_from(rt.latent(REFERENCE_N, g.latent_dim, REFERENCE_SEED), labels)
    except rt.RuntimeModelError as ex:  # a contract that names another sampler or pixel rule, a corrupt file
        raise BundleError(f"{ex}") from None
    if contract is None:
        raise BundleError(f"{src}: has no edgegan.contract for the page to read (exported before contracts); "
                          "re-export it")
    name = f"{e['format']}:{e['precision']}"
    stem = src.stem
    px = rt.to_pixels(x)
    files[f"models/{src.name}"] = data
    files[f"reference/{stem}.f32"] = np.ascontiguousarray(x, dtype="<f4").tobytes()
    files[f"reference/{stem}.u8"] = px.tobytes()
    shown = px if px.shape[-1] in (1, 3, 4) else px[..., :1]
    files[f"reference/{stem}.png"] = encode_png(grid(shown))
    if e["precision"] == "fp32":
        thresholds = {"max_abs": DEVICE_FP32_MAX_ABS, "psnr_db": None, "max_pixel_diff": FP32_MAX_PIXEL_DIFF}
    else:
        thresholds = dict((e.get("parity") or {}).get("thresholds") or {})
    return {"name": name, "file": f"models/{src.name}", "format": e["format"], "precision": e["precision"],
            "sha256": e["sha256"], "bytes": len(data), "contract": contract, "thresholds": thresholds,
            "reference": {"floats": f"reference/{stem}.f32", "pixels": f"reference/{stem}.u8",
                          "grid": f"reference/{stem}.png", "shape": list(x.shape), "labels": labels}}


def _icon(pixels: bytes, contract: dict[str, Any], size: int) -> bytes:
    """A size x size PNG of the host's first reference image (nearest-neighbour), for the PWA manifest."""
    import numpy as np

    from edgegan_runtime.png import encode_png

    c, h, w = contract["output"]["shape"][1:]
    img = np.frombuffer(pixels, np.uint8)[: h * w * c].reshape(h, w, c)
    img = img if c in (1, 3) else img[..., :1]
    ys = (np.arange(size) * h) // size
    xs = (np.arange(size) * w) // size
    return encode_png(np.ascontiguousarray(img[ys][:, xs]))


def _write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Write the site into a temporary folder beside ``out`` and rename it into place (a site that was
    there is replaced only once the new one is complete)."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, data in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except OSError as ex:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise OutputError(f"{out}: cannot write the site ({ex.strerror or type(ex).__name__})") from None
    shutil.rmtree(old, ignore_errors=True)
