"""FederatedAveraging (McMahan et al. 2017, Algorithm 1).

    Server executes:
        initialize w_0
        for each round t = 0, 1, ...:
            m   <- max(round(C K), 1)              # minifed.simulation.sample_clients
            S_t <- (random set of m clients)
            for each client k in S_t in parallel:
                w_{t+1}^k <- ClientUpdate(k, w_t)  # FedAvg.client_update
            w_{t+1} <- sum_{k in S_t} (n_k / n_S) w_{t+1}^k   # FedAvg.server_update

    ClientUpdate(k, w):                            # run on client k
        for each local epoch i from 1 to E:
            for batch b of size B:
                w <- w - eta * grad l(w; b)
        return w to server

``B = None`` is the paper's ``B = inf`` (the whole local dataset as one batch). With ``E = 1``
and ``B = None`` each client takes exactly one full-batch step, so averaging the resulting
``w_k = w - eta g_k`` gives ``w - eta sum_k (n_k/n_S) g_k``: FedAvg reduces to FedSGD.

The coefficients ``n_k / n_S`` are taken over the sampled clients only, as in the paper. With
partial participation the expected update is then not exactly the full objective's: uniform
sampling under-weights large clients (tutorial chapter 7 measures this).

The paper splits the local data into batches once; like most implementations, minifed reshuffles
the batches at every local epoch (drawn from the client's own generator, so runs repeat exactly).
"""

from __future__ import annotations

import numpy as np

from minifed.algorithms.base import Algorithm, aggregate, check_local_settings, minibatches
from minifed.models.base import Model


class FedAvg(Algorithm):
    """Federated Averaging: clients run E epochs of minibatch SGD, the server averages models.

    Parameters
    ----------
    model : Model
        The model structure shared by all clients.
    lr : float
        Local step size ``eta``.
    epochs : int
        Local epochs ``E >= 1``.
    batch_size : int or None
        Local minibatch size ``B``; ``None`` means the whole local dataset (``B = inf``).
    """

    name = "fedavg"

    def __init__(self, model: Model, lr: float, epochs: int = 1, batch_size: int | None = None):
        super().__init__(model, lr)
        self.epochs, self.batch_size = check_local_settings(epochs, batch_size)

    def client_update(self, w, X_k, y_k, rng: np.random.Generator) -> np.ndarray:
        """ClientUpdate(k, w): ``E`` epochs of ``w_k <- w_k - eta * grad l(w_k; b)``; returns
        ``w_k``."""
        return self.local_sgd(w, X_k, y_k, rng)

    def local_sgd(self, w, X_k, y_k, rng, E: int | None = None, drift=None) -> np.ndarray:
        """``E`` epochs (default ``self.epochs``) of minibatch SGD from ``w``; returns ``w_k``.

        Each step is ``w_k <- w_k - eta * (grad l(w_k; b) + drift(w_k))``. The algorithms of the
        FedAvg family change only the ``drift`` term, added into the gradient ``g`` in place by
        ``drift(w_k, g)``: FedProx ``mu (w_k - w)``, SCAFFOLD ``c - c_k``, ADMM
        ``lambda_k + rho (w_k - z)``.
        """
        eta, B = self.lr, self.batch_size
        E = self.epochs if E is None else E
        w_k = w.copy()  # the client's own copy: never write into the global model
        g = np.empty_like(w_k)  # gradient buffer, reused by every step
        for _ in range(E):
            for b in minibatches(len(y_k), B, rng):
                self.model.loss_and_grad_(w_k, X_k[b], y_k[b], g)
                if drift is not None:
                    drift(w_k, g)
                w_k -= np.multiply(eta, g, out=g)  # w_k <- w_k - eta * g, without a temporary
        return w_k

    def server_update(self, w, W, n_S) -> np.ndarray:
        """``w_{t+1} = sum_{k in S_t} (n_k / n_S) w_k`` from the stack ``W`` of shape ``(m, d)``."""
        return aggregate(W, n_S)
