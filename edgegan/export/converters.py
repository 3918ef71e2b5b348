"""The converters the format table names (``FormatSpec.converter``): a prepared module in, the file's bytes
and the format's own manifest fields out. Each imports its backend when it runs, so reading the table
(``edgegan formats``, the CLI's choices) stays torch-free."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgegan.export import quant_report
from edgegan.export.formats import AUTO_KEEP_BUDGET, AUTO_KEEP_FLOAT, CALIBRATION_BATCH, CHECK_LATENTS, ExportOptions


def onnx(prepared: Any, opts: ExportOptions, latent_dim: int | None, calibration: np.ndarray | None, *,
         progress: bool, metadata: dict[str, str], image: Any = None) -> tuple[bytes, dict[str, Any]]:
    """torch.onnx (dynamo) with a dynamic batch axis; int8 by onnxruntime's static QDQ quantizer. ``image``: an
    image-to-image file's ``images.ImageInput`` (issue 21): input ``image``, height and width dynamic too."""
    from edgegan.export import images, labels, onnx_export

    res = onnx_export.export_onnx(prepared, latent_dim=latent_dim, precision=opts.precision.label,
                                  calibration=calibration, calibration_batch=CALIBRATION_BATCH, progress=progress,
                                  metadata=metadata, report=opts.report, image=image)
    label = _label(prepared, lambda: labels.check_onnx_label(_onnx_model(res.data)))
    names = {"input": onnx_export.INPUT_NAME if image is None else images.INPUT_NAME,
             **({"label": label["label"]["name"]} if label else {}), "output": onnx_export.OUTPUT_NAME}
    return res.data, {"dynamic_batch": True, **({} if image is None else {"dynamic_size": True}),
                      **({"layers": res.layers} if res.layers is not None else {}),
                      "names": names, **label,
                      "quantization": None, "recipe": res.recipe, "recipe_why": res.recipe_why,
                      "opset": res.opset, "optimizer": res.optimizer, "onnxsim": res.onnxsim, "notes": res.notes,
                      "versions": onnx_export.versions()}


def tflite(prepared: Any, opts: ExportOptions, latent_dim: int | None, calibration: np.ndarray | None, *,
           progress: bool, metadata: dict[str, str], image: Any = None) -> tuple[bytes, dict[str, Any]]:
    """litert-torch, one signature per batch size; quantized by ai-edge-quantizer, with the per-layer report
    (always on the check's latents for precisions with a channel limit) and --keep-float. ``image``: an
    image-to-image file's ``images.ImageInput`` (issue 21): NHWC images at its one size."""
    from edgegan.export import labels, litert_adapter

    check = CHECK_LATENTS if opts.precision.thresholds.channel_err_db else None
    res = litert_adapter.export_tflite(prepared, latent_dim=latent_dim, batches=opts.batches,
                                       precision=opts.precision.label, calibration=calibration,
                                       calibration_batch=CALIBRATION_BATCH, progress=progress, metadata=metadata,
                                       keep_float=opts.keep_float or (), report=opts.report,
                                       auto_keep=AUTO_KEEP_FLOAT, auto_budget=AUTO_KEEP_BUDGET, check_latents=check,
                                       image=image)
    quant_report.check_io(res.quantization, opts.precision, res.recipe)  # the file is what its name says
    label = _label(prepared, lambda: labels.check_tflite_label(res.data))
    return res.data, {"signatures": res.signatures, **label, "quantization": res.quantization, "recipe": res.recipe,
                      "recipe_why": None, **({"layers": res.layers} if res.layers is not None else {}),
                      "notes": res.notes, "versions": litert_adapter.versions()}


def _label(prepared: Any, path: Any) -> dict[str, Any]:
    """A conditional generator's file: {"label": its label input, with ``path``() (``labels.check_*_label``:
    raises ExportError unless the one-hot reaches its first layer exactly)}; {} for an unconditional one."""
    if not getattr(prepared, "num_classes", None):
        return {}
    found = path()
    return {"label": {"dtype": "float32", "form": "onehot", "input": 1, "name": found.pop("name"), "path": found}}


def _onnx_model(data: bytes) -> Any:
    import onnx

    return onnx.load_from_string(data)


def onnx_qdq_kernels(data: bytes) -> Any:
    """The kernel check of a static ONNX file: its own QDQ arithmetic, which this CPU's fused integer
    kernels must match, so a result that only holds on this CPU cannot pass (issue #8)."""
    from edgegan.export import onnx_export

    return onnx_export.qdq_reference(data)
