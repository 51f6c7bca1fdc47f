"""``FederatedDataset``: K clients' data, their sizes ``n_k`` and a server-side test set.

The clients' samples are stored once, client after client, in one array; client ``k``'s data is
the slice ``X[offsets[k]:offsets[k+1]]`` (a view). Rounds never copy client data, and the whole
pool can be placed in shared memory for parallel workers.

Natural silos (hospitals, stations, fleets) also come with a test set each
(:meth:`FederatedDataset.from_silos`). The test rows are then stored the same way, silo after
silo: ``X_test`` is the pooled test set and client ``k``'s own test rows are the view
``X_test[test_offsets[k]:test_offsets[k+1]]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    test_sizes : sequence of K ints, optional
        When the test set is made of the clients' own test rows, stored client after client:
        client ``k`` holds the next ``test_sizes[k] >= 1`` rows of ``X_test``. The evaluation
        then also reports every client's test metrics (``client_test_loss``, ...).

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
    n_k_test, test_offsets : int arrays of shape ``(K,)`` and ``(K + 1,)``, or None
        Test rows per client and where each client's block starts in ``X_test`` (``None``
        without ``test_sizes``).
    client_names : list of str or None
        The silos' names, when built by :meth:`from_silos`.
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
        test_sizes: Sequence[int] | None = None,
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
        self.client_names: list[str] | None = None
        self.X_test = self.y_test = self.n_k_test = self.test_offsets = None
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
        if test_sizes is not None:
            self.n_k_test = _check_test_sizes(test_sizes, self.K, self.y_test)
            self.test_offsets = np.concatenate([[0], np.cumsum(self.n_k_test)])

    @classmethod
    def from_clients(cls, clients, X_test=None, y_test=None, dtype=np.float32, name: str = ""):
        """Build from a list of per-client ``(X_k, y_k)`` pairs (e.g. one per hospital)."""
        clients = list(clients)
        if not clients:
            raise ValueError("clients is empty: give at least one (X_k, y_k) pair.")
        names = [(f"client {k}'s X_k", "y_k") for k in range(len(clients))]
        X, y, sizes = _stack_clients(clients, dtype, names)
        bounds = np.cumsum([0, *sizes])
        indices = [np.arange(a, b) for a, b in pairwise(bounds)]
        return cls(X, y, indices, X_test, y_test, dtype=dtype, name=name, copy=False)

    @classmethod
    def from_silos(
        cls, silos: Mapping[str, tuple], dtype=np.float32, name: str = ""
    ) -> FederatedDataset:
        """Build from natural silos, each with its own training and test rows.

        ``silos`` maps a silo's name to ``(X_train, y_train, X_test, y_test)``. Silo ``k`` (in
        the mapping's order) is client ``k``; the training rows are stored client after client
        (each concatenated once into ``dtype``, no further copy), and so are the test rows:
        ``X_test``, ``y_test`` are the pooled test set and :meth:`client_test` gives silo ``k``'s
        own. ``client_names`` keeps the names.
        """
        if not isinstance(silos, Mapping):
            raise TypeError(
                "silos must be a dict {name: (X_train, y_train, X_test, y_test)}, "
                f"got {type(silos).__name__}."
            )
        if not silos:
            raise ValueError("silos is empty: give at least one silo.")
        for key, silo in silos.items():
            if not isinstance(silo, Sequence) or len(silo) != 4:
                raise ValueError(f"silos[{key!r}] must be (X_train, y_train, X_test, y_test).")
        train = [(s[0], s[1]) for s in silos.values()]
        test = [(s[2], s[3]) for s in silos.values()]
        names = {part: [(f"silos[{key!r}]'s X_{part}", f"y_{part}")
                        for key in silos] for part in ("train", "test")}  # fmt: skip
        X, y, sizes = _stack_clients(train, dtype, names["train"])
        X_test, y_test, test_sizes = _stack_clients(test, dtype, names["test"])
        indices = [np.arange(a, b) for a, b in pairwise(np.cumsum([0, *sizes]))]
        data = cls(X, y, indices, X_test, y_test, dtype, name, copy=False, test_sizes=test_sizes)
        data.client_names = [str(key) for key in silos]
        return data

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

    def client_test(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Client ``k``'s own test rows ``(X_test_k, y_test_k)`` as views (needs ``test_sizes``)."""
        if self.test_offsets is None:
            raise ValueError(
                "this federation has no per-client test sets; build it with "
                "FederatedDataset.from_silos(...) or give test_sizes."
            )
        self.client(k)  # checks k
        a, b = self.test_offsets[k], self.test_offsets[k + 1]
        return self.X_test[a:b], self.y_test[a:b]

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


def _stack_clients(pairs, dtype, names) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The clients' ``(X_k, y_k)`` pairs concatenated: ``X`` (cast to ``dtype`` while it is
    concatenated: one new array), ``y``, and the sizes ``n_k``. ``names[k]`` names client
    ``k``'s two arrays in errors, e.g. ``("client 0's X_k", "y_k")``."""
    X_parts, y_parts = [], []
    for (X_k, y_k), (X_name, y_name) in zip(pairs, names, strict=True):
        X_k, y_k = check_features(X_name, X_k), np.asarray(y_k)
        check_same_length(X_k, y_k, f"{X_name} and {y_name}")
        X_parts.append(X_k)
        y_parts.append(y_k)
    X = np.concatenate(X_parts, dtype=dtype) if len(X_parts) > 1 else X_parts[0].astype(dtype)
    return X, np.concatenate(y_parts), [len(y_k) for y_k in y_parts]


def _check_test_sizes(test_sizes, K: int, y_test) -> np.ndarray:
    """``test_sizes`` as an int64 array of ``K`` counts >= 1 that add up to the test set."""
    if y_test is None:
        raise ValueError("test_sizes needs a test set: give X_test and y_test too.")
    sizes = np.asarray(test_sizes)
    if sizes.shape != (K,) or sizes.dtype.kind not in "iu":
        raise ValueError(
            f"test_sizes must hold one whole number per client ({K}), got {sizes.tolist()}."
        )
    if sizes.min() < 1:
        k = int(np.argmin(sizes))
        raise ValueError(f"client {k} has no test rows: every client needs at least one.")
    if sizes.sum() != len(y_test):
        raise ValueError(
            f"test_sizes add up to {sizes.sum()} rows but the test set has {len(y_test)}."
        )
    return sizes.astype(np.int64)


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
