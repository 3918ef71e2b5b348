"""``edgegan bench`` as the app runs it: the bench harness with the exporter handed in, so that an edgegan
teacher gets its ONNX row too (bench and export are sibling layers; only the app joins them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def export_teacher(spec: str, out: Path) -> dict[str, Any]:
    """The teacher's fp32 ONNX file for its latency row, or {"error": ...} that the row reports."""
    from edgegan.errors import EdgeganError
    from edgegan.export import export_run

    try:
        return export_run(spec, format="onnx", quantize="none", out=out)
    except EdgeganError as e:
        return {"error": f"teacher export failed: {e}"}


def run_bench(runs: list[str], **kwargs: Any) -> dict[str, Any]:
    """``edgegan.bench.harness.run_bench`` (same arguments) with ``export_teacher`` filled in."""
    from edgegan.bench.harness import run_bench as harness_run_bench

    kwargs.setdefault("export_teacher", export_teacher)
    return harness_run_bench(runs, **kwargs)
