"""Image-to-image files (issue 21): what such a file takes, and the images a caller may give it.

An image-to-image file (super-resolution, colourisation, inpainting) takes one input, images float32 in
[-1, 1], and returns images float32 in [-1, 1], ``scale`` times larger per side: NCHW in an ONNX file,
NHWC in a TFLite file (its contract's ``input`` entry says which, see ``contract``). ``ImageSpec`` is
that entry once checked against the file's tensors.

Callers give 8-bit pixels, ``translate``: uint8 (H, W, C), a batch (N, H, W, C), or a grey image as
(H, W); they become the file's input by ``contract.IMAGE_PIXELS_RULE`` (x = p / 127.5 - 1 in float32,
``from_pixels``), and the output becomes pixels by the same rule as a generator's (``contract.PIXELS_RULE``).
Or they give float images (N, C, H, W) in [-1, 1], ``translate_array`` (the analogue of ``generate_from``).

Every refusal is an ``ImageError`` (an ``InputError``) with a one-line message that names the form
expected: the wrong dtype, rank or channels, or a size the file does not take (a TFLite file takes the
one size it was exported at, an ONNX file any height and width that are multiples of ``multiple``).
Nothing is resized, converted to grey or padded on the caller's behalf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgegan_runtime.errors import ImageError

MAX_SIDE = 1 << 14  # 16384: an input side beyond this is a mistake (a 16384x16384 RGB float image is 3 GiB)


@dataclass(frozen=True)
class ImageSpec:
    """What an image-to-image file takes and returns (its contract's ``input`` and ``output``, checked)."""

    layout: str  # "NCHW" (ONNX) or "NHWC" (TFLite): the file's tensors, input and output
    channels: int  # input channels (1 grey, 3 RGB, 4 for inpaint's image + mask)
    out_channels: int
    height: int | None  # the file's fixed input size, or None: any multiple of ``multiple``
    width: int | None
    scale: int  # output side / input side
    multiple: int  # input sides must divide by this (the network's stride-2 stages)
    size: tuple[int, int]  # the (height, width) the exporter checked the file at
    task: str | None  # edgegan.tasks: how the input was made from an image in training

    @property
    def dynamic(self) -> bool:
        return self.height is None

    def file_dims(self, channels: int, h: int, w: int) -> tuple[int, int, int]:
        """(C, h, w) in the file's layout."""
        return (channels, h, w) if self.layout == "NCHW" else (h, w, channels)

    def output_dims(self, h: int, w: int) -> tuple[int, int, int]:
        """The file's output (after the batch) for an input of h x w, in its layout."""
        return self.file_dims(self.out_channels, h * self.scale, w * self.scale)

    def takes(self) -> str:
        """The sizes the file takes, for messages."""
        if not self.dynamic:
            return f"{self.height}x{self.width} images (the size it was exported at)"
        if self.multiple == 1:
            return "images of any size"
        return f"images whose sides are multiples of {self.multiple}"

    def check_size(self, h: int, w: int, name: str) -> None:
        if not self.dynamic and (h, w) != (self.height, self.width):
            raise ImageError(f"{name}: this model takes {self.takes()}; got {h}x{w} (resize or crop the image, or "
                             f"export the model with --input-size {h}x{w})")
        if h < 1 or w < 1 or h % self.multiple or w % self.multiple:
            m = self.multiple
            near = f" (e.g. {max(m, h // m * m)}x{max(m, w // m * m)})" if h >= 1 and w >= 1 else ""
            raise ImageError(f"{name}: this model takes {self.takes()}; got {h}x{w}: crop or pad it{near}")
        if max(h, w) > MAX_SIDE:
            raise ImageError(f"{name}: a {h}x{w} image is larger than this runtime takes ({MAX_SIDE} a side); "
                             "translate it in tiles")


def from_pixels(images: Any, spec: ImageSpec, name: str) -> tuple[np.ndarray, bool]:
    """(float32 (N, h, w, C) by ``IMAGE_PIXELS_RULE``, whether one image was given) from uint8 pixels: one
    image (H, W, C) or (H, W) grey, or a batch (N, H, W, C). ImageError for anything else."""
    if not isinstance(images, np.ndarray):
        try:
            images = np.asarray(images)
        except (ValueError, TypeError):
            raise ImageError(f"{name}: images must be a uint8 array (H, W, C) or (N, H, W, C); got "
                             f"{type(images).__name__}") from None
    if images.dtype != np.uint8:
        hint = " (float images in [-1, 1]: use translate_array)" if images.dtype.kind == "f" else ""
        raise ImageError(f"{name}: images must be uint8 pixels (H, W, C) or (N, H, W, C), got {images.dtype}{hint}")
    single = images.ndim in (2, 3)
    if images.ndim == 2:
        images = images[:, :, None]
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ImageError(f"{name}: images must be (H, W), (H, W, C) or (N, H, W, C), got shape {images.shape}")
    _check_channels(images.shape[3], spec, name, "(N, H, W, C)")
    spec.check_size(images.shape[1], images.shape[2], name)
    x = np.ascontiguousarray(images, dtype=np.float32) / np.float32(127.5) - np.float32(1)
    return x, single


def check_array(x: Any, spec: ImageSpec, name: str) -> np.ndarray:
    """Float images (N, C, H, W) in [-1, 1] as C-contiguous float32 (N, C, H, W); ImageError otherwise."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if type(x) is not np.ndarray:  # np.matrix, masked arrays
        x = x.view(np.ndarray)
    if x.dtype.kind != "f":
        hint = " (uint8 pixels: use translate)" if x.dtype == np.uint8 else ""
        raise ImageError(f"{name}: x must be float images (N, C, H, W) in [-1, 1], got {x.dtype}{hint}")
    if x.ndim != 4:
        raise ImageError(f"{name}: x must be float images (N, C, H, W), got shape {x.shape}")
    _check_channels(x.shape[1], spec, name, "(N, C, H, W)")
    spec.check_size(x.shape[2], x.shape[3], name)
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    return np.ascontiguousarray(x)


def _check_channels(c: int, spec: ImageSpec, name: str, form: str) -> None:
    if c == spec.channels:
        return
    want = {1: "1 channel (grey)", 3: "3 channels (RGB)"}.get(spec.channels, f"{spec.channels} channels")
    hint = ""
    if spec.channels == 1 and c in (3, 4):
        hint = "; convert it to grey first (e.g. Y = 0.299 R + 0.587 G + 0.114 B)"
    elif spec.task == "inpaint":
        hint = "; an inpainting model takes the image and its mask (255 in the hole, 0 elsewhere) as the last channel"
    raise ImageError(f"{name}: this model takes images {form} of {want}; got {c}{hint}")


def to_file_layout(x_nhwc: np.ndarray, layout: str) -> np.ndarray:
    return x_nhwc if layout == "NHWC" else np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))


def nchw_to_file(x: np.ndarray, layout: str) -> np.ndarray:
    return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def file_to_nchw(y: np.ndarray, layout: str) -> np.ndarray:
    return y if layout == "NCHW" else np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def pixels(y: np.ndarray, layout: str) -> np.ndarray:
    """uint8 (N, H, W, C) from the file's output in its ``layout`` by ``contract.PIXELS_RULE``."""
    p = np.rint((np.asarray(y, dtype=np.float32) + np.float32(1)) * np.float32(127.5))
    p = np.clip(np.nan_to_num(p, nan=0.0), 0, 255).astype(np.uint8)
    return p if layout == "NHWC" else np.ascontiguousarray(p.transpose(0, 2, 3, 1))
