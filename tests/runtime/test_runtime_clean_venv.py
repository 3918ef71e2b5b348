"""`pip install ./runtime` into a fresh venv without torch, then generate and bench a model exported
by the fixtures: the runtime is a distribution of its own, and its probe needs nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.onnx, pytest.mark.tflite]

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
NETWORK = ("NewConnectionError", "No matching distribution", "Could not find a version", "Temporary failure")


def sh(*cmd, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)


def pip_install(py: Path, *reqs: str) -> None:
    r = sh(py, "-m", "pip", "install", "-q", *reqs)
    if r.returncode != 0 and any(s in r.stderr for s in NETWORK):
        pytest.skip(f"package index unreachable: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr[-3000:]


def test_clean_venv(tmp_path, onnx_model, tflite_model):
    # Build from a copy: an in-tree build would write build/ and egg-info into the repository.
    src = tmp_path / "runtime"
    shutil.copytree(RUNTIME, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    venv = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", venv).returncode == 0
    py, cli = venv / "bin" / "python", venv / "bin" / "edgegan-runtime"

    pip_install(py, str(src))  # numpy only
    r = sh(py, "-c", "import edgegan_runtime, pathlib; d = pathlib.Path(edgegan_runtime.__file__).parent / 'c'; "
                     "print(sorted(p.name for p in d.iterdir()))")
    assert r.returncode == 0 and "['edgegan.c', 'edgegan.h']" in r.stdout, r.stdout + r.stderr  # shipped as data
    r = sh(py, "-c", "import edgegan_runtime, sys; print(sorted(sys.modules))")
    assert r.returncode == 0, r.stderr
    assert "torch" not in r.stdout and "onnxruntime" not in r.stdout
    r = sh(cli, "generate", onnx_model, "-o", tmp_path / "none.png")
    assert r.returncode == 1 and "pip install 'edgegan-runtime[onnx]'" in r.stderr

    pip_install(py, f"{src}[onnx,litert]")
    assert sh(py, "-c", "import torch").returncode != 0  # really no torch here
    for model in (onnx_model, tflite_model):
        out = tmp_path / f"grid-{model.suffix[1:]}.png"
        r = sh(cli, "generate", model, "-n", "16", "-o", out)
        assert r.returncode == 0, r.stderr[-2000:]
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        r = sh(cli, "bench", model, "--json")
        assert r.returncode == 0, r.stderr[-2000:]
        b = json.loads(r.stdout.strip().splitlines()[-1])
        assert {"backend", "batch", "threads", "load_ms", "first_ms", "p50_us", "p90_us", "p99_us", "mean_us",
                "images_per_s", "peak_rss_mb", "bytes"} <= set(b)
        assert b["runs"] >= 200 and b["torch_imported"] is False
        print(f"clean venv {b['backend']}: p50 {b['p50_us']:.1f} us, peak RSS {b['peak_rss_mb']:.1f} MB")
