"""Verification before native code: each kind of damage gives a ModelFileError naming the file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import rewrite_tflite

from edgegan_runtime.checks import read_and_check
from edgegan_runtime.errors import ModelFileError
from edgegan_runtime.onnx_check import wire_check
from edgegan_runtime.tflite_check import verify_tflite


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def rejects(path: Path, match: str = "", **kw) -> str:
    with pytest.raises(ModelFileError, match=match) as e:
        read_and_check(path, **kw)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    return msg


# ---------------------------------------------------------------- file level


def test_missing_empty_directory(tmp_path):
    rejects(tmp_path / "nope.onnx", "no such model file")
    rejects(write(tmp_path, "empty.tflite", b""), "empty file")
    (tmp_path / "d.onnx").mkdir()
    rejects(tmp_path / "d.onnx", "directory")


def test_unknown_header(tmp_path):
    rejects(write(tmp_path, "junk.tflite", b"\xff" * 64), "not a TFLite model")
    rejects(write(tmp_path, "junk.bin", b"\xff" * 64), "not an ONNX or a TFLite model")


@pytest.mark.tflite
def test_size_and_sha_from_manifest(tmp_path, tflite_model):
    data = tflite_model.read_bytes()
    p = write(tmp_path, "m.tflite", data)
    rejects(p, "truncated or replaced", expected_bytes=len(data) + 1)
    rejects(p, "sha256", sha256="0" * 64)
    ok = read_and_check(p, sha256=read_and_check(p).sha256, expected_bytes=len(data))
    assert ok.format == "tflite" and ok.bytes == len(data)


@pytest.mark.tflite
@pytest.mark.onnx
def test_wrong_type(tmp_path, tflite_model, onnx_model):
    rejects(write(tmp_path, "x.onnx", tflite_model.read_bytes()), "content is a TFLite but an ONNX file was expected")
    rejects(write(tmp_path, "x.tflite", onnx_model.read_bytes()), "content is an ONNX but a TFLite file")
    rejects(write(tmp_path, "x.bin", tflite_model.read_bytes()), "wrong file type", fmt="onnx")


# ---------------------------------------------------------------- TFLite structure


@pytest.mark.tflite
def test_real_file_entries(tflite_model):
    entries = verify_tflite(tflite_model.read_bytes(), "m")
    assert [(e.key, e.input.shape, e.output.shape) for e in entries] == [
        ("batch_1", (1, 100), (1, 1, 32, 32)),
        ("batch_64", (64, 100), (64, 1, 32, 32)),
    ]
    assert all(e.input.dtype == e.output.dtype == "float32" for e in entries)
    checked = read_and_check(tflite_model)
    assert (checked.latent_dim, checked.output_shape, checked.batch_sizes) == (100, (1, 32, 32), (1, 64))


def _root(data: bytes) -> int:
    return struct.unpack_from("<I", data, 0)[0]


@pytest.mark.tflite
@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda d: d[:100], "past the end|outside the file"),
        (lambda d: d[:4] + b"TFL2" + d[8:], "no 'TFL3' identifier"),
        (lambda d: struct.pack("<I", len(d) + 8) + d[4:], "outside the file"),
        (lambda d: struct.pack("<I", _root(d) + 1) + d[4:], "misaligned"),
        (lambda d: d[: _root(d)] + struct.pack("<i", -(1 << 30)) + d[_root(d) + 4 :], "vtable"),
        (lambda d: d[: _root(d)] + struct.pack("<i", 2) + d[_root(d) + 4 :], "vtable|field|misaligned|past"),
    ],
    ids=["truncated", "identifier", "root-offset", "root-misaligned", "vtable-far", "vtable-garbage"],
)
def test_flatbuffer_damage(tmp_path, tflite_model, damage, match):
    rejects(write(tmp_path, "bad.tflite", damage(tflite_model.read_bytes())), match)


def _first_op_with(model, kind: str):
    from ai_edge_litert import schema_py_generated as s

    for sg in model.subgraphs:
        for op in sg.operators:
            if op.builtinOptionsType == getattr(s.BuiltinOptions, kind):
                return op
    raise AssertionError(f"no {kind} in the model")


def _set_stride0(m):
    _first_op_with(m, "TransposeConvOptions").builtinOptions.strideH = 0


def _bad_buffer(m):
    m.subgraphs[0].tensors[0].buffer = 100_000


def _bad_op_input(m):
    m.subgraphs[0].operators[0].inputs[0] = 100_000


def _bad_opcode(m):
    m.subgraphs[0].operators[0].opcodeIndex = 1000


def _bad_signature_tensor(m):
    m.signatureDefs[0].inputs[0].tensorIndex = 100_000


def _bad_signature_subgraph(m):
    m.signatureDefs[0].subgraphIndex = 7


def _weights_shape(m):
    for t in m.subgraphs[0].tensors:
        if t.buffer and m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data) > 64:
            t.shape = np.array([*t.shape[:-1], t.shape[-1] * 2], dtype=np.int32)
            return
    raise AssertionError("no constant tensor")


def _negative_dim(m):
    m.subgraphs[0].tensors[0].shape = np.array([1, -5], dtype=np.int32)


def _huge_tensor(m):
    m.subgraphs[0].tensors[-1].shape = np.array([1 << 20, 1 << 20, 4], dtype=np.int32)


def _version(m):
    m.version = 2


def _two_inputs(m):
    from ai_edge_litert import schema_py_generated as s

    extra = s.TensorMapT()
    extra.name, extra.tensorIndex = "b", 1
    m.signatureDefs[0].inputs.append(extra)


def _scale_count(m):
    for t in m.subgraphs[0].tensors:
        q = t.quantization
        if q is not None:
            q.scale, q.zeroPoint = [0.1, 0.2], [0]
            return
    from ai_edge_litert import schema_py_generated as s

    q = s.QuantizationParametersT()
    q.scale, q.zeroPoint = [0.1, 0.2], [0]
    m.subgraphs[0].tensors[0].quantization = q


@pytest.mark.tflite
@pytest.mark.parametrize(
    "edit,match",
    [
        (_set_stride0, "stride"),
        (_bad_buffer, "buffer 100000"),
        (_bad_op_input, "operator tensor index"),
        (_bad_opcode, "operator code"),
        (_bad_signature_tensor, "signature names tensor"),
        (_bad_signature_subgraph, "signature names subgraph"),
        (_weights_shape, "constant of shape"),
        (_negative_dim, "negative tensor dimension"),
        (_huge_tensor, "larger than 2 GiB"),
        (_version, "schema version 2"),
        (_two_inputs, "one of each"),
        (_scale_count, "quantization"),
    ],
    ids=lambda x: getattr(x, "__name__", "")[1:] if callable(x) else None,
)
def test_semantic_damage(tmp_path, tflite_model, edit, match):
    rejects(rewrite_tflite(tflite_model, tmp_path / "bad.tflite", edit), match)


@pytest.mark.tflite
def test_rewrite_without_damage_still_loads(tmp_path, tflite_model):
    p = rewrite_tflite(tflite_model, tmp_path / "same.tflite", lambda m: None)
    assert read_and_check(p).batch_sizes == (1, 64)


# ---------------------------------------------------------------- ONNX structure


def test_wire_check():
    with pytest.raises(ModelFileError, match="no graph"):
        wire_check(b"\x08\x07", "m.onnx")
    with pytest.raises(ModelFileError, match="truncated"):
        wire_check(b"\x08\x07\x3a\x80\x01abc", "m.onnx")
    with pytest.raises(ModelFileError, match="unexpected protobuf field"):
        wire_check(b"\x08\x07\x78\x01", "m.onnx")
    with pytest.raises(ModelFileError, match="varint"):
        wire_check(b"\x08" + b"\xff" * 11, "m.onnx")
    wire_check(b"\x08\x07\x3a\x00", "m.onnx")


@pytest.mark.onnx
def test_onnx_truncated_and_checker(tmp_path, onnx_model):
    import onnx

    data = onnx_model.read_bytes()
    rejects(write(tmp_path, "t.onnx", data[: len(data) // 2]), "truncated|corrupt")
    m = onnx.load(str(onnx_model))
    m.graph.node[0].op_type = "NoSuchOp"
    onnx.save(m, str(tmp_path / "op.onnx"))
    rejects(tmp_path / "op.onnx", "invalid ONNX model")


@pytest.mark.onnx
def test_onnx_contract(tmp_path, onnx_model):
    import onnx

    m = onnx.load(str(onnx_model))
    m.graph.input.append(onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, [1, 3]))
    onnx.save(m, str(tmp_path / "two.onnx"))
    rejects(tmp_path / "two.onnx", "2 inputs")

    m = onnx.load(str(onnx_model))
    m.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    onnx.save(m, str(tmp_path / "double.onnx"))
    rejects(tmp_path / "double.onnx", "float32|invalid")

    checked = read_and_check(onnx_model)
    assert (checked.latent_dim, checked.output_shape, checked.batch_sizes) == (100, (1, 32, 32), None)


@pytest.mark.onnx
def test_onnx_external_data_refused(tmp_path, onnx_model):
    import onnx

    m = onnx.load(str(onnx_model))
    onnx.save(m, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    rejects(tmp_path / "ext.onnx", "external data")
