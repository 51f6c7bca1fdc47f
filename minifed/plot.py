"""Figures for runs and federations. Every function takes an optional matplotlib ``Axes`` and
returns the one it drew on; the library never calls ``plt.show()``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from minifed.dataset import FederatedDataset
from minifed.simulation.history import History

X_AXES = {
    "round": "communication round t",
    "bytes": "communication (MB sent up + down, cumulative)",
    "seconds": "wall-clock training time (s, cumulative)",
}
LABELS = {
    "test_accuracy": "test accuracy",
    "train_accuracy": "training accuracy",
    "test_loss": "test loss",
    "train_loss": "objective F(w) on the clients' data",
}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    return ax


def metric_curve(history: History, metric: str, x: str = "round") -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a metric over the evaluated rounds, with ``x`` the round number, the
    cumulative megabytes communicated or the cumulative training seconds."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {sorted(X_AXES)}, got {x!r}.")
    t, y = history.metric(metric)
    if x == "round":
        return t.astype(np.float64), y
    per_round = {
        "bytes": [(r["bytes_up"] + r["bytes_down"]) / 1e6 for r in history.rounds],
        "seconds": [r["seconds"] for r in history.rounds],
    }[x]
    total = np.cumsum(per_round)
    index = {r["round"]: i for i, r in enumerate(history.rounds)}
    return total[[index[int(s)] for s in t]], y


def plot_metric(runs, metric: str = "test_accuracy", x: str = "round", ax=None, log_x=False):
    """Plot ``metric`` against round, bytes or seconds for several runs on one axis.

    ``runs`` is a ``{label: History}`` mapping (or a list of histories, labelled by algorithm).
    """
    if isinstance(runs, History):
        runs = [runs]
    if not isinstance(runs, Mapping):
        runs = {_label(h): h for h in runs}
    ax = _axes(ax)
    for label, history in runs.items():
        xs, ys = metric_curve(history, metric, x)
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


def plot_label_distribution(data, num_classes: int | None = None, ax=None, max_clients=50):
    """Stacked bars: how many samples of each class every client holds.

    ``data`` is a :class:`FederatedDataset` or a ``(K, classes)`` count matrix.
    """
    counts = data.label_counts(num_classes) if isinstance(data, FederatedDataset) else data
    counts = np.asarray(counts)[:max_clients]
    ax = _axes(ax)
    bottom = np.zeros(len(counts))
    cmap = _class_colors(counts.shape[1])
    for c in range(counts.shape[1]):
        ax.bar(np.arange(len(counts)), counts[:, c], bottom=bottom, color=cmap[c], label=str(c))
        bottom += counts[:, c]
    ax.set_xlabel("client k")
    ax.set_ylabel("samples held (n_k)")
    ax.legend(title="class", fontsize="small", ncols=2, loc="upper right")
    return ax


def _class_colors(num_classes: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(num_classes)]


def plot_client_accuracy(history: History, ax=None, round: int | None = None, bins=20):
    """Histogram of the per-client accuracies at an evaluated round (default: the last one)."""
    evaluated = [r for r in history.rounds if r.get("client_accuracy") is not None]
    if not evaluated:
        raise ValueError("the history has no per-client accuracy (a regression run?).")
    record = evaluated[-1] if round is None else next(r for r in evaluated if r["round"] == round)
    ax = _axes(ax)
    ax.hist(record["client_accuracy"], bins=bins, range=(0, 1), edgecolor="white")
    ax.set_xlabel(f"client accuracy on its own data (round {record['round']})")
    ax.set_ylabel("number of clients")
    return ax
