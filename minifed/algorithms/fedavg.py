"""FederatedAveraging (McMahan et al. 2017, Algorithm 1).

    Server executes:
        initialize w_0
        for each round t = 1, 2, ...:
            m   <- max(C * K, 1)                   # minifed.simulation.sample_clients
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
        """ClientUpdate(k, w): ``E`` epochs of ``w <- w - eta * grad l(w; b)``; returns ``w_k``."""
        w = w.copy()  # the client's own copy: never write into the global model
        g = np.empty_like(w)  # gradient buffer, reused by every step
        for _ in range(self.epochs):
            for b in minibatches(len(y_k), self.batch_size, rng):
                self.model.loss_and_grad_(w, X_k[b], y_k[b], g)
                w -= np.multiply(self.lr, g, out=g)  # w <- w - eta * g, without a temporary
        return w

    def server_update(self, w, W, n_S) -> np.ndarray:
        """``w_{t+1} = sum_{k in S_t} (n_k / n_S) w_k`` from the stack ``W`` of shape ``(m, d)``."""
        return aggregate(W, n_S)
