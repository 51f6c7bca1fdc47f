"""What the four cases share: the :class:`SiloTask` container, a stratified split and scaling."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TASKS = ("classification", "regression")
STANDARDIZE = ("silo", "pooled", "none")


@dataclass(frozen=True)
class SiloTask:
    """The silos of one case, ready to train on.

    Attributes
    ----------
    name : str
        The case, e.g. ``"heart-disease"``.
    task : {"classification", "regression"}
        Binary classification (``y`` int64 in {0, 1}) or regression (``y`` float32).
    silos : dict of str to (X_train, y_train, X_test, y_test)
        One entry per silo, in a fixed order; ``X`` float32 ``(n, d)`` without NaN.
    feature_names : tuple of str
        The ``d`` columns of every ``X``.
    info : dict
        What a reader needs to interpret the numbers (rows dropped, positive rates, choices).
    """

    name: str
    task: str
    silos: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    feature_names: tuple[str, ...]
    info: dict = field(default_factory=dict)

    def sizes(self) -> dict[str, tuple[int, int]]:
        """``{silo: (n_train, n_test)}``."""
        return {k: (len(s[1]), len(s[3])) for k, s in self.silos.items()}

    def pooled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All silos' training rows and all test rows, each concatenated in silo order (the
        "pooled" baseline, as if the data could move; the scaling stays the silos')."""
        parts = list(zip(*self.silos.values(), strict=True))  # 4 tuples of K arrays
        return tuple(np.concatenate(p) for p in parts)


def check_choice(name: str, value, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else a ValueError naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


def stratified_split(
    y: np.ndarray, train_fraction: float, rng: np.random.Generator, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers ``(train, test)``, each ascending, of a random train/test split of ``y``.

    ``n_train = floor(train_fraction * n)`` (scikit-learn's rule, so 0.66 of 303 rows gives 199).
    With ``stratify``, class ``c`` (``n_c`` rows) sends ``floor(n_test n_c / n)`` rows to the
    test set and the rows left over go to the classes with the largest remainders (ties: the
    smaller label), so each class's share is the same in both parts up to one row. Rows within a
    class are drawn by ``rng.permutation``, classes in ascending order.
    """
    y = np.asarray(y)
    n = len(y)
    n_test = n - int(np.floor(train_fraction * n + 1e-9))
    labels = np.unique(y) if stratify else np.zeros(1)
    groups = [np.flatnonzero(y == c) for c in labels] if stratify else [np.arange(n)]
    exact = np.array([n_test * len(g) / n for g in groups])  # (C,) test rows per class
    take = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - take), kind="stable")  # largest remainder first
    take[order[: n_test - take.sum()]] += 1
    test = np.concatenate(
        [g[rng.permutation(len(g))[:t]] for g, t in zip(groups, take, strict=True)]
    )
    return np.setdiff1d(np.arange(n), test), np.sort(test)


def scaling(X_trains: list[np.ndarray], standardize: str, ddof: int = 0) -> list[tuple]:
    """``(mean, std)`` per silo from its training rows (``"silo"``), from all silos' training
    rows (``"pooled"``) or ``(0, 1)`` (``"none"``). A column with std 0 gets std 1 (it becomes
    0 everywhere it equals the mean)."""
    if standardize == "none":
        return [(0.0, 1.0)] * len(X_trains)
    groups = X_trains if standardize == "silo" else [np.concatenate(X_trains)] * len(X_trains)
    stats = []
    for X in groups:
        sd = X.std(axis=0, ddof=ddof)
        stats.append((X.mean(axis=0), np.where(sd > 0, sd, 1.0)))
    return stats


def scale_silos(parts: dict, standardize: str, columns=None, ddof: int = 0) -> dict:
    """The silos ``parts`` (``{name: (X_train, y_train, X_test, y_test)}``) with the columns
    ``columns`` (default all) of both ``X`` scaled by :func:`scaling` as ``(X - mean) / std``,
    returned with ``X`` as float32."""
    cols = slice(None) if columns is None else np.asarray(columns)
    stats = scaling([p[0][:, cols] for p in parts.values()], standardize, ddof)
    silos = {}
    for (name, (X_tr, y_tr, X_te, y_te)), (mu, sd) in zip(parts.items(), stats, strict=True):
        X_tr, X_te = X_tr.astype(np.float64), X_te.astype(np.float64)  # copies
        X_tr[:, cols] = (X_tr[:, cols] - mu) / sd
        X_te[:, cols] = (X_te[:, cols] - mu) / sd
        silos[name] = (X_tr.astype(np.float32), y_tr, X_te.astype(np.float32), y_te)
    return silos


def positive_rates(silos: dict) -> dict[str, tuple[float, float]]:
    """``{silo: (share of y_train == 1, share of y_test == 1)}``, rounded to 4 decimals."""
    return {
        k: (round(float(np.mean(s[1])), 4), round(float(np.mean(s[3])), 4))
        for k, s in silos.items()
    }
