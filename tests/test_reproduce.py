"""The FedAvg-paper reproduction script's logic, on a tiny federation (no MNIST needed)."""

import pytest
from conftest import blobs_federation, load_script

from minifed.simulation import History

rf = load_script("reproduce_fedavg")


def tiny_federation():
    return blobs_federation(K=10, n=300, d=8, separation=0.3)  # overlapping: never 100%


def test_cells_carry_the_papers_numbers():
    assert rf.find_cell("2nn-iid-C0.1-E1-B10").paper_rounds == 87
    assert rf.find_cell("2nn-noniid-C0.0-E1-Binf").paper_rounds == 4278
    assert rf.find_cell("cnn-noniid-C0.1-E5-B10").paper_rounds == 229
    fedsgd = rf.find_cell("cnn-iid-C0.1-E1-Binf")
    assert fedsgd.is_fedsgd and fedsgd.paper_rounds == 626
    assert rf.find_cell("cnn-iid-C0.1-E5-B10").baseline == fedsgd
    assert rf.find_cell("2nn-iid-C0.1-E1-B10").baseline.id == "2nn-iid-C0.0-E1-B10"
    assert set(rf.REQUIRED) <= {c.id for c in rf.CELLS}
    with pytest.raises(ValueError, match="unknown cell"):
        rf.find_cell("3nn")


def test_zero_fraction_means_one_client_per_round():
    cell = rf.find_cell("2nn-iid-C0.0-E1-B10")
    assert rf.fraction(cell, 100) == 0.01
    from minifed.simulation import clients_per_round

    assert clients_per_round(100, rf.fraction(cell, 100)) == 1


def test_run_cell_records_resumes_and_tabulates(tmp_path):
    data = tiny_federation()
    cell = rf.Cell("2nn", "iid", 0.2, 1, 10, 0.05)
    dirs = {"results": tmp_path / "results", "checkpoints": tmp_path / "ckpt"}
    rf.TARGET["2nn"] = 1.0  # out of reach on these overlapping blobs, so the run goes to max_rounds
    try:
        first = rf.run_cell(cell, data, max_rounds=3, **dirs)
        resumed = rf.run_cell(cell, data, max_rounds=6, **dirs)
        direct = rf.run_cell(cell, data, max_rounds=6, results=tmp_path / "r2",
                             checkpoints=tmp_path / "c2")  # fmt: skip
    finally:
        rf.TARGET["2nn"] = 0.97
    assert len(first) == 4 and len(resumed) == 7
    acc = [r["test_accuracy"] for r in resumed.rounds]
    assert acc == [r["test_accuracy"] for r in direct.rounds]
    saved = History.load(tmp_path / "results" / f"{cell.id}.json")
    assert saved.config["cell_id"] == cell.id and len(saved) == 7


def test_time_budget_stops_a_run_that_resumes_later(tmp_path):
    data = tiny_federation()
    cell = rf.Cell("2nn", "iid", 0.2, 1, 10, 0.05)
    dirs = {"results": tmp_path / "results", "checkpoints": tmp_path / "ckpt"}
    stopped = rf.run_cell(cell, data, max_rounds=50, budget_minutes=0.0, **dirs)
    assert stopped.stopped == "callback" and len(stopped) == 1  # round 0, then out of time
    resumed = rf.run_cell(cell, data, max_rounds=3, **dirs)
    assert [r["round"] for r in resumed.rounds][:2] == [0, 1]


def test_table_compares_paper_and_minifed():
    def fake(rounds_to_97):
        acc = [0.5] * rounds_to_97 + [0.975]
        rounds = [{"round": t, "test_accuracy": a, "seconds": 1.0, "eval_seconds": 0.0}
                  for t, a in enumerate(acc)]  # fmt: skip
        return History({"lr": 0.1}, rounds)

    text = rf.table({"2nn-iid-C0.0-E1-B10": fake(300), "2nn-iid-C0.1-E1-B10": fake(100)})
    row = next(line for line in text.splitlines() if line.startswith("| 2nn-iid-C0.1-E1-B10"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[7:12] == ["87", "100", "1.15", "3.6x", "3.0x"]


def test_table_shows_how_close_a_run_that_missed_its_target_came():
    acc = [0.5, 0.9891, 0.26, 0.8]
    rounds = [{"round": t, "test_accuracy": a, "seconds": 1.0, "eval_seconds": 0.0}
              for t, a in enumerate(acc)]  # fmt: skip
    text = rf.table({"cnn-iid-C0.1-E1-Binf": History({"lr": 0.22}, rounds)})
    row = next(line for line in text.splitlines() if line.startswith("| cnn-iid-C0.1-E1-Binf"))
    assert "not reached in 3 (best 0.9891 at 1)" in row
