"""Partitioners: from one dataset of ``n`` samples to ``K`` clients.

Every partitioner takes labels (or only a sample count) and a ``numpy.random.Generator`` and
returns a list of ``K`` int64 index arrays: ``parts[k]`` lists the rows client ``k`` holds, in
ascending order. The arrays are disjoint, none is empty, and together they cover every sample
exactly once (the only exception is ``shards(..., drop_remainder=True)``, which says which
samples it leaves out). Pass the result to :class:`minifed.dataset.FederatedDataset`.

Bad settings raise a ValueError that names the argument (``K < 1``, more clients than samples,
a shard count that does not divide ``n``, ``alpha <= 0``, labels that are not 1-D); labels that
are not whole numbers raise a TypeError (from :func:`minifed._checks.check_labels`), and so does
an ``rng`` that is not a ``numpy.random.Generator``. ``rng`` is keyword-only everywhere except in
:func:`partition`, the command line's entry point.

====================  ==========================================  ===========================
spec                  split                                       reference
====================  ==========================================  ===========================
``iid``               shuffle, K near-equal parts                 McMahan et al. 2017
``shards[:s]``        sort by label, s shards per client          McMahan et al. 2017
``dirichlet:alpha``   label skew, ``q_c ~ Dir(alpha 1_K)``        Yurochkin et al. 2019
``quantity[:a]``      Pareto(a) client sizes, IID labels          Li et al. 2020 (FedProx)
``natural``           one client per group (hospital, speaker)    Caldas et al. 2018 (LEAF)
====================  ==========================================  ===========================
"""

from __future__ import annotations

import numpy as np

from minifed._checks import check_int, check_labels, check_positive, check_rng

_SPECS = {  # name -> (parameter, type, default or None if required); None = no parameter
    "iid": None,
    "shards": ("shards_per_client", int, 2),
    "dirichlet": ("alpha", float, None),
    "quantity": ("power", float, 1.5),
    "natural": None,
}
_EXAMPLES = "'iid', 'shards', 'shards:2', 'dirichlet:0.5', 'quantity', 'quantity:1.5', 'natural'"


def iid(n_samples: int, K: int, *, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle ``n_samples`` rows and cut them into ``K`` near-equal parts (McMahan et al. 2017).

    The first ``n_samples mod K`` clients get ``n_samples // K + 1`` samples, the others
    ``n_samples // K``, so sizes differ by at most one.

    Parameters
    ----------
    n_samples : int
        Number of samples ``n`` (only the count matters, labels are not looked at).
    K : int
        Number of clients, ``1 <= K <= n``.
    rng : numpy.random.Generator
        Source of the shuffle (keyword only).

    Returns
    -------
    list of K int64 arrays
        ``parts[k]`` = the rows of client ``k``, ascending; see the module docstring.

    Examples
    --------
    >>> parts = iid(10, 3, rng=np.random.default_rng(0))
    >>> [len(ix) for ix in parts]
    [4, 3, 3]
    >>> sorted(np.concatenate(parts).tolist()) == list(range(10))
    True
    """
    n = check_int("n_samples", n_samples, minimum=1)
    K = _check_K(K, n)
    perm = check_rng("rng", rng).permutation(n)
    return [np.sort(ix).astype(np.int64) for ix in np.array_split(perm, K)]


def shards(
    y,
    K: int,
    shards_per_client: int = 2,
    *,
    rng: np.random.Generator,
    drop_remainder: bool = False,
) -> list[np.ndarray]:
    """The pathological non-IID split of McMahan et al. (2017), Sec. 3.

    Sort the samples by label with a *stable* sort (samples of one label keep their original
    order), cut the sorted list into ``K * shards_per_client`` contiguous shards of equal size
    ``n / (K * shards_per_client)``, and give each client ``shards_per_client`` shards chosen at
    random without replacement. MNIST: 60000 samples -> 200 shards of 300, two per client for
    100 clients, so most clients see only two digits.

    ``n`` must be divisible by ``K * shards_per_client``; otherwise a ValueError says by how
    much. With ``drop_remainder=True`` the ``n mod (K * shards_per_client)`` leftover samples,
    chosen at random, are left out of every client instead.

    Parameters
    ----------
    y : 1-D int array of shape ``(n,)``
        Class labels (whole-number floats are accepted).
    K : int
        Number of clients.
    shards_per_client : int
        Shards per client (2 in the paper).
    rng : numpy.random.Generator
        Chooses which shards each client gets (and the dropped samples).
    drop_remainder : bool
        Leave out ``n mod (K * shards_per_client)`` random samples instead of raising.

    Returns
    -------
    list of K int64 arrays
        ``parts[k]`` = the rows of client ``k``, ascending; see the module docstring.

    Raises
    ------
    ValueError
        If ``K * shards_per_client`` does not divide ``n`` (and ``drop_remainder`` is False),
        or exceeds ``n``; if ``y`` is not 1-D. TypeError if ``y`` is not integer labels.

    Examples
    --------
    >>> y = np.repeat(np.arange(4), 6)  # 24 samples, labels 0..3
    >>> parts = shards(y, K=4, shards_per_client=2, rng=np.random.default_rng(0))
    >>> [len(ix) for ix in parts]
    [6, 6, 6, 6]
    >>> max(len(np.unique(y[ix])) for ix in parts) <= 2
    True
    """
    y = check_labels("y", y, None)
    K = _check_K(K, len(y))
    s = check_int("shards_per_client", shards_per_client, minimum=1)
    rng = check_rng("rng", rng)
    n, num_shards = len(y), K * s
    keep = np.arange(n)
    if n % num_shards:
        if not drop_remainder or n < num_shards:
            raise ValueError(_shard_message(n, K, s))
        keep = np.sort(rng.choice(n, size=n - n % num_shards, replace=False))
    order = keep[np.argsort(y[keep], kind="stable")]  # (n',) rows sorted by label
    shard_rows = order.reshape(num_shards, -1)  # (K*s, shard_size)
    owned = shard_rows[rng.permutation(num_shards)].reshape(K, -1)  # (K, s*shard_size)
    return [np.sort(ix).astype(np.int64) for ix in owned]


def _shard_message(n: int, K: int, s: int) -> str:
    """Explain a shard count that does not divide the number of samples, and how to fix it."""
    if n < K * s:
        return (
            f"K * shards_per_client = {K} * {s} = {K * s} shards is more than the {n} samples; "
            "lower K or shards_per_client."
        )
    return (
        f"n_samples = {n} is not divisible by K * shards_per_client = {K} * {s} = {K * s} "
        f"(remainder {n % (K * s)}); drop {n % (K * s)} samples first, choose K and "
        "shards_per_client so that their product divides n_samples, or pass drop_remainder=True."
    )


def dirichlet(
    y,
    K: int,
    alpha: float,
    *,
    rng: np.random.Generator,
    min_size: int = 1,
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Label skew by Dirichlet proportions (Yurochkin et al. 2019; cf. Hsu et al. 2019).

    For every class ``c`` draw proportions ``q_c ~ Dir(alpha * 1_K)`` and give client ``k`` the
    share ``q_{c,k}`` of class ``c``'s samples (shuffled; counts are ``floor`` of the cumulative
    shares times ``n_c``, the last client taking the rest). Small ``alpha`` (e.g. 0.1) puts each
    class on few clients; large ``alpha`` (e.g. 100) approaches an IID split. All ``q_c`` are
    redrawn until every client has at least ``min_size`` samples; after ``max_tries`` draws a
    ValueError asks to raise ``alpha`` or lower ``min_size``. Labels may be any integers.
    This per-class form (a class spread over clients) is the one of Yurochkin et al. (2019) and
    most benchmarks; Hsu et al. (2019) instead draw each client's class mix from a Dirichlet,
    with the same role for ``alpha``.

    Parameters
    ----------
    y : 1-D int array of shape ``(n,)``
        Class labels; the classes are the distinct values of ``y``.
    K : int
        Number of clients.
    alpha : float
        Concentration of the symmetric Dirichlet, ``> 0``.
    rng : numpy.random.Generator
        Draws the proportions and which samples of a class go where.
    min_size : int
        Fewest samples any client may hold (>= 1).
    max_tries : int
        How many draws of all ``q_c`` to try before giving up.

    Returns
    -------
    list of K int64 arrays
        ``parts[k]`` = the rows of client ``k``, ascending; see the module docstring.

    Raises
    ------
    ValueError
        If ``alpha <= 0``, ``min_size * K > n``, or no draw met ``min_size`` in ``max_tries``.

    Examples
    --------
    >>> y = np.repeat(np.arange(3), 20)
    >>> parts = dirichlet(y, K=4, alpha=0.5, rng=np.random.default_rng(0))
    >>> len(parts), sum(len(ix) for ix in parts), min(len(ix) for ix in parts) >= 1
    (4, 60, True)
    """
    y = check_labels("y", y, None)
    K = _check_K(K, len(y))
    alpha = check_positive("alpha", alpha)
    min_size = check_int("min_size", min_size, minimum=1)
    max_tries = check_int("max_tries", max_tries, minimum=1)
    rng = check_rng("rng", rng)
    if min_size * K > len(y):
        raise ValueError(f"min_size * K = {min_size * K} exceeds the {len(y)} samples.")
    _, c_of = np.unique(y, return_inverse=True)  # class index 0..C-1 of every sample
    n_c = np.bincount(c_of.ravel())  # (C,)
    for _ in range(max_tries):
        counts = _dirichlet_counts(n_c, K, alpha, rng)  # (C, K)
        if counts.sum(axis=0).min() >= min_size:
            members = [rng.permutation(np.flatnonzero(c_of == c)) for c in range(len(n_c))]
            return _assign(members, counts)
    raise ValueError(
        f"no Dirichlet(alpha={alpha}) draw gave every one of the K={K} clients at least "
        f"min_size={min_size} samples in max_tries={max_tries} tries; raise alpha, lower "
        "min_size or K, or raise max_tries."
    )


def _dirichlet_counts(n_c: np.ndarray, K: int, alpha: float, rng) -> np.ndarray:
    """Samples of class ``c`` that client ``k`` gets: ``(C, K)`` ints, rows summing to ``n_c``."""
    q = rng.dirichlet(np.full(K, alpha), size=len(n_c))  # (C, K), rows on the simplex
    bad = ~np.isfinite(q).all(axis=1)  # tiny alpha can underflow to 0/0 on older NumPy:
    q[bad] = np.eye(K)[rng.integers(K, size=bad.sum())]  # use the alpha -> 0 limit, one vertex
    cuts = np.floor(np.cumsum(q, axis=1) * n_c[:, None]).astype(np.int64)  # (C, K)
    cuts = np.minimum(cuts, n_c[:, None])
    cuts[:, -1] = n_c
    return np.diff(cuts, axis=1, prepend=0)


def _assign(members: list[np.ndarray], counts: np.ndarray) -> list[np.ndarray]:
    """Give client ``k`` the next ``counts[c, k]`` rows of ``members[c]`` for every class ``c``."""
    bounds = np.cumsum(counts, axis=1)[:, :-1]  # (C, K-1) split points per class
    per_class = [np.split(rows, b) for rows, b in zip(members, bounds, strict=True)]
    K = counts.shape[1]
    return [np.sort(np.concatenate([p[k] for p in per_class])).astype(np.int64) for k in range(K)]


def quantity_skew(
    n_samples: int,
    K: int,
    *,
    rng: np.random.Generator,
    power: float = 1.5,
    min_size: int = 1,
) -> list[np.ndarray]:
    """Unequal client sizes from a power law, labels IID (quantity skew, Li et al. 2020).

    Draw ``v_k ~ Pareto(power)`` with density ``power / v**(power + 1)`` on ``v >= 1``
    (``1 + rng.pareto(power)``), set ``p_k = v_k / sum_j v_j`` and give client ``k``
    ``n_k = min_size + round((n - K * min_size) * p_k)`` samples, rounded by largest remainder so
    that ``sum_k n_k = n`` exactly. The rows are shuffled before they are cut, so every client's
    labels are an IID sample. Smaller ``power`` means a heavier tail: a few very large clients.
    (NIID-Bench draws the shares ``p`` from a Dirichlet instead; the power law follows FedProx,
    Li et al. 2020, where "the number of samples on each device follows a power law".)

    Parameters
    ----------
    n_samples : int
        Number of samples ``n``.
    K : int
        Number of clients.
    rng : numpy.random.Generator
        Draws the sizes and the shuffle.
    power : float
        Tail exponent ``a > 0`` of the Pareto law (``a <= 1``: infinite mean, very skewed).
    min_size : int
        Samples every client gets before the rest is shared out (>= 1).

    Returns
    -------
    list of K int64 arrays
        ``parts[k]`` = the rows of client ``k``, ascending; see the module docstring.

    Examples
    --------
    >>> parts = quantity_skew(100, 5, rng=np.random.default_rng(0), power=1.0)
    >>> len(parts), sum(len(ix) for ix in parts), min(len(ix) for ix in parts) >= 1
    (5, 100, True)
    """
    n = check_int("n_samples", n_samples, minimum=1)
    K = _check_K(K, n)
    power = check_positive("power", power)
    min_size = check_int("min_size", min_size, minimum=1)
    rng = check_rng("rng", rng)
    if min_size * K > n:
        raise ValueError(f"min_size * K = {min_size * K} exceeds n_samples = {n}.")
    v = 1.0 + rng.pareto(power, size=K)  # (K,) Pareto draws, tail exponent `power`
    n_k = min_size + _round_to_total((n - K * min_size) * v / v.sum(), n - K * min_size)
    perm = rng.permutation(n)
    return [np.sort(ix).astype(np.int64) for ix in np.split(perm, np.cumsum(n_k)[:-1])]


def _round_to_total(x: np.ndarray, total: int) -> np.ndarray:
    """Round non-negative ``x`` (summing to ``total``) to ints summing to ``total`` exactly."""
    base = np.floor(x).astype(np.int64)
    short = total - int(base.sum())
    base[np.argsort(base - x, kind="stable")[:short]] += 1  # largest fractional parts first
    return base


def natural(groups) -> tuple[list[np.ndarray], np.ndarray]:
    """One client per distinct group id (hospital, speaker, device), as in LEAF (Caldas 2018).

    Returns ``(parts, group_names)``: ``group_names`` holds the distinct ids in sorted order and
    ``parts[k]`` the rows whose id is ``group_names[k]``. No randomness is involved.

    Parameters
    ----------
    groups : 1-D array of shape ``(n,)``
        One sortable id per sample (ints or strings), e.g. the hospital of each patient.

    Returns
    -------
    parts : list of int64 arrays
        One ascending index array per distinct group.
    group_names : array
        The distinct group ids, sorted; ``group_names[k]`` is client ``k``'s group.

    Examples
    --------
    >>> parts, names = natural(["b", "a", "b", "c"])
    >>> [ix.tolist() for ix in parts], names.tolist()
    ([[1], [0, 2], [3]], ['a', 'b', 'c'])
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.size == 0:
        raise ValueError(f"groups must be a non-empty 1-D array of ids, got shape {groups.shape}.")
    names, g_of = np.unique(groups, return_inverse=True)
    g_of = g_of.ravel()
    order = np.argsort(g_of, kind="stable").astype(np.int64)  # rows grouped, ascending within
    return np.split(order, np.cumsum(np.bincount(g_of))[:-1]), names


def parse_partition(spec: str) -> tuple[str, dict]:
    """Turn a command-line spec such as ``"dirichlet:0.5"`` into ``(name, params)``.

    Valid specs: ``iid``, ``shards`` or ``shards:<shards_per_client>``, ``dirichlet:<alpha>``,
    ``quantity`` or ``quantity:<power>``, ``natural``. Omitted parameters take the function's
    default (``shards_per_client=2``, ``power=1.5``); ``dirichlet`` needs its ``alpha``.

    Examples
    --------
    >>> parse_partition("dirichlet:0.5")
    ('dirichlet', {'alpha': 0.5})
    >>> parse_partition("shards")
    ('shards', {'shards_per_client': 2})
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string such as {_EXAMPLES}; got {type(spec).__name__}.")
    name, _, arg = spec.strip().lower().partition(":")
    if name not in _SPECS:
        raise ValueError(f"unknown partition spec {spec!r}; valid specs: {_EXAMPLES}.")
    if _SPECS[name] is None:
        if arg:
            raise ValueError(f"partition spec {name!r} takes no parameter, got {spec!r}.")
        return name, {}
    key, kind, default = _SPECS[name]
    if not arg and default is None:
        raise ValueError(f"partition spec {name!r} needs its {key}, e.g. '{name}:0.5'.")
    try:
        value = kind(arg) if arg else default
    except ValueError:
        what = "whole number" if kind is int else "number"
        raise ValueError(f"{key} in spec {spec!r} must be a {what}.") from None
    if kind is int:
        return name, {key: check_int(key, value, minimum=1)}
    return name, {key: check_positive(key, value)}


def partition(spec: str, y, K: int | None, rng: np.random.Generator, *, groups=None):
    """Split labels ``y`` over ``K`` clients as ``spec`` says (see :func:`parse_partition`).

    ``"natural"`` needs ``groups`` (one id per sample); ``K`` must then be ``None`` or the number
    of distinct groups. Returns the list of ``K`` index arrays.

    Examples
    --------
    >>> parts = partition("shards:1", np.repeat(np.arange(3), 4), 3, np.random.default_rng(0))
    >>> [len(ix) for ix in parts]
    [4, 4, 4]
    """
    name, params = parse_partition(spec)
    n = len(np.asarray(y))
    if name == "natural":
        return _natural_parts(groups, n, K)
    if groups is not None:
        raise ValueError(f"groups is only used by the 'natural' spec, not by {spec!r}.")
    if name == "iid":
        return iid(n, K, rng=rng)
    if name == "quantity":
        return quantity_skew(n, K, rng=rng, **params)
    split = shards if name == "shards" else dirichlet
    return split(y, K, rng=rng, **params)


def _natural_parts(groups, n: int, K: int | None) -> list[np.ndarray]:
    """The ``natural`` branch of :func:`partition`, with its extra checks."""
    if groups is None:
        raise ValueError("the 'natural' spec needs groups=<one group id per sample>.")
    if len(np.asarray(groups)) != n:
        raise ValueError(f"groups must have one id per sample ({n}), got {len(groups)}.")
    parts, names = natural(groups)
    if K is not None and check_int("K", K, minimum=1) != len(names):
        raise ValueError(f"K={K} but groups has {len(names)} distinct ids; pass K=None.")
    return parts


def _check_K(K, n: int) -> int:
    """Return ``K`` as an int in ``[1, n]``: every client must get at least one sample."""
    K = check_int("K", K, minimum=1)
    if K > n:
        raise ValueError(
            f"K={K} clients but only {n} samples: every client needs at least one; lower K."
        )
    return K
