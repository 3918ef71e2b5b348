"""The latent distribution and its seeding, specified so that any language can reproduce it.

``latent(n, dim, seed)`` returns float32 (n, dim), z ~ N(0, 1), computed as follows:

1. SplitMix64 stream (Steele et al. 2014). For k = 0, 1, 2, ... (all arithmetic mod 2**64):
       x = seed + (k + 1) * 0x9E3779B97F4A7C15
       x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
       x = (x ^ (x >> 27)) * 0x94D049BB133111EB
       x =  x ^ (x >> 31)
   ``seed`` is taken mod 2**64 (a negative seed wraps).
2. Uniform in (0, 1): u_k = ((x_k >> 11) + 0.5) / 2**53, in double precision.
3. Box-Muller on consecutive pairs (u_2i, u_2i+1): r = sqrt(-2 ln u_2i), a = 2*pi*u_2i+1,
   g_2i = r*cos(a), g_2i+1 = r*sin(a), in double precision.
4. z is g_0 .. g_{n*dim-1} in row-major order, rounded to float32.

The stream is prefix-stable: ``latent(8, d, s)[:4] == latent(4, d, s)``.

Test vectors (float32, printed to 8 significant digits):

    latent(1, 4, 0)  == [[-0.45275775, 0.20776604, 2.6506059, -0.49042282]]
    latent(1, 3, -1) == [[0.40389818, -0.24716993, -1.5578115]]       # seed -1 is 2**64 - 1

A port that uses its own libm may differ from these in the last bit of a double, hence by at most
one float32 ulp (tests/runtime/test_runtime_latent.py checks a scalar reading of this text).
"""

from __future__ import annotations

import numpy as np

from edgegan_runtime.errors import InputError

# The name and version files record (``edgegan.contract``) and the C port repeats (c/edgegan.h); a change
# to any step above is a new version.
SAMPLER_NAME = "splitmix64-box-muller"
SAMPLER_VERSION = 1

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed: int, count: int) -> np.ndarray:
    """The first ``count`` outputs of SplitMix64 started at ``seed`` (uint64)."""
    k = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = np.uint64(seed % (1 << 64)) + k * _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        x = x ^ (x >> np.uint64(31))
    return x


# Most values one call makes (32 bytes each on the way): 2**32 is 128 GiB, past any device this runs on.
MAX_VALUES = 1 << 32


def latent(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """float32 (n, dim), z ~ N(0, 1), as the module doc specifies; InputError for bad arguments."""
    for name, v in (("n", n), ("dim", dim), ("seed", seed)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)):
            raise InputError(f"latent: {name} must be an integer, got {v!r}")
    n, dim, seed = int(n), int(dim), int(seed)
    if n < 0 or dim < 1:
        raise InputError(f"latent: need n >= 0 and dim >= 1, got n={n}, dim={dim}")
    m = n * dim
    if m > MAX_VALUES:
        raise InputError(f"latent: n * dim = {m} values is more than one call makes ({MAX_VALUES}); ask in parts")
    pairs = (m + 1) // 2
    x = splitmix64(int(seed), 2 * pairs)
    u = ((x >> np.uint64(11)).astype(np.float64) + 0.5) * (2.0 ** -53)
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    a = 2.0 * np.pi * u2
    g = np.empty(2 * pairs, dtype=np.float64)
    g[0::2] = r * np.cos(a)
    g[1::2] = r * np.sin(a)
    return g[:m].astype(np.float32).reshape(n, dim)
