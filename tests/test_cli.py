"""The command line: the demo, ``run`` with its JSON and figure, and one-line errors."""

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from minifed.algorithms import ALGORITHMS
from minifed.cli import main


def assert_real_png(path):
    """A PNG that opens, has a sensible size and is not one flat colour."""
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # lines, text and axes, not a blank canvas


def test_run_writes_history_and_figure(tmp_path, capsys):
    out, plot = tmp_path / "h.json", tmp_path / "acc.png"
    argv = [
        "run",
        "--algorithm",
        "fedavg",
        "--dataset",
        "synthetic",
        "--model",
        "softmax",
        "--partition",
        "natural",
        "--fraction",
        "0.2",
        "--epochs",
        "2",
        "--batch-size",
        "10",
        "--lr",
        "0.01",
        "--rounds",
        "4",
        "--seed",
        "1",
        "--out",
        str(out),
        "--plot",
        str(plot),
    ]
    assert main(argv) == 0
    history = json.loads(out.read_text())
    assert history["config"]["epochs"] == 2 and history["config"]["batch_size"] == 10
    assert [r["round"] for r in history["rounds"]] == [0, 1, 2, 3, 4]
    for key in (
        "round",
        "train_loss",
        "test_loss",
        "test_accuracy",
        "bytes_up",
        "bytes_down",
        "seconds",
    ):
        assert key in history["rounds"][-1]
    assert_real_png(plot)


def test_run_with_two_workers_matches_one(tmp_path):
    histories = []
    for workers in (1, 2):
        out = tmp_path / f"h{workers}.json"
        argv = [
            "run",
            "--dataset",
            "blobs",
            "--clients",
            "10",
            "--fraction",
            "0.5",
            "--batch-size",
            "20",
            "--rounds",
            "2",
            "--workers",
            str(workers),
            "--out",
            str(out),
        ]
        assert main(argv) == 0
        histories.append([r["test_accuracy"] for r in json.loads(out.read_text())["rounds"]])
    assert histories[0] == histories[1]


def test_run_stops_at_target_accuracy(tmp_path):
    out = tmp_path / "h.json"
    argv = [
        "run",
        "--dataset",
        "blobs",
        "--model",
        "softmax",
        "--clients",
        "10",
        "--fraction",
        "0.5",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--lr",
        "0.05",
        "--rounds",
        "50",
        "--target-accuracy",
        "0.5",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    history = json.loads(out.read_text())
    assert history["stopped"] == "target" and len(history["rounds"]) < 51


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--fraction", "0"], "fraction"),
        (["run", "--epochs", "0"], "epochs"),
        (["run", "--lr", "-1"], "lr"),
        (["run", "--partition", "dirichlet:-1"], "alpha"),
        (["run", "--partition", "bogus"], "partition"),
        (["run", "--model", "resnet"], "model"),
        (["run", "--dataset", "blobs", "--model", "cnn"], "cnn"),
        (["run", "--algorithm", "fedsgd", "--epochs", "2"], "--epochs does not apply to fedsgd"),
        (["run", "--algorithm", "fedavg", "--mu", "0.1"], "--mu does not apply to fedavg"),
        (["run", "--algorithm", "fedadagrad", "--beta2", "0.9"], "--beta2 does not apply"),
        (["run", "--algorithm", "fedprox", "--mu", "-1"], "mu"),
        (["run", "--algorithm", "scaffold", "--option", "III"], "option"),
        (["run", "--algorithm", "fedadam", "--tau", "0"], "tau"),
        (["run", "--algorithm", "fedadmm"], "fedadmm needs --rho"),
    ],
)
def test_bad_settings_exit_2_with_one_line(argv, message, capsys):
    assert main([*argv, "--rounds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_help_lists_each_algorithm_with_its_settings(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for name, cls in ALGORITHMS.items():
        line = next(line for line in text.splitlines() if line.split()[:1] == [name])
        for setting in inspect.signature(cls).parameters:
            assert setting == "model" or setting in line, (name, setting)


@pytest.mark.parametrize(
    ("algorithm", "flags", "config"),
    [
        ("fedprox", ["--mu", "0.5", "--stragglers", "0.5", "--epochs", "2"], {"mu": 0.5}),
        ("scaffold", ["--server-lr", "0.5", "--option", "I"], {"server_lr": 0.5, "option": "I"}),
        ("fedadam", ["--beta2", "0.9", "--tau", "0.01"], {"beta2": 0.9, "tau": 0.01}),
        ("fedavgm", ["--momentum", "0.5"], {"momentum": 0.5, "server_lr": 1.0}),
        ("fedadmm", ["--rho", "2", "--epochs", "2"], {"rho": 2.0, "epochs": 2}),
    ],
)
def test_each_algorithm_runs_with_its_own_flags(tmp_path, algorithm, flags, config):
    out = tmp_path / "h.json"
    argv = ["run", "--algorithm", algorithm, "--dataset", "blobs", "--clients", "6", "--rounds",
            "2", "--batch-size", "20", "--lr", "0.05", *flags, "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads(out.read_text())["config"]
    assert saved["algorithm"] == algorithm and config.items() <= saved.items()


def test_missing_data_exits_2_with_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIFED_DATA", str(tmp_path))
    monkeypatch.setenv("MINIFED_CACHE", str(tmp_path / "cache"))
    code = main(["run", "--dataset", "optdigits", "--data-dir", str(tmp_path), "--no-download"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path) in err


def test_bad_flag_value_is_argparse_error():
    result = subprocess.run(
        [sys.executable, "-m", "minifed", "run", "--batch-size", "ten"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--batch-size" in result.stderr


def test_demo_on_synthetic_data(tmp_path, capsys):
    path = tmp_path / "demo.png"
    assert main(["demo", "--dataset", "synthetic", "--out", str(path)]) == 0
    text = capsys.readouterr().out
    assert "FedSGD" in text and "FedAvg" in text and "rounds to target" in text
    assert_real_png(path)


def test_demo_as_a_new_user_runs_it(tmp_path):
    """``python -m minifed demo`` in a subprocess, as the README says."""
    result = subprocess.run(
        [sys.executable, "-m", "minifed", "demo", "--out", "d.png"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert_real_png(tmp_path / "d.png")
    rows = [line for line in result.stdout.splitlines() if line.startswith(("FedSGD", "FedAvg"))]
    assert len(rows) == 2 and np.isfinite(float(rows[0].split()[-1]))


def test_demo_falls_back_to_synthetic_without_fashion_mnist(monkeypatch):
    import minifed.demo
    from minifed.data import DatasetNotFoundError

    real = minifed.demo.load_federation

    def without_fashion_mnist(dataset, *args, **kwargs):
        if dataset == "fashion-mnist":
            raise DatasetNotFoundError("not installed")
        return real(dataset, *args, **kwargs)

    monkeypatch.setattr(minifed.demo, "load_federation", without_fashion_mnist)
    runs, target, data = minifed.demo.demo_runs("auto")
    assert data.name.startswith("synthetic") and set(runs) == {"FedSGD", "FedAvg (E=5, B=50)"}
    assert target == minifed.demo.SETTINGS["synthetic"][3]
