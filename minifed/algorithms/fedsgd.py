"""FedSGD (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
Decentralized Data", Section 2 and the baseline of Algorithm 1 with E = 1, B = inf).

Each round ``t`` the server sends ``w_t`` to the sampled clients ``S_t``; client ``k`` computes
the full-batch gradient of its local objective and sends it back; the server takes one gradient
step with the weighted average:

    g_k     = grad F_k(w_t)                                  (client, all n_k samples)
    w_{t+1} = w_t - eta * sum_{k in S_t} (n_k / n_S) g_k      (server, n_S = sum_{k in S_t} n_k)

With every client in the round (C = 1), ``sum_k (n_k/n) grad F_k(w) = grad F(w)``: FedSGD is
exactly centralized full-batch gradient descent on the union of the clients' data. With C < 1,
``sum_{k in S_t} (n_k/n_S) g_k`` is a ratio estimate of ``grad F(w_t)``: slightly biased when
client sizes differ (tutorial chapter 4 measures it).
"""

from __future__ import annotations

import numpy as np

from minifed.algorithms.base import Algorithm, aggregate
from minifed.models.base import Model


class FedSGD(Algorithm):
    """Federated SGD: clients send gradients, the server averages them and steps.

    Parameters
    ----------
    model : Model
        The model structure shared by all clients.
    lr : float
        Server step size ``eta``.
    """

    name = "fedsgd"

    def __init__(self, model: Model, lr: float):
        super().__init__(model, lr)

    def client_update(self, w, X_k, y_k) -> np.ndarray:
        """``g_k = grad F_k(w)`` on client ``k``'s whole dataset."""
        _, g_k = self.model.loss_and_grad_(w, X_k, y_k)
        return g_k

    def server_update(self, w, G, n_S) -> np.ndarray:
        """``w - eta * sum_k (n_k / n_S) g_k`` from the stack ``G`` of shape ``(m, d)``."""
        return w - self.lr * aggregate(G, n_S)
