"""The only module that imports litert-torch and ai-edge-quantizer (renamed before; keep them here).

TFLite files are made in two steps, with no TensorFlow: litert-torch converts the prepared torch
module to a float flatbuffer holding one signature per fixed batch size (``batch_1``, ``batch_64``,
...), then ai-edge-quantizer applies the precision's recipe. Facts measured with litert-torch 0.10 /
ai-edge-quantizer 0.10 that shape this module:

* static int8 needs BatchNorm folded first (done by ``prepare``) or the file does not load;
* static ranges are moving averages over calibration steps, so small batches shrink them:
  calibrate in batches of 64 latents;
* each signature is its own subgraph with its own tensor names, and calibrating each separately
  would give each batch size different scales (the same latent would give different images at
  batch 1 and batch 64). The ranges measured on the batch-64 subgraph are therefore copied to the
  matching tensors of every signature, matched by operator position (a batch-1-only file gets a
  throw-away batch-64 twin for calibration);
* static int8 files take and return int8 tensors; their scale and zero point go into the manifest
  (the runtime reads them from the file as well);
* the quantizer rebuilds the flatbuffer, so the file's own metadata (the ``edgegan.contract`` that
  the ONNX path writes to ``metadata_props``) is added last, by ``add_metadata``, to the final bytes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterator

import numpy as np
import torch

from edgegan.errors import ExportError
from edgegan.export import labels
from edgegan.export.tflite_metadata import SHORT_NAME, add_metadata  # noqa: F401 - SHORT_NAME: where callers look

log = logging.getLogger(__name__)

DISTRIBUTIONS = ("litert-torch", "ai-edge-quantizer", "ai-edge-litert")


@dataclass
class TFLiteResult:
    data: bytes
    recipe: str | None
    signatures: list[dict[str, Any]]
    quantization: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    layers: dict[str, Any] | None = None  # quant_report.layer_report of the file, when asked for


def signature_key(batch: int) -> str:
    return f"batch_{batch}"


def versions() -> dict[str, str]:
    out = {}
    for name in DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _import_litert_torch(progress: bool) -> Any:
    try:
        import litert_torch
    except Exception as e:  # ImportError, or a native library that does not load
        raise ExportError(f"TFLite export needs litert-torch ({type(e).__name__}: {e}); "
                          "pip install 'edgegan[export]'") from None
    litert_torch.config.show_progress = progress  # its progress tree is on by default
    return litert_torch


def _import_quantizer() -> Any:
    try:
        from ai_edge_quantizer import quantizer
    except Exception as e:
        raise ExportError(f"TFLite quantization needs ai-edge-quantizer ({type(e).__name__}: {e}); "
                          "pip install 'edgegan[export]'") from None
    return quantizer


class _ToDebug(logging.Filter):
    """Moves the converters' root-logger chatter (per-buffer notices) to this module's DEBUG log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if any(k in record.pathname for k in ("ai_edge_quantizer", "litert_torch", "ai_edge_litert")):
            log.debug("%s: %s", record.module, record.getMessage())
            return False
        return True


@contextlib.contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """Keep the converters' stdout prints, root-logger notices and debug-mode warnings out of the
    user's console (to this module's DEBUG log) unless progress was asked for."""
    if progress:
        yield
        return
    buf = io.StringIO()
    root, filt = logging.getLogger(), _ToDebug()
    root.addFilter(filt)
    try:
        with contextlib.redirect_stdout(buf), warnings.catch_warnings():
            # The calibrator keeps every intermediate tensor on purpose; LiteRT warns that this is for debugging.
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*", category=UserWarning)
            # torch's pytree deprecation notice, raised inside the converter.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        root.removeFilter(filt)
        if buf.getvalue().strip():
            log.debug("converter output:\n%s", buf.getvalue().rstrip())


def convert(module: torch.nn.Module, latent_dim: int | None, batches: tuple[int, ...], *, progress: bool = False,
            image: Any = None) -> bytes:
    """Float32 flatbuffer with one signature ``batch_<b>`` per batch size (inputs ``args_0``: z, and a
    conditional generator's ``args_1``: its one-hot label, issue 20; an image-to-image generator's
    ``images.ImageInput``, ``image``: ``args_0`` its NHWC images, issue 21)."""
    lt = _import_litert_torch(progress)
    conv = None
    for b in batches:
        sample = labels.sample_inputs(module, b, latent_dim) if image is None else image.sample(b)
        conv = lt.signature(signature_key(b), module, sample) if conv is None else \
            conv.signature(signature_key(b), module, sample)
    try:
        with _quiet(progress):
            return bytes(conv.convert().model_content())
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:400]
        raise ExportError(f"litert-torch could not convert the generator: {first}") from e


# ---------------------------------------------------------------------------------- quantization

def _recipe(precision: str) -> tuple[Any, str]:
    """(ai-edge-quantizer recipe, its name) for one of our precision names."""
    from ai_edge_quantizer import qtyping, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if precision == "fp16":
        rm = recipe_manager.RecipeManager()
        rm.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                  num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        return rm.get_quantization_recipe(), "float_casting weight-only fp16"
    if precision == "dynamic-int8":
        return recipe.dynamic_wi8_afp32(), "dynamic_wi8_afp32"
    if precision == "weight-int8":
        return recipe.weight_only_wi8_afp32(), "weight_only_wi8_afp32"
    if precision == "int8":
        return recipe.static_wi8_ai8(), "static_wi8_ai8"
    if precision == "int16x8":
        return recipe.static_wi8_ai16(), "static_wi8_ai16"
    raise ExportError(f"no ai-edge-quantizer recipe for precision {precision!r}")


# Tests replace this to prove that a recipe producing wrong images is caught by the parity check.
RECIPES = _recipe


def quantize(float_model: bytes, precision: str, *, calibration: np.ndarray | None = None,
             calibration_model: bytes | None = None, calibration_batch: int = 64,
             progress: bool = False, keep_float: list[str] | None = None) -> tuple[bytes, str]:
    """Apply ``precision``'s recipe to a float flatbuffer; returns (bytes, recipe name).

    Static recipes calibrate on ``calibration`` (N, latent) in batches of ``calibration_batch`` run
    through the ``batch_<calibration_batch>`` signature of ``calibration_model`` (default: the float
    model itself), then share the ranges with every signature of the float model.
    """
    quantizer = _import_quantizer()
    rcp, name = RECIPES(precision)
    if keep_float:
        rcp = keep_float_recipe(rcp, keep_float)
    try:
        with _quiet(progress):
            q = quantizer.Quantizer(float_model, rcp)
            qsvs = None
            if q.need_calibration:
                if calibration is None:
                    raise ExportError(f"recipe {name} needs calibration latents")
                qsvs = _calibrate(quantizer, float_model, calibration_model or float_model, rcp, calibration,
                                  calibration_batch)
            result = q.quantize(qsvs, enable_progress_report=False)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"ai-edge-quantizer failed with recipe {name}: {type(e).__name__}: {e}") from e
    return bytes(result.quantized_model), name


# How the per-batch activation ranges of the calibration batches are merged (issue #22):
# "moving-average": ai-edge-quantizer's default (0.95 · old + 0.05 · new, so the first batch dominates);
# "minmax": the extremes over every calibration latent; "mean": the mean of the batches' extremes,
# a percentile-like range that ignores one outlying batch. Chosen by bench/scripts/int8_parity.py.
CALIBRATION_STAT = "moving-average"
CALIBRATION_STATS = ("moving-average", "minmax", "mean")


def _mean_update(qsv: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    if not qsv:
        return {**new, "batches": 1}
    n = qsv.get("batches", 1)
    return {"min": (qsv["min"] * n + new["min"]) / (n + 1), "max": (qsv["max"] * n + new["max"]) / (n + 1),
            "batches": n + 1}


def _calibrate(quantizer: Any, float_model: bytes, calib_model: bytes, rcp: Any, z: np.ndarray,
               batch: int) -> dict[str, Any]:
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    from ai_edge_litert.interpreter import Interpreter

    key = signature_key(batch)
    inputs = labels.tflite_inputs(Interpreter(model_content=calib_model), key)  # z (and a one-hot label)
    data = {key: [labels.feed(inputs, z[i:i + batch]) for i in range(0, len(z), batch)]}
    if CALIBRATION_STAT == "moving-average":
        measured = quantizer.Quantizer(calib_model, rcp).calibrate(data)
    else:
        update = qsv_utils.min_max_update if CALIBRATION_STAT == "minmax" else _mean_update
        rm = recipe_manager.RecipeManager()
        rm.load_quantization_recipe(rcp)
        cal = calibrator.Calibrator(calib_model, qsv_update_func=update)
        cal.calibrate(data, rm)
        measured = {k: {n: v for n, v in q.items() if n != "batches"} for k, q in cal.get_model_qsvs().items()}
    return share_ranges(measured, calib_model, key, float_model)


def _subgraph_tensor_order(model: Any, key: str) -> tuple[list[int], list[str]]:
    """(opcode sequence, tensor names in operator order) of the subgraph behind signature ``key``."""
    for sd in model.signatureDefs or []:
        k = sd.signatureKey.decode() if isinstance(sd.signatureKey, bytes) else sd.signatureKey
        if k == key:
            sg = model.subgraphs[sd.subgraphIndex]
            codes, names = [], []
            for op in sg.operators:
                codes.append(int(op.opcodeIndex))
                for t in list(op.inputs) + list(op.outputs):
                    n = sg.tensors[t].name if t >= 0 else b""
                    names.append(n.decode() if isinstance(n, bytes) else str(n))
            return codes, names
    raise ExportError(f"flatbuffer has no signature {key!r}")


def _signature_keys(model: Any) -> list[str]:
    return [sd.signatureKey.decode() if isinstance(sd.signatureKey, bytes) else sd.signatureKey
            for sd in model.signatureDefs or []]


def share_ranges(measured: dict[str, Any], source_model: bytes, source_key: str, target_model: bytes) -> dict[str, Any]:
    """Copy calibrated ranges of ``source_key``'s tensors onto the same tensors of every target signature."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfu

    src = tfu.read_model(bytearray(source_model))
    dst = src if target_model is source_model else tfu.read_model(bytearray(target_model))
    src_codes, src_names = _subgraph_tensor_order(src, source_key)
    src_ops = [src.operatorCodes[c].builtinCode for c in src_codes]
    out: dict[str, Any] = {}
    for key in _signature_keys(dst):
        codes, names = _subgraph_tensor_order(dst, key)
        ops = [dst.operatorCodes[c].builtinCode for c in codes]
        if ops != src_ops or len(names) != len(src_names):
            raise ExportError(f"signature {key!r} has other operators than {source_key!r}; "
                              "cannot share calibration ranges")
        for s, d in zip(src_names, names):
            if s in measured:
                out[d] = measured[s]
    return out


def io_quantization(model: bytes) -> dict[str, Any] | None:
    """Scale and zero point of the integer input ("input", a conditional generator's "label") and output
    tensors (the same for every signature), or None."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    seen: dict[str, dict[str, Any]] = {}
    for key, sig in interp.get_signature_list().items():
        runner = interp.get_signature_runner(key)
        ins, (out,) = runner.get_input_details(), runner.get_output_details().values()
        for kind, d in (*zip(("input", "label"), (ins[n] for n in sig["inputs"])), ("output", out)):
            dtype = np.dtype(d["dtype"]).name
            if dtype == "float32":
                continue
            scale, zp = d["quantization"]
            q = {"dtype": dtype, "scale": float(scale), "zero_point": int(zp)}
            if kind in seen and seen[kind] != q:
                raise ExportError(f"signatures disagree on the {kind} quantization: {seen[kind]} vs {q}")
            seen[kind] = q
    return seen or None


def export_tflite(module: torch.nn.Module, *, latent_dim: int | None, batches: tuple[int, ...], precision: str,
                  calibration: np.ndarray | None, calibration_batch: int, progress: bool = False,
                  metadata: dict[str, str] | None = None, keep_float: tuple[str, ...] = (),
                  report: bool = False, auto_keep: int = 1, auto_budget: float | None = None,
                  check_latents: int | None = None, image: Any = None) -> TFLiteResult:
    """The whole TFLite path for a prepared module: convert, quantize (with ``keep_float`` layers left in
    float; ``("auto",)``: the ``auto_keep`` layers that lose the most, among those holding at most
    ``auto_budget`` of the weights), add ``metadata``, read I/O quantization.
    ``check_latents``: without ``report``, the per-layer numbers are still computed on that many calibration
    latents (the exporter's broken-channel check)."""
    from edgegan.export import litert_layers, quant_report

    float_model = convert(module, latent_dim, batches, progress=progress, image=image)
    recipe = None
    data = float_model
    layers = None
    if precision != "fp32":
        calib_model = None
        if calibration is not None and calibration_batch not in batches:
            # A model holding only the calibration batch; its ranges are shared with the real signatures.
            calib_model = convert(module, latent_dim, (calibration_batch,), progress=progress, image=image)

        def make(kept: tuple[str, ...]) -> tuple[bytes, str]:
            return quantize(float_model, precision, calibration=calibration, calibration_model=calib_model,
                            calibration_batch=calibration_batch, progress=progress,
                            keep_float=litert_layers.scopes(float_model, kept))

        auto = keep_float == (quant_report.AUTO,)
        kept = () if auto else tuple(keep_float)
        data, recipe = make(kept)
        if auto or report:
            layers = litert_layers.report(float_model, data, batches, calibration, kept)
        elif check_latents and calibration is not None:
            layers = litert_layers.report(float_model, data, batches, calibration[:check_latents], kept)
        if auto:
            kept = tuple(quant_report.most_sensitive(layers, auto_keep, weight_bytes=quant_report.weight_bytes(module),
                                                     budget=auto_budget))
            if kept:  # the report describes the file written, with those layers in float
                data, recipe = make(kept)
                layers = litert_layers.report(float_model, data, batches, calibration, kept)
            layers["auto"] = True
        if kept:
            recipe = f"{recipe} + float {','.join(kept)}"
    data = add_metadata(data, metadata or {}, short_names=True)
    sigs = [{"key": signature_key(b), "batch": b} for b in batches]
    return TFLiteResult(data=data, recipe=recipe, signatures=sigs, quantization=io_quantization(data), layers=layers)


def keep_float_recipe(rcp: Any, scopes: list[str]) -> Any:
    """``rcp`` with every operator whose scope is in ``scopes`` left in float (ai-edge-quantizer's
    NO_QUANTIZE algorithm; later rules win, so these override the recipe's own)."""
    import re

    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    rm = recipe_manager.RecipeManager()
    rm.load_quantization_recipe(rcp)
    for s in scopes:
        rm.add_quantization_config(regex=f"^{re.escape(s)}$", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                   algorithm_key=AlgorithmName.NO_QUANTIZE)
    return rm.get_quantization_recipe()
