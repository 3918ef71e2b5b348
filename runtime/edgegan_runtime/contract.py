"""The contract every exported file carries inside itself, so an app that embeds only the file (Kotlin,
Swift, C++) knows how to call it and how to turn its output into the images Python makes.

It is one JSON object, stored under the name ``edgegan.contract``: in a TFLite file as a ``metadata``
entry of the flatbuffer's Model table (the entry names a buffer holding the UTF-8 JSON; LiteRT's
``Interpreter::metadata()`` / ``GetMetadata`` and flatbuffer readers list it), in an ONNX file as a
``metadata_props`` entry. Fields (schema ``edgegan.contract/1``)::

    {"schema": "edgegan.contract/1",
     "latent": {"dim": 100, "dtype": "float32",
                "sampler": {"name": "splitmix64-box-muller", "version": 1, "spec": "edgegan_runtime.latent"}},
     "output": {"shape": [null, 1, 32, 32], "layout": "NCHW", "dtype": "float32", "range": [-1.0, 1.0]},
     "pixels": {"name": "clip-rint-127.5", "version": 1, "layout": "NHWC", "dtype": "uint8", "rule": "..."},
     "batch_sizes": [1, 64],                  # a TFLite file's signatures; null: any batch (ONNX)
     "signatures": [{"key": "batch_1", "batch": 1}, ...],   # TFLite only
     "identity": {"stem": ..., "file": ..., "format": ..., "precision": ..., "quantize": ...,
                  "model_sha256": ...},       # the manifest entry this file is (its own sha256 cannot be inside it)
     "label": {"classes": 10, "names": ["zero", ...] or null, "form": "onehot", "dtype": "float32",
               "input": 1}}                   # conditional files only (issue 20); absent: unconditional

A conditional file has two inputs, in this order: z (B, latent dim) and the label as a float32 one-hot
(B, classes), whose row i is 1.0 at the class of image i and 0.0 elsewhere (``labels.one_hot``). ONNX
names them ``z`` and ``label``; litert-torch names a TFLite signature's inputs ``args_0`` and ``args_1``;
``input`` is the label's position. An int8 file quantizes the one-hot as it does z, with the scale and
zero point in the file: edgegan's exporter checks they carry 0 and 1 exactly.

An image-to-image file (issue 21: super-resolution, colourisation, inpainting) takes images instead of
z: its contract has no ``latent`` entry but an ``input`` entry, and its output entry says how much larger
the output is (``image_input_entry``, ``make_image_contract``)::

     "input": {"kind": "image", "layout": "NCHW", "shape": [null, 3, null, null], "dtype": "float32",
               "range": [-1.0, 1.0], "channels": 3, "size": [16, 16], "multiple": 1, "task": "sr2x",
               "pixels": {"name": "u8-div-127.5-minus-1", "version": 1, "rule": "..."}},
     "output": {"shape": [null, 3, null, null], "layout": "NCHW", "dtype": "float32", "range": [-1.0, 1.0],
                "channels": 3, "scale": 2}

``shape`` is the file's own tensor in its ``layout`` (ONNX files NCHW, TFLite files NHWC: the layout
TFLite's kernels use, so the file has no transposes), null where the file takes any size: an ONNX file
takes any height and width that are multiples of ``multiple`` (its stride-2 stages), a TFLite file the
one ``size`` it was exported at. ``size`` is the (height, width) the exporter checked the file at (and a
benchmark feeds); the output is ``scale`` times the input's side. ``task`` (``edgegan.tasks``: sr2x,
sr4x, colorize, inpaint, none, or null) says how the input was made from an image in training.
``input.pixels`` is the rule from 8-bit pixels (``IMAGE_PIXELS_RULE``), the inverse of ``pixels``.

The runtime reads it back at load (``Generator.contract``) and refuses a file whose contract
disagrees with its own tensors (latent size, image shape, batch sizes) or names a sampler or pixel
rule version this runtime does not implement; a two-input file without a ``label`` entry, or a
one-input file with one, is refused too; so is an image-input file whose ``input`` entry disagrees with
its tensors, or that has a ``latent`` or ``label`` entry as well.
"""

from __future__ import annotations

import json
from typing import Any

from edgegan_runtime.errors import ModelFileError
from edgegan_runtime.latent import SAMPLER_NAME, SAMPLER_VERSION

METADATA_NAME = "edgegan.contract"
SCHEMA = "edgegan.contract/1"
PIXELS_NAME = "clip-rint-127.5"
PIXELS_VERSION = 1
PIXELS_RULE = ("clip(rint((x + 1) * 127.5), 0, 255) in float32 (x + 1 rounded to float32, then the product), "
               "rint half to even, NaN -> 0; (N, C, H, W) -> (N, H, W, C) uint8")
MAX_BYTES = 1 << 16  # a contract is a few hundred bytes; a larger one is corruption
# A fixed batch size larger than this pads every call up to it: corruption, not a generator (both formats).
MAX_FIXED_BATCH = 4096
# Quantization scale of a quantized (int8/uint8) input or output: beyond these, 255 steps of it leave
# any image range (an output scale of 3e38 made inf images, issue 14).
IO_SCALE_RANGE = (1e-12, 1e6)
LABEL_INPUT = 1  # the position of a conditional file's label input (z is input 0)
LABEL_FORM = "onehot"
IMAGE_KIND = "image"
LAYOUTS = ("NCHW", "NHWC")
IMAGE_PIXELS_NAME = "u8-div-127.5-minus-1"
IMAGE_PIXELS_VERSION = 1
IMAGE_PIXELS_RULE = ("x = float32(p) / 127.5 - 1 in float32 (the quotient rounded to float32, then the difference): "
                     "0 -> -1, 255 -> 1 exactly; (N, H, W, C) uint8 -> the file's layout")
MAX_SCALE = 16  # output side / input side beyond this is corruption (the families have 1, 2, 4, 8)
MAX_MULTIPLE = 1 << 10


def label_entry(classes: int, names: list[str] | None = None) -> dict[str, Any]:
    """The ``label`` entry of a conditional file's contract: ``classes`` classes, optionally named."""
    return {"classes": int(classes), "names": None if names is None else [str(n) for n in names],
            "form": LABEL_FORM, "dtype": "float32", "input": LABEL_INPUT}


def make_contract(*, latent_dim: int, output_shape: tuple[int, ...] | list[int], batch_sizes: list[int] | None,
                  identity: dict[str, Any], label: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract of a file (see the module doc); ``identity`` names its manifest entry; ``label``, a
    conditional file's ``label_entry`` (None: unconditional, no ``label`` key)."""
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "latent": {"dim": int(latent_dim), "dtype": "float32",
                   "sampler": {"name": SAMPLER_NAME, "version": SAMPLER_VERSION, "spec": "edgegan_runtime.latent"}},
        "output": {"shape": [None, *[int(s) for s in output_shape]], "layout": "NCHW", "dtype": "float32",
                   "range": [-1.0, 1.0]},
        "pixels": {"name": PIXELS_NAME, "version": PIXELS_VERSION, "layout": "NHWC", "dtype": "uint8",
                   "rule": PIXELS_RULE},
        "batch_sizes": None if batch_sizes is None else [int(b) for b in batch_sizes],
    }
    if batch_sizes is not None:
        out["signatures"] = [{"key": f"batch_{int(b)}", "batch": int(b)} for b in batch_sizes]
    out["identity"] = dict(identity)
    if label is not None:
        out["label"] = dict(label)
    return out


def image_input_entry(*, channels: int, size: tuple[int, int], multiple: int, task: str | None, layout: str,
                      dynamic: bool) -> dict[str, Any]:
    """The ``input`` entry of an image-to-image file (see the module doc): ``dynamic`` when the file takes any
    height and width that are multiples of ``multiple`` (ONNX), else the one ``size`` (TFLite)."""
    h, w = (None, None) if dynamic else (int(size[0]), int(size[1]))
    return {"kind": IMAGE_KIND, "layout": layout, "shape": _in_layout([None, int(channels), h, w], layout),
            "dtype": "float32", "range": [-1.0, 1.0], "channels": int(channels), "size": [int(size[0]), int(size[1])],
            "multiple": int(multiple), "task": task,
            "pixels": {"name": IMAGE_PIXELS_NAME, "version": IMAGE_PIXELS_VERSION, "rule": IMAGE_PIXELS_RULE}}


def make_image_contract(*, input: dict[str, Any], out_channels: int, scale: int, batch_sizes: list[int] | None,
                        identity: dict[str, Any]) -> dict[str, Any]:
    """The contract of an image-to-image file: ``input`` (``image_input_entry``) and an output ``scale`` times
    its side with ``out_channels`` channels, in the input's layout."""
    layout = input["layout"]
    c, h, w = _nchw(input["shape"], layout)[1:]
    s = int(scale)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "input": dict(input),
        "output": {"shape": _in_layout([None, int(out_channels), None if h is None else h * s,
                                        None if w is None else w * s], layout),
                   "layout": layout, "dtype": "float32", "range": [-1.0, 1.0], "channels": int(out_channels),
                   "scale": s},
        "pixels": {"name": PIXELS_NAME, "version": PIXELS_VERSION, "layout": "NHWC", "dtype": "uint8",
                   "rule": PIXELS_RULE},
        "batch_sizes": None if batch_sizes is None else [int(b) for b in batch_sizes],
    }
    if batch_sizes is not None:
        out["signatures"] = [{"key": f"batch_{int(b)}", "batch": int(b)} for b in batch_sizes]
    out["identity"] = dict(identity)
    return out


def _in_layout(nchw: list, layout: str) -> list:
    n, c, h, w = nchw
    return [n, c, h, w] if layout == "NCHW" else [n, h, w, c]


def _nchw(shape: list, layout: str) -> list:
    n, a, b, c = shape
    return [n, a, b, c] if layout == "NCHW" else [n, c, a, b]


def encode(contract: dict[str, Any]) -> bytes:
    """The bytes stored in a file: compact, key-sorted UTF-8 JSON (the same contract, the same bytes)."""
    return json.dumps(contract, sort_keys=True, separators=(",", ":")).encode()


def parse(data: bytes | None, name: str) -> dict[str, Any] | None:
    """The contract from a file's ``edgegan.contract`` bytes (None when the file has none)."""
    if data is None:
        return None
    if len(data) > MAX_BYTES:
        raise ModelFileError(f"{name}: {METADATA_NAME} metadata of {len(data)} bytes; a contract is a few hundred")
    try:
        c = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(f"{name}: {METADATA_NAME} metadata is not UTF-8 JSON") from None
    if not isinstance(c, dict) or c.get("schema") != SCHEMA:
        got = c.get("schema") if isinstance(c, dict) else type(c).__name__
        raise ModelFileError(f"{name}: {METADATA_NAME} has schema {got!r}; this runtime reads {SCHEMA!r}")
    return c


def require_label(contract: dict[str, Any] | None, name: str) -> None:
    """A file with a second input is a conditional generator only if its contract says so (a ``label``
    entry); checked before the second input's tensor is looked at."""
    if contract is None or contract.get("label") is None:
        why = f"it has no {METADATA_NAME}" if contract is None else f"its {METADATA_NAME} has no label entry"
        raise ModelFileError(f"{name}: model has 2 inputs and 1 output; an edgegan generator has one of each, or z and "
                             f"a class label that its contract names ({why})")


def check(contract: dict[str, Any] | None, *, name: str, latent_dim: int, output_shape: tuple[int, ...],
          batch_sizes: tuple[int, ...] | None, num_classes: int | None = None) -> None:
    """Raise ModelFileError unless the contract agrees with the file's own tensors and this runtime.
    ``num_classes``: the width of the file's label input (its second input), None when it has one input."""
    if num_classes is not None:
        require_label(contract, name)
    if contract is None:
        return
    try:
        dim = contract["latent"]["dim"]
        shape = contract["output"]["shape"][1:]
        sampler = contract["latent"]["sampler"]
        pixels = contract["pixels"]
        batches = contract.get("batch_sizes")
    except (KeyError, TypeError, IndexError):
        raise ModelFileError(f"{name}: {METADATA_NAME} lacks latent, output or pixels fields") from None
    if dim != latent_dim or list(shape) != list(output_shape):
        raise ModelFileError(f"{name}: {METADATA_NAME} says latent {dim} -> images {shape}, the file's tensors "
                             f"say {latent_dim} -> {list(output_shape)}")
    if batch_sizes is not None and batches is not None and sorted(batches) != sorted(batch_sizes):
        raise ModelFileError(f"{name}: {METADATA_NAME} says batch sizes {batches}, the file has {list(batch_sizes)}")
    if (sampler.get("name"), sampler.get("version")) != (SAMPLER_NAME, SAMPLER_VERSION):
        raise ModelFileError(f"{name}: made for latent sampler {sampler.get('name')} v{sampler.get('version')}; "
                             f"this runtime implements {SAMPLER_NAME} v{SAMPLER_VERSION}")
    if (pixels.get("name"), pixels.get("version")) != (PIXELS_NAME, PIXELS_VERSION):
        raise ModelFileError(f"{name}: made for pixel rule {pixels.get('name')} v{pixels.get('version')}; "
                             f"this runtime implements {PIXELS_NAME} v{PIXELS_VERSION}")
    _check_label(contract.get("label"), name, num_classes)


def _check_label(label: Any, name: str, num_classes: int | None) -> None:
    """The contract's ``label`` entry against the file's inputs (see the module doc)."""
    if label is None:
        return  # a second input without one was refused by require_label
    if num_classes is None:
        raise ModelFileError(f"{name}: {METADATA_NAME} has a label entry but the file has one input (z); "
                             "a conditional file takes z and a one-hot label")
    if not isinstance(label, dict):
        raise ModelFileError(f"{name}: {METADATA_NAME} label entry is {type(label).__name__}, not an object")
    k, names = label.get("classes"), label.get("names")
    if (label.get("form"), label.get("dtype"), label.get("input")) != (LABEL_FORM, "float32", LABEL_INPUT):
        raise ModelFileError(f"{name}: {METADATA_NAME} label is {label.get('form')!r} {label.get('dtype')!r} at input "
                             f"{label.get('input')!r}; this runtime reads a float32 one-hot at input {LABEL_INPUT}")
    if not isinstance(k, int) or isinstance(k, bool) or k != num_classes:
        raise ModelFileError(f"{name}: {METADATA_NAME} says {k!r} classes, the file's label input is "
                             f"{num_classes} wide")
    if names is not None and (not isinstance(names, list) or len(names) != k
                              or not all(isinstance(n, str) for n in names)):
        raise ModelFileError(f"{name}: {METADATA_NAME} label names must be null or {k} strings")


# ------------------------------------------------------------------------------ image-input files (issue 21)

def is_image(contract: dict[str, Any] | None, name: str) -> bool:
    """Whether a file's contract declares an image input (an ``input`` entry of kind ``image``); a file
    without a contract, or with a latent contract, takes latents. Any other ``input`` entry is refused."""
    if contract is None or "input" not in contract:
        return False
    entry = contract["input"]
    if not isinstance(entry, dict) or entry.get("kind") != IMAGE_KIND:
        got = entry.get("kind") if isinstance(entry, dict) else type(entry).__name__
        raise ModelFileError(f"{name}: {METADATA_NAME} input is of kind {got!r}; this runtime reads latent files and "
                             f"{IMAGE_KIND!r} inputs")
    return True


def check_image(contract: dict[str, Any], *, name: str, input_dims: tuple, output_dims: tuple,
                batch_sizes: tuple[int, ...] | None) -> dict[str, Any]:
    """The image file's own tensors (``input_dims`` / ``output_dims`` after the batch, None for a dimension
    the file leaves free) against its contract; returns the fields the runtime runs it by (``layout``,
    ``channels``, ``out_channels``, ``height``, ``width`` (None: any multiple), ``scale``, ``multiple``,
    ``size``, ``task``). Raises ModelFileError for any disagreement or a value this runtime does not take."""
    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{name}: {METADATA_NAME} {what}")

    if "latent" in contract or contract.get("label") is not None:
        raise bad("declares an image input and a latent or a label as well; an image-to-image file takes one image")
    i, o = contract["input"], contract.get("output")
    if not isinstance(o, dict):
        raise bad("of an image-input file has no output entry")
    layout = i.get("layout")
    if layout not in LAYOUTS or o.get("layout") != layout:
        raise bad(f"says input layout {layout!r} and output layout {o.get('layout')!r}; this runtime reads "
                  f"{' or '.join(LAYOUTS)}, the same for both")
    for key, entry in (("input", i), ("output", o)):
        if entry.get("dtype") != "float32" or entry.get("range") != [-1.0, 1.0]:
            raise bad(f"{key} is {entry.get('dtype')!r} in {entry.get('range')!r}; this runtime reads float32 in [-1, 1]")
    for key, entry, dims in (("input", i, input_dims), ("output", o, output_dims)):
        shape = entry.get("shape")
        if not isinstance(shape, list) or len(shape) != 4 or list(shape[1:]) != list(dims):
            raise bad(f"says {key} shape {shape!r}; the file's {key} is {['B', *dims]}")
    c, h, w = _nchw([None, *input_dims], layout)[1:]
    oc, oh, ow = _nchw([None, *output_dims], layout)[1:]
    scale, multiple, size, task = o.get("scale"), i.get("multiple"), i.get("size"), i.get("task")
    if not _count(scale, MAX_SCALE) or not _count(multiple, MAX_MULTIPLE):
        raise bad(f"says scale {scale!r} and multiple {multiple!r}; expected integers 1 to {MAX_SCALE} and "
                  f"1 to {MAX_MULTIPLE}")
    if i.get("channels") != c or o.get("channels") != oc:
        raise bad(f"says {i.get('channels')!r} -> {o.get('channels')!r} channels; the file's tensors {c} -> {oc}")
    if not (isinstance(size, list) and len(size) == 2 and all(_count(v, 1 << 16) for v in size)) \
            or size[0] % multiple or size[1] % multiple:
        raise bad(f"says size {size!r}; expected [height, width], multiples of {multiple}")
    if (h is None) != (w is None) or (h is None) != (oh is None) or (w is None) != (ow is None):
        raise bad(f"of a file whose input {['B', *input_dims]} and output {['B', *output_dims]} are partly fixed")
    if h is not None and ([h, w] != size or [oh, ow] != [h * scale, w * scale]):
        raise bad(f"says size {size} scaled {scale}x; the file maps {h}x{w} to {oh}x{ow}")
    if task is not None and not isinstance(task, str):
        raise bad(f"task is {type(task).__name__}, not a name or null")
    pixels, ipix = contract.get("pixels"), i.get("pixels")
    if not isinstance(pixels, dict) or (pixels.get("name"), pixels.get("version")) != (PIXELS_NAME, PIXELS_VERSION):
        got = pixels.get("name") if isinstance(pixels, dict) else None
        raise ModelFileError(f"{name}: made for pixel rule {got}; this runtime implements {PIXELS_NAME} v{PIXELS_VERSION}")
    if not isinstance(ipix, dict) or (ipix.get("name"), ipix.get("version")) != (IMAGE_PIXELS_NAME, IMAGE_PIXELS_VERSION):
        got = ipix.get("name") if isinstance(ipix, dict) else None
        raise ModelFileError(f"{name}: made for input pixel rule {got}; this runtime implements "
                             f"{IMAGE_PIXELS_NAME} v{IMAGE_PIXELS_VERSION}")
    batches = contract.get("batch_sizes")
    if batch_sizes is not None and batches is not None and sorted(batches) != sorted(batch_sizes):
        raise bad(f"says batch sizes {batches}, the file has {list(batch_sizes)}")
    return {"layout": layout, "channels": c, "out_channels": oc, "height": h, "width": w, "scale": scale,
            "multiple": multiple, "size": (size[0], size[1]), "task": task}


def _count(v: Any, high: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= high
