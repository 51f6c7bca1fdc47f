"""FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks", Algorithm 2).

    Server executes:
        for each round t = 0, 1, ...:
            S_t <- m clients sampled                          # minifed.simulation
            for each client k in S_t in parallel:
                w_k, E_k <- ClientUpdate(k, w_t)              # FedProx.client_update
            A_t <- {k in S_t : E_k > 0}                       # the updates that arrived
            w_{t+1} <- sum_{k in A_t} (n_k / n_A) w_k  (w_t if A_t is empty)   # server_update

    ClientUpdate(k, w):                                       # run on client k
        E_k <- E, or for a straggler a number of epochs in [1, E) (0 if stragglers are dropped)
        w_k <- w
        for each local epoch i from 1 to E_k:
            for batch b of size B:
                w_k <- w_k - eta * (grad l(w_k; b) + mu (w_k - w))
        return w_k (and E_k when there are stragglers)

The local steps are SGD on the proximal objective of the paper's Eq. (2),
``h_k(w_k; w) = F_k(w_k) + (mu/2) ||w_k - w||^2``, whose gradient adds ``mu (w_k - w)`` to
FedAvg's. The term pulls every client back towards the global model, which limits client drift
when the clients' data differ; ``mu = 0`` is FedAvg exactly (same numbers, bit for bit). It
shrinks the drift without removing it: on heterogeneous least squares (E = 5, full
participation) FedAvg's fixed point is biased away from ``w_star``, and FedProx's moves towards
``w_star`` only as ``mu`` grows, while the rounds needed to get there grow too (tests measure it).

Systems heterogeneity, as in the paper's experiments: a fraction ``stragglers`` of the sampled
clients cannot finish ``E`` epochs and run ``E_k`` epochs drawn uniformly from ``{1, ..., E-1}``
(the ``[1, E)`` of the paper's published code). FedProx keeps their partial work; FedAvg in the
paper drops them (``drop_stragglers=True``: ``E_k = 0``, the client computes nothing and the
server leaves it out). With ``E = 1`` the range ``[1, E)`` is empty (the published code fails
there), so ``stragglers > 0`` with ``epochs = 1`` is refused unless stragglers are dropped.
Differences from the paper, all to keep each client independent:

- Each client decides by itself, with the first number drawn from its own generator, whether it
  straggles (probability ``stragglers``). The paper picks exactly ``round(x m)`` of the ``m``
  sampled clients; here the count is Binomial(m, x) with the same mean. An exact count would
  need every client to know ``S_t``, which a client update cannot see. Because the decision comes
  first and is drawn the same way in both modes, the same devices straggle with and without
  ``drop_stragglers`` for the same seed, and a non-straggler's minibatches do not depend on it.
- With ``stragglers = 0`` nothing extra is drawn and the message is FedAvg's one vector, so
  ``FedProx(mu=0)`` reproduces FedAvg's run and its bytes exactly. With ``stragglers > 0`` a
  message is ``{"w_k": w_k, "epochs": E_k}`` (an int32 more per client); a dropped client's
  ``w_k`` is ``w`` and unused (a real dropped device would send nothing at all).
- The paper's Algorithm 2 samples device ``k`` with probability ``p_k`` and averages uniformly;
  minifed samples as chosen in ``run`` and weights by ``n_k / n_S`` like FedAvg.
"""

from __future__ import annotations

import numpy as np

from minifed._checks import check_nonnegative
from minifed.algorithms.base import aggregate
from minifed.algorithms.fedavg import FedAvg
from minifed.models.base import Model


class FedProx(FedAvg):
    """FedProx: FedAvg whose clients minimise ``F_k(w_k) + (mu/2) ||w_k - w||^2``.

    Parameters
    ----------
    model, lr, epochs, batch_size
        As :class:`~minifed.algorithms.FedAvg`; ``epochs`` is ``E`` for a client that is not
        a straggler.
    mu : float
        Proximal coefficient ``mu >= 0``; ``0`` gives FedAvg. The default 0.01 is a mild pull from
        the paper's candidate set {0.001, 0.01, 0.1, 1}, over which the best value varied with the
        data set: tune it, as the paper does.
    stragglers : float
        Probability in ``[0, 1)`` that a sampled client is a straggler (the paper's 0%, 50%,
        90% settings are 0.0, 0.5, 0.9). A straggler runs ``E_k`` epochs drawn uniformly from
        ``{1, ..., E-1}``, so ``epochs >= 2`` is required unless ``drop_stragglers``.
    drop_stragglers : bool
        Leave the stragglers out of the round, as FedAvg does in the paper's experiments:
        ``FedProx(mu=0, drop_stragglers=True)`` is that FedAvg.
    """

    name = "fedprox"

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        mu: float = 0.01,
        stragglers: float = 0.0,
        drop_stragglers: bool = False,
    ):
        super().__init__(model, lr, epochs, batch_size)
        self.mu = check_nonnegative("mu", mu)
        self.stragglers = check_nonnegative("stragglers", stragglers)
        if self.stragglers >= 1:
            raise ValueError(f"stragglers must be a probability in [0, 1), got {stragglers}.")
        if not isinstance(drop_stragglers, bool | np.bool_):
            raise TypeError(f"drop_stragglers must be True or False, got {drop_stragglers!r}.")
        self.drop_stragglers = bool(drop_stragglers)
        if self.stragglers > 0 and not self.drop_stragglers and self.epochs < 2:
            raise ValueError(
                "epochs must be at least 2 when stragglers > 0 and drop_stragglers=False: a "
                "straggler runs a number of epochs in [1, epochs), which is empty for epochs=1. "
                "Use drop_stragglers=True to drop the stragglers instead."
            )

    def up(self, w: np.ndarray) -> dict:
        """One vector ``w_k`` as FedAvg; with stragglers also the epochs ``E_k`` run (0 =
        dropped)."""
        if self.stragglers == 0:
            return super().up(w)
        return {"w_k": (w.shape, w.dtype), "epochs": ((), np.int32)}

    def client_update(self, w, X_k, y_k, rng: np.random.Generator):
        """ClientUpdate(k, w): ``E_k`` epochs of SGD on ``F_k(w_k) + (mu/2) ||w_k - w||^2``."""
        E_k = self.local_epochs(rng)
        if E_k == 0:
            w_k = w.copy()  # dropped: the device never finishes, nothing is computed
        else:
            w_k = self.local_sgd(w, X_k, y_k, rng, E=E_k, drift=self.proximal_term(w))
        if self.stragglers == 0:
            return w_k
        return {"w_k": w_k, "epochs": np.int32(E_k)}

    def local_epochs(self, rng: np.random.Generator) -> int:
        """``E_k``: ``E``; for a straggler (probability ``stragglers``, drawn first) uniform in
        ``{1, ..., E-1}``, or 0 when stragglers are dropped. Draws nothing if ``stragglers = 0``."""
        if self.stragglers == 0 or rng.random() >= self.stragglers:
            return self.epochs
        if self.drop_stragglers:
            return 0
        return int(rng.integers(1, self.epochs))

    def proximal_term(self, w: np.ndarray):
        """The drift ``g <- g + mu (w_k - w)``, the gradient of ``(mu/2) ||w_k - w||^2``, added
        in place through one scratch vector per client update."""
        mu, r = self.mu, np.empty_like(w)

        def drift(w_k: np.ndarray, g: np.ndarray) -> None:
            np.subtract(w_k, w, out=r)  # r = w_k - w
            g += np.multiply(mu, r, out=r)  # g = g + mu (w_k - w)

        return drift

    def server_update(self, w, M, n_S) -> np.ndarray:
        """``w_{t+1} = sum_{k in A} (n_k / n_A) w_k`` over the clients ``A`` whose update arrived
        (``E_k > 0``); ``w_t`` unchanged if none did."""
        if self.stragglers == 0:
            return aggregate(M, n_S)  # (m, d) stack of w_k, every client arrived
        arrived = M["epochs"] > 0  # (m,)
        if not arrived.any():
            return w.copy()
        return aggregate(M["w_k"][arrived], np.asarray(n_S)[arrived])
