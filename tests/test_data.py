import gzip
import pickle
import struct

import numpy as np
import pytest

from edgegan.data import load_dataset
from edgegan.dataset_files import read_idx
from edgegan.errors import ConfigError, DatasetError, UnknownNameError


def _check(ds, n=None, c=1, classes=10):
    assert ds.images.dtype == np.float32 and ds.images.shape[1:] == (c, 32, 32)
    assert ds.images.min() >= -1.0 and ds.images.max() <= 1.0
    if n is not None:
        assert len(ds) == n
    if classes:
        assert ds.num_classes == classes and ds.labels.shape == (len(ds),)


def test_digits_embedded():
    tr, te = load_dataset("digits"), load_dataset("digits", split="test")
    _check(tr)
    assert len(tr) + len(te) == 1797
    assert load_dataset("digits", image_size=64).images.shape[2:] == (64, 64)


def test_mnist_shared(shared_data):
    tr = load_dataset("mnist", data_dir=shared_data / "mnist")
    _check(tr, n=22_699)
    te = load_dataset("mnist", split="test")  # via $EDGEGAN_DATA
    _check(te, n=10_000)
    # 28x28 digits padded to 32x32: the border is background (-1).
    assert np.all(te.images[:, :, :2, :] == -1.0)


def test_cifar10_and_celeba_shared(shared_data):
    c = load_dataset("cifar10", split="all")
    _check(c, n=10_000, c=3)
    assert np.bincount(c.labels).tolist() == [1000] * 10
    ce = load_dataset("celeba", split="all")
    _check(ce, n=8000, c=3, classes=None)
    assert ce.labels is None


def _write_idx(path, arr, gz):
    raw = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_tiny_written(tmp_path, gz):
    rng = np.random.default_rng(0)
    for p in ("train", "t10k"):
        sfx = ".gz" if gz else ""
        _write_idx(tmp_path / f"{p}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), gz)
        _write_idx(tmp_path / f"{p}-labels-idx1-ubyte{sfx}", np.arange(7, dtype=np.uint8), gz)
    ds = load_dataset("mnist", data_dir=tmp_path, split="all")
    _check(ds, n=14)
    assert (ds.images[0, 0, 2:30, 2:30] + 1) * 127.5 == pytest.approx(
        read_idx(tmp_path / f"train-images-idx3-ubyte{'.gz' if gz else ''}")[0].astype(np.float32), abs=1e-3)


def test_mnist_malformed(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8), False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte: IDX declares"):
        load_dataset("mnist", data_dir=tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DatasetError, match="not an IDX file"):
        load_dataset("mnist", data_dir=tmp_path)


def test_cifar_official_batches(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(1)
    data = {}
    for name in ["data_batch_1", "test_batch"]:
        data[name] = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
        (base / name).write_bytes(pickle.dumps({b"data": data[name], b"labels": [0, 1, 2, 3, 9]}, protocol=2))
    tr = load_dataset("cifar10", data_dir=tmp_path, split="train")
    _check(tr, n=5, c=3)
    te = load_dataset("cifar10", data_dir=tmp_path, split="test")
    raw = data["test_batch"][0].reshape(3, 32, 32)
    assert np.allclose((te.images[0] + 1) * 127.5, raw, atol=1e-3)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_cifar_refuses_code_in_pickles(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(DatasetError, match="refusing to load global"):
        load_dataset("cifar10", data_dir=tmp_path, split="test")


def test_npz_and_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (12, 40, 50, 3), dtype=np.uint8)
    np.savez(tmp_path / "faces.npz", images=imgs)
    ds = load_dataset("celeba", data_dir=tmp_path, split="all")
    _check(ds, n=12, c=3, classes=None)
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(imgs[i]).save(folder / f"{i}.png")
    ds = load_dataset("folder", data_dir=folder, split="all", image_size=64)
    assert ds.images.shape == (6, 3, 64, 64)


def test_bad_inputs(tmp_path, monkeypatch):
    with pytest.raises(UnknownNameError, match="Did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(ConfigError):
        load_dataset("digits", split="val")
    with pytest.raises(DatasetError, match="missing train-images"):
        load_dataset("mnist", data_dir=tmp_path)
    np.savez(tmp_path / "x.npz", pixels=np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(DatasetError, match="no 'images' array"):
        load_dataset("folder", data_dir=tmp_path)
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable npz"):
        load_dataset("folder", data_dir=tmp_path)
    monkeypatch.delenv("EDGEGAN_DATA")
    with pytest.raises(DatasetError, match="EDGEGAN_DATA"):
        load_dataset("mnist")
