"""`edgegan bench` end to end on tiny real runs: every field for every model, files written."""

import json
import subprocess
import sys

import pytest

from edgegan.distill import DistillConfig, distill
from edgegan.train import TrainConfig, train_gan

pytestmark = [pytest.mark.slow, pytest.mark.onnx]

LATENCY_KEYS = {"backend", "batch", "threads", "load_ms", "first_ms", "p50_us", "p90_us", "p99_us", "mean_us",
                "images_per_s", "peak_rss_mb", "bytes"}
METRIC_KEYS = {"classifier_fid", "classifier_is", "classifier_is_reference", "inception_fid", "inception_is", "swd",
               "sharpness", "sharpness_reference", "psnr_db", "ssim"}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    train_gan(TrainConfig(dataset="digits", d=8, steps=40, lr=1e-3, sample_every=0, checkpoint_every=0), root / "t",
              progress=False)
    distill(DistillConfig(teacher=str(root / "t"), d=2, steps=40), root / "s", progress=False)
    train_gan(TrainConfig(dataset="digits", d=2, steps=20, lr=1e-3, kind="baseline", sample_every=0, checkpoint_every=0),
              root / "baseline", progress=False)
    from edgegan.export import export_run

    export_run(root / "s", format="onnx", quantize="none")
    return root / "s"


def test_bench_cli_every_field(student, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEGAN_CACHE", str(tmp_path / "cache"))
    from edgegan.metrics.inception import inception_available

    inception_ok, inception_reason = inception_available()  # the subprocess below sees the same environment
    out = tmp_path / "b"
    # What a bench bundle's script writes on a board (tests/test_bundle.py makes real ones).
    sha = json.loads((student / "manifest.json").read_text())["exports"][0]["sha256"]
    device = tmp_path / "board.json"
    device.write_text(json.dumps({"schema": "edgegan.device-results/1", "python": "3.11.2",
                                  "machine": {"cpu": "Test Board (4x Cortex-A76)", "emulated": False},
                                  "settings": {"batch": 1}, "models": [{"name": "onnx:fp32", "sha256": sha,
                                  "latency": {"p50_us": 123.0}, "parity": {"passed": True}}]}))
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "bench", str(student), "--samples", "200", "--out", str(out),
                        "--baseline", str(student.parent / "baseline"), "--device-results", str(device), "--quiet"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "| p50 µs on Test Board (4x Cortex-A76) |" in r.stdout and "| 123.0 ✓ images |" in r.stdout
    assert "| teacher | torch |" in r.stdout and "| student d=2 | onnx | fp32 |" in r.stdout
    doc = json.loads((out / "bench.json").read_text())
    assert doc["machine"]["cores"] >= 1 and doc["versions"]["torch"]
    (res,) = doc["results"]
    kinds = [(m["kind"], m["format"]) for m in res["models"]]
    assert kinds == [("teacher", "torch"), ("teacher", "onnx"), ("student", "torch"), ("export", "onnx"),
                     ("baseline", "torch")]
    for m in res["models"]:
        for k in ("name", "params", "macs", "bytes", "compression", "latency", "quality"):
            assert m[k] is not None, (m["name"], k)
        assert LATENCY_KEYS - {"backend"} <= set(m["latency"]), m["latency"]
        assert m["latency"]["p50_us"] > 0 and m["latency"]["peak_rss_mb"] > 0
        q = m["quality"]
        assert q["n_samples"] == 200 and q["n_reference"] >= 200
        assert METRIC_KEYS <= set(q["metrics"]), set(q["metrics"])
        assert isinstance(q["metrics"]["classifier_fid"], float)
        inception = q["metrics"]["inception_fid"]  # a float where Inception is available, else the reason
        if inception_ok:
            assert isinstance(inception, float) and inception >= 0, inception
        else:  # the reason this machine gives, word for word (missing weights and/or pytorch-fid)
            assert inception == {"available": False, "reason": inception_reason}, inception
    baseline = res["models"][-1]
    assert baseline["name"] == "baseline d=2" and baseline["params"] == 28_351
    assert baseline["quality"]["metrics"]["psnr_db"]["available"] is False  # no fidelity for a scratch GAN
    assert isinstance(baseline["quality"]["metrics"]["classifier_fid"], float)
    assert [m.get("devices") for m in res["models"]][3] == {"Test Board (4x Cortex-A76)": {
        "p50_us": 123.0, "error": None, "emulated": False, "parity_vs_host": {"passed": True}}}
    assert sum(1 for m in res["models"] if m.get("devices")) == 1 and doc["devices"][0]["matched"] == 1
    student_rows = [m for m in res["models"] if m["kind"] in ("student", "export")]
    assert all(m["compression"] == pytest.approx(145_657 / 28_351, abs=0.1) for m in student_rows)
    assert all(isinstance(m["quality"]["metrics"]["psnr_db"], float) for m in student_rows)
    # the exported fp32 student makes the PyTorch student's images
    assert student_rows[1]["quality"]["metrics"]["classifier_fid"] == pytest.approx(
        student_rows[0]["quality"]["metrics"]["classifier_fid"], rel=1e-3, abs=1e-3)
    for f in ("bench.md", "samples.png", "pareto.png"):
        assert (out / f).stat().st_size > 0
    m = json.loads((student / "manifest.json").read_text())
    assert m["bench"]["path"].endswith("bench.json") and m["distill"]


def test_bench_json_parses_and_is_bench_json(student, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "j"
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "bench", str(student), "--models", "student", "--samples",
                        "64", "--out", str(out), "--quiet", "--json"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc == json.loads((out / "bench.json").read_text())
    assert [m["kind"] for m in doc["results"][0]["models"]] == ["student"]


@pytest.mark.parametrize("content", [None, b"not the inception weights"])
def test_inception_weights_are_checked_before_anything_is_written(student, tmp_path, content):
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    if content is not None:
        weights.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "bench", str(student), "--inception-weights", str(weights),
                        "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert ("no such file" if content is None else "is not pytorch-fid's") in lines[0]
    assert not (tmp_path / "x").exists()


def test_inception_unavailable_here_says_why(tmp_path):
    from edgegan.metrics.inception import InceptionOptions, inception_available

    ok, reason = inception_available(InceptionOptions(weights_path=tmp_path / "missing.pth"))
    if not ok:  # the state of this machine (no pytorch-fid, no weights): reported, with every reason
        assert "not found" in reason


def test_bench_refuses_a_teacher_run(student, tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "bench", str(student.parent / "t"), "--out",
                        str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 7 and "not a distilled student run" in r.stderr
    assert not (tmp_path / "x").exists()


def test_macs_closed_form():
    from edgegan.bench.harness import count_macs
    from edgegan.models import build_generator

    d = 2
    # ConvT(100,8d,4,1,0) on 1x1: 100*8d*16; then 4x4*8d*4d*16, 8x8*4d*2d*16, 16x16*2d*d*16; 1x1 conv: 32*32*d*1
    expected = 100 * 8 * d * 16 + 16 * 8 * d * 4 * d * 16 + 64 * 4 * d * 2 * d * 16 + 256 * 2 * d * d * 16 + 1024 * d
    assert count_macs(build_generator("dcgan", d=d), 100) == expected
