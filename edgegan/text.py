"""Text from files shown to people: one line, no terminal control, no markdown structure (issue 25).

A model file's contract, a manifest's file names, a teacher spec or a device-results file may hold
ESC sequences, newlines or pipes; raw on stderr they forge a second "OK" line or recolour the
terminal, raw in a markdown table they forge a row. Every user-facing message (the CLI's error,
warning and log lines) goes through ``one_line``, and every markdown cell through ``md_cell``.
"""

from __future__ import annotations

import logging
from typing import Any

from edgegan_runtime.text import one_line  # the one escaping rule, shared with the runtime

__all__ = ["one_line", "md_cell", "md_safe", "OneLineFormatter"]


def md_cell(text: Any) -> str:
    """``one_line`` with pipes escaped: a markdown table cell that stays one cell."""
    return one_line(text).replace("|", "\\|")


def md_safe(obj: Any) -> Any:
    """A copy of a JSON-like document with every string (keys too) made a safe markdown cell."""
    if isinstance(obj, str):
        return md_cell(obj)
    if isinstance(obj, dict):
        return {md_safe(k) if isinstance(k, str) else k: md_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [md_safe(v) for v in obj]
    return obj


class OneLineFormatter(logging.Formatter):
    """Log records as one printable line each (the CLI's console, outside ``--debug``)."""

    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))
