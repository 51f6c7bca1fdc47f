"""Shared test helpers.

``require_dataset(name)`` gives the paths of a real data set (``minifed.data.DATASETS[name]``,
e.g. "mnist", "fashion-mnist", "heart-disease", "optdigits", "tinyshakespeare") without ever
downloading. When the files are absent the test is SKIPPED with the reason, except when the
environment variable ``CI`` is ``true``: then absence FAILS the test. Use it as a function
(``from conftest import require_dataset``) or through the fixture of the same name.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from minifed.data import DATASETS, DatasetNotFoundError, locate
from minifed.dataset import FederatedDataset


def require_dataset(name: str, files=None) -> dict:
    """Return ``{key: path}`` of data set ``name``; skip (fail when ``CI=true``) if absent."""
    try:
        return locate(DATASETS[name], download=False, files=files)
    except DatasetNotFoundError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and real data set {name!r} is missing. {exc}", pytrace=False)
        pytest.skip(f"real data set {name!r} not found; set MINIFED_DATA (see minifed.data.locate)")


@pytest.fixture(name="require_dataset")
def require_dataset_fixture():
    """The :func:`require_dataset` function, for tests that prefer a fixture."""
    return require_dataset


def blobs_federation(K=10, n=400, d=4, C=3, separation=2.0, seed=0) -> FederatedDataset:
    """``K`` IID clients of Gaussian blobs, class ``c`` shifted by ``separation`` along axis
    ``c``, plus a test set of 100 rows (small ``separation``: classes overlap)."""
    rng = np.random.default_rng(seed)
    y, y_test = rng.integers(0, C, size=n), rng.integers(0, C, size=100)
    X = rng.normal(size=(n, d)) + separation * np.eye(C, d)[y]
    X_test = rng.normal(size=(100, d)) + separation * np.eye(C, d)[y_test]
    parts = np.array_split(rng.permutation(n), K)
    return FederatedDataset(X, y, parts, X_test, y_test, name="blobs")
