"""Per-client state, kept by the round loop in the server process, keyed by client id.

A client's row (e.g. SCAFFOLD's ``c_k``, ADMM's ``lambda_k``) is created by
``algorithm.init_client_state(w)`` on the client's first round, with the global ``w`` of that
round, so a short run stores rows only for the clients it touched: after ``T`` rounds with
fraction ``C`` about a fraction ``1 - (1 - C)^T`` of the ``K`` clients has one.

Memory: one row of ``d`` float32 values per touched client, e.g. 24 MB for 10,000 clients of
softmax regression on MNIST (d = 7,850), 8 GB for 10,000 clients of the 2NN (d = 199,210) and
66 GB for the CNN. For long runs of large models keep ``K`` small, use float32, or prefer an
algorithm without client state (FedAvg, FedProx, FedOpt); every touched row is also written
into each checkpoint.
"""

from __future__ import annotations

import numpy as np


def as_arrays(state: dict) -> dict[str, np.ndarray]:
    """State fields as arrays (a scalar becomes a 0-d array), the form a checkpoint restores, so
    that a resumed run computes with the same types as the uninterrupted one."""
    return {f: np.asarray(v) for f, v in state.items()}


class ClientStates:
    """``{k: {field: array}}`` for the clients that have taken part so far."""

    def __init__(self, rows: dict[int, dict[str, np.ndarray]] | None = None):
        self.rows = dict(rows or {})

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, algorithm, S, w) -> list[dict]:
        """The rows of the clients ``S``, created lazily with ``init_client_state(w)``."""
        for k in map(int, S):
            if k not in self.rows:
                self.rows[k] = as_arrays(algorithm.init_client_state(w))
        return [self.rows[int(k)] for k in S]

    def put(self, S, new_rows) -> None:
        """Store the rows the clients ``S`` returned (row ``i`` for client ``S[i]``)."""
        for k, row in zip(S, new_rows, strict=True):
            self.rows[int(k)] = as_arrays(row)

    @property
    def nbytes(self) -> int:
        return sum(np.asarray(v).nbytes for row in self.rows.values() for v in row.values())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"ids": (n,), field: (n, ...)}``: the rows stacked, for a checkpoint."""
        ids = np.array(sorted(self.rows), dtype=np.int64)
        if not len(ids):
            return {"ids": ids}
        fields = self.rows[int(ids[0])]
        return {"ids": ids, **{f: np.stack([self.rows[int(k)][f] for k in ids]) for f in fields}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ClientStates:
        ids = arrays["ids"]
        fields = [f for f in arrays if f != "ids"]
        return cls({int(k): {f: arrays[f][i] for f in fields} for i, k in enumerate(ids)})
