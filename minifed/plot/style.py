"""One figure style for every chapter, set by one call instead of per-notebook settings."""

from __future__ import annotations

STYLE = {
    "figure.dpi": 100,
    "figure.figsize": (6.4, 4.2),
    "font.size": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
}


def use_style() -> dict:
    """Apply minifed's figure style to matplotlib (``STYLE``); returns the settings applied."""
    import matplotlib

    matplotlib.rcParams.update(STYLE)
    return dict(STYLE)
