"""A minimal PNG writer (stdlib zlib only) and an image grid, so ``generate -o grid.png`` needs no Pillow."""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from edgegan_runtime.errors import OutputError
from edgegan_runtime.fileio import atomic_write_bytes


def grid(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 images (N, H, W, C) into one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) image."""
    n, h, w, c = images.shape
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y : y + h, x : x + w] = images[i]
    return out


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image (H, W) or (H, W, C) with C in 1 (grey), 3 (RGB) or 4 (RGBA)."""
    if image.ndim == 2:
        image = image[:, :, None]
    h, w, c = image.shape
    color = {1: 0, 3: 2, 4: 6}.get(c)
    if image.dtype != np.uint8 or color is None:
        raise ValueError(f"encode_png: need uint8 (H, W, 1|3|4), got {image.dtype} {image.shape}")
    raw = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * c)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def check_output(path: str | os.PathLike, *, make_folders: bool = False) -> Path:
    """``path`` as a Path, or OutputError when it is a folder or (unless ``make_folders``) its folder is missing."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; name the PNG file to write")
    if not make_folders and not path.parent.is_dir():
        what = "not a folder" if path.parent.exists() else "no such folder"
        raise OutputError(f"{path}: cannot write the PNG ({what}: {path.parent})")
    return path


def write_png(path: str | os.PathLike, image: np.ndarray, *, make_folders: bool = True) -> Path:
    """Write ``image`` as PNG atomically, with the same file mode as every other output.

    ``make_folders=False``: a missing folder is an error rather than created. Raises OutputError
    (one line) when the file cannot be written; nothing is left behind (the temporary file of the
    atomic write is removed)."""
    path = check_output(path, make_folders=make_folders)
    data = encode_png(image)
    try:
        return atomic_write_bytes(path, data)
    except OSError as e:
        raise OutputError(f"{path}: cannot write the PNG ({e.strerror or e})") from None
