"""ONNX graph structure: every graph of a parsed ModelProto and every tensor stored in it.

``check_structure`` runs over the proto ``onnx`` parsed, before ``onnx.checker`` (which accepts
files that crash ONNX Runtime): it walks every graph (If/Loop/Scan bodies at any depth, functions,
training info; at most MAX_GRAPHS), refuses loops anywhere and model-local functions that recurse
or inline to more than MAX_INLINED_NODES nodes, external data and sparse tensors; checks each
stored tensor's byte size against its shape and each declared shape against the size limits; and
hands each node to ``onnx_op_shapes.check_node`` for the per-operator rules. Pure Python.
"""

from __future__ import annotations

from edgegan_runtime.errors import ModelFileError
from edgegan_runtime.onnx_op_shapes import MAX_DIM, MAX_ELEMENTS, MAX_RANK, check_node

MAX_GRAPHS = 256  # subgraphs (If/Loop bodies, functions) in one file
# Loops run as long as their data says (a Loop with an endless trip count hangs the caller, issue 25);
# edgegan's exporter writes none, so they are refused wherever they appear.
LOOP_OPS = ("Loop", "Scan", "SequenceMap")
MAX_INLINED_NODES = 1 << 20  # nodes of the graph once model-local functions are inlined (as onnxruntime does)
# TensorProto.DataType -> bits per element (None: variable size, strings)
_BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 8: None, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64,
         14: 64, 15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4}


def check_structure(model, name: str) -> None:
    """Every graph (subgraphs of If/Loop/Scan and functions included): no external data anywhere
    (issue 14: an initializer with external data inside an If branch made ONNX Runtime read a file
    from the current folder), no sparse tensors; every stored tensor's byte size matches its shape,
    within the size limits; every declared shape within limits (a batch of -1 is refused later);
    convolution and pooling attributes in range and consistent with their weights."""
    try:
        graphs = _graphs(model)
    except ModelFileError as e:
        raise ModelFileError(f"{name}: {e}") from None
    _check_calls(model, graphs, name)
    for label, g in graphs:
        if len(getattr(g, "sparse_initializer", ())):
            raise ModelFileError(f"{name}: {label}: sparse initializers are not supported")
        for node in g.node:
            for a in node.attribute:
                if a.HasField("sparse_tensor") or len(a.sparse_tensors):
                    raise ModelFileError(
                        f"{name}: {label}: {node.op_type} has a sparse tensor attribute (not supported)"
                    )
        shapes = {}
        for where, t in _tensors(g):
            _check_tensor(t, name, f"{label}: {where}")
            if where == "initializer":
                shapes[t.name] = tuple(t.dims)
        for node in g.node:  # a weight through DequantizeLinear (QDQ int8) has its initializer's shape
            if node.op_type == "DequantizeLinear" and node.input and node.input[0] in shapes and node.output:
                shapes.setdefault(node.output[0], shapes[node.input[0]])
        for vi in list(getattr(g, "input", ())) + list(getattr(g, "output", ())) + list(getattr(g, "value_info", ())):
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim if d.HasField("dim_value")]
            if vi.type.tensor_type.HasField("shape") and len(vi.type.tensor_type.shape.dim) > MAX_RANK:
                raise ModelFileError(f"{name}: {label}: {vi.name!r} of rank {len(vi.type.tensor_type.shape.dim)}")
            if any(not -1 <= d <= MAX_DIM for d in dims):
                raise ModelFileError(f"{name}: {label}: {vi.name!r} has a dimension out of range {dims}")
        for node in g.node:
            check_node(node, name, label, shapes)


def _graphs(model):
    """Every graph of the model: the main one, every attribute graph (If/Loop/Scan bodies) at any
    depth, and the graphs inside functions and training info, each with a label for messages."""
    out, todo = [], [("graph", model.graph)]
    for f in model.functions:
        todo.append((f"function {f.name!r}", f))
    for k, t in enumerate(model.training_info):
        todo += [(f"training info {k}", t.initialization), (f"training info {k}", t.algorithm)]
    while todo:
        label, g = todo.pop()
        out.append((label, g))
        if len(out) > MAX_GRAPHS:
            raise ModelFileError(f"more than {MAX_GRAPHS} subgraphs")
        for node in g.node:
            for a in node.attribute:
                if a.HasField("g"):
                    todo.append((f"{label} > {node.op_type} {a.name}", a.g))
                todo += [(f"{label} > {node.op_type} {a.name}", sub) for sub in a.graphs]
    return out


def _tensors(g):
    """(where, TensorProto) for every tensor stored in graph or function ``g``: initializers and
    constants in node attributes (Constant, ConstantOfShape, ...)."""
    for t in getattr(g, "initializer", ()):
        yield "initializer", t
    for node in g.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield f"{node.op_type} attribute", a.t
            for t in a.tensors:
                yield f"{node.op_type} attribute", t


def _count(dims, name: str, what: str) -> int:
    if len(dims) > MAX_RANK:
        raise ModelFileError(f"{name}: {what} of rank {len(dims)} (at most {MAX_RANK})")
    n = 1
    for d in dims:
        if not 0 <= d <= MAX_DIM:
            raise ModelFileError(f"{name}: {what} has a dimension of {d} (0 to {MAX_DIM})")
        n *= d
    if n > MAX_ELEMENTS:
        raise ModelFileError(f"{name}: {what} of shape {list(dims)} has more than {MAX_ELEMENTS} elements")
    return n


def _check_tensor(t, name: str, where: str) -> None:
    what = f"{where} {t.name!r}" if t.name else where
    if t.data_location == 1 or len(t.external_data):  # TensorProto.EXTERNAL
        raise ModelFileError(f"{name}: ONNX files with external data are not supported ({what})")
    if t.HasField("segment"):
        raise ModelFileError(f"{name}: segmented tensors are not supported ({what})")
    n = _count(t.dims, name, what)
    bits = _BITS.get(t.data_type)
    if t.data_type not in _BITS:
        raise ModelFileError(f"{name}: {what} has unknown data type {t.data_type}")
    if bits is None:
        if len(t.string_data) != n or t.raw_data:
            raise ModelFileError(f"{name}: {what} holds {len(t.string_data)} strings, its shape says {n}")
        return
    if t.HasField("raw_data"):
        have, want = len(t.raw_data), (n * bits + 7) // 8
        if have != want:
            raise ModelFileError(f"{name}: {what} of shape {list(t.dims)} holds {have} bytes, expected {want}")
        return
    have = (len(t.float_data) + len(t.int32_data) + len(t.int64_data) + len(t.double_data)
            + len(t.uint64_data) + len(t.string_data))
    want = 2 * n if t.data_type in (14, 15) else ((n + 1) // 2 if bits == 4 else n)
    if have != want:
        raise ModelFileError(f"{name}: {what} of shape {list(t.dims)} holds {have} values, expected {want}")


def _check_calls(model, graphs, name: str) -> None:
    """No loop anywhere; model-local functions call each other without a cycle and inline to at most
    MAX_INLINED_NODES nodes (a function calling itself makes onnxruntime's inliner recurse forever)."""
    for label, g in graphs:
        for node in g.node:
            if node.op_type in LOOP_OPS and node.domain in ("", "ai.onnx"):
                raise ModelFileError(f"{name}: {label}: a {node.op_type} node, whose trip count is data; edgegan "
                                     "files never contain loops")
    funcs = {(f.domain, f.name): f for f in model.functions}
    if not funcs:
        return
    cost: dict = {}
    for key in funcs:
        stack = [(key, False)]
        on_path: set = set()
        while stack:
            k, done = stack.pop()
            if done:
                on_path.discard(k)
                total = 0
                for node in funcs[k].node:
                    callee = (node.domain, node.op_type)
                    total += cost.get(callee, 1) if callee in funcs else 1
                cost[k] = min(total, MAX_INLINED_NODES + 1)
                if cost[k] > MAX_INLINED_NODES:
                    raise ModelFileError(f"{name}: function {k[1]!r} inlines to more than {MAX_INLINED_NODES} nodes")
                continue
            if k in cost:
                continue
            if k in on_path:
                raise ModelFileError(f"{name}: function {k[1]!r} calls itself (unbounded recursion)")
            on_path.add(k)
            stack.append((k, True))
            for node in funcs[k].node:
                callee = (node.domain, node.op_type)
                if callee in funcs and callee not in cost:
                    if callee in on_path:
                        raise ModelFileError(f"{name}: function {callee[1]!r} calls itself (unbounded recursion)")
                    stack.append((callee, False))
