"""Smart city: is this hour polluted? Beijing's 12 air-quality monitoring stations as silos.

Data: Chen (2017), UCI dataset 501 (:func:`minifed.data.load_beijing_air`); paper: Zhang et al.
(2017), Proc. R. Soc. A 473: 20170457. The threshold is China's ambient air-quality standard
GB 3095-2012, Grade II 24-hour limit for PM2.5, 75 ug/m^3.
"""

from __future__ import annotations

import os

import numpy as np

from minifed.applications._common import (
    STANDARDIZE,
    SiloTask,
    check_choice,
    positive_rates,
    scale_silos,
)
from minifed.data import load_beijing_air

POLLUTED_PM25 = 75.0
TEST_FROM = (2016, 3)  # the last year, 2016-03 .. 2017-02, is the test period
WEATHER = ("TEMP", "PRES", "DEWP", "RAIN", "WSPM")
AIR_FEATURES = (
    "TEMP", "PRES", "DEWP", "log1p_RAIN", "WSPM", "wd_sin", "wd_cos",
    "hour_sin", "hour_cos", "month_sin", "month_cos",
)  # fmt: skip


def air_silos(
    *,
    stations=None,
    threshold: float = POLLUTED_PM25,
    standardize: str = "silo",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> SiloTask:
    """One silo per monitoring station: is the hour's PM2.5 above ``threshold`` (75 ug/m^3)?

    75 ug/m^3 is the Grade II 24-hour PM2.5 limit of China's standard GB 3095-2012; applying it
    to single hours is a teaching simplification. The label is ``PM2.5 > threshold``, predicted
    from the same hour's weather and time (no pollutant is a feature), 11 columns
    (``AIR_FEATURES``):

    - ``TEMP`` (deg C), ``PRES`` (hPa), ``DEWP`` (deg C), ``log1p_RAIN`` = log(1 + RAIN in mm)
      (rain is 0 in most hours and has a long tail), ``WSPM`` (m/s): standardized;
    - ``wd_sin``, ``wd_cos`` = sin, cos of the wind direction's angle ``22.5 * wd`` degrees
      (clockwise from north; east is (1, 0)), so that NNW and N are neighbours;
    - ``hour_sin``, ``hour_cos`` of ``2 pi hour / 24`` and ``month_sin``, ``month_cos`` of
      ``2 pi (month - 1) / 12``: the daily and yearly cycles, 23 h next to 0 h.

    Missing values: a row with NaN in PM2.5 or in any column used is dropped (no imputation;
    ``info["dropped"]`` counts them per station: 511-1,391 of 35,064 rows, mostly PM2.5 gaps).
    Temporal split: train on 2013-03 .. 2016-02 (three years), test on 2016-03 .. 2017-02 (the
    last year): the model is judged on a year it has not seen, as a forecast service would be.

    Parameters
    ----------
    stations : iterable of str, optional
        A subset of ``minifed.data.BEIJING_STATIONS`` (default all 12, alphabetical).
    threshold : float
        PM2.5 above which an hour counts as polluted, in ug/m^3.
    standardize : {"silo", "pooled", "none"}
        Scale the five weather columns with the mean and standard deviation of the station's own
        training period (``"silo"``: what a station can compute alone), of all stations'
        training periods (``"pooled"``), or not at all. The sin/cos columns stay in [-1, 1].
    data_dir, download
        Passed to :func:`minifed.data.load_beijing_air`.

    Returns
    -------
    SiloTask
        ``task="classification"``, ``y`` int64 in {0, 1}; 25,348-26,015 training and
        8,152-8,572 test hours per station, 30-43 % of them polluted; ``info["positive_rate"]``
        and ``info["dropped"]`` per station.
    """
    check_choice("standardize", standardize, STANDARDIZE)
    tables = load_beijing_air(stations, data_dir=data_dir, download=download)
    parts, dropped = {}, {}
    for name, table in tables.items():
        X, y, is_test, keep = air_features(table, threshold)
        dropped[name] = int(np.sum(~keep))
        X, y, is_test = X[keep], y[keep], is_test[keep]
        parts[name] = (X[~is_test], y[~is_test], X[is_test], y[is_test])
    silos = scale_silos(parts, standardize, columns=range(len(WEATHER)))
    info = {
        "threshold": threshold,
        "test_from": TEST_FROM,
        "standardize": standardize,
        "dropped": dropped,
        "positive_rate": positive_rates(silos),
    }
    return SiloTask("beijing-air", "classification", silos, AIR_FEATURES, info)


def air_features(table: dict, threshold: float = POLLUTED_PM25) -> tuple:
    """Features, labels, test-period flags and complete-row flags of one station's table.

    Returns ``X`` float64 ``(n, 11)`` (columns ``AIR_FEATURES``, unscaled), ``y`` int64
    ``(n,)``, ``is_test`` bool ``(n,)`` (``(year, month) >= TEST_FROM``) and ``keep`` bool
    ``(n,)`` (no NaN in ``X`` nor in PM2.5).
    """
    weather = np.column_stack([table[c] for c in WEATHER])  # (n, 5)
    weather[:, WEATHER.index("RAIN")] = np.log1p(weather[:, WEATHER.index("RAIN")])
    angle = np.deg2rad(22.5 * table["wd"])  # NaN stays NaN
    hour = 2 * np.pi * table["hour"] / 24
    month = 2 * np.pi * (table["month"] - 1) / 12
    cyclic = [f(a) for a in (angle, hour, month) for f in (np.sin, np.cos)]  # 6 x (n,)
    X = np.column_stack([weather, *cyclic])  # (n, 11)
    pm25 = table["PM2.5"]
    keep = ~np.isnan(X).any(axis=1) & ~np.isnan(pm25)
    y = (np.nan_to_num(pm25) > threshold).astype(np.int64)
    is_test = table["year"] * 12 + table["month"] >= TEST_FROM[0] * 12 + TEST_FROM[1]
    return X, y, is_test, keep
