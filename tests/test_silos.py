"""Natural silos with their own test sets: ``FederatedDataset.from_silos`` stores them without
extra copies, and the evaluation reports every silo's test metrics beside the pooled ones."""

import json

import numpy as np
import pytest

import minifed.dataset
from minifed.algorithms import FedAvg
from minifed.dataset import FederatedDataset
from minifed.models import LinearRegression, SoftmaxRegression
from minifed.simulation import History, evaluate, run


def make_silos(sizes=((5, 2), (8, 3), (3, 4)), d=4, C=3, seed=0):
    rng = np.random.default_rng(seed)
    silos = {}
    for k, (n_train, n_test) in enumerate(sizes):
        X = rng.normal(size=(n_train + n_test, d)) + k  # each silo its own feature mean
        y = rng.integers(0, C, size=n_train + n_test)
        silos[f"site-{k}"] = (X[:n_train], y[:n_train], X[n_train:], y[n_train:])
    return silos


def test_from_silos_stores_train_and_test_rows_silo_after_silo():
    silos = make_silos()
    data = FederatedDataset.from_silos(silos, name="three")
    assert data.K == 3 and data.client_names == ["site-0", "site-1", "site-2"]
    np.testing.assert_array_equal(data.n_k, [5, 8, 3])
    np.testing.assert_array_equal(data.n_k_test, [2, 3, 4])
    np.testing.assert_array_equal(data.test_offsets, [0, 2, 5, 9])
    assert data.X.dtype == data.X_test.dtype == np.float32
    for k, (X_tr, y_tr, X_te, y_te) in enumerate(silos.values()):
        np.testing.assert_allclose(data.client(k)[0], X_tr.astype(np.float32))
        np.testing.assert_array_equal(data.client(k)[1], y_tr)
        X_k, y_k = data.client_test(k)
        np.testing.assert_allclose(X_k, X_te.astype(np.float32))
        np.testing.assert_array_equal(y_k, y_te)
        assert np.shares_memory(X_k, data.X_test)  # a view of the pooled test set
    np.testing.assert_array_equal(data.y_test, np.concatenate([s[3] for s in silos.values()]))


def test_from_silos_makes_the_pool_once(monkeypatch):
    """The rows are concatenated straight into the training dtype and kept: no second gather."""

    def no_gather(*args):
        raise AssertionError("the pool was copied a second time")

    monkeypatch.setattr(minifed.dataset, "_take_rows", no_gather)
    silos = make_silos()
    data = FederatedDataset.from_silos(silos, dtype=np.float64)
    assert data.X.dtype == np.float64 and data.X.flags.owndata
    assert not np.shares_memory(data.X, silos["site-0"][0])  # its own array, not the caller's
    FederatedDataset.from_clients([(X, y) for X, y, _, _ in silos.values()])  # same path


def test_from_silos_bad_input_names_the_silo():
    silos = make_silos()
    with pytest.raises(TypeError, match="dict"):
        FederatedDataset.from_silos(list(silos.values()))
    with pytest.raises(ValueError, match="empty"):
        FederatedDataset.from_silos({})
    with pytest.raises(ValueError, match=r"silos\['a'\] must be \(X_train"):
        FederatedDataset.from_silos({"a": silos["site-0"][:2]})
    X, y, X_te, y_te = silos["site-1"]
    with pytest.raises(ValueError, match=r"silos\['b'\]'s X_test and y_test"):
        FederatedDataset.from_silos({"b": (X, y, X_te, y_te[:1])})
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"silos\['b'\]'s X_train contains NaN"):
        FederatedDataset.from_silos({"b": (bad, y, X_te, y_te)})
    with pytest.raises(ValueError, match="no test rows"):
        FederatedDataset.from_silos({"b": (X, y, X_te[:0], y_te[:0])})
    with pytest.raises(ValueError, match="X_test rows must have the shape"):
        FederatedDataset.from_silos({"b": (X, y, X_te[:, :2], y_te)})


def test_test_sizes_of_the_constructor_are_checked():
    X, y = np.ones((6, 2)), np.zeros(6, dtype=int)
    parts = [np.arange(3), np.arange(3, 6)]
    data = FederatedDataset(X, y, parts, X[:5], y[:5], test_sizes=[2, 3])
    np.testing.assert_array_equal(data.client_test(1)[1], y[2:5])
    with pytest.raises(ValueError, match="one whole number per client"):
        FederatedDataset(X, y, parts, X[:5], y[:5], test_sizes=[5])
    with pytest.raises(ValueError, match="add up to 4 rows but the test set has 5"):
        FederatedDataset(X, y, parts, X[:5], y[:5], test_sizes=[2, 2])
    with pytest.raises(ValueError, match="client 0 has no test rows"):
        FederatedDataset(X, y, parts, X[:5], y[:5], test_sizes=[0, 5])
    with pytest.raises(ValueError, match="needs a test set"):
        FederatedDataset(X, y, parts, test_sizes=[2, 3])
    plain = FederatedDataset(X, y, parts, X[:5], y[:5])
    assert plain.test_offsets is None and plain.n_k_test is None
    with pytest.raises(ValueError, match="no per-client test sets"):
        plain.client_test(0)
    with pytest.raises(ValueError, match="client id"):
        data.client_test(2)


def test_evaluate_reports_each_silos_test_metrics():
    data = FederatedDataset.from_silos(make_silos(), dtype=np.float64)
    model = SoftmaxRegression(4, 3, l2=0.1)
    w = np.random.default_rng(1).normal(size=model.num_params)
    record = evaluate(model, w, data)
    for k in range(data.K):
        X_k, y_k = data.client_test(k)
        assert record["client_test_loss"][k] == pytest.approx(model.loss(w, X_k, y_k))
        assert record["client_test_accuracy"][k] == pytest.approx(model.accuracy(w, X_k, y_k))
    # the pooled test loss is the n_k_test-weighted mean of the silos' (the L2 term is in each)
    pooled = np.average(record["client_test_loss"], weights=data.n_k_test)
    assert record["test_loss"] == pytest.approx(pooled)
    assert set(evaluate(model, w, data, train=False)) == {
        "test_loss", "test_accuracy", "client_test_loss", "client_test_accuracy"
    }  # fmt: skip
    plain = FederatedDataset(data.X, data.y, [np.arange(data.n)], data.X_test, data.y_test)
    assert "client_test_loss" not in evaluate(model, w, plain)


def test_a_run_records_the_silos_test_metrics_and_saves_them():
    data = FederatedDataset.from_silos(make_silos())
    _, history = run(FedAvg(SoftmaxRegression(4, 3), 0.1), data, 3, fraction=1.0, eval_every=2)
    evaluated = [r for r in history.rounds if r.get("test_loss") is not None]
    assert [r["round"] for r in evaluated] == [0, 2, 3]
    assert all(len(r["client_test_accuracy"]) == 3 for r in evaluated)
    t, acc = history.metric("test_accuracy")
    assert len(t) == 3 and np.all((acc >= 0) & (acc <= 1))
    again = History.from_dict(json.loads(history.to_json()))
    assert again.rounds[-1]["client_test_loss"] == history.rounds[-1]["client_test_loss"]


def test_regression_silos_have_losses_and_no_accuracy():
    rng = np.random.default_rng(0)
    silos = {k: (rng.normal(size=(6, 2)), rng.normal(size=6), rng.normal(size=(2, 2)),
                 rng.normal(size=2)) for k in "ab"}  # fmt: skip
    data = FederatedDataset.from_silos(silos)
    record = evaluate(LinearRegression(2), np.zeros(3, dtype=np.float32), data)
    assert record["client_test_accuracy"] is None and len(record["client_test_loss"]) == 2
    assert data.y.dtype == np.float64  # targets keep their dtype; features are float32


def test_client_metrics_every_also_thins_the_silos_test_metrics():
    data = FederatedDataset.from_silos(make_silos())
    model = SoftmaxRegression(4, 3)
    _, history = run(FedAvg(model, lr=0.1), data, rounds=4, fraction=1.0, client_metrics_every=2)
    kept = [r["round"] for r in history.rounds if r["client_test_loss"] is not None]
    assert kept == [0, 2, 4]
    assert all(r["test_loss"] is not None for r in history.rounds)  # the pooled ones every round
    _, plain = run(FedAvg(model, lr=0.1), FederatedDataset.from_clients([(s[0], s[1]) for s in
                   make_silos().values()]), rounds=1, fraction=1.0)  # fmt: skip
    assert "client_test_loss" not in plain.rounds[0]  # no per-client test sets, no such key


def test_a_checkpoint_knows_the_split_of_the_test_set_by_silo():
    from minifed.simulation.checkpoint import fingerprint

    silos = make_silos(sizes=((5, 2), (8, 3)))
    moved = dict(silos)  # the same pooled test rows, one row moved to the other silo
    (a, b, c, d), (e, f, g, h) = silos.values()
    moved["site-0"] = (a, b, c[:1], d[:1])
    moved["site-1"] = (e, f, np.concatenate([c[1:], g]), np.concatenate([d[1:], h]))
    one, two = FederatedDataset.from_silos(silos), FederatedDataset.from_silos(moved)
    np.testing.assert_array_equal(one.X_test, two.X_test)
    assert fingerprint(one) != fingerprint(two)
