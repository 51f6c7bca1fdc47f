"""Per-silo comparison: each silo alone against pooled against federated, with the spread over
seeds (the table of :func:`minifed.applications.compare.compare_silos`)."""

from __future__ import annotations

import numpy as np

from minifed.plot.curves import LABELS, axes

MARKERS = {"alone": "o", "pooled": "s"}  # the federated methods get "D", "^", "v", ...
FEDERATED_MARKERS = ("D", "^", "v", "P", "X", "*")
COLORS = {"alone": "0.55", "pooled": "0.15"}  # greys: the baselines; colours: federated
METRIC_LABELS = {
    **LABELS,
    "accuracy": "accuracy on the silo's test set",
    "roc_auc": "ROC AUC on the silo's test set",
    "rmse": "RMSE on the silo's test set (lower is better)",
}


def plot_silos(rows: list[dict], metric: str, ax=None, methods=None, silos=None):
    """One group of dots per silo, one dot per method: the mean of ``metric`` over the seeds,
    with an error bar of one standard deviation (``std`` of the row).

    ``rows`` is the table of ``compare_silos`` (dicts with ``silo``, ``method``, ``metric``,
    ``mean``, ``std``); ``methods`` and ``silos`` choose and order what is drawn (default: all,
    in the table's order). Undefined values (NaN, e.g. ROC AUC on a one-class test set) are left
    out. Returns the ``Axes``.
    """
    picked = [r for r in rows if r["metric"] == metric]
    if not picked:
        have = sorted({r["metric"] for r in rows})
        raise ValueError(f"metric {metric!r} is not in the table; it has {have}.")
    methods = list(dict.fromkeys(r["method"] for r in picked)) if methods is None else methods
    silos = list(dict.fromkeys(r["silo"] for r in picked)) if silos is None else silos
    cell = {(r["silo"], r["method"]): r for r in picked}
    ax = axes(ax)
    shift = np.linspace(-0.3, 0.3, len(methods)) if len(methods) > 1 else np.zeros(1)
    federated = iter(range(len(methods)))
    for j, method in enumerate(methods):
        if not any((s, method) in cell for s in silos):
            raise ValueError(f"method {method!r} is not in the table for metric {metric!r}.")
        found = [(i, cell[(s, method)]) for i, s in enumerate(silos)
                 if (s, method) in cell and np.isfinite(cell[(s, method)]["mean"])]  # fmt: skip
        x = np.array([i for i, _ in found], dtype=np.float64) + shift[j]
        mean = np.array([r["mean"] for _, r in found], dtype=np.float64)
        std = np.array([r["std"] for _, r in found], dtype=np.float64)
        style = _style(method, federated)
        ax.errorbar(x, mean, yerr=std, linestyle="none", capsize=3, label=method, **style)
    ax.set_xticks(range(len(silos)), [str(s) for s in silos])
    ax.set_xlabel("silo (client)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric.replace("_", " ")))
    ax.legend(fontsize="small")
    return ax


def _style(method: str, federated) -> dict:
    """Marker and colour: greys for ``alone`` and ``pooled``, the colour cycle for the rest."""
    if method in MARKERS:
        return {"marker": MARKERS[method], "color": COLORS[method]}
    i = next(federated)
    return {"marker": FEDERATED_MARKERS[i % len(FEDERATED_MARKERS)], "color": f"C{i % 10}"}
