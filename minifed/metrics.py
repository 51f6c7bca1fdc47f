"""The metrics each field reads: ROC AUC and recall at a fixed precision (medicine, finance),
RMSE (forecasting, remaining useful life), accuracy.

Every function takes the true values first and checks its input: 1-D arrays of the same, non-zero
length with finite values. ``scores`` are any real numbers that rank the rows by how likely they
are positive (a logit, a probability, a risk score); only their order matters.
"""

from __future__ import annotations

import numpy as np


class UndefinedMetricError(ValueError):
    """The metric has no value on this data (e.g. ROC AUC on a test set with one class only)."""


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve, the Mann-Whitney statistic of the positives against the negatives.

    With ``P`` the positives and ``N`` the negatives (``n_1 = |P|``, ``n_0 = |N|``),

        ``AUC = (1 / (n_1 n_0)) sum_{i in P} sum_{j in N} [1(s_i > s_j) + 1/2 1(s_i = s_j)]``

    the probability that a random positive scores above a random negative, a tie counting 1/2.
    It is computed in ``O(n log n)`` from the ranks ``r_i`` of the scores (1 for the smallest,
    tied scores sharing the mean of their ranks): ``AUC = (R_1 - n_1 (n_1 + 1) / 2) / (n_1 n_0)``
    with ``R_1 = sum_{i in P} r_i``. A strictly increasing transform of the scores leaves it
    unchanged; 0.5 is a random ranking, 1.0 a perfect one.

    Parameters
    ----------
    y_true : array of shape (n,)
        Labels in ``{0, 1}`` (or booleans); both classes must be present.
    scores : array of shape (n,)
        Real scores, larger meaning "more likely positive".

    Raises
    ------
    UndefinedMetricError
        When ``y_true`` holds one class only (no positive-negative pair to order).

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # 3 of the 4 pairs ordered correctly
    0.75
    >>> roc_auc([0, 1], [0.5, 0.5])  # a tie counts 1/2
    0.5
    """
    y, s = _binary_and_scores(y_true, scores)
    n_1 = int(np.count_nonzero(y))
    n_0 = len(y) - n_1
    if n_1 == 0 or n_0 == 0:
        raise UndefinedMetricError(
            f"roc_auc needs both classes in y_true, got only class {int(y[0])} in {len(y)} rows; "
            "use a stratified test split, or another metric for this set."
        )
    R_1 = float(average_ranks(s)[y].sum())  # sum of the positives' ranks
    return (R_1 - n_1 * (n_1 + 1) / 2) / (n_1 * n_0)


def average_ranks(s: np.ndarray) -> np.ndarray:
    """Ranks ``1..n`` of the values of ``s``, tied values sharing the mean of their ranks.

    >>> average_ranks(np.array([0.3, 0.1, 0.3, 0.2])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    order = np.argsort(s, kind="stable")  # (n,)
    s_sorted = s[order]
    first = np.r_[True, s_sorted[1:] != s_sorted[:-1]]  # (n,) starts a group of equal values
    starts = np.flatnonzero(first)  # (g,) 0-based position of each group's first value
    ends = np.r_[starts[1:], len(s)]  # (g,) one past each group's last value
    group_rank = (starts + 1 + ends) / 2  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = group_rank[np.cumsum(first) - 1]
    return ranks


def recall_at_precision(y_true, scores, precision: float) -> float:
    """The highest recall of a threshold rule whose precision is at least ``precision``.

    A threshold ``tau`` flags the rows with ``s_i >= tau`` (tied scores are flagged together).
    With ``TP(tau)`` and ``FP(tau)`` the flagged positives and negatives and ``n_1`` the positives,

        ``recall(tau) = TP(tau) / n_1``,  ``precision(tau) = TP(tau) / (TP(tau) + FP(tau))``,

        ``recall_at_precision = max {recall(tau) : precision(tau) >= precision}``

    over the thresholds ``tau`` equal to one of the scores (every distinct rule). Convention: a
    rule that flags nothing has no precision and is not a candidate, so the result is ``0.0``
    when no threshold reaches the target (the risk team flags nobody). Used in credit and fraud
    scoring: "of the defaulters, how many do we catch if at least ``precision`` of the flagged
    customers must really default?".

    Parameters
    ----------
    y_true : array of shape (n,)
        Labels in ``{0, 1}``; at least one positive (recall divides by ``n_1``).
    scores : array of shape (n,)
        Real scores, larger meaning "more likely positive".
    precision : float
        The target precision, in ``(0, 1]``.

    Examples
    --------
    >>> y, s = [1, 0, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    >>> recall_at_precision(y, s, 0.75)  # flag the top 4: 3 positives of 4 flagged, all caught
    1.0
    >>> recall_at_precision(y, s, 0.8)  # only the top 1 reaches 0.8: 1 of the 3 positives
    0.3333333333333333
    """
    precision = float(precision)
    if not 0 < precision <= 1:
        raise ValueError(f"precision must be in (0, 1], got {precision}.")
    y, s = _binary_and_scores(y_true, scores)
    n_1 = int(np.count_nonzero(y))
    if n_1 == 0:
        raise UndefinedMetricError("recall needs at least one positive in y_true, got none.")
    order = np.argsort(-s, kind="stable")  # (n,) highest score first
    s_desc, tp = s[order], np.cumsum(y[order])  # tp[i]: positives among the top i + 1
    last = np.r_[s_desc[1:] != s_desc[:-1], True]  # (n,) last row of a group of equal scores
    tp, flagged = tp[last], np.flatnonzero(last) + 1  # one entry per distinct threshold
    ok = tp >= precision * flagged  # precision(tau) >= target, without a division
    return float(tp[ok].max()) / n_1 if ok.any() else 0.0


def rmse(y_true, y_pred) -> float:
    """Root mean squared error ``sqrt((1/n) sum_i (yhat_i - y_i)^2)``, in the targets' units.

    >>> rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])  # sqrt(4 / 3)
    1.1547005383792515
    """
    y, yhat = _pair(y_true, y_pred, ("y_true", "y_pred"))
    r = yhat.astype(np.float64) - y  # (n,) residuals
    return float(np.sqrt(np.mean(r * r)))


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches ``(1/n) sum_i 1(yhat_i = y_i)``.

    >>> accuracy([0, 1, 2, 1], [0, 1, 1, 1])
    0.75
    """
    y, yhat = _pair(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.mean(y == yhat))


def _pair(a, b, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as 1-D arrays of finite numbers of the same, non-zero length."""
    arrays = []
    for name, x in zip(names, (a, b), strict=True):
        x = np.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array (one value per row), got {x.shape}.")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}.")
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf.")
        arrays.append(x)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have one value per row each, got {len(arrays[0])} "
            f"and {len(arrays[1])} values."
        )
    if arrays[0].size == 0:
        raise ValueError(f"{names[0]} is empty: a metric needs at least one row.")
    return arrays[0], arrays[1]


def _binary_and_scores(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` as a boolean array (from labels in ``{0, 1}``) and ``scores`` as float64."""
    y, s = _pair(y_true, scores, ("y_true", "scores"))
    if not np.isin(y, (0, 1)).all():
        raise ValueError(
            f"y_true must hold binary labels 0 and 1, got values {np.unique(y)[:5].tolist()}; "
            "for several classes score one class against the rest."
        )
    return y.astype(bool), s.astype(np.float64)
