"""The public API: load files and manifests, generate, split batches, reject bad input with typed errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from conftest import LATENT, images_close, make_run

import edgegan_runtime as rt
from edgegan_runtime.backend import _dequantize, _quantize
from edgegan_runtime.tflite_check import TensorSpec

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(params=["onnx", "tflite"])
def model(request, onnx_model, tflite_model):
    if request.param == "onnx":
        if not HAS_ORT:
            pytest.skip("onnxruntime not installed")
        return onnx_model
    if not HAS_LITERT:
        pytest.skip("ai-edge-litert not installed")
    return tflite_model


def test_backends_lists_installed():
    names = rt.backends()
    assert set(names) <= {"onnxruntime", "litert", "tflite-runtime"}
    assert ("onnxruntime" in names) == HAS_ORT and ("litert" in names) == HAS_LITERT


def test_contract_and_parity(model, reference):
    z, want = reference
    g = rt.load(model)
    assert (g.latent_dim, g.output_shape) == (LATENT, (1, 32, 32))
    assert g.backend == ("onnxruntime" if model.suffix == ".onnx" else "litert")
    assert g.batch_sizes == (None if model.suffix == ".onnx" else (1, 64))
    assert g.path == model and g.bytes == model.stat().st_size and len(g.sha256) == 64
    x = g.generate_from(z)
    assert x.dtype == np.float32 and x.shape == (70, 1, 32, 32)
    assert float(want.max() - want.min()) > 1.0  # the reference model is not trivially flat
    assert images_close(x, want, atol=1e-4)


@pytest.mark.parametrize("n", [0, 1, 2, 63, 64, 65, 130, 300])
def test_any_batch_equals_one_by_one(model, reference, n):
    z, want = reference
    g = rt.load(model)
    z = np.tile(z, (5, 1))[:n]
    want = np.tile(want, (5, 1, 1, 1))[:n]
    x = g.generate_from(z)
    assert x.shape == (n, 1, 32, 32)
    assert images_close(x, want, atol=1e-4)


def test_generate_pixels(model):
    g = rt.load(model)
    p = g.generate(5, seed=3)
    assert p.dtype == np.uint8 and p.shape == (5, 32, 32, 1)
    assert np.array_equal(p, rt.to_pixels(g.generate_from(rt.latent(5, LATENT, 3))))
    assert np.array_equal(g.generate(3, seed=3), p[:3])  # image i depends on (seed, i) only
    assert not np.array_equal(g.generate(5, seed=4), p)
    assert g.generate(0).shape == (0, 32, 32, 1)


def test_z_dtypes_and_layouts(model, reference):
    z, want = reference
    g = rt.load(model)
    assert images_close(g.generate_from(z.astype(np.float64)[:4]), want[:4])
    assert images_close(g.generate_from(np.asfortranarray(z[:4])), want[:4])
    assert images_close(g.generate_from(z[:4].tolist()), want[:4])


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 99), np.float32), np.zeros((100,), np.float32), np.zeros((1, 100), complex), "z"]
)
def test_bad_z(model, bad):
    g = rt.load(model)
    with pytest.raises(rt.InputError, match=str(model)):
        g.generate_from(bad)


def test_bad_arguments(model):
    g = rt.load(model)
    for n in (-1, 1.5, True):
        with pytest.raises(rt.InputError):
            g.generate(n)
    with pytest.raises(rt.InputError):
        g.generate(1, seed="x")
    for threads in (0, -1, 1.5, True):
        with pytest.raises(rt.InputError):
            rt.load(model, threads=threads)
    with pytest.raises(rt.InputError):
        rt.load(model, sha256="abc")
    with pytest.raises(rt.InputError, match="manifest"):
        rt.load(model, export="onnx:fp32")


def test_threads_setting(model, reference):
    z, want = reference
    g = rt.load(model, threads=2)
    assert g.threads == 2
    assert images_close(g.generate_from(z[:64]), want[:64])


def test_sha256_argument(model):
    good = rt.load(model).sha256
    assert rt.load(model, sha256=good.upper()).sha256 == good
    with pytest.raises(rt.ModelFileError, match="sha256"):
        rt.load(model, sha256="f" * 64)


def test_context_manager(model):
    with rt.load(model) as g:
        assert g.generate(1).shape == (1, 32, 32, 1)


# ---------------------------------------------------------------- backends


@pytest.mark.onnx
@pytest.mark.tflite
def test_forced_backends(onnx_model, tflite_model):
    with pytest.raises(rt.BackendUnavailableError, match="cannot run ONNX"):
        rt.load(onnx_model, backend="litert")
    with pytest.raises(rt.BackendUnavailableError, match="did you mean 'litert'"):
        rt.load(tflite_model, backend="litrt")
    if not importlib.util.find_spec("tflite_runtime"):
        with pytest.raises(rt.BackendUnavailableError, match=r"edgegan-runtime\[tflite\]"):
            rt.load(tflite_model, backend="tflite-runtime")
    assert rt.load(tflite_model, backend="litert").backend == "litert"
    assert rt.load(onnx_model, backend="onnxruntime").backend == "onnxruntime"


@pytest.mark.tflite
def test_a_precision_a_backend_refuses_is_refused_by_name_before_native_code(tmp_path, tflite_model, monkeypatch):
    """The manifest says dynamic-int8: tflite-runtime is refused with the registry's reason (whether or not
    it is installed: nothing is imported), and choosing without a name skips it."""
    from edgegan_runtime import backend

    run = make_run(tmp_path / "run", {"tflite:dynamic-int8": tflite_model})
    why = backend.BACKENDS["tflite-runtime"].refusal("dynamic-int8")
    assert why and backend.BACKENDS["litert"].refusal("dynamic-int8") is None
    assert backend.BACKENDS["tflite-runtime"].refusal("fp32") is None
    monkeypatch.setattr(backend, "_load_module", lambda spec: pytest.fail(f"{spec.name} was imported"))
    with pytest.raises(rt.BackendUnavailableError, match="cannot run dynamic-int8 files") as e:
        rt.load(run.manifest, backend="tflite-runtime")
    assert why in str(e.value)
    monkeypatch.setattr(backend, "_available", {"litert": False, "tflite-runtime": True})
    with pytest.raises(rt.BackendUnavailableError, match="no installed backend runs dynamic-int8"):
        rt.load(run.manifest)


@pytest.mark.tflite
def test_no_backend_installed_message(tflite_model, monkeypatch):
    from edgegan_runtime import backend

    monkeypatch.setattr(backend, "_available", {"litert": False, "tflite-runtime": False})
    with pytest.raises(rt.BackendUnavailableError, match=r"pip install 'edgegan-runtime\[litert\]'"):
        rt.load(tflite_model)


@pytest.mark.tflite
def test_tflite_without_signatures(tflite_nosig_model, reference):
    z, want = reference
    g = rt.load(tflite_nosig_model)
    assert g.batch_sizes == (1,)
    assert images_close(g.generate_from(z[:3]), want[:3])


@pytest.mark.tflite
def test_int8_io_uses_the_files_quantization(tflite_int8io_model, torch_generator, reference):
    """int8 input/output tensors: z is quantized and images dequantized with the file's own
    scale/zero point; the result is the float model's output on the quantized z, to one int8 step."""
    import torch
    from conftest import IN_SCALE, OUT_SCALE

    z, _ = reference
    g = rt.load(tflite_int8io_model)
    assert g.batch_sizes == (1, 64)
    plan = g._pool._idle[0]._plans[1]
    assert (plan.input.dtype, plan.output.dtype) == ("int8", "int8")
    x = g.generate_from(z)
    zq = np.clip(np.round(z / np.float32(IN_SCALE)), -128, 127) * np.float32(IN_SCALE)
    with torch.no_grad():
        want = torch_generator(torch.from_numpy(zq.astype(np.float32))).numpy()
    assert x.dtype == np.float32 and x.shape == want.shape
    assert np.allclose(x / OUT_SCALE, np.round(x / OUT_SCALE), atol=1e-3)  # on the int8 grid
    assert float(np.abs(x - want).max()) <= OUT_SCALE * 0.5 + 1e-4


@pytest.mark.tflite
def test_static_int8_close_to_float(tflite_int8_model, reference):
    if tflite_int8_model is None:
        pytest.skip("litert-torch PT2E int8 export not available")
    z, want = reference
    x = rt.load(tflite_int8_model).generate_from(z)
    assert x.shape == want.shape
    assert float(np.abs(x - want).mean()) < 0.05, float(np.abs(x - want).mean())


def test_quantize_roundtrip():
    spec = TensorSpec(0, (1, 4), (1, 4), "int8", 0.05, 3)
    z = np.array([[-10.0, -0.05, 0.0, 10.0]], np.float32)
    q = _quantize(z, spec)
    assert q.dtype == np.int8 and q.tolist() == [[-128, 2, 3, 127]]
    assert np.allclose(_dequantize(q, spec), [[-6.55, -0.05, 0.0, 6.2]])
    u = TensorSpec(0, (1, 4), (1, 4), "uint8", 0.5, 128)  # rounding half away from zero, as TFLite
    assert _quantize(np.array([[-64.0, 63.75, -0.25, 0.25]], np.float32), u).tolist() == [[0, 255, 127, 129]]


# ---------------------------------------------------------------- manifests


@pytest.mark.onnx
@pytest.mark.tflite
def test_manifest_selection(run_dir, reference):
    z, want = reference
    g = rt.load(run_dir.dir)
    assert g.format == "onnx" and g.precision == "fp32" and g.manifest == run_dir.manifest
    choices = [("tflite:fp32", "tflite"), ("student-fp32.tflite", "tflite"), ("exports/student-fp32.onnx", "onnx")]
    for export, fmt in choices:
        g = rt.load(run_dir.manifest, export=export)
        assert g.format == fmt
        assert images_close(g.generate_from(z[:2]), want[:2])
    with pytest.raises(rt.ManifestError, match="did you mean 'tflite:fp32'"):
        rt.load(run_dir.dir, export="tflite:fp33")


@pytest.mark.onnx
@pytest.mark.tflite
def test_manifest_sha_and_size(run_dir):
    target = run_dir.dir / run_dir.entries[1]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(rt.ModelFileError, match="sha256"):
        rt.load(run_dir.dir, export="tflite:fp32")
    target.write_bytes(bytes(data[:-10]))
    with pytest.raises(rt.ModelFileError, match="truncated"):
        rt.load(run_dir.dir, export="tflite:fp32")


@pytest.mark.onnx
@pytest.mark.tflite
def test_manifest_problems(tmp_path, onnx_model, tflite_model):
    with pytest.raises(rt.ManifestError, match="no such manifest"):
        rt.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(rt.ManifestError, match="not valid JSON"):
        rt.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(rt.ManifestError, match="not an edgegan manifest"):
        rt.load(tmp_path)
    run = make_run(tmp_path / "a", {"onnx:fp32": onnx_model})
    m = json.loads(run.manifest.read_text())
    m["exports"][0]["file"] = "../../escape.onnx"
    run.manifest.write_text(json.dumps(m))
    with pytest.raises(rt.ManifestError, match="outside the run directory"):
        rt.load(run.dir)
    run = make_run(tmp_path / "b", {"tflite:fp32": tflite_model}, latent_dim=64)
    with pytest.raises(rt.ModelFileError, match="latent size 100, the manifest says 64"):
        rt.load(run.dir)
    run = make_run(tmp_path / "c", {"onnx:fp32": onnx_model})
    m = json.loads(run.manifest.read_text())
    m["exports"][0]["format"] = "tflite"
    run.manifest.write_text(json.dumps(m))
    with pytest.raises(rt.ModelFileError, match="wrong file type"):
        rt.load(run.dir)
    m["exports"] = []
    run.manifest.write_text(json.dumps(m))
    with pytest.raises(rt.ManifestError, match="no exports"):
        rt.load(run.manifest)


def test_error_hierarchy():
    for cls in (rt.ModelFileError, rt.ManifestError, rt.BackendUnavailableError, rt.BackendError, rt.InputError):
        assert issubclass(cls, rt.RuntimeModelError)
    assert issubclass(rt.ManifestError, rt.ModelFileError) and issubclass(rt.InputError, ValueError)
