"""Shamir's t-out-of-n secret sharing over the prime field ``Z_P`` (Shamir 1979).

    share:        f(x) = s + a_1 x + ... + a_{t-1} x^{t-1} mod P  (a_j uniform);  share i = f(x_i)
    reconstruct:  s = f(0) = sum_i f(x_i) prod_{j != i} x_j / (x_j - x_i)  mod P   (Lagrange at 0)

Any ``t`` shares determine the polynomial, hence ``s``. Any ``t - 1`` shares reveal nothing: for
every candidate secret there is exactly one polynomial of degree ``< t`` through the ``t - 1``
points and ``(0, candidate)``, so all secrets are equally likely (the tests count them in a small
field). Secure aggregation shares each client's secret key and self-mask seed this way.
"""

from __future__ import annotations

import numpy as np

from minifed.privacy.dh import random_below


def share(secret: int, xs, t: int, P: int, rng: np.random.Generator) -> list[int]:
    """The values ``f(x)`` at the distinct non-zero points ``xs`` of a random polynomial of
    degree ``t - 1`` with ``f(0) = secret``.

    >>> ys = share(42, [1, 2, 3], t=2, P=101, rng=np.random.default_rng(0))
    >>> reconstruct([(1, ys[0]), (3, ys[2])], P=101)
    42
    """
    if not 1 <= t <= len(xs):
        raise ValueError(f"need 1 <= t <= n, got t={t} for n={len(xs)} shares.")
    if len(set(xs)) != len(xs) or any(x % P == 0 for x in xs):
        raise ValueError("share points must be distinct and non-zero modulo P.")
    coefficients = [secret % P] + [random_below(rng, P) for _ in range(t - 1)]
    return [_horner(coefficients, x, P) for x in xs]


def reconstruct(shares, P: int) -> int:
    """``f(0)`` from the points ``[(x_i, y_i), ...]`` by Lagrange interpolation modulo ``P``.

    With fewer than ``t`` shares the result is *some* field element unrelated to the secret; the
    caller (the protocol) counts the shares first.
    """
    secret = 0
    for i, (x_i, y_i) in enumerate(shares):
        num, den = 1, 1
        for j, (x_j, _) in enumerate(shares):
            if j != i:
                num, den = num * x_j % P, den * (x_j - x_i) % P
        secret = (secret + y_i * num * pow(den, -1, P)) % P
    return secret


def _horner(coefficients: list[int], x: int, P: int) -> int:
    y = 0
    for a in reversed(coefficients):
        y = (y * x + a) % P
    return y
