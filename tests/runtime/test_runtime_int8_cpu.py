"""int8 ONNX files and the CPU (issue #8): the runtime reads a QDQ file's activation/weight types and
warns where onnxruntime's U8S8 kernels are known to saturate (x86 without VNNI). CPU-independent:
the CPU is described to the functions, never read from this machine."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgegan_runtime import cpu
from edgegan_runtime.onnx_check import verify_onnx

pytestmark = pytest.mark.onnx

AVX2 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n"
VNNI = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw avx512_vnni\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp\n"


def test_cpu_flags_parse_x86_and_arm():
    assert "avx2" in cpu.cpu_flags(AVX2) and "avx512_vnni" not in cpu.cpu_flags(AVX2)
    assert "asimddp" in cpu.cpu_flags(ARM)
    assert cpu.cpu_flags("no flags here") is None


@pytest.mark.parametrize("machine,info,saturates", [
    ("x86_64", AVX2, True), ("x86_64", VNNI, False), ("AMD64", None, True), ("aarch64", ARM, False),
])
def test_u8s8_saturates_only_on_x86_without_vnni(machine, info, saturates):
    flags = cpu.cpu_flags(info) if info else frozenset()
    assert cpu.u8s8_saturates(machine, flags) is saturates


@pytest.fixture(scope="module")
def quantized(onnx_model, tmp_path_factory):
    """The conftest's d=2 ONNX generator quantized U8S8 (onnxruntime's default) and U8U8 (edgegan's)."""
    q = pytest.importorskip("onnxruntime.quantization")
    from edgegan_runtime import latent

    class Reader:
        def __init__(self):
            self.it = iter([{"z": latent(64, 100, s)} for s in range(2)])

        def get_next(self):
            return next(self.it, None)

    out = {}
    d = tmp_path_factory.mktemp("q")
    for name, wt in (("u8s8", q.QuantType.QInt8), ("u8u8", q.QuantType.QUInt8)):
        out[name] = d / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q.quantize_static(str(onnx_model), str(out[name]), Reader(), quant_format=q.QuantFormat.QDQ,
                              per_channel=True, activation_type=q.QuantType.QUInt8, weight_type=wt)
    return out


def test_int8_scheme_is_read_from_the_file(onnx_model, quantized):
    assert verify_onnx(onnx_model.read_bytes(), "f").int8_scheme is None
    assert verify_onnx(quantized["u8s8"].read_bytes(), "a").int8_scheme == "u8s8"
    assert verify_onnx(quantized["u8u8"].read_bytes(), "b").int8_scheme == "u8u8"


@pytest.mark.parametrize("saturates", [True, False])
def test_u8s8_file_warns_only_where_kernels_saturate(quantized, monkeypatch, saturates):
    import edgegan_runtime as rt
    from edgegan_runtime import generator

    monkeypatch.setattr(generator, "u8s8_saturates", lambda: saturates)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        rt.load(quantized["u8s8"]).close()
        rt.load(quantized["u8u8"]).close()  # U8U8 never warns
    msgs = [str(w.message) for w in got if issubclass(w.category, rt.PrecisionWarning)]
    assert len(msgs) == int(saturates), msgs
    if saturates:
        assert "U8S8" in msgs[0] and "u8s8.onnx" in msgs[0] and "Re-export" in msgs[0]


def test_u8u8_file_runs_its_own_arithmetic_exactly(quantized):
    """The fused U8U8 kernels of this CPU equal the QDQ graph simulated in float, bit for bit."""
    ort = pytest.importorskip("onnxruntime")
    import edgegan_runtime as rt

    z = rt.latent(32, 100, 3)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sim = ort.InferenceSession(str(quantized["u8u8"]), so, providers=["CPUExecutionProvider"]).run(None, {"z": z})[0]
    with rt.load(quantized["u8u8"]) as g:
        fused = g.generate_from(z)
    assert np.abs(fused - sim).max() <= 1e-6
