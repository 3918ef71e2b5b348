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
MAX_WINDOW = 4096  # strides, dilations and pool filters above this are corruption
# Quantization scales outside this range overflow float32 once multiplied by a quantized range (an
# output scale of 3e38 made inf images, issue 14) or underflow to zero in the kernels' multipliers.
MIN_SCALE, MAX_SCALE = 1e-30, 1e30

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
        _check_subgraph(v, sg, k, len(opcodes), buffers, opcodes)
    _check_control_flow(v, subgraphs, opcodes)
    for sig in model.get(18, []):
        k = sig.get(12, 0)
        if k >= len(subgraphs):
            raise v.fail(f"signature names subgraph {k} of {len(subgraphs)}")
        nt = len(subgraphs[k].get(4, []))
        for tm in sig.get(4, []) + sig.get(6, []):
            if tm.get(6, 0) >= nt:
                raise v.fail(f"signature names tensor {tm.get(6, 0)} of {nt}")


# Operators that run other subgraphs (issue 25). edgegan's exporter writes none of them. A loop runs as
# long as its data says (WHILE with 2**31 iterations hangs the caller): refused. The rest must name
# subgraphs in range, form no cycle (IF, WHILE or CALL_ONCE recursing into subgraph 0 overflows the
# interpreter's native stack: SIGSEGV) and run at most MAX_SUBGRAPH_RUNS subgraphs per call of the model.
_LOOPS = {119: "WHILE", 200: "STABLEHLO_WHILE"}
_CALLS = {31: ("CALL", "CallOptions", (4,)), 118: ("IF", "IfOptions", (4, 6)), 129: ("CALL_ONCE", "CallOnceOptions", (4,))}
_SUBGRAPH_OPS = {173: "STABLEHLO_CUSTOM_CALL", 174: "STABLEHLO_REDUCE", 190: "STABLEHLO_SCATTER",
                 198: "STABLEHLO_REDUCE_WINDOW", 199: "STABLEHLO_SORT", 206: "STABLEHLO_COMPOSITE", 209: "STABLEHLO_CASE"}
MAX_SUBGRAPH_RUNS = 1000


def _check_control_flow(v: _Verifier, subgraphs: list[Obj], opcodes: list[Obj]) -> None:
    n = len(subgraphs)
    calls: list[list[int]] = [[] for _ in range(n)]
    for k, sg in enumerate(subgraphs):
        for j, op in enumerate(sg.get(10, [])):
            oc = opcodes[op.get(4, 0)]
            code = max(oc.get(4, 0), oc.get(10, 0))
            if code in _LOOPS:
                raise v.fail(f"subgraph {k}: operator {j} is a {_LOOPS[code]} loop, whose trip count is data; edgegan "
                             "files never contain loops")
            if code in _SUBGRAPH_OPS:
                raise v.fail(f"subgraph {k}: operator {j} ({_SUBGRAPH_OPS[code]}) runs other subgraphs; edgegan files "
                             "never contain it")
            if code in _CALLS:
                name, kind, slots = _CALLS[code]
                opts = op.get(12)
                if opts is None or opts.kind != kind:
                    raise v.fail(f"subgraph {k}: operator {j} ({name}) without its {kind}")
                for slot in slots:
                    callee = _signed32(opts.get(slot, 0))
                    if not 0 <= callee < n:
                        raise v.fail(f"subgraph {k}: operator {j} ({name}) calls subgraph {callee} of {n}")
                    calls[k].append(callee)
    if not any(calls):
        return
    # Kahn's algorithm over "k calls c": whatever is never freed lies on a cycle.
    callers = [0] * n
    for cs in calls:
        for c in cs:
            callers[c] += 1
    order, free = [], [k for k in range(n) if callers[k] == 0]
    while free:
        k = free.pop()
        order.append(k)
        for c in calls[k]:
            callers[c] -= 1
            if callers[c] == 0:
                free.append(c)
    if len(order) < n:
        cycle = sorted(k for k in range(n) if callers[k] > 0)
        raise v.fail(f"subgraph calls form a cycle (unbounded recursion) through subgraphs {cycle[:8]}")
    runs = [1] * n  # subgraphs run by one call of k, an upper bound (IF counts both branches)
    for k in reversed(order):
        runs[k] = min(MAX_SUBGRAPH_RUNS + 1, 1 + sum(runs[c] for c in calls[k]))
        if runs[k] > MAX_SUBGRAPH_RUNS:
            raise v.fail(f"subgraph {k} runs more than {MAX_SUBGRAPH_RUNS} subgraphs per call")


def _check_subgraph(v: _Verifier, sg: Obj, k: int, nopcodes: int, buffers: list[Obj], opcodes: list[Obj]) -> None:
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
    for n, op in enumerate(sg.get(10, [])):
        _check_op_shapes(v, op, n, k, tensors, buffers, opcodes)


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
            if not 1 <= val <= MAX_WINDOW:
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
        if s.size and (s.min() < MIN_SCALE or s.max() > MAX_SCALE):
            raise v.fail(f"subgraph {k}: quantization scale {float(s.min() if s.min() < MIN_SCALE else s.max()):g} "
                         f"outside [{MIN_SCALE:g}, {MAX_SCALE:g}]")
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


# ---------------------------------------------------------------- shapes against what each operator implies
#
# The interpreters recompute most activation shapes in their Prepare step, but not all: XNNPACK
# takes static tensors (a DEQUANTIZE of fp16 weights) at the size the file declares, so a file whose
# DEQUANTIZE output is larger than its input made LiteRT read past a buffer and die of SIGSEGV
# (issue 14). Every operator an exported generator uses is checked here; others are left to the
# interpreter's own checks.

# BuiltinOperator codes whose output has its (first) input's shape.
_UNARY = {6: "DEQUANTIZE", 8: "FLOOR", 14: "LOGISTIC", 19: "RELU", 20: "RELU_N1_TO_1", 21: "RELU6", 28: "TANH",
          47: "EXP", 53: "CAST", 59: "NEG", 73: "LOG", 75: "SQRT", 76: "RSQRT", 92: "SQUARE", 98: "LEAKY_RELU",
          101: "ABS", 111: "ELU", 114: "QUANTIZE", 117: "HARD_SWISH", 150: "GELU", 25: "SOFTMAX"}
_BINARY = {0: "ADD", 18: "MUL", 41: "SUB", 42: "DIV", 55: "MAXIMUM", 57: "MINIMUM", 99: "SQUARED_DIFFERENCE",
           54: "PRELU"}
_CONV, _DEPTHWISE, _FC, _RESHAPE, _TRANSPOSE_CONV, _CONCAT, _PAD, _TRANSPOSE = 3, 4, 9, 22, 67, 2, 34, 39
_RESIZE = {23: "RESIZE_BILINEAR", 97: "RESIZE_NEAREST_NEIGHBOR"}
_POOL = {1: "AVERAGE_POOL_2D", 17: "MAX_POOL_2D", 12: "L2_POOL_2D"}
_SHAPED = {_RESHAPE: "RESHAPE", _CONCAT: "CONCATENATION", _PAD: "PAD", _TRANSPOSE: "TRANSPOSE"}


def _const(v: _Verifier, t: Obj, buffers: list[Obj]) -> np.ndarray | None:
    """The int32 constant held by tensor ``t`` (already checked against its shape), or None."""
    if t.get(6, 0) != 2:  # INT32
        return None
    buf = buffers[t.get(8, 0)]
    if 4 in buf:
        start, count, _ = buf[4]
    elif buf.get(6, 0) > 1:
        start, count = buf[6], buf.get(8, 0)
    else:
        return None
    if count % 4:
        return None
    return np.frombuffer(v.b, dtype="<i4", count=count // 4, offset=start).astype(np.int64)


def _n(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _conv_out(size: int, k: int, stride: int, dilation: int, same: bool) -> int:
    eff = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if same else (size - eff + stride) // stride


def _check_op_shapes(v: _Verifier, op: Obj, n: int, k: int, tensors: list[Obj], buffers: list[Obj],
                     opcodes: list[Obj]) -> None:
    oc = opcodes[op.get(4, 0)]
    code = max(oc.get(4, 0), oc.get(10, 0))
    ins = [i for i in ints(v, op.get(6)).tolist()]
    outs = [o for o in ints(v, op.get(8)).tolist() if o >= 0]
    opts = op.get(12)
    opts = opts if opts is not None else Obj()
    shape = [tuple(ints(v, tensors[i].get(4)).tolist()) if i >= 0 else None for i in ins]
    oshape = [tuple(ints(v, tensors[o].get(4)).tolist()) for o in outs]
    name = (_UNARY.get(code) or _BINARY.get(code) or _OP_NAMES.get(code) or _RESIZE.get(code) or _POOL.get(code)
            or _SHAPED.get(code))
    where = f"subgraph {k}: operator {n} ({name or code})"

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise v.fail(f"{where}: {what}")

    def arity(n_in: int, n_out: int = 1) -> None:
        need(len(ins) >= n_in and all(i >= 0 for i in ins[:n_in]) and len(outs) >= n_out,
             f"{len(ins)} inputs and {len(outs)} outputs")

    if code in _UNARY:
        arity(1)
        need(oshape[0] == shape[0], f"output shape {list(oshape[0])} is not its input's {list(shape[0])}")
    elif code in _BINARY:
        arity(2)
        a, b = shape[0], shape[1]
        r = max(len(a), len(b))
        a2, b2 = (1,) * (r - len(a)) + a, (1,) * (r - len(b)) + b
        need(all(x == y or 1 in (x, y) for x, y in zip(a2, b2)), f"inputs {list(a)} and {list(b)} do not broadcast")
        want = tuple(max(x, y) if 0 not in (x, y) else 0 for x, y in zip(a2, b2))
        need(oshape[0] == want, f"output shape {list(oshape[0])}, its inputs make {list(want)}")
    elif code in (_CONV, _DEPTHWISE):
        arity(2)
        x, w, o = shape[0], shape[1], oshape[0]
        need(len(x) == 4 and len(w) == 4 and len(o) == 4, f"shapes {list(x)}, {list(w)} -> {list(o)}; expected rank 4")
        need(min(w) >= 1, f"a filter of shape {list(w)}")
        same = opts.get(4, 0) == 0
        sw, sh = _signed32(opts.get(6, 0)), _signed32(opts.get(8, 0))
        if code == _CONV:
            dw, dh = _signed32(opts.get(12, 1)), _signed32(opts.get(14, 1))
            need(x[3] % w[3] == 0, f"input channels {x[3]} are not a multiple of the filter's {w[3]}")
            need(w[0] % (x[3] // w[3] or 1) == 0, f"{w[0]} filters for {x[3] // w[3]} groups")
            out_c = w[0]
        else:
            dw, dh = _signed32(opts.get(14, 1)), _signed32(opts.get(16, 1))
            need(w[0] == 1, f"a depthwise filter of shape {list(w)}")
            need(x[3] >= 1 and w[3] % x[3] == 0, f"depthwise filter channels {w[3]} for {x[3]} input channels")
            out_c = w[3]
        if min(sw, sh, dw, dh) >= 1:
            want = (x[0], _conv_out(x[1], w[1], sh, dh, same), _conv_out(x[2], w[2], sw, dw, same), out_c)
            need(o == want, f"output shape {list(o)}, its input {list(x)} and filter {list(w)} make {list(want)}")
        if len(ins) > 2 and ins[2] >= 0:
            need(_n(shape[2]) == out_c, f"a bias of shape {list(shape[2])} for {out_c} output channels")
    elif code == _TRANSPOSE_CONV:
        arity(3)
        spec, w, x, o = _const(v, tensors[ins[0]], buffers), shape[1], shape[2], oshape[0]
        need(len(x) == 4 and len(w) == 4 and len(o) == 4, f"shapes {list(x)}, {list(w)} -> {list(o)}; expected rank 4")
        need(min(w) >= 1, f"a filter of shape {list(w)}")
        need(x[3] == w[3], f"input channels {x[3]} but the filter takes {w[3]}")
        need(o[3] == w[0] and o[0] == x[0], f"output shape {list(o)} for input {list(x)} and filter {list(w)}")
        if spec is not None:
            need(tuple(spec.tolist()) == o, f"output_shape {spec.tolist()} but an output tensor of shape {list(o)}")
        same = opts.get(4, 0) == 0
        sw, sh = _signed32(opts.get(6, 0)), _signed32(opts.get(8, 0))
        if min(sw, sh) >= 1:  # the output, convolved back with the same filter, gives the input's size
            back = (_conv_out(o[1], w[1], sh, 1, same), _conv_out(o[2], w[2], sw, 1, same))
            need(back == (x[1], x[2]) and (same or (o[1] >= w[1] and o[2] >= w[2])),
                 f"output {list(o)} does not match input {list(x)} with filter {list(w)} and stride {sh}x{sw}")
        if len(ins) > 3 and ins[3] >= 0:
            need(_n(shape[3]) == w[0], f"a bias of shape {list(shape[3])} for {w[0]} output channels")
    elif code == _FC:
        arity(2)
        x, w, o = shape[0], shape[1], oshape[0]
        need(len(w) == 2 and min(w) >= 1, f"weights of shape {list(w)}")
        nx = int(np.prod(x, dtype=np.int64)) if x else 1
        need(nx % w[1] == 0, f"input {list(x)} does not split into rows of {w[1]}")
        no = int(np.prod(o, dtype=np.int64)) if o else 1
        need(len(o) >= 1 and o[-1] == w[0] and no == nx // w[1] * w[0],
             f"output shape {list(o)} for input {list(x)} and weights {list(w)}")
        if len(ins) > 2 and ins[2] >= 0:
            need(_n(shape[2]) == w[0], f"a bias of shape {list(shape[2])} for {w[0]} units")
    elif code == _RESHAPE:
        arity(1)
        nx, no = int(np.prod(shape[0], dtype=np.int64)), int(np.prod(oshape[0], dtype=np.int64))
        need(nx == no, f"reshapes {list(shape[0])} ({nx} elements) to {list(oshape[0])} ({no})")
    elif code == _CONCAT:
        need(len(ins) >= 1 and all(i >= 0 for i in ins) and len(outs) >= 1, "no inputs")
        o = oshape[0]
        axis = _signed32(opts.get(4, 0))
        axis = axis + len(o) if axis < 0 else axis
        need(0 <= axis < len(o), f"axis {axis} for rank {len(o)}")
        need(all(len(s_) == len(o) and all(a == b for j, (a, b) in enumerate(zip(s_, o)) if j != axis) for s_ in shape)
             and sum(s_[axis] for s_ in shape) == o[axis], f"inputs {[list(s_) for s_ in shape]} -> {list(o)}")
    elif code == _PAD:
        arity(2)
        pads = _const(v, tensors[ins[1]], buffers)
        x, o = shape[0], oshape[0]
        if pads is not None:
            need(pads.size == 2 * len(x) and (pads >= 0).all() and (pads <= MAX_WINDOW).all(),
                 f"paddings {pads.tolist()}")
            want = tuple(int(d + pads[2 * j] + pads[2 * j + 1]) for j, d in enumerate(x))
            need(o == want, f"output shape {list(o)}, input {list(x)} padded makes {list(want)}")
    elif code == _TRANSPOSE:
        arity(2)
        perm = _const(v, tensors[ins[1]], buffers)
        x, o = shape[0], oshape[0]
        if perm is not None:
            need(sorted(perm.tolist()) == list(range(len(x))), f"permutation {perm.tolist()} for rank {len(x)}")
            need(o == tuple(x[j] for j in perm.tolist()), f"output shape {list(o)} is not {list(x)} permuted")
    elif code in _RESIZE:
        arity(2)
        size = _const(v, tensors[ins[1]], buffers)
        x, o = shape[0], oshape[0]
        need(len(x) == 4 and len(o) == 4 and o[0] == x[0] and o[3] == x[3], f"resizes {list(x)} to {list(o)}")
        if size is not None:
            need(size.tolist() == [o[1], o[2]], f"size {size.tolist()} but an output of shape {list(o)}")
    elif code in _POOL:
        arity(1)
        x, o = shape[0], oshape[0]
        need(len(x) == 4 and len(o) == 4 and o[0] == x[0] and o[3] == x[3], f"pools {list(x)} to {list(o)}")
        sw, sh, fw, fh = (_signed32(opts.get(j, 0)) for j in (6, 8, 10, 12))
        if min(sw, sh, fw, fh) >= 1:
            same = opts.get(4, 0) == 0
            want = (x[0], _conv_out(x[1], fh, sh, 1, same), _conv_out(x[2], fw, sw, 1, same), x[3])
            need(o == want, f"output shape {list(o)}, its input {list(x)} makes {list(want)}")
