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
    """
    penalty = model.penalty(w)
    record = {}
    if train:
        losses, correct = example_metrics(model, w, data.X, data.y)
        starts = data.offsets[:-1]
        record = {
            "train_loss": float(losses.mean()) + penalty,
            "train_accuracy": float(correct.mean()),
            "client_loss": (np.add.reduceat(losses, starts) / data.n_k + penalty).tolist(),
            "client_accuracy": (np.add.reduceat(correct, starts) / data.n_k).tolist(),
        }
    if data.y_test is not None:
        test_losses, test_correct = example_metrics(model, w, data.X_test, data.y_test)
        record["test_loss"] = float(test_losses.mean()) + penalty
        record["test_accuracy"] = float(test_correct.mean())
    if model.task == "regression":  # accuracy does not apply; JSON has no NaN
        record.update({k: None for k in record if k.endswith("accuracy")})
    return record
