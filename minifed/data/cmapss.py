"""NASA C-MAPSS turbofan engine degradation simulation, sub-datasets FD001-FD004.

Saxena and Goebel (2008), "Turbofan Engine Degradation Simulation Data Set", NASA Ames
Prognostics Data Repository; paper: Saxena, Goebel, Simon and Eklund (2008), "Damage
propagation modeling for aircraft engine run-to-failure simulation", PHM08. Simulated data
(NASA's C-MAPSS model), a work of the U.S. Government. Each sub-dataset is a fleet: training
engines run until failure, test engines stop some time before it, and ``RUL_FD00x.txt`` gives
each test engine's true remaining useful life (RUL) after its last cycle.

=====  ==========================  =======================  =============  ==============
fleet  operating conditions        fault modes              train engines  test engines
=====  ==========================  =======================  =============  ==============
FD001  1 (sea level)               HPC degradation          100            100
FD002  6                           HPC degradation          260            259
FD003  1 (sea level)               HPC and fan degradation  100            100
FD004  6                           HPC and fan degradation  249            248
=====  ==========================  =======================  =============  ==============
"""

from __future__ import annotations

import os

import numpy as np

from minifed.data.fetch import locate, parse_numbers, read_text
from minifed.data.sources import CMAPSS, CMAPSS_SUBSETS

CMAPSS_SETTINGS = ("setting1", "setting2", "setting3")
CMAPSS_SENSORS = tuple(f"s{i}" for i in range(1, 22))
CMAPSS_COLUMNS = ("unit", "cycle", *CMAPSS_SETTINGS, *CMAPSS_SENSORS)
CMAPSS_SENSOR_NAMES = {  # Saxena et al. (2008), table 2: symbol, description, unit
    "s1": ("T2", "total temperature at fan inlet", "degR"),
    "s2": ("T24", "total temperature at LPC outlet", "degR"),
    "s3": ("T30", "total temperature at HPC outlet", "degR"),
    "s4": ("T50", "total temperature at LPT outlet", "degR"),
    "s5": ("P2", "pressure at fan inlet", "psia"),
    "s6": ("P15", "total pressure in bypass duct", "psia"),
    "s7": ("P30", "total pressure at HPC outlet", "psia"),
    "s8": ("Nf", "physical fan speed", "rpm"),
    "s9": ("Nc", "physical core speed", "rpm"),
    "s10": ("epr", "engine pressure ratio P50/P2", "-"),
    "s11": ("Ps30", "static pressure at HPC outlet", "psia"),
    "s12": ("phi", "ratio of fuel flow to Ps30", "pps/psi"),
    "s13": ("NRf", "corrected fan speed", "rpm"),
    "s14": ("NRc", "corrected core speed", "rpm"),
    "s15": ("BPR", "bypass ratio", "-"),
    "s16": ("farB", "burner fuel-air ratio", "-"),
    "s17": ("htBleed", "bleed enthalpy", "-"),
    "s18": ("Nf_dmd", "demanded fan speed", "rpm"),
    "s19": ("PCNfR_dmd", "demanded corrected fan speed", "rpm"),
    "s20": ("W31", "HPT coolant bleed", "lbm/s"),
    "s21": ("W32", "LPT coolant bleed", "lbm/s"),
}


def load_cmapss(
    subsets=None, data_dir: str | os.PathLike | None = None, download: bool = True
) -> dict[str, dict[str, object]]:
    """The training and test trajectories and the test RUL of each C-MAPSS fleet.

    Download: NASA distributes the files in a zip inside a zip; they are fetched instead as the
    text files themselves from public GitHub repositories at a pinned commit (the same bytes:
    their git blobs and sha256 equal those of NASA's files; see :mod:`minifed.data.sources`).
    A folder may hold each ``.txt`` plain or gzip-compressed (``.txt.gz``, checked by the hash of
    its decompressed bytes).

    Parameters
    ----------
    subsets : iterable of str, optional
        Fleets among ``"FD001"``, ``"FD002"``, ``"FD003"``, ``"FD004"``; default all four.
    data_dir : str or path-like, optional
        Folder with ``train_FD00x.txt``, ``test_FD00x.txt``, ``RUL_FD00x.txt`` (or ``cmapss/``).
    download : bool
        Allow a download into the cache when the files are not found.

    Returns
    -------
    dict
        ``{fleet: {"train": table, "test": table, "rul": rul}}`` in the order asked. A table is
        a dict of 1-D arrays, one row per engine cycle, engines in unit order: ``unit`` and
        ``cycle`` (int64; cycles count 1, 2, ... within each unit), the operational settings
        ``setting1`` (altitude, thousands of feet, 0-42), ``setting2`` (Mach number, 0-0.84)
        and ``setting3`` (throttle resolver angle, 60 or 100 degrees), and the 21 sensors
        ``s1`` ... ``s21`` (float64; names and units in ``CMAPSS_SENSOR_NAMES``). ``rul`` is
        int64, one value per test unit in unit order: the cycles it still had after its last
        recorded one. There are no missing values.
    """
    subsets = _check_subsets(subsets)
    keys = [f"{kind}_{s}" for s in subsets for kind in ("train", "test", "RUL")]
    paths = locate(CMAPSS, data_dir=data_dir, download=download, files=keys)
    fleets = {}
    for s in subsets:
        test = read_cmapss_trajectories(paths[f"test_{s}"])
        rul = read_cmapss_rul(paths[f"RUL_{s}"])
        if len(rul) != len(np.unique(test["unit"])):
            raise ValueError(
                f"{paths[f'RUL_{s}']} holds {len(rul)} values but {paths[f'test_{s}']} has "
                f"{len(np.unique(test['unit']))} engines: the two files do not belong together."
            )
        fleets[s] = {"train": read_cmapss_trajectories(paths[f"train_{s}"]), "test": test}
        fleets[s]["rul"] = rul
    return fleets


def _check_subsets(subsets) -> list[str]:
    """The fleets asked for, in order; a clear error for an unknown one."""
    if subsets is None:
        return list(CMAPSS_SUBSETS)
    subsets = [subsets] if isinstance(subsets, str) else list(subsets)
    if not subsets or any(s not in CMAPSS_SUBSETS for s in subsets):
        raise ValueError(f"subsets must be among {', '.join(CMAPSS_SUBSETS)}; got {subsets!r}.")
    return subsets


def read_cmapss_trajectories(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """One ``train_FD00x.txt`` or ``test_FD00x.txt`` (plain or ``.gz``) as named columns.

    26 numbers per line separated by spaces; the columns are described in :func:`load_cmapss`.
    Raises a ValueError naming ``path`` and the line for a line of another length, a field that
    is not a number, or cycles that do not count 1, 2, 3, ... within a unit.
    """
    values = parse_numbers(read_text(path), path, ncols=len(CMAPSS_COLUMNS))  # (n, 26)
    unit, cycle = values[:, 0], values[:, 1]
    first = np.r_[True, unit[1:] != unit[:-1]]  # (n,) first row of each unit's block
    expected = np.where(first, 1, np.r_[0, cycle[:-1]] + 1)  # 1 at a block's start, else +1
    back = np.r_[False, unit[1:] < unit[:-1]]  # (n,) a unit number smaller than the last one
    bad = np.flatnonzero((cycle != expected) | (unit != np.round(unit)) | back)
    if bad.size:
        i = int(bad[0])  # line i + 1: the files have no header and no blank lines
        raise ValueError(
            f"{path}, line {i + 1}: unit {unit[i]:g} cycle {cycle[i]:g} breaks the order: units "
            "must come in increasing blocks whose cycles count 1, 2, 3, ..."
        )
    table = {name: values[:, j] for j, name in enumerate(CMAPSS_COLUMNS)}
    table["unit"], table["cycle"] = unit.astype(np.int64), cycle.astype(np.int64)
    return table


def read_cmapss_rul(path: str | os.PathLike) -> np.ndarray:
    """One ``RUL_FD00x.txt``: one whole number of cycles per line, as int64."""
    rul = parse_numbers(read_text(path), path, ncols=1)[:, 0]
    bad = np.flatnonzero((rul != np.round(rul)) | (rul < 0))
    if bad.size:
        raise ValueError(f"{path}, line {bad[0] + 1}: {rul[bad[0]]:g} is not a whole RUL >= 0.")
    return rul.astype(np.int64)
