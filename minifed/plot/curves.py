"""Metrics of runs against rounds, megabytes or seconds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from minifed.simulation.history import History

X_AXES = {
    "round": "communication round t",
    "bytes": "communication (MB sent up + down, cumulative)",
    "seconds": "wall-clock training time (s, cumulative)",
    "examples": "local computation (examples processed by clients, cumulative)",
}
LABELS = {
    "test_accuracy": "test accuracy",
    "train_accuracy": "training accuracy",
    "test_loss": "test loss",
    "train_loss": "objective F(w) on the clients' data",
}


def axes(ax):
    """``ax``, or a new figure's axes when ``ax`` is None."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    return ax


def metric_curve(
    history: History, metric: str, x: str = "round", n_k=None
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a metric over the evaluated rounds, with ``x`` the round number, the
    cumulative megabytes communicated, the cumulative training seconds, or the cumulative
    examples the clients processed, ``sum_t sum_{k in S_t} E n_k`` (``E = 1`` for FedSGD; needs
    the clients' sizes ``n_k``): the computation FedAvg trades for communication."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {sorted(X_AXES)}, got {x!r}.")
    t, y = history.metric(metric)
    if x == "round":
        return t.astype(np.float64), y
    if x == "examples" and n_k is None:
        raise ValueError("x='examples' needs n_k, the clients' sizes (data.n_k).")
    E = history.config.get("epochs") or 1
    per_round = {
        "bytes": lambda r: (r["bytes_up"] + r["bytes_down"]) / 1e6,
        "seconds": lambda r: r["seconds"],
        "examples": lambda r: E * int(np.sum(np.asarray(n_k)[r["clients"]])),
    }[x]
    total = np.cumsum([per_round(r) for r in history.rounds])
    index = {r["round"]: i for i, r in enumerate(history.rounds)}
    return total[[index[int(s)] for s in t]], y


def plot_metric(
    runs, metric: str = "test_accuracy", x: str = "round", ax=None, log_x=False, n_k=None
):
    """Plot ``metric`` against rounds, bytes, seconds or examples processed (see
    :func:`metric_curve`) for several runs on one axis.

    ``runs`` is a ``{label: History}`` mapping (or a list of histories, labelled by algorithm).
    """
    if isinstance(runs, History):
        runs = [runs]
    if not isinstance(runs, Mapping):
        runs = {_label(h): h for h in runs}
    ax = axes(ax)
    for label, history in runs.items():
        xs, ys = metric_curve(history, metric, x, n_k)
        if log_x and x != "round":  # a log axis has no place for x <= 0 (round 0 sent 0 bytes):
            xs, ys = xs[xs > 0], ys[xs > 0]  # drawing it would add a false, flat first segment
        ax.plot(xs, ys, label=label, marker="." if len(xs) < 30 else None)
    ax.set_xlabel(X_AXES[x])
    ax.set_ylabel(LABELS.get(metric, metric.replace("_", " ")))
    if log_x:
        ax.set_xscale("symlog" if x == "round" else "log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def _label(history: History) -> str:
    c = history.config
    if c.get("algorithm") == "fedavg":
        return f"FedAvg (E={c.get('epochs')}, B={c.get('batch_size') or 'inf'})"
    return str(c.get("algorithm", "run"))
