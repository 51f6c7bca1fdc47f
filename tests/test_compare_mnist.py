"""The algorithm comparison script (benchmarks/compare_mnist.py): its pieces on a tiny federation,
and that the committed table and the chosen settings agree with the recorded histories (these
tests read the JSON only; none needs MNIST)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import blobs_federation, load_script

from minifed.simulation import History

ROOT = Path(__file__).resolve().parent.parent
cm = load_script("compare_mnist")


def tiny_federation():
    return blobs_federation(K=10, n=300, d=8, separation=0.3)  # overlapping: never 100%


def fake_history(acc, bytes_per_round=1_000_000, diverged_at=None):
    rounds = [{"round": t, "test_accuracy": a, "seconds": 1.0, "eval_seconds": 0.0,
               "bytes_up": 0 if t == 0 else bytes_per_round // 2,
               "bytes_down": 0 if t == 0 else bytes_per_round // 2}
              for t, a in enumerate(acc)]  # fmt: skip
    config = {} if diverged_at is None else {"diverged_at": diverged_at}
    return History(config, rounds)


def test_every_algorithm_gets_the_same_local_work_and_its_own_settings():
    data = tiny_federation()
    runs = cm.comparison()
    assert list(runs) == [*cm.LABELS, *cm.LR_CHECK]
    assert [runs[n].algorithm for n in cm.LR_CHECK] == ["fedavg", "scaffold"]
    assert {runs[n].lr for n in cm.LR_CHECK} == {0.1}
    for name, candidate in cm.CANDIDATES.items():
        algo = cm.algorithm(candidate, data)
        assert algo.name == candidate.algorithm and name.startswith(algo.name)
        assert (algo.epochs, algo.batch_size) == (cm.E, cm.B)
        assert all(getattr(algo, k) == v for k, v in candidate.settings.items())
    assert {runs[n].lr for n in cm.LABELS} == {cm.LR}  # one client step for all
    for algo, group in cm.SWEEP.items():
        assert cm.CHOSEN[algo] in [c.name for c in group]


@pytest.mark.parametrize("name", ["scaffold", "fedadmm-rho0.1"])  # server and client state
def test_a_run_resumes_and_a_shorter_run_is_a_prefix(tmp_path, name):
    data, candidate = tiny_federation(), cm.CANDIDATES[name]
    ckpt = tmp_path / "ckpt"
    first = cm.run_candidate(candidate, data, 3, tmp_path / "a.json", checkpoints=ckpt)
    resumed = cm.run_candidate(candidate, data, 6, tmp_path / "b.json", checkpoints=ckpt)
    direct = cm.run_candidate(candidate, data, 6, tmp_path / "c.json", checkpoints=tmp_path / "d")
    again = cm.run_candidate(candidate, data, 3, tmp_path / "e.json", checkpoints=ckpt)
    assert len(first) == 4 and len(resumed) == 7 and len(again) == 4
    acc = [r["test_accuracy"] for r in resumed.rounds]
    assert acc == [r["test_accuracy"] for r in direct.rounds]
    assert [r["test_accuracy"] for r in again.rounds] == acc[:4]
    saved = History.load(tmp_path / "b.json")
    assert saved.config["candidate"] == name and saved.config["rounds"] == 6


def test_sweep_score_is_the_late_mean_and_a_divergence_counts_zero():
    steady = fake_history([0.1] + [0.8] * 40)
    fast_then_noisy = fake_history([0.1] + [0.9] * 20 + [0.95, 0.65] * 10)
    diverged = fake_history([0.1] + [0.9] * 30, diverged_at=31)
    assert cm.sweep_score(steady) == pytest.approx(0.8)
    assert cm.sweep_score(fast_then_noisy) == pytest.approx(0.8)
    assert cm.sweep_score(diverged) == pytest.approx(0.9 * 10 / 20)
    runs = {"a": steady, "b": fake_history([0.1] + [0.85] * 40), "c": diverged}
    assert cm.choose(runs) == "b"


def test_table_gives_rounds_and_megabytes_to_each_target():
    acc = [0.1, 0.5, 0.91, 0.85, 0.93, 0.96, 0.94]
    text = cm.table({"fedavg": fake_history(acc, 16_000_000),
                     "scaffold": fake_history(acc[:5], 32_000_000)})  # fmt: skip
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines()[2:]}  # fmt: skip
    assert list(rows) == ["FedAvg", "SCAFFOLD"]
    fedavg, scaffold = rows["FedAvg"], rows["SCAFFOLD"]
    assert fedavg[2:8] == ["2", "5", "0.9600 (5)", "0.9400", f"{np.mean(acc[-10:]):.4f}", "16.00"]
    assert fedavg[8:10] == ["32", "80"]  # MB through rounds 2 and 5
    assert scaffold[2:4] == ["2", "not reached in 4"] and scaffold[8:10] == ["64", "-"]


def test_table_and_figure_mark_a_divergence(tmp_path):
    diverged = fake_history([0.1, 0.92, 0.96, 0.05], diverged_at=4)
    row = cm.table({"scaffold": diverged}).splitlines()[2]
    assert "| 0.9600 (2) | diverged at round 4 | - |" in row
    runs = {"scaffold": diverged, "fedavg-lr0.1": fake_history([0.1, 0.9, 0.95])}
    assert cm.plot(runs, tmp_path / "compare.png").stat().st_size > 10_000


def test_running_best_and_figure(tmp_path):
    assert cm.running_best(np.array([0.2, 0.1, 0.3])).tolist() == [0.2, 0.2, 0.3]
    runs = {"fedavg": fake_history([0.1, 0.85, 0.92]), "fedadam": fake_history([0.1, 0.9, 0.8]),
            "scaffold-lr0.1": fake_history([0.1, 0.8, 0.93])}  # fmt: skip
    path = cm.plot(runs, tmp_path / "compare.png")
    assert path.stat().st_size > 10_000


def test_unknown_run_names_are_refused():
    with pytest.raises(SystemExit):
        cm.main(["run", "fedsgd"])


# --- the recorded experiment -------------------------------------------------------------------


def recorded():
    histories, sweep = cm.load(cm.RESULTS), cm.load(cm.RESULTS / "sweep")
    assert set(histories) == set(cm.comparison()), "run `compare_mnist.py run --all` and commit"
    return histories, sweep


def test_committed_markdown_agrees_with_the_recorded_histories():
    histories, sweep = recorded()
    committed = (ROOT / "figures" / "compare_mnist_table.md").read_text()
    assert committed == cm.markdown(histories, sweep)


def test_recorded_runs_use_the_stated_settings_and_evaluate_every_round():
    histories, _ = recorded()
    for name, candidate in cm.comparison().items():
        h = histories[name]
        c = h.config
        assert c["candidate"] == candidate.name and c["algorithm"] == candidate.algorithm
        assert (c["lr"], c["epochs"], c["batch_size"], c["fraction"]) == (
            candidate.lr, cm.E, cm.B, cm.C)  # fmt: skip
        assert (c["seed"], c["K"], c["rounds"], c["eval_every"]) == (0, 100, cm.ROUNDS, 1)
        assert c["dataset"] == "mnist (shards:2, K=100)"
        assert all(c[k] == v for k, v in candidate.settings.items())
        last = c["diverged_at"] - 1 if "diverged_at" in c else cm.ROUNDS  # the table says so
        assert [r["round"] for r in h.rounds] == list(range(last + 1))
        assert all(r["test_accuracy"] is not None for r in h.rounds)


def test_chosen_settings_win_the_recorded_sweep_and_start_the_full_runs():
    histories, sweep = recorded()
    for algo, group in cm.SWEEP.items():
        assert cm.choose({c.name: sweep[c.name] for c in group}) == cm.CHOSEN[algo]
        first = [r["test_accuracy"] for r in histories[algo].rounds[: cm.SWEEP_ROUNDS + 1]]
        assert first == [r["test_accuracy"] for r in sweep[cm.CHOSEN[algo]].rounds]
