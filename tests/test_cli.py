"""The command line: the demo, ``run`` with its JSON and figure, and one-line errors."""

import inspect
import json
import re
import signal
import subprocess
import sys
import time

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


def test_help_lists_the_data_sets_with_natural_silos(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in ("heart-disease", "beijing-air", "cmapss", "credit-default"):
        assert name in text.split("--dataset {", 1)[1].split("}", 1)[0]
    assert "natural: the data's own clients" in text


def test_per_client_summary_names_each_client():
    from minifed.cli.outputs import per_client_summary

    record = {"client_test_loss": [0.5, 0.25], "client_test_accuracy": [0.75, 1.0]}
    lines = per_client_summary(record, ["north", "south"]).splitlines()
    assert lines[1].split() == ["client", "test", "accuracy", "test", "loss"]
    assert lines[2].split() == ["north", "0.7500", "0.5000"]
    regression = per_client_summary({"client_test_loss": [2.0], "client_test_accuracy": None})
    assert regression.splitlines()[-1].split() == ["client", "0", "2.0000"]


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


# ----- a run never loses its work: checks before work, history kept on every exit -----

BLOBS = ["run", "--dataset", "blobs", "--clients", "6", "--fraction", "0.5", "--batch-size", "20"]


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if a command loads data: its flags should have been refused first."""

    def refuse(*args, **kwargs):
        raise AssertionError("data were loaded before the flags were checked")

    monkeypatch.setattr("minifed.cli.load_federation", refuse)


def one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--target-accuracy", "1.5"], ["--target-accuracy"]),
        (["--workers", "0"], ["workers"]),
        (["--seed", "-1"], ["seed"]),
        (["--model", "linreg"], ["--model linreg", "class labels"]),
        (["--dataset", "linreg", "--model", "softmax"], ["real-valued targets", "linreg"]),
        (["--dataset", "cmapss", "--model", "logreg"], ["real-valued targets", "linreg"]),
        (["--dataset", "credit-default", "--model", "linreg"], ["class labels"]),
        (
            ["--dataset", "cmapss", "--model", "linreg", "--target-accuracy", "0.5"],
            ["--target-accuracy", "regression"],
        ),
    ],
)
def test_flags_are_checked_before_any_data_is_loaded(no_data, capsys, flags, words):
    assert main([*BLOBS, *flags]) == 2
    one_line_error(capsys, *words)


@pytest.mark.parametrize("flag", ["--out", "--plot", "--checkpoint"])
def test_output_paths_are_checked_before_training(tmp_path, no_data, capsys, flag):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert main([*BLOBS, flag, str(a_file / "h.json")]) == 2  # parent is a file
    one_line_error(capsys, flag, "is a file, not a folder")
    assert main([*BLOBS, flag, str(tmp_path)]) == 2  # an existing folder
    one_line_error(capsys, flag, "is a folder")


def test_an_unwritable_output_folder_is_refused(tmp_path, no_data, monkeypatch, capsys):
    monkeypatch.setattr("os.access", lambda path, mode: False)  # root can write anywhere
    assert main([*BLOBS, "--out", str(tmp_path / "h.json")]) == 2
    one_line_error(capsys, "--out", "not writable")
    assert main(["demo", "--out", str(tmp_path / "d.png")]) == 2
    one_line_error(capsys, "--out", "not writable")


def test_workers_beyond_the_clients_per_round_are_capped_with_a_note(tmp_path, capsys):
    assert main([*BLOBS, "--rounds", "1", "--workers", "8"]) == 0
    out = capsys.readouterr().out
    assert "note: --workers 8 capped at" in out
    assert re.search(r"round 1: test accuracy \d\.\d{4}, test loss \d+\.\d{4}$", out.strip())


def test_divergence_exits_1_and_keeps_the_finished_rounds(tmp_path, capsys):
    out = tmp_path / "h.json"
    argv = ["run", "--dataset", "linreg", "--model", "linreg", "--clients", "4", "--lr", "5",
            "--epochs", "3", "--rounds", "30", "--out", str(out)]  # fmt: skip
    assert main(argv) == 1
    err = one_line_error(capsys, "lower the learning rate", "finished rounds is in", str(out))
    n = int(re.search(r"its (\d+) finished rounds", err).group(1))
    assert len(json.loads(out.read_text())["rounds"]) == n >= 1


def test_ctrl_c_exits_130_in_one_line_with_the_history_written(tmp_path, monkeypatch, capsys):
    import minifed.cli

    real_run = minifed.cli.run

    def interrupted_run(*args, **kwargs):
        def ctrl_c(record, w):
            if record["round"] == 2:
                raise KeyboardInterrupt

        return real_run(*args, callbacks=[ctrl_c], **kwargs)

    monkeypatch.setattr(minifed.cli, "run", interrupted_run)
    out, ckpt = tmp_path / "h.json", tmp_path / "c.npz"
    argv = [*BLOBS, "--rounds", "9", "--out", str(out), "--checkpoint", str(ckpt)]
    assert main(argv) == 130
    one_line_error(capsys, "interrupted", "3 finished rounds")
    assert len(json.loads(out.read_text())["rounds"]) == 3
    monkeypatch.setattr(minifed.cli, "run", real_run)
    assert main(argv) == 0  # the same command resumes from the checkpoint
    assert len(json.loads(out.read_text())["rounds"]) == 10


def test_a_real_sigint_ends_the_command_with_130(tmp_path):
    out = tmp_path / "h.json"
    argv = [*BLOBS, "--rounds", "100000", "--eval-every", "1000", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "minifed", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdout.readline()  # the data set line: the run is about to start
    proc.stdout.readline()
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err and str(out) in err
    assert len(json.loads(out.read_text())["rounds"]) > 1
