"""Structured mutations of model files: the fields native code trusts, changed one at a time.

Bit flips and truncations (rt_fuzzing.mutate) mostly break a file's framing, which the verifiers
refuse in microseconds. These mutations keep the file well-formed and change what it *means*:
shapes and dimensions, operator attributes (group, strides, dilations, pads, kernel sizes),
initializer dimensions with or without matching bytes, tensor types, quantization parameters,
tensor and operator indices, subgraphs (If branches, external data inside them) and constant values
(NaN, inf, 3e38). Each returns (kind, bytes); a mutation that cannot be serialised (a value out of
its field's range) is retried with another.

Used by tests/runtime/test_runtime_fuzz.py (a few hundred cases) and bench/scripts/fuzz_runtime.py
(>= 10,000 per format). Needs ``onnx`` for ONNX and LiteRT's schema module + ``flatbuffers`` for
TFLite; never torch.
"""

from __future__ import annotations

import random
from typing import Callable

import numpy as np

# Values that break assumptions: zero, negative, one past, powers of two, the type's extremes.
HOSTILE_INTS = (0, -1, 1, 2, 3, 7, 64, 65535, 65536, 1 << 20, (1 << 31) - 1, -(1 << 31), 10**9, -(10**9))
HOSTILE_FLOATS = (0.0, -1.0, float("nan"), float("inf"), -float("inf"), 3e38, 1e-45, 1e30, 1e-30, 255.0)
INT32 = (-(1 << 31), (1 << 31) - 1)


def _hostile_int(rng: random.Random, old: int | None = None) -> int:
    r = rng.random()
    if old is not None and r < 0.35:
        return rng.choice([old + 1, old - 1, old * 2, old * 1000, -old, old + rng.randint(-3, 3)])
    return rng.choice(HOSTILE_INTS)


def _clamp32(v: int) -> int:
    return max(INT32[0], min(INT32[1], int(v)))


# ================================================================ ONNX

ONNX_KINDS = ("attr", "attr", "attr", "init_dims", "init_dims_bytes", "init_type", "io_shape", "value_info",
              "node_op", "node_io", "node_order", "subgraph", "subgraph_external", "quant", "const_values", "opset",
              "loop")
_CONV_ATTRS = ("group", "strides", "dilations", "pads", "kernel_shape", "output_padding", "output_shape", "auto_pad")
_OPS = ("Conv", "ConvTranspose", "Relu", "Tanh", "Gemm", "MatMul", "Add", "Mul", "Reshape", "Transpose", "Identity",
        "BatchNormalization", "Unsqueeze", "Squeeze", "Flatten", "MaxPool", "AveragePool", "Softmax", "Concat",
        "Resize", "Pad", "Slice", "Expand", "Tile", "DequantizeLinear", "QuantizeLinear", "Cast", "LeakyRelu")
_AUTO_PAD = (b"SAME_UPPER", b"SAME_LOWER", b"VALID", b"NOTSET", b"bogus", b"")
_ONNX_TYPES = (1, 2, 3, 5, 6, 7, 9, 10, 11, 16, 21, 22)  # float, u8, i8, i16, i32, i64, bool, f16, f64, bf16, u4, i4
_ONNX_BITS = {1: 32, 2: 8, 3: 8, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 16: 16, 21: 4, 22: 4}


def onnx_base(data: bytes):
    """The ModelProto to mutate: ``data`` parsed, with ONNX's inferred value_info (types for If branches)."""
    import onnx

    return onnx.shape_inference.infer_shapes(onnx.load_model_from_string(data))


def mutate_onnx(base, rng: random.Random, tries: int = 20) -> tuple[str, bytes]:
    """A structurally mutated copy of ModelProto ``base`` (see ``onnx_base``): (kind, serialized bytes)."""
    import onnx

    for _ in range(tries):
        m = onnx.ModelProto()
        m.CopyFrom(base)
        kind = rng.choice(ONNX_KINDS)
        try:
            if _ONNX_MUTATIONS[kind](m, rng) is False:
                continue
            return kind, m.SerializeToString()
        except (ValueError, TypeError, IndexError, OverflowError):  # a value its field cannot hold: try another
            continue
    return "none", base.SerializeToString()


def _pick_node(m, rng, ops=None):
    nodes = [n for n in m.graph.node if ops is None or n.op_type in ops]
    return rng.choice(nodes) if nodes else None


def _m_attr(m, rng) -> bool:
    from onnx import AttributeProto, helper

    conv = _pick_node(m, rng, ("Conv", "ConvTranspose")) if rng.random() < 0.7 else None
    node = conv or _pick_node(m, rng)
    if node is None:
        return False
    names = [a.name for a in node.attribute]
    if conv is not None or not names:
        names = names + list(_CONV_ATTRS)
    name = rng.choice(names)
    old = next((a for a in node.attribute if a.name == name), None)
    if old is not None:
        node.attribute.remove(old)
    if old is not None and old.type == AttributeProto.FLOAT:
        node.attribute.append(helper.make_attribute(name, rng.choice(HOSTILE_FLOATS)))
    elif (old is not None and old.type == AttributeProto.STRING) or name == "auto_pad":
        node.attribute.append(helper.make_attribute(name, rng.choice(_AUTO_PAD)))
    elif name == "group" or (old is not None and old.type == AttributeProto.INT):
        node.attribute.append(helper.make_attribute(name, _hostile_int(rng, old.i if old is not None else 1)))
    else:
        vals = list(old.ints) if old is not None and old.ints else [1, 1] if name != "pads" else [0, 0, 0, 0]
        r = rng.random()
        if r < 0.6 and vals:
            k = rng.randrange(len(vals))
            vals[k] = _hostile_int(rng, vals[k])
        elif r < 0.8:
            vals = vals[:-1] if vals and rng.random() < 0.5 else vals + [_hostile_int(rng)]
        else:
            vals = [_hostile_int(rng) for _ in range(rng.randint(0, 6))]
        node.attribute.append(helper.make_attribute(name, vals) if vals else
                              helper.make_attribute(name, [], attr_type=AttributeProto.INTS))
    return True


def _new_dims(rng, dims: list[int]) -> list[int]:
    dims = list(dims)
    r = rng.random()
    if r < 0.6 and dims:
        k = rng.randrange(len(dims))
        dims[k] = rng.choice([dims[k] + 1, dims[k] * 2, dims[k] * 1000, 0, 1, -1, 1 << 20, (1 << 31) - 1,
                              max(1, dims[k] // 2), dims[k] * 3])
    elif r < 0.8:
        dims = dims[:-1] if dims and rng.random() < 0.5 else dims + [rng.choice([1, 2, 3])]
    else:
        rng.shuffle(dims)
    return dims


def _m_init_dims(m, rng, keep_bytes: bool = True) -> bool:
    inits = [t for t in m.graph.initializer]
    if not inits:
        return False
    t = rng.choice(inits)
    dims = _new_dims(rng, list(t.dims))
    del t.dims[:]
    t.dims.extend(dims)
    if not keep_bytes and t.HasField("raw_data") and all(0 <= d <= 1 << 16 for d in dims):
        n = int(np.prod(dims, dtype=np.int64)) * _ONNX_BITS.get(t.data_type, 8) // 8
        if n > 1 << 24:
            return False
        raw = t.raw_data or b"\0"
        t.raw_data = (raw * (n // len(raw) + 1))[:n]
    return True


def _m_init_type(m, rng) -> bool:
    inits = [t for t in m.graph.initializer]
    if not inits:
        return False
    t = rng.choice(inits)
    t.data_type = rng.choice(_ONNX_TYPES)
    if rng.random() < 0.5 and t.HasField("raw_data"):  # bytes made to match the new type
        n = int(np.prod(list(t.dims), dtype=np.int64)) * _ONNX_BITS[t.data_type] // 8
        if n > 1 << 24:
            return False
        raw = t.raw_data or b"\0"
        t.raw_data = (raw * (n // len(raw) + 1))[:n]
    return True


def _m_io_shape(m, rng) -> bool:
    vi = rng.choice(list(m.graph.input) + list(m.graph.output))
    tt = vi.type.tensor_type
    r = rng.random()
    if r < 0.15:
        tt.elem_type = rng.choice(_ONNX_TYPES)
        return True
    dims = tt.shape.dim
    if r < 0.3 or not len(dims):
        if len(dims) and rng.random() < 0.5:
            del dims[-1]
        else:
            dims.add().dim_value = rng.choice([1, 2, 3])
        return True
    d = dims[rng.randrange(len(dims))]
    if rng.random() < 0.2:
        d.dim_param = rng.choice(["batch", "n", "x"])
    else:
        d.dim_value = rng.choice([-1, 0, 1, 2, 3, 7, 64, 1000, 1 << 20, (1 << 31) - 1, -(1 << 40)])
    return True


def _m_value_info(m, rng) -> bool:
    from onnx import helper

    outs = [o for n in m.graph.node for o in n.output if o]
    if not outs:
        return False
    name = rng.choice(outs)
    rank = rng.randint(0, 5)
    dims = [rng.choice([1, 2, 3, 4, 16, 1000, 0, 1 << 24]) for _ in range(rank)]
    m.graph.value_info.append(helper.make_tensor_value_info(name, rng.choice(_ONNX_TYPES), dims))
    return True


def _m_node_op(m, rng) -> bool:
    node = _pick_node(m, rng)
    if node is None:
        return False
    node.op_type = rng.choice(_OPS)
    return True


def _m_node_io(m, rng) -> bool:
    node = _pick_node(m, rng)
    if node is None:
        return False
    names = [i.name for i in m.graph.input] + [t.name for t in m.graph.initializer] + \
        [o for n in m.graph.node for o in n.output]
    field = node.input if (rng.random() < 0.7 or not len(node.output)) else node.output
    r = rng.random()
    if r < 0.5 and len(field):
        field[rng.randrange(len(field))] = rng.choice(names + ["", "nowhere"])
    elif r < 0.75 and len(field):
        del field[rng.randrange(len(field))]
    else:
        field.append(rng.choice(names + [""]))
    return True


def _m_node_order(m, rng) -> bool:
    nodes = list(m.graph.node)
    if len(nodes) < 2:
        return False
    r = rng.random()
    if r < 0.4:
        i, j = rng.sample(range(len(nodes)), 2)
        nodes[i], nodes[j] = nodes[j], nodes[i]
    elif r < 0.7:
        del nodes[rng.randrange(len(nodes))]
    else:
        nodes.insert(rng.randrange(len(nodes)), nodes[rng.randrange(len(nodes))])
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return True


def _if_wrap(m, rng, external: bool) -> bool:
    """Move one node into both branches of an If (outer-scope names stay visible), optionally with a
    mutated attribute in one branch or a constant with external data."""
    import onnx
    from onnx import helper, numpy_helper

    nodes = list(m.graph.node)
    if not nodes:
        return False
    k = rng.randrange(len(nodes))
    inner = nodes[k]
    outs = [o for o in inner.output if o]
    if not outs:
        return False
    then_nodes = [onnx.NodeProto()]
    then_nodes[0].CopyFrom(inner)
    else_nodes = [onnx.NodeProto()]
    else_nodes[0].CopyFrom(inner)
    if external:
        ext = helper.make_tensor("leak", onnx.TensorProto.FLOAT, [1], [0.0])
        ext.ClearField("float_data")
        ext.data_location = onnx.TensorProto.EXTERNAL
        ext.external_data.add(key="location", value=rng.choice(["leak.bin", "../leak.bin", "/etc/hostname"]))
        else_nodes.append(helper.make_node("Constant", [], ["leak_c"], value=ext))
    elif rng.random() < 0.7:
        holder = onnx.ModelProto()
        holder.graph.node.extend(else_nodes[:1])
        _m_attr(holder, rng)
        else_nodes[0].CopyFrom(holder.graph.node[0])
    # a branch output needs its element type: from the (shape-inferred) base's value_info, else float
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(m.graph.value_info) + list(m.graph.output)}
    vis = [helper.make_tensor_value_info(o, types.get(o) or onnx.TensorProto.FLOAT, None) for o in outs]
    then_g = helper.make_graph(then_nodes, "then", [], vis)
    else_g = helper.make_graph(else_nodes, "else", [], vis)
    cond = f"cond_{k}"
    m.graph.initializer.append(numpy_helper.from_array(np.array(rng.random() < 0.5), cond))
    nodes[k] = helper.make_node("If", [cond], outs, then_branch=then_g, else_branch=else_g)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return True


def _m_quant(m, rng) -> bool:
    """Scale or zero point of a Quantize/DequantizeLinear (a QDQ file), else an epsilon or alpha."""
    from onnx import numpy_helper

    qdq = _pick_node(m, rng, ("DequantizeLinear", "QuantizeLinear"))
    inits = {t.name: t for t in m.graph.initializer}
    if qdq is None:
        return _m_attr(m, rng)
    k = rng.choice([1, 2]) if len(qdq.input) > 2 else 1
    t = inits.get(qdq.input[k]) if len(qdq.input) > k else None
    if t is None:
        return False
    a = numpy_helper.to_array(t).copy()
    if k == 1:
        a = np.asarray(a, np.float32)
        a.flat[rng.randrange(max(1, a.size))] = np.float32(rng.choice(HOSTILE_FLOATS))
        new = numpy_helper.from_array(a.astype(np.float32), t.name)
    else:
        info = np.iinfo(a.dtype) if a.dtype.kind in "iu" else None
        if info is not None and a.size:
            a.flat[rng.randrange(a.size)] = rng.choice([info.min, info.max, 0])
        new = numpy_helper.from_array(a if rng.random() < 0.7 else a.astype(rng.choice([np.int8, np.uint8, np.int32])),
                                      t.name)
    t.CopyFrom(new)
    return True


def _m_const_values(m, rng) -> bool:
    from onnx import numpy_helper

    inits = [t for t in m.graph.initializer if t.data_type in (1, 10)]
    if not inits:
        return False
    t = rng.choice(inits)
    a = numpy_helper.to_array(t).copy()
    if not a.size:
        return False
    n = rng.choice([1, 4, a.size])
    idx = np.array([rng.randrange(a.size) for _ in range(min(n, 64))]) if n < a.size else np.arange(a.size)
    with np.errstate(over="ignore", invalid="ignore"):
        a.flat[idx] = rng.choice(HOSTILE_FLOATS)
    t.CopyFrom(numpy_helper.from_array(a.astype(a.dtype), t.name))
    return True


def _m_opset(m, rng) -> bool:
    if rng.random() < 0.5 and len(m.opset_import):
        m.opset_import[0].version = rng.choice([1, 6, 7, 11, 99, 0, 10**6])
    else:
        m.ir_version = rng.choice([0, 1, 3, 99, 10**6])
    return True


def _m_loop(m, rng) -> bool:
    """A Loop whose trip count is hostile (issue 25: an endless one hung), its body an Identity."""
    import onnx
    from onnx import helper, numpy_helper

    trips = rng.choice([2**31, 2**63 - 1, -1, 0, 3])
    body = helper.make_graph([helper.make_node("Identity", ["c_in"], ["c_out"])], "body",
                             [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                              helper.make_tensor_value_info("c_in", onnx.TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("c_out", onnx.TensorProto.BOOL, [])])
    m.graph.initializer.append(numpy_helper.from_array(np.array(trips, np.int64), "loop_trips"))
    m.graph.initializer.append(numpy_helper.from_array(np.array(True), "loop_go"))
    m.graph.node.insert(rng.randrange(len(m.graph.node) + 1), helper.make_node("Loop", ["loop_trips", "loop_go"], [],
                                                                               body=body))
    return True


_ONNX_MUTATIONS: dict[str, Callable] = {
    "attr": _m_attr, "init_dims": _m_init_dims, "init_dims_bytes": lambda m, r: _m_init_dims(m, r, False),
    "init_type": _m_init_type, "io_shape": _m_io_shape, "value_info": _m_value_info, "node_op": _m_node_op,
    "node_io": _m_node_io, "node_order": _m_node_order, "subgraph": lambda m, r: _if_wrap(m, r, False),
    "subgraph_external": lambda m, r: _if_wrap(m, r, True), "quant": _m_quant, "const_values": _m_const_values,
    "opset": _m_opset,
    "loop": _m_loop,
}


# ================================================================ TFLite

TFLITE_KINDS = ("shape", "shape", "shape", "shape_sig", "type", "buffer", "buffer_bytes", "opcode", "op_io",
                "options", "options", "quant", "quant", "subgraph_io", "signature", "const_values", "control_flow")


def mutate_tflite(data: bytes, rng: random.Random, tries: int = 20) -> tuple[str, bytes]:
    """A structurally mutated copy of the .tflite ``data``: (kind, bytes)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    for _ in range(tries):
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        kind = rng.choice(TFLITE_KINDS)
        try:
            if _TFLITE_MUTATIONS[kind](model, rng, schema) is False:
                continue
            b = flatbuffers.Builder(1024)
            b.Finish(model.Pack(b), file_identifier=b"TFL3")
            return kind, bytes(b.Output())
        except (ValueError, TypeError, IndexError, OverflowError, AttributeError, __import__("struct").error):
            continue
    return "none", data


def _tensor(model, rng):
    sg = rng.choice(model.subgraphs)
    return sg, rng.choice(sg.tensors) if sg.tensors else None


def _t_shape(model, rng, schema) -> bool:
    sg, t = _tensor(model, rng)
    # most interesting: an operator's output (a DEQUANTIZE of weights, a TRANSPOSE_CONV result)
    if rng.random() < 0.6 and sg.operators:
        op = rng.choice(sg.operators)
        if op.outputs is not None and len(op.outputs) and op.outputs[0] >= 0:
            t = sg.tensors[int(op.outputs[0])]
    if t is None:
        return False
    dims = [int(d) for d in (t.shape if t.shape is not None else [])]
    t.shape = np.array([_clamp32(d) for d in _new_dims(rng, dims)], np.int32)
    return True


def _t_shape_sig(model, rng, schema) -> bool:
    sg, t = _tensor(model, rng)
    if t is None:
        return False
    dims = [int(d) for d in (t.shapeSignature if t.shapeSignature is not None else t.shape if t.shape is not None
                             else [])]
    if dims and rng.random() < 0.5:
        dims[rng.randrange(len(dims))] = rng.choice([-1, -2, 0, 1, 1 << 20])
    else:
        dims = _new_dims(rng, dims)
    t.shapeSignature = np.array([_clamp32(d) for d in dims], np.int32)
    return True


def _t_type(model, rng, schema) -> bool:
    sg, t = _tensor(model, rng)
    if t is None:
        return False
    t.type = rng.choice([0, 1, 2, 3, 4, 6, 7, 9, 10, 16, 17, 200])
    return True


def _t_buffer(model, rng, schema) -> bool:
    sg, t = _tensor(model, rng)
    if t is None:
        return False
    t.buffer = rng.choice([0, rng.randrange(len(model.buffers)), len(model.buffers), (1 << 31) - 1])
    return True


def _t_buffer_bytes(model, rng, schema) -> bool:
    bufs = [b for b in model.buffers if b.data is not None and len(b.data)]
    if not bufs:
        return False
    b = rng.choice(bufs)
    d = np.asarray(b.data, np.uint8)
    r = rng.random()
    b.data = d[: rng.randrange(len(d))] if r < 0.4 else (np.concatenate([d, d]) if r < 0.7 else d[:-1])
    return True


def _t_opcode(model, rng, schema) -> bool:
    r = rng.random()
    sg = rng.choice(model.subgraphs)
    if r < 0.4 and sg.operators:
        op = rng.choice(sg.operators)
        op.opcodeIndex = rng.choice([rng.randrange(len(model.operatorCodes)), len(model.operatorCodes), 1 << 20])
    else:
        oc = rng.choice(model.operatorCodes)
        if rng.random() < 0.3:
            oc.version = rng.choice([0, 1, 2, 3, 99, (1 << 31) - 1])
        else:
            code = rng.choice([0, 2, 3, 4, 6, 9, 14, 17, 18, 19, 22, 28, 34, 39, 41, 53, 67, 98, 114, 117, 150, 300])
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
    return True


def _t_op_io(model, rng, schema) -> bool:
    sg = rng.choice(model.subgraphs)
    if not sg.operators:
        return False
    op = rng.choice(sg.operators)
    field = "inputs" if rng.random() < 0.6 else "outputs"
    vals = [int(x) for x in (getattr(op, field) if getattr(op, field) is not None else [])]
    r = rng.random()
    n = len(sg.tensors)
    if r < 0.6 and vals:
        vals[rng.randrange(len(vals))] = rng.choice([-1, 0, rng.randrange(n), n, 1 << 30])
    elif r < 0.8 and vals:
        del vals[rng.randrange(len(vals))]
    else:
        vals.append(rng.randrange(n))
    setattr(op, field, np.array(vals, np.int32))
    return True


def _t_options(model, rng, schema) -> bool:
    sg = rng.choice(model.subgraphs)
    ops = [op for op in sg.operators if op.builtinOptions is not None]
    if not ops:
        return False
    opts = rng.choice(ops).builtinOptions
    fields = [k for k, v in vars(opts).items() if isinstance(v, (int, np.ndarray, list)) or v is None]
    if not fields:
        return False
    k = rng.choice(fields)
    v = getattr(opts, k)
    if isinstance(v, (np.ndarray, list)) or (v is None and k.endswith("Shape")):
        vals = [int(x) for x in (v if v is not None else [])]
        vals = [_clamp32(x) for x in _new_dims(rng, vals or [1])]
        setattr(opts, k, np.array(vals, np.int32))
    elif isinstance(v, bool):
        setattr(opts, k, not v)
    else:
        setattr(opts, k, _clamp32(_hostile_int(rng, int(v or 0))))
    return True


def _t_quant(model, rng, schema) -> bool:
    sg, t = _tensor(model, rng)
    quantized = [x for x in sg.tensors if x.quantization is not None and x.quantization.scale is not None
                 and len(x.quantization.scale)]
    if quantized and rng.random() < 0.8:
        t = rng.choice(quantized)
    if t is None:
        return False
    q = t.quantization or schema.QuantizationParametersT()
    t.quantization = q
    r = rng.random()
    scale = [float(s) for s in (q.scale if q.scale is not None else [])] or [1.0]
    zp = [int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [])] or [0]
    if r < 0.45:
        scale[rng.randrange(len(scale))] = rng.choice(HOSTILE_FLOATS)
    elif r < 0.7:
        zp[rng.randrange(len(zp))] = rng.choice([-129, 128, 255, 256, -(1 << 40), 1 << 40, 0])
    elif r < 0.85:
        if rng.random() < 0.5:
            scale = scale[:-1] or scale + scale
        else:
            zp = zp + zp
    else:
        q.quantizedDimension = rng.choice([-1, 0, 1, 3, 4, 99])
    q.scale = np.array(scale, np.float32)
    q.zeroPoint = np.array(zp, np.int64)
    return True


def _t_subgraph_io(model, rng, schema) -> bool:
    sg = rng.choice(model.subgraphs)
    field = "inputs" if rng.random() < 0.5 else "outputs"
    vals = [int(x) for x in getattr(sg, field)]
    n = len(sg.tensors)
    if vals and rng.random() < 0.7:
        vals[rng.randrange(len(vals))] = rng.choice([-1, rng.randrange(n), n])
    else:
        vals.append(rng.randrange(n))
    setattr(sg, field, np.array(vals, np.int32))
    return True


def _t_signature(model, rng, schema) -> bool:
    if not model.signatureDefs:
        return False
    sig = rng.choice(model.signatureDefs)
    r = rng.random()
    if r < 0.3:
        sig.subgraphIndex = rng.choice([0, 1, len(model.subgraphs), 1 << 20])
    else:
        tm = rng.choice((sig.inputs or []) + (sig.outputs or []))
        tm.tensorIndex = rng.choice([0, 1, rng.randrange(64), 1 << 20])
    return True


def _t_const_values(model, rng, schema) -> bool:
    sg = rng.choice(model.subgraphs)
    floats = [t for t in sg.tensors if t.type in (0, 1) and model.buffers[t.buffer].data is not None
              and len(model.buffers[t.buffer].data)]
    if not floats:
        return False
    t = rng.choice(floats)
    dt = np.float32 if t.type == 0 else np.float16
    a = np.frombuffer(np.asarray(model.buffers[t.buffer].data, np.uint8).tobytes(), dt).copy()
    if not a.size:
        return False
    with np.errstate(over="ignore"):
        a[[rng.randrange(a.size) for _ in range(rng.choice([1, 4, 64]))]] = dt(rng.choice(HOSTILE_FLOATS))
    model.buffers[t.buffer].data = np.frombuffer(a.tobytes(), np.uint8)
    return True


def _t_control_flow(model, rng, schema) -> bool:
    """An IF, WHILE or CALL_ONCE naming a subgraph (itself, another, one out of range; issue 25: recursion
    overflowed the interpreter's stack, a WHILE of 2**31 trips hung), optionally after a copied subgraph."""
    import copy

    if rng.random() < 0.5:
        model.subgraphs.append(copy.deepcopy(rng.choice(model.subgraphs)))
    code = rng.choice([118, 119, 129])
    oc = schema.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
    model.operatorCodes.append(oc)
    k = rng.randrange(len(model.subgraphs))
    sg = model.subgraphs[k]
    callee = rng.choice([0, k, len(model.subgraphs) - 1, len(model.subgraphs), 2**31 - 1, -1])
    if sg.inputs is None or len(sg.inputs) == 0:
        return False
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs = np.array([int(sg.inputs[0])], np.int32)
    op.outputs = np.array([], np.int32)
    if code == 118:
        opts = schema.IfOptionsT()
        opts.thenSubgraphIndex, opts.elseSubgraphIndex = callee, rng.choice([0, callee])
        op.builtinOptionsType = schema.BuiltinOptions.IfOptions
    elif code == 119:
        opts = schema.WhileOptionsT()
        opts.condSubgraphIndex, opts.bodySubgraphIndex = callee, rng.choice([0, callee])
        op.builtinOptionsType = schema.BuiltinOptions.WhileOptions
    else:
        opts = schema.CallOnceOptionsT()
        opts.initSubgraphIndex = callee
        op.builtinOptionsType = schema.BuiltinOptions.CallOnceOptions
    op.builtinOptions = opts
    sg.operators.insert(rng.randrange(len(sg.operators) + 1), op)
    return True


_TFLITE_MUTATIONS: dict[str, Callable] = {
    "shape": _t_shape, "shape_sig": _t_shape_sig, "type": _t_type, "buffer": _t_buffer,
    "buffer_bytes": _t_buffer_bytes, "opcode": _t_opcode, "op_io": _t_op_io, "options": _t_options,
    "quant": _t_quant, "subgraph_io": _t_subgraph_io, "signature": _t_signature, "const_values": _t_const_values,
    "control_flow": _t_control_flow,
}
