"""Synthetic data sets: every draw comes from the ``numpy.random.Generator`` you pass in.

- :func:`linear_regression` - the first FL toy, ``y = X w + b + noise``.
- :func:`fedprox_synthetic` - Synthetic(alpha, beta) and Synthetic-IID of Li et al. (2020),
  "Federated Optimization in Heterogeneous Networks" (FedProx), Section 5.1 and Appendix C.1.
- :func:`gaussian_blobs` - one isotropic Gaussian cluster per class.
"""

from __future__ import annotations

import numpy as np

from minifed._checks import check_int, check_nonnegative, check_positive, check_rng

FEDPROX_FEATURES = 60
FEDPROX_CLASSES = 10


def linear_regression(
    n_samples: int, num_features: int = 10, noise: float = 0.1, *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a linear-regression data set ``y = X w + b + eps``.

    ``x_i ~ N(0, I_d)``, ``w ~ N(0, I_d)``, ``b ~ N(0, 1)``, ``eps_i ~ N(0, noise^2)``.

    Parameters
    ----------
    n_samples : int
        Number of rows ``n``.
    num_features : int
        Number of features ``d``.
    noise : float
        Standard deviation of the additive noise ``eps`` (0 gives an exact linear model).
    rng : numpy.random.Generator
        Source of every random draw.

    Returns
    -------
    X : ndarray of float32, shape (n, d)
    y : ndarray of float32, shape (n,)
    w_true : ndarray of float64, shape (d + 1,)
        The true parameters with the bias LAST: ``w_true[:d]`` is ``w``, ``w_true[d]`` is ``b``,
        so ``y = X @ w_true[:-1] + w_true[-1] + eps``.

    Examples
    --------
    >>> X, y, w_true = linear_regression(5, 3, noise=0.0, rng=np.random.default_rng(0))
    >>> X.shape, y.shape, w_true.shape
    ((5, 3), (5,), (4,))
    >>> bool(np.allclose(X @ w_true[:-1] + w_true[-1], y, atol=1e-5))
    True
    """
    n = check_int("n_samples", n_samples, minimum=1)
    d = check_int("num_features", num_features, minimum=1)
    noise = check_nonnegative("noise", noise)
    rng = check_rng("rng", rng)
    w_true = rng.standard_normal(d + 1)  # (d + 1,): weights, then bias
    X = rng.standard_normal((n, d))  # (n, d)
    y = X @ w_true[:-1] + w_true[-1] + noise * rng.standard_normal(n)
    return X.astype(np.float32), y.astype(np.float32), w_true


def fedprox_device_sizes(num_devices: int, *, rng: np.random.Generator) -> np.ndarray:
    """Samples per device in FedProx's generators: ``n_k = floor(LogNormal(4, 2)) + 50``.

    ``LogNormal(4, 2)`` is ``exp(N(4, 2^2))``: a heavy (power-law-like) tail with median
    ``e^4 ~ 55`` on top of a floor of 50 samples per device.
    """
    num_devices = check_int("num_devices", num_devices, minimum=1)
    return rng.lognormal(4.0, 2.0, num_devices).astype(np.int64) + 50


def fedprox_synthetic(
    alpha: float,
    beta: float,
    num_devices: int = 30,
    *,
    rng: np.random.Generator,
    iid: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic(alpha, beta) of Li et al. (2020, FedProx), 60 features, 10 classes.

    For device ``k`` (all normals below are written ``N(mean, standard deviation)``)::

        n_k = floor(LogNormal(4, 2)) + 50           samples on device k
        u_k ~ N(0, alpha),   B_k ~ N(0, beta)        device priors
        W_k[i, j] ~ N(u_k, 1)  (60 x 10),   b_k[j] ~ N(u_k, 1)  (10,)
        v_k[j] ~ N(B_k, 1)  (60,)
        x ~ N(v_k, Sigma),   Sigma = diag(j^(-1.2)),  j = 1..60
        y = argmax(softmax(x W_k + b_k)) = argmax(x W_k + b_k)

    Synthetic-IID (``iid=True``) shares one ``W ~ N(0, 1)``, ``b ~ N(0, 1)`` across devices and
    draws ``x ~ N(0, Sigma)`` everywhere; the device sizes follow the same law.

    Parameters
    ----------
    alpha : float
        Model heterogeneity: spread of the device means ``u_k`` (>= 0).
    beta : float
        Data heterogeneity: spread of the feature means ``B_k`` (>= 0).
    num_devices : int
        Number of devices ``K`` (30 in the paper).
    rng : numpy.random.Generator
        Source of every random draw.
    iid : bool
        Draw Synthetic-IID instead; then ``alpha`` and ``beta`` must be 0.

    Returns
    -------
    X : ndarray of float32, shape (n, 60)
    y : ndarray of int64, shape (n,)
        Class labels in ``[0, 10)``.
    device_ids : ndarray of int64, shape (n,)
        Device ``k`` of every row; rows are grouped by device, in order ``0..K-1``.

    Notes
    -----
    The paper writes ``u_k ~ N(0, alpha)``, which reads like a variance. The authors' generators
    (litian96/FedProx, ``data/synthetic_*/generate_synthetic.py``) draw with *standard
    deviation* ``alpha`` (and ``beta``), i.e. variance ``alpha^2``; this function does the same,
    so Synthetic(0.5, 0.5) matches the published data. The two readings agree for 0 and 1.

    Because every entry of ``W_k`` and ``b_k`` shares the same mean ``u_k``, the shift ``u_k``
    adds the same amount ``u_k (sum_j x_j + 1)`` to every class score, so ``alpha`` leaves the
    labels unchanged; the label skew across devices comes from ``beta`` and from each device
    drawing its own ``W_k``. The paper and the authors' code split each device 90% / 10% into
    train / test; do that with ``device_ids`` if you need it.
    """
    alpha = check_nonnegative("alpha", alpha)
    beta = check_nonnegative("beta", beta)
    rng = check_rng("rng", rng)
    if iid and (alpha != 0 or beta != 0):
        raise ValueError(
            f"Synthetic-IID has no alpha or beta: with iid=True pass alpha=0 and beta=0, "
            f"got alpha={alpha}, beta={beta}."
        )
    n_k = fedprox_device_sizes(num_devices, rng=rng)  # (K,)
    std_x = np.arange(1, FEDPROX_FEATURES + 1) ** -0.6  # sqrt(Sigma_jj) = sqrt(j^-1.2)
    if iid:
        return _fedprox_iid(n_k, std_x, rng)
    u = rng.normal(0.0, alpha, len(n_k))  # (K,)
    B = rng.normal(0.0, beta, len(n_k))  # (K,)
    v = rng.normal(B[:, None], 1.0, (len(n_k), FEDPROX_FEATURES))  # (K, 60)
    X, y, offsets = _allocate(n_k)
    for k in range(len(n_k)):
        a, b = offsets[k], offsets[k + 1]
        W_k = rng.normal(u[k], 1.0, (FEDPROX_FEATURES, FEDPROX_CLASSES))  # (60, 10)
        b_k = rng.normal(u[k], 1.0, FEDPROX_CLASSES)  # (10,)
        x = v[k] + std_x * rng.standard_normal((b - a, FEDPROX_FEATURES))  # (n_k, 60) float64
        X[a:b] = x  # rounded to float32 in place: no float64 copy of the whole pool
        y[a:b] = np.argmax(x @ W_k + b_k, axis=1)  # labels from the float64 features
    return X, y, np.repeat(np.arange(len(n_k), dtype=np.int64), n_k)


def _fedprox_iid(n_k: np.ndarray, std_x: np.ndarray, rng: np.random.Generator):
    """Synthetic-IID: one shared ``(W, b) ~ N(0, 1)``, and ``x ~ N(0, Sigma)`` on every device."""
    W = rng.standard_normal((FEDPROX_FEATURES, FEDPROX_CLASSES))  # (60, 10)
    b = rng.standard_normal(FEDPROX_CLASSES)  # (10,)
    X, y, offsets = _allocate(n_k)
    for k in range(len(n_k)):  # labels take no draws, so computing them here keeps the stream
        a, z = offsets[k], offsets[k + 1]
        x = std_x * rng.standard_normal((z - a, FEDPROX_FEATURES))  # (n_k, 60) float64
        X[a:z] = x
        y[a:z] = np.argmax(x @ W + b, axis=1)
    return X, y, np.repeat(np.arange(len(n_k), dtype=np.int64), n_k)


def _allocate(n_k: np.ndarray):
    """Empty float32 ``X`` of shape ``(n, 60)``, int64 ``y`` of shape ``(n,)``, and the device
    offsets ``[0, n_0, n_0 + n_1, ..., n]``: device ``k`` owns rows ``offsets[k]:offsets[k+1]``."""
    n = int(n_k.sum())
    offsets = np.concatenate([[0], np.cumsum(n_k)])  # (K + 1,)
    return np.empty((n, FEDPROX_FEATURES), np.float32), np.empty(n, np.int64), offsets


def gaussian_blobs(
    n_samples: int,
    num_classes: int,
    num_features: int = 2,
    spread: float = 1.0,
    *,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One Gaussian cluster per class: ``x | y=c ~ N(mu_c, spread^2 I)``.

    The centres are drawn as ``mu_c ~ Uniform[-10, 10]^d``. Classes are balanced (sizes differ
    by at most one) and the rows are shuffled.

    Parameters
    ----------
    n_samples : int
        Number of rows ``n``.
    num_classes : int
        Number of classes (clusters), >= 1.
    num_features : int
        Dimension ``d``.
    spread : float
        Standard deviation of every cluster (> 0).
    rng : numpy.random.Generator
        Source of every random draw.

    Returns
    -------
    X : ndarray of float32, shape (n, d)
    y : ndarray of int64, shape (n,)

    Examples
    --------
    >>> X, y = gaussian_blobs(7, 3, rng=np.random.default_rng(0))
    >>> X.shape, np.bincount(y).tolist()
    ((7, 2), [3, 2, 2])
    """
    n = check_int("n_samples", n_samples, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    d = check_int("num_features", num_features, minimum=1)
    spread = check_positive("spread", spread)
    rng = check_rng("rng", rng)
    mu = rng.uniform(-10.0, 10.0, (num_classes, d))  # (C, d)
    y = rng.permutation(np.arange(n) % num_classes)  # (n,)
    X = mu[y] + spread * rng.standard_normal((n, d))  # (n, d)
    return X.astype(np.float32), y.astype(np.int64)
