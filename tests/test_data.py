"""Tests of minifed.data: synthetic generators, IDX reader, lookup/download/cache, real loaders.

No test touches the internet: downloads go to a fake opener or to an HTTP server on 127.0.0.1.
Real-data tests use the ``require_dataset`` fixture of conftest.py (skip when the data are
absent, fail when ``CI=true``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import struct
import threading

import numpy as np
import pytest
from conftest import FakeOpener

from minifed.data import (
    ChecksumError,
    DataFile,
    DatasetNotFoundError,
    DataSource,
    fedprox_synthetic,
    gaussian_blobs,
    linear_regression,
    load_fashion_mnist,
    load_heart_disease,
    load_mnist,
    load_optdigits,
    locate,
    read_idx,
)
from minifed.data.synthetic import fedprox_device_sizes

# ---------------------------------------------------------------- synthetic generators


def rng(seed=0):
    return np.random.default_rng(seed)


def test_linear_regression_shapes_and_exact_model():
    X, y, w_true = linear_regression(50, 4, noise=0.0, rng=rng())
    assert X.shape == (50, 4) and X.dtype == np.float32
    assert y.shape == (50,) and w_true.shape == (5,)
    np.testing.assert_allclose(X @ w_true[:-1] + w_true[-1], y, atol=1e-5)


def test_linear_regression_noise_has_requested_std():
    X, y, w_true = linear_regression(20000, 3, noise=0.5, rng=rng(1))
    residual = y - (X @ w_true[:-1] + w_true[-1])
    assert abs(residual.std() - 0.5) < 0.02


def test_generators_are_deterministic_given_the_seed():
    for make in (
        lambda r: linear_regression(30, rng=r),
        lambda r: fedprox_synthetic(0.5, 0.5, 5, rng=r),
        lambda r: fedprox_synthetic(0, 0, 5, rng=r, iid=True),
        lambda r: gaussian_blobs(40, 3, rng=r),
    ):
        for a, b in zip(make(rng(7)), make(rng(7)), strict=True):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(make(rng(7))[0], make(rng(8))[0])


def test_fedprox_shapes_and_device_ids():
    X, y, device_ids = fedprox_synthetic(1, 1, 6, rng=rng())
    assert X.shape[1] == 60 and X.dtype == np.float32
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() < 10
    assert device_ids.dtype == np.int64 and len(X) == len(y) == len(device_ids)
    counts = np.bincount(device_ids)
    assert len(counts) == 6 and counts.min() >= 50
    assert np.all(np.diff(device_ids) >= 0)  # grouped by device


def test_fedprox_sizes_follow_lognormal_4_2_plus_50():
    n_k = fedprox_device_sizes(4000, rng=rng(3))
    assert n_k.min() >= 50
    assert 45 < np.median(n_k - 50) < 65  # median of LogNormal(4, 2) is e^4 ~ 54.6
    assert n_k.max() > 20 * np.median(n_k)  # heavy tail


def _label_skew(y, device_ids):
    """Mean total-variation distance between each device's label histogram and the pooled one."""
    pooled = np.bincount(y, minlength=10) / len(y)
    tv = [
        0.5
        * np.abs(
            np.bincount(y[device_ids == k], minlength=10) / np.sum(device_ids == k) - pooled
        ).sum()
        for k in np.unique(device_ids)
    ]
    return float(np.mean(tv))


def test_fedprox_label_skew_grows_from_iid_to_large_beta():
    skew = {
        "iid": _label_skew(*fedprox_synthetic(0, 0, 30, rng=rng(0), iid=True)[1:]),
        "0,0": _label_skew(*fedprox_synthetic(0, 0, 30, rng=rng(0))[1:]),
        "0,4": _label_skew(*fedprox_synthetic(0, 4, 30, rng=rng(0))[1:]),
    }
    assert skew["iid"] < 0.15 < skew["0,0"] < skew["0,4"]


def test_fedprox_alpha_shifts_every_class_score_equally():
    # W_k and b_k share the mean u_k, so u_k adds u_k (sum x + 1) to every class score: with the
    # same draws, alpha does not change the labels (up to float rounding of near-ties).
    _, y0, _ = fedprox_synthetic(0, 1, 10, rng=rng(5))
    _, y1, _ = fedprox_synthetic(1, 1, 10, rng=rng(5))
    assert np.mean(y0 == y1) > 0.99


def test_fedprox_iid_rejects_alpha_beta():
    with pytest.raises(ValueError, match="iid=True"):
        fedprox_synthetic(1, 0, rng=rng(), iid=True)


def test_generators_demand_a_generator():
    with pytest.raises(TypeError, match="rng"):
        gaussian_blobs(10, 2, rng=0)
    with pytest.raises(ValueError, match="n_samples"):
        linear_regression(0, rng=rng())


def test_gaussian_blobs_balanced_and_clustered():
    X, y = gaussian_blobs(301, 3, num_features=4, spread=0.1, rng=rng(2))
    assert X.shape == (301, 4) and np.bincount(y).tolist() == [101, 100, 100]
    centres = np.stack([X[y == c].mean(axis=0) for c in range(3)])
    assert max(X[y == c].std(axis=0).max() for c in range(3)) < 0.2
    assert np.min(np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(3) * 99) > 1


# ---------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """IDX encoding written independently of the reader, with struct."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize(
    ("dtype", "code"), [(np.uint8, 0x08), (np.int16, 0x0B), (np.int32, 0x0C), (np.float64, 0x0E)]
)
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, code, compress):
    array = (np.arange(2 * 3 * 4) * 3 - 5 * (dtype != np.uint8)).astype(dtype).reshape(2, 3, 4)
    raw = idx_bytes(array, code)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_idx_truncated_or_not_idx(tmp_path):
    raw = idx_bytes(np.zeros((5, 2), np.uint8), 0x08)
    cases = {
        "short.idx": (raw[:-1], "truncated"),
        "long.idx": (raw + b"\0", "longer"),
        "header.idx": (raw[:6], "header"),
        "text.idx": (b"hello world", "not an IDX"),
        "empty.idx": (b"", "not an IDX"),
        "cut.gz": (gzip.compress(raw)[:-6], "gzip"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message) as info:
            read_idx(tmp_path / name)
        assert name in str(info.value)


# ---------------------------------------------------------------- lookup, download, cache

CONTENT = {"a": b"first file\n", "b": b"second file\n"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_source(system_dir=None, base_url="fake://host/") -> DataSource:
    files = {
        key: DataFile(f"{key}.txt", (f"{base_url}{key}.txt",), (sha(data),))
        for key, data in CONTENT.items()
    }
    system = (str(system_dir),) if system_dir else ()
    return DataSource("toy", files, system_dirs=system, hint="apt-get install toy-data")


def fill(folder, content=CONTENT):
    folder.mkdir(parents=True, exist_ok=True)
    for key, data in content.items():
        (folder / f"{key}.txt").write_bytes(data)
    return folder


def test_lookup_order_data_dir_env_system_cache(env, monkeypatch):
    places = {p: fill(env / p / "toy") for p in ("arg", "envdata", "cache")}
    places["system"] = fill(env / "system")
    monkeypatch.setenv("MINIFED_DATA", str(env / "envdata"))
    source = make_source(system_dir=places["system"])
    opener = FakeOpener({})
    for winner in ("arg", "envdata", "system", "cache"):
        found = locate(source, data_dir=env / "arg", opener=opener)
        assert found == {k: places[winner] / f"{k}.txt" for k in CONTENT}
        (places[winner] / "a.txt").unlink()  # now incomplete: the next place wins
    assert opener.calls == []
    opener.pages["fake://host/a.txt"] = CONTENT["a"]
    found = locate(source, data_dir=env / "arg", opener=opener)
    assert opener.calls == ["fake://host/a.txt"]  # only the file missing from the cache
    assert found["a"].read_bytes() == CONTENT["a"] and found["a"].parent == places["cache"]


def test_data_dir_may_be_the_dataset_folder_itself(env):
    folder = fill(env / "flat")
    assert locate(make_source(), data_dir=folder, download=False)["b"] == folder / "b.txt"


def test_files_selects_a_subset(env):
    fill(env / "d" / "toy", {"a": CONTENT["a"]})
    found = locate(make_source(), data_dir=env / "d", download=False, files=["a"])
    assert list(found) == ["a"]
    with pytest.raises(ValueError, match="unknown keys"):
        locate(make_source(), data_dir=env / "d", files=["zzz"])


def test_wrong_file_in_data_dir_is_a_checksum_error(env):
    folder = fill(env / "d", {"a": b"tampered\n", "b": CONTENT["b"]})
    with pytest.raises(ChecksumError) as info:
        locate(make_source(), data_dir=folder, download=False)
    message = str(info.value)
    assert "a.txt" in message and sha(CONTENT["a"]) in message and sha(b"tampered\n") in message


def test_download_with_fake_opener_then_cached(env):
    opener = FakeOpener({f"fake://host/{k}.txt": v for k, v in CONTENT.items()})
    found = locate(make_source(), opener=opener)
    assert {k: p.read_bytes() for k, p in found.items()} == CONTENT
    assert found["a"].parent == env / "cache" / "toy"
    again = locate(make_source(), opener=opener)
    assert again == found and len(opener.calls) == 2  # no second download


def test_download_falls_back_to_next_mirror(env):
    source = make_source()
    files = {
        k: DataFile(f.path, ("fake://down/x", *f.urls), f.sha256) for k, f in source.files.items()
    }
    opener = FakeOpener({f"fake://host/{k}.txt": v for k, v in CONTENT.items()})
    found = locate(DataSource("toy", files), opener=opener)
    assert found["b"].read_bytes() == CONTENT["b"]


def test_corrupted_download_leaves_nothing(env):
    opener = FakeOpener({"fake://host/a.txt": b"evil\n", "fake://host/b.txt": CONTENT["b"]})
    with pytest.raises(ChecksumError) as info:
        locate(make_source(), opener=opener, files=["a"])
    message = str(info.value)
    assert "a.txt" in message and sha(CONTENT["a"]) in message and sha(b"evil\n") in message
    assert list((env / "cache" / "toy").iterdir()) == []


def test_not_found_lists_every_place(env, monkeypatch):
    monkeypatch.setenv("MINIFED_DATA", str(env / "envdata"))
    source = make_source(system_dir=env / "system")
    with pytest.raises(DatasetNotFoundError) as info:
        locate(source, data_dir=env / "arg", download=False)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for place in ("arg", "envdata", "system", "cache", "download=False", "MINIFED_DATA"):
        assert place in message
    assert "apt-get install toy-data" in message and "data_dir" in message


@pytest.mark.parametrize("value", ["1", "true"])
def test_env_var_disables_download(env, monkeypatch, value):
    monkeypatch.setenv("MINIFED_NO_DOWNLOAD", value)
    opener = FakeOpener({f"fake://host/{k}.txt": v for k, v in CONTENT.items()})
    with pytest.raises(DatasetNotFoundError, match="MINIFED_NO_DOWNLOAD"):
        locate(make_source(), opener=opener)
    assert opener.calls == []


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """Serve ``tmp_path/www`` on 127.0.0.1 in a thread; yield ``(folder, base_url)``."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_download_from_local_http_server(env, http_root):
    root, url = http_root
    fill(root)
    found = locate(make_source(base_url=url))
    assert found["a"].read_bytes() == CONTENT["a"]
    for path in root.iterdir():
        path.unlink()  # the server is now empty: a second download would fail
    assert locate(make_source(base_url=url)) == found


def test_corrupted_file_from_local_http_server(env, http_root):
    root, url = http_root
    fill(root, {"a": b"corrupt", "b": CONTENT["b"]})
    with pytest.raises(ChecksumError, match=sha(b"corrupt")):
        locate(make_source(base_url=url))
    assert not (env / "cache" / "toy" / "a.txt").exists()
    assert not [p for p in (env / "cache" / "toy").iterdir() if p.name.endswith(".part")]


def test_404_from_local_http_server(env, http_root):
    _, url = http_root
    with pytest.raises(DatasetNotFoundError, match="404") as info:
        locate(make_source(base_url=url))
    assert f"{url}a.txt" in str(info.value)


# ---------------------------------------------------------------- real data sets


def test_split_is_validated():
    for load in (load_mnist, load_fashion_mnist, load_optdigits):
        with pytest.raises(ValueError, match="split"):
            load("validation", download=False)


@pytest.mark.parametrize(
    ("name", "load", "first_counts"),
    [
        ("mnist", load_mnist, {"train": 5923, "test": 980}),
        ("fashion-mnist", load_fashion_mnist, {"train": 6000, "test": 1000}),
    ],
)
def test_real_idx_datasets(require_dataset, name, load, first_counts):
    require_dataset(name)
    for split, n in (("train", 60000), ("test", 10000)):
        X, y = load(split, download=False)
        assert X.shape == (n, 784) and X.dtype == np.float32 and y.dtype == np.int64
        assert X.min() == 0.0 and X.max() == 1.0
        assert np.bincount(y)[0] == first_counts[split] and y.max() == 9


def test_real_heart_disease_counts(require_dataset):
    require_dataset("heart-disease")
    clients = load_heart_disease(download=False)
    assert [len(X) for X, _ in clients] == [303, 261, 46, 130]
    for X, y in clients:
        assert X.shape[1] == 10 and X.dtype == np.float32 and np.isfinite(X).all()
        assert y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
    assert int(clients[0][1].sum()) == 303 - 164  # Cleveland: 164 rows with num == 0


def test_real_optdigits_counts(require_dataset):
    require_dataset("optdigits")
    for split, n, zeros in (("train", 3823, 376), ("test", 1797, 178)):
        X, y = load_optdigits(split, download=False)
        assert X.shape == (n, 64) and X.dtype == np.float32 and 0 <= X.min() and X.max() <= 1
        assert y.dtype == np.int64 and np.bincount(y)[0] == zeros
