"""Verify a .tflite flatbuffer in pure Python before any native interpreter sees it, and read the
generator's input/output contract from it.

A corrupted flatbuffer can make the TFLite interpreter read out of bounds and segfault, because the
Python interpreters build models without running the flatbuffers verifier. ``inspect_tflite`` is the
entry point, in three layers:

- ``tflite_flatbuffer``: the flatbuffer verifier, driven by the table layouts frozen in
  ``_tflite_schema`` (the same checks as flatc's generated ``Verify``: every offset, vtable, vector,
  string and sub-table inside the buffer and aligned; strings NUL-terminated; nesting and table
  count bounded);
- ``tflite_semantics``: the checks the interpreter relies on without making them: tensor, buffer,
  opcode and subgraph indices in range, constant data exactly as long as its tensor's shape says,
  quantization arrays consistent, strides and dilations >= 1, dataflow and control flow bounded;
- ``tflite_op_shapes``: each operator's output shape against its inputs, one rule per operator kind.

Then this module reads what the runtime needs from the verified tables: the runnable entries (z, a
conditional generator's label, and the output, as TensorSpec), the hybrid-quantized operators, the
named metadata.
The names the rest of the runtime and the tests import from here (``_Verifier``, ``ints``, the
limits...) are re-exported. Only ``struct`` and numpy: no flatbuffers package, no native code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from edgegan_runtime.errors import ModelFileError
from edgegan_runtime.tflite_flatbuffer import (
    IDENTIFIER,
    MAX_DEPTH,
    MAX_TABLES,
    Obj,
    Verifier,
    floats,
    ints,
    read_model,
)
from edgegan_runtime.tflite_op_shapes import MAX_WINDOW, OP_NAMES
from edgegan_runtime.tflite_semantics import (
    MAX_RANK,
    MAX_SCALE,
    MAX_SUBGRAPH_RUNS,
    MAX_TENSOR_BYTES,
    MIN_SCALE,
    SCHEMA_VERSION,
    TENSOR_TYPES,
    check_model,
    constant_bytes,
)

_Verifier = Verifier  # the name tests/runtime/rt_fuzzing.py (and older code) imports

__all__ = [
    "IDENTIFIER", "MAX_DEPTH", "MAX_RANK", "MAX_SCALE", "MAX_SUBGRAPH_RUNS", "MAX_TABLES", "MAX_TENSOR_BYTES",
    "MAX_WINDOW", "MIN_SCALE", "SCHEMA_VERSION", "TENSOR_TYPES", "Entry", "Obj", "TFLiteInfo", "TensorSpec",
    "Verifier", "_Verifier", "floats", "hybrid_operators", "inspect_tflite", "ints", "verify_tflite",
    "verify_tflite_metadata",
]


@dataclass(frozen=True)
class TensorSpec:
    index: int
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str  # "float32", "int8", ...
    scale: float | None  # per-tensor quantization, or None
    zero_point: int | None


@dataclass(frozen=True)
class Entry:
    """One way to run the model: a signature (or the primary subgraph) with one input (z) and one output, or
    with z and a class label as its two inputs (a conditional generator, issue 20)."""

    key: str | None  # signature key; None for a model without signatures
    subgraph: int
    input: TensorSpec
    output: TensorSpec
    label: TensorSpec | None = None  # input 1 of a conditional generator: the one-hot (B, K)


def verify_tflite(data: bytes | memoryview, name: str) -> list[Entry]:
    """Verify ``data`` (a whole .tflite file) and return its runnable entries; raises ModelFileError."""
    return inspect_tflite(data, name).entries


def verify_tflite_metadata(data: bytes | memoryview, name: str) -> tuple[list[Entry], dict[str, bytes]]:
    """``verify_tflite``, and the Model's named metadata buffers (name -> bytes; the first of a name wins)."""
    info = inspect_tflite(data, name)
    return info.entries, info.metadata


class TFLiteInfo(NamedTuple):
    entries: list  # of Entry: the runnable signatures
    hybrid_ops: tuple[str, ...]  # operators with float32 activations and int8 weights (see hybrid_operators)
    metadata: dict[str, bytes]  # named metadata buffers


def inspect_tflite(data: bytes | memoryview, name: str) -> TFLiteInfo:
    """Verify ``data`` (a whole .tflite file) once and read what the runtime needs from it."""
    v, model = read_model(data, name)
    check_model(v, model)
    return TFLiteInfo(_entries(v, model), hybrid_operators(v, model), _metadata(v, model))


def _metadata(v: Verifier, model: Obj) -> dict[str, bytes]:
    """Metadata entries (name, buffer index) resolved to their bytes; bounds were checked by check_model."""
    buffers, out = model.get(12, []), {}
    for md in model.get(16, []):
        key = md.get(4, b"").decode("utf-8", "replace")
        buf = buffers[md.get(6, 0)]
        if 4 in buf:
            start, count, _ = buf[4]
            data = bytes(v.b[start : start + count])
        elif buf.get(6, 0) > 1:
            data = bytes(v.b[buf[6] : buf[6] + buf.get(8, 0)])
        else:
            data = b""
        out.setdefault(key, data)
    return out


_INT8 = 9


def hybrid_operators(v: Verifier, model: Obj) -> tuple[str, ...]:
    """Operators that take float32 activations with int8 constant weights: "dynamic range" (hybrid)
    quantization, whose kernels quantize activations at run time. Not every interpreter has such a
    kernel for every operator (tflite-runtime 2.14 has none for TRANSPOSE_CONV), so the backend
    registry refuses these files by name before native code sees them."""
    opcodes, buffers = model.get(6, []), model.get(12, [])
    found: list[str] = []
    for sg in model.get(8, []):
        tensors = sg.get(4, [])
        for op in sg.get(10, []):
            inputs = [tensors[i] for i in ints(v, op.get(6)).tolist() if i >= 0]
            const = [constant_bytes(buffers[t.get(8, 0)]) > 0 for t in inputs]
            float_act = any(t.get(6, 0) == 0 and not c for t, c in zip(inputs, const))
            int8_weight = any(t.get(6, 0) == _INT8 and c for t, c in zip(inputs, const))
            if float_act and int8_weight:
                oc = opcodes[op.get(4, 0)]
                code = max(oc.get(4, 0), oc.get(10, 0))  # deprecated_builtin_code, builtin_code
                label = OP_NAMES.get(code, f"operator {code}")
                if label not in found:
                    found.append(label)
    return tuple(found)


def _spec(v: Verifier, t: Obj, index: int) -> TensorSpec:
    shape = tuple(ints(v, t.get(4)).tolist())
    sig = tuple(ints(v, t.get(18)).tolist()) or shape
    scale = zp = None
    q = t.get(12)
    if q is not None:
        s, z = floats(v, q.get(8)), ints(v, q.get(10))
        if s.size == 1:
            scale, zp = float(s[0]), int(z[0]) if z.size else 0
    dtype = TENSOR_TYPES[t.get(6, 0)][0] or f"type{t.get(6, 0)}"
    return TensorSpec(index, shape, sig, dtype, scale, zp)


def _entries(v: Verifier, model: Obj) -> list[Entry]:
    subgraphs = model[8]
    out = []
    sigs = model.get(18, [])
    if sigs:
        for sig in sigs:
            key = sig.get(8, b"").decode("utf-8", "replace")
            ins, outs = sig.get(4, []), sig.get(6, [])
            _count_io(v.name, f"signature {key!r}", len(ins), len(outs))
            k = sig.get(12, 0)
            out.append(_entry(v, key, k, subgraphs[k].get(4, []), [t.get(6, 0) for t in ins], outs[0].get(6, 0)))
    else:
        sg = subgraphs[0]
        ins, outs = ints(v, sg.get(6)).tolist(), ints(v, sg.get(8)).tolist()
        _count_io(v.name, "model", len(ins), len(outs))
        out.append(_entry(v, None, 0, sg.get(4, []), ins, outs[0]))
    return out


def _count_io(name: str, label: str, inputs: int, outputs: int) -> None:
    if inputs not in (1, 2) or outputs != 1:
        raise ModelFileError(
            f"{name}: {label} has {inputs} inputs and {outputs} outputs; an edgegan generator has one input "
            "(z) or two (z and a class label) and one output"
        )


def _entry(v: Verifier, key: str | None, subgraph: int, tensors: list, ins: list[int], o: int) -> Entry:
    """The entry of ``subgraph`` whose inputs are tensors ``ins`` (z, and a label in second place: the
    contract's position) and whose output is tensor ``o``."""
    specs = [_spec(v, tensors[i], i) for i in ins]
    return Entry(key, subgraph, specs[0], _spec(v, tensors[o], o), specs[1] if len(specs) > 1 else None)
