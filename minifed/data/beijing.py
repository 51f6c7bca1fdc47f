"""Beijing multi-site air quality: 12 monitoring stations, hourly, 2013-03-01 to 2017-02-28.

Chen (2017), UCI dataset 501, doi:10.24432/C5RK5G (CC BY 4.0); paper: Zhang, Guo, Dong, He, Xu
and Chen (2017), "Cautionary tales on air-quality improvement in Beijing", Proc. R. Soc. A 473.
Pollutants from the Beijing Municipal Environmental Monitoring Center, weather from the nearest
China Meteorological Administration station. One CSV per station, 35,064 rows each (every hour;
gaps are ``NA`` cells, never missing rows).
"""

from __future__ import annotations

import os

import numpy as np

from minifed.data.fetch import locate, parse_numbers, read_text
from minifed.data.sources import BEIJING_AIR, BEIJING_STATIONS

BEIJING_COLUMNS = (
    "No", "year", "month", "day", "hour", "PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP",
    "PRES", "DEWP", "RAIN", "wd", "WSPM", "station",
)  # fmt: skip
WIND_DIRECTIONS = (
    "N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW",
    "NNW",
)  # fmt: skip
_NUMERIC = tuple(i for i, c in enumerate(BEIJING_COLUMNS) if c not in ("wd", "station"))
_TIME = ("year", "month", "day", "hour")


def load_beijing_air(
    stations=None, data_dir: str | os.PathLike | None = None, download: bool = True
) -> dict[str, dict[str, np.ndarray]]:
    """The hourly table of each monitoring station, as named columns.

    Download: the official source is UCI's zip of a zip; the files are fetched instead as the
    station CSVs from public GitHub repositories at a pinned commit (byte-identical copies, the
    same git blobs in unrelated repositories; see :mod:`minifed.data.sources`), each checked
    against the sha256 of its CSV bytes. A folder may hold each CSV plain or gzip-compressed
    (``.csv.gz``, checked by the hash of its decompressed bytes).

    Parameters
    ----------
    stations : iterable of str, optional
        Which stations to read (names as in ``BEIJING_STATIONS``); default all 12.
    data_dir : str or path-like, optional
        Folder with the ``PRSA_Data_<station>_20130301-20170228.csv[.gz]`` files (or with
        ``beijing-air/``).
    download : bool
        Allow a download into the cache when the files are not found.

    Returns
    -------
    dict of str to dict of str to ndarray
        ``{station: {column: values}}``, stations in the order asked, 35,064 rows per station
        (hour by hour, oldest first). Columns, one 1-D array each:

        - ``year``, ``month``, ``day``, ``hour`` (0..23): int64, local time, never missing;
        - ``PM2.5``, ``PM10``, ``SO2``, ``NO2``, ``CO``, ``O3``: concentrations in ug/m^3 (as
          UCI states; CO values are in the hundreds to thousands), float64;
        - ``TEMP`` (deg C), ``PRES`` (hPa), ``DEWP`` (dew point, deg C), ``RAIN``
          (precipitation, mm), ``WSPM`` (wind speed, m/s): float64;
        - ``wd``: wind direction encoded as its compass point's index ``i`` in
          ``WIND_DIRECTIONS`` (N = 0, NNE = 1, ..., NNW = 15), that is the direction
          ``22.5 * i`` degrees clockwise from north; float64.

        A missing value (``NA`` in the file, up to 3,197 per column and station) is NaN. The
        file's ``No`` (row number) and ``station`` (constant) columns are not returned.
    """
    stations = _check_stations(stations)
    paths = locate(BEIJING_AIR, data_dir=data_dir, download=download, files=stations)
    return {s: read_beijing_station(paths[s]) for s in stations}


def _check_stations(stations) -> list[str]:
    """The station names asked for, in order; a clear error for an unknown one."""
    if stations is None:
        return list(BEIJING_STATIONS)
    stations = [stations] if isinstance(stations, str) else list(stations)
    unknown = [s for s in stations if s not in BEIJING_STATIONS]
    if unknown or not stations:
        raise ValueError(
            f"stations must be names among {', '.join(BEIJING_STATIONS)}; got {stations!r}."
        )
    return stations


def read_beijing_station(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """One station's CSV (plain or ``.gz``) as the columns described in :func:`load_beijing_air`.

    Raises a ValueError naming ``path`` (and the line) for a wrong header, a row without 18
    fields, a cell that is neither a number nor ``NA``, an unknown wind direction or a missing
    time stamp.
    """
    header, _, body = read_text(path).partition("\n")
    expected = ",".join(f'"{c}"' for c in BEIJING_COLUMNS)
    if header.rstrip("\r") != expected:
        raise ValueError(f"{path}, line 1: header {header[:60]!r}... is not {expected!r}.")
    ncols = len(BEIJING_COLUMNS)
    numbers = parse_numbers(  # (n, 16): every column but wd and station
        body, path, ncols=ncols, usecols=_NUMERIC, delimiter=",", first_line=2, missing="NA"
    )
    table = {BEIJING_COLUMNS[j]: numbers[:, i] for i, j in enumerate(_NUMERIC)}
    del table["No"]
    for name in _TIME:
        if np.isnan(table[name]).any():
            line = int(np.flatnonzero(np.isnan(table[name]))[0]) + 2
            raise ValueError(f"{path}, line {line}: the time column {name!r} is missing.")
        table[name] = table[name].astype(np.int64)
    table["wd"] = _wind_codes(body, path)
    return {c: table[c] for c in BEIJING_COLUMNS if c in table}


def _wind_codes(body: str, path) -> np.ndarray:
    """The ``wd`` field of every row as its compass index 0..15 (float64, NaN for ``NA``)."""
    numbered = [(i, line) for i, line in enumerate(body.splitlines(), start=2) if line.strip()]
    fields = np.array([line.rsplit(",", 3)[1] for _, line in numbered])  # 3rd from the end
    names, inverse = np.unique(fields, return_inverse=True)
    lookup = {f'"{d}"': float(i) for i, d in enumerate(WIND_DIRECTIONS)} | {"NA": np.nan}
    for k, name in enumerate(names):
        if name not in lookup:
            line = numbered[int(np.flatnonzero(inverse.ravel() == k)[0])][0]
            raise ValueError(
                f"{path}, line {line}: wind direction {name} is not NA or one of "
                f"{', '.join(WIND_DIRECTIONS)}."
            )
    return np.array([lookup[n] for n in names])[inverse.ravel()]
