"""Execution engines: where the sampled clients' updates of a round run.

The algorithm defines ``client_update``; an engine only decides where it runs. It holds the
data, never the algorithm or the seed: those come with every round from :func:`run`, the one
source of truth of a run. Per round it takes ``w``, the broadcast state ``down`` and the sampled
clients' state rows, and returns the messages stacked per field (row ``i`` for client ``S[i]``)
with the clients' new state rows.
"""

from __future__ import annotations

import numpy as np

from minifed.dataset import FederatedDataset
from minifed.simulation.protocol import Protocol, run_client


class ClientError(RuntimeError):
    """A client's update raised: names the client and the round, chains the original error."""

    def __init__(self, k: int, t: int, error: BaseException | str):
        self.k, self.t = int(k), int(t)
        super().__init__(f"client {self.k} failed in round {self.t}: {error!r}")


def empty_messages(protocol: Protocol, m: int) -> dict[str, np.ndarray]:
    """``{field: (m, *shape)}`` buffers for the round's messages."""
    return {f: np.empty((m, *shape), dtype) for f, (shape, dtype) in protocol.up.items()}


class SequentialEngine:
    """Runs the clients one after another in this process: the reference for every engine."""

    workers = 1

    def __init__(self, data: FederatedDataset):
        self.data = data

    def run_clients(self, job, w, t: int, S, down=None, states=None):
        """``M[f][i], state_i = client_update(w, X_k, y_k, ...)`` for ``k = S[i]``.

        ``job = (algorithm, protocol, seed)``; ``states`` holds the clients' rows (``None``
        when the algorithm has no client state). Returns ``(M, new_states)``.
        """
        algorithm, protocol, seed = job
        M, new_states = empty_messages(protocol, len(S)), []
        for i, k in enumerate(S):
            X_k, y_k = self.data.client(int(k))
            state_k = None if states is None else states[i]
            try:
                message, state_k = run_client(
                    algorithm, protocol, seed, w, X_k, y_k, t, k, down or {}, state_k
                )
            except Exception as error:
                raise ClientError(k, t, error) from error
            for f, value in message.items():
                M[f][i] = value
            new_states.append(state_k)
        return M, (None if states is None else new_states)

    def close(self) -> None:
        """Nothing to release for the in-process engine."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
