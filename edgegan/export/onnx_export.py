"""ONNX export: torch.onnx's dynamo exporter (onnxscript), a dynamic batch axis, then fp16 or int8.

* The exporter already runs onnxscript's optimizer (constant folding, dead-code removal); onnxsim
  (in the ``export`` extra) runs afterwards on every export, checked by its own comparison, and its
  graph is kept when it removes nodes. Its version, node counts and status go in the manifest.
* fp16 stores every float weight as float16 behind a ``Cast`` to float32, so the file halves while
  inputs, outputs and arithmetic stay float32 (onnxruntime's CPU kernels have few fp16 ops) — the
  same trade as TFLite's fp16.
* int8 is onnxruntime's static QDQ quantization (per-channel uint8 weights, uint8 activations,
  MinMax ranges over the calibration latents): the U8U8 recipe, ``INT8_RECIPE``. Not U8S8 (int8
  weights), onnxruntime's default: on x86 CPUs without VNNI its U8S8 kernels multiply with
  ``vpmaddubsw``, whose 16-bit pair sums saturate, so the same file was accurate on an AVX-512/VNNI
  CPU and 12 dB off on an AVX2-only one (issue #8). U8U8 kernels widen to 32 bits first and run the
  file's arithmetic exactly on every CPU; the exporter checks that by comparing the fused kernels
  with the QDQ graph simulated in float (``qdq_reference``). onnxruntime has no int8 ConvTranspose
  kernel and runs it in float between the DequantizeLinear/QuantizeLinear pairs (measured): the file
  shrinks, inference does not get faster. The manifest entry says so.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from edgegan.errors import ExportError
from edgegan.export import labels

log = logging.getLogger(__name__)

INPUT_NAME = "z"
OUTPUT_NAME = "images"
MAX_BATCH = 1 << 16
ONNXSIM_CHECKS = 3  # random inputs on which onnxsim compares its graph with the exporter's
INT8_NOTE = ("int8 ONNX is smaller, not faster: onnxruntime runs ConvTranspose in float between "
             "QDQ nodes (no int8 kernel)")
INT8_RECIPE = "onnxruntime quantize_static QDQ U8U8 (per-channel uint8 weights, uint8 activations, MinMax)"
INT8_RECIPE_WHY = ("uint8 weights (U8U8), not int8 (U8S8): on x86 CPUs without VNNI, onnxruntime's U8S8 kernels "
                   "saturate 16-bit sums (vpmaddubsw) and the same file came out 12 dB worse on an AVX2-only CPU; "
                   "U8U8 kernels compute the file's arithmetic exactly on x86 (AVX2, AVX-512, VNNI) and aarch64")


@dataclass
class OnnxResult:
    data: bytes
    opset: int
    optimizer: list[str]
    recipe: str | None = None
    recipe_why: str | None = None
    notes: list[str] = field(default_factory=list)
    onnxsim: dict[str, Any] = field(default_factory=dict)  # see _try_onnxsim
    layers: dict[str, Any] | None = None  # layer_report of an int8 file, when asked for


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except Exception as e:
        raise ExportError(f"ONNX export needs {name} ({type(e).__name__}: {e}); "
                          "pip install 'edgegan[export]'") from None


def versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "onnx", "onnxscript", "onnxruntime", "onnxsim"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


class _ToDebug(logging.Filter):
    """Known, harmless exporter notices (torchvision ops it skips; onnxruntime's quantizer advice that
    we already follow) go to this module's DEBUG log instead of the user's console."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "torchvision is not installed" in msg or "onnxruntime" in record.pathname:
            log.debug("%s: %s", record.name, msg)
            return False
        return True


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    filt = _ToDebug()
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx._internal.exporter._registration")]
    for lg in loggers:
        lg.addFilter(filt)
    try:
        with warnings.catch_warnings():
            # torch's pytree deprecation notice, raised inside torch.export.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(filt)


def to_onnx(module: torch.nn.Module, latent_dim: int | None, *,
            progress: bool = False, image: Any = None) -> tuple[Any, list[str], dict[str, Any]]:
    """Float32 ModelProto with input ``z`` (batch, latent_dim) and output ``images``; dynamic batch;
    with the optimizers that ran and onnxsim's record (see ``_try_onnxsim``). ``image``: an image-to-image
    generator's ``images.ImageInput`` (issue 21): input ``image`` (batch, C, h, w), h and w dynamic too."""
    onnx = _import("onnx")
    _import("onnxscript")
    if image is None:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        args = labels.sample_inputs(module, 2, latent_dim)  # batch 2: a batch of 1 can be specialised away
        names = list(labels.INPUT_NAMES[:len(args)])  # z, and a conditional generator's one-hot label (issue 20)
        dynamic = {n: {0: batch} for n in names}
    else:
        args, dynamic = image.sample(2), image.dynamic_shapes()
        names = list(dynamic)
    try:
        with _quiet_logs():
            program = torch.onnx.export(module, args, dynamo=True, optimize=True, input_names=names,
                                        output_names=[OUTPUT_NAME], dynamic_shapes=dynamic,
                                        verbose=progress, report=False)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:400]
        raise ExportError(f"torch.onnx (dynamo) could not export the generator: {first}") from e
    model = program.model_proto
    done = ["onnxscript.optimizer (torch.onnx.export optimize=True)"]
    model, sim = _try_onnxsim(model, None if image is None else image.test_shapes())
    if sim["applied"]:
        done.append(f"onnxsim {sim['version']} ({sim['nodes_before']} -> {sim['nodes_after']} nodes)")
    onnx.checker.check_model(model)
    return model, done, sim


def _try_onnxsim(model: Any, shapes: dict[str, list[int]] | None = None) -> tuple[Any, dict[str, Any]]:
    """Run onnxsim (the ``export`` extra installs it) on the exporter's graph; returns the graph to keep
    and the manifest's record of what happened: version, node counts before and after, and a status.

    onnxsim's own check (``check_n``: the simplified and original graphs run by onnxruntime on random
    inputs) must pass, or the exporter's graph is kept and the record says so: a failure of onnxsim is
    never silent, and never the export's (the parity check against PyTorch still follows)."""
    before = len(model.graph.node)
    rec: dict[str, Any] = {"version": None, "nodes_before": before, "nodes_after": before, "applied": False}
    try:
        import onnxsim
    except Exception as e:  # noqa: BLE001 - ImportError, or a native library that does not load
        rec.update(status="not-installed", error=f"{type(e).__name__}: {e}; pip install 'edgegan[export]'")
        log.warning("onnxsim is not installed (%s); the ONNX file is not simplified", e)
        return model, rec
    rec["version"] = versions().get("onnxsim")
    # Its check runs batch 2 (not 1: a dynamic batch is what the file promises); its progress prints go to DEBUG.
    shapes = shapes or {name: [2, width] for name, width in labels.onnx_inputs(model)}
    out = io.StringIO()
    try:
        with _quiet_logs(), contextlib.redirect_stdout(out):
            simplified, ok = onnxsim.simplify(model, check_n=ONNXSIM_CHECKS, test_input_shapes=shapes)
    except Exception as e:  # noqa: BLE001 - onnxsim's failure is recorded, the exporter's graph kept
        rec.update(status="failed", error=f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
        log.warning("onnxsim failed (%s); keeping the exporter's graph", rec["error"])
        return model, rec
    finally:
        if out.getvalue().strip():
            log.debug("onnxsim: %s", out.getvalue().strip())
    if not ok:
        rec.update(status="check-failed",
                   error=f"onnxsim's simplified graph did not reproduce the original on {ONNXSIM_CHECKS} random inputs")
        log.warning("%s; keeping the exporter's graph", rec["error"])
        return model, rec
    after = len(simplified.graph.node)
    if after < before:
        rec.update(status="applied", nodes_after=after, applied=True)
        return simplified, rec
    rec.update(status="no-change", nodes_after=after)
    return model, rec


def opset_of(model: Any) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    raise ExportError("exported ONNX model has no default-domain opset")


def fp16_weights(model: Any) -> Any:
    """Every float32 initializer stored as float16, cast back to float32 where it is used."""
    onnx = _import("onnx")
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    casts, inits = [], []
    for init in g.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            inits.append(init)
            continue
        arr = numpy_helper.to_array(init)
        half = arr.astype(np.float16)
        if not np.all(np.isfinite(half)):
            raise ExportError(f"weight {init.name!r} overflows float16 (max |w| = {np.abs(arr).max():.3g})")
        name = f"{init.name}__fp16"
        inits.append(numpy_helper.from_array(half, name))
        casts.append(helper.make_node("Cast", [name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{init.name}__cast"))
    del g.initializer[:]
    g.initializer.extend(inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(out)
    return out


class _Reader:
    """onnxruntime CalibrationDataReader over fixed latents (rows z ++ one-hot: ``labels.feed``), in batches."""

    def __init__(self, z: np.ndarray, batch: int, inputs: list[tuple[str, int]]):
        self._it = iter([labels.feed(inputs, z[i:i + batch]) for i in range(0, len(z), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - only used by some calibration methods
        raise NotImplementedError


def int8_qdq(model: Any, calibration: np.ndarray, batch: int) -> tuple[Any, str]:
    """onnxruntime static QDQ quantization calibrated on ``calibration`` latents."""
    onnx = _import("onnx")
    q = _import("onnxruntime.quantization")
    with tempfile.TemporaryDirectory(prefix="edgegan-onnx-") as tmp:
        src, pre, dst = Path(tmp, "float.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        onnx.save(model, src)
        try:
            with _quiet_logs():
                # Shape inference + graph cleanup that quantize_static asks for.
                q.shape_inference.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception as e:
            log.info("onnxruntime quant_pre_process failed (%s); quantizing the exported graph", e)
            pre = src
        try:
            with _quiet_logs():
                q.quantize_static(str(pre), str(dst), _Reader(calibration, batch, labels.onnx_inputs(model)),
                                  quant_format=q.QuantFormat.QDQ, per_channel=True,
                                  activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QUInt8,
                                  calibrate_method=q.CalibrationMethod.MinMax)
        except Exception as e:
            raise ExportError(f"onnxruntime static quantization failed: {type(e).__name__}: {e}") from e
        out = onnx.load(str(dst))
    return out, INT8_RECIPE


@dataclass(frozen=True)
class OnnxOp:
    """A node of the float graph, as ``quant_report.layer_report`` reads operators."""

    index: int
    op: str
    scope: str
    output: str  # the float graph's tensor
    input: str | None
    layer: str  # the PyTorch module whose weights it takes (net.9), else its op and output
    module: bool
    step: float | None  # the quantized tensor's scale
    quantized: str = ""  # the same value in the QDQ graph: X_DequantizeLinear_Output where X is quantized


def _run_all(model: Any, names: list[str], chunks: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """``model`` run on each chunk with ``names`` kept as extra outputs; graph optimizations off, so a QDQ
    graph runs its own float arithmetic (as ``qdq_reference``) and no fused kernel hides a tensor."""
    onnx, ort = _import("onnx"), _import("onnxruntime")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs, ins = [o.name for o in sess.get_outputs()], labels.session_inputs(sess)
    for z in chunks:
        yield dict(zip(outs, (np.asarray(v, dtype=np.float32) for v in sess.run(None, labels.feed(ins, z)))))


def layer_report(float_model: Any, quant_model: Any, calibration: np.ndarray, batch: int) -> dict[str, Any]:
    """Per-layer error of a QDQ int8 graph against its float graph on the calibration latents (issue #22):
    each float node's output against the value the quantized graph passes on (its DequantizeLinear
    output: rounding, clipping and the folded Relu included), NCHW channels. Layers are named by the
    PyTorch module whose weights the node takes (``generator.net.9.weight`` -> ``net.9``)."""
    from edgegan.export import quant_report

    qnames = {o for n in quant_model.graph.node for o in n.output}
    scales = {i.name: float(np.max(_import("onnx").numpy_helper.to_array(i))) for i in quant_model.graph.initializer
              if i.name.endswith("_scale")}
    inits = {i.name for i in float_model.graph.initializer}
    outputs = {o.name for o in float_model.graph.output}
    graph_inputs = {i.name for i in float_model.graph.input}
    ops = []
    unseen: dict[str, str] = {}  # output -> module of a weighted node the QDQ graph fused away (Conv + Relu)
    for i, node in enumerate(float_model.graph.node):
        if node.op_type == "Constant" or not node.output:
            continue
        x = node.output[0]
        ins = [n for n in node.input if n and n not in inits]
        mod = next((n[len("generator."):-len(".weight")] for n in node.input
                    if n in inits and n.startswith("generator.") and n.endswith(".weight")), None)
        if mod is None and ins and ins[0] in unseen:
            # The Relu that carries a fused layer's output: that layer's value, measured from its input.
            mod, ins = unseen[ins[0]][0], [unseen[ins[0]][1], *ins[1:]]
        q = f"{x}_DequantizeLinear_Output" if f"{x}_DequantizeLinear_Output" in qnames else x
        if q not in qnames:
            if mod is not None:
                unseen[x] = (mod, ins[0] if ins else "")
            continue
        layer = mod or ("output" if x in outputs else "input" if ins and ins[0] in graph_inputs
                        else f"{node.op_type.lower()}:{x}")
        ops.append(OnnxOp(i, node.op_type, node.name, x, ins[0] if ins else None, layer, mod is not None,
                          scales.get(f"{x}_scale"), q))
    chunks = [np.ascontiguousarray(calibration[k:k + batch], dtype=np.float32) for k in range(0, len(calibration), batch)]
    rename = {o.quantized: o.output for o in ops}

    def quant_runs():
        for r in _run_all(quant_model, [o.quantized for o in ops], chunks):
            yield {rename.get(k, k): v for k, v in r.items()}

    return quant_report.layer_report(
        ops, _run_all(float_model, [o.output for o in ops], chunks), quant_runs(), latents=len(calibration),
        channel_axis=1, reference="the float32 graph, same latents (every node's output; the int8 graph's "
                                  "dequantized values, onnxruntime with graph optimizations off)")


def qdq_reference(data: bytes) -> Any:
    """The file's own arithmetic, independent of this CPU's integer kernels: onnxruntime with graph
    optimizations off runs every DequantizeLinear -> op -> QuantizeLinear in float, so a fused integer
    kernel that saturates (U8S8 on x86 without VNNI) shows up as a difference. Returns z -> images."""
    ort = _import("onnxruntime")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    ins = labels.session_inputs(sess)

    def run(z: np.ndarray) -> np.ndarray:  # z, or rows z ++ one-hot
        return sess.run(None, labels.feed(ins, np.ascontiguousarray(z, dtype=np.float32)))[0]

    return run


def strip_provenance(model) -> None:
    """Drop the exporter's per-node provenance (Python stack traces with the exporting machine's
    absolute source paths, FX node names): it leaks the user's file layout into a shipped file and
    makes the bytes depend on where the code lives. Only metadata; the graph is untouched."""
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        for node in g.node:
            if hasattr(node, "metadata_props"):  # onnx >= 1.16
                del node.metadata_props[:]
            node.doc_string = ""
            graphs += [a.g for a in node.attribute if a.HasField("g")] + [sg for a in node.attribute for sg in a.graphs]
        for v in list(g.value_info) + list(g.input) + list(g.output):
            if hasattr(v, "metadata_props"):
                del v.metadata_props[:]


def export_onnx(module: torch.nn.Module, *, latent_dim: int | None, precision: str, calibration: np.ndarray | None,
                calibration_batch: int, progress: bool = False, metadata: dict[str, str] | None = None,
                report: bool = False, image: Any = None) -> OnnxResult:
    """The whole ONNX path for a prepared module; ``metadata`` goes into the file's metadata_props.
    ``report``: the int8 graph's per-layer error against the float graph (``layer_report``). ``image``: see
    ``to_onnx``."""
    model, optimizer, sim = to_onnx(module, latent_dim, progress=progress, image=image)
    recipe, why, notes, layers = None, None, [], None
    if precision == "fp16":
        model = fp16_weights(model)
        recipe = "float16 initializers + Cast to float32"
    elif precision == "int8":
        if calibration is None:
            raise ExportError("ONNX int8 needs calibration latents")
        float_model = model
        model, recipe = int8_qdq(model, calibration, calibration_batch)
        if report:
            layers = layer_report(float_model, model, calibration, calibration_batch)
        why = INT8_RECIPE_WHY
        notes.append(INT8_NOTE)
    elif precision != "fp32":
        raise ExportError(f"no ONNX path for precision {precision!r}")
    strip_provenance(model)
    meta = {**(metadata or {}), "edgegan.precision": precision}
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return OnnxResult(data=model.SerializeToString(), opset=opset_of(model), optimizer=optimizer,
                      recipe=recipe, recipe_why=why, notes=notes, onnxsim=sim, layers=layers)
