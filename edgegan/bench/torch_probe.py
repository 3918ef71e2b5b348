"""Latency / memory probe for a generator in PyTorch eager mode, with the runtime probe's JSON keys.

Run in its own process so that peak RSS is the model's alone:
    python -m edgegan.bench.torch_probe SPEC [--batch 1] [--threads 1] [--runs N] --json
SPEC is anything the distiller accepts (run directory, TorchScript file, module:factory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def probe(spec: str, *, batch: int = 1, threads: int = 1, runs: int | None = None, seed: int = 0,
          weights: str | None = None, record: dict | None = None) -> dict:
    t0 = time.perf_counter_ns()
    import torch

    torch.set_num_threads(threads)
    from edgegan.sources import load_generator, load_recorded
    from edgegan_runtime import latent

    image = _image_model(spec, record, weights)  # an image-to-image generator (issue 21): (module, its input shape)
    if image is not None:
        src, shape = image
        load_ns = time.perf_counter_ns() - t0
        z = torch.from_numpy(latent(batch * shape[0] * shape[1] * shape[2], 1, seed).reshape(batch, *shape)).clamp(-1, 1)
        y = ()
    else:
        src = load_recorded({**record, "spec": spec}, check_range=False, allow_factory=True) if record is not None else load_generator(spec, weights=weights)
        load_ns = time.perf_counter_ns() - t0
        z = torch.from_numpy(latent(batch, src.latent_dim, seed))
        y = () if src.labels is None else (torch.arange(batch) % src.num_classes,)  # a conditional generator: classes 0, 1, ...
    from edgegan_runtime.probe import peak_rss_mb, time_calls  # the one timing protocol; VmHWM, not ru_maxrss

    fwd = src.forward
    timing = time_calls(lambda: fwd(z, *y), runs=runs)
    peak = peak_rss_mb()
    nbytes = None
    if src.manifest is not None:
        nbytes = src.manifest["model"]["weights"]["bytes"]
    elif os.path.isfile(spec):
        nbytes = os.path.getsize(spec)
    return {"model": spec, "format": "torch", "precision": "fp32", "backend": "torch-eager", "batch": batch,
            "threads": threads, "load_ms": load_ns / 1e6, **timing, "us_per_image": timing["p50_us"] / batch,
            "images_per_s": batch * 1e6 / timing["mean_us"], "peak_rss_mb": peak, "bytes": nbytes,
            "versions": {"torch": torch.__version__}}


class _Image:
    """What the probe times of an image generator: its forward on an input, and its run's manifest."""

    def __init__(self, forward, manifest=None):
        self.forward, self.manifest = forward, manifest


def _image_model(spec: str, record: dict | None, weights: str | None):
    """(an object with ``forward`` and ``manifest``, input (C, h, w)) when ``spec`` takes images, else None:
    an edgegan run that records its input, or a teacher recorded with one (its recorded size)."""
    import torch

    from edgegan.image_sources import _foreign, run_input

    if run_input(spec) is not None:
        from edgegan.checkpoint import load_run

        run = load_run(spec)
        g = run.generator.eval()

        def fwd(x):
            with torch.no_grad():
                return g(x)

        shape = tuple((record or {}).get("input", {}).get("shape") or run.input["shape"])
        return _Image(fwd, run.manifest), shape
    if record is not None and "input" in record:
        src = _foreign(spec, record.get("weights") or weights, "cpu", record.get("import_dir"), True)
        return _Image(src.forward), tuple(record["input"]["shape"])
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgegan.bench.torch_probe", description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("--weights")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int)
    ap.add_argument("--record", type=json.loads, help="a manifest's distill.teacher (JSON): load the teacher as recorded")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = probe(a.spec, batch=a.batch, threads=a.threads, runs=a.runs, weights=a.weights, record=a.record)
    print(json.dumps(r) if a.json else f"{r['p50_us']:.1f} us p50, {r['images_per_s']:.0f} images/s, {r['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
