"""A picture of one federated round: the server broadcasts ``w_t``, the sampled clients train
on their own data, the server aggregates their updates into ``w_{t+1}``."""

from __future__ import annotations

import numpy as np

from minifed.plot.curves import axes


def plot_round_diagram(K: int = 6, S=(1, 3, 4), ax=None):
    """Draw one round with ``K`` clients of which ``S`` are sampled (McMahan et al. 2017's loop).

    Arrows down: ``w_t`` sent to each ``k in S``; arrows up: each client's update ``w_k``;
    unsampled clients are grey. Returns the axes.
    """
    ax = axes(ax)
    S = set(S)
    xs = np.linspace(0.08, 0.92, K)  # client positions
    ax.add_patch(_box(0.5, 0.85, 0.34, 0.12, "#dbe9f6"))
    ax.text(0.5, 0.85, "server: $w_{t+1} = \\sum_{k \\in S_t} \\frac{n_k}{n_S} w_k$",
            ha="center", va="center")  # fmt: skip
    for k, x in enumerate(xs):
        sampled = k in S
        ax.add_patch(_box(x, 0.18, 0.12, 0.12, "#fde2c8" if sampled else "#eeeeee"))
        ax.text(x, 0.18, f"client {k}\n$(X_{{{k}}}, y_{{{k}}})$", ha="center", va="center",
                fontsize="small", color="black" if sampled else "grey")  # fmt: skip
        if sampled:
            _arrow(ax, 0.5 + (x - 0.5) * 0.3, 0.79, x - 0.015, 0.245, "tab:blue")
            _arrow(ax, x + 0.015, 0.245, 0.5 + (x - 0.5) * 0.3 + 0.02, 0.79, "tab:orange")
    ax.text(0.02, 0.52, "$w_t$ down", color="tab:blue")
    ax.text(0.86, 0.52, "$w_k$ up", color="tab:orange")
    ax.text(0.5, 0.02, f"round t: m = {len(S)} of K = {K} clients train locally; "
            "their data never leave them", ha="center", fontsize="small")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    return ax


def _box(x, y, width, height, color):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                          boxstyle="round,pad=0.01", facecolor=color, edgecolor="grey")  # fmt: skip


def _arrow(ax, x0, y0, x1, y1, color):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops={"arrowstyle": "->", "color": color, "lw": 1.4})  # fmt: skip
