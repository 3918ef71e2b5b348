"""The per-layer view of a TFLite file (issue #22): its operators in execution order with the PyTorch
modules they compute (``ops_of``, ``scopes``), every intermediate tensor of a run (``all_tensors``), and the
float-vs-quantized layer report the exporter records and its broken-channel check reads (``report``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from edgegan.errors import ExportError


def scopes(model: bytes, layers: tuple[str, ...]) -> list[str]:
    """The scopes (in every signature) of the operators that compute the named PyTorch modules."""
    from edgegan.export import quant_report
    from edgegan.export.litert_adapter import _signature_keys

    m = None
    out: list[str] = []
    if not layers:
        return out
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfu

    m = tfu.read_model(bytearray(model))
    for key in _signature_keys(m):
        for o in ops_of(model, key):
            if set(quant_report.modules_of(o.scope)) & set(layers):
                out.append(o.scope)
    if not out:
        raise ExportError(f"no operator of the file computes {', '.join(layers)}")
    return out


def report(float_model: bytes, quant_model: bytes, batches: tuple[int, ...], z: np.ndarray | None,
            kept: tuple[str, ...]) -> dict[str, Any]:
    """Per-layer error of ``quant_model`` against ``float_model`` on the calibration latents ``z``, run
    through the largest signature whose batch divides their count (batch 1 always does)."""
    from edgegan.export import quant_report
    from edgegan.export.litert_adapter import _quiet, signature_key

    b = max(x for x in batches if len(z) % x == 0)
    key = signature_key(b)
    chunks = [z[i:i + b] for i in range(0, len(z), b)]
    with _quiet(False):
        return quant_report.layer_report(ops_of(quant_model, key), all_tensors(float_model, key, chunks),
                                         all_tensors(quant_model, key, chunks), kept=kept, latents=len(z))


@dataclass(frozen=True)
class OpInfo:
    """One operator of a signature's subgraph, in execution order."""

    index: int
    op: str  # TFLite builtin name, e.g. TRANSPOSE_CONV
    scope: str  # the names of its output tensors, as ai-edge-quantizer's recipes match them
    output: str  # its first output tensor
    input: str | None  # its first non-constant input tensor
    step: float | None = None  # its output's quantization step (the largest scale), None in float


def ops_of(model: bytes, key: str) -> list[OpInfo]:
    """The operators behind signature ``key`` of a flatbuffer."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfu

    m = tfu.read_model(bytearray(model))
    for sd in m.signatureDefs or []:
        k = sd.signatureKey.decode() if isinstance(sd.signatureKey, bytes) else sd.signatureKey
        if k != key:
            continue
        sg = m.subgraphs[sd.subgraphIndex]
        out = []
        for i, op in enumerate(sg.operators):
            code = m.operatorCodes[op.opcodeIndex].builtinCode
            name = tfu.TFL_OP_CODE_TO_NAME.get(code, f"op{code}")
            outs = [_tname(sg.tensors[t]) for t in op.outputs if t >= 0]
            ins = [_tname(sg.tensors[t]) for t in op.inputs
                   if t >= 0 and (sg.tensors[t].buffer == 0 or m.buffers[sg.tensors[t].buffer].data is None)]
            out.append(OpInfo(i, str(getattr(name, "value", name)), tfu.get_op_scope(op, sg.tensors),
                              outs[0] if outs else "", ins[0] if ins else None,
                              _step(sg.tensors[op.outputs[0]]) if len(op.outputs) and op.outputs[0] >= 0 else None))
        return out
    raise ExportError(f"flatbuffer has no signature {key!r}")


def _step(t: Any) -> float | None:
    q = getattr(t, "quantization", None)
    scale = getattr(q, "scale", None) if q is not None else None
    return float(np.max(scale)) if scale is not None and len(scale) else None


def _tname(t: Any) -> str:
    return t.name.decode() if isinstance(t.name, bytes) else str(t.name)


def all_tensors(model: bytes, key: str, inputs: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """For each input batch, every named tensor of signature ``key`` dequantized to float32 (the
    quantizer's own interpreter helpers; builtin kernels, so no delegate hides an intermediate)."""
    from ai_edge_quantizer.utils import tfl_interpreter_utils as tiu

    from edgegan.export import labels

    interp = tiu.create_tfl_interpreter(model, use_xnnpack=False, num_threads=1, preserve_all_tensors=True)
    sg = tiu.get_signature_main_subgraph_index(interp, key)
    details = tiu.get_tensor_name_to_details_map(interp, sg)
    names = labels.tflite_inputs(interp, key)  # z, and a conditional generator's label (rows z ++ one-hot)
    for z in inputs:
        tiu.invoke_interpreter_signature(interp, labels.feed(names, z), key)
        yield {n: np.asarray(tiu.get_tensor_data(interp, d, sg), dtype=np.float32) for n, d in details.items()
               if np.dtype(d["dtype"]) != np.object_ and all(d["shape"])}
