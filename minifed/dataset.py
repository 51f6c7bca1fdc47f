"""``FederatedDataset``: K clients' data, their sizes ``n_k`` and a server-side test set.

The clients' samples are stored once, client after client, in one array; client ``k``'s data is
the slice ``X[offsets[k]:offsets[k+1]]`` (a view). Rounds never copy client data, and the whole
pool can be placed in shared memory for parallel workers.
"""

from __future__ import annotations

from collections.abc import Sequence

from itertools import pairwise

import numpy as np

from minifed._checks import check_features, check_int, check_same_length

BLOCK_BYTES = 16 << 20  # rows are cast to the stored dtype in blocks of this many input bytes


class FederatedDataset:
    """Data of ``K`` clients plus an optional test set.

    Parameters
    ----------
    X, y : arrays
        The pool of training samples (features first axis = samples) and labels or targets.
    client_indices : sequence of int arrays
        ``client_indices[k]`` lists the rows of ``X`` that client ``k`` holds. The sets must be
        disjoint and non-empty (a partitioner from :mod:`minifed.partition` guarantees it).
    X_test, y_test : arrays, optional
        A server-side test set for evaluation.
    dtype : float dtype
        Features are stored in this dtype (float32 for training, float64 for exact checks).
    copy : bool
        ``True`` (default): the dataset owns fresh copies of ``X`` and ``y``. ``False``: when the
        clients' rows are already ``0..n-1`` in order and ``X`` already has ``dtype``, keep ``X``
        and ``y`` themselves (no copy, half the memory for a large pool; the caller must then not
        modify them). Otherwise the rows are gathered anyway.

    Attributes
    ----------
    K : int
        Number of clients.
    n_k : int array of shape ``(K,)``
        Samples per client.
    n : int
        Total samples, ``n = sum_k n_k``.
    p : float array of shape ``(K,)``
        Mixing coefficients ``p_k = n_k / n`` of the objective ``F(w) = sum_k p_k F_k(w)``.
    """

    def __init__(
        self,
        X,
        y,
        client_indices: Sequence[np.ndarray],
        X_test=None,
        y_test=None,
        dtype=np.float32,
        name: str = "",
        copy: bool = True,
    ):
        X = check_features("X", X)
        y = np.asarray(y)
        check_same_length(X, y)
        order = _check_indices(client_indices, len(X))
        keep = not copy and _is_identity(order, len(X))
        self.X = np.ascontiguousarray(X, dtype=dtype) if keep else _take_rows(X, order, dtype)
        self.y = np.ascontiguousarray(y) if keep else _take_rows(y, order, y.dtype)
        self.n_k = np.array([len(ix) for ix in client_indices], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.n_k)])
        self.name = name
        self.X_test = self.y_test = None
        if X_test is not None or y_test is not None:
            if X_test is None or y_test is None:
                raise ValueError("X_test and y_test must be given together.")
            X_test = check_features("X_test", X_test)
            y_test = np.asarray(y_test)
            check_same_length(X_test, y_test, "X_test and y_test")
            if X_test.shape[1:] != X.shape[1:]:
                raise ValueError(
                    f"X_test rows must have the shape of X rows, {X.shape[1:]}, "
                    f"got {X_test.shape[1:]}."
                )
            self.X_test = np.ascontiguousarray(X_test, dtype=dtype)
            self.y_test = y_test

    @classmethod
    def from_clients(cls, clients, X_test=None, y_test=None, dtype=np.float32, name: str = ""):
        """Build from a list of per-client ``(X_k, y_k)`` pairs (e.g. one per hospital)."""
        clients = list(clients)
        if not clients:
            raise ValueError("clients is empty: give at least one (X_k, y_k) pair.")
        for k, (X_k, y_k) in enumerate(clients):
            check_same_length(np.asarray(X_k), np.asarray(y_k), f"client {k}'s X_k and y_k")
        sizes = [len(y_k) for _, y_k in clients]
        X = np.concatenate([np.asarray(X_k) for X_k, _ in clients])
        y = np.concatenate([np.asarray(y_k) for _, y_k in clients])
        bounds = np.cumsum([0, *sizes])
        indices = [np.arange(a, b) for a, b in pairwise(bounds)]
        return cls(X, y, indices, X_test, y_test, dtype=dtype, name=name)

    @property
    def K(self) -> int:
        return len(self.n_k)

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    @property
    def p(self) -> np.ndarray:
        return self.n_k / self.n

    def client(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Client ``k``'s data ``(X_k, y_k)`` as views into the pool (no copy)."""
        k = check_int("k", k, minimum=0)
        if k >= self.K:
            raise ValueError(f"k must be a client id in [0, {self.K}), got {k}.")
        a, b = self.offsets[k], self.offsets[k + 1]
        return self.X[a:b], self.y[a:b]

    def client_of_sample(self) -> np.ndarray:
        """Client id of every row of the pool, shape ``(n,)``."""
        return np.repeat(np.arange(self.K), self.n_k)

    def label_counts(self, num_classes: int | None = None) -> np.ndarray:
        """Matrix ``(K, num_classes)`` of how many samples of each class every client holds."""
        if num_classes is None:
            num_classes = int(self.y.max()) + 1
        flat = self.client_of_sample() * num_classes + self.y.astype(np.int64)
        return np.bincount(flat, minlength=self.K * num_classes).reshape(self.K, num_classes)

    def __repr__(self) -> str:
        test = 0 if self.y_test is None else len(self.y_test)
        return (
            f"FederatedDataset({self.name!r}: K={self.K} clients, n={self.n}, "
            f"n_k from {self.n_k.min()} to {self.n_k.max()}, features {self.X.shape[1:]}, "
            f"test={test})"
        )


def _check_indices(client_indices, n: int) -> np.ndarray:
    """Concatenate client index arrays after checking they are non-empty, in range, disjoint.

    O(n + K): one pass per client for its type, then range and overlap checks on the whole.
    """
    if isinstance(client_indices, np.ndarray) and client_indices.dtype != object:
        raise TypeError("client_indices must be a list of index arrays, one per client.")
    if len(client_indices) == 0:
        raise ValueError("client_indices is empty: a federation needs at least one client.")
    parts = []
    for k, ix in enumerate(client_indices):
        ix = np.asarray(ix)
        if ix.ndim != 1 or (ix.size and ix.dtype.kind not in "iu"):
            raise TypeError(f"client_indices[{k}] must be a 1-D array of integer row numbers.")
        if ix.size == 0:
            raise ValueError(f"client {k} has no samples: every client needs at least one.")
        parts.append(ix.astype(np.int64, copy=False))
    order = np.concatenate(parts)  # (sum_k n_k,)
    if order.min() < 0 or order.max() >= n:
        k = next(k for k, ix in enumerate(parts) if ix.min() < 0 or ix.max() >= n)
        raise ValueError(f"client_indices[{k}] has rows outside [0, {n}).")
    seen = np.zeros(n, dtype=bool)
    seen[order] = True
    if np.count_nonzero(seen) != order.size:
        raise ValueError("client_indices overlap: a sample may belong to one client only.")
    return order


def _is_identity(order: np.ndarray, n: int) -> bool:
    """Whether ``order`` is ``[0, 1, ..., n-1]``."""
    return order.size == n and bool(np.all(order == np.arange(n)))


def _take_rows(A: np.ndarray, order: np.ndarray, dtype) -> np.ndarray:
    """``A[order]`` as a new C-contiguous ``dtype`` array.

    Gathered with ``np.take`` (about 3x faster than ``A[order]`` for rows); when the dtype
    changes, in blocks of ``BLOCK_BYTES``, so that no full-size temporary in ``A``'s dtype (e.g.
    a float64 copy of the pool on its way to float32) is ever made.
    """
    if A.dtype == np.dtype(dtype):
        return np.take(A, order, axis=0)
    out = np.empty((order.size, *A.shape[1:]), dtype=dtype)
    step = max(1, BLOCK_BYTES // max(A[:1].nbytes, 1))
    for a in range(0, order.size, step):
        out[a : a + step] = np.take(A, order[a : a + step], axis=0)
    return out
