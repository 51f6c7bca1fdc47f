"""Argument checks shared by the whole package.

Every public function that takes arrays or settings from a user calls one of these, so that bad
input fails with a sentence that names the argument and says how to fix it, instead of a NumPy
broadcast trace deep inside the math.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_int(name: str, value, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int``, or raise if it is not a whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def check_positive(name: str, value) -> float:
    """Return ``value`` as a ``float``, or raise if it is not a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}.")
    return float(value)


def check_nonnegative(name: str, value) -> float:
    """Return ``value`` as a ``float``, or raise if it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return float(value)


def check_fraction(name: str, value) -> float:
    """Return ``value`` as a ``float`` in (0, 1], e.g. the client fraction C."""
    value = check_positive(name, value)
    if value > 1:
        raise ValueError(f"{name} must be in (0, 1], got {value}; use 1.0 for every client.")
    return value


def check_batch_size(name: str, value) -> int | None:
    """Return the batch size B: ``None`` means the full local dataset, else an int >= 1."""
    if value is None:
        return None
    return check_int(name, value, minimum=1)


def check_features(name: str, X, ndim_min: int = 2) -> np.ndarray:
    """Return ``X`` as a float array with at least ``ndim_min`` dims and only finite values."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got an array of dtype {X.dtype}.")
    if X.ndim < ndim_min:
        raise ValueError(
            f"{name} must have at least {ndim_min} dimensions (samples first), got shape {X.shape}."
        )
    if X.dtype.kind != "f":
        X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf; clean or impute these values first.")
    return X


def check_labels(name: str, y, num_classes: int | None) -> np.ndarray:
    """Return class labels as int64 in ``[0, num_classes)``, or raise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {y.shape}.")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}.")
    if num_classes is not None and y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}) for a {num_classes}-class model, "
            f"got values from {y.min()} to {y.max()}."
        )
    return y.astype(np.int64, copy=False)


def check_targets(name: str, y) -> np.ndarray:
    """Return regression targets as a finite 1-D float array, or raise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of targets, got shape {y.shape}.")
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {y.dtype}.")
    if not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return y


def check_same_length(X: np.ndarray, y: np.ndarray, names: str = "X and y") -> None:
    """Raise if features and labels do not have one entry per sample."""
    if len(X) != len(y):
        raise ValueError(
            f"{names} must have the same number of samples, got {len(X)} and {len(y)}."
        )


def check_rng(name: str, rng) -> np.random.Generator:
    """Return ``rng`` if it is a ``numpy.random.Generator``; never fall back to global state."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator, e.g. numpy.random.default_rng(0); "
            f"got {type(rng).__name__}."
        )
    return rng
