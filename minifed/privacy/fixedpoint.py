"""Fixed-point encoding of float updates into ``Z_R``, ``R = 2^bits``, for secure aggregation.

    encode:  x = n_k * round(2^f * clip(delta, -c, c))  mod R      (an integer per coordinate)
    decode:  the sum z in Z_R read as a signed integer in [-R/2, R/2), then  z / (2^f * sum n_k)

Masking works in the group ``Z_R``, so the updates must be integers. Each coordinate of a
client's update ``delta`` is clipped to ``[-c, c]`` (the clip range), rounded to the grid of step
``2^-f`` (``f`` fractional bits) and multiplied by the client's weight ``n_k`` (exact, integer).
The server decodes the sum of the weighted integers into the weighted mean of the updates.

Wrap-around: the decoded sum is exact when ``|sum_k n_k q_k| < R/2``; it suffices that
``2^f * c * sum_k n_k < 2^(bits - 1)`` (:func:`check_range`). With ``bits = 32``, ``f = 16`` and
``c = 1`` the clients of a round may hold up to ``2^15 - 1 = 32,767`` examples together.

Quantization error: when no coordinate is clipped, rounding moves each ``q_k`` by at most 1/2, so
the decoded weighted mean differs from ``sum_k (n_k / n) delta_k`` by at most ``2^-(f+1)`` per
coordinate (``7.6e-6`` for ``f = 16``), whatever the weights. A clipped coordinate moves by its
excess over ``c`` instead.
"""

from __future__ import annotations

import numpy as np


def encode(delta: np.ndarray, n_k: int, frac_bits: int, clip: float, bits: int) -> np.ndarray:
    """``n_k * round(2^f clip(delta, -c, c)) mod 2^bits`` as unsigned 64-bit integers.

    >>> encode(np.array([0.5, -0.25, 3.0]), n_k=2, frac_bits=2, clip=1.0, bits=8)
    array([  4, 254,   8], dtype=uint64)
    """
    q = np.rint(np.clip(np.asarray(delta, np.float64), -clip, clip) * 2.0**frac_bits)
    x = q.astype(np.int64) * np.int64(n_k)  # exact: |x| < 2^63 by check_range
    return x.view(np.uint64) & np.uint64(2**bits - 1)  # two's complement, then mod R


def decode(z: np.ndarray, bits: int) -> np.ndarray:
    """The sum ``z`` in ``Z_R`` as signed integers in ``[-R/2, R/2)`` (int64).

    >>> decode(np.array([4, 254], dtype=np.uint8), bits=8)
    array([ 4, -2])
    """
    z = np.asarray(z).astype(np.uint64)
    if bits == 64:
        return z.view(np.int64)
    signed = z.astype(np.int64)
    return np.where(signed >= 2 ** (bits - 1), signed - 2**bits, signed)


def check_range(n: int, frac_bits: int, clip: float, bits: int) -> None:
    """Refuse settings whose weighted sum over ``n`` examples could wrap around ``R/2``."""
    if 2.0**frac_bits * clip * n >= 2.0 ** (bits - 1):
        raise ValueError(
            f"the sum of {n} examples' weighted updates can reach 2^f * clip * n = "
            f"{2.0**frac_bits * clip * n:.3g}, beyond R/2 = 2^{bits - 1}: it would wrap around. "
            "Raise bits (up to 64), or lower frac_bits or clip."
        )
