"""Each silo alone, all silos pooled, or federated: the three ways a field can train, each scored
on every silo's own test set with the metric the field reads.

    for seed in seeds:
        alone_k  <- SGD on silo k's training rows only                 (scored on silo k only)
        pooled   <- SGD on the union of all silos' training rows       (as if the data could move)
        fed_A    <- run(A, one client per silo, fraction=1)            for each algorithm A
        score every model on every silo's test rows: accuracy and ROC AUC, or RMSE
    table: one row per (silo, method, metric) with the mean and std over the seeds

"Alone" and "pooled" reuse the library's own training: ``run`` of :class:`FedAvg` on a federation
of ONE client (the silo, or the union), which is plain minibatch SGD, since averaging one model
returns it. So the three methods share the step size ``eta``, the batch size ``B``, the initial
model ``w_0`` of each seed and the minibatch code.

The budget that is equal is **epochs over each training example**: every method processes each
training row ``rounds * E`` times (``E`` local epochs per round, every silo in every round, as in
cross-silo FL where the few silos are always online). Summed over the silos, the alone models, the
pooled model and each federated run therefore compute the same number of per-example gradients.
What differs is the number of steps: the pooled model takes ``ceil(n / B)`` steps per epoch in a
row, each silo ``ceil(n_k / B)`` in parallel between two averagings. (SCAFFOLD's option I adds one
full-gradient pass per round; FedProx's proximal term costs ``O(d)`` per step.)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from minifed._checks import check_batch_size, check_int
from minifed.algorithms import ALGORITHMS, Algorithm, FedAvg
from minifed.dataset import FederatedDataset
from minifed.metrics import UndefinedMetricError, accuracy, rmse, roc_auc
from minifed.models.base import Model
from minifed.simulation import run

ALONE, POOLED = "alone", "pooled"
LOWER_IS_BETTER = ("rmse",)


def compare_silos(
    silos,
    model: Model,
    *,
    algorithms=("fedavg", "fedprox", "scaffold"),
    rounds: int,
    lr: float,
    epochs: int = 1,
    batch_size: int | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    metrics=None,
    dtype=np.float32,
) -> list[dict]:
    """Train each silo alone, pooled and federated over several seeds; score per silo.

    Parameters
    ----------
    silos : dict, callable or FederatedDataset
        ``{name: (X_train, y_train, X_test, y_test)}`` (or an object holding that dict as its
        ``silos`` attribute, such as a case's task); or a function ``seed -> dict``, e.g. a
        task builder that redraws its train/test split per seed from
        ``minifed.seeding.derived_rng(seed, DATA)``, so that the spread over seeds also covers
        the split; or a federation with per-client test sets
        (:meth:`FederatedDataset.from_silos`). Every silo needs test rows.
    model : Model
        The model structure (e.g. ``LogisticRegression(p)``), shared by every method.
    algorithms : sequence or dict
        Federated algorithms: names of :data:`minifed.algorithms.ALGORITHMS` (built with ``lr``,
        ``epochs``, ``batch_size`` and their default settings) or :class:`Algorithm` objects
        (labelled by class name), or a dict ``{label: name or Algorithm}``. Each must run
        ``epochs`` local epochs per round (the equal budget).
    rounds, lr, epochs, batch_size
        Rounds ``T``, step size ``eta``, local epochs ``E`` per round and batch size ``B``
        (``None``: full batch). Every method passes ``T * E`` times over each training row.
    seeds : sequence of int
        One run of every method per seed (``run(..., seed=seed)``: same seed, same table).
    metrics : sequence of str or dict, optional
        Names among ``"accuracy"``, ``"roc_auc"``, ``"rmse"``, or ``{label: name or f}`` with
        ``f(y_true, scores) -> float`` (see :func:`model_scores`), e.g.
        ``{"recall@P0.5": functools.partial(recall_at_precision, precision=0.5)}``. Default:
        accuracy and ROC AUC for a binary classifier, accuracy for more classes, RMSE for a
        regression.

    Returns
    -------
    list of dict
        One row per silo, method (``"alone"``, ``"pooled"``, then the algorithms' labels) and
        metric: ``{"silo", "method", "metric", "mean", "std", "n", "values"}``, with ``values``
        the per-seed scores, ``n`` how many are defined (a metric is NaN where it has no value,
        e.g. ROC AUC on a test set with one class), ``mean`` and ``std`` (``ddof=1``; 0 for one
        seed) over those. :func:`format_markdown` prints it.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a minifed Model, got {type(model).__name__}.")
    batch_size = check_batch_size("batch_size", batch_size)
    epochs = check_int("epochs", epochs, minimum=1)
    methods = {ALONE: None, POOLED: FedAvg(model, lr, epochs, batch_size)}
    methods.update(_algorithms(algorithms, model, lr, epochs, batch_size))
    rounds, seeds = check_int("rounds", rounds, minimum=1), _check_seeds(seeds)
    metrics = _metrics(metrics, model)
    silos = _silo_dict(silos)
    if isinstance(silos, Mapping):  # the same silos for every seed: stored once
        silos = FederatedDataset.from_silos(silos, dtype=dtype, name="silos")
    values, names = {}, None  # values[(silo, method, metric)]: one score per seed
    for seed in seeds:
        data, names = _federation(silos, seed, names, dtype)
        models = train_methods(data, methods, rounds, seed)
        for k, silo in enumerate(names):
            for method, W in models.items():
                for metric, v in score(model, W[k], *data.client_test(k), metrics).items():
                    values.setdefault((silo, method, metric), []).append(v)
    return [_summary(*key, v) for key, v in values.items()]


def train_methods(data: FederatedDataset, methods: dict, rounds: int, seed: int) -> dict:
    """``{method: [w for silo k]}``: the model that method gives silo ``k`` (a silo's own model
    for ``"alone"``, the one shared model otherwise), each trained by ``run`` for ``rounds``.

    ``methods`` is ``{"alone": None, "pooled": sgd, label: Algorithm, ...}`` where ``sgd`` (a
    :class:`FedAvg`) trains "alone" and "pooled" on one-client federations: plain SGD.
    """
    solo = methods[POOLED]
    train = {"fraction": 1.0, "seed": seed, "eval_every": rounds, "eval_train": False,
             "progress": False}  # fmt: skip
    out = {ALONE: []}
    for k in range(data.K):
        alone = _one_client(*data.client(k), *data.client_test(k), f"alone {k}")
        out[ALONE].append(run(solo, alone, rounds, **train)[0])
    pooled = _one_client(data.X, data.y, data.X_test, data.y_test, "pooled")
    out[POOLED] = [run(solo, pooled, rounds, **train)[0]] * data.K
    for label, algorithm in methods.items():
        if label not in (ALONE, POOLED):
            out[label] = [run(algorithm, data, rounds, **train)[0]] * data.K
    return out


def _one_client(X, y, X_test, y_test, name: str) -> FederatedDataset:
    """A federation of one client holding ``(X, y)``: views of the given arrays, no copy."""
    return FederatedDataset(X, y, [np.arange(len(y))], X_test, y_test, X.dtype, name, copy=False)


def model_scores(model: Model, w: np.ndarray, X) -> np.ndarray:
    """What the metrics read: the predictions ``yhat`` of a regression; for two classes one
    score per row, larger meaning class 1 (the logit ``s = x . W + b``, or ``z_1 - z_0`` from
    two logits; the model predicts 1 exactly when ``s > 0``); else the logits ``(n, C)``."""
    out = model.forward(w, X)
    if model.task == "regression" or out.ndim == 1:
        return out
    return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out


def score(model: Model, w, X, y, metrics: dict[str, Callable]) -> dict[str, float]:
    """``{metric: value}`` of ``w`` on ``(X, y)``; NaN where the metric is undefined there."""
    s = model_scores(model, w, X)
    values = {}
    for name, f in metrics.items():
        try:
            values[name] = float(f(y, s))
        except UndefinedMetricError:
            values[name] = float("nan")
    return values


def predicted_class(scores: np.ndarray) -> np.ndarray:
    """Class labels from :func:`model_scores`: ``s > 0`` for one score, ``argmax`` of logits."""
    return scores.argmax(axis=1) if scores.ndim == 2 else (scores > 0).astype(np.int64)


def format_markdown(rows: list[dict], digits: int = 3) -> str:
    """The table as Markdown: one line per silo and metric, one column per method, each cell
    ``mean ± std`` over the seeds (``n/a`` where undefined).

    >>> rows = [{"silo": "a", "method": m, "metric": "accuracy", "mean": v, "std": 0.01}
    ...         for m, v in (("alone", 0.7), ("pooled", 0.8))]
    >>> print(format_markdown(rows, digits=2))
    | silo | metric | alone | pooled |
    |---|---|---|---|
    | a | accuracy | 0.70 ± 0.01 | 0.80 ± 0.01 |
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cells = {(r["silo"], r["metric"], r["method"]): r for r in rows}
    lines = ["| silo | metric | " + " | ".join(methods) + " |", "|---" * (len(methods) + 2) + "|"]
    for silo, metric in dict.fromkeys((r["silo"], r["metric"]) for r in rows):
        row = [_cell(cells.get((silo, metric, m)), digits) for m in methods]
        lines.append(f"| {silo} | {metric} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def silo_gains(rows: list[dict], metric: str, method: str, baseline: str = ALONE) -> dict:
    """``{silo: gain}`` of ``method`` over ``baseline`` in mean ``metric`` (positive = better:
    ``mean_method - mean_baseline``, the opposite for metrics in ``LOWER_IS_BETTER``)."""
    means = {(r["silo"], r["method"]): r["mean"] for r in rows if r["metric"] == metric}
    if not means:
        raise ValueError(f"no metric {metric!r} in the table.")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    silos = dict.fromkeys(silo for silo, _ in means)
    for who in (method, baseline):
        if (next(iter(silos)), who) not in means:
            raise ValueError(f"no method {who!r} in the table.")
    return {s: sign * (means[(s, method)] - means[(s, baseline)]) for s in silos}


def _cell(row: dict | None, digits: int) -> str:
    if row is None or not np.isfinite(row["mean"]):
        return "n/a"
    return f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"


def _summary(silo, method, metric, values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    ok = v[np.isfinite(v)]
    mean = float(ok.mean()) if ok.size else float("nan")
    std = float(ok.std(ddof=1)) if ok.size > 1 else (0.0 if ok.size else float("nan"))
    return {"silo": silo, "method": method, "metric": metric, "mean": mean, "std": std,
            "n": int(ok.size), "values": v.tolist()}  # fmt: skip


def _federation(silos, seed: int, names, dtype) -> tuple[FederatedDataset, list[str]]:
    """The silos of ``seed`` as a federation with per-silo test sets, and the silos' names (the
    same for every seed)."""
    if isinstance(silos, FederatedDataset):
        if silos.test_offsets is None:
            raise ValueError(
                "silos is a FederatedDataset without per-client test sets; build it with "
                "FederatedDataset.from_silos(...)."
            )
        return silos, silos.client_names or [f"client {k}" for k in range(silos.K)]
    given = _silo_dict(silos(seed) if callable(silos) else silos)
    data = FederatedDataset.from_silos(given, dtype=dtype, name="silos")
    if names is not None and data.client_names != names:
        raise ValueError(
            f"silos(seed) must give the same silos for every seed: {names} for the first seed, "
            f"{data.client_names} for seed {seed}."
        )
    return data, data.client_names


def _silo_dict(silos):
    """``silos.silos`` when it holds the silos' dict (a case's task object), else ``silos``."""
    inner = getattr(silos, "silos", None)
    return inner if isinstance(inner, Mapping) else silos


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, int | np.integer) or not isinstance(seeds, Sequence | np.ndarray):
        raise TypeError(
            f"seeds must be a sequence of whole numbers, e.g. (0, 1, 2); got {seeds!r}."
        )
    if len(seeds) == 0:
        raise ValueError("seeds is empty: give at least one seed.")
    return [check_int("seeds[i]", s, minimum=0) for s in seeds]


def _algorithms(algorithms, model, lr, epochs, batch_size) -> dict[str, Algorithm]:
    """``{label: Algorithm}`` from names, objects or a ``{label: name or object}`` dict."""
    if isinstance(algorithms, str | Algorithm):
        algorithms = [algorithms]
    pairs = (
        algorithms.items() if isinstance(algorithms, Mapping) else [(None, a) for a in algorithms]
    )
    out = {}
    for label, a in pairs:
        if isinstance(a, str):
            a = _build(a, model, lr, epochs, batch_size)
        if not isinstance(a, Algorithm):
            raise TypeError(f"algorithms must hold names or Algorithm objects, got {a!r}.")
        label = type(a).__name__ if label is None else str(label)
        if label in out or label in (ALONE, POOLED):
            raise ValueError(f"two methods are labelled {label!r}: give a dict {{label: ...}}.")
        if a.model != model:
            raise ValueError(f"algorithm {label!r} trains {a.model!r}, not the model {model!r}.")
        if getattr(a, "epochs", 1) != epochs:
            raise ValueError(
                f"algorithm {label!r} runs {getattr(a, 'epochs', 1)} local epochs per round but "
                f"epochs={epochs}: the methods would not pass equally often over each example. "
                f"Build it with epochs={epochs}, or pass epochs={getattr(a, 'epochs', 1)}."
            )
        out[label] = a
    if not out:
        raise ValueError("algorithms is empty: give at least one, e.g. ('fedavg',).")
    return out


def _build(name: str, model, lr, epochs, batch_size) -> Algorithm:
    """``ALGORITHMS[name]`` with ``lr`` and, if it takes them, ``epochs`` and ``batch_size``."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose among {sorted(ALGORITHMS)}.")
    cls = ALGORITHMS[name]
    accepted = inspect.signature(cls).parameters
    local = {"epochs": epochs, "batch_size": batch_size}
    return cls(model, lr=lr, **{k: v for k, v in local.items() if k in accepted})


def _metrics(metrics, model: Model) -> dict[str, Callable]:
    """``{label: f(y_true, scores)}``, checked against the model's task."""
    binary = model.task == "classification" and model.num_classes == 2
    if metrics is None:
        metrics = ["rmse"] if model.task == "regression" else ["accuracy"] + ["roc_auc"] * binary
    if isinstance(metrics, str):
        metrics = [metrics]
    pairs = metrics.items() if isinstance(metrics, Mapping) else [(m, m) for m in metrics]
    builtin = {
        "accuracy": (model.task == "classification", lambda y, s: accuracy(y, predicted_class(s))),
        "roc_auc": (binary, roc_auc),
        "rmse": (model.task == "regression", rmse),
    }
    out = {}
    for label, f in pairs:
        if isinstance(f, str):
            if f not in builtin:
                raise ValueError(f"unknown metric {f!r}; choose among {sorted(builtin)}.")
            if not builtin[f][0]:
                raise ValueError(f"metric {f!r} does not apply to {model!r} ({model.task}).")
            f = builtin[f][1]
        if not callable(f):
            raise TypeError(f"metric {label!r} must be a name or a function f(y_true, scores).")
        out[str(label)] = f
    return out
