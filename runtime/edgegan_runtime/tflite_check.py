"""Verify a .tflite flatbuffer in pure Python before any native interpreter sees it.

A corrupted flatbuffer can make the TFLite interpreter read out of bounds and segfault, because the
Python interpreters build models without running the flatbuffers verifier. This module is that
verifier, driven by the table layouts frozen in ``_tflite_schema`` (the same checks as flatc's
generated ``Verify``: every offset, vtable, vector, string and sub-table inside the buffer and
aligned; strings NUL-terminated; nesting and table count bounded), followed by the semantic checks
the interpreter relies on without checking: tensor, buffer, opcode and subgraph indices in range,
constant data exactly as long as its tensor's shape says, quantization arrays consistent, strides
and dilations >= 1. Then it reads the generator's input/output contract from the verified tables.

Only ``struct`` and numpy: no flatbuffers package, no native code.
"""

from __future__ import annotations

import struct
from typing import NamedTuple
from dataclasses import dataclass

import numpy as np

from edgegan_runtime._tflite_schema import TABLES, UNIONS
from edgegan_runtime.errors import ModelFileError

IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
MAX_DEPTH = 64  # as flatbuffers::Verifier
MAX_TABLES = 1_000_000  # as flatbuffers::Verifier
MAX_TENSOR_BYTES = 1 << 31  # one activation or weight larger than 2 GiB is corruption, not a generator
MAX_RANK = 16

# TensorType -> (numpy dtype or None, bits per element); None bits: variable size (string, resource)
TENSOR_TYPES: dict[int, tuple[str | None, int | None]] = {
    0: ("float32", 32), 1: ("float16", 16), 2: ("int32", 32), 3: ("uint8", 8), 4: ("int64", 64),
    5: (None, None), 6: ("bool", 8), 7: ("int16", 16), 8: ("complex64", 64), 9: ("int8", 8),
    10: ("float64", 64), 11: ("complex128", 128), 12: ("uint64", 64), 13: (None, None), 14: (None, None),
    15: ("uint32", 32), 16: ("uint16", 16), 17: (None, 4), 18: (None, 16), 19: (None, 2), 20: (None, 4),
    21: (None, 8), 22: (None, 8),
}
# Zero points a kernel can use without overflowing: the integer range of the quantized type.
_ZERO_POINT_RANGE = {
    3: (0, 255), 9: (-128, 127), 7: (-32768, 32767), 16: (0, 65535), 17: (-8, 7), 20: (0, 15), 19: (-2, 1),
}

# BuiltinOperator codes whose options carry strides/dilations that kernels divide by.
_STRIDED_OPTIONS = {  # options table -> vtable offsets that must hold a value >= 1
    "Conv2DOptions": (6, 8, 12, 14),
    "DepthwiseConv2DOptions": (6, 8, 14, 16),
    "TransposeConvOptions": (6, 8),
    "Pool2DOptions": (6, 8, 10, 12),
}
_SCALAR_DEFAULTS = {  # fields whose schema default is 1 (absent -> 1)
    ("Conv2DOptions", 12): 1, ("Conv2DOptions", 14): 1,
    ("DepthwiseConv2DOptions", 14): 1, ("DepthwiseConv2DOptions", 16): 1,
}


class Obj(dict):
    """A verified table: vtable offset -> value. Scalars are unsigned ints; vectors of scalars are
    (position, count, element bytes); sub-tables are Obj; vectors of tables are lists of Obj;
    strings are bytes; a union is Obj (its type is the scalar in the slot before)."""

    __slots__ = ("kind",)


class _Verifier:
    def __init__(self, data: bytes | memoryview, name: str):
        self.b = data
        self.n = len(data)
        self.name = name
        self.tables = 0

    def fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: corrupt TFLite file ({what})")

    def _need(self, pos: int, size: int, align: int, what: str) -> None:
        if pos < 0 or pos + size > self.n:
            raise self.fail(f"{what} at byte {pos} runs past the end of the {self.n}-byte file")
        if align > 1 and pos % align:
            raise self.fail(f"{what} at byte {pos} is misaligned")

    def u(self, pos: int, size: int, what: str) -> int:
        self._need(pos, size, size, what)
        return int.from_bytes(self.b[pos : pos + size], "little")

    def offset(self, pos: int, what: str) -> int:
        """Follow the uoffset stored at ``pos``; the target must lie inside the buffer."""
        rel = self.u(pos, 4, what)
        if rel == 0 or pos + rel >= self.n:
            raise self.fail(f"{what} at byte {pos} points outside the file")
        return pos + rel

    def vector(self, pos: int, elem: int, what: str) -> tuple[int, int]:
        count = self.u(pos, 4, f"{what} length")
        if count * elem > self.n - pos - 4:
            raise self.fail(f"{what} at byte {pos} claims {count} elements, more than the file holds")
        return pos + 4, count

    def string(self, pos: int, what: str) -> bytes:
        start, count = self.vector(pos, 1, what)
        self._need(start + count, 1, 1, f"{what} terminator")
        if self.b[start + count] != 0:
            raise self.fail(f"{what} at byte {pos} is not NUL-terminated")
        return bytes(self.b[start : start + count])

    def table(self, pos: int, tname: str, depth: int) -> Obj:
        if depth > MAX_DEPTH:
            raise self.fail("tables nested too deeply")
        self.tables += 1
        if self.tables > MAX_TABLES:
            raise self.fail("too many tables")
        self._need(pos, 4, 4, f"{tname} table")
        vt = pos - struct.unpack_from("<i", self.b, pos)[0]
        self._need(vt, 4, 2, f"{tname} vtable")
        vsize, tsize = self.u(vt, 2, "vtable size"), self.u(vt + 2, 2, "table size")
        if vsize < 4 or vsize % 2:
            raise self.fail(f"{tname} vtable at byte {vt} has a bad size {vsize}")
        self._need(vt, vsize, 2, f"{tname} vtable")
        self._need(pos, tsize, 1, f"{tname} table")
        obj = Obj()
        obj.kind = tname
        for slot, kind, arg in TABLES[tname]:
            if slot >= vsize:
                continue
            off = self.u(vt + slot, 2, "field offset")
            if off == 0:
                continue
            if off >= tsize:
                raise self.fail(f"{tname} field outside its table at byte {pos}")
            p = pos + off
            what = f"{tname} field {slot}"
            if kind == "s":
                obj[slot] = self.u(p, arg, what)
            elif kind == "str":
                obj[slot] = self.string(self.offset(p, what), what)
            elif kind == "t":
                obj[slot] = self.table(self.offset(p, what), arg, depth + 1)
            elif kind == "vs":
                obj[slot] = (*self.vector(self.offset(p, what), arg, what), arg)
            elif kind in ("vt", "vstr"):
                start, count = self.vector(self.offset(p, what), 4, what)
                items = []
                for i in range(count):
                    target = self.offset(start + 4 * i, what)
                    items.append(self.table(target, arg, depth + 1) if kind == "vt" else self.string(target, what))
                obj[slot] = items
            elif kind == "u":
                utype = obj.get(slot - 2, 0)
                member = UNIONS[arg].get(utype)
                if member is not None:  # an unknown member is skipped, as flatc's verifier does
                    obj[slot] = self.table(self.offset(p, what), member, depth + 1)
        return obj


def ints(v: _Verifier, field: tuple[int, int, int] | None, signed: bool = True) -> np.ndarray:
    """A verified vector of scalars as an int64 array (empty if absent)."""
    if field is None:
        return np.zeros(0, dtype=np.int64)
    start, count, size = field
    dt = np.dtype(f"<{'i' if signed else 'u'}{size}")
    return np.frombuffer(v.b, dtype=dt, count=count, offset=start).astype(np.int64)


def floats(v: _Verifier, field: tuple[int, int, int] | None) -> np.ndarray:
    if field is None:
        return np.zeros(0, dtype=np.float32)
    start, count, _ = field
    return np.frombuffer(v.b, dtype="<f4", count=count, offset=start).copy()


def _signed32(x: int) -> int:
    return x - (1 << 32) if x >= 1 << 31 else x


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
    """One way to run the model: a signature (or the primary subgraph) with one input and one output."""

    key: str | None  # signature key; None for a model without signatures
    subgraph: int
    input: TensorSpec
    output: TensorSpec


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
    v = _Verifier(data, name)
    if v.n < 16:
        raise v.fail(f"only {v.n} bytes")
    if bytes(data[4:8]) != IDENTIFIER:
        raise ModelFileError(f"{name}: not a TFLite file (no 'TFL3' identifier at bytes 4..8)")
    model = v.table(v.offset(0, "root offset"), "Model", 0)
    _check_model(v, model)
    return TFLiteInfo(_entries(v, model), hybrid_operators(v, model), _metadata(v, model))


def _metadata(v: _Verifier, model: Obj) -> dict[str, bytes]:
    """Metadata entries (name, buffer index) resolved to their bytes; bounds were checked by _check_model."""
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


# Builtin operator codes named in messages (the rest by number).
_OP_NAMES = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED", 67: "TRANSPOSE_CONV", 102: "BATCH_MATMUL"}
_INT8 = 9


def hybrid_operators(v: _Verifier, model: Obj) -> tuple[str, ...]:
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
            const = [_constant_bytes(buffers[t.get(8, 0)]) > 0 for t in inputs]
            float_act = any(t.get(6, 0) == 0 and not c for t, c in zip(inputs, const))
            int8_weight = any(t.get(6, 0) == _INT8 and c for t, c in zip(inputs, const))
            if float_act and int8_weight:
                oc = opcodes[op.get(4, 0)]
                code = max(oc.get(4, 0), oc.get(10, 0))  # deprecated_builtin_code, builtin_code
                label = _OP_NAMES.get(code, f"operator {code}")
                if label not in found:
                    found.append(label)
    return tuple(found)


def _check_model(v: _Verifier, model: Obj) -> None:
    if model.get(4, 0) != SCHEMA_VERSION:
        raise v.fail(f"schema version {model.get(4, 0)}, expected {SCHEMA_VERSION}")
    if model.get(20) or model.get(22):
        raise ModelFileError(f"{v.name}: TFLite files with external buffers are not supported")
    opcodes, subgraphs, buffers = model.get(6, []), model.get(8, []), model.get(12, [])
    if not subgraphs:
        raise v.fail("no subgraphs")
    for b in buffers:
        off, size = b.get(6, 0), b.get(8, 0)
        if off > 1 and (off + size > v.n):
            raise v.fail(f"buffer data at byte {off} (+{size}) lies outside the file")
    nbuf = len(buffers)
    for i in ints(v, model.get(14)):
        if not 0 <= i < nbuf:
            raise v.fail(f"metadata buffer {i} out of range")
    for md in model.get(16, []):
        if md.get(6, 0) >= nbuf:
            raise v.fail("metadata names a buffer out of range")
    for k, sg in enumerate(subgraphs):
        _check_subgraph(v, sg, k, len(opcodes), buffers)
    for sig in model.get(18, []):
        k = sig.get(12, 0)
        if k >= len(subgraphs):
            raise v.fail(f"signature names subgraph {k} of {len(subgraphs)}")
        nt = len(subgraphs[k].get(4, []))
        for tm in sig.get(4, []) + sig.get(6, []):
            if tm.get(6, 0) >= nt:
                raise v.fail(f"signature names tensor {tm.get(6, 0)} of {nt}")


def _check_subgraph(v: _Verifier, sg: Obj, k: int, nopcodes: int, buffers: list[Obj]) -> None:
    tensors = sg.get(4, [])
    nt = len(tensors)
    for t in tensors:
        _check_tensor(v, t, k, buffers)
    for slot in (6, 8):
        idx = ints(v, sg.get(slot))
        if idx.size and (idx.min() < 0 or idx.max() >= nt):
            raise v.fail(f"subgraph {k} input/output index out of range")
    for op in sg.get(10, []):
        _check_operator(v, op, k, nopcodes, nt)
    _check_dataflow(v, sg, k, buffers)


def _check_dataflow(v: _Verifier, sg: Obj, k: int, buffers: list[Obj]) -> None:
    """Operators run in file order: each tensor is written once, by one operator, and read only after
    it is written (or is an input, a constant or a variable). A graph that breaks this (two writers,
    a read of nothing) is not something any converter writes, and it crashes the XNNPACK partitioner."""
    tensors = sg.get(4, [])
    ready = set(ints(v, sg.get(6)).tolist())
    ready.update(i for i, t in enumerate(tensors) if t.get(14) or _constant_bytes(buffers[t.get(8, 0)]))
    written: set[int] = set()
    for n, op in enumerate(sg.get(10, [])):
        for i in ints(v, op.get(6)).tolist():
            if i >= 0 and i not in ready:
                raise v.fail(f"subgraph {k}: operator {n} reads tensor {i} before anything writes it")
        for o in ints(v, op.get(8)).tolist():
            if o >= 0 and (o in ready or o in written):
                raise v.fail(f"subgraph {k}: operator {n} writes tensor {o}, which is already written")
            written.add(o)
            ready.add(o)
    for o in ints(v, sg.get(8)).tolist():
        if o not in ready:
            raise v.fail(f"subgraph {k}: output tensor {o} is never written")


def _constant_bytes(buf: Obj) -> int:
    return buf[4][1] if 4 in buf else (buf.get(8, 0) if buf.get(6, 0) > 1 else 0)


def _check_operator(v: _Verifier, op: Obj, k: int, nopcodes: int, nt: int) -> None:
    if op.get(4, 0) >= nopcodes:
        raise v.fail(f"subgraph {k}: operator code {op.get(4, 0)} of {nopcodes}")
    for slot, low in ((6, -1), (8, -1), (20, 0)):
        idx = ints(v, op.get(slot))
        if idx.size and (idx.min() < low or idx.max() >= nt):
            raise v.fail(f"subgraph {k}: operator tensor index out of range")
    if op.get(22, 0) or op.get(24, 0):
        off, size = op.get(22, 0), op.get(24, 0)
        if off + size > v.n:
            raise v.fail("large custom options lie outside the file")
    opts = op.get(12)
    if opts is not None and opts.kind in _STRIDED_OPTIONS:
        for slot in _STRIDED_OPTIONS[opts.kind]:
            val = _signed32(opts.get(slot, _SCALAR_DEFAULTS.get((opts.kind, slot), 0)))
            if val < 1:
                raise v.fail(f"subgraph {k}: {opts.kind} has a stride, filter or dilation of {val}")


def _check_tensor(v: _Verifier, t: Obj, k: int, buffers: list[Obj]) -> None:
    ttype = t.get(6, 0)
    if ttype not in TENSOR_TYPES:
        raise v.fail(f"subgraph {k}: unknown tensor type {ttype}")
    shape = ints(v, t.get(4))
    sig = ints(v, t.get(18))
    if shape.size > MAX_RANK or sig.size > MAX_RANK:
        raise v.fail(f"subgraph {k}: tensor of rank {max(shape.size, sig.size)}")
    if (shape < 0).any() or (sig < -1).any():
        raise v.fail(f"subgraph {k}: negative tensor dimension")
    bits = TENSOR_TYPES[ttype][1]
    count = 1
    for d in shape.tolist():
        count *= d
    if bits is not None and count * bits > 8 * MAX_TENSOR_BYTES:
        raise v.fail(f"subgraph {k}: tensor of shape {shape.tolist()} is larger than 2 GiB")
    if t.get(24, 0):
        raise ModelFileError(f"{v.name}: TFLite files with external buffers are not supported")
    bidx = t.get(8, 0)
    if bidx >= len(buffers):
        raise v.fail(f"subgraph {k}: tensor names buffer {bidx} of {len(buffers)}")
    nbytes = _constant_bytes(buffers[bidx])
    if nbytes and bits is not None and 16 not in t:  # dense constant of a fixed-size type
        expect = (count * bits + 7) // 8
        if nbytes != expect:
            raise v.fail(f"subgraph {k}: constant of shape {shape.tolist()} holds {nbytes} bytes, expected {expect}")
    q = t.get(12)
    if q is not None:
        scale, zp = q.get(8), q.get(10)
        ns, nz = (scale[1] if scale else 0), (zp[1] if zp else 0)
        if ns and nz and ns != nz:
            raise v.fail(f"subgraph {k}: {ns} quantization scales but {nz} zero points")
        s = floats(v, scale)
        if s.size and not (np.isfinite(s).all() and (s > 0).all()):
            raise v.fail(f"subgraph {k}: quantization scale not a finite positive number")
        limits = _ZERO_POINT_RANGE.get(ttype)
        z = ints(v, zp)
        if limits and z.size and (z.min() < limits[0] or z.max() > limits[1]):
            raise v.fail(f"subgraph {k}: zero point outside the range of a {TENSOR_TYPES[ttype][0] or ttype} tensor")
        if ns > 1:
            qdim = _signed32(q.get(16, 0))
            if not 0 <= qdim < shape.size or shape[qdim] != ns:
                raise v.fail(f"subgraph {k}: per-channel quantization does not match the tensor's shape")


def _spec(v: _Verifier, t: Obj, index: int) -> TensorSpec:
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


def _entries(v: _Verifier, model: Obj) -> list[Entry]:
    subgraphs = model[8]
    out = []
    sigs = model.get(18, [])
    if sigs:
        for sig in sigs:
            key = sig.get(8, b"").decode("utf-8", "replace")
            ins, outs = sig.get(4, []), sig.get(6, [])
            if len(ins) != 1 or len(outs) != 1:
                raise ModelFileError(
                    f"{v.name}: signature {key!r} has {len(ins)} inputs and {len(outs)} outputs; "
                    "an edgegan generator has one of each"
                )
            k = sig.get(12, 0)
            tensors = subgraphs[k].get(4, [])
            i, o = ins[0].get(6, 0), outs[0].get(6, 0)
            out.append(Entry(key, k, _spec(v, tensors[i], i), _spec(v, tensors[o], o)))
    else:
        sg = subgraphs[0]
        tensors = sg.get(4, [])
        ins, outs = ints(v, sg.get(6)).tolist(), ints(v, sg.get(8)).tolist()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelFileError(
                f"{v.name}: model has {len(ins)} inputs and {len(outs)} outputs; an edgegan generator has one of each"
            )
        out.append(Entry(None, 0, _spec(v, tensors[ins[0]], ins[0]), _spec(v, tensors[outs[0]], outs[0])))
    return out
