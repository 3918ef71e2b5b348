"""Real datasets, read from the formats users download.

| name     | files (in ``--data-dir``, or ``$EDGEGAN_DATA/<name>``)                                   |
|----------|-------------------------------------------------------------------------------------------|
| digits   | none: scikit-learn's bundled 8x8 digits, upscaled (the embedded default)                  |
| mnist    | IDX files ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-*``   |
| cifar10  | the official ``cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``) or an npz       |
| celeba   | an npz with ``images`` (N, H, W, 3) uint8, or a folder of image files                    |
| folder   | an npz with ``images`` (and optional ``labels``), or a folder of image files              |

Every loader returns float32 images (N, C, H, W) in [-1, 1] at ``image_size`` (S for S×S, or
(H, W)): MNIST is zero-padded 28→32 (the paper's choice), other sizes are centre-cropped to the
target's aspect ratio and resized with bicubic filtering; ``resized`` in ``describe()`` records
when the pixels were resized (from the files' size to the target), so nothing is called native that
was not. Datasets without an official split (an npz, a folder, digits) are split
deterministically: a fixed permutation (numpy PCG64, seed 0) puts 1/6 of the images in ``test``.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgegan.errors import ConfigError, DatasetError
from edgegan.registry import Registry

ENV_VAR = "EDGEGAN_DATA"
# Caps on what one dataset file may hold (issue 14): a file is read whole, so /dev/zero, a FIFO or a
# 100 GB file must be refused, not read; the caps sit far above the real files (MNIST's IDX: 47 MB,
# a CIFAR-10 batch: 31 MB, CelebA at 64x64 as npz: ~2.5 GB).
MAX_FILE_BYTES = 8 << 30
MAX_IMAGE_PIXELS = 8192 * 8192  # one image of a folder dataset; a larger PNG is a decompression bomb


def _read(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """A dataset file's bytes: a regular file only, opened without blocking, at most ``limit`` bytes."""
    from edgegan_runtime.fileio import read_regular

    return read_regular(path, limit, "dataset file", error=DatasetError)
SPLITS = ("train", "test", "all")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class ImageDataset:
    name: str
    images: np.ndarray  # float32 (N, C, S, S) in [-1, 1]
    labels: np.ndarray | None  # int64 (N,) or None
    num_classes: int | None
    source: str  # where the pixels came from
    split: str
    native: tuple[int, int] | None = None  # (H, W) of the pixels as read (after MNIST's padding), before any resize

    @property
    def sha256(self) -> str:
        """Content hash of the pixels (and labels): the key under which derived artefacts are cached."""
        h = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        if self.labels is not None:
            h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "split": self.split, "count": len(self), "shape": list(self.shape),
               "num_classes": self.num_classes, "source": self.source, "sha256": self.sha256}
        if self.resized:
            out["resized"] = {"from": list(self.native), "to": list(self.shape[1:]), "method": RESIZE_METHOD}
        return out

    @property
    def resized(self) -> bool:
        return self.native is not None and tuple(self.native) != tuple(self.shape[1:])

    def torch(self):
        import torch

        return torch.from_numpy(self.images)


RESIZE_METHOD = "centre crop to the aspect ratio, bicubic resize"
MIN_SIDE, MAX_SIDE = 4, 512
Size = int | tuple[int, int]
Loader = Callable[[Path | None, str, Size], ImageDataset]


def image_hw(size: Size) -> tuple[int, int]:
    """(H, W) of an ``image_size`` (S or (H, W)); ConfigError outside [4, 512]."""
    hw = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size) if isinstance(
        size, (tuple, list)) else None
    if hw is None or len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and MIN_SIDE <= v <= MAX_SIDE
                                             for v in hw):
        raise ConfigError(f"image_size must be a side or (height, width) in [{MIN_SIDE}, {MAX_SIDE}], got {size!r}")
    return hw  # type: ignore[return-value]


def parse_image_size(text: str | int | None) -> tuple[int, int] | None:
    """``"64"`` or ``"48x64"`` (height x width) -> (H, W)."""
    if text is None:
        return None
    if isinstance(text, int):
        return image_hw(text)
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        vals = [int(v) for v in parts]
    except ValueError:
        raise ConfigError(f"image-size must be S or HxW (e.g. 64 or 48x64), got {text!r}") from None
    if len(vals) not in (1, 2):
        raise ConfigError(f"image-size must be S or HxW (e.g. 64 or 48x64), got {text!r}")
    return image_hw(vals[0] if len(vals) == 1 else (vals[0], vals[1]))
DATASETS: Registry[Loader] = Registry("dataset")


def dataset_names() -> list[str]:
    return DATASETS.names()


def resolve_data_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    """``--data-dir`` wins; else ``$EDGEGAN_DATA/<name>``; else a clear error."""
    if data_dir is not None:
        p = Path(data_dir)
        if not p.exists():
            raise DatasetError(f"{p}: data directory for {name!r} does not exist")
        return p
    root = os.environ.get(ENV_VAR)
    if root:
        p = Path(root) / name
        if p.exists():
            return p
        raise DatasetError(f"{p}: no {name!r} folder under ${ENV_VAR}={root}")
    raise DatasetError(f"dataset {name!r} needs files: pass --data-dir PATH or set ${ENV_VAR} to a folder holding {name}/")


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None, split: str = "train",
                 image_size: Size = 32, limit: int | None = None) -> ImageDataset:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    h, w = image_hw(image_size)
    image_size = h if h == w else (h, w)
    loader = DATASETS.get(name)
    path = None if name == "digits" else resolve_data_dir(name, data_dir)
    ds = loader(path, split, image_size)
    if len(ds) == 0:
        raise DatasetError(f"{ds.source}: dataset {name!r} split {split!r} is empty")
    if limit is not None and limit < len(ds):
        ds.images = ds.images[:limit]
        ds.labels = None if ds.labels is None else ds.labels[:limit]
    return ds


# --------------------------------------------------------------------------- pixel helpers

def to_unit_range(u8: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W[, C]) → float32 (N, C, H, W) in [-1, 1]."""
    if u8.ndim == 3:
        u8 = u8[:, :, :, None]
    return (u8.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0).astype(np.float32)


def resize_square(u8: np.ndarray, size: Size) -> np.ndarray:
    """Centre-crop each image (N, H, W, C) uint8 to the target's aspect ratio and resize it to
    ``size`` (S x S, or (H, W)) with bicubic filtering."""
    n, h, w, c = u8.shape
    th, tw = (size, size) if isinstance(size, int) else size
    if (h, w) == (th, tw):
        return u8
    from PIL import Image

    # the largest centred window of the target's aspect ratio
    if h * tw >= w * th:
        cw, ch = w, max(1, round(w * th / tw))
    else:
        ch, cw = h, max(1, round(h * tw / th))
    top, left = (h - ch) // 2, (w - cw) // 2
    out = np.empty((n, th, tw, c), dtype=np.uint8)
    for i in range(n):
        img = u8[i, top:top + ch, left:left + cw]
        im = Image.fromarray(img[:, :, 0] if c == 1 else img)
        out[i] = np.asarray(im.resize((tw, th), Image.BICUBIC)).reshape(th, tw, c)
    return out


def _holdout(n: int, split: str) -> np.ndarray:
    if split == "all":
        return np.arange(n)
    perm = np.random.default_rng(0).permutation(n)
    n_test = n // 6
    idx = perm[:n_test] if split == "test" else perm[n_test:]
    return np.sort(idx)


def _finish(name: str, u8: np.ndarray, labels: np.ndarray | None, source: str, split: str, size: int,
            num_classes: int | None = None) -> ImageDataset:
    if u8.ndim == 3:
        u8 = u8[:, :, :, None]
    native = (int(u8.shape[1]), int(u8.shape[2]))
    u8 = resize_square(u8, size)
    if labels is not None:
        labels = labels.astype(np.int64)
        num_classes = num_classes or int(labels.max()) + 1
    return ImageDataset(name, to_unit_range(u8), labels, num_classes, source, split, native)


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
