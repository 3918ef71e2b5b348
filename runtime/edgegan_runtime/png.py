"""A minimal PNG writer and reader (stdlib zlib and numpy only) and an image grid, so ``generate -o grid.png``
and ``translate in.png -o out.png`` need no Pillow.

The reader (``read_png``, ``decode_png``) takes what cameras and editors write: 8-bit grey, grey + alpha,
RGB, RGBA, and palette images (bit depths 1 to 8 for grey and palette), every filter type, chunks'
CRCs checked. It refuses, with one ``ImageError`` line, 16-bit and interlaced (Adam7) files and images
over ``MAX_PIXELS`` (before decompressing: a small file may declare a huge image).
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from edgegan_runtime.errors import ImageError, OutputError
from edgegan_runtime.fileio import atomic_write_bytes, read_regular


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


# ------------------------------------------------------------------------------------------ reading

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 8192 * 8192  # one image; a larger one is refused before it is decompressed (a decompression bomb)
MAX_FILE_BYTES = 1 << 30
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def read_png(path: str | os.PathLike) -> np.ndarray:
    """uint8 (H, W, C) of the PNG file ``path`` (see ``decode_png``); ImageError when it cannot be read."""
    data = read_regular(path, MAX_FILE_BYTES, "image file", error=ImageError)
    return decode_png(data, os.fspath(path))


def decode_png(data: bytes, name: str = "PNG") -> np.ndarray:
    """uint8 (H, W, C) of a PNG: C is 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); a palette image becomes
    RGB, or RGBA when it has a transparency chunk; grey of 1, 2 or 4 bits is scaled to 0..255."""
    if data[:8] != SIGNATURE:
        raise ImageError(f"{name}: not a PNG file")
    pos, ihdr, idat, palette, trns = 8, None, [], None, None
    while True:
        if pos + 12 > len(data):
            raise ImageError(f"{name}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise ImageError(f"{name}: truncated PNG ({kind!r} chunk)")
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ImageError(f"{name}: corrupt PNG ({kind.decode('latin-1')!r} chunk fails its CRC)")
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = _ihdr(body, name)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3) if length % 3 == 0 else None
        elif kind == b"tRNS":
            trns = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        if ihdr is None:
            raise ImageError(f"{name}: corrupt PNG (the first chunk is not IHDR)")
    if ihdr is None or not idat:
        raise ImageError(f"{name}: PNG without {'IHDR' if ihdr is None else 'image data'}")
    w, h, bits, color = ihdr
    samples = _CHANNELS[color]
    row = (w * samples * bits + 7) // 8
    raw = _inflate(b"".join(idat), h * (row + 1), name)
    px = _unfilter(np.frombuffer(raw, np.uint8).reshape(h, row + 1), max(1, samples * bits // 8), name)
    if bits < 8:
        px = np.unpackbits(px, axis=1).reshape(h, -1, bits)[:, :w]
        px = (px * (1 << np.arange(bits - 1, -1, -1, dtype=np.uint8))).sum(axis=2, dtype=np.uint16).astype(np.uint8)
        if color == 0:
            px = (px.astype(np.uint16) * 255 // ((1 << bits) - 1)).astype(np.uint8)
    img = px.reshape(h, w, samples)
    if color == 3:
        if palette is None or len(palette) == 0:
            raise ImageError(f"{name}: palette PNG without a valid PLTE chunk")
        idx = img[:, :, 0]
        if int(idx.max()) >= len(palette):
            raise ImageError(f"{name}: corrupt PNG (a pixel names colour {int(idx.max())} of a {len(palette)}-colour "
                             "palette)")
        img = palette[idx]
        if trns is not None:
            alpha = np.full(len(palette), 255, np.uint8)
            alpha[: min(len(trns), len(palette))] = np.frombuffer(trns, np.uint8)[: len(palette)]
            img = np.concatenate([img, alpha[idx][:, :, None]], axis=2)
    return np.ascontiguousarray(img)


def _ihdr(body: bytes, name: str) -> tuple[int, int, int, int]:
    if len(body) != 13:
        raise ImageError(f"{name}: corrupt PNG (IHDR of {len(body)} bytes)")
    w, h, bits, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
    if color not in _CHANNELS or compression or filtering:
        raise ImageError(f"{name}: corrupt PNG (colour type {color}, compression {compression}, filter {filtering})")
    if bits == 16:
        raise ImageError(f"{name}: a 16-bit PNG; this reader takes 8-bit images (save it with 8 bits per channel)")
    if bits not in (1, 2, 4, 8) or (bits != 8 and color not in (0, 3)):
        raise ImageError(f"{name}: corrupt PNG (bit depth {bits} for colour type {color})")
    if interlace:
        raise ImageError(f"{name}: an interlaced PNG; this reader takes non-interlaced images (save it without "
                         "interlacing)")
    if w < 1 or h < 1 or w * h > MAX_PIXELS:
        raise ImageError(f"{name}: a {w}x{h} PNG is too large to decode safely (at most {MAX_PIXELS} pixels)")
    return w, h, bits, color


def _inflate(data: bytes, size: int, name: str) -> bytes:
    """The image's filtered rows: exactly ``size`` bytes, never more decompressed (a decompression bomb)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, size + 1)
    except zlib.error as e:
        raise ImageError(f"{name}: corrupt PNG image data ({e})") from None
    if len(out) != size:
        raise ImageError(f"{name}: corrupt PNG (image data of {len(out)} bytes for rows of {size})")
    return out


def _unfilter(rows: np.ndarray, bpp: int, name: str) -> np.ndarray:
    """PNG's per-row filters undone (None, Sub, Up, Average, Paeth: PNG spec section 9.2)."""
    h, n = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((h, n), np.uint8)
    prev = np.zeros(n, np.uint8)
    for y in range(h):
        f, cur = int(rows[y, 0]), rows[y, 1:]
        if f == 0:
            out[y] = cur
        elif f == 1:  # Sub: a running sum over pixels, per byte of a pixel
            pad = (-n) % bpp
            c = np.concatenate([cur, np.zeros(pad, np.uint8)]).reshape(-1, bpp)
            out[y] = (np.cumsum(c, axis=0, dtype=np.uint64) % 256).astype(np.uint8).reshape(-1)[:n]
        elif f == 2:  # Up
            out[y] = cur + prev
        elif f in (3, 4):  # Average, Paeth: each byte depends on the one to its left, decoded
            out[y] = _left_dependent(f, cur.tobytes(), prev.tobytes(), bpp)
        else:
            raise ImageError(f"{name}: corrupt PNG (row {y} has filter type {f})")
        prev = out[y]
    return out


def _left_dependent(f: int, cur: bytes, prev: bytes, bpp: int) -> np.ndarray:
    line = bytearray(cur)
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        if f == 3:
            line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return np.frombuffer(bytes(line), np.uint8)
