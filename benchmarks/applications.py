"""Federated learning in the field: four real data sets, each silo alone, pooled and federated.

    python benchmarks/applications.py                       # every case, 5 seeds (6-8 min)
    python benchmarks/applications.py --cases heart credit  # some cases
    python benchmarks/applications.py --seeds 3             # seeds 0, 1, 2 for every case
    python benchmarks/applications.py --quick               # slices, 1 seed (the test's path)
    python benchmarks/applications.py --search              # the validation search (~15 min)

The data come from ``$MINIFED_DATA`` or the cache, else they are downloaded (see the README's
Data section). A run prints every table and writes ``figures/applications_table.md``, one figure
per case ``figures/applications_<case>.png`` (heart, air, engines, credit) and
``figures/applications_summary.png``; ``--out DIR`` writes them elsewhere (``--quick`` writes
nothing unless given ``--out``). ``--search`` prints the search and writes
``figures/applications_search.md``.

The cases (the silos are built by :mod:`minifed.applications`, whose docstrings state every
preprocessing step):

- ``heart``: UCI Heart Disease, 4 hospitals, FLamby's Fed-Heart-Disease split (fixed; 199/104,
  172/89, 30/16, 85/45 rows), features standardized per hospital; logistic regression.
  ``heart-random``: the same with a random stratified split of the same sizes per seed, so the
  spread covers the split, not only the training order.
- ``air``: Beijing, 12 monitoring stations; is the hour's PM2.5 above 75 ug/m^3, from the same
  hour's weather and time; trained on 2013-03..2016-02, tested on the last year; logistic
  regression.
- ``engines``: NASA C-MAPSS, the four fleets FD001-FD004; remaining useful life (capped at 125
  cycles) from the mean and slope of each sensor over the last 30 cycles, normalized per
  operating condition; scored by RMSE on the official test engines. A one-hidden-layer MLP
  (32 ReLU units, :class:`MLPRegression` below: minifed's MLP is a classifier) was clearly
  better than linear regression on the validation split (validation RMSE 14.5 against 17.9 for
  the best linear candidate, mean over the five methods), so it is the model.
- ``credit-education`` and ``credit-dirichlet``: Taiwan credit-card default. The data have no
  bank column, so the silos are built: 4 customer segments by education (a random stratified
  80/20 split per seed), or 5 "banks" with a Dirichlet(0.5) label skew (one fixed draw, so a
  bank is the same bank for every seed); logistic regression.

Methods (:func:`minifed.applications.compare_silos`): each silo alone, all silos pooled, and
FedAvg, FedProx and SCAFFOLD (option II, server step 1) with every silo in every round; each is
scored on every silo's own test set. One setting ``(lr, T, E, B)`` per case is shared by all
methods, so every method passes ``T * E`` times over each training row; FedProx's ``mu`` is its
own. Seeds 0..4: they draw the initial model, the minibatch order and, for ``heart-random`` and
``credit-education``, the train/test split. The logistic regressions start from zero, so on a
fixed split their spread over seeds is the minibatch order only (near 0 on the large data sets);
the engines' MLP starts from a random draw.

Metrics: accuracy (threshold 0.5 on the predicted probability) and ROC AUC for the
classifications, plus recall at precision 0.5 for credit (of the defaulters, the share caught
when at least half of the flagged clients default); RMSE in cycles for the engines. The summary
compares the median silo (median over the silos of each method's mean over seeds) in ROC AUC
(RMSE for engines) and calls a silo a gainer (loser) when the best federated method beats
(trails) its model alone by more than 0.01 AUC (0.5 cycles) and more than the two spreads over
seeds added; the best federated method is the one with the best median silo.

How the settings were chosen (``--search``; run it to reproduce): for each case a grid of
``(lr, T, E, B)`` (``GRIDS``; for the engines also the model), every method trained on a validation
split of the training rows only (``VALIDATION``: a stratified quarter of each hospital's rows, 3
draws; the last third of each station's training hours, about its third year; the last fifth of
each fleet's training engines, whole engines; a stratified fifth of each segment's or bank's
rows), seed 0. The score is the mean over the five methods of the mean over silos of the
validation AUC (minus the RMSE for the engines; a diverged candidate is out), so no method is
favoured. Then FedProx's ``mu`` in {0.001, 0.01, 0.1, 1, 10} at that setting, scored by FedProx
alone (ties: the smallest). Where the best candidate sat at an edge of its grid by more than the
noise, the grid was extended once in that direction (the "extension" sub-grids): heart towards
smaller steps and fewer rounds (the best, lr 0.003, T 20, B 32, is inside the extended grid; E = 4
lost everywhere), air towards larger steps and smaller batches (lr 0.3, B 64 stay; T = 15 stays
at the edge: from T = 5 to 15 the score rose by 0.003, and 30 rounds would double the run's
longest part), the engines' MLP towards smaller steps and
more rounds (lr 0.0003, T = 40 is again at the edge, 0.4 RMSE better than T = 20; not extended
further, for time), mu towards 10. Credit's grids are flat (every candidate within 0.005 AUC),
so their edges were not extended. With E = 1, mu moves FedProx's validation score by at most
0.007 AUC on heart and credit and 0.2 RMSE on the engines; on air mu = 1 costs 0.05 AUC and
mu = 10 diverges. The chosen values are in ``SETTINGS``; the full search, with every candidate's
score, is in ``figures/applications_search.md``.

Test sets are never used for a choice. Standardization statistics come from each silo's whole
training part, validation rows included (features, not labels).

Timing on a 2-core machine shared with other jobs: 366-446 s for the run in two measurements
(air 132-175 s, engines 208-243 s, the rest 21-23 s), 15 minutes for the search.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from minifed.algorithms import ALGORITHMS
from minifed.applications import (
    air_silos,
    compare_silos,
    credit_silos,
    engine_silos,
    format_markdown,
    heart_silos,
)
from minifed.applications._common import stratified_split
from minifed.applications.compare import score
from minifed.data import BEIJING_STATIONS
from minifed.dataset import FederatedDataset
from minifed.metrics import recall_at_precision, rmse, roc_auc
from minifed.models import LinearRegression, LogisticRegression
from minifed.models.base import Model
from minifed.seeding import DATA, derived_rng
from minifed.simulation import DivergenceError, run

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
FEDERATED = ("FedAvg", "FedProx", "SCAFFOLD")
METHODS = ("alone", "pooled", *FEDERATED)
RECALL = "recall@P0.5"  # recall at precision 0.5
EVEN = {"roc_auc": 0.01, "rmse": 0.5}  # a gain or loss smaller than this is "even"


# ----- the one model minifed lacks: a small MLP for regression ---------------------------------


class MLPRegression(Model):
    """One hidden layer of ``h`` ReLU units and a linear output, squared loss.

    ``a_i = relu(x_i W_1 + b_1)``, ``yhat_i = a_i . w_2 + b_2``, ``f_i = 0.5 (yhat_i - y_i)^2``.
    Backward, with ``r_i = yhat_i - y_i`` and ``d_i = r_i / n``: ``dw_2 = A^T d``,
    ``db_2 = sum_i d_i``, ``dZ = (d w_2^T) * 1(Z > 0)``, ``dW_1 = X^T dZ``, ``db_1 = sum_i dZ_i``.
    """

    task = "regression"

    def __init__(self, num_features: int, hidden: int, l2: float = 0.0):
        super().__init__(l2)
        self.num_features, self.hidden = num_features, hidden

    def _layout(self):
        p, h = self.num_features, self.hidden
        return [("W1", (p, h)), ("b1", (h,)), ("w2", (h,)), ("b2", (1,))]

    def init(self, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
        """He-uniform ``W_1``, ``w_2`` (``U(-a, a)``, ``a = sqrt(6 / fan_in)``); zero biases."""
        w = super().init(rng, dtype)  # zeros, rng checked
        P = self.unflatten(w)
        for name, fan_in in (("W1", self.num_features), ("w2", self.hidden)):
            a = np.sqrt(6.0 / fan_in)
            P[name][...] = rng.uniform(-a, a, size=P[name].shape)
        return w

    def _forward(self, w, X):
        P = self.unflatten(w)
        A = np.maximum(X @ P["W1"] + P["b1"], 0)  # (n, h)
        return A @ P["w2"] + P["b2"]  # (n,)

    def _example_losses(self, out, y):
        return 0.5 * (out - y) ** 2

    def _data_loss_and_grad(self, w, X, y, g):
        P, G = self.unflatten(w), self.unflatten(g)
        A = np.maximum(X @ P["W1"] + P["b1"], 0)  # (n, h)
        r = A @ P["w2"] + P["b2"] - y  # (n,) residuals
        d = r / len(y)  # (n,) dF/dyhat
        G["w2"][...], G["b2"][...] = A.T @ d, d.sum()
        dZ = np.outer(d, P["w2"]) * (A > 0)  # (n, h)
        G["W1"][...], G["b1"][...] = X.T @ dZ, dZ.sum(axis=0)
        return 0.5 * float(r @ r) / len(y)


# ----- the cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One training setting, shared by every method: step ``lr``, rounds ``T``, local epochs
    ``E``, batch ``B``; FedProx's ``mu``; the model (``"linear"`` or ``"mlp:H"``)."""

    lr: float
    rounds: int
    epochs: int
    batch_size: int
    mu: float = 0.01
    model: str = "linear"

    def describe(self) -> str:
        return (f"{self.model}, lr={self.lr}, T={self.rounds}, E={self.epochs}, "
                f"B={self.batch_size}, FedProx mu={self.mu}")  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One table: how its silos are built for a seed (``quick``: a slice), and how scored."""

    key: str
    case: str  # the figure it belongs to
    title: str
    build: Callable[..., dict]  # (seed, quick) -> {silo: (X_train, y_train, X_test, y_test)}
    per_seed: bool  # a new split per seed (else the same silos for every seed)
    task: str = "classification"
    primary: str = "roc_auc"
    metrics: tuple = ("accuracy", "roc_auc")
    validation: str = "stratified:0.25"
    draws: int = 1  # validation draws averaged in the search
    extra: dict = field(default_factory=dict)


def _heart(seed: int, quick: bool, split: str = "flamby") -> dict:
    rng = derived_rng(seed, DATA) if split == "random" else None
    return heart_silos(split=split, rng=rng).silos


def _air(seed: int, quick: bool) -> dict:
    stations = BEIJING_STATIONS[:3] if quick else None
    silos = air_silos(stations=stations).silos
    return _slice(silos, 10, 10) if quick else silos


def _engines(seed: int, quick: bool) -> dict:
    silos = engine_silos().silos
    return _slice(silos, 20, 1) if quick else silos


def _credit(seed: int, quick: bool, split: str = "education") -> dict:
    draw = seed if split == "education" else 0  # the banks stay the same banks
    silos = credit_silos(rng=derived_rng(draw, DATA), split=split).silos
    return _slice(silos, 5, 1) if quick else silos


def _slice(silos: dict, train_step: int, test_step: int) -> dict:
    """Every ``train_step``-th training row and ``test_step``-th test row of each silo."""
    return {k: (X[::train_step], y[::train_step], Xt[::test_step], yt[::test_step])
            for k, (X, y, Xt, yt) in silos.items()}  # fmt: skip


RECALL_METRIC = {RECALL: functools.partial(recall_at_precision, precision=0.5)}
VARIANTS = {
    v.key: v
    for v in (
        Variant("heart", "heart", "Heart disease by hospital (FLamby's split)", _heart, False,
                draws=3),
        Variant("heart-random", "heart", "Heart disease by hospital (random split per seed)",
                functools.partial(_heart, split="random"), True, draws=3),
        Variant("air", "air", "Beijing air by station (PM2.5 > 75 ug/m^3)", _air, False,
                validation="temporal:0.3333"),
        Variant("engines", "engines", "C-MAPSS engines by fleet (RUL)", _engines,
                False, task="regression", primary="rmse", metrics=("rmse",),
                validation="engines:0.2"),
        Variant("credit-education", "credit", "Credit default by education segment",
                _credit, True, metrics=("accuracy", "roc_auc"), validation="stratified:0.2",
                extra=RECALL_METRIC),
        Variant("credit-dirichlet", "credit", "Credit default, Dirichlet(0.5) banks",
                functools.partial(_credit, split="dirichlet"), False,
                validation="stratified:0.2", extra=RECALL_METRIC),
    )
}  # fmt: skip
CASES = {"heart": ("heart", "heart-random"), "air": ("air",), "engines": ("engines",),
         "credit": ("credit-education", "credit-dirichlet")}  # fmt: skip

# Chosen by --search on validation splits of the training rows (figures/applications_search.md);
# heart-random takes heart's.
HEART = Setting(lr=0.003, rounds=20, epochs=1, batch_size=32, mu=0.001)
SETTINGS = {
    "heart": HEART,
    "heart-random": HEART,
    "air": Setting(lr=0.3, rounds=15, epochs=1, batch_size=64, mu=0.001),
    "engines": Setting(lr=0.0003, rounds=40, epochs=1, batch_size=64, mu=1.0, model="mlp:32"),
    "credit-education": Setting(lr=0.01, rounds=5, epochs=1, batch_size=32, mu=1.0),
    "credit-dirichlet": Setting(lr=0.1, rounds=20, epochs=1, batch_size=128, mu=1.0),
}
SEEDS = 5  # seeds 0 .. 4
QUICK_ROUNDS = 5  # --quick: at most 5 rounds, one seed, slices of the data


# ----- training and scoring ---------------------------------------------------------------------


def make_model(variant: Variant, setting: Setting, d: int) -> Model:
    """Logistic or linear regression (``"linear"``), or :class:`MLPRegression` (``"mlp:H"``)."""
    if setting.model.startswith("mlp:"):
        if variant.task != "regression":
            raise ValueError("mlp:H is the regression MLP; the classifications use 'linear'.")
        return MLPRegression(d, int(setting.model[4:]))
    return LinearRegression(d) if variant.task == "regression" else LogisticRegression(d)


def algorithms(model: Model, s: Setting) -> dict:
    """FedAvg, FedProx (with ``mu``) and SCAFFOLD (option II, server step 1) at setting ``s``."""
    common = {"lr": s.lr, "epochs": s.epochs, "batch_size": s.batch_size}
    return {
        "FedAvg": ALGORITHMS["fedavg"](model, **common),
        "FedProx": ALGORITHMS["fedprox"](model, mu=s.mu, **common),
        "SCAFFOLD": ALGORITHMS["scaffold"](model, option="II", server_lr=1.0, **common),
    }


def run_variant(variant: Variant, setting: Setting, seeds, quick: bool = False) -> list[dict]:
    """``compare_silos`` rows of one variant: every silo, method and metric, over ``seeds``."""
    if variant.per_seed:
        silos = functools.partial(variant.build, quick=quick)
        d = next(iter(silos(seeds[0]).values()))[0].shape[1]
    else:
        silos = variant.build(seeds[0], quick)
        d = next(iter(silos.values()))[0].shape[1]
    model = make_model(variant, setting, d)
    metrics = {m: m for m in variant.metrics} | variant.extra
    return compare_silos(
        silos,
        model,
        algorithms=algorithms(model, setting),
        rounds=setting.rounds,
        lr=setting.lr,
        epochs=setting.epochs,
        batch_size=setting.batch_size,
        seeds=list(seeds),
        metrics=metrics,
    )


# ----- reading the tables -----------------------------------------------------------------------


def _sign(metric: str) -> float:
    return -1.0 if metric == "rmse" else 1.0  # +: better


def _cell(rows, metric):
    """``{(silo, method): row}`` of one metric."""
    return {(r["silo"], r["method"]): r for r in rows if r["metric"] == metric}


def median_silo(rows: list[dict], metric: str, method: str) -> float:
    """Median over the silos of ``method``'s mean ``metric``, over the silos where the metric
    is defined for every seed and method (e.g. not a Swiss AUC from 1 of 5 test draws)."""
    cell = _cell(rows, metric)
    partial = {s for (s, _), r in cell.items() if r["n"] < len(r["values"])}
    means = [r["mean"] for (s, m), r in cell.items() if m == method and s not in partial]
    return float(np.median(means)) if means else float("nan")


def best_federated(rows: list[dict], metric: str) -> str:
    """The federated method whose median silo is best in ``metric``."""
    return max(FEDERATED, key=lambda m: _sign(metric) * median_silo(rows, metric, m))


def gains(rows: list[dict], metric: str, method: str) -> dict[str, tuple[float, float]]:
    """``{silo: (mean, std)}`` over the seeds of ``method``'s gain over ``alone`` in ``metric``
    (positive = better), from the per-seed scores: the seeds pair the two runs. NaN where the
    metric is undefined for some seed (e.g. AUC on a test set that drew one class only)."""
    cell, out = _cell(rows, metric), {}
    for silo in dict.fromkeys(s for s, _ in cell):
        diff = _sign(metric) * (np.array(cell[(silo, method)]["values"])
                                - np.array(cell[(silo, "alone")]["values"]))  # fmt: skip
        std = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        out[silo] = (float(diff.mean()), std)  # NaN if any seed is
    return out


def verdicts(rows: list[dict], metric: str, method: str) -> dict[str, list[str]]:
    """Silos that gain, lose or stay even: a gain beyond ``EVEN[metric]`` and beyond the two
    spreads over seeds added counts."""
    cell, out = _cell(rows, metric), {"gain": [], "lose": [], "even": [], "n/a": []}
    for silo, (g, _) in gains(rows, metric, method).items():
        spread = cell[(silo, method)]["std"] + cell[(silo, "alone")]["std"]
        if not np.isfinite(g):
            out["n/a"].append(silo)
        elif abs(g) > max(EVEN[metric], spread):
            out["gain" if g > 0 else "lose"].append(silo)
        else:
            out["even"].append(silo)
    return out


def summary_row(variant: Variant, rows: list[dict]) -> dict:
    """The case in one line: median silo alone / pooled / best federated; who gains, who loses."""
    metric = variant.primary
    best = best_federated(rows, metric)
    return {"variant": variant, "metric": metric, "best": best,
            "alone": median_silo(rows, metric, "alone"),
            "pooled": median_silo(rows, metric, "pooled"),
            "federated": median_silo(rows, metric, best),
            "silos": len(gains(rows, metric, best)), **verdicts(rows, metric, best)}  # fmt: skip


def _names(silos: list[str], K: int) -> str:
    if not silos:
        return "none"
    return ", ".join(silos) if len(silos) <= 4 else f"{len(silos)} of {K}"


def summary_table(summaries: list[dict]) -> str:
    """The Markdown summary: one line per variant."""
    lines = ["| case | silos | metric | alone | pooled | best federated | gain | lose |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in summaries:
        label = "ROC AUC" if s["metric"] == "roc_auc" else "RMSE (cycles)"
        cells = [s["variant"].title, str(s["silos"]), label, f"{s['alone']:.3f}",
                 f"{s['pooled']:.3f}", f"{s['federated']:.3f} ({s['best']})",
                 _names(s["gain"], s["silos"]), _names(s["lose"], s["silos"])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gains_text(s: dict) -> str:
    """Who gains and who loses from the best federated method, in words."""
    parts = [f"{word}: {', '.join(s[key]) or 'none'}"
             for key, word in (("gain", "gain"), ("lose", "lose"), ("even", "even"),
                               ("n/a", "undefined"))
             if s[key] or key in ("gain", "lose")]  # fmt: skip
    return f"Against each silo alone, {s['best']} (best median silo): " + "; ".join(parts) + "."


# ----- FLamby's Fed-Heart-Disease, beside ours --------------------------------------------------

# Per-center test accuracy, mean and std over FLamby's 5 seeds (42-46), computed from its
# recorded results: owkin/FLamby, flamby/results/results_benchmark_fed_heart_disease/
# heart_seed42.csv .. heart_seed46.csv at commit edacf54 (the data that its
# flamby/results/plot_results.py draws as the paper's benchmark bars, which average over the
# centers). "alone" is FLamby's "Local k" tested on center k; FedAvg, FedProx and SCAFFOLD are
# its "FedAvg100", "FedProx100", "Scaffold100" (100 local updates per round).
FLAMBY_CENTERS = ("cleveland", "hungarian", "switzerland", "va")
FLAMBY_HEART = {
    "alone": ((0.746, 0.016), (0.746, 0.006), (0.725, 0.122), (0.702, 0.051)),
    "pooled": ((0.783, 0.011), (0.764, 0.000), (0.750, 0.000), (0.644, 0.000)),
    "FedAvg": ((0.731, 0.022), (0.719, 0.033), (0.650, 0.114), (0.640, 0.051)),
    "FedProx": ((0.731, 0.022), (0.719, 0.033), (0.650, 0.114), (0.640, 0.051)),
    "SCAFFOLD": ((0.727, 0.019), (0.719, 0.033), (0.650, 0.114), (0.640, 0.051)),
}


def flamby_table(rows: list[dict]) -> str:
    """Test accuracy per center, minifed on FLamby's split against FLamby's recorded results."""
    cell = _cell(rows, "accuracy")
    head = "| method | source | " + " | ".join(FLAMBY_CENTERS) + " | mean of 4 |"
    lines = [head, "|---" * (len(FLAMBY_CENTERS) + 3) + "|"]
    for method, theirs in FLAMBY_HEART.items():
        ours = [(cell[(c, method)]["mean"], cell[(c, method)]["std"]) for c in FLAMBY_CENTERS]
        for source, values in (("minifed", ours), ("FLamby", theirs)):
            text = [f"{m:.3f} ± {s:.3f}" for m, s in values]
            mean = np.mean([m for m, _ in values])
            lines.append(f"| {method} | {source} | " + " | ".join(text) + f" | {mean:.3f} |")
    return "\n".join(lines)


# ----- figures ----------------------------------------------------------------------------------

METRIC_TITLES = {"accuracy": "accuracy", "roc_auc": "ROC AUC", "rmse": "RMSE (cycles)",
                 RECALL: "recall at precision 0.5"}  # fmt: skip


def case_figure(case: str, tables: dict[str, list[dict]], path: Path) -> Path:
    """One panel per variant of ``case`` and metric (``plot_silos``): a row per variant, or a
    row per panel when the silos are many."""
    from matplotlib.figure import Figure

    from minifed.plot import plot_silos

    keys = [k for k in CASES[case] if k in tables]
    panels = [(k, m) for k in keys for m in dict.fromkeys(r["metric"] for r in tables[k])]
    K = max(len({r["silo"] for r in tables[k]}) for k in keys)
    ncols = 1 if K > 6 else -(-len(panels) // len(keys))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(max(5.0, 1.0 + 0.8 * K) * ncols, 3.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (key, metric) in zip(axes, panels, strict=False):
        plot_silos(tables[key], metric, ax=ax, methods=list(METHODS))
        title = f"{VARIANTS[key].title}: {METRIC_TITLES.get(metric, metric)}"
        ax.set_title(title, fontsize="medium")
        if K > 6:  # long names side by side: slanted
            ax.set_xticks(ax.get_xticks(), ax.get_xticklabels(), rotation=25, ha="right")
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    return _save(fig, path)


def summary_figure(tables: dict[str, list[dict]], path: Path) -> Path:
    """One panel per variant: each silo's gain over training alone, best federated method (bars,
    spread over seeds) and pooled (dots); above 0 is better."""
    from matplotlib.figure import Figure

    keys = list(tables)
    ncols = min(3, len(keys))
    nrows = -(-len(keys) // ncols)
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, key in zip(axes, keys, strict=False):
        metric = VARIANTS[key].primary
        best = best_federated(tables[key], metric)
        fed, pooled = gains(tables[key], metric, best), gains(tables[key], metric, "pooled")
        silos = list(fed)
        x = np.arange(len(silos))
        ax.bar(x, [fed[s][0] for s in silos], yerr=[fed[s][1] for s in silos], capsize=3,
               color="C0", label=f"{best} - alone")  # fmt: skip
        ax.plot(x, [pooled[s][0] for s in silos], "s", color="0.15", label="pooled - alone")
        ax.axhline(0, color="grey", linewidth=0.8)
        for i, silo in enumerate(silos):
            if not np.isfinite(fed[silo][0]):
                ax.annotate("undefined", (i, 0), ha="center", va="bottom", fontsize="small")
        ax.set_xticks(x, silos, rotation=30 if len(silos) > 5 else 0, ha="right"
                      if len(silos) > 5 else "center", fontsize="small")  # fmt: skip
        unit = "RMSE decrease (cycles)" if metric == "rmse" else "ROC AUC gain"
        ax.set_ylabel(unit)
        ax.set_title(VARIANTS[key].title, fontsize="medium")
        ax.legend(fontsize="small")
    for ax in axes[len(keys) :]:
        ax.set_axis_off()
    fig.suptitle("What each silo gains from federation (positive: better than alone)")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


# ----- the search on validation splits ----------------------------------------------------------

GRIDS = {  # sub-grids: every combination of a sub-grid's values is a candidate (once)
    "heart": [
        {"lr": (0.01, 0.03, 0.1), "rounds": (20, 60), "epochs": (1, 4), "batch_size": (8, 32)},
        # extension: the first grid's best sat at its smallest lr and T, largest B
        {"lr": (0.001, 0.003, 0.01), "rounds": (5, 10, 20), "epochs": (1,),
         "batch_size": (32, 128)},
    ],
    "air": [
        {"lr": (0.03, 0.1, 0.3), "rounds": (5, 15), "epochs": (1,), "batch_size": (64, 256)},
        # extension: best at the largest lr and T, smallest B; more rounds cost too much time
        {"lr": (0.3, 1.0), "rounds": (15,), "epochs": (1,), "batch_size": (32, 64)},
    ],
    "engines": [
        {"model": ("linear",), "lr": (0.003, 0.01, 0.03), "rounds": (10, 20), "epochs": (1,),
         "batch_size": (64,)},
        {"model": ("mlp:32",), "lr": (0.001, 0.003), "rounds": (10, 20), "epochs": (1,),
         "batch_size": (64,)},
        # extension: the MLP's best at the smallest lr and largest T
        {"model": ("mlp:32",), "lr": (0.0003, 0.001), "rounds": (20, 40), "epochs": (1,),
         "batch_size": (64,)},
    ],
    "credit-education": [
        {"lr": (0.01, 0.03, 0.1), "rounds": (5, 20), "epochs": (1,), "batch_size": (32, 128)},
    ],
    "credit-dirichlet": [
        {"lr": (0.01, 0.03, 0.1), "rounds": (5, 20), "epochs": (1,), "batch_size": (32, 128)},
    ],
}  # fmt: skip
MUS = (0.001, 0.01, 0.1, 1.0, 10.0)  # FedProx's mu at the chosen setting (10: an extension)
VALIDATION = 101  # derived_rng(draw, DATA, VALIDATION) draws a validation split


def candidates(key: str) -> list[Setting]:
    import itertools

    out = []
    for grid in GRIDS[key]:
        for values in itertools.product(*grid.values()):
            out.append(Setting(**dict(zip(grid, values, strict=True))))
    return list(dict.fromkeys(out))  # each once, in order


def validation_silos(variant: Variant, silos: dict, draw: int) -> dict:
    """Each silo's training rows split into training and validation rows (the test rows are
    dropped): ``variant.validation`` is ``"stratified:f"`` (a stratified share ``f``),
    ``"temporal:f"`` (the last share ``f`` of the rows, which are in time order) or
    ``"engines:f"`` (the last share ``f`` of the engines, whole)."""
    how, fraction = variant.validation.split(":")
    fraction = float(fraction)
    rng = derived_rng(draw, DATA, VALIDATION)
    out = {}
    for name, (X, y, _, _) in silos.items():
        n = len(y)
        if how == "stratified":
            train, val = stratified_split(y, 1 - fraction, rng)
        else:  # time order; an engine's windows end with RUL 0 at its last cycle
            ends = np.arange(1, n + 1) if how == "temporal" else np.flatnonzero(y == 0) + 1
            cut = int(ends[len(ends) - round(fraction * len(ends)) - 1])
            train, val = np.arange(cut), np.arange(cut, n)
        out[name] = (X[train], y[train], X[val], y[val])
    return out


def search_score(rows: list[dict], metric: str, methods=METHODS) -> float:
    """Mean over ``methods`` of the mean over silos of ``metric`` (RMSE negated: higher is
    better)."""
    cell = _cell(rows, metric)
    per_method = [np.nanmean([r["mean"] for (_, m), r in cell.items() if m == method])
                  for method in methods]  # fmt: skip
    return _sign(metric) * float(np.mean(per_method))


def search_variant(variant: Variant) -> tuple[Setting, list[str]]:
    """The best candidate of the grid, then the best ``mu``; and the search's table lines."""
    silos = variant.build(0, False)
    d = next(iter(silos.values()))[0].shape[1]
    draws = list(range(variant.draws))
    val = functools.partial(validation_silos, variant, silos)  # draw -> silos
    lines = [f"| candidate | score ({variant.primary}, validation) | seconds |", "|---|---|---|"]
    results = []
    for s in candidates(variant.key):
        start = time.perf_counter()
        try:
            model = make_model(variant, s, d)
            rows = compare_silos(val, model, algorithms=algorithms(model, s), rounds=s.rounds,
                                 lr=s.lr, epochs=s.epochs, batch_size=s.batch_size, seeds=draws,
                                 metrics=[variant.primary])  # fmt: skip
            value = search_score(rows, variant.primary)
        except DivergenceError:
            value = -np.inf
        results.append((value, s))
        lines.append(f"| {s.describe()} | {_score_text(value, variant.primary)} | "
                     f"{time.perf_counter() - start:.1f} |")  # fmt: skip
        print(lines[-1], flush=True)
    chosen = max(results, key=lambda r: r[0])[1]
    chosen, mu_lines = search_mu(variant, chosen, val, draws, d)
    return chosen, lines + mu_lines


def search_mu(variant: Variant, s: Setting, val, draws, d) -> tuple[Setting, list[str]]:
    """FedProx alone at setting ``s`` for each ``mu`` in ``MUS``: the best ``mu``."""
    lines = ["", f"| FedProx mu at {s.describe()} | score | |", "|---|---|---|"]
    model, best = make_model(variant, s, d), None
    metric = {variant.primary: roc_auc if variant.primary == "roc_auc" else rmse}
    for mu in MUS:
        values = []
        for draw in draws:
            data = FederatedDataset.from_silos(val(draw))
            algorithm = algorithms(model, replace(s, mu=mu))["FedProx"]
            try:
                w, _ = run(algorithm, data, s.rounds, fraction=1.0, seed=draw,
                           eval_every=s.rounds, eval_train=False, progress=False)  # fmt: skip
            except DivergenceError:
                values.append(-np.inf)
                continue
            per_silo = [score(model, w, *data.client_test(k), metric)[variant.primary]
                        for k in range(data.K)]  # fmt: skip
            values.append(_sign(variant.primary) * float(np.nanmean(per_silo)))
        value = float(np.mean(values))
        lines.append(f"| mu={mu} | {_score_text(value, variant.primary)} | |")
        print(lines[-1], flush=True)
        best = (value, mu) if best is None or value > best[0] else best
    return replace(s, mu=best[1]), lines


def _score_text(value: float, metric: str) -> str:
    if not np.isfinite(value):
        return "diverged"
    return f"{-value:.3f} (RMSE)" if metric == "rmse" else f"{value:.4f}"


# ----- the command ------------------------------------------------------------------------------


def setting_of(key: str, quick: bool) -> Setting:
    s = SETTINGS[key]
    return replace(s, rounds=min(s.rounds, QUICK_ROUNDS)) if quick else s


def seeds_of(key: str, n: int | None, quick: bool) -> list[int]:
    """Seeds ``0 .. n-1`` (default ``SEEDS``); seed 0 only with ``quick``."""
    return [0] if quick else list(range(SEEDS if n is None else n))


def run_cases(keys, n_seeds: int | None = None, quick: bool = False) -> dict[str, list[dict]]:
    """``{variant: compare_silos rows}`` for the variants ``keys``."""
    tables = {}
    for key in keys:
        start = time.perf_counter()
        seeds = seeds_of(key, n_seeds, quick)
        tables[key] = run_variant(VARIANTS[key], setting_of(key, quick), seeds, quick)
        print(f"{key}: {time.perf_counter() - start:.0f} s", flush=True)
    return tables


def report(tables: dict[str, list[dict]], n_seeds: int | None = None, quick: bool = False) -> str:
    """The Markdown of a run: the summary, then each variant's per-silo table."""
    summaries = [summary_row(VARIANTS[k], rows) for k, rows in tables.items()]
    command = "python benchmarks/applications.py" + (" --quick" if quick else "")
    command += f" --seeds {n_seeds}" if n_seeds is not None and not quick else ""
    parts = [
        "# Applications: each silo alone, pooled and federated",
        f"Written by `{command}`; every number is the mean ± std over the seeds (each table "
        "says which) on the silo's own test set. The settings and how they were chosen are in "
        "the script's docstring and in applications_search.md.",
        "## Summary",
        "Median silo (the median over the silos of each method's mean; silos where the metric "
        "is undefined for some seed left out): ROC AUC, RMSE for the engines (lower is "
        "better). Gain / lose: silos where the best federated method beats / trails the silo's "
        "own model by more than 0.01 AUC (0.5 cycles) and more than the two spreads over seeds "
        "added.",
        summary_table(summaries),
    ]
    for s, (key, rows) in zip(summaries, tables.items(), strict=True):
        seeds = seeds_of(key, n_seeds, quick)
        which = f"seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
        setting = f"Setting: {setting_of(key, quick).describe()}; {which}."
        parts += [f"## {VARIANTS[key].title}", setting, format_markdown(rows), gains_text(s)]
        if key.startswith("heart"):
            parts.append(SWISS_NOTE)
        if key == "heart":
            parts += ["### Beside FLamby's recorded results (test accuracy per center)",
                      flamby_table(rows), FLAMBY_NOTE]  # fmt: skip
    return "\n\n".join(parts) + "\n"


SWISS_NOTE = (
    "Switzerland has 46 patients, one of them healthy. In FLamby's split that patient is a test "
    'row, so the Swiss model alone learns from sick patients only, predicts "sick" for '
    "everyone and scores 15/16 in accuracy; its AUC counts 15 pairs (one pair is 0.067). In a "
    "random split the healthy patient is a test row with probability 16/46, so the Swiss AUC "
    "is undefined in most seeds and no verdict is given."
)

FLAMBY_NOTE = (
    "FLamby: owkin/FLamby, flamby/results/results_benchmark_fed_heart_disease/"
    "heart_seed42-46.csv (commit edacf54), mean ± std over its 5 seeds; the paper (Ogier du "
    "Terrail et al. 2022, NeurIPS Datasets and Benchmarks) plots these as bars averaged over the "
    "centers. Same data, split, 13 features, per-center standardization, logistic model and "
    "metric (accuracy at probability 0.5). Different training: FLamby trains the local and "
    "pooled models with Adam (lr 0.001, batch 4, 50 epochs) and the strategies with SGD, 100 "
    "local steps of batch 4 per round for 15 rounds, lr tuned per strategy (0.001 for these "
    "three), FedProx mu 0.01, SCAFFOLD server step 1; minifed uses one SGD setting for every "
    "method (chosen on a validation split) and its own seeds. FLamby's Switzerland alone is "
    "trained, like ours, on 30 sick patients only."
)


def search(keys, out: Path | None) -> int:
    """Run the search of every variant in ``keys`` (heart-random takes heart's setting)."""
    lines = ["# Applications: the hyperparameter search on validation splits", "",
             "Written by `python benchmarks/applications.py --search`; see the script's "
             "docstring for the splits and the score."]  # fmt: skip
    for key in keys:
        if key == "heart-random":
            continue
        print(f"\n{key}:", flush=True)
        chosen, table = search_variant(VARIANTS[key])
        lines += ["", f"## {key}: chosen {chosen.describe()}", "", *table]
        print(f"chosen for {key}: {chosen}", flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "applications_search.md").write_text("\n".join(lines) + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument(
        "--seeds", type=int, default=None, help=f"seeds 0 .. SEEDS-1 (default: {SEEDS})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="slices of each data set, 1 seed, 3 rounds: checks the pipeline",
    )
    parser.add_argument("--search", action="store_true", help="the validation search")
    parser.add_argument("--out", default=None,
                        help="folder for the table and figures (default: figures/; "
                             "with --quick: write nothing)")  # fmt: skip
    args = parser.parse_args(argv)
    keys = [k for case in args.cases for k in CASES[case]]
    out = Path(args.out) if args.out else (None if args.quick else FIGURES)
    if args.search:
        return search(keys, out)
    start = time.perf_counter()
    tables = run_cases(keys, args.seeds, args.quick)
    text = report(tables, args.seeds, args.quick)
    print(text)
    if out is not None:
        write(tables, text, out)
    print(f"total: {time.perf_counter() - start:.0f} s")
    return 0


def write(tables: dict[str, list[dict]], text: str, out: Path) -> None:
    """The table file, one figure per case and the summary figure."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "applications_table.md").write_text(text)
    print(f"written: {out / 'applications_table.md'}")
    for case, keys in CASES.items():
        if any(k in tables for k in keys):
            print(f"written: {case_figure(case, tables, out / f'applications_{case}.png')}")
    print(f"written: {summary_figure(tables, out / 'applications_summary.png')}")


if __name__ == "__main__":
    sys.exit(main())
