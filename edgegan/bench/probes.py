"""What bench measures per model: MACs, the speed/memory probes (each in its own subprocess: the runtime's
or the torch one) and the images of a forward or of a file for the same latents; the memory check."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgegan.errors import BenchError

log = logging.getLogger("edgegan.bench.harness")


def count_macs(module, latent_dim: int | tuple, latent_rank: int = 2, label: tuple = ()) -> int:
    """Multiply-accumulates of one image (``edgegan.models.count_macs``); the module is called with z of
    shape (1, L) or, for ``latent_rank`` 4, (1, L, 1, 1), a conditional one with ``label`` (one label of
    its own form), and an image-to-image one (``latent_dim`` its input's (C, h, w)) with one input."""
    import torch

    from edgegan.models import count_macs as macs

    if isinstance(latent_dim, tuple):
        return macs(module, torch.zeros(1, *latent_dim))
    return macs(module, torch.zeros(1, latent_dim, *([1, 1] if latent_rank == 4 else [])), *(y[:1] for y in label))


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


def _torch_images(forward, z: np.ndarray, batch: int = 256, labels: np.ndarray | None = None) -> np.ndarray:
    """``forward`` on ``z`` in batches; a conditional one with ``labels`` (int64 (N,)) as its second argument."""
    import torch

    def y(i: int) -> tuple:
        return () if labels is None else (torch.from_numpy(labels[i:i + batch]),)

    return np.concatenate([forward(torch.from_numpy(z[i:i + batch]), *y(i)).numpy() for i in range(0, len(z), batch)])


def _file_images(path: Path, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    import edgegan_runtime as rt

    with rt.load(path) as g:  # the runtime splits any N over the file's batch sizes
        return g.generate_from(z) if labels is None else g.generate_from(z, labels=labels)


def _fwd(module):
    import torch

    def f(z, *label):
        with torch.no_grad():
            return module(z, *label)

    return f


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
