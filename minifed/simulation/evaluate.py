"""Evaluation of a global model: the federated objective, test metrics, per-client metrics."""

from __future__ import annotations

import numpy as np

from minifed.dataset import FederatedDataset
from minifed.models.base import Model


def example_metrics(model: Model, w, X, y, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-example losses ``f(w; x_i, y_i)`` and correctness (1.0/0.0; NaN for regression),
    computed ``chunk`` rows at a time so that big models fit in memory."""
    losses = np.empty(len(y), dtype=np.float64)
    correct = np.full(len(y), np.nan)
    for a in range(0, len(y), chunk):
        losses[a : a + chunk], predictions = model.example_metrics_(
            w, X[a : a + chunk], y[a : a + chunk]
        )
        if model.task == "classification":
            correct[a : a + chunk] = predictions == y[a : a + chunk]
    return losses, correct


def evaluate(model: Model, w, data: FederatedDataset, train: bool = True) -> dict:
    """Metrics of ``w`` on a federation.

    ``train_loss`` is the federated objective ``F(w) = sum_k (n_k/n) F_k(w)``, which equals the
    mean loss over the union of the clients' data (plus the model's L2 term); ``client_loss[k]``
    and ``client_accuracy[k]`` are ``F_k(w)`` and client ``k``'s accuracy on its own data.
    ``train=False`` skips these (a pass over all the clients' data) and keeps the test metrics.
    When every client has its own test rows (``data.test_offsets``, e.g. natural silos),
    ``client_test_loss[k]`` and ``client_test_accuracy[k]`` are the same on client ``k``'s test
    rows, ``test_loss`` and ``test_accuracy`` staying those of the pooled test set.
    """
    penalty = model.penalty(w)
    record = {}
    if train:
        losses, correct = example_metrics(model, w, data.X, data.y)
        record = {
            "train_loss": float(losses.mean()) + penalty,
            "train_accuracy": float(correct.mean()),
            "client_loss": (per_client(losses, data.offsets) + penalty).tolist(),
            "client_accuracy": per_client(correct, data.offsets).tolist(),
        }
    if data.y_test is not None:
        test_losses, test_correct = example_metrics(model, w, data.X_test, data.y_test)
        record["test_loss"] = float(test_losses.mean()) + penalty
        record["test_accuracy"] = float(test_correct.mean())
    if data.y_test is not None and data.test_offsets is not None:
        record["client_test_loss"] = (per_client(test_losses, data.test_offsets) + penalty).tolist()
        record["client_test_accuracy"] = per_client(test_correct, data.test_offsets).tolist()
    if model.task == "regression":  # accuracy does not apply; JSON has no NaN
        record.update({k: None for k in record if k.endswith("accuracy")})
    return record


def per_client(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each client's block of rows ``offsets[k]:offsets[k+1]``, shape
    ``(K,)`` (every block non-empty, as a :class:`FederatedDataset` guarantees).

    >>> per_client(np.array([1.0, 3.0, 5.0, 6.0, 7.0]), np.array([0, 2, 5]))
    array([2., 6.])
    """
    return np.add.reduceat(values, offsets[:-1]) / np.diff(offsets)
