"""Tests of the field data sets (Beijing air, C-MAPSS, credit default) and their silo builders.

No test touches the internet: downloads go to a fake opener. Lookup of ``<file>.gz`` copies, the
errors for truncated or altered files and the parsers run on small files written here; the
checks of row counts and of the built silos use the real data through ``require_dataset`` (skip
when absent, fail when ``CI=true``). The real files are read once per module.
"""

from __future__ import annotations

import gzip
import hashlib
import re

import numpy as np
import pytest
from conftest import FakeOpener, require_dataset

from minifed.applications import SiloTask, air_silos, credit_silos, engine_silos, heart_silos
from minifed.applications import engines as E
from minifed.applications._common import stratified_split
from minifed.applications.air import air_features
from minifed.applications.heart import FLAMBY_TEST_ROWS
from minifed.data import (
    BEIJING_STATIONS,
    DATASETS,
    ChecksumError,
    DataFile,
    DataSource,
    load_beijing_air,
    load_cmapss,
    load_credit_default,
    locate,
    read_text,
)
from minifed.data.beijing import read_beijing_station
from minifed.data.cmapss import read_cmapss_rul, read_cmapss_trajectories
from minifed.data.credit import read_credit_csv


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- .gz copies in fetch

TEXT = b"1,2,3\n4,5,6\n"


def toy_source(gz_sha256=()) -> DataSource:
    return DataSource(
        "toy", {"t": DataFile("t.csv", ("fake://host/t.csv",), (sha(TEXT),), gz_sha256)}
    )


@pytest.mark.parametrize("known_gz_hash", [False, True])
def test_gz_copy_is_found_and_verified(env, known_gz_hash):
    packed = gzip.compress(TEXT, mtime=0)
    (env / "d").mkdir()
    (env / "d" / "t.csv.gz").write_bytes(packed)
    source = toy_source((sha(packed),) if known_gz_hash else ())
    found = locate(source, data_dir=env / "d", download=False)["t"]
    assert found.name == "t.csv.gz" and read_text(found) == TEXT.decode()
    (env / "d" / "t.csv").write_bytes(TEXT)  # the plain file wins when both exist
    assert locate(source, data_dir=env / "d", download=False)["t"].name == "t.csv"


def test_gz_copy_in_cache_is_used_without_download(env):
    (env / "cache" / "toy").mkdir(parents=True)
    (env / "cache" / "toy" / "t.csv.gz").write_bytes(gzip.compress(TEXT))
    opener = FakeOpener({})
    assert locate(toy_source(), opener=opener)["t"].name == "t.csv.gz"
    assert opener.calls == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gzip.compress(TEXT)[:-5], "not a complete gzip file"),  # truncated
        (gzip.compress(b"1,2,3\n4,5,7\n"), "decompresses to bytes with sha256"),  # altered
        (b"not gzip at all", "not a complete gzip file"),
    ],
)
def test_truncated_or_altered_gz_is_an_error_naming_the_file(env, content, message):
    (env / "d").mkdir()
    (env / "d" / "t.csv.gz").write_bytes(content)
    with pytest.raises(ChecksumError, match=message) as info:
        locate(toy_source(), data_dir=env / "d", download=False)
    assert "t.csv.gz" in str(info.value)


def test_read_text_names_a_broken_gz_and_a_bad_byte(tmp_path):
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(TEXT)[:-5])
    with pytest.raises(ValueError, match=r"cut\.txt\.gz is not a complete gzip file"):
        read_text(tmp_path / "cut.txt.gz")
    (tmp_path / "latin.txt").write_bytes(b"a\nb\n\xe9\n")
    with pytest.raises(ValueError, match=r"latin\.txt, line 3: byte 0xe9"):
        read_text(tmp_path / "latin.txt")


# ---------------------------------------------------------------- sources and downloads


def test_new_sources_are_pinned_copies():
    for name in ("beijing-air", "cmapss", "credit-default"):
        for key, file in DATASETS[name].files.items():
            assert file.urls and all(len(h) == 64 for h in (*file.sha256, *file.gz_sha256))
            for url in file.urls:
                assert url.endswith(file.path), (key, url)
                github = re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/(\w+)/", url)
                assert github is None or len(github.group(1)) == 40  # a commit, not a branch
    assert len(DATASETS["beijing-air"].files) == 12 and len(DATASETS["cmapss"].files) == 12


def test_altered_download_is_refused_and_leaves_nothing(env):
    file = DATASETS["credit-default"].files["csv"]
    opener = FakeOpener({url: b'"ID"\n1\n' for url in file.urls})
    with pytest.raises(ChecksumError, match=r"UCI_Credit_Card\.csv") as info:
        locate(DATASETS["credit-default"], opener=opener)
    assert file.sha256[0] in str(info.value) and len(opener.calls) == len(file.urls)
    assert list((env / "cache" / "credit-default").iterdir()) == []


def test_download_with_fake_opener_then_load_from_cache(env, real_bytes):
    """Serve the real bytes at the pinned URLs (first Beijing mirror down): the loaders then
    read the verified files from the cache."""
    credit = DATASETS["credit-default"].files["csv"]
    station = DATASETS["beijing-air"].files["Changping"]
    pages = {credit.urls[0]: real_bytes["credit"], station.urls[1]: real_bytes["Changping"]}
    opener = FakeOpener(pages)
    locate(DATASETS["credit-default"], opener=opener)
    locate(DATASETS["beijing-air"], opener=opener, files=["Changping"])
    assert opener.calls == [credit.urls[0], station.urls[0], station.urls[1]]
    assert len(load_credit_default(download=False)["ID"]) == 30000
    assert len(load_beijing_air(["Changping"], download=False)["Changping"]["year"]) == 35064


@pytest.fixture(scope="module")
def real_bytes():
    """Decompressed bytes of two real files, for the fake opener."""
    credit = require_dataset("credit-default")["csv"]
    station = require_dataset("beijing-air", files=["Changping"])["Changping"]
    return {"credit": credit.read_bytes(), "Changping": read_text(station).encode("ascii")}


# ---------------------------------------------------------------- parsers on small files

COLUMNS = "No year month day hour PM2.5 PM10 SO2 NO2 CO O3 TEMP PRES DEWP RAIN wd WSPM station"
HEADER = ",".join(f'"{c}"' for c in COLUMNS.split())
ROWS = [
    '1,2016,2,29,23,80,90,4,7,300,77,-0.7,1023,-18.8,0,"NNW",4.4,"X"',
    '2,2016,3,1,0,NA,8,4,7,300,77,-1.1,1023.2,-18.2,0,"N",4.7,"X"',
    '3,2016,3,1,1,7,NA,NA,NA,NA,NA,-1.1,1023.2,-18.2,0.5,NA,4.7,"X"',
    '4,2016,3,1,2,76,9,4,7,300,77,-1.1,NA,-18.2,0,"E",4.7,"X"',
]


def write_station(tmp_path, rows, header=HEADER, name="s.csv.gz"):
    text = "\r\n".join([header, *rows]) + "\r\n"
    (tmp_path / name).write_bytes(gzip.compress(text.encode("ascii")))
    return tmp_path / name


def test_beijing_station_parser(tmp_path):
    table = read_beijing_station(write_station(tmp_path, ROWS))
    assert "No" not in table and "station" not in table and len(table) == 16
    np.testing.assert_array_equal(table["wd"], [15, 0, np.nan, 4])
    np.testing.assert_array_equal(table["PM2.5"], [80, np.nan, 7, 76])
    assert table["hour"].dtype == np.int64 and table["RAIN"][2] == 0.5
    X, y, is_test, keep = air_features(table)
    np.testing.assert_array_equal(is_test, [False, True, True, True])  # from 2016-03 on
    np.testing.assert_array_equal(keep, [True, False, False, False])  # PM2.5, wd, PRES missing
    assert y[0] == 1 and y[3] == 1 and X.shape == (4, 11)
    np.testing.assert_allclose(X[0, 5:7], [np.sin(np.deg2rad(337.5)), np.cos(np.deg2rad(337.5))])


@pytest.mark.parametrize(
    ("row", "where"),
    [
        ('5,2016,3,1,3,7,8,4,7,300,77,-1.1,1023.2,-18.2,0,"N",4.7', "line 6: 17 fields"),
        ('5,2016,3,1,3,7,8,4,7,300,77,-1.1,1023.2,oops,0,"N",4.7,"X"', "line 6: field 14"),
        ('5,2016,3,1,3,7,8,4,7,300,77,-1.1,1023.2,-18.2,0,"NxE",4.7,"X"', "line 6: wind"),
        ('5,2016,3,1,NA,7,8,4,7,300,77,-1.1,1023.2,-18.2,0,"N",4.7,"X"', "line 6: the time"),
    ],
)
def test_beijing_parse_errors_name_file_and_line(tmp_path, row, where):
    with pytest.raises(ValueError, match=where) as info:
        read_beijing_station(write_station(tmp_path, [*ROWS, row]))
    assert "s.csv.gz" in str(info.value)
    with pytest.raises(ValueError, match="line 1: header"):
        read_beijing_station(write_station(tmp_path, ROWS, header=HEADER.replace("wd", "WD")))


def cmapss_line(unit, cycle, settings=(0.0, 0.0, 100.0), level=0.0):
    sensors = [level + k for k in range(21)]
    return " ".join(str(v) for v in (unit, cycle, *settings, *sensors)) + "  "


def test_cmapss_parsers_and_their_errors(tmp_path):
    lines = [cmapss_line(1, 1), cmapss_line(1, 2), cmapss_line(2, 1)]
    (tmp_path / "ok.txt").write_text("\n".join(lines) + "\n")
    table = read_cmapss_trajectories(tmp_path / "ok.txt")
    assert table["unit"].tolist() == [1, 1, 2] and table["s21"].tolist() == [20.0] * 3
    bad = {
        "gap.txt": ([*lines[:1], cmapss_line(1, 3)], "line 2: unit 1 cycle 3"),
        "back.txt": ([*lines, cmapss_line(1, 1)], "line 4: unit 1 cycle 1"),
        "short.txt": ([*lines, "3 1 0.0 0.0"], "line 4: 4 fields, expected 26"),
    }
    for name, (content, message) in bad.items():
        (tmp_path / name).write_text("\n".join(content) + "\n")
        with pytest.raises(ValueError, match=f"{name}, {message}"):
            read_cmapss_trajectories(tmp_path / name)
    (tmp_path / "rul.txt").write_text("12 \n7.5 \n")
    with pytest.raises(ValueError, match=r"rul\.txt, line 2: 7\.5"):
        read_cmapss_rul(tmp_path / "rul.txt")


def test_credit_parser_errors_name_file_and_line(tmp_path):
    from minifed.data.credit import CREDIT_COLUMNS

    header = ",".join(f'"{c}"' for c in CREDIT_COLUMNS)
    row = ",".join(["1", "5e+05", *["1"] * 23])
    (tmp_path / "c.csv").write_text(f"{header}\n{row}\n")
    assert read_credit_csv(tmp_path / "c.csv")["LIMIT_BAL"].tolist() == [500000]
    (tmp_path / "c.csv").write_text(f"{header}\n{row}\n{row.replace('5e+05', '0.5')}\n")
    with pytest.raises(ValueError, match=r"c\.csv, line 3: LIMIT_BAL = 0\.5"):
        read_credit_csv(tmp_path / "c.csv")
    (tmp_path / "c.csv").write_text(f"{header}\n{row}\n{row},7\n")
    with pytest.raises(ValueError, match=r"c\.csv, line 3: 26 fields"):
        read_credit_csv(tmp_path / "c.csv")


# ---------------------------------------------------------------- builders on synthetic data


def test_stratified_split_sizes_shares_and_determinism():
    y = np.array([0] * 164 + [1] * 139)  # Cleveland's labels
    train, test = stratified_split(y, 0.66, np.random.default_rng(0))
    assert (len(train), len(test)) == (199, 104)  # floor(0.66 * 303) = 199, FLamby's size
    assert np.sum(y[test]) == 48  # 104 * 139 / 303 = 47.7
    np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(303))
    again = stratified_split(y, 0.66, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip((train, test), again, strict=True))


def test_flamby_test_rows_have_flambys_sizes():
    sizes = {"cleveland": 104, "hungarian": 89, "switzerland": 16, "va": 45}
    for name, rows in FLAMBY_TEST_ROWS.items():
        assert len(rows) == sizes[name] and len(set(rows)) == len(rows)
        assert (
            list(rows) == sorted(rows)
            and rows[-1] < {104: 303, 89: 261, 16: 46, 45: 130}[len(rows)]
        )


def test_rul_cap_windows_and_padding():
    assert E.rul_targets(np.array([1, 1, 1]), np.array([1, 2, 3]), cap=125).tolist() == [2, 1, 0]
    assert E.rul_targets(np.array([1] * 200), np.arange(1, 201), cap=125).max() == 125
    S = np.arange(6.0).reshape(3, 2)  # an engine of 3 cycles, 2 sensors
    W = E.engine_windows(S, 5)  # (1, 5, 2): the first row repeated twice in front
    np.testing.assert_array_equal(W[0], [[0, 1], [0, 1], [0, 1], [2, 3], [4, 5]])
    assert E.engine_windows(S, 2).shape == (2, 2, 2)
    ramp = np.arange(10.0)[None, :, None] * 3  # slope 3 per cycle
    np.testing.assert_allclose(E.window_features(ramp), [[13.5, 3.0]])


def test_operating_condition_rounds_the_settings():
    table = {
        "setting1": np.array([0.0087, 42.0049, 24.998]),
        "setting2": np.array([-0.0006, 0.8405, 0.6203]),
        "setting3": np.array([100.0, 100.0, 60.0]),
    }
    assert E.operating_condition(table).tolist() == [0, 5, 3]
    table["setting3"][0] = 80.0
    with pytest.raises(ValueError, match="match none of the operating conditions"):
        E.operating_condition(table)


def test_engine_silos_on_a_tiny_synthetic_fleet(tmp_path, monkeypatch):
    """Two training engines (40 and 8 cycles), two test engines (12 and 3 cycles): the whole
    pipeline, with padding, the RUL cap and the official-test-RUL target."""
    train = [cmapss_line(1, c, level=c / 10) for c in range(1, 41)]
    train += [cmapss_line(2, c, level=1 - c / 10) for c in range(1, 9)]
    test = [cmapss_line(1, c, level=c / 10) for c in range(1, 13)]
    test += [cmapss_line(2, c) for c in range(1, 4)]
    for name, lines in (("train", train), ("test", test)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "rul.txt").write_text("30 \n4 \n")
    fleet = {
        "train": read_cmapss_trajectories(tmp_path / "train.txt"),
        "test": read_cmapss_trajectories(tmp_path / "test.txt"),
        "rul": read_cmapss_rul(tmp_path / "rul.txt"),
    }
    monkeypatch.setattr(E, "load_cmapss", lambda *a, **k: {"FD001": fleet})
    task = engine_silos(window=10, cap=25)
    X_tr, y_tr, X_te, y_te = task.silos["FD001"]
    assert len(y_tr) == (40 - 10 + 1) + 1  # engine 2 (8 cycles) gives one padded window
    assert y_tr.max() == 25 and y_tr.min() == 0 and y_tr.dtype == np.float32
    assert y_te.tolist() == [25, 4] and task.info["rul_test"]["FD001"].tolist() == [30, 4]
    assert task.info["padded"]["FD001"] == [2]
    assert X_tr.shape == (32, 30) and X_te.shape == (2, 30) and np.isfinite(X_tr).all()
    flat = engine_silos(window=10, cap=25, features="flat", cap_test=False)
    assert flat.silos["FD001"][2].shape == (2, 150) and flat.silos["FD001"][3].tolist() == [30, 4]
    assert flat.feature_names[:2] == ("s2_t-9", "s3_t-9")


def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        heart_silos(split="loo")
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        heart_silos(split="random", rng=0)
    with pytest.raises(ValueError, match="standardize must be one of"):
        air_silos(standardize="global")
    with pytest.raises(ValueError, match="features must be one of"):
        engine_silos(features="lstm")
    with pytest.raises(ValueError, match="stations must be names among"):
        load_beijing_air(["Haidian"], download=False)


# ---------------------------------------------------------------- real data


def check_silos(task: SiloTask, classification: bool):
    assert task.task == ("classification" if classification else "regression")
    for X_tr, y_tr, X_te, y_te in task.silos.values():
        for X, y in ((X_tr, y_tr), (X_te, y_te)):
            assert X.dtype == np.float32 and X.shape == (len(y), len(task.feature_names))
            assert np.isfinite(X).all() and len(y) > 0
            if classification:
                assert y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
            else:
                assert y.dtype == np.float32 and np.isfinite(y).all()


@pytest.fixture(scope="module")
def beijing():
    require_dataset("beijing-air")
    return load_beijing_air(download=False)


@pytest.fixture(scope="module")
def cmapss():
    require_dataset("cmapss")
    return load_cmapss(download=False)


def test_real_beijing_tables(beijing):
    assert list(beijing) == list(BEIJING_STATIONS)
    for table in beijing.values():
        assert all(len(v) == 35064 for v in table.values())
        assert (table["year"][0], table["month"][0], table["hour"][0]) == (2013, 3, 0)
        assert (table["year"][-1], table["month"][-1], table["day"][-1]) == (2017, 2, 28)
    aoti = beijing["Aotizhongxin"]
    na = {c: int(np.isnan(aoti[c]).sum()) for c in ("PM2.5", "CO", "TEMP", "wd", "WSPM")}
    assert na == {"PM2.5": 925, "CO": 1776, "TEMP": 20, "wd": 81, "WSPM": 14}
    pm = aoti["PM2.5"][~np.isnan(aoti["PM2.5"])]
    assert round(float(np.mean(pm > 75)), 3) == 0.407


def test_real_air_silos_temporal_split(beijing, monkeypatch):
    monkeypatch.setattr("minifed.applications.air.load_beijing_air", lambda *a, **k: beijing)
    task = air_silos()
    check_silos(task, classification=True)
    assert list(task.silos) == list(BEIJING_STATIONS)
    for name, (n_train, n_test) in task.sizes().items():
        _, _, is_test, keep = air_features(beijing[name])
        assert n_test == np.sum(keep & is_test) and n_train == np.sum(keep & ~is_test)
        assert np.sum(is_test) == 365 * 24  # 2016-03-01 .. 2017-02-28, every hour
        first = int(np.argmax(is_test))  # the rows are in time order: test is one final block
        assert is_test[first:].all() and not is_test[:first].any()
        t = beijing[name]
        assert (t["year"][first], t["month"][first], t["day"][first], t["hour"][first]) == (
            2016, 3, 1, 0,
        )  # fmt: skip
        assert n_train + n_test + task.info["dropped"][name] == 35064
        X_train = task.silos[name][0]
        np.testing.assert_allclose(X_train[:, :5].mean(axis=0), 0, atol=1e-4)  # own statistics
    rates = [r[0] for r in task.info["positive_rate"].values()]
    assert 0.30 < min(rates) < max(rates) < 0.44


def test_real_cmapss_counts(cmapss):
    engines = {s: len(np.unique(f["train"]["unit"])) for s, f in cmapss.items()}
    assert engines == {"FD001": 100, "FD002": 260, "FD003": 100, "FD004": 249}
    assert [len(f["rul"]) for f in cmapss.values()] == [100, 259, 100, 248]
    assert [len(f["train"]["cycle"]) for f in cmapss.values()] == [20631, 53759, 24720, 61249]


def test_real_dropped_sensors_have_zero_variance_within_conditions(cmapss):
    constant = set()
    for fleet in cmapss.values():
        condition = E.operating_condition(fleet["train"])
        for s in (f"s{i}" for i in range(1, 22)):
            values = fleet["train"][s]
            if all(np.ptp(values[condition == c]) == 0 for c in np.unique(condition)):
                constant.add(s)
    assert sorted(constant, key=lambda s: int(s[1:])) == list(E.DROPPED_SENSORS)


def test_real_engine_silos(cmapss, monkeypatch):
    monkeypatch.setattr(E, "load_cmapss", lambda *a, **k: cmapss)
    task = engine_silos()
    check_silos(task, classification=False)
    assert task.sizes() == {
        "FD001": (17731, 100), "FD002": (46219, 259), "FD003": (21820, 100), "FD004": (54028, 248),
    }  # fmt: skip
    for name, (_, y_tr, _, y_te) in task.silos.items():
        assert y_tr.min() == 0 and y_tr.max() == 125 and y_te.max() <= 125
        np.testing.assert_array_equal(y_te, np.minimum(task.info["rul_test"][name], 125))
    assert [len(p) for p in task.info["padded"].values()] == [0, 6, 0, 11]
    assert task.info["conditions"]["FD001"] == [0] and len(task.info["conditions"]["FD004"]) == 6


def test_real_credit(require_dataset):
    require_dataset("credit-default")
    table = load_credit_default(download=False)
    assert len(table["ID"]) == 30000 and int(table["default.payment.next.month"].sum()) == 6636
    task = credit_silos(rng=np.random.default_rng(0))
    check_silos(task, classification=True)
    assert list(task.silos) == ["graduate_school", "university", "high_school", "other"]
    totals = {
        k: (len(s[1]) + len(s[3]), int(s[1].sum() + s[3].sum())) for k, s in task.silos.items()
    }
    assert totals == {"graduate_school": (10585, 2036), "university": (14030, 3330),
                      "high_school": (4917, 1237), "other": (468, 33)}  # fmt: skip
    for _, y_tr, _, y_te in task.silos.values():  # stratified: shares equal up to one row
        assert abs(y_tr.mean() - y_te.mean()) < 2 / len(y_te)
    a = credit_silos(rng=np.random.default_rng(1), split="dirichlet", K=4, alpha=0.3)
    b = credit_silos(rng=np.random.default_rng(1), split="dirichlet", K=4, alpha=0.3)
    assert list(a.silos) == [f"bank_{k}" for k in range(4)]
    assert sum(sum(a.sizes()[k]) for k in a.silos) == 30000
    for sa, sb in zip(a.silos.values(), b.silos.values(), strict=True):
        assert all(np.array_equal(u, v) for u, v in zip(sa, sb, strict=True))


def test_real_heart_flamby_split(require_dataset):
    require_dataset("heart-disease")
    task = heart_silos()
    check_silos(task, classification=True)
    assert task.sizes() == {
        "cleveland": (199, 104), "hungarian": (172, 89), "switzerland": (30, 16), "va": (85, 45),
    }  # fmt: skip
    assert [int(s[3].sum()) for s in task.silos.values()] == [48, 33, 15, 35]
    assert int(task.silos["switzerland"][1].sum()) == 30  # FLamby: Swiss training rows all sick
    for X_tr, *_ in task.silos.values():  # each hospital's own training statistics
        np.testing.assert_allclose(X_tr.mean(axis=0), 0, atol=1e-5)
    rng_task = heart_silos(split="random", rng=np.random.default_rng(3))
    assert rng_task.sizes() == task.sizes()
