"""The semantic layer of TFLite verification: what the interpreter relies on without checking.

Runs over the Model that ``tflite_flatbuffer`` has already verified as a flatbuffer. ``check_model``
requires schema version 3 and no external buffers, then, subgraph by subgraph: tensor, buffer,
opcode and subgraph indices in range; every tensor's type known, its rank and size bounded, its
constant data exactly as long as its shape says; quantization arrays consistent (as many scales as
zero points, scales finite and within [MIN_SCALE, MAX_SCALE], zero points in the type's range,
per-channel arrays matching their axis); strides and dilations in [1, MAX_WINDOW]; a dataflow in
file order (every tensor written once, read only after it is written); every operator's shapes per
``tflite_op_shapes``. Across subgraphs: no loops, and subgraph calls acyclic and bounded
(``_check_control_flow``, issue 25). Last, the signatures' subgraph and tensor indices.
"""

from __future__ import annotations

import numpy as np

from edgegan_runtime.errors import ModelFileError
from edgegan_runtime.tflite_flatbuffer import Obj, Verifier, floats, ints, signed32
from edgegan_runtime.tflite_op_shapes import MAX_WINDOW, check_op_shapes

SCHEMA_VERSION = 3
MAX_TENSOR_BYTES = 1 << 31  # one activation or weight larger than 2 GiB is corruption, not a generator
MAX_RANK = 16
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


def check_model(v: Verifier, model: Obj) -> None:
    """Everything above, over a verified Model; raises ModelFileError at the first problem."""
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


def constant_bytes(buf: Obj) -> int:
    """How many bytes of constant data a Buffer holds (inline or at an offset; 0: none)."""
    return buf[4][1] if 4 in buf else (buf.get(8, 0) if buf.get(6, 0) > 1 else 0)


# ---------------------------------------------------------------- one subgraph

def _check_subgraph(v: Verifier, sg: Obj, k: int, nopcodes: int, buffers: list[Obj], opcodes: list[Obj]) -> None:
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
        check_op_shapes(v, op, n, k, tensors, buffers, opcodes)


def _check_dataflow(v: Verifier, sg: Obj, k: int, buffers: list[Obj]) -> None:
    """Operators run in file order: each tensor is written once, by one operator, and read only after
    it is written (or is an input, a constant or a variable). A graph that breaks this (two writers,
    a read of nothing) is not something any converter writes, and it crashes the XNNPACK partitioner."""
    tensors = sg.get(4, [])
    ready = set(ints(v, sg.get(6)).tolist())
    ready.update(i for i, t in enumerate(tensors) if t.get(14) or constant_bytes(buffers[t.get(8, 0)]))
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


def _check_operator(v: Verifier, op: Obj, k: int, nopcodes: int, nt: int) -> None:
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
            val = signed32(opts.get(slot, _SCALAR_DEFAULTS.get((opts.kind, slot), 0)))
            if not 1 <= val <= MAX_WINDOW:
                raise v.fail(f"subgraph {k}: {opts.kind} has a stride, filter or dilation of {val}")


def _check_tensor(v: Verifier, t: Obj, k: int, buffers: list[Obj]) -> None:
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
    nbytes = constant_bytes(buffers[bidx])
    if nbytes and bits is not None and 16 not in t:  # dense constant of a fixed-size type
        expect = (count * bits + 7) // 8
        if nbytes != expect:
            raise v.fail(f"subgraph {k}: constant of shape {shape.tolist()} holds {nbytes} bytes, expected {expect}")
    q = t.get(12)
    if q is not None:
        _check_quantization(v, q, k, ttype, shape)


def _check_quantization(v: Verifier, q: Obj, k: int, ttype: int, shape: np.ndarray) -> None:
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
        qdim = signed32(q.get(16, 0))
        if not 0 <= qdim < shape.size or shape[qdim] != ns:
            raise v.fail(f"subgraph {k}: per-channel quantization does not match the tensor's shape")


# ---------------------------------------------------------------- across subgraphs
#
# Operators that run other subgraphs (issue 25). edgegan's exporter writes none of them. A loop runs as
# long as its data says (WHILE with 2**31 iterations hangs the caller): refused. The rest must name
# subgraphs in range, form no cycle (IF, WHILE or CALL_ONCE recursing into subgraph 0 overflows the
# interpreter's native stack: SIGSEGV) and run at most MAX_SUBGRAPH_RUNS subgraphs per call of the model.
_LOOPS = {119: "WHILE", 200: "STABLEHLO_WHILE"}
_CALLS = {31: ("CALL", "CallOptions", (4,)), 118: ("IF", "IfOptions", (4, 6)), 129: ("CALL_ONCE", "CallOnceOptions", (4,))}
_SUBGRAPH_OPS = {173: "STABLEHLO_CUSTOM_CALL", 174: "STABLEHLO_REDUCE", 190: "STABLEHLO_SCATTER",
                 198: "STABLEHLO_REDUCE_WINDOW", 199: "STABLEHLO_SORT", 206: "STABLEHLO_COMPOSITE", 209: "STABLEHLO_CASE"}
MAX_SUBGRAPH_RUNS = 1000


def _check_control_flow(v: Verifier, subgraphs: list[Obj], opcodes: list[Obj]) -> None:
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
                    callee = signed32(opts.get(slot, 0))
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
