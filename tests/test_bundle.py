"""The bench bundle (issue 12): its contents, its script run on this host, merging device results into
the bench table, and the same bundle on aarch64 under qemu when the cached rootfs is present."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path
import tarfile

import pytest

from edgegan.bench.harness import load_device_results, merge_device_results, run_bench, to_markdown
from edgegan.app.bundle import DEVICE_FP32_MAX_ABS, make_bundle, run_bundle_here
from edgegan.errors import BenchError, BundleError, UnknownNameError
from edgegan.testing import make_run, tiny_student

pytestmark = [
    pytest.mark.tflite,
    pytest.mark.onnx,
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_quantizer.*"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pytest.importorskip("litert_torch")
    pytest.importorskip("onnxruntime")
    from edgegan.export import export_run

    r = make_run(tmp_path_factory.mktemp("bundle") / "student", tiny_student(2, 20, 0, 100), {"d": 2})
    export_run(r, format="tflite", quantize="none", batch=[1, 4])
    export_run(r, format="tflite", quantize="int8", batch=[1, 64])
    export_run(r, format="onnx", quantize="none")
    return r


@pytest.fixture(scope="module")
def bundle(run, tmp_path_factory):
    return make_bundle(run, out=tmp_path_factory.mktemp("b") / "bundle.tar.gz", target="aarch64")


@pytest.fixture(scope="module")
def host_results(bundle, tmp_path_factory):
    return run_bundle_here(bundle["path"], out=tmp_path_factory.mktemp("dev") / "device.json", runs=20)


def members(path: str) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def test_bundle_holds_models_manifest_runtime_probe_script_and_references(run, bundle):
    files = members(bundle["path"])
    top = bundle["top"] + "/"
    assert all(n.startswith(top) for n in files)
    rel = {n[len(top):]: data for n, data in files.items()}
    for need in ("run_bench.py", "bundle.json", "README.txt", "model/manifest.json",
                 "model/exports/student-tflite-fp32.tflite", "model/exports/student-tflite-int8.tflite",
                 "model/exports/student-onnx-fp32.onnx", "runtime/edgegan_runtime/__init__.py",
                 "runtime/edgegan_runtime/probe.py", "runtime/edgegan_runtime/contract.py",
                 "runtime/edgegan_runtime/c/edgegan.h", "runtime/edgegan_runtime/c/edgegan.c"):
        assert need in rel, need
    assert not [n for n in rel if "__pycache__" in n or n.endswith((".pyc", ".safetensors"))]
    doc = json.loads(rel["bundle.json"])
    assert doc["schema"] == "edgegan.bundle/1" and doc["target"] == "aarch64"
    # every other file is listed with its sha256
    assert set(doc["files"]) == set(rel) - {"bundle.json"}
    assert all(hashlib.sha256(rel[k]).hexdigest() == v for k, v in doc["files"].items())
    assert [m["name"] for m in doc["models"]] == ["tflite:fp32", "tflite:int8", "onnx:fp32"]
    for m in doc["models"]:
        assert m["reference"] in rel and m["sha256"] == hashlib.sha256(rel[m["file"]]).hexdigest()
    assert doc["models"][0]["thresholds"]["max_abs"] == DEVICE_FP32_MAX_ABS
    # the interpreter is named (no wheels folder given), at the host's versions
    assert any(n.startswith("ai-edge-litert==") for n in doc["wheels"]["named"]) and not doc["wheels"]["included"]
    manifest = json.loads(rel["model/manifest.json"])
    assert [e["file"] for e in manifest["exports"]] == ["exports/student-tflite-fp32.tflite",
                                                          "exports/student-tflite-int8.tflite",
                                                          "exports/student-onnx-fp32.onnx"]
    # the script runs with only the standard library, numpy and the bundled runtime
    tree = ast.parse(rel["run_bench.py"])
    imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names) | {"numpy", "edgegan_runtime", "__future__"}, imported


def test_bundle_picks_exports_and_refuses_bad_input(run, tmp_path):
    b = make_bundle(run, out=tmp_path / "one.tar.gz", exports=["tflite:int8"], reference=False)
    doc = json.loads(next(v for k, v in members(b["path"]).items() if k.endswith("bundle.json")))
    assert [m["name"] for m in doc["models"]] == ["tflite:int8"] and doc["models"][0]["reference"] is None
    assert doc["wheels"]["named"][0].startswith("numpy") and not any("onnx" in n for n in doc["wheels"]["named"])
    with pytest.raises(UnknownNameError, match="tflite:int8"):
        make_bundle(run, out=tmp_path / "x.tar.gz", exports=["tflite:int9"])
    with pytest.raises(UnknownNameError, match="aarch64"):
        make_bundle(run, out=tmp_path / "x.tar.gz", target="arm64x")
    empty = make_run(tmp_path / "empty", tiny_student(2, 1, 0, 100), {"d": 2})
    with pytest.raises(BundleError, match="no exports"):
        make_bundle(empty, out=tmp_path / "x.tar.gz")
    assert not (tmp_path / "x.tar.gz").exists()


def test_bundle_cli(run, tmp_path):
    out = tmp_path / "cli.tar.gz"
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "bundle", str(run), "--target", "aarch64", "-o", str(out),
                        "--export", "tflite:int8", "--no-reference"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "models tflite:int8" in r.stdout and "pip install numpy==" in r.stdout and "run_bench.py" in r.stdout
    assert out.stat().st_size > 40_000
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "bundle", str(run), "--target", "arm", "-o",
                        str(tmp_path / "no.tar.gz")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "valid: aarch64, x86_64" in r.stderr
    assert not (tmp_path / "no.tar.gz").exists()


def test_script_on_this_host_matches_and_probes(host_results, bundle):
    d = host_results
    assert d["schema"] == "edgegan.device-results/1" and d["machine"]["emulated"] is False
    assert d["checks"]["sha256"] == "ok" and d["checks"]["files"] == bundle["files"] - 1
    assert [m["name"] for m in d["models"]] == ["tflite:fp32", "tflite:int8", "onnx:fp32"]
    for m in d["models"]:
        assert "error" not in m, m
        # the same machine and runtime as the reference: the same bits
        assert m["parity"]["passed"] and m["parity"]["bit_exact"] and m["parity"]["pixels_differing"] == 0
        assert m["latency"]["runs"] == 20 and m["latency"]["p50_us"] > 0 and m["latency"]["torch_imported"] is False
        assert m["latency"]["sha256"] == m["sha256"]
    assert d["versions"]["edgegan-runtime"].endswith("(bundled)")


def test_script_refuses_an_altered_bundle(bundle, tmp_path):
    with tarfile.open(bundle["path"]) as tf:
        tf.extractall(tmp_path, filter="data")
    top = tmp_path / bundle["top"]
    model = top / "model/exports/student-onnx-fp32.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    r = subprocess.run([sys.executable, str(top / "run_bench.py"), "--no-probe", "-o", str(tmp_path / "d.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "student-onnx-fp32.onnx: sha256 differs" in r.stderr
    assert not (tmp_path / "d.json").exists()


def _bench_doc(bundle_doc_models: list[dict]) -> dict:
    """A bench.json as run_bench writes it, with one row per bundled export and one other row."""
    rows = [{"name": "student d=2", "kind": "export", "format": m["format"], "precision": m["precision"],
             "params": 10, "macs": 100, "bytes": 1, "compression": 2.0, "sha256": m["sha256"],
             "latency": {"p50_us": 30.0, "images_per_s": 30000}, "quality": {}} for m in bundle_doc_models]
    rows.append({"name": "student d=2", "kind": "student", "format": "torch", "precision": "fp32", "params": 10,
                 "macs": 100, "bytes": 1, "compression": 2.0, "latency": {"p50_us": 250.0}, "quality": {}})
    return {"created": "now", "machine": {"cpu": "x86", "cores": 2}, "versions": {},
            "settings": {"batch": 1, "threads": 1, "samples": 2}, "results": [{"run": "r", "dataset": "digits",
                                                                                "models": rows}]}


def test_device_results_become_columns_labelled_with_the_cpu(host_results, tmp_path):
    p = tmp_path / "board.json"
    board = dict(host_results, machine={**host_results["machine"], "cpu": "Raspberry Pi 5 (4x Cortex-A76)"})
    p.write_text(json.dumps(board))
    emu = tmp_path / "emu.json"
    emu.write_text(json.dumps(dict(host_results, machine={**host_results["machine"], "cpu": "Neoverse-N1",
                                                          "emulated": True})))
    doc = _bench_doc(host_results["models"])
    merge_device_results(doc, load_device_results([p, emu]))
    rows = doc["results"][0]["models"]
    assert [d["label"] for d in doc["devices"]] == ["Raspberry Pi 5 (4x Cortex-A76)", "Neoverse-N1 (emulated)"]
    assert doc["devices"][0]["matched"] == 3
    for r, m in zip(rows, host_results["models"]):
        dev = r["devices"]["Raspberry Pi 5 (4x Cortex-A76)"]
        assert dev["p50_us"] == m["latency"]["p50_us"] and dev["emulated"] is False
        assert dev["parity_vs_host"]["passed"] is True
        assert r["devices"]["Neoverse-N1 (emulated)"]["emulated"] is True
    assert "devices" not in rows[-1]  # the torch row was not measured on the board
    md = to_markdown(doc)
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert header.endswith("| p50 µs on Raspberry Pi 5 (4x Cortex-A76) | "
                           "Neoverse-N1 (emulated): p50 µs EMULATED, not device latency |")
    assert "p50 µs on Neoverse-N1" not in md  # an emulator is never shown as device latency
    cells = next(line for line in md.splitlines() if line.startswith("| student d=2 | tflite | int8")).split("|")
    assert "✓ images" in cells[-3] and cells[-3].strip().startswith(f"{host_results['models'][1]['latency']['p50_us']:,.1f}")
    assert next(line for line in md.splitlines() if "| torch |" in line).endswith("| — | — |")


def test_bad_device_results_are_refused_before_anything_is_written(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "edgegan.bench/1"}))
    for p, msg in ((tmp_path / "missing.json", "no such"), (bad, "not a device-results file")):
        with pytest.raises(BenchError, match=msg):
            load_device_results([p])
        with pytest.raises(BenchError, match=msg):
            run_bench(["no-such-run"], out=tmp_path / "out", device_results=[p])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bundle_on_aarch64_under_qemu(bundle, host_results, tmp_path):
    """The same bundle on an emulated Neoverse-N1 (arm64 Debian rootfs under qemu-user): its images match
    this host's (fp32 within 1e-6, int8 bit-exact). Needs `python bench/scripts/aarch64.py setup` once."""
    aarch64 = _aarch64_script()

    why = aarch64.unavailable_reason()
    if why:
        pytest.skip(f"aarch64 emulation unavailable: {why}")
    d = aarch64.run_bundle(bundle["path"], out=tmp_path / "arm.json", runs=5)
    assert d["machine"]["machine"] == "aarch64" and d["machine"]["emulated"] is True
    assert "emulated" in d["machine"]["cpu"]
    by = {m["name"]: m for m in d["models"]}
    assert set(by) == {"tflite:fp32", "tflite:int8", "onnx:fp32"}
    for name, m in by.items():
        assert "error" not in m, m
        assert m["parity"]["passed"], (name, m["parity"])
        assert m["latency"]["runs"] == 5 and m["latency"]["p50_us"] > 0
    assert by["tflite:fp32"]["parity"]["max_abs"] <= 1e-6 and by["onnx:fp32"]["parity"]["max_abs"] <= 1e-6
    assert by["tflite:int8"]["parity"]["bit_exact"]


def _aarch64_script():
    """bench/scripts/aarch64.py: a script beside the package (not shipped in the wheel), loaded by path."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "scripts" / "aarch64.py"
    spec = importlib.util.spec_from_file_location("edgegan_bench_aarch64", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file executes
    spec.loader.exec_module(mod)
    return mod


def test_image_to_image_bundle_carries_real_inputs_and_matches_on_this_host(shared_data, i2i_run, i2i_export,
                                                                            tmp_path):
    """An image-to-image run's bundle (issue 21) carries the task's inputs made from its dataset's test split;
    the script translates them with each file and compares with the host's outputs."""
    import io

    import numpy as np

    i2i_export("tflite", "int8")
    i2i_export("onnx")
    b = make_bundle(i2i_run, out=tmp_path / "i2i.tar.gz", target="aarch64")
    files = members(b["path"])
    top = b["top"]
    x = np.load(io.BytesIO(files[f"{top}/reference/inputs-16x16.npy"]), allow_pickle=False)
    assert x.shape == (8, 3, 16, 16) and x.dtype == np.float32 and -1 <= x.min() < x.max() <= 1
    doc = json.loads(files[f"{top}/bundle.json"])
    assert all(m["inputs"] == "reference/inputs-16x16.npy" and m["reference"] for m in doc["models"])
    ref = np.load(io.BytesIO(files[f"{top}/{doc['models'][0]['reference']}"]), allow_pickle=False)
    assert ref.shape == (8, 3, 32, 32)  # the 2x outputs of the inputs
    d = run_bundle_here(b["path"], out=tmp_path / "device.json", runs=5)
    assert {m["name"] for m in d["models"]} >= {"tflite:int8", "onnx:fp32"}
    for m in d["models"]:
        assert "error" not in m, m
        assert m["parity"]["passed"] and m["parity"]["bit_exact"], m
        assert m["latency"]["p50_us"] > 0 and (tmp_path / m["grid"]).is_file()


def test_conditional_bundle_references_each_image_s_class_and_matches_on_this_host(conditional_run,
                                                                                   conditional_export, tmp_path):
    """A conditional run's bundle (issue 20): reference image i draws class i mod K (the list travels in
    bundle.json, so the board feeds what the host fed); the script generates them with each file, the same bits."""
    import io

    import numpy as np

    import edgegan_runtime as rt

    e = conditional_export("onnx", "none")
    b = make_bundle(conditional_run, out=tmp_path / "c.tar.gz", target="aarch64", exports=["onnx:fp32"])
    files = members(b["path"])
    doc = json.loads(files[f"{b['top']}/bundle.json"])
    (m,) = doc["models"]
    assert m["labels"] == [i % 10 for i in range(8)]
    ref = np.load(io.BytesIO(files[f"{b['top']}/{m['reference']}"]), allow_pickle=False)
    with rt.load(conditional_run / e["file"]) as g:
        z = rt.latent(8, g.latent_dim, 0)
        assert np.array_equal(ref, g.generate_from(z, m["labels"]))
        assert not np.array_equal(ref, g.generate_from(z, [3] * 8))  # the classes are what the reference drew
    d = run_bundle_here(b["path"], out=tmp_path / "device.json", runs=5)
    (got,) = d["models"]
    assert "error" not in got, got
    assert got["parity"]["passed"] and got["parity"]["bit_exact"], got
    assert got["latency"]["p50_us"] > 0 and (tmp_path / got["grid"]).is_file()
