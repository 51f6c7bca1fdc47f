"""Tests of the partitioners (``minifed.partition``) and of ``FederatedDataset``.

Invariants first (hypothesis): every partitioner returns K disjoint, non-empty int64 index arrays
that cover every sample exactly once, and the same seed gives the same split. Then the checks that
tie each partitioner to its paper, then every error message.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minifed.dataset import FederatedDataset
from minifed.partition import (
    dirichlet,
    iid,
    natural,
    parse_partition,
    partition,
    quantity_skew,
    shards,
)

FAST = settings(max_examples=40, deadline=None)


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_partition(parts, n, K):
    """K disjoint, non-empty, sorted int64 arrays whose union is every row of 0..n-1 once."""
    assert isinstance(parts, list)
    assert len(parts) == K
    for ix in parts:
        assert ix.ndim == 1 and ix.dtype == np.int64 and ix.size > 0
        assert np.all(np.diff(ix) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def assert_same(a, b):
    assert len(a) == len(b) and all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))


def entropy_per_client(y, parts):
    """Mean over clients of the Shannon entropy (nats) of the client's label distribution."""
    H = []
    for ix in parts:
        q = np.bincount(y[ix]) / len(ix)
        q = q[q > 0]
        H.append(-(q * np.log(q)).sum())
    return float(np.mean(H))


# ---- invariants (hypothesis) -------------------------------------------------------------------


@FAST
@given(st.integers(1, 300), st.data(), st.integers(0, 2**32 - 1))
def test_iid_invariants(n, data, seed):
    K = data.draw(st.integers(1, n))
    parts = iid(n, K, rng=rng(seed))
    assert_partition(parts, n, K)
    sizes = [len(ix) for ix in parts]
    assert max(sizes) - min(sizes) <= 1
    assert_same(parts, iid(n, K, rng=rng(seed)))


@FAST
@given(
    st.integers(1, 15),
    st.integers(1, 4),
    st.integers(1, 8),
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
)
def test_shards_invariants(K, s, shard_size, C, seed):
    n = K * s * shard_size
    y = rng(seed).integers(0, C, size=n)
    parts = shards(y, K, s, rng=rng(seed))
    assert_partition(parts, n, K)
    assert all(len(ix) == s * shard_size for ix in parts)
    assert_same(parts, shards(y, K, s, rng=rng(seed)))


@FAST
@given(st.integers(1, 200), st.integers(1, 10), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_shards_drop_remainder_invariants(n, K, s, seed):
    if n < K * s:
        return
    y = rng(seed).integers(0, 4, size=n)
    parts = shards(y, K, s, rng=rng(seed), drop_remainder=True)
    kept = np.concatenate(parts)
    assert len(parts) == K and all(len(ix) == n // (K * s) * s for ix in parts)
    assert len(np.unique(kept)) == len(kept) == n - n % (K * s)
    assert kept.min() >= 0 and kept.max() < n


@FAST
@given(
    st.integers(1, 12),
    st.integers(1, 5),
    st.floats(0.3, 20.0),
    st.integers(1, 3),
    st.integers(0, 2**32 - 1),
)
def test_dirichlet_invariants(K, C, alpha, min_size, seed):
    n = 30 * K
    y = rng(seed).integers(0, C, size=n)
    parts = dirichlet(y, K, alpha, rng=rng(seed), min_size=min_size)
    assert_partition(parts, n, K)
    assert min(len(ix) for ix in parts) >= min_size
    assert_same(parts, dirichlet(y, K, alpha, rng=rng(seed), min_size=min_size))


@FAST
@given(st.integers(1, 400), st.data(), st.floats(0.5, 5.0), st.integers(0, 2**32 - 1))
def test_quantity_skew_invariants(n, data, power, seed):
    K = data.draw(st.integers(1, n))
    min_size = data.draw(st.integers(1, n // K))
    parts = quantity_skew(n, K, rng=rng(seed), power=power, min_size=min_size)
    assert_partition(parts, n, K)
    assert min(len(ix) for ix in parts) >= min_size
    assert_same(parts, quantity_skew(n, K, rng=rng(seed), power=power, min_size=min_size))


@FAST
@given(st.lists(st.integers(-3, 8), min_size=1, max_size=100))
def test_natural_reproduces_groups(groups):
    groups = np.array(groups)
    parts, names = natural(groups)
    np.testing.assert_array_equal(names, np.unique(groups))
    assert_partition(parts, len(groups), len(names))
    for ix, g in zip(parts, names, strict=True):
        assert np.all(groups[ix] == g)


@FAST
@given(
    st.sampled_from(["iid", "shards:1", "dirichlet:1.0", "quantity", "quantity:3"]),
    st.integers(1, 10),
    st.integers(0, 2**32 - 1),
)
def test_partition_dispatch_invariants(spec, K, seed):
    y = np.repeat(np.arange(5), 6 * K)  # n = 30 K, divisible by K shards
    parts = partition(spec, y, K, rng(seed))
    assert_partition(parts, len(y), K)
    assert_same(parts, partition(spec, y, K, rng(seed)))


SPLITS = {
    "iid": lambda y, r: iid(len(y), 10, rng=r),
    "shards": lambda y, r: shards(y, 10, rng=r),
    "dirichlet": lambda y, r: dirichlet(y, 10, 0.5, rng=r),
    "quantity": lambda y, r: quantity_skew(len(y), 10, rng=r),
}


@pytest.mark.parametrize("name", SPLITS)
def test_different_seed_gives_different_split(name):
    y = np.repeat(np.arange(10), 40)
    a, b = SPLITS[name](y, rng(1)), SPLITS[name](y, rng(2))
    assert not all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))


# ---- what each partitioner is for --------------------------------------------------------------


def test_iid_doc_sizes():
    assert [len(ix) for ix in iid(10, 3, rng=rng(0))] == [4, 3, 3]


def test_shards_mnist_like():
    y = np.repeat(np.arange(10), 6000)  # sorted, balanced: 60000 MNIST-like labels
    parts = shards(y, 100, 2, rng=rng(0))
    assert_partition(parts, 60000, 100)
    assert all(len(ix) == 600 for ix in parts)
    assert max(len(np.unique(y[ix])) for ix in parts) <= 2
    shuffled = rng(1).permutation(y)
    assert max(len(np.unique(shuffled[ix])) for ix in shards(shuffled, 100, rng=rng(0))) <= 2


def test_shards_stable_sort_keeps_order_of_ties():
    y = np.zeros(12, dtype=int)  # all ties: shard j is rows [3j, 3j+3) in original order
    for ix in shards(y, 4, 1, rng=rng(0)):
        assert ix[0] % 3 == 0 and np.array_equal(ix, np.arange(ix[0], ix[0] + 3))


def test_dirichlet_small_alpha_skews_labels():
    y = np.repeat(np.arange(10), 500)
    H_small = np.mean([entropy_per_client(y, dirichlet(y, 10, 0.05, rng=rng(s))) for s in range(5)])
    H_large = np.mean(
        [entropy_per_client(y, dirichlet(y, 10, 100.0, rng=rng(s))) for s in range(5)]
    )
    assert H_large > 0.95 * np.log(10)  # close to uniform over 10 classes
    assert H_small < 0.5 * H_large


def test_dirichlet_any_integer_labels():
    y = np.array([-5, 7, 7, 100, -5, 3] * 10)
    assert_partition(dirichlet(y, 4, 1.0, rng=rng(0)), len(y), 4)


def test_quantity_skew_heavier_law_heavier_tail():
    def max_share(power):
        return np.mean(
            [max(map(len, quantity_skew(10000, 20, rng=rng(s), power=power))) for s in range(30)]
        )

    sizes = [len(ix) for ix in quantity_skew(10000, 20, rng=rng(0), power=1.5)]
    assert max(sizes) > 2 * min(sizes)
    assert max_share(0.8) > 1.5 * max_share(5.0)


def test_natural_strings_sorted():
    parts, names = natural(["st-gallen", "cleveland", "hungary", "cleveland", "hungary"])
    assert names.tolist() == ["cleveland", "hungary", "st-gallen"]
    assert [ix.tolist() for ix in parts] == [[1, 3], [2, 4], [0]]


def test_partition_natural():
    groups = np.array([2, 0, 2, 1])
    parts = partition("natural", np.zeros(4), None, rng(), groups=groups)
    assert [ix.tolist() for ix in parts] == [[1], [3], [0, 2]]
    assert len(partition("natural", np.zeros(4), 3, rng(), groups=groups)) == 3


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("iid", ("iid", {})),
        ("shards", ("shards", {"shards_per_client": 2})),
        ("shards:3", ("shards", {"shards_per_client": 3})),
        ("dirichlet:0.5", ("dirichlet", {"alpha": 0.5})),
        (" Dirichlet:0.1 ", ("dirichlet", {"alpha": 0.1})),
        ("quantity", ("quantity", {"power": 1.5})),
        ("quantity:2", ("quantity", {"power": 2.0})),
        ("natural", ("natural", {})),
    ],
)
def test_parse_partition(spec, expected):
    assert parse_partition(spec) == expected


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("fedavg", "valid specs: 'iid'.*'dirichlet:0.5'"),
        ("dirichlet", "needs its alpha"),
        ("dirichlet:abc", "alpha .* must be a number"),
        ("dirichlet:0", "alpha"),
        ("dirichlet:-1", "alpha"),
        ("shards:0", "shards_per_client"),
        ("shards:1.5", "shards_per_client .* must be a whole number"),
        ("iid:3", "takes no parameter"),
    ],
)
def test_parse_partition_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_partition(spec)


def test_parse_partition_needs_string():
    with pytest.raises(TypeError, match="spec"):
        parse_partition(0.5)


Y = np.repeat(np.arange(4), 5)  # 20 samples, 4 classes


def _or_default(r):
    return rng() if r is None else r


ALL = {
    "iid": lambda K, r=None: iid(20, K, rng=_or_default(r)),
    "shards": lambda K, r=None: shards(Y, K, 1, rng=_or_default(r)),
    "dirichlet": lambda K, r=None: dirichlet(Y, K, 1.0, rng=_or_default(r)),
    "quantity": lambda K, r=None: quantity_skew(20, K, rng=_or_default(r)),
}


@pytest.mark.parametrize("name", ALL)
def test_bad_K(name):
    with pytest.raises(ValueError, match="K must be at least 1"):
        ALL[name](0)
    with pytest.raises(ValueError, match="K=21 clients but only 20 samples"):
        ALL[name](21)
    with pytest.raises(TypeError, match="K must be a whole number"):
        ALL[name](2.0)


@pytest.mark.parametrize("name", ALL)
def test_rng_must_be_generator(name):
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        ALL[name](2, 0)


def test_rng_is_keyword_only():
    with pytest.raises(TypeError):
        iid(10, 2, rng(0))


def test_shards_not_divisible():
    with pytest.raises(ValueError, match=r"not divisible by K \* shards_per_client = 3 \* 2 = 6"):
        shards(Y, 3, 2, rng=rng())
    with pytest.raises(ValueError, match="drop_remainder=True"):
        shards(Y, 3, 2, rng=rng())
    with pytest.raises(ValueError, match="more than the 20 samples"):
        shards(Y, 11, 2, rng=rng(), drop_remainder=True)
    with pytest.raises(ValueError, match="shards_per_client must be at least 1"):
        shards(Y, 2, 0, rng=rng())


@pytest.mark.parametrize("alpha", [0, -0.5, float("inf"), float("nan")])
def test_dirichlet_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        dirichlet(Y, 2, alpha, rng=rng())


def test_dirichlet_gives_up_with_advice():
    y = np.repeat([0, 1], 100)
    with pytest.raises(ValueError, match="raise alpha, lower min_size"):
        dirichlet(y, 10, 0.01, rng=rng(), min_size=15, max_tries=5)
    with pytest.raises(ValueError, match="min_size \\* K = 210 exceeds"):
        dirichlet(y, 10, 1.0, rng=rng(), min_size=21)


def test_quantity_skew_bad_settings():
    with pytest.raises(ValueError, match="power"):
        quantity_skew(20, 2, rng=rng(), power=0)
    with pytest.raises(ValueError, match="min_size \\* K = 30 exceeds n_samples = 20"):
        quantity_skew(20, 3, rng=rng(), min_size=10)


@pytest.mark.parametrize("split", [shards, dirichlet])
def test_labels_must_be_1d_integers(split):
    kw = {"rng": rng()} if split is shards else {"alpha": 1.0, "rng": rng()}
    with pytest.raises(ValueError, match="y must be a 1-D array"):
        split(Y.reshape(10, 2), 2, **kw)
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        split(Y + 0.5, 2, **kw)
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        split(Y.astype(str), 2, **kw)
    assert len(split(Y.astype(float), 2, **kw)) == 2  # whole-number floats are fine


def test_natural_errors():
    with pytest.raises(ValueError, match="groups must be a non-empty 1-D"):
        natural([])
    with pytest.raises(ValueError, match="groups must be a non-empty 1-D"):
        natural(np.zeros((2, 2)))


def test_partition_errors():
    with pytest.raises(ValueError, match="needs groups"):
        partition("natural", Y, None, rng())
    with pytest.raises(ValueError, match="one id per sample"):
        partition("natural", Y, None, rng(), groups=[0, 1])
    with pytest.raises(ValueError, match="K=3 but groups has 4 distinct ids"):
        partition("natural", Y, 3, rng(), groups=Y)
    with pytest.raises(ValueError, match="only used by the 'natural' spec"):
        partition("iid", Y, 2, rng(), groups=Y)
    with pytest.raises(ValueError, match="unknown partition spec"):
        partition("pathological", Y, 2, rng())


# ---- FederatedDataset --------------------------------------------------------------------------


def make_dataset(indices=None, **kw):
    X = np.arange(20 * 3, dtype=np.float64).reshape(20, 3)
    indices = (
        [np.array([3, 0, 5]), np.array([1, 2]), np.arange(6, 20)] if indices is None else indices
    )
    return X, FederatedDataset(X, Y, indices, **kw)


def test_dataset_clients_are_views_in_given_order():
    X, ds = make_dataset()
    for k, ix in enumerate([[3, 0, 5], [1, 2], range(6, 20)]):
        X_k, y_k = ds.client(k)
        assert np.shares_memory(X_k, ds.X) and np.shares_memory(y_k, ds.y)
        np.testing.assert_array_equal(X_k, X[list(ix)])
        np.testing.assert_array_equal(y_k, Y[list(ix)])
    assert ds.X.dtype == np.float32


def test_dataset_sizes_and_mixing_coefficients():
    _, ds = make_dataset()
    assert ds.K == 3 and ds.n == 19  # row 4 is in no client: n counts the clients' rows only
    np.testing.assert_array_equal(ds.n_k, [3, 2, 14])
    np.testing.assert_allclose(ds.p, [3 / 19, 2 / 19, 14 / 19])
    np.testing.assert_array_equal(ds.client_of_sample(), [0] * 3 + [1] * 2 + [2] * 14)


def test_dataset_label_counts():
    _, ds = make_dataset()
    expected = [[np.sum(Y[ix] == c) for c in range(4)] for ix in ([3, 0, 5], [1, 2], range(6, 20))]
    np.testing.assert_array_equal(ds.label_counts(), expected)
    assert ds.label_counts(num_classes=6).shape == (3, 6)


def test_dataset_from_partitioner_keeps_class_totals():
    y = np.repeat(np.arange(5), 40)
    X = rng().normal(size=(200, 2))
    ds = FederatedDataset(X, y, dirichlet(y, 6, 0.3, rng=rng()))
    np.testing.assert_array_equal(ds.label_counts().sum(axis=0), np.bincount(y))


def test_dataset_from_clients():
    clients = [(np.ones((2, 3)), np.array([0, 1])), (np.zeros((4, 3)), np.array([1, 1, 0, 2]))]
    ds = FederatedDataset.from_clients(clients, X_test=np.ones((5, 3)), y_test=np.zeros(5))
    assert ds.K == 2 and ds.n == 6 and ds.X_test.shape == (5, 3)
    np.testing.assert_array_equal(ds.n_k, [2, 4])
    np.testing.assert_array_equal(ds.client(1)[1], [1, 1, 0, 2])
    np.testing.assert_array_equal(ds.client(0)[0], np.ones((2, 3)))
    with pytest.raises(ValueError, match="clients is empty"):
        FederatedDataset.from_clients([])
    with pytest.raises(ValueError, match="client 0's X_k and y_k"):
        FederatedDataset.from_clients([(np.ones((2, 3)), np.zeros(3))])


@pytest.mark.parametrize(
    ("indices", "error", "match"),
    [
        ([np.array([0, 1]), np.array([1, 2])], ValueError, "overlap"),
        ([np.array([0, 1]), np.array([], dtype=int)], ValueError, "client 1 has no samples"),
        ([np.array([0, 20])], ValueError, r"client_indices\[0\] has rows outside \[0, 20\)"),
        ([np.array([-1, 2])], ValueError, "outside"),
        ([], ValueError, "client_indices is empty"),
        (np.arange(20).reshape(2, 10), TypeError, "list of index arrays"),
        ([np.array([0.0, 1.0])], TypeError, "integer row numbers"),
    ],
)
def test_dataset_bad_indices(indices, error, match):
    with pytest.raises(error, match=match):
        make_dataset(indices)


def test_dataset_test_set_errors():
    with pytest.raises(ValueError, match="X_test rows must have the shape of X rows"):
        make_dataset(X_test=np.ones((4, 2)), y_test=np.zeros(4))
    with pytest.raises(ValueError, match="X_test and y_test must be given together"):
        make_dataset(X_test=np.ones((4, 3)))
    with pytest.raises(ValueError, match="X_test and y_test must have the same number"):
        make_dataset(X_test=np.ones((4, 3)), y_test=np.zeros(3))
    with pytest.raises(ValueError, match=r"k must be a client id in \[0, 3\)"):
        make_dataset()[1].client(3)
