"""Conditional (class-label) generators through export (issue 20).

A conditional file has two inputs, z float32 (B, L) and the label as a float32 one-hot (B, K), in that
order (ONNX names them ``z`` and ``label``; litert-torch names a signature's inputs ``args_0`` and
``args_1``), and its contract has a ``label`` entry (``edgegan_runtime.contract``).

**The one-hot stays exact in int8.** The generator concatenates the one-hot to z before its first layer
(``edgegan.models.conditional``). Converted as it is, an int8 file requantizes the one-hot to z's scale
before the concatenation (TFLite's int8 CONCATENATION takes one scale for all its inputs; ONNX's QDQ
quantizer quantizes the concatenated tensor once): with ai-edge-quantizer 0.10 on a d=2 student, 1
became 35 steps of 0.0283 = 0.9905. So the exported module computes that first layer as two (exact in
real arithmetic): ``ConvT(z ++ onehot) = ConvT_z(z) + ConvT_label(onehot)`` (``LabelledToImage``). The
one-hot then reaches a convolution of its own straight from the input, whose int8 quantization
(calibrated on one-hots: scale 1/255, zero point -128; uint8 in ONNX: 1/255 and 0) holds 0 and 1 exactly;
``check_label_path`` proves it on every file, and refuses one where it does not hold.

Inside the exporter a batch of a conditional generator's inputs travels as one array of rows
``z ++ one-hot`` (N, L + K), what its first layer sees: calibration sets and parity references keep
their (N, width) shape, and ``feed`` splits the rows into the file's inputs by their widths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgegan.errors import ExportError

INPUT_NAMES = ("z", "label")  # ONNX input names, in the contract's order
# Parity is checked on every class up to this many, else on this many evenly spaced ones (first and last included).
PARITY_CLASSES = 16


@dataclass(frozen=True)
class Labels:
    """The classes of a conditional generator: ``count`` (K) and their names (or None)."""

    count: int
    names: tuple[str, ...] | None = None

    def contract(self) -> dict[str, Any]:
        from edgegan_runtime import contract

        return contract.label_entry(self.count, None if self.names is None else list(self.names))

    def record(self) -> dict[str, Any]:
        """The manifest's ``classes`` (as the run's ``model.classes``)."""
        return {"count": self.count, "names": None if self.names is None else list(self.names)}


def of(module: nn.Module, names: Sequence[str] | None = None) -> Labels | None:
    """The classes of ``module`` (its ``num_classes``), None when it is unconditional."""
    k = getattr(module, "num_classes", None)
    if not k:
        return None
    if names is not None and len(names) != k:
        raise ExportError(f"{len(names)} class names for a generator of {k} classes")
    return Labels(int(k), None if names is None else tuple(str(n) for n in names))


def sample_inputs(module: nn.Module, batch: int, latent_dim: int) -> tuple[torch.Tensor, ...]:
    """Zeros to trace ``module`` with: (z,), or (z, one-hot) for a conditional module."""
    k = getattr(module, "num_classes", None)
    z = torch.zeros(batch, latent_dim, dtype=torch.float32)
    return (z,) if not k else (z, torch.zeros(batch, k, dtype=torch.float32))


def torch_inputs(rows: np.ndarray, latent_dim: int, labels: Labels | None) -> tuple[torch.Tensor, ...]:
    """A module's inputs from rows (z, or z ++ one-hot)."""
    x = torch.from_numpy(np.ascontiguousarray(rows))
    return (x,) if labels is None else (x[:, :latent_dim], x[:, latent_dim:])


def rows(z: np.ndarray, classes: np.ndarray | None, labels: Labels | None) -> np.ndarray:
    """z ++ the one-hot of ``classes`` (``edgegan_runtime.one_hot``, what the runtime feeds); z alone
    for an unconditional generator."""
    if labels is None:
        return z
    from edgegan_runtime import one_hot

    return np.concatenate([z, one_hot(classes, labels.count)], axis=1)


def feed(inputs: Sequence[tuple[str, int]], x: np.ndarray) -> dict[str, np.ndarray]:
    """A file's inputs ``[(name, width), ...]`` (in order) from rows ``x``: {name: its columns}; one input
    takes the rows themselves."""
    if len(inputs) == 1:
        return {inputs[0][0]: x}
    out, at = {}, 0
    for name, width in inputs:
        out[name] = np.ascontiguousarray(x[:, at:at + width])
        at += width
    if at != x.shape[1]:
        raise ExportError(f"rows of width {x.shape[1]} for inputs {list(inputs)}")
    return out


def onnx_inputs(model: Any) -> list[tuple[str, int]]:
    """(name, width) of an ONNX ModelProto's inputs, in order."""
    inits = {t.name for t in model.graph.initializer}
    return [(i.name, int(i.type.tensor_type.shape.dim[1].dim_value)) for i in model.graph.input if i.name not in inits]


def session_inputs(session: Any) -> list[tuple[str, int]]:
    """(name, width) of an onnxruntime session's inputs, in order."""
    return [(i.name, int(i.shape[1])) for i in session.get_inputs()]


def tflite_inputs(interpreter: Any, key: str) -> list[tuple[str, int]]:
    """(name, width) of a LiteRT interpreter's signature ``key``, in the signature's order."""
    sig = interpreter.get_signature_list()
    if key not in sig:
        raise ExportError(f"model has no signature {key!r} (has {sorted(sig)})")
    details = interpreter.get_signature_runner(key).get_input_details()
    return [(name, int(details[name]["shape"][1])) for name in sig[key]["inputs"]]


def calibration(z: np.ndarray, labels: Labels | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibration rows for latents ``z`` and what to add to their record: uniform classes, each used
    ``len(z) // K`` or one more times, in an order shuffled by ``seed`` (so every batch mixes them)."""
    if labels is None:
        return z, {}
    classes = np.random.default_rng(seed).permutation(np.arange(len(z)) % labels.count)
    return rows(z, classes, labels), {"labels": f"uniform over the {labels.count} classes (each {len(z) // labels.count} "
                                                f"or {len(z) // labels.count + 1} times), shuffled by numpy "
                                                f"default_rng(seed)"}


def parity_classes(k: int) -> list[int]:
    """The classes parity is checked on: all of them up to ``PARITY_CLASSES``, else that many evenly spaced."""
    if k <= PARITY_CLASSES:
        return list(range(k))
    return sorted({int(round(i * (k - 1) / (PARITY_CLASSES - 1))) for i in range(PARITY_CLASSES)})


def parity_rule(k: int) -> str:
    return "every class" if k <= PARITY_CLASSES else \
        f"{len(parity_classes(k))} of {k} classes, evenly spaced (first and last included)"


# ------------------------------------------------------------------------------ the exported module

class LabelInput(nn.Module):
    """A conditional generator's first layer, ``ConvTranspose2d(L + K, C)`` on z ++ one-hot, as the sum of
    two: ``z`` (its first L input channels, and its bias) and ``label`` (the last K, no bias).
    ``LabelledToImage`` calls ``first``; the generator, which then gets their sum, calls it as its
    first layer, and it passes the sum on."""

    def __init__(self, conv: nn.ConvTranspose2d, latent_dim: int):
        super().__init__()
        args = dict(kernel_size=conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    output_padding=conv.output_padding, groups=conv.groups, dilation=conv.dilation)
        self.z = nn.ConvTranspose2d(latent_dim, conv.out_channels, bias=conv.bias is not None, **args)
        self.label = nn.ConvTranspose2d(conv.in_channels - latent_dim, conv.out_channels, bias=False, **args)
        with torch.no_grad():
            self.z.weight.copy_(conv.weight[:latent_dim])
            self.label.weight.copy_(conv.weight[latent_dim:])
            if conv.bias is not None:
                self.z.bias.copy_(conv.bias)

    def first(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.z(z[:, :, None, None]) + self.label(onehot[:, :, None, None])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h


class LabelledToImage(nn.Module):
    """The conditional file contract: float32 z (B, L) and one-hot (B, K) → float32 images (B, C, H, W).

    Takes a generator of a conditional family (``args.num_classes``, ``net[0]`` a ConvTranspose2d of
    L + K input channels on z ++ one-hot as (B, L + K, 1, 1): ``models.conditional.with_label``) and owns
    it: its first layer becomes a ``LabelInput`` and its ``args`` unconditional, so its own forward
    (including any crop after ``net``) runs on the first layer's output."""

    def __init__(self, generator: nn.Module, latent_dim: int):
        super().__init__()
        args = getattr(generator, "args", None)
        k = getattr(args, "num_classes", None)
        net = getattr(generator, "net", None)
        conv = net[0] if isinstance(net, nn.Sequential) and len(net) else None
        if not k or not isinstance(conv, nn.ConvTranspose2d) or conv.in_channels != latent_dim + k \
                or not dataclasses.is_dataclass(args):
            raise ExportError(f"{type(generator).__name__}: a conditional generator is exported when its first layer "
                              "(net[0]) is a ConvTranspose2d on z ++ one-hot; this one is not")
        net[0] = LabelInput(conv, latent_dim)
        generator.args = dataclasses.replace(args, num_classes=None)
        self.generator = generator
        self.num_classes = int(k)

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.generator(self.generator.net[0].first(z, label)).float()


# ------------------------------------------------------------------------ the label path of a file

_EXACT_DTYPES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def exact(scale: float, zero_point: int, dtype: str) -> bool:
    """Whether a quantized tensor holds 0 and 1 exactly: 0 at the zero point, 1 on a level within range."""
    low, high = _EXACT_DTYPES.get(dtype, (None, None))
    if low is None or not scale > 0 or not low <= zero_point <= high:
        return False
    q1 = int(np.floor(np.float32(1) / np.float32(scale) + np.float32(0.5))) + zero_point
    return q1 <= high and float(np.float32(q1 - zero_point) * np.float32(scale)) == 1.0


_PASS = {"RESHAPE", "PAD", "PADV2", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "CONCATENATION",
         "Reshape", "Pad", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "QuantizeLinear",
         "DequantizeLinear", "Concat", "Cast"}
_WEIGHTED = {"CONV_2D", "TRANSPOSE_CONV", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL",
             "Conv", "ConvTranspose", "Gemm", "MatMul"}


def _walk(start: str, consumers: dict[str, list[tuple[str, list[str]]]], quant: dict[str, tuple], where: str) -> dict:
    """Follow the label from tensor ``start`` through operators that only move or requantize values to the
    first weighted ones; every quantized tensor on the way must hold 0 and 1 exactly. ``consumers``: tensor ->
    [(op type, output tensors)]; ``quant``: tensor -> (scale, zero point, dtype) of quantized tensors.
    Returns the record: the operators passed and reached, and every quantization on the way (``quantized``,
    empty in a float file)."""
    seen, todo, ops, reached = {start}, [start], [], []
    while todo:
        t = todo.pop()
        if t in quant and not exact(*quant[t]):
            s, zp, dtype = quant[t]
            one = float(np.float32(round(1 / s)) * np.float32(s))
            raise ExportError(f"{where}: the class label is requantized to {dtype} scale {s:.6g} zero point {zp} "
                              f"(after {', '.join(ops) or 'the input'}), where 1 becomes {one:.6g}: the label path "
                              "is not exact")
        for op, outs in consumers.get(t, []):
            if op in _WEIGHTED:
                reached.append(op)
                continue
            if op not in _PASS:
                raise ExportError(f"{where}: the class label reaches a {op} before any weighted layer; "
                                  "cannot show its path is exact")
            ops.append(op)
            todo += [o for o in outs if o not in seen]
            seen.update(outs)
    if not reached:
        raise ExportError(f"{where}: the class label reaches no weighted layer")
    levels = sorted({quant[t] for t in seen if t in quant}, key=repr)
    return {"exact": True, "through": sorted(set(ops)), "into": sorted(set(reached)),
            "quantized": [{"dtype": d, "scale": s, "zero_point": zp} for s, zp, d in levels]}


def check_tflite_label(data: bytes) -> dict[str, Any]:
    """The label path of every signature of a TFLite file (see ``_walk``); raises ExportError where it is not
    exact. Returns the first signature's record (the signatures share their quantization)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    m = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    out = None
    for sd in m.signatureDefs or []:
        key = sd.signatureKey.decode() if isinstance(sd.signatureKey, bytes) else sd.signatureKey
        sg = m.subgraphs[sd.subgraphIndex]
        consumers: dict[str, list] = {}
        for op in sg.operators:
            oc = m.operatorCodes[op.opcodeIndex]
            code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
            name = names.get(code, f"operator {code}")
            for t in op.inputs:
                if t >= 0:
                    consumers.setdefault(str(t), []).append((name, [str(o) for o in op.outputs if o >= 0]))
        quant = {}
        for i, t in enumerate(sg.tensors):
            q = t.quantization
            if q is not None and q.scale is not None and len(q.scale) == 1 and t.type in (9, 3, 7):  # int8 uint8 int16
                quant[str(i)] = (float(q.scale[0]), int(q.zeroPoint[0]), {9: "int8", 3: "uint8", 7: "int16"}[t.type])
        label = sd.inputs[1]  # the contract's position
        got = _walk(str(label.tensorIndex), consumers, quant, f"signature {key!r}")
        out = out or {"name": label.name.decode() if isinstance(label.name, bytes) else label.name, **got}
    if out is None:
        raise ExportError("the TFLite file has no signature")
    return out


def check_onnx_label(model: Any) -> dict[str, Any]:
    """The label path of an ONNX ModelProto (see ``_walk``); raises ExportError where it is not exact."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    consumers: dict[str, list] = {}
    quant = {}
    for node in model.graph.node:
        for t in node.input:
            if t and t not in inits:
                consumers.setdefault(t, []).append((node.op_type, list(node.output)))
        if node.op_type == "QuantizeLinear" and len(node.input) >= 2 and node.input[1] in inits:
            scale = float(numpy_helper.to_array(inits[node.input[1]]).reshape(-1)[0])
            zp_t = inits.get(node.input[2]) if len(node.input) > 2 else None
            zp = int(numpy_helper.to_array(zp_t).reshape(-1)[0]) if zp_t is not None else 0
            dtype = {TensorProto.UINT8: "uint8", TensorProto.INT8: "int8", TensorProto.INT16: "int16"}.get(
                zp_t.data_type if zp_t is not None else TensorProto.UINT8, "other")
            quant[node.output[0]] = (scale, zp, dtype)
    return {"name": INPUT_NAMES[1], **_walk(INPUT_NAMES[1], consumers, quant, "the ONNX graph")}
