"""Client sampling: which clients take part in round ``t``.

``"uniform"`` and ``"size"`` draw ``m = max(round(C K), 1)`` distinct clients; ``"poisson"``
lets every client take part independently with probability ``q = C``, so ``|S_t|`` varies
(mean ``q K``, possibly 0): the sampling that the privacy analysis of DP-FedAvg assumes
(McMahan et al. 2018). Round ``t``'s sample is drawn from its own generator
``rng(seed, SAMPLING, t)`` (:mod:`minifed.seeding`), so it does not depend on anything else the
run draws, and a resumed run draws the same samples.
"""

from __future__ import annotations

import numpy as np

from minifed._checks import check_fraction, check_int
from minifed.seeding import SAMPLING, derived_rng


def clients_per_round(K: int, C: float) -> int:
    """``m = max(round(C * K), 1)``: how many of the ``K`` clients take part in a round.

    >>> clients_per_round(100, 0.1), clients_per_round(100, 0.0001), clients_per_round(3, 1.0)
    (10, 1, 3)
    """
    K = check_int("K", K, minimum=1)
    C = check_fraction("fraction", C)
    return max(round(C * K), 1)


SCHEMES = ("uniform", "size", "poisson")


def sample_clients(
    K: int, C: float, seed: int, t: int, scheme: str = "uniform", n_k=None, availability=None
) -> np.ndarray:
    """``S_t``: distinct client ids, sorted.

    ``scheme="uniform"`` draws ``m = max(round(C K), 1)`` clients, every client with the same
    chance (McMahan et al. 2017); ``"size"`` draws them with probability proportional to
    ``n_k``; ``"poisson"`` keeps each client independently with probability ``q = C`` (one
    coin per client, ``|S_t| ~ Binomial(K, q)``). With ``availability`` (one probability per
    client), each client is first online with its own probability, and the sample is drawn
    among the online ones only: fewer than ``m`` (even none) may take part; with ``"poisson"``
    client ``k`` then takes part with probability ``availability[k] * q``.

    >>> tuple(len(sample_clients(10, 0.5, seed=0, t=t, scheme="poisson")) for t in range(1, 6))
    (3, 7, 6, 7, 5)
    """
    m = clients_per_round(K, C)
    if scheme not in SCHEMES:
        raise ValueError(f"sampling must be one of {SCHEMES}, got {scheme!r}.")
    rng = derived_rng(seed, SAMPLING, t)
    online = np.arange(K)
    if availability is not None:
        online = np.flatnonzero(rng.random(K) < availability)
    if scheme == "poisson":  # client k's coin does not depend on who else is online
        return online[(rng.random(K) < C)[online]]
    if m >= len(online):
        return online
    p = None
    if scheme == "size":
        p = np.asarray(n_k, dtype=np.float64)[online]
        p /= p.sum()
    return np.sort(rng.choice(online, size=m, replace=False, p=p))


def check_availability(availability, K: int) -> np.ndarray | None:
    """Return per-client online probabilities as an array of ``K`` values in [0, 1]."""
    if availability is None:
        return None
    a = np.asarray(availability, dtype=np.float64)
    if a.shape != (K,) or not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"availability must hold {K} probabilities in [0, 1], one per client.")
    return a
