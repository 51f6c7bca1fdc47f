"""The README's promises: its test command is what CI runs, and its code example runs."""

import re
from pathlib import Path

from conftest import require_dataset

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    quick_start = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert len(commands) == 2 and "minifed demo" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in [line.strip() for line in ci]


def test_readme_code_example_runs(tmp_path, monkeypatch):
    require_dataset("fashion-mnist")
    section = README.split("## In code", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```python")[1:]]
    assert len(blocks) == 2  # FedAvg, then SCAFFOLD with workers and a checkpoint
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code in blocks:
        code = re.sub(r"rounds=\d+", "rounds=1", code)  # the same code, one round
        exec(compile(code, "README.md", "exec"), namespace)
        assert namespace["history"].rounds[-1]["round"] == 1
    assert (tmp_path / "fedavg.json").exists() and (tmp_path / "scaffold.npz").exists()
    assert namespace["history"].config["algorithm"] == "scaffold"


def test_reproduction_table_matches_the_recorded_histories():
    from minifed.simulation import History

    section = README.split("## Reproducing the FedAvg paper", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\| (non-)?IID \|", line)]
    assert len(rows) == 8
    results = ROOT / "benchmarks" / "results" / "fedavg_mnist"
    for row in rows:
        data, C, B, lr, _paper, ours = [c.strip() for c in row.strip("|").split("|")][:6]
        cell = f"2nn-{data.lower().replace('-', '')}-C{C}-E1-B{B}"
        history = History.load(results / f"{cell}.json")
        assert history.rounds_to(0.97) == int(ours), cell
        assert history.config["lr"] == float(lr), cell


def test_cnn_reproduction_rows_match_the_recorded_histories():
    from minifed.simulation import History

    section = README.split("## Reproducing the FedAvg paper", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| CNN ")]
    assert rows and rows[0].startswith("| CNN data")
    results = ROOT / "benchmarks" / "results" / "fedavg_mnist"
    for row in rows[1:]:
        data, E, B, lr, _paper, ours = [c.strip() for c in row.strip("|").split("|")]
        part = data.split()[1].lower().replace("-", "")
        history = History.load(results / f"cnn-{part}-C0.1-E{E}-B{B}.json")
        if ours.startswith("not reached"):  # e.g. "not reached in 530 (best 0.9891 at 496)"
            t, acc = history.metric("test_accuracy")
            assert history.rounds_to(0.99) is None
            assert ours == f"not reached in {t[-1]} (best {acc.max():.4f} at {t[acc.argmax()]})"
        else:
            assert history.rounds_to(0.99) == int(ours)
        assert history.config["lr"] == float(lr)


def test_fedprox_reproduction_rows_match_the_recorded_histories():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "reproduce_fedprox", ROOT / "benchmarks" / "reproduce_fedprox.py"
    )
    rp = importlib.util.module_from_spec(spec)
    sys.modules["reproduce_fedprox"] = rp
    spec.loader.exec_module(rp)
    histories = rp.load_results()
    section = README.split("## Reproducing the FedProx paper", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| Synthetic(")]
    assert len(rows) == 9
    for row in rows:
        data, x, F, acc, gain = [c.strip() for c in row.strip("|").split("|")]
        a = float(data[len("Synthetic(") :].split(",")[0])
        x = int(x.rstrip("%")) / 100
        runs = [histories[rp.Cell(a, a, x, m).id] for m in ("fedavg", "fedprox_mu0", "fedprox_mu1")]
        assert F == " / ".join(f"{rp.tail_mean(h, 'train_loss'):.3f}" for h in runs)
        assert acc == " / ".join(f"{rp.tail_mean(h, 'test_accuracy'):.3f}" for h in runs)
        assert gain == f"{rp.gain(histories, a, x):+.1f}"
    # the prose: mu = 1 the steadiest everywhere; at 90 % dropping stragglers hurts everywhere
    for a in (0.0, 0.5, 1.0):
        for x in (0.0, 0.5, 0.9):
            steadiness = [rp.stat(histories, a, x, m, rp.oscillation)
                          for m in ("fedavg", "fedprox_mu0", "fedprox_mu1")]  # fmt: skip
            assert steadiness[2] < min(steadiness[:2])
            assert rp.stat(histories, a, x, "fedprox_mu0", rp.argmin_round) <= 10
            assert rp.device_gain(histories, a, x) > 0
        assert rp.drop_gap(histories, a, 0.9) > 0 and rp.drop_accuracy(histories, a, 0.9) > 0
