"""`edgegan demo --fast`: the README's main command, end to end (train, distil, export, bench)."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.onnx, pytest.mark.tflite]


def test_demo_fast(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "demo", "--fast", "--out", str(out)],
                       capture_output=True, text=True, timeout=1200, env={**__import__("os").environ,
                                                                          "EDGEGAN_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    assert "parity ok" in summary and "FAILED" not in summary
    assert "| student d=2 | tflite | int8 |" in summary
    m = json.loads((out / "student" / "manifest.json").read_text())
    assert {e["precision"] for e in m["exports"]} == {"fp32", "int8"}
    assert all(e["parity"]["passed"] for e in m["exports"])
    for f in ("student/samples/teacher_vs_student.png", "bench/bench.json", "bench/pareto.png", "bench/samples.png"):
        assert (out / f).stat().st_size > 0
