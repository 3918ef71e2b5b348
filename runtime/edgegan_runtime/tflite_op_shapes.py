"""TFLite operator shapes: each operator's declared output shape against what its inputs imply.

The interpreters recompute most activation shapes in their Prepare step, but not all: XNNPACK
takes static tensors (a DEQUANTIZE of fp16 weights) at the size the file declares, so a file whose
DEQUANTIZE output is larger than its input made LiteRT read past a buffer and die of SIGSEGV
(issue 14). Every operator an exported generator uses is checked here; others are left to the
interpreter's own checks.

The table is ``OP_SHAPES``: BuiltinOperator code -> one small function per operator kind, called
with an ``OpShapes`` view of the operator (its tensors' declared shapes, its options, ``need`` to
refuse it). ``check_op_shapes`` looks the operator up and runs its rule. A new operator is one
function and one line of the table. Indices were checked before (``tflite_semantics``), so every
tensor an operator names exists.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgegan_runtime.tflite_flatbuffer import Obj, Verifier, ints, signed32

MAX_WINDOW = 4096  # strides, dilations, pool filters and paddings above this are corruption

# Builtin operator codes named in messages (also the operators with weights, see hybrid_operators).
OP_NAMES = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED", 67: "TRANSPOSE_CONV", 102: "BATCH_MATMUL"}
# BuiltinOperator codes whose output has its (first) input's shape.
_UNARY = {6: "DEQUANTIZE", 8: "FLOOR", 14: "LOGISTIC", 19: "RELU", 20: "RELU_N1_TO_1", 21: "RELU6", 28: "TANH",
          47: "EXP", 53: "CAST", 59: "NEG", 73: "LOG", 75: "SQRT", 76: "RSQRT", 92: "SQUARE", 98: "LEAKY_RELU",
          101: "ABS", 111: "ELU", 114: "QUANTIZE", 117: "HARD_SWISH", 150: "GELU", 25: "SOFTMAX"}
# BuiltinOperator codes whose output is its two inputs broadcast.
_BINARY = {0: "ADD", 18: "MUL", 41: "SUB", 42: "DIV", 55: "MAXIMUM", 57: "MINIMUM", 99: "SQUARED_DIFFERENCE",
           54: "PRELU"}
_CONV, _DEPTHWISE, _FC, _RESHAPE, _TRANSPOSE_CONV, _CONCAT, _PAD, _TRANSPOSE = 3, 4, 9, 22, 67, 2, 34, 39
_RESIZE = {23: "RESIZE_BILINEAR", 97: "RESIZE_NEAREST_NEIGHBOR"}
_POOL = {1: "AVERAGE_POOL_2D", 17: "MAX_POOL_2D", 12: "L2_POOL_2D"}
_SHAPED = {_RESHAPE: "RESHAPE", _CONCAT: "CONCATENATION", _PAD: "PAD", _TRANSPOSE: "TRANSPOSE"}
_NAMES = {**_UNARY, **_BINARY, **OP_NAMES, **_RESIZE, **_POOL, **_SHAPED}  # disjoint


def _const(v: Verifier, t: Obj, buffers: list[Obj]) -> np.ndarray | None:
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


class OpShapes:
    """Operator ``n`` of subgraph ``k`` as its shape rule sees it: input tensor indices ``ins`` (-1:
    optional input left out) and their declared shapes ``shape`` (None for -1), output shapes
    ``oshape``, builtin options ``opts`` (an empty Obj when absent)."""

    def __init__(self, v: Verifier, op: Obj, n: int, k: int, code: int, tensors: list[Obj], buffers: list[Obj]):
        self.v, self.tensors, self.buffers = v, tensors, buffers
        self.ins = ints(v, op.get(6)).tolist()
        self.outs = [o for o in ints(v, op.get(8)).tolist() if o >= 0]
        opts = op.get(12)
        self.opts = opts if opts is not None else Obj()
        self.shape = [tuple(ints(v, tensors[i].get(4)).tolist()) if i >= 0 else None for i in self.ins]
        self.oshape = [tuple(ints(v, tensors[o].get(4)).tolist()) for o in self.outs]
        self.where = f"subgraph {k}: operator {n} ({_NAMES.get(code) or code})"

    def need(self, cond: bool, what: str) -> None:
        if not cond:
            raise self.v.fail(f"{self.where}: {what}")

    def arity(self, n_in: int, n_out: int = 1) -> None:
        ins, outs = self.ins, self.outs
        self.need(len(ins) >= n_in and all(i >= 0 for i in ins[:n_in]) and len(outs) >= n_out,
                  f"{len(ins)} inputs and {len(outs)} outputs")

    def const(self, j: int) -> np.ndarray | None:
        """The int32 constant of input ``j`` (a shape, paddings, a permutation), or None."""
        return _const(self.v, self.tensors[self.ins[j]], self.buffers)

    def option(self, slot: int, default: int = 0) -> int:
        return signed32(self.opts.get(slot, default))


def _unary(op: OpShapes) -> None:
    op.arity(1)
    op.need(op.oshape[0] == op.shape[0], f"output shape {list(op.oshape[0])} is not its input's {list(op.shape[0])}")


def _binary(op: OpShapes) -> None:
    op.arity(2)
    a, b = op.shape[0], op.shape[1]
    r = max(len(a), len(b))
    a2, b2 = (1,) * (r - len(a)) + a, (1,) * (r - len(b)) + b
    op.need(all(x == y or 1 in (x, y) for x, y in zip(a2, b2)), f"inputs {list(a)} and {list(b)} do not broadcast")
    want = tuple(max(x, y) if 0 not in (x, y) else 0 for x, y in zip(a2, b2))
    op.need(op.oshape[0] == want, f"output shape {list(op.oshape[0])}, its inputs make {list(want)}")


def _conv_like(op: OpShapes, dw: int, dh: int, out_c: int) -> None:
    """What CONV_2D and DEPTHWISE_CONV_2D share once their filter is checked: the output size, the bias."""
    x, w, o = op.shape[0], op.shape[1], op.oshape[0]
    same = op.opts.get(4, 0) == 0
    sw, sh = op.option(6), op.option(8)
    if min(sw, sh, dw, dh) >= 1:
        want = (x[0], _conv_out(x[1], w[1], sh, dh, same), _conv_out(x[2], w[2], sw, dw, same), out_c)
        op.need(o == want, f"output shape {list(o)}, its input {list(x)} and filter {list(w)} make {list(want)}")
    if len(op.ins) > 2 and op.ins[2] >= 0:
        op.need(_n(op.shape[2]) == out_c, f"a bias of shape {list(op.shape[2])} for {out_c} output channels")


def _rank4_filter(op: OpShapes, x: tuple[int, ...], w: tuple[int, ...], o: tuple[int, ...]) -> None:
    op.need(len(x) == 4 and len(w) == 4 and len(o) == 4, f"shapes {list(x)}, {list(w)} -> {list(o)}; expected rank 4")
    op.need(min(w) >= 1, f"a filter of shape {list(w)}")


def _conv_2d(op: OpShapes) -> None:
    op.arity(2)
    x, w = op.shape[0], op.shape[1]
    _rank4_filter(op, x, w, op.oshape[0])
    op.need(x[3] % w[3] == 0, f"input channels {x[3]} are not a multiple of the filter's {w[3]}")
    op.need(w[0] % (x[3] // w[3] or 1) == 0, f"{w[0]} filters for {x[3] // w[3]} groups")
    _conv_like(op, op.option(12, 1), op.option(14, 1), w[0])


def _depthwise_conv_2d(op: OpShapes) -> None:
    op.arity(2)
    x, w = op.shape[0], op.shape[1]
    _rank4_filter(op, x, w, op.oshape[0])
    op.need(w[0] == 1, f"a depthwise filter of shape {list(w)}")
    op.need(x[3] >= 1 and w[3] % x[3] == 0, f"depthwise filter channels {w[3]} for {x[3]} input channels")
    _conv_like(op, op.option(14, 1), op.option(16, 1), w[3])


def _transpose_conv(op: OpShapes) -> None:
    op.arity(3)
    spec, w, x, o = op.const(0), op.shape[1], op.shape[2], op.oshape[0]
    _rank4_filter(op, x, w, o)
    op.need(x[3] == w[3], f"input channels {x[3]} but the filter takes {w[3]}")
    op.need(o[3] == w[0] and o[0] == x[0], f"output shape {list(o)} for input {list(x)} and filter {list(w)}")
    if spec is not None:
        op.need(tuple(spec.tolist()) == o, f"output_shape {spec.tolist()} but an output tensor of shape {list(o)}")
    same = op.opts.get(4, 0) == 0
    sw, sh = op.option(6), op.option(8)
    if min(sw, sh) >= 1:  # the output, convolved back with the same filter, gives the input's size
        back = (_conv_out(o[1], w[1], sh, 1, same), _conv_out(o[2], w[2], sw, 1, same))
        op.need(back == (x[1], x[2]) and (same or (o[1] >= w[1] and o[2] >= w[2])),
                f"output {list(o)} does not match input {list(x)} with filter {list(w)} and stride {sh}x{sw}")
    if len(op.ins) > 3 and op.ins[3] >= 0:
        op.need(_n(op.shape[3]) == w[0], f"a bias of shape {list(op.shape[3])} for {w[0]} output channels")


def _fully_connected(op: OpShapes) -> None:
    op.arity(2)
    x, w, o = op.shape[0], op.shape[1], op.oshape[0]
    op.need(len(w) == 2 and min(w) >= 1, f"weights of shape {list(w)}")
    nx = int(np.prod(x, dtype=np.int64)) if x else 1
    op.need(nx % w[1] == 0, f"input {list(x)} does not split into rows of {w[1]}")
    no = int(np.prod(o, dtype=np.int64)) if o else 1
    op.need(len(o) >= 1 and o[-1] == w[0] and no == nx // w[1] * w[0],
            f"output shape {list(o)} for input {list(x)} and weights {list(w)}")
    if len(op.ins) > 2 and op.ins[2] >= 0:
        op.need(_n(op.shape[2]) == w[0], f"a bias of shape {list(op.shape[2])} for {w[0]} units")


def _reshape(op: OpShapes) -> None:
    op.arity(1)
    nx, no = int(np.prod(op.shape[0], dtype=np.int64)), int(np.prod(op.oshape[0], dtype=np.int64))
    op.need(nx == no, f"reshapes {list(op.shape[0])} ({nx} elements) to {list(op.oshape[0])} ({no})")


def _concatenation(op: OpShapes) -> None:
    op.need(len(op.ins) >= 1 and all(i >= 0 for i in op.ins) and len(op.outs) >= 1, "no inputs")
    o, shapes = op.oshape[0], op.shape
    axis = op.option(4)
    axis = axis + len(o) if axis < 0 else axis
    op.need(0 <= axis < len(o), f"axis {axis} for rank {len(o)}")
    op.need(all(len(s_) == len(o) and all(a == b for j, (a, b) in enumerate(zip(s_, o)) if j != axis) for s_ in shapes)
            and sum(s_[axis] for s_ in shapes) == o[axis], f"inputs {[list(s_) for s_ in shapes]} -> {list(o)}")


def _pad(op: OpShapes) -> None:
    op.arity(2)
    pads = op.const(1)
    x, o = op.shape[0], op.oshape[0]
    if pads is not None:
        op.need(pads.size == 2 * len(x) and (pads >= 0).all() and (pads <= MAX_WINDOW).all(),
                f"paddings {pads.tolist()}")
        want = tuple(int(d + pads[2 * j] + pads[2 * j + 1]) for j, d in enumerate(x))
        op.need(o == want, f"output shape {list(o)}, input {list(x)} padded makes {list(want)}")


def _transpose(op: OpShapes) -> None:
    op.arity(2)
    perm = op.const(1)
    x, o = op.shape[0], op.oshape[0]
    if perm is not None:
        op.need(sorted(perm.tolist()) == list(range(len(x))), f"permutation {perm.tolist()} for rank {len(x)}")
        op.need(o == tuple(x[j] for j in perm.tolist()), f"output shape {list(o)} is not {list(x)} permuted")


def _resize(op: OpShapes) -> None:
    op.arity(2)
    size = op.const(1)
    x, o = op.shape[0], op.oshape[0]
    op.need(len(x) == 4 and len(o) == 4 and o[0] == x[0] and o[3] == x[3], f"resizes {list(x)} to {list(o)}")
    if size is not None:
        op.need(size.tolist() == [o[1], o[2]], f"size {size.tolist()} but an output of shape {list(o)}")


def _pool(op: OpShapes) -> None:
    op.arity(1)
    x, o = op.shape[0], op.oshape[0]
    op.need(len(x) == 4 and len(o) == 4 and o[0] == x[0] and o[3] == x[3], f"pools {list(x)} to {list(o)}")
    sw, sh, fw, fh = (op.option(j) for j in (6, 8, 10, 12))
    if min(sw, sh, fw, fh) >= 1:
        same = op.opts.get(4, 0) == 0
        want = (x[0], _conv_out(x[1], fh, sh, 1, same), _conv_out(x[2], fw, sw, 1, same), x[3])
        op.need(o == want, f"output shape {list(o)}, its input {list(x)} makes {list(want)}")


# BuiltinOperator code -> its shape rule.
OP_SHAPES: dict[int, Callable[[OpShapes], None]] = {
    **{code: _unary for code in _UNARY},
    **{code: _binary for code in _BINARY},
    _CONV: _conv_2d,
    _DEPTHWISE: _depthwise_conv_2d,
    _TRANSPOSE_CONV: _transpose_conv,
    _FC: _fully_connected,
    _RESHAPE: _reshape,
    _CONCAT: _concatenation,
    _PAD: _pad,
    _TRANSPOSE: _transpose,
    **{code: _resize for code in _RESIZE},
    **{code: _pool for code in _POOL},
}


def check_op_shapes(v: Verifier, op: Obj, n: int, k: int, tensors: list[Obj], buffers: list[Obj],
                    opcodes: list[Obj]) -> None:
    """Check operator ``n`` of subgraph ``k`` against its rule in OP_SHAPES (if it has one)."""
    oc = opcodes[op.get(4, 0)]
    code = max(oc.get(4, 0), oc.get(10, 0))  # deprecated_builtin_code, builtin_code
    rule = OP_SHAPES.get(code)
    if rule is not None:
        rule(OpShapes(v, op, n, k, code, tensors, buffers))
