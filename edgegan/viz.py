"""Sample grids and side-by-side comparisons as PNG (Pillow only)."""

from __future__ import annotations

import math
import os
from io import BytesIO

import numpy as np

from edgegan.manifest import atomic_write_bytes


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] → uint8 (N, H, W, C); the rounding the runtime uses too."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def grid(images: np.ndarray, nrow: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile uint8 (N, H, W, C) or float (N, C, H, W) images into one uint8 (H', W', C) array."""
    u8 = images if images.dtype == np.uint8 else to_uint8(images)
    n, h, w, c = u8.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 40, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = u8[i]
    if scale > 1:
        out = out.repeat(scale, 0).repeat(scale, 1)
    return out


def save_png(array: np.ndarray, path: str | os.PathLike) -> None:
    from PIL import Image

    im = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buf = BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def save_grid(images: np.ndarray, path: str | os.PathLike, nrow: int | None = None, scale: int = 2) -> None:
    save_png(grid(images, nrow=nrow, scale=scale), path)


def save_comparison(columns: dict[str, np.ndarray], path: str | os.PathLike, nrow: int = 8, scale: int = 2) -> None:
    """Grids of several models for the same z, side by side, each with its name above (e.g. teacher | student)."""
    from PIL import Image, ImageDraw

    tiles = [grid(imgs, nrow=nrow, scale=scale) for imgs in columns.values()]
    h = max(t.shape[0] for t in tiles)
    label_h, gap = 14, 8
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    canvas = Image.new("RGB", (width, h + label_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for name, t in zip(columns, tiles):
        im = Image.fromarray(t[:, :, 0] if t.shape[2] == 1 else t).convert("RGB")
        canvas.paste(im, (x, label_h))
        draw.text((x + 2, 1), name, fill=(0, 0, 0))
        x += t.shape[1] + gap
    buf = BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
