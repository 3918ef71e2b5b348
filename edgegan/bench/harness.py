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

import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgegan.bench.options import MODEL_GROUPS, BenchOptions
from edgegan.errors import BenchError, ConfigError
from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, read_manifest, versions

from edgegan.bench.devices import device_label, load_device_results, merge_device_results
from edgegan.bench.probes import _check_memory, _file_images, _fwd, _torch_images, count_macs, probe_runtime, probe_torch
from edgegan.bench.report import TEACHER_REFERENCE, _pareto, speedups, to_markdown
from edgegan.stages import probe_label

log = logging.getLogger(__name__)


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
    from edgegan.bench.images import is_image_run, run_image_bench

    kinds = {is_image_run(m) for _, m in manifests}
    if True in kinds:  # image-to-image students (issue 21): their own inputs, metrics and table
        if len(kinds) > 1 or baselines or teacher is not None:
            raise BenchError("bench image-to-image students alone (no latent runs, --baseline or --teacher beside "
                             "them)")
        from edgegan.outputs import check_out

        check_out(Path(out))
        return run_image_bench(manifests, Path(out), samples=samples, seed=seed, batch=batch, threads=threads,
                               models=models, dataset=dataset, data_dir=data_dir, progress=progress, devices=devices)
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
        ds_name, ds_dir = _dataset_of(m, tsource.manifest, dataset, data_dir)
        L = student.latent_dim
        z = latent(samples, L, seed)
        k = student.num_classes  # conditional (issue 20): balanced labels, sample i asks for class i mod K
        if k != tsource.num_classes:
            raise BenchError(f"{run_dir}: the student takes {k or 'no'} classes, its teacher {tsource.num_classes or 'none'}")
        labels = None if k is None else (np.arange(samples) % k).astype(np.int64)
        say = log.warning if progress else log.info
        say("bench %s: %d samples, reference %s", run_dir, samples, ds_name)
        teacher_imgs = _torch_images(tsource.forward, z, labels=labels)
        rows: list[dict[str, Any]] = []
        t_params = tsource.params
        # Hooks count MACs of eager modules only: an ONNX or TorchScript teacher's are unknown (—), not 0.
        t_macs = (count_macs(tsource.module, L, tsource.latent_rank, probe_label(tsource.labels))
                  if tsource.kind in ("edgegan", "factory") else None)

        def row(name, kind, params, macs, nbytes, latency, images, fmt="torch", precision="fp32", extra=None):
            rows.append({"name": name, "kind": kind, "format": fmt, "precision": precision, "params": params,
                         "macs": macs, "bytes": nbytes,
                         "compression": round(t_params / params, 1) if params and t_params else None,
                         "latency": latency, "images": images, **(extra or {})})

        if "teacher" in models:
            row("teacher", "teacher", t_params, t_macs, _teacher_bytes(tsource), probe_torch(
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
                        threads=threads), _file_images(f, z, labels), fmt="onnx", precision=entry["precision"])
        s_params = m["model"]["params"]
        s_macs = count_macs(student.generator, L, label=probe_label(student=student.generator))
        if "student" in models:
            row(f"student d={m['model']['args'].get('d')}", "student", s_params, s_macs, m["model"]["weights"]["bytes"],
                probe_torch(str(run_dir), batch=batch, threads=threads),
                _torch_images(_fwd(student.generator), z, labels=labels))
        if "exports" in models:
            for e in m.get("exports", []):
                f = run_dir / e["file"]
                try:
                    imgs = _file_images(f, z, labels)
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
            by = None if brun.num_classes is None else (np.arange(samples) % brun.num_classes).astype(np.int64)
            row(f"{bm.get('kind', 'baseline')} d={bm['model']['args'].get('d')}", "baseline", bm["model"]["params"],
                count_macs(brun.generator, brun.latent_dim, label=probe_label(student=brun.generator)),
                bm["model"]["weights"]["bytes"], probe_torch(str(brun.run_dir), batch=batch, threads=threads),
                _torch_images(_fwd(brun.generator), bz, labels=by),
                extra={"run": str(brun.run_dir), "train_steps": bm.get("train", {}).get("step")})
        teacher_ref = None
        if ds_name is None:  # no dataset known or given: the teacher's own samples are the reference (issue 19)
            ds_name = TEACHER_REFERENCE
            teacher_ref = teacher_reference(tsource, max(samples, 1000), seed)
        _quality(rows, ds_name, ds_dir, teacher_imgs, samples, seed, progress, inception,
                 image_size=tuple(m["model"]["output"]["shape"][1:]), reference=teacher_ref, labels=labels,
                 names=student.class_names)
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




TEACHER_REFERENCE_SEED = 1_000_003  # added to the bench seed: latents disjoint from the scored ones


def teacher_reference(tsource, n: int, seed: int):
    """The teacher's own images for ``n`` latents disjoint from the scored ones (seed + 1,000,003): the
    label-free reference for a foreign teacher with no dataset (issue 19). The teacher's own row then
    scores teacher vs teacher on disjoint latents: the noise floor of every distance to this reference."""
    from edgegan.data import ImageDataset
    from edgegan_runtime import latent

    s = seed + TEACHER_REFERENCE_SEED
    k = tsource.num_classes
    y = None if k is None else (np.arange(n) % k).astype(np.int64)
    imgs = _torch_images(tsource.forward, latent(n, tsource.latent_dim, s), labels=y).astype(np.float32)
    return ImageDataset(TEACHER_REFERENCE, imgs, y, k, f"the teacher's images ({tsource.kind} {tsource.spec}), "
                        f"latents seed {s}", "teacher")


def _dataset_of(m: dict, teacher_manifest: dict | None, dataset: str | None,
                data_dir: str | None) -> tuple[str | None, str | None]:
    """The dataset a student is scored against: --dataset, else the one it was distilled with, else its edgegan
    teacher's (``teacher_manifest``, as loaded); (None, None) for a foreign teacher without one."""
    if dataset:
        return dataset, data_dir
    dd = m["distill"].get("dataset")
    if dd:
        return dd["name"], data_dir or m.get("config", {}).get("data_dir")
    if teacher_manifest is not None:
        if "dataset" in teacher_manifest:
            return teacher_manifest["dataset"]["name"], data_dir or teacher_manifest.get("config", {}).get("data_dir")
        raise ConfigError("cannot tell which dataset the teacher was trained on: pass --dataset")
    return None, None


def _teacher_bytes(tsource) -> int | None:
    if tsource.manifest is not None:
        return tsource.manifest["model"]["weights"]["bytes"]
    p = Path(tsource.spec)
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
             progress: bool, inception: Any = None, image_size: tuple[int, int] = (32, 32), reference: Any = None,
             labels: np.ndarray | None = None, names: list[str] | None = None) -> None:
    """Metrics against the dataset's test split at the run's image size (resized if the files are another
    size: recorded in each row's ``quality.reference``), or against ``reference`` (the teacher's samples).
    A conditional run's images (asked for ``labels``) also get ``quality.per_class`` when the dataset is
    labelled with the same classes: the domain classifier's accuracy on the class asked for, KID per class."""
    from edgegan.data import load_dataset
    from edgegan.metrics.evaluate import evaluate, prepare_reference

    size = image_size[0] if image_size[0] == image_size[1] else tuple(image_size)
    ref = reference if reference is not None else load_dataset(ds_name, data_dir=ds_dir, split="test", image_size=size)
    clf = None
    if ref.labels is not None and isinstance(size, int) and reference is None:  # the classifier takes square images
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
        if labels is not None and clf is not None and clf.num_classes == int(labels.max()) + 1:
            from edgegan.metrics.conditional import per_class

            pc = per_class(r["images"], labels, prepared.dataset.images, prepared.dataset.labels, clf, names=names,
                           seed=seed, reference_features=prepared.classifier_features)
            r["quality"]["per_class"] = pc
        if ref.resized:
            r["quality"]["reference_resized"] = ref.describe()["resized"]


def _record(run: str, m: dict, out: Path) -> None:
    from edgegan.manifest import write_manifest
    from edgegan.safedir import manifest_lock

    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    with manifest_lock(run_dir):  # an export recording its file at the same time keeps its entry (issue 25)
        m = read_manifest(run)  # re-read: only the bench section changes
        m["bench"] = {"created": now_iso(), "path": str(out.resolve() / "bench.json")}
        write_manifest(run_dir, m)


# The harness is where callers look for the bench's public functions; each is written once, in its module.
__all__ = ["TEACHER_REFERENCE", "TEACHER_REFERENCE_SEED", "count_macs", "device_label", "load_device_results",
           "merge_device_results", "probe_runtime", "probe_torch", "run_bench", "teacher_reference", "to_markdown"]
