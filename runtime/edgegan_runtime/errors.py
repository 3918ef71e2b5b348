"""Typed errors of the runtime: one base class, one subclass per thing the caller can act on.

Messages are one line and name the file they are about, so an app can log them as they are.
"""

from __future__ import annotations


class RuntimeModelError(Exception):
    """Base class of every error the runtime raises on purpose."""


class ModelFileError(RuntimeModelError):
    """The model file (or manifest) is missing, truncated, of the wrong type, corrupt or fails its sha256."""


class FileReadError(ModelFileError):
    """A file to read is missing, not a regular file (a FIFO, a device, a folder), over its size limit, or unreadable."""


class ManifestError(ModelFileError):
    """The manifest is unreadable, of another schema, or names no usable export."""


class BackendUnavailableError(RuntimeModelError):
    """The requested backend is unknown, not installed, or cannot run this file type."""


class BackendError(RuntimeModelError):
    """The native interpreter refused the model or failed while running it."""


class OutputError(RuntimeModelError):
    """An output file cannot be written: its folder is missing or read-only, the disk is full, ..."""


class InputError(RuntimeModelError, ValueError):
    """A bad argument from the caller: latent of the wrong shape, n < 0, threads < 1, ..."""


class LabelError(InputError):
    """A class label the model cannot take (issue 20): none for a conditional model, one for an unconditional
    model, an index outside [0, K), a float, bool or non-integer label, ``labels`` of the wrong length, or both
    ``label`` and ``labels``."""


class ImageError(InputError):
    """An image the model cannot take (issue 21): not uint8 (``translate``) or not float (``translate_array``),
    the wrong number of channels or dimensions, a size the file does not take (not its fixed size, or sides
    that are not multiples of its ``multiple``), or an image file (PNG) that cannot be read."""


class InputKindError(InputError):
    """A call of the other input kind (issue 21): ``generate`` / ``generate_from`` on a file that translates
    images, or ``translate`` / ``translate_array`` on a file that generates from latents."""


class PrecisionWarning(UserWarning):
    """The file is known to come out inaccurate on this CPU (e.g. a U8S8 int8 ONNX file on x86 without VNNI)."""
