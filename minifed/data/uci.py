"""UCI data sets: Heart Disease by hospital (a natural 4-client split) and optdigits.

- Heart Disease: Janosi, Steinbrunn, Pfisterer and Detrano (1988), UCI dataset 45,
  doi:10.24432/C52P4X, with the preprocessing of FLamby's Fed-Heart-Disease
  (Ogier du Terrail et al., 2022).
- optdigits: Alpaydin and Kaynak (1998), UCI dataset 80, doi:10.24432/C50P49.
"""

from __future__ import annotations

import os

import numpy as np

from minifed.data.fetch import locate
from minifed.data.sources import HEART_DISEASE, HEART_DISEASE_HOSPITALS, OPTDIGITS

HEART_DISEASE_COLUMNS = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
    "slope", "ca", "thal", "num",
)  # fmt: skip
HEART_DISEASE_DROPPED = ("slope", "ca", "thal")
HEART_DISEASE_FEATURES = tuple(
    c for c in HEART_DISEASE_COLUMNS[:-1] if c not in HEART_DISEASE_DROPPED
)


def load_heart_disease(
    data_dir: str | os.PathLike | None = None, download: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """UCI Heart Disease as four clients, one per hospital (FLamby's Fed-Heart-Disease).

    Preprocessing as FLamby: drop the columns ``slope``, ``ca`` and ``thal`` (mostly missing
    outside Cleveland), then every row with a missing value ``?``; the label is ``num > 0``
    (heart disease present). That leaves 303 / 261 / 46 / 130 rows.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder with the ``processed.<hospital>.data`` files (or with ``heart-disease/``).
    download : bool
        Allow a download into the cache when the files are not found.

    Returns
    -------
    list of (X, y)
        In the order of ``HEART_DISEASE_HOSPITALS`` (cleveland, hungarian, switzerland, va).
        ``X`` is float32 of shape ``(n_k, 10)``, columns ``HEART_DISEASE_FEATURES``, raw units
        (not standardized: standardize with training statistics before fitting). ``y`` is
        int64 in ``{0, 1}``.
    """
    paths = locate(HEART_DISEASE, data_dir=data_dir, download=download)
    return [_parse_heart(paths[h]) for h in HEART_DISEASE_HOSPITALS]


def _parse_heart(path) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one ``processed.*.data`` file, without the dropped columns and missing values."""
    keep = [i for i, c in enumerate(HEART_DISEASE_COLUMNS) if c not in HEART_DISEASE_DROPPED]
    with open(path, encoding="ascii") as f:
        rows = [line.strip().split(",") for line in f if line.strip()]
    bad = [i for i, r in enumerate(rows) if len(r) != len(HEART_DISEASE_COLUMNS)]
    if bad:
        raise ValueError(f"{path}: row {bad[0] + 1} does not have 14 comma-separated values.")
    kept = [[r[i] for i in keep] for r in rows]
    table = np.array([r for r in kept if "?" not in r], dtype=np.float64)  # (n_k, 11)
    return table[:, :-1].astype(np.float32), (table[:, -1] > 0).astype(np.int64)


def load_optdigits(
    split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """UCI optdigits: 8 x 8 handwritten digits, 3823 train rows (30 writers), 1797 test rows.

    The test rows are exactly scikit-learn's ``load_digits()``.

    Parameters
    ----------
    split : {"train", "test"}
        ``optdigits.tra`` or ``optdigits.tes``.
    data_dir : str or path-like, optional
        Folder with the files (or with ``optdigits/``).
    download : bool
        Allow a download into the cache when the files are not found.

    Returns
    -------
    X : ndarray of float32, shape (n, 64)
        Pixel counts 0..16 divided by 16, so in ``[0, 1]``.
    y : ndarray of int64, shape (n,)
        Digit labels 0-9.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    path = locate(OPTDIGITS, data_dir=data_dir, download=download, files=[split])[split]
    table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)  # (n, 65)
    if table.shape[1] != 65:
        raise ValueError(f"{path}: expected 65 columns (64 pixels, label), got {table.shape[1]}.")
    return (table[:, :64] / 16.0).astype(np.float32), table[:, 64]
