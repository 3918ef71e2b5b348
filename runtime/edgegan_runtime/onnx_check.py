"""Verify an .onnx file before ONNX Runtime sees it, and read the generator contract from it.

``verify_onnx`` is the entry point, in layers. First ``wire_check``, a pure-Python walk over the
protobuf wire format of the top-level ModelProto (every tag a known ModelProto field with its wire
type, every varint and length inside the file, a graph present): this is the "magic number" of a
format that has none, and it rejects a TFLite file, random bytes or a truncated file in
microseconds. Then the ``onnx`` package parses the proto (protobuf's parser is memory-safe);
``onnx_graph.check_structure`` checks every graph and stored tensor (with the per-operator rules of
``onnx_op_shapes.check_node``), ``onnx.checker.check_model`` validates the graph and
``onnx_op_shapes.check_shapes`` runs ONNX's shape inference; any exception from these becomes a
ModelFileError. Last, the generator contract is read from the graph (``OnnxIO``): one float input
(B, latent_dim) or (B, latent_dim, 1, 1) (and a conditional generator's label second, checked by
``check_label_input`` once the file's contract says it is one), one float output (B, C, H, W), and
the int8 scheme of a QDQ file. A file whose contract declares an image input (issue 21) is read as one
instead (``OnnxImageIO``): one float input (B, C, h, w) and one float output (B, C', H, W), any of whose
spatial dimensions may be named (dynamic); ``contract.check_image`` then holds them to the contract.
The limits and checks of the two other modules are re-exported under their old names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgegan_runtime import contract
from edgegan_runtime.contract import MAX_FIXED_BATCH
from edgegan_runtime.errors import BackendUnavailableError, ModelFileError
from edgegan_runtime.onnx_graph import LOOP_OPS, MAX_GRAPHS, MAX_INLINED_NODES, check_structure
from edgegan_runtime.onnx_op_shapes import (
    MAX_DIM,
    MAX_ELEMENTS,
    MAX_GROUP,
    MAX_RANK,
    MAX_WINDOW,
    check_node,
    check_shapes,
)

# ModelProto field number -> wire type (onnx/onnx.proto): 0 varint, 2 length-delimited
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_FLOAT = 1  # TensorProto.FLOAT

__all__ = [
    "LOOP_OPS", "MAX_DIM", "MAX_ELEMENTS", "MAX_GRAPHS", "MAX_GROUP", "MAX_INLINED_NODES", "MAX_RANK", "MAX_WINDOW",
    "OnnxIO", "OnnxImageIO", "check_node", "check_shapes", "check_structure", "int8_scheme", "verify_onnx", "wire_check",
]


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
    label_name: str | None = None  # a second input: a conditional generator's label (issue 20), see check_label_input
    label_dims: tuple = ()  # its dimensions (None for a named, dynamic one) and its element type, last


@dataclass(frozen=True)
class OnnxImageIO:
    """An image-to-image file's input and output (issue 21): dimensions after the batch, None where named."""

    input_name: str
    output_name: str
    batch: int | None  # fixed batch size, or None when the batch dimension is dynamic
    input_dims: tuple  # (C, h, w) in the contract's layout, h and w None when dynamic
    output_dims: tuple
    metadata: dict = field(default_factory=dict)
    int8_scheme: str | None = None
    # A dynamic file's output dims inferred (ONNX shape inference) for an input of its contract's size, or None
    # where that cannot be told: how the runtime checks the contract's scale against a graph with named sizes.
    inferred_output: tuple | None = None


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
        meta = _metadata(model)
        if contract.is_image(contract.parse(meta.get(contract.METADATA_NAME), name), name):
            return _image_io(model, name, meta)
        return _io(model, name)
    except ModelFileError:
        raise
    except Exception as e:  # noqa: BLE001 - a field of a form no check above expected: still a refusal, typed
        raise ModelFileError(f"{name}: invalid ONNX model ({type(e).__name__}: {_one_line(e)})") from None


def _dims(value_info) -> list[int | None]:
    t = value_info.type.tensor_type
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _io(model, name: str) -> OnnxIO:
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) not in (1, 2) or len(g.output) != 1:
        raise ModelFileError(
            f"{name}: model has {len(inputs)} inputs and {len(g.output)} outputs; an edgegan generator has one of each"
        )
    i, o = inputs[0], g.output[0]
    label = inputs[1] if len(inputs) == 2 else None
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
    meta = _metadata(model)
    return OnnxIO(i.name, o.name, batch, int(idims[1]), (int(odims[1]), int(odims[2]), int(odims[3])), meta,
                  int8_scheme(model), tuple(int(d) for d in idims[1:]), None if label is None else label.name,
                  (*_dims(label), label.type.tensor_type.elem_type) if label is not None else ())


def _metadata(model) -> dict:
    meta = {}
    for p in model.metadata_props:  # a string field with invalid UTF-8 comes back as bytes
        key = p.key if isinstance(p.key, str) else p.key.decode("utf-8", "replace")
        meta.setdefault(key, p.value if isinstance(p.value, bytes) else p.value.encode("utf-8"))
    return meta


def _image_io(model, name: str, meta: dict) -> OnnxImageIO:
    """One float input (B, C, h, w) and one float output (B, C', H, W) (in the contract's layout), channels
    fixed, spatial sizes fixed or named; the batch as a latent file's."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise ModelFileError(f"{name}: model has {len(inputs)} inputs and {len(g.output)} outputs; an image-to-image "
                             "generator has one of each")
    i, o = inputs[0], g.output[0]
    if i.type.tensor_type.elem_type != _FLOAT or o.type.tensor_type.elem_type != _FLOAT:
        raise ModelFileError(f"{name}: generator input and output must be float32")
    idims, odims = _dims(i), _dims(o)
    if len(idims) != 4 or len(odims) != 4 or any(d is not None and d < 1 for d in idims + odims):
        raise ModelFileError(f"{name}: expected image input and output of rank 4 with sizes >= 1, got {idims} -> {odims}")
    batch = idims[0] if idims[0] else None
    if batch is not None and not 1 <= batch <= MAX_FIXED_BATCH:
        raise ModelFileError(
            f"{name}: input batch size {batch}; expected 1 to {MAX_FIXED_BATCH} or a named (dynamic) dimension"
        )
    if batch is not None and odims[0] is not None and odims[0] != batch:
        raise ModelFileError(f"{name}: input batch size {batch} but output batch size {odims[0]}")
    return OnnxImageIO(i.name, o.name, batch, tuple(idims[1:]), tuple(odims[1:]), meta, int8_scheme(model),
                       _output_at_size(model, meta, idims) if None in idims[1:] else None)


def _output_at_size(model, meta: dict, idims: list) -> tuple | None:
    """The output dims (after the batch) ONNX shape inference gives for the input at the contract's ``size``
    (the named dimensions fixed), None where the contract has no usable size or inference cannot tell."""
    import onnx

    try:
        c = contract.parse(meta.get(contract.METADATA_NAME), "")
        h, w = c["input"]["size"]
        layout = c["input"]["layout"]
        fixed = [idims[1], h, w] if layout == "NCHW" else [h, w, idims[3]]
        if not all(isinstance(v, int) and 1 <= v <= MAX_DIM for v in fixed):
            return None
        m = onnx.ModelProto()
        m.CopyFrom(model)
        inits = {t.name for t in m.graph.initializer}
        first = next(i for i in m.graph.input if i.name not in inits)
        dims = first.type.tensor_type.shape.dim
        for d, v in zip(list(dims)[1:], fixed):
            d.Clear()
            d.dim_value = v
        m.graph.output[0].type.tensor_type.ClearField("shape")
        del m.graph.value_info[:]  # the exporter's, with the named sizes
        got = onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False).graph.output[0]
        out = [d.dim_value if d.HasField("dim_value") else None for d in got.type.tensor_type.shape.dim]
    except Exception:  # noqa: BLE001 - inference that cannot finish proves nothing here
        return None
    return tuple(out[1:]) if len(out) == 4 and None not in out[1:] else None


def check_label_input(io: OnnxIO, name: str) -> int:
    """K of a conditional generator's label input: float32 (B, K), with z's batch dimension (issue 20)."""
    *dims, elem = io.label_dims
    if elem != _FLOAT or len(dims) != 2 or dims[1] is None or dims[1] < 1 or (dims[0] or None) != io.batch:
        shown = ["B" if d is None else d for d in dims]
        raise ModelFileError(f"{name}: label input {io.label_name!r} is {shown} (type {elem}); expected a float32 "
                             f"one-hot (B, K) with z's batch dimension")
    return int(dims[1])


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
