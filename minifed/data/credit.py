"""Default of credit card clients: 30,000 card holders of one Taiwanese bank, April-Sept 2005.

Yeh (2009), UCI dataset 350, doi:10.24432/C55S3H (CC BY 4.0); paper: Yeh and Lien (2009), "The
comparisons of data mining techniques for the predictive accuracy of probability of default of
credit card clients", Expert Systems with Applications 36(2). All clients come from one card
issuer: the data have no branch or region column, so no natural silos.
"""

from __future__ import annotations

import os

import numpy as np

from minifed.data.fetch import locate, parse_numbers, read_text
from minifed.data.sources import CREDIT_DEFAULT

CREDIT_COLUMNS = (
    "ID", "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE",
    "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6",
    "BILL_AMT1", "BILL_AMT2", "BILL_AMT3", "BILL_AMT4", "BILL_AMT5", "BILL_AMT6",
    "PAY_AMT1", "PAY_AMT2", "PAY_AMT3", "PAY_AMT4", "PAY_AMT5", "PAY_AMT6",
    "default.payment.next.month",
)  # fmt: skip
CREDIT_TARGET = "default.payment.next.month"


def load_credit_default(
    data_dir: str | os.PathLike | None = None, download: bool = True
) -> dict[str, np.ndarray]:
    """The 30,000 clients as named int64 columns (6,636 defaults, 22.12 %).

    Download: UCI distributes an Excel workbook, which NumPy and the standard library cannot
    read; the file used is the common CSV conversion ``UCI_Credit_Card.csv`` (the one of the
    Hugging Face dataset scikit-learn/credit-card-clients), fetched from public repositories at
    a pinned commit or from Hugging Face and checked against its sha256. Its values equal UCI's.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder with ``UCI_Credit_Card.csv`` (plain or ``.gz``), or with ``credit-default/``.
    download : bool
        Allow a download into the cache when the file is not found.

    Returns
    -------
    dict of str to ndarray
        One int64 array of 30,000 values per column of ``CREDIT_COLUMNS``, in the file's order:

        - ``ID`` 1..30000; ``LIMIT_BAL`` credit granted (NT dollars, the client's and family's);
        - ``SEX`` 1 male, 2 female; ``EDUCATION`` 1 graduate school, 2 university, 3 high
          school, 4 others (0, 5 and 6 also occur, undocumented); ``MARRIAGE`` 1 married,
          2 single, 3 others (0 also occurs, undocumented); ``AGE`` in years (21-79);
        - ``PAY_0``, ``PAY_2`` ... ``PAY_6``: repayment status in September, August ... April
          2005 (-1 paid duly, 1..9 months late; -2 and 0 also occur, undocumented; the names
          skip ``PAY_1`` as in UCI's workbook);
        - ``BILL_AMT1`` ... ``BILL_AMT6``: bill statement, September ... April (NT dollars, may
          be negative); ``PAY_AMT1`` ... ``PAY_AMT6``: amount paid, September ... April;
        - ``default.payment.next.month``: 1 if the client defaulted in October 2005.

        No value is missing. Cells written like ``5e+05`` (4,262 of them) are whole numbers.
    """
    path = locate(CREDIT_DEFAULT, data_dir=data_dir, download=download)["csv"]
    return read_credit_csv(path)


def read_credit_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``UCI_Credit_Card.csv`` (plain or ``.gz``) as the columns of :func:`load_credit_default`.

    Raises a ValueError naming ``path`` and the line for a wrong header, a row without 25
    fields, or a value that is not a whole number.
    """
    header, _, body = read_text(path).partition("\n")
    expected = ",".join(f'"{c}"' for c in CREDIT_COLUMNS)
    if header.rstrip("\r") != expected:
        raise ValueError(f"{path}, line 1: header {header[:60]!r}... is not {expected!r}.")
    values = parse_numbers(body, path, ncols=len(CREDIT_COLUMNS), delimiter=",", first_line=2)
    row, col = np.nonzero(values != np.round(values))  # NaN also differs from its rounding
    if row.size:
        raise ValueError(
            f"{path}, line {row[0] + 2}: {CREDIT_COLUMNS[col[0]]} = {values[row[0], col[0]]:g} "
            "is not a whole number."
        )
    return {name: values[:, j].astype(np.int64) for j, name in enumerate(CREDIT_COLUMNS)}
