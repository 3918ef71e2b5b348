"""``load`` a model file or a manifest; ``generate_from(z)`` -> float images, ``generate(n, seed)`` -> pixels.

Pixels are defined exactly, so an app in another language gets the same bytes from the same float
images: with x the generator's float32 output in [-1, 1] (N, C, H, W),
``p = clip(rint((x + 1) * 127.5), 0, 255)`` computed in float32 (``x + 1`` rounded to float32, then
the product rounded to float32), ``rint`` rounding half to even (IEEE 754 default, C ``lrintf``),
then transposed to (N, H, W, C) uint8 (a NaN, from a broken model, becomes 0). The latents of
``generate(n, seed)`` are ``latent(n, latent_dim, seed)`` (see ``edgegan_runtime.latent``), so
image i depends only on (seed, i), not on n.

A conditional generator (issue 20: ``num_classes`` is K, not None) also takes a class per image:
``generate(n, seed, label=7)`` (every image of class 7) or ``labels=[...]`` (one per image), and
``generate_from(z, labels=...)``. The latents are the same as without a label, so one seed shows the
same "style" in every class. The file takes the label as a float32 one-hot (``labels.one_hot``).

An image-to-image generator (issue 21: ``input_kind`` is "image") takes images instead of latents:
``translate(pixels)`` (uint8 (H, W, C), (H, W) grey, or a batch (N, H, W, C) -> uint8 of the same form)
and ``translate_array(x)`` (float32 (N, C, h, w) in [-1, 1] -> (N, C', h * s, w * s)); see ``images``.
``generate`` on such a file, and ``translate`` on a latent file, raise ``InputKindError``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from edgegan_runtime import backend as _backends
from edgegan_runtime.checks import CheckedModel, read_and_check
from edgegan_runtime.cpu import u8s8_saturates
from edgegan_runtime.errors import BackendError, InputError, InputKindError, ModelFileError, PrecisionWarning
from edgegan_runtime.images import ImageSpec, check_array, file_to_nchw, from_pixels, nchw_to_file, pixels, \
    to_file_layout
from edgegan_runtime.labels import one_hot, resolve
from edgegan_runtime.latent import latent
from edgegan_runtime.manifest import ExportRef, check_sha256_arg, is_manifest, select_export
from edgegan_runtime.pool import Pool


def load(
    path: str | os.PathLike,
    *,
    backend: str | None = None,
    threads: int | None = None,
    sha256: str | None = None,
    export: str | None = None,
) -> "Generator":
    """Verify and load a model.

    path: an .onnx / .tflite file, or a manifest.json / run directory; then ``export`` picks an
        entry by file name or "format:precision" (default: the first), and the file's size and sha256
        are checked against the manifest.
    backend: None (from the file type and what is installed), "onnxruntime", "litert" or "tflite-runtime".
    threads: interpreter threads per call (default 1: predictable, and apps run other work too).
    sha256: expected digest of the model file (in addition to the manifest's).
    """
    if threads is not None and (
        not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS
    ):
        raise InputError(f"threads must be an integer from 1 to {MAX_THREADS}, got {threads!r}")
    threads = None if threads is None else int(threads)
    sha256 = check_sha256_arg(sha256)
    p = Path(path)
    if is_manifest(p):
        ref = select_export(p, export)
    elif export is not None:
        raise InputError(f"{p}: export= picks an entry of a manifest; this is a model file")
    else:
        ref = ExportRef(path=p)
    checked = read_and_check(ref.path, sha256=ref.sha256, expected_bytes=ref.bytes, fmt=ref.format)
    if sha256 is not None and checked.sha256 != sha256:
        raise ModelFileError(f"{checked.path}: sha256 {checked.sha256[:12]}... is not the expected {sha256[:12]}...")
    _agree_with_manifest(checked, ref)
    _warn_if_inaccurate_here(checked)
    # The file's structure wins over the manifest's word: a backend is refused what it cannot run, before native code.
    precision = checked.precision_hint or ref.precision
    spec, module = _backends.choose(checked.format, backend, str(checked.path), precision)
    factory = spec.open(module, checked, threads or 1)
    return Generator(checked, spec, factory, threads or 1, ref)


def _agree_with_manifest(checked: CheckedModel, ref: ExportRef) -> None:
    if ref.input_kind is not None and ref.input_kind != ("image" if checked.image is not None else "latent"):
        raise ModelFileError(f"{checked.path}: the manifest says the model takes {ref.input_kind} inputs; the file "
                             f"takes {'images' if checked.image is not None else 'latents'}")
    if checked.image is not None:
        return  # its sha256 and size tie it to the manifest's entry; the run's shapes are at the training size
    if ref.latent_dim is not None and ref.latent_dim != checked.latent_dim:
        raise ModelFileError(f"{checked.path}: latent size {checked.latent_dim}, the manifest says {ref.latent_dim}")
    if ref.output_shape is not None and tuple(ref.output_shape) != checked.output_shape:
        raise ModelFileError(
            f"{checked.path}: images {list(checked.output_shape)}, the manifest says {list(ref.output_shape)}"
        )


def _warn_if_inaccurate_here(checked: CheckedModel) -> None:
    scheme = getattr(checked.onnx_io, "int8_scheme", None)
    if scheme in ("u8s8", "s8s8") and u8s8_saturates():
        warnings.warn(
            f"{checked.path}: int8 ONNX file quantized {scheme.upper()} (int8 weights); on this x86 CPU without VNNI "
            "onnxruntime's integer kernels can saturate and the images come out wrong. Re-export it with edgegan "
            "(U8U8, accurate on every CPU), or run it on a CPU with VNNI or on aarch64.",
            PrecisionWarning,
            stacklevel=3,
        )


MAX_DYNAMIC_BATCH = 256  # images per interpreter call when the model's batch size is dynamic
# An image-to-image model with a dynamic batch takes at most this many output values per call (and
# always one image): 2**24 is 64 MiB of float32, 16 RGB images of 512x512.
MAX_CALL_VALUES = 1 << 24
# Interpreter threads per call: more than any CPU has; 10**6 made LiteRT crash and ONNX Runtime
# exhaust the process table (issue 14).
MAX_THREADS = 256
# One generate call may hold at most this share of the machine's memory (latents, float images, pixels).
MEMORY_SHARE = 0.5


def _memory_bytes() -> int:
    """Physical memory of this machine (sysconf), or 4 GiB where it cannot be read."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 4 << 30


_MEMORY = _memory_bytes()


class Generator:
    """A loaded, verified generator. Safe to call from several threads."""

    def __init__(
        self,
        checked: CheckedModel,
        spec: _backends.BackendSpec,
        factory: Callable[[], _backends.Session],
        threads: int,
        ref: ExportRef,
        pool_size: int | None = None,
    ):
        self.path: Path = checked.path
        self.format: str = checked.format
        self.backend: str = spec.name
        self.threads: int = threads
        self.latent_dim: int = checked.latent_dim
        self.output_shape: tuple[int, int, int] = checked.output_shape
        self.batch_sizes: tuple[int, ...] | None = checked.batch_sizes
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            # plan() advances by each chunk's count: a batch size < 1 would never finish (issue 14)
            raise ModelFileError(f"{checked.path}: batch sizes {list(self.batch_sizes)}; expected sizes >= 1")
        self.sha256: str = checked.sha256
        self.bytes: int = checked.bytes
        self.precision: str | None = ref.precision
        # The file's own edgegan.contract (latent size, sampler, pixel rule, batch sizes, identity),
        # checked against its tensors at load; None for a file written before contracts existed.
        self.contract: dict | None = checked.contract
        # A conditional generator's classes (its label input is a one-hot (B, K)); None: unconditional.
        self.num_classes: int | None = checked.num_classes
        self.class_names: list[str] | None = (checked.contract or {}).get("label", {}).get("names") \
            if checked.num_classes is not None else None
        self.manifest: Path | None = ref.manifest
        # An image-to-image file's input and output (issue 21): layout, channels, size, scale, multiple, task.
        self.image: ImageSpec | None = checked.image
        self.input_kind: str = "latent" if checked.image is None else "image"
        im = checked.image
        # (latent_dim,), or an image file's (C, h, w), h and w None when it takes any multiple of image.multiple.
        self.input_shape: tuple = (checked.latent_dim,) if im is None else (im.channels, im.height, im.width)
        self._spec = spec
        self._pool = Pool(factory, spec.pool_size if pool_size is None else pool_size, str(checked.path))
        self._plans: dict[int, tuple[tuple[int, int, int], ...]] = {}

    def __repr__(self) -> str:
        if self.image is not None:
            return (f"Generator({str(self.path)!r}, backend={self.backend!r}, input_shape={self.input_shape}, "
                    f"output_shape={self.output_shape}, scale={self.image.scale}, batch_sizes={self.batch_sizes})")
        return (
            f"Generator({str(self.path)!r}, backend={self.backend!r}, latent_dim={self.latent_dim}, "
            f"output_shape={self.output_shape}, batch_sizes={self.batch_sizes})"
        )

    def __enter__(self) -> "Generator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the interpreters (they are also freed when the generator is garbage-collected).

        Calls running in other threads finish; calls made after (or waiting for an interpreter)
        raise InputError."""
        self._pool.close()

    def plan(self, n: int) -> tuple[tuple[int, int, int], ...]:
        """How ``n`` latents are run: (start, count, batch) chunks, count <= batch (the rest is padding).

        Fixed batch sizes: greedy, largest batch that fits, and the remainder padded up to the smallest
        batch that holds it. Dynamic: calls of at most ``MAX_DYNAMIC_BATCH``, which bounds the buffers
        a session keeps."""
        got = self._plans.get(n)
        if got is not None:
            return got
        if self.batch_sizes is None:
            m = MAX_DYNAMIC_BATCH
            chunks = tuple((s, min(m, n - s), min(m, n - s)) for s in range(0, n, m))
        else:
            out, start, sizes = [], 0, self.batch_sizes
            while start < n:
                left = n - start
                fit = [b for b in sizes if b <= left]
                b = max(fit) if fit else min(b for b in sizes if b > left)
                count = min(b, left)
                out.append((start, count, b))
                start += count
            chunks = tuple(out)
        if len(self._plans) < 256:
            self._plans[n] = chunks
        return chunks

    def generate_from(self, z: np.ndarray, labels=None) -> np.ndarray:
        """Float32 images (N, C, H, W) in [-1, 1] from latents z (N, latent_dim); a conditional generator's
        ``labels`` are N class indices in [0, num_classes) (LabelError otherwise, and for an unconditional one)."""
        if self.image is not None:
            raise self._kind_error("generate_from")
        z = self._check_z(z)
        n = z.shape[0]
        onehot = None if labels is None and self.num_classes is None else self._onehot(n, labels)
        self._check_n(n)
        chunks = self.plan(n)
        session = self._pool.acquire()
        try:
            if len(chunks) == 1 and chunks[0][1] == chunks[0][2]:
                out = session.run(z, n, onehot)  # the common case: one call, no copies
            else:
                out = np.empty((n, *self.output_shape), dtype=np.float32)
                for start, count, batch in chunks:
                    part = z[start : start + count]
                    oh = None if onehot is None else onehot[start : start + count]
                    if count < batch:  # padded with zero rows (a label's too), whose images are dropped
                        part = np.concatenate([part, np.zeros((batch - count, self.latent_dim), np.float32)])
                        if oh is not None:
                            oh = np.concatenate([oh, np.zeros((batch - count, oh.shape[1]), np.float32)])
                    out[start : start + count] = session.run(part, batch, oh)[:count]
        finally:
            self._pool.release(session)
        _check_finite(out, self.path)
        return out

    def generate(self, n: int, seed: int = 0, label=None, labels=None) -> np.ndarray:
        """uint8 images (N, H, W, C) for ``latent(n, latent_dim, seed)``; see the module doc for the exact mapping.
        A conditional generator needs ``label`` (one class for all n images) or ``labels`` (n class indices)."""
        if self.image is not None:
            raise self._kind_error("generate")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise InputError(f"n must be an integer >= 0, got {n!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise InputError(f"seed must be an integer, got {seed!r}")
        classes = resolve(int(n), self.num_classes, label, labels, str(self.path))
        self._check_n(int(n))
        return to_pixels(self.generate_from(latent(int(n), self.latent_dim, int(seed)), labels=classes))

    # ------------------------------------------------------------------ image-to-image files (issue 21)

    def translate(self, images) -> np.ndarray:
        """uint8 images from uint8 images: one (H, W, C) (or (H, W) grey) -> one (H * s, W * s, C'), a batch
        (N, H, W, C) -> (N, H * s, W * s, C'). Pixels in and out by the contract's rules (``images``);
        ImageError for a dtype, shape, channel count or size the file does not take."""
        spec = self._image_of("translate")
        x, single = from_pixels(images, spec, str(self.path))
        h, w = x.shape[1], x.shape[2]
        p = pixels(self._run_images(to_file_layout(x, spec.layout), h, w), spec.layout)
        return p[0] if single else p

    def translate_array(self, x) -> np.ndarray:
        """Float32 images (N, C', h * s, w * s) in [-1, 1] from float images ``x`` (N, C, h, w) in [-1, 1]
        (the analogue of ``generate_from``)."""
        spec = self._image_of("translate_array")
        x = check_array(x, spec, str(self.path))
        return file_to_nchw(self._run_images(nchw_to_file(x, spec.layout), x.shape[2], x.shape[3]), spec.layout)

    def _image_of(self, call: str) -> ImageSpec:
        if self.image is None:
            raise self._kind_error(call)
        return self.image

    def _kind_error(self, call: str) -> InputKindError:
        if self.image is not None:
            c, h, w = self.input_shape
            size = f"{h}x{w}" if h is not None else f"sides multiples of {self.image.multiple}"
            return InputKindError(f"{self.path}: this model translates images ({c} channels, {size}); call "
                                  f"translate(images) or translate_array(x), not {call}")
        return InputKindError(f"{self.path}: this model generates images from latents (z of {self.latent_dim}); "
                              f"call generate(n) or generate_from(z), not {call}")

    def _run_images(self, x: np.ndarray, h: int, w: int) -> np.ndarray:
        """The file's output (N, ...) in its layout for inputs ``x`` (N, ...) in its layout, of size h x w."""
        spec = self.image
        n = x.shape[0]
        out_dims = spec.output_dims(h, w)
        per_image = 8 * int(np.prod(x.shape[1:])) + 13 * int(np.prod(out_dims))  # floats in and out, pixels
        cap = max(1, int(_MEMORY * MEMORY_SHARE) // per_image)
        if n > cap:
            raise InputError(f"{self.path}: {n} images of {h}x{w} in one call need more than {MEMORY_SHARE:.0%} of "
                             f"this machine's memory (at most {cap} at a time); translate them in smaller calls")
        if self.batch_sizes is None:
            m = max(1, min(MAX_DYNAMIC_BATCH, MAX_CALL_VALUES // int(np.prod(out_dims))))
            chunks = tuple((s, min(m, n - s), min(m, n - s)) for s in range(0, n, m))
        else:
            chunks = self.plan(n)
        session = self._pool.acquire()
        try:
            if len(chunks) == 1 and chunks[0][1] == chunks[0][2]:
                out = session.run(x, n)
            else:
                out = np.empty((n, *out_dims), dtype=np.float32)
                for start, count, batch in chunks:
                    part = x[start : start + count]
                    if count < batch:  # padded with zero images, whose outputs are dropped
                        part = np.concatenate([part, np.zeros((batch - count, *x.shape[1:]), np.float32)])
                    out[start : start + count] = session.run(part, batch)[:count]
        finally:
            self._pool.release(session)
        _check_finite(out, self.path)
        return out

    def _onehot(self, n: int, labels) -> np.ndarray | None:
        """The label input of ``n`` images (float32 (n, K)); LabelError for labels an unconditional generator
        is given, or a conditional one is not."""
        idx = resolve(n, self.num_classes, labels=labels, name=str(self.path))
        return None if idx is None else one_hot(idx, self.num_classes)

    def max_images(self) -> int:
        """The most images one call may make: its latents, float images and pixels within
        ``MEMORY_SHARE`` of this machine's memory (``generate(10**9)`` would need terabytes)."""
        pixels = int(np.prod(self.output_shape))
        per_image = 12 * self.latent_dim + 4 * pixels * 3 + pixels  # float64 + float32 z; images, rint, clip; uint8
        return max(1, int(_MEMORY * MEMORY_SHARE) // per_image)

    def _check_n(self, n: int) -> None:
        cap = self.max_images()
        if n > cap:
            raise InputError(
                f"{self.path}: {n} images in one call need more than {MEMORY_SHARE:.0%} of this machine's "
                f"memory (at most {cap} at a time); generate them in smaller calls"
            )

    def _check_z(self, z: np.ndarray) -> np.ndarray:
        if not isinstance(z, np.ndarray):
            z = np.asarray(z)
        if type(z) is not np.ndarray:  # np.matrix (whose * is a matrix product), masked arrays (issue 25)
            z = z.view(np.ndarray)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise InputError(f"{self.path}: z must have shape (N, {self.latent_dim}), got {z.shape}")
        if z.dtype != np.float32:
            if z.dtype.kind not in "fiu":
                raise InputError(f"{self.path}: z must be a float array, got {z.dtype}")
            z = z.astype(np.float32)
        if not z.flags.c_contiguous:
            z = np.ascontiguousarray(z)
        return z


def _check_finite(x: np.ndarray, path: Path) -> None:
    """A corrupt file (an output scale of 3e38, a broken weight) can make the interpreter return
    NaN or inf; that is an error, not an image (issue 14). One pass (a sum) in the common case."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(x.sum(dtype=np.float32)):
            return
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise BackendError(
            f"{path}: the model returned {bad} non-finite values (NaN or inf) of {x.size}; the file is corrupt"
        )


def to_pixels(x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) from float images (N, C, H, W) in [-1, 1]: clip(rint((x + 1) * 127.5), 0, 255), NaN -> 0."""
    x = np.asarray(x, dtype=np.float32)
    p = np.rint((x + np.float32(1)) * np.float32(127.5))
    p = np.clip(np.nan_to_num(p, nan=0.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(p.transpose(0, 2, 3, 1))
