"""The O(n) data paths of a large federation against the obvious per-client loops they replace.

Each reference below is the slow, plainly correct version (what the library did before it was
made fast for K = 10,000 clients); the fast code must give the very same arrays, bit for bit,
from the same random draws.
"""

import numpy as np
import pytest

from minifed.data.synthetic import FEDPROX_CLASSES, FEDPROX_FEATURES, fedprox_synthetic
from minifed.dataset import FederatedDataset
from minifed.federations import _hold_out, load_federation
from minifed.partition import natural


def reference_synthetic(alpha, beta, K, rng, iid=False):
    """Synthetic(alpha, beta): a list of float64 parts per device, concatenated at the end."""
    n_k = rng.lognormal(4.0, 2.0, K).astype(np.int64) + 50
    std_x = np.arange(1, FEDPROX_FEATURES + 1) ** -0.6
    X_parts, y_parts = [], []
    if iid:
        W = rng.standard_normal((FEDPROX_FEATURES, FEDPROX_CLASSES))
        b = rng.standard_normal(FEDPROX_CLASSES)
        X_parts = [std_x * rng.standard_normal((n, FEDPROX_FEATURES)) for n in n_k]
        y_parts = [np.argmax(x @ W + b, axis=1) for x in X_parts]
    else:
        u, B = rng.normal(0.0, alpha, K), rng.normal(0.0, beta, K)
        v = rng.normal(B[:, None], 1.0, (K, FEDPROX_FEATURES))
        for k, n in enumerate(n_k):
            W_k = rng.normal(u[k], 1.0, (FEDPROX_FEATURES, FEDPROX_CLASSES))
            b_k = rng.normal(u[k], 1.0, FEDPROX_CLASSES)
            x = v[k] + std_x * rng.standard_normal((n, FEDPROX_FEATURES))
            X_parts.append(x)
            y_parts.append(np.argmax(x @ W_k + b_k, axis=1))
    X = np.concatenate(X_parts).astype(np.float32)
    return X, np.concatenate(y_parts).astype(np.int64), np.repeat(np.arange(K), n_k)


def reference_hold_out(clients, rng, test_fraction=0.2, standardize=False):
    """One permutation per client, its first round(0.2 n_k) rows to the test set."""
    X, y, X_test, y_test, groups = [], [], [], [], []
    for k, (X_k, y_k) in enumerate(clients):
        order = rng.permutation(len(y_k))
        cut = round(len(y_k) * test_fraction)
        X_test.append(X_k[order[:cut]])
        y_test.append(y_k[order[:cut]])
        X.append(X_k[order[cut:]])
        y.append(y_k[order[cut:]])
        groups.append(np.full(len(y_k) - cut, k))
    X, X_test = np.concatenate(X), np.concatenate(X_test)
    if standardize:
        mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-8
        X, X_test = (X - mu) / sd, (X_test - mu) / sd
    return X, np.concatenate(y), X_test, np.concatenate(y_test), np.concatenate(groups)


def assert_same(a, b):
    """Equal arrays of the same dtype (exact, not approximate)."""
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    ("alpha", "beta", "iid"), [(1.0, 1.0, False), (0.5, 2.0, False), (0, 0, True)]
)
def test_fedprox_synthetic_equals_the_concatenating_loop(alpha, beta, iid):
    fast = fedprox_synthetic(alpha, beta, 13, rng=np.random.default_rng(3), iid=iid)
    slow = reference_synthetic(alpha, beta, 13, np.random.default_rng(3), iid=iid)
    assert_same(fast, slow)
    assert fast[0].flags.c_contiguous


@pytest.mark.parametrize("standardize", [False, True])
def test_hold_out_equals_the_per_client_loop(standardize):
    X, y, device = fedprox_synthetic(1.0, 1.0, 9, rng=np.random.default_rng(0))
    device = device[::-1].copy()  # ids no longer sorted: clients must still be found by id
    clients = [(X[device == k], y[device == k]) for k in range(9)]
    fast = _hold_out(X, y, device, np.random.default_rng(1), standardize=standardize)
    slow = reference_hold_out(clients, np.random.default_rng(1), standardize=standardize)
    assert_same(fast, slow)


def test_hold_out_rounds_half_to_even_like_python():
    sizes = [5, 10, 15, 25, 35, 1, 2, 3]  # 0.1 n_k and 0.5 n_k hit halves: 0.5, 1.5, 2.5
    group = np.repeat(np.arange(len(sizes)), sizes)
    X = np.arange(group.size * 2, dtype=np.float32).reshape(-1, 2)
    y = np.arange(group.size)
    clients = [(X[group == k], y[group == k]) for k in range(len(sizes))]
    for fraction in (0.1, 0.25, 0.5):
        fast = _hold_out(X, y, group, np.random.default_rng(2), test_fraction=fraction)
        slow = reference_hold_out(clients, np.random.default_rng(2), test_fraction=fraction)
        assert_same(fast, slow)


def test_load_federation_synthetic_equals_the_slow_path():
    rng = np.random.default_rng(5)
    X, y, device = reference_synthetic(1.0, 1.0, 11, rng)
    clients = [(X[device == k], y[device == k]) for k in range(11)]
    X, y, X_test, y_test, groups = reference_hold_out(clients, rng)
    parts = [np.flatnonzero(groups == k) for k in range(11)]
    slow = FederatedDataset(X, y, parts, X_test, y_test)
    fast = load_federation("synthetic", "natural", K=11, rng=np.random.default_rng(5))
    assert_same(
        (fast.X, fast.y, fast.X_test, fast.y_test), (slow.X, slow.y, slow.X_test, slow.y_test)
    )
    np.testing.assert_array_equal(fast.n_k, slow.n_k)
    np.testing.assert_array_equal(fast.offsets, slow.offsets)


def test_natural_equals_one_client_per_distinct_id():
    groups = np.random.default_rng(0).integers(0, 50, 2_000) * 3  # ids 0, 3, ..., unsorted
    parts, names = natural(groups)
    slow = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    assert_same(parts, slow)
    np.testing.assert_array_equal(names, np.unique(groups))


# ---- FederatedDataset: copies only when they are needed -----------------------------------------


def test_dataset_copy_false_keeps_rows_already_in_client_order():
    X, y = np.ones((6, 2), np.float32), np.arange(6)
    parts = [np.arange(0, 2), np.arange(2, 6)]
    kept = FederatedDataset(X, y, parts, copy=False)
    assert kept.X is X and kept.y is y
    copied = FederatedDataset(X, y, parts)  # the default owns its data
    assert not np.shares_memory(copied.X, X) and not np.shares_memory(copied.y, y)
    shuffled = FederatedDataset(X, y, [np.array([1, 0]), np.arange(2, 6)], copy=False)
    assert not np.shares_memory(shuffled.X, X)  # rows move, so they are gathered anyway


@pytest.mark.parametrize("copy", [True, False])
def test_dataset_gathers_and_casts_like_fancy_indexing(copy, monkeypatch):
    import minifed.dataset as dataset

    monkeypatch.setattr(dataset, "BLOCK_BYTES", 100)  # float64 rows of 48 bytes: 2 per block
    X = np.random.default_rng(0).standard_normal((50, 3, 2))  # float64, rows of shape (3, 2)
    y = np.arange(50) % 7
    parts = [np.arange(49, 20, -1), np.arange(0, 21)[::-1]]
    ds = FederatedDataset(X, y, parts, copy=copy)
    order = np.concatenate(parts)
    assert_same((ds.X, ds.y), (X[order].astype(np.float32), y[order]))
    assert ds.X.flags.c_contiguous and ds.y.flags.c_contiguous
    ds64 = FederatedDataset(X, y, [np.arange(50)], dtype=np.float64, copy=copy)
    assert (ds64.X is X) == (not copy)
    assert_same((ds64.X,), (X,))


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([np.array([0, 1]), np.array([1, 2])], "overlap"),
        ([np.array([0, 1]), np.array([2, 9])], r"client_indices\[1\] has rows outside"),
        ([np.array([0]), np.array([-1])], r"client_indices\[1\] has rows outside"),
        ([np.array([0]), np.array([], np.int64)], "client 1 has no samples"),
    ],
)
def test_dataset_still_names_the_bad_client(parts, message):
    with pytest.raises(ValueError, match=message):
        FederatedDataset(np.zeros((4, 2)), np.zeros(4), parts)
