"""Bench of image-to-image students (issue 21): the teacher, the student and its exported files on the
same real inputs.

The inputs are the task's (``edgegan.tasks``) made from the first ``samples`` images of the dataset's
test split (seed fixed), at the size the student was distilled at. Per model:

* size: params, MACs per image, bytes; latency of one image (the runtime's probe for files, eager
  torch for the networks), measured side by side in one run;
* fidelity to the teacher: PSNR and SSIM on the same inputs;
* quality against the ground truth where the task has one: PSNR, SSIM, and SWD between the outputs'
  and the ground truth's sets (texture statistics PSNR cannot see); for super-resolution the bicubic
  up-sampling of the input beside them (every SR paper's reference); for colourisation the
  colourfulness (Hasler & Süsstrunk 2003) beside the ground truth's, since a grey output can score a
  fair PSNR, and the accuracy of the dataset's domain classifier (``edgegan.metrics.classifier``, trained
  on the colour train split) on the outputs against the images' labels: colours that make a ship a ship.
  The grey input shown as RGB is the reference row there, as bicubic is for super-resolution.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgegan.errors import BenchError

log = logging.getLogger("edgegan.bench.harness")


def colourfulness(images: np.ndarray) -> float:
    """Hasler & Süsstrunk's M = σ_rgyb + 0.3 μ_rgyb (on 0..255 RGB), averaged over images (N, 3, H, W) in [-1, 1]."""
    x = (np.asarray(images, np.float64) + 1) * 127.5
    rg = x[:, 0] - x[:, 1]
    yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    sd = np.sqrt(rg.std(axis=(1, 2)) ** 2 + yb.std(axis=(1, 2)) ** 2)
    mu = np.sqrt(rg.mean(axis=(1, 2)) ** 2 + yb.mean(axis=(1, 2)) ** 2)
    return float((sd + 0.3 * mu).mean())


def is_image_run(manifest: dict) -> bool:
    return "input" in manifest.get("model", {})


def bench_image_run(run_dir: Path, m: dict, *, samples: int, seed: int, batch: int, threads: int,
                    models: list[str], dataset: str | None, data_dir: str | None, progress: bool = True
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(the run's result: its rows without images, and their images for the grid)."""
    import torch

    from edgegan.bench.probes import count_macs, probe_runtime, probe_torch
    from edgegan.checkpoint import load_run
    from edgegan.data import load_dataset
    from edgegan.distill_images import input_view
    from edgegan.image_sources import load_image_generator
    from edgegan.metrics.fidelity import psnr, ssim
    from edgegan.tasks import get_task

    student = load_run(run_dir)
    tinfo = dict(m["distill"]["teacher"])
    spec = tinfo["spec"]
    if tinfo.get("spec_from_run") and not Path(spec).exists():
        alt = run_dir / tinfo["spec_from_run"]
        spec = str(alt.resolve()) if alt.exists() else spec
    if tinfo.get("kind") not in ("edgegan", "onnx"):  # code (a factory, TorchScript) is never run from a manifest
        raise BenchError(f"{run_dir}: its {tinfo.get('kind')} teacher is code; bench runs image-to-image students of "
                         "edgegan or ONNX teachers")
    task = get_task(m["distill"]["task"])
    ds = (m.get("dataset") or {}).get("name") if dataset is None else dataset
    if ds is None:
        raise BenchError(f"{run_dir}: no dataset recorded; pass --dataset")
    h, w = m["model"]["output"]["shape"][1:]
    test = load_dataset(ds, data_dir=data_dir, split="test", image_size=(h, w))
    n = min(samples, len(test))
    y = torch.from_numpy(test.images[:n])
    x = task.input(y, torch.Generator().manual_seed(seed))
    rng = tuple(tinfo.get("range", {}).get("declared") or (-1.0, 1.0))
    tsrc = load_image_generator(spec, y[:8], task=task.name, output_range=rng if tinfo.get("kind") != "edgegan" else None)
    say = log.warning if progress else log.info
    say("bench %s: %s, %d test images of %s", run_dir, task.name, n, ds)

    def run_torch(fwd) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([fwd(x[i:i + 256]).float().numpy() for i in range(0, n, 256)])

    xs = tuple(x.shape[1:])
    t_imgs = run_torch(tsrc.forward)
    rows: list[dict[str, Any]] = []

    def row(name, kind, params, macs, nbytes, latency, images, fmt="torch", precision="fp32", extra=None):
        rows.append({"name": name, "kind": kind, "format": fmt, "precision": precision, "params": params, "macs": macs,
                     "bytes": nbytes, "latency": latency, "images": images, **(extra or {})})

    t_macs = count_macs(tsrc.module, xs) if tsrc.kind == "edgegan" else None
    if tsrc.kind == "onnx":
        from edgegan.models import count_macs_onnx_or_none

        t_macs = count_macs_onnx_or_none(spec, (1, *xs))
    if "teacher" in models:
        lat = (probe_torch(spec, batch=batch, threads=threads, record=tsrc.describe()) if tsrc.kind == "edgegan"
               else probe_runtime(spec, batch=batch, threads=threads))
        row("teacher", "teacher", tsrc.params, t_macs, None, lat, t_imgs, fmt="torch" if tsrc.kind == "edgegan" else "onnx")
    s_macs = count_macs(student.generator, xs)
    d = m["model"]["args"].get("ngf")
    if "student" in models:
        g = student.generator.eval()
        row(f"student d={d}", "student", m["model"]["params"], s_macs, m["model"]["weights"]["bytes"],
            probe_torch(str(run_dir), batch=batch, threads=threads), run_torch(g))
    if "exports" in models:
        import edgegan_runtime as rt

        for e in m.get("exports", []):
            f = run_dir / e["file"]
            try:
                with rt.load(f) as fg:
                    imgs = fg.translate_array(x.numpy())
                lat = probe_runtime(f, batch=batch, threads=threads)
            except Exception as ex:  # noqa: BLE001 - an export that cannot run is reported, not fatal
                imgs, lat = None, {"error": f"{type(ex).__name__}: {ex}"}
            row(f"student d={d}", "export", m["model"]["params"], s_macs, e["bytes"], lat, imgs, fmt=e["format"],
                precision=e["precision"], extra={"file": e["file"], "sha256": e.get("sha256"),
                                                 "parity_passed": (e.get("parity") or {}).get("passed")})
    truth = y.numpy() if task.ground_truth else None
    if truth is not None and task.scale > 1:
        b = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1).numpy()
        row("bicubic", "reference", None, None, None, None, b, fmt="-", precision="-")
    if task.name == "colorize":
        row("grey (luma as RGB)", "reference", None, None, None, None, x.repeat(1, 3, 1, 1).numpy(), fmt="-",
            precision="-")
    clf, labels = _classifier(task.name, test, ds, data_dir, h, w, n, progress)
    for r in rows:
        imgs = r["images"]
        if imgs is None:
            continue
        q: dict[str, Any] = {"to_teacher": {"psnr": round(psnr(imgs, t_imgs), 3), "ssim": round(ssim(imgs, t_imgs), 4)}}
        if truth is not None:
            q["to_truth"] = {"psnr": round(psnr(imgs, truth), 3), "ssim": round(ssim(imgs, truth), 4),
                             "swd": _swd(imgs, truth, seed)}
        if task.name == "colorize":
            q["colourfulness"] = round(colourfulness(imgs), 2)
        if clf is not None:
            q["classifier_accuracy"] = round(clf.accuracy(imgs, labels), 4)
        r["quality"] = q
    if rows and r.get("quality") is not None and t_macs:
        for r in rows:
            r["macs_ratio"] = round(t_macs / r["macs"], 1) if r["macs"] else None
    grids: dict[str, np.ndarray] = {"input": input_view(x[:32], (y.shape[1], h, w)).numpy()}
    for r in rows:
        if r["images"] is not None:
            grids[f"{r['name']} {r['format']} {r['precision']}".replace(" torch fp32", "").replace(" - -", "")] = \
                r["images"][:32]
        r.pop("images")
    if truth is not None:
        grids["ground truth"] = truth[:32]
    res = {"run": str(run_dir), "kind": "image-to-image", "task": task.name, "teacher": tinfo, "dataset": ds,
           "samples": n, "seed": seed, "input_shape": list(xs), "output_shape": [int(y.shape[1]), h, w],
           "truth": {"colourfulness": round(colourfulness(truth), 2),
                     **({"classifier_accuracy": round(clf.accuracy(truth, labels), 4),
                         "classifier": clf.record.get("key")} if clf is not None else {})}
           if task.name == "colorize" else None,
           "compression_ratio": m["distill"].get("compression_ratio"), "models": rows}
    return res, grids


def _classifier(task: str, test: Any, ds: str, data_dir: str | None, h: int, w: int, n: int, progress: bool):
    """(the dataset's domain classifier, the first ``n`` test labels) for a colourisation bench on a labelled
    square dataset; (None, None) otherwise."""
    if task != "colorize" or test.labels is None or h != w:
        return None, None
    from edgegan.metrics.classifier import get_classifier

    return get_classifier(ds, data_dir, image_size=h, progress=progress), test.labels[:n]


def _swd(a: np.ndarray, b: np.ndarray, seed: int) -> float | None:
    """SWD ×1e3 averaged over the pyramid's levels (``edgegan.metrics.swd``); None where the set is too small."""
    from edgegan.metrics.swd import swd

    try:
        return round(float(swd(a, b, seed=seed).mean), 3)
    except Exception as e:  # noqa: BLE001 - a metric that cannot run on this set is reported absent
        log.info("SWD skipped: %s", e)
        return None


def run_image_bench(manifests: list, out: Path, *, samples: int, seed: int, batch: int, threads: int,
                    models: list[str], dataset: str | None, data_dir: str | None, progress: bool = True,
                    devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``edgegan bench`` on image-to-image students: bench.json, bench.md and samples.png in ``out``;
    ``devices``: a bench bundle's results from boards (``--device-results``), columns beside the files'."""
    import time

    from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
    from edgegan.sysinfo import machine

    t0 = time.perf_counter()
    results, grids = [], {}
    for r, m in manifests:
        run_dir = Path(r) if Path(r).is_dir() else Path(r).parent
        res, g = bench_image_run(run_dir, m, samples=samples, seed=seed, batch=batch, threads=threads, models=models,
                                 dataset=dataset, data_dir=data_dir, progress=progress)
        results.append(res)
        grids.update({(k if len(manifests) == 1 else f"{run_dir.name}: {k}"): v for k, v in g.items()})
    doc = {"schema": "edgegan.bench/1", "created": now_iso(), "machine": machine(), "versions": versions(),
           "settings": {"batch": batch, "threads": threads, "samples": samples, "seed": seed},
           "seconds": round(time.perf_counter() - t0, 1), "results": results}
    from edgegan.bench.devices import merge_device_results

    merge_device_results(doc, devices or [])
    md = image_markdown(doc)
    atomic_write_json(out / "bench.json", doc)
    atomic_write_bytes(out / "bench.md", md.encode())
    from edgegan.viz import save_comparison

    save_comparison(grids, out / "samples.png", nrow=4, scale=2)
    return {**doc, "json_path": str(out / "bench.json"), "markdown_path": str(out / "bench.md")}


def _fmt(v, spec: str = "{:.2f}") -> str:
    return "—" if v is None else spec.format(v)


def image_markdown(doc: dict) -> str:
    """One table per run: size, speed and quality of each model on the same inputs (and a board's latency
    per file, from a bench bundle's results)."""
    from edgegan.bench.report import device_cell, device_header

    mach = doc["machine"]
    devices = doc.get("devices", [])
    lines = [f"CPU: {mach.get('cpu')} ({mach.get('isa') or 'ISA unknown'}), {mach.get('cores')} cores; "
             f"batch {doc['settings']['batch']}, {doc['settings']['threads']} thread(s)", ""]
    for res in doc["results"]:
        lines += [f"## {res['run']}: {res['task']} on {res['dataset']} ({res['samples']} test images, input "
                  f"{'x'.join(map(str, res['input_shape']))} → {'x'.join(map(str, res['output_shape']))})", "",
                  "| model | format | precision | params | MACs | MACs ratio | bytes | p50 ms | PSNR to teacher | "
                  "SSIM to teacher | PSNR to truth | SSIM to truth | SWD to truth |" +
                  (" colourfulness | classifier accuracy |" if res["task"] == "colorize" else "")
                  + "".join(f" {device_header(d)} |" for d in devices),
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if res["task"] == "colorize" else "")
                  + "---:|" * len(devices)]
        for r in res["models"]:
            q = r.get("quality") or {}
            tt, gt = q.get("to_teacher") or {}, q.get("to_truth") or {}
            lat = r.get("latency") or {}
            p50 = lat.get("p50_us")
            lines.append(f"| {r['name']} | {r['format']} | {r['precision']} | {_fmt(r['params'], '{:,}')} | "
                         f"{_fmt(r['macs'] and r['macs'] / 1e6, '{:.2f} M')} | {_fmt(r.get('macs_ratio'), '{:.1f}x')} | "
                         f"{_fmt(r['bytes'], '{:,}')} | {_fmt(p50 and p50 / 1e3, '{:.3f}')} | "
                         f"{_fmt(tt.get('psnr'))} | {_fmt(tt.get('ssim'), '{:.4f}')} | {_fmt(gt.get('psnr'))} | "
                         f"{_fmt(gt.get('ssim'), '{:.4f}')} | {_fmt(gt.get('swd'))} |"
                         + (f" {_fmt(q.get('colourfulness'))} | {_fmt(q.get('classifier_accuracy'), '{:.4f}')} |"
                            if res["task"] == "colorize" else "")
                         + "".join(f" {device_cell(r.get('devices', {}).get(d['label']))} |" for d in devices))
        for d in devices:
            mc = d.get("machine") or {}
            lines += ["", f"{d['label']}: {mc.get('machine')}, {mc.get('cores')} cores, Python {d.get('python')}"
                      + (" (emulated: its timings are the emulator's)" if mc.get("emulated") else "")]
        if res.get("truth"):
            t = res["truth"]
            lines += ["", f"Ground truth: colourfulness {t['colourfulness']}"
                      + (f", classifier accuracy {t['classifier_accuracy']:.4f}" if "classifier_accuracy" in t else "")]
        lines.append("")
    return "\n".join(lines)
