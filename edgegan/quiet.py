"""Keep the converters' own chatter off the user's console: third-party Python warnings and the
native (C++) log lines that TFLite/LiteRT and friends write straight to file descriptor 2, such as
"INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every interpreter.

Both go to the ``edgegan.quiet`` DEBUG log instead; ``edgegan --debug`` does not use this at all, so
everything shows there. Python-level writes to ``sys.stderr`` (logging, progress bars, edgegan's own
warnings) keep reaching the real stderr: only what native code writes to fd 2 is captured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator

log = logging.getLogger(__name__)
# Loggers of the converters and interpreters: WARNING and below go nowhere while converting.
THIRD_PARTY_LOGGERS = ("torch", "torchao", "absl", "jax", "litert_torch", "ai_edge_quantizer", "ai_edge_litert",
                       "onnxscript", "onnx_ir", "onnxruntime", "onnxsim")


@contextlib.contextmanager
def converters_quiet(enabled: bool = True) -> Iterator[None]:
    """Third-party warnings and native stderr output to the DEBUG log while the block runs."""
    if not enabled:
        yield
        return
    with _warnings_to_debug(), _native_stderr_to_debug(), _third_party_loggers_quiet():
        yield


@contextlib.contextmanager
def _third_party_loggers_quiet() -> Iterator[None]:
    """torch configures its loggers when it is imported (resetting a level set before), and then warns
    through them, e.g. its register_constant deprecation on every TFLite export: import it first."""
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401 - the export imports it anyway; this fixes its logger levels now
    saved = {name: logging.getLogger(name).level for name in THIRD_PARTY_LOGGERS}
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _warnings_to_debug() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
            if _is_own(filename):
                previous(message, category, filename, lineno, file, line)
            else:
                log.debug("%s:%s: %s: %s", filename, lineno, category.__name__, message)

        warnings.showwarning = show
        yield


def _is_own(filename: str) -> bool:
    """A warning raised by edgegan's own code (every layer lives under edgegan/) is the user's business: shown."""
    import edgegan

    root = os.path.dirname(os.path.abspath(edgegan.__file__ or ""))
    return os.path.abspath(filename).startswith(root + os.sep)


@contextlib.contextmanager
def _native_stderr_to_debug() -> Iterator[None]:
    """fd 2 -> a temporary file for the block; ``sys.stderr`` and logging handlers that wrote to it
    are pointed at a duplicate of the real stderr meanwhile, so Python output is not swallowed."""
    try:
        fd2 = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # pytest's capture, an embedded interpreter: nothing to do
        yield
        return
    if fd2 != 2:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    real = os.fdopen(os.dup(saved), "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    old_stderr = sys.stderr
    handlers = [h for h in _all_handlers() if getattr(h, "stream", None) is old_stderr]
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        sys.stderr = real
        for h in handlers:
            h.setStream(real)
        try:
            yield
        finally:
            real.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sys.stderr = old_stderr
            for h in handlers:
                h.setStream(old_stderr)
            real.close()
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("native output of the converters:\n%s", text)


def _all_handlers() -> list[logging.Handler]:
    out = list(logging.getLogger().handlers)
    for lg in logging.Logger.manager.loggerDict.values():
        if isinstance(lg, logging.Logger):
            out.extend(lg.handlers)
    return out
