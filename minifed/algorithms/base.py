"""What every federated algorithm is made of: a client update and a server update.

An algorithm object holds settings (model structure, ``eta``, ``E``, ``B``) and two methods:

- ``client_update(w, X_k, y_k, rng) -> message``: what client ``k`` computes from the global
  parameters ``w`` on its own data and sends back (a vector of length ``d``);
- ``server_update(w, M, n_S) -> w_new``: how the server turns the stack ``M`` of the round's
  messages (shape ``(m, d)``) and the clients' sample counts ``n_S`` into the next global ``w``.

It does not know how it is executed: sampling the clients, running them (in this process or in
workers) and evaluating belong to :mod:`minifed.simulation`.
"""

from __future__ import annotations

import numpy as np

from minifed._checks import check_batch_size, check_int, check_positive
from minifed.models.base import Model


def aggregate(M: np.ndarray, n_S) -> np.ndarray:
    """Weighted average of the rows of ``M``: ``sum_k (n_k / n_S) M[k]``, ``n_S = sum_k n_k``.

    The mixing coefficients are the clients' sample counts over the round's total, so a client
    with more data counts more (McMahan et al. 2017, Algorithm 1).

    >>> M = np.array([[0.0, 1.0], [3.0, 1.0]])
    >>> aggregate(M, [1, 2])  # the unweighted mean would be [1.5, 1.0]
    array([2., 1.])
    """
    n_S = np.asarray(n_S)
    if M.ndim != 2 or n_S.shape != (M.shape[0],):
        raise ValueError(
            f"M must be (m, d) and n_S hold one count per row of M, got {M.shape} and {n_S.shape}."
        )
    if np.any(n_S <= 0):
        raise ValueError("n_S must be positive sample counts.")
    p = (n_S / n_S.sum()).astype(M.dtype)  # (m,) mixing coefficients p_k = n_k / n_S
    return p @ M  # (d,)


def minibatches(n_k: int, B: int | None, rng: np.random.Generator):
    """Yield index arrays splitting a shuffled ``range(n_k)`` into batches of size ``B``.

    ``B=None`` yields the whole local dataset in its stored order (one full-batch step). The last
    batch is smaller when ``B`` does not divide ``n_k``.
    """
    if B is None or B >= n_k:
        yield slice(None)
        return
    order = rng.permutation(n_k)
    for start in range(0, n_k, B):
        yield order[start : start + B]


class Algorithm:
    """Base class: stores settings, checks them, describes itself for a run's history."""

    name = "algorithm"

    def __init__(self, model: Model, lr: float):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a minifed Model, got {type(model).__name__}.")
        self.model = model
        self.lr = check_positive("lr", lr)

    def client_update(self, w: np.ndarray, X_k, y_k, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def server_update(self, w: np.ndarray, M: np.ndarray, n_S) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict:
        """The settings that define this algorithm, as JSON-ready values."""
        settings = {k: v for k, v in vars(self).items() if k != "model"}
        return {"algorithm": self.name, "model": repr(self.model), **settings}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def check_local_settings(epochs, batch_size) -> tuple[int, int | None]:
    """Check the local epochs ``E >= 1`` and the batch size ``B`` (``None`` or ``>= 1``)."""
    return check_int("epochs", epochs, minimum=1), check_batch_size("batch_size", batch_size)
