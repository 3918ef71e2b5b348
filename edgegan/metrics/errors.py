"""Errors of the metrics package: subclasses of ``BenchError`` so the CLI maps them to its exit code."""

from __future__ import annotations

from edgegan.errors import BenchError


class MetricError(BenchError):
    """A metric cannot be computed from these inputs (wrong shape, non-finite values, too few samples)."""


class NeedsLabelsError(MetricError):
    """Classifier-space metrics were asked of a dataset without labels (SWD and sharpness still work)."""
