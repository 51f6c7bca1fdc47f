"""A Renyi-DP accountant for the sampled Gaussian mechanism (Mironov, Talwar and Zhang 2019).

One round of DP-FedAvg (or one step of DP-SGD) is the *sampled Gaussian mechanism*: each client
takes part with probability ``q`` (Poisson sampling), each update is clipped to norm ``S`` and the
sum gets noise ``N(0, z^2 S^2 I)``. For adding or removing one client the worst case reduces to
one dimension, in units of ``S``: the server sees ``mu_0 = N(0, z^2)`` without the client and the
mixture ``mu = (1 - q) N(0, z^2) + q N(1, z^2)`` with it. The Renyi divergence of order
``alpha > 1`` is

    eps_RDP(alpha) = log(A_alpha) / (alpha - 1),   A_alpha = E_{x ~ mu_0}[(mu(x) / mu_0(x))^alpha]

(MTZ 2019 show that ``D_alpha(mu || mu_0)`` is the larger of the two directions; the tests check
it by numerical integration). The accountant

1. computes ``eps_RDP(alpha)`` of one round at each order of a grid (:func:`rdp`),
2. composes rounds: RDP adds, ``eps_RDP(alpha) = sum_t eps_RDP_t(alpha)`` (Mironov 2017, Prop. 1),
3. converts to ``(epsilon, delta)``-DP at the best order (:func:`epsilon_from_rdp`).

For algorithm state (DP-FedAvg) keep the vector ``rdp_total`` in the server state and use
:func:`rdp` and :func:`epsilon_from_rdp`; :class:`Accountant` does the same for scripts.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

# The grid of TF Privacy's compute_dp_sgd_privacy: fine at small orders (large T, large z), coarse
# above, up to 512 (few rounds, small z).
DEFAULT_ORDERS = np.array(
    [1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5, *range(5, 64), 128, 256, 512], dtype=float
)
DEFAULT_ORDERS.flags.writeable = False
DEFAULT_CONVERSION = "balle2020"


def rdp(noise_multiplier: float, sample_rate: float, orders=DEFAULT_ORDERS) -> np.ndarray:
    """RDP ``eps_RDP(alpha) = log(A_alpha) / (alpha - 1)`` of one step of the Poisson-subsampled
    Gaussian mechanism, at each order ``alpha > 1`` (MTZ 2019).

    ``q = 0`` gives 0, ``z = 0`` gives ``inf`` and ``q = 1`` the plain Gaussian
    ``alpha / (2 z^2)``. For integer ``alpha`` the binomial expansion of ``A_alpha`` is exact
    (:func:`log_a_integer`); other orders use MTZ's series (:func:`log_a_fractional`).

    >>> rdp(noise_multiplier=2.0, sample_rate=1.0, orders=[2, 8])  # alpha / (2 z^2)
    array([0.25, 1.  ])
    """
    z, q = _check_mechanism(noise_multiplier, sample_rate)
    orders = _check_orders(orders)
    if q == 0:
        return np.zeros_like(orders)
    if z == 0:
        return np.full_like(orders, np.inf)
    if q == 1:
        return orders / (2 * z**2)
    log_a = [
        log_a_integer(q, z, int(alpha)) if alpha == int(alpha) else log_a_fractional(q, z, alpha)
        for alpha in orders
    ]
    return np.maximum(np.array(log_a) / (orders - 1), 0.0)  # >= 0; rounding could give -1e-17


def log_a_integer(q: float, z: float, alpha: int) -> float:
    """``log A_alpha`` for an integer ``alpha >= 2``, by the binomial expansion (MTZ 2019, Sec. 3):

        A_alpha = sum_{k=0}^{alpha} b_k exp((k^2 - k) / (2 z^2)),
        b_k = C(alpha, k) (1 - q)^(alpha - k) q^k.

    The weights ``b_k`` sum to one and ``k^2 - k = 0`` for ``k = 0, 1``, so
    ``A_alpha - 1 = sum_{k=2}^{alpha} b_k expm1((k^2 - k) / (2 z^2))``: positive terms, summed in
    log space, exact up to rounding even for tiny ``q`` (no cancellation in ``1 + 1e-15``).
    """
    k = np.arange(2, alpha + 1)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, alpha + 1)))])  # log(n!)
    log_binom = log_fact[alpha] - log_fact[k] - log_fact[alpha - k]
    c = (k * k - k) / (2 * z**2)
    log_terms = log_binom + (alpha - k) * math.log1p(-q) + k * math.log(q) + _log_expm1(c)
    return float(np.logaddexp(0.0, _logsumexp(log_terms)))  # log(1 + (A_alpha - 1))


def log_a_fractional(q: float, z: float, alpha: float, tol: float = 1e-12) -> float:
    """``log A_alpha`` for a fractional ``alpha``, by the series of MTZ 2019 (Sec. 3.3).

    Split the integral at ``x_0 = z^2 log(1/q - 1) + 1/2``, where ``q mu_1 = (1 - q) mu_0``, and
    expand ``((1 - q) + q L)^alpha`` (``L = mu_1 / mu_0``) by the generalized binomial series in
    the smaller term on each side. As ``mu_0 L^i = exp((i^2 - i) / (2 z^2)) N(i, z^2)``:

        A_alpha = sum_{i>=0} C(alpha, i) (s0_i + s1_i),   j = alpha - i,
        s0_i = (1 - q)^j q^i exp((i^2 - i) / (2 z^2)) Phi((x_0 - i) / z)    (the part x <= x_0)
        s1_i = (1 - q)^i q^j exp((j^2 - j) / (2 z^2)) Phi((j - x_0) / z)    (the part x > x_0)

    with ``Phi`` the standard normal CDF. The signs of ``C(alpha, i)`` alternate for
    ``i > alpha`` and the terms shrink like ``i^-(alpha + 2)``; the sum stops once they are below
    ``tol`` times the largest (an alternating series' error is below its first omitted term).
    Accuracy: about ``1e-16`` absolute in ``log A_alpha``.
    """
    x0 = z**2 * math.log(1 / q - 1) + 0.5
    n = 64
    while True:
        i = np.arange(n, dtype=float)
        ratio = (alpha - i[:-1]) / (i[:-1] + 1)  # C(alpha, i + 1) / C(alpha, i)
        log_binom = np.concatenate([[0.0], np.cumsum(np.log(np.abs(ratio)))])  # log|C(alpha, i)|
        sign = np.concatenate([[1.0], np.cumprod(np.sign(ratio))])
        j = alpha - i
        log_s0 = i * math.log(q) + j * math.log1p(-q) + (i * i - i) / (2 * z**2)
        log_s1 = j * math.log(q) + i * math.log1p(-q) + (j * j - j) / (2 * z**2)
        log_s0 += _log_ndtr((x0 - i) / z)
        log_s1 += _log_ndtr((j - x0) / z)
        log_s = log_binom + np.logaddexp(log_s0, log_s1)  # (n,) log|term i|
        top = log_s.max()
        if log_s[-8:].max() - top < math.log(tol) or n >= 2**20:  # 2**20: never needed
            return float(top + np.log(np.sum(sign * np.exp(log_s - top))))
        n *= 4


def epsilon_from_rdp(
    rdp_total, orders, delta: float, conversion: str = DEFAULT_CONVERSION
) -> float:
    """The smallest ``epsilon`` over the orders such that ``(alpha, rdp_total)``-RDP implies
    ``(epsilon, delta)``-DP; never below 0.

    ``conversion="balle2020"`` (default; Balle et al. 2020, Thm. 21, the same bound as Canonne,
    Kamath and Steinke 2020, Prop. 12):

        epsilon = rdp + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)

    ``conversion="mironov2017"`` (Mironov 2017, Prop. 3, the classic one):

        epsilon = rdp + log(1 / delta) / (alpha - 1)

    At an order where ``delta >= sqrt(1 - exp(-rdp))`` epsilon is 0: the total variation distance
    is at most ``sqrt(1 - exp(-KL))`` (Bretagnolle and Huber 1979) and ``KL <= rdp`` at any order.
    Without this rule zero RDP (``q = 0``) would give ``epsilon = 0.008`` at ``alpha = 512``.

    At every order the first is smaller by ``log(alpha / (alpha - 1)) + log(alpha) / (alpha - 1)``
    (1.39 at ``alpha = 2``, 0.36 at 10, 0.14 at 32), so it is never worse; the table in
    :func:`epsilon` measures the gain at the best order on common settings.
    """
    rdp_total, orders = np.asarray(rdp_total, dtype=float), _check_orders(orders)
    delta = _check_delta(delta)
    if rdp_total.shape != orders.shape:
        raise ValueError(f"rdp_total has shape {rdp_total.shape} but orders {orders.shape}.")
    eps = _eps_per_order(rdp_total, orders, delta, conversion)
    return max(float(eps.min()), 0.0)


def epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    orders=DEFAULT_ORDERS,
    conversion: str = DEFAULT_CONVERSION,
) -> float:
    """``epsilon`` of ``steps`` rounds of the sampled Gaussian mechanism at the given ``delta``.

    RDP composes additively, ``eps_RDP(alpha) = steps * rdp(z, q)(alpha)``, and the total is
    converted by :func:`epsilon_from_rdp`, by default with Balle et al. (2020)'s conversion.
    Abadi et al. (2016, Sec. 3.1)'s example, ``eps ~ 1.26`` with their moments accountant:

    >>> round(epsilon(noise_multiplier=4.0, sample_rate=0.01, steps=10_000, delta=1e-5), 3)
    1.035
    >>> round(epsilon(4.0, 0.01, 10_000, 1e-5, conversion="mironov2017"), 3)
    1.259

    The two conversions on common settings (``z, q, T``, all at ``delta = 1e-5``):

    >>> settings = [(4.0, 0.01, 10_000),  # Abadi et al. 2016
    ...             (1.3, 150 / 60_000, 6_000),  # MNIST, 15 epochs of batches of 150
    ...             (1.5, 0.04, 2_250),  # 90 epochs at q = 0.04
    ...             (1.0, 0.1, 100),  # 100 FL rounds, 10 % of the clients each
    ...             (1.0, 0.01, 1_000)]  # 1000 FL rounds, 1 % of the clients each
    >>> for z, q, T in settings:
    ...     new, old = (epsilon(z, q, T, 1e-5, conversion=c) for c in ("balle2020", "mironov2017"))
    ...     print(f"z={z} q={q:<6} T={T:>5}: {new:.3f} vs {old:.3f}, {1 - new / old:.0%} smaller")
    z=4.0 q=0.01   T=10000: 1.035 vs 1.259, 18% smaller
    z=1.3 q=0.0025 T= 6000: 0.724 vs 0.942, 23% smaller
    z=1.5 q=0.04   T= 2250: 7.330 vs 8.080, 9% smaller
    z=1.0 q=0.1    T=  100: 7.973 vs 8.878, 10% smaller
    z=1.0 q=0.01   T= 1000: 2.108 vs 2.538, 17% smaller
    """
    steps = _check_steps(steps)
    delta = _check_delta(delta)
    one = rdp(noise_multiplier, sample_rate, orders)
    total = np.zeros_like(one) if steps == 0 else steps * one  # avoids 0 * inf = nan
    return epsilon_from_rdp(total, orders, delta, conversion)


class Accountant:
    """Composes rounds with possibly changing ``(z, q)``: ``rdp_total += rdp(z_t, q_t)``.

    Parameters
    ----------
    delta : float
        The ``delta`` at which :meth:`step` and :meth:`epsilon` report.
    orders : array_like
        Renyi orders ``alpha > 1``; default :data:`DEFAULT_ORDERS`.
    conversion : str
        ``"balle2020"`` (default) or ``"mironov2017"``; see :func:`epsilon_from_rdp`.

    Examples
    --------
    >>> acc = Accountant(delta=1e-5)
    >>> eps = [acc.step(noise_multiplier=1.0, sample_rate=0.1) for t in range(100)]
    >>> round(eps[-1], 3) == round(epsilon(1.0, 0.1, 100, 1e-5), 3)
    True
    """

    def __init__(self, delta: float, orders=DEFAULT_ORDERS, conversion: str = DEFAULT_CONVERSION):
        self.delta = _check_delta(delta)
        self.orders = _check_orders(orders)
        _conversion(conversion)
        self.conversion = conversion
        self.rdp_total = np.zeros_like(self.orders)
        self.steps = 0
        self._last = (None, None, None)  # (z, q, rdp(z, q)): rounds mostly repeat settings

    def step(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> float:
        """Add ``steps`` rounds at noise ``z`` and sample rate ``q``; return epsilon so far."""
        steps = _check_steps(steps)
        z, q, one = self._last
        if (z, q) != (noise_multiplier, sample_rate):
            one = rdp(noise_multiplier, sample_rate, self.orders)
            self._last = (noise_multiplier, sample_rate, one)
        if steps:
            self.rdp_total = self.rdp_total + steps * one
            self.steps += steps
        return self.epsilon()

    def epsilon(self, delta: float | None = None) -> float:
        """``epsilon`` spent so far, at ``delta`` (default: the accountant's)."""
        delta = self.delta if delta is None else delta
        return epsilon_from_rdp(self.rdp_total, self.orders, delta, self.conversion)

    def __repr__(self) -> str:
        return f"Accountant(steps={self.steps}, epsilon={self.epsilon():.4g}, delta={self.delta})"


def _eps_per_order(rdp_total, orders, delta, conversion) -> np.ndarray:
    """The conversion's ``epsilon`` at each order (see :func:`epsilon_from_rdp`)."""
    a, log_delta = orders, math.log(delta)
    if _conversion(conversion) == "mironov2017":
        eps = rdp_total - log_delta / (a - 1)
    else:
        eps = rdp_total + np.log1p(-1 / a) - (log_delta + np.log(a)) / (a - 1)
    return np.where(delta**2 >= -np.expm1(-rdp_total), 0.0, eps)  # delta >= TV: (0, delta)-DP


def _conversion(name: str) -> str:
    if name not in ("balle2020", "mironov2017"):
        raise ValueError(f"conversion must be 'balle2020' or 'mironov2017', got {name!r}.")
    return name


def _logsumexp(x: np.ndarray) -> float:
    """``log(sum(exp(x)))``, shifted by the maximum so that nothing overflows."""
    top = x.max()
    if top == -np.inf:
        return -np.inf
    return top + math.log(np.sum(np.exp(x - top)))


def _log_expm1(c: np.ndarray) -> np.ndarray:
    """``log(exp(c) - 1)`` for ``c > 0``, without overflow for large ``c`` nor loss for tiny."""
    return c + np.log(-np.expm1(-c))  # log(e^c - 1) = c + log(1 - e^-c)


def _log_ndtr(x: np.ndarray) -> np.ndarray:
    """``log Phi(x)``, ``Phi`` the standard normal CDF, for any ``x`` (NumPy has no erfc).

    ``Phi(x) = erfc(-x / sqrt(2)) / 2``: ``math.erfc`` in the middle, ``Phi = 1`` to double
    precision above ``x = 9``, and below ``x = -35`` the asymptotic series
    ``Phi(x) = phi(x) / |x| * (1 - 1/x^2 + 3/x^4 - 15/x^6 + 105/x^8 - ...)``
    (relative error below ``945 / x^10 < 4e-13``).
    """
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)  # log(1) above 9
    mid = (x > -35) & (x <= 9)
    out[mid] = np.log([0.5 * math.erfc(-v / math.sqrt(2)) for v in x[mid]])
    low = x <= -35
    r = 1 / x[low] ** 2
    series = 1 - r * (1 - 3 * r * (1 - 5 * r * (1 - 7 * r)))
    out[low] = -0.5 * x[low] ** 2 - np.log(-x[low] * math.sqrt(2 * math.pi)) + np.log(series)
    return out


def _check_mechanism(noise_multiplier, sample_rate) -> tuple[float, float]:
    z = _real("noise_multiplier", noise_multiplier)
    if not (math.isfinite(z) and z >= 0):
        raise ValueError(
            f"noise_multiplier must be a finite number >= 0 (the noise standard deviation divided "
            f"by the clipping norm S; 0 means no noise), got {z}."
        )
    q = _real("sample_rate", sample_rate)
    if not 0 <= q <= 1:
        raise ValueError(
            f"sample_rate must be in [0, 1] (the probability that a client takes part in a round, "
            f"e.g. C = m / K), got {q}."
        )
    return z, q


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(
            f"steps must be a whole number of rounds, got {steps!r}; "
            f"pass e.g. int(math.ceil(epochs / sample_rate))."
        )
    if steps < 0:
        raise ValueError(f"steps must be >= 0 (the number of rounds), got {steps}.")
    return int(steps)


def _check_delta(delta) -> float:
    delta = _real("delta", delta)
    if not 0 < delta < 1:
        raise ValueError(
            f"delta must be in (0, 1), got {delta}; take it well below 1 / (number of clients), "
            f"e.g. 1e-5."
        )
    return delta


def _check_orders(orders) -> np.ndarray:
    orders = np.atleast_1d(np.asarray(orders, dtype=float))
    if orders.ndim != 1 or orders.size == 0 or not np.all((orders > 1) & (orders <= 1e5)):
        raise ValueError(
            "orders must be a non-empty 1-D list of Renyi orders 1 < alpha <= 1e5 (the sums have "
            f"alpha terms), e.g. minifed.privacy.DEFAULT_ORDERS; got {orders}."
        )
    return orders


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    return float(value)
