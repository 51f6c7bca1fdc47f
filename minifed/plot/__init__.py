"""Figures for runs and federations. Every function takes an optional matplotlib ``Axes`` and
returns the one it drew on; the library never calls ``plt.show()``. :func:`use_style` gives every
chapter the same look."""

from minifed.plot.clients import (
    plot_client_accuracy,
    plot_label_distribution,
    plot_label_heatmap,
)
from minifed.plot.curves import LABELS, X_AXES, metric_curve, plot_metric
from minifed.plot.diagram import plot_round_diagram
from minifed.plot.silos import plot_silos
from minifed.plot.style import STYLE, use_style

__all__ = [
    "LABELS",
    "STYLE",
    "X_AXES",
    "metric_curve",
    "plot_client_accuracy",
    "plot_label_distribution",
    "plot_label_heatmap",
    "plot_metric",
    "plot_round_diagram",
    "plot_silos",
    "use_style",
]
