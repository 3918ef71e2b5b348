"""The device-side probe: how fast and how large a model is here, with only the runtime installed.

One call to ``bench`` measures, in this process: load time (verification included), the first
inference, a warm-up, then at least ``MIN_RUNS`` timed calls of ``generate_from`` on one fixed
latent batch (the call an app makes), each timed alone with ``perf_counter_ns``. A conditional model
(issue 20) gets fixed labels too, classes 0, 1, ... in turn, and each call builds their one-hot, as an
app's call does. An image-to-image model (issue 21) is timed on ``translate_array`` of one fixed input
of its size (the size it was exported at, or ``input_size`` for one that takes any), values from the
latent sampler squashed into [-1, 1] (``bench_images``). Peak RSS is the
process's high-water mark (VmHWM on Linux), so run the probe in a fresh process to measure one model.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any, Callable

import numpy as np

from edgegan_runtime.backend import BACKENDS
from edgegan_runtime.errors import InputError, InputKindError
from edgegan_runtime.generator import load
from edgegan_runtime.latent import latent

MIN_RUNS = 200
WARMUP_S = 0.2  # warm-up length; at least 10 calls
TARGET_S = 1.0  # timed phase aims at this length, never below MIN_RUNS calls
MAX_RUNS = 100_000


def peak_rss_mb() -> float | None:
    """This process's peak resident set size in MiB (None where the OS does not say).

    Linux: VmHWM of /proc/self/status. Not ``ru_maxrss``, which survives exec: a probe started by a
    large parent (a torch benchmark harness) would report the parent's peak as its own."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1 << 20) if sys.platform == "darwin" else kb / 1024  # bytes on macOS, KiB elsewhere


# ARM's MIDR part numbers (implementer 0x41) of the cores found in boards and phones: aarch64 Linux
# prints no "model name", only these numbers.
ARM_PARTS = {
    0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57", 0xD08: "Cortex-A72",
    0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76", 0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77",
    0xD40: "Neoverse-V1", 0xD41: "Cortex-A78", 0xD44: "Cortex-X1", 0xD46: "Cortex-A510", 0xD47: "Cortex-A710",
    0xD48: "Cortex-X2", 0xD49: "Neoverse-N2", 0xD4D: "Cortex-A715", 0xD4E: "Cortex-X3", 0xD4F: "Neoverse-V2",
    0xD80: "Cortex-A520", 0xD81: "Cortex-A720", 0xD82: "Cortex-X4", 0xD87: "Cortex-A725", 0xD85: "Cortex-X925",
}


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU as /proc/cpuinfo names it: x86's "model name"; on ARM the board ("Model" / "Hardware")
    and its cores from their part numbers, e.g. "Raspberry Pi 5 Model B Rev 1.0 (4x Cortex-A76)"."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    board, parts, implementer = None, [], None
    for line in cpuinfo.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip().lower(), val.strip()
        if key == "model name" and val:
            return val
        if key in ("model", "hardware") and val and board is None:
            board = val
        elif key == "cpu implementer":
            implementer = val
        elif key == "cpu part":
            try:
                part = int(val, 16)
            except ValueError:
                continue
            known = implementer == "0x41" and part in ARM_PARTS
            parts.append(ARM_PARTS[part] if known else f"part {implementer}:{val}")
    cores = " + ".join(f"{parts.count(p)}x {p}" for p in dict.fromkeys(parts))
    if board and cores:
        return f"{board} ({cores})"
    return board or cores or platform.processor() or platform.machine()


def time_calls(run: Callable[[], Any], *, runs: int | None = None) -> dict[str, Any]:
    """The one timing protocol (the runtime's probe, ``edgegan.bench.torch_probe`` and the bench scripts):
    one first call, then a warm-up of at least 10 calls and ``WARMUP_S``, then ``runs`` calls (default:
    about ``TARGET_S`` of them, never fewer than ``MIN_RUNS``), each timed alone with ``perf_counter_ns``.
    Returns first_ms, warmup_runs, warmup_ms, runs and the per-call p50/p90/p99/mean/min in µs."""
    if runs is not None and (not isinstance(runs, int) or runs < 1):
        raise InputError(f"runs must be an integer >= 1, got {runs!r}")
    clock = time.perf_counter_ns
    t0 = clock()
    run()
    first_ns = clock() - t0
    warm, t0 = 0, clock()
    while warm < 10 or clock() - t0 < WARMUP_S * 1e9:
        run()
        warm += 1
    warm_ns = clock() - t0
    if runs is None:
        runs = int(min(MAX_RUNS, max(MIN_RUNS, TARGET_S * 1e9 * warm / max(warm_ns, 1))))
    times = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        t = clock()
        run()
        times[i] = clock() - t
    us = times / 1e3
    return {"first_ms": first_ns / 1e6, "warmup_runs": warm, "warmup_ms": warm_ns / 1e6, "runs": runs,
            "p50_us": float(np.percentile(us, 50)), "p90_us": float(np.percentile(us, 90)),
            "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean()), "min_us": float(us.min())}


def bench(
    path: str | os.PathLike,
    *,
    batch: int = 1,
    threads: int = 1,
    backend: str | None = None,
    export: str | None = None,
    runs: int | None = None,
    seed: int = 0,
    input_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Measure one model; returns one JSON-able dict (see the module doc)."""
    if not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch must be an integer >= 1, got {batch!r}")
    if runs is not None and (not isinstance(runs, int) or runs < 1):
        raise InputError(f"runs must be an integer >= 1, got {runs!r}")
    t0 = time.perf_counter_ns()
    g = load(path, backend=backend, threads=threads, export=export)
    load_ns = time.perf_counter_ns() - t0
    if g.image is not None:
        x = bench_images(g, batch, seed, input_size)
        timing = time_calls(lambda: g.translate_array(x), runs=runs)
    else:
        if input_size is not None:
            raise InputKindError(f"{g.path}: input_size is for a model that translates images; this one generates "
                                 "from latents")
        z = latent(batch, g.latent_dim, seed)
        labels = None if g.num_classes is None else np.arange(batch) % g.num_classes
        timing = time_calls(lambda: g.generate_from(z, labels), runs=runs)
    peak = peak_rss_mb()  # before the report's own imports
    spec = BACKENDS[g.backend]
    result = {
        "model": str(g.path),
        "format": g.format,
        "precision": g.precision,
        "backend": g.backend,
        "batch": batch,
        "threads": threads,
        "input_kind": g.input_kind,
        "latent_dim": g.latent_dim,
        "num_classes": g.num_classes,
        **({} if g.image is None else {"input_shape": [g.image.channels, *x.shape[2:]]}),
        "output_shape": list(g.output_shape) if g.image is None else
        [g.image.out_channels, *(s * g.image.scale for s in x.shape[2:])],
        "load_ms": load_ns / 1e6,
        **timing,
        "us_per_image": timing["p50_us"] / batch,
        "images_per_s": batch * 1e6 / timing["mean_us"],
        "peak_rss_mb": peak,
        "bytes": g.bytes,
        "sha256": g.sha256,
        "versions": versions(spec.distribution),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
        "torch_imported": sys.modules.get("torch") is not None,
    }
    g.close()
    return result


def bench_images(g: Any, batch: int, seed: int, input_size: tuple[int, int] | None) -> np.ndarray:
    """The fixed input a benchmark of an image-to-image model times: float32 (batch, C, h, w), tanh of the latent
    sampler's values (deterministic, in [-1, 1], every value distinct); h x w is ``input_size`` (which the
    model must take) or the size it was exported at."""
    spec = g.image
    h, w = input_size if input_size is not None else spec.size
    spec.check_size(h, w, str(g.path))
    return np.tanh(latent(batch, spec.channels * h * w, seed)).reshape(batch, spec.channels, h, w)


def versions(*distributions: str) -> dict[str, str]:
    from importlib import metadata  # imported late: it pulls in email, zipfile, csv (2 MB resident)

    out = {"python": platform.python_version()}
    for name in ("edgegan-runtime", "numpy", *distributions):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def format_report(r: dict[str, Any]) -> str:
    rss = f"{r['peak_rss_mb']:.1f} MB" if r["peak_rss_mb"] is not None else "n/a"
    v = ", ".join(f"{k} {val}" for k, val in r["versions"].items())
    return "\n".join(
        [
            f"model        {r['model']} ({r['format']}, {r['bytes']:,} bytes)",
            f"backend      {r['backend']}, {r['threads']} thread(s), batch {r['batch']}",
            *([f"images       {'x'.join(map(str, r['input_shape']))} -> {'x'.join(map(str, r['output_shape']))} "
               "(C x H x W)"] if r.get("input_kind") == "image" else []),
            f"load         {r['load_ms']:.2f} ms (verification included)",
            f"first call   {r['first_ms']:.3f} ms",
            f"warm-up      {r['warmup_runs']} calls in {r['warmup_ms']:.1f} ms",
            f"latency      p50 {r['p50_us']:.1f} us, p90 {r['p90_us']:.1f} us, p99 {r['p99_us']:.1f} us, "
            f"mean {r['mean_us']:.1f} us over {r['runs']} calls",
            f"throughput   {r['images_per_s']:,.0f} images/s ({r['us_per_image']:.2f} us/image at p50)",
            f"peak RSS     {rss}",
            f"versions     {v}",
            f"machine      {r['machine']['cpu']}, {r['machine']['cores']} cores",
        ]
    )

