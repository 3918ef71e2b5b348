#!/usr/bin/env python3
"""Run an edgegan bench bundle on this machine: ``python3 run_bench.py [--out device.json]``.

Needs Python >= 3.9, numpy and one interpreter (ai-edge-litert, tflite-runtime or onnxruntime + onnx);
the bundle carries the runtime itself, and the aarch64 wheels when it was made with them (unpacked
into .site/ on first use, used only for packages this Python lacks). In order:

1. checks every file of the bundle against the sha256 in bundle.json;
2. for each model: loads it with edgegan_runtime (which verifies it again), generates the bundle's
   reference latents (an image-to-image file: translates the bundle's reference inputs) and compares the
   images with the ones the host made when it built the bundle (within the export's parity thresholds),
   and writes a sample grid PNG;
3. runs the runtime's probe for each model (a fresh process per model where this Python can start one);
4. writes one JSON (``--out``, default device-<machine>.json) for ``edgegan bench --device-results``.

This file is ``edgegan/bundle_script.py`` in the edgegan repository, copied verbatim into each bundle.
It imports nothing from edgegan (only the standard library, numpy and the bundled runtime).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
import zipfile
from pathlib import Path

SCHEMA = "edgegan.device-results/1"
BUNDLE_SCHEMA = "edgegan.bundle/1"
HERE = Path(__file__).resolve().parent


class BundleError(Exception):
    """The bundle is incomplete or altered, or nothing here can run it."""


def check_files(root: Path, bundle: dict) -> int:
    """Every file listed in bundle.json, with its sha256; raises BundleError naming each bad one."""
    bad = []
    for rel, digest in sorted(bundle["files"].items()):
        p = root / rel
        if not p.is_file():
            bad.append(f"{rel}: missing")
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != digest:
            bad.append(f"{rel}: sha256 differs (corrupt or replaced)")
    if bad:
        raise BundleError("bundle files do not match bundle.json: " + "; ".join(bad))
    return len(bundle["files"])


def _wheel_fits(name: str) -> bool:
    """A wheel this Python can import: pure, or built for this machine and CPython version."""
    tags = name[:-4].split("-")[-3:]  # python, abi, platform
    py, plat = tags[0], tags[2]
    ver = f"cp{sys.version_info.major}{sys.version_info.minor}"
    py_ok = any(t in (ver, "py3", "cp3") or (t.startswith("cp3") and tags[1] == "abi3" and int(t[3:] or 0) <=
                                              sys.version_info.minor) for t in py.split("."))
    plat_ok = plat == "any" or platform.machine() in plat
    return py_ok and plat_ok


def use_wheels(root: Path) -> list[str]:
    """Unpack the bundle's fitting wheels into .site/ once and put it at the END of sys.path, so
    packages this Python already has win and the wheels only fill gaps. Returns the wheels used."""
    wheels = sorted((root / "wheels").glob("*.whl"))
    used = [w for w in wheels if _wheel_fits(w.name)]
    if not used:
        return []
    site = root / ".site"
    for w in used:
        mark = site / f".{w.name}.unpacked"
        if not mark.exists():
            with zipfile.ZipFile(w) as z:
                z.extractall(site)
            mark.touch()
    sys.path.append(str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(site)) if p)
    return [w.name for w in used]


def _probe_subprocess(root: Path, manifest: Path, name: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root / "runtime"), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "edgegan_runtime.cli", "bench", str(manifest), "--export", name, "--json",
           "--batch", str(args.batch), "--threads", str(args.threads)]
    if args.runs:
        cmd += ["--runs", str(args.runs)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def probe(root: Path, manifest: Path, name: str, args: argparse.Namespace) -> dict:
    """The runtime's probe for one model: in a fresh process (its peak RSS is then the model's own),
    or in this one where no process can be started (qemu-user without binfmt_misc cannot exec)."""
    from edgegan_runtime.probe import bench

    if not args.in_process:
        try:
            return _probe_subprocess(root, manifest, name, args)
        except OSError:
            pass
    r = bench(manifest, export=name, batch=args.batch, threads=args.threads, runs=args.runs)
    r["in_process"] = True  # peak RSS includes everything this script did before
    return r


def compare(got, reference, thresholds: dict) -> dict:
    """Float images against the host's: max_abs (and PSNR) with the export's thresholds, and pixels."""
    import numpy as np

    from edgegan_runtime import to_pixels

    diff = np.abs(got.astype(np.float64) - reference.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    mse = float((diff**2).mean()) if diff.size else 0.0
    psnr = float("inf") if mse == 0 else float(10 * np.log10(4.0 / mse))  # peak-to-peak 2 for [-1, 1]
    pg, pr = to_pixels(got), to_pixels(reference)
    out = {"max_abs": max_abs, "psnr_db": None if psnr == float("inf") else psnr, "bit_exact": bool(max_abs == 0.0),
           "pixels": int(pg.size), "pixels_differing": int((pg != pr).sum()),
           "max_pixel_diff": int(np.abs(pg.astype(np.int16) - pr.astype(np.int16)).max()) if pg.size else 0}
    ok, limits = True, []
    if thresholds.get("max_abs") is not None:
        ok &= max_abs <= thresholds["max_abs"]
        limits.append(f"max_abs <= {thresholds['max_abs']:g}")
    if thresholds.get("psnr_db") is not None:
        ok &= psnr >= thresholds["psnr_db"]
        limits.append(f"PSNR >= {thresholds['psnr_db']:g} dB")
    out["threshold"] = ", ".join(limits) or "none"
    out["passed"] = bool(ok)
    return out


def run_model(root: Path, bundle: dict, m: dict, out_dir: Path, args: argparse.Namespace) -> dict:
    import numpy as np

    import edgegan_runtime as rt
    from edgegan_runtime.png import grid, write_png

    manifest = root / bundle["manifest"]
    res = {"name": m["name"], "file": m["file"], "format": m["format"], "precision": m["precision"],
           "sha256": m["sha256"]}
    try:
        with rt.load(manifest, export=m["name"], threads=args.threads) as g:
            res["backend"] = g.backend
            ref = bundle["reference"]
            if m.get("inputs"):  # an image-to-image file: the bundle's real inputs
                got = g.translate_array(np.load(root / m["inputs"], allow_pickle=False))
                images = rt.to_pixels(got)
            else:
                got = g.generate_from(rt.latent(ref["n"], g.latent_dim, ref["seed"]), m.get("labels"))
                k = g.num_classes  # a conditional file (issue 20): the grid cycles through its classes
                images = g.generate(16, seed=ref["seed"], labels=None if k is None else [i % k for i in range(16)])
            if m.get("reference"):
                res["parity"] = compare(got, np.load(root / m["reference"], allow_pickle=False), m["thresholds"])
        if images.shape[-1] == 2 or images.shape[-1] > 4:
            images = images[..., :1]
        png = out_dir / f"grid-{m['name'].replace(':', '-')}.png"
        write_png(png, grid(images))
        res["grid"] = png.name
    except rt.RuntimeModelError as e:
        res["error"] = f"{type(e).__name__}: {e}"
        return res
    if not args.no_probe:
        res["latency"] = probe(root, manifest, m["name"], args)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run this edgegan bench bundle here and write one JSON.")
    p.add_argument("--out", "-o", help="output JSON (default device-<machine>.json in the current directory)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, help="timed calls per model (default: the probe's, >= 200, about 1 s)")
    p.add_argument("--models", help="comma-separated model names (format:precision); default all")
    p.add_argument("--no-probe", action="store_true", help="check files and images only")
    p.add_argument("--in-process", action="store_true", help="probe in this process (no subprocess)")
    p.add_argument("--emulated", metavar="LABEL", help="this is an emulator, not the device: LABEL is recorded and "
                   "every timing is marked emulated")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        bundle = json.loads((HERE / "bundle.json").read_text())
        if bundle.get("schema") != BUNDLE_SCHEMA:
            raise BundleError(f"bundle.json has schema {bundle.get('schema')!r}, expected {BUNDLE_SCHEMA!r}")
        nfiles = check_files(HERE, bundle)
        wheels = use_wheels(HERE)
        sys.path.insert(0, str(HERE / "runtime"))
        try:
            import numpy  # noqa: F401
            import edgegan_runtime as rt
            from edgegan_runtime.probe import cpu_name, versions
        except ImportError as e:
            raise BundleError(f"cannot import the runtime ({e}); this bundle needs numpy (pip install numpy)") from None
        if not rt.backends():
            named = "; ".join(bundle.get("wheels", {}).get("named", [])) or "ai-edge-litert or onnxruntime"
            raise BundleError(f"no interpreter installed here: pip install one of: {named}")
        out = Path(args.out or f"device-{platform.machine()}.json").resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        wanted = set(args.models.split(",")) if args.models else None
        models = [run_model(HERE, bundle, m, out.parent, args) for m in bundle["models"]
                  if wanted is None or m["name"] in wanted]
    except BundleError as e:
        print(f"run_bench: error: {e}", file=sys.stderr)
        return 2
    doc = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bundle": {k: bundle.get(k) for k in ("run", "target", "created", "model_sha256")},
        "machine": {"cpu": args.emulated or cpu_name(), "machine": platform.machine(), "cores": os.cpu_count(),
                    "platform": platform.platform(), "emulated": bool(args.emulated)},
        "python": platform.python_version(),
        "versions": {**versions("ai-edge-litert", "tflite-runtime", "onnxruntime", "onnx"),
                     "edgegan-runtime": f"{rt.__version__} (bundled)"},
        "backends": rt.backends(),
        "checks": {"files": nfiles, "sha256": "ok", "wheels_used": wheels},
        "settings": {"batch": args.batch, "threads": args.threads, "runs": args.runs},
        "models": models,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, out)
    failed = [m["name"] for m in models if m.get("error") or not (m.get("parity") or {"passed": True})["passed"]]
    print(f"wrote {out}: {len(models)} model(s) on {doc['machine']['cpu']}"
          + (f"; FAILED: {', '.join(failed)}" if failed else "; images match the host's"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
