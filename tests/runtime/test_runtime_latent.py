"""The latent sampler and the pixel mapping are specified for other languages: check them against
an independent pure-Python reading of the spec, pinned values, and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgegan_runtime import latent, to_pixels

M64 = (1 << 64) - 1


def spec_latent(n: int, dim: int, seed: int) -> np.ndarray:
    """The documented algorithm, written as another language would: scalar, 64-bit ints, libm."""
    vals: list[float] = []
    k = 0
    while len(vals) < n * dim:
        u = []
        for _ in range(2):
            x = (seed + (k + 1) * 0x9E3779B97F4A7C15) & M64
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
            x ^= x >> 31
            u.append(((x >> 11) + 0.5) / 2.0**53)
            k += 1
        r, a = math.sqrt(-2.0 * math.log(u[0])), 2.0 * math.pi * u[1]
        vals += [r * math.cos(a), r * math.sin(a)]
    return np.array(vals[: n * dim], dtype=np.float32).reshape(n, dim)


@pytest.mark.parametrize("n,dim,seed", [(1, 1, 0), (3, 7, 1), (5, 100, 12345), (2, 3, 2**63 + 11)])
def test_matches_the_written_spec(n, dim, seed):
    # numpy's vectorised log/cos/sin may differ from libm in the last bit of a double, which can
    # move the float32 result by one ulp at most.
    np.testing.assert_array_max_ulp(latent(n, dim, seed), spec_latent(n, dim, seed), maxulp=1)


def test_pinned_values():
    # If these change, every app that reproduces images from seeds breaks: bump the spec instead.
    np.testing.assert_allclose(
        latent(1, 4, 0)[0], [-0.45275774598, 0.20776604116, 2.65060591698, -0.49042281508], rtol=0, atol=1e-7
    )
    np.testing.assert_allclose(latent(1, 3, -1)[0], [0.40389817953, -0.24716992676, -1.55781149864], rtol=0, atol=1e-7)


def test_seed_is_taken_mod_2_64():
    assert np.array_equal(latent(2, 5, 2**64 + 5), latent(2, 5, 5))
    assert np.array_equal(latent(2, 5, -1), latent(2, 5, 2**64 - 1))


def test_prefix_stable_and_shapes():
    big = latent(9, 7, 3)
    assert big.dtype == np.float32 and big.shape == (9, 7)
    assert np.array_equal(big[:4], latent(4, 7, 3))
    assert latent(0, 7, 3).shape == (0, 7)
    assert not np.array_equal(latent(1, 7, 3), latent(1, 7, 4))


def test_roughly_standard_normal():
    z = latent(2000, 50, 0)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01


@pytest.mark.parametrize("n,dim", [(-1, 3), (2, 0)])
def test_bad_sizes(n, dim):
    with pytest.raises(ValueError):
        latent(n, dim, 0)


def test_pixels_closed_forms():
    x = np.array([-1.0, 1.0, 0.0, -2.0, 2.0, np.nan, 1 / 127.5 - 1, 0.5 / 127.5 - 1], np.float32)
    p = to_pixels(x.reshape(1, 1, 1, -1))
    assert p.dtype == np.uint8 and p.shape == (1, 1, 8, 1)
    # -1 -> 0, 1 -> 255, 0 -> 127.5 -> 128 (half to even), clipped, NaN -> 0, 1 -> 1, 0.5 -> 0 (half to even)
    assert p[0, 0, :, 0].tolist() == [0, 255, 128, 0, 255, 0, 1, 0]


def test_pixels_are_nhwc():
    x = np.zeros((2, 3, 4, 5), np.float32)
    x[:, 1] = 1.0
    p = to_pixels(x)
    assert p.shape == (2, 4, 5, 3) and p.flags.c_contiguous
    assert (p[..., 1] == 255).all() and (p[..., 0] == 128).all()
