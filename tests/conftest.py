"""Shared test helpers.

``require_dataset(name)`` gives the paths of a real data set (``minifed.data.DATASETS[name]``,
e.g. "mnist", "fashion-mnist", "heart-disease", "optdigits", "tinyshakespeare") without ever
downloading. When the files are absent the test is SKIPPED with the reason, except when the
environment variable ``CI`` is ``true``: then absence FAILS the test. Use it as a function
(``from conftest import require_dataset``) or through the fixture of the same name.

Downloads are tested offline: :class:`FakeOpener` serves bytes by URL, and the ``env`` fixture
isolates the cache and the data-directory variables.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
from pathlib import Path

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


class FakeOpener:
    """``url -> file-like`` from a dict, counting calls; missing URLs raise like a 404."""

    def __init__(self, pages):
        self.pages, self.calls = pages, []

    def __call__(self, url):
        self.calls.append(url)
        if url not in self.pages:
            raise OSError(f"HTTP Error 404: Not Found ({url})")
        return io.BytesIO(self.pages[url])


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated environment: cache in tmp_path, no MINIFED_DATA, downloads allowed."""
    monkeypatch.setenv("MINIFED_CACHE", str(tmp_path / "cache"))
    for name in ("MINIFED_DATA", "MINIFED_NO_DOWNLOAD"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture(name="require_dataset")
def require_dataset_fixture():
    """The :func:`require_dataset` function, for tests that prefer a fixture."""
    return require_dataset


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_script(name: str):
    """The module of ``benchmarks/<name>.py`` (scripts, not a package), loaded once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def blobs_federation(K=10, n=400, d=4, C=3, separation=2.0, seed=0) -> FederatedDataset:
    """``K`` IID clients of Gaussian blobs, class ``c`` shifted by ``separation`` along axis
    ``c``, plus a test set of 100 rows (small ``separation``: classes overlap)."""
    rng = np.random.default_rng(seed)
    y, y_test = rng.integers(0, C, size=n), rng.integers(0, C, size=100)
    X = rng.normal(size=(n, d)) + separation * np.eye(C, d)[y]
    X_test = rng.normal(size=(100, d)) + separation * np.eye(C, d)[y_test]
    parts = np.array_split(rng.permutation(n), K)
    return FederatedDataset(X, y, parts, X_test, y_test, name="blobs")


def drift_federation(K=4, n_k=30, p=2, seed=0) -> tuple[FederatedDataset, np.ndarray]:
    """Heterogeneous least squares where FedAvg's fixed point (E > 1) is biased.

    Client ``k``'s features are centred at their own mean and scaled differently, and its targets
    follow its own line, so the clients' Hessians and minimisers differ. Every client holds
    ``n_k`` rows (equal sizes: the objective ``sum_k (n_k/n) F_k`` is then also the unweighted
    mean, the target of algorithms that average uniformly). Returns ``(data, w_star)`` with
    ``w_star = [W, b]`` the exact least-squares minimiser of the pooled data (float64).
    """
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k in range(K):
        X_k = rng.normal(loc=2.0 * k - K, scale=0.5 + k, size=(n_k, p))
        slope = rng.normal(size=p) * (1 + k)
        X.append(X_k)
        y.append(X_k @ slope + 3.0 * k + 0.1 * rng.normal(size=n_k))
    X, y = np.concatenate(X), np.concatenate(y)
    parts = np.split(np.arange(K * n_k), K)
    data = FederatedDataset(X, y, parts, X[::3], y[::3], dtype=np.float64, name="drift")
    w_star = np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]
    return data, w_star
