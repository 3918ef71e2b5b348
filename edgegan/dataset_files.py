"""The readers behind ``edgegan.data.DATASETS``: scikit-learn's digits, MNIST's IDX files, CIFAR-10's
batches (a restricted unpickler, never ``pickle.load``) or an npz, and folders of image files; each
registers itself under its dataset name."""

from __future__ import annotations

import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgegan.data import (DATASETS, IMAGE_SUFFIXES, MAX_FILE_BYTES, MAX_IMAGE_PIXELS, ImageDataset, _finish, _holdout, _read,
                          resize_square, to_unit_range)
from edgegan.errors import DatasetError


# --------------------------------------------------------------------------- digits (embedded)

@DATASETS.register("digits")
def _load_digits(_: Path | None, split: str, size: int) -> ImageDataset:
    from sklearn.datasets import load_digits
    from PIL import Image

    d = load_digits()
    x = (d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # (1797, 8, 8), values 0..16
    target, size = size, size if isinstance(size, int) else max(size)  # (H, W): made square, then resized
    inner = size - size // 8  # digits fill the frame; keep a margin like MNIST's
    up = np.stack([np.asarray(Image.fromarray(im).resize((inner, inner), Image.BICUBIC)) for im in x])
    pad = (size - inner) // 2
    canvas = np.zeros((len(up), size, size), dtype=np.uint8)
    canvas[:, pad:pad + inner, pad:pad + inner] = up
    idx = _holdout(len(canvas), split)
    return ImageDataset("digits", to_unit_range(resize_square(canvas[idx][..., None], target)),
                        d.target[idx].astype(np.int64), 10, "sklearn.datasets.load_digits", split)


# --------------------------------------------------------------------------- MNIST (IDX)

def _open_maybe_gz(path: Path) -> bytes:
    raw = _read(path)
    if raw[:2] == b"\x1f\x8b":
        import zlib

        try:  # decompressed with a cap: a few KB of gzip can expand to terabytes
            d = zlib.decompressobj(wbits=31)
            out = d.decompress(raw, MAX_FILE_BYTES + 1)
        except zlib.error as e:
            raise DatasetError(f"{path}: corrupt gzip ({e})") from None
        if len(out) > MAX_FILE_BYTES:
            raise DatasetError(f"{path}: decompresses to more than {MAX_FILE_BYTES} bytes")
        if not d.eof:
            raise DatasetError(f"{path}: corrupt gzip (truncated)")
        return out
    return raw


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not), checking the magic number and the declared sizes."""
    raw = _open_maybe_gz(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path}: not an IDX file of unsigned bytes (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    if not 1 <= ndim <= 4:  # images (N, H, W) and labels (N,); numpy stops at 64 dimensions (issue 25)
        raise DatasetError(f"{path}: IDX file of {ndim} dimensions (expected 1 for labels, 3 for images)")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    count = math.prod(dims)  # Python ints: numpy's int64 product overflows on hostile dimensions
    if len(raw) - head != count:
        raise DatasetError(f"{path}: IDX declares shape {dims} ({count} bytes) but holds {len(raw) - head}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.exists():
            return cand
    raise DatasetError(f"{folder}: missing {stem}[.gz] (MNIST IDX files expected)")


@DATASETS.register("mnist")
def _load_mnist(folder: Path, split: str, size: int) -> ImageDataset:
    parts = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]
    imgs, labs = [], []
    for p in parts:
        ipath = _find(folder, f"{p}-images-idx3-ubyte")
        lpath = _find(folder, f"{p}-labels-idx1-ubyte")
        x, y = read_idx(ipath), read_idx(lpath)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(f"{ipath}: expected images (N, 28, 28) and N labels, got {x.shape} and {y.shape}")
        imgs.append(x)
        labs.append(y)
    x, y = np.concatenate(imgs), np.concatenate(labs)
    if isinstance(size, int) and size >= x.shape[1] and (size - x.shape[1]) % 2 == 0:
        pad = (size - x.shape[1]) // 2  # the paper pads 28x28 MNIST to 32x32
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    return _finish("mnist", x, y, str(folder), split, size, 10)


# --------------------------------------------------------------------------- CIFAR-10

class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for the official CIFAR batches that refuses every global but numpy's array rebuilders.

    The batches are pickled dicts of bytes, lists and numpy arrays; allowing only these few
    constructors means a hostile file cannot run code (it can only build arrays)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = _read(path)
    try:
        d = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure of a foreign file is a dataset error
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DatasetError(f"{path}: CIFAR batch lacks 'data'/'labels'")
    try:
        data = np.asarray(d[b"data"], dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as e:
        raise DatasetError(f"{path}: CIFAR 'data' is not an array of bytes ({e})") from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: CIFAR 'data' should be (N, 3072), got {data.shape}")
    try:
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise DatasetError(f"{path}: CIFAR 'labels' are not integers ({e})") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise DatasetError(f"{path}: CIFAR batch holds {len(data)} images but {labels.shape} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: CIFAR-10 labels must be 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


MAX_CLASSES = 100_000  # labels of an npz: class indices (the classifier has one output per class)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(io.BytesIO(_read(path)), allow_pickle=False) as z:
            if "images" not in z:
                raise DatasetError(f"{path}: npz has no 'images' array (found: {', '.join(z.files) or 'nothing'})")
            x = z["images"]
            y = z["labels"] if "labels" in z else None
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable npz ({type(e).__name__}: {e})") from None
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)):
        raise DatasetError(f"{path}: 'images' must be uint8 (N, H, W) or (N, H, W, 1|3), got {x.dtype} {x.shape}")
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise DatasetError(f"{path}: 'images' have no pixels (height x width {x.shape[1]}x{x.shape[2]})")
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise DatasetError(f"{path}: 'labels' must be (N,) matching images, got {y.shape}")
    if y is not None and (y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES))):
        got = f"{y.dtype}" if y.dtype.kind not in "iu" else f"{y.min()}..{y.max()}"
        raise DatasetError(f"{path}: 'labels' must be integers 0..{MAX_CLASSES - 1}, got {got}")  # issue 25
    return x, y


def _single_npz(folder: Path) -> Path | None:
    if folder.is_file():
        return folder
    npz = sorted(folder.glob("*.npz"))
    if len(npz) > 1:
        raise DatasetError(f"{folder}: several npz files ({', '.join(p.name for p in npz)}); point --data-dir at one")
    return npz[0] if npz else None


@DATASETS.register("cifar10")
def _load_cifar10(folder: Path, split: str, size: int) -> ImageDataset:
    base = folder / "cifar-10-batches-py" if (folder / "cifar-10-batches-py").is_dir() else folder
    if folder.is_dir() and (base / "test_batch").exists():
        names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        names["all"] = names["train"] + names["test"]
        xs, ys = zip(*(_read_cifar_batch(base / n) for n in names[split] if (base / n).exists()))
        return _finish("cifar10", np.concatenate(xs), np.concatenate(ys), str(base), split, size, 10)
    npz = _single_npz(folder)
    if npz is None:
        raise DatasetError(f"{folder}: no CIFAR-10 files (expected cifar-10-batches-py/ or an npz with images/labels)")
    x, y = _read_npz(npz)
    idx = _holdout(len(x), split)
    return _finish("cifar10", x[idx], None if y is None else y[idx], str(npz), split, size, 10 if y is not None else None)


def _read_folder(folder: Path) -> np.ndarray:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) and no npz")
    imgs = [read_image(f) for f in files]
    shapes = {i.shape for i in imgs}
    if len(shapes) > 1:  # crop each to its own square first so they stack
        s = 64 if min(min(sh[:2]) for sh in shapes) >= 64 else 32
        imgs = [resize_square(i[None], s)[0] for i in imgs]
    return np.stack(imgs)


def read_image(path: Path) -> np.ndarray:
    """One image file as uint8 (H, W, 3): a regular file, read with a cap, and refused before decoding
    when its header declares more than MAX_IMAGE_PIXELS (a 20000x20000 PNG is a decompression bomb)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    data = _read(path, limit=256 << 20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS or w < 1 or h < 1:
                    raise DatasetError(f"{path}: image of {w}x{h} pixels (at most {MAX_IMAGE_PIXELS:,} pixels are read)")
                return np.asarray(im.convert("RGB"))
    except DatasetError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DatasetError(f"{path}: image too large to decode safely ({e})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"{path}: unreadable image ({e})") from None


def _load_images(name: str, folder: Path, split: str, size: int) -> ImageDataset:
    npz = _single_npz(folder)
    if npz is not None:
        x, y = _read_npz(npz)
        src = str(npz)
    else:
        x, y, src = _read_folder(folder), None, str(folder)
    idx = _holdout(len(x), split)
    return _finish(name, x[idx], None if y is None else y[idx], src, split, size)


@DATASETS.register("celeba")
def _load_celeba(folder: Path, split: str, size: int) -> ImageDataset:
    return _load_images("celeba", folder, split, size)


@DATASETS.register("folder")
def _load_folder(folder: Path, split: str, size: int) -> ImageDataset:
    return _load_images("folder", folder, split, size)
