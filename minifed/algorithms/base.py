"""What every federated algorithm is made of: a client update, a server update, declared state.

An algorithm object holds **settings only** (model structure, ``eta``, ``E``, ``B``, ``mu``, ...).
Everything that changes during a run is *state*, owned by the round loop and passed in by name:

- ``init_state(w) -> dict``: the server state (FedAdam's ``m``, ``v``; SCAFFOLD's ``c``);
- ``init_client_state(w) -> dict``: one client's state (SCAFFOLD's ``c_k``, ADMM's ``lambda_k``),
  created lazily, with the current ``w``, on the client's first round;
- ``down``: the server-state fields broadcast to the clients together with ``w``;
- ``up(w) -> {field: (shape, dtype)}``: the wire format of one client message (default: one
  vector like ``w``). Bytes sent are counted from it.

The two updates read like a paper's pseudo-code, asking for what they need by name:

- ``client_update(self, w, X_k, y_k, ...)``: the first three arguments are the global model and
  client ``k``'s data; any of ``rng`` (the client's generator for this round), ``k``, ``t``, the
  ``down`` fields and the client-state fields may follow. Returns the message (an array when
  ``up`` declares one field, else a dict of arrays), and with client state
  ``(message, new_client_state)``.
- ``server_update(self, w, M, ...)``: the first two arguments are the global model and the round's
  messages stacked along a new first axis (shape ``(m, ...)``; a dict of stacks for several
  fields); any of ``n_S`` (the sampled clients' sample counts), ``S``, ``t``, ``K``, ``C``, ``n_k``
  (every client's count), ``rng`` (the server's generator for round ``t``) and the server-state
  fields may follow. Returns ``w_next``, and with server state ``(w_next, new_state)``.

The algorithm does not know how it is executed: sampling the clients, running them (in this
process or in workers), keeping the state and checkpointing it belong to
:mod:`minifed.simulation`, which checks these declarations at the start of every run.
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
    """Base class: stores settings, declares state (none by default), describes itself."""

    name = "algorithm"
    down: tuple[str, ...] = ()  # server-state fields sent to the clients with w
    requires_sampling: str | None = None  # the one sampling scheme run() allows, if any
    runs_empty_rounds = False  # True: server_update runs even when no client took part

    def __init__(self, model: Model, lr: float):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a minifed Model, got {type(model).__name__}.")
        self.model = model
        self.lr = check_positive("lr", lr)

    def init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """The server state at round 0 (none by default)."""
        return {}

    def init_client_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """A client's state before its first round (none by default)."""
        return {}

    def up(self, w: np.ndarray) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """The wire format of one client message: ``{field: (shape, dtype)}``.

        By default one vector of ``w``'s length and dtype (a model ``w_k`` or a gradient ``g_k``).
        """
        return {"M": (w.shape, w.dtype)}

    def client_update(self, w: np.ndarray, X_k, y_k, rng: np.random.Generator):
        raise NotImplementedError

    def server_update(self, w: np.ndarray, M, n_S):
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
