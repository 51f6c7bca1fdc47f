"""Healthcare: UCI Heart Disease as four hospitals, with FLamby's Fed-Heart-Disease split.

Ogier du Terrail et al. (2022), "FLamby: datasets and benchmarks for cross-silo federated learning
in realistic healthcare settings", NeurIPS Datasets and Benchmarks; data: Janosi, Steinbrunn,
Pfisterer and Detrano (1988), UCI dataset 45.
"""

from __future__ import annotations

import os

import numpy as np

from minifed._checks import check_rng
from minifed.applications._common import (
    STANDARDIZE,
    SiloTask,
    check_choice,
    positive_rates,
    scale_silos,
    stratified_split,
)
from minifed.data import HEART_DISEASE_FEATURES, HEART_DISEASE_HOSPITALS, load_heart_disease

TRAIN_FRACTION = 0.66
_CATEGORICAL = {"cp": (2, 3, 4), "restecg": (1, 2)}  # levels kept; cp 1 and restecg 0 dropped
HEART_FEATURES = (
    *(f for f in HEART_DISEASE_FEATURES if f not in _CATEGORICAL),
    *(f"{name}_{level}" for name, levels in _CATEGORICAL.items() for level in levels),
)
# FLamby's test rows: row numbers within each hospital after the preprocessing (0-based). They
# come from running FLamby's split (flamby/datasets/fed_heart_disease/dataset.py, owkin/FLamby
# f1e0564, Nov 2022): scikit-learn's train_test_split(train_size=0.66, random_state=43,
# shuffle=True), stratified by the label when both classes have more than 2 rows, here with
# scikit-learn 1.9.1. Its legacy RandomState draws cannot be made with a numpy Generator.
FLAMBY_TEST_ROWS = {
    "cleveland": (
        5, 13, 16, 24, 26, 34, 40, 42, 43, 46, 47, 48, 49, 53, 55, 56, 59, 60, 61, 63, 64, 65, 69,
        72, 76, 78, 86, 87, 88, 90, 91, 93, 95, 101, 103, 104, 105, 113, 116, 123, 128, 133, 134,
        135, 136, 137, 151, 152, 154, 156, 157, 160, 163, 165, 170, 171, 179, 180, 188, 190, 192,
        197, 201, 202, 203, 211, 213, 215, 216, 218, 221, 223, 224, 227, 228, 233, 236, 239, 243,
        246, 249, 250, 256, 257, 258, 259, 260, 264, 265, 266, 270, 283, 284, 285, 288, 289, 290,
        292, 294, 295, 296, 297, 298, 301,
    ),
    "hungarian": (
        3, 7, 16, 21, 25, 26, 27, 28, 29, 32, 34, 35, 36, 41, 47, 48, 49, 51, 53, 58, 60, 61, 64,
        68, 73, 74, 75, 84, 85, 87, 89, 91, 95, 104, 107, 110, 111, 112, 117, 118, 120, 123, 127,
        128, 131, 132, 136, 137, 139, 143, 145, 149, 155, 158, 159, 161, 164, 169, 172, 179, 182,
        186, 188, 189, 190, 191, 193, 194, 196, 199, 202, 203, 204, 206, 213, 219, 223, 224, 234,
        236, 239, 243, 248, 250, 251, 252, 254, 258, 259,
    ),
    "switzerland": (5, 6, 7, 8, 13, 14, 18, 19, 20, 22, 24, 28, 29, 32, 40, 41),
    "va": (
        1, 5, 6, 9, 12, 26, 29, 33, 35, 36, 38, 39, 41, 42, 45, 47, 54, 60, 61, 62, 64, 66, 67,
        68, 73, 75, 76, 78, 79, 85, 88, 92, 97, 98, 110, 111, 112, 114, 117, 118, 119, 121, 125,
        127, 128,
    ),
}  # fmt: skip


def heart_silos(
    *,
    split: str = "flamby",
    rng: np.random.Generator | None = None,
    standardize: str = "silo",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> SiloTask:
    """Four hospitals (Cleveland, Hungary, Switzerland, Long Beach VA): heart disease yes or no.

    Preprocessing as FLamby's Fed-Heart-Disease: :func:`minifed.data.load_heart_disease` drops
    the mostly missing ``slope``, ``ca`` and ``thal`` and then every row with a missing value
    (303 / 261 / 46 / 130 rows); the label is ``num > 0``. Then, as FLamby: ``cp`` (chest pain
    type 1-4) and ``restecg`` (0-2) one-hot with the first level dropped, giving the 13
    columns of ``HEART_FEATURES``, and every column standardized. ``chol`` is kept as FLamby
    keeps it, although 0 there means "not measured" (all 46 Swiss rows, 33 of VA's).

    Split, per hospital, 66 % train: 199/104, 172/89, 30/16 and 85/45 rows (FLamby's sizes).
    ``split="flamby"`` takes FLamby's own rows (``FLAMBY_TEST_ROWS``), so results can be put
    beside FLamby's. ``split="random"`` draws a split of the same sizes from ``rng``. Both are
    stratified by the label where FLamby's is, that is where both classes have more than 2
    rows: not in Switzerland, whose 46 rows hold a single negative. In FLamby's split that
    negative is a test row, so Switzerland trains on positives only.

    Parameters
    ----------
    split : {"flamby", "random"}
        FLamby's fixed test rows, or a random stratified split drawn from ``rng``.
    rng : numpy.random.Generator, optional
        Needed for ``split="random"`` only.
    standardize : {"silo", "pooled", "none"}
        ``"silo"`` (FLamby's federated setting): each hospital scales its train and test rows
        with the mean and standard deviation (ddof=1, as FLamby's ``torch.std``) of its own
        training rows, statistics it can compute without sharing anything. ``"pooled"``: the
        statistics of all hospitals' training rows (FLamby's pooled baseline). A constant column
        (Swiss ``chol``) becomes 0.
    data_dir, download
        Passed to :func:`minifed.data.load_heart_disease`.

    Returns
    -------
    SiloTask
        ``task="classification"``, silos ``cleveland``, ``hungarian``, ``switzerland``, ``va``
        with ``X`` float32 ``(n, 13)`` and ``y`` int64 in {0, 1}; ``info["positive_rate"]``
        gives each silo's (train, test) share of positives.
    """
    check_choice("split", split, ("flamby", "random"))
    check_choice("standardize", standardize, STANDARDIZE)
    if split == "random":
        rng = check_rng("rng", rng)
    hospitals = load_heart_disease(data_dir=data_dir, download=download)
    parts = {}
    for name, (X, y) in zip(HEART_DISEASE_HOSPITALS, hospitals, strict=True):
        train, test = _rows(name, y, split, rng)
        X = one_hot_heart(X)
        parts[name] = (X[train], y[train], X[test], y[test])
    silos = scale_silos(parts, standardize, ddof=1)
    info = {"split": split, "standardize": standardize, "positive_rate": positive_rates(silos)}
    return SiloTask("heart-disease", "classification", silos, HEART_FEATURES, info)


def _rows(name: str, y: np.ndarray, split: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row numbers of one hospital."""
    if split == "flamby":
        test = np.array(FLAMBY_TEST_ROWS[name])
        return np.setdiff1d(np.arange(len(y)), test), test
    stratify = all(np.sum(y == c) > 2 for c in (0, 1))  # FLamby's rule
    return stratified_split(y, TRAIN_FRACTION, rng, stratify=stratify)


def one_hot_heart(X: np.ndarray) -> np.ndarray:
    """The 10 columns of ``HEART_DISEASE_FEATURES`` as the 13 of ``HEART_FEATURES`` (float64).

    ``cp`` in 1..4 becomes ``cp_2, cp_3, cp_4`` and ``restecg`` in 0..2 becomes ``restecg_1,
    restecg_2`` (pandas ``get_dummies(drop_first=True)``, as FLamby); another value is an error.
    """
    columns = list(HEART_DISEASE_FEATURES)
    keep = [X[:, columns.index(f)] for f in HEART_FEATURES if f in columns]
    dummies = []
    for name, levels in _CATEGORICAL.items():
        values = X[:, columns.index(name)]
        allowed = (min(levels) - 1, *levels)
        if not np.isin(values, allowed).all():
            raise ValueError(f"{name} must take the values {allowed}; got {np.unique(values)}.")
        dummies += [values == level for level in levels]
    return np.column_stack([*keep, *dummies]).astype(np.float64)
