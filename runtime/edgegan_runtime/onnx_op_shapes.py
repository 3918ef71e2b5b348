"""ONNX per-operator shape rules, and the size limits every tensor of a checked file keeps to.

``onnx.checker`` accepts files that crash ONNX Runtime (a ConvTranspose with group=0 dies of SIGFPE
at load, issue 14), so two rules run around it:

- ``check_node`` (before the checker, from ``onnx_graph.check_structure``): the attributes native
  kernels divide by or allocate from (group, strides, dilations, pads, kernel_shape, output_padding,
  output_shape of convolutions and pooling) in range, and a convolution's weight against them;
- ``check_shapes`` (after it): ONNX's own shape inference, refusing a convolution fed the wrong
  number of channels and any activation larger than MAX_ELEMENTS per image.

Pure Python over the parsed proto; ``check_shapes`` imports ``onnx`` when it runs.
"""

from __future__ import annotations

from edgegan_runtime.errors import ModelFileError

# Structural limits, checked before any native code (onnx.checker included) sees the graph.
MAX_RANK = 8
MAX_DIM = 1 << 24  # one dimension of a declared shape or an initializer
MAX_ELEMENTS = 1 << 31  # one tensor (initializer or inferred activation, per image for a dynamic batch)
MAX_WINDOW = 4096  # kernel size, stride, dilation, pad of a convolution or pooling
MAX_GROUP = 1 << 16
# Convolution-like operators: (index of the weight input, weight layout "oihw" (Conv) or "iohw" (ConvTranspose))
_CONV_WEIGHT = {"Conv": (1, "oihw"), "ConvInteger": (1, "oihw"), "QLinearConv": (3, "oihw"),
                "ConvTranspose": (1, "iohw"), "FusedConv": (1, "oihw"), "NhwcConv": (1, "oihw")}
_WINDOWED = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "FusedConv", "NhwcConv", "MaxPool",
             "AveragePool", "LpPool", "MaxRoiPool", "MaxUnpool", "QLinearAveragePool", "DeformConv"}


def check_node(node, name: str, label: str, shapes: dict) -> None:
    """Attributes native kernels divide by or allocate from: group, strides, dilations, pads,
    kernel_shape, output_padding and output_shape of convolutions and pooling, and a convolution's
    weight (an initializer, or a DequantizeLinear of one; ``shapes``: tensor name -> dims) against them."""
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
