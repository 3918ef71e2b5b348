"""edgegan.export: generators to ONNX and TFLite files, each checked numerically through the runtime.

    from edgegan.export import FORMATS, export_run, export_module, format_table
    entry = export_run("runs/student", format="tflite", quantize="int8", batch=[64])

``FORMATS`` and ``format_table`` are cheap to import; ``export_run`` / ``export_module`` load torch
and the converters on first use, so ``edgegan formats`` stays instant.
"""

from __future__ import annotations

from typing import Any

from edgegan.export.formats import FORMATS, ExportOptions, FormatSpec, Precision, Thresholds, format_table

__all__ = ["FORMATS", "ExportOptions", "FormatSpec", "Precision", "Thresholds", "export_module", "export_run",
           "format_table"]


def __getattr__(name: str) -> Any:
    if name in ("export_run", "export_module"):
        from edgegan.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'edgegan.export' has no attribute {name!r}")
