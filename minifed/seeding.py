"""Every random choice of a run flows from the user's one seed through derived generators.

A purpose (initial model, client sampling, a client's local randomness, data splitting, the
server's randomness) and its round and client ids are appended to the seed, so no two streams
share a seed and results do not depend on the order in which clients run, nor on how many
worker processes run them:

    w_0        <- init(rng(seed, INIT))
    S_t        <- sample(rng(seed, SAMPLING, t))
    client k   <- rng(seed, CLIENT, t, k)        (minibatch order, local noise)
    server     <- rng(seed, SERVER, t)           (e.g. DP noise, straggler draws)
    partition  <- rng(seed, DATA)
    secure agg <- rng(seed, SECAGG, t, k)        (client k's keys and dropout, Bonawitz et al.)
"""

from __future__ import annotations

import numpy as np

INIT, SAMPLING, CLIENT, DATA, SERVER, SECAGG = 0, 1, 2, 3, 4, 5  # purposes


def derived_rng(seed: int, *keys: int) -> np.random.Generator:
    """The generator for one purpose of a run: ``default_rng([seed, *keys])``.

    >>> a, b = derived_rng(0, CLIENT, 1, 5), derived_rng(0, CLIENT, 1, 5)
    >>> a.random() == b.random() != derived_rng(0, CLIENT, 1, 6).random()
    True
    """
    return np.random.default_rng([seed, *(int(key) for key in keys)])


def client_rng(seed: int, t: int, k: int) -> np.random.Generator:
    """Client ``k``'s generator in round ``t`` (minibatch order, local noise)."""
    return derived_rng(seed, CLIENT, t, k)


def server_rng(seed: int, t: int) -> np.random.Generator:
    """The server's generator in round ``t`` (passed to ``server_update`` as ``rng``)."""
    return derived_rng(seed, SERVER, t)
