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
import os
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
    def class_names(self) -> list[str] | None:
        """Names of the classes 0..K-1 where the dataset defines them (CIFAR-10's, the digits')."""
        names = CLASS_NAMES.get(self.name)
        return list(names) if names is not None and len(names) == self.num_classes else None

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


CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(i) for i in range(10)),
    "digits": tuple(str(i) for i in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
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


from edgegan import dataset_files  # noqa: E402,F401 - registers the loaders (it imports the helpers above)
