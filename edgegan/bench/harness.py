"""``edgegan bench``: one table of size, speed, memory and image quality — teacher against student.

For each student run it gathers: the teacher (PyTorch eager, as users run it today, and exported to
ONNX fp32 and timed in ONNX Runtime, so the speed ratio is measured in the same runtime), the
PyTorch student, and every file in the student's ``exports``. Per model:

* size: params, MACs per image, bytes on disk, compression ratio against the teacher;
* speed and memory: the runtime's probe (``edgegan-runtime bench``) or the torch probe, each in its
  own subprocess, at batch 1 on one thread (latency) — peak RSS is the process's own;
* quality: every metric of ``edgegan.metrics.evaluate`` on the model's *own* outputs for the same
  latents (so int8 damage shows), against a random reference draw from the dataset's test split.

Writes ``bench.json``, ``bench.md``, ``samples.png`` (same z across models) and ``pareto.png``.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgegan.bench.options import MODEL_GROUPS, BenchOptions
from edgegan.errors import BenchError, ConfigError, EdgeganError
from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, read_manifest, versions

log = logging.getLogger(__name__)


def count_macs(module, latent_dim: int, latent_rank: int = 2) -> int:
    """Multiply-accumulates of one image through Conv2d / ConvTranspose2d / Linear layers; the module
    is called with z of shape (1, L) or, for ``latent_rank`` 4, (1, L, 1, 1)."""
    import torch

    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.ConvTranspose2d):
            x = inp[0]  # every input pixel scatters a k x k x Cout/groups patch
            total += x[0].numel() * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Conv2d):
            total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in module.modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, latent_dim, *([1, 1] if latent_rank == 4 else [])))
    finally:
        for h in hs:
            h.remove()
    return int(total)


def _probe(cmd: list[str], timeout: float = 600) -> dict[str, Any]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"probe timed out after {timeout:.0f}s"}
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"probe failed (exit {r.returncode}): {last}"}
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"error": f"probe printed no JSON: {r.stdout[-200:]!r}"}


def probe_runtime(path: str | Path, *, batch: int = 1, threads: int = 1) -> dict[str, Any]:
    return _probe([sys.executable, "-m", "edgegan_runtime.cli", "bench", str(path), "--json",
                   "--batch", str(batch), "--threads", str(threads)])


def probe_torch(spec: str, *, batch: int = 1, threads: int = 1, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """``record``: a manifest's ``distill.teacher``, so the probe loads the teacher as recorded (weights,
    latent shape, range, a factory's import directory)."""
    extra = ["--record", json.dumps(record)] if record is not None else []
    return _probe([sys.executable, "-m", "edgegan.bench.torch_probe", spec, "--json",
                   "--batch", str(batch), "--threads", str(threads), *extra])


def _torch_images(forward, z: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    return np.concatenate([forward(torch.from_numpy(z[i:i + batch])).numpy() for i in range(0, len(z), batch)])


def _file_images(path: Path, z: np.ndarray) -> np.ndarray:
    import edgegan_runtime as rt

    with rt.load(path) as g:  # the runtime splits any N over the file's batch sizes
        return g.generate_from(z)


def run_bench(runs: list[str], *, out: str | Path, models: list[str] | None = None, samples: int = 2000,
              dataset: str | None = None, data_dir: str | None = None, seed: int = 0, batch: int = 1,
              threads: int = 1, progress: bool = True, baselines: list[str] | None = None,
              device_results: list[str | Path] | None = None, inception_weights: str | Path | None = None,
              options: BenchOptions | None = None, teacher: str | None = None,
              teacher_weights: str | None = None, trust_teacher: bool = False,
              export_teacher: Callable[[str, Path], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Bench each student run against its teacher; ``baselines`` are runs of the student's size trained
    from scratch (``train-teacher --kind baseline``): the paper's comparison, added to every table.

    ``device_results`` are JSON files written by a bench bundle's script on a board (``edgegan.app.bundle``):
    each becomes its own columns, labelled with the board's CPU (see ``merge_device_results``).
    ``options`` (what ``edgegan bench`` passes) replaces the keyword arguments it holds.
    ``inception_weights``: pytorch-fid's weights file, checked against its pinned sha256 before anything
    is written (a wrong or missing file is a ConfigError); default: torch.hub's cache, if there.
    ``teacher`` replaces the teacher the manifests record; a ``module:factory`` recorded there is never
    run (issue 14): it must be given here, as the user typed it; a recorded TorchScript teacher (code,
    issue 25) too, unless ``trust_teacher``.
    ``export_teacher(spec, folder)`` exports an edgegan teacher to ONNX for its ONNX row (bench sits beside
    export, not above it: ``edgegan.app.bench_runs.run_bench`` passes the exporter); None: no such row."""
    from edgegan.checkpoint import load_run
    from edgegan.sources import load_recorded
    from edgegan.sysinfo import machine
    from edgegan_runtime import latent

    if options is not None:
        models, samples, dataset, data_dir = options.model_list(), options.samples, options.dataset, options.data_dir
        seed, baselines, inception_weights = options.seed, list(options.baseline), options.inception_weights
        device_results = list(options.device_results)
        teacher, teacher_weights = options.teacher, options.teacher_weights
        trust_teacher = options.trust_teacher
    inception = _inception_options(inception_weights)
    models = models or list(MODEL_GROUPS)
    bad = [m for m in models if m not in MODEL_GROUPS]
    if bad:
        raise ConfigError(f"unknown --models {bad}; valid: {', '.join(MODEL_GROUPS)}")
    if samples < 2:
        raise ConfigError("--samples must be >= 2")
    devices = load_device_results(device_results or [])
    manifests = [(r, read_manifest(r)) for r in runs]  # validate every run before writing anything
    for r, m in manifests:
        if "distill" not in m:
            raise BenchError(f"{r}: not a distilled student run (no 'distill' section); bench compares a student "
                             "with its teacher")
    if teacher is None:  # a recorded module:factory (or TorchScript file) is refused before anything is written
        from edgegan.sources import refuse_recorded_factory

        for _, m in manifests:
            t = m["distill"]["teacher"]
            refuse_recorded_factory(t["spec"], t.get("weights"), t.get("kind"), allow_torchscript=trust_teacher)
    base_runs = [(b, read_manifest(b)) for b in baselines or []]
    _check_memory(manifests, models, len(base_runs), samples)
    for b, bm in base_runs:
        for r, m in manifests:
            if bm["model"]["output"]["shape"] != m["model"]["output"]["shape"]:
                raise BenchError(f"{b}: baseline makes {bm['model']['output']['shape']} images, student {r} makes "
                                 f"{m['model']['output']['shape']}")
    out = Path(out)
    from edgegan.outputs import check_out

    check_out(out)  # a file, or a folder under a file: one line before any work
    # No mkdir here: each result file makes its folder as it is written, so a bench that fails on the
    # way leaves no empty output folder (issue 14).
    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []
    grids: dict[str, np.ndarray] = {}
    for run_path, m in manifests:
        run_dir = Path(run_path) if Path(run_path).is_dir() else Path(run_path).parent
        tinfo = dict(m["distill"]["teacher"])
        if teacher is not None:  # typed by the user: the one place a module:factory may be run
            tinfo.update(spec=teacher, weights=teacher_weights)
            tinfo.pop("spec_from_run", None)
        tsource = load_recorded(tinfo, run_dir, allow_factory=teacher is not None, allow_torchscript=trust_teacher)
        tinfo["kind"] = tsource.kind
        student = load_run(run_dir)
        ds_name, ds_dir = _dataset_of(m, tinfo, dataset, data_dir)
        L = student.latent_dim
        z = latent(samples, L, seed)
        say = log.warning if progress else log.info
        say("bench %s: %d samples, reference %s", run_dir, samples, ds_name)
        teacher_imgs = _torch_images(tsource.forward, z)
        rows: list[dict[str, Any]] = []
        t_params = tsource.params
        # Hooks count MACs of eager modules only: an ONNX or TorchScript teacher's are unknown (—), not 0.
        t_macs = count_macs(tsource.module, L, tsource.latent_rank) if tsource.kind in ("edgegan", "factory") else None

        def row(name, kind, params, macs, nbytes, latency, images, fmt="torch", precision="fp32", extra=None):
            rows.append({"name": name, "kind": kind, "format": fmt, "precision": precision, "params": params,
                         "macs": macs, "bytes": nbytes,
                         "compression": round(t_params / params, 1) if params and t_params else None,
                         "latency": latency, "images": images, **(extra or {})})

        if "teacher" in models:
            row("teacher", "teacher", t_params, t_macs, _teacher_bytes(tsource.describe()), probe_torch(
                tsource.spec, batch=batch, threads=threads, record=tsource.describe()) if tsource.kind != "onnx"
                else probe_runtime(tsource.spec, batch=batch, threads=threads),
                teacher_imgs, fmt="torch" if tsource.kind != "onnx" else "onnx")
            if tsource.kind == "edgegan" and export_teacher is not None:
                entry = export_teacher(tsource.spec, out / "teacher_onnx")
                if "error" in entry:
                    row("teacher", "teacher", t_params, t_macs, None, entry, None, fmt="onnx")
                else:
                    f = out / "teacher_onnx" / entry["file"]
                    row("teacher", "teacher", t_params, t_macs, entry["bytes"], probe_runtime(f, batch=batch,
                        threads=threads), _file_images(f, z), fmt="onnx", precision=entry["precision"])
        s_params = m["model"]["params"]
        s_macs = count_macs(student.generator, L)
        if "student" in models:
            row(f"student d={m['model']['args'].get('d')}", "student", s_params, s_macs, m["model"]["weights"]["bytes"],
                probe_torch(str(run_dir), batch=batch, threads=threads), _torch_images(_fwd(student.generator), z))
        if "exports" in models:
            for e in m.get("exports", []):
                f = run_dir / e["file"]
                try:
                    imgs = _file_images(f, z)
                except Exception as ex:  # noqa: BLE001 - an export that cannot run is reported, not fatal
                    imgs, lat = None, {"error": f"{type(ex).__name__}: {ex}"}
                else:
                    lat = probe_runtime(f, batch=batch, threads=threads)
                row(f"student d={m['model']['args'].get('d')}", "export", s_params, s_macs, e["bytes"], lat, imgs,
                    fmt=e["format"], precision=e["precision"], extra={"file": e["file"], "sha256": e.get("sha256"),
                                                                      "parity_passed": e.get("parity", {}).get("passed")})
        for b, bm in base_runs:
            brun = load_run(b)
            bz = latent(samples, brun.latent_dim, seed)
            row(f"{bm.get('kind', 'baseline')} d={bm['model']['args'].get('d')}", "baseline", bm["model"]["params"],
                count_macs(brun.generator, brun.latent_dim), bm["model"]["weights"]["bytes"],
                probe_torch(str(brun.run_dir), batch=batch, threads=threads), _torch_images(_fwd(brun.generator), bz),
                extra={"run": str(brun.run_dir), "train_steps": bm.get("train", {}).get("step")})
        teacher_ref = None
        if ds_name is None:  # no dataset known or given: the teacher's own samples are the reference (issue 19)
            ds_name = TEACHER_REFERENCE
            teacher_ref = teacher_reference(tsource, max(samples, 1000), seed)
        _quality(rows, ds_name, ds_dir, teacher_imgs, samples, seed, progress, inception,
                 image_size=tuple(m["model"]["output"]["shape"][1:]), reference=teacher_ref)
        speedups(rows)
        for r in rows:
            if r["images"] is not None:
                grids[f"{r['name']} {r['format']} {r['precision']}"] = r["images"][:32]
            r.pop("images")
        results.append({"run": str(run_dir), "teacher": tinfo, "dataset": ds_name, "samples": samples, "seed": seed,
                        "compression_ratio": m["distill"].get("compression_ratio"), "models": rows})
    doc = {"schema": "edgegan.bench/1", "created": now_iso(), "machine": machine(), "versions": versions(),
           "settings": {"batch": batch, "threads": threads, "samples": samples, "seed": seed},
           "seconds": round(time.perf_counter() - t_start, 1), "results": results}
    merge_device_results(doc, devices)
    md = to_markdown(doc)  # before any file: a table that cannot be made leaves no bench.json (issue 25)
    atomic_write_json(out / "bench.json", doc)
    atomic_write_bytes(out / "bench.md", md.encode())
    if grids:
        from edgegan.viz import save_comparison

        save_comparison(grids, out / "samples.png", nrow=4, scale=2)
    _pareto(doc, out / "pareto.png")
    for r, m in manifests:  # the bench section of each student's manifest, nobody else's
        _record(r, m, out)
    return {**doc, "json_path": str(out / "bench.json"), "markdown_path": str(out / "bench.md")}


# bench keeps every model's images of one run in memory while it scores them (float32, plus about as
# much again in the metrics' working copies): checked against the memory available before any work,
# so that --samples 100000 on a small machine is refused with the numbers instead of swapping or being
# killed (issue 25).
MEMORY_FACTOR = 2


def available_memory() -> int | None:
    """Bytes the kernel reports as available (MemAvailable), or None where it does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_memory(manifests: list, models: list[str], n_baselines: int, samples: int) -> None:
    avail = available_memory()
    if avail is None:
        return
    for run, m in manifests:
        c, h, w = m["model"]["output"]["shape"]
        kind = m["distill"]["teacher"].get("kind")
        sets = (("teacher" in models) * (2 if kind == "edgegan" else 1) + ("student" in models)
                + ("exports" in models) * len(m.get("exports") or []) + n_baselines + 1)  # + the teacher's reference
        need = samples * c * h * w * 4 * sets * MEMORY_FACTOR
        if need > avail:
            most = max(2, samples * avail // need)
            raise BenchError(f"{run}: --samples {samples:,} keeps {sets} sets of {samples:,} images of {c}x{h}x{w} in "
                             f"memory, about {need / 2**30:.1f} GiB, and {avail / 2**30:.1f} GiB is available; "
                             f"use --samples {most:,} or fewer, or fewer --models")


DEVICE_SCHEMA = "edgegan.device-results/1"  # written by the bundle's script (edgegan/bundle_script.py)
DEVICE_KEYS = ("p50_us", "p90_us", "mean_us", "images_per_s", "load_ms", "first_ms", "peak_rss_mb", "backend",
               "runs", "in_process")


def load_device_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Read and check device-results files (before anything is written); raises BenchError."""
    docs = []
    for p in paths:
        from edgegan.manifest import load_json

        try:  # bounded, non-blocking, regular files only (issue 14)
            d = load_json(p, "device-results file", 64 << 20)
        except EdgeganError as e:
            raise BenchError(str(e).replace("manifest", "device-results file")) from None
        if not isinstance(d, dict) or d.get("schema") != DEVICE_SCHEMA or not isinstance(d.get("models"), list):
            raise BenchError(f"{p}: not a device-results file (schema {DEVICE_SCHEMA}, written by a bundle's "
                             "run_bench.py)")
        from edgegan.schema import DEVICE_RESULTS, check

        check(d, DEVICE_RESULTS, str(p), BenchError)  # types, finite non-negative numbers (issue 25)
        d["_path"] = str(p)
        docs.append(d)
    return docs


def device_label(d: dict[str, Any]) -> str:
    """The board's CPU as the column says it; an emulator is never shown as the device."""
    mc = d.get("machine") or {}
    cpu = str(mc.get("cpu") or mc.get("machine") or "device")
    if mc.get("browser"):  # the web page's device.json (edgegan/web/app.js): the browser runs it, on this CPU
        cpu = f"{mc['browser']} on {cpu}"
    return f"{cpu} (emulated)" if mc.get("emulated") and "emulated" not in cpu else cpu


def merge_device_results(doc: dict[str, Any], devices: list[dict[str, Any]]) -> None:
    """Add each device's numbers to the export rows they measured (matched by the file's sha256), under
    ``row["devices"][label]``, and list the devices in ``doc["devices"]``. Emulated timings keep
    ``emulated: true`` and the markdown never shows them as device latency."""
    if not devices:
        return
    doc["devices"] = []
    for d in devices:
        label = device_label(d)
        by_sha = {m.get("sha256"): m for m in d["models"] if m.get("sha256")}
        matched = 0
        for res in doc["results"]:
            for r in res["models"]:
                if r["kind"] != "export" or r.get("sha256") not in by_sha:
                    continue
                m = by_sha[r["sha256"]]
                lat = m.get("latency") or {}
                r.setdefault("devices", {})[label] = {
                    **{k: lat.get(k) for k in DEVICE_KEYS if k in lat},
                    "error": m.get("error") or lat.get("error"),
                    "emulated": bool((d.get("machine") or {}).get("emulated")),
                    "parity_vs_host": m.get("parity"),
                }
                matched += 1
        if not matched:
            log.warning("%s: none of its models is an export in this bench (different files?)", d["_path"])
        doc["devices"].append({"label": label, "file": d["_path"], "machine": d.get("machine"),
                               "python": d.get("python"), "versions": d.get("versions"),
                               "settings": d.get("settings"), "created": d.get("created"), "matched": matched})


def speedups(rows: list[dict[str, Any]]) -> None:
    """Teacher p50 ÷ model p50: in the same runtime (format) where the teacher was timed in it, and
    against the teacher in its fastest runtime (the fair ratio for a deployed student)."""
    teacher = {r["format"]: r["latency"]["p50_us"] for r in rows
               if r["kind"] == "teacher" and "p50_us" in r["latency"]}
    best = min(teacher.values(), default=None)
    for r in rows:
        p50 = r["latency"].get("p50_us")
        same = teacher.get(r["format"])
        r["speedup_vs_teacher_same_runtime"] = round(same / p50, 1) if p50 and same and r["kind"] != "teacher" else None
        r["speedup_vs_teacher_best"] = round(best / p50, 1) if p50 and best and r["kind"] != "teacher" else None


def _fwd(module):
    import torch

    def f(z):
        with torch.no_grad():
            return module(z)

    return f


TEACHER_REFERENCE = "teacher-samples"
TEACHER_REFERENCE_SEED = 1_000_003  # added to the bench seed: latents disjoint from the scored ones


def teacher_reference(tsource, n: int, seed: int):
    """The teacher's own images for ``n`` latents disjoint from the scored ones (seed + 1,000,003): the
    label-free reference for a foreign teacher with no dataset (issue 19). The teacher's own row then
    scores teacher vs teacher on disjoint latents: the noise floor of every distance to this reference."""
    from edgegan.data import ImageDataset
    from edgegan_runtime import latent

    s = seed + TEACHER_REFERENCE_SEED
    imgs = _torch_images(tsource.forward, latent(n, tsource.latent_dim, s)).astype(np.float32)
    return ImageDataset(TEACHER_REFERENCE, imgs, None, None, f"the teacher's images ({tsource.kind} {tsource.spec}), "
                        f"latents seed {s}", "teacher")


def _dataset_of(m: dict, tinfo: dict, dataset: str | None, data_dir: str | None) -> tuple[str | None, str | None]:
    """The reference dataset: given, recorded by distill (--dataset), or the edgegan teacher's; None for a
    foreign teacher with none (then the teacher's own samples are the reference)."""
    if dataset:
        return dataset, data_dir
    dd = m["distill"].get("dataset")
    if dd:
        return dd["name"], data_dir or m.get("config", {}).get("data_dir")
    if tinfo.get("kind") == "edgegan":
        tm = read_manifest(tinfo["spec"])
        if "dataset" in tm:
            return tm["dataset"]["name"], data_dir or tm.get("config", {}).get("data_dir")
        raise ConfigError("cannot tell which dataset the teacher was trained on: pass --dataset")
    return None, None


def _teacher_bytes(tinfo: dict) -> int | None:
    if tinfo.get("kind") == "edgegan":
        return read_manifest(tinfo["spec"])["model"]["weights"]["bytes"]
    p = Path(tinfo["spec"])
    return p.stat().st_size if p.is_file() else None


def _inception_options(path: str | Path | None):
    """InceptionOptions for an explicit weights file, verified now (a missing or wrong file is the user's
    error, not an "unavailable" metric); None: the default location, reported unavailable if absent."""
    if path is None:
        return None
    from edgegan.manifest import sha256_file
    from edgegan.metrics.inception import WEIGHTS_SHA256, InceptionOptions

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--inception-weights {p}: no such file")
    actual = sha256_file(p)
    if actual != WEIGHTS_SHA256:
        raise ConfigError(f"--inception-weights {p}: sha256 {actual[:16]}... is not pytorch-fid's "
                          f"{WEIGHTS_SHA256[:16]}... (pt_inception-2015-12-05-6726825d.pth)")
    return InceptionOptions(weights_path=p)


def _quality(rows: list[dict], ds_name: str, ds_dir: str | None, teacher_imgs: np.ndarray, samples: int, seed: int,
             progress: bool, inception: Any = None, image_size: tuple[int, int] = (32, 32), reference: Any = None) -> None:
    """Metrics against the dataset's test split at the run's image size (resized if the files are another
    size: recorded in each row's ``quality.reference``), or against ``reference`` (the teacher's samples)."""
    from edgegan.data import load_dataset
    from edgegan.metrics.evaluate import evaluate, prepare_reference

    size = image_size[0] if image_size[0] == image_size[1] else tuple(image_size)
    ref = reference if reference is not None else load_dataset(ds_name, data_dir=ds_dir, split="test", image_size=size)
    clf = None
    if ref.labels is not None and isinstance(size, int):  # the domain classifier takes square images
        from edgegan.metrics.classifier import get_classifier

        clf = get_classifier(ds_name, ds_dir, progress=progress, image_size=size)
    # The reference's features, SWD patches and sharpness are computed once for all models.
    prepared = prepare_reference(ref, classifier=clf, n_reference=min(len(ref), max(samples, 1000)),
                                 reference_seed=seed, swd_seed=seed, inception=inception)
    for r in rows:
        if r["images"] is None:
            r["quality"] = {"error": "no images (model could not run)"}
            continue
        # Fidelity (PSNR/SSIM to the teacher for the same z) means nothing for the teacher itself or for a
        # baseline trained from scratch: its z maps to unrelated images.
        no_fidelity = (r["kind"] == "teacher" and r["format"] == "torch") or r["kind"] == "baseline"
        r["quality"] = evaluate(r["images"], prepared, teacher_images=None if no_fidelity else teacher_imgs)
        if ref.resized:
            r["quality"]["reference_resized"] = ref.describe()["resized"]


def _num(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v == "inf":
        return "∞"
    v = _num(v)
    if v is None:
        return "—"
    if math.isinf(v):
        return "∞"
    return format(v, spec)


def to_markdown(doc: dict) -> str:
    from edgegan.text import md_safe

    doc = md_safe(doc)  # names, files, labels and errors from files: one cell each, no control characters (issue 25)
    mc, st = doc["machine"], doc["settings"]
    lines = [f"# edgegan bench ({doc['created']})", "",
             f"Machine: {mc['cpu']} ({mc.get('isa', 'isa not recorded')}), {mc['cores']} cores; torch {doc['versions'].get('torch', '?')}, "
             f"numpy {doc['versions'].get('numpy', '?')}. Latency: p50 at batch {st['batch']} on {st['threads']} "
             f"thread(s), each model in its own process. Quality: {st['samples']} images per model, same latents.", ""]
    devices = doc.get("devices", [])
    for res in doc["results"]:
        q0 = next((r["quality"] for r in res["models"] if "metrics" in r.get("quality", {})), {})
        lines += [f"## {res['run']} (dataset {res['dataset']}, reference n={q0.get('n_reference', '?')})", "",
                  "| model | format | precision | params | MACs | bytes | compression | p50 µs | images/s | peak RSS MB "
                  "| × teacher same runtime | × teacher best runtime | clf-FID ↓ | clf-IS ↑ | clf-KID ↓ | clf-precision ↑ | clf-recall ↑ | SWD ↓ | colour FD ↓ | sharpness "
                  "| PSNR vs T dB | SSIM vs T |"
                  + "".join(f" {_device_header(d)} |" for d in devices),
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                  + "---:|" * len(devices)]
        for r in res["models"]:
            lat, q = r["latency"], r.get("quality", {}).get("metrics", {})
            p50 = _fmt(lat.get("p50_us"), ",.1f") if "error" not in lat else f"error: {lat['error'][:60]}"
            swd = q.get("swd", {}).get("mean") if isinstance(q.get("swd"), dict) else None
            lines.append(
                f"| {r['name']} | {r['format']} | {r['precision']} | {r['params']:,} | {_fmt(r['macs'], ',.0f')} | "
                f"{_fmt(r['bytes'], ',.0f')} | {_fmt(r['compression'], ',.1f')} | {p50} | {_fmt(lat.get('images_per_s'), ',.0f')} | "
                f"{_fmt(lat.get('peak_rss_mb'), '.1f')} | {_fmt(r.get('speedup_vs_teacher_same_runtime'), ',.1f')} | "
                f"{_fmt(r.get('speedup_vs_teacher_best'), ',.1f')} | "
                f"{_fmt(q.get('classifier_fid'), '.2f')} | {_fmt(q.get('classifier_is'), '.2f')} | {_kid_cell(q)} | "
                f"{_fmt(q.get('classifier_precision'), '.3f')} | {_fmt(q.get('classifier_recall'), '.3f')} | {_fmt(swd, '.2f')} | "
                f"{_fmt(q.get('colour_fd'), '.3g')} | {_fmt(q.get('sharpness'), '.3g')} | {_fmt(q.get('psnr_db'), '.1f')} | {_fmt(q.get('ssim'), '.3f')} |"
                + "".join(f" {_device_cell(r.get('devices', {}).get(d['label']))} |" for d in devices))
        for d in doc.get("devices", []):
            mc = d.get("machine") or {}
            lines += ["", f"Device columns \u2018{d['label']}\u2019: {d['file']} ({mc.get('platform', '?')}, "
                      f"python {d.get('python', '?')}); p50 µs at batch {(d.get('settings') or {}).get('batch', '?')}, "
                      "and whether its images match this host's within the export's parity thresholds."
                      + (" Emulated (qemu): those timings are the emulator's, not device latency." if mc.get("emulated")
                         else "")]
        if res["dataset"] == TEACHER_REFERENCE:
            lines += ["", "Reference: the teacher's own images on disjoint latents (no dataset known or given): the "
                      "teacher's SWD is the teacher-vs-teacher noise floor; PSNR/SSIM compare each model with the teacher "
                      "for the same z."]
        inc = q0.get("inception") or {}
        if inc.get("available") is False:
            lines += ["", f"Inception FID/IS: not computed ({inc.get('reason')})."]
        clf = q0.get("classifier") or {}
        if clf:
            lines += [f"Domain classifier: test accuracy {clf.get('test_accuracy', float('nan')):.4f}."]
        lines.append("")
    return "\n".join(lines)


def _kid_cell(q: dict[str, Any]) -> str:
    """KID as mean ± std over subsets (its own error bar)."""
    k = q.get("classifier_kid")
    if not isinstance(k, dict) or _num(k.get("mean")) is None:
        return "—"
    return f"{k['mean']:.3g} ± {k['std']:.2g}"


def _device_header(d: dict[str, Any]) -> str:
    if (d.get("machine") or {}).get("emulated"):
        return f"{d['label']}: p50 µs EMULATED, not device latency"
    return f"p50 µs on {d['label']}"


def _device_cell(v: dict[str, Any] | None) -> str:
    if not v:
        return "—"
    if v.get("error"):
        return f"error: {str(v['error'])[:40]}"
    par = v.get("parity_vs_host") or {}
    match = "" if not par else (" ✓ images" if par.get("passed") else " ✗ images differ")
    return f"{_fmt(v.get('p50_us'), ',.1f')}{match}"


def _pareto(doc: dict, path: Path) -> None:
    """Quality against latency, marker area proportional to bytes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no pareto.png (pip install 'edgegan[bench]')")
        return
    pts = []
    for res in doc["results"]:
        for r in res["models"]:
            q = r.get("quality", {}).get("metrics", {})
            y, ylabel = _num(q.get("classifier_fid")), "classifier FID (lower is better)"
            if y is None and isinstance(q.get("swd"), dict):
                y, ylabel = _num(q["swd"].get("mean")), "SWD (lower is better)"
            x = _num(r["latency"].get("p50_us"))
            if x is not None and y is not None:
                pts.append((x, y, r["bytes"] or 1, f"{r['name']} {r['format']} {r['precision']}", ylabel))
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    biggest = max(p[2] for p in pts)
    for i, (x, y, b, label, _) in enumerate(sorted(pts)):
        ax.scatter([x], [y], s=30 + 900 * math.sqrt(b / biggest), alpha=0.6)
        # neighbours on the latency axis get labels at staggered heights so they stay readable
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 10 - 11 * (i % 4)), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency p50 per call, µs (log)")
    ax.set_ylabel(pts[0][4])
    ax.set_title("quality vs latency (marker area ∝ file bytes)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _record(run: str, m: dict, out: Path) -> None:
    from edgegan.manifest import write_manifest
    from edgegan.safedir import manifest_lock

    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    with manifest_lock(run_dir):  # an export recording its file at the same time keeps its entry (issue 25)
        m = read_manifest(run)  # re-read: only the bench section changes
        m["bench"] = {"created": now_iso(), "path": str(out.resolve() / "bench.json")}
        write_manifest(run_dir, m)
