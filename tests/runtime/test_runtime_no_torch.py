"""The runtime and its probe never import torch: run them in a subprocess where torch cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BLOCK = "import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError


def run(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=timeout)


def test_blocking_works():
    r = run("import torch")
    assert r.returncode != 0 and "import of torch halted" in r.stderr


def test_import_alone():
    r = run("import edgegan_runtime, edgegan_runtime.cli, edgegan_runtime.probe; "
            "print(sorted(m for m, mod in sys.modules.items() if mod is not None and "
            "m.split('.')[0] in ('torch', 'onnx', 'onnxruntime', 'ai_edge_litert')))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"  # numpy only: interpreters are imported when a backend is built


@pytest.mark.onnx
@pytest.mark.tflite
def test_generate_and_probe_without_torch(tmp_path, onnx_model, tflite_model):
    code = f"""
import json, sys
from edgegan_runtime.cli import main
import edgegan_runtime as rt
for path in ({str(onnx_model)!r}, {str(tflite_model)!r}):
    assert rt.load(path).generate(3).shape == (3, 32, 32, 1)
    assert main(["generate", path, "-n", "4", "-o", {str(tmp_path / 'g.png')!r}]) == 0
    assert main(["bench", path, "--json", "--runs", "200"]) == 0
print("TORCH", any(m.split(".")[0] == "torch" for m, mod in sys.modules.items() if mod is not None))
"""
    r = run(code, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "TORCH False"
    benches = [json.loads(line) for line in lines if line.startswith("{")]
    assert [b["backend"] for b in benches] == ["onnxruntime", "litert"]
    assert all(b["torch_imported"] is False for b in benches)


@pytest.mark.onnx
@pytest.mark.tflite
def test_translate_and_probe_without_torch(tmp_path, i2i_run, i2i_export):
    """Issue 21: an image-to-image file loaded, translated (library and CLI) and probed with torch blocked."""
    import numpy as np

    from edgegan_runtime.png import encode_png

    files = [str(i2i_run / i2i_export(fmt)["file"]) for fmt in ("onnx", "tflite")]
    (tmp_path / "in.png").write_bytes(encode_png(np.full((16, 16, 3), 90, np.uint8)))
    code = f"""
import json, sys
import numpy as np
from edgegan_runtime.cli import main
import edgegan_runtime as rt
for path in {files!r}:
    assert rt.load(path).translate(np.zeros((16, 16, 3), np.uint8)).shape == (32, 32, 3)
    assert main(["translate", path, {str(tmp_path / 'in.png')!r}, "-o", {str(tmp_path / 'out.png')!r}]) == 0
    assert main(["bench", path, "--json", "--runs", "200"]) == 0
print("TORCH", any(m.split(".")[0] == "torch" for m, mod in sys.modules.items() if mod is not None))
"""
    r = run(code, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "TORCH False"
    benches = [json.loads(line) for line in lines if line.startswith("{")]
    assert [(b["backend"], b["input_kind"]) for b in benches] == [("onnxruntime", "image"), ("litert", "image")]
    assert all(b["torch_imported"] is False for b in benches)
