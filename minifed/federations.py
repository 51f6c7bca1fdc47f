"""Named federations and models: from ``("mnist", "shards", K=100)`` to a ``FederatedDataset``.

The command line, the benchmarks and the tutorials build their experiments here, so that "MNIST
split into 100 pathological non-IID clients" means the same thing everywhere.
"""

from __future__ import annotations

import numpy as np

from minifed import data as D
from minifed._checks import check_int, check_rng
from minifed.applications import air_silos, credit_silos, engine_silos
from minifed.dataset import FederatedDataset
from minifed.models import CNN, MLP, LinearRegression, LogisticRegression, SoftmaxRegression
from minifed.partition import parse_partition, partition

SILO_DATASETS = ("beijing-air", "cmapss", "credit-default")  # natural silos, own test sets
DATASETS = (
    "synthetic", "blobs", "linreg", "mnist", "fashion-mnist", "optdigits", "heart-disease",
    *SILO_DATASETS,
)  # fmt: skip
REGRESSION_DATASETS = ("linreg", "cmapss")  # real-valued targets
MODELS = ("linreg", "logreg", "softmax", "2nn", "mlp:H1,H2,...", "cnn")


def load_federation(
    dataset: str,
    partition_spec: str = "iid",
    K: int | None = 100,
    *,
    rng: np.random.Generator,
    data_dir=None,
    download: bool = True,
) -> FederatedDataset:
    """Load ``dataset``, split its training set over ``K`` clients by ``partition_spec``.

    ``synthetic`` is FedProx's Synthetic(1, 1) and ``heart-disease`` the four hospitals (a
    random 20 % of each hospital's rows form one pooled test set, features standardized with
    the pooled training statistics): both have natural clients (``partition_spec="natural"``,
    ``K=None`` or their client count). The silo data sets of :mod:`minifed.applications` give,
    with ``"natural"``, one client per silo, each with its own test set
    (:meth:`FederatedDataset.from_silos`, so a run reports ``client_test_*`` metrics):
    ``beijing-air`` (12 stations, is the hour's PM2.5 above 75 ug/m^3, the last year is the test
    set; :func:`~minifed.applications.air_silos`), ``cmapss`` (4 engine fleets, remaining useful
    life, a regression; :func:`~minifed.applications.engine_silos`) and ``credit-default`` (4
    education segments, default next month, 80/20 split drawn from ``rng``;
    :func:`~minifed.applications.credit_silos`), each silo scaled with its own training
    statistics. Another spec re-splits their pooled training rows (scaled with the pooled
    statistics) and tests on the pooled test rows. The other datasets come as a pool plus a
    test set and are split by the spec.
    """
    rng = check_rng("rng", rng)
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}.")
    parse_partition(partition_spec)  # a clear error for a bad spec before any loading
    if dataset in SILO_DATASETS:
        task = _silo_task(dataset, partition_spec, rng, data_dir, download)
        if partition_spec == "natural":
            name = f"{dataset} (natural, K={len(task.silos)})"
            return FederatedDataset.from_silos(task.silos, name=name)
        X, y, X_test, y_test = task.pooled()
        groups = None
    else:
        X, y, X_test, y_test, groups = _load(dataset, K, rng, data_dir, download)
    if partition_spec == "natural" and groups is None:
        raise ValueError(f"dataset {dataset!r} has no natural clients; use iid, shards, ...")
    if groups is not None and partition_spec != "natural":
        groups = None  # re-split the pool, ignoring the natural clients
    if partition_spec == "natural":
        K = None
    parts = partition(partition_spec, y, K, rng, groups=groups)
    name = f"{dataset} ({partition_spec}, K={len(parts)})"
    return FederatedDataset(X, y, parts, X_test, y_test, name=name, copy=False)


def _load(dataset, K, rng, data_dir, download):
    """``(X, y, X_test, y_test, groups)``; ``groups`` is ``None`` without natural clients."""
    files = {"data_dir": data_dir, "download": download}
    if dataset in ("mnist", "fashion-mnist"):
        load = D.load_mnist if dataset == "mnist" else D.load_fashion_mnist
        return (*load("train", **files), *load("test", **files), None)
    if dataset == "optdigits":
        return (*D.load_optdigits("train", **files), *D.load_optdigits("test", **files), None)
    if dataset == "heart-disease":
        hospitals = D.load_heart_disease(**files)
        X = np.concatenate([X_k for X_k, _ in hospitals])
        y = np.concatenate([y_k for _, y_k in hospitals])
        hospital = np.repeat(np.arange(len(hospitals)), [len(y_k) for _, y_k in hospitals])
        return _hold_out(X, y, hospital, rng, standardize=True)
    if dataset == "synthetic":
        devices = check_int("K", 30 if K is None else K, minimum=1)
        X, y, device = D.fedprox_synthetic(1.0, 1.0, num_devices=devices, rng=rng)
        return _hold_out(X, y, device, rng)
    if dataset == "blobs":
        X, y = D.gaussian_blobs(6000, 10, num_features=10, spread=4.0, rng=rng)
        return X[:5000], y[:5000], X[5000:], y[5000:], None
    X, y, _ = D.linear_regression(5000, 10, noise=0.5, rng=rng)
    return X[:4000], y[:4000], X[4000:], y[4000:], None


def _silo_task(dataset, partition_spec, rng, data_dir, download):
    """The :class:`~minifed.applications.SiloTask` of a silo data set; features scaled per silo
    for the natural split, with the pooled statistics for a re-split of the pool."""
    files = {"data_dir": data_dir, "download": download}
    scale = "silo" if partition_spec == "natural" else "pooled"
    if dataset == "beijing-air":
        return air_silos(standardize=scale, **files)
    if dataset == "cmapss":
        return engine_silos(standardize=scale, **files)
    return credit_silos(rng=rng, standardize=scale, **files)


def _hold_out(X, y, group, rng, test_fraction=0.2, standardize=False):
    """Keep a random ``test_fraction`` of every group's rows as the pooled server test set.

    ``group`` holds a client id ``0..K-1`` per row. Returns ``(X, y, X_test, y_test, groups)``
    with the training rows grouped by client, clients in order, and ``groups`` their ids.
    """
    train, test = _hold_out_rows(group, rng, test_fraction)
    X_train, X_test = np.take(X, train, axis=0), np.take(X, test, axis=0)  # take: 3x X[rows]
    if standardize:  # features on one scale (statistics of the training pool)
        mu, sd = X_train.mean(axis=0), X_train.std(axis=0) + 1e-8
        X_train, X_test = (X_train - mu) / sd, (X_test - mu) / sd
    return X_train, y[train], X_test, y[test], group[train]


def _hold_out_rows(group, rng, test_fraction):
    """Row numbers ``(train, test)``: client ``k``'s ``n_k`` rows (in row order) are shuffled by
    ``rng.permutation(n_k)``, the first ``cut_k = round(test_fraction n_k)`` go to the test set.

    One permutation per client, clients ``0, 1, ...`` in order (the draws of a per-client loop);
    everything else is O(n) array work on row numbers, never on the features.
    """
    by_client = np.argsort(group, kind="stable")  # (n,) rows grouped by client, in row order
    n_k = np.bincount(group)  # (K,)
    start = np.cumsum(n_k) - n_k
    cut = np.round(n_k * test_fraction).astype(np.int64)  # half to even, as Python's round
    train, test = [], []
    for k in range(len(n_k)):
        shuffled = start[k] + rng.permutation(int(n_k[k]))  # client k's places in by_client
        test.append(shuffled[: cut[k]])
        train.append(shuffled[cut[k] :])
    return by_client[np.concatenate(train)], by_client[np.concatenate(test)]


def make_model(name: str, data: FederatedDataset, l2: float = 0.0):
    """The model ``name`` sized for ``data``: ``linreg``, ``logreg``, ``softmax``, ``2nn``
    (McMahan et al.'s 784-200-200-10 MLP shape), ``mlp:H1,H2,...`` or ``cnn``."""
    d = int(np.prod(data.X.shape[1:]))
    C = int(max(data.y.max(), 0 if data.y_test is None else data.y_test.max())) + 1
    if name == "linreg":
        return LinearRegression(d, l2=l2)
    if name == "logreg":
        return LogisticRegression(d, l2=l2)
    if name == "softmax":
        return SoftmaxRegression(d, C, l2=l2)
    if name == "2nn":
        return MLP([d, 200, 200, C], l2=l2)
    if name.startswith("mlp:"):
        try:
            hidden = [int(h) for h in name[4:].split(",")]
        except ValueError:
            raise ValueError(f"model {name!r}: write hidden sizes as mlp:200,200.") from None
        return MLP([d, *hidden, C], l2=l2)
    if name == "cnn":
        side = round(np.sqrt(d))
        if side * side != d:
            raise ValueError(f"model 'cnn' needs square images; rows have {d} features.")
        return CNN(input_shape=(1, side, side), num_classes=C, l2=l2)
    raise ValueError(f"model must be one of {', '.join(MODELS)}; got {name!r}.")
