"""Everything checked about a model file before a native interpreter sees it.

In order: it exists and is a regular file (opened without blocking, read with a size cap:
``fileio.read_regular``); its size (not empty, under 2 GiB, equal to the manifest's ``bytes``);
its sha256 (when the caller or the manifest gives one); its type from its own bytes (TFLite's
``TFL3`` identifier, else the ONNX protobuf walk), which must agree with its name and the manifest;
its structure (``tflite_check`` / ``onnx_check``: every index, size and shape native code will
trust); and the generator contract (one input (B, latent_dim), or two with a class label (B, K) second
when the file's ``edgegan.contract`` names it (issue 20); one output (B, C, H, W); consistent across
signatures, batch sizes from 1 to ``MAX_FIXED_BATCH``). A file whose contract declares an image input
(issue 21) has one image input and one image output instead, held to its contract's ``input`` and
``output`` entries (``contract.check_image``; the result is ``CheckedModel.image``).

The file is read once; the interpreter gets the very bytes that were checked, so the file cannot
change between the check and the load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgegan_runtime import contract
from edgegan_runtime.errors import ModelFileError
from edgegan_runtime.fileio import read_regular
from edgegan_runtime.images import ImageSpec
from edgegan_runtime.tflite_check import IDENTIFIER, Entry

MAX_BYTES = (1 << 31) - 1  # protobuf and flatbuffers both stop at 2 GiB
FORMATS = ("onnx", "tflite")
_SUFFIX = {".onnx": "onnx", ".tflite": "tflite"}
_IO_DTYPES = ("float32", "int8", "uint8", "int16")  # int16: TFLite int16x8 (16-bit activations, issue #22)
_DISPLAY = {"onnx": "an ONNX", "tflite": "a TFLite"}
_BUILTIN_SHA_MAX = 32 << 20  # above this, OpenSSL's faster SHA-256 is worth its memory


@dataclass(frozen=True)
class CheckedModel:
    """A verified model file: its bytes and the contract read from them."""

    path: Path
    format: str
    data: bytes
    sha256: str
    latent_dim: int | None  # None for an image-to-image file (``image``)
    output_shape: tuple  # (C, H, W); an image-to-image file's at its checked size, H and W None when dynamic
    batch_sizes: tuple[int, ...] | None  # fixed batch sizes, or None when the batch is dynamic
    entries: tuple[Entry, ...] = ()  # tflite: one per signature (or the primary subgraph)
    onnx_io: object = None  # onnx: onnx_check.OnnxIO
    contract: dict | None = None  # the file's own edgegan.contract (see contract.py), None for older files
    hybrid_ops: tuple[str, ...] = ()  # tflite: operators with float32 activations and int8 weights
    num_classes: int | None = None  # a conditional generator's K (its label input is (B, K)); None: unconditional
    image: ImageSpec | None = None  # an image-to-image file's input and output (issue 21); None: it takes latents

    @property
    def precision_hint(self) -> str | None:
        """The precision the file's own structure shows, where it matters to a backend: "dynamic-int8"."""
        return "dynamic-int8" if self.hybrid_ops else None

    @property
    def bytes(self) -> int:
        return len(self.data)


def sniff(data: bytes) -> str | None:
    """"tflite" or "onnx" from a file's first bytes, or None."""
    if data[4:8] == IDENTIFIER:
        return "tflite"
    if data[:1] in (b"\x08", b"\x12", b"\x1a", b"\x22", b"\x28", b"\x32", b"\x3a", b"\x42"):
        return "onnx"  # a ModelProto field tag; the exporters write ir_version (0x08) first
    return None


def read_and_check(
    path: str | os.PathLike,
    *,
    sha256: str | None = None,
    expected_bytes: int | None = None,
    fmt: str | None = None,
) -> CheckedModel:
    path = Path(path)
    name = str(path)
    data = read_regular(path, MAX_BYTES, "model file")
    if not data:
        raise ModelFileError(f"{name}: empty file")
    if expected_bytes is not None and len(data) != expected_bytes:
        raise ModelFileError(f"{name}: {len(data)} bytes, the manifest says {expected_bytes} (truncated or replaced)")
    digest = sha256_hex(data)
    if sha256 is not None and digest != sha256.lower():
        raise ModelFileError(f"{name}: sha256 {digest[:12]}... is not the expected {sha256[:12]}... (corrupt or replaced)")
    found = _format_of(data, path, fmt)
    if found == "tflite":
        return _check_tflite(path, data, digest)
    return _check_onnx(path, data, digest)


def sha256_hex(data: bytes) -> str:
    """sha256 of ``data``. Small files use CPython's built-in SHA-256: importing hashlib loads
    OpenSSL, 3.5 MB of resident memory, more than a whole d=2 student (the probe reports peak RSS)."""
    if len(data) < _BUILTIN_SHA_MAX:
        try:
            from _sha256 import sha256  # CPython <= 3.11
        except ImportError:
            try:
                from _sha2 import sha256  # CPython >= 3.12
            except ImportError:
                from hashlib import sha256
    else:
        from hashlib import sha256
    return sha256(data).hexdigest()


def _format_of(data: bytes, path: Path, fmt: str | None) -> str:
    name = str(path)
    by_content = sniff(data)
    want = fmt or _SUFFIX.get(path.suffix.lower())
    if by_content is None:
        kind = _DISPLAY[want] if want else "an ONNX or a TFLite"
        why = "no 'TFL3' identifier at bytes 4..8" if want == "tflite" else "unrecognised header"
        raise ModelFileError(f"{name}: not {kind} model ({why}: {data[:8].hex()})")
    if want is not None and by_content != want:
        found, expected = _DISPLAY[by_content], _DISPLAY[want]
        raise ModelFileError(f"{name}: content is {found} but {expected} file was expected (wrong file type)")
    return by_content


def _check_onnx(path: Path, data: bytes, digest: str) -> CheckedModel:
    from edgegan_runtime.onnx_check import OnnxImageIO, check_label_input, verify_onnx

    io = verify_onnx(data, str(path))
    if isinstance(io, OnnxImageIO):  # its contract declares an image input (issue 21)
        c = contract.parse(io.metadata.get(contract.METADATA_NAME), str(path))
        spec = _image_spec(c, str(path), io.input_dims, io.output_dims, None if io.batch is None else (io.batch,))
        h, w = spec.size
        if io.inferred_output is not None and tuple(io.inferred_output) != spec.output_dims(h, w):
            raise ModelFileError(f"{path}: the graph maps {h}x{w} images to {list(io.inferred_output)}; its "
                                 f"{contract.METADATA_NAME} says {list(spec.output_dims(h, w))} (scale {spec.scale})")
        return CheckedModel(path=path, format="onnx", data=data, sha256=digest, latent_dim=None,
                            output_shape=_nchw_output(spec), batch_sizes=None if io.batch is None else (io.batch,),
                            onnx_io=io, contract=c, image=spec)
    batch_sizes = None if io.batch is None else (io.batch,)
    c = contract.parse(io.metadata.get(contract.METADATA_NAME), str(path))
    k = None
    if io.label_name is not None:
        contract.require_label(c, str(path))  # before the second input is looked at
        k = check_label_input(io, str(path))
    contract.check(c, name=str(path), latent_dim=io.latent_dim, output_shape=io.output_shape, batch_sizes=batch_sizes,
                   num_classes=k)
    return CheckedModel(
        path=path,
        format="onnx",
        data=data,
        sha256=digest,
        latent_dim=io.latent_dim,
        output_shape=io.output_shape,
        batch_sizes=batch_sizes,
        onnx_io=io,
        contract=c,
        num_classes=k,
    )


def _check_tflite(path: Path, data: bytes, digest: str) -> CheckedModel:
    from edgegan_runtime.tflite_check import inspect_tflite

    name = str(path)
    entries, hybrid, metadata = inspect_tflite(data, name)
    c = contract.parse(metadata.get(contract.METADATA_NAME), name)
    if contract.is_image(c, name):
        return _check_tflite_image(path, data, digest, entries, hybrid, c)
    if any(e.label is not None for e in entries):  # what the second input is, before its tensor is looked at
        contract.require_label(c, name)
    dims, shapes, batches, classes, dynamic = set(), set(), [], set(), False
    for e in entries:
        label = f"signature {e.key!r}" if e.key is not None else "model"
        i, o = e.input, e.output
        if len(i.shape) != 2 or len(o.shape) != 4 or i.shape[0] != o.shape[0]:
            raise ModelFileError(
                f"{name}: {label} maps {list(i.shape)} -> {list(o.shape)}; expected (B, latent) -> (B, C, H, W)"
            )
        classes.add(_label_width(e, name, label))
        for t, what in ((i, "input"), (o, "output"), *(((e.label, "label input"),) if e.label else ())):
            if t.dtype not in _IO_DTYPES:
                raise ModelFileError(f"{name}: {label} {what} is {t.dtype}; expected float32, int8, uint8 or int16")
            if t.dtype != "float32" and (t.scale is None or not t.scale > 0):
                raise ModelFileError(f"{name}: {label} {what} is {t.dtype} without a per-tensor scale")
            low, high = contract.IO_SCALE_RANGE
            if t.dtype != "float32" and not low <= t.scale <= high:
                raise ModelFileError(
                    f"{name}: {label} {what} has a quantization scale of {t.scale:g}, outside [{low:g}, {high:g}]"
                )
        if min(i.shape[1:] + o.shape[1:]) < 1:
            raise ModelFileError(f"{name}: {label} has a zero-sized dimension")
        dims.add(i.shape[1])
        shapes.add(tuple(o.shape[1:]))
        if i.shape_signature[:1] == (-1,):
            dynamic = True
        elif not 1 <= i.shape[0] <= contract.MAX_FIXED_BATCH:
            raise ModelFileError(
                f"{name}: {label} has batch size {i.shape[0]}; expected 1 to {contract.MAX_FIXED_BATCH}"
            )
        elif i.shape[0] not in batches:
            batches.append(i.shape[0])
    if len(dims) != 1 or len(shapes) != 1 or len(classes) != 1:
        raise ModelFileError(f"{name}: signatures disagree on the latent size, the image shape or the label input")
    if dynamic and len(entries) > 1:
        raise ModelFileError(f"{name}: several signatures and a dynamic batch size; expected one per fixed batch")
    if not dynamic and not batches:
        raise ModelFileError(f"{name}: no signature with a batch size >= 1")
    latent_dim, output_shape, k = dims.pop(), shapes.pop(), classes.pop()
    batch_sizes = None if dynamic else tuple(sorted(batches))
    contract.check(c, name=name, latent_dim=latent_dim, output_shape=output_shape, batch_sizes=batch_sizes,
                   num_classes=k)
    return CheckedModel(
        path=path,
        format="tflite",
        data=data,
        sha256=digest,
        latent_dim=latent_dim,
        output_shape=output_shape,
        batch_sizes=batch_sizes,
        entries=tuple(entries),
        contract=c,
        hybrid_ops=hybrid,
        num_classes=k,
    )


def _label_width(e: Entry, name: str, label: str) -> int | None:
    """K of an entry's label input (B, K), None without one; its batch dimension is z's."""
    t = e.label
    if t is None:
        return None
    if len(t.shape) != 2 or t.shape[0] != e.input.shape[0] or t.shape_signature[:1] != e.input.shape_signature[:1] \
            or t.shape[1] < 1:
        raise ModelFileError(f"{name}: {label} takes z {list(e.input.shape)} and a label {list(t.shape)}; expected "
                             "the label as a one-hot (B, K) with z's batch size B")
    return int(t.shape[1])


# ------------------------------------------------------------------------------ image-input files (issue 21)

def _image_spec(c: dict, name: str, input_dims: tuple, output_dims: tuple,
                batch_sizes: tuple[int, ...] | None) -> ImageSpec:
    if any(d is not None and d < 1 for d in (*input_dims, *output_dims)):
        raise ModelFileError(f"{name}: image input {list(input_dims)} or output {list(output_dims)} has a zero size")
    return ImageSpec(**contract.check_image(c, name=name, input_dims=input_dims, output_dims=output_dims,
                                            batch_sizes=batch_sizes))


def _nchw_output(spec: ImageSpec) -> tuple:
    """(C, H, W) of the output at the file's fixed size, (C, None, None) when it takes any size."""
    if spec.dynamic:
        return (spec.out_channels, None, None)
    return (spec.out_channels, spec.height * spec.scale, spec.width * spec.scale)


def _check_tflite_image(path: Path, data: bytes, digest: str, entries: list[Entry], hybrid: tuple[str, ...],
                        c: dict) -> CheckedModel:
    """A TFLite image-to-image file: every signature one image input and one image output of the same sizes
    after the batch, fixed batch sizes; held to the contract (``contract.check_image``)."""
    name = str(path)
    dims, batches = set(), []
    for e in entries:
        label = f"signature {e.key!r}" if e.key is not None else "model"
        i, o = e.input, e.output
        if e.label is not None or len(i.shape) != 4 or len(o.shape) != 4 or i.shape[0] != o.shape[0]:
            raise ModelFileError(f"{name}: {label} maps {list(i.shape)} -> {list(o.shape)}; expected one image "
                                 "(B, ...) -> images (B, ...) of rank 4")
        for t, what in ((i, "input"), (o, "output")):
            if t.dtype not in _IO_DTYPES:
                raise ModelFileError(f"{name}: {label} {what} is {t.dtype}; expected float32, int8, uint8 or int16")
            low, high = contract.IO_SCALE_RANGE
            if t.dtype != "float32" and (t.scale is None or not low <= t.scale <= high):
                raise ModelFileError(f"{name}: {label} {what} is {t.dtype} without a per-tensor scale in "
                                     f"[{low:g}, {high:g}]")
        if i.shape_signature[:1] == (-1,) or any(d < 0 for d in i.shape_signature[1:] + o.shape_signature[1:]):
            raise ModelFileError(f"{name}: {label} has a dynamic dimension; a TFLite image file has fixed sizes")
        if not 1 <= i.shape[0] <= contract.MAX_FIXED_BATCH:
            raise ModelFileError(f"{name}: {label} has batch size {i.shape[0]}; expected 1 to {contract.MAX_FIXED_BATCH}")
        dims.add((tuple(i.shape[1:]), tuple(o.shape[1:])))
        if i.shape[0] not in batches:
            batches.append(i.shape[0])
    if len(dims) != 1:
        raise ModelFileError(f"{name}: signatures disagree on the image sizes")
    (input_dims, output_dims), batch_sizes = dims.pop(), tuple(sorted(batches))
    spec = _image_spec(c, name, input_dims, output_dims, batch_sizes)
    return CheckedModel(path=path, format="tflite", data=data, sha256=digest, latent_dim=None,
                        output_shape=_nchw_output(spec), batch_sizes=batch_sizes, entries=tuple(entries), contract=c,
                        hybrid_ops=hybrid, image=spec)
