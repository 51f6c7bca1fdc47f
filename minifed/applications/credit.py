"""Finance: will a card holder default next month? Taiwan's credit-card clients in silos.

Data: Yeh and Lien (2009), UCI dataset 350 (:func:`minifed.data.load_credit_default`). The data
have no bank, branch or region column: all 30,000 clients come from one card issuer. The silos
built here are therefore synthetic, and say so: customer segments by education level, or a
Dirichlet label skew (Yurochkin et al. 2019; :func:`minifed.partition.dirichlet`).
"""

from __future__ import annotations

import os

import numpy as np

from minifed._checks import check_fraction, check_int, check_positive, check_rng
from minifed.applications._common import (
    STANDARDIZE,
    SiloTask,
    check_choice,
    positive_rates,
    scale_silos,
    stratified_split,
)
from minifed.data import CREDIT_TARGET, load_credit_default
from minifed.partition import dirichlet

MONEY = ("LIMIT_BAL", *(f"BILL_AMT{i}" for i in range(1, 7)), *(f"PAY_AMT{i}" for i in range(1, 7)))
NUMERIC = (*MONEY[:1], "AGE", *(f"PAY_{i}" for i in (0, 2, 3, 4, 5, 6)), *MONEY[1:])
CATEGORIES = {  # column: {one-hot name: codes}; undocumented codes go to "other"
    "SEX": {"male": (1,), "female": (2,)},
    "EDUCATION": {
        "graduate_school": (1,),
        "university": (2,),
        "high_school": (3,),
        "other": (0, 4, 5, 6),
    },
    "MARRIAGE": {"married": (1,), "single": (2,), "other": (0, 3)},
}
CREDIT_FEATURES = (
    *NUMERIC,
    *(f"{col}_{name}" for col, names in CATEGORIES.items() for name in names),
)


def credit_silos(
    *,
    rng: np.random.Generator,
    split: str = "education",
    K: int = 5,
    alpha: float = 0.5,
    train_fraction: float = 0.8,
    standardize: str = "silo",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> SiloTask:
    """Synthetic silos of 30,000 card holders: default next month yes or no (22.12 % yes).

    The data have no silo column, so the silos are built, and are not real banks:

    - ``split="education"``: four customer segments by ``EDUCATION``, ``graduate_school``
      (10,585 clients, 19.2 % default), ``university`` (14,030, 23.7 %), ``high_school``
      (4,917, 25.2 %) and ``other`` (468, 7.1 %: the rare codes 4 "others" and the undocumented
      0, 5, 6 merged). A feature skew (different customers) with some label skew.
    - ``split="dirichlet"``: ``K`` silos ``bank_0`` ... with a Dirichlet(``alpha``) label skew
      (:func:`minifed.partition.dirichlet`, every silo at least 20 clients): small ``alpha``
      gives silos with very different default rates, large ``alpha`` nearly IID ones.

    Each silo then splits its clients at random, stratified by the label, ``train_fraction``
    (80 %) for training and the rest for its test set. Features, 29 columns
    (``CREDIT_FEATURES``): the 20 numeric ones (money amounts in NT dollars through the signed
    log ``sign(x) log(1 + |x|)``, because bills and payments span six orders of magnitude and
    can be negative; ``AGE`` and the repayment statuses ``PAY_*`` as they are), standardized,
    then ``SEX``, ``EDUCATION`` (with 0, 4, 5, 6 as "other") and ``MARRIAGE`` (with 0 as
    "other") one-hot, 0/1, every level a column. No value is missing. The class imbalance
    (22.12 % positives; always saying "no default" scores 77.9 % accuracy) is left in the data
    and reported per silo in ``info["positive_rate"]``: judge models by ROC AUC and by recall
    at a fixed precision, or weight the classes in the loss.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the train/test split (and the Dirichlet split).
    split : {"education", "dirichlet"}
        How the synthetic silos are made.
    K : int
        Number of silos for ``split="dirichlet"``.
    alpha : float
        Dirichlet concentration for ``split="dirichlet"`` (> 0).
    train_fraction : float
        Share of each silo's clients used for training, in (0, 1).
    standardize : {"silo", "pooled", "none"}
        Scale the numeric columns with each silo's own training mean and std (``"silo"``), all
        silos' (``"pooled"``), or not at all.
    data_dir, download
        Passed to :func:`minifed.data.load_credit_default`.

    Returns
    -------
    SiloTask
        ``task="classification"``, ``y`` int64 in {0, 1}; ``info["positive_rate"]`` per silo.
    """
    rng = check_rng("rng", rng)
    check_choice("split", split, ("education", "dirichlet"))
    check_choice("standardize", standardize, STANDARDIZE)
    train_fraction = check_fraction("train_fraction", train_fraction)
    if train_fraction == 1:
        raise ValueError("train_fraction must be below 1, e.g. 0.8, to leave a test set.")
    table = load_credit_default(data_dir=data_dir, download=download)
    X, y = credit_features(table), table[CREDIT_TARGET]
    parts = {}
    for name, rows in _silo_rows(table, y, split, K, alpha, rng).items():
        train, test = stratified_split(y[rows], train_fraction, rng)
        parts[name] = (X[rows[train]], y[rows[train]], X[rows[test]], y[rows[test]])
    silos = scale_silos(parts, standardize, columns=range(len(NUMERIC)))
    info = {
        "split": split,
        "synthetic_silos": True,
        "standardize": standardize,
        "positive_rate": positive_rates(silos),
        "positive_rate_all": round(float(y.mean()), 4),
    }
    if split == "dirichlet":
        info |= {"K": K, "alpha": alpha}
    return SiloTask("credit-default", "classification", silos, CREDIT_FEATURES, info)


def _silo_rows(table, y, split, K, alpha, rng) -> dict[str, np.ndarray]:
    """Row numbers of each silo, ascending."""
    if split == "education":
        return {name: np.flatnonzero(np.isin(table["EDUCATION"], codes))
                for name, codes in CATEGORIES["EDUCATION"].items()}  # fmt: skip
    K = check_int("K", K, minimum=1)
    alpha = check_positive("alpha", alpha)
    parts = dirichlet(y, K, alpha, rng=rng, min_size=20)
    return {f"bank_{k}": rows for k, rows in enumerate(parts)}


def credit_features(table: dict) -> np.ndarray:
    """The 29 columns of ``CREDIT_FEATURES`` (float64, unscaled) from the raw table.

    >>> t = {c: np.array([0]) for c in NUMERIC} | {"SEX": np.array([2]),
    ...      "EDUCATION": np.array([5]), "MARRIAGE": np.array([1])}
    >>> t["LIMIT_BAL"] = np.array([-(np.e - 1)])
    >>> credit_features(t)[0, [0, 21, 25, 26]].tolist()  # sign-log, female, other, married
    [-1.0, 1.0, 1.0, 1.0]
    """
    numeric = [table[c].astype(np.float64) for c in NUMERIC]
    numeric = [
        np.sign(x) * np.log1p(np.abs(x)) if c in MONEY else x
        for c, x in zip(NUMERIC, numeric, strict=True)
    ]
    one_hot = []
    for col, levels in CATEGORIES.items():
        codes = table[col]
        known = np.isin(codes, [c for cs in levels.values() for c in cs])
        if not known.all():
            raise ValueError(f"{col} has the unknown code {codes[~known][0]}; known: {levels}.")
        one_hot += [np.isin(codes, cs) for cs in levels.values()]
    return np.column_stack([*numeric, *one_hot]).astype(np.float64)
