"""Who holds what: the clients' label distributions and per-client accuracy."""

from __future__ import annotations

import numpy as np

from minifed.dataset import FederatedDataset
from minifed.plot.curves import axes
from minifed.simulation.history import History


def plot_label_distribution(data, num_classes: int | None = None, ax=None, max_clients=50):
    """Stacked bars: how many samples of each class every client holds.

    ``data`` is a :class:`FederatedDataset` or a ``(K, classes)`` count matrix.
    """
    counts = data.label_counts(num_classes) if isinstance(data, FederatedDataset) else data
    counts = np.asarray(counts)[:max_clients]
    ax = axes(ax)
    bottom = np.zeros(len(counts))
    cmap = _class_colors(counts.shape[1])
    for c in range(counts.shape[1]):
        ax.bar(np.arange(len(counts)), counts[:, c], bottom=bottom, color=cmap[c], label=str(c))
        bottom += counts[:, c]
    ax.set_xlabel("client k")
    ax.set_ylabel("samples held (n_k)")
    ax.legend(title="class", fontsize="small", ncols=2, loc="upper right")
    return ax


def plot_label_heatmap(data, num_classes: int | None = None, ax=None, max_clients=100):
    """Client-by-class heat map: cell ``(k, c)`` is the fraction of client ``k``'s samples in
    class ``c`` (rows sum to 1), so label skew reads at a glance whatever the client sizes.

    ``data`` is a :class:`FederatedDataset` or a ``(K, classes)`` count matrix.
    """
    counts = data.label_counts(num_classes) if isinstance(data, FederatedDataset) else data
    counts = np.asarray(counts, dtype=np.float64)[:max_clients]  # (K, C)
    share = counts / counts.sum(axis=1, keepdims=True)
    ax = axes(ax)
    image = ax.imshow(share.T, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest")  # fmt: skip
    ax.set_xlabel("client k")
    ax.set_ylabel("class c")
    ax.set_yticks(range(share.shape[1]))
    ax.grid(False)  # grid lines would cross the cells
    ax.figure.colorbar(image, ax=ax, label="share of the client's samples")
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
    ax = axes(ax)
    ax.hist(record["client_accuracy"], bins=bins, range=(0, 1), edgecolor="white")
    ax.set_xlabel(f"client accuracy on its own data (round {record['round']})")
    ax.set_ylabel("number of clients")
    return ax
