"""The C port of the latent sampler and the pixel rule (edgegan_runtime/c/, issue 12), compiled here with
the system compiler and compared with the Python runtime bit for bit: the specification's test vectors,
long streams, ties and non-finite values, and whole images through a real model."""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edgegan_runtime as rt
from edgegan_runtime import contract
from edgegan_runtime.backend import _dequantize, _quantize
from edgegan_runtime.tflite_check import TensorSpec

latent_mod = importlib.import_module("edgegan_runtime.latent")  # the package rebinds the name to the function
C_DIR = Path(rt.__file__).parent / "c"
CC = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (gcc or cc, or $CC) on this machine")

_f32p = ctypes.POINTER(ctypes.c_float)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("c") / "libedgegan.so"
    # -Werror -pedantic: the files must stay plain C99 that any app's toolchain accepts.
    cmd = [CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off", "-fPIC", "-shared",
           str(C_DIR / "edgegan.c"), "-o", str(out), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    so = ctypes.CDLL(str(out))
    so.edgegan_splitmix64.restype = ctypes.c_uint64
    so.edgegan_splitmix64.argtypes = [ctypes.c_uint64, ctypes.c_uint64]
    so.edgegan_latent.argtypes = [ctypes.c_uint64, ctypes.c_size_t, ctypes.c_size_t, _f32p]
    so.edgegan_latent_range.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_size_t, _f32p]
    so.edgegan_to_pixels.argtypes = [_f32p] + [ctypes.c_size_t] * 4 + [ctypes.POINTER(ctypes.c_uint8)]
    so.edgegan_quantize_int8.argtypes = [_f32p, ctypes.c_size_t, ctypes.c_float, ctypes.c_int32,
                                         ctypes.POINTER(ctypes.c_int8)]
    so.edgegan_dequantize_int8.argtypes = [ctypes.POINTER(ctypes.c_int8), ctypes.c_size_t, ctypes.c_float,
                                           ctypes.c_int32, _f32p]
    so.edgegan_from_pixels.argtypes = [ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t, _f32p]
    so.edgegan_pixels_to_nchw.argtypes = [ctypes.POINTER(ctypes.c_uint8)] + [ctypes.c_size_t] * 4 + [_f32p]
    so.edgegan_to_pixels_nhwc.argtypes = [_f32p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint8)]
    so.edgegan_one_hot.restype = ctypes.c_int
    so.edgegan_one_hot.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t, ctypes.c_size_t, _f32p]
    so.edgegan_tflite_metadata.restype = ctypes.c_void_p
    so.edgegan_tflite_metadata.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                           ctypes.POINTER(ctypes.c_size_t)]
    return so


def _ptr(a: np.ndarray, t):
    return a.ctypes.data_as(ctypes.POINTER(t))


def c_latent(lib, n: int, dim: int, seed: int) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    lib.edgegan_latent(seed % (1 << 64), n, dim, _ptr(out, ctypes.c_float))
    return out


def c_pixels(lib, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, c, h, w = x.shape
    out = np.empty((n, h, w, c), dtype=np.uint8)
    lib.edgegan_to_pixels(_ptr(x, ctypes.c_float), n, c, h, w, _ptr(out, ctypes.c_uint8))
    return out


def test_header_names_the_versions_the_python_runtime_implements():
    h = (C_DIR / "edgegan.h").read_text()
    assert f'#define EDGEGAN_SAMPLER "{latent_mod.SAMPLER_NAME}"' in h
    assert f"#define EDGEGAN_SAMPLER_VERSION {latent_mod.SAMPLER_VERSION}" in h
    assert f'#define EDGEGAN_PIXELS "{contract.PIXELS_NAME}"' in h
    assert f"#define EDGEGAN_PIXELS_VERSION {contract.PIXELS_VERSION}" in h


def test_spec_test_vectors_bit_for_bit(lib):
    # The vectors printed in latent.py's specification.
    assert c_latent(lib, 1, 4, 0).tolist() == np.float32([[-0.45275775, 0.20776604, 2.6506059, -0.49042282]]).tolist()
    assert c_latent(lib, 1, 3, -1).tolist() == np.float32([[0.40389818, -0.24716993, -1.5578115]]).tolist()
    for seed in (0, 1, -1, 2**63, 2**64 - 2, 123456789):
        assert lib.edgegan_splitmix64(seed % (1 << 64), 0) == int(latent_mod.splitmix64(seed, 1)[0])
        assert np.array_equal(c_latent(lib, 1, 4, seed).view(np.uint32), rt.latent(1, 4, seed).view(np.uint32))


@pytest.mark.parametrize("n,dim,seed", [(64, 100, 0), (33, 7, -1), (5, 128, 2**63 + 5), (1000, 3, 42)])
def test_long_streams_bit_for_bit(lib, n, dim, seed):
    got, want = c_latent(lib, n, dim, seed), rt.latent(n, dim, seed)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), int((got != want).sum())


def test_any_row_alone_matches(lib):
    # An app that needs image i alone starts the stream at element i*dim (odd dim: mid-pair).
    dim, seed = 7, 9
    full = rt.latent(20, dim, seed)
    for i in (0, 1, 13, 19):
        row = np.empty(dim, dtype=np.float32)
        lib.edgegan_latent_range(seed, i * dim, dim, _ptr(row, ctypes.c_float))
        assert np.array_equal(row.view(np.uint32), full[i].view(np.uint32))


def test_pixels_bit_for_bit_on_ties_and_non_finite_values(lib):
    k = np.arange(-2, 258, dtype=np.float32)
    ties = (k + np.float32(0.5)) / np.float32(127.5) - np.float32(1)  # lands on or near .5 after the mapping
    special = np.float32([np.nan, np.inf, -np.inf, -1, 1, 0, -0.0, 1e-8, -1e-8, 1.0000001, -1.0000001, 3e38, -3e38])
    rng = np.random.default_rng(0)
    x = np.concatenate([ties, special, rng.uniform(-1.2, 1.2, 4096).astype(np.float32)])
    x = np.resize(x, 2 * 3 * 17 * 25).reshape(2, 3, 17, 25)  # odd sizes: the transpose must be right
    with np.errstate(over="ignore", invalid="ignore"):  # numpy notes the overflow of +-3e38; C is silent
        want = rt.to_pixels(x)
    assert np.array_equal(c_pixels(lib, x), want)


def test_int8_io_helpers_match_the_runtime(lib):
    rng = np.random.default_rng(1)
    scale, zp = 0.031372549, -3
    z = np.concatenate([rng.normal(0, 2, 5000), np.arange(-200, 200) * scale + scale / 2]).astype(np.float32)
    spec = TensorSpec(0, (1,), (1,), "int8", scale, zp)
    q = np.empty(z.size, dtype=np.int8)
    lib.edgegan_quantize_int8(_ptr(z, ctypes.c_float), z.size, scale, zp, _ptr(q, ctypes.c_int8))
    assert np.array_equal(q, _quantize(z, spec))
    back = np.empty(z.size, dtype=np.float32)
    lib.edgegan_dequantize_int8(_ptr(q, ctypes.c_int8), q.size, scale, zp, _ptr(back, ctypes.c_float))
    assert np.array_equal(back.view(np.uint32), _dequantize(q, spec).view(np.uint32))


@pytest.mark.tflite
def test_whole_images_through_a_model_match_generate(lib, tflite_model):
    # What an app does: C latents -> the interpreter -> C pixels; the bytes Python's generate() returns.
    with rt.load(tflite_model) as g:
        for n, seed in ((3, 0), (65, -7)):
            z = c_latent(lib, n, g.latent_dim, seed)
            pixels = c_pixels(lib, g.generate_from(z))
            want = g.generate(n, seed=seed)
            assert pixels.shape == want.shape == (n, 32, 32, 1)
            assert np.array_equal(pixels, want)
            assert 0 < pixels.mean() < 255 and pixels.std() > 10  # real images, not a constant


def c_metadata(lib, data: bytes, name: str = "edgegan.contract") -> bytes | None:
    """The C reader's answer, checked to lie inside ``data``."""
    buf = ctypes.create_string_buffer(data, len(data))
    size = ctypes.c_size_t(0)
    p = lib.edgegan_tflite_metadata(buf, len(data), name.encode(), ctypes.byref(size))
    if p is None:
        return None
    start = p - ctypes.addressof(buf)
    assert 0 <= start and start + size.value <= len(data), (start, size.value, len(data))
    return data[start : start + size.value]


@pytest.mark.tflite
def test_contract_read_from_the_file_in_c(lib, tflite_model, tmp_path):
    from tests.runtime.test_runtime_contract import _good, _with_metadata

    c = contract.encode(_good())
    data = _with_metadata(tflite_model, tmp_path, c).read_bytes()
    assert c_metadata(lib, data) == c
    with rt.load(tmp_path / "with-contract.tflite") as g:  # what the Python runtime read from the same bytes
        assert json.loads(c_metadata(lib, data)) == g.contract
    assert c_metadata(lib, data, "edgegan.contrac") is None and c_metadata(lib, data, "no such") is None
    assert c_metadata(lib, tflite_model.read_bytes()) is None  # a file without a contract


@pytest.mark.tflite
def test_c_metadata_reader_never_reads_outside_a_corrupt_file(lib, tflite_model, tmp_path):
    from edgegan_runtime.errors import ModelFileError
    from edgegan_runtime.tflite_check import verify_tflite_metadata
    from tests.runtime.test_runtime_contract import _good, _with_metadata

    data = _with_metadata(tflite_model, tmp_path, contract.encode(_good())).read_bytes()
    rng = np.random.default_rng(5)
    agreed = refused = 0
    for i in range(800):
        b = bytearray(data)
        if i % 3 == 0:
            b = b[: int(rng.integers(0, len(b)))]
        else:
            for pos in rng.integers(0, len(b), size=int(rng.integers(1, 6))):
                b[pos] = int(rng.integers(0, 256))
        got = c_metadata(lib, bytes(b))  # asserts the answer lies inside the buffer
        try:
            _, meta = verify_tflite_metadata(bytes(b), "m")
        except ModelFileError:
            refused += 1
            continue
        assert got == meta.get("edgegan.contract")  # where Python accepts the file, C reads the same
        agreed += 1
    assert agreed > 50 and refused > 50  # both outcomes occurred, or this tests nothing


# ------------------------------------------------------------------------- class labels (issue 20)

def c_one_hot(lib, labels, k: int) -> tuple[int, np.ndarray]:
    """(return code, out) of edgegan_one_hot; out starts as NaN, so an untouched buffer shows."""
    idx = np.ascontiguousarray(labels, dtype=np.int64)
    out = np.full((idx.size, k), np.nan, dtype=np.float32)
    rc = lib.edgegan_one_hot(_ptr(idx, ctypes.c_int64), idx.size, k, _ptr(out, ctypes.c_float))
    return rc, out


def test_header_documents_the_conditional_contract():
    h = (C_DIR / "edgegan.h").read_text()
    for text in ('"label"', '"form": "onehot"', '"input": 1', "args_1", "edgegan_one_hot", "EDGEGAN_ERR_LABEL"):
        assert text in h, text


def test_one_hot_bit_for_bit(lib):
    rng = np.random.default_rng(3)
    for n, k in ((1, 2), (7, 10), (300, 1000), (0, 5)):
        labels = rng.integers(0, k, n)
        rc, got = c_one_hot(lib, labels, k)
        assert rc == 0
        assert np.array_equal(got.view(np.uint32), rt.one_hot(labels, k).view(np.uint32))


@pytest.mark.parametrize("labels,k", [([0, 10], 10), ([-1], 10), ([3, 2 ** 62], 4), ([0], 0)])
def test_one_hot_refuses_a_label_outside_the_classes_and_writes_nothing(lib, labels, k):
    rc, out = c_one_hot(lib, labels, k)
    assert rc == 1  # EDGEGAN_ERR_LABEL
    assert np.isnan(out).all()


@pytest.mark.tflite
def test_whole_conditional_images_through_litert_match_generate(lib, conditional_run, conditional_export):
    """What an app does with a conditional file: C latents and C one-hot into the signature's inputs args_0 and
    args_1 of LiteRT's own runner, C pixels: the bytes ``generate(n, seed, label=...)`` returns."""
    from ai_edge_litert.interpreter import Interpreter

    path = conditional_run / conditional_export("tflite")["file"]
    runner = Interpreter(model_path=str(path)).get_signature_runner("batch_1")
    with rt.load(path) as g:
        for seed, label in ((0, 3), (-7, 9)):
            z = c_latent(lib, 1, g.latent_dim, seed)
            rc, onehot = c_one_hot(lib, [label], g.num_classes)
            assert rc == 0
            (images,) = runner(args_0=z, args_1=onehot).values()
            assert np.array_equal(c_pixels(lib, images), g.generate(1, seed=seed, label=label))



def test_image_helpers_equal_the_runtime_s_translate_rules_bit_for_bit(lib):
    """Issue 21: pixels in (every 8-bit value, NHWC and to NCHW) and out (NHWC) as edgegan_runtime's
    translate does them, and the header names the image pixel rule the contract records."""
    from edgegan_runtime.images import ImageSpec, from_pixels

    h = (C_DIR / "edgegan.h").read_text()
    assert f'#define EDGEGAN_IMAGE_PIXELS "{contract.IMAGE_PIXELS_NAME}"' in h
    assert f"#define EDGEGAN_IMAGE_PIXELS_VERSION {contract.IMAGE_PIXELS_VERSION}" in h
    rng = np.random.default_rng(0)
    p = np.concatenate([np.arange(256, dtype=np.uint8), rng.integers(0, 256, 4 * 5 * 7 * 3 - 256, dtype=np.uint8)])
    p = np.ascontiguousarray(p.reshape(4, 5, 7, 3))  # every 8-bit value, then random ones
    spec = ImageSpec(layout="NHWC", channels=3, out_channels=3, height=5, width=7, scale=1, multiple=1, size=(5, 7),
                     task=None)
    want, _ = from_pixels(p, spec, "test")  # what translate feeds the file
    got = np.empty(p.shape, np.float32)
    lib.edgegan_from_pixels(_ptr(p, ctypes.c_uint8), p.size, _ptr(got, ctypes.c_float))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    nchw = np.empty((4, 3, 5, 7), np.float32)
    lib.edgegan_pixels_to_nchw(_ptr(p, ctypes.c_uint8), 4, 5, 7, 3, _ptr(nchw, ctypes.c_float))
    assert np.array_equal(nchw, want.transpose(0, 3, 1, 2))
    x = np.concatenate([rng.uniform(-1.2, 1.2, 400), [np.nan, np.inf, -np.inf, -1, 1, 0.5 / 127.5 - 1]]).astype(np.float32)
    x = np.ascontiguousarray(x[:402].reshape(2, 67, 1, 3))  # NHWC
    out = np.empty(x.shape, np.uint8)
    lib.edgegan_to_pixels_nhwc(_ptr(x, ctypes.c_float), x.size, _ptr(out, ctypes.c_uint8))
    assert np.array_equal(out, rt.to_pixels(x.transpose(0, 3, 1, 2)))
