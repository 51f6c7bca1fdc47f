"""Manufacturing: remaining useful life of turbofan engines, the four C-MAPSS fleets as silos.

Data: Saxena and Goebel (2008), NASA C-MAPSS (:func:`minifed.data.load_cmapss`). The capped,
piecewise-linear RUL target is Heimes (2008), "Recurrent neural networks for remaining useful
life estimation", PHM08, used since by most of the literature (e.g. Li, Ding and Sun (2018),
"Remaining useful life estimation in prognostics using deep convolution neural networks").
"""

from __future__ import annotations

import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minifed._checks import check_int
from minifed.applications._common import (
    STANDARDIZE,
    SiloTask,
    check_choice,
    scale_silos,
    scaling,
)
from minifed.data import load_cmapss
from minifed.data.cmapss import CMAPSS_SENSORS, CMAPSS_SETTINGS

RUL_CAP = 125
# (altitude kft, Mach, throttle resolver angle deg): the six operating conditions of FD002 and
# FD004; FD001 and FD003 run at the first one (sea level) only.
OPERATING_CONDITIONS = (
    (0, 0.0, 100), (10, 0.25, 100), (20, 0.7, 100), (25, 0.62, 60), (35, 0.84, 100),
    (42, 0.84, 100),
)  # fmt: skip
# Sensors constant within every operating condition of some fleet's training rows: s1, s5, s18
# and s19 in all four fleets, s10 in FD001, s16 in FD001 and FD003. One column set for all.
DROPPED_SENSORS = ("s1", "s5", "s10", "s16", "s18", "s19")
KEPT_SENSORS = tuple(s for s in CMAPSS_SENSORS if s not in DROPPED_SENSORS)


def engine_silos(
    *,
    window: int = 30,
    cap: int = RUL_CAP,
    features: str = "summary",
    cap_test: bool = True,
    standardize: str = "silo",
    subsets=None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> SiloTask:
    """One silo per fleet (FD001-FD004): predict an engine's remaining useful life in cycles.

    Steps, each fleet on its own:

    1. Target: ``RUL = last cycle of the engine - cycle``, capped at ``cap`` (125): early in
       life an engine shows no wear, so a longer life cannot be told apart from the sensors.
    2. Sensors: the 15 of ``KEPT_SENSORS``; ``DROPPED_SENSORS`` (s1, s5, s10, s16, s18, s19)
       have zero variance within every operating condition in some fleet's training rows. The
       three settings only say which condition an engine flies in and are dropped after step 3.
    3. Normalization per operating condition: rounding the settings (altitude to 1 kft, Mach to
       0.01, throttle angle to 1 deg) gives exactly the six conditions of
       ``OPERATING_CONDITIONS`` (noise is below 0.01); each sensor is standardized with the mean
       and std of the training rows of the same condition. In FD002/FD004 the condition moves
       the sensors far more than wear does; one global scaling would leave mostly the condition.
    4. Windows of the last ``window`` cycles: every full window of a training engine is one
       sample (an engine of ``L >= window`` cycles gives ``L - window + 1``), target the RUL at
       its last cycle. A test engine gives one sample, its last window, scored against
       ``RUL_FD00x.txt``. An engine shorter than ``window`` (11 test engines of FD004 and 6 of
       FD002 for ``window=30``) is padded in front by repeating its first row.
    5. ``features="summary"``: per sensor the window's mean (level, noise averaged out) and
       least-squares slope per cycle (trend), 30 columns, then standardized again (mean and
       std of the fleet's training windows, as in step 3): a slope's std is about 0.016, 50x
       smaller than a mean's, and SGD on the raw columns barely moves the slopes' weights
       (linear model: test RMSE 22-25, the value of the means alone, against 16-19 by least
       squares; rescaling changes neither number). ``features="flat"``: the window itself,
       ``window * 15`` columns, oldest cycle first (already on the sensors' scale).

    Parameters
    ----------
    window : int
        Cycles per window (>= 1).
    cap : int
        RUL cap in cycles.
    features : {"summary", "flat"}
        Window summary (mean and slope per sensor) or the flattened window.
    cap_test : bool
        Cap the test targets at ``cap`` too (the usual way to report C-MAPSS RMSE; a model
        trained on capped targets never predicts more). ``info["rul_test"]`` keeps the values
        of ``RUL_FD00x.txt`` either way.
    standardize : {"silo", "pooled", "none"}
        Statistics per condition (and of the summary columns) from the fleet's own training
        rows (``"silo"``), from all fleets' training rows (``"pooled"``), or no scaling.
    subsets : iterable of str, optional
        Fleets to build (default all four).
    data_dir, download
        Passed to :func:`minifed.data.load_cmapss`.

    Returns
    -------
    SiloTask
        ``task="regression"``, ``y`` float32 in cycles (0..cap). Silos ``FD001`` .. ``FD004``
        with 17,731 / 46,219 / 21,820 / 54,028 training windows and 100 / 259 / 100 / 248 test
        engines for ``window=30``. ``info`` holds the conditions met, padded engines and raw
        test RUL per fleet.
    """
    window = check_int("window", window, minimum=1)
    cap = check_int("cap", cap, minimum=1)
    check_choice("features", features, ("summary", "flat"))
    check_choice("standardize", standardize, STANDARDIZE)
    fleets = load_cmapss(subsets, data_dir=data_dir, download=download)
    scaled = normalize_by_condition(fleets, standardize)
    silos, info = {}, {"padded": {}, "rul_test": {}, "conditions": {}}
    for name, fleet in fleets.items():
        X_tr, y_tr = _train_windows(fleet["train"], scaled[name]["train"], window, cap, features)
        X_te, padded = _last_windows(fleet["test"], scaled[name]["test"], window, features)
        y_te = np.minimum(fleet["rul"], cap) if cap_test else fleet["rul"]
        silos[name] = (X_tr, y_tr, X_te, y_te.astype(np.float32))
        info["padded"][name] = padded
        info["rul_test"][name] = fleet["rul"]
        info["conditions"][name] = np.unique(operating_condition(fleet["train"])).tolist()
    if features == "summary":  # slopes on the means' scale (step 5)
        silos = scale_silos(silos, standardize)
    info |= {"window": window, "cap": cap, "cap_test": cap_test, "standardize": standardize}
    return SiloTask("cmapss", "regression", silos, _feature_names(features, window), info)


def operating_condition(table: dict) -> np.ndarray:
    """Index into ``OPERATING_CONDITIONS`` of every row of a C-MAPSS table, int64 ``(n,)``.

    Settings rounded to (1 kft, 0.01 Mach, 1 deg) must equal one of the six conditions.
    """
    settings = np.column_stack([table[s] for s in CMAPSS_SETTINGS])  # (n, 3)
    step = np.array([1.0, 0.01, 1.0])  # kft, Mach, degrees
    rounded = np.round(settings / step) * step
    match = np.all(np.abs(rounded[:, None] - np.array(OPERATING_CONDITIONS)) < 1e-6, axis=2)
    if not match.any(axis=1).all():  # match: (n, 6)
        row = int(np.flatnonzero(~match.any(axis=1))[0])
        raise ValueError(
            f"row {row}: settings {settings[row].tolist()} match none of the operating "
            f"conditions {OPERATING_CONDITIONS}."
        )
    return match.argmax(axis=1)


def normalize_by_condition(fleets: dict, standardize: str) -> dict:
    """``{fleet: {"train": S, "test": S}}``: the kept sensors (float64 ``(n, 15)``), each
    standardized per operating condition with the statistics of that condition's training rows
    (the fleet's own, or all fleets' if ``standardize="pooled"``)."""
    parts = ("train", "test")
    S = {
        n: {k: np.column_stack([f[k][s] for s in KEPT_SENSORS]) for k in parts}
        for n, f in fleets.items()
    }
    C = {n: {k: operating_condition(f[k]) for k in parts} for n, f in fleets.items()}
    for n in fleets:
        unseen = np.setdiff1d(C[n]["test"], C[n]["train"])
        if unseen.size:
            raise ValueError(
                f"{n}: test rows fly in operating condition {OPERATING_CONDITIONS[unseen[0]]}, "
                "which its training rows never meet; they cannot be normalized."
            )
    out = {n: {k: np.empty_like(S[n][k]) for k in parts} for n in fleets}
    for c in range(len(OPERATING_CONDITIONS)):
        met = [n for n in fleets if np.any(C[n]["train"] == c)]
        stats = scaling([S[n]["train"][C[n]["train"] == c] for n in met], standardize)
        for n, (mu, sd) in zip(met, stats, strict=True):
            for k in parts:
                rows = C[n][k] == c
                out[n][k][rows] = (S[n][k][rows] - mu) / sd
    return out


def rul_targets(unit: np.ndarray, cycle: np.ndarray, cap: int = RUL_CAP) -> np.ndarray:
    """``min(last cycle of the row's unit - cycle, cap)`` for every row, float64 ``(n,)``.

    >>> rul_targets(np.array([1, 1, 1, 2, 2]), np.array([1, 2, 3, 1, 2]), cap=1)
    array([1., 1., 0., 1., 0.])
    """
    last = np.zeros(int(unit.max()) + 1, dtype=np.int64)
    np.maximum.at(last, unit, cycle)
    return np.minimum(last[unit] - cycle, cap).astype(np.float64)


def engine_windows(S: np.ndarray, window: int) -> np.ndarray:
    """All windows of ``window`` consecutive rows of one engine's ``S`` ``(L, p)``: a view
    ``(max(L - window + 1, 1), window, p)``; if ``L < window`` the engine is first padded in
    front with ``window - L`` copies of its first row."""
    if len(S) < window:
        S = np.concatenate([np.repeat(S[:1], window - len(S), axis=0), S])
    return sliding_window_view(S, window, axis=0).transpose(0, 2, 1)  # (n_w, window, p)


def window_features(W: np.ndarray, features: str = "summary") -> np.ndarray:
    """Windows ``W`` ``(n, window, p)`` as rows: ``"flat"`` ``(n, window p)``, or ``"summary"``
    ``(n, 2p)``: means, then least-squares slopes ``sum_j (j - jbar) x_j / sum_j (j - jbar)^2``.

    >>> W = np.arange(6.0).reshape(1, 3, 2)  # one window, 3 cycles, 2 sensors
    >>> window_features(W)
    array([[2., 3., 2., 2.]])
    """
    n, window, p = W.shape
    if features == "flat":
        return W.reshape(n, window * p)
    j = np.arange(window) - (window - 1) / 2  # (window,) centred positions
    slope = np.einsum("nwp,w->np", W, j) / max(j @ j, 1.0)  # window 1: slope 0
    return np.concatenate([W.mean(axis=1), slope], axis=1)


def _engines(unit: np.ndarray) -> list[np.ndarray]:
    """Row numbers of each engine (the tables hold each unit as one block of rows)."""
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
    return np.split(np.arange(len(unit)), starts[1:])


def _train_windows(table, S, window, cap, features):
    """Every window of every training engine, and the capped RUL at each window's last cycle."""
    y = rul_targets(table["unit"], table["cycle"], cap)
    X_parts, y_parts = [], []
    for rows in _engines(table["unit"]):
        X_parts.append(window_features(engine_windows(S[rows], window), features))
        y_parts.append(y[rows][min(window, len(rows)) - 1 :])  # RUL at each window's end
    return np.concatenate(X_parts).astype(np.float32), np.concatenate(y_parts).astype(np.float32)


def _last_windows(table, S, window, features):
    """The last window of every test engine, and the units that had to be padded."""
    engines = _engines(table["unit"])
    W = np.stack([engine_windows(S[rows[-window:]], window)[-1] for rows in engines])
    padded = [int(table["unit"][rows[0]]) for rows in engines if len(rows) < window]
    return window_features(W, features).astype(np.float32), padded


def _feature_names(features: str, window: int) -> tuple[str, ...]:
    """Column names: ``s2_mean .. s21_slope`` or ``s2_t-29 .. s21_t-0``, oldest first."""
    if features == "summary":
        return (*(f"{s}_mean" for s in KEPT_SENSORS), *(f"{s}_slope" for s in KEPT_SENSORS))
    return tuple(f"{s}_t-{k}" for k in range(window - 1, -1, -1) for s in KEPT_SENSORS)
