"""Verify an .onnx file before ONNX Runtime sees it.

Two layers. First a pure-Python walk over the protobuf wire format of the top-level ModelProto
(every tag a known ModelProto field with its wire type, every varint and length inside the file,
a graph present): this is the "magic number" of a format that has none, and it rejects a TFLite
file, random bytes or a truncated file in microseconds. Then the ``onnx`` package parses the
proto (protobuf's parser is memory-safe) and ``onnx.checker.check_model`` validates the graph;
any exception from either becomes a ModelFileError. Last, the generator contract is read from the
graph: one float input (B, latent_dim) or (B, latent_dim, 1, 1), one float output (B, C, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgegan_runtime.contract import MAX_FIXED_BATCH
from edgegan_runtime.errors import BackendUnavailableError, ModelFileError

# ModelProto field number -> wire type (onnx/onnx.proto): 0 varint, 2 length-delimited
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_FLOAT = 1  # TensorProto.FLOAT

# Structural limits, checked before any native code (onnx.checker included) sees the graph.
MAX_RANK = 8
MAX_DIM = 1 << 24  # one dimension of a declared shape or an initializer
MAX_ELEMENTS = 1 << 31  # one tensor (initializer or inferred activation, per image for a dynamic batch)
MAX_WINDOW = 4096  # kernel size, stride, dilation, pad of a convolution or pooling
MAX_GROUP = 1 << 16
MAX_GRAPHS = 256  # subgraphs (If/Loop bodies, functions) in one file
# Loops run as long as their data says (a Loop with an endless trip count hangs the caller, issue 25);
# edgegan's exporter writes none, so they are refused wherever they appear.
LOOP_OPS = ("Loop", "Scan", "SequenceMap")
MAX_INLINED_NODES = 1 << 20  # nodes of the graph once model-local functions are inlined (as onnxruntime does)
# TensorProto.DataType -> bits per element (None: variable size, strings)
_BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 8: None, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64,
         14: 64, 15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4}
# Convolution-like operators: (index of the weight input, weight layout "oihw" (Conv) or "iohw" (ConvTranspose))
_CONV_WEIGHT = {"Conv": (1, "oihw"), "ConvInteger": (1, "oihw"), "QLinearConv": (3, "oihw"),
                "ConvTranspose": (1, "iohw"), "FusedConv": (1, "oihw"), "NhwcConv": (1, "oihw")}
_WINDOWED = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "FusedConv", "NhwcConv", "MaxPool",
             "AveragePool", "LpPool", "MaxRoiPool", "MaxUnpool", "QLinearAveragePool", "DeformConv"}


@dataclass(frozen=True)
class OnnxIO:
    input_name: str
    output_name: str
    batch: int | None  # fixed batch size, or None when the batch dimension is dynamic
    latent_dim: int
    output_shape: tuple[int, int, int]
    metadata: dict = field(default_factory=dict)  # metadata_props (key -> UTF-8 bytes)
    int8_scheme: str | None = None  # "u8u8", "u8s8", "s8s8", "s8u8" for QDQ-quantized files, else None
    input_shape: tuple[int, ...] = ()  # z's shape after the batch: (latent_dim,) or (latent_dim, 1, 1) (issue 10)


def _varint(data: bytes | memoryview, pos: int, end: int, name: str) -> tuple[int, int]:
    value = shift = 0
    for i in range(10):
        if pos + i >= end:
            raise ModelFileError(f"{name}: corrupt or truncated ONNX file (varint runs past the end)")
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos + i + 1
    raise ModelFileError(f"{name}: corrupt ONNX file (varint longer than 10 bytes)")


def wire_check(data: bytes | memoryview, name: str) -> None:
    """Walk the top-level ModelProto fields; raise ModelFileError unless it looks like an ONNX model."""
    pos, end, seen_graph = 0, len(data), False
    while pos < end:
        tag, pos = _varint(data, pos, end, name)
        field, wire = tag >> 3, tag & 7
        if _MODEL_FIELDS.get(field) != wire:
            where = "at the start" if pos <= 2 else f"at byte {pos}"
            raise ModelFileError(f"{name}: not an ONNX model (unexpected protobuf field {field}/{wire} {where})")
        if wire == 0:
            _, pos = _varint(data, pos, end, name)
        else:
            length, pos = _varint(data, pos, end, name)
            if pos + length > end:
                left = end - pos
                raise ModelFileError(f"{name}: truncated ONNX file (field {field} needs {length} bytes, {left} left)")
            seen_graph |= field == 7
            pos += length
    if not seen_graph:
        raise ModelFileError(f"{name}: not an ONNX model (no graph)")


def verify_onnx(data: bytes, name: str) -> OnnxIO:
    """Verify ``data`` (a whole .onnx file) and return its generator contract; raises ModelFileError."""
    wire_check(data, name)
    try:
        import onnx
    except ImportError:
        raise BackendUnavailableError(
            f"{name}: verifying an ONNX file needs the 'onnx' package; pip install 'edgegan-runtime[onnx]'"
        ) from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf DecodeError and friends
        raise ModelFileError(f"{name}: corrupt ONNX file ({_one_line(e)})") from None
    # Structure first (pure Python over the parsed proto): onnx.checker accepts files that crash
    # ONNX Runtime (a ConvTranspose with group=0 dies of SIGFPE at load, issue 14).
    try:
        check_structure(model, name)
        try:
            onnx.checker.check_model(model)
        except Exception as e:  # onnx.checker.ValidationError, but the C++ side may raise others
            raise ModelFileError(f"{name}: invalid ONNX model ({_one_line(e)})") from None
        check_shapes(model, name)
        return _io(model, name)
    except ModelFileError:
        raise
    except Exception as e:  # noqa: BLE001 - a field of a form no check above expected: still a refusal, typed
        raise ModelFileError(f"{name}: invalid ONNX model ({type(e).__name__}: {_one_line(e)})") from None


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


def _ints(a) -> list[int]:
    return list(a.ints) if a.ints else [a.i]


def _check_node(node, name: str, label: str, shapes: dict) -> None:
    """Attributes native kernels divide by or allocate from: group, strides, dilations, pads,
    kernel_shape, output_padding and output_shape of convolutions and pooling, and a convolution's
    weight (an initializer, or a DequantizeLinear of one) against them."""
    op = node.op_type
    if op not in _WINDOWED:
        return
    where = f"{name}: {label}: {op} {node.name!r}" if node.name else f"{name}: {label}: {op}"
    attrs = {a.name: a for a in node.attribute}
    group = attrs["group"].i if "group" in attrs else 1
    if not 1 <= group <= MAX_GROUP:
        raise ModelFileError(f"{where} has group={group} (1 to {MAX_GROUP})")
    for key, low in (("strides", 1), ("dilations", 1), ("kernel_shape", 1), ("pads", 0), ("output_padding", 0),
                     ("output_shape", 1)):
        if key in attrs:
            vals = list(attrs[key].ints)
            if len(vals) > 2 * MAX_RANK or any(not low <= v <= (MAX_DIM if key == "output_shape" else MAX_WINDOW)
                                               for v in vals):
                raise ModelFileError(f"{where} has {key}={vals}")
    spatial = None
    wi = _CONV_WEIGHT.get(op)
    wshape = shapes.get(node.input[wi[0]]) if wi and len(node.input) > wi[0] else None
    if wi and wshape is not None:
        if len(wshape) < 3 or min(wshape) < 1:
            raise ModelFileError(f"{where} has a weight of shape {list(wshape)}")
        spatial = len(wshape) - 2
        if "kernel_shape" in attrs and list(attrs["kernel_shape"].ints) != list(wshape[2:]):
            kernel = list(attrs["kernel_shape"].ints)
            raise ModelFileError(f"{where} has kernel_shape={kernel} but a weight of shape {list(wshape)}")
        if wshape[0] % group:
            raise ModelFileError(f"{where}: group={group} does not divide the weight's {wshape[0]} channels")
        out_ch = wshape[0] if wi[1] == "oihw" else wshape[1] * group
        bias = 2 if op in ("Conv", "ConvTranspose", "FusedConv", "NhwcConv") else (8 if op == "QLinearConv" else None)
        has_bias = bias is not None and len(node.input) > bias and node.input[bias]
        bshape = shapes.get(node.input[bias]) if has_bias else None
        if bshape is not None and list(bshape) != [out_ch]:
            raise ModelFileError(f"{where} has a bias of shape {list(bshape)} for {out_ch} output channels")
    elif "kernel_shape" in attrs:
        spatial = len(attrs["kernel_shape"].ints)
    if spatial is not None:
        for key, mult in (("strides", 1), ("dilations", 1), ("kernel_shape", 1), ("pads", 2), ("output_padding", 1),
                          ("output_shape", 1)):
            if key in attrs and len(attrs[key].ints) not in (0, mult * spatial):
                raise ModelFileError(f"{where} has {len(attrs[key].ints)} {key} for {spatial} spatial dimensions")
    if "output_padding" in attrs:
        strides = list(attrs["strides"].ints) if "strides" in attrs else []
        dil = list(attrs["dilations"].ints) if "dilations" in attrs else []
        for k, p in enumerate(attrs["output_padding"].ints):
            s_k = strides[k] if k < len(strides) else 1
            d_k = dil[k] if k < len(dil) else 1
            if p >= max(s_k, d_k):
                raise ModelFileError(f"{where} has output_padding {p} >= its stride {s_k} and dilation {d_k}")


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
            _check_node(node, name, label, shapes)


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


def check_shapes(model, name: str) -> None:
    """ONNX's own shape inference over the checked graph: a convolution whose input channels are
    not its weight's (times group) is refused, and so is any activation the file's static shapes
    make larger than MAX_ELEMENTS per image. Inference that cannot finish is not an error here
    (ONNX Runtime infers again and refuses cleanly), only what it proves."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except Exception:  # noqa: BLE001 - see docstring
        return
    g = inferred.graph
    known = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            known[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    for vi_name, dims in known.items():
        n = 1
        for d in dims[1:]:  # per image: the batch dimension may be dynamic
            n *= d if d is not None and d > 0 else 1
        if n > MAX_ELEMENTS:
            raise ModelFileError(
                f"{name}: tensor {vi_name!r} of shape {dims} is larger than {MAX_ELEMENTS} elements per image"
            )
    inits = {t.name: list(t.dims) for t in g.initializer}
    for node in g.node:
        wi = _CONV_WEIGHT.get(node.op_type)
        if wi is None or len(node.input) <= wi[0]:
            continue
        x = known.get(node.input[2 if node.op_type == "QLinearConv" else 0])
        w = inits.get(node.input[wi[0]]) or known.get(node.input[wi[0]])
        if not x or not w or len(x) < 2 or len(w) < 3 or x[1] is None or w[0] is None or w[1] is None:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        need = w[0] if wi[1] == "iohw" else w[1] * group
        if x[1] != need:
            raise ModelFileError(
                f"{name}: {node.op_type} {node.name!r} gets {x[1]} input channels; "
                f"its weight {w} and group={group} need {need}"
            )



def _dims(value_info) -> list[int | None]:
    t = value_info.type.tensor_type
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _io(model, name: str) -> OnnxIO:
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise ModelFileError(
            f"{name}: model has {len(inputs)} inputs and {len(g.output)} outputs; an edgegan generator has one of each"
        )
    i, o = inputs[0], g.output[0]
    idims, odims = _dims(i), _dims(o)
    if i.type.tensor_type.elem_type != _FLOAT or o.type.tensor_type.elem_type != _FLOAT:
        raise ModelFileError(f"{name}: generator input and output must be float32")
    # z is (B, L) or, as in the PyTorch DCGAN example, (B, L, 1, 1); the runtime always takes (N, L)
    z_ok = (len(idims) == 2 or (len(idims) == 4 and idims[2:] == [1, 1])) and idims[1] is not None
    if not z_ok or len(odims) != 4 or None in odims[1:]:
        raise ModelFileError(
            f"{name}: expected input (B, latent_dim) or (B, latent_dim, 1, 1) and output (B, C, H, W) with fixed "
            f"sizes, got {idims} -> {odims}"
        )
    if idims[1] < 1 or min(odims[1:]) < 1:
        raise ModelFileError(f"{name}: zero-sized input or output {idims} -> {odims}")
    batch = idims[0] if idims[0] else None
    if batch is not None and not 1 <= batch <= MAX_FIXED_BATCH:
        # a batch of -1 made generate loop forever (issue 14); a dynamic batch is a named dimension
        raise ModelFileError(
            f"{name}: input batch size {batch}; expected 1 to {MAX_FIXED_BATCH} or a named (dynamic) dimension"
        )
    if batch is not None and odims[0] is not None and odims[0] != batch:
        raise ModelFileError(f"{name}: input batch size {batch} but output batch size {odims[0]}")
    meta = {}
    for p in model.metadata_props:  # a string field with invalid UTF-8 comes back as bytes
        key = p.key if isinstance(p.key, str) else p.key.decode("utf-8", "replace")
        meta.setdefault(key, p.value if isinstance(p.value, bytes) else p.value.encode("utf-8"))
    return OnnxIO(i.name, o.name, batch, int(idims[1]), (int(odims[1]), int(odims[2]), int(odims[3])), meta,
                  int8_scheme(model), tuple(int(d) for d in idims[1:]))


_INT8_TYPES = {2: "u8", 3: "s8"}  # TensorProto.UINT8, INT8


def int8_scheme(model) -> str | None:
    """Activation and weight types of a QDQ file's quantized ops ("u8s8": uint8 activations, int8
    weights), read from its DequantizeLinear nodes: a weight's input is an initializer, an
    activation's is not; the type is the zero point's (uint8 when it has none, as ONNX says)."""
    g = model.graph
    types = {t.name: t.data_type for t in g.initializer}
    acts, weights = set(), set()
    for node in g.node:
        if node.op_type != "DequantizeLinear" or not node.input:
            continue
        zp = node.input[2] if len(node.input) > 2 and node.input[2] else None
        kind = _INT8_TYPES.get(types.get(zp) if zp else types.get(node.input[0], 2))
        if kind is None:  # int16, int4, float8 ...: not the kernels this is about
            continue
        (weights if node.input[0] in types else acts).add(kind)
    if len(acts) != 1 or len(weights) != 1:
        return None
    return acts.pop() + weights.pop()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]
