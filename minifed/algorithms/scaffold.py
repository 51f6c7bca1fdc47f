"""SCAFFOLD (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated
Learning", ICML, Algorithm 1), in minifed's notation (the paper's x, y_i, N, eta_l, eta_g, K
local steps are our w, w_k, K, eta, eta_g, u_k local steps).

    Server executes:
        initialize w, c = 0; every client's c_k = 0 (created on its first round)
        for each round t = 0, 1, ...:
            S <- (m clients)
            send (w, c) to every k in S                        # down = ("c",)
            for each client k in S in parallel:                # SCAFFOLD.client_update
                w_k <- w
                for u = 1, ..., u_k (E epochs of minibatches b of size B):
                    w_k <- w_k - eta * (grad l(w_k; b) - c_k + c)
                c_k^+ <- grad F_k(w)                            (option I)
                      or c_k - c + (w - w_k) / (u_k eta)        (option II)
                send (dy_k, dc_k) = (w_k - w, c_k^+ - c_k);  c_k <- c_k^+
            w <- w + eta_g * sum_{k in S} p_k dy_k             # SCAFFOLD.server_update
            c <- c + sum_{k in S} q_k dc_k

The paper averages uniformly, ``p_k = 1/m`` and ``q_k = (m/K)(1/m) = 1/K``, so that
``c = (1/K) sum_k c_k``. minifed's objective is ``F = sum_k (n_k/n) F_k`` and FedAvg mixes by
``n_k/n_S``; ``weighting="n_k"`` (the default) uses ``p_k = n_k/n_S`` and ``q_k = n_k/n``, so that
``c = sum_k (n_k/n) c_k``. The paper's version is ``weighting="uniform"``; both coincide when the
clients hold equal amounts of data.

Which objective SCAFFOLD minimises. Write ``pi_k`` for ``n_k/n`` (``"n_k"``) or ``1/K``
(``"uniform"``).

1. ``c = sum_k pi_k c_k`` after every round: both sides start at 0, and a round changes only the
   sampled ``c_k``, each by ``dc_k``, and ``c`` by exactly ``sum_{k in S} pi_k dc_k``.
2. At a fixed point (full-batch local steps, ``B = None``, ``eta < 2/L``) every
   ``c_k = grad F_k(w)``. Option I sets it so. Option II keeps ``c_k`` only if
   ``w - w_k = u_k eta c``; ``w`` is kept only if ``0 = sum_S p_k dy_k = -eta c sum_S p_k u_k``,
   so ``c = 0`` and ``w_k = w``: gradient descent on ``F_k(v) - c_k . v`` came back to its
   start, which it does only where that gradient ``grad F_k(w) - c_k`` is zero.
3. By 1 and 2, ``c = sum_k pi_k grad F_k(w)``, and ``c = 0`` at the fixed point (shown for
   option II; for option I on quadratics ``dy_k = -M_k c`` with ``M_k`` positive definite).
   So ``w`` minimises ``sum_k pi_k F_k``: minifed's ``F`` for ``"n_k"``, the unweighted mean
   of the ``F_k`` for ``"uniform"``.

The ``p_k`` of ``dy`` do not move the fixed point (any positive coefficients give step 2); they
are FedAvg's, so that the path starts as FedAvg's. FedAvg with ``E > 1`` has no control variates
and its fixed point drifts towards the clients' own minimisers (tests/test_scaffold.py measures
both on heterogeneous least squares).

With ``c = c_k = 0`` (the first round) the correction vanishes, so with ``eta_g = 1`` a first
round of SCAFFOLD gives FedAvg's first round with the same mixing coefficients ``p_k``.
"""

from __future__ import annotations

import numpy as np

from minifed._checks import check_positive
from minifed.algorithms.fedavg import FedAvg
from minifed.models.base import Model

OPTIONS = ("I", "II")
WEIGHTINGS = ("n_k", "uniform")


def mixing(n_S, n_k, weighting: str = "n_k") -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(p, q)`` of the sampled clients for ``dy`` and for ``dc``.

    ``"n_k"``: ``p_k = n_k / n_S`` and ``q_k = n_k / n``; ``"uniform"``: ``p_k = 1/m`` and
    ``q_k = 1/K``. ``n_S`` holds the sampled clients' counts, ``n_k`` every client's.

    >>> p, q = mixing([10, 30], [10, 30, 60])
    >>> p.tolist(), q.tolist()  # uniform would give [0.5, 0.5] and [1/3, 1/3]
    ([0.25, 0.75], [0.1, 0.3])
    """
    n_S, n_k = np.asarray(n_S), np.asarray(n_k)
    if weighting == "uniform":
        return np.full(len(n_S), 1 / len(n_S)), np.full(len(n_S), 1 / len(n_k))
    return n_S / n_S.sum(), n_S / n_k.sum()


class SCAFFOLD(FedAvg):
    """SCAFFOLD: FedAvg's local SGD corrected by control variates ``c - c_k``.

    Parameters
    ----------
    model : Model
        The model structure shared by all clients.
    lr : float
        Local step size ``eta`` (the paper's ``eta_l``).
    epochs : int
        Local epochs ``E >= 1``; client ``k`` takes ``u_k = E * ceil(n_k / B)`` steps.
    batch_size : int or None
        Local minibatch size ``B``; ``None`` means the whole local dataset.
    server_lr : float
        Global step size ``eta_g > 0`` (the paper's default and FedAvg's value: 1).
    option : {"I", "II"}
        The control-variate update of Algorithm 1: ``"I"`` recomputes ``grad F_k(w)`` on the
        client's whole data (one more pass), ``"II"`` (the paper's choice in its experiments)
        reuses the local steps: ``c_k - c + (w - w_k) / (u_k eta)``.
    weighting : {"n_k", "uniform"}
        ``"n_k"`` minimises ``sum_k (n_k/n) F_k`` (minifed's objective, FedAvg's mixing);
        ``"uniform"`` is the paper's ``(1/K) sum_k F_k``. See the module docstring.
    """

    name = "scaffold"
    down = ("c",)

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        server_lr: float = 1.0,
        option: str = "II",
        weighting: str = "n_k",
    ):
        super().__init__(model, lr, epochs, batch_size)
        self.server_lr = check_positive("server_lr", server_lr)
        if option not in OPTIONS:
            raise ValueError(f"option must be one of {OPTIONS} (Algorithm 1), got {option!r}.")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        self.option, self.weighting = option, weighting

    def init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """The server control variate ``c = 0``."""
        return {"c": np.zeros_like(w)}

    def init_client_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Client ``k``'s control variate ``c_k = 0``."""
        return {"c_k": np.zeros_like(w)}

    def up(self, w: np.ndarray) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Two vectors like ``w``: the model change ``dy`` and the control change ``dc``."""
        return {"dy": (w.shape, w.dtype), "dc": (w.shape, w.dtype)}

    def client_update(self, w, X_k, y_k, rng: np.random.Generator, c, c_k):
        """Local SGD on ``grad l(w_k; b) - c_k + c``; returns ``({dy, dc}, {c_k: c_k^+})``."""
        correction = c - c_k  # (d,) added to every local gradient

        def drift(w_k, g):
            g += correction

        w_k = self.local_sgd(w, X_k, y_k, rng, drift=drift)
        if self.option == "I":
            _, c_k_new = self.model.loss_and_grad_(w, X_k, y_k)  # grad F_k(w), all n_k rows
        else:
            c_k_new = c_k - c + (w - w_k) / (self.local_steps(len(y_k)) * self.lr)
        return {"dy": w_k - w, "dc": c_k_new - c_k}, {"c_k": c_k_new}

    def local_steps(self, n_k: int) -> int:
        """``u_k = E * ceil(n_k / B)``: the number of steps of :meth:`local_sgd`."""
        B = self.batch_size
        return self.epochs * (1 if B is None or B >= n_k else -(-n_k // B))

    def server_update(self, w, M, n_S, n_k, c):
        """``w + eta_g sum_S p_k dy_k`` and ``c + sum_S q_k dc_k`` (see :func:`mixing`)."""
        p, q = mixing(n_S, n_k, self.weighting)
        dy, dc = M["dy"], M["dc"]  # (m, d) each
        w_next = w + self.server_lr * (p.astype(dy.dtype) @ dy)
        c_next = c + q.astype(dc.dtype) @ dc
        return w_next, {"c": c_next}
