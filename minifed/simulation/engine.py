"""Execution engines: where the sampled clients' updates of a round run.

The algorithm defines ``client_update``; an engine only decides where it runs and collects the
messages into the stack ``M`` of shape ``(m, d)``, row ``i`` for client ``S[i]``.
"""

from __future__ import annotations

import numpy as np

from minifed.algorithms.base import Algorithm
from minifed.dataset import FederatedDataset
from minifed.simulation.sampling import client_rng


class ClientError(RuntimeError):
    """A client's update raised: names the client and the round, chains the original error."""

    def __init__(self, k: int, t: int, error: BaseException | str):
        self.k, self.t = int(k), int(t)
        super().__init__(f"client {self.k} failed in round {self.t}: {error!r}")


class SequentialEngine:
    """Runs the clients one after another in this process: the reference for every engine."""

    workers = 1

    def __init__(self, algorithm: Algorithm, data: FederatedDataset, seed: int):
        self.algorithm, self.data, self.seed = algorithm, data, seed

    def run_clients(self, w: np.ndarray, t: int, S: np.ndarray) -> np.ndarray:
        """``M[i] = client_update(w, X_k, y_k, rng(seed, t, k))`` for ``k = S[i]``."""
        M = np.empty((len(S), len(w)), dtype=w.dtype)  # (m, d) messages
        for i, k in enumerate(S):
            X_k, y_k = self.data.client(int(k))
            try:
                M[i] = self.algorithm.client_update(w, X_k, y_k, client_rng(self.seed, t, k))
            except Exception as error:
                raise ClientError(k, t, error) from error
        return M

    def close(self) -> None:
        """Nothing to release for the in-process engine."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
