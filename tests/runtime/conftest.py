"""Fixtures for the runtime tests: a tiny DCGAN (d=2) exported to ONNX and TFLite by the tests
themselves (torch is fine here; the runtime under test never imports it), and run directories.

The exported generator gets weights large enough that its images use the whole [-1, 1] range,
so parity checks compare real numbers rather than values near zero.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

LATENT = 100
SHAPE = (1, 32, 32)
# Lines a test wants in make test's summary (tflite-runtime against LiteRT, per precision).
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if SUMMARY:
        terminalreporter.section("tflite-runtime vs LiteRT")
        for line in SUMMARY:
            terminalreporter.write_line(line)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def torch_generator():
    torch = pytest.importorskip("torch")
    from edgegan.models import build_generator

    torch.manual_seed(0)
    g = build_generator("dcgan", d=2).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.normal_(0, 1.0).mul_(2.0 / m.weight[0].numel() ** 0.5)
                if m.bias is not None:
                    m.bias.normal_(0, 0.3)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
        g.net[-2].weight.copy_(torch.tensor([1.5, -1.5]).view(1, 2, 1, 1))
    return g


@pytest.fixture(scope="session")
def reference(torch_generator):
    """(z, images): 70 latents from the runtime's sampler and torch's images for them."""
    import torch

    from edgegan_runtime import latent

    z = latent(70, LATENT, 7)
    with torch.no_grad():
        x = torch_generator(torch.from_numpy(z)).numpy()
    return z, x


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def onnx_model(torch_generator, model_dir) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    path = model_dir / "d2.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            torch_generator,
            (torch.zeros(1, LATENT),),
            str(path),
            input_names=["z"],
            output_names=["images"],
            dynamic_axes={"z": {0: "batch"}, "images": {0: "batch"}},
            dynamo=False,
        )
    return path


@pytest.fixture(scope="session")
def tflite_model(torch_generator, model_dir) -> Path:
    """Signatures batch_1 and batch_64, as the exporter writes them."""
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    path = model_dir / "d2.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = (
            litert_torch.signature("batch_1", torch_generator, (torch.zeros(1, LATENT),))
            .signature("batch_64", torch_generator, (torch.zeros(64, LATENT),))
            .convert()
        )
        model.export(str(path))
    return path


def rewrite_tflite(src: Path, dst: Path, edit) -> Path:
    """Apply ``edit(model: ModelT)`` through the flatbuffer object API and write a valid file."""
    flatbuffers = pytest.importorskip("flatbuffers")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromPackedBuf(bytearray(src.read_bytes()), 0)
    edit(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(bytes(b.Output()))
    return dst


@pytest.fixture(scope="session")
def tflite_nosig_model(tflite_model, model_dir) -> Path:
    """The same model without signatures: only the primary subgraph (batch 1) is reachable."""

    def drop(model):
        model.signatureDefs = []

    return rewrite_tflite(tflite_model, model_dir / "d2-nosig.tflite", drop)


@pytest.fixture(scope="session")
def tflite_int8_model(torch_generator, model_dir) -> Path | None:
    """Static int8 (litert-torch PT2E, per-channel weights, float I/O), or None where it cannot be made."""
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    path = model_dir / "d2-int8.tflite"
    try:
        from litert_torch.quantize import pt2e_quantizer, quant_config

        try:
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        except ImportError:
            from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e
        q = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
        )
        gen = torch.Generator().manual_seed(0)
        conv = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in (1, 64):
                m = prepare_pt2e(torch.export.export(torch_generator, (torch.zeros(b, LATENT),)).module(), q)
                for _ in range(4):
                    m(torch.randn(b, LATENT, generator=gen))
                m = convert_pt2e(m, fold_quantize=False)
                args = (torch.zeros(b, LATENT),)
                key = f"batch_{b}"
                conv = litert_torch.signature(key, m, args) if conv is None else conv.signature(key, m, args)
            conv.convert(quant_config=quant_config.QuantConfig(pt2e_quantizer=q)).export(str(path))
    except Exception:  # noqa: BLE001 - an optional fixture: the tests that need it skip
        return None
    return path


IN_SCALE, OUT_SCALE = 4.0 / 127, 1.0 / 127  # the int8-I/O fixture's quantization (zero points 0)


@pytest.fixture(scope="session")
def tflite_int8io_model(tflite_model, model_dir) -> Path:
    """The model with int8 input and output tensors, as a fully-quantized export has: every
    subgraph gets DEQUANTIZE(int8 z) -> float z in front and QUANTIZE(images) -> int8 behind."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

    def tensor(name: str, shape, scale: float):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, np.array(shape, np.int32), schema.TensorType.INT8, 0
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [0]
        return t

    def opcode(model, code: int) -> int:
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        model.operatorCodes.append(oc)
        return len(model.operatorCodes) - 1

    def op(index: int, i: int, o: int):
        x = schema.OperatorT()
        x.opcodeIndex, x.inputs, x.outputs = index, np.array([i], np.int32), np.array([o], np.int32)
        return x

    def edit(model):
        deq = opcode(model, schema.BuiltinOperator.DEQUANTIZE)
        quant = opcode(model, schema.BuiltinOperator.QUANTIZE)
        for sig in model.signatureDefs:
            sg = model.subgraphs[sig.subgraphIndex]
            fin, fout = sig.inputs[0].tensorIndex, sig.outputs[0].tensorIndex
            sg.tensors.append(tensor("z_int8", sg.tensors[fin].shape, IN_SCALE))
            sg.tensors.append(tensor("images_int8", sg.tensors[fout].shape, OUT_SCALE))
            qin, qout = len(sg.tensors) - 2, len(sg.tensors) - 1
            sg.operators = [op(deq, qin, fin), *sg.operators, op(quant, fout, qout)]
            sg.inputs, sg.outputs = np.array([qin], np.int32), np.array([qout], np.int32)
            sig.inputs[0].tensorIndex, sig.outputs[0].tensorIndex = qin, qout

    return rewrite_tflite(tflite_model, model_dir / "d2-int8io.tflite", edit)


@dataclass(frozen=True)
class Run:
    dir: Path
    manifest: Path
    entries: list


def make_run(root: Path, files: dict[str, Path], *, latent_dim: int = LATENT, shape=SHAPE) -> Run:
    """A run directory with a manifest listing ``files`` ({"fmt:precision": source path})."""
    (root / "exports").mkdir(parents=True, exist_ok=True)
    entries = []
    for label, src in files.items():
        fmt, precision = label.split(":")
        dst = root / "exports" / f"student-{precision}.{fmt}"
        shutil.copyfile(src, dst)
        entry = {
            "file": f"exports/{dst.name}",
            "format": fmt,
            "precision": precision,
            "sha256": sha256(dst),
            "bytes": dst.stat().st_size,
        }
        if fmt == "tflite":
            entry["signatures"] = [{"key": "batch_1", "batch": 1}, {"key": "batch_64", "batch": 64}]
        entries.append(entry)
    manifest = {
        "schema": "edgegan.manifest/1",
        "kind": "student",
        "model": {
            "family": "dcgan",
            "args": {"d": 2},
            "latent": {"dim": latent_dim, "distribution": "edgegan_runtime.latent"},
            "output": {"shape": list(shape), "range": [-1, 1], "layout": "NCHW"},
            "weights": {"path": "student.safetensors", "sha256": "0" * 64, "bytes": 0},
        },
        "exports": entries,
    }
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return Run(root, path, entries)


@pytest.fixture
def run_dir(tmp_path, onnx_model, tflite_model) -> Run:
    return make_run(tmp_path / "run", {"onnx:fp32": onnx_model, "tflite:fp32": tflite_model})


def images_close(a: np.ndarray, b: np.ndarray, atol: float = 1e-4) -> bool:
    return a.shape == b.shape and (a.size == 0 or float(np.abs(a - b).max()) <= atol)
